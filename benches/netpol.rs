//! The cost of a NetworkPolicy change on a node (criterion): a policy added
//! to one namespace of a 10,000-pod, 1,000-policy cluster
//! (`config::load::synthetic_policy_cluster`), regenerated as openshift-sdn
//! does it — the affected namespaces found, then only their flows as one
//! bundle — beside a full render of the node's tables, the comparison run
//! in the same process. Prints the flow and bundle sizes once.

use std::collections::BTreeSet;
use std::hint::black_box;

use config::load::synthetic_policy_cluster;
use config::ofctl::FlowCommand;
use config::render::{affected_namespaces, namespaces_bundle, render};
use config::yaml::{Cluster, NetworkPolicy, SdnVersion};
use criterion::{criterion_group, criterion_main, Criterion};

const NODE: &str = "node-0";

/// The cluster before and after `deny-web` joins namespace ns-7.
fn clusters(v: SdnVersion) -> (Cluster, Cluster) {
    let mut old = synthetic_policy_cluster(10_000, 1_000);
    old.sdn_version = Some(v);
    let mut new = old.clone();
    let p: NetworkPolicy = serde_norway::from_str(
        "{metadata: {name: deny-web, namespace: ns-7}, spec: {podSelector: {matchLabels: {app: app-3}}, \
         ingress: [{from: [{podSelector: {matchLabels: {app: app-4}}}], ports: [{port: 9090, protocol: TCP}]}], \
         policyTypes: [Ingress]}}",
    )
    .expect("policy");
    new.network_policies.push(p);
    (old, new)
}

fn bundle_bytes(b: &[FlowCommand]) -> usize {
    b.iter()
        .map(|c| match c {
            FlowCommand::Add(f) => format!("flow add {f}").len() + 1,
            FlowCommand::Modify { spec, .. } => format!("flow modify {spec}").len() + 1,
            FlowCommand::Delete { spec, .. } => format!("flow delete {spec}").len() + 1,
            FlowCommand::Group(g) => format!("{g}").len() + 1,
        })
        .sum()
}

fn bench_regen(cr: &mut Criterion) {
    for v in [SdnVersion::V3_11, SdnVersion::V4_13] {
        let (old, new) = clusters(v);
        let full = render(&new, NODE).expect("render");
        let affected = affected_namespaces(&old, &new, NODE);
        assert_eq!(affected, BTreeSet::from(["ns-7".to_string()]));
        let bundle = namespaces_bundle(&new, NODE, &affected).expect("bundle");
        eprintln!(
            "netpol-regen/{v}: {} pods, {} policies; node-0: {} local pods, {} flows in all; \
             ns-7's bundle: {} commands, {} bytes",
            new.pods.len(),
            new.network_policies.len(),
            new.find_node(NODE).map_or(0, |n| n.pods.len()),
            full.flows.len(),
            bundle.len(),
            bundle_bytes(&bundle)
        );
        let mut g = cr.benchmark_group(format!("netpol-regen/{v}"));
        g.sample_size(10);
        g.bench_function("full render", |b| b.iter(|| render(black_box(&new), NODE).expect("render")));
        g.bench_function("one namespace (find affected + bundle)", |b| {
            b.iter(|| {
                let a = affected_namespaces(black_box(&old), black_box(&new), NODE);
                namespaces_bundle(&new, NODE, &a).expect("bundle")
            })
        });
        g.bench_function("one namespace (bundle only)", |b| {
            b.iter(|| namespaces_bundle(black_box(&new), NODE, &affected).expect("bundle"))
        });
        // The slow path's side: the bundle applied to the node's tables
        // (all of the node's flows and groups), then the old namespace's
        // bundle to go back, so that each iteration starts from the same
        // tables: two applications an iteration.
        let mut of = slowpath::Ofproto::new();
        for gr in &full.groups {
            of.apply_group(&config::ofctl::GroupCommand::Add(gr.clone())).expect("group");
        }
        let old_full = render(&old, NODE).expect("render");
        for f in &old_full.flows {
            of.add_flow(f.clone()).expect("flow");
        }
        let back = namespaces_bundle(&old, NODE, &affected).expect("bundle");
        g.bench_function("apply the bundle and back", |b| {
            b.iter(|| {
                of.apply(black_box(&bundle)).expect("apply");
                of.apply(black_box(&back)).expect("apply back");
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench_regen);
criterion_main!(benches);
