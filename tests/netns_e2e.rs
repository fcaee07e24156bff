//! End to end, in network namespaces this test creates and removes: two
//! nodes each running `sdnfwd run` (AF_XDP on the pods' veths, tun0 and the
//! uplink), a third node that is the Linux kernel's VXLAN device, pods with
//! real kernel stacks in two tenants of the multitenant plugin. Ping and
//! TCP must pass where openshift-sdn lets them and fail where it isolates.
//! Needs root (CI has it): without it the test fails, it does not skip.

use std::path::PathBuf;

use sdnfwd::netns::run;
use sdnfwd::topology::Topology;

fn require_root() {
    let out = run("id", &["-u"]).expect("id -u");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "netns tests need root (CI runs as root)");
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sdnfwd"))
}

fn check(failures: &mut Vec<String>, what: &str, ok: bool) {
    eprintln!("{} {what}", if ok { "OK  " } else { "FAIL" });
    if !ok {
        failures.push(what.to_string());
    }
}

#[test]
fn two_sdnfwd_nodes_and_a_kernel_vxlan_node() {
    require_root();
    let mut t = Topology::build("sde", config::yaml::DEFAULT_CLUSTER, &["node-d", "node-b"], Some("node-c"), &bin())
        .expect("topology");
    t.start("node-d", &["--cores", "0", "--pmd-maxsleep-us", "200"]).expect("node-d");
    t.start("node-b", &["--cores", "1", "--pmd-maxsleep-us", "200"]).expect("node-b");
    let rogue = t.add_rogue_vtep("172.16.1.200", "10.131.1.200/14", "node-d").expect("rogue VTEP");
    let (web1, db1, api1, router1) = (
        t.pod("project-a/web-1").unwrap().to_string(),
        t.pod("project-a/db-1").unwrap().to_string(),
        t.pod("project-b/api-1").unwrap().to_string(),
        t.pod("default/router-1").unwrap().to_string(),
    );
    let web2 = t.pod("project-a/web-2").unwrap().to_string();
    let (nd, nb, nc) = (
        t.node("node-d").unwrap().to_string(),
        t.node("node-b").unwrap().to_string(),
        t.node("node-c").unwrap().to_string(),
    );
    let mut f = Vec::new();
    check(&mut f, "ping pod→pod, one node, same tenant", t.ping(&web1, "10.131.0.4", 3));
    check(&mut f, "TCP pod→pod, one node", t.tcp(&web1, &db1, "10.131.0.4", 5432).is_ok());
    check(&mut f, "ping pod→pod across nodes (VXLAN)", t.ping(&web1, "10.129.0.7", 3));
    check(&mut f, "TCP pod→pod across nodes (VXLAN)", t.tcp(&web1, &web2, "10.129.0.7", 8080).is_ok());
    check(&mut f, "TCP pod→pod across nodes, other way", t.tcp(&web2, &web1, "10.131.0.3", 8081).is_ok());
    check(&mut f, "ping pod→kernel VXLAN node", t.ping(&router1, "10.130.0.1", 3));
    check(&mut f, "ping kernel VXLAN node→pod", t.ping(&nc, "10.131.0.2", 3));
    check(&mut f, "TCP kernel VXLAN node→pod", t.tcp(&nc, &router1, "10.131.0.2", 9000).is_ok());
    check(&mut f, "ping host→pod through tun0", t.ping(&nd, "10.131.0.3", 3));
    check(&mut f, "TCP host→pod through tun0", t.tcp(&nd, &web1, "10.131.0.3", 9001).is_ok());
    check(&mut f, "tenant isolation: project-a → project-b blocked", !t.ping(&web1, "10.131.0.5", 2));
    check(&mut f, "tenant isolation across nodes blocked", !t.ping(&web1, "10.129.0.8", 2));
    check(&mut f, "VNID 0 (default) → project-b allowed", t.ping(&router1, "10.131.0.5", 2));
    check(&mut f, "TCP VNID 0 → project-b", t.tcp(&router1, &api1, "10.131.0.5", 9002).is_ok());
    check(&mut f, "node IP still answers ping on the uplink", t.ping(&nb, "172.16.1.25", 3));
    check(&mut f, "node IP still answers TCP on the uplink", t.tcp(&nb, &nd, "172.16.1.25", 9003).is_ok());
    check(&mut f, "VXLAN from an unknown node dropped", !t.ping(&rogue, "10.131.0.2", 2));
    let log_d = t.log("node-d");
    let d = t.stop("node-d").expect("stop node-d");
    let b = t.stop("node-b").expect("stop node-b");
    check(&mut f, "node-d exits 0 on SIGINT", d.code == Some(0));
    check(&mut f, "node-b exits 0 on SIGINT", b.code == Some(0));
    let t10_drop =
        d.stdout.lines().any(|l| l.contains("table=10,") && l.contains("priority=0 ") && l.contains("n_packets="));
    check(&mut f, "table 10 counted the unknown VTEP's packets", t10_drop);
    check(
        &mut f,
        "node-d removed tun0",
        !t.lab.ip(Some(&nd), &["link"]).map(|o| String::from_utf8_lossy(&o.stdout).contains("tun0")).unwrap_or(true),
    );
    let eth0 = t
        .lab
        .ip(Some(&nd), &["link", "show", "eth0"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    check(&mut f, "node-d detached its XDP program from the uplink", !eth0.contains("xdp"));
    let _ = db1;
    assert!(
        f.is_empty(),
        "failed: {f:?}\n--- node-d log ---\n{log_d}\n{}\n--- node-d stdout ---\n{}\n--- node-b ---\n{}\n{}",
        d.stderr,
        d.stdout,
        b.stderr,
        b.stdout
    );
}
