/**
 * The struct codec on its own: every kind written and read back (edge
 * values included), the checks on values and definitions, live views
 * over mapped memory (zero-copy, detached on close), arrays of structs,
 * and mutex and channel fields. Layouts are checked against the C
 * compiler in layout_interop_test.ts.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";

import { Channel, ClosedError, Mapping, Mutex } from "../mod.ts";
import { defineStruct, Struct } from "../layout/mod.ts";

const Point = defineStruct({ x: "f64", y: "f64", tag: "char[6]" }, { name: "point" });
const All = defineStruct({
  u8: "u8",
  i8: "i8",
  u16: "u16",
  i16: "i16",
  u32: "u32",
  i32: "i32",
  u64: "u64",
  i64: "i64",
  f32: "f32",
  f64: "f64",
  flag: "bool",
  name: "char[12]",
  gap: "pad[5]",
  samples: ["i16", 4],
  bigs: ["u64", 2],
  floats: ["f32", 3],
  flags: ["bool", 3],
  names: ["char[4]", 2],
  origin: Point,
  path: [Point, 2],
});

const MAX = {
  u8: 255,
  i8: 127,
  u16: 65535,
  i16: 32767,
  u32: 4294967295,
  i32: 2147483647,
  u64: (1n << 64n) - 1n,
  i64: (1n << 63n) - 1n,
} as const;
const MIN = { u8: 0, i8: -128, u16: 0, i16: -32768, u32: 0, i32: -2147483648 } as const;

/** Plain arrays for TypedArrays, so that deepStrictEqual compares NaN and -0 by Object.is. */
function plain(value: unknown): unknown {
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<unknown>);
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

const EDGES = {
  u8: MAX.u8,
  i8: MIN.i8,
  u16: MAX.u16,
  i16: MIN.i16,
  u32: MAX.u32,
  i32: MIN.i32,
  u64: MAX.u64,
  i64: -(1n << 63n),
  f32: -0,
  f64: NaN,
  flag: true,
  name: "héllo wör", // 11 bytes in UTF-8: the most a char[12] holds
  samples: Int16Array.of(MIN.i16, MAX.i16, -1, 0),
  bigs: BigUint64Array.of(0n, MAX.u64),
  floats: Float32Array.of(NaN, -Infinity, Math.fround(1e-45)),
  flags: [true, false, true],
  names: ["abc", ""],
  origin: { x: -0, y: Number.MAX_VALUE, tag: "e🙂" },
  path: [{ x: Number.MIN_VALUE, y: -Infinity, tag: "" }, { x: 1, y: 2, tag: "12345" }],
};

test("every kind written with set() reads back with get(), edge values included", () => {
  const bytes = new Uint8Array(All.size + 16);
  All.set(bytes, EDGES, 16);
  assert.deepStrictEqual(plain(All.get(bytes, 16)), plain(EDGES));
  assert.ok(Object.is(All.get(bytes, 16).f32, -0), "-0 survives an f32");
  assert.ok(Object.is(All.get(bytes, 16).origin.x, -0), "-0 survives an f64");
  // the other extreme of each integer kind
  All.set(bytes, { ...MIN, u64: 0n, i64: MAX.i64 }, 16);
  const back = All.get(bytes, 16);
  assert.deepStrictEqual(
    [back.u8, back.i8, back.u16, back.i16, back.u32, back.i32, back.u64, back.i64],
    [0, -128, 0, -32768, 0, -2147483648, 0n, MAX.i64],
  );
  All.set(bytes, { ...MAX }, 16);
  assert.deepStrictEqual(All.get(bytes, 16).i32, MAX.i32);
  assert.deepStrictEqual(All.get(bytes, 16).u32, MAX.u32);
});

