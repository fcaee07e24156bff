//! Translation cost per packet (criterion): the 4-node default table and a
//! rendered 1,000-node / 10,000-service table; plus the OpenFlow classifier
//! against a linear scan on the 10,000-service table 60.

use std::hint::black_box;

use config::ofctl::parse_trace_flow;
use config::yaml::{synthetic_cluster, Cluster};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use slowpath::{xlate, OfFlow, Ofproto};

fn flow(s: &str) -> OfFlow {
    OfFlow::from_match(&parse_trace_flow(s).unwrap()).0
}

fn tables(c: &Cluster, node: &str) -> Ofproto {
    let r = config::render::render(c, node).unwrap();
    let mut of = Ofproto::with_flows(&r.flows).unwrap();
    let mut ports: std::collections::BTreeSet<u32> = [1, 2].into();
    ports.extend(c.find_node(node).unwrap().pods.iter().map(|p| p.ofport));
    of.ports = Some(ports);
    of
}

fn bench_xlate(cr: &mut Criterion) {
    let small = tables(&Cluster::default_cluster(), "node-d");
    let mut g = cr.benchmark_group("xlate/4-node");
    g.throughput(Throughput::Elements(1));
    for (name, f) in [
        ("pod-pod", "in_port=4,tcp,nw_src=10.131.0.3,nw_dst=10.131.0.4,tcp_src=40000,tcp_dst=5432"),
        ("pod-remote", "in_port=4,tcp,nw_src=10.131.0.3,nw_dst=10.129.0.7,tcp_src=40000,tcp_dst=8080"),
        ("remote-pod", "in_port=1,tun_id=0x2be3,tun_src=172.16.1.16,tun_dst=172.16.1.25,tcp,nw_src=10.129.0.7,nw_dst=10.131.0.3,tcp_src=8080,tcp_dst=40000"),
        ("pod-service", "in_port=4,tcp,nw_src=10.131.0.3,nw_dst=172.30.12.34,tcp_src=40000,tcp_dst=8080"),
    ] {
        let fl = flow(f);
        g.bench_function(name, |b| b.iter(|| xlate(black_box(&small), black_box(&fl), None)));
    }
    g.finish();

    let big_c = synthetic_cluster(1000, 10_000, 200);
    let big = tables(&big_c, "node-0");
    let mut g = cr.benchmark_group("xlate/1000-node-10k-svc");
    g.throughput(Throughput::Elements(1));
    for (name, f) in [
        ("pod-pod", "in_port=4,tcp,nw_src=10.128.0.3,nw_dst=10.128.0.23,tcp_src=40000,tcp_dst=80"),
        ("pod-remote", "in_port=4,tcp,nw_src=10.128.0.3,nw_dst=10.135.64.9,tcp_src=40000,tcp_dst=80"),
        ("remote-pod", "in_port=1,tun_id=0x65,tun_src=172.16.3.8,tun_dst=172.16.0.1,tcp,nw_src=10.135.64.9,nw_dst=10.128.0.3,tcp_src=80,tcp_dst=40000"),
        ("pod-service", "in_port=4,tcp,nw_src=10.128.0.3,nw_dst=172.30.30.58,tcp_src=40000,tcp_dst=817"),
    ] {
        let fl = flow(f);
        g.bench_function(name, |b| b.iter(|| xlate(black_box(&big), black_box(&fl), None)));
    }
    g.finish();

    // Table 60 of the big table: tuple space search vs a linear scan.
    let rules = big.rules(Some(60));
    // As table 20 leaves it: reg0 = the sender's VNID (ns-1).
    let fl = flow("reg0=101,in_port=4,tcp,nw_src=10.128.0.3,nw_dst=172.30.30.58,tcp_src=40000,tcp_dst=817");
    let linear: Vec<(OfFlow, OfFlow, u16)> = rules
        .iter()
        .map(|r| {
            let (v, m) = OfFlow::from_match(&r.spec.m);
            (v, m, r.spec.priority)
        })
        .collect();
    let mut g = cr.benchmark_group(format!("classifier/table60-{}-rules", rules.len()));
    g.throughput(Throughput::Elements(1));
    g.bench_function("tuple-space", |b| {
        b.iter(|| {
            let mut wc = OfFlow::default();
            big.lookup(60, black_box(&fl), &mut wc).map(|r| r.spec.priority)
        })
    });
    g.bench_function("linear-scan", |b| {
        b.iter(|| {
            let f = black_box(&fl);
            linear.iter().filter(|(v, m, _)| f.masked(m) == *v).map(|r| r.2).max()
        })
    });
    g.finish();
    assert_eq!(big.lookup(60, &fl, &mut OfFlow::default()).map(|r| r.spec.priority), Some(100));
}

criterion_group!(benches, bench_xlate);
criterion_main!(benches);
