//! The switch the database describes, reconciled into the datapath: the
//! first bridge's ports (a kernel interface as an AF_XDP socket; an
//! internal one as a veth pair sdnfwd makes, whose other end the poll
//! loops serve; the VXLAN port over the uplink that holds the local VTEP),
//! the bridge's OpenFlow management socket, and what is written back.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use config::ofctl::{FlowCommand, FlowSpec, GroupCommand};
use fastpath::batch::UPLINK;
use fastpath::conntrack::CtConfig;
use fastpath::flow::LocalVtep;
use fastpath::port::api::PortCounters;
use fastpath::port::uplink::{Leftover, UplinkProgram};
use fastpath::shared::TunnelState;
use serde_json::{json, Value};
use slowpath::tunnel::Neighbours;
use slowpath::upcall::Command;

use super::underlay::{holder_of, remote_vteps, route_to};
use crate::bridge::{plan, pmd_cores, PortKind};
use crate::control::{on_slow_path, port_dumps, Control, NodeCall, NodeRequest, OfPort};
use crate::datapath::{Config, Datapath, HostNat, HostScope, XskOptions};
use crate::logging::{self, note as log, Level};
use crate::ovs_paths::Paths;
use crate::ovsdb::{write_back, Bridge, Switch};
use crate::sys::{if_exists, ip_json, mac_of, run as sh, uplink_lock, UplinkLockError};
use crate::unixctl::Commands;

/// How often the interfaces' `statistics` are written (ovs-vswitchd's
/// default `stats-update-interval`).
const STATS_INTERVAL: Duration = Duration::from_secs(5);

/// The bridge the datapath serves, shared with `ovs-appctl`'s commands.
pub type BridgeName = Arc<Mutex<Option<String>>>;

/// A port the datapath has (or tried to attach).
#[derive(Debug)]
struct Live {
    ofport: u32,
    kind: PortKind,
    /// Attached (its socket in the loops, or, for VXLAN, the uplink).
    up: bool,
    /// Why it is not: `Interface.error`.
    error: Option<String>,
    /// The datapath end of an internal interface's veth pair.
    peer: Option<String>,
}

/// The uplink the VXLAN port runs over.
struct Uplink {
    ifname: String,
    vtep: LocalVtep,
    local_mac: u64,
    _prog: UplinkProgram,
    _lock: Option<std::fs::File>,
}

/// The switch: its datapath and what it made of the database.
pub struct Switchd {
    dp: Datapath,
    control: Control,
    xsk: XskOptions,
    paths: Paths,
    /// The bridge served (the database's first).
    bridge: BridgeName,
    /// Its management socket, once bound.
    mgmt: Option<(String, PathBuf)>,
    /// Interface name → port.
    ports: BTreeMap<String, Live>,
    uplink: Option<Uplink>,
    /// The VXLAN port's `options:local_ip`.
    local_ip: Option<Ipv4Addr>,
    /// The last uplink problem logged (each logged once).
    uplink_err: String,
    neigh: Neighbours,
    of_ports: Arc<Mutex<Vec<OfPort>>>,
    /// The ports the tables were last told exist.
    published: BTreeSet<u32>,
    /// Bridges whose datapath_id is written.
    dpid_written: BTreeSet<String>,
    /// Warnings logged once.
    warned: BTreeSet<String>,
    /// Which sources the host's translations are looked up for.
    host_scope: Arc<Mutex<HostScope>>,
    /// `other_config:pmd-cpu-mask` as the loops were started with it.
    pmd_mask: Option<String>,
    /// What was last written of each interface's status (UUID → row).
    status: BTreeMap<String, Value>,
    /// When the interfaces' statistics were last written.
    last_stats: Instant,
    /// The node-agent calls (answered by [`Switchd::tick`]).
    calls: crossbeam_channel::Receiver<NodeCall>,
}

/// The OpenFlow versions a bridge's `protocols` allow (a HELLO version
/// bitmap; every version sdnfwd speaks when empty, as OVS's default), and
/// the names it cannot serve (OpenFlow11, OpenFlow12, unknown ones).
fn protocol_versions(protocols: &[String]) -> (u32, Vec<String>) {
    use slowpath::openflow::codec::ALL_VERSIONS;
    if protocols.is_empty() {
        return (ALL_VERSIONS, Vec::new());
    }
    let mut bits = 0;
    let mut unknown = Vec::new();
    for p in protocols {
        match p.strip_prefix("OpenFlow1").and_then(|v| v.parse::<u32>().ok()) {
            Some(v @ 0..=5) if ALL_VERSIONS & (1 << (v + 1)) != 0 => bits |= 1 << (v + 1),
            _ => unknown.push(p.clone()),
        }
    }
    (bits, unknown)
}

