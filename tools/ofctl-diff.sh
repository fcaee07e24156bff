#!/usr/bin/env bash
# ovs-ofctl against sdnfwd and against Open vSwitch, output compared.
#   bash tools/ofctl-diff.sh            (root; SDNFWD=path picks the binary)
# Starts a throwaway ovs-vswitchd (userspace datapath, dummy ports, under a
# temp dir, as tests/common/ovs.rs does) and `sdnfwd run --openflow`
# (no uplink, no tun0, no pods: the tables only), removes the node's own
# flows from sdnfwd, then runs every step below with the same ovs-ofctl
# against both and compares what each printed (stdout, stderr and exit
# status) after normalising what differs by nature: durations and ages,
# xids, the order of dump lines (OVS dumps in its classifier's order), the
# socket paths, and the differences documented in docs/REFERENCE.md
# ("OpenFlow: differences from Open vSwitch"), each normalised by one
# named rule in `norm` below. Prints each step and `same` or the diff;
# exits 1 if any step differs, 2 if something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${SDNFWD:-}
if [ -z "$bin" ]; then
  bin=./target/debug/sdnfwd
  [ -x "$bin" ] || cargo build --quiet --bin sdnfwd
fi
for p in ovs-vswitchd ovs-ofctl ovsdb-server ovsdb-tool ovs-vsctl; do
  command -v "$p" >/dev/null || { echo "ofctl-diff: $p missing (apt-get install openvswitch-switch)" >&2; exit 2; }
done
d=$(mktemp -d /tmp/sdnfwd-ofctl-diff.XXXXXX)
sdn_pid=
cleanup() {
  { [ -n "$sdn_pid" ] && kill "$sdn_pid" && wait "$sdn_pid"; } 2>/dev/null || true
  for p in "$d"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
  sleep 0.3
  rm -rf "$d"
}
trap cleanup EXIT

. tools/lib-ovs.sh
start_ovs "$d"
# OVS's default bridge: every version, as sdnfwd offers them.
vsctl add-br br0 -- set bridge br0 datapath_type=netdev fail_mode=secure \
  protocols=OpenFlow10,OpenFlow11,OpenFlow12,OpenFlow13,OpenFlow14,OpenFlow15 \
  -- add-port br0 vxlan0 -- set interface vxlan0 type=vxlan options:remote_ip=flow options:key=flow \
  options:dst_port=4789 ofport_request=1
vsctl set-fail-mode br0 secure
ovs=unix:$d/br0.mgmt

start_sdnfwd "$bin" "$d" diff "punix:$d/sdnfwd.mgmt" --pmd-maxsleep-us 100 || exit 2
sdn=unix:$d/sdnfwd.mgmt
ovs-ofctl del-flows "$sdn"
ovs-ofctl del-flows "$ovs"

# What differs by nature, and the documented differences (one rule each).
norm() {
  sed -E \
    -e "s#$d/(sdnfwd|br0)\.mgmt#SWITCH#g" \
    -e 's/duration=[0-9.]+s/duration=D/g; s/duration[0-9.]+s/durationD/g' \
    -e 's/(idle|hard)_age=[0-9]+/\1_age=A/g' \
    -e 's/xid=0x[0-9a-f]+/xid=X/g' \
    -e 's/^(ovs-ofctl: [^:]*: ).*(Protocol error|Broken pipe).*/\1\2/' |
    # OVS's hidden table 254 flows (in-band control) never show: none here.
    # dump-tables: OVS counts lookups of packets that missed every rule of
    # a table; with no packets both are 0 (nothing to normalise).
    # Each block (a line and the flow, event or group lines after it) in
    # place, its flow lines sorted.
    awk '{ if ($0 !~ /^ (cookie|event|group_id)=/) b++; printf "%06d %d %s\n", b, ($0 ~ /^ (cookie|event|group_id)=/), $0 }' |
    LC_ALL=C sort -k1,1 -k2,2n -k3 | cut -d' ' -f3-
}
n_diff=0
# step NAME ARGS...: `ovs-ofctl ARGS` with SWITCH replaced by each target.
# A step with `known` before it differs in a way docs/REFERENCE.md
# documents: its diff is shown, not counted.
known=
step() {
  local name=$1; shift
  local why=$known
  known=
  local a=() b=() x
  for x in "$@"; do a+=("${x//SWITCH/$sdn}"); b+=("${x//SWITCH/$ovs}"); done
  local ra=0 rb=0
  ovs-ofctl "${a[@]}" >"$d/a.out" 2>&1 || ra=$?
  ovs-ofctl "${b[@]}" >"$d/b.out" 2>&1 || rb=$?
  echo "exit $ra" >>"$d/a.out"
  echo "exit $rb" >>"$d/b.out"
  if diff -u <(norm <"$d/b.out") <(norm <"$d/a.out") >"$d/diff"; then
    echo "same  $name"
    # SHOW=1 prints what both printed (the normalised sdnfwd side).
    [ -z "${SHOW:-}" ] || norm <"$d/a.out" | sed 's/^/      /'
  elif [ -n "$why" ]; then
    echo "known $name: $why"
    sed 's/^/      /' "$d/diff"
  else
    echo "DIFF  $name (--- ovs-vswitchd, +++ sdnfwd)"
    sed 's/^/      /' "$d/diff"
    n_diff=$((n_diff + 1))
  fi
}

