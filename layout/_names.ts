/**
 * Internal: which names a field or struct may have, so that the emitted C
 * and Python compile: identifiers of both languages, no keyword of either,
 * nothing C reserves, nothing the emitted code itself uses.
 *
 * @module
 */
import { typeName } from "../ffi/pointer.ts";

const C_KEYWORDS = [
  "auto",
  "break",
  "case",
  "char",
  "const",
  "continue",
  "default",
  "do",
  "double",
  "else",
  "enum",
  "extern",
  "float",
  "for",
  "goto",
  "if",
  "inline",
  "int",
  "long",
  "register",
  "restrict",
  "return",
  "short",
  "signed",
  "sizeof",
  "static",
  "struct",
  "switch",
  "typedef",
  "union",
  "unsigned",
  "void",
  "volatile",
  "while",
  "alignas",
  "alignof",
  "bool",
  "constexpr",
  "false",
  "nullptr",
  "static_assert",
  "thread_local",
  "true",
  "typeof",
  "typeof_unqual",
  "asm",
  // names the emitted header includes (<stdbool.h>, <stddef.h>, <stdint.h>)
  "offsetof",
  "NULL",
  "size_t",
  "ptrdiff_t",
  "wchar_t",
  "max_align_t",
  "intptr_t",
  "uintptr_t",
  "intmax_t",
  "uintmax_t",
  "int8_t",
  "int16_t",
  "int32_t",
  "int64_t",
  "uint8_t",
  "uint16_t",
  "uint32_t",
  "uint64_t",
]; // deno-fmt-ignore

const PYTHON_KEYWORDS = [
  "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
  "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in",
  "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with",
  "yield",
  // ctypes.Structure class methods a field would hide, and the emitted module's import
  "from_buffer", "from_buffer_copy", "from_address", "from_param", "in_dll", "ctypes",
]; // deno-fmt-ignore

const RESERVED = new Set([...C_KEYWORDS, ...PYTHON_KEYWORDS]);

/**
 * Checks that `name` is usable as a field or struct name in C and Python.
 *
 * @param prefix The message start ("Cannot define struct").
 * @throws {TypeError} When it is not a string.
 * @throws {RangeError} When it is not an identifier of both, or reserved by either.
 */
export function checkIdentifier(name: unknown, what: string, prefix: string): string {
  if (typeof name !== "string") {
    throw new TypeError(`${prefix}: the ${what} is ${typeName(name)}, not a string`);
  }
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw new RangeError(
      `${prefix}: the ${what} ${
        JSON.stringify(name)
      } is not a C and Python identifier (letters, digits, _)`,
    );
  }
  if (RESERVED.has(name)) {
    throw new RangeError(`${prefix}: the ${what} "${name}" is a reserved word in C or Python`);
  }
  // C reserves __x and _X; ctypes uses _x_ (_fields_, _pack_) and _objects.
  if (/^(__|_[A-Z])/.test(name) || /^_.*_$/.test(name) || name === "_objects") {
    throw new RangeError(
      `${prefix}: the ${what} "${name}" is reserved (C reserves __x and _X, ctypes _x_)`,
    );
  }
  if (name.length > 63) {
    throw new RangeError(`${prefix}: the ${what} "${name}" is longer than 63 characters`);
  }
  return name;
}
