//! OpenFlow 1.3 on the wire: the messages sdnfwd's listener reads and
//! writes, decoded into and encoded from the same [`FlowSpec`]s the flow
//! text uses.
//!
//! Matches are OXM (`ofp_match` type 1); fields that OpenFlow 1.3 has no
//! OXM for are Nicira NXM entries (registers, `tun_src`/`tun_dst`,
//! `pkt_mark`, `nw_ttl`, `nw_frag`), as Open vSwitch writes them. Actions
//! are OpenFlow's `output` and `set_field` and the Nicira extensions
//! OpenShift SDN uses: `move` (NXAST_REG_MOVE), `load` (NXAST_REG_LOAD,
//! NXAST_REG_LOAD2), `output:REG` (NXAST_OUTPUT_REG, NXAST_OUTPUT_REG2) and
//! `note` (NXAST_NOTE); `goto_table` is an instruction. Anything else is
//! refused with the OpenFlow error a switch owes for it ([`OfError`]), never
//! a panic: every length is checked before it is read.

use config::ofctl::{
    Action, Field, FlowCommand, FlowSpec, Match, SubField, ETH_TYPE_ARP, ETH_TYPE_IP, IPPROTO_ICMP, IPPROTO_TCP,
    IPPROTO_UDP, OFPP_IN_PORT, OFPP_LOCAL,
};

/// The protocol version this codec speaks (OpenFlow 1.3).
pub const OFP13: u8 = 4;

/// Message types (`ofp_type`).
#[allow(missing_docs)]
pub mod ty {
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const EXPERIMENTER: u8 = 4;
    pub const FEATURES_REQUEST: u8 = 5;
    pub const FEATURES_REPLY: u8 = 6;
    pub const GET_CONFIG_REQUEST: u8 = 7;
    pub const GET_CONFIG_REPLY: u8 = 8;
    pub const SET_CONFIG: u8 = 9;
    pub const PACKET_OUT: u8 = 13;
    pub const FLOW_MOD: u8 = 14;
    pub const TABLE_MOD: u8 = 17;
    pub const MULTIPART_REQUEST: u8 = 18;
    pub const MULTIPART_REPLY: u8 = 19;
    pub const BARRIER_REQUEST: u8 = 20;
    pub const BARRIER_REPLY: u8 = 21;
    pub const ROLE_REQUEST: u8 = 24;
    pub const ROLE_REPLY: u8 = 25;
    pub const GET_ASYNC_REQUEST: u8 = 26;
    pub const GET_ASYNC_REPLY: u8 = 27;
    pub const SET_ASYNC: u8 = 28;
}

/// Multipart types (`ofp_multipart_type`).
#[allow(missing_docs)]
pub mod mp {
    pub const DESC: u16 = 0;
    pub const FLOW: u16 = 1;
    pub const AGGREGATE: u16 = 2;
    pub const TABLE: u16 = 3;
    pub const PORT_STATS: u16 = 4;
    pub const TABLE_FEATURES: u16 = 12;
    pub const PORT_DESC: u16 = 13;
    /// `OFPMPF_REPLY_MORE` / `OFPMPF_REQ_MORE`.
    pub const MORE: u16 = 1;
}

/// Error types and codes (`ofp_error_type` and its code enums).
#[allow(missing_docs)]
pub mod err {
    pub const HELLO_FAILED: u16 = 0;
    pub const HELLO_INCOMPATIBLE: u16 = 0;
    pub const BAD_REQUEST: u16 = 1;
    pub const BRC_BAD_VERSION: u16 = 0;
    pub const BRC_BAD_TYPE: u16 = 1;
    pub const BRC_BAD_MULTIPART: u16 = 2;
    pub const BRC_BAD_EXPERIMENTER: u16 = 3;
    pub const BRC_BAD_EXP_TYPE: u16 = 4;
    pub const BRC_EPERM: u16 = 5;
    pub const BRC_BAD_LEN: u16 = 6;
    pub const BRC_BAD_PORT: u16 = 11;
    pub const BAD_ACTION: u16 = 2;
    pub const BAC_BAD_TYPE: u16 = 0;
    pub const BAC_BAD_LEN: u16 = 1;
    pub const BAC_BAD_EXPERIMENTER: u16 = 2;
    pub const BAC_BAD_EXP_TYPE: u16 = 3;
    pub const BAC_BAD_OUT_PORT: u16 = 4;
    pub const BAC_BAD_ARGUMENT: u16 = 5;
    pub const BAC_BAD_SET_TYPE: u16 = 13;
    pub const BAC_BAD_SET_LEN: u16 = 14;
    pub const BAD_INSTRUCTION: u16 = 3;
    pub const BIC_UNKNOWN_INST: u16 = 0;
    pub const BIC_UNSUP_INST: u16 = 1;
    pub const BIC_BAD_TABLE_ID: u16 = 2;
    pub const BIC_BAD_LEN: u16 = 7;
    pub const BAD_MATCH: u16 = 4;
    pub const BMC_BAD_TYPE: u16 = 0;
    pub const BMC_BAD_LEN: u16 = 1;
    pub const BMC_BAD_FIELD: u16 = 6;
    pub const BMC_BAD_VALUE: u16 = 7;
    pub const BMC_BAD_MASK: u16 = 8;
    pub const BMC_BAD_PREREQ: u16 = 9;
    pub const BMC_DUP_FIELD: u16 = 10;
    pub const FLOW_MOD_FAILED: u16 = 5;
    pub const FMFC_UNKNOWN: u16 = 0;
    pub const FMFC_BAD_TABLE_ID: u16 = 2;
    pub const FMFC_EPERM: u16 = 4;
    pub const FMFC_BAD_COMMAND: u16 = 6;
    pub const FMFC_BAD_FLAGS: u16 = 7;
    pub const SWITCH_CONFIG_FAILED: u16 = 10;
    pub const SCFC_BAD_LEN: u16 = 2;
    pub const TABLE_FEATURES_FAILED: u16 = 13;
    pub const TFFC_EPERM: u16 = 5;
}

/// An OpenFlow error to send back: type, code and, for sdnfwd's log and
/// tests, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfError {
    /// `ofp_error_type`.
    pub ty: u16,
    /// The type's code.
    pub code: u16,
    /// What was wrong.
    pub why: String,
}

impl OfError {
    /// An error of `ty`/`code`.
    pub fn new(ty: u16, code: u16, why: impl Into<String>) -> OfError {
        OfError { ty, code, why: why.into() }
    }
}

impl std::fmt::Display for OfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenFlow error type {} code {}: {}", self.ty, self.code, self.why)
    }
}

type Res<T> = Result<T, OfError>;

/// The fixed header of every message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Protocol version.
    pub version: u8,
    /// Message type.
    pub ty: u8,
    /// Whole message length.
    pub len: u16,
    /// Transaction id.
    pub xid: u32,
}

impl Header {
    /// Reads the header at the start of `b` (8 bytes needed).
    pub fn parse(b: &[u8]) -> Option<Header> {
        let h = b.get(..8)?;
        Some(Header { version: h[0], ty: h[1], len: be16(&h[2..]), xid: be32(&h[4..]) })
    }
}

pub(crate) fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

pub(crate) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Big-endian integer of up to 8 bytes.
fn be_n(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |v, &x| (v << 8) | x as u64)
}