base=$d/base.flows
cat >"$base" <<'EOF'
table=0, priority=1000, cookie=0x1, ip, nw_src=10.128.0.0/14, actions=goto_table:10
table=0, priority=100, cookie=0x2, arp, actions=goto_table:20
table=0, priority=0, actions=drop
table=10, priority=200, cookie=0x1, tcp, nw_dst=10.131.0.5, tp_dst=80, actions=load:0x5->NXM_NX_REG1[],output:3
table=10, priority=150, cookie=0x3, udp, tp_src=0x1000/0xf000, actions=note:de.ad.be.ef,goto_table:20
table=10, priority=100, cookie=0x1, ip, nw_dst=10.131.0.0/23, actions=move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31],set_field:172.16.1.1->tun_dst,output:1
table=20, priority=100, cookie=0x2, arp, arp_tpa=10.131.0.4, actions=output:4
table=20, priority=50, reg0=0x7, ip, actions=resubmit(,30)
table=30, priority=10, ip, ct_state=-trk, actions=ct(table=40)
table=40, priority=10, ip, ct_state=+trk+new, actions=ct(commit),output:NXM_NX_REG2[]
table=40, priority=0, actions=drop
EOF
other=$d/other.flows
cat >"$other" <<'EOF'
table=0, priority=1000, cookie=0x1, ip, nw_src=10.128.0.0/14, actions=goto_table:10
table=0, priority=50, cookie=0x9, ipv6, actions=drop
table=10, priority=200, cookie=0x1, tcp, nw_dst=10.131.0.5, tp_dst=80, actions=load:0x6->NXM_NX_REG1[],output:4
table=40, priority=0, actions=drop
EOF
bad=$d/bad.flows
cat >"$bad" <<'EOF'
table=50, priority=1, actions=drop
table=51, priority=1, actions=group:99
table=52, priority=1, actions=drop
EOF

