//! Recirculation ids: a translation that meets `ct(table=N)` freezes what
//! the packet's next pass needs (the table to resume at and the pipeline
//! metadata: registers, `pkt_mark`, tun_id's high half) under an id, which
//! the datapath puts in the recirculated packet's key (`recirc_id`). A miss
//! with that id thaws the state and resumes there (OVS's
//! `ofproto-dpif-rid.c`). The same state always gets the same id, so that
//! megaflows of one path share it; ids are never 0 (a packet's first pass).

use std::collections::HashMap;

use crate::flow::{OfFlow, FLOW_WORDS};

/// Words of pipeline metadata after the datapath key in an [`OfFlow`].
pub const META_WORDS: usize = FLOW_WORDS - fastpath::KEY_WORDS;

/// What a recirculated packet resumes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frozen {
    /// The table the translation resumes at.
    pub table: u8,
    /// The pipeline metadata at the freeze.
    pub meta: [u64; META_WORDS],
}

impl Frozen {
    /// The state of `flow` (its metadata words), to resume at `table`.
    pub fn of(flow: &OfFlow, table: u8) -> Frozen {
        let mut meta = [0; META_WORDS];
        meta.copy_from_slice(&flow.w[fastpath::KEY_WORDS..]);
        Frozen { table, meta }
    }

    /// Puts the frozen metadata back into `flow`.
    pub fn thaw_into(&self, flow: &mut OfFlow) {
        flow.w[fastpath::KEY_WORDS..].copy_from_slice(&self.meta);
    }
}

/// Collection passes an id may go unused (no installed megaflow matches or
/// produces it, no translation froze it) before it is freed: packets
/// recirculating under it when its last megaflow went (in a poll loop's
/// recirculation queue, in the upcall channel) have that long to come back.
/// The slow path runs a pass a second.
pub const GRACE_PASSES: u64 = 10;

struct Entry {
    state: Frozen,
    /// The collection pass that last saw the id in use.
    seen: u64,
}

/// The frozen states by id, and the ids by state. Ids are handed out in
/// order and not reused until the counter wraps (a freed id's packets,
/// if any are still about, miss and are dropped as "unknown recirculation
/// id" rather than resume someone else's state); [`Recirc::collect`] frees
/// those no megaflow uses any more (OVS's `recirc_id_node` references,
/// held by its ukeys, and their deferred free).
#[derive(Default)]
pub struct Recirc {
    by_state: HashMap<Frozen, u32>,
    by_id: HashMap<u32, Entry>,
    last: u32,
    pass: u64,
    freed: u64,
}

impl std::fmt::Debug for Recirc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recirc({} ids, {} freed)", self.by_id.len(), self.freed)
    }
}

impl Recirc {
    /// The id of `state`, allocated at its first freeze (1, 2, ...).
    pub fn freeze(&mut self, state: Frozen) -> u32 {
        let pass = self.pass;
        if let Some(&id) = self.by_state.get(&state) {
            if let Some(e) = self.by_id.get_mut(&id) {
                e.seen = pass;
            }
            return id;
        }
        let mut id = self.last;
        loop {
            id = id.wrapping_add(1);
            if id != 0 && !self.by_id.contains_key(&id) {
                break;
            }
        }
        self.last = id;
        self.by_id.insert(id, Entry { state, seen: pass });
        self.by_state.insert(state, id);
        id
    }

    /// The state frozen under `id`.
    pub fn thaw(&self, id: u32) -> Option<Frozen> {
        self.by_id.get(&id).map(|e| e.state)
    }

    /// A collection pass: `in_use` are the ids installed megaflows match
    /// or recirculate to; ids neither in use nor frozen for
    /// [`GRACE_PASSES`] passes are freed. Returns how many.
    pub fn collect(&mut self, in_use: impl IntoIterator<Item = u32>) -> usize {
        self.pass += 1;
        let pass = self.pass;
        for id in in_use {
            if let Some(e) = self.by_id.get_mut(&id) {
                e.seen = pass;
            }
        }
        let by_state = &mut self.by_state;
        let before = self.by_id.len();
        self.by_id.retain(|_, e| {
            let keep = pass - e.seen < GRACE_PASSES;
            if !keep {
                by_state.remove(&e.state);
            }
            keep
        });
        let n = before - self.by_id.len();
        self.freed += n as u64;
        n
    }

    /// Number of ids held.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no id is held.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Ids freed so far.
    pub fn freed(&self) -> u64 {
        self.freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::ofctl::Field;

    #[test]
    fn test_same_state_same_id_and_thaw_restores_metadata() {
        let mut r = Recirc::default();
        let mut f = OfFlow::default();
        f.set(Field::Reg0, 0x2be3);
        f.set(Field::PktMark, 7);
        let a = r.freeze(Frozen::of(&f, 30));
        assert_eq!(a, 1);
        assert_eq!(r.freeze(Frozen::of(&f, 30)), a, "the same state must share its id");
        assert_eq!(r.freeze(Frozen::of(&f, 70)), 2, "another table is another state");
        f.set(Field::Reg0, 1);
        assert_eq!(r.freeze(Frozen::of(&f, 30)), 3, "other registers are another state");
        let mut g = OfFlow::default();
        r.thaw(a).unwrap().thaw_into(&mut g);
        assert_eq!((g.get(Field::Reg0), g.get(Field::PktMark)), (0x2be3, 7));
        assert_eq!(r.thaw(a).unwrap().table, 30);
        assert!(r.thaw(0).is_none() && r.thaw(4).is_none());
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn test_collect_frees_what_goes_unused_for_the_grace_and_never_reuses_an_id() {
        let mut r = Recirc::default();
        let mut f = OfFlow::default();
        let a = r.freeze(Frozen::of(&f, 30));
        f.set(Field::Reg0, 1);
        let b = r.freeze(Frozen::of(&f, 30));
        f.set(Field::Reg0, 2);
        let c = r.freeze(Frozen::of(&f, 30));
        // a stays in use; c is frozen again late in the grace.
        for pass in 1..GRACE_PASSES {
            assert_eq!(r.collect([a]), 0, "pass {pass}");
            if pass == 5 {
                f.set(Field::Reg0, 2);
                assert_eq!(r.freeze(Frozen::of(&f, 30)), c);
            }
        }
        assert_eq!(r.collect([a]), 1, "b went unused for the grace");
        assert!(r.thaw(b).is_none() && r.thaw(a).is_some() && r.thaw(c).is_some());
        for _ in 0..5 {
            r.collect([a]);
        }
        assert!(r.thaw(c).is_none(), "c went unused for the grace after its last freeze");
        assert_eq!((r.len(), r.freed()), (1, 2));
        // b's state again: a new id, not b's.
        f.set(Field::Reg0, 1);
        let b2 = r.freeze(Frozen::of(&f, 30));
        assert!(b2 > c, "{b2}: freed ids are not reused before the counter wraps");
        assert_eq!(r.thaw(b2).unwrap().table, 30);
    }

    #[test]
    fn test_ids_wrap_past_zero_and_live_ids() {
        let mut r = Recirc { last: u32::MAX - 1, ..Default::default() };
        let f = OfFlow::default();
        assert_eq!(r.freeze(Frozen::of(&f, 1)), u32::MAX);
        assert_eq!(r.freeze(Frozen::of(&f, 2)), 1, "0 is a first pass, never an id");
        r.last = 0;
        assert_eq!(r.freeze(Frozen::of(&f, 3)), 2, "1 is live: skipped");
    }
}
