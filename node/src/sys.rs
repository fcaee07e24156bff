//! What the node asks of the machine: commands (iproute2, ethtool), the
//! interfaces of this network namespace, the process's privileges, pinned
//! threads.

use std::process::{Command, Output};

/// Runs a command; an error carries the command line and its stderr.
pub fn run(prog: &str, args: &[&str]) -> Result<Output, String> {
    let out = Command::new(prog).args(args).output().map_err(|e| format!("{prog}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{prog} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out)
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")))
}

/// Whether interface `name` exists in this network namespace.
pub fn if_exists(name: &str) -> bool {
    std::path::Path::new(&format!("/sys/class/net/{name}")).exists()
}

/// The MAC address of interface `ifname`.
pub fn mac_of(ifname: &str) -> Result<u64, String> {
    let s =
        std::fs::read_to_string(format!("/sys/class/net/{ifname}/address")).map_err(|e| format!("{ifname}: {e}"))?;
    slowpath::tunnel::parse_mac(s.trim()).ok_or_else(|| format!("{ifname}: unreadable MAC `{}`", s.trim()))
}

/// `ip -j ARGS` as JSON.
pub fn ip_json(args: &[&str]) -> Result<serde_json::Value, String> {
    let mut v = vec!["-j"];
    v.extend_from_slice(args);
    serde_json::from_slice(&run("ip", &v)?.stdout).map_err(|e| format!("ip {}: {e}", args.join(" ")))
}

/// The name of interface `index` in an `ip -j link show` listing.
pub fn ifname_of(links: &serde_json::Value, index: u64) -> Option<String> {
    links.as_array()?.iter().find(|x| x["ifindex"].as_u64() == Some(index))?["ifname"].as_str().map(str::to_string)
}

/// Turns TX checksum offload off on the pod end of a host veth (DESIGN.md
/// §8), finding the pod's namespace through the veth's link-netnsid.
pub fn pod_side_tx_off(veth: &str) -> Result<String, String> {
    let j = ip_json(&["-d", "link", "show", "dev", veth])?;
    let peer = j[0]["link_index"].as_u64().ok_or("no peer index (not a veth?)")?;
    let Some(nsid) = j[0]["link_netnsid"].as_u64() else {
        // Peer in this namespace.
        let name = ifname_of(&ip_json(&["link", "show"])?, peer).ok_or("peer not found")?;
        run("ethtool", &["-K", &name, "tx", "off"])?;
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
    run("ip", &["netns", "exec", &ns, "ethtool", "-K", &name, "tx", "off"])?;
    Ok(format!("{ns}/{name}"))
}

/// Spawns a thread named `name`, pinned to `core` when there is one (the
/// poll loops).
pub fn spawn_pinned<T: Send + 'static>(
    name: String,
    core: Option<core_affinity::CoreId>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<T>, String> {
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            if let Some(c) = core {
                core_affinity::set_for_current(c);
            }
            f()
        })
        .map_err(|e| e.to_string())
}

/// Why the uplink's lock was not taken.
pub enum UplinkLockError {
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
pub fn uplink_lock(ifname: &str) -> Result<std::fs::File, UplinkLockError> {
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
