//! What the datapath benches share: a poll loop on a memory port, warmed
//! up against node-d's rendered tables so that every burst runs without
//! upcalls.

use std::sync::Arc;

use config::yaml::Cluster;
use fastpath::batch::UPLINK;
use fastpath::flow::LocalVtep;
use fastpath::pmd::Pmd;
use fastpath::port::memory::{MemPort, SinkPort};
use fastpath::shared::{Shared, TunnelState};
use fastpath::wire;
use slowpath::upcall::SlowPath;
use slowpath::Ofproto;

/// A UDP frame between two pods' addresses (MACs derived from them).
pub fn udp(src: u32, dst: u32, sport: u16, dport: u16) -> Vec<u8> {
    wire::build_frame(0x0a58_0000_0000 | src as u64, 0x0a58_0000_0000 | dst as u64, src, dst, 17, sport, dport, 64)
}

/// A VXLAN frame from 172.16.1.16 (10.129.0.0/23's node) to node-d's VTEP,
/// VNI 0x2be3, carrying `inner`.
pub fn vxlan(inner: &[u8]) -> Vec<u8> {
    let t = wire::VxlanTemplate::new(2, 1, 0xac10_0110, 0xac10_0119, 4789, 0x2be3);
    let mut f = vec![0u8; wire::VXLAN_ENCAP_LEN];
    t.write(&mut f, inner.len(), 50000);
    f.extend_from_slice(inner);
    f
}

/// The whole-burst cases: name, input port, the frames the port replays.
pub fn burst_cases() -> Vec<(&'static str, u32, Vec<Vec<u8>>)> {
    let (pod, local, remote) = (0x0a83_0003, 0x0a83_0004, 0x0a81_0007);
    // Distinct 5-tuples as `sdnfwd bench` makes them: source ports, then
    // the next destination port.
    let same = |n: usize| (0..n).map(|i| udp(pod, local, 1024 + (i % 60_000) as u16, 80 + (i / 60_000) as u16));
    let same = |n: usize| same(n).collect::<Vec<_>>();
    vec![
        ("pod-pod-1-flow", 4, same(1)),
        ("pod-pod-10k-flows", 4, same(10_000)),
        ("pod-pod-100k-flows", 4, same(100_000)),
        ("pod-remote-1-flow", 4, vec![udp(pod, remote, 1024, 80)]),
        ("remote-pod-1-flow", UPLINK, vec![vxlan(&udp(remote, pod, 1024, 80))]),
    ]
}

/// A poll loop reading `frames` on `in_port` (sinks on the other ports),
/// warmed up until its megaflows are installed: the next burst is checked
/// to forward all 32 frames without an upcall.
pub fn warm_pmd(name: &str, in_port: u32, frames: Vec<Vec<u8>>) -> Pmd {
    let cl = Cluster::default_cluster();
    let r = config::render::render(&cl, "node-d").unwrap();
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
    let (packets, upcalls) = counts(&pmd);
    pmd.iterate();
    let (after, upcalls_after) = counts(&pmd);
    assert_eq!(after - packets, 32, "{name}: a whole burst goes through");
    assert_eq!(upcalls_after, upcalls, "{name}: warmed up, no more upcalls");
    pmd
}

/// Packets and upcalls the loop has counted.
pub fn counts(pmd: &Pmd) -> (u64, u64) {
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    (load(&pmd.stats.packets), load(&pmd.stats.upcalls))
}

/// The connection-tracking cases: name and connections (`sdnfwd bench
/// --ct-mode --pattern tcp-est`'s frames).
#[allow(dead_code)] // not every bench runs them
pub fn ct_cases() -> Vec<(&'static str, usize)> {
    vec![("tcp-est-1-conn", 1), ("tcp-est-10k-conns", 10_000), ("tcp-est-100k-conns", 100_000)]
}

/// A poll loop with node-d's ct-mode table and a connection tracker, `n`
/// connections opened with their handshakes (`sdnfwd::bench_ct`), then
/// replaying a data segment each way per connection; warmed up until a
/// round of every ring runs without an upcall.
#[allow(dead_code)]
pub fn warm_ct_pmd(name: &str, n: usize) -> Pmd {
    use fastpath::conntrack::{Conntrack, CtConfig};
    use sdnfwd::bench_ct;
    let cl = Cluster::default_cluster();
    let (flows, groups) = sdnfwd::ct_mode::ct_mode_flows(&cl);
    let table = || {
        let mut of = Ofproto::new();
        for (_, g) in config::ofctl::parse_group_file(&groups).unwrap() {
            of.apply_group(&g).unwrap();
        }
        let cmds: Vec<_> = config::ofctl::parse_flow_file(&flows).unwrap().into_iter().map(|(_, c)| c).collect();
        of.apply(&cmds).unwrap();
        of.ports = Some([1, 2, 3, 4, 5, 6].into());
        of
    };
    let pods = bench_ct::pods_of(&cl, "node-d");
    let pairs = bench_ct::find_pairs(table(), &pods, &flows, 64).unwrap();
    let f = bench_ct::established(&pairs, n, 64).unwrap();
    let shared = Arc::new(Shared::default());
    let (up_tx, up_rx) = crossbeam_channel::bounded(4096);
    let (rep_tx, rep_rx) = crossbeam_channel::bounded(4096);
    let mut pmd = Pmd::new(0, shared.clone(), up_tx, rep_rx, 4096, 100);
    pmd.set_conntrack(Arc::new(Conntrack::new(CtConfig::default())));
    for p in [UPLINK, 2, 3, 4, 5, 6] {
        pmd.add_port(p, Box::new(SinkPort::new("sink")), false);
    }
    let mut slow = SlowPath::new(table(), shared, vec![rep_tx], vec![pmd.stats.clone()]);
    let mut serve = |pmd: &mut Pmd| {
        let batch: Vec<_> = up_rx.try_iter().collect();
        slow.handle(&batch);
        pmd.iterate();
    };
    bench_ct::warm_up(&mut pmd, &f.phases, &f.sources, &mut serve).unwrap();
    // Every ring round once (at least), answering upcalls as they come.
    let longest = f.sources.iter().map(|(_, v)| v.len()).max().unwrap_or(1);
    for _ in 0..(longest / 32 + 1) * 4 + 1000 {
        serve(&mut pmd);
    }
    let (_, upcalls) = counts(&pmd);
    for _ in 0..longest / 32 + 1 {
        pmd.iterate();
    }
    assert_eq!(counts(&pmd).1, upcalls, "{name}: warmed up, no more upcalls");
    pmd
}
