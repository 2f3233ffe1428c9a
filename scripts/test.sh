#!/usr/bin/env bash
# `make test`: gofmt check, real services up (Apache Kafka, ClickHouse) and
# libchdb fetched, go vet, every test; services down however it ends.
# gofmt, vet and the tests all run so one report shows every problem; the
# exit status is non-zero when any of them failed.
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

failed=()

unformatted=$(find . \( -path ./.cache -o -path ./.git -o -path ./bin \) -prune -o -name '*.go' -print0 |
	xargs -0 -r gofmt -l)
if [[ -n $unformatted ]]; then
	echo "gofmt: these files are not formatted (run make fmt):" >&2
	echo "$unformatted" >&2
	failed+=(gofmt)
fi

scripts/services.sh up
scripts/fetch-chdb.sh >/dev/null
eval "$(scripts/services.sh env)"

# Go's test cache cannot see the services: in CI every test really runs.
count=()
[[ ${CI:-} == true ]] && count=(-count=1)

go vet ./... || failed+=("go vet")
go test -p 2 -timeout 30m "${count[@]}" "$@" ./... || failed+=("go test")

if ((${#failed[@]})); then
	echo "make test: FAILED: ${failed[*]}" >&2
	exit 1
fi
echo "make test: gofmt, go vet and all tests passed"
