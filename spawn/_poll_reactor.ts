/**
 * Waiting for file descriptors to become ready without blocking the event
 * loop, in all three runtimes. Child processes use it for their pipes, and
 * under Bun for their pidfds (readable when the child exits; Deno and Node
 * learn of exits from SIGCHLD instead, see `_exit_watch.ts`).
 *
 * - Deno: one `poll(2)` covering every fd waited for, plus a wake pipe that
 *   interrupts it when the set changes, on Deno's blocking-call thread (a
 *   `nonblocking` FFI symbol), one call in flight at a time.
 * - Bun, Node: FFI calls are synchronous, so a Worker blocks in
 *   `epoll_wait(2)` and posts which fds are ready. The main thread adds each
 *   fd to the epoll set itself (EPOLLONESHOT), so a new wait never wakes the
 *   Worker; only readiness does. Node won't exit while the Worker is inside
 *   `epoll_wait`, so at exit a stop pipe in the set wakes it and it returns.
 * - Anywhere else (no epoll, no Workers): `poll` with a zero timeout on a
 *   timer that backs off from 1 ms to 50 ms.
 *
 * The epoll engine lives in `_epoll_engine.ts`; it also offers
 * {@linkcode onceReady}, one readiness reported to a callback with no
 * promise or books, which a child's pidfd uses (one per child, on Bun).
 *
 * A wait may report readiness that is gone by the time the caller acts (a
 * closed fd's number reused, a duplicate report): callers re-check with a
 * nonblocking call and wait again.
 *
 * @module
 */
