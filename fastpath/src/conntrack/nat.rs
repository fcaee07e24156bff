//! NAT: choosing a new connection's translated reply tuple (OVS
//! `nat_get_unique_tuple`) and rewriting packets of a translated
//! connection in place (`nat_packet`, `nat_inner_packet`), the checksums
//! updated incrementally with OVS's own formula (RFC 1624 eqn. 3,
//! `recalc_csum16`/`recalc_csum32`), so the bytes match OVS's to the bit,
//! and the checksum of an ICMP error whose quoted header was rewritten
//! recomputed over the message.
//!
//! Tuple choice. The address is the packet's own when the range starts at
//! 0.0.0.0, else one in the range picked by a hash of the range and the
//! connection. Ports: with a port range, a hashed port of the range first;
//! without (and always for DNAT's source port), the packet's port first,
//! then its class: 1-511, 600-1023 or 1024-65535. Candidates are tried in
//! order, wrapping within the range, at most 128 of them; when that many
//! collide in a large range, halving rounds restart at pseudo-random
//! places, down to 16 tries. DNAT tries the destination port range first,
//! then the source port class. ICMP and other protocols have one
//! candidate. A reply tuple is taken when any live connection has it as
//! either of its keys.

use super::key::{Key, IPPROTO_TCP, IPPROTO_UDP};
use super::parse::Parsed;
use super::types::{NatRange, NatRequest, CS_DST_NAT, CS_SRC_NAT};
use crate::wire::checksum;

/// Translate the source address (OVS `NAT_ACTION_SRC`).
pub const NAT_SRC: u8 = 1 << 0;
/// … and the source port from a range.
pub const NAT_SRC_PORT: u8 = 1 << 1;
/// Translate the destination address.
pub const NAT_DST: u8 = 1 << 2;
/// … and the destination port from a range.
pub const NAT_DST_PORT: u8 = 1 << 3;
/// The translation is the host's, adopted ([`super::tracker::Conntrack::adopt`]):
/// the packets of the original direction arrive translated already, so the
/// connection is also found by its translated original tuple.
pub const NAT_ADOPTED: u8 = 1 << 4;

/// Most candidate ports tried in one round.
const MAX_ATTEMPTS: u32 = 128;

/// A NAT request as the datapath action carries it: OVS's
/// `nat_action_info_t` after `dpif-netdev`'s defaults (a max below its
/// min is the min; a port range sets the `*_PORT` flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatSpec {
    /// `NAT_*` flags.
    pub action: u8,
    /// Lowest address (0: keep the packet's).
    pub addr_min: u32,
    /// Highest address.
    pub addr_max: u32,
    /// Lowest port (with a `*_PORT` flag).
    pub port_min: u16,
    /// Highest port.
    pub port_max: u16,
}

impl NatSpec {
    /// The spec of a request; `None` for plain `nat` (no new translation).
    pub fn of(req: &NatRequest) -> Option<NatSpec> {
        let (dir, port_flag, r): (u8, u8, &NatRange) = match req {
            NatRequest::Reverse => return None,
            NatRequest::Src(r) => (NAT_SRC, NAT_SRC_PORT, r),
            NatRequest::Dst(r) => (NAT_DST, NAT_DST_PORT, r),
        };
        Some(NatSpec {
            action: dir | if r.port_min != 0 { port_flag } else { 0 },
            addr_min: r.addr_min,
            addr_max: r.addr_max.max(r.addr_min),
            port_min: r.port_min,
            port_max: r.port_max.max(r.port_min),
        })
    }

    /// A hash of the range (mixed with the connection's by the caller).
    pub fn hash_bits(&self) -> u64 {
        (self.addr_min as u64) << 32
            ^ (self.addr_max as u64)
            ^ ((self.port_max as u64) << 16 | self.port_min as u64) << 24
    }
}

