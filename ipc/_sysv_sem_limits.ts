/**
 * Internal: what the kernel allows and holds for System V semaphores: the
 * limits (`/proc/sys/kernel/sem`: SEMMSL SEMMNS SEMOPM SEMMNI), the set list
 * (`/proc/sysvipc/sem`, what `ipcs -s` shows), and pure functions that turn
 * a failed `semget`/`semop` and those facts into a sentence naming the limit.
 *
 * @module
 */
import { readTextFile } from "../core/_io.ts";
import { platform } from "../platform/mod.ts";

const C = platform.constants;
const PERMISSION_BITS = 0o777;

/** A System V key as `ipcs` prints it: `0x0000abcd`. */
function formatKey(key: number): string {
  return `0x${(key >>> 0).toString(16).padStart(8, "0")}`;
}

/**
 * The kernel's System V semaphore limits, the four numbers of
 * `kernel.sem` (per IPC namespace).
 */
export interface SystemVSemaphoreLimits {
  /** SEMMSL: most semaphores in one set. */
  readonly semmsl: number;
  /** SEMMNS: most semaphores in all sets together. */
  readonly semmns: number;
  /** SEMOPM: most operations in one `semop` call. */
  readonly semopm: number;
  /** SEMMNI: most sets. */
  readonly semmni: number;
}

/** One set as `/proc/sysvipc/sem` (and `ipcs -s`) shows it. */
export interface SystemVSemaphoreSetEntry {
  /** The key, unsigned (0 for IPC_PRIVATE). */
  readonly key: number;
  /** The set id (`semid`). */
  readonly id: number;
  /** Permission bits, 0 to 0o777. */
  readonly perms: number;
  /** How many semaphores the set has (`nsems`). */
  readonly size: number;
  /** Owner's user id. */
  readonly uid: number;
  /** Owner's group id. */
  readonly gid: number;
  /** Creator's user id. */
  readonly cuid: number;
  /** Creator's group id. */
  readonly cgid: number;
  /** Last `semop`, or null if never. */
  readonly otime: Date | null;
  /** Creation or last IPC_SET, or null if unknown. */
  readonly ctime: Date | null;
}

function dateOrNull(seconds: number): Date | null {
  return seconds === 0 ? null : new Date(seconds * 1000);
}

/** Parses the text of /proc/sys/kernel/sem. */
export function parseSemLimits(text: string): SystemVSemaphoreLimits {
  const cells = text.trim().split(/\s+/);
  if (cells.length !== 4 || !cells.every((c) => /^\d+$/.test(c))) {
    throw new Error(`Cannot parse /proc/sys/kernel/sem: ${JSON.stringify(text)}`);
  }
  const [semmsl, semmns, semopm, semmni] = cells.map((c) =>
    Math.min(Number(c), Number.MAX_SAFE_INTEGER)
  ) as [number, number, number, number];
  return { semmsl, semmns, semopm, semmni };
}

/**
 * Reads the limits (Linux; per IPC namespace).
 *
 * @throws {ErrnoError} `open` with ENOENT where /proc/sys/kernel/sem is absent.
 */
export function readSemLimits(): SystemVSemaphoreLimits {
  return parseSemLimits(readTextFile("/proc/sys/kernel/sem"));
}

/**
 * Lists every set in this IPC namespace from `/proc/sysvipc/sem`.
 *
 * @throws {ErrnoError} `open` with ENOENT where /proc/sysvipc is absent.
 */
export function readSemaphoreSets(): SystemVSemaphoreSetEntry[] {
  const lines = readTextFile("/proc/sysvipc/sem").split("\n").filter((l) => l.trim() !== "");
  const header = (lines.shift() ?? "").trim().split(/\s+/);
  const column = (name: string): number => {
    const index = header.indexOf(name);
    if (index === -1) throw new Error(`Cannot parse /proc/sysvipc/sem: no ${name} column`);
    return index;
  };
  const at = {
    key: column("key"),
    id: column("semid"),
    perms: column("perms"),
    nsems: column("nsems"),
    uid: column("uid"),
    gid: column("gid"),
    cuid: column("cuid"),
    cgid: column("cgid"),
    otime: column("otime"),
    ctime: column("ctime"),
  };
  return lines.map((line) => {
    const cells = line.trim().split(/\s+/);
    const num = (index: number): number => Number(cells[index] ?? "0");
    return {
      key: num(at.key) >>> 0,
      id: num(at.id),
      perms: parseInt(cells[at.perms] ?? "0", 8) & PERMISSION_BITS,
      size: num(at.nsems),
      uid: num(at.uid),
      gid: num(at.gid),
      cuid: num(at.cuid),
      cgid: num(at.cgid),
      otime: dateOrNull(num(at.otime)),
      ctime: dateOrNull(num(at.ctime)),
    };
  });
}

