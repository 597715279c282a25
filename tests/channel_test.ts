import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Channel, ClosedError, Mapping, notify } from "../mod.ts";
import { ChannelError } from "../sync/channel.ts";
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
  type Running,
  self,
  sharedFile,
  startPeer,
  startProgram,
  until,
} from "./fixtures/lock_peers.ts";

const encoder = new TextEncoder();

/** A received message, asserted to be one (not null or Channel.DONE). */
function bytes(message: Uint8Array | null | typeof Channel.DONE): Uint8Array {
  if (!(message instanceof Uint8Array)) assert.fail(`expected a message, got ${String(message)}`);
  return message;
}
const decoder = new TextDecoder();

// Expected sizes below are worked out by hand from docs/locks.md (a 384-byte
// header; maxMessage = floor(capacity / 16) * 8 - 8), not by the library's code.
test("init writes the documented header; from attaches and agrees on capacity", () => {
  using mapping = Mapping.anonymous(4096);
  const channel = Channel.init(mapping.view());
  const words = mapping.view(Uint32Array);
  assert.equal(CHANNEL_HEADER_BYTES, 384);
  assert.equal(CHANNEL_MAGIC, 0x43484e32, '"CHN2"');
  assert.equal(words[0], 0x43484e32);
  assert.equal(words[1], 3712, "capacity: 4096 - 384");
  assert.equal(words[2], 384);
  assert.equal(words[3], 1848, "maxMessage: 232 * 8 - 8");
  assert.deepEqual([...words.subarray(4, 7)], [0, 0, 0], "no producer, no consumer, not closed");
  assert.equal(channel.capacity, 3712);
  assert.equal(channel.maxMessageBytes, 1848);
  const peer = Channel.from(mapping.view());
  assert.equal(peer.capacity, channel.capacity);
  assert.equal(Channel.byteLengthFor(1000), 1384);
  assert.equal(Channel.byteLengthFor(1001), 1392);
});

test("byteLengthFor({ maxMessage }) gives the least memory whose channel carries that message", () => {
  // [maxMessage, bytes, the channel's maxMessageBytes], from the documented formula.
  const table: [number, number, number][] = [
    [0, 448, 24], // the smallest ring, 64 bytes
    [24, 448, 24],
    [25, 464, 32], // ring 80: 5 * 8 - 8
    [504, 1408, 504], // ring 1024
    [505, 1424, 512], // ring 1040
    [1000, 2400, 1000], // ring 2016
  ];
  using mapping = Mapping.anonymous(4096);
  for (const [max, length, carried] of table) {
    assert.equal(Channel.byteLengthFor({ maxMessage: max }), length, `maxMessage ${max}`);
    const channel = Channel.init(mapping.view(Uint8Array, 0, length));
    assert.equal(channel.maxMessageBytes, carried, `maxMessage ${max}`);
    assert.equal(channel.trySend(new Uint8Array(max)), true, `a ${max}-byte message fits`);
  }
  assert.throws(() => Channel.byteLengthFor({ maxMessage: -1 }), RangeError);
  assert.throws(() => Channel.byteLengthFor({ maxMessage: 2 ** 29 }), RangeError);
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
  const first = bytes(consumer.receive(0));
  assert.equal(decoder.decode(first), "one");
  assert.equal(first.buffer, mapping.view().buffer, "a view into the mapping, not a copy");
  assert.equal(first.byteOffset, 384 + 8);
  assert.equal(words[64], 0, "head (offset 256) moves on release, not on receive");
  const second = bytes(consumer.receiveCopy(0));
  assert.equal(decoder.decode(second), "1234");
  assert.notEqual(second.buffer, mapping.view().buffer);
  assert.equal(words[64], 32, "head after both records");
  assert.equal(words[66], 2, "received (offset 264)");
  assert.equal(consumer.pending, 0);
  assert.equal(consumer.receive(10), null, "times out when empty");
});

