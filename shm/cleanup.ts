/**
 * Removal of what a process leaves in the system (named shared memory, and
 * System V segments created with `removeOnExit`) when it ends, in two layers:
 *
 * - In process, at a normal end: registered tasks run once, newest first, on
 *   a normal exit, `Deno.exit()`/`process.exit()` and an uncaught error.
 * - Out of process (Linux): a small cleaner process (shm/_cleaner.ts) learns
 *   of this process's death from a pipe's EOF and removes what is still
 *   registered: after SIGKILL, the OOM killer, SIGHUP, SIGABRT, SIGINT or
 *   SIGTERM too, whatever the process was blocked in.
 *
 * So shmkit installs no SIGINT/SIGTERM listener by default: Ctrl-C and
 * `kill` end the process at once, as if shmkit weren't there (a listener
 * can't run while the thread is blocked in a synchronous wait).
 * {@linkcode setSignalCleanup}(true) brings the listeners back, for a
 * platform without the cleaner.
 *
 * Any module registers a task under a key and unregisters it when the thing
 * is gone. Exit hooks are installed only while a task is registered:
 * - Deno: the `unload` event, and the `error` and `unhandledrejection`
 *   events (nothing runs when a listener called `preventDefault()` and the
 *   program goes on).
 * - Bun: `process.on("exit")` (which also fires after an uncaught error).
 *
 * @example Remove a temporary file at exit unless it is removed sooner
 * ```ts
 * import { registerCleanup, unregisterCleanup } from "@shmkit/shmkit/raw";
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
import { deno, nodeProcess } from "../core/_runtime.ts";
import { cleanerClose, cleanerForget, type CleanerRecord, cleanerWatch } from "./_cleaner.ts";

/** What a cleanup task is registered under: any value, compared with `===`. */
export type CleanupKey = string | number | symbol | object;

const tasks = new Map<CleanupKey, () => void>();
let signalCleanup = false;

interface EventTargetLike {
  addEventListener(type: string, listener: (event: Event) => void): void;
  removeEventListener(type: string, listener: (event: Event) => void): void;
}

const g = globalThis as unknown as EventTargetLike;
const proc = nodeProcess;

function off(event: string, listener: (...args: unknown[]) => void): void {
  if (proc?.off !== undefined) proc.off(event, listener);
  else proc?.removeListener?.(event, listener);
}

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
  cleanerClose(); // e.g. a Bun Worker's end: its cleaner finishes now, not with the process
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
    else off("exit", onExit);
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
        else off(signal, onSignal[signal]);
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
 * Registers `task` to run when the process exits (normally, or after an
 * uncaught error; on SIGINT / SIGTERM only with {@linkcode setSignalCleanup}),
 * unless unregistered first. A task already under `key` is replaced. Tasks
 * run at most once, newest first. A task is JavaScript: it can't run after a
 * SIGKILL or a crash (shmkit's own objects have the out-of-process cleaner
 * for that).
 *
 * The task should not hold on to the object it cleans up (capture a name or
 * an id), so that object can still be garbage-collected.
 *
 * @example
 * ```ts
 * import { registerCleanup } from "@shmkit/shmkit/raw";
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
  cleanerForget(key); // a plain task replaces any removal record under the key
  updateHooks();
}

/**
 * Internal: registers `task` as {@linkcode registerCleanup} does, and
 * `record` with the out-of-process cleaner, which removes the object after
 * this process is gone if the task never ran (SIGKILL, OOM, SIGHUP, ...).
 * {@linkcode unregisterCleanup} withdraws both.
 */
export function registerRemoval(key: CleanupKey, task: () => void, record: CleanerRecord): void {
  registerCleanup(key, task);
  cleanerWatch(key, record);
}

/**
 * Unregisters the task under `key` (it won't run). Returns whether one was
 * registered.
 *
 * @example
 * ```ts
 * import { registerCleanup, unregisterCleanup } from "@shmkit/shmkit/raw";
 * registerCleanup("demo", () => {});
 * unregisterCleanup("demo"); // true
 * ```
 */
export function unregisterCleanup(key: CleanupKey): boolean {
  const had = tasks.delete(key);
  cleanerForget(key);
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
 * import { runCleanups } from "@shmkit/shmkit/raw";
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
    cleanerForget(key); // after the task: if it failed, the cleaner still may succeed
  }
  return list.length;
}

/**
 * Whether SIGINT and SIGTERM run the cleanup tasks in process and then exit
 * with 130 / 143 (default false since the out-of-process cleaner exists).
 *
 * Off, a signal ends the process at once, as if shmkit weren't there, and
 * the cleaner (Linux) removes the objects. On, shmkit listens for both
 * signals while a task is registered; but a listener needs the event loop,
 * so the signal is not handled at all while the thread is blocked in a
 * synchronous wait (`Mutex.lock()`, `SharedEvent.wait()`, ...). Turn it on
 * only where there is no cleaner (not Linux) and the program never blocks;
 * a program with its own signal handling calls {@linkcode runCleanups} there.
 *
 * @example
 * ```ts
 * import { setSignalCleanup } from "@shmkit/shmkit/raw";
 * setSignalCleanup(true); // macOS: unlink at Ctrl-C, from the event loop
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
