/**
 * Internal, Bun and Node: a pool of Workers (Node: worker_threads) that
 * block in `futex(FUTEX_WAIT)` for `waitAsync`, since these runtimes' FFI
 * calls are synchronous only.
 *
 * The Worker's body is {@linkcode futexWorkerMain}, a type-checked function
 * shipped as its source text (so bundling needs no extra file). It binds the
 * symbols the main thread sends it, translated from the one table in
 * `ffi/symbols.ts` by this runtime's backend, and reads its own errno (it
 * made the call). Idle Workers are unref'd so they never keep the process
 * alive. Node won't exit while a worker is inside a native call, so waits in
 * flight are woken when the process exits.
 *
 * @module
 */
import { platform } from "../platform/mod.ts";
import { SYMBOLS } from "../ffi/symbols.ts";
import type { SymbolDefinition } from "../ffi/types.ts";
import { bunSignature } from "../ffi/bun_backend.ts";
import { nodeSignature } from "../ffi/node_backend.ts";
import { backend, unsafeLibc } from "../ffi/libc.ts";
import { nodeBuiltin, nodeProcess } from "../core/_runtime.ts";
import type { WaitResult } from "./_futex.ts";

const C = platform.constants;
const E = platform.errno;
const TIMESPEC = platform.structs.timespec;

/** A struct field's place, as the Worker needs it. */
interface Field {
  readonly offset: number;
  readonly size: number;
}

/** A symbol as the Worker binds it: its C name and this runtime's signature. */
type WorkerSymbol = { readonly name: string; readonly signature: object };

/** What a futex Worker gets in its first message. */
interface FutexWorkerInit {
  readonly runtime: "bun" | "node";
  readonly library: string;
  readonly syscall: WorkerSymbol;
  readonly errnoLocation: WorkerSymbol;
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
  /** bun:ffi's dlopen/toArrayBuffer/ptr, node:ffi's dlopen/toArrayBuffer/getRawPointer. */
  interface Ffi {
    dlopen(path: string, defs: Record<string, object>): {
      symbols?: Record<string, (...args: unknown[]) => number | bigint>;
      functions?: Record<string, (...args: unknown[]) => number | bigint>;
    };
    toArrayBuffer(address: number | bigint, a: number, b: number | boolean): ArrayBuffer;
    ptr?(view: ArrayBufferView): number;
    getRawPointer?(view: ArrayBufferView): bigint;
  }
  const scope = globalThis as unknown as {
    onmessage: ((event: { data: FutexWorkerInit | Request }) => void) | null;
    postMessage(message: Reply): void;
    process?: { getBuiltinModule?(id: string): unknown };
  };
  // Node's worker_threads talk through parentPort; Bun's Workers through the global scope.
  const port = scope.process?.getBuiltinModule?.("node:worker_threads") as
    | { parentPort: { postMessage(m: Reply): void; on(e: string, f: (d: unknown) => void): void } }
    | undefined;
  const onNode = port !== undefined && !("Bun" in globalThis);
  const post = onNode
    ? (message: Reply) => port!.parentPort.postMessage(message)
    : (message: Reply) => scope.postMessage(message);
  const queued: Request[] = [];
  let serve: ((request: Request) => void) | undefined;
  const receive = (data: FutexWorkerInit | Request): void => {
    if (!Array.isArray(data)) {
      void start(data as FutexWorkerInit);
    } else if (serve === undefined) {
      queued.push(data as Request);
    } else {
      serve(data as Request);
    }
  };
  if (onNode) port!.parentPort.on("message", (data) => receive(data as FutexWorkerInit | Request));
  else scope.onmessage = (event) => receive(event.data);

  async function start(init: FutexWorkerInit): Promise<void> {
    const node = init.runtime === "node";
    const specifier = node ? "node:ffi" : "bun:ffi";
    const ffi = (await import(specifier)) as Ffi;
    const syscallName = init.syscall.name;
    const errnoName = init.errnoLocation.name;
    const opened = ffi.dlopen(init.library, {
      [syscallName]: init.syscall.signature,
      [errnoName]: init.errnoLocation.signature,
    });
    const libc = (node ? opened.functions : opened.symbols)!;
    const rawSyscall = libc[syscallName]!;
    // node:ffi takes and returns 64-bit integers as BigInt only.
    const syscall = node
      ? (...args: number[]) => Number(rawSyscall(...args.map(BigInt)))
      : (...args: number[]) => rawSyscall(...args) as number;
    const errnoAddress = libc[errnoName]!();
    const errnoCell = new Int32Array(
      node ? ffi.toArrayBuffer(errnoAddress, 4, false) : ffi.toArrayBuffer(errnoAddress, 0, 4),
    );
    const ts = new Uint8Array(new ArrayBuffer(init.timespecSize));
    const tsView = new DataView(ts.buffer);
    const tsAddress = node ? Number(ffi.getRawPointer!(ts)) : ffi.ptr!(ts);
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
        if (r === 0) return post([0, 0]);
        const code = errnoCell[0]!;
        if (code === init.EAGAIN) return post([1, 0]);
        if (code === init.ETIMEDOUT) return post([2, 0]);
        if (code !== init.EINTR) return post([3, code]);
      }
    };
    for (const request of queued.splice(0)) serve(request);
  }
}

