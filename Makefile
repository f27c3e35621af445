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

build: console
	go build -buildvcs=auto -o bin/clouddb ./cmd/clouddb

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
