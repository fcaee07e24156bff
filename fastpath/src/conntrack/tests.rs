//! The tracker through its API: each protocol's states, NAT (collisions,
//! exhaustion, ICMP errors, checksums), marks and labels, a second `ct` of
//! the same packet, expiry and sweeping, the connection limit, fragments,
//! concurrency, and the memory a connection takes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::conn::Conn;
use super::frames::{fragment, icmp_echo, icmp_error, ip, ipv4, tcp, udp, TcpSpec, ACK, FIN, PSH, RST, SYN};
use super::tracker::Conntrack;
use super::types::*;
use crate::wire::{checksum, fold, sum16};

const C: u32 = ip(10, 0, 0, 1);
const C2: u32 = ip(10, 0, 0, 3);
const S: u32 = ip(10, 0, 0, 2);
const X: u32 = ip(192, 168, 0, 1);
const R: u32 = ip(10, 0, 0, 254);

const NEW: u8 = CS_TRACKED | CS_NEW;
const EST: u8 = CS_TRACKED | CS_ESTABLISHED;
const RPL: u8 = CS_TRACKED | CS_ESTABLISHED | CS_REPLY_DIR;
const INV: u8 = CS_TRACKED | CS_INVALID;

fn ct() -> Conntrack {
    Conntrack::new(CtConfig { max_conns: 1000, ..CtConfig::default() })
}

fn commit(zone: u16) -> CtRequest {
    CtRequest { zone, commit: true, ..CtRequest::default() }
}

fn track(zone: u16) -> CtRequest {
    CtRequest { zone, ..CtRequest::default() }
}

fn snat(zone: u16, addr: u32, ports: (u16, u16)) -> CtRequest {
    let r = NatRange { addr_min: addr, addr_max: addr, port_min: ports.0, port_max: ports.1, ..NatRange::default() };
    CtRequest { zone, commit: true, nat: Some(NatRequest::Src(r)), ..CtRequest::default() }
}

fn dnat(zone: u16, addr: u32, port: u16) -> CtRequest {
    let r = NatRange { addr_min: addr, addr_max: addr, port_min: port, port_max: port, ..NatRange::default() };
    CtRequest { zone, commit: true, nat: Some(NatRequest::Dst(r)), ..CtRequest::default() }
}

fn unnat(zone: u16) -> CtRequest {
    CtRequest { zone, nat: Some(NatRequest::Reverse), ..CtRequest::default() }
}

#[allow(clippy::too_many_arguments)]
fn seg(src: u32, sport: u16, dst: u32, dport: u16, flags: u8, seq: u32, ack: u32, payload: usize) -> Vec<u8> {
    tcp(&TcpSpec { src, sport, dst, dport, seq, ack, flags, win: 65535, wscale: None, payload })
}

/// Runs `f` through `ct`: the state, and the frame as rewritten.
fn go(ct: &Conntrack, mut f: Vec<u8>, req: &CtRequest, now: u64) -> (CtResult, Vec<u8>) {
    let r = ct.execute(&mut f, req, now);
    (r, f)
}

fn state(ct: &Conntrack, f: Vec<u8>, req: &CtRequest, now: u64) -> u8 {
    go(ct, f, req, now).0.state
}

/// Every checksum of the frame verifies (IPv4 header, TCP/UDP, ICMP and
/// the header an ICMP error quotes).
fn assert_checksums(f: &[u8]) {
    let ihl = ((f[14] & 15) * 4) as usize;
    assert_eq!(checksum(&f[14..14 + ihl]), 0, "IPv4 header checksum");
    let end = 14 + u16::from_be_bytes([f[16], f[17]]) as usize;
    let l4 = 14 + ihl;
    match f[23] {
        6 | 17 => {
            let sum = sum16(&f[26..34]) + f[23] as u32 + (end - l4) as u32 + sum16(&f[l4..end]);
            assert_eq!(fold(sum), 0, "L4 checksum");
        }
        1 => {
            assert_eq!(checksum(&f[l4..end]), 0, "ICMP checksum");
            if matches!(f[l4], 3 | 11) {
                let il3 = l4 + 8;
                let ihl = ((f[il3] & 15) * 4) as usize;
                assert_eq!(checksum(&f[il3..il3 + ihl]), 0, "quoted IPv4 header checksum");
            }
        }
        _ => {}
    }
}

fn addrs(f: &[u8]) -> (u32, u16, u32, u16) {
    let a = |i: usize| u32::from_be_bytes([f[i], f[i + 1], f[i + 2], f[i + 3]]);
    let p = |i: usize| u16::from_be_bytes([f[i], f[i + 1]]);
    (a(26), p(34), a(30), p(36))
}

