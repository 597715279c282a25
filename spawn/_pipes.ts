/**
 * The child's stdin, stdout and stderr pipes as web streams over
 * nonblocking fds, waiting in `_poll_reactor.ts` when a call would block.
 *
 * Release policy: this process's end of a pipe is closed at EOF, on
 * cancel/close/abort, and at the latest when the child has been reaped:
 * {@linkcode PipeEnd.settle} then reads what is left in an output pipe
 * (everything the child wrote is there already, at most the pipe's
 * capacity) into memory and closes the fd, and closes a stdin nobody took a
 * writer for. The garbage collector is only a last resort.
 *
 * @module
 */
import { ErrnoError } from "../core/errors.ts";
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { typeName } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";
import { type ReadyWait, waitReady } from "./_poll_reactor.ts";

const C = platform.constants;
const E = platform.errno;

/**
 * How much `settle` reads from an output pipe before it gives up on EOF:
 * more than a pipe holds (64 KiB by default, `pipe-max-size` 1 MiB), so only
 * a grandchild still writing to it can keep it open.
 */
const SETTLE_LIMIT = (1 << 20) + 65536;

/** This process's end of one pipe, for the {@linkcode Child} that owns it. */
export interface PipeEnd {
  /** The child has been reaped: drain and close what nobody will need open. */
  settle(): void;
  /** Closes the fd now, whatever state the stream is in (dispose). */
  release(): void;
}

interface FdState {
  readonly fd: number;
  closed: boolean;
}

const pipeRegistry = new FinalizationRegistry<FdState>((state) => {
  if (!state.closed) {
    state.closed = true;
    unsafeLibc.close(state.fd);
  }
});

/** Waits for `events` on `fd`, or until `interrupt` is called (the fd was closed meanwhile). */
class Waiter {
  #wait: ReadyWait | undefined;
  #wake: (() => void) | undefined;

  async wait(fd: number, events: number): Promise<void> {
    const wait = waitReady(fd, events);
    this.#wait = wait;
    await new Promise<void>((resolve) => {
      this.#wake = resolve;
      wait.promise.then(() => resolve());
    });
    wait.cancel();
    this.#wait = undefined;
    this.#wake = undefined;
  }

  interrupt(): void {
    this.#wait?.cancel();
    this.#wake?.();
  }
}

/** One nonblocking read: a chunk, "eof", or "again" (nothing yet). */
function readOnce(fd: number): Uint8Array | "eof" | "again" {
  for (;;) {
    const buffer = new Uint8Array(65536);
    const n = unsafeLibc.read(fd, buffer, buffer.length);
    if (n > 0) return n < 16384 ? buffer.slice(0, n) : buffer.subarray(0, n);
    if (n === 0) return "eof";
    const code = errno();
    if (code === E.EINTR) continue;
    if (code === E.EAGAIN) return "again";
    throw new ErrnoError("read", code, { fd });
  }
}

/** The read end of the child's stdout or stderr. */
export function readablePipe(fd: number): { stream: ReadableStream<Uint8Array>; end: PipeEnd } {
  const state: FdState = { fd, closed: false };
  const buffered: Uint8Array[] = [];
  const waiter = new Waiter();
  let failure: unknown;
  let cancelled = false;
  const close = (): void => {
    if (state.closed) return;
    state.closed = true;
    unsafeLibc.close(fd);
    waiter.interrupt();
  };
  /** Reads into `buffered` until EOF (then closes), nothing is left, or `limit` bytes. */
  const drain = (limit: number): void => {
    for (let total = 0; !state.closed && total < limit;) {
      let got: Uint8Array | "eof" | "again";
      try {
        got = readOnce(fd);
      } catch (error) {
        failure = error;
        return close();
      }
      if (got === "again") return;
      if (got === "eof") return close();
      buffered.push(got);
      total += got.length;
    }
  };
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller): Promise<void> {
      for (;;) {
        if (cancelled) return;
        if (buffered.length === 0) drain(1);
        const next = buffered.shift();
        if (next !== undefined) return controller.enqueue(next);
        if (failure !== undefined) return controller.error(failure);
        if (state.closed) return controller.close();
        await waiter.wait(fd, C.POLLIN);
      }
    },
    cancel(): void {
      cancelled = true;
      buffered.length = 0;
      close();
    },
  });
  pipeRegistry.register(stream, state);
  const end: PipeEnd = {
    settle(): void {
      if (cancelled || state.closed) return;
      drain(SETTLE_LIMIT);
      // A pending read serves what was drained (or the end) now.
      waiter.interrupt();
    },
    release: close,
  };
  return { stream, end };
}

/** The write end of the child's stdin. */
export function writablePipe(fd: number): { stream: WritableStream<Uint8Array>; end: PipeEnd } {
  const state: FdState = { fd, closed: false };
  const waiter = new Waiter();
  const close = (): void => {
    if (state.closed) return;
    state.closed = true;
    unsafeLibc.close(fd);
    waiter.interrupt();
  };
  const stream = new WritableStream<Uint8Array>({
    async write(chunk): Promise<void> {
      if (!(chunk instanceof Uint8Array)) {
        throw new TypeError(
          `Cannot write to the child's stdin: expected a Uint8Array, got ${typeName(chunk)}`,
        );
      }
      let offset = 0;
      while (offset < chunk.length) {
        if (state.closed) throw new Error("Cannot write to the child's stdin: it is closed");
        const n = unsafeLibc.write(fd, chunk.subarray(offset), chunk.length - offset);
        if (n >= 0) {
          offset += n;
          continue;
        }
        const code = errno();
        if (code === E.EINTR) continue;
        if (code !== E.EAGAIN) {
          close();
          throw new ErrnoError(
            "write",
            code,
            code === E.EPIPE ? { fd, hint: "the child closed its stdin (or exited)" } : { fd },
          );
        }
        await waiter.wait(fd, C.POLLOUT);
      }
    },
    close,
    abort: close,
  });
  pipeRegistry.register(stream, state);
  const end: PipeEnd = {
    settle(): void {
      // Nobody took a writer, and the reader is gone: nothing will use it.
      if (!stream.locked) close();
    },
    release: close,
  };
  return { stream, end };
}

/** Everything a stream yields, in one buffer (empty for null). */
export async function collect(stream: ReadableStream<Uint8Array> | null): Promise<Uint8Array> {
  if (stream === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
    chunks.push(chunk);
    total += chunk.length;
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}
