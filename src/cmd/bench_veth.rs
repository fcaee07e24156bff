//! `sdnfwd bench-veth`: one forwarder between two veth pairs, driven by
//! tools/pktgen, in namespaces it creates and removes (root). The
//! generator namespace plays pod web-1 and the sink namespace pod db-1 of
//! the embedded cluster's node-d; the forwarder's namespace holds their
//! host-side veths (vethw1, vethd1) and is one of:
//!
//! - `sdnfwd`: `sdnfwd run` with the rendered node-d table, one poll loop;
//! - `ovs-afxdp`: Open vSwitch's userspace datapath with `afxdp` ports and
//!   the same flows (`ovs-ofctl -O OpenFlow13 add-flows`), one PMD; for
//!   the tunnel scenarios with OVS's userspace VXLAN (vxlan0 on br0, the
//!   uplink on br-phy);
//! - `kernel`: a Linux bridge (the path a flannel-style node takes), with
//!   a kernel VXLAN device on it for the tunnel scenarios;
//! - `bare-xsk`: `pktgen fwd`, an AF_XDP receive→send loop without lookup
//!   (for pod→remote fed frames of the encapsulated size, so that it moves
//!   the bytes the tunnelling forwarders put on the uplink).
//!
//! The generator runs in web-1's namespace, pinned to one core; the
//! forwarder is pinned to the other. Its mode is picked as `pktgen gen
//! --mode auto` picks it (probed with `pktgen probe` on the generator's
//! interface): XDP live frames where the machine allows them (a pass
//! program stands in on the bridge's veth, which has no AF_XDP socket),
//! else AF_XDP TX, else AF_PACKET; `--gen-mode` fixes it, so that every
//! forwarder of a comparison is driven by the same generator
//! (tools/bench.sh probes once with `--probe-generator` and passes it on).
//! Reports the generator, what the sink received per second and the
//! forwarder's own time per packet (sdnfwd's pmd-stats, OVS's
//! pmd-stats-show).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use sdnfwd::netns::{run, Lab};
use serde_json::json;

/// Forwarders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Forwarder {
    /// sdnfwd (AF_XDP ports, the rendered multitenant table).
    Sdnfwd,
    /// Open vSwitch 3.1 userspace datapath, afxdp ports, same flows.
    OvsAfxdp,
    /// Linux bridge.
    Kernel,
    /// Bare AF_XDP rx→tx loop (no lookup).
    BareXsk,
}

/// Where the traffic goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// web-1 → db-1 on the node.
    PodPod,
    /// web-1 → web-2 on node-b: encapsulated onto the uplink.
    PodRemote,
    /// VXLAN from node-b on the uplink → db-1: decapsulated.
    RemotePod,
}

/// The generator's mode (as `pktgen gen --mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GenMode {
    /// The first of xdp, xsk, packet that this machine allows (probed).
    Auto,
    /// XDP live frames (BPF_PROG_RUN; some machines refuse it).
    Xdp,
    /// An AF_XDP socket's TX ring.
    Xsk,
    /// An AF_PACKET socket.
    Packet,
}

impl GenMode {
    fn name(self) -> &'static str {
        match self {
            GenMode::Auto => "auto",
            GenMode::Xdp => "xdp",
            GenMode::Xsk => "xsk",
            GenMode::Packet => "packet",
        }
    }
}

/// `sdnfwd bench-veth`.
#[derive(Args)]
pub struct BenchVethArgs {
    /// Traffic.
    #[arg(long, value_enum, default_value_t = Scenario::PodPod)]
    pub scenario: Scenario,
    /// What forwards.
    #[arg(long, value_enum, required_unless_present = "probe_generator")]
    pub forwarder: Option<Forwarder>,
    /// The generator's mode; `auto` probes this machine (`pktgen probe`).
    #[arg(long, value_enum, default_value_t = GenMode::Auto)]
    pub gen_mode: GenMode,
    /// Only probe which generator `auto` picks here, print it (one JSON
    /// line: `generator` and each mode's verdict) and exit.
    #[arg(long)]
    pub probe_generator: bool,
    /// Distinct flows (UDP source ports).
    #[arg(long, default_value_t = 1)]
    pub flows: u32,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Frame size.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Core of the forwarder.
    #[arg(long, default_value_t = 1)]
    pub fwd_core: usize,
    /// Core of the generator.
    #[arg(long, default_value_t = 0)]
    pub gen_core: usize,
    /// Path of the pktgen binary (default: beside sdnfwd).
    #[arg(long)]
    pub pktgen: Option<PathBuf>,
    /// Machine-readable result.
    #[arg(long)]
    pub json: bool,
    /// Print the forwarder's log and final statistics (sdnfwd) on stderr.
    #[arg(long)]
    pub verbose: bool,
}

