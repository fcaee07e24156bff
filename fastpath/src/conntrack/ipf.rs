//! IPv4 fragments, as Open vSwitch's userspace datapath handles them
//! before and after its tracker (OVS 3.1 `lib/ipf.c`): a fragment that a
//! `ct` action sees is held in a list keyed by (source, destination,
//! recirculation id, IP id, zone, protocol); when the list holds a first
//! and a last fragment and they are contiguous, they are reassembled into
//! one packet that the tracker runs; the verdict (ct_state, zone, mark,
//! label, original tuple) is then written into every held fragment, NAT's
//! rewrite of the addresses into each fragment's header and of the L4
//! bytes into the first one's, and the ORIGINAL fragments continue after
//! the `ct` action, in offset order. Fragments are never forwarded
//! reassembled.
//!
//! OVS's checks and limits, with its defaults: reassembly on for IPv4
//! (`ipf_init`); a fragment that is not the last must be at least 1,200
//! bytes of IPv4 (smaller: `+inv`, counted "too small"); a fragment whose
//! start or end byte falls inside one already held is `+inv` (counted
//! "overlapped"; as in OVS, one that strictly covers a held fragment is not
//! caught and leaves its list incomplete); at most 1,000 fragments held at
//! once and 58 per list (`(65535 - 60) / (1200 - 60)` rounded up), more are
//! `+trk+inv` uncounted; a list not completed 15 s after it was started
//! expires: at the next `ct` action anywhere its fragments leave after it,
//! marked `+inv` and nothing else (as in OVS: not `+trk`), one list per
//! action, counted "expired"; a list still unsent 10 s after that is
//! purged (its fragments dropped and counted). A reassembly over 65,535
//! bytes fails and the list waits for its expiry. Counters and lists print
//! as `ovs-appctl dpctl/ipf-get-status -m` prints them.
//!
//! Design for the poll loop. Nothing here runs for a packet that is not a
//! fragment: the tracker's parser finds the fragment bits where it looks
//! anyway and hands the packet back to the caller, which calls
//! [`super::Conntrack::fragment`]. A held fragment is copied out of the
//! loop's frame (an AF_XDP frame must go back to its ring), with the
//! metadata it came with and the key of its pass (its in_port and tunnel
//! metadata, for its next pass). The lists sit behind one mutex, taken only
//! for fragments and for the release of lists due (completed with
//! fragments left to send, or expired): a loop learns whether any is due
//! from one atomic ([`Ipf::due`]) that it reads once per burst with its
//! coarse clock, never per packet. Fragments leaving are handed to the loop
//! as bytes it copies into frames of its own and runs through the actions
//! that follow the `ct`, as many as one datapath batch holds (32, as OVS:
//! the rest leave at the next `ct` action). Memory is bounded by the
//! fragment limit: at most `max_frags` frames of copies, and the lists
//! (hash map, expiry order) holding them.
//!
//! Deviations from OVS 3.1, all in cases OVS itself mishandles: a list
//! whose last fragment ends past byte 65,535 (its end offset wraps in
//! OVS's 16 bits) fails to reassemble here, where OVS computes a negative
//! length and aborts; no IPv6 (the tracker does not follow IPv6:
//! `v6 enabled: 0`); the counters of expired fragments are always the v4
//! ones (OVS counts them by the address family of the batch that happens
//! to release them).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::nat::{recalc16, recalc32};
use super::types::{CtResult, IpfConfig, IpfStatus, CS_INVALID};
use crate::flow::FlowKey;
use crate::wire::{ethernet, fold, sum16, ETH_TYPE_IPV4};

/// How long a list waits for its missing fragments (OVS
/// `IPF_FRAG_LIST_TIMEOUT`), ms.
pub const LIST_TIMEOUT_MS: u64 = 15_000;
/// How long after its expiry an unsent list is purged (OVS
/// `IPF_FRAG_LIST_PURGE_TIME_ADJ`), ms.
pub const PURGE_AFTER_MS: u64 = 10_000;
/// The smallest `min_frag_size` OVS accepts (`IPF_V4_FRAG_SIZE_LBOUND`).
pub const MIN_FRAG_SIZE_LBOUND: u32 = 400;
/// The largest `max_frags` OVS accepts (`IPF_NFRAG_UBOUND`).
pub const MAX_FRAGS_UBOUND: u32 = 5000;
/// Frames one datapath batch holds (OVS `NETDEV_MAX_BURST`): the most
/// fragments one `ct` action releases.
pub const BATCH: usize = 32;
/// Slots a list grows by (OVS `IPF_FRAG_LIST_MIN_INCREMENT`).
const LIST_INCREMENT: usize = 4;
/// The largest IPv4 packet and header (OVS `IPV4_PACKET_MAX_SIZE`,
/// `IPV4_PACKET_MAX_HDR_SIZE`).
const IPV4_MAX: usize = 65_535;
const IPV4_MAX_HDR: usize = 60;

