/**
 * Internal: {@linkcode SharedMemory.list}'s scan of /dev/shm.
 *
 * @module
 */
import { ErrnoError } from "../core/errors.ts";
import { errno, setErrno, unsafeLibc } from "../ffi/libc.ts";
import { cString, unsafeReadCString } from "../ffi/pointer.ts";
import { platform } from "../platform/mod.ts";
import { statPath } from "../core/_io.ts";
import { checkOptions } from "../core/_validate.ts";
import { SHM_DIR } from "./_names.ts";
import type { SharedMemoryInfo, SharedMemoryListOptions } from "./_shm_types.ts";

/** The named objects in /dev/shm whose names start with `options.prefix`, sorted. */
export function listObjects(options?: SharedMemoryListOptions): SharedMemoryInfo[] {
  const o = checkOptions(options, "options");
  const prefix = o.prefix ?? "/";
  if (typeof prefix !== "string") {
    throw new TypeError(`Cannot use prefix: expected a string, got ${typeof prefix}`);
  }
  if (!prefix.startsWith("/")) {
    throw new RangeError(
      `Cannot use prefix ${JSON.stringify(prefix)}: names start with "/" (e.g. ${
        JSON.stringify("/" + prefix)
      })`,
    );
  }
  if (platform.os !== "linux") {
    throw new Error(
      `Cannot list shared memory objects: ${platform.os} keeps them where no program can list them`,
    );
  }
  const names: string[] = [];
  const dir = unsafeLibc.opendir(cString(SHM_DIR, "path"));
  if (dir === 0) throw new ErrnoError("opendir", errno(), { path: SHM_DIR });
  try {
    const nameField = platform.structs.dirent.fields["d_name"]!;
    for (;;) {
      setErrno(0); // readdir reports both the end and an error as NULL
      const entry = unsafeLibc.readdir(dir);
      if (entry === 0) {
        const code = errno();
        if (code !== 0) throw new ErrnoError("readdir", code, { path: SHM_DIR });
        break;
      }
      const file = unsafeReadCString(entry + nameField.offset, nameField.size);
      if (file === "." || file === "..") continue;
      const name = "/" + file;
      if (name.startsWith(prefix)) names.push(name);
    }
  } finally {
    unsafeLibc.closedir(dir);
  }
  const found: SharedMemoryInfo[] = [];
  for (const name of names.sort()) {
    // lstat: a symbolic link planted in /dev/shm is not followed, and not listed.
    const status = statPath(SHM_DIR + name, false);
    if (status === undefined || !status.isFile) continue; // gone meanwhile, or not an object
    found.push({
      name,
      size: status.size,
      mode: status.mode & 0o7777,
      uid: status.uid,
      gid: status.gid,
    });
  }
  return found;
}
