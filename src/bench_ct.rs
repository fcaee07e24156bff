//! The connection-tracking scenarios of `sdnfwd bench` (and of the
//! instruction-count bench): TCP frames between
//! pods that a conntrack table lets talk, in the same order for sdnfwd and
//! for Open vSwitch (tools/bench-ovs-dpdk.sh replays them from pcap files).
//!
//! - `tcp-est`: N connections opened with real handshakes first (SYNs, then
//!   SYN-ACKs, then ACKs, each phase sent once), then measured: one data
//!   segment each way per connection, replayed round and round. Each
//!   segment carries the same sequence and acknowledgement numbers every
//!   time, within the window both sides advertised (a retransmission, as
//!   the tracker sees it), so every pass is `+est` (`+est+rpl` back).
//! - `tcp-new`: N tuples, each a SYN and, 32 frames later (never in the
//!   same burst), an RST from the client. The ring goes round once before
//!   the measurement; from then on each SYN meets its tuple's connection
//!   closed (TIME_WAIT, after the RST) and opens a new one in its place (the
//!   tracker's "new" verdict on a SYN after both sides closed: the old one
//!   is ended, a new one committed), and each RST closes it again. New
//!   connections per second are the SYNs per second: half the frames.
//!
//! The pods, server ports and the table's verdicts are not assumed: each
//! (client pod, server pod, port) candidate is tried through the real
//! datapath (`slowpath::replay`: the poll loop, the tracker, recirculation)
//! with a handshake and a data segment each way, and the scenario uses the
//! ones the table lets through both ways, 64,512 client ports each.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use config::yaml::Cluster;
use fastpath::batch::BURST;
use fastpath::conntrack::frames::{tcp, TcpSpec, ACK, PSH, RST, SYN};
use fastpath::conntrack::{Conntrack, CtConfig, CtRequest, CS_ESTABLISHED};
use fastpath::pmd::Pmd;
use fastpath::port::memory::{MemPort, SinkPort};
use slowpath::replay::Replay;
use slowpath::Ofproto;

/// Client ports: 1024 to 65535, less the server ports of the pairs used
/// (so that no connection is another's reply: pairs may go both ways
/// between two pods).
fn client_ports(pairs: &[Pair]) -> Vec<u16> {
    (1024..=65535).filter(|p| !pairs.iter().any(|x| x.dport == *p)).collect()
}
/// Window scale both sides announce (Linux's for a 6 MB receive buffer).
const WSCALE: u8 = 7;
/// The window field of data and ACK segments (64,256 bytes at scale 7).
const WIN: u16 = 502;
/// Frames between a tuple's SYN and its RST in `tcp-new` (a burst).
pub const GROUP: usize = 32;

/// A (client pod, server pod, server port) the table lets through both
/// ways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    /// Client's OpenFlow port.
    pub cport: u32,
    /// Client's IP.
    pub cip: u32,
    /// Server's OpenFlow port.
    pub sport: u32,
    /// Server's IP.
    pub sip: u32,
    /// Server's TCP port.
    pub dport: u16,
}

/// Frames by the OpenFlow port they enter on.
pub type PortFrames = Vec<(u32, Vec<Vec<u8>>)>;

/// Frames of a connection-tracking scenario.
pub struct CtFrames {
    /// Warm-up phases, in order; each a list of (in_port, frames), every
    /// frame sent once, the phase finished before the next starts.
    pub phases: Vec<PortFrames>,
    /// The measured rings, (in_port, frames).
    pub sources: PortFrames,
    /// Connections (`tcp-est`) or tuples (`tcp-new`).
    pub n: usize,
    /// The pairs used, in order.
    pub pairs: Vec<Pair>,
}

fn mac_of(ip: u32) -> u64 {
    0x0a58_0000_0000 | ip as u64
}

