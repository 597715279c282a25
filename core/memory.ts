/**
 * The base of every object that owns mapped memory: views, page size, and the
 * closed-object error.
 *
 * @module
 */
import { ClosedError } from "./errors.ts";
import { unsafeLibc } from "../ffi/libc.ts";
import { platform } from "../platform/mod.ts";
import { dataViewOf, type Region, type TypedArrayConstructor, typedView } from "./_region.ts";

// The region behind each object is a private field (no public or protected
// member exposes the internal Region type), reached through these two, which
// the class sets up: a field, not a WeakMap entry per object (GC work per create).
let setField: (owner: MappedMemory, region: Region | undefined) => void;
let getField: (owner: MappedMemory) => Region | undefined;

/** Internal: sets (or clears) the region an object's views come from. */
export function setRegion(owner: MappedMemory, region: Region | undefined): void {
  setField(owner, region);
}

/** Internal: the region of an object, or undefined once closed. */
export function regionOf(owner: MappedMemory): Region | undefined {
  const region = getField(owner);
  return region === undefined || region.released ? undefined : region;
}

export type { TypedArrayConstructor } from "./_region.ts";

let cachedPageSize = 0;

/**
 * The system page size, from `sysconf(_SC_PAGESIZE)`.
 *
 * @example
 * ```ts
 * import { pageSize } from "@shmkit/shmkit";
 * console.log(pageSize()); // 4096 on x86_64 Linux
 * ```
 */
export function pageSize(): number {
  if (cachedPageSize === 0) {
    cachedPageSize = unsafeLibc.sysconf(platform.constants._SC_PAGESIZE);
  }
  return cachedPageSize;
}

/** Rounds a length up to a whole number of pages. */
export function roundUpToPage(length: number): number {
  const page = pageSize();
  return Math.ceil(length / page) * page;
}

/**
 * Memory this process has mapped, seen through views. Views are zero-copy;
 * every view is detached (length 0) once the memory is closed, so a stale
 * view never touches unmapped memory.
 */
export abstract class MappedMemory implements Disposable {
  /** What this object is called in error messages, e.g. "mapping". */
  protected abstract get kind(): string;

  #region: Region | undefined = undefined;

  static {
    setField = (owner, region) => {
      owner.#region = region;
    };
    getField = (owner) => owner.#region;
  }

  /** Throws when views may not be handed out now (e.g. the memory is not writable). */
  protected checkViewable(): void {}

  #viewable(): Region {
    const region = regionOf(this);
    if (region === undefined) throw new ClosedError("create a view", this.kind);
    this.checkViewable();
    return region;
  }

  /** Whether the memory has been closed (unmapped or detached). */
  get closed(): boolean {
    return regionOf(this) === undefined;
  }

  /**
   * Whether a touch past the end of the underlying file or object was
   * absorbed: someone shrank it while it was mapped here, and the pages past
   * its new end now read as zeros in this process (writes to them are lost).
   * Always false for anonymous memory, once closed, and where the SIGBUS
   * guard is unavailable (then such a touch kills the process).
   */
  get truncated(): boolean {
    return regionOf(this)?.truncated ?? false;
  }

  /** The usable length in bytes (0 once closed). */
  get byteLength(): number {
    return regionOf(this)?.length ?? 0;
  }

  /**
   * UNSAFE: the address of the first byte. Memory at this address goes away
   * on close; nothing protects a raw pointer.
   *
   * @throws {ClosedError} When the memory is closed.
   */
  get unsafeAddress(): number {
    const region = regionOf(this);
    if (region === undefined) throw new ClosedError("get the address", this.kind);
    return region.address;
  }

  /**
   * A zero-copy view of the memory: a Uint8Array by default, or any
   * TypedArray type. The view is detached when the memory is closed.
   *
   * @param type A TypedArray constructor (default Uint8Array).
   * @param byteOffset Where the view starts; a multiple of the element size.
   * @param length Number of elements (default: as many as fit).
   * @throws {TypeError} When `type` is not a TypedArray constructor.
   * @throws {RangeError} When the offset is misaligned or the view would run past the end.
   * @throws {ClosedError} When the memory is closed.
   */
  view<C extends TypedArrayConstructor = Uint8ArrayConstructor>(
    type?: C,
    byteOffset = 0,
    length?: number,
  ): InstanceType<C> {
    const buffer = this.#viewable().buffer();
    return typedView(buffer, (type ?? Uint8Array) as C, byteOffset, length);
  }

  /**
   * A zero-copy DataView of the memory, detached when the memory is closed.
   *
   * @throws {RangeError} When the range runs past the end.
   * @throws {ClosedError} When the memory is closed.
   */
  dataView(byteOffset = 0, byteLength?: number): DataView {
    return dataViewOf(this.#viewable().buffer(), byteOffset, byteLength);
  }

  /** Releases the memory; idempotent. */
  abstract close(): void;

  /** Calls `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
