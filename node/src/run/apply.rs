//! A new desired state (a reload, a ctl change) applied to the running
//! node: the tables re-rendered and only their difference sent as one
//! bundle (or, for a change of policies and labels only, the affected
//! namespaces' flows), the ports with it, what needs a restart refused.

use std::collections::HashMap;
use std::time::Duration;

use config::ofctl::{FlowCommand, FlowSpec, GroupCommand, GroupSpec};
use config::yaml::Cluster;
use crossbeam_channel::Sender;
use slowpath::upcall::Command;

use super::ports::{pod_specs, PortSpec, TUN0_DP};
use crate::logging::note as log;
use crate::state::NodeState;
use crate::tables::node_tables_warning;

/// What a new state changed, once applied.
pub(super) struct Applied {
    pub(super) state: NodeState,
    pub(super) flows: Vec<FlowSpec>,
    pub(super) groups: Vec<GroupSpec>,
    pub(super) removed_ports: Vec<u32>,
    pub(super) new_ports: Vec<PortSpec>,
    /// The changes, one line each (`ctl reload` prints them, the log too).
    pub(super) report: Vec<String>,
}

/// Makes the running node follow `next` (a reload or a ctl change, already
/// checked): its tables re-rendered and the difference applied as one
/// bundle, the set of ports with it, and which pod ports came, went or
/// changed interface worked out. A rendering or a flow update that fails
/// changes nothing (the ports set is put back).
pub(super) fn apply_state(
    node: &str,
    cur: &NodeState,
    next: NodeState,
    (flows, groups): (&[FlowSpec], &[GroupSpec]),
    specs: &[PortSpec],
    cmd_tx: &Sender<Command>,
) -> Result<Applied, String> {
    needs_no_restart(node, cur, &next)?;
    let n = next
        .cluster
        .find_node(node)
        .cloned()
        .ok_or(format!("{}: node `{node}` is no longer described", next.file.path))?;
    let cores = |s: &NodeState| s.cluster.find_node(node).map(|n| n.cores.clone()).unwrap_or_default();
    if cores(cur) != cores(&next) {
        log(&format!(
            "reload: warning: node {node}'s cores changed ({:?} → {:?}): the poll loops keep theirs until a restart",
            cores(cur),
            cores(&next)
        ));
    }
    let (cmds, new, new_groups, ports, n_add, n_del, n_groups, regenerated) = match policy_only_change(node, cur, &next)
    {
        // Policies or labels only: the affected namespaces' policy
        // flows, as the networkpolicy plugin's sync does.
        Some(affected) => {
            let bundle = config::render::namespaces_bundle(&next.cluster, node, &affected)
                .map_err(|e| format!("{}: {}", next.file.path, e.0))?;
            let (new, n_del) = apply_to_list(flows, &bundle);
            let n_add = bundle.iter().filter(|c| matches!(c, FlowCommand::Add(_))).count();
            (bundle, new, groups.to_vec(), None, n_add, n_del, 0, Some(affected))
        }
        None => {
            let (of, warnings) = node_tables_warning(&next.cluster, node, next.extra(), &next.file.path)?;
            for w in warnings {
                log(&format!("reload: warning: {w}"));
            }
            let new: Vec<FlowSpec> = of.rules(None).iter().map(|r| r.spec.clone()).collect();
            let new_groups: Vec<GroupSpec> = of.groups().map(|g| (**g).clone()).collect();
            let flow_cmds = slowpath::ofproto::flow_diff(flows, &new);
            let (n_add, n_del) = flow_cmds.iter().fold((0, 0), |(x, y), c| match c {
                FlowCommand::Delete { .. } => (x, y + 1),
                _ => (x + 1, y),
            });
            // One bundle: groups added or changed first (new flows
            // point at them), then the flows, then the groups no flow
            // needs any more (4.13's egress-IP groups follow the
            // NetNamespaces' egressIPs).
            let (group_first, group_last) = group_diff(groups, &new_groups);
            let n_groups = group_first.len() + group_last.len();
            let mut cmds = group_first;
            cmds.extend(flow_cmds);
            cmds.extend(group_last);
            (cmds, new, new_groups, Some(of.ports.clone()), n_add, n_del, n_groups, None)
        }
    };
    // Ports first (outputs to a new pod must exist), then the flows; a
    // refused bundle puts the old ports back. The slow path answers once
    // the bundle is applied and the megaflows revalidated: the next packet
    // the loops see takes the new tables.
    let old_ports = cur_ports(cur, node);
    if let Some(p) = &ports {
        let _ = cmd_tx.send(Command::Ports(p.clone()));
    }
    let (rtx, rrx) = crossbeam_channel::bounded(1);
    cmd_tx.send(Command::FlowMods(cmds, rtx)).map_err(|_| "the slow path is gone".to_string())?;
    let r = rrx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "the slow path did not answer".to_string())
        .and_then(|r| r.map_err(|e| format!("flow update rejected: {e}")));
    if let Err(e) = r {
        if ports.is_some() {
            let _ = cmd_tx.send(Command::Ports(old_ports));
        }
        return Err(e);
    }
    let wanted = pod_specs(&n);
    let mut removed = Vec::new();
    for s in specs.iter().filter(|s| s.ifname != TUN0_DP) {
        if !wanted.iter().any(|w| w.ofport == s.ofport && w.ifname == s.ifname) {
            removed.push(s.ofport);
            log(&format!("reload: port {} ({}, {}) removed", s.ofport, s.ifname, s.what));
        }
    }
    let new_ports: Vec<PortSpec> = wanted
        .into_iter()
        .filter(|w| removed.contains(&w.ofport) || !specs.iter().any(|s| s.ofport == w.ofport))
        .collect();
    for p in &new_ports {
        log(&format!("reload: port {} ({}, {}) added", p.ofport, p.ifname, p.what));
    }
    let groups_changed = match n_groups {
        0 => String::new(),
        1 => ", 1 group added, changed or removed".into(),
        n => format!(", {n} groups added, changed or removed"),
    };
    let how = match &regenerated {
        Some(ns) if ns.is_empty() => "; policies only, no namespace's flows change".to_string(),
        Some(ns) => format!(
            "; policies only, one bundle regenerating namespace(s) {}",
            ns.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
        None => String::new(),
    };
    let mut report = vec![format!(
        "reload: {} flows ({n_add} added or changed, {n_del} removed{how}){groups_changed}, {} HostSubnets",
        new.len(),
        next.cluster.host_subnets.len()
    )];
    report.extend(cur.diff(&next).lines());
    for l in &report {
        log(l);
    }
    Ok(Applied { state: next, flows: new, groups: new_groups, removed_ports: removed, new_ports, report })
}

