//! The poll-mode loop: one per core, pinned, polling its port queues in
//! bursts of up to [`BURST`] frames: extract the key, probe the EMC, then the
//! megaflow classifier, run the datapath actions (outputs batched per port),
//! and hand misses to the slow path without ever blocking.
//!
//! Misses: the key goes to the slow path over a bounded channel (full →
//! counted as lost); the frame waits in a small per-core pending queue until
//! the slow path answers with the megaflow (misses of one flow are coalesced
//! into one upcall), then runs its actions: the re-injection. Per packet the
//! loop does no allocation, lock, syscall, clock read or logging (the clock
//! is read once per busy iteration, never when idle); events are counted in
//! [`PmdStats`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use hashbrown::HashMap;

use crate::actions::{DpAction, SetField};
use crate::dpcls::{FlowTable, Megaflow};
use crate::emc::Emc;
use crate::flow::{FlowKey, LocalVtep, N_MALFORMED};
use crate::pool::{FrameId, FramePool};
use crate::port::Port;
use crate::wire;

/// Most frames per receive burst.
pub const BURST: usize = 32;
/// Port id of the uplink NIC in a poll loop (OpenFlow never uses port 0).
pub const UPLINK: u32 = 0;
/// Frames a loop keeps waiting for the slow path.
pub const PENDING_MAX: usize = 256;
/// Iterations a pending frame may wait before it is dropped as lost.
const PENDING_TIMEOUT: u64 = 1 << 20;
/// Frames a loop holds for remote VTEPs whose next-hop MAC is not known yet.
pub const HOLD_MAX: usize = 64;
/// Of those, at most this many per VTEP.
pub const HOLD_PER_VTEP: usize = 8;
/// Iterations a held frame may wait for its neighbour.
const HOLD_TIMEOUT: u64 = 1 << 22;

/// Entries of the per-loop VXLAN template cache (a power of two).
const TCACHE: usize = 64;

/// A change to a running loop's ports, sent by the control thread (a port
/// that comes up or goes down). Checked every 1,024 iterations.
pub enum PmdCommand {
    /// Adds (or replaces) a port; `rx`: this loop polls it.
    AddPort {
        /// OpenFlow port ([`UPLINK`] for the uplink).
        ofport: u32,
        /// The port.
        port: Box<dyn Port>,
        /// Whether this loop receives from it.
        rx: bool,
    },
    /// Removes a port (its pending output is sent first).
    RemovePort(u32),
    /// Sends back this loop's port counters: (OpenFlow port, name,
    /// counters, port-specific counters).
    DumpPorts(Sender<Vec<(u32, String, crate::port::PortCounters, String)>>),
}

/// A VXLAN frame waiting for the next-hop MAC of its VTEP.
#[derive(Clone, Copy, Debug)]
struct Held {
    frame: FrameId,
    dst: u32,
    vni: u32,
    sport: u16,
    since: u64,
}

/// A miss sent to the slow path.
#[derive(Clone, Copy, Debug)]
pub struct Upcall {
    /// The key.
    pub key: FlowKey,
    /// Poll loop that sent it (its reply channel).
    pub pmd: usize,
    /// Frame length (stats).
    pub len: u16,
}

/// The slow path's answer: the megaflow to use for this key.
#[derive(Clone, Debug)]
pub struct UpcallReply {
    /// The key that missed.
    pub key: FlowKey,
    /// Its megaflow (installed, or only for these frames when the flow
    /// limit is reached).
    pub flow: Arc<Megaflow>,
}

/// Underlay state for VXLAN push, published by the slow path.
#[derive(Clone, Debug, Default)]
pub struct TunnelState {
    /// Local VTEP (node IP, UDP port, vxlan0's OpenFlow port).
    pub vtep: Option<LocalVtep>,
    /// The uplink's MAC address.
    pub local_mac: u64,
    /// Next-hop MAC per remote VTEP.
    pub neighbours: HashMap<u32, u64>,
}

/// What the slow path publishes to every poll loop.
#[derive(Debug, Default)]
pub struct Shared {
    /// Megaflows.
    pub flows: Arc<ArcSwap<FlowTable>>,
    /// Tunnel and neighbour state.
    pub tunnel: Arc<ArcSwap<TunnelState>>,
}

/// A loop's view of what the slow path publishes: the current value kept
/// between bursts and checked with one atomic load per use (arc-swap's
/// `Cache`), so that a burst takes no reference count and no debt slot.
/// The loop refreshes both at the start of every iteration, so a table it
/// held is let go within one iteration of the slow path's next publish.
type Cached<T> = arc_swap::Cache<Arc<ArcSwap<T>>, Arc<T>>;

/// Why the datapath dropped a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DropReason {
    /// The megaflow has no output (the OpenFlow tables dropped it).
    Pipeline = 0,
    /// Upcall channel or pending queue full.
    UpcallLost,
    /// Waited too long for the slow path.
    UpcallTimeout,
    /// No next-hop MAC for the remote VTEP.
    NoNeighbour,
    /// Output to a port this loop does not have.
    NoPort,
    /// Frame pool exhausted while copying for several outputs.
    NoBuffer,
    /// Uplink frame not for the overlay.
    NotForUs,
}

/// Number of [`DropReason`]s.
pub const N_DROP: usize = 7;

/// Megaflow ids are below this (the slow path allocates them); per-loop
/// megaflow statistics are arrays indexed by id.
pub const MAX_FLOW_IDS: usize = 1 << 18;

