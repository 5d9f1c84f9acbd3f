#!/usr/bin/env bash
# Load and soak: starts the demo (axum, then actix) and drives it with the
# soak load generator (tests/src/bin/soak.rs): a mix of valid, never-repeated,
# forged and garbage tokens, no credentials, a missing scope, anonymous
# cookies issued and sent back, and /ip, over N concurrent connections.
# Fails on any unexpected answer or connection error, or when the server's
# memory keeps growing. Usage:
#   scripts/soak.sh [seconds=60] [connections=256] [release|debug]
# The server runs on CPU 0 and the load on CPU 1 (when there are two).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
conns=${2:-256}
profile=${3:-release}
build=(--locked)
[ "$profile" = release ] && build+=(--release)
cargo build "${build[@]}" -p auth-examples --bin demo -p auth-tests --bin soak
bin=target/$profile

pin_server=() pin_load=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    pin_server=(taskset -c 0) pin_load=(taskset -c 1)
fi
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
status=0
for framework in axum actix; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    log=$(mktemp)
    # It sends forged tokens on purpose: the failure budget is off.
    DEMO_ADDR=127.0.0.1:$port DEMO_JWT_SECRET=$secret DEMO_FAILURE_BUDGET=off \
        "${pin_server[@]}" "$bin/demo" --framework "$framework" >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    echo "== $framework (pid $pid, $conns connections, ${secs}s, $profile build)"
    if ! "${pin_load[@]}" "$bin/soak" --url "http://127.0.0.1:$port" --secret "$secret" \
        --pid "$pid" --connections "$conns" --seconds "$secs"; then
        status=1
        echo "-- server log:"; tail -n 20 "$log"
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$log"
done
exit $status
