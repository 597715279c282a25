/**
 * Internal: C addresses and long-lived buffers in the form this runtime's
 * FFI takes fastest, for hot calls (ipc/'s lock, unlock, wait, post; the
 * stat, rlimit and name buffers of the shm cycle; the futex words of sync/
 * and messaging/).
 *
 * Deno takes a 64-bit parameter ~3x faster as a BigInt than as a Number
 * (measured: ~21 ns against ~67 ns per call, pthread_mutex_trylock), and
 * ffi/deno_backend.ts passes a BigInt through unchanged; Bun takes a Number.
 * node:ffi takes nothing but a BigInt (ffi/node_backend.ts converts a Number
 * per call: ~70 ns more per sem_wait+sem_post pair, measured), and resolves
 * a typed array's address on every call (~55 ns of a futex call, ~0.3 µs of
 * a stat). Converting once per object instead of once per call is the whole
 * point.
 *
 * @module
 */
import { backend } from "./libc.ts";

const NODE = backend.runtime === "node";

/**
 * The address as the argument to pass for a `pointer` parameter: a BigInt on
 * Deno and Node (typed as number, which is what the symbol table declares).
 */
export function addressArgument(address: number): number {
  return backend.runtime === "bun" ? address : (BigInt(address) as unknown as number);
}

// The one cache of buffer addresses (Node): long-lived view -> its first
// byte's address. Only registered views: an insert per short-lived view cost
// ~700 ns, a lookup (hit or miss) ~10-25 ns.
const addresses = new WeakMap<ArrayBufferView, bigint>();

/**
 * Registers a long-lived view whose address calls reuse, and returns the
 * argument for a `buffer` parameter: on Node its address as a BigInt;
 * elsewhere the view itself. Callers either keep the result and pass it, or
 * pass the view through {@linkcode viewArgument} per call. The view must
 * stay over the same memory, which a typed array does until detached; the
 * caller keeps it alive for as long as it passes the result. A detached
 * view is not registered.
 */
export function bufferArgument<T extends ArrayBufferView>(view: T): T {
  if (!NODE || view.byteLength === 0) return view;
  let address = addresses.get(view);
  if (address === undefined) {
    // Reading .buffer moves a small on-heap array's bytes off the heap for good, where they stay put.
    void view.buffer;
    address = BigInt(backend.addressOf(view));
    addresses.set(view, address);
  }
  return address as unknown as T;
}

/**
 * The argument to pass for `view` in a hot call: on Node the cached address
 * of a view registered with {@linkcode bufferArgument} while it is attached;
 * otherwise the view itself (a detached view then fails the call as it would
 * without the cache).
 */
export function viewArgument<T extends ArrayBufferView>(view: T): T {
  if (!NODE || view.byteLength === 0) return view;
  return (addresses.get(view) ?? view) as unknown as T;
}
