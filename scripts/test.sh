#!/usr/bin/env bash
# The project's test command (README.md): installs what the tests need, then
# runs every test of the workspace, unit to end-to-end. Fails on any failure.
#
# Needs a Rust toolchain. Installs, when missing, with apt-get (so as root,
# on Debian or Ubuntu): a C compiler (ring, aws-lc), Node.js and npm for the
# real OpenID provider (oidc-provider, pinned by tests/oidc/package-lock.json),
# Chromium and chromedriver for the browser test, and redis-server and
# redis-cli (one server, and a six-node cluster) for the rate limiter's
# shared store. Without apt-get it names what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "scripts/test.sh: cargo not found; install Rust with rustup (https://rustup.rs)" >&2
    exit 1
fi

missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
if ((${#missing[@]})); then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "scripts/test.sh: installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    else
        echo "scripts/test.sh: please install (as root, with apt-get): ${missing[*]}" >&2
        exit 1
    fi
fi

# The OpenID provider, pinned by tests/oidc/package-lock.json.
npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error

# The optional features too (the Redis store, the async transport), with one JWT crypto backend (CI tests both in .ci/run).
cargo test --workspace --locked \
    --features auth-core/hyper,auth-throttle/redis
