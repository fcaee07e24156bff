//! The OpenFlow listener (`sdnfwd run --openflow ptcp:PORT[:IP]` or
//! `punix:PATH`): what lets the real `ovs-ofctl` (or a controller) program
//! and read a node's tables as it would Open vSwitch's bridge.
//!
//! Versions: it offers OpenFlow 1.0, 1.3, 1.4 and 1.5 and speaks the
//! highest the peer offers, as Open vSwitch's bridge does (a plain
//! `ovs-ofctl` offers 1.0 only; `-O` picks others). OpenFlow 1.0 comes with
//! the Nicira extensions `ovs-ofctl` uses on it (NXM matches, NXT_FLOW_MOD,
//! NXST_FLOW and NXST_AGGREGATE, the table id in FLOW_MOD commands, flow
//! monitors). 1.1 and 1.2 are not spoken: a peer offering only those gets
//! HELLO_FAILED with the reason.
//!
//! Each connection is a thread ([`session`]). It answers ECHO, FEATURES,
//! GET_CONFIG/SET_CONFIG, BARRIER, ROLE and async-config requests, applies
//! FLOW_MODs (add, modify, delete, strict or not, cookie masks, out_port and
//! out_group filters, timeouts, flags) and GROUP_MODs, bundles (OpenFlow
//! 1.4's and the ONF's extension of 1.3, committed as one transaction),
//! PACKET_OUT through the pipeline, and serves the statistics requests
//! (flows, aggregate, tables, ports, port descriptions, groups, table
//! features, flow monitors; empty replies for queues and meters, which
//! sdnfwd has none of). Anything else gets the OpenFlow error Open vSwitch
//! would send, with the whole request in it (so `ovs-ofctl` prints the
//! request it refers to), and the connection stays up.
//!
//! Each FLOW_MOD and GROUP_MOD outside a bundle is its own transaction, as
//! OpenFlow has it: a refused one changes nothing and is answered with
//! Open vSwitch's error for it, the others apply. The mods a client sent
//! back to back reach the tables together, in order, so that caches are
//! revalidated once per batch. (`ovs-ofctl add-flows` without `--bundle`
//! sends each flow with its own barrier and waits for it, so a refused line
//! leaves the lines before it applied, in Open vSwitch as here; with
//! `--bundle` the file applies whole or not at all.)
//!
//! The listener's event thread sends what the tables report
//! ([`Switch::subscribe`]): FLOW_REMOVED to the connections that set a
//! `miss_send_len` (as Open vSwitch sends asynchronous messages to a
//! management connection only then), for flows with `send_flow_rem`; flow
//! monitor updates to the connections that asked. Flows with timeouts are
//! expired by the node's slow path (or, for [`TableSwitch`], by the
//! listener's timer).
//!
//! The node behind the listener is a [`Switch`]: the running datapath's
//! slow path in `sdnfwd run`, or [`TableSwitch`], tables without a
//! datapath.

pub mod codec;
pub mod monitor;
pub mod of10;
pub mod session;
pub mod switch;

use std::net::TcpListener;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use config::ofctl::FlowCommand;
use crossbeam_channel::Receiver;

use crate::ofproto::{FlowEvent, FlowModError, GroupStats, Ofproto, Rule};
use session::{Peer, Session};
pub use switch::{Conn, PacketOut, PacketOutAction, PortDesc, Switch, SwitchConfig};

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
    fn flow_mods(&self, cmds: Vec<FlowCommand>, origin: u64) -> Result<Vec<Result<(), FlowModError>>, String> {
        let mut of = self.of();
        Ok(cmds.iter().map(|c| of.apply_from(std::slice::from_ref(c), origin).map_err(|(_, e)| e)).collect())
    }
    fn apply_atomic(&self, cmds: Vec<FlowCommand>, origin: u64) -> Result<Result<(), (usize, FlowModError)>, String> {
        Ok(self.of().apply_from(&cmds, origin))
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
    fn subscribe(&self) -> Result<Receiver<FlowEvent>, String> {
        Ok(self.of().subscribe())
    }
    fn expire(&self) {
        self.of().expire(Instant::now());
    }
}

