//! One OpenFlow connection: version negotiation, the requests of each
//! version (OpenFlow 1.0 with Open vSwitch's Nicira extensions, 1.3, 1.4,
//! 1.5), bundles, inactivity probes, and what the listener's event thread
//! sends it (FLOW_REMOVED, flow monitor updates).
//!
//! A connection is read by its own thread ([`Session::run`]); its writes go
//! through [`Peer::send`], one lock per batch of messages, so that the
//! event thread's asynchronous messages never land inside a reply.
//!
//! Framing is done here, not by a `BufReader`: a read that times out (the
//! inactivity probe) loses no bytes of a half-received message. A message
//! shorter than its header, or of another version than the one
//! negotiated, closes the connection (after an error for the latter), as
//! Open vSwitch's vconn does; a peer silent for a probe interval is sent
//! ECHO_REQUEST and closed if still silent after another one.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use config::ofctl::{Action, FlowCommand, GroupCommand};

use super::codec::{self, be16, be32, err, mp, ty, OfError, OFP10, OFP13, OFP14, OFP15};
use super::monitor::Monitor;
use super::of10::{self, nxst, nxt};
use super::switch::{put_str, Conn, PacketOut, PacketOutAction, PortDesc, Switch, SwitchConfig};
use crate::ofproto::{FlowModError, FlowModErrorKind};

/// A connection as the listener's event thread reaches it.
pub struct Peer {
    /// Its id (events carry the id of the connection that caused them).
    pub id: u64,
    /// Where its messages go.
    out: Mutex<Box<dyn Write + Send>>,
    /// What it negotiated and asked for.
    pub st: Mutex<PeerState>,
}

/// A connection's settings.
#[derive(Clone, Debug, Default)]
pub struct PeerState {
    /// The negotiated version (0 before HELLO).
    pub version: u8,
    /// OpenFlow 1.0: the Nicira flow format (`NXT_SET_FLOW_FORMAT` nxm).
    pub nxm: bool,
    /// OpenFlow 1.0: the table id in FLOW_MOD commands
    /// (`NXT_FLOW_MOD_TABLE_ID`).
    pub tid: bool,
    /// SET_CONFIG's `miss_send_len`: a management connection gets
    /// asynchronous messages (FLOW_REMOVED) only once it sets one, as in
    /// Open vSwitch.
    pub miss_send_len: u16,
    /// Flow monitors it asked for.
    pub monitors: Vec<Monitor>,
}

impl Peer {
    /// Writes messages, all at once.
    ///
    /// # Errors
    /// The connection's write error.
    pub fn send(&self, msgs: &[Vec<u8>]) -> io::Result<()> {
        if msgs.is_empty() {
            return Ok(());
        }
        let mut w = self.out.lock().unwrap_or_else(|p| p.into_inner());
        w.write_all(&msgs.concat())?;
        w.flush()
    }

    /// The connection's settings (a copy).
    pub fn state(&self) -> PeerState {
        self.st.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A byte stream cut into OpenFlow messages.
struct Framer {
    conn: Box<dyn Conn>,
    buf: Vec<u8>,
}

enum Next {
    Msg(Vec<u8>),
    Eof,
    Idle,
}

impl Framer {
    /// The length of the whole message at the start of the buffer, if its
    /// header is there.
    fn head_len(&self) -> Option<usize> {
        (self.buf.len() >= 4).then(|| be16(&self.buf[2..]) as usize)
    }

    /// The next message; `Idle` when nothing came for the read timeout.
    fn next(&mut self) -> io::Result<Next> {
        loop {
            if let Some(len) = self.head_len() {
                if len < 8 {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "message shorter than its header"));
                }
                if self.buf.len() >= len {
                    let rest = self.buf.split_off(len);
                    return Ok(Next::Msg(std::mem::replace(&mut self.buf, rest)));
                }
            }
            let at = self.buf.len();
            self.buf.resize(at + 65536, 0);
            match self.conn.read(&mut self.buf[at..]) {
                Ok(0) => {
                    self.buf.truncate(at);
                    return Ok(Next::Eof);
                }
                Ok(n) => self.buf.truncate(at + n),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    self.buf.truncate(at);
                    return Ok(Next::Idle);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.buf.truncate(at),
                Err(e) => {
                    self.buf.truncate(at);
                    return Err(e);
                }
            }
        }
    }

    /// The buffered bytes (what follows the message just taken).
    fn buffered(&self) -> &[u8] {
        &self.buf
    }
}

/// Whether `b` starts with a whole FLOW_MOD or GROUP_MOD of `version`.
fn mod_buffered(b: &[u8], version: u8) -> bool {
    let Some(h) = codec::Header::parse(b) else { return false };
    if b.len() < h.len as usize {
        return false;
    }
    match version {
        OFP10 => {
            h.ty == 14
                || (h.ty == 4 && b.len() >= 16 && be32(&b[8..]) == codec::NX_VENDOR && be32(&b[12..]) == nxt::FLOW_MOD)
        }
        _ => h.ty == ty::FLOW_MOD || (h.ty == ty::GROUP_MOD && version < OFP15),
    }
}

/// Most FLOW_MODs and GROUP_MODs applied as one batch.
const MAX_BATCH: usize = 4096;
/// Most messages in one bundle.
const MAX_BUNDLE_MSGS: usize = 1 << 20;
/// A bundle left idle this long is discarded (Open vSwitch: 10 s).
const BUNDLE_IDLE: Duration = Duration::from_secs(10);

/// A bundle being built.
struct Bundle {
    flags: u16,
    closed: bool,
    /// Each command with the BUNDLE_ADD_MESSAGE that carried it (its error
    /// refers to that message).
    msgs: Vec<(FlowCommand, Vec<u8>)>,
    used: Instant,
}

/// A queued mod: the command and the message it came in (for its error).
type Queued = (FlowCommand, Vec<u8>);

/// One connection's reader.
pub struct Session<'a> {
    /// The node.
    pub sw: &'a dyn Switch,
    /// The switch-wide configuration (SET_CONFIG's flags).
    pub cfg: &'a Mutex<SwitchConfig>,
    /// This connection.
    pub peer: Arc<Peer>,
    /// Idle time before an ECHO_REQUEST (and as long again before closing).
    pub probe: Duration,
    version: u8,
    bundles: BTreeMap<u32, Bundle>,
    batch: Vec<Queued>,
}

/// What a request gets back.
type Reply = Result<Vec<Vec<u8>>, OfError>;

