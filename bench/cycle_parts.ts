/**
 * What the safe create/destroy cycles and spawn add over the thin calls,
 * part by part, in the current runtime: each part timed alone in a loop
 * (median of rounds), so the gaps in BENCHMARKS.md are measured, not guessed.
 * Not a `*_bench.ts` module: it has no goals. CPU-bound parts are steady
 * under load; the whole cycles move with it.
 *
 * Usage: deno run -A bench/cycle_parts.ts | bun bench/cycle_parts.ts
 *
 * @module
 */
import { SharedMemory, spawn, SystemVSegment } from "../mod.ts";
import {
  platform,
  posixFallocate,
  shmctlRemove,
  shmget,
  shmOpen,
  shmUnlink,
  unsafeShmat,
  unsafeShmdt,
} from "../raw.ts";
import { backend, unsafeLibc } from "../ffi/libc.ts";
import { unsafeView } from "../ffi/pointer.ts";
import { fileSizeLimit } from "../shm/_backing.ts";
import { statFd, statPath } from "../core/_io.ts";
import { quarantine } from "../core/_quarantine.ts";
import { cleanerForget, cleanerWatch } from "../shm/_cleaner.ts";
import { ExitWatch } from "../spawn/_exit_watch.ts";
import { attributesFor } from "../spawn/_attributes.ts";
import { plan } from "../spawn/_plan.ts";
import { CStringArray, posixSpawn, PosixSpawnFileActions } from "../spawn/raw.ts";
import { compileC, median } from "./harness.ts";
import { recordCreator } from "../shm/_creator.ts";
import { execFileSync } from "node:child_process";

const C = platform.constants;
const SIZE = 4096;
const name = `/shmkit-parts-${unsafeLibc.getpid()}`;
const flags = C.O_CREAT | C.O_EXCL | C.O_RDWR | C.O_CLOEXEC;
const path = `/dev/shm${name}`;

function thinShm(quarantined: boolean): void {
  const fd = shmOpen(name, flags, 0o600);
  posixFallocate(fd, 0, SIZE);
  const address = unsafeLibc.mmap(0, SIZE, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd, 0);
  unsafeView(address, SIZE).fill(1);
  if (quarantined) quarantine(address, SIZE);
  else unsafeLibc.munmap(address, SIZE);
  unsafeLibc.close(fd);
  shmUnlink(name);
}

/**
 * The thin cycle plus every system call the safe cycle adds: the rest of the
 * gap is bookkeeping. (The creator record of an object disposed in the job
 * that made it is never written; one living longer costs an fsetxattr more.)
 */
function sameCallsShm(): void {
  fileSizeLimit();
  const fd = shmOpen(name, flags, 0o600);
  posixFallocate(fd, 0, SIZE);
  statFd(fd);
  const address = unsafeLibc.mmap(0, SIZE, C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd, 0);
  unsafeView(address, SIZE).fill(1);
  quarantine(address, SIZE);
  unsafeLibc.close(fd);
  statPath(path);
  shmUnlink(name);
}

function thinSysv(): void {
  const id = shmget(C.IPC_PRIVATE, SIZE, C.IPC_CREAT | C.IPC_EXCL | 0o600);
  const address = unsafeShmat(id, 0, 0);
  unsafeView(address, SIZE)[0] = 1;
  unsafeShmdt(address);
  shmctlRemove(id);
}

function thinSysvQuarantined(): void {
  const id = shmget(C.IPC_PRIVATE, SIZE, C.IPC_CREAT | C.IPC_EXCL | 0o600);
  const address = unsafeShmat(id, 0, 0);
  unsafeView(address, SIZE)[0] = 1;
  quarantine(address, SIZE);
  shmctlRemove(id);
}

