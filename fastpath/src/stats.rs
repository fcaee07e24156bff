//! A poll loop's counters: written by the loop alone (relaxed loads and
//! stores, no locked instruction), read by anyone (pmd-stats, metrics, the
//! slow path's megaflow statistics). A burst counts into a plain
//! [`BurstCounters`] and the loop adds it to [`PmdStats`] once per
//! iteration; `pmd-stats-clear` subtracts a [`PmdBaseline`] instead of
//! writing zeros.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::flow::N_MALFORMED;

/// Why the datapath (a poll loop) dropped a packet. Not the OpenFlow
/// pipeline's reason (`slowpath::PipelineDrop`: which table dropped it):
/// `Pipeline` here counts every frame whose megaflow has no output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DatapathDrop {
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
    /// A `ct` action on a loop without a connection tracker.
    NoTracker,
    /// Recirculated more than [`MAX_RECIRC_DEPTH`] times.
    RecircDepth,
}

/// Number of [`DatapathDrop`]s.
pub const N_DROP: usize = 9;

/// Passes a packet may take through the datapath (the first and its
/// recirculations), as OVS's limit.
pub const MAX_RECIRC_DEPTH: usize = 8;

impl DatapathDrop {
    /// Every reason, in counter order.
    pub const ALL: [DatapathDrop; N_DROP] = [
        DatapathDrop::Pipeline,
        DatapathDrop::UpcallLost,
        DatapathDrop::UpcallTimeout,
        DatapathDrop::NoNeighbour,
        DatapathDrop::NoPort,
        DatapathDrop::NoBuffer,
        DatapathDrop::NotForUs,
        DatapathDrop::NoTracker,
        DatapathDrop::RecircDepth,
    ];

    /// The name pmd-stats and the metrics print.
    pub fn name(self) -> &'static str {
        match self {
            DatapathDrop::Pipeline => "pipeline",
            DatapathDrop::UpcallLost => "upcall-lost",
            DatapathDrop::UpcallTimeout => "upcall-timeout",
            DatapathDrop::NoNeighbour => "no-neighbour",
            DatapathDrop::NoPort => "no-port",
            DatapathDrop::NoBuffer => "no-buffer",
            DatapathDrop::NotForUs => "not-for-us",
            DatapathDrop::NoTracker => "no-tracker",
            DatapathDrop::RecircDepth => "recirc-depth",
        }
    }
}

/// What a `ct` action told the pipeline, as counted per loop
/// ([`PmdStats::ct`]): `+est`, `+new`, `+rel`, `+inv` (a packet with none
/// of these is counted as new). Each `ct` a packet goes through counts once.
pub const CT_VERDICTS: [&str; 4] = ["est", "new", "rel", "inv"];

/// The [`CT_VERDICTS`] index of a `ct_state` (inv before rel before est).
#[inline]
pub fn ct_verdict(state: u8) -> usize {
    use crate::conntrack::types::{CS_ESTABLISHED, CS_INVALID, CS_RELATED};
    if state & CS_INVALID != 0 {
        3
    } else if state & CS_RELATED != 0 {
        2
    } else if state & CS_ESTABLISHED != 0 {
        0
    } else {
        1
    }
}

/// Megaflow ids are below this (the slow path allocates them); per-loop
/// megaflow statistics are arrays indexed by id.
pub const MAX_FLOW_IDS: usize = 1 << 18;

/// A copy of a loop's scalar counters (see [`PmdStats::baseline`]).
#[derive(Clone, Debug, Default)]
pub struct PmdBaseline {
    v: [u64; 11],
    drops: [u64; N_DROP],
    malformed: [u64; N_MALFORMED],
    ct: [u64; 4],
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
    /// Packets recirculated (each later pass of a packet).
    pub recirculations: AtomicU64,
    /// Packets held for the host's translation (`hostnat`).
    pub host_waits: AtomicU64,
    /// Of those, released without an answer in time.
    pub host_late: AtomicU64,
    /// Nanoseconds spent in busy iterations.
    pub busy_ns: AtomicU64,
    /// Drops by [`DatapathDrop`].
    pub drops: [AtomicU64; N_DROP],
    /// Malformed frames by [`Malformed`] reason.
    pub malformed: [AtomicU64; N_MALFORMED],
    /// `ct` actions run, by verdict ([`CT_VERDICTS`]).
    pub ct: [AtomicU64; 4],
    /// Times the EMC switched itself off.
    pub emc_auto_disabled: AtomicU64,
    /// Whether the EMC is currently enabled (1/0).
    pub emc_enabled: AtomicU64,
    /// The loop's thread id (0 until it runs): where the scheduler's
    /// figures for it are read.
    pub tid: AtomicU64,
    /// The scheduler's figures as the loop stopped (its thread gone; `tid`
    /// is then 0), for the exit report.
    sched_final: std::sync::Mutex<Option<(u64, Option<u64>)>>,
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
            recirculations: AtomicU64::new(0),
            host_waits: AtomicU64::new(0),
            host_late: AtomicU64::new(0),
            drops: Default::default(),
            malformed: Default::default(),
            ct: Default::default(),
            emc_auto_disabled: AtomicU64::new(0),
            emc_enabled: AtomicU64::new(0),
            tid: AtomicU64::new(0),
            sched_final: Default::default(),
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

