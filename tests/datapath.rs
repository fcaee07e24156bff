//! Differential test of the fast path: random frames through a poll loop
//! (memory ports, slow-path thread logic driven in-line) over the rendered
//! node-d tables; what comes out of each port, bytes included (VXLAN header
//! too), must equal what `xlate` says of the frame's key — on the miss (upcall
//! and re-injection), on megaflow hits and on EMC hits. After a del-flows the
//! next packet follows the new tables. Also: no frame leaks over a soak.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::frames::frame;
use common::gen::Pools;
use common::Rng;
use config::ofctl::{parse_flow_line, LineKind};
use config::yaml::Cluster;
use crossbeam_channel::{Receiver, Sender};
use fastpath::batch::UPLINK;
use fastpath::flow::LocalVtep;
use fastpath::pmd::Pmd;
use fastpath::port::memory::CapturePort;
use fastpath::shared::{Shared, TunnelState};
use fastpath::upcall::Upcall;
use fastpath::{wire, DpAction, FlowKey};
use slowpath::upcall::SlowPath;
use slowpath::{xlate, OfFlow, Ofproto};

const VTEP: u32 = 0xac10_0119; // 172.16.1.25
const LOCAL_MAC: u64 = 0x0a00_0000_0019;

struct Rig {
    shared: Arc<Shared>,
    pmd: Pmd,
    slow: SlowPath,
    upcalls: Receiver<Upcall>,
    inject: BTreeMap<u32, Sender<Vec<u8>>>,
    outputs: BTreeMap<u32, Receiver<Vec<u8>>>,
}

fn neighbour_mac(ip: u32) -> u64 {
    0x0200_0000_0000 | ip as u64
}

/// Shared state with node-d's VTEP and every remote VTEP resolved.
fn shared_with_tunnel() -> Arc<Shared> {
    let shared = Arc::new(Shared::default());
    let neighbours =
        [0xac10_010f_u32, 0xac10_0110, 0xac10_0116].into_iter().map(|ip| (ip, neighbour_mac(ip))).collect();
    shared.tunnel.store(Arc::new(TunnelState {
        vtep: Some(LocalVtep { ip: VTEP, udp_port: 4789, port: 1 }),
        local_mac: LOCAL_MAC,
        neighbours,
    }));
    shared
}

fn rig(of: Ofproto, emc_inv_prob: u32) -> Rig {
    let shared = shared_with_tunnel();
    let (up_tx, up_rx) = crossbeam_channel::bounded(1024);
    let (rep_tx, rep_rx) = crossbeam_channel::bounded(1024);
    let mut pmd = Pmd::new(0, shared.clone(), up_tx, rep_rx, 4096, emc_inv_prob);
    let mut inject = BTreeMap::new();
    let mut outputs = BTreeMap::new();
    for port in [UPLINK, 2, 3, 4, 5, 6, 9] {
        let (p, out, inj) = CapturePort::new(&format!("p{port}"));
        pmd.add_port(port, Box::new(p), true);
        inject.insert(port, inj);
        outputs.insert(port, out);
    }
    let slow = SlowPath::new(of, shared.clone(), vec![rep_tx], vec![pmd.stats.clone()]);
    Rig { shared, pmd, slow, upcalls: up_rx, inject, outputs }
}

impl Rig {
    fn slow_shared(&self) -> &Shared {
        &self.shared
    }

    /// Sends one frame and runs loop and slow path until it is done.
    fn send(&mut self, port: u32, bytes: &[u8]) -> BTreeMap<u32, Vec<Vec<u8>>> {
        self.inject[&port].send(bytes.to_vec()).unwrap();
        for _ in 0..4 {
            self.pmd.iterate();
            let batch: Vec<Upcall> = self.upcalls.try_iter().collect();
            self.slow.handle(&batch);
        }
        self.pmd.iterate();
        assert_eq!(self.pmd.n_pending(), 0);
        let mut out = BTreeMap::new();
        for (p, rx) in &self.outputs {
            let v: Vec<Vec<u8>> = rx.try_iter().collect();
            if !v.is_empty() {
                out.insert(*p, v);
            }
        }
        out
    }
}

