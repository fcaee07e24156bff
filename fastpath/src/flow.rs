//! The flow key: every header field a megaflow may match, packed into
//! [`KEY_WORDS`] 64-bit words so that masking, hashing and comparing are a
//! few word operations (the layout OVS's miniflow buys with a bitmap).
//!
//! Layout (bit ranges within each word, least significant first):
//!
//! | word | bits 0..32 | bits 32..48 | 48..56 | 56..64 |
//! |------|-----------|-------------|--------|--------|
//! | 0 | in_port | recirc_id (32..64) | | |
//! | 1 | tun_id (low 32) | dl_type | nw_proto / ARP op | nw_frag |
//! | 2 | tun_src | tun_dst (32..64) | | |
//! | 3 | dl_src (0..48) | | tp_src (48..64) | |
//! | 4 | dl_dst (0..48) | | tp_dst (48..64) | |
//! | 5 | nw_src / ARP spa | nw_dst / ARP tpa (32..64) | | |
//! | 6 | arp_sha (0..48) | | nw_tos | nw_ttl |
//! | 7 | arp_tha (0..48) | | ct_state | |
//! | 8 | ct_zone (0..16), ct_nw_proto (16..24) | ct_mark (32..64) | | |
//! | 9 | ct_nw_src | ct_nw_dst (32..64) | | |
//! | 10 | ct_tp_src (0..16), ct_tp_dst (16..32) | | | |
//! | 11, 12 | ct_label (low 64 bits, then high) | | | |
//!
//! The first [`BASE_WORDS`] are every packet's; the connection-tracking
//! words after them are non-zero only in a tracked packet's key (one that
//! went through `ct` and was recirculated: `ct_state` has `trk`), so
//! hashing and comparing read them only when `trk` is set, and a packet
//! that is never tracked pays nothing for them. A megaflow mask that
//! covers any of them also covers `trk` ([`FlowKey::normalize_mask`]).
//!
//! As in OVS, ARP's addresses and opcode live in the IP fields and ICMP's
//! type/code in the port fields; a match on them always carries `dl_type`
//! (and `nw_proto`), so the overlap cannot confuse a lookup. The VXLAN VNI is
//! 24 bits, so the key keeps the low 32 bits of `tun_id`. `pkt_mark` is not
//! in the key: no port hands the datapath a marked frame, so it is pipeline
//! metadata (the slow path's) like the registers.

/// Words in a [`FlowKey`].
pub const KEY_WORDS: usize = 13;
/// Words every packet's key fills; the rest are connection tracking's.
pub const BASE_WORDS: usize = 8;
/// The `ct_state` bit `trk` where it sits in word 7: set in a tracked
/// packet's key, and in a mask that covers any connection-tracking word.
pub const TRK_BIT: u64 = 0x20 << 48;

/// Where a field sits in the key: word, shift and width mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldLoc {
    /// Word index.
    pub word: usize,
    /// Bit shift within the word.
    pub shift: u32,
    /// Mask of the field's bits (before shifting).
    pub mask: u64,
}

macro_rules! locs {
    ($($name:ident = ($w:expr, $s:expr, $m:expr);)*) => {
        $(
            #[allow(missing_docs)]
            pub const $name: FieldLoc = FieldLoc { word: $w, shift: $s, mask: $m };
        )*
    };
}

