//! The cluster model: ClusterNetwork, HostSubnets, NetNamespaces, the nodes
//! with their local pods, services and EgressNetworkPolicies, with field names
//! as `oc get -o yaml` prints them (DESIGN.md §5).
//!
//! Lists of API objects may be pasted as `oc get hostsubnets -o yaml` prints
//! them (a `List` with `items:`) or as a plain sequence; unknown fields of API
//! objects (resourceVersion, creationTimestamp, ...) are ignored, unknown keys
//! of sdnfwd's own sections are errors. Every error names line and column.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use serde::{Deserialize, Deserializer};

/// The embedded default cluster (OPENSHIFT_SDN_PIPELINE.md §8: four nodes,
/// multitenant, pods on node-d and node-b), used when no file is given.
pub const DEFAULT_CLUSTER: &str = include_str!("../data/default-cluster.yaml");

/// The embedded NetworkPolicy cluster (`sdnfwd demo`'s 4.13 section): two
/// nodes with OpenShift 4.13's rules and the networkpolicy plugin, pods in
/// three namespaces, node sections then the API objects as `oc get -o
/// yaml` prints them.
pub const NETPOL_CLUSTER: &str = include_str!("../data/netpol-cluster.yaml");

/// A whole cluster description (or one node's view of it).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    /// ClusterNetwork `default` (required: here or as an API object).
    #[serde(default)]
    pub cluster_network: ClusterNetwork,
    /// HostSubnet list.
    #[serde(default, deserialize_with = "list_or_items")]
    pub host_subnets: Vec<HostSubnet>,
    /// NetNamespace list.
    #[serde(default, deserialize_with = "list_or_items")]
    pub net_namespaces: Vec<NetNamespace>,
    /// This node (node.yaml form).
    #[serde(default)]
    pub node: Option<Node>,
    /// Several nodes (cluster.yaml form); `--node NAME` picks one.
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// Services.
    #[serde(default, deserialize_with = "list_or_items")]
    pub services: Vec<Service>,
    /// EgressNetworkPolicies.
    #[serde(default, deserialize_with = "list_or_items")]
    pub egress_network_policies: Vec<EgressNetworkPolicy>,
    /// Namespaces (their labels, for NetworkPolicy selectors).
    #[serde(default, deserialize_with = "list_or_items")]
    pub namespaces: Vec<Namespace>,
    /// Pods of the whole cluster as the API prints them (labels, node, IP):
    /// NetworkPolicy selects from them, and those on a described node with
    /// a HostSubnet become that node's local pods.
    #[serde(default, deserialize_with = "list_or_items")]
    pub pods: Vec<ClusterPod>,
    /// NetworkPolicies (networking.k8s.io/v1).
    #[serde(default, deserialize_with = "list_or_items")]
    pub network_policies: Vec<NetworkPolicy>,
    /// Extra ovs-ofctl flow text appended after the rendered flows (a path).
    #[serde(default)]
    pub flows: Option<String>,
    /// `--sdn-version` given on the command line: overrides every node's
    /// `sdnVersion`.
    #[serde(skip)]
    pub sdn_version: Option<SdnVersion>,
    /// Where each object came from (set by [`crate::load`] and by
    /// [`Cluster::from_yaml_unchecked`] for what it derives).
    #[serde(skip)]
    pub origins: crate::obj::Origins,
    /// What loading skipped, one line each (kinds sdnfwd does not use).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// ClusterNetwork `default` (network.openshift.io/v1).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetwork {
    /// Pod network CIDRs with host subnet lengths.
    pub cluster_networks: Vec<ClusterNetworkEntry>,
    /// Service ClusterIP CIDR.
    pub service_network: Cidr,
    /// `redhat/openshift-ovs-subnet`, `-multitenant` or `-networkpolicy`.
    pub plugin_name: String,
    /// VXLAN UDP port (4789 when absent).
    #[serde(default)]
    pub vxlan_port: Option<u16>,
    /// Overlay MTU (4.x); 1450 when absent.
    #[serde(default)]
    pub mtu: Option<u32>,
}