/// A copy of a loop's scalar counters (see [`PmdStats::baseline`]).
#[derive(Clone, Debug, Default)]
pub struct PmdBaseline {
    v: [u64; 9],
    drops: [u64; N_DROP],
    malformed: [u64; N_MALFORMED],
}

/// Per-loop counters: written by the loop only (relaxed load and store, no
/// locked instruction), read by anyone.
#[derive(Debug)]
pub struct PmdStats {
    /// Per megaflow id: packets at `2 * id`, bytes at `2 * id + 1`.
    pub flows: Box<[AtomicU64]>,
    /// Frames received.
    pub packets: AtomicU64,
    /// EMC hits.
    pub emc_hits: AtomicU64,
    /// Megaflow (dpcls) hits.
    pub megaflow_hits: AtomicU64,
    /// Misses (frames that found no megaflow).
    pub misses: AtomicU64,
    /// Upcalls sent (after coalescing).
    pub upcalls: AtomicU64,
    /// Frames lost for a full upcall queue.
    pub lost: AtomicU64,
    /// Busy iterations.
    pub busy_iterations: AtomicU64,
    /// Idle iterations.
    pub idle_iterations: AtomicU64,
    /// Nanoseconds spent in busy iterations.
    pub busy_ns: AtomicU64,
    /// Drops by [`DropReason`].
    pub drops: [AtomicU64; N_DROP],
    /// Malformed frames by [`Malformed`] reason.
    pub malformed: [AtomicU64; N_MALFORMED],
    /// Times the EMC switched itself off.
    pub emc_auto_disabled: AtomicU64,
    /// Whether the EMC is currently enabled (1/0).
    pub emc_enabled: AtomicU64,
}

impl Default for PmdStats {
    fn default() -> Self {
        PmdStats {
            flows: (0..2 * MAX_FLOW_IDS).map(|_| AtomicU64::new(0)).collect(),
            packets: AtomicU64::new(0),
            emc_hits: AtomicU64::new(0),
            megaflow_hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            upcalls: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            busy_iterations: AtomicU64::new(0),
            idle_iterations: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            drops: Default::default(),
            malformed: Default::default(),
            emc_auto_disabled: AtomicU64::new(0),
            emc_enabled: AtomicU64::new(0),
        }
    }
}

impl PmdStats {
    /// (packets, bytes) this loop forwarded with megaflow `id`.
    pub fn flow(&self, id: u32) -> (u64, u64) {
        let i = 2 * id as usize;
        match (self.flows.get(i), self.flows.get(i + 1)) {
            (Some(p), Some(b)) => (p.load(Ordering::Relaxed), b.load(Ordering::Relaxed)),
            _ => (0, 0),
        }
    }

    #[inline]
    fn add(c: &AtomicU64, n: u64) {
        c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}

struct Slot {
    ofport: u32,
    port: Box<dyn Port>,
    rx: bool,
    batch: [FrameId; 2 * BURST],
    n: usize,
}

/// One poll loop and everything it owns.
pub struct Pmd {
    /// Index (reply channel, stats).
    pub id: usize,
    pool: FramePool,
    slots: Vec<Slot>,
    /// OpenFlow port -> slot (u16::MAX: none).
    slot_of: Vec<u16>,
    flows: Cached<FlowTable>,
    tunnel: Cached<TunnelState>,
    emc: Emc,
    upcall_tx: Sender<Upcall>,
    reply_rx: Receiver<UpcallReply>,
    pending: Vec<(FrameId, FlowKey, u32, u64)>,
    /// Per-burst scratch: keys and hashes (reused, never cleared).
    keys: Box<[FlowKey; BURST]>,
    hashes: [u32; BURST],
    held: Vec<Held>,
    /// The tunnel state the held frames last tried (kept alive so that its
    /// address cannot be reused by a newer state).
    held_tunnel: Option<Arc<TunnelState>>,
    /// VXLAN header templates by (VTEP, VNI), valid for one tunnel state.
    tcache: Box<[Option<(u32, u32, wire::VxlanTemplate)>; TCACHE]>,
    tcache_tunnel: Option<Arc<TunnelState>>,
    iteration: u64,
    control: Option<Receiver<PmdCommand>>,
    /// The clock (the TSC where it is invariant, through quanta: a few ns
    /// a read where a vDSO clock_gettime costs tens in a VM).
    clock: quanta::Clock,
    /// Clock (raw) at the start of the last iteration, and whether it was
    /// busy.
    last_clock: u64,
    last_busy: bool,
    /// Counters.
    pub stats: Arc<PmdStats>,
}

/// Run-time counters of one burst, flushed to [`PmdStats`] once.
#[derive(Default)]
struct Burst {
    emc_hits: u64,
    megaflow_hits: u64,
    misses: u64,
    upcalls: u64,
    lost: u64,
    drops: [u64; N_DROP],
    malformed: [u64; N_MALFORMED],
}

impl Pmd {
    /// A loop with its own frame pool of `n_frames`.
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        upcall_tx: Sender<Upcall>,
        reply_rx: Receiver<UpcallReply>,
        n_frames: usize,
        emc_insert_inv_prob: u32,
    ) -> Pmd {
        Pmd {
            id,
            pool: FramePool::new(n_frames),
            slots: Vec::new(),
            slot_of: Vec::new(),
            flows: arc_swap::Cache::new(shared.flows.clone()),
            tunnel: arc_swap::Cache::new(shared.tunnel.clone()),
            emc: Emc::new(emc_insert_inv_prob),
            upcall_tx,
            reply_rx,
            pending: Vec::with_capacity(PENDING_MAX),
            keys: Box::new([FlowKey::default(); BURST]),
            hashes: [0; BURST],
            held: Vec::with_capacity(HOLD_MAX),
            held_tunnel: None,
            tcache: Box::new([None; TCACHE]),
            tcache_tunnel: None,
            iteration: 0,
            clock: quanta::Clock::new(),
            last_clock: 0,
            last_busy: false,
            control: None,
            stats: Arc::new(PmdStats::default()),
        }
    }

