.DEFAULT_GOAL := build
.PHONY: build console run test bench lint migrate

# The web console (web/) builds into internal/console/dist, which is committed so that `go build`
# works without Node.js; these rules rebuild it when its sources or packages changed.
CONSOLE_SOURCES := $(shell find web/src web/public -type f) web/build.mjs web/tsconfig.json

web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund

internal/console/dist/index.html: web/node_modules/.package-lock.json $(CONSOLE_SOURCES)
	cd web && npx tsc --noEmit && node build.mjs

console: internal/console/dist/index.html

# What `clouddb version` says (cmd/clouddb/cli.go); a plain go build falls back to Go's VCS stamp.
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT     ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS    := -X main.buildVersion=$(VERSION) -X main.buildCommit=$(COMMIT) -X main.buildDate=$(BUILD_DATE)

build: console
	go build -buildvcs=auto -ldflags "$(LDFLAGS)" -o bin/clouddb ./cmd/clouddb

# Starts the whole system on 127.0.0.1:8080 (see README: management database fallback).
run: build
	./bin/clouddb serve

# Every test runs against the MySQL at CLOUDDB_TEST_DSN, else 127.0.0.1:3306, else a private MariaDB
# under .local/testdb that internal/testdb starts once and leaves running (README).
test: console
	go test -count=1 -p 2 -timeout 20m ./...

bench:
	go test -run '^$$' -bench . -benchtime 1x ./...

lint:
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...

migrate: build
	./bin/clouddb migrate
