/**
 * Waiting for file descriptors to become ready — `poll(2)` — without blocking
 * the event loop, in all three runtimes. Child processes use it for their
 * pipes, and under Bun for their pidfds (readable when the child exits; Deno
 * and Node learn of exits from SIGCHLD instead, see `_exit_watch.ts`).
 *
 * One `poll` covers every fd being waited for, plus a wake pipe that
 * interrupts it when the set changes:
 *
 * - Deno: the `poll` runs on Deno's blocking-call thread (a `nonblocking`
 *   FFI symbol), one call in flight at a time.
 * - Bun: FFI calls are synchronous, so a dedicated Worker blocks in `poll`
 *   and posts which fds are ready; the set travels in a SharedArrayBuffer.
 *   Measured on a 2-core VM, spawn + wait of /bin/true this way costs about
 *   100 us more than a blocking `waitpid`, where polling `waitpid(WNOHANG)`
 *   on a 1 ms timer costs about 700 us more, and a SIGCHLD listener
 *   (`process.on("SIGCHLD")`) about 2 ms more and much CPU.
 * - Node: the same, with a worker_threads Worker. Node won't exit while the
 *   worker is inside `poll`, so at exit the worker is told to stop and woken.
 * - Anywhere else, or when the Worker can't start: `poll` with a zero
 *   timeout on a timer that backs off from 1 ms to 50 ms.
 *
 * A wait may report readiness that is gone by the time the caller acts (a
 * closed fd's number reused, a duplicate report): callers re-check with a
 * nonblocking call and wait again.
 *
 * @module
 */
import { backend, unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { check } from "../core/errors.ts";
import { nodeBuiltin, nodeProcess, setTimerRef } from "../core/_runtime.ts";

const C = platform.constants;
const POLLFD = platform.structs.pollfd;
const FD_AT = POLLFD.fields.fd!.offset;
const EVENTS_AT = POLLFD.fields.events!.offset;
const REVENTS_AT = POLLFD.fields.revents!.offset;
const ALWAYS = C.POLLERR | C.POLLHUP | C.POLLNVAL;

/** A pending wait for one fd. */
export interface ReadyWait {
  /** Resolves with the `revents` poll reported, once the fd is ready. Never rejects. */
  readonly promise: Promise<number>;
  /** Stops waiting; the promise then never settles. Idempotent. */
  cancel(): void;
  /** Whether this wait keeps the process alive (default true). */
  ref: boolean;
}

interface Registration {
  readonly fd: number;
  readonly events: number;
  ref: boolean;
  resolve(revents: number): void;
}

/** How waits are carried out in this runtime. */
interface Engine {
  /** Called after every change of the registration set. */
  update(): void;
  /** Stops any pending timer or call that no longer has a reason to run. */
  stop?(): void;
  /** Which engine this is, for tests and docs. */
  readonly name: "deno-nonblocking" | "bun-worker" | "node-worker" | "timer";
}

const registrations = new Set<Registration>();
let engine: Engine | undefined;

/**
 * Waits until `fd` is ready for `events` (`POLLIN`, `POLLOUT`), or has an
 * error or hang-up.
 *
 * @param fd The file descriptor; it must stay open while the wait is pending.
 * @param events `POLLIN` and/or `POLLOUT` from `platform.constants`.
 * @param ref Whether the pending wait keeps the process alive.
 */
export function waitReady(fd: number, events: number, ref = true): ReadyWait {
  let resolve!: (revents: number) => void;
  const promise = new Promise<number>((r) => (resolve = r));
  const registration: Registration = {
    fd,
    events,
    ref,
    resolve: (revents) => {
      registrations.delete(registration);
      resolve(revents);
    },
  };
  registrations.add(registration);
  (engine ??= createEngine()).update();
  return {
    promise,
    cancel(): void {
      if (registrations.delete(registration)) engine!.update();
    },
    get ref() {
      return registration.ref;
    },
    set ref(value: boolean) {
      if (registration.ref === value) return;
      registration.ref = value;
      if (registrations.has(registration)) engine!.update();
    },
  };
}

/** The engine in use ("deno-nonblocking", "bun-worker", "node-worker" or "timer"), creating it if needed. */
export function reactorEngine(): string {
  return (engine ??= createEngine()).name;
}

/**
 * For tests: use the timer engine (the fallback when nothing better works)
 * until the returned function is called.
 */
export function useTimerEngineForTesting(): () => void {
  const previous = engine;
  engine = createTimerEngine();
  engine.update();
  return () => {
    engine!.stop?.();
    engine = previous;
    engine?.update();
  };
}

function createEngine(): Engine {
  if (backend.nonblocking && unsafeLibc.poll_nonblocking !== undefined) {
    return createDenoEngine(unsafeLibc.poll_nonblocking);
  }
  if (backend.runtime === "bun" || backend.runtime === "node") {
    try {
      return createWorkerEngine(backend.runtime);
    } catch {
      // A sandbox without Workers: poll on a timer.
    }
  }
  return createTimerEngine();
}

/** A pollfd array for some registrations, after `prefix` fds. */
function pollfds(
  prefix: readonly number[],
  regs: readonly Registration[],
): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(new ArrayBuffer((prefix.length + regs.length) * POLLFD.size));
  const view = new DataView(bytes.buffer);
  let i = 0;
  for (const fd of prefix) {
    view.setInt32(i * POLLFD.size + FD_AT, fd, true);
    view.setInt16(i * POLLFD.size + EVENTS_AT, C.POLLIN, true);
    i++;
  }
  for (const reg of regs) {
    view.setInt32(i * POLLFD.size + FD_AT, reg.fd, true);
    view.setInt16(i * POLLFD.size + EVENTS_AT, reg.events, true);
    i++;
  }
  return bytes;
}

