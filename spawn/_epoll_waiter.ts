/**
 * The thread that blocks in `epoll_wait(2)` for the epoll engine of
 * `_poll_reactor.ts` (Bun, Node), since their FFI calls are synchronous:
 * on Bun's main thread a native thread (`_native_waiter.ts`: one hop to the
 * JS thread), elsewhere a Worker from `sync/_worker_pool.ts` (two hops: the
 * Worker's JS thread wakes, then posts).
 *
 * @module
 */
import { SYMBOLS } from "../ffi/symbols.ts";
import { platform } from "../platform/mod.ts";
import {
  startWorker,
  type WorkerHost,
  type WorkerSymbol,
  workerSymbol,
} from "../sync/_worker_pool.ts";
import { startNativeWaiter } from "./_native_waiter.ts";

const EPOLL_EVENT = platform.structs.epoll_event;

/** What the epoll Worker gets at start. */
interface EpollInit {
  readonly library: string;
  readonly epollWait: WorkerSymbol;
  readonly epfd: number;
  readonly eventSize: number;
  readonly eventsAt: number;
  readonly dataAt: number;
}

/** The `data` of the stop pipe's event; registrations' keys start at 1. */
export const STOP_KEY = 0;

/**
 * The epoll Worker's body (Bun, Node): on its one request, blocks in
 * `epoll_wait` for good and replies with (key, revents) pairs. The main
 * thread adds and re-arms fds itself (EPOLLONESHOT), so a new wait never
 * wakes this thread. Self-contained: it runs from its source text.
 */
function epollWorker(
  host: WorkerHost,
  init: EpollInit,
  reply: (ready: number[]) => void,
): (request: unknown) => void {
  const libc = host.bind(init.library, { epollWait: init.epollWait });
  return () => {
    const max = 64;
    const bytes = new Uint8Array(max * init.eventSize);
    const view = new DataView(bytes.buffer);
    let failures = 0;
    for (;;) {
      const n = libc.epollWait!(init.epfd, bytes, max, -1);
      if (n <= 0) {
        // EINTR; anything else (the epoll fd gone) ends the loop instead of spinning.
        if (++failures > 1000) return;
        continue;
      }
      failures = 0;
      const ready: number[] = [];
      let stop = false;
      for (let i = 0; i < n; i++) {
        const at = i * init.eventSize;
        const key = view.getUint32(at + init.dataAt, true) +
          view.getUint32(at + init.dataAt + 4, true) * 0x1_0000_0000;
        if (key === 0) stop = true; // STOP_KEY (the body can name nothing outside)
        else ready.push(key, view.getUint32(at + init.eventsAt, true));
      }
      if (ready.length > 0) reply(ready);
      // Node is exiting: return, so the Worker can be stopped.
      if (stop) return;
    }
  };
}

/** What keeps the process alive while a wait is pending: the waiter's ref/unref. */
export interface EpollWaiter {
  ref?(): void;
  unref?(): void;
  /** A native thread, not a Worker. */
  readonly native?: boolean;
}

/**
 * Starts the thread that waits on `epfd` and calls `fired(key, epollEvents)`
 * on the JS thread; `failed` if a Worker dies. Unref'd at start; undefined
 * if neither a native thread nor a Worker can start.
 */
export function startEpollWaiter(
  epfd: number,
  fired: (key: number, events: number) => void,
  failed: () => void,
): EpollWaiter | undefined {
  const native = startNativeWaiter(epfd, fired);
  if (native !== undefined) return native;
  const init: EpollInit = {
    library: platform.libraries[0]!,
    epollWait: workerSymbol("epoll_wait", SYMBOLS.epoll_wait),
    epfd,
    eventSize: EPOLL_EVENT.size,
    eventsAt: EPOLL_EVENT.fields.events?.offset ?? 0,
    dataAt: EPOLL_EVENT.fields["data.u64"]?.offset ?? 0,
  };
  const worker = startWorker<EpollInit, [], number[]>(
    epollWorker,
    init,
    (ready) => {
      for (let i = 0; i < ready.length; i += 2) fired(ready[i]!, ready[i + 1]!);
    },
    () => {
      worker?.unref?.();
      failed();
    },
  );
  worker?.postMessage([]);
  worker?.unref?.();
  return worker;
}
