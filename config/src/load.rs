//! Cluster state from any number of sources, as the API prints it: each
//! `--cluster` file is a stream of YAML (or JSON) documents, each document
//! either sdnfwd's own cluster form (`clusterNetwork:`, `node:`, ...) or
//! API objects (`oc get clusternetwork,hostsubnets,netnamespaces,
//! namespaces,pods,services,networkpolicies,egressnetworkpolicies -A -o
//! yaml` prints one `kind: List`; a single object has its own `kind`).
//! Everything is merged into one [`Cluster`]; the node section (uplink,
//! cores, each local pod's veth and ofport) stays sdnfwd's own, and the
//! Pods of a node with a HostSubnet become its local pods
//! ([`Cluster::resolve`]).
//!
//! Every object remembers where it came from ([`Origins`]: source,
//! document, path), so that a type error and every problem of
//! [`Cluster::check`] is reported at `file:line:column`. Kinds sdnfwd does
//! not use are skipped, counted in one warning. Pure: the caller reads the
//! files.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_norway::Value;

use crate::obj::{Obj, Origins};
use crate::yaml::Cluster;
use crate::yaml::{
    ClusterNetwork, ClusterPod, EgressNetworkPolicy, HostSubnet, Ip, Metadata, Namespace, NetNamespace, NetworkPolicy,
    Node, Pod, Service, ServicePort, OFPORT_UNSET,
};
use crate::yaml_pos::Positions;
use crate::ParseError;

/// A Service as the API prints it.
#[derive(Deserialize)]
struct ApiService {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    spec: ApiServiceSpec,
}

#[derive(Default, Deserialize)]
struct ApiServiceSpec {
    #[serde(default, rename = "clusterIP")]
    cluster_ip: String,
    #[serde(default)]
    ports: Vec<ServicePort>,
}

/// The loader's state while it merges.
struct Merge {
    c: Cluster,
    cn_given: bool,
    /// Kinds skipped, with counts.
    skipped: BTreeMap<String, usize>,
    /// Nodes by name → (source, document, path), resolved to indices at the end.
    node_src: Vec<(String, usize, usize, String)>,
    errs: Vec<ParseError>,
}

fn err_at(name: Option<&str>, (l, c): (usize, usize), msg: String) -> ParseError {
    let e = ParseError::new(l, c, msg);
    match name {
        Some(n) => e.in_file(n),
        None => e,
    }
}

fn join(prefix: &str, p: &str) -> String {
    match (prefix.is_empty(), p.is_empty() || p == ".") {
        (_, true) => prefix.to_string(),
        (true, false) => p.to_string(),
        (false, false) => format!("{prefix}.{p}"),
    }
}

/// Deserializes `v` into `T`, locating an error at the path it happened.
fn typed<T: for<'de> Deserialize<'de>>(
    v: &Value,
    pos: &Positions,
    prefix: &str,
    what: &str,
) -> Result<T, ((usize, usize), String)> {
    serde_path_to_error::deserialize(v.clone()).map_err(|e| {
        let path = join(prefix, &e.path().to_string());
        // The deepest position known on the way to the error.
        let mut at = None;
        let mut p = path.as_str();
        loop {
            if let Some(x) = pos.get(p) {
                at = Some(x);
                break;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => break,
            }
        }
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { format!(" at {field}") };
        (at.or_else(|| pos.get(prefix)).unwrap_or((1, 1)), format!("{what}{field}: {}", e.inner()))
    })
}

