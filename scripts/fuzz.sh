#!/usr/bin/env bash
# Bounded fuzz pass over the decoders that face untrusted bytes (terms, agent
# frames, stored blocks), starting from the committed seed corpus in fuzz/corpus.
# Any crash fails the run and leaves the input in fuzz/artifacts/.
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
cargo fuzz build -s none -O
for target in etf_decode agent_frame events_block; do
  work=$(mktemp -d)
  cp corpus/"$target"/* "$work"/
  echo "fuzzing $target for ${per_target}s" >&2
  log="$work.log"
  status=0
  cargo fuzz run -s none -O "$target" "$work" -- \
    -max_total_time="$per_target" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
    -print_final_stats=1 > "$log" 2>&1 || status=$?
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done)|panicked|SUMMARY" "$log" >&2 || true
  rm -rf "$work" "$log"
  if [ "$status" -ne 0 ]; then
    echo "error: fuzzing $target found a crash; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzz pass: no crashes" >&2
