//! The OpenFlow listener against the real client: Debian's `ovs-ofctl`
//! programs and reads sdnfwd's tables over TCP and over a unix socket, and
//! the same commands go to Open vSwitch (userspace datapath under a temp
//! dir, the oracle). After every command both dumps must be the same flows
//! (durations aside): add-flows of the rendered table and of seed 001,
//! mod-flows and del-flows strict and not, with cookie masks, a flow
//! refused by both; plain `ovs-ofctl dump-flows` (OpenFlow 1.0) reads the
//! same. dump-tables, dump-ports, dump-ports-desc, dump-aggregate and show
//! answer. Groups and conntrack: add-groups (openshift-sdn's egress
//! groups, all, indirect and fast-failover ones), add-flows of ct-mode
//! flows naming them, mod-group, mod-flows, del-groups one and all:
//! dump-groups, dump-flows and dump-group-stats (durations aside, and a
//! select group's per-bucket counters, which sdnfwd does not keep) read as
//! OVS's after each; a flow naming a missing group, a mod-group of a
//! missing group and an add-group of an existing one get OVS's OpenFlow
//! errors. Bundles all or nothing (and atomic under traffic on a running
//! node), timeouts with FLOW_REMOVED seen by `ovs-ofctl monitor`, readable
//! errors for what is not supported, junk and silent connections closed,
//! and tools/ofctl-diff.sh finding no difference from OVS.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::ovs::Ovs;
use config::yaml::Cluster;
use slowpath::openflow::{Listener, PortDesc, Switch, TableSwitch};
use slowpath::Ofproto;

/// Runs ovs-ofctl; (success, stdout, stderr).
fn ofctl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("ovs-ofctl").args(args).output().unwrap_or_else(|e| {
        panic!("cannot run ovs-ofctl ({e}): install Open vSwitch (apt-get install openvswitch-switch); .ci/run does")
    });
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (ok, out, err) = ofctl(args);
    assert!(ok, "ovs-ofctl {args:?} failed: {out}{err}");
    out
}

use common::flows_without_durations as flows;

fn serve(target: &str, ports: Vec<PortDesc>) -> (String, Arc<TableSwitch>) {
    let l = Listener::bind(target).unwrap();
    let client = l.client_target();
    let sw = Arc::new(TableSwitch::new(Ofproto::new(), ports));
    let s: Arc<dyn Switch> = sw.clone();
    std::thread::spawn(move || l.serve(s));
    (client, sw)
}

fn pod_ports() -> Vec<PortDesc> {
    let mut v = vec![
        PortDesc { port_no: 1, name: "vxlan0".into(), up: true, ..Default::default() },
        PortDesc {
            port_no: 2,
            name: "tun0".into(),
            mac: 0x0a58_0a83_0001,
            up: true,
            rx_packets: 7,
            ..Default::default()
        },
    ];
    for p in 3..=6 {
        v.push(PortDesc { port_no: p, name: format!("veth{p}"), up: p != 6, ..Default::default() });
    }
    v
}