/// Fragments a list holds at most for a minimum fragment size (OVS
/// `max_v4_frag_list_size`).
pub fn max_list_len(min_frag_size: u32) -> usize {
    let per = (min_frag_size as usize).saturating_sub(IPV4_MAX_HDR).max(1);
    (IPV4_MAX - IPV4_MAX_HDR).div_ceil(per)
}

/// A list's key (OVS `ipf_list_key`, IPv4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ListKey {
    src: u32,
    dst: u32,
    recirc_id: u32,
    id: u16,
    zone: u16,
    proto: u8,
}

/// A list's state (OVS `ipf_list_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListState {
    ReassFail,
    OtherSeen,
    FirstSeen,
    LastSeen,
    FirstLastSeen,
    Completed,
}

impl ListState {
    /// As `ipf-get-status -m` prints it.
    fn name(self) -> &'static str {
        match self {
            ListState::ReassFail => "reassemble fail",
            ListState::OtherSeen => "other frag",
            ListState::FirstSeen => "first frag",
            ListState::LastSeen => "last frag",
            ListState::FirstLastSeen => "first/last frag",
            ListState::Completed => "complete",
        }
    }
}

/// A fragment read from a frame (OVS `ipf_is_valid_v4_frag` and
/// `ipf_v4_key_extract`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FragInfo {
    /// Offset of the IPv4 header.
    l3: usize,
    /// Its length.
    ihl: usize,
    /// Its total length (the frame may carry Ethernet padding after it).
    tot: usize,
    /// Source, destination, protocol, identification.
    src: u32,
    dst: u32,
    proto: u8,
    id: u16,
    /// First and last data byte, in OVS's 16 bits (the end wraps past
    /// 65,535, as OVS's does).
    start: u16,
    end: u16,
    /// First fragment (offset 0, more fragments) / last (offset, none).
    first: bool,
    last: bool,
}

/// Why a frame the tracker took for a fragment is not one to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotHeld {
    /// Malformed, a bad header checksum or too small: `+trk+inv`.
    Invalid,
    /// Not a fragment after all (the caller's parser said otherwise).
    NotFragment,
}

/// Reads the IPv4 fragment in `f` as OVS's `ipf_is_valid_v4_frag` checks
/// it: headers present, total length equal to what the frame holds (its
/// padding aside), header checksum right when `validate`, and at least
/// `min_size` bytes unless it is the last fragment (else
/// [`NotHeld::Invalid`], and `too_small` set when that was why).
pub(crate) fn check(f: &[u8], validate: bool, min_size: u32, too_small: &mut bool) -> Result<FragInfo, NotHeld> {
    let (_, _, ethertype, l3) = ethernet(f).ok_or(NotHeld::Invalid)?;
    if ethertype != ETH_TYPE_IPV4 || f.len() < l3 + 20 {
        return Err(NotHeld::Invalid);
    }
    let h = &f[l3..];
    let frag_off = u16::from_be_bytes([h[6], h[7]]);
    if frag_off & 0x3fff == 0 {
        return Err(NotHeld::NotFragment);
    }
    let tot = u16::from_be_bytes([h[2], h[3]]) as usize;
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    if tot > h.len() || ihl < 20 || tot < ihl {
        return Err(NotHeld::Invalid);
    }
    if validate && fold(sum16(&h[..ihl])) != 0 {
        return Err(NotHeld::Invalid);
    }
    let offset = frag_off & 0x1fff;
    let more = frag_off & 0x2000 != 0;
    let last = offset != 0 && !more;
    if !last && (tot as u32) < min_size {
        *too_small = true;
        return Err(NotHeld::Invalid);
    }
    let start = offset.wrapping_mul(8);
    Ok(FragInfo {
        l3,
        ihl,
        tot,
        src: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
        dst: u32::from_be_bytes([h[16], h[17], h[18], h[19]]),
        proto: h[9],
        id: u16::from_be_bytes([h[4], h[5]]),
        start,
        end: start.wrapping_add((tot - ihl) as u16).wrapping_sub(1),
        first: offset == 0 && more,
        last,
    })
}

