//! OpenFlow tables: one priority classifier per table, ovs-ofctl's add /
//! modify / delete semantics (strict and not, cookie masks), per-rule
//! counters and a version that every change bumps (caches built on an older
//! version are revalidated).
//!
//! Rules are `Arc`s so that megaflows and traces can keep the rules they came
//! from; counters are atomics credited from megaflow statistics.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use config::ofctl::{Action, FlowCommand, FlowSpec, GroupCommand, GroupSpec};

use crate::classifier::{Classifier, EntryId};
use crate::flow::OfFlow;
use crate::recirc::Recirc;

/// OpenFlow port of vxlan0 on a node's bridge.
pub const VXLAN_PORT: u32 = 1;
/// tun0's OpenFlow port on an OpenShift SDN bridge.
pub const TUN0_PORT: u32 = 2;

/// Number of OpenFlow tables (0..=254).
pub const N_TABLES: usize = 255;

/// An installed OpenFlow rule.
#[derive(Debug)]
pub struct Rule {
    /// The flow as written (match, actions, cookie, priority, table).
    pub spec: FlowSpec,
    /// Insertion sequence (dump order within a table).
    pub seq: u64,
    /// When it was installed.
    pub created: Instant,
    /// Packets credited to the rule.
    pub n_packets: AtomicU64,
    /// Bytes credited to the rule.
    pub n_bytes: AtomicU64,
}

