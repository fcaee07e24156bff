//! NetworkPolicy (networking.k8s.io/v1): the objects as the API prints
//! them, label selectors, and the per-namespace flows openshift-sdn's
//! networkpolicy plugin writes (OPENSHIFT_SDN_PIPELINE.md §6.3 for 3.11:
//! ingress only, table 80; §9 for 4.10+: ingress and egress, tables 80 and
//! 27).
//!
//! The flows are built as openshift-sdn builds them: a policy's matches are
//! the cross product of target, peer and port fragments, each ending with
//! ", ", sorted per policy; [`namespace_flows`] returns one namespace's
//! whole set (what its sync bundle adds after deleting `table=80, reg1=V`
//! and, in 4.x, `table=27, reg0=V`), each allow flow with the policy that
//! made it, so that a trace can name the policy that admitted a packet
//! without the flows differing from openshift-sdn's. Policies are taken in
//! name order (openshift-sdn walks a map: its order is arbitrary; only the
//! order of the flows in the bundle depends on it).
//!
//! Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::yaml::{Cluster, IpBlock, LabelSelector, NetworkPolicy, Peer, PolicyPort, PortValue, SdnVersion};

/// The namespace openshift-sdn 4.x treats as VNID 0 in selectors.
pub const HOST_NETWORK_NAMESPACE: &str = "openshift-host-network";

/// Policies generating this many flows or more are ignored (4.x).
pub const MAX_POLICY_FLOWS: usize = 10_000;

/// Policies generating this many flows or more get a warning (4.x).
pub const WARN_POLICY_FLOWS: usize = 1_000;

impl LabelSelector {
    /// Whether it selects everything.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether a set of labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let v = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => v.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => v.is_none_or(|v| !r.values.contains(v)),
                    "Exists" => v.is_some(),
                    "DoesNotExist" => v.is_none(),
                    _ => false,
                }
            })
    }

    fn problems(&self, what: &str, out: &mut Vec<String>) {
        for r in &self.match_expressions {
            match r.operator.as_str() {
                "In" | "NotIn" if r.values.is_empty() => {
                    out.push(format!("{what}: operator {} on `{}` needs values", r.operator, r.key))
                }
                "Exists" | "DoesNotExist" if !r.values.is_empty() => {
                    out.push(format!("{what}: operator {} on `{}` takes no values", r.operator, r.key))
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => out.push(format!(
                    "{what}: operator `{other}` on `{}` is not In, NotIn, Exists or DoesNotExist",
                    r.key
                )),
            }
        }
    }
}

/// An IPv4 CIDR as (network, prefix); None for anything else (IPv6 too).
fn cidr4(s: &str) -> Option<(u32, u8)> {
    let (a, p) = s.split_once('/')?;
    let a: Ipv4Addr = a.parse().ok()?;
    let p: u8 = p.parse().ok().filter(|&p| p <= 32)?;
    let mask = u32::MAX.checked_shl(32 - p as u32).unwrap_or(0);
    Some((u32::from(a) & mask, p))
}

