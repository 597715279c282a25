/**
 * The error of the lock primitives ({@linkcode LockError}).
 *
 * @module
 */

/**
 * The reason a {@linkcode LockError} was thrown: a pthread error name, or
 * "ECORRUPT" when a word of the lock's shared memory holds a value no
 * correct peer writes.
 */
export type LockErrorCode = "EPERM" | "EDEADLK" | "ENOTRECOVERABLE" | "ECORRUPT";

/**
 * A lock was misused, or its memory is corrupt: unlocked by a process that
 * does not hold it (EPERM), locked again synchronously by its holder
 * (EDEADLK), its previous owner died and the data was never marked
 * consistent (ENOTRECOVERABLE), or a word of its layout breaks the layout's
 * rules (ECORRUPT; `word` and `value` say which and what it held).
 *
 * @example Telling a corrupt lock from a busy one
 * ```ts
 * import { LockError, Mapping, Semaphore } from "@shmkit/shmkit";
 * using mapping = Mapping.anonymous(4096);
 * const permits = Semaphore.init(mapping.view(), { maximum: 2 });
 * mapping.view(Int32Array)[0] = -7; // a stray write over the count
 * try {
 *   permits.tryAcquire();
 * } catch (error) {
 *   if (!(error instanceof LockError) || error.code !== "ECORRUPT") throw error;
 *   console.log(error.word, error.value); // "count" -7
 * }
 * ```
 */
export class LockError extends Error {
  /** The pthread error this corresponds to, or "ECORRUPT". */
  readonly code: LockErrorCode;
  /** For ECORRUPT: the layout word that broke the rules ("lock", "magic", "count", ...). */
  declare readonly word?: string;
  /** For ECORRUPT: the value the word held (as an int32). */
  declare readonly value?: number;

  /**
   * Builds the error.
   *
   * @param code The reason.
   * @param message What happened, starting "Cannot ...".
   * @param corrupt For ECORRUPT, the word and its value.
   */
  constructor(
    code: LockErrorCode,
    message: string,
    corrupt?: { readonly word: string; readonly value: number },
  ) {
    super(message);
    this.name = "LockError";
    this.code = code;
    if (corrupt !== undefined) {
      this.word = corrupt.word;
      this.value = corrupt.value;
    }
  }
}

/** Internal: the ECORRUPT error for `word` of `what` holding `value`, breaking `rule`. */
export function corruptWord(
  action: string,
  what: string,
  word: string,
  value: number,
  rule: string,
): LockError {
  return new LockError(
    "ECORRUPT",
    `Cannot ${action}: the ${what}'s ${word} word holds ${value} (0x${
      (value >>> 0).toString(16)
    }), but ${rule}; something else wrote over the ${what}'s memory (init it again once nothing uses it)`,
    { word, value },
  );
}