test("send copies every short and longer length exactly, from any kind of view at any offset", () => {
  using mapping = Mapping.anonymous(8192);
  const producer = Channel.init(mapping.view());
  const consumer = Channel.from(mapping.view());
  const data = mapping.view(Uint8Array, 384);
  const source = new Uint8Array(64);
  for (let k = 0; k < source.length; k++) source[k] = 0x40 + k;
  for (let length = 0; length <= 40; length++) {
    // Poison the ring, so a byte written past the message would show.
    data.fill(0xee);
    const offset = length % 3;
    const views: ArrayBufferView[] = [
      source.subarray(offset, offset + length),
      new DataView(source.buffer, offset, length),
    ];
    if (length % 2 === 0) views.push(new Uint16Array(source.buffer, 2, length / 2));
    for (const view of views) {
      assert.equal(producer.send(view, 0), true);
      const message = bytes(consumer.receive(0));
      const start = view.byteOffset;
      assert.deepEqual(
        [...message],
        [...source.subarray(start, start + length)],
        `length ${length}`,
      );
      const after = message.byteOffset + length;
      const end = message.byteOffset + ((length + 7) & ~7);
      const padding = [...new Uint8Array(message.buffer, after, end - after)];
      assert.deepEqual(padding, padding.map(() => 0xee), `nothing written past ${length} bytes`);
    }
  }
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
      if (message !== null) check(bytes(message));
    }
  }
  for (let message = consumer.tryReceive(); message !== null; message = consumer.tryReceive()) {
    check(bytes(message));
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
    const message = bytes(consumer.tryReceive());
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
  assert.deepEqual([...bytes(consumer.tryReceive())], [1, 2, 3]);
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
  assert.throws(() => Channel.init(mapping.view(), { checkIntervalMs: 0 }), RangeError);
  assert.throws(() => Channel.init(mapping.view(), { role: "both" as never }), TypeError);
  assert.equal(Channel.from(mapping.view(Uint8Array, 0, 2048)).capacity, 1664, "not re-laid out");
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
    assert.equal(decoder.decode(bytes(await pending)), "late");
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
    assert.equal(decoder.decode(bytes(await consumer.receiveAsync(1000))), "after");
    assert.equal(await producer.sendAsync(new Uint8Array(1), 0), true);
  } finally {
    timer.stop();
  }
});

test("receiveAsync polls from the event loop for its window: nobody sleeps in the kernel on tail", async () => {
  using mapping = Mapping.anonymous(4096);
  const producer = Channel.init(mapping.view());
  // One polling slice (the window is shorter than the check interval).
  const consumer = Channel.from(mapping.view(), { pollMs: 30_000, checkIntervalMs: 60_000 });
  const pending = consumer.receiveAsync(30_000);
  let woken = -1;
  // Timers run meanwhile; on the third tick the consumer is still polling.
  const timer = afterTicks(3, () => {
    woken = notify(mapping.view(Int32Array), 32); // tail, the consumer's futex word
    producer.send(encoder.encode("polled"));
  });
  try {
    assert.equal(decoder.decode(bytes(await pending)), "polled");
    assert.equal(woken, 0, "a thread slept in futex on tail during the polling window");
    assert.ok(timer.count >= 3, `the timer fired ${timer.count} times during the wait`);
  } finally {
    timer.stop();
  }
});

test("messages({ signal }): for await yields what is at hand, and an abort ends a waiting loop with the reason", async () => {
  using mapping = Mapping.anonymous(4096);
  const producer = Channel.init(mapping.view());
  const consumer = Channel.from(mapping.view());
  assert.throws(
    () => consumer.messages({ signal: "stop" as unknown as AbortSignal }),
    TypeError,
  );
  producer.send(encoder.encode("one"));
  producer.send(encoder.encode("two"));
  const stop = new AbortController();
  const reason = new Error("stopped");
  const seen: string[] = [];
  // The ring empties after two messages: only the abort (a later timer tick) can end the loop.
  const timer = afterTicks(3, () => stop.abort(reason));
  try {
    await assert.rejects(async () => {
      for await (const message of consumer.messages({ signal: stop.signal })) {
        seen.push(decoder.decode(message));
      }
    }, (error: unknown) => error === reason);
  } finally {
    timer.stop();
  }
  assert.deepEqual(seen, ["one", "two"]);
  // The aborted wait took nothing: a message sent now is there for the next receive.
  producer.send(encoder.encode("three"));
  assert.equal(decoder.decode(bytes(consumer.tryReceive())), "three");
  // An aborted signal ends the loop before it receives anything.
  producer.send(encoder.encode("four"));
  await assert.rejects(async () => {
    for await (const _ of consumer.messages({ signal: AbortSignal.abort(reason) })) {
      assert.fail("a message was yielded after the abort");
    }
  }, (error: unknown) => error === reason);
  assert.equal(decoder.decode(bytes(consumer.tryReceive())), "four");
});

