//! The exact-match cache: a per-core, fixed-size, direct-mapped cache from a
//! full flow key to its megaflow, probed before the classifier.
//!
//! Insertion is probabilistic (1 in `insert_inv_prob`, OVS's
//! `emc-insert-inv-prob`) and adaptive: over each window of lookups the hit
//! rate is measured, and when it falls below 25 % (many more flows than
//! entries: the EMC only costs cache misses) insertion stops and lookups are
//! skipped until a later probe window shows a better rate. Entries pointing
//! at dead megaflows miss and are swept on the next insert or by [`Emc::sweep`].
//! Not shared: each poll loop owns its EMC.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::dpcls::Megaflow;
use crate::flow::{same_words, FlowKey, BASE_WORDS, KEY_WORDS};

/// Entries (a power of two).
pub const EMC_ENTRIES: usize = 8192;
/// Lookups per hit-rate window.
const WINDOW: u64 = 1 << 16;

/// An entry: a key's base words and its megaflow, 72 bytes, as before the
/// key grew connection-tracking words; those of a tracked key are kept
/// apart ([`Emc::ct`]), so that untracked traffic touches no more memory
/// than it did.
#[derive(Clone, Debug, Default)]
struct Entry {
    base: [u64; BASE_WORDS],
    flow: Option<Arc<Megaflow>>,
}

/// A key's connection-tracking words.
type CtWords = [u64; KEY_WORDS - BASE_WORDS];

/// The cache.
pub struct Emc {
    entries: Box<[Entry; EMC_ENTRIES]>,
    /// The connection-tracking words of each entry's key, meaningful only
    /// where its base words say it is tracked (an untracked key's are all
    /// zero, and a base-word comparison tells the two kinds apart).
    ct: Box<[CtWords; EMC_ENTRIES]>,
    /// Insert one in this many misses (1 = always; 0 = never).
    pub insert_inv_prob: u32,
    rng: u32,
    enabled: bool,
    window_lookups: u64,
    window_hits: u64,
    /// Windows spent disabled (re-probe after a few).
    disabled_windows: u32,
    /// Times the EMC switched itself off for a low hit rate.
    pub n_auto_disabled: u64,
}

impl Default for Emc {
    fn default() -> Self {
        Emc::new(100)
    }
}

impl Emc {
    /// An empty cache inserting one in `insert_inv_prob` misses.
    pub fn new(insert_inv_prob: u32) -> Emc {
        Emc {
            entries: vec![Entry::default(); EMC_ENTRIES].into_boxed_slice().try_into().expect("EMC_ENTRIES"),
            ct: vec![CtWords::default(); EMC_ENTRIES].into_boxed_slice().try_into().expect("EMC_ENTRIES"),
            insert_inv_prob,
            rng: 0x2545_f491,
            enabled: insert_inv_prob != 0,
            window_lookups: 0,
            window_hits: 0,
            disabled_windows: 0,
            n_auto_disabled: 0,
        }
    }

    /// Whether lookups are currently done.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Looks up a key with its hash. Hits are counted by the caller with
    /// [`Emc::count_hits`] (once per burst), so that several results can be
    /// held at once.
    ///
    /// `key` must be untracked (a packet's first pass): it is compared on
    /// its base words alone (equal base words mean an equal `ct_state`, so
    /// the entry is untracked too and its other words are zero like the
    /// key's); a recirculated packet's key goes to [`Emc::peek_tracked`].
    #[inline]
    pub fn peek(&self, key: &FlowKey, hash: u32) -> Option<&Arc<Megaflow>> {
        debug_assert!(!key.tracked());
        let e = &self.entries[hash as usize & (EMC_ENTRIES - 1)];
        match &e.flow {
            Some(m) if same_words(&e.base, key.base()) && !m.dead.load(Ordering::Relaxed) => Some(m),
            _ => None,
        }
    }

    /// [`Emc::peek`] for any key, tracked or not (every word compared).
    #[inline]
    pub fn peek_tracked(&self, key: &FlowKey, hash: u32) -> Option<&Arc<Megaflow>> {
        let i = hash as usize & (EMC_ENTRIES - 1);
        let e = &self.entries[i];
        match &e.flow {
            Some(m)
                if same_words(&e.base, key.base())
                    && (!key.tracked() || same_words(&self.ct[i], key.ct_words()))
                    && !m.dead.load(Ordering::Relaxed) =>
            {
                Some(m)
            }
            _ => None,
        }
    }

