/**
 * The out-of-process cleaner: a small `/bin/sh` + `awk` process that removes
 * what this copy of the library created, after this process is gone, however
 * it died (SIGKILL, OOM, SIGHUP, SIGABRT, a signal while blocked in a wait).
 * The same idea as Python's resource_tracker and PostgreSQL's postmaster:
 * clean up from outside the process that dies.
 *
 * - Started on the first registration (Linux only: it works through
 *   /dev/shm and /proc/sysvipc/shm). One per copy of the library, so each
 *   Worker that creates objects has its own.
 * - Records are kept in a ledger (shm/_cleaner_ledger.ts): a memfd the
 *   cleaner inherits as fd 3, written by this process through a mapping, so
 *   registering and forgetting an object costs no system call. A record too
 *   long for a ledger line goes down a pipe on the cleaner's stdin instead.
 * - This process holds the pipe's write end with O_CLOEXEC, so no other
 *   child keeps it open: the pipe's EOF means this process is gone (or this
 *   copy's Worker closed it). Then, and only then, the cleaner reads the
 *   ledger.
 * - A registration checks that the cleaner lives (`waitpid` WNOHANG, at most
 *   once a millisecond); a dead one is reaped and a new one started, which
 *   inherits the ledger.
 * - At EOF it removes every object still registered whose identity still
 *   matches (POSIX: dev + inode by `stat`; System V: key + creator pid in
 *   /proc/sysvipc/shm), then exits. Objects this process only opened are
 *   never registered, and a name someone re-created has another inode.
 * - It runs in its own session and ignores SIGINT, SIGHUP, SIGTERM and
 *   SIGQUIT, so the Ctrl-C (or hang-up) that kills its creator doesn't kill
 *   it. Its stdout and stderr go to /dev/null, so it never holds a pipe its
 *   creator's parent is reading.
 *
 * Lines: `+p DEV INO NAME`, `-p DEV INO`, `+v ID KEY CPID`, `-v ID`, with the
 * name as octal escapes (`\101` per byte), so any byte is safe in transit.
 * The ledger holds `+` lines (a forgotten one starts with `#`); the pipe
 * carries both kinds, its forget lines batched: a late one costs nothing,
 * since the identity check refuses an object that is gone.
 *
 * @module
 */
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { Ledger } from "./_cleaner_ledger.ts";
import {
  posixSpawn,
  PosixSpawnAttributes,
  PosixSpawnFileActions,
  SignalSet,
  SpawnFlags,
} from "../spawn/raw.ts";

const C = platform.constants;

/** What the cleaner removes after this process is gone. */
export type CleanerRecord =
  | {
    readonly kind: "shm";
    /** The name, with its leading "/". */
    readonly name: string;
    readonly dev: number;
    readonly ino: number;
  }
  | {
    readonly kind: "sysv";
    readonly id: number;
    /** The key as the kernel prints it (signed 32-bit). */
    readonly key: number;
    /** The creator's pid (`shm_cpid`). */
    readonly cpid: number;
  };

/**
 * The cleaner's program. awk keeps the registrations (reading its input in
 * blocks, not a byte at a time as `read` does): the pipe until EOF, then the
 * ledger (when $1 is "ledger"); it prints what is left, and the shell loop
 * checks each identity and removes.
 */
const SCRIPT = `trap '' INT HUP TERM QUIT
l=$1
set -- -
if [ "$l" = ledger ] && [ -r /proc/self/fd/3 ]; then set -- - /proc/self/fd/3; fi
awk '
$1 == "+p" && NF == 4 && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ && $4 ~ /^(\\\\[0-7][0-7][0-7])+$/ { r["p " $2 " " $3] = $4; next }
$1 == "-p" && NF == 3 { delete r["p " $2 " " $3]; next }
$1 == "+v" && NF == 4 && $2 ~ /^[0-9]+$/ && $3 ~ /^-?[0-9]+$/ && $4 ~ /^[0-9]+$/ { r["v " $2] = $3 " " $4; next }
$1 == "-v" && NF == 2 { delete r["v " $2]; next }
END { for (k in r) print k, r[k] }
' "$@" | while read -r kind a b c; do
  case $kind in
  p)
    case $c in *[!0-7\\\\]* | *'\\000'*) continue ;; esac
    n=$(printf "$c"; printf x)
    n=\${n%x}
    case $n in '' | . | .. | */*) continue ;; esac
    f="/dev/shm/$n"
    [ "$(stat -c '%d %i' -- "$f" 2>/dev/null)" = "$a $b" ] && rm -f -- "$f"
    ;;
  v)
    s=$(awk -v id="$a" '$2 == id { print $1, $5; exit }' /proc/sysvipc/shm 2>/dev/null)
    [ "$s" = "$b $c" ] && ipcrm -m "$a" 2>/dev/null
    ;;
  esac
done
`;

