//! The node agent's protocols against Open vSwitch's own programs
//! (Debian's `openvswitch-switch`): ovsdb-server started under a temp dir
//! with the standard schema, the commands the OpenShift SDN daemon runs
//! (`ovs-vsctl`, as openshift/sdn's pkg/util/ovs writes them) read back
//! through the monitor, ofports and `cur_cfg` written as ovs-vswitchd
//! writes them (so `ovs-vsctl` without `--no-wait` returns and `get
//! Interface X ofport` answers), and `ovs-appctl` against the unixctl
//! server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use node::bridge::openshift_sdn;
use node::ovsdb::{self, assign_ofports, switch, write_back, Client, Db, DB, MONITORED};
use node::testdp::TestDatapath;
use node::unixctl::{Commands, Server};

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// ovsdb-server on a fresh database in `dir`; killed when dropped.
struct OvsdbServer {
    child: Child,
    sock: PathBuf,
}

impl OvsdbServer {
    fn start(dir: &Path) -> OvsdbServer {
        assert!(
            Path::new(SCHEMA).exists(),
            "{SCHEMA} missing: the test needs Debian's openvswitch-switch (CI installs it)"
        );
        let db = dir.join("conf.db");
        let st =
            Command::new("ovsdb-tool").args(["create", db.to_str().unwrap(), SCHEMA]).status().expect("ovsdb-tool");
        assert!(st.success());
        let sock = dir.join("db.sock");
        let child = Command::new("ovsdb-server")
            .arg(&db)
            .arg(format!("--remote=punix:{}", sock.display()))
            .arg(format!("--unixctl={}", dir.join("ovsdb-server.ctl").display()))
            .arg("--no-chdir")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ovsdb-server");
        let end = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(Instant::now() < end, "ovsdb-server did not make {}", sock.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        OvsdbServer { child, sock }
    }

    fn vsctl(&self, args: &[&str]) -> Result<String, String> {
        let o = Command::new("ovs-vsctl")
            .arg(format!("--db=unix:{}", self.sock.display()))
            .arg("--timeout=10")
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).into_owned())
        }
    }
}

impl Drop for OvsdbServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What ovs-vswitchd does with the database, reduced to the database: the
/// monitored replica, ofports assigned and written back with `cur_cfg`,
/// until `stop`. Returns the last replica and the warnings.
fn switch_loop(sock: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(Db, Vec<String>)> {
    std::thread::spawn(move || {
        let mut c = Client::connect(&format!("unix:{}", sock.display())).expect("connect");
        let version = c.check_schema(DB).expect("schema");
        assert!(version.starts_with("8."), "{version}");
        let mut db = Db::default();
        db.apply(&c.monitor(DB, "sdnfwd", MONITORED).expect("monitor")).expect("initial state");
        let mut prev: BTreeMap<String, i64> = BTreeMap::new();
        let mut warnings = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if let Ok(sw) = switch(&db) {
                let mut all = BTreeMap::new();
                for b in &sw.bridges {
                    let (a, w) = assign_ofports(b, &prev);
                    warnings.extend(w);
                    for i in b.ports.iter().flat_map(|p| &p.interfaces) {
                        if let Some(Ok(n)) = a.get(&i.uuid) {
                            prev.insert(i.name.clone(), *n);
                        }
                    }
                    all.extend(a);
                }
                let ops = write_back(&sw, &all);
                if !ops.is_empty() {
                    c.transact(DB, ops).expect("write back");
                }
            }
            if let Some(u) = c.next_update(Duration::from_millis(100)).expect("update") {
                db.apply(&u).expect("apply");
            }
        }
        (db, warnings)
    })
}

