//! `sdnfwd bench`: the whole datapath in memory, per core. Each poll loop
//! replays a ring of prebuilt frames from a memory port (copying each into a
//! frame buffer, as DPDK's pcap vdev with infinite_rx does) through extract,
//! EMC, megaflow classifier and actions into sink ports; the slow path runs
//! on its own thread. Reports Mpps, per core, cache hit rates and upcalls.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use config::yaml::Cluster;
use fastpath::batch::UPLINK;
use fastpath::conntrack::{Conntrack, CtConfig};
use fastpath::flow::LocalVtep;
use fastpath::pmd::Pmd;
use fastpath::port::memory::{MemPort, SinkPort};
use fastpath::shared::{Shared, TunnelState};
use fastpath::stats::PmdStats;
use fastpath::{wire, FlowKey};
use serde_json::{json, Value};
use slowpath::upcall::{SlowPath, UPCALL_BATCH};
use slowpath::{xlate, OfFlow, Ofproto};

use sdnfwd::bench_ct;

use super::common::{file_tables, node_tables, read_file, spawn_pinned, text_tables, ClusterArgs};

/// Traffic patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Pattern {
    /// Local pod to local pod.
    PodPod,
    /// Local pod to a pod on another node (VXLAN push).
    PodRemote,
    /// VXLAN from another node to a local pod (decap).
    RemotePod,
    /// Local pod to a service (to tun0).
    PodService,
    /// All of the above, interleaved.
    Mixed,
    /// The slow path alone: distinct flows translated and installed per
    /// second (every packet a new megaflow).
    Upcalls,
    /// Connection tracking, established TCP: --flows connections between
    /// pods the table lets talk, opened with handshakes first, then a data
    /// segment each way per connection replayed round and round (every
    /// pass +est). Needs a table with ct: --ct-mode, --flow-file, or a
    /// rendered one that tracks (--sdn-version 4.13, or the networkpolicy
    /// plugin).
    TcpEst,
    /// Connection tracking, new TCP connections: --flows tuples, each a
    /// SYN that opens a connection in place of the tuple's closed one and
    /// an RST that closes it (the ring once before the measurement); new
    /// connections per second are the SYNs per second.
    TcpNew,
    /// Memory per tracked connection: --flows handshakes through a tracker
    /// with the default configuration (no datapath), the RSS before and
    /// after.
    ConnMemory,
}

/// `sdnfwd bench`.
#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Traffic pattern.
    #[arg(long, value_enum, default_value_t = Pattern::PodPod)]
    pub pattern: Pattern,
    /// Distinct 5-tuples.
    #[arg(long, default_value_t = 1)]
    pub flows: usize,
    /// Poll loops (one per core).
    #[arg(long, default_value_t = 1)]
    pub cores: usize,
    /// First core to pin to (loops use first..first+cores; the slow path
    /// is not pinned).
    #[arg(long, default_value_t = 0)]
    pub first_core: usize,
    /// Measured seconds (after a 1 s warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Frame size in bytes.
    #[arg(long, default_value_t = 64)]
    pub frame_size: usize,
    /// EMC insertion: one in N (0 disables the EMC).
    #[arg(long, default_value_t = 100)]
    pub emc_insert_inv_prob: u32,
    /// Use a synthetic cluster of this many nodes (10 services per node,
    /// 200 pods on node-0) instead of --cluster.
    #[arg(long)]
    pub synthetic: Option<usize>,
    /// Also measure, on the same core and for the same time, the I/O limit
    /// (memory port → sink with no lookup) and print the ratio.
    #[arg(long)]
    pub baseline: bool,
    /// Machine-readable summary.
    #[arg(long)]
    pub json: bool,
    /// Write the pattern's frames (one source port) to this pcap file and
    /// exit: the same frames for another forwarder (OVS with DPDK's
    /// net_pcap vdev); prints the OpenFlow in_port they enter on and the
    /// port(s) they leave by. With tcp-est, tcp-new and conn-memory, the
    /// frames go to one file per phase and port, FILE.wK.pPORT.pcap for the
    /// warm-up phases (K from 1, each sent once, in order) and
    /// FILE.run.pPORT.pcap for the measured rings, a line each: `warm K
    /// PORT FILE FRAMES` or `run PORT FILE FRAMES`.
    #[arg(long)]
    pub write_pcap: Option<String>,
    /// The ct-mode table: node-d of the default cluster in conntrack mode
    /// (the networkpolicy plugin's rules, egress groups; the table the OVS
    /// oracle test checks) with the connection tracker in the poll loops.
    #[arg(long, conflicts_with_all = ["synthetic", "flow_file"])]
    pub ct_mode: bool,
    /// OpenFlow flows (add-flows syntax) to run instead of the node's
    /// rendered table; the poll loops get a connection tracker.
    #[arg(long, value_name = "FILE")]
    pub flow_file: Option<String>,
    /// Groups (`ovs-ofctl add-groups` lines) for --flow-file.
    #[arg(long, value_name = "FILE", requires = "flow_file")]
    pub groups: Option<String>,
    /// Print the --ct-mode table's flows (add-flows syntax) and exit.
    #[arg(long, requires = "ct_mode")]
    pub print_flows: bool,
    /// Print the --ct-mode table's groups (add-groups syntax) and exit.
    #[arg(long, requires = "ct_mode")]
    pub print_groups: bool,
}