/// A TCP frame from `src` to `dst` (MACs of the pods), padded to 60 bytes
/// as a NIC delivers a short frame (the padding is past the IPv4 length).
fn frame(s: &TcpSpec) -> Vec<u8> {
    let mut f = tcp(s);
    f[0..6].copy_from_slice(&mac_of(s.dst).to_be_bytes()[2..]);
    f[6..12].copy_from_slice(&mac_of(s.src).to_be_bytes()[2..]);
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

/// One connection's segments.
struct Conn {
    p: Pair,
    /// Client's TCP port.
    cp: u16,
    /// Initial sequence numbers, client and server.
    c0: u32,
    s0: u32,
}

impl Conn {
    fn new(p: Pair, cp: u16, i: usize) -> Conn {
        let i = i as u32;
        Conn { p, cp, c0: 0x0100_0000u32.wrapping_add(i.wrapping_mul(7919)), s0: 0x8000_0000 ^ i.wrapping_mul(104_729) }
    }
    fn c2s(&self, flags: u8, seq: u32, ack: u32, win: u16, wscale: Option<u8>, payload: usize) -> Vec<u8> {
        let (src, dst, sport, dport) = (self.p.cip, self.p.sip, self.cp, self.p.dport);
        frame(&TcpSpec { src, sport, dst, dport, seq, ack, flags, win, wscale, payload })
    }
    fn s2c(&self, flags: u8, seq: u32, ack: u32, win: u16, wscale: Option<u8>, payload: usize) -> Vec<u8> {
        let (src, dst, sport, dport) = (self.p.sip, self.p.cip, self.p.dport, self.cp);
        frame(&TcpSpec { src, sport, dst, dport, seq, ack, flags, win, wscale, payload })
    }
    fn syn(&self) -> Vec<u8> {
        self.c2s(SYN, self.c0, 0, 64240, Some(WSCALE), 0)
    }
    fn syn_ack(&self) -> Vec<u8> {
        self.s2c(SYN | ACK, self.s0, self.c0.wrapping_add(1), 65160, Some(WSCALE), 0)
    }
    fn ack(&self) -> Vec<u8> {
        self.c2s(ACK, self.c0.wrapping_add(1), self.s0.wrapping_add(1), WIN, None, 0)
    }
    /// The client's data segment (`len` bytes), acknowledging the server's.
    fn data_c2s(&self, len: usize) -> Vec<u8> {
        let ack = self.s0.wrapping_add(1).wrapping_add(len as u32);
        self.c2s(ACK | PSH, self.c0.wrapping_add(1), ack, WIN, None, len)
    }
    /// The server's data segment, acknowledging the client's.
    fn data_s2c(&self, len: usize) -> Vec<u8> {
        let ack = self.c0.wrapping_add(1).wrapping_add(len as u32);
        self.s2c(ACK | PSH, self.s0.wrapping_add(1), ack, WIN, None, len)
    }
    /// The client's reset after its SYN.
    fn rst(&self) -> Vec<u8> {
        self.c2s(RST, self.c0.wrapping_add(1), 0, 0, None, 0)
    }
}

/// TCP ports the table names (`tp_dst=N`), in order of appearance, then 80.
fn table_ports(flows: &str) -> Vec<u16> {
    let mut v = Vec::new();
    for part in flows.split([',', ' ']) {
        if let Some(n) = part.strip_prefix("tp_dst=").and_then(|n| n.parse::<u16>().ok()) {
            if !v.contains(&n) {
                v.push(n);
            }
        }
    }
    if !v.contains(&80) {
        v.push(80);
    }
    v
}

/// The pairs the table lets through both ways, tried through the real
/// datapath: a handshake and a data segment each way, every frame leaving
/// by the other pod's port and the tracker marking none invalid. Client
/// pods in ofport order, servers likewise, ports in the table's order.
///
/// # Errors
/// None lets a connection through.
pub fn find_pairs(of: Ofproto, pods: &[(u32, u32)], flows: &str, size: usize) -> Result<Vec<Pair>, String> {
    let mut ports: Vec<u32> = pods.iter().map(|p| p.0).chain([1, 2]).collect();
    ports.sort_unstable();
    ports.dedup();
    let mut r = Replay::new(of, &ports, CtConfig::default());
    let mut found = Vec::new();
    let mut probe = 0u16;
    for &(cport, cip) in pods {
        for &(sport, sip) in pods {
            if sport == cport {
                continue;
            }
            for dport in table_ports(flows) {
                let p = Pair { cport, cip, sport, sip, dport };
                let c = Conn::new(p, 1000 - probe, probe as usize);
                probe = probe.wrapping_add(1) % 1000;
                let len = size.saturating_sub(54);
                let steps = [
                    (cport, c.syn(), sport),
                    (sport, c.syn_ack(), cport),
                    (cport, c.ack(), sport),
                    (cport, c.data_c2s(len), sport),
                    (sport, c.data_s2c(len), cport),
                ];
                let inv0 = r.conntrack().stats().n_invalid;
                let mut ok = true;
                for (in_port, f, want) in steps {
                    let out = r.packet(in_port, f)?;
                    if out.len() != 1 || out[0].0 != want {
                        ok = false;
                        break;
                    }
                }
                if ok && r.conntrack().stats().n_invalid == inv0 {
                    found.push(p);
                }
            }
        }
    }
    if found.is_empty() {
        return Err("the table lets no TCP connection between two local pods through both ways".into());
    }
    Ok(found)
}

/// Runs warm-up `phases` on `pmd`: each phase's frames sent once, a burst
/// at a time (the phase's ports in turn), each burst settled before the
/// next (received, and nothing left pending an upcall: `serve` is called
/// while frames wait, to answer them or to wait for whoever does), so that
/// no frame is lost to a full upcall queue and each phase is over before
/// the next starts. Then the ports of `run` get their rings (every frame
/// replayed round and round); the ports only send meanwhile. Returns the
/// frames sent.
///
/// # Errors
/// A frame was dropped, or a burst did not settle within a minute.
pub fn warm_up(
    pmd: &mut Pmd,
    phases: &[PortFrames],
    run: &[(u32, Vec<Vec<u8>>)],
    mut serve: impl FnMut(&mut Pmd),
) -> Result<u64, String> {
    let drops = |pmd: &Pmd| pmd.stats.drops.iter().map(|d| d.load(Ordering::Relaxed)).sum::<u64>();
    let drops0 = drops(pmd);
    let mut sent = 0;
    for (port, _) in run {
        pmd.add_port(*port, Box::new(SinkPort::new(&format!("sink{port}"))), false);
    }
    for (k, phase) in phases.iter().enumerate() {
        for (port, frames) in phase {
            for chunk in frames.chunks(BURST) {
                let mut p = MemPort::new(&format!("warm{port}"), chunk.to_vec());
                p.limit = chunk.len() as u64;
                pmd.add_port(*port, Box::new(p), true);
                let t0 = Instant::now();
                loop {
                    pmd.iterate();
                    let rx = pmd.port_counters().iter().find(|(o, ..)| o == port).map_or(0, |(_, _, c)| c.rx_packets);
                    if rx == chunk.len() as u64 && pmd.n_pending() == 0 {
                        break;
                    }
                    if t0.elapsed() > Duration::from_secs(60) {
                        return Err(format!("warm-up phase {}: a burst did not settle in 60 s", k + 1));
                    }
                    serve(pmd);
                }
                sent += chunk.len() as u64;
            }
        }
    }
    if drops(pmd) != drops0 {
        return Err(format!("warm-up: {} frames dropped\n{}", drops(pmd) - drops0, pmd.stats.show(None)));
    }
    for (port, frames) in run {
        pmd.add_port(*port, Box::new(MemPort::new(&format!("mem{port}"), frames.clone())), true);
    }
    Ok(sent)
}

/// `v` in a fixed pseudo-random order (xorshift, Fisher-Yates).
fn shuffle<T>(v: &mut [T]) {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

/// Appends `f` to the frames of `port` in `list`.
fn push(list: &mut PortFrames, port: u32, f: Vec<u8>) {
    match list.iter_mut().find(|(p, _)| *p == port) {
        Some((_, v)) => v.push(f),
        None => list.push((port, vec![f])),
    }
}

/// Connection `i`'s pair and client port (`ports`: [`client_ports`]).
fn conn(pairs: &[Pair], ports: &[u16], i: usize) -> Conn {
    Conn::new(pairs[i / ports.len()], ports[i % ports.len()], i)
}

/// The client ports for `n` connections over `pairs`, and the pairs used.
fn room(pairs: &[Pair], n: usize) -> Result<(Vec<u16>, Vec<Pair>), String> {
    let ports = client_ports(pairs);
    if n > pairs.len() * ports.len() {
        return Err(format!(
            "{n} connections: the table lets {} (client, server, port) through, room for {} tuples",
            pairs.len(),
            pairs.len() * ports.len()
        ));
    }
    let used = pairs[..n.div_ceil(ports.len())].to_vec();
    Ok((ports, used))
}

/// `tcp-est`: `n` connections' handshakes as three phases, then a data
/// segment of `size` bytes each way per connection (the connections in a
/// fixed shuffled order, the same both ways).
///
/// # Errors
/// More connections than the pairs have room for.
pub fn established(pairs: &[Pair], n: usize, size: usize) -> Result<CtFrames, String> {
    let n = n.max(1);
    let (ports, used) = room(pairs, n)?;
    let len = size.saturating_sub(54);
    let (mut syn, mut syn_ack, mut ack) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let c = conn(pairs, &ports, i);
        push(&mut syn, c.p.cport, c.syn());
        push(&mut syn_ack, c.p.sport, c.syn_ack());
        push(&mut ack, c.p.cport, c.ack());
    }
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order);
    let mut sources = Vec::new();
    for &i in &order {
        let c = conn(pairs, &ports, i);
        push(&mut sources, c.p.cport, c.data_c2s(len));
        push(&mut sources, c.p.sport, c.data_s2c(len));
    }
    Ok(CtFrames { phases: vec![syn, syn_ack, ack], sources, n, pairs: used })
}

