//! Running a megaflow's datapath actions on frames: header rewrites
//! (checksums updated), VXLAN push with a per-loop template cache keyed by
//! (VTEP, VNI), outputs appended to the ports' batches. Consecutive frames
//! of one megaflow run as a group (statistics once, a plain output
//! appended at once). A VXLAN frame whose next hop is not resolved yet is
//! held (bounded, per VTEP) until the tunnel state has its MAC. `ct` runs
//! the frame through the node's tracker (pinned once per burst, the coarse
//! clock read then); `recirc` queues it (or a copy, when more actions
//! follow) for its next pass with its new key. An IPv4 fragment that `ct`
//! holds for reassembly ends there (the tracker copied it); the fragments
//! a `ct` releases (a list it completed, or one expired, as OVS's
//! `ipf_postprocess_conntrack`) are copied into frames of the loop and run
//! the actions that follow that `ct`, after the packet that released them,
//! each with its own metadata and the key of the pass it came in (its
//! in_port, its tunnel metadata).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::actions::{DpAction, SetField};
use crate::batch::{Ports, BURST, UPLINK};
use crate::conntrack::ipf::{FragOut, BATCH as CT_BATCH};
use crate::conntrack::tracker::{Conntrack, CtPin, Track};
use crate::conntrack::types::{CtRequest, CtResult, CS_DST_NAT, CS_SRC_NAT};
use crate::dpcls::Megaflow;
use crate::flow::{loc, FlowKey};
use crate::hostnat::HostWait;
use crate::pool::{FrameId, FramePool};
use crate::recirc::{may_recirculate, next_key, next_key_unchanged, Recirculating, RECIRC_MAX};
use crate::shared::TunnelState;
use crate::stats::{ct_verdict, BurstCounters, DatapathDrop, PmdStats};
use crate::wire;

/// Frames a loop holds for remote VTEPs whose next-hop MAC is not known yet.
pub const HOLD_MAX: usize = 64;
/// Of those, at most this many per VTEP.
pub const HOLD_PER_VTEP: usize = 8;
/// Iterations a held frame may wait for its neighbour.
pub const HOLD_TIMEOUT: u64 = 1 << 22;

/// Entries of the per-loop VXLAN template cache (a power of two).
const TCACHE: usize = 64;

/// A VXLAN frame waiting for the next-hop MAC of its VTEP.
#[derive(Clone, Copy, Debug)]
pub struct Held {
    /// The frame (not yet encapsulated).
    pub frame: FrameId,
    /// Remote VTEP.
    pub dst: u32,
    /// VNI.
    pub vni: u32,
    /// Outer UDP source port.
    pub sport: u16,
    /// Iteration it was held at.
    pub since: u64,
}

/// A frame of a batch that runs a megaflow's actions action by action
/// ([`Exec::run_batch`]).
#[derive(Clone, Copy, Debug)]
pub struct Item {
    /// The frame.
    pub frame: FrameId,
    /// The key of its pass (for a released fragment, of the pass in which
    /// it reached the tracker).
    pub key: FlowKey,
    /// Its key's hash (VXLAN source port).
    pub hash: u32,
    /// Its ct metadata.
    pub md: CtResult,
    /// Still in the batch (not consumed by an output, held or dropped).
    pub live: bool,
}

/// VXLAN header templates by (VTEP, VNI), valid for one tunnel state.
pub struct TemplateCache {
    slots: Box<[Option<(u32, u32, wire::VxlanTemplate)>; TCACHE]>,
    tunnel: Option<Arc<TunnelState>>,
}

impl Default for TemplateCache {
    fn default() -> Self {
        TemplateCache { slots: Box::new([None; TCACHE]), tunnel: None }
    }
}

impl TemplateCache {
    /// Empties the cache when the tunnel state changed.
    #[inline]
    pub fn sync(&mut self, tunnel: &Arc<TunnelState>) {
        if !self.tunnel.as_ref().is_some_and(|t| Arc::ptr_eq(t, tunnel)) {
            self.slots.fill(None);
            self.tunnel = Some(tunnel.clone());
        }
    }

