/**
 * What the kernel allows and holds for System V shared memory: the limits
 * (`/proc/sys/kernel/shm*`), the segment list (`/proc/sysvipc/shm`, what
 * `ipcs -m` shows), and {@linkcode explainShmgetFailure}, which turns a
 * failed `shmget` and those facts into a sentence naming the limit.
 *
 * @module
 */
import { readTextFile } from "../core/_io.ts";
import { pageSize } from "../core/memory.ts";
import { platform } from "../platform/mod.ts";

const C = platform.constants;
/** System V permission bits (no setuid or sticky bits there). */
export const PERMISSION_BITS = 0o777;

/** A System V key as `ipcs` prints it: `0x0000abcd`. */
export function formatKey(key: number): string {
  return `0x${(key >>> 0).toString(16).padStart(8, "0")}`;
}

/** What a `shmget` call asked for, for {@linkcode explainShmgetFailure}. */
export interface ShmgetRequest {
  /** The key (signed or unsigned); IPC_PRIVATE (0) always makes a new segment. */
  readonly key: number;
  /** The size asked. */
  readonly size: number;
  /** The flags passed (IPC_CREAT, IPC_EXCL, permission bits). */
  readonly flags: number;
}

/** What the kernel had when `shmget` failed, for {@linkcode explainShmgetFailure}. */
export interface ShmgetFacts {
  /** The limits in force. */
  readonly limits: SystemVLimits;
  /** The segments that exist (in this IPC namespace). */
  readonly segments: readonly Pick<SystemVSegmentEntry, "key" | "id" | "size" | "uid" | "mode">[];
}

function pagesFor(size: bigint, page: bigint): bigint {
  return (size + page - 1n) / page;
}

/**
 * Explains a failed `shmget` in words: which limit or which existing
 * segment it ran into, with the values, and what to do. Pure: the facts are
 * passed in, so the message can be checked with any limit.
 *
 * @example
 * ```ts
 * import { explainShmgetFailure } from "@shmkit/shmkit/raw";
 * const limits = { shmmax: 33554432n, shmall: 2097152n, shmmni: 4096, shmmin: 1, pageSize: 4096 };
 * console.log(explainShmgetFailure("EINVAL", { key: 0, size: 67108864, flags: 0o1600 }, {
 *   limits,
 *   segments: [],
 * }));
 * // kernel.shmmax is 33554432 bytes; 67108864 were asked; raise it with sysctl -w kernel.shmmax=67108864 ...
 * ```
 *
 * @param code The errno name shmget failed with ("EINVAL").
 * @returns A sentence, or undefined when the facts don't explain the failure.
 */
