/**
 * Runs the JSDoc examples of the library as tests that assert what their
 * comments say. Copies the repository (the files git knows, as they are in
 * the work tree) to a scratch directory, rewrites every example's value
 * comments into checks there (scripts/_doc_transform.ts documents the
 * convention: `console.log(x); // 42` asserts, `// e.g. ...` marks a value
 * that can't be checked), and runs `deno test --doc` over the library files
 * of the copy, whose deno.json maps `@shmkit/shmkit` and `/raw` as in the
 * work tree. Test names keep the real files' line numbers. The work tree is
 * never modified.
 *
 * Prints how many comments it turned into checks, then deno's output; exits
 * with deno's exit code (1 when a line breaks the convention: it is replaced
 * by a throw, so its example fails and names it).
 *
 * Usage: deno run -A scripts/doc_examples.ts [--keep] [files...]
 *   (files: library files to run, e.g. sync/channel.ts; default all of them)
 *
 * @module
 */

import { transformFile } from "./_doc_transform.ts";

/** The library's folders, one per capability. */
export const LIBRARY_DIRS = [
  "core",
  "ffi",
  "platform",
  "mapping",
  "shm",
  "sysv",
  "sync",
  "spawn",
  "layout",
  "messaging",
  "ipc",
  "cli",
] as const;

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const DENO = `${ROOT}/node_modules/.bin/deno`;
const decoder = new TextDecoder();

/** Library modules whose JSDoc examples run as tests, relative to `root`. */
export function libraryFiles(root: string): string[] {
  const list: string[] = [];
  for (const dir of [".", ...LIBRARY_DIRS]) {
    for (const e of Deno.readDirSync(`${root}/${dir}`)) {
      if (e.isFile && e.name.endsWith(".ts")) list.push(dir === "." ? e.name : `${dir}/${e.name}`);
    }
  }
  return list.sort();
}

/** Directories never copied when the tree is walked. */
const SKIP = new Set(["node_modules", ".git", ".cache", "dist", "npm"]);

/**
 * The repository's files, relative to ROOT: those git knows (tracked, and new
 * ones not ignored), or, outside a git work tree (the scratch copy of
 * scripts/mutation_check.ts), every file but SKIP's.
 */
function repositoryFiles(): string[] {
  try {
    const out = new Deno.Command("git", {
      args: ["ls-files", "-z", "--cached", "--others", "--exclude-standard"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    if (out.success) return decoder.decode(out.stdout).split("\0").filter((f) => f !== "");
  } catch {
    // no git: walk
  }
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const e of Deno.readDirSync(`${ROOT}/${dir}`)) {
      const path = dir === "" ? e.name : `${dir}/${e.name}`;
      if (e.isDirectory && !SKIP.has(e.name)) walk(path);
      else if (e.isFile) files.push(path);
    }
  };
  walk("");
  return files;
}

/** The repository's files, as they are in the work tree, copied to `dir`. */
function copyRepository(dir: string): void {
  for (const file of repositoryFiles()) {
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(`${ROOT}/${file}`);
    } catch {
      continue; // deleted in the work tree, not yet in the index
    }
    if (!info.isFile) continue;
    const to = `${dir}/${file}`;
    Deno.mkdirSync(to.slice(0, to.lastIndexOf("/")), { recursive: true });
    Deno.copyFileSync(`${ROOT}/${file}`, to);
  }
  Deno.symlinkSync(`${ROOT}/node_modules`, `${dir}/node_modules`);
}

if (import.meta.main) {
  const keep = Deno.args.includes("--keep");
  const wanted = Deno.args.filter((a) => !a.startsWith("--"));
  const all = libraryFiles(ROOT);
  const unknown = wanted.filter((f) => !all.includes(f));
  if (unknown.length > 0) {
    console.error(`Not library files: ${unknown.join(", ")}`);
    Deno.exit(2);
  }
  const files = wanted.length > 0 ? wanted : all;
  const dir = Deno.makeTempDirSync({ prefix: "shmkit-doc-examples-" });
  let code = 1;
  try {
    copyRepository(dir);
    const helper = new URL(`file://${dir}/scripts/_doc_expect.ts`).href;
    let blocks = 0;
    let asserted = 0;
    let illustrative = 0;
    const errors: string[] = [];
    for (const file of files) {
      const path = `${dir}/${file}`;
      const result = transformFile(Deno.readTextFileSync(path), file, helper);
      if (result.asserted > 0 || result.errors.length > 0) {
        Deno.writeTextFileSync(path, result.text);
      }
      blocks += result.blocks;
      asserted += result.asserted;
      illustrative += result.illustrative;
      errors.push(...result.errors);
    }
    console.log(
      `doc examples: ${blocks} blocks in ${files.length} files; ${asserted} value comments ` +
        `asserted, ${illustrative} marked "e.g." (unchecked)`,
    );
    for (const error of errors) console.log(`convention broken: ${error}`);
    const child = new Deno.Command(DENO, {
      args: ["test", "--doc", "-A", "--v8-flags=--expose-gc", ...files],
      cwd: dir,
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).outputSync();
    code = child.signal === null ? child.code : 1;
    if (child.signal !== null) console.log(`deno test --doc died from ${child.signal}`);
  } finally {
    if (keep) console.log(`scratch copy kept in ${dir}`);
    else Deno.removeSync(dir, { recursive: true });
  }
  Deno.exit(code);
}