    /// The cached template for (`dst`, `vni`), if there is one.
    #[inline]
    fn get(&self, dst: u32, vni: u32) -> Option<&wire::VxlanTemplate> {
        match &self.slots[slot(dst, vni)] {
            Some((d, v, t)) if *d == dst && *v == vni => Some(t),
            _ => None,
        }
    }
}

/// Actions that take the frame or a copy (as [`Megaflow::n_outputs`]).
fn outputs(actions: &[DpAction]) -> u8 {
    actions.iter().filter(|a| !matches!(a, DpAction::Set(_) | DpAction::Ct(_))).count().min(255) as u8
}

/// The template cache slot of a (VTEP, VNI).
#[inline]
fn slot(dst: u32, vni: u32) -> usize {
    ((dst ^ vni.rotate_left(11)).wrapping_mul(0x9e37_79b1) >> 26) as usize & (TCACHE - 1)
}

/// Rewrites a header field of the frame in place (checksums updated).
pub fn apply_set(pool: &mut FramePool, f: FrameId, s: SetField) {
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
pub struct Exec<'a> {
    /// The loop's frames.
    pub pool: &'a mut FramePool,
    /// Its ports and their output batches.
    pub ports: &'a mut Ports,
    /// Its per-megaflow counters ([`PmdStats::flows`]).
    pub flows: &'a [AtomicU64],
    /// Frames held for unresolved neighbours.
    pub held: &'a mut Vec<Held>,
    /// The loop's iteration (when a frame was held).
    pub iteration: u64,
    /// VXLAN header templates.
    pub tcache: &'a mut TemplateCache,
    /// The node's connection tracker (without one, `ct` drops).
    pub ct: Option<&'a Conntrack>,
    /// Its pin for this burst, taken at the first `ct`.
    pub pin: Option<CtPin>,
    /// The coarse time of this burst's `ct`s (read with the pin).
    pub now_ms: u64,
    /// When the tracker next has fragments to release (read with the pin;
    /// `u64::MAX` before).
    pub frag_due: u64,
    /// Packets queued for their next pass.
    pub recirc: &'a mut Vec<Recirculating>,
    /// Fragments as the tracker releases them (scratch, empty between
    /// calls).
    pub frags: &'a mut Vec<FragOut>,
    /// The frames of a batch run action by action (empty between
    /// batches).
    pub batch: &'a mut Vec<Item>,
    /// Packets waiting for the host's translation.
    pub host: &'a mut HostWait,
}

/// Where a frame's actions stand after a `ct` ([`Exec::ct_step`]).
enum CtStep {
    /// On to the next action.
    Next,
    /// Nothing more to do with the frame here.
    Done,
}

/// What a frame brings to its actions besides its bytes: its key, the
/// passes it has taken and what the tracker said of it so far.
#[derive(Clone, Copy, Debug)]
pub struct Pass<'k> {
    /// The key it was looked up with.
    pub key: &'k FlowKey,
    /// Passes taken before this one.
    pub depth: u8,
    /// The tracker's verdict from an earlier pass ([`CtResult::NONE`]
    /// before any): borrowed from where it waited, copied once, by the
    /// actions that update it.
    pub md: &'k CtResult,
}

impl<'k> Pass<'k> {
    /// A packet's first pass.
    #[inline]
    pub fn first(key: &'k FlowKey) -> Pass<'k> {
        Pass { key, depth: 0, md: &CtResult::NONE }
    }
}

impl Exec<'_> {
    /// Writes the VXLAN header `t` in front of `g`; returns whether `g` is
    /// ready to send (no headroom: freed and counted).
    #[inline]
    fn encap(pool: &mut FramePool, t: &wire::VxlanTemplate, g: FrameId, sport: u16, b: &mut BurstCounters) -> bool {
        let inner = pool.len(g);
        match pool.push_header::<{ wire::VXLAN_ENCAP_LEN }>(g) {
            Some(h) => {
                t.write_header(h, inner, sport);
                true
            }
            None => {
                pool.free(g);
                b.drop(DatapathDrop::NoBuffer, 1);
                false
            }
        }
    }