import { backend, unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { setTimerRef } from "../core/_runtime.ts";
import { ALWAYS, createEpollEngine, type EngineBooks, ONE, wakePipe } from "./_epoll_engine.ts";
import { disableNativeWaiterForTesting } from "./_native_waiter.ts";

const C = platform.constants;
const POLLFD = platform.structs.pollfd;
const FD_AT = POLLFD.fields.fd!.offset;
const EVENTS_AT = POLLFD.fields.events!.offset;
const REVENTS_AT = POLLFD.fields.revents!.offset;

/** A pending wait for one fd. */
export interface ReadyWait {
  /** Resolves with the `revents` poll reported, once the fd is ready. Never rejects. */
  readonly promise: Promise<number>;
  /** Stops waiting; the promise then never settles. Idempotent. */
  cancel(): void;
  /** Whether this wait keeps the process alive (default true). */
  ref: boolean;
}

export interface Registration {
  readonly fd: number;
  readonly events: number;
  readonly ref: boolean;
  resolve(revents: number): void;
}

/** How waits are carried out in this runtime. */
export interface Engine {
  /** Called after every change of the registration set (when `add`/`remove`/`refChanged` are absent). */
  update(): void;
  /** A wait was added to the set. */
  add?(reg: Registration): void;
  /** A wait was cancelled (it left the set unresolved). */
  remove?(reg: Registration): void;
  /** A pending wait's `ref` changed to `ref`. */
  refChanged?(reg: Registration, ref: boolean): void;
  /** `fd` is about to be closed, with no wait pending on it. */
  closing?(fd: number): void;
  /** Stops any pending timer or call that no longer has a reason to run. */
  stop?(): void;
  /** See {@linkcode onceReady}; only the epoll engines have it. */
  once?(fd: number, events: number, ref: boolean, callback: (revents: number) => void): OnceWait;
  /** Which engine this is, for tests and docs. */
  readonly name: "deno-nonblocking" | "bun-native" | "bun-worker" | "node-worker" | "timer";
}

const registrations = new Set<Registration>();
let engine: Engine | undefined;

/** What the epoll engine reads of the reactor's state (`_epoll_engine.ts`). */
const books: EngineBooks = {
  registrations,
  fallBack(): void {
    engine = createTimerEngine();
    engine.update();
  },
};

/**
 * Waits until `fd` is ready for `events` (`POLLIN`, `POLLOUT`), or has an
 * error or hang-up.
 *
 * @param fd The file descriptor; it must stay open while the wait is pending.
 * @param events `POLLIN` and/or `POLLOUT` from `platform.constants`.
 * @param ref Whether the pending wait keeps the process alive.
 */
export function waitReady(fd: number, events: number, ref = true): ReadyWait {
  const wait = new Wait(fd, events, ref);
  registrations.add(wait);
  engine ??= createEngine();
  if (engine.add !== undefined) engine.add(wait);
  else engine.update();
  return wait;
}

/** One wait: its own registration (methods on the prototype: no closures per wait). */
class Wait implements Registration, ReadyWait {
  readonly promise: Promise<number>;
  readonly fd: number;
  readonly events: number;
  #ref: boolean;
  #resolve!: (revents: number) => void;

  constructor(fd: number, events: number, ref: boolean) {
    this.fd = fd;
    this.events = events;
    this.#ref = ref;
    this.promise = new Promise<number>((resolve) => (this.#resolve = resolve));
  }

  resolve(revents: number): void {
    registrations.delete(this);
    this.#resolve(revents);
  }

  cancel(): void {
    if (!registrations.delete(this)) return;
    if (engine!.remove !== undefined) engine!.remove(this);
    else engine!.update();
  }

  get ref(): boolean {
    return this.#ref;
  }

  set ref(value: boolean) {
    if (this.#ref === value) return;
    this.#ref = value;
    if (!registrations.has(this)) return;
    if (engine!.refChanged !== undefined) engine!.refChanged(this, value);
    else engine!.update();
  }
}

/** A pending {@linkcode onceReady}. */
export interface OnceWait {
  /** Whether this wait keeps the process alive. */
  ref: boolean;
}

/**
 * One readiness of `fd`, reported to `callback` on the JS thread with the
 * poll `revents` (or 0 when the engine stopped: check again some other way).
 * No promise and no books beyond a key: the cheap wait a child's pidfd
 * needs, once per child. Where the engine has no such wait (not epoll),
 * undefined: use {@linkcode waitReady}. Not cancellable: `fd` must stay open
 * until the callback has run.
 */
export function onceReady(
  fd: number,
  events: number,
  ref: boolean,
  callback: (revents: number) => void,
): OnceWait | undefined {
  engine ??= createEngine();
  return engine.once?.(fd, events, ref, callback);
}

/**
 * Tells the reactor that `fd`, waited for before and with no wait pending
 * now, is about to be closed, so a later fd with its number starts afresh
 * (for the epoll engine: one EPOLL_CTL_ADD instead of a MOD that fails).
 */
export function closingFd(fd: number): void {
  engine?.closing?.(fd);
}

/**
 * The engine in use ("deno-nonblocking", "bun-native", "bun-worker",
 * "node-worker" or "timer"), creating it if needed.
 */
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

const epollEngines = new Map<boolean, Engine | undefined>();

/**
 * For tests and the parts bench (Bun): use an epoll engine whose waiter is
 * the native thread (`native`) or a Worker, until the returned function is
 * called; undefined if that waiter can't start here. Call with no wait pending.
 */
export function useEpollEngineForTesting(native: boolean): (() => void) | undefined {
  const previous = engine ??= createEngine();
  let chosen = epollEngines.get(native);
  if (chosen === undefined && previous.name === (native ? "bun-native" : "bun-worker")) {
    chosen = previous;
  }
  if (chosen === undefined && !epollEngines.has(native)) {
    disableNativeWaiterForTesting(!native);
    try {
      chosen = createEpollEngine(books);
    } finally {
      disableNativeWaiterForTesting(false);
    }
    if (chosen?.name !== (native ? "bun-native" : "bun-worker")) chosen = undefined;
    epollEngines.set(native, chosen);
  }
  if (chosen === undefined) return undefined;
  engine = chosen;
  return () => {
    engine = previous;
  };
}

function createEngine(): Engine {
  if (backend.nonblocking && unsafeLibc.poll_nonblocking !== undefined) {
    return createDenoEngine(unsafeLibc.poll_nonblocking);
  }
  if (backend.runtime === "bun" || backend.runtime === "node") {
    try {
      const epoll = createEpollEngine(books);
      if (epoll !== undefined) return epoll;
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
