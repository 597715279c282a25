/**
 * Internal: live views. One class per struct type, built once, with a
 * getter/setter pair per field on its prototype; an instance holds only a
 * DataView, a base offset and (lazily) the handles it made, so reading a
 * number allocates nothing.
 *
 * @module
 */
import { Channel } from "../sync/channel.ts";
import { Mutex } from "../sync/mutex.ts";
import { ClosedError } from "../core/errors.ts";
import { MappedMemory } from "../core/memory.ts";
import { typeName } from "../ffi/pointer.ts";
import { checkStruct, type Compiled, type Field, readStruct, writeStruct } from "./_compile.ts";

const DV = Symbol("dv");
const BASE = Symbol("base");
const HANDLES = Symbol("handles");

interface ViewState {
  readonly [DV]: DataView;
  readonly [BASE]: number;
  [HANDLES]: unknown[] | undefined;
}

type ViewClass = new (dv: DataView, base: number) => object;
const classes = new WeakMap<Compiled, ViewClass>();

/** What a struct can be read from. */
export type Target = MappedMemory | ArrayBufferLike | ArrayBufferView;

/** A DataView of `target`'s whole range, checked to hold `size` bytes at `byteOffset`. */
export function resolve(
  target: unknown,
  byteOffset: unknown,
  size: number,
  align: number,
  action: string,
): DataView {
  let dv: DataView;
  if (target instanceof MappedMemory) dv = target.dataView();
  else if (ArrayBuffer.isView(target)) {
    if (target.buffer.byteLength === 0) throw new ClosedError(action, "view's memory");
    dv = new DataView(target.buffer, target.byteOffset, target.byteLength);
  } else if (
    target instanceof ArrayBuffer ||
    (typeof SharedArrayBuffer === "function" && target instanceof SharedArrayBuffer)
  ) {
    if (target.byteLength === 0 && (target as ArrayBuffer).detached === true) {
      throw new ClosedError(action, "buffer");
    }
    dv = new DataView(target);
  } else {
    throw new TypeError(
      `Cannot ${action}: expected mapped memory, an ArrayBuffer or a view of one, got ${
        typeName(target)
      }`,
    );
  }
  if (typeof byteOffset !== "number") {
    throw new TypeError(`Cannot ${action}: byteOffset is ${typeName(byteOffset)}, not a number`);
  }
  if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset + size > dv.byteLength) {
    throw new RangeError(
      `Cannot ${action} at byteOffset ${byteOffset}: it needs ${size} bytes and the memory has ${dv.byteLength}`,
    );
  }
  if ((dv.byteOffset + byteOffset) % align !== 0) {
    throw new RangeError(
      `Cannot ${action} at byte ${
        dv.byteOffset + byteOffset
      } of its buffer: it must be a multiple of the struct's alignment, ${align}`,
    );
  }
  return dv;
}

function handles(view: ViewState): unknown[] {
  return view[HANDLES] ??= [];
}

function bytesAt(view: ViewState, f: Field): Uint8Array {
  const dv = view[DV];
  return new Uint8Array(dv.buffer, dv.byteOffset + view[BASE] + f.offset, f.size);
}

function handle(f: Field, index: number): PropertyDescriptor {
  const make = (view: ViewState): unknown => {
    const dv = view[DV];
    const at = view[BASE] + f.offset;
    if (f.role === "mutex") return Mutex.from(bytesAt(view, f));
    if (f.role === "channel") return Channel.from(bytesAt(view, f));
    if (f.count === undefined) return new (viewClass(f.struct!))(dv, at);
    if (f.struct !== undefined) return new ArrayOfStructs(f.struct, dv, at, f.count);
    const e = f.element!;
    if (e.typed === undefined) return new ArrayOfStrings(f, dv, at);
    const start = dv.byteOffset + at;
    if (start % e.size !== 0) {
      throw new RangeError(
        `Cannot view ${f.name} as ${e.typed.name}: it starts at byte ${start}, not a multiple of ${e.size} (a packed struct); read it with get()`,
      );
    }
    return new e.typed(dv.buffer as ArrayBuffer, start, f.count);
  };
  return {
    get(this: ViewState): unknown {
      const list = handles(this);
      return list[index] ??= make(this);
    },
    enumerable: true,
  };
}