/// The action seen from the other direction (OVS `nat_action_reverse`).
#[inline]
pub fn reverse_action(a: u8) -> u8 {
    if a & NAT_SRC != 0 {
        (a & !NAT_SRC) | NAT_DST
    } else if a & NAT_DST != 0 {
        (a & !NAT_DST) | NAT_SRC
    } else {
        a
    }
}

/// Which port of the reply key a search varies.
#[derive(Clone, Copy)]
enum Port {
    /// The reply's source port (the translated destination port).
    Src,
    /// The reply's destination port (the translated source port).
    Dst,
}

#[inline]
fn set_port(k: &mut Key, which: Port, v: u16) {
    match which {
        Port::Src => k.sport = v,
        Port::Dst => k.dport = v,
    }
}

/// Tries ports of `[min, max]` from `curr` for `rev`'s port `which` (OVS
/// `nat_get_unique_l4`); on failure the port is left at `curr`.
fn unique_port(
    rev: &mut Key,
    which: Port,
    mut curr: u16,
    min: u16,
    max: u16,
    rng: &mut u64,
    taken: &mut impl FnMut(&Key) -> bool,
) -> bool {
    let range = (max - min) as u32 + 1;
    let mut attempts = range.min(MAX_ATTEMPTS);
    let orig = curr;
    loop {
        let in_range = (min..=max).contains(&curr);
        let n = if in_range { range } else { range + 1 };
        for _ in 0..n.min(attempts) {
            set_port(rev, which, curr);
            if !taken(rev) {
                return true;
            }
            curr = if !(min..=max).contains(&curr) || curr == max { min } else { curr + 1 };
        }
        if attempts < range && attempts >= 16 {
            attempts /= 2;
            *rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            curr = min + ((*rng >> 33) as u32 % range) as u16;
            continue;
        }
        set_port(rev, which, orig);
        return false;
    }
}

/// The port class OVS picks a translated source port from when no range
/// was given: that of the packet's port.
#[inline]
fn port_class(p: u16) -> (u16, u16) {
    if p < 512 {
        (1, 511)
    } else if p < 1024 {
        (600, 1023)
    } else {
        (1024, 65535)
    }
}

/// The reply key of a new connection with original key `orig` translated
/// per `spec`, unique by `taken` (true when a live connection has that key
/// either way), or `None` when the space is exhausted. `hash` picks the
/// address and port within the ranges.
pub fn unique_reply(orig: &Key, spec: &NatSpec, hash: u64, mut taken: impl FnMut(&Key) -> bool) -> Option<Key> {
    let h = (hash >> 32) as u32;
    let pat = matches!(orig.proto, IPPROTO_TCP | IPPROTO_UDP);
    let a = spec.action;
    let addr = if spec.addr_min == 0 {
        if a & NAT_SRC != 0 {
            orig.src
        } else {
            orig.dst
        }
    } else {
        let span = (spec.addr_max - spec.addr_min) as u64 + 1;
        spec.addr_min + (h as u64 % span) as u32
    };
    let in_range = |min: u16, max: u16| min + (h % ((max - min) as u32 + 1)) as u16;
    let (curr_s, min_s, max_s) = if a & (NAT_SRC | NAT_SRC_PORT) == NAT_SRC || a & NAT_DST != 0 {
        let (lo, hi) = port_class(orig.sport);
        (orig.sport, lo, hi)
    } else {
        (in_range(spec.port_min, spec.port_max), spec.port_min, spec.port_max)
    };
    let (curr_d, min_d, max_d) = if a & NAT_DST_PORT != 0 {
        (in_range(spec.port_min, spec.port_max), spec.port_min, spec.port_max)
    } else {
        (orig.dport, orig.dport, orig.dport)
    };
    let mut rev = orig.reverse();
    if pat {
        rev.sport = curr_d;
        rev.dport = curr_s;
    }
    if a & NAT_SRC != 0 {
        rev.dst = addr;
    } else {
        rev.src = addr;
    }
    if !pat {
        return (!taken(&rev)).then_some(rev);
    }
    let mut rng = hash | 1;
    if a & NAT_DST_PORT != 0 && unique_port(&mut rev, Port::Src, curr_d, min_d, max_d, &mut rng, &mut taken) {
        return Some(rev);
    }
    unique_port(&mut rev, Port::Dst, curr_s, min_s, max_s, &mut rng, &mut taken).then_some(rev)
}

