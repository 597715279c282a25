import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { ClosedError, Mapping } from "../mod.ts";
import { HANDED_OFF, LOAN_POOL_MAGIC, LoanPool, MessagingError, Queue } from "../messaging/mod.ts";
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

const corrupt = (word: string) => (e: unknown): boolean =>
  e instanceof MessagingError && e.code === "CORRUPTED" && e.word === word;

// Expected values worked out by hand from docs/messaging.md.
test("init writes the documented header; loans take owner words; release frees them", () => {
  const shape = { blocks: 3, blockBytes: 128 };
  assert.equal(LoanPool.byteLengthFor(shape), 128 + 3 * 128, "owners end at 76: data at 128");
  assert.equal(LoanPool.byteLengthFor({ blocks: 16, blockBytes: 64 }), 128 + 16 * 64);
  assert.equal(LoanPool.byteLengthFor({ blocks: 17, blockBytes: 64 }), 192 + 17 * 64);
  using mapping = Mapping.anonymous(4096);
  const pool = LoanPool.init(mapping.view(), shape);
  const words = mapping.view(Int32Array);
  assert.equal(LOAN_POOL_MAGIC, 0x4c4e5031);
  assert.deepEqual([...words.subarray(0, 4)], [0x4c4e5031, 3, 128, 128]);
  const loans = [pool.tryLoan()!, pool.tryLoan()!, pool.tryLoan()!];
  assert.deepEqual(loans.map((l) => l.offset), [128, 256, 384]);
  assert.equal(pool.tryLoan(), null, "all three are out");
  assert.equal(pool.free, 0);
  const me = words[16]!;
  assert.ok(me > 0 && (me & 0x3fffff) > 0, "owner word: this process's id");
  assert.deepEqual([...words.subarray(16, 19)], [me, me, me]);
  loans[1]!.bytes.fill(5);
  assert.equal(mapping.view(Uint8Array)[256 + 127], 5, "the block, in place");
  loans[1]!.release();
  assert.equal(words[17], 0);
  assert.throws(() => loans[1]!.bytes, ClosedError);
  assert.throws(() => loans[1]!.release(), ClosedError);
  const again = pool.tryLoan()!;
  assert.equal(again.offset, 256);
  pool.close();
  assert.throws(() => pool.tryLoan(), ClosedError);
  again.release();
  assert.equal(words[17], 0, "a loan outlives its pool handle's close()");
  assert.throws(() => LoanPool.byteLengthFor({ blocks: 1, blockBytes: 100 }), RangeError);
  assert.throws(() => LoanPool.init(mapping.view(Uint8Array, 0, 200), shape), RangeError);
});

test("handOff marks the block (bit 30), accept takes it over, a wrong token is refused", () => {
  const shape = { blocks: 2, blockBytes: 64 };
  using mapping = Mapping.anonymous(LoanPool.byteLengthFor(shape));
  const words = mapping.view(Int32Array);
  const pool = LoanPool.init(mapping.view(), shape);
  const other = LoanPool.from(mapping.view());
  const loan = pool.tryLoan()!;
  new DataView(loan.bytes.buffer, loan.bytes.byteOffset).setFloat64(0, Math.E, true);
  const token = loan.handOff();
  assert.equal(token, 128);
  assert.equal(words[16]! & HANDED_OFF, HANDED_OFF);
  assert.throws(() => loan.bytes, ClosedError, "the sender's loan is over");
  const taken = other.accept(token);
  assert.equal(
    new DataView(taken.bytes.buffer, taken.bytes.byteOffset).getFloat64(0, true),
    Math.E,
  );
  assert.equal(words[16]! & HANDED_OFF, 0);
  const notHanded = (e: unknown): boolean =>
    e instanceof MessagingError && e.code === "NOT_HANDED_OFF";
  assert.throws(() => other.accept(token), notHanded, "accepted once only");
  assert.throws(() => other.accept(192), notHanded, "a free block");
  assert.throws(() => other.accept(130), RangeError);
  assert.throws(() => other.accept(256), RangeError);
  assert.throws(() => other.accept(-1), RangeError);
  assert.throws(() => other.accept("128" as unknown as number), TypeError);
  taken.release();
  assert.equal(pool.free, 2);
});