/// `tcp-new`: `n` tuples (rounded up to a multiple of [`GROUP`]) in
/// groups of [`GROUP`]: the group's SYNs, then its RSTs. One phase (the
/// ring once), then the same ring measured.
///
/// # Errors
/// More tuples than the pairs have room for.
pub fn churn(pairs: &[Pair], n: usize) -> Result<CtFrames, String> {
    let n = n.max(1).next_multiple_of(GROUP);
    let (ports, used) = room(pairs, n)?;
    let mut sources = Vec::new();
    for g in (0..n).step_by(GROUP) {
        for i in g..g + GROUP {
            let c = conn(pairs, &ports, i);
            push(&mut sources, c.p.cport, c.syn());
        }
        for i in g..g + GROUP {
            let c = conn(pairs, &ports, i);
            push(&mut sources, c.p.cport, c.rst());
        }
    }
    Ok(CtFrames { phases: vec![sources.clone()], sources, n, pairs: used })
}

/// The tuples of `conn-memory`: `n` clients (10.1.0.0 up, port 40000) to
/// one server (10.200.0.1:80), each connection's SYN, SYN-ACK and ACK.
pub fn memory_handshake(i: usize) -> [Vec<u8>; 3] {
    let cip = 0x0a01_0000 + i as u32;
    let p = Pair { cport: 3, cip, sport: 4, sip: 0x0ac8_0001, dport: 80 };
    let c = Conn::new(p, 40000, i);
    [c.syn(), c.syn_ack(), c.ack()]
}

