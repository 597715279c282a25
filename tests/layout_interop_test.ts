/**
 * The struct codec against other languages: the C compiler's own layout of
 * hand-written structs (x86_64, and aarch64 cross-compiled and run under
 * qemu), the emitted headers compiled with their static asserts, the
 * emitted ctypes modules imported by Python, and a Python peer and a C peer
 * (using the emitted header) reading and writing a struct in a shared
 * memory object.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";

import { SharedMemory } from "../mod.ts";
import { MUTEX_MAGIC } from "../raw.ts";
import { defineStruct, type Struct } from "../layout/mod.ts";
import { have, skipIf, tempDir } from "./helpers.ts";
import { leftovers, repoPath, testName } from "./fixtures/runtimes.ts";
import { REFERENCE } from "./fixtures/layout_structs.ts";

const REFERENCE_C = repoPath("tests/fixtures/layout_reference.c");
const PEER_PY = repoPath("tests/fixtures/layout_peer.py");
const PEER_C = repoPath("tests/fixtures/layout_peer.c");
const CFLAGS = ["-std=gnu11", "-O0", "-Wall", "-Werror"];

interface CLayout {
  size: number;
  align: number;
  offsets: Record<string, number>;
}

const hostArch = process.arch === "x64" ? "x86_64" : process.arch === "arm64" ? "aarch64" : "";

function run(cmd: string, args: string[], env?: Record<string, string>): string {
  return execFileSync(cmd, args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    env: env === undefined ? process.env : { ...process.env, ...env },
  });
}

/** A C compiler whose target is `arch`-linux-gnu, or undefined. */
function compilerFor(arch: string): string | undefined {
  for (const cc of ["cc", "gcc", `${arch}-linux-gnu-gcc`]) {
    try {
      if (run(cc, ["-dumpmachine"]).startsWith(`${arch}-`)) return cc;
    } catch {
      // not installed; try the next
    }
  }
  return undefined;
}

/** Compiles the reference program and runs it (under qemu for another arch). */
function compilerLayouts(cc: string, arch: string): Record<string, CLayout> {
  const dir = tempDir();
  try {
    const exe = join(dir.path, "reference");
    run(cc, [...CFLAGS, "-o", exe, REFERENCE_C]);
    const qemuEnv = { QEMU_LD_PREFIX: `/usr/${arch}-linux-gnu` };
    let text: string;
    try {
      text = arch === hostArch ? run(exe, []) : run(`qemu-${arch}-static`, [exe], qemuEnv);
    } catch (error) {
      // The aarch64 runtime under qemu-user can't exec a target binary natively.
      if (!have(`qemu-${arch}-static`)) throw error;
      text = run(`qemu-${arch}-static`, [exe], qemuEnv);
    }
    return JSON.parse(text) as Record<string, CLayout>;
  } finally {
    dir.remove();
  }
}

// deno-lint-ignore no-explicit-any
type AnyStruct = Struct<any>;

function codecLayout(struct: AnyStruct): CLayout {
  return {
    size: struct.size,
    align: struct.align,
    offsets: Object.fromEntries(struct.fields.map((f) => [f.name, f.offset])),
  };
}

function assertAgrees(compiler: Record<string, CLayout>, where: string): void {
  assert.deepEqual(Object.keys(compiler).sort(), Object.keys(REFERENCE).sort(), where);
  for (const [name, struct] of Object.entries(REFERENCE)) {
    assert.deepStrictEqual(codecLayout(struct), compiler[name], `${where}: struct ${name}`);
  }
}

const nativeCc = hostArch === "" ? undefined : compilerFor(hostArch);
const nativeSkip = skipIf(nativeCc === undefined, `no C compiler for ${process.arch}`);
const crossMissing = ["aarch64-linux-gnu-gcc", "qemu-aarch64-static"].filter((t) => !have(t));
const crossSkip = skipIf(crossMissing.length > 0, `${crossMissing.join(" and ")} not installed`);

test(`every reference struct lays out as ${hostArch} cc lays it out`, { skip: nativeSkip }, () => {
  assertAgrees(compilerLayouts(nativeCc!, hostArch), `${nativeCc} (${hostArch})`);
});

