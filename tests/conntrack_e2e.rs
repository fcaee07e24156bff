//! Connection tracking on real kernels: node-d's pods in network
//! namespaces, `sdnfwd run` with its tracker, and a rule set on top of the
//! rendered tables that tracks every IPv4 packet, drops what the tracker
//! calls invalid, and lets TCP between pods through only as a new
//! connection (committed) or an established one. Kernel TCP both ways
//! (web-1 → db-1 for 100 MB, every byte checked, and db-1 → web-1); during
//! the long transfer a third pod (api-1) sends a stray SYN-ACK of its own,
//! and posing as db-1 a SYN-ACK and a RST with sequence numbers half the
//! space away from db-1's: all three are `+inv` and dropped by the invalid
//! rule, and the transfer goes on unharmed.
//! The invalid rule's counter must equal the crafted frames exactly: a
//! real segment of either transfer that the tracker marked invalid (a
//! window-tracking mistake) would show there. Then the node's ctl shows
//! the connections (dump-conntrack, ct-stats), the tracker's counters
//! (pmd-stats, /metrics) and flushes them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use fastpath::conntrack::frames::{tcp, TcpSpec, ACK, RST, SYN};
use sdnfwd::netns::run;
use sdnfwd::topology::Topology;

const WEB1: &str = "10.131.0.3";
const DB1: &str = "10.131.0.4";
const API1: &str = "10.131.0.5";
/// Bytes of the long transfer.
const LONG: u64 = 100_000_000;

/// The rule set: every IPv4 packet through the tracker once (zone 0),
/// invalid ones dropped in table 0; in table 80 (the last before a local
/// pod) TCP passes as a new connection, committed, or an established one,
/// and nothing else.
const CT_RULES: &str = "\
table=0, priority=1000, ip, ct_state=-trk, actions=ct(table=0)
table=0, priority=999, ip, ct_state=+trk+inv, actions=drop
table=80, priority=400, tcp, ct_state=+trk+new, actions=ct(commit),output:NXM_NX_REG2[]
table=80, priority=400, tcp, ct_state=+trk+est, actions=output:NXM_NX_REG2[]
table=80, priority=390, tcp, actions=drop
";

fn require_root() {
    let out = run("id", &["-u"]).expect("id -u");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "netns tests need root (CI runs as root)");
}

fn spawn(ns: &str, bin: &str, args: &[&str]) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns, bin])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// The next line a child prints.
fn line_of(c: &mut Child) -> String {
    let mut l = String::new();
    BufReader::new(c.stdout.as_mut().expect("piped")).read_line(&mut l).expect("read");
    l.trim().to_string()
}

/// Waits for a child; its stdout and stderr, or why it failed.
fn finish(c: Child, what: &str) -> String {
    let o = c.wait_with_output().expect("wait");
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{what}: {}\n{out}\n{err}", o.status);
    out.into_owned()
}

fn ip_of(s: &str) -> u32 {
    u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
}

/// A pod's MAC, as openshift-sdn derives it from the IP (0a:58:IP).
fn mac_of(s: &str) -> [u8; 6] {
    let o = s.parse::<std::net::Ipv4Addr>().unwrap().octets();
    [0x0a, 0x58, o[0], o[1], o[2], o[3]]
}

/// A TCP frame from api-1's interface to web-1.
fn crafted(src: &str, sport: u16, dport: u16, flags: u8, seq: u32, ack: u32) -> String {
    let mut f = tcp(&TcpSpec {
        src: ip_of(src),
        sport,
        dst: ip_of(WEB1),
        dport,
        seq,
        ack,
        flags,
        win: 512,
        wscale: None,
        payload: 0,
    });
    f[0..6].copy_from_slice(&mac_of(WEB1));
    f[6..12].copy_from_slice(&mac_of(API1));
    f.iter().map(|b| format!("{b:02x}")).collect()
}

/// `n_packets` of the flow in `dump` whose text contains `what`.
fn n_packets(dump: &str, what: &str) -> u64 {
    let l = dump.lines().find(|l| l.contains(what)).unwrap_or_else(|| panic!("no flow {what} in\n{dump}"));
    l.split("n_packets=").nth(1).and_then(|r| r.split(',').next()).and_then(|n| n.parse().ok()).expect("n_packets")
}

