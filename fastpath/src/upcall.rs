//! The upcall hand-off: a frame that found no megaflow sends its key to the
//! slow path over a bounded channel and waits, with its key and hash, in
//! the loop's pending queue until the slow path answers with the megaflow
//! (the re-injection). Misses of one flow are coalesced into one upcall;
//! the loop never blocks: a full channel or a full pending queue loses the
//! frame (counted), and a frame that waits too long is dropped as timed out.

use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};

use crate::conntrack::types::CtResult;
use crate::dpcls::Megaflow;
use crate::flow::FlowKey;
use crate::pool::{FrameId, FramePool};
use crate::stats::{BurstCounters, DatapathDrop};

/// Frames a loop keeps waiting for the slow path.
pub const PENDING_MAX: usize = 256;
/// Iterations a pending frame may wait before it is dropped.
pub const PENDING_TIMEOUT: u64 = 1 << 20;

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

/// The slow path's answer to an upcall: the megaflow to use. The loop
/// matches its waiting frames against the megaflow itself, so the answer
/// does not carry the key back (one pointer a reply, not a key's 13 words).
#[derive(Clone, Debug)]
pub struct UpcallReply {
    /// The upcalled key's megaflow (installed, or only for these frames
    /// when the flow limit is reached).
    pub flow: Arc<Megaflow>,
}

/// A frame waiting for the slow path.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    frame: FrameId,
    key: FlowKey,
    hash: u32,
    since: u64,
    /// Passes it had taken (0: its first pass missed).
    depth: u8,
    /// What the tracker said of it on earlier passes.
    md: CtResult,
}

/// A frame the slow path's answer releases: the frame, its key and hash,
/// the passes it had taken and its tracker verdict.
pub type Released<'a> = (FrameId, &'a FlowKey, u32, u8, &'a CtResult);

/// The frames a loop keeps waiting for the slow path's answers.
#[derive(Debug)]
pub struct Pending {
    q: Vec<Waiting>,
}

impl Default for Pending {
    fn default() -> Self {
        Pending { q: Vec::with_capacity(PENDING_MAX) }
    }
}

impl Pending {
    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.q.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// A miss of frame `f` (key `key`, hash `hash`) of loop `pmd` at
    /// `iteration`: upcalled unless a frame of the same key already waits,
    /// then kept waiting; lost (freed and counted) when the queue or the
    /// channel is full. A first pass's miss; see [`Pending::miss_again`].
    #[cold]
    #[allow(clippy::too_many_arguments)]
    pub fn miss(
        &mut self,
        pool: &mut FramePool,
        upcall_tx: &Sender<Upcall>,
        pmd: usize,
        iteration: u64,
        f: FrameId,
        key: FlowKey,
        hash: u32,
        b: &mut BurstCounters,
    ) {
        self.miss_again(pool, upcall_tx, pmd, iteration, (f, key, hash, 0, CtResult::default()), b);
    }

