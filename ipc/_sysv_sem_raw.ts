/**
 * Internal: thin System V semaphore wrappers (`semget`, `semop`,
 * `semtimedop`, `semctl`), with failures thrown as {@linkcode ErrnoError}s
 * that name the limit or say what happened. `struct sembuf` and
 * `struct semid_ds` use the platform's generated layouts.
 *
 * @module
 */
import { ErrnoError, errnoName } from "../core/errors.ts";
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { allocStruct, readField, writeField } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";
import { checkInteger } from "../core/_validate.ts";
import {
  explainSemgetFailure,
  explainTooManyOps,
  readSemaphoreSets,
  readSemLimits,
} from "./_sysv_sem_limits.ts";
import { allocTimespec, type Timespec, writeTimespec } from "../sync/_futex.ts";

const C = platform.constants;
const E = platform.errno;
const SEMBUF = platform.structs.sembuf;

/** The largest semaphore value on Linux (SEMVMX, a kernel constant, not tunable). */
export const SEMVMX = 32767;

/** Checks a System V key: -2^31 to 2^32 - 1, returned as C's signed `key_t`. */
export function checkKey(value: unknown, what = "key"): number {
  return checkInteger(value, what, -0x80000000, 0xffffffff) | 0;
}

/** Checks a set id: an integer from 0 to 2^31 - 1. */
export function checkId(value: unknown, what = "id"): number {
  return checkInteger(value, what, 0, 0x7fffffff);
}

/** Whether semtimedop exists (Linux); elsewhere timed waits poll. */
export function haveSemtimedop(): boolean {
  return unsafeLibc.semtimedop !== undefined;
}

export const GONE =
  "no semaphore set has this id: it was removed (IPC_RMID, ipcrm -s) or the id is wrong";
export const REMOVED_WHILE_WAITING =
  "the semaphore set was removed (IPC_RMID, ipcrm -s) while this call waited";

function hintFor(code: string, call: string, count: number): string | undefined {
  switch (code) {
    case "EIDRM":
      return call === "semctl" ? GONE : REMOVED_WHILE_WAITING;
    case "EINVAL":
      return GONE;
    case "EFBIG":
      return "a semaphore index is not below the set's number of semaphores";
    case "E2BIG":
      try {
        return explainTooManyOps(count, readSemLimits());
      } catch {
        return "more operations than SEMOPM allows in one call";
      }
    case "ERANGE":
      return `a semaphore's value would pass SEMVMX (${SEMVMX}) or its undo adjustment SEMAEM (${SEMVMX})`;
    case "EACCES":
      return "the set's permissions do not allow this (waiting and decrementing need write permission, reading needs read)";
    case "EPERM":
      return "IPC_RMID and IPC_SET need the owner's or creator's uid, or CAP_SYS_ADMIN";
    case "ENOSPC":
      return "the kernel could not allocate an undo structure for SEM_UNDO";
    case "ENOMEM":
      return "the kernel is out of memory for this call";
    default:
      return undefined;
  }
}

/** Builds the ErrnoError of a failed semaphore call on set `id`. */
export function semError(call: string, code: number, id: number, count = 0): ErrnoError {
  const hint = hintFor(errnoName(code), call.startsWith("semctl") ? "semctl" : call, count);
  return new ErrnoError(call, code, hint === undefined ? { id } : { id, hint });
}

/**
 * `semget(key, nsems, semflg)`: on failure the error names the limit
 * (SEMMSL, SEMMNS, SEMMNI) or the existing set the call ran into.
 */
export function semget(key: number, nsems: number, flags: number): number {
  const id = unsafeLibc.semget(key, nsems, flags);
  if (id !== -1) return id;
  const code = errno();
  let hint: string | undefined;
  try {
    hint = explainSemgetFailure(errnoName(code), { key, nsems, flags }, {
      limits: readSemLimits(),
      sets: readSemaphoreSets(),
    });
  } catch {
    // No /proc: the errno speaks for itself.
  }
  const options = key === C.IPC_PRIVATE ? {} : { key };
  throw new ErrnoError("semget", code, hint === undefined ? options : { ...options, hint });
}

