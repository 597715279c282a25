import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { ClosedError, Mapping } from "../mod.ts";
import { Broadcast, BROADCAST_MAGIC, MessagingError, Subscriber } from "../messaging/mod.ts";
import { have, skipReason } from "./helpers.ts";
import {
  compileFixture,
  expectSuccess,
  other,
  PEER_TEST,
  self,
  sharedFile,
  startPeer,
  startProgram,
  until,
} from "./fixtures/lock_peers.ts";

const FIXTURE = "messaging_peer.ts";

/** The u32 index a message carries. */
function indexOf(message: Uint8Array | null | typeof Subscriber.DONE): number {
  if (!(message instanceof Uint8Array)) assert.fail(`expected a message, got ${String(message)}`);
  return new DataView(message.buffer, message.byteOffset).getUint32(0, true);
}

const corrupt = (word: string) => (e: unknown): boolean =>
  e instanceof MessagingError && e.code === "CORRUPTED" && e.word === word;

// Expected values worked out by hand from docs/messaging.md.
test("every length, from aligned and unaligned buffers into aligned and unaligned ones, arrives intact", () => {
  const shape = { slots: 8, maxMessage: 300 };
  using mapping = Mapping.anonymous(Broadcast.byteLengthFor(shape));
  const publisher = Broadcast.init(mapping.view(), shape);
  const subscriber = Broadcast.from(mapping.view()).subscribe();
  const max = subscriber.maxMessageBytes;
  const from = [new Uint8Array(max + 3), new Uint8Array(max + 3)];
  const into = [new Uint8Array(max + 4), new Uint8Array(max + 4)];
  // A detached message: refused, not sent as an empty one.
  const gone = new ArrayBuffer(8);
  const detached = new Uint8Array(gone);
  gone.transfer();
  assert.throws(() => publisher.publish(detached), TypeError);
  // The same buffers again and again, their bytes changing in between.
  const same = new Uint8Array(64);
  const back = new Uint8Array(max);
  for (let i = 0; i < 10; i++) {
    same.fill(i * 3 + 1);
    publisher.publish(same);
    assert.equal(subscriber.receiveInto(back), 64);
    assert.deepEqual(back.subarray(0, 64), same);
  }
  for (let length = 0; length <= max; length++) {
    for (let shift = 0; shift < 4; shift++) {
      const source = from[shift & 1]!.subarray(shift, shift + length);
      for (let k = 0; k < length; k++) source[k] = (length * 5 + k * 11 + shift) & 0xff;
      publisher.publish(source);
      const target = into[shift >> 1]!.subarray(3 - shift);
      target.fill(0xee);
      assert.equal(subscriber.receiveInto(target, 0), length);
      assert.deepEqual(target.subarray(0, length), source, `length ${length}, shift ${shift}`);
      assert.equal(target[length], 0xee, "nothing written past the message");
      publisher.publish(source);
      assert.deepEqual(subscriber.receive(0), source.slice());
    }
  }
  assert.equal(subscriber.lost, 0);
});

test("a timeout of 0 is one look: null when nothing is new, then DONE once ended", () => {
  const shape = { slots: 4, maxMessage: 56 };
  using mapping = Mapping.anonymous(Broadcast.byteLengthFor(shape));
  const publisher = Broadcast.init(mapping.view(), shape);
  const subscriber = publisher.subscribe();
  const target = new Uint8Array(64);
  assert.equal(subscriber.receive(0), null);
  assert.equal(subscriber.receiveInto(target, 0), null);
  publisher.publish(new Uint32Array([5]));
  assert.equal(subscriber.receiveInto(target, 0), 4);
  assert.equal(subscriber.receiveInto(target, 0), null);
  publisher.end();
  assert.equal(subscriber.receive(0), Subscriber.DONE);
  assert.equal(subscriber.receiveInto(target, 0), Subscriber.DONE);
});