/** Resolves every registration whose fd is reported ready. */
function dispatch(ready: ReadonlyMap<number, number>): void {
  if (ready.size === 0) return;
  for (const reg of [...registrations]) {
    const revents = ready.get(reg.fd);
    if (revents !== undefined && (revents & (reg.events | ALWAYS)) !== 0) reg.resolve(revents);
  }
}

function readyIn(bytes: Uint8Array, from: number): Map<number, number> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ready = new Map<number, number>();
  for (let i = from; i < bytes.byteLength / POLLFD.size; i++) {
    const revents = view.getInt16(i * POLLFD.size + REVENTS_AT, true);
    if (revents !== 0) {
      const fd = view.getInt32(i * POLLFD.size + FD_AT, true);
      ready.set(fd, (ready.get(fd) ?? 0) | revents);
    }
  }
  return ready;
}

function wakePipe(): [number, number] {
  const fds = new Int32Array(2);
  check(unsafeLibc.pipe2(fds, C.O_CLOEXEC | C.O_NONBLOCK), "pipe2");
  return [fds[0]!, fds[1]!];
}

const ONE = new Uint8Array(1);
const DRAIN = new Uint8Array(256);

function drain(fd: number): void {
  while (unsafeLibc.read(fd, DRAIN, DRAIN.length) === DRAIN.length) {
    // keep reading until the pipe is empty
  }
}

type PollAsync = (fds: ArrayBufferView | null, nfds: number, timeout: number) => Promise<number>;

