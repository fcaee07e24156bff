//! Flows printed as ovs-ofctl prints them: OVS's `match_format` and
//! `ofpacts_format`, so that a dump of sdnfwd's tables reads like
//! `ovs-ofctl -O OpenFlow13 dump-flows br0` and `print(parse(print(x))) ==
//! print(x)` holds (fuzzed).

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::field::*;
use super::spec::{padded_note, Action, CtAction, CtZone, FlowSpec, Match, Nat, NatKind, SubField, DEFAULT_PRIORITY};

fn put_hex(s: &mut String, v: u64) {
    if v == 0 {
        s.push('0');
    } else {
        let _ = write!(s, "{v:#x}");
    }
}

/// Formats an Ethernet address held in the low 48 bits.
pub fn fmt_mac(v: u64) -> String {
    let b = v.to_be_bytes();
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[2], b[3], b[4], b[5], b[6], b[7])
}

/// Formats an IPv4 address held in the low 32 bits.
pub fn fmt_ip(v: u64) -> String {
    Ipv4Addr::from(v as u32).to_string()
}

fn put_ip_masked(s: &mut String, name: &str, v: u64, m: u64) {
    if m == 0 {
        return;
    }
    let _ = write!(s, "{name}={}", fmt_ip(v));
    let m32 = m as u32;
    if m32 != u32::MAX {
        if m32.leading_ones() + m32.trailing_zeros() == 32 {
            let _ = write!(s, "/{}", m32.leading_ones());
        } else {
            let _ = write!(s, "/{}", fmt_ip(m));
        }
    }
    s.push(',');
}

fn put_mac_masked(s: &mut String, name: &str, v: u64, m: u64) {
    if m == 0 {
        return;
    }
    let _ = write!(s, "{name}={}", fmt_mac(v));
    if m != 0xffff_ffff_ffff {
        let _ = write!(s, "/{}", fmt_mac(m));
    }
    s.push(',');
}

fn put_hex_masked(s: &mut String, name: &str, v: u64, m: u64, full: u64) {
    if m == 0 {
        return;
    }
    let _ = write!(s, "{name}=");
    put_hex(s, v);
    if m != full {
        s.push('/');
        put_hex(s, m);
    }
    s.push(',');
}

fn put_be16_masked(s: &mut String, name: &str, v: u64, m: u64) {
    if m == 0 {
        return;
    }
    if m == 0xffff {
        let _ = write!(s, "{name}={v},");
    } else {
        let _ = write!(s, "{name}={v:#x}/{m:#x},");
    }
}

/// Formats `ct_state` as OVS's `match_format`: every flag matched, the
/// state's flags joined by `|` (`est|trk`, `0` for none); some flags,
/// each as `+flag` or `-flag`; both lowest bit first.
pub fn fmt_ct_state(v: u64, m: u64) -> String {
    let names = cs::NAMES.iter().filter(|(b, _)| m & b != 0);
    if m == cs::ALL {
        let set: Vec<&str> = names.filter(|(b, _)| v & b != 0).map(|(_, n)| *n).collect();
        return if set.is_empty() { "0".into() } else { set.join("|") };
    }
    names.map(|(b, n)| format!("{}{n}", if v & b != 0 { '+' } else { '-' })).collect()
}

/// Formats a 128-bit value as OVS's `ds_put_hex`: `0x` and the digits
/// without leading zeros, or `0`.
pub fn fmt_hex128(v: u128) -> String {
    if v == 0 {
        "0".into()
    } else {
        format!("{v:#x}")
    }
}

/// The 128-bit `ct_label` value and mask from the match's two halves.
fn label(m: &Match) -> (u128, u128) {
    let (lo, lo_m) = m.get(Field::CtLabelLo);
    let (hi, hi_m) = m.get(Field::CtLabelHi);
    ((hi as u128) << 64 | lo as u128, (hi_m as u128) << 64 | lo_m as u128)
}

