//! Incremental NetworkPolicy regeneration: after a change (a policy added
//! or removed, a pod's labels or IP, a namespace's labels), only the
//! affected namespaces are regenerated, as one bundle
//! (config::render::namespaces_bundle); applied to the node's tables
//! rendered before the change, it gives exactly the tables rendered after
//! it, for the 3.11 and 4.13 rules; in 4.13 it also clears the temporary
//! isolation flows of new pods.

use std::collections::BTreeSet;

use config::ofctl::{FlowCommand, GroupCommand};
use config::render::{affected_namespaces, isolation_flows, namespaces_bundle, render};
use config::yaml::NetworkPolicy;
use config::yaml::{Cluster, SdnVersion};
use slowpath::Ofproto;

fn cluster(v: SdnVersion) -> Cluster {
    let mut c = config::load::load(&[
        (None, include_str!("data/np-node-d.yaml").to_string()),
        (None, include_str!("data/np-cluster-oc.yaml").to_string()),
    ])
    .unwrap();
    c.sdn_version = Some(v);
    c
}

fn tables(c: &Cluster) -> Ofproto {
    let r = render(c, "node-d").unwrap();
    let mut of = Ofproto::new();
    for g in &r.groups {
        of.apply_group(&GroupCommand::Add(g.clone())).unwrap();
    }
    for f in &r.flows {
        of.add_flow(f.clone()).unwrap();
    }
    of
}

fn dump(of: &Ofproto) -> Vec<String> {
    let mut v: Vec<String> = of.rules(None).iter().map(|r| r.spec.to_dump_line(None)).collect();
    v.sort();
    v
}

fn policy(y: &str) -> NetworkPolicy {
    serde_norway::from_str(y).unwrap()
}

/// Applies `change`, checks the affected namespaces are `want`, and that
/// their bundle turns the old tables into the new ones.
fn check(v: SdnVersion, what: &str, change: impl Fn(&mut Cluster), want: &[&str]) {
    let old = cluster(v);
    let mut new = old.clone();
    change(&mut new);
    let affected = affected_namespaces(&old, &new, "node-d");
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    assert_eq!(affected, want, "{v} {what}");
    let mut of = tables(&old);
    if v == SdnVersion::V4_13 {
        // A pod just set up: isolated until the sync.
        let iso: Vec<FlowCommand> =
            isolation_flows("10.131.0.4".parse().unwrap()).unwrap().into_iter().map(FlowCommand::Add).collect();
        of.apply(&iso).unwrap();
        assert_ne!(dump(&of), dump(&tables(&old)));
    }
    let bundle = namespaces_bundle(&new, "node-d", &affected).unwrap();
    of.apply(&bundle).unwrap();
    assert_eq!(dump(&of), dump(&tables(&new)), "{v} {what}: the bundle differs from a full render");
    assert_ne!(dump(&tables(&old)), dump(&tables(&new)), "{v} {what}: the change changes nothing");
}

#[test]
fn regenerating_affected_namespaces_equals_a_full_render() {
    for v in [SdnVersion::V3_11, SdnVersion::V4_13] {
        check(
            v,
            "deny-all policy added to project-b",
            |c| {
                c.network_policies.push(policy(
                    "{metadata: {name: deny-all, namespace: project-b}, spec: {podSelector: {}, policyTypes: [Ingress, Egress]}}",
                ))
            },
            &["project-b"],
        );
        check(v, "P2 removed", |c| c.network_policies.retain(|p| p.metadata.name != "p2-db-from-web"), &["project-a"]);
        check(
            v,
            "web-2 relabelled",
            |c| {
                let p = c.pods.iter_mut().find(|p| p.metadata.name == "web-2").unwrap();
                p.metadata.labels.insert("app".into(), "other".into());
            },
            &["project-a"],
        );
        check(
            v,
            "web-2 moved to a new IP",
            |c| {
                let p = c.pods.iter_mut().find(|p| p.metadata.name == "web-2").unwrap();
                p.status.pod_ip = Some(config::yaml::Ip("10.129.0.9".parse().unwrap()));
            },
            &["project-a"],
        );
        check(
            v,
            "namespace default loses its label",
            |c| {
                let n = c.namespaces.iter_mut().find(|n| n.metadata.name == "default").unwrap();
                n.metadata.labels.remove("name");
            },
            &["project-a"],
        );
    }
}

/// A relabelled pod that no policy looks at regenerates nothing.
#[test]
fn unrelated_change_regenerates_nothing() {
    let old = cluster(SdnVersion::V4_13);
    let mut new = old.clone();
    new.pods.iter_mut().find(|p| p.metadata.name == "api-2").unwrap().metadata.labels.insert("x".into(), "y".into());
    assert!(affected_namespaces(&old, &new, "node-d").is_empty());
}
