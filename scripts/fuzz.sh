#!/usr/bin/env bash
# Bounded fuzz pass over the decoders that face untrusted bytes (terms, agent
# frames, stored blocks), starting from the committed seed corpus in fuzz/corpus.
# Built with debug assertions (-a), so arithmetic overflow on hostile lengths
# panics instead of wrapping silently.
# Any crash fails the run and leaves the input and the fuzzer's log in
# fuzz/artifacts/<target>/.
# cargo-fuzz needs unstable compiler flags; the stable toolchain allows them
# with RUSTC_BOOTSTRAP=1. No sanitizer is needed: the code under test has no
# `unsafe`, so a crash is a panic, an abort or running out of memory or time.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
per_target=${FUZZ_SECONDS:-20}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --version 0.13.2 --locked >/dev/null
fi
export RUSTC_BOOTSTRAP=1
# Release build (-O) with debug assertions and overflow checks (-a).
flags=(-s none -O -a)
cargo fuzz build "${flags[@]}"
for target in etf_decode agent_frame events_block; do
  work=$(mktemp -d)
  cp corpus/"$target"/* "$work"/
  echo "fuzzing $target for ${per_target}s" >&2
  log="$work.log"
  mkdir -p artifacts/"$target"
  status=0
  cargo fuzz run "${flags[@]}" "$target" "$work" -- \
    -max_total_time="$per_target" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
    -print_final_stats=1 > "$log" 2>&1 || status=$?
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done)|panicked|SUMMARY" "$log" >&2 || true
  if [ "$status" -ne 0 ]; then
    kept="artifacts/$target/fuzz-$(date +%Y%m%d-%H%M%S).log"
    cp "$log" "$kept"
    rm -rf "$work" "$log"
    echo "error: fuzzing $target found a crash; the input is in $(pwd)/artifacts/$target/ and the fuzzer's log in $(pwd)/$kept" >&2
    grep -E "^(artifact_prefix|Test unit written to)|panicked at" "$kept" >&2 || true
    exit 1
  fi
  rm -rf "$work" "$log"
done
echo "fuzz pass: no crashes" >&2
