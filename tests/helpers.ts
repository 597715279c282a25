/**
 * Test helpers shared by the suite; runtime-neutral (Deno, Bun and Node).
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Which runtime runs the suite. */
export const runtime: "deno" | "bun" | "node" = "Deno" in globalThis
  ? "deno"
  : "Bun" in globalThis
  ? "bun"
  : "node";

/**
 * The emulator running this process ("qemu-user"), set by
 * scripts/aarch64_run.sh, or undefined when native.
 */
export const emulator: string | undefined = (globalThis as {
  process?: { env: Record<string, string | undefined> };
}).process?.env.SHMKIT_EMULATOR;

/** Forces a full garbage collection, or returns false when the runtime can't. */
export function collectGarbage(): boolean {
  const g = globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } };
  if (g.Bun !== undefined) {
    g.Bun.gc(true);
    return true;
  }
  if (typeof g.gc === "function") {
    g.gc();
    return true;
  }
  return false;
}

/** Waits for the next macrotask, so finalizers get a chance to run. */
export function tick(ms = 0): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A fresh temporary directory, and a function removing it. */
export function tempDir(): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), "shmkit-test-"));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Whether a program is on PATH. */
export function have(program: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${program}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const HERE = new URL(import.meta.url).pathname;
const REPO = new URL("../", import.meta.url).pathname;

/** The first stack frame outside this file, as "tests/x_test.ts:12", or "". */
function callerLocation(): string {
  for (const line of (new Error().stack ?? "").split("\n").slice(1)) {
    const m = /(?:file:\/\/)?(\/[^\s()]+?\.[cm]?[jt]sx?):(\d+)/.exec(line);
    if (m === null || m[1] === HERE) continue;
    const path = m[1]!.startsWith(REPO) ? m[1]!.slice(REPO.length) : m[1]!;
    return `${path}:${m[2]}`;
  }
  return "";
}

/**
 * Logs why a test is skipped and returns the reason, for a test's `skip`
 * option. Both runners print only "ignored" / "(skip)" for a reason string,
 * so the reason goes to stderr (shown by both) as `skip: <reason> (<file:line>)`,
 * the line scripts/test.ts collects.
 */
export function skipReason(reason: string): string {
  const at = callerLocation();
  console.error(`skip: ${reason}${at === "" ? "" : ` (${at})`}`);
  return reason;
}

/** `skipReason(reason)` when `condition` holds, else false: `{ skip: skipIf(!have("cc"), "no cc") }`. */
export function skipIf(condition: boolean, reason: string): string | false {
  return condition ? skipReason(reason) : false;
}
