/**
 * Benchmark peer: the floor of the spinning channel ping-pong. Echoes
 * `count` messages from channel A (at byte 0 of the file) back on channel
 * B (at byte `half`), both laid out by `Channel.init`, through
 * {@linkcode BareChannel}: the channel's protocol without its checks.
 *
 * Usage: channel_bare_echo.ts <path> <half> <count>
 *
 * @module
 */
import process from "node:process";
import { Mapping } from "../../mod.ts";
import { BareChannel } from "./channel_bare.ts";
import { endPeer } from "./_end.ts";

const [path, halfText, countText] = process.argv.slice(2) as [string, string, string];
const half = Number(halfText);
using mapping = Mapping.file(path);
const capacity = mapping.view(Int32Array, 0, 2)[1]!;
const inbox = new BareChannel(mapping.view(Uint8Array, 0, half), capacity);
const outbox = new BareChannel(mapping.view(Uint8Array, half, half), capacity);
for (let i = 0; i < Number(countText); i++) outbox.send(inbox.receive());
endPeer();
