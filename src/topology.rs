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

fn fmt_mac(m: u64) -> String {
    let b = m.to_be_bytes();
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[2], b[3], b[4], b[5], b[6], b[7])
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
        let ns = self.add_node_ns(name, i)?;
        let node = self.cluster.find_node(name).ok_or(format!("node {name} is not described"))?.clone();
        let hs = self.cluster.host_subnet(name).ok_or("no HostSubnet")?.clone();
        let gw = Ipv4Addr::from(hs.subnet.addr() + 1);
        for p in &node.pods {
            let Some(veth) = &p.veth else { continue };
            let pns = self.lab.ns(&p.name)?;
            self.lab.veth((veth, Some(&ns)), ("eth0", Some(&pns)))?;
            self.lab.ip(Some(&pns), &["link", "set", "eth0", "address", &fmt_mac(p.mac())])?;
            self.lab.ip(Some(&pns), &["link", "set", "eth0", "mtu", "1450"])?;
            self.lab.ip(Some(&pns), &["addr", "add", &format!("{}/{}", p.ip, hs.subnet.prefix()), "dev", "eth0"])?;
            self.lab.ip(Some(&pns), &["route", "add", "default", "via", &gw.to_string()])?;
            for cn in &self.cluster.cluster_network.cluster_networks {
                self.lab.ip(Some(&pns), &["route", "add", &cn.cidr.to_string(), "dev", "eth0"])?;
            }
            // As the CNI plugin does for a userspace datapath (DESIGN.md §8).
            self.lab.tx_offload_off(&pns, "eth0")?;
            self.pod_ns.insert(format!("{}/{}", p.namespace, p.name), pns);
        }
        Ok(())
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
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns])
            .arg(&self.bin)
            .args(["run", "--config", &cfg, "--node", node])
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
        let r = run("ip", &["netns", "exec", from, &bin, "netcheck", "tcp-connect", &addr, "--timeout", "4"]);
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
