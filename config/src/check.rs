//! The one validator of a cluster's desired state: every check that the
//! whole state must pass before a node acts on it, whatever its source (the
//! YAML at start-up or on reload, `sdnfwd ctl pod/hostsubnet add`, a
//! merge of the two). Rules span objects (two pods with one IP, a subnet
//! overlapping another node's), so they run on the state as a whole, not
//! per field as it is read.
//!
//! [`Cluster::check`] returns every [`Problem`], each naming the object it
//! is about ([`Obj`], and the field) and, for a conflict, the other object.
//! The caller turns the object into a source: `file:line:column` through
//! the YAML's [`Positions`] ([`Cluster::from_yaml_all`] does), or the ctl
//! command that made it. Pure: no I/O.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::yaml::{plugin_id, Cidr, Cluster, HostSubnet, Pod};
use crate::yaml_pos::Positions;
use crate::ParseError;

pub use crate::obj::Obj;

/// One thing wrong with a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The object it is about.
    pub obj: Obj,
    /// Its field (YAML name; empty for the object as a whole).
    pub field: &'static str,
    /// The object it conflicts with, if any (named in `msg` too).
    pub other: Option<(Obj, &'static str)>,
    /// What is wrong, naming the object(s): one line.
    pub msg: String,
}

/// The names Linux keeps for sdnfwd's own devices.
const RESERVED_IFNAMES: [&str; 3] = ["tun0", "tun0-dp", "vxlan0"];

/// The first OpenFlow port number OpenFlow reserves (OFPP_MAX + 1).
const OFPP_RESERVED: u32 = 0xff00;

fn pod_id(p: &Pod) -> String {
    format!("{}/{}", p.namespace, p.name)
}

fn hs_desc(h: &HostSubnet) -> String {
    format!("HostSubnet {} ({} at {})", h.host, h.subnet, h.host_ip)
}

fn broadcast(c: &Cidr) -> u32 {
    c.addr() | (u32::MAX.checked_shr(c.prefix() as u32).unwrap_or(0))
}

/// Whether two CIDRs share an address.
fn overlap(a: &Cidr, b: &Cidr) -> bool {
    a.addr() <= broadcast(b) && b.addr() <= broadcast(a)
}

/// A Linux interface name: 1 to 15 bytes, no `/`, `:` or white space.
fn ifname_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && !s.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b.is_ascii_control())
}

/// A CIDR with host bits set, as written.
fn host_bits(c: &Cidr) -> Option<String> {
    (u32::from(c.0.ip()) != c.addr()).then(|| format!("{}/{}", c.0.ip(), c.prefix()))
}

/// Problems in the order found; a helper keeps the pushes short.
#[derive(Default)]
struct Found(Vec<Problem>);

impl Found {
    fn one(&mut self, obj: Obj, field: &'static str, msg: String) {
        self.0.push(Problem { obj, field, other: None, msg });
    }
    fn pair(&mut self, obj: Obj, field: &'static str, other: (Obj, &'static str), msg: String) {
        self.0.push(Problem { obj, field, other: Some(other), msg });
    }
}

impl Cluster {
    /// Every problem of the cluster as a whole: the network, HostSubnets,
    /// NetNamespaces, nodes and their pods, services and egress policies
    /// (see the README's list). Empty when the node may act on it.
    pub fn check(&self) -> Vec<Problem> {
        let mut f = Found::default();
        self.check_network(&mut f);
        self.check_host_subnets(&mut f);
        self.check_namespaces(&mut f);
        self.check_nodes(&mut f);
        self.check_services(&mut f);
        self.check_egress(&mut f);
        self.check_api_objects(&mut f);
        f.0
    }

    /// Namespaces, the cluster's Pods and NetworkPolicies.
    fn check_api_objects(&self, f: &mut Found) {
        let mut by_ns: HashMap<&str, usize> = HashMap::new();
        for (i, n) in self.namespaces.iter().enumerate() {
            let o = Obj::Namespace(i);
            if n.metadata.name.is_empty() {
                f.one(o, "metadata", "Namespace without metadata.name".into());
            } else if let Some(&j) = by_ns.get(n.metadata.name.as_str()) {
                f.pair(
                    o,
                    "metadata",
                    (Obj::Namespace(j), "metadata"),
                    format!("Namespace {} is listed twice", n.metadata.name),
                );
            } else {
                by_ns.insert(&n.metadata.name, i);
            }
        }
        let mut by_pod: HashMap<(&str, &str), usize> = HashMap::new();
        for (i, p) in self.pods.iter().enumerate() {
            let o = Obj::ClusterPod(i);
            let id = format!("{}/{}", p.namespace(), p.metadata.name);
            if p.metadata.namespace.is_none() || p.metadata.name.is_empty() {
                f.one(o, "metadata", format!("Pod {id}: metadata.name and metadata.namespace are required"));
                continue;
            }
            match by_pod.get(&(p.namespace(), p.metadata.name.as_str())) {
                Some(&j) => {
                    f.pair(o, "metadata", (Obj::ClusterPod(j), "metadata"), format!("Pod {id} is listed twice"))
                }
                None => {
                    by_pod.insert((p.namespace(), &p.metadata.name), i);
                }
            }
        }
        for (i, np) in self.network_policies.iter().enumerate() {
            for (field, msg) in np.problems() {
                f.one(Obj::NetworkPolicy(i), field, msg);
            }
        }
    }

