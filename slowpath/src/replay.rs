//! Packets through the real datapath in memory, one at a time (`sdnfwd
//! ct-replay`): a poll loop with the node's connection tracker and its
//! recirculation, plain ports fed from and captured to memory, the slow
//! path answering the loop's upcalls at once. Each packet runs until
//! nothing of it waits (an upcall, a recirculation, a frame in a batch);
//! what left on which port is what the packet did, as Open vSwitch's
//! tracker reports it in `tools/ovs-ct-oracle.sh`.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use fastpath::conntrack::{Conntrack, CtConfig};
use fastpath::pmd::Pmd;
use fastpath::port::memory::CapturePort;
use fastpath::shared::Shared;
use fastpath::upcall::Upcall;

use crate::ofproto::Ofproto;
use crate::upcall::SlowPath;

/// Iterations a packet may take to settle (its upcalls answered, its
/// recirculations run).
const MAX_ROUNDS: usize = 64;

/// A port of the bridge: its number, what it receives, what it sent.
type MemPort = (u32, Sender<Vec<u8>>, Receiver<Vec<u8>>);

/// A bridge of plain ports in memory with the real datapath behind it.
pub struct Replay {
    pmd: Pmd,
    slow: SlowPath,
    upcalls: Receiver<Upcall>,
    ports: Vec<MemPort>,
    ct: Arc<Conntrack>,
}

impl Replay {
    /// A bridge with `ports` over the tables `of` (port 1 is a plain port
    /// here, not vxlan0) and a tracker configured by `ct`.
    pub fn new(mut of: Ofproto, ports: &[u32], ct: CtConfig) -> Replay {
        of.vxlan_port = None;
        of.ports = Some(ports.iter().copied().collect());
        let shared = Arc::new(Shared::default());
        let (up_tx, up_rx) = crossbeam_channel::bounded(1024);
        let (rep_tx, rep_rx) = crossbeam_channel::bounded(1024);
        let mut pmd = Pmd::new(0, shared.clone(), up_tx, rep_rx, 4096, 1);
        let ct = Arc::new(Conntrack::new(ct));
        pmd.set_conntrack(ct.clone());
        // Frames leave in the order OVS's synchronous upcalls give them.
        pmd.set_ordered(true);
        let mut list = Vec::new();
        for &p in ports {
            let (port, sent, inject) = CapturePort::new(&format!("p{p}"));
            pmd.add_port(p, Box::new(port), true);
            list.push((p, inject, sent));
        }
        let slow = SlowPath::new(of, shared, vec![rep_tx], vec![pmd.stats.clone()]);
        Replay { pmd, slow, upcalls: up_rx, ports: list, ct }
    }

    /// Runs one frame in on `port`; returns the frames that left, by port
    /// (ascending) and in the order each port sent them.
    ///
    /// # Errors
    /// An unknown port, or a packet that does not settle.
    pub fn packet(&mut self, port: u32, frame: Vec<u8>) -> Result<Vec<(u32, Vec<u8>)>, String> {
        let (_, inject, _) = self.ports.iter().find(|(p, ..)| *p == port).ok_or(format!("no port {port}"))?;
        inject.send(frame).map_err(|_| "the port is gone".to_string())?;
        let mut settled = false;
        for _ in 0..MAX_ROUNDS {
            self.pmd.iterate();
            let batch: Vec<Upcall> = self.upcalls.try_iter().collect();
            if !batch.is_empty() {
                self.slow.handle(&batch);
                continue;
            }
            let queued = self.ports.iter().any(|(_, tx, _)| !tx.is_empty());
            if !queued && self.pmd.n_pending() == 0 && self.pmd.n_recirculating() == 0 {
                settled = true;
                break;
            }
        }
        if !settled {
            return Err("the packet did not settle".into());
        }
        let mut out = Vec::new();
        for (p, _, sent) in &self.ports {
            out.extend(sent.try_iter().map(|f| (*p, f)));
        }
        out.sort_by_key(|(p, _)| *p);
        Ok(out)
    }

    /// The tracker's connections as `ovs-appctl dpctl/dump-conntrack`
    /// prints them.
    pub fn dump_conntrack(&self) -> Vec<String> {
        self.ct.dump(None, fastpath::clock::now_ms())
    }

    /// The tracker.
    pub fn conntrack(&self) -> &Arc<Conntrack> {
        &self.ct
    }

    /// The rules with their counters, as `ovs-ofctl dump-flows` prints them
    /// without durations.
    pub fn dump_flows(&mut self) -> Vec<String> {
        self.slow.credit_rules();
        self.slow
            .ofproto
            .rules(None)
            .iter()
            .map(|r| {
                let line = r.to_dump_line();
                // Without `duration=...s, `, as the oracle script prints.
                match (line.find("duration="), line.find("s, table=")) {
                    (Some(a), Some(b)) if a < b => format!("{}{}", &line[..a], &line[b + 3..]),
                    _ => line,
                }
            })
            .collect()
    }

    /// The loop's statistics report (`pmd-stats`).
    pub fn pmd_stats(&self) -> String {
        self.pmd.stats.show(None)
    }
}
