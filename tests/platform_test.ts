/**
 * Checks the platform tables against the C compiler: the generated Linux
 * tables must equal what a freshly compiled `scripts/probe_platform.c` prints,
 * and every table must cover every name in `platform/types.ts`.
 *
 * Runs under both `deno test -A` and `bun test`, so it uses only node:
 * modules.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

import {
  CONSTANT_NAMES,
  detectPlatform,
  type Platform,
  platform,
  PLATFORMS,
  selectPlatform,
  STRUCT_NAMES,
} from "../platform/mod.ts";
import { DARWIN_AARCH64 } from "../platform/darwin.ts";
import { LINUX_AARCH64 } from "../platform/linux_aarch64.ts";
import { LINUX_X86_64 } from "../platform/linux_x86_64.ts";

const PROBE_SOURCE = fileURLToPath(
  new URL("../scripts/probe_platform.c", import.meta.url),
);

/** Same flags as scripts/gen_platform.ts, so both see the same headers. */
const CFLAGS = ["-D_GNU_SOURCE", "-std=gnu11", "-O0", "-Wall", "-Werror"];

/** The four data sections of a table; the probe also prints `toolchain`. */
type ProbeData = Pick<Platform, "constants" | "errno" | "signals" | "structs">;

function output(cmd: string, args: string[], env?: Record<string, string>): string {
  return execFileSync(cmd, args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    env: env === undefined ? process.env : { ...process.env, ...env },
  });
}

/** Whether a command can be run at all (it exists and starts). */
function hasTool(cmd: string): boolean {
  try {
    output(cmd, ["--version"]);
    return true;
  } catch {
    return false;
  }
}

/** A C compiler whose target is `arch`-linux-gnu, or undefined. */
function compilerFor(arch: string): string | undefined {
  for (const cc of ["cc", "gcc", `${arch}-linux-gnu-gcc`]) {
    try {
      if (output(cc, ["-dumpmachine"]).startsWith(`${arch}-`)) return cc;
    } catch {
      // not installed; try the next
    }
  }
  return undefined;
}

function qemuEnv(arch: string): Record<string, string> {
  // qemu-user finds the target's dynamic loader and libc under this prefix.
  return { QEMU_LD_PREFIX: `/usr/${arch}-linux-gnu` };
}

