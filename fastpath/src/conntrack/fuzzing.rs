//! The tracker's properties for fuzzing: public for the cargo-fuzz target
//! `conntrack` (fuzz/fuzz_targets/conntrack.rs) and the bounded run on
//! stable Rust in tests/fuzz_smoke.rs, not an API.
//!
//! [`run`] reads its input as a tracker configuration (a connection limit
//! of 1 to 8, checksums and TCP sequence checks on or off, 4 to 32
//! fragments held at most) and then a sequence of operations. Packets are
//! built from a small vocabulary (two clients, two servers, two ports
//! each, TCP, UDP, ICMP echo and errors) so that sequences reach deep
//! states: each of the 8 flows remembers its next TCP sequence number
//! each way and the address and port its packets were last translated to,
//! so replies find their (translated) connections. Operations: TCP
//! segments (any flags; sequence numbers right, retransmitted, far off or
//! raw), UDP, ICMP echo both ways and errors quoting a flow, a template
//! frame with bytes overwritten, a datagram cut into fragments delivered
//! in any order with duplicates and gaps (small IP id space, so lists
//! collide), a lone fragment with any offset and flags, time moved past
//! the timeouts (and the fragment lists' 15 and 25 s), sweeps, flushes,
//! dumps. Each packet runs through `ct` (a zone of two, commit or not,
//! `nat(src=...)`, `nat(dst=...)`, plain `nat`, marks and labels, `force`,
//! `from_host`: a packet waiting for the host's translation has one
//! recorded with `adopt` or not, and runs again), sometimes twice, as
//! [`super::Conntrack::execute_frames`] runs it.
//!
//! Properties, checked after every operation: no panic; the table within
//! its limit, its counters consistent, every live connection found by
//! both its keys, the fragments adding up ([`super::Conntrack::audit`]);
//! every packet that leaves tracked and valid has a right IPv4 header
//! checksum (NAT's incremental updates, the fragments' rewrites) and, when
//! it is not a fragment, a right TCP, UDP or ICMP checksum; dumps never
//! panic and list no more connections than the table holds.

use super::frames::{fragments, icmp_echo, icmp_error, ip, tcp, udp, TcpSpec};
use super::ipf::FragOut;
use super::tracker::Conntrack;
use super::types::{CtConfig, CtRequest, CtResult, IpfConfig, NatRange, NatRequest, Timeouts, CS_INVALID, CS_TRACKED};
use crate::flow::FlowKey;
use crate::wire::{checksum, fold, sum16};

/// Operations read at most per input.
const MAX_OPS: usize = 512;

/// The input, read a byte at a time (zeros once it runs out).
struct Input<'a> {
    d: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.d.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn done(&self) -> bool {
        self.at >= self.d.len()
    }
}

const CLIENTS: [u32; 2] = [ip(10, 0, 0, 1), ip(10, 0, 0, 2)];
const SERVERS: [u32; 2] = [ip(10, 0, 1, 1), ip(10, 0, 1, 2)];
const CPORTS: [u16; 2] = [40000, 40001];
const SPORTS: [u16; 2] = [80, 53];
/// SNAT address, DNAT backend.
const X: u32 = ip(192, 168, 0, 1);
const BACKEND: u32 = ip(10, 0, 2, 1);
/// A service address the host translated from (`adopt`).
const VIP: u32 = ip(172, 30, 0, 1);
/// Time steps, ms: just past each timeout that matters.
const STEPS: [u64; 8] = [1, 1_000, 15_001, 25_001, 30_001, 60_001, 900_001, 86_400_001];

/// A flow of the vocabulary and what its packets looked like last.
#[derive(Clone, Copy)]
struct Flow {
    /// The client's address and port, the server's.
    c: (u32, u16),
    s: (u32, u16),
    /// Next sequence number each way (client, server).
    seq: [u32; 2],
    /// The source and destination the client's last tracked packet left
    /// with (translated or not): the server answers from `to` to `from`.
    from: (u32, u16),
    to: (u32, u16),
}

