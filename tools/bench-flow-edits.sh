#!/usr/bin/env bash
# Flow edits at scale, sdnfwd beside Open vSwitch: `ovs-ofctl add-flows`,
# `replace-flows` (to a file of one flow: every other flow removed; and to
# N new flows: N removed, N added) and `del-flows` of N flows, timed with
# the same ovs-ofctl against a throwaway ovs-vswitchd (userspace datapath,
# dummy ports, as tests/common/ovs.rs starts it) and against `sdnfwd run
# --openflow` (no uplink, no tun0, no pods: the tables only), and the same
# edits through `sdnfwd ctl` (add-flows, replace-flows, del-flows).
#   bash tools/bench-flow-edits.sh [N ...]      (root; default 1000 10000 20000)
# Prints one line per (N, command): seconds, best of $REPS (default 3), per
# target. The poll loop busy-polls (no --pmd-maxsleep-us): a sleeping loop
# answers the port dump that ovs-ofctl asks for first only every 1024
# sleeps. SDNFWD=path times another build.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000 20000)
reps=${REPS:-3}
bin=${SDNFWD:-./target/release/sdnfwd}
[ -x "$bin" ] || cargo build --release --quiet --bin sdnfwd
for p in ovs-vswitchd ovs-ofctl ovsdb-server; do
  command -v "$p" >/dev/null || { echo "bench-flow-edits: $p missing (apt-get install openvswitch-switch)" >&2; exit 2; }
done
d=$(mktemp -d /tmp/sdnfwd-flowedits.XXXXXX)
port=$((20000 + $$ % 20000))
sdn_pid=
cleanup() {
  [ -n "$sdn_pid" ] && kill "$sdn_pid" 2>/dev/null && wait "$sdn_pid" 2>/dev/null || true
  for p in "$d"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
  sleep 0.5
  rm -rf "$d"
}
trap cleanup EXIT

. tools/lib-ovs.sh
start_ovs "$d"
vsctl add-br br0 -- set bridge br0 datapath_type=netdev fail_mode=secure protocols=OpenFlow10,OpenFlow13
ovs_target=br0

# sdnfwd: a node with no uplink and no pods, OpenFlow on a local TCP port.
start_sdnfwd "$bin" "$d" bench "ptcp:$port:127.0.0.1" || exit 1
sdn_target=tcp:127.0.0.1:$port
ofctl() { ovs-ofctl -O OpenFlow13 "$@"; }
ctl() { "$bin" ctl --socket "$d/sdnfwd.ctl" "$@" >/dev/null; }

# N flows as openshift-sdn's table 70 writes them for pods (one per IP);
# base 10 or 20 gives two disjoint sets.
flows() {
  local n=$1 base=$2
  awk -v n="$n" -v b="$base" 'BEGIN { for (i = 0; i < n; i++)
    printf "table=70, priority=100, ip, nw_dst=10.%d.%d.%d, actions=load:0x%x->NXM_NX_REG1[], load:0x%x->NXM_NX_REG2[], goto_table:80\n",
      b + int(i / 65536), int(i / 256) % 256, i % 256, i % 4096, 3 + i % 60000 }'
}
echo 'table=0, priority=0, actions=drop' >"$d/one.flows"

now() { date +%s.%N; }
# best TARGET-KIND SETUP... -- COMMAND...: the best time of $reps runs of
# COMMAND, each after SETUP.
best() {
  local setup=() cmd=() seen=0 b=
  for a in "$@"; do
    if [ "$a" = "--" ] && [ $seen = 0 ]; then seen=1; continue; fi
    if [ $seen = 0 ]; then setup+=("$a"); else cmd+=("$a"); fi
  done
  for _ in $(seq "$reps"); do
    eval "${setup[*]}"
    local t0 t1
    t0=$(now); "${cmd[@]}"; t1=$(now)
    b=$(echo "$t0 $t1 ${b:-1e9}" | awk '{ t = $2 - $1; print (t < $3 ? t : $3) }')
  done
  printf '%.3f' "$b"
}

printf '%-6s %-26s %10s %14s %10s\n' N command ovs sdnfwd-openflow sdnfwd-ctl
for n in "${sizes[@]}"; do
  flows "$n" 10 >"$d/a.flows"
  flows "$n" 20 >"$d/b.flows"
  # add-flows N into empty tables.
  o=$(best "ofctl del-flows $ovs_target" -- ofctl add-flows $ovs_target "$d/a.flows")
  s=$(best "ofctl del-flows $sdn_target" -- ofctl add-flows "$sdn_target" "$d/a.flows")
  c=$(best "ctl del-flows ''" -- ctl add-flows "$d/a.flows")
  printf '%-6s %-26s %10s %14s %10s\n' "$n" "add-flows" "$o" "$s" "$c"
  # replace-flows: N flows replaced by one (N removed).
  o=$(best "ofctl del-flows $ovs_target; ofctl add-flows $ovs_target $d/a.flows" -- ofctl replace-flows $ovs_target "$d/one.flows")
  s=$(best "ofctl del-flows $sdn_target; ofctl add-flows $sdn_target $d/a.flows" -- ofctl replace-flows "$sdn_target" "$d/one.flows")
  c=$(best "ctl del-flows ''; ctl add-flows $d/a.flows" -- ctl replace-flows "$d/one.flows")
  printf '%-6s %-26s %10s %14s %10s\n' "$n" "replace-flows (N removed)" "$o" "$s" "$c"
  # replace-flows: N flows replaced by N others (N removed, N added).
  o=$(best "ofctl del-flows $ovs_target; ofctl add-flows $ovs_target $d/a.flows" -- ofctl replace-flows $ovs_target "$d/b.flows")
  s=$(best "ofctl del-flows $sdn_target; ofctl add-flows $sdn_target $d/a.flows" -- ofctl replace-flows "$sdn_target" "$d/b.flows")
  c=$(best "ctl del-flows ''; ctl add-flows $d/a.flows" -- ctl replace-flows "$d/b.flows")
  printf '%-6s %-26s %10s %14s %10s\n' "$n" "replace-flows (N by N)" "$o" "$s" "$c"
  # del-flows of N.
  o=$(best "ofctl add-flows $ovs_target $d/a.flows" -- ofctl del-flows $ovs_target)
  s=$(best "ofctl add-flows $sdn_target $d/a.flows" -- ofctl del-flows "$sdn_target")
  c=$(best "ctl add-flows $d/a.flows" -- ctl del-flows '')
  printf '%-6s %-26s %10s %14s %10s\n' "$n" "del-flows" "$o" "$s" "$c"
done
