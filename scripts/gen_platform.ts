/**
 * Regenerates the Linux platform tables from the C compiler.
 *
 * Compiles `scripts/probe_platform.c` for x86_64 (host `gcc`) and aarch64
 * (`aarch64-linux-gnu-gcc`, run under qemu-user), and writes
 * `platform/linux_x86_64.ts` and `platform/linux_aarch64.ts` from what the
 * probes print, and `platform/signal_names.ts` (every table's signal names,
 * as the `SignalName` type), then formats them with `deno fmt`.
 *
 * ```sh
 * node_modules/.bin/deno run -A scripts/gen_platform.ts
 * ```
 *
 * Needs gcc, gcc-aarch64-linux-gnu, libc6-arm64-cross and qemu-user-static.
 *
 * @module
 */

import {
  CONSTANT_NAMES,
  type FieldLayout,
  type Platform,
  STRUCT_NAMES,
  type StructLayout,
} from "../platform/types.ts";
import { DARWIN_AARCH64 } from "../platform/darwin.ts";

/** What the probe prints: the table data plus the toolchain that produced it. */
interface ProbeOutput {
  toolchain: { gcc: string; glibc: string };
  constants: Record<string, number>;
  errno: Record<string, number>;
  signals: Record<string, number>;
  structs: Record<string, StructLayout>;
}

/** One target to probe. */
interface Target {
  arch: Platform["arch"];
  /** Name of the exported constant. */
  exportName: string;
  /** Output file, relative to the repository root. */
  file: string;
  /** C compiler driver. */
  cc: string;
  /** How the compiled probe is run (host-native or under qemu). */
  run: (exe: string) => string[];
  /** Said in the header, after the toolchain. */
  how: string;
}

/** Flags shared with tests/platform_test.ts, which compiles the same probe. */
const CFLAGS = ["-D_GNU_SOURCE", "-std=gnu11", "-O0", "-Wall", "-Werror"];

const ROOT = new URL("../", import.meta.url);
const PROBE_SOURCE = new URL("scripts/probe_platform.c", ROOT).pathname;
const AARCH64_RUN = new URL("scripts/aarch64_run.sh", ROOT).pathname;

function aarch64Runner(exe: string): string[] {
  // Prefer the project's wrapper, which knows where the aarch64 sysroot is.
  try {
    Deno.statSync(AARCH64_RUN);
    return [AARCH64_RUN, exe];
  } catch {
    return ["env", "QEMU_LD_PREFIX=/usr/aarch64-linux-gnu", "qemu-aarch64-static", exe];
  }
}

const TARGETS: readonly Target[] = [
  {
    arch: "x86_64",
    exportName: "LINUX_X86_64",
    file: "platform/linux_x86_64.ts",
    cc: "gcc",
    run: (exe) => [exe],
    how: "",
  },
  {
    arch: "aarch64",
    exportName: "LINUX_AARCH64",
    file: "platform/linux_aarch64.ts",
    cc: "aarch64-linux-gnu-gcc",
    run: aarch64Runner,
    how: ", cross-compiled, run under qemu-aarch64",
  },
];

function run(argv: readonly string[], cwd?: string): string {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error("Cannot run an empty command");
  let out: Deno.CommandOutput;
  try {
    out = new Deno.Command(cmd, { args, cwd: cwd ?? Deno.cwd(), stdout: "piped", stderr: "piped" })
      .outputSync();
  } catch (error) {
    throw new Error(`Cannot run ${cmd}: ${(error as Error).message}`);
  }
  const dec = new TextDecoder();
  if (!out.success) {
    const stderr = dec.decode(out.stderr);
    throw new Error(`Cannot run ${argv.join(" ")}: exit code ${out.code}\n${stderr}`);
  }
  return dec.decode(out.stdout);
}

function probe(target: Target, dir: string): ProbeOutput {
  const exe = `${dir}/probe_${target.arch}`;
  run([target.cc, ...CFLAGS, "-o", exe, PROBE_SOURCE]);
  const data = JSON.parse(run(target.run(exe))) as ProbeOutput;
  check(target, data);
  return data;
}

