/**
 * Benchmark peer: writes `count` chunks of `size` bytes to stdout, as fast
 * as the pipe takes them.
 *
 * Usage: pipe_source.ts <count> <size>
 *
 * @module
 */
import process from "node:process";

const count = Number(process.argv[2]);
const chunk = new Uint8Array(Number(process.argv[3])).fill(1);
let i = 0;
function pump(): void {
  while (i < count) {
    i++;
    if (!process.stdout.write(chunk)) {
      process.stdout.once("drain", pump);
      return;
    }
  }
  process.stdout.end();
}
pump();
