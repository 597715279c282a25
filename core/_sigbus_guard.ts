/**
 * The SIGBUS guard: a signal handler, written as machine code, that turns a
 * touch past the end of a truncated file, shm object or memfd into a read of
 * zeros instead of a crash. A peer that shrinks what we have mapped would
 * otherwise kill this process (Deno and Bun die of SIGBUS, exit 135).
 *
 * The handler (core/sigbus/<arch>.S, bytes in _sigbus_code.ts) is copied into
 * a fresh anonymous page that is then made read+exec (never writable and
 * executable at once). Beside it, a read-write data area holds a table of
 * guarded ranges that this module maintains with Atomics, and the handler
 * that was installed before. For a BUS_ADRERR fault inside a guarded range
 * the handler maps anonymous zero pages over [faulting page, range's mark)
 * and returns; every other SIGBUS goes to the previous handler (or the
 * default action), so `kill -BUS` and faults elsewhere behave as before.
 *
 * Installed lazily, by the first range registered. Each Worker loads its own
 * copy of this module: a later copy finds the installed handler (its code
 * bytes and magic words match) and shares its data area.
 *
 * @module
 */
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { unsafeView } from "../ffi/pointer.ts";
import { backend } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { errnoName } from "./errors.ts";
import { SIGBUS_CODE } from "./_sigbus_code.ts";
import {
  CODE,
  DATA,
  DATA_BYTES,
  DATA_MAGIC,
  type GuardArch,
  SLOT,
  SLOT_COUNT,
  SLOT_STATE,
} from "./_sigbus_layout.ts";

const C = platform.constants;
const W = 8; // bytes per data word

interface Installed {
  readonly words: BigInt64Array;
  /** Whether another copy of the library (another Worker) installed it. */
  readonly shared: boolean;
  readonly codeAddress: number;
}

let installed: Installed | undefined;
let refusal: string | undefined;

