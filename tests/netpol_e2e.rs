//! OpenShift 4.13's NetworkPolicy rules on real kernels: the embedded
//! NetworkPolicy cluster (config::yaml::NETPOL_CLUSTER) in network
//! namespaces, node-d and node-b running `sdnfwd run --sdn-version 4.13`
//! with the networkpolicy plugin, pods in three namespaces. The checks are
//! the library's (sdnfwd::netpol::netpol_checks, which `sdnfwd demo`
//! runs too): TCP a policy admits, on one node and across nodes, both
//! ways; a disallowed port and a disallowed namespace dropped by table 80
//! and counted there; an egress policy dropping in table 27, counted;
//! pod → service through tun0 with kube-proxy's iptables DNAT on one node
//! and across nodes, the client seeing the service's address; `ctl policy
//! add` in effect for the next connection after it returns, `ctl policy
//! del` lifting it as fast; a malformed policy refused at file:line:column
//! with the tables unchanged. Needs root, AF_XDP and iptables: without
//! them it fails, naming what is missing.

use std::path::PathBuf;

use sdnfwd::netns::run;
use sdnfwd::netpol::{netpol_checks, netpol_topology};

#[test]
fn networkpolicy_4_13_on_real_kernels() {
    let out = run("id", &["-u"]).expect("id -u");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "netns tests need root (CI runs as root)");
    run("iptables", &["--version"]).expect("iptables (the `iptables` package: kube-proxy's rules)");
    sdnfwd::netns::Lab::sweep_stale("sdp");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sdnfwd"));
    let mut t = netpol_topology("sdp", &bin).expect("the NetworkPolicy cluster in namespaces");
    let (checks, exits) = netpol_checks(&mut t, &|| false, &mut |c| {
        eprintln!(
            "{} {}{}",
            if c.ok { "OK  " } else { "FAIL" },
            c.what,
            if c.detail.is_empty() { String::new() } else { format!(" ({})", c.detail) }
        )
    })
    .expect("the checks ran");
    let failed: Vec<String> = checks.iter().filter(|c| !c.ok).map(|c| format!("{}: {}", c.what, c.detail)).collect();
    let logs: String = exits.iter().map(|(n, e)| format!("== {n}\n{}\n{}\n", e.stderr, e.stdout)).collect();
    assert!(failed.is_empty(), "failed:\n{}\n{logs}", failed.join("\n"));
    assert!(checks.len() >= 20, "{} checks", checks.len());
    // The nodes applied the ctl policy as one bundle of project-b only.
    let d = &exits[0].1.stderr;
    assert!(d.contains("policies only, one bundle regenerating namespace(s) project-b"), "{d}");
}
