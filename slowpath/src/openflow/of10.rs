//! OpenFlow 1.0 on the wire, as Open vSwitch speaks it to a plain
//! `ovs-ofctl` (which offers 1.0 only): the standard `ofp10_match`, FLOW_MOD
//! and flow statistics, and the Nicira extensions `ovs-ofctl` switches to
//! when a flow needs more than `ofp10_match` holds (`NXT_SET_FLOW_FORMAT`
//! nxm): `NXT_FLOW_MOD`, `NXST_FLOW` and `NXST_AGGREGATE` with `nx_match`
//! matches, and `NXT_FLOW_MOD_TABLE_ID`, which puts the table in the
//! command's high byte. Also OpenFlow 1.0's table, port and features
//! layouts, and FLOW_REMOVED in every version sdnfwd speaks.
//!
//! The actions are OpenFlow 1.0's (`codec::decode_actions_v` with version
//! 1): `goto_table` travels as `resubmit(,N)`, as Open vSwitch sends it.
//! Every length is checked before it is read; a bad message is an
//! [`OfError`], never a panic.

use config::ofctl::{Field, FlowCommand, FlowSpec, Match, ETH_TYPE_ARP, ETH_TYPE_IP, IPPROTO_ICMP, IPPROTO_TCP};
use config::ofctl::{IPPROTO_UDP, OFPP_LOCAL};

use super::codec::{
    self, be16, be32, be64, encode_instructions_v, encode_match_v, err, put_age_and_timeouts, put_nx_match,
    put_oxs_stats, FlowFilter, FlowModFields, FlowStatsView, OfError, OFP10, OFP15, OFPTT_ALL,
};
use crate::ofproto::{RemovedReason, Rule};

type Res<T> = Result<T, OfError>;

/// `OFPP_NONE` of OpenFlow 1.0 (no port: a filter that selects all).
pub const OFPP10_NONE: u16 = 0xffff;

/// Nicira message subtypes (`NXT_*`) sdnfwd reads or writes.
#[allow(missing_docs)]
pub mod nxt {
    pub const ROLE_REQUEST: u32 = 10;
    pub const SET_FLOW_FORMAT: u32 = 12;
    pub const FLOW_MOD: u32 = 13;
    pub const FLOW_REMOVED: u32 = 14;
    pub const FLOW_MOD_TABLE_ID: u32 = 15;
    pub const SET_PACKET_IN_FORMAT: u32 = 16;
    pub const FLOW_AGE: u32 = 18;
    pub const SET_ASYNC_CONFIG: u32 = 19;
    pub const SET_CONTROLLER_ID: u32 = 20;
    pub const FLOW_MONITOR_CANCEL: u32 = 21;
    pub const FLOW_MONITOR_PAUSED: u32 = 22;
    pub const FLOW_MONITOR_RESUMED: u32 = 23;
}

/// Nicira statistics subtypes (`NXST_*`).
#[allow(missing_docs)]
pub mod nxst {
    pub const FLOW: u32 = 0;
    pub const AGGREGATE: u32 = 1;
    pub const FLOW_MONITOR: u32 = 2;
}

// `ofp10_match` wildcard bits.
const FW_IN_PORT: u32 = 1 << 0;
const FW_DL_VLAN: u32 = 1 << 1;
const FW_DL_SRC: u32 = 1 << 2;
const FW_DL_DST: u32 = 1 << 3;
const FW_DL_TYPE: u32 = 1 << 4;
const FW_NW_PROTO: u32 = 1 << 5;
const FW_TP_SRC: u32 = 1 << 6;
const FW_TP_DST: u32 = 1 << 7;
const FW_NW_SRC_SHIFT: u32 = 8;
const FW_NW_DST_SHIFT: u32 = 14;
const FW_DL_VLAN_PCP: u32 = 1 << 20;
const FW_NW_TOS: u32 = 1 << 21;
/// Every wildcard bit.
pub const FW_ALL: u32 = (1 << 22) - 1;
/// `sizeof(struct ofp10_match)`.
pub const MATCH10_LEN: usize = 40;

