//! The OpenFlow-level flow: the datapath [`FlowKey`] words plus the pipeline
//! metadata that only exists during translation (registers, pkt_mark, the high half of
//! tun_id). Matches from [`config::ofctl`] convert to (value, mask) pairs over
//! the same words, so the classifier works on plain word arrays.

use config::ofctl::{Field, Match, ALL_FIELDS, N_FIELDS};
use fastpath::flow::{loc, FieldLoc};
use fastpath::{FlowKey, KEY_WORDS};

/// Words in an [`OfFlow`]: the key, four register words, tun_id's high
/// half, pkt_mark.
pub const FLOW_WORDS: usize = KEY_WORDS + 6;

/// A flow (or a mask) at the OpenFlow level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OfFlow {
    /// Key words, then reg0|reg1<<32, reg2|reg3<<32, ..., tun_id high,
    /// pkt_mark.
    pub w: [u64; FLOW_WORDS],
}

const TUN_ID_HI: FieldLoc = FieldLoc { word: KEY_WORDS + 4, shift: 0, mask: 0xffff_ffff };

/// Where a field lives; tun_id is split (low half in the key).
const fn loc_of(f: Field) -> FieldLoc {
    const fn reg(r: usize) -> FieldLoc {
        FieldLoc { word: KEY_WORDS + r / 2, shift: 32 * (r as u32 % 2), mask: 0xffff_ffff }
    }
    match f {
        Field::Reg0 => reg(0),
        Field::Reg1 => reg(1),
        Field::Reg2 => reg(2),
        Field::Reg3 => reg(3),
        Field::Reg4 => reg(4),
        Field::Reg5 => reg(5),
        Field::Reg6 => reg(6),
        Field::Reg7 => reg(7),
        Field::InPort => loc::IN_PORT,
        Field::PktMark => FieldLoc { word: KEY_WORDS + 5, shift: 0, mask: 0xffff_ffff },
        Field::TunId => loc::TUN_ID,
        Field::TunSrc => loc::TUN_SRC,
        Field::TunDst => loc::TUN_DST,
        Field::DlSrc => loc::DL_SRC,
        Field::DlDst => loc::DL_DST,
        Field::DlType => loc::DL_TYPE,
        Field::NwSrc => loc::NW_SRC,
        Field::NwDst => loc::NW_DST,
        Field::NwProto => loc::NW_PROTO,
        Field::NwTos => FieldLoc { mask: 0xfc, ..loc::NW_TOS },
        Field::NwEcn => FieldLoc { mask: 0x03, ..loc::NW_TOS },
        Field::NwTtl => loc::NW_TTL,
        Field::NwFrag => loc::NW_FRAG,
        Field::TpSrc => loc::TP_SRC,
        Field::TpDst => loc::TP_DST,
        Field::ArpSha => loc::ARP_SHA,
        Field::ArpTha => loc::ARP_THA,
        Field::CtState => loc::CT_STATE,
        Field::CtZone => loc::CT_ZONE,
        Field::CtMark => loc::CT_MARK,
        Field::CtLabelLo => loc::CT_LABEL_LO,
        Field::CtLabelHi => loc::CT_LABEL_HI,
        Field::CtNwSrc => loc::CT_NW_SRC,
        Field::CtNwDst => loc::CT_NW_DST,
        Field::CtNwProto => loc::CT_NW_PROTO,
        Field::CtTpSrc => loc::CT_TP_SRC,
        Field::CtTpDst => loc::CT_TP_DST,
    }
}

/// [`loc_of`] by field index (translation reads and writes fields often).
const LOCS: [FieldLoc; N_FIELDS] = {
    let mut t = [loc::IN_PORT; N_FIELDS];
    let mut i = 0;
    while i < N_FIELDS {
        t[i] = loc_of(ALL_FIELDS[i]);
        i += 1;
    }
    t
};

#[inline]
fn field_loc(f: Field) -> FieldLoc {
    LOCS[f as usize]
}

#[inline]
fn get_loc(w: &[u64; FLOW_WORDS], l: FieldLoc) -> u64 {
    (w[l.word] >> l.shift) & l.mask
}

#[inline]
fn set_loc(w: &mut [u64; FLOW_WORDS], l: FieldLoc, v: u64) {
    let x = &mut w[l.word];
    *x = (*x & !(l.mask << l.shift)) | ((v & l.mask) << l.shift);
}

