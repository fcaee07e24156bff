#!/bin/bash
# Instructions per packet of the whole-burst cases (benches/instructions.rs)
# under callgrind: exact and repeatable where Mpps on a shared VM is not.
# Usage: tools/instructions.sh [CASE ...]   (needs valgrind: apt-get install valgrind)
# Cases: pod-pod-1-flow pod-pod-10k-flows pod-pod-100k-flows pod-remote-1-flow remote-pod-1-flow,
# tcp-est-1-conn tcp-est-10k-conns tcp-est-100k-conns (the ct-mode table, data both ways over
# established connections, as `sdnfwd bench --ct-mode --pattern tcp-est`; not run by default),
# and upcalls: instructions per upcall of the slow-path thread
# (`sdnfwd bench --pattern upcalls --flows 50000`: a cold round and five
# warm ones, SlowPath::handle's count over the 300,000 upcalls; release build).
# A packet is a frame received (the ct cases: 64 an iteration, both ports);
# the ct cases also print its recirculations (2.5 at tcp-est, as `sdnfwd
# bench` shows). Callgrind's own call counts are no per-packet figure: they
# include the calls made before the measured function (the warm-up).
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
[ ${#cases[@]} -gt 0 ] || cases=(pod-pod-1-flow pod-pod-10k-flows pod-pod-100k-flows pod-remote-1-flow remote-pod-1-flow upcalls)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Instructions executed inside functions matching $1 (callgrind collects
# only there), for the command that follows.
inside() {
    local fn=$1
    shift
    valgrind --tool=callgrind --toggle-collect="$fn" --callgrind-out-file="$out/cg" "$@" 2>/dev/null
    callgrind_annotate "$out/cg" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}' >"$out/ir"
}
upcalls() {
    cargo build --release --quiet
    local cmd=(target/release/sdnfwd bench --pattern upcalls --flows 50000 --json)
    inside '*SlowPath::handle*' "${cmd[@]}" >"$out/json"
    local ir xl n
    ir=$(cat "$out/ir")
    inside '*xlate::Translator::run*' "${cmd[@]}" >/dev/null
    xl=$(cat "$out/ir")
    [[ "$ir" =~ ^[0-9]+$ && "$xl" =~ ^[0-9]+$ ]] || { echo "instructions.sh: no count for the upcalls or their translation (SlowPath::handle, Translator::run)" >&2; exit 1; }
    n=$(python3 -c "import json; d = json.load(open('$out/json')); print(d['upcalls'] * (1 + len(d['warm_rounds'])))")
    python3 -c "print('%-20s %6.0f instructions/upcall, translation %.0f of them (%d upcalls)' % ('upcalls', $ir / $n, $xl / $n, $n))"
}
for c in "${cases[@]}"; do
    if [ "$c" = upcalls ]; then
        upcalls
        continue
    fi
    line=$(inside '*instructions::measured*' "$bin" "$c")
    packets=$(echo "$line" | sed -n 's/.*: \([0-9]*\) packets.*/\1/p')
    ir=$(cat "$out/ir")
    [ -n "$packets" ] && [ -n "$ir" ] || { echo "instructions.sh: no count for $c" >&2; exit 1; }
    recirc=$(echo "$line" | sed -n 's/.*, \([0-9]*\) recirculations.*/\1/p')
    if [ -n "$recirc" ]; then
        python3 -c "print('%-20s %6.1f instructions/packet (%d packets, %.2f recirculations a packet)' % ('$c', $ir / $packets, $packets, $recirc / $packets))"
    else
        python3 -c "print('%-20s %6.1f instructions/packet (%d packets)' % ('$c', $ir / $packets, $packets))"
    fi
done
