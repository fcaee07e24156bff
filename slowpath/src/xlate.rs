//! Translation: a flow through the OpenFlow tables, from table 0, into
//! datapath actions and a megaflow mask (OVS's `ofproto-dpif-xlate`).
//!
//! A pure function of (tables, flow). Every read of a packet field un-
//! wildcards it in the same step: the classifier ORs the masks of the
//! subtables it probed, `move` un-wildcards its source bits, an output to
//! the tunnel un-wildcards the tun_id/tun_dst bits no action wrote, and a
//! header rewrite un-wildcards the bits of the field it did not write. An
//! extra 1-bit is safe; a missing one is a bug (the property test in
//! `tests/megaflow.rs` checks soundness on random packets).
//!
//! Registers, pkt_mark and the tun_id high half are pipeline metadata (zero when a
//! packet enters), so only the key words of the mask form the megaflow.

use std::sync::Arc;

use smallvec::SmallVec;

use config::ofctl::{Action, Bucket, CtAction, CtZone, Field, GroupSpec, GroupType, NatKind, SubField, OFPP_IN_PORT};
use fastpath::conntrack::types::{CtRequest, NatRange, NatRequest};
use fastpath::{DpAction, SetField};

use crate::flow::OfFlow;
use crate::ofproto::{Ofproto, Rule, RuleRef};
use crate::recirc::Frozen;

pub use crate::ofproto::VXLAN_PORT;
/// Outputs beyond this many in one translation are dropped (and noted).
pub const MAX_OUTPUTS: usize = 1024;

/// Where a translation with a trace sends its lines: each table, rule and
/// action in `ovs-appctl ofproto/trace`'s layout, already indented. The
/// translation defines what it needs; the ofproto/trace report implements it.
/// Without a sink (`None`) no line is formatted.
pub trait TraceSink {
    /// Records one line.
    fn line(&mut self, line: String);
}

/// Why the OpenFlow pipeline dropped a packet (the datapath's own drops are
/// `fastpath::stats::DatapathDrop`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipelineDropKind {
    /// No rule matched in the table (table miss).
    NoMatch,
    /// The matching rule's actions were `drop`.
    Explicit,
    /// Rules matched but produced no output (e.g. only to the input port).
    NoOutput,
    /// A recirculated packet whose id has no frozen translation.
    UnknownRecirc,
}

impl PipelineDropKind {
    /// Short reason text.
    pub fn as_str(self) -> &'static str {
        match self {
            PipelineDropKind::NoMatch => "no match",
            PipelineDropKind::Explicit => "explicit drop",
            PipelineDropKind::NoOutput => "no output",
            PipelineDropKind::UnknownRecirc => "unknown recirculation id",
        }
    }

    /// The reason as a metrics label.
    pub fn label(self) -> &'static str {
        match self {
            PipelineDropKind::NoMatch => "no-match",
            PipelineDropKind::Explicit => "drop-rule",
            PipelineDropKind::NoOutput => "no-output",
            PipelineDropKind::UnknownRecirc => "unknown-recirc",
        }
    }
}

/// Where (the table) and why the OpenFlow pipeline dropped a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipelineDrop {
    /// The last table the packet reached.
    pub table: u8,
    /// Why.
    pub kind: PipelineDropKind,
}

/// One output of the translation (for traces and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Output {
    /// OpenFlow port.
    pub port: u32,
    /// Tunnel destination (tunnel outputs).
    pub tun_dst: Option<u32>,
    /// Tunnel id (tunnel outputs).
    pub tun_id: Option<u64>,
}

/// A rule hit, borrowed from the tables: (table, rule).
pub type RuleHit<'a> = (u8, &'a Arc<Rule>);

/// The result of a translation; `R` is how it refers to the rules hit
/// ([`RuleRef`], owned, from [`xlate`]; [`RuleHit`], borrowed, from
/// [`xlate_borrowed`]).
#[derive(Clone, Debug)]
pub struct Xlate<R = RuleRef> {
    /// Datapath actions, in order.
    pub actions: fastpath::Actions,
    /// The outputs, in order.
    pub outputs: SmallVec<[Output; 4]>,
    /// Bits of the flow the result depends on (key words: the megaflow mask).
    pub wc: OfFlow,
    /// Rules hit, in order (counters are credited to them).
    pub rules: SmallVec<[R; 8]>,
    /// Set when nothing was output.
    pub drop: Option<PipelineDrop>,
    /// The flow after all actions (registers, tunnel fields set).
    pub final_flow: OfFlow,
    /// The recirculation the packet continues with (a `ct(table=N)`).
    pub recirc: Option<Recirculation>,
}

