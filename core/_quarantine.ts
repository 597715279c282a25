/**
 * Address ranges held back after close(), so that I/O still in flight into a
 * closed region can't land in memory mapped afterwards.
 *
 * Why: Deno's async file ops (`FsFile.read`/`write`) and node:fs in both
 * runtimes run on another thread with the raw pointer of the view they were
 * given. Detaching the view doesn't stop that thread, and if the range were
 * unmapped, the next mmap would likely get the same addresses: the read would
 * land in the new mapping, the write would send the new mapping's bytes. So a
 * range that handed out views is not unmapped at close() but covered with
 * anonymous zero pages (MAP_FIXED, which drops the old pages at once: the
 * shared object's memory is freed or detached, only address space stays),
 * and given back later by this policy:
 *
 * - A range is unmapped {@linkcode QUARANTINE_MS} after it was closed (one
 *   unref'd timer; close() also sweeps).
 * - At most {@linkcode QUARANTINE_MAX_RANGES} ranges and
 *   {@linkcode QUARANTINE_MAX_BYTES} bytes are held: beyond that the oldest
 *   are unmapped early, {@linkcode QUARANTINE_BATCH} at a time (the newest
 *   range is always held, even when it alone is bigger).
 * - Ranges unmapped together that touch (consecutive mmaps usually do) go
 *   in one munmap, so holding costs about one system call per close, as an
 *   immediate munmap would.
 *
 * I/O that finishes later than that (e.g. a read blocked on an empty pipe)
 * is not covered: nothing tells JavaScript when the runtime's thread is done.
 * Await your I/O before closing the memory it uses.
 *
 * @module
 */
import { ErrnoError } from "./errors.ts";
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { setTimerRef } from "./_runtime.ts";

const C = platform.constants;

/** How long a closed range is held, in milliseconds. */
export const QUARANTINE_MS = 1000;
/** How many ranges are held at most. */
export const QUARANTINE_MAX_RANGES = 1024;
/** How many of the oldest ranges the range cap releases at once. */
export const QUARANTINE_BATCH = 64;
/** How many bytes of address space are held at most (plus the newest range). */
export const QUARANTINE_MAX_BYTES = 2 ** 30;

interface Held {
  readonly address: number;
  readonly length: number;
  readonly since: number;
}

// FIFO, oldest first.
const held: Held[] = [];

/** What is held now, and totals since load (for diagnostics and tests). */
export const quarantined: {
  /** Ranges held now. */
  count: number;
  /** Bytes of address space held now. */
  bytes: number;
  /** Ranges ever quarantined. */
  total: number;
  /** Ranges given back before QUARANTINE_MS because of the caps. */
  early: number;
} = { count: 0, bytes: 0, total: 0, early: 0 };

let timer: ReturnType<typeof setTimeout> | undefined;

/**
 * Covers `[address, address + length)` with anonymous zero pages and holds
 * the range for a while before unmapping it.
 *
 * @throws {ErrnoError} `mmap` failing; the range is then still mapped as it was.
 */
export function quarantine(address: number, length: number): void {
  const result = unsafeLibc.mmap(
    address,
    length,
    C.PROT_READ | C.PROT_WRITE,
    C.MAP_PRIVATE | C.MAP_ANONYMOUS | C.MAP_FIXED | C.MAP_NORESERVE,
    -1,
    0,
  );
  if (result === -1) {
    throw new ErrnoError("mmap", errno(), {
      hint: "could not cover closed memory with zero pages",
    });
  }
  const now = performance.now();
  held.push({ address, length, since: now });
  quarantined.count++;
  quarantined.bytes += length;
  quarantined.total++;
  sweep(now);
  if (quarantined.count > QUARANTINE_MAX_RANGES) {
    const batch = Math.min(QUARANTINE_BATCH, held.length - 1);
    quarantined.early += batch;
    unmapOldest(batch);
  }
  while (held.length > 1 && quarantined.bytes > QUARANTINE_MAX_BYTES) {
    quarantined.early++;
    unmapOldest(1);
  }
  arm(now);
}

/** For tests: the start addresses held now, oldest first. */
export function heldAddressesForTesting(): number[] {
  return held.map((range) => range.address);
}

/** Unmaps every held range now (for tests, and before a limit such as RLIMIT_AS bites). */
export function releaseQuarantine(): void {
  unmapOldest(held.length);
}

/** Unmaps the `count` oldest ranges, touching ones in one call. */
function unmapOldest(count: number): void {
  if (count <= 0) return;
  const ranges = held.splice(0, count);
  if (ranges.length > 1) ranges.sort((a, b) => a.address - b.address);
  let start = -1;
  let end = -1;
  for (const range of ranges) {
    quarantined.count--;
    quarantined.bytes -= range.length;
    if (range.address === end) {
      end += range.length;
      continue;
    }
    // A failure leaves only address space behind; close() already succeeded.
    if (start !== -1) unsafeLibc.munmap(start, end - start);
    start = range.address;
    end = range.address + range.length;
  }
  if (start !== -1) unsafeLibc.munmap(start, end - start);
}

function sweep(now: number): void {
  let due = 0;
  while (due < held.length && now - held[due]!.since >= QUARANTINE_MS) due++;
  unmapOldest(due);
}

function arm(now: number): void {
  if (timer !== undefined || held.length === 0) return;
  const delay = Math.max(0, held[0]!.since + QUARANTINE_MS - now);
  timer = setTimeout(() => {
    timer = undefined;
    const later = performance.now();
    sweep(later);
    arm(later);
  }, Math.ceil(delay));
  setTimerRef(timer, false);
}