/** One operation of a `semop` call. */
export interface SemaphoreOperation {
  /** The semaphore's index in the set. */
  readonly index: number;
  /**
   * What to do: a positive number adds it (never waits); a negative number
   * waits until the value is at least its size, then subtracts it; 0 waits
   * until the value is 0.
   */
  readonly delta: number;
  /**
   * SEM_UNDO: the kernel reverses this change when the process ends, however
   * it ends (SIGKILL included). Default false.
   */
  readonly undo?: boolean;
}

/** Checks operations against a set of `size` semaphores and encodes them as `struct sembuf[]`. */
export function encodeOperations(
  operations: unknown,
  size: number,
  extraFlags: number,
): Uint8Array<ArrayBuffer> {
  if (!Array.isArray(operations) || operations.length === 0) {
    throw new TypeError("Cannot operate on semaphores: expected a non-empty array of operations");
  }
  const bytes = new Uint8Array(SEMBUF.size * operations.length);
  operations.forEach((op: unknown, i) => {
    if (typeof op !== "object" || op === null) {
      throw new TypeError(`Cannot operate on semaphores: operation ${i} is not an object`);
    }
    const o = op as Partial<SemaphoreOperation>;
    const index = checkInteger(o.index, `operations[${i}].index`, 0, size - 1);
    const delta = checkInteger(o.delta, `operations[${i}].delta`, -SEMVMX, SEMVMX);
    if (o.undo !== undefined && typeof o.undo !== "boolean") {
      throw new TypeError(`Cannot use operations[${i}].undo: expected a boolean`);
    }
    const flags = extraFlags | (o.undo === true ? C.SEM_UNDO : 0);
    const one = bytes.subarray(i * SEMBUF.size, (i + 1) * SEMBUF.size);
    writeField(one, SEMBUF, "sem_num", index);
    writeField(one, SEMBUF, "sem_op", delta);
    writeField(one, SEMBUF, "sem_flg", flags);
  });
  return bytes;
}

/** The operations that undo `bytes` (deltas negated, IPC_NOWAIT), or undefined when none change a value. */
export function inverseOperations(bytes: Uint8Array): Uint8Array<ArrayBuffer> | undefined {
  const count = bytes.length / SEMBUF.size;
  const out = new Uint8Array(bytes.length);
  let changes = 0;
  for (let i = 0; i < count; i++) {
    const from = bytes.subarray(i * SEMBUF.size, (i + 1) * SEMBUF.size);
    const to = out.subarray(i * SEMBUF.size, (i + 1) * SEMBUF.size);
    const delta = readField(from, SEMBUF, "sem_op");
    if (delta !== 0) changes++;
    writeField(to, SEMBUF, "sem_num", readField(from, SEMBUF, "sem_num"));
    writeField(to, SEMBUF, "sem_op", -delta);
    writeField(
      to,
      SEMBUF,
      "sem_flg",
      (readField(from, SEMBUF, "sem_flg") & C.SEM_UNDO) | C.IPC_NOWAIT,
    );
  }
  return changes === 0 ? undefined : out;
}

/** The number of operations in encoded bytes. */
export function operationCount(bytes: Uint8Array): number {
  return bytes.length / SEMBUF.size;
}

let timespec: Timespec | undefined;

/**
 * `semop`, or `semtimedop` with a relative timeout (Infinity: none);
 * EINTR is retried with the time left. `argument` is `bytes` in the form
 * semop takes fastest (see ffi/_arguments.ts's bufferArgument).
 *
 * @returns true when done, false when it would wait (IPC_NOWAIT) or the time ran out.
 */
