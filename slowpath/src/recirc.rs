//! Recirculation ids: a translation that meets `ct(table=N)` freezes what
//! the packet's next pass needs (the table to resume at, the in_port and
//! the pipeline metadata: registers, `pkt_mark`, tun_id's high half) under
//! an id, which
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
    /// The in_port at the freeze. As OVS's `frozen_metadata`, the next
    /// pass translates with it, whatever port the packet's own key says:
    /// they differ for an IPv4 fragment that the reassembler sent on with
    /// another packet (the one completing its list, or any packet whose
    /// `ct` released an expired list).
    pub in_port: u32,
    /// The pipeline metadata at the freeze.
    pub meta: [u64; META_WORDS],
}

impl Frozen {
    /// The state of `flow` (its in_port and metadata words), to resume at
    /// `table`.
    pub fn of(flow: &OfFlow, table: u8) -> Frozen {
        let mut meta = [0; META_WORDS];
        meta.copy_from_slice(&flow.w[fastpath::KEY_WORDS..]);
        Frozen { table, in_port: flow.get(config::ofctl::Field::InPort) as u32, meta }
    }

    /// Puts the frozen in_port and metadata back into `flow`.
    pub fn thaw_into(&self, flow: &mut OfFlow) {
        flow.w[fastpath::KEY_WORDS..].copy_from_slice(&self.meta);
        flow.set(config::ofctl::Field::InPort, self.in_port as u64);
    }
}

/// The frozen states by id, and the ids by state.
#[derive(Debug, Default)]
pub struct Recirc {
    by_state: HashMap<Frozen, u32>,
    states: Vec<Frozen>,
}

impl Recirc {
    /// The id of `state`, allocated at its first freeze (1, 2, ...).
    pub fn freeze(&mut self, state: Frozen) -> u32 {
        if let Some(&id) = self.by_state.get(&state) {
            return id;
        }
        self.states.push(state);
        let id = self.states.len() as u32;
        self.by_state.insert(state, id);
        id
    }

    /// The state frozen under `id`.
    pub fn thaw(&self, id: u32) -> Option<Frozen> {
        let i = (id as usize).checked_sub(1)?;
        self.states.get(i).copied()
    }

    /// Number of distinct frozen states.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether nothing was frozen yet.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
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
}