    /// Records the calling thread as this loop's (once, when it starts).
    pub fn note_thread(&self) {
        let tid = std::fs::read_link("/proc/thread-self")
            .ok()
            .and_then(|p| p.file_name()?.to_str()?.parse::<u64>().ok())
            .unwrap_or(0);
        self.tid.store(tid, Ordering::Relaxed);
    }

    /// What the scheduler did to the loop's thread since it started:
    /// `(preemptions, runnable_ns)`, the times another task took its core
    /// (involuntary context switches) and, where the kernel keeps
    /// scheduler statistics (`kernel.sched_schedstats`), the time it was
    /// ready to run but waited for the core. A poll loop on a core of its
    /// own shows none; a ring overflow beside many is the machine's doing.
    pub fn scheduler(&self) -> Option<(u64, Option<u64>)> {
        match self.tid.load(Ordering::Relaxed) {
            0 => *self.sched_final.lock().unwrap_or_else(|p| p.into_inner()),
            tid => self.read_scheduler(tid),
        }
    }

    /// Keeps the scheduler's figures for after the loop's thread ends (the
    /// loop calls this as it stops).
    pub fn keep_scheduler(&self) {
        let kept = self.read_scheduler(self.tid.load(Ordering::Relaxed));
        *self.sched_final.lock().unwrap_or_else(|p| p.into_inner()) = kept;
        self.tid.store(0, Ordering::Relaxed);
    }

    fn read_scheduler(&self, tid: u64) -> Option<(u64, Option<u64>)> {
        let task = format!("/proc/self/task/{tid}");
        let status = std::fs::read_to_string(format!("{task}/status")).ok()?;
        let preempted: u64 =
            status.lines().find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))?.trim().parse().ok()?;
        // "run_ns wait_ns slices": all zero where the kernel does not count.
        let sched = std::fs::read_to_string(format!("{task}/schedstat")).unwrap_or_default();
        let v: Vec<u64> = sched.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        let waited = match v[..] {
            [run, wait, _] if run > 0 => Some(wait),
            _ => None,
        };
        Some((preempted, waited))
    }

    /// Adds to a counter this loop alone writes (a relaxed load and
    /// store: no locked instruction).
    #[inline]
    pub fn add(c: &AtomicU64, n: u64) {
        c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}

/// Counters of one iteration, in plain integers, added to [`PmdStats`]
/// once ([`PmdStats::absorb`]).
#[derive(Debug, Default)]
pub struct BurstCounters {
    /// EMC hits.
    pub emc_hits: u64,
    /// Megaflow (dpcls) hits.
    pub megaflow_hits: u64,
    /// Frames that found no megaflow.
    pub misses: u64,
    /// Upcalls sent.
    pub upcalls: u64,
    /// Frames lost for a full upcall queue or pending queue.
    pub lost: u64,
    /// Packets sent round again (recirculated).
    pub recirculations: u64,
    /// Packets held for the host's translation.
    pub host_waits: u64,
    /// Of the held, released without an answer.
    pub host_late: u64,
    /// Drops by [`DatapathDrop`].
    pub drops: [u64; N_DROP],
    /// Malformed frames by reason.
    pub malformed: [u64; N_MALFORMED],
    /// `ct` actions by verdict ([`CT_VERDICTS`]).
    pub ct: [u64; 4],
}

impl BurstCounters {
    /// Counts `n` frames dropped for `why`.
    #[inline]
    pub fn drop(&mut self, why: DatapathDrop, n: u64) {
        self.drops[why as usize] += n;
    }
}

