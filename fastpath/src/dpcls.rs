//! The megaflow classifier: tuple space search over the datapath key, one
//! classifier per input port (every megaflow matches in_port exactly).
//!
//! Readers (the poll loops) never lock: the slow path publishes
//! [`FlowTable`] snapshots RCU-style through `arc_swap`, alternating between
//! two copies (left-right: the private copy is updated, published, and the
//! other one becomes private once no loop reads it; see
//! `slowpath::upcall`); a poll loop loads the current snapshot once per
//! burst. A removed megaflow is marked dead so that EMC entries pointing at
//! it miss from then on.
//!
//! Subtables are probed in rank order; the slow path re-ranks them by hit
//! counts periodically ([`FlowTable::rerank`]). Hit counters are relaxed
//! atomics bumped once per burst and subtable, not per packet.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use hashbrown::HashTable;

use crate::actions::{Actions, DpAction, MfActions};
use crate::flow::{loc, same_key, same_words, FlowKey, BASE_WORDS, KEY_WORDS};

/// An installed megaflow.
#[derive(Debug)]
pub struct Megaflow {
    /// The masked key's base words.
    base: [u64; BASE_WORDS],
    /// Its connection-tracking words, kept only where one is set (a mask
    /// that covers them and a value other than zero: none of the OpenShift
    /// SDN tables' megaflows), so that a megaflow and its reference counts
    /// fit 128 bytes (see [`MfActions`]).
    ct: Option<Box<[u64; KEY_WORDS - BASE_WORDS]>>,
    /// Mask (shared by the megaflows of a subtable).
    pub mask: Arc<FlowKey>,
    /// Datapath actions.
    pub actions: MfActions,
    /// Identifier (stable for the megaflow's life; indexes per-core stats).
    pub id: u32,
    /// Set by the slow path when the megaflow is removed.
    pub dead: AtomicBool,
    /// Number of actions that take the frame or a copy (outputs, VXLAN
    /// pushes, recirculations; precomputed for the poll loop).
    pub n_outputs: u8,
    /// Whether an action pushes a VXLAN header (the only one that reads
    /// the packet's hash: a recirculated packet's is computed for it
    /// alone, or for the EMC).
    pub tunnels: bool,
}

// With the two reference counts before it, 128 bytes: two cache lines.
const _: () = assert!(std::mem::size_of::<Megaflow>() == 112);

impl Megaflow {
    /// A live megaflow (`key` is masked here). `actions` is taken by move
    /// (an [`Actions`]) or cloned (a slice). Always inlined: the slow path
    /// builds it straight into its `Arc`, where out of line it was built on
    /// the stack and copied (8 % of the warm upcall rate at 200k flows).
    #[inline(always)]
    pub fn new(key: FlowKey, mask: impl Into<Arc<FlowKey>>, actions: impl Into<Actions>, id: u32) -> Megaflow {
        let mut mask = mask.into();
        let actions = actions.into();
        if !mask.tracked() && mask.w[crate::flow::BASE_WORDS..].iter().any(|&w| w != 0) {
            Arc::make_mut(&mut mask).normalize_mask();
        }
        let key = key.masked(&mask);
        let ct = key.ct_words().iter().any(|&w| w != 0).then(|| Box::new(*key.ct_words()));
        Megaflow {
            base: *key.base(),
            ct,
            mask,
            id,
            dead: AtomicBool::new(false),
            n_outputs: actions.iter().filter(|a| !matches!(a, DpAction::Set(_) | DpAction::Ct(_))).count().min(255)
                as u8,
            tunnels: actions.iter().any(|a| matches!(a, DpAction::TunnelPush { .. })),
            actions: actions.into(),
        }
    }

    /// The masked key.
    #[inline]
    pub fn key(&self) -> FlowKey {
        let mut k = FlowKey::default();
        k.w[..BASE_WORDS].copy_from_slice(&self.base);
        k.w[BASE_WORDS..].copy_from_slice(self.ct_words());
        k
    }

