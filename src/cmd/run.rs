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

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use config::ofctl::{FlowCommand, FlowSpec, GroupCommand, GroupSpec};
use config::yaml::Cluster;
use crossbeam_channel::Sender;
use fastpath::batch::UPLINK;
use fastpath::conntrack::{Conntrack, CtConfig};
use fastpath::flow::LocalVtep;
use fastpath::pmd::{Pmd, PmdCommand};
use fastpath::port::api::Port;
use fastpath::port::memory::SharedPort;
use fastpath::port::uplink::{Leftover, UplinkProgram};
use fastpath::port::xsk::{XdpMode, XskConfig, XskPort};
use fastpath::shared::{Shared, TunnelState};
use sdnfwd::netns::{is_root, run as sh};
use slowpath::tunnel::{parse_mac, Neighbours};
use slowpath::upcall::{Command, SlowPath};

use super::common::{node_tables_warning, spawn_pinned};
use node::control::{NodeCall, NodeRequest};
use node::logging::{self, Level};
use node::state::{FileState, NodeState};

/// The datapath end of the tun0 veth pair.
pub const TUN0_DP: &str = "tun0-dp";

/// XDP attach mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Native, else generic.
    Auto,
    /// Native (driver) mode.
    Native,
    /// Generic (SKB) mode.
    Skb,
}

/// `sdnfwd run`.
#[derive(Args, Clone)]
pub struct RunArgs {
    /// Node configuration: a cluster YAML with this node's `node:` section.
    #[arg(long)]
    pub config: String,
    /// Node to act as (default: the config's `node:` section).
    #[arg(long)]
    pub node: Option<String>,
    /// The openshift-sdn rules to run: 3.11 or 4.13 (default: the node
    /// section's `sdnVersion`, else 3.11).
    #[arg(long, value_name = "VERSION", value_parser = super::common::parse_sdn_version)]
    pub sdn_version: Option<config::yaml::SdnVersion>,
    /// How XDP programs are attached.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub xdp_mode: Mode,
    /// Ask for zero-copy AF_XDP (drivers that lack it, veth included,
    /// refuse; the port then stays down with the reason logged).
    #[arg(long)]
    pub zero_copy: bool,
    /// Print pmd-stats every this many seconds (0: only at exit).
    #[arg(long, default_value_t = 0.0)]
    pub stats_interval: f64,
    /// Let an idle poll loop sleep up to this many microseconds (OVS's
    /// pmd-maxsleep; 0: poll without pause).
    #[arg(long, default_value_t = 0)]
    pub pmd_maxsleep_us: u64,
    /// Poll loop cores (comma-separated; default: the config's `cores`).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Control socket for `sdnfwd ctl` (default /run/sdnfwd/NODE.ctl).
    #[arg(long)]
    pub socket: Option<String>,
    /// Do not create tun0.
    #[arg(long)]
    pub no_tun0: bool,
    /// Log level (default: RUST_LOG's, else info). Lines carry a UTC
    /// timestamp and the level.
    #[arg(long, value_enum)]
    pub log_level: Option<Level>,
    /// Serve the tables over OpenFlow 1.0, 1.3, 1.4 and 1.5 for ovs-ofctl and controllers:
    /// `ptcp:PORT[:IP]` or `punix:PATH` (repeatable).
    #[arg(long, value_name = "TARGET")]
    pub openflow: Vec<String>,
    /// Connections the tracker holds at most (OVS's default; a commit
    /// beyond it is refused and counted). Sizes the tracker's hash table
    /// once, 8 bytes a slot, the next power of two above it.
    #[arg(long, default_value_t = fastpath::conntrack::types::DEFAULT_MAX_CONNS)]
    pub ct_max_conns: usize,
    /// A conntrack timeout, `NAME=SECONDS` with OVS's timeout-policy
    /// names (tcp_syn_sent, tcp_syn_recv, tcp_established, tcp_fin_wait,
    /// tcp_time_wait, tcp_close, udp_first, udp_single, udp_multiple,
    /// icmp_first, icmp_reply); repeatable or comma-separated.
    #[arg(long, value_name = "NAME=SECONDS", value_delimiter = ',')]
    pub ct_timeout: Vec<String>,
    /// Do not check TCP sequence numbers and windows (OVS's
    /// `dpctl/ct-disable-tcp-seq-chk`).
    #[arg(long)]
    pub ct_no_tcp_seq_check: bool,
}

impl RunArgs {
    /// The tracker's configuration from the flags.
    pub fn ct_config(&self) -> Result<CtConfig, String> {
        if self.ct_max_conns == 0 || self.ct_max_conns > 1 << 30 {
            return Err(format!("--ct-max-conns {}: out of range (1 to 2^30)", self.ct_max_conns));
        }
        let mut timeouts = fastpath::conntrack::Timeouts::default();
        for t in &self.ct_timeout {
            timeouts.set(t).map_err(|e| format!("--ct-timeout {e}"))?;
        }
        Ok(CtConfig {
            max_conns: self.ct_max_conns,
            timeouts,
            tcp_seq_check: !self.ct_no_tcp_seq_check,
            ..CtConfig::default()
        })
    }
}

/// An INFO line of the log (one that starts `warning: ` a WARN line).
fn log(msg: &str) {
    match msg.strip_prefix("warning: ") {
        Some(m) => logging::log(Level::Warn, m),
        None => logging::log(Level::Info, msg),
    }
}

fn if_exists(name: &str) -> bool {
    std::path::Path::new(&format!("/sys/class/net/{name}")).exists()
}

fn mac_of(ifname: &str) -> Result<u64, String> {
    let s =
        std::fs::read_to_string(format!("/sys/class/net/{ifname}/address")).map_err(|e| format!("{ifname}: {e}"))?;
    parse_mac(s.trim()).ok_or_else(|| format!("{ifname}: unreadable MAC `{}`", s.trim()))
}

