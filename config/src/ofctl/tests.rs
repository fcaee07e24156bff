use super::*;

fn roundtrip(line: &str) -> String {
    parse_flow_line(line, LineKind::Add).unwrap().to_dump_line(None)
}

#[test]
fn test_parse_seed_lines() {
    let l = "cookie=0x0, duration=26835.966s, table=0, n_packets=31938, n_bytes=1341396, priority=200,arp,in_port=1,arp_spa=10.128.0.0/14,arp_tpa=10.131.0.0/23 actions=move:NXM_NX_TUN_ID[0..31]->NXM_NX_REG0[],goto_table:10";
    let s = parse_flow_line(l, LineKind::Add).unwrap();
    assert_eq!(s.priority, 200);
    assert_eq!(s.m.get(Field::InPort), (1, 0xffff_ffff));
    assert_eq!(s.m.get(Field::NwDst), (0x0a83_0000, 0xffff_fe00));
    assert_eq!(
        s.to_dump_line(None),
        " cookie=0x0, table=0, priority=200,arp,in_port=1,arp_spa=10.128.0.0/14,arp_tpa=10.131.0.0/23 actions=move:NXM_NX_TUN_ID[0..31]->NXM_NX_REG0[],goto_table:10"
    );
}

#[test]
fn test_print_order_matches_ovs() {
    // Expected text is what ovs-vswitchd 3.1 dumped for the same input.
    assert_eq!(
        roundtrip("table=5,priority=10,reg3=0x5/0xf,pkt_mark=0x100a314,tun_id=0x1234/0xffff,tun_dst=1.2.3.0/24,dl_src=0a:58:00:00:00:00/ff:ff:00:00:00:00,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,tcp,nw_tos=8,nw_ecn=1,nw_ttl=5,tp_src=0x1000/0xf000,tcp_dst=80,actions=set_field:6e:2f:91:0c:55:a7->eth_dst,set_field:0x0100a314->pkt_mark,set_field:5->reg3,load:0x3->NXM_NX_REG1[4..7],move:NXM_NX_REG0[0..3]->NXM_NX_REG1[28..31],note:01.07.aa.bb.cc.dd.ee.ff,output:3,output:4"),
        " cookie=0x0, table=5, priority=10,pkt_mark=0x100a314,tcp,reg3=0x5/0xf,tun_id=0x1234/0xffff,tun_dst=1.2.3.0/24,dl_src=0a:58:00:00:00:00/ff:ff:00:00:00:00,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,nw_tos=8,nw_ecn=1,nw_ttl=5,tp_src=0x1000/0xf000,tp_dst=80 actions=set_field:6e:2f:91:0c:55:a7->eth_dst,set_field:0x100a314->pkt_mark,set_field:0x5->reg3,load:0x3->NXM_NX_REG1[4..7],move:NXM_NX_REG0[0..3]->NXM_NX_REG1[28..31],note:01.07.aa.bb.cc.dd.ee.ff.00.00.00.00.00.00,output:3,output:4"
    );
    assert_eq!(
        roundtrip("table=5,priority=12,arp,arp_op=1,arp_tha=00:00:00:00:00:01,nw_src=10.1.0.0/16,actions=goto_table:7"),
        " cookie=0x0, table=5, priority=12,arp,arp_spa=10.1.0.0/16,arp_op=1,arp_tha=00:00:00:00:00:01 actions=goto_table:7"
    );
    assert_eq!(
        roundtrip("table=5,priority=11,icmp,icmp_type=8,icmp_code=0,nw_src=10.0.0.0/255.0.255.0,actions=drop"),
        " cookie=0x0, table=5, priority=11,icmp,nw_src=10.0.0.0/255.0.255.0,icmp_type=8,icmp_code=0 actions=drop"
    );
    assert_eq!(
        roundtrip("table=5,priority=14,ip,nw_frag=first,nw_proto=47,idle_timeout=10,hard_timeout=20,cookie=0x55,actions=drop"),
        " cookie=0x55, table=5, idle_timeout=10, hard_timeout=20, priority=14,ip,nw_proto=47,nw_frag=first actions=drop"
    );
    assert_eq!(
        roundtrip("table=5,priority=15,ip,ip_frag=not_later,actions=drop"),
        " cookie=0x0, table=5, priority=15,ip,nw_frag=not_later actions=drop"
    );
    assert_eq!(
        roundtrip("table=5,priority=16,udp,udp_src=53,nw_frag=yes,actions=drop"),
        " cookie=0x0, table=5, priority=16,udp,nw_frag=yes,tp_src=53 actions=drop"
    );
    assert_eq!(
        roundtrip("table=5,priority=17,in_port=LOCAL,actions=output:IN_PORT"),
        " cookie=0x0, table=5, priority=17,in_port=LOCAL actions=IN_PORT"
    );
    assert_eq!(
        roundtrip("table=5,priority=13,dl_type=0x86dd,actions=drop"),
        " cookie=0x0, table=5, priority=13,ipv6 actions=drop"
    );
    assert_eq!(
        roundtrip("table=5,priority=18,tun_src=1.2.3.4,tun_id=5,reg7=0xffffffff,actions=output:NXM_NX_REG7[0..15]"),
        " cookie=0x0, table=5, priority=18,reg7=0xffffffff,tun_id=0x5,tun_src=1.2.3.4 actions=output:NXM_NX_REG7[0..15]"
    );
    assert_eq!(roundtrip("table=253, actions=note:00.07"), " cookie=0x0, table=253, actions=note:00.07.00.00.00.00");
}