    /// Adds a port instance: `rx` ports are polled; every port can be sent
    /// to. `ofport` is its OpenFlow port ([`UPLINK`] for the uplink NIC).
    pub fn add_port(&mut self, ofport: u32, port: Box<dyn Port>, rx: bool) {
        self.remove_port(ofport);
        let i = ofport as usize;
        if i >= self.slot_of.len() {
            self.slot_of.resize(i + 1, u16::MAX);
        }
        self.slot_of[i] = self.slots.len() as u16;
        self.slots.push(Slot { ofport, port, rx, batch: [0; 2 * BURST], n: 0 });
    }

    /// Adds another receive queue of port `ofport` (sending to the port
    /// keeps going through the instance [`Pmd::add_port`] gave).
    pub fn add_rx_queue(&mut self, ofport: u32, port: Box<dyn Port>) {
        self.slots.push(Slot { ofport, port, rx: true, batch: [0; 2 * BURST], n: 0 });
    }

    /// Removes a port after sending what waits for it; returns it.
    pub fn remove_port(&mut self, ofport: u32) -> Option<Box<dyn Port>> {
        let si = *self.slot_of.get(ofport as usize)?;
        if si == u16::MAX {
            return None;
        }
        let mut s = self.slots.remove(si as usize);
        if s.n > 0 {
            s.port.tx(&mut self.pool, &s.batch[..s.n]);
        }
        self.slot_of.fill(u16::MAX);
        for (i, s) in self.slots.iter().enumerate() {
            self.slot_of[s.ofport as usize] = i as u16;
        }
        Some(s.port)
    }

    /// Takes port changes from `rx` while running.
    pub fn set_control(&mut self, rx: Receiver<PmdCommand>) {
        self.control = Some(rx);
    }

    #[cold]
    fn control(&mut self) {
        let Some(rx) = self.control.clone() else { return };
        while let Ok(c) = rx.try_recv() {
            match c {
                PmdCommand::AddPort { ofport, port, rx } => self.add_port(ofport, port, rx),
                PmdCommand::RemovePort(p) => {
                    self.remove_port(p);
                }
                PmdCommand::DumpPorts(reply) => {
                    let v = self
                        .slots
                        .iter()
                        .map(|s| (s.ofport, s.port.name().to_string(), s.port.counters(), s.port.detail()))
                        .collect();
                    let _ = reply.send(v);
                }
            }
        }
    }

    /// The frame pool (tests check that nothing leaks).
    pub fn pool(&self) -> &FramePool {
        &self.pool
    }

    /// Frames waiting for the slow path.
    pub fn n_pending(&self) -> usize {
        self.pending.len()
    }

    /// The EMC.
    pub fn emc_mut(&mut self) -> &mut Emc {
        &mut self.emc
    }

    /// Port counters by OpenFlow port.
    pub fn port_counters(&self) -> Vec<(u32, String, crate::port::PortCounters)> {
        self.slots.iter().map(|s| (s.ofport, s.port.name().to_string(), s.port.counters())).collect()
    }

    /// Nanoseconds this loop's ports spent in system calls.
    pub fn syscall_ns(&self) -> u64 {
        self.slots.iter().map(|s| s.port.syscall_ns()).sum()
    }

    /// Port-specific counters by OpenFlow port (see [`Port::detail`]).
    pub fn port_details(&self) -> Vec<(u32, String)> {
        self.slots.iter().map(|s| (s.ofport, s.port.detail())).collect()
    }