fn bad_len(what: &str) -> OfError {
    OfError::new(err::BAD_REQUEST, err::BRC_BAD_LEN, format!("{what} is too short"))
}

fn unsupported_type(what: &str) -> OfError {
    OfError::new(err::BAD_REQUEST, err::BRC_BAD_TYPE, format!("{what} is not supported by sdnfwd"))
}

fn unreachable_node(e: String) -> OfError {
    OfError::new(err::BAD_REQUEST, err::BRC_EPERM, e)
}

impl<'a> Session<'a> {
    /// A session over a connection whose write half is `out`.
    pub fn new(sw: &'a dyn Switch, cfg: &'a Mutex<SwitchConfig>, peer: Arc<Peer>, probe: Duration) -> Session<'a> {
        Session { sw, cfg, peer, probe, version: 0, bundles: BTreeMap::new(), batch: Vec::new() }
    }

    /// A peer for a connection's write half.
    pub fn peer(id: u64, out: Box<dyn Write + Send>) -> Arc<Peer> {
        Arc::new(Peer { id, out: Mutex::new(out), st: Mutex::new(PeerState::default()) })
    }

    fn st(&self) -> std::sync::MutexGuard<'_, PeerState> {
        self.peer.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn error(&self, e: &OfError, req: &[u8]) -> Vec<u8> {
        let xid = codec::Header::parse(req).map_or(0, |h| h.xid);
        if !e.why.is_empty() {
            self.sw.log(&format!("OpenFlow connection {}: refused: {}", self.peer.id, e.why));
        }
        codec::error_msg_v(self.version, e, req, xid)
    }

    /// Serves the connection until it closes, is closed for junk, or goes
    /// silent.
    ///
    /// # Errors
    /// The connection's I/O error.
    pub fn run(mut self, conn: Box<dyn Conn>) -> io::Result<()> {
        conn.set_timeout(Some(self.probe))?;
        let mut fr = Framer { conn, buf: Vec::new() };
        let ours = self.sw.versions() & codec::ALL_VERSIONS;
        self.peer.send(&[codec::switch_hello(1, ours)])?;
        let mut last_rx = Instant::now();
        let first = loop {
            match fr.next()? {
                Next::Msg(m) => break m,
                Next::Eof => return Ok(()),
                Next::Idle if last_rx.elapsed() >= 2 * self.probe => return Ok(()),
                Next::Idle => {}
            }
        };
        let h = codec::Header::parse(&first).expect("whole header");
        let peer_versions = codec::hello_versions(&first);
        let Some(version) = codec::negotiate(peer_versions & ours).filter(|_| h.ty == ty::HELLO) else {
            let why = if h.ty != ty::HELLO {
                format!("expected HELLO, got message type {}", h.ty)
            } else {
                format!(
                    "We support versions {}, you support {} (sdnfwd speaks OpenFlow 1.0, 1.3, 1.4 and 1.5; a \
                     bridge's protocols may allow fewer)",
                    codec::fmt_versions(ours),
                    codec::fmt_versions(peer_versions)
                )
            };
            self.sw.log(&format!("OpenFlow connection {}: {why}", self.peer.id));
            let e = OfError::new(err::HELLO_FAILED, err::HELLO_INCOMPATIBLE, why);
            let v = h.version.clamp(OFP10, OFP15);
            self.peer.send(&[codec::error_msg_v(v, &e, &first, h.xid)])?;
            return Ok(());
        };
        self.version = version;
        self.st().version = version;
        let mut echo_sent = false;
        loop {
            let msg = match fr.next() {
                Ok(Next::Msg(m)) => m,
                Ok(Next::Eof) => break,
                Ok(Next::Idle) => {
                    self.expire_bundles();
                    let idle = last_rx.elapsed();
                    if idle >= 2 * self.probe && echo_sent {
                        self.sw.log(&format!(
                            "OpenFlow connection {}: no reply to an echo request in {:?}: closing",
                            self.peer.id, self.probe
                        ));
                        break;
                    }
                    if idle >= self.probe && !echo_sent {
                        self.peer.send(&[codec::finish(codec::start_v(version, ty::ECHO_REQUEST, 0))])?;
                        echo_sent = true;
                    }
                    continue;
                }
                Err(e) => {
                    self.sw.log(&format!("OpenFlow connection {}: {e}: closing", self.peer.id));
                    break;
                }
            };
            last_rx = Instant::now();
            echo_sent = false;
            let h = codec::Header::parse(&msg).expect("whole header");
            if h.version != version {
                let e = OfError::new(
                    err::BAD_REQUEST,
                    err::BRC_BAD_VERSION,
                    format!("message of version {:#04x} on a connection of version {version:#04x}", h.version),
                );
                let mut out = Vec::new();
                self.flush(&mut out);
                out.push(self.error(&e, &msg));
                let _ = self.peer.send(&out);
                self.sw.log(&format!(
                    "OpenFlow connection {}: closing after a message of the wrong version",
                    self.peer.id
                ));
                break;
            }
            let mut out = Vec::new();
            self.message(h, &msg, &mut out);
            if !self.batch.is_empty() && self.batch.len() < MAX_BATCH && mod_buffered(fr.buffered(), version) {
                self.peer.send(&out)?;
                continue;
            }
            self.flush(&mut out);
            self.peer.send(&out)?;
        }
        let mut out = Vec::new();
        self.flush(&mut out);
        let _ = self.peer.send(&out);
        Ok(())
    }

    /// Handles one message; FLOW_MODs and GROUP_MODs are queued (flushed by
    /// the caller or by the next other message).
    fn message(&mut self, h: codec::Header, msg: &[u8], out: &mut Vec<Vec<u8>>) {
        let queued = match self.as_mod(h, msg) {
            Some(Ok(cmd)) => {
                self.batch.push((cmd, msg.to_vec()));
                true
            }
            Some(Err(e)) => {
                self.flush(out);
                out.push(self.error(&e, msg));
                true
            }
            None => false,
        };
        if queued {
            return;
        }
        self.flush(out);
        match self.handle(h, msg) {
            Ok(replies) => out.extend(replies),
            Err(e) => out.push(self.error(&e, msg)),
        }
    }

    /// A FLOW_MOD or GROUP_MOD decoded (None for any other message).
    fn as_mod(&self, h: codec::Header, msg: &[u8]) -> Option<Result<FlowCommand, OfError>> {
        let st = self.st().clone();
        match (self.version, h.ty) {
            (OFP10, 14) => Some(of10::decode_flow_mod10(msg, st.tid)),
            (OFP10, 4)
                if msg.len() >= 16 && be32(&msg[8..]) == codec::NX_VENDOR && be32(&msg[12..]) == nxt::FLOW_MOD =>
            {
                Some(of10::decode_nx_flow_mod(msg, st.tid))
            }
            (OFP10, _) => None,
            (_, ty::FLOW_MOD) => Some(codec::decode_flow_mod(msg)),
            (OFP15, ty::GROUP_MOD) => Some(Err(unsupported_type(
                "GROUP_MOD in OpenFlow 1.5 (its buckets' format): sdnfwd takes groups over OpenFlow 1.3 and 1.4",
            ))),
            (_, ty::GROUP_MOD) => Some(codec::decode_group_mod(msg).map(FlowCommand::Group)),
            _ => None,
        }
    }

    /// Applies the queued FLOW_MODs and GROUP_MODs, in order, each its own
    /// transaction; an error message for each refused.
    fn flush(&mut self, out: &mut Vec<Vec<u8>>) {
        if self.batch.is_empty() {
            return;
        }
        let reqs = std::mem::take(&mut self.batch);
        let cmds = reqs.iter().map(|(c, _)| c.clone()).collect();
        let results =
            self.sw.flow_mods(cmds, self.peer.id).unwrap_or_else(|e| vec![Err(FlowModError::invalid(e)); reqs.len()]);
        for ((cmd, msg), r) in reqs.iter().zip(results) {
            if let Err(e) = r {
                out.push(self.error(&refusal(cmd, e, self.version), msg));
            }
        }
    }

    fn simple(&self, t: u8, xid: u32, body: &[u8]) -> Vec<u8> {
        let mut m = codec::start_v(self.version, t, xid);
        m.extend_from_slice(body);
        codec::finish(m)
    }

    /// Every other request.
    fn handle(&mut self, h: codec::Header, msg: &[u8]) -> Reply {
        let body = &msg[8..];
        let v = self.version;
        let of10 = v == OFP10;
        let one = |m: Vec<u8>| Ok(vec![m]);
        // Types that differ between 1.0 and 1.1+.
        let (stats_req, barrier_req, queue_cfg_req, port_mod) =
            if of10 { (16, 18, 20, 15) } else { (ty::MULTIPART_REQUEST, ty::BARRIER_REQUEST, 22, 16) };
        match h.ty {
            ty::HELLO | ty::ERROR | ty::ECHO_REPLY => Ok(vec![]),
            ty::ECHO_REQUEST => one(self.simple(ty::ECHO_REPLY, h.xid, body)),
            t if t == barrier_req => one(self.simple(t + 1, h.xid, &[])),
            ty::FEATURES_REQUEST => one(self.features(h.xid)?),
            ty::GET_CONFIG_REQUEST => {
                let flags = self.cfg.lock().unwrap_or_else(|p| p.into_inner()).flags;
                let mut b = flags.to_be_bytes().to_vec();
                b.extend_from_slice(&self.st().miss_send_len.to_be_bytes());
                one(self.simple(ty::GET_CONFIG_REPLY, h.xid, &b))
            }
            ty::SET_CONFIG => {
                if body.len() < 4 {
                    return Err(OfError::new(err::SWITCH_CONFIG_FAILED, err::SCFC_BAD_LEN, "SET_CONFIG too short"));
                }
                self.cfg.lock().unwrap_or_else(|p| p.into_inner()).flags = be16(body);
                self.st().miss_send_len = be16(&body[2..]);
                Ok(vec![])
            }
            ty::EXPERIMENTER => self.experimenter(h, msg),
            ty::PACKET_OUT => {
                self.packet_out(msg)?;
                Ok(vec![])
            }
            t if t == stats_req => self.stats(h, body),
            t if t == queue_cfg_req && v <= OFP13 => {
                // No queues: the port asked about, with none.
                let port = if of10 { body.get(..2).map(|b| b.to_vec()) } else { body.get(..4).map(|b| b.to_vec()) };
                let mut b = port.ok_or_else(|| bad_len("QUEUE_GET_CONFIG_REQUEST"))?;
                b.resize(8, 0);
                one(self.simple(t + 1, h.xid, &b))
            }
            t if t == port_mod => Err(OfError::new(
                err::BAD_REQUEST,
                err::BRC_EPERM,
                "PORT_MOD: sdnfwd's ports are configured by its node file and ctl, not by OpenFlow",
            )),
            ty::TABLE_MOD if !of10 => Ok(vec![]),
            ty::ROLE_REQUEST if !of10 => {
                if body.len() < 16 {
                    return Err(bad_len("ROLE_REQUEST"));
                }
                let mut b = body[..16].to_vec();
                if be32(&b) == 0 {
                    b[..4].copy_from_slice(&1u32.to_be_bytes()); // NOCHANGE: we are EQUAL
                }
                one(self.simple(ty::ROLE_REPLY, h.xid, &b))
            }
            ty::GET_ASYNC_REQUEST if !of10 => {
                // Open vSwitch's defaults: packet-ins and port status to
                // primary/equal, every flow-removed reason; port status to
                // secondaries.
                let mut b = Vec::new();
                for w in [0x7u32, 0, 0x7, 0x7, 0xf, 0] {
                    b.extend_from_slice(&w.to_be_bytes());
                }
                if v >= OFP14 {
                    return one(self.simple(ty::GET_ASYNC_REPLY, h.xid, &[]));
                }
                one(self.simple(ty::GET_ASYNC_REPLY, h.xid, &b))
            }
            ty::SET_ASYNC if !of10 => Ok(vec![]),
            29 if !of10 => Err(unsupported_type("METER_MOD (meters)")),
            33 if v >= OFP14 => self.bundle_control(h, body),
            34 if v >= OFP14 => self.bundle_add(h, msg, body),
            t => Err(unsupported_type(&format!("message type {t} of OpenFlow {}", version_name(v)))),
        }
    }

    /// FEATURES_REPLY: in OpenFlow 1.0 with the ports.
    fn features(&self, xid: u32) -> Result<Vec<u8>, OfError> {
        let mut b = Vec::with_capacity(24);
        b.extend_from_slice(&self.sw.datapath_id().to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes()); // n_buffers
        b.push(254); // n_tables
        b.extend_from_slice(&[0, 0, 0]); // auxiliary_id, pad
        if self.version == OFP10 {
            // FLOW, TABLE, PORT stats, ARP_MATCH_IP; the actions sdnfwd
            // takes (output, set_dl_src/dst, set_nw_src/dst/tos,
            // set_tp_src/dst).
            b.extend_from_slice(&(1u32 | 2 | 4 | 0x80).to_be_bytes());
            b.extend_from_slice(&0x7f1u32.to_be_bytes());
            for p in self.sw.ports().map_err(unreachable_node)? {
                b.extend_from_slice(&of10::phy_port10(p.port_no, p.mac, &p.name, p.up));
            }
        } else {
            b.extend_from_slice(&(1u32 | 2 | 4 | 8).to_be_bytes()); // FLOW, TABLE, PORT, GROUP stats
            b.extend_from_slice(&0u32.to_be_bytes());
        }
        Ok(self.simple(ty::FEATURES_REPLY, xid, &b))
    }

    /// Nicira and ONF messages.
    fn experimenter(&mut self, h: codec::Header, msg: &[u8]) -> Reply {
        if msg.len() < 16 {
            return Err(bad_len("experimenter message"));
        }
        let (vendor, subtype, body) = (be32(&msg[8..]), be32(&msg[12..]), &msg[16..]);
        let v = self.version;
        match vendor {
            codec::NX_VENDOR => match subtype {
                nxt::SET_FLOW_FORMAT if v == OFP10 => {
                    let f = body.get(..4).map(be32).ok_or_else(|| bad_len("NXT_SET_FLOW_FORMAT"))?;
                    match f {
                        0 => self.st().nxm = false,
                        2 => self.st().nxm = true,
                        other => {
                            return Err(OfError::new(
                                err::BAD_REQUEST,
                                err::BRC_EPERM,
                                format!("flow format {other} (OpenFlow 1.0's is 0, NXM's 2)"),
                            ))
                        }
                    }
                    Ok(vec![])
                }
                nxt::FLOW_MOD_TABLE_ID => {
                    let on = *body.first().ok_or_else(|| bad_len("NXT_FLOW_MOD_TABLE_ID"))? != 0;
                    self.st().tid = on;
                    Ok(vec![])
                }
                nxt::SET_PACKET_IN_FORMAT | nxt::SET_ASYNC_CONFIG | nxt::SET_CONTROLLER_ID | nxt::FLOW_AGE => {
                    Ok(vec![])
                }
                nxt::ROLE_REQUEST => {
                    let mut m = of10::nx_start(nxt::ROLE_REQUEST + 1, h.xid);
                    m[0] = v;
                    m.extend_from_slice(&body[..body.len().min(4)]);
                    Ok(vec![codec::finish(m)])
                }
                nxt::FLOW_MONITOR_CANCEL if v <= OFP13 => {
                    let id = body.get(..4).map(be32).ok_or_else(|| bad_len("NXT_FLOW_MONITOR_CANCEL"))?;
                    self.cancel_monitor(id)
                }
                other => Err(OfError::new(
                    err::BAD_REQUEST,
                    err::BRC_BAD_EXP_TYPE,
                    format!("Nicira message {other} ({}) is not supported by sdnfwd", nx_msg_name(other)),
                )),
            },
            codec::ONF_VENDOR if v == OFP13 => match subtype {
                2300 => self.bundle_control(h, body),
                2301 => self.bundle_add(h, msg, body),
                1870 => {
                    let id = body.get(..4).map(be32).ok_or_else(|| bad_len("ONFT_FLOW_MONITOR_CANCEL"))?;
                    self.cancel_monitor(id)
                }
                other => Err(OfError::new(
                    err::BAD_REQUEST,
                    err::BRC_BAD_EXP_TYPE,
                    format!("ONF message {other} is not supported by sdnfwd"),
                )),
            },
            other => Err(OfError::new(
                err::BAD_REQUEST,
                err::BRC_BAD_EXPERIMENTER,
                format!("experimenter {other:#x}'s messages are not supported (Nicira's are)"),
            )),
        }
    }

    /// PACKET_OUT: the frame through the pipeline (`actions=table`,
    /// `resubmit(,0)`) or out of one port (`actions=output:N`).
    fn packet_out(&self, msg: &[u8]) -> Result<(), OfError> {
        let v = self.version;
        let (buffer_id, in_port, actions, data) = if v == OFP10 {
            if msg.len() < 16 {
                return Err(bad_len("PACKET_OUT"));
            }
            let alen = be16(&msg[14..]) as usize;
            if msg.len() < 16 + alen {
                return Err(bad_len("PACKET_OUT's actions"));
            }
            let p = be16(&msg[12..]) as u32;
            (be32(&msg[8..]), p, &msg[16..16 + alen], &msg[16 + alen..])
        } else if v < OFP15 {
            if msg.len() < 24 {
                return Err(bad_len("PACKET_OUT"));
            }
            let alen = be16(&msg[16..]) as usize;
            if msg.len() < 24 + alen {
                return Err(bad_len("PACKET_OUT's actions"));
            }
            let p = be32(&msg[12..]);
            let p = codec::port_from_of13(p).unwrap_or(p);
            (be32(&msg[8..]), p, &msg[24..24 + alen], &msg[24 + alen..])
        } else {
            if msg.len() < 16 {
                return Err(bad_len("PACKET_OUT"));
            }
            let alen = be16(&msg[12..]) as usize;
            let (m, mlen) = codec::decode_match(&msg[16..])?;
            if msg.len() < 16 + mlen + alen {
                return Err(bad_len("PACKET_OUT's actions"));
            }
            let (p, pm) = m.get(config::ofctl::Field::InPort);
            let p = if pm == 0 { 0xffff } else { p as u32 };
            (be32(&msg[8..]), p, &msg[16 + mlen..16 + mlen + alen], &msg[16 + mlen + alen..])
        };
        if buffer_id != codec::NO_BUFFER {
            return Err(OfError::new(
                err::BAD_REQUEST,
                err::BRC_BUFFER_UNKNOWN,
                format!("buffer {buffer_id:#x}: sdnfwd buffers no packets"),
            ));
        }
        if data.is_empty() {
            return Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_PACKET, "PACKET_OUT without a packet"));
        }
        // output:TABLE (the pipeline) is one action the flow tables refuse.
        let table_port = if v == OFP10 { [0, 0, 0, 8, 0xff, 0xf9] } else { [0, 0, 0, 16, 0xff, 0xff] };
        let to_table = actions.len() == if v == OFP10 { 8 } else { 16 }
            && actions[..6] == table_port
            && (v == OFP10 || actions[6..8] == [0xff, 0xf9]);
        let action = if to_table {
            PacketOutAction::Pipeline
        } else {
            match codec::decode_actions_v(actions, v)?.as_slice() {
                [Action::Resubmit { port, table: Some(0) | None }] if port.is_none() || *port == Some(in_port) => {
                    PacketOutAction::Pipeline
                }
                [Action::Output(p)] => PacketOutAction::Output(*p),
                _ => {
                    return Err(OfError::new(
                        err::BAD_ACTION,
                        err::BAC_BAD_TYPE,
                        "PACKET_OUT: sdnfwd runs actions=table (or resubmit(,0)): the pipeline, or output:PORT",
                    ))
                }
            }
        };
        self.sw
            .packet_out(PacketOut { in_port, frame: data.to_vec(), action })
            .map_err(|e| OfError::new(err::BAD_REQUEST, err::BRC_EPERM, e))
    }

    /// Statistics (multipart) requests of every version.
    fn stats(&mut self, h: codec::Header, body: &[u8]) -> Reply {
        let v = self.version;
        let hdr = if v == OFP10 { 4 } else { 8 };
        if body.len() < hdr {
            return Err(bad_len("statistics request"));
        }
        let (mtype, flags, req) = (be16(body), be16(&body[2..]), &body[hdr..]);
        if flags & mp::MORE != 0 {
            return Err(OfError::new(
                err::BAD_REQUEST,
                err::BRC_BAD_MULTIPART,
                "multi-message statistics requests are not supported",
            ));
        }
        let now = Instant::now();
        let replies = |entries: Vec<Vec<u8>>| Ok(codec::multipart_replies_v(v, mtype, &[], h.xid, &entries));
        match mtype {
            mp::DESC => {
                let mut b = Vec::with_capacity(1056);
                put_str(&mut b, "sdnfwd", 256);
                put_str(&mut b, "userspace AF_XDP poll-mode datapath", 256);
                put_str(&mut b, env!("CARGO_PKG_VERSION"), 256);
                put_str(&mut b, "None", 32);
                put_str(&mut b, &self.sw.description(), 256);
                replies(vec![b])
            }
            mp::FLOW | mp::AGGREGATE => {
                let f = if v == OFP10 { of10::decode_flow_filter10(req)? } else { codec::decode_flow_filter(req)? };
                let entries = self.flow_stats(mtype == mp::AGGREGATE, &f, now, false)?;
                Ok(codec::multipart_replies_v(v, mtype, &[], h.xid, &entries))
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
                        matched[t] += r.counters().0;
                    }
                }
                replies(
                    (0..254)
                        .map(|t| {
                            if v == OFP10 {
                                return of10::table_stats10(t as u8, active[t], matched[t], matched[t]);
                            }
                            let mut e = vec![t as u8, 0, 0, 0];
                            e.extend_from_slice(&active[t].to_be_bytes());
                            e.extend_from_slice(&matched[t].to_be_bytes());
                            e.extend_from_slice(&matched[t].to_be_bytes());
                            e
                        })
                        .collect(),
                )
            }
            mp::PORT_STATS => {
                let (want, any) = if v == OFP10 {
                    (req.get(..2).map_or(0xffff, |b| be16(b) as u32), 0xffff)
                } else {
                    (req.get(..4).map_or(codec::OFPP13_ANY, be32), codec::OFPP13_ANY)
                };
                let ports = self.sw.ports().map_err(unreachable_node)?;
                let wire = |p: u32| if v == OFP10 { p } else { codec::port_to_of13(p) };
                let sel: Vec<&PortDesc> = ports.iter().filter(|p| want == any || wire(p.port_no) == want).collect();
                if sel.is_empty() && want != any {
                    return Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_PORT, format!("no port {want}")));
                }
                replies(sel.into_iter().map(|p| port_stats(p, v)).collect())
            }
            mp::PORT_DESC => {
                let ports = self.sw.ports().map_err(unreachable_node)?;
                let want = if v >= OFP15 { req.get(..4).map_or(codec::OFPP13_ANY, be32) } else { codec::OFPP13_ANY };
                replies(
                    ports
                        .iter()
                        .filter(|p| want == codec::OFPP13_ANY || codec::port_to_of13(p.port_no) == want)
                        .map(|p| port_desc(p, v))
                        .collect(),
                )
            }
            // No queues, no meters: empty replies.
            5 => replies(vec![]),
            9 | 10 if v >= OFP13 => replies(vec![]),
            15 if v >= OFP14 => replies(vec![]),
            11 if v >= OFP13 => replies(vec![vec![0; 16]]), // meter features: none
            mp::GROUP_DESC | mp::GROUP | mp::GROUP_FEATURES if v != OFP10 => self.group_stats(mtype, req, h.xid),
            mp::TABLE_FEATURES if v >= OFP13 => {
                if !req.is_empty() {
                    return Err(OfError::new(
                        err::TABLE_FEATURES_FAILED,
                        err::TFFC_EPERM,
                        "table features cannot be changed",
                    ));
                }
                replies((0..254u8).map(codec::table_features).collect())
            }
            16 if v >= OFP14 => self.monitor_request(h, mtype, &[], req),
            0xffff => self.vendor_stats(h, req),
            other => Err(OfError::new(
                err::BAD_REQUEST,
                err::BRC_BAD_MULTIPART,
                format!("statistics type {other} of OpenFlow {} is not supported by sdnfwd", version_name(v)),
            )),
        }
    }

    /// Flow statistics entries (or the one aggregate entry) for a filter,
    /// in the connection's format.
    fn flow_stats(
        &self,
        aggregate: bool,
        f: &codec::FlowFilter,
        now: Instant,
        nx: bool,
    ) -> Result<Vec<Vec<u8>>, OfError> {
        let rules = self.sw.rules().map_err(unreachable_node)?;
        let sel = rules.iter().filter(|r| f.selects(&r.spec));
        let v = self.version;
        if aggregate {
            let (mut p, mut b, mut n) = (0u64, 0u64, 0u32);
            for r in sel {
                let (rp, rb) = r.counters();
                p += rp;
                b += rb;
                n += 1;
            }
            return Ok(vec![of10::aggregate_body(v, p, b, n)]);
        }
        Ok(sel
            .map(|r| {
                let mut e = Vec::with_capacity(160);
                let view = codec::FlowStatsView::of(r, now);
                match (v, nx) {
                    (OFP10, true) => of10::encode_nx_flow_stats(&view, &mut e),
                    (OFP10, false) => of10::encode_flow_stats10(&view, &mut e),
                    _ => codec::encode_flow_stats_v(&view, v, &mut e),
                }
                e
            })
            .collect())
    }

    /// Nicira (and ONF) statistics.
    fn vendor_stats(&mut self, h: codec::Header, req: &[u8]) -> Reply {
        let v = self.version;
        if req.len() < 8 {
            return Err(bad_len("vendor statistics request"));
        }
        let (vendor, subtype) = (be32(req), be32(&req[4..]));
        let skip = if v == OFP10 { 12 } else { 8 };
        let body = req.get(skip..).unwrap_or(&[]);
        let mut prefix = req[..8].to_vec();
        if v == OFP10 {
            prefix.extend_from_slice(&[0; 4]);
        }
        match (vendor, subtype) {
            (codec::NX_VENDOR, nxst::FLOW | nxst::AGGREGATE) if v == OFP10 => {
                let f = of10::decode_nx_flow_filter(body)?;
                let entries = self.flow_stats(subtype == nxst::AGGREGATE, &f, Instant::now(), true)?;
                Ok(codec::multipart_replies_v(v, 0xffff, &prefix, h.xid, &entries))
            }
            (codec::NX_VENDOR, nxst::FLOW_MONITOR) if v == OFP10 => self.monitor_request(h, 0xffff, &prefix, body),
            (codec::ONF_VENDOR, 1870) if v == OFP13 => self.monitor_request(h, 0xffff, &prefix, body),
            // OpenFlow 1.0's group statistics (Nicira's, in OpenFlow 1.5's
            // format): answered while there are no groups.
            (codec::NX_VENDOR, 7..=9) if v == OFP10 => {
                let groups = self.sw.groups().map_err(unreachable_node)?;
                if subtype != 9 && groups.is_empty() {
                    return Ok(codec::multipart_replies_v(v, 0xffff, &prefix, h.xid, &[]));
                }
                Err(OfError::new(
                    err::BAD_REQUEST,
                    err::BRC_BAD_MULTIPART,
                    "groups over OpenFlow 1.0 are not supported by sdnfwd: use -O OpenFlow13",
                ))
            }
            (codec::NX_VENDOR, other) => Err(OfError::new(
                err::BAD_REQUEST,
                err::BRC_BAD_MULTIPART,
                format!("Nicira statistics {other} are not supported by sdnfwd"),
            )),
            (other, _) => Err(OfError::new(
                err::BAD_REQUEST,
                err::BRC_BAD_EXPERIMENTER,
                format!("experimenter {other:#x}'s statistics are not supported"),
            )),
        }
    }

    /// GROUP_DESC, GROUP and GROUP_FEATURES (OpenFlow 1.3 and 1.4; 1.5's
    /// bucket format is not spoken: answered while there are no groups).
    fn group_stats(&self, mtype: u16, req: &[u8], xid: u32) -> Reply {
        let v = self.version;
        let groups = self.sw.groups().map_err(unreachable_node)?;
        let replies = |entries: Vec<Vec<u8>>| Ok(codec::multipart_replies_v(v, mtype, &[], xid, &entries));
        if v >= OFP15 && mtype != mp::GROUP_FEATURES {
            if groups.is_empty() {
                return replies(vec![]);
            }
            return Err(OfError::new(
                err::BAD_REQUEST,
                err::BRC_BAD_MULTIPART,
                "groups over OpenFlow 1.5 are not supported by sdnfwd: use -O OpenFlow13",
            ));
        }
        match mtype {
            mp::GROUP_DESC => replies(
                groups
                    .iter()
                    .map(|g| {
                        let mut e = Vec::with_capacity(64);
                        codec::encode_group_desc(&g.spec, &mut e);
                        e
                    })
                    .collect(),
            ),
            mp::GROUP => {
                if req.len() < 8 {
                    return Err(bad_len("group statistics request"));
                }
                let want = be32(req);
                replies(
                    groups
                        .iter()
                        .filter(|g| want == codec::OFPG_ALL || g.spec.group_id == want)
                        .map(|g| {
                            let mut e = Vec::with_capacity(40 + 16 * g.spec.buckets.len());
                            codec::encode_group_stats(g, &mut e);
                            e
                        })
                        .collect(),
                )
            }
            _ => replies(vec![codec::group_features()]),
        }
    }

    /// Drops the bundles left idle too long.
    fn expire_bundles(&mut self) {
        self.bundles.retain(|_, b| b.used.elapsed() < BUNDLE_IDLE);
    }

    /// A bundle control reply (OpenFlow 1.4's type, or the ONF's experimenter
    /// message in 1.3).
    fn bundle_reply(&self, xid: u32, id: u32, ty: u16) -> Vec<u8> {
        let mut m = if self.version == OFP13 {
            let mut m = codec::start_v(OFP13, ty::EXPERIMENTER, xid);
            m.extend_from_slice(&codec::ONF_VENDOR.to_be_bytes());
            m.extend_from_slice(&2300u32.to_be_bytes());
            m
        } else {
            codec::start_v(self.version, 33, xid)
        };
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&ty.to_be_bytes());
        m.extend_from_slice(&0u16.to_be_bytes());
        codec::finish(m)
    }

    /// BUNDLE_CONTROL: open, close, commit (one transaction through
    /// [`Switch::apply_atomic`]: all applies or none) and discard, as Open
    /// vSwitch answers them.
    fn bundle_control(&mut self, h: codec::Header, body: &[u8]) -> Reply {
        if body.len() < 8 {
            return Err(bad_len("BUNDLE_CONTROL"));
        }
        self.expire_bundles();
        let (id, ctl, flags) = (be32(body), be16(&body[4..]), be16(&body[6..]));
        let bfc = |code: u16, why: String| Err(OfError::new(err::BUNDLE_FAILED, code, why));
        if flags & !3 != 0 {
            return bfc(err::BFC_BAD_FLAGS, format!("bundle flags {flags:#x} (atomic and ordered are known)"));
        }
        match ctl {
            0 => {
                if self.bundles.remove(&id).is_some() {
                    return bfc(err::BFC_BAD_ID, format!("bundle {id} is open already"));
                }
                if self.bundles.len() >= 64 {
                    return bfc(err::BFC_OUT_OF_BUNDLES, "64 bundles are open on this connection".into());
                }
                self.bundles.insert(id, Bundle { flags, closed: false, msgs: Vec::new(), used: Instant::now() });
                Ok(vec![self.bundle_reply(h.xid, id, 1)])
            }
            2 => {
                let Some(b) = self.bundles.get_mut(&id) else {
                    return bfc(err::BFC_BAD_ID, format!("no bundle {id}"));
                };
                if b.closed {
                    self.bundles.remove(&id);
                    return bfc(err::BFC_BUNDLE_CLOSED, format!("bundle {id} is closed already"));
                }
                if b.flags != flags {
                    self.bundles.remove(&id);
                    return bfc(err::BFC_BAD_FLAGS, format!("bundle {id} was opened with other flags"));
                }
                b.closed = true;
                b.used = Instant::now();
                Ok(vec![self.bundle_reply(h.xid, id, 3)])
            }
            4 => {
                let Some(b) = self.bundles.remove(&id) else {
                    return bfc(err::BFC_BAD_ID, format!("no bundle {id}"));
                };
                if b.flags != flags {
                    return bfc(err::BFC_BAD_FLAGS, format!("bundle {id} was opened with other flags"));
                }
                let mut out = Vec::new();
                self.flush(&mut out);
                let cmds: Vec<FlowCommand> = b.msgs.iter().map(|(c, _)| c.clone()).collect();
                let n = cmds.len();
                match self.sw.apply_atomic(cmds, self.peer.id).map_err(unreachable_node)? {
                    Ok(()) => {
                        self.sw.log(&format!(
                            "OpenFlow connection {}: bundle {id} committed ({n} messages)",
                            self.peer.id
                        ));
                        out.push(self.bundle_reply(h.xid, id, 5));
                        Ok(out)
                    }
                    Err((i, e)) => {
                        let (cmd, msg) = &b.msgs[i.min(n.saturating_sub(1))];
                        out.push(self.error(&refusal(cmd, e, self.version), msg));
                        let _ = self.peer.send(&out);
                        bfc(
                            err::BFC_MSG_FAILED,
                            format!("bundle {id}: message {} of {n} was refused: nothing applied", i + 1),
                        )
                    }
                }
            }
            6 => {
                if self.bundles.remove(&id).is_none() {
                    return bfc(err::BFC_BAD_ID, format!("no bundle {id}"));
                }
                Ok(vec![self.bundle_reply(h.xid, id, 7)])
            }
            1 | 3 | 5 | 7 => bfc(err::BFC_BAD_TYPE, format!("bundle control type {ctl} is a reply")),
            other => bfc(err::BFC_BAD_TYPE, format!("bundle control type {other}")),
        }
    }

    /// BUNDLE_ADD_MESSAGE: a FLOW_MOD or GROUP_MOD, decoded now (a bad one
    /// is refused now, with the add's xid), applied at commit.
    fn bundle_add(&mut self, h: codec::Header, msg: &[u8], body: &[u8]) -> Reply {
        if body.len() < 8 + 8 {
            return Err(bad_len("BUNDLE_ADD_MESSAGE"));
        }
        self.expire_bundles();
        let (id, flags) = (be32(body), be16(&body[6..]));
        let inner = &body[8..];
        let ih = codec::Header::parse(inner).expect("8 bytes");
        let bfc = |code: u16, why: String| Err(OfError::new(err::BUNDLE_FAILED, code, why));
        if (ih.len as usize) < 8 || ih.len as usize > inner.len() {
            return bfc(err::BFC_MSG_BAD_LEN, format!("bundled message of length {}", ih.len));
        }
        let inner = &inner[..ih.len as usize];
        if ih.version != self.version {
            return Err(OfError::new(err::BAD_REQUEST, err::BRC_BAD_VERSION, "bundled message of another version"));
        }
        if ih.xid != h.xid {
            return bfc(0x9, format!("bundled message's xid {:#x} is not the add's {:#x}", ih.xid, h.xid));
        }
        let cmd = match self.as_mod(ih, inner) {
            Some(c) => c?,
            None => {
                return bfc(
                    err::BFC_MSG_UNSUP,
                    format!("message type {} in a bundle (sdnfwd bundles FLOW_MODs and GROUP_MODs)", ih.ty),
                )
            }
        };
        let b = self.bundles.entry(id).or_insert_with(|| Bundle {
            flags,
            closed: false,
            msgs: Vec::new(),
            used: Instant::now(),
        });
        if b.closed {
            self.bundles.remove(&id);
            return bfc(err::BFC_BUNDLE_CLOSED, format!("bundle {id} is closed"));
        }
        if b.flags != flags {
            self.bundles.remove(&id);
            return bfc(err::BFC_BAD_FLAGS, format!("bundle {id} was opened with other flags"));
        }
        if b.msgs.len() >= MAX_BUNDLE_MSGS {
            return bfc(err::BFC_MSG_TOO_MANY, format!("bundle {id} holds {MAX_BUNDLE_MSGS} messages"));
        }
        b.used = Instant::now();
        b.msgs.push((cmd, msg.to_vec()));
        Ok(vec![])
    }

    /// A flow monitor request (Nicira's in 1.0, the ONF's in 1.3, 1.4's
    /// own): its initial flows, then updates from the event thread.
    fn monitor_request(&mut self, h: codec::Header, mtype: u16, prefix: &[u8], body: &[u8]) -> Reply {
        let v = self.version;
        let reqs = super::monitor::decode_requests(body, v)?;
        let rules = self.sw.rules().map_err(unreachable_node)?;
        let now = Instant::now();
        let mut entries = Vec::new();
        {
            let mut st = self.st();
            for r in &reqs {
                if st.monitors.iter().any(|m| m.id == r.id) {
                    return Err(OfError::new(
                        err::FLOW_MONITOR_FAILED,
                        err::MOFC_MONITOR_EXISTS,
                        format!("flow monitor {} exists", r.id),
                    ));
                }
            }
            for r in reqs {
                if r.initial() {
                    for rule in rules.iter().filter(|x| r.selects(&x.spec)) {
                        entries.push(super::monitor::initial_update(rule, v, now));
                    }
                }
                st.monitors.push(r);
            }
        }
        Ok(codec::multipart_replies_v(v, mtype, prefix, h.xid, &entries))
    }

    fn cancel_monitor(&mut self, id: u32) -> Reply {
        let mut st = self.st();
        let before = st.monitors.len();
        st.monitors.retain(|m| m.id != id);
        if st.monitors.len() == before {
            return Err(OfError::new(
                err::FLOW_MONITOR_FAILED,
                err::MOFC_UNKNOWN_MONITOR,
                format!("no flow monitor {id}"),
            ));
        }
        Ok(vec![])
    }
}

