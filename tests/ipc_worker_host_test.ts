import { test } from "node:test";
import assert from "node:assert/strict";
import { Mapping } from "../mod.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { blockInWorker } from "../sync/_futex_worker.ts";
import { poolsAvailable, timespecLayout } from "../sync/_worker_pool.ts";
import { skipIf, tick } from "./helpers.ts";

const C = platform.constants;
const noPool = skipIf(!poolsAvailable() || C.SYS_futex === -1, "no Worker pool (Deno) or no futex");

test("timespecLayout: this platform's struct timespec", () => {
  const layout = timespecLayout();
  assert.equal(layout.size, platform.structs.timespec.size);
  assert.deepEqual(layout.sec, platform.structs.timespec.fields["tv_sec"]);
  assert.deepEqual(layout.nsec, platform.structs.timespec.fields["tv_nsec"]);
  assert.ok(layout.sec.offset !== layout.nsec.offset);
});

// WorkerHost.timespec: a Worker's timed futex wait blocks for its timeout (a
// zeroed or garbled timespec returns at once with ETIMEDOUT or EINVAL), so a
// wake sent while it waits ends it as "ok".
test("a Worker's timed futex wait lasts until woken (the host's timespec holds the timeout)", {
  skip: noPool,
  timeout: 60_000,
}, async () => {
  using mapping = Mapping.anonymous(4096);
  const word = mapping.view(Int32Array, 0, 1);
  let settled = false;
  const waiting = blockInWorker(mapping.unsafeAddress, 0, performance.now() + 50_000).finally(
    () => settled = true,
  );
  // Wake until it returns: a wake sent before the Worker reached the kernel finds nobody.
  while (!settled) {
    unsafeLibc.syscall(C.SYS_futex, mapping.unsafeAddress, C.FUTEX_WAKE, 1, 0, 0, 0);
    await tick(5);
  }
  assert.equal(await waiting, "ok");
  assert.equal(word[0], 0);
});
