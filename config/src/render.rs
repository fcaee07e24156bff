//! The OpenShift SDN flow renderer: a node's full `br0` flow set from the
//! cluster model, as openshift-sdn 3.11 (rule version 7) programs it for the
//! subnet and multitenant plugins without conntrack
//! (OPENSHIFT_SDN_PIPELINE.md §5, order of §10.10).
//!
//! Flows are produced as the same ovs-ofctl text openshift-sdn writes and
//! parsed with [`crate::ofctl`], so the renderer and the flow parser cannot
//! disagree on a field.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use sha2::{Digest, Sha256};

use crate::netpol::{namespace_flows, PolicyCtx};
use crate::ofctl::{parse_flow_line, parse_group_line, FlowSpec, GroupCommand, GroupLineKind, GroupSpec, LineKind};
use crate::yaml::{plugin_id, Cluster, EgressType, HostSubnet, Node, SdnVersion, FIXED_VNID_ANNOTATION};

/// Rule version of OpenShift 3.11.
pub const RULE_VERSION: u8 = 7;

/// Result of rendering a node.
#[derive(Clone, Debug, Default)]
pub struct Rendered {
    /// The flows, in programming order (table 253's note last).
    pub flows: Vec<FlowSpec>,
    /// The groups the flows name (4.x egress IPs), to be added first.
    pub groups: Vec<GroupSpec>,
    /// Objects skipped the way openshift-sdn skips them (with why).
    pub warnings: Vec<String>,
    /// NetworkPolicy allow flows (index into `flows`) and the policies
    /// (`namespace/name`) whose rules made them: kept beside the flows,
    /// which stay as openshift-sdn writes them.
    pub admitted_by: BTreeMap<usize, Vec<String>>,
}

impl Rendered {
    /// The text `sdnfwd render` prints: the groups as bundle lines
    /// (`group add ...`), then the flows in add-flows syntax; what
    /// `sdnfwd check-flows`, `trace --flows` and `ctl add-flows` read.
    pub fn to_text(&self) -> String {
        let mut s: String = self.groups.iter().map(|g| format!("group add {g}\n")).collect();
        s.push_str(&crate::ofctl::flow_file(&self.flows));
        s
    }

    /// The policies that made the flow at `spec` (table, priority, match).
    pub fn policies_of(&self, spec: &FlowSpec) -> Option<&[String]> {
        self.admitted_by
            .iter()
            .find(|(&i, _)| {
                let f = &self.flows[i];
                f.table == spec.table && f.priority == spec.priority && f.m == spec.m
            })
            .map(|(_, v)| &v[..])
    }
}

/// Why a node cannot be rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderError(pub String);

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RenderError {}

/// The per-node cookie: the first four bytes of SHA-256 of the HostSubnet UID.
pub fn host_subnet_cookie(uid: &str) -> u32 {
    let d = Sha256::digest(uid.as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// The egress-IP packet mark of a VNID (masquerade bit 14 relocated).
pub fn egress_mark(vnid: u32) -> u32 {
    let mut mark = if vnid == 0 { 0xff00_0000 } else { vnid };
    if mark & 0x4000 != 0 {
        mark = (mark | 0x0100_0000) & !0x4000;
    }
    mark
}

struct Out {
    flows: Vec<FlowSpec>,
}

impl Out {
    fn add(&mut self, text: String) -> Result<(), RenderError> {
        let spec = parse_flow_line(&text, LineKind::Add)
            .map_err(|e| RenderError(format!("internal error rendering `{text}`: {}", e.msg)))?;
        self.flows.push(spec);
        Ok(())
    }
}

fn gateway(subnet: &crate::yaml::Cidr) -> Ipv4Addr {
    Ipv4Addr::from(subnet.addr() | 1)
}

/// Whether a remote HostSubnet is usable (openshift-sdn's validation).
fn valid_remote(cluster: &Cluster, hs: &HostSubnet) -> Result<(), String> {
    let ip = hs.host_ip.0;
    if ip.is_unspecified() || ip == Ipv4Addr::LOCALHOST {
        return Err(format!("HostSubnet {}: invalid hostIP {}", hs.metadata.name, ip));
    }
    for cn in &cluster.cluster_network.cluster_networks {
        if cn.cidr.contains(ip) {
            return Err(format!(
                "HostSubnet {}: hostIP {} is inside cluster network {}",
                hs.metadata.name, ip, cn.cidr
            ));
        }
    }
    if cluster.cluster_network.service_network.contains(ip) {
        return Err(format!("HostSubnet {}: hostIP {} is inside the service network", hs.metadata.name, ip));
    }
    Ok(())
}

/// What a rendering is for: the node and the openshift-sdn release.
struct Ctx<'a> {
    cluster: &'a Cluster,
    /// Conntrack rules (§1.10).
    ct: bool,
    v4: bool,
}

impl Ctx<'_> {
    /// The routing table (30 in 3.11; 31 in 4.10+).
    fn route(&self) -> u8 {
        if self.v4 {
            31
        } else {
            30
        }
    }
}

/// Renders the flows of node `node_name` with the rules of its openshift-sdn
/// release ([`Cluster::version_for`]).
///
/// # Errors
/// Unknown node or plugin, or a local pod whose namespace has no
/// NetNamespace.
pub fn render(cluster: &Cluster, node_name: &str) -> Result<Rendered, RenderError> {
    render_version(cluster, node_name, cluster.version_for(node_name))
}

