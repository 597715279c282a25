/**
 * Picks the platform table for the running OS and CPU when the module loads.
 *
 * Detection is runtime-neutral and needs no imports: `Deno.build` under Deno,
 * `process.platform` / `process.arch` elsewhere (Bun, Node). Loading on an
 * unsupported platform throws, naming it.
 *
 * ```ts
 * import { platform } from "@shmkit/shmkit/raw";
 *
 * const flags = platform.constants.MAP_SHARED;
 * ```
 *
 * @module
 */

import { DARWIN_AARCH64 } from "./darwin.ts";
import { LINUX_AARCH64 } from "./linux_aarch64.ts";
import { LINUX_X86_64 } from "./linux_x86_64.ts";
import type { Platform } from "./types.ts";
import { deno, nodeProcess } from "../core/_runtime.ts";

export type {
  ConstantName,
  FieldKind,
  FieldLayout,
  Platform,
  StructLayout,
  StructName,
} from "./types.ts";
export { CONSTANT_NAMES, STRUCT_NAMES } from "./types.ts";

/** Every table shmkit ships, in the order the error message lists them. */
export const PLATFORMS: readonly Platform[] = [
  LINUX_X86_64,
  LINUX_AARCH64,
  DARWIN_AARCH64,
];

/** How a table is named in messages: `linux-x86_64-gnu`, `darwin-aarch64 (untested)`. */
function label(p: Platform): string {
  // The libc is worth naming only where the OS does not imply it.
  const name = p.libc === p.os ? `${p.os}-${p.arch}` : `${p.os}-${p.arch}-${p.libc}`;
  return p.tested ? name : `${name} (untested)`;
}

/**
 * Returns the table for an OS and architecture, spelled as `Deno.build`
 * spells them (`"linux"`, `"x86_64"`).
 *
 * @param os The operating system, e.g. `"linux"` or `"darwin"`.
 * @param arch The CPU architecture, e.g. `"x86_64"` or `"aarch64"`.
 * @returns The matching platform table.
 * @throws {Error} When shmkit has no table for that pair.
 */
export function selectPlatform(os: string, arch: string): Platform {
  const found = PLATFORMS.find((p) => p.os === os && p.arch === arch);
  if (found === undefined) {
    throw new Error(
      `Cannot load shmkit: unsupported platform ${os}-${arch}; supported: ${
        PLATFORMS.map(label).join(", ")
      }`,
    );
  }
  return found;
}

/** Node/Bun spell architectures differently from Deno. */
const NODE_ARCH: Readonly<Record<string, string>> = {
  x64: "x86_64",
  arm64: "aarch64",
};

/**
 * Reports the running OS and architecture in `Deno.build` spelling.
 *
 * @returns `os` and `arch`, e.g. `{ os: "linux", arch: "x86_64" }`; `"unknown"`
 * for what no runtime global reveals.
 */
export function detectPlatform(): { os: string; arch: string } {
  const build = deno?.build;
  if (build?.os !== undefined && build.arch !== undefined) {
    return { os: build.os, arch: build.arch };
  }
  const proc = nodeProcess;
  if (proc?.platform !== undefined && proc.arch !== undefined) {
    return { os: proc.platform, arch: NODE_ARCH[proc.arch] ?? proc.arch };
  }
  return { os: "unknown", arch: "unknown" };
}

/** The table for the running platform, chosen at load; loading throws on an unsupported platform. */
export const platform: Platform = (() => {
  const { os, arch } = detectPlatform();
  return selectPlatform(os, arch);
})();
