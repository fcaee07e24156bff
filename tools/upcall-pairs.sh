#!/usr/bin/env bash
# The slow path's upcall rate of two builds, measured at the same time:
# `sdnfwd bench --pattern upcalls --flows FLOWS --json` of build A on one
# core and of build B on the other, started together, PAIRS times, the
# cores swapped from one pair to the next (on this VM core 0 runs a few per
# cent slower). Running both at once exposes them to the same moment of a
# noisy machine, where runs one after the other see it change in between.
# Prints each pair (warm median and cold round, M upcalls/s) and the median
# B/A ratio. Both builds must have the same `bench` harness: to compare with
# an older commit, build it with the harness of the newer one (for example
# `git cherry-pick -n d6305b4` on top of it).
#   bash tools/upcall-pairs.sh A B [PAIRS] [FLOWS]     (defaults: 8, 200000)
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BUILD_A BUILD_B [PAIRS] [FLOWS]" >&2; exit 2; }
a=$1 b=$2 pairs=${3:-8} flows=${4:-200000}
[ "$(nproc)" -ge 2 ] || { echo "upcall-pairs.sh: needs two cores, this machine has $(nproc)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
rate() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.4f %.4f" % (d["upcalls_per_sec"]/1e6, d["cold_upcalls_per_sec"]/1e6))' "$1"
}
for p in $(seq "$pairs"); do
    if [ $((p % 2)) = 1 ]; then ca=0 cb=1; else ca=1 cb=0; fi
    taskset -c $ca "$a" bench --pattern upcalls --flows "$flows" --json >"$out/a" &
    pa=$!
    taskset -c $cb "$b" bench --pattern upcalls --flows "$flows" --json >"$out/b" &
    pb=$!
    wait $pa
    wait $pb
    echo "$ca $cb $(rate "$out/a") $(rate "$out/b")"
done | python3 -c '
import statistics, sys
warm, cold = [], []
for line in sys.stdin:
    ca, cb, a, ac, b, bc = line.split()
    a, ac, b, bc = map(float, (a, ac, b, bc))
    warm.append(b / a)
    cold.append(bc / ac)
    print("A on core %s: warm %.3f cold %.3f | B on core %s: warm %.3f cold %.3f | B/A warm %.3f cold %.3f"
          % (ca, a, ac, cb, b, bc, b / a, bc / ac))
print("B/A: warm median %.3f (%.3f to %.3f), cold median %.3f over %d pairs"
      % (statistics.median(warm), min(warm), max(warm), statistics.median(cold), len(warm)))
'