/// Renders the flows of node `node_name` with the rules of `version`
/// (3.11: §5, with the networkpolicy plugin's conntrack rules of §8.8; 4.13:
/// §9, conntrack rules for every plugin).
///
/// # Errors
/// As [`render`].
pub fn render_version(cluster: &Cluster, node_name: &str, version: SdnVersion) -> Result<Rendered, RenderError> {
    let cn = &cluster.cluster_network;
    let plugin = plugin_id(&cn.plugin_name).ok_or_else(|| RenderError(format!("unknown plugin {}", cn.plugin_name)))?;
    let v4 = version == SdnVersion::V4_13;
    let x = Ctx { cluster, ct: v4 || plugin == 2, v4 };
    let local = cluster
        .host_subnet(node_name)
        .ok_or_else(|| RenderError(format!("node `{node_name}` has no HostSubnet in the cluster")))?;
    let empty = Node::named(node_name);
    let node = cluster.find_node(node_name).unwrap_or(&empty);
    let ls = local.subnet;
    let gw = gateway(&ls);
    let node_ip = local.host_ip.0;
    let sn = cn.service_network;
    let vxp = cluster.vxlan_port();
    let (ct, route) = (x.ct, x.route());
    let mut out = Out { flows: Vec::new() };
    let mut warnings = Vec::new();
    let mut groups = Vec::new();

    // Fixed flows (setup bundle, §8.2; §8.8's conntrack rules; §9).
    if ct {
        let p = if v4 { 1000 } else { 300 };
        out.add(format!("table=0, priority={p}, ip, ct_state=-trk, actions=ct(table=0)"))?;
    }
    for c in &cn.cluster_networks {
        let c = c.cidr;
        out.add(format!("table=0, priority=200, in_port=1, arp, arp_spa={c}, arp_tpa={ls}, actions=move:NXM_NX_TUN_ID[0..31]->NXM_NX_REG0[],goto_table:10"))?;
        out.add(format!("table=0, priority=200, in_port=1, ip, nw_src={c}, actions=move:NXM_NX_TUN_ID[0..31]->NXM_NX_REG0[],goto_table:10"))?;
        out.add(format!("table=0, priority=200, in_port=1, ip, nw_dst={c}, actions=move:NXM_NX_TUN_ID[0..31]->NXM_NX_REG0[],goto_table:10"))?;
    }
    out.add("table=0, priority=150, in_port=1, actions=drop".into())?;
    if ct {
        out.add(format!("table=0, priority=400, in_port=2, ip, nw_src={gw}, actions=goto_table:30"))?;
        for c in &cn.cluster_networks {
            out.add(format!(
                "table=0, priority=300, in_port=2, ip, nw_src={ls}, nw_dst={}, actions=goto_table:25",
                c.cidr
            ))?;
        }
    }
    out.add("table=0, priority=250, in_port=2, ip, nw_dst=224.0.0.0/4, actions=drop".into())?;
    for c in &cn.cluster_networks {
        out.add(format!(
            "table=0, priority=200, in_port=2, arp, arp_spa={gw}, arp_tpa={}, actions=goto_table:30",
            c.cidr
        ))?;
    }
    out.add("table=0, priority=200, in_port=2, ip, actions=goto_table:30".into())?;
    out.add("table=0, priority=150, in_port=2, actions=drop".into())?;
    out.add("table=0, priority=100, arp, actions=goto_table:20".into())?;
    out.add("table=0, priority=100, ip, actions=goto_table:20".into())?;
    out.add("table=0, priority=0, actions=drop".into())?;
    out.add("table=10, priority=0, actions=drop".into())?;
    if v4 {
        out.add(format!("table=20, priority=300, udp, udp_dst={vxp}, actions=drop"))?;
    }
    out.add("table=20, priority=0, actions=drop".into())?;
    if v4 {
        out.add("table=25, priority=0, actions=drop".into())?;
        out.add("table=27, priority=0, actions=drop".into())?;
        out.add("table=30, priority=0, actions=goto_table:31".into())?;
    } else {
        out.add("table=21, priority=0, actions=goto_table:30".into())?;
        if ct {
            out.add("table=25, priority=0, actions=drop".into())?;
        }
    }
    out.add(format!("table={route}, priority=300, arp, arp_tpa={gw}, actions=output:2"))?;
    out.add(format!("table={route}, priority=200, arp, arp_tpa={ls}, actions=goto_table:40"))?;
    for c in &cn.cluster_networks {
        out.add(format!("table={route}, priority=100, arp, arp_tpa={}, actions=goto_table:50", c.cidr))?;
    }
    out.add(format!("table={route}, priority=300, ip, nw_dst={gw}, actions=output:2"))?;
    out.add(format!("table={route}, priority=100, ip, nw_dst={sn}, actions=goto_table:60"))?;
    if ct {
        let p = if v4 { 250 } else { 300 };
        out.add(format!("table={route}, priority={p}, ip, nw_dst={ls}, ct_state=+rpl, actions=ct(nat,table=70)"))?;
    }
    out.add(format!("table={route}, priority=200, ip, nw_dst={ls}, actions=goto_table:70"))?;
    for c in &cn.cluster_networks {
        out.add(format!("table={route}, priority=100, ip, nw_dst={}, actions=goto_table:90", c.cidr))?;
    }
    out.add(format!("table={route}, priority=50, in_port=1, ip, nw_dst=224.0.0.0/4, actions=goto_table:120"))?;
    out.add(format!("table={route}, priority=25, ip, nw_dst=224.0.0.0/4, actions=goto_table:110"))?;
    let egress_first = if v4 { 99 } else { 100 };
    out.add(format!("table={route}, priority=0, ip, actions=goto_table:{egress_first}"))?;
    out.add(format!("table={route}, priority=0, arp, actions=drop"))?;
    out.add("table=40, priority=0, actions=drop".into())?;
    out.add("table=50, priority=0, actions=drop".into())?;
    if ct {
        out.add("table=60, priority=200, actions=output:2".into())?;
    } else {
        out.add("table=60, priority=200, reg0=0, actions=output:2".into())?;
    }
    if !v4 {
        out.add("table=60, priority=0, actions=drop".into())?;
    }
    out.add("table=70, priority=0, actions=drop".into())?;
    out.add(format!("table=80, priority=300, ip, nw_src={gw}/32, actions=output:NXM_NX_REG2[]"))?;
    out.add("table=80, priority=0, actions=drop".into())?;
    out.add("table=90, priority=0, actions=drop".into())?;
    if v4 {
        out.add(format!("table=99, priority=200, tcp, tcp_dst=53, nw_dst={node_ip}, actions=output:2"))?;
        out.add(format!("table=99, priority=200, udp, udp_dst=53, nw_dst={node_ip}, actions=output:2"))?;
        out.add("table=99, priority=0, actions=goto_table:100".into())?;
        out.add("table=100, priority=0, actions=goto_table:101".into())?;
        out.add("table=101, priority=150, ct_state=+rpl, actions=output:2".into())?;
    } else {
        out.add(format!("table=100, priority=300, udp, udp_dst={vxp}, actions=drop"))?;
        out.add(format!("table=100, priority=200, tcp, tcp_dst=53, nw_dst={node_ip}, actions=output:2"))?;
        out.add(format!("table=100, priority=200, udp, udp_dst=53, nw_dst={node_ip}, actions=output:2"))?;
        out.add("table=100, priority=0, actions=goto_table:101".into())?;
    }
    out.add("table=101, priority=0, actions=output:2".into())?;
    out.add("table=110, priority=0, actions=drop".into())?;
    out.add("table=120, priority=0, actions=drop".into())?;

    // Remote HostSubnets (§8.3), then the table 111 refresh.
    let mut remotes: Vec<&HostSubnet> = Vec::new();
    for hs in &cluster.host_subnets {
        if hs.host_ip.0 == node_ip {
            continue;
        }
        if let Err(w) = valid_remote(cluster, hs) {
            warnings.push(w);
            continue;
        }
        remotes.push(hs);
        for f in host_subnet_flows(hs)? {
            out.add(f)?;
        }
    }
    out.add(table_111(&remotes))?;

    // Plugin start (§5.11, §8.8, §9).
    match plugin {
        0 => {
            if v4 {
                out.add("table=27, priority=500, actions=goto_table:30".into())?;
            }
            out.add("table=80, priority=200, actions=output:NXM_NX_REG2[]".into())?;
        }
        1 => {
            if v4 {
                out.add("table=27, priority=500, actions=goto_table:30".into())?;
            }
            out.add("table=80, priority=200, reg0=0, actions=output:NXM_NX_REG2[]".into())?;
            out.add("table=80, priority=200, reg1=0, actions=output:NXM_NX_REG2[]".into())?;
        }
        _ => {
            if v4 {
                out.add(format!("table=27, priority=300, ip, nw_dst={sn}, actions=goto_table:30"))?;
                out.add("table=80, priority=200, ip, ct_state=+rpl, actions=output:NXM_NX_REG2[]".into())?;
                out.add("table=27, priority=200, ip, ct_state=+rpl, actions=goto_table:30".into())?;
                for a in &cn.cluster_networks {
                    for b in &cn.cluster_networks {
                        out.add(format!(
                            "table=30, priority=100, ip, nw_src={}, nw_dst={}, ct_state=-rpl, actions=ct(commit,table=31)",
                            a.cidr, b.cidr
                        ))?;
                    }
                }
            } else {
                for c in &cn.cluster_networks {
                    out.add(format!("table=21, priority=200, ip, nw_dst={}, actions=ct(commit,table=30)", c.cidr))?;
                }
                out.add("table=80, priority=200, ip, ct_state=+rpl, actions=output:NXM_NX_REG2[]".into())?;
            }
        }
    }

    // VNIDs of namespaces; VNIDs shared by several namespaces.
    let mut by_vnid: BTreeMap<u32, Vec<&crate::yaml::NetNamespace>> = BTreeMap::new();
    for n in &cluster.net_namespaces {
        by_vnid.entry(n.netid).or_default().push(n);
    }
    let vnid_of = |ns: &str, what: &str| -> Result<u32, RenderError> {
        cluster.vnid(ns).ok_or_else(|| {
            RenderError(format!("{what}: namespace `{ns}` has no NetNamespace (the plugin needs one per namespace)"))
        })
    };

    if plugin != 0 {
        egress_policies(&x, &by_vnid, &mut out, &mut warnings)?;
        egress_ips(&x, node, node_ip, &mut out, &mut groups, &mut warnings)?;
    }

    // Services (§5.9, non-ct) and the VNIDs they put in use.
    let mut in_use: BTreeSet<u32> = BTreeSet::new();
    if !ct {
        for svc in &cluster.services {
            let ip = svc.cluster_ip.trim();
            if ip.is_empty() || ip == "None" {
                continue;
            }
            let Ok(ip) = ip.parse::<Ipv4Addr>() else {
                warnings
                    .push(format!("service {}/{}: clusterIP `{ip}` is not an IPv4 address", svc.namespace, svc.name));
                continue;
            };
            let v = vnid_of(&svc.namespace, &format!("service {}/{}", svc.namespace, svc.name))?;
            let act = format!("load:{v}->NXM_NX_REG1[],load:2->NXM_NX_REG2[],goto_table:80");
            out.add(format!("table=60, priority=100, ip, nw_dst={ip}, nw_frag=later, actions={act}"))?;
            for p in &svc.ports {
                let proto = match p.protocol.to_ascii_uppercase().as_str() {
                    "TCP" => "tcp",
                    "UDP" => "udp",
                    other => {
                        warnings.push(format!(
                            "service {}/{}: protocol {other} is not supported; port {} skipped",
                            svc.namespace, svc.name, p.port
                        ));
                        continue;
                    }
                };
                out.add(format!(
                    "table=60, priority=100, {proto}, nw_dst={ip}, {proto}_dst={}, actions={act}",
                    p.port
                ))?;
            }
            in_use.insert(v);
        }
    }

    // Pods (§5.3, 5.5, 5.7, 5.10; §9).
    let mut pods_by_vnid: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for p in &node.pods {
        let v = vnid_of(&p.namespace, &format!("pod {}/{}", p.namespace, p.name))?;
        for f in pod_flows(&x, p, v) {
            out.add(f)?;
        }
        in_use.insert(v);
        pods_by_vnid.entry(v).or_default().push(p.ofport);
    }

    let mut admitted_by = BTreeMap::new();
    match plugin {
        1 => {
            // EnsureVNIDRules for every VNID in use on the node.
            for &v in in_use.iter().filter(|&&v| v != 0) {
                out.add(format!("table=80, priority=100, reg0={v}, reg1={v}, actions=output:NXM_NX_REG2[]"))?;
            }
        }
        2 => {
            let ctx = PolicyCtx::new(cluster, version);
            for &v in &in_use {
                let Some(ns) = by_vnid.get(&v).and_then(|n| n.first()) else { continue };
                let nf = namespace_flows(&ctx, &ns.netname, v);
                let base = out.flows.len();
                for f in nf.flows {
                    out.add(f)?;
                }
                for (i, by) in nf.admitted_by {
                    admitted_by.insert(base + i, by);
                }
                warnings.extend(nf.warnings);
            }
        }
        _ => {}
    }
    if plugin != 0 {
        // Multicast (§5.15): a VNID is enabled when all its namespaces are.
        for (&v, nss) in &by_vnid {
            if !nss.iter().all(|n| n.multicast_enabled()) {
                continue;
            }
            out.add(format!("table=110, reg0={v}, actions=goto_table:111"))?;
            if let Some(ports) = pods_by_vnid.get(&v) {
                let mut outs: Vec<String> = ports.iter().map(|p| format!("output:{p}")).collect();
                outs.sort();
                out.add(format!("table=120, priority=100, reg0={v}, actions={}", outs.join(",")))?;
            }
        }
    }

    out.add(format!("table=253, actions=note:{plugin:02X}.{:02X}", version.rule_version()))?;
    Ok(Rendered { flows: out.flows, groups, warnings, admitted_by })
}

