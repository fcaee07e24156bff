//! What a running node's control surfaces reach, and how: the control
//! socket (`ctl`), the metrics endpoint and the OpenFlow listener
//! (`openflow`) each hold a [`Control`] and go through it to the slow-path
//! thread (commands answered on a reply channel), the poll loops (port
//! dumps) and the main thread (cluster changes, reloads and the lists of
//! pods, HostSubnets and NetworkPolicies: [`NodeCall`]).

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use fastpath::pmd::PmdCommand;
use fastpath::stats::{PmdBaseline, PmdStats};
use slowpath::upcall::{Command, SlowPath};

/// A node's port as the OpenFlow view lists it: OpenFlow number, name,
/// the interface whose address it reports, and whether it is attached.
#[derive(Clone, Debug)]
pub struct OfPort {
    /// OpenFlow port number.
    pub ofport: u32,
    /// The name OpenFlow shows (vxlan0, tun0, the pod's veth).
    pub name: String,
    /// Interface to read the Ethernet address from (none for vxlan0).
    pub ifname: Option<String>,
    /// Attached to a poll loop.
    pub up: bool,
}

/// What the control socket asks of the main thread, which owns the node's
/// desired state (config file plus runtime changes) and its ports.
#[derive(Debug)]
pub enum NodeRequest {
    /// A cluster change (`pod add ...`): the command as typed, the change.
    Edit(String, Box<crate::state::Edit>),
    /// Re-read the config file, as SIGHUP does; answers the diff applied.
    Reload,
    /// `pod list`.
    PodList,
    /// `hostsubnet list`.
    HostSubnetList,
    /// `policy list`.
    PolicyList,
    /// The ports as the node knows them: number, interface, what, up.
    Ports,
}

/// A request to the main thread and where its answer goes (text, or an
/// error of one line per problem).
pub struct NodeCall {
    /// The request.
    pub req: NodeRequest,
    /// Where the outcome goes.
    pub reply: Sender<Result<String, String>>,
}

/// What the control thread can reach.
#[derive(Clone)]
pub struct Control {
    /// The node's name, VTEP and cores, for `show`.
    pub header: String,
    /// The node's name.
    pub node: String,
    /// The slow path.
    pub slow: Sender<Command>,
    /// Each poll loop.
    pub pmds: Vec<Sender<PmdCommand>>,
    /// Each poll loop's counters and core.
    pub stats: Vec<(usize, Arc<PmdStats>)>,
    /// `pmd-stats-clear` baselines, one per loop.
    pub baselines: Arc<std::sync::Mutex<Vec<PmdBaseline>>>,
    /// Misses waiting for the slow path.
    pub upcall_depth: Arc<dyn Fn() -> usize + Send + Sync>,
    /// Requests to the main thread (cluster changes, reload, lists).
    pub node_calls: Sender<NodeCall>,
    /// The datapath id the OpenFlow listener reports.
    pub dpid: u64,
    /// The node's ports as OpenFlow lists them (kept by the main thread).
    pub of_ports: Arc<std::sync::Mutex<Vec<OfPort>>>,
    /// The connection tracker the poll loops share.
    pub ct: Arc<fastpath::conntrack::Conntrack>,
    /// The OpenFlow versions the node's listeners accept (a HELLO version
    /// bitmap; a bridge's `protocols` narrow them).
    pub of_versions: Arc<std::sync::atomic::AtomicU32>,
}

/// Sends the slow path a command carrying a reply channel; waits for the
/// answer.
pub fn ask<T>(c: &Control, make: impl FnOnce(Sender<T>) -> Command) -> Result<T, String> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    c.slow.send(make(tx)).map_err(|_| "the slow path is gone".to_string())?;
    rx.recv_timeout(Duration::from_secs(10)).map_err(|_| "the slow path did not answer".to_string())
}

/// Runs `f` on the slow-path thread, the rule counters credited first
/// (what dumps show), and waits for its answer.
pub fn on_slow_path<T: Send + 'static>(
    c: &Control,
    f: impl FnOnce(&mut SlowPath) -> T + Send + 'static,
) -> Result<T, String> {
    ask(c, |tx| {
        Command::Call(Box::new(move |s| {
            s.credit_rules();
            let _ = tx.send(f(s));
        }))
    })
}

/// Asks the main thread; waits for its answer.
pub fn ask_node(c: &Control, req: NodeRequest) -> Result<String, String> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    c.node_calls.send(NodeCall { req, reply: tx }).map_err(|_| "the node is stopping".to_string())?;
    rx.recv_timeout(Duration::from_secs(30)).map_err(|_| "the node did not answer".to_string())?
}

/// Each loop's ports: (loop, OpenFlow port, name, counters, details).
pub type PortDump = Vec<(usize, u32, String, fastpath::port::api::PortCounters, String)>;

/// Every poll loop's ports and their counters, asked of each loop.
pub fn port_dumps(c: &Control) -> Result<PortDump, String> {
    let mut out = Vec::new();
    for (i, p) in c.pmds.iter().enumerate() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        p.send(PmdCommand::DumpPorts(tx)).map_err(|_| "a poll loop is gone".to_string())?;
        let ports = rx.recv_timeout(Duration::from_secs(5)).map_err(|_| format!("poll loop {i} did not answer"))?;
        out.extend(ports.into_iter().map(|(ofport, name, pc, detail)| (i, ofport, name, pc, detail)));
    }
    Ok(out)
}