#[test]
fn tcp_through_conntrack_rules_on_real_kernels() {
    require_root();
    sdnfwd::netns::Lab::sweep_stale("sdk");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sdnfwd"));
    let b = bin.to_string_lossy().into_owned();
    let mut t = Topology::build("sdk", config::yaml::DEFAULT_CLUSTER, &["node-d"], None, &bin).expect("topology");
    let [c0, _] = sdnfwd::netns::two_cores("conntrack e2e");
    // Short closing timeouts, so that the sweeper's work shows.
    let timeouts = "tcp_fin_wait=5,tcp_time_wait=5,tcp_close=5";
    t.start("node-d", &["--cores", &c0.to_string(), "--ct-timeout", timeouts]).expect("node-d");
    let rules = std::env::temp_dir().join(format!("{}-ct.flows", t.lab.prefix()));
    std::fs::write(&rules, CT_RULES).unwrap();
    t.ctl("node-d", &["add-flows", &rules.to_string_lossy()]).expect("ct rules");
    let _ = std::fs::remove_file(&rules);
    let (web1, db1, api1) =
        (t.pod("project-a/web-1").unwrap(), t.pod("project-a/db-1").unwrap(), t.pod("project-b/api-1").unwrap());
    let (web1, db1, api1) = (web1.to_string(), db1.to_string(), api1.to_string());
    assert_eq!(t.ctl("node-d", &["dump-conntrack"]).unwrap(), "", "nothing tracked yet");

    // web-1 → db-1, 100 MB, pausing half-way for the stray frames.
    let long = LONG.to_string();
    let mut sink = spawn(&db1, &b, &["netcheck", "tcp-sink", "0.0.0.0:7001", "--bytes", &long, "--timeout", "120"]);
    assert!(line_of(&mut sink).starts_with("listening"));
    // db-1's SYN-ACK gives its initial sequence number.
    let peek = spawn(
        &db1,
        &b,
        &["netcheck", "tcp-peek", "--iface", "eth0", "--src", &format!("{DB1}:7001"), "--dst", &format!("{WEB1}:0")],
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let half = (LONG / 2).to_string();
    let mut send = spawn(
        &web1,
        &b,
        &[
            "netcheck",
            "tcp-send",
            &format!("{DB1}:7001"),
            "--bytes",
            &long,
            "--timeout",
            "120",
            "--pause-at",
            &half,
            "--pause-ms",
            "1500",
        ],
    );
    let connected = line_of(&mut send);
    let sport: u16 = connected
        .split_whitespace()
        .nth(1)
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{connected}"));
    let synack = finish(peek, "tcp-peek");
    let field = |k: &str| -> u32 {
        synack
            .split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{synack}"))
    };
    assert!(synack.contains(&format!("dport={sport}")) && synack.contains("flags=0x12"), "{synack}");
    let (isn, ack) = (field("seq="), field("ack="));
    assert_eq!(line_of(&mut send), format!("paused at {half} bytes"));
    // The stray frames from api-1: a SYN-ACK of its own (a SYN-ACK starts
    // no connection), and posing as db-1 a SYN-ACK and a RST whose
    // sequence numbers are half the space away from db-1's. (A lone RST of
    // no connection would be `+new`, as in OVS: the tracker picks
    // connections up mid-stream.)
    let far = isn.wrapping_add(1).wrapping_add(1 << 31);
    let frames = [
        crafted(API1, 7001, sport, SYN | ACK, 0x1234_5678, ack),
        crafted(DB1, 7001, sport, SYN | ACK, far, ack),
        crafted(DB1, 7001, sport, RST | ACK, far, ack),
    ];
    let mut args = vec!["netcheck", "raw-send", "--iface", "eth0"];
    args.extend(frames.iter().map(String::as_str));
    let o = run("ip", &[&["netns", "exec", &api1, &b][..], &args[..]].concat()).expect("raw-send");
    assert!(String::from_utf8_lossy(&o.stdout).contains("sent 3 frame(s)"));
    // While the connection is up: ctl trace resumes each recirculation
    // with the node's tracker's verdict, and changes nothing.
    let before = t.ctl("node-d", &["dump-conntrack"]).unwrap();
    let reply = format!(
        "in_port=5,tcp,dl_src=0a:58:0a:83:00:04,dl_dst=0a:58:0a:83:00:03,nw_src={DB1},nw_dst={WEB1},tcp_src=7001,tcp_dst={sport}"
    );
    let tr = t.ctl("node-d", &["trace", &reply]).unwrap();
    assert!(tr.contains("resume conntrack with ct_state=est|rpl|trk (the node's tracker):\n tcp,orig="), "{tr}");
    assert!(tr.contains("protoinfo=(state=ESTABLISHED)") && tr.ends_with("Datapath actions: 4\n"), "{tr}");
    let stranger = format!(
        "in_port=6,tcp,dl_src=0a:58:0a:83:00:05,dl_dst=0a:58:0a:83:00:03,nw_src={API1},nw_dst={WEB1},tcp_src=5555,tcp_dst=80"
    );
    let tr = t.ctl("node-d", &["trace", &stranger]).unwrap();
    assert!(tr.contains("resume conntrack with ct_state=new|trk (the node's tracker: no connection)"), "{tr}");
    assert!(tr.ends_with("Datapath actions: ct(commit),4\n"), "{tr}");
    let tr = t.ctl("node-d", &["trace", &stranger, "--ct-next", "trk,inv"]).unwrap();
    assert!(tr.contains("resume conntrack with ct_state=inv|trk\n") && tr.contains("Datapath actions: drop\n"), "{tr}");
    assert_eq!(t.ctl("node-d", &["dump-conntrack"]).unwrap(), before, "the traces changed the tracker");
    let sent = finish(send, "web-1 → db-1 transfer");
    let got = finish(sink, "db-1's sink");
    assert!(got.contains(&format!("received {LONG} bytes, pattern ok")), "{got}");
    eprintln!("web-1 → db-1: {}", sent.lines().last().unwrap_or(""));

    // db-1 → web-1: a connection the other way.
    let mut sink =
        spawn(&web1, &b, &["netcheck", "tcp-sink", "0.0.0.0:7002", "--bytes", "10000000", "--timeout", "60"]);
    assert!(line_of(&mut sink).starts_with("listening"));
    let send =
        spawn(&db1, &b, &["netcheck", "tcp-send", &format!("{WEB1}:7002"), "--bytes", "10000000", "--timeout", "60"]);
    finish(send, "db-1 → web-1 transfer");
    assert!(finish(sink, "web-1's sink").contains("received 10000000 bytes, pattern ok"));

    // The invalid rule dropped exactly the three frames.
    let flows = t.ctl("node-d", &["dump-flows", "table=0"]).unwrap();
    assert_eq!(
        n_packets(&flows, "ct_state=+inv+trk"),
        3,
        "the +inv drops: the crafted frames and nothing else\n{flows}"
    );
    assert!(n_packets(&flows, "ct_state=-trk") > LONG / 1500, "every segment through the tracker\n{flows}");
    let t80 = t.ctl("node-d", &["dump-flows", "table=80"]).unwrap();
    assert_eq!(
        n_packets(&t80, "priority=390,tcp"),
        0,
        "no TCP of either transfer was neither new nor established\n{t80}"
    );
    assert!(n_packets(&t80, "ct_state=+new+trk") >= 2, "{t80}");

    // The tracker: both connections, with the tuples the kernels used.
    let dump = t.ctl("node-d", &["dump-conntrack"]).unwrap();
    let there = format!("tcp,orig=(src={WEB1},dst={DB1},sport={sport},dport=7001),reply=(src={DB1},dst={WEB1},sport=7001,dport={sport})");
    assert!(dump.contains(&there), "{dump}");
    assert!(dump.contains(&format!("tcp,orig=(src={DB1},dst={WEB1},")) && dump.contains("dport=7002)"), "{dump}");
    let stats = t.ctl("node-d", &["ct-stats", "verbose"]).unwrap();
    assert!(stats.contains("Connections Stats:\n    Total: 2\n  TCP: 2\n    Conn per TCP states:\n"), "{stats}");
    assert!(stats.contains("  created: 2\n") && stats.contains("  invalid packets: 3\n"), "{stats}");
    let pmd = t.ctl("node-d", &["pmd-stats"]).unwrap();
    assert!(pmd.contains("conntrack:\n  connections: 2\n") && pmd.contains("packet recirculations: "), "{pmd}");
    assert_eq!(t.ctl("node-d", &["dump-conntrack", "zone=1"]).unwrap(), "", "nothing in zone 1");
    assert!(t.ctl("node-d", &["dump-conntrack", "zone=x"]).unwrap_err().contains("`zone=x`: a zone is 0 to 65535"));
    // IPv4 reassembly, on by default as in OVS; TCP over veths sends no
    // fragments.
    let ipf = t.ctl("node-d", &["ipf-get-status", "-m"]).unwrap();
    assert!(ipf.starts_with("        Fragmentation Module Status\n"), "{ipf}");
    assert!(
        ipf.contains("        v4 enabled: 1\n        v6 enabled: 0\n        max num frags (v4/v6): 1000\n"),
        "{ipf}"
    );
    assert!(ipf.contains("        v4 frags accepted: 0\n") && ipf.ends_with("Fragment Lists:\n\n"), "{ipf}");
    assert!(t.ctl("node-d", &["ipf-get-status", "x"]).unwrap_err().contains("takes -m alone"));

    // Both closed: the sweeper removes them once their 5 s are up.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut stats = String::new();
    while std::time::Instant::now() < end {
        stats = t.ctl("node-d", &["ct-stats"]).unwrap();
        if stats.contains("  connections: 0\n  created: 2\n  expired: 2\n") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(stats.contains("  connections: 0\n  created: 2\n  expired: 2\n"), "{stats}");
    // A flush ends live connections.
    t.tcp(&web1, &db1, DB1, 7003).expect("an echo web-1 → db-1");
    assert_eq!(t.ctl("node-d", &["dump-conntrack"]).unwrap().lines().count(), 1);
    t.ctl("node-d", &["flush-conntrack", "zone=0"]).unwrap();
    assert_eq!(t.ctl("node-d", &["dump-conntrack"]).unwrap(), "", "flushed");
    assert!(t.ctl("node-d", &["ct-stats"]).unwrap().contains("  flushed: 1\n"));

    // Groups through ctl.
    t.ctl("node-d", &["add-group", "group_id=7,type=all,bucket=actions=output:4,bucket=actions=output:5"]).unwrap();
    let g = t.ctl("node-d", &["dump-groups"]).unwrap();
    assert_eq!(g, " group_id=7,type=all,bucket=actions=output:4,bucket=actions=output:5\n");
    let gs = t.ctl("node-d", &["dump-group-stats", "7"]).unwrap();
    assert!(
        gs.starts_with(" group_id=7,duration=") && gs.ends_with(",ref_count=0,packet_count=0,byte_count=0\n"),
        "{gs}"
    );
    assert!(t.ctl("node-d", &["add-group", "group_id=7,type=all"]).unwrap_err().contains("7"));
    t.ctl("node-d", &["del-groups", "group_id=7"]).unwrap();
    assert_eq!(t.ctl("node-d", &["dump-groups"]).unwrap(), "");

    let exit = t.stop("node-d").expect("stop");
    assert_eq!(exit.code, Some(0), "{}", exit.stderr);
    assert!(
        exit.stdout.contains("conntrack:\n  connections: 0\n  created: 3\n  expired: 2\n  flushed: 1\n"),
        "{}",
        exit.stdout
    );
}

/// What a failed service test needs to be understood: the node's log, both
/// trackers and the rules that counted packets.
fn diagnose(t: &Topology, node: &str) -> String {
    let ns = t.node(node).unwrap_or_default().to_string();
    let kernel = Command::new("ip")
        .args(["netns", "exec", &ns, "cat", "/proc/net/nf_conntrack"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| e.to_string());
    let flows = t.ctl(node, &["dump-flows"]).unwrap_or_else(|e| e);
    let hit: Vec<&str> = flows.lines().filter(|l| !l.contains("n_packets=0,")).collect();
    format!(
        "log:\n{}\nsdnfwd's tracker:\n{}\nthe kernel's:\n{kernel}\n{}\nflows that counted:\n{}",
        t.log(node),
        t.ctl(node, &["dump-conntrack"]).unwrap_or_else(|e| e),
        t.ctl(node, &["pmd-stats"]).unwrap_or_else(|e| e),
        hit.join("\n")
    )
}

/// A pod reaches a service through tun0 as on an OpenShift 4.13 node: the
/// packet leaves the bridge for the host, kube-proxy's iptables rules
/// translate it to the backend pod, it comes back from tun0, and the
/// backend's replies, which never see the host again, must reach the
/// client from the service's address (the rule `ct_state=+rpl →
/// ct(nat,table=70)`): sdnfwd adopts the kernel's translation. On one node
/// (web-1 → web's address → db-1 on node-d) and across nodes (web-2 on
/// node-b → the same service → db-1 over VXLAN). The echo only completes
/// if the client's kernel accepts the replies, so a reply from the
/// backend's own address fails it.
#[test]
fn service_through_tun0_with_kube_proxy_rules() {
    require_root();
    sdnfwd::netns::Lab::sweep_stale("sdh");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sdnfwd"));
    let mut t =
        Topology::build("sdh", config::yaml::DEFAULT_CLUSTER, &["node-d", "node-b"], None, &bin).expect("topology");
    let [c0, c1] = sdnfwd::netns::two_cores("service through tun0");
    for (node, core) in [("node-d", c0), ("node-b", c1)] {
        t.start(node, &["--cores", &core.to_string(), "--sdn-version", "4.13", "--pmd-maxsleep-us", "200"])
            .expect(node);
        let log = t.log(node);
        assert!(log.contains("host translations: connections from tun0 adopt the kernel's service DNAT"), "{log}");
    }
    const SVC: &str = "172.30.12.34";
    for node in ["node-d", "node-b"] {
        t.kube_proxy_rules(node, SVC, 8080, DB1).unwrap_or_else(|e| {
            panic!("iptables (the `iptables` package, nf_tables or xtables NAT in the kernel): {e}")
        });
    }
    let (web1, db1, web2) = (
        t.pod("project-a/web-1").unwrap().to_string(),
        t.pod("project-a/db-1").unwrap().to_string(),
        t.pod("project-a/web-2").unwrap().to_string(),
    );
    // Pod to pod first (the 4.13 tables work at all).
    t.tcp(&web1, &db1, DB1, 7100).expect("web-1 → db-1 directly");
    if let Err(e) = t.tcp(&web1, &db1, SVC, 8080) {
        panic!("web-1 → web's service address → db-1, on node-d: {e}\n{}", diagnose(&t, "node-d"));
    }
    let dump = t.ctl("node-d", &["dump-conntrack"]).unwrap();
    assert!(
        dump.lines().any(|l| l.starts_with(&format!("tcp,orig=(src={WEB1},dst={SVC},"))
            && l.contains(&format!("reply=(src={DB1},dst={WEB1},sport=8080,"))),
        "the connection has the kernel's keys:\n{dump}"
    );
    let stats = t.ctl("node-d", &["ct-stats"]).unwrap();
    assert!(stats.contains("  adopted from the host: 1\n"), "{stats}");
    let pmd = t.ctl("node-d", &["pmd-stats"]).unwrap();
    assert!(pmd.contains("held for the host's translation: 1 (0 not answered in time"), "{pmd}");
    // Across nodes: the client's node adopts; the reply comes back over VXLAN.
    if let Err(e) = t.tcp(&web2, &db1, SVC, 8080) {
        panic!("web-2 on node-b → the service → db-1 on node-d: {e}\n{}", diagnose(&t, "node-b"));
    }
    let dump = t.ctl("node-b", &["dump-conntrack"]).unwrap();
    assert!(dump.contains(&format!("orig=(src=10.129.0.7,dst={SVC},")), "{dump}");
}