impl Merge {
    fn object(&mut self, v: &Value, src: usize, doc: usize, path: &str, pos: &Positions, name: Option<&str>) {
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
        let meta_name = v.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("");
        let meta_ns = v.get("metadata").and_then(|m| m.get("namespace")).and_then(Value::as_str);
        let id = match meta_ns {
            Some(ns) => format!("{kind} {ns}/{meta_name}"),
            None => format!("{kind} {meta_name}"),
        };
        macro_rules! take {
            ($t:ty) => {
                match typed::<$t>(v, pos, path, &id) {
                    Ok(x) => x,
                    Err((at, msg)) => {
                        self.errs.push(err_at(name, at, msg));
                        return;
                    }
                }
            };
        }
        let c = &mut self.c;
        let p = path.to_string();
        match kind {
            "ClusterNetwork" => {
                let cn = take!(ClusterNetwork);
                if self.cn_given {
                    let at = pos.get(path).unwrap_or((1, 1));
                    self.errs.push(err_at(
                        name,
                        at,
                        format!("{id}: a second ClusterNetwork (sdnfwd reads one, `default`)"),
                    ));
                    return;
                }
                self.cn_given = true;
                c.cluster_network = cn;
                c.origins.set(Obj::ClusterNetwork, src, doc, p);
                for i in 0..c.cluster_network.cluster_networks.len() {
                    c.origins.set(Obj::ClusterNetworkEntry(i), src, doc, join(path, &format!("clusterNetworks[{i}]")));
                }
            }
            "HostSubnet" => {
                let h = take!(HostSubnet);
                c.origins.set(Obj::HostSubnet(c.host_subnets.len()), src, doc, p);
                c.host_subnets.push(h);
            }
            "NetNamespace" => {
                let n = take!(NetNamespace);
                c.origins.set(Obj::NetNamespace(c.net_namespaces.len()), src, doc, p);
                c.net_namespaces.push(n);
            }
            "Namespace" => {
                let n = take!(Namespace);
                c.origins.set(Obj::Namespace(c.namespaces.len()), src, doc, p);
                c.namespaces.push(n);
            }
            "Pod" => {
                let x = take!(ClusterPod);
                c.origins.set(Obj::ClusterPod(c.pods.len()), src, doc, p);
                c.pods.push(x);
            }
            "Service" => {
                let s = take!(ApiService);
                c.origins.set(Obj::Service(c.services.len()), src, doc, p);
                c.services.push(Service {
                    namespace: s.metadata.namespace.unwrap_or_default(),
                    name: s.metadata.name,
                    cluster_ip: s.spec.cluster_ip,
                    ports: s.spec.ports,
                });
            }
            "NetworkPolicy" => {
                let n = take!(NetworkPolicy);
                c.origins.set(Obj::NetworkPolicy(c.network_policies.len()), src, doc, p);
                c.network_policies.push(n);
            }
            "EgressNetworkPolicy" => {
                let e = take!(EgressNetworkPolicy);
                c.origins.set(Obj::EgressPolicy(c.egress_network_policies.len()), src, doc, p);
                c.egress_network_policies.push(e);
            }
            "" => {
                let at = pos.get(path).unwrap_or((1, 1));
                self.errs.push(err_at(name, at, "an object without `kind` (expected an API object or a List)".into()));
            }
            other => *self.skipped.entry(other.to_string()).or_default() += 1,
        }
    }