/// One `clusterNetworks[]` entry.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ClusterNetworkEntry {
    /// The CIDR.
    #[serde(rename = "CIDR")]
    pub cidr: Cidr,
    /// Host bits per node subnet.
    #[serde(rename = "hostSubnetLength")]
    pub host_subnet_length: u32,
}

/// Object metadata (the parts sdnfwd reads).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Metadata {
    /// Object name.
    #[serde(default)]
    pub name: String,
    /// Namespace (namespaced objects).
    #[serde(default)]
    pub namespace: Option<String>,
    /// UID (HostSubnet cookies derive from it).
    #[serde(default)]
    pub uid: Option<String>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// HostSubnet (one per node).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HostSubnet {
    /// Metadata; `uid` gives the cookie.
    #[serde(default)]
    pub metadata: Metadata,
    /// Node name.
    pub host: String,
    /// Node underlay IP (VTEP).
    #[serde(rename = "hostIP")]
    pub host_ip: Ip,
    /// Pod subnet of the node.
    pub subnet: Cidr,
    /// Egress IPs hosted by the node.
    #[serde(default, rename = "egressIPs")]
    pub egress_ips: Vec<Ip>,
    /// Egress CIDRs (master side; ignored).
    #[serde(default, rename = "egressCIDRs")]
    pub egress_cidrs: Vec<String>,
}

impl HostSubnet {
    /// A HostSubnet from its parts (the control socket's `hostsubnet
    /// add`); the cookie then derives from the name. Only the syntax is
    /// checked here: the subnet is kept as written, host bits included, for
    /// [`Cluster::check`] to judge with the rest of the cluster.
    pub fn new(name: &str, host_ip: &str, subnet: &str) -> Result<HostSubnet, String> {
        let ip: Ipv4Addr = host_ip.parse().map_err(|_| format!("hostIP `{host_ip}` is not an IPv4 address"))?;
        if !subnet.contains('/') {
            return Err(format!("subnet `{subnet}` is not an IPv4 CIDR a.b.c.d/n"));
        }
        let net: Ipv4Network = subnet.parse().map_err(|_| format!("subnet `{subnet}` is not an IPv4 CIDR"))?;
        Ok(HostSubnet {
            metadata: Metadata { name: name.into(), ..Default::default() },
            host: name.into(),
            host_ip: Ip(ip),
            subnet: Cidr(net),
            egress_ips: Vec::new(),
            egress_cidrs: Vec::new(),
        })
    }
}

/// NetNamespace (one per Namespace).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetNamespace {
    /// Metadata (annotations: multicast).
    #[serde(default)]
    pub metadata: Metadata,
    /// Namespace name.
    pub netname: String,
    /// VNID.
    pub netid: u32,
    /// Requested egress IPs.
    #[serde(default, rename = "egressIPs")]
    pub egress_ips: Vec<Ip>,
}

/// Annotation that enables multicast on a NetNamespace.
pub const MULTICAST_ANNOTATION: &str = "netnamespace.network.openshift.io/multicast-enabled";
/// Annotation that fixes the VNID used towards a HostSubnet.
pub const FIXED_VNID_ANNOTATION: &str = "pod.network.openshift.io/fixed-vnid-host";

impl NetNamespace {
    /// Whether the namespace carries the multicast annotation.
    pub fn multicast_enabled(&self) -> bool {
        self.metadata.annotations.get(MULTICAST_ANNOTATION).map(String::as_str) == Some("true")
    }
}

