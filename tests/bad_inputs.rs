//! What an operator gets wrong is refused, clearly, and changes nothing.
//! A real `sdnfwd run` (node-d of the default cluster in network
//! namespaces: AF_XDP on its pods' veths, tun0 and the uplink) gets a table
//! of bad inputs: each bad config file at start-up (in a namespace of its
//! own: exit status 2, nothing set up), by SIGHUP and by `sdnfwd ctl
//! reload`, each bad `ctl pod add` and `ctl hostsubnet add`, and the
//! OpenFlow requests the node refuses (sent by the real `ovs-ofctl`: bundles
//! with a bad line, table 254, an overlap, missing groups, PORT_MOD,
//! meters, a PACKET_OUT it cannot run; each with OVS's error). Each must
//! be refused with a line that names its source (`file:line:column` at the
//! value that is wrong, or the ctl command) and the objects in conflict,
//! and the node's flows (dump-flows without durations), ports (`show`: each
//! port, its pod and whether it is attached, with the counters), pods and
//! HostSubnets (`ctl pod list`, `hostsubnet list`) must be byte-identical
//! before and after. IPv6 is off in the namespaces, so that nothing moves
//! the counters meanwhile.
//!
//! Then the runtime state: pods and HostSubnets added or deleted with ctl
//! survive SIGHUP and `ctl reload`; a file that conflicts with them is
//! refused naming both; `ctl reload` prints the diff; lists, `show`, help
//! without a socket, a closed stdout; /metrics through a Prometheus text
//! parser (openmetrics-parser's, which keeps a family's lines together as
//! the format says). Needs root (CI has it).

mod common;

use std::path::{Path, PathBuf};

use sdnfwd::netns::run;
use sdnfwd::topology::Topology;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn require_root() {
    let out = run("id", &["-u"]).expect("id -u");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "netns tests need root (CI runs as root)");
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sdnfwd"))
}

const CLUSTER: &str = config::yaml::DEFAULT_CLUSTER;

/// node-d running in its namespace, IPv6 off everywhere.
fn start(tag: &str, extra: &[&str]) -> Topology {
    sdnfwd::netns::Lab::sweep_stale(tag);
    let mut t = Topology::build(tag, CLUSTER, &["node-d"], None, &bin()).expect("topology");
    let namespaces: Vec<String> = t.node_ns.values().chain(t.pod_ns.values()).cloned().collect();
    for ns in namespaces {
        t.lab
            .exec(
                &ns,
                "sysctl",
                &["-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"],
            )
            .unwrap();
    }
    let c0 = sdnfwd::netns::two_cores("bad inputs")[0].to_string();
    let mut args = vec!["--cores", &c0, "--pmd-maxsleep-us", "50"];
    args.extend_from_slice(extra);
    t.start("node-d", &args).expect("node-d");
    t
}

/// Everything the node shows of its state, counters included, durations
/// left out.
fn snapshot(t: &Topology) -> String {
    let ctl = |args: &[&str]| t.ctl("node-d", args).unwrap_or_else(|e| panic!("ctl {args:?}: {e}"));
    let mut s = common::flows_without_durations(&ctl(&["dump-flows"])).join("\n");
    for args in [&["show"][..], &["pod", "list"], &["hostsubnet", "list"], &["dump-tables"]] {
        s += &format!("\n--- {args:?}\n{}", ctl(args));
    }
    s
}

/// Asserts two snapshots are the same, showing the lines that differ.
fn assert_same(after: &str, before: &str, what: &str) {
    if after != before {
        let a: Vec<&str> = after.lines().collect();
        let b: Vec<&str> = before.lines().collect();
        let gone: Vec<&&str> = b.iter().filter(|l| !a.contains(l)).collect();
        let new: Vec<&&str> = a.iter().filter(|l| !b.contains(l)).collect();
        panic!("{what} changed the node:\nbefore: {gone:#?}\nafter: {new:#?}");
    }
}

/// Line and column of the value after `at`'s `: ` (its first occurrence)
/// in `text`.
fn value_pos(text: &str, at: &str) -> (usize, usize) {
    let i = text.find(at).unwrap_or_else(|| panic!("`{at}` not in the config")) + at.find(": ").map_or(0, |k| k + 2);
    let line = text[..i].matches('\n').count() + 1;
    let col = i - text[..i].rfind('\n').map_or(0, |n| n + 1) + 1;
    (line, col)
}

/// A bad config: `from` replaced by `to` (first occurrence; `to` may add
/// lines); the error points at `at` (a text of the result, at the value
/// after its `: `; None: not checked), naming every word of `words`.
struct Bad {
    from: &'static str,
    to: &'static str,
    at: Option<&'static str>,
    words: &'static [&'static str],
    /// Valid at start-up: only a reload refuses it (it would need a restart).
    reload_only: bool,
}

