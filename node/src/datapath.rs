//! The datapath a node runs, whoever drives it (`sdnfwd run` from its
//! config file, `sdnfwd vswitchd` from the OVS database): poll loops
//! pinned to their cores, one slow-path thread that owns the tables, the
//! connection tracker with its sweeper and, where the host's translations
//! are wanted, the thread that adopts them (slowpath/src/hostnat.rs).
//!
//! Ports are handed to the loops before they start (through
//! [`Datapath::pmds_mut`]) or while they run (through their command
//! channels): [`Datapath::add_xsk_port`] and [`Datapath::add_uplink`] do
//! either, whichever applies.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use fastpath::batch::UPLINK;
use fastpath::conntrack::{Conntrack, CtConfig};
use fastpath::pmd::{Pmd, PmdCommand};
use fastpath::port::api::Port;
use fastpath::port::memory::SharedPort;
use fastpath::port::uplink::{Leftover, UplinkProgram};
use fastpath::port::xsk::{XdpMode, XskConfig, XskPort};
use fastpath::shared::{Shared, TunnelState};
use fastpath::stats::PmdStats;
use fastpath::upcall::Upcall;
use slowpath::upcall::{Command, SlowPath};

use crate::control::{Control, NodeCall, OfPort};
use crate::logging::note as log;
use crate::sys::{pod_side_tx_off, spawn_pinned};

/// Connections the sweeper removes per call before it looks at `stop`
/// again.
const SWEEP_BUDGET: usize = 100_000;

/// The host's translations (kube-proxy's service DNAT through tun0): a
/// pod's connection from tun0 is looked up in the kernel's tracker.
pub struct HostNat {
    /// The kernel's tracker.
    pub kernel: slowpath::hostnat::KernelConntrack,
    /// Which sources are pods' (changed while running by whoever learns
    /// them later; read once per question, not per packet).
    pub scope: Arc<Mutex<HostScope>>,
}

/// The addresses whose connections from tun0 may be the host's
/// translations.
#[derive(Clone, Debug, Default)]
pub struct HostScope {
    /// The cluster networks (a pod's source address is in one).
    pub pods: Vec<config::yaml::Cidr>,
    /// tun0's own address (never a pod's).
    pub gw: u32,
}

/// What a datapath is made of.
pub struct Config {
    /// The poll loops' cores, one loop each.
    pub cores: Vec<usize>,
    /// The tracker's settings.
    pub ct: CtConfig,
    /// How long an idle loop may sleep (OVS's pmd-maxsleep).
    pub maxsleep: Duration,
    /// The tunnel state the loops start with.
    pub tunnel: TunnelState,
    /// The host's translations, if wanted.
    pub host_nat: Option<HostNat>,
}

/// How AF_XDP sockets are opened.
#[derive(Clone, Copy, Debug)]
pub struct XskOptions {
    /// XDP attach mode.
    pub mode: XdpMode,
    /// Ask for zero-copy.
    pub zero_copy: bool,
}

/// A running (or about to run) datapath.
pub struct Datapath {
    /// What the loops share with the slow path.
    pub shared: Arc<Shared>,
    /// The connection tracker.
    pub ct: Arc<Conntrack>,
    /// The loops' cores.
    pub cores: Vec<usize>,
    /// Each loop's command channel.
    pub controls: Vec<Sender<PmdCommand>>,
    /// Each loop's counters.
    pub stats: Vec<Arc<PmdStats>>,
    /// The slow path's command channel.
    pub slow: Sender<Command>,
    maxsleep: Duration,
    pmds: Vec<Pmd>,
    slow_path: Option<SlowPath>,
    slow_cmds: Receiver<Command>,
    upcalls: Receiver<Upcall>,
    host_nat: Option<(HostNat, Receiver<fastpath::hostnat::HostQuery>, Vec<Arc<AtomicU64>>)>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    loops: Vec<JoinHandle<Pmd>>,
    slow_thread: Option<JoinHandle<SlowPath>>,
}

