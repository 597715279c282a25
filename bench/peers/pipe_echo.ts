/**
 * Benchmark peer: echoes stdin to stdout, chunk by chunk.
 *
 * @module
 */
import process from "node:process";

process.stdin.on("data", (chunk: Uint8Array) => process.stdout.write(chunk));