const fn bad(from: &'static str, to: &'static str, at: &'static str, words: &'static [&'static str]) -> Bad {
    Bad { from, to, at: Some(at), words, reload_only: false }
}

/// The bad config files.
fn bad_files() -> Vec<Bad> {
    vec![
        bad("ip: 10.131.0.4", "ip: 10.131.0.3", "ip: 10.131.0.3, veth: vethd1", &["IP 10.131.0.3", "project-a/web-1", "project-a/db-1"]),
        bad("ip: 10.129.0.8", "ip: 10.129.0.7", "ip: 10.129.0.7, veth: vetha2", &["IP 10.129.0.7", "project-a/web-2", "project-b/api-2", "node-b"]),
        bad("veth: vethd1", "veth: vethw1", "veth: vethw1, ofport: 5", &["veth vethw1", "project-a/web-1", "project-a/db-1"]),
        bad("vethd1, ofport: 5", "vethd1, ofport: 4", "ofport: 4}\n  - {namespace: project-b", &["ofport 4", "project-a/web-1", "project-a/db-1"]),
        bad("vethd1, ofport: 5", "vethd1, ofport: 0", "ofport: 0", &["ofport 0", "project-a/db-1"]),
        bad("vethd1, ofport: 5", "vethd1, ofport: 1", "ofport: 1}", &["ofport 1", "vxlan0"]),
        bad("vethd1, ofport: 5", "vethd1, ofport: 2", "ofport: 2}", &["ofport 2", "tun0"]),
        bad("vethd1, ofport: 5", "vethd1, ofport: 65280", "ofport: 65280", &["ofport 65280", "reserved"]),
        bad("vethd1, ofport: 5", "vethd1, ofport: 70000", "ofport: 70000", &["ofport 70000", "reserved"]),
        bad("ip: 10.131.0.4", "ip: 10.129.0.9", "ip: 10.129.0.9", &["10.129.0.9", "outside node node-d's subnet 10.131.0.0/23", "node node-b's"]),
        bad("ip: 10.131.0.4", "ip: 10.140.0.9", "ip: 10.140.0.9", &["10.140.0.9", "outside"]),
        bad("ip: 10.131.0.4", "ip: 10.131.0.0", "ip: 10.131.0.0", &["subnet address"]),
        bad("ip: 10.131.0.4", "ip: 10.131.0.1", "ip: 10.131.0.1", &["gateway"]),
        bad("ip: 10.131.0.4", "ip: 10.131.1.255", "ip: 10.131.1.255", &["broadcast"]),
        bad("namespace: project-a, name: db-1", "namespace: project-z, name: db-1", "namespace: project-z", &["project-z", "no NetNamespace"]),
        bad("name: db-1", "name: web-1", "name: web-1, ip: 10.131.0.4", &["project-a/web-1 is listed twice"]),
        bad("veth: vethd1", "veth: vethd1-far-too-long", "veth: vethd1-far", &["not an interface name"]),
        bad("veth: vethd1", "veth: eth0", "veth: eth0", &["eth0", "own device"]),
        bad("veth: vethd1", "veth: tun0", "veth: tun0", &["tun0", "own device"]),
        bad("subnet: 10.130.0.0/23", "subnet: 10.130.1.0/23", "subnet: 10.130.1.0/23", &["node-c", "host bits", "10.130.0.0/23"]),
        bad("subnet: 10.130.0.0/23", "subnet: 10.200.0.0/23", "subnet: 10.200.0.0/23", &["node-c", "outside every cluster network"]),
        bad("subnet: 10.130.0.0/23", "subnet: 10.130.0.0/24", "subnet: 10.130.0.0/24", &["node-c", "/24", "hostSubnetLength 9"]),
        bad("subnet: 10.129.0.0/23", "subnet: 10.128.0.0/23", "subnet: 10.128.0.0/23\n  egress", &["node-b", "same as node node-a's"]),
        bad("subnet: 10.130.0.0/23", "subnet: 10.130.0.0/15", "subnet: 10.131.0.0/23", &["overlaps", "node-c", "node-d"]),
        bad("hostIP: 172.16.1.22", "hostIP: 172.16.1.25", "hostIP: 172.16.1.25\n  subnet: 10.131", &["172.16.1.25", "node-c", "node-d", "VTEP"]),
        bad("hostIP: 172.16.1.22", "hostIP: 172.16.1.15", "hostIP: 172.16.1.15\n  subnet: 10.130", &["172.16.1.15", "node-a", "node-c"]),
        bad("hostIP: 172.16.1.22", "hostIP: 127.0.0.1", "hostIP: 127.0.0.1", &["cannot be a VTEP"]),
        bad("hostIP: 172.16.1.22", "hostIP: 10.128.5.5", "hostIP: 10.128.5.5", &["inside cluster network"]),
        bad("hostIP: 172.16.1.22", "hostIP: 172.30.0.9", "hostIP: 172.30.0.9", &["inside serviceNetwork"]),
        bad("host: node-c", "host: node-b", "host: node-b\n  hostIP: 172.16.1.22", &["node node-b has two HostSubnets"]),
        bad("netname: project-b", "netname: project-a", "netname: project-a\n  netid: 58132", &["NetNamespace project-a is listed twice"]),
        bad("netid: 58132", "netid: 16777216", "netid: 16777216", &["24 bits"]),
        bad("serviceNetwork: 172.30.0.0/16", "serviceNetwork: 10.128.0.0/16", "serviceNetwork: 10.128.0.0/16", &["overlaps cluster network 10.128.0.0/14"]),
        bad("clusterIP: 172.30.45.67", "clusterIP: 10.0.0.9", "clusterIP: 10.0.0.9", &["project-b/dns", "outside serviceNetwork"]),
        bad("clusterIP: 172.30.45.67", "clusterIP: 172.30.12.34", "clusterIP: 172.30.12.34, ports: [{protocol: UDP", &["project-b/dns", "project-a/web"]),
        bad("clusterIP: 172.30.45.67", "clusterIP: 172.30.45.678", "clusterIP: 172.30.45.678", &["not an IPv4 address"]),
        bad("CIDR: 10.128.0.0/14", "CIDR: 10.129.0.0/14", "CIDR: 10.129.0.0/14", &["host bits", "10.128.0.0/14"]),
        bad("hostSubnetLength: 9", "hostSubnetLength: 0", "hostSubnetLength: 0", &["hostSubnetLength 0"]),
        bad("openshift-ovs-multitenant", "openshift-ovs-bogus", "pluginName: redhat", &["unknown pluginName"]),
        bad("tun0MAC: 6e:2f:91:0c:55:a7", "tun0MAC: 6e:2f:91:0c:55", "tun0MAC: 6e", &["tun0MAC", "not an Ethernet address"]),
        bad(
            "egressNetworkPolicies:\n",
            "egressNetworkPolicies:\n- metadata: {name: first, namespace: project-b}\n  spec: {egress: [{type: Allow, to: {cidrSelector: 172.16.0.0/16}}]}\n",
            "metadata: {name: default, namespace: project-b}",
            &["project-b already has one (first)"],
        ),
        Bad {
            from: "cidrSelector: 172.16.0.0/16",
            to: "cidrSelector: 172.16.0.1/16",
            at: None,
            words: &["EgressNetworkPolicy project-b/default", "host bits"],
            reload_only: false,
        },
        bad("hostIP: 172.16.1.16", "hostIP: 172.16.1.316", "hostIP: 172.16.1.316", &["IPv4 address", "172.16.1.316"]),
        bad("  tun0MAC: 6e", "  tunOMAC: 6e", "tunOMAC", &["unknown field `tunOMAC`"]),
        bad("- name: node-d\n", "- name: node-q\n", "name: node-q", &["node node-q has no HostSubnet"]),
        Bad {
            from: "hostIP: 172.16.1.25",
            to: "hostIP: 172.16.1.26",
            at: None,
            words: &["node node-d's own HostSubnet changed", "restart"],
            reload_only: true,
        },
        Bad {
            from: "  uplink: eth0\n  cores: [1]\n  tun0MAC",
            to: "  uplink: eth1\n  cores: [1]\n  tun0MAC",
            at: None,
            words: &["uplink changed", "restart"],
            reload_only: true,
        },
    ]
}

/// The bad ctl commands: (arguments, words of the error).
fn bad_ctl() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("pod add project-a/x 10.131.0.3 vethx 9", &["IP 10.131.0.3", "project-a/web-1", "cut off"]),
        ("pod add project-a/x 10.129.0.9 vethx 9", &["outside node node-d's subnet", "node node-b's 10.129.0.0/23"]),
        ("pod add project-a/x 10.131.0.1 vethx 9", &["gateway"]),
        ("pod add project-a/x 10.131.0.0 vethx 9", &["subnet address"]),
        ("pod add project-a/x 10.131.1.255 vethx 9", &["broadcast"]),
        ("pod add project-a/x 10.131.0.9 vethw1 9", &["veth vethw1", "project-a/web-1"]),
        ("pod add project-a/x 10.131.0.9 vethx 4", &["ofport 4", "project-a/web-1"]),
        ("pod add project-a/x 10.131.0.9 vethx 70000", &["ofport 70000", "reserved"]),
        ("pod add project-a/x 10.131.0.9 vethx 65280", &["ofport 65280", "reserved"]),
        ("pod add project-a/x 10.131.0.9 vethx 0", &["ofport 0"]),
        ("pod add project-a/x 10.131.0.9 vethx 2", &["ofport 2", "tun0"]),
        ("pod add nope/x 10.131.0.9 vethx 9", &["nope", "no NetNamespace"]),
        ("pod add project-a/web-1 10.131.0.9 vethx 9", &["pod project-a/web-1 exists"]),
        ("pod add project-a/x 10.131.0.999 vethx 9", &["not an IPv4 address"]),
        ("pod add project-a/x 10.131.0.9 eth0 9", &["eth0", "own device"]),
        ("pod add project-a/x 10.131.0.9 vethx", &["usage"]),
        ("pod del project-a/nope", &["no pod project-a/nope"]),
        ("hostsubnet add node-d 172.16.1.50 10.128.2.0/23", &["HostSubnet node-d exists"]),
        ("hostsubnet add node-e 172.16.1.40 10.131.0.0/23", &["same as node node-d's"]),
        ("hostsubnet add node-e 172.16.1.40 10.130.0.0/22", &["overlaps node node-c's 10.130.0.0/23"]),
        ("hostsubnet add node-e 172.16.1.40 10.128.3.0/23", &["host bits", "10.128.2.0/23"]),
        ("hostsubnet add node-e 172.16.1.40 10.132.0.0/23", &["outside every cluster network"]),
        ("hostsubnet add node-e 172.16.1.40 10.128.2.0/24", &["/24", "hostSubnetLength 9"]),
        ("hostsubnet add node-e 172.16.1.25 10.128.2.0/23", &["172.16.1.25", "node node-d's VTEP"]),
        ("hostsubnet add node-e 172.16.1.16 10.128.2.0/23", &["172.16.1.16", "node node-b's VTEP"]),
        ("hostsubnet add node-e 127.0.0.1 10.128.2.0/23", &["cannot be a VTEP"]),
        ("hostsubnet add node-e 172.16.1.40 10.128.2.0", &["not an IPv4 CIDR"]),
        ("hostsubnet del node-d", &["own HostSubnet"]),
        ("hostsubnet del node-z", &["no HostSubnet node-z"]),
    ]
}

