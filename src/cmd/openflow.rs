//! The running node as an OpenFlow switch: `sdnfwd run --openflow
//! ptcp:PORT[:IP]` (or `punix:PATH`) serves the node's live tables to
//! `ovs-ofctl -O OpenFlow13` and controllers through
//! [`slowpath::openflow`]. Flow and group mods and dumps run on the
//! slow-path thread (the one owner of the tables; changes are revalidated
//! there at once); ports and their counters come from the poll loops.

use std::collections::BTreeMap;
use std::sync::Arc;

use config::ofctl::FlowCommand;
use slowpath::ofproto::{FlowModError, GroupStats, Rule};
use slowpath::openflow::{PortDesc, Switch};

use node::control::{on_slow_path, port_dumps, Control};

fn mac_of(ifname: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/address"))
        .ok()
        .and_then(|s| slowpath::tunnel::parse_mac(s.trim()))
        .unwrap_or(0)
}

/// The node's [`Control`] as the OpenFlow listener sees it (a type of this
/// crate, so that the listener's trait may be implemented for it).
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

    fn flow_mods(&self, cmds: Vec<FlowCommand>) -> Result<Vec<Result<(), FlowModError>>, String> {
        on_slow_path(self, move |s| s.apply_each(&cmds))
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
                    mac: p.ifname.as_deref().map_or(0, mac_of),
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
