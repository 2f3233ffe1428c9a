#!/usr/bin/env bash
# `make bench-http`: the producer middleware under an HTTP load generator
# (wrk) on loopback. producer/loadbench serves a ~10 KiB HTML page bare and
# behind the middleware (real Kafka Writer, fresh topic) and runs wrk against
# both in alternating rounds; it prints req/s of each, the ratio
# middleware/bare (target ≥ 0.9), latency p50/p99, CPU per request and the
# Writer's counters, and fails if an event was dropped or did not reach Kafka.
#
# Services: uses MANHATTAN_TEST_KAFKA when set (as in `make bench`);
# otherwise starts them with scripts/services.sh and stops them afterwards
# only if it started them (KEEP_SERVICES=1 keeps them).
# Environment: WRK_ROUNDS (10), WRK_DURATION (2s), WRK_WARMUP (2s),
# WRK_THREADS (1), WRK_CONNECTIONS (32); extra arguments go to loadbench
# (e.g. -cpuprofile /tmp/lb, -new-visitors, -discard).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v wrk >/dev/null; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		echo "bench-http: installing wrk (apt-get install -y wrk)" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >/dev/null
	else
		echo "bench-http: wrk is missing; install it (Debian: sudo apt-get install wrk)" >&2
		exit 1
	fi
fi

if [[ -z ${MANHATTAN_TEST_KAFKA:-} ]]; then
	source scripts/services-for-run.sh
fi

mkdir -p .cache/bin
go build -o .cache/bin/loadbench ./producer/loadbench

args=(-rounds "${WRK_ROUNDS:-10}" -duration "${WRK_DURATION:-2s}" -warmup "${WRK_WARMUP:-2s}"
	-threads "${WRK_THREADS:-1}" -connections "${WRK_CONNECTIONS:-32}")
# The local broker's CPU per request is reported too when its pid is known.
if [[ -f .cache/kafka/kafka.pid ]]; then
	args+=(-kafka-pid "$(<.cache/kafka/kafka.pid)")
fi
echo "bench-http: $(uptime)"
timeout 110 .cache/bin/loadbench "${args[@]}" "$@"