test("close: the consumer drains what was sent, then gets Channel.DONE; for await ends", async () => {
  using mapping = Mapping.anonymous(4096);
  const producer = Channel.init(mapping.view());
  const consumer = Channel.from(mapping.view());
  const words = mapping.view(Int32Array);
  for (const text of ["one", "two", "three"]) producer.send(encoder.encode(text));
  producer.close();
  producer.close();
  assert.equal(words[6], 1, "closed (offset 24): bit 0, the producer");
  assert.throws(() => producer.send(new Uint8Array(1)), ClosedError);
  const texts: string[] = [];
  for await (const message of consumer) texts.push(decoder.decode(message));
  assert.deepEqual(texts, ["one", "two", "three"]);
  assert.equal(consumer.receive(), Channel.DONE, "no wait once done");
  assert.equal(consumer.tryReceive(), Channel.DONE);
  assert.equal(await consumer.receiveAsync(), Channel.DONE);
  assert.equal(consumer.receiveCopy(), Channel.DONE);
  assert.equal(words[64], words[32], "head caught up with tail");
});

test("a consumer waiting in receiveAsync or for await sees the producer's close", async () => {
  using mapping = Mapping.anonymous(4096);
  const producer = Channel.init(mapping.view());
  const consumer = Channel.from(mapping.view(), { role: "consumer" });
  const waiting = consumer.receiveAsync();
  const timer = afterTicks(3, () => {
    producer.send(encoder.encode("last"));
    producer.close();
  });
  try {
    assert.equal(decoder.decode(bytes(await waiting)), "last");
    assert.equal(await consumer.receiveAsync(), Channel.DONE);
  } finally {
    timer.stop();
  }
  const second = Channel.init(mapping.view());
  const reader = Channel.from(mapping.view());
  const iterated: string[] = [];
  const loop = (async () => {
    for await (const message of reader) iterated.push(decoder.decode(message));
  })();
  const late = afterTicks(3, () => {
    second.send(encoder.encode("a"));
    second.close();
  });
  try {
    await loop;
    assert.deepEqual(iterated, ["a"]);
  } finally {
    late.stop();
  }
});

test("the consumer's close makes send, trySend, tryReserve and a waiting sendAsync throw CONSUMER_CLOSED", async () => {
  using mapping = Mapping.anonymous(1024);
  const producer = Channel.init(mapping.view());
  const consumer = Channel.from(mapping.view(), { role: "consumer" });
  while (producer.trySend(new Uint8Array(100)));
  const sending = producer.sendAsync(new Uint8Array(100));
  consumer.close();
  assert.equal(mapping.view(Int32Array)[6], 2, "closed (offset 24): bit 1, the consumer");
  await assert.rejects(sending, { name: "ChannelError", code: "CONSUMER_CLOSED" });
  assert.throws(() => producer.trySend(new Uint8Array(1)), { code: "CONSUMER_CLOSED" });
  assert.throws(() => producer.send(new Uint8Array(1)), { code: "CONSUMER_CLOSED" });
  assert.throws(() => producer.tryReserve(1), { code: "CONSUMER_CLOSED" });
  assert.throws(() => consumer.receive(), ClosedError);
});

test("reserveAsync waits for room and hands out a view that commit() sends", async () => {
  using mapping = Mapping.anonymous(1024);
  const producer = Channel.init(mapping.view());
  const consumer = Channel.from(mapping.view());
  while (producer.trySend(new Uint8Array(200)));
  const reserving = producer.reserveAsync(3, 10_000);
  const timer = afterTicks(3, () => {
    while (consumer.tryReceive() !== null);
  });
  try {
    const room = await reserving;
    assert.ok(room !== null);
    room.set([7, 8, 9]);
    producer.commit();
    assert.deepEqual([...bytes(consumer.receive(1000))], [7, 8, 9]);
    assert.throws(() => producer.reserveAsync(producer.maxMessageBytes + 1), RangeError);
  } finally {
    timer.stop();
  }
});

