//! The OpenFlow 1.3 listener (`sdnfwd run --openflow ptcp:PORT[:IP]` or
//! `punix:PATH`): what lets the real `ovs-ofctl -O OpenFlow13` (or a
//! controller) program and read a node's tables as it would Open vSwitch's.
//!
//! Each connection is a thread. It says HELLO (1.3 only; a peer that cannot
//! speak 1.3 gets HELLO_FAILED and is closed), then answers ECHO, FEATURES,
//! GET_CONFIG/SET_CONFIG, BARRIER, ROLE and async-config requests, applies
//! FLOW_MODs (add, modify, delete, strict or not, cookie masks; conntrack
//! matches and actions, `group:N`) and GROUP_MODs (add, modify, delete) and
//! serves the multipart requests DESC, FLOW, AGGREGATE, TABLE, PORT_STATS,
//! PORT_DESC, TABLE_FEATURES (unnamed tables), GROUP_DESC, GROUP (group
//! statistics: sdnfwd counts no packets per group, so a group reports the
//! counters of the flows that name it) and GROUP_FEATURES. Anything else
//! gets the OpenFlow error it is owed, with the request's first 64 bytes,
//! and the connection stays up.
//!
//! Each FLOW_MOD and GROUP_MOD is its own transaction, as OpenFlow has it:
//! a refused one changes nothing and is answered with Open vSwitch's error
//! for it (`OFPBAC_BAD_OUT_GROUP` for a flow naming a missing group,
//! `OFPGMFC_GROUP_EXISTS`, `OFPGMFC_UNKNOWN_GROUP`, ...), the others apply.
//! The mods a client sent back to back (ovs-ofctl add-flows writes the
//! whole file, then a barrier) reach the tables together, in order, so
//! that caches are revalidated once per batch, not once per flow.
//!
//! The node behind the listener is a [`Switch`]: the running datapath's
//! slow path in `sdnfwd run`, or [`TableSwitch`], tables without a
//! datapath.

pub mod codec;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use config::ofctl::FlowCommand;

use crate::ofproto::{FlowModError, FlowModErrorKind, GroupStats, Ofproto, Rule};
use codec::{be16, be32, err, mp, ty, OfError};

/// A port as PORT_DESC and PORT_STATS report it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortDesc {
    /// OpenFlow port number.
    pub port_no: u32,
    /// Interface name (at most 15 bytes go on the wire).
    pub name: String,
    /// Ethernet address (low 48 bits).
    pub mac: u64,
    /// Whether the port is attached (a configured pod whose veth is
    /// missing is down).
    pub up: bool,
    /// Frames received.
    pub rx_packets: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}

/// The node an OpenFlow connection programs.
pub trait Switch: Send + Sync {
    /// The datapath id FEATURES reports.
    fn datapath_id(&self) -> u64;
    /// A line for DESC's `dp_desc`.
    fn description(&self) -> String;
    /// Applies flow and group commands ([`FlowCommand::Group`] for a
    /// GROUP_MOD) one at a time, in order (each its own transaction), then
    /// revalidates the caches once.
    ///
    /// # Errors
    /// When the node cannot be reached (it is stopping).
    fn flow_mods(&self, cmds: Vec<FlowCommand>) -> Result<Vec<Result<(), FlowModError>>, String>;
    /// Every group with its statistics, by id
    /// ([`Ofproto::group_stats`]), the flows' counters up to date.
    ///
    /// # Errors
    /// When the node cannot be reached.
    fn groups(&self) -> Result<Vec<GroupStats>, String>;
    /// Every rule in dump order, with its counters up to date.
    ///
    /// # Errors
    /// When the node cannot be reached.
    fn rules(&self) -> Result<Vec<Arc<Rule>>, String>;
    /// The ports, with their counters.
    ///
    /// # Errors
    /// When the node cannot be reached.
    fn ports(&self) -> Result<Vec<PortDesc>, String>;
}

/// OpenFlow tables without a datapath: what a controller programs, held
/// and dumped (tests, and checking a controller's flows offline).
pub struct TableSwitch {
    /// The tables.
    pub ofproto: Mutex<Ofproto>,
    /// The ports PORT_DESC lists.
    pub ports: Vec<PortDesc>,
}