/// "1.0", "1.3", ...
pub fn version_name(v: u8) -> &'static str {
    match v {
        1 => "1.0",
        2 => "1.1",
        3 => "1.2",
        4 => "1.3",
        5 => "1.4",
        6 => "1.5",
        _ => "?",
    }
}

/// What a Nicira message is called, for the refusal's reason.
fn nx_msg_name(subtype: u32) -> &'static str {
    match subtype {
        24..=26 => "TLV table",
        28 => "resume",
        29 | 32 => "conntrack flush",
        31 => "group mod",
        17 | 30 => "packet-in",
        _ => "unknown",
    }
}

/// The OpenFlow error Open vSwitch answers a refused command with.
pub fn refusal(cmd: &FlowCommand, e: FlowModError, version: u8) -> OfError {
    use FlowModErrorKind::*;
    let (t, code) = match (cmd, e.kind) {
        (_, MissingGroup) => (err::BAD_ACTION, err::BAC_BAD_OUT_GROUP),
        (FlowCommand::Group(_), GroupExists) => (err::GROUP_MOD_FAILED, err::GMFC_GROUP_EXISTS),
        (FlowCommand::Group(_), UnknownGroup) => (err::GROUP_MOD_FAILED, err::GMFC_UNKNOWN_GROUP),
        (FlowCommand::Group(GroupCommand::Add(_) | GroupCommand::Modify(_) | GroupCommand::Delete(_)), _) => {
            (err::GROUP_MOD_FAILED, err::GMFC_EPERM)
        }
        (_, Overlap) => (err::FLOW_MOD_FAILED, err::FMFC_OVERLAP),
        (_, ReadOnlyTable) => (err::BAD_REQUEST, err::BRC_EPERM),
        _ if version == OFP10 => (err::FLOW_MOD_FAILED, err::FMFC_EPERM),
        _ => (err::FLOW_MOD_FAILED, err::FMFC_UNKNOWN),
    };
    OfError::new(t, code, e.why)
}

