#!/usr/bin/env bash
# Fetches the embedded ClickHouse engine (libchdb.so, ~560 MB) into $REPO/.cache/chdb/.
#
# Contract: idempotent. If .cache/chdb/libchdb.so already exists nothing is downloaded; either
# way the last line printed on stdout is the absolute path of the library, so callers can do
#   export CHDB_LIB_PATH="$(scripts/fetch-chdb.sh | tail -n1)"
# There is no NuGet package for chDB; the npm package @chdb/lib-linux-x64-gnu ships the same
# shared library the official bindings use, and npm is reachable from the build machines.
# The version is pinned (and the tarball checksum checked) because the C API has changed shape
# between chDB releases; src/Store/Native/ChDbNative.cs is written against this exact version.
set -euo pipefail

CHDB_NPM_PACKAGE="@chdb/lib-linux-x64-gnu"
CHDB_VERSION="26.5.3"
# sha1 of chdb-lib-linux-x64-gnu-26.5.3.tgz as reported by `npm pack` (npm's own shasum).
CHDB_TGZ_SHA1="3e52ecb7d894d9ebb1a6a50ac03f64208cc65501"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST_DIR="$REPO/.cache/chdb"
DEST="$DEST_DIR/libchdb.so"

if [[ -s "$DEST" ]]; then
    echo "$DEST"
    exit 0
fi

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *) echo "fetch-chdb.sh: only linux-x64 (glibc) is supported, this is $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac
command -v npm >/dev/null || { echo "fetch-chdb.sh: npm is required (apt-get install npm)" >&2; exit 1; }

mkdir -p "$DEST_DIR"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/fetch-chdb.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

echo "fetch-chdb.sh: downloading $CHDB_NPM_PACKAGE@$CHDB_VERSION (~170 MB)..." >&2
(cd "$TMP" && npm pack --silent "$CHDB_NPM_PACKAGE@$CHDB_VERSION" >/dev/null)
TGZ="$(ls "$TMP"/*.tgz)"

ACTUAL_SHA1="$(sha1sum "$TGZ" | cut -d' ' -f1)"
if [[ "$ACTUAL_SHA1" != "$CHDB_TGZ_SHA1" ]]; then
    echo "fetch-chdb.sh: checksum mismatch for $TGZ: expected $CHDB_TGZ_SHA1, got $ACTUAL_SHA1" >&2
    exit 1
fi

tar -xzf "$TGZ" -C "$TMP" package/libchdb.so
# Move into place via a temp name on the same filesystem so a concurrent or interrupted run
# never leaves a truncated libchdb.so that the -s check above would accept.
mv "$TMP/package/libchdb.so" "$DEST_DIR/libchdb.so.partial.$$"
chmod 0755 "$DEST_DIR/libchdb.so.partial.$$"
mv -f "$DEST_DIR/libchdb.so.partial.$$" "$DEST"

echo "$DEST"