impl TableSwitch {
    /// Tables with these ports.
    pub fn new(ofproto: Ofproto, ports: Vec<PortDesc>) -> TableSwitch {
        TableSwitch { ofproto: Mutex::new(ofproto), ports }
    }

    fn of(&self) -> std::sync::MutexGuard<'_, Ofproto> {
        self.ofproto.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Switch for TableSwitch {
    fn datapath_id(&self) -> u64 {
        0x5d_9f_d0_00_00_01
    }
    fn description(&self) -> String {
        "br0 (tables only, no datapath)".into()
    }
    fn flow_mods(&self, cmds: Vec<FlowCommand>) -> Result<Vec<Result<(), FlowModError>>, String> {
        let mut of = self.of();
        Ok(cmds.iter().map(|c| of.apply(std::slice::from_ref(c))).collect())
    }
    fn rules(&self) -> Result<Vec<Arc<Rule>>, String> {
        Ok(self.of().rules(None))
    }
    fn groups(&self) -> Result<Vec<GroupStats>, String> {
        Ok(self.of().group_stats())
    }
    fn ports(&self) -> Result<Vec<PortDesc>, String> {
        Ok(self.ports.clone())
    }
}

/// A passive OpenFlow endpoint.
pub enum Listener {
    /// `ptcp:PORT[:IP]`.
    Tcp(TcpListener),
    /// `punix:PATH`.
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `ptcp:PORT[:IP]` (all addresses when no IP is given; port 0
    /// picks a free one) or `punix:PATH` (a stale socket file is replaced,
    /// a live one refused).
    ///
    /// # Errors
    /// A malformed target or a failed bind, naming the target.
    pub fn bind(target: &str) -> Result<Listener, String> {
        if let Some(rest) = target.strip_prefix("ptcp:") {
            let (port, ip) = rest.split_once(':').unwrap_or((rest, "0.0.0.0"));
            let port: u16 = port.parse().map_err(|_| format!("{target}: expected ptcp:PORT[:IP]"))?;
            let ip: std::net::IpAddr = ip.parse().map_err(|_| format!("{target}: `{ip}` is not an IP address"))?;
            let l = TcpListener::bind((ip, port)).map_err(|e| format!("{target}: {e}"))?;
            Ok(Listener::Tcp(l))
        } else if let Some(path) = target.strip_prefix("punix:") {
            let p = PathBuf::from(path);
            if p.exists() {
                if UnixStream::connect(&p).is_ok() {
                    return Err(format!("{target}: something answers there already"));
                }
                let _ = std::fs::remove_file(&p);
            }
            let l = UnixListener::bind(&p).map_err(|e| format!("{target}: {e}"))?;
            Ok(Listener::Unix(l, p))
        } else {
            Err(format!("{target}: expected ptcp:PORT[:IP] or punix:PATH"))
        }
    }

    /// The target a client connects to (`tcp:IP:PORT`, `unix:PATH`).
    pub fn client_target(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp:{}:{}", a.ip(), a.port()),
                Err(_) => "tcp:?".into(),
            },
            Listener::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }

    /// The socket file of a `punix:` listener.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Listener::Unix(_, p) => Some(p),
            Listener::Tcp(_) => None,
        }
    }

    /// Accepts connections until the process ends, one thread each.
    pub fn serve(self, sw: Arc<dyn Switch>) {
        let state = Arc::new(Mutex::new(SwitchConfig::default()));
        let spawn = |conn: Box<dyn Conn>| {
            let (sw, state) = (sw.clone(), state.clone());
            let _ = std::thread::Builder::new().name("sdnfwd-openflow".into()).spawn(move || {
                let _ = Session { sw: &*sw, cfg: &state }.run(conn);
            });
        };
        match self {
            Listener::Tcp(l) => {
                for s in l.incoming().flatten() {
                    let _ = s.set_nodelay(true);
                    spawn(Box::new(s));
                }
            }
            Listener::Unix(l, _) => {
                for s in l.incoming().flatten() {
                    spawn(Box::new(s));
                }
            }
        }
    }
}

/// A connection's byte stream.
pub trait Conn: Read + Write + Send {}
impl Conn for TcpStream {}
impl Conn for UnixStream {}