fn bad_match(code: u16, why: impl Into<String>) -> OfError {
    OfError::new(err::BAD_MATCH, code, why)
}

/// A prefix length's mask (0 for /0).
fn prefix_mask(n: u32) -> u64 {
    if n == 0 {
        0
    } else {
        (u32::MAX << (32 - n.min(32))) as u64
    }
}

/// Reads an `ofp10_match` as Open vSwitch does (`ofputil_match_from_ofp10_match`
/// then `ofputil_normalize_match`): fields whose prerequisites the match
/// lacks are dropped. A VLAN match is refused (sdnfwd does not parse VLAN
/// tags).
pub fn decode_match10(b: &[u8]) -> Res<Match> {
    if b.len() < MATCH10_LEN {
        return Err(bad_match(err::BMC_BAD_LEN, "truncated ofp10_match"));
    }
    let wc = be32(b);
    let mut m = Match::any();
    if wc & FW_IN_PORT == 0 {
        let p = be16(&b[4..]) as u64;
        m.set(Field::InPort, p);
    }
    if wc & FW_DL_VLAN == 0 || wc & FW_DL_VLAN_PCP == 0 {
        let vid = be16(&b[18..]);
        // dl_vlan=0xffff is "no VLAN tag", which every frame sdnfwd
        // forwards has; anything else names a tag.
        if wc & FW_DL_VLAN_PCP == 0 || vid != 0xffff {
            return Err(bad_match(
                err::BMC_BAD_FIELD,
                "VLAN matches (dl_vlan, dl_vlan_pcp) are not supported by sdnfwd",
            ));
        }
    }
    let mac = |at: usize| codec::be_n128_pub(&b[at..at + 6]) as u64;
    if wc & FW_DL_SRC == 0 {
        m.set(Field::DlSrc, mac(6));
    }
    if wc & FW_DL_DST == 0 {
        m.set(Field::DlDst, mac(12));
    }
    if wc & FW_DL_TYPE == 0 {
        m.set(Field::DlType, be16(&b[22..]) as u64);
    }
    let ip = m.is_exact(Field::DlType, ETH_TYPE_IP);
    let arp = m.is_exact(Field::DlType, ETH_TYPE_ARP);
    if ip || arp {
        let src_bits = 32u32.saturating_sub((wc >> FW_NW_SRC_SHIFT) & 0x3f);
        let dst_bits = 32u32.saturating_sub((wc >> FW_NW_DST_SHIFT) & 0x3f);
        if src_bits > 0 {
            m.set_masked(Field::NwSrc, be32(&b[28..]) as u64, prefix_mask(src_bits));
        }
        if dst_bits > 0 {
            m.set_masked(Field::NwDst, be32(&b[32..]) as u64, prefix_mask(dst_bits));
        }
        if wc & FW_NW_PROTO == 0 {
            m.set(Field::NwProto, b[25] as u64);
        }
    }
    if ip {
        if wc & FW_NW_TOS == 0 {
            m.set(Field::NwTos, (b[24] & 0xfc) as u64);
        }
        let proto = m.get(Field::NwProto);
        if proto.1 != 0 && matches!(proto.0, IPPROTO_TCP | IPPROTO_UDP | 132 | IPPROTO_ICMP) {
            let narrow = |v: u16| if proto.0 == IPPROTO_ICMP { (v & 0xff) as u64 } else { v as u64 };
            if wc & FW_TP_SRC == 0 {
                m.set(Field::TpSrc, narrow(be16(&b[36..])));
            }
            if wc & FW_TP_DST == 0 {
                m.set(Field::TpDst, narrow(be16(&b[38..])));
            }
        }
    }
    Ok(m)
}