test("an AbortSignal ends receiveAsync, sendAsync and reserveAsync with its reason", async () => {
  using mapping = Mapping.anonymous(1024);
  const producer = Channel.init(mapping.view());
  const consumer = Channel.from(mapping.view());
  const words = mapping.view(Int32Array);
  const reason = new Error("enough");
  const controller = new AbortController();
  const receiving = consumer.receiveAsync(undefined, { signal: controller.signal });
  // Only the timer can abort: the wait must have let the event loop run.
  const timer = afterTicks(3, () => controller.abort(reason));
  try {
    await assert.rejects(receiving, (error) => error === reason);
  } finally {
    timer.stop();
  }
  assert.equal(words[33], 0, "consumerSleeping cleared");
  producer.send(encoder.encode("after"));
  assert.equal(decoder.decode(bytes(await consumer.receiveAsync(1000))), "after");
  while (producer.trySend(new Uint8Array(200)));
  for (
    const start of [
      (signal: AbortSignal) => producer.sendAsync(new Uint8Array(200), undefined, { signal }),
      (signal: AbortSignal) => producer.reserveAsync(200, undefined, { signal }),
    ]
  ) {
    const aborter = new AbortController();
    const pending = start(aborter.signal);
    const tick = afterTicks(2, () => aborter.abort(reason));
    try {
      await assert.rejects(pending, (error) => error === reason);
    } finally {
      tick.stop();
    }
    assert.equal(words[65], 0, "producerSleeping cleared");
  }
  const aborted = AbortSignal.abort(reason);
  await assert.rejects(consumer.receiveAsync(1000, { signal: aborted }), (e) => e === reason);
  assert.throws(() => consumer.receiveAsync(1, { signal: "no" as never }), TypeError);
});

test("a message or room at hand settles the async calls before the event loop turns", async () => {
  using mapping = Mapping.anonymous(1024);
  const producer = Channel.init(mapping.view());
  const consumer = Channel.from(mapping.view());
  // A macrotask queued first: a call that waited for the event loop would settle after it.
  let turned = false;
  const turn = (): void => {
    turned = false;
    setImmediate(() => (turned = true));
  };
  turn();
  assert.equal(await producer.sendAsync(encoder.encode("one")), true);
  const room = await producer.reserveAsync(3);
  assert.ok(room instanceof Uint8Array);
  room.set(encoder.encode("two"));
  producer.commit();
  assert.equal(decoder.decode(bytes(await consumer.receiveAsync())), "one");
  const iterator = consumer[Symbol.asyncIterator]();
  const next = await iterator.next();
  assert.equal(next.done, false);
  assert.equal(decoder.decode(next.value!), "two");
  assert.equal(turned, false, "no call waited for the event loop");
  // Nothing at hand: the wait lets the event loop run, and ends when a message comes.
  const pending = iterator.next();
  await new Promise((resolve) => setImmediate(resolve));
  producer.send(encoder.encode("three"));
  assert.equal(decoder.decode((await pending).value!), "three");
  // An aborted signal still wins over a message at hand, and failures reject, not throw.
  producer.send(encoder.encode("four"));
  const reason = new Error("aborted first");
  turn();
  await assert.rejects(
    consumer.receiveAsync(undefined, { signal: AbortSignal.abort(reason) }),
    (e) => e === reason,
  );
  await assert.rejects(
    producer.sendAsync(encoder.encode("x"), undefined, { signal: AbortSignal.abort(reason) }),
    (e) => e === reason,
  );
  assert.equal(decoder.decode(bytes(await consumer.receiveAsync())), "four");
  consumer.close();
  const failing = producer.sendAsync(encoder.encode("five"));
  assert.ok(failing instanceof Promise);
  await assert.rejects(failing, (e) => e instanceof ChannelError && e.code === "CONSUMER_CLOSED");
  const closing = consumer.receiveAsync();
  await assert.rejects(closing, ClosedError);
  assert.equal(turned, false, "no call waited for the event loop");
});

