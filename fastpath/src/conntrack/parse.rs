//! What the tracker reads from a frame, checked as OVS checks it
//! (`conn_key_extract`, `extract_l3_ipv4`, `extract_l4*`): an Ethernet
//! frame (one 802.1Q tag skipped) carrying IPv4 whose total length fits the
//! frame (what follows is Ethernet padding), the header checksum right;
//! TCP with a sane data offset, UDP with a sane length, both with non-zero
//! ports and a right checksum (UDP's may be 0: none), ICMP with a right
//! checksum. ICMP query messages (echo, timestamp, information) with code 0
//! are keyed by their identifier; ICMP errors (destination unreachable,
//! source quench, redirect, time exceeded, parameter problem) are keyed by
//! the header they quote, reversed, and flagged `related`: the quoted
//! packet must have come from the error's destination, and its first 8 L4
//! bytes must be there. Any other protocol is keyed by addresses alone.
//!
//! No allocation; every offset is checked before it is read (a short or
//! malformed frame is an error, never a panic).

use super::key::{is_icmp_query, Key, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};
use crate::wire::{ethernet, fold, sum16, ETH_TYPE_IPV4};

/// TCP flags.
pub const TCP_FIN: u16 = 0x01;
/// SYN.
pub const TCP_SYN: u16 = 0x02;
/// RST.
pub const TCP_RST: u16 = 0x04;
/// PSH.
pub const TCP_PSH: u16 = 0x08;
/// ACK.
pub const TCP_ACK: u16 = 0x10;
/// URG.
pub const TCP_URG: u16 = 0x20;

/// Window scale option, as OVS records it: the shift (≤ 14) with this flag
/// when the option was present.
pub const WSCALE_FLAG: u8 = 0x80;
/// The largest window scale TCP allows.
pub const MAX_WSCALE: u8 = 14;

/// The TCP segment's fields the window tracking reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpSeg {
    /// The 12 flag bits.
    pub flags: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Window (unscaled).
    pub win: u16,
    /// Payload bytes (padding excluded).
    pub payload_len: u32,
    /// The window scale option of a SYN (`WSCALE_FLAG | shift`), else 0.
    pub wscale: u8,
}

/// A parsed packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The key to look up: the packet's own, or for an ICMP error the
    /// quoted packet's, reversed.
    pub key: Key,
    /// Offset of the IPv4 header.
    pub l3: usize,
    /// Offset of the L4 header.
    pub l4: usize,
    /// End of the IPv4 packet (Ethernet padding follows).
    pub end: usize,
    /// An ICMP error quoting a packet of the connection.
    pub related: bool,
    /// TCP (not related): the segment.
    pub tcp: TcpSeg,
}

/// Why a frame could not be tracked (all give `+trk+inv`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// Not IPv4 over Ethernet.
    NotIpv4,
    /// An IPv4 fragment (for the reassembler).
    Fragment,
    /// A header too short, a length that does not fit, a port 0, an ICMP
    /// type the tracker does not follow.
    Malformed,
    /// A wrong IPv4, TCP, UDP or ICMP checksum.
    Checksum,
}

#[inline]
fn be16(f: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]))
}

