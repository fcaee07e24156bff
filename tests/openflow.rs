//! The OpenFlow 1.3 listener against the real client: Debian's `ovs-ofctl
//! -O OpenFlow13` programs and reads sdnfwd's tables over TCP and over a
//! unix socket, and the same commands go to Open vSwitch (userspace
//! datapath under a temp dir, the oracle). After every command both dumps
//! must be the same flows (durations aside): add-flows of the rendered
//! table and of seed 001, mod-flows and del-flows strict and not, with
//! cookie masks, a flow refused by both. dump-tables, dump-ports,
//! dump-ports-desc, dump-aggregate and show answer; a client that only
//! speaks OpenFlow 1.0 is told why it cannot connect.

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
        ("table=30, priority=1, actions=resubmit(,40)", "OFPBAC_BAD_VENDOR_TYPE"),
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
    let (v10, _, err10) = ofctl(&["-O", "OpenFlow10", "dump-flows", &target]);
    assert!(!v10 && err10.contains("version negotiation failed"), "{err10}");
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