    /// An sdnfwd-form document, merged.
    fn own(&mut self, v: &Value, src: usize, doc: usize, pos: &Positions, name: Option<&str>) {
        let d: Cluster = match typed(v, pos, "", "cluster") {
            Ok(d) => d,
            Err((at, msg)) => {
                self.errs.push(err_at(name, at, msg.trim_start_matches("cluster at ").to_string()));
                return;
            }
        };
        let list = |field: &str, i: usize| {
            let a = format!("{field}[{i}]");
            if pos.get(&a).is_some() {
                a
            } else {
                format!("{field}.items[{i}]")
            }
        };
        let c = &mut self.c;
        if v.get("clusterNetwork").is_some() {
            if self.cn_given {
                let at = pos.get("clusterNetwork").unwrap_or((1, 1));
                self.errs.push(err_at(name, at, "a second ClusterNetwork (sdnfwd reads one)".into()));
            } else {
                self.cn_given = true;
                c.cluster_network = d.cluster_network;
                c.origins.set(Obj::ClusterNetwork, src, doc, "clusterNetwork".into());
                for i in 0..c.cluster_network.cluster_networks.len() {
                    c.origins.set(
                        Obj::ClusterNetworkEntry(i),
                        src,
                        doc,
                        format!("clusterNetwork.clusterNetworks[{i}]"),
                    );
                }
            }
        }
        macro_rules! merge {
            ($field:ident, $yaml:literal, $obj:path) => {
                for (i, x) in d.$field.into_iter().enumerate() {
                    c.origins.set($obj(c.$field.len()), src, doc, list($yaml, i));
                    c.$field.push(x);
                }
            };
        }
        merge!(host_subnets, "hostSubnets", Obj::HostSubnet);
        merge!(net_namespaces, "netNamespaces", Obj::NetNamespace);
        merge!(services, "services", Obj::Service);
        merge!(egress_network_policies, "egressNetworkPolicies", Obj::EgressPolicy);
        merge!(namespaces, "namespaces", Obj::Namespace);
        merge!(pods, "pods", Obj::ClusterPod);
        merge!(network_policies, "networkPolicies", Obj::NetworkPolicy);
        if let Some(n) = d.node {
            if c.node.is_some() {
                let at = pos.get("node").unwrap_or((1, 1));
                self.errs.push(err_at(name, at, "a second `node:` section (give the others as `nodes:`)".into()));
            } else {
                self.node_src.push((n.name.clone(), src, doc, "node".into()));
                c.node = Some(n);
            }
        }
        for (i, n) in d.nodes.into_iter().enumerate() {
            self.node_src.push((n.name.clone(), src, doc, format!("nodes[{i}]")));
            c.nodes.push(n);
        }
        if let Some(f) = d.flows {
            if c.flows.is_some() {
                let at = pos.get("flows").unwrap_or((1, 1));
                self.errs.push(err_at(name, at, "a second `flows:` file".into()));
            }
            c.flows = Some(f);
        }
    }
}

/// An empty cluster to merge into.
fn empty() -> Cluster {
    Cluster {
        cluster_network: ClusterNetwork::default(),
        host_subnets: vec![],
        net_namespaces: vec![],
        node: None,
        nodes: vec![],
        services: vec![],
        egress_network_policies: vec![],
        namespaces: vec![],
        pods: vec![],
        network_policies: vec![],
        flows: None,
        sdn_version: None,
        origins: Origins::default(),
        warnings: vec![],
    }
}

/// What [`each_object`] hands over.
enum Doc<'a> {
    /// An object: a document (`path` empty) or an item of a `kind: List`
    /// document (`items[N]`), with its document's index and positions.
    Object { di: usize, path: &'a str, v: &'a Value, pos: &'a Positions },
    /// What cannot be read, at its line and column.
    Bad((usize, usize), String),
}

/// The objects of a YAML stream as `oc get -o yaml` writes them, in order:
/// each document, or each item of a `kind: List` document; a null
/// document is skipped. A document that is not YAML ends the stream (its
/// error at its line and column); a List whose `items` is not a sequence
/// is an error too. `docs`: the documents' positions.
fn each_object(text: &str, docs: &[Positions], mut f: impl FnMut(Doc<'_>)) {
    let empty_pos = Positions::default();
    for (di, de) in serde_norway::Deserializer::from_str(text).enumerate() {
        let v = match Value::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                let at = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
                let mut msg = e.to_string();
                if let Some(i) = msg.find(" at line ") {
                    msg.truncate(i);
                }
                f(Doc::Bad(at, msg));
                return;
            }
        };
        let pos = docs.get(di).unwrap_or(&empty_pos);
        match (v.get("kind").and_then(Value::as_str), v.get("items")) {
            (Some("List"), Some(Value::Sequence(items))) => {
                for (i, item) in items.iter().enumerate() {
                    f(Doc::Object { di, path: &format!("items[{i}]"), v: item, pos });
                }
            }
            (Some("List"), Some(Value::Null) | None) => {}
            (Some("List"), Some(_)) => {
                f(Doc::Bad(pos.get("items").unwrap_or((1, 1)), "a List's `items` must be a sequence".into()))
            }
            _ if v.is_null() => {}
            _ => f(Doc::Object { di, path: "", v: &v, pos }),
        }
    }
}

