//! Connection keys: a zone and a 5-tuple in one direction, 16 bytes,
//! compared as one 128-bit value. The hash is symmetric (a key and its
//! reverse hash alike), so a connection whose reply key is the plain
//! reverse of its original key (no NAT) needs one table entry, as in OVS
//! (`conn_key_hash`).
//!
//! ICMP echo, timestamp and information messages form connections keyed by
//! their identifier: both ports hold it and `icmp_type` holds the source
//! side's type; the reverse key carries the reverse type (echo request 8 ↔
//! reply 0), so a request's key reversed is its reply's, as OVS's
//! `ct_endpoint`s hold a type each.

/// IP protocol numbers the tracker knows.
pub const IPPROTO_ICMP: u8 = 1;
/// TCP.
pub const IPPROTO_TCP: u8 = 6;
/// UDP.
pub const IPPROTO_UDP: u8 = 17;

/// A connection key. Addresses and ports in host order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Key {
    /// Source address.
    pub src: u32,
    /// Destination address.
    pub dst: u32,
    /// Source port (ICMP: the identifier).
    pub sport: u16,
    /// Destination port (ICMP: the identifier).
    pub dport: u16,
    /// Zone.
    pub zone: u16,
    /// IP protocol.
    pub proto: u8,
    /// ICMP: the type the source sends (0 for other protocols).
    pub icmp_type: u8,
}

/// The type answering an ICMP query type (OVS `reverse_icmp_type`); other
/// types are returned unchanged (they never form a key).
#[inline]
pub fn reverse_icmp_type(t: u8) -> u8 {
    match t {
        8 => 0,
        0 => 8,
        13 => 14,
        14 => 13,
        15 => 16,
        16 => 15,
        t => t,
    }
}

/// Whether `t` is an ICMP query type that forms a connection (echo,
/// timestamp, information request or reply).
#[inline]
pub fn is_icmp_query(t: u8) -> bool {
    matches!(t, 0 | 8 | 13 | 14 | 15 | 16)
}

#[inline]
fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

impl Key {
    /// The key of the other direction.
    #[inline]
    pub fn reverse(&self) -> Key {
        Key {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            zone: self.zone,
            proto: self.proto,
            icmp_type: if self.proto == IPPROTO_ICMP { reverse_icmp_type(self.icmp_type) } else { 0 },
        }
    }

    /// The key as one 128-bit value (equality and hashing in two words).
    #[inline]
    pub fn bits(&self) -> u128 {
        (self.src as u128) << 96
            | (self.dst as u128) << 64
            | (self.sport as u128) << 48
            | (self.dport as u128) << 32
            | (self.zone as u128) << 16
            | (self.proto as u128) << 8
            | self.icmp_type as u128
    }

    /// A hash of the key under `seed`, equal for the key and its reverse.
    /// Each endpoint (address, port) is mixed on its own and the two
    /// combined by a commutative XOR; zone and protocol are mixed in last
    /// (the ICMP type is left out: a query and its reply hash alike).
    #[inline]
    pub fn hash(&self, seed: u64) -> u64 {
        let a = fmix64(((self.src as u64) << 16 | self.sport as u64) ^ seed);
        let b = fmix64(((self.dst as u64) << 16 | self.dport as u64) ^ seed);
        fmix64((a ^ b) ^ ((self.zone as u64) << 8 | self.proto as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_reverse_and_hash() {
        let k = Key { src: 0x0a000001, dst: 0x0a000002, sport: 40000, dport: 80, zone: 3, proto: 6, icmp_type: 0 };
        let r = k.reverse();
        assert_eq!(r.reverse(), k);
        assert_eq!((r.src, r.dst, r.sport, r.dport, r.zone), (0x0a000002, 0x0a000001, 80, 40000, 3));
        assert_eq!(k.hash(7), r.hash(7), "symmetric");
        assert_ne!(k.hash(7), k.hash(8), "seeded");
        let other_zone = Key { zone: 4, ..k };
        assert_ne!(k.hash(7), other_zone.hash(7));
        assert_ne!(k.bits(), r.bits());
    }

    #[test]
    fn test_icmp_reverse() {
        let k = Key { src: 1, dst: 2, sport: 77, dport: 77, zone: 0, proto: IPPROTO_ICMP, icmp_type: 8 };
        let r = k.reverse();
        assert_eq!(r.icmp_type, 0);
        assert_eq!(r.reverse(), k);
        assert_eq!(k.hash(1), r.hash(1));
        for t in [0, 8, 13, 14, 15, 16] {
            assert!(is_icmp_query(t));
            assert_eq!(reverse_icmp_type(reverse_icmp_type(t)), t);
        }
        assert!(!is_icmp_query(3));
    }
}
