#!/usr/bin/env bash
# Checks each library crate's public API against its listing in
# docs/public-api/<crate>.txt, so that growth is a visible decision.
# `bash scripts/public-api.sh --bless` rewrites the listings.
#
# The listing comes from rustdoc's JSON output (unstable on stable Rust, so
# RUSTC_BOOTSTRAP=1 enables it for this command only) and
# scripts/public_api.py. Every feature is on, so feature-gated items count.
set -euo pipefail
cd "$(dirname "$0")/.."

bless=false
[[ "${1:-}" == "--bless" ]] && bless=true

status=0
for crate in auth-core auth-axum auth-actix auth-throttle; do
    lib=${crate//-/_}
    RUSTC_BOOTSTRAP=1 cargo rustdoc -q -p "$crate" --lib --all-features --locked \
        -- -Z unstable-options --output-format json
    listing="docs/public-api/$crate.txt"
    current=$(python3 scripts/public_api.py "target/doc/$lib.json")
    if $bless; then
        mkdir -p docs/public-api
        printf '%s\n' "$current" >"$listing"
        echo "public-api: wrote $listing ($(wc -l <"$listing") items)"
    elif ! diff -u "$listing" <(printf '%s\n' "$current"); then
        echo "public-api: $crate's public API changed; if on purpose, run: bash scripts/public-api.sh --bless" >&2
        status=1
    else
        echo "public-api: $crate unchanged ($(wc -l <"$listing") items)"
    fi
done
exit $status