# Every match field and action of sdnfwd's flow language (docs/REFERENCE.md
# "Flow text"), over each version's encoding (OpenFlow 1.0 with NXM and
# NX actions, 1.3's OXM, 1.5).
every=$d/every.flows
cat >"$every" <<'EOF'
table=0, priority=1, in_port=3, pkt_mark=0x5/0xff, reg0=1, reg1=2, reg2=3, reg3=0x4/0xf, reg4=5, reg5=6, reg6=7, reg7=8, tun_id=0x10, tun_src=1.2.3.4, tun_dst=5.6.7.8/24, dl_src=00:11:22:33:44:55, dl_dst=66:77:88:99:aa:bb/ff:ff:ff:00:00:00, tcp, nw_src=10.0.0.0/8, nw_dst=10.1.1.1, nw_tos=32, nw_ecn=1, nw_ttl=64, nw_frag=no, tp_src=80, tp_dst=0x100/0xff00, actions=drop
table=0, priority=2, udp, nw_frag=first, tp_dst=53, actions=output:3
table=0, priority=3, icmp, icmp_type=8, icmp_code=0, actions=output:IN_PORT
table=0, priority=4, arp, arp_op=1, arp_spa=10.0.0.1, arp_tpa=10.0.0.0/24, arp_sha=00:11:22:33:44:55, arp_tha=00:00:00:00:00:00, actions=output:LOCAL
table=0, priority=5, ip, ct_state=+trk+est-new, ct_zone=3, ct_mark=0x1/0x1, ct_label=0x5/0xff, ct_nw_src=10.0.0.1, ct_nw_dst=10.0.0.0/16, ct_nw_proto=6, ct_tp_src=1000, ct_tp_dst=80, actions=ct_clear,resubmit(,10)
table=0, priority=6, ip, dl_type=0x0800, actions=move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31],move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],load:0x5->NXM_NX_REG1[],load:0x1->NXM_NX_REG2[3],set_field:172.16.1.1->tun_dst,set_field:aa:bb:cc:dd:ee:ff->eth_dst,set_field:10.0.0.9->ip_dst,set_field:0x7->reg3,set_field:0x10/0xf0->pkt_mark,note:01.02.03,output:NXM_NX_REG2[0..15],goto_table:20
table=0, priority=7, ip, actions=ct(commit,zone=NXM_NX_REG0[0..15],nat(src=10.0.0.1-10.0.0.9:1000-2000),exec(set_field:0x1->ct_mark,set_field:0x1/0x1->ct_label),table=30),resubmit:5,resubmit(4,40)
table=0, priority=8, tcp, actions=ct(nat,table=30),ct(commit,nat(dst=172.30.0.10:8080)),ct(commit,force,zone=7,alg=ftp),resubmit(,0)
table=20, priority=1, actions=group:7
EOF
step "add-group for the flows" -O OpenFlow13 add-group SWITCH "group_id=7,type=all,bucket=output:3,bucket=actions=set_field:10.0.0.1->ip_dst,output:4"
for v in OpenFlow10 OpenFlow13 OpenFlow14 OpenFlow15; do
  step "every field and action, add-flows $v" -O "$v" add-flows SWITCH "$every"
  step "every field and action, dump-flows $v" -O "$v" dump-flows SWITCH
  step "every field and action, del-flows $v" -O "$v" del-flows SWITCH
done
step "every field and action, again" -O OpenFlow13 add-flows SWITCH "$every"
step "dump-flows out_group" -O OpenFlow13 dump-flows SWITCH out_group=7
step "dump-aggregate out_port" -O OpenFlow13 dump-aggregate SWITCH out_port=3
step "del-flows out_group" -O OpenFlow13 del-flows SWITCH out_group=7
step "dump after del out_group" -O OpenFlow13 dump-flows SWITCH
step "del-flows again" del-flows SWITCH
step "del-groups" -O OpenFlow13 del-groups SWITCH
step "add-flows" add-flows SWITCH "$base"
for v in "" OpenFlow10 OpenFlow13 OpenFlow14 OpenFlow15; do
  o=(); [ -n "$v" ] && o=(-O "$v")
  step "dump-flows ${v:-(no -O)}" "${o[@]}" dump-flows SWITCH
  step "dump-aggregate ${v:-(no -O)}" "${o[@]}" dump-aggregate SWITCH
