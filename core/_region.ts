/**
 * A mapped range and the views over it: the one place that decides when
 * memory may go away. Every ArrayBuffer handed out is tracked; releasing the
 * range first detaches them, so a stale view has length 0 instead of
 * pointing at unmapped memory.
 *
 * A buffer can escape tracking: `buffer.transfer()`, `structuredClone` or
 * `postMessage` with a transfer list move the memory to an ArrayBuffer shmkit
 * never saw, and detach the one it did. So when a tracked buffer is found
 * detached by someone else, the range is not unmapped but replaced by
 * anonymous zero pages (a "tombstone", as libwayland does): the escaped
 * alias reads zeros and its writes land nowhere that matters, and the
 * process lives. The tombstone costs address space, not memory.
 *
 * A region collected by the garbage collector without close() is tombstoned
 * too, since an escape after the last check can't be ruled out then.
 *
 * @module
 */
import { check, ErrnoError } from "./errors.ts";
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { backend } from "../ffi/libc.ts";
import { typeName } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";
import { checkInteger } from "./_validate.ts";
import { quarantine } from "./_quarantine.ts";
import { type GuardedRange, guardRange } from "./_sigbus_guard.ts";

const C = platform.constants;

/** How a range is given back for real. */
export type ReleaseKind = "munmap" | "shmdt";

interface RegionState {
  readonly address: number;
  readonly mappedLength: number;
  readonly kind: ReleaseKind;
  released: boolean;
  /** The SIGBUS guard's entry for a range mapped from a file or fd. */
  readonly guard: GuardedRange | undefined;
}

/** Ranges tombstoned so far (for diagnostics and tests). */
export const tombstones: { count: number; bytes: number } = { count: 0, bytes: 0 };

function tombstone(state: RegionState): void {
  const result = unsafeLibc.mmap(
    state.address,
    state.mappedLength,
    C.PROT_READ | C.PROT_WRITE,
    C.MAP_PRIVATE | C.MAP_ANONYMOUS | C.MAP_FIXED | C.MAP_NORESERVE,
    -1,
    0,
  );
  if (result === -1) {
    // Nothing safe is left to do: unmapping would turn the alias into a crash.
    throw new ErrnoError("mmap", errno(), {
      hint: "could not replace released memory with zero pages",
    });
  }
  tombstones.count++;
  tombstones.bytes += state.mappedLength;
}

function releaseForReal(state: RegionState): void {
  const result = state.kind === "munmap"
    ? unsafeLibc.munmap(state.address, state.mappedLength)
    : unsafeLibc.shmdt(state.address);
  check(result, state.kind);
}

/** A region's state as its owner's own finalizer holds it (see {@linkcode collectRegion}). */
export type CollectableRegion = { readonly __brand: "CollectableRegion" };

/**
 * Internal: what the finalizer does for a region whose owner was collected
 * without release: the range is tombstoned, not unmapped (an escaped alias
 * may remain). For owners that keep one finalizer of their own (FdMemory).
 */
export function collectRegion(token: CollectableRegion): void {
  const state = token as unknown as RegionState;
  if (state.released) return;
  state.released = true;
  try {
    state.guard?.release();
    tombstone(state);
  } catch {
    // A finalizer has nobody to report to; the range stays mapped.
  }
}

const collected = new FinalizationRegistry<RegionState>((state) =>
  collectRegion(state as unknown as CollectableRegion)
);

/** Returns its argument from the constructor, so a subclass can stamp private fields on it. */
class Stamped {
  constructor(target: object) {
    return target;
  }
}

/**
 * Ties each handed-out buffer to its region (and the region to its owner),
 * so the mapping lives as long as any view does, and a buffer leads back to
 * its region. A private field stamped on the buffer: no WeakMap entry (an
 * ephemeron the collector must trace) and nothing a caller can reach.
 */
class BufferTag extends Stamped {
  readonly #region: Region;

  private constructor(buffer: ArrayBuffer, region: Region) {
    super(buffer);
    this.#region = region;
  }

  static stamp(buffer: ArrayBuffer, region: Region): void {
    new BufferTag(buffer, region);
  }

  static regionOf(buffer: object): Region | undefined {
    return #region in buffer ? (buffer as unknown as BufferTag).#region : undefined;
  }
}

/** A TypedArray constructor accepted by `view()`. */
export type TypedArrayConstructor =
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | Uint8ClampedArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor;

const TYPED_ARRAYS: ReadonlySet<unknown> = new Set<unknown>([
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
]);

/**
 * Internal: calls `listener` just before the memory under `buffer` is
 * released, while it is still mapped (an async wait wakes its blocked
 * thread then). Returns the function that removes it; does nothing for a
 * buffer no region handed out.
 */
export function beforeRelease(buffer: ArrayBufferLike, listener: () => void): () => void {
  const listeners = BufferTag.regionOf(buffer)?.releaseListeners;
  if (listeners === undefined) return () => {};
  listeners.add(listener);
  return () => void listeners.delete(listener);
}

/** Internal: whether a region handed `buffer` out (mapped memory, not the JS heap). */
export function isRegionBuffer(buffer: ArrayBufferLike): boolean {
  return BufferTag.regionOf(buffer) !== undefined;
}