test("a for await step on an empty ring polls only briefly, even with spinMs Infinity", async () => {
  using mapping = Mapping.anonymous(1024);
  const producer = Channel.init(mapping.view(), { spinMs: Infinity });
  const consumer = Channel.from(mapping.view(), { spinMs: Infinity });
  const iterator = consumer[Symbol.asyncIterator]();
  // next() returns before the message exists: its poll gave up and left the event loop free.
  const pending = iterator.next();
  let sent = false;
  setImmediate(() => {
    sent = true;
    producer.send(encoder.encode("late"));
  });
  const next = await pending;
  assert.equal(sent, true);
  assert.equal(next.done, false);
  assert.equal(decoder.decode(next.value!), "late");
  producer.close();
  assert.equal((await iterator.next()).done, true);
});

test("an async consumer whose messages come soon after it blocks polls longer next time", async () => {
  using mapping = Mapping.anonymous(1024);
  const pollMs = 20;
  const producer = Channel.init(mapping.view());
  const consumer = Channel.from(mapping.view(), { pollMs });
  const words = mapping.view(Int32Array);
  // Each message comes 30 ms (or later, under load) after the receive starts:
  // past the 20 ms window, so at first the consumer is asleep (consumerSleeping,
  // word 33, set) when it comes; a stretched window (up to 80 ms) finds it polling.
  // The first message waits until the consumer sleeps (a process descheduled
  // between two looks can still be polling at 30 ms), so it comes soon after.
  const asleep: number[] = [];
  for (let round = 0; round < 10 && !asleep.includes(0); round++) {
    const receiving = consumer.receiveAsync(10_000);
    await new Promise((resolve) => setTimeout(resolve, pollMs * 1.5));
    if (round === 0) await until(() => words[33] === 1, 10_000, "the consumer's sleep");
    asleep.push(words[33]!);
    producer.send(encoder.encode(`m${round}`));
    assert.equal(decoder.decode(bytes(await receiving)), `m${round}`);
  }
  assert.equal(asleep[0], 1, "the first message found the consumer asleep");
  assert.ok(asleep.includes(0), `a later one found it polling: ${asleep.join(",")}`);
});

test(
  "after an aborted wait with no timeout, nothing keeps the process alive: it exits by itself",
  PEER_TEST,
  async () => {
    const file = sharedFile(4096);
    try {
      {
        using mapping = Mapping.file(file.path);
        Channel.init(mapping.view());
      }
      const peers = other === undefined ? [self] : [self, other];
      for (const peer of peers) {
        // The 60 s guard kills a process that would not exit: a failure.
        const output = await expectSuccess(
          startPeer(peer, "channel_peer.ts", [file.path, "abort"], 60_000),
          `${peer.runtime} aborting consumer`,
        );
        assert.match(output, /rejected: stop waiting/);
        using mapping = Mapping.file(file.path);
        mapping.view(Int32Array)[5] = 0; // free the consumer's place for the next runtime
      }
    } finally {
      file.remove();
    }
  },
);

// --- untrusted words: another process writes garbage into the header or a record

interface Garbage {
  readonly what: string;
  /** [byte offset, int32] pairs the other process writes. */
  readonly pokes: readonly (readonly [number, number])[];
  /** Runs before the pokes, after three messages were sent. */
  readonly before?: (producer: Channel, consumer: Channel) => void;
  readonly act: (producer: Channel, consumer: Channel) => unknown;
  readonly word: string;
  readonly value: number;
}

