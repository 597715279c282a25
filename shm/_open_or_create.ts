/**
 * {@linkcode SharedMemory.openOrCreate}: many processes open one name at
 * once, exactly one creates and initializes the object, the others wait on
 * its ready word (see _ready.ts) and find out if the initializer died.
 *
 * @module
 */
import { ErrnoError } from "../core/errors.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { pageSize, roundUpToPage } from "../core/memory.ts";
import { statPath } from "../core/_io.ts";
import { Mapping } from "../mapping/mapping.ts";
import { notify } from "../sync/wait.ts";
import { checkOptions, checkSize } from "../core/_validate.ts";
import { awaitReady, FAILED, READY, sleep } from "./_ready.ts";
import { SHM_DIR, shmName } from "./_names.ts";
import { deadCreatorOf } from "./_creator.ts";
import type { SharedMemory, SharedMemoryCreateOptions } from "./shared_memory.ts";

/** The empty-object wait polls every 1 ms; the creator record is read every this many polls. */
const CREATOR_CHECK_ROUNDS = 20;

/** SharedMemory's create (with `extra` bytes past the mapped ones) and open. */
export interface Makers {
  readonly create: (options: SharedMemoryCreateOptions, extra: number) => SharedMemory;
  readonly open: (name: string, size: number) => SharedMemory;
}

/** Options of {@linkcode SharedMemory.openOrCreate}. */
export interface SharedMemoryOpenOrCreateOptions {
  /** The name every process agrees on. */
  readonly name: string;
  /** Size in bytes the processes need; the object gets one page more for its ready word. */
  readonly size: number;
  /**
   * Fills the new object. Runs in exactly one of the processes racing to
   * open the name (the one whose create won), before any of them gets the
   * object. If it throws, the object is removed and the error is thrown
   * from this process's call; the waiting ones start over.
   */
  readonly init: (shm: SharedMemory) => void | Promise<void>;
  /** Permission bits of the object if this process creates it (default 0o600). */
  readonly mode?: number;
  /** Keep the object at exit if this process creates it (default false, as with create). */
  readonly persist?: boolean;
  /**
   * How long to wait for another process's `init`, in milliseconds (default
   * 30000; Infinity waits as long as the initializer lives).
   */
  readonly timeoutMs?: number;
  /** Ends the wait early; the call then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** Internal: the body of {@linkcode SharedMemory.openOrCreate}. */
export async function openOrCreate(
  options: SharedMemoryOpenOrCreateOptions,
  makers: Makers,
): Promise<SharedMemory> {
  const o = checkOptions(options, "options");
  const name = shmName(o.name as string);
  const size = checkSize(o.size, "size");
  if (typeof o.init !== "function") {
    throw new TypeError(`Cannot use init: expected a function, got ${typeof o.init}`);
  }
  const timeout = o.timeoutMs ?? 30000;
  if (typeof timeout !== "number" || !(timeout >= 0)) {
    throw new RangeError(`Cannot use timeoutMs ${timeout}: expected 0 or more milliseconds`);
  }
  const deadline = performance.now() + timeout;
  const page = pageSize();
  for (;;) {
    let shm: SharedMemory;
    try {
      shm = makers.create({
        name: name.name,
        size,
        ...(o.mode === undefined ? {} : { mode: o.mode }),
        ...(o.persist === undefined ? {} : { persist: o.persist }),
      }, page);
    } catch (error) {
      if (!(error instanceof ErrnoError) || error.code !== "EEXIST") throw error;
      const joined = await join(makers, name.name, size, deadline, timeout, o.signal);
      if (joined !== undefined) return joined;
      continue; // gone or failed meanwhile: race to create it again
    }
    let ready: Mapping | undefined;
    let word: Int32Array | undefined;
    try {
      ready = Mapping.fromFd(shm.fd, { offset: roundUpToPage(size), length: 4 });
      word = ready.view(Int32Array, 0, 1);
      // Waiters check that this pid lives while the word holds it.
      Atomics.store(word, 0, unsafeLibc.getpid());
      await o.init(shm);
    } catch (error) {
      // Unlink first, so that the waiters woken by FAILED create a new one.
      shm.close();
      shm.unlink();
      if (word !== undefined) {
        Atomics.store(word, 0, FAILED);
        notify(word, 0);
      }
      ready?.close();
      throw error;
    }
    Atomics.store(word, 0, READY);
    notify(word, 0);
    ready.close();
    return shm;
  }
}

/**
 * Opens an object another process created with openOrCreate and waits for
 * its init; undefined when it went away or its init failed.
 */
async function join(
  makers: Makers,
  name: string,
  size: number,
  deadline: number,
  timeout: number,
  signal: AbortSignal | undefined,
): Promise<SharedMemory | undefined> {
  const quoted = JSON.stringify(name);
  // The creator sizes the object right after shm_open: wait out an empty one,
  // unless its recorded creator died (a persistent one stays empty for good).
  for (let round = 0; platform.os === "linux"; round++) {
    const status = statPath(SHM_DIR + name);
    if (status === undefined) return undefined;
    if (status.size > 0) break;
    if (signal?.aborted) throw signal.reason;
    const dead = round % CREATOR_CHECK_ROUNDS === 0 ? deadCreatorOf(SHM_DIR + name) : undefined;
    if (dead !== undefined) {
      throw new Error(
        `Cannot open ${quoted}: its creator (pid ${dead.pid}) died before sizing it, so it is empty for good; remove it with SharedMemory.unlink(${quoted}) and start over`,
      );
    }
    if (performance.now() >= deadline) {
      throw new Error(
        `Cannot open ${quoted}: timed out after ${timeout} ms; it stayed empty (its creator may have died before sizing it: unlink it and start over)`,
      );
    }
    await sleep(1);
  }
  let shm: SharedMemory;
  try {
    shm = makers.open(name, size);
  } catch (error) {
    if (error instanceof ErrnoError && error.code === "ENOENT") return undefined;
    throw error;
  }
  let why;
  try {
    const total = shm.stat().size;
    const page = pageSize();
    if (total < roundUpToPage(size) + page) {
      throw new RangeError(
        `Cannot open ${quoted} with openOrCreate: it has ${total} bytes, not the ${
          roundUpToPage(size) + page
        } that openOrCreate makes for size ${size} (one page more for its ready word); was it made otherwise, or with another size?`,
      );
    }
    const ready = Mapping.fromFd(shm.fd, { offset: total - page, length: 4 });
    try {
      // Sized but not claimed yet (word 0): only the creator record can say it died.
      const unclaimedGone = () => deadCreatorOf(SHM_DIR + name)?.pid;
      why = await awaitReady(ready.view(Int32Array, 0, 1), deadline, signal, unclaimedGone);
    } finally {
      ready.close();
    }
  } catch (error) {
    shm.close();
    throw error;
  }
  if (why === undefined) return shm;
  shm.close();
  switch (why.kind) {
    case "failed":
      await sleep(1); // its creator is removing it
      return undefined;
    case "dead":
      throw new Error(
        `Cannot open ${quoted}: its ${
          why.claimed ? "initializer" : "creator"
        } (pid ${why.pid}) died before init finished, so its contents are unknown; remove it with SharedMemory.unlink(${quoted}) and start over`,
      );
    case "timed-out":
      throw new Error(
        `Cannot open ${quoted}: timed out after ${timeout} ms waiting for ${
          why.state > 0 ? `its initializer (pid ${why.state})` : "its creator"
        } to finish init`,
      );
    case "aborted":
      throw why.reason;
  }
}
