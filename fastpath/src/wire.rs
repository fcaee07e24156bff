//! Zero-copy header access for the frames the datapath handles: Ethernet
//! (with one 802.1Q tag skipped), ARP, IPv4 (options, fragments), TCP, UDP,
//! ICMP and VXLAN, and the VXLAN encapsulation header the tunnel pushes.
//!
//! No-panic contract: every accessor takes the frame as a slice and checks
//! the length it needs first; a short frame yields `None`, never a panic.
//! Multi-byte fields are big-endian on the wire and returned in host order.
//!
//! ```text
//! VXLAN encapsulation (RFC 7348), 50 bytes before the inner frame:
//!  0                   1                   2                   3
//! +-----------------------------------------------------------------+
//! | outer Ethernet: dst MAC, src MAC, type 0x0800        (14 bytes) |
//! | outer IPv4: ver/ihl tos len id flags/frag ttl=64 proto=17 csum  |
//! |             src VTEP, dst VTEP                       (20 bytes) |
//! | UDP: src port (inner flow hash), dst 4789, len, csum 0 (8 bytes)|
//! | VXLAN: flags 0x08 (I), reserved, VNI (24 bits), rsvd (8 bytes)  |
//! +-----------------------------------------------------------------+
//! ```

/// Ethernet header length.
pub const ETH_LEN: usize = 14;
/// Bytes VXLAN encapsulation adds in front of the inner frame.
pub const VXLAN_ENCAP_LEN: usize = 50;
/// Ethertypes.
pub const ETH_TYPE_IPV4: u16 = 0x0800;
/// ARP.
pub const ETH_TYPE_ARP: u16 = 0x0806;
/// 802.1Q VLAN tag.
pub const ETH_TYPE_VLAN: u16 = 0x8100;

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

#[inline]
fn mac(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at + 6)?;
    Some(u64::from_be_bytes([0, 0, s[0], s[1], s[2], s[3], s[4], s[5]]))
}

/// Ethernet: (dst, src, ethertype, payload offset), skipping one 802.1Q tag.
#[inline]
pub fn ethernet(f: &[u8]) -> Option<(u64, u64, u16, usize)> {
    let dst = mac(f, 0)?;
    let src = mac(f, 6)?;
    let t = be16(f, 12)?;
    if t == ETH_TYPE_VLAN {
        return Some((dst, src, be16(f, 16)?, 18));
    }
    Some((dst, src, t, ETH_LEN))
}

/// An ARP packet over Ethernet/IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    /// Opcode (1 request, 2 reply).
    pub op: u16,
    /// Sender hardware address.
    pub sha: u64,
    /// Sender protocol address.
    pub spa: u32,
    /// Target hardware address.
    pub tha: u64,
    /// Target protocol address.
    pub tpa: u32,
}

/// Parses ARP at `at` (Ethernet + IPv4 only).
#[inline]
pub fn arp(f: &[u8], at: usize) -> Option<Arp> {
    let b = f.get(at..at + 28)?;
    if be16(b, 0)? != 1 || be16(b, 2)? != ETH_TYPE_IPV4 || b[4] != 6 || b[5] != 4 {
        return None;
    }
    Some(Arp { op: be16(b, 6)?, sha: mac(b, 8)?, spa: be32(b, 14)?, tha: mac(b, 18)?, tpa: be32(b, 24)? })
}

/// The IPv4 header fields the flow key needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4 {
    /// Header length in bytes (20..60).
    pub ihl: usize,
    /// Total length.
    pub total_len: u16,
    /// TOS byte.
    pub tos: u8,
    /// TTL.
    pub ttl: u8,
    /// Protocol.
    pub proto: u8,
    /// A fragment (MF set or offset ≠ 0).
    pub frag: bool,
    /// Offset ≠ 0.
    pub later: bool,
    /// Source.
    pub src: u32,
    /// Destination.
    pub dst: u32,
}

