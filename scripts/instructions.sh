#!/usr/bin/env bash
# The layer's own cost as work, not time: instructions per request of the
# load-benchmark server (examples/src/bin/bench_server.rs, hello route)
# under callgrind, bare and behind each auth mode, on axum and actix-web.
#
# Each (framework, mode) runs twice, answering N=100 and N=600 requests on
# one keep-alive connection; (instructions(600) - instructions(100)) / 500
# is the cost of one request, start-up and the connection cancelling out.
# Instruction counts do not depend on what else the machine is doing.
#
#   bash scripts/instructions.sh [framework ...]     # default: axum actix
set -euo pipefail
cd "$(dirname "$0")/.."
frameworks=("${@:-axum}")
[[ $# -eq 0 ]] && frameworks=(axum actix)
modes=(bare jwt jwt-cached ip anon ip-throttle anon-throttle)

command -v valgrind >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind
}
cargo build --release --locked -q -p auth-examples --bin bench_server
bin=target/release/bench_server
token=$($bin token)
work=$(mktemp -d)
port=38217

# instructions <framework> <mode> <n>: total Ir of a server run that
# answered n requests.
instructions() {
    local out="$work/$1-$2-$3"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" "127.0.0.1:$port" \
        2>"$out.log" &
    local pid=$!
    python3 scripts/keepalive_client.py 127.0.0.1 "$port" "$3" \
        "Authorization: Bearer $token" "Cookie: anon=0123456789abcdef0123456789abcdef"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    awk '/^summary:/ {print $2}' "$out"
}

results="$work/results"
for framework in "${frameworks[@]}"; do
    for mode in "${modes[@]}"; do
        low=$(instructions "$framework" "$mode" 100)
        high=$(instructions "$framework" "$mode" 600)
        echo "$framework $mode $(( (high - low) / 500 ))" | tee -a "$results"
    done
done

python3 - "$results" <<'PY'
import sys
rows = [line.split() for line in open(sys.argv[1])]
bare = {fw: int(n) for fw, mode, n in rows if mode == "bare"}
print("\n| framework | mode | instructions / request | added to bare | bare / mode |")
print("|---|---|---|---|---|")
for fw, mode, n in rows:
    n = int(n)
    print(f"| {fw} | {mode} | {n:,} | {n - bare[fw]:+,} | {bare[fw] / n:.3f} |")
PY
rm -rf "$work"