/// OVS `recalc_csum16`: a checksum after one 16-bit word changed.
#[inline]
pub fn recalc16(csum: u16, old: u16, new: u16) -> u16 {
    let mut sum = (!csum) as u32 + (!old) as u32 + new as u32;
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// OVS `recalc_csum32` (on a little-endian host: the first word, then the
/// second).
#[inline]
pub fn recalc32(csum: u16, old: u32, new: u32) -> u16 {
    recalc16(recalc16(csum, (old >> 16) as u16, (new >> 16) as u16), old as u16, new as u16)
}

#[inline]
fn get16(f: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([f[at], f[at + 1]])
}

#[inline]
fn put16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// OVS `packet_set_ipv4_addr`: the address at `field` of the IPv4 header at
/// `l3` becomes `new`, the header checksum and that of TCP (if its header
/// fits before `end`) or UDP (if set) at `l4` following.
fn set_addr(f: &mut [u8], l3: usize, l4: usize, end: usize, field: usize, new: u32) {
    let old = u32::from_be_bytes([f[field], f[field + 1], f[field + 2], f[field + 3]]);
    let l4_size = end.saturating_sub(l4);
    match f[l3 + 9] {
        IPPROTO_TCP if l4_size >= 20 => {
            let c = recalc32(get16(f, l4 + 16), old, new);
            put16(f, l4 + 16, c);
        }
        IPPROTO_UDP if l4_size >= 8 => {
            let c = get16(f, l4 + 6);
            if c != 0 {
                let c = recalc32(c, old, new);
                put16(f, l4 + 6, if c == 0 { 0xffff } else { c });
            }
        }
        _ => {}
    }
    let c = recalc32(get16(f, l3 + 10), old, new);
    put16(f, l3 + 10, c);
    f[field..field + 4].copy_from_slice(&new.to_be_bytes());
}

/// OVS `packet_set_port`: one port, the checksum at `csum` (if within the
/// frame) following.
fn set_port_field(f: &mut [u8], at: usize, new: u16, csum: usize) {
    let old = get16(f, at);
    if old != new {
        if csum + 2 <= f.len() {
            let c = recalc16(get16(f, csum), old, new);
            put16(f, csum, c);
        }
        put16(f, at, new);
    }
}

/// OVS `packet_set_tcp_port` / `packet_set_udp_port` for the L4 header at
/// `l4` of protocol `proto`.
fn set_ports(f: &mut [u8], proto: u8, l4: usize, src: u16, dst: u16) {
    match proto {
        IPPROTO_TCP => {
            set_port_field(f, l4, src, l4 + 16);
            set_port_field(f, l4 + 2, dst, l4 + 16);
        }
        IPPROTO_UDP => {
            if get16(f, l4 + 6) != 0 {
                set_port_field(f, l4, src, l4 + 6);
                set_port_field(f, l4 + 2, dst, l4 + 6);
                if get16(f, l4 + 6) == 0 {
                    put16(f, l4 + 6, 0xffff);
                }
            } else {
                put16(f, l4, src);
                put16(f, l4 + 2, dst);
            }
        }
        _ => {}
    }
}

/// Rewrites the IPv4 header at `l3` (L4 at `l4`) toward `key` (the other
/// direction's key) per `action` (OVS `nat_packet_ipv4`).
#[inline]
fn nat_addrs(f: &mut [u8], l3: usize, l4: usize, end: usize, key: &Key, action: u8) {
    if action & NAT_SRC != 0 {
        set_addr(f, l3, l4, end, l3 + 12, key.dst);
    } else if action & NAT_DST != 0 {
        set_addr(f, l3, l4, end, l3 + 16, key.src);
    }
}

/// Applies a connection's translation to packet `p` of it, in the reply
/// direction if `reply` (OVS `nat_packet`): `keys` are the connection's
/// (original, reply) keys and `nat` its `NAT_*` action. An ICMP error
/// (`p.related`) has its outer address rewritten and the header it quotes
/// translated the other way, its checksum recomputed. Returns the ct_state
/// bit to add (`CS_SRC_NAT` or `CS_DST_NAT`, 0 if nothing to do).
pub fn nat_packet(f: &mut [u8], p: &Parsed, keys: &[Key; 2], nat: u8, reply: bool) -> u8 {
    let (key, action) = if reply { (&keys[0], reverse_action(nat)) } else { (&keys[1], nat) };
    let bit = if action & NAT_SRC != 0 {
        CS_SRC_NAT
    } else if action & NAT_DST != 0 {
        CS_DST_NAT
    } else {
        return 0;
    };
    nat_addrs(f, p.l3, p.l4, p.end, key, action);
    if p.related {
        nat_inner(f, p, key, reverse_action(action));
    } else {
        set_ports(f, f[p.l3 + 9], p.l4, key.dport, key.sport);
    }
    bit
}

/// Translates the header an ICMP error quotes (OVS `nat_inner_packet`).
fn nat_inner(f: &mut [u8], p: &Parsed, key: &Key, action: u8) {
    let l3 = p.l4 + 8;
    let l4 = l3 + ((f[l3] & 0x0f) as usize) * 4;
    let rev = key.reverse();
    set_ports(f, f[l3 + 9], l4, rev.dport, rev.sport);
    nat_addrs(f, l3, l4, p.end, &rev, action);
    put16(f, p.l4 + 2, 0);
    let c = checksum(&f[p.l4..p.end]);
    put16(f, p.l4 + 2, c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::sum16;

    #[test]
    fn test_recalc_matches_full_checksum() {
        // An IPv4 header; change the source address and compare with a
        // full recomputation.
        let mut h = [0x45u8, 0, 0, 60, 0x1c, 0x46, 0x40, 0, 0x40, 6, 0, 0, 172, 16, 10, 99, 172, 16, 10, 12];
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        let new = u32::from_be_bytes([10, 0, 0, 1]);
        let old = u32::from_be_bytes([172, 16, 10, 99]);
        let inc = recalc32(c, old, new);
        h[12..16].copy_from_slice(&new.to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(inc, checksum(&h));
        assert_eq!(crate::wire::fold(sum16(&h) + inc as u32), 0);
        // Same value: a no-op, except that 0xffff becomes 0 as in OVS.
        assert_eq!(recalc16(0x1234, 7, 7), 0x1234);
        assert_eq!(recalc16(0xffff, 7, 7), 0);
    }

    fn key(src: u32, sport: u16, dst: u32, dport: u16) -> Key {
        Key { src, dst, sport, dport, zone: 0, proto: IPPROTO_TCP, icmp_type: 0 }
    }

    #[test]
    fn test_snat_keeps_port_then_walks() {
        let orig = key(1, 40000, 2, 80);
        let spec = NatSpec::of(&NatRequest::Src(NatRange { addr_min: 9, ..NatRange::default() })).unwrap();
        assert_eq!(spec.action, NAT_SRC);
        let r = unique_reply(&orig, &spec, 12345, |_| false).unwrap();
        assert_eq!(r, key(2, 80, 9, 40000));
        // 40000 and 40001 taken: 40002.
        let r = unique_reply(&orig, &spec, 12345, |k| k.dport < 40002).unwrap();
        assert_eq!(r.dport, 40002);
        // 65535 taken: wraps to 1024.
        let high = key(1, 65535, 2, 80);
        let r = unique_reply(&high, &spec, 1, |k| k.dport == 65535).unwrap();
        assert_eq!(r.dport, 1024);
        // Low ports stay low.
        let r = unique_reply(&key(1, 100, 2, 80), &spec, 1, |k| k.dport == 100).unwrap();
        assert_eq!(r.dport, 101);
        let r = unique_reply(&key(1, 511, 2, 80), &spec, 1, |k| k.dport == 511).unwrap();
        assert_eq!(r.dport, 1);
        let r = unique_reply(&key(1, 700, 2, 80), &spec, 1, |k| k.dport == 700).unwrap();
        assert_eq!(r.dport, 701);
    }

    #[test]
    fn test_zero_address_keeps_address() {
        let orig = key(1, 40000, 2, 80);
        let spec = NatSpec::of(&NatRequest::Src(NatRange::default())).unwrap();
        let r = unique_reply(&orig, &spec, 99, |_| false).unwrap();
        assert_eq!(r, orig.reverse());
        let r = unique_reply(&orig, &spec, 99, |k| *k == orig.reverse()).unwrap();
        assert_eq!(r, key(2, 80, 1, 40001));
    }

    #[test]
    fn test_port_range_and_exhaustion() {
        let orig = key(1, 40000, 2, 80);
        let r1 = NatRange { addr_min: 9, port_min: 5000, port_max: 5003, ..NatRange::default() };
        let spec = NatSpec::of(&NatRequest::Src(r1)).unwrap();
        assert_eq!(spec.action, NAT_SRC | NAT_SRC_PORT);
        let mut seen = std::collections::BTreeSet::new();
        for h in 0..64u64 {
            let r = unique_reply(&orig, &spec, h << 32, |_| false).unwrap();
            assert!((5000..=5003).contains(&r.dport));
            seen.insert(r.dport);
        }
        assert_eq!(seen.len(), 4, "the hash spreads over the range");
        assert!(unique_reply(&orig, &spec, 7, |k| k.dport != 5002).unwrap().dport == 5002);
        assert_eq!(unique_reply(&orig, &spec, 7, |_| true), None, "exhausted");
        // A large range: the search gives up after its halving rounds.
        let wide = NatSpec::of(&NatRequest::Src(NatRange {
            addr_min: 9,
            port_min: 1,
            port_max: 60000,
            ..NatRange::default()
        }));
        let mut tries = 0;
        assert_eq!(
            unique_reply(&orig, &wide.unwrap(), 7, |_| {
                tries += 1;
                true
            }),
            None
        );
        assert_eq!(tries, 128 + 64 + 32 + 16 + 8);
    }

    #[test]
    fn test_dnat_port_then_source_port() {
        let orig = key(1, 40000, 100, 80);
        let spec =
            NatSpec::of(&NatRequest::Dst(NatRange { addr_min: 7, port_min: 8080, ..NatRange::default() })).unwrap();
        assert_eq!(spec.action, NAT_DST | NAT_DST_PORT);
        let r = unique_reply(&orig, &spec, 3, |_| false).unwrap();
        assert_eq!(r, key(7, 8080, 1, 40000));
        // The backend tuple is taken: the client's port moves.
        let r = unique_reply(&orig, &spec, 3, |k| k.dport == 40000).unwrap();
        assert_eq!(r, key(7, 8080, 1, 40001));
        // An address range: the hash picks one.
        let spec = NatSpec::of(&NatRequest::Dst(NatRange { addr_min: 7, addr_max: 9, ..NatRange::default() })).unwrap();
        let r = unique_reply(&orig, &spec, 2 << 32, |_| false).unwrap();
        assert_eq!((r.src, r.sport), (9, 80));
    }

    #[test]
    fn test_action_reverse() {
        assert_eq!(reverse_action(NAT_SRC | NAT_SRC_PORT), NAT_DST | NAT_SRC_PORT);
        assert_eq!(reverse_action(NAT_DST), NAT_SRC);
        assert_eq!(reverse_action(0), 0);
    }
}