/// The datapath end of internal interface `name`'s veth pair (interface
/// names have 15 bytes at most).
fn peer_name(name: &str) -> String {
    let head: String = name.chars().take(12).collect();
    format!("{head}-dp")
}

/// The datapath id a database's switch gets: sdnfwd's prefix and 32 bits
/// of the Open_vSwitch row's UUID (the same across restarts).
fn dpid_of(switch_uuid: &str) -> u64 {
    let low = u64::from_str_radix(&switch_uuid.replace('-', "").chars().take(8).collect::<String>(), 16).unwrap_or(0);
    (0x5d9f_u64 << 32) | low
}

impl Switchd {
    /// Starts the datapath (poll loops on `other_config:pmd-cpu-mask`'s
    /// cores, else the first core this process may use) with empty tables:
    /// a secure bridge drops until flows come.
    ///
    /// # Errors
    /// A thread that cannot start.
    pub fn start(first: &Switch, paths: &Paths, xsk: XskOptions, maxsleep: Duration) -> Result<Switchd, String> {
        let cores = match first.other_config.get("pmd-cpu-mask") {
            Some(m) => match pmd_cores(m) {
                Ok(c) => c,
                Err(e) => {
                    logging::log(Level::Warn, &format!("other_config:{e}; one poll loop on the first core"));
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let cores = if cores.is_empty() {
            vec![core_affinity::get_core_ids().and_then(|c| c.first().map(|c| c.id)).unwrap_or(0)]
        } else {
            cores
        };
        let mut of = slowpath::Ofproto::new();
        of.ports = Some(BTreeSet::new());
        // The host's translations (kube-proxy's service DNAT through
        // tun0), for pods' addresses as tun0's routes show them once the
        // SDN has set tun0 up.
        let host_scope = Arc::new(Mutex::new(HostScope::default()));
        let host_nat = match slowpath::hostnat::KernelConntrack::open() {
            Ok(kernel) => Some(HostNat { kernel, scope: host_scope.clone() }),
            Err(e) => {
                logging::log(
                    Level::Warn,
                    &format!("host translations: {e}; replies to a service through tun0 keep the backend's address"),
                );
                None
            }
        };
        let mut dp = Datapath::new(
            Config {
                cores: cores.clone(),
                ct: CtConfig::default(),
                maxsleep,
                tunnel: TunnelState::default(),
                host_nat,
            },
            of,
        );
        dp.start()?;
        let (call_tx, calls) = crossbeam_channel::unbounded();
        let of_ports = Arc::new(Mutex::new(Vec::new()));
        let header = format!("sdnfwd vswitchd: {} poll loop(s) on core(s) {cores:?}", cores.len());
        let control = dp.control("vswitchd", header, dpid_of(&first.uuid), call_tx, of_ports.clone());
        log(&format!("datapath: {} poll loop(s) on core(s) {cores:?}", cores.len()));
        Ok(Switchd {
            dp,
            control,
            xsk,
            paths: paths.clone(),
            bridge: Arc::new(Mutex::new(None)),
            mgmt: None,
            ports: BTreeMap::new(),
            uplink: None,
            local_ip: None,
            uplink_err: String::new(),
            neigh: Neighbours::new(Vec::new()),
            of_ports,
            published: BTreeSet::new(),
            dpid_written: BTreeSet::new(),
            warned: BTreeSet::new(),
            host_scope,
            pmd_mask: first.other_config.get("pmd-cpu-mask").cloned(),
            status: BTreeMap::new(),
            last_stats: Instant::now(),
            calls,
        })
    }

    /// After a reconnection: what was written is written again where it
    /// is needed (a restarted ovsdb-server forgets ephemeral columns:
    /// `datapath_id`, `mac_in_use`, `link_state`, `statistics`).
    pub fn resync(&mut self) {
        self.dpid_written.clear();
        self.status.clear();
    }

    /// The `ovs-appctl` commands.
    pub fn commands(&self, exit: Arc<AtomicBool>) -> Commands {
        let mut c = Commands::default();
        crate::appctl::register(&mut c, self.control.clone(), self.bridge.clone(), exit);
        c
    }

    fn warn_once(&mut self, w: String) {
        if self.warned.insert(w.clone()) {
            logging::log(Level::Warn, &w);
        }
    }

    /// Makes the datapath follow `s`; the writes that report it.
    pub fn reconcile(&mut self, s: &Switch) -> Vec<Value> {
        let mut assigned: BTreeMap<String, Result<i64, String>> = BTreeMap::new();
        let mut ops = Vec::new();
        let bridge = s.bridges.first();
        for other in s.bridges.iter().skip(1) {
            for i in other.ports.iter().flat_map(|p| &p.interfaces) {
                let b = bridge.map(|b| b.name.as_str()).unwrap_or_default();
                assigned.insert(
                    i.uuid.clone(),
                    Err(format!("sdnfwd serves one bridge ({b}); bridge {} is not served", other.name)),
                );
            }
        }
        let mask = s.other_config.get("pmd-cpu-mask");
        if mask != self.pmd_mask.as_ref() {
            self.warn_once(format!(
                "other_config:pmd-cpu-mask={}: the poll loops keep the cores they started on ({}) until sdnfwd \
                 restarts",
                mask.map_or("(none)", String::as_str),
                self.pmd_mask.as_deref().unwrap_or("no mask")
            ));
        }
        let served = bridge.map(|b| b.name.clone());
        let was = self.bridge.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if was.is_some() && was != served {
            // The bridge is gone (or renamed): its ports and flows with it,
            // as ovs-vswitchd's del-br removes the datapath's.
            log(&format!("bridge {} removed: its ports, flows and groups are gone", was.clone().unwrap_or_default()));
            for name in self.ports.keys().cloned().collect::<Vec<_>>() {
                self.remove(&name);
            }
            let cmds = vec![
                FlowCommand::Delete { strict: false, spec: FlowSpec::default() },
                FlowCommand::Group(GroupCommand::Delete(None)),
            ];
            let _ = on_slow_path(&self.control, move |sp| sp.apply_atomic(&cmds, 0));
            if let Some((_, path)) = self.mgmt.take() {
                let _ = std::fs::remove_file(path);
            }
        }
        *self.bridge.lock().unwrap_or_else(|p| p.into_inner()) = served.clone();
        if let Some(b) = bridge {
            if b.fail_mode.as_deref() != Some("secure") {
                self.warn_once(format!(
                    "bridge {}: fail_mode={}: sdnfwd has no NORMAL (learning switch) action; the bridge acts as \
                     fail_mode=secure (no flow, no forwarding)",
                    b.name,
                    b.fail_mode.as_deref().unwrap_or("standalone (the default)")
                ));
            }
            let (versions, unknown) = protocol_versions(&b.protocols);
            for p in unknown {
                self.warn_once(format!(
                    "bridge {}: protocols {p} is not spoken (OpenFlow10, OpenFlow13, OpenFlow14, OpenFlow15 are)",
                    b.name
                ));
            }
            self.control.of_versions.store(versions, std::sync::atomic::Ordering::Relaxed);
            if self.mgmt.is_none() {
                self.bind_mgmt(&b.name);
            }
            let prev: BTreeMap<String, i64> =
                self.ports.iter().map(|(n, l)| (n.clone(), i64::from(l.ofport))).collect();
            let p = plan(b, &prev);
            for w in p.warnings {
                self.warn_once(w);
            }
            // Gone, or changed number or kind: removed first.
            let stale: Vec<String> = self
                .ports
                .iter()
                .filter(|(n, l)| !p.ports.iter().any(|x| &x.name == *n && x.ofport == l.ofport && x.kind == l.kind))
                .map(|(n, _)| n.clone())
                .collect();
            for n in stale {
                self.remove(&n);
            }
            self.local_ip = b
                .ports
                .iter()
                .flat_map(|p| &p.interfaces)
                .find(|i| i.kind == "vxlan")
                .and_then(|i| i.options.get("local_ip"))
                .and_then(|ip| ip.parse().ok());
            for (k, x) in p.ports.iter().enumerate() {
                if !self.ports.contains_key(&x.name) {
                    let live = self.add(&x.name, x.ofport, &x.kind, k);
                    self.ports.insert(x.name.clone(), live);
                }
            }
            for i in b.ports.iter().flat_map(|p| &p.interfaces) {
                if let Some(mtu) = i.mtu_request {
                    self.apply_mtu(&i.name, mtu);
                }
                let a = match (p.refused.get(&i.name), self.ports.get(&i.name)) {
                    (Some(e), _) => Err(e.clone()),
                    (None, Some(l)) => match &l.error {
                        Some(e) => Err(e.clone()),
                        None => Ok(i64::from(l.ofport)),
                    },
                    (None, None) => continue,
                };
                assigned.insert(i.uuid.clone(), a);
            }
            for (name, why) in &p.refused {
                self.warn_once(format!("bridge {}: interface {name}: {why}", b.name));
            }
            if self.dpid_written.insert(b.uuid.clone()) {
                ops.push(json!({"op": "update", "table": "Bridge", "where": [["_uuid", "==", ["uuid", b.uuid]]],
                                "row": {"datapath_id": format!("{:016x}", self.control.dpid)}}));
            }
        }
        self.publish_ports();
        ops.extend(write_back(s, &assigned));
        if let Some(b) = bridge {
            ops.extend(self.status_ops(b));
        }
        ops
    }

    /// The writes of each served interface's `mac_in_use`, `link_state`
    /// and, every [`STATS_INTERVAL`], `statistics` (as ovs-vswitchd's
    /// `stats-update-interval`), where they changed.
    fn status_ops(&mut self, b: &Bridge) -> Vec<Value> {
        let stats_due = self.last_stats.elapsed() >= STATS_INTERVAL;
        let mut counters: BTreeMap<u32, PortCounters> = BTreeMap::new();
        if stats_due {
            self.last_stats = Instant::now();
            let vxlan = self.ports.values().find(|l| matches!(l.kind, PortKind::Vxlan { .. })).map(|l| l.ofport);
            for (_, ofport, _, pc, _) in port_dumps(&self.control).unwrap_or_default() {
                let ofport = if ofport == UPLINK { vxlan.unwrap_or(ofport) } else { ofport };
                let c = counters.entry(ofport).or_default();
                c.rx_packets += pc.rx_packets;
                c.rx_bytes += pc.rx_bytes;
                c.tx_packets += pc.tx_packets;
                c.tx_bytes += pc.tx_bytes;
            }
        }
        let mut ops = Vec::new();
        for i in b.ports.iter().flat_map(|p| &p.interfaces) {
            let Some(l) = self.ports.get(&i.name) else { continue };
            let mut row = self.status.get(&i.uuid).cloned().unwrap_or_else(|| json!({}));
            let kernel = matches!(l.kind, PortKind::System | PortKind::Internal) && l.error.is_none();
            let sys = |f: &str| std::fs::read_to_string(format!("/sys/class/net/{}/{f}", i.name)).ok();
            if kernel {
                if let Some(mac) = sys("address") {
                    row["mac_in_use"] = json!(mac.trim());
                }
                if let Some(mtu) = sys("mtu").and_then(|m| m.trim().parse::<i64>().ok()) {
                    row["mtu"] = json!(mtu);
                }
                let up = sys("carrier").is_some_and(|c| c.trim() == "1");
                row["link_state"] = json!(if up { "up" } else { "down" });
            } else {
                row["link_state"] = json!(if l.up { "up" } else { "down" });
            }
            if stats_due && l.up {
                let c = counters.get(&l.ofport).copied().unwrap_or_default();
                row["statistics"] = json!([
                    "map",
                    [
                        ["rx_bytes", c.rx_bytes],
                        ["rx_packets", c.rx_packets],
                        ["tx_bytes", c.tx_bytes],
                        ["tx_packets", c.tx_packets]
                    ]
                ]);
            }
            if self.status.get(&i.uuid) != Some(&row) {
                ops.push(json!({"op": "update", "table": "Interface", "where": [["_uuid", "==", ["uuid", i.uuid]]],
                                "row": row.clone()}));
                self.status.insert(i.uuid.clone(), row);
            }
        }
        ops
    }

    /// The ports as OpenFlow lists them, and the set the tables may
    /// output to.
    fn publish_ports(&mut self) {
        let mut list: Vec<OfPort> = self
            .ports
            .iter()
            .map(|(n, l)| OfPort {
                ofport: l.ofport,
                name: n.clone(),
                ifname: match &l.kind {
                    PortKind::Vxlan { .. } => self.uplink.as_ref().map(|u| u.ifname.clone()),
                    PortKind::Local => None,
                    _ => Some(n.clone()),
                },
                up: l.up,
            })
            .collect();
        list.sort_by_key(|p| p.ofport);
        let set: BTreeSet<u32> = self.ports.values().filter(|l| l.up).map(|l| l.ofport).collect();
        *self.of_ports.lock().unwrap_or_else(|p| p.into_inner()) = list;
        if set != self.published {
            // Before cur_cfg says the change is applied (and ovs-vsctl
            // returns): every loop has taken its port commands (they are
            // answered in order), and the tables know the ports (their
            // megaflows revalidated).
            if let Err(e) = port_dumps(&self.control) {
                logging::log(Level::Warn, &format!("port change: {e}"));
            }
            let _ = self.control.slow.send(Command::Ports(Some(set.clone())));
            let _ = on_slow_path(&self.control, |_| ());
            self.published = set;
        }
    }

    fn bind_mgmt(&mut self, bridge: &str) {
        let path = self.paths.mgmt(bridge);
        let target = format!("punix:{}", path.display());
        match crate::openflow::listen(&target, &self.control) {
            Ok(_) => {
                log(&format!("bridge {bridge}: OpenFlow 1.0, 1.3-1.5 on {target} (ovs-ofctl ... {bridge})"));
                self.mgmt = Some((bridge.to_string(), path));
            }
            Err(e) => self.warn_once(format!("bridge {bridge}: management socket {e}")),
        }
    }

    /// `mtu_request` on a kernel or internal interface (and an internal
    /// one's datapath end), where it differs from the interface's MTU.
    fn apply_mtu(&mut self, name: &str, mtu: i64) {
        let Some(l) = self.ports.get(name) else { return };
        if !matches!(l.kind, PortKind::System | PortKind::Internal) || !l.up {
            return;
        }
        let peer = l.peer.clone();
        let cur = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu")).ok();
        if cur.as_deref().map(str::trim) == Some(mtu.to_string().as_str()) {
            return;
        }
        let m = mtu.to_string();
        for i in std::iter::once(name.to_string()).chain(peer) {
            match sh("ip", &["link", "set", "dev", &i, "mtu", &m]) {
                Ok(_) => log(&format!("{i}: mtu {m} (mtu_request of {name})")),
                Err(e) => self.warn_once(format!("interface {name}: mtu_request={m}: {e}")),
            }
        }
    }

    /// Attaches a planned port (`k`: its place, which loop receives it).
    fn add(&mut self, name: &str, ofport: u32, kind: &PortKind, k: usize) -> Live {
        let mut l = Live { ofport, kind: kind.clone(), up: false, error: None, peer: None };
        match kind {
            PortKind::Local => l.up = true,
            PortKind::Vxlan { .. } => {
                log(&format!("port {ofport} ({name}): VXLAN, attached once the flows name a remote VTEP"));
            }
            PortKind::System => {
                if !if_exists(name) {
                    l.error = Some(format!("could not open network device {name} (No such device)"));
                } else {
                    self.attach_system(name, &mut l, k);
                }
            }
            PortKind::Internal => match make_internal(name) {
                Ok(peer) => {
                    let xsk = self.xsk;
                    match self.dp.add_xsk_port(ofport, &peer, &format!("internal {name}"), k, xsk, false) {
                        Ok(()) => l.up = true,
                        Err(e) => l.error = Some(format!("{name}: {e}")),
                    }
                    l.peer = Some(peer);
                }
                Err(e) => l.error = Some(e),
            },
        }
        if let Some(e) = &l.error {
            logging::log(Level::Warn, &format!("port {ofport} ({name}): {e}"));
        }
        l
    }

    fn attach_system(&mut self, name: &str, l: &mut Live, k: usize) {
        let xsk = self.xsk;
        match self.dp.add_xsk_port(l.ofport, name, "system", k, xsk, true) {
            Ok(()) => {
                l.up = true;
                l.error = None;
            }
            Err(e) => l.error = Some(format!("could not attach {name}: {e}")),
        }
    }

    /// Removes port `name` from the datapath (an internal interface's veth
    /// pair deleted, the uplink let go).
    fn remove(&mut self, name: &str) {
        let Some(l) = self.ports.remove(name) else { return };
        match l.kind {
            PortKind::Local => {}
            PortKind::Vxlan { .. } => {
                if let Some(u) = self.uplink.take() {
                    self.dp.remove_port(UPLINK);
                    let _ = self.control.slow.send(Command::Tunnel(TunnelState::default()));
                    log(&format!("port {} ({name}) removed: uplink {} let go", l.ofport, u.ifname));
                }
            }
            _ => {
                if l.up {
                    self.dp.remove_port(l.ofport);
                }
                if l.peer.is_some() {
                    let _ = sh("ip", &["link", "del", name]);
                }
                log(&format!("port {} ({name}) removed", l.ofport));
            }
        }
    }

    /// What runs twice a second: ports whose interface appeared attached,
    /// the uplink found once flows name a remote VTEP, the remote VTEPs'
    /// next hops refreshed, node-agent calls answered. True when something
    /// to write back changed.
    pub fn tick(&mut self) -> bool {
        while let Ok(call) = self.calls.try_recv() {
            let answer = match call.req {
                NodeRequest::Ports => Ok(self.port_table()),
                _ => Err("sdnfwd vswitchd takes its pods and flows from the OVS database and OpenFlow".to_string()),
            };
            let _ = call.reply.send(answer);
        }
        let mut changed = self.last_stats.elapsed() >= STATS_INTERVAL;
        if changed {
            self.refresh_host_scope();
        }
        let waiting: Vec<(String, usize)> = self
            .ports
            .iter()
            .enumerate()
            .filter(|(_, (n, l))| l.kind == PortKind::System && !l.up && if_exists(n))
            .map(|(k, (n, _))| (n.clone(), k))
            .collect();
        for (name, k) in waiting {
            if let Some(mut l) = self.ports.remove(&name) {
                self.attach_system(&name, &mut l, k);
                changed |= l.up;
                self.ports.insert(name, l);
            }
        }
        let vxlan = self.ports.iter().find_map(|(n, l)| match l.kind {
            PortKind::Vxlan { dst_port } => Some((n.clone(), l.ofport, dst_port)),
            _ => None,
        });
        let Some((name, ofport, dst_port)) = vxlan else { return changed };
        let remotes = on_slow_path(&self.control, |s| remote_vteps(&s.ofproto)).unwrap_or_default();
        if self.uplink.is_none() {
            if remotes.is_empty() {
                return changed;
            }
            match self.attach_uplink(&remotes, ofport, dst_port) {
                Ok(u) => {
                    log(&format!(
                        "port {ofport} ({name}): VTEP {}:{dst_port} on uplink {}",
                        Ipv4Addr::from(u.vtep.ip),
                        u.ifname
                    ));
                    self.uplink = Some(u);
                    self.uplink_err.clear();
                    if let Some(l) = self.ports.get_mut(&name) {
                        l.up = true;
                    }
                    self.publish_ports();
                    changed = true;
                }
                Err(e) => {
                    if e != self.uplink_err {
                        logging::log(Level::Warn, &format!("port {ofport} ({name}): {e}"));
                        self.uplink_err = e;
                    }
                    return changed;
                }
            }
        }
        let vteps: Vec<Ipv4Addr> = remotes.into_iter().map(Ipv4Addr::from).collect();
        if vteps != self.neigh.vteps {
            self.neigh.vteps = vteps;
        }
        if self.neigh.refresh(&mut |m| log(&m)) {
            if let Some(u) = &self.uplink {
                let t = TunnelState {
                    vtep: Some(u.vtep),
                    local_mac: u.local_mac,
                    neighbours: self.neigh.known.iter().map(|(k, v)| (*k, *v)).collect(),
                };
                let _ = self.control.slow.send(Command::Tunnel(t));
            }
        }
        changed
    }

    /// tun0's address and the prefixes routed through it (the cluster and
    /// service networks openshift-sdn routes there): the sources whose
    /// connections from tun0 may be kube-proxy's translations.
    fn refresh_host_scope(&mut self) {
        let tun0 = self.ports.iter().find(|(_, l)| l.ofport == slowpath::ofproto::TUN0_PORT && l.peer.is_some());
        let Some((name, _)) = tun0 else { return };
        let addr = ip_json(&["-4", "addr", "show", "dev", name])
            .ok()
            .and_then(|j| j[0]["addr_info"][0]["local"].as_str().and_then(|a| a.parse::<Ipv4Addr>().ok()));
        let routes = ip_json(&["-4", "route", "show", "dev", name]).unwrap_or_default();
        let pods: Vec<config::yaml::Cidr> = routes
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["dst"].as_str()?.parse().ok().map(config::yaml::Cidr))
            .collect();
        let mut s = self.host_scope.lock().unwrap_or_else(|p| p.into_inner());
        s.gw = addr.map_or(0, u32::from);
        s.pods = pods;
    }

    /// The uplink for VTEPs `remotes`: the interface holding the VXLAN
    /// port's `options:local_ip`, else the kernel's route to the first.
    fn attach_uplink(&mut self, remotes: &BTreeSet<u32>, ofport: u32, dst_port: u16) -> Result<Uplink, String> {
        let (ifname, local) = match self.local_ip {
            Some(ip) => (holder_of(ip)?, ip),
            None => {
                let first = Ipv4Addr::from(*remotes.iter().next().ok_or("no remote VTEP")?);
                let (ifname, local) = route_to(first)?;
                if ifname == "lo" {
                    return Err(format!("the route to VTEP {first} is the loopback's"));
                }
                (ifname, local)
            }
        };
        let (lock, leftover) = match uplink_lock(&ifname) {
            Ok(l) => (Some(l), Leftover::ReplaceOwn),
            Err(UplinkLockError::Held(why)) => return Err(format!("uplink: {why}")),
            Err(UplinkLockError::Unavailable(_)) => (None, Leftover::Refuse),
        };
        let local_mac = mac_of(&ifname)?;
        let xsk = self.xsk;
        let prog = self.dp.add_uplink(&ifname, xsk, u32::from(local), dst_port, leftover)?;
        let vtep = LocalVtep { ip: u32::from(local), udp_port: dst_port, port: ofport };
        let _ = self.control.slow.send(Command::Tunnel(TunnelState {
            vtep: Some(vtep),
            local_mac,
            neighbours: Default::default(),
        }));
        Ok(Uplink { ifname, vtep, local_mac, _prog: prog, _lock: lock })
    }

    /// `sdnfwd ctl show`'s port list.
    fn port_table(&self) -> String {
        let mut v: Vec<(&String, &Live)> = self.ports.iter().collect();
        v.sort_by_key(|(_, l)| l.ofport);
        v.iter()
            .map(|(n, l)| {
                let state = match (&l.error, l.up) {
                    (Some(e), _) => format!("down: {e}"),
                    (None, true) => "up".into(),
                    (None, false) => "down".into(),
                };
                format!("  port {:>5}: {n} ({:?}) {state}\n", l.ofport, l.kind)
            })
            .collect()
    }

    /// Stops the datapath; internal interfaces are deleted, the uplink's
    /// XDP program detached.
    ///
    /// # Errors
    /// A datapath thread that panicked.
    pub fn stop(self) -> Result<(), String> {
        if let Some((_, p)) = &self.mgmt {
            let _ = std::fs::remove_file(p);
        }
        let stopped = self.dp.stop();
        for (n, l) in &self.ports {
            if l.peer.is_some() {
                let _ = sh("ip", &["link", "del", n]);
            }
        }
        drop(self.uplink);
        stopped.map(|_| ())
    }
}

/// Makes internal interface `name`: a veth pair whose datapath end
/// ([`peer_name`]) the loops serve, `name` left down for the SDN to
/// address and bring up, as an OVS internal port is. One left by a killed
/// sdnfwd (its peer there too) is made anew.
fn make_internal(name: &str) -> Result<String, String> {
    let peer = peer_name(name);
    if if_exists(name) {
        if if_exists(&peer) {
            let _ = sh("ip", &["link", "del", name]);
        } else {
            return Err(format!("could not add network device {name} to ofproto (File exists)"));
        }
    }
    let q = ["numrxqueues", "1", "numtxqueues", "1"];
    let mut args = vec!["link", "add", name];
    args.extend(q);
    args.extend(["type", "veth", "peer", "name", &peer]);
    args.extend(q);
    sh("ip", &args)?;
    // The host sends through this veth: complete checksums (DESIGN.md §8).
    let _ = sh("ethtool", &["-K", name, "tx", "off"]);
    sh("ip", &["link", "set", &peer, "up"])?;
    Ok(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovsdb::test_port as iface;

    #[test]
    fn test_protocols_narrow_the_versions() {
        let v = |p: &[&str]| protocol_versions(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(v(&[]).0, slowpath::openflow::codec::ALL_VERSIONS);
        assert_eq!(v(&["OpenFlow13"]), (1 << 4, vec![]));
        assert_eq!(v(&["OpenFlow10", "OpenFlow15"]), (1 << 1 | 1 << 6, vec![]));
        assert_eq!(v(&["OpenFlow12", "OpenFlow13"]), (1 << 4, vec!["OpenFlow12".to_string()]));
    }

    /// What an op writes to interface `uuid` (ofport, error), if it does.
    fn written(ops: &[Value], uuid: &str) -> Option<(i64, Value)> {
        ops.iter().find_map(|o| {
            (o["table"] == "Interface" && o["where"][0][2][1] == uuid && o["row"].get("ofport").is_some())
                .then(|| (o["row"]["ofport"].as_i64().unwrap_or(0), o["row"]["error"].clone()))
        })
    }

    /// The reconciler on a bridge whose ports need no root: the bridge's
    /// own port, the VXLAN port (waiting for flows), a kernel interface
    /// that does not exist and an unsupported type; a second bridge is
    /// refused; a deleted port frees its number; cur_cfg follows next_cfg.
    #[test]
    fn test_reconcile_writes_back_as_vswitchd() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::resolve(&Default::default(), 1, |k| {
            (k == "OVS_RUNDIR").then(|| dir.path().to_string_lossy().into_owned())
        });
        let flow = [("remote_ip", "flow"), ("key", "flow")];
        let mut sw = Switch {
            uuid: "7bd4e3a1-0000".into(),
            next_cfg: 2,
            cur_cfg: 1,
            bridges: vec![
                Bridge {
                    uuid: "b0".into(),
                    name: "br0".into(),
                    fail_mode: Some("secure".into()),
                    ports: vec![
                        iface("br0", "internal", None, &[]),
                        iface("vxlan0", "vxlan", Some(1), &flow),
                        iface("sdnfwd-nx9", "", Some(3), &[]),
                        iface("gnv0", "geneve", None, &[]),
                    ],
                    ..Default::default()
                },
                Bridge {
                    uuid: "b1".into(),
                    name: "br1".into(),
                    ports: vec![iface("x1", "", None, &[])],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let xsk = XskOptions { mode: fastpath::port::xsk::XdpMode::Skb, zero_copy: false };
        let mut d = Switchd::start(&sw, &paths, xsk, Duration::ZERO).unwrap();
        let ops = d.reconcile(&sw);
        assert_eq!(written(&ops, "i-br0"), Some((65534, json!(["set", []]))));
        assert_eq!(written(&ops, "i-vxlan0"), Some((1, json!(["set", []]))));
        assert_eq!(
            written(&ops, "i-sdnfwd-nx9"),
            Some((-1, json!("could not open network device sdnfwd-nx9 (No such device)")))
        );
        assert!(written(&ops, "i-gnv0").unwrap().1.as_str().unwrap().contains("type `geneve` is not supported"));
        assert!(written(&ops, "i-x1").unwrap().1.as_str().unwrap().contains("bridge br1 is not served"));
        assert!(ops.iter().any(|o| o["table"] == "Open_vSwitch" && o["row"]["cur_cfg"] == 2), "{ops:?}");
        assert!(ops.iter().any(|o| o["table"] == "Bridge" && o["row"]["datapath_id"] == "00005d9f7bd4e3a1"));
        assert!(dir.path().join("br0.mgmt").exists());
        // The database now says it all: nothing more to write.
        for b in &mut sw.bridges {
            for i in b.ports.iter_mut().flat_map(|p| &mut p.interfaces) {
                if let Some((n, e)) = written(&ops, &i.uuid) {
                    i.ofport = Some(n);
                    i.error = e.as_str().map(str::to_string);
                }
            }
        }
        sw.cur_cfg = 2;
        let again = d.reconcile(&sw);
        assert!(again.iter().all(|o| o["table"] != "Open_vSwitch" && o["row"].get("ofport").is_none()), "{again:?}");
        // vxlan0 deleted, a new port takes its number when it asks for none.
        sw.bridges[0].ports.retain(|p| p.name != "vxlan0");
        sw.bridges[0].ports.push(iface("sdnfwd-nx8", "", None, &[]));
        let ops = d.reconcile(&sw);
        assert_eq!(written(&ops, "i-sdnfwd-nx8").map(|w| w.0), Some(-1));
        assert!(d.ports.get("sdnfwd-nx8").is_some_and(|l| l.ofport == 1), "{:?}", d.ports);
        // The bridge deleted: its ports go, and its management socket.
        sw.bridges.clear();
        d.reconcile(&sw);
        assert!(d.ports.is_empty() && !dir.path().join("br0.mgmt").exists());
        d.stop().unwrap();
    }

    #[test]
    fn test_names() {
        assert_eq!(peer_name("tun0"), "tun0-dp");
        assert_eq!(peer_name("a-very-long-name"), "a-very-long--dp");
        assert!(peer_name("a-very-long-name").len() <= 15);
        assert_eq!(dpid_of("7bd4e3a1-0000-4000-8000-000000000000"), 0x5d9f_7bd4_e3a1);
    }
}
