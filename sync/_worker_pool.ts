/**
 * Internal, Bun and Node: the runtime-specific plumbing of the pools of
 * Workers that make blocking calls for the async waits (futex, POSIX and
 * System V semaphores), since these runtimes' FFI calls are synchronous only.
 *
 * A pool's body is a type-checked function shipped as its source text (so
 * bundling needs no extra file), started by {@linkcode workerPrelude}: the
 * prelude finds the port (Node: `parentPort`; Bun: the global scope), loads
 * the FFI, and hands the body a {@linkcode WorkerHost} that binds symbols
 * with numbers in and out on both runtimes. Idle Workers are unref'd so they
 * never keep the process alive. Node won't exit while a Worker is inside a
 * native call: a pool either wakes its calls in flight at exit or keeps them
 * short.
 *
 * @module
 */
import type { SymbolDefinition } from "../ffi/types.ts";
import { bunSignature } from "../ffi/bun_backend.ts";
import { nodeSignature } from "../ffi/node_backend.ts";
import { backend } from "../ffi/libc.ts";
import { nodeBuiltin, nodeProcess } from "../core/_runtime.ts";
import { platform } from "../platform/mod.ts";

/** A symbol as a Worker binds it: C name, this runtime's signature, which arguments are 64-bit. */
export interface WorkerSymbol {
  readonly name: string;
  readonly signature: object;
  /** Node: which arguments node:ffi takes as BigInt only. */
  readonly wide: readonly boolean[];
}

/** A struct field's place, as a Worker needs it. */
export interface WorkerField {
  readonly offset: number;
  readonly size: number;
}

/** `struct timespec`'s layout, as a Worker needs it (see {@linkcode timespecLayout}). */
export interface WorkerTimespecLayout {
  readonly size: number;
  readonly sec: WorkerField;
  readonly nsec: WorkerField;
}

/** This platform's `struct timespec` layout, to send in a Worker's init. */
export function timespecLayout(): WorkerTimespecLayout {
  const timespec = platform.structs.timespec;
  return {
    size: timespec.size,
    sec: timespec.fields["tv_sec"]!,
    nsec: timespec.fields["tv_nsec"]!,
  };
}

/** A `struct timespec` a Worker owns: its address, and a setter of both fields. */
export interface WorkerTimespec {
  readonly address: number;
  set(sec: number, nsec: number): void;
}

/** What a Worker's body gets from the prelude. */
export interface WorkerHost {
  readonly runtime: "bun" | "node";
  /** Binds symbols that take numbers (addresses too) or typed arrays and return numbers. */
  bind(
    library: string,
    symbols: Readonly<Record<string, WorkerSymbol>>,
  ): Record<string, (...args: (number | Uint8Array)[]) => number>;
  /** A no-copy view of the 4 bytes at `address` (errno's cell). */
  int32At(address: number): Int32Array;
  /** The address of a view's first byte. */
  addressOf(view: Uint8Array): number;
  /** A zeroed `struct timespec` of this layout, kept alive by the returned object. */
  timespec(layout: WorkerTimespecLayout): WorkerTimespec;
}

/** A Worker's body: given the host and its first message, returns how it serves a request. */
export type WorkerMain<I, R, P> = (
  host: WorkerHost,
  init: I,
  reply: (message: P) => void,
) => (request: R) => void;

/** The (bun | node, init) pair the prelude receives first. */
type Start<I> = { readonly runtime: "bun" | "node"; readonly init: I };

/**
 * Runs in the Worker, from its source text: self-contained (no imports, no
 * outer names). Requests that arrive before the FFI is loaded are queued.
 */
