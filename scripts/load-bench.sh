#!/usr/bin/env bash
# Load benchmark: requests/s of a hello route, bare vs behind an auth layer.
# The server gets CPU 0 (one thread), wrk gets CPU 1; modes alternate within
# each round so machine noise hits all of them alike; medians and ratios to
# "bare" are printed at the end (a markdown table).
#
#   bash scripts/load-bench.sh [rounds] [seconds] [framework]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-10}
framework=${3:-axum}
modes=(bare jwt jwt-cached ip anon)

if ! command -v wrk >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi
cargo build --release --locked -q -p auth-examples --bin bench_server
bin=target/release/bench_server
token=$($bin token)
port=38117
results=$(mktemp)

for round in $(seq "$rounds"); do
    for mode in "${modes[@]}"; do
        taskset -c 0 "$bin" "$framework" "$mode" "127.0.0.1:$port" &
        pid=$!
        for _ in $(seq 50); do
            curl -s -o /dev/null "http://127.0.0.1:$port/hello" && break
            sleep 0.1
        done
        # Every mode gets the same request: a bearer token and a returning
        # anonymous-session cookie; the bare server ignores both.
        rps=$(taskset -c 1 wrk -t1 -c32 -d"${seconds}s" \
            -H "Authorization: Bearer $token" \
            -H "Cookie: anon=0123456789abcdef0123456789abcdef" \
            "http://127.0.0.1:$port/hello" | awk '/Requests\/sec/ {print $2}')
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        echo "$round $mode $rps" | tee -a "$results"
    done
done

python3 - "$results" "$framework" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
by_mode = {}
for _, mode, rps in rows:
    by_mode.setdefault(mode, []).append(float(rps))
bare = statistics.median(by_mode["bare"])
print(f"\n| {sys.argv[2]} mode | runs (req/s) | median req/s | ratio to bare |")
print("|---|---|---|---|")
for mode, values in by_mode.items():
    median = statistics.median(values)
    runs = ", ".join(f"{v:,.0f}" for v in values)
    print(f"| {mode} | {runs} | {median:,.0f} | {median / bare:.3f} |")
PY