/// What xlate says should come out, as (port, bytes).
fn expected(of: &Ofproto, in_port: u32, bytes: &[u8]) -> BTreeMap<u32, Vec<Vec<u8>>> {
    let mut key = FlowKey::default();
    let mut inner = bytes.to_vec();
    if in_port == UPLINK {
        let (off, _) = key.extract_uplink(bytes, &LocalVtep { ip: VTEP, udp_port: 4789, port: 1 }).unwrap();
        inner = bytes[off..].to_vec();
    } else {
        key.extract(bytes, in_port);
    }
    let x = xlate(of, &OfFlow::from_key(&key), None);
    let mut out: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
    let mut cur = inner.clone();
    for a in &x.actions {
        match *a {
            DpAction::Set(fastpath::SetField::EthDst(m)) => cur[0..6].copy_from_slice(&m.to_be_bytes()[2..]),
            DpAction::Set(fastpath::SetField::EthSrc(m)) => cur[6..12].copy_from_slice(&m.to_be_bytes()[2..]),
            DpAction::Set(fastpath::SetField::PktMark(_)) => {}
            DpAction::Set(s) => panic!("test does not model {s:?}"),
            DpAction::Output(p) => out.entry(p).or_default().push(cur.clone()),
            DpAction::TunnelPush { vni, dst, .. } => {
                let t = wire::VxlanTemplate::new(LOCAL_MAC, neighbour_mac(dst), VTEP, dst, 4789, vni);
                let mut f = vec![0u8; wire::VXLAN_ENCAP_LEN];
                t.write(&mut f, cur.len(), wire::vxlan_src_port(key.hash()));
                f.extend_from_slice(&cur);
                out.entry(UPLINK).or_default().push(f);
            }
            DpAction::Ct(_) | DpAction::Recirc(_) => panic!("the rendered 3.11 tables have no conntrack"),
        }
    }
    out
}

/// A rig on node-d's tables with the EMC off, and a copy of the tables for
/// `expected`.
fn node_d_rig() -> (Rig, Ofproto) {
    let ((_, of), (_, reference)) = (node_d(), node_d());
    (rig(of, 0), reference)
}

fn node_d() -> (Cluster, Ofproto) {
    let c = Cluster::default_cluster();
    let r = config::render::render(&c, "node-d").unwrap();
    let mut of = Ofproto::with_flows(&r.flows).unwrap();
    of.ports = Some([1, 2, 3, 4, 5, 6].into());
    (c, of)
}

#[test]
fn fast_path_equals_xlate_on_miss_megaflow_and_emc_hits() {
    let (c, of) = node_d();
    let reference = Ofproto::with_flows(&config::render::render(&c, "node-d").unwrap().flows).unwrap();
    let mut reference = reference;
    reference.ports = of.ports.clone();
    let pools = Pools::from_cluster(&c, "node-d");
    let mut r = rig(of, 1);
    let mut rng = Rng(0xd1ff);
    let mut n_out = 0;
    let mut n_tunnel = 0;
    for i in 0..1500 {
        let (port, bytes) = frame(&pools.flow(&mut rng), VTEP);
        let want = expected(&reference, port, &bytes);
        n_out += usize::from(!want.is_empty());
        n_tunnel += usize::from(want.contains_key(&UPLINK));
        for pass in ["miss", "megaflow", "emc"] {
            let got = r.send(port, &bytes);
            if got != want {
                panic!("packet {i} ({pass}) in_port {port}: fast path {got:?}\nxlate {want:?}");
            }
        }
    }
    let s = &r.pmd.stats;
    let emc = s.emc_hits.load(std::sync::atomic::Ordering::Relaxed);
    let mf = s.megaflow_hits.load(std::sync::atomic::Ordering::Relaxed);
    let up = s.upcalls.load(std::sync::atomic::Ordering::Relaxed);
    assert!(emc > 1000 && mf > 100 && up > 100, "emc {emc} megaflow {mf} upcalls {up}");
    assert!(n_out > 300 && n_tunnel > 50, "{n_out} {n_tunnel}");
    assert_eq!(r.pmd.pool().n_free(), r.pmd.pool().capacity(), "frames leaked");
}