function workerPrelude<I, R, P>(main: WorkerMain<I, R, P>): void {
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
  type Port = { postMessage(m: unknown): void; on(e: string, f: (d: unknown) => void): void };
  const scope = globalThis as unknown as {
    onmessage: ((event: { data: unknown }) => void) | null;
    postMessage(message: unknown): void;
    process?: { getBuiltinModule?(id: string): unknown };
  };
  // Node's worker_threads talk through parentPort; Bun's Workers through the global scope.
  const threads = "Bun" in globalThis
    ? undefined
    : scope.process?.getBuiltinModule?.("node:worker_threads") as
      | { parentPort: Port | null }
      | undefined;
  const port = threads?.parentPort ?? undefined;
  const post = port !== undefined
    ? (message: P) => port.postMessage(message)
    : (message: P) => scope.postMessage(message);
  const queued: R[] = [];
  let serve: ((request: R) => void) | undefined;
  const receive = (data: unknown): void => {
    if (serve !== undefined) serve(data as R);
    else if (Array.isArray(data)) queued.push(data as R);
    else void start(data as Start<I>);
  };
  if (port !== undefined) port.on("message", receive);
  else scope.onmessage = (event) => receive(event.data);

  async function start({ runtime, init }: Start<I>): Promise<void> {
    const node = runtime === "node";
    const specifier = node ? "node:ffi" : "bun:ffi";
    const ffi = (await import(specifier)) as Ffi;
    const host: WorkerHost = {
      runtime,
      bind(library, symbols): Record<string, (...args: (number | Uint8Array)[]) => number> {
        const defs: Record<string, object> = {};
        for (const symbol of Object.values(symbols)) defs[symbol.name] = symbol.signature;
        const opened = ffi.dlopen(library, defs);
        const raw = (node ? opened.functions : opened.symbols)!;
        const out: Record<string, (...args: (number | Uint8Array)[]) => number> = {};
        for (const [key, symbol] of Object.entries(symbols)) {
          const fn = raw[symbol.name]!;
          // node:ffi takes 64-bit integers and addresses as BigInt only, refuses -0.
          out[key] = node
            ? (...args) =>
              Number(
                fn(...args.map((a, i) =>
                  typeof a !== "number" ? a : symbol.wide[i] ? BigInt(a) : a + 0
                )),
              )
            : (...args) => fn(...args) as number;
        }
        return out;
      },
      int32At: (address) =>
        new Int32Array(
          node ? ffi.toArrayBuffer(BigInt(address), 4, false) : ffi.toArrayBuffer(address, 0, 4),
        ),
      addressOf: (view) => node ? Number(ffi.getRawPointer!(view)) : ffi.ptr!(view),
      timespec(layout): WorkerTimespec {
        const bytes = new Uint8Array(new ArrayBuffer(layout.size));
        const view = new DataView(bytes.buffer);
        const put = (field: WorkerField, value: number): void => {
          if (field.size === 8) view.setBigInt64(field.offset, BigInt(value), true);
          else view.setInt32(field.offset, value, true);
        };
        return {
          address: host.addressOf(bytes),
          set(sec, nsec): void {
            put(layout.sec, sec);
            put(layout.nsec, nsec);
          },
        };
      },
    };
    serve = main(host, init, post);
    for (const request of queued.splice(0)) serve(request);
  }
}

/** A symbol of `ffi/symbols.ts` translated for a Worker of this runtime, bound as `name`. */
export function workerSymbol(name: string, def: SymbolDefinition): WorkerSymbol {
  const node = backend.runtime === "node";
  return {
    name,
    signature: node ? nodeSignature(def) : bunSignature(def),
    wide: def.args.map((a) => a !== "f64" && !/^[iu](8|16|32)$/.test(a) && a !== "void"),
  };
}

/** What a pool needs of a Worker, Bun's or Node's (ref/unref are theirs, not the web's). */
export interface PoolWorker {
  postMessage(message: unknown): void;
  terminate(): void;
  ref?(): void;
  unref?(): void;
}