test("receiveInto a target detached after use throws RangeError and leaves the message unread", () => {
  const shape = { slots: 4, maxMessage: 56 };
  using mapping = Mapping.anonymous(Broadcast.byteLengthFor(shape));
  const publisher = Broadcast.init(mapping.view(), shape);
  const subscriber = publisher.subscribe();
  const target = new Uint8Array(64);
  publisher.publish(new Uint32Array([1, 2]));
  assert.equal(subscriber.receiveInto(target, 0), 8);
  publisher.publish(new Uint32Array([3, 4]));
  target.buffer.transfer();
  assert.throws(() => subscriber.receiveInto(target, 0), RangeError);
  publisher.publish(new Uint8Array(0));
  assert.throws(() => subscriber.receiveInto(target, 0), RangeError, "an empty message too");
  assert.deepEqual([...new Uint32Array((subscriber.receive(0) as Uint8Array).buffer)], [3, 4]);
  assert.equal((subscriber.receive(0) as Uint8Array).length, 0);
  assert.equal(subscriber.lost, 0);
});

test("init writes the documented header; publish stamps slots 2m + 2 and moves head", () => {
  const shape = { slots: 4, maxMessage: 56 };
  assert.equal(Broadcast.byteLengthFor(shape), 128 + 4 * 64);
  using mapping = Mapping.anonymous(4096);
  const publisher = Broadcast.init(mapping.view(), shape);
  const words = mapping.view(Int32Array);
  assert.equal(BROADCAST_MAGIC, 0x42435331);
  assert.deepEqual([...words.subarray(0, 6)], [0x42435331, 4, 64, 56, 0, 0]);
  const subscriber = publisher.subscribe();
  for (let i = 0; i < 5; i++) publisher.publish(new Uint32Array([i, 7]));
  assert.equal(words[16], 5, "head");
  assert.notEqual(words[4], 0, "publisher's owner id");
  // Message 4 went to slot 0, stamp 10; message 1 in slot 1, stamp 4.
  assert.deepEqual([...words.subarray(32, 35)], [10, 8, 4], "slot 0: stamp, length, payload");
  assert.deepEqual([...words.subarray(48, 50)], [4, 8], "slot 1");
  assert.equal(indexOf(subscriber.tryReceive()), 1, "message 0 was overwritten");
  assert.equal(subscriber.lost, 1);
  assert.deepEqual([2, 3, 4].map(() => indexOf(subscriber.tryReceive())), [2, 3, 4]);
  assert.equal(subscriber.tryReceive(), null);
  assert.throws(() => publisher.publish(new Uint8Array(57)), RangeError);
});

test("a subscriber lapped after it last looked at head: the same exact count, then the newest ring's worth", () => {
  const shape = { slots: 16, maxMessage: 8 };
  using mapping = Mapping.anonymous(Broadcast.byteLengthFor(shape));
  const publisher = Broadcast.init(mapping.view(), shape);
  const subscriber = publisher.subscribe();
  for (let i = 0; i < 10; i++) publisher.publish(new Uint32Array([i]));
  for (let i = 0; i < 3; i++) assert.equal(indexOf(subscriber.tryReceive()), i);
  // It knows messages up to 9 are out; 10-49 overwrite 3-9 and more.
  for (let i = 10; i < 50; i++) publisher.publish(new Uint32Array([i]));
  const seen: number[] = [];
  for (let m = subscriber.tryReceive(); m !== null; m = subscriber.tryReceive()) {
    seen.push(indexOf(m));
  }
  assert.equal(subscriber.lost, 31);
  assert.deepEqual(seen, Array.from({ length: 16 }, (_, i) => 34 + i));
});

test("a subscriber a whole ring behind gets an overrun count and the newest ring's worth, in order", () => {
  const shape = { slots: 16, maxMessage: 8 };
  using mapping = Mapping.anonymous(Broadcast.byteLengthFor(shape));
  const publisher = Broadcast.init(mapping.view(), shape);
  const fast = publisher.subscribe();
  const slow = Broadcast.from(mapping.view()).subscribe();
  const fastSeen: number[] = [];
  for (let i = 0; i < 100; i++) {
    publisher.publish(new Uint32Array([i]));
    fastSeen.push(indexOf(fast.tryReceive()));
  }
  assert.deepEqual(fastSeen, Array.from({ length: 100 }, (_, i) => i));
  assert.equal(fast.lost, 0);
  assert.equal(slow.behind, 16);
  const slowSeen: number[] = [];
  for (let m = slow.tryReceive(); m !== null; m = slow.tryReceive()) slowSeen.push(indexOf(m));
  assert.equal(slow.lost, 84);
  assert.deepEqual(slowSeen, Array.from({ length: 16 }, (_, i) => 84 + i));
});