/// The group commands that turn the rendered groups `old` into `new`: adds
/// and modifications (to go before the flows), deletions (after them).
fn group_diff(old: &[GroupSpec], new: &[GroupSpec]) -> (Vec<FlowCommand>, Vec<FlowCommand>) {
    let before: HashMap<u32, &GroupSpec> = old.iter().map(|g| (g.group_id, g)).collect();
    let after: HashMap<u32, &GroupSpec> = new.iter().map(|g| (g.group_id, g)).collect();
    let mut first = Vec::new();
    for g in new {
        match before.get(&g.group_id) {
            None => first.push(FlowCommand::Group(GroupCommand::Add(g.clone()))),
            Some(o) if *o != g => first.push(FlowCommand::Group(GroupCommand::Modify(g.clone()))),
            Some(_) => {}
        }
    }
    let last = old
        .iter()
        .filter(|g| !after.contains_key(&g.group_id))
        .map(|g| FlowCommand::Group(GroupCommand::Delete(Some(g.group_id))))
        .collect();
    (first, last)
}

/// When `next` differs from `cur` only in NetworkPolicies and labels (of
/// Namespaces and Pods) under the networkpolicy plugin: the namespaces
/// whose policy flows that changes (`config::render::affected_namespaces`,
/// possibly none). None when anything else differs: the whole tables are
/// re-rendered and diffed. The comparison is of the two clusters with
/// those parts cleared, by their `Debug` text (every field, no list to
/// keep in step with the model; a spurious difference only costs a full
/// render).
fn policy_only_change(node: &str, cur: &NodeState, next: &NodeState) -> Option<std::collections::BTreeSet<String>> {
    if config::yaml::plugin_id(&next.cluster.cluster_network.plugin_name) != Some(2) || cur.extra() != next.extra() {
        return None;
    }
    let rest = |c: &Cluster| {
        let mut c = c.clone();
        c.network_policies.clear();
        c.origins = Default::default();
        c.warnings.clear();
        for n in &mut c.namespaces {
            n.metadata.labels.clear();
        }
        for p in &mut c.pods {
            p.metadata.labels.clear();
        }
        for n in c.node.iter_mut().chain(c.nodes.iter_mut()) {
            for p in &mut n.pods {
                p.labels.clear();
            }
        }
        format!("{c:?}")
    };
    if rest(&cur.cluster) != rest(&next.cluster) {
        return None;
    }
    Some(config::render::affected_namespaces(&cur.cluster, &next.cluster, node))
}