    /// Runs until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            self.iterate();
        }
        self.drain();
    }

    /// Runs until `stop` is set; after 64 idle iterations in a row the loop
    /// sleeps, doubling from 1 µs up to `max_sleep` while idle (OVS's
    /// pmd-maxsleep). A zero `max_sleep` polls without pause.
    pub fn run_idle(&mut self, stop: &AtomicBool, max_sleep: std::time::Duration) {
        let mut idle = 0u32;
        let mut sleep = std::time::Duration::from_micros(1);
        while !stop.load(Ordering::Relaxed) {
            if self.iterate() > 0 || self.n_pending() > 0 {
                idle = 0;
                sleep = std::time::Duration::from_micros(1);
                continue;
            }
            idle += 1;
            if !max_sleep.is_zero() && idle >= 64 {
                std::thread::sleep(sleep);
                sleep = (sleep * 2).min(max_sleep);
            }
        }
        self.drain();
    }

    /// Frees frames still waiting (shutdown).
    pub fn drain(&mut self) {
        for (f, ..) in self.pending.drain(..) {
            self.pool.free(f);
        }
        for h in self.held.drain(..) {
            self.pool.free(h.frame);
        }
        for s in &mut self.slots {
            if s.n > 0 {
                s.port.tx(&mut self.pool, &s.batch[..s.n]);
                s.n = 0;
            }
        }
    }

    /// One iteration: slow-path replies, then a burst from every rx port.
    /// Returns the number of frames received.
    pub fn iterate(&mut self) -> usize {
        self.iteration += 1;
        // Busy time: a busy iteration starts at the previous one's end (the
        // clock read here) or, after idle ones, at its first frames; idle
        // iterations read no clock at all.
        let mut start = None;
        if self.last_busy {
            let now = self.clock.raw();
            PmdStats::add(&self.stats.busy_ns, self.clock.delta_as_nanos(self.last_clock, now));
            start = Some(now);
        }
        // Let go of what the slow path replaced since the last iteration
        // (the VXLAN templates follow the tunnel state where it is used).
        self.flows.load();
        self.tunnel.load();
        let mut b = Burst::default();
        // Replies matter to waiting frames only; with none waiting, the
        // channel is still drained now and then (replies whose frames timed
        // out must not fill it).
        let mut got = if self.pending.is_empty() && self.iteration & 0x3ff != 0 { 0 } else { self.replies(&mut b) };
        let mut ids = [0 as FrameId; BURST];
        for si in 0..self.slots.len() {
            if !self.slots[si].rx {
                continue;
            }
            let in_port = self.slots[si].ofport;
            let n = {
                let s = &mut self.slots[si];
                s.port.rx(&mut self.pool, &mut ids)
            };
            if n > 0 {
                start.get_or_insert_with(|| self.clock.raw());
                self.burst(in_port, &ids[..n], &mut b);
                got += n;
            }
        }
        if !self.held.is_empty() {
            self.retry_held(&mut b);
        }
        if self.iteration & 0xf_ffff == 0 {
            self.emc.sweep();
        }
        if self.iteration & 0x3ff == 0 && self.control.is_some() {
            self.control();
        }
        self.flush();
        self.expire(&mut b);
        let st = &self.stats;
        if got > 0 {
            PmdStats::add(&st.packets, got as u64);
            PmdStats::add(&st.busy_iterations, 1);
        } else {
            PmdStats::add(&st.idle_iterations, 1);
        }
        PmdStats::add(&st.emc_hits, b.emc_hits);
        PmdStats::add(&st.megaflow_hits, b.megaflow_hits);
        PmdStats::add(&st.misses, b.misses);
        PmdStats::add(&st.upcalls, b.upcalls);
        PmdStats::add(&st.lost, b.lost);
        if b.drops != [0; N_DROP] {
            for i in 0..N_DROP {
                PmdStats::add(&st.drops[i], b.drops[i]);
            }
        }
        if b.malformed != [0; N_MALFORMED] {
            for i in 0..N_MALFORMED {
                PmdStats::add(&st.malformed[i], b.malformed[i]);
            }
        }
        st.emc_enabled.store(self.emc.enabled() as u64, Ordering::Relaxed);
        st.emc_auto_disabled.store(self.emc.n_auto_disabled, Ordering::Relaxed);
        self.last_busy = got > 0;
        if let (true, Some(t)) = (self.last_busy, start) {
            self.last_clock = t;
        }
        got
    }

    fn flush(&mut self) {
        for s in &mut self.slots {
            if s.n > 0 {
                s.port.tx(&mut self.pool, &s.batch[..s.n]);
                s.n = 0;
            }
        }
    }

    /// The current tunnel state, with the VXLAN template cache following it
    /// (off the burst path, which uses its own per-burst load).
    fn synced_tunnel(&mut self) -> Arc<TunnelState> {
        let t = self.tunnel.load().clone();
        tcache_sync(&mut self.tcache, &mut self.tcache_tunnel, &t);
        t
    }

    #[cold]
    fn replies(&mut self, b: &mut Burst) -> usize {
        let mut n = 0;
        // The tunnel state once for all the replies waiting.
        let mut tunnel = None;
        while let Ok(r) = self.reply_rx.try_recv() {
            let tunnel = tunnel.get_or_insert_with(|| self.synced_tunnel());
            let mut i = 0;
            while i < self.pending.len() {
                let (f, key, hash, _) = self.pending[i];
                if r.flow.matches(&key) {
                    self.pending.swap_remove(i);
                    self.emc.maybe_insert(&key, hash, &r.flow);
                    let mut x = Exec {
                        pool: &mut self.pool,
                        slots: &mut self.slots,
                        slot_of: &self.slot_of,
                        flows: &self.stats.flows,
                        held: &mut self.held,
                        iteration: self.iteration,
                        tcache: &mut self.tcache,
                    };
                    x.execute(tunnel, &r.flow, f, hash, b);
                    n += 1;
                } else {
                    i += 1;
                }
            }
        }
        if n > 0 {
            self.flush();
        }
        n
    }

    /// Sends held VXLAN frames whose neighbour got resolved (checked when
    /// the tunnel state changes); drops those that waited too long.
    #[cold]
    fn retry_held(&mut self, b: &mut Burst) {
        let tunnel = self.synced_tunnel();
        let changed = !self.held_tunnel.as_ref().is_some_and(|t| Arc::ptr_eq(t, &tunnel));
        self.held_tunnel = Some(tunnel.clone());
        let now = self.iteration;
        let mut i = 0;
        while i < self.held.len() {
            let h = self.held[i];
            if changed && tunnel.neighbours.contains_key(&h.dst) {
                self.held.swap_remove(i);
                // The neighbour is known, so nothing is held again.
                let mut none = Vec::new();
                let mut x = Exec {
                    pool: &mut self.pool,
                    slots: &mut self.slots,
                    slot_of: &self.slot_of,
                    flows: &self.stats.flows,
                    held: &mut none,
                    iteration: now,
                    tcache: &mut self.tcache,
                };
                if x.push_vxlan(&tunnel, h.frame, h.dst, h.vni, h.sport, b) {
                    x.emit(UPLINK, h.frame, b);
                }
            } else if now - h.since > HOLD_TIMEOUT {
                self.held.swap_remove(i);
                self.pool.free(h.frame);
                b.drops[DropReason::NoNeighbour as usize] += 1;
            } else {
                i += 1;
            }
        }
    }

    /// Frames held for unresolved neighbours.
    pub fn n_held(&self) -> usize {
        self.held.len()
    }

    fn expire(&mut self, b: &mut Burst) {
        let now = self.iteration;
        let mut i = 0;
        while i < self.pending.len() {
            if now - self.pending[i].3 > PENDING_TIMEOUT {
                let (f, ..) = self.pending.swap_remove(i);
                self.pool.free(f);
                b.drops[DropReason::UpcallTimeout as usize] += 1;
            } else {
                i += 1;
            }
        }
    }

    /// One burst, stage by stage over the whole batch (as OVS's
    /// dfc_processing / fast_path_processing): extract every key, probe the
    /// EMC for all, the classifier for the rest, then run the actions in
    /// arrival order and upcall the misses; EMC insertions last.
    fn burst(&mut self, in_port: u32, frames: &[FrameId], b: &mut Burst) {
        let Pmd {
            pool,
            slots,
            slot_of,
            emc,
            pending,
            upcall_tx,
            id,
            iteration,
            stats,
            held,
            tcache,
            tcache_tunnel,
            keys,
            hashes,
            flows,
            tunnel,
            ..
        } = self;
        let table: &FlowTable = flows.load();
        let tunnel: &Arc<TunnelState> = tunnel.load();
        tcache_sync(tcache, tcache_tunnel, tunnel);
        let n = frames.len().min(BURST);
        // Stage 1: keys (frames not for the datapath are dropped here); a
        // loop per kind of port.
        let mut live = 0u32;
        if in_port != UPLINK {
            for i in 0..n {
                let (bad, h) = keys[i].extract_hashed(pool.data(frames[i]), in_port);
                if let Some(m) = bad {
                    b.malformed[m as usize] += 1;
                }
                hashes[i] = h;
            }
            live = if n == BURST { u32::MAX } else { (1 << n) - 1 };
        } else if let Some(vtep) = tunnel.vtep {
            for i in 0..n {
                let (f, key) = (frames[i], &mut keys[i]);
                match key.extract_uplink(pool.data(f), &vtep) {
                    Ok((inner, bad)) => {
                        if let Some(m) = bad {
                            b.malformed[m as usize] += 1;
                        }
                        pool.pull_front(f, inner);
                        hashes[i] = key.hash();
                        live |= 1 << i;
                    }
                    Err(m) => {
                        b.malformed[m as usize] += 1;
                        b.drops[DropReason::NotForUs as usize] += 1;
                        pool.free(f);
                    }
                }
            }
        } else {
            for &f in &frames[..n] {
                pool.free(f);
            }
            b.drops[DropReason::NotForUs as usize] += n as u64;
        }
        let keys: &[FlowKey; BURST] = keys;
        let cls = table.port(if in_port == UPLINK { tunnel.vtep.map_or(1, |v| v.port) } else { in_port });
        // Stage 2: EMC.
        let mut hit: [Option<&Arc<Megaflow>>; BURST] = [None; BURST];
        let mut todo = live;
        if emc.enabled() {
            let mut m = live;
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                if let Some(x) = emc.peek(&keys[i], hashes[i]) {
                    hit[i] = Some(x);
                    todo &= !(1 << i);
                }
            }
        }
        let emc_hits = (live & !todo).count_ones() as u64;
        let after_emc = todo;
        // Stage 3: megaflow classifier for the rest (its hits kept apart as
        // well: EMC insertion candidates, while `hit` borrows the EMC).
        let mut from_cls: [Option<&Arc<Megaflow>>; BURST] = [None; BURST];
        let mut rank_hits = [0u64; 8];
        if todo != 0 {
            todo = cls.lookup_burst(&keys[..], todo, &mut from_cls, &mut rank_hits);
            let mut m = after_emc & !todo;
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                hit[i] = from_cls[i];
            }
        }
        b.emc_hits += emc_hits;
        b.megaflow_hits += (live & !todo).count_ones() as u64 - emc_hits;
        // Stage 4: actions in arrival order; misses to the slow path.
        // Consecutive frames of one megaflow run as a group (OVS's per-flow
        // packet batches): statistics once, plain outputs appended at once.
        let mut x = Exec { pool, slots, slot_of, flows: &stats.flows, held, iteration: *iteration, tcache };
        // A run is a range of consecutive frames (a dropped frame ends it),
        // so its frames and hashes are passed as slices, uncopied.
        let mut m = live;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            let Some(mf) = hit[i] else {
                miss(x.pool, pending, upcall_tx, *id, *iteration, frames[i], keys[i], hashes[i], b);
                continue;
            };
            let mut end = i + 1;
            // (A u64 test: `end` reaches 32, where no frame is.)
            while (m as u64) & (1 << end) != 0 && hit[end].is_some_and(|o| Arc::ptr_eq(o, mf)) {
                m &= !(1 << end);
                end += 1;
            }
            x.execute_run(tunnel, mf, &frames[i..end], &hashes[i..end], b);
        }
        // Stage 5: EMC bookkeeping; the classifier's hits may be inserted.
        emc.count_hits(emc_hits);
        let mut m = if emc.enabled() { after_emc & !todo } else { 0 };
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            if let Some(mf) = from_cls[i] {
                emc.maybe_insert(&keys[i], hashes[i], mf);
            }
        }
        emc.account(n as u64);
        for (r, &c) in rank_hits.iter().enumerate() {
            if c > 0 {
                cls.credit(r, c);
            }
        }
    }
}