/** Deno: one `poll` at a time on Deno's blocking-call thread. */
function createDenoEngine(pollAsync: PollAsync): Engine {
  const [wakeRead, wakeWrite] = wakePipe();
  let inFlight: readonly Registration[] | undefined;
  let woken = false;
  const timer = createTimerEngine();

  function arm(): void {
    const regs = [...registrations];
    if (!regs.some((r) => r.ref)) {
      // Nothing keeps the process alive: an in-flight call would, so check on an unref'd timer.
      timer.update();
      return;
    }
    timer.stop!();
    const bytes = pollfds([wakeRead], regs);
    inFlight = regs;
    woken = false;
    pollAsync(bytes, regs.length + 1, -1).then((result) => {
      inFlight = undefined;
      // A failed poll (EINTR) has no revents: the loop re-arms.
      if (result > 0) {
        if (new DataView(bytes.buffer).getInt16(REVENTS_AT, true) !== 0) drain(wakeRead);
        dispatch(readyIn(bytes, 1));
      }
      if (registrations.size > 0) arm();
    });
  }

  return {
    name: "deno-nonblocking",
    update(): void {
      if (inFlight === undefined) {
        if (registrations.size > 0) arm();
        return;
      }
      // A poll is running with an older set: make it return, and it re-arms.
      if (!woken) {
        woken = true;
        unsafeLibc.write(wakeWrite, ONE, 1);
      }
    },
  };
}

/** Anywhere: `poll(fds, n, 0)` on a timer backing off from 1 ms to 50 ms. */
function createTimerEngine(): Engine {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let delay = 1;
  let timerRef = false;

  function schedule(): void {
    const anyRef = [...registrations].some((r) => r.ref);
    if (timer !== undefined && timerRef === anyRef) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(tick, delay);
    timerRef = anyRef;
    if (!anyRef) unrefTimer(timer);
  }

  function tick(): void {
    timer = undefined;
    const regs = [...registrations];
    if (regs.length === 0) return;
    const bytes = pollfds([], regs);
    const result = unsafeLibc.poll(bytes, regs.length, 0);
    const ready = result > 0 ? readyIn(bytes, 0) : new Map<number, number>();
    dispatch(ready);
    delay = ready.size > 0 ? 1 : Math.min(delay * 2, 50);
    if (registrations.size > 0) schedule();
  }

  function stop(): void {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  }

  return {
    name: "timer",
    update(): void {
      if (registrations.size === 0) return stop();
      delay = 1;
      schedule();
    },
    stop,
  };
}

function unrefTimer(timer: ReturnType<typeof setTimeout>): void {
  setTimerRef(timer, false);
}

/** What the waiter Worker gets at start. */
interface WorkerInit {
  readonly runtime: "bun" | "node";
  readonly library: string;
  readonly shared: SharedArrayBuffer;
  readonly wakeFd: number;
  readonly pollfdSize: number;
  readonly fdAt: number;
  readonly eventsAt: number;
  readonly reventsAt: number;
  readonly pollin: number;
  /** The shared word that, once non-zero, tells the Worker to return. */
  readonly stop: number;
  /** Where the (fd, events) pairs start in the shared set. */
  readonly header: number;
}

// Shared set layout (Int32): [0] lock, [1] generation, [2] count, [3] stop, then (fd, events) pairs.
const HEADER = 4;
const STOP = 3;
const CAPACITY = 16384;

/**
 * The waiter Worker's body (Bun, Node): block in `poll` on the shared set,
 * post the ready fds. It must be self-contained (it runs from its source text).
 */