impl NetworkPolicy {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.metadata.namespace.as_deref().unwrap_or(""), self.metadata.name)
    }

    /// The policy types in effect (the API server's default when absent).
    pub fn types(&self) -> (bool, bool) {
        match &self.spec.policy_types {
            Some(t) => (t.iter().any(|t| t == "Ingress"), t.iter().any(|t| t == "Egress")),
            None => (true, !self.spec.egress.is_empty()),
        }
    }

    /// What the API's validation would refuse: (field, message) each.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let id = format!("NetworkPolicy {}", self.id());
        let mut out = Vec::new();
        if self.metadata.namespace.is_none() || self.metadata.name.is_empty() {
            return vec![("metadata", format!("{id}: metadata.name and metadata.namespace are required"))];
        }
        let mut spec = Vec::new();
        self.spec.pod_selector.problems(&format!("{id}: podSelector"), &mut spec);
        for t in self.spec.policy_types.iter().flatten() {
            if t != "Ingress" && t != "Egress" {
                spec.push(format!("{id}: policyTypes `{t}` is not Ingress or Egress"));
            }
        }
        for (dir, rules) in [("ingress", &self.spec.ingress), ("egress", &self.spec.egress)] {
            for (i, r) in rules.iter().enumerate() {
                let at = format!("{id}: {dir}[{i}]");
                for p in &r.peers {
                    if let Some(s) = &p.pod_selector {
                        s.problems(&format!("{at}: podSelector"), &mut spec);
                    }
                    if let Some(s) = &p.namespace_selector {
                        s.problems(&format!("{at}: namespaceSelector"), &mut spec);
                    }
                    match &p.ip_block {
                        Some(b) if p.pod_selector.is_some() || p.namespace_selector.is_some() => {
                            spec.push(format!("{at}: ipBlock {} cannot be combined with a selector", b.cidr))
                        }
                        Some(b) if b.cidr.contains(':') => {}
                        Some(b) => match cidr4(&b.cidr) {
                            None => spec.push(format!("{at}: ipBlock cidr `{}` is not a CIDR", b.cidr)),
                            Some((net, len)) => {
                                for e in &b.except {
                                    match cidr4(e) {
                                        Some((en, el))
                                            if el >= len && (en ^ net) >> (32 - len as u32).min(31) == 0
                                                || len == 0 => {}
                                        Some(_) => {
                                            spec.push(format!("{at}: ipBlock except {e} is not inside {}", b.cidr))
                                        }
                                        None => spec.push(format!("{at}: ipBlock except `{e}` is not a CIDR")),
                                    }
                                }
                            }
                        },
                        None => {}
                    }
                }
                for p in &r.ports {
                    if let Some(proto) = &p.protocol {
                        if !matches!(proto.as_str(), "TCP" | "UDP" | "SCTP") {
                            spec.push(format!("{at}: protocol `{proto}` is not TCP, UDP or SCTP"));
                        }
                    }
                    match (&p.port, p.end_port) {
                        (Some(PortValue::Number(n)), _) if !(1..=65535).contains(n) => {
                            spec.push(format!("{at}: port {n} is outside 1..65535"))
                        }
                        (Some(PortValue::Number(n)), Some(e)) if (e as i64) < *n || e > 65535 => {
                            spec.push(format!("{at}: endPort {e} is not in {n}..65535"))
                        }
                        (Some(PortValue::Name(n)), _) if n.is_empty() => spec.push(format!("{at}: empty port name")),
                        (Some(PortValue::Name(n)), Some(_)) => {
                            spec.push(format!("{at}: endPort needs a numeric port, not `{n}`"))
                        }
                        (None, Some(e)) => spec.push(format!("{at}: endPort {e} without port")),
                        _ => {}
                    }
                }
            }
        }
        out.extend(spec.into_iter().map(|m| ("spec", m)));
        out
    }
}

/// Splits `[start, end]` into aligned value/mask blocks, as openshift-sdn's
/// ranges package does (largest aligned block first).
pub fn range_masks(start: u32, end: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut s = start as u64;
    let e = end as u64;
    while s <= e {
        let mut size = if s == 0 { 1u64 << 32 } else { s & s.wrapping_neg() };
        while s + size - 1 > e {
            size >>= 1;
        }
        out.push((s as u32, !((size - 1) as u32)));
        s += size;
    }
    out
}

/// The CIDRs of an ipBlock less its exceptions (openshift-sdn's
/// IPBlockToCIDRs): the block as written without exceptions.
fn ip_block_cidrs(b: &IpBlock) -> Vec<String> {
    if b.except.is_empty() {
        return vec![b.cidr.clone()];
    }
    let Some((net, len)) = cidr4(&b.cidr) else { return vec![] };
    let last = |n: u32, l: u8| n | u32::MAX.checked_shr(l as u32).unwrap_or(0);
    let mut ranges = vec![(net, last(net, len))];
    for e in &b.except {
        let Some((en, el)) = cidr4(e) else { return vec![] };
        let (es, ee) = (en, last(en, el));
        let mut next = Vec::new();
        for (s, t) in ranges {
            if ee < s || es > t {
                next.push((s, t));
                continue;
            }
            if es > s {
                next.push((s, es - 1));
            }
            if ee < t {
                next.push((ee + 1, t));
            }
        }
        ranges = next;
    }
    let mut out = Vec::new();
    for (s, t) in ranges {
        for (v, m) in range_masks(s, t) {
            out.push(format!("{}/{}", Ipv4Addr::from(v), m.count_ones()));
        }
    }
    out
}

