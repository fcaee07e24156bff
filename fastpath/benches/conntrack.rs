//! The connection tracker, one thread: packets of established connections
//! (UDP and TCP, 1, 10k and 100k connections, visited in a fixed shuffled
//! order so that neither the connections nor the frames are met in the
//! order they were allocated, the table at OVS's default size for 3M
//! connections) as a poll loop runs
//! them (`execute_with`, one pin per burst of 32), and through `execute`
//! (a pin per packet); the same with source NAT (each packet a fresh copy
//! of its frame, as the rewrite is in place); and the creation of new
//! connections (committed UDP flows, a fresh tracker per 100k); and a
//! sweeper's pass over the whole default table.
//!
//! `cargo bench -p fastpath --bench conntrack`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fastpath::conntrack::frames::{ip, tcp, udp, TcpSpec, ACK, SYN};
use fastpath::conntrack::{Conntrack, CtConfig, CtRequest, CtResult, NatRange, NatRequest, CS_ESTABLISHED};

/// Packets per pin, as a poll loop's burst.
const BURST: usize = 32;

/// Runs frames round robin through `ct` as a poll loop: a pin per burst.
fn burst_loop(b: &mut criterion::Bencher, ct: &Conntrack, frames: &mut [Vec<u8>], req: &CtRequest) {
    let n = frames.len();
    let mut i = 0;
    b.iter_custom(|iters| {
        let t = Instant::now();
        let mut left = iters as usize;
        while left > 0 {
            let pin = ct.pin();
            for _ in 0..left.min(BURST) {
                let mut md = CtResult::default();
                let _ = black_box(ct.execute_with(&pin, &mut frames[i], &mut md, req, 0));
                black_box(&md);
                i = if i + 1 == n { 0 } else { i + 1 };
            }
            left -= left.min(BURST);
        }
        t.elapsed()
    })
}

const S: u32 = ip(10, 200, 0, 1);

/// The i-th client address.
fn client(i: usize) -> u32 {
    ip(10, 1 + (i >> 16) as u8, (i >> 8) as u8, i as u8)
}

fn commit() -> CtRequest {
    CtRequest { zone: 1, commit: true, ..CtRequest::default() }
}

/// Source NAT to `x`.
fn snat(x: u32) -> CtRequest {
    let r = NatRange { addr_min: x, addr_max: x, ..NatRange::default() };
    CtRequest { nat: Some(NatRequest::Src(r)), ..commit() }
}

/// `v` in a fixed pseudo-random order.
fn shuffled(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

/// `n` UDP connections seen both ways (translated to `nat` if given, each
/// from its own port so that none collides); the original-direction frames.
fn udp_conns(ct: &Conntrack, n: usize, nat: Option<u32>) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let sport = 20000 + (i % 40000) as u16;
            let o = udp(client(i), sport, S, 53, 18);
            ct.execute(&mut o.clone(), &nat.map_or_else(commit, snat), 0);
            let back = CtRequest { nat: nat.map(|_| NatRequest::Reverse), ..commit() };
            ct.execute(&mut udp(S, 53, nat.unwrap_or(client(i)), sport, 18), &back, 0);
            o
        })
        .collect()
}

/// `n` TCP connections after their handshake; an ACK of each.
fn tcp_conns(ct: &Conntrack, n: usize) -> Vec<Vec<u8>> {
    let seg = |src, sport, dst, dport, flags, seq, ack| {
        tcp(&TcpSpec { src, sport, dst, dport, seq, ack, flags, win: 65535, wscale: None, payload: 0 })
    };
    (0..n)
        .map(|i| {
            let c = client(i);
            ct.execute(&mut seg(c, 40000, S, 80, SYN, 1, 0), &commit(), 0);
            ct.execute(&mut seg(S, 80, c, 40000, SYN | ACK, 5000, 2), &commit(), 0);
            let mut a = seg(c, 40000, S, 80, ACK, 2, 5001);
            ct.execute(&mut a, &commit(), 0);
            a
        })
        .collect()
}

