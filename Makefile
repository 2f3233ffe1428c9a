# Manhattan for Go. `make demo` and `make test` are the two commands to know.
# Everything downloaded or generated goes to .cache/ (git-ignored).
SHELL := /bin/bash
GO ?= go

.PHONY: all build chdb services-up services-down services-status test bench bench-http demo fmt fmt-check vet clean

all: build

build:
	$(GO) build -o bin/manhattan ./cmd/manhattan

# libchdb.so (chDB) into .cache/chdb/, for `manhattan dev`/demo and the chDB tests.
chdb:
	scripts/fetch-chdb.sh

# Apache Kafka 4.x (KRaft) on 127.0.0.1:9092 and ClickHouse on 127.0.0.1:9000.
services-up:
	scripts/services.sh up

services-down:
	scripts/services.sh down

services-status:
	scripts/services.sh status

# Unit and integration tests against the real services, which it starts and
# stops. KEEP_SERVICES=1 leaves them running afterwards.
test:
	scripts/test.sh

# All benchmarks; BENCH=regexp narrows them.
bench:
	scripts/bench.sh

# The producer middleware under wrk on loopback vs the bare handler (about
# 45 s); starts the services if needed and stops only what it started.
bench-http:
	scripts/bench-http.sh

# The embedded pipeline (kfake + chDB) and a simulated A/B test; no services needed.
demo: chdb
	CHDB_LIB_PATH=$${CHDB_LIB_PATH:-$(CURDIR)/.cache/chdb/libchdb.so} $(GO) run ./cmd/manhattan demo

GOFILES = find . \( -path ./.cache -o -path ./.git -o -path ./bin \) -prune -o -name '*.go' -print0

fmt:
	$(GOFILES) | xargs -0 -r gofmt -w

fmt-check:
	@out=$$($(GOFILES) | xargs -0 -r gofmt -l); \
	if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