/// Field locations.
pub mod loc {
    use super::FieldLoc;
    locs! {
        IN_PORT = (0, 0, 0xffff_ffff);
        RECIRC_ID = (0, 32, 0xffff_ffff);
        TUN_ID = (1, 0, 0xffff_ffff);
        DL_TYPE = (1, 32, 0xffff);
        NW_PROTO = (1, 48, 0xff);
        NW_FRAG = (1, 56, 0xff);
        TUN_SRC = (2, 0, 0xffff_ffff);
        TUN_DST = (2, 32, 0xffff_ffff);
        DL_SRC = (3, 0, 0xffff_ffff_ffff);
        TP_SRC = (3, 48, 0xffff);
        DL_DST = (4, 0, 0xffff_ffff_ffff);
        TP_DST = (4, 48, 0xffff);
        NW_SRC = (5, 0, 0xffff_ffff);
        NW_DST = (5, 32, 0xffff_ffff);
        ARP_SHA = (6, 0, 0xffff_ffff_ffff);
        NW_TOS = (6, 48, 0xff);
        NW_TTL = (6, 56, 0xff);
        ARP_THA = (7, 0, 0xffff_ffff_ffff);
        CT_STATE = (7, 48, 0xff);
        CT_ZONE = (8, 0, 0xffff);
        CT_NW_PROTO = (8, 16, 0xff);
        CT_MARK = (8, 32, 0xffff_ffff);
        CT_NW_SRC = (9, 0, 0xffff_ffff);
        CT_NW_DST = (9, 32, 0xffff_ffff);
        CT_TP_SRC = (10, 0, 0xffff);
        CT_TP_DST = (10, 16, 0xffff);
        CT_LABEL_LO = (11, 0, 0xffff_ffff_ffff_ffff);
        CT_LABEL_HI = (12, 0, 0xffff_ffff_ffff_ffff);
    }
}

/// The flow key of a packet (or a mask over keys).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The packed words (see the module doc).
    pub w: [u64; KEY_WORDS],
}

impl FlowKey {
    /// Reads a field.
    #[inline]
    pub fn get(&self, l: FieldLoc) -> u64 {
        (self.w[l.word] >> l.shift) & l.mask
    }

    /// Writes a field (bits outside the field's mask are ignored).
    #[inline]
    pub fn set(&mut self, l: FieldLoc, v: u64) {
        let w = &mut self.w[l.word];
        *w = (*w & !(l.mask << l.shift)) | ((v & l.mask) << l.shift);
    }

    /// `self & mask`, word by word (the connection-tracking words only
    /// where the mask covers them: a normalised mask has `trk` then).
    #[inline]
    pub fn masked(&self, mask: &FlowKey) -> FlowKey {
        let mut out = FlowKey::default();
        for i in 0..BASE_WORDS {
            out.w[i] = self.w[i] & mask.w[i];
        }
        if mask.w[7] & TRK_BIT != 0 {
            self.mask_ct_words(mask, &mut out);
        }
        out
    }

    /// The connection-tracking words of [`FlowKey::masked`] (cold: see
    /// [`with_ct_chains`]).
    #[cold]
    #[inline(never)]
    fn mask_ct_words(&self, mask: &FlowKey, out: &mut FlowKey) {
        for i in BASE_WORDS..KEY_WORDS {
            out.w[i] = self.w[i] & mask.w[i];
        }
    }

    /// `self & mask` over the base words alone (for a mask that covers no
    /// connection-tracking word).
    #[inline]
    pub fn masked_base(&self, mask: &FlowKey) -> [u64; BASE_WORDS] {
        std::array::from_fn(|i| self.w[i] & mask.w[i])
    }

    /// The base words.
    #[inline]
    pub fn base(&self) -> &[u64; BASE_WORDS] {
        self.w[..BASE_WORDS].try_into().expect("base words")
    }

    /// The connection-tracking words (after the base words).
    #[inline]
    pub fn ct_words(&self) -> &[u64; KEY_WORDS - BASE_WORDS] {
        self.w[BASE_WORDS..].try_into().expect("connection-tracking words")
    }

    /// Whether the key is a tracked packet's (or, for a mask, covers the
    /// connection-tracking words).
    #[inline]
    pub fn tracked(&self) -> bool {
        self.w[7] & TRK_BIT != 0
    }

    /// A mask made fit for the datapath: one that covers any connection-
    /// tracking word also covers `trk` (a finer mask, so still sound), so
    /// that the hash and the comparisons, which read those words only with
    /// `trk`, see them.
    pub fn normalize_mask(&mut self) {
        if self.w[BASE_WORDS..].iter().any(|&w| w != 0) {
            self.w[7] |= TRK_BIT;
        }
    }
}