const DATA = 384;
// Three messages: 3 bytes at 0, 100 bytes at 16, 5 bytes at 128; tail 144.
const GARBAGE: readonly Garbage[] = [
  {
    what: "a negative record length",
    pokes: [[DATA, -5]],
    act: (_, c) => c.tryReceive(),
    word: "record length at 0",
    value: -5,
  },
  {
    what: "a record length of 0x7fffffff",
    pokes: [[DATA, 0x7fffffff]],
    act: (_, c) => c.receive(1000),
    word: "record length at 0",
    value: 0x7fffffff,
  },
  {
    what: "a record ending past tail",
    pokes: [[DATA + 128, 500]],
    before: (_, c) => {
      c.tryReceive();
      c.tryReceive();
    },
    act: (_, c) => c.tryReceive(),
    word: "record length at 128",
    value: 500,
  },
  {
    what: "a padding marker with no wrapped data",
    pokes: [[DATA, -1]],
    act: (_, c) => c.tryReceive(),
    word: "record length at 0",
    value: -1,
  },
  {
    what: "a nonzero reserved word",
    pokes: [[DATA + 4, 9]],
    act: (_, c) => c.tryReceive(),
    word: "reserved word at 4",
    value: 9,
  },
  {
    what: "tail beyond the capacity",
    pokes: [[128, 0x7fffffff]],
    act: (_, c) => c.receiveAsync(1000),
    word: "tail",
    value: 0x7fffffff,
  },
  {
    what: "a misaligned tail",
    pokes: [[128, 148]],
    act: (_, c) => c.tryReceive(),
    word: "tail",
    value: 148,
  },
  {
    what: "tail moved back over received messages",
    pokes: [[128, 64]],
    before: (_, c) => {
      while (c.tryReceive() !== null);
    },
    act: (_, c) => c.receive(1000),
    word: "tail",
    value: 64,
  },
  {
    what: "tail moved on with no message sent",
    pokes: [[128, 200]],
    before: (_, c) => {
      while (c.tryReceive() !== null);
    },
    act: (_, c) => c.tryReceive(),
    word: "tail",
    value: 200,
  },
  {
    what: "a garbage producerSleeping flag",
    pokes: [[260, 7]],
    before: (_, c) => void c.tryReceive(),
    act: (_, c) => c.tryReceive(),
    word: "producerSleeping",
    value: 7,
  },
  {
    what: "a garbage consumerSleeping flag",
    pokes: [[132, -3]],
    act: (p) => p.trySend(new Uint8Array(1)),
    word: "consumerSleeping",
    value: -3,
  },
  {
    what: "a garbage sent counter",
    pokes: [[136, 100_000]],
    act: (p) => p.pending,
    word: "sent",
    value: 100_000,
  },
  {
    what: "a garbage closed word",
    pokes: [[24, 0x100]],
    act: (p) => p.send(new Uint8Array(1)),
    word: "closed",
    value: 0x100,
  },
  {
    what: "a garbage producer id",
    pokes: [[16, -1]],
    before: (_, c) => {
      while (c.tryReceive() !== null);
    },
    act: (_, c) => c.receive(1000),
    word: "producer",
    value: -1,
  },
  {
    what: "head beyond the capacity",
    pokes: [[256, 0x7fffffff]],
    act: (p) => {
      while (p.trySend(new Uint8Array(200)));
    },
    word: "head",
    value: 0x7fffffff,
  },
  {
    what: "head past tail",
    pokes: [[256, 3624]],
    before: (p) => {
      // Full with head 0 seen: tail at 3616.
      while (p.trySend(new Uint8Array(100)));
    },
    act: (p) => p.trySend(new Uint8Array(100)),
    word: "head",
    value: 3624,
  },
  {
    what: "head moved back",
    pokes: [[256, 136]],
    before: (p, c) => {
      while (c.tryReceive() !== null);
      // Full with head 144 seen: tail at 112, after a padding marker.
      while (p.trySend(new Uint8Array(100)));
    },
    act: (p) => p.sendAsync(new Uint8Array(100), 1000),
    word: "head",
    value: 136,
  },
];

test(
  "every word another process garbles is caught: ChannelError CORRUPTED names it, and the channel refuses further use",
  PEER_TEST,
  async () => {
    const cases = GARBAGE.map((garbage) => {
      const file = sharedFile(4096);
      const mapping = Mapping.file(file.path);
      const producer = Channel.init(mapping.view());
      const consumer = Channel.from(mapping.view());
      for (const length of [3, 100, 5]) producer.send(new Uint8Array(length).fill(length));
      garbage.before?.(producer, consumer);
      return { garbage, file, mapping, producer, consumer };
    });
    try {
      const targets = cases.flatMap(({ garbage, file }) =>
        garbage.pokes.map(([offset, value]) => `${file.path}:${offset}:${value}`)
      );
      await expectSuccess(
        startPeer(other ?? self, "channel_peer.ts", ["poke", ...targets]),
        "poking process",
      );
      for (const { garbage, producer, consumer } of cases) {
        let outcome: unknown;
        try {
          outcome = await garbage.act(producer, consumer);
        } catch (error) {
          outcome = error;
        }
        assert.ok(outcome instanceof ChannelError, `${garbage.what}: got ${String(outcome)}`);
        assert.equal(outcome.code, "CORRUPTED", garbage.what);
        assert.equal(outcome.word, garbage.word, garbage.what);
        assert.equal(outcome.value, garbage.value, garbage.what);
        assert.match(outcome.message, new RegExp(`${garbage.value}`), garbage.what);
        // Refused from then on, whatever the call.
        const end = garbage.word === "head" || garbage.word === "consumerSleeping" ||
            garbage.word === "sent" || garbage.word === "closed"
          ? () => producer.trySend(new Uint8Array(1))
          : () => consumer.tryReceive();
        assert.throws(end, (error) => error === outcome, `${garbage.what}: refused`);
      }
    } finally {
      for (const { file, mapping } of cases) {
        mapping.close();
        file.remove();
      }
    }
  },
);

