//! The slow-path thread: takes misses from the poll loops, translates them
//! through the OpenFlow tables, installs the megaflows (published to every
//! loop at once, one snapshot per batch), answers each loop so that it can
//! run the waiting frames, credits rule counters from megaflow statistics,
//! revalidates megaflows when the tables change, and expires idle ones.
//!
//! Everything here is the slow path: it may allocate and take time; it never
//! makes a poll loop wait.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use fastpath::dpcls::{FlowTable, Megaflow};
use fastpath::shared::Shared;
use fastpath::stats::{PmdStats, MAX_FLOW_IDS};
use fastpath::upcall::{Upcall, UpcallReply};
use fastpath::FlowKey;

use crate::ofproto::{Ofproto, RuleRef};
use crate::xlate::{PipelineDrop, RuleHit, Translator};
use crate::OfFlow;

/// Default limit on installed megaflows (OVS's `flow-limit` default).
pub const DEFAULT_FLOW_LIMIT: usize = 200_000;
/// Megaflows unused this long are removed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most upcalls the thread takes from its channel and handles at once.
pub const UPCALL_BATCH: usize = 1024;

/// A change to the megaflow table (16 bytes: a mass expiry logs one per
/// megaflow, twice).
#[derive(Clone, Debug)]
enum Op {
    Insert(Arc<Megaflow>),
    /// Removes the megaflow with this one's key and mask.
    Remove(Arc<Megaflow>),
    Rerank,
}

/// Makes a change (the log's last use of it: an inserted megaflow moves in).
fn apply(t: &mut FlowTable, op: Op) {
    match op {
        Op::Insert(m) => t.insert(m),
        Op::Remove(m) => {
            t.remove(&m.key(), &m.mask);
        }
        Op::Rerank => t.rerank(),
    }
}

/// Left-right publishing: two copies of the megaflow table, one published
/// to the poll loops, one private. Changes are made to the private copy
/// (after replaying the previous batch on it), which is then published; the
/// other copy becomes private once the loops that were reading it finish
/// their burst. Nothing is ever copied wholesale, so an install costs two
/// insertions whatever the table size, and the loops never wait.
struct Publisher {
    /// The private copy, up to date unless `held` is set.
    spare: FlowTable,
    /// The copy published until the last publish, which loops may still be
    /// reading: it becomes `spare` (with `log` replayed) once they let go.
    held: Option<Arc<FlowTable>>,
    /// The changes last published, still to be made to the held copy.
    log: Vec<Op>,
    /// Changes made to the spare copy since the last publish.
    pending: Vec<Op>,
}

impl Publisher {
    fn new(shared: &Shared) -> Publisher {
        let spare = (*shared.flows.load_full()).clone();
        Publisher { spare, held: None, log: Vec::new(), pending: Vec::new() }
    }

    /// Replays the log on the held copy if no loop reads it any more,
    /// without waiting (the slow path calls this when idle, so that a large
    /// batch, such as a mass expiry, is not replayed on the upcall path).
    fn settle(&mut self) {
        if self.held.as_ref().is_some_and(|a| Arc::strong_count(a) == 1) {
            self.table();
        }
    }

    /// The private copy, up to date: waits for the loops to drop the held
    /// copy (the end of a burst) and replays the log on it first.
    fn table(&mut self) -> &mut FlowTable {
        if let Some(mut held) = self.held.take() {
            let mut spins = 0u32;
            self.spare = loop {
                match Arc::try_unwrap(held) {
                    Ok(t) => break t,
                    Err(a) => held = a,
                }
                spins += 1;
                if spins > 100_000 {
                    // A loop is descheduled holding it: copy instead of waiting.
                    break (*held).clone();
                }
                std::hint::spin_loop();
                if spins.is_multiple_of(1000) {
                    std::thread::yield_now();
                }
            };
            for op in self.log.drain(..) {
                apply(&mut self.spare, op);
            }
        }
        &mut self.spare
    }

    /// The megaflow covering `key`, counting changes not yet published.
    fn lookup(&mut self, key: &FlowKey) -> Option<Arc<Megaflow>> {
        self.table().lookup(key).cloned()
    }

    /// Makes a change to the private copy (published by the next publish).
    fn change(&mut self, op: Op) {
        apply(self.table(), op.clone());
        self.pending.push(op);
    }

    /// Publishes the private copy if it changed; the other one becomes the
    /// private copy once the loops let go of it.
    fn publish(&mut self, shared: &Shared) {
        if self.pending.is_empty() {
            return;
        }
        let fresh = std::mem::take(self.table());
        self.held = Some(shared.flows.swap(Arc::new(fresh)));
        std::mem::swap(&mut self.log, &mut self.pending);
        self.pending.clear();
    }
}

