//! Bursts and output batches: a poll loop receives up to [`BURST`] frames
//! from a port at a time, and what it sends to a port is appended to that
//! port's batch, which goes out in bulk when it holds `2 × BURST` frames
//! and at the end of every iteration ([`Ports::flush`]). [`Ports`] is the
//! loop's table of port instances by OpenFlow port, each with its batch.

use crate::pool::{FrameId, FramePool};
use crate::port::api::Port;

/// Most frames per receive burst.
pub const BURST: usize = 32;
/// Port id of the uplink NIC in a poll loop (OpenFlow never uses port 0).
pub const UPLINK: u32 = 0;
/// Frames an output batch holds before it is sent.
pub const BATCH: usize = 2 * BURST;

/// A port instance with its output batch.
struct Slot {
    ofport: u32,
    port: Box<dyn Port>,
    rx: bool,
    batch: [FrameId; BATCH],
    n: usize,
}

/// A poll loop's ports: instances by OpenFlow port (one sends; a port may
/// have more receive queues), each with its output batch.
#[derive(Default)]
pub struct Ports {
    slots: Vec<Slot>,
    /// OpenFlow port -> slot (u16::MAX: none).
    slot_of: Vec<u16>,
}

impl Ports {
    /// No ports.
    pub fn new() -> Ports {
        Ports::default()
    }

    /// Adds a port instance (replacing the port's earlier one, whose batch
    /// is sent first): `rx` ones are polled; every port can be sent to.
    pub fn add(&mut self, pool: &mut FramePool, ofport: u32, port: Box<dyn Port>, rx: bool) {
        self.remove(pool, ofport);
        let i = ofport as usize;
        if i >= self.slot_of.len() {
            self.slot_of.resize(i + 1, u16::MAX);
        }
        self.slot_of[i] = self.slots.len() as u16;
        self.slots.push(Slot { ofport, port, rx, batch: [0; BATCH], n: 0 });
    }

    /// Adds another receive queue of port `ofport` (sending to the port
    /// keeps going through the instance [`Ports::add`] gave).
    pub fn add_rx_queue(&mut self, ofport: u32, port: Box<dyn Port>) {
        self.slots.push(Slot { ofport, port, rx: true, batch: [0; BATCH], n: 0 });
    }

    /// Removes a port's sending instance after sending its batch; returns it.
    pub fn remove(&mut self, pool: &mut FramePool, ofport: u32) -> Option<Box<dyn Port>> {
        let si = *self.slot_of.get(ofport as usize)?;
        if si == u16::MAX {
            return None;
        }
        let mut s = self.slots.remove(si as usize);
        if s.n > 0 {
            s.port.tx(pool, &s.batch[..s.n]);
        }
        self.slot_of.fill(u16::MAX);
        for (i, s) in self.slots.iter().enumerate() {
            self.slot_of[s.ofport as usize] = i as u16;
        }
        Some(s.port)
    }

    /// Number of instances (receive queues included).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Receives a burst from instance `i` into `ids`: (its OpenFlow port,
    /// frames received); `None` for an instance that is not polled.
    #[inline]
    pub fn rx(&mut self, i: usize, pool: &mut FramePool, ids: &mut [FrameId; BURST]) -> Option<(u32, usize)> {
        let s = self.slots.get_mut(i).filter(|s| s.rx)?;
        Some((s.ofport, s.port.rx(pool, ids)))
    }

    /// Appends frames to port `port`'s batch (one port lookup), sending
    /// the batch whenever it fills. Returns how many frames were dropped
    /// because the loop has no such port (they are freed).
    #[inline]
    pub fn emit_run(&mut self, pool: &mut FramePool, port: u32, out: &[FrameId]) -> usize {
        let si = self.slot_of.get(port as usize).copied().unwrap_or(u16::MAX);
        let Some(s) = self.slots.get_mut(si as usize) else {
            for &f in out {
                pool.free(f);
            }
            return out.len();
        };
        let mut out = out;
        while !out.is_empty() {
            // As much as the batch has room for, in one copy; a full
            // batch is sent.
            let room = BATCH - s.n;
            let (now, rest) = out.split_at(room.min(out.len()));
            s.batch[s.n..s.n + now.len()].copy_from_slice(now);
            s.n += now.len();
            if s.n == BATCH {
                s.port.tx(pool, &s.batch[..s.n]);
                s.n = 0;
            }
            out = rest;
        }
        0
    }

    /// Sends every batch that holds frames.
    pub fn flush(&mut self, pool: &mut FramePool) {
        for s in &mut self.slots {
            if s.n > 0 {
                s.port.tx(pool, &s.batch[..s.n]);
                s.n = 0;
            }
        }
    }