/// A node and its local pods.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    /// Node name (= HostSubnet name).
    pub name: String,
    /// Underlay interface.
    #[serde(default)]
    pub uplink: Option<String>,
    /// Cores for poll loops.
    #[serde(default)]
    pub cores: Vec<usize>,
    /// Local pods.
    #[serde(default)]
    pub pods: Vec<Pod>,
    /// tun0 MAC (egress IP flows rewrite to it).
    #[serde(default, rename = "tun0MAC")]
    pub tun0_mac: Option<String>,
    /// The openshift-sdn release whose rules the node runs (3.11 when
    /// absent; `--sdn-version` overrides it).
    #[serde(default)]
    pub sdn_version: Option<SdnVersion>,
}

impl Node {
    /// A node with nothing but its name.
    pub fn named(name: &str) -> Node {
        Node { name: name.into(), uplink: None, cores: vec![], pods: vec![], tun0_mac: None, sdn_version: None }
    }
}

/// The openshift-sdn rules a node runs (OPENSHIFT_SDN_PIPELINE.md §1.10, §9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SdnVersion {
    /// OpenShift 3.11, rule version 7: conntrack rules for the
    /// networkpolicy plugin only, ingress policy in table 80.
    #[default]
    V3_11,
    /// OpenShift 4.13, rule version 13: conntrack rules for every plugin,
    /// tables 27/30/31/99/100/101, egress IPs through select groups.
    V4_13,
}

impl SdnVersion {
    /// `3.11` or `4.13`.
    ///
    /// # Errors
    /// Any other text, naming it.
    pub fn parse(s: &str) -> Result<SdnVersion, String> {
        match s.trim() {
            "3.11" => Ok(SdnVersion::V3_11),
            "4.13" => Ok(SdnVersion::V4_13),
            other => Err(format!("sdn version `{other}` is not one sdnfwd renders; expected 3.11 or 4.13")),
        }
    }

    /// The rule version openshift-sdn writes in table 253.
    pub fn rule_version(self) -> u8 {
        match self {
            SdnVersion::V3_11 => 7,
            SdnVersion::V4_13 => 13,
        }
    }
}

impl std::fmt::Display for SdnVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SdnVersion::V3_11 => "3.11",
            SdnVersion::V4_13 => "4.13",
        })
    }
}

impl<'de> Deserialize<'de> for SdnVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `sdnVersion: 4.13` is a YAML float; `"4.13"` a string.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SdnVersion;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("3.11 or 4.13")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<SdnVersion, E> {
                SdnVersion::parse(s).map_err(|_| E::custom(format!("expected sdnVersion 3.11 or 4.13, found `{s}`")))
            }
            fn visit_f64<E: serde::de::Error>(self, x: f64) -> Result<SdnVersion, E> {
                self.visit_str(&format!("{x}"))
            }
            fn visit_u64<E: serde::de::Error>(self, x: u64) -> Result<SdnVersion, E> {
                self.visit_str(&format!("{x}"))
            }
            fn visit_i64<E: serde::de::Error>(self, x: i64) -> Result<SdnVersion, E> {
                self.visit_str(&format!("{x}"))
            }
        }
        d.deserialize_any(V)
    }
}

/// A pod of the cluster as `oc get pods -A -o yaml` prints it (the fields
/// sdnfwd reads).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ClusterPod {
    /// Name, namespace, labels.
    #[serde(default)]
    pub metadata: Metadata,
    /// Node and host networking.
    #[serde(default)]
    pub spec: ClusterPodSpec,
    /// The pod IP.
    #[serde(default)]
    pub status: ClusterPodStatus,
}

/// The parts of a Pod's spec sdnfwd reads.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPodSpec {
    /// The node it runs on.
    #[serde(default)]
    pub node_name: Option<String>,
    /// Host-network pods have no port on br0 and are never selected.
    #[serde(default)]
    pub host_network: bool,
}

/// The parts of a Pod's status sdnfwd reads.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ClusterPodStatus {
    /// The pod IP (absent until the CNI plugin gave one).
    #[serde(default, rename = "podIP")]
    pub pod_ip: Option<Ip>,
}