/// The cookie of 4.x's temporary isolation flows for a new pod.
pub const NETPOL_ISOLATION_COOKIE: u64 = 0x4466_b9eb;

/// The temporary flows 4.x's networkpolicy plugin adds for a new pod until
/// the next policy sync (cookie [`NETPOL_ISOLATION_COOKIE`]): nothing from
/// or to it passes tables 27 and 80.
///
/// # Errors
/// None in practice (the text is the renderer's own).
pub fn isolation_flows(ip: Ipv4Addr) -> Result<Vec<FlowSpec>, RenderError> {
    let mut out = Out { flows: Vec::new() };
    out.add(format!("table=27, priority=500, cookie={NETPOL_ISOLATION_COOKIE}, ip, nw_src={ip}, actions=drop"))?;
    out.add(format!("table=80, priority=500, cookie={NETPOL_ISOLATION_COOKIE}, ip, nw_dst={ip}, actions=drop"))?;
    Ok(out.flows)
}

/// The networkpolicy plugin's sync bundle of the namespaces `namespaces`
/// on node `node_name`, as one transaction: for each, the delete of its
/// policy flows (`table=80, reg1=V`; 4.x also `table=27, reg0=V`), then its
/// flows when it is in use on the node (a local pod); 4.x first deletes the
/// temporary isolation flows. Applied to the node's tables, the result is
/// what [`render`] gives for `cluster` (tests/netpol_regen.rs).
///
/// # Errors
/// Not the networkpolicy plugin; no HostSubnet for the node.
pub fn namespaces_bundle(
    cluster: &Cluster,
    node_name: &str,
    namespaces: &BTreeSet<String>,
) -> Result<Vec<crate::ofctl::FlowCommand>, RenderError> {
    use crate::ofctl::FlowCommand;
    if plugin_id(&cluster.cluster_network.plugin_name) != Some(2) {
        return Err(RenderError("only the networkpolicy plugin has per-namespace policy flows".into()));
    }
    cluster
        .host_subnet(node_name)
        .ok_or_else(|| RenderError(format!("node `{node_name}` has no HostSubnet in the cluster")))?;
    let version = cluster.version_for(node_name);
    let v4 = version == SdnVersion::V4_13;
    let del = |text: String| {
        parse_flow_line(&text, LineKind::Match)
            .map(|spec| FlowCommand::Delete { strict: false, spec })
            .map_err(|e| RenderError(format!("internal error rendering `{text}`: {}", e.msg)))
    };
    let mut cmds = Vec::new();
    if v4 {
        cmds.push(del(format!("table=27, cookie={NETPOL_ISOLATION_COOKIE}/0xffffffffffffffff"))?);
        cmds.push(del(format!("table=80, cookie={NETPOL_ISOLATION_COOKIE}/0xffffffffffffffff"))?);
    }
    let in_use: BTreeSet<u32> = cluster
        .find_node(node_name)
        .map(|n| n.pods.iter().filter_map(|p| cluster.vnid(&p.namespace)).collect())
        .unwrap_or_default();
    let ctx = PolicyCtx::new(cluster, version);
    for ns in namespaces {
        let Some(v) = cluster.vnid(ns) else { continue };
        cmds.push(del(format!("table=80, reg1={v}"))?);
        if v4 {
            cmds.push(del(format!("table=27, reg0={v}"))?);
        }
        if !in_use.contains(&v) {
            continue;
        }
        let mut out = Out { flows: Vec::new() };
        for f in namespace_flows(&ctx, ns, v).flows {
            out.add(f)?;
        }
        cmds.extend(out.flows.into_iter().map(FlowCommand::Add));
    }
    Ok(cmds)
}

