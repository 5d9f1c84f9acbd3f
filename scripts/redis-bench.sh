#!/usr/bin/env bash
# The throttle's Redis store under load: a hello route behind the auth
# layer and a one-rule throttle counting in Redis (bench_server
# anon-throttle-redis), driven by wrk; then redis-benchmark running the
# same script with the same arguments on the same Redis, for what Redis
# alone can do. Also checks the commandstats: exactly one EVALSHA per
# request the server answered.
#
#   bash scripts/redis-bench.sh [seconds=10] [connections=32]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-32}

for tool in redis-server wrk; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server wrk
    fi
done
cargo build --release --locked -q -p auth-examples --no-default-features --features metrics --bin bench_server
bin=target/release/bench_server
redis_port=38379
port=38119
redis-server --port "$redis_port" --save "" --appendonly no --daemonize no >/dev/null &
redis_pid=$!
trap 'kill $redis_pid $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

BENCH_REDIS_URL="redis://127.0.0.1:$redis_port" taskset -c 0 "$bin" axum anon-throttle-redis "127.0.0.1:$port" &
server_pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/hello" && break; sleep 0.1; done
# Warm: the script is loaded.
curl -s -o /dev/null -b anon=0123456789abcdef0123456789abcdef "http://127.0.0.1:$port/hello"
redis-cli -p "$redis_port" config resetstat >/dev/null
out=$(taskset -c 1 wrk -t1 -c"$connections" -d"${seconds}s" \
    -H "Cookie: anon=0123456789abcdef0123456789abcdef" "http://127.0.0.1:$port/hello")
requests=$(awk '/requests in/ {print $1}' <<<"$out")
server_rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
evalsha=$(redis-cli -p "$redis_port" info commandstats | tr -d '\r' |
    awk -F'[=,:]' '/^cmdstat_evalsha/ {print $3}')
echo "server: $requests requests answered ($server_rps req/s), EVALSHA calls: $evalsha"
# wrk does not count the requests still in flight when it stops (at most
# one per connection); Redis saw them.
if (( evalsha < requests || evalsha > requests + connections )); then
    echo "redis-bench: expected one EVALSHA per request" >&2
    exit 1
fi

# The same script, arguments as the server sends them (one key, "" for
# Redis's clock, the interval and tolerance of the rule), from
# redis-benchmark alone.
sha=$(redis-cli -p "$redis_port" script load "$(cat crates/auth-throttle/src/redis/gcra.lua)")
bench=$(taskset -c 1 redis-benchmark -p "$redis_port" -c "$connections" -n 200000 --csv \
    evalsha "$sha" 1 "auth-throttle:{bench}:per-caller" "" 1 1000000000 |
    tail -1 | awk -F'","' '{print $2}')
echo "redis-benchmark, the same EVALSHA: $bench requests/s"
