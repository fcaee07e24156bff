//! Running a megaflow's datapath actions on frames: header rewrites
//! (checksums updated), VXLAN push with a per-loop template cache keyed by
//! (VTEP, VNI), outputs appended to the ports' batches. Consecutive frames
//! of one megaflow run as a group (statistics once, a plain output
//! appended at once). A VXLAN frame whose next hop is not resolved yet is
//! held (bounded, per VTEP) until the tunnel state has its MAC. `ct` runs
//! the frame through the node's tracker (pinned once per burst, the coarse
//! clock read then); `recirc` queues it (or a copy, when more actions
//! follow) for its next pass with its new key.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::actions::{DpAction, SetField};
use crate::batch::{Ports, BURST, UPLINK};
use crate::conntrack::tracker::{Conntrack, CtPin};
use crate::conntrack::types::{CtRequest, CtResult};
use crate::dpcls::Megaflow;
use crate::flow::FlowKey;
use crate::hostnat::HostWait;
use crate::pool::{FrameId, FramePool};
use crate::recirc::{may_recirculate, next_key, Recirculating, RECIRC_MAX};
use crate::shared::TunnelState;
use crate::stats::{BurstCounters, DatapathDrop, PmdStats};
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
    /// Packets queued for their next pass.
    pub recirc: &'a mut Vec<Recirculating>,
    /// Packets waiting for the host's translation.
    pub host: &'a mut HostWait,
}

/// What a frame brings to its actions besides its bytes: its key, the
/// passes it has taken and what the tracker said of it so far.
#[derive(Clone, Copy, Debug)]
pub struct Pass<'k> {
    /// The key it was looked up with.
    pub key: &'k FlowKey,
    /// Passes taken before this one.
    pub depth: u8,
    /// The tracker's verdict from an earlier pass (default: none yet).
    pub md: CtResult,
}

impl<'k> Pass<'k> {
    /// A packet's first pass.
    #[inline]
    pub fn first(key: &'k FlowKey) -> Pass<'k> {
        Pass { key, depth: 0, md: CtResult::default() }
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

    /// Runs a megaflow's actions on a frame (consumed), no counters.
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
        let mut md = pass.md;
        let mut left = m.n_outputs;
        for a in &m.actions {
            let (port, tun) = match a {
                DpAction::Set(s) => {
                    apply_set(self.pool, f, *s);
                    // A rewritten packet is looked up again by a later ct.
                    md.forget_conn();
                    continue;
                }
                DpAction::Ct(req) => {
                    if !self.track(f, req, &mut md) {
                        self.pool.free(f);
                        b.drop(DatapathDrop::NoTracker, 1);
                        return;
                    }
                    if md.host_query {
                        // The pass runs again whole once the host's
                        // translation is known: only while nothing of the
                        // frame has left yet.
                        if left == m.n_outputs && self.host.hold(f, pass.key, pass.depth, &md, self.now_ms) {
                            b.host_waits += 1;
                            return;
                        }
                        md.host_query = false;
                        md.host_checked = true;
                        self.track(f, req, &mut md);
                    }
                    continue;
                }
                DpAction::Output(p) => (*p, None),
                DpAction::TunnelPush { vni, dst, .. } => (UPLINK, Some((*vni, *dst))),
                DpAction::Recirc(id) => {
                    left -= 1;
                    let g = if left == 0 { Some(f) } else { self.pool.clone_frame(f) };
                    match g {
                        Some(g) => self.recirculate(g, *id, &pass, &md, b),
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

    /// The frame through the tracker (`md` updated); false without one.
    #[inline]
    fn track(&mut self, f: FrameId, req: &CtRequest, md: &mut CtResult) -> bool {
        let Some(ct) = self.ct else { return false };
        if self.pin.is_none() {
            self.pin = Some(ct.pin());
            self.now_ms = crate::clock::now_ms();
        }
        let pin = self.pin.as_ref().expect("pinned above");
        ct.execute_with(pin, self.pool.data_mut(f), md, req, self.now_ms);
        true
    }

    /// Queues `g` for its next pass under recirculation id `id`.
    #[cold]
    fn recirculate(&mut self, g: FrameId, id: u32, pass: &Pass<'_>, md: &CtResult, b: &mut BurstCounters) {
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
        let key = next_key(self.pool.data(g), pass.key, id, md);
        let hash = key.hash();
        self.recirc.push(Recirculating { frame: g, key, hash, depth: pass.depth + 1, md: *md });
        b.recirculations += 1;
    }
}
