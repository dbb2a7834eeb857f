# Patrol's tasks. `make run` runs Patrol on the bundled example; `make test`
# is the whole test suite, exactly what CI (.ci/run) runs.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
PREFIX      ?= /usr/local
# The version `patrol --version` prints: git describe where there is a git
# checkout, else "devel" (some build environments have no VCS info).
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS     := -X github.com/patrolhq/patrol.version=$(VERSION)

.PHONY: build run test lint unit fuzz bench microbench chaos generate clean install

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/patrol ./cmd/patrol
	$(GO) build -o examples/bin/demoapp ./examples/demoapp

run: build
	./bin/patrol run --config examples/config.json

# Installs bin/patrol as $(PREFIX)/bin/patrol (and nothing else).
install: build
	install -D -m 0755 bin/patrol $(DESTDIR)$(PREFIX)/bin/patrol

test: lint unit fuzz

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

unit:
	$(GO) test -race -count=1 ./...

# Each fuzz target runs a fixed number of inputs on top of its seed corpus
# (which the unit tests already run): about 5-10 s each on 2 cores. Counts,
# not durations: with a duration, Go 1.26's fuzz coordinator can fail a
# target with "context deadline exceeded" when the time is up
# (go.dev/issue/75804, fixed in Go 1.27). Minimizing a new input is capped
# too, or it can stall a run for a minute. FUZZSCALE multiplies the counts.
FUZZSCALE ?= 1
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $$((60000*$(FUZZSCALE)))x -fuzzminimizetime 100x ./desired
	$(GO) test -run '^$$' -fuzz '^FuzzKeyValueLimits$$' -fuzztime $$((50000*$(FUZZSCALE)))x -fuzzminimizetime 100x ./desired
	$(GO) test -run '^$$' -fuzz '^FuzzUDPRequest$$' -fuzztime $$((100000*$(FUZZSCALE)))x -fuzzminimizetime 100x ./api
	$(GO) test -run '^$$' -fuzz '^FuzzAPIQuery$$' -fuzztime $$((20000*$(FUZZSCALE)))x -fuzzminimizetime 100x ./api
	$(GO) test -run '^$$' -fuzz '^FuzzStoreLoad$$' -fuzztime $$((150000*$(FUZZSCALE)))x -fuzzminimizetime 100x ./observed
	$(GO) test -run '^$$' -fuzz '^FuzzParseNotify$$' -fuzztime $$((100000*$(FUZZSCALE)))x -fuzzminimizetime 100x ./exec
	$(GO) test -run '^$$' -fuzz '^FuzzLayer$$' -fuzztime $$((30000*$(FUZZSCALE)))x -fuzzminimizetime 100x ./desired
	$(GO) test -run '^$$' -fuzz '^FuzzStage$$' -fuzztime $$((30000*$(FUZZSCALE)))x -fuzzminimizetime 100x ./desired
	$(GO) test -run '^$$' -fuzz '^FuzzEnvFile$$' -fuzztime $$((30000*$(FUZZSCALE)))x -fuzzminimizetime 100x ./desired
	$(GO) test -run '^$$' -fuzz '^FuzzLimits$$' -fuzztime $$((30000*$(FUZZSCALE)))x -fuzzminimizetime 100x ./desired
	$(GO) test -run '^$$' -fuzz '^FuzzSchedule$$' -fuzztime $$((30000*$(FUZZSCALE)))x -fuzzminimizetime 100x ./desired

# The end-to-end benchmarks of BENCHMARKS.md (about 5 minutes; pass
# BENCHFLAGS=--quick for a shorter run) and the Go micro-benchmarks.
BENCHFLAGS ?=
bench: build
	$(GO) build -o bin/patrol-bench ./cmd/patrol-bench
	./bin/patrol-bench $(BENCHFLAGS)

microbench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The chaos suite of RELIABILITY.md (about 2 minutes): kill -9 rounds under
# churn, a leak soak, held connections and slow clients, malformed and
# oversized requests, against a real `patrol run`. `make test` runs its
# short form (cmd/patrol-chaos TestChaosShort). CHAOSFLAGS=--json, --seed N.
CHAOSFLAGS ?=
chaos: build
	$(GO) build -o bin/patrol-chaos ./cmd/patrol-chaos
	./bin/patrol-chaos $(CHAOSFLAGS)

generate:
	$(GO) generate ./...

clean:
	rm -rf bin examples/bin