    /// Counts hits found with [`Emc::peek`].
    #[inline]
    pub fn count_hits(&mut self, n: u64) {
        self.window_hits += n;
    }

    /// Accounts `n` lookups (once per burst) and adapts.
    #[inline]
    pub fn account(&mut self, n: u64) {
        self.window_lookups += n;
        if self.window_lookups < WINDOW {
            return;
        }
        let rate_ok = self.window_hits * 4 >= self.window_lookups;
        if self.enabled && !rate_ok && self.insert_inv_prob != 0 {
            self.enabled = false;
            self.n_auto_disabled += 1;
            self.disabled_windows = 0;
        } else if !self.enabled && self.insert_inv_prob != 0 {
            self.disabled_windows += 1;
            if self.disabled_windows >= 16 {
                self.enabled = true; // probe again
            }
        }
        self.window_lookups = 0;
        self.window_hits = 0;
    }

    /// Maybe inserts after a megaflow hit or install.
    #[inline]
    pub fn maybe_insert(&mut self, key: &FlowKey, hash: u32, m: &Arc<Megaflow>) {
        if !self.enabled {
            return;
        }
        if self.insert_inv_prob > 1 {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 17;
            self.rng ^= self.rng << 5;
            if !self.rng.is_multiple_of(self.insert_inv_prob) {
                return;
            }
        }
        let i = hash as usize & (EMC_ENTRIES - 1);
        let e = &mut self.entries[i];
        e.base = *key.base();
        e.flow = Some(m.clone());
        if key.tracked() {
            self.ct[i] = *key.ct_words();
        }
    }