#[test]
fn ovs_ofctl_programs_sdnfwd_as_it_programs_ovs() {
    let (target, sw) = serve("ptcp:0:127.0.0.1", pod_ports());
    let ovs = Ovs::start(&[3, 4, 5, 6]);
    let br0 = format!("unix:{}", ovs.dir().join("br0.mgmt").display());
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let c = Cluster::default_cluster();
    let rendered = config::render::render(&c, "node-d").unwrap();
    let text = config::ofctl::flow_file(&rendered.flows);
    let seed_flows: Vec<config::ofctl::FlowSpec> = config::ofctl::parse_flow_file(include_str!("data/seed001.dump"))
        .unwrap()
        .into_iter()
        .map(|(_, c)| match c {
            config::ofctl::FlowCommand::Add(f) => f,
            other => panic!("{other:?}"),
        })
        .collect();
    let seed = config::ofctl::flow_file(&seed_flows);
    let extra = "table=70, priority=200, cookie=0xabc, ip, nw_dst=10.131.0.9, actions=load:0x7->NXM_NX_REG1[],load:0x9->NXM_NX_REG2[],goto_table:80\n\
                 table=70, priority=201, cookie=0xabd, tcp, nw_dst=10.131.0.9, tp_dst=80, actions=drop\n\
                 table=21, priority=300, cookie=0xabc, udp, nw_src=10.131.0.0/24, tp_src=0x1000/0xf000, actions=note:de.ad.be.ef,goto_table:30\n";
    let steps: Vec<Vec<String>> = vec![
        vec!["add-flows".into(), file("rendered.flows", &text)],
        vec!["add-flows".into(), file("extra.flows", extra)],
        vec!["mod-flows".into(), "table=70, cookie=0xabc/-1, ip, nw_dst=10.131.0.9, actions=output:5".into()],
        vec!["mod-flows".into(), "--strict".into(), "table=70, priority=201, tcp, nw_dst=10.131.0.9, tp_dst=80, actions=output:6".into()],
        vec!["del-flows".into(), "cookie=0xabd/-1".into()],
        vec!["del-flows".into(), "--strict".into(), "table=21, priority=300, udp, nw_src=10.131.0.0/24, tp_src=0x1000/0xf000".into()],
        vec!["del-flows".into(), "table=70".into()],
        vec!["del-flows".into(), "ip, nw_dst=10.129.0.0/23".into()],
        vec!["add-flow".into(), "table=70, priority=100, ip, nw_dst=10.131.0.4, actions=load:0x2->NXM_NX_REG1[],load:0x5->NXM_NX_REG2[],goto_table:80".into()],
        vec!["del-flows".into()],
        vec!["add-flows".into(), file("seed.flows", &seed)],
    ];
    for step in &steps {
        let mut a: Vec<&str> = vec!["-O", "OpenFlow13", &step[0]];
        let (ours, theirs) = (target.as_str(), br0.as_str());
        let mut b = a.clone();
        a.push(ours);
        b.push(theirs);
        for s in &step[1..] {
            if s.starts_with("--") {
                a.insert(2, s);
                b.insert(2, s);
            } else {
                a.push(s);
                b.push(s);
            }
        }
        ok(&a);
        ok(&b);
        let mine = flows(&ok(&["-O", "OpenFlow13", "dump-flows", ours]));
        let oracle = flows(&ok(&["-O", "OpenFlow13", "dump-flows", theirs]));
        assert_eq!(mine, oracle, "after {step:?}");
        assert_eq!(mine.len(), sw.ofproto.lock().unwrap().n_rules(), "after {step:?}");
    }
    assert_eq!(sw.ofproto.lock().unwrap().n_rules(), 65);
    // Filters: a table, a match. (A cookie filter would show OVS's hidden
    // table 254, which sdnfwd does not have.)
    for filter in ["table=0", "table=70", "ip,nw_dst=10.128.0.0/14", "arp"] {
        let mine = flows(&ok(&["-O", "OpenFlow13", "dump-flows", &target, filter]));
        let oracle = flows(&ok(&["-O", "OpenFlow13", "dump-flows", &br0, filter]));
        assert!(!mine.is_empty());
        assert_eq!(mine, oracle, "dump-flows {filter}");
    }
    let agg = ok(&["-O", "OpenFlow13", "dump-aggregate", &target]);
    assert!(agg.contains("flow_count=65"), "{agg}");

    // Refused with the error OpenFlow owes (ovs-ofctl itself refuses a
    // goto backwards before sending it: codec tests cover that one).
    for (bad, code) in [
        ("table=30, priority=1, actions=exit", "OFPBAC_BAD_VENDOR_TYPE"),
        ("table=30, priority=1, ip, actions=dec_ttl", "OFPBAC_BAD_TYPE"),
        ("table=30, priority=1, actions=CONTROLLER:65535", "OFPBAC_BAD_OUT_PORT"),
        ("table=30, priority=1, ip, actions=write_actions(output:3)", "OFPBIC_UNSUP_INST"),
        ("table=30, priority=1, dl_vlan=5, actions=drop", "OFPBMC_BAD_FIELD"),
    ] {
        let (ok_ours, _, err_ours) = ofctl(&["-O", "OpenFlow13", "add-flow", &target, bad]);
        assert!(!ok_ours && err_ours.contains(code), "{bad}: {err_ours}");
    }
    assert_eq!(sw.ofproto.lock().unwrap().n_rules(), 65, "a refused flow changed the tables");

    // The other requests.
    let tables = ok(&["-O", "OpenFlow13", "dump-tables", &target]);
    assert!(tables.contains("OFPST_TABLE reply (OF1.3)") && tables.contains("active="), "{tables}");
    let ports = ok(&["-O", "OpenFlow13", "dump-ports", &target]);
    assert!(ports.contains("port  2: rx pkts=7"), "{ports}");
    let desc = ok(&["-O", "OpenFlow13", "dump-ports-desc", &target]);
    assert!(desc.contains("(tun0)") && desc.contains("0a:58:0a:83:00:01") && desc.contains("LINK_DOWN"), "{desc}");
    let show = ok(&["-O", "OpenFlow13", "show", &target]);
    assert!(
        show.contains("OFPT_FEATURES_REPLY (OF1.3)") && show.contains("n_tables:254") && show.contains("(vxlan0)"),
        "{show}"
    );
    // Plain ovs-ofctl offers OpenFlow 1.0 only (NXST_FLOW with NXM
    // matches): the same flows as OVS's, as 1.0 prints them.
    for filter in [None, Some("table=70"), Some("ip,nw_dst=10.128.0.0/14")] {
        let mut a = vec!["dump-flows", target.as_str()];
        let mut b = vec!["dump-flows", br0.as_str()];
        a.extend(filter);
        b.extend(filter);
        let mine = ok(&a);
        assert!(mine.starts_with("NXST_FLOW reply"), "{mine}");
        assert_eq!(flows(&mine), flows(&ok(&b)), "dump-flows {filter:?} over OpenFlow 1.0");
    }
    let show10 = ok(&["show", &target]);
    assert!(show10.contains("OFPT_FEATURES_REPLY (xid=") && show10.contains("(vxlan0)"), "{show10}");
}

