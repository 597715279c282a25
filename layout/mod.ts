/**
 * Struct layouts over shared memory that C and Python agree on:
 * {@linkcode defineStruct} describes the fields once; the struct reads and
 * writes them in place (`get`, `set`, live `view`s, `array`s), lays out
 * mutexes and channels in it (`init`), and emits a C header
 * (`toCHeader`) and a Python ctypes module (`toPythonCtypes`) with the same
 * offsets, checked by their compilers. See docs/layout.md.
 *
 * @example
 * ```ts
 * import { SharedMemory } from "@shmkit/shmkit";
 * import { defineStruct } from "@shmkit/shmkit/layout";
 * const Point = defineStruct({ x: "f32", y: "f32" }, { name: "point" });
 * const Frame = defineStruct({ seq: "u64", flags: "u8", points: [Point, 8] }, { name: "frame" });
 * using shm = SharedMemory.create({ size: 4096 });
 * const frame = Frame.view(shm);
 * frame.seq = 1n;
 * frame.points.at(0).x = 0.5;
 * console.log(Frame.size, Frame.offsetOf("points")); // 80 12
 * ```
 *
 * @module
 */
export {
  defineStruct,
  type FieldLayout,
  Struct,
  type StructOptions,
  type StructTarget,
} from "./struct.ts";
export type {
  AnyStruct,
  ArrayKind,
  ArrayView,
  BigIntKind,
  ChannelKind,
  CharKind,
  ElementInput,
  ElementKind,
  ElementValue,
  FieldInput,
  FieldKind,
  FieldValue,
  FieldView,
  FloatKind,
  HandleKeys,
  IntegerKind,
  PaddingKind,
  PlainKeys,
  ScalarKind,
  ScalarValue,
  StringArray,
  StructArray,
  StructDefinition,
  StructInput,
  StructValue,
  StructView,
  TypedArrayOf,
  ValueKeys,
} from "./_types.ts";
