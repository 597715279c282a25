/**
 * Maps shared memory and prints this process's own /proc/self/maps lines for
 * it before mapping, while mapped, and after unmapping.
 *
 * Run: deno run --allow-ffi scripts/maps_demo.ts   or   bun scripts/maps_demo.ts
 *
 * @module
 */
import { Mapping, pageSize, readProcMaps } from "../mod.ts";

const runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
const length = 16 * pageSize();

function linesAt(address: number): string[] {
  return readProcMaps().filter((e) => e.contains(address)).map((e) => e.line);
}

console.log(`[${runtime}] mappings before: ${readProcMaps().length} lines in /proc/self/maps`);
const mapping = Mapping.anonymous(length);
const address = mapping.unsafeAddress;
const words = mapping.view(Uint32Array);
words[0] = 0xc0ffee;
console.log(`[${runtime}] mapped ${length} bytes at 0x${address.toString(16)}:`);
for (const line of linesAt(address)) console.log(`  ${line}`);
console.log(`[${runtime}] first word: 0x${words[0]!.toString(16)}`);
mapping.close();
const after = linesAt(address);
console.log(
  `[${runtime}] after close: ${
    after.length === 0 ? "range gone from /proc/self/maps" : after.join("; ")
  }; the old view now has length ${words.length}`,
);
