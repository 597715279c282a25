/**
 * The epoll engine of `_poll_reactor.ts` (Bun, Node): one epoll set waited
 * on by a native thread (Bun) or a Worker, the main thread arming each fd
 * with EPOLLONESHOT and a fresh key. Split out of the reactor, which keeps
 * the engine-independent books.
 *
 * @module
 */
import { backend, errno, unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { check } from "../core/errors.ts";
import { onNodeExit, poolsAvailable } from "../sync/_worker_pool.ts";
import { startEpollWaiter, STOP_KEY } from "./_epoll_waiter.ts";
import type { Engine, OnceWait, Registration } from "./_poll_reactor.ts";

const C = platform.constants;
const E = platform.errno;
const EPOLL_EVENT = platform.structs.epoll_event;
const EVENTS_AT_EPOLL = EPOLL_EVENT.fields.events?.offset ?? 0;
const DATA_AT_EPOLL = EPOLL_EVENT.fields["data.u64"]?.offset ?? 0;

/** What the engine reads of the reactor: its registrations, and how to fall back to its timer engine. */
export interface EngineBooks {
  readonly registrations: ReadonlySet<Registration>;
  fallBack(): void;
}

/** A pipe whose write end wakes a wait on its read end (nonblocking, close-on-exec). */
export function wakePipe(): [number, number] {
  const fds = new Int32Array(2);
  check(unsafeLibc.pipe2(fds, C.O_CLOEXEC | C.O_NONBLOCK), "pipe2");
  return [fds[0]!, fds[1]!];
}

/** Poll events reported whatever was asked for. */
export const ALWAYS: number = C.POLLERR | C.POLLHUP | C.POLLNVAL;

/** One byte, written to a wake pipe. */
export const ONE: Uint8Array = new Uint8Array(1);

/** A pending onceReady in the epoll engine. */
class OnceEntry implements OnceWait {
  pending = true;
  #ref: boolean;
  readonly key: number;
  readonly callback: (revents: number) => void;
  readonly #counted: (delta: number) => void;

  constructor(
    key: number,
    ref: boolean,
    callback: (revents: number) => void,
    counted: (delta: number) => void,
  ) {
    this.key = key;
    this.#ref = ref;
    this.callback = callback;
    this.#counted = counted;
    if (ref) counted(1);
  }

  get ref(): boolean {
    return this.#ref;
  }

  set ref(value: boolean) {
    if (this.#ref === value) return;
    this.#ref = value;
    if (this.pending) this.#counted(value ? 1 : -1);
  }

  /** Out of the books: the ref it held goes. */
  done(): void {
    this.pending = false;
    if (this.#ref) this.#counted(-1);
  }
}

/** The waits on one fd, and how it is armed in the epoll set. */
interface Watched {
  readonly fd: number;
  readonly regs: Set<Registration>;
  /** The key of the current arming (0: not armed). */
  key: number;
  /** The poll events it is armed for. */
  events: number;
  /** Whether the fd is in the epoll set (armed or fired). */
  added: boolean;
}

/**
 * Bun, Node: one epoll set, one Worker blocked in `epoll_wait` on it (from
 * the shared pool plumbing, `sync/_worker_pool.ts`). The main thread arms
 * each fd with EPOLLONESHOT and a fresh key, so a new wait costs one
 * `epoll_ctl` and no wake-up of the Worker, and a late report for an fd
 * waited for again (or closed and reused) is recognised by its old key.
 */
export function createEpollEngine(books: EngineBooks): Engine | undefined {
  const { epoll_create1, epoll_ctl, epoll_wait } = unsafeLibc;
  if (
    epoll_create1 === undefined || epoll_ctl === undefined || epoll_wait === undefined ||
    !poolsAvailable() || EPOLL_EVENT.size === 0
  ) {
    return undefined;
  }
  const epfd = epoll_create1(C.EPOLL_CLOEXEC);
  if (epfd < 0) return undefined;
  const event = new Uint8Array(EPOLL_EVENT.size);
  const eventView = new DataView(event.buffer);
  const byFd = new Map<number, Watched>();
  const byKey = new Map<number, Watched>();
  const known = new Set<Registration>();
  const onceByKey = new Map<number, OnceEntry>();
  let nextKey = 1;
  let refs = 0;
  let referenced = false;
  let failed = false;

  const control = (op: number, fd: number, events: number, key: number): number => {
    eventView.setUint32(EVENTS_AT_EPOLL, events, true);
    eventView.setUint32(DATA_AT_EPOLL, key % 0x1_0000_0000, true);
    eventView.setUint32(DATA_AT_EPOLL + 4, Math.floor(key / 0x1_0000_0000), true);
    return epoll_ctl(epfd, op, fd, event) === 0 ? 0 : errno();
  };

  const [stopRead, stopWrite] = wakePipe();
  if (control(C.EPOLL_CTL_ADD, stopRead, C.EPOLLIN, STOP_KEY) !== 0) {
    for (const fd of [epfd, stopRead, stopWrite]) unsafeLibc.close(fd);
    return undefined;
  }
  const worker = startEpollWaiter(epfd, fired, () => {
    // The Worker could not start or died: carry on with the timer engine.
    failed = true;
    books.fallBack();
    // Their owners check again, and wait some other way if they must.
    for (const entry of [...onceByKey.values()]) {
      onceByKey.delete(entry.key);
      entry.done();
      entry.callback(0);
    }
  });
  if (worker === undefined) {
    for (const fd of [epfd, stopRead, stopWrite]) unsafeLibc.close(fd);
    return undefined;
  }
  // A Worker inside epoll_wait holds up Node's exit: wake it with the stop key.
  onNodeExit(() => unsafeLibc.write(stopWrite, ONE, 1));

  function toEpoll(events: number): number {
    return ((events & C.POLLIN) !== 0 ? C.EPOLLIN : 0) |
      ((events & C.POLLOUT) !== 0 ? C.EPOLLOUT : 0);
  }

  function toPoll(events: number): number {
    return ((events & C.EPOLLIN) !== 0 ? C.POLLIN : 0) |
      ((events & C.EPOLLOUT) !== 0 ? C.POLLOUT : 0) |
      ((events & C.EPOLLERR) !== 0 ? C.POLLERR : 0) |
      ((events & C.EPOLLHUP) !== 0 ? C.POLLHUP : 0);
  }

  /** Arms `w` for the union of its waits' events, under a new key. */
  function arm(w: Watched): void {
    let events = 0;
    for (const reg of w.regs) events |= reg.events;
    byKey.delete(w.key);
    const key = nextKey++;
    const mask = toEpoll(events) | C.EPOLLONESHOT;
    let code = control(w.added ? C.EPOLL_CTL_MOD : C.EPOLL_CTL_ADD, w.fd, mask, key);
    // Closed and reused since (the kernel dropped it), or added by an earlier arming.
    if (code === E.ENOENT) code = control(C.EPOLL_CTL_ADD, w.fd, mask, key);
    else if (code === E.EEXIST) code = control(C.EPOLL_CTL_MOD, w.fd, mask, key);
    if (code === 0) {
      w.added = true;
      w.key = key;
      w.events = events;
      byKey.set(key, w);
      return;
    }
    // No epoll for this fd: a regular file is always ready (as poll says), a bad fd is POLLNVAL.
    w.key = 0;
    const revents = code === E.EPERM ? events & (C.POLLIN | C.POLLOUT) : C.POLLNVAL;
    queueMicrotask(() => {
      if (w.key === 0 && byFd.get(w.fd) === w) resolveAll(w, revents);
    });
  }

  /** Resolves the waits of `w` that `revents` satisfies; re-arms for the rest. */
  function resolveAll(w: Watched, revents: number): void {
    for (const reg of [...w.regs]) {
      if ((revents & (reg.events | ALWAYS)) !== 0) {
        forget(reg, true);
        reg.resolve(revents);
      }
    }
    if (w.regs.size > 0) arm(w);
    updateRef();
  }

  function fired(key: number, epollEvents: number): void {
    const entry = onceByKey.get(key);
    if (entry !== undefined) {
      onceByKey.delete(key);
      entry.done();
      entry.callback(toPoll(epollEvents));
      return;
    }
    const w = byKey.get(key);
    if (w === undefined || w.key !== key) return; // an arming since replaced or cancelled
    byKey.delete(key);
    w.key = 0; // EPOLLONESHOT disarmed it
    resolveAll(w, toPoll(epollEvents));
  }

  function add(reg: Registration): void {
    known.add(reg);
    if (reg.ref) refs++;
    let w = byFd.get(reg.fd);
    if (w === undefined) {
      w = { fd: reg.fd, regs: new Set(), key: 0, events: 0, added: false };
      byFd.set(reg.fd, w);
    }
    w.regs.add(reg);
    if (w.key === 0 || (reg.events & ~w.events) !== 0) arm(w);
  }

  /**
   * Drops a wait from the books (not from `registrations`). A cancelled
   * wait's fd leaves the epoll set; a fired one stays in it, disarmed, so
   * waiting on it again is one EPOLL_CTL_MOD (after a close the kernel has
   * dropped it, and the MOD's ENOENT turns into an ADD).
   */
  function forget(reg: Registration, fired = false): void {
    if (!known.delete(reg)) return;
    if (reg.ref) refs--;
    const w = byFd.get(reg.fd);
    if (w === undefined) return;
    w.regs.delete(reg);
    if (w.regs.size > 0 || fired) return;
    byFd.delete(reg.fd);
    byKey.delete(w.key);
    w.key = 0;
    if (w.added) control(C.EPOLL_CTL_DEL, w.fd, 0, 0); // fails harmlessly if closed already
  }

  function counted(delta: number): void {
    refs += delta;
    updateRef();
  }

  function updateRef(): void {
    const want = refs > 0;
    if (want === referenced || failed) return;
    referenced = want;
    if (want) worker!.ref?.();
    else worker!.unref?.();
  }

  worker.unref?.();
  return {
    name: backend.runtime === "node" ? "node-worker" : worker.native ? "bun-native" : "bun-worker",
    add(reg): void {
      add(reg);
      updateRef();
    },
    remove(reg): void {
      forget(reg);
      updateRef();
    },
    refChanged(reg, ref): void {
      if (known.has(reg)) refs += ref ? 1 : -1;
      updateRef();
    },
    once(fd, events, ref, callback): OnceEntry {
      const key = nextKey++;
      const mask = toEpoll(events) | C.EPOLLONESHOT;
      let code = control(C.EPOLL_CTL_ADD, fd, mask, key);
      // Still in the set from an earlier arming (fired, so disarmed): arm it again.
      if (code === E.EEXIST) code = control(C.EPOLL_CTL_MOD, fd, mask, key);
      const entry = new OnceEntry(key, ref, callback, counted);
      if (code === 0) {
        onceByKey.set(key, entry);
        updateRef();
      } else {
        // Not pollable: report it at once (the owner checks and waits some other way).
        entry.done();
        queueMicrotask(() =>
          callback(code === E.EPERM ? events & (C.POLLIN | C.POLLOUT) : C.POLLNVAL)
        );
      }
      return entry;
    },
    closing(fd): void {
      const w = byFd.get(fd);
      if (w === undefined || w.regs.size > 0) return;
      // Closing the last reference takes it out of the epoll set; no EPOLL_CTL_DEL needed.
      byKey.delete(w.key);
      w.key = 0;
      w.added = false;
      // Kept for the next fd with its number (a pidfd per child reuses one): no new books each time.
      if (byFd.size > 64) byFd.delete(fd);
    },
    update(): void {
      // A full resync (after another engine stood in): registrations are the truth.
      for (const reg of [...known]) if (!books.registrations.has(reg)) forget(reg);
      for (const reg of books.registrations) if (!known.has(reg)) add(reg);
      updateRef();
    },
  };
}
