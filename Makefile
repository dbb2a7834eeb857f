# Patrol's tasks. `make run` runs Patrol on the bundled example; `make test`
# is the whole test suite, exactly what CI (.ci/run) runs.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 10s

.PHONY: build run test lint unit fuzz bench microbench generate clean

build:
	$(GO) build -o bin/patrol ./cmd/patrol
	$(GO) build -o examples/bin/demoapp ./examples/demoapp

run: build
	./bin/patrol run --config examples/config.json

test: lint unit fuzz

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

unit:
	$(GO) test -race -count=1 ./...

# Each fuzz target runs for FUZZTIME on top of its seed corpus (which the
# unit tests already run).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./desired
	$(GO) test -run '^$$' -fuzz '^FuzzUDPRequest$$' -fuzztime $(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzAPIQuery$$' -fuzztime $(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzStoreLoad$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 100x ./observed

# The end-to-end benchmarks of BENCHMARKS.md (about 5 minutes; pass
# BENCHFLAGS=--quick for a shorter run) and the Go micro-benchmarks.
BENCHFLAGS ?=
bench: build
	$(GO) build -o bin/patrol-bench ./cmd/patrol-bench
	./bin/patrol-bench $(BENCHFLAGS)

microbench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

generate:
	$(GO) generate ./...

clean:
	rm -rf bin examples/bin
