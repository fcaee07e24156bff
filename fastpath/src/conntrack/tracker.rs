//! The connection tracker: one per node, shared by every poll loop
//! (`Arc<Conntrack>`), doing for one packet what OVS's `conntrack_execute`
//! does (`process_one`, `process_one_fast`, `conn_not_found`,
//! `conn_update_state`, `handle_nat`, `check_orig_tuple`, `write_ct_md`).
//!
//! A packet is looked up in its zone by its key (an ICMP error by the
//! header it quotes); a connection is found whichever direction the packet
//! goes, its reply key being the translated one under NAT. A found
//! connection runs its protocol's state machine (`tcp.rs`,
//! `proto.rs`); a packet that starts a connection is `+new` and, with
//! `commit`, creates it (NAT choosing the reply tuple); NAT then rewrites
//! the frame. The result is what OVS sets in the packet's metadata.
//!
//! Threads. [`Conntrack::execute`] may run on any number of threads at
//! once. An established packet is parsed (checksums verified), pins the
//! epoch (once per burst with [`Conntrack::pin`] and
//! [`Conntrack::execute_with`]), walks its bucket's chain without a lock,
//! takes its connection's own spin flag (contended only when the same
//! connection is being processed on another core) for the state machine,
//! the timeout, mark and label, and rewrites the frame for NAT from the
//! connection's immutable keys: no lock shared with other connections, no
//! allocation, no clock read, no counter. Creating a connection allocates
//! it and takes the mutexes of one or two table shards; removing one
//! (sweep, flush) likewise, after ending it under its flag. See
//! `table.rs` for what synchronises the table and `conn.rs`
//! for a connection. The sweeper, flush and dump walk the table without
//! stopping anyone.
//!
//! The connection limit is checked with an atomic reservation, so it holds
//! exactly; a refused commit leaves the packet `+new` (as OVS: the
//! connection is not created, the packet is not invalid) and counts
//! `n_full`.
//!
//! Fragments. As in OVS (`ipf.c`), IPv4 fragments are reassembled before
//! tracking and the original fragments go on with the verdict (`ipf.rs`).
//! [`Conntrack::execute_with`] parses as it always does; a fragment is
//! found there (no extra work for other packets) and handed back to the
//! caller ([`Track::Fragment`]), which gives it to
//! [`Conntrack::fragment`] with what the reassembler keys and keeps (the
//! pass's recirculation id and key). Fragments leave through
//! [`Conntrack::release_fragments`], which a caller runs after a `ct`
//! action when [`Conntrack::fragments_due`] says some are due.
//!
//! Deliberate differences from OVS 3.1: plain `nat` committing a new
//! connection leaves it untranslated (OVS 3.1 stores a reply tuple of
//! `0.0.0.0` and port 0 that no reply can match); an expired connection is
//! absent everywhere at once, NAT reply tuples included (OVS keeps a
//! translated connection's reply tuple until its sweeper runs: meanwhile a
//! reply-direction packet is `+inv`, a reopened tuple gets another port);
//! no ALGs (FTP, TFTP), zone limits or timeout policies beyond the one set
//! of timeouts; NAT's `random`, `hash` and `persistent` are ignored, as by
//! OVS's userspace datapath, and where a range leaves a choice, the hash
//! that picks it is ours (OVS seeds its own at random per process).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use crossbeam_epoch::Guard;

use super::conn::{Conn, ConnState};
use super::dump;
use super::ipf::{format_status, Added, FragOut, Ipf};
use super::key::{Key, IPPROTO_ICMP};
use super::l4::{timeouts_ms, Update, N_TM};
use super::nat::{nat_packet, unique_reply, NatSpec, NAT_ADOPTED, NAT_DST, NAT_DST_PORT};
use super::parse::{parse, Bad, Parsed};
use super::proto::{valid_new, ProtoState};
use super::table::{pin, Table};
use super::types::{
    Cached, CtConfig, CtRequest, CtResult, CtStats, CtTuple, IpfConfig, IpfStatus, CS_DST_NAT, CS_ESTABLISHED,
    CS_INVALID, CS_NEW, CS_RELATED, CS_REPLY_DIR, CS_SRC_NAT, CS_TRACKED,
};
use crate::flow::FlowKey;

const NAT_BITS: u8 = CS_SRC_NAT | CS_DST_NAT;
/// Table shards (mutexes for inserts and removals).
const N_SHARDS: usize = 1024;
/// Buckets a sweep walks between re-pins.
const REPIN_EVERY: usize = 1024;
/// Times a packet is processed again after losing a race with another
/// thread creating or ending its connection.
const MAX_RETRIES: usize = 4;

/// How long a host translation waits for its connection to be committed
/// ([`Conntrack::adopt`]).
pub const ADOPT_TTL_MS: u64 = 10_000;
/// Host translations waiting at most.
const ADOPT_MAX: usize = 4096;

/// What running a packet through a found connection led to.
enum Step {
    /// Done: the packet's state, mark and label are set.
    Done,
    /// A new connection must be created on the tuple (the old one ended).
    Create,
    /// The connection expired before its lock was taken.
    Gone,
}

/// What a commit led to.
enum Created<'g> {
    /// No connection (not committed, refused, invalid).
    None,
    /// Created.
    Conn(&'g Conn),
    /// Someone else created it first.
    Exists,
}