    /// The masked key's base words.
    #[inline]
    pub fn base(&self) -> &[u64; BASE_WORDS] {
        &self.base
    }

    /// The masked key's connection-tracking words.
    #[inline]
    pub fn ct_words(&self) -> &[u64; KEY_WORDS - BASE_WORDS] {
        self.ct.as_deref().unwrap_or(&[0; KEY_WORDS - BASE_WORDS])
    }
}

impl Megaflow {
    /// Whether `key` is inside this megaflow.
    #[inline]
    pub fn matches(&self, key: &FlowKey) -> bool {
        let ct = self.ct_words();
        (0..BASE_WORDS).all(|i| key.w[i] & self.mask.w[i] == self.base[i])
            && (BASE_WORDS..KEY_WORDS).all(|i| key.w[i] & self.mask.w[i] == ct[i - BASE_WORDS])
    }

    /// [`words_hash`] of the key (masked already, by its mask, the
    /// subtable's), without reading it back whole where it is untracked.
    #[inline]
    fn hash(&self) -> u64 {
        if self.base[loc::CT_STATE.word] & crate::flow::TRK_BIT != 0 {
            words_hash(&self.key())
        } else {
            base_hash(&self.base)
        }
    }

    /// Whether the key's words are these.
    #[inline]
    fn has_words(&self, base: &[u64; BASE_WORDS], ct: &[u64; KEY_WORDS - BASE_WORDS]) -> bool {
        same_words(base, &self.base) && ct == self.ct_words()
    }

    /// A field of the key's base words.
    #[inline]
    fn base_field(&self, l: crate::flow::FieldLoc) -> u64 {
        (self.base[l.word] >> l.shift) & l.mask
    }
}

/// A subtable's hash of a masked key: the key hash's two chains over every
/// word (no loop over the mask's words, no serial multiply per word), then
/// a multiply that mixes the halves so that the low bits (the bucket) and
/// the top ones (hashbrown's tag) both depend on every input bit.
#[inline]
fn words_hash(k: &FlowKey) -> u64 {
    mix(crate::flow::word_chains(&k.w))
}

/// [`words_hash`] of an untracked masked key given by its base words.
#[inline]
fn base_hash(w: &[u64; BASE_WORDS]) -> u64 {
    mix(crate::flow::base_chains(w))
}

#[inline(always)]
fn mix((a, b): (u64, u64)) -> u64 {
    let h = a ^ b.rotate_left(32);
    let h = (h ^ (h >> 32)).wrapping_mul(0xd6e8_feb8_6659_fd93);
    h ^ (h >> 32)
}

/// Keys a burst lookup reads by index: a slice of keys, or the keys inside
/// the entries of a recirculation queue (looked up where they lie, not
/// copied out first).
pub trait KeyAt {
    /// The `i`-th key.
    fn key_at(&self, i: usize) -> &FlowKey;
}

impl KeyAt for [FlowKey] {
    #[inline(always)]
    fn key_at(&self, i: usize) -> &FlowKey {
        &self[i]
    }
}

impl KeyAt for [crate::recirc::Recirculating] {
    #[inline(always)]
    fn key_at(&self, i: usize) -> &FlowKey {
        &self[i].key
    }
}

/// Megaflows sharing one mask.
#[derive(Clone, Debug)]
pub struct Subtable {
    mask: FlowKey,
    /// The mask as the first megaflow here shared it: the slow path interns
    /// masks, so an insertion finds its subtable by pointer.
    shared: Arc<FlowKey>,
    /// Whether the mask covers connection-tracking words (beyond
    /// `ct_state`, which is a base word's); otherwise keys are masked,
    /// hashed and compared on their base words alone.
    ct: bool,
    /// (hash of the masked key, megaflow).
    flows: HashTable<(u64, Arc<Megaflow>)>,
    n_flows: usize,
    /// Hits since the last re-ranking (bumped by readers).
    hits: Arc<AtomicU64>,
    /// The recirculation ids of its megaflows as [`recirc_bit`]s (every
    /// bit where the mask does not match `recirc_id` whole): a burst skips
    /// the subtable when none of its keys' ids is here. A superset: bits
    /// stay when megaflows go (the subtable goes with its last one).
    recirc: u64,
}