/** What the kernel had when a call failed. */
export interface SemaphoreFacts {
  /** The limits in force. */
  readonly limits: SystemVSemaphoreLimits;
  /** The sets that exist (in this IPC namespace). */
  readonly sets: readonly Pick<SystemVSemaphoreSetEntry, "key" | "id" | "size" | "uid" | "perms">[];
}

function sysctl(limits: SystemVSemaphoreLimits, change: Partial<SystemVSemaphoreLimits>): string {
  const l = { ...limits, ...change };
  return `sysctl -w kernel.sem="${l.semmsl} ${l.semmns} ${l.semopm} ${l.semmni}"`;
}

/**
 * Explains a failed `semget(key, nsems, flags)` in words: the limit
 * (SEMMSL, SEMMNS, SEMMNI) or the existing set it ran into, with the values
 * and the sysctl that raises the limit. Pure: the facts are passed in.
 *
 * @param code The errno name ("EINVAL").
 * @returns A sentence, or undefined when the facts don't explain it.
 */
export function explainSemgetFailure(
  code: string,
  request: { readonly key: number; readonly nsems: number; readonly flags: number },
  facts: SemaphoreFacts,
): string | undefined {
  const key = request.key | 0;
  const keyText = formatKey(key);
  const { limits } = facts;
  const creating = key === C.IPC_PRIVATE || (request.flags & C.IPC_CREAT) !== 0;
  const existing = key === C.IPC_PRIVATE ? undefined : facts.sets.find((s) => (s.key | 0) === key);
  const inUse = facts.sets.reduce((sum, s) => sum + s.size, 0);
  switch (code) {
    case "EINVAL":
      if (existing !== undefined && request.nsems > existing.size) {
        return `the set for key ${keyText} exists with ${existing.size} semaphores; ${request.nsems} were asked; ask for ${existing.size} (0 accepts any number), or remove it (ipcrm -S ${keyText}) and create it again; a set never changes size`;
      }
      if (existing === undefined && creating && request.nsems > limits.semmsl) {
        return `SEMMSL (kernel.sem, first number) is ${limits.semmsl} semaphores per set; ${request.nsems} were asked; raise it with ${
          sysctl(limits, { semmsl: request.nsems })
        } (it is per IPC namespace)`;
      }
      return undefined;
    case "ENOSPC": {
      const reasons: string[] = [];
      if (facts.sets.length >= limits.semmni) {
        reasons.push(
          `SEMMNI (kernel.sem, fourth number) is ${limits.semmni} sets and ${facts.sets.length} exist; remove unused ones (ipcs -s, ipcrm -s) or raise it with ${
            sysctl(limits, { semmni: facts.sets.length + 1 })
          }`,
        );
      }
      if (inUse + request.nsems > limits.semmns) {
        reasons.push(
          `SEMMNS (kernel.sem, second number) is ${limits.semmns} semaphores in all sets; ${inUse} are in use and this set needs ${request.nsems} more; remove unused sets (ipcs -s, ipcrm -s) or raise it with ${
            sysctl(limits, { semmns: inUse + request.nsems })
          }`,
        );
      }
      return reasons.length === 0 ? undefined : reasons.join("; and ");
    }
    case "EEXIST":
      return existing === undefined
        ? `a semaphore set with key ${keyText} already exists; open it instead, or create without exclusive to get-or-create`
        : `a semaphore set with key ${keyText} already exists (id ${existing.id}, ${existing.size} semaphores); open it instead, or create without exclusive to get-or-create`;
    case "ENOENT":
      return `no semaphore set has key ${keyText}; create it first, or check the key (an ftok key changes when its file is deleted and created again)`;
    case "EACCES":
      return existing === undefined
        ? "the set's permissions do not allow this access"
        : `the set (id ${existing.id}) has mode 0o${
          existing.perms.toString(8)
        } and owner uid ${existing.uid}; that does not allow this access`;
    default:
      return undefined;
  }
}

/** Explains E2BIG from `semop`: more operations than SEMOPM allows. */
export function explainTooManyOps(count: number, limits: SystemVSemaphoreLimits): string {
  return `SEMOPM (kernel.sem, third number) is ${limits.semopm} operations per call; ${count} were given; split them, or raise it with ${
    sysctl(limits, { semopm: count })
  }`;
}