/// A thread's pin on the tracker for a burst ([`Conntrack::pin`]).
pub struct CtPin(Guard);

/// What [`Conntrack::execute_with`] did with a packet.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Track {
    /// Tracked: its metadata is set (and the frame rewritten for NAT).
    Done,
    /// An IPv4 fragment, left as it was: the caller gives it to
    /// [`Conntrack::fragment`].
    Fragment,
}

/// Event counters (relaxed; none on the established path).
#[derive(Default)]
struct Counters {
    created: AtomicU64,
    expired: AtomicU64,
    flushed: AtomicU64,
    full: AtomicU64,
    invalid: AtomicU64,
    fragments: AtomicU64,
    nat_exhausted: AtomicU64,
    adopted: AtomicU64,
}

/// The connection tracker (see the module doc).
pub struct Conntrack {
    /// The connections.
    table: Table<Conn>,
    /// Timeout per class, ms.
    tm_ms: [u64; N_TM],
    /// Connection limit.
    max_conns: usize,
    /// Check TCP sequence numbers.
    seq_check: bool,
    /// Verify checksums.
    validate: bool,
    /// Seed of the NAT range hash.
    seed: u64,
    /// Connections in the table, reserved before insertion.
    n_conns: AtomicUsize,
    /// Event counters.
    counters: Counters,
    /// Where the next sweep starts (the sweeper's alone, behind a mutex).
    sweep_at: Mutex<usize>,
    /// IPv4 fragments waiting for reassembly (their own mutex, taken for
    /// fragments alone).
    ipf: Ipf,
    /// The host's translations to adopt, by the translated original key
    /// ([`Conntrack::adopt`]), each with its expiry.
    adoptions: Mutex<HashMap<Key, (Key, u64)>>,
}

#[inline]
fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Applies `set_mark`/`set_label` to a connection's state and copies its
/// mark and label into the packet's metadata (OVS `write_ct_md`,
/// `set_mark`, `set_label`).
#[inline]
fn marks(st: &mut ConnState, md: &mut CtResult, req: &CtRequest) {
    if let Some((v, m)) = req.set_mark {
        st.mark = v | (st.mark & !m);
    }
    if let Some((v, m)) = req.set_label {
        st.label = v | (st.label & !m);
    }
    md.mark = st.mark;
    md.label = st.label;
}

/// Whether `key` hashes as `c`'s original key: it is that key, or its
/// reverse (the hash is symmetric).
#[inline]
fn hashes_as_orig(c: &Conn, key: &Key) -> bool {
    c.keys[0] == *key || c.keys[0].reverse() == *key
}

impl Conntrack {
    /// A tracker with `cfg`: the bucket array (8 bytes a bucket, the next
    /// power of two above `max_conns`) is allocated now.
    pub fn new(cfg: CtConfig) -> Conntrack {
        let seed = RandomState::new().hash_one(0x5eed_u64);
        Conntrack {
            table: Table::new(cfg.max_conns.max(1), N_SHARDS, seed),
            tm_ms: timeouts_ms(&cfg.timeouts),
            max_conns: cfg.max_conns,
            seq_check: cfg.tcp_seq_check,
            validate: cfg.validate_checksums,
            seed: seed.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15,
            n_conns: AtomicUsize::new(0),
            counters: Counters::default(),
            sweep_at: Mutex::new(0),
            ipf: Ipf::new(cfg.ipf),
            adoptions: Mutex::default(),
        }
    }

    /// Pins the calling thread for a burst of [`Conntrack::execute_with`]
    /// calls: connections found stay allocated until the pin is dropped, so
    /// a poll loop pins once per burst (one atomic operation) rather than
    /// per packet. Do not keep it across idle time: while it is held, no
    /// connection removed anywhere is freed.
    #[inline]
    pub fn pin(&self) -> CtPin {
        CtPin(pin())
    }

    /// Runs one packet that has not been through the tracker (or whose
    /// `ct_state` was cleared) through it: the frame (Ethernet and IPv4) is
    /// rewritten in place when NAT applies. `now_ms` is the caller's coarse
    /// clock, read once per burst. One packet in, one verdict out: an IPv4
    /// fragment is not held for reassembly here but `+trk+inv` (as with
    /// reassembly off); [`Conntrack::execute_frames`] reassembles.
    pub fn execute(&self, frame: &mut [u8], req: &CtRequest, now_ms: u64) -> CtResult {
        let mut md = CtResult::default();
        self.execute_one(frame, &mut md, req, now_ms);
        md
    }

    /// [`Conntrack::execute_with`] under a pin of its own, a fragment
    /// `+trk+inv`.
    fn execute_one(&self, frame: &mut [u8], md: &mut CtResult, req: &CtRequest, now_ms: u64) {
        if self.execute_with(&self.pin(), frame, md, req, now_ms) == Track::Fragment {
            bump(&self.counters.fragments);
            bump(&self.counters.invalid);
            self.invalid(md, req);
        }
    }