test(
  "every reference struct lays out as aarch64-linux-gnu-gcc lays it out (run under qemu)",
  { skip: crossSkip, timeout: 120_000 },
  () => {
    assertAgrees(compilerLayouts("aarch64-linux-gnu-gcc", "aarch64"), "aarch64");
  },
);

/** Compiles each header in its own translation unit; returns the compiler's complaint, if any. */
function compileHeaders(cc: string, headers: Record<string, string>): string | undefined {
  const dir = tempDir();
  try {
    const sources = Object.entries(headers).map(([name, text]) => {
      writeFileSync(join(dir.path, `${name}.h`), text);
      const source = join(dir.path, `${name}.c`);
      writeFileSync(source, `#include "${name}.h"\n`);
      return source;
    });
    const result = spawnSync(cc, [...CFLAGS, "-fsyntax-only", ...sources], { encoding: "utf8" });
    return result.status === 0 ? undefined : `${result.stderr}`;
  } finally {
    dir.remove();
  }
}

function emittedHeaders(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(REFERENCE).map(([name, s]) => [`gen_${name}`, s.toCHeader(`gen_${name}`)]),
  );
}

for (
  const [which, cc, skip] of [
    [`the native ${hostArch} compiler`, nativeCc, nativeSkip],
    ["the aarch64 cross compiler", "aarch64-linux-gnu-gcc", crossSkip],
  ] as const
) {
  test(`the emitted headers pass their own static asserts under ${which} (${cc})`, { skip }, () => {
    assert.equal(compileHeaders(cc!, emittedHeaders()), undefined);
  });
}

test("a header whose offset disagrees with the compiler does not compile", {
  skip: nativeSkip,
}, () => {
  const good = REFERENCE.mixed.toCHeader("gen_mixed");
  const bad = good.replace("offsetof(gen_mixed, e) == 16", "offsetof(gen_mixed, e) == 12");
  assert.notEqual(bad, good, "the header asserts offsetof(e) == 16");
  const complaint = compileHeaders(nativeCc!, { gen_mixed: bad });
  assert.match(complaint ?? "", /gen_mixed\.e: offset/);
});

const pythonSkip = skipIf(!have("python3"), "python3 is not installed");

function python(args: string[], input?: string): string {
  const result = spawnSync("python3", args, { encoding: "utf8", input });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout.trim();
}

test("the emitted ctypes modules import: ctypes agrees on every size and offset", {
  skip: pythonSkip,
}, () => {
  const dir = tempDir();
  try {
    const names = Object.keys(REFERENCE);
    for (const [name, s] of Object.entries(REFERENCE)) {
      writeFileSync(join(dir.path, `gen_${name}.py`), s.toPythonCtypes(`gen_${name}`));
    }
    // Print sizes and offsets as ctypes sees them, to compare here as well.
    const script = [
      "import ctypes, importlib, json, sys",
      `sys.path.insert(0, ${JSON.stringify(dir.path)})`,
      "out = {}",
      `for name in ${JSON.stringify(names)}:`,
      "    t = getattr(importlib.import_module('gen_' + name), 'gen_' + name)",
      "    out[name] = {'size': ctypes.sizeof(t), 'align': ctypes.alignment(t),",
      "                 'offsets': {f: getattr(t, f).offset for f, _ in t._fields_}}",
      "print(json.dumps(out))",
    ].join("\n");
    const seen = JSON.parse(python(["-c", script])) as Record<string, CLayout>;
    assertAgrees(seen, "ctypes");
  } finally {
    dir.remove();
  }
});

test("an emitted ctypes module that disagrees with ctypes raises ImportError", {
  skip: pythonSkip,
}, () => {
  const dir = tempDir();
  try {
    const good = REFERENCE.u64_after_u8.toPythonCtypes("gen_bad");
    const bad = good.replace('"b": 8', '"b": 4');
    assert.notEqual(bad, good);
    writeFileSync(join(dir.path, "gen_bad.py"), bad);
    const result = spawnSync("python3", ["-c", "import gen_bad"], {
      encoding: "utf8",
      cwd: dir.path,
    });
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /ImportError: ctypes lays out gen_bad unlike shmkit/);
  } finally {
    dir.remove();
  }
});

