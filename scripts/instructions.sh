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
# "metrics" measures the cost of the metrics: the verified-token cache hit
# and an anonymous session with one rule, on axum and on actix-web, each
# without a recorder and with a Prometheus recorder (<mode>+metrics), with
# N=100 and N=20,100: installing the recorder calibrates its clock for a
# varying few million instructions.
#
# The server is built with the examples' `metrics` feature (the core's and
# the throttle's metrics compiled in; nothing recorded without a
# recorder). BENCH_FEATURES= builds it without, the metrics compiled out
# (the +metrics runs are then skipped).
#
# BENCH_KEEP=<dir> keeps the callgrind outputs there
# (<framework>-<mode>-<n>), for callgrind_annotate or, between two builds,
# scripts/callgrind_diff.py.
#
#   bash scripts/instructions.sh [framework ...]     # axum, actix, peer, metrics; default: axum actix
#   BENCH_FEATURES= bash scripts/instructions.sh metrics
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
features=${BENCH_FEATURES-metrics}
cargo build --release --locked -q -p auth-examples --no-default-features --features "$features" \
    --bin bench_server
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

# measure <framework> <label> <extra> <mode ...>: one row per mode.
measure() {
    local framework=$1 label=$2 extra=$3 mode low high
    shift 3
    for mode in "$@"; do
        low=$(instructions "$framework" "$mode" 100)
        high=$(instructions "$framework" "$mode" $((100 + extra)))
        echo "$label $mode $(( (high - low) / extra ))" | tee -a "$results"
    done
}

metrics_modes=(jwt-cached anon-throttle)
if [[ $features == *metrics* ]]; then
    metrics_modes+=(jwt-cached+metrics anon-throttle+metrics)
fi

results="$work/results"
for framework in "${frameworks[@]}"; do
    case $framework in
    peer)
        # Peer rows are named <framework>-<mode>: grouped by framework.
        for mode in "${peer_modes[@]}"; do
            measure peer "peer-${mode%%-*}" 40000 "$mode"
        done
        ;;
    metrics)
        for fw in axum actix; do
            measure "$fw" "metrics-$fw" 20000 "${metrics_modes[@]}"
        done
        ;;
    *) measure "$framework" "$framework" 500 "${modes[@]}" ;;
    esac
done

python3 - "$results" <<'PY'
import sys
rows = [line.split() for line in open(sys.argv[1])]
bare = {fw: int(n) for fw, mode, n in rows if mode.endswith("bare")}
print("\n| framework | mode | instructions / request | added to bare | bare / mode |")
print("|---|---|---|---|---|")
for fw, mode, n in rows:
    n = int(n)
    if fw in bare:
        print(f"| {fw} | {mode} | {n:,} | {n - bare[fw]:+,} | {bare[fw] / n:.3f} |")
    else:
        print(f"| {fw} | {mode} | {n:,} | | |")
PY
if [[ -n ${BENCH_KEEP:-} ]]; then
    mkdir -p "$BENCH_KEEP"
    find "$work" -type f ! -name '*.log' ! -name results -exec cp {} "$BENCH_KEEP" \;
fi
rm -rf "$work"