#[test]
fn ovs_ofctl_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("br0.mgmt");
    let (target, sw) = serve(&format!("punix:{}", path.display()), pod_ports());
    assert_eq!(target, format!("unix:{}", path.display()));
    let flows_file = dir.path().join("f");
    std::fs::write(
        &flows_file,
        "table=0, priority=100, in_port=3, actions=goto_table:20\ntable=20, priority=0, actions=drop\n",
    )
    .unwrap();
    ok(&["-O", "OpenFlow13", "add-flows", &target, &flows_file.to_string_lossy()]);
    let d = ok(&["-O", "OpenFlow13", "dump-flows", &target]);
    assert_eq!(
        flows(&d),
        vec![
            " cookie=0x0, table=0, n_packets=0, n_bytes=0, priority=100,in_port=3 actions=goto_table:20",
            " cookie=0x0, table=20, n_packets=0, n_bytes=0, priority=0 actions=drop",
        ]
    );
    // Counters as the datapath credits them show in the dump.
    sw.ofproto.lock().unwrap().rules(Some(0))[0].credit(3, 294);
    let d = ok(&["-O", "OpenFlow13", "dump-flows", &target, "table=0"]);
    assert!(d.contains("n_packets=3, n_bytes=294,"), "{d}");
    ok(&["-O", "OpenFlow13", "del-flows", &target]);
    assert_eq!(sw.ofproto.lock().unwrap().n_rules(), 0);
    assert!(flows(&ok(&["-O", "OpenFlow13", "dump-flows", &target])).is_empty());
}

/// openshift-sdn's egress groups (a select group of tunnel buckets, a
/// single-bucket local one that marks the packet for the egress IP) and
/// an all, an indirect and a fast-failover group.
const GROUPS: &str = "\
group_id=11235,type=select,bucket=actions=move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31],set_field:172.16.1.16->tun_dst,output:1,bucket=actions=move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31],set_field:172.16.1.22->tun_dst,output:1,bucket=weight:50,actions=move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31],set_field:172.16.1.30->tun_dst,output:1
group_id=58132,type=select,bucket=actions=set_field:6e:2f:91:0c:55:a7->eth_dst,set_field:0x1003e3e->pkt_mark,output:2
group_id=4,type=all,bucket=actions=output:3,bucket=actions=output:4
group_id=7,type=indirect,bucket=actions=ct(commit,table=3)
group_id=9,type=ff,bucket=watch_port:5,actions=output:5,bucket=watch_port:6,watch_group:4,actions=output:6
";

/// openshift-sdn's ct-mode flows (§5, §8.8, §9) and the other conntrack
/// matches and actions, some naming the groups above.
const CT_FLOWS: &str = "\
table=0, priority=1000, ip, ct_state=-trk, actions=ct(table=0)
table=0, priority=300, ip, ct_state=+trk+est, actions=goto_table:30
table=21, priority=200, ip, nw_dst=10.128.0.0/14, ct_state=-rpl, actions=ct(commit,nat(src=0.0.0.0),table=30)
table=25, priority=100, ip, actions=ct(commit,table=30)
table=30, priority=300, ip, nw_dst=10.131.0.0/23, ct_state=+rpl, actions=ct(nat,table=70)
table=30, priority=200, ip, ct_mark=0x1/0x1, actions=goto_table:40
table=40, priority=100, ip, ct_label=0x100000000000000000/0xff00000000000000ff, actions=drop
table=40, priority=90, ip, ct_state=+trk+new, actions=ct(commit,zone=NXM_NX_REG0[0..15],exec(set_field:0x1->ct_mark))
table=50, priority=10, tcp, ct_state=+est+trk, ct_nw_proto=6, ct_tp_dst=80, actions=ct(commit,exec(set_field:0x5/0xff->ct_label,load:0x3->NXM_NX_CT_MARK[4..5])),output:3
table=50, priority=5, ip, ct_state=+trk+est, ct_zone=3, ct_nw_src=10.0.0.0/24, actions=move:NXM_NX_CT_MARK[]->NXM_NX_REG0[],goto_table:51
table=60, priority=5, ip, actions=ct(commit,nat(dst=172.30.0.10:8080),exec(set_field:0x1234->ct_label),table=70)
table=80, priority=200, ip, ct_state=+rpl, actions=output:NXM_NX_REG2[]
table=101, priority=100, ip, reg0=11235, actions=ct(commit),group:11235
table=101, priority=100, ip, reg0=58132, actions=group:58132
table=101, priority=90, ip, reg0=7, actions=group:7
table=101, priority=80, ip, actions=ct_clear,group:4
table=101, priority=70, ip, reg0=9, actions=group:9
";

/// `dump-groups`' group lines, sorted (OVS dumps in hash order).
fn groups(dump: &str) -> Vec<String> {
    let mut v: Vec<String> = dump.lines().filter(|l| l.starts_with(" group_id=")).map(String::from).collect();
    v.sort();
    v
}

/// `dump-group-stats`' lines without durations, sorted; for a select
/// group without its buckets' counters (which bucket a packet took is not
/// something sdnfwd records).
fn group_stats(dump: &str, select: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = dump
        .lines()
        .filter(|l| l.starts_with(" group_id="))
        .map(|l| {
            let mut l = l.split(',').filter(|p| !p.starts_with("duration=")).collect::<Vec<_>>().join(",");
            if select.iter().any(|g| l.starts_with(&format!(" group_id={g},"))) {
                l.truncate(l.find(",bucket0:").unwrap_or(l.len()));
            }
            l
        })
        .collect();
    v.sort();
    v
}

