/**
 * Internal: absolute `struct timespec` deadlines for the C calls that take
 * one (sem_timedwait, sem_clockwait, pthread_mutex_timedlock).
 *
 * @module
 */
import { ErrnoError } from "../core/errors.ts";
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { allocTimespec, type Timespec } from "../sync/_futex.ts";

const TIMESPEC = platform.structs.timespec;
const SEC = TIMESPEC.fields["tv_sec"]!;
const NSEC = TIMESPEC.fields["tv_nsec"]!;

function read(view: DataView, field: { offset: number; size: number }): number {
  return field.size === 8
    ? Number(view.getBigInt64(field.offset, true))
    : view.getInt32(field.offset, true);
}

function write(view: DataView, field: { offset: number; size: number }, value: number): void {
  if (field.size === 8) view.setBigInt64(field.offset, BigInt(value), true);
  else view.setInt32(field.offset, Math.min(value, 0x7fffffff), true);
}

/** A fresh timespec for {@linkcode writeDeadline}. */
export function deadlineCell(): Timespec {
  return allocTimespec();
}

/**
 * Writes "now on `clock` plus `ms`" into `cell` as an absolute timespec.
 *
 * @throws {ErrnoError} When clock_gettime fails (an unknown clock).
 */
export function writeDeadline(cell: Timespec, clock: number, ms: number): void {
  if (unsafeLibc.clock_gettime(clock, cell.bytes) === -1) {
    throw new ErrnoError("clock_gettime", errno());
  }
  const add = Math.max(0, ms);
  const addSec = Math.floor(add / 1000);
  let sec = read(cell.view, SEC) + addSec;
  let nsec = read(cell.view, NSEC) + Math.floor((add - addSec * 1000) * 1e6);
  if (nsec >= 1e9) {
    sec += 1;
    nsec -= 1e9;
  }
  write(cell.view, SEC, sec);
  write(cell.view, NSEC, nsec);
}

/** The seconds and nanoseconds of a timespec. */
export function readDeadline(cell: Timespec): [number, number] {
  return [read(cell.view, SEC), read(cell.view, NSEC)];
}
