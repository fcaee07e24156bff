//! The OpenFlow match fields sdnfwd understands, with their widths, names and
//! prerequisites, in the spirit of OVS's `meta-flow` table.
//!
//! Values are host-order integers in a `u64`: IPv4 addresses as `u32`, MAC
//! addresses as 48-bit big-endian integers (so NXM bit 0 is the last octet's
//! low bit), ports and types as plain numbers. As in OVS's `struct flow`,
//! ARP's sender/target IP and opcode share storage with `nw_src`, `nw_dst` and
//! `nw_proto`, and ICMP type/code share it with `tp_src`/`tp_dst`; which name
//! a field prints under depends on `dl_type`/`nw_proto`.

/// A match field. The order is the storage order of [`super::Match`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Field {
    InPort,
    PktMark,
    Reg0,
    Reg1,
    Reg2,
    Reg3,
    Reg4,
    Reg5,
    Reg6,
    Reg7,
    TunId,
    TunSrc,
    TunDst,
    DlSrc,
    DlDst,
    DlType,
    NwSrc,
    NwDst,
    NwProto,
    NwTos,
    NwEcn,
    NwTtl,
    NwFrag,
    TpSrc,
    TpDst,
    ArpSha,
    ArpTha,
    CtState,
    CtZone,
    CtMark,
    CtLabelLo,
    CtLabelHi,
    CtNwSrc,
    CtNwDst,
    CtNwProto,
    CtTpSrc,
    CtTpDst,
}

/// Number of [`Field`]s.
pub const N_FIELDS: usize = 37;

/// Every field, in storage order.
pub const ALL_FIELDS: [Field; N_FIELDS] = [
    Field::InPort,
    Field::PktMark,
    Field::Reg0,
    Field::Reg1,
    Field::Reg2,
    Field::Reg3,
    Field::Reg4,
    Field::Reg5,
    Field::Reg6,
    Field::Reg7,
    Field::TunId,
    Field::TunSrc,
    Field::TunDst,
    Field::DlSrc,
    Field::DlDst,
    Field::DlType,
    Field::NwSrc,
    Field::NwDst,
    Field::NwProto,
    Field::NwTos,
    Field::NwEcn,
    Field::NwTtl,
    Field::NwFrag,
    Field::TpSrc,
    Field::TpDst,
    Field::ArpSha,
    Field::ArpTha,
    Field::CtState,
    Field::CtZone,
    Field::CtMark,
    Field::CtLabelLo,
    Field::CtLabelHi,
    Field::CtNwSrc,
    Field::CtNwDst,
    Field::CtNwProto,
    Field::CtTpSrc,
    Field::CtTpDst,
];

/// `ct_state` bits (OVS's `CS_*`).
pub mod cs {
    /// A new connection (or one not committed yet).
    pub const NEW: u64 = 0x01;
    /// Part of an established connection.
    pub const EST: u64 = 0x02;
    /// Related to an established connection (an ICMP error).
    pub const REL: u64 = 0x04;
    /// In the reply direction.
    pub const RPL: u64 = 0x08;
    /// Invalid (the tracker could not make sense of it).
    pub const INV: u64 = 0x10;
    /// Tracked: went through `ct`.
    pub const TRK: u64 = 0x20;
    /// Its connection has source NAT.
    pub const SNAT: u64 = 0x40;
    /// Its connection has destination NAT.
    pub const DNAT: u64 = 0x80;
    /// Every defined bit.
    pub const ALL: u64 = 0xff;
    /// Names as OVS writes them, by bit.
    pub const NAMES: [(u64, &str); 8] = [
        (NEW, "new"),
        (EST, "est"),
        (REL, "rel"),
        (RPL, "rpl"),
        (INV, "inv"),
        (TRK, "trk"),
        (SNAT, "snat"),
        (DNAT, "dnat"),
    ];
}

