/**
 * Zero-copy loans for large messages: a shared pool of fixed-size blocks.
 * A producer loans a block, writes its message in place, and hands the
 * block's offset (a small token) to a consumer through a queue or a
 * channel; the consumer accepts the token, reads in place, and releases the
 * block. Only the token travels, whatever the message's size.
 *
 * Each block has an owner word: 0 when free, the holder's owner id (pid
 * and start-time tag) while loaned, and the sender's id with bit 30 set
 * once handed off. Blocks held by dead processes are reclaimed (`reclaim()`,
 * run by `tryLoan` when the pool looks full); a handed-off block is the
 * message in flight and is not reclaimed unless asked for (`reclaim({
 * handedOff: true })`, for when nothing can be in flight any more).
 *
 * Layout (all words little-endian i32; docs/messaging.md):
 *
 * | offset     | word        | meaning                                         |
 * | ---------- | ----------- | ----------------------------------------------- |
 * | 0          | magic       | {@linkcode LOAN_POOL_MAGIC} ("LNP1")             |
 * | 4          | blocks      | 1 to 2^20                                       |
 * | 8          | blockBytes  | a multiple of 64, 64 to 2^30                    |
 * | 12         | dataOffset  | where block 0 starts: 64 + 4 * blocks rounded up to 64 |
 * | 16         | released    | bumped at each release (waiting loaners' futex word) |
 * | 20         | sleeping    | 1 while a loaner may sleep                      |
 * | 24         | reclaimed   | blocks reclaimed from dead holders              |
 * | 64         | owners      | one word per block                              |
 * | dataOffset | blocks      | block i at dataOffset + i * blockBytes          |
 *
 * @example Loan, hand off, accept, release (here in one process)
 * ```ts
 * import { Mapping } from "@shmkit/shmkit";
 * import { LoanPool } from "@shmkit/shmkit/messaging";
 * const shape = { blocks: 4, blockBytes: 1 << 20 };
 * using mapping = Mapping.anonymous(LoanPool.byteLengthFor(shape));
 * const pool = LoanPool.init(mapping.view(), shape);
 * const loan = pool.loan(1000)!;
 * loan.bytes.fill(7);
 * const token = loan.handOff(); // send this number through a Queue or Channel
 * const received = LoanPool.from(mapping.view()).accept(token);
 * console.log(received.bytes[0]); // 7
 * received.release();
 * ```
 *
 * @module
 */
import { ClosedError } from "../core/errors.ts";
import { checkInteger, checkOptions } from "../core/_validate.ts";
import { checkTimeout } from "../sync/wait.ts";
import {
  checkSettings,
  checkView,
  corrupted,
  futexWordAt,
  isValidId,
  Liveness,
  MessagingError,
  runAsync,
  runSync,
  selfId,
  type Settings,
  signalOf,
  type SignalOptions,
  type WaitSettings,
  type WaitTarget,
  wakeTarget,
} from "./_common.ts";

/** "LNP1": an initialised loan pool, layout version 1. */
export const LOAN_POOL_MAGIC = 0x4c4e5031;
/** Where the owner words start. */
export const LOAN_POOL_OWNERS_OFFSET = 64;
/** The owner-word bit of a handed-off block. */
export const HANDED_OFF = 0x40000000;

const MAGIC = 0;
const BLOCKS = 1;
const BLOCK_BYTES = 2;
const DATA_OFFSET = 3;
const RELEASED = 4;
const SLEEPING = 5;
const RECLAIMED = 6;
const OWNERS = LOAN_POOL_OWNERS_OFFSET >> 2;
const WHAT = "loan pool";

/** The shape given to {@linkcode LoanPool.init}. */
export interface LoanPoolShape {
  /** Number of blocks, 1 to 2^20. */
  readonly blocks: number;
  /** Bytes per block, a multiple of 64 from 64 to 2^30. */
  readonly blockBytes: number;
}

/** Options of {@linkcode LoanPool.init} and {@linkcode LoanPool.from}. */
export type LoanPoolOptions = WaitSettings;

function dataOffsetFor(blocks: number): number {
  return Math.ceil((LOAN_POOL_OWNERS_OFFSET + 4 * blocks) / 64) * 64;
}

function checkPoolShape(shape: unknown): LoanPoolShape {
  const o = checkOptions(shape as LoanPoolShape | undefined, "shape");
  const blocks = checkInteger(o.blocks, "blocks", 1, 1 << 20);
  const blockBytes = checkInteger(o.blockBytes, "blockBytes", 64, 1 << 30);
  if (blockBytes % 64 !== 0) {
    throw new RangeError(`Cannot use blockBytes ${blockBytes}: expected a multiple of 64`);
  }
  return { blocks, blockBytes };
}

