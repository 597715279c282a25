/**
 * Internal: the cleaner's ledger, a memfd of fixed 256-byte lines that this
 * process writes through a mapping and the cleaner reads only after this
 * process is gone. Registering or forgetting an object is then a few stores
 * into memory, not a write(2) to the cleaner's pipe (which also woke the
 * cleaner once per object).
 *
 * Each line is `+KIND FIELDS` padded with spaces to 255 bytes and a "\n":
 * the same text the pipe carries. A line whose first byte is "#" is free or
 * forgotten. Writing a line fills it while its first byte is still "#" and
 * stores "+" last; forgetting stores "#". So whenever this process dies (even
 * in the middle of a store), every line reads either as a whole record or as
 * nothing.
 *
 * The memfd is sealed against shrinking (a read past its end is never a
 * SIGBUS) and grows by doubling when its lines are all in use.
 *
 * @module
 */
import { unsafeLibc } from "../ffi/libc.ts";
import { cString, unsafeView } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";

const C = platform.constants;

/** Bytes per line, "\n" included. */
export const LEDGER_LINE = 256;
const FIRST_LINES = 64;
const HASH = 0x23; // "#"
const PLUS = 0x2b; // "+"
const BLANK = new Uint8Array(LEDGER_LINE).fill(0x20);
BLANK[0] = HASH;
BLANK[LEDGER_LINE - 1] = 0x0a;

/** The memfd the cleaner inherits as fd 3, and this process's mapping of it. */
export class Ledger {
  readonly fd: number;
  #address = 0;
  #view: Uint8Array<ArrayBuffer>;
  #lines = 0;
  readonly #free: number[] = [];

  private constructor(fd: number) {
    this.fd = fd;
    this.#view = new Uint8Array(0);
  }

  /** A new ledger, or undefined where memfd, mmap or sealing is unavailable. */
  static create(): Ledger | undefined {
    if (unsafeLibc.memfd_create === undefined || C.MFD_CLOEXEC === -1) return undefined;
    let fd = unsafeLibc.memfd_create(
      cString("shmkit-cleaner", "name"),
      C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING,
    );
    if (fd === -1) return undefined;
    if (fd < 3) {
      // The spawn's file actions write fds 0 to 3: keep the ledger out of their way.
      const moved = unsafeLibc.fcntl(fd, C.F_DUPFD_CLOEXEC, 3);
      unsafeLibc.close(fd);
      if (moved === -1) return undefined;
      fd = moved;
    }
    const ledger = new Ledger(fd);
    if (
      unsafeLibc.fcntl(fd, C.F_ADD_SEALS, C.F_SEAL_SHRINK | C.F_SEAL_SEAL) === -1 ||
      !ledger.#grow(FIRST_LINES)
    ) {
      ledger.close();
      return undefined;
    }
    return ledger;
  }

  /** Maps `lines` lines, blanking the new ones; false (and no change) on failure. */
  #grow(lines: number): boolean {
    const old = this.#lines;
    const length = lines * LEDGER_LINE;
    if (unsafeLibc.posix_fallocate(this.fd, 0, length) !== 0) return false;
    const address = unsafeLibc.mmap(
      0,
      length,
      C.PROT_READ | C.PROT_WRITE,
      C.MAP_SHARED,
      this.fd,
      0,
    );
    if (address === -1) return false;
    const view = unsafeView(address, length);
    for (let line = old; line < lines; line++) view.set(BLANK, line * LEDGER_LINE);
    if (old > 0) {
      this.#view.buffer.transfer(0);
      unsafeLibc.munmap(this.#address, old * LEDGER_LINE);
    }
    this.#address = address;
    this.#view = view;
    this.#lines = lines;
    // Lowest lines on top, so the file stays dense.
    for (let line = lines - 1; line >= old; line--) this.#free.push(line);
    return true;
  }

