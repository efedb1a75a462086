# kmsdb: the commands that matter are `make demo` and `make test`.
GO        ?= go
PKGS      ?= ./...
# A count of executions, not a duration: go1.26's fuzz coordinator can fail a
# target with a spurious "context deadline exceeded" when a duration runs out
# (https://go.dev/issue/75804, fixed in go1.27).
FUZZTIME  ?= 5000x
BENCHTIME ?= 1s

# Rotations per scenario of TestRotationUnderLoad: LOAD_ROTATIONS in `make test` (5 orders x 3 engines x 3 keeps
# CI, which also runs test-containers and fuzz, well under 15 minutes on 2 cores: 13 min with 5 and 3; the test's own
# default is 10, e.g. `make test-integration LOAD_ROTATIONS=10`), CONTAINER_ROTATIONS in `make test-containers`.
LOAD_ROTATIONS      ?= 3
CONTAINER_ROTATIONS ?= 2

# golangci-lint, pinned here and only here; `go run` builds it once into the build cache. Its settings: .golangci.yml.
GOLANGCI_LINT ?= $(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
# Every Go module of the repository (each directory with a go.mod that git knows), linted from its own directory.
LINT_MODULES  ?= $(shell git ls-files -- go.mod '*/go.mod' 2>/dev/null | xargs -r -n1 dirname)

.PHONY: test test-unit test-integration test-containers testdb bench lint fuzz demo emulator

## test: every test of the repository with the race detector, integration/ included.
test: lint testdb test-unit test-integration

test-unit:
	$(GO) test -race -count=1 $(PKGS)
	# The fleet simulation skips itself under -race (20x slower there): run it once without.
	$(GO) test -count=1 -run 'TestFleetSpreadsRefreshes' ./secretsource/cache/
	# GORM and sqlx examples: a module of their own, so the library's go.mod stays light.
	cd examples/frameworks && $(GO) test -race -count=1 ./...
	# kmsdbotel is a module of its own (OpenTelemetry stays out of the library's go.mod).
	cd kmsdbotel && $(GO) test -race -count=1 ./...
	cd examples/prometheus && $(GO) test -race -count=1 ./...

## testdb: make sure MariaDB and PostgreSQL answer and enforce passwords for the test roles.
testdb:
	bash scripts/testdb.sh

test-integration:
	cd integration && KMSDB_LOAD_ROTATIONS=$(LOAD_ROTATIONS) $(GO) test -race -count=1 -timeout 20m ./...

## test-containers: integration/ against containers only (MariaDB and PostgreSQL, testcontainers-go): every
## rotation, outage, hard-password and non-healing scenario. scripts/containers.sh installs and starts Docker when
## none answers (and stops it after), builds the local images, and removes any container a crashed run left.
test-containers:
	KMSDB_TEST_CONTAINERS=1 TESTCONTAINERS_HOST_OVERRIDE=localhost TESTCONTAINERS_RYUK_DISABLED=true \
	KMSDB_LOAD_ROTATIONS=$(CONTAINER_ROTATIONS) \
	  bash scripts/containers.sh run -- $(GO) test -C integration -race -count=1 -timeout 20m \
	    -skip '^(TestOverheadRatio|TestSecretsManagerClient.*)$$' .

## bench: hot-path benchmarks (root module and integration/ comparisons).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)
	cd integration && $(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...
	cd kmsdbotel && $(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...

## fuzz: run every fuzz target briefly (FUZZTIME each, e.g. FUZZTIME=100000x for longer).
fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

## lint: gofmt, go vet, and golangci-lint (.golangci.yml) in every module.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	cd integration && $(GO) vet ./...
	cd examples/frameworks && $(GO) vet ./...
	cd kmsdbotel && $(GO) vet ./...
	cd examples/prometheus && $(GO) vet ./...
	@for m in $(LINT_MODULES); do \
	  echo "golangci-lint run ./... in $$m"; \
	  (cd $$m && $(GOLANGCI_LINT) run ./...) || exit 1; \
	done

## demo: live rotation demo against a local database.
demo:
	$(GO) run ./cmd/kmsdb demo

## emulator: run the KMS emulator with the example seed.
emulator:
	$(GO) run ./cmd/kmsdb emulator --addr 127.0.0.1:0 --tls --seed examples/seed.json