/** Where the cleaner runs: Linux, where /dev/shm and /proc/sysvipc are files. */
export const cleanerSupported: boolean = platform.os === "linux";

interface Entry {
  readonly record: CleanerRecord;
  /** Its line in the ledger, or -1 when it went down the pipe. */
  readonly line: number;
}

const entries = new Map<unknown, Entry>();
let forgets: string[] = [];
const FORGET_BATCH = 32;
let writeFd = -1;
let pid = 0;
let failed = false;
let ledger: Ledger | undefined;
const status = new Int32Array(1);
const LIVENESS_MS = 1;
let checked = 0;
const encoder = new TextEncoder();

/** `\\000` to `\\377`, by byte. */
const OCTAL = Array.from({ length: 256 }, (_, byte) => "\\" + byte.toString(8).padStart(3, "0"));

/** A record's fields: `p DEV INO NAME` or `v ID KEY CPID`, sent as `+` and these. */
export function fieldsOf(record: CleanerRecord): string {
  if (record.kind === "sysv") return `v ${record.id} ${record.key | 0} ${record.cpid}`;
  const name = record.name;
  let octal = "";
  for (let i = 1; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (code >= 0x80) {
      octal = "";
      for (const byte of encoder.encode(name.slice(1))) octal += OCTAL[byte]!;
      break;
    }
    octal += OCTAL[code]!;
  }
  return `p ${record.dev} ${record.ino} ${octal}`;
}

function forgetLine(record: CleanerRecord): string {
  return record.kind === "sysv" ? `-v ${record.id}\n` : `-p ${record.dev} ${record.ino}\n`;
}

function start(): boolean {
  ledger ??= Ledger.create(); // undefined where there is no memfd: the pipe carries all
  const cell = new Int32Array(2);
  if (unsafeLibc.pipe2(cell, C.O_CLOEXEC) === -1) return false;
  const [readEnd, writeEnd] = [cell[0]!, cell[1]!];
  try {
    using actions = new PosixSpawnFileActions();
    actions.addDup2(readEnd, 0);
    // The ledger is 3 or more, so the stdin dup2 above can't have replaced it.
    if (ledger !== undefined) actions.addDup2(ledger.fd, 3);
    actions.addOpen(1, "/dev/null", C.O_WRONLY, 0).addDup2(1, 2);
    if (PosixSpawnFileActions.canCloseFrom) actions.addCloseFrom(ledger === undefined ? 3 : 4);
    if (PosixSpawnFileActions.canChdir) actions.addChdir("/"); // keep no directory busy
    using attributes = new PosixSpawnAttributes();
    // Default dispositions (the shell then ignores what it must) and no blocked signals.
    attributes.setSigDefault(SignalSet.full()).setSigMask(SignalSet.empty());
    let flags = SpawnFlags.SETSIGDEF | SpawnFlags.SETSIGMASK;
    if (SpawnFlags.SETSID !== undefined) flags |= SpawnFlags.SETSID;
    attributes.setFlags(flags);
    pid = posixSpawn(
      "/bin/sh",
      actions,
      attributes,
      ["sh", "-c", SCRIPT, "shmkit-cleaner", ledger === undefined ? "pipe" : "ledger"],
      ["PATH=/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL=C"],
    );
  } catch {
    unsafeLibc.close(writeEnd);
    return false;
  } finally {
    unsafeLibc.close(readEnd);
  }
  writeFd = writeEnd;
  return true;
}

/** The cleaner died under us (EPIPE, or waitpid saw it end): reap it, so no zombie stays. */
function lost(): void {
  unsafeLibc.close(writeFd);
  writeFd = -1;
  if (pid !== 0) unsafeLibc.waitpid(pid, status, C.WNOHANG);
  pid = 0;
}