/// A port's description entry of `version`.
fn port_desc(p: &PortDesc, version: u8) -> Vec<u8> {
    if version == OFP10 {
        return of10::phy_port10(p.port_no, p.mac, &p.name, p.up);
    }
    let mut e = Vec::with_capacity(72);
    e.extend_from_slice(&codec::port_to_of13(p.port_no).to_be_bytes());
    if version >= OFP14 {
        e.extend_from_slice(&72u16.to_be_bytes());
        e.extend_from_slice(&[0; 2]);
    } else {
        e.extend_from_slice(&[0; 4]);
    }
    e.extend_from_slice(&p.mac.to_be_bytes()[2..]);
    e.extend_from_slice(&[0; 2]);
    put_str(&mut e, &p.name, 16);
    e.extend_from_slice(&(if p.up { 0u32 } else { 1 }).to_be_bytes()); // config: PORT_DOWN
    e.extend_from_slice(&(if p.up { 4u32 } else { 1 }).to_be_bytes()); // state: LIVE / LINK_DOWN
    if version >= OFP14 {
        // The Ethernet property: no features, no speed.
        e.extend_from_slice(&0u16.to_be_bytes());
        e.extend_from_slice(&32u16.to_be_bytes());
        e.extend_from_slice(&[0; 28]);
    } else {
        e.extend_from_slice(&[0; 24]); // curr, advertised, supported, peer, curr_speed, max_speed
    }
    e
}

