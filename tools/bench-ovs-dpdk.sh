#!/usr/bin/env bash
# In memory, side by side: `sdnfwd bench` beside Open vSwitch with DPDK on
# the same rendered table and the same frames. OVS: Debian's
# ovs-vswitchd-dpdk under a temp dir, DPDK EAL `--no-pci --in-memory`,
# hugepages through /proc/sys/vm/nr_hugepages (restored afterwards) and a
# hugetlbfs mount, the frames replayed by a net_pcap vdev
# (rx_pcap=FILE,infinite_rx=1) into the source pod's port, the destination
# pod's port a net_null vdev (no-rx=1), one PMD pinned to core 1. For
# pod-remote (VXLAN push), br0's port 1 is a vxlan port (remote_ip=flow,
# key=flow) and OVS's native tunnelling sends the encapsulated frames out
# of a second bridge, br-phy, whose only port is the net_null vdev (the
# local VTEP, node-d's 172.16.1.25, on br-phy; a route and a static ARP entry per
# remote VTEP). ovs-vswitchd runs in a network namespace of its own, so its
# bridges' tap devices and the VTEP address never touch the host's. sdnfwd:
# one poll loop pinned to core 1, memory port → sink port, the same frames.
#   bash tools/bench-ovs-dpdk.sh [SECONDS]      (root)
#   SCENARIOS="pod-pod 1,pod-pod 100000" bash tools/bench-ovs-dpdk.sh   (pattern and flows, comma-separated)
#   SCENARIOS=ct bash tools/bench-ovs-dpdk.sh   (the connection-tracking ones below)
#   CT_CLUSTER="--cluster tests/data/np-node-d.yaml --cluster tests/data/np-cluster-oc.yaml --sdn-version 4.13 --node node-d" \
#     SCENARIOS=ct bash tools/bench-ovs-dpdk.sh   (the rendered table of those cluster arguments instead of --ct-mode's)
# Prints one line per scenario and `ratio sdnfwd/ovs-dpdk` lines.
#
# Connection tracking (`tcp-est N`, `tcp-new N`, `conn-memory N`): the
# ct-mode table (`sdnfwd bench --ct-mode --print-flows/--print-groups`: node-d
# with the networkpolicy plugin's conntrack rules and egress groups, the
# table tests/oracle_ovs.rs checks against OVS) loaded into both with its
# groups; OVS's userspace conntrack in the same PMD. `sdnfwd bench
# --write-pcap` writes each warm-up phase and each measured ring per port:
# OVS gets each warm-up phase as net_pcap ports read once (on the ofports
# the frames come from), waits until every frame of the phase is received,
# removes them, then the measured rings as net_pcap ports with infinite_rx
# (each also the output of the other side's frames, its transmissions
# dropped by the vdev). tcp-est: the handshakes of N connections, then a data
# segment each way per connection; OVS's tracker is checked to hold N
# ESTABLISHED connections after the handshakes (dpctl/dump-conntrack) and
# after the run. tcp-new: N tuples, each a SYN opening a connection in place
# of the tuple's closed one and an RST closing it, the ring once before the
# measurement; OVS's conntrack_full must stay 0. Rates are the source ports'
# received frames over the run (sdnfwd: the same, and its bench fails unless
# 99 % of its ct verdicts are what the pattern means). conn-memory: N
# handshakes (SYNs, SYN-ACKs, ACKs) into OVS through a one-rule table
# (`ip,actions=ct(commit)`), ovs-vswitchd's RSS before and after, beside
# `sdnfwd bench --pattern conn-memory` (the tracker alone, in process).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
bin=./target/release/sdnfwd
[ -x "$bin" ] || cargo build --release --quiet
pkgs=(openvswitch-switch-dpdk librte-net-null23 librte-net-pcap23 librte-mempool-ring23)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench-ovs-dpdk: installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
vsd=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
d=$(mktemp -d /tmp/sdnfwd-ovsdpdk.XXXXXX)
ns=sdnfwd-ovsdpdk-$$
old_hp=$(cat /proc/sys/vm/nr_hugepages)
cleanup() {
  cp "$d/vswitchd.log" /tmp/ovsdpdk-last.log 2>/dev/null || true
  for p in "$d"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
  sleep 1
  umount "$d/huge" 2>/dev/null || true
  echo "$old_hp" > /proc/sys/vm/nr_hugepages
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$d"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Machine facts, probed: two cores for the lcore and the PMD, 2 MiB
# hugepages (the kernel may grant fewer than asked, silently), hugetlbfs.
allowed=$(taskset -pc $$ | sed 's/.*: //')
python3 -c 'import os,sys; sys.exit(0 if {0,1} <= os.sched_getaffinity(0) else 1)' 2>/dev/null ||
  { echo "bench-ovs-dpdk: needs cores 0 and 1 (DPDK lcore, one PMD each); this process may use $allowed" >&2; exit 1; }
[ "$old_hp" -ge 1536 ] || echo 1536 > /proc/sys/vm/nr_hugepages
hp=$(cat /proc/sys/vm/nr_hugepages)
[ "$hp" -ge 1024 ] || { echo "bench-ovs-dpdk: needs 1,024 2-MiB hugepages (dpdk-socket-mem 2048); the kernel granted $hp of 1,536 (free memory, or /proc/sys/vm/nr_hugepages refused)" >&2; exit 1; }
mkdir "$d/huge"
mount -t hugetlbfs none "$d/huge" || { echo "bench-ovs-dpdk: cannot mount hugetlbfs (the kernel lacks CONFIG_HUGETLBFS?)" >&2; exit 1; }
echo "bench-ovs-dpdk: machine: cores $allowed, $hp hugepages of 2 MiB, hugetlbfs mounted" >&2
export OVS_RUNDIR=$d OVS_LOGDIR=$d OVS_DBDIR=$d OVS_SYSCONFDIR=$d
ovsdb-tool create "$d/conf.db" /usr/share/openvswitch/vswitch.ovsschema
ovsdb-server --remote="punix:$d/db.sock" --pidfile="$d/ovsdb.pid" --unixctl="$d/ovsdb.ctl" --detach --no-chdir \
  --log-file="$d/ovsdb.log" "$d/conf.db" 2>/dev/null
vs() { ovs-vsctl --db="unix:$d/db.sock" --timeout=60 "$@"; }
app() { ovs-appctl -t "$d/vswitchd.ctl" "$@"; }
vs --no-wait init
vs --no-wait set Open_vSwitch . other_config:dpdk-init=true other_config:pmd-cpu-mask=0x2 \
  other_config:dpdk-lcore-mask=0x1 other_config:dpdk-socket-mem=2048 \
  "other_config:dpdk-extra=--no-pci --in-memory --huge-dir=$d/huge"
ip netns add "$ns"
ip netns exec "$ns" "$vsd" "unix:$d/db.sock" --pidfile="$d/vswitchd.pid" --unixctl="$d/vswitchd.ctl" --detach --no-chdir \
  --log-file="$d/vswitchd.log" 2>/dev/null
$bin render > "$d/flows.txt"
echo "bench-ovs-dpdk: $(date -u +%F), $(nproc) cores, ${secs} s per run, 64-byte frames, node-d's rendered table"
# A port's counter from the datapath (`dpctl/show -s`): $1 port name, $2 RX or TX.
portc() { app dpctl/show -s | awk -v p="$1" -v k="$2" '$3 == p || $3 == p":" {f = 1; next} f && $1 == k {sub(/.*packets:/, ""); print $1 + 0; exit}'; }
# A port's first frames reach ovs-vswitchd before its OpenFlow port is
# known to the translation, and their upcalls are lost (320 to 6,584 of them
# in trials here): a warm-up file gets PAD frames in front that the tables
# drop without touching the tracker (EtherType 0x9000), so that what is lost
# is those.
PAD=50000
python3 - "$d/pad.pcap" "$PAD" <<'PY'
import struct, sys
f = open(sys.argv[1], "wb")
f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
fr = bytes.fromhex("0a580a830003" "0a580a830002" "9000") + bytes(46)
for _ in range(int(sys.argv[2])):
    f.write(struct.pack("<IIII", 0, 0, len(fr), len(fr)) + fr)
PY
# Adds net_pcap ports on br0 for `PORT FILE FRAMES` lines on stdin (prefix
# $1 for their names; $2 extra devargs, or `pad` for a warm-up file read
# once behind the padding); prints `NAME FRAMES` (padding included).
add_pcaps() {
  local pre=$1 extra=$2 port f frames args
  while read -r port f frames; do
    args=rx_pcap=$f$extra
    if [ "$extra" = pad ]; then
      { cat "$d/pad.pcap"; tail -c +25 "$f"; } >"$f.padded"
      args=rx_pcap=$f.padded frames=$((frames + PAD))
    fi
    vs add-port br0 "$pre$port" -- set interface "$pre$port" type=dpdk ofport_request="$port" \
       "options:dpdk-devargs=net_pcap$pre$port,$args" >/dev/null
    echo "$pre$port $frames"
  done
}
# Waits until each `NAME FRAMES` port of file $1 has received its frames.
wait_rx() {
  local name want got i
  for i in $(seq 600); do
    local done=1
    while read -r name want; do
      got=$(portc "$name" RX); [ "${got:-0}" -ge "$want" ] || done=0
    done <"$1"
    [ $done = 1 ] && { sleep 0.2; return 0; }
    sleep 0.1
  done
  echo "bench-ovs-dpdk: warm-up ports did not receive their frames in 60 s" >&2; return 1
}
# Null ports (transmit only) on br0 for the pod ports of flows file $2 that
# `PORT ...` lines on stdin do not use, named with prefix $1; prints their
# names. sdnfwd's loops have a sink on every port: OVS gets one too, so that
# frames to a pod leave by a port in both (an output to a missing port
# would be a cheaper drop).
add_sinks() {
  local pre=$1 flows=$2 used p
  used=$(awk '{print $1}' | sort -u)
  for p in $(grep -o 'load:[0-9a-fx]*->NXM_NX_REG2' "$flows" | sed 's/load:\(.*\)->.*/\1/' | sort -u); do
    p=$((p))
    echo "$used" | grep -qx "$p" && continue
    vs add-port br0 "$pre$p" -- set interface "$pre$p" type=dpdk ofport_request="$p" \
       "options:dpdk-devargs=net_null$pre$p,no-rx=1" >/dev/null
    echo "$pre$p"
  done
}
ct_count() { app dpctl/dump-conntrack | wc -l; }
ct_est() { app dpctl/dump-conntrack | grep -c 'state=ESTABLISHED' || true; }
cov() { app coverage/show | awk -v c="$1" '$1 == c {print $NF + 0; f = 1} END {if (!f) print 0}'; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$(cat "$d/vswitchd.pid")/status"; }
ct_scenario() {
  local pat=$1 flows=$2 n=$3 k ports
  if [ -n "${CT_CLUSTER:-}" ]; then
    $bin render $CT_CLUSTER 2>/dev/null >"$d/ctrender.txt"
    grep -v '^group add ' "$d/ctrender.txt" >"$d/ctflows.txt"
    sed -n 's/^group add //p' "$d/ctrender.txt" >"$d/ctgroups.txt"
  else
    $bin bench --ct-mode --print-flows >"$d/ctflows.txt"
    $bin bench --ct-mode --print-groups >"$d/ctgroups.txt"
  fi
  $bin bench ${CT_CLUSTER:-} --flow-file "$d/ctflows.txt" --groups "$d/ctgroups.txt" --pattern "$pat" --flows "$flows" \
    --frame-size 64 --write-pcap "$d/c$n" >"$d/c$n.list"
  vs add-br br0 -- set bridge br0 datapath_type=netdev fail_mode=secure protocols=OpenFlow10,OpenFlow13
  ovs-ofctl -O OpenFlow13 add-groups br0 "$d/ctgroups.txt"
  ovs-ofctl -O OpenFlow13 add-flows br0 "$d/ctflows.txt"
  app dpctl/flush-conntrack
  local c0 full0; c0=$(ct_count); full0=$(cov conntrack_full)
  for k in $(awk '$1 == "warm" {print $2}' "$d/c$n.list" | sort -nu); do
    awk -v k="$k" '$1 == "warm" && $2 == k {print $3}' "$d/c$n.list" | add_sinks "s${n}x$k" "$d/ctflows.txt" >"$d/s.ports"
    awk -v k="$k" '$1 == "warm" && $2 == k {print $3, $4, $5}' "$d/c$n.list" | add_pcaps "w${n}x$k" pad >"$d/w.ports"
    wait_rx "$d/w.ports"
    while read -r name _; do vs del-port br0 "$name"; done <"$d/w.ports"
    while read -r name; do vs del-port br0 "$name"; done <"$d/s.ports"
  done
  local conns est; conns=$(ct_count); est=$(ct_est)
  echo "    ovs-dpdk after the warm-up: $conns connections in dpctl/dump-conntrack, $est ESTABLISHED" \
       "(before: $c0)"
  if [ "$pat" = tcp-est ] && [ "$est" -ne "$flows" ]; then
    echo "bench-ovs-dpdk: OVS holds $est ESTABLISHED connections after $flows handshakes" >&2
    ovs-ofctl -O OpenFlow13 dump-flows br0 | grep -v 'n_packets=0,' >&2; app dpctl/dump-flows -m >&2; app coverage/show >&2
    return 1
  fi
  awk '$1 == "run" {print $2}' "$d/c$n.list" | add_sinks "s${n}r" "$d/ctflows.txt" >"$d/s.ports"
  awk '$1 == "run" {print $2, $3, $4}' "$d/c$n.list" | add_pcaps "r$n" ",infinite_rx=1" >"$d/r.ports"
  sleep 2
  rxsum() { local s=0 name; while read -r name _; do s=$((s + $(portc "$name" RX))); done <"$d/r.ports"; echo $s; }
  txsum() { local s=0 name; while read -r name _; do s=$((s + $(portc "$name" TX))); done < <(cat "$d/r.ports" "$d/s.ports"); echo $s; }
  local r0 t0 r1 t1 ovs fwd
  app dpif-netdev/pmd-stats-clear >/dev/null
  r0=$(rxsum); t0=$(txsum)
  sleep "$secs"
  r1=$(rxsum); t1=$(txsum)
  # OVS's megaflow misses over the run (a rate made of upcalls is not the datapath's).
  local ups; ups=$(app dpif-netdev/pmd-stats-show | awk -F: '/miss with success upcall/ {print $2 + 0; exit}')
  ovs=$(awk -v a="$r0" -v b="$r1" -v s="$secs" 'BEGIN {printf "%.3f", (b - a) / s / 1e6}')
  fwd=$(awk -v a="$r0" -v b="$r1" -v x="$t0" -v y="$t1" 'BEGIN {printf "%.1f", (b > a ? 100 * (y - x) / (b - a) : 0)}')
  local cyc full; cyc=$(app dpif-netdev/pmd-stats-show | awk -F: '/avg processing cycles per packet/ {sub(/^ +/, "", $2); sub(/[ (].*/, "", $2); print $2; exit}' || true)
  full=$(( $(cov conntrack_full) - full0 ))
  conns=$(ct_count); est=$(ct_est)
  vs del-br br0
  echo "    ovs-dpdk: $ovs Mpps received, $fwd% of them sent; conntrack: $conns connections ($est ESTABLISHED)" \
       "after the run, conntrack_full +$full; pmd ${cyc:-?} cycles/packet, ${ups:-?} upcalls"
  if [ "$full" -ne 0 ]; then echo "bench-ovs-dpdk: OVS's table was full during the run: its rate is not $pat's" >&2; fi
  local js sdn
  js=$($bin bench ${CT_CLUSTER:-} --flow-file "$d/ctflows.txt" --groups "$d/ctgroups.txt" --pattern "$pat" --flows "$flows" \
       --seconds "$secs" --first-core 1 --json) || { echo "bench-ovs-dpdk: sdnfwd's $pat run failed its tracking check" >&2; echo "$js" >&2; return 1; }
  sdn=$(echo "$js" | python3 -c 'import json,sys; d=json.load(sys.stdin); c=d["conntrack"]
print("%.3f %d %d %d %.2f %s" % (d["mpps"], c["connections"], c["created"], c["invalid"], c["est_pct"], c["check"]))')
  set -- $sdn
  echo "    sdnfwd: $1 Mpps; conntrack: $2 connections, during the run $3 created, $4 invalid, $5% of ct verdicts +est, check $6"
  local ratio; ratio=$(awk -v s="$1" -v o="$ovs" 'BEGIN {printf "%.2f", (o > 0 ? s / o : 0)}')
  if [ "$pat" = tcp-new ]; then
    echo "  $pat, $flows tuples: new connections sdnfwd $(awk -v x="$1" 'BEGIN {printf "%.3f", x / 2}') M/s," \
         "ovs-dpdk $(awk -v x="$ovs" 'BEGIN {printf "%.3f", x / 2}') M/s; ratio sdnfwd/ovs-dpdk $ratio"
  else
    echo "  $pat, $flows connection(s): sdnfwd $1 Mpps, ovs-dpdk $ovs Mpps; ratio sdnfwd/ovs-dpdk $ratio"
  fi
}
mem_scenario() {
  local flows=$1 n=$2
  $bin bench --pattern conn-memory --flows "$flows" --write-pcap "$d/m$n" >"$d/m$n.list"
  vs add-br br0 -- set bridge br0 datapath_type=netdev fail_mode=secure protocols=OpenFlow10,OpenFlow13
  ovs-ofctl -O OpenFlow13 add-flow br0 "priority=0,ip,actions=ct(commit)"
  app dpctl/flush-conntrack
  # A port first, so that the PMD thread and its caches exist before the baseline.
  vs add-port br0 "null$n" -- set interface "null$n" type=dpdk "options:dpdk-devargs=net_null$n,no-rx=1"
  sleep 2
  local rss0 rss1 k conns; rss0=$(rss_kb)
  for k in 1 2 3; do
    awk -v k="$k" '$1 == "warm" && $2 == k {print $3, $4, $5}' "$d/m$n.list" | add_pcaps "m${n}x$k" pad >"$d/w.ports"
    wait_rx "$d/w.ports"
    while read -r name _; do vs del-port br0 "$name"; done <"$d/w.ports"
  done
  sleep 1
  rss1=$(rss_kb); conns=$(app dpctl/ct-get-nconns)
  local est; est=$(ct_est)
  app dpctl/flush-conntrack || true
  vs del-br br0
  echo "    ovs-dpdk: $conns connections ($est ESTABLISHED): ovs-vswitchd RSS $rss0 kB -> $rss1 kB," \
       "$(awk -v a="$rss0" -v b="$rss1" -v n="$conns" 'BEGIN {printf "%.0f", (b - a) * 1024 / (n > 0 ? n : 1)}') bytes a connection"
  echo "    sdnfwd: $($bin bench --pattern conn-memory --flows "$flows" | sed 's/^sdnfwd bench: //')"
}
n=0
scen_list=${SCENARIOS:-pod-pod 1,pod-pod 10000,pod-service 1,pod-remote 1}
[ "$scen_list" = ct ] && scen_list="tcp-est 1,tcp-est 10000,tcp-est 100000,tcp-new 10000,conn-memory 1000000"
IFS=, read -r -a scens <<<"$scen_list"
for scen in "${scens[@]}"; do
  set -- $scen
  pat=$1 flows=$2 n=$((n + 1))
  case $pat in
    tcp-est|tcp-new) echo "  $pat $flows (load average $(cut -d' ' -f1-3 /proc/loadavg)):"; ct_scenario "$pat" "$flows" "$n"; continue ;;
    conn-memory) echo "  $pat $flows:"; mem_scenario "$flows" "$n"; continue ;;
  esac
  read -r in out < <($bin bench --pattern "$pat" --flows "$flows" --write-pcap "$d/f$n.pcap")
  vs add-br br0 -- set bridge br0 datapath_type=netdev fail_mode=secure protocols=OpenFlow10,OpenFlow13 \
    -- add-port br0 src$n -- set interface src$n type=dpdk ofport_request="$in" \
       "options:dpdk-devargs=net_pcap$n,rx_pcap=$d/f$n.pcap,infinite_rx=1"
  if [ "$out" = 1 ]; then
    # VXLAN push: vxlan0 on br0, the encapsulated frames out of br-phy.
    vs add-port br0 vxlan0 -- set interface vxlan0 type=vxlan ofport_request=1 \
         options:remote_ip=flow options:key=flow options:dst_port=4789 \
      -- add-br br-phy -- set bridge br-phy datapath_type=netdev fail_mode=secure \
      -- add-port br-phy dst$n -- set interface dst$n type=dpdk ofport_request=1 \
         "options:dpdk-devargs=net_null$n,no-rx=1"
    ovs-ofctl add-flow br-phy "actions=output:1"
    ip netns exec "$ns" ip addr add 172.16.1.25/24 dev br-phy
    ip netns exec "$ns" ip link set br-phy up
    for v in $(grep -o 'set_field:[0-9.]*->tun_dst' "$d/flows.txt" | sort -u | sed 's/set_field:\(.*\)->tun_dst/\1/'); do
      app ovs/route/add "$v/32" br-phy >/dev/null
      app tnl/arp/set br-phy "$v" "02:00:$(printf '%02x:%02x:%02x:%02x' ${v//./ })" >/dev/null
    done
  else
    vs add-port br0 dst$n -- set interface dst$n type=dpdk ofport_request="$out" \
       "options:dpdk-devargs=net_null$n,no-rx=1"
  fi
  ovs-ofctl -O OpenFlow13 add-flows br0 "$d/flows.txt"
  sleep 2
  # The datapath's own counter of the null port, read at once (the
  # database's statistics column is refreshed only every 5 s).
  txp() { app dpctl/show -s | awk -v p="dst$n" '$3 == p || $3 == p":" {f = 1; next} f && /TX packets/ {sub(/.*TX packets:/, ""); print $1 + 0; exit}'; }
  t0=$(txp)
  sleep "$secs"
  t1=$(txp)
  ovs=$(awk -v a="$t0" -v b="$t1" -v s="$secs" 'BEGIN {printf "%.2f", (b - a) / s / 1e6}')
  cyc=$(app dpif-netdev/pmd-stats-show | awk -F: '/avg processing cycles per packet/ {sub(/^ +/, "", $2); sub(/[ (].*/, "", $2); print $2; exit}' || true)
  vs del-br br0
  vs --if-exists del-br br-phy
  sdn=$($bin bench --pattern "$pat" --flows "$flows" --seconds "$secs" --first-core 1 --json \
        | grep -o '"mpps": *[0-9.e+-]*' | head -1 | sed 's/.*: *//')
  sdn=$(awk -v x="$sdn" 'BEGIN {printf "%.2f", x}')
  ratio=$(awk -v s="$sdn" -v o="$ovs" 'BEGIN {printf "%.2f", (o > 0 ? s / o : 0)}')
  echo "  $pat, $flows flow(s): sdnfwd $sdn Mpps, ovs-dpdk $ovs Mpps (pmd: ${cyc:-?} cycles/packet); ratio sdnfwd/ovs-dpdk $ratio"
done