struct Scenario {
    /// (OpenFlow in_port or UPLINK, frames).
    sources: Vec<(u32, Vec<Vec<u8>>)>,
    /// Warm-up phases before the measurement (connection tracking), each
    /// frame sent once, phase after phase.
    phases: Vec<bench_ct::PortFrames>,
}

fn mac_of(ip: u32) -> u64 {
    0x0a58_0000_0000 | ip as u64
}

/// Remote VTEPs get synthetic next-hop MACs (no ARP in memory).
fn neighbour_mac(ip: u32) -> u64 {
    0x0200_0000_0000 | ip as u64
}

fn outputs_of(of: &Ofproto, key: &FlowKey) -> Vec<u32> {
    xlate(of, &OfFlow::from_key(key), None).outputs.iter().map(|o| o.port).collect()
}

fn build(
    c: &Cluster,
    node: &str,
    of: &Ofproto,
    pattern: Pattern,
    flows: usize,
    size: usize,
) -> Result<Scenario, String> {
    let n = c.find_node(node).ok_or(format!("node {node} lists no pods"))?;
    let local = c.host_subnet(node).ok_or("no HostSubnet")?;
    let vtep = u32::from(local.host_ip.0);
    let pods: Vec<(u32, u32)> = n.pods.iter().map(|p| (p.ofport, u32::from(p.ip.0))).collect();
    let flows = flows.max(1);
    let tuple = |i: usize| (1024 + (i % 60000) as u16, 80 + (i / 60000) as u16);
    let key_of = |port: u32, f: &[u8]| {
        let mut k = FlowKey::default();
        k.extract(f, port);
        k
    };
    let pat = |p: Pattern| -> Result<(u32, Vec<Vec<u8>>), String> {
        match p {
            Pattern::PodPod => {
                for &(sp, sip) in &pods {
                    for &(dp, dip) in &pods {
                        let f = wire::build_frame(mac_of(sip), mac_of(dip), sip, dip, 17, 1024, 80, size);
                        if sp != dp && outputs_of(of, &key_of(sp, &f)) == [dp] {
                            let frames = (0..flows)
                                .map(|i| {
                                    let (a, b) = tuple(i);
                                    wire::build_frame(mac_of(sip), mac_of(dip), sip, dip, 17, a, b, size)
                                })
                                .collect();
                            return Ok((sp, frames));
                        }
                    }
                }
                Err("no pair of local pods may talk (pod-pod needs two pods of one tenant)".into())
            }
            Pattern::PodRemote => {
                let r = c.host_subnets.iter().find(|h| h.host_ip != local.host_ip).ok_or("no remote node")?;
                let dip = r.subnet.addr() + 7;
                let &(sp, sip) = pods.first().ok_or("no local pod")?;
                let frames = (0..flows)
                    .map(|i| {
                        let (a, b) = tuple(i);
                        wire::build_frame(mac_of(sip), mac_of(dip), sip, dip, 17, a, b, size)
                    })
                    .collect();
                Ok((sp, frames))
            }
            Pattern::RemotePod => {
                let r = c.host_subnets.iter().find(|h| h.host_ip != local.host_ip).ok_or("no remote node")?;
                let sip = r.subnet.addr() + 7;
                for &(dp, dip) in &pods {
                    for vni in c.net_namespaces.iter().map(|n| n.netid).chain([0]) {
                        let inner = wire::build_frame(mac_of(sip), mac_of(dip), sip, dip, 17, 1024, 80, size);
                        let t = wire::VxlanTemplate::new(
                            neighbour_mac(u32::from(r.host_ip.0)),
                            0x0a00_0000_0001,
                            u32::from(r.host_ip.0),
                            vtep,
                            c.vxlan_port(),
                            vni,
                        );
                        let mut f = vec![0; wire::VXLAN_ENCAP_LEN];
                        t.write(&mut f, inner.len(), 50000);
                        f.extend_from_slice(&inner);
                        let mut k = FlowKey::default();
                        let _ = k.extract_uplink(&f, &LocalVtep { ip: vtep, udp_port: c.vxlan_port(), port: 1 });
                        if outputs_of(of, &k) == [dp] {
                            let frames = (0..flows)
                                .map(|i| {
                                    let (a, b) = tuple(i);
                                    let inner = wire::build_frame(mac_of(sip), mac_of(dip), sip, dip, 17, a, b, size);
                                    let mut f = vec![0; wire::VXLAN_ENCAP_LEN];
                                    t.write(&mut f, inner.len(), 50000);
                                    f.extend_from_slice(&inner);
                                    f
                                })
                                .collect();
                            return Ok((UPLINK, frames));
                        }
                    }
                }
                Err("no local pod accepts VXLAN from the first remote node".into())
            }
            Pattern::PodService => {
                for s in &c.services {
                    let Ok(ip) = s.cluster_ip.parse::<std::net::Ipv4Addr>() else { continue };
                    let Some(port) = s.ports.first() else { continue };
                    let proto = if port.protocol.eq_ignore_ascii_case("UDP") { 17 } else { 6 };
                    let dip = u32::from(ip);
                    for &(sp, sip) in &pods {
                        let f =
                            wire::build_frame(mac_of(sip), 0x0a00_0000_0001, sip, dip, proto, 1024, port.port, size);
                        if outputs_of(of, &key_of(sp, &f)) == [2] {
                            let frames = (0..flows)
                                .map(|i| {
                                    let (a, _) = tuple(i);
                                    wire::build_frame(
                                        mac_of(sip),
                                        0x0a00_0000_0001,
                                        sip,
                                        dip,
                                        proto,
                                        a,
                                        port.port,
                                        size,
                                    )
                                })
                                .collect();
                            return Ok((sp, frames));
                        }
                    }
                }
                Err("no local pod may reach a service".into())
            }
            _ => unreachable!(),
        }
    };
    let sources = match pattern {
        Pattern::Mixed => {
            let mut v = Vec::new();
            for p in [Pattern::PodPod, Pattern::PodRemote, Pattern::RemotePod, Pattern::PodService] {
                v.push(pat(p)?);
            }
            v
        }
        p => vec![pat(p)?],
    };
    Ok(Scenario { sources, phases: Vec::new() })
}