/// SET_CONFIG's values (shared by the switch's connections).
#[derive(Clone, Copy, Debug)]
struct SwitchConfig {
    flags: u16,
    miss_send_len: u16,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        SwitchConfig { flags: 0, miss_send_len: 128 }
    }
}

/// Most FLOW_MODs and GROUP_MODs applied as one batch.
const MAX_BATCH: usize = 4096;

struct Session<'a> {
    sw: &'a dyn Switch,
    cfg: &'a Mutex<SwitchConfig>,
}

/// Reads one whole message; None at a clean end of stream.
fn read_msg(r: &mut impl BufRead) -> std::io::Result<Option<Vec<u8>>> {
    let mut h = [0u8; 8];
    match r.read_exact(&mut h) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u16::from_be_bytes([h[2], h[3]]) as usize;
    if len < 8 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "OpenFlow message shorter than its header"));
    }
    let mut m = vec![0u8; len];
    m[..8].copy_from_slice(&h);
    r.read_exact(&mut m[8..])?;
    Ok(Some(m))
}

/// Whether the buffered bytes hold a whole FLOW_MOD or GROUP_MOD next.
fn mod_buffered(buf: &[u8]) -> bool {
    codec::Header::parse(buf)
        .is_some_and(|h| matches!(h.ty, ty::FLOW_MOD | ty::GROUP_MOD) && buf.len() >= h.len as usize)
}

/// The OpenFlow error Open vSwitch answers a refused command with.
fn refusal(cmd: &FlowCommand, e: FlowModError) -> OfError {
    use FlowModErrorKind::*;
    let (t, code) = match (cmd, e.kind) {
        (_, MissingGroup) => (err::BAD_ACTION, err::BAC_BAD_OUT_GROUP),
        (FlowCommand::Group(_), GroupExists) => (err::GROUP_MOD_FAILED, err::GMFC_GROUP_EXISTS),
        (FlowCommand::Group(_), UnknownGroup) => (err::GROUP_MOD_FAILED, err::GMFC_UNKNOWN_GROUP),
        (FlowCommand::Group(_), _) => (err::GROUP_MOD_FAILED, err::GMFC_EPERM),
        _ => (err::FLOW_MOD_FAILED, err::FMFC_UNKNOWN),
    };
    OfError::new(t, code, e.why)
}

fn simple(t: u8, xid: u32, body: &[u8]) -> Vec<u8> {
    let mut m = codec::start(t, xid);
    m.extend_from_slice(body);
    codec::finish(m)
}

fn put_str(out: &mut Vec<u8>, s: &str, n: usize) {
    let b = s.as_bytes();
    let k = b.len().min(n - 1);
    out.extend_from_slice(&b[..k]);
    out.resize(out.len() + n - k, 0);
}

fn unreachable_node(e: String) -> OfError {
    OfError::new(err::BAD_REQUEST, err::BRC_EPERM, e)
}