fn put_be_n(out: &mut Vec<u8>, v: u64, n: usize) {
    out.extend_from_slice(&v.to_be_bytes()[8 - n..]);
}

fn pad8(out: &mut Vec<u8>, start: usize) {
    while !(out.len() - start).is_multiple_of(8) {
        out.push(0);
    }
}

/// Starts a message: header with a length to fill in by [`finish`].
pub fn start(ty: u8, xid: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&[OFP13, ty, 0, 0]);
    m.extend_from_slice(&xid.to_be_bytes());
    m
}

/// Writes the final length into a message begun by [`start`].
pub fn finish(mut m: Vec<u8>) -> Vec<u8> {
    let n = m.len().min(u16::MAX as usize) as u16;
    m[2..4].copy_from_slice(&n.to_be_bytes());
    m
}

// ---------------------------------------------------------------------------
// Ports: OpenFlow 1.3 numbers ports with 32 bits, Open vSwitch (and the flow
// text) with 16, the reserved ones at the top of each range.

const OFPP_MAX16: u32 = 0xff00;
const OFPP11_MAX: u32 = 0xffff_ff00;
const OFPP11_OFFSET: u32 = 0xffff_0000;
/// `OFPP_ANY` in OpenFlow 1.3.
pub const OFPP13_ANY: u32 = 0xffff_ffff;
/// `OFPG_ANY`.
pub const OFPG_ANY: u32 = 0xffff_ffff;
/// `OFPTT_ALL`.
pub const OFPTT_ALL: u8 = 0xff;
/// `OFP_NO_BUFFER`.
pub const NO_BUFFER: u32 = 0xffff_ffff;

/// A 32-bit OpenFlow 1.3 port as the 16-bit number the tables use.
pub fn port_from_of13(p: u32) -> Option<u32> {
    if p < OFPP_MAX16 {
        Some(p)
    } else if p >= OFPP11_MAX {
        Some(p - OFPP11_OFFSET)
    } else {
        None
    }
}

/// A table port number as OpenFlow 1.3 writes it.
pub fn port_to_of13(p: u32) -> u32 {
    if (OFPP_MAX16..=0xffff).contains(&p) {
        p + OFPP11_OFFSET
    } else {
        p
    }
}

// ---------------------------------------------------------------------------
// Match fields.

const OXM: u16 = 0x8000;
const NXM0: u16 = 0x0000;
const NXM1: u16 = 0x0001;

/// What a header's field needs earlier in the match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pre {
    None,
    Ip,
    Arp,
    Proto(u64),
}

/// How a header's bytes map onto a [`Field`]'s value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conv {
    Plain,
    /// A 32-bit OpenFlow 1.3 port.
    Port32,
    /// OXM's IP_DSCP: the DSCP shifted down to bits 0..5.
    Dscp,
}

#[derive(Clone, Copy, Debug)]
struct Def {
    class: u16,
    field: u8,
    len: u8,
    f: Field,
    pre: Pre,
    conv: Conv,
}

const fn d(class: u16, field: u8, len: u8, f: Field, pre: Pre, conv: Conv) -> Def {
    Def { class, field, len, f, pre, conv }
}

/// Every header sdnfwd reads. [`encode_def`] picks the one Open vSwitch
/// writes for OpenFlow 1.3.
const DEFS: &[Def] = &[
    d(OXM, 0, 4, Field::InPort, Pre::None, Conv::Port32),
    d(OXM, 3, 6, Field::DlDst, Pre::None, Conv::Plain),
    d(OXM, 4, 6, Field::DlSrc, Pre::None, Conv::Plain),
    d(OXM, 5, 2, Field::DlType, Pre::None, Conv::Plain),
    d(OXM, 8, 1, Field::NwTos, Pre::Ip, Conv::Dscp),
    d(OXM, 9, 1, Field::NwEcn, Pre::Ip, Conv::Plain),
    d(OXM, 10, 1, Field::NwProto, Pre::Ip, Conv::Plain),
    d(OXM, 11, 4, Field::NwSrc, Pre::Ip, Conv::Plain),
    d(OXM, 12, 4, Field::NwDst, Pre::Ip, Conv::Plain),
    d(OXM, 13, 2, Field::TpSrc, Pre::Proto(IPPROTO_TCP), Conv::Plain),
    d(OXM, 14, 2, Field::TpDst, Pre::Proto(IPPROTO_TCP), Conv::Plain),
    d(OXM, 15, 2, Field::TpSrc, Pre::Proto(IPPROTO_UDP), Conv::Plain),
    d(OXM, 16, 2, Field::TpDst, Pre::Proto(IPPROTO_UDP), Conv::Plain),
    d(OXM, 17, 2, Field::TpSrc, Pre::Proto(132), Conv::Plain),
    d(OXM, 18, 2, Field::TpDst, Pre::Proto(132), Conv::Plain),
    d(OXM, 19, 1, Field::TpSrc, Pre::Proto(IPPROTO_ICMP), Conv::Plain),
    d(OXM, 20, 1, Field::TpDst, Pre::Proto(IPPROTO_ICMP), Conv::Plain),
    d(OXM, 21, 2, Field::NwProto, Pre::Arp, Conv::Plain),
    d(OXM, 22, 4, Field::NwSrc, Pre::Arp, Conv::Plain),
    d(OXM, 23, 4, Field::NwDst, Pre::Arp, Conv::Plain),
    d(OXM, 24, 6, Field::ArpSha, Pre::Arp, Conv::Plain),
    d(OXM, 25, 6, Field::ArpTha, Pre::Arp, Conv::Plain),
    d(OXM, 38, 8, Field::TunId, Pre::None, Conv::Plain),
    d(NXM0, 0, 2, Field::InPort, Pre::None, Conv::Plain),
    d(NXM0, 1, 6, Field::DlDst, Pre::None, Conv::Plain),
    d(NXM0, 2, 6, Field::DlSrc, Pre::None, Conv::Plain),
    d(NXM0, 3, 2, Field::DlType, Pre::None, Conv::Plain),
    d(NXM0, 5, 1, Field::NwTos, Pre::Ip, Conv::Plain),
    d(NXM0, 6, 1, Field::NwProto, Pre::Ip, Conv::Plain),
    d(NXM0, 7, 4, Field::NwSrc, Pre::Ip, Conv::Plain),
    d(NXM0, 8, 4, Field::NwDst, Pre::Ip, Conv::Plain),
    d(NXM0, 9, 2, Field::TpSrc, Pre::Proto(IPPROTO_TCP), Conv::Plain),
    d(NXM0, 10, 2, Field::TpDst, Pre::Proto(IPPROTO_TCP), Conv::Plain),
    d(NXM0, 11, 2, Field::TpSrc, Pre::Proto(IPPROTO_UDP), Conv::Plain),
    d(NXM0, 12, 2, Field::TpDst, Pre::Proto(IPPROTO_UDP), Conv::Plain),
    d(NXM0, 13, 1, Field::TpSrc, Pre::Proto(IPPROTO_ICMP), Conv::Plain),
    d(NXM0, 14, 1, Field::TpDst, Pre::Proto(IPPROTO_ICMP), Conv::Plain),
    d(NXM0, 15, 2, Field::NwProto, Pre::Arp, Conv::Plain),
    d(NXM0, 16, 4, Field::NwSrc, Pre::Arp, Conv::Plain),
    d(NXM0, 17, 4, Field::NwDst, Pre::Arp, Conv::Plain),
    d(NXM1, 0, 4, Field::Reg0, Pre::None, Conv::Plain),
    d(NXM1, 1, 4, Field::Reg1, Pre::None, Conv::Plain),
    d(NXM1, 2, 4, Field::Reg2, Pre::None, Conv::Plain),
    d(NXM1, 3, 4, Field::Reg3, Pre::None, Conv::Plain),
    d(NXM1, 4, 4, Field::Reg4, Pre::None, Conv::Plain),
    d(NXM1, 5, 4, Field::Reg5, Pre::None, Conv::Plain),
    d(NXM1, 6, 4, Field::Reg6, Pre::None, Conv::Plain),
    d(NXM1, 7, 4, Field::Reg7, Pre::None, Conv::Plain),
    d(NXM1, 16, 8, Field::TunId, Pre::None, Conv::Plain),
    d(NXM1, 17, 6, Field::ArpSha, Pre::Arp, Conv::Plain),
    d(NXM1, 18, 6, Field::ArpTha, Pre::Arp, Conv::Plain),
    d(NXM1, 26, 1, Field::NwFrag, Pre::Ip, Conv::Plain),
    d(NXM1, 28, 1, Field::NwEcn, Pre::Ip, Conv::Plain),
    d(NXM1, 29, 1, Field::NwTtl, Pre::Ip, Conv::Plain),
    d(NXM1, 31, 4, Field::TunSrc, Pre::None, Conv::Plain),
    d(NXM1, 32, 4, Field::TunDst, Pre::None, Conv::Plain),
    d(NXM1, 33, 4, Field::PktMark, Pre::None, Conv::Plain),
];

