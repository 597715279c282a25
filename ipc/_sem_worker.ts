/**
 * Internal: the blocking phase of `NamedSemaphore.waitAsync`, on another
 * thread ({@linkcode blockOnce}): Deno's nonblocking FFI calls, or (Bun and
 * Node, whose FFI calls are synchronous only) a pool of Workers (Node:
 * worker_threads) that block in `sem_clockwait` (or `sem_timedwait`). The
 * plumbing (spawning, the port, unref) is `sync/_worker_pool.ts`'s. A
 * blocked wait can't be woken from outside without posting a unit: the
 * waits are slices, which also bounds how long they hold up Node's exit.
 *
 * @module
 */
import { platform } from "../platform/mod.ts";
import { SYMBOLS } from "../ffi/symbols.ts";
import { availableSymbols, backend, unsafeLibc } from "../ffi/libc.ts";
import type { Timespec } from "../sync/_futex.ts";
import { readDeadline, writeDeadline } from "./_deadline.ts";
import {
  poolsAvailable,
  timespecLayout,
  WorkerPool,
  type WorkerSymbol,
  workerSymbol,
  type WorkerTimespecLayout,
} from "../sync/_worker_pool.ts";
import type { WorkerHost } from "../sync/_worker_pool.ts";

const C = platform.constants;

/** What a semaphore Worker gets in its first message. */
interface SemWorkerInit {
  readonly library: string;
  /** sem_clockwait(sem, clock, abstime), or sem_timedwait(sem, abstime) when `clock` is -1. */
  readonly wait: WorkerSymbol;
  readonly errnoLocation: WorkerSymbol;
  readonly clock: number;
  readonly EINTR: number;
  readonly timespec: WorkerTimespecLayout;
}

/** A wait request: the sem_t address and an absolute deadline (seconds, nanoseconds). */
type Request = readonly [number, number, number];

/** The Worker's reply: the call's result (0: a unit taken) and errno. */
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
  const libc = host.bind(init.library, { wait: init.wait, errno: init.errnoLocation });
  const wait = libc["wait"]!;
  const errnoCell = host.int32At(libc["errno"]!());
  const ts = host.timespec(init.timespec);
  return ([address, sec, nsec]) => {
    ts.set(sec, nsec);
    for (;;) {
      const r = init.clock === -1
        ? wait(address, ts.address)
        : wait(address, init.clock, ts.address);
      if (r === 0) return reply([0, 0]);
      const code = errnoCell[0]!;
      if (code !== init.EINTR) return reply([r, code]);
    }
  };
}

/** The clock the Worker's deadlines are on: CLOCK_MONOTONIC with sem_clockwait, else CLOCK_REALTIME. */
export const workerClock: number = availableSymbols.has("sem_clockwait")
  ? platform.constants.CLOCK_MONOTONIC
  : platform.constants.CLOCK_REALTIME;

/** Whether libc has a timed wait a Worker can block in (Darwin has neither). */
const workerCanWait = availableSymbols.has("sem_clockwait") ||
  availableSymbols.has("sem_timedwait");

const pool = new WorkerPool<SemWorkerInit, Request, Reply>(
  "semaphore",
  semWorkerMain,
  () => {
    const clockwait = availableSymbols.has("sem_clockwait");
    return {
      library: platform.libraries[0]!,
      // Both with the timespec as an address.
      wait: clockwait
        ? workerSymbol("sem_clockwait", SYMBOLS.sem_clockwait_nonblocking)
        : workerSymbol("sem_timedwait", { args: ["pointer", "pointer"], result: "i32" }),
      errnoLocation: workerSymbol(platform.errnoLocation, SYMBOLS.errno_location),
      clock: clockwait ? platform.constants.CLOCK_MONOTONIC : -1,
      EINTR: platform.errno.EINTR!,
      timespec: timespecLayout(),
    };
  },
  16,
);

/**
 * One blocking wait in a pooled Worker until the absolute deadline (on
 * {@linkcode workerClock}): `[result, errno]`, or undefined when every
 * Worker is taken.
 */
export async function semWaitInWorker(
  address: number,
  sec: number,
  nsec: number,
): Promise<Reply | undefined> {
  const reply = await pool.run([address, sec, nsec]);
  return reply === "busy" ? undefined : reply;
}

/**
 * One blocking wait of at most `sliceMs` on another thread: Deno's
 * nonblocking `sem_clockwait`, or (Bun, Node) a pooled Worker. Resolves with the
 * call's result (0: a unit taken), or undefined when no thread is available.
 */
export async function blockOnce(
  address: number,
  argument: number,
  cell: Timespec,
  sliceMs: number,
): Promise<number | undefined> {
  const nonblocking = unsafeLibc.sem_clockwait_nonblocking;
  if (nonblocking !== undefined) {
    writeDeadline(cell, C.CLOCK_MONOTONIC, sliceMs);
    return await nonblocking(argument, C.CLOCK_MONOTONIC, cell.address);
  }
  if (backend.runtime === "deno" || !workerCanWait || !poolsAvailable()) return undefined;
  writeDeadline(cell, workerClock, sliceMs);
  const [sec, nsec] = readDeadline(cell);
  return (await semWaitInWorker(address, sec, nsec))?.[0];
}
