//! Frames for the tracker's tests, benchmarks and generators: Ethernet +
//! IPv4 (identification 1, TTL 64, no flags, as scapy's defaults) + TCP,
//! UDP, ICMP or another protocol, every checksum valid, no padding; and
//! such a packet cut into fragments.
//! Allocates; not for the datapath.

use crate::wire::{checksum, fold, sum16, ETH_TYPE_IPV4};

/// Destination MAC of the frames built here.
pub const DST_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 0x02];
/// Source MAC.
pub const SRC_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 0x01];

/// TCP flags for [`TcpSpec::flags`].
pub const FIN: u8 = 0x01;
/// SYN.
pub const SYN: u8 = 0x02;
/// RST.
pub const RST: u8 = 0x04;
/// PSH.
pub const PSH: u8 = 0x08;
/// ACK.
pub const ACK: u8 = 0x10;

/// An Ethernet frame carrying an IPv4 packet of protocol `proto` from `src`
/// to `dst` with L4 bytes `l4`; the header checksum and, for TCP and UDP,
/// the L4 checksum are computed here.
pub fn ipv4(src: u32, dst: u32, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(34 + l4.len());
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&ETH_TYPE_IPV4.to_be_bytes());
    let total = (20 + l4.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0]);
    f.extend_from_slice(&src.to_be_bytes());
    f.extend_from_slice(&dst.to_be_bytes());
    let c = checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(l4);
    let cs_at = match proto {
        6 => Some(34 + 16),
        17 => Some(34 + 6),
        _ => None,
    };
    if let Some(at) = cs_at {
        f[at..at + 2].copy_from_slice(&[0, 0]);
        let sum = sum16(&f[26..34]) + proto as u32 + l4.len() as u32 + sum16(&f[34..]);
        let mut c = fold(sum);
        if c == 0 && proto == 17 {
            c = 0xffff;
        }
        f[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    f
}

/// A TCP segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpSpec {
    /// Source address.
    pub src: u32,
    /// Source port.
    pub sport: u16,
    /// Destination address.
    pub dst: u32,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags (`SYN`, `ACK`, …).
    pub flags: u8,
    /// Window.
    pub win: u16,
    /// Window scale option (NOP, WS): 4 option bytes.
    pub wscale: Option<u8>,
    /// Payload bytes (all 0x61).
    pub payload: usize,
}

/// A TCP frame.
pub fn tcp(s: &TcpSpec) -> Vec<u8> {
    let opts: &[u8] = match s.wscale {
        Some(w) => &[1, 3, 3, w],
        None => &[],
    };
    let hdr = 20 + opts.len();
    let mut l4 = vec![0u8; hdr + s.payload];
    l4[0..2].copy_from_slice(&s.sport.to_be_bytes());
    l4[2..4].copy_from_slice(&s.dport.to_be_bytes());
    l4[4..8].copy_from_slice(&s.seq.to_be_bytes());
    l4[8..12].copy_from_slice(&s.ack.to_be_bytes());
    l4[12] = ((hdr / 4) as u8) << 4;
    l4[13] = s.flags;
    l4[14..16].copy_from_slice(&s.win.to_be_bytes());
    l4[20..hdr].copy_from_slice(opts);
    l4[hdr..].fill(0x61);
    ipv4(s.src, s.dst, 6, &l4)
}

/// A UDP frame with `payload` bytes (all 0x61).
pub fn udp(src: u32, sport: u16, dst: u32, dport: u16, payload: usize) -> Vec<u8> {
    let mut l4 = vec![0x61u8; 8 + payload];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    l4[6..8].copy_from_slice(&[0, 0]);
    ipv4(src, dst, 17, &l4)
}

