/**
 * Reads the output of `deno test` and `bun test` for scripts/test.ts: the
 * counts, the skip reasons the tests logged (tests/helpers.ts skipReason),
 * and, when a run ended without its summary, how it died and in which test.
 *
 * @module
 */

/** What one test run came to. */
export interface RunResult {
  passed: number;
  failed: number;
  skipped: number;
  /** Why the run has no summary (a signal, an exit code) and where it was; undefined when it has one. */
  death?: string;
  /** The reasons tests logged for skipping, each once, in order. */
  skipReasons: string[];
}

/** How the process ended: its exit code, or the signal that killed it. */
export interface ProcessEnd {
  readonly code: number;
  readonly signal: string | null;
  /** Whether the kernel log says the OOM killer took it (see {@linkcode oomKilled}). */
  readonly oom?: boolean;
}

/** Whether kernel log text (dmesg) records the OOM killer killing `pid`. */
export function oomKilled(kernelLog: string, pid: number): boolean {
  return new RegExp(`Out of memory: Killed process ${pid} \\(`).test(kernelLog);
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

/** The text without colour codes or carriage returns. */
export function plain(s: string): string {
  return s.replace(ANSI, "").replace(/\r/g, "");
}

// Linux numbers, the same on x86_64 and aarch64 for these.
const SIGNALS: Record<number, string> = {
  1: "SIGHUP",
  2: "SIGINT",
  3: "SIGQUIT",
  4: "SIGILL",
  5: "SIGTRAP",
  6: "SIGABRT",
  7: "SIGBUS",
  8: "SIGFPE",
  9: "SIGKILL",
  11: "SIGSEGV",
  13: "SIGPIPE",
  14: "SIGALRM",
  15: "SIGTERM",
  24: "SIGXCPU",
  25: "SIGXFSZ",
};

/**
 * "killed by SIGKILL", or "exit code 137 (as if killed by SIGKILL)" when a
 * wrapper shell passed a signal death on as 128 + n.
 */
export function describeEnd(end: ProcessEnd): string {
  const oom = end.oom === true ? ", by the OOM killer (dmesg)" : "";
  if (end.signal !== null) return `killed by ${end.signal}${oom}`;
  const name = end.code > 128 ? SIGNALS[end.code - 128] : undefined;
  return name === undefined
    ? `exit code ${end.code}`
    : `exit code ${end.code} (as if killed by ${name}${oom})`;
}

/** The `skip: ...` lines, each reason once. */
export function skipReasons(text: string): string[] {
  const seen = new Set<string>();
  for (const m of text.matchAll(/^skip: (.+)$/gm)) seen.add(m[1]!.trim());
  return [...seen];
}

function lastMatch(text: string, re: RegExp): RegExpMatchArray | undefined {
  let last: RegExpMatchArray | undefined;
  for (const m of text.matchAll(re)) last = m;
  return last;
}

function count(text: string, re: RegExp): number {
  return [...text.matchAll(re)].length;
}

function lastLine(text: string): string {
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  return lines.at(-1) ?? "(no output)";
}

/** Reads `deno test` output (also `deno test --doc`). */
export function readDeno(output: string, end: ProcessEnd): RunResult {
  const text = plain(output);
  const reasons = skipReasons(text);
  const summary = lastMatch(
    text,
    /^(?:ok|FAILED) \| (\d+) passed[^|\n]*\| (\d+) failed[^|\n]*(?:\| (\d+) ignored)?/gm,
  );
  if (summary !== undefined) {
    const failed = Number(summary[2]);
    return {
      passed: Number(summary[1]),
      // A non-zero exit with nothing failed still counts as a failure.
      failed: failed === 0 && end.code !== 0 ? 1 : failed,
      skipped: Number(summary[3] ?? 0),
      skipReasons: reasons,
    };
  }
  // Each test prints "name ..." when it starts and its result when it ends.
  const file = lastMatch(text, /^running \d+ tests? from (\S+)/gm)?.[1];
  const started = lastMatch(text, /^(.+?) \.\.\.(.*)$/gm);
  let where: string;
  if (started === undefined) where = `no test had started; last output: ${lastLine(text)}`;
  else {
    const unfinished = !/\b(ok|FAILED|ignored)\b/.test(started[2]!);
    where = `${unfinished ? "during" : "after"} "${started[1]!.trim()}"${
      file === undefined ? "" : ` (${file})`
    }`;
  }
  return {
    passed: count(text, / \.\.\. ok\b/g),
    failed: count(text, / \.\.\. FAILED\b/g) + 1,
    skipped: count(text, / \.\.\. ignored\b/g),
    death: `ended without a summary, ${describeEnd(end)}, ${where}`,
    skipReasons: reasons,
  };
}

/** Reads `bun test` output. */
export function readBun(output: string, end: ProcessEnd): RunResult {
  const text = plain(output);
  const reasons = skipReasons(text);
  const pass = /^\s*(\d+) pass\s*$/m.exec(text);
  if (pass !== null) {
    const failed = Number(/^\s*(\d+) fail\s*$/m.exec(text)?.[1] ?? 0);
    const skip = Number(/^\s*(\d+) skip\s*$/m.exec(text)?.[1] ?? 0);
    const todo = Number(/^\s*(\d+) todo\s*$/m.exec(text)?.[1] ?? 0);
    return {
      passed: Number(pass[1]),
      failed: failed === 0 && end.code !== 0 ? 1 : failed,
      skipped: skip + todo,
      skipReasons: reasons,
    };
  }
  // Bun prints a file's name when it starts it, and a test's line when it ends.
  const file = lastMatch(text, /^(\S+\.[cm]?[jt]sx?):$/gm)?.[1];
  const finished = lastMatch(text, /^\((?:pass|fail|skip|todo)\) (.+?)(?: \[[\d.]+m?s\])?$/gm);
  const where = file === undefined
    ? `no test file had started; last output: ${lastLine(text)}`
    : `in ${file}, ${
      finished === undefined ? "in its first test" : `in the test after "${finished[1]}"`
    }`;
  return {
    passed: count(text, /^\(pass\) /gm),
    failed: count(text, /^\(fail\) /gm) + 1,
    skipped: count(text, /^\((?:skip|todo)\) /gm),
    death: `ended without a summary, ${describeEnd(end)}, ${where}`,
    skipReasons: reasons,
  };
}

/** Reads the `<target>: N passed, N failed` line a script prints (the mutation check). */
export function readSummaryLine(
  output: string,
  target: string,
  end: ProcessEnd,
): { passed: number; failed: number; death?: string } {
  const text = plain(output);
  const escaped = target.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const m = new RegExp(`^${escaped}: (\\d+) passed, (\\d+) failed`, "m").exec(text);
  if (m === null) {
    return {
      passed: 0,
      failed: 1,
      death: `ended without a summary, ${describeEnd(end)}; last output: ${lastLine(text)}`,
    };
  }
  const failed = Number(m[2]);
  return { passed: Number(m[1]), failed: failed === 0 && end.code !== 0 ? 1 : failed };
}

/**
 * Reads `node --test --test-reporter=tap` output: the `# pass N`, `# fail N`,
 * `# skipped N`, `# todo N` and `# cancelled N` lines at its end (a cancelled
 * test, e.g. by its timeout, counts as failed).
 */
export function readNode(output: string, end: ProcessEnd): RunResult {
  const text = plain(output);
  // The TAP reporter passes a test file's stderr on as "# " comment lines.
  const reasons = skipReasons(text.replace(/^# (skip: )/gm, "$1"));
  const total = (name: string): number | undefined => {
    const m = lastMatch(text, new RegExp(`^# ${name} (\\d+)\\s*$`, "gm"));
    return m === undefined ? undefined : Number(m[1]);
  };
  const pass = total("pass");
  if (pass !== undefined) {
    const failed = (total("fail") ?? 0) + (total("cancelled") ?? 0);
    return {
      passed: pass,
      failed: failed === 0 && end.code !== 0 ? 1 : failed,
      skipped: (total("skipped") ?? 0) + (total("todo") ?? 0),
      skipReasons: reasons,
    };
  }
  // TAP names each test when it starts ("# Subtest: name") and ends ("ok N - name").
  const started = lastMatch(text, /^\s*# Subtest: (.+)$/gm)?.[1];
  const where = started === undefined
    ? `no test had started; last output: ${lastLine(text)}`
    : `during or after "${started.trim()}"`;
  return {
    passed: count(text, /^\s*ok \d+ - (?!.*# SKIP)/gm),
    failed: count(text, /^\s*not ok \d+ - /gm) + 1,
    skipped: count(text, /^\s*ok \d+ - .*# SKIP/gm),
    death: `ended without a summary, ${describeEnd(end)}, ${where}`,
    skipReasons: reasons,
  };
}