/// Merges sources (name, text) into one cluster, resolved
/// ([`Cluster::resolve`]) but not checked. A source named None is the
/// single unnamed input (errors then carry no file name, for the caller's
/// `in_file`).
///
/// # Errors
/// Every syntax and type error, each at its file, line and column; a
/// missing ClusterNetwork.
pub fn load_unchecked(sources: &[(Option<String>, String)]) -> Result<Cluster, Vec<ParseError>> {
    let mut files = Vec::new();
    for (name, text) in sources {
        files.push((name.clone(), Positions::of_all(text)));
    }
    let mut m = Merge { c: empty(), cn_given: false, skipped: BTreeMap::new(), node_src: vec![], errs: vec![] };
    m.c.origins = Origins::new(files.clone());
    for (si, (name, text)) in sources.iter().enumerate() {
        let name = name.as_deref();
        let docs = &files[si].1;
        each_object(text, docs, |o| match o {
            Doc::Bad(at, msg) => m.errs.push(err_at(name, at, msg)),
            Doc::Object { di, path, v, pos } if !path.is_empty() => m.object(v, si, di, path, pos, name),
            Doc::Object { di, v, pos, .. } => match v.get("kind").and_then(Value::as_str) {
                Some(_) => m.object(v, si, di, "", pos, name),
                None if v.is_mapping() => m.own(v, si, di, pos, name),
                None => {
                    let at = pos.get("").unwrap_or((1, 1));
                    m.errs.push(err_at(name, at, "expected a cluster mapping, an API object or a List".into()));
                }
            },
        });
    }
    if !m.cn_given && m.errs.is_empty() {
        let name = sources.first().and_then(|s| s.0.as_deref());
        m.errs.push(err_at(
            name,
            (1, 1),
            "no ClusterNetwork: give a `clusterNetwork:` section or a ClusterNetwork object".into(),
        ));
    }
    if !m.errs.is_empty() {
        return Err(m.errs);
    }
    let mut c = m.c;
    for (name, s, d, path) in m.node_src {
        let found = c.all_nodes().position(|n| n.name == name);
        if let Some(k) = found {
            c.origins.set(Obj::Node(k), s, d, path.clone());
            let n = c.all_nodes().nth(k).map_or(0, |n| n.pods.len());
            for i in 0..n {
                c.origins.set(Obj::Pod(k, i), s, d, format!("{path}.pods[{i}]"));
            }
        }
    }
    if !m.skipped.is_empty() {
        let n: usize = m.skipped.values().sum();
        let kinds: Vec<String> = m.skipped.iter().map(|(k, n)| format!("{k} ({n})")).collect();
        c.warnings.push(format!("skipped {n} objects of kinds sdnfwd does not use: {}", kinds.join(", ")));
    }
    c.resolve();
    Ok(c)
}

/// [`load_unchecked`], then [`Cluster::check`]: every problem at its file,
/// line and column, in source order.
///
/// # Errors
/// Syntax and type errors, or every problem of the merged cluster.
pub fn load(sources: &[(Option<String>, String)]) -> Result<Cluster, Vec<ParseError>> {
    let c = load_unchecked(sources)?;
    let problems = c.check();
    if problems.is_empty() {
        return Ok(c);
    }
    let mut errs: Vec<(usize, ParseError)> = problems
        .into_iter()
        .map(|p| {
            let (file, l, col) = c.origins.locate(p.obj, p.field).unwrap_or((None, 1, 1));
            let idx = sources.iter().position(|s| s.0.as_deref() == file).unwrap_or(0);
            (idx, err_at(file, (l, col), p.msg))
        })
        .collect();
    errs.sort_by_key(|(i, e)| (*i, e.line, e.col));
    Err(errs.into_iter().map(|(_, e)| e).collect())
}

/// The origins of a single unnamed sdnfwd-form document: only the
/// objects [`Cluster::resolve`] derives need them (the rest is found by
/// [`Cluster::yaml_paths`]).
pub fn single_origins(pos: Positions, c: &Cluster) -> Origins {
    let mut o = Origins::new(vec![(None, vec![pos.clone()])]);
    for j in 0..c.pods.len() {
        let path =
            if pos.get(&format!("pods[{j}]")).is_some() { format!("pods[{j}]") } else { format!("pods.items[{j}]") };
        o.set(Obj::ClusterPod(j), 0, 0, path);
    }
    o
}