    fn check_network(&self, f: &mut Found) {
        let cn = &self.cluster_network;
        if plugin_id(&cn.plugin_name).is_none() {
            f.one(
                Obj::ClusterNetwork,
                "pluginName",
                format!(
                    "unknown pluginName `{}`; expected redhat/openshift-ovs-subnet, redhat/openshift-ovs-multitenant or redhat/openshift-ovs-networkpolicy",
                    cn.plugin_name
                ),
            );
        }
        if cn.cluster_networks.is_empty() {
            f.one(Obj::ClusterNetwork, "clusterNetworks", "clusterNetworks must list at least one CIDR".into());
        }
        if cn.vxlan_port == Some(0) {
            f.one(Obj::ClusterNetwork, "vxlanPort", "vxlanPort 0 is not a UDP port".into());
        }
        if let Some(m) = cn.mtu {
            if !(576..=9000).contains(&m) {
                f.one(Obj::ClusterNetwork, "mtu", format!("mtu {m} is outside 576..9000"));
            }
        }
        if let Some(raw) = host_bits(&cn.service_network) {
            f.one(
                Obj::ClusterNetwork,
                "serviceNetwork",
                format!("serviceNetwork {raw} has host bits set (the network is {})", cn.service_network),
            );
        }
        for (i, e) in cn.cluster_networks.iter().enumerate() {
            let o = Obj::ClusterNetworkEntry(i);
            if let Some(raw) = host_bits(&e.cidr) {
                f.one(o, "CIDR", format!("cluster network {raw} has host bits set (the network is {})", e.cidr));
            }
            if e.host_subnet_length == 0 || e.host_subnet_length > 32 - e.cidr.prefix() as u32 {
                f.one(
                    o,
                    "hostSubnetLength",
                    format!("hostSubnetLength {} does not fit cluster network {}", e.host_subnet_length, e.cidr),
                );
            }
            if overlap(&e.cidr, &cn.service_network) {
                f.pair(
                    Obj::ClusterNetwork,
                    "serviceNetwork",
                    (o, "CIDR"),
                    format!("serviceNetwork {} overlaps cluster network {}", cn.service_network, e.cidr),
                );
            }
            for (j, e2) in cn.cluster_networks.iter().enumerate().take(i) {
                if overlap(&e.cidr, &e2.cidr) {
                    f.pair(
                        o,
                        "CIDR",
                        (Obj::ClusterNetworkEntry(j), "CIDR"),
                        format!("cluster network {} overlaps cluster network {}", e.cidr, e2.cidr),
                    );
                }
            }
        }
    }