/// The namespaces whose policy flows differ between two states of the
/// cluster as node `node_name` sees them (a policy added or removed, a
/// pod's labels or IP, a namespace's labels): what a change must
/// regenerate, and nothing else.
pub fn affected_namespaces(old: &Cluster, new: &Cluster, node_name: &str) -> BTreeSet<String> {
    policies_changed(old, new, node_name).unwrap_or_else(|| namespaces_whose_flows_differ(old, new, node_name))
}

/// When only NetworkPolicies changed, the namespaces in use on the node
/// whose policies differ: a namespace's policy flows depend on its own
/// policies and on the pods, namespaces and node they select, so with the
/// rest equal nothing else can change. The common change (`ctl policy
/// add/del`) then costs one namespace's render, not two renders of every
/// namespace's flows ([`namespaces_whose_flows_differ`]; benches/netpol.rs).
/// `None` when anything else differs.
fn policies_changed(old: &Cluster, new: &Cluster, node_name: &str) -> Option<BTreeSet<String>> {
    let same_rest = old.cluster_network == new.cluster_network
        && old.version_for(node_name) == new.version_for(node_name)
        && old.find_node(node_name) == new.find_node(node_name)
        && old.host_subnets == new.host_subnets
        && old.net_namespaces == new.net_namespaces
        && old.namespaces == new.namespaces
        && old.pods == new.pods
        && old.services == new.services
        && old.egress_network_policies == new.egress_network_policies;
    if !same_rest {
        return None;
    }
    fn by_ns(c: &Cluster) -> BTreeMap<&str, Vec<&crate::yaml::NetworkPolicy>> {
        let mut m: BTreeMap<&str, Vec<_>> = BTreeMap::new();
        for p in &c.network_policies {
            m.entry(p.metadata.namespace.as_deref().unwrap_or_default()).or_default().push(p);
        }
        m
    }
    let (a, b) = (by_ns(old), by_ns(new));
    let in_use: BTreeSet<u32> = new
        .find_node(node_name)
        .map(|n| n.pods.iter().filter_map(|p| new.vnid(&p.namespace)).collect())
        .unwrap_or_default();
    let names: BTreeSet<&str> = a.keys().chain(b.keys()).copied().collect();
    Some(
        names
            .into_iter()
            .filter(|n| a.get(n) != b.get(n) && new.vnid(n).is_some_and(|v| in_use.contains(&v)))
            .map(str::to_string)
            .collect(),
    )
}

