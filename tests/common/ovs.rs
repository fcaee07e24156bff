//! Open vSwitch as an oracle: ovsdb-server and ovs-vswitchd (Debian's
//! openvswitch-switch) started under a temp dir with the userspace datapath
//! and dummy ports (`--enable-dummy=override`: no kernel module, no tap
//! device on the host), a bridge `br0` laid out as OpenShift SDN's (vxlan0 =
//! 1, tun0 = 2, pods by ofport_request), fragments in nx-match mode.
//! Everything is removed on drop. A missing binary fails the test loudly.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Ovs {
    dir: tempfile::TempDir,
}

fn run(dir: &Path, prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .env("OVS_RUNDIR", dir)
        .env("OVS_LOGDIR", dir)
        .env("OVS_DBDIR", dir)
        .env("OVS_SYSCONFDIR", dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {prog} ({e}): install Open vSwitch (apt-get install openvswitch-switch); .ci/run does")
        });
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Ovs {
    /// Starts OVS with br0 and the given pod ports (besides vxlan0 and tun0).
    pub fn start(pod_ports: &[u32]) -> Ovs {
        let dir = tempfile::Builder::new().prefix("sdnfwd-oracle-").tempdir().expect("temp dir");
        let d = dir.path().to_path_buf();
        let d = d.as_path();
        let p = |s: &str| -> String { d.join(s).to_string_lossy().into_owned() };
        let schema = ["/usr/share/openvswitch/vswitch.ovsschema"]
            .into_iter()
            .find(|s| Path::new(s).exists())
            .expect("vswitch.ovsschema not found: install openvswitch-switch");
        run(d, "ovsdb-tool", &["create", &p("conf.db"), schema]);
        run(
            d,
            "ovsdb-server",
            &[
                &format!("--remote=punix:{}", p("db.sock")),
                &format!("--pidfile={}", p("ovsdb-server.pid")),
                &format!("--unixctl={}", p("ovsdb-server.ctl")),
                "--detach",
                "--no-chdir",
                &format!("--log-file={}", p("ovsdb-server.log")),
                &p("conf.db"),
            ],
        );
        let ovs = Ovs { dir };
        ovs.vsctl(&["--no-wait", "init"]);
        run(
            d,
            "ovs-vswitchd",
            &[
                &format!("unix:{}", p("db.sock")),
                &format!("--pidfile={}", p("ovs-vswitchd.pid")),
                &format!("--unixctl={}", p("vswitchd.ctl")),
                "--detach",
                "--no-chdir",
                &format!("--log-file={}", p("ovs-vswitchd.log")),
                "--disable-system",
                "--disable-system-route",
                "--enable-dummy=override",
            ],
        );
        let mut args: Vec<String> = vec![
            "add-br".into(),
            "br0".into(),
            "--".into(),
            "set".into(),
            "bridge".into(),
            "br0".into(),
            "datapath_type=netdev".into(),
            "fail_mode=secure".into(),
            "protocols=OpenFlow10,OpenFlow13".into(),
            "--".into(),
            "add-port".into(),
            "br0".into(),
            "vxlan0".into(),
            "--".into(),
            "set".into(),
            "interface".into(),
            "vxlan0".into(),
            "type=vxlan".into(),
            "options:remote_ip=flow".into(),
            "options:key=flow".into(),
            "options:dst_port=4789".into(),
            "ofport_request=1".into(),
            "--".into(),
            "add-port".into(),
            "br0".into(),
            "tun0".into(),
            "--".into(),
            "set".into(),
            "interface".into(),
            "tun0".into(),
            "type=internal".into(),
            "ofport_request=2".into(),
        ];
        for port in pod_ports {
            for s in ["--", "add-port", "br0"] {
                args.push(s.into());
            }
            args.push(format!("pod{port}"));
            for s in ["--", "set", "interface"] {
                args.push(s.into());
            }
            args.push(format!("pod{port}"));
            args.push(format!("ofport_request={port}"));
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        ovs.vsctl(&a);
        ovs.ofctl(&["set-frags", "br0", "nx-match"]);
        ovs
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}", self.dir.path().join("db.sock").display());
        let mut a = vec![db.as_str(), "--timeout=30"];
        a.extend_from_slice(args);
        run(self.dir.path(), "ovs-vsctl", &a)
    }

    pub fn ofctl(&self, args: &[&str]) -> String {
        let mut a = vec!["-O", "OpenFlow13"];
        a.extend_from_slice(args);
        run(self.dir.path(), "ovs-ofctl", &a)
    }

    /// `ovs-ofctl -O OpenFlow13 ARGS`, its output or, when it fails, what
    /// it said (for commands the test expects OVS to refuse). A missing
    /// binary still fails the test.
    pub fn try_ofctl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ovs-ofctl")
            .args(["-O", "OpenFlow13"])
            .args(args)
            .env("OVS_RUNDIR", self.dir.path())
            .env("OVS_LOGDIR", self.dir.path())
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run ovs-ofctl ({e}): install Open vSwitch (apt-get install openvswitch-switch)")
            });
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    pub fn appctl(&self, args: &[&str]) -> String {
        let ctl = self.dir.path().join("vswitchd.ctl").to_string_lossy().into_owned();
        let mut a = vec!["-t", ctl.as_str()];
        a.extend_from_slice(args);
        run(self.dir.path(), "ovs-appctl", &a)
    }

    /// Loads flows (add-flows syntax) into br0.
    pub fn add_flows(&self, text: &str) {
        let f = self.dir.path().join("flows.txt");
        std::fs::write(&f, text).unwrap();
        self.ofctl(&["add-flows", "br0", &f.to_string_lossy()]);
    }

    pub fn trace(&self, flow: &str) -> String {
        self.appctl(&["ofproto/trace", "br0", flow])
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        for pid in ["ovs-vswitchd.pid", "ovsdb-server.pid"] {
            if let Ok(p) = std::fs::read_to_string(self.dir.path().join(pid)) {
                let _ = Command::new("kill").arg(p.trim()).status();
            }
        }
    }
}