/// A whole burst at once: runs of frames of one megaflow (output to a pod,
/// VXLAN to a remote node, to tun0, dropped) interleaved, so that grouped
/// execution and per-frame execution both run. Each port gets exactly what
/// xlate says, in arrival order, and the megaflow counters add up.
#[test]
fn burst_of_interleaved_megaflows() {
    let (mut r, reference) = node_d_rig();
    let base = "in_port=4,dl_src=0a:58:0a:83:00:03,nw_src=10.131.0.3,nw_ttl=64";
    let kinds = [
        format!("{base},tcp,nw_dst=10.131.0.4,tcp_src=SPORT,tcp_dst=5432"), // local pod, same VNID
        format!("{base},udp,nw_dst=10.129.0.7,udp_src=SPORT,udp_dst=53"),   // node-b (VXLAN)
        format!("{base},tcp,nw_dst=172.30.12.34,tcp_src=SPORT,tcp_dst=8080"), // service (tun0)
        format!("{base},tcp,nw_dst=10.131.0.5,tcp_src=SPORT,tcp_dst=80"),   // other VNID: dropped
    ];
    // Warm up: one frame of each kind installs its megaflow.
    for k in &kinds {
        r.send(4, &frame(&k.replace("SPORT", "40000"), VTEP).1);
    }
    let order = [0, 0, 0, 1, 1, 0, 2, 2, 2, 2, 3, 3, 1, 0, 1, 1, 1, 2, 0, 0, 3, 0, 1, 2, 2, 0, 0, 0, 1, 3, 0, 0];
    let mut want: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
    let mut bytes_in = 0u64;
    let before: (u64, u64) = (0..64).map(|id| r.pmd.stats.flow(id)).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    for (n, &k) in order.iter().enumerate() {
        // Distinct source ports: distinct keys, same megaflows.
        let f = kinds[k].replace("SPORT", &(41000 + n).to_string());
        let (port, bytes) = frame(&f, VTEP);
        bytes_in += bytes.len() as u64;
        for (p, v) in expected(&reference, port, &bytes) {
            want.entry(p).or_default().extend(v);
        }
        r.inject[&4].send(bytes).unwrap();
    }
    assert_eq!(r.pmd.iterate(), order.len());
    assert_eq!(r.pmd.n_pending(), 0, "every frame hit a megaflow");
    let mut got = BTreeMap::new();
    for (p, rx) in &r.outputs {
        let v: Vec<Vec<u8>> = rx.try_iter().collect();
        if !v.is_empty() {
            got.insert(*p, v);
        }
    }
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![UPLINK, 2, 5]);
    assert_eq!(got, want);
    let after: (u64, u64) = (0..64).map(|id| r.pmd.stats.flow(id)).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert_eq!((after.0 - before.0, after.1 - before.1), (order.len() as u64, bytes_in));
    assert_eq!(r.pmd.pool().n_free(), r.pmd.pool().capacity(), "frames leaked");
}

#[test]
fn del_flows_takes_effect_on_the_next_packet() {
    let (_, of) = node_d();
    let mut r = rig(of, 1);
    let f = "in_port=4,tcp,dl_src=0a:58:0a:83:00:03,nw_src=10.131.0.3,nw_dst=10.131.0.4,nw_ttl=64,tcp_src=40000,tcp_dst=5432";
    let (port, bytes) = frame(f, VTEP);
    for _ in 0..3 {
        assert_eq!(r.send(port, &bytes).keys().copied().collect::<Vec<_>>(), vec![5]);
    }
    let pat = parse_flow_line("table=70, ip, nw_dst=10.131.0.4", LineKind::Match).unwrap();
    assert_eq!(r.slow.ofproto.delete_flows(&pat, false), 1);
    assert_eq!(r.slow.revalidate(), 1);
    assert!(r.send(port, &bytes).is_empty(), "still forwarded after del-flows");
    // Rule counters were credited from megaflow statistics.
    r.slow.credit_rules();
    let t20 = r.slow.ofproto.rules(Some(20));
    let rule = t20
        .iter()
        .find(|x| {
            x.spec.m.get(config::ofctl::Field::NwSrc).0 == 0x0a83_0003
                && x.spec.m.get(config::ofctl::Field::DlType).0 == 0x0800
        })
        .unwrap();
    assert_eq!(rule.n_packets.load(std::sync::atomic::Ordering::Relaxed), 4);
    // The drop is counted where it happened: table 70's catch-all.
    for _ in 0..2 {
        assert!(r.send(port, &bytes).is_empty());
    }
    r.slow.credit_rules();
    assert_eq!(r.slow.table_drops.get(&(70, "drop-rule")), Some(&3), "{:?}", r.slow.table_drops);
}

