//! A node's desired state and where each part of it came from: the config
//! file, plus what `sdnfwd ctl pod|hostsubnet|policy add|del` changed since
//! (the CNI path, a node joining, the API's NetworkPolicy events). A reload re-reads the file and replays those
//! runtime changes on top, so that a pod added with ctl survives a SIGHUP;
//! a ctl change is made on top of the current state. Either way the whole
//! resulting cluster must pass `Cluster::check`, and each problem is one
//! line naming its source: `file:line:column` for what the file says, the
//! ctl command for what ctl added. Nothing here touches the machine: the
//! caller (run.rs) applies an accepted state and keeps it.
//!
//! Runtime changes are kept as an overlay: pods, HostSubnets and
//! NetworkPolicies added (by identity: `namespace/name`, host name) and
//! deletions of what the file lists. Replayed on a new file: an added object the file now lists
//! identically is the file's from then on (the overlay forgets it); one the
//! file lists differently refuses the reload, naming both; a deletion of
//! something the file no longer lists is forgotten.

use config::check::{Obj, Problem};
use config::yaml::{Cluster, HostSubnet, NetworkPolicy, Pod};
use config::yaml_pos::Positions;

/// A change `sdnfwd ctl` asks for.
#[derive(Clone, Debug)]
pub enum Edit {
    /// `pod add NS/NAME IP VETH OFPORT`.
    AddPod(Pod),
    /// `pod del NS/NAME`.
    DelPod(String),
    /// `hostsubnet add NAME HOSTIP SUBNET`.
    AddHostSubnet(HostSubnet),
    /// `hostsubnet del NAME`.
    DelHostSubnet(String),
    /// `policy add FILE`: the file's NetworkPolicies (already read and
    /// checked one by one, [`config::load::network_policies`]).
    AddPolicies(Vec<NetworkPolicy>),
    /// `policy del NS/NAME`.
    DelPolicy(String),
}

/// The usage line of the cluster edits.
pub const EDIT_USAGE: &str = "pod add NS/NAME IP VETH OFPORT | pod del NS/NAME | hostsubnet add NAME HOSTIP SUBNET | \
     hostsubnet del NAME | policy add FILE | policy del NS/NAME";

/// Parses `pod ...`, `hostsubnet ...` or `policy del ...` (the words
/// after `ctl`; `policy add` carries a file, read by the control thread).
///
/// # Errors
/// Wrong arity or a malformed address, naming the command.
pub fn parse_edit(what: &str, args: &[&str]) -> Result<Edit, String> {
    match (what, args) {
        ("pod", ["add", id, ip, veth, ofport]) => {
            let (ns, name) = id.split_once('/').ok_or(format!("pod `{id}` is not NAMESPACE/NAME"))?;
            let ofport: u32 = ofport.parse().map_err(|_| format!("ofport `{ofport}` is not a number"))?;
            Ok(Edit::AddPod(Pod::new(ns, name, ip, veth, ofport)?))
        }
        ("pod", ["del", id]) => Ok(Edit::DelPod(id.to_string())),
        ("hostsubnet", ["add", name, ip, subnet]) => Ok(Edit::AddHostSubnet(HostSubnet::new(name, ip, subnet)?)),
        ("hostsubnet", ["del", name]) => Ok(Edit::DelHostSubnet(name.to_string())),
        ("policy", ["del", id]) if id.contains('/') => Ok(Edit::DelPolicy(id.to_string())),
        ("policy", ["del", id]) => Err(format!("policy `{id}` is not NAMESPACE/NAME")),
        _ => Err(format!("usage: {EDIT_USAGE}")),
    }
}

fn pod_id(p: &Pod) -> String {
    format!("{}/{}", p.namespace, p.name)
}

/// Where an object of the desired state came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Src {
    /// The file, at this object of the file's cluster.
    File(Obj),
    /// `sdnfwd ctl` (the command, without `sdnfwd ctl`).
    Ctl(String),
}

/// The config file as last read.
#[derive(Clone, Debug)]
pub struct FileState {
    /// Its path.
    pub path: String,
    /// Its cluster, parsed but not checked.
    pub cluster: Cluster,
    /// The extra flow file it names: (path, text).
    pub extra: Option<(String, String)>,
    pos: Positions,
}

