#!/usr/bin/env bash
# `make test`: gofmt check, real services up (Apache Kafka, ClickHouse) and
# libchdb fetched, go vet, every test; the services it started are stopped
# however it ends.
# gofmt, vet and the tests all run so one report shows every problem; the
# exit status is non-zero when any of them failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

failed=()

unformatted=$(find . \( -path ./.cache -o -path ./.git -o -path ./bin \) -prune -o -name '*.go' -print0 |
	xargs -0 -r gofmt -l)
if [[ -n $unformatted ]]; then
	echo "gofmt: these files are not formatted (run make fmt):" >&2
	echo "$unformatted" >&2
	failed+=(gofmt)
fi

source scripts/services-for-run.sh
scripts/fetch-chdb.sh >/dev/null

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