fn find_def(class: u16, field: u8) -> Option<&'static Def> {
    DEFS.iter().find(|x| x.class == class && x.field == field)
}

fn def_of(class: u16, field: u8, f: Field) -> &'static Def {
    DEFS.iter().find(|x| x.class == class && x.field == field && x.f == f).expect("header in DEFS")
}

/// The header Open vSwitch writes for `f` in an OpenFlow 1.3 match, given
/// whether the match is ARP and its IP protocol.
fn encode_def(f: Field, arp: bool, proto: u64) -> &'static Def {
    let l4 = |tcp: u8, udp: u8, sctp: u8, icmp: u8| match proto {
        IPPROTO_UDP => udp,
        132 => sctp,
        IPPROTO_ICMP => icmp,
        _ => tcp,
    };
    let (class, field) = match f {
        Field::InPort => (OXM, 0),
        Field::DlDst => (OXM, 3),
        Field::DlSrc => (OXM, 4),
        Field::DlType => (OXM, 5),
        Field::NwTos => (NXM0, 5),
        Field::NwEcn => (OXM, 9),
        Field::NwProto if arp => (OXM, 21),
        Field::NwProto => (OXM, 10),
        Field::NwSrc if arp => (OXM, 22),
        Field::NwSrc => (OXM, 11),
        Field::NwDst if arp => (OXM, 23),
        Field::NwDst => (OXM, 12),
        Field::TpSrc => (OXM, l4(13, 15, 17, 19)),
        Field::TpDst => (OXM, l4(14, 16, 18, 20)),
        Field::ArpSha => (OXM, 24),
        Field::ArpTha => (OXM, 25),
        Field::TunId => (OXM, 38),
        Field::NwFrag => (NXM1, 26),
        Field::NwTtl => (NXM1, 29),
        Field::TunSrc => (NXM1, 31),
        Field::TunDst => (NXM1, 32),
        Field::PktMark => (NXM1, 33),
        r => (NXM1, r.reg_index().unwrap_or(0) as u8),
    };
    def_of(class, field, f)
}

/// The header of a subfield in `move`, `load` and `output:REG` (Open
/// vSwitch's choice for OpenFlow 1.3: the OXM where 1.3 has one; in_port
/// as NXM's 16 bits).
fn subfield_def(f: Field) -> &'static Def {
    match f {
        Field::InPort => def_of(NXM0, 0, f),
        _ => encode_def(f, false, IPPROTO_TCP),
    }
}

fn oxm_header(def: &Def, masked: bool) -> u32 {
    let len = if masked { def.len * 2 } else { def.len } as u32;
    ((def.class as u32) << 16) | ((def.field as u32) << 9) | ((masked as u32) << 8) | len
}

fn to_wire(def: &Def, v: u64) -> u64 {
    match def.conv {
        Conv::Plain => v,
        Conv::Port32 => port_to_of13(v as u32) as u64,
        Conv::Dscp => v >> 2,
    }
}

fn put_entry(out: &mut Vec<u8>, def: &Def, v: u64, mask: u64) {
    let full = mask == def.f.full_mask() || !def.f.maskable();
    out.extend_from_slice(&oxm_header(def, !full).to_be_bytes());
    put_be_n(out, to_wire(def, v), def.len as usize);
    if !full {
        put_be_n(out, to_wire(def, mask), def.len as usize);
    }
}

/// One OXM/NXM entry read from the wire.
struct Entry {
    def: &'static Def,
    value: u64,
    mask: u64,
    /// Bytes the entry took.
    size: usize,
}

fn bad_match(code: u16, why: impl Into<String>) -> OfError {
    OfError::new(err::BAD_MATCH, code, why)
}

/// Reads one entry (header, value, optional mask) at the start of `b`.
fn read_entry(b: &[u8]) -> Res<Entry> {
    if b.len() < 4 {
        return Err(bad_match(err::BMC_BAD_LEN, "truncated OXM header"));
    }
    let h = be32(b);
    let class = (h >> 16) as u16;
    let field = ((h >> 9) & 0x7f) as u8;
    let masked = h & 0x100 != 0;
    let len = (h & 0xff) as usize;
    if class == 0xffff {
        return Err(bad_match(err::BMC_BAD_FIELD, "experimenter OXM fields are not supported"));
    }
    let def = find_def(class, field).ok_or_else(|| {
        bad_match(err::BMC_BAD_FIELD, format!("unsupported field (class {class:#06x}, field {field})"))
    })?;
    let want = def.len as usize * if masked { 2 } else { 1 };
    if len != want || b.len() < 4 + len {
        return Err(bad_match(err::BMC_BAD_LEN, format!("{} has length {len}", def.f.nxm_name())));
    }
    if masked && !def.f.maskable() {
        return Err(bad_match(err::BMC_BAD_MASK, format!("{} is not maskable", def.f.nxm_name())));
    }
    let n = def.len as usize;
    let raw_v = be_n(&b[4..4 + n]);
    let raw_m = if masked { be_n(&b[4 + n..4 + 2 * n]) } else { u64::MAX };
    let (value, mask) = match def.conv {
        Conv::Plain => (raw_v, raw_m),
        Conv::Port32 => {
            let p = port_from_of13(raw_v as u32)
                .ok_or_else(|| bad_match(err::BMC_BAD_VALUE, format!("port {raw_v:#x} is out of range")))?;
            (p as u64, u64::MAX)
        }
        Conv::Dscp => {
            if raw_v > 0x3f {
                return Err(bad_match(err::BMC_BAD_VALUE, format!("IP_DSCP {raw_v} is out of range")));
            }
            (raw_v << 2, u64::MAX)
        }
    };
    let full = def.f.full_mask();
    // A value wider than the field (an ARP opcode above 255, ECN bits in
    // NXM's IP_TOS) is one the tables cannot hold.
    if value & mask & !full != 0 {
        return Err(bad_match(err::BMC_BAD_VALUE, format!("value {value:#x} does not fit {}", def.f.name())));
    }
    Ok(Entry { def, value: value & full, mask: mask & full, size: 4 + len })
}

