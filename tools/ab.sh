#!/usr/bin/env bash
# A/B of two sdnfwd builds in memory: the same benchmarks alternated A, B,
# A, B … (ROUNDS rounds, default 3), one line per run, so that a machine's
# slow spells hit both. Build each first (cargo build --release; copy the
# binary aside), then:
#   bash tools/ab.sh /tmp/sdnfwd-A /tmp/sdnfwd-B [ROUNDS]
# Lines: ROUND PATTERN FLOWS A|B Mpps, and for upcalls cold and warm rates.
set -euo pipefail
a=$1 b=$2 rounds=${3:-3}
mpps() { "$1" bench --pattern "$2" --flows "$3" --seconds 3 --first-core 1 --json 2>/dev/null |
  grep -o '"mpps": *[0-9.]*' | head -1 | cut -d: -f2 | tr -d ' '; }
for r in $(seq "$rounds"); do
  for c in "pod-pod 1" "pod-pod 10000" "pod-pod 100000" "pod-remote 1" "remote-pod 1"; do
    set -- $c
    echo "$r $1 $2 A $(mpps "$a" "$1" "$2")"
    echo "$r $1 $2 B $(mpps "$b" "$1" "$2")"
  done
  for x in A B; do
    bin=$a; [ "$x" = B ] && bin=$b
    echo "$r upcalls 200000 $x $("$bin" bench --pattern upcalls --flows 200000 --json 2>/dev/null |
      tr ',' '\n' | grep -E '"(cold_upcalls_per_sec|upcalls_per_sec)"' | tr -d '{"' | tr '\n' ' ')"
  done
done
