//! The drop-in for ovs-vswitchd, end to end, in network namespaces this
//! test creates and removes: node-d and node-b each run Debian's
//! ovsdb-server on a database of their own and `sdnfwd vswitchd` in place
//! of ovs-vswitchd (node-b `--detach`ed with `--log-file`, as ovs-ctl
//! starts it), node-c is the Linux kernel's VXLAN device. Each node is
//! then set up by what the OpenShift SDN daemon runs, through the stock
//! `ovs-vsctl`, `ovs-ofctl` and `ovs-appctl` (sdnfwd::vswitchd_lab names
//! the openshift/sdn code replayed): the bridge, vxlan0 and tun0 with
//! their numbers and options, tun0's MAC from the database, its address
//! and routes, one port per pod, the rendered flows in one bundle, the
//! version note in table 253.
//!
//! It shows: pings pod↔pod on one node, across the two nodes and to and
//! from the kernel node, host→pod through tun0, tenant isolation kept;
//! `ovs-appctl ofproto/trace` (forwarded and dropped),
//! `dpif-netdev/pmd-stats-show` (on `pmd-cpu-mask`'s core), `dpif/show`,
//! `dpif/dump-flows br0` and `vlog/set` answer; `protocols=OpenFlow13` refuses a plain `ovs-ofctl`;
//! `type=geneve` gets ofport -1 and Interface.error while the node keeps
//! forwarding; `del-port` stops a pod's traffic, removes its row and its
//! XDP program, and a new `add-port` without `ofport_request` gets the
//! freed number; ovsdb-server killed and restarted is survived (ovs-vsctl
//! returns again, a del-port/add-port after it takes effect);
//! `ovs-appctl exit` and SIGTERM leave no tun0 and no XDP program. The
//! same checks as `sdnfwd demo --vswitchd`. Needs root and Debian's
//! openvswitch-switch (CI has both): without them it fails, naming what
//! is missing.

use std::path::PathBuf;

use sdnfwd::netns::run;
use sdnfwd::vswitchd_lab::{dropin_checks, ovs_installed, DropIn};

#[test]
fn openshift_sdn_drives_sdnfwd_vswitchd_through_the_stock_tools() {
    let out = run("id", &["-u"]).expect("id -u");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "netns tests need root (CI runs as root)");
    ovs_installed().expect("Open vSwitch's database and tools");
    sdnfwd::netns::Lab::sweep_stale("sdv");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sdnfwd"));
    let mut d = DropIn::build("sdv", &bin).expect("the cluster in namespaces, ovsdb-server and sdnfwd vswitchd");
    let checks = dropin_checks(&mut d, &|| false, &mut |c| {
        eprintln!(
            "{} {}{}",
            if c.ok { "OK  " } else { "FAIL" },
            c.what,
            if c.detail.is_empty() { String::new() } else { format!(" ({})", c.detail) }
        )
    });
    let checks = checks.unwrap_or_else(|e| panic!("{e}\n{}", d.logs()));
    // What the kernel gave the ports (veth: native XDP, copy mode).
    sdnfwd::netns::branch("vswitchd AF_XDP ports", &d.xdp_modes().join("; "));
    let failed: Vec<String> = checks.iter().filter(|c| !c.ok).map(|c| format!("{}: {}", c.what, c.detail)).collect();
    assert!(failed.is_empty(), "failed:\n{}\n{}", failed.join("\n"), d.logs());
    assert_eq!(checks.len(), 39, "every check ran");
}