#[test]
fn test_tcp_lifecycle() {
    let ct = ct();
    let z = commit(0);
    let c = |flags, seq, ack, len| seg(C, 40000, S, 80, flags, seq, ack, len);
    let s = |flags, seq, ack, len| seg(S, 80, C, 40000, flags, seq, ack, len);
    // A SYN+ACK of no connection, nonsense flags: invalid, nothing created.
    assert_eq!(state(&ct, s(SYN | ACK, 5000, 1001, 0), &z, 0), INV);
    assert_eq!(state(&ct, c(SYN | FIN, 1000, 0, 0), &z, 0), INV);
    // Not committed: new, nothing created.
    let (r, _) = go(&ct, c(SYN, 1000, 0, 0), &track(0), 0);
    assert_eq!(r.state, NEW);
    assert_eq!(r.orig, Some(CtTuple { src: C, dst: S, proto: 6, sport: 40000, dport: 80 }));
    assert_eq!(ct.stats().n_conns, 0);
    // The handshake.
    assert_eq!(state(&ct, c(SYN, 1000, 0, 0), &z, 0), NEW);
    assert_eq!(state(&ct, c(SYN, 1000, 0, 0), &z, 0), NEW, "a repeated SYN");
    assert_eq!(state(&ct, s(SYN | ACK, 5000, 1001, 0), &z, 0), RPL);
    assert_eq!(state(&ct, c(ACK, 1001, 5001, 0), &z, 0), EST);
    assert_eq!(
        ct.dump(None, 0),
        ["tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=40000,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=40000),protoinfo=(state=ESTABLISHED)"]
    );
    assert_eq!(
        ct.dump_with(None, 1000, true)[0].split(",timeout=").nth(1),
        Some("86399,protoinfo=(state=ESTABLISHED)")
    );
    // Data, a retransmission, an ACK, then a segment far out of window.
    assert_eq!(state(&ct, c(ACK | PSH, 1001, 5001, 100), &z, 0), EST);
    assert_eq!(state(&ct, c(ACK | PSH, 1001, 5001, 100), &z, 0), EST);
    assert_eq!(state(&ct, s(ACK, 5001, 1101, 0), &z, 0), RPL);
    let (r, _) = go(&ct, c(ACK | PSH, 900_000, 5001, 100), &z, 0);
    assert_eq!(r.state, INV, "out of window");
    assert_eq!(r.orig.map(|o| o.sport), Some(40000), "an invalid packet of a connection still gets its tuple");
    // A bad checksum.
    let mut bad = c(ACK, 1101, 5001, 0);
    bad[50] ^= 1;
    assert_eq!(state(&ct, bad, &z, 0), INV);
    // Both sides close.
    assert_eq!(state(&ct, c(ACK | FIN, 1101, 5001, 0), &z, 0), EST);
    assert_eq!(state(&ct, s(ACK, 5001, 1102, 0), &z, 0), RPL);
    assert_eq!(state(&ct, s(ACK | FIN, 5001, 1102, 0), &z, 0), RPL);
    assert_eq!(state(&ct, c(ACK, 1102, 5002, 0), &z, 0), EST);
    assert!(ct.dump(None, 0)[0].ends_with("protoinfo=(state=TIME_WAIT)"));
    assert_eq!(ct.dump_with(None, 0, true)[0].split(",timeout=").nth(1), Some("30,protoinfo=(state=TIME_WAIT)"));
    // A SYN on the closed tuple: a new connection.
    assert_eq!(state(&ct, c(SYN, 77_000, 0, 0), &z, 0), NEW);
    assert_eq!(ct.dump(None, 0).len(), 1);
    assert!(ct.dump(None, 0)[0].ends_with("protoinfo=(state=SYN_SENT)"));
    let st = ct.stats();
    assert_eq!((st.n_created, st.n_conns, st.n_invalid), (2, 2, 4), "the old one waits for the sweeper");
    assert_eq!(ct.sweep(0, 10), 1);
    assert_eq!(ct.stats().n_conns, 1);
}

#[test]
fn test_tcp_reset_and_midstream() {
    let ct = ct();
    let z = commit(0);
    // Picked up mid-stream: +new, then both directions established.
    assert_eq!(state(&ct, seg(C, 40001, S, 80, ACK, 10_000, 20_000, 10), &z, 0), NEW);
    assert_eq!(state(&ct, seg(S, 80, C, 40001, ACK, 20_000, 10_010, 0), &z, 0), RPL);
    assert_eq!(state(&ct, seg(C, 40001, S, 80, ACK, 10_010, 20_000, 10), &z, 0), EST);
    // A reset with a wrong sequence number, then a right one.
    assert_eq!(state(&ct, seg(S, 80, C, 40001, RST | ACK, 99_999_999, 10_020, 0), &z, 0), INV);
    assert_eq!(state(&ct, seg(S, 80, C, 40001, RST | ACK, 20_000, 10_020, 0), &z, 0), RPL);
    assert!(ct.dump(None, 0)[0].ends_with("protoinfo=(state=TIME_WAIT)"));
    assert_eq!(state(&ct, seg(C, 40001, S, 80, SYN, 1, 0, 0), &z, 1), NEW, "a new connection on the reset tuple");
    // The responder's first packet sets its sequence: a reset at it is in
    // window; one at another sequence afterwards is not.
    assert_eq!(state(&ct, seg(S, 80, C, 40001, RST, 2, 0, 0), &z, 1), RPL);
    assert!(ct.dump(None, 1)[0].ends_with("protoinfo=(state=TIME_WAIT)"));
}