/// Where a translation left a packet that recirculates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recirculation {
    /// The id its next pass carries.
    pub id: u32,
    /// The zone its `ct` used (the next pass's `ct_zone`).
    pub zone: u16,
    /// The flow at the `ct` (registers and all, ct fields not yet cleared):
    /// what a trace's next pass starts from.
    pub flow: OfFlow,
    /// The `nat` of that `ct`, if any (a trace simulates it).
    pub nat: Option<NatRequest>,
}

impl<R> Xlate<R> {
    /// The megaflow mask over the datapath key (normalised: see
    /// [`fastpath::FlowKey::normalize_mask`]).
    pub fn megaflow_mask(&self) -> fastpath::FlowKey {
        let mut m = self.wc.key();
        m.normalize_mask();
        m
    }
}

/// Packet fields a header rewrite commits before the next output.
const PACKET_FIELDS: [Field; 10] = [
    Field::DlSrc,
    Field::DlDst,
    Field::PktMark,
    Field::NwSrc,
    Field::NwDst,
    Field::NwTos,
    Field::NwEcn,
    Field::NwTtl,
    Field::TpSrc,
    Field::TpDst,
];

struct Ctx<'a, 't> {
    of: &'a Ofproto,
    /// The result, built in place (returned whole, not field by field):
    /// its `final_flow` is the flow as the actions so far left it.
    x: Xlate<RuleHit<'a>>,
    /// The table whose rule's actions run now (`resubmit`'s default).
    table: u8,
    /// Resubmits entered and not left (a trace indents by it).
    depth: u32,
    /// Bits written by actions since the packet entered.
    written: OfFlow,
    /// Packet fields written since the last output.
    dirty: OfFlow,
    in_port: u32,
    trace: Option<&'t mut dyn TraceSink>,
    /// What a trace says of `ct` once its rule's actions end (as OVS
    /// prints it: after the actions and the original packet's `drop`).
    ct_notes: Vec<String>,
    /// Groups entered and not left (chains are bounded).
    group_depth: u32,
}

/// Groups may chain this deep (OVS bounds the translation depth too).
const MAX_GROUP_DEPTH: u32 = 16;
/// Resubmits may nest this deep (OVS's translation depth limit).
const MAX_RESUBMIT_DEPTH: u32 = 64;

/// A 64-bit mix (splitmix64's finaliser).
fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A text's hash (FNV-1a).
fn text_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// A bucket id's hash under a flow's hash.
fn mix32(id: u64, basis: u64) -> u64 {
    mix64(id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ basis)
}

