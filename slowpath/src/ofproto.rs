//! OpenFlow tables: one priority classifier per table, ovs-ofctl's add /
//! modify / delete semantics (strict and not, cookie masks, `out_port` and
//! `out_group` filters, `check_overlap`, `reset_counts`), per-rule counters,
//! flow timeouts and a version that every change bumps (caches built on an
//! older version are revalidated).
//!
//! Rules are `Arc`s so that megaflows and traces can keep the rules they came
//! from; counters are atomics credited from megaflow statistics, and so is
//! the time a rule last saw a packet (what an idle timeout counts from).
//!
//! [`Ofproto::apply`] is a transaction: every change it makes is journaled
//! and undone if a later command is refused, so a refused batch leaves the
//! tables as they were (the same rules, the same `Arc`s). Changes to flows
//! are reported as [`FlowEvent`]s to subscribers ([`Ofproto::subscribe`]:
//! the OpenFlow listener's FLOW_REMOVED and flow monitors) once the
//! transaction is committed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use config::ofctl::{ff, Action, FlowCommand, FlowSpec, GroupCommand, GroupSpec};
use crossbeam_channel::{Receiver, Sender};

use crate::classifier::{Classifier, EntryId};
use crate::flow::OfFlow;
use crate::recirc::Recirc;

/// OpenFlow port of vxlan0 on a node's bridge.
pub const VXLAN_PORT: u32 = 1;
/// tun0's OpenFlow port on an OpenShift SDN bridge.
pub const TUN0_PORT: u32 = 2;

/// Number of OpenFlow tables (0..=254).
pub const N_TABLES: usize = 255;

/// The tables' clock: a rule's last use is kept as nanoseconds since this
/// instant (the first time anything read it), in an atomic.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn ns_since_epoch(t: Instant) -> u64 {
    t.saturating_duration_since(epoch()).as_nanos() as u64
}

/// An installed OpenFlow rule.
#[derive(Debug)]
pub struct Rule {
    /// The flow as written (match, actions, cookie, priority, table,
    /// timeouts, flags).
    pub spec: FlowSpec,
    /// Insertion sequence (dump order within a table).
    pub seq: u64,
    /// When it was installed (a modify keeps it; an add that replaces an
    /// identical flow does not, as in Open vSwitch).
    pub created: Instant,
    /// When it was installed or last modified: its hard timeout counts from
    /// here (Open vSwitch's `modified`).
    pub modified: Instant,
    /// Packets credited to the rule.
    pub n_packets: AtomicU64,
    /// Bytes credited to the rule.
    pub n_bytes: AtomicU64,
    /// When a packet was last credited (nanoseconds on the tables' clock;
    /// initially when it was installed): its idle timeout counts from here.
    /// Written by whoever credits (the slow path).
    used: AtomicU64,
}

impl Rule {
    fn new(spec: FlowSpec, seq: u64, now: Instant) -> Rule {
        Rule {
            spec,
            seq,
            created: now,
            modified: now,
            n_packets: AtomicU64::new(0),
            n_bytes: AtomicU64::new(0),
            used: AtomicU64::new(ns_since_epoch(now)),
        }
    }

    /// Credits packets and bytes (a packet marks the rule used now).
    pub fn credit(&self, packets: u64, bytes: u64) {
        self.n_packets.fetch_add(packets, Ordering::Relaxed);
        self.n_bytes.fetch_add(bytes, Ordering::Relaxed);
        if packets > 0 {
            self.used.store(ns_since_epoch(Instant::now()), Ordering::Relaxed);
        }
    }

    /// When the rule last saw a packet (when it was installed if never).
    pub fn used(&self) -> Instant {
        epoch() + Duration::from_nanos(self.used.load(Ordering::Relaxed))
    }

    /// (packets, bytes).
    pub fn counters(&self) -> (u64, u64) {
        (self.n_packets.load(Ordering::Relaxed), self.n_bytes.load(Ordering::Relaxed))
    }

    /// Why the rule has expired at `now`, if it has: the hard timeout
    /// first, as Open vSwitch checks them.
    pub fn expired(&self, now: Instant) -> Option<RemovedReason> {
        let s = &self.spec;
        if s.hard_timeout != 0 && now > self.modified + Duration::from_secs(s.hard_timeout as u64) {
            return Some(RemovedReason::HardTimeout);
        }
        if s.idle_timeout != 0 && now > self.used() + Duration::from_secs(s.idle_timeout as u64) {
            return Some(RemovedReason::IdleTimeout);
        }
        None
    }

    /// A copy with another spec and the same counters and times.
    fn with_spec(&self, spec: FlowSpec) -> Rule {
        Rule {
            spec,
            seq: self.seq,
            created: self.created,
            modified: self.modified,
            n_packets: AtomicU64::new(self.n_packets.load(Ordering::Relaxed)),
            n_bytes: AtomicU64::new(self.n_bytes.load(Ordering::Relaxed)),
            used: AtomicU64::new(self.used.load(Ordering::Relaxed)),
        }
    }

    /// The dump-flows line with live counters.
    pub fn to_dump_line(&self) -> String {
        let (n_packets, n_bytes) = self.counters();
        self.spec.to_dump_line(Some(config::ofctl::FlowStats {
            duration_secs: self.created.elapsed().as_secs_f64(),
            n_packets,
            n_bytes,
        }))
    }

    /// Whether the rule's actions output to `port` (an `out_port` filter,
    /// as Open vSwitch's `ofpacts_output_to_port`).
    pub fn outputs_to(&self, port: u32) -> bool {
        self.spec.actions.iter().any(|a| matches!(a, Action::Output(p) if *p == port))
    }

    /// Whether the rule's actions name group `g` (an `out_group` filter).
    pub fn names_group(&self, g: u32) -> bool {
        self.spec.actions.iter().any(|a| matches!(a, Action::Group(x) if *x == g))
    }
}

