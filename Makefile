# Mall developer commands (GNU make). `make help` lists them; README.md explains them.
# Works on a fresh Debian/Ubuntu machine with Go in /usr/local/go: as root, the service
# scripts install MariaDB, Redis and PostgreSQL from the OS packages when they are missing.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin

GO        ?= go
PKG       ?= ./...
TESTFLAGS ?=
FUZZTIME  ?= 10s
export PKG TESTFLAGS FUZZTIME

# Recursively expanded: git runs only when a recipe needs these.
COMMIT  = $(shell c=$$(git rev-parse --short HEAD 2>/dev/null) || { echo unknown; exit; }; \
	git diff-index --quiet HEAD -- 2>/dev/null && echo $$c || echo $$c-dirty)
VERSION ?= $(shell git describe --tags --always 2>/dev/null || echo dev)
LDFLAGS  = -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.DEFAULT_GOAL := help
.PHONY: help build run test test-short bench lint fmt fuzz services-up services-down services-status clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

build: ## build bin/mall
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/mall ./cmd/mall

run: build ## services up, migrate, seed, serve on :8080 (Ctrl-C stops the app, not the services)
	scripts/run.sh

test: ## the whole suite with -race on private test services (PKG=..., TESTFLAGS=...)
	scripts/test.sh

test-short: ## like test, with -short
	TESTFLAGS="-short $(TESTFLAGS)" scripts/test.sh

bench: ## benchmark a running server against a baseline; writes docs/benchmarks.md
	scripts/bench.sh

lint: ## gofmt, go vet, staticcheck (when installed); runs all three, fails if any fails
	@status=0; \
	files=$$(find . -path ./.local -prune -o -path ./.git -prune -o -name '*.go' -print); \
	unformatted=$$(gofmt -l $$files); \
	if [[ -n "$$unformatted" ]]; then echo "gofmt: these files need formatting (make fmt):"; echo "$$unformatted"; status=1; fi; \
	echo "go vet ./..."; $(GO) vet ./... || status=1; \
	if command -v staticcheck >/dev/null; then echo "staticcheck ./..."; staticcheck ./... || status=1; \
	else echo "lint: staticcheck not installed, skipped (go install honnef.co/go/tools/cmd/staticcheck@latest)"; fi; \
	exit $$status

fmt: ## gofmt -w every Go file
	find . -path ./.local -prune -o -path ./.git -prune -o -name '*.go' -print | xargs gofmt -w

fuzz: ## run every Fuzz target for FUZZTIME (default 10s)
	scripts/test.sh fuzz

services-up: ## start MariaDB, Redis, PostgreSQL for make run (13306, 16379, 15432)
	scripts/services.sh up

services-down: ## stop them (data stays in .local/services)
	scripts/services.sh down

services-status: ## are they running?
	scripts/services.sh status

clean: ## remove bin/, bench scratch data and the (stopped) test services' data
	rm -rf bin .local/bench
	@if MALL_SVC_DIR=$(CURDIR)/.local/test-services scripts/services.sh status | grep -q running; then \
		echo "clean: test services are running (a make test in progress?); kept .local/test-services"; \
	else rm -rf .local/test-services .local/test-services.lock; fi
