#!/usr/bin/env bash
# `make bench`: every benchmark of every package against the real services,
# figures printed, then the HTTP load benchmark (scripts/bench-http.sh);
# services stopped afterwards (unless KEEP_SERVICES=1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Services that were already running (a developer's) are left running.
already=$(scripts/services.sh status 2>/dev/null || true)

cleanup() {
	local rc=$?
	if [[ ${KEEP_SERVICES:-} != 1 ]]; then
		[[ $already == *"kafka: running"* ]] || scripts/services.sh down kafka || true
		[[ $already == *"clickhouse: running"* ]] || scripts/services.sh down clickhouse || true
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/services.sh up
scripts/fetch-chdb.sh >/dev/null
eval "$(scripts/services.sh env)"

go test -p 1 -run '^$' -bench "${BENCH:-.}" -benchmem -timeout 30m "$@" ./...

# The middleware under an HTTP load generator (wrk), with the services above.
scripts/bench-http.sh