/// Hash of `w & mask` over the word indices `idx` (the non-zero words of a
/// mask): what the OpenFlow classifier's subtables key their buckets by.
#[inline]
pub fn masked_hash(w: &[u64], mask: &[u64], idx: &[u8]) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15u64;
    for &i in idx {
        let i = i as usize;
        let (x, m) = (w.get(i).copied().unwrap_or(0), mask.get(i).copied().unwrap_or(0));
        h = (h.rotate_left(23) ^ (x & m)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    h ^ (h >> 29)
}

/// A frame the extractor could not fully parse. The key then holds what was
/// readable (as OVS's `flow_extract`: a bad IPv4 header leaves `dl_type` IP
/// with zero addresses), the packet goes through the tables like any other,
/// and the reason is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Malformed {
    /// Shorter than an Ethernet header.
    ShortEthernet = 0,
    /// IPv4 header truncated or invalid.
    BadIpv4,
    /// ARP truncated or not Ethernet/IPv4.
    BadArp,
    /// TCP/UDP/SCTP ports or ICMP type and code not within the IPv4 packet
    /// (its total length or the frame ends first).
    ShortL4,
    /// Uplink frame that is not VXLAN to our VTEP.
    NotForUs,
}

/// Number of [`Malformed`] reasons.
pub const N_MALFORMED: usize = 5;

/// The local end of the VXLAN overlay: frames arriving on the uplink to this
/// VTEP and UDP port are decapsulated and enter as `in_port = port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalVtep {
    /// Local VTEP IPv4 address (the node IP).
    pub ip: u32,
    /// VXLAN UDP port.
    pub udp_port: u16,
    /// OpenFlow port of vxlan0.
    pub port: u32,
}

/// A key's words folded into two independent xor-rotate chains, each
/// multiplied once (short dependency chains; a product's high half mixes
/// every input bit): what [`FlowKey::hash`] and the megaflow subtables'
/// hash are made of.
/// The connection-tracking words are folded in only for a tracked key.
#[inline(always)]
pub(crate) fn word_chains(w: &[u64; KEY_WORDS]) -> (u64, u64) {
    let mut a = w[0] ^ w[1].rotate_left(9) ^ w[2].rotate_left(19) ^ w[3].rotate_left(27);
    let mut b = w[4] ^ w[5].rotate_left(13) ^ w[6].rotate_left(31) ^ w[7].rotate_left(41);
    if w[7] & TRK_BIT != 0 {
        (a, b) = with_ct_chains(w, a, b);
    }
    (a.wrapping_mul(0x9e37_79b9_7f4a_7c15), b.wrapping_mul(0xc2b2_ae3d_27d4_eb4f))
}

/// [`word_chains`] of an untracked key's base words (the connection-
/// tracking words are zero and not folded in): the same chains, from the
/// base words alone.
#[inline(always)]
pub(crate) fn base_chains(w: &[u64; BASE_WORDS]) -> (u64, u64) {
    let a = w[0] ^ w[1].rotate_left(9) ^ w[2].rotate_left(19) ^ w[3].rotate_left(27);
    let b = w[4] ^ w[5].rotate_left(13) ^ w[6].rotate_left(31) ^ w[7].rotate_left(41);
    (a.wrapping_mul(0x9e37_79b9_7f4a_7c15), b.wrapping_mul(0xc2b2_ae3d_27d4_eb4f))
}

/// The connection-tracking words folded into the chains `a` and `b`. Out
/// of line and cold, so that an untracked key pays a test and a branch, not
/// the folding (inlined, the compiler computes it unconditionally).
#[cold]
#[inline(never)]
fn with_ct_chains(w: &[u64; KEY_WORDS], a: u64, b: u64) -> (u64, u64) {
    let x = w[8].rotate_left(5) ^ w[10].rotate_left(37) ^ w[12].rotate_left(53);
    let y = w[9].rotate_left(23) ^ w[11].rotate_left(47);
    (a ^ x.wrapping_mul(0xff51_afd7_ed55_8ccd), b ^ y.wrapping_mul(0xc4ce_b9fe_1a85_ec53))
}

/// [`FlowKey::hash`] of a key's words: the chains' high halves.
#[inline(always)]
fn hash_words(w: &[u64; KEY_WORDS]) -> u32 {
    let (a, b) = word_chains(w);
    ((a >> 32) ^ (b >> 29)) as u32
}

/// Whether two keys are equal, every word compared without branching (no
/// call to memcmp; vectorised).
#[inline]
pub(crate) fn same_key(a: &FlowKey, b: &FlowKey) -> bool {
    same_words(&a.w, &b.w)
}

