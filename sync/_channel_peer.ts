/**
 * Internal: who the channel's ends are, as the Mutex knows its owner: an
 * owner id (pid and start-time tag), and whether that process is gone.
 * The one place the channel imports them from.
 *
 * @module
 */
import { isOwnerGone, mutexOwnerId } from "./mutex.ts";

/** This process's owner id: `pid | tag << 22`. */
export function selfId(): number {
  return mutexOwnerId();
}

/**
 * Whether the process `id` names is gone: no such pid, a zombie, or the
 * pid reused by a process with another start-time tag.
 */
export function isGone(id: number): boolean {
  return id !== 0 && isOwnerGone(id, true);
}
