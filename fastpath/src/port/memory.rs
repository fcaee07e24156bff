//! Ports in memory: [`MemPort`] replays a ring of prebuilt frames
//! (copying each into a pool frame, the work DPDK's pcap vdev does with
//! infinite_rx), [`SinkPort`] counts and frees what it is sent,
//! [`CapturePort`] hands tests what it is sent through a channel, and
//! [`SharedPort`] lets several poll loops share one port behind a lock.

use super::api::{rx_from, Port, PortCounters};
use crate::pool::{FrameId, FramePool};

/// Counts frames as sent and returns them to the pool.
#[inline]
fn count_and_free(c: &mut PortCounters, pool: &mut FramePool, frames: &[FrameId]) {
    c.tx_bytes += pool.free_all(frames);
    c.tx_packets += frames.len() as u64;
}

/// Replays prebuilt frames forever (or `limit` frames).
pub struct MemPort {
    name: String,
    frames: Vec<Vec<u8>>,
    next: usize,
    /// Frames left to send (u64::MAX: forever).
    pub limit: u64,
    c: PortCounters,
}

impl MemPort {
    /// A port replaying `frames` in order, cyclically. A ring shorter than
    /// a burst is kept repeated up to one (the same sequence), so that a
    /// burst is copied in one stretch, not one frame per pass.
    pub fn new(name: &str, frames: Vec<Vec<u8>>) -> MemPort {
        let n = frames.len();
        let mut ring = frames;
        while n > 0 && ring.len() < crate::batch::BURST {
            ring.extend_from_within(..n);
        }
        MemPort { name: name.into(), frames: ring, next: 0, limit: u64::MAX, c: PortCounters::default() }
    }
}

impl Port for MemPort {
    fn name(&self) -> &str {
        &self.name
    }
    #[inline]
    fn rx(&mut self, pool: &mut FramePool, out: &mut [FrameId]) -> usize {
        if self.frames.is_empty() {
            return 0;
        }
        let want = out.len().min(self.limit.min(usize::MAX as u64) as usize);
        let (n, bytes) = pool.alloc_fill_cyclic(&mut out[..want], &self.frames, &mut self.next);
        self.c.rx_bytes += bytes;
        self.c.rx_packets += n as u64;
        if self.limit != u64::MAX {
            self.limit -= n as u64;
        }
        n
    }
    fn tx(&mut self, pool: &mut FramePool, frames: &[FrameId]) {
        count_and_free(&mut self.c, pool, frames);
    }
    fn counters(&self) -> PortCounters {
        self.c
    }
}

/// Counts and frees what it is sent; receives nothing.
pub struct SinkPort {
    name: String,
    c: PortCounters,
}

impl SinkPort {
    /// A sink.
    pub fn new(name: &str) -> SinkPort {
        SinkPort { name: name.into(), c: PortCounters::default() }
    }
}

impl Port for SinkPort {
    fn name(&self) -> &str {
        &self.name
    }
    fn rx(&mut self, _: &mut FramePool, _: &mut [FrameId]) -> usize {
        0
    }
    #[inline]
    fn tx(&mut self, pool: &mut FramePool, frames: &[FrameId]) {
        count_and_free(&mut self.c, pool, frames);
    }
    fn counters(&self) -> PortCounters {
        self.c
    }
}

/// Keeps copies of what it is sent (tests), shared through a channel.
pub struct CapturePort {
    name: String,
    out: crossbeam_channel::Sender<Vec<u8>>,
    inq: crossbeam_channel::Receiver<Vec<u8>>,
    c: PortCounters,
}

impl CapturePort {
    /// A port whose sent frames arrive on the returned receiver and which
    /// receives frames pushed into the returned sender.
    pub fn new(name: &str) -> (CapturePort, crossbeam_channel::Receiver<Vec<u8>>, crossbeam_channel::Sender<Vec<u8>>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (itx, irx) = crossbeam_channel::unbounded();
        (CapturePort { name: name.into(), out: tx, inq: irx, c: PortCounters::default() }, rx, itx)
    }
}

impl Port for CapturePort {
    fn name(&self) -> &str {
        &self.name
    }
    fn rx(&mut self, pool: &mut FramePool, out: &mut [FrameId]) -> usize {
        let inq = &self.inq;
        rx_from(pool, out, &mut self.c, || inq.try_recv().ok())
    }
    fn tx(&mut self, pool: &mut FramePool, frames: &[FrameId]) {
        for &f in frames {
            let _ = self.out.send(pool.data(f).to_vec());
            self.c.tx_packets += 1;
            self.c.tx_bytes += pool.len(f) as u64;
            pool.free(f);
        }
    }
    fn counters(&self) -> PortCounters {
        self.c
    }
}

/// A port used by several poll loops: one loop receives from it, every
/// loop may send to it. The lock is taken once per burst or output batch,
/// never per packet (as OVS's per-port TX lock when a port has fewer TX
/// queues than there are loops); uncontended with one loop.
#[derive(Clone)]
pub struct SharedPort {
    name: String,
    inner: std::sync::Arc<std::sync::Mutex<Box<dyn Port>>>,
}

impl SharedPort {
    /// Wraps a port.
    pub fn new(port: Box<dyn Port>) -> SharedPort {
        SharedPort { name: port.name().to_string(), inner: std::sync::Arc::new(std::sync::Mutex::new(port)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Box<dyn Port>> {
        // A loop that panicked holding the lock left the port usable: the
        // ring state is only changed by completed calls.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Port for SharedPort {
    fn name(&self) -> &str {
        &self.name
    }
    #[inline]
    fn rx(&mut self, pool: &mut FramePool, out: &mut [FrameId]) -> usize {
        self.lock().rx(pool, out)
    }
    #[inline]
    fn tx(&mut self, pool: &mut FramePool, frames: &[FrameId]) {
        self.lock().tx(pool, frames)
    }
    fn counters(&self) -> PortCounters {
        self.lock().counters()
    }
    fn detail(&self) -> String {
        self.lock().detail()
    }
    fn syscall_ns(&self) -> u64 {
        self.lock().syscall_ns()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_mem_port_replays_and_sink_frees() {
        let mut pool = FramePool::new(64);
        let mut p = MemPort::new("m", vec![vec![1; 60], vec![2; 70]]);
        let mut s = SinkPort::new("s");
        let mut ids = [0; 32];
        for _ in 0..10 {
            let n = p.rx(&mut pool, &mut ids);
            assert_eq!(n, 32);
            s.tx(&mut pool, &ids[..n]);
        }
        assert_eq!(pool.n_free(), 64);
        assert_eq!(s.counters().tx_packets, 320);
        assert_eq!(s.counters().tx_bytes, 160 * 60 + 160 * 70);

        // A ring shorter than a burst (kept repeated inside) replays in
        // order across bursts, whatever its length.
        let mut p = MemPort::new("m", (0..3).map(|k| vec![k as u8; 60 + k]).collect());
        let mut seen = Vec::new();
        for want in [32, 7, 32, 5] {
            let n = p.rx(&mut pool, &mut ids[..want]);
            seen.extend(ids[..n].iter().map(|&id| pool.data(id)[0]));
            s.tx(&mut pool, &ids[..n]);
        }
        assert_eq!(seen, (0..76).map(|i| (i % 3) as u8).collect::<Vec<_>>());
    }
}
