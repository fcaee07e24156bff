//! Fast-path pieces (criterion): key extraction, EMC hit, megaflow lookup
//! with 1 and 8 subtables, and a whole 32-frame burst through a poll loop
//! (memory port → extract → EMC → actions → sink).

use std::hint::black_box;
use std::sync::Arc;

use config::yaml::Cluster;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fastpath::dpcls::{FlowTable, Megaflow};
use fastpath::emc::Emc;
use fastpath::flow::{loc, LocalVtep};
use fastpath::pmd::{Pmd, Shared, TunnelState, UPLINK};
use fastpath::port::{MemPort, SinkPort};
use fastpath::{wire, DpAction, FlowKey};
use slowpath::upcall::SlowPath;
use slowpath::Ofproto;

fn udp(src: u32, dst: u32, sport: u16) -> Vec<u8> {
    wire::build_frame(0x0a58_0000_0000 | src as u64, 0x0a58_0000_0000 | dst as u64, src, dst, 17, sport, 80, 64)
}

fn bench_pieces(c: &mut Criterion) {
    let f = udp(0x0a83_0003, 0x0a83_0004, 1234);
    let mut g = c.benchmark_group("fastpath");
    g.throughput(Throughput::Elements(1));
    g.bench_function("extract+hash", |b| {
        let mut k = FlowKey::default();
        b.iter(|| {
            k.extract(black_box(&f), 4);
            k.hash()
        })
    });
    let mut key = FlowKey::default();
    key.extract(&f, 4);
    let mut mask = FlowKey::default();
    mask.set(loc::IN_PORT, u64::MAX);
    mask.set(loc::DL_TYPE, u64::MAX);
    mask.set(loc::NW_DST, u64::MAX);
    let m = Arc::new(Megaflow::new(key, mask, &[DpAction::Output(5)], 1));
    let mut emc = Emc::new(1);
    emc.maybe_insert(&key, key.hash(), &m);
    g.bench_function("emc-hit", |b| b.iter(|| emc.peek(black_box(&key), key.hash()).is_some()));
    for n_sub in [1usize, 8] {
        let mut t = FlowTable::default();
        for s in 0..n_sub {
            let mut mk = mask;
            mk.set(loc::TP_SRC, if s == 0 { 0 } else { 1 << (s - 1) });
            let mut k2 = key;
            if s + 1 != n_sub {
                k2.set(loc::NW_DST, 0x0a00_0000 + s as u64); // other subtables miss
            }
            t.insert(Arc::new(Megaflow::new(k2, mk, &[DpAction::Output(5)], s as u32 + 1)));
        }
        g.bench_function(format!("dpcls-hit-after-{n_sub}-subtables"), |b| {
            b.iter(|| t.lookup(black_box(&key)).is_some())
        });
    }
    g.finish();
}

fn bench_burst(c: &mut Criterion) {
    let cl = Cluster::default_cluster();
    let r = config::render::render(&cl, "node-d").unwrap();
    let mut of = Ofproto::with_flows(&r.flows).unwrap();
    of.ports = Some([1, 2, 3, 4, 5, 6].into());
    let mut g = c.benchmark_group("burst32");
    g.throughput(Throughput::Elements(32));
    for (name, flows) in [("pod-pod-1-flow", 1usize), ("pod-pod-10k-flows", 10_000)] {
        let shared = Arc::new(Shared::default());
        shared.tunnel.store(Arc::new(TunnelState {
            vtep: Some(LocalVtep { ip: 0xac10_0119, udp_port: 4789, port: 1 }),
            local_mac: 1,
            neighbours: Default::default(),
        }));
        let (up_tx, up_rx) = crossbeam_channel::bounded(4096);
        let (rep_tx, rep_rx) = crossbeam_channel::bounded(4096);
        let mut pmd = Pmd::new(0, shared.clone(), up_tx, rep_rx, 4096, 100);
        let frames = (0..flows).map(|i| udp(0x0a83_0003, 0x0a83_0004, 1024 + i as u16)).collect();
        pmd.add_port(4, Box::new(MemPort::new("web-1", frames)), true);
        for p in [UPLINK, 2, 3, 5, 6] {
            pmd.add_port(p, Box::new(SinkPort::new("sink")), false);
        }
        let mut slow =
            SlowPath::new(Ofproto::with_flows(&r.flows).unwrap(), shared, vec![rep_tx], vec![pmd.stats.clone()]);
        for _ in 0..1000 {
            pmd.iterate();
            let batch: Vec<_> = up_rx.try_iter().collect();
            slow.handle(&batch);
        }
        g.bench_function(name, |b| b.iter(|| pmd.iterate()));
    }
    g.finish();
    let _ = of;
}

criterion_group!(benches, bench_pieces, bench_burst);
criterion_main!(benches);
