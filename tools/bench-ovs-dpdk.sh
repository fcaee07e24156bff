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
# Prints one line per scenario and `ratio sdnfwd/ovs-dpdk` lines.
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
n=0
IFS=, read -r -a scens <<<"${SCENARIOS:-pod-pod 1,pod-pod 10000,pod-service 1,pod-remote 1}"
for scen in "${scens[@]}"; do
  set -- $scen
  pat=$1 flows=$2 n=$((n + 1))
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
