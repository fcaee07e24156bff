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
use crate::flow::FlowKey;

/// Entries (a power of two).
pub const EMC_ENTRIES: usize = 8192;
/// Lookups per hit-rate window.
const WINDOW: u64 = 1 << 16;

#[derive(Clone, Default)]
struct Entry {
    key: FlowKey,
    flow: Option<Arc<Megaflow>>,
}

/// The cache.
pub struct Emc {
    entries: Box<[Entry]>,
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
            entries: vec![Entry::default(); EMC_ENTRIES].into_boxed_slice(),
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
    #[inline]
    pub fn peek(&self, key: &FlowKey, hash: u32) -> Option<&Arc<Megaflow>> {
        let e = &self.entries[hash as usize & (EMC_ENTRIES - 1)];
        match &e.flow {
            Some(m) if crate::flow::same_key(&e.key, key) && !m.dead.load(Ordering::Relaxed) => Some(m),
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
        let e = &mut self.entries[hash as usize & (EMC_ENTRIES - 1)];
        e.key = *key;
        e.flow = Some(m.clone());
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