/** Compiles the probe with `cc` and runs it (under qemu when `qemu` is given). */
function probe(cc: string, arch: string, qemu?: string): ProbeData {
  const dir = mkdtempSync(join(tmpdir(), "shmkit_probe_"));
  try {
    const exe = join(dir, "probe");
    output(cc, [...CFLAGS, "-o", exe, PROBE_SOURCE]);
    let text: string;
    if (qemu !== undefined) {
      text = output(qemu, [exe], qemuEnv(arch));
    } else {
      try {
        text = output(exe, []);
      } catch (error) {
        // Under qemu-user (e.g. the aarch64 runtime on an x86_64 host) a
        // target binary cannot be exec'd natively; fall back to qemu.
        const fallback = `qemu-${arch}-static`;
        if (!hasTool(fallback)) throw error;
        text = output(fallback, [exe], qemuEnv(arch));
      }
    }
    const { constants, errno, signals, structs } = JSON.parse(text) as ProbeData;
    return { constants, errno, signals, structs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function assertMatchesProbe(table: Platform, probed: ProbeData): void {
  // Section by section, so a failure names the section that drifted.
  assert.deepStrictEqual(table.constants, probed.constants, "constants");
  assert.deepStrictEqual(table.errno, probed.errno, "errno");
  assert.deepStrictEqual(table.signals, probed.signals, "signals");
  assert.deepStrictEqual(table.structs, probed.structs, "structs");
}

/** Logs why a test is skipped (runners show skip reasons unevenly) and returns it. */
function skipReason(reason: string | undefined): string | false {
  if (reason === undefined) return false;
  console.log(`skip: ${reason}`);
  return reason;
}

const current = detectPlatform();
const LINUX_TABLES: readonly Platform[] = [LINUX_X86_64, LINUX_AARCH64];
const nativeTable = current.os === "linux"
  ? LINUX_TABLES.find((t) => t.arch === current.arch)
  : undefined;
const nativeCc = nativeTable === undefined ? undefined : compilerFor(current.arch);
const nativeSkip = current.os !== "linux"
  ? `the ${current.os} table is written from headers, not probed`
  : nativeTable === undefined
  ? `no Linux table for ${current.arch}`
  : nativeCc === undefined
  ? `no C compiler targeting ${current.arch}-linux-gnu (cc, gcc)`
  : undefined;

test(
  `the ${current.os}-${current.arch} table equals the freshly compiled probe`,
  { skip: skipReason(nativeSkip) },
  () => {
    assert.ok(nativeTable !== undefined && nativeCc !== undefined);
    assertMatchesProbe(nativeTable, probe(nativeCc, current.arch));
  },
);

const crossMissing = ["aarch64-linux-gnu-gcc", "qemu-aarch64-static"]
  .filter((tool) => !hasTool(tool));
const crossSkip = crossMissing.length > 0
  ? `${crossMissing.join(" and ")} not installed`
  : undefined;

test(
  "the linux-aarch64 table equals the probe cross-compiled and run under qemu",
  { skip: skipReason(crossSkip) },
  () => {
    assertMatchesProbe(
      LINUX_AARCH64,
      probe("aarch64-linux-gnu-gcc", "aarch64", "qemu-aarch64-static"),
    );
  },
);

test("selectPlatform rejects an unsupported platform, naming it", () => {
  assert.throws(() => selectPlatform("linux", "riscv64"), {
    message: "Cannot load shmkit: unsupported platform linux-riscv64; supported: " +
      "linux-x86_64-gnu, linux-aarch64-gnu, darwin-aarch64 (untested)",
  });
  assert.throws(
    () => selectPlatform("windows", "x86_64"),
    /unsupported platform windows-x86_64;/,
  );
  assert.throws(
    () => selectPlatform("darwin", "x86_64"),
    /unsupported platform darwin-x86_64;/,
  );
});

test("selectPlatform picks each shipped table, and platform is the running one", () => {
  for (const table of PLATFORMS) {
    assert.equal(selectPlatform(table.os, table.arch), table);
  }
  assert.equal(platform, selectPlatform(current.os, current.arch));
});

test("every table carries every constant and struct name, and nothing else", () => {
  for (const table of PLATFORMS) {
    const where = `${table.os}-${table.arch}`;
    assert.deepStrictEqual(
      Object.keys(table.constants).sort(),
      [...CONSTANT_NAMES].sort(),
      `${where} constants`,
    );
    assert.deepStrictEqual(
      Object.keys(table.structs).sort(),
      [...STRUCT_NAMES].sort(),
      `${where} structs`,
    );
    for (const [name, value] of Object.entries(table.constants)) {
      assert.ok(Number.isInteger(value) && value >= -1, `${where} ${name} = ${value}`);
    }
    for (const [name, layout] of Object.entries(table.structs)) {
      for (const [field, f] of Object.entries(layout.fields)) {
        assert.ok(
          f.offset + f.size <= layout.size,
          `${where} ${name}.${field} ends past the struct`,
        );
      }
    }
  }
});

test("errno and signal tables are keyed by their C names, with distinct core values", () => {
  for (const table of PLATFORMS) {
    const where = `${table.os}-${table.arch}`;
    for (const name of Object.keys(table.errno)) assert.match(name, /^E[A-Z0-9]+$/, where);
    for (const name of Object.keys(table.signals)) assert.match(name, /^SIG[A-Z0-9]+$/, where);
    const core = ["EPERM", "ENOENT", "EBADF", "EAGAIN", "ENOMEM", "EACCES", "EEXIST", "EINVAL"];
    const values = core.map((name) => table.errno[name]);
    assert.ok(values.every((v) => Number.isInteger(v) && v! > 0), `${where} core errno names`);
    assert.equal(new Set(values).size, core.length, `${where} core errno values are distinct`);
    assert.ok(Number.isInteger(table.signals.SIGKILL) && Number.isInteger(table.signals.SIGTERM));
  }
});

test("the darwin System V layouts match the offsets read from Apple's headers, not from the table", () => {
  // Transcribed by hand from the macOS SDK, independently of platform/darwin.ts:
  // <sys/ipc.h> struct __ipc_perm_new { uid_t uid; gid_t gid; uid_t cuid; gid_t cgid;
  //   mode_t mode; unsigned short _seq; key_t _key; }  (uid_t/gid_t 4 bytes, mode_t 2, key_t 4)
  // <sys/shm.h> #pragma pack(4) struct __shmid_ds_new { struct __ipc_perm_new shm_perm;
  //   size_t shm_segsz; pid_t shm_lpid; pid_t shm_cpid; shmatt_t shm_nattch (unsigned short);
  //   time_t shm_atime, shm_dtime, shm_ctime; void *shm_internal; }  (arm64: size_t, time_t,
  //   pointers 8 bytes; pack(4) puts shm_atime at 44, not 48)
  const perm = { uid: 0, gid: 4, cuid: 8, cgid: 12, mode: 16, __seq: 18, __key: 20 };
  const ds = {
    shm_segsz: [24, 8],
    shm_lpid: [32, 4],
    shm_cpid: [36, 4],
    shm_nattch: [40, 2],
    shm_atime: [44, 8],
    shm_dtime: [52, 8],
    shm_ctime: [60, 8],
  };
  const table = DARWIN_AARCH64.structs;
  assert.equal(table.ipc_perm.size, 24);
  assert.equal(table.shmid_ds.size, 76, "68 + the 8-byte shm_internal");
  for (const [name, offset] of Object.entries(perm)) {
    assert.equal(table.ipc_perm.fields[name]?.offset, offset, `ipc_perm.${name}`);
    assert.equal(table.shmid_ds.fields[`shm_perm.${name}`]?.offset, offset, `shm_perm.${name}`);
  }
  assert.equal(table.ipc_perm.fields.mode?.size, 2, "mode_t is 16 bits on Darwin");
  for (const [name, [offset, size]] of Object.entries(ds)) {
    assert.deepEqual(
      [table.shmid_ds.fields[name]?.offset, table.shmid_ds.fields[name]?.size],
      [offset, size],
      name,
    );
  }
});
