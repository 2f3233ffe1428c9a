#!/usr/bin/env bash
# fetch-chdb.sh puts libchdb.so (chDB, ClickHouse in-process) at
# .cache/chdb/libchdb.so in the repository and prints its path.
#
# Idempotent: does nothing when a valid library is already there; otherwise
# reuses a tarball cached under .cache/chdb (and npm's own cache) before
# downloading @chdb/lib-linux-x64-gnu with `npm pack` (~166 MB).
set -euo pipefail

CHDB_VERSION="${CHDB_VERSION:-26.5.3}"
PKG="@chdb/lib-linux-x64-gnu@${CHDB_VERSION}"
TARBALL_NAME="chdb-lib-linux-x64-gnu-${CHDB_VERSION}.tgz"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${root}/.cache/chdb"
lib="${dir}/libchdb.so"
tarball="${dir}/${TARBALL_NAME}"

die() { echo "fetch-chdb: $*" >&2; exit 1; }

# valid_lib checks that $1 is an ELF shared object exporting the C API we bind.
valid_lib() {
	[ -s "$1" ] || return 1
	[ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ] || return 1
	if command -v nm >/dev/null 2>&1; then
		nm -D --defined-only "$1" 2>/dev/null | grep -q ' chdb_query_with_params_n$' || return 1
	fi
}

if valid_lib "$lib"; then
	echo "$lib"
	exit 0
fi

case "$(uname -s)-$(uname -m)" in
Linux-x86_64) ;;
*) die "only linux x86_64 is packaged here (got $(uname -s)-$(uname -m)); install libchdb yourself (https://github.com/chdb-io/chdb) and set CHDB_LIB_PATH" ;;
esac

mkdir -p "$dir"

if [ ! -s "$tarball" ] || ! gzip -t "$tarball" 2>/dev/null; then
	command -v npm >/dev/null 2>&1 || die "npm is needed to download ${PKG} (install Node.js/npm, or set CHDB_LIB_PATH to an existing libchdb.so)"
	rm -f "$tarball"
	echo "fetch-chdb: downloading ${PKG} (~166 MB) with npm pack" >&2
	packdir="$(mktemp -d "${dir}/pack.XXXXXX")"
	trap 'rm -rf "$packdir"' EXIT
	(cd "$packdir" && npm pack --silent "$PKG" >/dev/null) || die "npm pack ${PKG} failed"
	got="$(ls "$packdir"/*.tgz 2>/dev/null | head -n1)"
	[ -n "$got" ] || die "npm pack ${PKG} produced no tarball"
	mv "$got" "$tarball"
fi

# Extract into a temporary directory and rename, so an interrupted run never
# leaves a truncated libchdb.so behind.
tmp="$(mktemp -d "${dir}/extract.XXXXXX")"
trap 'rm -rf "$tmp" "${packdir:-}"' EXIT
tar -xzf "$tarball" -C "$tmp" package/libchdb.so || die "cannot extract package/libchdb.so from $tarball (delete it to download again)"
valid_lib "$tmp/package/libchdb.so" || die "package/libchdb.so in $tarball is not a valid chDB library (delete the tarball to download again)"
mv -f "$tmp/package/libchdb.so" "$lib"
echo "$lib"