#[test]
fn openshift_sdn_commands_through_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let srv = OvsdbServer::start(dir.path());
    srv.vsctl(&["--no-wait", "init"]).unwrap();
    // Before any switch runs: the setup as openshift-sdn writes it.
    let no_wait = |args: &[&'static str]| [&["--no-wait"], args].concat();
    srv.vsctl(&no_wait(openshift_sdn::ADD_BR0)).unwrap();
    srv.vsctl(&no_wait(openshift_sdn::ADD_VXLAN0)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let h = switch_loop(srv.sock.clone(), stop.clone());
    // With a switch running, ovs-vsctl waits for cur_cfg and returns.
    let t0 = Instant::now();
    srv.vsctl(openshift_sdn::ADD_TUN0).expect("ovs-vsctl returns once the switch has applied the change");
    assert!(t0.elapsed() < Duration::from_secs(5));
    for (i, veth) in ["veth-a", "veth-b", "veth-c"].iter().enumerate() {
        let req = format!("ofport_request={}", if i == 2 { 3 } else { 3 + i });
        srv.vsctl(&["--may-exist", "add-port", "br0", veth, "--", "set", "Interface", veth, &req]).unwrap();
    }
    let get = |i: &str| srv.vsctl(&["get", "Interface", i, "ofport"]).unwrap();
    assert_eq!(
        [get("vxlan0"), get("tun0"), get("veth-a"), get("veth-b"), get("veth-c")],
        ["1", "2", "3", "4", "5"],
        "veth-c asked for veth-a's 3 and got the lowest free number"
    );
    assert_eq!(get("br0"), "65534");
    // An interface sdnfwd cannot serve: ofport -1 and the reason.
    srv.vsctl(&["add-port", "br0", "gen0", "--", "set", "Interface", "gen0", "type=geneve", "options:remote_ip=flow"])
        .unwrap();
    assert_eq!(get("gen0"), "-1");
    let err = srv.vsctl(&["get", "Interface", "gen0", "error"]).unwrap();
    assert!(err.contains("interface type `geneve` is not supported"), "{err}");
    // del-port frees the number; the next port takes it.
    srv.vsctl(&["del-port", "br0", "veth-b"]).unwrap();
    srv.vsctl(&["add-port", "br0", "veth-d"]).unwrap();
    assert_eq!(get("veth-d"), "4");
    stop.store(true, Ordering::Relaxed);
    let (db, warnings) = h.join().unwrap();
    let sw = switch(&db).unwrap();
    assert_eq!(sw.cur_cfg, sw.next_cfg);
    let br = &sw.bridges[0];
    assert_eq!((br.fail_mode.as_deref(), &br.protocols[..]), (Some("secure"), &["OpenFlow13".to_string()][..]));
    let vx = br.ports.iter().find(|p| p.name == "vxlan0").unwrap();
    assert_eq!(vx.interfaces[0].options.get("dst_port").map(String::as_str), Some("4789"));
    assert!(
        warnings.iter().any(|w| w.contains("veth-c: ofport_request=3 is veth-a's port number; it gets 5")),
        "{warnings:?}"
    );
}

#[test]
fn an_unknown_schema_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let srv = OvsdbServer::start(dir.path());
    let mut c = Client::connect(&format!("unix:{}", srv.sock.display())).unwrap();
    assert!(c.check_schema("Nope").unwrap_err().contains("refused `get_schema`"));
    assert!(Client::connect("tcp:127.0.0.1:6640").err().unwrap().contains("only unix: sockets"));
    let e = c.transact(DB, vec![serde_json::json!({"op": "insert", "table": "NoSuchTable", "row": {}})]).unwrap_err();
    assert!(e.contains("operation 1"), "{e}");
    let _ = ovsdb::SCHEMA_MAJORS;
}

