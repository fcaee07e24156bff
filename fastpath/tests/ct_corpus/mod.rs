//! The connection-tracking oracle's corpus, shared by the tracker's own
//! test (`fastpath/tests/ct_oracle.rs`, which simulates the table around the
//! tracker) and the whole datapath's (`tests/ct_replay_oracle.rs`, which runs
//! the table through `sdnfwd ct-replay`): the flow table, the packets, and
//! Open vSwitch's run of them through `tools/ovs-ct-oracle.sh`. See
//! ct_oracle.rs for what the table and the corpus show.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use fastpath::conntrack::frames::{
    fragment, icmp_echo, icmp_error, ip, ipv4, tcp, udp, TcpSpec, ACK, FIN, PSH, RST, SYN,
};

pub const FLOWS: &str = "\
table=0,priority=100,ip,nw_src=10.1.0.0/16,actions=ct(commit,zone=1,table=1)
table=0,priority=100,ip,nw_src=10.2.0.0/16,actions=ct(zone=2,table=1)
table=0,priority=110,in_port=1,ip,nw_src=10.3.255.1,actions=ct(commit,zone=3,nat(src=0.0.0.0),table=1)
table=0,priority=100,in_port=1,ip,nw_src=10.3.0.0/16,actions=ct(commit,zone=3,nat(src=10.3.255.1),table=1)
table=0,priority=100,in_port=9,ip,nw_dst=10.3.255.1,actions=ct(zone=3,nat,table=1)
table=0,priority=100,in_port=1,ip,nw_dst=172.30.0.10,actions=ct(commit,zone=4,nat(dst=10.4.0.10:8080),table=1)
table=0,priority=100,in_port=1,ip,nw_dst=172.30.0.11,actions=ct(commit,zone=4,nat(dst=10.4.0.10:8080),table=1)
table=0,priority=100,in_port=9,ip,nw_src=10.4.0.0/16,actions=ct(zone=4,nat,table=1)
table=0,priority=100,in_port=1,ip,nw_src=10.5.0.0/16,actions=ct(commit,zone=5,nat(src=10.5.255.1:5000),table=1)
table=0,priority=100,in_port=9,ip,nw_dst=10.5.255.1,actions=ct(zone=5,nat,table=1)
table=0,priority=100,in_port=1,ip,nw_src=10.6.0.0/16,actions=ct(commit,zone=6,exec(set_field:0x2a->ct_mark,set_field:0x1234->ct_label),table=1)
table=0,priority=110,in_port=9,udp,nw_dst=10.6.0.0/16,actions=ct(commit,zone=6,exec(set_field:0x100/0xff00->ct_mark),table=1)
table=0,priority=100,in_port=9,ip,nw_dst=10.6.0.0/16,actions=ct(zone=6,table=1)
table=0,priority=100,in_port=1,ip,nw_src=10.7.0.0/16,actions=ct(zone=7,table=2)
table=0,priority=100,in_port=9,ip,nw_dst=10.7.255.1,actions=ct(zone=7,nat,table=1)
table=0,priority=100,in_port=1,ip,nw_src=10.8.0.0/16,actions=ct(commit,zone=8,table=1)
table=0,priority=100,in_port=9,ip,nw_dst=10.8.0.0/16,actions=ct(commit,force,zone=8,table=1)
table=0,priority=100,ip,nw_src=10.10.0.0/16,actions=ct(commit,zone=10,nat,table=1)
table=0,priority=100,ip,nw_src=10.11.0.0/16,actions=ct(commit,zone=NXM_OF_IN_PORT[0..15],table=1)
table=2,priority=10,ip,ct_state=+new+trk,actions=ct(commit,zone=7,nat(src=10.7.255.1),table=1)
table=2,priority=5,ip,ct_state=+trk,actions=ct(zone=7,nat,table=1)
table=1,priority=1,actions=resubmit(,10),resubmit(,11),resubmit(,12),resubmit(,13),resubmit(,14),resubmit(,15),resubmit(,16),resubmit(,17)
table=10,priority=1,ct_state=+new,actions=output:2
table=11,priority=1,ct_state=+est,actions=output:3
table=12,priority=1,ct_state=+rel,actions=output:4
table=13,priority=1,ct_state=+rpl,actions=output:5
table=14,priority=1,ct_state=+inv,actions=output:6
table=15,priority=1,ct_state=+snat,actions=output:7
table=16,priority=1,ct_state=+dnat,actions=output:8
table=17,priority=1,ip,ct_state=-inv+trk,actions=move:NXM_NX_CT_NW_SRC[]->NXM_OF_ETH_DST[0..31],move:NXM_NX_CT_TP_SRC[]->NXM_OF_ETH_DST[32..47],move:NXM_NX_CT_NW_DST[]->NXM_OF_ETH_SRC[0..31],move:NXM_NX_CT_TP_DST[]->NXM_OF_ETH_SRC[32..47],in_port,move:NXM_NX_CT_MARK[]->NXM_OF_ETH_DST[0..31],move:NXM_NX_CT_ZONE[]->NXM_OF_ETH_DST[32..47],move:NXM_NX_CT_LABEL[0..31]->NXM_OF_ETH_SRC[0..31],move:NXM_NX_CT_NW_PROTO[]->NXM_OF_ETH_SRC[32..39],in_port
";