impl OfFlow {
    /// A flow entering the pipeline with this key (registers zero).
    pub fn from_key(key: &FlowKey) -> OfFlow {
        let mut f = OfFlow::default();
        f.w[..KEY_WORDS].copy_from_slice(&key.w);
        f
    }

    /// The recirculation id (0: a packet's first pass).
    pub fn recirc_id(&self) -> u32 {
        get_loc(&self.w, loc::RECIRC_ID) as u32
    }

    /// Sets the recirculation id (on a mask: `u32::MAX` un-wildcards it).
    pub fn set_recirc_id(&mut self, id: u32) {
        set_loc(&mut self.w, loc::RECIRC_ID, id as u64);
    }

    /// The datapath key part.
    pub fn key(&self) -> FlowKey {
        let mut k = FlowKey::default();
        k.w.copy_from_slice(&self.w[..KEY_WORDS]);
        k
    }

    /// Reads a field.
    pub fn get(&self, f: Field) -> u64 {
        if f == Field::TunId {
            return get_loc(&self.w, loc::TUN_ID) | (get_loc(&self.w, TUN_ID_HI) << 32);
        }
        get_loc(&self.w, field_loc(f))
    }

    /// Writes a field.
    pub fn set(&mut self, f: Field, v: u64) {
        if f == Field::TunId {
            set_loc(&mut self.w, loc::TUN_ID, v);
            set_loc(&mut self.w, TUN_ID_HI, v >> 32);
            return;
        }
        set_loc(&mut self.w, field_loc(f), v);
    }

    /// Writes the bits of `mask` of a field to `v`'s bits.
    pub fn set_masked(&mut self, f: Field, v: u64, mask: u64) {
        let old = self.get(f);
        self.set(f, (old & !mask) | (v & mask));
    }

    /// ORs `mask` into a field (used on wildcard masks).
    pub fn or_field(&mut self, f: Field, mask: u64) {
        let old = self.get(f);
        self.set(f, old | mask);
    }

    /// Value and mask words of a match.
    pub fn from_match(m: &Match) -> (OfFlow, OfFlow) {
        let mut v = OfFlow::default();
        let mut k = OfFlow::default();
        for f in ALL_FIELDS {
            let (fv, fm) = m.get(f);
            if fm != 0 {
                v.set_masked(f, fv, fm);
                k.or_field(f, fm);
            }
        }
        (v, k)
    }

    /// The match `value/mask` describes (inverse of [`OfFlow::from_match`];
    /// register bits included only when `with_regs`).
    pub fn to_match(value: &OfFlow, mask: &OfFlow, with_regs: bool) -> Match {
        let mut m = Match::any();
        for f in ALL_FIELDS {
            if !with_regs && f.reg_index().is_some() {
                continue;
            }
            let mk = mask.get(f) & f.full_mask();
            if mk != 0 {
                m.set_masked(f, value.get(f), mk);
            }
        }
        m
    }

    /// `self & mask`.
    #[inline]
    pub fn masked(&self, mask: &OfFlow) -> OfFlow {
        let mut out = OfFlow::default();
        for i in 0..FLOW_WORDS {
            out.w[i] = self.w[i] & mask.w[i];
        }
        out
    }

    /// `self |= other`.
    #[inline]
    pub fn or(&mut self, other: &OfFlow) {
        for i in 0..FLOW_WORDS {
            self.w[i] |= other.w[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::ofctl::{parse_flow_line, LineKind};

    #[test]
    fn test_match_roundtrip() {
        let s = parse_flow_line(
            "table=5,reg3=0x5/0xf,tun_id=0x123456789/0xffffffffff,tcp,nw_tos=8,nw_ecn=1,nw_src=10.0.0.0/8,tp_dst=80,actions=drop",
            LineKind::Add,
        )
        .unwrap();
        let (v, m) = OfFlow::from_match(&s.m);
        assert_eq!(OfFlow::to_match(&v, &m, true), s.m);
        assert_eq!(v.get(Field::TunId), 0x123456789);
        assert_eq!(v.get(Field::NwTos), 8);
        assert_eq!(v.get(Field::NwEcn), 1);
    }
}
