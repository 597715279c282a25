/**
 * Internal: who the channel's ends are, and whether the other end's
 * process is gone. An end's id is the Mutex's owner id (pid and start-time
 * tag); liveness is `kill(pid, 0)`, then /proc/<pid>/stat: a zombie is
 * gone, and so is a pid whose start time changed since this process first
 * looked at it (reused by another process).
 *
 * The start time is compared as this process sees it, not with the tag
 * the peer wrote: under qemu-user a process's view of its own start time
 * is synthesized and can be far from the kernel's when the machine is
 * loaded, and the channel checks a live peer every interval for as long
 * as it waits. The cost: a peer that died and whose pid was reused before
 * this end first looked is taken for alive.
 *
 * @module
 */
import { ownerId } from "./_owner.ts";
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { cString } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";

const PID_MASK = 0x003fffff;
const buffer = new Uint8Array(1024);
const decoder = new TextDecoder();

/** This process's owner id: `pid | tag << 22`, as the Mutex's. */
export function selfId(): number {
  return ownerId();
}

/** The fields of /proc/<pid>/stat after the command (the state first); null when it is gone. */
function statFields(pid: number): string[] | null | undefined {
  const fd = unsafeLibc.open(
    cString(`/proc/${pid}/stat`, "path"),
    platform.constants.O_RDONLY | platform.constants.O_CLOEXEC,
    0,
  );
  if (fd < 0) return errno() === platform.errno.ENOENT ? null : undefined;
  const n = unsafeLibc.read(fd, buffer, buffer.length);
  unsafeLibc.close(fd);
  if (n <= 0) return undefined;
  const text = decoder.decode(buffer.subarray(0, n));
  // The command may hold spaces and parentheses: it ends at the last ")".
  return text.slice(text.lastIndexOf(")") + 2).split(" ");
}

/** Watches the process behind one end's id, at most once per interval. */
export class PeerWatch {
  readonly #intervalMs: number;
  #last = -Infinity;
  #gone = false;
  #id = 0;
  #start: string | undefined;

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /** Whether the process `id` names is gone (0: no peer yet, not gone). */
  gone(id: number): boolean {
    // Date.now, as messaging's Liveness: half of performance.now's cost on Deno.
    const now = Date.now();
    if (now >= this.#last && now - this.#last < this.#intervalMs && id === this.#id) {
      return this.#gone;
    }
    this.#last = now;
    this.#gone = this.#look(id);
    return this.#gone;
  }

  #look(id: number): boolean {
    const pid = id & PID_MASK;
    if (pid === 0 || pid === (selfId() & PID_MASK)) return false;
    if (unsafeLibc.kill(pid, 0) === -1 && errno() === platform.errno.ESRCH) return true;
    const fields = statFields(pid);
    if (fields === null) return true;
    if (fields === undefined) return false;
    const state = fields[0];
    if (state === "Z" || state === "X" || state === "x") return true;
    // Field 22, the start time in clock ticks after boot.
    const start = fields[22 - 3];
    if (id !== this.#id) {
      this.#id = id;
      this.#start = start;
      return false;
    }
    return start !== this.#start;
  }
}