    /// Encapsulates `g` towards `dst`; holds it (bounded) when the next hop
    /// is not resolved yet. Returns whether `g` is ready to send.
    #[inline]
    pub fn push_vxlan(
        &mut self,
        tunnel: &TunnelState,
        g: FrameId,
        dst: u32,
        vni: u32,
        sport: u16,
        b: &mut BurstCounters,
    ) -> bool {
        if let Some(t) = self.tcache.get(dst, vni) {
            return Self::encap(self.pool, t, g, sport, b);
        }
        let Some(vtep) = tunnel.vtep else {
            self.pool.free(g);
            b.drop(DatapathDrop::NoNeighbour, 1);
            return false;
        };
        let Some(&mac) = tunnel.neighbours.get(&dst) else {
            let per_vtep = self.held.iter().filter(|h| h.dst == dst).count();
            if self.held.len() < HOLD_MAX && per_vtep < HOLD_PER_VTEP {
                self.held.push(Held { frame: g, dst, vni, sport, since: self.iteration });
            } else {
                self.pool.free(g);
                b.drop(DatapathDrop::NoNeighbour, 1);
            }
            return false;
        };
        let t = wire::VxlanTemplate::new(tunnel.local_mac, mac, vtep.ip, dst, vtep.udp_port, vni);
        self.tcache.slots[slot(dst, vni)] = Some((dst, vni, t));
        Self::encap(self.pool, &t, g, sport, b)
    }

