# Cairn's entry points. Every target does its own set-up.
SHELL := /bin/bash
CARGO ?= cargo
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: run test cluster cluster-stop lint fmt deps build release bench bench-build bench-kv bench-watch bench-leases \
	bench-locks etcd protoc zookeeper chaos

# RocksDB's bindings need clang/libclang; install them when missing (Debian/Ubuntu).
deps:
	@if ! command -v clang >/dev/null 2>&1 || ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then \
		echo "installing clang and libclang-dev (needed to build RocksDB)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq clang libclang-dev; \
	fi

build: deps
	$(CARGO) build --bin cairn

# A one-member cluster with its data in ./cairn-data, client API on 127.0.0.1:7379.
run: build
	./target/debug/cairn --data-dir cairn-data

# Unit, property and black-box tests (the black-box ones start real cairn processes).
test: build
ifeq ($(NEXTEST),yes)
	$(CARGO) nextest run --workspace --no-fail-fast
else
	$(CARGO) test --workspace --no-fail-fast
endif

# Three local members in the background; `make cluster-stop` ends them.
cluster: build
	@deploy/local-cluster.sh start

cluster-stop:
	@deploy/local-cluster.sh stop

# etcd 3.4 (Debian's etcd-server and etcdctl), installed when missing.
etcd:
	@command -v etcd >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq etcd-server etcd-client; }

# protoc, for cairn-bench's `grpc` feature (etcd-client compiles etcd's .proto files).
protoc:
	@command -v protoc >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq protobuf-compiler; }

# ZooKeeper 3.8 (Debian's zookeeper, which brings a JRE), for the bench's ZooKeeper rows.
# Only the package: the bench starts its own ensemble, no system service.
zookeeper:
	@{ [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null 2>&1; } || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq zookeeper; }

# The release binary, built with profile-guided optimisation: target/pgo/cairn (about 6
# minutes the first time, RocksDB's build aside; see deploy/pgo-build.sh).
release: deps
	deploy/pgo-build.sh

# The benchmarks measure the profile-guided build; PGO=0 measures the plain release build.
ifeq ($(PGO),0)
BENCH_CAIRN := target/release/cairn
BUILD_BENCH_CAIRN := $(CARGO) build --release --bin cairn
else
BENCH_CAIRN := target/pgo/cairn
BUILD_BENCH_CAIRN := deploy/pgo-build.sh
endif

# cairn on its own, so the references' dependencies cannot change how it is built.
bench-build: deps etcd protoc zookeeper
	$(CARGO) build --release -p cairn-bench --features references
	$(BUILD_BENCH_CAIRN)

# The key-value suite: Cairn against etcd (gRPC and JSON gateway) and ZooKeeper, three
# members each, same workloads in one run. Each row is measured ROUNDS=3 times per system
# (SECONDS_PER_ROW=6 each), the order rotating; the table shows each system's median round.
KV_ARGS = --cairn-bin $(BENCH_CAIRN) --seconds $${SECONDS_PER_ROW:-6} --rounds $${ROUNDS:-3}
bench-kv: bench-build
	./target/release/cairn-bench $(KV_ARGS)

# The key-value suite, then watch fan-out, then lease keep-alives: roughly 20 minutes with the
# defaults on 2 cores, builds aside (KV ~14, watch ~1.5, leases ~3.5: mostly waiting for
# 100,000 leases to end).
bench: bench-build
	./target/release/cairn-bench $(KV_ARGS)
	./target/release/cairn-bench --watch --cairn-bin $(BENCH_CAIRN) --seconds $${SECONDS_PER_ROW:-5}
	./target/release/cairn-bench --leases --cairn-bin $(BENCH_CAIRN) --seconds $${SECONDS_PER_ROW:-10}

# Watch fan-out: 10,000 watchers on their own keys + 1,000 on a hot key, one member each.
bench-watch: deps etcd
	$(CARGO) build --release --bin cairn-bench
	$(BUILD_BENCH_CAIRN)
	./target/release/cairn-bench --watch --cairn-bin $(BENCH_CAIRN) --seconds $${SECONDS_PER_ROW:-5}

# Leases: 100,000 kept alive through three members each; expiry precision.
bench-leases: deps etcd
	$(CARGO) build --release --bin cairn-bench
	$(BUILD_BENCH_CAIRN)
	./target/release/cairn-bench --leases --cairn-bin $(BENCH_CAIRN) --seconds $${SECONDS_PER_ROW:-10}

# Locks and elections: lock+unlock cycles with 1 and 16 clients on one lock; election
# failover after a revoke and after the leader's lease expires (FAILOVER_RUNS=5 each).
bench-locks: deps etcd
	$(CARGO) build --release --bin cairn-bench
	$(BUILD_BENCH_CAIRN)
	./target/release/cairn-bench --locks --cairn-bin $(BENCH_CAIRN) --seconds $${SECONDS_PER_ROW:-10} \
		--failover-runs $${FAILOVER_RUNS:-5}

# A fault-injection run (Jepsen style) with history checkers: SEED, DURATION (s), MEMBERS.
# Prints progress and a summary; histories stay in chaos-results/.
chaos: build
	$(CARGO) build -p cairn-tests --bin cairn-chaos
	./target/debug/cairn-chaos --seed $${SEED:-1} --duration $${DURATION:-60} --members $${MEMBERS:-3}

lint: protoc
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p cairn-bench --all-targets --all-features -- -D warnings

fmt:
	$(CARGO) fmt --all
