/**
 * Turns the value comments of JSDoc examples into assertions, for
 * scripts/doc_examples.ts. Pure text in, text out (no runtime APIs), one
 * output line per input line so that test names and line numbers stay those
 * of the real file; one line is added at the end of a block that asserts.
 *
 * The convention (inside a ```ts block of a JSDoc comment):
 *
 * - `console.log(A, B); // VA VB` asserts: the comment is the printed values,
 *   one JS literal per argument, separated by spaces. A note may follow the
 *   literals after `:`, `(` or a space (`// 8192: the real size`). A comment
 *   after console.log that is not a value must start with `e.g.`, which marks
 *   it as illustrative (an address, a pid, a generated name) and unchecked;
 *   anything else fails the example, so a mistyped value cannot pass
 *   unchecked.
 * - `EXPR; // V` (an expression statement) asserts when the comment starts
 *   with a literal; prose comments (`// changes nothing`) are left alone.
 *   A value comment after a console.log that doesn't start its statement
 *   (`if (ok) console.log(x); // 1`) fails the example: it can't be checked.
 * - Only one-line statements are read: a comment on a line of its own (e.g.
 *   after a console.log spread over several lines) is prose, never checked.
 * - Literals: strings ("..." or '...', JS escapes), numbers, bigints (`2000n`),
 *   true, false, null, undefined, NaN, Infinity, arrays, and objects (keys
 *   bare or quoted). `...` among an object's entries means "and other keys":
 *   `// { code: 3, signal: null, ... }` checks those two keys only.
 * - Comparison is deep and strict (Object.is for primitives; arrays and
 *   objects key by key). Every asserting line must run at least once.
 *
 * @module
 */

/** Languages whose fenced blocks `deno test --doc` runs. */
const CODE_FENCE = /^```(?:ts|typescript|js|javascript|tsx|jsx|mts|mjs)?\s*$/;
/** The JSDoc margin of a line: indentation, `*`, one space. */
const MARGIN = /^(\s*\*(?: |$))(.*)$/;
/** Statements that are not expression statements. */
const NOT_EXPRESSION =
  /^(?:const|let|var|using|await\s+using|if|for|while|do|return|throw|import|export|function|class|try|catch|finally|switch|case|default|break|continue)\b|^[{}]/;

/** How a block's helper functions are named inside the rewritten code. */
const EXPECT = "__docExpect";
const EXPECT_ALL = "__docExpectAll";
/** The key standing for `...` in an object literal (see scripts/_doc_expect.ts). */
export const MORE_KEY = "__docMore";

/** What transforming one file came to. */
export interface FileTransform {
  readonly text: string;
  /** Code blocks found. */
  readonly blocks: number;
  /** Lines turned into assertions. */
  readonly asserted: number;
  /** Comments after console.log marked `e.g.` and left unchecked. */
  readonly illustrative: number;
  /** Lines breaking the convention (each replaced by a throw), as `file:line: why`. */
  readonly errors: readonly string[];
}

/**
 * Rewrites the examples of one source file. `file` names it in messages;
 * `helper` is the URL the rewritten blocks import the checks from.
 */
export function transformFile(text: string, file: string, helper: string): FileTransform {
  const lines = text.split("\n");
  const out: string[] = [];
  let blocks = 0;
  let asserted = 0;
  let illustrative = 0;
  const errors: string[] = [];
  let block: { first: number; locations: string[] } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const margin = MARGIN.exec(line);
    if (margin === null) {
      block = undefined;
      out.push(line);
      continue;
    }
    const [, prefix, body] = margin as unknown as [string, string, string];
    if (block === undefined) {
      if (CODE_FENCE.test(body.trim())) {
        block = { first: out.length + 1, locations: [] };
        blocks++;
      }
      out.push(line);
      continue;
    }
    if (body.trim() === "```") {
      if (block.locations.length > 0) {
        // Import the checks on the block's first line, and check at its end that each ran.
        const imports = `import { ${EXPECT}, ${EXPECT_ALL} } from ${JSON.stringify(helper)}; `;
        const first = MARGIN.exec(out[block.first]!)!;
        out[block.first] = first[1] + imports + first[2];
        out.push(`${prefix}${EXPECT_ALL}(${JSON.stringify(block.locations)});`);
      }
      block = undefined;
      out.push(line);
      continue;
    }
    const location = `${file}:${i + 1}`;
    const rewritten = rewriteLine(body, location);
    if (rewritten.kind === "asserted") {
      asserted++;
      block.locations.push(location);
    } else if (rewritten.kind === "illustrative") illustrative++;
    else if (rewritten.kind === "error") errors.push(`${location}: ${rewritten.why}`);
    out.push("code" in rewritten ? prefix + rewritten.code : line);
  }
  return { text: out.join("\n"), blocks, asserted, illustrative, errors };
}

type Rewritten =
  | { readonly kind: "unchanged" }
  | { readonly kind: "illustrative" }
  | { readonly kind: "asserted"; readonly code: string }
  | { readonly kind: "error"; readonly code: string; readonly why: string };