test("attaching to memory with a garbled header throws ChannelError CORRUPTED naming the word", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const table: [number, number, string][] = [
    [0, 0x43484e31, "magic"],
    [1, 100, "capacity"],
    [1, 0x7fffffff, "capacity"],
    [2, 0, "dataOffset"],
    [3, 3000, "maxMessage"],
    [4, -1, "producer"],
    [6, 4, "closed"],
    [32, 3712, "tail"],
    [64, -8, "head"],
  ];
  for (const [index, value, word] of table) {
    Channel.init(mapping.view());
    words[index] = value;
    assert.throws(() => Channel.from(mapping.view()), { name: "ChannelError", word, value });
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

// --- lifecycle across processes: a peer SIGKILLed

const RUNTIMES: Peer[] = other === undefined ? [self] : [self, other];

for (const peer of RUNTIMES) {
  test(
    `a ${peer.runtime} producer SIGKILLed mid-stream: every message it sent arrives, then for await ends`,
    PEER_TEST,
    async () => {
      const file = sharedFile(4096);
      const running: Running[] = [];
      try {
        using mapping = Mapping.file(file.path);
        const consumer = Channel.init(mapping.view(), { role: "consumer" });
        const words = mapping.view(Int32Array);
        const producing = startPeer(peer, "channel_peer.ts", [file.path, "stream"]);
        running.push(producing);
        let received = 0;
        let killed = false;
        const problems: string[] = [];
        for await (const message of consumer) {
          // Message i: the u32 i, then bytes (i + k) & 0xff, 4 + i % 29 bytes long.
          const i = received;
          const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
          if (message.length !== 4 + (i % 29) || view.getUint32(0, true) !== i) {
            problems.push(`message ${i}: length ${message.length}`);
          }
          for (let k = 4; k < message.length; k++) {
            if (message[k] !== ((i + k) & 0xff)) problems.push(`message ${i}: byte ${k}`);
          }
          received++;
          if (received === 2000 && !killed) {
            killed = true;
            producing.kill("SIGKILL");
          }
        }
        const { signal, code, output } = await producing.done;
        assert.equal(signal, "SIGKILL", `exit code ${code}, output:\n${output}`);
        assert.deepEqual(problems.slice(0, 5), []);
        assert.ok(received >= 2000, `received ${received}`);
        // Everything published was received: head caught up with the final tail, and
        // `sent` counts the received messages (plus one if the kill fell between
        // counting a message and publishing it).
        assert.equal(words[64], words[32]);
        assert.ok(
          words[34]! - received === 0 || words[34]! - received === 1,
          `sent ${words[34]}, received ${received}`,
        );
        assert.equal(consumer.tryReceive(), Channel.DONE);
      } finally {
        for (const child of running) child.kill("SIGKILL");
        file.remove();
      }
    },
  );

  test(
    `a ${peer.runtime} consumer SIGKILLed with the ring full: the producer's waiting sendAsync and send throw CONSUMER_DIED`,
    PEER_TEST,
    async () => {
      const file = sharedFile(4096);
      const running: Running[] = [];
      try {
        using mapping = Mapping.file(file.path);
        const producer = Channel.init(mapping.view(), { role: "producer" });
        const words = mapping.view(Int32Array);
        const consuming = startPeer(peer, "channel_peer.ts", [file.path, "stall"]);
        running.push(consuming);
        await until(() => words[5] !== 0, 60_000, "the consumer to take its place");
        assert.equal(words[5]! & 0x3fffff, consuming.pid, "consumer (offset 20): its pid");
        assert.throws(() => Channel.from(mapping.view()).tryReceive(), { code: "ROLE_TAKEN" });
        while (producer.trySend(new Uint8Array(100)));
        const sending = producer.sendAsync(new Uint8Array(100));
        // The send waits: the consumer lives but never receives.
        const early = await Promise.race([
          sending.then(() => "settled", () => "settled"),
          new Promise((resolve) => setTimeout(() => resolve("waiting"), 200)),
        ]);
        assert.equal(early, "waiting");
        consuming.kill("SIGKILL");
        await assert.rejects(sending, { name: "ChannelError", code: "CONSUMER_DIED" });
        assert.throws(() => producer.send(new Uint8Array(100)), { code: "CONSUMER_DIED" });
        assert.equal((await consuming.done).signal, "SIGKILL");
      } finally {
        for (const child of running) child.kill("SIGKILL");
        file.remove();
      }
    },
  );
}

// --- a spinning end (spinMs: Infinity) notices a dead peer

/** How long a spinning peer may live: it is killed after that, failing its test. */
const SPIN_LIMIT = isEmulated ? 300_000 : 60_000;

/** CPU time a process has used, in clock ticks (utime + stime of /proc/<pid>/stat). */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/**
 * Waits until `pid` has used 20 more ticks of CPU (200 ms at 100 Hz): an
 * end that signalled it is about to wait and then burns CPU is spinning in
 * that wait, past its first look at the other end.
 */
async function spinning(pid: number): Promise<void> {
  const start = cpuTicks(pid);
  await until(() => cpuTicks(pid) - start >= 20, 60_000, `pid ${pid} to spin`);
}

test(
  "a receive() spinning with no timeout returns Channel.DONE once its producer is SIGKILLed",
  PEER_TEST,
  async () => {
    const file = sharedFile(64 + 4096);
    const running: Running[] = [];
    try {
      using mapping = Mapping.file(file.path);
      const words = mapping.view(Int32Array, 0, 16);
      Channel.init(mapping.view(Uint8Array, 64));
      const producing = startPeer(self, "channel_spin_peer.ts", [file.path, "produce"]);
      running.push(producing);
      await until(() => words[0] === 1, 60_000, "the producer's message");
      const consuming = startPeer(self, "channel_spin_peer.ts", [file.path, "consume"], SPIN_LIMIT);
      running.push(consuming);
      await until(() => words[0] === 2, 60_000, "the consumer to receive it");
      await spinning(consuming.pid);
      producing.kill("SIGKILL");
      assert.equal((await producing.done).signal, "SIGKILL");
      // A consumer that never noticed would spin until the peer's 120 s limit kills it.
      const output = await expectSuccess(consuming, "the spinning consumer");
      assert.match(output, /^DONE$/m);
    } finally {
      for (const child of running) child.kill("SIGKILL");
      file.remove();
    }
  },
);

test(
  "a send() spinning with no timeout on a full ring throws CONSUMER_DIED once its consumer is SIGKILLed",
  PEER_TEST,
  async () => {
    const file = sharedFile(64 + 4096);
    const running: Running[] = [];
    try {
      using mapping = Mapping.file(file.path);
      const words = mapping.view(Int32Array, 0, 16);
      Channel.init(mapping.view(Uint8Array, 64));
      const consuming = startPeer(self, "channel_spin_peer.ts", [file.path, "stall"]);
      running.push(consuming);
      await until(() => words[0] === 4, 60_000, "the consumer to take its place");
      const producing = startPeer(self, "channel_spin_peer.ts", [file.path, "fill"], SPIN_LIMIT);
      running.push(producing);
      await until(() => words[0] === 3, 60_000, "the producer to fill the ring");
      await spinning(producing.pid);
      consuming.kill("SIGKILL");
      assert.equal((await consuming.done).signal, "SIGKILL");
      // A producer that never noticed would spin until the peer's 120 s limit kills it.
      const output = await expectSuccess(producing, "the spinning producer");
      assert.match(output, /^CONSUMER_DIED$/m);
    } finally {
      for (const child of running) child.kill("SIGKILL");
      file.remove();
    }
  },
);