#[test]
fn test_udp_icmp_other() {
    let ct = ct();
    let z = commit(7);
    assert_eq!(state(&ct, udp(C, 1000, S, 53, 10), &z, 0), NEW);
    assert_eq!(state(&ct, udp(C, 1000, S, 53, 10), &z, 0), NEW, "a second packet one way is still new");
    assert_eq!(state(&ct, udp(S, 53, C, 1000, 10), &track(7), 0), RPL);
    assert_eq!(state(&ct, udp(C, 1000, S, 53, 10), &track(7), 0), EST);
    assert_eq!(state(&ct, udp(S, 53, C, 1000, 10), &track(8), 0), NEW, "another zone");
    // ICMP echo.
    assert_eq!(state(&ct, icmp_echo(S, C, 0, 9, 1), &z, 0), INV, "a reply starts nothing");
    assert_eq!(state(&ct, icmp_echo(C, S, 8, 9, 1), &z, 0), NEW);
    assert_eq!(state(&ct, icmp_echo(C, S, 8, 9, 2), &z, 0), NEW);
    assert_eq!(state(&ct, icmp_echo(S, C, 0, 9, 1), &z, 0), RPL);
    assert_eq!(state(&ct, icmp_echo(C, S, 8, 9, 3), &z, 0), EST);
    let (r, _) = go(&ct, icmp_echo(C, S, 8, 9, 4), &z, 0);
    assert_eq!(r.orig, Some(CtTuple { src: C, dst: S, proto: 1, sport: 8, dport: 0 }), "ICMP: type and code");
    // ICMP errors: about the UDP flow, from the server's side (reply) and
    // the client's side (original direction); about nothing known.
    let about = udp(C, 1000, S, 53, 10);
    assert_eq!(state(&ct, icmp_error(R, C, 3, 3, &about, 64), &z, 0), CS_TRACKED | CS_RELATED | CS_REPLY_DIR);
    let back = udp(S, 53, C, 1000, 10);
    assert_eq!(state(&ct, icmp_error(R, S, 11, 0, &back, 28), &z, 0), CS_TRACKED | CS_RELATED);
    assert_eq!(state(&ct, icmp_error(R, C, 3, 3, &udp(C, 1001, S, 53, 0), 28), &z, 0), INV);
    assert_eq!(
        state(&ct, icmp_error(R, X, 3, 3, &about, 28), &z, 0),
        INV,
        "quoting a packet not from the error's destination"
    );
    assert_eq!(state(&ct, icmp_error(R, C, 3, 3, &about, 24), &z, 0), INV, "fewer than 8 L4 bytes quoted");
    let echo = icmp_echo(C, S, 8, 9, 1);
    assert_eq!(state(&ct, icmp_error(R, C, 11, 0, &echo, 28), &z, 0), CS_TRACKED | CS_RELATED | CS_REPLY_DIR);
    // Another protocol: addresses only.
    assert_eq!(state(&ct, ipv4(C, S, 47, &[0; 8]), &z, 0), NEW);
    assert_eq!(state(&ct, ipv4(S, C, 47, &[0; 8]), &z, 0), RPL);
    let mut dump = ct.dump(Some(7), 0);
    dump.sort();
    assert_eq!(
        dump,
        [
            "47,orig=(src=10.0.0.1,dst=10.0.0.2,sport=0,dport=0),reply=(src=10.0.0.2,dst=10.0.0.1,sport=0,dport=0),zone=7",
            "icmp,orig=(src=10.0.0.1,dst=10.0.0.2,id=9,type=8,code=0),reply=(src=10.0.0.2,dst=10.0.0.1,id=9,type=0,code=0),zone=7",
            "udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1000,dport=53),reply=(src=10.0.0.2,dst=10.0.0.1,sport=53,dport=1000),zone=7",
        ]
    );
    assert!(ct.dump(Some(8), 0).is_empty());
    // Not IPv4, or a port 0: invalid.
    let mut arp = udp(C, 1000, S, 53, 10);
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(state(&ct, arp, &z, 0), INV);
    assert_eq!(state(&ct, udp(C, 0, S, 53, 10), &z, 0), INV);
}

#[test]
fn test_fragments() {
    let ct = ct();
    let mut f = udp(C, 1000, S, 53, 10);
    fragment(&mut f, 0);
    let (r, _) = go(&ct, f, &commit(0), 0);
    assert_eq!((r.state, r.orig), (INV, None));
    let st = ct.stats();
    assert_eq!((st.n_fragments, st.n_invalid, st.n_conns), (1, 1, 0));
}

#[test]
fn test_snat_both_ways_and_collisions() {
    let ct = ct();
    let nat = snat(3, X, (0, 0));
    let (r, f) = go(&ct, seg(C, 40000, S, 80, SYN, 1000, 0, 0), &nat, 0);
    assert_eq!(r.state, NEW | CS_SRC_NAT);
    assert_eq!(addrs(&f), (X, 40000, S, 80));
    assert_checksums(&f);
    // A second client with the same port: the port moves.
    let (r, f) = go(&ct, seg(C2, 40000, S, 80, SYN, 3000, 0, 0), &nat, 0);
    assert_eq!(r.state, NEW | CS_SRC_NAT);
    assert_eq!(addrs(&f), (X, 40001, S, 80));
    assert_checksums(&f);
    assert_eq!(r.orig, Some(CtTuple { src: C2, dst: S, proto: 6, sport: 40000, dport: 80 }));
    // Replies are translated back: +dnat in the reply direction.
    let (r, f) = go(&ct, seg(S, 80, X, 40001, SYN | ACK, 9000, 3001, 0), &unnat(3), 0);
    assert_eq!(r.state, RPL | CS_DST_NAT);
    assert_eq!(addrs(&f), (S, 80, C2, 40000));
    assert_checksums(&f);
    let (r, f) = go(&ct, seg(C2, 40000, S, 80, ACK, 3001, 9001, 5), &unnat(3), 0);
    assert_eq!(r.state, EST | CS_SRC_NAT);
    assert_eq!(addrs(&f), (X, 40001, S, 80));
    assert_checksums(&f);
    // An ICMP error about the translated flow, from the server's side: the
    // outer destination and the quoted source are translated back.
    let quoted = seg(X, 40001, S, 80, ACK, 3006, 9001, 0);
    let (r, f) = go(&ct, icmp_error(R, X, 3, 4, &quoted, 40), &unnat(3), 0);
    assert_eq!(r.state, CS_TRACKED | CS_RELATED | CS_REPLY_DIR | CS_DST_NAT);
    assert_eq!(&f[30..34], &C2.to_be_bytes(), "outer destination");
    assert_eq!(&f[42 + 12..42 + 16], &C2.to_be_bytes(), "quoted source");
    assert_eq!(&f[62..64], &40000u16.to_be_bytes(), "quoted source port");
    assert_checksums(&f);
    // The host X itself using port 40000 to S:80 in the zone: its reverse is
    // taken by the first translation, so `nat(src=0.0.0.0)` moves its port.
    let keep = CtRequest { nat: Some(NatRequest::Src(NatRange::default())), ..nat };
    let (r, f) = go(&ct, seg(X, 40000, S, 80, SYN, 5, 0, 0), &keep, 0);
    assert_eq!(r.state, NEW | CS_SRC_NAT);
    assert_eq!(addrs(&f), (X, 40002, S, 80), "40001 is taken too");
    // Without a collision the address and port stay (but the packet counts
    // as translated, as in OVS).
    let (r, f) = go(&ct, seg(X, 41000, S, 80, SYN, 5, 0, 0), &keep, 0);
    assert_eq!((r.state, addrs(&f)), (NEW | CS_SRC_NAT, (X, 41000, S, 80)));
    let mut dump = ct.dump(None, 0);
    dump.sort();
    assert_eq!(
        dump[0],
        "tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=40000,dport=80),reply=(src=10.0.0.2,dst=192.168.0.1,sport=80,dport=40000),zone=3,protoinfo=(state=SYN_SENT)"
    );
    assert_eq!(
        dump[1],
        "tcp,orig=(src=10.0.0.3,dst=10.0.0.2,sport=40000,dport=80),reply=(src=10.0.0.2,dst=192.168.0.1,sport=80,dport=40001),zone=3,protoinfo=(state=ESTABLISHED)"
    );
}

