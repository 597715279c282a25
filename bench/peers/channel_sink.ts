/**
 * Benchmark peer: receives `count` messages from the channel at byte 64 of
 * the file, reading the first and last byte of each in place, then stores
 * 1 in the word at byte 0 and wakes it. Stores 1 in the word at byte 4 when
 * ready.
 *
 * Usage: channel_sink.ts <path> <count> [spinMs (default 1)] [receive|iterate|bare|await]
 *
 * `iterate` receives with `for await` instead of a `receive()` loop;
 * `bare` with a `for await` over a bare iterator whose `next()` is
 * `Promise.resolve({ done: false, value: channel.receive() })` (no checks,
 * no signal, no end): the most any async iterator over `receive()` can
 * reach; `await` with a `receive()` loop that awaits a resolved promise
 * (wrapping the message, as an iterator result does) per message, which is
 * less than a `for await` does.
 *
 * @module
 */
import process from "node:process";
import { Channel, Mapping, notify } from "../../mod.ts";
import { endPeer } from "./_end.ts";

const [path, countText] = process.argv.slice(2) as [string, string];
const count = Number(countText);
using mapping = Mapping.file(path);
const words = mapping.view(Int32Array);
const channel = Channel.from(mapping.view(Uint8Array, 64), {
  spinMs: Number(process.argv[4] ?? 1),
});
Atomics.store(words, 1, 1);
notify(words, 1);
let sum = 0;
if (process.argv[5] === "iterate") {
  let i = 0;
  for await (const message of channel) {
    if (message.length > 0) sum += message[0]! + message[message.length - 1]!;
    if (++i === count) break;
  }
} else if (process.argv[5] === "bare") {
  const bare = {
    [Symbol.asyncIterator]: () => ({
      next: () => Promise.resolve({ done: false as const, value: channel.receive() as Uint8Array }),
    }),
  };
  let i = 0;
  for await (const message of bare) {
    if (message.length > 0) sum += message[0]! + message[message.length - 1]!;
    if (++i === count) break;
  }
} else if (process.argv[5] === "await") {
  for (let i = 0; i < count; i++) {
    const message = (await Promise.resolve({ value: channel.receive() as Uint8Array })).value;
    if (message.length > 0) sum += message[0]! + message[message.length - 1]!;
  }
} else {
  for (let i = 0; i < count; i++) {
    const message = channel.receive() as Uint8Array;
    if (message.length > 0) sum += message[0]! + message[message.length - 1]!;
  }
}
channel.release();
Atomics.store(words, 0, 1);
notify(words, 0);
if (sum < 0) console.log(sum);
endPeer();
