/**
 * Internal, Bun: a pool of Workers that block in `futex(FUTEX_WAIT)` for
 * `waitAsync`, since Bun's FFI calls are synchronous only.
 *
 * The Worker's body is {@linkcode futexWorkerMain}, a type-checked function
 * shipped as its source text (so bundling needs no extra file). It binds the
 * symbols the main thread sends it, translated from the one table in
 * `ffi/symbols.ts`, and reads its own errno (it made the call). Idle Workers
 * are unref'd so they never keep the process alive.
 *
 * @module
 */
import { platform } from "../platform/mod.ts";
import { SYMBOLS } from "../ffi/symbols.ts";
import { type BunSignature, bunSignature } from "../ffi/bun_backend.ts";
import type { WaitResult } from "./_futex.ts";

const C = platform.constants;
const E = platform.errno;
const TIMESPEC = platform.structs.timespec;

/** A struct field's place, as the Worker needs it. */
interface Field {
  readonly offset: number;
  readonly size: number;
}

/** What a futex Worker gets in its first message. */
interface FutexWorkerInit {
  readonly library: string;
  readonly syscall: BunSignature & { readonly name: string };
  readonly errnoLocation: BunSignature & { readonly name: string };
  readonly SYS_futex: number;
  readonly FUTEX_WAIT: number;
  readonly EAGAIN: number;
  readonly ETIMEDOUT: number;
  readonly EINTR: number;
  readonly timespecSize: number;
  readonly sec: Field;
  readonly nsec: Field;
}

/** A wait request: address, expected value, timeout in ms (-1: none). */
type Request = readonly [number, number, number];

/** The Worker's reply: 0 woken, 1 EAGAIN, 2 ETIMEDOUT, 3 another errno (second element). */
type Reply = readonly [number, number];

/**
 * The Worker's body. It runs from its source text, so it must be
 * self-contained: no imports, no outer names.
 */
function futexWorkerMain(): void {
  interface Ffi {
    dlopen(path: string, defs: Record<string, { args: string[]; returns: string }>): {
      symbols: Record<string, (...args: unknown[]) => number>;
    };
    toArrayBuffer(address: number, offset: number, length: number): ArrayBuffer;
    ptr(view: ArrayBufferView): number;
  }
  const scope = globalThis as unknown as {
    onmessage: ((event: { data: FutexWorkerInit | Request }) => void) | null;
    postMessage(message: Reply): void;
  };
  const queued: Request[] = [];
  let serve: ((request: Request) => void) | undefined;
  scope.onmessage = (event) => {
    const data = event.data;
    if (!Array.isArray(data)) {
      void start(data as FutexWorkerInit);
    } else if (serve === undefined) {
      queued.push(data as Request);
    } else {
      serve(data as Request);
    }
  };

  async function start(init: FutexWorkerInit): Promise<void> {
    const specifier = "bun:ffi";
    const ffi = (await import(specifier)) as Ffi;
    const { name: syscallName, ...syscallDef } = init.syscall;
    const { name: errnoName, ...errnoDef } = init.errnoLocation;
    const libc = ffi.dlopen(init.library, { [syscallName]: syscallDef, [errnoName]: errnoDef })
      .symbols;
    const syscall = libc[syscallName]!;
    const errnoCell = new Int32Array(ffi.toArrayBuffer(libc[errnoName]!(), 0, 4));
    const ts = new Uint8Array(new ArrayBuffer(init.timespecSize));
    const tsView = new DataView(ts.buffer);
    const tsAddress = ffi.ptr(ts);
    const put = (field: Field, value: number): void => {
      if (field.size === 8) tsView.setBigInt64(field.offset, BigInt(value), true);
      else tsView.setInt32(field.offset, value, true);
    };
    serve = ([address, expected, timeoutMs]) => {
      const deadline = timeoutMs < 0 ? Infinity : performance.now() + timeoutMs;
      for (;;) {
        let timeout = 0;
        if (deadline !== Infinity) {
          const ms = Math.max(0, deadline - performance.now());
          const sec = Math.floor(ms / 1000);
          put(init.sec, sec);
          put(init.nsec, Math.min(999_999_999, Math.floor((ms - sec * 1000) * 1e6)));
          timeout = tsAddress;
        }
        const r = syscall(init.SYS_futex, address, init.FUTEX_WAIT, expected, timeout, 0, 0);
        if (r === 0) return scope.postMessage([0, 0]);
        const code = errnoCell[0]!;
        if (code === init.EAGAIN) return scope.postMessage([1, 0]);
        if (code === init.ETIMEDOUT) return scope.postMessage([2, 0]);
        if (code !== init.EINTR) return scope.postMessage([3, code]);
      }
    };
    for (const request of queued.splice(0)) serve(request);
  }
}