/// The rules `old` become once `cmds` (adds and non-strict deletes, what
/// `namespaces_bundle` sends) are applied, as the slow path applies them;
/// and how many of `old` were deleted.
fn apply_to_list(old: &[FlowSpec], cmds: &[FlowCommand]) -> (Vec<FlowSpec>, usize) {
    use slowpath::ofproto::flow_key;
    let mut v: Vec<Option<FlowSpec>> = old.iter().cloned().map(Some).collect();
    let mut index: std::collections::HashMap<_, usize> =
        old.iter().enumerate().map(|(i, s)| (flow_key(s), i)).collect();
    let mut n_del = 0;
    for c in cmds {
        match c {
            FlowCommand::Add(s) => match index.get(&flow_key(s)) {
                Some(&i) => v[i] = Some(s.clone()),
                None => {
                    index.insert(flow_key(s), v.len());
                    v.push(Some(s.clone()));
                }
            },
            FlowCommand::Delete { strict, spec } => {
                let ks = flow_key(spec);
                for slot in v.iter_mut() {
                    let Some(r) = slot else { continue };
                    if (spec.table_given && r.table != spec.table)
                        || r.cookie & spec.cookie_mask != spec.cookie & spec.cookie_mask
                    {
                        continue;
                    }
                    let m_ok = if *strict {
                        let kr = flow_key(r);
                        (kr.1, &kr.2, &kr.3) == (ks.1, &ks.2, &ks.3)
                    } else {
                        r.m.is_within(&spec.m)
                    };
                    if m_ok {
                        index.remove(&flow_key(r));
                        *slot = None;
                        n_del += 1;
                    }
                }
            }
            FlowCommand::Modify { .. } | FlowCommand::Group(_) => {}
        }
    }
    (v.into_iter().flatten().collect(), n_del)
}

