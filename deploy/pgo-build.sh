#!/usr/bin/env bash
# Builds cairn with profile-guided optimisation (PGO), the build `make bench` measures and
# `make release` makes: an instrumented build serves a short key-value load from
# cairn-bench (Cairn alone: puts, CAS, reads, creates), then the final build is optimised
# with the profile that load wrote. Output: target/pgo/cairn (a link into the build).
#
# Why: on the test machine (2 cores) the plain and the profile-guided build of the same
# source differ by ~20% in puts at 64 clients (see the README's benchmark section); the
# code a put runs is spread thin over hyper, tokio, openraft and serde, where the profile's
# inlining and block layout help. RocksDB is C++ and not affected: both builds link the
# archive the plain release build compiled, instead of compiling it twice more.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
OUT=target/pgo
host=$(rustc -vV | sed -n 's/^host: //p')
sysroot=$(rustc --print sysroot)
profdata=$sysroot/lib/rustlib/$host/bin/llvm-profdata

if [ ! -x "$profdata" ]; then
  echo "pgo: adding rustup's llvm-tools component (llvm-profdata, to merge profiles)"
  rustup component add llvm-tools >/dev/null
fi
if [ ! -x "$profdata" ]; then
  echo "pgo: $profdata is missing; install it with 'rustup component add llvm-tools'," \
       "or measure the plain build with PGO=0" >&2
  exit 1
fi

echo "pgo: plain release build (its RocksDB archive is linked by the next two)"
$CARGO build --release --bin cairn
[ -x target/release/cairn-bench ] || $CARGO build --release -p cairn-bench
if [ -z "${ROCKSDB_LIB_DIR:-}" ]; then
  rocksdb=$(ls -t target/release/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -1)
  if [ -z "$rocksdb" ]; then
    echo "pgo: no librocksdb.a under target/release/build; the plain build above should have made it" >&2
    exit 1
  fi
  mkdir -p "$OUT/rocksdb"
  ln -sf "$PWD/$rocksdb" "$OUT/rocksdb/librocksdb.a"
  export ROCKSDB_LIB_DIR=$PWD/$OUT/rocksdb ROCKSDB_STATIC=1
fi

# `--target` keeps the flags off build scripts and proc macros: only cairn is instrumented.
echo "pgo 1/3: instrumented build"
RUSTFLAGS="-Cprofile-generate=$PWD/$OUT/profiles" CARGO_TARGET_DIR=$OUT/gen \
  $CARGO build --release --bin cairn --target "$host"
instrumented=$OUT/gen/$host/release/cairn

if [ "$OUT/cairn.profdata" -nt "$instrumented" ]; then
  echo "pgo 2/3: the profile is newer than the instrumented build; not training again"
else
  echo "pgo 2/3: training load (about a minute)"
  rm -rf "$OUT/profiles" "$OUT/training"
  # The bench stops members with SIGTERM; they write their profiles as they exit.
  target/release/cairn-bench --cairn-bin "$instrumented" --refs none --seconds 3 --out "$OUT/training" \
    >"$OUT/training.log" 2>&1 || { echo "pgo: the training load failed; see $OUT/training.log" >&2; exit 1; }
  "$profdata" merge -o "$OUT/cairn.profdata.tmp" "$OUT"/profiles/*.profraw
  mv "$OUT/cairn.profdata.tmp" "$OUT/cairn.profdata"
fi

echo "pgo 3/3: optimised build"
RUSTFLAGS="-Cprofile-use=$PWD/$OUT/cairn.profdata" CARGO_TARGET_DIR=$OUT/use \
  $CARGO build --release --bin cairn --target "$host"
ln -sf "use/$host/release/cairn" "$OUT/cairn"
echo "pgo: built $OUT/cairn"
