//! Packets that wait for the host's translation. On a node, traffic to a
//! service address goes to the host through tun0, where kube-proxy's
//! iptables rules translate it (DNAT to a backend pod) in the kernel's
//! connection tracker, and comes back into the datapath from tun0. The
//! backend's replies never pass the host again, so the datapath's own
//! tracker must know that translation to give the client the service's
//! address (`ct(nat)` on the reply). A `ct` on a packet from the host that
//! would start a connection ([`CtRequest::from_host`]) therefore stops the
//! packet's pass: the loop asks the node (a [`HostQuery`] on a channel;
//! the node looks the connection up in the kernel's tracker and records
//! what it finds with [`Conntrack::adopt`]), holds the frame (bounded), and
//! runs the pass again from its start once the node has answered, or after
//! [`HOLD_MS`] without an answer, with the question marked asked. Only
//! the first packet of a connection waits; nothing is asked without a
//! channel.
//!
//! [`CtRequest::from_host`]: crate::conntrack::CtRequest::from_host
//! [`Conntrack::adopt`]: crate::conntrack::Conntrack::adopt

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::conntrack::{CtResult, CtTuple};
use crate::flow::FlowKey;
use crate::pool::{FrameId, FramePool};
use crate::recirc::{Recirculating, RECIRC_MAX};
use crate::stats::{BurstCounters, DatapathDrop};

/// Frames a loop holds for the host's answer at most (more go on without
/// waiting).
pub const HOLD_MAX: usize = 256;
/// Milliseconds a frame waits for the answer at most.
pub const HOLD_MS: u64 = 200;

/// A loop's question: how did the host translate the connection this
/// packet (from tun0) belongs to?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostQuery {
    /// The asking loop.
    pub pmd: usize,
    /// Its question number (the answer is [`HostWait::answered`] reaching it).
    pub seq: u64,
    /// The packet's tuple, as it reached the datapath.
    pub tuple: CtTuple,
    /// The zone of the `ct`.
    pub zone: u16,
}

/// A held frame: what its pass needs to run again.
struct Waiting {
    seq: u64,
    since_ms: u64,
    again: Recirculating,
}

/// A loop's side of the questions: the channel, its numbering, the frames
/// waiting and how far the node has answered.
pub struct HostWait {
    tx: Option<Sender<HostQuery>>,
    answered: Arc<AtomicU64>,
    pmd: usize,
    seq: u64,
    held: Vec<Waiting>,
}

impl HostWait {
    /// No channel: nothing is asked, nothing waits.
    pub fn new(pmd: usize) -> HostWait {
        HostWait { tx: None, answered: Arc::new(AtomicU64::new(0)), pmd, seq: 0, held: Vec::new() }
    }

    /// Questions go to `tx`; the node stores in `answered` the number of
    /// the last question of this loop it has answered.
    pub fn connect(&mut self, tx: Sender<HostQuery>, answered: Arc<AtomicU64>) {
        self.tx = Some(tx);
        self.answered = answered;
        self.held.reserve_exact(HOLD_MAX);
    }

    /// Whether frames are waiting.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Asks about the packet in `f` (its pass: `key`, `depth`; `md` what the
    /// tracker said, with [`CtResult::host_query`] set) and holds it; false
    /// when it cannot (no channel, the hold or the channel full): the
    /// caller goes on without waiting.
    pub fn hold(&mut self, f: FrameId, key: &FlowKey, depth: u8, md: &CtResult, now_ms: u64) -> bool {
        let (Some(tx), Some(tuple)) = (&self.tx, md.orig) else { return false };
        if self.held.len() >= HOLD_MAX {
            return false;
        }
        let q = HostQuery { pmd: self.pmd, seq: self.seq + 1, tuple, zone: md.zone };
        if tx.try_send(q).is_err() {
            return false;
        }
        self.seq += 1;
        let md = CtResult { host_query: false, host_checked: true, ..*md };
        let again = Recirculating { frame: f, key: *key, depth, md };
        self.held.push(Waiting { seq: self.seq, since_ms: now_ms, again });
        true
    }

    /// Moves the frames whose question was answered, or that waited too
    /// long, to `recirc` to run their pass again; returns how many timed
    /// out.
    pub fn release(
        &mut self,
        now_ms: u64,
        recirc: &mut Vec<Recirculating>,
        pool: &mut FramePool,
        b: &mut BurstCounters,
    ) -> usize {
        let answered = self.answered.load(Ordering::Acquire);
        let mut late = 0;
        let mut i = 0;
        while i < self.held.len() {
            let w = &self.held[i];
            let timed_out = now_ms.saturating_sub(w.since_ms) >= HOLD_MS;
            if w.seq > answered && !timed_out {
                i += 1;
                continue;
            }
            late += (w.seq > answered) as usize;
            let w = self.held.swap_remove(i);
            if recirc.len() < RECIRC_MAX {
                recirc.push(w.again);
            } else {
                pool.free(w.again.frame);
                b.drop(DatapathDrop::NoBuffer, 1);
            }
        }
        late
    }

    /// Frees every held frame (the loop is stopping or its ports changed).
    pub fn clear(&mut self, pool: &mut FramePool) {
        for w in self.held.drain(..) {
            pool.free(w.again.frame);
        }
    }
}
