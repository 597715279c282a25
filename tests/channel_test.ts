import { test } from "node:test";
import assert from "node:assert/strict";
import { Channel, ClosedError, Mapping } from "../mod.ts";
import { CHANNEL_HEADER_BYTES, CHANNEL_MAGIC } from "../raw.ts";
import { have, skipReason } from "./helpers.ts";
import {
  afterTicks,
  compileFixture,
  expectSuccess,
  isEmulated,
  other,
  type Peer,
  PEER_TEST,
  self,
  sharedFile,
  startPeer,
  startProgram,
} from "./fixtures/lock_peers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

test("init writes the documented header; from attaches and agrees on capacity", () => {
  using mapping = Mapping.anonymous(4096);
  const channel = Channel.init(mapping.view());
  const words = mapping.view(Uint32Array);
  assert.equal(CHANNEL_HEADER_BYTES, 384);
  assert.equal(words[0], CHANNEL_MAGIC);
  assert.equal(words[1], 4096 - 384);
  assert.equal(words[2], 384);
  assert.equal(words[3], channel.maxMessageBytes);
  assert.equal(channel.capacity, 3712);
  assert.equal(channel.maxMessageBytes, Math.floor(3712 / 16) * 8 - 8);
  const peer = Channel.from(mapping.view());
  assert.equal(peer.capacity, channel.capacity);
  assert.equal(Channel.byteLengthFor(1000), 384 + 1000);
  assert.equal(Channel.byteLengthFor(1001), 384 + 1008);
});

test("messages arrive in order, in place, and the ring's words move as documented", () => {
  using mapping = Mapping.anonymous(4096);
  const producer = Channel.init(mapping.view());
  const consumer = Channel.from(mapping.view());
  const words = mapping.view(Int32Array);
  assert.equal(consumer.tryReceive(), null);
  assert.equal(producer.trySend(encoder.encode("one")), true);
  assert.equal(producer.trySend(new Uint16Array([0x3231, 0x3433])), true);
  assert.equal(words[32], 16 + 16, "tail (offset 128) after two records");
  assert.equal(words[34], 2, "sent (offset 136)");
  assert.deepEqual([...words.subarray(96, 98)], [3, 0], "record 1 at 384: length 3, reserved 0");
  assert.deepEqual([...words.subarray(100, 102)], [4, 0], "record 2 at 400: length 4, reserved 0");
  assert.equal(producer.pending, 2);
  const first = consumer.receive(0)!;
  assert.equal(decoder.decode(first), "one");
  assert.equal(first.buffer, mapping.view().buffer, "a view into the mapping, not a copy");
  assert.equal(first.byteOffset, 384 + 8);
  assert.equal(words[64], 0, "head (offset 256) moves on release, not on receive");
  const second = consumer.receiveCopy(0)!;
  assert.equal(decoder.decode(second), "1234");
  assert.notEqual(second.buffer, mapping.view().buffer);
  assert.equal(words[64], 32, "head after both records");
  assert.equal(words[66], 2, "received (offset 264)");
  assert.equal(consumer.pending, 0);
  assert.equal(consumer.receive(10), null, "times out when empty");
});

test("a full ring refuses trySend until the consumer releases; send(timeout) returns false", () => {
  using mapping = Mapping.anonymous(1024);
  const producer = Channel.init(mapping.view());
  const consumer = Channel.from(mapping.view());
  const message = new Uint8Array(100);
  let sent = 0;
  while (producer.trySend(message)) sent++;
  assert.ok(sent >= 4, `sent ${sent}`);
  assert.equal(producer.send(message, 5), false);
  assert.notEqual(consumer.tryReceive(), null);
  assert.notEqual(consumer.tryReceive(), null);
  assert.equal(producer.trySend(message), false, "the last received message is not released yet");
  consumer.release();
  assert.equal(producer.trySend(message), true);
});

