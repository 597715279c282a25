/**
 * ReadOnlyView: the reading half of DataView and Uint8Array, nothing that
 * writes, and clean errors once the memory is gone. Checked over plain
 * buffers and over a PROT_READ System V attachment, where a write through a
 * Uint8Array would kill the process.
 *
 * @module
 */
import { before as beforeAll, test } from "node:test";
import { join } from "node:path";
import assert from "node:assert/strict";
import { ClosedError, ReadOnlyView, readProcMaps, SystemVSegment } from "../mod.ts";
import {
  assertSegmentsRestored,
  FIXTURES,
  runtimeCommand,
  type SegmentSnapshot,
  segmentSnapshot,
  spawnTracked,
} from "./fixtures/sysv_support.ts";

let before: SegmentSnapshot | undefined;

function sample(): ArrayBuffer {
  const bytes = new Uint8Array(32);
  bytes.set([1, 2, 3, 4, 0xff, 0xfe, 0, 0]);
  new DataView(bytes.buffer).setFloat64(8, -2.5, true);
  new DataView(bytes.buffer).setBigUint64(16, 0x0102030405060708n, true);
  bytes.set(new TextEncoder().encode("héllo\0"), 24);
  return bytes.buffer;
}

beforeAll(() => {
  before = segmentSnapshot();
});

test("getters read like DataView: big-endian by default, little-endian on request", () => {
  const memory = new ReadOnlyView(sample());
  assert.equal(memory.byteLength, 32);
  assert.equal(memory.getUint8(0), 1);
  assert.equal(memory.getInt8(4), -1);
  assert.equal(memory.getUint16(0), 0x0102);
  assert.equal(memory.getUint16(0, true), 0x0201);
  assert.equal(memory.getInt16(4, true), -257);
  assert.equal(memory.getUint32(0, true), 0x04030201);
  assert.equal(memory.getInt32(4, true), 0xfeff | 0);
  assert.equal(memory.getUint32(0), 0x01020304);
  assert.equal(memory.getFloat64(8, true), -2.5);
  assert.equal(memory.getBigUint64(16, true), 0x0102030405060708n);
  assert.equal(memory.getBigInt64(16, true), 0x0102030405060708n);
  assert.equal(memory.getFloat32(8, true), new DataView(sample()).getFloat32(8, true));
  assert.throws(() => memory.getUint32(30), RangeError);
  assert.throws(() => memory.getUint8(-1), RangeError);
});

test("at, indexOf, iteration, toString and cString read bytes and text", () => {
  const memory = new ReadOnlyView(sample());
  assert.equal(memory.at(0), 1);
  assert.equal(memory.at(-1), 0);
  assert.equal(memory.at(32), undefined);
  assert.equal(memory.indexOf(0xff), 4);
  assert.equal(memory.indexOf(0, 24), 30);
  assert.deepEqual([...memory.subarray(0, 4)], [1, 2, 3, 4]);
  assert.equal(memory.cString(24), "héllo");
  assert.equal(memory.subarray(24, 30).toString(), "héllo");
  assert.equal(String(memory.subarray(24, 27)), "hé");
  assert.equal(Object.prototype.toString.call(memory), "[object ReadOnlyView]");
  assert.throws(() => memory.cString(33), RangeError);
});

test("slice returns a writable COPY; subarray shares the memory, read-only", () => {
  const buffer = sample();
  const memory = new ReadOnlyView(buffer);
  const copy = memory.slice(0, 4);
  assert.deepEqual([...copy], [1, 2, 3, 4]);
  copy[0] = 100;
  assert.equal(memory.getUint8(0), 1, "writing the copy changes nothing shared");
  assert.deepEqual([...memory.slice(-2)], [0, 0]);
  assert.equal(memory.slice(10, 5).length, 0);
  const part = memory.subarray(2, 6);
  assert.equal(part.byteLength, 4);
  assert.equal(part.getUint8(0), 3);
  new Uint8Array(buffer)[2] = 33; // the owner of the memory writes...
  assert.equal(part.getUint8(0), 33, "...and the subarray sees it: no copy");
});

test("copyTo copies into a target of yours and checks room", () => {
  const memory = new ReadOnlyView(sample()).subarray(0, 4);
  const target = new Uint8Array(8);
  assert.equal(memory.copyTo(target, 2), 4);
  assert.deepEqual([...target], [0, 0, 1, 2, 3, 4, 0, 0]);
  const words = new Uint32Array(1);
  memory.copyTo(words);
  assert.equal(words[0], 0x04030201);
  const dv = new DataView(new ArrayBuffer(6), 1);
  memory.copyTo(dv, 1);
  assert.equal(dv.getUint8(1), 1);
  assert.throws(() => memory.copyTo(target, 5), RangeError);
  assert.throws(() => memory.copyTo(new Uint8Array(3)), RangeError);
  assert.throws(() => memory.copyTo([] as never), TypeError);
  assert.throws(() => memory.copyTo(target, -1), RangeError);
});

