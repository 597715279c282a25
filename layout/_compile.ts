/**
 * Internal: turns a definition into a layout (C's rules: each member at the
 * next multiple of its alignment, the struct aligned to its strictest
 * member, its size a multiple of that; packed: everything at alignment 1)
 * and the codecs that read, check and write it.
 *
 * @module
 */
import { Channel } from "../sync/channel.ts";
import { Mutex } from "../sync/mutex.ts";
import { typeName } from "../ffi/pointer.ts";
import { charElement, type Element, SCALARS } from "./_scalars.ts";
import { checkIdentifier } from "./_names.ts";

/** What a field is for. */
export type Role = "value" | "padding" | "mutex" | "channel";

/** One field, laid out. */
export interface Field {
  readonly name: string;
  readonly kind: unknown;
  readonly role: Role;
  readonly offset: number;
  /** Total bytes (all elements of an array). */
  readonly size: number;
  readonly align: number;
  /** For value fields. */
  readonly element?: Element;
  /** The nested struct, for struct fields and arrays of structs. */
  readonly struct?: Compiled;
  /** For arrays. */
  readonly count?: number;
}

/** A laid-out struct and its codecs. */
export interface Compiled {
  readonly name: string | undefined;
  readonly size: number;
  readonly align: number;
  readonly packed: boolean;
  readonly fields: readonly Field[];
  readonly byName: ReadonlyMap<string, Field>;
  /** Whether it holds a mutex or channel (directly or in nested structs). */
  readonly hasSync: boolean;
}

/** Largest struct: 2^31 - 1 bytes, so sizes fit a C int and a DataView offset. */
export const MAX_SIZE = 0x7fffffff;

const registry = new WeakMap<object, Compiled>();

/** Records the layout of a Struct object. */
export function register(struct: object, compiled: Compiled): void {
  registry.set(struct, compiled);
}

/** The layout of a Struct object, or undefined for anything else. */
export function compiledOf(value: unknown): Compiled | undefined {
  return typeof value === "object" && value !== null ? registry.get(value) : undefined;
}

const KINDS = `${Object.keys(SCALARS).join(", ")}, "char[N]", "pad[N]", "mutex", ` +
  `[kind, count], ["channel", bytes] or a struct from defineStruct`;

function fail(error: new (message: string) => Error, detail: string): never {
  throw new error(`Cannot define struct: ${detail}`);
}

function sizeIn(text: string, what: string, field: string): number {
  const n = Number(text);
  if (n < 1) fail(RangeError, `field ${field}: a ${what}[0] has no bytes`);
  if (n > MAX_SIZE) fail(RangeError, `field ${field}: ${what}[${text}] is larger than ${MAX_SIZE}`);
  return n;
}

/** Reads and writes a nested struct as an element. */
export function structElement(struct: Compiled): Element {
  return {
    kind: "struct",
    size: struct.size,
    align: struct.align,
    c: "",
    py: "",
    read: (dv, offset) => readStruct(struct, dv, offset),
    check: (value, path) => checkStruct(struct, value, path),
    write: (dv, offset, value) => writeStruct(struct, dv, offset, value),
  };
}

interface Parsed {
  readonly role: Role;
  readonly size: number;
  readonly align: number;
  readonly element?: Element;
  readonly struct?: Compiled;
  readonly count?: number;
}

function parseElement(kind: unknown, field: string): Parsed | undefined {
  if (typeof kind === "string") {
    const scalar = Object.hasOwn(SCALARS, kind) ? SCALARS[kind] : undefined;
    if (scalar !== undefined) {
      return { role: "value", size: scalar.size, align: scalar.align, element: scalar };
    }
    const char = /^char\[(0|[1-9][0-9]*)\]$/.exec(kind);
    if (char !== null) {
      const length = sizeIn(char[1]!, "char", field);
      return { role: "value", size: length, align: 1, element: charElement(length) };
    }
    return undefined;
  }
  const struct = compiledOf(kind);
  if (struct === undefined) return undefined;
  return {
    role: "value",
    size: struct.size,
    align: struct.align,
    element: structElement(struct),
    struct,
  };
}