impl Rule {
    /// Credits packets and bytes.
    pub fn credit(&self, packets: u64, bytes: u64) {
        self.n_packets.fetch_add(packets, Ordering::Relaxed);
        self.n_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The dump-flows line with live counters.
    pub fn to_dump_line(&self) -> String {
        self.spec.to_dump_line(Some(config::ofctl::FlowStats {
            duration_secs: self.created.elapsed().as_secs_f64(),
            n_packets: self.n_packets.load(Ordering::Relaxed),
            n_bytes: self.n_bytes.load(Ordering::Relaxed),
        }))
    }
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
                    c.0 += 1;
                    c.1 += r.n_packets.load(Ordering::Relaxed);
                    c.2 += r.n_bytes.load(Ordering::Relaxed);
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
                self.groups.insert(g.group_id, Arc::new(g.clone()));
                self.group_created.insert(g.group_id, Instant::now());
            }
            GroupCommand::Modify(g) => {
                if !self.groups.contains_key(&g.group_id) {
                    return Err(FlowModError::new(FlowModErrorKind::UnknownGroup, format!("no group {}", g.group_id)));
                }
                self.check_bucket_groups(g, |id| self.groups.contains_key(&id))?;
                self.groups.insert(g.group_id, Arc::new(g.clone()));
            }
            GroupCommand::Delete(id) => {
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
                self.tables[t].remove(id);
            }
        }
    }

    /// Checks what OVS checks before accepting a flow.
    pub fn validate(spec: &FlowSpec) -> Result<(), FlowModError> {
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

    /// Adds a flow; an existing flow with the same table, priority and match
    /// is replaced (counters restart).
    ///
    /// # Errors
    /// [`Ofproto::validate`].
    pub fn add_flow(&mut self, spec: FlowSpec) -> Result<(), FlowModError> {
        Self::validate(&spec)?;
        self.check_groups(&spec, |g| self.groups.contains_key(&g))?;
        let (v, m) = OfFlow::from_match(&spec.m);
        let t = &mut self.tables[spec.table as usize];
        if let Some(id) = t.find_exact(&v, &m, spec.priority) {
            t.remove(id);
        }
        self.seq += 1;
        let rule = Arc::new(Rule {
            spec: spec.clone(),
            seq: self.seq,
            created: Instant::now(),
            n_packets: AtomicU64::new(0),
            n_bytes: AtomicU64::new(0),
        });
        self.tables[spec.table as usize].insert(v, m, spec.priority, rule);
        self.version += 1;
        Ok(())
    }

    /// The rules a modify or delete pattern names. Strict: the one rule of
    /// each table with exactly this match and priority, found by hash (as
    /// `add_flow` finds the rule it replaces), so that a bundle of N strict
    /// deletes (what `replace-flows` sends) costs O(N), not O(N²).
    /// Non-strict: every rule at least as specific, by a scan.
    fn matching(&self, pat: &FlowSpec, strict: bool) -> Vec<(usize, EntryId)> {
        let tables: Vec<usize> = if pat.table_given { vec![pat.table as usize] } else { (0..N_TABLES).collect() };
        let mut out = Vec::new();
        if strict {
            let (v, m) = OfFlow::from_match(&pat.m);
            for t in tables {
                if let Some(id) = self.tables[t].find_exact(&v, &m, pat.priority) {
                    if self.tables[t].get(id).is_some_and(|e| cookie_ok(&e.data.spec, pat)) {
                        out.push((t, id));
                    }
                }
            }
            return out;
        }
        for t in tables {
            for (id, e) in self.tables[t].iter() {
                let r = &e.data.spec;
                if r.m.is_within(&pat.m) && cookie_ok(r, pat) {
                    out.push((t, id));
                }
            }
        }
        out
    }

    /// Deletes matching flows (non-strict: every flow at least as specific
    /// as the pattern, in every table unless `table=` was given). Returns how
    /// many were removed.
    pub fn delete_flows(&mut self, pat: &FlowSpec, strict: bool) -> usize {
        let hits = self.matching(pat, strict);
        for &(t, id) in &hits {
            self.tables[t].remove(id);
        }
        if !hits.is_empty() {
            self.version += 1;
        }
        hits.len()
    }

    /// Replaces the actions of matching flows (counters kept). Returns how
    /// many were modified.
    ///
    /// # Errors
    /// When the new actions are invalid for a matched flow's table.
    pub fn modify_flows(&mut self, pat: &FlowSpec, strict: bool) -> Result<usize, FlowModError> {
        let hits = self.matching(pat, strict);
        for &(t, _) in &hits {
            Self::validate(&FlowSpec { table: t as u8, ..pat.clone() })?;
        }
        self.check_groups(pat, |g| self.groups.contains_key(&g))?;
        for &(t, id) in &hits {
            let e = self.tables[t].get_mut(id).expect("matched rule exists");
            let old = &e.data;
            let mut spec = old.spec.clone();
            spec.actions = pat.actions.clone();
            e.data = Arc::new(Rule {
                spec,
                seq: old.seq,
                created: old.created,
                n_packets: AtomicU64::new(old.n_packets.load(Ordering::Relaxed)),
                n_bytes: AtomicU64::new(old.n_bytes.load(Ordering::Relaxed)),
            });
        }
        if !hits.is_empty() {
            self.version += 1;
        }
        Ok(hits.len())
    }

    /// Applies commands as one bundle: all are validated first, so a bad one
    /// leaves the tables untouched.
    ///
    /// # Errors
    /// The first invalid command (its index and why), before anything
    /// changes.
    pub fn apply(&mut self, cmds: &[FlowCommand]) -> Result<(), FlowModError> {
        // Validated first, the groups that exist at each step simulated.
        let mut exists: BTreeSet<u32> = self.groups.keys().copied().collect();
        for (i, c) in cmds.iter().enumerate() {
            let at = |e: FlowModError| FlowModError::new(e.kind, format!("command {}: {}", i + 1, e.why));
            match c {
                FlowCommand::Add(s) | FlowCommand::Modify { spec: s, .. } => {
                    Self::validate(s).map_err(at)?;
                    self.check_groups(s, |g| exists.contains(&g)).map_err(at)?;
                }
                FlowCommand::Delete { .. } => {}
                FlowCommand::Group(GroupCommand::Add(g)) => {
                    if !exists.insert(g.group_id) {
                        return Err(at(FlowModError::new(
                            FlowModErrorKind::GroupExists,
                            format!("group {} exists", g.group_id),
                        )));
                    }
                    self.check_bucket_groups(g, |id| exists.contains(&id)).map_err(at)?;
                }
                FlowCommand::Group(GroupCommand::Modify(g)) => {
                    if !exists.contains(&g.group_id) {
                        return Err(at(FlowModError::new(
                            FlowModErrorKind::UnknownGroup,
                            format!("no group {}", g.group_id),
                        )));
                    }
                    self.check_bucket_groups(g, |id| exists.contains(&id)).map_err(at)?;
                }
                FlowCommand::Group(GroupCommand::Delete(Some(id))) => {
                    exists.remove(id);
                }
                FlowCommand::Group(GroupCommand::Delete(None)) => exists.clear(),
            }
        }
        for c in cmds {
            match c {
                FlowCommand::Add(s) => self.add_flow(s.clone())?,
                FlowCommand::Modify { strict, spec } => {
                    self.modify_flows(spec, *strict)?;
                }
                FlowCommand::Delete { strict, spec } => {
                    self.delete_flows(spec, *strict);
                }
                FlowCommand::Group(g) => self.apply_group(g)?,
            }
        }
        Ok(())
    }

    /// The highest-priority rule of `table` matching `flow`; ORs the bits
    /// the lookup consulted into `wc`.
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
}