#[test]
fn test_openshift_bundle_syntax() {
    let text = "flow add table=80, priority=300, ip, nw_src=10.131.0.1/32, actions=output:NXM_NX_REG2[]\n\
                # comment\n\n\
                flow delete table=10, cookie=0xdd216239/0xffffffff, tun_src=172.16.1.22\n\
                delete_strict table=50, priority=100, arp, nw_dst=10.130.0.0/23\n";
    let cmds = parse_flow_file(text).unwrap();
    assert_eq!(cmds.len(), 3);
    match &cmds[0].1 {
        FlowCommand::Add(s) => assert_eq!(
            s.to_dump_line(None),
            " cookie=0x0, table=80, priority=300,ip,nw_src=10.131.0.1 actions=output:NXM_NX_REG2[]"
        ),
        c => panic!("{c:?}"),
    }
    match &cmds[1].1 {
        FlowCommand::Delete { strict: false, spec } => {
            assert_eq!((spec.cookie, spec.cookie_mask), (0xdd216239, 0xffffffff));
            assert!(spec.table_given);
        }
        c => panic!("{c:?}"),
    }
    match &cmds[2].1 {
        FlowCommand::Delete { strict: true, spec } => {
            assert!(spec.m.is_exact(Field::DlType, ETH_TYPE_ARP))
        }
        c => panic!("{c:?}"),
    }
    assert_eq!(cmds[2].0, 5);
}

#[test]
fn test_errors_name_column() {
    let e = parse_flow_file("table=0,priority=1,ip,actions=drop\ntable=0, tcp_dst=80, actions=drop\n").unwrap_err();
    assert_eq!((e.line, e.col), (2, 10));
    assert!(e.msg.contains("requires `tcp`"), "{}", e.msg);
    let e = parse_flow_line("table=0,ip,nw_src=10.0.0.300,actions=drop", LineKind::Add).unwrap_err();
    assert_eq!(e.col, 19);
    let e = parse_flow_line("table=0,arp,nw_tos=4,actions=drop", LineKind::Add).unwrap_err();
    assert!(e.msg.contains("requires `ip`"));
    let e = parse_flow_line("table=0,ip,actions=output:3,drop", LineKind::Add).unwrap_err();
    assert!(e.msg.contains("only action"));
    let e = parse_flow_line("table=0,ip", LineKind::Add).unwrap_err();
    assert!(e.msg.contains("actions="));
    let e = parse_flow_line("table=0,ip,actions=load:0x1ff->NXM_NX_REG0[0..7]", LineKind::Add).unwrap_err();
    assert!(e.msg.contains("does not fit"));
    let e = parse_flow_line("table=0,ip,actions=frobnicate", LineKind::Add).unwrap_err();
    assert!(e.msg.contains("unsupported action"));
    let e = parse_flow_line("table=0,ip,arp,actions=drop", LineKind::Add).unwrap_err();
    assert!(e.msg.contains("conflicts"));
    // Redundant identical tokens are fine (NetworkPolicy string concatenation).
    parse_flow_line("table=80, priority=150, reg1=5, ip, nw_dst=10.131.0.4, reg0=5, ip, nw_src=10.129.0.7, tcp, tp_dst=5432, actions=output:NXM_NX_REG2[]", LineKind::Add).unwrap();
}

#[test]
fn test_trace_flow() {
    let m = parse_trace_flow("in_port=3,tcp,nw_src=10.131.0.16,nw_dst=10.129.0.5,tcp_dst=80").unwrap();
    assert_eq!(m.get(Field::TpDst), (80, 0xffff));
    assert!(parse_trace_flow("in_port=3,ip,nw_src=10.0.0.0/8").is_err());
    assert!(parse_trace_flow("in_port=3,ip,actions=drop").is_err());
}

