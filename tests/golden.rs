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

// OPENSHIFT_SDN_PIPELINE.md §8.8 (3.11) and §9 (4.10+) for node-d with the
// networkpolicy plugin, from a cluster given as `oc get -o yaml` prints it
// (a List of API objects) plus sdnfwd's node section, against the flows
// written out from the spec (tests/data/golden-np-*.flows): both sides
// normalised by the real `ovs-ofctl parse-flows`, and the groups compared.

const NP_LIST: &str = include_str!("data/np-cluster-oc.yaml");
const NP_NODE: &str = include_str!("data/np-node-d.yaml");

fn np_cluster(list: &str) -> Cluster {
    config::load::load(&[
        (Some("np-node-d.yaml".to_string()), NP_NODE.to_string()),
        (Some("np-cluster-oc.yaml".to_string()), list.to_string()),
    ])
    .unwrap_or_else(|e| panic!("{}", e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")))
}

/// `ovs-ofctl -O OpenFlow13 parse-flows` of the flow lines of `text`: one
/// normalised flow_mod per line (xids dropped), sorted.
fn parse_flows(text: &str) -> Vec<String> {
    let flows: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty() && !l.starts_with("group "))
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows");
    std::fs::write(&path, flows).unwrap();
    let out = std::process::Command::new("ovs-ofctl")
        .args(["-O", "OpenFlow13", "parse-flows"])
        .arg(&path)
        .output()
        .expect("ovs-ofctl (openvswitch-common) runs");
    assert!(out.status.success(), "ovs-ofctl parse-flows: {}", String::from_utf8_lossy(&out.stderr));
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once("): ").map(|(_, r)| r.to_string()))
        .collect();
    v.sort();
    v
}

fn groups_of(text: &str) -> Vec<String> {
    let mut v: Vec<String> = parse_flow_file(text)
        .unwrap()
        .into_iter()
        .filter_map(|(_, c)| match c {
            FlowCommand::Group(g) => Some(g.to_string()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn golden_np(version: config::yaml::SdnVersion, want: &str) {
    let c = np_cluster(NP_LIST);
    assert_eq!(c.warnings, ["skipped 1 objects of kinds sdnfwd does not use: ConfigMap (1)"]);
    let r = config::render::render_version(&c, "node-d", version).unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let got_text = r.to_text();
    let (got, want_flows) = (parse_flows(&got_text), parse_flows(want));
    let missing: Vec<_> = want_flows.iter().filter(|w| !got.contains(w)).collect();
    let extra: Vec<_> = got.iter().filter(|g| !want_flows.contains(g)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{version}: missing: {missing:#?}\nextra: {extra:#?}");
    assert_eq!(got, want_flows);
    assert_eq!(groups_of(&got_text), groups_of(want), "{version}: groups");
}

#[test]
fn oc_list_networkpolicy_3_11_equals_spec_8_8() {
    golden_np(config::yaml::SdnVersion::V3_11, include_str!("data/golden-np-3.11.flows"));
}

#[test]
fn oc_list_networkpolicy_4_13_equals_spec_9() {
    golden_np(config::yaml::SdnVersion::V4_13, include_str!("data/golden-np-4.13.flows"));
}

/// The same List as `oc get -o json` prints it renders the same flows.
#[test]
fn oc_json_list_renders_as_yaml() {
    let v: serde_json::Value = serde_norway::from_str(NP_LIST).unwrap();
    let json = serde_json::to_string_pretty(&v).unwrap();
    let (a, b) = (np_cluster(NP_LIST), np_cluster(&json));
    for ver in [config::yaml::SdnVersion::V3_11, config::yaml::SdnVersion::V4_13] {
        let ra = config::render::render_version(&a, "node-d", ver).unwrap();
        let rb = config::render::render_version(&b, "node-d", ver).unwrap();
        assert_eq!(ra.to_text(), rb.to_text());
    }
    // Pods: local ones from the Pod objects, ofports given or allocated.
    let ports: Vec<(String, u32)> =
        a.find_node("node-d").unwrap().pods.iter().map(|p| (p.name.clone(), p.ofport)).collect();
    assert_eq!(ports, [("router-1".into(), 3), ("web-1".into(), 4), ("db-1".into(), 5), ("api-1".into(), 6)]);
    assert_eq!(a.find_node("node-b").unwrap().pods.len(), 2, "node-b's pods from their Pod objects");
}