/** The Worker interface as Bun has it (ref/unref are Bun's). */
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
}

/** Most Workers blocked at once; further waits poll with backoff instead. */
const MAX_WORKERS = 32;
const idleWorkers: Parked[] = [];
let liveWorkers = 0;
let workerUrl: string | undefined;

function workerInit(): FutexWorkerInit {
  return {
    library: platform.libraries[0]!,
    syscall: { name: "syscall", ...bunSignature(SYMBOLS.syscall) },
    errnoLocation: { name: platform.errnoLocation, ...bunSignature(SYMBOLS.errno_location) },
    SYS_futex: C.SYS_futex,
    FUTEX_WAIT: C.FUTEX_WAIT,
    EAGAIN: E.EAGAIN!,
    ETIMEDOUT: E.ETIMEDOUT!,
    EINTR: E.EINTR!,
    timespecSize: TIMESPEC.size,
    sec: TIMESPEC.fields["tv_sec"]!,
    nsec: TIMESPEC.fields["tv_nsec"]!,
  };
}

function spawnWorker(): Parked | undefined {
  const WorkerClass = (globalThis as { Worker?: new (url: string) => BunWorker }).Worker;
  if (WorkerClass === undefined) return undefined;
  workerUrl ??= URL.createObjectURL(
    new Blob([`(${futexWorkerMain.toString()})();`], { type: "application/javascript" }),
  );
  const parked: Parked = { worker: new WorkerClass(workerUrl), settle: null, fail: null };
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
    retire(parked);
    fail?.(
      new Error(`Cannot wait: the futex Worker failed: ${String((event as ErrorEvent).message)}`),
    );
  };
  parked.worker.postMessage(workerInit());
  liveWorkers++;
  return parked;
}

function retire(parked: Parked): void {
  const at = idleWorkers.indexOf(parked);
  if (at >= 0) idleWorkers.splice(at, 1);
  liveWorkers--;
  parked.worker.terminate();
}

function takeWorker(): Parked | undefined {
  const parked = idleWorkers.pop() ?? (liveWorkers < MAX_WORKERS ? spawnWorker() : undefined);
  parked?.worker.ref?.();
  return parked;
}

function parkWorker(parked: Parked): void {
  // An idle Worker must not keep the process alive.
  parked.worker.unref?.();
  idleWorkers.push(parked);
}

/**
 * One futex wait in a pooled Worker: the outcome, an errno number for a
 * lasting failure, or "busy" when every Worker is taken.
 */
export async function blockInWorker(
  address: number,
  expected: number,
  deadline: number,
): Promise<WaitResult | number | "busy"> {
  const parked = takeWorker();
  if (parked === undefined) return "busy";
  const timeout = deadline === Infinity ? -1 : Math.max(0, deadline - performance.now());
  const [outcome, code] = await new Promise<Reply>((resolve, reject) => {
    parked.settle = resolve;
    parked.fail = reject;
    parked.worker.postMessage([address, expected, timeout] satisfies Request);
  });
  parkWorker(parked);
  switch (outcome) {
    case 0:
      return "ok";
    case 1:
      // EAGAIN: the word changed after the wait began (it was checked equal).
      return "ok";
    case 2:
      return "timed-out";
    default:
      return code;
  }
}

/** How many futex Workers exist and how many are idle (Bun; for tests). */
export function futexWorkerCounts(): { live: number; idle: number } {
  return { live: liveWorkers, idle: idleWorkers.length };
}