/** One line of example code, with its value comment (if any) made an assertion. */
export function rewriteLine(body: string, location: string): Rewritten {
  const at = commentStart(body);
  if (at === -1) return { kind: "unchanged" };
  const code = body.slice(0, at).trimEnd();
  const comment = body.slice(at + 2).trim();
  if (code === "" || !code.endsWith(";")) return { kind: "unchanged" };
  const indent = /^\s*/.exec(code)![0];
  const statement = code.trim().slice(0, -1);
  const logged = /^console\.log\(([\s\S]*)\)$/.exec(statement);
  const values = parseValues(comment);
  const loc = JSON.stringify(location);
  const said = JSON.stringify(comment);
  if (logged !== null) {
    if (comment.startsWith("e.g.")) return { kind: "illustrative" };
    if (values === undefined) {
      const why = "a comment after console.log(...) must be the printed value(s) as JS " +
        'literals, or start with "e.g." when the value cannot be checked';
      return {
        kind: "error",
        code: `${indent}throw new Error(${JSON.stringify(`${location}: ${why}`)});`,
        why,
      };
    }
    const args = logged[1]!.trim();
    const call = `${EXPECT}(${loc}, ${said}, [${values.join(", ")}]${
      args === "" ? "" : ", "
    }${args});`;
    return { kind: "asserted", code: indent + call };
  }
  if (values !== undefined && statement.includes("console.log(")) {
    // e.g. `if (ok) console.log(x); // 1`: a value the harness can't check where it is.
    const why = "a value comment on a line whose statement doesn't start with console.log(...) " +
      'can\'t be checked: give the console.log a line of its own, or start the comment with "e.g."';
    return {
      kind: "error",
      code: `${indent}throw new Error(${JSON.stringify(`${location}: ${why}`)});`,
      why,
    };
  }
  if (values === undefined || NOT_EXPRESSION.test(statement.trim())) return { kind: "unchanged" };
  return {
    kind: "asserted",
    code: `${indent}${EXPECT}(${loc}, ${said}, [${values.join(", ")}], (${statement.trim()}));`,
  };
}

/** Where a `//` comment starts outside strings, or -1. */
function commentStart(line: string): number {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote !== undefined) {
      if (c === "\\") i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'" || c === "`") quote = c;
    else if (c === "/" && line[i + 1] === "/") return i;
  }
  return -1;
}

/**
 * The JS source of each literal the comment starts with, or undefined when it
 * doesn't start with one. What follows the literals is a note.
 */
export function parseValues(comment: string): string[] | undefined {
  const values: string[] = [];
  let i = 0;
  for (;;) {
    const parsed = parseValue(comment, i);
    if (parsed === undefined) break;
    values.push(parsed.source);
    i = parsed.end;
    const next = comment[i];
    if (next === undefined || next === ":" || next === ";" || next === ",") break;
    if (!/\s/.test(next)) return undefined; // e.g. `4096abc`: not a value
    while (/\s/.test(comment[i] ?? "")) i++;
  }
  return values.length === 0 ? undefined : values;
}

interface Parsed {
  readonly source: string;
  readonly end: number;
}

const NUMBER =
  /^-?(?:0[xX][0-9a-fA-F_]+n?|0[oO][0-7_]+n?|0[bB][01_]+n?|(?:\d[\d_]*)n|(?:\d[\d_]*(?:\.\d[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?|Infinity)/;
const WORD = /^(?:true|false|null|undefined|NaN)(?![\w$])/;
const KEY = /^[A-Za-z_$][\w$]*/;

function skipSpace(s: string, i: number): number {
  while (/\s/.test(s[i] ?? "")) i++;
  return i;
}

/** One literal at `i` (no leading space), or undefined. */
function parseValue(s: string, i: number): Parsed | undefined {
  const c = s[i];
  if (c === undefined) return undefined;
  if (c === '"' || c === "'") {
    for (let j = i + 1; j < s.length; j++) {
      if (s[j] === "\\") j++;
      else if (s[j] === c) return { source: s.slice(i, j + 1), end: j + 1 };
    }
    return undefined;
  }
  if (c === "[") {
    const items: string[] = [];
    let j = skipSpace(s, i + 1);
    while (s[j] !== "]") {
      const item = parseValue(s, j);
      if (item === undefined) return undefined;
      items.push(item.source);
      j = skipSpace(s, item.end);
      if (s[j] === ",") j = skipSpace(s, j + 1);
      else if (s[j] !== "]") return undefined;
    }
    return { source: `[${items.join(", ")}]`, end: j + 1 };
  }
  if (c === "{") {
    const entries: string[] = [];
    let j = skipSpace(s, i + 1);
    while (s[j] !== "}") {
      if (s.startsWith("...", j)) {
        entries.push(`${MORE_KEY}: true`);
        j += 3;
      } else {
        let key: string;
        if (s[j] === '"' || s[j] === "'") {
          const quoted = parseValue(s, j);
          if (quoted === undefined) return undefined;
          key = quoted.source;
          j = quoted.end;
        } else {
          const bare = KEY.exec(s.slice(j)) ?? /^\d+/.exec(s.slice(j));
          if (bare === null) return undefined;
          key = bare[0];
          j += key.length;
        }
        j = skipSpace(s, j);
        if (s[j] !== ":") return undefined;
        const value = parseValue(s, skipSpace(s, j + 1));
        if (value === undefined) return undefined;
        entries.push(`${key}: ${value.source}`);
        j = value.end;
      }
      j = skipSpace(s, j);
      if (s[j] === ",") j = skipSpace(s, j + 1);
      else if (s[j] !== "}") return undefined;
    }
    return { source: `{ ${entries.join(", ")} }`, end: j + 1 };
  }
  const rest = s.slice(i);
  const match = NUMBER.exec(rest) ?? WORD.exec(rest);
  if (match === null) return undefined;
  return { source: match[0], end: i + match[0].length };
}
