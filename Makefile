.DEFAULT_GOAL := build
.PHONY: build run test bench lint migrate

build:
	go build -buildvcs=auto -o bin/clouddb ./cmd/clouddb

# Starts the whole system on 127.0.0.1:8080 (see README: management database fallback).
run: build
	./bin/clouddb serve

# Every test runs against the MySQL at CLOUDDB_TEST_DSN (default root@tcp(127.0.0.1:3306)/).
test:
	go test -count=1 -p 2 -timeout 20m ./...

bench:
	go test -run '^$$' -bench . -benchtime 1x ./...

lint:
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...

migrate: build
	./bin/clouddb migrate