/// Parses an IPv4 header at `at`; `None` if truncated or not version 4
/// with a sane header length.
#[inline]
pub fn ipv4(f: &[u8], at: usize) -> Option<Ipv4> {
    let b = f.get(at..at + 20)?;
    if b[0] >> 4 != 4 {
        return None;
    }
    let ihl = ((b[0] & 0x0f) as usize) * 4;
    let total_len = be16(b, 2)?;
    if ihl < 20 || f.len() < at + ihl || (total_len as usize) < ihl {
        return None;
    }
    let fo = be16(b, 6)?;
    let offset = fo & 0x1fff;
    Some(Ipv4 {
        ihl,
        total_len,
        tos: b[1],
        ttl: b[8],
        proto: b[9],
        frag: offset != 0 || fo & 0x2000 != 0,
        later: offset != 0,
        src: be32(b, 12)?,
        dst: be32(b, 16)?,
    })
}

/// Source and destination ports of TCP or UDP at `at`.
#[inline]
pub fn l4_ports(f: &[u8], at: usize) -> Option<(u16, u16)> {
    Some((be16(f, at)?, be16(f, at + 2)?))
}

/// ICMP type and code at `at`.
#[inline]
pub fn icmp(f: &[u8], at: usize) -> Option<(u8, u8)> {
    Some((*f.get(at)?, *f.get(at + 1)?))
}

/// VXLAN header at `at`: the VNI, if the I flag is set.
#[inline]
pub fn vxlan_vni(f: &[u8], at: usize) -> Option<u32> {
    let b = f.get(at..at + 8)?;
    if b[0] & 0x08 == 0 {
        return None;
    }
    Some(u32::from_be_bytes([0, b[4], b[5], b[6]]))
}

/// One's-complement sum of `data` as big-endian 16-bit words (a final odd
/// byte the high byte of its word), folded to 16 bits (at most 0xffff), zero
/// only when every byte is, congruent modulo 0xffff to the plain sum of
/// the words — so [`fold`] of it, or of several such sums added, gives the
/// same checksum as summing word by word. Read 8 bytes at a time with an
/// end-around carry (2^16 ≡ 1 modulo 0xffff, so a word's place in the
/// 64-bit lane does not matter).
#[inline]
pub fn sum16(data: &[u8]) -> u32 {
    let mut acc = 0u64;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let (s, carry) = acc.overflowing_add(u64::from_be_bytes(c.try_into().expect("8 bytes")));
        acc = s + carry as u64;
    }
    // At most 2^33 - 2 from here on: no overflow below.
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    let mut rest = chunks.remainder();
    if let [a, b, c, d, tail @ ..] = rest {
        acc += u32::from_be_bytes([*a, *b, *c, *d]) as u64;
        rest = tail;
    }
    if let [a, b, tail @ ..] = rest {
        acc += u16::from_be_bytes([*a, *b]) as u64;
        rest = tail;
    }
    if let [a] = rest {
        acc += (*a as u64) << 8;
    }
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    let s = (acc & 0xffff) + (acc >> 16);
    ((s & 0xffff) + (s >> 16)) as u32
}

/// Folds a sum to 16 bits and complements it.
pub fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Internet checksum of `data` (RFC 1071), folded and complemented.
pub fn checksum(data: &[u8]) -> u16 {
    fold(sum16(data))
}

/// A VXLAN encapsulation header for one (local VTEP, remote VTEP, VNI,
/// next hop), built once; per packet only the lengths, the UDP source port
/// and the IPv4 checksum change, the latter updated incrementally from a
/// precomputed partial sum (no re-reading of the header just written).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VxlanTemplate {
    /// The 50 header bytes with zero lengths, source port and checksum.
    pub bytes: [u8; VXLAN_ENCAP_LEN],
    /// One's-complement sum of the IPv4 header with total length 0 and
    /// checksum 0, folded to 16 bits (adding a length then needs one fold).
    partial: u32,
}