    #[inline]
    pub fn emit(&mut self, port: u32, f: FrameId, b: &mut BurstCounters) {
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

    /// Runs a megaflow's actions on the frames `run` of their first pass
    /// (consumed, in order; `hashes` and `keys`: their keys' hashes and
    /// keys): counters once, and a plain output appends them all to the
    /// port's batch with one port lookup.
    #[inline]
    pub fn execute_run(
        &mut self,
        tunnel: &TunnelState,
        m: &Megaflow,
        run: &[FrameId],
        hashes: &[u32],
        keys: &[FlowKey],
        b: &mut BurstCounters,
    ) {
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
                let t = self.tcache.get(dst, vni).copied();
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
                for ((&f, &h), k) in run.iter().zip(hashes).zip(keys) {
                    self.actions(tunnel, m, f, h, Pass::first(k), b);
                }
            }
        }
    }

    /// Appends frames to a port's output batch (one port lookup); frames
    /// for a port the loop does not have are dropped and counted.
    #[inline]
    pub fn emit_run(&mut self, port: u32, out: &[FrameId], b: &mut BurstCounters) {
        let lost = self.ports.emit_run(self.pool, port, out);
        if lost > 0 {
            b.drop(DatapathDrop::NoPort, lost as u64);
        }
    }

    /// Runs a megaflow's actions on a frame (consumed), counters included.
    /// `hash` is the key's hash (VXLAN source port), computed once per frame.
    #[inline]
    pub fn execute(
        &mut self,
        tunnel: &TunnelState,
        m: &Megaflow,
        f: FrameId,
        hash: u32,
        pass: Pass<'_>,
        b: &mut BurstCounters,
    ) {
        self.credit(m, 1, self.pool.len(f) as u64);
        self.actions(tunnel, m, f, hash, pass, b);
    }

    /// Runs a megaflow's actions on a frame (consumed), no counters. When
    /// a `ct` releases fragments (a list it completed, an expired one), the
    /// frame and they go on from the next action as one batch.
    #[inline]
    pub fn actions(
        &mut self,
        tunnel: &TunnelState,
        m: &Megaflow,
        f: FrameId,
        hash: u32,
        pass: Pass<'_>,
        b: &mut BurstCounters,
    ) {
        if m.actions.is_empty() {
            self.pool.free(f);
            b.drop(DatapathDrop::Pipeline, 1);
            return;
        }
        // The shape of every pass but the last in conntrack tables (OVS's
        // `ct(table=N)`: track, then the next pass): no action loop.
        if let [DpAction::Ct(ref req), DpAction::Recirc(id)] = m.actions[..] {
            let mut md = *pass.md;
            if let CtStep::Done = self.ct_step(tunnel, m, f, hash, req, &mut md, &pass, 0, true, b) {
                return;
            }
            self.recirculate(f, id, &pass, &md, false, b);
            return;
        }
        let mut md = *pass.md;
        let mut left = m.n_outputs;
        // Whether an action rewrote the frame (its next pass's key is then
        // extracted again).
        let mut rewritten = false;
        for (i, a) in m.actions.iter().enumerate() {
            let (port, tun) = match a {
                DpAction::Set(s) => {
                    apply_set(self.pool, f, *s);
                    rewritten = true;
                    // A rewritten packet is looked up again by a later ct.
                    md.forget_conn();
                    continue;
                }
                DpAction::Ct(req) => {
                    let fresh = left == m.n_outputs;
                    if let CtStep::Done = self.ct_step(tunnel, m, f, hash, req, &mut md, &pass, i, fresh, b) {
                        return;
                    }
                    continue;
                }
                DpAction::Output(p) => (*p, None),
                DpAction::TunnelPush { vni, dst, .. } => (UPLINK, Some((*vni, *dst))),
                DpAction::Recirc(id) => {
                    left -= 1;
                    let g = if left == 0 { Some(f) } else { self.pool.clone_frame(f) };
                    match g {
                        Some(g) => self.recirculate(g, *id, &pass, &md, rewritten, b),
                        None => b.drop(DatapathDrop::NoBuffer, 1),
                    }
                    continue;
                }
            };
            left -= 1;
            let g = if left == 0 {
                f
            } else {
                match self.pool.clone_frame(f) {
                    Some(g) => g,
                    None => {
                        b.drop(DatapathDrop::NoBuffer, 1);
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
        if m.n_outputs == 0 {
            // Rewrites and ct only: the packet ends here (after the tracker
            // saw it).
            self.pool.free(f);
            b.drop(DatapathDrop::Pipeline, 1);
        }
    }

    /// Runs a megaflow's actions on the frames of [`Exec::batch`]
    /// (consumed) as one batch ([`Exec::run_batch`]), counters included.
    #[cold]
    pub fn execute_batch(&mut self, tunnel: &TunnelState, m: &Megaflow, depth: u8, b: &mut BurstCounters) {
        let bytes = self.batch.iter().map(|it| self.pool.len(it.frame) as u64).sum();
        self.credit(m, self.batch.len() as u64, bytes);
        self.run_batch(tunnel, m, depth, 0, b);
    }

    /// Runs a megaflow's actions from the `at`-th on the frames of
    /// [`Exec::batch`] (consumed) as OVS runs a batch: each action on every
    /// frame before the next action, the fragments a `ct` releases joining
    /// the batch for the actions after it; `depth` is the batch's pass.
    /// Credits nothing. For the fragments a `ct` releases with the packet
    /// that released them, and for [`crate::pmd::Pmd::set_ordered`]'s
    /// recirculation.
    #[cold]
    pub fn run_batch(&mut self, tunnel: &TunnelState, m: &Megaflow, depth: u8, at: usize, b: &mut BurstCounters) {
        for (i, a) in m.actions.iter().enumerate().skip(at) {
            let last = outputs(&m.actions[i + 1..]) == 0;
            match a {
                DpAction::Set(s) => {
                    for j in 0..self.batch.len() {
                        if self.batch[j].live {
                            apply_set(self.pool, self.batch[j].frame, *s);
                            self.batch[j].md.forget_conn();
                        }
                    }
                }
                DpAction::Ct(req) => {
                    let mut n_live = 0;
                    for j in 0..self.batch.len() {
                        let mut it = self.batch[j];
                        if !it.live {
                            continue;
                        }
                        let prior = it.md;
                        let pass = Pass { key: &it.key, depth, md: &prior };
                        let mut tracked = self.track(it.frame, req, &mut it.md, &pass);
                        if it.md.host_query {
                            // As in `actions`, while nothing of it has left.
                            let fresh = outputs(&m.actions[..i]) == 0;
                            if fresh && self.host.hold(it.frame, &it.key, depth, &it.md, self.now_ms) {
                                b.host_waits += 1;
                                self.batch[j].live = false;
                                continue;
                            }
                            it.md.host_query = false;
                            it.md.host_checked = true;
                            tracked = self.track(it.frame, req, &mut it.md, &pass);
                        }
                        match tracked {
                            Some(true) => n_live += 1,
                            Some(false) => {
                                self.pool.free(it.frame);
                                it.live = false;
                            }
                            None => {
                                self.pool.free(it.frame);
                                b.drop(DatapathDrop::NoTracker, 1);
                                it.live = false;
                            }
                        }
                        self.batch[j] = it;
                    }
                    if self.now_ms >= self.frag_due {
                        self.release(n_live, b);
                    }
                }
                DpAction::Output(_) | DpAction::TunnelPush { .. } | DpAction::Recirc(_) => {
                    for j in 0..self.batch.len() {
                        let it = self.batch[j];
                        if !it.live {
                            continue;
                        }
                        let g = if last {
                            self.batch[j].live = false;
                            it.frame
                        } else {
                            match self.pool.clone_frame(it.frame) {
                                Some(g) => g,
                                None => {
                                    b.drop(DatapathDrop::NoBuffer, 1);
                                    continue;
                                }
                            }
                        };
                        match *a {
                            DpAction::Output(p) => self.emit(p, g, b),
                            DpAction::TunnelPush { vni, dst, .. } => {
                                let sport = wire::vxlan_src_port(it.hash);
                                if self.push_vxlan(tunnel, g, dst, vni, sport, b) {
                                    self.emit(UPLINK, g, b);
                                }
                            }
                            DpAction::Recirc(id) => {
                                let pass = Pass { key: &it.key, depth, md: &it.md };
                                // Extracted again: a released fragment's
                                // key is of the pass it came in.
                                self.recirculate(g, id, &pass, &it.md, true, b);
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        // Rewrites and ct only: what is left ends here.
        for it in self.batch.drain(..) {
            if it.live {
                self.pool.free(it.frame);
                b.drop(DatapathDrop::Pipeline, 1);
            }
        }
    }

    /// The `i`-th action of `m`, a `ct`, on frame `f` (`md` updated):
    /// whether the frame's actions go on. `fresh`: nothing of the frame has
    /// left yet, so that it may be held for the host's translation and its
    /// pass run again whole. Done when the frame was dropped, held, or went
    /// on with the fragments the `ct` released as a batch.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn ct_step(
        &mut self,
        tunnel: &TunnelState,
        m: &Megaflow,
        f: FrameId,
        hash: u32,
        req: &CtRequest,
        md: &mut CtResult,
        pass: &Pass<'_>,
        i: usize,
        fresh: bool,
        b: &mut BurstCounters,
    ) -> CtStep {
        let Some(goes_on) = self.track(f, req, md, pass) else {
            self.pool.free(f);
            b.drop(DatapathDrop::NoTracker, 1);
            return CtStep::Done;
        };
        if md.host_query {
            // The pass runs again whole once the host's translation is
            // known: only while nothing of the frame has left yet. (Never a
            // fragment: the tracker asks for whole packets alone.)
            if fresh && self.host.hold(f, pass.key, pass.depth, md, self.now_ms) {
                b.host_waits += 1;
                return CtStep::Done;
            }
            md.host_query = false;
            md.host_checked = true;
            let _ = self.track(f, req, md, pass);
        }
        if self.now_ms >= self.frag_due && self.release(goes_on as usize, b) {
            if goes_on {
                let item = Item { frame: f, key: *pass.key, hash, md: *md, live: true };
                self.batch.insert(0, item);
            }
            self.run_batch(tunnel, m, pass.depth, i + 1, b);
            return CtStep::Done;
        }
        if !goes_on {
            // Held for reassembly (copied).
            self.pool.free(f);
            return CtStep::Done;
        }
        // Counted once the verdict is final (a held frame is counted when
        // its pass runs again).
        b.ct[ct_verdict(md.state)] += 1;
        CtStep::Next
    }

    /// The frame through the tracker (`md` updated): `Some(true)` when it
    /// goes on, `Some(false)` when the tracker held it for reassembly (the
    /// caller frees the frame), `None` without a tracker.
    #[inline]
    fn track(&mut self, f: FrameId, req: &CtRequest, md: &mut CtResult, pass: &Pass<'_>) -> Option<bool> {
        let ct = self.ct?;
        if self.pin.is_none() {
            self.pin = Some(ct.pin());
            self.now_ms = crate::clock::now_ms();
            self.frag_due = ct.fragments_due();
        }
        let pin = self.pin.as_ref().expect("pinned above");
        if ct.execute_with(pin, self.pool.data_mut(f), md, req, self.now_ms) == Track::Fragment {
            return Some(self.fragment(ct, f, req, md, pass));
        }
        Some(true)
    }

    /// A fragment to the reassembler, keyed by its pass's recirculation
    /// id: whether it goes on (`+trk+inv`) rather than being held.
    #[cold]
    fn fragment(&mut self, ct: &Conntrack, f: FrameId, req: &CtRequest, md: &mut CtResult, pass: &Pass<'_>) -> bool {
        let pin = self.pin.as_ref().expect("pinned by track");
        let recirc_id = pass.key.get(loc::RECIRC_ID) as u32;
        let goes_on = ct.fragment(pin, self.pool.data(f), md, req, self.now_ms, recirc_id, pass.key);
        self.frag_due = ct.fragments_due();
        goes_on
    }

    /// Fragments due after a `ct` (a list completed, one expired), as many
    /// as a batch holds beside the `n_live` frames going on, copied into
    /// frames of the loop and appended to [`Exec::batch`] (no frame:
    /// dropped, counted). Whether any was released.
    #[cold]
    fn release(&mut self, n_live: usize, b: &mut BurstCounters) -> bool {
        let Some(ct) = self.ct else { return false };
        ct.release_fragments(self.now_ms, CT_BATCH.saturating_sub(n_live), self.frags);
        self.frag_due = ct.fragments_due();
        let released = !self.frags.is_empty();
        for o in self.frags.drain(..) {
            match self.pool.alloc() {
                Some(g) => {
                    self.pool.fill(g, &o.frame);
                    let hash = o.origin.hash();
                    self.batch.push(Item { frame: g, key: o.origin, hash, md: o.md, live: true });
                }
                None => b.drop(DatapathDrop::NoBuffer, 1),
            }
        }
        released
    }

    /// Queues `g` for its next pass under recirculation id `id`.
    #[cold]
    fn recirculate(
        &mut self,
        g: FrameId,
        id: u32,
        pass: &Pass<'_>,
        md: &CtResult,
        rewritten: bool,
        b: &mut BurstCounters,
    ) {
        if !may_recirculate(pass.depth + 1) {
            self.pool.free(g);
            b.drop(DatapathDrop::RecircDepth, 1);
            return;
        }
        if self.recirc.len() >= RECIRC_MAX {
            self.pool.free(g);
            b.drop(DatapathDrop::NoBuffer, 1);
            return;
        }
        // Unless an action or the tracker's NAT rewrote the frame, its
        // fields are the previous key's: the entry is queued with that key
        // and its words patched in place (one copy of the entry's parts
        // into the queue, not a key built aside and the whole entry copied
        // after it).
        let depth = pass.depth + 1;
        if rewritten || md.state & (CS_SRC_NAT | CS_DST_NAT) != 0 {
            let key = next_key(self.pool.data(g), pass.key, id, md);
            self.recirc.push(Recirculating { frame: g, key, depth, md: *md });
        } else {
            self.recirc.push(Recirculating { frame: g, key: *pass.key, depth, md: *md });
            if let Some(e) = self.recirc.last_mut() {
                next_key_unchanged(&mut e.key, id, md);
                debug_assert_eq!(e.key, next_key(self.pool.data(g), pass.key, id, md), "the frame was rewritten");
            }
        }
        b.recirculations += 1;
    }
}