impl Flow {
    /// (source, destination) of a packet in direction `dir` (0: client to
    /// server).
    fn ends(&self, dir: usize) -> ((u32, u16), (u32, u16)) {
        if dir == 0 {
            (self.c, self.s)
        } else {
            (self.to, self.from)
        }
    }
}

fn flows() -> [Flow; 8] {
    std::array::from_fn(|k| {
        let (c, s) = ((CLIENTS[k & 1], CPORTS[(k >> 1) & 1]), (SERVERS[(k >> 2) & 1], SPORTS[(k >> 2) & 1]));
        Flow { c, s, seq: [1000 * k as u32, 5_000_000], from: c, to: s }
    })
}

/// A `ct` request from a byte.
fn request(r: u8) -> CtRequest {
    let range = |a: u32, p: (u16, u16)| NatRange {
        addr_min: a,
        addr_max: a,
        port_min: p.0,
        port_max: p.1,
        ..NatRange::default()
    };
    let nat = match (r >> 2) & 7 {
        1 => Some(NatRequest::Src(range(X, (0, 0)))),
        2 => Some(NatRequest::Src(range(X, (1024, 1025)))),
        3 => Some(NatRequest::Dst(range(BACKEND, (8080, 8080)))),
        4 | 5 => Some(NatRequest::Reverse),
        6 => Some(NatRequest::Src(range(0, (0, 0)))),
        _ => None,
    };
    let from_host = (r >> 2) & 7 == 7;
    CtRequest {
        zone: (r & 1) as u16,
        commit: r & 2 != 0,
        force: r & 0xe0 == 0xe0,
        nat,
        set_mark: (r & 0x20 != 0).then_some((r as u32, 0xff)),
        set_label: (r & 0x40 != 0).then_some(((r as u128) << 70, !0)),
        from_host,
    }
}

/// A TCP segment of flow `f` in direction `dir` (0: client to server).
fn segment(inp: &mut Input<'_>, f: &mut Flow, dir: usize) -> Vec<u8> {
    let flags = inp.byte();
    let mode = inp.byte();
    let payload = [0, 1, 100, 1400][(mode & 3) as usize];
    let next = f.seq[dir];
    let seq = match (mode >> 2) & 7 {
        0..=3 => next,
        4 => next.wrapping_sub(payload.max(1) as u32),
        5 => next.wrapping_add(1 << 20),
        6 => next.wrapping_sub(1 << 22),
        _ => inp.u32(),
    };
    let ack = match (mode >> 5) & 3 {
        0 | 1 => f.seq[1 - dir],
        2 => f.seq[1 - dir].wrapping_sub(1000),
        _ => inp.u32(),
    };
    let win = [65535, 502, 0, 3][(flags >> 6) as usize & 3];
    let wscale = (flags & 0x02 != 0 && mode & 0x80 != 0).then_some(7);
    if seq == next {
        f.seq[dir] = next.wrapping_add(payload as u32 + u32::from(flags & 0x03 != 0));
    }
    let ((src, sport), (dst, dport)) = f.ends(dir);
    tcp(&TcpSpec { src, sport, dst, dport, seq, ack, flags: flags & 0x3f, win, wscale, payload })
}