test(
  "a dead holder's blocks are reclaimed; its handed-off block only on request",
  PEER_TEST,
  async () => {
    const shape = { blocks: 4, blockBytes: 4096 };
    const file = sharedFile(LoanPool.byteLengthFor(shape));
    try {
      using mapping = Mapping.file(file.path);
      const pool = LoanPool.init(mapping.view(), shape, { checkIntervalMs: 5 });
      const mine = pool.tryLoan()!;
      const owners = mapping.view(Int32Array, 64, 4);
      const holder = startPeer(other, FIXTURE, ["loan-hold", file.path, 3, 1]);
      // Its loans, and the hand-off after them: killed before it, all three are plain loans.
      await until(
        () => pool.free === 0 && owners.some((id) => (id & HANDED_OFF) !== 0),
        60_000,
        "the peer's loans and hand-off",
      );
      assert.equal(pool.tryLoan(), null, "a live holder keeps its blocks");
      holder.kill("SIGKILL");
      await holder.done;
      const reclaimedLoan = await pool.loanAsync(60_000);
      assert.notEqual(reclaimedLoan, null, "a dead holder's block is loaned again");
      assert.equal(pool.reclaimed, 2, "its two plain loans, not the handed-off one");
      assert.equal(pool.free, 1, "the other reclaimed block");
      assert.equal(pool.reclaim(), 0);
      assert.equal(pool.reclaim({ handedOff: true }), 1, "the handed-off block, on request");
      assert.equal(pool.free, 2);
      mine.release();
      reclaimedLoan!.release();
      assert.equal(pool.free, 4);
    } finally {
      file.remove();
    }
  },
);

test(
  "1 MiB messages handed off through a queue to another process, read in place",
  PEER_TEST,
  async () => {
    const shape = { blocks: 4, blockBytes: 1 << 20 };
    const poolFile = sharedFile(LoanPool.byteLengthFor(shape));
    const queueShape = { slots: 4, maxMessage: 16 };
    const queueFile = sharedFile(Queue.byteLengthFor(queueShape));
    try {
      using poolMapping = Mapping.file(poolFile.path);
      using queueMapping = Mapping.file(queueFile.path);
      const pool = LoanPool.init(poolMapping.view(), shape);
      const queue = Queue.init(queueMapping.view(), queueShape);
      const count = 20;
      const peer = startPeer(self, FIXTURE, ["loan-accept", poolFile.path, queueFile.path, count]);
      for (let n = 0; n < count; n++) {
        const loan = (await pool.loanAsync(60_000))!;
        const bytes = loan.bytes;
        const seed = n * 11;
        for (let k = 0; k < bytes.length; k += 4093) bytes[k] = (seed + k) & 0xff;
        const token = loan.handOff();
        assert.equal(
          await queue.sendAsync(new Uint32Array([token, bytes.length, seed]), 60_000),
          true,
        );
      }
      assert.equal((await expectSuccess(peer, "acceptor")).trim(), `ok ${count}`);
      assert.equal(pool.free, 4, "every block came back");
    } finally {
      poolFile.remove();
      queueFile.remove();
    }
  },
);

test("garbage owner words and headers throw CORRUPTED naming them", () => {
  const shape = { blocks: 2, blockBytes: 64 };
  using mapping = Mapping.anonymous(LoanPool.byteLengthFor(shape));
  const words = mapping.view(Int32Array);
  const pool = LoanPool.init(mapping.view(), shape);
  words[17] = -7;
  assert.throws(() => pool.tryLoan() && pool.tryLoan(), corrupt("owner of block 1"));
  assert.throws(() => pool.tryLoan(), corrupt("owner of block 1"), "refuses further use");
  words[3] = 64;
  assert.throws(() => LoanPool.from(mapping.view()), corrupt("dataOffset"));
  words[2] = 65;
  assert.throws(() => LoanPool.from(mapping.view()), corrupt("blockBytes"));
  words[0] = 1;
  assert.throws(() => LoanPool.from(mapping.view()), corrupt("magic"));
});

