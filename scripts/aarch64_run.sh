#!/usr/bin/env bash
# Usage: scripts/aarch64_run.sh <deno|bun|node|path-to-aarch64-exe> [args...]
# Runs an aarch64 executable under qemu-user; QEMU_LD_PREFIX makes qemu resolve the aarch64
# dynamic loader and libc.so.6 (incl. FFI dlopen) from the Debian cross sysroot.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ $# -ge 1 ]] || { echo "usage: $0 <deno|bun|node|exe> [args...]" >&2; exit 2; }
case "$1" in
  deno|bun|node) exe="$ROOT/.cache/aarch64/bin/$1" ;;
  *) exe="$1" ;;
esac
shift
[[ -x $exe ]] || { echo "aarch64_run: $exe not found; run scripts/setup_aarch64.sh" >&2; exit 1; }
export QEMU_LD_PREFIX="${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}"
# Tests read this to allow for what emulation can't do (host-reserved signals).
export SHMKIT_EMULATOR=qemu-user
exec qemu-aarch64-static "$exe" "$@"