interface BunWorker extends PoolWorker {
  onmessage: ((event: MessageEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
}

interface NodeWorker extends PoolWorker {
  on(event: "message", listener: (data: unknown) => void): void;
  on(event: "error", listener: (error: Error) => void): void;
}

type NodeWorkerClass = new (source: string, options: { eval: true }) => NodeWorker;

const bunUrls = new Map<string, string>();

/** Whether this runtime runs the pools (Bun, Node with worker_threads). */
export function poolsAvailable(): boolean {
  if (backend.runtime === "node") return nodeBuiltin("node:worker_threads") !== undefined;
  return backend.runtime === "bun" && "Worker" in globalThis;
}

/**
 * A new Worker running `main` (self-contained, shipped as source) with
 * `init`, wired to `onReply` and `onError`; undefined where there are none.
 */
export function startWorker<I, R, P>(
  main: WorkerMain<I, R, P>,
  init: I,
  onReply: (reply: P) => void,
  onError: (message: string) => void,
): PoolWorker | undefined {
  const source = `(${workerPrelude.toString()})(${main.toString()});`;
  if (backend.runtime === "node") {
    const threads = nodeBuiltin<{ Worker: NodeWorkerClass }>("node:worker_threads");
    if (threads === undefined) return undefined;
    const worker = new threads.Worker(source, { eval: true });
    worker.on("message", (data) => onReply(data as P));
    worker.on("error", (error) => onError(error.message));
    worker.postMessage({ runtime: "node", init } satisfies Start<I>);
    return worker;
  }
  const WorkerClass = (globalThis as { Worker?: new (url: string) => BunWorker }).Worker;
  if (WorkerClass === undefined) return undefined;
  let url = bunUrls.get(source);
  if (url === undefined) {
    url = URL.createObjectURL(new Blob([source], { type: "application/javascript" }));
    bunUrls.set(source, url);
  }
  const worker = new WorkerClass(url);
  worker.onmessage = (event: MessageEvent) => onReply(event.data as P);
  worker.onerror = (event: Event) => onError(String((event as ErrorEvent).message));
  worker.postMessage({ runtime: "bun", init } satisfies Start<I>);
  return worker;
}

/** Node: runs `listener` when the process exits (to wake calls in flight); elsewhere nothing. */
export function onNodeExit(listener: () => void): void {
  if (backend.runtime !== "node" || nodeProcess === undefined) return;
  nodeProcess.on("exit", listener);
}

interface Parked<R, P> {
  readonly worker: PoolWorker;
  settle: ((message: P) => void) | null;
  fail: ((error: Error) => void) | null;
  /** The request in flight, else undefined. */
  request: R | undefined;
}

/**
 * A pool of at most `max` Workers running `main`. {@linkcode WorkerPool.run}
 * gives "busy" when every one is taken; `onExit` (Node) gets the requests
 * in flight when the process exits.
 */
export class WorkerPool<I, R, P> {
  readonly #idle: Parked<R, P>[] = [];
  readonly #busy = new Set<Parked<R, P>>();
  #live = 0;
  #exitWatched = false;

  readonly #what: string;
  readonly #main: WorkerMain<I, R, P>;
  readonly #init: () => I;
  readonly #max: number;
  readonly #onExit: ((inFlight: R) => void) | undefined;

  constructor(
    what: string,
    main: WorkerMain<I, R, P>,
    init: () => I,
    max: number,
    onExit?: (inFlight: R) => void,
  ) {
    this.#what = what;
    this.#main = main;
    this.#init = init;
    this.#max = max;
    this.#onExit = onExit;
  }

  /** How many Workers exist and how many are idle (for tests). */
  counts(): { live: number; idle: number } {
    return { live: this.#live, idle: this.#idle.length };
  }

  /** One request on a pooled Worker: its reply, or "busy". */
  async run(request: R): Promise<P | "busy"> {
    const parked = this.#idle.pop() ?? (this.#live < this.#max ? this.#spawn() : undefined);
    if (parked === undefined) return "busy";
    parked.worker.ref?.();
    this.#busy.add(parked);
    try {
      return await new Promise<P>((resolve, reject) => {
        parked.settle = resolve;
        parked.fail = reject;
        parked.request = request;
        parked.worker.postMessage(request);
      });
    } finally {
      if (this.#busy.delete(parked)) {
        parked.request = undefined;
        // An idle Worker must not keep the process alive.
        parked.worker.unref?.();
        this.#idle.push(parked);
      }
    }
  }

  #spawn(): Parked<R, P> | undefined {
    const parked: Parked<R, P> = {
      worker: undefined as unknown as PoolWorker,
      settle: null,
      fail: null,
      request: undefined,
    };
    const worker = startWorker(
      this.#main,
      this.#init(),
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
        this.#retire(parked);
        fail?.(new Error(`Cannot wait: the ${this.#what} Worker failed: ${message}`));
      },
    );
    if (worker === undefined) return undefined;
    (parked as { worker: PoolWorker }).worker = worker;
    this.#watchExit();
    this.#live++;
    return parked;
  }

  #retire(parked: Parked<R, P>): void {
    const at = this.#idle.indexOf(parked);
    if (at >= 0) this.#idle.splice(at, 1);
    this.#busy.delete(parked);
    this.#live--;
    parked.worker.terminate();
  }

  #watchExit(): void {
    const onExit = this.#onExit;
    if (this.#exitWatched || onExit === undefined) return;
    this.#exitWatched = true;
    onNodeExit(() => {
      for (const parked of this.#busy) {
        if (parked.request !== undefined) onExit(parked.request);
      }
    });
  }
}