fn mutate(b: &Bad) -> String {
    assert!(CLUSTER.contains(b.from), "`{}` not in the default cluster", b.from);
    CLUSTER.replacen(b.from, b.to, 1)
}

/// Asserts that `out` has a line naming the bad value's place and every
/// word.
fn assert_names(case: &str, out: &str, path: &str, text: &str, b: &Bad) {
    let want = b.at.map(|at| {
        let (l, c) = value_pos(text, at);
        format!("{path}:{l}:{c}: ")
    });
    let hit = out.lines().find(|l| {
        want.as_ref().is_none_or(|w| l.contains(w.as_str()))
            && l.contains(path)
            && b.words.iter().all(|w| l.contains(w))
    });
    assert!(hit.is_some(), "{case}: `{}` → no line at {want:?} naming {:?}:\n{out}", b.to, b.words);
}

#[test]
fn bad_inputs_are_refused_and_change_nothing() {
    let _serial = serial();
    require_root();
    // OpenFlow on a unix socket, for the OpenFlow cases below.
    let of_sock = std::env::temp_dir().join("sdnfwd-bad-inputs-of.mgmt");
    let of_target = format!("punix:{}", of_sock.display());
    let mut t = start("sdv", &["--openflow", &of_target]);
    let cfg_path = std::env::temp_dir().join(format!("{}-cluster.yaml", t.lab.prefix()));
    let cfg = cfg_path.to_string_lossy().into_owned();
    let bin = bin();
    let b = bin.to_str().unwrap();
    let before = snapshot(&t);
    assert!(before.contains("vethw1 (pod project-a/web-1, 10.131.0.3) up"), "{before}");
    // A namespace with nothing in it for the start-up cases: a config that
    // got through would stop at the missing uplink and set nothing up.
    let empty = t.lab.ns("empty").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut n_inputs = 0;

    for (i, case) in bad_files().iter().enumerate() {
        let text = mutate(case);
        assert_ne!(text, CLUSTER);
        n_inputs += 1;
        // At start-up.
        if !case.reload_only {
            let f = dir.path().join(format!("bad{i}.yaml"));
            std::fs::write(&f, &text).unwrap();
            let fs = f.to_string_lossy().into_owned();
            let o = t.lab.command(&empty, b).args(["run", "--config", &fs, "--node", "node-d"]).output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "start-up with `{}`: {err}", case.to);
            assert_names("start-up", &err, &fs, &text, case);
            assert!(!err.contains("nothing was set up"), "start-up got past the checks with `{}`: {err}", case.to);
            let links = t.lab.ip(Some(&empty), &["link"]).unwrap();
            let links = String::from_utf8_lossy(&links.stdout);
            assert!(!links.contains("tun0") && !links.contains("xdp"), "start-up left:\n{links}");
            // check-config says the same, touching nothing.
            let o = run_status(b, &["check-config", &fs, "--node", "node-d"]);
            assert_eq!(o.0, Some(2), "check-config `{}`: {}", case.to, o.2);
            assert_names("check-config", &o.2, &fs, &text, case);
        }
        // SIGHUP.
        t.write_config(&text).unwrap();
        let n_log = t.log("node-d").lines().count();
        let line = t.reload("node-d").unwrap();
        assert!(line.contains("refused, the running configuration is unchanged"), "SIGHUP `{}`: {line}", case.to);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let log: String = t.log("node-d").lines().skip(n_log).collect::<Vec<_>>().join("\n");
        assert_names("SIGHUP", &log, &cfg, &text, case);
        assert_same(&snapshot(&t), &before, &format!("SIGHUP with `{}`", case.to));
        // ctl reload.
        let e = t.ctl("node-d", &["reload"]).unwrap_err();
        assert_names("ctl reload", &e, &cfg, &text, case);
        assert_same(&snapshot(&t), &before, &format!("ctl reload with `{}`", case.to));
        t.write_config(CLUSTER).unwrap();
    }
    // A flow file the config names, with a bad line.
    let flows = format!("{}-extra.flows", t.lab.prefix());
    let flows_path = std::env::temp_dir().join(&flows);
    std::fs::write(&flows_path, "table=0, priority=1, actions=drop\ntable=0, priority=2, udp_dst=53, actions=drop\n")
        .unwrap();
    t.write_config(&format!("{CLUSTER}flows: {flows}\n")).unwrap();
    let e = t.ctl("node-d", &["reload"]).unwrap_err();
    assert!(e.contains(&format!("{}:2:22: udp_dst requires `udp`", flows_path.display())), "{e}");
    assert_same(&snapshot(&t), &before, "a bad flow file");
    n_inputs += 1;
    t.write_config(CLUSTER).unwrap();
    let _ = std::fs::remove_file(&flows_path);

    for (args, words) in bad_ctl() {
        let v: Vec<&str> = args.split_whitespace().collect();
        let e = t.ctl("node-d", &v).unwrap_err();
        let line = e
            .lines()
            .find(|l| l.contains(&format!("sdnfwd ctl {args}: ")) && words.iter().all(|w| l.contains(w)))
            .unwrap_or_else(|| panic!("ctl {args}: no line naming the command and {words:?}:\n{e}"));
        assert!(!line.is_empty());
        assert_same(&snapshot(&t), &before, &format!("ctl {args}"));
        n_inputs += 1;
    }
    // OpenFlow: what ovs-ofctl sends that the node refuses, each with the
    // OpenFlow error OVS would send, named by ovs-ofctl (never a bare hex
    // dump); a refused bundle applies none of its lines.
    let of = format!("unix:{}", of_sock.display());
    let bad_flows = dir.path().join("bad.flows");
    std::fs::write(&bad_flows, "table=0, priority=7, ip, actions=drop\ntable=40, priority=1, ip, actions=group:99\n")
        .unwrap();
    let bad_flows = bad_flows.to_string_lossy().into_owned();
    let pkt = "packet=ffffffffffff000000000001080045000014000100004001f7e40a0000010a000002";
    let in_port1 = format!("in_port=1 {pkt} actions=table");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["-O", "OpenFlow13", "--bundle", "add-flows", &of, &bad_flows], "OFPBAC_BAD_OUT_GROUP"),
        (vec!["-O", "OpenFlow14", "--bundle", "replace-flows", &of, &bad_flows], "OFPBAC_BAD_OUT_GROUP"),
        (vec!["add-flow", &of, "table=254, actions=drop"], "OFPBRC_EPERM"),
        (vec!["add-flow", &of, "table=0, priority=0, ip, check_overlap, actions=drop"], "OFPFMFC_OVERLAP"),
        (vec!["-O", "OpenFlow13", "add-flow", &of, "table=30, priority=1, actions=group:99"], "OFPBAC_BAD_OUT_GROUP"),
        (vec!["-O", "OpenFlow13", "mod-group", &of, "group_id=99,type=all,bucket=output:3"], "OFPGMFC_UNKNOWN_GROUP"),
        (
            vec!["-O", "OpenFlow13", "add-group", &of, "group_id=1,type=all,bucket=actions=group:77"],
            "OFPBAC_BAD_OUT_GROUP",
        ),
        (vec!["-O", "OpenFlow15", "add-group", &of, "group_id=1,type=all,bucket=output:3"], "OFPBRC_BAD_TYPE"),
        (vec!["mod-port", &of, "3", "down"], "OFPBRC_EPERM"),
        (vec!["-O", "OpenFlow13", "add-meter", &of, "meter=1,kbps,band=type=drop,rate=1000"], "OFPBRC_BAD_TYPE"),
        (vec!["packet-out", &of, &in_port1], "OFPBRC_EPERM"),
    ];
    for (args, code) in cases {
        let (_, out, err) = run_status("ovs-ofctl", &args);
        let all = format!("{out}{err}");
        assert!(all.contains(code) && !all.lines().any(|l| l.starts_with("00000000  ")), "ovs-ofctl {args:?}: {all}");
        assert_same(&snapshot(&t), &before, &format!("ovs-ofctl {args:?}"));
        n_inputs += 1;
    }
    assert!(n_inputs >= 40, "{n_inputs} bad inputs");
    eprintln!("bad inputs: {n_inputs} refused, the node unchanged after each");
    // Still forwarding.
    let web1 = t.pod("project-a/web-1").unwrap().to_string();
    assert!(t.ping(&web1, "10.131.0.4", 2), "web-1 → db-1 after the bad inputs");
    let d = t.stop("node-d").unwrap();
    assert_eq!(d.code, Some(0), "{}", d.stderr);
}