/// The template cache slot of a (VTEP, VNI).
#[inline]
fn tcache_slot(dst: u32, vni: u32) -> usize {
    ((dst ^ vni.rotate_left(11)).wrapping_mul(0x9e37_79b1) >> 26) as usize & (TCACHE - 1)
}

/// The cached VXLAN template for (`dst`, `vni`), if there is one.
#[inline]
fn template(
    tcache: &[Option<(u32, u32, wire::VxlanTemplate)>; TCACHE],
    dst: u32,
    vni: u32,
) -> Option<&wire::VxlanTemplate> {
    match &tcache[tcache_slot(dst, vni)] {
        Some((d, v, t)) if *d == dst && *v == vni => Some(t),
        _ => None,
    }
}

/// Empties the VXLAN template cache when the tunnel state changed.
#[inline]
fn tcache_sync(
    tcache: &mut [Option<(u32, u32, wire::VxlanTemplate)>; TCACHE],
    cached_for: &mut Option<Arc<TunnelState>>,
    tunnel: &Arc<TunnelState>,
) {
    if !cached_for.as_ref().is_some_and(|t| Arc::ptr_eq(t, tunnel)) {
        tcache.fill(None);
        *cached_for = Some(tunnel.clone());
    }
}

#[cold]
#[allow(clippy::too_many_arguments)]
fn miss(
    pool: &mut FramePool,
    pending: &mut Vec<(FrameId, FlowKey, u32, u64)>,
    upcall_tx: &Sender<Upcall>,
    pmd: usize,
    iteration: u64,
    f: FrameId,
    key: FlowKey,
    hash: u32,
    b: &mut Burst,
) {
    b.misses += 1;
    if pending.len() >= PENDING_MAX {
        pool.free(f);
        b.lost += 1;
        b.drops[DropReason::UpcallLost as usize] += 1;
        return;
    }
    let coalesced = pending.iter().any(|p| p.2 == hash && p.1 == key);
    if !coalesced {
        match upcall_tx.try_send(Upcall { key, pmd, len: pool.len(f) as u16 }) {
            Ok(()) => b.upcalls += 1,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                pool.free(f);
                b.lost += 1;
                b.drops[DropReason::UpcallLost as usize] += 1;
                return;
            }
        }
    }
    pending.push((f, key, hash, iteration));
}