    fn check_host_subnets(&self, f: &mut Found) {
        let cn = &self.cluster_network;
        let mut by_host: HashMap<&str, usize> = HashMap::new();
        let mut by_ip: HashMap<Ipv4Addr, usize> = HashMap::new();
        let mut by_egress: HashMap<Ipv4Addr, usize> = HashMap::new();
        for (i, h) in self.host_subnets.iter().enumerate() {
            let o = Obj::HostSubnet(i);
            if h.host.is_empty() {
                f.one(o, "host", "HostSubnet with an empty host".into());
            }
            if let Some(&j) = by_host.get(h.host.as_str()) {
                f.pair(o, "host", (Obj::HostSubnet(j), "host"), format!("node {} has two HostSubnets", h.host));
            } else {
                by_host.insert(&h.host, i);
            }
            let ip = h.host_ip.0;
            if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast() {
                f.one(o, "hostIP", format!("{}: hostIP {ip} cannot be a VTEP", hs_desc(h)));
            }
            for c in &cn.cluster_networks {
                if c.cidr.contains(ip) {
                    f.one(o, "hostIP", format!("{}: hostIP {ip} is inside cluster network {}", hs_desc(h), c.cidr));
                }
            }
            if cn.service_network.contains(ip) {
                f.one(
                    o,
                    "hostIP",
                    format!("{}: hostIP {ip} is inside serviceNetwork {}", hs_desc(h), cn.service_network),
                );
            }
            match by_ip.get(&ip) {
                Some(&j) => f.pair(
                    o,
                    "hostIP",
                    (Obj::HostSubnet(j), "hostIP"),
                    format!(
                        "{}: hostIP {ip} is already node {}'s VTEP (two nodes cannot share one)",
                        hs_desc(h),
                        self.host_subnets[j].host
                    ),
                ),
                None => {
                    by_ip.insert(ip, i);
                }
            }
            if let Some(raw) = host_bits(&h.subnet) {
                f.one(
                    o,
                    "subnet",
                    format!("HostSubnet {}: subnet {raw} has host bits set (the network is {})", h.host, h.subnet),
                );
            }
            match cn.cluster_networks.iter().find(|c| overlap(&c.cidr, &h.subnet)) {
                None => f.one(
                    o,
                    "subnet",
                    format!(
                        "HostSubnet {}: subnet {} is outside every cluster network ({})",
                        h.host,
                        h.subnet,
                        cn.cluster_networks.iter().map(|c| c.cidr.to_string()).collect::<Vec<_>>().join(", ")
                    ),
                ),
                Some(c) if !(c.cidr.contains(h.subnet.0.network()) && c.cidr.prefix() <= h.subnet.prefix()) => f.one(
                    o,
                    "subnet",
                    format!("HostSubnet {}: subnet {} is not inside cluster network {}", h.host, h.subnet, c.cidr),
                ),
                Some(c) if h.subnet.prefix() as u32 + c.host_subnet_length != 32 => f.one(
                    o,
                    "subnet",
                    format!(
                        "HostSubnet {}: subnet {} is a /{}, but cluster network {} gives each node a /{} (hostSubnetLength {})",
                        h.host,
                        h.subnet,
                        h.subnet.prefix(),
                        c.cidr,
                        32u32.saturating_sub(c.host_subnet_length),
                        c.host_subnet_length
                    ),
                ),
                Some(_) => {}
            }
            for e in &h.egress_ips {
                match by_egress.get(&e.0) {
                    Some(&j) => f.pair(
                        o,
                        "egressIPs",
                        (Obj::HostSubnet(j), "egressIPs"),
                        format!("HostSubnet {}: egress IP {e} is also node {}'s", h.host, self.host_subnets[j].host),
                    ),
                    None => {
                        by_egress.insert(e.0, i);
                    }
                }
            }
        }
        // Overlapping subnets: sorted by start, each against the widest so far.
        let mut order: Vec<usize> = (0..self.host_subnets.len()).collect();
        order.sort_by_key(|&i| (self.host_subnets[i].subnet.addr(), i));
        let mut widest: Option<usize> = None;
        for &i in &order {
            let s = &self.host_subnets[i].subnet;
            if let Some(w) = widest {
                let ws = &self.host_subnets[w].subnet;
                if overlap(s, ws) {
                    // The later in the file is the one reported.
                    let (a, b) = if i > w { (i, w) } else { (w, i) };
                    let (ha, hb) = (&self.host_subnets[a], &self.host_subnets[b]);
                    let how = if ha.subnet == hb.subnet { "is the same as" } else { "overlaps" };
                    f.pair(
                        Obj::HostSubnet(a),
                        "subnet",
                        (Obj::HostSubnet(b), "subnet"),
                        format!("HostSubnet {}: subnet {} {how} node {}'s {}", ha.host, ha.subnet, hb.host, hb.subnet),
                    );
                }
                if broadcast(s) > broadcast(ws) {
                    widest = Some(i);
                }
            } else {
                widest = Some(i);
            }
        }
    }

    fn check_namespaces(&self, f: &mut Found) {
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        for (i, n) in self.net_namespaces.iter().enumerate() {
            let o = Obj::NetNamespace(i);
            if n.netid > 0xff_ffff {
                f.one(o, "netid", format!("NetNamespace {}: netid {} exceeds 24 bits", n.netname, n.netid));
            }
            if let Some(&j) = by_name.get(n.netname.as_str()) {
                f.pair(
                    o,
                    "netname",
                    (Obj::NetNamespace(j), "netname"),
                    format!("NetNamespace {} is listed twice", n.netname),
                );
            } else {
                by_name.insert(&n.netname, i);
            }
        }
    }