/// A synthetic NetworkPolicy cluster for scale tests and benchmarks, as
/// `oc get -o yaml` prints it: 50 nodes (10.128.0.0/14, /23 each), 100
/// namespaces (`ns-0`..`ns-99`, labelled `name: ns-N`), `n_pods` pods
/// spread round-robin over namespaces and nodes (labels `app: app-K`, ten
/// apps a namespace; a container port `http` 8080), and `n_policies`
/// NetworkPolicies spread over the namespaces in five shapes as clusters
/// write them: one app from another of its namespace on 8080; from another
/// namespace on the range 8000–8100; from the whole namespace; an egress
/// policy to 10.0.0.0/8 except the cluster network on 443; and a namespace
/// and pod selector together on 8443. The node section describes `node-0`
/// and its local pods.
///
/// # Panics
/// If `n_pods` exceeds 25,000 (500 a node).
pub fn synthetic_policy_cluster(n_pods: usize, n_policies: usize) -> Cluster {
    use std::fmt::Write as _;
    use std::net::Ipv4Addr;
    const NODES: usize = 50;
    const NAMESPACES: usize = 100;
    assert!(n_pods <= NODES * 500);
    let subnet = |n: usize| u32::from(Ipv4Addr::new(10, 128, 0, 0)) + ((n as u32) << 9);
    let mut y = String::from(
        "apiVersion: v1\nkind: List\nitems:\n\
         - {kind: ClusterNetwork, apiVersion: network.openshift.io/v1, metadata: {name: default}, \
         clusterNetworks: [{CIDR: 10.128.0.0/14, hostSubnetLength: 9}], serviceNetwork: 172.30.0.0/16, \
         pluginName: redhat/openshift-ovs-networkpolicy}\n",
    );
    for n in 0..NODES {
        let _ = writeln!(
            y,
            "- {{kind: HostSubnet, apiVersion: network.openshift.io/v1, metadata: {{name: node-{n}}}, host: node-{n}, \
             hostIP: 172.16.{}.{}, subnet: {}/23}}",
            n / 250,
            n % 250 + 1,
            Ipv4Addr::from(subnet(n))
        );
    }
    for i in 0..NAMESPACES {
        let _ = writeln!(
            y,
            "- {{kind: NetNamespace, apiVersion: network.openshift.io/v1, metadata: {{name: ns-{i}}}, netname: ns-{i}, \
             netid: {}}}\n- {{kind: Namespace, apiVersion: v1, metadata: {{name: ns-{i}, labels: {{name: ns-{i}, \
             kubernetes.io/metadata.name: ns-{i}}}}}}}",
            100 + i
        );
    }
    let mut node0 = String::from("node:\n  name: node-0\n  uplink: eth0\n  pods:\n");
    let mut on_node = [0u32; NODES];
    for p in 0..n_pods {
        // The j-th pod of a namespace runs app-(j % 10), on a node that
        // shifts with the namespace: every node hosts pods of every
        // namespace once there are 50 a namespace.
        let (ns, j) = (p % NAMESPACES, p / NAMESPACES);
        let node = (j + ns) % NODES;
        on_node[node] += 1;
        let ip = Ipv4Addr::from(subnet(node) + 1 + on_node[node]);
        let _ = writeln!(
            y,
            "- {{kind: Pod, apiVersion: v1, metadata: {{name: pod-{p}, namespace: ns-{ns}, labels: {{app: app-{}}}}}, \
             spec: {{nodeName: node-{node}, containers: [{{name: c, ports: [{{containerPort: 8080, name: http, \
             protocol: TCP}}]}}]}}, status: {{phase: Running, podIP: {ip}}}}}",
            j % 10
        );
        if node == 0 {
            let _ = writeln!(node0, "  - {{namespace: ns-{ns}, name: pod-{p}, veth: veth{p}}}");
        }
    }
    for k in 0..n_policies {
        let ns = k % NAMESPACES;
        let app = (k / NAMESPACES) % 10;
        let head = format!(
            "- {{kind: NetworkPolicy, apiVersion: networking.k8s.io/v1, metadata: {{name: p-{k}, namespace: ns-{ns}}}, \
             spec: {{podSelector: {{matchLabels: {{app: app-{app}}}}}, "
        );
        let body = match (k / NAMESPACES) % 5 {
            0 => format!(
                "ingress: [{{from: [{{podSelector: {{matchLabels: {{app: app-{}}}}}}}], ports: [{{port: 8080, \
                 protocol: TCP}}]}}], policyTypes: [Ingress]",
                (app + 1) % 10
            ),
            1 => format!(
                "ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{name: ns-{}}}}}}}], ports: [{{port: 8000, \
                 endPort: 8100, protocol: TCP}}]}}], policyTypes: [Ingress]",
                (ns + 1) % NAMESPACES
            ),
            2 => "ingress: [{from: [{podSelector: {}}]}], policyTypes: [Ingress]".to_string(),
            3 => "egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.128.0.0/14]}}], ports: [{port: 443, \
                  protocol: TCP}]}], policyTypes: [Egress]"
                .to_string(),
            _ => format!(
                "ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{name: ns-{}}}}}, podSelector: \
                 {{matchLabels: {{app: app-{app}}}}}}}], ports: [{{port: 8443, protocol: TCP}}]}}], policyTypes: \
                 [Ingress]",
                (ns + 7) % NAMESPACES
            ),
        };
        let _ = writeln!(y, "{head}{body}}}}}");
    }
    load_unchecked(&[(None, node0), (None, y)]).unwrap_or_else(|e| panic!("synthetic policy cluster: {}", e[0]))
}