/// Writes `m` as an `ofp10_match`, what it can hold of it (Open vSwitch's
/// `ofputil_match_to_ofp10_match`: registers, tunnel and conntrack fields
/// are left out, a non-prefix address mask is widened to a prefix).
pub fn encode_match10(m: &Match, out: &mut Vec<u8>) {
    let mut wc = FW_ALL & !(0x3f << FW_NW_SRC_SHIFT | 0x3f << FW_NW_DST_SHIFT);
    let mut b = [0u8; MATCH10_LEN];
    let (p, pm) = m.get(Field::InPort);
    if pm != 0 {
        wc &= !FW_IN_PORT;
        b[4..6].copy_from_slice(&(p as u16).to_be_bytes());
    }
    // No VLAN: left wildcarded, as OVS writes a match without one.
    let (src, sm) = m.get(Field::DlSrc);
    if sm != 0 {
        wc &= !FW_DL_SRC;
        b[6..12].copy_from_slice(&src.to_be_bytes()[2..]);
    }
    let (dst, dm) = m.get(Field::DlDst);
    if dm != 0 {
        wc &= !FW_DL_DST;
        b[12..18].copy_from_slice(&dst.to_be_bytes()[2..]);
    }
    let (t, tm) = m.get(Field::DlType);
    if tm != 0 {
        wc &= !FW_DL_TYPE;
        b[22..24].copy_from_slice(&(t as u16).to_be_bytes());
    }
    let (tos, tosm) = m.get(Field::NwTos);
    if tosm != 0 {
        wc &= !FW_NW_TOS;
        b[24] = tos as u8;
    }
    let (proto, protom) = m.get(Field::NwProto);
    if protom != 0 {
        wc &= !FW_NW_PROTO;
        b[25] = proto as u8;
    }
    let prefix = |mask: u64| 32 - (mask as u32).leading_ones().min(32);
    let (s, smask) = m.get(Field::NwSrc);
    wc |= prefix(smask).min(32) << FW_NW_SRC_SHIFT;
    b[28..32].copy_from_slice(&((s & prefix_mask(32 - prefix(smask))) as u32).to_be_bytes());
    let (d, dmask) = m.get(Field::NwDst);
    wc |= prefix(dmask).min(32) << FW_NW_DST_SHIFT;
    b[32..36].copy_from_slice(&((d & prefix_mask(32 - prefix(dmask))) as u32).to_be_bytes());
    let (ts, tsm) = m.get(Field::TpSrc);
    if tsm != 0 {
        wc &= !FW_TP_SRC;
        b[36..38].copy_from_slice(&(ts as u16).to_be_bytes());
    }
    let (td, tdm) = m.get(Field::TpDst);
    if tdm != 0 {
        wc &= !FW_TP_DST;
        b[38..40].copy_from_slice(&(td as u16).to_be_bytes());
    }
    b[..4].copy_from_slice(&wc.to_be_bytes());
    out.extend_from_slice(&b);
}

/// The command and table of an OpenFlow 1.0 FLOW_MOD's 16-bit command:
/// with the table-id extension on, the table is its high byte; otherwise
/// the command covers all tables (255).
fn split_command(command: u16, tid: bool) -> (u8, u8) {
    if tid {
        ((command & 0xff) as u8, (command >> 8) as u8)
    } else {
        (command as u8, OFPTT_ALL)
    }
}

/// Decodes an OpenFlow 1.0 OFPT_FLOW_MOD (header included). `tid`: the
/// connection turned on `NXT_FLOW_MOD_TABLE_ID`.
pub fn decode_flow_mod10(msg: &[u8], tid: bool) -> Res<FlowCommand> {
    const FIXED: usize = 8 + MATCH10_LEN + 24;
    if msg.len() < FIXED {
        return Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_LEN, "FLOW_MOD too short"));
    }
    let m = decode_match10(&msg[8..])?;
    let b = &msg[8 + MATCH10_LEN..];
    let wc = be32(&msg[8..]);
    let (command, table) = split_command(be16(&b[8..]), tid);
    if command > 4 || (!tid && be16(&b[8..]) > 0xff) {
        return Err(OfError::new(err::FLOW_MOD_FAILED, err::FMFC_BAD_COMMAND, format!("command {command}")));
    }
    // OpenFlow 1.0: an exact-match flow has the highest priority.
    let priority = if wc & FW_ALL != 0 { be16(&b[14..]) } else { u16::MAX };
    let out_port = be16(&b[20..]);
    let is_delete = matches!(command, 3 | 4);
    let actions = if is_delete { Vec::new() } else { codec::decode_actions_v(&msg[FIXED..], OFP10)? };
    let f = FlowModFields {
        command,
        table,
        cookie: be64(b),
        cookie_mask: 0,
        idle_timeout: be16(&b[10..]),
        hard_timeout: be16(&b[12..]),
        priority,
        out_port: (out_port != OFPP10_NONE).then(|| port16(out_port)),
        out_group: None,
        flags: flags10(be16(&b[22..]), command)?,
        importance: 0,
    };
    codec::flow_command(f, m, actions, OFP10)
}