/// Rewrites a header field of the frame in place (checksums updated).
fn apply_set(pool: &mut FramePool, f: FrameId, s: SetField) {
    let d = pool.data_mut(f);
    let Some((_, _, t, off)) = wire::ethernet(d) else { return };
    match s {
        SetField::EthDst(m) => d[0..6].copy_from_slice(&m.to_be_bytes()[2..]),
        SetField::EthSrc(m) => d[6..12].copy_from_slice(&m.to_be_bytes()[2..]),
        SetField::PktMark(_) => {} // skb metadata: meaningful on tun0 only
        _ if t != wire::ETH_TYPE_IPV4 => {}
        SetField::IpTtl(v) => set_ip_bytes(d, off, 8, &[v]),
        SetField::IpTos(v) => set_ip_bytes(d, off, 1, &[v]),
        SetField::Ipv4Src(a) => set_ip_bytes(d, off, 12, &a.to_be_bytes()),
        SetField::Ipv4Dst(a) => set_ip_bytes(d, off, 16, &a.to_be_bytes()),
        SetField::TpSrc(p) | SetField::TpDst(p) => {
            if let Some(ip) = wire::ipv4(d, off) {
                let at = off + ip.ihl + if matches!(s, SetField::TpSrc(_)) { 0 } else { 2 };
                if !ip.later && matches!(ip.proto, 6 | 17) && d.len() >= at + 2 {
                    d[at..at + 2].copy_from_slice(&p.to_be_bytes());
                    wire::fix_l4_checksum(d, off, &ip);
                }
            }
        }
    }
}

fn set_ip_bytes(d: &mut [u8], off: usize, at: usize, v: &[u8]) {
    let Some(ip) = wire::ipv4(d, off) else { return };
    d[off + at..off + at + v.len()].copy_from_slice(v);
    d[off + 10..off + 12].copy_from_slice(&[0, 0]);
    let c = wire::checksum(&d[off..off + ip.ihl]);
    d[off + 10..off + 12].copy_from_slice(&c.to_be_bytes());
    if at >= 12 {
        wire::fix_l4_checksum(d, off, &ip);
    }
}