/// A process killed (SIGINT, then SIGKILL) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.0.id().to_string()]).stderr(Stdio::null()).status();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `prog args` in namespace `ns` and waits for a stderr or stdout
/// line containing `ready`; the other lines are kept.
fn spawn_ready(
    ns: &str,
    prog: &Path,
    args: &[&str],
    ready: &str,
) -> Result<(Proc, std::sync::mpsc::Receiver<String>), String> {
    let mut c = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(prog)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", prog.display()))?;
    let (tx, rx) = std::sync::mpsc::channel();
    for s in [
        c.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        c.stderr.take().map(|s| Box::new(s) as _),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(s).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
    }
    let p = Proc(c);
    let end = Instant::now() + Duration::from_secs(30);
    let (ltx, lrx) = std::sync::mpsc::channel();
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(l) => {
                let done = l.contains(ready);
                let _ = ltx.send(l);
                if done {
                    break;
                }
            }
            Err(_) if Instant::now() > end => return Err(format!("{} not ready after 30 s", prog.display())),
            Err(_) => {}
        }
    }
    std::thread::spawn(move || {
        for l in rx {
            let _ = ltx.send(l);
        }
    });
    Ok((p, lrx))
}

/// Open vSwitch under a temp dir in namespace `ns`, br0 on the userspace
/// datapath with the two pod ports as afxdp ports.
struct Ovs {
    dir: PathBuf,
    ns: String,
}