impl VxlanTemplate {
    /// Builds the header for these endpoints.
    pub fn new(src_mac: u64, dst_mac: u64, src_ip: u32, dst_ip: u32, dst_port: u16, vni: u32) -> VxlanTemplate {
        let mut b = [0u8; VXLAN_ENCAP_LEN];
        b[0..6].copy_from_slice(&dst_mac.to_be_bytes()[2..]);
        b[6..12].copy_from_slice(&src_mac.to_be_bytes()[2..]);
        b[12..14].copy_from_slice(&ETH_TYPE_IPV4.to_be_bytes());
        let ip = &mut b[14..34];
        ip[0] = 0x45;
        ip[6] = 0x40; // DF
        ip[8] = 64; // TTL
        ip[9] = 17; // UDP
        ip[12..16].copy_from_slice(&src_ip.to_be_bytes());
        ip[16..20].copy_from_slice(&dst_ip.to_be_bytes());
        let mut partial = 0u32;
        for c in ip.chunks_exact(2) {
            partial += u16::from_be_bytes([c[0], c[1]]) as u32;
        }
        while partial > 0xffff {
            partial = (partial & 0xffff) + (partial >> 16);
        }
        b[36..38].copy_from_slice(&dst_port.to_be_bytes());
        b[42] = 0x08;
        b[46..49].copy_from_slice(&vni.to_be_bytes()[1..]);
        VxlanTemplate { bytes: b, partial }
    }

    /// Writes the header for an inner frame of `inner_len` bytes into
    /// `out[..50]`, with UDP source port `sport`.
    ///
    /// # Panics
    /// If `out` is shorter than 50 bytes (callers reserve headroom).
    #[inline]
    pub fn write(&self, out: &mut [u8], inner_len: usize, sport: u16) {
        let out: &mut [u8; VXLAN_ENCAP_LEN] = (&mut out[..VXLAN_ENCAP_LEN]).try_into().expect("50 bytes");
        self.write_header(out, inner_len, sport);
    }