fn established(c: &mut Criterion) {
    let mut g = c.benchmark_group("ct_established");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    for n in [1usize, 10_000, 100_000] {
        let ct = Conntrack::new(CtConfig::default());
        let mut frames = shuffled(udp_conns(&ct, n, None));
        let req = commit();
        assert_eq!(ct.execute(&mut frames[0], &req, 0).state & CS_ESTABLISHED, CS_ESTABLISHED);
        g.bench_function(format!("udp/{n}"), |b| burst_loop(b, &ct, &mut frames, &req));
        let mut i = 0;
        g.bench_function(format!("udp_pin_each/{n}"), |b| {
            b.iter(|| {
                let r = ct.execute(&mut frames[i], &req, 0);
                i = if i + 1 == n { 0 } else { i + 1 };
                black_box(r)
            })
        });
        drop(ct);

        let ct = Conntrack::new(CtConfig::default());
        let mut frames = shuffled(tcp_conns(&ct, n));
        assert_eq!(ct.execute(&mut frames[0], &req, 0).state & CS_ESTABLISHED, CS_ESTABLISHED);
        g.bench_function(format!("tcp/{n}"), |b| burst_loop(b, &ct, &mut frames, &req));
        let mut i = 0;
        g.bench_function(format!("tcp_pin_each/{n}"), |b| {
            b.iter(|| {
                let r = ct.execute(&mut frames[i], &req, 0);
                i = if i + 1 == n { 0 } else { i + 1 };
                black_box(r)
            })
        });
    }
    for n in [1usize, 10_000] {
        let ct = Conntrack::new(CtConfig::default());
        let req = snat(ip(192, 168, 0, 1));
        let frames = shuffled(udp_conns(&ct, n, Some(ip(192, 168, 0, 1))));
        let mut buf = frames[0].clone();
        assert_eq!(ct.execute(&mut buf, &req, 0).state & CS_ESTABLISHED, CS_ESTABLISHED);
        let mut i = 0;
        g.bench_function(format!("udp_snat_copy/{n}"), |b| {
            b.iter(|| {
                buf.copy_from_slice(&frames[i]);
                let r = ct.execute(&mut buf, &req, 0);
                i = if i + 1 == n { 0 } else { i + 1 };
                black_box(r)
            })
        });
        g.bench_function(format!("copy_only/{n}"), |b| {
            b.iter(|| {
                buf.copy_from_slice(&frames[i]);
                i = if i + 1 == n { 0 } else { i + 1 };
                black_box(&buf);
            })
        });
    }
    g.finish();
}

fn new_conns(c: &mut Criterion) {
    const BATCH: usize = 100_000;
    let mut g = c.benchmark_group("ct_new");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    let mut frames: Vec<Vec<u8>> = (0..BATCH).map(|i| udp(client(i), 40000, S, 53, 18)).collect();
    let req = commit();
    g.bench_function("udp_commit", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let n = left.min(BATCH);
                let ct = Conntrack::new(CtConfig { max_conns: 1 << 20, ..CtConfig::default() });
                let t = Instant::now();
                for f in &mut frames[..n] {
                    black_box(ct.execute(f, &req, 0));
                }
                total += t.elapsed();
                assert_eq!(ct.stats().n_conns, n);
                left -= n;
            }
            total
        })
    });
    g.finish();
}

/// A whole pass of the sweeper over the default table (4M buckets), empty
/// and holding 100k live connections (nothing to remove): what a sweeper
/// thread spends to find that nothing expired.
fn sweep_pass(c: &mut Criterion) {
    let mut g = c.benchmark_group("ct_sweep_pass");
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(20);
    let ct = Conntrack::new(CtConfig::default());
    g.bench_function("empty", |b| b.iter(|| black_box(ct.sweep(0, usize::MAX))));
    udp_conns(&ct, 100_000, None);
    g.bench_function("100k_live", |b| b.iter(|| black_box(ct.sweep(0, usize::MAX))));
    g.finish();
}

criterion_group!(benches, established, new_conns, sweep_pass);
criterion_main!(benches);