/// What ofproto/trace decided at the OpenFlow level.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OfVerdict {
    /// (table, priority) of every rule hit, in order; misses as priority -1.
    pub rules: Vec<(u8, i32)>,
    /// Outputs: (port, tun_dst, tun_id) — tunnel fields for port 1.
    pub outputs: Vec<(u32, Option<String>, Option<u64>)>,
}

fn parse_int(s: &str) -> u64 {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap(),
        None => s.parse().unwrap(),
    }
}

/// Reads the table/rule/action section of an ofproto/trace report.
pub fn parse_trace(text: &str, tun_id0: u64) -> OfVerdict {
    let mut v = OfVerdict::default();
    let mut tun_dst: Option<String> = None;
    let mut tun_id = tun_id0;
    let mut pending: Option<u32> = None;
    let mut pending_reg = false;
    let mut in_bridge = false;
    let flush = |v: &mut OfVerdict, p: &mut Option<u32>, tun_dst: &Option<String>, tun_id: u64| {
        if let Some(port) = p.take() {
            if port == 1 {
                v.outputs.push((port, tun_dst.clone(), Some(tun_id & 0xffffff)));
            } else {
                v.outputs.push((port, None, None));
            }
        }
    };
    for line in text.lines() {
        if line.starts_with("bridge(") {
            in_bridge = true;
            continue;
        }
        if line.starts_with("Final flow:") {
            break;
        }
        if !in_bridge || line.starts_with("---") || line.trim().is_empty() {
            continue;
        }
        let t = line.trim();
        if t.starts_with(">>") {
            pending = None;
            continue;
        }
        if let Some(p) = t.strip_prefix("-> output port is ") {
            if pending_reg {
                pending = Some(parse_int(p) as u32);
                pending_reg = false;
            }
            continue;
        }
        if let Some(rest) = t.strip_prefix("-> NXM_NX_TUN_ID[0..31] is now ") {
            tun_id = parse_int(rest);
            continue;
        }
        if t.starts_with("->") {
            continue;
        }
        flush(&mut v, &mut pending, &tun_dst, tun_id);
        let first = line.as_bytes()[0];
        if first != b' ' || (line.len() > 2 && line.as_bytes()[1].is_ascii_digit()) {
            // " 0. match, priority 100" / "20. ..." — a table line.
            let (num, rest) = t.split_once(". ").unwrap();
            let table: u8 = num.parse().unwrap();
            if rest.starts_with("No match") {
                v.rules.push((table, -1));
            } else {
                let p = rest.rsplit_once("priority ").unwrap().1;
                let p: i32 = p.split(',').next().unwrap().trim().parse().unwrap();
                v.rules.push((table, p));
            }
            continue;
        }
        if let Some(a) = t.strip_prefix("set_field:") {
            if let Some(ip) = a.strip_suffix("->tun_dst") {
                tun_dst = Some(ip.to_string());
            }
        } else if let Some(a) = t.strip_prefix("load:") {
            if let Some(val) = a.strip_suffix("->NXM_NX_TUN_ID[0..31]") {
                tun_id = (tun_id & !0xffff_ffff) | parse_int(val);
            }
        } else if let Some(a) = t.strip_prefix("output:") {
            if a.starts_with("NXM_") {
                pending_reg = true;
            } else {
                pending = Some(parse_int(a) as u32);
            }
        }
    }
    flush(&mut v, &mut pending, &tun_dst, tun_id);
    v
}