impl Session<'_> {
    fn run(&self, conn: Box<dyn Conn>) -> std::io::Result<()> {
        let mut r = BufReader::with_capacity(1 << 18, conn);
        r.get_mut().write_all(&codec::hello(1))?;
        let Some(first) = read_msg(&mut r)? else { return Ok(()) };
        let h = codec::Header::parse(&first).expect("whole header");
        if h.ty != ty::HELLO || !codec::hello_accepts_of13(&first) {
            let e = OfError::new(
                err::HELLO_FAILED,
                err::HELLO_INCOMPATIBLE,
                "sdnfwd speaks OpenFlow 1.3 only (ovs-ofctl -O OpenFlow13)",
            );
            let mut m = codec::error_msg(&e, &first, h.xid);
            m[0] = h.version.min(codec::OFP13);
            r.get_mut().write_all(&m)?;
            return Ok(());
        }
        let mut batch: Vec<(FlowCommand, Vec<u8>)> = Vec::new();
        while let Some(msg) = read_msg(&mut r)? {
            let h = codec::Header::parse(&msg).expect("whole header");
            let mut out = Vec::new();
            if h.version != codec::OFP13 {
                let e = OfError::new(err::BAD_REQUEST, err::BRC_BAD_VERSION, format!("version {}", h.version));
                out.push(codec::error_msg(&e, &msg, h.xid));
            } else if matches!(h.ty, ty::FLOW_MOD | ty::GROUP_MOD) {
                let cmd = if h.ty == ty::FLOW_MOD {
                    codec::decode_flow_mod(&msg)
                } else {
                    codec::decode_group_mod(&msg).map(FlowCommand::Group)
                };
                match cmd {
                    Ok(c) => batch.push((c, msg)),
                    Err(e) => {
                        self.flush(&mut batch, &mut out);
                        out.push(codec::error_msg(&e, &msg, h.xid));
                    }
                }
                if batch.len() < MAX_BATCH && mod_buffered(r.buffer()) {
                    r.get_mut().write_all(&out.concat())?;
                    continue;
                }
                self.flush(&mut batch, &mut out);
            } else {
                self.flush(&mut batch, &mut out);
                match self.handle(h, &msg) {
                    Ok(replies) => out.extend(replies),
                    Err(e) => out.push(codec::error_msg(&e, &msg, h.xid)),
                }
            }
            r.get_mut().write_all(&out.concat())?;
        }
        Ok(())
    }

    /// Applies the batched FLOW_MODs and GROUP_MODs, in order; an error
    /// message for each refused.
    fn flush(&self, batch: &mut Vec<(FlowCommand, Vec<u8>)>, out: &mut Vec<Vec<u8>>) {
        if batch.is_empty() {
            return;
        }
        let reqs = std::mem::take(batch);
        let cmds = reqs.iter().map(|(c, _)| c.clone()).collect();
        let results = self.sw.flow_mods(cmds).unwrap_or_else(|e| vec![Err(FlowModError::invalid(e)); reqs.len()]);
        for ((cmd, msg), r) in reqs.iter().zip(results) {
            if let Err(e) = r {
                let xid = codec::Header::parse(msg).map_or(0, |h| h.xid);
                out.push(codec::error_msg(&refusal(cmd, e), msg, xid));
            }
        }
    }

    fn handle(&self, h: codec::Header, msg: &[u8]) -> Result<Vec<Vec<u8>>, OfError> {
        let body = &msg[8..];
        let one = |m: Vec<u8>| Ok(vec![m]);
        match h.ty {
            ty::HELLO | ty::ECHO_REPLY | ty::SET_ASYNC | ty::BARRIER_REPLY => Ok(vec![]),
            ty::ECHO_REQUEST => one(simple(ty::ECHO_REPLY, h.xid, body)),
            ty::BARRIER_REQUEST => one(simple(ty::BARRIER_REPLY, h.xid, &[])),
            ty::FEATURES_REQUEST => {
                let mut b = Vec::with_capacity(24);
                b.extend_from_slice(&self.sw.datapath_id().to_be_bytes());
                b.extend_from_slice(&0u32.to_be_bytes()); // n_buffers
                b.push(254); // n_tables
                b.extend_from_slice(&[0, 0, 0]); // auxiliary_id, pad
                b.extend_from_slice(&(1u32 | 2 | 4 | 8).to_be_bytes()); // FLOW, TABLE, PORT, GROUP stats
                b.extend_from_slice(&0u32.to_be_bytes());
                one(simple(ty::FEATURES_REPLY, h.xid, &b))
            }
            ty::GET_CONFIG_REQUEST => {
                let c = *self.cfg.lock().unwrap_or_else(|p| p.into_inner());
                let mut b = c.flags.to_be_bytes().to_vec();
                b.extend_from_slice(&c.miss_send_len.to_be_bytes());
                one(simple(ty::GET_CONFIG_REPLY, h.xid, &b))
            }
            ty::SET_CONFIG => {
                if body.len() < 4 {
                    return Err(OfError::new(err::SWITCH_CONFIG_FAILED, err::SCFC_BAD_LEN, "SET_CONFIG too short"));
                }
                let mut c = self.cfg.lock().unwrap_or_else(|p| p.into_inner());
                c.flags = be16(body);
                c.miss_send_len = be16(&body[2..]);
                Ok(vec![])
            }
            ty::ROLE_REQUEST => {
                if body.len() < 16 {
                    return Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_LEN, "ROLE_REQUEST too short"));
                }
                let mut b = body[..16].to_vec();
                if be32(&b) == 0 {
                    b[..4].copy_from_slice(&1u32.to_be_bytes()); // NOCHANGE: we are EQUAL
                }
                one(simple(ty::ROLE_REPLY, h.xid, &b))
            }
            ty::GET_ASYNC_REQUEST => one(simple(ty::GET_ASYNC_REPLY, h.xid, &[0; 24])),
            ty::TABLE_MOD => Ok(vec![]),
            ty::MULTIPART_REQUEST => self.multipart(h, body),
            ty::EXPERIMENTER => {
                let vendor = body.get(..4).map_or(0, be32);
                let code = if vendor == 0x2320 { err::BRC_BAD_EXP_TYPE } else { err::BRC_BAD_EXPERIMENTER };
                Err(OfError::new(err::BAD_REQUEST, code, format!("experimenter message {vendor:#x} not supported")))
            }
            ty::PACKET_OUT => Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_TYPE, "PACKET_OUT is not supported")),
            t => Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_TYPE, format!("message type {t} is not supported"))),
        }
    }

    fn multipart(&self, h: codec::Header, body: &[u8]) -> Result<Vec<Vec<u8>>, OfError> {
        if body.len() < 8 {
            return Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_LEN, "multipart request too short"));
        }
        let (mtype, flags, req) = (be16(body), be16(&body[2..]), &body[8..]);
        if flags & mp::MORE != 0 {
            return Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_MULTIPART, "multi-message requests"));
        }
        let entries: Vec<Vec<u8>> = match mtype {
            mp::DESC => {
                let mut b = Vec::with_capacity(1056);
                put_str(&mut b, "sdnfwd", 256);
                put_str(&mut b, "userspace AF_XDP poll-mode datapath", 256);
                put_str(&mut b, env!("CARGO_PKG_VERSION"), 256);
                put_str(&mut b, "None", 32);
                put_str(&mut b, &self.sw.description(), 256);
                vec![b]
            }
            mp::FLOW => {
                let f = codec::decode_flow_filter(req)?;
                let rules = self.sw.rules().map_err(unreachable_node)?;
                rules
                    .iter()
                    .filter(|r| f.selects(&r.spec))
                    .map(|r| {
                        let mut e = Vec::with_capacity(160);
                        let (p, b) = counters(r);
                        codec::encode_flow_stats(&r.spec, r.created.elapsed(), p, b, &mut e);
                        e
                    })
                    .collect()
            }
            mp::AGGREGATE => {
                let f = codec::decode_flow_filter(req)?;
                let rules = self.sw.rules().map_err(unreachable_node)?;
                let (mut p, mut b, mut n) = (0u64, 0u64, 0u32);
                for r in rules.iter().filter(|r| f.selects(&r.spec)) {
                    let (rp, rb) = counters(r);
                    p += rp;
                    b += rb;
                    n += 1;
                }
                let mut e = p.to_be_bytes().to_vec();
                e.extend_from_slice(&b.to_be_bytes());
                e.extend_from_slice(&n.to_be_bytes());
                e.extend_from_slice(&[0; 4]);
                vec![e]
            }
            mp::TABLE => {
                // Every lookup in a table ends in a rule here (OpenShift
                // SDN's tables end with a catch-all), so the lookups a
                // table saw are the packets its rules counted.
                let rules = self.sw.rules().map_err(unreachable_node)?;
                let mut active = [0u32; 254];
                let mut matched = [0u64; 254];
                for r in &rules {
                    let t = r.spec.table as usize;
                    if t < 254 {
                        active[t] += 1;
                        matched[t] += counters(r).0;
                    }
                }
                (0..254)
                    .map(|t| {
                        let mut e = vec![t as u8, 0, 0, 0];
                        e.extend_from_slice(&active[t].to_be_bytes());
                        e.extend_from_slice(&matched[t].to_be_bytes());
                        e.extend_from_slice(&matched[t].to_be_bytes());
                        e
                    })
                    .collect()
            }
            mp::PORT_STATS => {
                let want = req.get(..4).map_or(codec::OFPP13_ANY, be32);
                let ports = self.sw.ports().map_err(unreachable_node)?;
                let sel: Vec<&PortDesc> = ports
                    .iter()
                    .filter(|p| want == codec::OFPP13_ANY || codec::port_to_of13(p.port_no) == want)
                    .collect();
                if sel.is_empty() && want != codec::OFPP13_ANY {
                    return Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_PORT, format!("no port {want}")));
                }
                sel.into_iter().map(port_stats).collect()
            }
            mp::PORT_DESC => self.sw.ports().map_err(unreachable_node)?.iter().map(port_desc).collect(),
            mp::GROUP_DESC => self
                .sw
                .groups()
                .map_err(unreachable_node)?
                .iter()
                .map(|g| {
                    let mut e = Vec::with_capacity(64);
                    codec::encode_group_desc(&g.spec, &mut e);
                    e
                })
                .collect(),
            mp::GROUP => {
                if req.len() < 8 {
                    return Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_LEN, "group statistics request too short"));
                }
                let want = be32(req);
                let groups = self.sw.groups().map_err(unreachable_node)?;
                groups
                    .iter()
                    .filter(|g| want == codec::OFPG_ALL || g.spec.group_id == want)
                    .map(|g| {
                        let mut e = Vec::with_capacity(40 + 16 * g.spec.buckets.len());
                        codec::encode_group_stats(g, &mut e);
                        e
                    })
                    .collect()
            }
            mp::GROUP_FEATURES => vec![codec::group_features()],
            mp::TABLE_FEATURES => {
                if !req.is_empty() {
                    return Err(OfError::new(
                        err::TABLE_FEATURES_FAILED,
                        err::TFFC_EPERM,
                        "table features cannot be changed",
                    ));
                }
                (0..254u8).map(codec::table_features).collect()
            }
            other => {
                return Err(OfError::new(
                    err::BAD_REQUEST,
                    err::BRC_BAD_MULTIPART,
                    format!("multipart type {other} is not supported"),
                ))
            }
        };
        Ok(codec::multipart_replies(mtype, h.xid, &entries))
    }
}

