# Sourced by tools/ scripts that need a throwaway Open vSwitch: start_ovs
# DIR starts ovsdb-server and ovs-vswitchd (userspace datapath, dummy
# ports, no kernel module, nothing of the machine's) with every file under
# DIR, and defines vsctl for that database. The caller kills DIR/*.pid.
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