// --- a Python peer over shared memory

const point = defineStruct({ x: "f32", y: "f32", label: "char[8]" }, { name: "point" });
const Record = defineStruct({
  magic: "u32",
  flag: "bool",
  tiny: "i8",
  counter: "u64",
  offset: "i64",
  temperature: "f64",
  ratio: "f32",
  name: "char[24]",
  samples: ["i16", 6],
  words: ["u32", 3],
  bigs: ["i64", 2],
  flags: ["bool", 3],
  tags: ["char[6]", 2],
  origin: point,
  path: [point, 2],
  lock: "mutex",
  pad: "pad[3]",
  last: "u16",
}, { name: "record" });

type Value = ReturnType<typeof Record.get>;

/** JSON for the peer: every number and bigint as a string Python's int() or float() reads. */
function toPython(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<unknown>);
    if (typeof v === "bigint") return String(v);
    if (typeof v === "number") return Object.is(v, -0) ? "-0" : String(v);
    return v;
  });
}

/** Turns the peer's dump (numbers as strings: str(int), repr(float)) back into codec values. */
function fromPython(struct: AnyStruct, dump: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of struct.fields) {
    if (!(f.name in dump) || typeof f.kind === "string" && /^pad|^mutex/.test(f.kind)) continue;
    out[f.name] = convert(f.kind, dump[f.name]);
  }
  return out;
}

function convert(kind: unknown, v: unknown): unknown {
  if (Array.isArray(kind)) return (v as unknown[]).map((item) => convert(kind[0], item));
  if (typeof kind !== "string") return fromPython(kind as AnyStruct, v as Record<string, unknown>);
  if (kind === "u64" || kind === "i64") return BigInt(v as string);
  if (kind === "f32" || kind === "f64") {
    const text = v as string;
    return text === "nan"
      ? NaN
      : text === "inf"
      ? Infinity
      : text === "-inf"
      ? -Infinity
      : Number(text);
  }
  if (/^[ui]\d+$/.test(kind)) return Number(v as string);
  return v; // bool, strings
}

/** Plain arrays for TypedArrays, so that deepStrictEqual compares NaN and -0 by Object.is. */
function plain(value: unknown): unknown {
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<unknown>);
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

const FROM_SHMKIT: Value = {
  magic: 0xfeedc0de,
  flag: true,
  tiny: -128,
  counter: (1n << 64n) - 1n,
  offset: -(1n << 63n),
  temperature: -0,
  ratio: Math.fround(3.4e38),
  name: "grüße, 温度 🌡",
  samples: Int16Array.of(-32768, 32767, 0, -1, 1, 12345),
  words: Uint32Array.of(0, 0xffffffff, 7),
  bigs: BigInt64Array.of((1n << 63n) - 1n, -5n),
  flags: [true, false, true],
  tags: ["abcde", ""],
  origin: { x: NaN, y: -Infinity, label: "origin" },
  path: [{ x: 1.5, y: -0, label: "a" }, { x: Math.fround(1e-40), y: 2, label: "b🙂" }],
  last: 65535,
};

const FROM_PYTHON: Value = {
  magic: 1,
  flag: false,
  tiny: 127,
  counter: 1n << 53n,
  offset: (1n << 63n) - 1n,
  temperature: Number.MAX_VALUE,
  ratio: -0,
  name: "from python ✓",
  samples: Int16Array.of(1, 2, 3, 4, 5, -6),
  words: Uint32Array.of(1, 2, 3),
  bigs: BigInt64Array.of(-(1n << 63n), 0n),
  flags: [false, true, false],
  tags: ["x", "yz"],
  origin: { x: Infinity, y: Math.fround(-2.5), label: "py" },
  path: [{ x: NaN, y: 0, label: "" }, { x: -1, y: 1, label: "1234567" }],
  last: 0,
};

