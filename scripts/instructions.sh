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
# "peer" measures peer-bench's axum server instead (bare, our IP-keyed
# throttle, tower_governor keyed by peer IP) with N=100 and N=5100:
# tower_governor calibrates its clock at start-up for a varying number of
# instructions, which 5,000 requests dilute.
#
#   bash scripts/instructions.sh [framework ...]     # axum, actix, peer; default: axum actix
set -euo pipefail
cd "$(dirname "$0")/.."
frameworks=("${@:-axum}")
[[ $# -eq 0 ]] && frameworks=(axum actix)
modes=(bare jwt jwt-cached ip anon ip-throttle anon-throttle)
peer_modes=(axum-bare axum-throttle-ip axum-governor-ip)

command -v valgrind >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind
}
cargo build --release --locked -q -p auth-examples --bin bench_server
bin=target/release/bench_server
token=$($bin token)
work=$(mktemp -d)
port=38217
if [[ " ${frameworks[*]} " == *" peer "* ]]; then
    cargo build --release --locked -q --manifest-path peer-bench/Cargo.toml
fi

# instructions <framework> <mode> <n>: total Ir of a server run that
# answered n requests.
instructions() {
    local out="$work/$1-$2-$3"
    local server=("$bin" "$1" "$2")
    [[ $1 == peer ]] && server=(peer-bench/target/release/peer-bench "$2")
    valgrind --tool=callgrind --callgrind-out-file="$out" "${server[@]}" "127.0.0.1:$port" \
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
    if [[ $framework == peer ]]; then
        runs=("${peer_modes[@]}") extra=5000
    else
        runs=("${modes[@]}") extra=500
    fi
    for mode in "${runs[@]}"; do
        low=$(instructions "$framework" "$mode" 100)
        high=$(instructions "$framework" "$mode" $((100 + extra)))
        echo "$framework $mode $(( (high - low) / extra ))" | tee -a "$results"
    done
done

python3 - "$results" <<'PY'
import sys
rows = [line.split() for line in open(sys.argv[1])]
bare = {fw: int(n) for fw, mode, n in rows if mode.endswith("bare")}
print("\n| framework | mode | instructions / request | added to bare | bare / mode |")
print("|---|---|---|---|---|")
for fw, mode, n in rows:
    n = int(n)
    print(f"| {fw} | {mode} | {n:,} | {n - bare[fw]:+,} | {bare[fw] / n:.3f} |")
PY
rm -rf "$work"