impl PmdStats {
    /// Adds an iteration's counters: `got` frames received, `answered`
    /// frames that waited for an upcall and went on (counted when they
    /// were received; both 0: an idle iteration), `b` what happened to
    /// them; `emc` whether the EMC is on and how often it switched itself
    /// off.
    pub fn absorb(&self, got: usize, answered: usize, b: &BurstCounters, emc: (bool, u64)) {
        if got + answered > 0 {
            Self::add(&self.packets, got as u64);
            Self::add(&self.busy_iterations, 1);
        } else {
            Self::add(&self.idle_iterations, 1);
        }
        Self::add(&self.emc_hits, b.emc_hits);
        Self::add(&self.megaflow_hits, b.megaflow_hits);
        Self::add(&self.misses, b.misses);
        Self::add(&self.upcalls, b.upcalls);
        Self::add(&self.lost, b.lost);
        if b.recirculations != 0 {
            Self::add(&self.recirculations, b.recirculations);
        }
        if b.host_waits != 0 || b.host_late != 0 {
            Self::add(&self.host_waits, b.host_waits);
            Self::add(&self.host_late, b.host_late);
        }
        // OR-folds, not array comparisons: those compile to a memcmp call
        // against a zeroed array, once per iteration each.
        let any = |a: &[u64]| a.iter().fold(0, |x, &y| x | y) != 0;
        if any(&b.drops) {
            for i in 0..N_DROP {
                Self::add(&self.drops[i], b.drops[i]);
            }
        }
        if any(&b.malformed) {
            for i in 0..N_MALFORMED {
                Self::add(&self.malformed[i], b.malformed[i]);
            }
        }
        if any(&b.ct) {
            for i in 0..4 {
                Self::add(&self.ct[i], b.ct[i]);
            }
        }
        self.emc_enabled.store(emc.0 as u64, Ordering::Relaxed);
        self.emc_auto_disabled.store(emc.1, Ordering::Relaxed);
    }

