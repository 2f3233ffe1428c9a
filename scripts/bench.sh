#!/usr/bin/env bash
# `make bench`: every benchmark of every package against the real services,
# figures printed, then the HTTP load benchmark (scripts/bench-http.sh);
# the services it started are stopped afterwards (unless KEEP_SERVICES=1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/services-for-run.sh
scripts/fetch-chdb.sh >/dev/null

go test -p 1 -run '^$' -bench "${BENCH:-.}" -benchmem -timeout 30m "$@" ./...

# The middleware under an HTTP load generator (wrk), with the services above.
scripts/bench-http.sh