impl Cluster {
    /// Parses a cluster YAML without the checks of the whole state
    /// ([`Cluster::check`], which [`Cluster::from_yaml`] runs): types and
    /// syntax only.
    ///
    /// # Errors
    /// Syntax and type errors, located at line and column.
    pub fn from_yaml_unchecked(text: &str) -> Result<Cluster, ParseError> {
        if crate::yaml::is_api_form(text) {
            return load_unchecked(&[(None, text.to_string())]).map_err(|mut v| v.remove(0));
        }
        let mut c: Cluster = serde_norway::from_str(text).map_err(|e| {
            let (line, col) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
            let mut msg = e.to_string();
            // serde_norway appends " at line L column C"; the prefix says it.
            if let Some(i) = msg.find(" at line ") {
                msg.truncate(i);
            }
            // Flow-style mappings are located at their start; point at the
            // offending value itself when the message quotes it.
            let (line, col) = crate::yaml::quoted_value(&msg)
                .and_then(|v| crate::yaml::locate_from(text, line, v))
                .unwrap_or((line, col));
            ParseError::new(line, col, msg)
        })?;
        let pos = crate::yaml_pos::Positions::of(text);
        if pos.get("clusterNetwork").is_none() {
            return Err(ParseError::new(1, 1, "missing field `clusterNetwork`"));
        }
        c.origins = single_origins(pos, &c);
        c.resolve();
        Ok(c)
    }

