/**
 * System V semaphores: {@linkcode SystemVSemaphoreSet}, a set of counters
 * the kernel keeps (`semget`, `semop`, `semtimedop`, `semctl`), shared by
 * key or id with any process, C and Python included (`ipcs -s` lists them,
 * `ipcrm -s` removes them).
 *
 * SEM_UNDO is what makes them a lock that survives its holder: the kernel
 * remembers each process's changes made with it and reverses them when the
 * process ends, however it ends (SIGKILL included).
 *
 * The classic traps become errors that say what happened: the limits of
 * `kernel.sem` (SEMMSL, SEMMNS, SEMOPM, SEMMNI) with the sysctl that raises
 * them, a key that exists with another number of semaphores, EIDRM when the
 * set is removed while a call waits.
 *
 * @example A lock that comes back when its holder dies
 * ```ts
 * import { SystemVSemaphoreSet } from "@shmkit/shmkit/ipc";
 * const set = SystemVSemaphoreSet.create(1, { initial: 1 });
 * set.acquire(); // semop -1 with SEM_UNDO
 * try {
 *   // critical section
 * } finally {
 *   set.release();
 * }
 * set.remove();
 * ```
 *
 * @module
 */
import { ErrnoError } from "../core/errors.ts";
import { platform } from "../platform/mod.ts";
import { checkBoolean, checkInteger, checkMode, checkOptions } from "../core/_validate.ts";
import { type AbortOptions, checkSignal, checkTimeout } from "../sync/_futex.ts";
import {
  checkId,
  checkKey,
  encodeOperations,
  haveSemtimedop,
  type SemaphoreOperation,
  semctlGet,
  semctlGetAll,
  semctlRemove,
  semctlSetAll,
  semctlSetValue,
  semctlStat,
  semget,
  semopTimed,
  SEMVMX,
} from "./_sysv_sem_raw.ts";
import {
  readSemaphoreSets,
  readSemLimits,
  type SystemVSemaphoreLimits,
  type SystemVSemaphoreSetEntry,
} from "./_sysv_sem_limits.ts";
import { semopAsync } from "./_sysv_sem_async.ts";
import { bufferArgument } from "../ffi/_arguments.ts";

import type {
  SemaphoreAcquireAsyncOptions,
  SemaphoreAcquireOptions,
  SemaphoreAsyncWaitOptions,
  SemaphoreWaitOptions,
  SystemVSemaphoreCreateOptions,
  SystemVSemaphoreOpenOptions,
  SystemVSemaphoreSetStatus,
} from "./_sysv_sem_types.ts";

export type { SemaphoreOperation, SystemVSemaphoreLimits, SystemVSemaphoreSetEntry };
export type {
  AbortOptions,
  SemaphoreAcquireAsyncOptions,
  SemaphoreAcquireOptions,
  SemaphoreAsyncWaitOptions,
  SemaphoreWaitOptions,
  SystemVSemaphoreCreateOptions,
  SystemVSemaphoreOpenOptions,
  SystemVSemaphoreSetStatus,
};

const C = platform.constants;

function checkUserKey(value: unknown): number {
  const key = checkKey(value);
  if (key === C.IPC_PRIVATE) {
    throw new RangeError(
      "Cannot use key 0: it is IPC_PRIVATE, which always makes a new set; omit the key to create a private set, and open one by id with SystemVSemaphoreSet.openById",
    );
  }
  return key;
}

function checkValue(value: unknown, what: string): number {
  return checkInteger(value, what, 0, SEMVMX);
}

function dateOrNull(seconds: number): Date | null {
  return seconds === 0 ? null : new Date(seconds * 1000);
}

/** A cached encoding and the argument that passes it fastest (see ffi/_arguments.ts); `bytes` keeps it alive. */
interface Encoded {
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly argument: Uint8Array;
}

