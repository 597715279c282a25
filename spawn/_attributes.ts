/**
 * The spawn attributes every child gets: every catchable signal back to its
 * default, an empty signal mask, and the given flags and group. Shared by
 * `spawn.ts` and the bench's floors, so both hand `posix_spawn` the same
 * attributes.
 *
 * @module
 */
import { PosixSpawnAttributes, SignalSet, SpawnFlags } from "./raw.ts";

// Attributes depend only on flags and group; kept for the life of the process.
const attributeCache = new Map<number, PosixSpawnAttributes>();
let lastFlags = -1;
let lastPgroup = -1;
let last: PosixSpawnAttributes | undefined;

/** The flags every child gets (signal defaults, signal mask). */
export const BASE_FLAGS: number = SpawnFlags.SETSIGDEF | SpawnFlags.SETSIGMASK;

/**
 * The attributes for `flags` and process group `pgroup` (read-only once
 * made: one serves any number of spawns). Default signal dispositions and an
 * empty mask always; `pgroup` is used only with `SpawnFlags.SETPGROUP`.
 */
export function attributesFor(flags: number = BASE_FLAGS, pgroup = 0): PosixSpawnAttributes {
  if (flags === lastFlags && pgroup === lastPgroup) return last!;
  // flags fit in 16 bits, a pgroup in 31: one number keys both.
  const key = pgroup * 0x10000 + flags;
  let attributes = attributeCache.get(key);
  if (attributes === undefined) {
    attributes = new PosixSpawnAttributes()
      .setSigDefault(SignalSet.every())
      .setSigMask(SignalSet.empty())
      .setFlags(flags);
    if ((flags & SpawnFlags.SETPGROUP) !== 0) attributes.setPgroup(pgroup);
    if (attributeCache.size >= 16) return attributes; // not kept: the caller's to drop
    attributeCache.set(key, attributes);
  }
  lastFlags = flags;
  lastPgroup = pgroup;
  last = attributes;
  return attributes;
}
