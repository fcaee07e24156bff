//! Ports: where frames come from and go to. A poll loop owns its port
//! instances (one per port and core, as AF_XDP queues are per core).
//!
//! Here: a memory port that replays a ring of prebuilt frames (copying each
//! into a pool frame, the work DPDK's pcap vdev does with infinite_rx), a
//! sink that counts and frees, a capture port for tests, and pcap files.

use std::io::{Read, Write};

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

/// A port backed by pcap data: receives the frames of a capture once, in
/// order, and records what it is sent (for [`write_pcap`]).
pub struct PcapPort {
    name: String,
    input: std::collections::VecDeque<Vec<u8>>,
    /// Frames sent to the port, in order.
    pub output: Vec<Vec<u8>>,
    c: PortCounters,
}

impl PcapPort {
    /// A port that will receive `frames` (e.g. from [`read_pcap`]).
    pub fn new(name: &str, frames: Vec<Vec<u8>>) -> PcapPort {
        PcapPort { name: name.into(), input: frames.into(), output: Vec::new(), c: PortCounters::default() }
    }
}

impl Port for PcapPort {
    fn name(&self) -> &str {
        &self.name
    }
    fn rx(&mut self, pool: &mut FramePool, out: &mut [FrameId]) -> usize {
        let input = &mut self.input;
        rx_from(pool, out, &mut self.c, || input.pop_front())
    }
    fn tx(&mut self, pool: &mut FramePool, frames: &[FrameId]) {
        for &f in frames {
            self.output.push(pool.data(f).to_vec());
            self.c.tx_packets += 1;
            self.c.tx_bytes += pool.len(f) as u64;
            pool.free(f);
        }
    }
    fn counters(&self) -> PortCounters {
        self.c
    }
}

/// Reads the frames of a pcap file (microsecond or nanosecond, Ethernet).
///
/// # Errors
/// I/O errors and files that are not Ethernet pcap.
pub fn read_pcap(mut r: impl Read) -> std::io::Result<Vec<Vec<u8>>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut h = [0u8; 24];
    r.read_exact(&mut h)?;
    let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let le = match magic {
        0xa1b2c3d4 | 0xa1b23c4d => true,
        0xd4c3b2a1 | 0x4d3cb2a1 => false,
        _ => return Err(bad("not a pcap file")),
    };
    let u32_at = |b: &[u8], i: usize| {
        let a = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    if u32_at(&h, 20) != 1 {
        return Err(bad("pcap link type is not Ethernet"));
    }
    let mut out = Vec::new();
    let mut rec = [0u8; 16];
    loop {
        match r.read_exact(&mut rec) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let n = u32_at(&rec, 8) as usize;
        if n > 262_144 {
            return Err(bad("pcap record too large"));
        }
        let mut f = vec![0; n];
        r.read_exact(&mut f)?;
        out.push(f);
    }
    Ok(out)
}

/// Writes frames as a pcap file (microsecond timestamps, all zero).
///
/// # Errors
/// I/O errors.
pub fn write_pcap(mut w: impl Write, frames: &[Vec<u8>]) -> std::io::Result<()> {
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&65535u32.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    w.write_all(&h)?;
    for f in frames {
        let mut r = [0u8; 16];
        r[8..12].copy_from_slice(&(f.len() as u32).to_le_bytes());
        r[12..16].copy_from_slice(&(f.len() as u32).to_le_bytes());
        w.write_all(&r)?;
        w.write_all(f)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_pcap_roundtrip() {
        let frames = vec![vec![1u8; 60], vec![2u8; 1514]];
        let mut buf = Vec::new();
        write_pcap(&mut buf, &frames).unwrap();
        assert_eq!(read_pcap(&buf[..]).unwrap(), frames);
        assert!(read_pcap(&buf[..10]).is_err());
    }

    #[test]
    fn test_pcap_port() {
        let mut buf = Vec::new();
        write_pcap(&mut buf, &[vec![7u8; 60], vec![8u8; 64]]).unwrap();
        let mut p = PcapPort::new("pcap", read_pcap(&buf[..]).unwrap());
        let mut pool = FramePool::new(8);
        let mut ids = [0; 32];
        assert_eq!(p.rx(&mut pool, &mut ids), 2);
        p.tx(&mut pool, &ids[..2]);
        assert_eq!(p.rx(&mut pool, &mut ids), 0);
        assert_eq!(p.output, vec![vec![7u8; 60], vec![8u8; 64]]);
        assert_eq!(pool.n_free(), 8);
    }

    #[test]
    fn test_empty_pool_keeps_the_frame_at_its_source() {
        let mut p = PcapPort::new("pcap", vec![vec![1u8; 60], vec![2u8; 60]]);
        let mut pool = FramePool::new(1);
        let mut ids = [0; 4];
        assert_eq!(p.rx(&mut pool, &mut ids), 1);
        let first = ids[0];
        assert_eq!(p.rx(&mut pool, &mut ids), 0, "no buffer: nothing received");
        pool.free(first);
        assert_eq!(p.rx(&mut pool, &mut ids), 1);
        assert_eq!(pool.data(ids[0]), &[2u8; 60][..], "the second frame was not lost");
    }

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
