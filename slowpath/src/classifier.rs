//! A priority classifier by tuple space search, as OVS's `classifier`:
//! rules with the same mask share a subtable (a hash map from masked value to
//! rules), subtables are probed in order of their highest priority and the
//! search stops once no remaining subtable can beat the best match. A
//! subtable whose rules all name other input ports is skipped on in_port
//! alone (OVS partitions its classifier on metadata the same way), and one
//! whose rules all name other Ethernet types on dl_type alone.
//!
//! Megaflow contract: `lookup` ORs into the caller's wildcards the mask of
//! every subtable it probed (of a small subtable that missed, only the
//! stages that show each rule's mismatch, as OVS's staged lookup does) —
//! the result depends on those bits only, so any flow that agrees with this
//! one on them gets the same answer. (Subtables
//! skipped for their priority were skipped for no field of the packet; one
//! skipped for in_port un-wildcards in_port only, one for dl_type dl_type
//! only.)
//!
//! Equal-priority overlapping rules are undefined in OpenFlow; here the first
//! one found wins. Not thread-safe: the slow path owns its tables.

use std::collections::BTreeMap;

use hashbrown::HashMap;
use smallvec::SmallVec;

use fastpath::flow::loc::{DL_TYPE, IN_PORT};
use fastpath::flow::FieldLoc;

use crate::flow::{OfFlow, FLOW_WORDS};

/// Index of a rule in its classifier.
pub type EntryId = usize;

/// A rule as the classifier keeps it.
#[derive(Clone, Debug)]
pub struct Entry<T> {
    /// Masked match value.
    pub value: OfFlow,
    /// Match mask.
    pub mask: OfFlow,
    /// Priority (higher wins).
    pub priority: u16,
    /// Caller's data.
    pub data: T,
}

/// The fields a lookup reads come first, in the order it reads them (a
/// visit reads one or two cache lines, not five scattered ones).
#[derive(Clone, Debug)]
#[repr(C)]
struct Subtable {
    max_priority: u16,
    /// in_port partition: where the mask matches in_port exactly, the
    /// [`part_bit`] of every rule's in_port is set (all bits otherwise). A
    /// flow whose bit is clear matches no rule here, which the lookup knows
    /// from in_port alone. Bits may stay set after removals (a false
    /// positive only costs a probe); recomputed while the subtable is small.
    ports: u64,
    /// The same partition on dl_type: an IP packet passes a subtable of
    /// ARP rules on dl_type alone.
    types: u64,
    /// How the rules are searched.
    search: Search,
    /// The mask's bits in each cumulative [`STAGES`] mask, where the mask
    /// matches an L4 port (the field that differs per connection; without
    /// one, a miss un-wildcards the whole mask, which costs less to
    /// compute). Fixed at creation.
    staged: Option<Box<[OfFlow; 3]>>,
    /// Indices of the mask's non-zero words: only these are hashed, compared
    /// and un-wildcarded.
    words: SmallVec<[u8; 6]>,
    mask: OfFlow,
    /// Hash of the masked value -> entries, highest priority first (entries
    /// of colliding values share a bucket; lookups compare values).
    buckets: HashMap<u64, SmallVec<[EntryId; 2]>>,
    n_rules: usize,
    /// How many rules have each priority: the highest is `max_priority`,
    /// known after a removal without a scan of the buckets.
    priorities: BTreeMap<u16, usize>,
}

/// How a subtable's rules are searched. Up to [`FEW`] rules, comparing
/// values beats hashing the flow (most subtables of the OpenShift SDN
/// tables hold one rule); the values are copies, so the search reads no
/// entry.
#[derive(Clone, Debug)]
enum Search {
    /// A few rules over at most [`SLOTS`] mask words, and no staged
    /// un-wildcarding (most subtables of these tables).
    Narrow(Narrow),
    /// A few rules: (masked value, priority, id), highest priority first.
    Few(Box<[(OfFlow, u16, EntryId)]>),
    /// More: by the hash of the masked flow ([`Subtable::buckets`]).
    Hashed,
}

