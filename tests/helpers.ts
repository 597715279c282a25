/**
 * Test helpers shared by the suite; runtime-neutral (Deno and Bun).
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Which runtime runs the suite. */
export const runtime: "deno" | "bun" = "Bun" in globalThis ? "bun" : "deno";

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

/** Logs why a test is skipped (the runners print skips, but not always why). */
export function skipReason(reason: string): string {
  console.log(`skip: ${reason}`);
  return reason;
}
