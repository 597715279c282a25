/**
 * Every handle's identity (name, id, key, size, fd, access) is read-only at
 * run time, not only in the types: assigning throws (modules are strict) and
 * changes nothing, so remove()/unlink() always act on the handle's own
 * object. Every handle names itself and its size in toString().
 *
 * @module
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { Mapping, Memfd, SharedMemory, SystemVSegment } from "../mod.ts";
import { shmExists, testName, track } from "./fixtures/runtimes.ts";
import {
  assertSegmentsRestored,
  type SegmentSnapshot,
  segmentSnapshot,
} from "./fixtures/sysv_support.ts";

let snapshot: SegmentSnapshot | undefined;
before(() => {
  snapshot = segmentSnapshot();
});

/** Assigning each key throws TypeError and leaves the value as it was. */
function assertFrozen(handle: object, keys: readonly string[], value: unknown): void {
  const record = handle as Record<string, unknown>;
  for (const key of keys) {
    const was = record[key];
    assert.throws(
      () => {
        record[key] = value;
      },
      TypeError,
      `${key} could be assigned`,
    );
    assert.equal(record[key], was, `${key} changed`);
  }
}

test("SystemVSegment: id, key, size, created can't be assigned; remove() removes its own", () => {
  const mine = SystemVSegment.create(4096);
  const other = SystemVSegment.create(8192);
  try {
    assertFrozen(mine, ["id", "key", "size", "created"], other.id);
    mine.remove();
    assert.equal(mine.isRemoved(), true);
    assert.equal(other.isRemoved(), false, "remove() removed the other segment");
    assert.equal(String(other), `SystemVSegment(id ${other.id}, key 0x00000000, 8192 bytes)`);
  } finally {
    mine.remove();
    other.remove();
  }
});

test("SystemVAttachment: readOnly and segment can't be assigned; views stay refused", () => {
  const segment = SystemVSegment.create(4096);
  try {
    using reader = segment.attach({ readOnly: true });
    assertFrozen(reader, ["readOnly", "segment"], false);
    // Were readOnly assignable, this would hand out a Uint8Array over PROT_READ pages.
    assert.throws(() => reader.view(), TypeError);
    assert.equal(
      String(reader),
      `SystemVAttachment(segment id ${segment.id}, 4096 bytes, read-only)`,
    );
  } finally {
    segment.remove();
  }
});

test("SharedMemory: name, created, persist can't be assigned; unlink() removes its own", () => {
  const mine = track(SharedMemory.create({ name: testName("ident-a"), size: 4096 }));
  using other = track(SharedMemory.create({ name: testName("ident-b"), size: 8192 }));
  assertFrozen(mine, ["name", "created", "persist", "readOnly", "fd"], other.name);
  assertFrozen(mine, ["persist"], true);
  const name = mine.name;
  assert.equal(String(mine), `SharedMemory(${JSON.stringify(name)}, 4096 bytes)`);
  mine[Symbol.dispose]();
  assert.equal(shmExists(name), false, "dispose left its own object");
  assert.equal(shmExists(other.name), true, "dispose removed the other object");
});

test("Memfd: name and fd can't be assigned; toString names it and its size", () => {
  using memory = Memfd.create({ name: "ident", size: 4096 });
  assertFrozen(memory, ["name", "fd", "readOnly"], "other");
  assert.equal(String(memory), 'Memfd("ident", 4096 bytes)');
});

test("Mapping: shared and readOnly can't be assigned; toString names the source and size", () => {
  using mapping = Mapping.anonymous(8192);
  assertFrozen(mapping, ["shared", "readOnly", "byteLength", "access"], true);
  assert.equal(String(mapping), "Mapping(anonymous, 8192 bytes)");
  mapping.close();
  assert.equal(String(mapping), "Mapping(anonymous, 8192 bytes, closed)");
});

test("ipcs -m is as the suite found it", () => {
  assert.ok(snapshot !== undefined);
  assertSegmentsRestored(snapshot);
});
