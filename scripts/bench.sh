#!/usr/bin/env bash
# `make bench`: every benchmark of every package against the real services,
# figures printed; services stopped afterwards (unless KEEP_SERVICES=1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cleanup() {
	local rc=$?
	if [[ ${KEEP_SERVICES:-} != 1 ]]; then
		scripts/services.sh down || true
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/services.sh up
scripts/fetch-chdb.sh >/dev/null
eval "$(scripts/services.sh env)"

go test -p 1 -run '^$' -bench "${BENCH:-.}" -benchmem -timeout 30m "$@" ./...