/// A held fragment.
struct Frag {
    /// The frame as it came (its Ethernet padding included); emptied once
    /// sent.
    frame: Vec<u8>,
    /// Where its IPv4 header is, and its header and total lengths.
    l3: usize,
    ihl: usize,
    tot: usize,
    /// First and last data byte (OVS's 16 bits).
    start: u16,
    end: u16,
    /// The ct metadata it came with; the verdict once reassembled.
    md: CtResult,
    /// The key of the pass it came in (its in_port, tunnel metadata).
    origin: FlowKey,
}

/// A list of fragments of one packet (OVS `ipf_list`).
struct List {
    /// The fragments, in arrival order until the list has its first and
    /// last ones, then sorted by offset.
    frags: Vec<Frag>,
    /// Slots allocated (OVS `size`): grows by 4 up to the per-list limit.
    size: usize,
    /// Fragments sent (OVS `last_sent_idx + 1`).
    sent: usize,
    /// State.
    state: ListState,
    /// When it expires, ms.
    expiration: u64,
    /// Its place in the expiry order.
    seq: u64,
}

/// A fragment leaving the reassembler: its bytes (rewritten), the ct
/// metadata it carries on, and the key of the pass it came in with.
pub struct FragOut {
    /// The frame.
    pub frame: Vec<u8>,
    /// Its ct metadata after the `ct` action (the reassembled packet's
    /// verdict; `+inv` alone for an expired list's fragment).
    pub md: CtResult,
    /// The key of the pass in which it reached the tracker: its in_port
    /// and tunnel metadata carry on to its next pass.
    pub origin: FlowKey,
}

/// The lists, behind the reassembler's mutex.
#[derive(Default)]
struct Lists {
    /// Every list (OVS `frag_lists`).
    map: HashMap<ListKey, List>,
    /// Lists not completed, by start order (OVS `frag_exp_list`).
    expiry: BTreeMap<u64, ListKey>,
    /// Lists completed with fragments left to send (OVS
    /// `frag_complete_list`).
    complete: VecDeque<ListKey>,
    /// Fragments held (OVS `nfrag`).
    nfrag: usize,
    /// The next list's place in the expiry order.
    next_seq: u64,
}

/// Counter indexes.
const ACCEPTED: usize = 0;
const COMPLETED: usize = 1;
const EXPIRED: usize = 2;
const TOO_SMALL: usize = 3;
const OVERLAP: usize = 4;
const PURGED: usize = 5;

/// What adding a fragment led to.
pub(crate) enum Added {
    /// Not held (limits, a finished list, an overlap): `+trk+inv`.
    Refused,
    /// Held; its list is not complete.
    Held,
    /// Held, and its list is complete: the reassembled packet, to be
    /// tracked and then given to [`Ipf::post`].
    Complete(Reassembled),
}

/// A reassembled packet and the list it came from.
pub(crate) struct Reassembled {
    key: ListKey,
    /// The packet (the first fragment's headers, every fragment's data).
    pub frame: Vec<u8>,
    /// The metadata the first fragment came with.
    pub md: CtResult,
}

/// The reassembler (see the module doc). One per tracker, shared by the
/// poll loops.
pub struct Ipf {
    /// Settings (fixed at creation).
    cfg: IpfConfig,
    /// Fragments a list holds at most.
    max_list: usize,
    /// The lists (fragments only).
    lists: Mutex<Lists>,
    /// The earliest time at which a list is due for release (0: a
    /// completed list waits; `u64::MAX`: none), written under the mutex.
    due: AtomicU64,
    /// Counters: accepted, completed sent, expired sent, too small,
    /// overlapped, purged.
    counters: [AtomicU64; 6],
}

