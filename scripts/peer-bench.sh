#!/usr/bin/env bash
# Load benchmark against the peers: the same hello route on bare axum 0.8,
# auth-axum (HS256 / RS256, verified-token cache off / on), bare axum 0.7,
# axum 0.7 + jwt-authorizer, bare actix-web, auth-actix, and actix-web +
# actix-web-httpauth with jsonwebtoken; and rate limits alone keyed by
# peer IP with a quota nothing reaches, each with its headers and without:
# ours and tower_governor on axum, ours and actix-governor on actix-web
# (peer-bench/, its own workspace).
# The server gets CPU 0 (one thread), wrk gets CPU 1 (1 thread, 32
# connections); all modes run once per round, alternating, so machine noise
# hits them alike. Before measuring, each authenticating server must answer
# 401 without a token and 200 with it. Prints medians, the ratio to the same
# framework's bare server (req/s and server CPU per request), the ratio to
# the same round's bare run ("paired"), and ours against each peer round by
# round, as markdown.
#
#   bash scripts/peer-bench.sh [rounds=5] [seconds=8] [mode-filter-regex]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-8}
filter=${3:-.}

if ! command -v wrk >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi
cargo build --release --locked -q --manifest-path peer-bench/Cargo.toml
bin=peer-bench/target/release/peer-bench
hs256=$($bin token hs256)
rs256=$($bin token rs256)
mapfile -t modes < <($bin modes | grep -E -- "$filter")
port=38118
results=$(mktemp)
ticks=$(getconf CLK_TCK)

for round in $(seq "$rounds"); do
    for mode in "${modes[@]}"; do
        token=$hs256
        [[ $mode == *rs256* ]] && token=$rs256
        taskset -c 0 "$bin" "$mode" "127.0.0.1:$port" &
        pid=$!
        for _ in $(seq 100); do
            curl -s -o /dev/null "http://127.0.0.1:$port/hello" && break
            sleep 0.1
        done
        with=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port/hello")
        without=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/hello")
        expected_without=401
        [[ $mode == *-bare || $mode == *-ip || $mode == *-ip-quiet ]] && expected_without=200
        if [ "$with" != 200 ] || [ "$without" != "$expected_without" ]; then
            echo "$mode: with token $with (want 200), without $without (want $expected_without)" >&2
            kill "$pid"
            exit 1
        fi
        cpu_before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        out=$(taskset -c 1 wrk -t1 -c32 -d"${seconds}s" \
            -H "Authorization: Bearer $token" "http://127.0.0.1:$port/hello")
        cpu_after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        if grep -q "Non-2xx" <<<"$out"; then
            echo "$mode: wrk saw non-2xx answers" >&2
            exit 1
        fi
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        requests=$(awk '/requests in/ {print $1}' <<<"$out")
        cpu_us=$(python3 -c "print(round(($cpu_after - $cpu_before) / $ticks * 1e6 / $requests, 3))")
        echo "$round $mode $rps $cpu_us" | tee -a "$results"
    done
done

python3 - "$results" <<'PY'
import statistics, sys
rps, cpu, by_round = {}, {}, {}
for line in open(sys.argv[1]):
    rnd, mode, r, c = line.split()
    rps.setdefault(mode, []).append(float(r))
    cpu.setdefault(mode, []).append(float(c))
    by_round.setdefault(rnd, {})[mode] = float(r)
def bare(mode):
    return mode.split("-")[0] + "-bare"
def paired(mode):
    """Per round: req/s over the same round's bare run of its framework."""
    b = bare(mode)
    return [r[mode] / r[b] for r in by_round.values() if mode in r and b in r]
print("\n| mode | median req/s | ratio to its bare | paired ratio (median) | server CPU µs/req | CPU ratio bare/mode | runs (req/s) |")
print("|---|---|---|---|---|---|---|")
for mode in rps:
    m, c = statistics.median(rps[mode]), statistics.median(cpu[mode])
    b = bare(mode)
    ratio = f"{m / statistics.median(rps[b]):.3f}" if b in rps else "-"
    p = paired(mode)
    pratio = f"{statistics.median(p):.3f}" if p else "-"
    cratio = f"{statistics.median(cpu[b]) / c:.3f}" if b in cpu else "-"
    runs = ", ".join(f"{v:,.0f}" for v in rps[mode])
    print(f"| {mode} | {m:,.0f} | {ratio} | {pratio} | {c:.2f} | {cratio} | {runs} |")
# Head to head: each round, ours and the peer, each over its own bare.
pairs = [("axum-limit-ip", "axum-governor-ip"),
         ("axum-limit-ip-quiet", "axum-governor-ip-quiet"),
         ("actix-limit-ip", "actix-governor-ip"),
         ("actix-limit-ip-quiet", "actix-governor-ip-quiet"),
         ("axum-ours-hs256", "axum07-jwt-authorizer-hs256"),
         ("axum-ours-rs256", "axum07-jwt-authorizer-rs256"),
         ("actix-ours-hs256", "actix-httpauth-hs256"),
         ("actix-ours-rs256", "actix-httpauth-rs256")]
rows = []
for ours, peer in pairs:
    wins = []
    for r in by_round.values():
        if all(k in r for k in (ours, peer, bare(ours), bare(peer))):
            wins.append((r[ours] / r[bare(ours)]) / (r[peer] / r[bare(peer)]))
    if wins:
        rows.append((ours, peer, wins))
if rows:
    print("\n| ours vs peer (each over its bare, same round) | median | rounds ours ahead |")
    print("|---|---|---|")
    for ours, peer, wins in rows:
        ahead = sum(w > 1 for w in wins)
        print(f"| {ours} / {peer} | {statistics.median(wins):.3f} | {ahead} of {len(wins)} |")
PY
