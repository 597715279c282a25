/**
 * Internal: the blocking phase of `NamedSemaphore.waitAsync`, on another
 * thread ({@linkcode blockOnce}): Deno's nonblocking FFI calls, or (Bun,
 * whose FFI calls are synchronous only) a pool of Workers that block in
 * `sem_clockwait` (or `sem_timedwait`). The pool has the design of
 * sync/_futex_worker.ts: the body is a type-checked function shipped as its
 * source text; idle Workers are unref'd so they never keep the process
 * alive.
 *
 * @module
 */
import { platform } from "../platform/mod.ts";
import { SYMBOLS } from "../ffi/symbols.ts";
import { availableSymbols, backend, unsafeLibc } from "../ffi/libc.ts";
import type { Timespec } from "../sync/_futex.ts";
import { readDeadline, writeDeadline } from "./_deadline.ts";
import { type BunSignature, bunSignature } from "../ffi/bun_backend.ts";

const C = platform.constants;
const TIMESPEC = platform.structs.timespec;

interface Field {
  readonly offset: number;
  readonly size: number;
}

/** What a semaphore Worker gets in its first message. */
interface SemWorkerInit {
  readonly library: string;
  /** sem_clockwait(sem, clock, abstime), or sem_timedwait(sem, abstime) when `clock` is -1. */
  readonly wait: BunSignature & { readonly name: string };
  readonly errnoLocation: BunSignature & { readonly name: string };
  readonly clock: number;
  readonly EINTR: number;
  readonly timespecSize: number;
  readonly sec: Field;
  readonly nsec: Field;
}

/** A wait request: the sem_t address and an absolute deadline (seconds, nanoseconds). */
type Request = readonly [number, number, number];

/** The Worker's reply: the call's result (0: a unit taken) and errno. */
type Reply = readonly [number, number];

/**
 * The Worker's body. It runs from its source text, so it must be
 * self-contained: no imports, no outer names.
 */
function semWorkerMain(): void {
  interface Ffi {
    dlopen(path: string, defs: Record<string, { args: string[]; returns: string }>): {
      symbols: Record<string, (...args: unknown[]) => number>;
    };
    toArrayBuffer(address: number, offset: number, length: number): ArrayBuffer;
    ptr(view: ArrayBufferView): number;
  }
  const scope = globalThis as unknown as {
    onmessage: ((event: { data: SemWorkerInit | Request }) => void) | null;
    postMessage(message: Reply): void;
  };
  const queued: Request[] = [];
  let serve: ((request: Request) => void) | undefined;
  scope.onmessage = (event) => {
    const data = event.data;
    if (!Array.isArray(data)) void start(data as SemWorkerInit);
    else if (serve === undefined) queued.push(data as Request);
    else serve(data as Request);
  };

  async function start(init: SemWorkerInit): Promise<void> {
    const specifier = "bun:ffi";
    const ffi = (await import(specifier)) as Ffi;
    const { name: waitName, ...waitDef } = init.wait;
    const { name: errnoName, ...errnoDef } = init.errnoLocation;
    const libc = ffi.dlopen(init.library, { [waitName]: waitDef, [errnoName]: errnoDef }).symbols;
    const wait = libc[waitName]!;
    const errnoCell = new Int32Array(ffi.toArrayBuffer(libc[errnoName]!(), 0, 4));
    const ts = new Uint8Array(new ArrayBuffer(init.timespecSize));
    const tsView = new DataView(ts.buffer);
    const tsAddress = ffi.ptr(ts);
    const put = (field: Field, value: number): void => {
      if (field.size === 8) tsView.setBigInt64(field.offset, BigInt(value), true);
      else tsView.setInt32(field.offset, value, true);
    };
    serve = ([address, sec, nsec]) => {
      put(init.sec, sec);
      put(init.nsec, nsec);
      for (;;) {
        const r = init.clock === -1
          ? wait(address, tsAddress)
          : wait(address, init.clock, tsAddress);
        if (r === 0) return scope.postMessage([0, 0]);
        const code = errnoCell[0]!;
        if (code !== init.EINTR) return scope.postMessage([r, code]);
      }
    };
    for (const request of queued.splice(0)) serve(request);
  }
}