/// The connection-tracking fields of a flow (cleared after `ct` and by
/// `ct_clear`: the packet goes on untracked).
const CT_FIELDS: [Field; 10] = [
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

impl Ctx<'_, '_> {
    fn note(&mut self, s: impl FnOnce() -> String) {
        if self.trace.is_some() {
            let l = format!("     {}", s());
            self.line(l);
        }
    }

    /// A trace line, indented for the resubmits it is nested in.
    fn line(&mut self, l: String) {
        let depth = self.depth as usize;
        if let Some(t) = self.trace.as_deref_mut() {
            if depth == 0 {
                t.line(l);
            } else {
                t.line(format!("{}{l}", "    ".repeat(depth)));
            }
        }
    }

    /// Emits rewrites for packet fields written since the last output.
    fn commit(&mut self) {
        if self.dirty.w.iter().all(|&w| w == 0) {
            return;
        }
        for f in PACKET_FIELDS {
            if self.dirty.get(f) == 0 {
                continue;
            }
            // The rewrite carries the whole field: its unwritten bits come
            // from the packet.
            let tos = [Field::NwTos, Field::NwEcn];
            let reads: &[Field] = if tos.contains(&f) { &tos } else { std::slice::from_ref(&f) };
            for &g in reads {
                self.x.wc.or_field(g, g.full_mask() & !self.written.get(g));
            }
            let v = self.x.final_flow.get(f);
            let set = match f {
                Field::DlSrc => SetField::EthSrc(v),
                Field::DlDst => SetField::EthDst(v),
                Field::PktMark => SetField::PktMark(v as u32),
                Field::NwSrc => SetField::Ipv4Src(v as u32),
                Field::NwDst => SetField::Ipv4Dst(v as u32),
                Field::NwTos | Field::NwEcn => {
                    SetField::IpTos((self.x.final_flow.get(Field::NwTos) | self.x.final_flow.get(Field::NwEcn)) as u8)
                }
                Field::NwTtl => SetField::IpTtl(v as u8),
                Field::TpSrc => SetField::TpSrc(v as u16),
                _ => SetField::TpDst(v as u16),
            };
            if f == Field::NwEcn && self.dirty.get(Field::NwTos) != 0 {
                continue; // one rewrite carries the whole TOS byte
            }
            self.x.actions.push(DpAction::Set(set));
        }
        self.dirty = OfFlow::default();
    }

    fn output(&mut self, port: u32) {
        if port == self.in_port {
            self.note(|| ">> skipping output to input port".into());
            return;
        }
        if !self.of.port_exists(port) {
            self.note(|| ">> Nonexistent output port".into());
            return;
        }
        if self.x.outputs.len() >= MAX_OUTPUTS {
            self.note(|| ">> too many outputs; output dropped".into());
            return;
        }
        self.commit();
        if Some(port) == self.of.vxlan_port {
            for f in [Field::TunDst, Field::TunId] {
                self.x.wc.or_field(f, f.full_mask() & !self.written.get(f));
            }
            let dst = self.x.final_flow.get(Field::TunDst) as u32;
            let tun_id = self.x.final_flow.get(Field::TunId);
            if dst == 0 {
                self.note(|| ">> tunnel destination is 0.0.0.0; output dropped".into());
                return;
            }
            self.note(|| "-> output to native tunnel".into());
            self.x.actions.push(DpAction::TunnelPush { port, vni: (tun_id & 0xff_ffff) as u32, dst });
            self.x.outputs.push(Output { port, tun_dst: Some(dst), tun_id: Some(tun_id) });
        } else {
            self.x.actions.push(DpAction::Output(port));
            self.x.outputs.push(Output { port, tun_dst: None, tun_id: None });
        }
    }

    /// `output:P` (`in_port` included).
    fn output_action(&mut self, p: u32) {
        if p as u64 != OFPP_IN_PORT {
            return self.output(p);
        }
        self.commit();
        let port = self.in_port;
        if self.of.port_exists(port) {
            self.x.actions.push(DpAction::Output(port));
            self.x.outputs.push(Output { port, tun_dst: None, tun_id: None });
        }
    }

    /// `load:V->DST`.
    fn load(&mut self, value: u64, dst: &SubField) {
        if self.prereqs_ok(dst.field) {
            self.write(dst.field, value << dst.ofs, dst.mask());
        } else {
            self.note(|| format!(">> unmet prerequisites for {dst}, load ignored"));
        }
    }

    /// Runs a rule's actions; returns the next table, if any.
    fn run(&mut self, actions: &[Action]) -> Option<u8> {
        let next = self.run_actions(actions);
        if !self.ct_notes.is_empty() {
            if next.is_none()
                && self.trace.is_some()
                && matches!(actions.last(), Some(Action::Ct(c)) if c.table.is_some())
            {
                // The original packet's actions end with the fork.
                self.note_raw("    drop");
            }
            for n in std::mem::take(&mut self.ct_notes) {
                self.note(|| n);
            }
        }
        next
    }

    fn note_raw(&mut self, s: &str) {
        if self.trace.is_some() {
            self.line(s.to_string());
        }
    }

    fn run_actions(&mut self, actions: &[Action]) -> Option<u8> {
        for a in actions {
            if self.trace.is_some() {
                self.line(format!("    {a}"));
            }
            match a {
                Action::Output(p) => self.output_action(*p),
                Action::OutputReg(sf) => {
                    let port = ((self.x.final_flow.get(sf.field) >> sf.ofs) & (sf.mask() >> sf.ofs)) as u32;
                    self.x.wc.or_field(sf.field, sf.mask());
                    self.note(|| format!("-> output port is {port}"));
                    self.output(port);
                }
                Action::GotoTable(t) => return Some(*t),
                Action::Move { src, dst } => {
                    if !(self.prereqs_ok(dst.field) && self.prereqs_ok(src.field)) {
                        self.note(|| format!(">> unmet prerequisites for {src} or {dst}, move ignored"));
                        continue;
                    }
                    let v = (self.x.final_flow.get(src.field) >> src.ofs) & (src.mask() >> src.ofs);
                    self.x.wc.or_field(src.field, src.mask());
                    self.write(dst.field, v << dst.ofs, dst.mask());
                    let now = (self.x.final_flow.get(dst.field) & dst.mask()) >> dst.ofs;
                    self.note(|| {
                        let mut s = String::new();
                        if now == 0 {
                            s.push('0');
                        } else {
                            s = format!("{now:#x}");
                        }
                        format!("-> {dst} is now {s}")
                    });
                }
                Action::Load { value, dst } => self.load(*value, dst),
                Action::SetField { field, value, mask } => {
                    if self.prereqs_ok(*field) {
                        self.write(*field, *value, *mask);
                    } else {
                        self.note(|| format!(">> unmet prerequisites for {}, set_field ignored", field.name()));
                    }
                }
                Action::Note(_) => {}
                Action::Ct(ct) => self.ct(ct),
                Action::CtClear => self.clear_ct(),
                Action::Group(id) => self.group(*id),
                Action::Resubmit { port, table } => self.resubmit(*port, *table),
            }
        }
        None
    }

    /// `group:N`: the group's bucket(s), each as a clone of the packet (OVS:
    /// the flow rolls back after each bucket, so later actions see it as
    /// it was before the group). A select group picks one bucket by
    /// highest-random-weight over the flow's hash (the fields hashed are
    /// un-wildcarded).
    fn group(&mut self, id: u32) {
        let Some(g) = self.of.group(id).cloned() else {
            self.note(|| format!(">> group {id} does not exist"));
            return;
        };
        if self.group_depth >= MAX_GROUP_DEPTH {
            self.note(|| ">> group chain too deep; group skipped".into());
            return;
        }
        match g.kind {
            GroupType::All => {
                for (i, b) in g.buckets.iter().enumerate() {
                    self.bucket(i, b);
                }
            }
            GroupType::Indirect | GroupType::FastFailover => {
                // No liveness here: every port sdnfwd has is up, so a
                // fast-failover group's first bucket is its live one.
                if let Some(b) = g.buckets.first() {
                    self.bucket(0, b);
                }
            }
            GroupType::Select => {
                if let Some(i) = self.select_bucket(&g) {
                    self.bucket(i, &g.buckets[i]);
                }
            }
        }
    }

    /// A select group's bucket for this flow: weighted highest random
    /// weight (rendezvous hashing): each bucket scores `w / -ln(u)`, `u` a
    /// uniform draw from the bucket id hashed under the flow's hash, and the
    /// highest wins. A flow's bucket is stable, flows spread in proportion
    /// to the weights (as OVS's default dp_hash method spreads them), and
    /// removing a bucket moves only the flows it had.
    fn select_bucket(&mut self, g: &GroupSpec) -> Option<usize> {
        let basis = self.select_hash(g);
        let mut best: Option<(usize, f64)> = None;
        for (i, b) in g.buckets.iter().enumerate() {
            let weight = b.weight.unwrap_or(g.kind.default_weight());
            if weight == 0 {
                continue;
            }
            // A bucket is known by its id, or (OpenFlow 1.3 has none) by
            // what it does: removing one bucket renames no other.
            let id = match b.bucket_id {
                Some(id) => id as u64,
                None => b.actions.iter().fold(0x6b43_a9b5_u64, |h, a| mix64(h ^ text_hash(&a.to_string()))),
            };
            // u in (0, 1), from 53 bits of the hash.
            let u = ((mix32(id, basis) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let score = weight as f64 / -u.ln();
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((i, score));
            }
            self.note(|| format!("bucket {i}: score {score:.3}"));
        }
        best.map(|(i, _)| i)
    }

    /// The hash a select group chooses by: the fields its `fields(...)`
    /// name (with `selection_method=hash`), else OVS's default, the
    /// symmetric L4 fields (Ethernet addresses and type, IPv4 addresses,
    /// protocol, ports): the same for both directions of a connection.
    /// Every field hashed is un-wildcarded.
    fn select_hash(&mut self, g: &GroupSpec) -> u64 {
        let named: Vec<Field> =
            g.fields.iter().filter_map(|n| config::ofctl::lookup_match_field(n).map(|(f, _)| f)).collect();
        let mut h = 0u64;
        if !named.is_empty() && g.selection_method.as_deref() == Some("hash") {
            for f in named {
                self.x.wc.or_field(f, f.full_mask());
                h = mix64(h ^ self.x.final_flow.get(f));
            }
            return h;
        }
        let sym = |a: u64, b: u64| a ^ b;
        for f in [Field::DlSrc, Field::DlDst, Field::DlType] {
            self.x.wc.or_field(f, f.full_mask());
        }
        h = mix64(h ^ sym(self.x.final_flow.get(Field::DlSrc), self.x.final_flow.get(Field::DlDst)));
        h = mix64(h ^ self.x.final_flow.get(Field::DlType));
        if self.x.final_flow.get(Field::DlType) == config::ofctl::ETH_TYPE_IP {
            for f in [Field::NwSrc, Field::NwDst, Field::NwProto] {
                self.x.wc.or_field(f, f.full_mask());
            }
            h = mix64(h ^ sym(self.x.final_flow.get(Field::NwSrc), self.x.final_flow.get(Field::NwDst)));
            let proto = self.x.final_flow.get(Field::NwProto);
            h = mix64(h ^ proto);
            if [6, 17, 132].contains(&proto) {
                for f in [Field::TpSrc, Field::TpDst] {
                    self.x.wc.or_field(f, f.full_mask());
                }
                h = mix64(h ^ sym(self.x.final_flow.get(Field::TpSrc), self.x.final_flow.get(Field::TpDst)));
            }
        }
        h
    }

    /// One bucket's actions on a clone of the packet: as an action set
    /// (rewrites first, then groups, then outputs, as OVS orders one), the
    /// flow rolled back afterwards.
    fn bucket(&mut self, i: usize, b: &Bucket) {
        self.note(|| format!("bucket {i}"));
        let saved = (self.x.final_flow, self.written, self.dirty);
        let mut ordered: Vec<Action> = Vec::with_capacity(b.actions.len());
        let rank = |a: &Action| match a {
            Action::Output(_) | Action::OutputReg(_) => 2,
            Action::Group(_) => 1,
            _ => 0,
        };
        for r in 0..3 {
            ordered.extend(b.actions.iter().filter(|a| rank(a) == r).cloned());
        }
        self.group_depth += 1;
        // Buckets do not jump tables: a goto in one is ignored.
        let _ = self.run_actions(&ordered);
        self.group_depth -= 1;
        // The flow is as before the bucket; the datapath packet keeps what
        // the bucket rewrote, so those fields are written back before the
        // next output (a no-op rewrite where the bucket did not output).
        let after = self.x.final_flow;
        (self.x.final_flow, self.written, self.dirty) = saved;
        for f in PACKET_FIELDS {
            if after.get(f) != self.x.final_flow.get(f) {
                self.dirty.or_field(f, f.full_mask());
            }
        }
    }

    /// A trace's line for table `table`: the rule it hit, or no match
    /// (out of line: the pipeline loop without a trace stays small).
    #[cold]
    #[inline(never)]
    fn trace_table(&mut self, table: u8, rule: Option<&Rule>) {
        match rule {
            None => {
                self.line(format!("{table:>2}. No match."));
                self.line("    drop".into());
            }
            Some(rule) => {
                self.line(format!("{table:>2}. {}", rule.spec.to_trace_header()));
                if rule.spec.actions.is_empty() {
                    self.line("    drop".into());
                }
            }
        }
    }

    /// The tables from `table` on: each rule's actions until one ends
    /// without `goto_table`. The first lookup sees `in_port` when given
    /// (`resubmit(PORT,...)`; OVS substitutes it for that lookup alone).
    /// Returns why the pipeline dropped the packet, if it did.
    fn pipeline(&mut self, mut table: u8, in_port: Option<u32>) -> Option<PipelineDrop> {
        let of = self.of;
        let mut first = in_port;
        loop {
            let real = self.x.final_flow.get(Field::InPort);
            if let Some(p) = first.take() {
                self.x.final_flow.set(Field::InPort, p as u64);
            }
            let hit: Option<&Arc<Rule>> = of.lookup(table, &self.x.final_flow, &mut self.x.wc);
            self.x.final_flow.set(Field::InPort, real);
            let Some(rule) = hit else {
                if self.trace.is_some() {
                    self.trace_table(table, None);
                }
                return Some(PipelineDrop { table, kind: PipelineDropKind::NoMatch });
            };
            if self.trace.is_some() {
                self.trace_table(table, Some(rule));
            }
            self.x.rules.push((table, rule));
            self.table = table;
            let actions = &rule.spec.actions[..];
            if actions.is_empty() {
                return Some(PipelineDrop { table, kind: PipelineDropKind::Explicit });
            }
            // Most rules of these tables only load a register, output or go
            // on: those run here (no call into the action interpreter),
            // unless tracing; the interpreter takes the rest from the first
            // other action.
            let mut rest = actions;
            if self.trace.is_none() {
                let mut goto = None;
                while let [a, tail @ ..] = rest {
                    match a {
                        Action::GotoTable(t) => goto = Some(*t),
                        Action::Load { value, dst } => self.load(*value, dst),
                        Action::Output(p) => self.output_action(*p),
                        _ => break,
                    }
                    rest = tail;
                    if goto.is_some() {
                        break;
                    }
                }
                if let Some(t) = goto {
                    table = t;
                    continue;
                }
                if rest.is_empty() {
                    return None;
                }
            }
            match self.run(rest) {
                Some(next) => table = next,
                None => return None,
            }
        }
    }

    /// `resubmit(PORT,TABLE)`: the tables from `table` (this one when not
    /// given), the first lookup as if from `port`; then the actions after
    /// it go on.
    fn resubmit(&mut self, port: Option<u32>, table: Option<u8>) {
        if self.depth >= MAX_RESUBMIT_DEPTH {
            self.note(|| ">> resubmits nested too deep; resubmit skipped".into());
            return;
        }
        let (saved_table, start) = (self.table, table.unwrap_or(self.table));
        self.depth += 1;
        let _ = self.pipeline(start, port);
        self.depth -= 1;
        self.table = saved_table;
    }

    /// Whether the packet has field `f` (OVS's `mf_are_prereqs_ok` on a
    /// translated flow: IPv4 or ARP for the network fields, IPv4 for the
    /// IP-only ones, a transport protocol for the ports, ARP for its
    /// addresses, and a valid connection — `new`, `est` or `rpl` — for the
    /// connection's tuple); what it consults is un-wildcarded.
    fn prereqs_ok(&mut self, f: Field) -> bool {
        use config::ofctl::{cs, ETH_TYPE_ARP, ETH_TYPE_IP};
        let dl = |cx: &mut Self| {
            cx.x.wc.or_field(Field::DlType, Field::DlType.full_mask());
            cx.x.final_flow.get(Field::DlType)
        };
        match f {
            Field::NwSrc | Field::NwDst | Field::NwProto => matches!(dl(self), ETH_TYPE_IP | ETH_TYPE_ARP),
            Field::NwTos | Field::NwEcn | Field::NwTtl | Field::NwFrag => dl(self) == ETH_TYPE_IP,
            Field::ArpSha | Field::ArpTha => dl(self) == ETH_TYPE_ARP,
            Field::TpSrc | Field::TpDst => {
                if dl(self) != ETH_TYPE_IP {
                    return false;
                }
                self.x.wc.or_field(Field::NwProto, Field::NwProto.full_mask());
                matches!(self.x.final_flow.get(Field::NwProto), 1 | 6 | 17 | 132)
            }
            Field::CtNwSrc | Field::CtNwDst | Field::CtNwProto | Field::CtTpSrc | Field::CtTpDst => {
                let valid = cs::NEW | cs::EST | cs::RPL;
                self.x.wc.or_field(Field::CtState, valid);
                self.x.final_flow.get(Field::CtState) & valid != 0
            }
            _ => true,
        }
    }

    /// The value of subfield `sf`, its bits un-wildcarded.
    fn read_subfield(&mut self, sf: &config::ofctl::SubField) -> u64 {
        self.x.wc.or_field(sf.field, sf.mask());
        (self.x.final_flow.get(sf.field) >> sf.ofs) & (sf.mask() >> sf.ofs)
    }

    /// The packet goes on untracked: its ct fields read as zero.
    fn clear_ct(&mut self) {
        for f in CT_FIELDS {
            self.x.final_flow.set(f, 0);
            self.written.or_field(f, f.full_mask());
        }
    }

    /// `ct(...)`: the datapath `ct` action with its zone, NAT and the
    /// mark/label writes of `exec(...)`; with `table=N`, the translation is
    /// frozen there and the packet recirculates. Either way the packet goes
    /// on untracked (OVS: the rest of the actions see no ct fields).
    fn ct(&mut self, ct: &CtAction) {
        // Header writes reach the packet before the tracker sees it, and
        // the tracker treats fragments apart: the megaflow tells them.
        self.commit();
        self.x.wc.or_field(Field::NwFrag, Field::NwFrag.full_mask());
        let zone = match ct.zone {
            CtZone::Imm(z) => z,
            CtZone::Field(sf) => self.read_subfield(&sf) as u16,
        };
        let mut mark: Option<(u32, u32)> = None;
        let mut label: Option<(u128, u128)> = None;
        for a in &ct.exec {
            let (field, value, mask) = match a {
                Action::SetField { field, value, mask } => (*field, *value, *mask),
                Action::Load { value, dst } => (dst.field, value << dst.ofs, dst.mask()),
                Action::Move { src, dst } => (dst.field, self.read_subfield(src) << dst.ofs, dst.mask()),
                _ => continue,
            };
            match field {
                Field::CtMark => {
                    let (v, m) = mark.unwrap_or((0, 0));
                    let (value, mask) = (value as u32, mask as u32);
                    mark = Some(((v & !mask) | (value & mask), m | mask));
                }
                Field::CtLabelLo | Field::CtLabelHi => {
                    let shift = if field == Field::CtLabelHi { 64 } else { 0 };
                    let (value, mask) = ((value as u128) << shift, (mask as u128) << shift);
                    let (v, m) = label.unwrap_or((0, 0));
                    label = Some(((v & !mask) | (value & mask), m | mask));
                }
                _ => {}
            }
        }
        let nat = ct.nat.map(|n| {
            let (a0, a1) = n.addrs.unwrap_or((0, 0));
            let (p0, p1) = n.ports.unwrap_or((0, 0));
            let r = NatRange {
                addr_min: a0,
                addr_max: a1,
                port_min: p0,
                port_max: p1,
                random: n.random,
                hash: n.hash,
                persistent: n.persistent,
            };
            match n.kind {
                None => NatRequest::Reverse,
                Some(NatKind::Src) => NatRequest::Src(r),
                Some(NatKind::Dst) => NatRequest::Dst(r),
            }
        });
        // A packet from the host: its translation there is adopted (the
        // datapath's action differs by in_port, so the megaflow matches it).
        let from_host = match self.of.host_port {
            Some(p) => {
                self.x.wc.or_field(Field::InPort, Field::InPort.full_mask());
                self.x.final_flow.get(Field::InPort) == p as u64
            }
            None => false,
        };
        let params =
            CtRequest { zone, commit: ct.commit, force: ct.force, nat, set_mark: mark, set_label: label, from_host };
        self.x.actions.push(DpAction::Ct(Arc::new(params)));
        if let Some(table) = ct.table {
            let frozen = Frozen::of(&self.x.final_flow, table);
            let id = self.of.recirc.lock().unwrap_or_else(|p| p.into_inner()).freeze(frozen);
            self.x.actions.push(DpAction::Recirc(id));
            self.x.recirc = Some(Recirculation { id, zone, flow: self.x.final_flow, nat });
            if self.trace.is_some() {
                self.ct_notes.push(format!(
                    "-> A clone of the packet is forked to recirculate. The forked pipeline will be resumed at table {table}."
                ));
            }
        }
        if self.trace.is_some() {
            self.ct_notes.push("-> Sets the packet to an untracked state, and clears all the conntrack fields.".into());
        }
        self.clear_ct();
    }

    fn write(&mut self, f: Field, v: u64, mask: u64) {
        self.x.final_flow.set_masked(f, v, mask);
        self.written.or_field(f, mask);
        if PACKET_FIELDS.contains(&f) {
            self.dirty.or_field(f, mask);
        }
    }
}

/// Translates `flow` through the tables from table 0. With a trace, records
/// each table, rule and action in ofproto/trace's layout.
pub fn xlate(of: &Ofproto, flow: &OfFlow, trace: Option<&mut dyn TraceSink>) -> Xlate {
    let x = xlate_borrowed(of, flow, trace);
    let rules = x.rules.iter().map(|&(table, rule)| RuleRef { table, rule: rule.clone() }).collect();
    Xlate {
        actions: x.actions,
        outputs: x.outputs,
        wc: x.wc,
        rules,
        drop: x.drop,
        final_flow: x.final_flow,
        recirc: x.recirc,
    }
}

/// [`xlate`] with the rules hit borrowed from the tables: no reference
/// count is taken (the slow path keeps one shared list per path instead).
pub fn xlate_borrowed<'a>(of: &'a Ofproto, flow: &OfFlow, trace: Option<&mut dyn TraceSink>) -> Xlate<RuleHit<'a>> {
    let mut cx = Ctx::new(of, trace);
    cx.translate(flow);
    cx.x
}

