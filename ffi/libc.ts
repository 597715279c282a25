/**
 * Loads libc through the runtime's FFI: picks the backend, looks every symbol
 * up with dlsym (so a missing optional symbol is a capability, not a crash),
 * and binds each from the first library that has it.
 *
 * @module
 */
import { platform } from "../platform/mod.ts";
import { createBunBackend } from "./bun_backend.ts";
import { createDenoBackend } from "./deno_backend.ts";
import { createNodeBackend } from "./node_backend.ts";
import { LOADER_SYMBOLS, SYMBOLS, type Symbols } from "./symbols.ts";
import type { Backend, JsFunctions, SymbolTable } from "./types.ts";

// RTLD_LAZY is 1 on Linux and Darwin alike; dlopen needs one of LAZY/NOW.
const RTLD_LAZY = 1;

async function createBackend(): Promise<Backend> {
  if ("Deno" in globalThis) return createDenoBackend();
  if ("Bun" in globalThis) return await createBunBackend();
  const node = (globalThis as { process?: { versions?: { node?: string } } }).process?.versions
    ?.node;
  if (node !== undefined) return await createNodeBackend();
  throw new Error(
    "Cannot load shmkit: unsupported runtime; shmkit needs Deno, Bun or Node FFI",
  );
}

function encodeCString(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text + "\0");
}

/** The backend of the runtime this module runs in. */
export const backend: Backend = await createBackend();

const loader = (() => {
  for (const path of [platform.libraries[0]!, "libdl.so.2"]) {
    try {
      return backend.open(path, LOADER_SYMBOLS) as unknown as JsFunctions<
        typeof LOADER_SYMBOLS
      >;
    } catch {
      // glibc before 2.34 keeps dlopen/dlsym in libdl
    }
  }
  throw new Error(
    `Cannot load shmkit: dlopen/dlsym not found in ${platform.libraries[0]} or libdl.so.2`,
  );
})();

const table: SymbolTable = {
  ...SYMBOLS,
  errno_location: { ...SYMBOLS.errno_location, name: platform.errnoLocation },
};

const handles = platform.libraries.map((path) => ({
  path,
  handle: loader.dlopen(encodeCString(path), RTLD_LAZY),
}));
if (handles[0]!.handle === 0) {
  throw new Error(
    `Cannot load shmkit: ${
      platform.libraries[0]
    } could not be opened on ${platform.os}-${platform.arch}`,
  );
}

/**
 * Internal: binds a symbol table, each symbol from the first library that
 * has it. Optional symbols no library has are left out; a missing required
 * symbol throws, naming it.
 */
export function bindTable(
  symbols: SymbolTable,
): Record<string, (...args: never[]) => unknown> {
  const groups = new Map<string, Record<string, SymbolTable[string]>>();
  const missing: string[] = [];
  for (const [key, def] of Object.entries(symbols)) {
    if (def.nonblocking && !backend.nonblocking) continue;
    const cname = encodeCString(def.name ?? key);
    const found = handles.find(({ handle }) => handle !== 0 && loader.dlsym(handle, cname) !== 0);
    if (found === undefined) {
      if (!def.optional) missing.push(def.name ?? key);
      continue;
    }
    const group = groups.get(found.path) ?? {};
    group[key] = def;
    groups.set(found.path, group);
  }
  if (missing.length > 0) {
    throw new Error(
      `Cannot load shmkit: ${platform.libraries.join(", ")} lack ${missing.join(", ")}`,
    );
  }
  const bound: Record<string, (...args: never[]) => unknown> = {};
  for (const [path, group] of groups) Object.assign(bound, backend.open(path, group));
  return bound;
}

const bound = bindTable(table);

/**
 * UNSAFE: the raw libc functions, as C declares them. No argument is checked
 * and errno is not read; a wrong pointer or length crashes the process. Use
 * the safe modules unless you need a call they don't make.
 */
export const unsafeLibc: JsFunctions<Symbols> = bound as JsFunctions<Symbols>;

/** The libc symbols this process could bind, optional ones included. */
export const availableSymbols: ReadonlySet<string> = new Set(Object.keys(bound));

const errnoCell = new Int32Array(
  backend.arrayBuffer(unsafeLibc.errno_location(), 4),
);

/**
 * The calling thread's errno. Read it right after the failing call, before any
 * other FFI call can overwrite it.
 */
export function errno(): number {
  return errnoCell[0]!;
}

/** Sets the calling thread's errno (for calls whose failure is ambiguous). */
export function setErrno(value: number): void {
  errnoCell[0] = value;
}