/// The process's resident memory, in bytes (`/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// What `conn-memory` measured.
pub struct Memory {
    /// RSS growth while the tracker was created (its bucket array).
    pub table_bytes: u64,
    /// RSS growth over the connections' handshakes.
    pub conn_bytes: u64,
    /// Handshakes whose ACK was not `+est`.
    pub not_est: usize,
    /// The tracker's counters after.
    pub stats: fastpath::conntrack::CtStats,
}

/// `conn-memory`: a tracker with the default configuration, then `n`
/// connections' handshakes through it (`ct(commit)` in zone 0), the
/// process's RSS read before the tracker, after it and after the
/// connections. Tracker alone: no datapath.
pub fn memory(n: usize) -> Memory {
    let rss0 = rss_bytes();
    let ct = Conntrack::new(CtConfig::default());
    let rss1 = rss_bytes();
    let req = CtRequest { commit: true, ..CtRequest::default() };
    let mut not_est = 0;
    for i in 0..n {
        let [mut a, mut b, mut c] = memory_handshake(i);
        ct.execute(&mut a, &req, 0);
        ct.execute(&mut b, &req, 0);
        not_est += usize::from(ct.execute(&mut c, &req, 0).state & CS_ESTABLISHED == 0);
    }
    let rss2 = rss_bytes();
    let m =
        Memory { table_bytes: rss1 - rss0.min(rss1), conn_bytes: rss2 - rss1.min(rss2), not_est, stats: ct.stats() };
    drop(ct);
    m
}