/// Ethernet type of IPv4.
pub const ETH_TYPE_IP: u64 = 0x0800;
/// Ethernet type of ARP.
pub const ETH_TYPE_ARP: u64 = 0x0806;
/// Ethernet type of IPv6 (matched, never parsed further).
pub const ETH_TYPE_IPV6: u64 = 0x86dd;
/// IP protocol numbers.
pub const IPPROTO_ICMP: u64 = 1;
/// TCP.
pub const IPPROTO_TCP: u64 = 6;
/// UDP.
pub const IPPROTO_UDP: u64 = 17;
/// `nw_frag` bit: the packet is a fragment.
pub const FRAG_ANY: u64 = 1;
/// `nw_frag` bit: the packet is a fragment with a non-zero offset.
pub const FRAG_LATER: u64 = 2;
/// OpenFlow port number of the local port (OVS's 16-bit `OFPP_LOCAL`).
pub const OFPP_LOCAL: u64 = 0xfffe;
/// OpenFlow pseudo-port "the input port".
pub const OFPP_IN_PORT: u64 = 0xfff8;

/// How a field's values are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Port number (decimal, or LOCAL).
    Port,
    /// Integer printed in hex (`%#x`): registers, pkt_mark, tun_id.
    Hex,
    /// Integer printed in decimal.
    Dec,
    /// IPv4 address, maskable by prefix or dotted mask.
    Ipv4,
    /// Ethernet address, maskable.
    Mac,
    /// Ethernet type.
    EthType,
    /// Fragment keyword (no, yes, first, later, not_later).
    Frag,
    /// `ct_state` flags (`+trk+est`, `-trk`).
    CtState,
    /// One half of the 128-bit `ct_label`, printed as one hex number.
    CtLabel,
}