impl Datapath {
    /// The loops (not started yet) and the slow path over `of`.
    pub fn new(cfg: Config, mut of: slowpath::Ofproto) -> Datapath {
        let shared = Arc::new(Shared::default());
        shared.tunnel.store(Arc::new(cfg.tunnel));
        let ct = Arc::new(Conntrack::new(cfg.ct));
        let (hq_tx, hq_rx) = crossbeam_channel::bounded::<fastpath::hostnat::HostQuery>(1024);
        let answered: Vec<Arc<AtomicU64>> = (0..cfg.cores.len()).map(|_| Arc::new(AtomicU64::new(0))).collect();
        if cfg.host_nat.is_some() {
            of.host_port = Some(slowpath::ofproto::TUN0_PORT);
        }
        let (up_tx, up_rx) = crossbeam_channel::bounded(4096);
        let (mut replies, mut pmds, mut controls) = (Vec::new(), Vec::new(), Vec::new());
        for (i, answered) in answered.iter().enumerate() {
            let (rtx, rrx) = crossbeam_channel::bounded(4096);
            replies.push(rtx);
            let mut pmd = Pmd::new(i, shared.clone(), up_tx.clone(), rrx, 16384, 100);
            pmd.set_conntrack(ct.clone());
            if cfg.host_nat.is_some() {
                pmd.set_host_nat(hq_tx.clone(), answered.clone());
            }
            let (ctx, crx) = crossbeam_channel::unbounded();
            pmd.set_control(crx);
            controls.push(ctx);
            pmds.push(pmd);
        }
        let stats: Vec<_> = pmds.iter().map(|p| p.stats.clone()).collect();
        let slow = SlowPath::new(of, shared.clone(), replies, stats.clone());
        let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
        Datapath {
            shared,
            ct,
            cores: cfg.cores,
            controls,
            stats,
            slow: cmd_tx,
            maxsleep: cfg.maxsleep,
            pmds,
            slow_path: Some(slow),
            slow_cmds: cmd_rx,
            upcalls: up_rx,
            host_nat: cfg.host_nat.map(|h| (h, hq_rx, answered)),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            loops: Vec::new(),
            slow_thread: None,
        }
    }

    /// The loops before [`Datapath::start`] (empty after).
    pub fn pmds_mut(&mut self) -> &mut [Pmd] {
        &mut self.pmds
    }

    /// Starts the slow path, the loops (pinned), the sweeper and the
    /// host-translation thread.
    ///
    /// # Errors
    /// A thread that cannot be made.
    pub fn start(&mut self) -> Result<(), String> {
        let Some(mut slow) = self.slow_path.take() else { return Ok(()) };
        let (up_rx, cmd_rx, stop) = (self.upcalls.clone(), self.slow_cmds.clone(), self.stop.clone());
        self.slow_thread = Some(
            std::thread::Builder::new()
                .name("sdnfwd-slowpath".into())
                .spawn(move || {
                    slow.run_with(&up_rx, &cmd_rx, || stop.load(Ordering::Relaxed));
                    slow
                })
                .map_err(|e| e.to_string())?,
        );
        let core_ids = core_affinity::get_core_ids().unwrap_or_default();
        for (i, mut pmd) in std::mem::take(&mut self.pmds).into_iter().enumerate() {
            let core = core_ids.iter().find(|c| c.id == self.cores[i]).copied();
            if core.is_none() {
                log(&format!("warning: core {} not available; loop {i} not pinned", self.cores[i]));
            }
            let (stop, maxsleep) = (self.stop.clone(), self.maxsleep);
            self.loops.push(spawn_pinned(format!("sdnfwd-pmd{i}"), core, move || {
                pmd.run_idle(&stop, maxsleep);
                pmd
            })?);
        }
        let (ct, stop) = (self.ct.clone(), self.stop.clone());
        self.threads.push(
            std::thread::Builder::new()
                .name("sdnfwd-ct-sweep".into())
                .spawn(move || sweep(&ct, &stop))
                .map_err(|e| format!("conntrack sweeper: {e}"))?,
        );
        if let Some((mut h, hq_rx, answered)) = self.host_nat.take() {
            let (ct, stop) = (self.ct.clone(), self.stop.clone());
            self.threads.push(
                std::thread::Builder::new()
                    .name("sdnfwd-host-nat".into())
                    .spawn(move || {
                        // A pod's packet (not tun0's own address) may be the
                        // host's translation of a service connection.
                        let wanted = |t: &fastpath::conntrack::CtTuple| {
                            let s = h.scope.lock().unwrap_or_else(|p| p.into_inner());
                            t.src != s.gw && s.pods.iter().any(|p| p.contains(Ipv4Addr::from(t.src)))
                        };
                        slowpath::hostnat::serve(&hq_rx, &answered, &ct, &mut h.kernel, wanted, &stop, log);
                    })
                    .map_err(|e| format!("host translations: {e}"))?,
            );
        }
        Ok(())
    }