/** What the pool needs of a Worker, Bun's or Node's (ref/unref are theirs, not the web's). */
interface PoolWorker {
  postMessage(message: unknown): void;
  terminate(): void;
  ref?(): void;
  unref?(): void;
}

/** The Worker interface as Bun has it. */
interface BunWorker extends PoolWorker {
  onmessage: ((event: MessageEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
}

/** Node's worker_threads Worker, as far as used here. */
interface NodeWorker extends PoolWorker {
  on(event: "message", listener: (data: unknown) => void): void;
  on(event: "error", listener: (error: Error) => void): void;
}

interface Parked {
  readonly worker: PoolWorker;
  settle: ((message: Reply) => void) | null;
  fail: ((error: Error) => void) | null;
  /** The word's address while a wait is in flight, else undefined. */
  address: number | undefined;
}

/** Most Workers blocked at once; further waits poll with backoff instead. */
const MAX_WORKERS = 32;
const idleWorkers: Parked[] = [];
let liveWorkers = 0;
let workerUrl: string | undefined;
const workerSource = (): string => `(${futexWorkerMain.toString()})();`;

function workerInit(runtime: "bun" | "node"): FutexWorkerInit {
  const translate = (def: SymbolDefinition): object =>
    runtime === "node" ? nodeSignature(def) : bunSignature(def);
  return {
    runtime,
    library: platform.libraries[0]!,
    syscall: { name: "syscall", signature: translate(SYMBOLS.syscall) },
    errnoLocation: { name: platform.errnoLocation, signature: translate(SYMBOLS.errno_location) },
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

type NodeWorkerClass = new (source: string, options: { eval: true }) => NodeWorker;

/** A new Worker running {@linkcode futexWorkerMain}, wired to `onReply` and `onError`. */
function startWorker(
  onReply: (reply: Reply) => void,
  onError: (message: string) => void,
): PoolWorker | undefined {
  if (backend.runtime === "node") {
    const threads = nodeBuiltin<{ Worker: NodeWorkerClass }>("node:worker_threads");
    if (threads === undefined) return undefined;
    const worker = new threads.Worker(workerSource(), { eval: true });
    worker.on("message", (data) => onReply(data as Reply));
    worker.on("error", (error) => onError(error.message));
    worker.postMessage(workerInit("node"));
    return worker;
  }
  const WorkerClass = (globalThis as { Worker?: new (url: string) => BunWorker }).Worker;
  if (WorkerClass === undefined) return undefined;
  workerUrl ??= URL.createObjectURL(
    new Blob([workerSource()], { type: "application/javascript" }),
  );
  const worker = new WorkerClass(workerUrl);
  worker.onmessage = (event: MessageEvent) => onReply(event.data as Reply);
  worker.onerror = (event: Event) => onError(String((event as ErrorEvent).message));
  worker.postMessage(workerInit("bun"));
  return worker;
}

function spawnWorker(): Parked | undefined {
  const parked: Parked = {
    worker: undefined as unknown as PoolWorker,
    settle: null,
    fail: null,
    address: undefined,
  };
  const worker = startWorker(
    (reply) => {
      const settle = parked.settle;
      parked.settle = null;
      parked.fail = null;
      settle?.(reply);
    },
    (message) => {
      const fail = parked.fail;
      parked.settle = null;
      parked.fail = null;
      retire(parked);
      fail?.(new Error(`Cannot wait: the futex Worker failed: ${message}`));
    },
  );
  if (worker === undefined) return undefined;
  (parked as { worker: PoolWorker }).worker = worker;
  watchExit();
  liveWorkers++;
  return parked;
}

const busyWorkers = new Set<Parked>();
let exitWatched = false;

/**
 * Node: a worker inside futex holds up process exit (and terminate()) until
 * the call returns, so waits in flight are woken at exit. The wake may reach
 * other waiters on those words too: futex waiters re-check, so it is spurious.
 */
function watchExit(): void {
  if (exitWatched || backend.runtime !== "node" || nodeProcess === undefined) return;
  exitWatched = true;
  nodeProcess.on("exit", () => {
    for (const parked of busyWorkers) {
      if (parked.address === undefined) continue;
      // EFAULT when the memory is gone: nobody waits there then.
      unsafeLibc.syscall(C.SYS_futex, parked.address, C.FUTEX_WAKE, 0x7fffffff, 0, 0, 0);
    }
  });
}

function retire(parked: Parked): void {
  const at = idleWorkers.indexOf(parked);
  if (at >= 0) idleWorkers.splice(at, 1);
  busyWorkers.delete(parked);
  liveWorkers--;
  parked.worker.terminate();
}

function takeWorker(): Parked | undefined {
  const parked = idleWorkers.pop() ?? (liveWorkers < MAX_WORKERS ? spawnWorker() : undefined);
  parked?.worker.ref?.();
  if (parked !== undefined) busyWorkers.add(parked);
  return parked;
}

function parkWorker(parked: Parked): void {
  busyWorkers.delete(parked);
  parked.address = undefined;
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
    parked.address = address;
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

/** How many futex Workers exist and how many are idle (Bun, Node; for tests). */
export function futexWorkerCounts(): { live: number; idle: number } {
  return { live: liveWorkers, idle: idleWorkers.length };
}