/// `ip -j ARGS` as JSON.
fn ip_json(args: &[&str]) -> Result<serde_json::Value, String> {
    let mut v = vec!["-j"];
    v.extend_from_slice(args);
    serde_json::from_slice(&sh("ip", &v)?.stdout).map_err(|e| format!("ip {}: {e}", args.join(" ")))
}

/// The name of interface `index` in an `ip -j link show` listing.
fn ifname_of(links: &serde_json::Value, index: u64) -> Option<String> {
    links.as_array()?.iter().find(|x| x["ifindex"].as_u64() == Some(index))?["ifname"].as_str().map(str::to_string)
}

/// Turns TX checksum offload off on the pod end of a host veth (DESIGN.md
/// §8), finding the pod's namespace through the veth's link-netnsid.
fn pod_side_tx_off(veth: &str) -> Result<String, String> {
    let j = ip_json(&["-d", "link", "show", "dev", veth])?;
    let peer = j[0]["link_index"].as_u64().ok_or("no peer index (not a veth?)")?;
    let Some(nsid) = j[0]["link_netnsid"].as_u64() else {
        // Peer in this namespace.
        let name = ifname_of(&ip_json(&["link", "show"])?, peer).ok_or("peer not found")?;
        sh("ethtool", &["-K", &name, "tx", "off"])?;
        return Ok(name);
    };
    let ns = ip_json(&["netns", "list"])?
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"].as_u64() == Some(nsid)))
        .and_then(|x| x["name"].as_str())
        .ok_or(format!("the pod's namespace (netnsid {nsid}) has no name under /run/netns"))?
        .to_string();
    let name =
        ifname_of(&ip_json(&["-n", &ns, "link", "show"])?, peer).ok_or("peer not found in the pod's namespace")?;
    sh("ip", &["netns", "exec", &ns, "ethtool", "-K", &name, "tx", "off"])?;
    Ok(format!("{ns}/{name}"))
}

/// A port of the node and where it stands.
struct PortSpec {
    ofport: u32,
    ifname: String,
    what: String,
    up: bool,
    /// The last reason it could not be attached (logged once).
    last_err: String,
}

/// The node's ports as OpenFlow lists them: vxlan0, then tun0 and the
/// pods in port order.
fn of_ports(specs: &[PortSpec], uplink: bool) -> Vec<node::control::OfPort> {
    use node::control::OfPort;
    let mut v = vec![OfPort { ofport: 1, name: "vxlan0".into(), ifname: None, up: uplink }];
    for s in specs {
        let (name, ifname) =
            if s.ifname == TUN0_DP { ("tun0", "tun0") } else { (s.ifname.as_str(), s.ifname.as_str()) };
        v.push(OfPort { ofport: s.ofport, name: name.into(), ifname: Some(ifname.into()), up: s.up });
    }
    v.sort_by_key(|p| p.ofport);
    v
}

/// The node's pod ports as a config describes them.
fn pod_specs(n: &config::yaml::Node) -> Vec<PortSpec> {
    let mut v = Vec::new();
    for p in &n.pods {
        let Some(veth) = &p.veth else {
            log(&format!("warning: pod {}/{} lists no veth: port {} stays down", p.namespace, p.name, p.ofport));
            continue;
        };
        v.push(PortSpec {
            ofport: p.ofport,
            ifname: veth.clone(),
            what: format!("pod {}/{}", p.namespace, p.name),
            up: false,
            last_err: String::new(),
        });
    }
    v
}

/// Sets up tun0 (veth pair, address, routes) as openshift-sdn does.
fn setup_tun0(c: &Cluster, gw: Ipv4Addr, prefix: u8, mac: Option<&str>) -> Result<(), String> {
    if if_exists("tun0") {
        if if_exists(TUN0_DP) {
            log("removing a tun0 left by an earlier run");
            let _ = sh("ip", &["link", "del", "tun0"]);
        } else {
            return Err("tun0 exists and is not sdnfwd's (is Open vSwitch running br0 here?)".into());
        }
    }
    sh(
        "ip",
        &[
            "link",
            "add",
            "tun0",
            "numrxqueues",
            "1",
            "numtxqueues",
            "1",
            "type",
            "veth",
            "peer",
            "name",
            TUN0_DP,
            "numrxqueues",
            "1",
            "numtxqueues",
            "1",
        ],
    )?;
    if let Some(m) = mac {
        sh("ip", &["link", "set", "tun0", "address", m])?;
    }
    sh("ip", &["link", "set", "tun0", "mtu", "1450"])?;
    sh("ip", &["addr", "add", &format!("{gw}/{prefix}"), "dev", "tun0"])?;
    // The host sends through this veth: complete checksums (DESIGN.md §8).
    sh("ethtool", &["-K", "tun0", "tx", "off"])?;
    sh("ip", &["link", "set", TUN0_DP, "up"])?;
    sh("ip", &["link", "set", "tun0", "up"])?;
    for cn in &c.cluster_network.cluster_networks {
        sh("ip", &["route", "replace", &cn.cidr.to_string(), "dev", "tun0", "proto", "static"])?;
    }
    sh("ip", &["route", "replace", &c.cluster_network.service_network.to_string(), "dev", "tun0", "proto", "static"])?;
    Ok(())
}

fn xdp_mode(m: Mode) -> XdpMode {
    match m {
        Mode::Auto => XdpMode::Auto,
        Mode::Native => XdpMode::Native,
        Mode::Skb => XdpMode::Skb,
    }
}