impl ClusterPod {
    /// The namespace (empty when the object names none).
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("")
    }

    /// The IP NetworkPolicy selects it by: none for host-network pods and
    /// pods without an IP (openshift-sdn's isOnPodNetwork).
    pub fn policy_ip(&self) -> Option<Ipv4Addr> {
        (!self.spec.host_network).then_some(self.status.pod_ip?.0)
    }
}

/// A Namespace (v1): its labels are what namespaceSelectors match.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Namespace {
    /// Name and labels.
    #[serde(default)]
    pub metadata: Metadata,
}

/// A local pod.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pod {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod IP; may be left out when a Pod object (`pods:` or an API
    /// object) gives `status.podIP` ([`Ip::UNSET`] until then).
    #[serde(default = "Ip::unset")]
    pub ip: Ip,
    /// Host-side veth.
    #[serde(default)]
    pub veth: Option<String>,
    /// OpenFlow port (≥ 3); left out, one is allocated from 3 upwards in
    /// the order of namespace/name ([`OFPORT_UNSET`] until then).
    #[serde(default = "ofport_unset")]
    pub ofport: u32,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Pod {
    /// A pod from its parts (the control socket's `pod add`); the IP's
    /// syntax is checked here, the rest by [`Cluster::check`].
    pub fn new(namespace: &str, name: &str, ip: &str, veth: &str, ofport: u32) -> Result<Pod, String> {
        let ip: Ipv4Addr = ip.parse().map_err(|_| format!("pod IP `{ip}` is not an IPv4 address"))?;
        Ok(Pod {
            namespace: namespace.into(),
            name: name.into(),
            ip: Ip(ip),
            veth: Some(veth.into()),
            ofport,
            labels: BTreeMap::new(),
        })
    }

    /// The pod MAC openshift-sdn derives from the IP: `0a:58:` + the octets.
    pub fn mac(&self) -> u64 {
        0x0a58_0000_0000 | u32::from(self.ip.0) as u64
    }
}

/// The ofport of a pod whose entry leaves it out, until one is allocated.
pub const OFPORT_UNSET: u32 = u32::MAX;

fn ofport_unset() -> u32 {
    OFPORT_UNSET
}

/// A service (flattened: namespace, name, clusterIP, ports).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// ClusterIP (empty or `None` for headless).
    #[serde(default, rename = "clusterIP")]
    pub cluster_ip: String,
    /// Ports.
    #[serde(default)]
    pub ports: Vec<ServicePort>,
}

/// A service port.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ServicePort {
    /// TCP or UDP (default TCP).
    #[serde(default = "default_tcp")]
    pub protocol: String,
    /// Port.
    pub port: u16,
}

fn default_tcp() -> String {
    "TCP".into()
}

/// EgressNetworkPolicy.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct EgressNetworkPolicy {
    /// Metadata (namespace required).
    pub metadata: Metadata,
    /// Spec.
    pub spec: EgressSpec,
}

/// EgressNetworkPolicy spec.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct EgressSpec {
    /// Ordered rules.
    #[serde(default)]
    pub egress: Vec<EgressRule>,
}

/// One egress rule.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct EgressRule {
    /// Allow or Deny.
    #[serde(rename = "type")]
    pub kind: EgressType,
    /// Destination.
    pub to: EgressTo,
}

/// Allow or Deny.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum EgressType {
    /// Allow.
    Allow,
    /// Deny.
    Deny,
}

/// Destination of an egress rule.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EgressTo {
    /// CIDR.
    #[serde(default)]
    pub cidr_selector: Option<Cidr>,
    /// DNS name (needs resolution; see the renderer).
    #[serde(default)]
    pub dns_name: Option<String>,
}

/// An IPv4 address from YAML.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ip(pub Ipv4Addr);