impl FileState {
    /// Reads and parses the file and the flow file it names.
    ///
    /// # Errors
    /// A file that cannot be read, a syntax or type error (located).
    pub fn read(path: &str) -> Result<FileState, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let cluster = Cluster::from_yaml_unchecked(&text).map_err(|e| e.in_file(path).to_string())?;
        let extra = match &cluster.flows {
            Some(f) => {
                let base = std::path::Path::new(path).parent().unwrap_or(std::path::Path::new("."));
                let p = base.join(f).to_string_lossy().into_owned();
                let t = std::fs::read_to_string(&p).map_err(|e| format!("{p}: {e}"))?;
                Some((p, t))
            }
            None => None,
        };
        Ok(FileState { path: path.to_string(), cluster, extra, pos: Positions::of(&text) })
    }
}

impl FileState {
    /// [`FileState::read`], with the rules of `version` (`--sdn-version`)
    /// over the file's `sdnVersion`.
    ///
    /// # Errors
    /// As [`FileState::read`].
    pub fn read_as(path: &str, version: Option<config::yaml::SdnVersion>) -> Result<FileState, String> {
        let mut f = FileState::read(path)?;
        f.cluster.sdn_version = version;
        Ok(f)
    }
}

/// What ctl changed at runtime (see the module doc).
#[derive(Clone, Debug, Default)]
pub struct Overlay {
    /// Pods added to this node, with the command.
    pub pods: Vec<(Pod, String)>,
    /// Pods of the file deleted: (namespace/name, command).
    pub pods_deleted: Vec<(String, String)>,
    /// HostSubnets added, with the command.
    pub host_subnets: Vec<(HostSubnet, String)>,
    /// HostSubnets of the file deleted: (host, command).
    pub host_subnets_deleted: Vec<(String, String)>,
    /// NetworkPolicies added, with the command.
    pub policies: Vec<(NetworkPolicy, String)>,
    /// NetworkPolicies of the file deleted: (namespace/name, command).
    pub policies_deleted: Vec<(String, String)>,
}

/// The state a node runs: the file and the overlay merged and checked.
#[derive(Clone, Debug)]
pub struct NodeState {
    /// This node's name.
    pub node: String,
    /// The file.
    pub file: FileState,
    /// What ctl changed.
    pub overlay: Overlay,
    /// The merged cluster (passes `Cluster::check`).
    pub cluster: Cluster,
    /// Source of each of `cluster.host_subnets`.
    pub hs_src: Vec<Src>,
    /// Source of each pod of this node.
    pub pod_src: Vec<Src>,
    /// Source of each of `cluster.network_policies`.
    pub np_src: Vec<Src>,
    /// This node's index in `cluster.all_nodes()` (None: not described).
    node_idx: Option<usize>,
}

/// What a new state changes, for `ctl reload` and the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateDiff {
    /// Pods added (or changed): `ns/name (ip, veth, port N)`.
    pub pods_added: Vec<String>,
    /// Pods removed (or changed).
    pub pods_removed: Vec<String>,
    /// HostSubnets added (or changed): `host (hostIP, subnet)`.
    pub hs_added: Vec<String>,
    /// HostSubnets removed (or changed).
    pub hs_removed: Vec<String>,
    /// NetworkPolicies added (or changed): `ns/name`.
    pub np_added: Vec<String>,
    /// NetworkPolicies removed (or changed).
    pub np_removed: Vec<String>,
}

fn pod_desc(p: &Pod) -> String {
    format!("{} ({}, {}, port {})", pod_id(p), p.ip, p.veth.as_deref().unwrap_or("no veth"), p.ofport)
}

fn hs_desc(h: &HostSubnet) -> String {
    format!("{} ({}, {})", h.host, h.host_ip, h.subnet)
}

fn same_pod(a: &Pod, b: &Pod) -> bool {
    (a.ip, &a.veth, a.ofport, &a.namespace, &a.name) == (b.ip, &b.veth, b.ofport, &b.namespace, &b.name)
}

fn same_hs(a: &HostSubnet, b: &HostSubnet) -> bool {
    (a.host_ip, a.subnet, &a.host) == (b.host_ip, b.subnet, &b.host)
}