#[test]
fn test_snat_exhaustion_and_icmp() {
    let ct = ct();
    let one = snat(4, X, (5000, 5000));
    let (r, f) = go(&ct, udp(C, 1000, S, 53, 4), &one, 0);
    assert_eq!((r.state, addrs(&f)), (NEW | CS_SRC_NAT, (X, 5000, S, 53)));
    assert_checksums(&f);
    // The only port is taken: not created, not translated, still +new.
    let (r, f) = go(&ct, udp(C2, 1000, S, 53, 4), &one, 0);
    assert_eq!((r.state, addrs(&f)), (NEW, (C2, 1000, S, 53)));
    assert_eq!(ct.stats().n_nat_exhausted, 1);
    // ICMP echo: the address only; a second client with the same id
    // collides (one candidate) and is exhausted too.
    let (r, f) = go(&ct, icmp_echo(C, S, 8, 77, 1), &one, 0);
    assert_eq!(r.state, NEW | CS_SRC_NAT);
    assert_eq!(&f[26..30], &X.to_be_bytes());
    assert_checksums(&f);
    let (r, _) = go(&ct, icmp_echo(C2, S, 8, 77, 1), &one, 0);
    assert_eq!(r.state, NEW);
    let (r, f) = go(&ct, icmp_echo(S, X, 0, 77, 1), &unnat(4), 0);
    assert_eq!(r.state, RPL | CS_DST_NAT);
    assert_eq!(&f[30..34], &C.to_be_bytes());
    assert_checksums(&f);
    assert_eq!(ct.stats().n_nat_exhausted, 2);
}

#[test]
fn test_dnat() {
    let ct = ct();
    let vip = ip(172, 30, 0, 10);
    let vip2 = ip(172, 30, 0, 11);
    let (r, f) = go(&ct, seg(C, 40000, vip, 443, SYN, 1, 0, 0), &dnat(5, S, 8443), 0);
    assert_eq!((r.state, addrs(&f)), (NEW | CS_DST_NAT, (C, 40000, S, 8443)));
    assert_checksums(&f);
    let (r, f) = go(&ct, seg(S, 8443, C, 40000, SYN | ACK, 100, 2, 0), &unnat(5), 0);
    assert_eq!((r.state, addrs(&f)), (RPL | CS_SRC_NAT, (vip, 443, C, 40000)));
    assert_checksums(&f);
    // The same client port to another VIP on the same backend: the backend
    // tuple is taken, so the client's port moves (OVS tries the source port
    // class after the destination port range).
    let (r, f) = go(&ct, seg(C, 40000, vip2, 443, SYN, 1, 0, 0), &dnat(5, S, 8443), 0);
    assert_eq!((r.state, addrs(&f)), (NEW | CS_DST_NAT, (C, 40001, S, 8443)));
    let (r, f) = go(&ct, seg(S, 8443, C, 40001, SYN | ACK, 100, 2, 0), &unnat(5), 0);
    assert_eq!((r.state, addrs(&f)), (RPL | CS_SRC_NAT, (vip2, 443, C, 40000)));
    assert_checksums(&f);
    // Plain `nat` committing a new connection: tracked, not translated.
    let plain = CtRequest { commit: true, ..unnat(5) };
    let (r, f) = go(&ct, udp(C, 7, S, 7, 0), &plain, 0);
    assert_eq!((r.state, addrs(&f)), (NEW, (C, 7, S, 7)));
    assert_eq!(state(&ct, udp(S, 7, C, 7, 0), &plain, 0), RPL);
}

