/**
 * Benchmark peer: for i = 1..count, waits (futex) until word 0 is i, then
 * stores i in word 32 and wakes it.
 *
 * Usage: futex_echo.ts <path> <count>
 *
 * @module
 */
import process from "node:process";
import { Mapping, notify, wait } from "../../mod.ts";
import { endPeer } from "./_end.ts";

const [path, countText] = process.argv.slice(2) as [string, string];
using mapping = Mapping.file(path);
const words = mapping.view(Int32Array);
for (let i = 1; i <= Number(countText); i++) {
  for (let seen = Atomics.load(words, 0); seen !== i; seen = Atomics.load(words, 0)) {
    wait(words, 0, seen, 60_000);
  }
  Atomics.store(words, 32, i);
  notify(words, 32, 1);
}
endPeer();