/// Why a rule went (OpenFlow's `ofp_flow_removed_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovedReason {
    /// Its idle timeout passed with no packet.
    IdleTimeout,
    /// Its hard timeout passed.
    HardTimeout,
    /// A delete removed it.
    Delete,
    /// A group it names was deleted.
    GroupDelete,
}

impl RemovedReason {
    /// The `OFPRR_*` code.
    pub fn code(self) -> u8 {
        match self {
            RemovedReason::IdleTimeout => 0,
            RemovedReason::HardTimeout => 1,
            RemovedReason::Delete => 2,
            RemovedReason::GroupDelete => 3,
        }
    }
}

/// A change to the flows, as subscribers see it once it is committed.
#[derive(Clone, Debug)]
pub enum FlowEvent {
    /// A flow was added (or replaced an identical one).
    Added {
        /// The new rule.
        rule: Arc<Rule>,
        /// Who asked ([`Ofproto::origin`]).
        origin: u64,
    },
    /// A modify changed a flow's actions.
    Modified {
        /// The rule as it is now.
        rule: Arc<Rule>,
        /// Who asked.
        origin: u64,
    },
    /// A flow went.
    Removed {
        /// The rule as it was.
        rule: Arc<Rule>,
        /// Why.
        reason: RemovedReason,
        /// Who asked (0 for a timeout).
        origin: u64,
    },
}

/// A reference to a rule that was hit.
#[derive(Clone, Debug)]
pub struct RuleRef {
    /// Table.
    pub table: u8,
    /// The rule.
    pub rule: Arc<Rule>,
}

/// Why a flow or group modification was refused: what kind of refusal
/// (the OpenFlow error a switch owes for it) and why, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowModError {
    /// The kind of refusal.
    pub kind: FlowModErrorKind,
    /// What was wrong.
    pub why: String,
}

/// The kinds of [`FlowModError`], as Open vSwitch tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowModErrorKind {
    /// The command is invalid for the tables (a `goto_table` that does not
    /// go forward from a matched flow's table), or the node could not be
    /// reached.
    Invalid,
    /// A `group:N` action (of a flow, or of a bucket) names a group that
    /// does not exist (OVS: `OFPBAC_BAD_OUT_GROUP` for a flow).
    MissingGroup,
    /// `add-group` of an id that exists (`OFPGMFC_GROUP_EXISTS`).
    GroupExists,
    /// `mod-group` of an id that does not exist (`OFPGMFC_UNKNOWN_GROUP`).
    UnknownGroup,
    /// An add with `check_overlap` that overlaps a flow of the same
    /// priority (`OFPFMFC_OVERLAP`).
    Overlap,
    /// A change to a table that cannot be written (table 254, Open
    /// vSwitch's hidden one: `OFPBRC_EPERM`).
    ReadOnlyTable,
}

impl FlowModError {
    /// A refusal of `kind`.
    pub fn new(kind: FlowModErrorKind, why: impl Into<String>) -> FlowModError {
        FlowModError { kind, why: why.into() }
    }

    /// An [`FlowModErrorKind::Invalid`] refusal.
    pub fn invalid(why: impl Into<String>) -> FlowModError {
        FlowModError::new(FlowModErrorKind::Invalid, why)
    }
}

impl std::fmt::Display for FlowModError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

impl std::error::Error for FlowModError {}

/// A group and what `dump-group-stats` reports of it
/// ([`Ofproto::group_stats`]).
#[derive(Clone, Debug)]
pub struct GroupStats {
    /// The group.
    pub spec: Arc<GroupSpec>,
    /// When it was added.
    pub created: Instant,
    /// How many `group:N` actions of flows name it.
    pub ref_count: u32,
    /// Packets of the flows that name it.
    pub n_packets: u64,
    /// Bytes of the flows that name it.
    pub n_bytes: u64,
}

/// A change [`Ofproto::apply`] can undo.
#[derive(Debug)]
enum Undo {
    /// A rule was inserted (found again by its match).
    Inserted { table: usize, value: OfFlow, mask: OfFlow, priority: u16 },
    /// A rule was removed.
    Removed { table: usize, value: OfFlow, mask: OfFlow, priority: u16, rule: Arc<Rule> },
    /// A rule was replaced in place (a modify).
    Replaced { table: usize, value: OfFlow, mask: OfFlow, priority: u16, old: Arc<Rule> },
    /// The groups before a group command.
    Groups(BTreeMap<u32, Arc<GroupSpec>>, BTreeMap<u32, Instant>),
}

/// The OpenFlow tables of a bridge.
#[derive(Debug)]
pub struct Ofproto {
    tables: Vec<Classifier<Arc<Rule>>>,
    version: u64,
    seq: u64,
    /// OpenFlow ports that exist (None: every port exists, for traces of a
    /// bare flow file).
    pub ports: Option<BTreeSet<u32>>,
    /// Frozen translations by recirculation id (written by translations,
    /// which take the tables shared).
    pub recirc: Mutex<Recirc>,
    /// The OpenFlow port that is the VXLAN tunnel (vxlan0, port 1; `None`
    /// for a bridge of plain ports, as `sdnfwd ct-replay` runs).
    pub vxlan_port: Option<u32>,
    /// The port whose packets come from the host (tun0), whose tracker may
    /// have translated them: a `ct` of such a packet is marked
    /// [`fastpath::conntrack::CtRequest::from_host`], so that the datapath
    /// adopts the host's translation (`sdnfwd run` sets it; `None`: no
    /// such port, as in traces and benchmarks).
    pub host_port: Option<u32>,
    /// Groups by id.
    groups: BTreeMap<u32, Arc<GroupSpec>>,
    /// When each group was added (a modify keeps it, as in OVS).
    group_created: BTreeMap<u32, Instant>,
    /// Who the changes being made are for (an OpenFlow connection's id, 0
    /// for anyone else): carried by their [`FlowEvent`]s. Set by the
    /// caller of [`Ofproto::apply_from`].
    origin: u64,
    /// The open transaction's journal (`None` outside [`Ofproto::apply`]).
    journal: Option<Vec<Undo>>,
    /// Events of the open transaction, sent when it commits.
    pending: Vec<FlowEvent>,
    /// Where committed events go (a closed receiver is dropped).
    subscribers: Vec<Sender<FlowEvent>>,
    /// Rules with a timeout (what [`Ofproto::expire`] scans for).
    n_timed: usize,
}