done
step "dump-flows table=10" dump-flows SWITCH table=10
step "dump-flows ip filter" -O OpenFlow13 dump-flows SWITCH "ip,nw_dst=10.131.0.0/16"
step "dump-flows cookie mask" -O OpenFlow13 dump-flows SWITCH "cookie=0x1/-1"
step "dump-flows out_port" -O OpenFlow13 dump-flows SWITCH "out_port=3"
step "dump-flows --sort" --sort dump-flows SWITCH
step "dump-flows --rsort=priority" --rsort=priority dump-flows SWITCH
step "dump-flows --no-stats" --no-stats dump-flows SWITCH
step "dump-aggregate table=0" -O OpenFlow13 dump-aggregate SWITCH table=0
step "dump-tables 1.0" dump-tables SWITCH
step "dump-tables 1.3" -O OpenFlow13 dump-tables SWITCH
step "diff-flows same" diff-flows SWITCH "$base"
step "diff-flows other" diff-flows SWITCH "$other"
step "mod-flows" mod-flows SWITCH "table=10, cookie=0x1/-1, tcp, actions=output:5"
step "mod-flows --strict" --strict mod-flows SWITCH "table=0, priority=0, actions=goto_table:40"
step "dump after mods" -O OpenFlow13 dump-flows SWITCH
step "del-flows out_port" del-flows SWITCH "out_port=4"
step "del-flows --strict" -O OpenFlow13 --strict del-flows SWITCH "table=0, priority=100, arp"
step "del-flows cookie" -O OpenFlow13 del-flows SWITCH "cookie=0x3/-1"
step "dump after dels" -O OpenFlow13 dump-flows SWITCH
step "replace-flows" replace-flows SWITCH "$other"
step "dump after replace" dump-flows SWITCH
step "--bundle replace-flows" -O OpenFlow14 --bundle replace-flows SWITCH "$base"
step "dump after bundle" -O OpenFlow14 dump-flows SWITCH
step "--bundle add-flows (ONF, 1.3)" -O OpenFlow13 --bundle add-flows SWITCH "$other"
step "--bundle add-flows, a bad line" -O OpenFlow14 --bundle add-flows SWITCH "$bad"
step "dump after the refused bundle" dump-flows SWITCH
step "add-flows, a bad line (no bundle)" -O OpenFlow13 add-flows SWITCH "$bad"
step "dump after the refused line" -O OpenFlow13 dump-flows SWITCH
step "add-flow table=254" add-flow SWITCH "table=254, actions=drop"
step "check_overlap" add-flow SWITCH "table=0, priority=1000, ip, nw_src=10.128.0.0/16, check_overlap, actions=drop"
step "add-flow, an ofp10_match" add-flow SWITCH "table=70, priority=7, tcp, nw_src=10.128.0.0/14, nw_dst=10.131.0.9, tp_src=7, tp_dst=80, actions=drop"
step "add-flow, an arp ofp10_match" add-flow SWITCH "table=70, priority=8, arp, arp_spa=10.131.0.1, arp_tpa=10.128.0.0/14, arp_op=1, actions=drop"
step "dump ofp10_match 1.0" dump-flows SWITCH table=70
step "dump ofp10_match 1.3" -O OpenFlow13 dump-flows SWITCH table=70
step "del-flows ofp10_match" del-flows SWITCH "table=70, tcp, nw_src=10.128.0.0/15"
step "dump after del ofp10_match" dump-flows SWITCH table=70
step "flags" add-flow SWITCH "table=60, priority=5, send_flow_rem, reset_counts, idle_timeout=100, actions=drop"
step "dump flags" dump-flows SWITCH table=60
step "timeouts added" add-flow SWITCH "table=61, priority=5, hard_timeout=1, actions=drop"
step "idle timeout added" -O OpenFlow13 add-flow SWITCH "table=61, priority=6, idle_timeout=1, actions=drop"
sleep 2.5
step "timeouts expired" dump-flows SWITCH table=61
step "dump-groups" -O OpenFlow13 dump-groups SWITCH
step "dump-meters" -O OpenFlow13 dump-meters SWITCH
known="sdnfwd has no queues; OVS reports its ports' default queue 0 (netdev-dummy)"
step "queue-stats" -O OpenFlow13 queue-stats SWITCH
# An ICMP echo from 10.0.0.1 to 10.0.0.2 (34 bytes).
pkt=ffffffffffff000000000001080045000014000100004001f7e40a0000010a000002
step "add-flow for packet-out" add-flow SWITCH "table=0, priority=3000, in_port=3, icmp, actions=drop"
step "packet-out through the pipeline" packet-out SWITCH "in_port=3 packet=$pkt actions=table"
step "packet-out 1.3" -O OpenFlow13 packet-out SWITCH "in_port=3 packet=$pkt actions=resubmit(,0)"
sleep 1
step "the packets-out counted" dump-flows SWITCH "table=0, in_port=3"
# Packets keep a flow with an idle timeout alive; without them it goes.
step "an idle flow" add-flow SWITCH "table=0, priority=3001, idle_timeout=2, in_port=4, icmp, actions=drop"
for i in 1 2 3 4 5 6; do
  step "packet-out to the idle flow $i" packet-out SWITCH "in_port=4 packet=$pkt actions=table"
  sleep 0.5
done
step "the idle flow kept alive" dump-flows SWITCH "table=0, in_port=4"
sleep 3.5
step "the idle flow expired" dump-flows SWITCH "table=0, in_port=4"
step "del-flows" del-flows SWITCH
step "dump after del-flows" -O OpenFlow15 dump-flows SWITCH
echo "$n_diff step(s) differ"
[ "$n_diff" -eq 0 ]