    /// Drops entries whose megaflow died. Returns how many.
    pub fn sweep(&mut self) -> usize {
        let mut n = 0;
        for e in self.entries.iter_mut() {
            if e.flow.as_ref().is_some_and(|m| m.dead.load(Ordering::Relaxed)) {
                e.flow = None;
                n += 1;
            }
        }
        n
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.entries.iter().filter(|e| e.flow.is_some()).count()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::DpAction;
    use crate::flow::{loc, KEY_WORDS};

    fn key(port: u64) -> FlowKey {
        let mut k = FlowKey::default();
        k.set(loc::IN_PORT, 4);
        k.set(loc::TP_SRC, port);
        k
    }

    fn flow(k: FlowKey, out: u32) -> Arc<Megaflow> {
        Arc::new(Megaflow::new(k, FlowKey { w: [u64::MAX; KEY_WORDS] }, [DpAction::Output(out)], out))
    }

    /// A key whose hash lands in the same entry as `k`'s but is another key.
    fn same_slot(k: &FlowKey) -> (FlowKey, u32) {
        let slot = k.hash() as usize & (EMC_ENTRIES - 1);
        (1..)
            .map(|p| key(1000 + p))
            .map(|o| (o, o.hash()))
            .find(|(_, h)| *h as usize & (EMC_ENTRIES - 1) == slot)
            .unwrap()
    }

    #[test]
    fn test_insert_then_hit_only_the_same_key() {
        let mut emc = Emc::new(1);
        let (k, other) = (key(1), key(2));
        assert!(emc.peek(&k, k.hash()).is_none());
        let m = flow(k, 5);
        emc.maybe_insert(&k, k.hash(), &m);
        assert!(Arc::ptr_eq(emc.peek(&k, k.hash()).unwrap(), &m));
        assert!(emc.peek(&other, other.hash()).is_none());
        // A key that shares the entry but differs is a miss, not a false hit.
        let (o, h) = same_slot(&k);
        assert!(emc.peek(&o, h).is_none());
        assert_eq!(emc.len(), 1);
    }

    /// Tracked keys keep their connection-tracking words apart: one slot
    /// that held a tracked key and then an untracked one (whose insert
    /// leaves those words as they were) never answers either for the
    /// other, nor a tracked key that differs only in those words.
    #[test]
    fn test_tracked_and_untracked_keys_share_a_slot_safely() {
        let mut emc = Emc::new(1);
        let tracked = |k: FlowKey, zone: u64| {
            let mut t = k;
            t.set(loc::CT_STATE, 0x21); // +trk+est
            t.set(loc::CT_ZONE, zone);
            t.set(loc::RECIRC_ID, 3);
            t
        };
        let k = key(1);
        let (t1, t2) = (tracked(k, 1), tracked(k, 2));
        assert_eq!(t1.base(), t2.base(), "they differ in the connection-tracking words alone");
        let slot = t1.hash();
        let m1 = flow(t1, 5);
        emc.maybe_insert(&t1, slot, &m1);
        assert!(Arc::ptr_eq(emc.peek_tracked(&t1, slot).unwrap(), &m1));
        assert!(emc.peek_tracked(&t2, slot).is_none(), "another zone's key is a miss");
        // The untracked key into the same slot: the tracked words stay.
        let mu = flow(k, 6);
        emc.maybe_insert(&k, slot, &mu);
        assert!(Arc::ptr_eq(emc.peek(&k, slot).unwrap(), &mu));
        assert!(Arc::ptr_eq(emc.peek_tracked(&k, slot).unwrap(), &mu));
        assert!(emc.peek_tracked(&t1, slot).is_none(), "the untracked entry answers no tracked key");
        // And back: a tracked entry answers no untracked key.
        emc.maybe_insert(&t2, slot, &m1);
        assert!(emc.peek(&k, slot).is_none());
        assert!(emc.peek_tracked(&t1, slot).is_none());
        assert!(emc.peek_tracked(&t2, slot).is_some());
    }

    #[test]
    fn test_insert_replaces_what_the_entry_held() {
        let mut emc = Emc::new(1);
        let k = key(1);
        let (m1, m2) = (flow(k, 5), flow(k, 6));
        emc.maybe_insert(&k, k.hash(), &m1);
        // The same key with a new megaflow: the entry follows.
        emc.maybe_insert(&k, k.hash(), &m2);
        assert!(Arc::ptr_eq(emc.peek(&k, k.hash()).unwrap(), &m2));
        assert_eq!(Arc::strong_count(&m1), 1, "the replaced megaflow is still held");
        // Another key of the same entry evicts it (direct-mapped).
        let (o, h) = same_slot(&k);
        let m3 = flow(o, 7);
        emc.maybe_insert(&o, h, &m3);
        assert!(emc.peek(&k, k.hash()).is_none());
        assert!(Arc::ptr_eq(emc.peek(&o, h).unwrap(), &m3));
        assert_eq!(emc.len(), 1);
    }

    #[test]
    fn test_dead_megaflows_miss_and_are_swept() {
        let mut emc = Emc::new(1);
        let (a, b) = (key(1), key(2));
        let (ma, mb) = (flow(a, 5), flow(b, 6));
        emc.maybe_insert(&a, a.hash(), &ma);
        emc.maybe_insert(&b, b.hash(), &mb);
        ma.dead.store(true, Ordering::Relaxed);
        assert!(emc.peek(&a, a.hash()).is_none(), "a removed megaflow must not hit");
        assert!(emc.peek(&b, b.hash()).is_some());
        assert_eq!(emc.sweep(), 1);
        assert_eq!(emc.len(), 1);
        assert_eq!(Arc::strong_count(&ma), 1, "sweep must let the dead megaflow go");
    }

    #[test]
    fn test_insertion_is_probabilistic_and_zero_never_inserts() {
        let mut emc = Emc::new(100);
        let m = flow(key(0), 5);
        for p in 0..4000 {
            let k = key(p);
            emc.maybe_insert(&k, k.hash(), &m);
        }
        // About 1 in 100 (xorshift), well short of every one.
        let n = emc.len();
        assert!((10..=120).contains(&n), "{n} of 4000 inserted at 1/100");
        let mut off = Emc::new(0);
        assert!(!off.enabled());
        off.maybe_insert(&key(1), key(1).hash(), &m);
        assert!(off.is_empty());
    }

    #[test]
    fn test_low_hit_rate_switches_lookups_off_then_probes_again() {
        let mut emc = Emc::new(1);
        // A window with hits under a quarter of the lookups.
        emc.count_hits(WINDOW / 8);
        emc.account(WINDOW);
        assert!(!emc.enabled());
        assert_eq!(emc.n_auto_disabled, 1);
        // Off for 16 windows, then on again to probe.
        for _ in 0..15 {
            emc.account(WINDOW);
            assert!(!emc.enabled());
        }
        emc.account(WINDOW);
        assert!(emc.enabled());
        // A good window keeps it on.
        emc.count_hits(WINDOW / 2);
        emc.account(WINDOW);
        assert!(emc.enabled());
    }
}
