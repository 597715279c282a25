import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { ClosedError, Mapping } from "../mod.ts";
import {
  Broadcast,
  LoanPool,
  MessagingError,
  Queue,
  QUEUE_HEADER_BYTES,
  QUEUE_MAGIC,
} from "../messaging/mod.ts";
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

/** A queue message as the fixtures and the C peer make them. */
function message(producer: number, i: number): Uint8Array {
  const bytes = new Uint8Array(8 + (i % 40));
  const view = new DataView(bytes.buffer);
  view.setUint32(0, producer, true);
  view.setUint32(4, i, true);
  for (let k = 8; k < bytes.length; k++) bytes[k] = (i + k) & 0xff;
  return bytes;
}

/** "producer:index" of a message, after checking its bytes. */
function idOf(bytes: Uint8Array | null | typeof Queue.DONE): string {
  if (!(bytes instanceof Uint8Array)) assert.fail(`expected a message, got ${String(bytes)}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  const i = view.getUint32(4, true);
  assert.equal(bytes.length, 8 + (i % 40));
  for (let k = 8; k < bytes.length; k++) assert.equal(bytes[k], (i + k) & 0xff);
  return `${view.getUint32(0, true)}:${i}`;
}

// Expected values worked out by hand from docs/messaging.md.
test("init writes the documented header and slot words", () => {
  const shape = { slots: 4, maxMessage: 40 };
  assert.equal(Queue.byteLengthFor(shape), 256 + 4 * 64);
  assert.equal(Queue.byteLengthFor({ slots: 1024, maxMessage: 64 }), 256 + 1024 * 128);
  using mapping = Mapping.anonymous(4096);
  const queue = Queue.init(mapping.view(), shape);
  const words = mapping.view(Int32Array);
  assert.equal(QUEUE_MAGIC, 0x4d505131);
  assert.equal(QUEUE_HEADER_BYTES, 256);
  assert.deepEqual([...words.subarray(0, 5)], [0x4d505131, 4, 64, 48, 0]);
  for (let i = 0; i < 4; i++) {
    assert.deepEqual([...words.subarray(64 + 16 * i, 64 + 16 * i + 3)], [i, 0, 0], `slot ${i}`);
  }
  assert.equal(queue.maxMessageBytes, 48);
  assert.equal(queue.trySend(new Uint8Array([9, 8, 7])), true);
  assert.equal(words[16], 1, "tail");
  assert.equal(words[17], 1, "published");
  assert.deepEqual([...words.subarray(64, 67)], [1, 0, 3], "slot 0: seq 1, no owner, length 3");
  assert.deepEqual([...mapping.view(Uint8Array, 256 + 16, 3)], [9, 8, 7]);
  assert.deepEqual([...Queue.from(mapping.view()).tryReceive() as Uint8Array], [9, 8, 7]);
  assert.equal(words[32], 1, "head");
  assert.equal(words[64], 4, "slot 0 free for lap 4");
  assert.throws(() => Queue.byteLengthFor({ slots: 3, maxMessage: 8 }), RangeError);
  assert.throws(() => Queue.init(mapping.view(Uint8Array, 0, 300), shape), RangeError);
  assert.throws(() => Queue.init(new Uint8Array(4096).subarray(4), shape), RangeError);
  assert.throws(() => queue.trySend(new Uint8Array(49)), RangeError);
  assert.throws(() => queue.trySend("text" as unknown as Uint8Array), TypeError);
});

test("one process: FIFO through many laps, full refuses, end() drains then DONE", async () => {
  const shape = { slots: 8, maxMessage: 48 };
  using mapping = Mapping.anonymous(Queue.byteLengthFor(shape));
  const a = Queue.init(mapping.view(), shape);
  const b = Queue.from(mapping.view());
  let next = 0;
  let expected = 0;
  for (let round = 0; round < 200; round++) {
    while (a.trySend(message(1, next))) next++;
    assert.equal(a.length, 8);
    assert.equal(a.send(message(1, next), 1), false, "send times out when full");
    const take = 1 + (round % 8);
    for (let k = 0; k < take; k++) assert.equal(idOf(b.receive(0)), `1:${expected++}`);
  }
  while (expected < next) assert.equal(idOf(b.tryReceive()), `1:${expected++}`);
  assert.equal(b.tryReceive(), null);
  assert.equal(b.receive(5), null, "times out when empty");
  a.send(message(1, next));
  a.end();
  assert.throws(
    () => a.trySend(message(1, 0)),
    (e) => e instanceof MessagingError && e.code === "CLOSED",
  );
  const seen: string[] = [];
  for await (const m of b) seen.push(idOf(m));
  assert.deepEqual(seen, [`1:${next}`]);
  assert.equal(b.receive(), Queue.DONE);
  b.close();
  assert.throws(() => b.tryReceive(), ClosedError);
  assert.deepEqual(a.dropped, { unpublished: 0, taken: 0 });
});

test("after the memory is unmapped, every object throws ClosedError instead of touching it", async () => {
  const shape = { slots: 4, maxMessage: 48 };
  const mapping = Mapping.anonymous(8192);
  const queue = Queue.init(mapping.view(Uint8Array, 0, 4096), shape);
  const broadcast = Broadcast.init(mapping.view(Uint8Array, 4096, 1024), shape);
  const subscriber = broadcast.subscribe();
  const pool = LoanPool.init(mapping.view(Uint8Array, 5120, 1024), { blocks: 2, blockBytes: 64 });
  const loan = pool.tryLoan()!;
  mapping.close();
  assert.throws(() => queue.trySend(new Uint8Array(1)), ClosedError);
  assert.throws(() => queue.receive(0), ClosedError);
  assert.throws(() => broadcast.publish(new Uint8Array(1)), ClosedError);
  assert.throws(() => subscriber.tryReceive(), ClosedError);
  assert.throws(() => pool.tryLoan(), ClosedError);
  assert.throws(() => loan.release(), ClosedError);
  assert.throws(() => subscriber.receive(0), ClosedError);
  assert.throws(() => pool.loan(0), ClosedError);
  await assert.rejects(queue.receiveAsync(0), ClosedError);
  await assert.rejects(queue.sendAsync(new Uint8Array(1), 0), ClosedError);
  await assert.rejects(subscriber.receiveAsync(0), ClosedError);
  await assert.rejects(pool.loanAsync(0), ClosedError);
});

test("every length, from aligned and unaligned buffers into aligned and unaligned ones, arrives intact", () => {
  // Small messages are copied word by word through a view kept per buffer; large ones by set().
  const shape = { slots: 4, maxMessage: 300 };
  using mapping = Mapping.anonymous(Queue.byteLengthFor(shape));
  const queue = Queue.init(mapping.view(), shape);
  const max = queue.maxMessageBytes;
  const from = [new Uint8Array(max + 3), new Uint8Array(max + 3)];
  const into = [new Uint8Array(max + 4), new Uint8Array(max + 4)];
  // A detached message: refused, not sent as an empty one.
  const gone = new ArrayBuffer(8);
  const detached = new Uint8Array(gone);
  gone.transfer();
  assert.throws(() => queue.send(detached), TypeError);
  // The same buffers again and again, their bytes changing in between.
  const same = new Uint8Array(64);
  const back = new Uint8Array(max);
  for (let i = 0; i < 10; i++) {
    same.fill(i * 3 + 1);
    queue.send(same);
    assert.equal(queue.receiveInto(back), 64);
    assert.deepEqual(back.subarray(0, 64), same);
  }
  for (let length = 0; length <= max; length++) {
    for (let shift = 0; shift < 4; shift++) {
      const source = from[shift & 1]!.subarray(shift, shift + length);
      for (let k = 0; k < length; k++) source[k] = (length * 7 + k * 13 + shift) & 0xff;
      assert.equal(queue.send(source), true);
      const target = into[shift >> 1]!.subarray(3 - shift);
      target.fill(0xee);
      assert.equal(queue.receiveInto(target, 0), length);
      assert.deepEqual(target.subarray(0, length), source, `length ${length}, shift ${shift}`);
      assert.equal(target[length], 0xee, "nothing written past the message");
      queue.send(source);
      assert.deepEqual(queue.tryReceive(), source.slice());
    }
  }
  // A DataView, and a Float64Array: the bytes they view.
  const doubles = new Float64Array([1.5, -2.25]);
  queue.send(new DataView(doubles.buffer, 4, 12));
  assert.deepEqual(queue.tryReceive(), new Uint8Array(doubles.buffer, 4, 12).slice());
  queue.send(doubles);
  assert.deepEqual(queue.tryReceive(), new Uint8Array(doubles.buffer).slice());
});

test("receiveInto copies into the caller's buffer and returns the length, without allocating", () => {
  const shape = { slots: 4, maxMessage: 48 };
  using mapping = Mapping.anonymous(Queue.byteLengthFor(shape));
  const queue = Queue.init(mapping.view(), shape);
  const buffer = new Uint8Array(48).fill(0xee);
  queue.send(message(4, 13));
  assert.equal(queue.receiveInto(buffer, 0), 21);
  assert.equal(idOf(buffer.subarray(0, 21)), "4:13");
  assert.equal(buffer[21], 0xee, "nothing written past the message");
  assert.equal(queue.receiveInto(buffer, 1), null);
  assert.throws(() => queue.receiveInto(new Uint8Array(47)), RangeError);
  assert.throws(() => queue.receiveInto([] as unknown as Uint8Array), TypeError);
  queue.end();
  assert.equal(queue.receiveInto(buffer), Queue.DONE);
});

test("a timeout of 0 is one look: null from an empty queue, false from a full one, then DONE", () => {
  const shape = { slots: 2, maxMessage: 16 };
  using mapping = Mapping.anonymous(Queue.byteLengthFor(shape));
  const queue = Queue.init(mapping.view(), shape);
  assert.equal(queue.receive(0), null);
  assert.equal(queue.send(message(1, 0), 0), true);
  assert.equal(queue.send(message(1, 1), 0), true);
  assert.equal(queue.send(message(1, 2), 0), false, "full");
  assert.equal(idOf(queue.receive(0)), "1:0");
  assert.equal(idOf(queue.receive(0)), "1:1");
  assert.equal(queue.receive(0), null);
  queue.end();
  assert.equal(queue.receive(0), Queue.DONE);
});

test(
  "2 producers + 2 consumers in separate processes, Deno and Bun mixed: each message exactly once",
  PEER_TEST,
  async () => {
    const shape = { slots: 64, maxMessage: 48 };
    const file = sharedFile(Queue.byteLengthFor(shape));
    try {
      using mapping = Mapping.file(file.path);
      const queue = Queue.init(mapping.view(), shape);
      const count = 3000;
      const consumers = [
        startPeer(self, FIXTURE, ["queue-consume", file.path, "sync"]),
        startPeer(other, FIXTURE, ["queue-consume", file.path, "async"]),
      ];
      const producers = [
        startPeer(other, FIXTURE, ["queue-produce", file.path, 1, count, "sync"]),
        startPeer(self, FIXTURE, ["queue-produce", file.path, 2, count, "async"]),
      ];
      for (const p of producers) await expectSuccess(p, "producer");
      queue.end();
      const ids: string[] = [];
      for (const c of consumers) {
        const result = JSON.parse((await expectSuccess(c, "consumer")).trim()) as {
          ids: string[];
          bad: string[];
        };
        assert.deepEqual(result.bad, []);
        ids.push(...result.ids);
      }
      assert.equal(ids.length, 2 * count, "none lost");
      assert.equal(new Set(ids).size, 2 * count, "none duplicated");
      const all = new Set(ids);
      for (const p of [1, 2]) {
        for (let i = 0; i < count; i++) assert.ok(all.has(`${p}:${i}`), `${p}:${i} missing`);
      }
      assert.deepEqual(queue.dropped, { unpublished: 0, taken: 0 });
      assert.equal(queue.length, 0);
    } finally {
      file.remove();
    }
  },
);

const cPeer = have("cc") ? compileFixture("messaging_queue_peer") : undefined;
const noC = cPeer === undefined ? skipReason("no C compiler (cc)") : false;

test("C peer: a C producer's messages arrive intact; a C consumer takes a runtime's", {
  ...PEER_TEST,
  skip: noC,
}, async () => {
  const shape = { slots: 16, maxMessage: 48 };
  const file = sharedFile(Queue.byteLengthFor(shape));
  try {
    using mapping = Mapping.file(file.path);
    const queue = Queue.init(mapping.view(), shape);
    const producer = startProgram(cPeer!.path, ["produce", file.path, "7", "2000"]);
    const ids = new Set<string>();
    for (let n = 0; n < 2000; n++) ids.add(idOf(await queue.receiveAsync(60_000)));
    assert.equal(ids.size, 2000);
    assert.ok(ids.has("7:0") && ids.has("7:1999"));
    await expectSuccess(producer, "C producer");
    const consumer = startProgram(cPeer!.path, ["consume", file.path, "1500"]);
    let sum = 0;
    for (let i = 0; i < 1500; i++) {
      assert.equal(queue.send(message(3, i), 60_000), true);
      sum += 3_000_000 + i;
    }
    const out = await expectSuccess(consumer, "C consumer");
    assert.equal(out.trim(), `ok 1500 ${sum}`);
  } finally {
    file.remove();
  }
});

test(
  "a producer SIGKILLed between claiming and publishing: its message is dropped and counted, the queue moves on",
  { ...PEER_TEST, skip: noC },
  async () => {
    const shape = { slots: 4, maxMessage: 48 };
    const file = sharedFile(Queue.byteLengthFor(shape));
    try {
      using mapping = Mapping.file(file.path);
      const queue = Queue.init(mapping.view(), shape, { checkIntervalMs: 5 });
      queue.send(message(1, 0));
      const claimer = startProgram(cPeer!.path, ["claim", file.path]);
      await until(() => queue.positions.tail === 2, 60_000, "the C peer's claim");
      queue.send(message(1, 1));
      assert.equal(idOf(queue.receive(0)), "1:0");
      assert.equal(
        queue.tryReceive(),
        null,
        "the claimed slot blocks the head while its claimer lives",
      );
      claimer.kill("SIGKILL");
      assert.equal((await claimer.done).signal, "SIGKILL");
      // The next receive passes over the dead claimer's slot.
      assert.equal(idOf(queue.receive(60_000)), "1:1");
      assert.deepEqual(queue.dropped, { unpublished: 1, taken: 0 });
      for (let i = 2; i < 12; i++) {
        queue.send(message(1, i));
        assert.equal(idOf(queue.receive(0)), `1:${i}`);
      }
      assert.equal(queue.length, 0);
    } finally {
      file.remove();
    }
  },
);

test(
  "a consumer SIGKILLed after taking a message: that message is lost and counted, its slot is freed",
  { ...PEER_TEST, skip: noC },
  async () => {
    const shape = { slots: 4, maxMessage: 48 };
    const file = sharedFile(Queue.byteLengthFor(shape));
    try {
      using mapping = Mapping.file(file.path);
      const queue = Queue.init(mapping.view(), shape, { checkIntervalMs: 5 });
      for (let i = 0; i < 4; i++) queue.send(message(1, i));
      const taker = startProgram(cPeer!.path, ["take", file.path]);
      await until(() => queue.positions.head === 1, 60_000, "the C peer's take");
      assert.equal(idOf(queue.receive(0)), "1:1");
      assert.equal(
        queue.trySend(message(1, 4)),
        false,
        "the taken slot stays held while its taker lives",
      );
      taker.kill("SIGKILL");
      await taker.done;
      assert.equal(queue.send(message(1, 4), 60_000), true, "the dead taker's slot is reclaimed");
      assert.deepEqual(queue.dropped, { unpublished: 0, taken: 1 });
      const rest = [2, 3, 4].map(() => idOf(queue.receive(0)));
      assert.deepEqual(rest, ["1:2", "1:3", "1:4"]);
    } finally {
      file.remove();
    }
  },
);

test(
  "a producer and a consumer SIGKILLed mid-stream: the queue keeps working, nothing is duplicated",
  PEER_TEST,
  async () => {
    const shape = { slots: 8, maxMessage: 48 };
    const file = sharedFile(Queue.byteLengthFor(shape));
    try {
      using mapping = Mapping.file(file.path);
      const queue = Queue.init(mapping.view(), shape, { checkIntervalMs: 5 });
      const stream = startPeer(other, FIXTURE, ["queue-stream", file.path, 5]);
      const drain = startPeer(self, FIXTURE, ["queue-drain", file.path]);
      await until(() => queue.positions.head > 200, 60_000, "both peers at work");
      stream.kill("SIGKILL");
      drain.kill("SIGKILL");
      await Promise.all([stream.done, drain.done]);
      // What is left (the kills may have struck mid-operation) drains, then new messages flow.
      const left = new Set<string>();
      const deadline = performance.now() + 60_000;
      while (queue.length > 0) {
        assert.ok(performance.now() < deadline, "what the peers left drains");
        const m = queue.receive(100);
        if (m === null) continue;
        const id = idOf(m);
        assert.ok(!left.has(id), `${id} twice`);
        left.add(id);
      }
      for (let i = 0; i < 100; i++) {
        assert.equal(queue.send(message(9, i), 60_000), true, `send ${i}`);
        assert.equal(idOf(queue.receive(60_000)), `9:${i}`);
      }
      const { unpublished, taken } = queue.dropped;
      assert.ok(unpublished <= 1 && taken <= 1, `dropped ${unpublished} / ${taken}`);
      assert.equal(queue.length, 0);
    } finally {
      file.remove();
    }
  },
);

interface Poke {
  readonly name: string;
  readonly word: string;
  readonly pokes: readonly (readonly [number, number])[];
  readonly call: (queue: Queue) => unknown;
}

const POKES: Poke[] = [
  {
    name: "a slot's seq from no lap",
    word: "seq of slot 1",
    pokes: [[256 + 64, 77]],
    call: (q) => q.tryReceive(),
  },
  {
    name: "a seq ahead of the tail",
    word: "seq of slot 2",
    pokes: [[256 + 128, 1000]],
    call: (q) => q.trySend(new Uint8Array(1)),
  },
  {
    name: "a length above the slot's",
    word: "length of slot 1",
    pokes: [[256 + 64 + 8, 4096]],
    call: (q) => q.tryReceive(),
  },
  {
    name: "a negative length",
    word: "length of slot 1",
    pokes: [[256 + 64 + 8, -1]],
    call: (q) => q.tryReceive(),
  },
  {
    name: "an owner id with bit 31",
    word: "owner of slot 1",
    pokes: [[256 + 64 + 4, -5]],
    call: (q) => q.tryReceive(),
  },
  {
    name: "a tail far ahead of the head",
    word: "tail",
    pokes: [[64, 1 << 20]],
    call: (q) => q.length,
  },
  {
    name: "the closed word",
    word: "closed",
    pokes: [[16, 6]],
    call: (q) => q.trySend(new Uint8Array(1)),
  },
];

for (const poke of POKES) {
  test(
    `garbage from another process (${poke.name}) throws CORRUPTED naming ${poke.word}, then refuses use`,
    PEER_TEST,
    async () => {
      const shape = { slots: 4, maxMessage: 48 };
      const file = sharedFile(Queue.byteLengthFor(shape));
      try {
        using mapping = Mapping.file(file.path);
        const queue = Queue.init(mapping.view(), shape);
        queue.send(message(1, 0));
        queue.send(message(1, 1));
        assert.equal(idOf(queue.receive(0)), "1:0");
        const args = poke.pokes.map(([offset, value]) => `${offset}:${value}`);
        await expectSuccess(startPeer(other, FIXTURE, ["poke", file.path, ...args]), "poke");
        const isCorrupted = (e: unknown): boolean =>
          e instanceof MessagingError && e.code === "CORRUPTED" && e.word === poke.word &&
          /^Cannot .*: the queue is corrupted/.test(e.message);
        assert.throws(() => poke.call(queue), isCorrupted);
        assert.throws(() => queue.tryReceive(), isCorrupted, "refuses further use");
      } finally {
        file.remove();
      }
    },
  );
}

test("from() refuses memory that holds no queue, or a header that breaks the rules", () => {
  using mapping = Mapping.anonymous(4096);
  const words = mapping.view(Int32Array);
  const code = (word: string) => (e: unknown) =>
    e instanceof MessagingError && e.code === "CORRUPTED" && e.word === word;
  assert.throws(() => Queue.from(mapping.view()), code("magic"));
  Queue.init(mapping.view(), { slots: 4, maxMessage: 40 });
  words[1] = 3;
  assert.throws(() => Queue.from(mapping.view()), code("slots"));
  words[1] = 4;
  words[2] = 100;
  assert.throws(() => Queue.from(mapping.view()), code("slotBytes"));
  words[2] = 64;
  words[3] = 10;
  assert.throws(() => Queue.from(mapping.view()), code("maxMessage"));
  words[3] = 48;
  words[1] = 64;
  assert.throws(() => Queue.from(mapping.view()), RangeError, "slots beyond the view");
});

test(
  "AbortSignal ends receiveAsync on an empty queue and sendAsync on a full one",
  PEER_TEST,
  async () => {
    const shape = { slots: 2, maxMessage: 8 };
    using mapping = Mapping.anonymous(Queue.byteLengthFor(shape));
    const queue = Queue.init(mapping.view(), shape);
    const reason = new Error("stop");
    const a = new AbortController();
    const receiving = queue.receiveAsync(undefined, { signal: a.signal });
    setTimeout(() => a.abort(reason), 20);
    await assert.rejects(receiving, (e) => e === reason);
    queue.send(new Uint8Array(1));
    queue.send(new Uint8Array(1));
    const b = new AbortController();
    const sending = queue.sendAsync(new Uint8Array(1), undefined, { signal: b.signal });
    setTimeout(() => b.abort(reason), 20);
    await assert.rejects(sending, (e) => e === reason);
    const aborted = AbortSignal.abort(reason);
    await assert.rejects(queue.receiveAsync(0, { signal: aborted }), (e) => e === reason);
    assert.throws(() => queue.receiveAsync(0, { signal: 5 as unknown as AbortSignal }), TypeError);
    assert.equal(queue.length, 2, "the aborted send sent nothing");
  },
);

test("messages({ signal }): for await takes what is queued, and an abort ends a waiting loop with the reason", async () => {
  const shape = { slots: 4, maxMessage: 8 };
  using mapping = Mapping.anonymous(Queue.byteLengthFor(shape));
  const queue = Queue.init(mapping.view(), shape);
  assert.throws(() => queue.messages({ signal: 1 as unknown as AbortSignal }), TypeError);
  queue.send(new Uint8Array([1]));
  queue.send(new Uint8Array([2]));
  const stop = new AbortController();
  const reason = new Error("stopped");
  const seen: number[] = [];
  const timer = setTimeout(() => stop.abort(reason), 20);
  try {
    await assert.rejects(async () => {
      for await (const message of queue.messages({ signal: stop.signal })) seen.push(message[0]!);
    }, (error: unknown) => error === reason);
  } finally {
    clearTimeout(timer);
  }
  assert.deepEqual(seen, [1, 2]);
  // The aborted wait took nothing.
  queue.send(new Uint8Array([3]));
  assert.deepEqual([...queue.tryReceive() as Uint8Array], [3]);
});

test("the compiled C peer is removed when the suite is done", { skip: noC }, () => {
  cPeer!.remove();
  assert.equal(existsSync(dirname(cPeer!.path)), false);
});