    fn check_nodes(&self, f: &mut Found) {
        let multitenant = plugin_id(&self.cluster_network.plugin_name).is_some_and(|p| p != 0);
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        let mut by_pod: HashMap<String, (usize, usize)> = HashMap::new();
        let mut by_ip: HashMap<Ipv4Addr, (usize, usize)> = HashMap::new();
        let nodes: Vec<_> = self.all_nodes().collect();
        for (k, node) in nodes.iter().enumerate() {
            let o = Obj::Node(k);
            if let Some(&j) = by_name.get(node.name.as_str()) {
                f.pair(o, "name", (Obj::Node(j), "name"), format!("node {} is listed twice", node.name));
            } else {
                by_name.insert(&node.name, k);
            }
            let hs = self.host_subnet(&node.name);
            if hs.is_none() {
                f.one(o, "name", format!("node {} has no HostSubnet", node.name));
            }
            if let Some(u) = &node.uplink {
                if !ifname_ok(u) {
                    f.one(o, "uplink", format!("node {}: uplink `{u}` is not an interface name", node.name));
                } else if RESERVED_IFNAMES.contains(&u.as_str()) {
                    f.one(o, "uplink", format!("node {}: uplink `{u}` is a name sdnfwd uses itself", node.name));
                }
            }
            if let Some(m) = &node.tun0_mac {
                if crate::ofctl::parse_flow_line(&format!("dl_dst={m},actions=drop"), crate::ofctl::LineKind::Add)
                    .is_err()
                {
                    f.one(o, "tun0MAC", format!("node {}: tun0MAC `{m}` is not an Ethernet address", node.name));
                }
            }
            let mut by_port: HashMap<u32, usize> = HashMap::new();
            let mut by_veth: HashMap<&str, usize> = HashMap::new();
            for (i, p) in node.pods.iter().enumerate() {
                let po = Obj::Pod(k, i);
                let id = pod_id(p);
                let on = &node.name;
                if p.ofport < 3 || p.ofport >= OFPP_RESERVED {
                    let why = match p.ofport {
                        0 => "is not a port",
                        1 => "is vxlan0's",
                        2 => "is tun0's",
                        _ => "is reserved by OpenFlow (0xff00 and up)",
                    };
                    f.one(po, "ofport", format!("pod {id}: ofport {} {why}; pods use 3..65279", p.ofport));
                } else if let Some(&j) = by_port.get(&p.ofport) {
                    f.pair(
                        po,
                        "ofport",
                        (Obj::Pod(k, j), "ofport"),
                        format!(
                            "pod {id}: ofport {} is already pod {}'s on node {on}",
                            p.ofport,
                            pod_id(&node.pods[j])
                        ),
                    );
                } else {
                    by_port.insert(p.ofport, i);
                }
                if let Some(v) = &p.veth {
                    if !ifname_ok(v) {
                        f.one(po, "veth", format!("pod {id}: veth `{v}` is not an interface name (1 to 15 bytes)"));
                    } else if RESERVED_IFNAMES.contains(&v.as_str()) || node.uplink.as_deref() == Some(v) {
                        f.one(po, "veth", format!("pod {id}: veth `{v}` is node {on}'s own device"));
                    } else if let Some(&j) = by_veth.get(v.as_str()) {
                        f.pair(
                            po,
                            "veth",
                            (Obj::Pod(k, j), "veth"),
                            format!("pod {id}: veth {v} is already pod {}'s on node {on}", pod_id(&node.pods[j])),
                        );
                    } else {
                        by_veth.insert(v, i);
                    }
                }
                match by_pod.get(&id) {
                    Some(&(kk, j)) => f.pair(
                        po,
                        "name",
                        (Obj::Pod(kk, j), "name"),
                        format!("pod {id} is listed twice (nodes {on} and {})", nodes[kk].name),
                    ),
                    None => {
                        by_pod.insert(id.clone(), (k, i));
                    }
                }
                let ip = p.ip.0;
                if p.ip == crate::yaml::Ip::UNSET {
                    f.one(
                        po,
                        "ip",
                        format!("pod {id}: no IP: give `ip:`, or a Pod object on node {on} with status.podIP"),
                    );
                    continue;
                }
                match by_ip.get(&ip) {
                    Some(&(kk, j)) => f.pair(
                        po,
                        "ip",
                        (Obj::Pod(kk, j), "ip"),
                        format!(
                            "pod {id}: IP {ip} is already pod {}'s on node {} (one of the two would be cut off)",
                            pod_id(&nodes[kk].pods[j]),
                            nodes[kk].name
                        ),
                    ),
                    None => {
                        by_ip.insert(ip, (k, i));
                    }
                }
                if let Some(hs) = hs {
                    let s = &hs.subnet;
                    let a = u32::from(ip);
                    if !s.contains(ip) {
                        let owner = self
                            .host_subnets
                            .iter()
                            .find(|h| h.subnet.contains(ip))
                            .map(|h| format!(" (it is in node {}'s {})", h.host, h.subnet))
                            .unwrap_or_default();
                        f.one(po, "ip", format!("pod {id}: IP {ip} is outside node {on}'s subnet {s}{owner}"));
                    } else if a == s.addr() {
                        f.one(po, "ip", format!("pod {id}: IP {ip} is node {on}'s subnet address ({s})"));
                    } else if a == s.addr() | 1 {
                        f.one(po, "ip", format!("pod {id}: IP {ip} is node {on}'s gateway (tun0 of {s})"));
                    } else if a == broadcast(s) {
                        f.one(
                            po,
                            "ip",
                            format!("pod {id}: IP {ip} is the broadcast address of node {on}'s subnet {s}"),
                        );
                    }
                }
                if multitenant && self.vnid(&p.namespace).is_none() {
                    f.one(
                        po,
                        "namespace",
                        format!("pod {id}: namespace {} has no NetNamespace (the plugin needs its VNID)", p.namespace),
                    );
                }
            }
        }
    }