/// The real `ovs-appctl -t SOCKET ARGS...`: exit code, stdout, stderr.
fn appctl(sock: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new("ovs-appctl").arg("-t").arg(sock).args(args).output().expect("ovs-appctl");
    (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn ovs_appctl_talks_to_the_unixctl_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ovs-vswitchd.4242.ctl");
    let server = Server::bind(&path).unwrap();
    let mut cmds = Commands::default();
    cmds.register("version", "", 0, 0, Box::new(|_| Ok("ovs-vswitchd (sdnfwd) 0.1.0\n".into())));
    cmds.register("dpif/show", "", 0, 0, Box::new(|_| Ok("netdev@ovs-netdev: hit:0 missed:0\n".into())));
    cmds.register("vlog/set", "[SPEC]", 0, 1, Box::new(|a| Err(format!("no such module: {}", a.join(" ")))));
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let h = std::thread::spawn(move || {
        server.serve(&cmds, &s2);
        drop(server);
    });
    let appctl = |args: &[&str]| appctl(&path, args);
    assert_eq!(appctl(&["version"]), (Some(0), "ovs-vswitchd (sdnfwd) 0.1.0\n".into(), String::new()));
    assert_eq!(appctl(&["dpif/show"]).1, "netdev@ovs-netdev: hit:0 missed:0\n");
    let (code, _, err) = appctl(&["vlog/set", "foo:dbg"]);
    assert_eq!(code, Some(2));
    assert_eq!(err, format!("no such module: foo:dbg\novs-appctl: {}: server returned an error\n", path.display()));
    let (code, _, err) = appctl(&["ofproto/bogus"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("\"ofproto/bogus\" is not a valid command"), "{err}");
    let (_, out, _) = appctl(&["list-commands"]);
    assert!(out.starts_with("The available commands are:\n") && out.contains("  dpif/show"), "{out}");
    // A client sending junk is disconnected; the server still answers.
    {
        use std::io::Write;
        let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
        s.write_all(b"}}} not json").unwrap();
    }
    assert_eq!(appctl(&["version"]).0, Some(0));
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    assert!(!path.exists(), "the socket file goes with the server");
}

/// ovs-vswitchd's commands (node/src/appctl.rs) on an in-memory datapath,
/// asked by the real `ovs-appctl` as an operator or openshift-sdn asks
/// them.
#[test]
fn ovs_appctl_commands_answered_from_the_datapath() {
    let flows = "table=0,priority=100,ip,in_port=3,nw_dst=10.128.0.4,actions=goto_table:20\n\
                 table=20,priority=100,ip,nw_dst=10.128.0.4,actions=set_field:0a:58:0a:80:00:04->eth_dst,output:4\n\
                 table=0,priority=0,actions=drop\n";
    let dp = TestDatapath::start(flows, &[(3, "veth-a"), (4, "veth-b")], 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ovs-vswitchd.4243.ctl");
    let server = Server::bind(&path).unwrap();
    let bridge = Arc::new(std::sync::Mutex::new(Some("br0".to_string())));
    let exit = Arc::new(AtomicBool::new(false));
    let mut cmds = Commands::default();
    node::appctl::register(&mut cmds, dp.control.clone(), bridge, exit.clone());
    let s2 = exit.clone();
    let h = std::thread::spawn(move || server.serve(&cmds, &s2));
    let ok = |args: &[&str]| {
        let (code, out, err) = appctl(&path, args);
        assert_eq!((code, err.as_str()), (Some(0), ""), "ovs-appctl {args:?}");
        out
    };
    assert_eq!(ok(&["version"]), "ovs-vswitchd (sdnfwd) 0.1.0\n");
    let t = ok(&["ofproto/trace", "br0", "in_port=3,icmp,nw_src=10.128.0.3,nw_dst=10.128.0.4"]);
    // What ovs-vswitchd 3.1 prints for the same flows (userspace datapath,
    // dummy ports), but for the megaflow (OVS also matches the dl_dst that
    // set_field writes, and nw_frag) and the datapath's port number (OVS
    // numbers the datapath's ports apart from OpenFlow's).
    let flow = "in_port=3,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,";
    assert_eq!(
        t,
        format!(
            "Flow: icmp,{flow}dl_dst=00:00:00:00:00:00,nw_src=10.128.0.3,nw_dst=10.128.0.4,nw_tos=0,nw_ecn=0,\
             nw_ttl=0,nw_frag=no,icmp_type=0,icmp_code=0\n\n\
             bridge(\"br0\")\n-------------\n 0. ip,in_port=3,nw_dst=10.128.0.4, priority 100\n    goto_table:20\n\
             20. ip,nw_dst=10.128.0.4, priority 100\n    set_field:0a:58:0a:80:00:04->eth_dst\n    output:4\n\n\
             Final flow: icmp,{flow}dl_dst=0a:58:0a:80:00:04,nw_src=10.128.0.3,nw_dst=10.128.0.4,nw_tos=0,nw_ecn=0,\
             nw_ttl=0,nw_frag=no,icmp_type=0,icmp_code=0\n\
             Megaflow: recirc_id=0,eth,ip,in_port=3,nw_dst=10.128.0.4\n\
             Datapath actions: set(eth(dst=0a:58:0a:80:00:04)),4\n"
        )
    );
    let (code, _, err) = appctl(&path, &["ofproto/trace", "br1", "in_port=3"]);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("br1: unknown bridge\n"), "{err}");
    assert_eq!(
        ok(&["dpif/show"]),
        "netdev@ovs-netdev: hit:0 missed:0\n  br0:\n    veth-a 3/3: (system)\n    veth-b 4/4: (system)\n"
    );
    let frame =
        fastpath::wire::build_frame(0x0a58_0a80_0003, 0x0a58_0a80_0001, 0x0a80_0003, 0x0a80_0004, 17, 5000, 53, 64);
    dp.receive(3, frame.clone());
    assert!(dp.sent(4).is_some());
    dp.receive(3, frame);
    assert!(dp.sent(4).is_some());
    let f = ok(&["dpif/dump-flows", "br0"]);
    assert!(f.starts_with("recirc_id(0),in_port(3),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(dst=10.128.0.4), packets:2, bytes:128, used:"), "{f}");
    assert!(f.ends_with("s, actions:set(eth(dst=0a:58:0a:80:00:04)),4\n"), "{f}");
    assert_eq!(
        appctl(&path, &["dpif/dump-flows", "br1"]).2,
        format!("no such bridge\novs-appctl: {}: server returned an error\n", path.display())
    );
    assert!(ok(&["dpif/show"]).starts_with("netdev@ovs-netdev: hit:1 missed:1\n"));
    let stats = ok(&["dpif-netdev/pmd-stats-show"]);
    assert!(stats.starts_with("pmd thread ") && stats.contains("core_id 0:\n  packets received: 2\n  packet recirculations: 0\n  avg. datapath passes per packet: 1.00\n"), "{stats}");
    assert!(
        stats.contains(
            "\n  miss with success upcall: 1\n  miss with failed upcall: 0\n  avg. packets per output batch: 0.00\n"
        ),
        "{stats}"
    );
    assert_eq!(ok(&["dpif-netdev/pmd-stats-clear"]), "");
    assert!(ok(&["dpif-netdev/pmd-stats-show"]).contains("  packets received: 0\n"));
    assert_eq!(ok(&["dpctl/dump-conntrack"]), "");
    assert_eq!(ok(&["dpctl/flush-conntrack", "zone=1"]), "");
    assert_eq!(ok(&["vlog/set", "ANY:ANY:info"]), "");
    let (code, _, err) = appctl(&path, &["vlog/set", "bridge:dbg"]);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("no destination, level, or module \"bridge\"\n"), "{err}");
    assert!(ok(&["vlog/list"]).ends_with("\nsdnfwd            INFO       INFO       INFO\n"));
    let cmds_list = ok(&["list-commands"]);
    assert!(cmds_list.contains("  ofproto/trace           {[dp_name] odp_flow | bridge br_flow}"), "{cmds_list}");
    assert_eq!(ok(&["exit", "--cleanup"]), "");
    assert!(exit.load(Ordering::Relaxed), "exit sets the vswitchd's flag");
    h.join().unwrap();
}