impl Field {
    /// Position in [`ALL_FIELDS`].
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }

    /// Register field `regN`.
    ///
    /// # Panics
    /// If `n > 7`.
    pub fn reg(n: usize) -> Field {
        ALL_FIELDS[Field::Reg0.index() + n]
    }

    /// Register number if this is `regN`.
    pub fn reg_index(self) -> Option<usize> {
        let i = self.index();
        (Field::Reg0.index()..=Field::Reg7.index()).contains(&i).then(|| i - Field::Reg0.index())
    }

    /// All bits a field can hold (`nw_tos` holds the DSCP bits of the TOS
    /// byte, `nw_ecn` the ECN bits).
    pub fn full_mask(self) -> u64 {
        match self {
            Field::InPort | Field::PktMark | Field::TunSrc | Field::TunDst => 0xffff_ffff,
            Field::NwSrc | Field::NwDst => 0xffff_ffff,
            Field::TunId => u64::MAX,
            Field::DlSrc | Field::DlDst | Field::ArpSha | Field::ArpTha => 0xffff_ffff_ffff,
            Field::DlType | Field::TpSrc | Field::TpDst => 0xffff,
            Field::NwProto | Field::NwTtl => 0xff,
            Field::NwTos => 0xfc,
            Field::NwEcn => 0x03,
            Field::NwFrag => 0x03,
            Field::CtState => cs::ALL,
            Field::CtZone | Field::CtTpSrc | Field::CtTpDst => 0xffff,
            Field::CtNwProto => 0xff,
            Field::CtLabelLo | Field::CtLabelHi => u64::MAX,
            _ => 0xffff_ffff, // registers, ct_mark, ct_nw_src/dst
        }
    }

    /// Width in bits, for subfield ranges (`NXM_NX_REG0[0..31]`).
    pub fn n_bits(self) -> u32 {
        match self {
            Field::TunId => 64,
            Field::DlSrc | Field::DlDst | Field::ArpSha | Field::ArpTha => 48,
            Field::DlType | Field::TpSrc | Field::TpDst => 16,
            Field::InPort => 16,
            Field::NwProto | Field::NwTtl | Field::NwTos | Field::NwEcn | Field::NwFrag => 8,
            Field::CtZone | Field::CtTpSrc | Field::CtTpDst => 16,
            Field::CtNwProto => 8,
            Field::CtLabelLo | Field::CtLabelHi => 64,
            _ => 32,
        }
    }

    /// Whether a `/mask` may follow the value.
    pub fn maskable(self) -> bool {
        !matches!(
            self,
            Field::InPort
                | Field::DlType
                | Field::NwProto
                | Field::NwTos
                | Field::NwEcn
                | Field::NwTtl
                | Field::CtZone
                | Field::CtNwProto
        )
    }

    /// Whether no action may write the field: Open vSwitch's read-only
    /// fields (`nw_frag` and the conntrack fields other than `ct_mark` and
    /// `ct_label`, which only `ct(exec(...))` writes).
    pub fn read_only(self) -> bool {
        matches!(
            self,
            Field::NwFrag
                | Field::CtState
                | Field::CtZone
                | Field::CtNwSrc
                | Field::CtNwDst
                | Field::CtNwProto
                | Field::CtTpSrc
                | Field::CtTpDst
        )
    }

    /// Whether only `ct(exec(...))` may write the field (`ct_mark`,
    /// `ct_label`): they belong to the connection, and OVS refuses to set
    /// them anywhere else.
    pub fn ct_only(self) -> bool {
        matches!(self, Field::CtMark | Field::CtLabelLo | Field::CtLabelHi)
    }

    /// The prerequisite of reading the field in an action (a `move` source,
    /// a `ct` zone subfield): for the conntrack tuple, what matching it
    /// needs; [`Prereq::None`] for the others, which sdnfwd does not check.
    pub fn read_prereq(self) -> Prereq {
        match self {
            Field::CtNwSrc | Field::CtNwDst => Prereq::CtIp,
            Field::CtNwProto | Field::CtTpSrc | Field::CtTpDst => Prereq::Ct,
            _ => Prereq::None,
        }
    }

    /// How values of this field are written.
    pub fn kind(self) -> Kind {
        match self {
            Field::InPort => Kind::Port,
            Field::PktMark | Field::TunId | Field::CtMark => Kind::Hex,
            f if f.reg_index().is_some() => Kind::Hex,
            Field::TunSrc | Field::TunDst | Field::NwSrc | Field::NwDst => Kind::Ipv4,
            Field::CtNwSrc | Field::CtNwDst => Kind::Ipv4,
            Field::CtState => Kind::CtState,
            Field::CtLabelLo | Field::CtLabelHi => Kind::CtLabel,
            Field::DlSrc | Field::DlDst | Field::ArpSha | Field::ArpTha => Kind::Mac,
            Field::DlType => Kind::EthType,
            Field::NwFrag => Kind::Frag,
            _ => Kind::Dec,
        }
    }

    /// The name `set_field` and `ofproto/trace` use for the field.
    pub fn name(self) -> &'static str {
        match self {
            Field::InPort => "in_port",
            Field::PktMark => "pkt_mark",
            Field::Reg0 => "reg0",
            Field::Reg1 => "reg1",
            Field::Reg2 => "reg2",
            Field::Reg3 => "reg3",
            Field::Reg4 => "reg4",
            Field::Reg5 => "reg5",
            Field::Reg6 => "reg6",
            Field::Reg7 => "reg7",
            Field::TunId => "tun_id",
            Field::TunSrc => "tun_src",
            Field::TunDst => "tun_dst",
            Field::DlSrc => "eth_src",
            Field::DlDst => "eth_dst",
            Field::DlType => "eth_type",
            Field::NwSrc => "nw_src",
            Field::NwDst => "nw_dst",
            Field::NwProto => "nw_proto",
            Field::NwTos => "nw_tos",
            Field::NwEcn => "nw_ecn",
            Field::NwTtl => "nw_ttl",
            Field::NwFrag => "nw_frag",
            Field::TpSrc => "tp_src",
            Field::TpDst => "tp_dst",
            Field::ArpSha => "arp_sha",
            Field::ArpTha => "arp_tha",
            Field::CtState => "ct_state",
            Field::CtZone => "ct_zone",
            Field::CtMark => "ct_mark",
            Field::CtLabelLo | Field::CtLabelHi => "ct_label",
            Field::CtNwSrc => "ct_nw_src",
            Field::CtNwDst => "ct_nw_dst",
            Field::CtNwProto => "ct_nw_proto",
            Field::CtTpSrc => "ct_tp_src",
            Field::CtTpDst => "ct_tp_dst",
        }
    }

    /// The NXM name `move`/`load`/`output` print (`NXM_NX_REG0`).
    pub fn nxm_name(self) -> &'static str {
        match self {
            Field::InPort => "NXM_OF_IN_PORT",
            Field::PktMark => "NXM_NX_PKT_MARK",
            Field::Reg0 => "NXM_NX_REG0",
            Field::Reg1 => "NXM_NX_REG1",
            Field::Reg2 => "NXM_NX_REG2",
            Field::Reg3 => "NXM_NX_REG3",
            Field::Reg4 => "NXM_NX_REG4",
            Field::Reg5 => "NXM_NX_REG5",
            Field::Reg6 => "NXM_NX_REG6",
            Field::Reg7 => "NXM_NX_REG7",
            Field::TunId => "NXM_NX_TUN_ID",
            Field::TunSrc => "NXM_NX_TUN_IPV4_SRC",
            Field::TunDst => "NXM_NX_TUN_IPV4_DST",
            Field::DlSrc => "NXM_OF_ETH_SRC",
            Field::DlDst => "NXM_OF_ETH_DST",
            Field::DlType => "NXM_OF_ETH_TYPE",
            Field::NwSrc => "NXM_OF_IP_SRC",
            Field::NwDst => "NXM_OF_IP_DST",
            Field::NwProto => "NXM_OF_IP_PROTO",
            Field::NwTos => "NXM_OF_IP_TOS",
            Field::NwEcn => "NXM_NX_IP_ECN",
            Field::NwTtl => "NXM_NX_IP_TTL",
            Field::NwFrag => "NXM_NX_IP_FRAG",
            Field::TpSrc => "NXM_OF_TCP_SRC",
            Field::TpDst => "NXM_OF_TCP_DST",
            Field::ArpSha => "NXM_NX_ARP_SHA",
            Field::ArpTha => "NXM_NX_ARP_THA",
            Field::CtState => "NXM_NX_CT_STATE",
            Field::CtZone => "NXM_NX_CT_ZONE",
            Field::CtMark => "NXM_NX_CT_MARK",
            Field::CtLabelLo | Field::CtLabelHi => "NXM_NX_CT_LABEL",
            Field::CtNwSrc => "NXM_NX_CT_NW_SRC",
            Field::CtNwDst => "NXM_NX_CT_NW_DST",
            Field::CtNwProto => "NXM_NX_CT_NW_PROTO",
            Field::CtTpSrc => "NXM_NX_CT_TP_SRC",
            Field::CtTpDst => "NXM_NX_CT_TP_DST",
        }
    }
}