/** A block on loan to this process: write or read it in place, then hand it off or release it. */
export class Loan {
  readonly #pool: LoanPool;
  readonly #bytes: Uint8Array;
  /** The block's offset in the pool: the token `handOff()` returns. */
  readonly offset: number;
  /** The block's index. */
  readonly index: number;
  #done = false;

  /**
   * Made by {@linkcode LoanPool}.
   *
   * @param pool The pool.
   * @param index The block.
   * @param offset Its byte offset.
   * @param bytes Its bytes.
   */
  constructor(pool: LoanPool, index: number, offset: number, bytes: Uint8Array) {
    this.#pool = pool;
    this.index = index;
    this.offset = offset;
    this.#bytes = bytes;
  }

  /**
   * The block, in place. Do not keep it past `handOff()` or `release()`.
   *
   * @throws {ClosedError} After `handOff()` or `release()`.
   */
  get bytes(): Uint8Array {
    if (this.#done) throw new ClosedError("use a loan", "loan");
    return this.#bytes;
  }

  /**
   * Marks the block handed off (owner word: this process's id | bit 30) and
   * returns its token for the receiver's `accept()`. The loan is over here.
   *
   * @throws {ClosedError} When the loan is over.
   * @throws {MessagingError} CORRUPTED when another process changed the block's owner word.
   */
  handOff(): number {
    this.#end("hand off a loan", HANDED_OFF | selfId());
    return this.offset;
  }

  /**
   * Gives the block back to the pool, waking a process waiting for one.
   *
   * @throws {ClosedError} When the loan is over.
   * @throws {MessagingError} CORRUPTED when another process changed the block's owner word.
   */
  release(): void {
    this.#end("release a loan", 0);
  }

  /** `release()` unless handed off or released, for `using`. */
  [Symbol.dispose](): void {
    if (!this.#done) this.release();
  }

  #end(action: string, next: number): void {
    if (this.#done) throw new ClosedError(action, "loan");
    this.#done = true;
    this.#pool.setOwner(this.index, selfId(), next, action);
  }
}

/**
 * A pool of fixed-size blocks in shared memory, loaned out to processes
 * (see the module doc).
 */
export class LoanPool {
  readonly #header: Int32Array;
  readonly #bytes: Uint8Array;
  readonly #blocks: number;
  readonly #blockBytes: number;
  readonly #dataOffset: number;
  readonly #settings: Settings;
  readonly #liveness: Liveness;
  readonly #target: WaitTarget;
  #hint = 0;
  #lastReclaim = -Infinity;
  #broken: MessagingError | undefined;
  #closed = false;

  private constructor(bytes: Uint8Array, shape: LoanPoolShape, settings: Settings) {
    this.#bytes = bytes;
    this.#blocks = shape.blocks;
    this.#blockBytes = shape.blockBytes;
    this.#dataOffset = dataOffsetFor(shape.blocks);
    this.#header = new Int32Array(bytes.buffer, bytes.byteOffset, this.#dataOffset >> 2);
    this.#settings = settings;
    this.#liveness = new Liveness(settings.checkIntervalMs);
    this.#target = {
      header: this.#header,
      word: futexWordAt(bytes, RELEASED),
      flag: SLEEPING,
    };
  }

  /**
   * Bytes a pool of this shape needs: the header and owner words rounded
   * up to 64, then the blocks.
   *
   * @throws {RangeError} For a shape out of range.
   */
  static byteLengthFor(shape: LoanPoolShape): number {
    const { blocks, blockBytes } = checkPoolShape(shape);
    return dataOffsetFor(blocks) + blocks * blockBytes;
  }

  /**
   * Lays out a new pool, every block free, in `view` and attaches to it.
   *
   * @throws {TypeError} When `view` is not a TypedArray or DataView.
   * @throws {RangeError} When it is misaligned or too short, or the shape is out of range.
   */
  static init(view: ArrayBufferView, shape: LoanPoolShape, options?: LoanPoolOptions): LoanPool {
    const checked = checkPoolShape(shape);
    const offset = dataOffsetFor(checked.blocks);
    const bytes = checkView(
      view,
      "place a loan pool",
      offset + checked.blocks * checked.blockBytes,
    );
    const settings = checkSettings(options);
    const h = new Int32Array(bytes.buffer, bytes.byteOffset, offset >> 2);
    Atomics.store(h, MAGIC, 0);
    h.fill(0);
    h[BLOCKS] = checked.blocks;
    h[BLOCK_BYTES] = checked.blockBytes;
    h[DATA_OFFSET] = offset;
    Atomics.store(h, MAGIC, LOAN_POOL_MAGIC);
    return new LoanPool(bytes, checked, settings);
  }

  /**
   * Attaches to a pool laid out with {@linkcode LoanPool.init}.
   *
   * @throws {RangeError} When the view is misaligned, or shorter than the header says.
   * @throws {MessagingError} CORRUPTED when the memory holds no pool, or its header breaks the rules.
   */
  static from(view: ArrayBufferView, options?: LoanPoolOptions): LoanPool {
    const action = "attach to a loan pool";
    const bytes = checkView(view, action, LOAN_POOL_OWNERS_OFFSET);
    const settings = checkSettings(options);
    const h = new Int32Array(bytes.buffer, bytes.byteOffset, LOAN_POOL_OWNERS_OFFSET >> 2);
    const bad = (word: string, value: number, rule: string): never => {
      throw corrupted(WHAT, action, word, value, rule);
    };
    const magic = Atomics.load(h, MAGIC);
    if (magic !== LOAN_POOL_MAGIC) {
      bad("magic", magic, `an initialised pool has ${LOAN_POOL_MAGIC}`);
    }
    const blocks = h[BLOCKS]!;
    if (blocks < 1 || blocks > 1 << 20) bad("blocks", blocks, "it must be 1 to 2^20");
    const blockBytes = h[BLOCK_BYTES]!;
    if (blockBytes < 64 || blockBytes > 1 << 30 || blockBytes % 64 !== 0) {
      bad("blockBytes", blockBytes, "it must be a multiple of 64 from 64 to 2^30");
    }
    if (h[DATA_OFFSET] !== dataOffsetFor(blocks)) {
      bad(
        "dataOffset",
        h[DATA_OFFSET]!,
        `with ${blocks} blocks it must be ${dataOffsetFor(blocks)}`,
      );
    }
    const need = dataOffsetFor(blocks) + blocks * blockBytes;
    if (bytes.byteLength < need) {
      throw new RangeError(
        `Cannot ${action} in ${bytes.byteLength} bytes: its blocks need ${need}`,
      );
    }
    return new LoanPool(bytes, { blocks, blockBytes }, settings);
  }

  /** Number of blocks. */
  get blocks(): number {
    return this.#blocks;
  }

  /** Bytes per block. */
  get blockBytes(): number {
    return this.#blockBytes;
  }

  /** Blocks free now. */
  get free(): number {
    const h = this.#live("read the pool");
    let free = 0;
    for (let i = 0; i < this.#blocks; i++) if (Atomics.load(h, OWNERS + i) === 0) free++;
    return free;
  }

  /** Blocks reclaimed from dead holders so far (by any process). */
  get reclaimed(): number {
    return Atomics.load(this.#live("read the pool"), RECLAIMED) >>> 0;
  }

  /** Ends this handle; loans made through it stay valid. Idempotent. */
  close(): void {
    this.#closed = true;
  }

  /** `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #live(action: string): Int32Array {
    if (this.#broken !== undefined) throw this.#broken;
    if (this.#closed || this.#header.length === 0) throw new ClosedError(action, WHAT);
    return this.#header;
  }

  #fail(action: string, word: string, value: number, rule: string): never {
    this.#broken = corrupted(WHAT, action, word, value, rule);
    throw this.#broken;
  }

  #owner(i: number, action: string): number {
    const owner = Atomics.load(this.#header, OWNERS + i);
    if (owner !== 0 && !isValidId(owner & ~HANDED_OFF)) {
      this.#fail(
        action,
        `owner of block ${i}`,
        owner,
        "it must be 0, an owner id, or one with bit 30 set",
      );
    }
    return owner;
  }

  #loanOf(i: number): Loan {
    const offset = this.#dataOffset + i * this.#blockBytes;
    return new Loan(this, i, offset, this.#bytes.subarray(offset, offset + this.#blockBytes));
  }

  /** Moves block `i`'s owner word from `from` to `to`; a Loan's end. */
  setOwner(i: number, from: number, to: number, action: string): void {
    // Loans outlive close() of the handle that made them; not the memory.
    if (this.#broken !== undefined) throw this.#broken;
    const h = this.#header;
    if (h.length === 0) throw new ClosedError(action, "loan pool's memory");
    const was = Atomics.compareExchange(h, OWNERS + i, from, to);
    if (was !== from) {
      this.#fail(action, `owner of block ${i}`, was, `this process (${from}) holds the block`);
    }
    if (to === 0) {
      Atomics.add(h, RELEASED, 1);
      wakeTarget(h, this.#target.word, SLEEPING);
    }
  }

  readonly #op = (): Loan | null => {
    const action = "loan a block";
    const h = this.#live(action);
    const me = selfId();
    for (let pass = 0; pass < 2; pass++) {
      for (let k = 0; k < this.#blocks; k++) {
        const i = (this.#hint + k) % this.#blocks;
        if (this.#owner(i, action) !== 0) continue;
        if (Atomics.compareExchange(h, OWNERS + i, 0, me) === 0) {
          this.#hint = (i + 1) % this.#blocks;
          return this.#loanOf(i);
        }
      }
      const now = performance.now();
      if (pass === 1 || now - this.#lastReclaim < this.#settings.checkIntervalMs) break;
      this.#lastReclaim = now;
      if (this.#reclaim(false) === 0) break;
    }
    return null;
  };

  /**
   * Loans a free block, if there is one, without waiting; reclaims dead
   * holders' blocks first when none is free (at most once per checkIntervalMs).
   *
   * @throws {MessagingError} CORRUPTED when an owner word breaks the rules.
   */
  tryLoan(): Loan | null {
    return this.#op();
  }

  /**
   * Loans a block, blocking the thread until one is free.
   *
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @returns The loan, or null when the time ran out.
   * @throws {MessagingError} CORRUPTED when an owner word breaks the rules.
   */
  loan(timeoutMs?: number): Loan | null {
    const timeout = checkTimeout(timeoutMs);
    const s = this.#settings;
    return runSync(() => this.#target, this.#op, timeout, s.spinMs, s.checkIntervalMs);
  }

  /**
   * Loans a block, waiting without blocking the event loop.
   *
   * @param timeoutMs Milliseconds to wait at most (default: forever).
   * @param options `signal` to abort the wait.
   * @returns The loan, or null when the time ran out.
   * @throws {MessagingError} CORRUPTED when an owner word breaks the rules.
   */
  loanAsync(timeoutMs?: number, options?: SignalOptions): Promise<Loan | null> {
    const timeout = checkTimeout(timeoutMs);
    const signal = signalOf(options);
    const s = this.#settings;
    return runAsync(() => this.#target, this.#op, timeout, s.pollMs, s.checkIntervalMs, signal);
  }

  /**
   * Takes over a handed-off block by its token (as another process's
   * `handOff()` returned it): the block is this process's loan from now on.
   *
   * @param token A block's offset in the pool.
   * @throws {TypeError} When the token is not a number.
   * @throws {RangeError} When it names no block.
   * @throws {MessagingError} NOT_HANDED_OFF when the block is not handed off; CORRUPTED.
   */
  accept(token: number): Loan {
    const action = "accept a loan";
    const h = this.#live(action);
    const end = this.#dataOffset + this.#blocks * this.#blockBytes;
    checkInteger(token, "token", this.#dataOffset, end - this.#blockBytes);
    if ((token - this.#dataOffset) % this.#blockBytes !== 0) {
      throw new RangeError(`Cannot ${action}: token ${token} is not a block's offset`);
    }
    const i = (token - this.#dataOffset) / this.#blockBytes;
    const owner = this.#owner(i, action);
    if (
      (owner & HANDED_OFF) === 0 ||
      Atomics.compareExchange(h, OWNERS + i, owner, selfId()) !== owner
    ) {
      throw new MessagingError(
        "NOT_HANDED_OFF",
        `Cannot ${action}: block ${i} (token ${token}) is not handed off (owner word ${owner})`,
      );
    }
    return this.#loanOf(i);
  }

  /**
   * Frees the blocks whose holders' processes are gone. Handed-off blocks
   * are the messages in flight: freed only with `handedOff: true` (and
   * when their sender is gone), for when nothing can be in flight any more.
   *
   * @returns How many blocks were freed.
   * @throws {MessagingError} CORRUPTED when an owner word breaks the rules.
   */
  reclaim(options?: { readonly handedOff?: boolean }): number {
    const handedOff = checkOptions(options, "options").handedOff === true;
    this.#live("reclaim blocks");
    return this.#reclaim(handedOff);
  }

  #reclaim(handedOff: boolean): number {
    const h = this.#header;
    let freed = 0;
    for (let i = 0; i < this.#blocks; i++) {
      const owner = this.#owner(i, "reclaim blocks");
      if (owner === 0 || (!handedOff && (owner & HANDED_OFF) !== 0)) continue;
      if (!this.#liveness.gone(owner & ~HANDED_OFF)) continue;
      if (Atomics.compareExchange(h, OWNERS + i, owner, 0) === owner) {
        freed++;
        Atomics.add(h, RECLAIMED, 1);
      }
    }
    if (freed > 0) {
      Atomics.add(h, RELEASED, 1);
      wakeTarget(h, this.#target.word, SLEEPING);
    }
    return freed;
  }
}