/// The OpenFlow error `ovs-ofctl` reports for a refused command.
fn ofp_error(stderr: &str) -> String {
    let at = stderr.find("OFPT_ERROR").unwrap_or_else(|| panic!("no OpenFlow error in {stderr}"));
    stderr[at..].lines().next().unwrap().rsplit(' ').next().unwrap().to_string()
}

#[test]
fn ovs_ofctl_groups_and_ct_flows_as_ovs() {
    let (target, sw) = serve("ptcp:0:127.0.0.1", pod_ports());
    let ovs = Ovs::start(&[3, 4, 5, 6]);
    let br0 = format!("unix:{}", ovs.dir().join("br0.mgmt").display());
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let both = |args: &[&str]| {
        for sw in [target.as_str(), br0.as_str()] {
            let mut a = vec!["-O", "OpenFlow13", args[0], sw];
            a.extend_from_slice(&args[1..]);
            ok(&a);
        }
    };
    let compare = |after: &str| {
        let dump = |sw: &str, what| ok(&["-O", "OpenFlow13", what, sw]);
        let (mine, oracle) = (groups(&dump(&target, "dump-groups")), groups(&dump(&br0, "dump-groups")));
        assert_eq!(mine, oracle, "dump-groups after {after}");
        let (fm, fo) = (flows(&dump(&target, "dump-flows")), flows(&dump(&br0, "dump-flows")));
        assert_eq!(fm, fo, "dump-flows after {after}");
        let select: Vec<&str> = ["11235", "58132", "4"].to_vec();
        let (sm, so) = (dump(&target, "dump-group-stats"), dump(&br0, "dump-group-stats"));
        assert_eq!(group_stats(&sm, &select), group_stats(&so, &select), "dump-group-stats after {after}");
        (mine.len(), fm.len())
    };
    both(&["add-groups", &file("groups", GROUPS)]);
    assert_eq!(compare("add-groups"), (5, 0));
    both(&["add-flows", &file("flows", CT_FLOWS)]);
    assert_eq!(compare("add-flows"), (5, 17));
    both(&["mod-group", "group_id=11235,type=select,bucket=actions=move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31],set_field:172.16.1.22->tun_dst,output:1,bucket=weight:2,actions=move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31],set_field:172.16.1.30->tun_dst,output:1"]);
    both(&["mod-group", "group_id=4,type=select,bucket=weight:7,actions=output:3,bucket=actions=output:4"]);
    both(&[
        "mod-group",
        "group_id=7,type=indirect,bucket=actions=ct(commit,zone=5,exec(set_field:0x2->ct_mark)),output:5",
    ]);
    assert_eq!(compare("mod-group"), (5, 17));
    both(&["mod-flows", "table=101, ip, reg0=7, actions=ct_clear,group:9"]);
    both(&["add-flow", "table=101, priority=60, ip, reg0=8, actions=ct(commit,table=102),group:4"]);
    assert_eq!(compare("mod-flows, add-flow"), (5, 18));
    // A deleted group takes the flows that name it.
    both(&["del-groups", "group_id=58132"]);
    assert_eq!(compare("del-groups group_id=58132"), (4, 17));
    assert_eq!(sw.ofproto.lock().unwrap().n_rules(), 17);

    // Refused by both with the same OpenFlow error, nothing changed.
    for (cmd, arg, code) in [
        ("add-flow", "table=101, priority=50, ip, actions=group:99", "OFPBAC_BAD_OUT_GROUP"),
        ("add-flow", "table=101, priority=50, ip, actions=ct(commit),group:58132", "OFPBAC_BAD_OUT_GROUP"),
        ("mod-group", "group_id=99,type=all,bucket=actions=output:1", "OFPGMFC_UNKNOWN_GROUP"),
        ("add-group", "group_id=4,type=all,bucket=actions=output:1", "OFPGMFC_GROUP_EXISTS"),
    ] {
        let (ok_ours, _, err_ours) = ofctl(&["-O", "OpenFlow13", cmd, &target, arg]);
        let (ok_ovs, _, err_ovs) = ofctl(&["-O", "OpenFlow13", cmd, &br0, arg]);
        assert!(!ok_ours && !ok_ovs, "{cmd} {arg}: accepted");
        assert_eq!((ofp_error(&err_ours), ofp_error(&err_ovs)), (code.to_string(), code.to_string()), "{cmd} {arg}");
    }
    assert_eq!(compare("refusals"), (4, 17));
    // Where sdnfwd departs: a bucket naming a group that does not exist.
    // OVS takes it (and the bucket does nothing); sdnfwd refuses it as it
    // refuses a flow naming one.
    let chained = "group_id=20,type=all,bucket=actions=group:99";
    let (ok_ours, _, err_ours) = ofctl(&["-O", "OpenFlow13", "add-group", &target, chained]);
    assert!(!ok_ours && ofp_error(&err_ours) == "OFPBAC_BAD_OUT_GROUP", "{err_ours}");
    ok(&["-O", "OpenFlow13", "add-group", &br0, chained]);
    ok(&["-O", "OpenFlow13", "del-groups", &br0, "group_id=20"]);

    // Counters: a group reports the flows that name it (two name group 9,
    // 5 packets each; a fast-failover group runs its first bucket).
    {
        let of = sw.ofproto.lock().unwrap();
        for r in of.rules(Some(101)) {
            if r.spec.actions.contains(&config::ofctl::Action::Group(9)) {
                r.credit(5, 500);
            }
        }
    }
    let st = ok(&["-O", "OpenFlow13", "dump-group-stats", &target]);
    let g9 = st.lines().find(|l| l.starts_with(" group_id=9,")).unwrap();
    assert!(
        g9.ends_with("ref_count=2,packet_count=10,byte_count=1000,bucket0:packet_count=10,byte_count=1000,bucket1:packet_count=0,byte_count=0"),
        "{g9}"
    );
    let one = ok(&["-O", "OpenFlow13", "dump-group-stats", &target, "group_id=7"]);
    assert_eq!(one.lines().filter(|l| l.starts_with(" group_id=")).count(), 1, "{one}");
    let feat = ok(&["-O", "OpenFlow13", "dump-group-features", &target]);
    assert!(
        feat.contains("Types:  0xf")
            && feat.contains("Capabilities:  0x5")
            && feat.contains("actions: output group set_field"),
        "{feat}"
    );
    let show = ok(&["-O", "OpenFlow13", "show", &target]);
    assert!(show.contains("GROUP_STATS"), "{show}");

    // All groups go, and the flows naming them.
    both(&["del-groups"]);
    assert_eq!(compare("del-groups"), (0, 12));
}

