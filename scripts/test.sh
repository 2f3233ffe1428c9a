#!/usr/bin/env bash
# `make test`: format check, real services up, go vet, every test, services
# down (even when something failed), exit status of the first failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

unformatted=$(find . \( -path ./.cache -o -path ./.git -o -path ./bin \) -prune -o -name '*.go' -print0 |
	xargs -0 -r gofmt -l)
if [[ -n $unformatted ]]; then
	echo "gofmt: these files are not formatted (run make fmt):" >&2
	echo "$unformatted" >&2
	exit 1
fi

# Stop the services however this script ends (unless asked to keep them).
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
scripts/fetch-chdb.sh
eval "$(scripts/services.sh env)"

go vet ./...
go test -p 2 -timeout 30m "$@" ./...