/// Whether two runs of key words are equal, compared without branching
/// (the EMC's and the classifier's comparisons).
#[inline(always)]
pub(crate) fn same_words<const N: usize>(a: &[u64; N], b: &[u64; N]) -> bool {
    let mut d = 0;
    for i in 0..N {
        d |= a[i] ^ b[i];
    }
    d == 0
}

impl FlowKey {
    /// A 32-bit hash of the whole key (EMC index, VXLAN source port).
    #[inline]
    pub fn hash(&self) -> u32 {
        hash_words(&self.w)
    }

    /// [`FlowKey::hash`] of an untracked key (a packet's first pass), from
    /// its base words alone: no test of `trk`.
    #[inline]
    pub fn hash_untracked(&self) -> u32 {
        debug_assert!(!self.tracked());
        let (a, b) = base_chains(self.base());
        ((a >> 32) ^ (b >> 29)) as u32
    }

    /// Extracts the key of an Ethernet frame received on `in_port`.
    /// Returns why the frame was not fully parsed, if it was not.
    #[inline]
    pub fn extract(&mut self, f: &[u8], in_port: u32) -> Option<Malformed> {
        if self.extract_fast(f, in_port) {
            return None;
        }
        self.extract_full(f, in_port)
    }

    /// [`FlowKey::extract`] and [`FlowKey::hash`] at once: the common case
    /// hashes the key's words while they are still in registers.
    #[inline]
    pub fn extract_hashed(&mut self, f: &[u8], in_port: u32) -> (Option<Malformed>, u32) {
        if fast_base(f, in_port, &mut self.w) {
            // Inlined, the words just stored are hashed from registers (an
            // extracted key is untracked: its base words are all there is).
            return (None, self.hash_untracked());
        }
        let bad = self.extract_full(f, in_port);
        (bad, self.hash())
    }

    /// The common case (see [`fast_base`]); false to defer to the full
    /// parser.
    #[inline]
    fn extract_fast(&mut self, f: &[u8], in_port: u32) -> bool {
        fast_base(f, in_port, &mut self.w)
    }

    #[inline]
    fn extract_full(&mut self, f: &[u8], in_port: u32) -> Option<Malformed> {
        use crate::wire;
        self.w = [0; KEY_WORDS];
        self.set(loc::IN_PORT, in_port as u64);
        let Some((dst, src, dl_type, off)) = wire::ethernet(f) else {
            return Some(Malformed::ShortEthernet);
        };
        self.w[3] = src;
        self.w[4] = dst;
        self.w[1] = (dl_type as u64) << 32;
        match dl_type {
            wire::ETH_TYPE_IPV4 => {
                let Some(ip) = wire::ipv4(f, off) else {
                    return Some(Malformed::BadIpv4);
                };
                let frag = if ip.later { 3 } else { ip.frag as u64 };
                self.w[1] |= (ip.proto as u64) << 48 | frag << 56;
                self.w[5] = ip.src as u64 | (ip.dst as u64) << 32;
                self.w[6] = (ip.tos as u64) << 48 | (ip.ttl as u64) << 56;
                if ip.later {
                    return None;
                }
                // L4 fields come from the IPv4 packet, up to its total
                // length, never from the Ethernet padding after it (OVS:
                // "never pull padding"); a total length past the frame's
                // end is taken leniently, as far as the frame goes.
                let f = &f[..(off + ip.total_len as usize).min(f.len())];
                let l4 = off + ip.ihl;
                let ports = match ip.proto {
                    6 | 17 | 132 => wire::l4_ports(f, l4),
                    1 => wire::icmp(f, l4).map(|(t, c)| (t as u16, c as u16)),
                    _ => return None,
                };
                let Some((sp, dp)) = ports else {
                    return Some(Malformed::ShortL4);
                };
                self.w[3] |= (sp as u64) << 48;
                self.w[4] |= (dp as u64) << 48;
                None
            }
            wire::ETH_TYPE_ARP => {
                let Some(a) = wire::arp(f, off) else {
                    return Some(Malformed::BadArp);
                };
                let op = if a.op <= 0xff { a.op as u64 } else { 0 };
                self.w[1] |= op << 48;
                self.w[5] = a.spa as u64 | (a.tpa as u64) << 32;
                self.w[6] = a.sha;
                self.w[7] = a.tha;
                None
            }
            _ => None,
        }
    }