/// A packet of flow `f` in direction `dir` of protocol `proto` (6, 17, 1)
/// with `len` payload bytes.
fn packet(f: &Flow, dir: usize, proto: u8, len: usize) -> Vec<u8> {
    let ((src, sport), (dst, dport)) = f.ends(dir);
    match proto {
        6 => tcp(&TcpSpec {
            src,
            sport,
            dst,
            dport,
            seq: f.seq[dir],
            ack: f.seq[1 - dir],
            flags: 0x18,
            win: 65535,
            wscale: None,
            payload: len,
        }),
        1 => {
            let mut e = icmp_echo(src, dst, if dir == 0 { 8 } else { 0 }, f.c.1, 1);
            if len > 8 {
                // A larger echo: its data grown, the checksum redone.
                let mut l4 = e[34..].to_vec();
                l4.resize(8 + len, 0x61);
                l4[2..4].copy_from_slice(&[0, 0]);
                let c = checksum(&l4);
                l4[2..4].copy_from_slice(&c.to_be_bytes());
                e = super::frames::ipv4(src, dst, 1, &l4);
            }
            e
        }
        47 => super::frames::ipv4(src, dst, 47, &vec![0x65; len]),
        _ => udp(src, sport, dst, dport, len),
    }
}

/// Whether a frame that leaves tracked and valid has its checksums right.
fn checksums_ok(f: &[u8]) -> bool {
    let Some((_, _, 0x0800, l3)) = crate::wire::ethernet(f) else { return true };
    let Some(h) = f.get(l3..l3 + 20) else { return true };
    let ihl = ((h[0] & 15) as usize) * 4;
    let tot = u16::from_be_bytes([h[2], h[3]]) as usize;
    let (Some(hdr), Some(_)) = (f.get(l3..l3 + ihl), f.get(l3..l3 + tot)) else { return true };
    if checksum(hdr) != 0 {
        return false;
    }
    if u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 || tot < ihl {
        return true;
    }
    let (l4, end) = (l3 + ihl, l3 + tot);
    let l4_sum = |proto: u32| fold(sum16(&f[l3 + 12..l3 + 20]) + proto + (end - l4) as u32 + sum16(&f[l4..end]));
    match h[9] {
        6 => l4_sum(6) == 0,
        17 => end - l4 < 8 || u16::from_be_bytes([f[l4 + 6], f[l4 + 7]]) == 0 || l4_sum(17) == 0,
        1 => checksum(&f[l4..end]) == 0,
        _ => true,
    }
}

/// What the node does for a packet that waits for the host's translation
/// (`host_query`): maybe records one (`adopt`, as if the kernel had
/// translated the packet from a service address), then runs the packet
/// again, the host checked.
fn host(ct: &Conntrack, inp: &mut Input<'_>, now: u64, out: Vec<FragOut>, req: &CtRequest) -> Vec<FragOut> {
    let mut next = Vec::new();
    for o in out {
        if !o.md.host_query {
            next.push(o);
            continue;
        }
        let b = inp.byte();
        if let (true, Some(t)) = (b & 1 != 0, o.md.orig) {
            ct.adopt(&t, o.md.zone, VIP, [80, 53][(b >> 1) as usize & 1], now);
        }
        let md = CtResult { host_checked: true, ..CtResult::default() };
        next.extend(ct.execute_frames(o.frame, md, req, now, 0, &o.origin));
    }
    next
}

/// Runs one packet through `ct` (twice when asked) and checks what leaves;
/// a client's packet of a flow that leaves tracked tells where the
/// server's answers go.
fn run_packet(
    ct: &Conntrack,
    inp: &mut Input<'_>,
    now: u64,
    frame: Vec<u8>,
    validate: bool,
    flow: Option<(&mut Flow, usize)>,
) {
    let r = inp.byte();
    let origin = FlowKey::default();
    let out = ct.execute_frames(frame, CtResult::default(), &request(r), now, 0, &origin);
    let mut out = host(ct, inp, now, out, &request(r));
    if r & 0x80 != 0 {
        let r2 = inp.byte();
        let mut next = Vec::new();
        for o in out {
            next.extend(ct.execute_frames(o.frame, o.md, &request(r2), now, 1, &o.origin));
        }
        out = next;
    }
    for o in &out {
        let valid = o.md.state & (CS_TRACKED | CS_INVALID) == CS_TRACKED;
        assert!(
            !validate || !valid || checksums_ok(&o.frame),
            "a tracked packet leaves with a bad checksum: {:?} {:02x?}",
            o.md,
            o.frame
        );
    }
    let (Some((f, 0)), Some(o)) = (flow, out.first()) else { return };
    let g = &o.frame;
    if o.md.state & (CS_TRACKED | CS_INVALID) != CS_TRACKED || g.len() < 38 {
        return;
    }
    let a = |i: usize| u32::from_be_bytes([g[i], g[i + 1], g[i + 2], g[i + 3]]);
    let l4 = 14 + ((g[14] & 15) as usize) * 4;
    let ports = matches!(g[23], 6 | 17).then(|| g.get(l4..l4 + 4)).flatten();
    let (sp, dp) =
        ports.map_or((f.from.1, f.to.1), |p| (u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]])));
    f.from = (a(26), sp);
    f.to = (a(30), dp);
}