/// One packet of the corpus.
pub struct Pkt {
    /// In port (1 or 9).
    pub port: u8,
    /// The frame.
    pub frame: Vec<u8>,
    /// What it is.
    pub what: String,
    /// A deliberate deviation from OVS (checked apart).
    pub deviation: bool,
}

/// What goes out: (port, frame), sorted by port as the script prints.
pub type Out = Vec<(u8, Vec<u8>)>;

/// Whether `a` is in `b`'s network of `len` bits.
pub const fn net(a: u32, b: u32, len: u32) -> bool {
    (a ^ b) >> (32 - len) == 0
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// `f` with 4 bytes of IPv4 options (NOP, NOP, NOP, EOL).
pub fn with_options(f: Vec<u8>) -> Vec<u8> {
    let mut g = f[..34].to_vec();
    g.extend_from_slice(&[1, 1, 1, 0]);
    g.extend_from_slice(&f[34..]);
    g[14] = 0x46;
    let total = u16::from_be_bytes([g[16], g[17]]) + 4;
    g[16..18].copy_from_slice(&total.to_be_bytes());
    g[24..26].copy_from_slice(&[0, 0]);
    let c = fastpath::wire::checksum(&g[14..38]);
    g[24..26].copy_from_slice(&c.to_be_bytes());
    g
}

/// A UDP frame with its checksum left out (0).
pub fn no_udp_checksum(mut f: Vec<u8>) -> Vec<u8> {
    f[40..42].copy_from_slice(&[0, 0]);
    f
}

/// The corpus.
pub fn corpus() -> Vec<Pkt> {
    let mut v = Vec::new();
    let mut add = |port: u8, frame: Vec<u8>, what: &str| {
        v.push(Pkt { port, frame, what: what.to_string(), deviation: false });
    };
    #[allow(clippy::too_many_arguments)]
    fn seg(src: u32, sport: u16, dst: u32, dport: u16, flags: u8, seq: u32, ack: u32, win: u16) -> TcpSpec {
        TcpSpec { src, sport, dst, dport, seq, ack, flags, win, wscale: None, payload: 0 }
    }

    // Zone 1: TCP with window scaling, data, bad segments, close, reuse.
    let (c1, s1) = (ip(10, 1, 0, 1), ip(10, 1, 0, 2));
    let ca = |flags, seq, ack, win| seg(c1, 40000, s1, 80, flags, seq, ack, win);
    let sa = |flags, seq, ack, win| seg(s1, 80, c1, 40000, flags, seq, ack, win);
    let syn = tcp(&TcpSpec { wscale: Some(7), ..ca(SYN, 1000, 0, 64240) });
    add(1, syn.clone(), "SYN, wscale 7");
    add(1, syn, "SYN again");
    add(9, tcp(&TcpSpec { wscale: Some(7), ..sa(SYN | ACK, 5000, 1001, 65160) }), "SYN+ACK, wscale 7");
    add(1, tcp(&ca(ACK, 1001, 5001, 502)), "ACK");
    add(1, tcp(&TcpSpec { payload: 100, ..ca(PSH | ACK, 1001, 5001, 502) }), "100 bytes");
    add(9, tcp(&sa(ACK, 5001, 1101, 509)), "ACK of them");
    add(9, tcp(&TcpSpec { payload: 1000, ..sa(PSH | ACK, 5001, 1101, 509) }), "1000 bytes back");
    add(1, tcp(&ca(ACK, 1101, 6001, 502)), "ACK of them");
    add(1, tcp(&TcpSpec { payload: 100, ..ca(PSH | ACK, 1001, 5001, 502) }), "the 100 bytes retransmitted");
    add(1, tcp(&TcpSpec { payload: 100, ..ca(PSH | ACK, 1_001_101, 6001, 502) }), "100 bytes far out of window");
    let mut bad = tcp(&ca(ACK, 1101, 6001, 502));
    bad[50] ^= 0x40;
    add(1, bad, "a bad TCP checksum");
    add(1, tcp(&ca(SYN | FIN, 1101, 0, 502)), "SYN+FIN");
    add(1, tcp(&ca(FIN | ACK, 1101, 6001, 502)), "FIN");
    add(9, tcp(&sa(ACK, 6001, 1102, 509)), "ACK of the FIN");
    add(9, tcp(&sa(FIN | ACK, 6001, 1102, 509)), "FIN back");
    add(1, tcp(&ca(ACK, 1102, 6002, 502)), "last ACK");
    add(9, tcp(&TcpSpec { payload: 10, ..sa(PSH | ACK, 6002, 1102, 509) }), "data after both FINs");
    add(1, tcp(&ca(SYN, 90000, 0, 64240)), "SYN reusing the closed tuple");
    add(9, tcp(&sa(SYN | ACK, 70000, 90001, 65160)), "its SYN+ACK");
    let cb = |flags, seq, ack| tcp(&seg(c1, 40001, s1, 80, flags, seq, ack, 65535));
    let sb = |flags, seq, ack| tcp(&seg(s1, 80, c1, 40001, flags, seq, ack, 65535));
    add(1, cb(SYN, 2000, 0), "SYN (no wscale)");
    add(9, sb(SYN | ACK, 8000, 2001), "SYN+ACK");
    add(1, cb(ACK, 2001, 8001), "ACK");
    add(9, sb(RST | ACK, 9_999_999, 2001), "RST out of window");
    add(9, sb(RST | ACK, 8001, 2001), "RST");
    add(1, cb(ACK, 2001, 8001), "ACK after the reset");
    add(1, cb(SYN, 3000, 0), "SYN on the reset tuple");
    let cm = |flags, seq, ack, len| tcp(&TcpSpec { payload: len, ..seg(c1, 40002, s1, 80, flags, seq, ack, 1000) });
    add(1, cm(ACK | PSH, 50000, 60000, 10), "mid-stream pickup");
    add(9, tcp(&seg(s1, 80, c1, 40002, ACK, 60000, 50010, 1000)), "its other side");
    add(1, cm(ACK | PSH, 50010, 60000, 10), "more");
    add(1, cm(SYN, 50020, 0, 0), "a SYN in the middle of it");
    add(9, tcp(&seg(s1, 80, c1, 40002, RST, 60000, 0, 0)), "a RST without ACK");
    add(9, tcp(&seg(s1, 81, c1, 40003, SYN | ACK, 1, 1, 1000)), "SYN+ACK of nothing");
    // Zone 1: UDP, ICMP, errors, another protocol.
    let u = udp(c1, 1000, s1, 53, 20);
    add(1, u.clone(), "UDP");
    add(1, u.clone(), "UDP again");
    add(9, udp(s1, 53, c1, 1000, 30), "UDP reply");
    add(1, u.clone(), "UDP once more");
    add(9, icmp_echo(s1, c1, 0, 7, 1), "echo reply of nothing");
    let echo = icmp_echo(c1, s1, 8, 7, 1);
    add(1, echo.clone(), "echo request");
    add(9, icmp_echo(s1, c1, 0, 7, 1), "echo reply");
    add(9, icmp_error(ip(10, 1, 0, 254), c1, 3, 3, &u, 48), "port unreachable quoting the UDP");
    add(1, icmp_error(ip(10, 1, 0, 253), s1, 11, 0, &udp(s1, 53, c1, 1000, 30), 28), "TTL exceeded the other way");
    add(9, icmp_error(ip(10, 1, 0, 254), c1, 3, 1, &tcp(&ca(ACK, 90001, 70001, 502)), 40), "unreachable quoting TCP");
    add(9, icmp_error(ip(10, 1, 0, 254), c1, 3, 3, &udp(c1, 1001, s1, 53, 0), 28), "unreachable quoting nothing known");
    add(9, icmp_error(ip(10, 1, 0, 254), c1, 11, 0, &echo, 36), "TTL exceeded quoting the echo");
    add(1, ipv4(c1, s1, 47, &[0, 0, 0x65, 0x58, 1, 2, 3, 4]), "GRE");
    add(9, ipv4(s1, c1, 47, &[0, 0, 0x65, 0x58, 5, 6, 7, 8]), "GRE back");
    let mut small = udp(c1, 3000, s1, 53, 40);
    fragment(&mut small, 0);
    add(1, small, "a first fragment under 1200 bytes (OVS: too small to reassemble)");
    // Zone 2: tracked, never committed.
    add(1, udp(ip(10, 2, 0, 1), 1, ip(10, 2, 0, 2), 2, 4), "zone 2 UDP");
    add(9, udp(ip(10, 2, 0, 2), 2, ip(10, 2, 0, 1), 1, 4), "zone 2 UDP back");

    // Zone 3: SNAT, colliding ports, ICMP errors, nat(src=0.0.0.0).
    let (c3a, c3b, s3, x3, r3) =
        (ip(10, 3, 0, 1), ip(10, 3, 0, 2), ip(10, 3, 1, 1), ip(10, 3, 255, 1), ip(10, 3, 1, 254));
    add(1, tcp(&seg(c3a, 40000, s3, 80, SYN, 100, 0, 64240)), "SNAT SYN");
    add(1, tcp(&seg(c3b, 40000, s3, 80, SYN, 200, 0, 64240)), "SNAT SYN, same port: moved");
    add(9, tcp(&seg(s3, 80, x3, 40001, SYN | ACK, 700, 201, 65160)), "SYN+ACK to the moved port");
    add(1, tcp(&seg(c3b, 40000, s3, 80, ACK, 201, 701, 64240)), "ACK");
    let quoted = tcp(&seg(x3, 40001, s3, 80, ACK, 201, 701, 64240));
    add(9, icmp_error(r3, x3, 3, 4, &quoted, 40), "frag needed quoting the translated TCP");
    add(9, icmp_error(r3, x3, 3, 1, &tcp(&seg(x3, 40000, s3, 80, SYN, 100, 0, 64240)), 28), "unreachable, 8 TCP bytes");
    add(1, tcp(&seg(x3, 40000, s3, 80, SYN, 300, 0, 64240)), "the NAT address itself, nat(src=0.0.0.0)");
    add(1, udp(c3a, 5000, s3, 53, 12), "SNAT UDP");
    add(9, udp(s3, 53, x3, 5000, 12), "its reply");
    add(1, icmp_echo(c3a, s3, 8, 99, 1), "SNAT echo");
    add(9, icmp_echo(s3, x3, 0, 99, 1), "its reply");
    add(9, icmp_error(r3, x3, 11, 0, &icmp_echo(x3, s3, 8, 99, 2), 36), "TTL exceeded quoting the translated echo");
    add(1, with_options(udp(c3a, 5001, s3, 53, 8)), "SNAT UDP with IP options");
    add(9, with_options(udp(s3, 53, x3, 5001, 8)), "its reply, with IP options");
    add(1, no_udp_checksum(udp(c3a, 5002, s3, 53, 8)), "SNAT UDP without a checksum");
    add(9, no_udp_checksum(udp(s3, 53, x3, 5002, 8)), "its reply");
    let c3c = ip(10, 3, 0, 3);
    add(1, tcp(&seg(c3c, 40100, s3, 80, SYN, 10, 0, 64240)), "SNAT SYN, to be reset");
    add(9, tcp(&seg(s3, 80, x3, 40100, SYN | ACK, 20, 11, 64240)), "SYN+ACK");
    add(1, tcp(&seg(c3c, 40100, s3, 80, ACK, 11, 21, 64240)), "ACK");
    add(9, tcp(&seg(s3, 80, x3, 40100, RST | ACK, 21, 11, 0)), "RST");

    // Zone 4: DNAT to a backend, a colliding backend tuple, an ICMP error.
    let (c4, vip1, vip2, b4) = (ip(10, 4, 0, 1), ip(172, 30, 0, 10), ip(172, 30, 0, 11), ip(10, 4, 0, 10));
    add(1, tcp(&seg(c4, 40000, vip1, 80, SYN, 1, 0, 64240)), "DNAT SYN");
    add(9, tcp(&seg(b4, 8080, c4, 40000, SYN | ACK, 500, 2, 65160)), "from the backend");
    add(1, tcp(&seg(c4, 40000, vip2, 80, SYN, 9, 0, 64240)), "DNAT SYN, other VIP: client port moved");
    add(9, tcp(&seg(b4, 8080, c4, 40001, SYN | ACK, 600, 10, 65160)), "from the backend");
    add(1, udp(c4, 6000, vip1, 53, 8), "DNAT UDP");
    add(9, udp(b4, 8080, c4, 6000, 8), "its reply");
    let toward = tcp(&seg(c4, 40000, b4, 8080, ACK, 2, 501, 64240));
    add(9, icmp_error(ip(10, 4, 0, 254), c4, 3, 1, &toward, 40), "unreachable on the way to the backend");

    // Zone 5: one port to translate to: the second flow is not committed.
    let (x5, s5) = (ip(10, 5, 255, 1), ip(10, 5, 1, 1));
    add(1, udp(ip(10, 5, 0, 1), 1000, s5, 53, 8), "SNAT to :5000");
    add(1, udp(ip(10, 5, 0, 2), 1000, s5, 53, 8), "SNAT to :5000 again: exhausted");
    add(9, udp(s5, 53, x5, 5000, 8), "reply to :5000");

    // Zone 6: marks and labels.
    let (c6, s6) = (ip(10, 6, 0, 1), ip(10, 6, 1, 1));
    add(1, udp(c6, 7000, s6, 53, 8), "mark 0x2a, label 0x1234");
    add(9, udp(s6, 53, c6, 7000, 8), "reply sets 0x100/0xff00");
    add(1, tcp(&seg(c6, 40000, s6, 80, SYN, 1, 0, 64240)), "TCP marked");
    add(9, tcp(&seg(s6, 80, c6, 40000, SYN | ACK, 1, 2, 64240)), "its reply sees the mark");

    // Zone 7: ct, then ct(commit,nat) if new or ct(nat).
    let (c7, s7, x7) = (ip(10, 7, 0, 1), ip(10, 7, 1, 1), ip(10, 7, 255, 1));
    add(1, tcp(&seg(c7, 40000, s7, 80, SYN, 10, 0, 64240)), "two cts: new");
    add(9, tcp(&seg(s7, 80, x7, 40000, SYN | ACK, 20, 11, 64240)), "reply");
    add(1, tcp(&seg(c7, 40000, s7, 80, ACK, 11, 21, 64240)), "two cts: established");
    add(1, tcp(&TcpSpec { payload: 10, ..seg(c7, 40000, s7, 80, ACK, 5_000_000, 21, 64240) }), "two cts: invalid");

    // Zone 8: force.
    let (c8, s8) = (ip(10, 8, 0, 1), ip(10, 8, 1, 1));
    add(1, udp(c8, 1, s8, 2, 0), "UDP");
    add(9, udp(s8, 2, c8, 1, 0), "force from the other side");
    add(9, udp(s8, 2, c8, 1, 0), "force, same side");
    add(1, udp(c8, 1, s8, 2, 0), "now the reply");

    // Zones 1 and 9 by in_port: one tuple, two connections.
    let (a11, b11) = (ip(10, 11, 0, 1), ip(10, 11, 0, 2));
    add(1, udp(a11, 1, b11, 2, 0), "zone 1");
    add(9, udp(a11, 1, b11, 2, 0), "zone 9");
    add(9, udp(b11, 2, a11, 1, 0), "zone 9 reply");

    // Deliberate deviations.
    v.push(Pkt {
        port: 1,
        frame: tcp(&seg(c3c, 40100, s3, 80, SYN, 500, 0, 64240)),
        what: "SNAT SYN reopening the reset tuple".into(),
        deviation: true,
    });
    v.push(Pkt {
        port: 1,
        frame: udp(ip(10, 10, 0, 1), 1, ip(10, 10, 0, 2), 2, 0),
        what: "plain nat commit".into(),
        deviation: true,
    });
    v.push(Pkt {
        port: 9,
        frame: udp(ip(10, 10, 0, 2), 2, ip(10, 10, 0, 1), 1, 0),
        what: "its reply (plain nat)".into(),
        deviation: true,
    });
    let mut big = udp(c1, 3000, s1, 53, 1300);
    fragment(&mut big, 0);
    v.push(Pkt { port: 1, frame: big, what: "a first fragment of 1328 bytes".into(), deviation: true });
    v
}

/// What the script printed: per packet its outputs, then the dump.
pub fn run_ovs(pkts: &[Pkt]) -> (Vec<Out>, Vec<String>) {
    // The repository's tools/, from the including crate's directory (the
    // root crate or fastpath/).
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script = [base.join("tools/ovs-ct-oracle.sh"), base.join("../tools/ovs-ct-oracle.sh")]
        .into_iter()
        .find(|p| p.exists())
        .expect("tools/ovs-ct-oracle.sh missing");
    let v = Command::new("ovs-vswitchd").arg("--version").output().unwrap_or_else(|e| {
        panic!("Open vSwitch is needed for this test (apt-get install openvswitch-switch; tools/deps.sh): {e}")
    });
    assert!(String::from_utf8_lossy(&v.stdout).contains("Open vSwitch"), "ovs-vswitchd --version: {v:?}");
    let dir = tempfile::tempdir().expect("temp dir");
    let flows = dir.path().join("flows");
    let packets = dir.path().join("packets");
    std::fs::write(&flows, FLOWS).unwrap();
    std::fs::write(&packets, packet_file(pkts)).unwrap();
    let out = Command::new("bash").arg(&script).arg(&flows).arg(&packets).output().expect("run the oracle script");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "oracle script failed: {}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
    let (outs, dump) = parse_output(&stdout);
    assert_eq!(outs.len(), pkts.len(), "one result per packet:\n{stdout}");
    (outs, dump)
}

/// The packet file of a corpus (`PORT HEX` lines, each after a comment
/// saying what it is), as the oracle script and `sdnfwd ct-replay` take it.
pub fn packet_file(pkts: &[Pkt]) -> String {
    let mut text = String::new();
    for p in pkts {
        writeln!(text, "# {}\n{} {}", p.what, p.port, hex(&p.frame)).unwrap();
    }
    text
}

/// What the oracle script (or `sdnfwd ct-replay`) printed: each packet's
/// outputs, then the dump-conntrack lines.
pub fn parse_output(stdout: &str) -> (Vec<Out>, Vec<String>) {
    let mut outs: Vec<Out> = Vec::new();
    let mut dump = Vec::new();
    let mut in_dump = false;
    for line in stdout.lines() {
        if line.starts_with("--- dpctl/dump-conntrack") {
            in_dump = true;
        } else if line.starts_with("--- ") {
            in_dump = false;
        } else if in_dump {
            dump.push(line.to_string());
        } else if line.starts_with("packet ") {
            outs.push(Vec::new());
        } else if let Some(rest) = line.strip_prefix("  -> ") {
            let (port, frame) = rest.split_once(' ').expect("PORT HEX");
            outs.last_mut().expect("a packet line first").push((port.parse().unwrap(), unhex(frame.trim())));
        }
    }
    (outs, dump)
}

pub fn show(o: &Out) -> String {
    o.iter().map(|(p, f)| format!("\n    {p} {}", hex(f))).collect()
}

/// The packets (deviations aside) whose outputs differ: how many match,
/// and a report of the others.
pub fn compare(pkts: &[Pkt], ovs: &[Out], ours: &[Out]) -> (usize, String) {
    let ports = |o: &Out| o.iter().map(|x| x.0).collect::<Vec<_>>();
    let mut bad = String::new();
    let mut matched = 0;
    for (i, p) in pkts.iter().enumerate() {
        if p.deviation {
            continue;
        }
        if ovs[i] == ours[i] {
            matched += 1;
        } else {
            let _ = write!(
                bad,
                "\npacket {} ({}, in {}): OVS out {:?}{}\n  ours out {:?}{}",
                i + 1,
                p.what,
                p.port,
                ports(&ovs[i]),
                show(&ovs[i]),
                ports(&ours[i]),
                show(&ours[i])
            );
        }
    }
    (matched, bad)
}

/// A pseudo-random TCP exchange: `n` connections of zone 1 and `n` of
/// zone 3 (source NAT, each from its own port so the translated port is
/// known), each opened by a handshake (window scaling on every other one),
/// then `steps` segments drawn at random: either side, any flags (sane or
/// not; no bare SYN under NAT, which could reopen a closed tuple, a
/// deviation of its own), sequence and acknowledgement numbers right,
/// retransmitted, a little or far off, payloads and windows of every size.
pub fn random_tcp(n: u16, steps: usize, seed: u64) -> Vec<Pkt> {
    let mut x = seed;
    let mut rnd = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    struct C {
        c: u32,
        s: u32,
        x: u32,
        port: u16,
        nxt: [u32; 2],
    }
    let mut conns: Vec<C> = (0..2 * n)
        .map(|i| {
            let z3 = i >= n;
            let (c, s, x) = if z3 {
                (ip(10, 3, 0, 9), ip(10, 3, 1, 9), ip(10, 3, 255, 1))
            } else {
                (ip(10, 1, 7, 1), ip(10, 1, 7, 2), 0)
            };
            C { c, s, x: if z3 { x } else { c }, port: 43000 + i, nxt: [1000 * i as u32 + 1, 5_000_000 + 7 * i as u32] }
        })
        .collect();
    let mut v = Vec::new();
    let seg = |k: &C, dir: usize, flags: u8, seq: u32, ack: u32, win: u16, payload: usize, ws: Option<u8>| -> Pkt {
        let spec = if dir == 0 {
            TcpSpec { src: k.c, sport: k.port, dst: k.s, dport: 443, seq, ack, flags, win, wscale: ws, payload }
        } else {
            TcpSpec { src: k.s, sport: 443, dst: k.x, dport: k.port, seq, ack, flags, win, wscale: ws, payload }
        };
        Pkt {
            port: if dir == 0 { 1 } else { 9 },
            frame: tcp(&spec),
            what: format!("random {} {flags:#04x} seq {seq} ack {ack} win {win} len {payload}", k.port),
            deviation: false,
        }
    };
    for (i, k) in conns.iter_mut().enumerate() {
        let ws = (i % 2 == 0).then_some(7);
        v.push(seg(k, 0, SYN, k.nxt[0] - 1, 0, 64240, 0, ws));
        v.push(seg(k, 1, SYN | ACK, k.nxt[1] - 1, k.nxt[0], 65160, 0, ws));
        v.push(seg(k, 0, ACK, k.nxt[0], k.nxt[1], 502, 0, None));
    }
    let flag_set = [
        ACK,
        ACK,
        ACK,
        PSH | ACK,
        PSH | ACK,
        PSH | ACK,
        FIN | ACK,
        RST | ACK,
        RST,
        SYN,
        SYN | ACK,
        FIN,
        0,
        PSH,
        SYN | FIN,
        ACK | 0x20,
    ];
    for _ in 0..steps {
        let i = rnd(2 * n as u64) as usize;
        let k = &mut conns[i];
        let dir = rnd(2) as usize;
        let mut flags = flag_set[rnd(flag_set.len() as u64) as usize];
        if flags == SYN && i >= n as usize {
            // A bare SYN may reopen a closed tuple; under NAT that is a
            // deliberate deviation (see the fixed corpus): not here.
            flags = SYN | ACK;
        }
        let payload = if flags & PSH != 0 { 1 + rnd(1400) as usize } else { [0, 0, 0, 10][rnd(4) as usize] };
        let off = |r: u64, len: u32| -> u32 {
            match r {
                0..=5 => 0,
                6 => 0u32.wrapping_sub(len.max(1)),
                7 => 1 + (r as u32 * 977) % 3000,
                8 => 0u32.wrapping_sub(1 + (r as u32 * 613) % 3000),
                9 => 1 << 20,
                _ => 0u32.wrapping_sub(1 << 22),
            }
        };
        let seq = k.nxt[dir].wrapping_add(off(rnd(11), payload as u32));
        let ack = k.nxt[1 - dir].wrapping_add(off(rnd(11), 1));
        let win = [502, 509, 65535, 0, 3][rnd(5) as usize];
        v.push(seg(k, dir, flags, seq, ack, win, payload, None));
        if seq == k.nxt[dir] {
            let fl = u32::from(flags & (SYN | FIN) != 0);
            k.nxt[dir] = k.nxt[dir].wrapping_add(payload as u32 + fl);
        }
    }
    v
}