test("wrap-around: every length up to the maximum, padding at the end, always contiguous", () => {
  using mapping = Mapping.anonymous(4096);
  const producer = Channel.init(mapping.view(Uint8Array, 0, 384 + 1024));
  const consumer = Channel.from(mapping.view(Uint8Array, 0, 384 + 1024));
  const max = producer.maxMessageBytes;
  assert.equal(max, 504);
  let next = 0;
  let expected = 0;
  let seed = 7;
  // xorshift32: an LCG's low bits would alternate and starve one side.
  const random = (): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return seed >>> 0;
  };
  const lengthOf = (
    i: number,
  ): number => (i % 5 === 0 ? max : i % 5 === 1 ? 0 : random() % (max + 1));
  const lengths: number[] = [];
  const pattern = (i: number, k: number): number => (i * 13 + k) & 0xff;
  const check = (message: Uint8Array): void => {
    assert.equal(message.length, lengths[expected], `length of message ${expected}`);
    for (let k = 0; k < message.length; k++) {
      if (message[k] !== pattern(expected, k)) assert.fail(`message ${expected} byte ${k}`);
    }
    expected++;
  };
  for (let step = 0; step < 20_000; step++) {
    if (random() % 2 === 0) {
      const length = lengthOf(next);
      const room = producer.tryReserve(length);
      if (room !== null) {
        for (let k = 0; k < length; k++) room[k] = pattern(next, k);
        producer.commit();
        lengths.push(length);
        next++;
      }
    } else {
      const message = consumer.tryReceive();
      if (message !== null) check(message);
    }
  }
  for (let message = consumer.tryReceive(); message !== null; message = consumer.tryReceive()) {
    check(message);
  }
  assert.ok(expected > 2000, `received ${expected}`);
  assert.equal(expected, next, "every message sent was received once");
  assert.equal(producer.pending, 0);
});

test("a max-size message fits whatever the positions; one byte more is a RangeError", () => {
  using mapping = Mapping.anonymous(4096);
  const producer = Channel.init(mapping.view(Uint8Array, 0, 384 + 256));
  const consumer = Channel.from(mapping.view(Uint8Array, 0, 384 + 256));
  const max = producer.maxMessageBytes;
  for (let shift = 0; shift < 40; shift++) {
    // Move head == tail around the ring, then send the largest message.
    assert.equal(producer.trySend(new Uint8Array(shift % 9)), true);
    assert.notEqual(consumer.tryReceive(), null);
    consumer.release();
    assert.equal(producer.trySend(new Uint8Array(max).fill(shift)), true, `shift ${shift}`);
    const message = consumer.tryReceive()!;
    assert.equal(message.length, max);
    assert.ok(message.every((b) => b === shift));
    consumer.release();
  }
  assert.throws(() => producer.trySend(new Uint8Array(max + 1)), RangeError);
  assert.throws(() => producer.tryReserve(max + 1), RangeError);
});

test("tryReserve/commit writes in place; commit(length) shortens; misuse throws", () => {
  using mapping = Mapping.anonymous(4096);
  const producer = Channel.init(mapping.view());
  const consumer = Channel.from(mapping.view());
  assert.throws(() => producer.commit(), /nothing is reserved/);
  const room = producer.tryReserve(16)!;
  room.set([1, 2, 3]);
  assert.throws(() => producer.tryReserve(1), /reservation is open/);
  assert.throws(() => producer.commit(17), RangeError);
  producer.commit(3);
  assert.deepEqual([...consumer.tryReceive()!], [1, 2, 3]);
});

test("bad views, messages and timeouts: TypeError/RangeError; closed memory: ClosedError", () => {
  const mapping = Mapping.anonymous(4096);
  assert.throws(() => Channel.init(mapping.view(Uint8Array, 0, 447)), /at least 448/);
  assert.throws(() => Channel.init(mapping.view(Uint8Array, 4, 1024)), /multiple of 8/);
  assert.throws(() => Channel.init("memory" as never), TypeError);
  assert.throws(() => Channel.from(mapping.view()), /Channel\.init/);
  const channel = Channel.init(mapping.view(Uint8Array, 0, 2048));
  assert.throws(() => Channel.from(mapping.view(Uint8Array, 0, 1024)), /needs 2048/);
  assert.throws(() => channel.trySend("text" as never), TypeError);
  assert.throws(() => channel.send(new Uint8Array(1), -1), RangeError);
  assert.throws(() => channel.receive(NaN), RangeError);
  assert.throws(() => channel.receiveAsync(-1), RangeError);
  assert.throws(() => channel.sendAsync(new Uint8Array(1), NaN), RangeError);
  assert.throws(() => Channel.init(mapping.view(), { spinMs: -1 }), RangeError);
  assert.throws(() => Channel.byteLengthFor(10), RangeError);
  mapping.close();
  assert.throws(() => channel.trySend(new Uint8Array(1)), ClosedError);
  assert.throws(() => channel.tryReceive(), ClosedError);
});