/// Checks that every field's prerequisites (Ethernet type, IP protocol)
/// are in the match.
fn check_prereqs(m: &Match, pres: &[(Pre, &'static str)]) -> Res<()> {
    let ip = m.is_exact(Field::DlType, ETH_TYPE_IP);
    let arp = m.is_exact(Field::DlType, ETH_TYPE_ARP);
    for &(p, name) in pres {
        let ok = match p {
            Pre::None => true,
            Pre::Ip => ip,
            Pre::Arp => arp,
            Pre::Proto(x) => ip && m.is_exact(Field::NwProto, x),
        };
        if !ok {
            return Err(bad_match(err::BMC_BAD_PREREQ, format!("{name} without its prerequisite")));
        }
    }
    Ok(())
}

/// Reads an `ofp_match` (type OXM) at the start of `b`; returns it and the
/// bytes it took, padding included.
pub fn decode_match(b: &[u8]) -> Res<(Match, usize)> {
    if b.len() < 4 {
        return Err(bad_match(err::BMC_BAD_LEN, "truncated ofp_match"));
    }
    let (mtype, len) = (be16(b), be16(&b[2..]) as usize);
    if mtype != 1 {
        return Err(bad_match(err::BMC_BAD_TYPE, format!("match type {mtype} (only OXM, type 1)")));
    }
    let padded = len.div_ceil(8) * 8;
    if len < 4 || b.len() < padded {
        return Err(bad_match(err::BMC_BAD_LEN, format!("ofp_match length {len}")));
    }
    let mut m = Match::any();
    let mut pres = Vec::new();
    let mut seen = [false; config::ofctl::N_FIELDS];
    let mut at = 4;
    while at < len {
        let e = read_entry(&b[at..len])?;
        let i = e.def.f.index();
        if seen[i] {
            return Err(bad_match(err::BMC_DUP_FIELD, format!("{} appears twice", e.def.f.nxm_name())));
        }
        seen[i] = true;
        m.set_masked(e.def.f, e.value, e.mask);
        pres.push((e.def.pre, e.def.f.nxm_name()));
        at += e.size;
    }
    check_prereqs(&m, &pres)?;
    Ok((m, padded))
}

/// Writes `m` as an `ofp_match` (OXM), padded to 8 bytes.
pub fn encode_match(m: &Match, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0, 1, 0, 0]);
    let arp = m.is_exact(Field::DlType, ETH_TYPE_ARP);
    let proto = m.get(Field::NwProto).0;
    for f in config::ofctl::ALL_FIELDS {
        let (v, mask) = m.get(f);
        if mask != 0 {
            put_entry(out, encode_def(f, arp, proto), v, mask);
        }
    }
    let len = (out.len() - start) as u16;
    out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    pad8(out, start);
}

// ---------------------------------------------------------------------------
// Actions and instructions.

const OFPAT_OUTPUT: u16 = 0;
const OFPAT_SET_FIELD: u16 = 25;
const OFPAT_EXPERIMENTER: u16 = 0xffff;
const NX_VENDOR: u32 = 0x0000_2320;
const NXAST_REG_MOVE: u16 = 6;
const NXAST_REG_LOAD: u16 = 7;
const NXAST_NOTE: u16 = 8;
const NXAST_OUTPUT_REG: u16 = 15;
const NXAST_OUTPUT_REG2: u16 = 32;
const NXAST_REG_LOAD2: u16 = 33;
const OFPIT_GOTO_TABLE: u16 = 1;
const OFPIT_APPLY_ACTIONS: u16 = 4;

fn bad_action(code: u16, why: impl Into<String>) -> OfError {
    OfError::new(err::BAD_ACTION, code, why)
}

/// A field named by a bare header in a move, load or output:REG.
fn subfield_field(h: u32) -> Res<(Field, usize)> {
    let class = (h >> 16) as u16;
    if class == 0xffff {
        return Err(bad_action(err::BAC_BAD_ARGUMENT, "experimenter OXM fields are not supported"));
    }
    let def = find_def(class, ((h >> 9) & 0x7f) as u8)
        .ok_or_else(|| bad_action(err::BAC_BAD_ARGUMENT, format!("unsupported field header {h:#010x}")))?;
    if h & 0x100 != 0 || def.conv == Conv::Dscp {
        return Err(bad_action(err::BAC_BAD_ARGUMENT, format!("header {h:#010x} cannot name a subfield")));
    }
    Ok((def.f, 4))
}

fn subfield(f: Field, ofs: u32, n_bits: u32) -> Res<SubField> {
    if n_bits == 0 || ofs + n_bits > f.n_bits() {
        return Err(bad_action(
            err::BAC_BAD_ARGUMENT,
            format!("bits {ofs}..{} do not fit {} ({} bits)", ofs + n_bits.max(1) - 1, f.nxm_name(), f.n_bits()),
        ));
    }
    Ok(SubField { field: f, ofs, n_bits })
}

fn ofs_nbits(sf: &SubField) -> u16 {
    ((sf.ofs << 6) | (sf.n_bits - 1)) as u16
}

fn from_ofs_nbits(v: u16) -> (u32, u32) {
    ((v >> 6) as u32, (v & 0x3f) as u32 + 1)
}

fn decode_nx_action(a: &[u8]) -> Res<Action> {
    let len = a.len();
    if len < 16 {
        return Err(bad_action(err::BAC_BAD_LEN, "short Nicira action"));
    }
    let subtype = be16(&a[8..]);
    let need = |n: usize| {
        if len < n {
            Err(bad_action(err::BAC_BAD_LEN, format!("Nicira action {subtype} is {len} bytes")))
        } else {
            Ok(())
        }
    };
    match subtype {
        NXAST_REG_MOVE => {
            need(24)?;
            let n_bits = be16(&a[10..]) as u32;
            let (src_ofs, dst_ofs) = (be16(&a[12..]) as u32, be16(&a[14..]) as u32);
            let (sf, k) = subfield_field(be32(&a[16..]))?;
            need(16 + k + 4)?;
            let (df, _) = subfield_field(be32(&a[16 + k..]))?;
            let src = subfield(sf, src_ofs, n_bits)?;
            let dst = subfield(df, dst_ofs, n_bits)?;
            Ok(Action::Move { src, dst })
        }
        NXAST_REG_LOAD => {
            need(24)?;
            let (ofs, n_bits) = from_ofs_nbits(be16(&a[10..]));
            let (f, _) = subfield_field(be32(&a[12..]))?;
            let dst = subfield(f, ofs, n_bits)?;
            let value = be64(&a[16..]);
            if n_bits < 64 && value >> n_bits != 0 {
                return Err(bad_action(err::BAC_BAD_ARGUMENT, format!("value {value:#x} does not fit {n_bits} bits")));
            }
            Ok(Action::Load { value, dst })
        }
        NXAST_REG_LOAD2 => {
            let e = read_entry(&a[10..]).map_err(|e| bad_action(err::BAC_BAD_ARGUMENT, e.why))?;
            set_field_action(e.def.f, e.value, e.mask)
        }
        NXAST_OUTPUT_REG => {
            need(24)?;
            let (ofs, n_bits) = from_ofs_nbits(be16(&a[10..]));
            let (f, _) = subfield_field(be32(&a[12..]))?;
            Ok(Action::OutputReg(subfield(f, ofs, n_bits)?))
        }
        NXAST_OUTPUT_REG2 => {
            need(16 + 2)?;
            let (ofs, n_bits) = from_ofs_nbits(be16(&a[10..]));
            let (f, _) = subfield_field(be32(&a[14..]))?;
            Ok(Action::OutputReg(subfield(f, ofs, n_bits)?))
        }
        NXAST_NOTE => Ok(Action::Note(a[10..].to_vec())),
        other => Err(bad_action(err::BAC_BAD_EXP_TYPE, format!("Nicira action subtype {other} is not supported"))),
    }
}