impl Ipf {
    /// A reassembler with `cfg` (`min_frag_size` raised to OVS's lower
    /// bound of 400, `max_frags` capped at its 5,000).
    pub fn new(mut cfg: IpfConfig) -> Ipf {
        cfg.min_frag_size = cfg.min_frag_size.max(MIN_FRAG_SIZE_LBOUND);
        cfg.max_frags = cfg.max_frags.min(MAX_FRAGS_UBOUND);
        Ipf {
            max_list: max_list_len(cfg.min_frag_size),
            cfg,
            lists: Mutex::new(Lists::default()),
            due: AtomicU64::new(u64::MAX),
            counters: Default::default(),
        }
    }

    /// Whether IPv4 reassembly is on.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.cfg.enabled
    }

    /// The time from which a list is due for release ([`Ipf::release`]):
    /// a loop compares it with its coarse clock once per burst.
    #[inline]
    pub fn due(&self) -> u64 {
        self.due.load(Ordering::Relaxed)
    }

    fn bump(&self, i: usize, n: u64) {
        self.counters[i].fetch_add(n, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Lists> {
        self.lists.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads a frame the tracker found to be a fragment (see [`check`]),
    /// counting a too small one.
    pub(crate) fn check(&self, f: &[u8], validate: bool) -> Result<FragInfo, NotHeld> {
        let mut small = false;
        let r = check(f, validate, self.cfg.min_frag_size, &mut small);
        if small {
            self.bump(TOO_SMALL, 1);
        }
        r
    }

    /// Holds fragment `info` of frame `f` (OVS `ipf_handle_frag`,
    /// `ipf_process_frag`, `ipf_list_state_transition`), `md` and `origin`
    /// being what it came with, in `zone` and pass `recirc_id`, at `now`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add(
        &self,
        info: &FragInfo,
        f: &[u8],
        md: &CtResult,
        origin: &FlowKey,
        zone: u16,
        recirc_id: u32,
        now: u64,
    ) -> Added {
        let mut st = self.lock();
        if st.nfrag >= self.cfg.max_frags as usize {
            return Added::Refused;
        }
        let key = ListKey { src: info.src, dst: info.dst, recirc_id, id: info.id, zone, proto: info.proto };
        let max_list = self.max_list;
        let Lists { map, expiry, next_seq, .. } = &mut *st;
        let list = match map.get_mut(&key) {
            None => {
                let seq = *next_seq;
                *next_seq += 1;
                expiry.insert(seq, key);
                let size = max_list.min(LIST_INCREMENT);
                let l = List {
                    frags: Vec::with_capacity(size),
                    size,
                    sent: 0,
                    state: ListState::OtherSeen,
                    expiration: now + LIST_TIMEOUT_MS,
                    seq,
                };
                map.entry(key).or_insert(l)
            }
            Some(l) if matches!(l.state, ListState::ReassFail | ListState::Completed) => return Added::Refused,
            Some(l) => {
                if l.frags.len() >= l.size {
                    let inc = LIST_INCREMENT.min(max_list.saturating_sub(l.size));
                    if inc == 0 {
                        return Added::Refused;
                    }
                    l.size += inc;
                }
                l
            }
        };
        let duped = list
            .frags
            .iter()
            .any(|h| (info.start >= h.start && info.start <= h.end) || (info.end >= h.start && info.end <= h.end));
        if duped {
            self.bump(OVERLAP, 1);
            return Added::Refused;
        }
        list.frags.push(Frag {
            frame: f.to_vec(),
            l3: info.l3,
            ihl: info.ihl,
            tot: info.tot,
            start: info.start,
            end: info.end,
            md: *md,
            origin: *origin,
        });
        // A new list starts as "other frag" (OVS's "unused" moves the same
        // way).
        let next = match list.state {
            ListState::OtherSeen if info.first => ListState::FirstSeen,
            ListState::OtherSeen if info.last => ListState::LastSeen,
            ListState::FirstSeen if info.last => ListState::FirstLastSeen,
            ListState::LastSeen if info.first => ListState::FirstLastSeen,
            s => s,
        };
        list.state = next;
        let mut out = Added::Held;
        if next == ListState::FirstLastSeen {
            // Insertion sort, stable, as OVS's `ipf_sort`.
            list.frags.sort_by_key(|h| h.start);
            let contiguous = list.frags.windows(2).all(|w| w[0].end as u32 + 1 == w[1].start as u32);
            if contiguous {
                match reassemble(&list.frags) {
                    Some(frame) => {
                        list.state = ListState::Completed;
                        let seq = list.seq;
                        let md = list.frags[0].md;
                        expiry.remove(&seq);
                        out = Added::Complete(Reassembled { key, frame, md });
                    }
                    None => list.state = ListState::ReassFail,
                }
            }
        }
        st.nfrag += 1;
        self.bump(ACCEPTED, 1);
        self.refresh_due(&st);
        out
    }

    /// Writes the verdict on a reassembled packet into its fragments (OVS
    /// `ipf_post_execute_reass_pkts`): the first fragment's L4 bytes from
    /// the packet's (NAT's ports and checksum), every fragment's addresses
    /// from the packet's (its header checksum updated), and `md` (the
    /// tracker's verdict) into every fragment's metadata; the list then
    /// waits to be sent.
    pub(crate) fn post(&self, r: &Reassembled, md: &CtResult) {
        let mut st = self.lock();
        let Some(list) = st.map.get_mut(&r.key) else { return };
        let p = &r.frame;
        let Some(f0) = list.frags.first_mut() else { return };
        let (l4, len) = (f0.l3 + f0.ihl, f0.tot - f0.ihl);
        if let (Some(dst), Some(src)) = (f0.frame.get_mut(l4..l4 + len), p.get(l4..l4 + len)) {
            dst.copy_from_slice(src);
        }
        let l3 = f0.l3;
        let addr = |at: usize| p.get(l3 + at..l3 + at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let (src, dst) = (addr(12).unwrap_or(r.key.src), addr(16).unwrap_or(r.key.dst));
        for h in &mut list.frags {
            let f = &mut h.frame;
            let at = h.l3;
            let old = |f: &[u8], o: usize| u32::from_be_bytes([f[at + o], f[at + o + 1], f[at + o + 2], f[at + o + 3]]);
            let mut csum = u16::from_be_bytes([f[at + 10], f[at + 11]]);
            csum = recalc32(csum, old(f, 12), src);
            csum = recalc32(csum, old(f, 16), dst);
            f[at + 10..at + 12].copy_from_slice(&csum.to_be_bytes());
            f[at + 12..at + 16].copy_from_slice(&src.to_be_bytes());
            f[at + 16..at + 20].copy_from_slice(&dst.to_be_bytes());
            h.md = CtResult { cached: None, ..*md };
        }
        st.complete.push_back(r.key);
        self.refresh_due(&st);
    }

    /// Sends what is due at `now`, at most `room` fragments, into `out`
    /// (OVS `ipf_send_completed_frags` then `ipf_send_expired_frags`):
    /// completed lists in the order they completed, then at most one
    /// expired list, its fragments marked `+inv`; a list left unsent 10 s
    /// past its expiry is purged instead.
    pub fn release(&self, now: u64, mut room: usize, out: &mut Vec<FragOut>) {
        let mut st = self.lock();
        while let Some(&key) = st.complete.front() {
            match self.send(&mut st, key, now, &mut room, out, false) {
                true => {
                    st.complete.pop_front();
                    st.map.remove(&key);
                }
                false => break,
            }
        }
        if let Some((&seq, &key)) = st.expiry.first_key_value() {
            let expired = st.map.get(&key).is_some_and(|l| now > l.expiration);
            if expired && self.send(&mut st, key, now, &mut room, out, true) {
                st.expiry.remove(&seq);
                st.map.remove(&key);
            }
        }
        self.refresh_due(&st);
    }

    /// Sends list `key`'s fragments as `room` allows (OVS
    /// `ipf_send_frags_in_list`); true when none is left (or the list was
    /// purged).
    fn send(
        &self,
        st: &mut Lists,
        key: ListKey,
        now: u64,
        room: &mut usize,
        out: &mut Vec<FragOut>,
        exp: bool,
    ) -> bool {
        let Some(list) = st.map.get_mut(&key) else { return true };
        if now >= list.expiration + PURGE_AFTER_MS {
            let n = list.frags.len() - list.sent;
            list.sent = list.frags.len();
            st.nfrag -= n;
            self.bump(PURGED, n as u64);
            return true;
        }
        while list.sent < list.frags.len() {
            if *room == 0 {
                return false;
            }
            *room -= 1;
            let h = &mut list.frags[list.sent];
            list.sent += 1;
            st.nfrag -= 1;
            let mut md = h.md;
            if exp {
                md.state = CS_INVALID;
            }
            out.push(FragOut { frame: std::mem::take(&mut h.frame), md, origin: h.origin });
            self.bump(if exp { EXPIRED } else { COMPLETED }, 1);
        }
        true
    }

    /// Purges the lists left unsent 10 s past their expiry, completed or
    /// not (OVS's `ipf_clean` thread); returns the fragments dropped.
    pub fn clean(&self, now: u64) -> usize {
        if self.due() == u64::MAX {
            return 0;
        }
        let mut st = self.lock();
        let stale = |l: &List| now >= l.expiration + PURGE_AFTER_MS;
        let old: Vec<(Option<u64>, ListKey)> = st
            .expiry
            .iter()
            .map(|(&s, &k)| (Some(s), k))
            .chain(st.complete.iter().map(|&k| (None, k)))
            .filter(|(_, k)| st.map.get(k).is_some_and(stale))
            .collect();
        let mut n = 0;
        for (seq, key) in old {
            if let Some(l) = st.map.remove(&key) {
                n += l.frags.len() - l.sent;
            }
            match seq {
                Some(s) => {
                    st.expiry.remove(&s);
                }
                None => st.complete.retain(|k| *k != key),
            }
        }
        st.nfrag -= n;
        self.bump(PURGED, n as u64);
        self.refresh_due(&st);
        n
    }

    /// Recomputes [`Ipf::due`] (under the mutex).
    fn refresh_due(&self, st: &Lists) {
        let due = if !st.complete.is_empty() {
            0
        } else {
            st.expiry.values().next().and_then(|k| st.map.get(k)).map_or(u64::MAX, |l| l.expiration + 1)
        };
        self.due.store(due, Ordering::Relaxed);
    }

    /// The counters and settings.
    pub fn status(&self) -> IpfStatus {
        let c = |i: usize| self.counters[i].load(Ordering::Relaxed);
        IpfStatus {
            v4_enabled: self.cfg.enabled,
            max_frags: self.cfg.max_frags,
            n_frags: self.lock().nfrag,
            min_frag_size: self.cfg.min_frag_size,
            n_accepted: c(ACCEPTED),
            n_completed: c(COMPLETED),
            n_expired: c(EXPIRED),
            n_too_small: c(TOO_SMALL),
            n_overlapped: c(OVERLAP),
            n_purged: c(PURGED),
        }
    }

    /// Checks that the fragments add up (for the fuzzer and tests): every
    /// fragment accepted is sent (completed or expired), purged or still
    /// held; those held are the lists' unsent ones, within the limit; a
    /// list waiting to complete is in the expiry order, a completed one in
    /// the send queue, each once.
    ///
    /// # Errors
    /// What does not add up.
    pub fn audit(&self) -> Result<(), String> {
        let st = self.lock();
        let c = |i: usize| self.counters[i].load(Ordering::Relaxed);
        let held: usize = st.map.values().map(|l| l.frags.len() - l.sent).sum();
        if held != st.nfrag || st.nfrag > self.cfg.max_frags as usize {
            return Err(format!("{held} fragments in lists, nfrag {} (max {})", st.nfrag, self.cfg.max_frags));
        }
        if c(ACCEPTED) != c(COMPLETED) + c(EXPIRED) + c(PURGED) + st.nfrag as u64 {
            return Err(format!("accepted != sent + expired + purged + held: {:?}", self.counters));
        }
        let waiting = st.map.values().filter(|l| l.state != ListState::Completed).count();
        let done = st.map.len() - waiting;
        if waiting != st.expiry.len() || done != st.complete.len() {
            return Err(format!(
                "{waiting} lists waiting, {} in the expiry order; {done} complete, {} queued",
                st.expiry.len(),
                st.complete.len()
            ));
        }
        for (seq, k) in &st.expiry {
            if !st.map.get(k).is_some_and(|l| l.seq == *seq && l.state != ListState::Completed) {
                return Err(format!("expiry entry {seq} {k:?} has no waiting list"));
            }
        }
        for k in &st.complete {
            if !st.map.get(k).is_some_and(|l| l.state == ListState::Completed && l.sent < l.frags.len()) {
                return Err(format!("queued {k:?} is no complete list with fragments left"));
            }
        }
        if st.map.values().any(|l| l.frags.len() > self.max_list) {
            return Err("a list over its limit".into());
        }
        Ok(())
    }

    /// The lists as `dpctl/ipf-get-status -m` prints them (after "Fragment
    /// Lists:"), in no particular order.
    pub fn dump_lists(&self) -> Vec<String> {
        let st = self.lock();
        let ip = |a: u32| std::net::Ipv4Addr::from(a).to_string();
        st.map
            .iter()
            .map(|(k, l)| {
                let mut s = String::new();
                let _ = write!(
                    s,
                    "(src={},dst={},recirc_id={},ip_id={},dl_type=0x800,zone={},nw_proto={},num_fragments={},state={})",
                    ip(k.src),
                    ip(k.dst),
                    k.recirc_id,
                    k.id,
                    k.zone,
                    k.proto,
                    l.frags.len(),
                    l.state.name()
                );
                s
            })
            .collect()
    }
}

/// The packet a sorted, contiguous list makes (OVS
/// `ipf_reassemble_v4_frags`): the first fragment's frame without its
/// padding, every later fragment's data appended, the more-fragments bit
/// cleared and the total length set, the header checksum updated; `None`
/// over 65,535 bytes (or, where OVS would go wrong, when a fragment's end
/// wrapped past byte 65,535).
fn reassemble(frags: &[Frag]) -> Option<Vec<u8>> {
    let (f0, rest) = frags.split_first()?;
    let (first, last) = (rest.first()?, rest.last()?);
    let len = f0.tot;
    let rest_len = last.end as i64 - first.start as i64 + 1;
    if len as i64 + rest_len > IPV4_MAX as i64 || rest_len < 0 {
        return None;
    }
    let mut p = Vec::with_capacity(f0.l3 + len + rest_len as usize);
    p.extend_from_slice(f0.frame.get(..f0.l3 + len)?);
    for h in rest {
        let add = h.end as i64 - h.start as i64 + 1;
        if add < 0 || add as usize > h.tot - h.ihl {
            return None;
        }
        let l4 = h.l3 + h.ihl;
        p.extend_from_slice(h.frame.get(l4..l4 + add as usize)?);
    }
    let total = (len as i64 + rest_len) as u16;
    let l3 = f0.l3;
    let frag_off = u16::from_be_bytes([p[l3 + 6], p[l3 + 7]]);
    let new_off = frag_off & !0x2000;
    let old_tot = u16::from_be_bytes([p[l3 + 2], p[l3 + 3]]);
    let mut csum = u16::from_be_bytes([p[l3 + 10], p[l3 + 11]]);
    csum = recalc16(csum, frag_off, new_off);
    csum = recalc16(csum, old_tot, total);
    p[l3 + 10..l3 + 12].copy_from_slice(&csum.to_be_bytes());
    p[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
    p[l3 + 6..l3 + 8].copy_from_slice(&new_off.to_be_bytes());
    Some(p)
}

/// `ovs-appctl dpctl/ipf-get-status` as OVS 3.1 prints it, with `-m` the
/// lists after it (`lists` in the order given).
pub fn format_status(s: &IpfStatus, lists: Option<&[String]>) -> String {
    let mut o = String::new();
    let mut l = |t: String| {
        o.push_str("        ");
        o.push_str(&t);
        o.push('\n');
    };
    l("Fragmentation Module Status".into());
    l("---------------------------".into());
    l(format!("v4 enabled: {}", s.v4_enabled as u8));
    l("v6 enabled: 0".into());
    l(format!("max num frags (v4/v6): {}", s.max_frags));
    l(format!("num frag: {}", s.n_frags));
    l(format!("min v4 frag size: {}", s.min_frag_size));
    l(format!("v4 frags accepted: {}", s.n_accepted));
    l(format!("v4 frags completed: {}", s.n_completed));
    l(format!("v4 frags expired: {}", s.n_expired));
    l(format!("v4 frags too small: {}", s.n_too_small));
    l(format!("v4 frags overlapped: {}", s.n_overlapped));
    l(format!("v4 frags purged: {}", s.n_purged));
    l("min v6 frag size: 1280".into());
    for c in ["accepted", "completed", "expired", "too small", "overlapped", "purged"] {
        l(format!("v6 frags {c}: 0"));
    }
    if let Some(lists) = lists {
        o.push_str("\n        Fragment Lists:\n\n");
        for x in lists {
            o.push_str(x);
            o.push('\n');
        }
    }
    o
}
