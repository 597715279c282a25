/**
 * The doc-example harness (scripts/doc_examples.ts): value comments parse as
 * the literals they show, become checks that fail on a different value, and
 * comments that are not values are left alone or refused as the convention
 * says.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseValues, rewriteLine, transformFile } from "../scripts/_doc_transform.ts";
import { __docExpect, __docExpectAll } from "../scripts/_doc_expect.ts";

/** Runs one rewritten line with the harness's checks in scope. */
function runLine(line: string, scope: Record<string, unknown> = {}): unknown {
  const rewritten = rewriteLine(line, "demo.ts:7");
  assert.ok("code" in rewritten, `not rewritten: ${line}`);
  const names = Object.keys(scope);
  const fn = new Function("__docExpect", ...names, rewritten.code);
  return fn(__docExpect, ...names.map((n) => scope[n]));
}

test("value comments parse as JS literals, a note after them ignored", () => {
  assert.deepEqual(parseValues("1048960"), ["1048960"]);
  assert.deepEqual(parseValues('"timed-out": nobody notified'), ['"timed-out"']);
  assert.deepEqual(parseValues("true 7 (in the first process)"), ["true", "7"]);
  assert.deepEqual(parseValues('0 "hello\\n"'), ["0", '"hello\\n"']);
  assert.deepEqual(parseValues("2000n"), ["2000n"]);
  assert.deepEqual(parseValues("-7, or less"), ["-7"]);
  assert.deepEqual(parseValues("[1, 'a', null]"), ["[1, 'a', null]"]);
  assert.deepEqual(parseValues("{ code: 3, signal: null, ... }"), [
    "{ code: 3, signal: null, __docMore: true }",
  ]);
  assert.deepEqual(parseValues('{ "a-b": [true] }'), ['{ "a-b": [true] }']);
  for (const prose of ["changes nothing", "e.g. 7f3a...", "4096abc", "", "ok", '"unclosed']) {
    assert.equal(parseValues(prose), undefined, prose);
  }
});

test("a console.log line asserts: the documented value passes, any other fails naming the line", () => {
  runLine("console.log(1 << 20, 'x'.repeat(2)); // 1048576 \"xx\"");
  runLine("console.log(BigInt(2000)); // 2000n");
  runLine("console.log({ code: 3, signal: null, extra: 1 }); // { code: 3, signal: null, ... }");
  assert.throws(() => runLine("console.log(1048968); // 1048960"), /demo\.ts:7: .* 1048968/);
  assert.throws(() => runLine("console.log(2000); // 2000n"), /demo\.ts:7/);
  assert.throws(() => runLine('console.log("7"); // 7'), /demo\.ts:7/);
  assert.throws(() => runLine("console.log({ a: 1, b: 2 }); // { a: 1 }"), /demo\.ts:7/);
  assert.throws(() => runLine("console.log(1, 2); // 1"), /demo\.ts:7/, "one value per argument");
  assert.throws(() => runLine("console.log([1, 2]); // [1, 2, 3]"), /demo\.ts:7/);
});

test("an expression statement asserts only when its comment starts with a literal", () => {
  const shm = { unlink: () => true };
  runLine("shm.unlink(); // true", { shm });
  assert.throws(() => runLine("shm.unlink(); // false", { shm }), /demo\.ts:7/);
  assert.deepEqual(rewriteLine("fchown(fd, -1, -1); // changes nothing", "x"), {
    kind: "unchanged",
  });
  assert.deepEqual(rewriteLine("const a = 1; // 1", "x"), { kind: "unchanged" });
  assert.deepEqual(rewriteLine("} // unlocked here", "x"), { kind: "unchanged" });
  assert.deepEqual(rewriteLine("// 42", "x"), { kind: "unchanged" });
});

test('after console.log, "e.g." marks an unchecked value and other prose is refused', () => {
  assert.deepEqual(rewriteLine('console.log(shm.name); // e.g. "/shmkit-…"', "x"), {
    kind: "illustrative",
  });
  const refused = rewriteLine("console.log(pid); // the pid", "demo.ts:7");
  assert.equal(refused.kind, "error");
  assert.ok("code" in refused);
  assert.throws(() => new Function(refused.code)(), /demo\.ts:7: a comment after console\.log/);
  const hidden = rewriteLine("if (ok) console.log(x); // 1", "demo.ts:7");
  assert.equal(hidden.kind, "error", "a value after a console.log inside an if can't be checked");
  // A "//" inside a string is not a comment.
  assert.equal(rewriteLine('console.log("a // b");', "x").kind, "unchanged");
});

test("transformFile rewrites only fenced JSDoc code, keeps line numbers, and checks every line ran", () => {
  const source = [
    "/**",
    " * Prose with console.log(1); // 2 outside a fence.",
    " * ```ts",
    " * const x = 40;",
    " * console.log(x + 2); // 42",
    " * if (x > 100) console.log(x); // e.g. 1",
    " * ```",
    " */",
    "console.log(3); // 4",
  ].join("\n");
  const result = transformFile(source, "demo.ts", "file:///h.ts");
  const lines = result.text.split("\n");
  assert.equal(result.blocks, 1);
  assert.equal(result.asserted, 1);
  assert.equal(lines.length, 10, "one line added, before the closing fence");
  assert.equal(lines[1], " * Prose with console.log(1); // 2 outside a fence.");
  assert.match(
    lines[3]!,
    /^ \* import \{ __docExpect, __docExpectAll \} from "file:\/\/\/h\.ts"; const x/,
  );
  assert.equal(lines[4], ' * __docExpect("demo.ts:5", "42", [42], x + 2);', "same line number");
  assert.equal(lines[5], " * if (x > 100) console.log(x); // e.g. 1", "marked unchecked");
  assert.equal(lines[6], ' * __docExpectAll(["demo.ts:5"]);');
  assert.equal(lines[9], "console.log(3); // 4", "code outside JSDoc is untouched");
  // A value line that never runs fails the block.
  const branch = transformFile(
    ["/**", " * ```ts", " * if (false) {", " *   console.log(1); // 1", " * }", " * ```", " */"]
      .join("\n"),
    "demo.ts",
    "file:///h.ts",
  );
  const last = branch.text.split("\n")[5]!;
  assert.match(last, /__docExpectAll\(\["demo\.ts:4"\]\);$/);
  assert.throws(() => __docExpectAll(["demo.ts:4"]), /demo\.ts:4: the example never reached/);
});