export function explainShmgetFailure(
  code: string,
  request: ShmgetRequest,
  facts: ShmgetFacts,
): string | undefined {
  const key = request.key | 0;
  const keyText = formatKey(key);
  const size = BigInt(request.size);
  const { limits } = facts;
  const creating = key === C.IPC_PRIVATE || (request.flags & C.IPC_CREAT) !== 0;
  const existing = key === C.IPC_PRIVATE
    ? undefined
    : facts.segments.find((s) => (s.key | 0) === key);
  const page = BigInt(limits.pageSize);
  const asked = pagesFor(size, page);
  const inUse = facts.segments.reduce((sum, s) => sum + pagesFor(BigInt(s.size), page), 0n);
  const overShmmax = size > limits.shmmax;
  const overShmall = inUse + asked > limits.shmall;
  const overShmmni = facts.segments.length >= limits.shmmni;
  const shmmaxText =
    `kernel.shmmax is ${limits.shmmax} bytes; ${request.size} were asked; raise it with sysctl -w kernel.shmmax=${request.size} (it is per IPC namespace)`;
  const shmallText = `kernel.shmall is ${limits.shmall} pages (${
    limits.shmall * page
  } bytes); ${inUse} are in use and this segment needs ${asked} more (${request.size} bytes); raise it with sysctl -w kernel.shmall=${
    inUse + asked
  } or remove unused segments (ipcs -m, ipcrm)`;
  const shmmniText =
    `kernel.shmmni is ${limits.shmmni} segments and ${facts.segments.length} exist; remove unused ones (ipcs -m, ipcrm) or raise it with sysctl -w kernel.shmmni=${
      facts.segments.length + 1
    }`;
  switch (code) {
    case "EINVAL":
      if (existing !== undefined && size > BigInt(existing.size)) {
        return `segment for key ${keyText} exists with ${existing.size} bytes; ${request.size} were asked; ask for ${existing.size} bytes or fewer (0 accepts any size), or remove it (ipcrm -M ${keyText}) and create it again; a segment never changes size`;
      }
      if (existing === undefined && creating && overShmmax) return shmmaxText;
      if (existing === undefined && creating && size < BigInt(limits.shmmin)) {
        return `a new segment needs at least SHMMIN (${limits.shmmin}) bytes; ${request.size} were asked; size 0 only opens an existing segment`;
      }
      return undefined;
    case "ENOSPC": {
      const reasons = [...(overShmall ? [shmallText] : []), ...(overShmmni ? [shmmniText] : [])];
      return reasons.length === 0 ? undefined : reasons.join("; and ");
    }
    case "ENOMEM": {
      const reasons = [...(overShmmax ? [shmmaxText] : []), ...(overShmall ? [shmallText] : [])];
      return reasons.length > 0
        ? reasons.join("; and ")
        : `the kernel could not allocate ${request.size} bytes for the segment (memory, a memory cgroup limit, or RLIMIT_MEMLOCK with SHM_HUGETLB)`;
    }
    case "EEXIST":
      return existing === undefined
        ? `a segment with key ${keyText} already exists; open it instead, or create without exclusive to get-or-create`
        : `a segment with key ${keyText} already exists (id ${existing.id}, ${existing.size} bytes); open it instead, or create without exclusive to get-or-create`;
    case "ENOENT":
      return `no segment has key ${keyText}; create it first, or check the key (an ftok key changes when its file is deleted and created again)`;
    case "EACCES":
      return existing === undefined
        ? `the segment's permissions do not allow this access`
        : `the segment (id ${existing.id}) has mode 0o${
          (existing.mode & PERMISSION_BITS).toString(8)
        } and owner uid ${existing.uid}; that does not allow this access`;
    default:
      return undefined;
  }
}

/**
 * The kernel's System V shared memory limits, from `/proc/sys/kernel`.
 *
 * `shmmax` and `shmall` are bigints: Linux's default is
 * 18446744073692774399, beyond what a JS number holds exactly. Compare
 * sizes as `BigInt(size) <= limits.shmmax`.
 */
export interface SystemVLimits {
  /** `kernel.shmmax`: the largest segment, in bytes. */
  readonly shmmax: bigint;
  /** `kernel.shmall`: all segments together, in PAGES (see `pageSize`). */
  readonly shmall: bigint;
  /** `kernel.shmmni`: how many segments may exist. */
  readonly shmmni: number;
  /** SHMMIN: the smallest new segment, in bytes (1 on Linux; not tunable). */
  readonly shmmin: number;
  /** The page size `shmall` is counted in. */
  readonly pageSize: number;
}

function readNumber(name: string): bigint {
  const path = `/proc/sys/kernel/${name}`;
  const text = readTextFile(path).trim();
  if (!/^\d+$/.test(text)) throw new Error(`Cannot parse ${path}: ${JSON.stringify(text)}`);
  return BigInt(text);
}

/**
 * Reads the limits (Linux; these files are per IPC namespace).
 *
 * @throws {ErrnoError} `open` with ENOENT where /proc/sys/kernel/shm* is absent.
 */
export function readLimits(): SystemVLimits {
  const shmmni = readNumber("shmmni");
  return {
    shmmax: readNumber("shmmax"),
    shmall: readNumber("shmall"),
    shmmni: shmmni > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(shmmni),
    shmmin: 1,
    pageSize: pageSize(),
  };
}

