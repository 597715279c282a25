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
import { WorkerPool, type WorkerSymbol, workerSymbol } from "../sync/_worker_pool.ts";
import type { WorkerHost } from "../sync/_worker_pool.ts";

const TIMESPEC = platform.structs.timespec;

interface Field {
  readonly offset: number;
  readonly size: number;
}

interface SemWorkerInit {
  readonly library: string;
  readonly semtimedop: WorkerSymbol;
  readonly errnoLocation: WorkerSymbol;
  readonly EINTR: number;
  readonly timespecSize: number;
  readonly sec: Field;
  readonly nsec: Field;
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
  const ts = new Uint8Array(new ArrayBuffer(init.timespecSize));
  const tsView = new DataView(ts.buffer);
  const put = (field: Field, value: number): void => {
    if (field.size === 8) tsView.setBigInt64(field.offset, BigInt(value), true);
    else tsView.setInt32(field.offset, value, true);
  };
  return ([id, ops, count, timeoutMs]) => {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const ms = Math.max(0, deadline - performance.now());
      const sec = Math.floor(ms / 1000);
      put(init.sec, sec);
      put(init.nsec, Math.min(999_999_999, Math.floor((ms - sec * 1000) * 1e6)));
      if (semtimedop(id, ops, count, ts) === 0) return reply([0, 0]);
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
    timespecSize: TIMESPEC.size,
    sec: TIMESPEC.fields["tv_sec"]!,
    nsec: TIMESPEC.fields["tv_nsec"]!,
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
