/**
 * {@linkcode Child}: a running or finished child process, its pipes and
 * its status.
 *
 * @module
 */
import { ErrnoError } from "../core/errors.ts";
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { decodeWaitStatus, type SignalName, signalNumber } from "./raw.ts";
import { ExitWatch } from "./_exit_watch.ts";
import { collect, type PipeEnd, readablePipe, writablePipe } from "./_pipes.ts";

const E = platform.errno;

/** How a child ended. */
export interface ChildStatus {
  /** The exit code, or null when a signal ended the child. */
  readonly code: number | null;
  /** The signal that ended the child (`"SIGKILL"`), or null when it exited. */
  readonly signal: SignalName | `SIG${number}` | null;
  /** Whether the child exited with code 0. */
  readonly success: boolean;
}

/** What {@linkcode Child.output} collects. */
export interface ChildOutput extends ChildStatus {
  /** Everything the child wrote to a piped stdout (empty if not piped). */
  readonly stdout: Uint8Array;
  /** Everything the child wrote to a piped stderr (empty if not piped). */
  readonly stderr: Uint8Array;
}

export interface PipeEnds {
  stdin?: number;
  stdout?: number;
  stderr?: number;
}

function toStatus(raw: number): ChildStatus {
  if ((raw & 0x7f) === 0) {
    // An exit, the common case: WEXITSTATUS, as decodeWaitStatus reads it.
    const code = (raw >> 8) & 0xff;
    return { code, signal: null, success: code === 0 };
  }
  const { code, signal, success } = decodeWaitStatus(raw);
  return { code, signal, success };
}

const NO_PIPES = { convert: toStatus };
const NO_ENDS: readonly PipeEnd[] = [];

/**
 * A running (or finished) child process, from {@linkcode spawn}. It is
 * reaped as soon as it ends, whether or not `status` is awaited; until then
 * it keeps this process alive, unless {@linkcode unref} is called.
 *
 * Pipes never outlive the child by much: when it has been reaped, and
 * before `status` resolves, what it left unread in a piped stdout or stderr
 * is read into memory (at most a pipe's capacity) and this process's end is
 * closed; the stream still yields those bytes. A piped stdin nobody took a
 * writer for is closed then too. Only a grandchild that still holds a pipe
 * keeps it open, until it closes it or the Child is disposed.
 */
export class Child implements AsyncDisposable {
  /** The child's process id. */
  readonly pid: number;
  /** Resolves when the child has ended and been reaped. */
  readonly status: Promise<ChildStatus>;
  /** The write end of the child's stdin, when `stdin: "pipe"`. */
  readonly stdin: WritableStream<Uint8Array> | null;
  /** The read end of the child's stdout, when `stdout: "pipe"`. */
  readonly stdout: ReadableStream<Uint8Array> | null;
  /** The read end of the child's stderr, when `stderr: "pipe"`. */
  readonly stderr: ReadableStream<Uint8Array> | null;
  readonly #watch: ExitWatch<ChildStatus>;
  readonly #ends: readonly PipeEnd[];

  /** @internal Use {@linkcode spawn}. */
  constructor(pid: number, pipes: PipeEnds) {
    this.pid = pid;
    if (pipes.stdin === undefined && pipes.stdout === undefined && pipes.stderr === undefined) {
      this.stdin = this.stdout = this.stderr = null;
      this.#ends = NO_ENDS;
      this.#watch = new ExitWatch(pid, NO_PIPES);
    } else {
      const ends: PipeEnd[] = [];
      this.#ends = ends;
      const open = <S>(pipe: { stream: S; end: PipeEnd }): S => {
        ends.push(pipe.end);
        return pipe.stream;
      };
      this.stdin = pipes.stdin === undefined ? null : open(writablePipe(pipes.stdin));
      this.stdout = pipes.stdout === undefined ? null : open(readablePipe(pipes.stdout));
      this.stderr = pipes.stderr === undefined ? null : open(readablePipe(pipes.stderr));
      // Once reaped, the pipes give back their fds before anyone sees the status.
      this.#watch = new ExitWatch(pid, {
        convert: toStatus,
        settle: () => ends.forEach((end) => end.settle()),
      });
    }
    // A rejection (ECHILD) is marked handled by the watch: never-awaited children don't crash.
    this.status = this.#watch.promise;
  }

  /** Whether the child has been reaped (its pid may since belong to another process); kill() then sends nothing. */
  get exited(): boolean {
    return this.#watch.exited;
  }

  /**
   * Sends a signal: `kill(pid, sig)`. Once the child has been reaped, does
   * nothing and returns false, so a reused pid is never signalled.
   *
   * @param signal A name from `platform.signals` (default "SIGTERM") or a number.
   * @returns Whether the signal was sent.
   * @throws {RangeError} For an unknown signal.
   * @throws {ErrnoError} `kill` with EPERM.
   */
  kill(signal: SignalName | number = "SIGTERM"): boolean {
    const value = signalNumber(signal);
    if (this.#watch.exited) return false;
    if (unsafeLibc.kill(this.pid, value) === -1) {
      const code = errno();
      if (code === E.ESRCH) return false;
      throw new ErrnoError("kill", code, { id: this.pid });
    }
    return true;
  }

  /** Lets this process exit while the child still runs (its status still arrives if it lives on). */
  unref(): void {
    this.#watch.ref = false;
  }

  /** Undoes {@linkcode unref}: the running child keeps this process alive again. */
  ref(): void {
    this.#watch.ref = true;
  }

  /**
   * Waits for the child and collects its piped stdout and stderr. A piped
   * stdin that nobody writes to is closed first, so the child sees EOF.
   *
   * @throws {TypeError} When `stdout` or `stderr` is already being read.
   */
  async output(): Promise<ChildOutput> {
    if (this.stdin !== null && !this.stdin.locked) await this.stdin.close();
    const [stdout, stderr, status] = await Promise.all([
      collect(this.stdout),
      collect(this.stderr),
      this.status,
    ]);
    return { ...status, stdout, stderr };
  }

  /**
   * Sends SIGTERM if the child still runs, waits for it, and closes this
   * process's ends of its pipes, read or not (a reader then sees the end of
   * the stream, a writer an error).
   */
  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGTERM");
    for (const stream of [this.stdout, this.stderr]) {
      if (stream !== null && !stream.locked) await stream.cancel();
    }
    if (this.stdin !== null && !this.stdin.locked) await this.stdin.abort();
    await this.status.catch(() => {});
    for (const end of this.#ends) end.release();
  }
}