test("the bytes are C's: native little-endian, at the offsets the layout gives", () => {
  const buffer = new ArrayBuffer(All.size);
  All.set(buffer, { u32: 0x01020304, i64: -2n, f64: 1.5, name: "ab", samples: [1, -2, 3, -4] });
  const dv = new DataView(buffer);
  const at = (field: keyof typeof All.definition) => All.offsetOf(field);
  assert.deepEqual(
    [...new Uint8Array(buffer, at("u32"), 4)],
    [4, 3, 2, 1],
    "u32 little-endian",
  );
  assert.equal(dv.getBigInt64(at("i64"), true), -2n);
  assert.equal(dv.getFloat64(at("f64"), true), 1.5);
  assert.deepEqual([...new Uint8Array(buffer, at("name"), 12)], [
    97,
    98,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
  ]);
  assert.deepEqual([...new Int16Array(buffer, at("samples"), 4)], [1, -2, 3, -4]);
  assert.equal(at("u8"), 0);
  assert.equal(at("u64") % 8, 0, "u64 is 8-aligned");
});

test("set() leaves out fields it is not given, and padding is never written", () => {
  const bytes = new Uint8Array(All.size).fill(0xee);
  All.set(bytes, { u8: 1 });
  assert.equal(bytes[All.offsetOf("u8")], 1);
  assert.equal(bytes[All.offsetOf("i8")], 0xee, "the next field kept its byte");
  All.set(bytes, EDGES);
  const gap = All.offsetOf("gap");
  assert.deepEqual([...bytes.subarray(gap, gap + 5)], [0xee, 0xee, 0xee, 0xee, 0xee]);
  assert.equal("gap" in All.get(bytes), false, "padding is no value");
});

test("out-of-range and wrongly typed values are refused before any byte is written", () => {
  const bytes = new Uint8Array(All.size);
  const cases: [Record<string, unknown>, typeof TypeError | typeof RangeError, RegExp][] = [
    [{ u8: 256 }, RangeError, /Cannot set struct\.u8 to 256: a u8 is an integer from 0 to 255/],
    [{ u8: -1 }, RangeError, /u8 to -1/],
    [{ i8: 128 }, RangeError, /i8 to 128/],
    [{ u16: 1.5 }, RangeError, /u16 to 1\.5/],
    [{ i32: NaN }, RangeError, /i32 to NaN/],
    [{ u32: 2 ** 32 }, RangeError, /u32 to 4294967296/],
    [{ u64: 1n << 64n }, RangeError, /u64 to 18446744073709551616/],
    [{ u64: -1n }, RangeError, /u64 to -1/],
    [{ i64: 1n << 63n }, RangeError, /i64 to 9223372036854775808/],
    [{ i64: -(1n << 63n) - 1n }, RangeError, /i64 to -9223372036854775809/],
    [{ u64: 1 }, TypeError, /Cannot set struct\.u64: expected a bigint, got number/],
    [{ u8: 1n }, TypeError, /expected a number, got bigint/],
    [{ f64: "1" }, TypeError, /expected a number, got string/],
    [{ flag: 1 }, TypeError, /expected a boolean, got number/],
    [{ name: "x".repeat(12) }, RangeError, /12 bytes in UTF-8; a char\[12\] holds at most 11/],
    [{ name: "ééééééé" }, RangeError, /14 bytes in UTF-8/],
    [{ name: "a\0b" }, TypeError, /contains a NUL/],
    [{ name: 5 }, TypeError, /expected a string, got number/],
    [{ samples: [1, 2, 3] }, RangeError, /struct\.samples: expected 4 elements, got 3/],
    [{ samples: [1, 2, 3, 40000] }, RangeError, /struct\.samples\[3\] to 40000/],
    [{ samples: "1234" }, TypeError, /expected an array of 4, got string/],
    [{ names: ["a", "abcd"] }, RangeError, /names\[1\]: the string is 4 bytes/],
    [{ origin: { x: 1, z: 2 } }, TypeError, /struct\.origin\.z: the struct has no such field/],
    [{ path: [{}, { tag: "toolong" }] }, RangeError, /struct\.path\[1\]\.tag/],
    [{ gap: [0, 0, 0, 0, 0] }, TypeError, /struct\.gap: a padding field holds no value/],
    [{ nope: 1 }, TypeError, /struct\.nope: the struct has no such field/],
  ];
  for (const [value, type, message] of cases) {
    // The good field first: nothing at all may be written when a later one is bad.
    assert.throws(
      () => All.set(bytes, { u16: 7, ...value } as never),
      { name: type.name, message },
      JSON.stringify(value, (_k, v) => typeof v === "bigint" ? `${v}n` : v),
    );
    assert.ok(bytes.every((b) => b === 0), `nothing written for ${Object.keys(value)}`);
  }
  assert.throws(() => All.set(bytes, null as never), TypeError);
  assert.throws(
    () => All.set(bytes, [] as never),
    /expected a plain object of field values, got an array/,
  );
  const view = Point.view(new ArrayBuffer(Point.size));
  assert.throws(
    () => Point.set(new ArrayBuffer(Point.size), view as never),
    /expected a plain object of field values, got View \(read a view with get\(\) first\)/,
  );
});