    /// Frames dropped for `why` so far.
    pub fn dropped(&self, why: DatapathDrop) -> u64 {
        self.drops[why as usize].load(Ordering::Relaxed)
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
                g(&self.recirculations),
                g(&self.host_waits),
            ],
            drops: std::array::from_fn(|i| g(&self.drops[i])),
            malformed: std::array::from_fn(|i| g(&self.malformed[i])),
            ct: std::array::from_fn(|i| g(&self.ct[i])),
        }
    }

    /// A report in the spirit of `ovs-appctl dpif-netdev/pmd-stats-show`.
    pub fn show(&self, core: Option<usize>) -> String {
        self.show_since(core, &PmdBaseline::default())
    }

    /// The scalar counters counted from a baseline, in the baseline's
    /// order (packets, EMC hits, megaflow hits, misses, upcalls, lost,
    /// busy and idle iterations, busy ns, recirculations, host waits).
    fn since(&self, base: &PmdBaseline) -> [u64; 11] {
        Self::delta(&self.baseline(), base)
    }

    fn delta(now: &PmdBaseline, base: &PmdBaseline) -> [u64; 11] {
        std::array::from_fn(|i| now.v[i] - base.v[i].min(now.v[i]))
    }

    /// Hits (EMC and megaflow) and misses that made an upcall since
    /// `base`: `ovs-appctl dpif/show`'s `hit:` and `missed:`.
    pub fn hit_missed_since(&self, base: &PmdBaseline) -> (u64, u64) {
        let d = self.since(base);
        (d[1] + d[2], d[4])
    }

    /// `ovs-appctl dpif-netdev/pmd-stats-show`'s block for this loop, in
    /// OVS 3.1's layout, counted from `base`: the header names the NUMA
    /// node and core when known. What sdnfwd does not have or count is
    /// zero (hardware offload, miniflow-extract and simple-match hits, the
    /// SMC, subtable lookups, output batches); the cycle lines are left
    /// out, as OVS leaves them out before it has counted cycles (sdnfwd
    /// counts nanoseconds, which [`PmdStats::show_since`] reports).
    pub fn show_ovs_since(&self, numa: Option<usize>, core: Option<usize>, base: &PmdBaseline) -> String {
        let d = self.since(base);
        let (packets, emc, megaflow, upcalls, lost, recirc) = (d[0], d[1], d[2], d[4], d[5], d[9]);
        let mut s = String::from("pmd thread");
        if let Some(n) = numa {
            s += &format!(" numa_id {n}");
        }
        if let Some(c) = core {
            s += &format!(" core_id {c}");
        }
        let passes = if packets == 0 { 0.0 } else { (packets + recirc) as f64 / packets as f64 };
        s += &format!(
            ":\n  packets received: {packets}\n  packet recirculations: {recirc}\n  avg. datapath passes per packet: \
             {passes:.2}\n  phwol hits: 0\n  mfex opt hits: 0\n  simple match hits: 0\n  emc hits: {emc}\n  smc hits: 0\n  \
             megaflow hits: {megaflow}\n  avg. subtable lookups per megaflow hit: 0.00\n  miss with success upcall: \
             {upcalls}\n  miss with failed upcall: {lost}\n  avg. packets per output batch: 0.00\n"
        );
        s
    }

    /// The report counted from a baseline (`pmd-stats-clear`).
    pub fn show_since(&self, core: Option<usize>, base: &PmdBaseline) -> String {
        let now = self.baseline();
        let dv = Self::delta(&now, base);
        let d = |i: usize| dv[i];
        let (packets, emc, mf, upcalls, lost, busy_it, idle_it, busy_ns) =
            (d(0), d(1), d(2), d(4), d(5), d(6), d(7), d(8));
        let recirc = d(9);
        let host_waits = d(10);
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
        if recirc > 0 {
            s.push_str(&format!("  packet recirculations: {recirc}\n"));
        }
        if host_waits > 0 {
            s.push_str(&format!(
                "  held for the host's translation: {host_waits} ({} not answered in time, since start)\n",
                self.host_late.load(Ordering::Relaxed)
            ));
        }
        s.push_str(&format!(
            "  processing: {:.1} ns/packet over {busy_it} busy iterations ({idle_it} idle)\n",
            if pk == 0 { 0.0 } else { busy_ns as f64 / pk as f64 },
        ));
        let dr: Vec<String> = DatapathDrop::ALL
            .iter()
            .zip(drops)
            .filter(|(_, c)| *c > 0)
            .map(|(n, c)| format!("{}={c}", n.name()))
            .collect();
        if !dr.is_empty() {
            s.push_str(&format!("  drops: {}\n", dr.join(" ")));
        }
        let mal = ["short-ethernet", "bad-ipv4", "bad-arp", "short-l4", "not-vxlan"];
        let m: Vec<String> =
            mal.iter().zip(malformed).filter(|(_, c)| *c > 0).map(|(n, c)| format!("{n}={c}")).collect();
        if !m.is_empty() {
            s.push_str(&format!("  malformed: {}\n", m.join(" ")));
        }
        let ct: [u64; 4] = std::array::from_fn(|i| now.ct[i] - base.ct[i].min(now.ct[i]));
        if ct != [0; 4] {
            let v: Vec<String> = CT_VERDICTS.iter().zip(ct).map(|(n, c)| format!("{n}={c}")).collect();
            s.push_str(&format!("  conntrack verdicts: {}\n", v.join(" ")));
        }
        if let Some((preempted, waited)) = self.scheduler() {
            let waited = waited.map(|w| format!(", {:.1} ms runnable waiting for its core", w as f64 / 1e6));
            s.push_str(&format!(
                "  scheduler: preempted {preempted} times{} (since start)\n",
                waited.unwrap_or_default()
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::types::*;

    /// The loop's thread is found in /proc while it runs, and its figures
    /// are kept once it stops (the stop-time report is printed after).
    #[test]
    fn test_scheduler_figures_live_and_after_the_thread() {
        let s = std::sync::Arc::new(PmdStats::default());
        assert_eq!(s.scheduler(), None, "no thread yet");
        assert!(!s.show(None).contains("scheduler:"));
        let t = std::thread::spawn({
            let s = s.clone();
            move || {
                s.note_thread();
                let live = s.scheduler().expect("the running thread's figures");
                assert!(s.show(None).contains("  scheduler: preempted "), "{}", s.show(None));
                s.keep_scheduler();
                live
            }
        });
        let live = t.join().unwrap();
        assert_eq!(s.tid.load(Ordering::Relaxed), 0);
        let kept = s.scheduler().expect("kept after the thread ended");
        assert!(kept.0 >= live.0);
        assert!(s.show(None).contains(&format!("  scheduler: preempted {} times", kept.0)));
    }

    #[test]
    fn test_ct_verdicts_counted_and_shown() {
        let t = CS_TRACKED;
        let cases = [
            (t | CS_ESTABLISHED, "est"),
            (t | CS_ESTABLISHED | CS_REPLY_DIR, "est"),
            (t | CS_NEW, "new"),
            (t, "new"),
            (t | CS_RELATED | CS_REPLY_DIR, "rel"),
            (t | CS_INVALID, "inv"),
            (t | CS_INVALID | CS_ESTABLISHED, "inv"),
        ];
        let s = PmdStats::default();
        let mut b = BurstCounters::default();
        for (state, name) in cases {
            assert_eq!(CT_VERDICTS[ct_verdict(state)], name, "{state:#x}");
            b.ct[ct_verdict(state)] += 1;
        }
        assert!(!s.show(None).contains("conntrack"), "no line without a ct");
        s.absorb(7, 0, &b, (true, 0));
        assert!(s.show(None).ends_with("  conntrack verdicts: est=2 new=2 rel=1 inv=2\n"), "{}", s.show(None));
        let base = s.baseline();
        s.absorb(1, 0, &BurstCounters { ct: [1, 0, 0, 0], ..Default::default() }, (true, 0));
        assert!(s.show_since(None, &base).ends_with("  conntrack verdicts: est=1 new=0 rel=0 inv=0\n"));
    }
}
