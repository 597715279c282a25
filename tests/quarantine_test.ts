/**
 * close() with I/O still in flight on a view: the closed range is covered
 * with zero pages and held back (core/_quarantine.ts), so the I/O can't land
 * in, or read from, memory mapped afterwards. The races run in a child
 * process (tests/fixtures/quarantine_race.ts) so that a crash shows as a
 * signal or exit code; the bounds are checked here through the module's
 * counters and /proc/self/maps.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Mapping, pageSize, readProcMaps, SystemVSegment } from "../mod.ts";
import {
  heldAddressesForTesting,
  QUARANTINE_MAX_BYTES,
  QUARANTINE_MAX_RANGES,
  quarantined,
} from "../core/_quarantine.ts";
import { runtime } from "./helpers.ts";
import { RUNTIMES, startFixture } from "./fixtures/runtimes.ts";

const self = RUNTIMES.find((r) => r.name === runtime)!;

interface RaceResult {
  readonly trials: number;
  readonly corrupt: number;
  readonly failed: number;
}

// Which I/O APIs each runtime races against close(): [mode, api] (see the fixture).
type Case = readonly [mode: string, api: string];
const DENO_CASES: Case[] = ["read", "fifo", "write"].flatMap((mode) => [
  [mode, "deno"] as const,
  [mode, "node"] as const,
]);
const BUN_CASES: Case[] = [["read", "node"], ["fifo", "node"], ["write", "node"], ["write", "bun"]];
const NODE_CASES: Case[] = [["read", "node"], ["fifo", "node"], ["write", "node"]];
const CASES = runtime === "deno" ? DENO_CASES : runtime === "bun" ? BUN_CASES : NODE_CASES;

for (const [mode, api] of CASES) {
  test(`${mode} with ${api} I/O in flight at close(): 0 of 20 trials reach the next mapping`, async () => {
    // A long hang guard: 20 trials of 8 MiB of I/O on a loaded machine.
    const child = startFixture(self, "quarantine_race.ts", [mode, api, "20"], "\0none", 120_000);
    const exit = await child.exited;
    assert.equal(exit.signal, null, `the child died of ${exit.signal}: ${exit.stderr}`);
    assert.equal(exit.code, 0, exit.stderr);
    const line = exit.stdout.split("\n").find((l) => l.startsWith("result "));
    assert.ok(line !== undefined, `no result line: ${exit.stdout} ${exit.stderr}`);
    const result = JSON.parse(line.slice(7)) as RaceResult;
    assert.equal(result.trials, 20);
    assert.equal(result.corrupt, 0, `the I/O reached the new mapping: ${line}`);
    // The I/O itself completes normally (into or from zero pages), not with EFAULT.
    assert.equal(result.failed, 0, `I/O failed: ${line} ${exit.stderr}`);
  });
}

function mappedAt(address: number): string | undefined {
  return readProcMaps().find((entry) => entry.contains(address))?.line;
}

test("a mapping that handed out a view is held as private zero pages after close()", () => {
  const mapping = Mapping.anonymous(pageSize() * 2);
  mapping.view()[0] = 7;
  const address = mapping.unsafeAddress;
  const before = quarantined.total;
  mapping.close();
  assert.equal(quarantined.total, before + 1);
  assert.match(mappedAt(address) ?? "unmapped", / rw-p /, "the range is held, not shared memory");
});

test("a mapping that never handed out a view is unmapped at once, not held", () => {
  const mapping = Mapping.anonymous(pageSize() * 3);
  const before = quarantined.total;
  mapping.close();
  assert.equal(quarantined.total, before);
});

test("a held System V attachment is detached at once: nattch drops and the data stays", () => {
  const segment = SystemVSegment.create(4096);
  try {
    const attachment = segment.attach();
    attachment.view()[0] = 42;
    const before = quarantined.total;
    attachment.detach();
    assert.equal(quarantined.total, before + 1);
    assert.equal(segment.stat().nattch, 0);
    using again = segment.attach();
    assert.equal(again.view()[0], 42);
  } finally {
    segment.remove();
  }
});

test("the quarantine stays under its range cap over many closes, then empties by itself", async () => {
  const length = 16 * pageSize();
  const closed = new Set<number>();
  const early = quarantined.early;
  let releasedAndUnmapped = 0;
  for (let i = 0; i < 3 * QUARANTINE_MAX_RANGES; i++) {
    const mapping = Mapping.anonymous(length);
    mapping.view()[0] = 1;
    closed.add(mapping.unsafeAddress);
    const heldBefore = heldAddressesForTesting();
    const oldest = heldBefore[0];
    const earlyBefore = quarantined.early;
    mapping.close();
    assert.ok(quarantined.count <= QUARANTINE_MAX_RANGES, `${quarantined.count} ranges held`);
    assert.ok(quarantined.bytes <= QUARANTINE_MAX_BYTES, `${quarantined.bytes} bytes held`);
    if (quarantined.early > earlyBefore && oldest !== undefined) {
      // The cap gave the oldest ranges back (touching ones in one munmap): each is
      // unmapped now, not merely uncounted, and every range still held stays mapped.
      const heldNow = new Set(heldAddressesForTesting());
      assert.ok(!heldNow.has(oldest), "the oldest range left the list");
      const maps = readProcMaps();
      const mapped = (address: number) => maps.some((entry) => entry.contains(address));
      for (const address of heldBefore) {
        assert.equal(
          mapped(address),
          heldNow.has(address),
          `the range at 0x${address.toString(16)} is ${heldNow.has(address) ? "held" : "released"}`,
        );
      }
      releasedAndUnmapped++;
    }
  }
  assert.ok(releasedAndUnmapped > 0, "the cap released ranges while the loop ran");
  for (const address of heldAddressesForTesting()) {
    assert.notEqual(mappedAt(address), undefined, "a held range stays mapped (zero pages)");
  }
  assert.ok(quarantined.early > early, "the cap released the oldest ranges early");
  // Released by the timer without any further close(); a generous deadline guards a hang.
  const deadline = Date.now() + 30_000;
  while (quarantined.count > 0) {
    assert.ok(Date.now() < deadline, `still ${quarantined.count} ranges held after 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(quarantined.bytes, 0);
  const leftover = [...closed].filter((a) => mappedAt(a)?.includes(" rw-p 00000000 00:00 0"));
  assert.ok(leftover.length <= 16, `${leftover.length} ranges still mapped as zero pages`);
});

test("the byte cap releases an older big range early and holds the newest", () => {
  const big = Math.ceil((QUARANTINE_MAX_BYTES * 0.6) / pageSize()) * pageSize();
  const first = Mapping.anonymous(big, { noReserve: true, shared: false });
  first.view()[0] = 1;
  first.close();
  assert.ok(quarantined.bytes >= big);
  const early = quarantined.early;
  const second = Mapping.anonymous(big, { noReserve: true, shared: false });
  second.view()[0] = 1;
  second.close();
  assert.ok(quarantined.early > early, "the older big range went early");
  assert.ok(quarantined.bytes <= QUARANTINE_MAX_BYTES, `${quarantined.bytes} bytes held`);
  assert.ok(quarantined.count >= 1, "the newest range is held");
});

test("a held range does not keep the process alive: it exits with the range still held", async () => {
  const exit = await startFixture(self, "quarantine_exit.ts", [], "\0none", 60_000).exited;
  assert.equal(exit.code, 0, exit.stderr);
  assert.match(exit.stdout, /held at exit 1\b/);
});