/// (exit code, stdout, stderr) of a command that may fail.
fn run_status(prog: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let o = std::process::Command::new(prog).args(args).output().unwrap();
    (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// A missing uplink is named before anything is set up.
#[test]
fn missing_uplink_is_refused_before_setup() {
    let _serial = serial();
    require_root();
    sdnfwd::netns::Lab::sweep_stale("sdw");
    let mut lab = sdnfwd::netns::Lab::new("sdw");
    let ns = lab.ns("node").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yaml");
    std::fs::write(&f, CLUSTER.replacen("uplink: eth0", "uplink: nx-up", 1)).unwrap();
    let o = lab
        .command(&ns, bin().to_str().unwrap())
        .args(["run", "--config", f.to_str().unwrap(), "--node", "node-d"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("uplink `nx-up`") && e.contains("nothing was set up") && !e.contains("No such file"), "{e}");
    let links = lab.ip(Some(&ns), &["link"]).unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains("tun0"), "{links}");
}

/// A node killed with SIGKILL leaves its uplink XDP program attached; the
/// next start finds it is sdnfwd's own and that no sdnfwd holds the
/// uplink's lock, replaces it and forwards again. A second sdnfwd on a
/// running node's uplink is refused before it sets anything up (the
/// running node's tun0 untouched), and a foreign XDP program is named.
#[test]
fn a_killed_node_restarts_and_a_second_one_is_refused() {
    let _serial = serial();
    require_root();
    let mut t = start("sdk9", &[]);
    let node_ns = t.node("node-d").unwrap().to_string();
    let xdp = |t: &Topology| {
        let o = t.lab.ip(Some(t.node("node-d").unwrap()), &["-d", "link", "show", "dev", "eth0"]).unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let cfg = t.config_path().to_string_lossy().into_owned();
    // A second sdnfwd for the same node, while the first runs.
    let o = t
        .lab
        .command(&node_ns, bin().to_str().unwrap())
        .args(["run", "--config", &cfg, "--node", "node-d", "--socket", "/tmp/sdk9-second.ctl"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("another sdnfwd (pid ") && e.contains("nothing was set up"), "{e}");
    assert!(t.ctl("node-d", &["show"]).is_ok(), "the running node still answers");
    let links = String::from_utf8_lossy(&t.lab.ip(Some(&node_ns), &["link"]).unwrap().stdout).into_owned();
    assert!(links.contains("tun0"), "the running node's tun0 is untouched:\n{links}");
    // Killed: the program stays.
    t.kill("node-d").unwrap();
    let left = xdp(&t);
    assert!(left.contains("prog/xdp") && left.contains("sdnfwd_uplink"), "{left}");
    let c0 = sdnfwd::netns::two_cores("bad inputs")[0].to_string();
    // Restarted with a rule that renders no flow: logged, as `render`
    // prints it.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let with_dns = text.replacen(
        "    - {type: Deny, to: {cidrSelector: 0.0.0.0/0}}",
        "    - {type: Allow, to: {dnsName: www.example.com}}\n    - {type: Deny, to: {cidrSelector: 0.0.0.0/0}}",
        1,
    );
    assert_ne!(with_dns, text);
    std::fs::write(&cfg, with_dns).unwrap();
    t.start("node-d", &["--cores", &c0, "--pmd-maxsleep-us", "50"]).expect("restart after SIGKILL");
    let log = t.log("node-d");
    assert!(log.contains("replaced the XDP program (id ") && log.contains("that a killed sdnfwd left"), "{log}");
    assert!(log.contains("WARN  sdnfwd: EgressNetworkPolicy ") && log.contains("dnsName www.example.com"), "{log}");
    let web1 = t.pod("project-a/web-1").unwrap().to_string();
    assert!(t.ping(&web1, "10.131.0.4", 3), "forwarding after the restart");
    t.stop("node-d").unwrap();
    assert!(!xdp(&t).contains("prog/xdp"), "a clean stop detaches it");
    // Somebody else's program (compiled here with clang, as the build
    // compiles sdnfwd's): named, left alone.
    let dir = tempfile::tempdir().unwrap();
    let (c, o) = (dir.path().join("other.c"), dir.path().join("other.o"));
    std::fs::write(
        &c,
        "__attribute__((section(\"xdp\"), used)) int other_prog(void *ctx) { return 2; }\n\
         char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    )
    .unwrap();
    run("clang", &["-O2", "-target", "bpf", "-c", c.to_str().unwrap(), "-o", o.to_str().unwrap()])
        .expect("clang -target bpf (CI installs clang for the XDP programs)");
    t.lab
        .ip(Some(&node_ns), &["link", "set", "dev", "eth0", "xdp", "obj", o.to_str().unwrap(), "sec", "xdp"])
        .expect("ip link set xdp obj");
    let e = t.start("node-d", &["--cores", &c0]).expect_err("a foreign XDP program stops the start");
    assert!(e.contains("eth0 already has an XDP program `other_prog` (id ") && e.contains("not sdnfwd's"), "{e}");
    assert!(xdp(&t).contains("other_prog"), "left alone");
    t.lab.ip(Some(&node_ns), &["link", "set", "dev", "eth0", "xdp", "off"]).unwrap();
}

/// 4.13's egress-IP select groups follow the NetNamespaces on reload, in
/// the same bundle as the flows that use them: a namespace that loses its
/// egress IP loses its group, one whose egress IP moves to another node
/// gets its group's bucket changed, and going back restores both.
#[test]
fn reload_changes_the_egress_ip_groups() {
    let _serial = serial();
    require_root();
    let t = start("sdg", &["--sdn-version", "4.13"]);
    let ctl = |t: &Topology, args: &[&str]| t.ctl("node-d", args).unwrap_or_else(|e| panic!("ctl {args:?}: {e}"));
    let groups = ctl(&t, &["dump-groups"]);
    assert!(groups.contains("group_id=11235,type=select") && groups.contains("group_id=58132,type=select"), "{groups}");
    assert!(groups.contains("set_field:6e:2f:91:0c:55:a7->eth_dst"), "58132 leaves by tun0 here: {groups}");
    let changed = CLUSTER.replacen("  netid: 11235\n  egressIPs: [172.16.1.100]\n", "  netid: 11235\n", 1).replacen(
        "  netid: 58132\n  egressIPs: [172.16.1.101]",
        "  netid: 58132\n  egressIPs: [172.16.1.100]",
        1,
    );
    assert_ne!(changed, CLUSTER);
    t.write_config(&changed).unwrap();
    let out = ctl(&t, &["reload"]);
    assert!(out.contains(", 2 groups added, changed or removed, "), "{out}");
    let groups = ctl(&t, &["dump-groups"]);
    assert!(!groups.contains("group_id=11235"), "project-a's group is gone: {groups}");
    assert!(
        groups.contains("group_id=58132,type=select") && groups.contains("set_field:172.16.1.16->tun_dst"),
        "project-b's egress IP is on node-b now: {groups}"
    );
    assert!(!ctl(&t, &["dump-flows", "table=101"]).contains("group:11235"));
    t.write_config(CLUSTER).unwrap();
    let out = ctl(&t, &["reload"]);
    assert!(out.contains(", 2 groups added, changed or removed, "), "{out}");
    let groups = ctl(&t, &["dump-groups"]);
    assert!(groups.contains("group_id=11235,type=select") && groups.contains("6e:2f:91:0c:55:a7->eth_dst"), "{groups}");
    let out = ctl(&t, &["reload"]);
    assert!(out.contains("(0 added or changed, 0 removed), 4 HostSubnets"), "nothing left to change: {out}");
}

/// The runtime state, the lists, reload's diff, metrics, help, pipes.
#[test]
fn runtime_state_survives_reload() {
    let _serial = serial();
    require_root();
    let mut t = start("sdy", &["--metrics", "127.0.0.1:9465"]);
    let bin = bin();
    let b = bin.to_str().unwrap().to_string();
    let ctl = |t: &Topology, args: &[&str]| t.ctl("node-d", args).unwrap_or_else(|e| panic!("ctl {args:?}: {e}"));

    // Runtime changes: a pod (the CNI path), a HostSubnet, a file pod gone.
    let add = "pod add project-a/new-1 10.131.0.7 vethn1 7";
    assert!(
        ctl(&t, &add.split(' ').collect::<Vec<_>>()).contains("pod project-a/new-1 (10.131.0.7, vethn1, port 7) added")
    );
    ctl(&t, &["hostsubnet", "add", "node-e", "172.16.1.40", "10.128.2.0/23"]);
    ctl(&t, &["pod", "del", "project-b/api-1"]);
    let p = config::yaml::Pod::new("project-a", "new-1", "10.131.0.7", "vethn1", 7).unwrap();
    t.add_pod("node-d", &p).unwrap();
    let new1 = t.pod("project-a/new-1").unwrap().to_string();
    t.lab.exec(&new1, "sysctl", &["-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]).unwrap();
    let web1 = t.pod("project-a/web-1").unwrap().to_string();
    let mut up = false;
    for _ in 0..20 {
        if t.ping(&web1, "10.131.0.7", 1) {
            up = true;
            break;
        }
    }
    assert!(up, "pod added with ctl unreachable\n{}", t.log("node-d"));
    let pods = ctl(&t, &["pod", "list"]);
    assert!(
        pods.contains(&format!("project-a/new-1 ip=10.131.0.7 veth=vethn1 ofport=7 up from=`ctl {add}`")),
        "{pods}"
    );
    assert!(
        pods.contains("project-a/web-1 ip=10.131.0.3 veth=vethw1 ofport=4 up from=") && !pods.contains("api-1"),
        "{pods}"
    );
    let hs = ctl(&t, &["hostsubnet", "list"]);
    assert!(hs.contains("node-e hostIP=172.16.1.40 subnet=10.128.2.0/23 from=`ctl hostsubnet add"), "{hs}");
    assert!(hs.contains("node-d hostIP=172.16.1.25 subnet=10.131.0.0/23 (this node) from="), "{hs}");
    let show = ctl(&t, &["show"]);
    assert!(show.contains("vethn1 (pod project-a/new-1, 10.131.0.7) up") && !show.contains("api-1"), "{show}");
    let state = snapshot(&t);

    // SIGHUP and ctl reload with the same file: nothing changes.
    let line = t.reload("node-d").unwrap();
    assert!(line.contains("(0 added or changed, 0 removed)"), "{line}");
    let out = ctl(&t, &["reload"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("reload: ") && out.contains("(0 added or changed, 0 removed), 5 HostSubnets"), "{out}");
    assert_same(&snapshot(&t), &state, "a reload of the same file");
    assert!(t.ping(&web1, "10.131.0.7", 2), "the ctl pod after reloads");

    // The file changes: node-c goes; ctl reload prints what it applied.
    let node_c = "- metadata: {name: node-c, uid: 5f6c2a10-1b2c-4d3e-8f90-0000000000f3}\n  host: node-c\n  hostIP: 172.16.1.22\n  subnet: 10.130.0.0/23\n";
    let without_c = CLUSTER.replace(node_c, "");
    t.write_config(&without_c).unwrap();
    let out = ctl(&t, &["reload"]);
    assert!(out.contains("HostSubnet removed: node-c (172.16.1.22, 10.130.0.0/23)"), "{out}");
    assert!(!out.contains("(0 added or changed, 0 removed)") && out.contains(", 4 HostSubnets"), "{out}");
    assert!(ctl(&t, &["pod", "list"]).contains("project-a/new-1"), "the ctl pod lost on reload");

    // A file that conflicts with the ctl pod: refused, naming both.
    let anchor = "  - {namespace: project-a, name: db-1, ip: 10.131.0.4, veth: vethd1, ofport: 5}\n";
    let conflicting = without_c.replace(
        anchor,
        &format!("{anchor}  - {{namespace: project-a, name: new-2, ip: 10.131.0.7, veth: vethn2, ofport: 8}}\n"),
    );
    t.write_config(&conflicting).unwrap();
    let before = snapshot(&t);
    let e = t.ctl("node-d", &["reload"]).unwrap_err();
    assert!(
        e.contains("IP 10.131.0.7") && e.contains("project-a/new-2") && e.contains(&format!("`sdnfwd ctl {add}`")),
        "{e}"
    );
    let cfg = std::env::temp_dir().join(format!("{}-cluster.yaml", t.lab.prefix()));
    let (l, c) = value_pos(&conflicting, "ip: 10.131.0.7, veth: vethn2");
    assert!(e.contains(&format!("{}:{l}:{c}: ", cfg.display())), "{e}");
    assert_same(&snapshot(&t), &before, "a refused reload");
    // The file takes the ctl pod over as it is: accepted, now the file's.
    let adopted = without_c.replace(
        anchor,
        &format!("{anchor}  - {{namespace: project-a, name: new-1, ip: 10.131.0.7, veth: vethn1, ofport: 7}}\n"),
    );
    t.write_config(&adopted).unwrap();
    let out = ctl(&t, &["reload"]);
    assert!(out.contains("(0 added or changed, 0 removed)"), "{out}");
    let pods = ctl(&t, &["pod", "list"]);
    let line = pods.lines().find(|l| l.starts_with("project-a/new-1 ")).unwrap();
    assert!(line.contains(&format!("from={}:", cfg.display())), "{pods}");

    // /metrics: a Prometheus text parser takes every family.
    let nd = t.node("node-d").unwrap().to_string();
    let scrape = run(
        "ip",
        &[
            "netns",
            "exec",
            &nd,
            "bash",
            "-c",
            "exec 3<>/dev/tcp/127.0.0.1/9465; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3",
        ],
    )
    .unwrap();
    let text = String::from_utf8_lossy(&scrape.stdout).into_owned();
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    check_exposition(body);

    // A closed stdout: quiet, not a panic (exit 0, or SIGPIPE's 141).
    let sock = t.socket("node-d");
    let o = std::process::Command::new("bash")
        .args(["-c", &format!("'{b}' ctl --socket '{sock}' dump-flows | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}")])
        .output()
        .unwrap();
    let st = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(st == "0" || st == "141", "ctl | head: status {st}: {}", String::from_utf8_lossy(&o.stderr));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"), "{o:?}");
    let d = t.stop("node-d").unwrap();
    assert_eq!(d.code, Some(0), "{}", d.stderr);
    // Each log line: a UTC timestamp and a level.
    for l in d.stderr.lines().filter(|l| l.contains(" sdnfwd: ")) {
        let (ts, rest) = l.split_once(' ').unwrap();
        assert!(ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{l}");
        assert!(["INFO ", "WARN ", "ERROR", "DEBUG"].iter().any(|lv| rest.starts_with(lv)), "{l}");
    }
}

/// The exposition as a Prometheus text parser reads it: every family
/// typed, every sample in its family, none dropped.
fn check_exposition(body: &str) {
    let m = openmetrics_parser::prometheus::parse_prometheus(body)
        .unwrap_or_else(|e| panic!("/metrics is not valid Prometheus text: {e:?}\n{body}"));
    let n_lines = body.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).count();
    let mut n_samples = 0;
    for (name, f) in &m.families {
        assert!(!matches!(f.family_type, openmetrics_parser::PrometheusType::Unknown), "family {name} has no TYPE");
        n_samples += f.iter_samples().count();
    }
    assert_eq!(n_samples, n_lines, "samples lost by the parser");
    for want in ["sdnfwd_rule_drop_packets_total", "sdnfwd_table_drop_packets_total", "sdnfwd_port_packets_total"] {
        assert!(m.families.contains_key(want), "{want} missing");
    }
}

/// The parser refuses what /metrics used to serve (rule_drop's samples
/// after table_drop's HELP and TYPE), so the check above has teeth.
#[test]
fn the_parser_refuses_the_old_exposition() {
    let old = "# HELP a_total A.\n# TYPE a_total counter\n# HELP b_total B.\n# TYPE b_total counter\nb_total{x=\"1\"} 1\na_total{y=\"2\"} 2\n";
    assert!(openmetrics_parser::prometheus::parse_prometheus(old).is_err());
    let fixed = "# HELP b_total B.\n# TYPE b_total counter\nb_total{x=\"1\"} 1\n# HELP a_total A.\n# TYPE a_total counter\na_total{y=\"2\"} 2\n";
    check_exposition_shape(fixed);
}

fn check_exposition_shape(body: &str) {
    let m = openmetrics_parser::prometheus::parse_prometheus(body).unwrap();
    assert_eq!(m.families.len(), 2);
}

/// Without a node: help, check-config, and the systemd unit.
#[test]
fn without_a_node() {
    let b = bin();
    let b = b.to_str().unwrap();
    for args in [&["ctl", "help"][..], &["ctl", "--socket", "/nonexistent", "help"]] {
        let (code, out, err) = run_status(b, args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(
            out.contains("pod list") && out.contains("hostsubnet add NAME HOSTIP SUBNET") && out.contains("reload"),
            "{out}"
        );
    }
    let (code, out, err) = run_status(b, &["ctl", "--help"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("hostsubnet list") && out.contains("--socket"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, CLUSTER).unwrap();
    let (code, out, err) = run_status(b, &["check-config", good.to_str().unwrap(), "--node", "node-d"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("OK: node node-d: 4 pods, 84 flows"), "{out}");
    let bad = dir.path().join("bad.yaml");
    let text = CLUSTER.replacen("ip: 10.131.0.4, veth: vethd1", "ip: 10.131.0.3, veth: vethw1", 1);
    std::fs::write(&bad, &text).unwrap();
    let (code, _, err) = run_status(b, &["check-config", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert_eq!(err.lines().count(), 2, "one line per problem: {err}");
    let (l, c) = value_pos(&text, "ip: 10.131.0.3, veth: vethw1, ofport: 5");
    assert!(
        err.starts_with(&format!(
            "{}:{l}:{c}: pod project-a/db-1: IP 10.131.0.3 is already pod project-a/web-1's",
            bad.display()
        )),
        "{err}"
    );

    // The unit parses (systemd-analyze, where systemd is installed).
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/sdnfwd.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("ExecReload=/usr/local/bin/sdnfwd ctl --socket /run/sdnfwd/node.ctl reload"));
    if std::process::Command::new("systemd-analyze").arg("--version").output().is_ok() {
        let u = dir.path().join("sdnfwd.service");
        std::fs::write(&u, text.replace("/usr/local/bin/sdnfwd", b)).unwrap();
        let (code, out, err) = run_status("systemd-analyze", &["verify", u.to_str().unwrap()]);
        assert_eq!(code, Some(0), "systemd-analyze verify: {out}{err}");
        sdnfwd::netns::branch("systemd unit", "checked with systemd-analyze verify");
    } else {
        sdnfwd::netns::branch("systemd unit", "systemd-analyze missing: only read");
    }
}