/// A recirculation id's bit in a subtable's [`Subtable`] id set and in a
/// burst's (`ids` of [`Dpcls::lookup_burst_in`]): the id modulo 64, so
/// that a recirculated pass skips the subtables that hold only other ids'
/// megaflows (as a per-recirc-id classifier would, without one per id). A
/// first pass (every key id 0) does not test the sets.
#[inline(always)]
pub fn recirc_bit(id: u64) -> u64 {
    1 << (id & 63)
}

impl Subtable {
    fn new(shared: Arc<FlowKey>) -> Subtable {
        let mask = *shared;
        let ct = mask.w[BASE_WORDS..].iter().any(|&w| w != 0);
        let recirc = if mask.get(loc::RECIRC_ID) == 0xffff_ffff { 0 } else { u64::MAX };
        Subtable { mask, shared, ct, flows: HashTable::new(), n_flows: 0, hits: Arc::new(AtomicU64::new(0)), recirc }
    }

    #[inline]
    fn hash(&self, key: &FlowKey) -> u64 {
        words_hash(&key.masked(&self.mask))
    }

    #[inline]
    fn lookup(&self, key: &FlowKey) -> Option<&Arc<Megaflow>> {
        if self.ct {
            self.find(&key.masked(&self.mask))
        } else {
            self.find_base(&key.masked_base(&self.mask))
        }
    }

    /// [`Subtable::find`] for a mask without connection-tracking words: the
    /// masked key's base words (its other words are zero, as are those of
    /// every megaflow here), hashed and compared alone.
    #[inline(always)]
    fn find_base(&self, masked: &[u64; BASE_WORDS]) -> Option<&Arc<Megaflow>> {
        let h = base_hash(masked);
        self.flows.find(h, |(eh, m)| *eh == h && same_words(masked, m.base())).map(|e| &e.1)
    }

    /// The megaflow whose key is `masked` (a key under this subtable's
    /// mask): hashed whole, and each candidate compared on all words
    /// without branching (vectorised; a megaflow's key is zero outside its
    /// mask).
    #[inline]
    fn find(&self, masked: &FlowKey) -> Option<&Arc<Megaflow>> {
        let h = words_hash(masked);
        self.flows.find(h, |(eh, m)| *eh == h && m.has_words(masked.base(), masked.ct_words())).map(|e| &e.1)
    }
}

impl Subtable {
    /// Probes the keys of `todo` (see [`Dpcls::lookup_burst`]); returns
    /// those found. A key whose masked form equals the previous one's takes
    /// that result.
    #[inline]
    fn probe_burst<'a, K: KeyAt + ?Sized>(&'a self, keys: &K, todo: u32, hit: &mut [Option<&'a Arc<Megaflow>>]) -> u32 {
        let mut last: Option<(FlowKey, Option<&'a Arc<Megaflow>>)> = None;
        let mut found = 0u32;
        let mut m = todo;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            let masked = keys.key_at(i).masked(&self.mask);
            let r = match last {
                Some((k, r)) if same_key(&k, &masked) => r,
                _ => {
                    let r = self.find(&masked);
                    last = Some((masked, r));
                    r
                }
            };
            if let Some(mf) = r {
                hit[i] = Some(mf);
                found |= 1 << i;
            }
        }
        found
    }