test("a Python peer reads what shmkit wrote through the emitted ctypes class, and back", {
  skip: pythonSkip,
}, () => {
  const dir = tempDir();
  const name = testName("layout-py");
  try {
    const module = join(dir.path, "record_layout.py");
    writeFileSync(module, Record.toPythonCtypes());
    using shm = SharedMemory.create({ name, size: 4096 });
    const at = 64; // not at the start: offsets are relative to the struct
    const view = Record.init(shm, at);
    Record.set(shm, FROM_SHMKIT, at);
    assert.notEqual(view.lock.tryLock(), null, "init laid out a working mutex");
    view.lock.unlock();

    const dump = JSON.parse(python([PEER_PY, "dump", module, "record", name, String(at)]));
    assert.deepStrictEqual(plain(fromPython(Record, dump)), plain(FROM_SHMKIT));
    assert.deepStrictEqual(
      dump.lock.slice(0, 2),
      ["0", String(MUTEX_MAGIC)],
      "Python sees the mutex words",
    );

    python([PEER_PY, "load", module, "record", name, String(at)], toPython(FROM_PYTHON));
    assert.deepStrictEqual(plain(Record.get(shm, at)), plain(FROM_PYTHON));
    assert.equal(view.name, "from python ✓");
    assert.equal(view.path.at(1).label, "1234567");
    assert.notEqual(view.lock.tryLock(), null, "the peer left the mutex alone");
    view.lock.unlock();
  } finally {
    dir.remove();
    if (leftovers().includes(name)) SharedMemory.unlink(name);
  }
});

test("a C peer reads and writes the struct through the emitted header", {
  skip: nativeSkip,
}, () => {
  const dir = tempDir();
  const name = testName("layout-c");
  try {
    writeFileSync(join(dir.path, "record.h"), Record.toCHeader());
    const exe = join(dir.path, "layout_peer");
    run(nativeCc!, [...CFLAGS, "-I", dir.path, "-o", exe, PEER_C]);
    using shm = SharedMemory.create({ name, size: 4096 });
    const at = 128;
    Record.init(shm, at);
    Record.set(shm, FROM_SHMKIT, at);
    const seen = Object.fromEntries(
      run(exe, [name, String(at)]).trim().split("\n").map((line) => {
        const eq = line.indexOf("=");
        return [line.slice(0, eq), line.slice(eq + 1)];
      }),
    );
    const v = FROM_SHMKIT;
    assert.deepStrictEqual({ ...seen, path1: undefined }, {
      magic: String(v.magic),
      flag: "1",
      tiny: "-128",
      counter: String(v.counter),
      offset: String(v.offset),
      temperature: "-0",
      ratio: "3.39999995e+38",
      name: v.name,
      samples: [...v.samples].join(","),
      bigs: [...v.bigs].join(","),
      flags: "1,0,1",
      tags: "abcde,",
      origin: "nan,-inf,origin",
      last: "65535",
      path1: undefined,
    });
    const [x, y, label] = seen.path1!.split(",");
    assert.equal(Math.fround(Number(x)), v.path[1]!.x, "a subnormal f32");
    assert.deepEqual([y, label], ["2", "b🙂"]);
    const back = Record.get(shm, at);
    assert.equal(back.counter, ((1n << 64n) - 1n) * 2n % (1n << 64n), "u64 wraps in C");
    assert.equal(back.offset, -(1n << 63n));
    assert.equal(back.temperature, -1 / 3);
    assert.equal(back.flag, false);
    assert.equal(back.name, "written by C");
    assert.deepEqual([...back.samples], [0, -1000, -2000, -3000, -4000, -5000]);
    assert.deepEqual(back.flags, [true, false, false]);
    assert.deepEqual(back.tags, ["abcde", "tag"]);
    assert.deepStrictEqual(back.path[1], { x: 0.25, y: 2, label: "c-side" });
    assert.equal(back.last, 4242);
    assert.equal(back.magic, v.magic, "untouched fields keep their values");
  } finally {
    dir.remove();
    if (leftovers().includes(name)) SharedMemory.unlink(name);
  }
});
