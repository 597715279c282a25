/**
 * Benchmark peer: echoes every message of channel A (at byte 0 of the
 * file) back on channel B (at byte `half`), `count` times.
 *
 * Usage: channel_echo.ts <path> <half> <count> <spin|sleep|async>
 *
 * @module
 */
import process from "node:process";
import { Channel, type ChannelOptions, Mapping, waitAsync } from "../../mod.ts";
import { endPeer } from "./_end.ts";

const [path, halfText, countText, mode] = process.argv.slice(2) as [string, string, string, string];
const half = Number(halfText);
const options: ChannelOptions = mode === "spin"
  ? { spinMs: Infinity }
  : mode === "sleep"
  ? { spinMs: 0 }
  : {};

// Start the thread/Worker an async wait blocks on now, not in a measured batch.
if (mode === "async") {
  using scratch = Mapping.anonymous(4096);
  await waitAsync(scratch.view(Int32Array), 0, 0, 1, { pollMs: 0 });
}
using mapping = Mapping.file(path);
const inbox = Channel.from(mapping.view(Uint8Array, 0, half), options);
const outbox = Channel.from(mapping.view(Uint8Array, half, half), options);
for (let i = 0; i < Number(countText); i++) {
  const message = mode === "async" ? await inbox.receiveAsync() : inbox.receive();
  if (!(message instanceof Uint8Array)) throw new Error("no message");
  if (mode === "async") await outbox.sendAsync(message);
  else outbox.send(message);
}
endPeer();