/// What the node set up at start (tun0's address and routes, the uplink's
/// XDP program, the VTEP) a reload cannot change: such a change is refused,
/// naming what would need a restart.
fn needs_no_restart(node: &str, cur: &NodeState, next: &NodeState) -> Result<(), String> {
    let path = &next.file.path;
    let (a, b) = (&cur.cluster, &next.cluster);
    let mut v = Vec::new();
    let (ha, hb) = (a.host_subnet(node), b.host_subnet(node));
    if ha.map(|h| (h.host_ip, h.subnet)) != hb.map(|h| (h.host_ip, h.subnet)) {
        v.push(format!(
            "node {node}'s own HostSubnet changed ({} → {}): tun0's address and the VTEP",
            ha.map(|h| format!("{} {}", h.host_ip, h.subnet)).unwrap_or_default(),
            hb.map(|h| format!("{} {}", h.host_ip, h.subnet)).unwrap_or_default()
        ));
    }
    let (na, nb) = (a.find_node(node), b.find_node(node));
    if na.map(|n| &n.uplink) != nb.map(|n| &n.uplink) {
        v.push(format!("node {node}'s uplink changed"));
    }
    if na.map(|n| &n.tun0_mac) != nb.map(|n| &n.tun0_mac) {
        v.push(format!("node {node}'s tun0MAC changed"));
    }
    let nets = |c: &Cluster| {
        let cn = &c.cluster_network;
        (cn.cluster_networks.iter().map(|e| (e.cidr, e.host_subnet_length)).collect::<Vec<_>>(), cn.service_network)
    };
    if nets(a) != nets(b) {
        v.push("the cluster or service network changed: tun0's routes".into());
    }
    if a.vxlan_port() != b.vxlan_port() {
        v.push("vxlanPort changed: the uplink's XDP program".into());
    }
    if v.is_empty() {
        return Ok(());
    }
    Err(v
        .into_iter()
        .map(|w| format!("{path}: {w} (set up at start: restart sdnfwd to change it)"))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The OpenFlow ports a state has: vxlan0, tun0 and the node's pods.
fn cur_ports(s: &NodeState, node: &str) -> Option<std::collections::BTreeSet<u32>> {
    let mut ports: std::collections::BTreeSet<u32> = [1, 2].into();
    if let Some(n) = s.cluster.find_node(node) {
        ports.extend(n.pods.iter().map(|p| p.ofport));
    }
    Some(ports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::FileState;
    use crate::state::{parse_edit, Edit};
    use crate::tables::node_tables;

    /// The networkpolicy test cluster as one file, edited by `edit`.
    fn file(v: config::yaml::SdnVersion, tag: &str, edit: impl Fn(String) -> String) -> FileState {
        let path = std::env::temp_dir().join(format!("sdnfwd-run-unit-{}-{v}-{tag}.yaml", std::process::id()));
        let text = format!(
            "{}\n---\n{}",
            include_str!("../../../tests/data/np-node-d.yaml"),
            include_str!("../../../tests/data/np-cluster-oc.yaml")
        );
        std::fs::write(&path, edit(text)).unwrap();
        let f = FileState::read_as(&path.to_string_lossy(), Some(v)).unwrap();
        let _ = std::fs::remove_file(&path);
        f
    }

    /// node-d of the networkpolicy test cluster.
    fn state(v: config::yaml::SdnVersion) -> NodeState {
        NodeState::new("node-d", file(v, "0", |t| t)).unwrap()
    }

    /// A reload whose file changes only a Namespace's labels regenerates
    /// the namespaces whose policies look at them; one that changes
    /// anything else re-renders.
    #[test]
    fn test_label_only_reload_is_one_namespace_bundle() {
        for v in [config::yaml::SdnVersion::V3_11, config::yaml::SdnVersion::V4_13] {
            let s = state(v);
            let relabelled = file(v, "1", |t| {
                t.replace(
                    "{kubernetes.io/metadata.name: default, name: default}",
                    "{kubernetes.io/metadata.name: default}",
                )
            });
            let next = s.with_file(relabelled).unwrap();
            let affected = policy_only_change("node-d", &s, &next).expect("labels only");
            assert_eq!(affected.iter().collect::<Vec<_>>(), ["project-a"], "{v}");
            let bundle = config::render::namespaces_bundle(&next.cluster, "node-d", &affected).unwrap();
            let (after, _) = apply_to_list(&rendered(&s), &bundle);
            assert_eq!(dump(&after), dump(&rendered(&next)), "{v}");
            let moved = file(v, "2", |t| t.replace("hostIP: 172.16.1.22", "hostIP: 172.16.1.23"));
            assert!(policy_only_change("node-d", &s, &s.with_file(moved).unwrap()).is_none(), "{v}");
        }
    }

    fn rendered(s: &NodeState) -> Vec<FlowSpec> {
        node_tables(&s.cluster, "node-d", s.extra(), "t").unwrap().rules(None).iter().map(|r| r.spec.clone()).collect()
    }

    fn dump(v: &[FlowSpec]) -> Vec<String> {
        let mut d: Vec<String> = v.iter().map(|f| f.to_dump_line(None)).collect();
        d.sort();
        d
    }

    /// A policy added or removed with ctl regenerates only its namespace,
    /// and the tables the node then keeps are the full render's.
    #[test]
    fn test_policy_change_is_one_namespace_bundle() {
        for v in [config::yaml::SdnVersion::V3_11, config::yaml::SdnVersion::V4_13] {
            let s = state(v);
            let np = "{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: deny, namespace: project-b}, spec: {podSelector: {}}}";
            let ps = config::load::network_policies("np.yaml", np).unwrap();
            let (next, msg) = s.with_edit("policy add np.yaml", Edit::AddPolicies(ps)).unwrap();
            assert_eq!(msg, "NetworkPolicy project-b/deny added");
            let affected = policy_only_change("node-d", &s, &next).expect("a policy-only change");
            assert_eq!(affected.into_iter().collect::<Vec<_>>(), ["project-b"]);
            let bundle =
                config::render::namespaces_bundle(&next.cluster, "node-d", &["project-b".into()].into()).unwrap();
            let (after, n_del) = apply_to_list(&rendered(&s), &bundle);
            assert_eq!(dump(&after), dump(&rendered(&next)), "{v}");
            assert!(n_del > 0 && dump(&after) != dump(&rendered(&s)), "{v}");
            // Deleted again: back to the start.
            let e = parse_edit("policy", &["del", "project-b/deny"]).unwrap();
            let (back, _) = next.with_edit("policy del project-b/deny", e).unwrap();
            let affected = policy_only_change("node-d", &next, &back).unwrap();
            let bundle = config::render::namespaces_bundle(&back.cluster, "node-d", &affected).unwrap();
            assert_eq!(dump(&apply_to_list(&after, &bundle).0), dump(&rendered(&s)), "{v}");
            // A pod added is not a policy change.
            let e = parse_edit("pod", &["add", "project-b/api-9", "10.131.0.9", "vethx", "9"]).unwrap();
            let (podded, _) = s.with_edit("pod add", e).unwrap();
            assert!(policy_only_change("node-d", &s, &podded).is_none());
        }
    }

    /// Policies added with ctl survive a reload; the file's own can be
    /// deleted; a refused add changes nothing.
    #[test]
    fn test_policies_survive_a_reload() {
        let s = state(config::yaml::SdnVersion::V4_13);
        let np = "kind: NetworkPolicy\napiVersion: networking.k8s.io/v1\nmetadata: {name: deny, namespace: project-b}\nspec: {podSelector: {}}\n";
        let ps = config::load::network_policies("np.yaml", np).unwrap();
        let (s2, _) = s.with_edit("policy add np.yaml", Edit::AddPolicies(ps.clone())).unwrap();
        let e = s2.with_edit("policy add np.yaml", Edit::AddPolicies(ps.clone())).unwrap_err();
        assert_eq!(
            e,
            "ctl policy add np.yaml: NetworkPolicy project-b/deny exists (`policy del project-b/deny` first)"
        );
        let mut other = ps.clone();
        other[0].metadata.namespace = Some("nowhere".into());
        let e = s2.with_edit("policy add np.yaml", Edit::AddPolicies(other)).unwrap_err();
        assert!(e.contains("namespace nowhere has no NetNamespace"), "{e}");
        let (s3, _) = s2
            .with_edit(
                "policy del project-a/p1-web-from-default",
                parse_edit("policy", &["del", "project-a/p1-web-from-default"]).unwrap(),
            )
            .unwrap();
        let list = s3.policy_list();
        assert!(
            list.contains("project-a/p2-db-from-web types=Ingress selects=1 pod(s) from=") && list.contains(".yaml:"),
            "{list}"
        );
        assert!(list.contains("project-b/deny types=Ingress selects=2 pod(s) from=`ctl policy add np.yaml`"), "{list}");
        assert!(!list.contains("p1-web"), "{list}");
        let r = s3.with_file(s3.file.clone()).unwrap();
        assert_eq!(r.policy_list(), list);
        assert_eq!(s3.diff(&r), Default::default());
        assert!(parse_edit("policy", &["del", "x"]).unwrap_err().contains("NAMESPACE/NAME"));
        assert!(s3
            .with_edit("policy del a/b", parse_edit("policy", &["del", "a/b"]).unwrap())
            .unwrap_err()
            .contains("no NetworkPolicy a/b"));
    }
}