    /// [`Subtable::probe_burst`] on base words (a mask without
    /// connection-tracking words: every untracked flow's).
    #[inline(always)]
    fn probe_burst_base<'a, K: KeyAt + ?Sized>(
        &'a self,
        keys: &K,
        todo: u32,
        hit: &mut [Option<&'a Arc<Megaflow>>],
    ) -> u32 {
        let mut last: Option<([u64; BASE_WORDS], Option<&'a Arc<Megaflow>>)> = None;
        let mut found = 0u32;
        let mut m = todo;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            let masked = keys.key_at(i).masked_base(&self.mask);
            let r = match last {
                Some((k, r)) if same_words(&k, &masked) => r,
                _ => {
                    let r = self.find_base(&masked);
                    last = Some((masked, r));
                    r
                }
            };
            if let Some(mf) = r {
                hit[i] = Some(mf);
                found |= 1 << i;
            }
        }
        found
    }
}

/// The classifier of one input port.
#[derive(Clone, Debug, Default)]
pub struct Dpcls {
    /// The subtables on base words first (`..n_base`), then those whose
    /// mask covers connection-tracking words; each part in rank order. A
    /// burst probes the first part without a test per subtable.
    subtables: Vec<Subtable>,
    n_base: usize,
}

impl Dpcls {
    /// The megaflow matching `key` and the rank of the subtable it was found in.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<(&Arc<Megaflow>, usize)> {
        for (i, st) in self.subtables.iter().enumerate() {
            if let Some(m) = st.lookup(key) {
                return Some((m, i));
            }
        }
        None
    }

    /// Looks up the keys whose bit is set in `todo` (bit `i` for `keys[i]`),
    /// subtable by subtable in rank order, as OVS's dpcls does a burst.
    /// A subtable remembers its last probe: a key whose masked form equals
    /// the previous one's (frames of flows that share a megaflow, the usual
    /// burst) takes that result without hashing or probing. Writes the hits
    /// into `hit`, counts them per rank (the last slot takes ranks ≥ 7) and
    /// returns the keys that missed. With `BY_ID` (recirculated keys),
    /// `ids` holds the [`recirc_bit`]s of the keys' recirculation ids (at
    /// least), and a subtable with none of them is not probed (a
    /// recirculated pass probes only the subtables that hold its ids'
    /// megaflows, as a classifier per recirculation id would); without it
    /// (a first pass's keys, id 0) every subtable is, as before.
    #[inline(always)]
    pub fn lookup_burst_in<'a, const BY_ID: bool, K: KeyAt + ?Sized>(
        &'a self,
        keys: &K,
        mut todo: u32,
        ids: u64,
        hit: &mut [Option<&'a Arc<Megaflow>>],
        rank_hits: &mut [u64; 8],
    ) -> u32 {
        let (base, ct) = self.subtables.split_at(self.n_base);
        for (rank, st) in base.iter().enumerate() {
            if todo == 0 {
                return 0;
            }
            if BY_ID && st.recirc & ids == 0 {
                continue;
            }
            let found = st.probe_burst_base(keys, todo, hit);
            rank_hits[rank.min(7)] += found.count_ones() as u64;
            todo &= !found;
        }
        for (rank, st) in ct.iter().enumerate() {
            if todo == 0 {
                break;
            }
            if BY_ID && st.recirc & ids == 0 {
                continue;
            }
            let found = st.probe_burst(keys, todo, hit);
            rank_hits[(self.n_base + rank).min(7)] += found.count_ones() as u64;
            todo &= !found;
        }
        todo
    }

    /// Credits `n` hits to the subtable at `rank`.
    #[inline]
    pub fn credit(&self, rank: usize, n: u64) {
        if let Some(st) = self.subtables.get(rank) {
            st.hits.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Number of megaflows.
    pub fn len(&self) -> usize {
        self.subtables.iter().map(|s| s.n_flows).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.subtables.is_empty()
    }

    /// Number of subtables.
    pub fn n_subtables(&self) -> usize {
        self.subtables.len()
    }

    fn insert(&mut self, m: Arc<Megaflow>) {
        let found = self
            .subtables
            .iter()
            .position(|s| Arc::ptr_eq(&s.shared, &m.mask))
            .or_else(|| self.subtables.iter().position(|s| same_key(&s.mask, &m.mask)));
        let idx = match found {
            Some(i) => i,
            None => {
                let st = Subtable::new(m.mask.clone());
                if st.ct {
                    self.subtables.push(st);
                    self.subtables.len() - 1
                } else {
                    self.subtables.insert(self.n_base, st);
                    self.n_base += 1;
                    self.n_base - 1
                }
            }
        };
        let st = &mut self.subtables[idx];
        st.recirc |= recirc_bit(m.base_field(loc::RECIRC_ID));
        let h = m.hash();
        debug_assert_eq!(h, st.hash(&m.key()));
        if let Some(old) = st.flows.find_mut(h, |(eh, x)| *eh == h && x.has_words(&m.base, m.ct_words())) {
            old.1.dead.store(true, Ordering::Release);
            old.1 = m;
        } else {
            st.flows.insert_unique(h, (h, m), |e| e.0);
            st.n_flows += 1;
        }
    }

    fn remove(&mut self, key: &FlowKey, mask: &FlowKey) -> Option<Arc<Megaflow>> {
        let idx = self.subtables.iter().position(|s| same_key(&s.mask, mask))?;
        let st = &mut self.subtables[idx];
        let h = st.hash(key);
        let entry = st.flows.find_entry(h, |(eh, x)| *eh == h && x.has_words(key.base(), key.ct_words())).ok()?;
        let ((_, m), _) = entry.remove();
        st.n_flows -= 1;
        if st.n_flows == 0 {
            self.subtables.remove(idx);
            if idx < self.n_base {
                self.n_base -= 1;
            }
        }
        m.dead.store(true, Ordering::Release);
        Some(m)
    }

    /// Every megaflow.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Megaflow>> {
        self.subtables.iter().flat_map(|s| s.flows.iter().map(|e| &e.1))
    }
}