/** One segment as `/proc/sysvipc/shm` (and `ipcs -m`) shows it. */
export interface SystemVSegmentEntry {
  /** The key, unsigned (0 for IPC_PRIVATE and for segments marked for deletion). */
  readonly key: number;
  /** The segment id (`shmid`). */
  readonly id: number;
  /** The owner's user name, as `ipcs -m` prints it (the uid as text when unknown). */
  readonly owner: string;
  /** Permission bits, 0 to 0o777 (`perms`). */
  readonly perms: number;
  /** Size in bytes (`bytes`). */
  readonly size: number;
  /** Attachments over all processes (`nattch`). */
  readonly nattch: number;
  /** Marked for deletion (IPC_RMID) and waiting for its last detach (`dest` status). */
  readonly markedForDeletion: boolean;
  /** Locked in RAM with SHM_LOCK (`locked` status). */
  readonly locked: boolean;
  /** Raw `shm_perm.mode`, with the SHM_DEST and SHM_LOCKED bits. */
  readonly mode: number;
  /** Creator's pid. */
  readonly cpid: number;
  /** Pid of the last attach or detach. */
  readonly lpid: number;
  /** Owner's user id. */
  readonly uid: number;
  /** Owner's group id. */
  readonly gid: number;
  /** Creator's user id. */
  readonly cuid: number;
  /** Creator's group id. */
  readonly cgid: number;
  /** Last attach, or null if never. */
  readonly atime: Date | null;
  /** Last detach, or null if never. */
  readonly dtime: Date | null;
  /** Creation or last IPC_SET, or null if unknown. */
  readonly ctime: Date | null;
  /** Resident bytes. */
  readonly rss: number;
  /** Swapped-out bytes. */
  readonly swap: number;
}

/** A time in seconds as a Date, or null for 0 ("never"). */
export function dateOrNull(seconds: number): Date | null {
  return seconds === 0 ? null : new Date(seconds * 1000);
}

function userNames(): Map<number, string> {
  const names = new Map<number, string>();
  try {
    for (const line of readTextFile("/etc/passwd").split("\n")) {
      const [name, , uid] = line.split(":");
      if (name !== undefined && uid !== undefined && /^\d+$/.test(uid)) {
        const n = Number(uid);
        if (!names.has(n)) names.set(n, name);
      }
    }
  } catch {
    // No passwd file: owners are shown as numbers, as ipcs does then.
  }
  return names;
}

/**
 * Lists every segment in this IPC namespace from `/proc/sysvipc/shm`: the
 * same segments, keys, ids, owners, permissions, sizes and attachment
 * counts `ipcs -m` shows.
 *
 * @throws {ErrnoError} `open` with ENOENT where /proc/sysvipc is absent (not Linux).
 */
export function readSegments(): SystemVSegmentEntry[] {
  const lines = readTextFile("/proc/sysvipc/shm").split("\n").filter((l) => l.trim() !== "");
  const header = (lines.shift() ?? "").trim().split(/\s+/);
  const column = (name: string): number => {
    const index = header.indexOf(name);
    if (index === -1) throw new Error(`Cannot parse /proc/sysvipc/shm: no ${name} column`);
    return index;
  };
  const at = {
    key: column("key"),
    id: column("shmid"),
    perms: column("perms"),
    size: column("size"),
    cpid: column("cpid"),
    lpid: column("lpid"),
    nattch: column("nattch"),
    uid: column("uid"),
    gid: column("gid"),
    cuid: column("cuid"),
    cgid: column("cgid"),
    atime: column("atime"),
    dtime: column("dtime"),
    ctime: column("ctime"),
  };
  const optional = (name: string): number => header.indexOf(name);
  const rssAt = optional("rss");
  const swapAt = optional("swap");
  const names = lines.length > 0 ? userNames() : new Map<number, string>();
  return lines.map((line) => {
    const cells = line.trim().split(/\s+/);
    const num = (index: number): number => (index < 0 ? 0 : Number(cells[index] ?? "0"));
    const mode = parseInt(cells[at.perms] ?? "0", 8);
    const uid = num(at.uid);
    return {
      key: num(at.key) >>> 0,
      id: num(at.id),
      owner: names.get(uid) ?? String(uid),
      perms: mode & PERMISSION_BITS,
      size: num(at.size),
      nattch: num(at.nattch),
      markedForDeletion: C.SHM_DEST > 0 && (mode & C.SHM_DEST) !== 0,
      locked: C.SHM_LOCKED > 0 && (mode & C.SHM_LOCKED) !== 0,
      mode,
      cpid: num(at.cpid),
      lpid: num(at.lpid),
      uid,
      gid: num(at.gid),
      cuid: num(at.cuid),
      cgid: num(at.cgid),
      atime: dateOrNull(num(at.atime)),
      dtime: dateOrNull(num(at.dtime)),
      ctime: dateOrNull(num(at.ctime)),
      rss: num(rssAt),
      swap: num(swapAt),
    };
  });
}
