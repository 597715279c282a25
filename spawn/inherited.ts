/**
 * The child's side of {@linkcode spawnScript}: the shared regions the
 * parent handed over, by the names it gave them.
 *
 * The parent passes each region's fd at a fixed number (3, 4, ...) and
 * lists them in the environment variable `SHMKIT_FDS` (`counter=3,log=4`).
 * The variable is read from the C environment, so Deno needs no
 * `--allow-env` (only `--allow-ffi`), and taken out of it when shmkit
 * loads: grandchildren never see it.
 *
 * @example A child script doubling a shared counter
 * ```ts
 * import { inheritedFds, inheritedRegion } from "@shmkit/shmkit";
 * // Started by spawnScript(..., { regions: { counter } }); run alone, it has none.
 * if ("counter" in inheritedFds()) {
 *   using counter = inheritedRegion("counter");
 *   const value = counter.view(BigUint64Array, 0, 1);
 *   value[0]! *= 2n;
 * }
 * ```
 *
 * @module
 */
import { ErrnoError } from "../core/errors.ts";
import { errno, unsafeLibc } from "../ffi/libc.ts";
import { Memfd, type MemfdFromFdOptions } from "../shm/memfd.ts";
import { platform } from "../platform/mod.ts";
import { INHERITED_FDS_VARIABLE, takeVariable } from "./_environ.ts";
import { checkOptions } from "../core/_validate.ts";

const C = platform.constants;

let parsed: Readonly<Record<string, number>> | undefined;
const taken = new Map<string, Memfd>();

/**
 * `SHMKIT_FDS` as this process started with it. It is taken out of the
 * environment when shmkit loads (the C environ, and Bun's `process.env`),
 * and the fds it names are marked close-on-exec, so this process's own
 * children (by any API) never see a list of fds they don't have.
 */
const inheritedText: string = (() => {
  const text = takeVariable(INHERITED_FDS_VARIABLE);
  try {
    for (const fd of Object.values(parseInheritedFds(text))) setCloexec(fd);
  } catch {
    // Malformed: inheritedFds() says so when asked.
  }
  return text;
})();

/** Sets FD_CLOEXEC; the fd's flags, or -1 when it is not open. */
function setCloexec(fd: number): number {
  const flags = unsafeLibc.fcntl(fd, C.F_GETFD, 0);
  if (flags !== -1) unsafeLibc.fcntl(fd, C.F_SETFD, flags | C.FD_CLOEXEC);
  return flags;
}

/** Parses a `name=fd,name=fd` list. */
export function parseInheritedFds(text: string): Record<string, number> {
  // No prototype: a region may be called "__proto__" or "constructor".
  const fds: Record<string, number> = Object.create(null);
  if (text === "") return fds;
  for (const item of text.split(",")) {
    const match = /^([A-Za-z0-9_.-]+)=(0|[1-9][0-9]{0,9})$/.exec(item);
    if (match === null) {
      throw new Error(
        `Cannot read ${INHERITED_FDS_VARIABLE}: ${JSON.stringify(item)} is not "name=fd"`,
      );
    }
    if (Object.hasOwn(fds, match[1]!)) {
      throw new Error(
        `Cannot read ${INHERITED_FDS_VARIABLE}: ${JSON.stringify(match[1])} appears twice`,
      );
    }
    fds[match[1]!] = Number(match[2]);
  }
  return fds;
}

/**
 * The fds the parent handed over, by name, from `SHMKIT_FDS` as this
 * process started with it (shmkit takes the variable out of the environment
 * when it loads, so children don't inherit it). Each is checked to be open
 * and marked close-on-exec, so it does not leak further into this process's
 * own children by accident. Empty when this process was not started by
 * {@linkcode spawnScript}.
 *
 * @example
 * ```ts
 * import { inheritedFds } from "@shmkit/shmkit";
 * console.log(inheritedFds()); // e.g. { counter: 3 } in a child given one region
 * ```
 *
 * @throws {Error} When `SHMKIT_FDS` is malformed or names an fd that is not open.
 */
export function inheritedFds(): Readonly<Record<string, number>> {
  if (parsed !== undefined) return parsed;
  const fds = parseInheritedFds(inheritedText);
  for (const [name, fd] of Object.entries(fds)) {
    if (setCloexec(fd) === -1) {
      throw new ErrnoError("fcntl", errno(), {
        fd,
        hint: `${INHERITED_FDS_VARIABLE} names fd ${fd} for ${
          JSON.stringify(name)
        }, but it is not open here`,
      });
    }
  }
  parsed = Object.freeze(fds);
  return parsed;
}

/**
 * The fd the parent handed over under `name`.
 *
 * @throws {Error} When the parent handed over no region by that name.
 */
export function inheritedFd(name: string): number {
  const fds = inheritedFds();
  if (!Object.hasOwn(fds, name)) {
    const known = Object.keys(fds);
    throw new Error(
      `Cannot find inherited region ${JSON.stringify(name)}: ${
        known.length === 0
          ? `no ${INHERITED_FDS_VARIABLE} in the environment (was this process started by spawnScript?)`
          : `the parent handed over ${known.map((n) => JSON.stringify(n)).join(", ")}`
      }`,
    );
  }
  return fds[name]!;
}

/**
 * Maps the region the parent handed over under `name`, as a
 * {@linkcode Memfd} that owns the fd (`Memfd.fromFd`). Asking again for the
 * same name returns the same object while it is open.
 *
 * The parent is trusted by default (`requireSeals: []`, so a POSIX shared
 * memory object works too); pass `requireSeals: ["shrink"]` to refuse memory
 * the parent could still truncate under this process.
 *
 * @example
 * ```ts
 * import { inheritedFds, inheritedRegion } from "@shmkit/shmkit";
 * if ("log" in inheritedFds()) {
 *   using log = inheritedRegion("log", { minSize: 4096, requireSeals: ["shrink"] });
 *   console.log(log.byteLength);
 * }
 * ```
 *
 * @throws {Error} When there is no such region, or it fails `Memfd.fromFd`'s checks,
 *   or it was taken and closed already (its fd is gone).
 */
export function inheritedRegion(name: string, options?: MemfdFromFdOptions): Memfd {
  const o = checkOptions(options, "options");
  const fd = inheritedFd(name);
  const existing = taken.get(name);
  if (existing !== undefined) {
    if (existing.closed) {
      throw new Error(
        `Cannot map inherited region ${
          JSON.stringify(name)
        }: it was taken and closed, and its fd with it`,
      );
    }
    return existing;
  }
  const memory = Memfd.fromFd(fd, { requireSeals: [], ...o });
  taken.set(name, memory);
  return memory;
}

/**
 * Maps every region the parent handed over, by name (see
 * {@linkcode inheritedRegion}).
 *
 * @example
 * ```ts
 * import { inheritedRegions } from "@shmkit/shmkit";
 * const { counter } = inheritedRegions();
 * ```
 */
export function inheritedRegions(options?: MemfdFromFdOptions): Record<string, Memfd> {
  const regions: Record<string, Memfd> = {};
  for (const name of Object.keys(inheritedFds())) regions[name] = inheritedRegion(name, options);
  return regions;
}