function hexBytes(hex: string): Uint8Array {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

function pageSize(): number {
  return unsafeLibc.sysconf(C._SC_PAGESIZE);
}

function handlerOf(action: Uint8Array): number {
  const at = platform.structs.sigaction.fields.sa_handler!.offset;
  return Number(new DataView(action.buffer).getBigUint64(at, true));
}

/** The data words of an installed copy of our handler at `handler`, or undefined. */
function recognise(handler: number, code: Uint8Array, page: number): BigInt64Array | undefined {
  // Ours sits CODE.entry bytes into its page, so its page start is readable then.
  if (handler < page || handler % page !== CODE.entry) return undefined;
  const start = handler - CODE.entry;
  const there = unsafeView(start, code.length);
  for (let i = 0; i < code.length; i++) {
    const inAddress = i >= CODE.dataAddress && i < CODE.dataAddress + W;
    if (!inAddress && there[i] !== code[i]) return undefined;
  }
  const dataAddress = Number(new DataView(there.buffer).getBigUint64(CODE.dataAddress, true));
  const words = new BigInt64Array(backend.arrayBuffer(dataAddress, DATA_BYTES));
  return BigInt.asUintN(64, words[DATA.magic / W]!) === DATA_MAGIC ? words : undefined;
}

function sigaction(act: Uint8Array | null, old: Uint8Array | null): boolean {
  return unsafeLibc.sigaction(platform.signals.SIGBUS!, act, old) === 0;
}

/** Installs the handler (or finds another copy's); sets `refusal` when it can't. */
function install(): Installed | undefined {
  const arch = platform.arch as GuardArch;
  const hex = platform.os === "linux" ? SIGBUS_CODE[arch] : undefined;
  if (hex === undefined) {
    refusal = `no handler for ${platform.os}-${platform.arch}`;
    return undefined;
  }
  const code = hexBytes(hex);
  const page = pageSize();
  if (code.length > page) {
    refusal = `the handler (${code.length} bytes) does not fit a ${page}-byte page`;
    return undefined;
  }
  const layout = platform.structs.sigaction;
  const old = new Uint8Array(layout.size);
  if (!sigaction(null, old)) {
    refusal = `sigaction(SIGBUS) failed: ${errnoName(errno())}`;
    return undefined;
  }
  const existing = recognise(handlerOf(old), code, page);
  if (existing !== undefined) {
    return { words: existing, shared: true, codeAddress: handlerOf(old) - CODE.entry };
  }

  const base = unsafeLibc.mmap(
    0,
    page + DATA_BYTES,
    C.PROT_READ | C.PROT_WRITE,
    C.MAP_PRIVATE | C.MAP_ANONYMOUS,
    -1,
    0,
  );
  if (base === -1) {
    refusal = `mmap of the handler's pages failed: ${errnoName(errno())}`;
    return undefined;
  }
  const dataAddress = base + page;
  unsafeView(base, code.length).set(code);
  new DataView(backend.arrayBuffer(base, page)).setBigUint64(
    CODE.dataAddress,
    BigInt(dataAddress),
    true,
  );
  if (unsafeLibc.mprotect(base, page, C.PROT_READ | C.PROT_EXEC) !== 0) {
    const code = errnoName(errno());
    unsafeLibc.munmap(base, page + DATA_BYTES);
    refusal = `executable memory is refused here (mprotect PROT_EXEC: ${code}; ` +
      "a W^X policy such as SELinux execmem or MemoryDenyWriteExecute)";
    return undefined;
  }
  const words = new BigInt64Array(backend.arrayBuffer(dataAddress, DATA_BYTES));
  words[DATA.pageMask / W] = BigInt.asIntN(64, ~BigInt(page - 1));
  words[DATA.oldHandler / W] = BigInt(handlerOf(old));
  Atomics.store(words, DATA.magic / W, BigInt.asIntN(64, DATA_MAGIC));

  // Ours: the old handler's mask (a chained handler then runs as masked as it
  // expects), SA_SIGINFO for the fault address, SA_ONSTACK for the runtime's
  // alternate stack, no SA_NODEFER (a fault inside must not recurse).
  const act = new Uint8Array(layout.size);
  const mask = layout.fields.sa_mask!;
  act.set(old.subarray(mask.offset, mask.offset + mask.size), mask.offset);
  const view = new DataView(act.buffer);
  view.setBigUint64(layout.fields.sa_handler!.offset, BigInt(base + CODE.entry), true);
  view.setInt32(
    layout.fields.sa_flags!.offset,
    C.SA_SIGINFO | C.SA_ONSTACK | C.SA_RESTART,
    true,
  );
  const replaced = new Uint8Array(layout.size);
  if (!sigaction(act, replaced)) {
    refusal = `sigaction(SIGBUS) failed: ${errnoName(errno())}`;
    unsafeLibc.munmap(base, page + DATA_BYTES);
    return undefined;
  }
  if (handlerOf(replaced) !== handlerOf(old)) {
    // Another Worker installed its copy meanwhile: put it back and share it.
    const theirs = recognise(handlerOf(replaced), code, page);
    sigaction(replaced, null);
    if (theirs !== undefined) {
      return { words: theirs, shared: true, codeAddress: handlerOf(replaced) - CODE.entry };
    }
    refusal = "another SIGBUS handler was installed at the same moment";
    return undefined;
  }
  // Our own pages are never unmapped: the handler may run at any time from now.
  return { words, shared: false, codeAddress: base };
}

function ensureInstalled(): Installed | undefined {
  if (installed === undefined && refusal === undefined) {
    try {
      installed = install();
    } catch (error) {
      // A mapping must not fail because its guard could not be set up.
      refusal = `installing failed: ${(error as Error).message}`;
    }
  }
  return installed;
}

function index(slot: number, field: number): number {
  return (DATA.slots + slot * SLOT.size + field) / W;
}

/**
 * UNSAFE, for tests: the guard's data words (installing it first), or
 * undefined when it is unavailable. Writing them can break the handler.
 */
export function unsafeGuardWords(): BigInt64Array | undefined {
  return ensureInstalled()?.words;
}

/** Index of a slot's field in the data words. */
export function slotIndex(slot: number, field: number): number {
  return index(slot, field);
}

/** A guarded range; `release()` it before the range is unmapped. */
export class GuardedRange {
  readonly #words: BigInt64Array;
  /** The range's slot in the table. */
  readonly slot: number;
  #released = false;
  #hit = false;

  constructor(words: BigInt64Array, slot: number) {
    this.#words = words;
    this.slot = slot;
  }

  /** Whether a touch past the object's end was absorbed in this range. */
  get hit(): boolean {
    if (!this.#released && !this.#hit) {
      this.#hit = Atomics.load(this.#words, index(this.slot, SLOT.hits)) > 0n;
    }
    return this.#hit;
  }

  /**
   * Takes the range out of the table and waits until no thread is inside
   * the handler, so that none can map zero pages over whatever is mapped
   * here next. Idempotent.
   */
  release(): void {
    if (this.#released) return;
    const words = this.#words;
    this.#hit = this.hit;
    this.#released = true;
    Atomics.store(words, index(this.slot, SLOT.state), CLAIMED);
    // The handler raises busy before it reads a slot; seeing 0 after the
    // store above means no handler can still be acting on this range.
    let spins = 0;
    while (Atomics.load(words, DATA.busy / W) !== 0n) {
      if (++spins % 1024 === 0) unsafeLibc.syscall(C.SYS_sched_yield, 0, 0, 0, 0, 0, 0);
    }
    Atomics.store(words, index(this.slot, SLOT.state), FREE);
  }
}

// The slot states as the table holds them, made once (registration sits on every create).
const FREE = BigInt(SLOT_STATE.free);
const CLAIMED = BigInt(SLOT_STATE.claimed);
const ACTIVE = BigInt(SLOT_STATE.active);
const READ_WRITE = C.PROT_READ | C.PROT_WRITE;
const READ_WRITE_BIG = BigInt(READ_WRITE);
// 0n to SLOT_COUNT as BigInts, for the high-water mark.
const SLOT_NUMBERS = Array.from({ length: SLOT_COUNT + 1 }, (_, n) => BigInt(n));

/**
 * Registers `[address, address + length)` (page-aligned, mapped from a file
 * or an fd, with protection `prot`) with the guard, installing it first if
 * need be. Returns undefined when the guard is unavailable or its table is
 * full; the range is then unguarded, as it would be without the guard.
 */
export function guardRange(
  address: number,
  length: number,
  prot: number,
): GuardedRange | undefined {
  const state = ensureInstalled();
  if (state === undefined) return undefined;
  const words = state.words;
  for (let slot = 0; slot < SLOT_COUNT; slot++) {
    const claimed = Atomics.compareExchange(words, index(slot, SLOT.state), FREE, CLAIMED);
    if (claimed !== FREE) continue;
    const end = BigInt(address + length);
    Atomics.store(words, index(slot, SLOT.start), BigInt(address));
    Atomics.store(words, index(slot, SLOT.end), end);
    Atomics.store(words, index(slot, SLOT.mark), end);
    Atomics.store(words, index(slot, SLOT.hits), 0n);
    Atomics.store(
      words,
      index(slot, SLOT.prot),
      prot === READ_WRITE ? READ_WRITE_BIG : BigInt(prot),
    );
    const next = SLOT_NUMBERS[slot + 1]!;
    for (;;) {
      const high = Atomics.load(words, DATA.high / W);
      if (high >= next) break;
      if (Atomics.compareExchange(words, DATA.high / W, high, next) === high) break;
    }
    Atomics.store(words, index(slot, SLOT.state), ACTIVE);
    return new GuardedRange(words, slot);
  }
  unguarded++;
  return undefined;
}

let unguarded = 0;

/**
 * The hint for EFAULT from a call that was handed a view of mapped memory:
 * the kernel reports a buffer past the end of a truncated object that way
 * (no signal), before the guard has replaced those pages.
 */
export const TRUNCATED_HINT =
  "the buffer reaches past the end of the file or object it maps: a peer may have truncated it";

/** What the guard can do in this process, and what it has done. */
export interface SigbusGuardStatus {
  /** False where it can't be installed (no executable memory, unsupported platform). */
  readonly available: boolean;
  /** Why it is unavailable; undefined while it is available. */
  readonly reason: string | undefined;
  /** Whether the handler is installed in this process (lazily, by the first shared mapping). */
  readonly installed: boolean;
  /** Whether another copy of shmkit in this process (another Worker) installed it. */
  readonly shared: boolean;
  /** Faults absorbed so far, by every copy of shmkit in this process. */
  readonly faults: number;
  /** Ranges this copy left unguarded because the table was full. */
  readonly unguarded: number;
}

/**
 * The SIGBUS guard's state. It is installed (`sigaction(SIGBUS, ...)` with a
 * handler shmkit writes into a read+exec page) by the first mapping of a
 * file, shm object or memfd; reading `available` installs it too, since only
 * trying tells whether executable memory is allowed here.
 *
 * @example Checking that a peer's truncation can't kill this process
 * ```ts
 * import { sigbusGuard } from "@shmkit/shmkit";
 * if (!sigbusGuard.available) {
 *   console.warn(`shrinking peers can crash this process: ${sigbusGuard.reason}`);
 * }
 * ```
 */
export const sigbusGuard: SigbusGuardStatus = {
  get available(): boolean {
    return ensureInstalled() !== undefined;
  },
  get reason(): string | undefined {
    ensureInstalled();
    return refusal;
  },
  get installed(): boolean {
    return installed !== undefined;
  },
  get shared(): boolean {
    return installed?.shared ?? false;
  },
  get faults(): number {
    return installed === undefined ? 0 : Number(Atomics.load(installed.words, DATA.hits / W));
  },
  get unguarded(): number {
    return unguarded;
  },
};
