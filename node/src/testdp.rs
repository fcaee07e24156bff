//! An in-memory datapath behind a [`Control`], for tests of the control
//! surfaces (`ovs-appctl`'s commands, the control socket): the node's
//! [`Datapath`] (the slow path on its thread over the given flows, the
//! tracker with its sweeper) with one poll loop on memory ports (each
//! port's sent frames kept, frames injected at will). No NIC, no root. Nothing answers the main thread's
//! requests ([`Control::node_calls`]): a test of those builds its own.
//!
//! Dropping it stops both threads.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use fastpath::port::memory::CapturePort;
use slowpath::ofproto::Ofproto;

use crate::control::{Control, NodeCall, OfPort};
use crate::datapath::{Config, Datapath};

/// A memory port's handles: its OpenFlow number, the frames it sent,
/// where to put frames it receives.
pub type MemPortHandles = (u32, Receiver<Vec<u8>>, Sender<Vec<u8>>);

/// The datapath and the handles a test drives it by.
pub struct TestDatapath {
    /// What the control surfaces hold.
    pub control: Control,
    /// Per port (OpenFlow number): frames it sent, frames to receive.
    pub ports: Vec<MemPortHandles>,
    dp: Option<Datapath>,
    _node_calls: Receiver<NodeCall>,
}

impl TestDatapath {
    /// The datapath ([`crate::datapath`]) over `flows` (ovs-ofctl syntax,
    /// one a line), with a memory port per `ports` entry (OpenFlow number,
    /// name); its one loop on core `core` (unpinned where there is none).
    ///
    /// # Errors
    /// A flow that does not parse or that the tables refuse; a thread that
    /// cannot be made.
    pub fn start(flows: &str, ports: &[(u32, &str)], core: usize) -> Result<TestDatapath, String> {
        let mut specs = Vec::new();
        for l in flows.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let s = config::ofctl::parse_flow_line(l, config::ofctl::LineKind::Add).map_err(|e| e.to_string())?;
            specs.push(s);
        }
        let of = Ofproto::with_flows(&specs).map_err(|e| e.to_string())?;
        let cfg = Config {
            cores: vec![core],
            ct: Default::default(),
            maxsleep: Duration::from_micros(200),
            tunnel: Default::default(),
            host_nat: None,
        };
        let mut dp = Datapath::new(cfg, of);
        let mut handles = Vec::new();
        let mut of_ports = Vec::new();
        for &(n, name) in ports {
            let (p, sent, inject) = CapturePort::new(name);
            dp.pmds_mut()[0].add_port(n, Box::new(p), true);
            handles.push((n, sent, inject));
            of_ports.push(OfPort { ofport: n, name: name.into(), ifname: Some(name.into()), up: true });
        }
        dp.start()?;
        let (node_tx, node_rx) = crossbeam_channel::unbounded();
        let control = dp.control("test", "node test".into(), 1, node_tx, Arc::new(Mutex::new(of_ports)));
        Ok(TestDatapath { control, ports: handles, dp: Some(dp), _node_calls: node_rx })
    }

    /// Receives `frame` on port `ofport` and waits (up to 5 s) until the
    /// loop has counted it.
    ///
    /// # Panics
    /// No such port, or the loop did not take the frame in time.
    pub fn receive(&self, ofport: u32, frame: Vec<u8>) {
        let before = self.control.stats[0].1.packets.load(Ordering::Relaxed);
        let (_, _, inject) = self.ports.iter().find(|p| p.0 == ofport).expect("no such port");
        inject.send(frame).expect("the loop is gone");
        let end = Instant::now() + Duration::from_secs(5);
        while self.control.stats[0].1.packets.load(Ordering::Relaxed) == before {
            assert!(Instant::now() < end, "the loop did not receive the frame");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The next frame port `ofport` sent (waiting up to 5 s), if any.
    pub fn sent(&self, ofport: u32) -> Option<Vec<u8>> {
        let (_, sent, _) = self.ports.iter().find(|p| p.0 == ofport)?;
        sent.recv_timeout(Duration::from_secs(5)).ok()
    }
}

impl Drop for TestDatapath {
    fn drop(&mut self) {
        if let Some(dp) = self.dp.take() {
            let _ = dp.stop();
        }
    }
}