impl<'de> Deserialize<'de> for Ip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<Ipv4Addr>()
            .map(Ip)
            .map_err(|_| serde::de::Error::custom(format!("expected an IPv4 address a.b.c.d, found `{s}`")))
    }
}

impl Ip {
    /// A pod IP that is not given (yet): 0.0.0.0.
    pub const UNSET: Ip = Ip(Ipv4Addr::UNSPECIFIED);

    fn unset() -> Ip {
        Ip::UNSET
    }
}

impl std::fmt::Display for Ip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An IPv4 CIDR from YAML (as written: [`Cidr::addr`] and `Display` give
/// the network, `.0.ip()` the address written).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr(pub Ipv4Network);

impl Default for Cidr {
    /// 0.0.0.0/0 (what an absent ClusterNetwork holds until one is given).
    fn default() -> Cidr {
        Cidr(Ipv4Network::new(Ipv4Addr::UNSPECIFIED, 0).unwrap_or_else(|_| unreachable!("/0 is a valid prefix")))
    }
}

impl Cidr {
    /// Network address as u32.
    pub fn addr(&self) -> u32 {
        u32::from(self.0.network())
    }
    /// Prefix length.
    pub fn prefix(&self) -> u8 {
        self.0.prefix()
    }
    /// Whether `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.0.contains(ip)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.0.network(), self.0.prefix())
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || serde::de::Error::custom(format!("expected an IPv4 CIDR a.b.c.d/n, found `{s}`"));
        if !s.contains('/') {
            return Err(bad());
        }
        // Host bits are kept as written: Cluster::check refuses them (as
        // OpenShift's API does) with the network it meant.
        s.parse::<Ipv4Network>().map(Cidr).map_err(|_| bad())
    }
}