test("a live view reads and writes the memory itself, zero-copy", () => {
  using mapping = Mapping.anonymous(4096);
  const at = 256;
  const view = All.view(mapping, at);
  view.u32 = 0xdeadbeef;
  view.i64 = -42n;
  view.name = "live";
  view.flag = true;
  assert.equal(mapping.view(Uint32Array, at + All.offsetOf("u32"), 1)[0], 0xdeadbeef);
  assert.equal(All.get(mapping, at).i64, -42n);
  // and the other way round
  mapping.view(Float64Array, at + All.offsetOf("f64"), 1)[0] = 6.25;
  assert.equal(view.f64, 6.25);
  // arrays are TypedArrays over the same bytes
  view.samples[2] = -7;
  assert.equal(view.samples, view.samples, "the same array each time");
  assert.equal(mapping.view(Int16Array, at + All.offsetOf("samples"), 4)[2], -7);
  view.bigs[1] = 5n;
  assert.equal(All.get(mapping, at).bigs[1], 5n);
  view.flags[1] = 1;
  assert.deepEqual(All.get(mapping, at).flags, [false, true, false]);
  view.names.set(1, "xyz");
  assert.deepEqual([...view.names], ["", "xyz"]);
  view.origin.y = 3;
  assert.equal(All.get(mapping, at).origin.y, 3);
  view.path.at(1).tag = "p1";
  assert.equal(view.path.get(1).tag, "p1");
  assert.equal(view.path.length, 2);
  // setters check as set() does
  assert.throws(() => (view.u8 = 300), { name: "RangeError", message: /Cannot set u8 to 300/ });
  assert.throws(() => (view.u64 = 1 as never), { name: "TypeError" });
  assert.throws(() => view.names.set(2, "a"), { name: "RangeError", message: /has 2 elements/ });
  assert.deepEqual(Object.keys(Object.getPrototypeOf(view)).slice(0, 3), ["u8", "i8", "u16"]);
});

test("a view of closed memory throws or reads empty; the process lives", () => {
  const mapping = Mapping.anonymous(4096);
  const view = All.view(mapping);
  const samples = view.samples;
  view.u32 = 9;
  mapping.close();
  assert.throws(() => view.u32, TypeError);
  assert.throws(() => (view.u32 = 1), TypeError);
  assert.equal(samples.length, 0, "the array view was detached");
  assert.throws(() => All.view(mapping), ClosedError);
  assert.throws(() => All.get(mapping), ClosedError);
  assert.throws(() => All.get(new Uint8Array(4)), RangeError);
});

test("memory a peer wrote is read defensively: any non-zero bool, unterminated or bad UTF-8 strings", () => {
  const S = defineStruct({ flag: "bool", name: "char[4]", flags: ["bool", 2] });
  const bytes = Uint8Array.of(7, 0x61, 0x62, 0x63, 0x64, 0, 255);
  assert.deepStrictEqual(S.get(bytes), { flag: true, name: "abcd", flags: [false, true] });
  bytes.set([0xff, 0xfe, 0x41, 0], 1);
  assert.equal(S.get(bytes).name, "\ufffd\ufffdA");
  assert.equal(S.view(bytes).name, "\ufffd\ufffdA");
});

test("views check placement: bounds, and alignment to the struct's", () => {
  const buffer = new ArrayBuffer(All.size + 8);
  assert.throws(() => All.view(buffer, 4), {
    name: "RangeError",
    message: /at byte 4 of its buffer: it must be a multiple of the struct's alignment, 8/,
  });
  assert.throws(() => All.view(buffer, 16), {
    name: "RangeError",
    message: new RegExp(`needs ${All.size} bytes and the memory has ${All.size + 8}`),
  });
  assert.throws(() => All.view(new Uint8Array(buffer, 1), 6), /at byte 7 of its buffer/);
  assert.doesNotThrow(() => All.view(new Uint8Array(buffer, 8), 0));
  assert.throws(() => All.get(buffer, -1), RangeError);
  assert.throws(() => All.get(buffer, 0.5), RangeError);
  assert.throws(() => All.get(buffer, "0" as never), TypeError);
  assert.throws(() => All.get({} as never), {
    name: "TypeError",
    message: /expected mapped memory/,
  });
  assert.doesNotThrow(() => All.get(buffer, 3), "get() copies; any offset will do");
});

