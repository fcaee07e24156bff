//! End to end, in network namespaces this test creates and removes: two
//! nodes each running `sdnfwd run` (AF_XDP on the pods' veths, tun0 and the
//! uplink), a third node that is the Linux kernel's VXLAN device, pods with
//! real kernel stacks in two tenants of the multitenant plugin. Ping and
//! TCP must pass where openshift-sdn lets them and fail where it isolates;
//! the node's own address stays reachable; VXLAN from an unknown node is
//! dropped and counted; SIGINT leaves nothing behind. The same checks as
//! `sdnfwd demo`. Needs root (CI has it): without it the test fails.

use std::path::PathBuf;

use sdnfwd::netns::run;
use sdnfwd::topology::{default_cluster_checks, Topology};

fn require_root() {
    let out = run("id", &["-u"]).expect("id -u");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "netns tests need root (CI runs as root)");
}

#[test]
fn two_sdnfwd_nodes_and_a_kernel_vxlan_node() {
    require_root();
    sdnfwd::netns::Lab::sweep_stale("sde");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sdnfwd"));
    let mut t = Topology::build("sde", config::yaml::DEFAULT_CLUSTER, &["node-d", "node-b"], Some("node-c"), &bin)
        .expect("topology");
    t.start("node-d", &["--cores", "0", "--pmd-maxsleep-us", "200"]).expect("node-d");
    t.start("node-b", &["--cores", "1", "--pmd-maxsleep-us", "200"]).expect("node-b");
    let log_d = t.log("node-d");
    let (checks, exits) = default_cluster_checks(&mut t, &|| false, &mut |c| {
        eprintln!("{} {} {}", if c.ok { "OK  " } else { "FAIL" }, c.what, c.detail)
    })
    .expect("checks");
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.what.as_str()).collect();
    assert_eq!(checks.len(), 22);
    for (n, e) in &exits {
        eprintln!("--- {n} ---\n{}\n{}", e.stderr, e.stdout);
    }
    assert!(failed.is_empty(), "failed: {failed:?}\n--- node-d log ---\n{log_d}");
}