/// The I/O limit on this core: copy each frame into a buffer and free it.
fn io_limit(frames: Vec<Vec<u8>>, core: Option<core_affinity::CoreId>, seconds: f64) -> f64 {
    std::thread::spawn(move || {
        if let Some(c) = core {
            core_affinity::set_for_current(c);
        }
        let mut pool = fastpath::pool::FramePool::new(4096);
        let mut src = MemPort::new("mem", frames);
        let mut sink = SinkPort::new("sink");
        let mut ids = [0u32; fastpath::batch::BURST];
        let t0 = Instant::now();
        let mut n = 0u64;
        while t0.elapsed().as_secs_f64() < seconds {
            for _ in 0..1000 {
                let k = fastpath::port::api::Port::rx(&mut src, &mut pool, &mut ids);
                fastpath::port::api::Port::tx(&mut sink, &mut pool, &ids[..k]);
                n += k as u64;
            }
        }
        n as f64 / t0.elapsed().as_secs_f64() / 1e6
    })
    .join()
    .unwrap_or(0.0)
}

/// Warm rounds of the upcall benchmark after the cold one.
const WARM_ROUNDS: u32 = 5;

/// Upcalls per second: distinct flows (a pod to as many external
/// addresses), each a new megaflow, translated and installed in batches of
/// up to [`UPCALL_BATCH`] as the slow-path thread does
/// (`SlowPath::run_with`: the upcalls taken from their channel into one
/// reused batch, then handled). Each batch's upcalls are made and sent
/// untimed, as the poll loops would send them; the time is the batches'
/// receiving and handling. The first round starts from nothing (every page
/// of the tables is touched for the first time); then, as on a running
/// node, the megaflows expire, their ids leave quarantine and the next
/// round's flows reuse the memory. The steady-state rate is the median of
/// the warm rounds.
fn upcalls(c: &Cluster, node: &str, of: Ofproto, n: usize, json: bool) -> Result<ExitCode, String> {
    use fastpath::upcall::Upcall;
    let pods = &c.find_node(node).ok_or("node lists no pods")?.pods;
    let p = pods.first().ok_or("no local pod")?;
    let sip = u32::from(p.ip.0);
    let upcall = |r: u32, i: usize| -> Upcall {
        let dip = 0x0800_0000 + (r << 20) + i as u32; // 8.0.0.0/8: outside the cluster
        let f = wire::build_frame(mac_of(sip), 0x0a00_0000_0001, sip, dip, 17, 1024, 443, 64);
        let mut key = FlowKey::default();
        key.extract(&f, p.ofport);
        Upcall { key, pmd: 0, len: 64 }
    };
    let shared = Arc::new(Shared::default());
    let (rtx, rrx) = crossbeam_channel::bounded(4096);
    let (utx, urx) = crossbeam_channel::bounded::<Upcall>(UPCALL_BATCH);
    let mut slow = SlowPath::new(of, shared, vec![rtx], vec![Arc::new(PmdStats::default())]);
    let mut batch: Vec<Upcall> = Vec::with_capacity(UPCALL_BATCH);
    let mut rates = Vec::new();
    for r in 0..=WARM_ROUNDS {
        if r > 0 {
            slow.expire(Duration::ZERO);
            std::thread::sleep(Duration::from_millis(1100)); // the ids' quarantine
            slow.idle();
        }
        let mut spent = Duration::ZERO;
        for first in (0..n).step_by(UPCALL_BATCH) {
            for i in first..(first + UPCALL_BATCH).min(n) {
                utx.try_send(upcall(r, i)).map_err(|_| "the upcall channel is full")?;
            }
            let t0 = Instant::now();
            while let Ok(u) = urx.try_recv() {
                batch.push(u);
            }
            slow.handle(&batch);
            batch.clear();
            while rrx.try_recv().is_ok() {}
            spent += t0.elapsed();
        }
        rates.push(n as f64 / spent.as_secs_f64());
        if slow.stats.over_limit > 0 {
            return Err(format!("{} upcalls were over the flow limit: use fewer --flows", slow.stats.over_limit));
        }
    }
    let cold = rates[0];
    let mut warm = rates[1..].to_vec();
    warm.sort_by(f64::total_cmp);
    let rate = warm[warm.len() / 2]; // WARM_ROUNDS is odd: the median
    if json {
        println!(
            "{}",
            json!({"pattern": "Upcalls", "upcalls": n, "upcalls_per_sec": rate, "cold_upcalls_per_sec": cold,
                   "warm_rounds": warm, "megaflows": slow.n_megaflows()})
        );
    } else {
        println!(
            "sdnfwd bench: node {node}, {n} distinct flows a round: {:.2} M upcalls/s steady (median of {WARM_ROUNDS} rounds \
             reusing expired megaflows' memory), {:.2} M upcalls/s cold ({} megaflows installed)",
            rate / 1e6,
            cold / 1e6,
            slow.n_megaflows()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `conn-memory`: the tracker's memory per connection (see
/// [`bench_ct::memory`]); fails above the goal of 192 bytes.
fn conn_memory(a: &BenchArgs) -> Result<ExitCode, String> {
    let n = a.flows.max(1);
    if let Some(prefix) = &a.write_pcap {
        // Three phases into one port (3): SYNs, SYN-ACKs, ACKs.
        for (k, name) in ["SYN", "SYN-ACK", "ACK"].iter().enumerate() {
            let frames: Vec<Vec<u8>> = (0..n).map(|i| bench_ct::memory_handshake(i)[k].clone()).collect();
            let path = format!("{prefix}.w{}.p3.pcap", k + 1);
            write_pcap_file(&path, &frames)?;
            println!("warm {} 3 {path} {} {name}", k + 1, frames.len());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let m = bench_ct::memory(n);
    let per = m.conn_bytes as f64 / n as f64;
    if a.json {
        println!(
            "{}",
            json!({"pattern": "ConnMemory", "connections": n, "table_bytes": m.table_bytes,
                   "conn_bytes": m.conn_bytes, "bytes_per_conn": per, "n_conns": m.stats.n_conns,
                   "invalid": m.stats.n_invalid, "not_established": m.not_est})
        );
    } else {
        println!(
            "sdnfwd bench: {n} TCP connections (handshakes through a tracker with the default configuration): \
             RSS +{:.1} MB for the tracker (its bucket array), +{:.1} MB for the connections: {per:.1} bytes a \
             connection; {} tracked, {} invalid, {} handshakes not established",
            m.table_bytes as f64 / 1e6,
            m.conn_bytes as f64 / 1e6,
            m.stats.n_conns,
            m.stats.n_invalid,
            m.not_est
        );
    }
    if m.stats.n_conns != n || m.not_est != 0 {
        return Err(format!(
            "conn-memory: {} of {n} connections tracked, {} not established",
            m.stats.n_conns, m.not_est
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn write_pcap_file(path: &str, frames: &[Vec<u8>]) -> Result<(), String> {
    let f = std::fs::File::create(path).map_err(|e| format!("{path}: {e}"))?;
    fastpath::port::pcap::write_pcap(std::io::BufWriter::new(f), frames).map_err(|e| format!("{path}: {e}"))
}

/// The tracker's state between two points of a run.
#[derive(Clone, Copy, Default)]
struct CtDelta {
    created: u64,
    invalid: u64,
    full: u64,
    expired: u64,
    /// `ct` verdicts of the loops: est, new, rel, inv.
    verdicts: [u64; 4],
}

fn ct_snap(ct: &Conntrack, stats: &[Arc<PmdStats>]) -> CtDelta {
    let s = ct.stats();
    let mut verdicts = [0u64; 4];
    for p in stats {
        for (v, c) in verdicts.iter_mut().zip(&p.ct) {
            *v += c.load(Ordering::Relaxed);
        }
    }
    CtDelta { created: s.n_created, invalid: s.n_invalid, full: s.n_full, expired: s.n_expired, verdicts }
}

impl CtDelta {
    fn since(&self, b: &CtDelta) -> CtDelta {
        CtDelta {
            created: self.created - b.created,
            invalid: self.invalid - b.invalid,
            full: self.full - b.full,
            expired: self.expired - b.expired,
            verdicts: std::array::from_fn(|i| self.verdicts[i] - b.verdicts[i]),
        }
    }
    fn n_verdicts(&self) -> u64 {
        self.verdicts.iter().sum()
    }
    fn pct(&self, i: usize) -> f64 {
        100.0 * self.verdicts[i] as f64 / self.n_verdicts().max(1) as f64
    }
}

/// The table a bench runs: the node's rendered one, the ct-mode one or a
/// flow file's, and the flows' text (add-flows syntax: the TCP ports it
/// names are the ones the connection-tracking patterns try).
fn load_table(
    a: &BenchArgs,
    c: &Cluster,
    node: &str,
    extra: Option<&(String, String)>,
) -> Result<(Ofproto, String), String> {
    let mut of = if a.ct_mode {
        let (flows, groups) = sdnfwd::ct_mode::ct_mode_flows(c);
        let of = text_tables(("<ct-mode flows>", &flows), Some(("<ct-mode groups>", &groups)))?;
        (of, flows)
    } else if let Some(path) = &a.flow_file {
        (file_tables(path, a.groups.as_deref())?, read_file(path)?)
    } else {
        let of = node_tables(c, node, extra, &a.cluster.source())?;
        let text = of.rules(None).iter().map(|r| r.spec.to_dump_line(None) + "\n").collect();
        return Ok((of, text));
    };
    let mut ports: std::collections::BTreeSet<u32> = [1, 2].into();
    ports.extend(bench_ct::pods_of(c, node).iter().map(|p| p.0));
    of.0.ports = Some(ports);
    Ok(of)
}

pub fn bench(a: BenchArgs) -> Result<ExitCode, String> {
    if a.pattern == Pattern::ConnMemory {
        return conn_memory(&a);
    }
    if a.print_flows || a.print_groups {
        let (flows, groups) = sdnfwd::ct_mode::ct_mode_flows(&Cluster::default_cluster());
        print!("{}", if a.print_flows { flows } else { groups });
        return Ok(ExitCode::SUCCESS);
    }
    let ct_pattern = matches!(a.pattern, Pattern::TcpEst | Pattern::TcpNew);
    // The loops get a tracker with a ct table: --ct-mode, a flow file, or
    // the rendered table for a ct pattern (4.13's rules, or 3.11's for
    // the networkpolicy plugin).
    let ct_table = a.ct_mode || a.flow_file.is_some() || ct_pattern;
    if (a.ct_mode || a.flow_file.is_some()) && !ct_pattern {
        return Err("--ct-mode and --flow-file go with --pattern tcp-est or tcp-new".into());
    }
    if a.ct_mode && (!a.cluster.cluster.is_empty() || a.cluster.node.is_some()) {
        return Err("--ct-mode is node-d of the embedded default cluster: no --cluster or --node".into());
    }
    let (c, extra) = match a.synthetic {
        Some(n) => (config::yaml::synthetic_cluster(n.clamp(2, 2048), 10 * n, 200), None),
        None => a.cluster.load()?,
    };
    let node = if a.synthetic.is_some() {
        "node-0".to_string()
    } else if a.ct_mode {
        "node-d".to_string()
    } else {
        a.cluster.node_name(&c)?
    };
    let (of, flows_text) = load_table(&a, &c, &node, extra.as_ref())?;
    if ct_pattern && !flows_text.contains("ct(") {
        return Err(format!(
            "--pattern {}: node {node}'s table has no ct action (the 3.11 rules track connections with the \
             networkpolicy plugin only; try --sdn-version 4.13, --ct-mode or --flow-file)",
            if a.pattern == Pattern::TcpEst { "tcp-est" } else { "tcp-new" }
        ));
    }
    if a.pattern == Pattern::Upcalls {
        return upcalls(&c, &node, of, a.flows.max(1000), a.json);
    }
    let mut pairs = Vec::new();
    let mut n_conns = 0;
    let sc = if ct_pattern {
        let probe_of = load_table(&a, &c, &node, extra.as_ref())?.0;
        let found = bench_ct::find_pairs(probe_of, &bench_ct::pods_of(&c, &node), &flows_text, a.frame_size)?;
        let f = match a.pattern {
            Pattern::TcpEst => bench_ct::established(&found, a.flows, a.frame_size)?,
            _ => bench_ct::churn(&found, a.flows)?,
        };
        pairs = f.pairs;
        n_conns = f.n;
        Scenario { sources: f.sources, phases: f.phases }
    } else {
        build(&c, &node, &of, a.pattern, a.flows, a.frame_size)?
    };
    if let Some(path) = &a.write_pcap {
        if ct_pattern {
            for (k, phase) in sc.phases.iter().enumerate() {
                for (port, frames) in phase {
                    let f = format!("{path}.w{}.p{port}.pcap", k + 1);
                    write_pcap_file(&f, frames)?;
                    println!("warm {} {port} {f} {}", k + 1, frames.len());
                }
            }
            for (port, frames) in &sc.sources {
                let f = format!("{path}.run.p{port}.pcap");
                write_pcap_file(&f, frames)?;
                println!("run {port} {f} {}", frames.len());
            }
            return Ok(ExitCode::SUCCESS);
        }
        let (port, frames) = sc.sources.first().ok_or("the pattern has no frames")?;
        write_pcap_file(path, frames)?;
        let mut k = FlowKey::default();
        k.extract(&frames[0], *port);
        let outs: Vec<String> = outputs_of(&of, &k).iter().map(u32::to_string).collect();
        println!("{port} {}", outs.join(","));
        return Ok(ExitCode::SUCCESS);
    }
    let local = c.host_subnet(&node).ok_or("no HostSubnet")?;
    let shared = Arc::new(Shared::default());
    shared.tunnel.store(Arc::new(TunnelState {
        vtep: Some(LocalVtep { ip: u32::from(local.host_ip.0), udp_port: c.vxlan_port(), port: 1 }),
        local_mac: 0x0a00_0000_0001,
        neighbours: c
            .host_subnets
            .iter()
            .map(|h| (u32::from(h.host_ip.0), neighbour_mac(u32::from(h.host_ip.0))))
            .collect(),
    }));
    let ct = ct_table.then(|| Arc::new(Conntrack::new(CtConfig::default())));
    let ports: Vec<u32> = of.ports.clone().unwrap_or_default().into_iter().filter(|&p| p != 1).collect();
    let (up_tx, up_rx) = crossbeam_channel::bounded(4096);
    let mut replies = Vec::new();
    let mut pmds = Vec::new();
    for i in 0..a.cores.max(1) {
        let (rtx, rrx) = crossbeam_channel::bounded(4096);
        replies.push(rtx);
        let mut pmd = Pmd::new(i, shared.clone(), up_tx.clone(), rrx, 4096, a.emc_insert_inv_prob);
        if let Some(ct) = &ct {
            pmd.set_conntrack(ct.clone());
        }
        let mut rx_ports = std::collections::BTreeSet::new();
        for (port, frames) in &sc.sources {
            // Each loop starts its ring at another offset.
            let mut fr = frames.clone();
            let k = fr.len();
            fr.rotate_left((i * k / a.cores.max(1)) % k.max(1));
            pmd.add_port(*port, Box::new(MemPort::new(&format!("mem{port}"), fr)), true);
            rx_ports.insert(*port);
        }
        for &p in ports.iter().chain([UPLINK].iter()) {
            if !rx_ports.contains(&p) {
                pmd.add_port(p, Box::new(SinkPort::new(&format!("sink{p}"))), false);
            }
        }
        pmds.push(pmd);
    }
    drop(up_tx);
    let stop = Arc::new(AtomicBool::new(false));
    let slow_stop = stop.clone();
    let pmd_stats: Vec<_> = pmds.iter().map(|p| p.stats.clone()).collect();
    let mut slow = SlowPath::new(of, shared.clone(), replies, pmd_stats.clone());
    let slow_h = std::thread::Builder::new()
        .name("sdnfwd-slowpath".into())
        .spawn(move || {
            slow.run(&up_rx, || slow_stop.load(Ordering::Relaxed));
            slow
        })
        .map_err(|e| e.to_string())?;
    // Connection tracking: the handshakes (or the churn ring once) on the
    // first loop, before the clock starts; a sweeper beside the slow path.
    let mut warm = None;
    if let Some(ct) = &ct {
        let rss0 = bench_ct::rss_bytes();
        let t = Instant::now();
        let ring0: Vec<(u32, Vec<Vec<u8>>)> = sc.sources.clone();
        // The slow path answers on its own thread: wait, without running
        // out the pending frames' timeout (counted in iterations).
        let sent =
            bench_ct::warm_up(&mut pmds[0], &sc.phases, &ring0, |_| std::thread::sleep(Duration::from_micros(20)))?;
        let after = ct_snap(ct, &pmd_stats);
        let rss1 = bench_ct::rss_bytes();
        warm = Some((sent, t.elapsed().as_secs_f64(), after, rss1.saturating_sub(rss0), ct.stats().n_conns));
        if a.pattern == Pattern::TcpEst {
            let est =
                ct.dump(None, fastpath::clock::now_ms()).iter().filter(|l| l.contains("state=ESTABLISHED")).count();
            if est != n_conns || after.created != n_conns as u64 || after.invalid != 0 {
                stop.store(true, Ordering::Relaxed);
                return Err(format!(
                    "tcp-est: after the handshakes {est} of {n_conns} connections are ESTABLISHED ({} created, {} \
                     invalid): the table or the frames do not open them",
                    after.created, after.invalid
                ));
            }
        }
    }
    let sweeper = ct.clone().map(|ct| {
        let stop = stop.clone();
        std::thread::Builder::new().name("sdnfwd-ct-sweep".into()).spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                ct.sweep(fastpath::clock::now_ms(), usize::MAX);
                std::thread::sleep(Duration::from_millis(SWEEP_MS));
            }
        })
    });
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let barrier = Arc::new(Barrier::new(pmds.len() + 1));
    let mut handles = Vec::new();
    let mut stats: Vec<Arc<PmdStats>> = Vec::new();
    let mut pinned = Vec::new();
    for (i, mut pmd) in pmds.into_iter().enumerate() {
        stats.push(pmd.stats.clone());
        let core = cores.get(a.first_core + i).copied();
        pinned.push(core.map(|c| c.id));
        let stop = stop.clone();
        let bar = barrier.clone();
        handles.push(spawn_pinned(format!("sdnfwd-pmd{i}"), core, move || {
            bar.wait();
            pmd.run(&stop);
            pmd
        })?);
    }
    barrier.wait();
    let snap = |s: &PmdStats| {
        (
            s.packets.load(Ordering::Relaxed),
            s.emc_hits.load(Ordering::Relaxed),
            s.megaflow_hits.load(Ordering::Relaxed),
            s.upcalls.load(Ordering::Relaxed),
            s.busy_ns.load(Ordering::Relaxed),
            s.drops.iter().map(|d| d.load(Ordering::Relaxed)).sum::<u64>(),
        )
    };
    std::thread::sleep(Duration::from_secs(1)); // warm-up: megaflows installed
    let base: Vec<_> = stats.iter().map(|s| snap(s)).collect();
    let ct_base = ct.as_ref().map(|ct| ct_snap(ct, &stats));
    let t0 = Instant::now();
    let tty = std::io::stderr().is_terminal() && !a.json;
    let mut last = base.clone();
    let mut last_t = t0;
    while t0.elapsed().as_secs_f64() < a.seconds {
        std::thread::sleep(Duration::from_millis(
            ((a.seconds - t0.elapsed().as_secs_f64()).clamp(0.0, 1.0) * 1000.0) as u64,
        ));
        if tty {
            let now: Vec<_> = stats.iter().map(|s| snap(s)).collect();
            let dt = last_t.elapsed().as_secs_f64();
            let pk: u64 = now.iter().zip(&last).map(|(n, l)| n.0 - l.0).sum();
            eprintln!("{:5.1}s  {:8.2} Mpps", t0.elapsed().as_secs_f64(), pk as f64 / dt / 1e6);
            last = now;
            last_t = Instant::now();
        }
    }
    let dt = t0.elapsed().as_secs_f64();
    let end: Vec<_> = stats.iter().map(|s| snap(s)).collect();
    let ct_run = ct.as_ref().zip(ct_base).map(|(ct, b)| ct_snap(ct, &stats).since(&b));
    stop.store(true, Ordering::Relaxed);
    let mut leaked = 0usize;
    for h in handles {
        let pmd = h.join().map_err(|_| "a poll loop panicked")?;
        leaked += pmd.pool().capacity() - pmd.pool().n_free();
    }
    let slow = slow_h.join().map_err(|_| "the slow path panicked")?;
    if let Some(Ok(h)) = sweeper {
        h.join().map_err(|_| "the sweeper panicked")?;
    }
    let baseline = if a.baseline {
        let frames: Vec<Vec<u8>> = sc.sources.iter().flat_map(|(_, f)| f.iter().cloned()).collect();
        Some(io_limit(frames, cores.get(a.first_core).copied(), a.seconds))
    } else {
        None
    };
    let per: Vec<(u64, u64, u64, u64, u64)> =
        end.iter().zip(&base).map(|(e, b)| (e.0 - b.0, e.1 - b.1, e.2 - b.2, e.3 - b.3, e.4 - b.4)).collect();
    let pk: u64 = per.iter().map(|p| p.0).sum();
    let emc: u64 = per.iter().map(|p| p.1).sum();
    let mf: u64 = per.iter().map(|p| p.2).sum();
    let ups: u64 = end.iter().map(|e| e.3).sum();
    let drops: u64 = end.iter().zip(&base).map(|(e, b)| e.5 - b.5).sum();
    let mpps = pk as f64 / dt / 1e6;
    let frac = |n: u64| if pk == 0 { 0.0 } else { n as f64 / pk as f64 };
    // What the tracker did with the measured frames, and whether that is
    // what the pattern means.
    let ct_check = ct_run.map(|d| ct_verdict_check(a.pattern, &d, pk, drops));
    let conns_per_sec = (a.pattern == Pattern::TcpNew).then(|| ct_run.map_or(0, |d| d.created) as f64 / dt);
    let ct_now = ct.as_ref().map(|ct| ct.stats());
    if a.json {
        let per_core: Vec<_> = per
            .iter()
            .zip(&pinned)
            .map(|(p, core)| {
                json!({"core": core, "mpps": p.0 as f64 / dt / 1e6, "ns_per_packet": if p.0 == 0 { 0.0 } else { p.4 as f64 / p.0 as f64 }})
            })
            .collect();
        let ct_json = ct_run.zip(ct_now).map(|(d, s)| {
            json!({"connections": s.n_conns, "created": d.created, "invalid": d.invalid, "full": d.full,
                   "expired": d.expired, "verdicts": {"est": d.verdicts[0], "new": d.verdicts[1],
                   "rel": d.verdicts[2], "inv": d.verdicts[3]}, "est_pct": d.pct(0),
                   "new_connections_per_sec": conns_per_sec, "scenario_connections": n_conns,
                   "warm_up": warm.map(|w| json!({"frames": w.0, "seconds": w.1, "created": w.2.created,
                        "invalid": w.2.invalid, "rss_growth_bytes": w.3, "connections": w.4})),
                   "check": ct_check.as_ref().map_or(Value::Null, |c| match c {
                        Ok(()) => Value::from("ok"), Err(e) => Value::from(e.as_str()) })})
        });
        let out = json!({
            "pattern": format!("{:?}", a.pattern), "flows": a.flows, "cores": a.cores, "seconds": dt,
            "frame_size": a.frame_size, "mpps": mpps, "per_core": per_core, "emc_hit": frac(emc),
            "megaflow_hit": frac(mf), "upcalls": ups, "megaflows": slow.n_megaflows(), "leaked_frames": leaked,
            "io_limit_mpps": baseline, "drops": drops, "conntrack": ct_json,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        println!(
            "sdnfwd bench: node {node}, pattern {:?}, {} flows, {}-byte frames, {} core(s), {:.1} s",
            a.pattern, a.flows, a.frame_size, a.cores, dt
        );
        for p in &pairs {
            println!(
                "  pods: {} (port {}) -> {}:{} (port {})",
                std::net::Ipv4Addr::from(p.cip),
                p.cport,
                std::net::Ipv4Addr::from(p.sip),
                p.dport,
                p.sport
            );
        }
        if let Some((sent, secs, w, rss, conns)) = warm {
            println!(
                "  warm-up: {sent} frames in {:.1} s: {} connections created, {} invalid, {conns} tracked; RSS +{:.1} MB \
                 ({:.0} bytes a connection)",
                secs,
                w.created,
                w.invalid,
                rss as f64 / 1e6,
                rss as f64 / conns.max(1) as f64
            );
        }
        for (i, (p, core)) in per.iter().zip(&pinned).enumerate() {
            println!(
                "  pmd {i} (core {}): {:.2} Mpps, {:.1} ns/packet",
                core.map_or("-".into(), |c| c.to_string()),
                p.0 as f64 / dt / 1e6,
                if p.0 == 0 { 0.0 } else { p.4 as f64 / p.0 as f64 }
            );
        }
        println!(
            "  total {mpps:.2} Mpps; EMC hits {:.1}%, megaflow hits {:.1}%, upcalls {ups}, megaflows {}, drops {drops}",
            100.0 * frac(emc),
            100.0 * frac(mf),
            slow.n_megaflows()
        );
        if let (Some(d), Some(s)) = (ct_run, ct_now) {
            println!(
                "  conntrack: {} connections; during the run {} created, {} invalid, {} full, {} swept; ct verdicts \
                 {} (est {:.2}%, new {:.2}%, rel {:.2}%, inv {:.2}%)",
                s.n_conns,
                d.created,
                d.invalid,
                d.full,
                d.expired,
                d.n_verdicts(),
                d.pct(0),
                d.pct(1),
                d.pct(2),
                d.pct(3)
            );
        }
        if let Some(r) = conns_per_sec {
            println!("  new connections: {:.3} M/s", r / 1e6);
        }
        if let Some(b) = baseline {
            println!(
                "  I/O limit on the same core (copy + free, no lookup): {b:.2} Mpps; ratio sdnfwd/io-limit {:.2}",
                mpps / a.cores.max(1) as f64 / b
            );
        }
        for (i, s) in stats.iter().enumerate() {
            print!("{}", s.show(pinned[i]));
        }
    }
    if leaked != 0 {
        return Err(format!("bench: {leaked} frames not returned to their pools"));
    }
    if let Some(Err(e)) = ct_check {
        return Err(format!("bench: the frames were not tracked as the pattern means: {e}"));
    }
    Ok(ExitCode::SUCCESS)
}

/// Milliseconds between the bench sweeper's passes over the tracker.
const SWEEP_MS: u64 = 100;

/// The least share of the measured frames that must be tracked as the
/// pattern means.
const TRACKED_AS_MEANT: f64 = 0.99;

/// Whether the tracker treated the measured frames as the pattern means:
/// tcp-est, at least 99 % of the `ct` verdicts +est, at most 1 % of the
/// frames creating a connection, invalid or dropped; tcp-new, at least 99 %
/// of the SYNs (half the frames) creating a connection, at most 1 % invalid
/// or dropped, none refused for a full table.
fn ct_verdict_check(p: Pattern, d: &CtDelta, packets: u64, drops: u64) -> Result<(), String> {
    let pk = packets.max(1) as f64;
    let low = 1.0 - TRACKED_AS_MEANT;
    if d.n_verdicts() == 0 {
        return Err("no frame went through the tracker".into());
    }
    if d.invalid as f64 > low * pk {
        return Err(format!("{} of {packets} frames were invalid (+inv)", d.invalid));
    }
    if drops as f64 > low * pk {
        return Err(format!("{drops} of {packets} frames were dropped"));
    }
    match p {
        Pattern::TcpEst => {
            if d.pct(0) < 100.0 * TRACKED_AS_MEANT {
                return Err(format!("only {:.2}% of the ct verdicts were +est", d.pct(0)));
            }
            if d.created as f64 > low * pk {
                return Err(format!("{} connections were created by established traffic", d.created));
            }
        }
        _ => {
            if (d.created as f64) < TRACKED_AS_MEANT * pk / 2.0 {
                return Err(format!("{} connections created by {} SYNs", d.created, packets / 2));
            }
            if d.full > 0 {
                return Err(format!("{} commits refused: the table was full", d.full));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(created: u64, invalid: u64, verdicts: [u64; 4]) -> CtDelta {
        CtDelta { created, invalid, verdicts, ..CtDelta::default() }
    }

    #[test]
    fn test_ct_check_fails_frames_not_tracked_as_meant() {
        // tcp-est: 1,000 frames, 2,500 ct verdicts.
        assert!(ct_verdict_check(Pattern::TcpEst, &delta(0, 0, [2500, 0, 0, 0]), 1000, 0).is_ok());
        assert!(ct_verdict_check(Pattern::TcpEst, &delta(0, 0, [2490, 10, 0, 0]), 1000, 0).is_ok());
        for (d, drops, why) in [
            (delta(0, 500, [1250, 0, 0, 1250]), 0, "invalid"),
            (delta(0, 0, [1250, 1250, 0, 0]), 0, "+est"),
            (delta(500, 0, [2475, 25, 0, 0]), 0, "created"),
            (delta(0, 0, [2500, 0, 0, 0]), 20, "dropped"),
            (delta(0, 0, [0; 4]), 0, "no frame"),
        ] {
            let e = ct_verdict_check(Pattern::TcpEst, &d, 1000, drops).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        // tcp-new: 1,000 frames, 500 SYNs.
        assert!(ct_verdict_check(Pattern::TcpNew, &delta(500, 0, [1000, 1000, 0, 0]), 1000, 0).is_ok());
        let e = ct_verdict_check(Pattern::TcpNew, &delta(10, 0, [1000, 1000, 0, 0]), 1000, 0).unwrap_err();
        assert!(e.contains("10 connections created by 500 SYNs"), "{e}");
        let full = CtDelta { full: 3, ..delta(500, 0, [1000, 1000, 0, 0]) };
        assert!(ct_verdict_check(Pattern::TcpNew, &full, 1000, 0).unwrap_err().contains("full"));
    }
}
