//! The flow model: a [`Match`] (value and mask per [`Field`]), the
//! [`Action`]s sdnfwd supports and a [`FlowSpec`] (what an ovs-ofctl line
//! says of one flow). Parsing is in `parse`, printing in `print`.

use super::field::{cs, Field, Prereq, ETH_TYPE_ARP, ETH_TYPE_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, N_FIELDS};

/// The default OpenFlow priority of a flow written without one.
pub const DEFAULT_PRIORITY: u16 = 32768;

/// A match: for each [`Field`], a value and a mask (mask 0 = wildcard).
/// Values are always stored masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Match {
    /// Per-field values, indexed by [`Field::index`].
    pub value: [u64; N_FIELDS],
    /// Per-field masks.
    pub mask: [u64; N_FIELDS],
}

impl Default for Match {
    fn default() -> Self {
        Match { value: [0; N_FIELDS], mask: [0; N_FIELDS] }
    }
}

impl Match {
    /// Matches everything.
    pub fn any() -> Match {
        Match::default()
    }

    /// Sets `field` to match `value` under `mask` (clipped to the field).
    pub fn set_masked(&mut self, field: Field, value: u64, mask: u64) {
        let m = mask & field.full_mask();
        self.mask[field.index()] = m;
        self.value[field.index()] = value & m;
    }

    /// Sets `field` to match `value` exactly.
    pub fn set(&mut self, field: Field, value: u64) {
        self.set_masked(field, value, u64::MAX);
    }

    /// The (value, mask) of a field; mask 0 when wildcarded.
    #[inline]
    pub fn get(&self, field: Field) -> (u64, u64) {
        (self.value[field.index()], self.mask[field.index()])
    }

    /// Whether `field` is matched exactly to `value`.
    pub fn is_exact(&self, field: Field, value: u64) -> bool {
        self.get(field) == (value & field.full_mask(), field.full_mask())
    }

    /// Whether the match has no field.
    pub fn is_catchall(&self) -> bool {
        self.mask.iter().all(|&m| m == 0)
    }

    /// Whether the match meets a prerequisite: the Ethernet type, IP
    /// protocol or connection-tracking state a field needs (the one rule
    /// for the text parser and the OpenFlow decoder).
    pub fn meets(&self, p: Prereq) -> bool {
        let ip = self.is_exact(Field::DlType, ETH_TYPE_IP);
        let arp = self.is_exact(Field::DlType, ETH_TYPE_ARP);
        let proto_is = |x: u64| ip && self.is_exact(Field::NwProto, x);
        let (state, state_m) = self.get(Field::CtState);
        let implied = cs::NEW | cs::EST | cs::REL | cs::RPL | cs::SNAT | cs::DNAT;
        let ct = state & implied != 0 || (state & cs::TRK != 0 && state_m & cs::INV != 0 && state & cs::INV == 0);
        match p {
            Prereq::None => true,
            Prereq::Ip => ip,
            Prereq::Arp => arp,
            Prereq::IpOrArp => ip || arp,
            Prereq::L4 => proto_is(IPPROTO_TCP) || proto_is(IPPROTO_UDP) || proto_is(132),
            Prereq::Proto(x) if x == IPPROTO_TCP || x == IPPROTO_UDP => proto_is(x),
            Prereq::Proto(_) => proto_is(IPPROTO_ICMP),
            Prereq::Ct => ct,
            Prereq::CtIp => ct && ip,
            Prereq::CtProto => ct && self.get(Field::CtNwProto).1 != 0,
        }
    }

    /// Whether every packet matching `self` also matches `pattern` (OVS's
    /// loose match used by non-strict delete and modify).
    pub fn is_within(&self, pattern: &Match) -> bool {
        (0..N_FIELDS).all(|i| {
            let pm = pattern.mask[i];
            self.mask[i] & pm == pm && self.value[i] & pm == pattern.value[i]
        })
    }
}

/// A bit range of a field, `NXM_NX_REG0[0..31]`. A range of `ct_label`
/// lies within one of its halves ([`Field::CtLabelLo`] or
/// [`Field::CtLabelHi`]), with `ofs` counted from that half's bit 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubField {
    /// The field.
    pub field: Field,
    /// First bit (0 = least significant).
    pub ofs: u32,
    /// Number of bits (≥ 1).
    pub n_bits: u32,
}

impl SubField {
    /// The whole field.
    pub fn whole(field: Field) -> SubField {
        SubField { field, ofs: 0, n_bits: field.n_bits() }
    }

