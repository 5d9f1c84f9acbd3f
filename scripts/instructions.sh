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
# "peer" measures peer-bench's servers instead, on axum and on actix-web:
# bare, our rate limits alone (one rule by peer address) and
# tower_governor / actix-governor keyed by peer IP, each with its rate
# limit headers and without, with N=100 and N=40,100: the governors
# calibrate their clock at start-up for a varying number of instructions
# (millions), which 40,000 requests dilute.
#
#   bash scripts/instructions.sh [framework ...]     # axum, actix, peer; default: axum actix
set -euo pipefail
cd "$(dirname "$0")/.."
frameworks=("${@:-axum}")
[[ $# -eq 0 ]] && frameworks=(axum actix)
modes=(bare jwt jwt-cached ip anon ip-throttle anon-throttle ip-throttle-quiet anon-throttle-quiet
    limit-ip limit-ip-quiet jwt-cached-budget)
peer_modes=(axum-bare axum-limit-ip axum-limit-ip-quiet axum-governor-ip axum-governor-ip-quiet
    actix-bare actix-limit-ip actix-limit-ip-quiet actix-governor-ip actix-governor-ip-quiet)

command -v valgrind >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind
}
cargo build --release --locked -q -p auth-examples --no-default-features --bin bench_server
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
        runs=("${peer_modes[@]}") extra=40000
    else
        runs=("${modes[@]}") extra=500
    fi
    for mode in "${runs[@]}"; do
        low=$(instructions "$framework" "$mode" 100)
        high=$(instructions "$framework" "$mode" $((100 + extra)))
        # Peer rows are named <framework>-<mode>: grouped by framework.
        label=$framework
        [[ $framework == peer ]] && label="peer-${mode%%-*}"
        echo "$label $mode $(( (high - low) / extra ))" | tee -a "$results"
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
