/**
 * Internal: C addresses and long-lived buffers in the form this runtime's
 * FFI takes fastest, for hot calls (ipc/'s lock, unlock, wait, post; the
 * stat, rlimit and name buffers of the shm cycle).
 *
 * Deno takes a 64-bit parameter ~3x faster as a BigInt than as a Number
 * (measured: ~21 ns against ~67 ns per call, pthread_mutex_trylock), and
 * ffi/deno_backend.ts passes a BigInt through unchanged; Bun takes a Number.
 * node:ffi takes nothing but a BigInt (ffi/node_backend.ts converts a Number
 * per call: ~70 ns more per sem_wait+sem_post pair, measured).
 * Converting once per object instead of once per call is the whole point.
 *
 * @module
 */
import { backend } from "./libc.ts";

/**
 * The address as the argument to pass for a `pointer` parameter: a BigInt on
 * Deno and Node (typed as number, which is what the symbol table declares).
 */
export function addressArgument(address: number): number {
  return backend.runtime === "bun" ? address : (BigInt(address) as unknown as number);
}

/**
 * A long-lived buffer as the argument for a `buffer` parameter: on Node its
 * address as a BigInt (node:ffi otherwise resolves a typed array's address
 * on every call, ~0.3 µs); elsewhere the view itself. The caller keeps
 * `view` alive for as long as it passes the result.
 */
export function bufferArgument(view: Uint8Array): Uint8Array {
  if (backend.runtime !== "node") return view;
  // Reading .buffer moves a small on-heap array's bytes off the heap for good, where they stay put.
  void view.buffer;
  return BigInt(backend.addressOf(view)) as unknown as Uint8Array;
}