    /// Derives what the sources leave implicit: a node (with a HostSubnet)
    /// for every Pod scheduled on it; each Pod on the pod network of a
    /// described node becomes one of its local pods (the node section's
    /// entry, matched by namespace/name, gives veth and ofport; the Pod
    /// gives the IP and labels the entry leaves out); ofports left out
    /// are allocated from 3, in namespace/name order, skipping those given.
    pub fn resolve(&mut self) {
        let pods = std::mem::take(&mut self.pods);
        for (j, p) in pods.iter().enumerate() {
            let Some(node) = p.spec.node_name.as_deref() else { continue };
            if p.spec.host_network || self.host_subnet(node).is_none() {
                continue;
            }
            if self.find_node(node).is_none() {
                self.nodes.push(Node::named(node));
            }
            let k = self.all_nodes().position(|n| n.name == node).unwrap_or(0);
            let ns = p.namespace().to_string();
            let origin = self.origins.objs.get(&Obj::ClusterPod(j)).cloned();
            let Some(n) = self.node_mut(node) else { continue };
            match n.pods.iter_mut().find(|e| e.namespace == ns && e.name == p.metadata.name) {
                Some(e) => {
                    if e.ip == Ip::UNSET {
                        if let Some(ip) = p.status.pod_ip {
                            e.ip = ip;
                        }
                    }
                    if e.labels.is_empty() {
                        e.labels = p.metadata.labels.clone();
                    }
                }
                None => {
                    let Some(ip) = p.status.pod_ip else { continue };
                    let i = n.pods.len();
                    n.pods.push(Pod {
                        namespace: ns,
                        name: p.metadata.name.clone(),
                        ip,
                        veth: None,
                        ofport: OFPORT_UNSET,
                        labels: p.metadata.labels.clone(),
                    });
                    if let Some((s, d, path)) = origin {
                        self.origins.set(Obj::Pod(k, i), s, d, path);
                    }
                }
            }
        }
        self.pods = pods;
        let nodes: Vec<String> = self.all_nodes().map(|n| n.name.clone()).collect();
        for name in nodes {
            let Some(n) = self.node_mut(&name) else { continue };
            let taken: std::collections::BTreeSet<u32> =
                n.pods.iter().map(|p| p.ofport).filter(|&p| p != OFPORT_UNSET).collect();
            let mut order: Vec<usize> = (0..n.pods.len()).filter(|&i| n.pods[i].ofport == OFPORT_UNSET).collect();
            order.sort_by(|&a, &b| {
                (&n.pods[a].namespace, &n.pods[a].name).cmp(&(&n.pods[b].namespace, &n.pods[b].name))
            });
            let mut next = 3u32;
            for i in order {
                while taken.contains(&next) {
                    next += 1;
                }
                n.pods[i].ofport = next;
                next += 1;
            }
        }
    }
}