test(
  "4 subscribers in separate processes (Deno and Bun) each see every message in order",
  PEER_TEST,
  async () => {
    const shape = { slots: 4096, maxMessage: 24 };
    const file = sharedFile(Broadcast.byteLengthFor(shape));
    const controlFile = sharedFile(4096);
    try {
      using mapping = Mapping.file(file.path);
      const publisher = Broadcast.init(mapping.view(), shape);
      using controlMapping = Mapping.file(controlFile.path);
      const control = controlMapping.view(Int32Array);
      const peers = [self, other, self, other].map((peer) =>
        startPeer(peer, FIXTURE, ["broadcast-subscribe", file.path, "live", controlFile.path])
      );
      const count = 3000;
      // Each joins at the head it sees: start once all four have joined.
      await waitForSubscribers(control, peers.length);
      for (let i = 0; i < count; i++) {
        publisher.publish(new Uint32Array([i, i * 3]));
        if (i % 500 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      }
      publisher.end();
      for (const peer of peers) {
        const out = JSON.parse((await expectSuccess(peer, "subscriber")).split("\n")[1]!) as {
          count: number;
          lost: number;
          indices: number[];
        };
        assert.equal(out.lost, 0);
        assert.deepEqual(out.indices, Array.from({ length: count }, (_, i) => i));
      }
    } finally {
      controlFile.remove();
      file.remove();
    }
  },
);

/** Word 0 of the control file: subscribers joined; word 1: "go" for a stalled one. */
async function waitForSubscribers(control: Int32Array, n: number): Promise<void> {
  await until(() => Atomics.load(control, 0) >= n, 60_000, `${n} subscribers`);
}

test(
  "a slow subscriber in another process learns exactly how much it lost",
  PEER_TEST,
  async () => {
    const shape = { slots: 32, maxMessage: 8 };
    const file = sharedFile(Broadcast.byteLengthFor(shape));
    const controlFile = sharedFile(4096);
    try {
      using mapping = Mapping.file(file.path);
      const publisher = Broadcast.init(mapping.view(), shape);
      using controlMapping = Mapping.file(controlFile.path);
      const control = controlMapping.view(Int32Array);
      const args = ["broadcast-subscribe", file.path, "stalled", controlFile.path];
      const peer = startPeer(other, FIXTURE, args);
      await waitForSubscribers(control, 1);
      for (let i = 0; i < 100; i++) publisher.publish(new Uint32Array([i]));
      publisher.end();
      Atomics.store(control, 1, 1);
      const out = JSON.parse((await expectSuccess(peer, "subscriber")).split("\n")[1]!) as {
        lost: number;
        indices: number[];
      };
      assert.equal(out.lost, 68);
      assert.deepEqual(out.indices, Array.from({ length: 32 }, (_, i) => 68 + i));
    } finally {
      controlFile.remove();
      file.remove();
    }
  },
);

test(
  "a publisher flooding a 2-slot ring from another process: copies are whole and in order, received + lost = published",
  PEER_TEST,
  async () => {
    const shape = { slots: 2, maxMessage: (256 << 10) - 8 };
    const file = sharedFile(Broadcast.byteLengthFor(shape));
    const controlFile = sharedFile(4096);
    try {
      using mapping = Mapping.file(file.path);
      using controlMapping = Mapping.file(controlFile.path);
      const control = controlMapping.view(Int32Array);
      const subscriber = Broadcast.init(mapping.view(), shape).subscribe();
      const count = 4000;
      const flood = startPeer(other, FIXTURE, [
        "broadcast-flood",
        file.path,
        count,
        controlFile.path,
      ]);
      Atomics.store(control, 1, 1);
      const buffer = new Uint8Array(subscriber.maxMessageBytes);
      let received = 0;
      let last = -1;
      for (;;) {
        const length = subscriber.receiveInto(buffer, 60_000);
        if (length === Subscriber.DONE) break;
        assert.notEqual(length, null, "the flood goes on");
        assert.equal(length, shape.maxMessage);
        const index = new DataView(buffer.buffer).getUint32(0, true);
        assert.ok(index > last, `in order: ${index} after ${last}`);
        last = index;
        for (let k = 4; k < shape.maxMessage; k += 997) {
          if (buffer[k] !== (index & 0xff)) assert.fail(`message ${index} torn at byte ${k}`);
        }
        received++;
      }
      await expectSuccess(flood, "flood");
      assert.equal(received + subscriber.lost, count);
      assert.ok(received > 0);
    } finally {
      controlFile.remove();
      file.remove();
    }
  },
);

test("subscribers join at the head and leave at run time; the publisher never waits", () => {
  const shape = { slots: 8, maxMessage: 8 };
  using mapping = Mapping.anonymous(Broadcast.byteLengthFor(shape));
  const publisher = Broadcast.init(mapping.view(), shape);
  const early = publisher.subscribe();
  for (let i = 0; i < 3; i++) publisher.publish(new Uint32Array([i]));
  const late = Broadcast.from(mapping.view()).subscribe();
  assert.equal(late.tryReceive(), null, "a new subscriber starts at the head");
  publisher.publish(new Uint32Array([3]));
  assert.equal(indexOf(late.tryReceive()), 3);
  assert.equal(indexOf(early.tryReceive()), 0);
  early.close();
  assert.throws(() => early.tryReceive(), ClosedError);
  for (let i = 4; i < 1000; i++) publisher.publish(new Uint32Array([i]));
  assert.equal(late.behind, 8);
  const buffer = new Uint8Array(late.maxMessageBytes);
  assert.equal(late.receiveInto(buffer, 0), 4, "receiveInto: the length");
  assert.equal(new Uint32Array(buffer.buffer, 0, 1)[0], 992, "the oldest of the last 8");
  assert.equal(late.lost, 988);
  assert.throws(() => late.receiveInto(new Uint8Array(4)), RangeError);
  assert.equal(publisher.published, 1000);
});

test(
  "the end: ended streams drain then DONE; a dead publisher's subscribers get DONE and its place is free",
  PEER_TEST,
  async () => {
    const shape = { slots: 16, maxMessage: 8 };
    const file = sharedFile(Broadcast.byteLengthFor(shape));
    try {
      using mapping = Mapping.file(file.path);
      Broadcast.init(mapping.view(), shape);
      const here = Broadcast.from(mapping.view(), { checkIntervalMs: 5 });
      const subscriber = here.subscribe();
      const holder = startPeer(other, FIXTURE, ["broadcast-hold", file.path, 3]);
      await until(() => here.published === 3, 60_000, "the peer's messages");
      assert.throws(
        () => here.publish(new Uint8Array(1)),
        (e) => e instanceof MessagingError && e.code === "ROLE_TAKEN",
      );
      // Joined before the peer published: sees its three messages, then waits.
      assert.deepEqual([0, 1, 2].map(() => indexOf(subscriber.receive(0))), [0, 1, 2]);
      assert.equal(subscriber.receive(10), null, "no DONE while the publisher lives");
      const late = here.subscribe();
      holder.kill("SIGKILL");
      await holder.done;
      assert.equal(subscriber.receive(), Subscriber.DONE, "DONE once the publisher died");
      const seen: number[] = [];
      for await (const m of late) seen.push(indexOf(m));
      assert.deepEqual(seen, [], "for await ends too");
      here.publish(new Uint32Array([3]));
      const next = here.subscribe();
      here.publish(new Uint32Array([4]));
      here.end();
      assert.equal(indexOf(next.receive(0)), 4);
      assert.equal(next.receive(), Subscriber.DONE);
      assert.throws(
        () => here.publish(new Uint8Array(1)),
        (e) => e instanceof MessagingError && e.code === "CLOSED",
      );
    } finally {
      file.remove();
    }
  },
);

test("garbage words throw CORRUPTED naming them; an overwritten stamp counts as lost", () => {
  const shape = { slots: 4, maxMessage: 8 };
  using mapping = Mapping.anonymous(Broadcast.byteLengthFor(shape));
  const words = mapping.view(Int32Array);
  const publisher = Broadcast.init(mapping.view(), shape);
  const a = publisher.subscribe();
  publisher.publish(new Uint32Array([0]));
  publisher.publish(new Uint32Array([1]));
  // Slot 0 stamped as message 4 (a later lap): lost, not corrupted.
  words[32] = 10;
  assert.equal(indexOf(a.tryReceive()), 1);
  assert.equal(a.lost, 1);
  const b = Broadcast.from(mapping.view()).subscribe();
  publisher.publish(new Uint32Array([2]));
  words[64] = 79; // slot 2's stamp: no lap's (message 2 has 6; laps add 8)
  assert.throws(() => b.tryReceive(), corrupt("stamp of slot 2"));
  assert.throws(() => b.tryReceive(), corrupt("stamp of slot 2"), "refuses further use");
  const c = Broadcast.from(mapping.view()).subscribe();
  publisher.publish(new Uint32Array([3]));
  words[81] = 4096; // slot 3's length
  assert.throws(() => c.tryReceive(), corrupt("length of slot 3"));
  const d = Broadcast.from(mapping.view()).subscribe();
  words[16] = 1; // head went back
  assert.throws(() => d.tryReceive(), corrupt("head"));
  words[5] = 8;
  assert.throws(() => Broadcast.from(mapping.view()), corrupt("closed"));
  words[0] = 0;
  assert.throws(() => Broadcast.from(mapping.view()), corrupt("magic"));
});

test("AbortSignal ends receiveAsync", async () => {
  const shape = { slots: 4, maxMessage: 8 };
  using mapping = Mapping.anonymous(Broadcast.byteLengthFor(shape));
  const subscriber = Broadcast.init(mapping.view(), shape).subscribe();
  const controller = new AbortController();
  const reason = new Error("stop");
  const receiving = subscriber.receiveAsync(undefined, { signal: controller.signal });
  setTimeout(() => controller.abort(reason), 20);
  await assert.rejects(receiving, (e) => e === reason);
});

test("messages({ signal }): for await takes what was published, and an abort ends a waiting loop with the reason", async () => {
  const shape = { slots: 4, maxMessage: 8 };
  using mapping = Mapping.anonymous(Broadcast.byteLengthFor(shape));
  const publisher = Broadcast.init(mapping.view(), shape);
  const subscriber = Broadcast.from(mapping.view()).subscribe();
  assert.throws(() => subscriber.messages({ signal: 1 as unknown as AbortSignal }), TypeError);
  publisher.publish(new Uint8Array([1]));
  publisher.publish(new Uint8Array([2]));
  const stop = new AbortController();
  const reason = new Error("stopped");
  const seen: number[] = [];
  const timer = setTimeout(() => stop.abort(reason), 20);
  try {
    await assert.rejects(async () => {
      for await (const message of subscriber.messages({ signal: stop.signal })) {
        seen.push(message[0]!);
      }
    }, (error: unknown) => error === reason);
  } finally {
    clearTimeout(timer);
  }
  assert.deepEqual(seen, [1, 2]);
  publisher.publish(new Uint8Array([3]));
  assert.deepEqual([...subscriber.tryReceive() as Uint8Array], [3]);
});

/** Message i of the C peer's stream: u32 i, then bytes (i + k) & 0xff, 4 + i % 60 bytes in all. */
function streamMessage(i: number): Uint8Array {
  const bytes = new Uint8Array(4 + (i % 60));
  new DataView(bytes.buffer).setUint32(0, i, true);
  for (let k = 4; k < bytes.length; k++) bytes[k] = (i + k) & 0xff;
  return bytes;
}

/** Receives a stream's messages until DONE: each intact and later than the last; their indexes. */
async function receiveStream(subscriber: Subscriber): Promise<number[]> {
  const seen: number[] = [];
  for await (const message of subscriber) {
    const i = indexOf(message);
    if (seen.length > 0 && i <= seen.at(-1)!) assert.fail(`message ${i} after ${seen.at(-1)}`);
    assert.deepEqual(message, streamMessage(i), `message ${i}`);
    seen.push(i);
  }
  return seen;
}

const cPeer = have("cc") ? compileFixture("messaging_broadcast_peer") : undefined;
const noC = cPeer === undefined ? skipReason("no C compiler (cc)") : false;

test("C peer: a C subscriber reads a runtime's stream; a runtime reads a C publisher's", {
  ...PEER_TEST,
  skip: noC,
}, async () => {
  const shape = { slots: 4096, maxMessage: 120 };
  const count = 3000;
  const files = [0, 1].map(() => sharedFile(Broadcast.byteLengthFor(shape)));
  try {
    using toC = Mapping.file(files[0]!.path);
    const publisher = Broadcast.init(toC.view(), shape);
    const cSubscriber = startProgram(cPeer!.path, ["subscribe", files[0]!.path]);
    for (let i = 0; i < count; i++) publisher.publish(streamMessage(i));
    publisher.end();
    const out = await expectSuccess(cSubscriber, "C subscriber");
    assert.equal(out.trim(), `ok ${count} 0 ${(count * (count - 1)) / 2}`);

    using fromC = Mapping.file(files[1]!.path);
    const subscriber = Broadcast.init(fromC.view(), shape).subscribe();
    const cPublisher = startProgram(cPeer!.path, ["publish", files[1]!.path, String(count)]);
    const seen = await receiveStream(subscriber);
    assert.equal((await expectSuccess(cPublisher, "C publisher")).trim(), "done");
    assert.equal(seen.length, count);
    assert.equal(seen.at(-1), count - 1);
    assert.equal(subscriber.lost, 0);
  } finally {
    for (const file of files) file.remove();
  }
});

test("C peer: over 8 slots each side gets every message intact and in order, or counts it lost", {
  ...PEER_TEST,
  skip: noC,
}, async () => {
  const shape = { slots: 8, maxMessage: 64 };
  const count = 20_000;
  const files = [0, 1].map(() => sharedFile(Broadcast.byteLengthFor(shape)));
  try {
    using fromC = Mapping.file(files[0]!.path);
    const subscriber = Broadcast.init(fromC.view(), shape).subscribe();
    // Paced (a pause every 64 messages), so that the runtime reads while C overwrites.
    const cPublisher = startProgram(cPeer!.path, ["publish", files[0]!.path, String(count), "20"]);
    const seen = await receiveStream(subscriber);
    assert.equal((await expectSuccess(cPublisher, "C publisher")).trim(), "done");
    assert.equal(seen.length + subscriber.lost, count, "received + lost");
    assert.ok(seen.length > shape.slots, `received ${seen.length}: more than a ring's worth`);
    assert.equal(seen.at(-1), count - 1, "the last message is never overwritten");

    using toC = Mapping.file(files[1]!.path);
    const publisher = Broadcast.init(toC.view(), shape);
    const cSubscriber = startProgram(cPeer!.path, ["subscribe", files[1]!.path]);
    for (let i = 0; i < count; i++) publisher.publish(streamMessage(i));
    publisher.end();
    const out = (await expectSuccess(cSubscriber, "C subscriber")).trim();
    const [ok, received, lost] = out.split(" ");
    assert.equal(ok, "ok", out);
    assert.equal(Number(received) + Number(lost), count, `received + lost: ${out}`);
    assert.ok(Number(received) >= shape.slots, out);
  } finally {
    for (const file of files) file.remove();
  }
});

test("the compiled C peer is removed when the suite is done", { skip: noC }, () => {
  cPeer!.remove();
  assert.equal(existsSync(dirname(cPeer!.path)), false);
});