    fn check_services(&self, f: &mut Found) {
        let multitenant = plugin_id(&self.cluster_network.plugin_name).is_some_and(|p| p != 0);
        let sn = &self.cluster_network.service_network;
        let mut by_ip: HashMap<Ipv4Addr, usize> = HashMap::new();
        for (i, s) in self.services.iter().enumerate() {
            let o = Obj::Service(i);
            let id = format!("{}/{}", s.namespace, s.name);
            if multitenant && self.vnid(&s.namespace).is_none() {
                f.one(o, "namespace", format!("service {id}: namespace {} has no NetNamespace", s.namespace));
            }
            if s.cluster_ip.is_empty() || s.cluster_ip == "None" {
                continue;
            }
            let Ok(ip) = s.cluster_ip.parse::<Ipv4Addr>() else {
                f.one(o, "clusterIP", format!("service {id}: clusterIP `{}` is not an IPv4 address", s.cluster_ip));
                continue;
            };
            if !sn.contains(ip) {
                f.one(o, "clusterIP", format!("service {id}: clusterIP {ip} is outside serviceNetwork {sn}"));
            }
            match by_ip.get(&ip) {
                Some(&j) => f.pair(
                    o,
                    "clusterIP",
                    (Obj::Service(j), "clusterIP"),
                    format!(
                        "service {id}: clusterIP {ip} is already service {}/{}'s",
                        self.services[j].namespace, self.services[j].name
                    ),
                ),
                None => {
                    by_ip.insert(ip, i);
                }
            }
            for p in &s.ports {
                if p.port == 0 || !matches!(p.protocol.to_ascii_uppercase().as_str(), "TCP" | "UDP" | "SCTP") {
                    f.one(o, "ports", format!("service {id}: port {}/{} is not a TCP or UDP port", p.protocol, p.port));
                }
            }
        }
    }

    fn check_egress(&self, f: &mut Found) {
        let mut by_ns: HashMap<&str, usize> = HashMap::new();
        for (i, p) in self.egress_network_policies.iter().enumerate() {
            let o = Obj::EgressPolicy(i);
            let Some(ns) = p.metadata.namespace.as_deref() else {
                f.one(o, "metadata", format!("EgressNetworkPolicy {}: metadata.namespace is missing", p.metadata.name));
                continue;
            };
            // openshift-sdn drops all of a namespace's egress when it has two.
            if let Some(&j) = by_ns.get(ns) {
                f.pair(
                    o,
                    "metadata",
                    (Obj::EgressPolicy(j), "metadata"),
                    format!(
                        "EgressNetworkPolicy {ns}/{}: namespace {ns} already has one ({}); openshift-sdn would block all its egress",
                        p.metadata.name, self.egress_network_policies[j].metadata.name
                    ),
                );
            } else {
                by_ns.insert(ns, i);
            }
            for r in &p.spec.egress {
                match (&r.to.cidr_selector, &r.to.dns_name) {
                    (Some(c), _) => {
                        if let Some(raw) = host_bits(c) {
                            f.one(
                                o,
                                "spec",
                                format!(
                                    "EgressNetworkPolicy {ns}/{}: cidrSelector {raw} has host bits set",
                                    p.metadata.name
                                ),
                            );
                        }
                    }
                    (None, Some(_)) => {}
                    (None, None) => f.one(
                        o,
                        "spec",
                        format!(
                            "EgressNetworkPolicy {ns}/{}: a rule names neither cidrSelector nor dnsName",
                            p.metadata.name
                        ),
                    ),
                }
            }
        }
    }