test("AbortSignal ends loanAsync on an empty pool", async () => {
  const shape = { blocks: 1, blockBytes: 64 };
  using mapping = Mapping.anonymous(LoanPool.byteLengthFor(shape));
  const pool = LoanPool.init(mapping.view(), shape);
  const held = pool.tryLoan()!;
  const controller = new AbortController();
  const reason = new Error("stop");
  const waiting = pool.loanAsync(undefined, { signal: controller.signal });
  setTimeout(() => controller.abort(reason), 20);
  await assert.rejects(waiting, (e) => e === reason);
  held.release();
  assert.equal(pool.free, 1, "the aborted wait took nothing");
});

/** Fills `bytes` as the C peer does for message n: byte k is (n * 7 + k) & 0xff. */
function fillFor(bytes: Uint8Array, n: number): void {
  for (let k = 0; k < bytes.length; k++) bytes[k] = (n * 7 + k) & 0xff;
}

/** Whether `bytes` hold message n (see fillFor). */
function holds(bytes: Uint8Array, n: number): boolean {
  for (let k = 0; k < bytes.length; k++) if (bytes[k] !== ((n * 7 + k) & 0xff)) return false;
  return true;
}

const cPeer = have("cc") ? compileFixture("messaging_loan_peer") : undefined;
const noC = cPeer === undefined ? skipReason("no C compiler (cc)") : false;

test(
  "C peer: blocks a C process hands off are accepted here, and a block handed off here is accepted in C",
  {
    ...PEER_TEST,
    skip: noC,
  },
  async () => {
    const shape = { blocks: 4, blockBytes: 4096 };
    const file = sharedFile(LoanPool.byteLengthFor(shape));
    try {
      using mapping = Mapping.file(file.path);
      const pool = LoanPool.init(mapping.view(), shape);
      const out = await expectSuccess(
        startProgram(cPeer!.path, ["lend", file.path, "3"]),
        "C lender",
      );
      const lines = out.trim().split("\n");
      assert.equal(lines.at(-1), "done");
      assert.equal(pool.free, 1, "3 blocks handed off by a process that has exited stay taken");
      for (const line of lines.slice(0, -1)) {
        const [word, token, n] = line.split(" ");
        assert.equal(word, "token", line);
        const loan = pool.accept(Number(token));
        assert.ok(holds(loan.bytes, Number(n)), `block of message ${n} intact`);
        loan.release();
      }
      assert.equal(pool.free, 4);
      assert.equal(pool.reclaimed, 0);

      const loan = pool.tryLoan()!;
      fillFor(loan.bytes, 5);
      const token = loan.handOff();
      const taken = startProgram(cPeer!.path, ["take", file.path, String(token), "5"]);
      assert.equal((await expectSuccess(taken, "C taker")).trim(), "ok");
      assert.equal(pool.free, 4, "released by the C process");
      assert.throws(
        () => pool.accept(token),
        (e: unknown) => e instanceof MessagingError && e.code === "NOT_HANDED_OFF",
      );
    } finally {
      file.remove();
    }
  },
);

test("C peer: a C holder SIGKILLed before its release: its block is reclaimed when none is free", {
  ...PEER_TEST,
  skip: noC,
}, async () => {
  const shape = { blocks: 2, blockBytes: 64 };
  const file = sharedFile(LoanPool.byteLengthFor(shape));
  try {
    using mapping = Mapping.file(file.path);
    const pool = LoanPool.init(mapping.view(), shape, { checkIntervalMs: 5 });
    const holder = startProgram(cPeer!.path, ["hold", file.path]);
    await until(() => pool.free === 1, 60_000, "the C holder's loan");
    const mine = pool.tryLoan()!;
    assert.equal(pool.tryLoan(), null, "none free while the holder lives");
    holder.kill("SIGKILL");
    assert.equal((await holder.done).signal, "SIGKILL");
    const reclaimed = pool.loan(60_000);
    assert.ok(reclaimed !== null, "the dead holder's block");
    assert.equal(pool.reclaimed, 1);
    assert.notEqual(reclaimed.index, mine.index);
    reclaimed.release();
    mine.release();
    assert.equal(pool.free, 2);
  } finally {
    file.remove();
  }
});

test("the compiled C peer is removed when the suite is done", { skip: noC }, () => {
  cPeer!.remove();
  assert.equal(existsSync(dirname(cPeer!.path)), false);
});