/// The pods of `node` as (ofport, IP), in ofport order.
pub fn pods_of(c: &Cluster, node: &str) -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> =
        c.find_node(node).map(|n| n.pods.iter().map(|p| (p.ofport, u32::from(p.ip.0))).collect()).unwrap_or_default();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> Pair {
        Pair { cport: 4, cip: 0x0a83_0003, sport: 5, sip: 0x0a83_0004, dport: 5432 }
    }

    #[test]
    fn test_established_frames() {
        let f = established(&[pair()], 100, 64).unwrap();
        assert_eq!(f.phases.len(), 3);
        let ports = client_ports(&[pair()]);
        assert_eq!(ports.len(), 64511);
        assert_eq!(f.phases[0], vec![(4, (0..100).map(|i| conn(&[pair()], &ports, i).syn()).collect())]);
        assert_eq!(f.sources.iter().map(|(p, v)| (*p, v.len())).collect::<Vec<_>>(), vec![(4, 100), (5, 100)]);
        assert!(f.sources.iter().all(|(_, v)| v.iter().all(|f| f.len() == 64)));
        assert!(f.phases.iter().flatten().all(|(_, v)| v.iter().all(|f| f.len() == 60)));
        assert!(established(&[pair()], 64512, 64).is_err());
        let two = established(&[pair(), Pair { cport: 3, sport: 4, ..pair() }], 64512, 64).unwrap();
        assert_eq!(two.pairs.len(), 2);
        assert_eq!(two.sources.iter().map(|(p, v)| (*p, v.len())).collect::<Vec<_>>().len(), 3);
    }

    #[test]
    fn test_churn_keeps_a_tuple_out_of_its_burst() {
        let f = churn(&[pair()], 40).unwrap();
        assert_eq!(f.n, 64);
        let ring = &f.sources[0].1;
        assert_eq!(ring.len(), 128);
        // Any 32 consecutive frames of the ring (cyclically) hold no tuple
        // twice.
        let tuple = |f: &Vec<u8>| f[34..38].to_vec();
        for s in 0..ring.len() {
            let mut seen: Vec<Vec<u8>> = (0..GROUP).map(|k| tuple(&ring[(s + k) % ring.len()])).collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), GROUP, "window at {s}");
        }
    }

    #[test]
    fn test_memory_counts_connections() {
        let m = memory(1000);
        assert_eq!((m.not_est, m.stats.n_conns, m.stats.n_invalid), (0, 1000, 0));
    }
}
