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
    fragment, fragments, icmp_echo, icmp_error, ip, ipv4, tcp, udp, TcpSpec, ACK, FIN, PSH, RST, SYN,
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

/// One packet of the corpus, or a step of the clock.
pub struct Pkt {
    /// In port (1 to 9).
    pub port: u8,
    /// The frame.
    pub frame: Vec<u8>,
    /// What it is.
    pub what: String,
    /// A deliberate deviation from OVS (checked apart).
    pub deviation: bool,
    /// Not a packet but a `warp MS` line (the clock moves MS forward).
    pub warp_ms: u64,
}

impl Pkt {
    /// A packet in on `port`.
    pub fn new(port: u8, frame: Vec<u8>, what: impl Into<String>) -> Pkt {
        Pkt { port, frame, what: what.into(), deviation: false, warp_ms: 0 }
    }

    /// A step of the clock.
    pub fn warp(ms: u64) -> Pkt {
        Pkt { port: 0, frame: Vec::new(), what: format!("warp {ms}"), deviation: false, warp_ms: ms }
    }
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
        v.push(Pkt::new(port, frame, what));
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
    let dev = |port, frame, what: &str| Pkt { deviation: true, ..Pkt::new(port, frame, what) };
    v.push(dev(1, tcp(&seg(c3c, 40100, s3, 80, SYN, 500, 0, 64240)), "SNAT SYN reopening the reset tuple"));
    v.push(dev(1, udp(ip(10, 10, 0, 1), 1, ip(10, 10, 0, 2), 2, 0), "plain nat commit"));
    v.push(dev(9, udp(ip(10, 10, 0, 2), 2, ip(10, 10, 0, 1), 1, 0), "its reply (plain nat)"));
    // Held for reassembly, by OVS and by ours (its list never completes).
    let mut big = udp(c1, 3000, s1, 53, 1300);
    fragment(&mut big, 0);
    v.push(Pkt::new(1, big, "a first fragment of 1328 bytes"));
    v
}