function parseKind(kind: unknown, field: string): Parsed {
  const element = parseElement(kind, field);
  if (element !== undefined) return element;
  if (kind === "mutex") return { role: "mutex", size: Mutex.byteLength, align: 4 };
  if (typeof kind === "string") {
    const pad = /^pad\[(0|[1-9][0-9]*)\]$/.exec(kind);
    if (pad !== null) return { role: "padding", size: sizeIn(pad[1]!, "pad", field), align: 1 };
    fail(TypeError, `field ${field} has unknown kind ${JSON.stringify(kind)}; expected ${KINDS}`);
  }
  if (!Array.isArray(kind)) {
    fail(TypeError, `field ${field} has kind ${typeName(kind)}; expected ${KINDS}`);
  }
  if (kind.length !== 2) {
    fail(TypeError, `field ${field}: an array kind is [kind, count], got ${kind.length} items`);
  }
  const [inner, count] = kind as unknown[];
  if (typeof count !== "number") {
    fail(
      TypeError,
      `field ${field}: the count of [kind, count] is ${typeName(count)}, not a number`,
    );
  }
  if (inner === "channel") {
    const min = Channel.byteLengthFor(64);
    const max = Channel.byteLengthFor(1 << 30);
    if (!Number.isInteger(count) || count < min || count > max || count % 8 !== 0) {
      fail(
        RangeError,
        `field ${field}: a channel takes a multiple of 8 bytes from ${min} to ${max}, got ${count} (see Channel.byteLengthFor)`,
      );
    }
    return { role: "channel", size: count, align: 8 };
  }
  const parsed = parseElement(inner, field);
  if (parsed === undefined) {
    fail(
      TypeError,
      `field ${field}: an array holds scalars, "char[N]" strings or structs, got ${
        typeof inner === "string" ? JSON.stringify(inner) : typeName(inner)
      }`,
    );
  }
  if (!Number.isInteger(count) || count < 1) {
    fail(RangeError, `field ${field}: an array's count is an integer of at least 1, got ${count}`);
  }
  if (parsed.size * count > MAX_SIZE) {
    fail(
      RangeError,
      `field ${field}: ${count} elements of ${parsed.size} bytes exceed ${MAX_SIZE}`,
    );
  }
  return { ...parsed, size: parsed.size * count, count };
}

/** Lays out a definition; throws "Cannot define struct: ..." errors. */
export function compile(
  definition: unknown,
  packed: boolean,
  name: string | undefined,
): Compiled {
  if (typeof definition !== "object" || definition === null || Array.isArray(definition)) {
    fail(TypeError, `expected an object of field names to kinds, got ${typeName(definition)}`);
  }
  if (compiledOf(definition) !== undefined) {
    fail(
      TypeError,
      "expected an object of field names to kinds, got a struct (nest it as a field)",
    );
  }
  if (Object.getOwnPropertySymbols(definition).length > 0) {
    fail(TypeError, "field names must be strings, not symbols");
  }
  const names = Object.keys(definition);
  if (names.length === 0) fail(RangeError, "it has no fields (a C struct can't be empty)");
  const fields: Field[] = [];
  const byName = new Map<string, Field>();
  let offset = 0;
  let align = 1;
  let hasSync = false;
  for (const field of names) {
    checkIdentifier(field, "field name", "Cannot define struct");
    const kind = (definition as Record<string, unknown>)[field];
    const parsed = parseKind(kind, field);
    const sync = parsed.role === "mutex" || parsed.role === "channel" ||
      parsed.struct?.hasSync === true;
    if (packed && sync) {
      fail(
        RangeError,
        `field ${field}: a packed struct can't hold a mutex or channel (their words must stay aligned)`,
      );
    }
    hasSync ||= sync;
    const a = packed ? 1 : parsed.align;
    offset = Math.ceil(offset / a) * a;
    const laid: Field = { name: field, kind, ...parsed, offset, align: a };
    fields.push(laid);
    byName.set(field, laid);
    offset += parsed.size;
    align = Math.max(align, a);
    if (offset > MAX_SIZE) fail(RangeError, `it would be larger than ${MAX_SIZE} bytes`);
  }
  const size = Math.ceil(offset / align) * align;
  if (size > MAX_SIZE) fail(RangeError, `it would be larger than ${MAX_SIZE} bytes`);
  return { name, size, align, packed, fields, byName, hasSync };
}