    /// What ctl, metrics, OpenFlow and unixctl reach of the datapath.
    pub fn control(
        &self,
        node: &str,
        header: String,
        dpid: u64,
        node_calls: Sender<NodeCall>,
        of_ports: Arc<Mutex<Vec<OfPort>>>,
    ) -> Control {
        let probe = self.upcalls.clone();
        Control {
            header,
            node: node.to_string(),
            slow: self.slow.clone(),
            pmds: self.controls.clone(),
            stats: self.stats.iter().enumerate().map(|(i, s)| (self.cores[i], s.clone())).collect(),
            node_calls,
            baselines: Arc::new(Mutex::new(vec![Default::default(); self.cores.len()])),
            // The metrics' view of the upcall queue (a receiver does not
            // keep the channel open for senders).
            upcall_depth: Arc::new(move || probe.len()),
            dpid,
            of_ports,
            ct: self.ct.clone(),
            of_versions: Arc::new(std::sync::atomic::AtomicU32::new(slowpath::openflow::codec::ALL_VERSIONS)),
        }
    }

    /// Hands a port to the loops (directly before they start, by command
    /// after): `owner` receives from it, every loop may send to it.
    fn deliver(&mut self, ofport: u32, owner: usize, port: Box<dyn Port>) {
        let n = self.controls.len();
        let mut give = |i: usize, p: Box<dyn Port>| {
            if self.pmds.is_empty() {
                let _ = self.controls[i].send(PmdCommand::AddPort { ofport, port: p, rx: i == owner });
            } else {
                self.pmds[i].add_port(ofport, p, i == owner);
            }
        };
        if n == 1 {
            give(0, port);
        } else {
            let sp = SharedPort::new(port);
            for i in 0..n {
                give(i, Box::new(sp.clone()));
            }
        }
    }

    /// Opens an AF_XDP socket on `ifname` as port `ofport` (`what` says
    /// what it is, for the log), received by loop `owner` (mod their
    /// number). A veth whose other end is a pod's (`pod_side`) first gets
    /// TX checksum offload off on that end (DESIGN.md §8).
    ///
    /// # Errors
    /// The socket cannot be opened.
    pub fn add_xsk_port(
        &mut self,
        ofport: u32,
        ifname: &str,
        what: &str,
        owner: usize,
        o: XskOptions,
        pod_side: bool,
    ) -> Result<(), String> {
        if pod_side {
            match pod_side_tx_off(ifname) {
                Ok(peer) => log(&format!("TX checksum offload off on {peer} (pod side of {ifname})")),
                Err(e) => log(&format!("warning: {ifname}: cannot turn TX checksum offload off on the pod side: {e}")),
            }
        }
        let mut cfg = XskConfig::new(ifname);
        cfg.mode = o.mode;
        cfg.zero_copy = o.zero_copy;
        let port = XskPort::open(&cfg).map_err(|e| e.to_string())?;
        let (mode, zc) = port.mode();
        log(&format!(
            "port {ofport} ({ifname}, {what}) up: AF_XDP {mode} mode, {}",
            if zc { "zero-copy" } else { "copy" }
        ));
        self.deliver(ofport, owner % self.controls.len(), Box::new(port));
        Ok(())
    }

    /// Removes port `ofport` from every loop.
    pub fn remove_port(&self, ofport: u32) {
        for c in &self.controls {
            let _ = c.send(PmdCommand::RemovePort(ofport));
        }
    }