test("packed structs have no padding; misaligned arrays are read by copy", () => {
  const P = defineStruct({ a: "u8", b: "u64", c: ["i16", 2], d: Point }, { packed: true });
  assert.equal(P.size, 1 + 8 + 4 + Point.size);
  assert.equal(P.align, 1);
  assert.deepEqual(P.fields.map((f) => f.offset), [0, 1, 9, 13]);
  const bytes = new Uint8Array(P.size + 2);
  P.set(bytes, { a: 1, b: MAX.u64, c: [-1, 2], d: { x: 0.5, y: -0.5, tag: "t" } }, 2);
  const view = P.view(bytes, 2);
  assert.equal(view.b, MAX.u64);
  assert.equal(view.d.x, 0.5);
  assert.throws(() => view.c, {
    name: "RangeError",
    message: /not a multiple of 2 \(a packed struct\)/,
  });
  assert.deepEqual([...P.get(bytes, 2).c], [-1, 2]);
});

test("Struct.array: C's T name[count], one struct every size bytes", () => {
  using mapping = Mapping.anonymous(4096);
  const points = Point.array(mapping, 3, 64);
  assert.equal(points.length, 3);
  points.at(2).x = 2.5;
  points.set(1, { y: -1, tag: "one" });
  assert.equal(points.at(2), points.at(2), "the same view each time");
  assert.equal(mapping.view(Float64Array, 64 + 2 * Point.size, 1)[0], 2.5);
  assert.deepStrictEqual(points.get(1), { x: 0, y: -1, tag: "one" });
  assert.deepEqual([...points].map((p) => p.x), [0, 0, 2.5]);
  assert.throws(() => points.at(3), { name: "RangeError", message: /with 3: it has 3 elements/ });
  assert.throws(() => points.get(-1), RangeError);
  assert.throws(() => Point.array(mapping, 0), RangeError);
  assert.throws(() => Point.array(mapping, 1.5), RangeError);
  assert.throws(() => Point.array(mapping, 4096 / Point.size + 1), RangeError);
});

test("mutex and channel fields: init lays them out, the view hands out working handles", () => {
  const Shared = defineStruct({
    ready: "bool",
    lock: "mutex",
    inbox: ["channel", Channel.byteLengthFor({ maxMessage: 64 })],
    slots: [defineStruct({ lock: "mutex", value: "u32" }), 2],
  });
  assert.equal(Shared.offsetOf("lock"), 4, "a mutex is 4-aligned");
  assert.equal(Shared.offsetOf("inbox") % 8, 0, "a channel is 8-aligned");
  using mapping = Mapping.anonymous(8192);
  assert.throws(() => Shared.view(mapping).lock, /call Mutex.init first/);
  const shared = Shared.init(mapping);
  assert.ok(shared.lock instanceof Mutex);
  assert.equal(shared.lock, shared.lock, "one handle per view");
  assert.deepEqual(shared.lock.lock(), { ownerDied: false });
  shared.lock.unlock();
  const producer = shared.inbox;
  const consumer = Channel.from(mapping.view(Uint8Array, Shared.offsetOf("inbox")));
  producer.send(new TextEncoder().encode("hi"));
  assert.equal(new TextDecoder().decode(consumer.tryReceive() as Uint8Array), "hi");
  const slot = shared.slots.at(1);
  assert.notEqual(slot.lock.tryLock(), null, "nested mutexes were initialised too");
  slot.lock.unlock();
  assert.equal("lock" in Shared.get(mapping), false, "a mutex is no value");
  assert.throws(() => Shared.set(mapping, { lock: 1 } as never), /a mutex field holds no value/);
});

