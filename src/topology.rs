//! A cluster in network namespaces: what `sdnfwd demo` builds and the
//! end-to-end tests assert on. Each node is a namespace with an uplink
//! `eth0` on an underlay bridge; pods are namespaces with real kernel
//! stacks, attached by a veth whose host end (named as the pod's `veth`)
//! sits in the node's namespace; sdnfwd nodes run `sdnfwd run` in their
//! namespace; a "kernel node" is a Linux VXLAN device (`ip link add …
//! type vxlan … dstport 4789`) with the first address of its HostSubnet.
//! Pods get what openshift-sdn gives them: the MAC derived from the IP, a
//! default route through tun0's address and an on-link route to the
//! cluster network.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use config::yaml::Cluster;
use slowpath::tunnel::fmt_mac;

use crate::netns::{run, Lab};

/// The underlay prefix length (all node IPs of a demo share one /24).
const UNDERLAY_PREFIX: u8 = 24;

/// A running `sdnfwd run`.
struct NodeProc {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
}

/// What a stopped node printed.
#[derive(Debug, Default)]
pub struct NodeExit {
    /// Exit status code (None: killed by a signal).
    pub code: Option<i32>,
    /// Its standard output (final stats, dump-flows counters).
    pub stdout: String,
    /// Its log.
    pub stderr: String,
}

/// The cluster in namespaces.
pub struct Topology {
    /// Namespaces and links (removed on drop, after the nodes stop).
    pub lab: Lab,
    /// The cluster.
    pub cluster: Cluster,
    config_path: PathBuf,
    bin: PathBuf,
    underlay: String,
    /// Node name -> namespace.
    pub node_ns: BTreeMap<String, String>,
    /// "namespace/pod" -> namespace.
    pub pod_ns: BTreeMap<String, String>,
    procs: BTreeMap<String, NodeProc>,
}

impl Topology {
    /// Builds the namespaces: underlay bridge, the sdnfwd nodes `nodes`
    /// with their pods, and optionally `kernel_node` as a Linux VXLAN
    /// node. `yaml` is the cluster's text (written for `sdnfwd run`);
    /// `bin` the sdnfwd binary.
    pub fn build(
        tag: &str,
        yaml: &str,
        nodes: &[&str],
        kernel_node: Option<&str>,
        bin: &Path,
    ) -> Result<Topology, String> {
        let cluster = Cluster::from_yaml(yaml).map_err(|e| e.to_string())?;
        let lab = Lab::new(tag);
        let config_path = std::env::temp_dir().join(format!("{}-cluster.yaml", lab.prefix()));
        std::fs::write(&config_path, yaml).map_err(|e| format!("{}: {e}", config_path.display()))?;
        let mut t = Topology {
            lab,
            cluster,
            config_path,
            bin: bin.to_path_buf(),
            underlay: String::new(),
            node_ns: BTreeMap::new(),
            pod_ns: BTreeMap::new(),
            procs: BTreeMap::new(),
        };
        t.underlay = t.lab.ns("ul")?;
        t.lab.ip(Some(&t.underlay), &["link", "add", "br-ul", "type", "bridge"])?;
        t.lab.ip(Some(&t.underlay), &["link", "set", "br-ul", "up"])?;
        for (i, &n) in nodes.iter().enumerate() {
            t.add_node(n, i)?;
        }
        if let Some(k) = kernel_node {
            t.add_kernel_node(k, nodes.len())?;
        }
        Ok(t)
    }

    /// A node namespace with its uplink on the underlay bridge.
    fn add_node_ns(&mut self, name: &str, i: usize) -> Result<String, String> {
        let hs = self.cluster.host_subnet(name).ok_or(format!("node {name} has no HostSubnet"))?.clone();
        let ns = self.lab.ns(name)?;
        let ul_end = format!("u{i}");
        self.lab.veth(("eth0", Some(&ns)), (&ul_end, Some(&self.underlay.clone())))?;
        let ul = self.underlay.clone();
        self.lab.ip(Some(&ul), &["link", "set", &ul_end, "master", "br-ul"])?;
        self.lab.ip(Some(&ns), &["addr", "add", &format!("{}/{UNDERLAY_PREFIX}", hs.host_ip), "dev", "eth0"])?;
        self.node_ns.insert(name.into(), ns.clone());
        Ok(ns)
    }