/// A port's statistics entry of `version`. Drops, errors, frame/overrun/CRC
/// errors, collisions and the time since the port came up are not kept
/// per port (all ones is OpenFlow's "unavailable").
fn port_stats(p: &PortDesc, version: u8) -> Vec<u8> {
    let mut e = Vec::with_capacity(120);
    let counters = [p.rx_packets, p.tx_packets, p.rx_bytes, p.tx_bytes];
    if version == OFP10 {
        e.extend_from_slice(&(p.port_no as u16).to_be_bytes());
        e.extend_from_slice(&[0; 6]);
        for c in counters {
            e.extend_from_slice(&c.to_be_bytes());
        }
        for _ in 0..8 {
            e.extend_from_slice(&u64::MAX.to_be_bytes());
        }
    } else if version >= OFP14 {
        e.extend_from_slice(&120u16.to_be_bytes());
        e.extend_from_slice(&[0; 2]);
        e.extend_from_slice(&codec::port_to_of13(p.port_no).to_be_bytes());
        e.extend_from_slice(&[0xff; 8]); // duration: unavailable
        for c in counters {
            e.extend_from_slice(&c.to_be_bytes());
        }
        for _ in 0..4 {
            e.extend_from_slice(&u64::MAX.to_be_bytes());
        }
        // The Ethernet property.
        e.extend_from_slice(&0u16.to_be_bytes());
        e.extend_from_slice(&40u16.to_be_bytes());
        e.extend_from_slice(&[0; 4]);
        for _ in 0..4 {
            e.extend_from_slice(&u64::MAX.to_be_bytes());
        }
    } else {
        e.extend_from_slice(&codec::port_to_of13(p.port_no).to_be_bytes());
        e.extend_from_slice(&[0; 4]);
        for c in counters {
            e.extend_from_slice(&c.to_be_bytes());
        }
        for _ in 0..8 {
            e.extend_from_slice(&u64::MAX.to_be_bytes());
        }
        e.extend_from_slice(&[0xff; 8]); // duration: unavailable
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_framer_keeps_a_half_message_across_a_timeout() {
        use std::os::unix::net::UnixStream;
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut fr = Framer { conn: Box::new(a), buf: Vec::new() };
        let echo = codec::finish(codec::start_v(OFP13, ty::ECHO_REQUEST, 7));
        b.write_all(&echo[..5]).unwrap();
        assert!(matches!(fr.next().unwrap(), Next::Idle));
        b.write_all(&echo[5..]).unwrap();
        match fr.next().unwrap() {
            Next::Msg(m) => assert_eq!(m, echo),
            _ => panic!("no message"),
        }
        b.write_all(&[4, 0, 0, 3]).unwrap();
        assert!(fr.next().is_err(), "a length below the header's is junk");
    }
}
