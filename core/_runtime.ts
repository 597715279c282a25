/**
 * The one module that looks at the runtime's globals (Deno, Bun, process), so no other
 * file needs a `globalThis as { Deno? }` of its own. It imports nothing: the
 * FFI backends pick themselves in ffi/libc.ts, everything else asks here.
 *
 * @module
 */

/** The runtimes shmkit runs on. */
export type RuntimeName = "deno" | "bun" | "node";

/** The part of the `Deno` global this library uses. */
export interface DenoApi {
  readonly build: { readonly os: string; readonly arch: string };
  readonly version: { readonly deno: string };
  readonly env: { toObject(): Record<string, string> };
  execPath(): string;
  exit(code: number): never;
  addSignalListener(signal: string, handler: () => void): void;
  removeSignalListener(signal: string, handler: () => void): void;
  refTimer(id: number): void;
  unrefTimer(id: number): void;
}

/** The part of Node's `process` (Bun's too) this library uses. */
export interface ProcessApi {
  readonly platform: string;
  readonly arch: string;
  readonly execPath: string;
  readonly env: Record<string, string | undefined>;
  on(event: string, listener: (...args: unknown[]) => void): void;
  off?(event: string, listener: (...args: unknown[]) => void): void;
  removeListener?(event: string, listener: (...args: unknown[]) => void): void;
  exit(code: number): never;
  /** Node 22.3+ (and Bun): a built-in module, loaded synchronously. */
  getBuiltinModule?(id: string): unknown;
}

const scope = globalThis as unknown as {
  Deno?: DenoApi;
  Bun?: unknown;
  process?: ProcessApi;
  setImmediate?: (fn: () => void) => unknown;
};

/** Which runtime runs this process. */
export const runtimeName: RuntimeName = scope.Deno !== undefined
  ? "deno"
  : scope.Bun !== undefined
  ? "bun"
  : "node";

/** Deno's global, or undefined elsewhere. */
export const deno: DenoApi | undefined = scope.Deno;

/** Node's `process` (Node's own, or Bun's), or undefined under Deno. */
export const nodeProcess: ProcessApi | undefined = scope.Deno === undefined
  ? scope.process
  : undefined;

/**
 * A Node built-in module (`node:worker_threads`) by `process.getBuiltinModule`,
 * or undefined where there is none.
 */
export function nodeBuiltin<T>(id: string): T | undefined {
  return nodeProcess?.getBuiltinModule?.(id) as T | undefined;
}

/** The runtime's own executable, to start a child of the same kind. */
export function execPath(): string {
  if (deno !== undefined) return deno.execPath();
  const path = nodeProcess?.execPath;
  if (path === undefined) throw new Error("Cannot find this runtime's executable path");
  return path;
}

/** Lets a timer keep the process alive (`ref`) or not. */
export function setTimerRef(timer: ReturnType<typeof setTimeout>, ref: boolean): void {
  if (deno !== undefined) {
    if (ref) deno.refTimer(timer as unknown as number);
    else deno.unrefTimer(timer as unknown as number);
  } else {
    const t = timer as unknown as { ref?(): void; unref?(): void };
    if (ref) t.ref?.();
    else t.unref?.();
  }
}

/** Runs `fn` after the current macrotask: setImmediate where it exists, else a 0 ms timer. */
export const scheduleMacrotask: (fn: () => void) => unknown = scope.setImmediate ??
  ((fn: () => void) => setTimeout(fn, 0));

/** Resolves after the current macrotask: setImmediate where it exists, else a 0 ms timer. */
export function nextMacrotask(): Promise<void> {
  return new Promise<void>((resolve) => void scheduleMacrotask(resolve));
}
