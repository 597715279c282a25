/**
 * Internal, Bun and Node: a pool of Workers (Node: worker_threads) that
 * block in `semtimedop` for the asynchronous semaphore waits, since these
 * runtimes' FFI calls are synchronous only. The plumbing (spawning, the
 * port, unref) is `sync/_worker_pool.ts`'s; the body binds its symbols from
 * the one table in `ffi/symbols.ts` and reads its own errno. A blocked
 * `semtimedop` can't be woken from outside: the waits are slices of at most
 * `SLICE_MS`, which also bounds how long they hold up Node's exit.
 *
 * @module
 */
import { platform } from "../platform/mod.ts";
import { SYMBOLS } from "../ffi/symbols.ts";
import {
  timespecLayout,
  WorkerPool,
  type WorkerSymbol,
  workerSymbol,
  type WorkerTimespecLayout,
} from "../sync/_worker_pool.ts";
import type { WorkerHost } from "../sync/_worker_pool.ts";

interface SemWorkerInit {
  readonly library: string;
  readonly semtimedop: WorkerSymbol;
  readonly errnoLocation: WorkerSymbol;
  readonly EINTR: number;
  readonly timespec: WorkerTimespecLayout;
}

/** A request: set id, encoded `struct sembuf[]`, count, timeout in ms. */
type Request = readonly [number, Uint8Array, number, number];

/** The reply: 0 done, or -1 and the errno. */
type Reply = readonly [number, number];

/**
 * The Worker's body. It runs from its source text, so it must be
 * self-contained: no imports, no outer names.
 */
function semWorkerMain(
  host: WorkerHost,
  init: SemWorkerInit,
  reply: (message: Reply) => void,
): (request: Request) => void {
  const libc = host.bind(init.library, {
    semtimedop: init.semtimedop,
    errno: init.errnoLocation,
  });
  const semtimedop = libc["semtimedop"]!;
  const errnoCell = host.int32At(libc["errno"]!());
  const ts = host.timespec(init.timespec);
  return ([id, ops, count, timeoutMs]) => {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const ms = Math.max(0, deadline - performance.now());
      const sec = Math.floor(ms / 1000);
      ts.set(sec, Math.min(999_999_999, Math.floor((ms - sec * 1000) * 1e6)));
      if (semtimedop(id, ops, count, ts.address) === 0) return reply([0, 0]);
      const code = errnoCell[0]!;
      if (code !== init.EINTR) return reply([-1, code]);
    }
  };
}

const pool = new WorkerPool<SemWorkerInit, Request, Reply>(
  "semaphore",
  semWorkerMain,
  () => ({
    library: platform.libraries[0]!,
    semtimedop: workerSymbol("semtimedop", SYMBOLS.semtimedop),
    errnoLocation: workerSymbol(platform.errnoLocation, SYMBOLS.errno_location),
    EINTR: platform.errno.EINTR!,
    timespec: timespecLayout(),
  }),
  16,
);

/**
 * One `semtimedop` in a pooled Worker: 0, or the errno of the failure
 * (EAGAIN when the time ran out); "busy" when every Worker is taken.
 */
export async function semtimedopInWorker(
  id: number,
  ops: Uint8Array,
  timeoutMs: number,
): Promise<number | "busy"> {
  const count = ops.length / platform.structs.sembuf.size;
  const reply = await pool.run([id, ops.slice(), count, timeoutMs]);
  if (reply === "busy") return "busy";
  const [result, code] = reply;
  return result === 0 ? 0 : code;
}