    fn add_node(&mut self, name: &str, i: usize) -> Result<(), String> {
        self.add_node_ns(name, i)?;
        let node = self.cluster.find_node(name).ok_or(format!("node {name} is not described"))?.clone();
        for p in &node.pods {
            self.add_pod(name, p)?;
        }
        Ok(())
    }

    /// A pod namespace attached to `node`'s namespace by a veth whose host
    /// end is named as the pod's `veth` (a CNI ADD).
    pub fn add_pod(&mut self, node: &str, p: &config::yaml::Pod) -> Result<(), String> {
        let Some(veth) = &p.veth else { return Ok(()) };
        let ns = self.node(node)?.to_string();
        let hs = self.cluster.host_subnet(node).ok_or("no HostSubnet")?.clone();
        let gw = Ipv4Addr::from(hs.subnet.addr() + 1);
        let pns = self.lab.ns(&p.name)?;
        self.lab.veth((veth, Some(&ns)), ("eth0", Some(&pns)))?;
        self.lab.ip(Some(&pns), &["link", "set", "eth0", "address", &fmt_mac(p.mac())])?;
        self.lab.ip(Some(&pns), &["link", "set", "eth0", "mtu", "1450"])?;
        self.lab.ip(Some(&pns), &["addr", "add", &format!("{}/{}", p.ip, hs.subnet.prefix()), "dev", "eth0"])?;
        self.lab.ip(Some(&pns), &["route", "add", "default", "via", &gw.to_string()])?;
        for cn in &self.cluster.cluster_network.cluster_networks {
            self.lab.ip(Some(&pns), &["route", "add", &cn.cidr.to_string(), "dev", "eth0"])?;
        }
        self.lab.ip(Some(&pns), &["route", "add", "224.0.0.0/4", "dev", "eth0"])?;
        // As the CNI plugin does for a userspace datapath (DESIGN.md §8).
        self.lab.tx_offload_off(&pns, "eth0")?;
        self.pod_ns.insert(format!("{}/{}", p.namespace, p.name), pns);
        Ok(())
    }

    /// Two namespaces on a Linux bridge (192.168.77.1 and .2): the kernel
    /// path, for comparisons.
    pub fn add_bridge_pair(&mut self) -> Result<(String, String), String> {
        let br = self.lab.ns("kbr")?;
        self.lab.ip(Some(&br), &["link", "add", "br0", "type", "bridge"])?;
        self.lab.ip(Some(&br), &["link", "set", "br0", "up"])?;
        let mut out = Vec::new();
        for (i, name) in ["ka", "kb"].iter().enumerate() {
            let ns = self.lab.ns(name)?;
            let end = format!("p{i}");
            self.lab.veth(("eth0", Some(&ns)), (&end, Some(&br)))?;
            self.lab.ip(Some(&br), &["link", "set", &end, "master", "br0"])?;
            self.lab.ip(Some(&ns), &["addr", "add", &format!("192.168.77.{}/24", i + 1), "dev", "eth0"])?;
            out.push(ns);
        }
        Ok((out[0].clone(), out[1].clone()))
    }

    /// Replaces the cluster YAML the nodes read (takes effect on
    /// [`Topology::reload`]).
    pub fn write_config(&self, yaml: &str) -> Result<(), String> {
        std::fs::write(&self.config_path, yaml).map_err(|e| format!("{}: {e}", self.config_path.display()))
    }

