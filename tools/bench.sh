#!/usr/bin/env bash
# Side-by-side forwarding benchmark over veth (root): the same topology,
# generator (tools/pktgen, XDP live frames, pinned to core 0) and flows for
# each forwarder in turn, each pinned to core 1: sdnfwd, Open vSwitch 3.1
# userspace datapath with afxdp ports and the same rendered table, the
# Linux bridge, and a bare AF_XDP rx→tx loop (the I/O limit).
#   bash tools/bench.sh            # pod→pod, pod→remote (encap), remote→pod (decap),
#                                  # 1 and 10,000 flows, 10 s each, then
#                                  # in memory beside OVS with DPDK (tools/bench-ovs-dpdk.sh)
#   bash tools/bench.sh --quick    # pod→pod, 1 flow, 5 s (under five minutes)
# Everything it creates (namespaces, veths, XDP programs, OVS under a temp
# dir) is removed, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
cargo build --release --workspace --quiet
bin=./target/release/sdnfwd
secs=10
flows=(1 10000)
if [ "${1:-}" = "--quick" ]; then secs=5; flows=(1); fi
fwds=(sdnfwd ovs-afxdp kernel bare-xsk)
declare -A rx cost
# A top-level field of a one-line JSON object (numbers, null, strings).
field() { echo "$1" | grep -o "\"$2\":[^,}]*" | head -1 | cut -d: -f2; }
echo "sdnfwd bench: $(date -u +%F), $(nproc) cores, $(uname -r), ${secs} s per run, 64-byte frames"
scens=(pod-pod)
[ "${1:-}" = "--quick" ] || scens=(pod-pod pod-remote remote-pod)
for sc in "${scens[@]}"; do
for f in "${flows[@]}"; do
  for fw in "${fwds[@]}"; do
    if [ "$sc" != pod-pod ] && { [ "$fw" = ovs-afxdp ] || [ "$fw" = kernel ]; }; then
      rx[$sc,$fw,$f]="n/a"; continue   # tunnel set-ups of OVS and the kernel not scripted yet
    fi
    out=$($bin bench-veth --scenario "$sc" --forwarder "$fw" --flows "$f" --seconds "$secs" --json)
    rx[$sc,$fw,$f]=$(field "$out" rx_mpps | awk '{printf "%.3f", $1}')
    c=$(field "$out" forwarder_cost)
    if [ "$c" = "null" ]; then cost[$fw,$f]="-"; else
      cost[$fw,$f]="$(echo "$c" | awk '{printf "%.0f", $1}') $(field "$out" forwarder_cost_unit | tr -d '"')"; fi
    echo "  $sc, $fw, $f flow(s): ${rx[$sc,$fw,$f]} Mpps (forwarder's own time: ${cost[$fw,$f]})"
  done
done
done
echo
printf "| scenario | flows | %s |\n" "$(IFS='|'; echo "${fwds[*]}" | sed 's/|/ | /g')"
printf "|---|---|%s\n" "$(for _ in "${fwds[@]}"; do printf -- '---|'; done)"
for sc in "${scens[@]}"; do
  for f in "${flows[@]}"; do
    row="| $sc | $f |"
    for fw in "${fwds[@]}"; do row="$row ${rx[$sc,$fw,$f]} |"; done
    echo "$row"
  done
done
echo
f=${flows[0]}
if [ "${1:-}" != "--quick" ]; then
  echo
  bash tools/bench-ovs-dpdk.sh "$secs"
fi
echo
awk -v s="${rx[pod-pod,sdnfwd,$f]}" -v o="${rx[pod-pod,ovs-afxdp,$f]}" -v b="${rx[pod-pod,bare-xsk,$f]}" 'BEGIN {
  printf "ratio sdnfwd/ovs-afxdp %.2f\n", (o > 0 ? s / o : 0)
  printf "ratio sdnfwd/bare-xsk %.2f\n", (b > 0 ? s / b : 0)
}'