/// A 16-bit port as the tables number it.
fn port16(p: u16) -> u32 {
    p as u32
}

/// OpenFlow 1.0's flow-mod flags as OpenFlow 1.3 numbers them:
/// `send_flow_rem` and `check_overlap` are the same bits; `emerg` (4) is
/// refused as Open vSwitch refuses it.
fn flags10(raw: u16, _command: u8) -> Res<u16> {
    if raw & 4 != 0 {
        return Err(OfError::new(err::FLOW_MOD_FAILED, err::FMFC_TABLE_FULL, "emergency flows are not supported"));
    }
    if raw & !3 != 0 {
        return Err(OfError::new(err::FLOW_MOD_FAILED, err::FMFC_BAD_FLAGS, format!("flags {raw:#x}")));
    }
    Ok(raw)
}

/// The body of a Nicira message: after the header, vendor and subtype.
pub const NX_MSG_FIXED: usize = 16;

/// Decodes an NXT_FLOW_MOD (header included): `nx_flow_mod`, its
/// `nx_match` (which may carry the cookie to match) and OpenFlow 1.0
/// actions.
pub fn decode_nx_flow_mod(msg: &[u8], tid: bool) -> Res<FlowCommand> {
    const FIXED: usize = NX_MSG_FIXED + 32;
    if msg.len() < FIXED {
        return Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_LEN, "NXT_FLOW_MOD too short"));
    }
    let b = &msg[NX_MSG_FIXED..];
    let match_len = be16(&b[24..]) as usize;
    let padded = match_len.div_ceil(8) * 8;
    if msg.len() < FIXED + padded {
        return Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_LEN, "NXT_FLOW_MOD's nx_match runs past its end"));
    }
    let (m, (cookie, cookie_mask)) = codec::decode_nx_match(&msg[FIXED..], match_len)?;
    let (command, table) = split_command(be16(&b[8..]), tid);
    if command > 4 {
        return Err(OfError::new(err::FLOW_MOD_FAILED, err::FMFC_BAD_COMMAND, format!("command {command}")));
    }
    if command == 0 && cookie_mask != 0 {
        return Err(OfError::new(err::NX, err::NXBRC_NXM_INVALID, "an add cannot match a cookie"));
    }
    let out_port = be16(&b[20..]);
    let is_delete = matches!(command, 3 | 4);
    let actions = if is_delete { Vec::new() } else { codec::decode_actions_v(&msg[FIXED + padded..], OFP10)? };
    let f = FlowModFields {
        command,
        table,
        cookie: if command == 0 { be64(b) } else { cookie },
        cookie_mask: if command == 0 { 0 } else { cookie_mask },
        idle_timeout: be16(&b[10..]),
        hard_timeout: be16(&b[12..]),
        priority: be16(&b[14..]),
        out_port: (out_port != OFPP10_NONE).then(|| port16(out_port)),
        out_group: None,
        flags: flags10(be16(&b[22..]), command)?,
        importance: 0,
    };
    codec::flow_command(f, m, actions, OFP10)
}