/// Accepts a plain sequence or a Kubernetes `List` (`items:`), reading the
/// elements straight from the document so that errors keep their location.
fn list_or_items<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list, or a Kubernetes List with `items:`")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(x) = seq.next_element()? {
                out.push(x);
            }
            Ok(out)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(k) = map.next_key::<String>()? {
                if k == "items" {
                    out = map.next_value()?;
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(out)
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

/// Whether a text is a stream of several documents or API objects (with
/// `kind:`), which [`crate::load`] reads, rather than one sdnfwd cluster
/// document.
pub fn is_api_form(text: &str) -> bool {
    let docs = crate::yaml_pos::Positions::of_all(text);
    docs.len() > 1 || docs.first().is_some_and(|p| p.get("kind").is_some())
}

/// Where `needle` first occurs in `text`, as 1-based (line, col); (1, 1)
/// when absent.
pub fn locate(text: &str, needle: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        if let Some(c) = line.find(needle) {
            return (i + 1, line[..c].chars().count() + 1);
        }
    }
    (1, 1)
}

/// The value a message quotes as "found `X`".
pub(crate) fn quoted_value(msg: &str) -> Option<&str> {
    let i = msg.find("found `")? + 7;
    let j = msg[i..].find('`')?;
    Some(&msg[i..i + j]).filter(|v| !v.is_empty())
}

/// Where `needle` first occurs at or after 1-based `line`.
pub(crate) fn locate_from(text: &str, line: usize, needle: &str) -> Option<(usize, usize)> {
    text.lines()
        .enumerate()
        .skip(line.saturating_sub(1))
        .find_map(|(i, l)| l.find(needle).map(|c| (i + 1, l[..c].chars().count() + 1)))
}

impl Cluster {
    /// Every node described (`node` and `nodes`).
    pub fn all_nodes(&self) -> impl Iterator<Item = &Node> {
        self.node.iter().chain(self.nodes.iter())
    }

    /// The node named `name`, writable.
    pub fn node_mut(&mut self, name: &str) -> Option<&mut Node> {
        if self.node.as_ref().is_some_and(|n| n.name == name) {
            return self.node.as_mut();
        }
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    /// The node named `name`, from `node:` or `nodes:`.
    pub fn find_node(&self, name: &str) -> Option<&Node> {
        self.all_nodes().find(|n| n.name == name)
    }

    /// HostSubnet of a node (by object name or `host`).
    pub fn host_subnet(&self, node: &str) -> Option<&HostSubnet> {
        self.host_subnets.iter().find(|h| h.metadata.name == node || h.host == node)
    }

    /// VNID of a namespace: 0 for the subnet plugin; the NetNamespace's netid
    /// otherwise (None when the namespace has none).
    pub fn vnid(&self, namespace: &str) -> Option<u32> {
        if plugin_id(&self.cluster_network.plugin_name) == Some(0) {
            return Some(0);
        }
        self.net_namespaces.iter().find(|n| n.netname == namespace).map(|n| n.netid)
    }

    /// Looks up a pod as `namespace/name` on any node; returns (node, pod).
    pub fn find_pod(&self, ns_name: &str) -> Option<(&Node, &Pod)> {
        let (ns, name) = ns_name.split_once('/')?;
        self.all_nodes()
            .flat_map(|n| n.pods.iter().map(move |p| (n, p)))
            .find(|(_, p)| p.namespace == ns && p.name == name)
    }

    /// The openshift-sdn release whose rules node `name` runs: the
    /// command line's override, else its node section's `sdnVersion`, else
    /// 3.11.
    pub fn version_for(&self, name: &str) -> SdnVersion {
        self.sdn_version.or_else(|| self.find_node(name).and_then(|n| n.sdn_version)).unwrap_or_default()
    }

    /// VXLAN UDP port.
    pub fn vxlan_port(&self) -> u16 {
        self.cluster_network.vxlan_port.unwrap_or(4789)
    }
}

/// Plugin id: subnet 0, multitenant 1, networkpolicy 2.
pub fn plugin_id(name: &str) -> Option<u8> {
    match name.to_ascii_lowercase().as_str() {
        "redhat/openshift-ovs-subnet" => Some(0),
        "redhat/openshift-ovs-multitenant" => Some(1),
        "redhat/openshift-ovs-networkpolicy" => Some(2),
        _ => None,
    }
}

/// A synthetic cluster for scale tests and benchmarks: `n_nodes` nodes
/// (10.128.0.0/12, /23 each; VTEPs 172.16.x.y), `n_services` services of
/// one TCP port each spread over 20 multitenant namespaces, and `n_pods`
/// local pods on the first node (`node-0`), round-robin over the namespaces.
///
/// # Panics
/// If `n_nodes` exceeds 2048 or `n_pods` exceeds 500.
pub fn synthetic_cluster(n_nodes: usize, n_services: usize, n_pods: usize) -> Cluster {
    use std::fmt::Write as _;
    assert!(n_nodes <= 2048 && n_pods <= 500 && n_nodes >= 1);
    let mut y = String::from(
        "clusterNetwork:\n  clusterNetworks: [{CIDR: 10.128.0.0/12, hostSubnetLength: 9}]\n  serviceNetwork: 172.30.0.0/16\n  pluginName: redhat/openshift-ovs-multitenant\nhostSubnets:\n",
    );
    for i in 0..n_nodes {
        let subnet = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + ((i as u32) << 9));
        let host = Ipv4Addr::new(172, 16, (i / 250) as u8, (i % 250 + 1) as u8);
        let _ = writeln!(
            y,
            "- {{metadata: {{name: node-{i}, uid: uid-{i}}}, host: node-{i}, hostIP: {host}, subnet: {subnet}/23}}"
        );
    }
    y.push_str("netNamespaces:\n- {netname: default, netid: 0}\n");
    for n in 1..20 {
        let _ = writeln!(y, "- {{netname: ns-{n}, netid: {}}}", 100 + n);
    }
    y.push_str("nodes:\n- name: node-0\n  pods:\n");
    for p in 0..n_pods {
        let ns = if p % 20 == 0 { "default".to_string() } else { format!("ns-{}", p % 20) };
        let _ = writeln!(
            y,
            "  - {{namespace: {ns}, name: pod-{p}, ip: 10.128.{}.{}, ofport: {}}}",
            (p + 2) / 256,
            (p + 2) % 256,
            p + 3
        );
    }
    y.push_str("services:\n");
    for s in 0..n_services {
        let ns = if s % 20 == 0 { "default".to_string() } else { format!("ns-{}", s % 20) };
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 30, 0, 1)) + s as u32);
        let _ = writeln!(
            y,
            "- {{namespace: {ns}, name: svc-{s}, clusterIP: {ip}, ports: [{{protocol: TCP, port: {}}}]}}",
            80 + s % 1000
        );
    }
    Cluster::from_yaml_unchecked(&y).expect("synthetic cluster parses (config::check tests that it is valid)")
}