test("receiveAsync waits without blocking the event loop, and sendAsync waits for room", async () => {
  using mapping = Mapping.anonymous(1024);
  const producer = Channel.init(mapping.view());
  const consumer = Channel.from(mapping.view());
  const pending = consumer.receiveAsync(30_000);
  // Only the timer's third tick can end the wait.
  const timer = afterTicks(3, () => producer.send(encoder.encode("late")));
  try {
    assert.equal(decoder.decode((await pending)!), "late");
    assert.ok(timer.count >= 3, `the timer fired ${timer.count} times during the wait`);
    assert.equal(await consumer.receiveAsync(10), null);
    // Fill the ring, then let sendAsync wait for a release.
    while (producer.trySend(new Uint8Array(200)));
    const sending = producer.sendAsync(encoder.encode("after"), 10_000);
    await new Promise((resolve) => setTimeout(resolve, 20));
    let drained = 0;
    while (consumer.tryReceive() !== null) drained++;
    assert.ok(drained >= 2);
    assert.equal(await sending, true);
    assert.equal(decoder.decode((await consumer.receiveAsync(1000))!), "after");
    assert.equal(await producer.sendAsync(new Uint8Array(1), 0), true);
  } finally {
    timer.stop();
  }
});

// --- across processes: a producer in one runtime, the consumer in the other

interface Summary {
  received: number;
  errors: string[];
  extra: number;
  pending: number;
}

async function runPair(
  producer: Peer,
  consumer: Peer,
  count: number,
  options: { api: "sync" | "async"; slow: "producer" | "consumer"; ring: number },
): Promise<Summary> {
  const file = sharedFile(options.ring);
  try {
    {
      using mapping = Mapping.file(file.path);
      Channel.init(mapping.view());
    }
    const pause = 50;
    const seed = 12345;
    const consuming = startPeer(consumer, "channel_peer.ts", [
      file.path,
      "consume",
      count,
      options.api,
      options.slow === "consumer" ? pause : 0,
      seed,
    ]);
    const producing = startPeer(producer, "channel_peer.ts", [
      file.path,
      "produce",
      count,
      options.api,
      options.slow === "producer" ? pause : 0,
      seed,
    ]);
    await expectSuccess(producing, `${producer.runtime} producer`);
    const output = await expectSuccess(consuming, `${consumer.runtime} consumer`);
    return JSON.parse(output.trim().split("\n").pop()!) as Summary;
  } finally {
    file.remove();
  }
}

const PAIRS: [Peer, Peer][] = other === undefined ? [[self, self]] : [[self, other], [other, self]];

for (const [producer, consumer] of PAIRS) {
  for (const slow of ["consumer", "producer"] as const) {
    const api = slow === "consumer" ? "sync" : "async";
    test(
      `${producer.runtime} producer to ${consumer.runtime} consumer, slower ${slow} (${api} calls): all messages in order, no loss, no duplicate`,
      PEER_TEST,
      async () => {
        const count = isEmulated ? 300 : 3000;
        const summary = await runPair(producer, consumer, count, {
          api,
          slow,
          ring: slow === "consumer" ? 4096 : 64 * 1024,
        });
        assert.deepEqual(summary, { received: count, errors: [], extra: 0, pending: 0 });
      },
    );
  }
}

test(
  "a C consumer following docs/locks.md reads a JS producer's messages: in order, no loss, no duplicate",
  { ...PEER_TEST, skip: have("cc") ? false : skipReason("no C compiler (cc) for the C peer") },
  async () => {
    const count = isEmulated ? 300 : 3000;
    const seed = 777;
    const program = compileFixture("channel_peer");
    const file = sharedFile(4096);
    try {
      {
        using mapping = Mapping.file(file.path);
        Channel.init(mapping.view());
      }
      const consuming = startProgram(program.path, [file.path, String(count), String(seed)]);
      const producing = startPeer(self, "channel_peer.ts", [
        file.path,
        "produce",
        count,
        "sync",
        0,
        seed,
      ]);
      await expectSuccess(producing, `${self.runtime} producer`);
      const output = await expectSuccess(consuming, "C consumer");
      const summary = JSON.parse(output.trim().split("\n").pop()!) as Summary;
      assert.deepEqual(summary, { received: count, errors: [], extra: 0, pending: 0 });
    } finally {
      file.remove();
      program.remove();
    }
  },
);