/// The namespaces whose policy flows, rendered before and after, differ.
fn namespaces_whose_flows_differ(old: &Cluster, new: &Cluster, node_name: &str) -> BTreeSet<String> {
    let flows = |c: &Cluster| -> BTreeMap<String, Vec<String>> {
        let version = c.version_for(node_name);
        let ctx = PolicyCtx::new(c, version);
        let in_use: BTreeSet<u32> = c
            .find_node(node_name)
            .map(|n| n.pods.iter().filter_map(|p| c.vnid(&p.namespace)).collect())
            .unwrap_or_default();
        c.net_namespaces
            .iter()
            .map(|n| {
                let f =
                    if in_use.contains(&n.netid) { namespace_flows(&ctx, &n.netname, n.netid).flows } else { vec![] };
                (n.netname.clone(), f)
            })
            .collect()
    };
    let (a, b) = (flows(old), flows(new));
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names.into_iter().filter(|n| a.get(*n) != b.get(*n)).cloned().collect()
}

/// The flows of a remote HostSubnet (§5.2, 5.8, 5.12).
fn host_subnet_flows(hs: &HostSubnet) -> Result<Vec<String>, RenderError> {
    let cookie = hs.metadata.uid.as_deref().map(host_subnet_cookie).unwrap_or(0);
    let h = hs.host_ip;
    let s = hs.subnet;
    let tun_id = match hs.metadata.annotations.get(FIXED_VNID_ANNOTATION) {
        Some(v) => {
            let vnid: u32 = v.parse().map_err(|_| {
                RenderError(format!(
                    "HostSubnet {}: annotation {FIXED_VNID_ANNOTATION}={v} is not a VNID",
                    hs.metadata.name
                ))
            })?;
            format!("load:{vnid}->NXM_NX_TUN_ID[0..31]")
        }
        None => "move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31]".into(),
    };
    Ok(vec![
        format!("table=10, priority=100, cookie={cookie:#010x}, tun_src={h}, actions=goto_table:30"),
        format!("table=50, priority=100, cookie={cookie:#010x}, arp, arp_tpa={s}, actions={tun_id},set_field:{h}->tun_dst,output:1"),
        format!("table=90, priority=100, cookie={cookie:#010x}, ip, nw_dst={s}, actions={tun_id},set_field:{h}->tun_dst,output:1"),
    ])
}

