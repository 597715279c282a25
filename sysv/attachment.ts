/**
 * {@linkcode SystemVAttachment}: a System V segment attached to this
 * process, with views that are detached on detach. Attachments of one
 * segment with the same access share one mapping.
 *
 * @module
 */
import { MappedMemory, regionOf, roundUpToPage, setRegion } from "../core/memory.ts";
import { ClosedError } from "../core/errors.ts";
import { ReadOnlyView } from "../mapping/readonly_view.ts";
import { type CollectableRegion, collectRegion, Region } from "../core/_region.ts";
import { shmctlStat, unsafeShmat } from "./raw.ts";
import { ErrnoError } from "../core/errors.ts";
import { platform } from "../platform/mod.ts";
import { checkInteger } from "../core/_validate.ts";
import type { SystemVSegment } from "./segment.ts";

// One mapping of a segment in this process, shared by every attachment of
// the same segment and access; the Region owner, so views keep it alive.
class SharedMapping {
  readonly region: Region;
  readonly id: number;
  readonly pool: Map<number, WeakRef<SharedMapping>> | undefined;
  attachments = 0;
  /** Its entry in `live` and in the pool: one WeakRef (each costs ~0.4 us in Deno). */
  ref: WeakRef<SharedMapping> | undefined;

  constructor(
    address: number,
    size: number,
    id: number,
    pool: Map<number, WeakRef<SharedMapping>> | undefined,
  ) {
    this.id = id;
    this.pool = pool;
    // Its finalizer is `collected`'s below: one registration per mapping, not two.
    this.region = new Region(this, address, size, roundUpToPage(size), "shmdt", false, true);
  }
}

// The mappings in use, by segment id, read-write and read-only apart. Weak:
// a mapping that no attachment and no view references can be collected,
// and Region's finalizer then detaches it (replacing it with zero pages).
const readWritePool = new Map<number, WeakRef<SharedMapping>>();
const readOnlyPool = new Map<number, WeakRef<SharedMapping>>();

function pooled(
  pool: Map<number, WeakRef<SharedMapping>>,
  id: number,
): SharedMapping | undefined {
  const shared = pool.get(id)?.deref();
  if (shared !== undefined && !shared.region.released) return shared;
  pool.delete(id);
  return undefined;
}

// Every mapping not yet released, so that their number is bounded: a dropped
// attachment holds its segment (and a slot of kernel.shmmni, even once the
// segment is removed) until the garbage collector runs, which a tight loop
// can outrun by thousands of segments.
const live = new Set<WeakRef<SharedMapping>>();
interface Tracked {
  readonly ref: WeakRef<SharedMapping>;
  readonly region: CollectableRegion;
}
// A mapping collected undetached: out of `live`, and its range tombstoned.
const collected = new FinalizationRegistry<Tracked>((tracked) => {
  live.delete(tracked.ref);
  collectRegion(tracked.region);
});
let maxLive = 1024;

function track(shared: SharedMapping): WeakRef<SharedMapping> {
  const ref = new WeakRef(shared);
  shared.ref = ref;
  live.add(ref);
  collected.register(shared, { ref, region: shared.region.collectable }, ref);
  return ref;
}

function untrack(shared: SharedMapping): void {
  const ref = shared.ref;
  if (ref === undefined) return;
  live.delete(ref);
  collected.unregister(ref);
}

/** Refuses a new mapping past the bound, naming what holds the slots. */
function checkRoom(id: number): void {
  if (live.size < maxLive) return;
  let removed = 0;
  for (const ref of live) {
    const shared = ref.deref();
    if (shared === undefined || shared.region.released) {
      live.delete(ref); // collected or released meanwhile: not a live one
      continue;
    }
    if (segmentGone(shared.id)) removed++;
  }
  if (live.size < maxLive) return;
  throw new ErrnoError("shmat", platform.errno.EMFILE ?? 24, {
    id,
    hint:
      `this process has ${live.size} System V attachments that were never detached (limit ${maxLive}, SystemVAttachment.maxLive); ${removed} of them hold segments that were removed and live on only through them. Detach attachments when done (detach(), or \`using\`), or raise SystemVAttachment.maxLive`,
  });
}

function segmentGone(id: number): boolean {
  try {
    return (shmctlStat(id).mode & platform.constants.SHM_DEST) !== 0;
  } catch {
    return true;
  }
}

function detachOne(shared: SharedMapping): void {
  shared.attachments--;
  if (shared.attachments > 0) return;
  if (shared.pool?.get(shared.id) === shared.ref) shared.pool?.delete(shared.id);
  untrack(shared);
  shared.region.release();
}

// The attachment constructor is private; attachSegment() makes them.
let makeAttachment: (
  segment: SystemVSegment,
  shared: SharedMapping,
  readOnly: boolean,
) => SystemVAttachment;

/**
 * Internal: attaches `segment` (`shmat`), or shares this process's mapping
 * of it when one with the same access exists and no address is asked.
 */