impl NodeState {
    /// The state of a freshly read file and no runtime changes (start-up).
    ///
    /// # Errors
    /// Every problem, one line each.
    pub fn new(node: &str, file: FileState) -> Result<NodeState, String> {
        NodeState::merge(node, file, Overlay::default(), None)
    }

    /// The file replaced (a reload), the runtime changes replayed on it.
    ///
    /// # Errors
    /// Every problem, one line each; a file that now conflicts with a
    /// runtime change is one.
    pub fn with_file(&self, file: FileState) -> Result<NodeState, String> {
        NodeState::merge(&self.node, file, self.overlay.clone(), None)
    }

    /// A ctl change made on top of this state; `cmd` is the command as
    /// typed (`pod add a/b ...`). Returns the new state and what changed.
    ///
    /// # Errors
    /// The change does not apply (no such pod, one exists) or the cluster
    /// it makes has problems, each naming the command.
    pub fn with_edit(&self, cmd: &str, edit: Edit) -> Result<(NodeState, String), String> {
        let mut o = self.overlay.clone();
        let at = |m: String| format!("ctl {cmd}: {m}");
        let msg = match edit {
            Edit::AddPod(p) => {
                let id = pod_id(&p);
                if let Some(q) = self.pods().iter().find(|q| pod_id(q) == id) {
                    return Err(at(format!("pod {id} exists ({})", pod_desc(q))));
                }
                let msg = format!("pod {} added", pod_desc(&p));
                o.pods.push((p, cmd.to_string()));
                msg
            }
            Edit::DelPod(id) => {
                if let Some(i) = o.pods.iter().position(|(p, _)| pod_id(p) == id) {
                    o.pods.remove(i);
                } else if self.pods().iter().any(|p| pod_id(p) == id) {
                    o.pods_deleted.push((id.clone(), cmd.to_string()));
                } else {
                    return Err(at(format!("no pod {id} on node {}", self.node)));
                }
                format!("pod {id} removed")
            }
            Edit::AddHostSubnet(h) => {
                if let Some(x) = self.cluster.host_subnets.iter().find(|x| x.host == h.host) {
                    return Err(at(format!("HostSubnet {} exists ({})", h.host, hs_desc(x))));
                }
                let msg = format!("HostSubnet {} added", hs_desc(&h));
                o.host_subnets.push((h, cmd.to_string()));
                msg
            }
            Edit::DelHostSubnet(name) => {
                if name == self.node {
                    return Err(at("a node cannot remove its own HostSubnet".into()));
                }
                if let Some(i) = o.host_subnets.iter().position(|(h, _)| h.host == name) {
                    o.host_subnets.remove(i);
                } else if self.cluster.host_subnets.iter().any(|h| h.host == name) {
                    o.host_subnets_deleted.push((name.clone(), cmd.to_string()));
                } else {
                    return Err(at(format!("no HostSubnet {name}")));
                }
                format!("HostSubnet {name} removed")
            }
            Edit::AddPolicies(ps) => {
                if config::yaml::plugin_id(&self.cluster.cluster_network.plugin_name) != Some(2) {
                    return Err(at(format!(
                        "the cluster runs {}: NetworkPolicies need redhat/openshift-ovs-networkpolicy",
                        self.cluster.cluster_network.plugin_name
                    )));
                }
                let mut ids = Vec::new();
                for p in ps {
                    let id = p.id();
                    let ns = p.metadata.namespace.clone().unwrap_or_default();
                    if self.cluster.network_policies.iter().any(|q| q.id() == id) || ids.contains(&id) {
                        return Err(at(format!("NetworkPolicy {id} exists (`policy del {id}` first)")));
                    }
                    if self.cluster.vnid(&ns).is_none() {
                        return Err(at(format!(
                            "NetworkPolicy {id}: namespace {ns} has no NetNamespace (the policy would select nothing)"
                        )));
                    }
                    ids.push(id);
                    o.policies.push((p, cmd.to_string()));
                }
                format!("NetworkPolicy {} added", ids.join(", "))
            }
            Edit::DelPolicy(id) => {
                if let Some(i) = o.policies.iter().position(|(p, _)| p.id() == id) {
                    o.policies.remove(i);
                } else if self.cluster.network_policies.iter().any(|p| p.id() == id) {
                    o.policies_deleted.push((id.clone(), cmd.to_string()));
                } else {
                    return Err(at(format!("no NetworkPolicy {id}")));
                }
                format!("NetworkPolicy {id} removed")
            }
        };
        let next = NodeState::merge(&self.node, self.file.clone(), o, Some(cmd))?;
        Ok((next, msg))
    }