/// What executing actions writes to: the loop's pool, ports and counters.
struct Exec<'a> {
    pool: &'a mut FramePool,
    slots: &'a mut [Slot],
    slot_of: &'a [u16],
    flows: &'a [AtomicU64],
    held: &'a mut Vec<Held>,
    iteration: u64,
    tcache: &'a mut [Option<(u32, u32, wire::VxlanTemplate)>; TCACHE],
}

impl Exec<'_> {
    /// Writes the VXLAN header `t` in front of `g`; returns whether `g` is
    /// ready to send (no headroom: freed and counted).
    #[inline]
    fn encap(pool: &mut FramePool, t: &wire::VxlanTemplate, g: FrameId, sport: u16, b: &mut Burst) -> bool {
        let inner = pool.len(g);
        match pool.push_header::<{ wire::VXLAN_ENCAP_LEN }>(g) {
            Some(h) => {
                t.write_header(h, inner, sport);
                true
            }
            None => {
                pool.free(g);
                b.drops[DropReason::NoBuffer as usize] += 1;
                false
            }
        }
    }

    /// Encapsulates `g` towards `dst`; holds it (bounded) when the next hop
    /// is not resolved yet. Returns whether `g` is ready to send.
    #[inline]
    fn push_vxlan(&mut self, tunnel: &TunnelState, g: FrameId, dst: u32, vni: u32, sport: u16, b: &mut Burst) -> bool {
        if let Some(t) = template(self.tcache, dst, vni) {
            return Self::encap(self.pool, t, g, sport, b);
        }
        let Some(vtep) = tunnel.vtep else {
            self.pool.free(g);
            b.drops[DropReason::NoNeighbour as usize] += 1;
            return false;
        };
        let Some(&mac) = tunnel.neighbours.get(&dst) else {
            let per_vtep = self.held.iter().filter(|h| h.dst == dst).count();
            if self.held.len() < HOLD_MAX && per_vtep < HOLD_PER_VTEP {
                self.held.push(Held { frame: g, dst, vni, sport, since: self.iteration });
            } else {
                self.pool.free(g);
                b.drops[DropReason::NoNeighbour as usize] += 1;
            }
            return false;
        };
        let t = wire::VxlanTemplate::new(tunnel.local_mac, mac, vtep.ip, dst, vtep.udp_port, vni);
        self.tcache[tcache_slot(dst, vni)] = Some((dst, vni, t));
        Self::encap(self.pool, &t, g, sport, b)
    }

    #[inline]
    fn emit(&mut self, port: u32, f: FrameId, b: &mut Burst) {
        self.emit_run(port, std::slice::from_ref(&f), b);
    }

    /// Credits `packets` and `bytes` to megaflow `m` (this loop's counters).
    #[inline]
    fn credit(&self, m: &Megaflow, packets: u64, bytes: u64) {
        let i = 2 * m.id as usize;
        if let (Some(p), Some(by)) = (self.flows.get(i), self.flows.get(i + 1)) {
            PmdStats::add(p, packets);
            PmdStats::add(by, bytes);
        }
    }

    /// Runs a megaflow's actions on the frames `run` (consumed, in order;
    /// `hashes`: their keys' hashes): counters once, and a plain output
    /// appends them all to the port's batch with one port lookup.
    #[inline]
    fn execute_run(&mut self, tunnel: &TunnelState, m: &Megaflow, run: &[FrameId], hashes: &[u32], b: &mut Burst) {
        let mut bytes = 0;
        for &f in run {
            bytes += self.pool.len(f) as u64;
        }
        self.credit(m, run.len() as u64, bytes);
        match m.actions[..] {
            [DpAction::Output(port)] => self.emit_run(port, run, b),
            [DpAction::TunnelPush { vni, dst, .. }] => {
                let mut out = [0 as FrameId; BURST];
                let mut k = 0;
                // The template is looked up once for the run; without one
                // (or with an unresolved neighbour) each frame goes through
                // push_vxlan, which builds and caches it.
                let t = template(self.tcache, dst, vni).copied();
                for (&f, &h) in run.iter().zip(hashes) {
                    let sport = wire::vxlan_src_port(h);
                    let ready = match &t {
                        Some(t) => Self::encap(self.pool, t, f, sport, b),
                        None => self.push_vxlan(tunnel, f, dst, vni, sport, b),
                    };
                    if ready {
                        out[k] = f;
                        k += 1;
                    }
                }
                self.emit_run(UPLINK, &out[..k], b);
            }
            _ => {
                for (&f, &h) in run.iter().zip(hashes) {
                    self.actions(tunnel, m, f, h, b);
                }
            }
        }
    }

    /// Appends frames to a port's output batch (one port lookup).
    #[inline]
    fn emit_run(&mut self, port: u32, out: &[FrameId], b: &mut Burst) {
        let si = self.slot_of.get(port as usize).copied().unwrap_or(u16::MAX);
        let Some(s) = self.slots.get_mut(si as usize) else {
            for &f in out {
                self.pool.free(f);
            }
            b.drops[DropReason::NoPort as usize] += out.len() as u64;
            return;
        };
        let mut out = out;
        while !out.is_empty() {
            // As much as the batch has room for, in one copy; a full
            // batch is sent.
            let room = s.batch.len() - s.n;
            let (now, rest) = out.split_at(room.min(out.len()));
            s.batch[s.n..s.n + now.len()].copy_from_slice(now);
            s.n += now.len();
            if s.n == s.batch.len() {
                s.port.tx(self.pool, &s.batch[..s.n]);
                s.n = 0;
            }
            out = rest;
        }
    }

    /// Runs a megaflow's actions on a frame (consumed), counters included.
    /// `hash` is the key's hash (VXLAN source port), computed once per frame.
    #[inline]
    fn execute(&mut self, tunnel: &TunnelState, m: &Megaflow, f: FrameId, hash: u32, b: &mut Burst) {
        self.credit(m, 1, self.pool.len(f) as u64);
        self.actions(tunnel, m, f, hash, b);
    }

    /// Runs a megaflow's actions on a frame (consumed), no counters.
    #[inline]
    fn actions(&mut self, tunnel: &TunnelState, m: &Megaflow, f: FrameId, hash: u32, b: &mut Burst) {
        if m.n_outputs == 0 {
            self.pool.free(f);
            b.drops[DropReason::Pipeline as usize] += 1;
            return;
        }
        let mut left = m.n_outputs;
        for a in &m.actions {
            let (port, tun) = match *a {
                DpAction::Set(s) => {
                    apply_set(self.pool, f, s);
                    continue;
                }
                DpAction::Output(p) => (p, None),
                DpAction::TunnelPush { vni, dst, .. } => (UPLINK, Some((vni, dst))),
            };
            left -= 1;
            let g = if left == 0 {
                f
            } else {
                match self.pool.clone_frame(f) {
                    Some(g) => g,
                    None => {
                        b.drops[DropReason::NoBuffer as usize] += 1;
                        continue;
                    }
                }
            };
            if let Some((vni, dst)) = tun {
                let sport = wire::vxlan_src_port(hash);
                if !self.push_vxlan(tunnel, g, dst, vni, sport, b) {
                    continue;
                }
            }
            self.emit(port, g, b);
        }
    }
}