/// Four pods' bursts to one service in one iteration: 116 frames to tun0,
/// more than its output batch of 64, with the first burst 20 frames so that
/// later runs are split across a batch boundary. Every frame arrives, in
/// order (the rx ports' order, then arrival order).
#[test]
fn outputs_beyond_one_port_batch_keep_every_frame_in_order() {
    let (mut r, reference) = node_d_rig();
    let pod = |port: u32| {
        let last = port - 1; // 10.131.0.2 on port 3, ... 10.131.0.5 on port 6
        format!("in_port={port},dl_src=0a:58:0a:83:00:{last:02x},nw_src=10.131.0.{last},nw_ttl=64,tcp,nw_dst=172.30.0.1,tcp_dst=443,tcp_src=SPORT")
    };
    for port in 3..=6 {
        let out = r.send(port, &frame(&pod(port).replace("SPORT", "40000"), VTEP).1);
        assert_eq!(out.keys().copied().collect::<Vec<_>>(), vec![2], "port {port}: the kubernetes service via tun0");
    }
    let mut want = Vec::new();
    for port in 3..=6 {
        for n in 0..if port == 3 { 20 } else { 32 } {
            let (p, bytes) = frame(&pod(port).replace("SPORT", &(41000 + n).to_string()), VTEP);
            want.extend(expected(&reference, p, &bytes).remove(&2).unwrap());
            r.inject[&port].send(bytes).unwrap();
        }
    }
    assert_eq!(r.pmd.iterate(), 116);
    assert_eq!(r.pmd.n_pending(), 0, "every frame hit a megaflow");
    let got: Vec<Vec<u8>> = r.outputs[&2].try_iter().collect();
    assert_eq!(got.len(), 116);
    assert!(got == want, "tun0 received the frames in order, unchanged");
    assert_eq!(r.pmd.pool().n_free(), r.pmd.pool().capacity(), "frames leaked");
}

#[test]
fn soak_returns_every_frame() {
    let (c, of) = node_d();
    let pools = Pools::from_cluster(&c, "node-d");
    let shared = shared_with_tunnel();
    let (up_tx, up_rx) = crossbeam_channel::bounded(64);
    let (rep_tx, rep_rx) = crossbeam_channel::bounded(1024);
    let mut pmd = Pmd::new(0, shared.clone(), up_tx, rep_rx, 512, 100);
    // Every port replays a mix of frames (misses, drops, multicast copies,
    // tunnel pushes); every output port is a sink.
    let mut rng = Rng(0x50a4);
    let mut per_port: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
    for _ in 0..400 {
        let (p, b) = frame(&pools.flow(&mut rng), VTEP);
        per_port.entry(p).or_default().push(b);
    }
    let n_per_port = 10_000_000u64 / per_port.len() as u64;
    for (p, frames) in per_port {
        let mut mp = fastpath::port::memory::MemPort::new(&format!("m{p}"), frames);
        mp.limit = n_per_port;
        pmd.add_port(p, Box::new(mp), true);
    }
    let mut slow = SlowPath::new(of, shared, vec![rep_tx], vec![pmd.stats.clone()]);
    let mut total = 0u64;
    let mut idle = 0;
    while idle < 100 {
        let n = pmd.iterate();
        total += n as u64;
        idle = if n == 0 { idle + 1 } else { 0 };
        let batch: Vec<Upcall> = up_rx.try_iter().collect();
        slow.handle(&batch);
    }
    pmd.drain();
    assert!(total >= 9_999_000, "received {total}");
    assert_eq!(pmd.pool().n_free(), pmd.pool().capacity(), "frames leaked");
}