/// A passive OpenFlow endpoint.
pub enum Listener {
    /// `ptcp:PORT[:IP]`.
    Tcp(TcpListener),
    /// `punix:PATH`.
    Unix(UnixListener, PathBuf),
}

/// How long a connection may stay silent before it is sent an
/// ECHO_REQUEST, and closed if it stays silent as long again.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(15);

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

    /// Accepts connections until the process ends, one thread each, with
    /// [`PROBE_INTERVAL`].
    pub fn serve(self, sw: Arc<dyn Switch>) {
        self.serve_with(sw, PROBE_INTERVAL)
    }

    /// [`Listener::serve`] with another inactivity probe interval.
    pub fn serve_with(self, sw: Arc<dyn Switch>, probe: Duration) {
        let state = Arc::new(Mutex::new(SwitchConfig::default()));
        let peers: Arc<Mutex<Vec<Weak<Peer>>>> = Arc::default();
        match sw.subscribe() {
            Ok(rx) => {
                let (sw, peers) = (sw.clone(), peers.clone());
                let _ = std::thread::Builder::new()
                    .name("sdnfwd-of-events".into())
                    .spawn(move || events(&*sw, &rx, &peers));
            }
            Err(e) => sw.log(&format!("OpenFlow: no flow events ({e}): no FLOW_REMOVED or flow monitors")),
        }
        {
            let sw = Arc::downgrade(&sw);
            let _ = std::thread::Builder::new().name("sdnfwd-of-timer".into()).spawn(move || loop {
                std::thread::sleep(Duration::from_millis(100));
                match sw.upgrade() {
                    Some(sw) => sw.expire(),
                    None => break,
                }
            });
        }
        let next_id = AtomicU64::new(1);
        let spawn = |conn: Box<dyn Conn>| {
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let Ok(out) = conn.try_clone_conn() else { return };
            let peer = Session::peer(id, out);
            {
                let mut p = peers.lock().unwrap_or_else(|p| p.into_inner());
                p.retain(|w| w.strong_count() > 0);
                p.push(Arc::downgrade(&peer));
            }
            let (sw, state) = (sw.clone(), state.clone());
            let _ = std::thread::Builder::new().name("sdnfwd-openflow".into()).spawn(move || {
                let _ = Session::new(&*sw, &state, peer, probe).run(conn);
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

/// The event thread: each committed change to the flows, as FLOW_REMOVED
/// and flow monitor updates, to the connections that want it.
fn events(sw: &dyn Switch, rx: &Receiver<FlowEvent>, peers: &Mutex<Vec<Weak<Peer>>>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter().take(4095));
        let now = Instant::now();
        let live: Vec<Arc<Peer>> =
            peers.lock().unwrap_or_else(|p| p.into_inner()).iter().filter_map(Weak::upgrade).collect();
        for p in live {
            let st = p.state();
            if st.version == 0 {
                continue;
            }
            let mut out = Vec::new();
            if st.miss_send_len != 0 {
                for e in &batch {
                    if let FlowEvent::Removed { rule, reason, .. } = e {
                        if rule.spec.flags & config::ofctl::ff::SEND_FLOW_REM != 0 {
                            out.push(of10::flow_removed(rule, *reason, now, st.version, st.nxm));
                        }
                    }
                }
            }
            if !st.monitors.is_empty() {
                let entries: Vec<Vec<u8>> = batch
                    .iter()
                    .filter_map(|e| {
                        let m = st.monitors.iter().find(|m| m.wants(e))?;
                        Some(monitor::update(e, m.actions(), st.version))
                    })
                    .collect();
                if !entries.is_empty() {
                    let (mtype, prefix) = monitor::reply_kind(st.version);
                    out.extend(codec::multipart_replies_v(st.version, mtype, &prefix, 0, &entries));
                }
            }
            if p.send(&out).is_err() {
                sw.log(&format!("OpenFlow connection {}: could not send asynchronous messages", p.id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codec::{be16, be32, err, mp, ty};
    use config::ofctl::{parse_flow_line, LineKind};
    use std::io::{BufRead, BufReader, Write};

    /// Reads one whole message.
    fn read_msg(r: &mut impl BufRead) -> std::io::Result<Option<Vec<u8>>> {
        let mut h = [0u8; 8];
        match r.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        let mut m = vec![0u8; len];
        m[..8].copy_from_slice(&h);
        r.read_exact(&mut m[8..])?;
        Ok(Some(m))
    }

    fn simple(t: u8, xid: u32, body: &[u8]) -> Vec<u8> {
        let mut m = codec::start(t, xid);
        m.extend_from_slice(body);
        codec::finish(m)
    }

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

    /// Well-framed junk of every message type, in every version, with
    /// Nicira and ONF experimenter subtypes: the connection answers each
    /// (or not) and is still up for an ECHO at the end; no session thread
    /// dies.
    #[test]
    fn test_junk_requests_never_kill_a_session() {
        let dir = std::env::temp_dir().join(format!("sdnfwd-of-junk-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("br0.sock");
        let l = Listener::bind(&format!("punix:{}", path.display())).unwrap();
        let sw: Arc<dyn Switch> = Arc::new(TableSwitch::new(Ofproto::new(), vec![]));
        std::thread::spawn(move || l.serve(sw));
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for version in [1u8, 4, 5, 6] {
            let mut s = UnixStream::connect(&path).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            // Everything the switch sends, until it closes.
            let mut r = BufReader::new(s.try_clone().unwrap());
            let (tx, rx) = crossbeam_channel::unbounded();
            std::thread::spawn(move || {
                while let Ok(Some(m)) = read_msg(&mut r) {
                    if tx.send(m).is_err() {
                        break;
                    }
                }
            });
            assert_eq!(rx.recv().unwrap()[1], ty::HELLO);
            s.write_all(&[version, 0, 0, 8, 0, 0, 0, 1]).unwrap();
            for i in 0..3000u32 {
                let t = (rnd() % 36) as u8;
                if t == ty::HELLO || t == ty::ECHO_REPLY {
                    continue;
                }
                let mut body: Vec<u8> = (0..rnd() % 96).map(|_| rnd() as u8).collect();
                if t == 4 && body.len() >= 8 && rnd() % 2 == 0 {
                    let vendor = if rnd() % 2 == 0 { codec::NX_VENDOR } else { codec::ONF_VENDOR };
                    body[..4].copy_from_slice(&vendor.to_be_bytes());
                    let sub = [rnd() as u32 % 40, 2300 + rnd() as u32 % 2, 1870][(rnd() % 3) as usize];
                    body[4..8].copy_from_slice(&sub.to_be_bytes());
                }
                if (t == 18 || t == 16 || t == ty::MULTIPART_REQUEST) && body.len() >= 2 {
                    body[0] = 0;
                    body[1] = (rnd() % 20) as u8;
                }
                let mut m = vec![version, t, 0, 0];
                m.extend_from_slice(&(i + 10).to_be_bytes());
                m.extend_from_slice(&body);
                let len = m.len() as u16;
                m[2..4].copy_from_slice(&len.to_be_bytes());
                s.write_all(&m).unwrap();
            }
            s.write_all(&[version, ty::ECHO_REQUEST, 0, 8, 0xee, 0xee, 0xee, 0xee]).unwrap();
            loop {
                let m = rx.recv_timeout(Duration::from_secs(10)).expect("the session died");
                if m[1] == ty::ECHO_REPLY && m[4..8] == [0xee; 4] {
                    break;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