impl Default for Ofproto {
    fn default() -> Self {
        Ofproto {
            tables: (0..N_TABLES).map(|_| Classifier::default()).collect(),
            version: 0,
            seq: 0,
            ports: None,
            recirc: Mutex::default(),
            vxlan_port: Some(VXLAN_PORT),
            host_port: None,
            groups: BTreeMap::new(),
            group_created: BTreeMap::new(),
            origin: 0,
            journal: None,
            pending: Vec::new(),
            subscribers: Vec::new(),
            n_timed: 0,
        }
    }
}

fn cookie_ok(rule: &FlowSpec, pat: &FlowSpec) -> bool {
    rule.cookie & pat.cookie_mask == pat.cookie & pat.cookie_mask
}

impl Ofproto {
    /// Empty tables.
    pub fn new() -> Ofproto {
        Ofproto::default()
    }

    /// Tables holding `flows` (added in order).
    ///
    /// # Errors
    /// The first invalid flow.
    pub fn with_flows<'a>(flows: impl IntoIterator<Item = &'a FlowSpec>) -> Result<Ofproto, FlowModError> {
        let mut o = Ofproto::new();
        for f in flows {
            o.add_flow(f.clone())?;
        }
        Ok(o)
    }

    /// Whether any flow has a timeout (then [`Ofproto::expire`] has work).
    pub fn has_timeouts(&self) -> bool {
        self.n_timed > 0
    }

    /// Bumped on every change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Bumps the version without a flow change (the ports changed), so
    /// that megaflows are revalidated.
    pub fn touch(&mut self) {
        self.version += 1;
    }

    /// Number of rules in all tables.
    pub fn n_rules(&self) -> usize {
        self.tables.iter().map(Classifier::len).sum()
    }

    /// Whether an output to `port` reaches an existing port.
    pub fn port_exists(&self, port: u32) -> bool {
        self.ports.as_ref().is_none_or(|p| p.contains(&port))
    }

    /// Group `id`.
    pub fn group(&self, id: u32) -> Option<&Arc<GroupSpec>> {
        self.groups.get(&id)
    }

    /// Every group, by id.
    pub fn groups(&self) -> impl Iterator<Item = &Arc<GroupSpec>> {
        self.groups.values()
    }

    /// Every group with its statistics, by id. sdnfwd keeps no counters
    /// per group: a group's packets and bytes are those of the flows whose
    /// actions name it (once per `group:N` action, as Open vSwitch credits
    /// a group each time a packet executes it). Packets that reach a group
    /// only from another group's bucket are not counted, and which bucket
    /// a packet took is not known.
    pub fn group_stats(&self) -> Vec<GroupStats> {
        let mut refs: BTreeMap<u32, (u32, u64, u64)> = BTreeMap::new();
        for t in &self.tables {
            for (_, e) in t.iter() {
                let r = &e.data;
                for g in Self::groups_named(&r.spec) {
                    let c = refs.entry(g).or_default();
                    let (p, b) = r.counters();
                    c.0 += 1;
                    c.1 += p;
                    c.2 += b;
                }
            }
        }
        self.groups
            .values()
            .map(|g| {
                let (ref_count, n_packets, n_bytes) = refs.get(&g.group_id).copied().unwrap_or_default();
                GroupStats {
                    spec: g.clone(),
                    created: self.group_created.get(&g.group_id).copied().unwrap_or_else(Instant::now),
                    ref_count,
                    n_packets,
                    n_bytes,
                }
            })
            .collect()
    }

    /// The groups a flow's actions name.
    fn groups_named(spec: &FlowSpec) -> impl Iterator<Item = u32> + '_ {
        spec.actions.iter().filter_map(|a| match a {
            Action::Group(g) => Some(*g),
            _ => None,
        })
    }

    /// Checks that every group a flow names exists (OVS refuses the flow
    /// with OFPBAC_BAD_OUT_GROUP otherwise).
    fn check_groups(&self, spec: &FlowSpec, exists: impl Fn(u32) -> bool) -> Result<(), FlowModError> {
        match Self::groups_named(spec).find(|g| !exists(*g)) {
            Some(g) => Err(FlowModError::new(
                FlowModErrorKind::MissingGroup,
                format!("table {}: group:{g} names a group that does not exist", spec.table),
            )),
            None => Ok(()),
        }
    }

    /// Adds, replaces or deletes groups as `ovs-ofctl add-group`,
    /// `mod-group` and `del-groups` do: adding an existing id or modifying
    /// a missing one is an error; deleting a group deletes the flows that
    /// name it (as OVS does); deleting a missing one is not an error.
    ///
    /// # Errors
    /// The refusals above, with nothing changed.
    pub fn apply_group(&mut self, cmd: &GroupCommand) -> Result<(), FlowModError> {
        match cmd {
            GroupCommand::Add(g) => {
                if self.groups.contains_key(&g.group_id) {
                    return Err(FlowModError::new(
                        FlowModErrorKind::GroupExists,
                        format!("group {} exists", g.group_id),
                    ));
                }
                self.check_bucket_groups(g, |id| self.groups.contains_key(&id))?;
                self.journal_groups();
                self.groups.insert(g.group_id, Arc::new(g.clone()));
                self.group_created.insert(g.group_id, Instant::now());
            }
            GroupCommand::Modify(g) => {
                if !self.groups.contains_key(&g.group_id) {
                    return Err(FlowModError::new(FlowModErrorKind::UnknownGroup, format!("no group {}", g.group_id)));
                }
                self.check_bucket_groups(g, |id| self.groups.contains_key(&id))?;
                self.journal_groups();
                self.groups.insert(g.group_id, Arc::new(g.clone()));
            }
            GroupCommand::Delete(id) => {
                self.journal_groups();
                let gone: Vec<u32> = match id {
                    Some(id) => self.groups.remove(id).map(|g| g.group_id).into_iter().collect(),
                    None => std::mem::take(&mut self.groups).into_keys().collect(),
                };
                for id in &gone {
                    self.group_created.remove(id);
                }
                self.delete_flows_naming(&gone);
            }
        }
        self.version += 1;
        Ok(())
    }

    fn journal_groups(&mut self) {
        if let Some(j) = &mut self.journal {
            j.push(Undo::Groups(self.groups.clone(), self.group_created.clone()));
        }
    }

    /// Buckets may name other groups (chained groups): those must exist.
    fn check_bucket_groups(&self, g: &GroupSpec, exists: impl Fn(u32) -> bool) -> Result<(), FlowModError> {
        for b in &g.buckets {
            for a in &b.actions {
                if let Action::Group(id) = a {
                    if !exists(*id) && *id != g.group_id {
                        return Err(FlowModError::new(
                            FlowModErrorKind::MissingGroup,
                            format!("group {}: bucket names group {id}, which does not exist", g.group_id),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes the rules whose actions name any of `groups`.
    fn delete_flows_naming(&mut self, groups: &[u32]) {
        if groups.is_empty() {
            return;
        }
        for t in 0..N_TABLES {
            let hits: Vec<EntryId> = self.tables[t]
                .iter()
                .filter(|(_, e)| Self::groups_named(&e.data.spec).any(|g| groups.contains(&g)))
                .map(|(id, _)| id)
                .collect();
            for id in hits {
                self.remove_rule(t, id, RemovedReason::GroupDelete);
            }
        }
    }

    /// Checks what OVS checks before accepting a flow: a `goto_table` goes
    /// forward, and table 254 (Open vSwitch's hidden table) is not written.
    pub fn validate(spec: &FlowSpec) -> Result<(), FlowModError> {
        if spec.table as usize >= N_TABLES - 1 {
            return Err(FlowModError::new(
                FlowModErrorKind::ReadOnlyTable,
                format!("table {} cannot be written (tables 0..253)", spec.table),
            ));
        }
        for a in &spec.actions {
            if let config::ofctl::Action::GotoTable(t) = a {
                if *t <= spec.table {
                    return Err(FlowModError::invalid(format!(
                        "table {}: goto_table:{} must go to a later table",
                        spec.table, t
                    )));
                }
            }
        }
        Ok(())
    }

    /// Removes rule `id` of `table`, journaled, reporting `reason`.
    fn remove_rule(&mut self, table: usize, id: EntryId, reason: RemovedReason) {
        let Some(e) = self.tables[table].remove(id) else { return };
        if e.data.spec.idle_timeout != 0 || e.data.spec.hard_timeout != 0 {
            self.n_timed -= 1;
        }
        self.event(FlowEvent::Removed { rule: e.data.clone(), reason, origin: self.origin });
        if let Some(j) = &mut self.journal {
            j.push(Undo::Removed { table, value: e.value, mask: e.mask, priority: e.priority, rule: e.data });
        }
    }

    /// Inserts a rule, journaled.
    fn insert_rule(&mut self, table: usize, value: OfFlow, mask: OfFlow, rule: Arc<Rule>) {
        let priority = rule.spec.priority;
        if rule.spec.idle_timeout != 0 || rule.spec.hard_timeout != 0 {
            self.n_timed += 1;
        }
        self.tables[table].insert(value, mask, priority, rule);
        if let Some(j) = &mut self.journal {
            j.push(Undo::Inserted { table, value: value.masked(&mask), mask, priority });
        }
    }

    /// Records an event for the subscribers (sent when the change commits).
    fn event(&mut self, e: FlowEvent) {
        if !self.subscribers.is_empty() {
            self.pending.push(e);
        }
    }

    /// Adds a flow; an existing flow with the same table, priority and match
    /// is replaced. As in Open vSwitch the replacement keeps the old flow's
    /// counters unless it says `reset_counts` (an OpenFlow 1.0 add always
    /// does), and starts its age anew. With `check_overlap`, a flow of the
    /// same priority that some packet could match as well refuses it.
    ///
    /// # Errors
    /// [`Ofproto::validate`], a group that does not exist, an overlap.
    pub fn add_flow(&mut self, spec: FlowSpec) -> Result<(), FlowModError> {
        Self::validate(&spec)?;
        self.check_groups(&spec, |g| self.groups.contains_key(&g))?;
        let (v, m) = OfFlow::from_match(&spec.m);
        let table = spec.table as usize;
        let old = self.tables[table].find_exact(&v, &m, spec.priority);
        if old.is_none() && spec.flags & ff::CHECK_OVERLAP != 0 {
            let vm = v.masked(&m);
            let hit = self.tables[table].iter().find(|(_, e)| {
                e.priority == spec.priority && {
                    let both = e.mask.masked(&m);
                    e.value.masked(&both) == vm.masked(&both)
                }
            });
            if let Some((_, e)) = hit {
                return Err(FlowModError::new(
                    FlowModErrorKind::Overlap,
                    format!("overlaps `{}`", e.data.spec.to_dump_line(None).trim_start()),
                ));
            }
        }
        self.seq += 1;
        let now = Instant::now();
        let reset = spec.flags & ff::RESET_COUNTS != 0;
        // The flow keeps its flags, as Open vSwitch's rule does
        // (OFPUTIL_FF_STATE is all five), and dumps show them.
        let rule = Rule::new(spec, self.seq, now);
        if let Some(id) = old {
            let prev = self.tables[table].get(id).map(|e| e.data.clone()).expect("found rule exists");
            if !reset {
                let (p, b) = prev.counters();
                rule.n_packets.store(p, Ordering::Relaxed);
                rule.n_bytes.store(b, Ordering::Relaxed);
                rule.used.store(prev.used.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            // Replaced: no removal is reported (Open vSwitch reports the
            // new flow as added).
            let subs = std::mem::take(&mut self.subscribers);
            self.remove_rule(table, id, RemovedReason::Delete);
            self.subscribers = subs;
        }
        let rule = Arc::new(rule);
        self.event(FlowEvent::Added { rule: rule.clone(), origin: self.origin });
        self.insert_rule(table, v, m, rule);
        self.version += 1;
        Ok(())
    }

    /// The rules a modify or delete pattern names. Strict: the one rule of
    /// each table with exactly this match and priority, found by hash (as
    /// `add_flow` finds the rule it replaces), so that a bundle of N strict
    /// deletes (what `replace-flows` sends) costs O(N), not O(N²).
    /// Non-strict: every rule at least as specific, by a scan. Either way
    /// the cookie and, for a delete, `out_port` and `out_group` filter.
    fn matching(&self, pat: &FlowSpec, strict: bool) -> Vec<(usize, EntryId)> {
        let tables: Vec<usize> = if pat.table_given { vec![pat.table as usize] } else { (0..N_TABLES).collect() };
        let selects = |r: &Rule| {
            cookie_ok(&r.spec, pat)
                && pat.out_port.is_none_or(|p| r.outputs_to(p))
                && pat.out_group.is_none_or(|g| r.names_group(g))
        };
        let mut out = Vec::new();
        if strict {
            let (v, m) = OfFlow::from_match(&pat.m);
            for t in tables {
                if let Some(id) = self.tables[t].find_exact(&v, &m, pat.priority) {
                    if self.tables[t].get(id).is_some_and(|e| selects(&e.data)) {
                        out.push((t, id));
                    }
                }
            }
            return out;
        }
        for t in tables {
            for (id, e) in self.tables[t].iter() {
                if e.data.spec.m.is_within(&pat.m) && selects(&e.data) {
                    out.push((t, id));
                }
            }
        }
        out
    }

    /// Deletes matching flows (non-strict: every flow at least as specific
    /// as the pattern, in every table unless `table=` was given; only those
    /// with an output to `out_port` and naming `out_group` when given).
    /// Returns how many were removed.
    pub fn delete_flows(&mut self, pat: &FlowSpec, strict: bool) -> usize {
        let hits = self.matching(pat, strict);
        for &(t, id) in &hits {
            self.remove_rule(t, id, RemovedReason::Delete);
        }
        if !hits.is_empty() {
            self.version += 1;
        }
        hits.len()
    }

    /// Replaces the actions of matching flows (counters kept unless the
    /// command says `reset_counts`; timeouts, flags and age kept, as Open
    /// vSwitch keeps them). Returns how many were modified. `out_port` and
    /// `out_group` do not filter a modify (Open vSwitch ignores them).
    ///
    /// # Errors
    /// When the new actions are invalid for a matched flow's table.
    pub fn modify_flows(&mut self, pat: &FlowSpec, strict: bool) -> Result<usize, FlowModError> {
        let pat_nf = FlowSpec { out_port: None, out_group: None, ..pat.clone() };
        let hits = self.matching(&pat_nf, strict);
        for &(t, _) in &hits {
            Self::validate(&FlowSpec { table: t as u8, ..pat.clone() })?;
        }
        self.check_groups(pat, |g| self.groups.contains_key(&g))?;
        let now = Instant::now();
        for &(t, id) in &hits {
            let e = self.tables[t].get_mut(id).expect("matched rule exists");
            let old = e.data.clone();
            let mut spec = old.spec.clone();
            spec.actions = pat.actions.clone();
            let mut rule = old.with_spec(spec);
            rule.modified = now;
            if pat.flags & ff::RESET_COUNTS != 0 {
                rule.n_packets.store(0, Ordering::Relaxed);
                rule.n_bytes.store(0, Ordering::Relaxed);
            }
            let rule = Arc::new(rule);
            e.data = rule.clone();
            let (value, mask, priority) = (e.value, e.mask, e.priority);
            if let Some(j) = &mut self.journal {
                j.push(Undo::Replaced { table: t, value, mask, priority, old: old.clone() });
            }
            if old.spec.actions != rule.spec.actions {
                self.event(FlowEvent::Modified { rule, origin: self.origin });
            }
        }
        if !hits.is_empty() {
            self.version += 1;
        }
        Ok(hits.len())
    }

    /// Applies commands as one transaction: a command that is refused
    /// undoes every change the ones before it made, so the tables are as
    /// they were (the same rules, counters and ages).
    ///
    /// # Errors
    /// The first refused command's (as "command N: why").
    pub fn apply(&mut self, cmds: &[FlowCommand]) -> Result<(), FlowModError> {
        self.apply_from(cmds, 0).map_err(|(i, e)| FlowModError::new(e.kind, format!("command {}: {}", i + 1, e.why)))
    }

    /// [`Ofproto::apply`] for `origin` (an OpenFlow connection's id, which
    /// its events carry); a refusal names the index of the refused command.
    ///
    /// # Errors
    /// The first refused command's index and why, nothing changed.
    pub fn apply_from(&mut self, cmds: &[FlowCommand], origin: u64) -> Result<(), (usize, FlowModError)> {
        let (version, seq, n_timed) = (self.version, self.seq, self.n_timed);
        self.origin = origin;
        self.journal = Some(Vec::new());
        self.pending.clear();
        let mut result = Ok(());
        for (i, c) in cmds.iter().enumerate() {
            let r = match c {
                FlowCommand::Add(s) => self.add_flow(s.clone()),
                FlowCommand::Modify { strict, spec } => self.modify_flows(spec, *strict).map(|_| ()),
                FlowCommand::Delete { strict, spec } => {
                    self.delete_flows(spec, *strict);
                    Ok(())
                }
                FlowCommand::Group(g) => self.apply_group(g),
            };
            if let Err(e) = r {
                result = Err((i, e));
                break;
            }
        }
        let journal = self.journal.take().unwrap_or_default();
        self.origin = 0;
        if result.is_err() {
            self.rollback(journal);
            (self.version, self.seq, self.n_timed) = (version, seq, n_timed);
            self.pending.clear();
        } else {
            self.publish();
        }
        result
    }

    /// Undoes a journal, last change first.
    fn rollback(&mut self, journal: Vec<Undo>) {
        for u in journal.into_iter().rev() {
            match u {
                Undo::Inserted { table, value, mask, priority } => {
                    if let Some(id) = self.tables[table].find_exact(&value, &mask, priority) {
                        self.tables[table].remove(id);
                    }
                }
                Undo::Removed { table, value, mask, priority, rule } => {
                    self.tables[table].insert(value, mask, priority, rule);
                }
                Undo::Replaced { table, value, mask, priority, old } => {
                    if let Some(id) = self.tables[table].find_exact(&value, &mask, priority) {
                        if let Some(e) = self.tables[table].get_mut(id) {
                            e.data = old;
                        }
                    }
                }
                Undo::Groups(groups, created) => {
                    self.groups = groups;
                    self.group_created = created;
                }
            }
        }
    }

    /// Sends the committed events to the subscribers.
    fn publish(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.pending);
        self.subscribers.retain(|s| events.iter().all(|e| s.send(e.clone()).is_ok()));
    }

    /// A channel of every committed change to the flows from now on
    /// ([`FlowEvent`]); dropping the receiver unsubscribes.
    pub fn subscribe(&mut self) -> Receiver<FlowEvent> {
        let (tx, rx) = crossbeam_channel::unbounded();
        self.subscribers.push(tx);
        rx
    }

    /// Removes the flows whose idle or hard timeout has passed at `now`
    /// (their removal reported with the reason); returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        if self.n_timed == 0 {
            return 0;
        }
        let mut dead = Vec::new();
        for (t, cls) in self.tables.iter().enumerate() {
            for (id, e) in cls.iter() {
                if let Some(reason) = e.data.expired(now) {
                    dead.push((t, id, reason));
                }
            }
        }
        for &(t, id, reason) in &dead {
            self.remove_rule(t, id, reason);
        }
        if !dead.is_empty() {
            self.version += 1;
            self.publish();
        }
        dead.len()
    }

    /// The highest-priority rule of `table` matching `flow`; ORs the bits
    /// the lookup consulted into `wc`.
    #[inline]
    pub fn lookup(&self, table: u8, flow: &OfFlow, wc: &mut OfFlow) -> Option<&Arc<Rule>> {
        let t = &self.tables[table as usize];
        t.lookup(flow, wc).and_then(|id| t.get(id)).map(|e| &e.data)
    }

    /// Rules in dump order: by table, then installation order.
    pub fn rules(&self, table: Option<u8>) -> Vec<Arc<Rule>> {
        let mut out = Vec::new();
        for (t, cls) in self.tables.iter().enumerate() {
            if table.is_some_and(|x| x as usize != t) {
                continue;
            }
            let mut v: Vec<Arc<Rule>> = cls.iter().map(|(_, e)| e.data.clone()).collect();
            v.sort_by_key(|r| r.seq);
            out.extend(v);
        }
        out
    }

    /// (table, rules, subtables) for every non-empty table.
    pub fn table_stats(&self) -> Vec<(u8, usize, usize)> {
        self.tables
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.is_empty())
            .map(|(t, c)| (t as u8, c.len(), c.n_subtables()))
            .collect()
    }
}

/// A rule's identity: table, priority and match (as the tables key it, so
/// that two spellings of one match are one rule).
pub type RuleKey = (u8, u16, OfFlow, OfFlow);

/// The identity of the rule `s` describes.
pub fn flow_key(s: &FlowSpec) -> RuleKey {
    let (v, m) = OfFlow::from_match(&s.m);
    (s.table, s.priority, v.masked(&m), m)
}

/// The flow commands that turn the rules `old` into `new`: strict deletes
/// of rules that went, adds of rules that are new or changed; rules that
/// stayed are not touched (their counters and megaflows live on).
pub fn flow_diff(old: &[FlowSpec], new: &[FlowSpec]) -> Vec<FlowCommand> {
    let newk: HashMap<RuleKey, &FlowSpec> = new.iter().map(|s| (flow_key(s), s)).collect();
    let oldk: HashMap<RuleKey, &FlowSpec> = old.iter().map(|s| (flow_key(s), s)).collect();
    let mut cmds = Vec::new();
    for o in old {
        if !newk.contains_key(&flow_key(o)) {
            let mut d = o.clone();
            d.table_given = true;
            d.cookie_mask = 0;
            d.actions.clear();
            cmds.push(FlowCommand::Delete { strict: true, spec: d });
        }
    }
    for n in new {
        if oldk.get(&flow_key(n)).is_none_or(|o| *o != n) {
            cmds.push(FlowCommand::Add(n.clone()));
        }
    }
    cmds
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::ofctl::{parse_flow_file, parse_flow_line, LineKind};

    fn add(o: &mut Ofproto, s: &str) {
        o.add_flow(parse_flow_line(s, LineKind::Add).unwrap()).unwrap();
    }

    #[test]
    fn test_add_replaces_identical() {
        let mut o = Ofproto::new();
        add(&mut o, "table=111, priority=100, actions=goto_table:120");
        add(&mut o, "table=111, priority=100, actions=set_field:1.2.3.4->tun_dst,output:1,goto_table:120");
        let r = o.rules(Some(111));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].spec.actions.len(), 3);
        assert!(o.version() >= 2);
    }

    #[test]
    fn test_delete_semantics() {
        let mut o = Ofproto::new();
        add(&mut o, "table=10, priority=100, cookie=0xdd216239, tun_src=172.16.1.22, actions=goto_table:30");
        add(&mut o, "table=50, priority=100, cookie=0xdd216239, arp, arp_tpa=10.130.0.0/23, actions=output:1");
        add(&mut o, "table=50, priority=100, cookie=0x11111111, arp, arp_tpa=10.129.0.0/23, actions=output:1");
        add(&mut o, "table=20, priority=100, in_port=4, ip, nw_src=10.131.0.3, actions=goto_table:21");
        add(&mut o, "table=80, priority=150, reg1=5, ip, nw_src=10.131.0.3, actions=output:NXM_NX_REG2[]");
        add(&mut o, "table=101, priority=2, reg0=5, ip, nw_dst=10.131.0.3, actions=output:2");
        // Cookie-filtered delete leaves the replacement with another cookie alone.
        let cmds: Vec<_> =
            parse_flow_file("delete table=50, cookie=0x11111111/0xffffffff, arp, nw_dst=10.130.0.0/23\n")
                .unwrap()
                .into_iter()
                .map(|c| c.1)
                .collect();
        o.apply(&cmds).unwrap();
        assert_eq!(o.rules(Some(50)).len(), 2);
        // Non-strict delete spans tables: pod cleanup removes policy flows too.
        let n = o.delete_flows(&parse_flow_line("ip, nw_src=10.131.0.3", LineKind::Match).unwrap(), false);
        assert_eq!(n, 2);
        assert_eq!(o.n_rules(), 4);
        // Strict delete needs the priority.
        let pat = parse_flow_line("table=10, priority=99, tun_src=172.16.1.22", LineKind::Match).unwrap();
        assert_eq!(o.delete_flows(&pat, true), 0);
        let pat = parse_flow_line("table=10, priority=100, tun_src=172.16.1.22", LineKind::Match).unwrap();
        assert_eq!(o.delete_flows(&pat, true), 1);
    }

    #[test]
    fn test_bundle_is_atomic() {
        let mut o = Ofproto::new();
        add(&mut o, "table=0, priority=1, actions=drop");
        let v = o.version();
        let cmds: Vec<_> = parse_flow_file("delete table=0\nadd table=30, priority=1, actions=goto_table:20\n")
            .unwrap()
            .into_iter()
            .map(|c| c.1)
            .collect();
        assert!(o.apply(&cmds).is_err());
        assert_eq!(o.n_rules(), 1);
        assert_eq!(o.version(), v);
    }

    #[test]
    fn test_modify_keeps_counters() {
        let mut o = Ofproto::new();
        add(&mut o, "table=60, priority=100, tcp, nw_dst=172.30.0.1, tp_dst=443, actions=drop");
        o.rules(Some(60))[0].credit(3, 180);
        let pat = parse_flow_line("table=60, ip, nw_dst=172.30.0.1, actions=output:2", LineKind::Match).unwrap();
        assert_eq!(o.modify_flows(&pat, false).unwrap(), 1);
        let r = &o.rules(Some(60))[0];
        assert_eq!(r.n_packets.load(Ordering::Relaxed), 3);
        assert_eq!(config::ofctl::fmt_actions(&r.spec.actions), "output:2");
    }

    #[test]
    fn test_group_refusals_and_stats() {
        use config::ofctl::{parse_group_line, GroupLineKind};
        let g = |l: &str, k| FlowCommand::Group(parse_group_line(l, k).unwrap());
        let mut o = Ofproto::new();
        let e = o.apply(&[g("group_id=1,type=all,bucket=output:1", GroupLineKind::Modify)]).unwrap_err();
        assert_eq!(e.kind, FlowModErrorKind::UnknownGroup);
        o.apply(&[g("group_id=1,type=all,bucket=output:1", GroupLineKind::Add)]).unwrap();
        let e = o.apply(&[g("group_id=1,type=all,bucket=output:2", GroupLineKind::Add)]).unwrap_err();
        assert_eq!(e.kind, FlowModErrorKind::GroupExists);
        let e = o.apply(&[g("group_id=2,type=all,bucket=group:3", GroupLineKind::Add)]).unwrap_err();
        assert_eq!(e.kind, FlowModErrorKind::MissingGroup);
        let e = o.add_flow(parse_flow_line("table=5, ip, actions=group:7", LineKind::Add).unwrap()).unwrap_err();
        assert_eq!(e.kind, FlowModErrorKind::MissingGroup);
        add(&mut o, "table=5, priority=2, ip, actions=group:1");
        add(&mut o, "table=5, priority=1, actions=group:1,output:3");
        o.rules(Some(5))[0].credit(2, 200);
        o.rules(Some(5))[1].credit(1, 60);
        let created = o.group_stats()[0].created;
        o.apply(&[g("group_id=1,type=select,bucket=output:4", GroupLineKind::Modify)]).unwrap();
        let st = o.group_stats();
        assert_eq!(st.len(), 1);
        assert_eq!((st[0].ref_count, st[0].n_packets, st[0].n_bytes), (2, 3, 260));
        assert_eq!(st[0].created, created, "a modify keeps the group's age");
        o.apply(&[g("", GroupLineKind::Delete)]).unwrap();
        assert!(o.group_stats().is_empty());
        assert_eq!(o.n_rules(), 0, "deleting a group deletes the flows that name it");
    }

    fn cmds(text: &str) -> Vec<FlowCommand> {
        parse_flow_file(text).unwrap().into_iter().map(|c| c.1).collect()
    }

    /// A refused command undoes the deletes, adds, modifies and group
    /// changes before it: the same rules (the same `Arc`s), counters and
    /// groups, no event sent.
    #[test]
    fn test_refused_transaction_rolls_back() {
        use config::ofctl::{parse_group_line, GroupLineKind};
        let mut o = Ofproto::new();
        add(&mut o, "table=0, priority=5, ip, actions=goto_table:10");
        add(&mut o, "table=10, priority=5, ip, nw_dst=10.0.0.1, actions=output:3");
        o.rules(Some(10))[0].credit(4, 400);
        let before: Vec<_> = o.rules(None);
        let dump: Vec<String> = before.iter().map(|r| r.spec.to_dump_line(None)).collect();
        let events = o.subscribe();
        let mut c = cmds(
            "delete table=0\n\
             add table=10, priority=5, ip, nw_dst=10.0.0.1, reset_counts, actions=output:4\n\
             modify table=10, actions=output:5\n\
             add table=20, priority=1, actions=drop\n",
        );
        c.push(FlowCommand::Group(
            parse_group_line("group_id=3,type=all,bucket=output:3", GroupLineKind::Add).unwrap(),
        ));
        c.extend(cmds("add table=30, priority=1, actions=goto_table:20\n"));
        let (i, e) = o.apply_from(&c, 7).unwrap_err();
        assert_eq!((i, e.kind), (5, FlowModErrorKind::Invalid));
        let after = o.rules(None);
        assert_eq!(after.len(), before.len());
        for (a, b) in after.iter().zip(&before) {
            assert!(Arc::ptr_eq(a, b), "{:?}", a.spec);
        }
        assert_eq!(after.iter().map(|r| r.spec.to_dump_line(None)).collect::<Vec<_>>(), dump);
        assert_eq!(o.rules(Some(10))[0].counters(), (4, 400));
        assert!(o.group_stats().is_empty());
        assert!(events.try_recv().is_err(), "a refused transaction reported changes");
        // The same without the bad command commits, its events with it.
        c.pop();
        o.apply_from(&c, 7).unwrap();
        assert_eq!(o.n_rules(), 2);
        assert_eq!(o.rules(Some(10))[0].counters(), (0, 0), "reset_counts");
        let ev: Vec<_> = events.try_iter().collect();
        assert!(matches!(&ev[0], FlowEvent::Removed { reason: RemovedReason::Delete, origin: 7, .. }));
        assert!(ev.iter().any(|e| matches!(e, FlowEvent::Added { origin: 7, .. })));
    }

    /// Timeouts expire flows (the hard one first), reported with their
    /// reason; a packet keeps an idle flow alive.
    #[test]
    fn test_timeouts_expire() {
        let mut o = Ofproto::new();
        add(&mut o, "table=0, priority=1, hard_timeout=2, send_flow_rem, actions=drop");
        add(&mut o, "table=0, priority=2, idle_timeout=1, actions=drop");
        add(&mut o, "table=0, priority=3, actions=drop");
        let events = o.subscribe();
        let t0 = Instant::now();
        assert!(o.has_timeouts());
        assert_eq!(o.expire(t0), 0);
        assert_eq!(o.expire(t0 + Duration::from_millis(1500)), 1, "the idle flow");
        assert_eq!(o.expire(t0 + Duration::from_millis(2500)), 1, "the hard one");
        assert!(!o.has_timeouts());
        let reasons: Vec<_> = events
            .try_iter()
            .map(|e| match e {
                FlowEvent::Removed { rule, reason, .. } => (rule.spec.priority, reason),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(reasons, [(2, RemovedReason::IdleTimeout), (1, RemovedReason::HardTimeout)]);
        add(&mut o, "table=0, priority=4, idle_timeout=1, actions=drop");
        std::thread::sleep(Duration::from_millis(10));
        o.rules(Some(0)).iter().find(|r| r.spec.priority == 4).unwrap().credit(1, 60);
        let used = Instant::now();
        assert_eq!(o.expire(used + Duration::from_millis(900)), 0, "used since");
    }

    /// check_overlap, out_port/out_group filters, the flags a flow keeps,
    /// table 254.
    #[test]
    fn test_flags_and_filters() {
        use config::ofctl::{parse_group_line, GroupLineKind};
        let mut o = Ofproto::new();
        o.apply(&[FlowCommand::Group(
            parse_group_line("group_id=9,type=all,bucket=output:3", GroupLineKind::Add).unwrap(),
        )])
        .unwrap();
        add(&mut o, "table=0, priority=5, ip, check_overlap, send_flow_rem, actions=output:3");
        add(&mut o, "table=0, priority=5, arp, actions=group:9");
        add(&mut o, "table=0, priority=6, ip, nw_src=1.2.3.4, check_overlap, actions=output:4");
        assert_eq!(o.rules(Some(0))[0].spec.flags, ff::SEND_FLOW_REM | ff::CHECK_OVERLAP, "kept, as in OVS");
        let e = o
            .add_flow(
                parse_flow_line("table=0, priority=5, ip, nw_src=1.2.3.4, check_overlap, actions=drop", LineKind::Add)
                    .unwrap(),
            )
            .unwrap_err();
        assert_eq!(e.kind, FlowModErrorKind::Overlap);
        let e = o.add_flow(parse_flow_line("table=254, actions=drop", LineKind::Add).unwrap()).unwrap_err();
        assert_eq!(e.kind, FlowModErrorKind::ReadOnlyTable);
        let m = |s: &str| parse_flow_line(s, LineKind::Match).unwrap();
        assert_eq!(o.delete_flows(&m("out_port=5"), false), 0);
        assert_eq!(o.delete_flows(&m("out_group=9"), false), 1);
        assert_eq!(o.delete_flows(&m("out_port=4"), false), 1);
        assert_eq!(o.rules(None).len(), 1);
        assert!(o.rules(None)[0].outputs_to(3));
    }
}
