//! What a port is: the [`Port`] trait a poll loop drives (receive into
//! and send from pool frames), its [`PortCounters`], and [`rx_from`], the
//! receive loop of ports whose frames come from a queue or a file. A poll
//! loop owns its port instances (one per port and core, as AF_XDP queues
//! are per core).

use crate::pool::{FrameId, FramePool};

/// A port instance owned by one poll loop.
pub trait Port: Send {
    /// Name for stats.
    fn name(&self) -> &str;
    /// Receives up to `out.len()` frames into pool frames; returns how many.
    fn rx(&mut self, pool: &mut FramePool, out: &mut [FrameId]) -> usize;
    /// Sends frames; the port owns them afterwards (and frees them).
    fn tx(&mut self, pool: &mut FramePool, frames: &[FrameId]);
    /// (rx packets, tx packets, tx bytes, drops).
    fn counters(&self) -> PortCounters;
    /// Port-specific counters as `name=value` pairs (syscalls, kernel
    /// ring drops), for stats output.
    fn detail(&self) -> String {
        String::new()
    }
    /// Nanoseconds spent in system calls (wakeups), measured per call.
    fn syscall_ns(&self) -> u64 {
        0
    }
}

/// Port counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}

/// Receives frames produced by `next` into pool frames: a buffer is taken
/// before a frame, so an empty pool leaves the frame with its source.
pub fn rx_from(
    pool: &mut FramePool,
    out: &mut [FrameId],
    c: &mut PortCounters,
    mut next: impl FnMut() -> Option<Vec<u8>>,
) -> usize {
    let mut n = 0;
    while n < out.len() {
        let Some(id) = pool.alloc() else { break };
        let Some(bytes) = next() else {
            pool.free(id);
            break;
        };
        pool.fill(id, &bytes);
        c.rx_packets += 1;
        c.rx_bytes += bytes.len() as u64;
        out[n] = id;
        n += 1;
    }
    n
}