test("bad definitions throw TypeError or RangeError saying Cannot define struct", () => {
  const cases: [unknown, unknown, typeof TypeError | typeof RangeError, RegExp][] = [
    [{ a: "u128" }, undefined, TypeError, /field a has unknown kind "u128"; expected u8, i8/],
    [{ a: "char" }, undefined, TypeError, /unknown kind "char"/],
    [{ a: "char[x]" }, undefined, TypeError, /unknown kind/],
    [{ a: "char[0]" }, undefined, RangeError, /a char\[0\] has no bytes/],
    [{ a: "pad[0]" }, undefined, RangeError, /a pad\[0\] has no bytes/],
    [{ a: 4 }, undefined, TypeError, /field a has kind number/],
    [{ a: {} }, undefined, TypeError, /field a has kind Object/],
    [{ a: ["u8", 0] }, undefined, RangeError, /count is an integer of at least 1, got 0/],
    [{ a: ["u8", -1] }, undefined, RangeError, /got -1/],
    [{ a: ["u8", 1.5] }, undefined, RangeError, /got 1\.5/],
    [{ a: ["u8", "3"] }, undefined, TypeError, /count of \[kind, count\] is string/],
    [{ a: ["u8"] }, undefined, TypeError, /got 1 items/],
    [{ a: [["u8", 2], 2] }, undefined, TypeError, /an array holds scalars/],
    [{ a: ["mutex", 2] }, undefined, TypeError, /an array holds scalars.*"mutex"/],
    [{ a: ["pad[2]", 2] }, undefined, TypeError, /an array holds/],
    [{ a: ["u64", 2 ** 28] }, undefined, RangeError, /exceed 2147483647/],
    [
      { a: ["channel", 100] },
      undefined,
      RangeError,
      /a channel takes a multiple of 8 bytes from 448/,
    ],
    [{ a: ["channel", 452] }, undefined, RangeError, /got 452/],
    [{}, undefined, RangeError, /it has no fields/],
    [null, undefined, TypeError, /expected an object of field names to kinds, got null/],
    [[["a", "u8"]], undefined, TypeError, /got an array/],
    [Point, undefined, TypeError, /got a struct \(nest it as a field\)/],
    [{ "1x": "u8" }, undefined, RangeError, /field name "1x" is not a C and Python identifier/],
    [{ "a-b": "u8" }, undefined, RangeError, /not a C and Python identifier/],
    [{ "": "u8" }, undefined, RangeError, /not a C and Python identifier/],
    [{ "héllo": "u8" }, undefined, RangeError, /not a C and Python identifier/],
    [{ int: "u8" }, undefined, RangeError, /"int" is a reserved word in C or Python/],
    [{ class: "u8" }, undefined, RangeError, /"class" is a reserved word/],
    [{ None: "u8" }, undefined, RangeError, /reserved word/],
    [{ uint8_t: "u8" }, undefined, RangeError, /reserved word/],
    [{ from_buffer: "u8" }, undefined, RangeError, /reserved word/],
    [{ __x: "u8" }, undefined, RangeError, /C reserves __x and _X/],
    [{ _X: "u8" }, undefined, RangeError, /reserved/],
    [{ _fields_: "u8" }, undefined, RangeError, /ctypes _x_/],
    [{ ["a".repeat(64)]: "u8" }, undefined, RangeError, /longer than 63/],
    [{ a: "u8", [Symbol("b")]: "u8" }, undefined, TypeError, /not symbols/],
    [{ a: "mutex" }, { packed: true }, RangeError, /a packed struct can't hold a mutex or channel/],
    [{ a: ["channel", 448] }, { packed: true }, RangeError, /packed struct can't hold/],
    [{ a: defineStruct({ m: "mutex" }) }, { packed: true }, RangeError, /packed struct can't hold/],
    [{ a: "u8" }, { packed: 1 }, TypeError, /options\.packed is number/],
    [{ a: "u8" }, { name: "my struct" }, RangeError, /struct name "my struct"/],
    [{ a: "u8" }, "packed", TypeError, /expected an options object/],
  ];
  for (const [definition, options, type, message] of cases) {
    assert.throws(
      () => defineStruct(definition as never, options as never),
      (error: Error) => {
        assert.equal(error.name, type.name, String(message));
        if (!/options object/.test(String(message))) {
          assert.match(error.message, /^Cannot define struct: /);
        }
        assert.match(error.message, message);
        return true;
      },
    );
  }
  assert.throws(() => defineStruct({ a: ["u8", 2 ** 31 - 1], b: "u8" }), /larger than 2147483647/);
});

test("C layout rules: natural alignment, trailing padding, struct alignment = strictest member", () => {
  // Hand-computed companions of the compiler checks in layout_interop_test.ts.
  const S = defineStruct({ a: "u8", b: "u64", c: "u8" });
  assert.deepEqual([S.offsetOf("a"), S.offsetOf("b"), S.offsetOf("c"), S.size, S.align], [
    0,
    8,
    16,
    24,
    8,
  ]);
  const T = defineStruct({ s: S, d: "u8" });
  assert.deepEqual([T.offsetOf("d"), T.size], [24, 32]);
  const U = defineStruct({ a: "u8", b: "char[3]", c: "u16" });
  assert.deepEqual([U.offsetOf("c"), U.size, U.align], [4, 6, 2]);
  assert.ok(U instanceof Struct);
  assert.deepEqual(U.fields[1], { name: "b", kind: "char[3]", offset: 1, size: 3, align: 1 });
  assert.throws(() => U.offsetOf("z" as never), { name: "RangeError", message: /no such field/ });
});

test("emitters name nested structs and refuse what C or Python can't spell", () => {
  const Inner = defineStruct({ v: "u8" });
  const Outer = defineStruct({ first: Inner, more: [Inner, 2], p: Point });
  const header = Outer.toCHeader("outer");
  assert.match(header, /typedef struct \{\n {2}uint8_t v;\n\} outer_first;/);
  assert.match(header, /outer_first more\[2\];/, "one typedef per struct type, reused");
  assert.match(header, /\} point;/, "a named struct keeps its name");
  assert.match(header, /_Static_assert\(offsetof\(outer, p\) == 8, "outer\.p: offset"\);/);
  const python = Outer.toPythonCtypes("Outer");
  assert.match(python, /class Outer_first\(ctypes\.Structure\):/);
  assert.match(python, /\("more", Outer_first \* 2\),/);
  assert.match(python, /\("tag", ctypes\.c_char \* 6\),/);
  assert.throws(() => Outer.toCHeader(), {
    name: "TypeError",
    message: /Cannot emit a C header: the struct has no name/,
  });
  assert.throws(() => Outer.toPythonCtypes("class"), {
    name: "RangeError",
    message: /Cannot emit Python ctypes: .*reserved/,
  });
  const Clash = defineStruct({
    a: defineStruct({ x: "u8" }, { name: "same" }),
    b: defineStruct({ y: "u8" }, { name: "same" }),
  });
  assert.throws(() => Clash.toCHeader("clash"), {
    name: "RangeError",
    message: /two different structs would both be named "same"/,
  });
});

// Type-level checks: deno test type-checks this file (Bun only runs it).
test("the types follow the definition", () => {
  const S = defineStruct({
    n: "u32",
    big: "i64",
    ok: "bool",
    s: "char[4]",
    a: ["f32", 2],
    p: Point,
    m: "mutex",
    g: "pad[2]",
  });
  const value = S.get(new ArrayBuffer(S.size));
  const n: number = value.n;
  const big: bigint = value.big;
  const ok: boolean = value.ok;
  const s: string = value.s;
  const a: Float32Array = value.a;
  const x: number = value.p.x;
  // @ts-expect-error: padding has no value
  assert.equal(value.g, undefined);
  // @ts-expect-error: nor has a mutex
  assert.equal(value.m, undefined);
  // @ts-expect-error: a u32 is a number
  assert.throws(() => S.set(new ArrayBuffer(S.size), { n: 1n }), TypeError);
  const view = S.view(new ArrayBuffer(S.size));
  view.big = 1n;
  const lockOf = (v: typeof view): Mutex => v.m;
  // @ts-expect-error: arrays are read-only properties
  assert.throws(() => (view.a = new Float32Array(2)), TypeError);
  assert.deepEqual([n, big, ok, s, a.length, x], [0, 0n, false, "", 2, 0]);
  assert.throws(() => lockOf(view), /call Mutex.init first/);
});