    /// This node's pods.
    pub fn pods(&self) -> &[Pod] {
        self.cluster.find_node(&self.node).map_or(&[], |n| &n.pods[..])
    }

    /// The extra flow file: (path, text).
    pub fn extra(&self) -> Option<&(String, String)> {
        self.file.extra.as_ref()
    }

    /// What `next` adds and removes relative to this state.
    pub fn diff(&self, next: &NodeState) -> StateDiff {
        let mut d = StateDiff::default();
        for p in next.pods() {
            if !self.pods().iter().any(|q| same_pod(p, q)) {
                d.pods_added.push(pod_desc(p));
            }
        }
        for p in self.pods() {
            if !next.pods().iter().any(|q| same_pod(p, q)) {
                d.pods_removed.push(pod_desc(p));
            }
        }
        for h in &next.cluster.host_subnets {
            if !self.cluster.host_subnets.iter().any(|x| same_hs(h, x)) {
                d.hs_added.push(hs_desc(h));
            }
        }
        for h in &self.cluster.host_subnets {
            if !next.cluster.host_subnets.iter().any(|x| same_hs(h, x)) {
                d.hs_removed.push(hs_desc(h));
            }
        }
        for p in &next.cluster.network_policies {
            if !self.cluster.network_policies.contains(p) {
                d.np_added.push(p.id());
            }
        }
        for p in &self.cluster.network_policies {
            if !next.cluster.network_policies.contains(p) {
                d.np_removed.push(p.id());
            }
        }
        d
    }

    /// `ctl policy list`: one line per NetworkPolicy, with its types, the
    /// pods of the cluster it selects and its source.
    pub fn policy_list(&self) -> String {
        let mut out = String::new();
        for (p, s) in self.cluster.network_policies.iter().zip(&self.np_src) {
            let (ing, eg) = p.types();
            let types: Vec<&str> = [("Ingress", ing), ("Egress", eg)].iter().filter(|x| x.1).map(|x| x.0).collect();
            let ns = p.metadata.namespace.as_deref().unwrap_or("");
            let selected = self
                .cluster
                .pods
                .iter()
                .filter(|q| q.namespace() == ns && q.policy_ip().is_some())
                .filter(|q| p.spec.pod_selector.matches(&q.metadata.labels))
                .count();
            out += &format!(
                "{} types={} selects={selected} pod(s) from={}\n",
                p.id(),
                if types.is_empty() { "none".to_string() } else { types.join(",") },
                self.src_name(s)
            );
        }
        out
    }

    /// `ctl pod list`: one line per pod of this node, with its source.
    pub fn pod_list(&self, up: impl Fn(u32) -> bool) -> String {
        let mut out = String::new();
        for (p, s) in self.pods().iter().zip(&self.pod_src) {
            out += &format!(
                "{} ip={} veth={} ofport={} {} from={}\n",
                pod_id(p),
                p.ip,
                p.veth.as_deref().unwrap_or("-"),
                p.ofport,
                if up(p.ofport) { "up" } else { "down" },
                self.src_name(s)
            );
        }
        out
    }

    /// `ctl hostsubnet list`: one line per HostSubnet, with its source.
    pub fn hs_list(&self) -> String {
        let mut out = String::new();
        for (h, s) in self.cluster.host_subnets.iter().zip(&self.hs_src) {
            let me = if h.host == self.node { " (this node)" } else { "" };
            out += &format!("{} hostIP={} subnet={}{me} from={}\n", h.host, h.host_ip, h.subnet, self.src_name(s));
        }
        out
    }

    fn src_name(&self, s: &Src) -> String {
        match s {
            Src::File(o) => {
                let (l, c) = self.file.cluster.locate_in(&self.file.pos, *o, "");
                format!("{}:{l}:{c}", self.file.path)
            }
            Src::Ctl(cmd) => format!("`ctl {cmd}`"),
        }
    }