export function attachSegment(
  segment: SystemVSegment,
  readOnly: boolean,
  address: number,
  flags: number,
): SystemVAttachment {
  const pool = address !== 0 ? undefined : readOnly ? readOnlyPool : readWritePool;
  let shared = pool === undefined ? undefined : pooled(pool, segment.id);
  if (shared === undefined) {
    checkRoom(segment.id);
    const at = unsafeShmat(segment.id, address, flags);
    shared = new SharedMapping(at, segment.size, segment.id, pool);
    const ref = track(shared);
    pool?.set(segment.id, ref);
  }
  shared.attachments++;
  return makeAttachment(segment, shared, readOnly);
}

/**
 * A System V segment attached to this process: `shmat`. Views
 * (`view()`, `dataView()`, `readOnlyView()`) are detached when the memory
 * is detached, so a stale view reads nothing instead of crashing.
 *
 * Attachments of the same segment (and the same access) in one process
 * share one mapping and count as one in `nattch`: attaching in a loop does
 * not use up address space. `detach()` ends this attachment; the real
 * `shmdt` happens when the last attachment of that mapping detaches, and
 * only then are the views (which belong to the shared mapping) detached.
 *
 * `detach()` never removes the segment; see {@linkcode SystemVSegment.remove}.
 *
 * @example
 * ```ts
 * import { SystemVSegment } from "@shmkit/shmkit";
 * const segment = SystemVSegment.create(4096);
 * try {
 *   using attachment = segment.attach();
 *   attachment.view()[0] = 1;
 * } finally {
 *   segment.remove();
 * }
 * ```
 */
export class SystemVAttachment extends MappedMemory {
  #shared: SharedMapping | undefined;
  readonly #segment: SystemVSegment;
  // Private: were it assignable, `readOnly = false` would hand out a writable
  // TypedArray over PROT_READ pages.
  readonly #readOnly: boolean;

  static {
    makeAttachment = (segment, shared, readOnly) =>
      new SystemVAttachment(segment, shared, readOnly);
  }

  private constructor(segment: SystemVSegment, shared: SharedMapping, readOnly: boolean) {
    super();
    this.#segment = segment;
    this.#readOnly = readOnly;
    this.#shared = shared;
    setRegion(this, shared.region);
  }

  /** The segment this is an attachment of. */
  get segment(): SystemVSegment {
    return this.#segment;
  }

  /** Whether this was attached with SHM_RDONLY (views then are ReadOnlyViews only). */
  get readOnly(): boolean {
    return this.#readOnly;
  }

  /** `SystemVAttachment(segment id 5, 4096 bytes, read-only)`. */
  override toString(): string {
    return `SystemVAttachment(segment id ${this.#segment.id}, ${this.byteLength} bytes${
      this.#readOnly ? ", read-only" : ""
    }${this.closed ? ", detached" : ""})`;
  }

  /** "System V attachment", for error messages. */
  protected get kind(): string {
    return "System V attachment";
  }

  /** Refuses writable views of a read-only (PROT_READ) attachment. */
  protected override checkViewable(): void {
    if (this.#readOnly) {
      throw new TypeError(
        `Cannot create a writable view of a read-only System V attachment (segment id ${this.#segment.id}): its pages are mapped PROT_READ (SHM_RDONLY), and the first write through a TypedArray or DataView would kill the process with SIGSEGV; read it with readOnlyView(), or attach without readOnly to write`,
      );
    }
  }

  /**
   * A {@linkcode ReadOnlyView} of the memory: reading methods only, so it
   * is the way to read a read-only attachment (and works on read-write
   * ones too). It is detached with the memory.
   *
   * @param byteOffset Where the view starts (default 0).
   * @param byteLength How many bytes (default: to the end).
   * @throws {RangeError} When the range runs past the end.
   * @throws {ClosedError} When this attachment is detached.
   */
  readOnlyView(byteOffset = 0, byteLength?: number): ReadOnlyView {
    const region = regionOf(this);
    if (region === undefined) throw new ClosedError("create a view", this.kind);
    return new ReadOnlyView(region.buffer(), byteOffset, byteLength, this.kind);
  }

  /**
   * How many System V mappings this process may hold at once (default
   * 1024): attaching past it throws EMFILE instead of letting attachments
   * dropped without `detach()` pin segments until the garbage collector
   * runs (a removed segment lives on while attached, and each one takes a
   * slot of kernel.shmmni). Attachments of one segment with the same access
   * share a mapping and count once.
   */
  static get maxLive(): number {
    return maxLive;
  }

  /** @throws {RangeError} For a value that is not an integer from 1 to 2^31 - 1. */
  static set maxLive(value: number) {
    maxLive = checkInteger(value, "maxLive", 1, 0x7fffffff);
  }

  /** Mappings this process holds now (attached and not detached, nor collected). */
  static get liveCount(): number {
    return live.size;
  }

  /** Whether `detach()` has been called. */
  get detached(): boolean {
    return this.closed;
  }

  /**
   * Ends this attachment. When it is the last attachment of its mapping in
   * this process, detaches the views and calls `shmdt` (`nattch` drops by
   * one). Does NOT remove the segment. Idempotent.
   *
   * @throws {ErrnoError} `shmdt` failing (not expected).
   */
  detach(): void {
    const shared = this.#shared;
    if (shared === undefined) return;
    this.#shared = undefined;
    setRegion(this, undefined);
    detachOne(shared);
  }

  /** Same as `detach()`, for `using` and the `MappedMemory` interface. */
  close(): void {
    this.detach();
  }
}
