/**
 * The guard `Mutex.acquire()` and `acquireAsync()` return: a held lock that
 * `using` releases.
 *
 * @module
 */
import { LockError } from "./_lock_error.ts";

/**
 * A held `Mutex`, from `acquire()` or `acquireAsync()`: unlocked
 * when disposed (`using`, `await using`) or by `unlock()`, once.
 */
export interface LockGuard extends Disposable, AsyncDisposable {
  /**
   * The previous owner died holding the lock: repair the data, then call
   * `markConsistent()` before the guard is disposed, or
   * the mutex becomes unrecoverable.
   */
  readonly ownerDied: boolean;
  /** Whether the guard still holds the lock. */
  readonly held: boolean;
  /**
   * Marks the data consistent again (`Mutex.markConsistent`).
   *
   * @throws {LockError} EPERM when the guard was released.
   */
  markConsistent(): void;
  /** Unlocks the mutex if the guard still holds it; idempotent. */
  unlock(): void;
}

/** What a guard needs of its lock. */
interface Unlockable {
  markConsistent(): void;
  unlock(): void;
}

/** Internal: the one implementation of {@linkcode LockGuard}. */
export class Guard implements LockGuard {
  readonly ownerDied: boolean;
  #mutex: Unlockable | undefined;

  constructor(mutex: Unlockable, ownerDied: boolean) {
    this.#mutex = mutex;
    this.ownerDied = ownerDied;
  }

  get held(): boolean {
    return this.#mutex !== undefined;
  }

  markConsistent(): void {
    if (this.#mutex === undefined) {
      throw new LockError("EPERM", "Cannot mark the mutex consistent: the guard was released");
    }
    this.#mutex.markConsistent();
  }

  unlock(): void {
    const mutex = this.#mutex;
    this.#mutex = undefined;
    mutex?.unlock();
  }

  [Symbol.dispose](): void {
    this.unlock();
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.unlock();
    return Promise.resolve();
  }
}
