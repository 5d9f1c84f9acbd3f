#!/usr/bin/env bash
# Load benchmark: requests/s of a hello route, bare vs behind an auth layer.
# The server gets CPU 0 (one thread), wrk gets CPU 1; modes alternate within
# each round so machine noise hits all of them alike; medians and ratios to
# "bare" are printed at the end (a markdown table). Also the server's own CPU
# time per request (utime+stime from /proc over the requests wrk completed):
# less sensitive to how much CPU the machine lends the run than req/s. And
# each mode's ratio to the bare run of its own round ("paired"), whose
# median and quartiles over the rounds show how far the noise reaches.
#
#   bash scripts/load-bench.sh [rounds] [seconds] [framework]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-10}
framework=${3:-axum}
modes=(bare jwt jwt-cached ip anon ip-throttle anon-throttle limit-ip limit-ip-quiet)

if ! command -v wrk >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi
cargo build --release --locked -q -p auth-examples --no-default-features --features metrics --bin bench_server
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
        cpu_before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        # Every mode gets the same request: a bearer token and a returning
        # anonymous-session cookie; the bare server ignores both.
        out=$(taskset -c 1 wrk -t1 -c32 -d"${seconds}s" \
            -H "Authorization: Bearer $token" \
            -H "Cookie: anon=0123456789abcdef0123456789abcdef" \
            "http://127.0.0.1:$port/hello")
        cpu_after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        requests=$(awk '/requests in/ {print $1}' <<<"$out")
        ticks=$(getconf CLK_TCK)
        cpu_us=$(python3 -c "print(round(($cpu_after - $cpu_before) / $ticks * 1e6 / $requests, 3))")
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        echo "$round $mode $rps $cpu_us" | tee -a "$results"
    done
done

python3 - "$results" "$framework" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
rps, cpu, paired = {}, {}, {}
bare_of_round = {rnd: float(r) for rnd, mode, r, _ in rows if mode == "bare"}
for rnd, mode, r, c in rows:
    rps.setdefault(mode, []).append(float(r))
    cpu.setdefault(mode, []).append(float(c))
    # The same round's bare run, minutes apart at most: the machine's slow
    # drift cancels out of this ratio.
    paired.setdefault(mode, []).append(float(r) / bare_of_round[rnd])
bare_rps, bare_cpu = statistics.median(rps["bare"]), statistics.median(cpu["bare"])

def quartiles(values):
    if len(values) < 4:
        return f"{min(values):.3f}–{max(values):.3f}"
    q = statistics.quantiles(values, n=4)
    return f"{q[0]:.3f}–{q[2]:.3f}"

print(f"\n| {sys.argv[2]} mode | runs (req/s) | median req/s | ratio to bare | paired ratio: median (quartiles) | server CPU µs/req (median) | CPU ratio bare/mode |")
print("|---|---|---|---|---|---|---|")
for mode in rps:
    m, c = statistics.median(rps[mode]), statistics.median(cpu[mode])
    runs = ", ".join(f"{v:,.0f}" for v in rps[mode])
    p = paired[mode]
    print(f"| {mode} | {runs} | {m:,.0f} | {m / bare_rps:.3f} | {statistics.median(p):.3f} ({quartiles(p)}) | {c:.2f} | {bare_cpu / c:.3f} |")
PY
