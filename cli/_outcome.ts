/**
 * Internal (CLI): what a command returns, and the exit codes.
 *
 * @module
 */

/** Exit codes: 0 done, 1 something failed (or was not found), 2 bad usage. */
export const EXIT = { ok: 0, error: 1, usage: 2 } as const;

/** What a command prints, and how the process ends. */
export interface Outcome {
  /** What to write to stdout: a table, or JSON with `--json`. */
  readonly stdout: string;
  /** Errors and notes for stderr. */
  readonly stderr: string;
  /** The exit code: 0 done, 1 failed or not found, 2 bad usage. */
  readonly exit: number;
}