    /// The YAML paths an object's field may have (a list may be plain or a
    /// Kubernetes `List` with `items:`), most specific first.
    pub fn yaml_paths(&self, obj: Obj, field: &str) -> Vec<String> {
        let list = |name: &str, i: usize| vec![format!("{name}[{i}]"), format!("{name}.items[{i}]")];
        let node = |k: usize| match (&self.node, k) {
            (Some(_), 0) => "node".to_string(),
            (Some(_), k) => format!("nodes[{}]", k - 1),
            (None, k) => format!("nodes[{k}]"),
        };
        let bases = match obj {
            Obj::ClusterNetwork => vec!["clusterNetwork".to_string()],
            Obj::ClusterNetworkEntry(i) => vec![format!("clusterNetwork.clusterNetworks[{i}]")],
            Obj::HostSubnet(i) => list("hostSubnets", i),
            Obj::NetNamespace(i) => list("netNamespaces", i),
            Obj::Node(k) => vec![node(k)],
            Obj::Pod(k, p) => vec![format!("{}.pods[{p}]", node(k))],
            Obj::Service(i) => list("services", i),
            Obj::EgressPolicy(i) => list("egressNetworkPolicies", i),
            Obj::Namespace(i) => list("namespaces", i),
            Obj::ClusterPod(i) => list("pods", i),
            Obj::NetworkPolicy(i) => list("networkPolicies", i),
        };
        let mut out = Vec::new();
        for b in &bases {
            if !field.is_empty() {
                out.push(format!("{b}.{field}"));
            }
        }
        out.extend(bases);
        out
    }

    /// Where an object's field starts in the YAML text `pos` was read from
    /// (the object itself when the field is not written; 1:1 when neither).
    pub fn locate_in(&self, pos: &Positions, obj: Obj, field: &str) -> (usize, usize) {
        if let Some((_, l, c)) = self.origins.locate(obj, field) {
            return (l, c);
        }
        self.yaml_paths(obj, field).iter().find_map(|p| pos.get(p)).unwrap_or((1, 1))
    }

    /// Parses a cluster YAML and checks it: every problem, each located at
    /// line and column of the object it names, in file order.
    ///
    /// # Errors
    /// The syntax or type error serde found (one), or every problem of
    /// [`Cluster::check`].
    pub fn from_yaml_all(text: &str) -> Result<Cluster, Vec<ParseError>> {
        if crate::yaml::is_api_form(text) {
            return crate::load::load(&[(None, text.to_string())]);
        }
        let c = Cluster::from_yaml_unchecked(text).map_err(|e| vec![e])?;
        let problems = c.check();
        if problems.is_empty() {
            return Ok(c);
        }
        let pos = Positions::of(text);
        let mut errs: Vec<ParseError> = problems
            .into_iter()
            .map(|p| {
                let (l, col) = c.locate_in(&pos, p.obj, p.field);
                ParseError::new(l, col, p.msg)
            })
            .collect();
        errs.sort_by_key(|e| (e.line, e.col));
        Err(errs)
    }

    /// Parses and checks a cluster YAML ([`Cluster::from_yaml_all`]).
    ///
    /// # Errors
    /// The first error, located at line and column.
    pub fn from_yaml(text: &str) -> Result<Cluster, ParseError> {
        Cluster::from_yaml_all(text).map_err(|mut v| v.remove(0))
    }

