//! The poll-mode loop: one per core, pinned, polling its port queues in
//! bursts of up to [`BURST`] frames: extract the key, probe the EMC, then the
//! megaflow classifier, run the datapath actions (`exec`; outputs batched
//! per port, `batch`), and hand misses to the slow path without ever
//! blocking (`upcall`). Per packet the loop does no allocation, lock,
//! syscall, clock read or logging (the clock is read once per busy
//! iteration, never when idle); events are counted (`stats`). What the
//! slow path publishes (`shared`) is reloaded at the start of every
//! iteration.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::batch::{Ports, BURST, UPLINK};
use crate::conntrack::tracker::Conntrack;
use crate::conntrack::FragOut;
use crate::dpcls::{recirc_bit, FlowTable, Megaflow};
use crate::emc::Emc;
use crate::exec::{Exec, Held, Item, Pass, TemplateCache, HOLD_MAX, HOLD_TIMEOUT};
use crate::flow::FlowKey;
use crate::hostnat::{HostQuery, HostWait};
use crate::pool::{FrameId, FramePool};
use crate::port::api::{Port, PortCounters};
use crate::recirc::{Recirculating, RECIRC_MAX};
use crate::shared::{Cached, Shared, TunnelState};
use crate::stats::{BurstCounters, DatapathDrop, PmdStats};
use crate::upcall::{Pending, Upcall, UpcallReply};

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
    /// Adds another receive queue of a port this loop has (an uplink's
    /// queue N).
    AddRxQueue {
        /// OpenFlow port ([`UPLINK`] for the uplink).
        ofport: u32,
        /// The queue's socket.
        port: Box<dyn Port>,
    },
    /// Removes a port (its pending output is sent first).
    RemovePort(u32),
    /// Sends back this loop's port counters: (OpenFlow port, name,
    /// counters, port-specific counters).
    DumpPorts(Sender<Vec<(u32, String, PortCounters, String)>>),
    /// A frame from the control plane (an OpenFlow PACKET_OUT): through
    /// the pipeline as if received on `in_port`, or, with `out`, sent out
    /// of that port as it is. Dropped when the pool is empty (counted as
    /// `no-buffer`) or the port is missing (`no-port`); a frame longer
    /// than the pool's frames is cut (the node refuses those before).
    Inject {
        /// The frame.
        frame: Vec<u8>,
        /// The port it comes in on.
        in_port: u32,
        /// The port to send it out of, bypassing the pipeline.
        out: Option<u32>,
    },
}

