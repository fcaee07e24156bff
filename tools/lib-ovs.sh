# Sourced by tools/ scripts that put Open vSwitch and sdnfwd side by side.
# start_ovs DIR starts ovsdb-server and ovs-vswitchd (userspace datapath,
# dummy ports, no kernel module, nothing of the machine's) with every file
# under DIR, and defines vsctl for that database. The caller kills
# DIR/*.pid. start_sdnfwd BIN DIR NAME OPENFLOW [FLAG...] starts `sdnfwd
# run` on a node NAME with no uplink, no tun0 and no pods (the tables
# only), OpenFlow on OPENFLOW, control socket DIR/sdnfwd.ctl, log
# DIR/sdnfwd.log, and waits until it is ready (else prints its log and
# fails); its pid is in sdn_pid, which the caller kills.
start_ovs() {
  local d=$1
  export OVS_RUNDIR=$d OVS_LOGDIR=$d OVS_DBDIR=$d OVS_SYSCONFDIR=$d
  ovsdb-tool create "$d/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  ovsdb-server --remote=punix:"$d/db.sock" --pidfile="$d/ovsdb-server.pid" --unixctl="$d/ovsdb-server.ctl" \
    --detach --no-chdir --log-file="$d/ovsdb-server.log" "$d/conf.db"
  vsctl() { ovs-vsctl --db=unix:"$d/db.sock" --timeout=30 "$@"; }
  vsctl --no-wait init
  ovs-vswitchd unix:"$d/db.sock" --pidfile="$d/ovs-vswitchd.pid" --unixctl="$d/vswitchd.ctl" --detach --no-chdir \
    --log-file="$d/ovs-vswitchd.log" --disable-system --disable-system-route --enable-dummy=override
}

start_sdnfwd() {
  local bin=$1 d=$2 name=$3 openflow=$4 core
  shift 4
  cat >"$d/node.yaml" <<EOF
clusterNetwork:
  clusterNetworks: [{CIDR: 10.128.0.0/14, hostSubnetLength: 9}]
  serviceNetwork: 172.30.0.0/16
  pluginName: redhat/openshift-ovs-multitenant
hostSubnets:
- {metadata: {name: $name, uid: u-$name}, host: $name, hostIP: 172.16.1.25, subnet: 10.131.0.0/23}
netNamespaces: [{netname: default, netid: 0}]
node: {name: $name}
EOF
  core=$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status | cut -d, -f1 | cut -d- -f1)
  "$bin" run --config "$d/node.yaml" --no-tun0 --socket "$d/sdnfwd.ctl" --cores "$core" --openflow "$openflow" "$@" \
    >"$d/sdnfwd.out" 2>"$d/sdnfwd.log" &
  sdn_pid=$!
  for _ in $(seq 200); do grep -q ' ready: ' "$d/sdnfwd.log" 2>/dev/null && break; sleep 0.1; done
  grep -q ' ready: ' "$d/sdnfwd.log" || { cat "$d/sdnfwd.log" >&2; return 1; }
}