/// Opens the port's socket and hands it to the loops: the owner receives,
/// every loop may send. A pod's veth first gets TX checksum offload off on
/// its pod side.
fn attach(
    spec: &PortSpec,
    owner: usize,
    a: &RunArgs,
    pmds: &mut [Pmd],
    controls: &[Sender<PmdCommand>],
) -> Result<(), String> {
    if spec.ifname.as_str() != TUN0_DP {
        match pod_side_tx_off(&spec.ifname) {
            Ok(peer) => log(&format!("TX checksum offload off on {peer} (pod side of {})", spec.ifname)),
            Err(e) => {
                log(&format!("warning: {}: cannot turn TX checksum offload off on the pod side: {e}", spec.ifname))
            }
        }
    }
    let mut cfg = XskConfig::new(&spec.ifname);
    cfg.mode = xdp_mode(a.xdp_mode);
    cfg.zero_copy = a.zero_copy;
    let port = XskPort::open(&cfg).map_err(|e| e.to_string())?;
    let (mode, zc) = port.mode();
    log(&format!(
        "port {} ({}, {}) up: AF_XDP {} mode, {}",
        spec.ofport,
        spec.ifname,
        spec.what,
        mode,
        if zc { "zero-copy" } else { "copy" }
    ));
    let n = if pmds.is_empty() { controls.len() } else { pmds.len() };
    let mut deliver = |i: usize, p: Box<dyn Port>| {
        if pmds.is_empty() {
            let _ = controls[i].send(PmdCommand::AddPort { ofport: spec.ofport, port: p, rx: i == owner });
        } else {
            pmds[i].add_port(spec.ofport, p, i == owner);
        }
    };
    if n == 1 {
        deliver(0, Box::new(port));
    } else {
        let sp = SharedPort::new(Box::new(port));
        for i in 0..n {
            deliver(i, Box::new(sp.clone()));
        }
    }
    Ok(())
}

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

/// Why the uplink's lock was not taken.
enum UplinkLockError {
    /// Another sdnfwd holds it.
    Held(String),
    /// The lock file cannot be made (no writable /run).
    Unavailable(String),
}