    /// Extracts the key of a frame from the uplink: VXLAN to `vtep` is
    /// decapsulated (in_port becomes vxlan0, tunnel fields set) and the
    /// offset of the inner frame returned; anything else is not for the
    /// datapath (`Err(NotForUs)`, it belongs to the host).
    #[inline]
    pub fn extract_uplink(&mut self, f: &[u8], vtep: &LocalVtep) -> Result<(usize, Option<Malformed>), Malformed> {
        let (vni, src, inner) = match outer_fast(f, vtep) {
            Some((vni, src)) => (vni, src, crate::wire::VXLAN_ENCAP_LEN),
            None => outer_full(f, vtep)?,
        };
        let bad = self.extract(f.get(inner..).unwrap_or(&[]), vtep.port);
        self.set(loc::TUN_ID, vni as u64);
        self.set(loc::TUN_SRC, src as u64);
        self.set(loc::TUN_DST, vtep.ip as u64);
        Ok((inner, bad))
    }
}

/// The common outer header in one bounds check: untagged IPv4 without
/// options, not a fragment, UDP to our VTEP address and port, VXLAN with the
/// I flag. Returns (VNI, outer source); `None` defers to [`outer_full`],
/// which accepts the same frames and more.
#[inline]
fn outer_fast(f: &[u8], vtep: &LocalVtep) -> Option<(u32, u32)> {
    let h: &[u8; 50] = f.get(..50)?.try_into().ok()?;
    let be16 = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    let be32 = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let ok = h[12] == 0x08
        && h[13] == 0
        && h[14] == 0x45
        && be16(16) >= 20
        && be16(20) & 0x3fff == 0
        && h[23] == 17
        && be32(30) == vtep.ip
        && be16(36) == vtep.udp_port
        && h[42] & 0x08 != 0;
    ok.then(|| (u32::from_be_bytes([0, h[46], h[47], h[48]]), be32(26)))
}

/// The outer headers of a frame from the uplink, any layout: (VNI, outer
/// source, offset of the inner frame), or not for the datapath.
fn outer_full(f: &[u8], vtep: &LocalVtep) -> Result<(u32, u32, usize), Malformed> {
    use crate::wire;
    let (_, _, t, off) = wire::ethernet(f).ok_or(Malformed::NotForUs)?;
    if t != wire::ETH_TYPE_IPV4 {
        return Err(Malformed::NotForUs);
    }
    let ip = wire::ipv4(f, off).ok_or(Malformed::NotForUs)?;
    if ip.dst != vtep.ip || ip.proto != 17 || ip.frag {
        return Err(Malformed::NotForUs);
    }
    let udp = off + ip.ihl;
    let (_, dport) = wire::l4_ports(f, udp).ok_or(Malformed::NotForUs)?;
    if dport != vtep.udp_port {
        return Err(Malformed::NotForUs);
    }
    let vni = wire::vxlan_vni(f, udp + 8).ok_or(Malformed::NotForUs)?;
    Ok((vni, ip.src, udp + 16))
}