/// Encodes an NXT_FLOW_MOD as `ovs-ofctl` sends it (the tests' client
/// side), the table in the command's high byte when `tid`.
///
/// # Panics
/// On a [`FlowCommand::Group`].
pub fn encode_nx_flow_mod(cmd: &FlowCommand, tid: bool, xid: u32) -> Vec<u8> {
    let (code, spec) = match cmd {
        FlowCommand::Add(s) => (0u16, s),
        FlowCommand::Modify { strict, spec } => (1 + *strict as u16, spec),
        FlowCommand::Delete { strict, spec } => (3 + *strict as u16, spec),
        FlowCommand::Group(g) => panic!("`{g}` is not a FLOW_MOD"),
    };
    let mut m = nx_start(nxt::FLOW_MOD, xid);
    m.extend_from_slice(&(if code == 0 { spec.cookie } else { u64::MAX }).to_be_bytes());
    let table = if spec.table_given || code == 0 { spec.table } else { OFPTT_ALL };
    let command = if tid { code | (table as u16) << 8 } else { code };
    m.extend_from_slice(&command.to_be_bytes());
    m.extend_from_slice(&spec.idle_timeout.to_be_bytes());
    m.extend_from_slice(&spec.hard_timeout.to_be_bytes());
    m.extend_from_slice(&spec.priority.to_be_bytes());
    m.extend_from_slice(&codec::NO_BUFFER.to_be_bytes());
    m.extend_from_slice(&spec.out_port.map_or(OFPP10_NONE, |p| p as u16).to_be_bytes());
    m.extend_from_slice(&(spec.flags & 3).to_be_bytes());
    let at = m.len();
    m.extend_from_slice(&[0; 8]);
    let (cookie, mask) = if code == 0 { (0, 0) } else { (spec.cookie, spec.cookie_mask) };
    let len = put_nx_match(&spec.m, cookie, mask, &mut m) as u16;
    m[at..at + 2].copy_from_slice(&len.to_be_bytes());
    if code < 3 {
        encode_instructions_v(&spec.actions, OFP10, &mut m);
    }
    codec::finish(m)
}

/// Starts a Nicira message (OpenFlow 1.0's VENDOR type, Nicira's id, the
/// subtype).
pub fn nx_start(subtype: u32, xid: u32) -> Vec<u8> {
    let mut m = codec::start_v(OFP10, 4, xid);
    m.extend_from_slice(&codec::NX_VENDOR.to_be_bytes());
    m.extend_from_slice(&subtype.to_be_bytes());
    m
}

/// Decodes an OpenFlow 1.0 flow or aggregate statistics request body
/// (`ofp10_flow_stats_request`).
pub fn decode_flow_filter10(body: &[u8]) -> Res<FlowFilter> {
    if body.len() < MATCH10_LEN + 4 {
        return Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_LEN, "flow statistics request too short"));
    }
    let m = decode_match10(body)?;
    let table = body[MATCH10_LEN];
    let out_port = be16(&body[MATCH10_LEN + 2..]);
    Ok(FlowFilter {
        table: (table != OFPTT_ALL).then_some(table),
        out_port: (out_port != OFPP10_NONE).then(|| port16(out_port)),
        out_group: None,
        cookie: 0,
        cookie_mask: 0,
        m,
    })
}

/// Decodes an NXST_FLOW or NXST_AGGREGATE request body
/// (`nx_flow_stats_request` and its `nx_match`).
pub fn decode_nx_flow_filter(body: &[u8]) -> Res<FlowFilter> {
    if body.len() < 8 {
        return Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_LEN, "NXST_FLOW request too short"));
    }
    let out_port = be16(body);
    let match_len = be16(&body[2..]) as usize;
    let table = body[4];
    if body.len() < 8 + match_len.div_ceil(8) * 8 {
        return Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_LEN, "NXST_FLOW request's nx_match runs past its end"));
    }
    let (m, (cookie, cookie_mask)) = codec::decode_nx_match(&body[8..], match_len)?;
    Ok(FlowFilter {
        table: (table != OFPTT_ALL).then_some(table),
        out_port: (out_port != OFPP10_NONE).then(|| port16(out_port)),
        out_group: None,
        cookie,
        cookie_mask,
        m,
    })
}

/// Seconds as an `nx_flow_stats` age: the age plus one, 0 unknown.
fn age16(d: std::time::Duration) -> u16 {
    (d.as_secs().min(u16::MAX as u64 - 1) + 1) as u16
}