function sizeMismatch(key: number, existing: number, asked: number): ErrnoError {
  const k = `0x${(key >>> 0).toString(16).padStart(8, "0")}`;
  return new ErrnoError("semget", platform.errno.EINVAL!, {
    key,
    hint:
      `the set for key ${k} exists with ${existing} semaphores; ${asked} were asked; open it with SystemVSemaphoreSet.open, or remove it (ipcrm -S ${k}) and create it again; a set never changes size`,
  });
}

/**
 * A System V semaphore set: a key (or IPC_PRIVATE), an id, and `size`
 * semaphores, each a value from 0 to 32767 (SEMVMX).
 *
 * The object holds no resource, so there is nothing to close; `remove()`
 * removes the set for everyone at once (waiters fail with EIDRM). A set
 * outlives the processes that made it until it is removed.
 *
 * @example Counting
 * ```ts
 * import { SystemVSemaphoreSet } from "@shmkit/shmkit/ipc";
 * const set = SystemVSemaphoreSet.create(2, { initial: [3, 0] });
 * set.operate([{ index: 0, delta: -1 }, { index: 1, delta: 1 }]); // atomically, both or none
 * console.log(set.getAll()); // [2, 1]
 * set.remove();
 * ```
 */
export class SystemVSemaphoreSet {
  readonly #id: number;
  readonly #key: number;
  readonly #size: number;
  readonly #created: boolean;
  // Encoded one-semaphore operations by index, delta and undo: acquire and
  // release then cost one FFI call, not an encoding each.
  readonly #encoded = new Map<number, Encoded>();

  private constructor(id: number, key: number, size: number, created: boolean) {
    this.#id = id;
    this.#key = key >>> 0;
    this.#size = size;
    this.#created = created;
  }

  /** The set id (`semid`). */
  get id(): number {
    return this.#id;
  }

  /** The key it was created or opened with, unsigned (0 for IPC_PRIVATE). */
  get key(): number {
    return this.#key;
  }

  /** Number of semaphores in the set. */
  get size(): number {
    return this.#size;
  }

  /** Whether this call created the set. */
  get created(): boolean {
    return this.#created;
  }

  /**
   * Creates a set: `semget(key, size, IPC_CREAT | IPC_EXCL | mode)`, then
   * SETALL with `initial`.
   *
   * With `exclusive: false` an existing set is opened when it has exactly
   * `size` semaphores; its values are left alone. Linux starts a new set at
   * 0; a process that opens it may run before the creator's SETALL, so have
   * one process create it (exclusive) before the others open it.
   *
   * @example
   * ```ts
   * import { SystemVSemaphoreSet } from "@shmkit/shmkit/ipc";
   * const set = SystemVSemaphoreSet.create(4, { mode: 0o640, initial: 1 });
   * set.remove();
   * ```
   *
   * @param size Number of semaphores, 1 or more (at most SEMMSL).
   * @throws {TypeError} For arguments of the wrong type.
   * @throws {RangeError} For size below 1, a mode above 0o777, key 0, or initial values outside 0 to 32767.
   * @throws {ErrnoError} `semget` with EEXIST, EINVAL (over SEMMSL, or the key's set has
   * another number of semaphores), ENOSPC (over SEMMNI or SEMMNS; the message names the limit and
   * the sysctl), EACCES; `semctl(SETALL)`.
   */
  static create(size: number, options?: SystemVSemaphoreCreateOptions): SystemVSemaphoreSet {
    checkInteger(size, "size", 1, 0x7fffffff);
    const o = checkOptions(options, "options");
    const mode = checkMode(o.mode ?? 0o600);
    if (mode > 0o777) {
      throw new RangeError(
        `Cannot use mode 0o${mode.toString(8)}: System V permissions are 0o0 to 0o777`,
      );
    }
    const exclusive = checkBoolean(o.exclusive, "exclusive", true);
    const initial = SystemVSemaphoreSet.#initialValues(o.initial, size);
    let set: SystemVSemaphoreSet;
    if (o.key === undefined) {
      set = new SystemVSemaphoreSet(
        semget(C.IPC_PRIVATE, size, C.IPC_CREAT | C.IPC_EXCL | mode),
        0,
        size,
        true,
      );
    } else {
      const key = checkUserKey(o.key);
      set = exclusive
        ? new SystemVSemaphoreSet(
          semget(key, size, C.IPC_CREAT | C.IPC_EXCL | mode),
          key,
          size,
          true,
        )
        : SystemVSemaphoreSet.#getOrCreate(key, size, mode);
    }
    if (set.created && initial !== undefined) {
      try {
        semctlSetAll(set.id, initial);
      } catch (error) {
        set.remove();
        throw error;
      }
    }
    return set;
  }

