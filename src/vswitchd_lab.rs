//! The drop-in for ovs-vswitchd on real kernels: the embedded default
//! cluster in network namespaces (node-d and node-b with their pods, node-c
//! the Linux kernel's VXLAN device, as [`crate::topology`] builds them),
//! where each sdnfwd node runs Debian's `ovsdb-server` on a database of its
//! own and `sdnfwd vswitchd` in place of ovs-vswitchd, and is then set up
//! by the commands the OpenShift SDN daemon runs, replayed through the
//! stock `ovs-vsctl`, `ovs-ofctl` and `ovs-appctl`. `sdnfwd demo
//! --vswitchd` and tests/vswitchd_e2e.rs run the same checks
//! ([`dropin_checks`]).
//!
//! What is replayed (openshift/sdn, pkg/util/ovs/ovs.go and
//! pkg/network/node/{sdn_controller.go,ovscontroller.go}): `ovs-vsctl` with
//! `--timeout=30` and `ovs-ofctl` with `-O OpenFlow13` (ovsExec's
//! execWithStdin); SetupOVS's `--if-exists del-br br0`, `--may-exist add-br
//! br0 -- set Bridge br0 fail_mode=secure protocols=OpenFlow13`, `set-frags
//! br0 nx-match`, vxlan0 and tun0 with `ofport_request` 1 and 2, each
//! followed by `get Interface X ofport` (AddPort/GetOFPort), `get Interface
//! tun0 mac_in_use` (ensureTunMAC); setup()'s address and routes on tun0
//! (netlink there, `ip` here); one `add-port` per pod with its
//! `external_ids` (ensureOvsPort); the flows as one bundle (ovsExecTx's
//! Commit: `ovs-ofctl bundle br0 -` with `flow add` lines; node-b loads
//! them with `--bundle add-flows br0 -`, the same OpenFlow bundle); the
//! table 253 version note (FinishSetupOVS) and `dump-flows br0 table=253`
//! (AlreadySetUp). The flows are `sdnfwd render`'s for the node, with the
//! tun0 MAC the database reported, as the daemon renders its egress-IP
//! flows with it.
//!
//! One departure: openshift-sdn asks no number for a pod's port and writes
//! that pod's flows with the number it gets; here every pod asks for the
//! number the rendered flows give it (`ofport_request`, AddPort's other
//! form), so that one rendering serves.
//!
//! Everything lives under the [`Lab`](crate::netns::Lab)'s prefix: the
//! namespaces, and one directory per node (`OVS_RUNDIR`, `OVS_DBDIR` and
//! `OVS_LOGDIR`) under the temp dir; all of it, and every process started
//! here, goes on drop, after a failure too.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use node::bridge::openshift_sdn;

use crate::topology::{Check, Topology};

/// The schema Debian's `openvswitch-switch` installs.
pub const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// The programs of Open vSwitch the scenario needs (Debian's
/// `openvswitch-switch` and `openvswitch-common`).
pub const OVS_PROGRAMS: [&str; 5] = ["ovsdb-tool", "ovsdb-server", "ovs-vsctl", "ovs-ofctl", "ovs-appctl"];

/// openshift-sdn's table 253 note for 3.11's multitenant plugin: plugin
/// id 01, rule version 07 (OPENSHIFT_SDN_PIPELINE.md §3.4).
const VERSION_NOTE: &str = "01.07";

/// `ovs-vsctl`'s timeout as openshift-sdn passes it (execWithStdin).
const VSCTL_TIMEOUT: &str = "--timeout=30";

/// The overlay MTU (3.11's default): tun0's `mtu_request` and routes.
const MTU: &str = "1450";

/// The nodes that run `sdnfwd vswitchd` (node-d in the foreground, node-b
/// detached).
pub const NODES: [&str; 2] = ["node-d", "node-b"];
/// The kernel VXLAN node.
const KERNEL_NODE: &str = "node-c";

/// A running `sdnfwd vswitchd`.
enum Vswitchd {
    /// In the foreground: our child, its stderr captured.
    Child { child: Child, log: Arc<Mutex<Vec<String>>> },
    /// `--detach`ed: the daemon's pid (from its pidfile) and its log file.
    Detached { pid: u32 },
}

/// One sdnfwd node's Open vSwitch side: its directory, its ovsdb-server
/// and its `sdnfwd vswitchd`.
pub struct OvsNode {
    /// The node's name (`node-d`).
    pub name: String,
    /// Its network namespace.
    pub ns: String,
    /// `OVS_RUNDIR`, `OVS_DBDIR` and `OVS_LOGDIR`: the database, its
    /// socket, the pidfiles, the unixctl and OpenFlow sockets, the logs.
    pub dir: PathBuf,
    /// The poll-loop core asked with `other_config:pmd-cpu-mask`.
    pub core: usize,
    /// The node's ovsdb-server (our child).
    ovsdb: Option<Child>,
    /// Its `sdnfwd vswitchd`.
    vswitchd: Option<Vswitchd>,
    /// The log of the vswitchd that last stopped.
    stopped_log: String,
}

/// What a command printed, or why it failed (its stderr).
pub type CmdResult = Result<String, String>;

