//! Network namespaces and veth pairs for the demo and the end-to-end tests,
//! driven through iproute2. Everything a [`Lab`] creates carries its unique
//! prefix and is removed when the lab is dropped (also after a failure), so
//! a run never leaves a namespace, link or XDP program behind, and never
//! touches an interface it did not create.

use std::process::{Command, Output};

pub use node::sys::{is_root, run};

/// Says which branch of a machine-dependent check ran (a facility probed,
/// and what was done with what it found), on the process's real stderr:
/// past the test harness's capture, so that a CI log shows it for tests
/// that pass too. One line: `machine: WHAT: BRANCH`.
pub fn branch(what: &str, branch: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "machine: {what}: {branch}");
}

/// The CPUs this process may run on (its affinity mask), ascending.
pub fn allowed_cores() -> Vec<usize> {
    let mut v: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    v.sort_unstable();
    v
}

/// Two cores for two poll loops (or a loop and a generator): the first
/// two this process may use; on a machine (or an affinity mask) with one
/// CPU, that one twice. Says which on stderr ([`branch`]).
///
/// # Panics
/// When the process may use no CPU at all (affinity unreadable).
pub fn two_cores(what: &str) -> [usize; 2] {
    let c = allowed_cores();
    assert!(!c.is_empty(), "{what}: the process's CPU affinity cannot be read (sched_getaffinity)");
    if c.len() == 1 {
        branch(&format!("{what}: CPUs"), &format!("only CPU {} may be used: both share it", c[0]));
        [c[0], c[0]]
    } else {
        [c[0], c[1]]
    }
}

/// A set of namespaces and links with one name prefix.
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    /// Links created in the caller's namespace.
    links: Vec<String>,
}

impl Lab {
    /// A lab whose names start with `tag` and this process's id (short:
    /// interface names have 15 characters).
    pub fn new(tag: &str) -> Lab {
        Lab { prefix: format!("{tag}{}", std::process::id() % 100_000), namespaces: Vec::new(), links: Vec::new() }
    }

    /// Removes what earlier labs with this tag left behind when their
    /// process died without cleaning up (killed, or aborted): namespaces
    /// named `{tag}{pid}-…` whose pid is gone, after killing what runs in
    /// them. Returns how many namespaces were removed.
    pub fn sweep_stale(tag: &str) -> usize {
        let Ok(out) = run("ip", &["netns", "list"]) else { return 0 };
        let mut n = 0;
        for name in String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_whitespace().next()) {
            let Some(rest) = name.strip_prefix(tag) else { continue };
            let Some((pid, _)) = rest.split_once('-') else { continue };
            if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let alive = pid.parse::<u32>().is_ok_and(|p| p == std::process::id() % 100_000)
                || std::fs::read_dir("/proc").is_ok_and(|d| {
                    d.filter_map(|e| e.ok())
                        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
                        .any(|p| (p % 100_000).to_string() == pid)
                });
            if alive {
                continue;
            }
            if let Ok(p) = run("ip", &["netns", "pids", name]) {
                for pid in String::from_utf8_lossy(&p.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            if run("ip", &["netns", "del", name]).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// The name prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Full name of namespace `name`.
    pub fn ns_name(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Creates namespace `name` with loopback up; returns its full name.
    pub fn ns(&mut self, name: &str) -> Result<String, String> {
        let full = self.ns_name(name);
        run("ip", &["netns", "add", &full])?;
        self.namespaces.push(full.clone());
        run("ip", &["-n", &full, "link", "set", "lo", "up"])?;
        Ok(full)
    }

    /// Creates a veth pair with one RX and one TX queue per end. Each end is
    /// `(name, namespace)`, `None` for the caller's namespace (full
    /// namespace names); both ends are set up.
    pub fn veth(&mut self, a: (&str, Option<&str>), b: (&str, Option<&str>)) -> Result<(), String> {
        let mut args = vec!["link", "add", a.0];
        if let Some(ns) = a.1 {
            args.extend(["netns", ns]);
        }
        args.extend(["numrxqueues", "1", "numtxqueues", "1", "type", "veth", "peer", "name", b.0]);
        if let Some(ns) = b.1 {
            args.extend(["netns", ns]);
        }
        args.extend(["numrxqueues", "1", "numtxqueues", "1"]);
        run("ip", &args)?;
        if a.1.is_none() {
            self.links.push(a.0.into());
        } else if b.1.is_none() {
            self.links.push(b.0.into());
        }
        for (name, ns) in [a, b] {
            self.ip(ns, &["link", "set", name, "up"])?;
        }
        Ok(())
    }

    /// `ip ARGS` in namespace `ns` (`None`: the caller's).
    pub fn ip(&self, ns: Option<&str>, args: &[&str]) -> Result<Output, String> {
        match ns {
            Some(ns) => {
                let mut v = vec!["-n", ns];
                v.extend_from_slice(args);
                run("ip", &v)
            }
            None => run("ip", args),
        }
    }

    /// Runs `prog ARGS` in namespace `ns`.
    pub fn exec(&self, ns: &str, prog: &str, args: &[&str]) -> Result<Output, String> {
        let mut v = vec!["netns", "exec", ns, prog];
        v.extend_from_slice(args);
        run("ip", &v)
    }

    /// A command that runs `prog` in namespace `ns` (to spawn).
    pub fn command(&self, ns: &str, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, prog]);
        c
    }

    /// Turns TX checksum offload off on an interface (DESIGN.md §8: a
    /// kernel sending through a veth leaves partial checksums that an
    /// AF_XDP reader would forward as they are).
    pub fn tx_offload_off(&self, ns: &str, ifname: &str) -> Result<(), String> {
        self.exec(ns, "ethtool", &["-K", ifname, "tx", "off"]).map(|_| ())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for l in self.links.drain(..).rev() {
            let _ = Command::new("ip").args(["link", "del", &l]).output();
        }
        for ns in self.namespaces.drain(..).rev() {
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        }
    }
}