#[test]
fn test_marks_labels() {
    let ct = ct();
    let req = CtRequest { set_mark: Some((0x2a, u32::MAX)), set_label: Some((0x1234 << 64, u128::MAX)), ..commit(6) };
    let (r, _) = go(&ct, udp(C, 1, S, 2, 0), &req, 0);
    assert_eq!((r.state, r.mark, r.label, r.zone), (NEW, 0x2a, 0x1234 << 64, 6));
    let (r, _) = go(&ct, udp(S, 2, C, 1, 0), &track(6), 0);
    assert_eq!((r.state, r.mark, r.label), (RPL, 0x2a, 0x1234 << 64));
    // Masked: only the low byte changes.
    let req = CtRequest { set_mark: Some((0x01, 0xff)), set_label: None, ..commit(6) };
    let (r, _) = go(&ct, udp(C, 1, S, 2, 0), &req, 0);
    assert_eq!(r.mark, 0x01);
    let req = CtRequest { set_mark: Some((0x100, 0xff00)), ..commit(6) };
    assert_eq!(go(&ct, udp(C, 1, S, 2, 0), &req, 0).0.mark, 0x101);
    assert_eq!(
        ct.dump(None, 0),
        ["udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1,dport=2),reply=(src=10.0.0.2,dst=10.0.0.1,sport=2,dport=1),zone=6,mark=257,labels=0x12340000000000000000"]
    );
    // No connection: no mark.
    let (r, _) = go(&ct, udp(C, 9, S, 9, 0), &track(6), 0);
    assert_eq!((r.mark, r.label), (0, 0));
}

#[test]
fn test_second_ct_of_a_packet() {
    let ct = ct();
    // ct(zone=8) then, being new, ct(commit,zone=8,nat(src=X)).
    let mut f = seg(C, 40000, S, 80, SYN, 1, 0, 0);
    let first = ct.execute(&mut f, &track(8), 0);
    assert_eq!(first.state, NEW);
    assert!(!first.has_conn());
    let second = ct.execute_after(&mut f, &first, &snat(8, X, (0, 0)), 0);
    assert_eq!(second.state, NEW | CS_SRC_NAT);
    assert_eq!(addrs(&f), (X, 40000, S, 80));
    // A later packet: ct(zone=8) finds it, ct(zone=8,nat) reuses the
    // connection without running TCP again and translates.
    let mut f = seg(S, 80, X, 40000, SYN | ACK, 50, 2, 0);
    let first = ct.execute(&mut f, &unnat(8), 0);
    assert_eq!((first.state, addrs(&f)), (RPL | CS_DST_NAT, (S, 80, C, 40000)));
    let mut f = seg(C, 40000, S, 80, ACK, 2, 51, 0);
    let first = ct.execute(&mut f, &track(8), 0);
    assert_eq!(first.state, EST);
    assert!(first.has_conn());
    let second = ct.execute_after(&mut f, &first, &unnat(8), 0);
    assert_eq!(second.state, EST | CS_SRC_NAT);
    assert_eq!(addrs(&f), (X, 40000, S, 80));
    assert!(!second.has_conn());
    // The translated packet through ct(zone=8) again: found by its
    // translated tuple, not translated twice.
    let third = ct.execute_after(&mut f, &second, &track(8), 0);
    assert_eq!(third.state, EST | CS_SRC_NAT);
    assert_eq!(addrs(&f), (X, 40000, S, 80));
    // Into another zone: the state starts over.
    let other = ct.execute_after(&mut f, &third, &track(9), 0);
    assert_eq!(other.state, NEW);
    assert_eq!(other.zone, 9);
}

#[test]
fn test_force() {
    let ct = ct();
    assert_eq!(state(&ct, udp(C, 1, S, 2, 0), &commit(9), 0), NEW);
    // force on a packet in the reply direction: the old connection ends, a
    // new one starts in this direction.
    let force = CtRequest { force: true, ..commit(9) };
    assert_eq!(state(&ct, udp(S, 2, C, 1, 0), &force, 0), NEW);
    assert_eq!(
        ct.dump(None, 0),
        ["udp,orig=(src=10.0.0.2,dst=10.0.0.1,sport=2,dport=1),reply=(src=10.0.0.1,dst=10.0.0.2,sport=1,dport=2),zone=9"]
    );
    assert_eq!(state(&ct, udp(S, 2, C, 1, 0), &force, 0), NEW, "the original direction: kept");
    assert_eq!(state(&ct, udp(C, 1, S, 2, 0), &commit(9), 0), RPL);
}

#[test]
fn test_expiry_and_sweep() {
    let ct = ct();
    let z = commit(0);
    assert_eq!(state(&ct, udp(C, 1, S, 2, 0), &z, 0), NEW);
    assert_eq!(state(&ct, udp(S, 2, C, 1, 0), &z, 1000), RPL);
    // udp_multiple: 30 s after the last packet.
    assert_eq!(state(&ct, udp(C, 1, S, 2, 0), &track(0), 30_999), EST);
    assert_eq!(ct.dump(None, 60_998).len(), 1);
    assert!(ct.dump(None, 60_999).is_empty(), "expired: absent before it is swept");
    assert_eq!(state(&ct, udp(C, 1, S, 2, 0), &z, 61_000), NEW, "and replaced");
    assert_eq!(ct.stats().n_conns, 2);
    // Many short-lived ones; sweep with a budget.
    for i in 0..100u16 {
        assert_eq!(state(&ct, icmp_echo(C, S, 8, i, 0), &z, 100_000), NEW);
    }
    assert_eq!(ct.sweep(100_000, 10), 1, "only the replaced one has expired");
    assert_eq!(state(&ct, udp(C, 5, S, 5, 0), &z, 150_000), NEW);
    assert_eq!(ct.sweep(160_000, 0), 0);
    let mut swept = 0;
    for _ in 0..20 {
        let n = ct.sweep(160_000, 30);
        assert!(n <= 30);
        swept += n;
    }
    assert_eq!(swept, 101, "icmp_first and udp_first: 60 s");
    let st = ct.stats();
    assert_eq!((st.n_conns, st.n_expired, st.n_created), (1, 102, 103));
    ct.flush(None);
    let st = ct.stats();
    assert_eq!((st.n_conns, st.n_flushed), (0, 1));
}

