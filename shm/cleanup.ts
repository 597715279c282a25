/**
 * Removal of what a process leaves in the system (named shared memory,
 * System V segments) when it exits: normally, on an uncaught error, or on
 * SIGINT / SIGTERM. A SIGKILL can't be caught: after one, find leftovers
 * with `SharedMemory.list()`.
 *
 * Any module registers a task under a key and unregisters it when the thing
 * is gone; the tasks still registered run once, newest first, when the
 * process ends.
 *
 * Hooks are installed only while a task is registered, and removed once
 * none is (at the end of the current job, so that a loop creating and
 * removing objects doesn't add and remove them every time):
 * - Deno: the `unload` event (normal end and `Deno.exit()`), the `error` and
 *   `unhandledrejection` events (uncaught errors; nothing runs when a
 *   listener called `preventDefault()` and the program goes on), and
 *   `Deno.addSignalListener` for SIGINT and SIGTERM.
 * - Bun: `process.on("exit")` (which also fires after an uncaught error),
 *   and `process.on("SIGINT" / "SIGTERM")`.
 *
 * On SIGINT or SIGTERM the tasks run and the process exits with 130 or 143,
 * as a shell reports a death by that signal. A program with its own signal
 * handling calls {@linkcode setSignalCleanup}(false) and
 * {@linkcode runCleanups} itself.
 *
 * @example Remove a temporary file at exit unless it is removed sooner
 * ```ts
 * import { registerCleanup, unregisterCleanup } from "@shmkit/shmkit";
 * const path = Deno.makeTempFileSync();
 * registerCleanup(`file:${path}`, () => Deno.removeSync(path));
 * // ... later, if removed early:
 * Deno.removeSync(path);
 * unregisterCleanup(`file:${path}`);
 * ```
 *
 * @module
 */
import { platform } from "../platform/mod.ts";

/** What a cleanup task is registered under: any value, compared with `===`. */
export type CleanupKey = string | number | symbol | object;

const tasks = new Map<CleanupKey, () => void>();
let signalCleanup = true;

interface DenoLike {
  addSignalListener(signal: string, handler: () => void): void;
  removeSignalListener(signal: string, handler: () => void): void;
  exit(code: number): never;
}

interface ProcessLike {
  on(event: string, handler: (...args: unknown[]) => void): unknown;
  off(event: string, handler: (...args: unknown[]) => void): unknown;
  exit(code: number): never;
}

interface EventTargetLike {
  addEventListener(type: string, listener: (event: Event) => void): void;
  removeEventListener(type: string, listener: (event: Event) => void): void;
}

const g = globalThis as unknown as { Deno?: DenoLike; process?: ProcessLike } & EventTargetLike;
const deno = typeof g.Deno?.addSignalListener === "function" ? g.Deno : undefined;
const proc = deno === undefined && typeof g.process?.on === "function" ? g.process : undefined;

const SIGNALS = ["SIGINT", "SIGTERM"] as const;

function signalHandler(signal: typeof SIGNALS[number]): () => void {
  return () => {
    runCleanups();
    // A shell reports death by signal N as 128 + N; do the same.
    const code = 128 + (platform.signals[signal] ?? 0);
    if (deno !== undefined) deno.exit(code);
    else proc?.exit(code);
  };
}

const onSignal = { SIGINT: signalHandler("SIGINT"), SIGTERM: signalHandler("SIGTERM") };

function onExit(): void {
  runCleanups();
}

function onUncaught(event: Event): void {
  // A listener that prevented the default keeps the program alive: keep the objects too.
  if (!event.defaultPrevented) runCleanups();
}

let exitHooked = false;
let signalsHooked = false;

function hookExit(on: boolean): void {
  if (on === exitHooked) return;
  exitHooked = on;
  if (deno !== undefined) {
    const method = on ? "addEventListener" : "removeEventListener";
    g[method]("unload", onExit);
    g[method]("error", onUncaught);
    g[method]("unhandledrejection", onUncaught);
  } else if (proc !== undefined) {
    if (on) proc.on("exit", onExit);
    else proc.off("exit", onExit);
  }
}

function hookSignals(on: boolean): void {
  if (on === signalsHooked) return;
  try {
    for (const signal of SIGNALS) {
      if (deno !== undefined) {
        if (on) deno.addSignalListener(signal, onSignal[signal]);
        else deno.removeSignalListener(signal, onSignal[signal]);
      } else if (proc !== undefined) {
        if (on) proc.on(signal, onSignal[signal]);
        else proc.off(signal, onSignal[signal]);
      }
    }
    signalsHooked = on;
  } catch {
    // No signal support here (e.g. a worker); exit hooks still apply.
  }
}

