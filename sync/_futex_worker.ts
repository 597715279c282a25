/**
 * Internal, Bun and Node: a pool of Workers (Node: worker_threads) that
 * block in `futex(FUTEX_WAIT)` for `waitAsync`, since these runtimes' FFI
 * calls are synchronous only.
 *
 * The plumbing (spawning a Worker from a function's source, the port,
 * unref, exit) is `_worker_pool.ts`'s. The body binds the symbols the main
 * thread sends it, translated from the one table in `ffi/symbols.ts` by
 * this runtime's backend, and reads its own errno (it made the call). Node
 * won't exit while a worker is inside a native call, so waits in flight are
 * woken when the process exits.
 *
 * @module
 */
import { platform } from "../platform/mod.ts";
import { SYMBOLS } from "../ffi/symbols.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import type { WaitResult } from "./_futex.ts";
import {
  timespecLayout,
  WorkerPool,
  type WorkerSymbol,
  workerSymbol,
  type WorkerTimespecLayout,
} from "./_worker_pool.ts";
import type { WorkerHost } from "./_worker_pool.ts";

const C = platform.constants;
const E = platform.errno;

/** What a futex Worker gets in its first message. */
interface FutexWorkerInit {
  readonly library: string;
  readonly syscall: WorkerSymbol;
  readonly errnoLocation: WorkerSymbol;
  readonly SYS_futex: number;
  readonly FUTEX_WAIT: number;
  readonly EAGAIN: number;
  readonly ETIMEDOUT: number;
  readonly EINTR: number;
  readonly timespec: WorkerTimespecLayout;
}

/** A wait request: address, expected value, timeout in ms (-1: none). */
type Request = readonly [number, number, number];

/** The Worker's reply: 0 woken, 1 EAGAIN, 2 ETIMEDOUT, 3 another errno (second element). */
type Reply = readonly [number, number];

/**
 * The Worker's body. It runs from its source text, so it must be
 * self-contained: no imports, no outer names.
 */
function futexWorkerMain(
  host: WorkerHost,
  init: FutexWorkerInit,
  reply: (message: Reply) => void,
): (request: Request) => void {
  const libc = host.bind(init.library, { syscall: init.syscall, errno: init.errnoLocation });
  const syscall = libc["syscall"]!;
  const errnoCell = host.int32At(libc["errno"]!());
  const ts = host.timespec(init.timespec);
  return ([address, expected, timeoutMs]) => {
    const deadline = timeoutMs < 0 ? Infinity : performance.now() + timeoutMs;
    for (;;) {
      let timeout = 0;
      if (deadline !== Infinity) {
        const ms = Math.max(0, deadline - performance.now());
        const sec = Math.floor(ms / 1000);
        ts.set(sec, Math.min(999_999_999, Math.floor((ms - sec * 1000) * 1e6)));
        timeout = ts.address;
      }
      const r = syscall(init.SYS_futex, address, init.FUTEX_WAIT, expected, timeout, 0, 0);
      if (r === 0) return reply([0, 0]);
      const code = errnoCell[0]!;
      if (code === init.EAGAIN) return reply([1, 0]);
      if (code === init.ETIMEDOUT) return reply([2, 0]);
      if (code !== init.EINTR) return reply([3, code]);
    }
  };
}

/** Most Workers blocked at once; further waits poll with backoff instead. */
const MAX_WORKERS = 32;

const pool = new WorkerPool<FutexWorkerInit, Request, Reply>(
  "futex",
  futexWorkerMain,
  () => ({
    library: platform.libraries[0]!,
    syscall: workerSymbol("syscall", SYMBOLS.syscall),
    errnoLocation: workerSymbol(platform.errnoLocation, SYMBOLS.errno_location),
    SYS_futex: C.SYS_futex,
    FUTEX_WAIT: C.FUTEX_WAIT,
    EAGAIN: E.EAGAIN!,
    ETIMEDOUT: E.ETIMEDOUT!,
    EINTR: E.EINTR!,
    timespec: timespecLayout(),
  }),
  MAX_WORKERS,
  // Node: a worker inside futex holds up process exit (and terminate())
  // until the call returns, so waits in flight are woken at exit. The wake
  // may reach other waiters on those words too: futex waiters re-check, so
  // it is spurious. EFAULT when the memory is gone: nobody waits there then.
  ([address]) => {
    unsafeLibc.syscall(C.SYS_futex, address, C.FUTEX_WAKE, 0x7fffffff, 0, 0, 0);
  },
);

/**
 * One futex wait in a pooled Worker: the outcome, an errno number for a
 * lasting failure, or "busy" when every Worker is taken.
 */
export async function blockInWorker(
  address: number,
  expected: number,
  deadline: number,
): Promise<WaitResult | number | "busy"> {
  const timeout = deadline === Infinity ? -1 : Math.max(0, deadline - performance.now());
  const reply = await pool.run([address, expected, timeout]);
  if (reply === "busy") return "busy";
  const [outcome, code] = reply;
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
  return pool.counts();
}