#[test]
fn test_limit_and_flush_by_zone() {
    let ct = Conntrack::new(CtConfig { max_conns: 3, ..CtConfig::default() });
    for i in 0..3 {
        assert_eq!(state(&ct, udp(C, 100 + i, S, 2, 0), &commit(i), 0), NEW);
    }
    let (r, _) = go(&ct, udp(C, 200, S, 2, 0), &commit(0), 0);
    assert_eq!(r.state, NEW, "refused, but new, as OVS");
    let st = ct.stats();
    assert_eq!((st.n_conns, st.n_full, st.n_invalid), (3, 1, 0));
    ct.flush(Some(1));
    assert_eq!(ct.stats().n_conns, 2);
    assert_eq!(state(&ct, udp(C, 200, S, 2, 0), &commit(0), 0), NEW);
    assert_eq!(state(&ct, udp(S, 2, C, 200, 0), &commit(0), 0), RPL, "created once there was room");
}

/// Several threads run both directions of their connections while a
/// sweeper removes expired ones: no connection of theirs is lost, every
/// packet after the first exchange is established, the counts add up.
#[test]
fn test_concurrent() {
    const THREADS: u32 = 4;
    const CONNS: u32 = 300;
    const JUNK: u32 = 2000;
    const NOW: u64 = 100_000;
    let ct = Arc::new(Conntrack::new(CtConfig { max_conns: 4096, ..CtConfig::default() }));
    // Expired by NOW: the sweeper's work.
    for i in 0..JUNK {
        assert_eq!(state(&ct, udp(ip(10, 9, (i >> 8) as u8, i as u8), 7, S, 7, 0), &commit(1), 0), NEW);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sweeper = {
        let (ct, stop) = (ct.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += ct.sweep(NOW, 16);
                ct.dump(Some(2), NOW);
            }
            n + ct.sweep(NOW, usize::MAX)
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let ct = ct.clone();
            std::thread::spawn(move || {
                let conn = |i: u32| (ip(10, 1 + t as u8, (i >> 8) as u8, i as u8), 1000 + i as u16);
                for round in 0..20 {
                    for i in 0..CONNS {
                        let (a, port) = conn(i);
                        let z = commit(1);
                        if i % 2 == 0 {
                            let o = ct.execute(&mut udp(a, port, S, 53, 8), &z, NOW).state;
                            let r = ct.execute(&mut udp(S, 53, a, port, 8), &z, NOW).state;
                            assert_eq!((o, r), (if round == 0 { NEW } else { EST }, RPL), "udp {t}/{i} round {round}");
                        } else {
                            let base = 1000 * round as u32;
                            let syn = round == 0;
                            let f = if syn { SYN } else { ACK };
                            let o = ct.execute(&mut seg(a, port, S, 80, f, 1 + base, 5001 + base, 0), &z, NOW).state;
                            let rf = if syn { SYN | ACK } else { ACK };
                            let r = ct.execute(&mut seg(S, 80, a, port, rf, 5000 + base, 2 + base, 0), &z, NOW).state;
                            if !syn {
                                let d = seg(a, port, S, 80, ACK | PSH, 1 + base, 5001 + base, 1000);
                                assert_eq!(ct.execute(&mut d.clone(), &z, NOW).state, EST);
                            }
                            assert_eq!((o, r), (if syn { NEW } else { EST }, RPL), "tcp {t}/{i} round {round}");
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let swept = sweeper.join().unwrap();
    assert_eq!(swept, JUNK as usize);
    let st = ct.stats();
    let live = (THREADS * CONNS) as usize;
    assert_eq!(st.n_conns, live);
    assert_eq!(st.n_created, (live + JUNK as usize) as u64);
    assert_eq!(st.n_expired, JUNK as u64);
    assert_eq!(st.n_invalid, 0);
    assert_eq!(ct.dump(None, NOW).len(), live);
}

/// Flushes and sweeps racing packets of the same connections: nothing
/// crashes or is freed under a reader, every packet gets an answer, and the
/// counts add up (created = in the table + flushed + expired).
#[test]
fn test_concurrent_flush() {
    const THREADS: u8 = 3;
    let ct = Arc::new(Conntrack::new(CtConfig { max_conns: 256, ..CtConfig::default() }));
    let stop = Arc::new(AtomicBool::new(false));
    let flusher = {
        let (ct, stop) = (ct.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                ct.flush(if n % 2 == 0 { None } else { Some(1) });
                ct.sweep(u64::MAX, 8);
                n += 1;
            }
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let ct = ct.clone();
            std::thread::spawn(move || {
                let mut round = 0u32;
                // Until the flusher has removed some of ours (2 cores: it
                // may not have run at all in the first rounds).
                while round < 3000 || (ct.stats().n_flushed < 100 && round < 10_000_000) {
                    let pin = ct.pin();
                    let i = round % 64;
                    let a = ip(10, 2, t, i as u8);
                    let nat = snat(1, ip(192, 168, t, 1), (0, 0));
                    let mut md = CtResult::default();
                    let req = if i.is_multiple_of(2) { nat } else { commit(1) };
                    ct.execute_with(&pin, &mut udp(a, 1000, S, 53, 4), &mut md, &req, 0);
                    assert_ne!(md.state & (CS_NEW | CS_ESTABLISHED), 0, "{md:?}");
                    let back = if i.is_multiple_of(2) { ip(192, 168, t, 1) } else { a };
                    let mut md = CtResult::default();
                    ct.execute_with(&pin, &mut udp(S, 53, back, 1000, 4), &mut md, &unnat(1), 0);
                    assert_eq!(md.state & CS_INVALID, 0);
                    round += 1;
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    flusher.join().unwrap();
    let st = ct.stats();
    assert_eq!(st.n_created, st.n_conns as u64 + st.n_flushed + st.n_expired, "{st:?}");
    assert!(st.n_flushed >= 100, "{st:?}");
    assert_eq!(ct.dump(None, 0).len(), st.n_conns);
    ct.flush(None);
    assert_eq!(ct.stats().n_conns, 0);
}

/// A connection's memory: the node (rounded to the allocator's 16-byte
/// classes) and its share of the bucket array at the connection limit,
/// one bucket (8 bytes) per connection or less.
#[test]
fn test_bytes_per_connection() {
    let node = std::mem::size_of::<Conn>().div_ceil(16) * 16;
    let ct = Conntrack::new(CtConfig::default());
    let share = ct.n_buckets() * 8 / CtConfig::default().max_conns;
    eprintln!("bytes per connection: node {} ({} rounded) + buckets {}", std::mem::size_of::<Conn>(), node, share);
    assert!(node + share <= 192, "{node} + {share}");
    assert_eq!(ct.n_buckets(), 1 << 22);
}

/// The resident memory of a million connections (run by hand: `cargo test
/// -p fastpath --release rss_1m -- --ignored --nocapture`).
#[test]
#[ignore]
fn rss_1m() {
    fn rss_kb() -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        s.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
    }
    let before = rss_kb();
    let ct = Conntrack::new(CtConfig { max_conns: 1 << 20, ..CtConfig::default() });
    let mut f = udp(C, 1, S, 2, 0);
    for i in 0..1_000_000u32 {
        f[26..30].copy_from_slice(&(0x0a00_0000 | i).to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let c = checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f[40..42].copy_from_slice(&[0, 0]);
        ct.execute(&mut f, &CtRequest { commit: true, ..CtRequest::default() }, 0);
    }
    assert_eq!(ct.stats().n_conns, 1_000_000);
    let grown = rss_kb() - before;
    eprintln!("RSS growth for 1M connections: {} MB ({} bytes each)", grown / 1024, grown * 1024 / 1_000_000);
    assert!(grown < 200 * 1024);
}

#[test]
fn test_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Conntrack>();
}

/// `ct-stats-show`: connections by protocol, TCP's by state with
/// `verbose` (SYN_RECV counted as ESTABLISHED, as OVS coalesces them), by
/// zone; the text as `dpctl_ct_stats_show` prints it.
#[test]
fn test_stats_show() {
    let ct = ct();
    let z = commit(0);
    assert_eq!(state(&ct, seg(C, 40000, S, 80, SYN, 100, 0, 0), &z, 0), NEW);
    assert_eq!(state(&ct, seg(C2, 40001, S, 80, SYN, 100, 0, 0), &z, 0), NEW);
    assert_eq!(state(&ct, seg(S, 80, C2, 40001, SYN | ACK, 500, 101, 0), &z, 0), RPL);
    assert_eq!(state(&ct, udp(C, 1000, S, 53, 10), &z, 0), NEW);
    assert_eq!(state(&ct, icmp_echo(C, S, 8, 9, 1), &commit(5), 0), NEW);
    assert_eq!(state(&ct, ipv4(C, S, 47, &[0; 8]), &commit(5), 0), NEW);
    assert_eq!(
        ct.stats_show(None, 0, true),
        "Connections Stats:\n    Total: 5\n  TCP: 2\n    Conn per TCP states:\n\t  [SYN_SENT]=1\n\t  [ESTABLISHED]=1\n  \
         UDP: 1\n  ICMP: 1\n  Other: 1\n"
    );
    assert_eq!(ct.stats_show(Some(5), 0, false), "Connections Stats:\n    Total: 2\n  ICMP: 1\n  Other: 1\n");
    assert_eq!(ct.stats_show(Some(9), 0, true), "Connections Stats:\n    Total: 0\n");
    // Expired connections are not counted (the sweeper may not have run).
    assert_eq!(ct.stats_show(None, 100_000_000, false), "Connections Stats:\n    Total: 0\n");
}

#[test]
fn test_timeout_settings() {
    let mut t = Timeouts::default();
    t.set("tcp_established=3600").unwrap();
    t.set("icmp_reply = 5").unwrap();
    assert_eq!((t.tcp_established, t.icmp_reply, t.tcp_syn_sent), (3600, 5, 30));
    for name in Timeouts::NAMES {
        t.set(&format!("{name}=7")).unwrap();
    }
    assert_eq!(t.udp_multiple, 7);
    assert!(t.set("tcp_establish=5").unwrap_err().contains("unknown timeout `tcp_establish`"));
    assert!(t.set("udp_first=5s").unwrap_err().contains("`5s` is not a number"));
    assert!(t.set("udp_first=0").unwrap_err().contains("out of range"));
    assert!(t.set("udp_first").unwrap_err().contains("NAME=SECONDS"));
}

/// A trial judges a packet as the tracker would, and changes nothing: an
/// established connection's next segment is `+est` (with `next_segment`,
/// whatever numbers the traced packet had), a segment far out of its
/// window `+inv`, a new tuple `+new`, committed only in the scratch table.
#[test]
fn test_trial_changes_nothing() {
    let ct = ct();
    let z = commit(0);
    assert_eq!(state(&ct, seg(C, 40000, S, 80, SYN, 100, 0, 0), &z, 0), NEW);
    assert_eq!(state(&ct, seg(S, 80, C, 40000, SYN | ACK, 500, 101, 0), &z, 0), RPL);
    assert_eq!(state(&ct, seg(C, 40000, S, 80, ACK, 101, 501, 10), &z, 0), EST);
    let before = (ct.dump_with(None, 0, true), ct.stats());
    let trial = |f: Vec<u8>, next: bool| {
        let mut f = f;
        let mut md = CtResult::default();
        let lines = ct.trial(&mut f, &mut md, &z, 0, next);
        (md.state, lines)
    };
    let (st, lines) = trial(seg(S, 80, C, 40000, ACK, 0, 0, 0), true);
    assert_eq!(st, RPL, "the reply's next segment");
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("protoinfo=(state=ESTABLISHED)"), "{lines:?}");
    assert_eq!(trial(seg(S, 80, C, 40000, ACK, 0x8000_0000, 111, 10), false).0, INV, "data far out of the window");
    let (st, lines) = trial(seg(C2, 40001, S, 80, SYN, 7, 0, 0), true);
    assert_eq!(st, NEW);
    assert!(lines.iter().any(|l| l.contains("src=10.0.0.3")), "committed in the scratch table: {lines:?}");
    assert_eq!((ct.dump_with(None, 0, true), ct.stats()), before, "the tracker is untouched");
}

/// A connection the host translated (kube-proxy's DNAT of a service),
/// adopted: a packet from the host of no known connection asks for the
/// host's translation first; with it recorded, the connection committed
/// for the translated packet has the host's keys (client → service,
/// backend → client); later packets from the host find it by its reply key
/// reversed; `ct(nat)` on the backend's reply gives the client the
/// service's address and port. Without a recorded translation, or from a
/// pod, nothing changes.
#[test]
fn test_host_translation_adopted() {
    let ct = ct();
    const SVC: u32 = ip(172, 30, 12, 34);
    let host = |commit: bool| CtRequest { zone: 0, commit, from_host: true, ..CtRequest::default() };
    let run = |f: Vec<u8>, req: &CtRequest, checked: bool| {
        let mut f = f;
        let mut md = CtResult { host_checked: checked, ..CtResult::default() };
        ct.execute_with(&ct.pin(), &mut f, &mut md, req, 0);
        (md, f)
    };
    // The client's SYN, translated by the host to the backend S:8080.
    let syn = seg(C, 40000, S, 8080, SYN, 100, 0, 0);
    let (md, _) = run(syn.clone(), &host(true), false);
    assert!(md.host_query, "the host's translation is asked for first");
    assert_eq!(ct.stats().n_conns, 0, "nothing created meanwhile");
    let seen = CtTuple { src: C, dst: S, proto: 6, sport: 40000, dport: 8080 };
    ct.adopt(&seen, 0, SVC, 80, 0);
    let (md, f) = run(syn.clone(), &host(true), true);
    assert!(!md.host_query);
    assert_eq!(md.state, NEW | CS_DST_NAT);
    assert_eq!(f, syn, "the packet is the host's translation already");
    assert_eq!(
        ct.dump(None, 0),
        ["tcp,orig=(src=10.0.0.1,dst=172.30.12.34,sport=40000,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,sport=8080,dport=40000),protoinfo=(state=SYN_SENT)"]
    );
    assert_eq!(ct.stats().adopted, 1);
    // The backend's SYN-ACK, un-translated by ct(nat): from the service.
    let (r, f) = go(&ct, seg(S, 8080, C, 40000, SYN | ACK, 500, 101, 0), &unnat(0), 0);
    assert_eq!(r.state, RPL | CS_SRC_NAT, "a reply is un-translated as OVS marks it");
    assert_eq!(addrs(&f), (SVC, 80, C, 40000));
    assert_checksums(&f);
    // The client's ACK, from the host again: the same connection, original
    // direction, not a query.
    let (md, _) = run(seg(C, 40000, S, 8080, ACK, 101, 501, 0), &host(false), false);
    assert!(!md.host_query);
    assert_eq!(md.state & (EST | CS_REPLY_DIR), EST);
    assert_eq!(md.orig.map(|o| (o.dst, o.dport)), Some((SVC, 80)), "ct_nw_dst: the service");
    assert_eq!(ct.stats().n_conns, 1);
    // No recorded translation: a plain connection. From a pod: no query.
    let (md, _) = run(seg(C2, 40001, S, 8080, SYN, 7, 0, 0), &host(true), true);
    assert_eq!(md.state, NEW);
    assert!(ct.dump(None, 0).iter().any(|l| l.contains("orig=(src=10.0.0.3,dst=10.0.0.2,sport=40001,dport=8080)")));
    let (md, _) = run(seg(C2, 40002, S, 8080, SYN, 7, 0, 0), &commit(0), false);
    assert!(!md.host_query && md.state == NEW);
    // The host's connection exists whether or not this ct commits.
    let seen = CtTuple { src: C, dst: S, proto: 6, sport: 40005, dport: 8080 };
    ct.adopt(&seen, 0, SVC, 80, 0);
    let (md, _) = run(seg(C, 40005, S, 8080, SYN, 1, 0, 0), &host(false), true);
    assert_eq!(md.state, NEW | CS_DST_NAT);
    assert!(ct.dump(None, 0).iter().any(|l| l.contains("orig=(src=10.0.0.1,dst=172.30.12.34,sport=40005,dport=80)")));
    // A recorded translation expires unused.
    let seen = CtTuple { src: C, dst: S, proto: 6, sport: 40009, dport: 8080 };
    ct.adopt(&seen, 0, SVC, 80, 0);
    let mut f = seg(C, 40009, S, 8080, SYN, 1, 0, 0);
    let mut md = CtResult { host_checked: true, ..CtResult::default() };
    ct.execute_with(&ct.pin(), &mut f, &mut md, &host(true), super::tracker::ADOPT_TTL_MS + 1);
    assert_eq!(md.state, NEW, "too late: a plain connection");
}