#[test]
fn vxlan_waits_for_the_neighbour_then_goes() {
    let (_, of) = node_d();
    let mut r = rig(of, 1);
    // Forget node-b's next hop.
    let shared_tunnel = {
        let mut t = TunnelState::clone(&r.slow_shared().tunnel.load());
        t.neighbours.remove(&0xac10_0110);
        t
    };
    r.slow_shared().tunnel.store(Arc::new(shared_tunnel.clone()));
    let f = "in_port=4,udp,dl_src=0a:58:0a:83:00:03,nw_src=10.131.0.3,nw_dst=10.129.0.7,nw_ttl=64,udp_src=40000,udp_dst=8080";
    let (port, bytes) = frame(f, VTEP);
    assert!(r.send(port, &bytes).is_empty());
    assert!(r.send(port, &bytes).is_empty());
    assert_eq!(r.pmd.n_held(), 2);
    // The slow path resolves it: both held frames leave, correctly addressed.
    let mut t = shared_tunnel;
    t.neighbours.insert(0xac10_0110, neighbour_mac(0xac10_0110));
    r.slow_shared().tunnel.store(Arc::new(t));
    let out = r.send(port, &bytes);
    assert_eq!(r.pmd.n_held(), 0);
    let up = &out[&UPLINK];
    assert_eq!(up.len(), 3);
    for f in up {
        assert_eq!(&f[0..6], &neighbour_mac(0xac10_0110).to_be_bytes()[2..]);
        assert_eq!(wire::vxlan_vni(f, 42), Some(11235));
    }
    // The next hop moves: cached headers follow the new MAC at once.
    let mut t = TunnelState::clone(&r.slow_shared().tunnel.load());
    t.neighbours.insert(0xac10_0110, 0x0200_0000_beef);
    r.slow_shared().tunnel.store(Arc::new(t));
    let out = r.send(port, &bytes);
    assert_eq!(&out[&UPLINK][0][0..6], &0x0200_0000_beefu64.to_be_bytes()[2..]);
    assert_eq!(r.pmd.pool().n_free(), r.pmd.pool().capacity());
}

#[test]
fn live_table_change_revalidates_within_milliseconds() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let (_, of) = node_d();
    let shared = Arc::new(Shared::default());
    let (up_tx, up_rx) = crossbeam_channel::bounded(1024);
    let (rep_tx, rep_rx) = crossbeam_channel::bounded(1024);
    let mut pmd = Pmd::new(0, shared.clone(), up_tx, rep_rx, 1024, 100);
    let f = "in_port=4,tcp,dl_src=0a:58:0a:83:00:03,nw_src=10.131.0.3,nw_dst=10.131.0.4,nw_ttl=64,tcp_src=40000,tcp_dst=5432";
    let (_, bytes) = frame(f, VTEP);
    pmd.add_port(4, Box::new(fastpath::port::memory::MemPort::new("web-1", vec![bytes])), true);
    for p in [UPLINK, 2, 3, 5, 6] {
        pmd.add_port(p, Box::new(fastpath::port::memory::SinkPort::new("sink")), false);
    }
    let stats = pmd.stats.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let (cmd_tx, cmd_rx) = crossbeam_channel::bounded(4);
    let mut slow = SlowPath::new(of, shared, vec![rep_tx], vec![stats.clone()]);
    let s2 = stop.clone();
    let slow_h = std::thread::spawn(move || slow.run_with(&up_rx, &cmd_rx, || s2.load(Ordering::Relaxed)));
    let s3 = stop.clone();
    let pmd_h = std::thread::spawn(move || {
        pmd.run(&s3);
        pmd
    });
    let dropped = || stats.drops[0].load(Ordering::Relaxed);
    let packets = || stats.packets.load(Ordering::Relaxed);
    let t0 = Instant::now();
    while packets() < 100_000 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::yield_now();
    }
    assert_eq!(dropped(), 0, "forwarded before the change");
    let (rtx, rrx) = crossbeam_channel::bounded(1);
    let cmds = config::ofctl::parse_flow_file("delete table=70, ip, nw_dst=10.131.0.4\n").unwrap();
    let before = packets();
    let t1 = Instant::now();
    cmd_tx.send(slowpath::upcall::Command::FlowMods(cmds.into_iter().map(|c| c.1).collect(), rtx)).unwrap();
    rrx.recv().unwrap().unwrap();
    while dropped() == 0 && t1.elapsed() < Duration::from_secs(5) {
        std::thread::yield_now();
    }
    let took = t1.elapsed();
    let after = packets();
    stop.store(true, Ordering::Relaxed);
    let pmd = pmd_h.join().unwrap();
    slow_h.join().unwrap();
    assert!(dropped() > 0, "the table change never reached the datapath");
    eprintln!("table change reached the datapath in {took:?}");
    assert!(took < Duration::from_secs(2), "revalidation took {took:?}");
    assert!(after > before, "the loop stopped forwarding during the change");
    assert_eq!(pmd.pool().n_free(), pmd.pool().capacity());
}
