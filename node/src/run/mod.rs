//! `sdnfwd run --config node.yaml`: the forwarder on a node. Poll loops on
//! the configured cores (pinned) serve the AF_XDP ports: each pod's veth
//! (host end), tun0 (port 2) and the uplink's queues (VXLAN to this node's
//! VTEP only: an XDP program passes the rest to the kernel). The slow path
//! runs on its own thread; the main thread keeps the underlay neighbours
//! (next-hop MAC per remote VTEP, from the kernel's ARP on the uplink),
//! attaches ports whose interface appears, applies cluster changes (SIGHUP
//! and `sdnfwd ctl reload` re-read the config, keeping what `sdnfwd ctl
//! hostsubnet/pod` changed; every change is checked whole first, node/src/state.rs;
//! only the difference of the rendered tables is applied, as one bundle),
//! and handles SIGINT or SIGTERM: every XDP program detached, tun0
//! removed, exit 0 with final stats. A control thread serves `sdnfwd ctl`
//! on a unix socket and, with `--metrics`, Prometheus text over HTTP.
//!
//! tun0 is one end of a veth pair whose other end (`tun0-dp`) is an AF_XDP
//! port: to the host it is the gateway device openshift-sdn creates (the
//! first address of the node's subnet, routes to the cluster and service
//! networks), and the datapath reaches it through rings in batches, where
//! a TAP device would cost a read or write system call per packet.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use config::ofctl::{FlowSpec, GroupSpec};
use fastpath::flow::LocalVtep;
use fastpath::port::uplink::Leftover;
use fastpath::shared::TunnelState;
use slowpath::tunnel::Neighbours;
use slowpath::upcall::Command;

use crate::control::{NodeCall, NodeRequest};
use crate::datapath::{Config as DpConfig, Datapath, HostNat, HostScope, XskOptions};
use crate::logging::{self, note as log, Level};
use crate::state::{FileState, NodeState};
use crate::sys::{if_exists, is_root, mac_of, run as sh, uplink_lock, UplinkLockError};
use crate::tables::node_tables_warning;

mod apply;
mod args;
mod ports;

use apply::{apply_state, Applied};
pub use args::{Mode, RunArgs};
use ports::{attach, of_ports, pod_specs, port_table, setup_tun0, PortSpec, TUN0_DP};

pub fn run(a: RunArgs) -> Result<ExitCode, String> {
    logging::init(a.log_level)?;
    a.ct_config().map_err(|e| format!("sdnfwd run: {e}"))?;
    if !is_root() {
        return Err("sdnfwd run: needs root (AF_XDP sockets, XDP programs, tun0)".into());
    }
    let file = FileState::read_as(&a.config, a.sdn_version)?;
    let node = match (&a.node, &file.cluster.node) {
        (Some(n), _) => n.clone(),
        (None, Some(n)) => n.name.clone(),
        (None, None) => return Err(format!("{}: no `node:` section (or pass --node NAME)", a.config)),
    };
    let state = NodeState::new(&node, file)?;
    let c = &state.cluster;
    let hs = c.host_subnet(&node).ok_or(format!("{}: node `{node}` has no HostSubnet", a.config))?.clone();
    let n = c.find_node(&node).cloned().ok_or(format!("{}: node `{node}` is not described", a.config))?;
    // The uplink is checked before anything is set up.
    if let Some(u) = &n.uplink {
        if !if_exists(u) {
            return Err(format!(
                "sdnfwd run: uplink `{u}` (node {node}'s `uplink:` in {}) is not an interface of this network \
                 namespace; nothing was set up",
                a.config
            ));
        }
        mac_of(u).map_err(|e| format!("sdnfwd run: uplink {e}; nothing was set up"))?;
    }
    // Held until the node is gone: a second sdnfwd on this uplink stops
    // here, before it touches tun0 or the uplink.
    let mut _uplink_lock = None;
    let leftover = match &n.uplink {
        None => Leftover::Refuse,
        Some(u) => match uplink_lock(u) {
            Ok(l) => {
                _uplink_lock = Some(l);
                Leftover::ReplaceOwn
            }
            Err(UplinkLockError::Held(why)) => return Err(format!("sdnfwd run: uplink: {why}; nothing was set up")),
            Err(UplinkLockError::Unavailable(why)) => {
                log(&format!(
                    "warning: uplink {u}: no lock file ({why}): an XDP program a killed sdnfwd left is not replaced"
                ));
                Leftover::Refuse
            }
        },
    };
    let (of, warnings) = node_tables_warning(c, &node, state.extra(), &a.config)?;
    for w in warnings {
        log(&format!("warning: {w}"));
    }
    let vtep_ip = u32::from(hs.host_ip.0);
    let gw = Ipv4Addr::from(hs.subnet.addr() + 1);

    // Ports.
    let mut specs = pod_specs(&n);
    if !a.no_tun0 {
        setup_tun0(c, gw, hs.subnet.prefix(), n.tun0_mac.as_deref())?;
        log(&format!("tun0 {gw}/{} (routes to the cluster and service networks)", hs.subnet.prefix()));
        specs.push(PortSpec {
            ofport: 2,
            ifname: TUN0_DP.into(),
            what: "tun0".into(),
            up: false,
            last_err: String::new(),
        });
    }
    let result = serve(&a, state, &node, of, &n, Vtep { ip: vtep_ip, leftover }, specs);
    if !a.no_tun0 {
        let _ = sh("ip", &["link", "del", "tun0"]);
        log("tun0 removed");
    }
    result
}

