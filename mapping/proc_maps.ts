/**
 * This process's own mappings, from `/proc/self/maps` (Linux).
 *
 * @example Show the lines a mapping adds
 * ```ts
 * import { Mapping, readProcMaps } from "@shmkit/shmkit";
 * using mapping = Mapping.anonymous(4096);
 * const mine = readProcMaps().filter((entry) => entry.contains(mapping.unsafeAddress));
 * console.log(mine[0]?.line);
 * ```
 *
 * @module
 */
import { readTextFile } from "../core/_io.ts";

/** One line of `/proc/self/maps`. */
export interface ProcMapsEntry {
  /** First address. */
  readonly start: number;
  /** One past the last address. */
  readonly end: number;
  /** Permissions as the kernel prints them, e.g. "rw-s" ("s" shared, "p" private). */
  readonly perms: string;
  /** Offset into the file. */
  readonly offset: number;
  /** Device, "major:minor". */
  readonly device: string;
  /** Inode of the file, 0 for anonymous memory. */
  readonly inode: number;
  /** File path or pseudo-name ("[heap]", "/dev/shm/x", "/memfd:x (deleted)"), "" if none. */
  readonly pathname: string;
  /** The line as read. */
  readonly line: string;
  /** Whether `address` lies in this range. */
  contains(address: number): boolean;
}

/**
 * Reads and parses `/proc/self/maps`.
 *
 * @throws {ErrnoError} `open` with ENOENT where /proc is not mounted (or not Linux).
 */
export function readProcMaps(): ProcMapsEntry[] {
  const entries: ProcMapsEntry[] = [];
  for (const line of readTextFile("/proc/self/maps").split("\n")) {
    const match = /^([0-9a-f]+)-([0-9a-f]+) (\S+) ([0-9a-f]+) (\S+) (\d+)\s*(.*)$/.exec(line);
    if (match === null) continue;
    const start = parseInt(match[1]!, 16);
    const end = parseInt(match[2]!, 16);
    entries.push({
      start,
      end,
      perms: match[3]!,
      offset: parseInt(match[4]!, 16),
      device: match[5]!,
      inode: Number(match[6]),
      pathname: match[7]!,
      line,
      contains: (address: number) => address >= start && address < end,
    });
  }
  return entries;
}