/// The conntrack fields, where and how `match_format` prints them: after
/// `pkt_mark` and before the `ip`/`tcp` keyword; the tuple's ports only
/// with its protocol.
fn put_ct_match(s: &mut String, m: &Match) {
    let (v, mk) = m.get(Field::CtState);
    if mk != 0 {
        let _ = write!(s, "ct_state={},", fmt_ct_state(v, mk));
    }
    let (v, mk) = m.get(Field::CtZone);
    if mk != 0 {
        let _ = write!(s, "ct_zone={v},");
    }
    let (v, mk) = m.get(Field::CtMark);
    put_hex_masked(s, "ct_mark", v, mk, 0xffff_ffff);
    let (v, mk) = label(m);
    if mk != 0 {
        let _ = write!(s, "ct_label={}", fmt_hex128(v));
        if mk != u128::MAX {
            let _ = write!(s, "/{}", fmt_hex128(mk));
        }
        s.push(',');
    }
    let (v, mk) = m.get(Field::CtNwSrc);
    put_ip_masked(s, "ct_nw_src", v, mk);
    let (v, mk) = m.get(Field::CtNwDst);
    put_ip_masked(s, "ct_nw_dst", v, mk);
    let (v, mk) = m.get(Field::CtNwProto);
    if mk != 0 {
        let _ = write!(s, "ct_nw_proto={v},");
        let (v, mk) = m.get(Field::CtTpSrc);
        put_be16_masked(s, "ct_tp_src", v, mk);
        let (v, mk) = m.get(Field::CtTpDst);
        put_be16_masked(s, "ct_tp_dst", v, mk);
    }
}

/// Formats a port number as OVS does (`LOCAL`, or decimal).
pub fn fmt_port(p: u64) -> String {
    match p {
        OFPP_LOCAL => "LOCAL".into(),
        OFPP_IN_PORT => "IN_PORT".into(),
        _ => p.to_string(),
    }
}

/// Formats a match as OVS's `match_format` does, with `priority=` first when
/// it is not the default. The result has no trailing comma.
pub fn fmt_match(m: &Match, priority: Option<u16>) -> String {
    let mut s = String::new();
    if let Some(p) = priority {
        if p != DEFAULT_PRIORITY {
            let _ = write!(s, "priority={p},");
        }
    }
    let (pm_v, pm_m) = m.get(Field::PktMark);
    put_hex_masked(&mut s, "pkt_mark", pm_v, pm_m, 0xffff_ffff);
    put_ct_match(&mut s, m);

    let (dl_type, dl_type_m) = m.get(Field::DlType);
    let (proto, proto_m) = m.get(Field::NwProto);
    let mut skip_type = false;
    let mut skip_proto = false;
    let is_arp = dl_type_m != 0 && dl_type == ETH_TYPE_ARP;
    let is_ip = dl_type_m != 0 && dl_type == ETH_TYPE_IP;
    if dl_type_m != 0 {
        skip_type = true;
        if is_ip {
            if proto_m != 0 {
                skip_proto = true;
                match proto {
                    IPPROTO_ICMP => s.push_str("icmp,"),
                    IPPROTO_TCP => s.push_str("tcp,"),
                    IPPROTO_UDP => s.push_str("udp,"),
                    2 => s.push_str("igmp,"),
                    132 => s.push_str("sctp,"),
                    _ => {
                        s.push_str("ip,");
                        skip_proto = false;
                    }
                }
            } else {
                s.push_str("ip,");
            }
        } else if dl_type == ETH_TYPE_IPV6 {
            s.push_str("ipv6,");
        } else if is_arp {
            s.push_str("arp,");
        } else if dl_type == 0x8035 {
            s.push_str("rarp,");
        } else {
            skip_type = false;
        }
    }
    for i in 0..8 {
        let (v, mk) = m.get(Field::reg(i));
        put_hex_masked(&mut s, &format!("reg{i}"), v, mk, 0xffff_ffff);
    }
    let (v, mk) = m.get(Field::TunId);
    put_hex_masked(&mut s, "tun_id", v, mk, u64::MAX);
    let (v, mk) = m.get(Field::TunSrc);
    put_ip_masked(&mut s, "tun_src", v, mk);
    let (v, mk) = m.get(Field::TunDst);
    put_ip_masked(&mut s, "tun_dst", v, mk);
    let (v, mk) = m.get(Field::InPort);
    if mk != 0 {
        let _ = write!(s, "in_port={},", fmt_port(v));
    }
    let (v, mk) = m.get(Field::DlSrc);
    put_mac_masked(&mut s, "dl_src", v, mk);
    let (v, mk) = m.get(Field::DlDst);
    put_mac_masked(&mut s, "dl_dst", v, mk);
    if !skip_type && dl_type_m != 0 {
        let _ = write!(s, "dl_type={dl_type:#06x},");
    }
    let (sv, sm) = m.get(Field::NwSrc);
    let (dv, dm) = m.get(Field::NwDst);
    if is_arp {
        put_ip_masked(&mut s, "arp_spa", sv, sm);
        put_ip_masked(&mut s, "arp_tpa", dv, dm);
    } else {
        put_ip_masked(&mut s, "nw_src", sv, sm);
        put_ip_masked(&mut s, "nw_dst", dv, dm);
    }
    if !skip_proto && proto_m != 0 {
        if is_arp {
            let _ = write!(s, "arp_op={proto},");
        } else {
            let _ = write!(s, "nw_proto={proto},");
        }
    }
    if is_arp {
        let (v, mk) = m.get(Field::ArpSha);
        put_mac_masked(&mut s, "arp_sha", v, mk);
        let (v, mk) = m.get(Field::ArpTha);
        put_mac_masked(&mut s, "arp_tha", v, mk);
    }
    let (v, mk) = m.get(Field::NwTos);
    if mk != 0 {
        let _ = write!(s, "nw_tos={v},");
    }
    let (v, mk) = m.get(Field::NwEcn);
    if mk != 0 {
        let _ = write!(s, "nw_ecn={v},");
    }
    let (v, mk) = m.get(Field::NwTtl);
    if mk != 0 {
        let _ = write!(s, "nw_ttl={v},");
    }
    let (v, mk) = m.get(Field::NwFrag);
    match mk {
        3 => {
            let kw = match v {
                0 => "no",
                1 => "first",
                3 => "later",
                _ => "<error>",
            };
            let _ = write!(s, "nw_frag={kw},");
        }
        1 => {
            let _ = write!(s, "nw_frag={},", if v & FRAG_ANY != 0 { "yes" } else { "no" });
        }
        2 => {
            let _ = write!(s, "nw_frag={},", if v & FRAG_LATER != 0 { "later" } else { "not_later" });
        }
        _ => {}
    }
    let (tsv, tsm) = m.get(Field::TpSrc);
    let (tdv, tdm) = m.get(Field::TpDst);
    if is_ip && proto_m != 0 && proto == IPPROTO_ICMP {
        if tsm != 0 {
            let _ = write!(s, "icmp_type={tsv},");
        }
        if tdm != 0 {
            let _ = write!(s, "icmp_code={tdv},");
        }
    } else {
        put_be16_masked(&mut s, "tp_src", tsv, tsm);
        put_be16_masked(&mut s, "tp_dst", tdv, tdm);
    }
    if s.ends_with(',') {
        s.pop();
    }
    s
}