/** Writes all of `text`; false when the cleaner is gone. */
function writeAll(text: string): boolean {
  const bytes = encoder.encode(text);
  let offset = 0;
  while (offset < bytes.length) {
    const n = Number(unsafeLibc.write(writeFd, bytes.subarray(offset), bytes.length - offset));
    if (n >= 0) {
      offset += n;
      continue;
    }
    if (errno() === platform.errno.EINTR) continue;
    return false;
  }
  return true;
}

/**
 * Makes sure a cleaner runs, starting (or restarting) one as needed; false
 * when none can. A new cleaner inherits the ledger: it is sent only the
 * records that went down the pipe.
 */
function ensureCleaner(): boolean {
  if (failed || !cleanerSupported) return false;
  // No pipe write tells of a dead cleaner any more: ask (a WNOHANG waitpid),
  // at most once per LIVENESS_MS; a cleaner restarted then still gets the
  // whole ledger, so only a death of this process inside that window is missed.
  if (writeFd !== -1) {
    // Date.now: far cheaper than performance.now in Deno; a clock step back checks at once.
    const now = Date.now();
    if (Math.abs(now - checked) >= LIVENESS_MS) {
      checked = now;
      if (unsafeLibc.waitpid(pid, status, C.WNOHANG) !== 0) lost();
    }
  }
  for (let attempt = 0; writeFd === -1 && attempt < 2; attempt++) {
    if (!start()) {
      failed = true; // no /bin/sh, no fork: in-process cleanup still runs at exit
      return false;
    }
    forgets = [];
    let text = "";
    for (const entry of entries.values()) {
      if (entry.line === -1) text += "+" + fieldsOf(entry.record) + "\n";
    }
    if (text !== "" && !writeAll(text)) lost();
  }
  return writeFd !== -1;
}

function forgetEntry(entry: Entry): void {
  if (entry.line !== -1) {
    ledger!.remove(entry.line);
    return;
  }
  if (writeFd === -1) return;
  forgets.push(forgetLine(entry.record));
  if (forgets.length >= FORGET_BATCH) {
    const text = forgets.join("");
    forgets = [];
    if (!writeAll(text)) lost();
  }
}

/**
 * Registers `record` under `key` with the cleaner, starting it on first use.
 * Never throws: without a cleaner, the in-process exit cleanup remains.
 */
export function cleanerWatch(key: unknown, record: CleanerRecord): void {
  const old = entries.get(key);
  if (old !== undefined) {
    entries.delete(key);
    forgetEntry(old);
  }
  if (!ensureCleaner()) {
    entries.set(key, { record, line: -1 });
    return;
  }
  // A POSIX object's line is written from its fields, with no string made.
  let line = -1;
  if (ledger !== undefined) {
    line = record.kind === "shm"
      ? ledger.addShm(record.dev, record.ino, record.name)
      : ledger.add(fieldsOf(record));
  }
  entries.set(key, { record, line });
  if (line !== -1) return;
  const fields = fieldsOf(record);
  // Too long for a ledger line (or no ledger): down the pipe, with the batched forgets.
  const text = forgets.join("") + "+" + fields + "\n";
  forgets = [];
  if (writeAll(text)) return;
  lost();
  ensureCleaner(); // a new cleaner is sent every pipe record, this one included
}

/** Tells the cleaner to leave the record under `key` alone. */
export function cleanerForget(key: unknown): void {
  const entry = entries.get(key);
  if (entry === undefined) return;
  entries.delete(key);
  forgetEntry(entry);
}

/**
 * Closes the pipe at this copy's end (its exit hooks ran): the cleaner then
 * checks what is left and exits now rather than when the process does. A
 * later registration starts a new one.
 */
export function cleanerClose(): void {
  if (writeFd === -1) return;
  unsafeLibc.close(writeFd);
  writeFd = -1;
  pid = 0;
  forgets = [];
  entries.clear();
  // The cleaner reads its ledger now: a later one gets a new ledger.
  ledger?.close();
  ledger = undefined;
}

/** The cleaner's pid, or 0 when none runs (for tests). */
export function cleanerPid(): number {
  return pid;
}
