/**
 * Internal, Bun: a pool of Workers that block in `semtimedop` for the
 * asynchronous semaphore waits, since Bun's FFI calls are synchronous only.
 * The same shape as `sync/_futex_worker.ts`: the body is a type-checked
 * function shipped as its source text; it binds its symbols from the one
 * table in `ffi/symbols.ts` and reads its own errno. Idle Workers are
 * unref'd so they never keep the process alive.
 *
 * @module
 */
import { platform } from "../platform/mod.ts";
import { SYMBOLS } from "../ffi/symbols.ts";
import { type BunSignature, bunSignature } from "../ffi/bun_backend.ts";

const TIMESPEC = platform.structs.timespec;

interface Field {
  readonly offset: number;
  readonly size: number;
}

interface SemWorkerInit {
  readonly library: string;
  readonly semtimedop: BunSignature;
  readonly errnoLocation: BunSignature & { readonly name: string };
  readonly EINTR: number;
  readonly timespecSize: number;
  readonly sec: Field;
  readonly nsec: Field;
}

/** A request: set id, encoded `struct sembuf[]`, count, timeout in ms. */
type Request = readonly [number, Uint8Array, number, number];

/** The reply: 0 done, or -1 and the errno. */
type Reply = readonly [number, number];

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
    const { name: errnoName, ...errnoDef } = init.errnoLocation;
    const libc = ffi.dlopen(init.library, { semtimedop: init.semtimedop, [errnoName]: errnoDef })
      .symbols;
    const semtimedop = libc["semtimedop"]!;
    const errnoCell = new Int32Array(ffi.toArrayBuffer(libc[errnoName]!(), 0, 4));
    const ts = new Uint8Array(new ArrayBuffer(init.timespecSize));
    const tsView = new DataView(ts.buffer);
    const put = (field: Field, value: number): void => {
      if (field.size === 8) tsView.setBigInt64(field.offset, BigInt(value), true);
      else tsView.setInt32(field.offset, value, true);
    };
    serve = ([id, ops, count, timeoutMs]) => {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const ms = Math.max(0, deadline - performance.now());
        const sec = Math.floor(ms / 1000);
        put(init.sec, sec);
        put(init.nsec, Math.min(999_999_999, Math.floor((ms - sec * 1000) * 1e6)));
        if (semtimedop(id, ops, count, ts) === 0) return scope.postMessage([0, 0]);
        const code = errnoCell[0]!;
        if (code !== init.EINTR) return scope.postMessage([-1, code]);
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
}

const MAX_WORKERS = 16;
const idle: Parked[] = [];
let live = 0;
let url: string | undefined;

function spawnWorker(): Parked | undefined {
  const WorkerClass = (globalThis as { Worker?: new (url: string) => BunWorker }).Worker;
  if (WorkerClass === undefined) return undefined;
  url ??= URL.createObjectURL(
    new Blob([`(${semWorkerMain.toString()})();`], { type: "application/javascript" }),
  );
  const parked: Parked = { worker: new WorkerClass(url), settle: null, fail: null };
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
    parked.worker.terminate();
    fail?.(new Error(`Cannot wait: the semaphore Worker failed: ${(event as ErrorEvent).message}`));
  };
  const init: SemWorkerInit = {
    library: platform.libraries[0]!,
    semtimedop: bunSignature(SYMBOLS.semtimedop),
    errnoLocation: { name: platform.errnoLocation, ...bunSignature(SYMBOLS.errno_location) },
    EINTR: platform.errno.EINTR!,
    timespecSize: TIMESPEC.size,
    sec: TIMESPEC.fields["tv_sec"]!,
    nsec: TIMESPEC.fields["tv_nsec"]!,
  };
  parked.worker.postMessage(init);
  live++;
  return parked;
}

/**
 * One `semtimedop` in a pooled Worker: 0, or the errno of the failure
 * (EAGAIN when the time ran out); "busy" when every Worker is taken.
 */
export async function semtimedopInWorker(
  id: number,
  ops: Uint8Array,
  timeoutMs: number,
): Promise<number | "busy"> {
  const parked = idle.pop() ?? (live < MAX_WORKERS ? spawnWorker() : undefined);
  if (parked === undefined) return "busy";
  parked.worker.ref?.();
  const count = ops.length / platform.structs.sembuf.size;
  const [result, code] = await new Promise<Reply>((resolve, reject) => {
    parked.settle = resolve;
    parked.fail = reject;
    parked.worker.postMessage([id, ops.slice(), count, timeoutMs] satisfies Request);
  });
  parked.worker.unref?.();
  idle.push(parked);
  return result === 0 ? 0 : code;
}