function waiterWorker(): void {
  type Call = (...args: unknown[]) => number | bigint;
  interface Ffi {
    dlopen(path: string, defs: Record<string, object>): {
      symbols?: Record<string, Call>;
      functions?: Record<string, Call>;
    };
  }
  const scope = globalThis as unknown as {
    onmessage: ((event: { data: WorkerInit }) => void) | null;
    postMessage(message: unknown): void;
    process?: { getBuiltinModule?(id: string): unknown };
  };
  // Node's worker_threads talk through parentPort; Bun's Workers through the global scope.
  const threads = "Bun" in globalThis
    ? undefined
    : scope.process?.getBuiltinModule?.("node:worker_threads") as {
      parentPort: { postMessage(m: unknown): void; once(e: string, f: (d: unknown) => void): void };
    } | undefined;
  const post = threads === undefined
    ? (message: unknown) => scope.postMessage(message)
    : (message: unknown) => threads.parentPort.postMessage(message);
  if (threads === undefined) {
    scope.onmessage = (event) => {
      scope.onmessage = null;
      void serve(event.data);
    };
  } else {
    threads.parentPort.once("message", (data) => void serve(data as WorkerInit));
  }
  async function serve(init: WorkerInit): Promise<void> {
    const node = init.runtime === "node";
    const specifier = node ? "node:ffi" : "bun:ffi";
    const ffi = (await import(specifier)) as Ffi;
    // node:ffi's signatures are { return, arguments }, its 64-bit arguments BigInts.
    const opened = ffi.dlopen(
      init.library,
      node
        ? {
          poll: { arguments: ["pointer", "u64", "i32"], return: "i32" },
          read: { arguments: ["i32", "pointer", "u64"], return: "i64" },
        }
        : {
          poll: { args: ["ptr", "u64", "i32"], returns: "i32" },
          read: { args: ["i32", "ptr", "u64"], returns: "i64" },
        },
    );
    const raw = (node ? opened.functions : opened.symbols)!;
    const wide = (n: number): number | bigint => node ? BigInt(n) : n;
    const libc = {
      poll: (fds: Uint8Array, n: number, timeout: number) =>
        Number(raw.poll!(fds, wide(n), timeout)),
      read: (fd: number, buffer: Uint8Array, length: number) =>
        Number(raw.read!(fd, buffer, wide(length))),
    };
    const shared = new Int32Array(init.shared);
    const drained = new Uint8Array(256);
    post("ready");
    let generation = -1;
    let watched: number[] = []; // fd, events pairs
    for (;;) {
      // The process is exiting: return, so the Worker can be stopped.
      if (Atomics.load(shared, init.stop) !== 0) return;
      // Reload the set when the main thread changed it.
      while (Atomics.compareExchange(shared, 0, 0, 1) !== 0) {
        // The main thread holds the lock for a few instructions.
      }
      if (Atomics.load(shared, 1) !== generation) {
        generation = Atomics.load(shared, 1);
        const count = Atomics.load(shared, 2);
        watched = Array.from(shared.subarray(init.header, init.header + 2 * count));
      }
      Atomics.store(shared, 0, 0);

      const n = watched.length / 2 + 1;
      const bytes = new Uint8Array(new ArrayBuffer(n * init.pollfdSize));
      const view = new DataView(bytes.buffer);
      view.setInt32(init.fdAt, init.wakeFd, true);
      view.setInt16(init.eventsAt, init.pollin, true);
      for (let i = 1; i < n; i++) {
        view.setInt32(i * init.pollfdSize + init.fdAt, watched[2 * (i - 1)]!, true);
        view.setInt16(i * init.pollfdSize + init.eventsAt, watched[2 * (i - 1) + 1]!, true);
      }
      if (libc.poll(bytes, n, -1) <= 0) continue; // EINTR
      if (view.getInt16(init.reventsAt, true) !== 0) {
        while (libc.read(init.wakeFd, drained, drained.length) === drained.length) {
          // empty the wake pipe
        }
      }
      const ready: number[] = [];
      const still: number[] = [];
      for (let i = 1; i < n; i++) {
        const revents = view.getInt16(i * init.pollfdSize + init.reventsAt, true);
        const fd = watched[2 * (i - 1)]!;
        const events = watched[2 * (i - 1) + 1]!;
        if (revents !== 0) ready.push(fd, revents);
        else still.push(fd, events);
      }
      // Reported fds are left out until the main thread sends a new set, or they'd spin.
      watched = still;
      if (ready.length > 0) post(ready);
    }
  }
}

/** The waiter Worker as the engine drives it, Bun's or Node's. */
interface WaiterWorker {
  postMessage(message: unknown): void;
  ref(): void;
  unref(): void;
}

/** Node's worker_threads Worker, as far as used here. */
interface NodeWorker extends WaiterWorker {
  on(event: "message", listener: (data: unknown) => void): void;
  on(event: "error", listener: (error: Error) => void): void;
}