let removalQueued = false;

function applyHooks(): void {
  const needed = tasks.size > 0;
  hookExit(needed);
  hookSignals(needed && signalCleanup);
}

function updateHooks(): void {
  if (tasks.size > 0) {
    applyHooks();
    return;
  }
  // Remove at the end of the current job rather than now: a loop that creates
  // and removes objects one after the other would otherwise add and remove
  // the runtime's signal listeners every time (tens of microseconds each).
  if (removalQueued) return;
  removalQueued = true;
  queueMicrotask(() => {
    removalQueued = false;
    applyHooks();
  });
}

/**
 * Registers `task` to run when the process exits (normally, after an
 * uncaught error, or on SIGINT / SIGTERM), unless unregistered first. A task
 * already under `key` is replaced. Tasks run at most once, newest first.
 *
 * The task should not hold on to the object it cleans up (capture a name or
 * an id), so that object can still be garbage-collected.
 *
 * @example
 * ```ts
 * import { registerCleanup } from "@shmkit/shmkit";
 * registerCleanup("demo", () => console.log("bye"));
 * ```
 *
 * @param key What identifies the task, e.g. `"shm:/name"` or `"sysv:1234"`.
 * @param task Synchronous work; exceptions it throws are reported on stderr and don't stop other tasks.
 * @throws {TypeError} When `task` is not a function or `key` is undefined or null.
 */
export function registerCleanup(key: CleanupKey, task: () => void): void {
  if (key === undefined || key === null) {
    throw new TypeError(`Cannot register a cleanup: expected a key, got ${key}`);
  }
  if (typeof task !== "function") {
    throw new TypeError(`Cannot register a cleanup: expected a function, got ${typeof task}`);
  }
  tasks.delete(key); // re-inserting moves it to the end (newest)
  tasks.set(key, task);
  updateHooks();
}

/**
 * Unregisters the task under `key` (it won't run). Returns whether one was
 * registered.
 *
 * @example
 * ```ts
 * import { registerCleanup, unregisterCleanup } from "@shmkit/shmkit";
 * registerCleanup("demo", () => {});
 * unregisterCleanup("demo"); // true
 * ```
 */
export function unregisterCleanup(key: CleanupKey): boolean {
  const had = tasks.delete(key);
  if (had) updateHooks();
  return had;
}

/** Whether a task is registered under `key`. */
export function hasCleanup(key: CleanupKey): boolean {
  return tasks.has(key);
}

/** How many tasks are registered. */
export function pendingCleanups(): number {
  return tasks.size;
}

/**
 * Runs every registered task now, newest first, and unregisters them.
 * Returns how many ran. A task that throws is reported on stderr; the
 * others still run. For programs that handle signals themselves.
 *
 * @example
 * ```ts
 * import { runCleanups, setSignalCleanup } from "@shmkit/shmkit";
 * setSignalCleanup(false);
 * Deno.addSignalListener("SIGINT", () => {
 *   runCleanups();
 *   Deno.exit(130);
 * });
 * ```
 */
export function runCleanups(): number {
  const list = [...tasks].reverse();
  tasks.clear();
  applyHooks();
  for (const [key, task] of list) {
    try {
      task();
    } catch (error) {
      console.error(`shmkit: cleanup ${String(key)} failed:`, error);
    }
  }
  return list.length;
}

/**
 * Whether SIGINT and SIGTERM run the cleanup tasks and then exit with 130 /
 * 143 (default true). Turn it off when the program handles these signals
 * itself (e.g. a graceful shutdown); call {@linkcode runCleanups} there.
 *
 * @example
 * ```ts
 * import { setSignalCleanup } from "@shmkit/shmkit";
 * setSignalCleanup(false);
 * ```
 *
 * @throws {TypeError} When `enabled` is not a boolean.
 */
export function setSignalCleanup(enabled: boolean): void {
  if (typeof enabled !== "boolean") {
    throw new TypeError(`Cannot use enabled: expected a boolean, got ${typeof enabled}`);
  }
  signalCleanup = enabled;
  applyHooks();
}

/** Whether the process-exit and signal hooks are installed now (for tests). */
export function cleanupHooks(): { exit: boolean; signals: boolean } {
  return { exit: exitHooked, signals: signalsHooked };
}
