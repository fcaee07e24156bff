//! The running node as an OpenFlow switch: `sdnfwd run --openflow
//! ptcp:PORT[:IP]` (or `punix:PATH`) serves the node's live tables to
//! `ovs-ofctl` and controllers through [`slowpath::openflow`]. Flow and
//! group mods, bundles and dumps run on the slow-path thread (the one
//! owner of the tables; changes are revalidated there at once, a bundle in
//! one publish; it also expires flows with timeouts and reports the
//! changes the listener's FLOW_REMOVED and flow monitors need); ports and
//! their counters come from the poll loops, and so does PACKET_OUT (the
//! frame is handed to the first loop, which runs it through the pipeline
//! as received on its in_port, or sends it out of a port).

use std::collections::BTreeMap;
use std::sync::Arc;

use config::ofctl::FlowCommand;
use crossbeam_channel::Receiver;
use fastpath::pmd::PmdCommand;
use slowpath::ofproto::{FlowEvent, FlowModError, GroupStats, Rule};
use slowpath::openflow::{PacketOut, PacketOutAction, PortDesc, Switch};

use crate::control::{on_slow_path, port_dumps, Control};

/// Binds `target` (`ptcp:PORT[:IP]`, `punix:PATH`) and serves the node's
/// tables there on a thread of its own. The target clients connect to,
/// and the socket file of a `punix:` target (to remove at exit).
///
/// # Errors
/// The bind failed, or no thread could be made.
pub fn listen(target: &str, control: &Control) -> Result<(String, Option<std::path::PathBuf>), String> {
    let l = slowpath::openflow::Listener::bind(target)?;
    let client = l.client_target();
    let path = l.path().map(|p| p.to_path_buf());
    let sw: Arc<dyn Switch> = Arc::new(OfSwitch(control.clone()));
    std::thread::Builder::new().name("sdnfwd-openflow".into()).spawn(move || l.serve(sw)).map_err(|e| e.to_string())?;
    Ok((client, path))
}

/// The node's [`Control`] as the OpenFlow listener sees it.
#[derive(Clone)]
pub struct OfSwitch(pub Control);

impl std::ops::Deref for OfSwitch {
    type Target = Control;
    fn deref(&self) -> &Control {
        &self.0
    }
}

impl Switch for OfSwitch {
    fn datapath_id(&self) -> u64 {
        self.dpid
    }

    fn description(&self) -> String {
        format!("br0 on {} (sdnfwd)", self.node)
    }

    fn flow_mods(&self, cmds: Vec<FlowCommand>, origin: u64) -> Result<Vec<Result<(), FlowModError>>, String> {
        on_slow_path(self, move |s| s.apply_each_from(&cmds, origin))
    }

    fn apply_atomic(&self, cmds: Vec<FlowCommand>, origin: u64) -> Result<Result<(), (usize, FlowModError)>, String> {
        on_slow_path(self, move |s| s.apply_atomic(&cmds, origin))
    }

    fn subscribe(&self) -> Result<Receiver<FlowEvent>, String> {
        on_slow_path(self, |s| s.ofproto.subscribe())
    }

    fn packet_out(&self, p: PacketOut) -> Result<(), String> {
        let ports = self.of_ports.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let out = match p.action {
            PacketOutAction::Pipeline => None,
            PacketOutAction::Output(1) => {
                return Err("output:1 (vxlan0) needs the pipeline's tunnel fields: use actions=table".into())
            }
            PacketOutAction::Output(o) => match ports.iter().find(|x| x.ofport == o) {
                Some(x) if x.up => Some(o),
                Some(x) => return Err(format!("port {o} ({}) is down", x.name)),
                None => return Err(format!("no port {o}")),
            },
        };
        if p.frame.len() > fastpath::pool::MAX_FRAME_LEN {
            return Err(format!(
                "a frame of {} bytes: the poll loops' frames hold {} at most",
                p.frame.len(),
                fastpath::pool::MAX_FRAME_LEN
            ));
        }
        // A frame from vxlan0 would need the tunnel fields (tun_id,
        // tun_src) that the pipeline reads, which a PACKET_OUT does not
        // carry here; port 0 is the poll loops' uplink.
        if out.is_none() && matches!(p.in_port, 0 | 1) {
            return Err(format!(
                "in_port={}: a frame from the tunnel needs its tunnel fields; send it as from a pod port or tun0",
                p.in_port
            ));
        }
        let in_port = p.in_port;
        let pmd = self.pmds.first().ok_or("no poll loop")?;
        pmd.send(PmdCommand::Inject { frame: p.frame, in_port, out }).map_err(|_| "the poll loop is gone".to_string())
    }

    fn versions(&self) -> u32 {
        self.of_versions.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn log(&self, msg: &str) {
        crate::logging::log(crate::logging::Level::Info, msg);
    }

    fn rules(&self) -> Result<Vec<Arc<Rule>>, String> {
        on_slow_path(self, |s| s.ofproto.rules(None))
    }

    fn groups(&self) -> Result<Vec<GroupStats>, String> {
        on_slow_path(self, |s| s.ofproto.group_stats())
    }

    fn ports(&self) -> Result<Vec<PortDesc>, String> {
        // Counters of every loop's share of a port (queues, shared sends).
        let mut counters: BTreeMap<u32, fastpath::port::api::PortCounters> = BTreeMap::new();
        for (_, ofport, _, pc, _) in port_dumps(self)? {
            let ofport = if ofport == fastpath::batch::UPLINK { 1 } else { ofport };
            let c = counters.entry(ofport).or_default();
            c.rx_packets += pc.rx_packets;
            c.rx_bytes += pc.rx_bytes;
            c.tx_packets += pc.tx_packets;
            c.tx_bytes += pc.tx_bytes;
        }
        let ports = self.of_ports.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(ports
            .into_iter()
            .map(|p| {
                let c = counters.get(&p.ofport).copied().unwrap_or_default();
                PortDesc {
                    port_no: p.ofport,
                    mac: p.ifname.as_deref().map_or(0, |i| crate::sys::mac_of(i).unwrap_or(0)),
                    name: p.name,
                    up: p.up,
                    rx_packets: c.rx_packets,
                    tx_packets: c.tx_packets,
                    rx_bytes: c.rx_bytes,
                    tx_bytes: c.tx_bytes,
                }
            })
            .collect())
    }
}