fn counters(r: &Rule) -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (r.n_packets.load(Relaxed), r.n_bytes.load(Relaxed))
}

fn port_desc(p: &PortDesc) -> Vec<u8> {
    let mut e = Vec::with_capacity(64);
    e.extend_from_slice(&codec::port_to_of13(p.port_no).to_be_bytes());
    e.extend_from_slice(&[0; 4]);
    e.extend_from_slice(&p.mac.to_be_bytes()[2..]);
    e.extend_from_slice(&[0; 2]);
    put_str(&mut e, &p.name, 16);
    e.extend_from_slice(&(if p.up { 0u32 } else { 1 }).to_be_bytes()); // config: PORT_DOWN
    e.extend_from_slice(&(if p.up { 4u32 } else { 1 }).to_be_bytes()); // state: LIVE / LINK_DOWN
    e.extend_from_slice(&[0; 24]); // curr, advertised, supported, peer, curr_speed, max_speed
    e
}

fn port_stats(p: &PortDesc) -> Vec<u8> {
    let mut e = Vec::with_capacity(112);
    e.extend_from_slice(&codec::port_to_of13(p.port_no).to_be_bytes());
    e.extend_from_slice(&[0; 4]);
    for v in [p.rx_packets, p.tx_packets, p.rx_bytes, p.tx_bytes] {
        e.extend_from_slice(&v.to_be_bytes());
    }
    // Drops, errors, frame/overrun/CRC errors, collisions and the time
    // since the port came up are not kept per port (all ones is
    // OpenFlow's "unavailable").
    for _ in 0..8 {
        e.extend_from_slice(&u64::MAX.to_be_bytes());
    }
    e.extend_from_slice(&[0xff; 8]); // duration: unavailable
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::ofctl::{parse_flow_line, LineKind};

    /// A client speaking raw OpenFlow to a TableSwitch over a unix socket.
    #[test]
    fn test_session_over_a_socket() {
        let dir = std::env::temp_dir().join(format!("sdnfwd-of-unit-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("br0.sock");
        let l = Listener::bind(&format!("punix:{}", path.display())).unwrap();
        let sw = Arc::new(TableSwitch::new(Ofproto::new(), vec![]));
        let sw2: Arc<dyn Switch> = sw.clone();
        std::thread::spawn(move || l.serve(sw2));
        let mut s = UnixStream::connect(&path).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let hello = read_msg(&mut r).unwrap().unwrap();
        assert_eq!(hello[1], ty::HELLO);
        s.write_all(&codec::hello(1)).unwrap();
        let add = |line: &str, xid| {
            codec::encode_flow_mod(&FlowCommand::Add(parse_flow_line(line, LineKind::Add).unwrap()), xid)
        };
        // Two good flows and a bad one (goto backwards) back to back, then
        // a barrier: the good ones apply, the bad one is an error with its xid.
        let mut bad = add("table=30, priority=1, actions=goto_table:40", 3);
        let n = bad.len();
        bad[n - 8 + 4] = 20; // goto_table:20 from table 30
        let mut w = add("table=0, priority=1, actions=goto_table:10", 1);
        w.extend(add("table=10, priority=1, actions=output:3", 2));
        w.extend(bad);
        w.extend(simple(ty::BARRIER_REQUEST, 4, &[]));
        s.write_all(&w).unwrap();
        let e = read_msg(&mut r).unwrap().unwrap();
        assert_eq!((e[1], be16(&e[8..]), be16(&e[10..])), (ty::ERROR, err::BAD_INSTRUCTION, err::BIC_BAD_TABLE_ID));
        assert_eq!(be32(&e[4..]), 3);
        let b = read_msg(&mut r).unwrap().unwrap();
        assert_eq!((b[1], be32(&b[4..])), (ty::BARRIER_REPLY, 4));
        assert_eq!(sw.of().n_rules(), 2);
        // Flow stats: both, decoded back.
        let mut req = codec::start(ty::MULTIPART_REQUEST, 5);
        req.extend_from_slice(&mp::FLOW.to_be_bytes());
        req.extend_from_slice(&[0; 6]);
        req.extend_from_slice(&[codec::OFPTT_ALL, 0, 0, 0]);
        req.extend_from_slice(&codec::OFPP13_ANY.to_be_bytes());
        req.extend_from_slice(&codec::OFPG_ANY.to_be_bytes());
        req.extend_from_slice(&[0; 20]);
        codec::encode_match(&config::ofctl::Match::any(), &mut req);
        s.write_all(&codec::finish(req)).unwrap();
        let rep = read_msg(&mut r).unwrap().unwrap();
        assert_eq!(rep[1], ty::MULTIPART_REPLY);
        let flows = codec::decode_flow_stats(&rep[16..]).unwrap();
        assert_eq!(flows.len(), 2);
        assert_eq!(flows[1].0.to_dump_line(None), " cookie=0x0, table=10, priority=1 actions=output:3");
        // An unknown message type: an error, and the session goes on.
        s.write_all(&simple(30, 6, &[])).unwrap();
        let e = read_msg(&mut r).unwrap().unwrap();
        assert_eq!((e[1], be16(&e[8..]), be16(&e[10..])), (ty::ERROR, err::BAD_REQUEST, err::BRC_BAD_TYPE));
        s.write_all(&simple(ty::ECHO_REQUEST, 7, b"ping")).unwrap();
        let e = read_msg(&mut r).unwrap().unwrap();
        assert_eq!((e[1], &e[8..]), (ty::ECHO_REPLY, &b"ping"[..]));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// GROUP_MODs and FLOW_MODs back to back reach the tables in order; the
    /// refused ones get OVS's errors with their xids; the group multiparts
    /// answer.
    #[test]
    fn test_group_mods_over_a_socket() {
        use config::ofctl::{parse_group_line, GroupLineKind};
        let dir = std::env::temp_dir().join(format!("sdnfwd-of-groups-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("br0.sock");
        let l = Listener::bind(&format!("punix:{}", path.display())).unwrap();
        let sw = Arc::new(TableSwitch::new(Ofproto::new(), vec![]));
        let sw2: Arc<dyn Switch> = sw.clone();
        std::thread::spawn(move || l.serve(sw2));
        let mut s = UnixStream::connect(&path).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        read_msg(&mut r).unwrap().unwrap();
        s.write_all(&codec::hello(1)).unwrap();
        let group = |line: &str, kind, xid| codec::encode_group_mod(&parse_group_line(line, kind).unwrap(), xid);
        let flow = |line: &str, xid| {
            codec::encode_flow_mod(&FlowCommand::Add(parse_flow_line(line, LineKind::Add).unwrap()), xid)
        };
        let mut w = flow("table=101, priority=1, ip, actions=group:7", 1); // before the group: refused
        w.extend(group("group_id=7,type=select,bucket=output:1,bucket=weight:3,output:2", GroupLineKind::Add, 2));
        w.extend(flow("table=101, priority=2, ip, actions=ct(commit),group:7", 3));
        w.extend(group("group_id=7,type=all,bucket=output:3", GroupLineKind::Add, 4)); // exists
        w.extend(group("group_id=8,type=all,bucket=output:3", GroupLineKind::Modify, 5)); // unknown
        w.extend(simple(ty::BARRIER_REQUEST, 6, &[]));
        s.write_all(&w).unwrap();
        let mut errors = Vec::new();
        loop {
            let m = read_msg(&mut r).unwrap().unwrap();
            if m[1] == ty::BARRIER_REPLY {
                break;
            }
            assert_eq!(m[1], ty::ERROR);
            errors.push((be32(&m[4..]), be16(&m[8..]), be16(&m[10..])));
        }
        assert_eq!(
            errors,
            [
                (1, err::BAD_ACTION, err::BAC_BAD_OUT_GROUP),
                (4, err::GROUP_MOD_FAILED, err::GMFC_GROUP_EXISTS),
                (5, err::GROUP_MOD_FAILED, err::GMFC_UNKNOWN_GROUP),
            ]
        );
        assert_eq!(sw.of().n_rules(), 1);
        sw.of().rules(None)[0].credit(4, 400);
        let ask = |s: &mut UnixStream, t: u16, body: &[u8], xid| {
            let mut req = codec::start(ty::MULTIPART_REQUEST, xid);
            req.extend_from_slice(&t.to_be_bytes());
            req.extend_from_slice(&[0; 6]);
            req.extend_from_slice(body);
            s.write_all(&codec::finish(req)).unwrap();
        };
        ask(&mut s, mp::GROUP_DESC, &[], 7);
        let rep = read_msg(&mut r).unwrap().unwrap();
        let groups = codec::decode_group_desc(&rep[16..]).unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(
            groups[0].to_string(),
            "group_id=7,type=select,bucket=actions=output:1,bucket=weight:3,actions=output:2"
        );
        let mut all = codec::OFPG_ALL.to_be_bytes().to_vec();
        all.extend_from_slice(&[0; 4]);
        ask(&mut s, mp::GROUP, &all, 8);
        let rep = read_msg(&mut r).unwrap().unwrap();
        let e = &rep[16..];
        assert_eq!(be16(e) as usize, e.len());
        assert_eq!((be32(&e[4..]), be32(&e[8..])), (7, 1), "group 7, one reference");
        assert_eq!((codec::be64(&e[16..]), codec::be64(&e[24..])), (4, 400));
        assert_eq!(codec::be64(&e[40..]), u64::MAX, "a select group's buckets are not counted");
        ask(&mut s, mp::GROUP, &[0, 0, 0, 9, 0, 0, 0, 0], 9);
        assert_eq!(read_msg(&mut r).unwrap().unwrap().len(), 16, "no group 9");
        ask(&mut s, mp::GROUP_FEATURES, &[], 10);
        assert_eq!(read_msg(&mut r).unwrap().unwrap()[16..], codec::group_features()[..]);
        // Deleting the group takes its flow with it.
        s.write_all(&group("", GroupLineKind::Delete, 11)).unwrap();
        s.write_all(&simple(ty::BARRIER_REQUEST, 12, &[])).unwrap();
        assert_eq!(read_msg(&mut r).unwrap().unwrap()[1], ty::BARRIER_REPLY);
        let of = sw.of();
        assert_eq!((of.n_rules(), of.group_stats().len()), (0, 0));
        drop(of);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