fn set_field_action(f: Field, value: u64, mask: u64) -> Res<Action> {
    if matches!(f, Field::InPort | Field::NwFrag) {
        return Err(bad_action(err::BAC_BAD_SET_TYPE, format!("{} cannot be set", f.name())));
    }
    Ok(Action::SetField { field: f, value: value & mask, mask })
}

/// Reads an action list (the body of an apply-actions instruction).
pub fn decode_actions(mut b: &[u8]) -> Res<Vec<Action>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 8 {
            return Err(bad_action(err::BAC_BAD_LEN, "truncated action"));
        }
        let (ty, len) = (be16(b), be16(&b[2..]) as usize);
        if len < 8 || !len.is_multiple_of(8) || len > b.len() {
            return Err(bad_action(err::BAC_BAD_LEN, format!("action length {len}")));
        }
        let a = &b[..len];
        out.push(match ty {
            OFPAT_OUTPUT => {
                if len != 16 {
                    return Err(bad_action(err::BAC_BAD_LEN, "output action is not 16 bytes"));
                }
                let p = be32(&a[4..]);
                let port = port_from_of13(p)
                    .filter(|&p| p < OFPP_MAX16 || p as u64 == OFPP_IN_PORT || p as u64 == OFPP_LOCAL)
                    .ok_or_else(|| {
                        bad_action(err::BAC_BAD_OUT_PORT, format!("output to port {p:#x} is not supported"))
                    })?;
                Action::Output(port)
            }
            OFPAT_SET_FIELD => {
                let e = read_entry(&a[4..]).map_err(|e| {
                    let code = if e.code == err::BMC_BAD_LEN { err::BAC_BAD_SET_LEN } else { err::BAC_BAD_SET_TYPE };
                    bad_action(code, e.why)
                })?;
                set_field_action(e.def.f, e.value, e.mask)?
            }
            OFPAT_EXPERIMENTER => {
                let vendor = be32(&a[4..]);
                if vendor != NX_VENDOR {
                    return Err(bad_action(err::BAC_BAD_EXPERIMENTER, format!("experimenter {vendor:#x}")));
                }
                decode_nx_action(a)?
            }
            other => return Err(bad_action(err::BAC_BAD_TYPE, format!("action type {other} is not supported"))),
        });
        b = &b[len..];
    }
    Ok(out)
}

fn nx_header(out: &mut Vec<u8>, subtype: u16) -> usize {
    let start = out.len();
    out.extend_from_slice(&OFPAT_EXPERIMENTER.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&NX_VENDOR.to_be_bytes());
    out.extend_from_slice(&subtype.to_be_bytes());
    start
}