/// Words of a [`Narrow`] subtable's mask.
const SLOTS: usize = 2;

/// A small subtable over at most [`SLOTS`] words, laid out for the lookup:
/// no loop over the mask's words and no per-word test (an unused slot
/// names word 0 under a zero mask: it ORs nothing and compares zeros).
#[derive(Clone, Debug)]
struct Narrow {
    idx: [u8; SLOTS],
    mask: [u64; SLOTS],
    /// Every rule's masked words, priority and id, highest priority first.
    rules: SmallVec<[([u64; SLOTS], u16, EntryId); FEW]>,
}

impl Narrow {
    /// `flow`'s words at the slots, masked.
    #[inline(always)]
    fn pick(&self, flow: &OfFlow) -> [u64; SLOTS] {
        std::array::from_fn(|j| flow.w[self.idx[j] as usize] & self.mask[j])
    }
}

/// Whether `mask` matches the field at `l` exactly (its partition
/// applies).
fn exact(mask: &OfFlow, l: FieldLoc) -> bool {
    (mask.w[l.word] >> l.shift) & l.mask == l.mask
}

/// A partition's bit for the field at `l` of `flow`: its value modulo 64
/// (in_ports below 64 each have their own; IPv4, ARP and IPv6 fall on
/// bits 0, 6 and 29).
#[inline]
fn part_bit(flow: &OfFlow, l: FieldLoc) -> u64 {
    1 << ((flow.w[l.word] >> l.shift) & l.mask & 63)
}

/// A partition's bits for `rules`' values where the mask matches the
/// field exactly; all bits where the partition does not apply.
fn part_of<'r>(mask: &OfFlow, l: FieldLoc, rules: impl Iterator<Item = &'r OfFlow>) -> u64 {
    if exact(mask, l) {
        rules.fold(0, |b, v| b | part_bit(v, l))
    } else {
        u64::MAX
    }
}

/// Subtables with up to this many rules are searched without hashing.
const FEW: usize = 4;

/// OVS's lookup stages over a flow's bits (lib/classifier.c's staged
/// lookup: metadata, L2, L3, L4), each stage with the ones before it. A
/// small subtable that none of its rules match un-wildcards, for each
/// rule, its mask's bits in the stages up to the first where the rule
/// differs from the flow, not the whole mask: a TCP packet probing
/// `udp,udp_dst=4789` depends on `nw_proto`, not on its destination port
/// (which would make every connection's replies a megaflow of their own).
/// Each stage's bits alone decide the rule's mismatch, so the megaflow
/// stays sound.
const STAGES: [[u64; FLOW_WORDS]; 4] = stages();

/// The cumulative stage masks of [`STAGES`].
const fn stages() -> [[u64; FLOW_WORDS]; 4] {
    use fastpath::flow::loc;
    const fn bits(w: &mut [u64; FLOW_WORDS], l: fastpath::flow::FieldLoc) {
        w[l.word] |= l.mask << l.shift;
    }
    let mut l2 = [0u64; FLOW_WORDS];
    bits(&mut l2, loc::DL_TYPE);
    bits(&mut l2, loc::DL_SRC);
    bits(&mut l2, loc::DL_DST);
    let mut l3 = [0u64; FLOW_WORDS];
    bits(&mut l3, loc::NW_PROTO);
    bits(&mut l3, loc::NW_FRAG);
    bits(&mut l3, loc::NW_SRC);
    bits(&mut l3, loc::NW_DST);
    bits(&mut l3, loc::NW_TOS);
    bits(&mut l3, loc::NW_TTL);
    bits(&mut l3, loc::ARP_SHA);
    bits(&mut l3, loc::ARP_THA);
    let mut l4 = [0u64; FLOW_WORDS];
    bits(&mut l4, loc::TP_SRC);
    bits(&mut l4, loc::TP_DST);
    // Metadata: every other bit (ports, registers, tunnel, conntrack).
    let mut out = [[0u64; FLOW_WORDS]; 4];
    let mut i = 0;
    while i < FLOW_WORDS {
        out[0][i] = !(l2[i] | l3[i] | l4[i]);
        out[1][i] = out[0][i] | l2[i];
        out[2][i] = out[1][i] | l3[i];
        out[3][i] = u64::MAX;
        i += 1;
    }
    out
}