#[test]
fn test_loose_match() {
    let rule = parse_flow_line("table=50,priority=100,arp,arp_tpa=10.130.0.0/23,actions=drop", LineKind::Add).unwrap();
    let pat = parse_flow_line("arp,nw_dst=10.130.0.0/23", LineKind::Match).unwrap();
    assert!(rule.m.is_within(&pat.m));
    let pat = parse_flow_line("ip,nw_dst=10.130.0.0/23", LineKind::Match).unwrap();
    assert!(!rule.m.is_within(&pat.m));
    let pat = parse_flow_line("arp,nw_dst=10.130.0.0/16", LineKind::Match).unwrap();
    assert!(rule.m.is_within(&pat.m));
    let pat = parse_flow_line("arp,nw_dst=10.130.0.5", LineKind::Match).unwrap();
    assert!(!rule.m.is_within(&pat.m));
}

#[test]
fn test_ct_match_print_matches_ovs() {
    // Expected text is what `ovs-ofctl -O OpenFlow13 parse-flow` (3.1) printed.
    let cases = [
        ("ip,ct_state=-trk,actions=drop", "ct_state=-trk,ip"),
        ("ct_state=0x21/0x21,actions=drop", "ct_state=+new+trk"),
        ("ct_state=0x21,actions=drop", "ct_state=new|trk"),
        ("ct_state=0,actions=drop", "ct_state=0"),
        ("ct_state=0xff,actions=drop", "ct_state=new|est|rel|rpl|inv|trk|snat|dnat"),
        ("ct_state=+trk+est-new+rpl-inv+rel+snat-dnat,actions=drop", "ct_state=est|rel|rpl|trk|snat"),
        ("ct_state=+trk-inv,actions=drop", "ct_state=-inv+trk"),
        (
            "ct_state=+est,ct_nw_proto=6,ct_tp_src=5,ct_tp_dst=0x10/0xf0,actions=drop",
            "ct_state=+est,ct_nw_proto=6,ct_tp_src=5,ct_tp_dst=0x10/0xf0",
        ),
        (
            "ct_state=trk|est,ct_zone=5,ct_mark=0x5/0xf,ct_label=0x1234567890abcdef1234/0xffff0000000000000000ffff,actions=drop",
            "ct_state=est|trk,ct_zone=5,ct_mark=0x5/0xf,ct_label=0x1234/0xffff0000000000000000ffff",
        ),
        ("ip,ct_state=+est,ct_nw_src=1.2.3.4,actions=drop", "ct_state=+est,ct_nw_src=1.2.3.4,ip"),
        ("priority=5,tcp,reg0=1,ct_label=5,ct_mark=0,actions=drop", "priority=5,ct_mark=0,ct_label=0x5,tcp,reg0=0x1"),
    ];
    for (line, want) in cases {
        let s = parse_flow_line(line, LineKind::Add).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(fmt_match(&s.m, Some(s.priority)), want, "{line}");
    }
    let s = parse_flow_line("ct_label=0x1234567890abcdef1234,actions=drop", LineKind::Add).unwrap();
    assert_eq!(s.m.get(Field::CtLabelLo), (0x567890abcdef1234, u64::MAX));
    assert_eq!(s.m.get(Field::CtLabelHi), (0x1234, u64::MAX));
}

#[test]
fn test_ct_match_errors() {
    let bad = [
        ("ct_state=+trk+bogus,actions=drop", 15, "unknown ct_state flag `bogus`"),
        ("ct_state=+trk+trk,actions=drop", 15, "given twice"),
        ("ct_state=trk|xyz,actions=drop", 14, "unknown ct_state flag `xyz`"),
        ("ct_state=0x100/0x100,actions=drop", 10, "beyond the 8 flags"),
        ("ct_state=+trk,ct_nw_src=1.2.3.4,ip,actions=drop", 15, "requires a ct_state that implies"),
        ("ct_state=+est,ct_nw_src=1.2.3.4,actions=drop", 15, "requires `ip`"),
        ("ct_state=+est,ct_tp_src=5,actions=drop", 15, "requires ct_nw_proto"),
        ("ct_nw_proto=6,actions=drop", 1, "implies a connection"),
        ("ct_state=+est,ct_nw_proto=0,actions=drop", 27, "ct_nw_proto=0"),
        ("ct_zone=5/0xff,actions=drop", 9, "does not take a mask"),
        ("ct_zone=65536,actions=drop", 9, "does not fit"),
        ("ct_label=0x1ffffffffffffffffffffffffffffffff,actions=drop", 10, "up to 128 bits"),
        ("ct_label=5/zz,actions=drop", 12, "ct_label mask"),
    ];
    for (line, col, msg) in bad {
        let e = parse_flow_line(line, LineKind::Add).unwrap_err();
        assert!(e.msg.contains(msg), "{line}: {}", e.msg);
        assert_eq!(e.col, col, "{line}: {}", e.msg);
    }
    // Trace flows give states exactly.
    let m = parse_trace_flow("ct_state=est|trk,ip,ct_nw_src=10.0.0.1,ct_label=0x1").unwrap();
    assert_eq!(m.get(Field::CtState), (cs::EST | cs::TRK, cs::ALL));
    assert!(parse_trace_flow("ct_state=+trk,ip").is_err());
}