/// The base words of the common case, in one bounds check: untagged IPv4
/// without options, not a fragment, TCP or UDP, with the ports inside the
/// IPv4 packet (total length at least 24), written to `w`'s base words.
/// False defers to the full parser (`w` untouched).
#[inline(always)]
fn fast_base(f: &[u8], in_port: u32, w: &mut [u64; KEY_WORDS]) -> bool {
    let Some(h) = f.get(..38).and_then(|s| <&[u8; 38]>::try_from(s).ok()) else {
        return false;
    };
    let total_len = u16::from_be_bytes([h[16], h[17]]);
    let frag = u16::from_be_bytes([h[20], h[21]]) & 0x3fff;
    let proto = h[23];
    if h[12] != 0x08 || h[13] != 0 || h[14] != 0x45 || total_len < 24 || frag != 0 || (proto != 6 && proto != 17) {
        return false;
    }
    // Wide loads: 8 bytes at 0 hold the destination MAC, at 4 the
    // source MAC (bytes 6..12), at 30 the destination IP and the ports.
    let be64 =
        |i: usize| u64::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3], h[i + 4], h[i + 5], h[i + 6], h[i + 7]]);
    let be32 = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]) as u64;
    let tail = be64(30);
    let (sp, dp) = ((tail >> 16) & 0xffff, tail & 0xffff);
    // The base words only: an untracked key's connection-tracking words
    // are zero and stay so (a recirculated packet's key is built elsewhere).
    let base: &mut [u64; BASE_WORDS] = (&mut w[..BASE_WORDS]).try_into().expect("base words");
    *base = [
        in_port as u64,
        0x0800u64 << 32 | (proto as u64) << 48,
        0,
        (be64(4) & 0xffff_ffff_ffff) | sp << 48,
        be64(0) >> 16 | dp << 48,
        be32(26) | (tail >> 32) << 32,
        (h[15] as u64) << 48 | (h[22] as u64) << 56,
        0,
    ];
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_udp() -> Vec<u8> {
        let mut f = vec![
            0x0a, 0x58, 0x0a, 0x81, 0x00, 0x07, 0x0a, 0x58, 0x0a, 0x83, 0x00, 0x03, 0x08, 0x00, 0x45, 0x00, 0x00, 0x1c,
            0x00, 0x01, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 10, 131, 0, 3, 10, 129, 0, 7, 0x9c, 0x40, 0x1f, 0x90, 0x00,
            0x08, 0x00, 0x00,
        ];
        f.resize(60, 0);
        f
    }

    #[test]
    fn test_extract_udp() {
        let mut k = FlowKey::default();
        assert_eq!(k.extract(&frame_udp(), 4), None);
        assert_eq!(k.get(loc::IN_PORT), 4);
        assert_eq!(k.get(loc::DL_TYPE), 0x0800);
        assert_eq!(k.get(loc::NW_PROTO), 17);
        assert_eq!(k.get(loc::NW_SRC), 0x0a830003);
        assert_eq!(k.get(loc::NW_DST), 0x0a810007);
        assert_eq!((k.get(loc::TP_SRC), k.get(loc::TP_DST)), (40000, 8080));
        assert_eq!(k.get(loc::NW_TTL), 64);
        assert_eq!(k.get(loc::DL_SRC), 0x0a580a830003);
    }

    /// Overwrites `n` random bytes among the first `span` of `f` with
    /// random values, or (with `flips`, half the time) flips one bit.
    fn mutate(f: &mut [u8], seed: &mut u64, n: usize, span: usize, flips: bool) {
        for _ in 0..n {
            let r = crate::testutil::lcg(seed);
            let at = (r >> 33) as usize % span;
            f[at] = if !flips || r & 1 == 0 { (r >> 17) as u8 } else { f[at] ^ (1 << ((r >> 9) % 8)) };
        }
    }

    #[test]
    fn test_fast_path_equals_full_parser() {
        let base = frame_udp();
        let mut seed = 7u64;
        for i in 0..20_000 {
            let mut f = base.clone();
            let span = f.len();
            mutate(&mut f, &mut seed, i % 4, span, false);
            f.truncate(30 + i % 31);
            let (mut a, mut b, mut c) = (FlowKey::default(), FlowKey::default(), FlowKey::default());
            let ra = a.extract(&f, 7);
            let rb = b.extract_full(&f, 7);
            assert_eq!((a, ra), (b, rb), "frame {f:02x?}");
            assert_eq!(c.extract_hashed(&f, 7), (rb, b.hash()), "extract_hashed: frame {f:02x?}");
            assert_eq!(c, b);
        }
    }

    /// The one-check outer parser accepts only what the general one
    /// accepts, with the same result, on mutated VXLAN frames.
    #[test]
    fn test_outer_fast_equals_full() {
        let inner = frame_udp();
        let t = crate::wire::VxlanTemplate::new(1, 2, 0xac100110, 0xac100119, 4789, 0x2be3);
        let mut base = vec![0u8; 50];
        t.write(&mut base, inner.len(), 50000);
        base.extend_from_slice(&inner);
        let vtep = LocalVtep { ip: 0xac100119, udp_port: 4789, port: 1 };
        let (mut seed, mut fast) = (11u64, 0);
        for i in 0..50_000 {
            let mut f = base.clone();
            mutate(&mut f, &mut seed, i % 3, 50, true);
            f.truncate(40 + i % 60);
            let full = outer_full(&f, &vtep);
            if let Some((vni, src)) = outer_fast(&f, &vtep) {
                fast += 1;
                assert_eq!(full, Ok((vni, src, 50)), "frame {f:02x?}");
            }
        }
        assert!(fast > 10_000, "the fast parser took only {fast} frames");
    }

    /// Ports are not read from past the IPv4 total length (the frame's
    /// padding), by the fast path or the full parser.
    #[test]
    fn test_l4_not_read_past_total_length() {
        let mut f = frame_udp();
        f[42..60].fill(0xee); // padding, as a NIC may leave it
        let mut k = FlowKey::default();
        for (total_len, want) in
            [(20u16, None), (22, None), (23, None), (24, Some((40000, 8080))), (0xffff, Some((40000, 8080)))]
        {
            f[16..18].copy_from_slice(&total_len.to_be_bytes());
            let bad = k.extract(&f, 4);
            let ports = (k.get(loc::TP_SRC) as u16, k.get(loc::TP_DST) as u16);
            assert_eq!(
                (bad, k.get(loc::NW_PROTO)),
                (want.is_none().then_some(Malformed::ShortL4), 17),
                "total length {total_len}"
            );
            assert_eq!(ports, want.unwrap_or((0, 0)), "total length {total_len}");
            let mut full = FlowKey::default();
            assert_eq!((full.extract_full(&f, 4), full), (bad, k), "total length {total_len}");
        }
        // An ICMP header needs two bytes of the packet: type and code.
        f[23] = 1;
        f[16..18].copy_from_slice(&21u16.to_be_bytes());
        assert_eq!(k.extract(&f, 4), Some(Malformed::ShortL4));
        f[16..18].copy_from_slice(&22u16.to_be_bytes());
        assert_eq!(k.extract(&f, 4), None);
        assert_eq!((k.get(loc::TP_SRC), k.get(loc::TP_DST)), (0x9c, 0x40));
    }

    #[test]
    fn test_later_fragment_has_no_ports() {
        let mut f = frame_udp();
        f[20] = 0x00;
        f[21] = 0x10; // offset 16*8
        let mut k = FlowKey::default();
        assert_eq!(k.extract(&f, 4), None);
        assert_eq!(k.get(loc::NW_FRAG), 3);
        assert_eq!((k.get(loc::TP_SRC), k.get(loc::TP_DST)), (0, 0));
    }

    #[test]
    fn test_malformed_counts_but_keeps_type() {
        let f = frame_udp();
        let mut k = FlowKey::default();
        assert_eq!(k.extract(&f[..30], 4), Some(Malformed::BadIpv4));
        assert_eq!(k.get(loc::DL_TYPE), 0x0800);
        assert_eq!(k.get(loc::NW_SRC), 0);
        assert_eq!(k.extract(&f[..10], 4), Some(Malformed::ShortEthernet));
        assert_eq!(k.extract(&f[..36], 4), Some(Malformed::ShortL4));
    }

    #[test]
    fn test_uplink_decap() {
        let inner = frame_udp();
        let t = crate::wire::VxlanTemplate::new(1, 2, 0xac100110, 0xac100119, 4789, 0x2be3);
        let mut f = vec![0u8; 50];
        t.write(&mut f, inner.len(), 50000);
        f.extend_from_slice(&inner);
        let vtep = LocalVtep { ip: 0xac100119, udp_port: 4789, port: 1 };
        let mut k = FlowKey::default();
        assert_eq!(k.extract_uplink(&f, &vtep), Ok((50, None)));
        assert_eq!(k.get(loc::IN_PORT), 1);
        assert_eq!(k.get(loc::TUN_ID), 0x2be3);
        assert_eq!(k.get(loc::TUN_SRC), 0xac100110);
        assert_eq!(k.get(loc::NW_DST), 0x0a810007);
        let other = LocalVtep { ip: 0xac100120, ..vtep };
        assert_eq!(k.extract_uplink(&f, &other), Err(Malformed::NotForUs));
    }
}