impl Ovs {
    fn cmd(&self, prog: &str, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, prog])
            .args(args)
            .env("OVS_RUNDIR", &self.dir)
            .env("OVS_LOGDIR", &self.dir)
            .env("OVS_DBDIR", &self.dir)
            .env("OVS_SYSCONFDIR", &self.dir)
            .output()
            .map_err(|e| format!("{prog}: {e} (install openvswitch-switch)"))?;
        if !out.status.success() {
            return Err(format!("{prog} {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn p(&self, f: &str) -> String {
        self.dir.join(f).to_string_lossy().into_owned()
    }

    /// `uplink_mac`: also OVS's userspace tunnelling, as an OVS-based node
    /// does it: vxlan0 (port 1, flow-based remote and key) on br0, and a
    /// second bridge br-phy holding the uplink `eth0` (afxdp) whose
    /// internal port carries the node's VTEP address and the uplink's MAC,
    /// with node-b's VTEP in OVS's tunnel neighbour table.
    fn start(ns: &str, tag: &str, core: usize, flows: &str, uplink_mac: Option<&str>) -> Result<Ovs, String> {
        let dir = std::env::temp_dir().join(format!("{tag}-ovs"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let o = Ovs { dir, ns: ns.into() };
        let db = o.p("conf.db");
        o.cmd("ovsdb-tool", &["create", &db, "/usr/share/openvswitch/vswitch.ovsschema"])?;
        o.cmd(
            "ovsdb-server",
            &[
                &format!("--remote=punix:{}", o.p("db.sock")),
                &format!("--pidfile={}", o.p("ovsdb-server.pid")),
                &format!("--unixctl={}", o.p("ovsdb-server.ctl")),
                "--detach",
                "--no-chdir",
                &format!("--log-file={}", o.p("ovsdb-server.log")),
                &db,
            ],
        )?;
        o.vsctl(&["--no-wait", "init"])?;
        o.vsctl(&["--no-wait", "set", "Open_vSwitch", ".", &format!("other_config:pmd-cpu-mask={:#x}", 1u64 << core)])?;
        o.cmd(
            "ovs-vswitchd",
            &[
                &format!("unix:{}", o.p("db.sock")),
                &format!("--pidfile={}", o.p("ovs-vswitchd.pid")),
                &format!("--unixctl={}", o.p("vswitchd.ctl")),
                "--detach",
                "--no-chdir",
                &format!("--log-file={}", o.p("ovs-vswitchd.log")),
            ],
        )?;
        o.vsctl(&[
            "add-br",
            "br0",
            "--",
            "set",
            "bridge",
            "br0",
            "datapath_type=netdev",
            "fail_mode=secure",
            "protocols=OpenFlow10,OpenFlow13",
        ])?;
        for (port, ofport) in [("vethw1", "4"), ("vethd1", "5")] {
            o.vsctl(&[
                "add-port",
                "br0",
                port,
                "--",
                "set",
                "interface",
                port,
                "type=afxdp",
                &format!("ofport_request={ofport}"),
                "options:xdp-mode=native",
            ])?;
        }
        if let Some(mac) = uplink_mac {
            if !Path::new("/dev/net/tun").exists() {
                return Err("ovs-afxdp: br-phy's local port is a TAP device and /dev/net/tun is missing".into());
            }
            o.vsctl(&[
                "add-port",
                "br0",
                "vxlan0",
                "--",
                "set",
                "interface",
                "vxlan0",
                "type=vxlan",
                "options:remote_ip=flow",
                "options:key=flow",
                "options:dst_port=4789",
                "ofport_request=1",
            ])?;
            o.vsctl(&[
                "add-br",
                "br-phy",
                "--",
                "set",
                "bridge",
                "br-phy",
                "datapath_type=netdev",
                &format!("other-config:hwaddr={mac}"),
                "--",
                "add-port",
                "br-phy",
                "eth0",
                "--",
                "set",
                "interface",
                "eth0",
                "type=afxdp",
                "options:xdp-mode=native",
            ])?;
            o.cmd("ip", &["addr", "del", "172.16.1.25/24", "dev", "eth0"])?;
            o.cmd("ip", &["addr", "add", "172.16.1.25/24", "dev", "br-phy"])?;
            o.cmd("ip", &["link", "set", "br-phy", "up"])?;
            o.appctl(&["ovs/route/add", "172.16.1.0/24", "br-phy"])?;
            o.appctl(&["tnl/arp/set", "br-phy", "172.16.1.16", "02:00:00:00:01:16"])?;
        }
        // A port OVS cannot attach (no AF_XDP, no native XDP on veth, no
        // TAP for br-phy) is only a warning to ovs-vsctl; the run would
        // measure 0 Mpps. Its Interface row says why.
        let mut ports = vec!["vethw1", "vethd1"];
        if uplink_mac.is_some() {
            ports.extend(["vxlan0", "eth0"]);
        }
        for port in ports {
            let ofport = o.vsctl(&["get", "interface", port, "ofport"])?;
            if ofport.trim() == "-1" || ofport.trim() == "[]" {
                let err = o.vsctl(&["get", "interface", port, "error"]).unwrap_or_default();
                return Err(format!("ovs-afxdp: OVS could not attach {port}: {}", err.trim()));
            }
        }
        let f = o.p("flows.txt");
        std::fs::write(&f, flows).map_err(|e| e.to_string())?;
        o.cmd("ovs-ofctl", &["-O", "OpenFlow13", "del-flows", "br0"])?;
        o.cmd("ovs-ofctl", &["-O", "OpenFlow13", "add-flows", "br0", &f])?;
        // The PMD picks the ports up.
        std::thread::sleep(Duration::from_secs(2));
        Ok(o)
    }

    fn vsctl(&self, args: &[&str]) -> Result<String, String> {
        let db = format!("--db=unix:{}", self.p("db.sock"));
        let mut v = vec![db.as_str(), "--timeout=20"];
        v.extend_from_slice(args);
        self.cmd("ovs-vsctl", &v)
    }

    fn appctl(&self, args: &[&str]) -> Result<String, String> {
        let t = self.p("vswitchd.ctl");
        let mut v = vec!["-t", t.as_str()];
        v.extend_from_slice(args);
        self.cmd("ovs-appctl", &v)
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        for pid in ["ovs-vswitchd.pid", "ovsdb-server.pid"] {
            if let Ok(p) = std::fs::read_to_string(self.dir.join(pid)) {
                let _ = Command::new("kill").arg(p.trim()).status();
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The kernel's VXLAN path for the bridge (as a flannel-style node
/// tunnels): a VXLAN device on the bridge with project-a's VNI, this
/// node's VTEP as source, and web-2's MAC pinned behind node-b's VTEP in
/// the forwarding database, so that the bridge encapsulates frames to
/// web-2 and decapsulates VXLAN from node-b to the local pods.
fn kernel_vxlan(lab: &Lab, dut: &str) -> Result<(), String> {
    let c = config::yaml::Cluster::default_cluster();
    let vni = c.vnid("project-a").ok_or("project-a has no VNID")?.to_string();
    let (_, web2) = c.find_pod("project-a/web-2").ok_or("no pod project-a/web-2")?;
    let web2_mac = fastpath::wire::fmt_mac(web2.mac());
    let port = c.vxlan_port().to_string();
    lab.ip(
        Some(dut),
        &[
            "link",
            "add",
            "vxlan0",
            "type",
            "vxlan",
            "id",
            &vni,
            "local",
            "172.16.1.25",
            "dstport",
            &port,
            "dev",
            "eth0",
            "nolearning",
        ],
    )?;
    lab.ip(Some(dut), &["link", "set", "vxlan0", "master", "br0"])?;
    lab.ip(Some(dut), &["link", "set", "vxlan0", "up"])?;
    lab.exec(dut, "bridge", &["fdb", "add", &web2_mac, "dev", "vxlan0", "dst", "172.16.1.16", "self", "permanent"])?;
    lab.exec(dut, "bridge", &["fdb", "add", &web2_mac, "dev", "vxlan0", "master", "static"])?;
    Ok(())
}

/// A number after `key` in a text (first occurrence).
fn number_after(text: &str, key: &str) -> Option<f64> {
    let i = text.find(key)? + key.len();
    text[i..].split_whitespace().next()?.trim_matches(|c: char| !c.is_ascii_digit() && c != '.').parse().ok()
}

/// `pktgen probe` on `iface` in namespace `ns`: each mode's verdict, and
/// `auto`, the mode `--mode auto` would take.
fn probe_generator(pktgen: &Path, ns: &str, iface: &str) -> Result<serde_json::Value, String> {
    let p = pktgen.to_string_lossy();
    let out = Command::new("ip")
        .args(["netns", "exec", ns, &p, "probe", "--iface", iface, "--json"])
        .output()
        .map_err(|e| format!("{p}: {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("pktgen probe: {e}: {}", String::from_utf8_lossy(&out.stderr).trim()))?;
    if v["auto"].is_null() {
        return Err(format!("pktgen probe: no generator mode works on this machine: {v}"));
    }
    Ok(v)
}

/// The mode to drive the run with, and why (for the report header).
fn pick_generator(a: &BenchVethArgs, pktgen: &Path, ns: &str, iface: &str) -> Result<(GenMode, String), String> {
    if a.gen_mode != GenMode::Auto {
        return Ok((a.gen_mode, "given with --gen-mode".into()));
    }
    let v = probe_generator(pktgen, ns, iface)?;
    let mode = match v["auto"].as_str() {
        Some("xdp") => GenMode::Xdp,
        Some("xsk") => GenMode::Xsk,
        _ => GenMode::Packet,
    };
    let refused: Vec<String> = ["xdp", "xsk"]
        .iter()
        .filter(|m| v[**m]["ok"] == false)
        .map(|m| format!("{m} refused: {}", v[*m]["error"].as_str().unwrap_or("?")))
        .collect();
    let why =
        if refused.is_empty() { "auto, probed".to_string() } else { format!("auto, probed; {}", refused.join("; ")) };
    Ok((mode, why))
}

pub fn bench_veth(a: BenchVethArgs) -> Result<ExitCode, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let pktgen = a.pktgen.clone().unwrap_or_else(|| me.with_file_name("pktgen"));
    if !pktgen.exists() {
        return Err(format!("{}: not found (cargo build --release builds it)", pktgen.display()));
    }
    // Ctrl-C reaches the generator, sink and forwarder (one process group)
    // and ends them; this process then tears down instead of dying.
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupted.clone()).map_err(|e| e.to_string())?;
    }
    Lab::sweep_stale("sdb");
    if a.probe_generator {
        let mut lab = Lab::new("sdb");
        let (g, s) = (lab.ns("gen")?, lab.ns("sink")?);
        lab.veth(("eth0", Some(&g)), ("eth0", Some(&s)))?;
        let mut v = probe_generator(&pktgen, &g, "eth0")?;
        v["generator"] = v["auto"].clone();
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let forwarder = a.forwarder.ok_or("--forwarder is required")?;
    // A core the process may not use would leave the forwarder unpinned,
    // taskset failing, or OVS without a PMD (0 Mpps, silently).
    let allowed = sdnfwd::netns::allowed_cores();
    for (what, c) in [("--fwd-core", a.fwd_core), ("--gen-core", a.gen_core)] {
        if !allowed.contains(&c) {
            return Err(format!("bench-veth: {what} {c}: this process may use only CPUs {allowed:?}"));
        }
    }
    if a.fwd_core == a.gen_core {
        return Err(format!("bench-veth: the forwarder and the generator both on CPU {}: give two cores", a.fwd_core));
    }
    let mut lab = Lab::new("sdb");
    let dut = lab.ns("dut")?;
    let gen = lab.ns("gen")?;
    let sink = lab.ns("sink")?;
    let ul = lab.ns("ul")?;
    // Which namespace sits at each of the forwarder's three ports.
    let (w, d, u) = match a.scenario {
        Scenario::PodPod => (&gen, &sink, &ul),
        Scenario::PodRemote => (&gen, &ul, &sink),
        Scenario::RemotePod => (&ul, &sink, &gen),
    };
    lab.veth(("vethw1", Some(&dut)), ("eth0", Some(w)))?;
    lab.veth(("vethd1", Some(&dut)), ("eth0", Some(d)))?;
    lab.veth(("eth0", Some(&dut)), ("x0", Some(u)))?;
    lab.ip(Some(&dut), &["addr", "add", "172.16.1.25/24", "dev", "eth0"])?;
    // node-b's VTEP is "on the wire": a permanent neighbour entry (the
    // sink's AF_XDP socket would swallow ARP).
    lab.ip(
        Some(&dut),
        &["neigh", "add", "172.16.1.16", "lladdr", "02:00:00:00:01:16", "dev", "eth0", "nud", "permanent"],
    )?;
    let dut_mac =
        String::from_utf8_lossy(&lab.exec(&dut, "cat", &["/sys/class/net/eth0/address"])?.stdout).trim().to_string();
    let (gen_if, sink_if, fwd_in, fwd_out) = match a.scenario {
        Scenario::PodPod => ("eth0", "eth0", "vethw1", "vethd1"),
        Scenario::PodRemote => ("eth0", "x0", "vethw1", "eth0"),
        Scenario::RemotePod => ("x0", "eth0", "eth0", "vethd1"),
    };
    let (gen_mode, gen_why) = pick_generator(&a, &pktgen, &gen, gen_if)?;
    if !a.json {
        println!("generator: pktgen --mode {} ({gen_why})", gen_mode.name());
    }
    let cfg = std::env::temp_dir().join(format!("{}-cluster.yaml", lab.prefix()));
    std::fs::write(&cfg, config::yaml::DEFAULT_CLUSTER).map_err(|e| e.to_string())?;
    let cfg_s = cfg.to_string_lossy().into_owned();
    let core = a.fwd_core.to_string();
    let sock = std::env::temp_dir().join(format!("{}.ctl", lab.prefix())).to_string_lossy().into_owned();
    let mut held: Vec<Proc> = Vec::new();
    let mut ovs = None;
    let mut sdn_lines = None;
    match forwarder {
        Forwarder::Sdnfwd => {
            let (p, lines) = spawn_ready(
                &dut,
                &me,
                &["run", "--config", &cfg_s, "--node", "node-d", "--cores", &core, "--no-tun0", "--socket", &sock],
                " ready: ",
            )?;
            held.push(p);
            sdn_lines = Some(lines);
        }
        Forwarder::BareXsk => {
            let (p, _) =
                spawn_ready(&dut, &pktgen, &["fwd", "--in", fwd_in, "--out", fwd_out, "--core", &core], "forwarding")?;
            held.push(p);
        }
        Forwarder::Kernel => {
            lab.ip(Some(&dut), &["link", "add", "br0", "type", "bridge"])?;
            lab.ip(Some(&dut), &["link", "set", "br0", "up"])?;
            for v in ["vethw1", "vethd1"] {
                lab.ip(Some(&dut), &["link", "set", v, "master", "br0"])?;
            }
            if a.scenario != Scenario::PodPod {
                kernel_vxlan(&lab, &dut)?;
            }
            let (p, _) = spawn_ready(&dut, &pktgen, &["pass", "--iface", fwd_in], "ready")?;
            held.push(p);
        }
        Forwarder::OvsAfxdp => {
            let r = config::render::render(&config::yaml::Cluster::default_cluster(), "node-d")
                .map_err(|e| e.to_string())?;
            let text = config::ofctl::flow_file(&r.flows);
            let tunnel = (a.scenario != Scenario::PodPod).then_some(dut_mac.as_str());
            ovs = Some(Ovs::start(&dut, lab.prefix(), a.fwd_core, &text, tunnel)?);
        }
    }
    let secs = format!("{}", a.seconds + 4.0);
    let (sink_p, sink_lines) = spawn_ready(
        &sink,
        &pktgen,
        &["sink", "--iface", sink_if, "--seconds", &secs, "--idle", "1.5", "--ready", "--json"],
        "ready",
    )?;
    let flows = a.flows.to_string();
    // The bare loop is the I/O limit for the bytes a forwarder puts on the
    // wire: where the forwarders encapsulate (50 bytes more out than in),
    // it is fed frames of the encapsulated size.
    let sent_size = if forwarder == Forwarder::BareXsk && a.scenario == Scenario::PodRemote {
        a.size + fastpath::wire::VXLAN_ENCAP_LEN
    } else {
        a.size
    };
    let size = sent_size.to_string();
    let gsecs = a.seconds.to_string();
    let gcore = a.gen_core.to_string();
    let pk = pktgen.to_string_lossy().into_owned();
    let (src, dst) = match a.scenario {
        Scenario::PodPod => ("project-a/web-1", "project-a/db-1"),
        Scenario::PodRemote => ("project-a/web-1", "project-a/web-2"),
        Scenario::RemotePod => ("project-a/web-2", "project-a/db-1"),
    };
    let mut gargs = vec![
        "netns",
        "exec",
        &gen,
        "taskset",
        "-c",
        &gcore,
        &pk,
        "gen",
        "--iface",
        gen_if,
        "--mode",
        gen_mode.name(),
        "--cluster",
        &cfg_s,
        "--src",
        src,
        "--dst",
        dst,
        "--flows",
        &flows,
        "--size",
        &size,
        "--seconds",
        &gsecs,
        "--json",
    ];
    if a.scenario == Scenario::RemotePod {
        // VXLAN from node-b (VNI of project-a) to this node's VTEP.
        gargs.extend([
            "--vxlan",
            "11235",
            "--vtep-src",
            "172.16.1.16",
            "--vtep-dst",
            "172.16.1.25",
            "--outer-dst-mac",
            &dut_mac,
        ]);
    }
    let g = run("ip", &gargs)?;
    let gen_v: serde_json::Value = serde_json::from_slice(&g.stdout).map_err(|e| format!("pktgen gen output: {e}"))?;
    let mut sink_p = sink_p;
    let end = Instant::now() + Duration::from_secs_f64(a.seconds + 10.0);
    while sink_p.0.try_wait().ok().flatten().is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let sink_v: serde_json::Value = sink_lines
        .try_iter()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok().filter(|v| v.get("received").is_some()))
        .ok_or("no result from the sink")?;
    drop(sink_p);
    // The forwarder's own time per packet.
    let fwd_ns = match forwarder {
        Forwarder::Sdnfwd => {
            held.clear();
            let text: Vec<String> = sdn_lines.map(|r| r.try_iter().collect()).unwrap_or_default();
            if a.verbose {
                eprintln!("{}", text.join("\n"));
            }
            number_after(&text.join("\n"), "userspace:")
        }
        Forwarder::OvsAfxdp => {
            let s = ovs.as_ref().map(|o| o.appctl(&["dpif-netdev/pmd-stats-show"])).transpose()?.unwrap_or_default();
            // Cycles per packet at the core's clock; reported as cycles.
            number_after(&s, "avg processing cycles per packet:")
        }
        _ => None,
    };
    drop(held);
    drop(ovs);
    drop(lab);
    let _ = std::fs::remove_file(&cfg);
    let received = sink_v["received"].as_f64().unwrap_or(0.0);
    let rx_secs = a.seconds;
    let rx_mpps = received / rx_secs / 1e6;
    let unit = if forwarder == Forwarder::OvsAfxdp { "cycles/packet" } else { "ns/packet" };
    let v = json!({
        "forwarder": format!("{:?}", forwarder).to_lowercase(),
        "scenario": format!("{:?}", a.scenario),
        "generator": gen_mode.name(), "generator_mode": gen_v["mode"], "generator_choice": gen_why,
        "flows": a.flows, "frame_size": sent_size, "seconds": a.seconds,
        "generated_mpps": gen_v["mpps"], "received": sink_v["received"], "rx_mpps": rx_mpps,
        "lost": sink_v["lost"], "latency_us": sink_v["latency_us"],
        "forwarder_cost": fwd_ns, "forwarder_cost_unit": unit,
    });
    if a.json {
        println!("{v}");
    } else {
        println!(
            "{:?} {:?}: {:.3} Mpps received of {:.3} Mpps generated ({} flows, {} B){}",
            forwarder,
            a.scenario,
            rx_mpps,
            gen_v["mpps"].as_f64().unwrap_or(0.0),
            a.flows,
            sent_size,
            fwd_ns.map(|n| format!("; forwarder's own cost {n:.0} {unit}")).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
