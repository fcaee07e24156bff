//! What a bridge of the database asks of the datapath: its ports as
//! sdnfwd serves them (a kernel interface through an AF_XDP socket, an
//! internal interface as a TAP, the VXLAN port over the uplink) with the
//! OpenFlow numbers [`crate::ovsdb::assign_ofports`] gave them, and the
//! poll-loop cores `other_config:pmd-cpu-mask` names, as OVS-DPDK users
//! set it. The drop-in for ovs-vswitchd reconciles the datapath to this.

use std::collections::BTreeMap;

use crate::ovsdb::{assign_ofports, Bridge, OFPP_LOCAL};

/// What openshift-sdn's SetupOVS asks of the switch with `ovs-vsctl`
/// (pkg/util/ovs's AddBridge and AddPort): the bridge, then vxlan0 and
/// tun0 with their numbers. The drop-in's tests replay these.
pub mod openshift_sdn {
    /// `ovs-vsctl ARGS`: br0, secure, OpenFlow 1.3 only.
    pub const ADD_BR0: &[&str] =
        &["--may-exist", "add-br", "br0", "--", "set", "Bridge", "br0", "fail_mode=secure", "protocols=OpenFlow13"];
    /// `ovs-vsctl ARGS`: vxlan0, port 1, flow-based remote and key.
    pub const ADD_VXLAN0: &[&str] = &[
        "--may-exist",
        "add-port",
        "br0",
        "vxlan0",
        "--",
        "set",
        "Interface",
        "vxlan0",
        "ofport_request=1",
        "type=vxlan",
        "options:remote_ip=\"flow\"",
        "options:key=\"flow\"",
        "options:dst_port=4789",
    ];
    /// `ovs-vsctl ARGS`: tun0, port 2, internal (SetupOVS adds its
    /// `mtu_request`).
    pub const ADD_TUN0: &[&str] = &[
        "--may-exist",
        "add-port",
        "br0",
        "tun0",
        "--",
        "set",
        "Interface",
        "tun0",
        "ofport_request=2",
        "type=internal",
    ];
}

/// How sdnfwd serves a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortKind {
    /// A kernel interface (a pod's veth): an AF_XDP socket on it.
    System,
    /// `type=internal` (tun0): a TAP sdnfwd creates.
    Internal,
    /// The bridge's own internal interface (OpenFlow's LOCAL port).
    Local,
    /// `type=vxlan`, flow-based remote and key, on this UDP port.
    Vxlan {
        /// `options:dst_port` (4789 when absent).
        dst_port: u16,
    },
}

/// A port of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedPort {
    /// The interface's name.
    pub name: String,
    /// Its OpenFlow port number.
    pub ofport: u32,
    /// How it is served.
    pub kind: PortKind,
}

/// A bridge's ports as the datapath should have them, and the interfaces
/// it cannot serve (name → why; written back as `Interface.error`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The ports, by OpenFlow number.
    pub ports: Vec<PlannedPort>,
    /// Interfaces left out, with the reason.
    pub refused: BTreeMap<String, String>,
    /// Requests that could not be honoured as asked (logged).
    pub warnings: Vec<String>,
}

/// The plan of `bridge`, numbers kept from `prev` (interface name →
/// ofport) as [`assign_ofports`] keeps them. One VXLAN port a bridge: a
/// second is refused (the node has one VTEP).
pub fn plan(bridge: &Bridge, prev: &BTreeMap<String, i64>) -> Plan {
    let (assigned, warnings) = assign_ofports(bridge, prev);
    let mut p = Plan { warnings, ..Plan::default() };
    let mut vxlan: Option<String> = None;
    for i in bridge.ports.iter().flat_map(|p| &p.interfaces) {
        let n = match assigned.get(&i.uuid) {
            Some(Ok(n)) => *n,
            Some(Err(e)) => {
                p.refused.insert(i.name.clone(), e.clone());
                continue;
            }
            None => continue,
        };
        let kind = match i.kind.as_str() {
            _ if n == OFPP_LOCAL => PortKind::Local,
            "internal" => PortKind::Internal,
            "vxlan" => {
                if let Some(first) = &vxlan {
                    p.refused.insert(
                        i.name.clone(),
                        format!("a second VXLAN port ({first} is the bridge's): sdnfwd serves one VTEP a node"),
                    );
                    continue;
                }
                vxlan = Some(i.name.clone());
                let dst_port = i.options.get("dst_port").and_then(|d| d.parse().ok()).unwrap_or(4789);
                PortKind::Vxlan { dst_port }
            }
            _ => PortKind::System,
        };
        p.ports.push(PlannedPort { name: i.name.clone(), ofport: n as u32, kind });
    }
    p.ports.sort_by_key(|x| x.ofport);
    p
}

/// The cores of `other_config:pmd-cpu-mask` (hexadecimal, `0x` optional,
/// bit N = core N, as OVS-DPDK reads it).
///
/// # Errors
/// Not hexadecimal, or no core at all.
pub fn pmd_cores(mask: &str) -> Result<Vec<usize>, String> {
    let hex = mask.trim().trim_start_matches("0x").trim_start_matches("0X");
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("pmd-cpu-mask={mask} is not a hexadecimal core mask"));
    }
    let mut cores = Vec::new();
    for (i, c) in hex.chars().rev().enumerate() {
        let d = c.to_digit(16).unwrap_or(0);
        for b in 0..4 {
            if d & (1 << b) != 0 {
                cores.push(i * 4 + b);
            }
        }
    }
    if cores.is_empty() {
        return Err(format!("pmd-cpu-mask={mask} names no core"));
    }
    Ok(cores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovsdb::test_port as port;

    #[test]
    fn test_the_openshift_bridge_planned() {
        let flow = [("remote_ip", "flow"), ("key", "flow")];
        let br = Bridge {
            name: "br0".into(),
            ports: vec![
                port("br0", "internal", None, &[]),
                port("vxlan0", "vxlan", Some(1), &[("remote_ip", "flow"), ("key", "flow"), ("dst_port", "4790")]),
                port("tun0", "internal", Some(2), &[]),
                port("veth1", "", Some(3), &[]),
                port("vxlan1", "vxlan", Some(4), &flow),
                port("patch0", "patch", None, &[]),
            ],
            ..Default::default()
        };
        let p = plan(&br, &BTreeMap::new());
        let got: Vec<(u32, &str, PortKind)> =
            p.ports.iter().map(|x| (x.ofport, x.name.as_str(), x.kind.clone())).collect();
        assert_eq!(
            got,
            [
                (1, "vxlan0", PortKind::Vxlan { dst_port: 4790 }),
                (2, "tun0", PortKind::Internal),
                (3, "veth1", PortKind::System),
                (65534, "br0", PortKind::Local)
            ]
        );
        assert!(p.refused["vxlan1"].contains("a second VXLAN port (vxlan0"), "{:?}", p.refused);
        assert!(p.refused["patch0"].contains("type `patch` is not supported"));
    }

    #[test]
    fn test_pmd_cpu_mask() {
        assert_eq!(pmd_cores("0x6"), Ok(vec![1, 2]));
        assert_eq!(pmd_cores("F0"), Ok(vec![4, 5, 6, 7]));
        assert_eq!(pmd_cores("0x100000001"), Ok(vec![0, 32]));
        assert!(pmd_cores("0x0").unwrap_err().contains("names no core"));
        assert!(pmd_cores("12g").unwrap_err().contains("not a hexadecimal"));
        assert!(pmd_cores("").is_err());
    }
}