/// The lock that says a running sdnfwd owns uplink `ifname` of this
/// network namespace: a file under /run/sdnfwd locked for the life of the
/// process (the kernel drops the lock when the process dies, even by
/// SIGKILL, while the XDP program stays). Holding it, an sdnfwd XDP program
/// on the uplink can only be a dead one's, so it is replaced.
fn uplink_lock(ifname: &str) -> Result<std::fs::File, UplinkLockError> {
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::MetadataExt;
    let unavailable = |e: std::io::Error| UplinkLockError::Unavailable(e.to_string());
    let netns = std::fs::metadata("/proc/self/ns/net").map_err(unavailable)?.ino();
    std::fs::create_dir_all("/run/sdnfwd").map_err(unavailable)?;
    let path = format!("/run/sdnfwd/uplink-{netns}-{ifname}.lock");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(unavailable)?;
    match f.try_lock() {
        Ok(()) => {
            let _ = f.set_len(0);
            let _ = f.rewind();
            let _ = writeln!(f, "{}", std::process::id());
            Ok(f)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            Err(UplinkLockError::Held(format!(
                "{ifname}: another sdnfwd (pid {}) runs on it ({path} is locked)",
                pid.trim()
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(unavailable(e)),
    }
}

fn serve(
    a: &RunArgs,
    mut state: NodeState,
    node: &str,
    mut of: slowpath::Ofproto,
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
    let shared = Arc::new(Shared::default());
    let vtep = LocalVtep { ip: vtep_ip, udp_port: c.vxlan_port(), port: 1 };
    let local_mac = match &n.uplink {
        Some(u) => mac_of(u)?,
        None => 0,
    };
    shared.tunnel.store(Arc::new(TunnelState { vtep: Some(vtep), local_mac, neighbours: Default::default() }));

    let cores: Vec<usize> = match (&a.cores[..], &n.cores[..]) {
        ([], []) => vec![0],
        ([], c) => c.to_vec(),
        (c, _) => c.to_vec(),
    };
    // One connection tracker for the node, shared by the poll loops.
    let ct = Arc::new(Conntrack::new(a.ct_config()?));
    // The host's translations (kube-proxy's service DNAT), read from the
    // kernel's tracker for connections that come from tun0 (hostnat.rs).
    let kernel_ct = if a.no_tun0 {
        None
    } else {
        match slowpath::hostnat::KernelConntrack::open() {
            Ok(k) => {
                log("host translations: connections from tun0 adopt the kernel's service DNAT (ctnetlink)");
                Some(k)
            }
            Err(e) => {
                log(&format!(
                    "warning: host translations: {e}; replies to a service through tun0 keep the backend's address"
                ));
                None
            }
        }
    };
    let (hq_tx, hq_rx) = crossbeam_channel::bounded::<fastpath::hostnat::HostQuery>(1024);
    let answered: Vec<Arc<AtomicU64>> = (0..cores.len()).map(|_| Arc::new(AtomicU64::new(0))).collect();
    if kernel_ct.is_some() {
        of.host_port = Some(slowpath::ofproto::TUN0_PORT);
    }
    let (up_tx, up_rx) = crossbeam_channel::bounded(4096);
    let mut replies = Vec::new();
    let mut pmds = Vec::new();
    let mut controls = Vec::new();
    for (i, answered) in answered.iter().enumerate() {
        let (rtx, rrx) = crossbeam_channel::bounded(4096);
        replies.push(rtx);
        let mut pmd = Pmd::new(i, shared.clone(), up_tx.clone(), rrx, 16384, 100);
        pmd.set_conntrack(ct.clone());
        if kernel_ct.is_some() {
            pmd.set_host_nat(hq_tx.clone(), answered.clone());
        }
        let (ctx, crx) = crossbeam_channel::unbounded();
        pmd.set_control(crx);
        controls.push(ctx);
        pmds.push(pmd);
    }
    drop(up_tx);

    // Pod ports and tun0.
    for (k, s) in specs.iter_mut().enumerate() {
        if !if_exists(&s.ifname) {
            log(&format!(
                "port {} ({}, {}) is down: no such interface; attached when it appears",
                s.ofport, s.ifname, s.what
            ));
            continue;
        }
        attach(s, k % pmds.len(), a, &mut pmds, &[]).map_err(|e| format!("sdnfwd run: {e}"))?;
        s.up = true;
    }
    // Uplink: VXLAN to our VTEP only.
    let mut uplink_prog = None;
    if let Some(u) = &n.uplink {
        let mut prog = UplinkProgram::attach(u, xdp_mode(a.xdp_mode), vtep_ip, c.vxlan_port(), leftover)
            .map_err(|e| format!("sdnfwd run: uplink: {e}"))?;
        if let Some(id) = prog.replaced() {
            log(&format!("uplink {u}: replaced the XDP program (id {id}) that a killed sdnfwd left"));
        }
        let queues = std::fs::read_dir(format!("/sys/class/net/{u}/queues"))
            .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count())
            .unwrap_or(1)
            .max(1);
        for q in 0..queues as u32 {
            let mut cfg = XskConfig::new(u);
            cfg.queue = q;
            cfg.mode = xdp_mode(a.xdp_mode);
            cfg.zero_copy = a.zero_copy;
            cfg.inhibit_prog_load = true;
            let port = XskPort::open(&cfg).map_err(|e| format!("sdnfwd run: uplink: {e}"))?;
            prog.insert(q, port.fd()).map_err(|e| format!("sdnfwd run: {e}"))?;
            // Queue q is received by loop q mod n; queue 0's socket sends
            // for every loop.
            let owner = q as usize % pmds.len();
            let sp = SharedPort::new(Box::new(port));
            for (i, pmd) in pmds.iter_mut().enumerate() {
                if q == 0 {
                    pmd.add_port(UPLINK, Box::new(sp.clone()), i == owner);
                } else if i == owner {
                    pmd.add_rx_queue(UPLINK, Box::new(sp.clone()));
                }
            }
        }
        log(&format!(
            "uplink {u}: XDP program in {} mode takes VXLAN to {}:{} ({queues} queue(s)); the rest goes to the kernel",
            prog.mode(),
            Ipv4Addr::from(vtep_ip),
            c.vxlan_port()
        ));
        uplink_prog = Some(prog);
    } else {
        log("warning: no uplink configured: traffic to other nodes is dropped (no neighbour)");
    }

    // Slow path.
    let pmd_stats: Vec<_> = pmds.iter().map(|p| p.stats.clone()).collect();
    let mut slow = SlowPath::new(of, shared.clone(), replies, pmd_stats.clone());
    let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
    let stop = Arc::new(AtomicBool::new(false));
    let slow_stop = stop.clone();
    // The metrics' view of the upcall queue (a receiver does not keep the
    // channel open for senders).
    let up_rx_probe = up_rx.clone();
    let slow_h = std::thread::Builder::new()
        .name("sdnfwd-slowpath".into())
        .spawn(move || {
            slow.run_with(&up_rx, &cmd_rx, || slow_stop.load(Ordering::Relaxed));
            slow
        })
        .map_err(|e| e.to_string())?;
    // Poll loops.
    let core_ids = core_affinity::get_core_ids().unwrap_or_default();
    let maxsleep = Duration::from_micros(a.pmd_maxsleep_us);
    let mut handles = Vec::new();
    for (i, mut pmd) in pmds.into_iter().enumerate() {
        let core = core_ids.iter().find(|c| c.id == cores[i]).copied();
        if core.is_none() {
            log(&format!("warning: core {} not available; loop {i} not pinned", cores[i]));
        }
        let stop = stop.clone();
        handles.push(spawn_pinned(format!("sdnfwd-pmd{i}"), core, move || {
            pmd.run_idle(&stop, maxsleep);
            pmd
        })?);
    }
    let sweeper = spawn_sweeper(ct.clone(), stop.clone())?;
    drop(hq_tx);
    let host_nat = match kernel_ct {
        Some(mut kernel) => {
            let (ct, stop) = (ct.clone(), stop.clone());
            let pods: Vec<config::yaml::Cidr> = c.cluster_network.cluster_networks.iter().map(|e| e.cidr).collect();
            let gw = c.host_subnet(node).map_or(0, |h| h.subnet.addr() + 1);
            Some(
                std::thread::Builder::new()
                    .name("sdnfwd-host-nat".into())
                    .spawn(move || {
                        // A pod's packet (not tun0's own address) may be the
                        // host's translation of a service connection.
                        let wanted = |t: &fastpath::conntrack::CtTuple| {
                            t.src != gw && pods.iter().any(|p| p.contains(Ipv4Addr::from(t.src)))
                        };
                        slowpath::hostnat::serve(&hq_rx, &answered, &ct, &mut kernel, wanted, &stop, log);
                    })
                    .map_err(|e| format!("host translations: {e}"))?,
            )
        }
        None => None,
    };
    let remote: Vec<Ipv4Addr> = c.host_subnets.iter().filter(|h| h.host != node).map(|h| h.host_ip.0).collect();
    let mut neigh = Neighbours::new(remote);
    // `state` is the cluster as the node runs it: the file, replaced by
    // SIGHUP or `ctl reload`, plus what `ctl hostsubnet/pod` changed.
    let (call_tx, call_rx) = crossbeam_channel::unbounded::<NodeCall>();
    let socket = a.socket.clone().unwrap_or_else(|| format!("/run/sdnfwd/{node}.ctl"));
    let listener = super::ctl::bind(&socket).map_err(|e| format!("sdnfwd run: control socket {e}"))?;
    let control = node::control::Control {
        header: format!(
            "node {node}: VTEP {}:{}, {} poll loop(s) on core(s) {:?}",
            Ipv4Addr::from(vtep_ip),
            c.vxlan_port(),
            cores.len(),
            cores
        ),
        node: node.to_string(),
        slow: cmd_tx.clone(),
        pmds: controls.clone(),
        stats: pmd_stats.iter().enumerate().map(|(i, s)| (cores[i], s.clone())).collect(),
        node_calls: call_tx,
        baselines: Arc::new(std::sync::Mutex::new(vec![Default::default(); cores.len()])),
        upcall_depth: {
            let probe = up_rx_probe.clone();
            Arc::new(move || probe.len())
        },
        dpid: (0x5d9f_u64 << 32) | vtep_ip as u64,
        of_ports: Arc::new(std::sync::Mutex::new(of_ports(&specs, n.uplink.is_some()))),
        ct: ct.clone(),
    };
    let mut of_paths = Vec::new();
    for target in &a.openflow {
        let l = slowpath::openflow::Listener::bind(target).map_err(|e| format!("sdnfwd run: --openflow {e}"))?;
        log(&format!("OpenFlow 1.0, 1.3-1.5 on {target} (ovs-ofctl ... {})", l.client_target()));
        of_paths.extend(l.path().map(|p| p.to_path_buf()));
        let sw: Arc<dyn slowpath::openflow::Switch> = Arc::new(super::openflow::OfSwitch(control.clone()));
        std::thread::Builder::new()
            .name("sdnfwd-openflow".into())
            .spawn(move || l.serve(sw))
            .map_err(|e| e.to_string())?;
    }
    let of_port_list = control.of_ports.clone();
    if let Some(addr) = a.metrics {
        let l = std::net::TcpListener::bind(addr).map_err(|e| format!("sdnfwd run: metrics {addr}: {e}"))?;
        let c = control.clone();
        std::thread::Builder::new()
            .name("sdnfwd-metrics".into())
            .spawn(move || super::ctl::serve_metrics(l, c))
            .map_err(|e| e.to_string())?;
        log(&format!("metrics on http://{addr}/metrics"));
    }
    std::thread::Builder::new()
        .name("sdnfwd-control".into())
        .spawn(move || super::ctl::serve(listener, control))
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
                    match attach(s, k % controls.len(), a, &mut [], &controls) {
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
                        for ctl in &controls {
                            let _ = ctl.send(PmdCommand::RemovePort(*p));
                        }
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
            for (i, s) in pmd_stats.iter().enumerate() {
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
    stop.store(true, Ordering::Relaxed);
    let mut finished = Vec::new();
    for h in handles {
        finished.push(h.join().map_err(|_| "a poll loop panicked")?);
    }
    let slow = slow_h.join().map_err(|_| "the slow path panicked")?;
    sweeper.join().map_err(|_| "the conntrack sweeper panicked")?;
    if let Some(h) = host_nat {
        h.join().map_err(|_| "the host-translation thread panicked")?;
    }
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
    print!("{}", super::ctl::ct_counters(&ct.stats()));
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

/// Connections the sweeper removes per call before it looks at `stop`
/// again.
const SWEEP_BUDGET: usize = 100_000;

/// The conntrack sweeper: once a second, a walk over the tracker's table
/// removing expired connections (a walk reads 8 bytes per slot: 32 MiB at
/// the default limit, a few milliseconds); the poll loops never wait on it
/// (each removal takes one shard lock, briefly). An expired connection
/// that is not swept yet is already dead to lookups and dumps.
fn spawn_sweeper(ct: Arc<Conntrack>, stop: Arc<AtomicBool>) -> Result<std::thread::JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name("sdnfwd-ct-sweep".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                while ct.sweep(fastpath::clock::now_ms(), SWEEP_BUDGET) == SWEEP_BUDGET && !stop.load(Ordering::Relaxed)
                {
                }
                for _ in 0..10 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
        .map_err(|e| format!("conntrack sweeper: {e}"))
}

/// What a new state changed, once applied.
struct Applied {
    state: NodeState,
    flows: Vec<FlowSpec>,
    groups: Vec<GroupSpec>,
    removed_ports: Vec<u32>,
    new_ports: Vec<PortSpec>,
    /// The changes, one line each (`ctl reload` prints them, the log too).
    report: Vec<String>,
}

/// Makes the running node follow `next` (a reload or a ctl change, already
/// checked): its tables re-rendered and the difference applied as one
/// bundle, the set of ports with it, and which pod ports came, went or
/// changed interface worked out. A rendering or a flow update that fails
/// changes nothing (the ports set is put back).
fn apply_state(
    node: &str,
    cur: &NodeState,
    next: NodeState,
    (flows, groups): (&[FlowSpec], &[GroupSpec]),
    specs: &[PortSpec],
    cmd_tx: &Sender<Command>,
) -> Result<Applied, String> {
    needs_no_restart(node, cur, &next)?;
    let n = next
        .cluster
        .find_node(node)
        .cloned()
        .ok_or(format!("{}: node `{node}` is no longer described", next.file.path))?;
    let cores = |s: &NodeState| s.cluster.find_node(node).map(|n| n.cores.clone()).unwrap_or_default();
    if cores(cur) != cores(&next) {
        log(&format!(
            "reload: warning: node {node}'s cores changed ({:?} → {:?}): the poll loops keep theirs until a restart",
            cores(cur),
            cores(&next)
        ));
    }
    let (cmds, new, new_groups, ports, n_add, n_del, n_groups, regenerated) = match policy_only_change(node, cur, &next)
    {
        // Policies or labels only: the affected namespaces' policy
        // flows, as the networkpolicy plugin's sync does.
        Some(affected) => {
            let bundle = config::render::namespaces_bundle(&next.cluster, node, &affected)
                .map_err(|e| format!("{}: {}", next.file.path, e.0))?;
            let (new, n_del) = apply_to_list(flows, &bundle);
            let n_add = bundle.iter().filter(|c| matches!(c, FlowCommand::Add(_))).count();
            (bundle, new, groups.to_vec(), None, n_add, n_del, 0, Some(affected))
        }
        None => {
            let (of, warnings) = node_tables_warning(&next.cluster, node, next.extra(), &next.file.path)?;
            for w in warnings {
                log(&format!("reload: warning: {w}"));
            }
            let new: Vec<FlowSpec> = of.rules(None).iter().map(|r| r.spec.clone()).collect();
            let new_groups: Vec<GroupSpec> = of.groups().map(|g| (**g).clone()).collect();
            let flow_cmds = slowpath::ofproto::flow_diff(flows, &new);
            let (n_add, n_del) = flow_cmds.iter().fold((0, 0), |(x, y), c| match c {
                FlowCommand::Delete { .. } => (x, y + 1),
                _ => (x + 1, y),
            });
            // One bundle: groups added or changed first (new flows
            // point at them), then the flows, then the groups no flow
            // needs any more (4.13's egress-IP groups follow the
            // NetNamespaces' egressIPs).
            let (group_first, group_last) = group_diff(groups, &new_groups);
            let n_groups = group_first.len() + group_last.len();
            let mut cmds = group_first;
            cmds.extend(flow_cmds);
            cmds.extend(group_last);
            (cmds, new, new_groups, Some(of.ports.clone()), n_add, n_del, n_groups, None)
        }
    };
    // Ports first (outputs to a new pod must exist), then the flows; a
    // refused bundle puts the old ports back. The slow path answers once
    // the bundle is applied and the megaflows revalidated: the next packet
    // the loops see takes the new tables.
    let old_ports = cur_ports(cur, node);
    if let Some(p) = &ports {
        let _ = cmd_tx.send(Command::Ports(p.clone()));
    }
    let (rtx, rrx) = crossbeam_channel::bounded(1);
    cmd_tx.send(Command::FlowMods(cmds, rtx)).map_err(|_| "the slow path is gone".to_string())?;
    let r = rrx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "the slow path did not answer".to_string())
        .and_then(|r| r.map_err(|e| format!("flow update rejected: {e}")));
    if let Err(e) = r {
        if ports.is_some() {
            let _ = cmd_tx.send(Command::Ports(old_ports));
        }
        return Err(e);
    }
    let wanted = pod_specs(&n);
    let mut removed = Vec::new();
    for s in specs.iter().filter(|s| s.ifname != TUN0_DP) {
        if !wanted.iter().any(|w| w.ofport == s.ofport && w.ifname == s.ifname) {
            removed.push(s.ofport);
            log(&format!("reload: port {} ({}, {}) removed", s.ofport, s.ifname, s.what));
        }
    }
    let new_ports: Vec<PortSpec> = wanted
        .into_iter()
        .filter(|w| removed.contains(&w.ofport) || !specs.iter().any(|s| s.ofport == w.ofport))
        .collect();
    for p in &new_ports {
        log(&format!("reload: port {} ({}, {}) added", p.ofport, p.ifname, p.what));
    }
    let groups_changed = match n_groups {
        0 => String::new(),
        1 => ", 1 group added, changed or removed".into(),
        n => format!(", {n} groups added, changed or removed"),
    };
    let how = match &regenerated {
        Some(ns) if ns.is_empty() => "; policies only, no namespace's flows change".to_string(),
        Some(ns) => format!(
            "; policies only, one bundle regenerating namespace(s) {}",
            ns.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
        None => String::new(),
    };
    let mut report = vec![format!(
        "reload: {} flows ({n_add} added or changed, {n_del} removed{how}){groups_changed}, {} HostSubnets",
        new.len(),
        next.cluster.host_subnets.len()
    )];
    report.extend(cur.diff(&next).lines());
    for l in &report {
        log(l);
    }
    Ok(Applied { state: next, flows: new, groups: new_groups, removed_ports: removed, new_ports, report })
}

/// The group commands that turn the rendered groups `old` into `new`: adds
/// and modifications (to go before the flows), deletions (after them).
fn group_diff(old: &[GroupSpec], new: &[GroupSpec]) -> (Vec<FlowCommand>, Vec<FlowCommand>) {
    let before: HashMap<u32, &GroupSpec> = old.iter().map(|g| (g.group_id, g)).collect();
    let after: HashMap<u32, &GroupSpec> = new.iter().map(|g| (g.group_id, g)).collect();
    let mut first = Vec::new();
    for g in new {
        match before.get(&g.group_id) {
            None => first.push(FlowCommand::Group(GroupCommand::Add(g.clone()))),
            Some(o) if *o != g => first.push(FlowCommand::Group(GroupCommand::Modify(g.clone()))),
            Some(_) => {}
        }
    }
    let last = old
        .iter()
        .filter(|g| !after.contains_key(&g.group_id))
        .map(|g| FlowCommand::Group(GroupCommand::Delete(Some(g.group_id))))
        .collect();
    (first, last)
}

/// When `next` differs from `cur` only in NetworkPolicies and labels (of
/// Namespaces and Pods) under the networkpolicy plugin: the namespaces
/// whose policy flows that changes (`config::render::affected_namespaces`,
/// possibly none). None when anything else differs: the whole tables are
/// re-rendered and diffed. The comparison is of the two clusters with
/// those parts cleared, by their `Debug` text (every field, no list to
/// keep in step with the model; a spurious difference only costs a full
/// render).
fn policy_only_change(node: &str, cur: &NodeState, next: &NodeState) -> Option<std::collections::BTreeSet<String>> {
    if config::yaml::plugin_id(&next.cluster.cluster_network.plugin_name) != Some(2) || cur.extra() != next.extra() {
        return None;
    }
    let rest = |c: &Cluster| {
        let mut c = c.clone();
        c.network_policies.clear();
        c.origins = Default::default();
        c.warnings.clear();
        for n in &mut c.namespaces {
            n.metadata.labels.clear();
        }
        for p in &mut c.pods {
            p.metadata.labels.clear();
        }
        for n in c.node.iter_mut().chain(c.nodes.iter_mut()) {
            for p in &mut n.pods {
                p.labels.clear();
            }
        }
        format!("{c:?}")
    };
    if rest(&cur.cluster) != rest(&next.cluster) {
        return None;
    }
    Some(config::render::affected_namespaces(&cur.cluster, &next.cluster, node))
}

/// The rules `old` become once `cmds` (adds and non-strict deletes, what
/// `namespaces_bundle` sends) are applied, as the slow path applies them;
/// and how many of `old` were deleted.
fn apply_to_list(old: &[FlowSpec], cmds: &[FlowCommand]) -> (Vec<FlowSpec>, usize) {
    use slowpath::ofproto::flow_key;
    let mut v: Vec<Option<FlowSpec>> = old.iter().cloned().map(Some).collect();
    let mut index: std::collections::HashMap<_, usize> =
        old.iter().enumerate().map(|(i, s)| (flow_key(s), i)).collect();
    let mut n_del = 0;
    for c in cmds {
        match c {
            FlowCommand::Add(s) => match index.get(&flow_key(s)) {
                Some(&i) => v[i] = Some(s.clone()),
                None => {
                    index.insert(flow_key(s), v.len());
                    v.push(Some(s.clone()));
                }
            },
            FlowCommand::Delete { strict, spec } => {
                let ks = flow_key(spec);
                for slot in v.iter_mut() {
                    let Some(r) = slot else { continue };
                    if (spec.table_given && r.table != spec.table)
                        || r.cookie & spec.cookie_mask != spec.cookie & spec.cookie_mask
                    {
                        continue;
                    }
                    let m_ok = if *strict {
                        let kr = flow_key(r);
                        (kr.1, &kr.2, &kr.3) == (ks.1, &ks.2, &ks.3)
                    } else {
                        r.m.is_within(&spec.m)
                    };
                    if m_ok {
                        index.remove(&flow_key(r));
                        *slot = None;
                        n_del += 1;
                    }
                }
            }
            FlowCommand::Modify { .. } | FlowCommand::Group(_) => {}
        }
    }
    (v.into_iter().flatten().collect(), n_del)
}

/// What the node set up at start (tun0's address and routes, the uplink's
/// XDP program, the VTEP) a reload cannot change: such a change is refused,
/// naming what would need a restart.
fn needs_no_restart(node: &str, cur: &NodeState, next: &NodeState) -> Result<(), String> {
    let path = &next.file.path;
    let (a, b) = (&cur.cluster, &next.cluster);
    let mut v = Vec::new();
    let (ha, hb) = (a.host_subnet(node), b.host_subnet(node));
    if ha.map(|h| (h.host_ip, h.subnet)) != hb.map(|h| (h.host_ip, h.subnet)) {
        v.push(format!(
            "node {node}'s own HostSubnet changed ({} → {}): tun0's address and the VTEP",
            ha.map(|h| format!("{} {}", h.host_ip, h.subnet)).unwrap_or_default(),
            hb.map(|h| format!("{} {}", h.host_ip, h.subnet)).unwrap_or_default()
        ));
    }
    let (na, nb) = (a.find_node(node), b.find_node(node));
    if na.map(|n| &n.uplink) != nb.map(|n| &n.uplink) {
        v.push(format!("node {node}'s uplink changed"));
    }
    if na.map(|n| &n.tun0_mac) != nb.map(|n| &n.tun0_mac) {
        v.push(format!("node {node}'s tun0MAC changed"));
    }
    let nets = |c: &Cluster| {
        let cn = &c.cluster_network;
        (cn.cluster_networks.iter().map(|e| (e.cidr, e.host_subnet_length)).collect::<Vec<_>>(), cn.service_network)
    };
    if nets(a) != nets(b) {
        v.push("the cluster or service network changed: tun0's routes".into());
    }
    if a.vxlan_port() != b.vxlan_port() {
        v.push("vxlanPort changed: the uplink's XDP program".into());
    }
    if v.is_empty() {
        return Ok(());
    }
    Err(v
        .into_iter()
        .map(|w| format!("{path}: {w} (set up at start: restart sdnfwd to change it)"))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The OpenFlow ports a state has: vxlan0, tun0 and the node's pods.
fn cur_ports(s: &NodeState, node: &str) -> Option<std::collections::BTreeSet<u32>> {
    let mut ports: std::collections::BTreeSet<u32> = [1, 2].into();
    if let Some(n) = s.cluster.find_node(node) {
        ports.extend(n.pods.iter().map(|p| p.ofport));
    }
    Some(ports)
}

/// `show`'s list of ports: each with its interface, what it is (the pod
/// and its IP) and whether it is attached.
fn port_table(specs: &[PortSpec], state: &NodeState, uplink: Option<&str>) -> String {
    let mut out = String::new();
    match uplink {
        Some(u) => out += &format!("  port   1: vxlan0 (uplink {u})\n"),
        None => out += "  port   1: vxlan0 (no uplink)\n",
    }
    let mut v: Vec<&PortSpec> = specs.iter().collect();
    v.sort_by_key(|s| s.ofport);
    for s in v {
        let ip = state.pods().iter().find(|p| p.ofport == s.ofport).map(|p| format!(", {}", p.ip)).unwrap_or_default();
        let state = if s.up {
            "up".to_string()
        } else if s.last_err.is_empty() {
            "down (no interface yet)".into()
        } else {
            format!("down: {}", s.last_err)
        };
        out += &format!("  port {:>3}: {} ({}{ip}) {state}\n", s.ofport, s.ifname, s.what);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::common::node_tables;
    use node::state::{parse_edit, Edit};

    /// The networkpolicy test cluster as one file, edited by `edit`.
    fn file(v: config::yaml::SdnVersion, tag: &str, edit: impl Fn(String) -> String) -> FileState {
        let path = std::env::temp_dir().join(format!("sdnfwd-run-unit-{}-{v}-{tag}.yaml", std::process::id()));
        let text = format!(
            "{}\n---\n{}",
            include_str!("../../tests/data/np-node-d.yaml"),
            include_str!("../../tests/data/np-cluster-oc.yaml")
        );
        std::fs::write(&path, edit(text)).unwrap();
        let f = FileState::read_as(&path.to_string_lossy(), Some(v)).unwrap();
        let _ = std::fs::remove_file(&path);
        f
    }

    /// node-d of the networkpolicy test cluster.
    fn state(v: config::yaml::SdnVersion) -> NodeState {
        NodeState::new("node-d", file(v, "0", |t| t)).unwrap()
    }

    /// A reload whose file changes only a Namespace's labels regenerates
    /// the namespaces whose policies look at them; one that changes
    /// anything else re-renders.
    #[test]
    fn test_label_only_reload_is_one_namespace_bundle() {
        for v in [config::yaml::SdnVersion::V3_11, config::yaml::SdnVersion::V4_13] {
            let s = state(v);
            let relabelled = file(v, "1", |t| {
                t.replace(
                    "{kubernetes.io/metadata.name: default, name: default}",
                    "{kubernetes.io/metadata.name: default}",
                )
            });
            let next = s.with_file(relabelled).unwrap();
            let affected = policy_only_change("node-d", &s, &next).expect("labels only");
            assert_eq!(affected.iter().collect::<Vec<_>>(), ["project-a"], "{v}");
            let bundle = config::render::namespaces_bundle(&next.cluster, "node-d", &affected).unwrap();
            let (after, _) = apply_to_list(&rendered(&s), &bundle);
            assert_eq!(dump(&after), dump(&rendered(&next)), "{v}");
            let moved = file(v, "2", |t| t.replace("hostIP: 172.16.1.22", "hostIP: 172.16.1.23"));
            assert!(policy_only_change("node-d", &s, &s.with_file(moved).unwrap()).is_none(), "{v}");
        }
    }

    fn rendered(s: &NodeState) -> Vec<FlowSpec> {
        node_tables(&s.cluster, "node-d", s.extra(), "t").unwrap().rules(None).iter().map(|r| r.spec.clone()).collect()
    }

    fn dump(v: &[FlowSpec]) -> Vec<String> {
        let mut d: Vec<String> = v.iter().map(|f| f.to_dump_line(None)).collect();
        d.sort();
        d
    }

    /// A policy added or removed with ctl regenerates only its namespace,
    /// and the tables the node then keeps are the full render's.
    #[test]
    fn test_policy_change_is_one_namespace_bundle() {
        for v in [config::yaml::SdnVersion::V3_11, config::yaml::SdnVersion::V4_13] {
            let s = state(v);
            let np = "{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: deny, namespace: project-b}, spec: {podSelector: {}}}";
            let ps = config::load::network_policies("np.yaml", np).unwrap();
            let (next, msg) = s.with_edit("policy add np.yaml", Edit::AddPolicies(ps)).unwrap();
            assert_eq!(msg, "NetworkPolicy project-b/deny added");
            let affected = policy_only_change("node-d", &s, &next).expect("a policy-only change");
            assert_eq!(affected.into_iter().collect::<Vec<_>>(), ["project-b"]);
            let bundle =
                config::render::namespaces_bundle(&next.cluster, "node-d", &["project-b".into()].into()).unwrap();
            let (after, n_del) = apply_to_list(&rendered(&s), &bundle);
            assert_eq!(dump(&after), dump(&rendered(&next)), "{v}");
            assert!(n_del > 0 && dump(&after) != dump(&rendered(&s)), "{v}");
            // Deleted again: back to the start.
            let e = parse_edit("policy", &["del", "project-b/deny"]).unwrap();
            let (back, _) = next.with_edit("policy del project-b/deny", e).unwrap();
            let affected = policy_only_change("node-d", &next, &back).unwrap();
            let bundle = config::render::namespaces_bundle(&back.cluster, "node-d", &affected).unwrap();
            assert_eq!(dump(&apply_to_list(&after, &bundle).0), dump(&rendered(&s)), "{v}");
            // A pod added is not a policy change.
            let e = parse_edit("pod", &["add", "project-b/api-9", "10.131.0.9", "vethx", "9"]).unwrap();
            let (podded, _) = s.with_edit("pod add", e).unwrap();
            assert!(policy_only_change("node-d", &s, &podded).is_none());
        }
    }

    /// Policies added with ctl survive a reload; the file's own can be
    /// deleted; a refused add changes nothing.
    #[test]
    fn test_policies_survive_a_reload() {
        let s = state(config::yaml::SdnVersion::V4_13);
        let np = "kind: NetworkPolicy\napiVersion: networking.k8s.io/v1\nmetadata: {name: deny, namespace: project-b}\nspec: {podSelector: {}}\n";
        let ps = config::load::network_policies("np.yaml", np).unwrap();
        let (s2, _) = s.with_edit("policy add np.yaml", Edit::AddPolicies(ps.clone())).unwrap();
        let e = s2.with_edit("policy add np.yaml", Edit::AddPolicies(ps.clone())).unwrap_err();
        assert_eq!(
            e,
            "ctl policy add np.yaml: NetworkPolicy project-b/deny exists (`policy del project-b/deny` first)"
        );
        let mut other = ps.clone();
        other[0].metadata.namespace = Some("nowhere".into());
        let e = s2.with_edit("policy add np.yaml", Edit::AddPolicies(other)).unwrap_err();
        assert!(e.contains("namespace nowhere has no NetNamespace"), "{e}");
        let (s3, _) = s2
            .with_edit(
                "policy del project-a/p1-web-from-default",
                parse_edit("policy", &["del", "project-a/p1-web-from-default"]).unwrap(),
            )
            .unwrap();
        let list = s3.policy_list();
        assert!(
            list.contains("project-a/p2-db-from-web types=Ingress selects=1 pod(s) from=") && list.contains(".yaml:"),
            "{list}"
        );
        assert!(list.contains("project-b/deny types=Ingress selects=2 pod(s) from=`ctl policy add np.yaml`"), "{list}");
        assert!(!list.contains("p1-web"), "{list}");
        let r = s3.with_file(s3.file.clone()).unwrap();
        assert_eq!(r.policy_list(), list);
        assert_eq!(s3.diff(&r), Default::default());
        assert!(parse_edit("policy", &["del", "x"]).unwrap_err().contains("NAMESPACE/NAME"));
        assert!(s3
            .with_edit("policy del a/b", parse_edit("policy", &["del", "a/b"]).unwrap())
            .unwrap_err()
            .contains("no NetworkPolicy a/b"));
    }
}