    /// Mask of the covered bits within the field's value.
    pub fn mask(&self) -> u64 {
        let m = if self.n_bits >= 64 { u64::MAX } else { (1u64 << self.n_bits) - 1 };
        m << self.ofs
    }
}

impl std::fmt::Display for SubField {
    /// As OVS's `mf_format_subfield`: `NXM_NX_REG0[]` for the whole field,
    /// `[3]` for one bit, `[0..15]` otherwise. A `ct_label` half prints its
    /// bits in the 128-bit field's numbering (`CtLabelHi` bit 0 is
    /// `NXM_NX_CT_LABEL[64]`), never as the whole field.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[", self.field.nxm_name())?;
        let (ofs, width) = match self.field {
            Field::CtLabelLo => (self.ofs, 128),
            Field::CtLabelHi => (self.ofs + 64, 128),
            field => (self.ofs, field.n_bits()),
        };
        if ofs == 0 && self.n_bits == width {
        } else if self.n_bits == 1 {
            write!(f, "{ofs}")?;
        } else {
            write!(f, "{}..{}", ofs, ofs + self.n_bits - 1)?;
        }
        f.write_str("]")
    }
}

/// An OpenFlow action, as sdnfwd supports them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `output:N` (also `IN_PORT` and `LOCAL`).
    Output(u32),
    /// `output:NXM_NX_REG2[]`: the port is read from a subfield.
    OutputReg(SubField),
    /// `goto_table:N`.
    GotoTable(u8),
    /// `move:SRC->DST`.
    Move {
        /// Source bits.
        src: SubField,
        /// Destination bits (same width).
        dst: SubField,
    },
    /// `load:V->DST`.
    Load {
        /// Value, already fitted to `dst`'s width.
        value: u64,
        /// Destination bits.
        dst: SubField,
    },
    /// `set_field:V[/M]->FIELD`.
    SetField {
        /// The field.
        field: Field,
        /// Value (masked).
        value: u64,
        /// Mask; the field's full mask when none was written.
        mask: u64,
    },
    /// `note:XX.XX...`: the bytes padded as OVS stores them (NXAST_NOTE's
    /// payload: 6 + 8k bytes).
    Note(Vec<u8>),
    /// `ct(...)`: send the packet through the connection tracker.
    Ct(Box<CtAction>),
    /// `ct_clear`: the packet's ct fields as if it had never been tracked.
    CtClear,
    /// `group:N`: the actions of group N's bucket(s).
    Group(u32),
    /// `resubmit(PORT,TABLE)` / `resubmit:PORT`: look the packet up in a
    /// table (the current one when `table` is `None`), as if it had come in
    /// on `port` (its own input port when `None`), run what matches, then
    /// go on with the next action.
    Resubmit {
        /// The input port the lookup sees.
        port: Option<u32>,
        /// The table.
        table: Option<u8>,
    },
}

/// Where `ct` takes the zone from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtZone {
    /// `zone=N` (0 when not written).
    Imm(u16),
    /// `zone=NXM_NX_REG0[0..15]`: read from a subfield (16 bits).
    Field(SubField),
}

/// `ct(...)`: OVS's NXAST_CT.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CtAction {
    /// `commit`: create the connection if it is new.
    pub commit: bool,
    /// `force`: with `commit`, a connection in the other direction is
    /// ended and a new one begins.
    pub force: bool,
    /// `table=N`: the tracked packet goes on in table N (recirculation);
    /// `None`: tracking only, the packet goes on untracked.
    pub table: Option<u8>,
    /// The zone.
    pub zone: CtZone,
    /// `nat` or `nat(...)`, written before `exec(...)`.
    pub nat: Option<Nat>,
    /// `exec(...)`: `set_field`/`load`/`move` to `ct_mark` and `ct_label`,
    /// applied to the connection when it is committed. A write of the
    /// 128-bit `ct_label` is a [`Action::SetField`] on
    /// [`Field::CtLabelLo`] followed by one on [`Field::CtLabelHi`] (both
    /// present, a mask may be 0), except `load:V->NXM_NX_CT_LABEL[]`,
    /// which is two 64-bit [`Action::Load`]s as OVS sends it. A masked
    /// `set_field` prints as the `load`s OVS sends for it.
    pub exec: Vec<Action>,
    /// `alg=ftp|tftp` (the port number, 21 or 69); parsed and printed, not
    /// applied.
    pub alg: Option<u16>,
}