/** Starts the waiter Worker, wired to `onMessage` and `onError`. */
function startWaiter(
  runtime: "bun" | "node",
  onMessage: (data: number[] | "ready") => void,
  onError: () => void,
): WaiterWorker {
  const source = `(${waiterWorker.toString()})();`;
  if (runtime === "node") {
    type NodeWorkerClass = new (source: string, options: { eval: true }) => NodeWorker;
    const threads = nodeBuiltin<{ Worker: NodeWorkerClass }>("node:worker_threads");
    if (threads === undefined) throw new Error("Cannot start a Worker: no worker_threads");
    const worker = new threads.Worker(source, { eval: true });
    worker.on("message", (data) => onMessage(data as number[] | "ready"));
    worker.on("error", onError);
    return worker;
  }
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const worker = new Worker(url) as Worker & { ref(): void; unref(): void };
  worker.onmessage = (event: MessageEvent<number[] | "ready">) => {
    // The source URL must live until the worker has loaded it.
    if (event.data === "ready") URL.revokeObjectURL(url);
    onMessage(event.data);
  };
  worker.onerror = (event: Event) => {
    event.preventDefault();
    onError();
  };
  return worker;
}

/** Bun, Node: a Worker blocks in `poll` and posts which fds are ready. */
function createWorkerEngine(runtime: "bun" | "node"): Engine {
  const [wakeRead, wakeWrite] = wakePipe();
  const sharedBuffer = new SharedArrayBuffer((HEADER + 2 * CAPACITY) * 4);
  const shared = new Int32Array(sharedBuffer);
  const init: WorkerInit = {
    runtime,
    library: platform.libraries[0]!,
    shared: sharedBuffer,
    wakeFd: wakeRead,
    pollfdSize: POLLFD.size,
    fdAt: FD_AT,
    eventsAt: EVENTS_AT,
    reventsAt: REVENTS_AT,
    pollin: C.POLLIN,
    stop: STOP,
    header: HEADER,
  };
  const worker = startWaiter(
    runtime,
    (data) => {
      if (data === "ready") return;
      const ready = new Map<number, number>();
      for (let i = 0; i < data.length; i += 2) ready.set(data[i]!, data[i + 1]!);
      dispatch(ready);
      // The worker dropped what it reported, so the set that is left needs no wake-up.
      update(false);
    },
    () => {
      // The worker could not start or died: carry on with the timer engine.
      worker.unref();
      engine = createTimerEngine();
      engine.update();
    },
  );
  worker.postMessage(init);
  if (runtime === "node") {
    // A worker inside poll() holds up Node's exit: tell it to return, then wake it.
    nodeProcess?.on("exit", () => {
      Atomics.store(shared, STOP, 1);
      unsafeLibc.write(wakeWrite, ONE, 1);
    });
  }
  let referenced = true;

  function update(wake = true): void {
    const regs = [...registrations];
    if (regs.length > CAPACITY) {
      throw new Error(`Cannot wait for more than ${CAPACITY} file descriptors at once`);
    }
    while (Atomics.compareExchange(shared, 0, 0, 1) !== 0) {
      // The worker holds the lock for a few instructions.
    }
    regs.forEach((reg, i) => {
      shared[HEADER + 2 * i] = reg.fd;
      shared[HEADER + 2 * i + 1] = reg.events;
    });
    Atomics.store(shared, 2, regs.length);
    Atomics.add(shared, 1, 1);
    Atomics.store(shared, 0, 0);
    if (wake) unsafeLibc.write(wakeWrite, ONE, 1);
    const anyRef = regs.some((r) => r.ref);
    if (anyRef !== referenced) {
      referenced = anyRef;
      if (anyRef) worker.ref();
      else worker.unref();
    }
  }

  return { name: runtime === "node" ? "node-worker" : "bun-worker", update: () => update() };
}
