//! The node's ports: each pod's veth and tun0 as AF_XDP sockets handed to
//! the poll loops, tun0 set up as openshift-sdn sets it up, and the lists
//! OpenFlow and `show` print.

use std::net::Ipv4Addr;

use config::yaml::Cluster;

use crate::datapath::{Datapath, XskOptions};
use crate::logging::note as log;
use crate::state::NodeState;
use crate::sys::{if_exists, run as sh};

/// The datapath end of the tun0 veth pair.
pub const TUN0_DP: &str = "tun0-dp";

/// A port of the node and where it stands.
pub(super) struct PortSpec {
    pub(super) ofport: u32,
    pub(super) ifname: String,
    pub(super) what: String,
    pub(super) up: bool,
    /// The last reason it could not be attached (logged once).
    pub(super) last_err: String,
}

/// The node's ports as OpenFlow lists them: vxlan0, then tun0 and the
/// pods in port order.
pub(super) fn of_ports(specs: &[PortSpec], uplink: bool) -> Vec<crate::control::OfPort> {
    use crate::control::OfPort;
    let mut v = vec![OfPort { ofport: 1, name: "vxlan0".into(), ifname: None, up: uplink }];
    for s in specs {
        let (name, ifname) =
            if s.ifname == TUN0_DP { ("tun0", "tun0") } else { (s.ifname.as_str(), s.ifname.as_str()) };
        v.push(OfPort { ofport: s.ofport, name: name.into(), ifname: Some(ifname.into()), up: s.up });
    }
    v.sort_by_key(|p| p.ofport);
    v
}

/// The node's pod ports as a config describes them.
pub(super) fn pod_specs(n: &config::yaml::Node) -> Vec<PortSpec> {
    let mut v = Vec::new();
    for p in &n.pods {
        let Some(veth) = &p.veth else {
            log(&format!("warning: pod {}/{} lists no veth: port {} stays down", p.namespace, p.name, p.ofport));
            continue;
        };
        v.push(PortSpec {
            ofport: p.ofport,
            ifname: veth.clone(),
            what: format!("pod {}/{}", p.namespace, p.name),
            up: false,
            last_err: String::new(),
        });
    }
    v
}

/// Sets up tun0 (veth pair, address, routes) as openshift-sdn does.
pub(super) fn setup_tun0(c: &Cluster, gw: Ipv4Addr, prefix: u8, mac: Option<&str>) -> Result<(), String> {
    if if_exists("tun0") {
        if if_exists(TUN0_DP) {
            log("removing a tun0 left by an earlier run");
            let _ = sh("ip", &["link", "del", "tun0"]);
        } else {
            return Err("tun0 exists and is not sdnfwd's (is Open vSwitch running br0 here?)".into());
        }
    }
    sh(
        "ip",
        &[
            "link",
            "add",
            "tun0",
            "numrxqueues",
            "1",
            "numtxqueues",
            "1",
            "type",
            "veth",
            "peer",
            "name",
            TUN0_DP,
            "numrxqueues",
            "1",
            "numtxqueues",
            "1",
        ],
    )?;
    if let Some(m) = mac {
        sh("ip", &["link", "set", "tun0", "address", m])?;
    }
    sh("ip", &["link", "set", "tun0", "mtu", "1450"])?;
    sh("ip", &["addr", "add", &format!("{gw}/{prefix}"), "dev", "tun0"])?;
    // The host sends through this veth: complete checksums (DESIGN.md §8).
    sh("ethtool", &["-K", "tun0", "tx", "off"])?;
    sh("ip", &["link", "set", TUN0_DP, "up"])?;
    sh("ip", &["link", "set", "tun0", "up"])?;
    for cn in &c.cluster_network.cluster_networks {
        sh("ip", &["route", "replace", &cn.cidr.to_string(), "dev", "tun0", "proto", "static"])?;
    }
    sh("ip", &["route", "replace", &c.cluster_network.service_network.to_string(), "dev", "tun0", "proto", "static"])?;
    Ok(())
}

/// Opens the port's socket and hands it to the loops: loop `k` mod their
/// number receives, every loop may send. A pod's veth first gets TX
/// checksum offload off on its pod side.
pub(super) fn attach(spec: &PortSpec, k: usize, xsk: XskOptions, dp: &mut Datapath) -> Result<(), String> {
    dp.add_xsk_port(spec.ofport, &spec.ifname, &spec.what, k, xsk, spec.ifname != TUN0_DP)
}

/// `show`'s list of ports: each with its interface, what it is (the pod
/// and its IP) and whether it is attached.
pub(super) fn port_table(specs: &[PortSpec], state: &NodeState, uplink: Option<&str>) -> String {
    let mut out = String::new();
    match uplink {
        Some(u) => out += &format!("  port   1: vxlan0 (uplink {u})\n"),
        None => out += "  port   1: vxlan0 (no uplink)\n",
    }
    let mut v: Vec<&PortSpec> = specs.iter().collect();
    v.sort_by_key(|s| s.ofport);
    for s in v {
        let ip = state.pods().iter().find(|p| p.ofport == s.ofport).map(|p| format!(", {}", p.ip)).unwrap_or_default();
        let state = if s.up {
            "up".to_string()
        } else if s.last_err.is_empty() {
            "down (no interface yet)".into()
        } else {
            format!("down: {}", s.last_err)
        };
        out += &format!("  port {:>3}: {} ({}{ip}) {state}\n", s.ofport, s.ifname, s.what);
    }
    out
}
