#!/usr/bin/env bash
# Scale-out of the throttle's Redis store: the same load through a server
# (bench_server anon-throttle-redis: a hello route behind anonymous
# sessions and a one-rule throttle counting in Redis, driven by wrk with a
# new visitor id on every request, so keys spread over every hash slot)
# against one Redis node, then against a three-primary Redis Cluster. For
# each: decisions per second, script calls Redis ran, and Redis CPU per
# decision (INFO cpu, summed over the nodes); then redis-benchmark running
# the same script with random keys on the node and on the cluster
# (--cluster: each node's share under a hash tag of its own), for what
# Redis alone does.
#
#   bash scripts/redis-scale.sh [seconds=10] [connections=64] [rounds=3]
#
# On a 2-core machine the server, wrk and Redis share the cores: the
# server saturates before Redis does. Read the Redis CPU per decision, not
# the ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-64}
rounds=${3:-3}

for tool in redis-server redis-cli redis-benchmark wrk; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools wrk
    fi
done
cargo build --release --locked -q -p auth-examples --no-default-features --features metrics --bin bench_server
bin=target/release/bench_server
dir=$(mktemp -d)
pids=()
cleanup() {
    kill "${pids[@]}" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

node() { # port [cluster]
    local args=(--port "$1" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir")
    if [[ ${2:-} == cluster ]]; then
        args+=(--cluster-enabled yes --cluster-config-file "nodes-$1.conf")
    fi
    redis-server "${args[@]}" >"$dir/redis-$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.1; done
    echo "redis-server on port $1 did not start:" >&2
    cat "$dir/redis-$1.log" >&2
    exit 1
}

# Redis CPU seconds (user + sys) summed over the ports given.
cpu() {
    local total=0 p
    for p in "$@"; do
        total=$(redis-cli -p "$p" info cpu | tr -d '\r' |
            awk -F: -v t="$total" '/^used_cpu_(user|sys):/ {t += $2} END {print t}')
    done
    echo "$total"
}

# Script calls (EVALSHA + EVAL) summed over the ports given.
calls() {
    local total=0 p n
    for p in "$@"; do
        n=$(redis-cli -p "$p" info commandstats | tr -d '\r' |
            awk -F'[=,:]' '/^cmdstat_(evalsha|eval):/ {n += $3} END {print n + 0}')
        total=$((total + n))
    done
    echo "$total"
}

# A new 32-hex-digit visitor id on every request.
cat >"$dir/visitors.lua" <<'LUA'
math.randomseed(os.time())
request = function()
  local id = string.format("%08x%08x%08x%08x", math.random(0, 0x7fffffff),
    math.random(0, 0x7fffffff), math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  return wrk.format("GET", "/hello", { Cookie = "anon=" .. id })
end
LUA

port=38219
drive() { # label, env for the server, redis ports...
    local label=$1 env=$2
    shift 2
    env "$env" "$bin" axum anon-throttle-redis "127.0.0.1:$port" &
    local server=$!
    pids+=("$server")
    for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/hello" && break; sleep 0.1; done
    for p in "$@"; do redis-cli -p "$p" config resetstat >/dev/null; done
    local before out requests rps after evals
    before=$(cpu "$@")
    out=$(wrk -t1 -c"$connections" -d"${seconds}s" -s "$dir/visitors.lua" "http://127.0.0.1:$port/hello")
    after=$(cpu "$@")
    evals=$(calls "$@")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    awk -v l="$label" -v r="$requests" -v s="$rps" -v e="$evals" -v b="$before" -v a="$after" \
        'BEGIN {printf "%-26s %9d decisions %9.0f /s   %9d script calls   Redis CPU %.2f us/decision\n", l, r, s, e, (a - b) * 1e6 / (r > 0 ? r : 1)}'
    kill "$server"
    wait "$server" 2>/dev/null || true
}

bench() { # label, "redis ports", redis-benchmark args...
    local label=$1 ports=$2
    shift 2
    local rps before after
    # shellcheck disable=SC2086
    before=$(cpu $ports)
    rps=$(redis-benchmark "$@" -c "$connections" -n 300000 -r 1000000 --csv \
        evalsha "$sha" 1 "auth-throttle:{tag}:__rand_int__" "" 1 1000000000 |
        tail -1 | awk -F'","' '{print $2}')
    # shellcheck disable=SC2086
    after=$(cpu $ports)
    awk -v l="$label" -v r="$rps" -v b="$before" -v a="$after" \
        'BEGIN {printf "%-26s %9.0f EVALSHA/s (redis-benchmark)   Redis CPU %.2f us/call\n", l, r, (a - b) * 1e6 / 300000}'
}

one=38400
node "$one"
cluster=(38401 38402 38403)
for p in "${cluster[@]}"; do node "$p" cluster; done
redis-cli --cluster create "${cluster[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >/dev/null
for _ in $(seq 100); do
    redis-cli -p "${cluster[0]}" cluster info | grep -q cluster_state:ok && break
    sleep 0.1
done
script=crates/auth-throttle/src/redis/gcra.lua
sha=$(redis-cli -p "$one" script load "$(cat "$script")")
for p in "${cluster[@]}"; do redis-cli -p "$p" script load "$(cat "$script")" >/dev/null; done

nodes=$(printf 'redis://127.0.0.1:%s,' "${cluster[@]}")
# Rounds alternate the two, so that they share the machine's mood.
for round in $(seq "$rounds"); do
    echo "round $round, through the server ($connections connections, ${seconds}s each):"
    drive "one node" "BENCH_REDIS_URL=redis://127.0.0.1:$one" "$one"
    drive "cluster, 3 primaries" "BENCH_REDIS_CLUSTER=${nodes%,}" "${cluster[@]}"
    echo "  script calls per primary: $(for p in "${cluster[@]}"; do printf '%s ' "$(calls "$p")"; done)"
    echo "round $round, Redis alone:"
    bench "one node" "$one" -p "$one"
    bench "cluster, 3 primaries" "${cluster[*]}" --cluster -p "${cluster[0]}"
done