impl Subtable {
    fn new(mask: OfFlow) -> Subtable {
        let words = (0..mask.w.len()).filter(|&i| mask.w[i] != 0).map(|i| i as u8).collect();
        // No rules yet: no bits where a partition applies.
        let (ports, types) = (part_of(&mask, IN_PORT, [].iter()), part_of(&mask, DL_TYPE, [].iter()));
        let l4 = STAGES[2].iter().zip(&mask.w).any(|(s, m)| m & !s != 0);
        let staged = l4.then(|| {
            Box::new(std::array::from_fn(|k| {
                let mut f = mask;
                for (w, s) in f.w.iter_mut().zip(&STAGES[k]) {
                    *w &= s;
                }
                f
            }))
        });
        Subtable {
            mask,
            words,
            max_priority: 0,
            n_rules: 0,
            priorities: BTreeMap::new(),
            buckets: HashMap::new(),
            search: Search::Hashed,
            ports,
            types,
            staged,
        }
    }

    /// Rebuilds how the rules are searched (after an insertion or removal):
    /// their values listed while there are at most [`FEW`], else by hash.
    fn relist<T>(&mut self, entries: &[Option<Entry<T>>]) {
        if self.n_rules > FEW {
            self.search = Search::Hashed;
            return;
        }
        let mut few: Vec<(OfFlow, u16, EntryId)> = self
            .buckets
            .values()
            .flatten()
            .filter_map(|&id| entries[id].as_ref().map(|e| (e.value, e.priority, id)))
            .collect();
        few.sort_by_key(|&(_, p, id)| (std::cmp::Reverse(p), id));
        self.ports = part_of(&self.mask, IN_PORT, few.iter().map(|(v, ..)| v));
        self.types = part_of(&self.mask, DL_TYPE, few.iter().map(|(v, ..)| v));
        self.search = if self.words.len() <= SLOTS && self.staged.is_none() {
            let mut n = Narrow { idx: [0; SLOTS], mask: [0; SLOTS], rules: SmallVec::new() };
            for (j, &i) in self.words.iter().enumerate() {
                n.idx[j] = i;
                n.mask[j] = self.mask.w[i as usize];
            }
            n.rules = few.iter().map(|(v, p, id)| (n.pick(v), *p, *id)).collect();
            Search::Narrow(n)
        } else {
            Search::Few(few.into_boxed_slice())
        };
    }

    /// Hash of `flow` under the subtable's mask.
    #[inline]
    fn hash(&self, flow: &OfFlow) -> u64 {
        fastpath::flow::masked_hash(&flow.w, &self.mask.w, &self.words)
    }

    /// Whether `flow` equals `value` under the mask.
    #[inline]
    fn matches(&self, flow: &OfFlow, value: &OfFlow) -> bool {
        self.words.iter().all(|&i| flow.w[i as usize] & self.mask.w[i as usize] == value.w[i as usize])
    }

    /// The bits that show `flow` matches none of the `few` rules (see
    /// [`STAGES`]): for each rule the mask's bits in the stages up to the
    /// first where it differs; their union is the largest of these.
    fn miss_mask(&self, flow: &OfFlow, few: &[(OfFlow, u16, EntryId)]) -> &OfFlow {
        let Some(staged) = &self.staged else { return &self.mask };
        let mut need = 0;
        for (v, ..) in few {
            // The first stage (below the largest needed so far) where the
            // rule differs; else the largest so far is enough.
            while need < 3 {
                let st = &staged[need];
                if self.words.iter().any(|&i| (flow.w[i as usize] ^ v.w[i as usize]) & st.w[i as usize] != 0) {
                    break;
                }
                need += 1;
            }
            if need == 3 {
                return &self.mask;
            }
        }
        &staged[need]
    }
}

