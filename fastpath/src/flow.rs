//! The flow key: every header field a megaflow may match, packed into
//! [`KEY_WORDS`] 64-bit words so that masking, hashing and comparing are a
//! few word operations (the layout OVS's miniflow buys with a bitmap).
//!
//! Layout (bit ranges within each word, least significant first):
//!
//! | word | bits 0..32 | bits 32..48 | 48..56 | 56..64 |
//! |------|-----------|-------------|--------|--------|
//! | 0 | in_port | pkt_mark (32..64) | | |
//! | 1 | tun_id (low 32) | dl_type | nw_proto / ARP op | nw_frag |
//! | 2 | tun_src | tun_dst (32..64) | | |
//! | 3 | dl_src (0..48) | | tp_src (48..64) | |
//! | 4 | dl_dst (0..48) | | tp_dst (48..64) | |
//! | 5 | nw_src / ARP spa | nw_dst / ARP tpa (32..64) | | |
//! | 6 | arp_sha (0..48) | | nw_tos | nw_ttl |
//! | 7 | arp_tha (0..48) | | | |
//!
//! As in OVS, ARP's addresses and opcode live in the IP fields and ICMP's
//! type/code in the port fields; a match on them always carries `dl_type`
//! (and `nw_proto`), so the overlap cannot confuse a lookup. The VXLAN VNI is
//! 24 bits, so the key keeps the low 32 bits of `tun_id`.

/// Words in a [`FlowKey`].
pub const KEY_WORDS: usize = 8;

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
        PKT_MARK = (0, 32, 0xffff_ffff);
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

    /// `self & mask`, word by word.
    #[inline]
    pub fn masked(&self, mask: &FlowKey) -> FlowKey {
        let mut out = FlowKey::default();
        for i in 0..KEY_WORDS {
            out.w[i] = self.w[i] & mask.w[i];
        }
        out
    }
}