    /// One `ct` action as a datapath runs it on one packet, reassembly
    /// included (for tests and tools; allocates): `frame` with the
    /// metadata `md` it carries (default for a first pass) through the
    /// tracker in pass `recirc_id`, `origin` its pass's key. Returns the
    /// frames that go on after the action, in order, each with its
    /// metadata: the packet itself unless it was held for reassembly, then
    /// fragments released (a list it completed, an expired one; at most a
    /// batch, as [`Conntrack::release_fragments`]).
    pub fn execute_frames(
        &self,
        mut frame: Vec<u8>,
        mut md: CtResult,
        req: &CtRequest,
        now_ms: u64,
        recirc_id: u32,
        origin: &FlowKey,
    ) -> Vec<FragOut> {
        let pin = self.pin();
        let mut out = Vec::new();
        let goes_on = match self.execute_with(&pin, &mut frame, &mut md, req, now_ms) {
            Track::Done => true,
            Track::Fragment => self.fragment(&pin, &frame, &mut md, req, now_ms, recirc_id, origin),
        };
        if goes_on {
            out.push(FragOut { frame, md, origin: *origin });
        }
        if now_ms >= self.fragments_due() {
            self.release_fragments(now_ms, super::ipf::BATCH - out.len(), &mut out);
        }
        out
    }

    /// Runs a packet through the tracker again, `prev` being what an
    /// earlier `ct` of the same packet returned (OVS keeps it in the
    /// packet's metadata across recirculation): in the same zone the state
    /// is not reset, a packet already translated is looked up by its
    /// translated tuple, and the connection found earlier is reused without
    /// running its state machine again (unless `force`).
    /// A fragment is `+trk+inv`, as with [`Conntrack::execute`].
    pub fn execute_after(&self, frame: &mut [u8], prev: &CtResult, req: &CtRequest, now_ms: u64) -> CtResult {
        let mut md = *prev;
        self.execute_one(frame, &mut md, req, now_ms);
        md
    }

    /// The tracker as a poll loop calls it: `md` is the packet's ct
    /// metadata, updated in place (`CtResult::default()` for a packet not
    /// tracked yet, as [`Conntrack::execute`]; what an earlier `ct` left, as
    /// [`Conntrack::execute_after`]), under a pin taken once per burst.
    /// An IPv4 fragment is left untouched and reported as
    /// [`Track::Fragment`]: the caller passes it on to
    /// [`Conntrack::fragment`] (this costs the other packets nothing: the
    /// parser reads the fragment bits anyway).
    #[inline]
    pub fn execute_with(
        &self,
        pin: &CtPin,
        frame: &mut [u8],
        md: &mut CtResult,
        req: &CtRequest,
        now_ms: u64,
    ) -> Track {
        let g = &pin.0;
        if let Some(c) = md.cached {
            if c.key.zone == req.zone && !req.force {
                if let Some((conn, false)) = self.table.lookup_in(c.bucket as usize, &c.key, now_ms, g) {
                    self.process_fast(frame, md, conn, &c, req);
                    return Track::Done;
                }
            }
        }
        let mut p = Parsed::default();
        match parse(frame, req.zone, self.validate, &mut p) {
            Ok(()) => self.process(frame, &p, md, req, now_ms, g),
            Err(Bad::Fragment) => return Track::Fragment,
            Err(_) => self.unparsed(md, req),
        }
        if md.state & CS_INVALID != 0 {
            bump(&self.counters.invalid);
        }
        Track::Done
    }