    /// The file merged with the overlay, checked. `cmd`: the ctl command
    /// being applied (its problems are reported at it), or None for a
    /// reload (problems reported at the file where the file is involved).
    fn merge(node: &str, file: FileState, mut o: Overlay, cmd: Option<&str>) -> Result<NodeState, String> {
        let mut c = file.cluster.clone();
        let mut errs = Vec::new();
        let fpath = file.path.clone();
        let at_file = |obj: Obj, field: &str, msg: String| {
            let (l, col) = file.cluster.locate_in(&file.pos, obj, field);
            format!("{fpath}:{l}:{col}: {msg}")
        };
        // HostSubnets: the file's less those deleted, then those added.
        o.host_subnets_deleted.retain(|(name, _)| c.host_subnets.iter().any(|h| &h.host == name));
        let mut hs_src = Vec::new();
        let mut kept = Vec::new();
        for (i, h) in c.host_subnets.drain(..).enumerate() {
            if !o.host_subnets_deleted.iter().any(|(n, _)| *n == h.host) {
                kept.push(h);
                hs_src.push(Src::File(Obj::HostSubnet(i)));
            }
        }
        c.host_subnets = kept;
        let mut added = Vec::new();
        for (h, hcmd) in std::mem::take(&mut o.host_subnets) {
            match c.host_subnets.iter().position(|x| x.host == h.host) {
                Some(i) if same_hs(&c.host_subnets[i], &h) => {} // the file has it now
                Some(i) => {
                    let Src::File(obj) = hs_src[i] else { unreachable!("only file objects so far") };
                    errs.push(at_file(
                        obj,
                        "",
                        format!(
                            "HostSubnet {} differs from the one `sdnfwd ctl {hcmd}` added ({}); delete one of them",
                            hs_desc(&c.host_subnets[i]),
                            hs_desc(&h)
                        ),
                    ));
                }
                None => added.push((h, hcmd)),
            }
        }
        for (h, hcmd) in &added {
            c.host_subnets.push(h.clone());
            hs_src.push(Src::Ctl(hcmd.clone()));
        }
        o.host_subnets = added;
        // This node's pods, the same way.
        let node_idx = c.all_nodes().position(|n| n.name == node);
        let mut pod_src = Vec::new();
        if let Some(n) = c.node_mut(node) {
            let k = node_idx.unwrap_or(0);
            o.pods_deleted.retain(|(id, _)| n.pods.iter().any(|p| pod_id(p) == *id));
            let mut kept = Vec::new();
            for (i, p) in n.pods.drain(..).enumerate() {
                if !o.pods_deleted.iter().any(|(id, _)| *id == pod_id(&p)) {
                    kept.push(p);
                    pod_src.push(Src::File(Obj::Pod(k, i)));
                }
            }
            n.pods = kept;
            let mut added = Vec::new();
            for (p, pcmd) in std::mem::take(&mut o.pods) {
                match n.pods.iter().position(|x| pod_id(x) == pod_id(&p)) {
                    Some(i) if same_pod(&n.pods[i], &p) => {}
                    Some(i) => {
                        let Src::File(obj) = pod_src[i] else { unreachable!("only file objects so far") };
                        errs.push(at_file(
                            obj,
                            "",
                            format!(
                                "pod {} differs from the one `sdnfwd ctl {pcmd}` added ({}); delete one of them",
                                pod_desc(&n.pods[i]),
                                pod_desc(&p)
                            ),
                        ));
                    }
                    None => added.push((p, pcmd)),
                }
            }
            for (p, pcmd) in &added {
                n.pods.push(p.clone());
                pod_src.push(Src::Ctl(pcmd.clone()));
            }
            o.pods = added;
        } else if let Some((p, pcmd)) = o.pods.first() {
            errs.push(format!(
                "{fpath}: node {node} is not described, so pod {} (added by `sdnfwd ctl {pcmd}`) has no node",
                pod_id(p)
            ));
        }
        // NetworkPolicies, the same way.
        o.policies_deleted.retain(|(id, _)| c.network_policies.iter().any(|p| p.id() == *id));
        let mut np_src = Vec::new();
        let mut kept = Vec::new();
        for (i, p) in c.network_policies.drain(..).enumerate() {
            if !o.policies_deleted.iter().any(|(id, _)| *id == p.id()) {
                kept.push(p);
                np_src.push(Src::File(Obj::NetworkPolicy(i)));
            }
        }
        c.network_policies = kept;
        let mut added = Vec::new();
        for (p, pcmd) in std::mem::take(&mut o.policies) {
            match c.network_policies.iter().position(|x| x.id() == p.id()) {
                Some(i) if c.network_policies[i] == p => {}
                Some(i) => {
                    let Src::File(obj) = np_src[i] else { unreachable!("only file objects so far") };
                    errs.push(at_file(
                        obj,
                        "",
                        format!(
                            "NetworkPolicy {} differs from the one `sdnfwd ctl {pcmd}` added; delete one of them",
                            p.id()
                        ),
                    ));
                }
                None => added.push((p, pcmd)),
            }
        }
        for (p, pcmd) in &added {
            c.network_policies.push(p.clone());
            np_src.push(Src::Ctl(pcmd.clone()));
        }
        o.policies = added;
        let st = NodeState { node: node.to_string(), file, overlay: o, cluster: c, hs_src, pod_src, np_src, node_idx };
        // In file order, then the ctl commands.
        let mut found: Vec<((usize, usize), String)> = st.cluster.check().iter().map(|p| st.render(p, cmd)).collect();
        found.sort_by_key(|(at, _)| *at);
        errs.extend(found.into_iter().map(|(_, l)| l));
        // The node itself.
        if st.cluster.host_subnet(node).is_none() {
            errs.push(format!("{fpath}: node `{node}` has no HostSubnet"));
        }
        if errs.is_empty() {
            Ok(st)
        } else {
            Err(errs.join("\n"))
        }
    }