/// A NetworkPolicy.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct NetworkPolicy {
    /// Name and namespace.
    #[serde(default)]
    pub metadata: Metadata,
    /// The policy.
    #[serde(default)]
    pub spec: PolicySpec,
}

/// `spec` of a NetworkPolicy.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    /// The pods it applies to (empty: all of the namespace).
    #[serde(default)]
    pub pod_selector: LabelSelector,
    /// `Ingress`, `Egress`; absent: as the API server defaults it
    /// (Ingress, plus Egress when there are egress rules).
    #[serde(default)]
    pub policy_types: Option<Vec<String>>,
    /// Ingress rules.
    #[serde(default)]
    pub ingress: Vec<PolicyRule>,
    /// Egress rules.
    #[serde(default)]
    pub egress: Vec<PolicyRule>,
}

/// An ingress (`from`) or egress (`to`) rule.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct PolicyRule {
    /// Peers (`from` of an ingress rule, `to` of an egress rule).
    #[serde(default, rename = "from", alias = "to")]
    pub peers: Vec<Peer>,
    /// Ports.
    #[serde(default)]
    pub ports: Vec<PolicyPort>,
}

/// One peer.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    /// Pods (of the policy's namespace, or of the selected namespaces).
    #[serde(default)]
    pub pod_selector: Option<LabelSelector>,
    /// Namespaces.
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    /// A CIDR less exceptions.
    #[serde(default)]
    pub ip_block: Option<IpBlock>,
}

/// `ipBlock`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct IpBlock {
    /// The CIDR.
    pub cidr: String,
    /// CIDRs inside it that are not part of it.
    #[serde(default)]
    pub except: Vec<String>,
}

/// A port of a rule.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyPort {
    /// TCP (default), UDP or SCTP.
    #[serde(default)]
    pub protocol: Option<String>,
    /// A number or a container port's name; absent: every port.
    #[serde(default)]
    pub port: Option<PortValue>,
    /// The last port of a range starting at `port` (4.10+).
    #[serde(default)]
    pub end_port: Option<u32>,
}

/// A port number or name (Kubernetes' IntOrString).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortValue {
    /// A number.
    Number(i64),
    /// A named container port.
    Name(String),
}

impl<'de> Deserialize<'de> for PortValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = PortValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a port number or name")
            }
            fn visit_i64<E: serde::de::Error>(self, x: i64) -> Result<PortValue, E> {
                Ok(PortValue::Number(x))
            }
            fn visit_u64<E: serde::de::Error>(self, x: u64) -> Result<PortValue, E> {
                Ok(PortValue::Number(i64::try_from(x).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<PortValue, E> {
                Ok(PortValue::Name(s.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A label selector.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must be equal.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Requirements.
    #[serde(default)]
    pub match_expressions: Vec<Requirement>,
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// In, NotIn, Exists, DoesNotExist.
    pub operator: String,
    /// Values (In, NotIn).
    #[serde(default)]
    pub values: Vec<String>,
}