    /// [`Pending::miss`] of a recirculated packet: `r` is its frame, key,
    /// hash, the passes it had taken and its tracker verdict.
    #[cold]
    pub fn miss_again(
        &mut self,
        pool: &mut FramePool,
        upcall_tx: &Sender<Upcall>,
        pmd: usize,
        iteration: u64,
        r: (FrameId, FlowKey, u32, u8, CtResult),
        b: &mut BurstCounters,
    ) {
        let (f, key, hash, depth, md) = r;
        b.misses += 1;
        if self.q.len() >= PENDING_MAX {
            pool.free(f);
            b.lost += 1;
            b.drop(DatapathDrop::UpcallLost, 1);
            return;
        }
        let coalesced = self.q.iter().any(|w| w.hash == hash && w.key == key);
        if !coalesced {
            match upcall_tx.try_send(Upcall { key, pmd, len: pool.len(f) as u16 }) {
                Ok(()) => b.upcalls += 1,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    pool.free(f);
                    b.lost += 1;
                    b.drop(DatapathDrop::UpcallLost, 1);
                    return;
                }
            }
        }
        self.q.push(Waiting { frame: f, key, hash, since: iteration, depth, md });
    }

    /// Takes every waiting frame that `flow` matches, calling `run` with
    /// each; returns how many.
    pub fn answer(&mut self, flow: &Megaflow, mut run: impl FnMut(Released<'_>)) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < self.q.len() {
            if flow.matches(&self.q[i].key) {
                let w = self.q.swap_remove(i);
                run((w.frame, &w.key, w.hash, w.depth, &w.md));
                n += 1;
            } else {
                i += 1;
            }
        }
        n
    }

    /// Drops (frees and counts) the frames that waited more than
    /// [`PENDING_TIMEOUT`] iterations by `now`.
    pub fn expire(&mut self, pool: &mut FramePool, now: u64, b: &mut BurstCounters) {
        let mut i = 0;
        while i < self.q.len() {
            if now - self.q[i].since > PENDING_TIMEOUT {
                let w = self.q.swap_remove(i);
                pool.free(w.frame);
                b.drop(DatapathDrop::UpcallTimeout, 1);
            } else {
                i += 1;
            }
        }
    }

    /// Frees every waiting frame (shutdown).
    pub fn drain(&mut self, pool: &mut FramePool) {
        for w in self.q.drain(..) {
            pool.free(w.frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::DpAction;

    fn key(port: u16) -> FlowKey {
        let mut f = crate::wire::build_frame(2, 3, 0x0a80_0003, 0x0a80_0004, 17, port, 53, 64);
        f.truncate(64);
        let mut k = FlowKey::default();
        let _ = k.extract_hashed(&f, 4);
        k
    }

    fn frame(pool: &mut FramePool) -> FrameId {
        let f = pool.alloc().unwrap();
        pool.fill(f, &[0u8; 60]);
        f
    }

    #[test]
    fn test_full_channel_loses_the_frame_and_counts_it() {
        let mut pool = FramePool::new(16);
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut p = Pending::default();
        let mut b = BurstCounters::default();
        let (k1, k2) = (key(1000), key(1001));
        let f1 = frame(&mut pool);
        p.miss(&mut pool, &tx, 0, 1, f1, k1, k1.hash(), &mut b);
        // The channel holds one upcall: a second key finds it full.
        let f2 = frame(&mut pool);
        p.miss(&mut pool, &tx, 0, 1, f2, k2, k2.hash(), &mut b);
        assert_eq!((b.misses, b.upcalls, b.lost), (2, 1, 1));
        assert_eq!(b.drops[DatapathDrop::UpcallLost as usize], 1);
        assert_eq!(p.len(), 1, "the lost frame must not wait");
        assert_eq!(pool.n_free(), 15, "the lost frame must be freed");
        assert_eq!(rx.try_recv().unwrap().key, k1);
        // A disconnected slow path loses frames the same way.
        drop(rx);
        let f3 = frame(&mut pool);
        p.miss(&mut pool, &tx, 0, 2, f3, k2, k2.hash(), &mut b);
        assert_eq!(b.lost, 2);
        p.drain(&mut pool);
        assert_eq!(pool.n_free(), 16);
    }

    #[test]
    fn test_misses_of_one_flow_coalesce_and_one_answer_takes_them() {
        let mut pool = FramePool::new(16);
        let (tx, rx) = crossbeam_channel::bounded(8);
        let mut p = Pending::default();
        let mut b = BurstCounters::default();
        let k = key(2000);
        let other = key(2001);
        for _ in 0..3 {
            let f = frame(&mut pool);
            p.miss(&mut pool, &tx, 1, 5, f, k, k.hash(), &mut b);
        }
        let f = frame(&mut pool);
        p.miss(&mut pool, &tx, 1, 5, f, other, other.hash(), &mut b);
        assert_eq!((b.misses, b.upcalls, b.lost), (4, 2, 0));
        assert_eq!(rx.try_iter().map(|u| (u.pmd, u.key)).collect::<Vec<_>>(), vec![(1, k), (1, other)]);
        // The megaflow for `k` (exact on every field) takes its three.
        let mf = Megaflow::new(k, FlowKey { w: [u64::MAX; crate::flow::KEY_WORDS] }, [DpAction::Output(5)], 1);
        let mut got = Vec::new();
        assert_eq!(p.answer(&mf, |(f, key, h, _, _)| got.push((f, *key, h))), 3);
        assert!(got.iter().all(|(_, key, h)| *key == k && *h == k.hash()));
        assert_eq!(p.len(), 1);
        for (f, ..) in got {
            pool.free(f);
        }
        p.drain(&mut pool);
        assert_eq!(pool.n_free(), 16);
    }

    #[test]
    fn test_full_pending_queue_loses_and_old_frames_time_out() {
        let mut pool = FramePool::new(PENDING_MAX + 8);
        let (tx, _rx) = crossbeam_channel::bounded(PENDING_MAX + 8);
        let mut p = Pending::default();
        let mut b = BurstCounters::default();
        for i in 0..PENDING_MAX as u16 + 1 {
            let k = key(i);
            let f = frame(&mut pool);
            p.miss(&mut pool, &tx, 0, u64::from(i % 2) * 100, f, k, k.hash(), &mut b);
        }
        assert_eq!(p.len(), PENDING_MAX);
        assert_eq!((b.lost, b.drops[DatapathDrop::UpcallLost as usize]), (1, 1));
        // Those that came at iteration 0 are too old one iteration past
        // the timeout; those from iteration 100 are not yet.
        p.expire(&mut pool, PENDING_TIMEOUT + 1, &mut b);
        assert_eq!(b.drops[DatapathDrop::UpcallTimeout as usize], PENDING_MAX as u64 / 2);
        assert_eq!(p.len(), PENDING_MAX / 2);
        p.expire(&mut pool, PENDING_TIMEOUT + 101, &mut b);
        assert!(p.is_empty());
        assert_eq!(pool.n_free(), PENDING_MAX + 8);
    }
}
