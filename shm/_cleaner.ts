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
 * - It reads registration lines from a pipe on its stdin. This process holds
 *   the write end with O_CLOEXEC, so no other child keeps it open: the
 *   pipe's EOF means this process is gone (or this copy's Worker closed it).
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
 * Forget lines are batched: a late one costs nothing, since the identity
 * check refuses an object that is gone.
 *
 * @module
 */
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
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
 * blocks, not a byte at a time as `read` does) and prints what is left at
 * EOF; the shell loop checks each identity and removes.
 */
const SCRIPT = `trap '' INT HUP TERM QUIT
awk '
$1 == "+p" && NF == 4 && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ && $4 ~ /^(\\\\[0-7][0-7][0-7])+$/ { r["p " $2 " " $3] = $4; next }
$1 == "-p" && NF == 3 { delete r["p " $2 " " $3]; next }
$1 == "+v" && NF == 4 && $2 ~ /^[0-9]+$/ && $3 ~ /^-?[0-9]+$/ && $4 ~ /^[0-9]+$/ { r["v " $2] = $3 " " $4; next }
$1 == "-v" && NF == 2 { delete r["v " $2]; next }
END { for (k in r) print k, r[k] }
' | while read -r kind a b c; do
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

const records = new Map<unknown, CleanerRecord>();
let forgets: string[] = [];
const FORGET_BATCH = 32;
let writeFd = -1;
let pid = 0;
let failed = false;
const encoder = new TextEncoder();

function addLine(record: CleanerRecord): string {
  if (record.kind === "sysv") return `+v ${record.id} ${record.key | 0} ${record.cpid}\n`;
  let octal = "";
  for (const byte of encoder.encode(record.name.slice(1))) {
    octal += "\\" + byte.toString(8).padStart(3, "0");
  }
  return `+p ${record.dev} ${record.ino} ${octal}\n`;
}

function forgetLine(record: CleanerRecord): string {
  return record.kind === "sysv" ? `-v ${record.id}\n` : `-p ${record.dev} ${record.ino}\n`;
}

function start(): boolean {
  const cell = new Int32Array(2);
  if (unsafeLibc.pipe2(cell, C.O_CLOEXEC) === -1) return false;
  const [readEnd, writeEnd] = [cell[0]!, cell[1]!];
  try {
    using actions = new PosixSpawnFileActions();
    actions.addDup2(readEnd, 0).addOpen(1, "/dev/null", C.O_WRONLY, 0).addDup2(1, 2);
    if (PosixSpawnFileActions.canCloseFrom) actions.addCloseFrom(3);
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
      ["sh", "-c", SCRIPT, "shmkit-cleaner"],
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

/** The cleaner died under us (EPIPE): reap it, so no zombie stays. */
function lost(): void {
  unsafeLibc.close(writeFd);
  writeFd = -1;
  if (pid !== 0) unsafeLibc.waitpid(pid, new Int32Array(1), C.WNOHANG);
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

/** Sends `text`, starting (or restarting) the cleaner as needed. */
function send(text: string): void {
  if (failed || !cleanerSupported) return;
  for (let attempt = 0; attempt < 2; attempt++) {
    if (writeFd === -1) {
      if (!start()) {
        failed = true; // no /bin/sh, no fork: in-process cleanup still runs at exit
        return;
      }
      // A new cleaner knows nothing yet: send every record, not only the new line.
      forgets = [];
      text = [...records.values()].map(addLine).join("");
    }
    if (writeAll(text)) return;
    lost();
  }
}

/**
 * Registers `record` under `key` with the cleaner, starting it on first use.
 * Never throws: without a cleaner, the in-process exit cleanup remains.
 */
export function cleanerWatch(key: unknown, record: CleanerRecord): void {
  const old = records.get(key);
  if (old !== undefined) forgets.push(forgetLine(old));
  records.set(key, record);
  const text = forgets.join("") + addLine(record);
  forgets = [];
  send(text);
}

/** Tells the cleaner to leave the record under `key` alone (sent with the next batch). */
export function cleanerForget(key: unknown): void {
  const record = records.get(key);
  if (record === undefined) return;
  records.delete(key);
  if (writeFd === -1) return;
  forgets.push(forgetLine(record));
  if (forgets.length >= FORGET_BATCH) {
    const text = forgets.join("");
    forgets = [];
    if (!writeAll(text)) lost();
  }
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
  records.clear();
}

/** The cleaner's pid, or 0 when none runs (for tests). */
export function cleanerPid(): number {
  return pid;
}
