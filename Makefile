# vantage — synthetic monitoring for the Prometheus ecosystem.

GO             ?= go
BIN            ?= bin
STATICCHECK    ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOVULNCHECK    ?= golang.org/x/vuln/cmd/govulncheck@v1.9.0
FUZZTIME       ?= 10s
LONG_FUZZTIME  ?= 5m
# package:FuzzFunction pairs run by fuzz-short (make test) and fuzz
FUZZ_TARGETS   := config:FuzzLoad config:FuzzTargetFile coordinator/config:FuzzLoad exporter:FuzzCheckRequest \
                  exporter:FuzzProbeParams coordinator:FuzzReportBatch
VERSION_PKG    := github.com/prometheus/common/version
VERSION        ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS        := -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Revision=$(shell git rev-parse HEAD 2>/dev/null)

.PHONY: all build run mixin deps test vet unit soak-short e2e soak accuracy compat fuzz-short fuzz lint bench clean

all: build

## build: compile the binaries into ./bin
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

## run: run vantage-exporter on :9715 with the embedded default config
run:
	$(GO) run ./cmd/vantage-exporter

## mixin: render mixin/ (jsonnet) into rules/*.rules.yml and dashboards/*.json;
## the rendered files are checked in, and a test fails while they are stale
mixin:
	$(GO) run ./tools/mixin

## deps: install the Debian packages the tests need (Prometheus,
## Alertmanager, blackbox_exporter, gcc for -race) when missing: as root,
## or with sudo that needs no password; otherwise print the command
deps:
	@./scripts/test-deps

## test: what CI runs: the Debian packages it needs (deps), vet, the
## race-enabled test suite (with the blackbox_exporter compatibility,
## confirmation, fault and end-to-end tests), a short soak and short fuzz runs
test: deps
	@$(MAKE) --no-print-directory vet unit soak-short fuzz-short

vet:
	$(GO) vet ./...

# The packages' own tests run in parallel; the black-box suites under test/
# (real processes on loopback, with timing bounds) then run one package at a
# time, so they do not starve each other. The soak measures the programs'
# own load and leaks: it runs alone, after them, and without the race
# detector.
unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v '/test/')
	$(GO) test -race -count=1 -p 1 $$($(GO) list ./test/... | grep -v '/test/soak$$')

soak-short:
	$(GO) test -count=1 -v -run '^TestSoak$$' ./test/soak/

## e2e: the whole stack on loopback: three exporters, the coordinator, Debian's
## prometheus with rules/ and prometheus-alertmanager with deploy/alertmanager.yml
e2e:
	$(GO) test -race -count=1 -v ./test/e2e/

## soak: ten minutes at a steady check rate with reloads every 3s and outages
## every 2 minutes; goroutines, fds and RSS must return to their baseline
## (make test runs a short version; figures in BENCHMARKS.md)
soak:
	$(GO) test -count=1 -v -timeout 30m -run '^TestSoak$$' ./test/soak/ -args -soak.duration=10m -soak.targets=1250

## accuracy: the confirmation scenarios at full size (make test runs them
## small; figures in BENCHMARKS.md): a degraded location for 3 minutes, a
## flapping target and one at its timeout's edge; 10,000 targets black-holed
## at once across three locations
accuracy:
	$(GO) test -count=1 -v -timeout 30m -run '^(TestDegradedLocationNeverPages|TestFlappingTargetPagesOnce)$$' ./test/faults/ -args -stress.full
	$(GO) test -count=1 -v -run '^$$' -bench '^BenchmarkMassOutage$$' -benchtime 1x -timeout 30m ./test/accuracy/

## compat: compare /probe series with Debian's prometheus-blackbox-exporter
compat:
	$(GO) test -race -count=1 -v ./test/compat/

fuzz-short:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$fn in ./$$pkg for $(FUZZTIME)"; \
		$(GO) test ./$$pkg -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

## fuzz: longer fuzz runs
fuzz:
	@$(MAKE) fuzz-short FUZZTIME=$(LONG_FUZZTIME)

## lint: gofmt, go vet, staticcheck, govulncheck (which warns instead of failing
## when vuln.go.dev cannot be reached)
lint: vet
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "not gofmt-formatted:"; echo "$$unformatted"; exit 1; fi
	$(GO) run $(STATICCHECK) ./...
	@# govulncheck needs vuln.go.dev: found vulnerabilities fail the lint;
	@# an unreachable database is reported, as the check could not run.
	@out=$$($(GO) run $(GOVULNCHECK) ./... 2>&1); rc=$$?; echo "$$out"; \
	if [ $$rc -ne 0 ] && echo "$$out" | grep -q 'fetching vulnerabilities'; then \
		echo "WARNING: govulncheck could not reach its vulnerability database; no vulnerability check was run"; \
	elif [ $$rc -ne 0 ]; then exit $$rc; fi

## bench: benchmark scheduled checks against Debian's prometheus-blackbox-exporter
## and a minimal Go client (about 6 minutes; results go into BENCHMARKS.md).
## BENCH_FLAGS=-scale=0.25 for a quick run; go run ./tools/bench -h lists the flags.
bench:
	@BENCH_COMMAND='make bench$(if $(BENCH_FLAGS), BENCH_FLAGS="$(BENCH_FLAGS)")' $(GO) run ./tools/bench $(BENCH_FLAGS)

clean:
	rm -rf $(BIN)