/// The classifier of one input port as the poll loop sees it.
#[derive(Clone, Copy, Debug)]
pub struct PortView<'a> {
    cls: Option<&'a Dpcls>,
}

impl<'a> PortView<'a> {
    /// The megaflow matching `key` and the rank of its subtable.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<(&'a Arc<Megaflow>, usize)> {
        self.cls.and_then(|c| c.lookup(key))
    }

    /// [`Dpcls::lookup_burst_in`] of a first pass's keys: every subtable
    /// probed (every key misses where the port has no megaflows).
    #[inline]
    pub fn lookup_burst<K: KeyAt + ?Sized>(
        &self,
        keys: &K,
        todo: u32,
        hit: &mut [Option<&'a Arc<Megaflow>>],
        rank_hits: &mut [u64; 8],
    ) -> u32 {
        self.cls.map_or(todo, |c| c.lookup_burst_in::<false, K>(keys, todo, 0, hit, rank_hits))
    }

    /// [`Dpcls::lookup_burst_in`] of recirculated keys whose ids' bits are
    /// `ids`: only the subtables holding one of them probed.
    #[inline]
    pub fn lookup_burst_recirc<K: KeyAt + ?Sized>(
        &self,
        keys: &K,
        todo: u32,
        ids: u64,
        hit: &mut [Option<&'a Arc<Megaflow>>],
        rank_hits: &mut [u64; 8],
    ) -> u32 {
        self.cls.map_or(todo, |c| c.lookup_burst_in::<true, K>(keys, todo, ids, hit, rank_hits))
    }

    /// Credits hits to a subtable.
    #[inline]
    pub fn credit(&self, rank: usize, n: u64) {
        if let Some(c) = self.cls {
            c.credit(rank, n);
        }
    }
}

/// All megaflows of the datapath: a classifier per input port. The slow
/// path keeps two copies and publishes them alternately (see
/// `slowpath::upcall`), so installing never copies a table.
#[derive(Clone, Debug, Default)]
pub struct FlowTable {
    /// Indexed by input port (empty classifiers for ports without flows).
    ports: Vec<Dpcls>,
}

impl FlowTable {
    /// The classifier of an input port.
    #[inline]
    pub fn port(&self, in_port: u32) -> PortView<'_> {
        PortView { cls: self.ports.get(in_port as usize).filter(|c| !c.is_empty()) }
    }

    /// Looks a key up.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<&Arc<Megaflow>> {
        self.port(key.get(loc::IN_PORT) as u32).lookup(key).map(|(m, _)| m)
    }

    /// Installs (or replaces) a megaflow. Its mask must include in_port.
    pub fn insert(&mut self, m: Arc<Megaflow>) {
        debug_assert_eq!(m.mask.get(loc::IN_PORT), 0xffff_ffff);
        let i = m.base_field(loc::IN_PORT) as usize;
        if i >= self.ports.len() {
            self.ports.resize_with(i + 1, Dpcls::default);
        }
        self.ports[i].insert(m);
    }

    /// Removes a megaflow (marks it dead).
    pub fn remove(&mut self, key: &FlowKey, mask: &FlowKey) -> Option<Arc<Megaflow>> {
        self.ports.get_mut(key.get(loc::IN_PORT) as usize)?.remove(key, mask)
    }

    /// Number of megaflows.
    pub fn len(&self) -> usize {
        self.ports.iter().map(Dpcls::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ports.iter().all(Dpcls::is_empty)
    }

    /// Every megaflow.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Megaflow>> {
        self.ports.iter().flat_map(Dpcls::iter)
    }

    /// Orders each port's subtables by their hit counters, most first. Each
    /// copy of the left-right table counts the hits made while it was the
    /// published one (the copies alternate at every publish, so each sees a
    /// sample of the traffic); [`FlowTable::reset_hits`] restarts them. The
    /// order only decides which subtable is probed first: megaflows never
    /// overlap, so the copies may rank differently without any effect on
    /// the result.
    pub fn rerank(&mut self) {
        for cls in self.ports.iter_mut() {
            // Each part in rank order; the base part stays first.
            let n = cls.n_base;
            cls.subtables[..n].sort_by_key(|s| std::cmp::Reverse(s.hits.load(Ordering::Relaxed)));
            cls.subtables[n..].sort_by_key(|s| std::cmp::Reverse(s.hits.load(Ordering::Relaxed)));
        }
    }

    /// Restarts the subtable hit counters.
    pub fn reset_hits(&self) {
        for cls in &self.ports {
            for s in &cls.subtables {
                s.hits.store(0, Ordering::Relaxed);
            }
        }
    }

    /// (in_port, megaflows, subtables) per port.
    pub fn stats(&self) -> Vec<(u32, usize, usize)> {
        self.ports
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.is_empty())
            .map(|(p, c)| (p as u32, c.len(), c.n_subtables()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mf(key: FlowKey, mask: FlowKey, id: u32) -> Arc<Megaflow> {
        Arc::new(Megaflow::new(key, mask, [DpAction::Output(id)], id))
    }

    /// The subtable hash spreads structured keys (sequential ports, then
    /// addresses and ports together, as traffic makes them): no two of
    /// 262,144 keys share a hash, and no bucket of 65,536 holds more than a
    /// few times its share in the low bits (bucket index), and the top 7
    /// (hashbrown's tag) are even.
    #[test]
    fn test_words_hash_spreads_structured_keys() {
        let mut base = FlowKey::default();
        base.extract(&crate::wire::build_frame(2, 1, 0x0a83_0003, 0x0a83_0004, 17, 1024, 80, 64), 4);
        let mut hashes = Vec::new();
        for i in 0..(1u64 << 18) {
            let mut k = base;
            if i < 1 << 17 {
                k.set(loc::TP_SRC, i & 0xffff);
                k.set(loc::TP_DST, 80 + (i >> 16));
            } else {
                k.set(loc::NW_SRC, 0x0a80_0000 + (i & 0x3ff));
                k.set(loc::NW_DST, 0x0a80_0000 + ((i >> 10) & 0xff));
                k.set(loc::TP_DST, i & 0x7);
            }
            hashes.push(words_hash(&k));
        }
        let mut sorted = hashes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), hashes.len(), "full-hash collisions");
        let mut low = vec![0u32; 1 << 16];
        let mut tag = [0u32; 128];
        for h in &hashes {
            low[(h & 0xffff) as usize] += 1;
            tag[(h >> 57) as usize] += 1;
        }
        // A uniform hash (Poisson, mean 4) fills the fullest of 65,536
        // buckets to about 14; this one reaches 17 (the serial per-word
        // hash it replaced, 13).
        assert!(low.iter().all(|&n| n <= 20), "bucket load up to {}, mean 4", low.iter().max().unwrap());
        let mean = hashes.len() as u32 / 128;
        assert!(tag.iter().all(|&n| n > mean * 8 / 10 && n < mean * 12 / 10), "tags {tag:?}");
    }

    /// A megaflow keeps its connection-tracking words only where one is
    /// set: out of line then, and none at all for zeros. Either way its key
    /// reads back whole, and the table finds it by those words.
    #[test]
    fn test_megaflow_ct_words_out_of_line() {
        let mut key = FlowKey::default();
        key.extract(&crate::wire::build_frame(2, 1, 0x0a83_0003, 0x0a83_0004, 6, 1024, 80, 64), 4);
        key.set(loc::CT_STATE, 0x22); // +trk+est
        let mut mask = FlowKey::default();
        for l in [loc::IN_PORT, loc::DL_TYPE, loc::CT_STATE, loc::CT_ZONE, loc::CT_MARK, loc::CT_LABEL_HI] {
            mask.set(l, u64::MAX);
        }
        let (mut marked, mut plain) = (key, key);
        marked.set(loc::CT_ZONE, 5);
        marked.set(loc::CT_MARK, 0xdead);
        marked.set(loc::CT_LABEL_HI, 1 << 63);
        plain.set(loc::CT_MARK, 0);
        let (a, b) = (mf(marked, mask, 1), mf(plain, mask, 2));
        assert!(a.ct.is_some() && b.ct.is_none());
        assert_eq!(a.key(), marked.masked(&mask));
        assert_eq!(b.key(), plain.masked(&mask));
        assert_eq!(a.ct_words()[0], marked.w[8], "zone and mark");
        assert!(a.matches(&marked) && !a.matches(&plain) && b.matches(&plain) && !b.matches(&marked));
        let mut t = FlowTable::default();
        t.insert(a.clone());
        t.insert(b.clone());
        assert_eq!(t.lookup(&marked).map(|m| m.id), Some(1));
        assert_eq!(t.lookup(&plain).map(|m| m.id), Some(2));
        let mut other = marked;
        other.set(loc::CT_LABEL_HI, 1);
        assert!(t.lookup(&other).is_none(), "a label bit differs");
        assert_eq!(t.remove(&a.key(), &mask).map(|m| m.id), Some(1));
        assert!(t.lookup(&marked).is_none());
        assert_eq!(t.lookup(&plain).map(|m| m.id), Some(2));
    }

    /// Random non-overlapping megaflows vs a linear scan.
    #[test]
    fn test_lookup_equals_linear() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let masks: Vec<FlowKey> = (0..6)
            .map(|i| {
                let mut m = FlowKey::default();
                m.set(loc::IN_PORT, u64::MAX);
                m.set(loc::NW_DST, if i % 2 == 0 { 0xffff_ff00 } else { 0xffff_ffff });
                if i >= 2 {
                    m.set(loc::NW_SRC, 0xffff_ffff);
                }
                if i >= 4 {
                    m.set(loc::TP_DST, 0xffff);
                }
                // Some subtables hold one recirculation id's megaflows.
                if i % 3 == 0 {
                    m.set(loc::RECIRC_ID, 0xffff_ffff);
                }
                m
            })
            .collect();
        // A key over a small space (in_port, addresses, port), so that
        // megaflows and keys meet often.
        let key = |rnd: &mut dyn FnMut() -> u64| {
            let mut k = FlowKey::default();
            k.set(loc::IN_PORT, rnd() % 3);
            k.set(loc::NW_DST, rnd() % 64);
            k.set(loc::NW_SRC, rnd() % 8);
            k.set(loc::TP_DST, rnd() % 4);
            // 0 and 64 share a bit of the subtables' id sets.
            k.set(loc::RECIRC_ID, [0, 1, 64][(rnd() % 3) as usize]);
            k
        };
        let mut t = FlowTable::default();
        let mut linear: Vec<Arc<Megaflow>> = Vec::new();
        for id in 0..500 {
            let k = key(&mut rnd);
            let m = mf(k, masks[(rnd() % 6) as usize], id);
            // Megaflows never overlap: skip one that would.
            let overlaps = linear
                .iter()
                .any(|o| (0..KEY_WORDS).all(|i| (o.key().w[i] ^ m.key().w[i]) & o.mask.w[i] & m.mask.w[i] == 0));
            if !overlaps {
                t.insert(m.clone());
                linear.push(m);
            }
        }
        for _ in 0..5000 {
            let k = key(&mut rnd);
            let want = linear.iter().find(|m| m.matches(&k)).map(|m| m.id);
            assert_eq!(t.lookup(&k).map(|m| m.id), want);
        }
        // Bursts: keys drawn from a few, in runs and interleaved, so that a
        // subtable's last probe is reused for hits and misses alike; the
        // burst lookup agrees with the linear scan key by key.
        let pool_keys: Vec<FlowKey> = (0..6).map(|_| key(&mut rnd)).collect();
        for round in 0..2000 {
            let port = rnd() % 3;
            let mut keys = [FlowKey::default(); 32];
            for (i, k) in keys.iter_mut().enumerate() {
                *k = if round % 2 == 0 { pool_keys[(rnd() % 6) as usize] } else { pool_keys[i / 8 % 6] };
                // Same megaflow, other key: vary a field most masks leave out.
                k.set(loc::TP_SRC, rnd() % 3);
                k.set(loc::IN_PORT, port);
            }
            let todo = (rnd() as u32) | 1;
            let ids =
                (0..32).filter(|i| todo & (1 << i) != 0).fold(0, |a, i| a | recirc_bit(keys[i].get(loc::RECIRC_ID)));
            for by_id in [false, true] {
                let mut hit = [None; 32];
                let mut ranks = [0u64; 8];
                let view = t.port(port as u32);
                let missed = if by_id {
                    view.lookup_burst_recirc(&keys[..], todo, ids, &mut hit, &mut ranks)
                } else {
                    view.lookup_burst(&keys[..], todo, &mut hit, &mut ranks)
                };
                assert_eq!(missed & !todo, 0);
                assert_eq!(ranks.iter().sum::<u64>(), (todo & !missed).count_ones() as u64);
                for i in 0..32 {
                    let want = if todo & (1 << i) != 0 {
                        linear.iter().find(|m| m.matches(&keys[i])).map(|m| m.id)
                    } else {
                        None
                    };
                    assert_eq!(hit[i].map(|m| m.id), want, "round {round} key {i} by_id {by_id}");
                    assert_eq!(missed & (1 << i) != 0, todo & (1 << i) != 0 && want.is_none());
                }
            }
        }
        // Removal marks dead and stops matching.
        let victim = linear.pop().unwrap();
        let removed = t.remove(&victim.key(), &victim.mask).unwrap();
        assert!(removed.dead.load(Ordering::Relaxed));
        assert!(t.lookup(&victim.key()).is_none_or(|m| m.id != victim.id));
        assert_eq!(t.len(), linear.len());
    }
}