struct MfInfo {
    flow: Arc<Megaflow>,
    /// The rules it was translated through (shared with every megaflow
    /// that took the same path).
    rules: Arc<[RuleRef]>,
    /// Where and why the megaflow's packets are dropped, if they are.
    drop: Option<PipelineDrop>,
    credited: (u64, u64),
    last_packets: u64,
    last_used: Instant,
}

/// Installed megaflows by id (ids are small and dense: a slot per id).
struct Megaflows {
    slots: Vec<Option<MfInfo>>,
    n: usize,
}

impl Megaflows {
    /// Room for ids below `n` reserved up front: the slots never move (no
    /// copy as they grow), and pages are only touched as ids are used.
    fn with_ids(n: usize) -> Megaflows {
        Megaflows { slots: Vec::with_capacity(n), n: 0 }
    }

    fn len(&self) -> usize {
        self.n
    }

    fn insert(&mut self, id: u32, m: MfInfo) {
        let i = id as usize;
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, || None);
        }
        if self.slots[i].replace(m).is_none() {
            self.n += 1;
        }
    }

    fn remove(&mut self, id: u32) -> Option<MfInfo> {
        let m = self.slots.get_mut(id as usize)?.take();
        self.n -= m.is_some() as usize;
        m
    }

    fn get(&self, id: u32) -> Option<&MfInfo> {
        self.slots.get(id as usize)?.as_ref()
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut MfInfo)> {
        self.slots.iter_mut().enumerate().filter_map(|(i, m)| m.as_mut().map(|m| (i as u32, m)))
    }

    fn ids(&self) -> Vec<u32> {
        self.slots.iter().enumerate().filter(|(_, m)| m.is_some()).map(|(i, _)| i as u32).collect()
    }
}

/// Values that many megaflows share, each kept once: the paths through the
/// tables (a node's megaflows take few distinct ones) and the masks (one
/// per subtable). A megaflow holds a reference instead of its own copy:
/// less memory touched per megaflow, and no reference count taken and
/// dropped per rule.
struct Interner<T: ?Sized> {
    /// (hash, value).
    table: hashbrown::HashTable<(u64, Arc<T>)>,
}

impl<T: ?Sized> Default for Interner<T> {
    fn default() -> Self {
        Interner { table: hashbrown::HashTable::new() }
    }
}

impl<T: ?Sized> Interner<T> {
    /// The kept value with hash `h` that `same` accepts, or `make()`, kept.
    fn intern(&mut self, h: u64, same: impl Fn(&T) -> bool, make: impl FnOnce() -> Arc<T>) -> Arc<T> {
        if let Some((_, v)) = self.table.find(h, |(eh, v)| *eh == h && same(v)) {
            return v.clone();
        }
        let v = make();
        self.table.insert_unique(h, (h, v.clone()), |e| e.0);
        v
    }

    /// Drops the values no megaflow holds any more.
    fn prune(&mut self) {
        self.table.retain(|(_, v)| Arc::strong_count(v) > 1);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.len()
    }
}

