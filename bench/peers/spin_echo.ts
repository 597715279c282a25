/**
 * Benchmark peer: the bare lower bound of a spinning ping-pong in this
 * runtime. For i = 1..count, spins (Atomics.load) until word 0 is i, then
 * stores i in word 32. No futex, no checks: what two JS processes cost
 * over the same kind of memory the channel uses.
 *
 * Usage: spin_echo.ts <path> <count>
 *
 * @module
 */
import process from "node:process";
import { Mapping } from "../../mod.ts";
import { endPeer } from "./_end.ts";

const [path, countText] = process.argv.slice(2) as [string, string];
using mapping = Mapping.file(path);
const words = mapping.view(Int32Array);
const count = Number(countText);
for (let i = 1; i <= count; i++) {
  while (Atomics.load(words, 0) !== i) { /* spin */ }
  Atomics.store(words, 32, i);
}
endPeer();