/// Table 111's one flow: head-end replication to every remote node.
fn table_111(remotes: &[&HostSubnet]) -> String {
    let mut t111: Vec<String> = remotes.iter().map(|h| format!("set_field:{}->tun_dst,output:1", h.host_ip)).collect();
    t111.sort();
    t111.dedup();
    if t111.is_empty() {
        "table=111, priority=100, actions=goto_table:120".into()
    } else {
        format!(
            "table=111, priority=100, actions=move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31],{},goto_table:120",
            t111.join(",")
        )
    }
}

/// A local pod's flows (one pod bundle, §8.5; table 25 in conntrack mode;
/// tables 27/30 in 4.10+).
fn pod_flows(x: &Ctx, p: &crate::yaml::Pod, v: u32) -> Vec<String> {
    let (ip, port) = (p.ip, p.ofport);
    let o = ip.0.octets();
    let mac = format!("00:00:{:02x}:{:02x}:{:02x}:{:02x}/00:00:ff:ff:ff:ff", o[0], o[1], o[2], o[3]);
    let (arp_next, ip_next) = if x.v4 { (30, 27) } else { (21, 21) };
    let mut f = vec![
        format!("table=20, priority=100, in_port={port}, arp, arp_spa={ip}, arp_sha={mac}, actions=load:{v}->NXM_NX_REG0[],goto_table:{arp_next}"),
        format!("table=20, priority=100, in_port={port}, ip, nw_src={ip}, actions=load:{v}->NXM_NX_REG0[],goto_table:{ip_next}"),
    ];
    if x.ct {
        let next = if x.v4 { 27 } else { 30 };
        f.push(format!("table=25, priority=100, ip, nw_src={ip}, actions=load:{v}->NXM_NX_REG0[],goto_table:{next}"));
    }
    f.push(format!("table=40, priority=100, arp, arp_tpa={ip}, actions=output:{port}"));
    f.push(format!(
        "table=70, priority=100, ip, nw_dst={ip}, actions=load:{v}->NXM_NX_REG1[],load:{port}->NXM_NX_REG2[],goto_table:80"
    ));
    f
}

/// EgressNetworkPolicies (§5.14 in table 101; 4.8+: table 100, Allow going
/// on to table 101), one set per VNID.
fn egress_policies(
    x: &Ctx,
    by_vnid: &BTreeMap<u32, Vec<&crate::yaml::NetNamespace>>,
    out: &mut Out,
    warnings: &mut Vec<String>,
) -> Result<(), RenderError> {
    let cluster = x.cluster;
    let (table, allow) = if x.v4 { (100, "goto_table:101") } else { (101, "output:2") };
    let mut policies: BTreeMap<u32, Vec<&crate::yaml::EgressNetworkPolicy>> = BTreeMap::new();
    for p in &cluster.egress_network_policies {
        let ns = p.metadata.namespace.as_deref().unwrap_or("");
        match cluster.vnid(ns) {
            Some(v) => policies.entry(v).or_default().push(p),
            None => {
                warnings.push(format!("EgressNetworkPolicy {ns}/{}: namespace has no NetNamespace", p.metadata.name))
            }
        }
    }
    for (&v, ps) in &policies {
        if v == 0 {
            warnings.push("EgressNetworkPolicy in a global (VNID 0) namespace is ignored".into());
            continue;
        }
        if ps.len() > 1 || by_vnid.get(&v).map_or(0, Vec::len) > 1 {
            out.add(format!("table={table}, priority=1, reg0={v}, actions=drop"))?;
            continue;
        }
        let rules = &ps[0].spec.egress;
        let n = rules.len();
        for (i, r) in rules.iter().enumerate() {
            let prio = n - i;
            let action = if r.kind == EgressType::Allow { allow } else { "drop" };
            if let Some(c) = r.to.cidr_selector {
                let dst = if c.addr() == 0 && (c.prefix() == 0 || c.prefix() == 32) {
                    String::new()
                } else {
                    format!(", nw_dst={c}")
                };
                out.add(format!("table={table}, priority={prio}, reg0={v}, ip{dst}, actions={action}"))?;
            } else if let Some(d) = &r.to.dns_name {
                warnings.push(format!(
                    "EgressNetworkPolicy {}: dnsName {d} resolves to no address here (no DNS); rule {i} yields no flow",
                    ps[0].metadata.name
                ));
            }
        }
    }
    Ok(())
}

