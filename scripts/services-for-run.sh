# Sourced (not run) by scripts/test.sh, bench.sh and bench-http.sh: starts
# Apache Kafka and ClickHouse for this run and points the tests at them
# (scripts/services.sh env). When the run ends it stops only the services it
# started, so a developer's running ones stay up; KEEP_SERVICES=1 keeps all.
# The sourcing script must be at the repository root.

services_before=$(scripts/services.sh status 2>/dev/null || true)

services_cleanup() {
	local rc=$?
	if [[ ${KEEP_SERVICES:-} != 1 ]]; then
		[[ $services_before == *"kafka: running"* ]] || scripts/services.sh down kafka || true
		[[ $services_before == *"clickhouse: running"* ]] || scripts/services.sh down clickhouse || true
	fi
	exit $rc
}
trap services_cleanup EXIT
trap 'exit 130' INT TERM

scripts/services.sh up
eval "$(scripts/services.sh env)"