/// Which address `nat(...)` translates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// `src=`: source NAT.
    Src,
    /// `dst=`: destination NAT.
    Dst,
}

/// `nat` (`kind: None`: apply the connection's existing translation) or
/// `nat(src|dst=ADDR[-ADDR][:PORT[-PORT]][,random|hash][,persistent])`.
/// Held as OVS sends it: a range starting at 0.0.0.0 is no range
/// (`nat(src=0.0.0.0)` is `nat(src)`), a port range starting at 0 is no
/// port range; the flags stay even where the printer leaves them out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Nat {
    /// Source or destination translation; `None` for a plain `nat`.
    pub kind: Option<NatKind>,
    /// Address range (host order; equal ends for one address).
    pub addrs: Option<(u32, u32)>,
    /// Port range.
    pub ports: Option<(u16, u16)>,
    /// `random`: ports chosen at random.
    pub random: bool,
    /// `hash`: ports chosen by a hash of the tuple.
    pub hash: bool,
    /// `persistent`.
    pub persistent: bool,
}

/// What `ovs-ofctl` commands do with a flow line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowSpec {
    /// `table=`.
    pub table: u8,
    /// `priority=` (32768 when absent).
    pub priority: u16,
    /// `cookie=`.
    pub cookie: u64,
    /// `cookie=V/MASK` (deletes and modifies only); 0 when absent.
    pub cookie_mask: u64,
    /// Whether `table=` was written (a delete without it spans tables).
    pub table_given: bool,
    /// `idle_timeout=` (0 = none).
    pub idle_timeout: u16,
    /// `hard_timeout=` (0 = none).
    pub hard_timeout: u16,
    /// Flow flags ([`ff`]: `send_flow_rem`, `check_overlap`,
    /// `reset_counts`, `no_packet_counts`, `no_byte_counts`), OpenFlow
    /// 1.3's bits; kept with the flow as Open vSwitch keeps them.
    pub flags: u16,
    /// `importance=` (OpenFlow 1.4's eviction importance; kept and shown).
    pub importance: u16,
    /// `out_port=` of a delete or a dump: only flows with an output to
    /// this port (not part of a flow).
    pub out_port: Option<u32>,
    /// `out_group=` of a delete or a dump: only flows naming this group
    /// (not part of a flow).
    pub out_group: Option<u32>,
    /// The match.
    pub m: Match,
    /// The actions (empty = drop).
    pub actions: Vec<Action>,
}

impl Default for FlowSpec {
    fn default() -> Self {
        FlowSpec {
            table: 0,
            priority: DEFAULT_PRIORITY,
            cookie: 0,
            cookie_mask: 0,
            table_given: false,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: 0,
            importance: 0,
            out_port: None,
            out_group: None,
            m: Match::any(),
            actions: Vec::new(),
        }
    }
}

/// Flow flags as OpenFlow 1.3 numbers them (`OFPFF_*`), the bits of
/// [`FlowSpec::flags`].
pub mod ff {
    /// `send_flow_rem`: send FLOW_REMOVED when the flow expires or is
    /// deleted.
    pub const SEND_FLOW_REM: u16 = 1;
    /// `check_overlap`: refuse an add that overlaps a flow of the same
    /// priority.
    pub const CHECK_OVERLAP: u16 = 2;
    /// `reset_counts`: an add or modify starts the counters from zero.
    pub const RESET_COUNTS: u16 = 4;
    /// `no_packet_counts`.
    pub const NO_PKT_COUNTS: u16 = 8;
    /// `no_byte_counts`.
    pub const NO_BYT_COUNTS: u16 = 16;
    /// Every flag, with its name as ovs-ofctl writes it, in its order.
    pub const NAMES: [(u16, &str); 5] = [
        (SEND_FLOW_REM, "send_flow_rem"),
        (CHECK_OVERLAP, "check_overlap"),
        (RESET_COUNTS, "reset_counts"),
        (NO_PKT_COUNTS, "no_packet_counts"),
        (NO_BYT_COUNTS, "no_byte_counts"),
    ];
}

/// Pads a note's bytes as OVS stores them: the NXAST_NOTE header is 10 bytes
/// and actions are 8-byte aligned, so the payload grows to 6 + 8k bytes.
pub fn padded_note(bytes: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    let total = (10 + v.len()).div_ceil(8) * 8;
    v.resize(total - 10, 0);
    v
}