    /// Where a merged object came from.
    fn src(&self, obj: Obj) -> Src {
        match obj {
            Obj::HostSubnet(i) => self.hs_src.get(i).cloned().unwrap_or(Src::File(obj)),
            Obj::Pod(k, i) if Some(k) == self.node_idx => self.pod_src.get(i).cloned().unwrap_or(Src::File(obj)),
            Obj::NetworkPolicy(i) => self.np_src.get(i).cloned().unwrap_or(Src::File(obj)),
            _ => Src::File(obj),
        }
    }

    /// One problem as one line, at the source that `cmd` (a ctl change) or
    /// the file (a reload) is responsible for; with the file position it
    /// names (after the file's lines when it names a command).
    fn render(&self, p: &Problem, cmd: Option<&str>) -> ((usize, usize), String) {
        let a = (self.src(p.obj), p.field);
        let b = p.other.map(|(o, f)| (self.src(o), f));
        let mine = |s: &Src| match (cmd, s) {
            (Some(c), Src::Ctl(x)) => c == x,
            (Some(_), Src::File(_)) => false,
            (None, s) => matches!(s, Src::File(_)),
        };
        let (primary, secondary) = match b {
            Some(b) if !mine(&a.0) && mine(&b.0) => (b, Some(a)),
            b => (a, b),
        };
        let (at, mut line) = match primary.0 {
            Src::File(o) => {
                let (l, c) = self.file.cluster.locate_in(&self.file.pos, o, primary.1);
                ((l, c), format!("{}:{l}:{c}: {}", self.file.path, p.msg))
            }
            Src::Ctl(c) => ((usize::MAX, 0), format!("ctl {c}: {}", p.msg)),
        };
        if let Some((Src::Ctl(c), _)) = secondary {
            if Some(c.as_str()) != cmd {
                line += &format!(" (one of them was added by `sdnfwd ctl {c}`)");
            }
        }
        (at, line)
    }
}