    /// The uplink `ifname`: an XDP program that takes VXLAN to
    /// `vtep_ip:udp_port` and passes the rest to the kernel, and one
    /// AF_XDP socket per receive queue (queue q received by loop q mod n,
    /// queue 0's socket sending for every loop). The program stays
    /// attached while the returned value lives.
    ///
    /// # Errors
    /// The program or a socket cannot be set up.
    pub fn add_uplink(
        &mut self,
        ifname: &str,
        o: XskOptions,
        vtep_ip: u32,
        udp_port: u16,
        leftover: Leftover,
    ) -> Result<UplinkProgram, String> {
        let mut prog =
            UplinkProgram::attach(ifname, o.mode, vtep_ip, udp_port, leftover).map_err(|e| format!("uplink: {e}"))?;
        if let Some(id) = prog.replaced() {
            log(&format!("uplink {ifname}: replaced the XDP program (id {id}) that a killed sdnfwd left"));
        }
        let queues = std::fs::read_dir(format!("/sys/class/net/{ifname}/queues"))
            .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count())
            .unwrap_or(1)
            .max(1);
        let n = self.controls.len();
        for q in 0..queues as u32 {
            let mut cfg = XskConfig::new(ifname);
            cfg.queue = q;
            cfg.mode = o.mode;
            cfg.zero_copy = o.zero_copy;
            cfg.inhibit_prog_load = true;
            let port = XskPort::open(&cfg).map_err(|e| format!("uplink: {e}"))?;
            prog.insert(q, port.fd()).map_err(|e| e.to_string())?;
            let owner = q as usize % n;
            let sp = SharedPort::new(Box::new(port));
            for i in 0..n {
                let p: Box<dyn Port> = Box::new(sp.clone());
                match (self.pmds.get_mut(i), q == 0) {
                    (Some(pmd), true) => pmd.add_port(UPLINK, p, i == owner),
                    (Some(pmd), false) if i == owner => pmd.add_rx_queue(UPLINK, p),
                    (None, true) => {
                        let _ = self.controls[i].send(PmdCommand::AddPort { ofport: UPLINK, port: p, rx: i == owner });
                    }
                    (None, false) if i == owner => {
                        let _ = self.controls[i].send(PmdCommand::AddRxQueue { ofport: UPLINK, port: p });
                    }
                    _ => {}
                }
            }
        }
        log(&format!(
            "uplink {ifname}: XDP program in {} mode takes VXLAN to {}:{udp_port} ({queues} queue(s)); the rest goes \
             to the kernel",
            prog.mode(),
            Ipv4Addr::from(vtep_ip),
        ));
        Ok(prog)
    }

    /// Stops every thread; the loops and the slow path as they ended.
    ///
    /// # Errors
    /// A thread that panicked.
    pub fn stop(mut self) -> Result<(Vec<Pmd>, Option<SlowPath>), String> {
        self.stop.store(true, Ordering::Relaxed);
        let mut finished = Vec::new();
        for h in self.loops.drain(..) {
            finished.push(h.join().map_err(|_| "a poll loop panicked")?);
        }
        let slow = match self.slow_thread.take() {
            Some(h) => Some(h.join().map_err(|_| "the slow path panicked")?),
            None => None,
        };
        for h in self.threads.drain(..) {
            h.join().map_err(|_| "a datapath thread (conntrack sweeper, host translations) panicked")?;
        }
        Ok((finished, slow))
    }
}

/// The conntrack sweeper: once a second, a walk over the tracker's table
/// removing expired connections (a walk reads 8 bytes per slot: 32 MiB at
/// the default limit, a few milliseconds); the poll loops never wait on it
/// (each removal takes one shard lock, briefly). An expired connection
/// that is not swept yet is already dead to lookups and dumps.
fn sweep(ct: &Conntrack, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        while ct.sweep(fastpath::clock::now_ms(), SWEEP_BUDGET) == SWEEP_BUDGET && !stop.load(Ordering::Relaxed) {}
        for _ in 0..10 {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