    /// The rest of a `ct` action on a packet [`Conntrack::execute_with`]
    /// found to be an IPv4 fragment (OVS `ipf_preprocess_conntrack`, the
    /// reassembled packet's tracking, `ipf_post_execute_reass_pkts`): the
    /// fragment is checked and held in its list (copied: the caller keeps
    /// its frame and drops it), `md` and `origin` (the key of the pass it
    /// is in, whose recirculation id is `recirc_id`) kept with it. When it
    /// completes its list, the reassembled packet is tracked now, starting
    /// from the metadata the first fragment came with, and the list's
    /// fragments wait with the verdict to be released (they are due at
    /// once). Returns true when the packet goes on after the action, `md`
    /// set to `+trk+inv`: reassembly off, a malformed or too small
    /// fragment, one overlapping a held one, or one over a limit; false
    /// when it was held.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    pub fn fragment(
        &self,
        pin: &CtPin,
        frame: &[u8],
        md: &mut CtResult,
        req: &CtRequest,
        now_ms: u64,
        recirc_id: u32,
        origin: &FlowKey,
    ) -> bool {
        bump(&self.counters.fragments);
        let added = match self.ipf.enabled().then(|| self.ipf.check(frame, self.validate)) {
            Some(Ok(info)) => self.ipf.add(&info, frame, md, origin, req.zone, recirc_id, now_ms),
            _ => Added::Refused,
        };
        match added {
            Added::Refused => {
                self.invalid(md, req);
                bump(&self.counters.invalid);
                true
            }
            Added::Held => false,
            Added::Complete(mut r) => {
                let mut rmd = CtResult { cached: None, ..r.md };
                // OVS: a packet that the reassembler marked invalid on an
                // earlier pass (an expired fragment) is invalid again.
                let mut invalid = rmd.state == CS_INVALID
                    || self.execute_with(pin, &mut r.frame, &mut rmd, req, now_ms) == Track::Fragment;
                if !invalid && rmd.host_query {
                    // Its fragments are held already: a reassembled
                    // datagram does not wait for the host's translation
                    // (tracked as if none was found).
                    rmd.host_query = false;
                    rmd.host_checked = true;
                    invalid = self.execute_with(pin, &mut r.frame, &mut rmd, req, now_ms) == Track::Fragment;
                }
                if invalid {
                    self.invalid(&mut rmd, req);
                    bump(&self.counters.invalid);
                }
                self.ipf.post(&r, &rmd);
                false
            }
        }
    }

    /// When fragments are next due for release ([`Ipf::due`]): a caller
    /// compares it with its coarse clock (once per burst) and calls
    /// [`Conntrack::release_fragments`] after its `ct` actions while
    /// `now_ms >= fragments_due()`.
    #[inline]
    pub fn fragments_due(&self) -> u64 {
        self.ipf.due()
    }

    /// Fragments to send on after a `ct` action (OVS
    /// `ipf_postprocess_conntrack`), at most `room` of them, appended to
    /// `out`: those of completed lists, then those of at most one expired
    /// list (`+inv`); a list unsent 10 s past its expiry is purged.
    pub fn release_fragments(&self, now_ms: u64, room: usize, out: &mut Vec<FragOut>) {
        self.ipf.release(now_ms, room, out);
    }

    /// The reassembler's counters (`dpctl/ipf-get-status`).
    pub fn ipf_status(&self) -> IpfStatus {
        self.ipf.status()
    }

    /// `dpctl/ipf-get-status` as OVS prints it; with `lists` (`-m`), the
    /// fragment lists after it, sorted.
    pub fn ipf_show(&self, lists: bool) -> String {
        let mut l = self.ipf.dump_lists();
        l.sort();
        format_status(&self.ipf.status(), lists.then_some(&l[..]))
    }

    /// A packet the tracker cannot read: `+trk+inv`.
    #[cold]
    fn unparsed(&self, md: &mut CtResult, req: &CtRequest) {
        self.invalid(md, req);
    }

    /// OVS `write_ct_md` for a packet without a connection marked invalid:
    /// `+trk+inv` in the request's zone, nothing else.
    fn invalid(&self, md: &mut CtResult, req: &CtRequest) {
        md.state = CS_INVALID | CS_TRACKED;
        md.zone = req.zone;
        md.mark = 0;
        md.label = 0;
        md.orig = None;
        md.cached = None;
    }

    /// A packet whose connection is known from an earlier `ct` in the same
    /// zone (OVS `process_one_fast`): NAT if asked, mark and label.
    fn process_fast(&self, f: &mut [u8], md: &mut CtResult, c: &Conn, cached: &Cached, req: &CtRequest) {
        if req.nat.is_some() {
            if c.nat != 0 && (md.state & NAT_BITS == 0 || md.zone != req.zone) {
                let mut p = Parsed::default();
                if parse(f, req.zone, false, &mut p).is_ok() {
                    md.state &= !NAT_BITS;
                    md.state |= nat_packet(f, &p, &c.keys, c.nat, cached.reply);
                }
            }
            md.cached = None;
        }
        md.zone = req.zone;
        if req.set_mark.is_none() && req.set_label.is_none() {
            // Nothing to change: read without the connection's flag.
            (md.mark, md.label) = c.marks();
        } else {
            marks(&mut c.lock(), md, req);
        }
    }

    /// OVS `process_one`, retried when another thread wins a race for the
    /// packet's connection.
    fn process(&self, f: &mut [u8], p: &Parsed, md: &mut CtResult, req: &CtRequest, now: u64, g: &Guard) {
        // An attempt that fails (a race: retried) has changed nothing of
        // `md` but its state (checked in debug builds): that alone is put
        // back, not the whole 80-byte result copied per packet.
        let state = md.state;
        #[cfg(debug_assertions)]
        let saved = *md;
        for _ in 0..MAX_RETRIES {
            md.state = state;
            if self.process_once(f, p, md, req, now, g) {
                return;
            }
            #[cfg(debug_assertions)]
            debug_assert_eq!(CtResult { state, ..*md }, saved, "a failed attempt changed more than the state");
        }
        // Still racing: give up on the packet.
        md.state = CS_INVALID | CS_TRACKED;
        md.zone = req.zone;
        md.cached = None;
    }

    /// One attempt; false to retry, having changed nothing of `md` but
    /// its state ([`Conntrack::process`] puts back that alone).
    fn process_once(&self, f: &mut [u8], p: &Parsed, md: &mut CtResult, req: &CtRequest, now: u64, g: &Guard) -> bool {
        // A new zone: the state is reset.
        if md.state != 0 && md.zone != req.zone {
            md.state = 0;
        }
        let mut key = p.key;
        let mut reply = false;
        let mut conn = None;
        // The bucket of the packet's key, where it was looked up.
        let mut found_in = None;
        if md.state & NAT_BITS != 0 {
            // Already translated by an earlier ct: look it up by its other
            // direction.
            if let Some((c, r)) = self.table.lookup(&key.reverse(), now, g) {
                reply = !r;
                key = c.keys[reply as usize];
                conn = Some(c);
            }
        } else if let Some((c, r)) = {
            let b = self.table.bucket(&key);
            found_in = Some(b);
            self.table.lookup_in(b, &key, now, g)
        } {
            reply = r;
            conn = Some(c);
        } else if req.from_host {
            // Translated by the host already: an adopted connection is
            // found by its translated original tuple, the reverse of its
            // reply key.
            if let Some((c, true)) = self.table.lookup(&key.reverse(), now, g) {
                if c.nat & NAT_ADOPTED != 0 {
                    key = c.keys[0];
                    conn = Some(c);
                }
            }
        }
        if conn.is_none() && req.from_host && !md.host_checked && !p.related && valid_new(p) {
            // It would start a connection: the host's translation first.
            md.host_query = true;
            md.zone = req.zone;
            md.orig = Some(CtTuple::of(&key));
            return true;
        }
        if req.force && reply {
            if let Some(c) = conn.take() {
                self.end(c, now);
                reply = false;
            }
        }

        // A found connection's state machine sets the state, mark and label.
        let mut create = false;
        if let Some(c) = conn {
            match self.update(c, p, reply, md, req, now) {
                Step::Done => {
                    if req.nat.is_some() {
                        self.handle_nat(f, p, md, c, req.zone, reply);
                    }
                }
                Step::Create => create = true,
                Step::Gone => return false,
            }
        } else if let Some(c) = self.check_orig_tuple(p, md, req, now, g) {
            conn = Some(c);
            match self.update(c, p, reply, md, req, now) {
                Step::Done => {}
                Step::Create => create = true,
                Step::Gone => return false,
            }
        } else if p.related {
            // An ICMP error of no known connection.
            md.state = CS_INVALID;
        } else {
            create = true;
        }

        if create {
            conn = None;
            reply = false;
            match self.create(f, p, &key, md, req, now, g) {
                Created::Conn(c) => conn = Some(c),
                Created::None => {}
                Created::Exists => return false,
            }
        }

        md.state |= CS_TRACKED;
        md.zone = req.zone;
        match conn {
            Some(c) => md.orig = Some(CtTuple::of(&c.keys[0])),
            None => {
                md.mark = 0;
                md.label = 0;
                md.orig = Some(CtTuple::of(&key));
            }
        }
        md.cached = match (conn, req.nat) {
            (Some(c), None) => {
                // The original key's bucket is the packet's key's (looked
                // up first) when that is the original key or its reverse.
                let bucket = match found_in {
                    Some(b) if hashes_as_orig(c, &p.key) => b,
                    _ => self.table.bucket(&c.keys[0]),
                };
                Some(Cached { key: c.keys[0], bucket: bucket as u32, reply, related: p.related })
            }
            _ => None,
        };
        true
    }

    /// Runs packet `p` through connection `c` (OVS `conn_update_state`),
    /// and on success sets mark and label.
    fn update(&self, c: &Conn, p: &Parsed, reply: bool, md: &mut CtResult, req: &CtRequest, now: u64) -> Step {
        let mut st = c.lock();
        if c.expired(now) {
            return Step::Gone;
        }
        if p.related {
            md.state |= CS_RELATED;
            if reply {
                md.state |= CS_REPLY_DIR;
            }
        } else {
            let (res, tm) = st.proto.update(p, reply, self.seq_check);
            if let Some(tm) = tm {
                c.set_expiration(&st, now + self.tm_ms[tm as usize]);
            }
            match res {
                Update::Valid => {
                    md.state |= CS_ESTABLISHED;
                    md.state &= !CS_NEW;
                    if reply {
                        md.state |= CS_REPLY_DIR;
                    }
                }
                Update::Invalid => md.state = CS_INVALID,
                Update::ValidNew => md.state |= CS_NEW,
                Update::New => {
                    // The tuple is reused: the old connection ends now.
                    c.set_expiration(&st, 0);
                    return Step::Create;
                }
            }
        }
        marks(&mut st, md, req);
        Step::Done
    }

    /// Ends connection `c` now (OVS `conn_force_expire`); the sweeper
    /// removes it.
    fn end(&self, c: &Conn, now: u64) {
        let st = c.lock();
        if !c.expired(now) {
            c.set_expiration(&st, 0);
        }
    }

    /// Applies the translation of connection `c` to a packet not yet
    /// translated in this zone (OVS `handle_nat`).
    fn handle_nat(&self, f: &mut [u8], p: &Parsed, md: &mut CtResult, c: &Conn, zone: u16, reply: bool) {
        if c.nat != 0 && (md.state & NAT_BITS == 0 || md.zone != zone) {
            md.state &= !NAT_BITS;
            md.state |= nat_packet(f, p, &c.keys, c.nat, reply);
        }
    }

    /// A translated packet whose translated tuple is unknown, looked up by
    /// the original tuple an earlier `ct` reported (OVS `check_orig_tuple`).
    fn check_orig_tuple<'g>(
        &self,
        p: &Parsed,
        md: &CtResult,
        req: &CtRequest,
        now: u64,
        g: &'g Guard,
    ) -> Option<&'g Conn> {
        if md.state & NAT_BITS == 0 || req.nat.is_some() {
            return None;
        }
        let o = md.orig.filter(|o| o.proto != 0)?;
        let mut k =
            Key { src: o.src, dst: o.dst, sport: o.sport, dport: o.dport, zone: md.zone, proto: o.proto, icmp_type: 0 };
        if p.key.proto == IPPROTO_ICMP {
            k.sport = p.key.sport;
            k.dport = p.key.dport;
            k.icmp_type = o.sport as u8;
        }
        self.table.lookup(&k, now, g).map(|(c, _)| c)
    }

    /// A packet that may start a connection (OVS `conn_not_found`).
    #[allow(clippy::too_many_arguments)]
    fn create<'g>(
        &self,
        f: &mut [u8],
        p: &Parsed,
        key: &Key,
        md: &mut CtResult,
        req: &CtRequest,
        now: u64,
        g: &'g Guard,
    ) -> Created<'g> {
        if !valid_new(p) {
            md.state = CS_INVALID;
            return Created::None;
        }
        md.state = CS_NEW;
        // A connection the host translated exists already, in the host's
        // tracker: it is created here whether this `ct` commits or not.
        let adopted = if req.from_host && req.nat.is_none() { self.adopted(key, now) } else { None };
        if !req.commit && adopted.is_none() {
            return Created::None;
        }
        if self.n_conns.fetch_add(1, Ordering::Relaxed) >= self.max_conns {
            self.n_conns.fetch_sub(1, Ordering::Relaxed);
            bump(&self.counters.full);
            return Created::None;
        }
        let spec = req.nat.as_ref().and_then(NatSpec::of);
        let (proto, tm) = ProtoState::new(p);
        let expiration = now + self.tm_ms[tm as usize];
        // A connection the host translated: its keys as the host's.
        if let Some(orig) = adopted {
            let nat = NAT_DST | NAT_ADOPTED | if orig.dport != key.dport { NAT_DST_PORT } else { 0 };
            match self.table.insert(Conn::new([orig, key.reverse()], nat, proto, expiration), now, g) {
                Ok(c) => {
                    bump(&self.counters.created);
                    bump(&self.counters.adopted);
                    if req.set_mark.is_some() || req.set_label.is_some() {
                        marks(&mut c.lock(), md, req);
                    } else {
                        md.mark = 0;
                        md.label = 0;
                    }
                    md.state |= CS_DST_NAT;
                    return Created::Conn(c);
                }
                Err(_) => {
                    self.n_conns.fetch_sub(1, Ordering::Relaxed);
                    return Created::Exists;
                }
            }
        }
        for _ in 0..MAX_RETRIES {
            let reply_key = match &spec {
                None => key.reverse(),
                Some(s) => {
                    let hash = key.hash(self.seed ^ s.hash_bits());
                    match unique_reply(key, s, hash, |k| self.table.lookup(k, now, g).is_some()) {
                        Some(r) => r,
                        None => break,
                    }
                }
            };
            let nat = spec.map_or(0, |s| s.action);
            match self.table.insert(Conn::new([*key, reply_key], nat, proto, expiration), now, g) {
                Ok(c) => {
                    bump(&self.counters.created);
                    if req.set_mark.is_some() || req.set_label.is_some() {
                        marks(&mut c.lock(), md, req);
                    } else {
                        md.mark = 0;
                        md.label = 0;
                    }
                    if nat != 0 {
                        md.state |= nat_packet(f, p, &c.keys, nat, false);
                    }
                    return Created::Conn(c);
                }
                Err((_, 0)) => {
                    self.n_conns.fetch_sub(1, Ordering::Relaxed);
                    return Created::Exists;
                }
                // The translated tuple was taken meanwhile: choose again.
                Err(_) => {}
            }
        }
        self.n_conns.fetch_sub(1, Ordering::Relaxed);
        bump(&self.counters.nat_exhausted);
        Created::None
    }

    /// Ends and removes `c` if it expired by `now`: true if this call
    /// removed it.
    fn reap(&self, c: &Conn, now: u64, g: &Guard) -> bool {
        {
            let st = c.lock();
            if !c.expired(now) {
                return false;
            }
            c.set_expiration(&st, 0);
        }
        if self.table.remove(c, g) {
            self.n_conns.fetch_sub(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Removes connections expired by `now_ms`, at most `budget` of them,
    /// walking the table from where the previous call stopped, at most
    /// once around; returns how many it removed. Meant for a sweeper
    /// thread: it takes only the table shard of each connection it removes,
    /// briefly, and re-pins the epoch as it goes, so poll loops never wait
    /// on it. A walk of the whole table reads 8 bytes per bucket.
    /// The sweep also purges fragment lists left unsent 10 s past their
    /// expiry (OVS's `ipf_clean` thread), outside the budget.
    pub fn sweep(&self, now_ms: u64, budget: usize) -> usize {
        self.ipf.clean(now_ms);
        if budget == 0 {
            return 0;
        }
        let mut at = self.sweep_at.lock().unwrap_or_else(PoisonError::into_inner);
        let n = self.table.n_buckets();
        let mut g = pin();
        let mut removed = 0;
        for i in 0..n {
            let b = (*at + i) & (n - 1);
            self.table.scan(b, &g, |c| {
                if removed < budget && c.expired(now_ms) && self.reap(c, now_ms, &g) {
                    removed += 1;
                    // Counted as it goes: a reader never sees a connection
                    // gone from the table and not yet from the counters.
                    bump(&self.counters.expired);
                }
            });
            if removed >= budget {
                *at = b;
                break;
            }
            if i % REPIN_EVERY == REPIN_EVERY - 1 {
                g.repin();
            }
        }
        removed
    }

    /// Calls `f` on every connection (of `zone` if given) live at `now`
    /// (every one if `None`).
    fn each(&self, zone: Option<u16>, now: Option<u64>, mut f: impl FnMut(&Conn, &Guard)) {
        let mut g = pin();
        for b in 0..self.table.n_buckets() {
            self.table.scan(b, &g, |c| {
                if zone.is_none_or(|z| z == c.keys[0].zone) && now.is_none_or(|t| !c.expired(t)) {
                    f(c, &g);
                }
            });
            if b % REPIN_EVERY == REPIN_EVERY - 1 {
                g.repin();
            }
        }
    }

    /// The connections (of `zone` if given) as `ovs-appctl
    /// dpctl/dump-conntrack` prints them (without `-s`: no timeouts), in
    /// table order.
    pub fn dump(&self, zone: Option<u16>, now_ms: u64) -> Vec<String> {
        self.dump_with(zone, now_ms, false)
    }

    /// [`Conntrack::dump`], with `stats` as `dump-conntrack -s` (each
    /// line's seconds left, `timeout=N`).
    pub fn dump_with(&self, zone: Option<u16>, now_ms: u64, stats: bool) -> Vec<String> {
        let mut out = Vec::new();
        self.each(zone, Some(now_ms), |c, _| out.push(dump::format(c, now_ms, stats)));
        out
    }

    /// Records that the host translated a connection (kube-proxy's DNAT
    /// of a service address, found in the kernel's conntrack): packets
    /// of `seen` (what reaches the datapath from tun0: the client to the
    /// backend, in `zone`) were sent to `orig_dst`:`orig_dport` (the
    /// service). A connection committed for `seen` within
    /// [`ADOPT_TTL_MS`] takes the host's keys, original `client →
    /// service`, reply `backend → client`, with the destination
    /// translation, so that `ct(nat)` on a reply gives the client the
    /// service's address as the host would have; later packets of `seen`
    /// find it by its reply key reversed. TCP and UDP only.
    pub fn adopt(&self, seen: &CtTuple, zone: u16, orig_dst: u32, orig_dport: u16, now_ms: u64) {
        if !matches!(seen.proto, 6 | 17) {
            return;
        }
        let k = Key {
            src: seen.src,
            dst: seen.dst,
            sport: seen.sport,
            dport: seen.dport,
            zone,
            proto: seen.proto,
            icmp_type: 0,
        };
        let orig = Key { dst: orig_dst, dport: orig_dport, ..k };
        let mut a = self.adoptions.lock().unwrap_or_else(PoisonError::into_inner);
        if a.len() >= ADOPT_MAX {
            a.retain(|_, (_, t)| *t > now_ms);
            if a.len() >= ADOPT_MAX {
                return;
            }
        }
        a.insert(k, (orig, now_ms + ADOPT_TTL_MS));
    }

    /// The host's original key for a connection `key` is starting, taken.
    fn adopted(&self, key: &Key, now: u64) -> Option<Key> {
        let mut a = self.adoptions.lock().unwrap_or_else(PoisonError::into_inner);
        if a.is_empty() {
            return None;
        }
        a.remove(key).filter(|(_, t)| *t > now).map(|(k, _)| k)
    }

    /// What the tracker would make of a packet now, the table left as it
    /// is (`sdnfwd ctl trace` on a running node): the packet runs through a
    /// scratch tracker with this one's settings, holding copies of the
    /// connections it can meet (its tuple either way, the one `md`
    /// remembers, the one its `ct_nw_*` name). With `next_segment`, a TCP
    /// packet is first made the segment a connection would see next (a
    /// traced flow has no sequence numbers or flags): of a known connection,
    /// an ACK with its next sequence and acknowledgement numbers; of none,
    /// a SYN. `frame` is
    /// rewritten as NAT would rewrite it and `md` updated as by
    /// [`Conntrack::execute_with`]. Returns the dump lines (`-s`) of the
    /// connections the scratch tracker holds afterwards.
    pub fn trial(
        &self,
        frame: &mut [u8],
        md: &mut CtResult,
        req: &CtRequest,
        now_ms: u64,
        next_segment: bool,
    ) -> Vec<String> {
        let scratch = Conntrack {
            table: Table::new(16, 1, self.seed),
            tm_ms: self.tm_ms,
            max_conns: 16,
            seq_check: self.seq_check,
            // A traced packet is composed whole; its numbers may be filled in.
            validate: false,
            seed: self.seed,
            n_conns: AtomicUsize::new(0),
            counters: Counters::default(),
            sweep_at: Mutex::new(0),
            // A traced fragment is one packet: it is not held.
            ipf: Ipf::new(IpfConfig { enabled: false, ..IpfConfig::default() }),
            adoptions: Mutex::default(),
        };
        // A trace does not wait for the host's translation.
        md.host_checked = true;
        let g = pin();
        let mut p = Parsed::default();
        if parse(frame, req.zone, false, &mut p).is_ok() {
            let mut keys = vec![p.key, p.key.reverse()];
            keys.extend(md.cached.map(|c| c.key));
            if let Some(o) = md.orig.filter(|o| o.proto != 0) {
                let mut k = Key {
                    src: o.src,
                    dst: o.dst,
                    sport: o.sport,
                    dport: o.dport,
                    zone: md.zone,
                    proto: o.proto,
                    icmp_type: 0,
                };
                if p.key.proto == IPPROTO_ICMP {
                    k.sport = p.key.sport;
                    k.dport = p.key.dport;
                    k.icmp_type = o.sport as u8;
                }
                keys.push(k);
            }
            let mut seen: Vec<&Conn> = Vec::new();
            let mut found = false;
            for (i, k) in keys.iter().enumerate() {
                let Some((c, reply)) = self.table.lookup(k, now_ms, &g) else { continue };
                if seen.iter().any(|s| std::ptr::eq(*s, c)) {
                    continue;
                }
                seen.push(c);
                let st = *c.lock();
                if let (0, true, Some(t)) = (i, next_segment && !p.related, st.proto.tcp()) {
                    let (from, to) = (t.peers[reply as usize], t.peers[!reply as usize]);
                    frame[p.l4 + 4..p.l4 + 8].copy_from_slice(&from.seqlo.to_be_bytes());
                    frame[p.l4 + 8..p.l4 + 12].copy_from_slice(&to.seqlo.to_be_bytes());
                    frame[p.l4 + 13] = 0x10;
                    found = true;
                }
                let copy = Conn::new(c.keys, c.nat, st.proto, c.expiration.load(Ordering::Relaxed));
                {
                    let mut cs = copy.lock();
                    cs.mark = st.mark;
                    cs.label = st.label;
                }
                let sg = pin();
                if scratch.table.insert(copy, now_ms, &sg).is_ok() {
                    scratch.n_conns.fetch_add(1, Ordering::Relaxed);
                }
            }
            // A TCP packet of no connection: the segment that starts one.
            if next_segment && !found && !p.related && p.key.proto == 6 {
                frame[p.l4 + 13] = 0x02;
            }
        }
        if scratch.execute_with(&scratch.pin(), frame, md, req, now_ms) == Track::Fragment {
            // As a datapath without reassembly marks it.
            scratch.invalid(md, req);
        }
        scratch.dump_with(None, now_ms, true)
    }

    /// `ovs-appctl dpctl/ct-stats-show [zone=N] [verbose]`: connections
    /// live at `now_ms` by protocol (and TCP's by state, `verbose`).
    pub fn stats_show(&self, zone: Option<u16>, now_ms: u64, verbose: bool) -> String {
        let mut n = dump::ProtoCounts::default();
        self.each(zone, Some(now_ms), |c, _| n.add(c));
        n.show(verbose)
    }

    /// Removes every connection (of `zone` if given), as `dpctl/flush-conntrack`.
    pub fn flush(&self, zone: Option<u16>) {
        self.each(zone, None, |c, g| {
            self.end(c, 0);
            if self.table.remove(c, g) {
                self.n_conns.fetch_sub(1, Ordering::Relaxed);
                bump(&self.counters.flushed);
            }
        });
    }

    /// The counters.
    pub fn stats(&self) -> CtStats {
        let c = &self.counters;
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CtStats {
            n_conns: self.n_conns.load(Ordering::Relaxed),
            n_created: r(&c.created),
            n_expired: r(&c.expired),
            n_flushed: r(&c.flushed),
            n_full: r(&c.full),
            n_invalid: r(&c.invalid),
            n_fragments: r(&c.fragments),
            n_nat_exhausted: r(&c.nat_exhausted),
            adopted: r(&c.adopted),
        }
    }

    /// Buckets in the table (memory: 8 bytes each).
    pub fn n_buckets(&self) -> usize {
        self.table.n_buckets()
    }

    /// Checks what must hold whenever no other thread is in the tracker
    /// (for the fuzzer and tests; walks the whole table): the connections
    /// in the table are `n_conns`, within the limit; every one created is
    /// in the table, expired or flushed; every live one is found by both
    /// its keys (the reply one as the reply direction, unless both keys are
    /// the same); the reassembler's fragments add up (see
    /// [`Ipf::audit`]).
    ///
    /// # Errors
    /// What does not hold.
    pub fn audit(&self, now_ms: u64) -> Result<(), String> {
        let st = self.stats();
        if st.n_conns > self.max_conns {
            return Err(format!("{} connections over the limit of {}", st.n_conns, self.max_conns));
        }
        if st.n_created != st.n_conns as u64 + st.n_expired + st.n_flushed {
            return Err(format!("created {} != in table + expired + flushed: {st:?}", st.n_created));
        }
        let mut n = 0;
        let mut err = None;
        self.each(None, None, |c, g| {
            n += 1;
            if c.expired(now_ms) || err.is_some() {
                return;
            }
            for (i, k) in c.keys.iter().enumerate() {
                match self.table.lookup(k, now_ms, g) {
                    Some((f, r)) if std::ptr::eq(f, c) && (r == (i == 1) || c.keys[0] == c.keys[1]) => {}
                    found => {
                        let what = found.map(|(f, r)| (f.keys, r));
                        err = Some(format!("key {i} of {:?} finds {what:?}", c.keys));
                    }
                }
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        if n != st.n_conns {
            return Err(format!("{n} connections in the table, n_conns {}", st.n_conns));
        }
        self.ipf.audit()
    }
}