/// The classifier.
#[derive(Clone, Debug)]
pub struct Classifier<T> {
    subtables: Vec<Subtable>,
    entries: Vec<Option<Entry<T>>>,
    free: Vec<EntryId>,
    n: usize,
}

impl<T> Default for Classifier<T> {
    fn default() -> Self {
        Classifier { subtables: Vec::new(), entries: Vec::new(), free: Vec::new(), n: 0 }
    }
}

impl<T> Classifier<T> {
    /// Number of rules.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Number of subtables (distinct masks).
    pub fn n_subtables(&self) -> usize {
        self.subtables.len()
    }

    fn resort(&mut self) {
        self.subtables.sort_by_key(|s| std::cmp::Reverse(s.max_priority));
    }

    /// Inserts a rule (value is masked here) and returns its id.
    pub fn insert(&mut self, value: OfFlow, mask: OfFlow, priority: u16, data: T) -> EntryId {
        let value = value.masked(&mask);
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.entries.push(None);
                self.entries.len() - 1
            }
        };
        self.entries[id] = Some(Entry { value, mask, priority, data });
        self.n += 1;
        let st_idx = match self.subtables.iter().position(|s| s.mask == mask) {
            Some(i) => i,
            None => {
                self.subtables.push(Subtable::new(mask));
                self.subtables.len() - 1
            }
        };
        let entries = &self.entries;
        let st = &mut self.subtables[st_idx];
        let bucket = st.buckets.entry(st.hash(&value)).or_default();
        let pos = bucket
            .iter()
            .position(|&e| entries[e].as_ref().map_or(0, |x| x.priority) < priority)
            .unwrap_or(bucket.len());
        bucket.insert(pos, id);
        st.n_rules += 1;
        *st.priorities.entry(priority).or_default() += 1;
        // (All ones already where a partition does not apply.)
        st.ports |= part_bit(&value, IN_PORT);
        st.types |= part_bit(&value, DL_TYPE);
        st.relist(entries);
        if st.n_rules == 1 || priority > st.max_priority {
            st.max_priority = priority;
            self.resort();
        }
        id
    }

    /// Removes a rule, returning it.
    pub fn remove(&mut self, id: EntryId) -> Option<Entry<T>> {
        let e = self.entries.get_mut(id)?.take()?;
        self.n -= 1;
        self.free.push(id);
        if let Some(si) = self.subtables.iter().position(|s| s.mask == e.mask) {
            let st = &mut self.subtables[si];
            let h = st.hash(&e.value);
            if let Some(b) = st.buckets.get_mut(&h) {
                b.retain(|x| *x != id);
                if b.is_empty() {
                    st.buckets.remove(&h);
                }
            }
            st.n_rules -= 1;
            if let Some(n) = st.priorities.get_mut(&e.priority) {
                *n -= 1;
                if *n == 0 {
                    st.priorities.remove(&e.priority);
                }
            }
            st.relist(&self.entries);
            if st.n_rules == 0 {
                self.subtables.remove(si);
            } else {
                let max = st.priorities.last_key_value().map_or(0, |(p, _)| *p);
                if max != st.max_priority {
                    st.max_priority = max;
                    self.resort();
                }
            }
        }
        Some(e)
    }

    /// A rule by id.
    pub fn get(&self, id: EntryId) -> Option<&Entry<T>> {
        self.entries.get(id)?.as_ref()
    }

    /// A rule by id, mutable (value, mask and priority must not change).
    pub fn get_mut(&mut self, id: EntryId) -> Option<&mut Entry<T>> {
        self.entries.get_mut(id)?.as_mut()
    }

    /// All rules with their ids.
    pub fn iter(&self) -> impl Iterator<Item = (EntryId, &Entry<T>)> {
        self.entries.iter().enumerate().filter_map(|(i, e)| e.as_ref().map(|e| (i, e)))
    }

    /// The rule with exactly this match and priority (strict identity).
    pub fn find_exact(&self, value: &OfFlow, mask: &OfFlow, priority: u16) -> Option<EntryId> {
        let st = self.subtables.iter().find(|s| s.mask == *mask)?;
        let b = st.buckets.get(&st.hash(value))?;
        b.iter().copied().find(|&id| {
            self.entries[id].as_ref().is_some_and(|e| e.priority == priority && st.matches(value, &e.value))
        })
    }

    /// The highest-priority rule matching `flow`; ORs the probed subtables'
    /// masks into `wc`.
    pub fn lookup(&self, flow: &OfFlow, wc: &mut OfFlow) -> Option<EntryId> {
        let mut best: Option<(u16, EntryId)> = None;
        let (port, kind) = (part_bit(flow, IN_PORT), part_bit(flow, DL_TYPE));
        for st in &self.subtables {
            if let Some((bp, _)) = best {
                if st.max_priority <= bp {
                    break;
                }
            }
            // No rule here has this in_port: the answer depends on in_port
            // alone.
            if st.ports & port == 0 {
                wc.w[IN_PORT.word] |= IN_PORT.mask << IN_PORT.shift;
                continue;
            }
            // No rule here has this dl_type: on dl_type alone.
            if st.types & kind == 0 {
                wc.w[DL_TYPE.word] |= DL_TYPE.mask << DL_TYPE.shift;
                continue;
            }
            if let Search::Narrow(n) = &st.search {
                let f = n.pick(flow);
                for j in 0..SLOTS {
                    wc.w[n.idx[j] as usize] |= n.mask[j];
                }
                if let Some(&(_, p, id)) = n.rules.iter().find(|(v, ..)| *v == f) {
                    if best.is_none_or(|(bp, _)| p > bp) {
                        best = Some((p, id));
                    }
                }
                continue;
            }
            // The mask is zero outside its words: those alone are ORed (a
            // few of the flow's 19), unless the subtable un-wildcards a
            // miss by stages (it matches an L4 port: rare, see
            // `Subtable::staged`).
            if st.staged.is_none() {
                for &i in &st.words {
                    wc.w[i as usize] |= st.mask.w[i as usize];
                }
            }
            // Highest priority first: the first entry whose value matches.
            let hit = match &st.search {
                Search::Few(few) => few.iter().find(|(v, ..)| st.matches(flow, v)).map(|&(_, p, id)| (p, id)),
                _ => st.buckets.get(&st.hash(flow)).and_then(|b| {
                    b.iter().find_map(|&id| {
                        self.entries[id].as_ref().filter(|e| st.matches(flow, &e.value)).map(|e| (e.priority, id))
                    })
                }),
            };
            if st.staged.is_some() {
                // Every rule missed: each one's stages up to its first
                // difference; else the whole mask (a stage mask is within
                // the subtable's: its words are among the mask's).
                let m = match (&st.search, hit) {
                    (Search::Few(few), None) => st.miss_mask(flow, few),
                    _ => &st.mask,
                };
                for &i in &st.words {
                    wc.w[i as usize] |= m.w[i as usize];
                }
            }
            if let Some((p, id)) = hit {
                if best.is_none_or(|(bp, _)| p > bp) {
                    best = Some((p, id));
                }
            }
        }
        best.map(|(_, id)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive<T>(rules: &[(OfFlow, OfFlow, u16, T)], flow: &OfFlow) -> Option<u16> {
        rules.iter().filter(|(v, m, _, _)| flow.masked(m) == v.masked(m)).map(|r| r.2).max()
    }

    /// Rules over a few words and small value spaces so that overlaps are
    /// common; masks drawn from a handful of shapes so subtables are shared.
    /// A small value repeated in a word's low and high bits.
    const SPREAD: u64 = 0x1100_0000_0000_0011;
    /// Word 1's: tun_id's low bit, dl_type (the type partition) and
    /// nw_proto.
    const DL_SPREAD: u64 = 0x0001_0001_0000_0001;
    /// The words the rules match (0: in_port, 1: dl_type, 3: dl_src and
    /// tp_src, ...) and each one's spread.
    const WORDS: [(usize, u64); 5] = [(0, SPREAD), (1, DL_SPREAD), (3, SPREAD), (6, SPREAD), (9, SPREAD)];

    fn arb_rule() -> impl Strategy<Value = (OfFlow, OfFlow, u16)> {
        // 0xff00..00ff over word 3 spans dl_src and tp_src (the staged
        // un-wildcarding of a subtable that matches an L4 port).
        let masks = prop::sample::select(vec![0u64, 0xff, 0xf0, 0xffff, 0x0f0f, 0xff00_0000_0000_00ff, u64::MAX]);
        // Word 1: whole dl_type (the partition applies) or not.
        let dl_masks = prop::sample::select(vec![0u64, 0xff, 0xffff_0000_0000, 0xff_ffff_0000_0000, u64::MAX]);
        (prop::collection::vec((0u64..4, masks), 4), (0u64..4, dl_masks), 0u16..50).prop_map(|(mut ws, dl, p)| {
            ws.insert(1, dl);
            let mut v = OfFlow::default();
            let mut m = OfFlow::default();
            for ((val, mask), (w, spread)) in ws.into_iter().zip(WORDS) {
                v.w[w] = (val * spread) & mask;
                m.w[w] = mask;
            }
            (v, m, p)
        })
    }

    fn arb_flow() -> impl Strategy<Value = OfFlow> {
        prop::collection::vec(0u64..4, WORDS.len()).prop_map(|ws| {
            let mut f = OfFlow::default();
            for (x, (w, spread)) in ws.into_iter().zip(WORDS) {
                f.w[w] = x * spread;
            }
            f
        })
    }

    proptest! {
        #[test]
        fn prop_lookup_equals_linear(rules in prop::collection::vec(arb_rule(), 0..40),
                                     removes in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
                                     flows in prop::collection::vec(arb_flow(), 1..30)) {
            let mut c = Classifier::default();
            let mut live: Vec<(OfFlow, OfFlow, u16, EntryId)> = Vec::new();
            for (v, m, p) in rules {
                let id = c.insert(v, m, p, ());
                live.push((v, m, p, id));
            }
            for ix in removes {
                if live.is_empty() { break; }
                let (_, _, _, id) = live.remove(ix.index(live.len()));
                prop_assert!(c.remove(id).is_some());
            }
            prop_assert_eq!(c.len(), live.len());
            for f in flows {
                let mut wc = OfFlow::default();
                let got = c.lookup(&f, &mut wc);
                let want = naive(&live, &f);
                prop_assert_eq!(got.map(|id| c.get(id).unwrap().priority), want);
                if let Some(id) = got {
                    let e = c.get(id).unwrap();
                    prop_assert_eq!(f.masked(&e.mask), e.value);
                }
                // Megaflow soundness: flipping any wildcarded bit keeps the
                // answer, and so does giving a word's wildcarded bits those
                // of any value the rules use (word 0 is in_port and word 1
                // holds dl_type, whose partitions may skip subtables).
                for (w, spread) in WORDS {
                    let mut g = f;
                    g.w[w] ^= !wc.w[w] & if w == 1 { u64::MAX } else { 0xffff_0000_0000_ffff };
                    let mut wc2 = OfFlow::default();
                    prop_assert_eq!(c.lookup(&g, &mut wc2).map(|id| c.get(id).unwrap().priority), want);
                    for x in 0..4u64 {
                        let mut g = f;
                        g.w[w] = (f.w[w] & wc.w[w]) | ((x * spread) & !wc.w[w]);
                        prop_assert_eq!(c.lookup(&g, &mut wc2).map(|id| c.get(id).unwrap().priority), want);
                    }
                }
            }
        }
    }
}
