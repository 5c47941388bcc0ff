# ElixirScope: the two commands that need no set-up are `make demo` and `make test`.
.PHONY: demo test build lint bench clean

CARGO ?= cargo
BIN := target/debug/elixirscope
DEMO_DIR := examples/demo

build:
	@scripts/ensure-deps.sh
	$(CARGO) build --workspace

# Records the demo app (supervisor, GenServers, task pool, a worker that crashes
# and is restarted) from its first second to its exit, and prints a summary.
demo: build
	cd $(DEMO_DIR) && ../../$(BIN) run --session demo-$$(date +%Y%m%d-%H%M%S) \
	  --state Demo.Counter --state Demo.Bank --state Demo.Flaky \
	  --trace 'Demo.Bank.deposit/2' \
	  -- mix run -e 'Demo.Workload.run()'

# Every test: unit, integration against real erl/elixir nodes, the web UI in
# headless Chromium, OTLP receivers and a real Prometheus, CLI snapshots, a
# bounded fuzz pass over the decoders of untrusted bytes, lints.
test: build
	@scripts/ensure-deps.sh --tests
	$(CARGO) test --workspace
	scripts/fuzz.sh
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The benchmark suite (release build): every workload under every variant,
# ingest, store and queries; the table goes into docs/performance.md.
bench:
	@scripts/ensure-deps.sh
	$(CARGO) build --release -p elixirscope-cli -p elixirscope-bench -p elixirscope-nif-tracer
	target/release/elixirscope-bench --write docs/performance.md

clean:
	$(CARGO) clean
	rm -rf $(DEMO_DIR)/_build