/// One flow's NXST_FLOW entry (`nx_flow_stats`: with its idle and hard
/// ages, which `ovs-ofctl` prints as `idle_age=` and `hard_age=`).
pub fn encode_nx_flow_stats(v: &FlowStatsView<'_>, out: &mut Vec<u8>) {
    let s = v.spec;
    let start = out.len();
    out.extend_from_slice(&[0, 0, s.table, 0]);
    put_age_and_timeouts(v, out);
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&age16(v.idle_age).to_be_bytes());
    out.extend_from_slice(&age16(v.hard_age).to_be_bytes());
    out.extend_from_slice(&s.cookie.to_be_bytes());
    out.extend_from_slice(&v.packets.to_be_bytes());
    out.extend_from_slice(&v.bytes.to_be_bytes());
    let len = put_nx_match(&s.m, 0, 0, out) as u16;
    out[at..at + 2].copy_from_slice(&len.to_be_bytes());
    encode_instructions_v(&s.actions, OFP10, out);
    let n = (out.len() - start) as u16;
    out[start..start + 2].copy_from_slice(&n.to_be_bytes());
}

/// One flow's OpenFlow 1.0 OFPST_FLOW entry (`ofp10_flow_stats`, its match
/// what `ofp10_match` holds of the flow's).
pub fn encode_flow_stats10(v: &FlowStatsView<'_>, out: &mut Vec<u8>) {
    let s = v.spec;
    let start = out.len();
    out.extend_from_slice(&[0, 0, s.table, 0]);
    encode_match10(&s.m, out);
    put_age_and_timeouts(v, out);
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&s.cookie.to_be_bytes());
    out.extend_from_slice(&v.packets.to_be_bytes());
    out.extend_from_slice(&v.bytes.to_be_bytes());
    encode_instructions_v(&s.actions, OFP10, out);
    let n = (out.len() - start) as u16;
    out[start..start + 2].copy_from_slice(&n.to_be_bytes());
}

/// The aggregate statistics reply body (`ofp_aggregate_stats_reply`, also
/// NXST_AGGREGATE's; OpenFlow 1.5's is OXS).
pub fn aggregate_body(version: u8, packets: u64, bytes: u64, flows: u32) -> Vec<u8> {
    let mut e = Vec::with_capacity(24);
    if version >= OFP15 {
        put_oxs_stats(&mut e, None, None, packets, bytes, Some(flows));
    } else {
        e.extend_from_slice(&packets.to_be_bytes());
        e.extend_from_slice(&bytes.to_be_bytes());
        e.extend_from_slice(&flows.to_be_bytes());
        e.extend_from_slice(&[0; 4]);
    }
    e
}

/// One table's OpenFlow 1.0 statistics entry (`ofp10_table_stats`), with
/// the values Open vSwitch reports for an unnamed table: every wildcard,
/// a million entries.
pub fn table_stats10(table: u8, active: u32, lookup: u64, matched: u64) -> Vec<u8> {
    let mut e = vec![table, 0, 0, 0];
    e.resize(4 + 32, 0);
    e.extend_from_slice(&FW_ALL.to_be_bytes());
    e.extend_from_slice(&1_000_000u32.to_be_bytes());
    e.extend_from_slice(&active.to_be_bytes());
    e.extend_from_slice(&lookup.to_be_bytes());
    e.extend_from_slice(&matched.to_be_bytes());
    e
}

