#!/usr/bin/env python3
"""Where two builds' instructions per request differ, function by function.

Reads the callgrind outputs that `BENCH_KEEP=<dir> bash scripts/instructions.sh`
keeps (<framework>-<mode>-<n>), for one framework and mode, from two such
directories (one per build). For each, a function's own instructions per
request are (its count at the higher N - at N = 100) / (N - 100), as the
script computes the totals; prints the functions whose figure moved most
between the builds, and the total.

    python3 scripts/callgrind_diff.py <dir-a> <dir-b> <framework> <mode> [top]

It reads callgrind_annotate's listing as valgrind 3.19 (Debian 12) prints
it: "<count>  <file>:<function> [<object>]".
"""
import collections
import glob
import os
import re
import subprocess
import sys


def own_costs(path):
    """Instructions per function (self cost), from callgrind_annotate."""
    out = subprocess.run(
        ["callgrind_annotate", "--auto=no", "--threshold=100", "--show-percs=no", path],
        capture_output=True, text=True, check=True,
    ).stdout
    costs = collections.Counter()
    for line in out.splitlines():
        match = re.match(r"\s*([\d,]+)\s+(\S.*)$", line)
        if not match or (":" not in match.group(2) and "PROGRAM TOTALS" not in match.group(2)):
            continue
        name = re.sub(r"::h[0-9a-f]{16}", "", match.group(2))
        name = re.sub(r"\s*\[[^\]]*\]$", "", name).strip()
        if "PROGRAM TOTALS" in name:
            name = "PROGRAM TOTALS"
        costs[name] += int(match.group(1).replace(",", ""))
    return costs


def per_request(directory, framework, mode):
    # Exactly this mode's runs: `jwt-*` must not take `jwt-cached-*`.
    name = re.compile(re.escape(f"{framework}-{mode}-") + r"(\d+)")
    runs = sorted(
        (int(match.group(1)), path)
        for path in glob.glob(os.path.join(directory, "*"))
        if (match := name.fullmatch(os.path.basename(path)))
    )
    if len(runs) < 2:
        sys.exit(f"{directory}: no {framework}-{mode}-<n> pair")
    (low_n, low), (high_n, high) = runs[0], runs[-1]
    a, b = own_costs(low), own_costs(high)
    return {k: (b[k] - a[k]) / (high_n - low_n) for k in set(a) | set(b)}


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    first, second, framework, mode = sys.argv[1:5]
    top = int(sys.argv[5]) if len(sys.argv) > 5 else 12
    a = per_request(first, framework, mode)
    b = per_request(second, framework, mode)
    moved = sorted(((b.get(k, 0) - a.get(k, 0)), k) for k in set(a) | set(b))
    moved = [m for m in moved if abs(m[0]) >= 0.5 and m[1] != "PROGRAM TOTALS"]
    print(f"{framework} {mode}: instructions per request, {second} - {first}")
    for delta, name in sorted(moved, key=lambda m: -abs(m[0]))[:top]:
        print(f"{delta:+9.1f}  {name[:150]}")
    total = b.get("PROGRAM TOTALS", 0) - a.get("PROGRAM TOTALS", 0)
    print(f"{total:+9.1f}  in all")


if __name__ == "__main__":
    main()
