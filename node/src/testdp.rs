//! An in-memory datapath behind a [`Control`], for tests of the control
//! surfaces (`ovs-appctl`'s commands, the control socket): the slow path
//! on its thread over the given flows, one poll loop on memory ports (each
//! port's sent frames kept, frames injected at will), the node's
//! connection tracker. No NIC, no root. Nothing answers the main thread's
//! requests ([`Control::node_calls`]): a test of those builds its own.
//!
//! Dropping it stops both threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use fastpath::conntrack::{Conntrack, CtConfig};
use fastpath::pmd::Pmd;
use fastpath::port::memory::CapturePort;
use fastpath::shared::Shared;
use slowpath::ofproto::Ofproto;
use slowpath::upcall::SlowPath;

use crate::control::{Control, NodeCall, OfPort};

/// A memory port's handles: its OpenFlow number, the frames it sent,
/// where to put frames it receives.
pub type MemPortHandles = (u32, Receiver<Vec<u8>>, Sender<Vec<u8>>);

/// The datapath and the handles a test drives it by.
pub struct TestDatapath {
    /// What the control surfaces hold.
    pub control: Control,
    /// Per port (OpenFlow number): frames it sent, frames to receive.
    pub ports: Vec<MemPortHandles>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    _node_calls: Receiver<NodeCall>,
}

impl TestDatapath {
    /// The datapath over `flows` (ovs-ofctl syntax, one a line), with a
    /// memory port per `ports` entry (OpenFlow number, name); the loop
    /// runs on "core" `core`.
    ///
    /// # Errors
    /// A flow that does not parse or that the tables refuse.
    pub fn start(flows: &str, ports: &[(u32, &str)], core: usize) -> Result<TestDatapath, String> {
        let mut specs = Vec::new();
        for l in flows.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let s = config::ofctl::parse_flow_line(l, config::ofctl::LineKind::Add).map_err(|e| e.to_string())?;
            specs.push(s);
        }
        let of = Ofproto::with_flows(&specs).map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared::default());
        let ct = Arc::new(Conntrack::new(CtConfig::default()));
        let (up_tx, up_rx) = crossbeam_channel::bounded(1024);
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1024);
        let mut pmd = Pmd::new(0, shared.clone(), up_tx, reply_rx, 1024, 1);
        pmd.set_conntrack(ct.clone());
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
        pmd.set_control(ctl_rx);
        let mut handles = Vec::new();
        let mut of_ports = Vec::new();
        for &(n, name) in ports {
            let (p, sent, inject) = CapturePort::new(name);
            pmd.add_port(n, Box::new(p), true);
            handles.push((n, sent, inject));
            of_ports.push(OfPort { ofport: n, name: name.into(), ifname: Some(name.into()), up: true });
        }
        let stats = pmd.stats.clone();
        let mut slow = SlowPath::new(of, shared, vec![reply_tx], vec![stats.clone()]);
        let (slow_tx, slow_rx) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let s1 = stop.clone();
        let slow_h = std::thread::spawn(move || slow.run_with(&up_rx, &slow_rx, || s1.load(Ordering::Relaxed)));
        let s2 = stop.clone();
        let pmd_h = std::thread::spawn(move || pmd.run(&s2));
        let (node_tx, node_rx) = crossbeam_channel::unbounded();
        let control = Control {
            header: "node test".into(),
            node: "test".into(),
            slow: slow_tx,
            pmds: vec![ctl_tx],
            stats: vec![(core, stats.clone())],
            baselines: Arc::new(Mutex::new(vec![stats.baseline()])),
            upcall_depth: Arc::new(|| 0),
            node_calls: node_tx,
            dpid: 1,
            of_ports: Arc::new(Mutex::new(of_ports)),
            ct,
        };
        Ok(TestDatapath { control, ports: handles, stop, threads: vec![slow_h, pmd_h], _node_calls: node_rx })
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
        self.stop.store(true, Ordering::Relaxed);
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}