impl OvsNode {
    /// A command `prog` in the node's namespace with the node's Open
    /// vSwitch directories in its environment: the stock tools find the
    /// database (`db.sock`), the bridge (`br0.mgmt`) and the daemon
    /// (`ovs-vswitchd.pid`) there, as on a node they find /var/run/openvswitch.
    fn command(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, prog]);
        for v in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR"] {
            c.env(v, &self.dir);
        }
        c
    }

    /// Runs `prog ARGS` (with `stdin` on its standard input): its stdout,
    /// or its stderr when it fails.
    fn tool(&self, prog: &str, args: &[&str], stdin: Option<&str>) -> CmdResult {
        let mut c = self.command(prog);
        c.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| format!("{prog}: {e}"))?;
        if let Some(mut i) = child.stdin.take() {
            if let Some(s) = stdin {
                i.write_all(s.as_bytes()).map_err(|e| format!("{prog}: stdin: {e}"))?;
            }
        }
        let o = child.wait_with_output().map_err(|e| format!("{prog}: {e}"))?;
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).into_owned())
        } else {
            Err(format!(
                "`{prog} {}` failed ({}): {}",
                args.join(" "),
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
    }

    /// `ovs-vsctl --timeout=30 ARGS`, as openshift-sdn runs it (it waits
    /// for the switch to apply the change: `cur_cfg`). Output trimmed, as
    /// execWithStdin strips a single line's newline.
    ///
    /// # Errors
    /// The command failed or timed out: its stderr.
    pub fn vsctl(&self, args: &[&str]) -> CmdResult {
        let mut v = vec![VSCTL_TIMEOUT];
        v.extend_from_slice(args);
        self.tool("ovs-vsctl", &v, None).map(|s| s.trim().to_string())
    }

    /// `ovs-ofctl -O OpenFlow13 ARGS`, `stdin` on its standard input.
    ///
    /// # Errors
    /// The command failed: its stderr.
    pub fn ofctl(&self, args: &[&str], stdin: Option<&str>) -> CmdResult {
        let mut v = vec!["-O", "OpenFlow13"];
        v.extend_from_slice(args);
        self.tool("ovs-ofctl", &v, stdin)
    }

    /// `ovs-appctl ARGS` (default target `ovs-vswitchd`, found through
    /// `OVS_RUNDIR/ovs-vswitchd.pid`).
    ///
    /// # Errors
    /// The command failed: its stderr.
    pub fn appctl(&self, args: &[&str]) -> CmdResult {
        self.tool("ovs-appctl", args, None)
    }

    /// `ip ARGS` in the node's namespace: its output.
    fn ip(&self, args: &[&str]) -> CmdResult {
        let mut v = vec!["-n", self.ns.as_str()];
        v.extend_from_slice(args);
        crate::netns::run("ip", &v).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// The database, created with `ovsdb-tool` (as ovs-ctl does on first
    /// start).
    fn create_db(&self) -> Result<(), String> {
        let db = self.dir.join("conf.db");
        crate::netns::run("ovsdb-tool", &["create", &db.to_string_lossy(), SCHEMA]).map(|_| ())
    }

    /// Starts ovsdb-server on the node's database (ovs-ctl's options, in
    /// the foreground so that it stays our child) and waits for its
    /// socket.
    ///
    /// # Errors
    /// It cannot start or makes no socket within 10 s.
    pub fn start_ovsdb(&mut self) -> Result<(), String> {
        let d = self.dir.to_string_lossy().into_owned();
        let sock = self.dir.join("db.sock");
        let _ = std::fs::remove_file(&sock);
        let mut c = self.command("ovsdb-server");
        c.arg(format!("{d}/conf.db"))
            .arg(format!("--remote=punix:{d}/db.sock"))
            .arg(format!("--pidfile={d}/ovsdb-server.pid"))
            .arg(format!("--unixctl={d}/ovsdb-server.ctl"))
            .arg(format!("--log-file={d}/ovsdb-server.log"))
            .arg("--no-chdir")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().map_err(|e| format!("ovsdb-server: {e}"))?;
        let end = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            if let Ok(Some(st)) = child.try_wait() {
                return Err(format!("{}: ovsdb-server exited ({st}); see {d}/ovsdb-server.log", self.name));
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{}: ovsdb-server made no {} in 10 s", self.name, sock.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.ovsdb = Some(child);
        Ok(())
    }

    /// Kills the node's ovsdb-server (SIGKILL, as a crash would).
    ///
    /// # Errors
    /// None runs.
    pub fn kill_ovsdb(&mut self) -> Result<(), String> {
        let mut c = self.ovsdb.take().ok_or(format!("{}: no ovsdb-server runs", self.name))?;
        c.kill().map_err(|e| e.to_string())?;
        c.wait().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Starts `sdnfwd vswitchd unix:DIR/db.sock --pidfile` with `extra`
    /// options, as ovs-ctl starts ovs-vswitchd; waits until `ovs-appctl
    /// version` answers through the pidfile. With `--detach` among
    /// `extra`, the first process returns once the daemon is ready and
    /// the daemon's pid is read from the pidfile.
    ///
    /// # Errors
    /// It exits, or does not answer within 30 s: with its log.
    pub fn start_vswitchd(&mut self, bin: &Path, extra: &[&str]) -> Result<(), String> {
        let db = format!("unix:{}/db.sock", self.dir.display());
        let pidfile = self.dir.join("ovs-vswitchd.pid");
        let _ = std::fs::remove_file(&pidfile);
        let mut c = self.command(&bin.to_string_lossy());
        c.args(["vswitchd", &db, "--pidfile"]).args(extra).stdin(Stdio::null());
        let detach = extra.contains(&"--detach");
        if detach {
            // The daemon keeps what it inherits until it detaches them:
            // a file, not a pipe, so that nothing waits on it.
            let out = self.dir.join("vswitchd-detach.stderr");
            let f = std::fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            c.stdout(Stdio::null()).stderr(f);
            let mut child = c.spawn().map_err(|e| format!("{}: {e}", bin.display()))?;
            let end = Instant::now() + Duration::from_secs(30);
            let st = loop {
                if let Ok(Some(st)) = child.try_wait() {
                    break st;
                }
                if Instant::now() > end {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("{}: sdnfwd vswitchd --detach did not return in 30 s", self.name));
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            if !st.success() {
                return Err(format!(
                    "{}: sdnfwd vswitchd --detach failed ({st}): {}{}",
                    self.name,
                    std::fs::read_to_string(&out).unwrap_or_default(),
                    self.log()
                ));
            }
            let pid = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .ok_or(format!("{}: --detach returned without a pidfile {}", self.name, pidfile.display()))?;
            self.vswitchd = Some(Vswitchd::Detached { pid });
        } else {
            c.stdout(Stdio::null()).stderr(Stdio::piped());
            let mut child = c.spawn().map_err(|e| format!("{}: {e}", bin.display()))?;
            let log = Arc::new(Mutex::new(Vec::new()));
            if let Some(err) = child.stderr.take() {
                let log = log.clone();
                std::thread::spawn(move || {
                    for l in BufReader::new(err).lines().map_while(Result::ok) {
                        log.lock().unwrap_or_else(|p| p.into_inner()).push(l);
                    }
                });
            }
            self.vswitchd = Some(Vswitchd::Child { child, log });
        }
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if pidfile.exists() && self.appctl(&["version"]).is_ok() {
                return Ok(());
            }
            if !self.vswitchd_alive() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!("{}: sdnfwd vswitchd exited:\n{}", self.name, self.log()));
            }
            if Instant::now() > end {
                return Err(format!("{}: `ovs-appctl version` unanswered after 30 s:\n{}", self.name, self.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The vswitchd's pid.
    pub fn vswitchd_pid(&self) -> Option<u32> {
        match self.vswitchd.as_ref()? {
            Vswitchd::Child { child, .. } => Some(child.id()),
            Vswitchd::Detached { pid } => Some(*pid),
        }
    }

    /// Whether the vswitchd still runs.
    fn vswitchd_alive(&mut self) -> bool {
        match self.vswitchd.as_mut() {
            Some(Vswitchd::Child { child, .. }) => matches!(child.try_wait(), Ok(None)),
            Some(Vswitchd::Detached { pid }) => is_sdnfwd(*pid),
            None => false,
        }
    }

    /// The vswitchd's log so far: its stderr, or its log file when
    /// detached.
    pub fn log(&self) -> String {
        match &self.vswitchd {
            Some(Vswitchd::Child { log, .. }) => log.lock().unwrap_or_else(|p| p.into_inner()).join("\n"),
            Some(Vswitchd::Detached { .. }) => {
                std::fs::read_to_string(self.dir.join("ovs-vswitchd.log")).unwrap_or_default()
            }
            None => self.stopped_log.clone(),
        }
    }

    /// Stops the vswitchd: SIGTERM, or `ovs-appctl exit` when `appctl`;
    /// waits up to 15 s. Returns its exit status (`None`: a detached
    /// daemon, whose status nobody can wait for) and its log.
    ///
    /// # Errors
    /// It did not stop within 15 s (it is then killed), or none runs.
    pub fn stop_vswitchd(&mut self, appctl: bool) -> Result<(Option<i32>, String), String> {
        let pid = self.vswitchd_pid().ok_or(format!("{}: no vswitchd runs", self.name))?;
        if appctl {
            self.appctl(&["exit"])?;
        } else {
            crate::netns::run("kill", &["-TERM", &pid.to_string()])?;
        }
        let end = Instant::now() + Duration::from_secs(15);
        let code = loop {
            match self.vswitchd.as_mut() {
                Some(Vswitchd::Child { child, .. }) => {
                    if let Ok(Some(st)) = child.try_wait() {
                        break st.code();
                    }
                }
                Some(Vswitchd::Detached { pid }) => {
                    if !is_sdnfwd(*pid) {
                        break None;
                    }
                }
                None => break None,
            }
            if Instant::now() > end {
                self.kill_vswitchd();
                return Err(format!("{}: sdnfwd vswitchd still ran 15 s after being told to stop", self.name));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The log reader catches up.
        std::thread::sleep(Duration::from_millis(100));
        let log = self.log();
        self.vswitchd = None;
        self.stopped_log = log.clone();
        Ok((code, log))
    }

    /// Kills the vswitchd outright (cleanup after a failure).
    fn kill_vswitchd(&mut self) {
        match self.vswitchd.take() {
            Some(Vswitchd::Child { mut child, .. }) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Some(Vswitchd::Detached { pid }) if is_sdnfwd(pid) => {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
            Some(Vswitchd::Detached { .. }) | None => {}
        }
    }
}

/// Whether process `pid` runs and is sdnfwd (not a later process that got
/// the number).
fn is_sdnfwd(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("sdnfwd") && !is_zombie(pid))
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')))
}

impl Drop for OvsNode {
    fn drop(&mut self) {
        if self.vswitchd.is_some() && self.stop_vswitchd(false).is_err() {
            self.kill_vswitchd();
        }
        if let Some(mut c) = self.ovsdb.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The cluster in namespaces with Open vSwitch's database and tools around
/// `sdnfwd vswitchd` on node-d and node-b.
pub struct DropIn {
    /// The OVS side of each sdnfwd node, by node name (dropped first:
    /// processes stop before their namespaces go).
    pub nodes: BTreeMap<String, OvsNode>,
    /// Namespaces, pods, underlay, the kernel VXLAN node.
    pub topo: Topology,
    /// The directory holding each node's.
    dir: PathBuf,
}

impl Drop for DropIn {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether every program and the schema the scenario needs is installed;
/// else what is missing.
///
/// # Errors
/// What is missing, with the Debian package to install.
pub fn ovs_installed() -> Result<(), String> {
    let mut missing: Vec<String> = OVS_PROGRAMS
        .iter()
        .filter(|p| {
            !["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin", "/usr/local/sbin"]
                .iter()
                .any(|d| Path::new(d).join(p).exists())
        })
        .map(|p| p.to_string())
        .collect();
    if !Path::new(SCHEMA).exists() {
        missing.push(SCHEMA.into());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("{} missing: apt-get install openvswitch-switch", missing.join(", ")))
    }
}

impl DropIn {
    /// Builds the namespaces (as `sdnfwd demo` does) and, on node-d and
    /// node-b, a database with ovsdb-server on it, initialised as ovs-ctl
    /// does (`ovs-vsctl --no-wait init`) with `other_config:pmd-cpu-mask`
    /// naming one core (node-d the first this process may use, node-b the
    /// second), then `sdnfwd vswitchd --pmd-maxsleep-us 200`: node-d in the
    /// foreground, node-b `--detach`ed with `--log-file`, as ovs-ctl runs
    /// ovs-vswitchd. Names start with `tag`.
    ///
    /// # Errors
    /// A namespace, database or daemon that could not be had.
    pub fn build(tag: &str, bin: &Path) -> Result<DropIn, String> {
        ovs_installed()?;
        let topo = Topology::build(tag, config::yaml::DEFAULT_CLUSTER, &NODES, Some(KERNEL_NODE), bin)?;
        let dir = std::env::temp_dir().join(format!("{}-ovs", topo.lab.prefix()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut d = DropIn { nodes: BTreeMap::new(), topo, dir };
        let cores = crate::netns::two_cores("vswitchd drop-in");
        for (i, n) in NODES.iter().enumerate() {
            let nd = d.dir.join(n);
            std::fs::create_dir_all(&nd).map_err(|e| format!("{}: {e}", nd.display()))?;
            let mut o = OvsNode {
                name: n.to_string(),
                ns: d.topo.node(n)?.to_string(),
                dir: nd,
                core: cores[i],
                ovsdb: None,
                vswitchd: None,
                stopped_log: String::new(),
            };
            o.create_db()?;
            o.start_ovsdb()?;
            o.vsctl(&["--no-wait", "init"])?;
            let mask = format!("other_config:pmd-cpu-mask=0x{:x}", 1u64 << o.core);
            o.vsctl(&["--no-wait", "set", "Open_vSwitch", ".", &mask])?;
            d.nodes.insert(n.to_string(), o);
        }
        for n in NODES {
            let log = format!("--log-file={}/ovs-vswitchd.log", d.dir.join(n).display());
            // An idle poll loop sleeps (up to 200 µs), as in the other
            // end-to-end tests: two busy loops would take both CPUs of a
            // small machine from the pods' kernels.
            let mut extra = vec!["--pmd-maxsleep-us", "200"];
            if n == "node-b" {
                extra.extend(["--detach", "--no-chdir", &log]);
            }
            d.node_mut(n)?.start_vswitchd(bin, &extra)?;
        }
        Ok(d)
    }

    /// The OVS side of node `name`.
    ///
    /// # Errors
    /// No such sdnfwd node.
    pub fn node(&self, name: &str) -> Result<&OvsNode, String> {
        self.nodes.get(name).ok_or(format!("no sdnfwd node {name}"))
    }

    fn node_mut(&mut self, name: &str) -> Result<&mut OvsNode, String> {
        self.nodes.get_mut(name).ok_or(format!("no sdnfwd node {name}"))
    }

    /// How the vswitchds attached their AF_XDP ports, as their logs say
    /// (`AF_XDP native mode, copy`), each way once.
    pub fn xdp_modes(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .nodes
            .values()
            .flat_map(|n| {
                n.log()
                    .lines()
                    .filter_map(|l| l.split_once(" up: ").map(|(_, m)| m.trim().to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Each node's vswitchd log, headed by its name.
    pub fn logs(&self) -> String {
        self.nodes.values().map(|n| format!("--- {} ({}) ---\n{}\n", n.name, n.dir.display(), n.log())).collect()
    }
}

/// A check made of steps: the first failing step's error, or OK with
/// `detail`.
fn check(what: impl Into<String>, r: Result<String, String>) -> Check {
    match r {
        Ok(detail) => Check { what: what.into(), ok: true, detail },
        Err(detail) => Check { what: what.into(), ok: false, detail },
    }
}

/// Fails with `msg` unless `cond`.
fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

/// A node's ovs-vsctl `get Interface X ofport`, as a number.
fn ofport(n: &OvsNode, iface: &str) -> Result<i64, String> {
    let s = n.vsctl(&["get", "Interface", iface, "ofport"])?;
    s.parse().map_err(|_| format!("get Interface {iface} ofport: `{s}`"))
}

/// openshift-sdn's SetupOVS on `n`, command for command: the bridge, the
/// fragment mode, vxlan0 and tun0 with their numbers. Returns tun0's MAC
/// as `get Interface tun0 mac_in_use` reports it (ensureTunMAC), or the
/// error.
fn setup_ovs(n: &OvsNode) -> Result<String, String> {
    n.vsctl(&["--if-exists", "del-br", "br0"])?;
    n.vsctl(openshift_sdn::ADD_BR0)?;
    n.ofctl(&["set-frags", "br0", "nx-match"], None)?;
    n.vsctl(&["--if-exists", "del-port", "br0", "vxlan0"])?;
    n.vsctl(openshift_sdn::ADD_VXLAN0)?;
    let p = ofport(n, "vxlan0")?;
    ensure(p == 1, || format!("vxlan0 got ofport {p}, asked 1"))?;
    n.vsctl(&["--if-exists", "del-port", "br0", "tun0"])?;
    let mtu = format!("mtu_request={MTU}");
    n.vsctl(&[openshift_sdn::ADD_TUN0, &[mtu.as_str()]].concat())?;
    let p = ofport(n, "tun0")?;
    ensure(p == 2, || format!("tun0 got ofport {p}, asked 2"))?;
    Ok("vxlan0 ofport 1, tun0 ofport 2".to_string())
}

/// ensureTunMAC: `get Interface tun0 mac_in_use` must be a quoted MAC
/// (19 characters), and here the MAC tun0 has in the node's namespace;
/// tun0 has the MTU SetupOVS asked (`mtu_request`), which `get Interface
/// tun0 mtu` reports. Returns the MAC tun0 has.
fn tun_mac(n: &OvsNode) -> Result<(String, Result<String, String>), String> {
    let links = n.ip(&["-j", "link", "show", "dev", "tun0"]).map_err(|e| format!("no tun0: {e}"))?;
    let j: serde_json::Value = serde_json::from_str(&links).map_err(|e| format!("ip -j link: {e}"))?;
    let real = j[0]["address"].as_str().ok_or("tun0 without an address")?.to_string();
    let mtu = j[0]["mtu"].as_u64().unwrap_or(0).to_string();
    let db = n.vsctl(&["get", "Interface", "tun0", "mac_in_use"]).and_then(|v| {
        if v.len() == 19 && v.starts_with('"') && v.ends_with('"') && v[1..18] == real {
            Ok(v)
        } else {
            Err(format!("`{v}`: openshift-sdn's ensureTunMAC wants \"{real}\" (bad MAC address for tun0)"))
        }
    });
    // SetupOVS's mtu_request, applied to tun0 and written back as `mtu`.
    let db = db.and_then(|mac| {
        ensure(mtu == MTU, || format!("tun0 has MTU {mtu}, mtu_request={MTU}"))?;
        let m = n.vsctl(&["get", "Interface", "tun0", "mtu"])?;
        ensure(m == MTU, || format!("Interface tun0 mtu `{m}`, tun0 has {mtu}"))?;
        Ok(format!("{mac}, MTU {mtu}"))
    });
    Ok((real, db))
}

/// setup(): tun0 gets the gateway address and comes up; the local-subnet
/// route the kernel adds goes (deleteLocalSubnetRoute); each cluster
/// network gets a scope-link route and the service network a route, both
/// with the routable MTU.
fn setup_tun0(t: &Topology, n: &OvsNode) -> Result<String, String> {
    let hs = t.cluster.host_subnet(&n.name).ok_or("no HostSubnet")?;
    let gw = std::net::Ipv4Addr::from(hs.subnet.addr() + 1);
    let gw_cidr = format!("{gw}/{}", hs.subnet.prefix());
    let local = hs.subnet.to_string();
    n.ip(&["addr", "add", &gw_cidr, "dev", "tun0"])?;
    n.ip(&["link", "set", "tun0", "up"])?;
    // deleteLocalSubnetRoute: retried for about a second, then given up
    // with a log line (not an error).
    let mut deleted = false;
    for i in 0..7 {
        if n.ip(&["route", "del", &local, "dev", "tun0"]).is_ok() {
            deleted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100 + 25 * i));
    }
    let mut routes = Vec::new();
    for cn in &t.cluster.cluster_network.cluster_networks {
        let c = cn.cidr.to_string();
        n.ip(&["route", "add", &c, "dev", "tun0", "scope", "link", "mtu", MTU])?;
        routes.push(c);
    }
    let svc = t.cluster.cluster_network.service_network.to_string();
    n.ip(&["route", "add", &svc, "dev", "tun0", "mtu", MTU])?;
    routes.push(svc);
    let note = if deleted { "" } else { "; no local-subnet route to delete" };
    Ok(format!("tun0 {gw_cidr}, routes {}{note}", routes.join(", ")))
}

/// The node's pods, as the cluster lists them: (veth, ofport, ip, "ns/name").
fn pods(t: &Topology, node: &str) -> Vec<(String, u32, String, String)> {
    t.cluster
        .find_node(node)
        .map(|n| {
            n.pods
                .iter()
                .filter_map(|p| {
                    let v = p.veth.clone()?;
                    Some((v, p.ofport, p.ip.to_string(), format!("{}/{}", p.namespace, p.name)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// ensureOvsPort's `add-port` for a pod (with `ofport_request` when
/// `req`), then GetOFPort.
fn add_pod_port(n: &OvsNode, veth: &str, ip: &str, sandbox: &str, req: Option<u32>) -> Result<i64, String> {
    let ids = format!("external_ids=sandbox=\"{sandbox}\",ip=\"{ip}\"");
    let r = req.map(|r| format!("ofport_request={r}"));
    let mut args = vec!["--may-exist", "add-port", "br0", veth, "--", "set", "Interface", veth];
    if let Some(r) = &r {
        args.push(r);
    }
    args.push(&ids);
    n.vsctl(&args)?;
    ofport(n, veth)
}

/// The node's flows as `sdnfwd render` prints them, the cluster's
/// `tun0MAC` replaced by `mac` (the daemon renders with what the database
/// reported).
fn render(t: &Topology, node: &str, mac: &str) -> Result<String, String> {
    let yaml = config::yaml::DEFAULT_CLUSTER.replace("tun0MAC: 6e:2f:91:0c:55:a7", &format!("tun0MAC: {mac}"));
    let path = std::env::temp_dir().join(format!("{}-{node}-render.yaml", t.lab.prefix()));
    std::fs::write(&path, &yaml).map_err(|e| format!("{}: {e}", path.display()))?;
    let bin = t.bin().to_string_lossy().into_owned();
    let r = crate::netns::run(&bin, &["render", "--cluster", &path.to_string_lossy(), "--node", node]);
    let _ = std::fs::remove_file(&path);
    Ok(String::from_utf8_lossy(&r?.stdout).into_owned())
}

/// ovsExecTx's Commit: `ovs-ofctl bundle br0 -` with one `flow add` line
/// per flow.
fn commit(n: &OvsNode, flows: &str) -> CmdResult {
    let mods: Vec<String> = flows
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| format!("flow add {l}"))
        .collect();
    n.ofctl(&["bundle", "br0", "-"], Some(&mods.join("\n")))
}

/// Whether `ip` answers `from` again, at once, after its port was
/// attached anew: three echoes of three, the first sent as soon as
/// `ovs-vsctl add-port` returns (the vswitchd writes cur_cfg only once
/// every poll loop has taken the port and the tables know it; before it
/// waited for that, the first echo was lost in 10 runs of 10).
fn answers_again(t: &Topology, from: &str, ip: &str) -> bool {
    t.ping(from, ip, 3)
}

/// What namespace `ns` holds of a vswitchd's: XDP programs (`XDP on
/// IFACE`) and tun0 or its peer.
fn leftovers(t: &Topology, ns: &str) -> Result<Vec<String>, String> {
    let links = t.lab.ip(Some(ns), &["link", "show"])?;
    let text = String::from_utf8_lossy(&links.stdout).into_owned();
    let mut left = Vec::new();
    let mut name = String::new();
    for l in text.lines() {
        if let Some((_, rest)) = l.split_once(": ").filter(|_| !l.starts_with(' ')) {
            name = rest.split([':', '@']).next().unwrap_or("").to_string();
            if name == "tun0" || name == "tun0-dp" {
                left.push(name.clone());
            }
        }
        if l.contains("xdp") {
            left.push(format!("XDP on {name}"));
        }
    }
    left.dedup();
    Ok(left)
}

/// The drop-in scenario on a built [`DropIn`], check by check, each
/// reported as it completes; `interrupted` stops early (Ctrl-C). Ends with
/// both vswitchds stopped (node-b by `ovs-appctl exit`, node-d by
/// SIGTERM), nothing of theirs left behind.
///
/// # Errors
/// The setup failed so early that no check can follow (the bridge cannot
/// be created): the reason.
pub fn dropin_checks(
    d: &mut DropIn,
    interrupted: &dyn Fn() -> bool,
    report: &mut dyn FnMut(&Check),
) -> Result<Vec<Check>, String> {
    let mut checks = Vec::new();
    let mut add = |c: Check, checks: &mut Vec<Check>| {
        report(&c);
        checks.push(c);
    };
    // The SDN daemon's setup, node by node.
    for name in NODES {
        let n = d.node(name)?;
        let t = &d.topo;
        let v = n.appctl(&["version"]).map(|s| s.lines().next().unwrap_or("").to_string());
        add(
            check(
                format!("{name}: sdnfwd vswitchd runs; `ovs-appctl version` finds it through OVS_RUNDIR's pidfile"),
                v,
            ),
            &mut checks,
        );
        let setup = setup_ovs(n);
        let fatal = setup.is_err();
        add(
            check(
                format!(
                    "{name}: SetupOVS: add-br br0 fail_mode=secure protocols=OpenFlow13, set-frags nx-match, \
                     vxlan0 (vxlan, remote_ip/key flow, dst_port 4789) and tun0 (internal) with ofport_request 1, 2"
                ),
                setup,
            ),
            &mut checks,
        );
        if fatal {
            return Err(format!("{name}: the bridge could not be set up: nothing else can be checked\n{}", d.logs()));
        }
        let dpid = n.vsctl(&["get", "Bridge", "br0", "datapath_id"]).and_then(|v| {
            let hex = v.trim_matches('"');
            ensure(hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit()), || format!("datapath_id `{v}`"))
                .map(|_| format!("datapath_id {v}"))
        });
        add(check(format!("{name}: Bridge br0's datapath_id written back"), dpid), &mut checks);
        // Without a tun0, the rendering keeps the cluster's MAC (the
        // check fails either way).
        let (mac, db_mac) = tun_mac(n).unwrap_or_else(|e| ("6e:2f:91:0c:55:a7".into(), Err(e)));
        add(
            check(format!("{name}: tun0 created by the vswitchd with mtu_request's MTU; `get Interface tun0 mac_in_use` is its MAC"), db_mac),
            &mut checks,
        );
        add(
            check(format!("{name}: tun0's address and routes (ip, as openshift-sdn's setup())"), setup_tun0(t, n)),
            &mut checks,
        );
        let mut got = Vec::new();
        let attach: Result<String, String> = pods(t, name)
            .iter()
            .try_for_each(|(veth, want, ip, id)| {
                let p = add_pod_port(n, veth, ip, id, Some(*want))?;
                got.push(format!("{veth} {p}"));
                ensure(p == i64::from(*want), || format!("{veth} got ofport {p}, asked {want}"))
            })
            .map(|_| got.join(", "));
        add(check(format!("{name}: pods attached: add-port VETH -- set Interface VETH ofport_request=N external_ids=…; get Interface VETH ofport"), attach), &mut checks);
        // SetupOVS's and the pods' flows; the table 253 note, which the
        // rendering ends with, comes after (FinishSetupOVS).
        let rendered = render(t, name, &mac)?;
        let flows: String = rendered.lines().filter(|l| !l.contains("table=253,")).map(|l| format!("{l}\n")).collect();
        let n_flows = flows.lines().filter(|l| !l.trim().is_empty()).count();
        let before = n.ofctl(&["dump-flows", "br0"], None).and_then(|s| {
            let k = s.lines().filter(|l| l.contains("actions=")).count();
            ensure(k == 0, || format!("the new bridge already has {k} flows:\n{s}"))
        });
        let load = if let Err(e) = before {
            Err(e)
        } else if name == "node-d" {
            commit(n, &flows).map(|_| format!("{n_flows} flows: ovs-ofctl -O OpenFlow13 bundle br0 - (flow add …)"))
        } else {
            n.ofctl(&["--bundle", "add-flows", "br0", "-"], Some(&flows))
                .map(|_| format!("{n_flows} flows: ovs-ofctl -O OpenFlow13 --bundle add-flows br0 -"))
        };
        add(check(format!("{name}: the new bridge has no flow; the rendered flows in one bundle"), load), &mut checks);
        let note = commit(n, &format!("table=253, actions=note:{VERSION_NOTE}"))
            .and_then(|_| n.ofctl(&["dump-flows", "br0", "table=253"], None))
            .and_then(|dump| {
                let rules: Vec<&str> = dump.lines().filter(|l| l.contains("table=253")).collect();
                ensure(rules.len() == 1 && rules[0].contains(&format!("note:{VERSION_NOTE}")), || {
                    format!("dump-flows br0 table=253: {dump}")
                })?;
                Ok(rules[0].trim().to_string())
            });
        add(
            check(
                format!(
                    "{name}: FinishSetupOVS's version note; dump-flows br0 table=253 shows it alone (AlreadySetUp)"
                ),
                note,
            ),
            &mut checks,
        );
        let all = n.ofctl(&["dump-flows", "br0"], None).and_then(|s| {
            let k = s.lines().filter(|l| l.contains("actions=")).count();
            ensure(k == n_flows + 1, || format!("dump-flows br0: {k} flows, loaded {}", n_flows + 1))
                .map(|_| format!("{k} flows"))
        });
        add(check(format!("{name}: ovs-ofctl dump-flows br0 lists every flow loaded"), all), &mut checks);
        if interrupted() {
            return Ok(checks);
        }
    }
    let t = &d.topo;
    let pod = |id: &str| t.pod(id).map(str::to_string);
    let (web1, router1, web2) = (pod("project-a/web-1")?, pod("default/router-1")?, pod("project-a/web-2")?);
    let (nd, nc) = (t.node("node-d")?.to_string(), t.node(KERNEL_NODE)?.to_string());
    let ping = |what: &str, from: &str, ip: &str, answered: bool| {
        let got = t.ping(from, ip, if answered { 3 } else { 2 });
        Check {
            what: what.to_string(),
            ok: got == answered,
            detail: if got == answered {
                String::new()
            } else {
                format!("ping {ip} {}", if got { "answered" } else { "unanswered" })
            },
        }
    };
    let probes: [(&str, &str, &str, bool); 6] = [
        ("ping pod→pod, one node (web-1 → db-1)", &web1, "10.131.0.4", true),
        ("ping pod→pod across the two sdnfwd vswitchd nodes over VXLAN (web-1 → web-2)", &web1, "10.129.0.7", true),
        ("ping pod→pod across nodes, back (web-2 → web-1)", &web2, "10.131.0.3", true),
        ("ping pod→kernel VXLAN node (router-1 → node-c 10.130.0.1)", &router1, "10.130.0.1", true),
        ("ping kernel VXLAN node→pod (node-c → router-1)", &nc, "10.131.0.2", true),
        ("ping host→pod through tun0 (node-d → web-1)", &nd, "10.131.0.3", true),
    ];
    for (what, from, ip, answered) in probes {
        if interrupted() {
            return Ok(checks);
        }
        add(ping(what, from, ip, answered), &mut checks);
    }
    add(
        ping("tenant isolation: project-a → project-b blocked (web-1 → api-1)", &web1, "10.131.0.5", false),
        &mut checks,
    );
    let tcp = t.tcp(&web1, &web2, "10.129.0.7", 8080).map(|_| String::new());
    add(check("TCP pod→pod across nodes (web-1 → web-2:8080)", tcp), &mut checks);

    // ovs-appctl.
    let n = d.node("node-d")?;
    let last = |s: &str| s.lines().rev().find(|l| l.starts_with("Datapath actions:")).map(str::to_string);
    let tr = n.appctl(&["ofproto/trace", "br0", "in_port=4,ip,nw_src=10.131.0.3,nw_dst=10.131.0.4"]).and_then(|s| {
        let a = last(&s).ok_or(format!("no `Datapath actions:` line:\n{s}"))?;
        ensure(a != "Datapath actions: drop", || format!("{a}\n{s}"))?;
        ensure(s.lines().any(|l| l.starts_with("70. ")), || format!("table 70 not traversed:\n{s}"))?;
        Ok(a)
    });
    add(
        check("ovs-appctl ofproto/trace br0 in_port=4,ip,nw_src=web-1,nw_dst=db-1 (node-d): forwarded", tr),
        &mut checks,
    );
    let tr = n.appctl(&["ofproto/trace", "br0", "in_port=4,ip,nw_src=10.131.0.3,nw_dst=10.131.0.5"]).and_then(|s| {
        let a = last(&s).ok_or(format!("no `Datapath actions:` line:\n{s}"))?;
        ensure(a == "Datapath actions: drop", || format!("{a}\n{s}")).map(|_| a)
    });
    add(check("ovs-appctl ofproto/trace br0 …,nw_dst=api-1 (node-d): dropped (tenant isolation)", tr), &mut checks);
    let core = n.core;
    let ps = n.appctl(&["dpif-netdev/pmd-stats-show"]).and_then(|s| {
        ensure(s.contains(&format!("core_id {core}")) && s.contains("packets received"), || s.clone())
            .map(|_| format!("pmd thread on core {core} (pmd-cpu-mask)"))
    });
    add(check("ovs-appctl dpif-netdev/pmd-stats-show (node-d): the poll loop on pmd-cpu-mask's core", ps), &mut checks);
    let show = n.appctl(&["dpif/show"]).and_then(|s| {
        ensure(s.contains("br0") && s.contains("vethw1") && s.contains("vxlan0"), || s.clone()).map(|_| String::new())
    });
    add(check("ovs-appctl dpif/show (node-d) lists br0's ports", show), &mut checks);
    let mf = n.appctl(&["dpif/dump-flows", "br0"]).and_then(|s| {
        let k = s.lines().filter(|l| l.contains("in_port(") && l.contains("packets:")).count();
        ensure(k > 0, || format!("no megaflow after the pings:\n{s}")).map(|_| format!("{k} megaflows"))
    });
    add(check("ovs-appctl dpif/dump-flows br0 (node-d): the megaflows the pings made", mf), &mut checks);
    let vlog = n.appctl(&["vlog/set", "console:dbg"]).and_then(|_| n.appctl(&["vlog/set", "console:info"]));
    add(check("ovs-appctl vlog/set console:dbg, then console:info (node-d)", vlog), &mut checks);

    // The bridge's protocols=OpenFlow13, as OVS honours it: ovs-ofctl
    // without -O speaks OpenFlow 1.0 and fails the version negotiation.
    let v10 = match n.tool("ovs-ofctl", &["dump-flows", "br0"], None) {
        Ok(out) => Err(format!("answered in OpenFlow 1.0:\n{out}")),
        Err(e) if e.contains("version negotiation failed") => Ok(String::new()),
        Err(e) => Err(e),
    };
    add(
        check("protocols=OpenFlow13 honoured: ovs-ofctl without -O fails version negotiation (node-d)", v10),
        &mut checks,
    );

    // An interface type sdnfwd does not serve.
    let gen = n
        .vsctl(&["add-port", "br0", "gen0", "--", "set", "Interface", "gen0", "type=geneve", "options:remote_ip=flow"])
        .and_then(|_| {
            let p = ofport(n, "gen0")?;
            ensure(p == -1, || format!("gen0 got ofport {p}"))?;
            let e = n.vsctl(&["get", "Interface", "gen0", "error"])?;
            ensure(e.contains("geneve"), || format!("Interface gen0 error: {e}"))?;
            ensure(t.ping(&web1, "10.131.0.4", 2), || "web-1 → db-1 stopped after the geneve port".into())?;
            n.vsctl(&["del-port", "br0", "gen0"])?;
            Ok(e)
        });
    add(check("type=geneve refused: ofport -1, Interface.error says why; the node keeps forwarding", gen), &mut checks);

    // del-port, then openshift-sdn's add-port without a number.
    let del = n.vsctl(&["--if-exists", "del-port", "br0", "vethd1"]).and_then(|_| {
        ensure(!t.ping(&web1, "10.131.0.4", 2), || "web-1 → db-1 still answered after del-port".into())?;
        let e = n.vsctl(&["get", "Interface", "vethd1", "ofport"]);
        ensure(e.is_err(), || format!("get Interface vethd1 ofport after del-port: {e:?}"))?;
        let left = leftovers(t, &nd)?;
        ensure(!left.iter().any(|l| l == "XDP on vethd1"), || format!("left on vethd1: {left:?}"))?;
        Ok(String::new())
    });
    add(
        check("del-port br0 vethd1: db-1 unreachable, the Interface row gone, no XDP left on vethd1", del),
        &mut checks,
    );
    let readd = add_pod_port(n, "vethd1", "10.131.0.4", "project-a/db-1", None).and_then(|p| {
        ensure(p == 5, || format!("vethd1 got ofport {p}; its flows name 5"))?;
        ensure(answers_again(t, &web1, "10.131.0.4"), || "web-1 → db-1 unanswered after add-port".into())?;
        Ok(format!("ofport {p}"))
    });
    add(
        check(
            "add-port br0 vethd1 without ofport_request (ensureOvsPort): the freed number 5 again, db-1 answers",
            readd,
        ),
        &mut checks,
    );
    if interrupted() {
        return Ok(checks);
    }

    // ovsdb-server killed and restarted.
    let restart = d.node_mut("node-d")?.kill_ovsdb().and_then(|_| {
        let t = &d.topo;
        ensure(t.ping(&web1, "10.131.0.4", 2), || "web-1 → db-1 unanswered while ovsdb-server is down".into())?;
        Ok(())
    });
    let restart = restart.and_then(|_| d.node_mut("node-d")?.start_ovsdb()).and_then(|_| {
        let (t, n) = (&d.topo, d.node("node-d")?);
        n.vsctl(&["set", "Bridge", "br0", "external_ids:sdnfwd-probe=1"])?;
        n.vsctl(&["--if-exists", "del-port", "br0", "vetha1"])?;
        ensure(!t.ping(&router1, "10.131.0.5", 2), || "api-1 still answered after del-port past the restart".into())?;
        let p = add_pod_port(n, "vetha1", "10.131.0.5", "project-b/api-1", Some(6))?;
        ensure(p == 6, || format!("vetha1 got ofport {p}"))?;
        ensure(answers_again(t, &router1, "10.131.0.5"), || "router-1 → api-1 unanswered after add-port".into())?;
        ensure(t.ping(&web1, "10.129.0.7", 3), || "web-1 → web-2 unanswered after the restart".into())?;
        Ok(String::new())
    });
    add(
        check(
            "ovsdb-server killed: pods keep pinging; restarted: the vswitchd reconnects (ovs-vsctl returns, \
             del-port/add-port of api-1 take effect)",
            restart,
        ),
        &mut checks,
    );

    // Stopping, as ovs-ctl stop and systemd do.
    for (name, by_appctl) in [("node-b", true), ("node-d", false)] {
        let ns = d.topo.node(name)?.to_string();
        let how = if by_appctl { "ovs-appctl exit" } else { "SIGTERM" };
        let r = d.node_mut(name)?.stop_vswitchd(by_appctl).and_then(|(code, log)| {
            ensure(code.is_none() || code == Some(0), || format!("exit status {code:?}\n{log}"))?;
            let left = leftovers(&d.topo, &ns)?;
            ensure(left.is_empty(), || format!("left behind: {left:?}"))?;
            Ok(match code {
                Some(c) => format!("exit {c}"),
                None => "detached daemon gone".into(),
            })
        });
        add(check(format!("{name}: {how} stops the vswitchd; no tun0, no XDP program left"), r), &mut checks);
    }
    Ok(checks)
}