/// The shared list of the rules hit. A kept path holds its rules, so no
/// rule address in the interner can be reused while the entry lives;
/// pruning drops the last reference to a rule deleted from the tables.
fn intern_path(paths: &mut Interner<[RuleRef]>, rules: &[RuleHit<'_>]) -> Arc<[RuleRef]> {
    let h = rules.iter().fold(rules.len() as u64, |h, &(t, r)| {
        (h ^ (Arc::as_ptr(r) as usize as u64) ^ t as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
    });
    let same = |p: &[RuleRef]| {
        p.len() == rules.len() && p.iter().zip(rules).all(|(a, &(t, r))| a.table == t && Arc::ptr_eq(&a.rule, r))
    };
    paths.intern(h, same, || rules.iter().map(|&(table, r)| RuleRef { table, rule: r.clone() }).collect())
}

/// The shared copy of a megaflow mask.
fn intern_mask(masks: &mut Interner<FlowKey>, mask: &FlowKey) -> Arc<FlowKey> {
    masks.intern(mask.hash() as u64, |m| m == mask, || Arc::new(*mask))
}

/// Megaflow ids: a removed one is reused only after a quarantine, once no
/// loop can still credit its statistics.
struct Ids {
    next: u32,
    free: Vec<u32>,
    quarantine: VecDeque<(Instant, u32)>,
}

impl Ids {
    fn alloc(&mut self, now: Instant) -> Option<u32> {
        while let Some(&(t, id)) = self.quarantine.front() {
            if now.saturating_duration_since(t) < Duration::from_secs(1) {
                break;
            }
            self.quarantine.pop_front();
            self.free.push(id);
        }
        if let Some(id) = self.free.pop() {
            return Some(id);
        }
        if (self.next as usize) < MAX_FLOW_IDS {
            self.next += 1;
            return Some(self.next - 1);
        }
        None
    }

    fn release(&mut self, id: u32, now: Instant) {
        self.quarantine.push_back((now, id));
    }
}

/// Packets and bytes of megaflow `id`, summed over the loops.
fn totals(pmds: &[Arc<PmdStats>], id: u32) -> (u64, u64) {
    pmds.iter().map(|p| p.flow(id)).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// An installed megaflow, as [`SlowPath::megaflows`] lists it.
#[derive(Clone, Debug)]
pub struct MegaflowEntry {
    /// The key (masked).
    pub key: crate::OfFlow,
    /// The mask.
    pub mask: crate::OfFlow,
    /// The datapath actions (none: drop).
    pub actions: Vec<fastpath::DpAction>,
    /// Packets, summed over the loops.
    pub n_packets: u64,
    /// Bytes, summed over the loops.
    pub n_bytes: u64,
    /// How long ago a packet last matched it, as of the last expiry pass
    /// (zero: packets since); `None` before its first packet.
    pub used: Option<Duration>,
    /// The rules it was translated through, as dump-flows prints them.
    pub rules: Vec<String>,
}

/// A request to the running slow path (the control plane's way in).
pub enum Command {
    /// Apply flow commands as one bundle, revalidate, then answer.
    FlowMods(Vec<config::ofctl::FlowCommand>, Sender<Result<(), crate::ofproto::FlowModError>>),
    /// Publish new tunnel/neighbour state.
    Tunnel(fastpath::shared::TunnelState),
    /// Set the OpenFlow ports that exist (a pod came or went), then
    /// revalidate.
    Ports(Option<std::collections::BTreeSet<u32>>),
    /// Make the tables equal to these flows, changing only what differs
    /// (`ovs-ofctl replace-flows`), as one bundle; answers how many
    /// commands that took.
    ReplaceFlows(Vec<config::ofctl::FlowSpec>, Sender<Result<usize, crate::ofproto::FlowModError>>),
    /// Run a closure on the slow path's state (it answers through what it
    /// captured): the control socket's and the OpenFlow listener's dumps,
    /// traces and flow mods.
    Call(Box<dyn FnOnce(&mut SlowPath) + Send>),
}

/// Counters of the slow path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpcallStats {
    /// Upcalls handled.
    pub upcalls: u64,
    /// Of those, already covered by an installed megaflow (raced).
    pub already_installed: u64,
    /// Megaflows installed.
    pub installed: u64,
    /// Megaflows not installed for the flow limit.
    pub over_limit: u64,
    /// Megaflows removed idle.
    pub expired: u64,
    /// Revalidation passes.
    pub revalidations: u64,
    /// Megaflows changed or removed by revalidation.
    pub revalidated: u64,
    /// Recirculation ids freed (unused for their grace).
    pub recirc_freed: u64,
}

/// The slow path's state.
pub struct SlowPath {
    /// The OpenFlow tables.
    pub ofproto: Ofproto,
    shared: Arc<Shared>,
    replies: Vec<Sender<UpcallReply>>,
    megaflows: Megaflows,
    paths: Interner<[RuleRef]>,
    masks: Interner<FlowKey>,
    publisher: Publisher,
    pmds: Vec<Arc<PmdStats>>,
    ids: Ids,
    version: u64,
    /// Megaflow limit.
    pub flow_limit: usize,
    /// Counters.
    pub stats: UpcallStats,
    /// Packets the pipeline dropped, by (table, reason label), credited
    /// from megaflow statistics with the rule counters.
    pub table_drops: std::collections::BTreeMap<(u8, &'static str), u64>,
}

impl SlowPath {
    /// A slow path over these tables, answering loop `i` on `replies[i]`
    /// and reading its megaflow statistics from `pmds[i]`.
    pub fn new(
        ofproto: Ofproto,
        shared: Arc<Shared>,
        replies: Vec<Sender<UpcallReply>>,
        pmds: Vec<Arc<PmdStats>>,
    ) -> SlowPath {
        let version = ofproto.version();
        let publisher = Publisher::new(&shared);
        SlowPath {
            ofproto,
            shared,
            replies,
            megaflows: Megaflows::with_ids(MAX_FLOW_IDS),
            paths: Interner::default(),
            masks: Interner::default(),
            publisher,
            pmds,
            ids: Ids { next: 1, free: Vec::new(), quarantine: VecDeque::new() },
            version,
            flow_limit: DEFAULT_FLOW_LIMIT.min(MAX_FLOW_IDS - 1),
            stats: UpcallStats::default(),
            table_drops: Default::default(),
        }
    }

    /// Number of installed megaflows.
    pub fn n_megaflows(&self) -> usize {
        self.megaflows.len()
    }

    /// The installed megaflows, by id: each one's key and mask, actions,
    /// statistics summed over the loops, and the rules it was translated
    /// through.
    pub fn megaflows(&self) -> Vec<MegaflowEntry> {
        let now = Instant::now();
        let mut out = Vec::new();
        for id in self.megaflows.ids() {
            let Some(m) = self.megaflows.get(id) else { continue };
            let (n_packets, n_bytes) = totals(&self.pmds, id);
            // Packets since the last expiry pass: used about now.
            let used = match n_packets {
                0 => None,
                p if p != m.last_packets => Some(Duration::ZERO),
                _ => Some(now.saturating_duration_since(m.last_used)),
            };
            out.push(MegaflowEntry {
                key: crate::OfFlow::from_key(&m.flow.key()),
                mask: crate::OfFlow::from_key(&m.flow.mask),
                actions: m.flow.actions.to_vec(),
                n_packets,
                n_bytes,
                used,
                rules: m.rules.iter().map(|r| r.rule.spec.to_dump_line(None).trim_start().to_string()).collect(),
            });
        }
        out
    }

    /// The installed megaflows as `ovs-appctl dpctl/dump-flows` shows
    /// them (match, packets, bytes, actions), each followed by the
    /// OpenFlow rules it was translated through.
    pub fn dump_megaflows(&self) -> String {
        let mut out = String::new();
        for m in self.megaflows() {
            let acts: Vec<String> = m.actions.iter().map(|a| a.to_string()).collect();
            out += &format!(
                "{}, packets:{}, bytes:{}, actions:{}\n",
                crate::trace::fmt_masked(&m.key, &m.mask),
                m.n_packets,
                m.n_bytes,
                if acts.is_empty() { "drop".to_string() } else { acts.join(",") }
            );
            for r in &m.rules {
                out += &format!("    from: {r}\n");
            }
        }
        out
    }

    /// Handles a batch of upcalls: translate, install (one publish), reply.
    pub fn handle(&mut self, batch: &[Upcall]) {
        if batch.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut translator = Translator::new(&self.ofproto);
        for u in batch {
            self.stats.upcalls += 1;
            // The private copy holds the published megaflows and this
            // batch's, so that later upcalls in the batch find them.
            if let Some(m) = self.publisher.lookup(&u.key) {
                self.stats.already_installed += 1;
                let _ = self.replies.get(u.pmd).map(|r| r.try_send(UpcallReply { flow: m }));
                continue;
            }
            let x = translator.run(&OfFlow::from_key(&u.key));
            let mask = intern_mask(&mut self.masks, &x.megaflow_mask());
            let id = if self.megaflows.len() < self.flow_limit { self.ids.alloc(now) } else { None };
            // The references (the path's, the megaflow's) are taken before
            // the table and record writes: an atomic increment waits for
            // every store before it, and those writes go to memory the
            // caches no longer hold.
            let rules = id.map(|_| intern_path(&mut self.paths, &x.rules));
            let m = Arc::new(Megaflow::new(u.key, mask, std::mem::take(&mut x.actions), id.unwrap_or(0)));
            if let (Some(id), Some(rules)) = (id, rules) {
                let flow = m.clone();
                self.publisher.change(Op::Insert(m.clone()));
                let credited = totals(&self.pmds, id);
                let info = MfInfo { flow, rules, drop: x.drop, credited, last_packets: credited.0, last_used: now };
                self.megaflows.insert(id, info);
                self.stats.installed += 1;
            } else {
                // Over the limit: these frames run the actions uninstalled
                // (id 0 is never credited; credit the rules here).
                self.stats.over_limit += 1;
                for (_, r) in &x.rules {
                    r.credit(1, u.len as u64);
                }
                if let Some(d) = x.drop {
                    *self.table_drops.entry((d.table, d.kind.label())).or_default() += 1;
                }
            }
            let _ = self.replies.get(u.pmd).map(|r| r.try_send(UpcallReply { flow: m }));
        }
        self.publisher.publish(&self.shared);
    }

    /// Credits rule counters from megaflow statistics (what dump-flows shows).
    pub fn credit_rules(&mut self) {
        let pmds = &self.pmds;
        let drops = &mut self.table_drops;
        for (id, mf) in self.megaflows.iter_mut() {
            let (p, b) = totals(pmds, id);
            let (dp, db) = (p.saturating_sub(mf.credited.0), b.saturating_sub(mf.credited.1));
            if dp > 0 {
                for r in mf.rules.iter() {
                    r.rule.credit(dp, db);
                }
                if let Some(d) = mf.drop {
                    *drops.entry((d.table, d.kind.label())).or_default() += dp;
                }
                mf.credited = (p, b);
            }
        }
    }

    /// Removes megaflows idle for longer than `idle`; returns how many.
    pub fn expire(&mut self, idle: Duration) -> usize {
        self.credit_rules();
        let now = Instant::now();
        let mut dead: Vec<u32> = Vec::new();
        for (id, mf) in self.megaflows.iter_mut() {
            let p = mf.credited.0;
            if p != mf.last_packets {
                mf.last_packets = p;
                mf.last_used = now;
            } else if now.duration_since(mf.last_used) >= idle {
                dead.push(id);
            }
        }
        for &id in &dead {
            if let Some(mf) = self.megaflows.remove(id) {
                self.publisher.change(Op::Remove(mf.flow));
                self.ids.release(id, now);
            }
        }
        self.publisher.publish(&self.shared);
        self.prune_shared();
        self.stats.expired += dead.len() as u64;
        dead.len()
    }

    /// Re-translates every megaflow if the tables changed since the last
    /// pass: unchanged ones stay, ones whose actions changed under the same
    /// mask are replaced, the rest are removed (the next packet upcalls).
    /// One snapshot is published; the loops never stop.
    pub fn revalidate(&mut self) -> usize {
        if self.ofproto.version() == self.version {
            return 0;
        }
        self.version = self.ofproto.version();
        self.stats.revalidations += 1;
        self.credit_rules();
        let now = Instant::now();
        let mut changed = 0;
        let mut translator = Translator::new(&self.ofproto);
        for id in self.megaflows.ids() {
            let Some(mf) = self.megaflows.get(id) else { continue };
            let old = mf.flow.clone();
            let key = old.key();
            let x = translator.run(&OfFlow::from_key(&key));
            let same_mask = x.megaflow_mask() == *old.mask;
            // Interned: the same path is the same list.
            let path = intern_path(&mut self.paths, &x.rules);
            if same_mask && x.actions[..] == old.actions[..] && Arc::ptr_eq(&path, &mf.rules) {
                continue;
            }
            changed += 1;
            self.publisher.change(Op::Remove(old.clone()));
            let info = self.megaflows.remove(id);
            if same_mask {
                let m = Arc::new(Megaflow::new(key, old.mask.clone(), std::mem::take(&mut x.actions), id));
                self.publisher.change(Op::Insert(m.clone()));
                let mut info = info.expect("present");
                info.flow = m;
                info.rules = path;
                info.drop = x.drop;
                self.megaflows.insert(id, info);
            } else {
                self.ids.release(id, now);
            }
        }
        drop(translator);
        self.publisher.publish(&self.shared);
        self.prune_shared();
        self.stats.revalidated += changed as u64;
        changed
    }

    /// Drops the rule paths and masks no megaflow holds any more. A mask is
    /// released once the other copy of the table and the loops' caches let
    /// go of its megaflows: a later pass drops it.
    fn prune_shared(&mut self) {
        self.paths.prune();
        self.masks.prune();
    }

    /// Work for an idle moment: brings the private copy of the megaflow
    /// table up to date if the loops have let go of it, so that the next
    /// upcall does not wait for it or replay a large change.
    pub fn idle(&mut self) {
        self.publisher.settle();
    }

    /// A recirculation-id collection pass (periodic): the ids that
    /// installed megaflows match on or recirculate to are in use; the
    /// rest are freed after their grace ([`crate::recirc::GRACE_PASSES`]).
    /// Returns how many were freed.
    pub fn collect_recirc(&mut self) -> usize {
        let mut in_use = Vec::new();
        for (_, mf) in self.megaflows.iter_mut() {
            let rid = OfFlow::from_key(&mf.flow.key()).recirc_id();
            if rid != 0 {
                in_use.push(rid);
            }
            for a in mf.flow.actions.iter() {
                if let fastpath::DpAction::Recirc(id) = a {
                    in_use.push(*id);
                }
            }
        }
        let n = self.ofproto.recirc.lock().unwrap_or_else(|p| p.into_inner()).collect(in_use);
        self.stats.recirc_freed += n as u64;
        n
    }

    /// Re-ranks subtables by hits (periodic).
    pub fn rerank(&mut self) {
        self.publisher.change(Op::Rerank);
        self.publisher.publish(&self.shared);
        self.shared.flows.load().reset_hits();
    }

    /// Applies flow commands one at a time, each its own transaction (as
    /// OpenFlow FLOW_MODs are: a refused one changes nothing, the others
    /// apply), then revalidates the megaflows once.
    pub fn apply_each(&mut self, cmds: &[config::ofctl::FlowCommand]) -> Vec<Result<(), crate::ofproto::FlowModError>> {
        self.apply_each_from(cmds, 0)
    }

    /// [`SlowPath::apply_each`] for `origin` (an OpenFlow connection's id,
    /// which the changes' events carry).
    pub fn apply_each_from(
        &mut self,
        cmds: &[config::ofctl::FlowCommand],
        origin: u64,
    ) -> Vec<Result<(), crate::ofproto::FlowModError>> {
        let r =
            cmds.iter().map(|c| self.ofproto.apply_from(std::slice::from_ref(c), origin).map_err(|(_, e)| e)).collect();
        self.revalidate();
        r
    }

    /// Applies commands as one transaction (an OpenFlow bundle): all or
    /// none, then one revalidation, so the datapath goes from the old
    /// tables to the new in one publish.
    pub fn apply_atomic(
        &mut self,
        cmds: &[config::ofctl::FlowCommand],
        origin: u64,
    ) -> Result<(), (usize, crate::ofproto::FlowModError)> {
        let r = self.ofproto.apply_from(cmds, origin);
        self.revalidate();
        r
    }

    /// Credits the rules, then removes the flows whose idle or hard timeout
    /// has passed (revalidating if any went); returns how many.
    pub fn expire_rules(&mut self) -> usize {
        if !self.ofproto.has_timeouts() {
            return 0;
        }
        self.credit_rules();
        let n = self.ofproto.expire(Instant::now());
        if n > 0 {
            self.revalidate();
        }
        n
    }

    /// Carries out a command.
    pub fn command(&mut self, c: Command) {
        match c {
            Command::FlowMods(cmds, reply) => {
                let r = self.ofproto.apply(&cmds);
                self.revalidate();
                let _ = reply.send(r);
            }
            Command::Tunnel(t) => self.shared.tunnel.store(Arc::new(t)),
            Command::ReplaceFlows(new, reply) => {
                let old: Vec<config::ofctl::FlowSpec> =
                    self.ofproto.rules(None).iter().map(|r| r.spec.clone()).collect();
                let cmds = crate::ofproto::flow_diff(&old, &new);
                let r = self.ofproto.apply(&cmds).map(|_| cmds.len());
                self.revalidate();
                let _ = reply.send(r);
            }
            Command::Call(f) => f(self),
            Command::Ports(p) => {
                self.ofproto.ports = p;
                self.ofproto.touch();
                self.revalidate();
            }
        }
    }

    /// The thread body: batches of upcalls and commands until the upcall
    /// channel closes or `stop` returns true; periodic crediting, expiry and
    /// re-ranking. A table change is revalidated as soon as it is applied.
    pub fn run_with(&mut self, rx: &Receiver<Upcall>, cmds: &Receiver<Command>, stop: impl Fn() -> bool) {
        let mut batch: Vec<Upcall> = Vec::with_capacity(UPCALL_BATCH);
        let mut last_tick = Instant::now();
        let mut ticks = 0u64;
        let mut cmds = cmds.clone();
        loop {
            crossbeam_channel::select! {
                recv(rx) -> u => match u {
                    Ok(u) => {
                        batch.push(u);
                        while batch.len() < UPCALL_BATCH {
                            match rx.try_recv() {
                                Ok(u) => batch.push(u),
                                Err(_) => break,
                            }
                        }
                        self.handle(&batch);
                        batch.clear();
                    }
                    Err(_) => break,
                },
                recv(cmds) -> c => match c {
                    Ok(c) => self.command(c),
                    Err(_) => cmds = crossbeam_channel::never(),
                },
                default(Duration::from_millis(5)) => self.idle(),
            }
            self.revalidate();
            if last_tick.elapsed() >= Duration::from_millis(100) {
                last_tick = Instant::now();
                self.credit_rules();
                self.expire_rules();
                self.expire(IDLE_TIMEOUT);
                self.rerank();
                ticks += 1;
                if ticks.is_multiple_of(10) {
                    self.collect_recirc();
                }
            }
            if stop() {
                break;
            }
        }
        self.credit_rules();
    }

    /// [`SlowPath::run_with`] without a command channel.
    pub fn run(&mut self, rx: &Receiver<Upcall>, stop: impl Fn() -> bool) {
        let (_tx, cmds) = crossbeam_channel::bounded(1);
        self.run_with(rx, &cmds, stop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// node-d's tables and a slow path over them (one loop, replies drained
    /// by the caller).
    fn slow_path() -> (SlowPath, Receiver<UpcallReply>) {
        let c = config::yaml::Cluster::default_cluster();
        let r = config::render::render(&c, "node-d").unwrap();
        let of = Ofproto::with_flows(&r.flows).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let slow = SlowPath::new(of, Arc::new(Shared::default()), vec![tx], vec![Arc::new(PmdStats::default())]);
        (slow, rx)
    }

    /// Upcalls of pod 10.131.0.3 (port 4) to `n` external addresses from `base`.
    fn upcalls(base: u32, n: u32) -> Vec<Upcall> {
        (0..n)
            .map(|i| {
                let f = fastpath::wire::build_frame(2, 1, 0x0a83_0003, base + i, 17, 1024, 443, 64);
                let mut key = FlowKey::default();
                key.extract(&f, 4);
                Upcall { key, pmd: 0, len: 64 }
            })
            .collect()
    }

    fn ids(t: &FlowTable) -> BTreeSet<u32> {
        t.iter().map(|m| m.id).collect()
    }

    /// Recirculation ids live as long as a megaflow matches on or
    /// recirculates to them, and a grace after: a first pass freezes one
    /// state per source port (`reg0`), its megaflow recirculates; once the
    /// megaflows expire, the ids go after [`crate::recirc::GRACE_PASSES`]
    /// collection passes, and a packet that comes back after that is
    /// dropped as an unknown id instead of resuming a stale state.
    #[test]
    fn test_recirculation_ids_are_freed_after_their_megaflows() {
        use config::ofctl::{parse_flow_line, LineKind};
        let flows: Vec<_> = [
            "table=0, priority=10, ip, actions=move:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15], ct(table=30)",
            "table=30, priority=10, ip, actions=output:2",
        ]
        .iter()
        .map(|l| parse_flow_line(l, LineKind::Add).unwrap())
        .collect();
        let of = Ofproto::with_flows(&flows).unwrap();
        let (tx, _rx) = crossbeam_channel::unbounded();
        let mut slow = SlowPath::new(of, Arc::new(Shared::default()), vec![tx], vec![Arc::new(PmdStats::default())]);
        let batch: Vec<Upcall> = (3..6)
            .map(|port| {
                let f = fastpath::wire::build_frame(2, 1, 0x0a83_0003, 0x0a83_0004, 17, 1024, 443, 64);
                let mut key = FlowKey::default();
                key.extract(&f, port);
                Upcall { key, pmd: 0, len: 64 }
            })
            .collect();
        slow.handle(&batch);
        let recirc = |s: &SlowPath| s.ofproto.recirc.lock().unwrap().len();
        assert_eq!(recirc(&slow), 3, "one frozen state per port");
        let recircs: Vec<u32> = slow
            .shared
            .flows
            .load()
            .iter()
            .flat_map(|m| m.actions.to_vec())
            .filter_map(|a| if let fastpath::DpAction::Recirc(id) = a { Some(id) } else { None })
            .collect();
        assert_eq!(recircs.len(), 3, "each first pass's megaflow recirculates");
        let id = recircs.first().copied();
        for _ in 0..2 * crate::recirc::GRACE_PASSES {
            assert_eq!(slow.collect_recirc(), 0, "in use by installed megaflows");
        }
        assert_eq!(slow.expire(Duration::ZERO), 3);
        for _ in 1..crate::recirc::GRACE_PASSES {
            assert_eq!(slow.collect_recirc(), 0, "within the grace");
        }
        assert_eq!(slow.collect_recirc(), 3);
        assert_eq!((recirc(&slow), slow.stats.recirc_freed), (0, 3));
        // A straggler under a freed id: dropped, nothing resumed.
        let mut key = batch[0].key;
        let mut f = OfFlow::from_key(&key);
        f.set_recirc_id(id.unwrap());
        key = f.key();
        let x = crate::xlate::xlate_borrowed(&slow.ofproto, &OfFlow::from_key(&key), None);
        assert_eq!(x.drop.map(|d| d.kind), Some(crate::xlate::PipelineDropKind::UnknownRecirc));
    }

    /// Both copies of the left-right table end up holding exactly the
    /// megaflows the slow path has installed, through installs (with
    /// repeats inside a batch), a mass expiry settled while idle, and
    /// reinstalls that reuse the expired ids.
    #[test]
    fn test_copies_agree_through_install_expire_reinstall() {
        let (mut slow, replies) = slow_path();
        let mut batch = upcalls(0x0800_0000, 1500);
        batch.extend(upcalls(0x0800_0000, 100)); // repeats: covered by this batch's megaflows
        for chunk in batch.chunks(UPCALL_BATCH) {
            slow.handle(chunk);
        }
        assert_eq!(replies.try_iter().count(), 1600, "every upcall is answered");
        assert_eq!(slow.stats.installed, 1500);
        assert_eq!(slow.stats.already_installed, 100);
        let installed: BTreeSet<u32> = slow.megaflows.ids().into_iter().collect();
        assert_eq!(installed.len(), 1500);
        assert_eq!(ids(&slow.shared.flows.load()), installed);

        assert_eq!(slow.expire(Duration::ZERO), 1500);
        assert!(slow.shared.flows.load().is_empty());
        slow.idle();
        assert!(slow.publisher.held.is_none(), "no loop holds the old copy: it is brought up to date at once");
        assert!(slow.publisher.table().is_empty());

        // Ids leave quarantine after a second; then they are reused.
        for u in &mut slow.ids.quarantine {
            u.0 -= Duration::from_secs(2);
        }
        slow.handle(&upcalls(0x0900_0000, 800));
        let again: BTreeSet<u32> = slow.megaflows.ids().into_iter().collect();
        assert!(again.is_subset(&installed), "expired ids are reused");
        assert_eq!(ids(&slow.shared.flows.load()), again);
        slow.idle();
        assert_eq!(ids(slow.publisher.table()), again);
        for u in upcalls(0x0900_0000, 800) {
            assert!(slow.shared.flows.load().lookup(&u.key).is_some());
        }
        for u in upcalls(0x0800_0000, 1500) {
            assert!(slow.shared.flows.load().lookup(&u.key).is_none(), "an expired megaflow still matches");
        }
    }

    /// Megaflows that took the same path through the tables share one rule
    /// list, and megaflows of one subtable one mask; a path no megaflow
    /// holds is dropped, and with it the last reference to a rule deleted
    /// from the tables.
    #[test]
    fn test_paths_and_masks_are_shared_and_pruned() {
        let (mut slow, replies) = slow_path();
        slow.handle(&upcalls(0x0800_0000, 500)); // external: tables 0, 20, 21, 30, 100 (egress IP)
        slow.handle(&upcalls(0x0a83_0004, 1)); // to pod 10.131.0.4: table 70, not 100
        assert_eq!(slow.paths.len(), 2);
        let first = slow.megaflows.get(slow.megaflows.ids()[0]).unwrap().rules.clone();
        let sharing = slow.megaflows.iter_mut().filter(|(_, m)| Arc::ptr_eq(&m.rules, &first)).count();
        assert_eq!(sharing, 500, "the external flows share one path");
        let mask = slow.megaflows.get(slow.megaflows.ids()[0]).unwrap().flow.mask.clone();
        let sharing = slow.megaflows.iter_mut().filter(|(_, m)| Arc::ptr_eq(&m.flow.mask, &mask)).count();
        assert_eq!(sharing, 500, "the external flows share one mask");
        drop(mask);
        assert_eq!(slow.masks.len(), slow.shared.flows.load().stats().iter().map(|s| s.2).sum::<usize>());
        let egress = first.iter().find(|r| r.table == 100).expect("external flows leave through table 100");
        let deleted = Arc::downgrade(&egress.rule);
        drop(first);

        let pat = config::ofctl::parse_flow_line("table=100, ip, reg0=0x2be3", config::ofctl::LineKind::Match).unwrap();
        assert_eq!(slow.ofproto.delete_flows(&pat, false), 1);
        assert_eq!(slow.revalidate(), 500, "every external megaflow now leaves through tun0 (table 101)");
        assert_eq!(slow.paths.len(), 2, "the old path went, the new one came");
        assert!(deleted.upgrade().is_none(), "the deleted rule is still held");
        assert_eq!(slow.expire(Duration::ZERO), 501);
        assert_eq!(slow.paths.len(), 0);
        // The replies and the other copy of the table still hold the
        // megaflows (and so their masks) until drained and brought up to date.
        assert_eq!(replies.try_iter().count(), 501);
        slow.idle();
        assert_eq!(slow.expire(Duration::ZERO), 0);
        assert_eq!(slow.masks.len(), 0);
    }
}