/// The property run (see the module doc). Panics when a property fails.
pub fn run(data: &[u8]) {
    ops(data);
}

/// [`run`], returning the tracker at the end.
fn ops(data: &[u8]) -> Conntrack {
    let mut inp = Input { d: data, at: 0 };
    let cfg = inp.byte();
    let validate = cfg & 0x08 == 0;
    let max_conns = 1 + (cfg & 7) as usize;
    let ct = Conntrack::new(CtConfig {
        max_conns,
        timeouts: Timeouts::default(),
        tcp_seq_check: cfg & 0x10 == 0,
        validate_checksums: validate,
        ipf: IpfConfig {
            enabled: cfg & 0x80 == 0 || cfg & 0x40 != 0,
            min_frag_size: 400,
            max_frags: 4 + 4 * ((cfg >> 5) & 7) as u32,
        },
    });
    let mut fl = flows();
    let mut now = 1_000u64;
    let mut last = packet(&fl[0], 0, 17, 8);
    for _ in 0..MAX_OPS {
        if inp.done() {
            break;
        }
        let op = inp.byte();
        let fi = (op >> 4) as usize & 7;
        let dir = (op >> 7) as usize;
        match op & 15 {
            0..=2 => {
                let f = segment(&mut inp, &mut fl[fi], dir);
                last = f.clone();
                run_packet(&ct, &mut inp, now, f, validate, Some((&mut fl[fi], dir)));
            }
            3 => {
                let len = inp.byte() as usize;
                let f = packet(&fl[fi], dir, 17, len);
                last = f.clone();
                run_packet(&ct, &mut inp, now, f, validate, Some((&mut fl[fi], dir)));
            }
            4 => {
                let f = packet(&fl[fi], dir, 1, 8);
                run_packet(&ct, &mut inp, now, f, validate, Some((&mut fl[fi], dir)));
            }
            5 => {
                // An ICMP error about the last packet, from a router or
                // the far end, quoting 28 or more bytes.
                let ty = [(3, 3), (3, 1), (11, 0), (3, 4)][(inp.byte() & 3) as usize];
                let (src, dst) = (ip(10, 0, 0, 254), u32::from_be_bytes([last[26], last[27], last[28], last[29]]));
                let quote = 28 + (inp.byte() as usize % 40);
                let f = icmp_error(src, dst, ty.0, ty.1, &last, quote);
                run_packet(&ct, &mut inp, now, f, validate, None);
            }
            6 | 7 => {
                // A template with bytes overwritten (a raw frame).
                let mut f = packet(&fl[fi], dir, [6, 17, 1, 47][(op & 1) as usize * 2 + dir], 20);
                for _ in 0..(inp.byte() & 7) {
                    let at = inp.byte() as usize % f.len();
                    f[at] = inp.byte();
                }
                if inp.byte() & 1 == 0 {
                    f.truncate(inp.byte() as usize);
                }
                run_packet(&ct, &mut inp, now, f, validate, None);
            }
            8 | 9 => {
                // A datagram cut into fragments, some delivered, in some
                // order, some twice.
                let proto = [17, 6, 1, 17][(inp.byte() & 3) as usize];
                let len = 400 + (inp.byte() as usize) * 12;
                let whole = packet(&fl[fi], dir, proto, len);
                let id = (inp.byte() & 3) as u16;
                let size = [400, 800, 1480, 976][(inp.byte() & 3) as usize];
                let tot = len + if proto == 6 { 20 } else { 8 };
                let cuts: Vec<usize> = (1..=tot.saturating_sub(1) / size).map(|_| size).collect();
                let frags = fragments(&whole, id, &cuts);
                let order = inp.byte();
                let n = frags.len();
                for k in 0..n + (order as usize >> 6) {
                    let i = (k * (1 + (order as usize & 7)) + (order as usize >> 3 & 7)) % n;
                    if inp.byte() & 7 != 0 {
                        run_packet(&ct, &mut inp, now, frags[i].clone(), validate, None);
                    }
                }
            }
            10 => {
                // A lone fragment: any offset, flags and size.
                let mut f = packet(&fl[fi], dir, 17, inp.byte() as usize * 8);
                let fo = (inp.u16() & 0x3fff) | (0x2000 * u16::from(inp.byte() & 1 == 0));
                f[20..22].copy_from_slice(&fo.to_be_bytes());
                f[18..20].copy_from_slice(&u16::from(inp.byte() & 3).to_be_bytes());
                f[24..26].copy_from_slice(&[0, 0]);
                let c = checksum(&f[14..34]);
                f[24..26].copy_from_slice(&c.to_be_bytes());
                run_packet(&ct, &mut inp, now, f, validate, None);
            }
            11 | 12 => now += STEPS[(inp.byte() & 7) as usize],
            13 => {
                ct.sweep(now, inp.byte() as usize % 4);
            }
            14 => ct.flush([None, Some(0), Some(1), None][(inp.byte() & 3) as usize]),
            _ => {
                let n = ct.stats().n_conns;
                let d = ct.dump(None, now);
                assert!(d.len() <= n, "{} connections dumped, {n} in the table", d.len());
                let _ = ct.dump_with(Some(1), now, true);
                let _ = ct.ipf_show(true);
            }
        }
        if let Err(e) = ct.audit(now) {
            panic!("{e}");
        }
    }
    ct
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(name: &str) -> Vec<u8> {
        let p = format!("{}/../fuzz/seeds/conntrack/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    /// The seeds reach what they are named after (so that the fuzzer
    /// starts from deep states, not from parse errors).
    #[test]
    fn test_seeds_reach_deep_states() {
        let ct = ops(&seed("tcp-handshake-close"));
        let st = ct.stats();
        assert_eq!((st.n_created, st.n_expired, st.n_conns), (1, 1, 0), "{st:?}");
        let ct = ops(&seed("fragments-udp"));
        assert!(ct.ipf_status().n_completed >= 2, "{}", ct.ipf_show(true));
        let ct = ops(&seed("fragments-tcp-icmp"));
        let ipf = ct.ipf_status();
        assert_eq!((ipf.n_accepted, ipf.n_completed, ct.stats().n_conns), (13, 13, 2), "{}", ct.ipf_show(true));
        let ct = ops(&seed("fragments-expire-purge"));
        let ipf = ct.ipf_status();
        // Two fragments expired and sent on, one purged by a packet's ct,
        // one by the sweeper.
        assert_eq!((ipf.n_expired, ipf.n_purged, ipf.n_frags), (2, 2, 0), "{}", ct.ipf_show(true));
        let ct = ops(&seed("snat-udp-icmp"));
        let d = ct.dump(None, 1_000);
        assert!(d.len() == 2 && d.iter().all(|l| l.contains("dst=192.168.0.1,")), "{d:?}");
        for name in ["dnat-tcp", "fragment-lone", "raw"] {
            ops(&seed(name)).audit(1_000).unwrap();
        }
    }
}