impl PmdStats {
    /// The scalar counters now (megaflow counters aside): the baseline of
    /// `pmd-stats-clear`. The loop alone writes the counters, so clearing
    /// is done by subtracting a baseline, never by writing zeros.
    pub fn baseline(&self) -> PmdBaseline {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PmdBaseline {
            v: [
                g(&self.packets),
                g(&self.emc_hits),
                g(&self.megaflow_hits),
                g(&self.misses),
                g(&self.upcalls),
                g(&self.lost),
                g(&self.busy_iterations),
                g(&self.idle_iterations),
                g(&self.busy_ns),
            ],
            drops: std::array::from_fn(|i| g(&self.drops[i])),
            malformed: std::array::from_fn(|i| g(&self.malformed[i])),
        }
    }

    /// A report in the spirit of `ovs-appctl dpif-netdev/pmd-stats-show`.
    pub fn show(&self, core: Option<usize>) -> String {
        self.show_since(core, &PmdBaseline::default())
    }

    /// The report counted from a baseline (`pmd-stats-clear`).
    pub fn show_since(&self, core: Option<usize>, base: &PmdBaseline) -> String {
        let now = self.baseline();
        let d = |i: usize| now.v[i] - base.v[i].min(now.v[i]);
        let (packets, emc, mf, upcalls, lost, busy_it, idle_it, busy_ns) =
            (d(0), d(1), d(2), d(4), d(5), d(6), d(7), d(8));
        let drops: [u64; N_DROP] = std::array::from_fn(|i| now.drops[i] - base.drops[i].min(now.drops[i]));
        let malformed: [u64; N_MALFORMED] =
            std::array::from_fn(|i| now.malformed[i] - base.malformed[i].min(now.malformed[i]));
        let pk = packets;
        let pct = |n: u64| if pk == 0 { 0.0 } else { 100.0 * n as f64 / pk as f64 };
        let mut s = String::new();
        match core {
            Some(c) => s.push_str(&format!("pmd thread core_id {c}:\n")),
            None => s.push_str("pmd thread:\n"),
        }
        s.push_str(&format!("  packets received: {pk}\n"));
        s.push_str(&format!(
            "  emc hits: {emc} ({:.1}%){}\n",
            pct(emc),
            if self.emc_enabled.load(Ordering::Relaxed) == 1 { "" } else { " [EMC off: low hit rate]" }
        ));
        s.push_str(&format!("  megaflow hits: {mf} ({:.1}%)\n", pct(mf)));
        s.push_str(&format!("  miss with success upcall: {upcalls}\n"));
        s.push_str(&format!("  miss with failed upcall: {lost}\n"));
        s.push_str(&format!(
            "  processing: {:.1} ns/packet over {busy_it} busy iterations ({idle_it} idle)\n",
            if pk == 0 { 0.0 } else { busy_ns as f64 / pk as f64 },
        ));
        let names = ["pipeline", "upcall-lost", "upcall-timeout", "no-neighbour", "no-port", "no-buffer", "not-for-us"];
        let dr: Vec<String> =
            names.iter().zip(drops).filter(|(_, c)| *c > 0).map(|(n, c)| format!("{n}={c}")).collect();
        if !dr.is_empty() {
            s.push_str(&format!("  drops: {}\n", dr.join(" ")));
        }
        let mal = ["short-ethernet", "bad-ipv4", "bad-arp", "short-l4", "not-vxlan"];
        let m: Vec<String> =
            mal.iter().zip(malformed).filter(|(_, c)| *c > 0).map(|(n, c)| format!("{n}={c}")).collect();
        if !m.is_empty() {
            s.push_str(&format!("  malformed: {}\n", m.join(" ")));
        }
        s
    }
}
