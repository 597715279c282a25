/**
 * Benchmark peer: connects to a Unix socket and echoes what it reads.
 *
 * Usage: socket_echo.ts <path>
 *
 * @module
 */
import { createConnection } from "node:net";
import process from "node:process";

const socket = createConnection({ path: process.argv[2]! });
socket.setNoDelay?.(true);
socket.on("data", (chunk: Uint8Array) => socket.write(chunk));
socket.on("end", () => socket.end());