/// A pod as policies see it.
#[derive(Clone, Debug)]
struct PolicyPod<'a> {
    namespace: &'a str,
    labels: &'a BTreeMap<String, String>,
    ip: Ipv4Addr,
}

/// What policies select from: every pod on the pod network, every
/// namespace with its labels and VNID.
pub struct PolicyCtx<'a> {
    pods: Vec<PolicyPod<'a>>,
    /// name → (labels, VNID).
    namespaces: BTreeMap<&'a str, (&'a BTreeMap<String, String>, u32)>,
    /// Policies by namespace, in name order.
    policies: BTreeMap<&'a str, Vec<&'a NetworkPolicy>>,
    version: SdnVersion,
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl<'a> PolicyCtx<'a> {
    /// The selection context of a cluster: its Pod objects and every
    /// node's local pods (a Pod object wins over a node entry of the same
    /// namespace/name), its NetNamespaces with the labels of their
    /// Namespace objects (none when there is no Namespace object).
    pub fn new(c: &'a Cluster, version: SdnVersion) -> PolicyCtx<'a> {
        let mut pods = Vec::new();
        let mut seen = BTreeSet::new();
        for p in &c.pods {
            seen.insert((p.namespace(), p.metadata.name.as_str()));
            if let Some(ip) = p.policy_ip() {
                pods.push(PolicyPod { namespace: p.namespace(), labels: &p.metadata.labels, ip });
            }
        }
        for n in c.all_nodes() {
            for p in &n.pods {
                if !seen.insert((p.namespace.as_str(), p.name.as_str())) || p.ip == crate::yaml::Ip::UNSET {
                    continue;
                }
                pods.push(PolicyPod { namespace: &p.namespace, labels: &p.labels, ip: p.ip.0 });
            }
        }
        let labels: BTreeMap<&str, &BTreeMap<String, String>> =
            c.namespaces.iter().map(|n| (n.metadata.name.as_str(), &n.metadata.labels)).collect();
        let plugin_subnet = crate::yaml::plugin_id(&c.cluster_network.plugin_name) == Some(0);
        let mut namespaces = BTreeMap::new();
        for n in &c.net_namespaces {
            let vnid = if plugin_subnet { 0 } else { n.netid };
            namespaces
                .insert(n.netname.as_str(), (labels.get(n.netname.as_str()).copied().unwrap_or(&NO_LABELS), vnid));
        }
        let mut policies: BTreeMap<&str, Vec<&NetworkPolicy>> = BTreeMap::new();
        for p in &c.network_policies {
            policies.entry(p.metadata.namespace.as_deref().unwrap_or("")).or_default().push(p);
        }
        for v in policies.values_mut() {
            v.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        }
        PolicyCtx { pods, namespaces, policies, version }
    }

    fn select_pods(&self, ns: &str, sel: &LabelSelector) -> Vec<Ipv4Addr> {
        self.pods.iter().filter(|p| p.namespace == ns && sel.matches(p.labels)).map(|p| p.ip).collect()
    }

    /// Matching namespaces: (name, VNID as selectors see it).
    fn select_namespaces(&self, sel: &LabelSelector) -> Vec<(&'a str, u32)> {
        self.namespaces
            .iter()
            .filter(|(_, (l, _))| sel.matches(l))
            .map(|(&n, &(_, v))| {
                let v = if self.version == SdnVersion::V4_13 && n == HOST_NETWORK_NAMESPACE { 0 } else { v };
                (n, v)
            })
            .collect()
    }

    /// The namespaces that have policies.
    pub fn policy_namespaces(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().copied()
    }

    /// A namespace's VNID.
    pub fn vnid(&self, ns: &str) -> Option<u32> {
        self.namespaces.get(ns).map(|x| x.1)
    }
}

/// One namespace's policy flows.
#[derive(Clone, Debug, Default)]
pub struct NamespaceFlows {
    /// The flows (ovs-ofctl add syntax as openshift-sdn writes them), in
    /// bundle order: table 80, then (4.x) table 27.
    pub flows: Vec<String>,
    /// For each allow flow (index into `flows`), the policies whose rule
    /// generated it (`namespace/name`).
    pub admitted_by: BTreeMap<usize, Vec<String>>,
    /// Policies ignored or treated specially, one line each.
    pub warnings: Vec<String>,
}

/// A policy as openshift-sdn parses it.
#[derive(Default)]
struct Parsed {
    ingress: bool,
    egress: bool,
    /// None: every pod of the namespace.
    selected: Option<Vec<Ipv4Addr>>,
    ingress_flows: Vec<String>,
    egress_flows: Vec<String>,
}

fn ports_311(ports: &[PolicyPort]) -> Result<Vec<String>, String> {
    if ports.is_empty() {
        return Ok(vec![String::new()]);
    }
    let mut out = Vec::new();
    for p in ports {
        let proto = match p.protocol.as_deref() {
            None | Some("TCP") => "tcp",
            Some("UDP") => "udp",
            Some(other) => return Err(format!("protocol {other} is not supported")),
        };
        match &p.port {
            None => return Err("a port without a number is not supported".into()),
            Some(PortValue::Name(n)) => return Err(format!("named port `{n}` is not supported")),
            Some(PortValue::Number(n)) => out.push(format!("{proto}, tp_dst={n}, ")),
        }
    }
    Ok(out)
}

fn ports_4(ports: &[PolicyPort], id: &str, warnings: &mut Vec<String>) -> Vec<String> {
    if ports.is_empty() {
        return vec![String::new()];
    }
    let mut out = Vec::new();
    for p in ports {
        let proto = match p.protocol.as_deref() {
            None | Some("TCP") => "tcp",
            Some("UDP") => "udp",
            Some("SCTP") => "sctp",
            Some(other) => {
                warnings.push(format!("NetworkPolicy {id}: ignoring a rule's port with unrecognized protocol {other}"));
                continue;
            }
        };
        let n = match &p.port {
            None => {
                out.push(format!("{proto}, "));
                continue;
            }
            Some(PortValue::Name(n)) => {
                warnings.push(format!("NetworkPolicy {id}: ignoring a rule's port with unsupported named port `{n}`"));
                continue;
            }
            Some(PortValue::Number(n)) => *n,
        };
        match p.end_port {
            Some(e) => {
                for (v, m) in range_masks(n.clamp(0, 65535) as u32, e.min(65535)) {
                    out.push(format!("{proto}, tp_dst={:#06x}/{:#06x}, ", v as u16, m as u16));
                }
                // openshift-sdn falls through here with the port still 0.
                out.push(format!("{proto}, tp_dst=0, "));
            }
            None => out.push(format!("{proto}, tp_dst={n}, ")),
        }
    }
    out
}

impl PolicyCtx<'_> {
    fn parse_311(&self, ns: &str, vnid: u32, p: &NetworkPolicy) -> Result<Parsed, String> {
        let mut r = Parsed { ingress: true, ..Default::default() };
        let targets: Vec<String> = if p.spec.pod_selector.is_empty() {
            vec![String::new()]
        } else {
            let ips = self.select_pods(ns, &p.spec.pod_selector);
            let t = ips.iter().map(|ip| format!("ip, nw_dst={ip}, ")).collect();
            r.selected = Some(ips);
            t
        };
        for rule in &p.spec.ingress {
            let ports = ports_311(&rule.ports)?;
            let mut peers = Vec::new();
            if rule.peers.is_empty() {
                peers.push(String::new());
            }
            for peer in &rule.peers {
                match (&peer.pod_selector, &peer.namespace_selector) {
                    (Some(ps), None) if ps.is_empty() => peers.push(format!("reg0={vnid}, ")),
                    (Some(ps), None) => peers
                        .extend(self.select_pods(ns, ps).iter().map(|ip| format!("reg0={vnid}, ip, nw_src={ip}, "))),
                    (None, Some(nsel)) if nsel.is_empty() => peers.push(String::new()),
                    (None, Some(nsel)) => {
                        peers.extend(self.select_namespaces(nsel).iter().map(|(_, v)| format!("reg0={v}, ")))
                    }
                    (Some(ps), Some(nsel)) => {
                        for (n, v) in self.select_namespaces(nsel) {
                            peers.extend(
                                self.select_pods(n, ps).iter().map(|ip| format!("reg0={v}, ip, nw_src={ip}, ")),
                            );
                        }
                    }
                    // ipBlock: nothing in 3.11.
                    (None, None) => {}
                }
            }
            for t in &targets {
                for pe in &peers {
                    for po in &ports {
                        r.ingress_flows.push(format!("{t}{pe}{po}"));
                    }
                }
            }
        }
        r.ingress_flows.sort();
        Ok(r)
    }

    fn peers_4(&self, ns: &str, vnid: u32, peers: &[Peer], ingress: bool) -> Vec<String> {
        if peers.is_empty() {
            return vec![String::new()];
        }
        let ip_m = |ip: &dyn std::fmt::Display| {
            if ingress {
                format!("ip, nw_src={ip}, ")
            } else {
                format!("ip, nw_dst={ip}, ")
            }
        };
        let mut out = Vec::new();
        for peer in peers {
            match (&peer.pod_selector, &peer.namespace_selector, &peer.ip_block) {
                (Some(ps), None, _) if ingress && ps.is_empty() => out.push(format!("reg0={vnid}, ")),
                (Some(ps), None, _) => out.extend(self.select_pods(ns, ps).iter().map(|ip| ip_m(ip))),
                (None, Some(nsel), _) if nsel.is_empty() => out.push(String::new()),
                (None, Some(nsel), _) if ingress => {
                    out.extend(self.select_namespaces(nsel).iter().map(|(_, v)| format!("reg0={v}, ")))
                }
                (None, Some(nsel), _) => {
                    for (n, _) in self.select_namespaces(nsel) {
                        out.extend(self.select_pods(n, &LabelSelector::default()).iter().map(|ip| ip_m(ip)));
                    }
                }
                (Some(ps), Some(nsel), _) => {
                    for (n, _) in self.select_namespaces(nsel) {
                        out.extend(self.select_pods(n, ps).iter().map(|ip| ip_m(ip)));
                    }
                }
                (None, None, Some(b)) if !b.cidr.contains(':') => out.extend(ip_block_cidrs(b).iter().map(|c| ip_m(c))),
                (None, None, _) => {}
            }
        }
        out
    }

    fn parse_4(&self, ns: &str, vnid: u32, p: &NetworkPolicy, warnings: &mut Vec<String>) -> Parsed {
        let (ingress, egress) = p.types();
        let mut r = Parsed { ingress, egress, ..Default::default() };
        let (mut in_t, mut eg_t) = (Vec::new(), Vec::new());
        if p.spec.pod_selector.is_empty() {
            if ingress {
                in_t.push(String::new());
            }
            if egress {
                eg_t.push(String::new());
            }
        } else {
            let ips = self.select_pods(ns, &p.spec.pod_selector);
            for ip in &ips {
                if ingress {
                    in_t.push(format!("ip, nw_dst={ip}, "));
                }
                if egress {
                    eg_t.push(format!("ip, nw_src={ip}, "));
                }
            }
            r.selected = Some(ips);
        }
        let id = p.id();
        if ingress {
            for rule in &p.spec.ingress {
                let ports = ports_4(&rule.ports, &id, warnings);
                let peers = self.peers_4(ns, vnid, &rule.peers, true);
                for t in &in_t {
                    for pe in &peers {
                        for po in &ports {
                            r.ingress_flows.push(format!("{t}{pe}{po}"));
                        }
                    }
                }
            }
            r.ingress_flows.sort();
        }
        if egress {
            for rule in &p.spec.egress {
                let ports = ports_4(&rule.ports, &id, warnings);
                let peers = self.peers_4(ns, vnid, &rule.peers, false);
                for t in &eg_t {
                    for pe in &peers {
                        for po in &ports {
                            r.egress_flows.push(format!("{t}{pe}{po}"));
                        }
                    }
                }
            }
            r.egress_flows.sort();
        }
        let n = r.ingress_flows.len() + r.egress_flows.len();
        if n >= MAX_POLICY_FLOWS {
            warnings.push(format!(
                "ignoring NetworkPolicy {id} because it generates an unreasonable number of flows ({n})"
            ));
            r.ingress_flows.clear();
            r.egress_flows.clear();
        } else if n >= WARN_POLICY_FLOWS {
            warnings.push(format!("NetworkPolicy {id} generates a very large number of flows ({n})"));
        }
        r
    }
}

