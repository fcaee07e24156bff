//! Flow monitors (`ovs-ofctl monitor TARGET watch:`): a connection asks
//! to hear of the flows a match selects (Nicira's NXST_FLOW_MONITOR in
//! OpenFlow 1.0, the ONF's in 1.3, OFPMP_FLOW_MONITOR in 1.4 and 1.5); the
//! reply lists the flows selected now, and every later change to a
//! selected flow (added, modified, deleted with its reason) comes as an
//! update with xid 0, from the listener's event thread.
//!
//! A connection's own changes are reported in full (Open vSwitch
//! abbreviates them to the xid of the request that made them unless the
//! monitor asks for them in full).

use std::time::Instant;

use config::ofctl::{FlowSpec, Match};

use super::codec::{self, be16, be32, err, OfError, OFP10, OFP13, OFP14};
use crate::ofproto::{FlowEvent, Rule};

type Res<T> = Result<T, OfError>;

// Flags as Nicira numbers them (the ONF's are the same; OpenFlow 1.4's
// are mapped onto them).
const INITIAL: u16 = 1;
const ADD: u16 = 2;
const DELETE: u16 = 4;
const MODIFY: u16 = 8;
const ACTIONS: u16 = 16;
const OWN: u16 = 32;

/// One flow monitor of a connection.
#[derive(Clone, Debug)]
pub struct Monitor {
    /// The id the connection gave it.
    pub id: u32,
    /// What it reports (Nicira's `NXFMF_*` bits).
    flags: u16,
    /// Only flows with an output to this port.
    out_port: Option<u32>,
    /// Only flows naming this group.
    out_group: Option<u32>,
    /// One table, or all.
    table: Option<u8>,
    /// Flows at least as specific as this.
    m: Match,
}

impl Monitor {
    /// Whether the reply lists the flows selected now.
    pub fn initial(&self) -> bool {
        self.flags & INITIAL != 0
    }

    /// Whether the monitor selects a flow.
    pub fn selects(&self, s: &FlowSpec) -> bool {
        self.table.is_none_or(|t| t == s.table)
            && s.m.is_within(&self.m)
            && self
                .out_port
                .is_none_or(|p| s.actions.iter().any(|a| matches!(a, config::ofctl::Action::Output(x) if *x == p)))
            && self
                .out_group
                .is_none_or(|g| s.actions.iter().any(|a| matches!(a, config::ofctl::Action::Group(x) if *x == g)))
    }

    /// Whether the monitor reports this change.
    pub fn wants(&self, e: &FlowEvent) -> bool {
        let (bit, rule) = match e {
            FlowEvent::Added { rule, .. } => (ADD, rule),
            FlowEvent::Modified { rule, .. } => (MODIFY, rule),
            FlowEvent::Removed { rule, .. } => (DELETE, rule),
        };
        self.flags & bit != 0 && self.selects(&rule.spec)
    }

    /// Whether updates carry the flow's actions.
    pub fn actions(&self) -> bool {
        self.flags & ACTIONS != 0
    }
}

fn bad(why: impl Into<String>) -> OfError {
    OfError::new(err::BAD_REQUEST, err::BRC_BAD_LEN, why)
}

fn check_flags(flags: u16, known: u16) -> Res<()> {
    if flags & (ADD | DELETE | MODIFY) == 0 || flags & !known != 0 {
        return Err(OfError::new(
            err::FLOW_MONITOR_FAILED,
            err::MOFC_BAD_FLAGS,
            format!("flow monitor flags {flags:#x}"),
        ));
    }
    Ok(())
}

/// Reads the monitor requests of a FLOW_MONITOR statistics request body
/// (after its vendor header) of `version`.
///
/// # Errors
/// A short or malformed request, unknown flags, or a 1.4 command other
/// than "add".
pub fn decode_requests(mut b: &[u8], version: u8) -> Res<Vec<Monitor>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 16 {
            return Err(bad("flow monitor request is too short"));
        }
        let id = be32(b);
        let (mon, used) = match version {
            OFP10 => {
                let flags = be16(&b[4..]);
                check_flags(flags, INITIAL | ADD | DELETE | MODIFY | ACTIONS | OWN)?;
                let out_port = be16(&b[6..]);
                let match_len = be16(&b[8..]) as usize;
                let table = b[10];
                let padded = match_len.div_ceil(8) * 8;
                if b.len() < 16 + padded {
                    return Err(bad("flow monitor request's nx_match runs past its end"));
                }
                let (m, _) = codec::decode_nx_match(&b[16..], match_len)?;
                let out_port = (out_port != 0xffff).then_some(out_port as u32);
                (
                    Monitor { id, flags, out_port, out_group: None, table: (table != 0xff).then_some(table), m },
                    16 + padded,
                )
            }
            OFP13 => {
                let flags = be16(&b[4..]);
                check_flags(flags, INITIAL | ADD | DELETE | MODIFY | ACTIONS | OWN)?;
                let out_port = be32(&b[8..]);
                let table = b[12];
                let (m, mlen) = codec::decode_match(&b[16..])?;
                let out_port =
                    (out_port != codec::OFPP13_ANY).then(|| codec::port_from_of13(out_port).unwrap_or(out_port));
                (
                    Monitor { id, flags, out_port, out_group: None, table: (table != 0xff).then_some(table), m },
                    16 + mlen,
                )
            }
            _ => {
                let (out_port, out_group, flags14) = (be32(&b[4..]), be32(&b[8..]), be16(&b[12..]));
                let (table, command) = (b[14], b[15]);
                if command != 0 {
                    return Err(OfError::new(
                        err::FLOW_MONITOR_FAILED,
                        err::MOFC_UNKNOWN,
                        format!("flow monitor command {command}: sdnfwd takes adds (0)"),
                    ));
                }
                if flags14 & (2 | 4 | 8) == 0 || flags14 & !0x7f != 0 {
                    return Err(OfError::new(
                        err::FLOW_MONITOR_FAILED,
                        err::MOFC_BAD_FLAGS,
                        format!("flow monitor flags {flags14:#x}"),
                    ));
                }
                // OpenFlow 1.4's bits: initial, add, removed, modify,
                // instructions as Nicira's; no_abbrev and only_own.
                let flags = flags14 & 0x1f;
                let (m, mlen) = codec::decode_match(&b[16..])?;
                let out_port =
                    (out_port != codec::OFPP13_ANY).then(|| codec::port_from_of13(out_port).unwrap_or(out_port));
                let out_group = (out_group != codec::OFPG_ANY).then_some(out_group);
                (Monitor { id, flags, out_port, out_group, table: (table != 0xff).then_some(table), m }, 16 + mlen)
            }
        };
        out.push(mon);
        b = &b[used.min(b.len())..];
    }
    Ok(out)
}