/// An ICMP frame of `ty`/`code` with the 4 bytes after the checksum
/// `rest` and then `data`.
pub fn icmp(src: u32, dst: u32, ty: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut l4 = vec![ty, code, 0, 0];
    l4.extend_from_slice(&rest);
    l4.extend_from_slice(data);
    let c = checksum(&l4);
    l4[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4(src, dst, 1, &l4)
}

/// An ICMP echo request (8) or reply (0) with identifier `id`, sequence
/// `seq` and 8 bytes of data.
pub fn icmp_echo(src: u32, dst: u32, ty: u8, id: u16, seq: u16) -> Vec<u8> {
    let idseq = [(id >> 8) as u8, id as u8, (seq >> 8) as u8, seq as u8];
    icmp(src, dst, ty, 0, idseq, &[0x61; 8])
}

/// An ICMP error (`ty`/`code`: 3/3 port unreachable, 11/0 TTL exceeded …)
/// from `src` to `dst` quoting the first `quote` bytes of the IPv4 packet
/// in `frame`.
///
/// # Panics
/// If `frame` is shorter than an Ethernet header.
pub fn icmp_error(src: u32, dst: u32, ty: u8, code: u8, frame: &[u8], quote: usize) -> Vec<u8> {
    let ip = &frame[14..];
    icmp(src, dst, ty, code, [0; 4], &ip[..quote.min(ip.len())])
}

/// Marks `frame` a fragment (more fragments, offset `offset` × 8 bytes),
/// the header checksum fixed.
///
/// # Panics
/// If `frame` is shorter than Ethernet and IPv4 headers (34 bytes).
pub fn fragment(frame: &mut [u8], offset: u16) {
    let v = 0x2000 | (offset & 0x1fff);
    frame[20..22].copy_from_slice(&v.to_be_bytes());
    frame[24..26].copy_from_slice(&[0, 0]);
    let c = checksum(&frame[14..34]);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

/// The IPv4 packet in `frame` cut into fragments, as a host fragments it:
/// one after each of `cuts` payload bytes (each a multiple of 8), the
/// last carrying the rest; every fragment gets the Ethernet and IPv4
/// headers (options included), identification `id`, its offset and
/// more-fragments bit and a fixed header checksum. In offset order.
///
/// # Panics
/// If `frame` is not Ethernet + IPv4, or the cuts pass its payload or are
/// not multiples of 8.
pub fn fragments(frame: &[u8], id: u16, cuts: &[usize]) -> Vec<Vec<u8>> {
    let ihl = ((frame[14] & 0x0f) as usize) * 4;
    let tot = u16::from_be_bytes([frame[16], frame[17]]) as usize;
    let (head, payload) = (&frame[..14 + ihl], &frame[14 + ihl..14 + tot]);
    let mut out = Vec::new();
    let mut off = 0;
    for (i, &n) in cuts.iter().chain(std::iter::once(&(payload.len() - cuts.iter().sum::<usize>()))).enumerate() {
        let last = i == cuts.len();
        assert!(last || n % 8 == 0, "a fragment but the last carries a multiple of 8 bytes");
        let mut f = head.to_vec();
        f.extend_from_slice(&payload[off..off + n]);
        f[16..18].copy_from_slice(&((ihl + n) as u16).to_be_bytes());
        f[18..20].copy_from_slice(&id.to_be_bytes());
        let flags = if last { 0 } else { 0x2000 };
        f[20..22].copy_from_slice(&(flags | (off / 8) as u16).to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let c = checksum(&f[14..14 + ihl]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        out.push(f);
        off += n;
    }
    out
}

/// An IPv4 address from its four bytes.
pub const fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_checksums_verify() {
        let t = tcp(&TcpSpec {
            src: ip(10, 0, 0, 1),
            sport: 40000,
            dst: ip(10, 0, 0, 2),
            dport: 80,
            seq: 1000,
            flags: SYN,
            win: 64240,
            wscale: Some(7),
            ..TcpSpec::default()
        });
        assert_eq!(t.len(), 14 + 20 + 24);
        // scapy: .../TCP(sport=40000,dport=80,seq=1000,flags="S",window=64240,
        // options=[("NOP",None),("WScale",7)])
        assert_eq!(
            t.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "0a00000000020a000000000108004500002c00010000400666c90a0000010a0000029c400050000003e8000000006002faf0ec68000001030307"
        );
        assert_eq!(checksum(&t[14..34]), 0);
        let sum = sum16(&t[26..34]) + 6 + 24 + sum16(&t[34..]);
        assert_eq!(fold(sum), 0);
        let u = udp(ip(10, 0, 0, 1), 1000, ip(10, 0, 0, 2), 2000, 1);
        // scapy: Ether(src="0a:00:00:00:00:01",dst="0a:00:00:00:00:02")/IP(src="10.0.0.1",
        // dst="10.0.0.2")/UDP(sport=1000,dport=2000)/b"a"
        assert_eq!(
            u.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "0a00000000020a000000000108004500001d00010000401166cd0a0000010a00000203e807d000097f2161"
        );
        let e = icmp_echo(ip(10, 0, 0, 1), ip(10, 0, 0, 2), 8, 7, 1);
        assert_eq!(checksum(&e[34..]), 0);
        let err = icmp_error(ip(10, 0, 0, 9), ip(10, 0, 0, 1), 3, 3, &u, 28);
        assert_eq!(checksum(&err[34..]), 0);
        assert_eq!(&err[42..70], &u[14..42]);
    }
}