/// A field name as written in a match or a `set_field`, with the
/// prerequisite it implies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prereq {
    /// None.
    None,
    /// `dl_type` must be IPv4.
    Ip,
    /// `dl_type` must be ARP.
    Arp,
    /// `dl_type` must be IPv4 or ARP.
    IpOrArp,
    /// IPv4 with `nw_proto` TCP or UDP (`tp_src`/`tp_dst`).
    L4,
    /// IPv4 with this `nw_proto`.
    Proto(u64),
    /// A `ct_state` that implies a connection (OVS's `MFP_CT_VALID`): one
    /// of `+new`, `+est`, `+rel`, `+rpl`, `+snat`, `+dnat`, or `+trk-inv`.
    /// Open vSwitch refuses the flow otherwise (`OFPBMC_BAD_PREREQ`).
    Ct,
    /// [`Prereq::Ct`] and `ip`: the conntrack tuple's IPv4 addresses
    /// (`OFPBAC_MATCH_INCONSISTENT` without `ip`).
    CtIp,
    /// [`Prereq::Ct`] and a non-zero `ct_nw_proto`: the tuple's ports
    /// (Open vSwitch sends them only with a protocol and drops them
    /// silently otherwise; sdnfwd refuses instead).
    CtProto,
}

/// Looks up a match field name (including aliases such as `tcp_dst`,
/// `arp_spa`, `ip_frag`). `ct_label` names [`Field::CtLabelLo`]: the
/// 128-bit value fills both halves, which the caller sets together.
pub fn lookup_match_field(name: &str) -> Option<(Field, Prereq)> {
    let reg = |n: &str| -> Option<(Field, Prereq)> {
        let i: usize = n.parse().ok()?;
        (i < 8 && n.len() == 1).then(|| (Field::reg(i), Prereq::None))
    };
    Some(match name {
        "in_port" => (Field::InPort, Prereq::None),
        "pkt_mark" => (Field::PktMark, Prereq::None),
        "tun_id" | "tunnel_id" => (Field::TunId, Prereq::None),
        "tun_src" => (Field::TunSrc, Prereq::None),
        "tun_dst" => (Field::TunDst, Prereq::None),
        "dl_src" | "eth_src" => (Field::DlSrc, Prereq::None),
        "dl_dst" | "eth_dst" => (Field::DlDst, Prereq::None),
        "dl_type" | "eth_type" => (Field::DlType, Prereq::None),
        "nw_src" | "ip_src" => (Field::NwSrc, Prereq::IpOrArp),
        "nw_dst" | "ip_dst" => (Field::NwDst, Prereq::IpOrArp),
        "arp_spa" => (Field::NwSrc, Prereq::Arp),
        "arp_tpa" => (Field::NwDst, Prereq::Arp),
        "arp_op" => (Field::NwProto, Prereq::Arp),
        "arp_sha" => (Field::ArpSha, Prereq::Arp),
        "arp_tha" => (Field::ArpTha, Prereq::Arp),
        "nw_proto" | "ip_proto" => (Field::NwProto, Prereq::IpOrArp),
        "nw_tos" => (Field::NwTos, Prereq::Ip),
        "nw_ecn" | "ip_ecn" => (Field::NwEcn, Prereq::Ip),
        "nw_ttl" => (Field::NwTtl, Prereq::Ip),
        "nw_frag" | "ip_frag" => (Field::NwFrag, Prereq::Ip),
        "tp_src" => (Field::TpSrc, Prereq::L4),
        "tp_dst" => (Field::TpDst, Prereq::L4),
        "tcp_src" => (Field::TpSrc, Prereq::Proto(IPPROTO_TCP)),
        "tcp_dst" => (Field::TpDst, Prereq::Proto(IPPROTO_TCP)),
        "udp_src" => (Field::TpSrc, Prereq::Proto(IPPROTO_UDP)),
        "udp_dst" => (Field::TpDst, Prereq::Proto(IPPROTO_UDP)),
        "icmp_type" => (Field::TpSrc, Prereq::Proto(IPPROTO_ICMP)),
        "icmp_code" => (Field::TpDst, Prereq::Proto(IPPROTO_ICMP)),
        "ct_state" => (Field::CtState, Prereq::None),
        "ct_zone" => (Field::CtZone, Prereq::None),
        "ct_mark" => (Field::CtMark, Prereq::None),
        "ct_label" => (Field::CtLabelLo, Prereq::None),
        "ct_nw_src" => (Field::CtNwSrc, Prereq::CtIp),
        "ct_nw_dst" => (Field::CtNwDst, Prereq::CtIp),
        "ct_nw_proto" => (Field::CtNwProto, Prereq::Ct),
        "ct_tp_src" => (Field::CtTpSrc, Prereq::CtProto),
        "ct_tp_dst" => (Field::CtTpDst, Prereq::CtProto),
        n if n.starts_with("reg") => return reg(&n[3..]),
        _ => return None,
    })
}

/// Looks up a subfield name as used by `move`, `load` and `output:`:
/// NXM names (`NXM_NX_REG0`) and field names (`reg0`, `tun_id`).
pub fn lookup_subfield_name(name: &str) -> Option<Field> {
    if let Some(f) = ALL_FIELDS.iter().copied().find(|f| f.nxm_name() == name) {
        return Some(f);
    }
    Some(match name {
        "NXM_OF_UDP_SRC" => Field::TpSrc,
        "NXM_OF_UDP_DST" => Field::TpDst,
        "NXM_OF_ARP_OP" => Field::NwProto,
        "NXM_OF_ARP_SPA" => Field::NwSrc,
        "NXM_OF_ARP_TPA" => Field::NwDst,
        "OXM_OF_ETH_DST" => Field::DlDst,
        "OXM_OF_ETH_SRC" => Field::DlSrc,
        "OXM_OF_IPV4_SRC" => Field::NwSrc,
        "OXM_OF_IPV4_DST" => Field::NwDst,
        _ => return lookup_match_field(name).map(|(f, _)| f),
    })
}