/** The live-view class of a struct type, built on first use. */
export function viewClass(s: Compiled): ViewClass {
  const known = classes.get(s);
  if (known !== undefined) return known;
  class View implements ViewState {
    readonly [DV]: DataView;
    readonly [BASE]: number;
    [HANDLES]: unknown[] | undefined = undefined;
    constructor(dv: DataView, base: number) {
      this[DV] = dv;
      this[BASE] = base;
    }
  }
  s.fields.forEach((f, index) => {
    if (f.role === "padding") return;
    if (f.role !== "value" || f.count !== undefined || f.struct !== undefined) {
      Object.defineProperty(View.prototype, f.name, handle(f, index));
      return;
    }
    const { read, check, write } = f.element!;
    const offset = f.offset;
    const path = f.name;
    Object.defineProperty(View.prototype, f.name, {
      get(this: ViewState): unknown {
        return read(this[DV], this[BASE] + offset);
      },
      set(this: ViewState, value: unknown): void {
        check(value, path);
        write(this[DV], this[BASE] + offset, value);
      },
      enumerable: true,
    });
  });
  classes.set(s, View);
  return View;
}

function checkIndex(index: unknown, length: number, what: string): number {
  if (typeof index !== "number") {
    throw new TypeError(`Cannot index ${what}: expected a number, got ${typeName(index)}`);
  }
  if (!Number.isInteger(index) || index < 0 || index >= length) {
    throw new RangeError(`Cannot index ${what} with ${index}: it has ${length} elements`);
  }
  return index;
}

/** A live array of structs (the StructArray interface). */
export class ArrayOfStructs {
  readonly #s: Compiled;
  readonly #dv: DataView;
  readonly #base: number;
  readonly #views: object[] = [];
  readonly length: number;

  constructor(s: Compiled, dv: DataView, base: number, length: number) {
    this.#s = s;
    this.#dv = dv;
    this.#base = base;
    this.length = length;
  }

  at(index: number): object {
    const i = checkIndex(index, this.length, "a struct array");
    return this.#views[i] ??= new (viewClass(this.#s))(this.#dv, this.#base + i * this.#s.size);
  }

  get(index: number): Record<string, unknown> {
    const i = checkIndex(index, this.length, "a struct array");
    return readStruct(this.#s, this.#dv, this.#base + i * this.#s.size);
  }

  set(index: number, value: unknown): void {
    const i = checkIndex(index, this.length, "a struct array");
    checkStruct(this.#s, value, `[${i}]`);
    writeStruct(this.#s, this.#dv, this.#base + i * this.#s.size, value);
  }

  *[Symbol.iterator](): Iterator<object> {
    for (let i = 0; i < this.length; i++) yield this.at(i);
  }
}

/** A live array of fixed-size strings (the StringArray interface). */
class ArrayOfStrings {
  readonly #f: Field;
  readonly #dv: DataView;
  readonly #base: number;
  readonly length: number;

  constructor(f: Field, dv: DataView, base: number) {
    this.#f = f;
    this.#dv = dv;
    this.#base = base;
    this.length = f.count!;
  }

  get(index: number): string {
    const i = checkIndex(index, this.length, this.#f.name);
    const e = this.#f.element!;
    return e.read(this.#dv, this.#base + i * e.size) as string;
  }

  set(index: number, value: string): void {
    const i = checkIndex(index, this.length, this.#f.name);
    const e = this.#f.element!;
    e.check(value, `${this.#f.name}[${i}]`);
    e.write(this.#dv, this.#base + i * e.size, value);
  }

  *[Symbol.iterator](): Iterator<string> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }
}