/// This node's VTEP: its address, and what to do with an sdnfwd XDP
/// program already on the uplink (replace it when the uplink's lock is
/// held).
struct Vtep {
    ip: u32,
    leftover: Leftover,
}

fn serve(
    a: &RunArgs,
    mut state: NodeState,
    node: &str,
    of: slowpath::Ofproto,
    n: &config::yaml::Node,
    vtep: Vtep,
    mut specs: Vec<PortSpec>,
) -> Result<ExitCode, String> {
    let Vtep { ip: vtep_ip, leftover } = vtep;
    let term = Arc::new(AtomicBool::new(false));
    for s in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(s, term.clone()).map_err(|e| format!("signal handler: {e}"))?;
    }
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .map_err(|e| format!("signal handler: {e}"))?;
    let c = state.cluster.clone();
    let mut flows: Vec<FlowSpec> = of.rules(None).iter().map(|r| r.spec.clone()).collect();
    let mut groups: Vec<GroupSpec> = of.groups().map(|g| (**g).clone()).collect();
    let vtep = LocalVtep { ip: vtep_ip, udp_port: c.vxlan_port(), port: 1 };
    let local_mac = match &n.uplink {
        Some(u) => mac_of(u)?,
        None => 0,
    };
    let cores: Vec<usize> = match (&a.cores[..], &n.cores[..]) {
        ([], []) => vec![0],
        ([], c) => c.to_vec(),
        (c, _) => c.to_vec(),
    };
    // The host's translations (kube-proxy's service DNAT), read from the
    // kernel's tracker for connections that come from tun0 (hostnat.rs).
    let host_nat = if a.no_tun0 {
        None
    } else {
        match slowpath::hostnat::KernelConntrack::open() {
            Ok(kernel) => {
                log("host translations: connections from tun0 adopt the kernel's service DNAT (ctnetlink)");
                Some(HostNat {
                    kernel,
                    scope: Arc::new(std::sync::Mutex::new(HostScope {
                        pods: c.cluster_network.cluster_networks.iter().map(|e| e.cidr).collect(),
                        gw: c.host_subnet(node).map_or(0, |h| h.subnet.addr() + 1),
                    })),
                })
            }
            Err(e) => {
                log(&format!(
                    "warning: host translations: {e}; replies to a service through tun0 keep the backend's address"
                ));
                None
            }
        }
    };
    let mut dp = Datapath::new(
        DpConfig {
            cores: cores.clone(),
            ct: a.ct_config()?,
            maxsleep: Duration::from_micros(a.pmd_maxsleep_us),
            tunnel: TunnelState { vtep: Some(vtep), local_mac, neighbours: Default::default() },
            host_nat,
        },
        of,
    );
    let xsk = XskOptions { mode: a.xdp_mode.xdp(), zero_copy: a.zero_copy };

    // Pod ports and tun0.
    for (k, s) in specs.iter_mut().enumerate() {
        if !if_exists(&s.ifname) {
            log(&format!(
                "port {} ({}, {}) is down: no such interface; attached when it appears",
                s.ofport, s.ifname, s.what
            ));
            continue;
        }
        attach(s, k, xsk, &mut dp).map_err(|e| format!("sdnfwd run: {e}"))?;
        s.up = true;
    }
    // Uplink: VXLAN to our VTEP only.
    let uplink_prog = match &n.uplink {
        Some(u) => {
            Some(dp.add_uplink(u, xsk, vtep_ip, c.vxlan_port(), leftover).map_err(|e| format!("sdnfwd run: {e}"))?)
        }
        None => {
            log("warning: no uplink configured: traffic to other nodes is dropped (no neighbour)");
            None
        }
    };
    dp.start()?;
    let cmd_tx = dp.slow.clone();
    let remote: Vec<Ipv4Addr> = c.host_subnets.iter().filter(|h| h.host != node).map(|h| h.host_ip.0).collect();
    let mut neigh = Neighbours::new(remote);
    // `state` is the cluster as the node runs it: the file, replaced by
    // SIGHUP or `ctl reload`, plus what `ctl hostsubnet/pod` changed.
    let (call_tx, call_rx) = crossbeam_channel::unbounded::<NodeCall>();
    let socket = a.socket.clone().unwrap_or_else(|| format!("/run/sdnfwd/{node}.ctl"));
    let listener = crate::ctl::bind(&socket).map_err(|e| format!("sdnfwd run: control socket {e}"))?;
    let header = format!(
        "node {node}: VTEP {}:{}, {} poll loop(s) on core(s) {:?}",
        Ipv4Addr::from(vtep_ip),
        c.vxlan_port(),
        cores.len(),
        cores
    );
    let of_port_list = Arc::new(std::sync::Mutex::new(of_ports(&specs, n.uplink.is_some())));
    let control = dp.control(node, header, (0x5d9f_u64 << 32) | vtep_ip as u64, call_tx, of_port_list.clone());
    let mut of_paths = Vec::new();
    for target in &a.openflow {
        let (client, path) =
            crate::openflow::listen(target, &control).map_err(|e| format!("sdnfwd run: --openflow {e}"))?;
        log(&format!("OpenFlow 1.0, 1.3-1.5 on {target} (ovs-ofctl ... {client})"));
        of_paths.extend(path);
    }
    if let Some(addr) = a.metrics {
        let l = std::net::TcpListener::bind(addr).map_err(|e| format!("sdnfwd run: metrics {addr}: {e}"))?;
        let c = control.clone();
        std::thread::Builder::new()
            .name("sdnfwd-metrics".into())
            .spawn(move || crate::ctl::serve_metrics(l, c))
            .map_err(|e| e.to_string())?;
        log(&format!("metrics on http://{addr}/metrics"));
    }
    std::thread::Builder::new()
        .name("sdnfwd-control".into())
        .spawn(move || crate::ctl::serve(listener, control))
        .map_err(|e| e.to_string())?;
    log(&format!("control socket {socket}"));
    log(&format!(
        "node {node} ready: {} poll loop(s) on core(s) {:?}, VTEP {}:{}",
        cores.len(),
        cores,
        Ipv4Addr::from(vtep_ip),
        c.vxlan_port()
    ));
    let mut last_tick = Instant::now() - Duration::from_secs(10);
    let mut last_stats = Instant::now();
    while !term.load(Ordering::Relaxed) {
        if last_tick.elapsed() >= Duration::from_millis(500) {
            last_tick = Instant::now();
            if n.uplink.is_some() && neigh.refresh(&mut |m| log(&m)) {
                let t = TunnelState {
                    vtep: Some(vtep),
                    local_mac,
                    neighbours: neigh.known.iter().map(|(k, v)| (*k, *v)).collect(),
                };
                let _ = cmd_tx.send(Command::Tunnel(t));
            }
            for (k, s) in specs.iter_mut().enumerate() {
                if !s.up && if_exists(&s.ifname) {
                    match attach(s, k, xsk, &mut dp) {
                        Ok(()) => s.up = true,
                        Err(e) if e != s.last_err => {
                            log(&format!("warning: port {} ({}) still down: {e}", s.ofport, s.ifname));
                            s.last_err = e;
                        }
                        Err(_) => {}
                    }
                }
            }
            *of_port_list.lock().unwrap_or_else(|p| p.into_inner()) = of_ports(&specs, n.uplink.is_some());
        }
        // A reload (SIGHUP, `ctl reload`) or a ctl change: the new state
        // is checked and applied whole, or not at all.
        // What was asked ("reload", or the ctl command) and how it went.
        let mut outcome: Option<(String, Result<Applied, String>)> = None;
        if hup.swap(false, Ordering::Relaxed) {
            let r = FileState::read_as(&a.config, a.sdn_version)
                .and_then(|f| state.with_file(f))
                .and_then(|next| apply_state(node, &state, next, (&flows, &groups), &specs, &cmd_tx));
            outcome = Some(("reload".into(), r));
        }
        if let Ok(NodeCall { req, reply }) = call_rx.try_recv() {
            let answer = match req {
                NodeRequest::Reload => {
                    let r = FileState::read_as(&a.config, a.sdn_version)
                        .and_then(|f| state.with_file(f))
                        .and_then(|next| apply_state(node, &state, next, (&flows, &groups), &specs, &cmd_tx));
                    let text = r.as_ref().map(|r| r.report.join("\n") + "\n").map_err(Clone::clone);
                    outcome = Some(("reload".into(), r));
                    text
                }
                NodeRequest::Edit(cmd, e) => {
                    let what = format!("ctl {cmd}");
                    let r = state.with_edit(&cmd, *e).and_then(|(next, msg)| {
                        apply_state(node, &state, next, (&flows, &groups), &specs, &cmd_tx).map(|r| (msg, r))
                    });
                    let text = r.as_ref().map(|(m, _)| m.clone()).map_err(Clone::clone);
                    if let Ok((m, _)) = &r {
                        log(&format!("ctl: {m}"));
                    }
                    outcome = Some((what, r.map(|(_, r)| r)));
                    text
                }
                NodeRequest::PodList => Ok(state.pod_list(|p| specs.iter().any(|s| s.ofport == p && s.up))),
                NodeRequest::HostSubnetList => Ok(state.hs_list()),
                NodeRequest::PolicyList => Ok(state.policy_list()),
                NodeRequest::Ports => Ok(port_table(&specs, &state, n.uplink.as_deref())),
            };
            let _ = reply.send(answer);
        }
        if let Some((what, outcome)) = outcome {
            match outcome {
                Ok(r) => {
                    for p in &r.removed_ports {
                        dp.remove_port(*p);
                    }
                    specs.retain(|s| !r.removed_ports.contains(&s.ofport));
                    specs.extend(r.new_ports);
                    neigh.vteps =
                        r.state.cluster.host_subnets.iter().filter(|h| h.host != node).map(|h| h.host_ip.0).collect();
                    flows = r.flows;
                    groups = r.groups;
                    state = r.state;
                    last_tick = Instant::now() - Duration::from_secs(10);
                }
                Err(e) => {
                    // The first line says what happened, the others what else is wrong.
                    for (i, l) in e.lines().enumerate() {
                        if i == 0 {
                            logging::log(
                                Level::Error,
                                &format!("{what}: refused, the running configuration is unchanged: {l}"),
                            );
                        } else {
                            logging::log(Level::Error, &format!("{what}: refused: {l}"));
                        }
                    }
                }
            }
        }
        if a.stats_interval > 0.0 && last_stats.elapsed().as_secs_f64() >= a.stats_interval {
            last_stats = Instant::now();
            for (i, s) in dp.stats.iter().enumerate() {
                eprint!("{}", s.show(Some(cores[i])));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    log("stopping");
    let _ = std::fs::remove_file(&socket);
    for p in &of_paths {
        let _ = std::fs::remove_file(p);
    }
    let control_ct = dp.ct.clone();
    let (finished, slow) = dp.stop()?;
    let slow = slow.ok_or("the slow path never ran")?;
    // Final stats.
    for (i, p) in finished.iter().enumerate() {
        print!("{}", p.stats.show(Some(cores[i])));
        let pk = p.stats.packets.load(Ordering::Relaxed).max(1) as f64;
        let (busy, sys) = (p.stats.busy_ns.load(Ordering::Relaxed) as f64, p.syscall_ns() as f64);
        println!(
            "  userspace: {:.1} ns/packet (processing minus {:.1} ns/packet in AF_XDP wakeup system calls)",
            (busy - sys).max(0.0) / pk,
            sys / pk
        );
        for ((ofport, name, pc), (_, detail)) in p.port_counters().into_iter().zip(p.port_details()) {
            println!(
                "  port {ofport} {name}: rx {} pkts {} bytes, tx {} pkts {} bytes; {detail}",
                pc.rx_packets, pc.rx_bytes, pc.tx_packets, pc.tx_bytes
            );
        }
    }
    println!("megaflows {}, upcalls handled {}", slow.n_megaflows(), slow.stats.upcalls);
    print!("{}", crate::ctl::ct_counters(&control_ct.stats()));
    for r in slow.ofproto.rules(None) {
        if r.n_packets.load(Ordering::Relaxed) > 0 {
            println!("{}", r.to_dump_line());
        }
    }
    drop(finished);
    drop(uplink_prog);
    log("XDP programs detached");
    Ok(ExitCode::SUCCESS)
}
