//! Golden tests against seed 001, a real `ovs-ofctl dump-flows br0` of an
//! OpenShift 3.11 node: the flow text round-trips, and rendering the seed's
//! cluster gives back exactly its 65 flows (per-node cookies aside: the
//! HostSubnet UIDs they hash are not in the seed).

use config::ofctl::{parse_flow_file, FlowCommand, FlowSpec};
use config::yaml::Cluster;

const SEED: &str = include_str!("data/seed001.dump");
const CLUSTER: &str = include_str!("data/seed001-cluster.yaml");

/// A dump line without the counters ovs-ofctl adds.
fn strip_stats(line: &str) -> String {
    line.split(", ")
        .filter(|p| !(p.starts_with("duration=") || p.starts_with("n_packets=") || p.starts_with("n_bytes=")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn seed_flows() -> Vec<FlowSpec> {
    parse_flow_file(SEED)
        .unwrap()
        .into_iter()
        .map(|(_, c)| match c {
            FlowCommand::Add(s) => s,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn seed_flow_text_round_trips() {
    let flows = seed_flows();
    assert_eq!(flows.len(), 65);
    let lines: Vec<&str> = SEED.lines().filter(|l| l.starts_with(" cookie=")).collect();
    for (f, l) in flows.iter().zip(&lines) {
        assert_eq!(f.to_dump_line(None), strip_stats(l));
    }
}

fn normalise(f: &FlowSpec) -> String {
    let mut f = f.clone();
    if [10, 50, 90].contains(&f.table) {
        f.cookie = 0;
    }
    f.to_dump_line(None)
}

#[test]
fn render_of_seed_cluster_equals_seed() {
    let c = Cluster::from_yaml(CLUSTER).unwrap();
    let r = config::render::render(&c, "oc-04.test").unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let mut got: Vec<String> = r.flows.iter().map(normalise).collect();
    let mut want: Vec<String> = seed_flows().iter().map(normalise).collect();
    got.sort();
    want.sort();
    let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).collect();
    let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing: {missing:#?}\nextra: {extra:#?}");
    assert_eq!(got, want);
    // Per-node flows do carry the UID cookie.
    assert!(r.flows.iter().filter(|f| f.table == 10 && f.priority == 100).all(|f| f.cookie != 0));
}
