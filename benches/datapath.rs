//! Fast-path pieces (criterion): key extraction, EMC hit, megaflow lookup
//! with 1 and 8 subtables, and a whole 32-frame burst through a poll loop
//! (memory port → extract → EMC → actions → sink) for pod→pod, pod→remote
//! (VXLAN push) and remote→pod (VXLAN decap).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fastpath::dpcls::{FlowTable, Megaflow};
use fastpath::emc::Emc;
use fastpath::flow::loc;
use fastpath::{DpAction, FlowKey};

mod common;
use common::udp;

fn bench_pieces(c: &mut Criterion) {
    let f = udp(0x0a83_0003, 0x0a83_0004, 1234, 80);
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
    let m = Arc::new(Megaflow::new(key, mask, [DpAction::Output(5)], 1));
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
            t.insert(Arc::new(Megaflow::new(k2, mk, [DpAction::Output(5)], s as u32 + 1)));
        }
        g.bench_function(format!("dpcls-hit-after-{n_sub}-subtables"), |b| {
            b.iter(|| t.lookup(black_box(&key)).is_some())
        });
    }
    g.finish();
}

fn bench_burst(c: &mut Criterion) {
    let mut g = c.benchmark_group("burst32");
    g.throughput(Throughput::Elements(32));
    for (name, in_port, frames) in common::burst_cases() {
        let mut pmd = common::warm_pmd(name, in_port, frames);
        g.bench_function(name, |b| b.iter(|| pmd.iterate()));
    }
    g.finish();
}

criterion_group!(benches, bench_pieces, bench_burst);
criterion_main!(benches);