#[inline]
fn be32(f: &[u8], at: usize) -> Option<u32> {
    let b = f.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Whether an IPv4 header's fragment field says "fragment".
#[inline]
fn is_fragment(frag_off: u16) -> bool {
    frag_off & 0x3fff != 0
}

/// The IPv4 header at `l3` (within `end`): (header length, src, dst, proto),
/// fragments refused, as OVS's `extract_l3_ipv4` (no total length check:
/// the caller does that for the outer header).
#[inline]
fn l3_fields(f: &[u8], l3: usize, end: usize) -> Result<(usize, u32, u32, u8), Bad> {
    if end < l3 + 20 || f.len() < end {
        return Err(Bad::Malformed);
    }
    let ihl = ((f[l3] & 0x0f) as usize) * 4;
    if ihl < 20 || end - l3 < ihl {
        return Err(Bad::Malformed);
    }
    if is_fragment(be16(f, l3 + 6).ok_or(Bad::Malformed)?) {
        return Err(Bad::Fragment);
    }
    let src = be32(f, l3 + 12).ok_or(Bad::Malformed)?;
    let dst = be32(f, l3 + 16).ok_or(Bad::Malformed)?;
    Ok((ihl, src, dst, f[l3 + 9]))
}

/// TCP/UDP checksum over `[l4, end)` with the IPv4 pseudo-header at `l3`.
#[inline]
fn l4_checksum_ok(f: &[u8], l3: usize, l4: usize, end: usize, proto: u8) -> bool {
    let sum = sum16(&f[l3 + 12..l3 + 20]) + proto as u32 + (end - l4) as u32 + sum16(&f[l4..end]);
    fold(sum) == 0
}

/// The window scale option of the TCP header at `l4` whose header is
/// `hdr_len` bytes (OVS `tcp_get_wscale`): `WSCALE_FLAG | shift`, or 0.
fn tcp_wscale(f: &[u8], l4: usize, hdr_len: usize) -> u8 {
    let opts = match f.get(l4 + 20..l4 + hdr_len) {
        Some(o) => o,
        None => return 0,
    };
    let (mut i, mut len, mut wscale) = (0usize, opts.len() as isize, 0u8);
    while len >= 3 {
        match opts[i] {
            0 => return wscale,
            1 => {
                i += 1;
                len -= 1;
            }
            kind => {
                if kind == 3 {
                    wscale = opts[i + 2].min(MAX_WSCALE) | WSCALE_FLAG;
                }
                let optlen = opts[i + 1].max(2) as usize;
                len -= optlen as isize;
                i += optlen;
            }
        }
    }
    wscale
}

/// Parses `f` as the tracker sees it, keyed in `zone`, into `p`; `validate`
/// checks the checksums. (An out-parameter: returning the 80-byte value
/// costs store-forwarding stalls on the hot path.)
///
/// # Errors
/// [`Bad`]: why the packet cannot be tracked (`p` is then partly written).
pub fn parse(f: &[u8], zone: u16, validate: bool, p: &mut Parsed) -> Result<(), Bad> {
    let (_, _, ethertype, l3) = ethernet(f).ok_or(Bad::NotIpv4)?;
    if ethertype != ETH_TYPE_IPV4 || f.len() < l3 + 20 || f[l3] >> 4 != 4 {
        return Err(if ethertype == ETH_TYPE_IPV4 { Bad::Malformed } else { Bad::NotIpv4 });
    }
    let total = be16(f, l3 + 2).ok_or(Bad::Malformed)? as usize;
    let end = l3 + total;
    if end > f.len() {
        return Err(Bad::Malformed);
    }
    let (ihl, src, dst, proto) = l3_fields(f, l3, end)?;
    if validate && fold(sum16(&f[l3..l3 + ihl])) != 0 {
        return Err(Bad::Checksum);
    }
    let l4 = l3 + ihl;
    let size = end - l4;
    p.key = Key { src, dst, sport: 0, dport: 0, zone, proto, icmp_type: 0 };
    p.l3 = l3;
    p.l4 = l4;
    p.end = end;
    p.related = false;
    match proto {
        IPPROTO_TCP => {
            if size < 20 {
                return Err(Bad::Malformed);
            }
            let hdr_len = ((f[l4 + 12] >> 4) as usize) * 4;
            if hdr_len < 20 || hdr_len > size {
                return Err(Bad::Malformed);
            }
            if validate && !l4_checksum_ok(f, l3, l4, end, proto) {
                return Err(Bad::Checksum);
            }
            let flags = be16(f, l4 + 12).ok_or(Bad::Malformed)? & 0x0fff;
            p.key.sport = be16(f, l4).ok_or(Bad::Malformed)?;
            p.key.dport = be16(f, l4 + 2).ok_or(Bad::Malformed)?;
            p.tcp = TcpSeg {
                flags,
                seq: be32(f, l4 + 4).ok_or(Bad::Malformed)?,
                ack: be32(f, l4 + 8).ok_or(Bad::Malformed)?,
                win: be16(f, l4 + 14).ok_or(Bad::Malformed)?,
                payload_len: (size - hdr_len) as u32,
                wscale: if flags & TCP_SYN != 0 { tcp_wscale(f, l4, hdr_len) } else { 0 },
            };
        }
        IPPROTO_UDP => {
            if size < 8 {
                return Err(Bad::Malformed);
            }
            let udp_len = be16(f, l4 + 4).ok_or(Bad::Malformed)? as usize;
            if udp_len < 8 || udp_len > size {
                return Err(Bad::Malformed);
            }
            let csum = be16(f, l4 + 6).ok_or(Bad::Malformed)?;
            if validate && csum != 0 && !l4_checksum_ok(f, l3, l4, end, proto) {
                return Err(Bad::Checksum);
            }
            p.key.sport = be16(f, l4).ok_or(Bad::Malformed)?;
            p.key.dport = be16(f, l4 + 2).ok_or(Bad::Malformed)?;
        }
        IPPROTO_ICMP => {
            if validate && fold(sum16(&f[l4..end])) != 0 {
                return Err(Bad::Checksum);
            }
            if size < 8 {
                return Err(Bad::Malformed);
            }
            let (ty, code) = (f[l4], f[l4 + 1]);
            if is_icmp_query(ty) {
                if code != 0 {
                    return Err(Bad::Malformed);
                }
                let id = be16(f, l4 + 4).ok_or(Bad::Malformed)?;
                p.key.sport = id;
                p.key.dport = id;
                p.key.icmp_type = ty;
            } else if matches!(ty, 3 | 4 | 5 | 11 | 12) {
                p.key = quoted_key(f, l4 + 8, end, dst, zone)?.reverse();
                p.related = true;
            } else {
                return Err(Bad::Malformed);
            }
        }
        _ => {}
    }
    if matches!(p.key.proto, IPPROTO_TCP | IPPROTO_UDP) && (p.key.sport == 0 || p.key.dport == 0) {
        return Err(Bad::Malformed);
    }
    Ok(())
}

/// The key of the packet an ICMP error quotes at `l3` (ending at `end`),
/// which must have been sent by `err_dst` (OVS: "inner src == outer dst").
/// Only its first 8 L4 bytes are needed; checksums are not checked and a
/// quoted ICMP error is refused.
fn quoted_key(f: &[u8], l3: usize, end: usize, err_dst: u32, zone: u16) -> Result<Key, Bad> {
    let (ihl, src, dst, proto) = l3_fields(f, l3, end).map_err(|_| Bad::Malformed)?;
    if src != err_dst {
        return Err(Bad::Malformed);
    }
    let l4 = l3 + ihl;
    let mut k = Key { src, dst, sport: 0, dport: 0, zone, proto, icmp_type: 0 };
    match proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            if end - l4 < 8 {
                return Err(Bad::Malformed);
            }
            k.sport = be16(f, l4).ok_or(Bad::Malformed)?;
            k.dport = be16(f, l4 + 2).ok_or(Bad::Malformed)?;
            if k.sport == 0 || k.dport == 0 {
                return Err(Bad::Malformed);
            }
        }
        IPPROTO_ICMP => {
            if end - l4 < 8 || !is_icmp_query(f[l4]) || f[l4 + 1] != 0 {
                return Err(Bad::Malformed);
            }
            let id = be16(f, l4 + 4).ok_or(Bad::Malformed)?;
            k.sport = id;
            k.dport = id;
            k.icmp_type = f[l4];
        }
        _ => {}
    }
    Ok(k)
}