fn end_action(out: &mut Vec<u8>, start: usize) {
    pad8(out, start);
    let len = (out.len() - start) as u16;
    out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Writes one action as Open vSwitch writes it for OpenFlow 1.3.
fn encode_action(a: &Action, out: &mut Vec<u8>) {
    let start = match a {
        Action::Output(p) => {
            let s = out.len();
            out.extend_from_slice(&OFPAT_OUTPUT.to_be_bytes());
            out.extend_from_slice(&16u16.to_be_bytes());
            out.extend_from_slice(&port_to_of13(*p).to_be_bytes());
            out.extend_from_slice(&[0; 8]);
            s
        }
        Action::GotoTable(_) => return,
        // Not encoded yet (the listener refuses flows that carry them).
        Action::Ct(_) | Action::CtClear | Action::Group(_) | Action::Resubmit { .. } => return,
        Action::Move { src, dst } => {
            let s = nx_header(out, NXAST_REG_MOVE);
            out.extend_from_slice(&(src.n_bits as u16).to_be_bytes());
            out.extend_from_slice(&(src.ofs as u16).to_be_bytes());
            out.extend_from_slice(&(dst.ofs as u16).to_be_bytes());
            out.extend_from_slice(&oxm_header(subfield_def(src.field), false).to_be_bytes());
            out.extend_from_slice(&oxm_header(subfield_def(dst.field), false).to_be_bytes());
            s
        }
        Action::Load { value, dst } => {
            let s = nx_header(out, NXAST_REG_LOAD);
            out.extend_from_slice(&ofs_nbits(dst).to_be_bytes());
            out.extend_from_slice(&oxm_header(subfield_def(dst.field), false).to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
            s
        }
        Action::OutputReg(sf) => {
            let s = nx_header(out, NXAST_OUTPUT_REG);
            out.extend_from_slice(&ofs_nbits(sf).to_be_bytes());
            out.extend_from_slice(&oxm_header(subfield_def(sf.field), false).to_be_bytes());
            out.extend_from_slice(&[0; 8]);
            s
        }
        Action::SetField { field, value, mask } if *mask == field.full_mask() => {
            let s = out.len();
            out.extend_from_slice(&OFPAT_SET_FIELD.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
            put_entry(out, subfield_def(*field), *value, *mask);
            s
        }
        Action::SetField { field, value, mask } => {
            let s = nx_header(out, NXAST_REG_LOAD2);
            put_entry(out, subfield_def(*field), *value, *mask);
            s
        }
        Action::Note(bytes) => {
            let s = nx_header(out, NXAST_NOTE);
            out.extend_from_slice(bytes);
            if bytes.len() < 6 {
                out.resize(out.len() + 6 - bytes.len(), 0);
            }
            s
        }
    };
    end_action(out, start);
}

/// Writes a flow's actions as instructions: apply-actions (when there is
/// any action besides goto_table), then goto-table.
pub fn encode_instructions(actions: &[Action], out: &mut Vec<u8>) {
    if actions.iter().any(|a| !matches!(a, Action::GotoTable(_))) {
        let start = out.len();
        out.extend_from_slice(&OFPIT_APPLY_ACTIONS.to_be_bytes());
        out.extend_from_slice(&[0; 6]);
        for a in actions {
            encode_action(a, out);
        }
        let len = (out.len() - start) as u16;
        out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }
    for a in actions {
        if let Action::GotoTable(t) = a {
            out.extend_from_slice(&OFPIT_GOTO_TABLE.to_be_bytes());
            out.extend_from_slice(&8u16.to_be_bytes());
            out.extend_from_slice(&[*t, 0, 0, 0]);
        }
    }
}

fn bad_inst(code: u16, why: impl Into<String>) -> OfError {
    OfError::new(err::BAD_INSTRUCTION, code, why)
}

/// Reads instructions into the flow's action list (goto_table last).
pub fn decode_instructions(mut b: &[u8], table: u8) -> Res<Vec<Action>> {
    let mut actions = None;
    let mut goto = None;
    while !b.is_empty() {
        if b.len() < 8 {
            return Err(bad_inst(err::BIC_BAD_LEN, "truncated instruction"));
        }
        let (ty, len) = (be16(b), be16(&b[2..]) as usize);
        if len < 8 || len > b.len() || !len.is_multiple_of(8) {
            return Err(bad_inst(err::BIC_BAD_LEN, format!("instruction length {len}")));
        }
        match ty {
            OFPIT_APPLY_ACTIONS if actions.is_none() => actions = Some(decode_actions(&b[8..len])?),
            OFPIT_GOTO_TABLE if goto.is_none() => {
                let t = b[4];
                if t <= table || t == OFPTT_ALL {
                    return Err(bad_inst(
                        err::BIC_BAD_TABLE_ID,
                        format!("table {table}: goto_table:{t} must go to a later table"),
                    ));
                }
                goto = Some(t);
            }
            OFPIT_APPLY_ACTIONS | OFPIT_GOTO_TABLE => {
                return Err(bad_inst(err::BIC_UNSUP_INST, format!("instruction {ty} appears twice")))
            }
            2 | 3 | 5 | 6 => {
                let name = ["", "", "write_metadata", "write_actions", "", "clear_actions", "meter"][ty as usize];
                return Err(bad_inst(err::BIC_UNSUP_INST, format!("instruction {name} is not supported")));
            }
            other => return Err(bad_inst(err::BIC_UNKNOWN_INST, format!("instruction type {other}"))),
        }
        b = &b[len..];
    }
    let mut v = actions.unwrap_or_default();
    if let Some(t) = goto {
        v.push(Action::GotoTable(t));
    }
    Ok(v)
}

// ---------------------------------------------------------------------------
// Messages.

const FLOW_MOD_FIXED: usize = 48;
/// `OFPFF_CHECK_OVERLAP`.
const OFPFF_CHECK_OVERLAP: u16 = 2;

/// Decodes a FLOW_MOD message (header included) into the command the
/// tables take. Its flags are checked; send_flow_rem, reset_counts and the
/// no-counts flags change nothing here (flows never expire by timeout and
/// counters are always kept), check_overlap is refused.
pub fn decode_flow_mod(msg: &[u8]) -> Res<FlowCommand> {
    if msg.len() < FLOW_MOD_FIXED + 8 {
        return Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_LEN, "FLOW_MOD too short"));
    }
    let cookie = be64(&msg[8..]);
    let cookie_mask = be64(&msg[16..]);
    let table = msg[24];
    let command = msg[25];
    let idle_timeout = be16(&msg[26..]);
    let hard_timeout = be16(&msg[28..]);
    let priority = be16(&msg[30..]);
    let out_port = be32(&msg[36..]);
    let out_group = be32(&msg[40..]);
    let flags = be16(&msg[44..]);
    if flags & !0x1f != 0 {
        return Err(OfError::new(err::FLOW_MOD_FAILED, err::FMFC_BAD_FLAGS, format!("flags {flags:#x}")));
    }
    if flags & OFPFF_CHECK_OVERLAP != 0 {
        return Err(OfError::new(err::FLOW_MOD_FAILED, err::FMFC_BAD_FLAGS, "check_overlap is not supported"));
    }
    let (m, mlen) = decode_match(&msg[FLOW_MOD_FIXED..])?;
    let is_delete = matches!(command, 3 | 4);
    if table == OFPTT_ALL && command == 0 {
        return Err(OfError::new(err::FLOW_MOD_FAILED, err::FMFC_BAD_TABLE_ID, "add to table 255 (OFPTT_ALL)"));
    }
    if table as usize >= crate::ofproto::N_TABLES && table != OFPTT_ALL {
        return Err(OfError::new(err::FLOW_MOD_FAILED, err::FMFC_BAD_TABLE_ID, format!("table {table}")));
    }
    let actions = if is_delete { Vec::new() } else { decode_instructions(&msg[FLOW_MOD_FIXED + mlen..], table)? };
    if (out_port != OFPP13_ANY || out_group != OFPG_ANY) && is_delete {
        return Err(OfError::new(
            err::FLOW_MOD_FAILED,
            err::FMFC_EPERM,
            "delete filtered by out_port or out_group is not supported",
        ));
    }
    let spec = FlowSpec {
        table: if table == OFPTT_ALL { 0 } else { table },
        table_given: table != OFPTT_ALL,
        priority,
        cookie: if command == 0 { cookie } else { cookie & cookie_mask },
        cookie_mask: if command == 0 { 0 } else { cookie_mask },
        idle_timeout,
        hard_timeout,
        m,
        actions,
    };
    let cmd = match command {
        0 => FlowCommand::Add(spec),
        1 | 2 => FlowCommand::Modify { strict: command == 2, spec },
        3 | 4 => FlowCommand::Delete { strict: command == 4, spec },
        other => {
            return Err(OfError::new(err::FLOW_MOD_FAILED, err::FMFC_BAD_COMMAND, format!("command {other}")));
        }
    };
    Ok(cmd)
}

/// Encodes a FLOW_MOD (what a controller sends; the tests' client side).
///
/// # Panics
/// On a [`FlowCommand::Group`]: a group travels in a GROUP_MOD, which this
/// codec does not write yet.
pub fn encode_flow_mod(cmd: &FlowCommand, xid: u32) -> Vec<u8> {
    let (code, spec) = match cmd {
        FlowCommand::Add(s) => (0u8, s),
        FlowCommand::Modify { strict, spec } => (1 + *strict as u8, spec),
        FlowCommand::Delete { strict, spec } => (3 + *strict as u8, spec),
        FlowCommand::Group(g) => panic!("`{g}` is not a FLOW_MOD"),
    };
    let mut m = start(ty::FLOW_MOD, xid);
    m.extend_from_slice(&spec.cookie.to_be_bytes());
    m.extend_from_slice(&spec.cookie_mask.to_be_bytes());
    m.push(if code == 0 || spec.table_given { spec.table } else { OFPTT_ALL });
    m.push(code);
    m.extend_from_slice(&spec.idle_timeout.to_be_bytes());
    m.extend_from_slice(&spec.hard_timeout.to_be_bytes());
    m.extend_from_slice(&spec.priority.to_be_bytes());
    m.extend_from_slice(&NO_BUFFER.to_be_bytes());
    m.extend_from_slice(&OFPP13_ANY.to_be_bytes());
    m.extend_from_slice(&OFPG_ANY.to_be_bytes());
    m.extend_from_slice(&[0; 4]);
    encode_match(&spec.m, &mut m);
    if code < 3 {
        encode_instructions(&spec.actions, &mut m);
    }
    finish(m)
}

/// What a flow or aggregate statistics request selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowFilter {
    /// One table, or all.
    pub table: Option<u8>,
    /// Only flows that output to this port.
    pub out_port: Option<u32>,
    /// Cookie value (under `cookie_mask`).
    pub cookie: u64,
    /// Cookie bits that must match.
    pub cookie_mask: u64,
    /// Flows at least as specific as this match (non-strict).
    pub m: Match,
}