// --- whole-struct codecs (copies)

/** Reads a field's value (arrays as copies). */
export function readField(f: Field, dv: DataView, at: number): unknown {
  const e = f.element!;
  if (f.count === undefined) return e.read(dv, at);
  if (e.typed !== undefined && e.kind !== "bool") {
    const out = new e.typed(f.count);
    new Uint8Array(out.buffer).set(new Uint8Array(dv.buffer, dv.byteOffset + at, f.size));
    return out;
  }
  const out = new Array<unknown>(f.count);
  for (let i = 0; i < f.count; i++) out[i] = e.read(dv, at + i * e.size);
  return out;
}

/** Throws when `value` can't be stored in the field. */
export function checkField(f: Field, value: unknown, path: string): void {
  const e = f.element!;
  if (f.count === undefined) return e.check(value, path);
  const items = value as ArrayLike<unknown>;
  if (
    typeof value !== "object" || value === null || typeof items.length !== "number"
  ) {
    throw new TypeError(
      `Cannot set ${path}: expected an array of ${f.count}, got ${typeName(value)}`,
    );
  }
  if (items.length !== f.count) {
    throw new RangeError(`Cannot set ${path}: expected ${f.count} elements, got ${items.length}`);
  }
  for (let i = 0; i < f.count; i++) e.check(items[i], `${path}[${i}]`);
}

/** Stores a checked value. */
export function writeField(f: Field, dv: DataView, at: number, value: unknown): void {
  const e = f.element!;
  if (f.count === undefined) return e.write(dv, at, value);
  const items = value as ArrayLike<unknown>;
  for (let i = 0; i < f.count; i++) e.write(dv, at + i * e.size, items[i]);
}

/** Reads every value field into a plain object. */
export function readStruct(s: Compiled, dv: DataView, at: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of s.fields) if (f.role === "value") out[f.name] = readField(f, dv, at + f.offset);
  return out;
}

/** Throws when `value` has a field the struct lacks or a value it can't store. */
export function checkStruct(s: Compiled, value: unknown, path: string): void {
  const proto = typeof value === "object" && value !== null
    ? Object.getPrototypeOf(value)
    : undefined;
  // A live view or class instance keeps its fields on the prototype: refuse it
  // rather than write nothing.
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError(
      `Cannot set ${path}: expected a plain object of field values, got ${
        typeName(value)
      } (read a view with get() first)`,
    );
  }
  for (const key of Object.keys(value as object)) {
    const f = s.byName.get(key);
    const where = `${path}.${key}`;
    if (f === undefined) throw new TypeError(`Cannot set ${where}: the struct has no such field`);
    if (f.role !== "value") {
      throw new TypeError(`Cannot set ${where}: a ${f.role} field holds no value`);
    }
    checkField(f, (value as Record<string, unknown>)[key], where);
  }
}

/** Stores the fields of a checked object. */
export function writeStruct(s: Compiled, dv: DataView, at: number, value: unknown): void {
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const f = s.byName.get(key)!;
    writeField(f, dv, at + f.offset, v);
  }
}

/** Zeroes a struct, then lays out each mutex and channel in it (nested ones too). */
export function initStruct(s: Compiled, dv: DataView, at: number): void {
  new Uint8Array(dv.buffer, dv.byteOffset + at, s.size).fill(0);
  initSync(s, dv, at);
}

function initSync(s: Compiled, dv: DataView, at: number): void {
  if (!s.hasSync) return;
  for (const f of s.fields) {
    const bytes = () => new Uint8Array(dv.buffer, dv.byteOffset + at + f.offset, f.size);
    if (f.role === "mutex") Mutex.init(bytes());
    else if (f.role === "channel") Channel.init(bytes());
    else if (f.struct !== undefined) {
      for (let i = 0; i < (f.count ?? 1); i++) {
        initSync(f.struct, dv, at + f.offset + i * f.struct.size);
      }
    }
  }
}