/// A FLOW_REMOVED for `rule` in the connection's protocol: OpenFlow 1.0's
/// (its match what `ofp10_match` holds) or, with the Nicira flow format,
/// NXT_FLOW_REMOVED; 1.2-1.4's `ofp12_flow_removed`; 1.5's with OXS
/// statistics.
pub fn flow_removed(rule: &Rule, reason: RemovedReason, now: std::time::Instant, version: u8, nxm: bool) -> Vec<u8> {
    let s = &rule.spec;
    let d = now.saturating_duration_since(rule.created);
    let (packets, bytes) = rule.counters();
    let mut m;
    if version == OFP10 && nxm {
        m = nx_start(nxt::FLOW_REMOVED, 0);
        m.extend_from_slice(&s.cookie.to_be_bytes());
        m.extend_from_slice(&s.priority.to_be_bytes());
        m.push(reason.code());
        m.push(s.table.wrapping_add(1));
        m.extend_from_slice(&(d.as_secs() as u32).to_be_bytes());
        m.extend_from_slice(&d.subsec_nanos().to_be_bytes());
        m.extend_from_slice(&s.idle_timeout.to_be_bytes());
        let at = m.len();
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&packets.to_be_bytes());
        m.extend_from_slice(&bytes.to_be_bytes());
        let len = put_nx_match(&s.m, 0, 0, &mut m) as u16;
        m[at..at + 2].copy_from_slice(&len.to_be_bytes());
    } else if version == OFP10 {
        m = codec::start_v(OFP10, 11, 0);
        encode_match10(&s.m, &mut m);
        m.extend_from_slice(&s.cookie.to_be_bytes());
        m.extend_from_slice(&s.priority.to_be_bytes());
        m.extend_from_slice(&[reason.code(), 0]);
        m.extend_from_slice(&(d.as_secs() as u32).to_be_bytes());
        m.extend_from_slice(&d.subsec_nanos().to_be_bytes());
        m.extend_from_slice(&s.idle_timeout.to_be_bytes());
        m.extend_from_slice(&[0; 2]);
        m.extend_from_slice(&packets.to_be_bytes());
        m.extend_from_slice(&bytes.to_be_bytes());
    } else if version >= OFP15 {
        m = codec::start_v(version, 11, 0);
        m.extend_from_slice(&[s.table, reason.code()]);
        m.extend_from_slice(&s.priority.to_be_bytes());
        m.extend_from_slice(&s.idle_timeout.to_be_bytes());
        m.extend_from_slice(&s.hard_timeout.to_be_bytes());
        m.extend_from_slice(&s.cookie.to_be_bytes());
        encode_match_v(&s.m, version, &mut m);
        put_oxs_stats(&mut m, Some(d), None, packets, bytes, None);
    } else {
        m = codec::start_v(version, 11, 0);
        m.extend_from_slice(&s.cookie.to_be_bytes());
        m.extend_from_slice(&s.priority.to_be_bytes());
        m.extend_from_slice(&[reason.code(), s.table]);
        m.extend_from_slice(&(d.as_secs() as u32).to_be_bytes());
        m.extend_from_slice(&d.subsec_nanos().to_be_bytes());
        m.extend_from_slice(&s.idle_timeout.to_be_bytes());
        m.extend_from_slice(&s.hard_timeout.to_be_bytes());
        m.extend_from_slice(&packets.to_be_bytes());
        m.extend_from_slice(&bytes.to_be_bytes());
        encode_match_v(&s.m, version, &mut m);
    }
    codec::finish(m)
}

/// A port as OpenFlow 1.0 lists it (`ofp10_phy_port`).
pub fn phy_port10(port_no: u32, mac: u64, name: &str, up: bool) -> Vec<u8> {
    let mut e = Vec::with_capacity(48);
    let p = if port_no as u64 == OFPP_LOCAL { 0xfffe } else { port_no as u16 };
    e.extend_from_slice(&p.to_be_bytes());
    e.extend_from_slice(&mac.to_be_bytes()[2..]);
    super::switch::put_str(&mut e, name, 16);
    e.extend_from_slice(&(if up { 0u32 } else { 1 }).to_be_bytes()); // config: PORT_DOWN
    e.extend_from_slice(&(if up { 0u32 } else { 1 }).to_be_bytes()); // state: LINK_DOWN
    e.extend_from_slice(&[0; 16]); // curr, advertised, supported, peer
    e
}

