# edgegate developer entry points. `make` alone lists them.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
FUZZTIME ?= 60s

# The daemon is static and pure Go: see DESIGN.md "Static binary".
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
GOBUILD  := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"
# golangci-lint is pinned in its own module so its dependencies stay out of ours.
LINT     := $(GO) tool -modfile=scripts/tools/go.mod golangci-lint

.PHONY: help build build-arm64 build-armv7 run test fuzz bench bench-go vet fmt-check lint check-generated clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build the static binary for this machine into dist/edgegate
	$(GOBUILD) -o dist/edgegate ./cmd/edgegate

build-arm64: ## Cross-build dist/edgegate-linux-arm64 and print its size
	GOOS=linux GOARCH=arm64 $(GOBUILD) -o dist/edgegate-linux-arm64 ./cmd/edgegate
	@ls -l dist/edgegate-linux-arm64

build-armv7: ## Cross-build dist/edgegate-linux-armv7 (GOARM=7) and print its size
	GOOS=linux GOARCH=arm GOARM=7 $(GOBUILD) -o dist/edgegate-linux-armv7 ./cmd/edgegate
	@ls -l dist/edgegate-linux-armv7

run: build ## Build, then run the daemon with its data in ./var
	./dist/edgegate serve --data ./var

test: ## Install test peers, run unit + e2e tests with -race (UI screenshots in test-output/), then a 5s run of every fuzz target
	scripts/install-test-deps.sh
	@# -artifacts keeps what tests save in t.ArtifactDir() (the web UI's screenshots) under test-output/_artifacts/.
	rm -rf test-output && mkdir -p test-output
	$(GO) test -race -count=1 -artifacts -outputdir "$(CURDIR)/test-output" ./...
	@# The patched mochi copy is a module of its own, which ./... leaves out: run the package the
	@# patch is in (PATCHES.md), without the upstream test that binds fixed ports on every interface.
	cd third_party/mochi-mqtt-server && $(GO) test -race -count=1 -skip '^TestServerAddListenersFromConfig$$' .
	scripts/fuzz.sh 5s

fuzz: ## Run every fuzz target for FUZZTIME each (default 60s)
	scripts/fuzz.sh $(FUZZTIME)

bench: build ## Benchmarks side by side with mosquitto: table, bench-results/ (BENCH_QUICK=1: short run)
	scripts/install-test-deps.sh
	$(GO) build -o dist/bench-loadgen ./test/bench/cmd/loadgen
	./dist/bench-loadgen -edgegate dist/edgegate -out bench-results
	@# A full run's report becomes docs/performance.md (commit it); a quick one does not.
	@if [ -z "$${BENCH_QUICK:-}" ]; then mkdir -p docs && cp bench-results/performance.md docs/performance.md && echo "wrote docs/performance.md"; fi

bench-go: ## In-process Go benchmarks (go test -bench) into bench-results/go-bench.txt, for benchstat
	@mkdir -p bench-results
	$(GO) test -run '^$$' -bench . -benchmem ./... | tee bench-results/go-bench.txt

vet: ## go vet ./...
	$(GO) vet ./...

fmt-check: ## Fail, listing them, if any Go file is not gofmt-formatted
	@files=$$(git ls-files --cached --others --exclude-standard -- '*.go' ':(exclude)testdata/*' ':(exclude)*/testdata/*' | xargs -r gofmt -l); \
	if [ -n "$$files" ]; then echo "not gofmt-formatted (run gofmt -w):"; echo "$$files"; exit 1; fi

lint: ## Run golangci-lint (pinned in scripts/tools/go.mod) with .golangci.yml
	$(LINT) run ./...

check-generated: ## Regenerate code (go generate) and fail if the committed files drift
	@if [ -n "$$(git status --porcelain)" ]; then \
		echo "check-generated needs a clean work tree (commit or stash first):"; git status --short; exit 1; fi
	$(GO) generate ./...
	@if [ -n "$$(git status --porcelain)" ]; then \
		echo "generated files are out of date; run 'go generate ./...' and commit:"; \
		git status --short; git --no-pager diff --stat; exit 1; fi

clean: ## Remove build outputs (dist/); ./var, the run target's data, is kept
	rm -rf dist