    /// The embedded default cluster.
    ///
    /// # Panics
    /// Never: the embedded text is checked by a test.
    pub fn default_cluster() -> Cluster {
        Cluster::from_yaml(crate::yaml::DEFAULT_CLUSTER).expect("embedded default cluster is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "clusterNetwork:\n  clusterNetworks: [{CIDR: 10.128.0.0/14, hostSubnetLength: 9}]\n  serviceNetwork: 172.30.0.0/16\n  pluginName: redhat/openshift-ovs-multitenant\nhostSubnets:\n- {metadata: {name: a, uid: u}, host: a, hostIP: 172.16.1.3, subnet: 10.128.0.0/23}\n- {metadata: {name: b, uid: v}, host: b, hostIP: 172.16.1.4, subnet: 10.128.2.0/23}\nnetNamespaces: [{netname: x, netid: 7}]\nnode:\n  name: a\n  pods:\n  - {namespace: x, name: p, ip: 10.128.0.5, veth: vp, ofport: 3}\n  - {namespace: x, name: q, ip: 10.128.0.6, veth: vq, ofport: 4}\n";

    fn errs(y: &str) -> Vec<String> {
        match Cluster::from_yaml_all(y) {
            Ok(_) => vec![],
            Err(v) => v.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn test_default_cluster_loads() {
        let c = Cluster::default_cluster();
        assert_eq!(c.host_subnets.len(), 4);
        assert_eq!(c.vnid("project-a"), Some(11235));
        assert!(c.find_pod("project-a/web-1").is_some());
        assert!(c.check().is_empty());
    }

    #[test]
    fn test_base_is_valid() {
        assert_eq!(errs(BASE), Vec::<String>::new());
    }

    #[test]
    fn test_errors_are_located() {
        let y = "clusterNetwork:\n  clusterNetworks: [{CIDR: 10.128.0.0/14, hostSubnetLength: 9}]\n  serviceNetwork: 172.30.0.0/16\n  pluginName: redhat/openshift-ovs-subnet\nhostSubnets:\n  - {metadata: {name: a, uid: u}, host: a, hostIP: 172.16.1.300, subnet: 10.128.0.0/23}\n";
        let e = Cluster::from_yaml(y).unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        assert!(e.msg.contains("IPv4 address"), "{e}");
        let y2 = y.replace("172.16.1.300", "172.16.1.3").replace("openshift-ovs-subnet", "openshift-ovs-bogus");
        let e = Cluster::from_yaml(&y2).unwrap_err();
        assert_eq!((e.line, e.col), (4, 15), "{e}");
        let y3 = y.replace("172.16.1.300", "172.16.1.3") + "bogusKey: 1\n";
        let e = Cluster::from_yaml(&y3).unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        let y4 = y.replace("172.16.1.300", "172.16.1.3")
            + "node:\n  name: a\n  pods:\n    - {namespace: x, name: p, ip: 10.129.0.5, ofport: 3}\n";
        let e = Cluster::from_yaml(&y4).unwrap_err();
        assert_eq!((e.line, e.col), (10, 35), "{e}");
        assert!(e.msg.contains("outside"), "{e}");
    }

    #[test]
    fn test_oc_list_form() {
        let y = "clusterNetwork:\n  clusterNetworks: [{CIDR: 10.128.0.0/14, hostSubnetLength: 9}]\n  serviceNetwork: 172.30.0.0/16\n  pluginName: redhat/openshift-ovs-subnet\nhostSubnets:\n  apiVersion: v1\n  kind: List\n  items:\n  - apiVersion: network.openshift.io/v1\n    kind: HostSubnet\n    metadata: {name: a, uid: u, resourceVersion: \"5\"}\n    host: a\n    hostIP: 172.16.1.3\n    subnet: 10.128.0.0/23\n";
        let c = Cluster::from_yaml(y).unwrap();
        assert_eq!(c.host_subnets[0].host_ip.to_string(), "172.16.1.3");
        // Located inside `items:` too.
        let e = Cluster::from_yaml(&y.replace("10.128.0.0/23", "10.128.0.1/23")).unwrap_err();
        assert_eq!((e.line, e.col), (14, 13), "{e}");
        assert!(e.msg.contains("host bits"), "{e}");
    }

    /// Each rule: the error points at the value that was changed and names
    /// the objects involved.
    #[test]
    fn test_each_rule() {
        // (replace, by, last occurrence, words of the message)
        let cases: &[(&str, &str, bool, &[&str])] = &[
            ("ip: 10.128.0.6", "ip: 10.128.0.5", true, &["10.128.0.5", "x/q", "x/p"]),
            ("veth: vq", "veth: vp", true, &["veth vp", "x/q", "x/p"]),
            ("ofport: 4", "ofport: 3", true, &["ofport 3", "x/p"]),
            ("ofport: 4", "ofport: 0", true, &["ofport 0"]),
            ("ofport: 4", "ofport: 2", true, &["tun0"]),
            ("ofport: 4", "ofport: 65280", true, &["reserved"]),
            ("ip: 10.128.0.6", "ip: 10.128.2.6", true, &["outside", "node b's 10.128.2.0/23"]),
            ("ip: 10.128.0.6", "ip: 10.128.0.0", true, &["subnet address"]),
            ("ip: 10.128.0.6", "ip: 10.128.0.1", true, &["gateway"]),
            ("ip: 10.128.0.6", "ip: 10.128.1.255", true, &["broadcast"]),
            ("subnet: 10.128.2.0/23", "subnet: 10.128.3.0/23", true, &["host bits", "10.128.3.0/23"]),
            ("subnet: 10.128.2.0/23", "subnet: 10.136.0.0/23", true, &["outside every cluster network"]),
            ("subnet: 10.128.2.0/23", "subnet: 10.128.4.0/24", true, &["/24", "hostSubnetLength 9"]),
            ("subnet: 10.128.2.0/23", "subnet: 10.128.0.0/23", true, &["same as node a's"]),
            ("hostIP: 172.16.1.4", "hostIP: 172.16.1.3", true, &["node a's VTEP"]),
            ("hostIP: 172.16.1.4", "hostIP: 10.129.0.1", true, &["inside cluster network"]),
            ("hostIP: 172.16.1.4", "hostIP: 0.0.0.0", true, &["cannot be a VTEP"]),
            ("namespace: x, name: q", "namespace: y, name: q", true, &["no NetNamespace"]),
            ("name: q", "name: p", true, &["x/p is listed twice"]),
            ("veth: vq", "veth: tun0", true, &["own device"]),
            ("veth: vq", "veth: a-very-long-veth-name", true, &["not an interface name"]),
            ("serviceNetwork: 172.30.0.0/16", "serviceNetwork: 10.128.0.0/16", false, &["overlaps cluster network"]),
            ("netid: 7", "netid: 16777216", false, &["24 bits"]),
        ];
        for (from, to, last, words) in cases {
            let i = if *last { BASE.rfind(from) } else { BASE.find(from) }.unwrap();
            let y = format!("{}{to}{}", &BASE[..i], &BASE[i + from.len()..]);
            let value = i + to.find(": ").unwrap() + 2;
            let line = y[..value].matches('\n').count() + 1;
            let col = value - y[..value].rfind('\n').map_or(0, |n| n + 1) + 1;
            let e = errs(&y);
            assert!(!e.is_empty(), "{to}: accepted");
            assert!(e.iter().any(|e| e.starts_with(&format!("<input>:{line}:{col}: "))), "{to}: {line}:{col}: {e:?}");
            let first = e.iter().find(|e| e.starts_with(&format!("<input>:{line}:{col}: "))).unwrap();
            for w in *words {
                assert!(first.contains(w), "{to}: `{w}` missing from {first}");
            }
        }
    }

    #[test]
    fn test_synthetic_cluster_is_valid() {
        let c = crate::yaml::synthetic_cluster(300, 500, 100);
        assert_eq!(c.check(), vec![]);
    }

    #[test]
    fn test_synthetic_policy_cluster_is_valid_and_renders_each_shape() {
        let mut c = crate::load::synthetic_policy_cluster(1000, 500);
        assert_eq!(c.check(), vec![]);
        assert_eq!((c.pods.len(), c.network_policies.len()), (1000, 500));
        assert_eq!(c.find_node("node-0").map(|n| n.pods.len()), Some(20));
        let local: std::collections::BTreeSet<&str> =
            c.find_node("node-0").unwrap().pods.iter().map(|p| p.namespace.as_str()).collect();
        assert_eq!(local.len(), 20, "local pods spread over namespaces");
        c.sdn_version = Some(crate::yaml::SdnVersion::V4_13);
        let r = crate::render::render(&c, "node-0").unwrap();
        // Each shape renders: the range as value/mask pairs, the egress
        // table with 10.0.0.0/8 less the cluster network as CIDRs.
        let text: Vec<String> = r.flows.iter().map(|f| f.to_string()).collect();
        for want in [
            "table=80",
            "tp_dst=0x1f40/0xffc0",
            "tp_dst=0x1fa0/0xfffc",
            "table=27",
            "nw_dst=10.0.0.0/9,",
            "nw_dst=10.132.0.0/14,",
        ] {
            assert!(text.iter().any(|f| f.contains(want)), "no flow with {want}");
        }
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn test_overlap_of_wider_subnet() {
        let y = BASE.replace(
            "netNamespaces",
            "- {metadata: {name: c, uid: w}, host: c, hostIP: 172.16.1.5, subnet: 10.128.0.0/22}\nnetNamespaces",
        );
        let e = errs(&y);
        assert!(e.iter().any(|e| e.contains("HostSubnet c: subnet 10.128.0.0/22 overlaps node a's")), "{e:?}");
    }
}