/// One poll loop and everything it owns.
pub struct Pmd {
    /// Index (reply channel, stats).
    pub id: usize,
    pool: FramePool,
    ports: Ports,
    flows: Cached<FlowTable>,
    tunnel: Cached<TunnelState>,
    emc: Emc,
    upcall_tx: Sender<Upcall>,
    reply_rx: Receiver<UpcallReply>,
    pending: Pending,
    /// Per-burst scratch: keys and hashes (reused, never cleared).
    keys: Box<[FlowKey; BURST]>,
    hashes: [u32; BURST],
    held: Vec<Held>,
    /// The tunnel state the held frames last tried (kept alive so that its
    /// address cannot be reused by a newer state).
    held_tunnel: Option<Arc<TunnelState>>,
    /// VXLAN header templates by (VTEP, VNI), valid for one tunnel state.
    tcache: TemplateCache,
    iteration: u64,
    control: Option<Receiver<PmdCommand>>,
    /// The clock (the TSC where it is invariant, through quanta: a few ns
    /// a read where a vDSO clock_gettime costs tens in a VM).
    clock: quanta::Clock,
    /// Clock (raw) at the start of the last iteration, and whether it was
    /// busy.
    last_clock: u64,
    last_busy: bool,
    /// The node's connection tracker (none: `ct` actions drop).
    ct: Option<Arc<Conntrack>>,
    /// Packets queued for their next pass, and the spare queue the
    /// current round is taken into.
    recirc: Vec<Recirculating>,
    recirc_round: Vec<Recirculating>,
    /// Fragments the tracker released, and a batch run action by action
    /// (the fragments with the packet whose `ct` released them; ordered
    /// recirculation): both empty between packets, allocated once, grown
    /// only by fragments.
    frags: Vec<FragOut>,
    batch: Vec<Item>,
    /// Recirculated packets keep their order through misses
    /// ([`Pmd::set_ordered`]).
    ordered: bool,
    /// Packets waiting for the host's translation (`hostnat`).
    host: HostWait,
    /// Counters.
    pub stats: Arc<PmdStats>,
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
            ports: Ports::new(),
            flows: arc_swap::Cache::new(shared.flows.clone()),
            tunnel: arc_swap::Cache::new(shared.tunnel.clone()),
            emc: Emc::new(emc_insert_inv_prob),
            upcall_tx,
            reply_rx,
            pending: Pending::default(),
            keys: Box::new([FlowKey::default(); BURST]),
            hashes: [0; BURST],
            held: Vec::with_capacity(HOLD_MAX),
            held_tunnel: None,
            tcache: TemplateCache::default(),
            iteration: 0,
            clock: quanta::Clock::new(),
            last_clock: 0,
            last_busy: false,
            control: None,
            ct: None,
            recirc: Vec::with_capacity(RECIRC_MAX),
            recirc_round: Vec::with_capacity(RECIRC_MAX),
            frags: Vec::with_capacity(crate::conntrack::ipf::BATCH),
            batch: Vec::with_capacity(crate::conntrack::ipf::BATCH),
            ordered: false,
            host: HostWait::new(id),
            stats: Arc::new(PmdStats::default()),
        }
    }

    /// Adds a port instance: `rx` ports are polled; every port can be sent
    /// to. `ofport` is its OpenFlow port ([`UPLINK`] for the uplink NIC).
    pub fn add_port(&mut self, ofport: u32, port: Box<dyn Port>, rx: bool) {
        self.ports.add(&mut self.pool, ofport, port, rx);
    }

    /// Adds another receive queue of port `ofport` (sending to the port
    /// keeps going through the instance [`Pmd::add_port`] gave).
    pub fn add_rx_queue(&mut self, ofport: u32, port: Box<dyn Port>) {
        self.ports.add_rx_queue(ofport, port);
    }

    /// Removes a port after sending what waits for it; returns it.
    pub fn remove_port(&mut self, ofport: u32) -> Option<Box<dyn Port>> {
        self.ports.remove(&mut self.pool, ofport)
    }

    /// Gives the loop the node's connection tracker (`ct` actions run
    /// through it; without one they drop as no-tracker).
    pub fn set_conntrack(&mut self, ct: Arc<Conntrack>) {
        self.ct = Some(ct);
    }

    /// Lets `ct`s of packets from the host wait for the host's translation:
    /// questions go to `tx`, and the node stores in `answered` the number
    /// of the last one of this loop it answered (see `hostnat`).
    pub fn set_host_nat(&mut self, tx: Sender<HostQuery>, answered: Arc<AtomicU64>) {
        self.host.connect(tx, answered);
    }

    /// Takes port changes from `rx` while running.
    pub fn set_control(&mut self, rx: Receiver<PmdCommand>) {
        self.control = Some(rx);
    }

    #[cold]
    fn control(&mut self, b: &mut BurstCounters) {
        let Some(rx) = self.control.clone() else { return };
        while let Ok(c) = rx.try_recv() {
            match c {
                PmdCommand::Inject { frame, in_port, out } => {
                    let Some(id) = self.pool.alloc() else {
                        b.drop(DatapathDrop::NoBuffer, 1);
                        continue;
                    };
                    self.pool.fill(id, &frame);
                    match out {
                        Some(p) => {
                            let lost = self.ports.emit_run(&mut self.pool, p, &[id]);
                            b.drop(DatapathDrop::NoPort, lost as u64);
                        }
                        None => self.burst(in_port, &[id], b),
                    }
                }
                PmdCommand::AddPort { ofport, port, rx } => self.add_port(ofport, port, rx),
                PmdCommand::AddRxQueue { ofport, port } => self.add_rx_queue(ofport, port),
                PmdCommand::RemovePort(p) => {
                    self.remove_port(p);
                }
                PmdCommand::DumpPorts(reply) => {
                    let v =
                        self.ports.iter().map(|(o, p)| (o, p.name().to_string(), p.counters(), p.detail())).collect();
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
    pub fn port_counters(&self) -> Vec<(u32, String, PortCounters)> {
        self.ports.iter().map(|(o, p)| (o, p.name().to_string(), p.counters())).collect()
    }

    /// Nanoseconds this loop's ports spent in system calls.
    pub fn syscall_ns(&self) -> u64 {
        self.ports.iter().map(|(_, p)| p.syscall_ns()).sum()
    }

    /// Port-specific counters by OpenFlow port (see [`Port::detail`]).
    pub fn port_details(&self) -> Vec<(u32, String)> {
        self.ports.iter().map(|(o, p)| (o, p.detail())).collect()
    }

    /// Runs until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) {
        self.stats.note_thread();
        while !stop.load(Ordering::Relaxed) {
            self.iterate();
        }
        self.stats.keep_scheduler();
        self.drain();
    }

    /// Runs until `stop` is set; after 64 idle iterations in a row the loop
    /// sleeps, doubling from 1 µs up to `max_sleep` while idle (OVS's
    /// pmd-maxsleep). A zero `max_sleep` polls without pause.
    pub fn run_idle(&mut self, stop: &AtomicBool, max_sleep: std::time::Duration) {
        let mut idle = 0u32;
        let mut sleep = std::time::Duration::from_micros(1);
        self.stats.note_thread();
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
        self.stats.keep_scheduler();
        self.drain();
    }

    /// Frees frames still waiting (shutdown).
    pub fn drain(&mut self) {
        self.pending.drain(&mut self.pool);
        for r in self.recirc.drain(..) {
            self.pool.free(r.frame);
        }
        for h in self.held.drain(..) {
            self.pool.free(h.frame);
        }
        self.ports.flush(&mut self.pool);
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
        let mut b = BurstCounters::default();
        // Replies matter to waiting frames only; with none waiting, the
        // channel is still drained now and then (replies whose frames timed
        // out must not fill it).
        let answered = if self.pending.is_empty() && self.iteration & 0x3ff != 0 { 0 } else { self.replies(&mut b) };
        let mut got = 0;
        let mut ids = [0 as FrameId; BURST];
        for si in 0..self.ports.len() {
            let Some((in_port, n)) = self.ports.rx(si, &mut self.pool, &mut ids) else { continue };
            if n > 0 {
                start.get_or_insert_with(|| self.clock.raw());
                self.burst(in_port, &ids[..n], &mut b);
                got += n;
            }
        }
        if !self.host.is_empty() {
            b.host_late += self.host.release(crate::clock::now_ms(), &mut self.recirc, &mut self.pool, &mut b) as u64;
        }
        if !self.recirc.is_empty() {
            self.recirculate(&mut b);
        }
        if !self.held.is_empty() {
            self.retry_held(&mut b);
        }
        if self.iteration & 0xf_ffff == 0 {
            self.emc.sweep();
        }
        if self.iteration & 0x3ff == 0 && self.control.is_some() {
            self.control(&mut b);
        }
        self.ports.flush(&mut self.pool);
        self.pending.expire(&mut self.pool, self.iteration, &mut b);
        self.stats.absorb(got, answered, &b, (self.emc.enabled(), self.emc.n_auto_disabled));
        self.last_busy = got + answered > 0;
        if let (true, Some(t)) = (self.last_busy, start) {
            self.last_clock = t;
        }
        got
    }

    /// The current tunnel state, with the VXLAN template cache following it
    /// (off the burst path, which uses its own per-burst load).
    fn synced_tunnel(&mut self) -> Arc<TunnelState> {
        let t = self.tunnel.load().clone();
        self.tcache.sync(&t);
        t
    }

    #[cold]
    fn replies(&mut self, b: &mut BurstCounters) -> usize {
        let mut n = 0;
        // The tunnel state once for all the replies waiting.
        let mut tunnel = None;
        while let Ok(r) = self.reply_rx.try_recv() {
            let tunnel = tunnel.get_or_insert_with(|| self.synced_tunnel());
            let Pmd {
                pool, ports, emc, pending, stats, held, iteration, tcache, ct, recirc, frags, batch, host, ..
            } = self;
            let mut x = Exec {
                pool,
                ports,
                flows: &stats.flows,
                held,
                iteration: *iteration,
                tcache,
                ct: ct.as_deref(),
                pin: None,
                now_ms: 0,
                frag_due: u64::MAX,
                recirc,
                frags,
                batch,
                host,
            };
            n += pending.answer(&r.flow, |(f, key, hash, depth, md)| {
                emc.maybe_insert(key, hash, &r.flow);
                x.execute(tunnel, &r.flow, f, hash, Pass { key, depth, md }, b);
            });
        }
        if n > 0 {
            self.ports.flush(&mut self.pool);
        }
        n
    }

    /// Looks the packets queued for recirculation up again (EMC on every
    /// word, then the megaflow classifier; a miss upcalls with the tracked
    /// key) and runs what they hit, round after round until no packet is
    /// queued (each round's recirculations make the next; the depth limit
    /// ends it).
    #[cold]
    fn recirculate(&mut self, b: &mut BurstCounters) {
        let ordered = self.ordered;
        let Pmd {
            pool,
            ports,
            emc,
            pending,
            upcall_tx,
            id,
            iteration,
            stats,
            held,
            tcache,
            flows,
            tunnel,
            ct,
            recirc,
            recirc_round,
            frags,
            batch,
            host,
            ..
        } = self;
        let table: &FlowTable = flows.load();
        let tunnel: &Arc<TunnelState> = tunnel.load();
        tcache.sync(tunnel);
        let (mut pin, mut now_ms, mut frag_due) = (None, 0, u64::MAX);
        loop {
            std::mem::swap(recirc, recirc_round);
            if recirc_round.is_empty() {
                break;
            }
            let mut x = Exec {
                pool: &mut *pool,
                ports: &mut *ports,
                flows: &stats.flows,
                held: &mut *held,
                iteration: *iteration,
                tcache: &mut *tcache,
                ct: ct.as_deref(),
                pin: pin.take(),
                now_ms,
                frag_due,
                recirc: &mut *recirc,
                frags: &mut *frags,
                batch: &mut *batch,
                host: &mut *host,
            };
            let mut held_back = false;
            if ordered {
                // Kept in OVS's order ([`Pmd::set_ordered`]): consecutive
                // packets of a round that hit one megaflow run as one batch,
                // action by action (OVS's per-flow batches), and a packet that
                // misses holds back the rest of its round until the slow path
                // has answered (as OVS's synchronous upcall would have).
                let mut group: Option<(Arc<Megaflow>, u8)> = None;
                let mut k = 0;
                while k < recirc_round.len() {
                    let r = recirc_round[k];
                    k += 1;
                    let hash = r.key.hash();
                    let mut found = emc.enabled().then(|| emc.peek_tracked(&r.key, hash).cloned()).flatten();
                    if found.is_some() {
                        b.emc_hits += 1;
                    } else if let Some((m, _)) = table.port(r.key.get(crate::flow::loc::IN_PORT) as u32).lookup(&r.key)
                    {
                        b.megaflow_hits += 1;
                        emc.maybe_insert(&r.key, hash, m);
                        found = Some(m.clone());
                    }
                    if group.as_ref().is_some_and(|(g, _)| found.as_ref().is_none_or(|m| !Arc::ptr_eq(g, m))) {
                        let (g, depth) = group.take().expect("checked");
                        x.execute_batch(tunnel, &g, depth, b);
                    }
                    match found {
                        Some(m) => {
                            group.get_or_insert((m, r.depth));
                            x.batch.push(Item { frame: r.frame, key: r.key, hash, md: r.md, live: true });
                        }
                        None => {
                            let w = (r.frame, r.key, hash, r.depth, r.md);
                            pending.miss_again(x.pool, upcall_tx, *id, *iteration, w, b);
                            // The rest of the round waits for the answer.
                            x.recirc.splice(0..0, recirc_round.drain(k..));
                            held_back = true;
                            break;
                        }
                    }
                }
                if let Some((g, depth)) = group.take() {
                    x.execute_batch(tunnel, &g, depth, b);
                }
            } else {
                // By reference, cleared after: a queued packet is not copied
                // out of the queue first.
                if emc.enabled() {
                    for r in recirc_round.iter() {
                        let pass = Pass { key: &r.key, depth: r.depth, md: &r.md };
                        let hash = r.key.hash();
                        if let Some(m) = emc.peek_tracked(&r.key, hash) {
                            b.emc_hits += 1;
                            x.execute(tunnel, m, r.frame, hash, pass, b);
                            continue;
                        }
                        let in_port = r.key.get(crate::flow::loc::IN_PORT) as u32;
                        match table.port(in_port).lookup(&r.key) {
                            Some((m, _)) => {
                                b.megaflow_hits += 1;
                                emc.maybe_insert(&r.key, hash, m);
                                x.execute(tunnel, m, r.frame, hash, pass, b);
                            }
                            None => {
                                let w = (r.frame, r.key, hash, r.depth, r.md);
                                pending.miss_again(x.pool, upcall_tx, *id, *iteration, w, b);
                            }
                        }
                    }
                } else {
                    // The EMC off (many distinct keys): the round's packets
                    // are looked up as bursts, runs of up to [`BURST`] from
                    // one input port, as a first pass's are (a subtable
                    // probed once for consecutive keys with the same masked
                    // form, as OVS's dpcls does a batch); then run in order.
                    let mut at = 0;
                    while at < recirc_round.len() {
                        let in_port = recirc_round[at].key.get(crate::flow::loc::IN_PORT);
                        let end = recirc_round[at..]
                            .iter()
                            .take(BURST)
                            .position(|r| r.key.get(crate::flow::loc::IN_PORT) != in_port)
                            .map_or((at + BURST).min(recirc_round.len()), |n| at + n);
                        let run = &recirc_round[at..end];
                        let ids = run.iter().fold(0, |a, r| a | recirc_bit(r.key.get(crate::flow::loc::RECIRC_ID)));
                        let mut hit: [Option<&Arc<Megaflow>>; BURST] = [None; BURST];
                        let all = if run.len() == BURST { u32::MAX } else { (1u32 << run.len()) - 1 };
                        let mut rank_hits = [0u64; 8];
                        let cls = table.port(in_port as u32);
                        let missed = cls.lookup_burst_recirc(run, all, ids, &mut hit, &mut rank_hits);
                        b.megaflow_hits += (all & !missed).count_ones() as u64;
                        // Ranked by all their hits, recirculated passes' too
                        // (as OVS's dpcls counts every lookup).
                        for (rank, &n) in rank_hits.iter().enumerate() {
                            if n != 0 {
                                cls.credit(rank, n);
                            }
                        }
                        for (r, m) in run.iter().zip(hit) {
                            match m {
                                Some(m) => {
                                    let pass = Pass { key: &r.key, depth: r.depth, md: &r.md };
                                    // Read by a VXLAN push alone.
                                    let hash = if m.tunnels { r.key.hash() } else { 0 };
                                    x.execute(tunnel, m, r.frame, hash, pass, b);
                                }
                                None => {
                                    let w = (r.frame, r.key, r.key.hash(), r.depth, r.md);
                                    pending.miss_again(x.pool, upcall_tx, *id, *iteration, w, b);
                                }
                            }
                        }
                        at = end;
                    }
                }
            }
            recirc_round.clear();
            (pin, now_ms, frag_due) = (x.pin.take(), x.now_ms, x.frag_due);
            if held_back {
                break;
            }
        }
    }

    /// Keeps the order of recirculated packets through misses, as Open
    /// vSwitch's synchronous upcalls do: a recirculated packet that misses
    /// holds back the rest of its round until the slow path has answered
    /// (the next iteration). For replays that compare outputs frame by
    /// frame with OVS (`sdnfwd ct-replay`: the fragments one `ct` releases
    /// leave in their order); a running loop does not wait for the slow
    /// path.
    pub fn set_ordered(&mut self, on: bool) {
        self.ordered = on;
    }

    /// Packets queued for their next pass (held back by
    /// [`Pmd::set_ordered`]; none otherwise between iterations).
    pub fn n_recirculating(&self) -> usize {
        self.recirc.len()
    }

    /// Sends held VXLAN frames whose neighbour got resolved (checked when
    /// the tunnel state changes); drops those that waited too long.
    #[cold]
    fn retry_held(&mut self, b: &mut BurstCounters) {
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
                    ports: &mut self.ports,
                    flows: &self.stats.flows,
                    held: &mut none,
                    iteration: now,
                    tcache: &mut self.tcache,
                    ct: None,
                    pin: None,
                    now_ms: 0,
                    frag_due: u64::MAX,
                    recirc: &mut self.recirc,
                    frags: &mut self.frags,
                    batch: &mut self.batch,
                    host: &mut self.host,
                };
                if x.push_vxlan(&tunnel, h.frame, h.dst, h.vni, h.sport, b) {
                    x.emit(UPLINK, h.frame, b);
                }
            } else if now - h.since > HOLD_TIMEOUT {
                self.held.swap_remove(i);
                self.pool.free(h.frame);
                b.drop(DatapathDrop::NoNeighbour, 1);
            } else {
                i += 1;
            }
        }
    }

    /// Frames held for unresolved neighbours.
    pub fn n_held(&self) -> usize {
        self.held.len()
    }

    /// One burst, stage by stage over the whole batch (as OVS's
    /// dfc_processing / fast_path_processing): extract every key, probe the
    /// EMC for all, the classifier for the rest, then run the actions in
    /// arrival order and upcall the misses; EMC insertions last.
    fn burst(&mut self, in_port: u32, frames: &[FrameId], b: &mut BurstCounters) {
        let Pmd {
            pool,
            ports,
            emc,
            pending,
            upcall_tx,
            id,
            iteration,
            stats,
            held,
            tcache,
            keys,
            hashes,
            flows,
            tunnel,
            ct,
            recirc,
            frags,
            batch,
            host,
            ..
        } = self;
        let table: &FlowTable = flows.load();
        let tunnel: &Arc<TunnelState> = tunnel.load();
        tcache.sync(tunnel);
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
                        hashes[i] = key.hash_untracked();
                        live |= 1 << i;
                    }
                    Err(m) => {
                        b.malformed[m as usize] += 1;
                        b.drop(DatapathDrop::NotForUs, 1);
                        pool.free(f);
                    }
                }
            }
        } else {
            for &f in &frames[..n] {
                pool.free(f);
            }
            b.drop(DatapathDrop::NotForUs, n as u64);
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
        let mut x = Exec {
            pool,
            ports,
            flows: &stats.flows,
            held,
            iteration: *iteration,
            tcache,
            ct: ct.as_deref(),
            pin: None,
            now_ms: 0,
            frag_due: u64::MAX,
            recirc,
            frags,
            batch,
            host,
        };
        // A run is a range of consecutive frames (a dropped frame ends it),
        // so its frames and hashes are passed as slices, uncopied.
        let mut m = live;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            let Some(mf) = hit[i] else {
                pending.miss(x.pool, upcall_tx, *id, *iteration, frames[i], keys[i], hashes[i], b);
                continue;
            };
            let mut end = i + 1;
            // (A u64 test: `end` reaches 32, where no frame is.)
            while (m as u64) & (1 << end) != 0 && hit[end].is_some_and(|o| Arc::ptr_eq(o, mf)) {
                m &= !(1 << end);
                end += 1;
            }
            x.execute_run(tunnel, mf, &frames[i..end], &hashes[i..end], &keys[i..end], b);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::DpAction;
    use crate::flow::{loc, LocalVtep, KEY_WORDS};
    use crate::port::memory::{CapturePort, MemPort, SinkPort};
    use crate::upcall::PENDING_TIMEOUT;
    use crate::wire;

    const VTEP: LocalVtep = LocalVtep { ip: 0xac10_0119, udp_port: 4789, port: 1 };

    /// A loop with two sinks (ports 5 and 6), the upcall channel's other
    /// end and the reply channel's.
    struct Rig {
        pmd: Pmd,
        shared: Arc<Shared>,
        up_rx: Receiver<Upcall>,
        reply_tx: Sender<UpcallReply>,
        out5: Receiver<Vec<u8>>,
    }

    fn rig(n_frames: usize, upcall_cap: usize) -> Rig {
        let shared = Arc::new(Shared::default());
        let (up_tx, up_rx) = crossbeam_channel::bounded(upcall_cap);
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(64);
        let mut pmd = Pmd::new(0, shared.clone(), up_tx, reply_rx, n_frames, 1);
        let (cap, out5, _) = CapturePort::new("p5");
        pmd.add_port(5, Box::new(cap), false);
        pmd.add_port(6, Box::new(SinkPort::new("p6")), false);
        Rig { pmd, shared, up_rx, reply_tx, out5 }
    }

    /// A pod's UDP frame (source port `sport`).
    fn frame(sport: u16) -> Vec<u8> {
        wire::build_frame(0x0a58_0a80_0003, 0x0a58_0a80_0004, 0x0a80_0003, 0x0a80_0004, 17, sport, 53, 64)
    }

    fn key_of(f: &[u8], in_port: u32) -> FlowKey {
        let mut k = FlowKey::default();
        k.extract(f, in_port);
        k
    }

    /// A megaflow on in_port alone: every frame from `in_port`.
    fn on_port(in_port: u32, actions: &[DpAction], id: u32) -> Arc<Megaflow> {
        let mut mask = FlowKey::default();
        mask.set(loc::IN_PORT, u64::MAX);
        let mut k = FlowKey::default();
        k.set(loc::IN_PORT, in_port as u64);
        Arc::new(Megaflow::new(k, mask, actions, id))
    }

    fn publish(r: &Rig, flows: &[&Arc<Megaflow>]) -> Arc<FlowTable> {
        let mut t = FlowTable::default();
        for f in flows {
            t.insert(Arc::clone(f));
        }
        let t = Arc::new(t);
        r.shared.flows.store(t.clone());
        t
    }

    /// `n` frames of `flows` distinct flows into port 4, one iteration
    /// per burst.
    fn send(r: &mut Rig, n: u64, flows: u16) {
        let frames = (0..flows).map(|i| frame(1000 + i)).collect();
        let mut p = MemPort::new("p4", frames);
        p.limit = n;
        r.pmd.add_port(4, Box::new(p), true);
        for _ in 0..n.div_ceil(BURST as u64) {
            r.pmd.iterate();
        }
        r.pmd.remove_port(4);
    }

    fn drops(r: &Rig) -> Vec<(&'static str, u64)> {
        DatapathDrop::ALL.iter().map(|d| (d.name(), r.pmd.stats.dropped(*d))).filter(|(_, n)| *n > 0).collect()
    }

    fn sent(r: &Rig, ofport: u32) -> u64 {
        r.pmd.port_counters().iter().find(|(o, ..)| *o == ofport).map_or(0, |(_, _, c)| c.tx_packets)
    }

    #[test]
    fn test_pipeline_drop_no_output() {
        let mut r = rig(256, 64);
        publish(&r, &[&on_port(4, &[], 1)]);
        send(&mut r, 40, 3);
        assert_eq!(drops(&r), vec![("pipeline", 40)]);
        assert_eq!(r.pmd.stats.flow(1).0, 40, "the megaflow's counter");
        assert_eq!(r.pmd.pool().n_free(), 256);
    }

    #[test]
    fn test_no_port_drop() {
        let mut r = rig(256, 64);
        publish(&r, &[&on_port(4, &[DpAction::Output(9)], 1)]);
        send(&mut r, 40, 1);
        assert_eq!(drops(&r), vec![("no-port", 40)]);
        assert_eq!(r.pmd.pool().n_free(), 256);
    }

    #[test]
    fn test_no_buffer_drop_when_copies_exhaust_the_pool() {
        // 40 frames: a burst of 32 leaves 8 for the copies that a second
        // output needs; the other 24 copies fail, their originals still go.
        let mut r = rig(40, 64);
        publish(&r, &[&on_port(4, &[DpAction::Output(5), DpAction::Output(6)], 1)]);
        send(&mut r, 32, 1);
        assert_eq!(drops(&r), vec![("no-buffer", 24)]);
        assert_eq!((sent(&r, 5), sent(&r, 6)), (8, 32));
        assert_eq!(r.pmd.pool().n_free(), 40);
    }

    #[test]
    fn test_not_for_us_drop_on_the_uplink() {
        let mut r = rig(256, 64);
        // No local VTEP yet: everything from the uplink is dropped.
        r.pmd.add_port(UPLINK, Box::new(MemPort::new("ul", vec![frame(1)])), true);
        r.pmd.iterate();
        assert_eq!(drops(&r), vec![("not-for-us", BURST as u64)]);
        // With one, a frame that is not VXLAN to it is dropped too.
        r.shared.tunnel.store(Arc::new(TunnelState { vtep: Some(VTEP), ..Default::default() }));
        r.pmd.iterate();
        assert_eq!(drops(&r), vec![("not-for-us", 2 * BURST as u64)]);
        r.pmd.remove_port(UPLINK);
        assert_eq!(r.pmd.pool().n_free(), 256);
    }

    #[test]
    fn test_no_neighbour_holds_then_drops_or_sends() {
        let mut r = rig(256, 64);
        r.pmd.add_port(UPLINK, Box::new(SinkPort::new("ul")), false);
        let dst = 0xac10_0110;
        let push = on_port(4, &[DpAction::TunnelPush { port: 1, vni: 0x2be3, dst }], 1);
        publish(&r, &[&push]);
        let mut ts = TunnelState { vtep: Some(VTEP), local_mac: 0x0200_0000_0125, ..Default::default() };
        r.shared.tunnel.store(Arc::new(ts.clone()));
        // 10 frames to an unresolved VTEP: 8 held, 2 dropped at once.
        send(&mut r, 10, 1);
        assert_eq!(r.pmd.n_held(), crate::exec::HOLD_PER_VTEP);
        assert_eq!(drops(&r), vec![("no-neighbour", 2)]);
        // The neighbour resolves: the held frames leave, encapsulated.
        ts.neighbours.insert(dst, 0x0200_0000_0116);
        r.shared.tunnel.store(Arc::new(ts.clone()));
        r.pmd.iterate();
        assert_eq!((r.pmd.n_held(), sent(&r, UPLINK)), (0, 8));
        // Unresolved again (another VTEP): held frames time out.
        push.dead.store(true, Ordering::Relaxed);
        let other = DpAction::TunnelPush { port: 1, vni: 0x2be3, dst: dst + 1 };
        publish(&r, &[&on_port(4, &[other], 2)]);
        send(&mut r, 3, 1);
        assert_eq!(r.pmd.n_held(), 3);
        r.pmd.iteration += HOLD_TIMEOUT + 1;
        r.pmd.iterate();
        assert_eq!(r.pmd.n_held(), 0);
        assert_eq!(drops(&r), vec![("no-neighbour", 5)]);
        assert_eq!(r.pmd.pool().n_free(), 256);
    }

    /// PACKET_OUT's frames: one through the pipeline as from port 4 (its
    /// megaflow sends it to port 5), one straight out of port 5, one for
    /// a port the loop does not have; every frame back in the pool.
    #[test]
    fn test_inject() {
        let mut r = rig(256, 64);
        publish(&r, &[&on_port(4, &[DpAction::Output(5)], 1)]);
        let (tx, rx) = crossbeam_channel::unbounded();
        r.pmd.set_control(rx);
        tx.send(PmdCommand::Inject { frame: frame(1), in_port: 4, out: None }).unwrap();
        tx.send(PmdCommand::Inject { frame: frame(2), in_port: 0xfffd, out: Some(5) }).unwrap();
        tx.send(PmdCommand::Inject { frame: frame(3), in_port: 4, out: Some(9) }).unwrap();
        // Commands are read every 1024 iterations.
        while !tx.is_empty() {
            r.pmd.iterate();
        }
        r.pmd.iterate();
        let got: Vec<Vec<u8>> = r.out5.try_iter().collect();
        assert_eq!(got, [frame(1), frame(2)]);
        assert_eq!(r.pmd.stats.flow(1).0, 1, "the pipeline's frame counted by its megaflow");
        assert_eq!(drops(&r), vec![("no-port", 1)]);
        assert_eq!(r.pmd.pool().n_free(), 256);
    }

    #[test]
    fn test_upcall_lost_when_the_channel_is_full() {
        // Room for one upcall: the first flow's is sent, the second's is
        // lost (its frames with it), the first's frames wait.
        let mut r = rig(256, 1);
        send(&mut r, 2, 2);
        assert_eq!(drops(&r), vec![("upcall-lost", 1)]);
        assert_eq!((r.pmd.n_pending(), r.up_rx.len()), (1, 1));
        let s = &r.pmd.stats;
        assert_eq!((s.misses.load(Ordering::Relaxed), s.upcalls.load(Ordering::Relaxed)), (2, 1));
        assert_eq!(s.lost.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn test_upcall_timeout_and_reinjection() {
        let mut r = rig(256, 64);
        // Three frames of one flow: one upcall, three waiting.
        send(&mut r, 3, 1);
        r.up_rx.try_recv().expect("the first frame upcalls");
        assert!(r.up_rx.try_recv().is_err(), "misses of one flow must coalesce");
        assert_eq!(r.pmd.n_pending(), 3);
        // The answer re-injects them, in the next iteration.
        let mf = on_port(4, &[DpAction::Output(5)], 3);
        r.reply_tx.send(UpcallReply { flow: mf.clone() }).unwrap();
        r.pmd.iterate();
        assert_eq!((r.pmd.n_pending(), r.out5.len()), (0, 3));
        assert_eq!(r.pmd.stats.flow(3).0, 3);
        // Unanswered frames are dropped once they waited too long (the
        // megaflow removed: the EMC, which took it, lets it go).
        mf.dead.store(true, Ordering::Relaxed);
        send(&mut r, 2, 1);
        assert_eq!(r.pmd.n_pending(), 2);
        r.pmd.iteration += PENDING_TIMEOUT + 1;
        r.pmd.iterate();
        assert_eq!(r.pmd.n_pending(), 0);
        assert_eq!(drops(&r), vec![("upcall-timeout", 2)]);
        assert_eq!(r.pmd.pool().n_free(), 256);
    }

    #[test]
    fn test_a_published_table_is_taken_within_one_iteration() {
        let mut r = rig(256, 64);
        let (a, b) = (on_port(4, &[DpAction::Output(5)], 1), on_port(4, &[DpAction::Output(6)], 2));
        let old = publish(&r, &[&a]);
        send(&mut r, 32, 4);
        assert_eq!((sent(&r, 5), sent(&r, 6)), (32, 0));
        // The slow path replaces the megaflow (and marks the old one dead,
        // so that the EMC lets it go) and publishes a new table.
        a.dead.store(true, Ordering::Relaxed);
        let _new = publish(&r, &[&b]);
        assert!(Arc::strong_count(&old) > 1, "the loop holds the table it used");
        r.pmd.iterate();
        assert_eq!(Arc::strong_count(&old), 1, "the old table is still held after one iteration");
        send(&mut r, 32, 4);
        assert_eq!((sent(&r, 5), sent(&r, 6)), (32, 32));
        assert!(drops(&r).is_empty());
    }

    #[test]
    fn test_keys_and_stats_of_a_burst() {
        let mut r = rig(256, 64);
        let f = frame(1000);
        let k = key_of(&f, 4);
        assert_eq!(k.get(loc::TP_SRC), 1000);
        let exact = Arc::new(Megaflow::new(k, FlowKey { w: [u64::MAX; KEY_WORDS] }, [DpAction::Output(5)], 7));
        publish(&r, &[&exact]);
        send(&mut r, 64, 1);
        let s = &r.pmd.stats;
        let (emc, mf) = (s.emc_hits.load(Ordering::Relaxed), s.megaflow_hits.load(Ordering::Relaxed));
        assert_eq!(emc + mf, 64);
        assert!(emc >= 32, "the second burst must hit the EMC: {emc}");
        assert_eq!(s.packets.load(Ordering::Relaxed), 64);
        assert_eq!(s.busy_iterations.load(Ordering::Relaxed), 2);
        let text = s.show(Some(3));
        assert!(text.starts_with("pmd thread core_id 3:\n  packets received: 64\n"), "{text}");
        assert_eq!(r.out5.len(), 64);
    }

    /// A packet from the host that would start a connection waits for the
    /// host's translation: the loop asks once, holds the frame, and runs
    /// its pass again when the node has answered (the connection then
    /// adopted with the translation); later packets of the connection do
    /// not wait. A question nobody answers lets its frame go after
    /// `HOLD_MS`; a `ct` after an output does not wait.
    #[test]
    fn test_packets_from_the_host_wait_for_its_translation() {
        use crate::conntrack::{CtConfig, CtRequest};
        use crate::hostnat::HOLD_MS;
        use std::sync::atomic::AtomicU64;
        let mut r = rig(256, 64);
        let ct = Arc::new(Conntrack::new(CtConfig { max_conns: 100, ..CtConfig::default() }));
        r.pmd.set_conntrack(ct.clone());
        let (q_tx, q_rx) = crossbeam_channel::bounded(16);
        let answered = Arc::new(AtomicU64::new(0));
        r.pmd.set_host_nat(q_tx, answered.clone());
        let req = Arc::new(CtRequest { commit: true, from_host: true, ..CtRequest::default() });
        publish(&r, &[&on_port(4, &[DpAction::Ct(req.clone()), DpAction::Output(5)], 1)]);
        send(&mut r, 1, 1);
        assert_eq!(r.out5.len(), 0, "held");
        let q = q_rx.try_recv().expect("a question");
        assert_eq!(
            (q.pmd, q.seq, q.tuple.src, q.tuple.dst, q.tuple.sport, q.tuple.dport),
            (0, 1, 0x0a80_0003, 0x0a80_0004, 1000, 53)
        );
        for _ in 0..10 {
            r.pmd.iterate();
        }
        assert_eq!(r.out5.len(), 0, "still waiting for the answer");
        // The node: the host sent it to 172.30.0.10:5353.
        ct.adopt(&q.tuple, q.zone, 0xac1e_000a, 5353, crate::clock::now_ms());
        answered.store(q.seq, std::sync::atomic::Ordering::Release);
        r.pmd.iterate();
        assert_eq!(r.out5.len(), 1, "released and forwarded");
        assert_eq!(
            ct.dump(None, crate::clock::now_ms()),
            ["udp,orig=(src=10.128.0.3,dst=172.30.0.10,sport=1000,dport=5353),reply=(src=10.128.0.4,dst=10.128.0.3,sport=53,dport=1000)"]
        );
        // The same connection again: no question, no wait.
        send(&mut r, 3, 1);
        assert_eq!(r.out5.len(), 4);
        assert!(q_rx.try_recv().is_err());
        // Unanswered: the frame goes on after HOLD_MS, a plain connection.
        send(&mut r, 2, 2);
        assert_eq!(r.out5.len(), 5, "the first flow again, forwarded at once");
        let q = q_rx.try_recv().expect("the second flow's question");
        assert_eq!(q.tuple.sport, 1001);
        std::thread::sleep(std::time::Duration::from_millis(HOLD_MS + 20));
        r.pmd.iterate();
        assert_eq!(r.out5.len(), 6, "let go");
        let s = r.pmd.stats.show(None);
        assert!(s.contains("  held for the host's translation: 2 (1 not answered in time, since start)\n"), "{s}");
        assert_eq!(ct.stats().n_conns, 2);
        // A ct after an output: no waiting (the pass could not run again).
        publish(&r, &[&on_port(4, &[DpAction::Output(6), DpAction::Ct(req), DpAction::Output(5)], 2)]);
        let before = r.out5.len();
        let mut p = MemPort::new("p4", vec![frame(2000)]);
        p.limit = 1;
        r.pmd.add_port(4, Box::new(p), true);
        r.pmd.iterate();
        assert_eq!(r.out5.len(), before + 1);
        assert!(q_rx.try_recv().is_err());
        assert_eq!(r.pmd.pool().n_free(), 256);
    }
}