/** Median microseconds per call of each part, over alternating rounds. */
async function time(
  parts: Record<string, () => unknown>,
  iterations: number,
  rounds = 9,
): Promise<Record<string, number>> {
  const samples: Record<string, number[]> = {};
  for (let round = 0; round < rounds; round++) {
    for (const [part, fn] of Object.entries(parts)) {
      const start = performance.now();
      for (let i = 0; i < iterations; i++) await fn();
      (samples[part] ??= []).push(((performance.now() - start) * 1000) / iterations);
      // End the job: WeakRefs made in it are kept alive until then.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
}

function print(title: string, result: Record<string, number>): void {
  console.log(`${backend.runtime} | ${title}`);
  for (const [part, us] of Object.entries(result)) console.log(`  ${part}: ${us.toFixed(2)} us`);
}

const probe = shmOpen(`${name}-probe`, flags, 0o600);
try {
  const registry = new FinalizationRegistry<object>(() => {});
  const weak = new WeakMap<object, number>();
  print(
    "POSIX shm cycle, 4 KiB",
    await time({
      "whole safe cycle (SharedMemory.create + fill + dispose)": () => {
        using shm = SharedMemory.create({ name, size: SIZE });
        shm.view().fill(1);
      },
      "thin cycle (shmOpen, posixFallocate, mmap, fill, munmap, close, shmUnlink)": () =>
        thinShm(false),
      "thin cycle with the close quarantine instead of munmap": () => thinShm(true),
      "thin cycle making every system call the safe one makes (getrlimit, fstat, quarantine, stat)":
        sameCallsShm,
      "cleaner registration + forget (ledger line; waitpid WNOHANG)": () => {
        const key = {};
        cleanerWatch(key, { kind: "shm", name: `${name}-never`, dev: 1, ino: 1 });
        cleanerForget(key);
      },
      "RLIMIT_FSIZE check (getrlimit)": () => fileSizeLimit(),
      "creator record (fsetxattr; objects that outlive their job)": () => recordCreator(probe),
      "identity at create (fstat)": () => statFd(probe),
      "identity before unlink (stat of /dev/shm/name)": () => statPath(`/dev/shm${name}-probe`),
      "new WeakRef": () => new WeakRef({}),
      "WeakMap set": () => weak.set({}, 0),
      "FinalizationRegistry register + unregister": () => {
        const token = {};
        registry.register({}, token, token);
        registry.unregister(token);
      },
    }, 1000),
  );
  print(
    "System V cycle, 4 KiB",
    await time({
      "whole safe cycle (create, attach, write, detach, remove)": () => {
        const segment = SystemVSegment.create(SIZE);
        const attachment = segment.attach();
        attachment.view(Uint32Array)[0] = 1;
        attachment.detach();
        segment.remove();
      },
      "thin cycle (shmget, unsafeShmat, write, unsafeShmdt, shmctlRemove)": thinSysv,
      "thin cycle with the close quarantine instead of shmdt": thinSysvQuarantined,
    }, 1000),
  );
} finally {
  unsafeLibc.close(probe);
  shmUnlink(`${name}-probe`);
}

// The same cycles in C, with the system calls the safe layer adds: the floor below the JS figures.
console.log(`${backend.runtime} | C floor of the safe cycles (bench/c/cycle_floor.c, medians)`);
for (
  const line of execFileSync(compileC("cycle_floor"), ["9", "2000"], { encoding: "utf8" }).trim()
    .split("\n")
) {
  console.log(`  ${line}`);
}

const attributes = attributesFor();
const actions = new PosixSpawnFileActions().addCloseFrom(3);
const argv = new CStringArray(["/bin/true"], "argv");
// The environment spawn() passes: with LANG in it /bin/true loads its locale, as it does from C.
const envp = plan(["/bin/true"], undefined).envp as CStringArray | number;
const status = new Int32Array(1);
print(
  "spawn + wait of /bin/true",
  await time({
    "spawn() + await status": () => spawn(["/bin/true"]).status,
    "posixSpawn + blocking waitpid": () => {
      unsafeLibc.waitpid(posixSpawn("/bin/true", actions, attributes, argv, envp), status, 0);
    },
    "posixSpawn + ExitWatch (how the end is noticed here)": () =>
      new ExitWatch(posixSpawn("/bin/true", actions, attributes, argv, envp)).promise,
    "plan() (argument checks, environment)": () => plan(["/bin/true"], undefined),
  }, 40),
);
// More parts, and C with a runtime's shape (threads, a pidfd, a waiter thread): bench/spawn_parts.ts.