/// Whether ovs-ofctl printed an OpenFlow error by its name (as it does when
/// the error holds the request), not a bare hex dump.
fn readable_error(out: &str) -> bool {
    let named = out.contains("OFPT_ERROR")
        && out
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|w| w.starts_with("OFP") && w.contains('_') && w.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
    let hex = out.lines().any(|l| l.starts_with("00000000  "));
    named && !hex
}

/// Bundles (the ONF extension of OpenFlow 1.3 and OpenFlow 1.4/1.5's),
/// timeouts with FLOW_REMOVED and flow monitors, flags, empty replies and
/// readable errors, all with the real ovs-ofctl.
#[test]
fn ovs_ofctl_bundles_timeouts_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (target, sw) = serve(&format!("punix:{}", dir.path().join("br0.mgmt").display()), pod_ports());
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let n_rules = || sw.ofproto.lock().unwrap().n_rules();
    let dump = || flows(&ok(&["-O", "OpenFlow13", "dump-flows", &target]));
    let a = file(
        "a",
        "table=0, priority=100, ip, actions=goto_table:20\n\
         table=20, priority=10, ip, nw_dst=10.131.0.4, actions=output:4\n\
         table=20, priority=0, actions=drop\n",
    );
    let b = file(
        "b",
        "table=0, priority=100, ip, actions=goto_table:30\n\
         table=30, priority=10, ip, nw_dst=10.131.0.5, actions=output:5\n",
    );
    // A bad last line that only the switch can refuse (no group 99): with
    // --bundle nothing of the file applies.
    let bad = file(
        "bad",
        "table=0, priority=200, arp, actions=drop\n\
         table=40, priority=1, actions=drop\n\
         table=40, priority=2, ip, actions=group:99\n",
    );
    ok(&["-O", "OpenFlow13", "--bundle", "add-flows", &target, &a]);
    assert_eq!(n_rules(), 3);
    let before = dump();
    for v in ["OpenFlow13", "OpenFlow14", "OpenFlow15"] {
        for cmd in ["add-flows", "replace-flows"] {
            let (done, out, err) = ofctl(&["-O", v, "--bundle", cmd, &target, &bad]);
            assert!(!done, "{v} --bundle {cmd}: accepted");
            assert!(err.contains("OFPBAC_BAD_OUT_GROUP") && err.contains("OFPBFC_MSG_FAILED"), "{v} {cmd}: {out}{err}");
            assert_eq!(dump(), before, "{v} --bundle {cmd} with a bad line changed the tables");
        }
    }
    // Without --bundle each flow is its own transaction (as in OVS): the
    // lines before and after the bad one apply.
    let (done, _, err) = ofctl(&["-O", "OpenFlow13", "add-flows", &target, &bad]);
    assert!(!done && err.contains("OFPBAC_BAD_OUT_GROUP"), "{err}");
    assert_eq!(n_rules(), 5);
    // --bundle replace-flows: exactly the new file (diff-flows finds no
    // difference), over the ONF extension and OpenFlow 1.4.
    ok(&["-O", "OpenFlow14", "--bundle", "replace-flows", &target, &b]);
    assert_eq!(ok(&["-O", "OpenFlow14", "diff-flows", &target, &b]), "");
    ok(&["-O", "OpenFlow13", "--bundle", "replace-flows", &target, &a]);
    assert_eq!(ok(&["-O", "OpenFlow13", "diff-flows", &target, &a]), "");
    assert_eq!(dump().len(), 3);

    // hard_timeout=2 with send_flow_rem: gone within 3 s; `ovs-ofctl
    // monitor` (a miss_send_len, so it gets asynchronous messages, and a
    // flow monitor) sees FLOW_REMOVED and the monitor's DELETED event. The
    // idle flow without send_flow_rem goes too, with no FLOW_REMOVED.
    let mon_out = dir.path().join("monitor.out");
    // Its stderr to the same file: ovs-ofctl then writes each message as
    // it comes (with stderr elsewhere its stdout is block-buffered).
    let mon_file = std::fs::File::create(&mon_out).unwrap();
    let mut mon = Command::new("ovs-ofctl")
        .args(["monitor", &target, "65534", "watch:"])
        .env("OVS_RUNDIR", dir.path())
        .stdout(mon_file.try_clone().unwrap())
        .stderr(mon_file)
        .spawn()
        .unwrap();
    let monitor = || std::fs::read_to_string(&mon_out).unwrap_or_default();
    let t = std::time::Instant::now();
    while !monitor().contains("NXST_FLOW_MONITOR reply") {
        assert!(t.elapsed().as_secs() < 10, "the monitor never started: {}", monitor());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ok(&["add-flow", &target, "table=50, priority=1, hard_timeout=2, send_flow_rem, ip, actions=drop"]);
    ok(&["-O", "OpenFlow13", "add-flow", &target, "table=50, priority=2, idle_timeout=1, arp, actions=drop"]);
    let added = std::time::Instant::now();
    assert!(ok(&["dump-flows", &target, "table=50"]).contains("hard_timeout=2,"));
    while dump().len() > 3 {
        assert!(added.elapsed().as_millis() < 3000, "timed flows still there after 3 s: {:?}", dump());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // A delete of a send_flow_rem flow is reported too (reason delete).
    ok(&["-O", "OpenFlow13", "add-flow", &target, "table=51, priority=1, send_flow_rem, udp, actions=drop"]);
    ok(&["-O", "OpenFlow13", "del-flows", &target, "table=51"]);
    let t = std::time::Instant::now();
    while !(monitor().contains("event=DELETED reason=hard") && monitor().contains("reason=delete"))
        && t.elapsed().as_secs() < 5
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = mon.kill();
    let _ = mon.wait();
    let m = monitor();
    assert!(m.contains("OFPT_FLOW_REMOVED (xid=0x0): priority=1,ip reason=hard duration2."), "{m}");
    assert!(m.contains("OFPT_FLOW_REMOVED (xid=0x0): priority=1,udp reason=delete duration"), "{m}");
    assert_eq!(m.matches("OFPT_FLOW_REMOVED").count(), 2, "only the send_flow_rem flows: {m}");
    assert!(m.contains("event=DELETED reason=idle table=50 idle_timeout=1 cookie=0 arp"), "{m}");
    assert!(m.contains("event=DELETED reason=hard table=50 hard_timeout=2 cookie=0 ip"), "{m}");

    // Flags kept and shown, check_overlap refusing, table 254 refused.
    ok(&["-O", "OpenFlow13", "add-flow", &target, "table=60, priority=5, send_flow_rem, ip, actions=drop"]);
    assert!(ok(&["-O", "OpenFlow13", "dump-flows", &target, "table=60"]).contains("send_flow_rem priority=5,ip"));
    for (args, code) in [
        (
            vec!["add-flow", &target, "table=60, priority=5, ip, nw_dst=10.0.0.0/8, check_overlap, actions=drop"],
            "OFPFMFC_OVERLAP",
        ),
        (vec!["add-flow", &target, "table=254, actions=drop"], "OFPBRC_EPERM"),
    ] {
        let (done, out, err) = ofctl(&args);
        assert!(!done && err.contains(code) && readable_error(&err), "{args:?}: {out}{err}");
    }
    let n = n_rules();

    // Empty replies for what sdnfwd has none of.
    let meters = ok(&["-O", "OpenFlow13", "dump-meters", &target]);
    assert!(meters.starts_with("OFPST_METER_CONFIG reply (OF1.3)") && !meters.contains("meter="), "{meters}");
    let queues = ok(&["-O", "OpenFlow13", "queue-stats", &target]);
    assert!(queues.starts_with("OFPST_QUEUE reply (OF1.3)") && queues.contains(": 0 queues"), "{queues}");
    let groups = ok(&["-O", "OpenFlow13", "dump-groups", &target]);
    assert!(groups.starts_with("OFPST_GROUP_DESC reply") && !groups.contains("group_id="), "{groups}");

    // What sdnfwd does not do: each refused with an error ovs-ofctl names
    // (the request decoded under it), never a bare hex dump; nothing
    // changes.
    let pkt = "packet=ffffffffffff000000000001080045000014000100004001f7e40a0000010a000002";
    for (args, code) in [
        (vec!["mod-port", &target, "3", "down"], "OFPBRC_EPERM"),
        (vec!["-O", "OpenFlow13", "add-meter", &target, "meter=1,kbps,band=type=drop,rate=1000"], "OFPBRC_BAD_TYPE"),
        (vec!["-O", "OpenFlow15", "add-group", &target, "group_id=1,type=all,bucket=output:3"], "OFPBRC_BAD_TYPE"),
        (vec!["packet-out", &target, &format!("in_port=3 {pkt} actions=table")], "OFPBRC_EPERM"),
        (
            vec!["-O", "OpenFlow13", "packet-out", &target, &format!("in_port=3 {pkt} actions=output:4,output:5")],
            "OFPBAC_BAD_TYPE",
        ),
        (vec!["-O", "OpenFlow14", "dump-table-desc", &target], "OFPBRC_BAD_STAT"),
        (vec!["-O", "OpenFlow13", "dump-ipfix-bridge", &target], "OFPBRC_BAD_STAT"),
        (vec!["-O", "OpenFlow13", "dump-tlv-map", &target], "OFPBRC_BAD_SUBTYPE"),
        (vec!["-O", "OpenFlow13", "ct-flush-zone", &target, "3"], "OFPBRC_BAD_SUBTYPE"),
    ] {
        let (_, out, err) = ofctl(&args);
        let all = format!("{out}{err}");
        assert!(all.contains(code) && readable_error(&all), "{args:?}: {all}");
    }
    assert_eq!(n_rules(), n);
}

/// A connection that sends junk is closed; one that goes silent is sent
/// ECHO_REQUEST and closed when it does not answer.
#[test]
fn junk_and_silent_connections_are_closed() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let l = Listener::bind("ptcp:0:127.0.0.1").unwrap();
    let addr = l.client_target().trim_start_matches("tcp:").to_string();
    let sw: Arc<dyn Switch> = Arc::new(TableSwitch::new(Ofproto::new(), vec![]));
    std::thread::spawn(move || l.serve_with(sw, Duration::from_millis(300)));
    let connect = || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut hello = [0u8; 8];
        s.read_exact(&mut hello).unwrap();
        assert_eq!(hello[1], 0, "HELLO first");
        let mut rest = vec![0u8; u16::from_be_bytes([hello[2], hello[3]]) as usize - 8];
        s.read_exact(&mut rest).unwrap();
        s
    };
    // Reads until the switch closes; what it sent.
    let drain = |s: &mut std::net::TcpStream| {
        let t = Instant::now();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return (got, t.elapsed()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, t.elapsed()),
                Err(e) => panic!("still open after {:?}: {e}", t.elapsed()),
            }
        }
    };
    // A header shorter than itself: closed at once.
    let mut s = connect();
    s.write_all(b"\x99\x99\x00\x02junkjunk").unwrap();
    let (_, took) = drain(&mut s);
    assert!(took < Duration::from_secs(2), "{took:?}");
    // Text where HELLO should be (its "length" never arrives): closed when
    // the probe interval passes twice.
    let mut s = connect();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (_, took) = drain(&mut s);
    assert!(took < Duration::from_secs(3), "{took:?}");
    // A HELLO of OpenFlow 1.3, then a message of another version: an
    // error, then closed.
    let mut s = connect();
    s.write_all(&[4, 0, 0, 8, 0, 0, 0, 1]).unwrap();
    s.write_all(&[1, 2, 0, 8, 0, 0, 0, 2]).unwrap();
    let (got, _) = drain(&mut s);
    assert_eq!(got.get(1), Some(&1u8), "an ERROR: {got:?}");
    // Silent after HELLO: an ECHO_REQUEST after the probe interval, then
    // closed.
    let mut s = connect();
    s.write_all(&[4, 0, 0, 8, 0, 0, 0, 1]).unwrap();
    let (got, took) = drain(&mut s);
    assert_eq!(got.get(..2), Some(&[4u8, 2][..]), "ECHO_REQUEST: {got:?}");
    assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(3), "{took:?}");
}

