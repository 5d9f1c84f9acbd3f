#!/usr/bin/env bash
# Fuzzes the parsers that read attacker-controlled bytes (fuzz/, its own
# workspace). Usage:
#   scripts/fuzz.sh [seconds per target] [target...]
# Default: 60 s for each of bearer cookie forwarded jwt jwt_signed
# introspection.
# First replays fuzz/regressions/<target>/ (every input a run ever failed
# on), then fuzzes from fuzz/seeds/<target>/ plus the local corpus.
# Fails on any crash, panic or failed oracle; libFuzzer's final stats
# (executions, coverage) are printed per target.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(bearer cookie forwarded jwt jwt_signed introspection)
fi

if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
# cargo-fuzz passes -Z flags (sanitizer, coverage); the project builds on
# stable, so let stable rustc accept them instead of needing a nightly.
export RUSTC_BOOTSTRAP=1

cargo fuzz build -O
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    if [ -d "regressions/$target" ]; then
        echo "== $target: regressions"
        cargo fuzz run -O "$target" "regressions/$target" -- -runs=0
    fi
    echo "== $target: ${secs}s"
    log="artifacts/$target.log"
    mkdir -p artifacts
    if ! cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$secs" -print_final_stats=1 -max_len=8192 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz target $target FAILED (input saved under fuzz/artifacts/$target/)" >&2
        exit 1
    fi
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)|^Done' "$log"
done