/** Internal: one mapped range, its tracked buffers and its release. */
export class Region {
  readonly address: number;
  readonly length: number;
  readonly #state: RegionState;
  // Held so that a buffer (which holds this region) keeps the owner alive.
  readonly #owner: object;
  readonly #registered: boolean;
  // The one live buffer: a new one is made only when this one was detached by
  // someone else (and #escaped set then), so no older one needs keeping.
  #buffer: ArrayBuffer | undefined;
  #escaped = false;
  #handedOut = false; // whether any buffer (and so a pointer for runtime I/O) went out
  // Made on first use: most regions never get a listener, and a Set per create shows in GC time.
  #listeners: Set<() => void> | undefined;

  /** Called once, just before release (see beforeRelease). */
  get releaseListeners(): Set<() => void> {
    return this.#listeners ??= new Set();
  }

  constructor(
    owner: object,
    address: number,
    length: number,
    mappedLength: number,
    kind: ReleaseKind,
    fileBacked = false,
    ownerFinalizes = false,
  ) {
    this.address = address;
    this.length = length;
    this.#owner = owner;
    // A file, shm object or memfd can shrink under us: guard it against SIGBUS.
    const guard = fileBacked
      ? guardRange(address, mappedLength, C.PROT_READ | C.PROT_WRITE)
      : undefined;
    this.#state = { address, mappedLength, kind, released: false, guard };
    // An owner with a finalizer of its own calls collectRegion from it: one registration, not two.
    this.#registered = !ownerFinalizes;
    if (this.#registered) collected.register(owner, this.#state, this);
  }

  /** The state to pass to {@linkcode collectRegion} from the owner's finalizer. */
  get collectable(): CollectableRegion {
    return this.#state as unknown as CollectableRegion;
  }

  get released(): boolean {
    return this.#state.released;
  }

  get mappedLength(): number {
    return this.#state.mappedLength;
  }

  /** Whether the SIGBUS guard absorbed a touch past the end of the object here. */
  get truncated(): boolean {
    return this.#state.guard?.hit ?? false;
  }

  /** The tracked buffer over the whole range, made anew if the last one escaped. */
  buffer(): ArrayBuffer {
    let current = this.#buffer;
    if (current !== undefined && current.byteLength === 0) {
      this.#escaped = true;
      current = undefined;
    }
    if (current === undefined) {
      current = backend.arrayBuffer(this.address, this.length);
      this.#handedOut = true;
      BufferTag.stamp(current, this);
      this.#buffer = current;
    }
    return current;
  }

  /**
   * Detaches every tracked buffer. Returns false when one had already been
   * detached by someone else: an alias may have escaped.
   */
  detachAll(): boolean {
    const buffer = this.#buffer;
    if (buffer !== undefined) {
      if (buffer.byteLength === 0) this.#escaped = true;
      else buffer.transfer(0);
      this.#buffer = undefined;
    }
    return !this.#escaped;
  }

  /** Detaches the views and gives the range back. Idempotent. */
  release(): void {
    if (this.#state.released) return;
    const listeners = this.#listeners;
    if (listeners !== undefined && listeners.size > 0) {
      for (const listener of [...listeners]) {
        try {
          listener();
        } catch {
          // A listener's failure must not keep the memory mapped.
        }
      }
      listeners.clear();
    }
    const clean = this.detachAll();
    this.#state.released = true;
    if (this.#registered) collected.unregister(this);
    this.#state.guard?.release();
    if (!clean) tombstone(this.#state);
    // I/O may still be in flight on a view: see _quarantine.ts.
    else if (this.#handedOut) quarantine(this.#state.address, this.#state.mappedLength);
    else releaseForReal(this.#state);
  }
}

/**
 * Builds a typed view over a region's buffer, with bounds and alignment
 * checked.
 */
export function typedView<C extends TypedArrayConstructor>(
  buffer: ArrayBuffer,
  type: C,
  byteOffset: unknown,
  length: unknown,
): InstanceType<C> {
  if (!TYPED_ARRAYS.has(type)) {
    throw new TypeError(
      `Cannot create a view: expected a TypedArray constructor, got ${typeName(type)}`,
    );
  }
  const total = buffer.byteLength;
  const size = type.BYTES_PER_ELEMENT;
  const offset = checkInteger(byteOffset, "byteOffset", 0, total);
  if (offset % size !== 0) {
    throw new RangeError(
      `Cannot create a ${type.name} at byteOffset ${offset}: it must be a multiple of ${size}`,
    );
  }
  const count = length === undefined
    ? Math.floor((total - offset) / size)
    : checkInteger(length, "length", 0, Math.floor((total - offset) / size));
  return new type(buffer, offset, count) as InstanceType<C>;
}

/** Builds a DataView over a region's buffer, with bounds checked. */
export function dataViewOf(
  buffer: ArrayBuffer,
  byteOffset: unknown,
  byteLength: unknown,
): DataView {
  const total = buffer.byteLength;
  const offset = checkInteger(byteOffset, "byteOffset", 0, total);
  const count = byteLength === undefined
    ? total - offset
    : checkInteger(byteLength, "byteLength", 0, total - offset);
  return new DataView(buffer, offset, count);
}