/// Egress IPs (§5.13 in table 100; 4.8+: table 101 through select groups,
/// group id = VNID).
fn egress_ips(
    x: &Ctx,
    node: &Node,
    node_ip: Ipv4Addr,
    out: &mut Out,
    groups: &mut Vec<GroupSpec>,
    warnings: &mut Vec<String>,
) -> Result<(), RenderError> {
    let cluster = x.cluster;
    let tun0_mac = node.tun0_mac.clone();
    for ns in &cluster.net_namespaces {
        if ns.egress_ips.is_empty() || ns.netid == 0 {
            continue;
        }
        let v = ns.netid;
        let claimed =
            cluster.net_namespaces.iter().filter(|o| o.egress_ips.iter().any(|ip| ns.egress_ips.contains(ip))).count();
        // The hosting node of each requested IP, in the order requested.
        let hosts: Vec<&HostSubnet> = ns
            .egress_ips
            .iter()
            .filter_map(|ip| cluster.host_subnets.iter().find(|h| h.egress_ips.contains(ip)))
            .collect();
        let local = hosts.iter().any(|h| h.host_ip.0 == node_ip);
        if x.v4 {
            if claimed > 1 || hosts.is_empty() {
                out.add(format!("table=101, priority=100, reg0={v}, actions=drop"))?;
                continue;
            }
            let buckets: Vec<String> = if local {
                let Some(mac) = &tun0_mac else {
                    warnings.push(format!(
                        "egress IP of {} is hosted here but node {} has no tun0MAC",
                        ns.netname, node.name
                    ));
                    continue;
                };
                vec![format!(
                    "actions=set_field:{mac}->eth_dst,set_field:{:#010x}->pkt_mark,output:2",
                    egress_mark_4(v)
                )]
            } else {
                hosts
                    .iter()
                    .map(|h| {
                        format!(
                            "actions=move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31],set_field:{}->tun_dst,output:1",
                            h.host_ip
                        )
                    })
                    .collect()
            };
            let text = format!(
                "group_id={v},type=select,{}",
                buckets.iter().map(|b| format!("bucket={b}")).collect::<Vec<_>>().join(",")
            );
            match parse_group_line(&text, GroupLineKind::Add) {
                Ok(GroupCommand::Add(g)) => groups.push(g),
                Ok(_) => {}
                Err(e) => return Err(RenderError(format!("internal error rendering `{text}`: {}", e.msg))),
            }
            let commit = if local { "" } else { "ct(commit)," };
            out.add(format!("table=101, priority=100, ip, reg0={v}, actions={commit}group:{v}"))?;
            continue;
        }
        if claimed > 1 || hosts.is_empty() {
            out.add(format!("table=100, priority=100, reg0={v}, actions=drop"))?;
        } else if local {
            let Some(mac) = &tun0_mac else {
                warnings
                    .push(format!("egress IP of {} is hosted here but node {} has no tun0MAC", ns.netname, node.name));
                continue;
            };
            out.add(format!(
                "table=100, priority=100, reg0={v}, ip, actions=set_field:{mac}->eth_dst,set_field:{:#010x}->pkt_mark,goto_table:101",
                egress_mark(v)
            ))?;
        } else {
            out.add(format!(
                "table=100, priority=100, reg0={v}, ip, actions=move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31],set_field:{}->tun_dst,output:1",
                hosts[0].host_ip
            ))?;
        }
    }
    Ok(())
}