    /// Each instance: (OpenFlow port, its port).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &dyn Port)> {
        self.slots.iter().map(|s| (s.ofport, &*s.port))
    }

    /// Frames waiting in port `ofport`'s batch.
    pub fn batched(&self, ofport: u32) -> usize {
        let si = self.slot_of.get(ofport as usize).copied().unwrap_or(u16::MAX);
        self.slots.get(si as usize).map_or(0, |s| s.n)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::port::api::PortCounters;

    type Sent = Arc<Mutex<Vec<Vec<u8>>>>;

    /// A port that keeps what it is sent, and receives copies of one frame
    /// (`rx`: how many are left).
    struct TestPort {
        sent: Sent,
        rx: usize,
        c: PortCounters,
    }

    impl Port for TestPort {
        fn name(&self) -> &str {
            "test"
        }
        fn rx(&mut self, pool: &mut FramePool, out: &mut [FrameId]) -> usize {
            let n = self.rx.min(out.len());
            for o in &mut out[..n] {
                *o = pool.alloc().unwrap();
                pool.fill(*o, &[0u8; 60]);
            }
            self.rx -= n;
            n
        }
        fn tx(&mut self, pool: &mut FramePool, frames: &[FrameId]) {
            for &f in frames {
                self.sent.lock().unwrap().push(pool.data(f).to_vec());
                self.c.tx_packets += 1;
                pool.free(f);
            }
        }
        fn counters(&self) -> PortCounters {
            self.c
        }
    }

    fn port(rx: usize) -> (Box<TestPort>, Sent) {
        let sent = Arc::new(Mutex::new(Vec::new()));
        (Box::new(TestPort { sent: sent.clone(), rx, c: PortCounters::default() }), sent)
    }

    fn frames(pool: &mut FramePool, n: usize, tag: u8) -> Vec<FrameId> {
        (0..n)
            .map(|i| {
                let f = pool.alloc().unwrap();
                pool.fill(f, &[tag, i as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                f
            })
            .collect()
    }

    #[test]
    fn test_batches_fill_send_whole_and_flush_in_order() {
        let mut pool = FramePool::new(512);
        let mut ports = Ports::new();
        let (cap, seen) = port(0);
        ports.add(&mut pool, 5, cap, false);
        // 100 frames in runs of 30: a batch of 64 leaves as soon as it is
        // full, the other 36 wait for the flush.
        let all = frames(&mut pool, 100, 7);
        for run in all.chunks(30) {
            assert_eq!(ports.emit_run(&mut pool, 5, run), 0);
        }
        assert_eq!(seen.lock().unwrap().len(), BATCH);
        assert_eq!(ports.batched(5), 100 - BATCH);
        ports.flush(&mut pool);
        let got = seen.lock().unwrap().clone();
        assert_eq!(got.len(), 100);
        assert!(got.iter().enumerate().all(|(i, f)| f[1] == i as u8), "out of order");
        assert_eq!(ports.batched(5), 0);
        assert_eq!(pool.n_free(), 512, "frames leaked");
    }

    #[test]
    fn test_unknown_port_frees_and_counts() {
        let mut pool = FramePool::new(64);
        let mut ports = Ports::new();
        ports.add(&mut pool, 3, port(0).0, false);
        let f = frames(&mut pool, 5, 1);
        assert_eq!(ports.emit_run(&mut pool, 9, &f), 5);
        assert_eq!(ports.emit_run(&mut pool, 70_000, &[]), 0);
        assert_eq!(pool.n_free(), 64);
    }

    #[test]
    fn test_replacing_or_removing_a_port_sends_its_batch_first() {
        let mut pool = FramePool::new(64);
        let mut ports = Ports::new();
        let (cap, seen) = port(0);
        ports.add(&mut pool, 4, cap, true);
        let f = frames(&mut pool, 3, 2);
        ports.emit_run(&mut pool, 4, &f);
        assert_eq!(seen.lock().unwrap().len(), 0);
        ports.add(&mut pool, 4, port(0).0, true);
        assert_eq!(seen.lock().unwrap().len(), 3, "the replaced port's batch was not sent");
        assert_eq!(ports.len(), 1);
        let g = frames(&mut pool, 2, 3);
        ports.emit_run(&mut pool, 4, &g);
        let old = ports.remove(&mut pool, 4).unwrap();
        assert_eq!(old.counters().tx_packets, 2);
        assert!(ports.is_empty());
        assert_eq!(pool.n_free(), 64);
    }

    #[test]
    fn test_rx_polls_only_receiving_instances() {
        let mut pool = FramePool::new(64);
        let mut ports = Ports::new();
        ports.add(&mut pool, 4, port(BURST).0, false);
        ports.add_rx_queue(4, port(BURST).0);
        let mut ids = [0; BURST];
        assert_eq!(ports.rx(0, &mut pool, &mut ids), None);
        assert_eq!(ports.rx(1, &mut pool, &mut ids), Some((4, BURST)));
        assert_eq!(ports.rx(2, &mut pool, &mut ids), None);
        for &f in &ids {
            pool.free(f);
        }
    }
}