/// One update entry: `event` as the version numbers it (Nicira's added 0,
/// deleted 1, modified 2; 1.4's initial 0, added 1, removed 2, modified
/// 3), the removal's reason, the flow with or without its actions.
fn update_entry(rule: &Rule, event: u16, reason: u16, actions: bool, version: u8) -> Vec<u8> {
    let s = &rule.spec;
    let mut e = Vec::with_capacity(96);
    if version >= OFP14 {
        e.extend_from_slice(&[0, 0]);
        e.extend_from_slice(&event.to_be_bytes());
        e.extend_from_slice(&[s.table, reason as u8]);
        e.extend_from_slice(&s.idle_timeout.to_be_bytes());
        e.extend_from_slice(&s.hard_timeout.to_be_bytes());
        e.extend_from_slice(&s.priority.to_be_bytes());
        e.extend_from_slice(&[0; 4]);
        e.extend_from_slice(&s.cookie.to_be_bytes());
        codec::encode_match_v(&s.m, version, &mut e);
        if actions {
            codec::encode_instructions_v(&s.actions, version, &mut e);
        }
    } else {
        e.extend_from_slice(&[0, 0]);
        e.extend_from_slice(&event.to_be_bytes());
        e.extend_from_slice(&reason.to_be_bytes());
        e.extend_from_slice(&s.priority.to_be_bytes());
        e.extend_from_slice(&s.idle_timeout.to_be_bytes());
        e.extend_from_slice(&s.hard_timeout.to_be_bytes());
        let at = e.len();
        e.extend_from_slice(&[0, 0, s.table, 0]);
        e.extend_from_slice(&s.cookie.to_be_bytes());
        let len = if version == OFP10 {
            codec::put_nx_match(&s.m, 0, 0, &mut e)
        } else {
            let start = e.len();
            codec::encode_match_v(&s.m, version, &mut e);
            be16(&e[start + 2..]) as usize
        };
        e[at..at + 2].copy_from_slice(&(len as u16).to_be_bytes());
        if actions {
            codec::encode_instructions_v(&s.actions, version, &mut e);
        }
    }
    let n = e.len() as u16;
    e[..2].copy_from_slice(&n.to_be_bytes());
    e
}

/// A flow of a monitor's initial reply (with its actions, as Open vSwitch
/// lists them).
pub fn initial_update(rule: &Rule, version: u8, _now: Instant) -> Vec<u8> {
    update_entry(rule, 0, 0, true, version)
}

/// The update entry of a change for a monitor of `version`.
pub fn update(e: &FlowEvent, actions: bool, version: u8) -> Vec<u8> {
    let nx = version < OFP14;
    match e {
        FlowEvent::Added { rule, .. } => update_entry(rule, if nx { 0 } else { 1 }, 0, actions, version),
        FlowEvent::Modified { rule, .. } => update_entry(rule, if nx { 2 } else { 3 }, 0, actions, version),
        FlowEvent::Removed { rule, reason, .. } => {
            update_entry(rule, if nx { 1 } else { 2 }, reason.code() as u16, false, version)
        }
    }
}

/// The statistics header prefix of an update message of `version` (and the
/// multipart type): Nicira's NXST_FLOW_MONITOR in 1.0, the ONF's in 1.3,
/// OFPMP_FLOW_MONITOR in 1.4+.
pub fn reply_kind(version: u8) -> (u16, Vec<u8>) {
    match version {
        OFP10 => {
            let mut p = codec::NX_VENDOR.to_be_bytes().to_vec();
            p.extend_from_slice(&2u32.to_be_bytes());
            p.extend_from_slice(&[0; 4]);
            (0xffff, p)
        }
        OFP13 => {
            let mut p = codec::ONF_VENDOR.to_be_bytes().to_vec();
            p.extend_from_slice(&1870u32.to_be_bytes());
            (0xffff, p)
        }
        _ => (16, Vec::new()),
    }
}