  /**
   * Writes `+` and `fields` (ASCII, no "\n") into a free line; returns the
   * line, or -1 when the text is too long for a line or the ledger can't
   * grow (the caller then sends it down the pipe).
   */
  add(fields: string): number {
    if (fields.length > LEDGER_LINE - 2) return -1;
    const line = this.#take();
    if (line === -1) return -1;
    const start = line * LEDGER_LINE;
    const view = this.#view;
    // Copied in JS: no subarray and no encoder call per line.
    const end = start + 1 + fields.length;
    for (let i = 0, at = start + 1; at < end; i++, at++) {
      const code = fields.charCodeAt(i);
      if (code >= 0x80) {
        this.#free.push(line); // never written as taken: the pipe takes it
        return -1;
      }
      view[at] = code;
    }
    return this.#seal(line, end);
  }

  /**
   * Writes the line of a POSIX object, `+p DEV INO NAME` with the name's
   * bytes after its "/" as octal escapes: the text `add` would be given, put
   * straight into the line with no string made. Returns -1 as `add` does, and
   * for a name that is not ASCII (the caller escapes its UTF-8 and uses the
   * pipe) or an identity that is not a safe non-negative integer.
   */
  addShm(dev: number, ino: number, name: string): number {
    const devDigits = digitCount(dev);
    const inoDigits = digitCount(ino);
    if (devDigits === 0 || inoDigits === 0) return -1;
    // "p DEV INO " then 4 bytes per name byte: the length `add` would check.
    const length = 2 + devDigits + 1 + inoDigits + 1 + 4 * (name.length - 1);
    if (length > LEDGER_LINE - 2) return -1;
    for (let i = 1; i < name.length; i++) if (name.charCodeAt(i) >= 0x80) return -1;
    const line = this.#take();
    if (line === -1) return -1;
    const start = line * LEDGER_LINE;
    const view = this.#view;
    view[start + 1] = 0x70; // "p"
    view[start + 2] = 0x20;
    let at = writeDigits(view, start + 3, dev, devDigits);
    view[at++] = 0x20;
    at = writeDigits(view, at, ino, inoDigits);
    view[at++] = 0x20;
    for (let i = 1; i < name.length; i++, at += 4) {
      const code = name.charCodeAt(i);
      view[at] = 0x5c; // "\"
      view[at + 1] = 0x30 + (code >> 6);
      view[at + 2] = 0x30 + ((code >> 3) & 7);
      view[at + 3] = 0x30 + (code & 7);
    }
    return this.#seal(line, at);
  }

  /** A free line, marked free ("#") while it is written; -1 when the ledger can't grow. */
  #take(): number {
    if (this.#free.length === 0 && !this.#grow(this.#lines * 2)) return -1;
    const line = this.#free.pop()!;
    this.#view[line * LEDGER_LINE] = HASH; // free until #seal
    return line;
  }

  /** Pads `line` with spaces from `end` to its newline, then marks it taken ("+" last). */
  #seal(line: number, end: number): number {
    const start = line * LEDGER_LINE;
    const view = this.#view;
    view.fill(0x20, end, start + LEDGER_LINE - 1);
    view[start + LEDGER_LINE - 1] = 0x0a;
    view[start] = PLUS; // last: until now the line read as free
    return line;
  }

  /** Marks `line` forgotten and free for reuse. */
  remove(line: number): void {
    this.#view[line * LEDGER_LINE] = HASH;
    this.#free.push(line);
  }

  /** Unmaps and closes this process's end (a cleaner that has it keeps its own). */
  close(): void {
    if (this.#lines > 0) {
      this.#view.buffer.transfer(0);
      unsafeLibc.munmap(this.#address, this.#lines * LEDGER_LINE);
      this.#lines = 0;
    }
    unsafeLibc.close(this.fd);
  }
}

/** Decimal digits of a safe non-negative integer; 0 for anything else. */
function digitCount(value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) return 0;
  let digits = 1;
  for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++;
  return digits;
}

/** Writes `value`'s `digits` decimal digits at `at`; returns the offset after them. */
function writeDigits(view: Uint8Array, at: number, value: number, digits: number): number {
  let rest = value;
  for (let i = at + digits - 1; i >= at; i--) {
    view[i] = 0x30 + (rest % 10);
    rest = Math.floor(rest / 10);
  }
  return at + digits;
}