  static #initialValues(value: unknown, size: number): number[] | undefined {
    if (value === undefined) return undefined;
    if (typeof value === "number") {
      return new Array<number>(size).fill(checkValue(value, "initial"));
    }
    if (!Array.isArray(value)) {
      throw new TypeError("Cannot use initial: expected a number or an array of numbers");
    }
    if (value.length !== size) {
      throw new RangeError(
        `Cannot use initial: ${value.length} values were given for ${size} semaphores`,
      );
    }
    return value.map((v, i) => checkValue(v, `initial[${i}]`));
  }

  static #getOrCreate(key: number, size: number, mode: number): SystemVSemaphoreSet {
    for (;;) {
      try {
        return new SystemVSemaphoreSet(
          semget(key, size, C.IPC_CREAT | C.IPC_EXCL | mode),
          key,
          size,
          true,
        );
      } catch (error) {
        if (!(error instanceof ErrnoError) || error.code !== "EEXIST") throw error;
      }
      try {
        const id = semget(key, 0, 0);
        const existing = semctlStat(id).nsems;
        if (existing !== size) throw sizeMismatch(key, existing, size);
        return new SystemVSemaphoreSet(id, key, size, false);
      } catch (error) {
        // Removed between the two calls: try to create it again.
        if (!(error instanceof ErrnoError) || error.code !== "ENOENT") throw error;
      }
    }
  }

  /**
   * Opens an existing set by key: `semget(key, size, 0)`, then IPC_STAT for
   * its real number of semaphores.
   *
   * @example
   * ```ts
   * import { SystemVSemaphoreSet } from "@shmkit/shmkit/ipc";
   * const made = SystemVSemaphoreSet.create(3, { key: 0x5345_4d01 });
   * console.log(SystemVSemaphoreSet.open(0x5345_4d01).size); // 3
   * made.remove();
   * ```
   *
   * @throws {RangeError} For key 0 or a negative size.
   * @throws {ErrnoError} `semget` with ENOENT, EINVAL (the set has fewer than `size`), EACCES.
   */
  static open(key: number, options?: SystemVSemaphoreOpenOptions): SystemVSemaphoreSet {
    const k = checkUserKey(key);
    const size = checkInteger(checkOptions(options, "options").size ?? 0, "size", 0, 0x7fffffff);
    const id = semget(k, size, 0);
    return new SystemVSemaphoreSet(id, k, semctlStat(id).nsems, false);
  }

  /**
   * Opens an existing set by id (as `ipcs -s` lists it, or as another
   * process passed it), checking with IPC_STAT that it exists.
   *
   * @throws {RangeError} For an id outside 0 to 2^31 - 1.
   * @throws {ErrnoError} `semctl(IPC_STAT)` with EINVAL when no set has the id, EACCES.
   */
  static openById(id: number): SystemVSemaphoreSet {
    checkId(id);
    const status = semctlStat(id);
    return new SystemVSemaphoreSet(id, status.key, status.nsems, false);
  }

  /**
   * Every set in this IPC namespace, as `ipcs -s` shows them, from
   * /proc/sysvipc/sem.
   *
   * @example
   * ```ts
   * import { SystemVSemaphoreSet } from "@shmkit/shmkit/ipc";
   * for (const s of SystemVSemaphoreSet.list()) console.log(s.id, s.size);
   * ```
   *
   * @throws {ErrnoError} `open` with ENOENT where /proc/sysvipc is absent.
   */
  static list(): SystemVSemaphoreSetEntry[] {
    return readSemaphoreSets();
  }

  /**
   * The kernel's limits, `kernel.sem` (SEMMSL SEMMNS SEMOPM SEMMNI), from
   * /proc/sys/kernel/sem. Root raises them with
   * `sysctl -w kernel.sem="32000 1024000000 500 32000"`; they are per IPC
   * namespace.
   *
   * @example
   * ```ts
   * import { SystemVSemaphoreSet } from "@shmkit/shmkit/ipc";
   * console.log(SystemVSemaphoreSet.limits().semopm);
   * ```
   *
   * @throws {ErrnoError} `open` with ENOENT where /proc/sys/kernel/sem is absent.
   */
  static limits(): SystemVSemaphoreLimits {
    return readSemLimits();
  }

  #index(index: unknown): number {
    return checkInteger(index, "index", 0, this.#size - 1);
  }

  /**
   * One semaphore's value: `semctl(id, index, GETVAL)`.
   *
   * @throws {RangeError} For an index outside the set.
   * @throws {ErrnoError} `semctl(GETVAL)` with EINVAL/EIDRM when the set is gone, EACCES.
   */
  get(index: number): number {
    return semctlGet(this.#id, this.#index(index), C.GETVAL, "GETVAL");
  }

  /**
   * Sets one semaphore's value: `semctl(id, index, SETVAL, value)`. It
   * clears every process's undo adjustment for that semaphore and wakes
   * waiters that can now go on.
   *
   * @throws {RangeError} For an index outside the set or a value outside 0 to 32767.
   * @throws {ErrnoError} `semctl(SETVAL)` with EINVAL/EIDRM when the set is gone, EACCES.
   */
  set(index: number, value: number): void {
    semctlSetValue(this.#id, this.#index(index), checkValue(value, "value"));
  }

  /**
   * Every value: `semctl(id, 0, GETALL, array)`.
   *
   * @throws {ErrnoError} `semctl(GETALL)` with EINVAL/EIDRM when the set is gone, EACCES.
   */
  getAll(): number[] {
    return semctlGetAll(this.#id, this.#size);
  }

  /**
   * Sets every value: `semctl(id, 0, SETALL, array)`.
   *
   * @throws {RangeError} For the wrong number of values or one outside 0 to 32767.
   * @throws {ErrnoError} `semctl(SETALL)` with EINVAL/EIDRM when the set is gone, EACCES.
   */
  setAll(values: readonly number[]): void {
    // An array of the set's size, always: SETALL reads size values from the buffer.
    if (!Array.isArray(values)) {
      throw new TypeError("Cannot set all semaphores: expected an array of numbers");
    }
    semctlSetAll(this.#id, SystemVSemaphoreSet.#initialValues(values, this.#size)!);
  }

  /**
   * How many processes wait on a semaphore: to decrease it (`GETNCNT`) and
   * for it to be zero (`GETZCNT`).
   *
   * @throws {ErrnoError} `semctl` with EINVAL/EIDRM when the set is gone.
   */
  waiting(index: number): { readonly decrease: number; readonly zero: number } {
    const i = this.#index(index);
    return {
      decrease: semctlGet(this.#id, i, C.GETNCNT, "GETNCNT"),
      zero: semctlGet(this.#id, i, C.GETZCNT, "GETZCNT"),
    };
  }

  /**
   * The pid of the process that last operated on a semaphore
   * (`semctl(GETPID)`; 0 if none).
   *
   * @throws {ErrnoError} `semctl(GETPID)` with EINVAL/EIDRM when the set is gone.
   */
  lastPid(index: number): number {
    return semctlGet(this.#id, this.#index(index), C.GETPID, "GETPID");
  }

  /**
   * The set's status: `semctl(id, 0, IPC_STAT, &buf)`.
   *
   * @throws {ErrnoError} `semctl(IPC_STAT)` with EINVAL/EIDRM when the set is gone, EACCES.
   */
  stat(): SystemVSemaphoreSetStatus {
    const s = semctlStat(this.#id);
    return {
      id: this.#id,
      key: s.key,
      size: s.nsems,
      mode: s.mode & 0o777,
      uid: s.uid,
      gid: s.gid,
      cuid: s.cuid,
      cgid: s.cgid,
      otime: dateOrNull(s.otime),
      ctime: dateOrNull(s.ctime),
    };
  }

  /**
   * Removes the set at once: `semctl(id, 0, IPC_RMID)`. Every process
   * waiting on it fails with EIDRM; the key can be used again.
   *
   * @throws {ErrnoError} `semctl(IPC_RMID)` with EINVAL when it is already gone, EPERM.
   */
  remove(): void {
    semctlRemove(this.#id);
  }

  /**
   * Performs operations atomically, all or none: `semop(id, sops, n)`, or
   * `semtimedop` with a timeout. Blocks the thread while it waits (see
   * {@linkcode SystemVSemaphoreSet.operateAsync}).
   *
   * @example
   * ```ts
   * import { SystemVSemaphoreSet } from "@shmkit/shmkit/ipc";
   * const set = SystemVSemaphoreSet.create(1);
   * console.log(set.operate([{ index: 0, delta: -1 }], { timeoutMs: 10 })); // false: value 0
   * set.remove();
   * ```
   *
   * @returns true when done; false when the time ran out (or, with timeoutMs 0, it would wait).
   * @throws {TypeError} For malformed operations.
   * @throws {RangeError} For an index outside the set or a delta outside -32767 to 32767.
   * @throws {ErrnoError} `semop`/`semtimedop` with EIDRM (the set was removed while waiting),
   * EINVAL (gone), E2BIG (over SEMOPM, named), ERANGE (over SEMVMX), EACCES.
   */
  operate(operations: readonly SemaphoreOperation[], options?: SemaphoreWaitOptions): boolean {
    if (options === undefined && Array.isArray(operations) && operations.length === 1) {
      // One operation, no timeout: the cached encoding, once it is known valid.
      const op = operations[0] as Partial<SemaphoreOperation> | null | undefined;
      if (
        typeof op === "object" && op !== null && Number.isInteger(op.index) && op.index! >= 0 &&
        op.index! < this.#size && Number.isInteger(op.delta) && Math.abs(op.delta!) <= SEMVMX &&
        (op.undo === undefined || typeof op.undo === "boolean")
      ) {
        return this.#semopSingle(op as SemaphoreOperation);
      }
    }
    const timeoutMs = checkTimeout(checkOptions(options, "options").timeoutMs);
    const noWait = timeoutMs === 0 || (timeoutMs !== Infinity && !haveSemtimedop());
    const bytes = encodeOperations(operations, this.#size, noWait ? C.IPC_NOWAIT : 0);
    return semopTimed(this.#id, bytes, noWait ? Infinity : timeoutMs);
  }

  /**
   * {@linkcode SystemVSemaphoreSet.operate} without blocking the event
   * loop: one try without waiting, then `semtimedop` in slices of 200 ms on
   * another thread. An abort rejects at once with the signal's reason; if
   * the operations then succeed on that thread, they are reverted.
   *
   * @example
   * ```ts
   * import { SystemVSemaphoreSet } from "@shmkit/shmkit/ipc";
   * const set = SystemVSemaphoreSet.create(1);
   * setTimeout(() => set.set(0, 1), 10);
   * console.log(await set.operateAsync([{ index: 0, delta: -1 }], { timeoutMs: 5000 })); // true
   * set.remove();
   * ```
   *
   * @throws {ErrnoError} As `operate`; EIDRM when the set is removed during the wait.
   */
  operateAsync(
    operations: readonly SemaphoreOperation[],
    options?: SemaphoreAsyncWaitOptions,
  ): Promise<boolean> {
    try {
      const o = checkOptions(options, "options");
      const timeoutMs = checkTimeout(o.timeoutMs);
      const signal = checkSignal(o.signal);
      const bytes = encodeOperations(operations, this.#size, 0);
      return semopAsync(this.#id, bytes, timeoutMs, signal);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #one(
    index: unknown,
    options: SemaphoreAcquireOptions | undefined,
    sign: 1 | -1,
  ): SemaphoreOperation {
    const o = checkOptions(options, "options");
    const count = checkInteger(o.count ?? 1, "count", 1, SEMVMX);
    return {
      index: this.#index(index),
      delta: sign * count,
      undo: checkBoolean(o.undo, "undo", true),
    };
  }

  /** The encoded single operation (cached), checked like {@linkcode encodeOperations}. */
  /** One valid operation, without a timeout, through its cached encoding. */
  #semopSingle(operation: SemaphoreOperation): boolean {
    // index < 2^31, |delta| <= 32767: a unique number for each (index, delta, undo).
    const key = (operation.index * 65536 + operation.delta + 32768) * 2 +
      (operation.undo === true ? 1 : 0);
    let encoded = this.#encoded.get(key);
    if (encoded === undefined) {
      const bytes = encodeOperations([operation], this.#size, 0);
      encoded = { bytes, argument: bufferArgument(bytes) };
      if (this.#encoded.size >= 64) this.#encoded.clear();
      this.#encoded.set(key, encoded);
    }
    return semopTimed(this.#id, encoded.bytes, Infinity, encoded.argument);
  }

  #wait(operation: SemaphoreOperation, options: SemaphoreWaitOptions | undefined): boolean {
    const timeoutMs = options === undefined ? Infinity : checkTimeout(options.timeoutMs);
    if (timeoutMs === Infinity) return this.#semopSingle(operation);
    return this.operate([operation], options);
  }

  /**
   * Takes `count` (default 1) from a semaphore, waiting until it has that
   * much: `semop` with `sem_op = -count` and SEM_UNDO (unless `undo: false`),
   * so the kernel gives it back if this process dies before `release`.
   *
   * @example
   * ```ts
   * import { SystemVSemaphoreSet } from "@shmkit/shmkit/ipc";
   * const set = SystemVSemaphoreSet.create(1, { initial: 1 });
   * if (set.acquire(0, { timeoutMs: 100 })) set.release(0);
   * set.remove();
   * ```
   *
   * @returns true when taken; false when the time ran out.
   * @throws {ErrnoError} As {@linkcode SystemVSemaphoreSet.operate}.
   */
  acquire(index = 0, options?: SemaphoreAcquireOptions): boolean {
    return this.#wait(this.#one(index, options, -1), options);
  }

  /**
   * {@linkcode SystemVSemaphoreSet.acquire} without blocking the event loop,
   * with a timeout and an AbortSignal.
   *
   * @throws {ErrnoError} As {@linkcode SystemVSemaphoreSet.operateAsync}.
   */
  acquireAsync(index = 0, options?: SemaphoreAcquireAsyncOptions): Promise<boolean> {
    try {
      return this.operateAsync([this.#one(index, options, -1)], options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Gives back `count` (default 1): `semop` with `sem_op = +count` and
   * SEM_UNDO (unless `undo: false`; use the same `undo` as the acquire, so
   * the two adjustments cancel).
   *
   * @throws {ErrnoError} As {@linkcode SystemVSemaphoreSet.operate}, ERANGE past 32767.
   */
  release(index = 0, options?: Omit<SemaphoreAcquireOptions, "timeoutMs">): void {
    this.#semopSingle(this.#one(index, options, 1));
  }
}
