//! Fast-path pieces (criterion): key extraction, EMC hit, megaflow lookup
//! with 1 and 8 subtables, and a whole 32-frame burst through a poll loop
//! (memory port → extract → EMC → actions → sink) for pod→pod, pod→remote
//! (VXLAN push) and remote→pod (VXLAN decap).

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

/// A VXLAN frame from 172.16.1.16 (10.129.0.0/23's node) to node-d's VTEP,
/// VNI 0x2be3, carrying `inner`.
fn vxlan(inner: &[u8]) -> Vec<u8> {
    let t = wire::VxlanTemplate::new(2, 1, 0xac10_0110, 0xac10_0119, 4789, 0x2be3);
    let mut f = vec![0u8; wire::VXLAN_ENCAP_LEN];
    t.write(&mut f, inner.len(), 50000);
    f.extend_from_slice(inner);
    f
}

fn bench_burst(c: &mut Criterion) {
    let cl = Cluster::default_cluster();
    let r = config::render::render(&cl, "node-d").unwrap();
    let mut g = c.benchmark_group("burst32");
    g.throughput(Throughput::Elements(32));
    let (pod, local, remote) = (0x0a83_0003, 0x0a83_0004, 0x0a81_0007);
    let same = |n: usize| (0..n).map(|i| udp(pod, local, 1024 + i as u16)).collect::<Vec<_>>();
    let cases: [(&str, u32, Vec<Vec<u8>>); 4] = [
        ("pod-pod-1-flow", 4, same(1)),
        ("pod-pod-10k-flows", 4, same(10_000)),
        ("pod-remote-1-flow", 4, vec![udp(pod, remote, 1024)]),
        ("remote-pod-1-flow", UPLINK, vec![vxlan(&udp(remote, pod, 1024))]),
    ];
    for (name, in_port, frames) in cases {
        let shared = Arc::new(Shared::default());
        let neighbours =
            [0xac10_010f_u32, 0xac10_0110, 0xac10_0116].into_iter().map(|ip| (ip, 0x0200_0000_0000 | ip as u64));
        shared.tunnel.store(Arc::new(TunnelState {
            vtep: Some(LocalVtep { ip: 0xac10_0119, udp_port: 4789, port: 1 }),
            local_mac: 1,
            neighbours: neighbours.collect(),
        }));
        let (up_tx, up_rx) = crossbeam_channel::bounded(4096);
        let (rep_tx, rep_rx) = crossbeam_channel::bounded(4096);
        let mut pmd = Pmd::new(0, shared.clone(), up_tx, rep_rx, 4096, 100);
        pmd.add_port(in_port, Box::new(MemPort::new("source", frames)), true);
        for p in [UPLINK, 2, 3, 4, 5, 6].into_iter().filter(|&p| p != in_port) {
            pmd.add_port(p, Box::new(SinkPort::new("sink")), false);
        }
        let mut of = Ofproto::with_flows(&r.flows).unwrap();
        of.ports = Some([1, 2, 3, 4, 5, 6].into());
        let mut slow = SlowPath::new(of, shared, vec![rep_tx], vec![pmd.stats.clone()]);
        for _ in 0..1000 {
            pmd.iterate();
            let batch: Vec<_> = up_rx.try_iter().collect();
            slow.handle(&batch);
        }
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let (packets, upcalls) = (load(&pmd.stats.packets), load(&pmd.stats.upcalls));
        pmd.iterate();
        assert_eq!(load(&pmd.stats.packets) - packets, 32, "{name}: a whole burst goes through");
        assert_eq!(load(&pmd.stats.upcalls), upcalls, "{name}: warmed up, no more upcalls");
        g.bench_function(name, |b| b.iter(|| pmd.iterate()));
    }
    g.finish();
}

criterion_group!(benches, bench_pieces, bench_burst);
criterion_main!(benches);