interface BunWorker {
  postMessage(message: unknown): void;
  terminate(): void;
  onmessage: ((event: MessageEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
  ref?(): void;
  unref?(): void;
}

interface Parked {
  readonly worker: BunWorker;
  settle: ((message: Reply) => void) | null;
  fail: ((error: Error) => void) | null;
  dead: boolean;
}

/** Most Workers blocked at once; further waits poll instead. */
const MAX_WORKERS = 16;
const idle: Parked[] = [];
let live = 0;
let url: string | undefined;

/** The clock the Worker's deadlines are on: CLOCK_MONOTONIC with sem_clockwait, else CLOCK_REALTIME. */
export const workerClock: number = availableSymbols.has("sem_clockwait")
  ? platform.constants.CLOCK_MONOTONIC
  : platform.constants.CLOCK_REALTIME;

/** Whether libc has a timed wait a Worker can block in (Darwin has neither). */
const workerCanWait = availableSymbols.has("sem_clockwait") ||
  availableSymbols.has("sem_timedwait");

function init(): SemWorkerInit {
  const clockwait = availableSymbols.has("sem_clockwait");
  return {
    library: platform.libraries[0]!,
    wait: clockwait
      ? { name: "sem_clockwait", ...bunSignature(SYMBOLS.sem_clockwait_nonblocking) }
      : { name: "sem_timedwait", ...bunSignature({ args: ["pointer", "pointer"], result: "i32" }) },
    errnoLocation: { name: platform.errnoLocation, ...bunSignature(SYMBOLS.errno_location) },
    clock: clockwait ? platform.constants.CLOCK_MONOTONIC : -1,
    EINTR: platform.errno.EINTR!,
    timespecSize: TIMESPEC.size,
    sec: TIMESPEC.fields["tv_sec"]!,
    nsec: TIMESPEC.fields["tv_nsec"]!,
  };
}

function spawnWorker(): Parked | undefined {
  const WorkerClass = (globalThis as { Worker?: new (url: string) => BunWorker }).Worker;
  if (WorkerClass === undefined) return undefined;
  url ??= URL.createObjectURL(
    new Blob([`(${semWorkerMain.toString()})();`], { type: "application/javascript" }),
  );
  const parked: Parked = {
    worker: new WorkerClass(url),
    settle: null,
    fail: null,
    dead: false,
  };
  parked.worker.onmessage = (event: MessageEvent) => {
    const settle = parked.settle;
    parked.settle = null;
    parked.fail = null;
    settle?.(event.data as Reply);
  };
  parked.worker.onerror = (event: Event) => {
    const fail = parked.fail;
    parked.settle = null;
    parked.fail = null;
    const at = idle.indexOf(parked);
    if (at >= 0) idle.splice(at, 1);
    live--;
    parked.dead = true;
    parked.worker.terminate();
    fail?.(new Error(`Cannot wait: the semaphore Worker failed: ${(event as ErrorEvent).message}`));
  };
  parked.worker.postMessage(init());
  live++;
  return parked;
}

/**
 * One blocking wait in a pooled Worker until the absolute deadline (on
 * {@linkcode workerClock}): `[result, errno]`, or undefined when every
 * Worker is taken.
 */
export async function semWaitInWorker(
  address: number,
  sec: number,
  nsec: number,
): Promise<Reply | undefined> {
  const parked = idle.pop() ?? (live < MAX_WORKERS ? spawnWorker() : undefined);
  if (parked === undefined) return undefined;
  parked.worker.ref?.();
  try {
    return await new Promise<Reply>((resolve, reject) => {
      parked.settle = resolve;
      parked.fail = reject;
      parked.worker.postMessage([address, sec, nsec] satisfies Request);
    });
  } finally {
    if (!parked.dead) {
      parked.worker.unref?.();
      idle.push(parked);
    }
  }
}

/**
 * One blocking wait of at most `sliceMs` on another thread: Deno's
 * nonblocking `sem_clockwait`, or (Bun) a pooled Worker. Resolves with the
 * call's result (0: a unit taken), or undefined when no thread is available.
 */
export async function blockOnce(
  address: number,
  argument: number,
  cell: Timespec,
  sliceMs: number,
): Promise<number | undefined> {
  const nonblocking = unsafeLibc.sem_clockwait_nonblocking;
  if (nonblocking !== undefined) {
    writeDeadline(cell, C.CLOCK_MONOTONIC, sliceMs);
    return await nonblocking(argument, C.CLOCK_MONOTONIC, cell.address);
  }
  if (backend.runtime !== "bun" || !workerCanWait) return undefined;
  writeDeadline(cell, workerClock, sliceMs);
  const [sec, nsec] = readDeadline(cell);
  return (await semWaitInWorker(address, sec, nsec))?.[0];
}