impl StateDiff {
    /// Lines for `ctl reload` and the log (none when nothing changed).
    pub fn lines(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (what, list) in [
            ("pod added", &self.pods_added),
            ("pod removed", &self.pods_removed),
            ("HostSubnet added", &self.hs_added),
            ("HostSubnet removed", &self.hs_removed),
            ("NetworkPolicy added", &self.np_added),
            ("NetworkPolicy removed", &self.np_removed),
        ] {
            for x in list {
                v.push(format!("{what}: {x}"));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "clusterNetwork:\n  clusterNetworks: [{CIDR: 10.128.0.0/14, hostSubnetLength: 9}]\n  serviceNetwork: 172.30.0.0/16\n  pluginName: redhat/openshift-ovs-multitenant\nhostSubnets:\n- {metadata: {name: a, uid: u}, host: a, hostIP: 172.16.1.3, subnet: 10.128.0.0/23}\n- {metadata: {name: b, uid: v}, host: b, hostIP: 172.16.1.4, subnet: 10.128.2.0/23}\nnetNamespaces: [{netname: x, netid: 7}]\nnode:\n  name: a\n  pods:\n  - {namespace: x, name: p, ip: 10.128.0.5, veth: vp, ofport: 3}\n";

    fn file(text: &str) -> FileState {
        FileState {
            path: "n.yaml".into(),
            cluster: Cluster::from_yaml_unchecked(text).unwrap(),
            extra: None,
            pos: Positions::of(text),
        }
    }

    fn edit(s: &NodeState, cmd: &str) -> Result<NodeState, String> {
        let w: Vec<&str> = cmd.split_whitespace().collect();
        s.with_edit(cmd, parse_edit(w[0], &w[1..])?).map(|(n, _)| n)
    }

    #[test]
    fn test_ctl_errors_name_the_command() {
        let s = NodeState::new("a", file(YAML)).unwrap();
        let e = edit(&s, "pod add x/q 10.128.0.5 vq 4").unwrap_err();
        assert_eq!(
            e,
            "ctl pod add x/q 10.128.0.5 vq 4: pod x/q: IP 10.128.0.5 is already pod x/p's on node a (one of the two would be cut off)"
        );
        let e = edit(&s, "hostsubnet add c 172.16.1.3 10.128.6.0/22").unwrap_err();
        assert!(e.lines().count() >= 2, "{e}");
        assert!(e.lines().all(|l| l.starts_with("ctl hostsubnet add c 172.16.1.3 10.128.6.0/22: ")), "{e}");
        assert!(e.contains("node a's VTEP") && e.contains("host bits"), "{e}");
    }

    #[test]
    fn test_runtime_changes_survive_a_reload() {
        let s = NodeState::new("a", file(YAML)).unwrap();
        let s = edit(&s, "pod add x/q 10.128.0.6 vq 4").unwrap();
        let s = edit(&s, "pod del x/p").unwrap();
        let s = edit(&s, "hostsubnet add c 172.16.1.5 10.128.4.0/23").unwrap();
        let r = s.with_file(file(YAML)).unwrap();
        let ids: Vec<String> = r.pods().iter().map(pod_id).collect();
        assert_eq!(ids, ["x/q"]);
        assert_eq!(r.cluster.host_subnets.len(), 3);
        assert_eq!(s.diff(&r), StateDiff::default());
        // The file takes the pod over identically: the overlay forgets it.
        let y2 = YAML.to_string() + "  - {namespace: x, name: q, ip: 10.128.0.6, veth: vq, ofport: 4}\n";
        let r2 = r.with_file(file(&y2)).unwrap();
        assert!(r2.overlay.pods.is_empty() && r2.pods().len() == 1);
        // A file that now conflicts with a runtime pod is refused, at the file.
        let y3 = YAML.to_string() + "  - {namespace: x, name: r, ip: 10.128.0.6, veth: vr, ofport: 5}\n";
        let e = r.with_file(file(&y3)).unwrap_err();
        assert!(e.starts_with("n.yaml:13:"), "{e}");
        assert!(e.contains("10.128.0.6") && e.contains("`sdnfwd ctl pod add x/q 10.128.0.6 vq 4`"), "{e}");
        // The file listing the pod differently: refused, naming both.
        let y4 = YAML.to_string() + "  - {namespace: x, name: q, ip: 10.128.0.7, veth: vq, ofport: 4}\n";
        let e = r.with_file(file(&y4)).unwrap_err();
        assert!(e.starts_with("n.yaml:13:") && e.contains("differs"), "{e}");
    }
}