export function semopTimed(
  id: number,
  bytes: Uint8Array,
  timeoutMs: number,
  argument: Uint8Array = bytes,
): boolean {
  const count = operationCount(bytes);
  if (timeoutMs === Infinity) {
    // The hot path (an uncontended lock or unlock): no clock.
    for (;;) {
      if (unsafeLibc.semop(id, argument, count) === 0) return true;
      const code = errno();
      if (code === E.EAGAIN) return false;
      if (code !== E.EINTR) throw semError("semop", code, id, count);
    }
  }
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const timed = unsafeLibc.semtimedop;
    if (timed === undefined) throw new Error(`Cannot semtimedop: ${platform.os} has none`);
    timespec ??= allocTimespec();
    writeTimespec(timespec.view, deadline - performance.now());
    if (timed(id, bytes, count, timespec.bytes) === 0) return true;
    const code = errno();
    if (code === E.EAGAIN) return false;
    if (code !== E.EINTR) throw semError("semtimedop", code, id, count);
    if (performance.now() >= deadline) return false;
  }
}

/** `semctl(id, index, cmd)` for GETVAL, GETPID, GETNCNT, GETZCNT. */
export function semctlGet(id: number, index: number, command: number, name: string): number {
  const result = unsafeLibc.semctl(id, index, command, null);
  if (result === -1) throw semError(`semctl(${name})`, errno(), id);
  return result;
}

/** `semctl(id, index, SETVAL, value)`. */
export function semctlSetValue(id: number, index: number, value: number): void {
  if (unsafeLibc.semctl_val(id, index, C.SETVAL, value) === -1) {
    throw semError("semctl(SETVAL)", errno(), id);
  }
}

/** `semctl(id, 0, GETALL, array)`. */
export function semctlGetAll(id: number, size: number): number[] {
  const values = new Uint16Array(size);
  if (unsafeLibc.semctl(id, 0, C.GETALL, values) === -1) {
    throw semError("semctl(GETALL)", errno(), id);
  }
  return [...values];
}

/** `semctl(id, 0, SETALL, array)`. */
export function semctlSetAll(id: number, values: readonly number[]): void {
  // The kernel reads nsems values: never hand it a shorter buffer.
  if (values.length === 0) throw new RangeError("Cannot set all semaphores: no values");
  const array = Uint16Array.from(values);
  if (unsafeLibc.semctl(id, 0, C.SETALL, array) === -1) {
    throw semError("semctl(SETALL)", errno(), id);
  }
}

/** `struct semid_ds` decoded; times are seconds (0: never). */
export interface SemidDs {
  readonly key: number;
  readonly uid: number;
  readonly gid: number;
  readonly cuid: number;
  readonly cgid: number;
  readonly mode: number;
  readonly otime: number;
  readonly ctime: number;
  readonly nsems: number;
}

/** Decodes a `struct semid_ds` (the running platform's layout by default). */
export function decodeSemidDs(
  bytes: Uint8Array,
  layout = platform.structs.semid_ds,
): SemidDs {
  const get = (name: string): number => readField(bytes, layout, name);
  return {
    key: get("sem_perm.__key") >>> 0,
    uid: get("sem_perm.uid"),
    gid: get("sem_perm.gid"),
    cuid: get("sem_perm.cuid"),
    cgid: get("sem_perm.cgid"),
    mode: get("sem_perm.mode"),
    otime: get("sem_otime"),
    ctime: get("sem_ctime"),
    nsems: get("sem_nsems"),
  };
}

/** `semctl(id, 0, IPC_STAT, &buf)`. */
export function semctlStat(id: number): SemidDs {
  const buffer = allocStruct(platform.structs.semid_ds);
  if (unsafeLibc.semctl(id, 0, C.IPC_STAT, buffer) === -1) {
    throw semError("semctl(IPC_STAT)", errno(), id);
  }
  return decodeSemidDs(buffer);
}

/** Whether set `id` is gone (IPC_STAT fails with EINVAL or EIDRM). */
export function semGone(id: number): boolean {
  const buffer = allocStruct(platform.structs.semid_ds);
  if (unsafeLibc.semctl(id, 0, C.IPC_STAT, buffer) === 0) return false;
  const code = errno();
  return code === E.EINVAL || code === E.EIDRM;
}

/** `semctl(id, 0, IPC_RMID)`: removes the set at once; waiters fail with EIDRM. */
export function semctlRemove(id: number): void {
  if (unsafeLibc.semctl(id, 0, C.IPC_RMID, null) === -1) {
    throw semError("semctl(IPC_RMID)", errno(), id);
  }
}
