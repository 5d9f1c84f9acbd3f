#!/usr/bin/env bash
# The project's test command (README.md): installs what the tests need, then
# runs every test of the workspace, unit to end-to-end. Fails on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "scripts/test.sh: cargo not found; install Rust with rustup (https://rustup.rs)" >&2
    exit 1
fi
# Crates with C parts (ring for rustls) need a C compiler.
if ! command -v cc >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq build-essential
    else
        echo "scripts/test.sh: a C compiler (cc) is required" >&2
        exit 1
    fi
fi

cargo test --workspace --locked
