#!/usr/bin/env bash
# Side-by-side forwarding benchmark over veth (root): the same topology,
# generator (tools/pktgen pinned to core 0, in the mode `pktgen gen --mode
# auto` picks on this machine, probed once: XDP live frames where they are
# allowed, else AF_XDP TX, else AF_PACKET; the same for every forwarder of
# the run, and named in the header) and flows for each forwarder in turn, each pinned to core 1: sdnfwd, Open vSwitch 3.1
# userspace datapath with afxdp ports and the same rendered table (with
# OVS's userspace VXLAN for the tunnel scenarios), the Linux bridge (with a
# kernel VXLAN device for those), and a bare AF_XDP rx→tx loop (the I/O
# limit). The last two lines are sdnfwd's ratios to OVS and to the bare
# loop, geometric means over the run's scenarios and flow counts.
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
probe=$($bin bench-veth --probe-generator)
gen=$(field "$probe" generator | tr -d '"')
echo "sdnfwd bench: $(date -u +%F), $(nproc) cores, $(uname -r), ${secs} s per run, 64-byte frames"
echo "generator: pktgen --mode $gen for every run (probed: $probe)"
scens=(pod-pod)
[ "${1:-}" = "--quick" ] || scens=(pod-pod pod-remote remote-pod)
for sc in "${scens[@]}"; do
for f in "${flows[@]}"; do
  for fw in "${fwds[@]}"; do
    out=$($bin bench-veth --scenario "$sc" --forwarder "$fw" --flows "$f" --seconds "$secs" --gen-mode "$gen" --json)
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
if [ "${1:-}" != "--quick" ]; then
  echo
  bash tools/bench-ovs-dpdk.sh "$secs"
fi
echo
# The ratios: geometric means over every scenario and flow count of the
# run (one row alone moves by ±10 % from run to run on a 2-core VM).
for other in ovs-afxdp bare-xsk; do
  for sc in "${scens[@]}"; do for f in "${flows[@]}"; do
    echo "${rx[$sc,sdnfwd,$f]} ${rx[$sc,$other,$f]}"
  done; done | awk -v o="$other" '$1 > 0 && $2 > 0 { s += log($1 / $2); n++ }
    END { printf "ratio sdnfwd/%s %.2f\n", o, (n ? exp(s / n) : 0) }'
done