/// tools/ofctl-diff.sh: the same ovs-ofctl commands against `sdnfwd run
/// --openflow` and a real ovs-vswitchd print the same, but for the
/// documented differences (root: sdnfwd run).
#[test]
fn ofctl_diff_finds_no_difference() {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/ofctl-diff.sh"))
        .env("SDNFWD", env!("CARGO_BIN_EXE_sdnfwd"))
        .output()
        .expect("run tools/ofctl-diff.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("\n0 step(s) differ"), "{text}");
    let same = text.lines().filter(|l| l.starts_with("same ")).count();
    assert!(same >= 60, "{same} steps: {text}");
    for step in [
        "--bundle add-flows, a bad line",
        "timeouts expired",
        "the packets-out counted",
        "the idle flow kept alive",
        "the idle flow expired",
        "dump-flows (no -O)",
        "every field and action, dump-flows OpenFlow10",
        "dump-flows out_group",
    ] {
        assert!(text.contains(&format!("same  {step}\n")), "{step}: {text}");
    }
}

/// `ovs-ofctl --bundle replace-flows` under traffic on a running node
/// (root: `sdnfwd run`, no uplink, no tun0): PACKET_OUTs stream through the
/// pipeline while the tables swap 20 times between two versions. Each
/// version takes a packet through its own table (0 → 10 → 20 or 0 → 11 →
/// 20); the tables' catch-alls count a packet that met one version's table
/// 0 and the other's table 10 or 11, or found no table 0 flow. None may,
/// and every packet sent reaches table 20. (Without `--bundle` the same
/// holds here only because ovs-ofctl's few mods arrive back to back and are
/// applied in one batch; a bundle makes it hold for any size.)
#[test]
fn bundle_replace_flows_is_atomic_under_traffic() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("node.yaml"),
        "clusterNetwork:\n  clusterNetworks: [{CIDR: 10.128.0.0/14, hostSubnetLength: 9}]\n  serviceNetwork: 172.30.0.0/16\n  \
         pluginName: redhat/openshift-ovs-multitenant\nhostSubnets:\n- {metadata: {name: swap, uid: u-swap}, host: swap, \
         hostIP: 172.16.1.25, subnet: 10.131.0.0/23}\nnetNamespaces: [{netname: default, netid: 0}]\nnode: {name: swap}\n",
    )
    .unwrap();
    let mgmt = d.join("br0.mgmt");
    let log = std::fs::File::create(d.join("sdnfwd.log")).unwrap();
    let mut node = Command::new(env!("CARGO_BIN_EXE_sdnfwd"))
        .args(["run", "--config", &d.join("node.yaml").to_string_lossy(), "--no-tun0", "--pmd-maxsleep-us", "100"])
        .args(["--socket", &d.join("sdnfwd.ctl").to_string_lossy()])
        .args(["--openflow", &format!("punix:{}", mgmt.display())])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let t = Instant::now();
    while !std::fs::read_to_string(d.join("sdnfwd.log")).unwrap_or_default().contains(" ready: ") {
        if t.elapsed() > Duration::from_secs(20) || node.try_wait().unwrap().is_some() {
            panic!("sdnfwd run: {}", std::fs::read_to_string(d.join("sdnfwd.log")).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _node = Kill(node);
    let target = format!("unix:{}", mgmt.display());
    let common = "table=0, priority=0, cookie=0x90, actions=drop\n\
                  table=10, priority=0, cookie=0x91, actions=drop\n\
                  table=11, priority=0, cookie=0x92, actions=drop\n\
                  table=20, priority=10, cookie=0x20, actions=drop\n";
    let version = |v: u32| {
        let t = 9 + v;
        let text = format!(
            "{common}table=0, priority=10, ip, actions=load:{v}->NXM_NX_REG0[],goto_table:{t}\n\
             table={t}, priority=10, ip, reg0={v}, actions=goto_table:20\n"
        );
        let p = d.join(format!("v{v}.flows"));
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let (v1, v2) = (version(1), version(2));
    ok(&["-O", "OpenFlow14", "--bundle", "replace-flows", &target, &v1]);

    // The generator: OpenFlow 1.0 PACKET_OUTs (actions=output:TABLE, an
    // ICMP echo as from port 3), 50 at a time.
    let mut s = std::os::unix::net::UnixStream::connect(&mgmt).unwrap();
    let mut hello = [0u8; 8];
    s.read_exact(&mut hello).unwrap();
    let mut rest = vec![0u8; u16::from_be_bytes([hello[2], hello[3]]) as usize - 8];
    s.read_exact(&mut rest).unwrap();
    s.write_all(&[1, 0, 0, 8, 0, 0, 0, 1]).unwrap();
    let frame: Vec<u8> = (0..34)
        .map(|i| {
            u8::from_str_radix(
                &"ffffffffffff000000000001080045000014000100004001f7e40a0000010a000002"[2 * i..2 * i + 2],
                16,
            )
            .unwrap()
        })
        .collect();
    let mut po = vec![1u8, 13, 0, 0, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0, 3, 0, 8, 0, 0, 0, 8, 0xff, 0xf9, 0, 0];
    po.extend_from_slice(&frame);
    let len = po.len() as u16;
    po[2..4].copy_from_slice(&len.to_be_bytes());
    let burst: Vec<u8> = po.repeat(50);
    // One packet first, so that its megaflow is in place before the
    // stream (a backlog of packets that all miss at once would overflow
    // the upcall queue, swap or not).
    s.write_all(&po).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gen = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 1u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                s.write_all(&burst).unwrap();
                sent += 50;
                std::thread::sleep(Duration::from_millis(2));
            }
            // A barrier: every PACKET_OUT before it was handed to the
            // datapath.
            s.write_all(&[1, 18, 0, 8, 0, 0, 0, 3]).unwrap();
            let mut buf = [0u8; 4096];
            let t = Instant::now();
            let mut got = Vec::new();
            while !got.windows(2).any(|w| w == [1, 19]) && t.elapsed() < Duration::from_secs(10) {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            sent
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..20 {
        ok(&["-O", "OpenFlow14", "--bundle", "replace-flows", &target, if i % 2 == 0 { &v2 } else { &v1 }]);
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = gen.join().unwrap();
    // Counters reach the flows within 100 ms.
    std::thread::sleep(Duration::from_millis(1000));
    let dump = ok(&["-O", "OpenFlow13", "dump-flows", &target]);
    let count = |cookie: &str| -> u64 {
        let l = dump.lines().find(|l| l.starts_with(&format!(" cookie={cookie},"))).unwrap_or_else(|| panic!("{dump}"));
        l.split(", ").find_map(|p| p.strip_prefix("n_packets=")).unwrap().parse().unwrap()
    };
    assert_eq!((count("0x90"), count("0x91"), count("0x92")), (0, 0, 0), "a packet met a mix of versions: {dump}");
    assert!(sent > 1000, "{sent}");
    assert_eq!(count("0x20"), sent, "every packet sent went through a whole version: {dump}");
}