/// A flow spec a statistics request's filter and a rule agree on (for
/// tests and the listener).
pub fn selects(f: &FlowFilter, s: &FlowSpec) -> bool {
    f.selects(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::ofctl::{parse_flow_line, LineKind};

    #[test]
    fn test_match10_roundtrip() {
        for l in [
            "tcp,in_port=3,dl_src=00:11:22:33:44:55,nw_src=10.0.0.0/8,nw_dst=1.2.3.4,tp_dst=80",
            "arp,arp_tpa=10.128.0.0/14,arp_op=1",
            "ip,nw_tos=32",
            "icmp,icmp_type=8,icmp_code=0",
            "",
        ] {
            let m = parse_flow_line(l, LineKind::Match).unwrap().m;
            let mut b = Vec::new();
            encode_match10(&m, &mut b);
            assert_eq!(b.len(), MATCH10_LEN);
            assert_eq!(decode_match10(&b).unwrap(), m, "{l}");
        }
        // Fields without their prerequisite are dropped, as OVS normalizes.
        let mut b = Vec::new();
        encode_match10(&Match::any(), &mut b);
        b[..4].copy_from_slice(&(FW_ALL & !FW_TP_DST).to_be_bytes());
        b[38..40].copy_from_slice(&80u16.to_be_bytes());
        assert_eq!(decode_match10(&b).unwrap(), Match::any());
        // The fields where ofp10_match has them (openflow-1.0.h): nw_src
        // at 28, nw_dst 32, tp_src 36, tp_dst 38.
        let m =
            parse_flow_line("tcp,nw_src=10.128.0.0/14,nw_dst=1.2.3.4,tp_src=7,tp_dst=80", LineKind::Match).unwrap().m;
        let mut b = Vec::new();
        encode_match10(&m, &mut b);
        assert_eq!(b[22..40], [8, 0, 0, 6, 0, 0, 10, 128, 0, 0, 1, 2, 3, 4, 0, 7, 0, 80]);
        assert_eq!((be32(&b) >> FW_NW_SRC_SHIFT) & 0x3f, 18, "a /14 leaves 18 bits wildcarded");
        // A VLAN tag is refused.
        b[..4].copy_from_slice(&(FW_ALL & !FW_DL_VLAN).to_be_bytes());
        b[18..20].copy_from_slice(&5u16.to_be_bytes());
        assert_eq!(decode_match10(&b).unwrap_err().code, err::BMC_BAD_FIELD);
    }

    #[test]
    fn test_nx_flow_mod_roundtrip() {
        for (l, tid) in [
            ("table=20, priority=100, ip, reg0=5, nw_src=10.1.0.0/16, actions=load:0x1->NXM_NX_REG1[],goto_table:30", true),
            ("table=0, priority=5, ct_state=+trk+est, ip, actions=ct(commit,nat),output:3", true),
            ("priority=3, tcp, tp_dst=443, actions=set_field:aa:bb:cc:dd:ee:ff->eth_dst,set_field:10.0.0.1->nw_dst,group:4", false),
        ] {
            let spec = parse_flow_line(l, LineKind::Add).unwrap();
            let msg = encode_nx_flow_mod(&FlowCommand::Add(spec.clone()), tid, 9);
            let FlowCommand::Add(back) = decode_nx_flow_mod(&msg, tid).unwrap() else { panic!() };
            // goto_table travels as resubmit(,N), as OVS sends it.
            let want = spec.to_dump_line(None).replace("goto_table:30", "resubmit(,30)");
            let mut got = back.clone();
            got.flags &= !config::ofctl::ff::RESET_COUNTS;
            if !tid {
                got.table = spec.table;
            }
            assert_eq!(got.to_dump_line(None), want, "{l}");
            assert_ne!(back.flags & config::ofctl::ff::RESET_COUNTS, 0, "an OpenFlow 1.0 add resets counts");
            for n in 0..msg.len() {
                let _ = decode_nx_flow_mod(&msg[..n], tid);
            }
        }
        // A delete matching a cookie under a mask.
        let pat = parse_flow_line("table=5, cookie=0x10/0xf0, ip", LineKind::Match).unwrap();
        let msg = encode_nx_flow_mod(&FlowCommand::Delete { strict: false, spec: pat.clone() }, true, 1);
        let FlowCommand::Delete { spec, .. } = decode_nx_flow_mod(&msg, true).unwrap() else { panic!() };
        assert_eq!((spec.cookie, spec.cookie_mask, spec.table, spec.m), (0x10, 0xf0, 5, pat.m));
    }
}