/// Translations one after another without a trace (the slow path's
/// upcalls): one translation context, reset for each flow, whose result is
/// read where it was built. A context made and its result moved out for
/// each translation would write and copy about 2 KB an upcall, and a copy
/// right after the writes waits for them.
pub struct Translator<'a> {
    cx: Ctx<'a, 'static>,
}

impl<'a> Translator<'a> {
    /// A translator over these tables.
    pub fn new(of: &'a Ofproto) -> Translator<'a> {
        Translator { cx: Ctx::new(of, None) }
    }

    /// Translates `flow` (as [`xlate_borrowed`] without a trace); the
    /// result stays valid until the next call.
    pub fn run(&mut self, flow: &OfFlow) -> &mut Xlate<RuleHit<'a>> {
        self.cx.reset();
        self.cx.translate(flow);
        &mut self.cx.x
    }
}

impl<'a, 't> Ctx<'a, 't> {
    fn new(of: &'a Ofproto, trace: Option<&'t mut dyn TraceSink>) -> Ctx<'a, 't> {
        Ctx {
            of,
            x: Xlate {
                actions: SmallVec::new(),
                outputs: SmallVec::new(),
                wc: OfFlow::default(),
                rules: SmallVec::new(),
                drop: None,
                final_flow: OfFlow::default(),
                recirc: None,
            },
            table: 0,
            depth: 0,
            written: OfFlow::default(),
            dirty: OfFlow::default(),
            in_port: 0,
            trace,
            ct_notes: Vec::new(),
            group_depth: 0,
        }
    }