    /// Sends SIGHUP to a node and waits for its reload log line; returns it.
    pub fn reload(&self, node: &str) -> Result<String, String> {
        let p = self.procs.get(node).ok_or(format!("node {node} not running"))?;
        let before = p.stderr.lock().unwrap_or_else(|p| p.into_inner()).len();
        run("kill", &["-HUP", &p.child.id().to_string()])?;
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            let log = p.stderr.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(l) = log[before.min(log.len())..]
                .iter()
                .find(|l| l.contains("reload: ") && (l.contains(" flows (") || l.contains("unchanged")))
            {
                return Ok(l.clone());
            }
            drop(log);
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("{node} did not report the reload"))
    }

    /// A node whose overlay is the Linux kernel's VXLAN device (VNI 0, so
    /// it talks to global-VNID pods), flooding to every other node.
    fn add_kernel_node(&mut self, name: &str, i: usize) -> Result<(), String> {
        let ns = self.add_node_ns(name, i)?;
        let hs = self.cluster.host_subnet(name).ok_or("no HostSubnet")?.clone();
        let port = self.cluster.vxlan_port().to_string();
        let ip = hs.host_ip.to_string();
        self.lab.ip(
            Some(&ns),
            &["link", "add", "vxlan0", "type", "vxlan", "id", "0", "dstport", &port, "dev", "eth0", "local", &ip],
        )?;
        for h in &self.cluster.host_subnets {
            if h.host != name && self.node_ns.contains_key(&h.host) {
                let dst = h.host_ip.to_string();
                run(
                    "ip",
                    &[
                        "netns",
                        "exec",
                        &ns,
                        "bridge",
                        "fdb",
                        "append",
                        "00:00:00:00:00:00",
                        "dev",
                        "vxlan0",
                        "dst",
                        &dst,
                    ],
                )?;
            }
        }
        let gw = Ipv4Addr::from(hs.subnet.addr() + 1);
        self.lab.ip(Some(&ns), &["link", "set", "vxlan0", "mtu", "1450"])?;
        self.lab.ip(Some(&ns), &["addr", "add", &format!("{gw}/{}", hs.subnet.prefix()), "dev", "vxlan0"])?;
        self.lab.ip(Some(&ns), &["link", "set", "vxlan0", "up"])?;
        for cn in &self.cluster.cluster_network.cluster_networks {
            self.lab.ip(Some(&ns), &["route", "add", &cn.cidr.to_string(), "dev", "vxlan0"])?;
        }
        // A real wire carries complete checksums; this veth stands in for one.
        self.lab.tx_offload_off(&ns, "eth0")?;
        Ok(())
    }

    /// A namespace sending VXLAN from `ip` (an address no HostSubnet has)
    /// to `to_node`'s VTEP with VNI 0, its overlay address being `overlay`.
    pub fn add_rogue_vtep(&mut self, ip: &str, overlay: &str, to_node: &str) -> Result<String, String> {
        let i = self.node_ns.len() + 10;
        let ns = self.lab.ns("rogue")?;
        let ul_end = format!("u{i}");
        let ul = self.underlay.clone();
        self.lab.veth(("eth0", Some(&ns)), (&ul_end, Some(&ul)))?;
        self.lab.ip(Some(&ul), &["link", "set", &ul_end, "master", "br-ul"])?;
        self.lab.ip(Some(&ns), &["addr", "add", &format!("{ip}/{UNDERLAY_PREFIX}"), "dev", "eth0"])?;
        let dst = self.cluster.host_subnet(to_node).ok_or("no HostSubnet")?.host_ip.to_string();
        let port = self.cluster.vxlan_port().to_string();
        self.lab.ip(
            Some(&ns),
            &["link", "add", "vxlan0", "type", "vxlan", "id", "0", "dstport", &port, "dev", "eth0", "remote", &dst],
        )?;
        self.lab.ip(Some(&ns), &["addr", "add", overlay, "dev", "vxlan0"])?;
        self.lab.ip(Some(&ns), &["link", "set", "vxlan0", "up"])?;
        self.lab.tx_offload_off(&ns, "eth0")?;
        Ok(ns)
    }

    /// Starts `sdnfwd run` for `node` and waits until it is ready.
    pub fn start(&mut self, node: &str, extra: &[&str]) -> Result<(), String> {
        let ns = self.node_ns.get(node).ok_or(format!("no node {node}"))?.clone();
        let cfg = self.config_path.to_string_lossy().into_owned();
        let sock = self.socket(node);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns])
            .arg(&self.bin)
            .args(["run", "--config", &cfg, "--node", node, "--socket", &sock])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", self.bin.display()))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        for (src, dst) in [
            (child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>), stderr.clone()),
            (child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>), stdout.clone()),
        ] {
            if let Some(src) = src {
                std::thread::spawn(move || {
                    for l in BufReader::new(src).lines().map_while(Result::ok) {
                        dst.lock().unwrap_or_else(|p| p.into_inner()).push(l);
                    }
                });
            }
        }
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if stderr.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|l| l.contains(" ready: ")) {
                break;
            }
            if let Ok(Some(st)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                let log = stderr.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
                return Err(format!("sdnfwd run for {node} exited ({st}):\n{log}"));
            }
            if Instant::now() > end {
                let _ = child.kill();
                return Err(format!("sdnfwd run for {node} not ready after 30 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.procs.insert(node.into(), NodeProc { child, stderr, stdout });
        Ok(())
    }

    /// The cluster file the nodes run (`sdnfwd run --config`).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The sdnfwd binary the nodes run.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The control socket of a node (`sdnfwd ctl --socket`).
    pub fn socket(&self, node: &str) -> String {
        std::env::temp_dir().join(format!("{}-{node}.ctl", self.lab.prefix())).to_string_lossy().into_owned()
    }

    /// `sdnfwd ctl` against a node: its output, or its error.
    pub fn ctl(&self, node: &str, args: &[&str]) -> Result<String, String> {
        let sock = self.socket(node);
        let mut v = vec!["ctl", "--socket", &sock];
        v.extend_from_slice(args);
        let bin = self.bin.to_string_lossy().into_owned();
        run(&bin, &v).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// The log of a running node so far.
    pub fn log(&self, node: &str) -> String {
        self.procs.get(node).map(|p| p.stderr.lock().unwrap_or_else(|p| p.into_inner()).join("\n")).unwrap_or_default()
    }

    /// Stops a node with SIGINT and returns what it printed.
    pub fn stop(&mut self, node: &str) -> Result<NodeExit, String> {
        let mut p = self.procs.remove(node).ok_or(format!("node {node} not running"))?;
        // `ip netns exec` execs the binary, so the child's pid is sdnfwd's.
        let _ = Command::new("kill").args(["-INT", &p.child.id().to_string()]).status();
        let end = Instant::now() + Duration::from_secs(15);
        let st = loop {
            if let Ok(Some(st)) = p.child.try_wait() {
                break st;
            }
            if Instant::now() > end {
                let _ = p.child.kill();
                return Err(format!("sdnfwd run for {node} ignored SIGINT for 15 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(100));
        let j = |v: &Arc<Mutex<Vec<String>>>| v.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
        Ok(NodeExit { code: st.code(), stdout: j(&p.stdout), stderr: j(&p.stderr) })
    }

    /// Kills a node with SIGKILL, as a crash or the OOM killer would: it
    /// cleans nothing up.
    pub fn kill(&mut self, node: &str) -> Result<(), String> {
        let mut p = self.procs.remove(node).ok_or(format!("node {node} not running"))?;
        p.child.kill().map_err(|e| format!("kill {node}: {e}"))?;
        p.child.wait().map_err(|e| format!("wait {node}: {e}"))?;
        Ok(())
    }

    /// Namespace of pod "namespace/name".
    pub fn pod(&self, id: &str) -> Result<&str, String> {
        self.pod_ns.get(id).map(String::as_str).ok_or(format!("no pod {id}"))
    }

    /// Namespace of a node.
    pub fn node(&self, name: &str) -> Result<&str, String> {
        self.node_ns.get(name).map(String::as_str).ok_or(format!("no node {name}"))
    }

    /// Pings `ip` from namespace `ns` (`count` echoes, 1 s wait each);
    /// true when every echo was answered.
    pub fn ping(&self, ns: &str, ip: &str, count: u32) -> bool {
        let c = count.to_string();
        run("ip", &["netns", "exec", ns, "ping", "-c", &c, "-i", "0.2", "-W", "1", "-q", ip])
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("{count} received")))
            .unwrap_or(false)
    }

    /// A TCP connection from namespace `from` to `ip:port`, served by a
    /// listener in namespace `to`, with one line echoed.
    pub fn tcp(&self, from: &str, to: &str, ip: &str, port: u16) -> Result<(), String> {
        self.tcp_with(from, to, ip, port, 4.0, 1.0)
    }

    /// [`Topology::tcp`], trying for `timeout` seconds, each attempt
    /// waiting `connect_timeout` for the handshake (under 1 s: one SYN
    /// each, none retransmitted).
    ///
    /// # Errors
    /// No echo within the time (the client's error), or a listener that
    /// could not be started.
    pub fn tcp_with(
        &self,
        from: &str,
        to: &str,
        ip: &str,
        port: u16,
        timeout: f64,
        connect_timeout: f64,
    ) -> Result<(), String> {
        let bin = self.bin.to_string_lossy().into_owned();
        let listen = format!("0.0.0.0:{port}");
        let mut srv = Command::new("ip")
            .args(["netns", "exec", to, &bin, "netcheck", "tcp-listen", &listen, "--timeout", "8"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        // Wait for "listening".
        if let Some(out) = srv.stdout.take() {
            let mut l = String::new();
            let _ = BufReader::new(out).read_line(&mut l);
        }
        let addr = format!("{ip}:{port}");
        let (t, ct) = (timeout.to_string(), connect_timeout.to_string());
        let r = run(
            "ip",
            &["netns", "exec", from, &bin, "netcheck", "tcp-connect", &addr, "--timeout", &t, "--connect-timeout", &ct],
        );
        let _ = srv.kill();
        let _ = srv.wait();
        r.map(|_| ())
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let nodes: Vec<String> = self.procs.keys().cloned().collect();
        for n in nodes {
            if self.stop(&n).is_err() {
                if let Some(mut p) = self.procs.remove(&n) {
                    let _ = p.child.kill();
                    let _ = p.child.wait();
                }
            }
        }
        let _ = std::fs::remove_file(&self.config_path);
    }
}

/// A UDP burst from pod namespace `from` to `ip:port` served by a sink in
/// `to` (kernel sockets on both ends): (sent, received, seconds). `ip` may
/// be a multicast group, which the sink then joins.
pub fn udp_burst(
    t: &Topology,
    from: &str,
    to: &str,
    ip: &str,
    port: u16,
    secs: f64,
) -> Result<(u64, u64, f64), String> {
    let bin = t.bin.to_string_lossy().into_owned();
    let listen = format!("0.0.0.0:{port}");
    let sink_secs = format!("{}", secs + 1.5);
    let mut args = vec!["netns", "exec", to, &bin, "netcheck", "udp-sink", &listen, "--seconds", &sink_secs];
    // A multicast destination: the sink joins the group.
    if ip.parse::<Ipv4Addr>().is_ok_and(|a| a.is_multicast()) {
        args.extend(["--group", ip]);
    }
    let mut sink = Command::new("ip")
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut out = BufReader::new(sink.stdout.take().ok_or("no sink output")?);
    let mut l = String::new();
    let _ = out.read_line(&mut l);
    let addr = format!("{ip}:{port}");
    let s = format!("{secs}");
    let sent =
        run("ip", &["netns", "exec", from, &bin, "netcheck", "udp-send", &addr, "--seconds", &s, "--flows", "4"])?;
    let sent_text = String::from_utf8_lossy(&sent.stdout).into_owned();
    let num = |text: &str, word: &str| -> u64 {
        text.split_whitespace().skip_while(|w| *w != word).nth(1).and_then(|x| x.parse().ok()).unwrap_or(0)
    };
    let _ = sink.wait();
    let mut rest = String::new();
    for line in out.lines().map_while(Result::ok) {
        rest.push_str(&line);
        rest.push('\n');
    }
    Ok((num(&sent_text, "sent"), num(&rest, "received"), secs))
}

/// One check of the demo.
#[derive(Clone, Debug)]
pub struct Check {
    /// What was checked.
    pub what: String,
    /// Whether it held.
    pub ok: bool,
    /// A figure or a reason.
    pub detail: String,
}

/// The checks made and each stopped node's exit.
pub type Outcome = (Vec<Check>, Vec<(String, NodeExit)>);

/// The demo's scenarios on the embedded default cluster, with node-d and
/// node-b running sdnfwd and node-c as the kernel VXLAN node: each check is
/// reported as it completes; `interrupted` stops early (Ctrl-C). Ends
/// with a UDP burst through node-d and the nodes' exit (dump-flows
/// counters, pmd-stats), returned for printing.
pub fn default_cluster_checks(
    t: &mut Topology,
    interrupted: &dyn Fn() -> bool,
    report: &mut dyn FnMut(&Check),
) -> Result<Outcome, String> {
    let pod = |t: &Topology, id: &str| t.pod(id).map(str::to_string);
    let (web1, db1, api1, router1, web2) = (
        pod(t, "project-a/web-1")?,
        pod(t, "project-a/db-1")?,
        pod(t, "project-b/api-1")?,
        pod(t, "default/router-1")?,
        pod(t, "project-a/web-2")?,
    );
    let (nd, nb, nc) = (t.node("node-d")?.to_string(), t.node("node-b")?.to_string(), t.node("node-c")?.to_string());
    let rogue = t.add_rogue_vtep("172.16.1.200", "10.128.1.200/14", "node-d")?;
    let mut checks = Vec::new();
    let mut add = |c: Check, checks: &mut Vec<Check>| {
        report(&c);
        checks.push(c);
    };
    /// What a check does: ping (answered or not) or a TCP exchange.
    enum Probe<'a> {
        Ping { from: &'a str, ip: &'a str, count: u32, answered: bool },
        Tcp { from: &'a str, to: &'a str, ip: &'a str, port: u16 },
    }
    let probes = [
        (
            "ping pod→pod, one node (web-1 → db-1)",
            Probe::Ping { from: &web1, ip: "10.131.0.4", count: 3, answered: true },
        ),
        (
            "TCP pod→pod, one node (web-1 → db-1:5432)",
            Probe::Tcp { from: &web1, to: &db1, ip: "10.131.0.4", port: 5432 },
        ),
        (
            "ping pod→pod across nodes over VXLAN (web-1 → web-2)",
            Probe::Ping { from: &web1, ip: "10.129.0.7", count: 3, answered: true },
        ),
        (
            "TCP pod→pod across nodes (web-1 → web-2:8080)",
            Probe::Tcp { from: &web1, to: &web2, ip: "10.129.0.7", port: 8080 },
        ),
        (
            "TCP pod→pod across nodes (web-2 → web-1:8081)",
            Probe::Tcp { from: &web2, to: &web1, ip: "10.131.0.3", port: 8081 },
        ),
        (
            "ping pod→kernel VXLAN node (router-1 → node-c 10.130.0.1)",
            Probe::Ping { from: &router1, ip: "10.130.0.1", count: 3, answered: true },
        ),
        (
            "ping kernel VXLAN node→pod (node-c → router-1)",
            Probe::Ping { from: &nc, ip: "10.131.0.2", count: 3, answered: true },
        ),
        (
            "TCP kernel VXLAN node→pod (node-c → router-1:9000)",
            Probe::Tcp { from: &nc, to: &router1, ip: "10.131.0.2", port: 9000 },
        ),
        (
            "ping host→pod through tun0 (node-d → web-1)",
            Probe::Ping { from: &nd, ip: "10.131.0.3", count: 3, answered: true },
        ),
        (
            "TCP host→pod through tun0 (node-d → web-1:9001)",
            Probe::Tcp { from: &nd, to: &web1, ip: "10.131.0.3", port: 9001 },
        ),
        (
            "tenant isolation: project-a → project-b blocked, one node",
            Probe::Ping { from: &web1, ip: "10.131.0.5", count: 2, answered: false },
        ),
        (
            "tenant isolation: project-a → project-b blocked, across nodes",
            Probe::Ping { from: &web1, ip: "10.129.0.8", count: 2, answered: false },
        ),
        (
            "VNID 0 (default) → project-b allowed (router-1 → api-1)",
            Probe::Ping { from: &router1, ip: "10.131.0.5", count: 2, answered: true },
        ),
        (
            "TCP VNID 0 → project-b (router-1 → api-1:9002)",
            Probe::Tcp { from: &router1, to: &api1, ip: "10.131.0.5", port: 9002 },
        ),
        (
            "node IP still answers ping on the uplink (node-b → node-d)",
            Probe::Ping { from: &nb, ip: "172.16.1.25", count: 3, answered: true },
        ),
        (
            "node IP still answers TCP on the uplink (node-b → node-d:9003)",
            Probe::Tcp { from: &nb, to: &nd, ip: "172.16.1.25", port: 9003 },
        ),
        (
            "VXLAN from an unknown node dropped (172.16.1.200 → router-1)",
            Probe::Ping { from: &rogue, ip: "10.131.0.2", count: 2, answered: false },
        ),
    ];
    for (what, p) in &probes {
        if interrupted() {
            return Ok((checks, Vec::new()));
        }
        let (ok, detail) = match *p {
            Probe::Ping { from, ip, count, answered } => (t.ping(from, ip, count) == answered, String::new()),
            Probe::Tcp { from, to, ip, port } => match t.tcp(from, to, ip, port) {
                Ok(()) => (true, String::new()),
                Err(e) => (false, e),
            },
        };
        add(Check { what: what.to_string(), ok, detail }, &mut checks);
    }
    if interrupted() {
        return Ok((checks, Vec::new()));
    }
    // UDP bursts (kernel sockets at both ends: the generator, not sdnfwd,
    // is the limit here; tools/pktgen drives harder), and the same burst
    // through a Linux bridge between two namespaces for comparison.
    let (ka, kb) = t.add_bridge_pair()?;
    let kernel = udp_burst(t, &ka, &kb, "192.168.77.2", 7002, 2.0).map(|(_, got, secs)| got as f64 / secs);
    let bursts: [(&str, &str, &str, &str, u16); 2] = [
        ("UDP burst pod→pod, one node (web-1 → db-1", &web1, &db1, "10.131.0.4", 7000),
        ("UDP burst pod→pod across nodes, VXLAN (web-1 → web-2", &web1, &web2, "10.129.0.7", 7001),
    ];
    for (what, from, to, ip, port) in bursts {
        let (ok, detail) = match udp_burst(t, from, to, ip, port, 2.0) {
            Ok((sent, got, secs)) => {
                let pps = got as f64 / secs;
                let ratio = match &kernel {
                    Ok(k) if *k > 0.0 => format!("{:.2}", pps / k),
                    _ => "n/a".into(),
                };
                (
                    got > 0,
                    format!(
                        "{:.3} Mpps sent, {:.3} Mpps received; Linux bridge, same generator: {} Mpps; ratio {ratio}",
                        sent as f64 / secs / 1e6,
                        pps / 1e6,
                        kernel.as_ref().map(|k| format!("{:.3}", k / 1e6)).unwrap_or_else(|e| e.clone()),
                    ),
                )
            }
            Err(e) => (false, e),
        };
        add(Check { what: format!("{what}, 64-byte frames, 4 flows, 2 s)"), ok, detail }, &mut checks);
    }
    let mut exits = Vec::new();
    for n in ["node-d", "node-b"] {
        let e = t.stop(n)?;
        let ok = e.code == Some(0) && e.stderr.contains("XDP programs detached") && e.stderr.contains("tun0 removed");
        add(
            Check {
                what: format!("{n}: SIGINT detaches XDP, removes tun0, exits 0"),
                ok,
                detail: if ok { String::new() } else { format!("exit {:?}", e.code) },
            },
            &mut checks,
        );
        exits.push((n.to_string(), e));
    }
    let d = &exits[0].1.stdout;
    let counted = d.lines().any(|l| l.contains("table=10,") && l.contains("priority=0 ") && l.contains("n_packets="));
    add(
        Check {
            what: "node-d's table 10 counted the unknown VTEP's packets".into(),
            ok: counted,
            detail: String::new(),
        },
        &mut checks,
    );
    let eth0 = t.lab.ip(Some(&nd), &["link", "show", "eth0"]).map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let clean = eth0.is_ok_and(|s| !s.contains("xdp"))
        && t.lab.ip(Some(&nd), &["link"]).is_ok_and(|o| !String::from_utf8_lossy(&o.stdout).contains("tun0"));
    add(Check { what: "node-d left no XDP program and no tun0".into(), ok: clean, detail: String::new() }, &mut checks);
    Ok((checks, exits))
}

impl Topology {
    /// `sdnfwd ctl` against a node with `input` on its stdin (`policy add
    /// -`): its output.
    ///
    /// # Errors
    /// The command's error (its stderr), or why it could not run.
    pub fn ctl_stdin(&self, node: &str, args: &[&str], input: &str) -> Result<String, String> {
        use std::io::Write;
        let sock = self.socket(node);
        let mut c = std::process::Command::new(&self.bin)
            .args(["ctl", "--socket", &sock])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.bin.display()))?;
        if let Some(mut i) = c.stdin.take() {
            i.write_all(input.as_bytes()).map_err(|e| e.to_string())?;
        }
        let o = c.wait_with_output().map_err(|e| e.to_string())?;
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).into_owned())
        }
    }

    /// kube-proxy's iptables rules, as its iptables mode writes them, in
    /// `node`'s namespace: `svc:port` (TCP) DNAT to `backend:port`
    /// (KUBE-SERVICES from PREROUTING → KUBE-SVC-* → KUBE-SEP-*); IP
    /// forwarding on.
    ///
    /// # Errors
    /// An iptables command that failed (no `iptables`, no NAT in the
    /// kernel), naming it.
    pub fn kube_proxy_rules(&self, node: &str, svc: &str, port: u16, backend: &str) -> Result<(), String> {
        let ns = self.node(node)?.to_string();
        let p = port.to_string();
        let dest = format!("{backend}:{port}");
        let rules: [&[&str]; 7] = [
            &["-t", "nat", "-N", "KUBE-SERVICES"],
            &[
                "-t",
                "nat",
                "-A",
                "PREROUTING",
                "-m",
                "comment",
                "--comment",
                "kubernetes service portals",
                "-j",
                "KUBE-SERVICES",
            ],
            &["-t", "nat", "-N", "KUBE-SVC-WEB"],
            &["-t", "nat", "-A", "KUBE-SERVICES", "-d", svc, "-p", "tcp", "--dport", &p, "-j", "KUBE-SVC-WEB"],
            &["-t", "nat", "-N", "KUBE-SEP-WEB1"],
            &["-t", "nat", "-A", "KUBE-SVC-WEB", "-j", "KUBE-SEP-WEB1"],
            &["-t", "nat", "-A", "KUBE-SEP-WEB1", "-p", "tcp", "-m", "tcp", "-j", "DNAT", "--to-destination", &dest],
        ];
        for r in rules {
            let args: Vec<&str> = [&["netns", "exec", &ns, "iptables", "-w"][..], r].concat();
            run("ip", &args).map_err(|e| format!("{node}: iptables {}: {e}", r.join(" ")))?;
        }
        run("ip", &["netns", "exec", &ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"]).map(|_| ())
    }
}