/// The NetworkPolicies of one file as `oc get networkpolicy -o yaml` (or
/// `-o json`) prints them: a stream of NetworkPolicy objects
/// (networking.k8s.io/v1) or `kind: List`s of them (`sdnfwd ctl policy
/// add`). Each is checked as the API's validation would
/// ([`NetworkPolicy::problems`]).
///
/// # Errors
/// Every syntax and type error, object of another kind or API version,
/// and problem of a policy, each at `name:line:column` (a problem naming a
/// value, at that value); a file without a policy.
pub fn network_policies(name: &str, text: &str) -> Result<Vec<NetworkPolicy>, Vec<ParseError>> {
    let docs = Positions::of_all(text);
    let mut out = Vec::new();
    let mut errs = Vec::new();
    let at = |(l, c): (usize, usize), msg: String| ParseError::new(l, c, msg).in_file(name);
    let mut one = |v: &Value, pos: &Positions, path: &str, errs: &mut Vec<ParseError>| {
        let here = pos.get(path).unwrap_or((1, 1));
        let field = |f: &str| pos.get(&join(path, f)).unwrap_or(here);
        match v.get("kind").and_then(Value::as_str) {
            Some("NetworkPolicy") => {}
            Some(k) => {
                errs.push(at(field("kind"), format!("kind `{k}`: expected a NetworkPolicy (networking.k8s.io/v1)")));
                return;
            }
            None => {
                errs.push(at(here, "an object without `kind` (expected kind: NetworkPolicy)".into()));
                return;
            }
        }
        if let Some(api) = v.get("apiVersion") {
            if api.as_str() != Some("networking.k8s.io/v1") {
                let shown = api.as_str().map_or_else(|| format!("{api:?}"), str::to_string);
                errs.push(at(
                    field("apiVersion"),
                    format!("apiVersion `{shown}`: sdnfwd reads NetworkPolicy networking.k8s.io/v1"),
                ));
                return;
            }
        }
        let meta_name = v.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("");
        let meta_ns = v.get("metadata").and_then(|m| m.get("namespace")).and_then(Value::as_str).unwrap_or("");
        let np: NetworkPolicy = match typed(v, pos, path, &format!("NetworkPolicy {meta_ns}/{meta_name}")) {
            Ok(np) => np,
            Err((p, msg)) => {
                errs.push(at(p, msg));
                return;
            }
        };
        for (f, msg) in np.problems() {
            let start = field(f);
            // A message that quotes the wrong value is located at it.
            let quoted = msg.split_once('`').and_then(|(_, r)| r.split_once('`')).map(|(v, _)| v.to_string());
            let needle = quoted.filter(|v| !v.is_empty()).or_else(|| {
                msg.split_once(" port ").and_then(|(_, r)| r.split_whitespace().next()).map(str::to_string)
            });
            let p = needle.and_then(|n| crate::yaml::locate_from(text, start.0, &n)).unwrap_or(start);
            errs.push(at(p, msg));
        }
        out.push(np);
    };
    each_object(text, &docs, |o| match o {
        Doc::Bad(l, msg) => errs.push(at(l, msg)),
        Doc::Object { path, v, pos, .. } => one(v, pos, path, &mut errs),
    });
    if errs.is_empty() && out.is_empty() {
        errs.push(at((1, 1), "no NetworkPolicy in the file".into()));
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NP: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: allow-8080\n  namespace: project-a\nspec:\n  podSelector:\n    matchLabels: {app: web}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {team: frontend}\n    ports:\n    - {protocol: TCP, port: 8080}\n";

    fn errs(text: &str) -> Vec<String> {
        network_policies("p.yaml", text).unwrap_err().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn test_network_policies_read() {
        let v = network_policies("p.yaml", NP).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].id(), "project-a/allow-8080");
        // A List, as `oc get networkpolicy -o yaml` prints, and JSON.
        let list = format!("apiVersion: v1\nkind: List\nitems:\n- {}", NP.replace('\n', "\n  ").trim_end());
        assert_eq!(network_policies("p.yaml", &list).unwrap()[0].id(), "project-a/allow-8080");
        let json = r#"{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "d", "namespace": "x"}, "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}"#;
        assert_eq!(network_policies("p.json", json).unwrap()[0].types(), (false, true));
        // What `oc get networkpolicy NAME -o yaml` prints, server fields and all.
        let oc = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  annotations:\n    \
                  kubectl.kubernetes.io/last-applied-configuration: |\n      {\"kind\":\"NetworkPolicy\"}\n  \
                  creationTimestamp: \"2026-12-06T09:00:00Z\"\n  generation: 1\n  name: deny-all\n  namespace: b\n  \
                  resourceVersion: \"123456\"\n  uid: 0b8f3c5e-1111-2222-3333-444455556666\nspec:\n  podSelector: {}\n  \
                  policyTypes:\n  - Ingress\nstatus: {}\n";
        assert_eq!(network_policies("p.yaml", oc).unwrap()[0].id(), "b/deny-all");
    }

    #[test]
    fn test_network_policies_errors_are_located() {
        assert_eq!(
            errs(&NP.replace("port: 8080", "port: 99999")),
            ["p.yaml:14:29: NetworkPolicy project-a/allow-8080: ingress[0]: port 99999 is outside 1..65535"]
        );
        assert_eq!(
            errs(&NP.replace("protocol: TCP", "protocol: ICMP")),
            ["p.yaml:14:18: NetworkPolicy project-a/allow-8080: ingress[0]: protocol `ICMP` is not TCP, UDP or SCTP"]
        );
        let e = errs(&NP.replace("ingress:", "ingress: 5\n  x:"));
        assert!(e.len() == 1 && e[0].starts_with("p.yaml:9:"), "{e:?}");
        assert_eq!(
            errs(&NP.replace("kind: NetworkPolicy", "kind: Pod")),
            ["p.yaml:2:7: kind `Pod`: expected a NetworkPolicy (networking.k8s.io/v1)"]
        );
        assert_eq!(
            errs(&NP.replace("networking.k8s.io/v1", "extensions/v1beta1")),
            ["p.yaml:1:13: apiVersion `extensions/v1beta1`: sdnfwd reads NetworkPolicy networking.k8s.io/v1"]
        );
        assert_eq!(errs(""), ["p.yaml:1:1: no NetworkPolicy in the file"]);
        assert!(errs("kind: [").len() == 1);
        assert!(errs(&NP.replace("  namespace: project-a\n", ""))[0].contains("metadata.namespace are required"));
    }
}
