#!/bin/bash
# Instructions per packet of the whole-burst cases (benches/instructions.rs)
# under callgrind: exact and repeatable where Mpps on a shared VM is not.
# Usage: tools/instructions.sh [CASE ...]   (needs valgrind: apt-get install valgrind)
# Cases: pod-pod-1-flow pod-pod-10k-flows pod-remote-1-flow remote-pod-1-flow
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
bin=$(cargo bench --bench instructions --no-run --message-format=json 2>/dev/null |
    python3 -c 'import sys,json
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "instructions" and m.get("executable"):
        print(m["executable"])')
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(pod-pod-1-flow pod-pod-10k-flows pod-remote-1-flow remote-pod-1-flow)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for c in "${cases[@]}"; do
    line=$(valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$bin" "$c" 2>/dev/null)
    packets=$(echo "$line" | sed -n 's/.*: \([0-9]*\) packets.*/\1/p')
    ir=$(callgrind_annotate --inclusive=yes "$out/cg" 2>/dev/null | awk '/instructions::measured/ && !n++ {gsub(",", "", $1); print $1}')
    [ -n "$packets" ] && [ -n "$ir" ] || { echo "instructions.sh: no count for $c" >&2; exit 1; }
    python3 -c "print('%-20s %6.1f instructions/packet (%d packets)' % ('$c', $ir / $packets, $packets))"
done