test("there is no way to write through it: no setters, and the object is frozen", () => {
  const memory = new ReadOnlyView(sample());
  const record = memory as unknown as Record<string | number, unknown>;
  assert.throws(() => {
    record[0] = 9;
  }, TypeError);
  assert.throws(() => {
    record.byteLength = 1;
  }, TypeError);
  for (const name of Object.getOwnPropertyNames(ReadOnlyView.prototype)) {
    assert.ok(!/^(set|fill|copyWithin|write)/.test(name), `${name} writes`);
  }
  assert.equal(record.setUint8, undefined);
  assert.equal(record.buffer, undefined, "the buffer is not exposed");
  assert.equal(memory.getUint8(0), 1);
  assert.ok(Object.isFrozen(memory));
});

test("the constructor checks its buffer and range", () => {
  assert.throws(() => new ReadOnlyView(new Uint8Array(4) as never), TypeError);
  assert.throws(() => new ReadOnlyView(null as never), TypeError);
  assert.throws(() => new ReadOnlyView(new ArrayBuffer(4), 5), RangeError);
  assert.throws(() => new ReadOnlyView(new ArrayBuffer(4), 2, 3), RangeError);
  assert.throws(() => new ReadOnlyView(new ArrayBuffer(4), 1.5), RangeError);
  assert.equal(new ReadOnlyView(new ArrayBuffer(4), 1, 2).byteLength, 2);
  assert.equal(new ReadOnlyView(new ArrayBuffer(0)).byteLength, 0);
  assert.equal(new ReadOnlyView(new ArrayBuffer(0)).closed, false);
});

test("reads after the buffer is detached throw ClosedError, never touch the memory", () => {
  const buffer = sample();
  const memory = new ReadOnlyView(buffer, 0, undefined, "test memory");
  buffer.transfer(0);
  assert.equal(memory.closed, true);
  assert.equal(memory.byteLength, 0);
  assert.throws(() => memory.getUint8(0), ClosedError);
  assert.throws(() => memory.at(0), ClosedError);
  assert.throws(() => memory.slice(), ClosedError);
  assert.throws(() => memory.copyTo(new Uint8Array(64)), ClosedError);
  assert.throws(() => String(memory), /test memory is closed/);
  assert.throws(() => [...memory], ClosedError);
  assert.throws(() => memory.unsafeUint8Array(), ClosedError);
});

test("unsafeUint8Array is the escape hatch over the same memory", () => {
  const buffer = sample();
  const memory = new ReadOnlyView(buffer, 4, 4);
  const raw = memory.unsafeUint8Array();
  assert.equal(raw.length, 4);
  raw[0] = 7; // a plain ArrayBuffer is writable; PROT_READ memory would not be
  assert.equal(memory.getUint8(0), 7);
});

test("over a PROT_READ attachment: reads work, every write attempt fails harmlessly", () => {
  const segment = SystemVSegment.create(4096);
  try {
    using writer = segment.attach();
    writer.view().set([10, 20, 30, 40]);
    using reader = segment.attach({ readOnly: true });
    assert.equal(readProcMaps().find((e) => e.contains(reader.unsafeAddress))?.perms, "r--s");
    const memory = reader.readOnlyView();
    assert.deepEqual([...memory.subarray(0, 4)], [10, 20, 30, 40]);
    const record = memory as unknown as Record<number, number>;
    assert.throws(() => {
      record[0] = 1;
    }, TypeError);
    const copy = memory.slice(0, 4);
    copy[0] = 1; // the copy is ours, in the JS heap
    assert.throws(() => reader.view(), TypeError);
    assert.throws(() => reader.dataView(), TypeError);
    assert.equal(memory.getUint8(0), 10, "the process lives and the memory is unchanged");
    writer.view()[0] = 11;
    assert.equal(memory.getUint8(0), 11, "a read-only view sees the writer's changes");
    const part = reader.readOnlyView(2, 2);
    assert.deepEqual([...part], [30, 40]);
    assert.throws(() => reader.readOnlyView(4095, 2), RangeError);
    reader.detach();
    assert.throws(() => memory.getUint8(0), ClosedError);
    assert.throws(() => part.at(0), ClosedError);
  } finally {
    segment.remove();
  }
});

test("prototype tampering after load can't write through a read-only accessor (child process)", () => {
  const [program, args] = runtimeCommand(join(FIXTURES, "readonly_tamper_child.ts"));
  const result = spawnTracked(program, args);
  // A write to the PROT_READ attachment would be SIGSEGV: a signal, or Bun's crash report.
  assert.equal(result.signal, null, `killed by ${result.signal}: ${result.stderr}`);
  assert.equal(result.status, 0, result.stderr);
  const said = JSON.parse(result.stdout.trim().split("\n").pop() ?? "{}");
  assert.deepEqual(said.reads, [0, 0, 0, 0, 0, 0, 0, 4, 0, 4096, 0, 4096, 4]);
  assert.equal(said.tampered, 0, "a replaced intrinsic was called");
});

test("ipcs -m is as the suite found it", () => {
  assert.ok(before !== undefined);
  assertSegmentsRestored(before);
});