/// The policy flows of namespace `ns` (VNID `vnid`, in use on the node),
/// as its sync bundle adds them.
pub fn namespace_flows(ctx: &PolicyCtx, ns: &str, vnid: u32) -> NamespaceFlows {
    let mut out = NamespaceFlows::default();
    let empty = Vec::new();
    let policies = ctx.policies.get(ns).unwrap_or(&empty);
    let mut parsed = Vec::new();
    for p in policies {
        match ctx.version {
            SdnVersion::V3_11 => {
                let (ingress, _) = p.types();
                if !ingress {
                    // 3.11 writes an invalid `nw_dst=` drop for it; skip it.
                    out.warnings.push(format!(
                        "NetworkPolicy {}: without Ingress in policyTypes it selects no pods in 3.11; ignored",
                        p.id()
                    ));
                    continue;
                }
                match ctx.parse_311(ns, vnid, p) {
                    Ok(x) => parsed.push((p.id(), x)),
                    Err(why) => {
                        out.warnings
                            .push(format!("unsupported NetworkPolicy {} ({why}); treating as deny-all", p.id()));
                        parsed.push((p.id(), Parsed { ingress: true, ..Default::default() }));
                    }
                }
            }
            SdnVersion::V4_13 => {
                let x = ctx.parse_4(ns, vnid, p, &mut out.warnings);
                parsed.push((p.id(), x));
            }
        }
    }
    // Ingress, table 80.
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut add = |out: &mut NamespaceFlows, text: String, by: Option<&str>| {
        let i = *index.entry(text.clone()).or_insert_with(|| {
            out.flows.push(text);
            out.flows.len() - 1
        });
        if let Some(by) = by {
            let v = out.admitted_by.entry(i).or_default();
            if !v.iter().any(|x| x == by) {
                v.push(by.to_string());
            }
        }
    };
    for (table, reg, action, is_ingress) in
        [(80u8, "reg1", "output:NXM_NX_REG2[]", true), (27u8, "reg0", "goto_table:30", false)]
    {
        if !is_ingress && ctx.version == SdnVersion::V3_11 {
            break;
        }
        let drop_ip = if is_ingress { "nw_dst" } else { "nw_src" };
        let mut has = false;
        let mut all = false;
        for (id, p) in &parsed {
            if (is_ingress && !p.ingress) || (!is_ingress && !p.egress) {
                continue;
            }
            has = true;
            all |= p.selected.is_none();
            let flows = if is_ingress { &p.ingress_flows } else { &p.egress_flows };
            for f in flows {
                add(&mut out, format!("table={table}, priority=150, {reg}={vnid}, {f}actions={action}"), Some(id));
            }
        }
        if all {
            continue;
        }
        if has {
            let mut seen = BTreeSet::new();
            for (_, p) in &parsed {
                if (is_ingress && !p.ingress) || (!is_ingress && !p.egress) {
                    continue;
                }
                for ip in p.selected.iter().flatten() {
                    if seen.insert(*ip) {
                        add(
                            &mut out,
                            format!("table={table}, priority=100, {reg}={vnid}, ip, {drop_ip}={ip}, actions=drop"),
                            None,
                        );
                    }
                }
            }
        }
        add(&mut out, format!("table={table}, priority=50, {reg}={vnid}, actions={action}"), None);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_range_masks() {
        assert_eq!(range_masks(80, 80), vec![(80, 0xffff_ffff)]);
        assert_eq!(range_masks(8080, 8090), vec![(8080, !7), (8088, !1), (8090, !0)]);
        assert_eq!(range_masks(1, 65535).len(), 16);
        assert_eq!(range_masks(0, u32::MAX), vec![(0, 0)]);
    }

    #[test]
    fn test_ip_block_except() {
        let b = IpBlock { cidr: "10.0.0.0/24".into(), except: vec!["10.0.0.128/25".into(), "10.0.0.0/26".into()] };
        assert_eq!(ip_block_cidrs(&b), vec!["10.0.0.64/26"]);
        let b = IpBlock { cidr: "0.0.0.0/0".into(), except: vec!["10.0.0.0/8".into()] };
        let v = ip_block_cidrs(&b);
        assert_eq!(v.first().map(String::as_str), Some("0.0.0.0/5"));
        assert_eq!(v.len(), 8, "{v:?}");
    }

    const CLUSTER: &str = "clusterNetwork:\n  clusterNetworks: [{CIDR: 10.128.0.0/14, hostSubnetLength: 9}]\n  serviceNetwork: 172.30.0.0/16\n  pluginName: redhat/openshift-ovs-networkpolicy\nhostSubnets:\n- {metadata: {name: a, uid: u}, host: a, hostIP: 172.16.1.3, subnet: 10.128.0.0/23}\nnetNamespaces: [{netname: x, netid: 7}]\nnode:\n  name: a\n  pods:\n  - {namespace: x, name: p, ip: 10.128.0.5, ofport: 3, labels: {app: web}}\n";

    fn flows_4(policy: &str) -> NamespaceFlows {
        let y = format!("{CLUSTER}networkPolicies:\n- {policy}\n");
        let c = Cluster::from_yaml(&y).unwrap();
        namespace_flows(&PolicyCtx::new(&c, SdnVersion::V4_13), "x", 7)
    }

    /// 4.x egress: ipBlock less its exceptions, a port range as value/mask
    /// matches (with openshift-sdn's stray `tp_dst=0`), a port without a
    /// number, a named port ignored with a warning; table 27 isolates the
    /// selected pod.
    #[test]
    fn test_egress_4x() {
        let nf = flows_4("{metadata: {name: e, namespace: x}, spec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 192.168.0.0/24, except: [192.168.0.128/25]}}], ports: [{port: 8080, endPort: 8083}, {protocol: UDP}, {port: http}]}]}}");
        let want = [
            "table=27, priority=150, reg0=7, ip, nw_src=10.128.0.5, ip, nw_dst=192.168.0.0/25, tcp, tp_dst=0x1f90/0xfffc, actions=goto_table:30",
            "table=27, priority=150, reg0=7, ip, nw_src=10.128.0.5, ip, nw_dst=192.168.0.0/25, tcp, tp_dst=0, actions=goto_table:30",
            "table=27, priority=150, reg0=7, ip, nw_src=10.128.0.5, ip, nw_dst=192.168.0.0/25, udp, actions=goto_table:30",
            "table=27, priority=100, reg0=7, ip, nw_src=10.128.0.5, actions=drop",
            "table=27, priority=50, reg0=7, actions=goto_table:30",
            "table=80, priority=50, reg1=7, actions=output:NXM_NX_REG2[]",
        ];
        let mut got = nf.flows.clone();
        got.sort();
        let mut w: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        w.sort();
        assert_eq!(got, w);
        assert_eq!(nf.admitted_by.len(), 3);
        assert!(nf.warnings.iter().any(|w| w.contains("named port `http`")), "{:?}", nf.warnings);
        for f in &nf.flows {
            crate::ofctl::parse_flow_line(f, crate::ofctl::LineKind::Add).unwrap();
        }
    }

    /// A policy of 10,000 flows or more is ignored with a warning (its
    /// pods stay isolated).
    #[test]
    fn test_too_many_flows() {
        let ports: Vec<String> = (1..=10_000).map(|p| format!("{{port: {p}}}")).collect();
        let nf = flows_4(&format!(
            "{{metadata: {{name: big, namespace: x}}, spec: {{podSelector: {{}}, ingress: [{{ports: [{}]}}]}}}}",
            ports.join(", ")
        ));
        assert!(
            nf.warnings.iter().any(|w| w.contains("ignoring NetworkPolicy x/big") && w.contains("(10000)")),
            "{:?}",
            nf.warnings
        );
        assert_eq!(nf.flows, ["table=27, priority=50, reg0=7, actions=goto_table:30"]);
    }

    #[test]
    fn test_selectors() {
        let l: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let sel = |y: &str| serde_norway::from_str::<LabelSelector>(y).unwrap();
        assert!(sel("{}").matches(&l));
        assert!(sel("{matchLabels: {app: web}}").matches(&l));
        assert!(!sel("{matchLabels: {app: db}}").matches(&l));
        assert!(sel("{matchExpressions: [{key: app, operator: In, values: [db, web]}]}").matches(&l));
        assert!(!sel("{matchExpressions: [{key: app, operator: NotIn, values: [web]}]}").matches(&l));
        assert!(sel("{matchExpressions: [{key: tier, operator: DoesNotExist}]}").matches(&l));
        assert!(!sel("{matchExpressions: [{key: tier, operator: Exists}]}").matches(&l));
    }
}