/** Refuses probe output that does not cover exactly the names types.ts lists. */
function check(target: Target, data: ProbeOutput): void {
  const sameSet = (what: string, got: string[], want: readonly string[]): void => {
    const missing = want.filter((n) => !got.includes(n));
    const extra = got.filter((n) => !want.includes(n));
    if (missing.length > 0 || extra.length > 0) {
      throw new Error(
        `Cannot use the ${target.arch} probe output: ${what} missing [${missing}] extra [${extra}]`,
      );
    }
  };
  sameSet("constants", Object.keys(data.constants), CONSTANT_NAMES);
  sameSet("structs", Object.keys(data.structs), STRUCT_NAMES);
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function key(name: string): string {
  return IDENT.test(name) ? name : JSON.stringify(name);
}

// Renderers emit one entry per line and leave indentation to `deno fmt`.

/** An object literal with sorted keys; values are already rendered. */
function literal(entries: Record<string, string>): string {
  const body = Object.keys(entries).sort().map((k) => `${key(k)}: ${entries[k]},`);
  return `{\n${body.join("\n")}\n}`;
}

function numbers(record: Record<string, number>): string {
  return literal(
    Object.fromEntries(Object.entries(record).map(([k, v]) => [k, `${v}`])),
  );
}

function layout(s: StructLayout): string {
  // Fields in memory order, as the C declaration reads.
  const fields = Object.entries(s.fields)
    .sort(([a, fa], [b, fb]) => fa.offset - fb.offset || (a < b ? -1 : 1))
    .map(([name, f]: [string, FieldLayout]) =>
      `${key(name)}: { offset: ${f.offset}, size: ${f.size}, kind: "${f.kind}" },`
    );
  const body = fields.length === 0 ? "{}" : `{\n${fields.join("\n")}\n}`;
  return `{\nsize: ${s.size},\nalign: ${s.align},\nfields: ${body},\n}`;
}

function structs(record: Record<string, StructLayout>): string {
  return literal(
    Object.fromEntries(Object.entries(record).map(([k, v]) => [k, layout(v)])),
  );
}

function render(target: Target, data: ProbeOutput): string {
  const { gcc, glibc } = data.toolchain;
  return `// Generated by scripts/gen_platform.ts from scripts/probe_platform.c (gcc ${gcc}, glibc ${glibc}${target.how}) — do not edit.

/**
 * The platform table for Linux ${target.arch} with glibc, as the C compiler
 * sees it. \`SHMLBA\` is a run-time value in glibc (the page size); the number
 * here is the page size where the probe ran.
 *
 * @module
 */

import type { Platform } from "./types.ts";

/** Constants, errno and signal numbers, and struct layouts for Linux ${target.arch} (glibc). */
export const ${target.exportName}: Platform = {
  os: "linux",
  arch: ${JSON.stringify(target.arch)},
  libc: "gnu",
  tested: true,
  libraries: ["libc.so.6", "librt.so.1"],
  errnoLocation: "__errno_location",
  constants: ${numbers(data.constants)},
  errno: ${numbers(data.errno)},
  signals: ${numbers(data.signals)},
  structs: ${structs(data.structs)},
};
`;
}

/** The signal names of every table (the probed ones and Darwin's), as a list and a type. */
function renderSignalNames(tables: readonly Record<string, number>[]): string {
  const names = [...new Set(tables.flatMap((signals) => Object.keys(signals)))].sort();
  return `// Generated by scripts/gen_platform.ts from the platform tables' signals — do not edit.

/**
 * Every signal name in shmkit's platform tables: Linux x86_64 and aarch64
 * as probed, and Darwin's hand-written table.
 *
 * @module
 */

/** Every signal name some platform table has, sorted; \`platform.signals\` holds this platform's. */
export const SIGNAL_NAMES = ${JSON.stringify(names)} as const;

/**
 * A signal's name as C spells it (\`"SIGTERM"\`), from any platform table;
 * one this platform lacks is refused at run time.
 */
export type SignalName =
${names.map((n) => `  | ${JSON.stringify(n)}`).join("\n")};
`;
}

function main(): void {
  const dir = Deno.makeTempDirSync({ prefix: "shmkit_probe_" });
  let outputs: { path: string; source: string }[];
  try {
    // Probe every target before writing any, so a failure leaves no table half-updated.
    const probed = TARGETS.map((target) => ({ target, data: probe(target, dir) }));
    outputs = probed.map(({ target, data }) => ({
      path: new URL(target.file, ROOT).pathname,
      source: render(target, data),
    }));
    outputs.push({
      path: new URL("platform/signal_names.ts", ROOT).pathname,
      source: renderSignalNames([...probed.map((p) => p.data.signals), DARWIN_AARCH64.signals]),
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  for (const { path, source } of outputs) Deno.writeTextFileSync(path, source);
  const written = outputs.map(({ path }) => path);
  // From the repository root, so deno fmt reads the project's deno.json.
  run([Deno.execPath(), "fmt", ...written], ROOT.pathname);
  for (const path of written) console.log(`wrote ${path}`);
}

if (import.meta.main) main();
