/**
 * The SIGBUS guard's shared layout: where things live in its data page, and
 * the numbers its handler's assembly is built with. Pure data, so the
 * generator (scripts/gen_sigbus.ts), the byte check (tests/sigbus_guard_test.ts)
 * and the guard itself agree on one source.
 *
 * @module
 */
import type { Platform } from "../platform/types.ts";

/** Tags the code page ("shmkitSB") and the data page ("shmkitSD"), little-endian. */
export const CODE_MAGIC = 0x4253_74696b6d6873n;
/** The data page's magic word; bump the last byte when the layout changes. */
export const DATA_MAGIC = 0x4453_74696b6d6873n;

/** The code page: magic, the data page's address, then the handler. */
export const CODE = {
  magic: 0,
  dataAddress: 8,
  entry: 16,
} as const;

/** Byte offsets of the data page's header words (all 64-bit). */
export const DATA = {
  magic: 0,
  /** threads inside the handler right now; unregister waits for 0 */
  busy: 8,
  /** the handler we chain to (0 = SIG_DFL, 1 = SIG_IGN) */
  oldHandler: 16,
  /** slots the handler scans: [0, high) */
  high: 24,
  /** ~(page size - 1) */
  pageMask: 32,
  /** faults absorbed, all ranges */
  hits: 40,
  /** a kernel sigaction of all zeros (SIG_DFL), for the reset before a re-raise */
  defaultAction: 64,
  /** the first slot */
  slots: 128,
} as const;

/** One slot per guarded range; 64-bit words. */
export const SLOT = {
  size: 48,
  /** FREE, CLAIMED or ACTIVE; first, so aarch64 can load it with ldar */
  state: 0,
  start: 8,
  end: 16,
  /** lowest address replaced so far (end when none): the "replaced from here" mark */
  mark: 24,
  hits: 32,
  prot: 40,
} as const;

/** Slot states. Only ACTIVE slots are looked at by the handler. */
export const SLOT_STATE = { free: 0, claimed: 1, active: 2 } as const;

/** Bytes of data the guard maps beside its code page. */
export const DATA_BYTES = 65536;

/** How many slots fit. */
export const SLOT_COUNT = Math.floor((DATA_BYTES - DATA.slots) / SLOT.size);

/** The architectures the handler is written for. */
export type GuardArch = "x86_64" | "aarch64";

function field(p: Platform, struct: "siginfo_t", name: string): number {
  const f = p.structs[struct].fields[name];
  if (f === undefined) throw new Error(`Cannot find ${struct}.${name} in the platform table`);
  return f.offset;
}

/**
 * The symbols the assembly source is assembled with (`as --defsym`): layout
 * offsets from here, everything else from the platform table, so no number in
 * the .S file is written by hand.
 */
export function assemblerSymbols(p: Platform): Record<string, number> {
  const C = p.constants;
  return {
    SYS_MMAP: C.SYS_mmap,
    SYS_RT_SIGACTION: C.SYS_rt_sigaction,
    SYS_TGKILL: C.SYS_tgkill,
    SYS_GETPID: C.SYS_getpid,
    SYS_GETTID: C.SYS_gettid,
    SYS_SCHED_YIELD: C.SYS_sched_yield,
    BUS_ADRERR: C.BUS_ADRERR,
    SI_CODE: field(p, "siginfo_t", "si_code"),
    SI_ADDR: field(p, "siginfo_t", "si_addr"),
    MAP_FLAGS: C.MAP_PRIVATE | C.MAP_ANONYMOUS | C.MAP_FIXED | C.MAP_NORESERVE,
    // The kernel's sigset is _NSIG bits; rt_sigaction insists on that size.
    KSIGSET_SIZE: (C._NSIG - 1) / 8,
    D_BUSY: DATA.busy,
    D_OLD: DATA.oldHandler,
    D_HIGH: DATA.high,
    D_PAGEMASK: DATA.pageMask,
    D_HITS: DATA.hits,
    D_DFL: DATA.defaultAction,
    D_SLOTS: DATA.slots,
    SLOT_SIZE: SLOT.size,
    S_START: SLOT.start,
    S_END: SLOT.end,
    S_MARK: SLOT.mark,
    S_HITS: SLOT.hits,
    S_PROT: SLOT.prot,
    SLOT_ACTIVE: SLOT_STATE.active,
  };
}