impl FlowFilter {
    /// Whether a flow is selected.
    pub fn selects(&self, s: &FlowSpec) -> bool {
        self.table.is_none_or(|t| t == s.table)
            && s.cookie & self.cookie_mask == self.cookie & self.cookie_mask
            && s.m.is_within(&self.m)
            && self.out_port.is_none_or(|p| s.actions.iter().any(|a| matches!(a, Action::Output(x) if *x == p)))
    }
}

/// Decodes the body of a flow or aggregate statistics request.
pub fn decode_flow_filter(body: &[u8]) -> Res<FlowFilter> {
    if body.len() < 32 + 8 {
        return Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_LEN, "flow statistics request too short"));
    }
    let table = body[0];
    let out_port = be32(&body[4..]);
    let (m, _) = decode_match(&body[32..])?;
    Ok(FlowFilter {
        table: (table != OFPTT_ALL).then_some(table),
        out_port: if out_port == OFPP13_ANY { None } else { port_from_of13(out_port) },
        cookie: be64(&body[16..]),
        cookie_mask: be64(&body[24..]),
        m,
    })
}

/// One flow's statistics entry (`ofp_flow_stats`).
pub fn encode_flow_stats(s: &FlowSpec, age: std::time::Duration, packets: u64, bytes: u64, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0, 0, s.table, 0]);
    out.extend_from_slice(&(age.as_secs() as u32).to_be_bytes());
    out.extend_from_slice(&age.subsec_nanos().to_be_bytes());
    out.extend_from_slice(&s.priority.to_be_bytes());
    out.extend_from_slice(&s.idle_timeout.to_be_bytes());
    out.extend_from_slice(&s.hard_timeout.to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&s.cookie.to_be_bytes());
    out.extend_from_slice(&packets.to_be_bytes());
    out.extend_from_slice(&bytes.to_be_bytes());
    encode_match(&s.m, out);
    encode_instructions(&s.actions, out);
    let len = (out.len() - start) as u16;
    out[start..start + 2].copy_from_slice(&len.to_be_bytes());
}

/// Decodes `ofp_flow_stats` entries (the tests' client side): each flow
/// with its duration in nanoseconds, packets and bytes.
pub fn decode_flow_stats(mut b: &[u8]) -> Res<Vec<(FlowSpec, u64, u64, u64)>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 56 {
            return Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_LEN, "truncated flow stats"));
        }
        let len = be16(b) as usize;
        if len < 56 || len > b.len() {
            return Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_LEN, "flow stats length"));
        }
        let e = &b[..len];
        let table = e[2];
        let (m, mlen) = decode_match(&e[48..])?;
        let spec = FlowSpec {
            table,
            table_given: true,
            priority: be16(&e[12..]),
            idle_timeout: be16(&e[14..]),
            hard_timeout: be16(&e[16..]),
            cookie: be64(&e[24..]),
            m,
            actions: decode_instructions(&e[48 + mlen..], table)?,
            ..FlowSpec::default()
        };
        let ns = be32(&e[4..]) as u64 * 1_000_000_000 + be32(&e[8..]) as u64;
        out.push((spec, ns, be64(&e[32..]), be64(&e[40..])));
        b = &b[len..];
    }
    Ok(out)
}

/// One table's entry of a TABLE_FEATURES reply: unnamed, with the eight
/// properties OpenFlow 1.3 requires (instructions, next tables, write and
/// apply actions, match, wildcards, write and apply set-field).
pub fn table_features(table: u8) -> Vec<u8> {
    fn prop(out: &mut Vec<u8>, ptype: u16, body: &[u8]) {
        let start = out.len();
        out.extend_from_slice(&ptype.to_be_bytes());
        out.extend_from_slice(&((4 + body.len()) as u16).to_be_bytes());
        out.extend_from_slice(body);
        pad8(out, start);
    }
    let ids = |types: &[u16]| -> Vec<u8> {
        types.iter().flat_map(|t| [t.to_be_bytes(), 4u16.to_be_bytes()].concat()).collect()
    };
    let headers = |pick: &dyn Fn(&Def) -> bool, masked: bool| -> Vec<u8> {
        DEFS.iter().filter(|d| pick(d)).flat_map(|d| oxm_header(d, masked && d.f.maskable()).to_be_bytes()).collect()
    };
    let mut e = vec![0, 0, table, 0, 0, 0, 0, 0];
    e.resize(8 + 32 + 16 + 4, 0); // name, metadata match and write, config
    e.extend_from_slice(&1_000_000u32.to_be_bytes()); // max_entries
    prop(&mut e, 0, &ids(&[OFPIT_GOTO_TABLE, OFPIT_APPLY_ACTIONS]));
    let next: Vec<u8> = (table.saturating_add(1)..254).collect();
    prop(&mut e, 2, &next);
    prop(&mut e, 4, &[]);
    prop(&mut e, 6, &ids(&[OFPAT_OUTPUT, OFPAT_SET_FIELD]));
    prop(&mut e, 8, &headers(&|_| true, true));
    prop(&mut e, 10, &headers(&|_| true, false));
    prop(&mut e, 12, &[]);
    prop(&mut e, 14, &headers(&|d| !matches!(d.f, Field::InPort | Field::NwFrag), false));
    let len = e.len() as u16;
    e[..2].copy_from_slice(&len.to_be_bytes());
    e
}

/// The HELLO sdnfwd sends: version 1.3 and a version bitmap of just 1.3.
pub fn hello(xid: u32) -> Vec<u8> {
    let mut m = start(ty::HELLO, xid);
    m.extend_from_slice(&[0, 1, 0, 8]);
    m.extend_from_slice(&(1u32 << OFP13).to_be_bytes());
    finish(m)
}

/// Whether a peer's HELLO allows OpenFlow 1.3 (its version bitmap, or
/// without one, its version ≥ 1.3).
pub fn hello_accepts_of13(msg: &[u8]) -> bool {
    let Some(h) = Header::parse(msg) else { return false };
    let mut b = &msg[8..msg.len().min(h.len as usize).max(8)];
    while b.len() >= 4 {
        let (et, el) = (be16(b), be16(&b[2..]) as usize);
        if el < 4 || el > b.len() {
            break;
        }
        if et == 1 {
            return b[4..el].chunks_exact(4).next().is_some_and(|w| be32(w) & (1 << OFP13) != 0);
        }
        let next = el.div_ceil(8) * 8;
        if next >= b.len() {
            break;
        }
        b = &b[next..];
    }
    h.version >= OFP13
}

/// An ERROR message answering `req` (its first 64 bytes go back).
pub fn error_msg(e: &OfError, req: &[u8], xid: u32) -> Vec<u8> {
    let mut m = start(ty::ERROR, xid);
    m.extend_from_slice(&e.ty.to_be_bytes());
    m.extend_from_slice(&e.code.to_be_bytes());
    if e.ty == err::HELLO_FAILED {
        m.extend_from_slice(e.why.as_bytes());
    } else {
        m.extend_from_slice(&req[..req.len().min(64)]);
    }
    finish(m)
}

