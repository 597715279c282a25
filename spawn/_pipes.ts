/**
 * The child's stdin, stdout and stderr pipes as web streams over
 * nonblocking fds, waiting in `_poll_reactor.ts` when a call would block.
 *
 * @module
 */
import { ErrnoError } from "../core/errors.ts";
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { typeName } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";
import { waitReady } from "./_poll_reactor.ts";

const C = platform.constants;
const E = platform.errno;

const pipeRegistry = new FinalizationRegistry<{ fd: number; closed: boolean }>((state) => {
  if (!state.closed) {
    state.closed = true;
    unsafeLibc.close(state.fd);
  }
});

export function readablePipe(fd: number): ReadableStream<Uint8Array> {
  const state = { fd, closed: false };
  let cancelWait: (() => void) | undefined;
  const close = (): void => {
    if (state.closed) return;
    state.closed = true;
    cancelWait?.();
    unsafeLibc.close(fd);
  };
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller): Promise<void> {
      for (;;) {
        if (state.closed) return;
        const buffer = new Uint8Array(65536);
        const n = unsafeLibc.read(fd, buffer, buffer.length);
        if (n > 0) {
          controller.enqueue(n < 16384 ? buffer.slice(0, n) : buffer.subarray(0, n));
          return;
        }
        if (n === 0) {
          close();
          controller.close();
          return;
        }
        const code = errno();
        if (code === E.EINTR) continue;
        if (code !== E.EAGAIN) {
          close();
          controller.error(new ErrnoError("read", code, { fd }));
          return;
        }
        const wait = waitReady(fd, C.POLLIN);
        cancelWait = wait.cancel;
        await wait.promise;
        cancelWait = undefined;
      }
    },
    cancel(): void {
      close();
    },
  });
  pipeRegistry.register(stream, state);
  return stream;
}

export function writablePipe(fd: number): WritableStream<Uint8Array> {
  const state = { fd, closed: false };
  let cancelWait: (() => void) | undefined;
  const close = (): void => {
    if (state.closed) return;
    state.closed = true;
    cancelWait?.();
    unsafeLibc.close(fd);
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
        const wait = waitReady(fd, C.POLLOUT);
        cancelWait = wait.cancel;
        await wait.promise;
        cancelWait = undefined;
      }
    },
    close,
    abort: close,
  });
  pipeRegistry.register(stream, state);
  return stream;
}

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