    /// Back to the state [`Ctx::new`] made (the trace kept), field by
    /// field: rebuilding the whole context costs ~90 instructions an upcall
    /// more. `tests/megaflow.rs` checks that a reset context translates as
    /// a new one does.
    fn reset(&mut self) {
        let x = &mut self.x;
        x.actions.clear();
        x.outputs.clear();
        x.wc = OfFlow::default();
        x.rules.clear();
        x.drop = None;
        x.recirc = None;
        self.table = 0;
        self.depth = 0;
        self.written = OfFlow::default();
        self.dirty = OfFlow::default();
        self.ct_notes.clear();
        self.group_depth = 0;
    }

    /// Translates `flow` from table 0 (or where its recirculation id
    /// froze it) into `self.x`, which must be as [`Ctx::new`] made it.
    fn translate(&mut self, flow: &OfFlow) {
        self.x.final_flow = *flow;
        self.in_port = flow.get(Field::InPort) as u32;
        // The datapath classifies per input port, and each pass by its
        // recirculation id: both always exact.
        self.x.wc.or_field(Field::InPort, Field::InPort.full_mask());
        self.x.wc.set_recirc_id(u32::MAX);
        let mut table = 0u8;
        let rid = flow.recirc_id();
        if rid != 0 {
            let frozen = self.of.recirc.lock().unwrap_or_else(|p| p.into_inner()).thaw(rid);
            let Some(frozen) = frozen else {
                if let Some(t) = self.trace.as_deref_mut() {
                    t.line(format!("    thaw: no frozen state for recirc_id {rid:#x}"));
                    t.line("    drop".into());
                }
                self.x.drop = Some(PipelineDrop { table: 0, kind: PipelineDropKind::UnknownRecirc });
                return;
            };
            frozen.thaw_into(&mut self.x.final_flow);
            self.in_port = frozen.in_port;
            table = frozen.table;
            if let Some(t) = self.trace.as_deref_mut() {
                t.line("    thaw".into());
                t.line(format!("        Resuming from table {table}"));
            }
        }
        let mut drop = self.pipeline(table, None);
        let table = self.table;
        // A packet that recirculates goes on; its drop, if any, is a later
        // pass's.
        if self.x.outputs.is_empty() && self.x.recirc.is_none() && drop.is_none() {
            drop = Some(PipelineDrop { table, kind: PipelineDropKind::NoOutput });
        } else if !self.x.outputs.is_empty() || self.x.recirc.is_some() {
            drop = None;
        }
        self.x.drop = drop;
    }
}