/// The egress-IP packet mark of a VNID in 4.x: the kubelet's drop bit
/// (0x8000) and the masquerade bit (14) relocated.
pub fn egress_mark_4(vnid: u32) -> u32 {
    let mut mark = if vnid == 0 { 0xff00_0000 } else { vnid };
    if mark & 0x8000 != 0 {
        mark = (mark | 0x1000_0000) ^ 0x8000;
    }
    if mark & 0x4000 != 0 {
        mark = (mark | 0x0100_0000) ^ 0x4000;
    }
    mark
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcut for policy-only changes gives what rendering every
    /// namespace before and after gives, for the 3.11 and 4.13 rules; any
    /// other change takes the long way.
    #[test]
    fn test_policy_only_changes_find_what_a_full_comparison_finds() {
        let pol = |y: &str| -> crate::yaml::NetworkPolicy { serde_norway::from_str(y).unwrap() };
        for v in [SdnVersion::V3_11, SdnVersion::V4_13] {
            let mut base = crate::load::synthetic_policy_cluster(1000, 300);
            base.sdn_version = Some(v);
            let local: BTreeSet<String> =
                base.find_node("node-0").unwrap().pods.iter().map(|p| p.namespace.clone()).collect();
            let used = local.iter().next().unwrap().clone();
            let unused = (0..100).map(|i| format!("ns-{i}")).find(|n| !local.contains(n)).unwrap();
            type Change<'a> = (&'a str, Box<dyn Fn(&mut Cluster) + 'a>);
            let changes: Vec<Change> = vec![
                (
                    "added where in use",
                    Box::new(|c: &mut Cluster| {
                        c.network_policies.push(pol(&format!(
                            "{{metadata: {{name: x, namespace: {used}}}, spec: {{podSelector: {{}}, policyTypes: [Ingress]}}}}"
                        )))
                    }),
                ),
                (
                    "added where not in use",
                    Box::new(|c: &mut Cluster| {
                        c.network_policies.push(pol(&format!(
                            "{{metadata: {{name: x, namespace: {unused}}}, spec: {{podSelector: {{}}, policyTypes: [Ingress]}}}}"
                        )))
                    }),
                ),
                (
                    "removed",
                    Box::new(|c: &mut Cluster| {
                        let ns = c.network_policies.iter().position(|p| p.metadata.namespace.as_deref() == Some(&used));
                        c.network_policies.remove(ns.unwrap());
                    }),
                ),
                (
                    "a pod relabelled (not policy-only)",
                    Box::new(|c: &mut Cluster| {
                        c.pods[3].metadata.labels.insert("app".into(), "app-9".into());
                    }),
                ),
            ];
            for (what, change) in changes {
                let mut new = base.clone();
                change(&mut new);
                let got = affected_namespaces(&base, &new, "node-0");
                let want = namespaces_whose_flows_differ(&base, &new, "node-0");
                assert_eq!(got, want, "{v}: {what}");
                let shortcut = policies_changed(&base, &new, "node-0");
                assert_eq!(shortcut.is_some(), !what.contains("not policy-only"), "{v}: {what}");
            }
        }
    }

    #[test]
    fn test_synthetic_scale() {
        let c = crate::yaml::synthetic_cluster(1000, 10_000, 200);
        let r = render(&c, "node-0").unwrap();
        let count = |t: u8| r.flows.iter().filter(|f| f.table == t).count();
        assert_eq!(count(10), 1 + 999);
        assert_eq!(count(90), 1 + 999);
        assert_eq!(count(60), 2 + 2 * 10_000);
        assert_eq!(count(70), 1 + 200);
        assert_eq!(r.flows.len(), 23_860, "total");
    }

    #[test]
    fn test_cookie_and_mark() {
        assert_eq!(host_subnet_cookie("node1UID"), 0x0f46ee1a);
        assert_eq!(host_subnet_cookie("5f6c2a10-1b2c-4d3e-8f90-0000000000f1"), 0x94940837);
        assert_eq!(egress_mark(58132), 0x0100a314);
        assert_eq!(egress_mark(11235), 0x00002be3);
        assert_eq!(egress_mark(0), 0xff000000);
    }

    #[test]
    fn test_default_cluster_matches_spec_examples() {
        let c = Cluster::default_cluster();
        let r = render(&c, "node-d").unwrap();
        let lines: Vec<String> = r.flows.iter().map(|f| f.to_dump_line(None)).collect();
        let has = |s: &str| assert!(lines.iter().any(|l| l == s), "missing {s}\n{}", lines.join("\n"));
        has(" cookie=0x2ec252d1, table=90, priority=100,ip,nw_dst=10.129.0.0/23 actions=move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31],set_field:172.16.1.16->tun_dst,output:1");
        has(" cookie=0x0, table=20, priority=100,arp,in_port=4,arp_spa=10.131.0.3,arp_sha=00:00:0a:83:00:03/00:00:ff:ff:ff:ff actions=load:0x2be3->NXM_NX_REG0[],goto_table:21");
        has(" cookie=0x0, table=80, priority=100,reg0=0x2be3,reg1=0x2be3 actions=output:NXM_NX_REG2[]");
        has(" cookie=0x0, table=110, reg0=0x2be3 actions=goto_table:111");
        has(" cookie=0x0, table=120, priority=100,reg0=0x2be3 actions=output:4,output:5");
        has(" cookie=0x0, table=60, priority=100,udp,nw_dst=172.30.45.67,tp_dst=5353 actions=load:0xe314->NXM_NX_REG1[],load:0x2->NXM_NX_REG2[],goto_table:80");
        has(" cookie=0x0, table=100, priority=100,ip,reg0=0x2be3 actions=move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31],set_field:172.16.1.16->tun_dst,output:1");
        has(" cookie=0x0, table=100, priority=100,ip,reg0=0xe314 actions=set_field:6e:2f:91:0c:55:a7->eth_dst,set_field:0x100a314->pkt_mark,goto_table:101");
        has(" cookie=0x0, table=101, priority=2,ip,reg0=0xe314,nw_dst=172.16.0.0/16 actions=output:2");
        has(" cookie=0x0, table=101, priority=1,ip,reg0=0xe314 actions=drop");
        has(" cookie=0x0, table=253, actions=note:01.07.00.00.00.00");
        has(" cookie=0x0, table=111, priority=100 actions=move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31],set_field:172.16.1.15->tun_dst,output:1,set_field:172.16.1.16->tun_dst,output:1,set_field:172.16.1.22->tun_dst,output:1,goto_table:120");
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }
}