    /// [`VxlanTemplate::write`] into exactly the header's bytes.
    #[inline]
    pub fn write_header(&self, out: &mut [u8; VXLAN_ENCAP_LEN], inner_len: usize, sport: u16) {
        *out = self.bytes;
        let ip_len = (inner_len + 36) as u16;
        let udp_len = (inner_len + 16) as u16;
        out[16..18].copy_from_slice(&ip_len.to_be_bytes());
        // Both terms fit 16 bits, so one fold brings the sum back to 16.
        let mut sum = self.partial + ip_len as u32;
        sum = (sum & 0xffff) + (sum >> 16);
        out[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        out[34..36].copy_from_slice(&sport.to_be_bytes());
        out[38..40].copy_from_slice(&udp_len.to_be_bytes());
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<u64> {
    let b: Vec<u8> = s.split(':').filter_map(|x| u8::from_str_radix(x, 16).ok()).collect();
    (b.len() == 6).then(|| b.iter().fold(0u64, |a, &x| a << 8 | x as u64))
}

/// Formats a MAC held in the low 48 bits.
pub fn fmt_mac(m: u64) -> String {
    let b = m.to_be_bytes();
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[2], b[3], b[4], b[5], b[6], b[7])
}

/// Recomputes the TCP or UDP checksum of the IPv4 packet at `off` (after a
/// rewrite). A UDP checksum of 0 (none) stays 0; one that computes to 0 is
/// sent as 0xffff (RFC 768). Fragments are left alone.
pub fn fix_l4_checksum(d: &mut [u8], off: usize, ip: &Ipv4) {
    if ip.frag || !matches!(ip.proto, 6 | 17) {
        return;
    }
    let l4 = off + ip.ihl;
    let end = (off + ip.total_len as usize).min(d.len());
    let cs_at = l4 + if ip.proto == 6 { 16 } else { 6 };
    if end < cs_at + 2 || (ip.proto == 17 && d[cs_at] == 0 && d[cs_at + 1] == 0) {
        return;
    }
    d[cs_at..cs_at + 2].copy_from_slice(&[0, 0]);
    let mut sum = sum16(&d[off + 12..off + 20]) + ip.proto as u32 + (end - l4) as u32;
    sum += sum16(&d[l4..end]);
    let mut c = fold(sum);
    if c == 0 && ip.proto == 17 {
        c = 0xffff;
    }
    d[cs_at..cs_at + 2].copy_from_slice(&c.to_be_bytes());
}

/// The UDP source port for an encapsulated flow: from the inner flow hash,
/// in the ephemeral range, as Linux's `udp_flow_src_port` does.
#[inline]
pub fn vxlan_src_port(hash: u32) -> u16 {
    let (lo, hi) = (32768u32, 61000u32);
    (((hash as u64 * (hi - lo) as u64) >> 32) as u32 + lo) as u16
}

/// Builds an Ethernet/IPv4/UDP or TCP frame of `len` bytes (at least 60;
/// IPv4 and L4 checksums valid) for generators and benchmarks.
#[allow(clippy::too_many_arguments)]
pub fn build_frame(
    src_mac: u64,
    dst_mac: u64,
    src_ip: u32,
    dst_ip: u32,
    proto: u8,
    sport: u16,
    dport: u16,
    len: usize,
) -> Vec<u8> {
    let l4_len = if proto == 6 { 20 } else { 8 };
    let len = len.max(ETH_LEN + 20 + l4_len).max(60);
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst_mac.to_be_bytes()[2..]);
    f[6..12].copy_from_slice(&src_mac.to_be_bytes()[2..]);
    f[12..14].copy_from_slice(&ETH_TYPE_IPV4.to_be_bytes());
    let ip_len = (len - ETH_LEN) as u16;
    {
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
        ip[6] = 0x40;
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&src_ip.to_be_bytes());
        ip[16..20].copy_from_slice(&dst_ip.to_be_bytes());
        let c = checksum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let l4 = 34;
    f[l4..l4 + 2].copy_from_slice(&sport.to_be_bytes());
    f[l4 + 2..l4 + 4].copy_from_slice(&dport.to_be_bytes());
    let seg = len - l4;
    let cs_at = if proto == 6 {
        f[l4 + 12] = 0x50;
        f[l4 + 13] = 0x10; // ACK
        f[l4 + 14..l4 + 16].copy_from_slice(&0xffffu16.to_be_bytes());
        l4 + 16
    } else {
        f[l4 + 4..l4 + 6].copy_from_slice(&(seg as u16).to_be_bytes());
        l4 + 6
    };
    let sum = sum16(&f[26..34]) + proto as u32 + seg as u32 + sum16(&f[l4..]);
    let mut c = fold(sum);
    if c == 0 && proto == 17 {
        c = 0xffff;
    }
    f[cs_at..cs_at + 2].copy_from_slice(&c.to_be_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sum16` as it was, word by word.
    fn sum16_words(data: &[u8]) -> u32 {
        let mut sum = 0u32;
        let mut chunks = data.chunks_exact(2);
        for c in &mut chunks {
            sum += u16::from_be_bytes([c[0], c[1]]) as u32;
        }
        if let [b] = chunks.remainder() {
            sum += (*b as u32) << 8;
        }
        sum
    }

    #[test]
    fn test_sum16_as_word_by_word() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in 0..200 {
            for fill in [0u8, 0xff, 1] {
                // The generator's high byte (its low bits repeat quickly).
                let mut d: Vec<u8> = (0..len).map(|_| (crate::testutil::lcg(&mut x) >> 56) as u8).collect();
                if fill != 1 {
                    d.iter_mut().for_each(|b| *b = fill);
                }
                let (a, b) = (sum16(&d), sum16_words(&d));
                assert!(a <= 0xffff);
                assert_eq!(a == 0, b == 0, "len {len}");
                assert_eq!(fold(a), fold(b), "len {len}");
                assert_eq!(fold(a + 6 + len as u32), fold(b + 6 + len as u32), "len {len}");
            }
        }
    }

    // A UDP frame 10.131.0.3:40000 -> 10.129.0.7:8080, TTL 64, no options.
    static UDP: [u8; 42] = [
        0x0a, 0x58, 0x0a, 0x81, 0x00, 0x07, 0x0a, 0x58, 0x0a, 0x83, 0x00, 0x03, 0x08, 0x00, // eth
        0x45, 0x00, 0x00, 0x1c, 0x00, 0x01, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 10, 131, 0, 3, 10, 129, 0,
        7, // ip
        0x9c, 0x40, 0x1f, 0x90, 0x00, 0x08, 0x00, 0x00, // udp
    ];

    #[test]
    fn test_parse() {
        let (dst, src, t, off) = ethernet(&UDP).unwrap();
        assert_eq!((dst, src, t, off), (0x0a580a810007, 0x0a580a830003, 0x0800, 14));
        let ip = ipv4(&UDP, off).unwrap();
        assert_eq!((ip.src, ip.dst, ip.proto, ip.ttl, ip.frag), (0x0a830003, 0x0a810007, 17, 64, false));
        assert_eq!(l4_ports(&UDP, off + ip.ihl), Some((40000, 8080)));
    }

    #[test]
    fn test_truncated_never_panics() {
        for n in 0..UDP.len() {
            let f = &UDP[..n];
            if let Some((_, _, _, off)) = ethernet(f) {
                if let Some(ip) = ipv4(f, off) {
                    let _ = l4_ports(f, off + ip.ihl);
                }
                let _ = arp(f, off);
                let _ = vxlan_vni(f, off);
            }
        }
        assert!(ipv4(&UDP[..33], 14).is_none());
    }

    #[test]
    fn test_vxlan_template_checksum() {
        let t = VxlanTemplate::new(0x0a0000000001, 0x0a0000000002, 0xac100119, 0xac100110, 4789, 0x2be3);
        let mut out = [0u8; 64];
        // Addresses whose sums land the header's sum near every 16-bit
        // boundary, with every inner length.
        let mut seed = 0x9e37_79b9_u64;
        let mut pairs = vec![(0xac100119, 0xac100110), (0xffff_ffff, 0xffff_fffe), (0, 0)];
        for _ in 0..40 {
            let r = crate::testutil::lcg(&mut seed);
            pairs.push(((r >> 32) as u32, r as u32 | 0xffff_0000));
        }
        for (src, dst) in pairs {
            let t = VxlanTemplate::new(0xffff_ffff_ffff, 0xffff_ffff_fffe, src, dst, 4789, 0xff_ffff);
            for inner in 0..=MAX_INNER_CHECK {
                t.write(&mut out, inner, 50000);
                assert_eq!(checksum(&out[14..34]), 0, "checksum verifies: {src:x} -> {dst:x}, inner {inner}");
            }
        }
        t.write(&mut out, 42, 50000);
        assert_eq!(checksum(&out[14..34]), 0, "IPv4 header checksum verifies");
        assert_eq!(u16::from_be_bytes([out[16], out[17]]), 42 + 36);
        assert_eq!(vxlan_vni(&out, 42), Some(0x2be3));
        let ip = ipv4(&out, 14).unwrap();
        assert_eq!((ip.ttl, ip.proto, ip.src, ip.dst), (64, 17, 0xac100119, 0xac100110));
        assert_eq!(out[20] & 0x40, 0x40, "DF set");
        assert_eq!(l4_ports(&out, 34), Some((50000, 4789)));
    }

    /// Inner lengths the checksum test covers (every length a frame can have).
    const MAX_INNER_CHECK: usize = 9000;

    #[test]
    fn test_src_port_range() {
        for h in [0u32, 1, 0x8000_0000, u32::MAX] {
            let p = vxlan_src_port(h);
            assert!((32768..61000).contains(&p));
        }
    }
}