/// A multipart reply body split into messages of at most 64 KiB, every
/// one but the last flagged "more". `entries` are whole entries.
pub fn multipart_replies(mp_type: u16, xid: u32, entries: &[Vec<u8>]) -> Vec<Vec<u8>> {
    const LIMIT: usize = 65535 - 16;
    let mut msgs = Vec::new();
    let mut cur = Vec::new();
    let flush = |cur: &mut Vec<u8>, more: bool, msgs: &mut Vec<Vec<u8>>| {
        let mut m = start(ty::MULTIPART_REPLY, xid);
        m.extend_from_slice(&mp_type.to_be_bytes());
        m.extend_from_slice(&(if more { mp::MORE } else { 0 }).to_be_bytes());
        m.extend_from_slice(&[0; 4]);
        m.append(cur);
        msgs.push(finish(m));
    };
    for e in entries {
        if !cur.is_empty() && cur.len() + e.len() > LIMIT {
            flush(&mut cur, true, &mut msgs);
        }
        cur.extend_from_slice(e);
    }
    flush(&mut cur, false, &mut msgs);
    msgs
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::ofctl::{parse_flow_file, parse_flow_line, LineKind};

    fn roundtrip(line: &str) -> FlowSpec {
        let spec = parse_flow_line(line, LineKind::Add).unwrap();
        let msg = encode_flow_mod(&FlowCommand::Add(spec.clone()), 7);
        assert_eq!(Header::parse(&msg).unwrap().len as usize, msg.len());
        match decode_flow_mod(&msg).unwrap() {
            FlowCommand::Add(s) => s,
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn test_seed_flows_roundtrip_through_flow_mod_and_flow_stats() {
        let text = include_str!("../../../tests/data/seed001.dump");
        let flows: Vec<FlowSpec> = parse_flow_file(text)
            .unwrap()
            .into_iter()
            .filter_map(|(_, c)| match c {
                FlowCommand::Add(s) => Some(s),
                _ => None,
            })
            .collect();
        assert!(flows.len() > 60);
        for f in &flows {
            let line = f.to_dump_line(None);
            let back = roundtrip(&line);
            assert_eq!(back.to_dump_line(None), line);
            let mut st = Vec::new();
            encode_flow_stats(f, std::time::Duration::from_millis(1500), 3, 180, &mut st);
            let d = decode_flow_stats(&st).unwrap();
            assert_eq!(d.len(), 1);
            assert_eq!(d[0].0.to_dump_line(None), line);
            assert_eq!((d[0].1, d[0].2, d[0].3), (1_500_000_000, 3, 180));
        }
    }

    #[test]
    fn test_fields_and_actions_roundtrip() {
        for l in [
            "table=20, priority=100, arp, in_port=3, arp_spa=10.128.0.2, arp_sha=00:00:0a:80:00:02/00:00:ff:ff:ff:ff, actions=load:0x2a->NXM_NX_REG0[],goto_table:21",
            "table=0, priority=200, ip, in_port=LOCAL, nw_tos=32, nw_ecn=1, nw_ttl=3, nw_frag=later, actions=IN_PORT",
            "table=60, priority=100, udp, nw_dst=172.30.0.10, tp_dst=0x35/0xfff0, actions=output:2",
            "table=60, priority=100, icmp, icmp_type=8, icmp_code=0, actions=drop",
            "table=70, priority=100, reg1=0x5/0xf, pkt_mark=0x1, tun_id=0x2be3, tun_src=172.16.1.1, tun_dst=172.16.1.0/24, actions=move:NXM_NX_REG0[0..7]->NXM_NX_TUN_ID[8..15],set_field:10.0.0.1->tun_dst,set_field:0x5/0xff->reg3,output:NXM_NX_REG2[0..15],note:01.02",
            "table=90, priority=100, ip, dl_src=00:11:22:33:44:55, actions=set_field:aa:bb:cc:dd:ee:ff->eth_dst,move:NXM_OF_IN_PORT[]->NXM_NX_REG3[0..15],goto_table:100",
        ] {
            let spec = parse_flow_line(l, LineKind::Add).unwrap();
            assert_eq!(roundtrip(l).to_dump_line(None), spec.to_dump_line(None), "{l}");
        }
    }

    #[test]
    fn test_bad_input_is_an_error_not_a_panic() {
        let spec =
            parse_flow_line("table=10, priority=5, ip, nw_src=1.2.3.4, actions=output:3", LineKind::Add).unwrap();
        let msg = encode_flow_mod(&FlowCommand::Add(spec), 1);
        for n in 0..msg.len() {
            let _ = decode_flow_mod(&msg[..n]);
        }
        // Every byte flipped: decoded or refused, never a panic.
        for i in 8..msg.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut m = msg.clone();
                m[i] ^= x;
                let _ = decode_flow_mod(&m);
            }
        }
        // Prerequisite missing: nw_src without dl_type.
        let mut m = Match::any();
        m.set(Field::NwSrc, 0x01020304);
        let mut b = Vec::new();
        encode_match(&m, &mut b);
        assert_eq!(decode_match(&b).unwrap_err().code, err::BMC_BAD_PREREQ);
        // A goto backwards.
        let mut ins = Vec::new();
        encode_instructions(&[Action::GotoTable(10)], &mut ins);
        assert_eq!(decode_instructions(&ins, 20).unwrap_err().code, err::BIC_BAD_TABLE_ID);
        // An unsupported Nicira action (resubmit, subtype 1).
        let mut a = Vec::new();
        let s = nx_header(&mut a, 1);
        a.extend_from_slice(&[0; 6]);
        end_action(&mut a, s);
        assert_eq!(decode_actions(&a).unwrap_err().code, err::BAC_BAD_EXP_TYPE);
    }

    #[test]
    fn test_hello_negotiation() {
        assert!(hello_accepts_of13(&hello(1)));
        // OpenFlow 1.0 only (no bitmap, version 1).
        let mut h10 = hello(1);
        h10.truncate(8);
        h10[0] = 1;
        h10[3] = 8;
        assert!(!hello_accepts_of13(&h10));
        // 1.5 without a bitmap covers 1.3.
        h10[0] = 6;
        assert!(hello_accepts_of13(&h10));
        // A bitmap of 1.0 and 1.4 only.
        let mut hb = hello(1);
        hb[0] = 5;
        hb[12..16].copy_from_slice(&((1u32 << 1) | (1 << 5)).to_be_bytes());
        assert!(!hello_accepts_of13(&hb));
    }

    #[test]
    fn test_multipart_split() {
        let entries: Vec<Vec<u8>> = (0..1000).map(|_| vec![0u8; 200]).collect();
        let msgs = multipart_replies(mp::FLOW, 9, &entries);
        assert!(msgs.len() >= 4);
        let total: usize = msgs.iter().map(|m| m.len() - 16).sum();
        assert_eq!(total, 200_000);
        for (i, m) in msgs.iter().enumerate() {
            assert!(m.len() <= 65535);
            assert_eq!(be16(&m[10..]) == mp::MORE, i + 1 < msgs.len());
        }
    }
}
