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
 *   are unmapped early (the newest range is always held, even when it alone
 *   is bigger).
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
export const QUARANTINE_MAX_RANGES = 128;
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
  while (
    held.length > 1 &&
    (quarantined.count > QUARANTINE_MAX_RANGES || quarantined.bytes > QUARANTINE_MAX_BYTES)
  ) {
    quarantined.early++;
    unmapOldest();
  }
  arm(now);
}

/** Unmaps every held range now (for tests, and before a limit such as RLIMIT_AS bites). */
/** For tests: the start addresses held now, oldest first. */
export function heldAddressesForTesting(): number[] {
  return held.map((range) => range.address);
}

export function releaseQuarantine(): void {
  while (held.length > 0) unmapOldest();
}

function unmapOldest(): void {
  const oldest = held.shift()!;
  quarantined.count--;
  quarantined.bytes -= oldest.length;
  // A failure leaves only address space behind; close() already succeeded.
  unsafeLibc.munmap(oldest.address, oldest.length);
}

function sweep(now: number): void {
  while (held.length > 0 && now - held[0]!.since >= QUARANTINE_MS) unmapOldest();
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