/// Formats a field value as `set_field` and `ofproto/trace` print it.
pub fn fmt_field_value(field: Field, v: u64) -> String {
    match field.kind() {
        Kind::Ipv4 => fmt_ip(v),
        Kind::Mac => fmt_mac(v),
        Kind::Port => fmt_port(v),
        Kind::Dec | Kind::Frag => v.to_string(),
        Kind::Hex | Kind::EthType | Kind::CtState | Kind::CtLabel => {
            let mut s = String::new();
            put_hex(&mut s, v);
            s
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Output(p) if *p as u64 == OFPP_IN_PORT => f.write_str("IN_PORT"),
            Action::Output(p) if *p as u64 == OFPP_LOCAL => f.write_str("LOCAL"),
            Action::Output(p) => write!(f, "output:{p}"),
            Action::OutputReg(sf) => write!(f, "output:{sf}"),
            Action::GotoTable(t) => write!(f, "goto_table:{t}"),
            Action::Move { src, dst } => write!(f, "move:{src}->{dst}"),
            Action::Load { value, dst } => {
                let mut s = String::new();
                put_hex(&mut s, *value);
                write!(f, "load:{s}->{dst}")
            }
            Action::SetField { field: Field::CtLabelLo, value, mask } => {
                f.write_str(&fmt_label_write(*value as u128, *mask as u128))
            }
            Action::SetField { field: Field::CtLabelHi, value, mask } => {
                f.write_str(&fmt_label_write((*value as u128) << 64, (*mask as u128) << 64))
            }
            Action::SetField { field: Field::CtMark, value, mask } if *mask != Field::CtMark.full_mask() => {
                f.write_str(&fmt_masked_write(Field::CtMark, *value as u128, *mask as u128))
            }
            Action::SetField { field, value, mask } => {
                write!(f, "set_field:{}", fmt_field_value(*field, *value))?;
                if *mask != field.full_mask() {
                    write!(f, "/{}", fmt_field_value(*field, *mask))?;
                }
                write!(f, "->{}", field.name())
            }
            Action::CtClear => f.write_str("ct_clear"),
            // OVS's format_RESUBMIT.
            Action::Resubmit { port: Some(p), table: None } => write!(f, "resubmit:{}", fmt_port(*p as u64)),
            Action::Resubmit { port, table } => {
                f.write_str("resubmit(")?;
                if let Some(p) = port {
                    f.write_str(&fmt_port(*p as u64))?;
                }
                f.write_str(",")?;
                if let Some(t) = table {
                    write!(f, "{t}")?;
                }
                f.write_str(")")
            }
            Action::Group(g) => write!(f, "group:{g}"),
            Action::Ct(ct) => f.write_str(&fmt_ct(ct)),
            Action::Note(bytes) => {
                f.write_str("note:")?;
                let p = padded_note(bytes);
                for (i, b) in p.iter().enumerate() {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// A masked write as OVS sends it over OpenFlow 1.3 (`set_field` with a
/// mask has no OpenFlow 1.3 encoding): one `load` per run of mask bits,
/// lowest first, each cut into loads of at most 64 bits.
fn fmt_masked_write(field: Field, value: u128, mask: u128) -> String {
    let mut out = Vec::new();
    let mut rest = mask;
    while rest != 0 {
        let ofs = rest.trailing_zeros();
        let len = (rest >> ofs).trailing_ones();
        let mut at = ofs;
        while at < ofs + len {
            let n = (ofs + len - at).min(64);
            let piece = ((value >> at) as u64) & (u64::MAX >> (64 - n));
            let sf = SubField { field, ofs: at, n_bits: n };
            let mut v = String::new();
            put_hex(&mut v, piece);
            out.push(format!("load:{v}->{sf}"));
            at += n;
        }
        rest &= !((u128::MAX >> (128 - len)) << ofs);
    }
    out.join(",")
}

/// A write to the 128-bit `ct_label` as OVS prints it: `set_field` when it
/// writes every bit, the loads OVS sends otherwise.
fn fmt_label_write(value: u128, mask: u128) -> String {
    if mask == u128::MAX {
        return format!("set_field:{}->ct_label", fmt_hex128(value));
    }
    // SubField ranges over the 128 bits print from CtLabelLo's numbering.
    fmt_masked_write(Field::CtLabelLo, value, mask)
}

/// `nat(...)` as OVS's `format_NAT`: the range only when it has a first
/// address, the port range only when it has a first port, and the flags
/// only with a range (OVS's encoding keeps them but its printer does not).
pub fn fmt_nat(n: &Nat) -> String {
    let mut s = String::from("nat");
    let Some(kind) = n.kind else {
        return s;
    };
    s.push_str(if kind == NatKind::Src { "(src" } else { "(dst" });
    if let Some((a, b)) = n.addrs {
        let _ = write!(s, "={}", fmt_ip(a as u64));
        if b != 0 && b != a {
            let _ = write!(s, "-{}", fmt_ip(b as u64));
        }
        if let Some((p, q)) = n.ports.filter(|p| p.0 != 0) {
            let _ = write!(s, ":{p}");
            if q != 0 && q != p {
                let _ = write!(s, "-{q}");
            }
        }
        for (on, name) in [(n.persistent, "persistent"), (n.hash, "hash"), (n.random, "random")] {
            if on {
                let _ = write!(s, ",{name}");
            }
        }
    }
    s.push(')');
    s
}

/// `exec(...)`'s actions: a `ct_label` write held as its two halves
/// (low, then high) prints as the one write it was.
fn fmt_exec(actions: &[Action]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < actions.len() {
        if let (
            Action::SetField { field: Field::CtLabelLo, value: lo, mask: lo_m },
            Some(Action::SetField { field: Field::CtLabelHi, value: hi, mask: hi_m }),
        ) = (&actions[i], actions.get(i + 1))
        {
            let v = (*hi as u128) << 64 | *lo as u128;
            let m = (*hi_m as u128) << 64 | *lo_m as u128;
            out.push(fmt_label_write(v, m));
            i += 2;
            continue;
        }
        out.push(actions[i].to_string());
        i += 1;
    }
    out.retain(|a| !a.is_empty());
    out.join(",")
}

/// `ct(...)` as OVS's `format_CT`: commit, force, table, zone (not when
/// 0), nat, exec, alg.
pub fn fmt_ct(ct: &CtAction) -> String {
    let mut parts = Vec::new();
    if ct.commit {
        parts.push("commit".to_string());
    }
    if ct.force {
        parts.push("force".to_string());
    }
    if let Some(t) = ct.table {
        parts.push(format!("table={t}"));
    }
    match ct.zone {
        CtZone::Field(sf) => parts.push(format!("zone={sf}")),
        CtZone::Imm(0) => {}
        CtZone::Imm(z) => parts.push(format!("zone={z}")),
    }
    if let Some(n) = &ct.nat {
        parts.push(fmt_nat(n));
    }
    let exec = fmt_exec(&ct.exec);
    if !exec.is_empty() {
        parts.push(format!("exec({exec})"));
    }
    match ct.alg {
        None | Some(0) => {}
        Some(21) => parts.push("alg=ftp".into()),
        Some(69) => parts.push("alg=tftp".into()),
        Some(p) => parts.push(format!("alg={p}")),
    }
    format!("ct({})", parts.join(","))
}

/// Formats an action list; the empty list is `drop`.
pub fn fmt_actions(actions: &[Action]) -> String {
    if actions.is_empty() {
        return "drop".into();
    }
    let mut s = String::new();
    for (i, a) in actions.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{a}");
    }
    s
}

/// Flow flags as dump-flows prints them (OVS's
/// `ofputil_flow_mod_flags_format`): each name followed by a space.
pub fn fmt_flags(flags: u16) -> String {
    let mut s = String::new();
    for (bit, name) in super::spec::ff::NAMES {
        if flags & bit != 0 {
            s.push_str(name);
            s.push(' ');
        }
    }
    s
}

/// Per-flow statistics printed by dump-flows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FlowStats {
    /// Seconds since the flow was installed.
    pub duration_secs: f64,
    /// Packets that hit the flow.
    pub n_packets: u64,
    /// Bytes of those packets.
    pub n_bytes: u64,
}

impl FlowSpec {
    /// The line ovs-ofctl's dump-flows prints for this flow (with a leading
    /// space); without stats, as `dump-flows --no-stats` but keeping cookie
    /// and table so that the line is a complete add-flows line.
    pub fn to_dump_line(&self, stats: Option<FlowStats>) -> String {
        let mut s = String::new();
        let _ = write!(s, " cookie={:#x}, ", self.cookie);
        if let Some(st) = stats {
            let _ = write!(s, "duration={:.3}s, ", st.duration_secs);
            let _ = write!(s, "table={}, n_packets={}, n_bytes={}, ", self.table, st.n_packets, st.n_bytes);
        } else {
            let _ = write!(s, "table={}, ", self.table);
        }
        if self.idle_timeout != 0 {
            let _ = write!(s, "idle_timeout={}, ", self.idle_timeout);
        }
        if self.hard_timeout != 0 {
            let _ = write!(s, "hard_timeout={}, ", self.hard_timeout);
        }
        s.push_str(&fmt_flags(self.flags));
        if self.importance != 0 {
            let _ = write!(s, "importance={}, ", self.importance);
        }
        s.push_str(&fmt_match(&self.m, Some(self.priority)));
        if !s.ends_with(' ') {
            s.push(' ');
        }
        let _ = write!(s, "actions={}", fmt_actions(&self.actions));
        s
    }

    /// The match and priority as ofproto/trace prints a rule
    /// (`ip,in_port=1,nw_src=10.128.0.0/14, priority 200, cookie 0x..`).
    pub fn to_trace_header(&self) -> String {
        let m = fmt_match(&self.m, None);
        let mut s = String::new();
        if !m.is_empty() {
            let _ = write!(s, "{m}, ");
        }
        let _ = write!(s, "priority {}", self.priority);
        if self.cookie != 0 {
            let _ = write!(s, ", cookie {:#x}", self.cookie);
        }
        s
    }
}

/// Flows as an add-flows file (`ovs-ofctl add-flows`, `sdnfwd ctl
/// add-flows`): one dump line each, without statistics.
pub fn flow_file(flows: &[FlowSpec]) -> String {
    flows.iter().map(|f| f.to_dump_line(None).trim_start().to_string() + "\n").collect()
}

impl std::fmt::Display for FlowSpec {
    /// The dump-flows line without statistics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_dump_line(None))
    }
}