/// `f` with its IP identification set (its header checksum fixed).
pub fn with_id(mut f: Vec<u8>, id: u16) -> Vec<u8> {
    f[18..20].copy_from_slice(&id.to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let ihl = ((f[14] & 15) as usize) * 4;
    let c = fastpath::wire::checksum(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

/// An ICMP echo (8 request, 0 reply) with `len` bytes of data.
pub fn big_echo(src: u32, dst: u32, ty: u8, id: u16, len: usize) -> Vec<u8> {
    let mut l4 = vec![ty, 0, 0, 0, (id >> 8) as u8, id as u8, 0, 1];
    l4.extend((0..len).map(|i| i as u8));
    let c = fastpath::wire::checksum(&l4);
    l4[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4(src, dst, 1, &l4)
}

/// IPv4 fragments through `ct`, as Open vSwitch's userspace datapath
/// handles them (`lib/ipf.c`): held until their datagram is complete, the
/// reassembled packet tracked, the original fragments sent on with its
/// verdict and NAT's rewrites. In order, out of order, duplicated,
/// overlapping (and covering, which OVS does not catch), too small (and
/// exactly 1,200 bytes), a last one carrying Ethernet padding, a bad
/// header checksum, a bad L4 checksum over the datagram, fragments of one
/// datagram on two ports, UDP, TCP (data of an established connection,
/// retransmitted) and ICMP echo, untracked-commit zone 2, SNAT both ways
/// with a colliding port, DNAT both ways, marks and labels, two `ct`s of a
/// packet (reassembled twice, the second time under NAT), zones by
/// in_port keeping a datagram's fragments apart, a 40-fragment datagram
/// (OVS sends 32 at once, the rest with the next `ct`), a list filled to
/// its limit of 58 fragments (the 59th refused), then the clock
/// moved past the lists' 15 s (an expired list leaves `+inv`, one per `ct`
/// action) and their 25 s (purged).
pub fn frag_corpus() -> Vec<Pkt> {
    let mut v: Vec<Pkt> = Vec::new();
    let add = |v: &mut Vec<Pkt>, port: u8, frame: Vec<u8>, what: String| v.push(Pkt::new(port, frame, what));
    let (c1, s1) = (ip(10, 1, 0, 1), ip(10, 1, 0, 2));

    // Zone 1: UDP in order, then the reply (unfragmented).
    let d = fragments(&udp(c1, 6000, s1, 53, 2000), 100, &[1480]);
    for (i, f) in d.into_iter().enumerate() {
        add(&mut v, 1, f, format!("UDP in order, fragment {i}"));
    }
    add(&mut v, 9, udp(s1, 53, c1, 6000, 10), "its reply".into());
    // Out of order, three fragments.
    let d = fragments(&udp(c1, 6001, s1, 53, 3500), 101, &[1480, 1480]);
    for i in [2, 1, 0] {
        add(&mut v, 1, d[i].clone(), format!("UDP out of order, fragment {i}"));
    }
    // A duplicate.
    let d = fragments(&udp(c1, 6002, s1, 53, 2000), 102, &[1480]);
    add(&mut v, 1, d[0].clone(), "fragment 0".into());
    add(&mut v, 1, d[0].clone(), "fragment 0 again (duplicate: +inv)".into());
    add(&mut v, 1, d[1].clone(), "fragment 1".into());
    // An overlap: a fragment starting inside the first.
    let whole = udp(c1, 6003, s1, 53, 2000);
    let d = fragments(&whole, 103, &[1480]);
    add(&mut v, 1, d[0].clone(), "fragment 0".into());
    add(&mut v, 1, fragments(&whole, 103, &[1400])[1].clone(), "a fragment at 1400 (overlap: +inv)".into());
    add(&mut v, 1, d[1].clone(), "fragment 1".into());
    // A fragment covering a held one: OVS does not catch it; then the
    // first fragment's end overlaps it and the list never completes (the
    // frames stay within the dummy ports' 1,500-byte MTU, which OVS
    // enforces on output).
    let d = fragments(&udp(c1, 6004, s1, 53, 1972), 104, &[1480]);
    let longer = udp(c1, 6004, s1, 53, 1984);
    add(&mut v, 1, d[1].clone(), "last fragment (1480..1979)".into());
    add(&mut v, 1, fragments(&longer, 104, &[1472])[1].clone(), "1472..1991, covering it (not caught)".into());
    add(&mut v, 1, d[0].clone(), "fragment 0 (ends inside the cover: +inv)".into());
    // Too small, and exactly the minimum (IP options make 1,200).
    let d = fragments(&udp(c1, 6005, s1, 53, 2000), 105, &[1176]);
    add(&mut v, 1, d[0].clone(), "a first fragment of 1,196 bytes (too small: +inv)".into());
    let d = fragments(&with_options(udp(c1, 6006, s1, 53, 2000)), 106, &[1176]);
    add(&mut v, 1, d[1].clone(), "last fragment first".into());
    add(&mut v, 1, d[0].clone(), "a first fragment of exactly 1,200 bytes (IP options)".into());
    // A small last fragment carrying Ethernet padding.
    let mut d = fragments(&udp(c1, 6007, s1, 53, 1484), 107, &[1480]);
    d[1].resize(60, 0);
    add(&mut v, 1, d[1].clone(), "a last fragment of 24 bytes, padded to 60".into());
    add(&mut v, 1, d[0].clone(), "fragment 0".into());
    // A bad header checksum.
    let mut d = fragments(&udp(c1, 6008, s1, 53, 2000), 108, &[1480]);
    d[0][25] ^= 1;
    add(&mut v, 1, d[0].clone(), "a bad header checksum (+inv, not counted)".into());
    // A bad UDP checksum over the datagram: every fragment +inv.
    let mut d = fragments(&udp(c1, 6009, s1, 53, 2000), 109, &[1480]);
    d[1][40] ^= 0x20;
    add(&mut v, 1, d[0].clone(), "fragment 0".into());
    add(&mut v, 1, d[1].clone(), "fragment 1, its data changed (the datagram's checksum fails)".into());
    // One datagram's fragments in on two ports (one zone).
    let d = fragments(&udp(c1, 6010, s1, 53, 2000), 110, &[1480]);
    add(&mut v, 1, d[0].clone(), "fragment 0 on port 1".into());
    add(&mut v, 2, d[1].clone(), "fragment 1 on port 2".into());
    // TCP: a handshake, then 3,000 bytes of data in three fragments out of
    // order, the ACK, a retransmission cut otherwise.
    let seg = |src, sport, dst, dport, flags, seq, ack, payload| {
        tcp(&TcpSpec { src, sport, dst, dport, seq, ack, flags, win: 65535, wscale: None, payload })
    };
    add(&mut v, 1, seg(c1, 41000, s1, 80, SYN, 100, 0, 0), "TCP SYN".into());
    add(&mut v, 9, seg(s1, 80, c1, 41000, SYN | ACK, 900, 101, 0), "SYN+ACK".into());
    add(&mut v, 1, seg(c1, 41000, s1, 80, ACK, 101, 901, 0), "ACK".into());
    let data = seg(c1, 41000, s1, 80, PSH | ACK, 101, 901, 3000);
    let d = fragments(&data, 111, &[1480, 1480]);
    for i in [1, 0, 2] {
        add(&mut v, 1, d[i].clone(), format!("3,000 bytes of TCP, fragment {i}"));
    }
    add(&mut v, 9, seg(s1, 80, c1, 41000, ACK, 901, 3101, 0), "their ACK".into());
    let d = fragments(&data, 112, &[1000, 1000]);
    for (i, f) in d.into_iter().enumerate() {
        add(&mut v, 1, f, format!("retransmitted, cut otherwise, fragment {i}"));
    }
    // ICMP echo of 3,000 bytes both ways.
    let d = fragments(&big_echo(c1, s1, 8, 77, 3000), 113, &[1480, 1480]);
    for (i, f) in d.into_iter().enumerate() {
        add(&mut v, 1, f, format!("echo request, fragment {i}"));
    }
    let d = fragments(&big_echo(s1, c1, 0, 77, 3000), 114, &[1480, 1480]);
    for i in [2, 0, 1] {
        add(&mut v, 9, d[i].clone(), format!("echo reply, fragment {i}"));
    }

    // Zone 2: tracked, never committed.
    let d = fragments(&udp(ip(10, 2, 0, 1), 1, ip(10, 2, 0, 2), 2, 2000), 115, &[1480]);
    for (i, f) in d.into_iter().enumerate() {
        add(&mut v, 1, f, format!("zone 2, fragment {i}"));
    }

    // Zone 3: SNAT both ways, a colliding port, an echo.
    let (c3a, c3b, s3, x3) = (ip(10, 3, 0, 1), ip(10, 3, 0, 2), ip(10, 3, 1, 1), ip(10, 3, 255, 1));
    let d = fragments(&udp(c3a, 7000, s3, 53, 2000), 116, &[1480]);
    for (i, f) in d.into_iter().enumerate() {
        add(&mut v, 1, f, format!("SNAT UDP, fragment {i}"));
    }
    let d = fragments(&udp(s3, 53, x3, 7000, 2000), 117, &[1480]);
    for i in [1, 0] {
        add(&mut v, 9, d[i].clone(), format!("its reply, fragment {i}"));
    }
    let d = fragments(&udp(c3b, 7000, s3, 53, 2000), 118, &[1480]);
    for (i, f) in d.into_iter().enumerate() {
        add(&mut v, 1, f, format!("SNAT UDP, same port from another client (moved), fragment {i}"));
    }
    let d = fragments(&udp(s3, 53, x3, 7001, 1600), 119, &[1480]);
    for (i, f) in d.into_iter().enumerate() {
        add(&mut v, 9, f, format!("reply to the moved port, fragment {i}"));
    }
    let d = fragments(&big_echo(c3a, s3, 8, 78, 2000), 120, &[1480]);
    for (i, f) in d.into_iter().enumerate() {
        add(&mut v, 1, f, format!("SNAT echo, fragment {i}"));
    }

    // Zone 4: DNAT both ways.
    let (c4, vip, b4) = (ip(10, 4, 0, 1), ip(172, 30, 0, 10), ip(10, 4, 0, 10));
    let d = fragments(&udp(c4, 7100, vip, 53, 2000), 121, &[1480]);
    for i in [1, 0] {
        add(&mut v, 1, d[i].clone(), format!("DNAT UDP, fragment {i}"));
    }
    let d = fragments(&udp(b4, 8080, c4, 7100, 2000), 122, &[1480]);
    for (i, f) in d.into_iter().enumerate() {
        add(&mut v, 9, f, format!("from the backend, fragment {i}"));
    }

    // Zone 6: marks and labels.
    let (c6, s6) = (ip(10, 6, 0, 1), ip(10, 6, 1, 1));
    let d = fragments(&udp(c6, 7200, s6, 53, 2000), 123, &[1480]);
    for (i, f) in d.into_iter().enumerate() {
        add(&mut v, 1, f, format!("marked, fragment {i}"));
    }
    let d = fragments(&udp(s6, 53, c6, 7200, 2000), 124, &[1480]);
    for (i, f) in d.into_iter().enumerate() {
        add(&mut v, 9, f, format!("reply sets 0x100/0xff00, fragment {i}"));
    }

    // Zone 7: ct, then ct(commit,nat) when new: reassembled twice.
    let (c7, s7, x7) = (ip(10, 7, 0, 1), ip(10, 7, 1, 1), ip(10, 7, 255, 1));
    let d = fragments(&udp(c7, 7300, s7, 53, 2000), 125, &[1480]);
    for (i, f) in d.into_iter().enumerate() {
        add(&mut v, 1, f, format!("two cts, fragment {i}"));
    }
    let d = fragments(&udp(s7, 53, x7, 7300, 2000), 126, &[1480]);
    for (i, f) in d.into_iter().enumerate() {
        add(&mut v, 9, f, format!("reply, fragment {i}"));
    }

    // Zones by in_port: one datagram's fragments on ports 1 and 9 are in
    // two zones, two lists that never complete.
    let d = fragments(&udp(ip(10, 11, 0, 1), 7400, ip(10, 11, 0, 2), 53, 2000), 127, &[1480]);
    add(&mut v, 1, d[0].clone(), "zone 1 (in_port), fragment 0".into());
    add(&mut v, 9, d[1].clone(), "zone 9 (in_port), fragment 1".into());

    // 40 fragments: the one completing the list sends 32 on, the next ct
    // the other 8.
    let d = fragments(&udp(c1, 6100, s1, 53, 47000), 128, &[1184; 39]);
    for (i, f) in d.into_iter().enumerate() {
        add(&mut v, 1, f, format!("40 fragments, fragment {i}"));
    }
    add(&mut v, 1, udp(c1, 6101, s1, 53, 10), "the next packet through ct: the last 8 leave with it".into());

    // A list's limit: 58 fragments at the 1,200-byte minimum. Last
    // fragments (no more-fragments bit) escape the minimum, so 59 small
    // ones at distinct offsets reach it; the 59th is refused (+inv,
    // uncounted). The 58 wait for the list's expiry below.
    for k in 1..=59u16 {
        let mut f = udp(c1, 6500, s1, 53, 24);
        f = with_id(f, 131);
        f[20..22].copy_from_slice(&(k * 4).to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let c = fastpath::wire::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        add(&mut v, 1, f, format!("a last fragment of 32 bytes at {} ({k} of 59)", k * 32));
    }

    // Time: two incomplete lists; 15 s later each ct sends one list on
    // (+inv); 25 s after they started, what is left is purged.
    let d = fragments(&udp(c1, 6200, s1, 53, 2000), 129, &[1480]);
    add(&mut v, 1, d[0].clone(), "an incomplete list".into());
    let d = fragments(&udp(c1, 6201, s1, 53, 2000), 130, &[1480]);
    add(&mut v, 1, d[1].clone(), "another".into());
    v.push(Pkt::warp(16_000));
    for i in 0..3 {
        add(
            &mut v,
            1,
            udp(c1, 6300 + i, s1, 53, 10),
            format!("a packet through ct 16 s later ({i}): an expired list leaves with it"),
        );
    }
    v.push(Pkt::warp(10_000));
    for i in 0..4 {
        add(&mut v, 1, udp(c1, 6400 + i, s1, 53, 10), format!("26 s later ({i}): the rest is purged"));
    }
    v
}

/// What the script printed: per packet its outputs, then the dump.
pub fn run_ovs(pkts: &[Pkt]) -> (Vec<Out>, Vec<String>) {
    let stdout = run_ovs_raw(pkts);
    let (outs, dump) = parse_output(&stdout);
    assert_eq!(outs.len(), n_packets(pkts), "one result per packet:\n{stdout}");
    (outs, dump)
}

/// Packets (warps aside).
pub fn n_packets(pkts: &[Pkt]) -> usize {
    pkts.iter().filter(|p| p.warp_ms == 0).count()
}

/// The packets alone (warps aside), in order: the results line up with
/// them.
pub fn packets(pkts: &[Pkt]) -> Vec<&Pkt> {
    pkts.iter().filter(|p| p.warp_ms == 0).collect()
}

/// A section of the script's (or `ct-replay`'s) output: the lines after
/// `--- NAME` up to the next `--- `.
pub fn section(stdout: &str, name: &str) -> Vec<String> {
    let head = format!("--- {name}");
    stdout
        .lines()
        .skip_while(|l| *l != head)
        .skip(1)
        .take_while(|l| !l.starts_with("--- "))
        .map(str::to_string)
        .collect()
}

/// The oracle script's raw output for `pkts`.
pub fn run_ovs_raw(pkts: &[Pkt]) -> String {
    let v = Command::new("ovs-vswitchd").arg("--version").output().unwrap_or_else(|e| {
        panic!("Open vSwitch is needed for this test (apt-get install openvswitch-switch; tools/deps.sh): {e}")
    });
    assert!(String::from_utf8_lossy(&v.stdout).contains("Open vSwitch"), "ovs-vswitchd --version: {v:?}");
    // The repository's tools/, from the including crate's directory (the
    // root crate or fastpath/).
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script = [base.join("tools/ovs-ct-oracle.sh"), base.join("../tools/ovs-ct-oracle.sh")]
        .into_iter()
        .find(|p| p.exists())
        .expect("tools/ovs-ct-oracle.sh missing");
    let dir = tempfile::tempdir().expect("temp dir");
    let flows = dir.path().join("flows");
    let packets = dir.path().join("packets");
    std::fs::write(&flows, FLOWS).unwrap();
    std::fs::write(&packets, packet_file(pkts)).unwrap();
    let out = Command::new("bash").arg(&script).arg(&flows).arg(&packets).output().expect("run the oracle script");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "oracle script failed: {}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The packet file of a corpus (`PORT HEX` lines, each after a comment
/// saying what it is), as the oracle script and `sdnfwd ct-replay` take it.
pub fn packet_file(pkts: &[Pkt]) -> String {
    let mut text = String::new();
    for p in pkts {
        if p.warp_ms > 0 {
            writeln!(text, "warp {}", p.warp_ms).unwrap();
        } else {
            writeln!(text, "# {}\n{} {}", p.what, p.port, hex(&p.frame)).unwrap();
        }
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
    for (i, p) in packets(pkts).into_iter().enumerate() {
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
        Pkt::new(
            if dir == 0 { 1 } else { 9 },
            tcp(&spec),
            format!("random {} {flags:#04x} seq {seq} ack {ack} win {win} len {payload}", k.port),
        )
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
