//! The host's translations, adopted by the datapath's tracker.
//!
//! On an OpenShift node, a pod's packet to a service address leaves the
//! bridge through tun0; the host's iptables rules (kube-proxy's
//! KUBE-SERVICES → KUBE-SVC-* → KUBE-SEP-* chains) translate it to a
//! backend pod in the kernel's connection tracker, and it comes back into
//! the bridge from tun0. The backend's replies travel pod to pod and never
//! see the host again; with Open vSwitch's kernel datapath the rule
//! `ct_state=+rpl → ct(nat,table=70)` finds the kernel's own connection
//! and restores the service address. sdnfwd's tracker is its own, so it
//! adopts the kernel's translation instead:
//!
//! 1. A `ct` of a packet from tun0 (in_port 2, `CtRequest::from_host`)
//!    that would start a connection holds the packet and asks the node
//!    (`fastpath::hostnat`). Only a connection's first packet asks.
//! 2. This module answers: it looks the connection up in the kernel's
//!    tracker over ctnetlink (`IPCTNL_MSG_CT_GET` by the reply tuple, the
//!    packet's own reversed) and, if the kernel translated the destination
//!    and only that, records it with `Conntrack::adopt`, then marks the
//!    kernel's connection answered ([`answered_request`]): the replies
//!    that move it on in a shared tracker never pass the host here. Two
//!    round trips to the kernel per new connection from the host, off the
//!    poll loops.
//! 3. The packet's pass runs again; a connection committed for it takes
//!    the kernel's keys (client → service, backend → client) with the
//!    destination translation, so `ct(nat)` on the backend's replies gives
//!    the client the service's address and port, on this node or, for a
//!    backend elsewhere, when the reply comes back over VXLAN.
//!
//! Chosen over following the kernel's conntrack events (asynchronous: a
//! reply could overtake the event) and over masquerading service traffic
//! on the host (the backend would see tun0's address, which NetworkPolicy
//! must not). Connections the host also source-translated (a pod reaching
//! itself through its service: kube-proxy masquerades that) are left
//! alone: their replies go back through the host, which undoes both.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use fastpath::conntrack::{Conntrack, CtTuple};
use fastpath::hostnat::HostQuery;
use nix::sys::socket::{
    bind, recv, sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

/// `NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET`.
const CT_GET: u16 = 0x0101;
/// `... | IPCTNL_MSG_CT_NEW`: a connection in a reply.
const CT_NEW: u16 = 0x0100;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLA_F_NESTED: u16 = 0x8000;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_STATUS: u16 = 3;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
/// `IPS_SRC_NAT`, `IPS_DST_NAT` of a connection's status.
const CTA_PROTOINFO: u16 = 4;
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;
const CTA_PROTOINFO_TCP_FLAGS_ORIGINAL: u16 = 4;
const CTA_PROTOINFO_TCP_FLAGS_REPLY: u16 = 5;
/// `TCP_CONNTRACK_ESTABLISHED`.
const TCP_ESTABLISHED: u8 = 3;
/// `IP_CT_TCP_FLAG_BE_LIBERAL`: no window checks for that direction.
const TCP_BE_LIBERAL: u8 = 0x08;
const IPS_SEEN_REPLY: u32 = 1 << 1;
const IPS_ASSURED: u32 = 1 << 2;
const IPS_SRC_NAT: u32 = 1 << 4;
const IPS_DST_NAT: u32 = 1 << 5;

/// What the kernel's tracker holds for a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelConn {
    /// The original direction's tuple (before translation).
    pub orig: CtTuple,
    /// `IPS_*` status bits.
    pub status: u32,
}

impl KernelConn {
    /// The original destination, when the kernel translated the
    /// destination of a connection whose packets look like `seen` (and not
    /// its source).
    pub fn dnat_of(&self, seen: &CtTuple) -> Option<(u32, u16)> {
        let o = &self.orig;
        let dnat = self.status & IPS_DST_NAT != 0 && self.status & IPS_SRC_NAT == 0;
        let same_client = o.src == seen.src && o.sport == seen.sport && o.proto == seen.proto;
        (dnat && same_client && (o.dst, o.dport) != (seen.dst, seen.dport)).then_some((o.dst, o.dport))
    }
}

fn put_attr(b: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    b.extend_from_slice(&(len as u16).to_ne_bytes());
    b.extend_from_slice(&ty.to_ne_bytes());
    b.extend_from_slice(payload);
    while !b.len().is_multiple_of(4) {
        b.push(0);
    }
}

fn nested(b: &mut Vec<u8>, ty: u16, fill: impl FnOnce(&mut Vec<u8>)) {
    let at = b.len();
    b.extend_from_slice(&[0; 4]);
    fill(b);
    let len = (b.len() - at) as u16;
    b[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    b[at + 2..at + 4].copy_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
}

/// The `IPCTNL_MSG_CT_GET` request for the connection whose reply tuple
/// is `reply` (zone 0, the kernel's default, where kube-proxy's rules
/// act).
pub fn get_request(reply: &CtTuple, seq: u32) -> Vec<u8> {
    let mut b = vec![0u8; 16];
    // nfgenmsg: AF_INET, NFNETLINK_V0, res_id 0.
    b.extend_from_slice(&[libc_af_inet(), 0, 0, 0]);
    nested(&mut b, CTA_TUPLE_REPLY, |b| {
        nested(b, CTA_TUPLE_IP, |b| {
            put_attr(b, CTA_IP_V4_SRC, &reply.src.to_be_bytes());
            put_attr(b, CTA_IP_V4_DST, &reply.dst.to_be_bytes());
        });
        nested(b, CTA_TUPLE_PROTO, |b| {
            put_attr(b, CTA_PROTO_NUM, &[reply.proto]);
            put_attr(b, CTA_PROTO_SRC_PORT, &reply.sport.to_be_bytes());
            put_attr(b, CTA_PROTO_DST_PORT, &reply.dport.to_be_bytes());
        });
    });
    let len = b.len() as u32;
    b[0..4].copy_from_slice(&len.to_ne_bytes());
    b[4..6].copy_from_slice(&CT_GET.to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    b
}

/// The `IPCTNL_MSG_CT_NEW` update (no `NLM_F_CREATE`: the connection
/// exists) that tells the kernel its connection `k` is answered: status
/// `SEEN_REPLY | ASSURED` and, for TCP, state ESTABLISHED with no window
/// checks either way.
///
/// Why: with Open vSwitch's kernel datapath the bridge's `ct` and the
/// host's rules share one tracker, so the backend's SYN-ACK, which never
/// passes the host, still moves the host's connection on. sdnfwd's does
/// not; without this the kernel, having seen only the client's SYN, takes
/// the client's next segment (an ACK in SYN_SENT) as invalid, leaves it
/// untranslated and the connection hangs after its handshake. The window
/// checks are off because the kernel never sees the backend's segments.
pub fn answered_request(k: &KernelConn, seq: u32) -> Vec<u8> {
    let mut b = vec![0u8; 16];
    b.extend_from_slice(&[libc_af_inet(), 0, 0, 0]);
    nested(&mut b, CTA_TUPLE_ORIG, |b| {
        nested(b, CTA_TUPLE_IP, |b| {
            put_attr(b, CTA_IP_V4_SRC, &k.orig.src.to_be_bytes());
            put_attr(b, CTA_IP_V4_DST, &k.orig.dst.to_be_bytes());
        });
        nested(b, CTA_TUPLE_PROTO, |b| {
            put_attr(b, CTA_PROTO_NUM, &[k.orig.proto]);
            put_attr(b, CTA_PROTO_SRC_PORT, &k.orig.sport.to_be_bytes());
            put_attr(b, CTA_PROTO_DST_PORT, &k.orig.dport.to_be_bytes());
        });
    });
    put_attr(&mut b, CTA_STATUS, &(k.status | IPS_SEEN_REPLY | IPS_ASSURED).to_be_bytes());
    if k.orig.proto == 6 {
        nested(&mut b, CTA_PROTOINFO, |b| {
            nested(b, CTA_PROTOINFO_TCP, |b| {
                put_attr(b, CTA_PROTOINFO_TCP_STATE, &[TCP_ESTABLISHED]);
                // struct nf_ct_tcp_flags { flags, mask }.
                put_attr(b, CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, &[TCP_BE_LIBERAL, TCP_BE_LIBERAL]);
                put_attr(b, CTA_PROTOINFO_TCP_FLAGS_REPLY, &[TCP_BE_LIBERAL, TCP_BE_LIBERAL]);
            });
        });
    }
    let len = b.len() as u32;
    b[0..4].copy_from_slice(&len.to_ne_bytes());
    b[4..6].copy_from_slice(&CT_NEW.to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    b
}

fn libc_af_inet() -> u8 {
    2
}

/// Attributes of a netlink payload: (type without flags, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & !NLA_F_NESTED & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = &b[len.next_multiple_of(4).min(b.len())..];
        Some((ty, payload))
    })
}

/// A tuple from a `CTA_TUPLE_*` attribute's payload.
fn tuple(p: &[u8]) -> Option<CtTuple> {
    let mut t = CtTuple::default();
    let (mut ip, mut proto) = (false, false);
    for (ty, v) in attrs(p) {
        match ty {
            CTA_TUPLE_IP => {
                for (ty, v) in attrs(v) {
                    let a = u32::from_be_bytes(v.get(..4)?.try_into().ok()?);
                    match ty {
                        CTA_IP_V4_SRC => t.src = a,
                        CTA_IP_V4_DST => t.dst = a,
                        _ => {}
                    }
                }
                ip = true;
            }
            CTA_TUPLE_PROTO => {
                for (ty, v) in attrs(v) {
                    match ty {
                        CTA_PROTO_NUM => t.proto = *v.first()?,
                        CTA_PROTO_SRC_PORT => t.sport = u16::from_be_bytes(v.get(..2)?.try_into().ok()?),
                        CTA_PROTO_DST_PORT => t.dport = u16::from_be_bytes(v.get(..2)?.try_into().ok()?),
                        _ => {}
                    }
                }
                proto = true;
            }
            _ => {}
        }
    }
    (ip && proto).then_some(t)
}

/// The kernel's answer to a [`get_request`] numbered `seq`: the connection,
/// `Ok(None)` if there is none (`ENOENT`), or the kernel's error.
pub fn parse_reply(mut b: &[u8], seq: u32) -> Result<Option<KernelConn>, String> {
    let mut found = None;
    while b.len() >= 16 {
        let len = u32::from_ne_bytes(b[0..4].try_into().expect("4 bytes")) as usize;
        let ty = u16::from_ne_bytes([b[4], b[5]]);
        let mseq = u32::from_ne_bytes(b[8..12].try_into().expect("4 bytes"));
        if len < 16 || len > b.len() {
            return Err(format!("a netlink message of {len} bytes in {}", b.len()));
        }
        let body = &b[16..len];
        b = &b[len.next_multiple_of(4).min(b.len())..];
        if mseq != seq {
            continue;
        }
        match ty {
            NLMSG_ERROR => {
                let e = i32::from_ne_bytes(body.get(..4).ok_or("a short netlink error")?.try_into().expect("4 bytes"));
                return match e {
                    0 => Ok(found),
                    e if -e == 2 => Ok(None),
                    e => Err(format!("ctnetlink: {}", std::io::Error::from_raw_os_error(-e))),
                };
            }
            NLMSG_DONE => return Ok(found),
            CT_NEW => {
                let (mut orig, mut status) = (None, 0);
                for (ty, v) in attrs(body.get(4..).unwrap_or(&[])) {
                    match ty {
                        CTA_TUPLE_ORIG => orig = tuple(v),
                        CTA_STATUS => {
                            status = u32::from_be_bytes(v.get(..4).ok_or("a short status")?.try_into().expect("4"))
                        }
                        _ => {}
                    }
                }
                found = orig.map(|orig| KernelConn { orig, status });
            }
            _ => {}
        }
    }
    Ok(found)
}

/// A ctnetlink socket in the calling thread's network namespace.
pub struct KernelConntrack {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl KernelConntrack {
    /// Opens the socket.
    ///
    /// # Errors
    /// The kernel has no ctnetlink (`CONFIG_NF_CT_NETLINK`), or the
    /// process may not use it (needs `CAP_NET_ADMIN`).
    pub fn open() -> Result<KernelConntrack, String> {
        let e = |what: &str, e: nix::Error| format!("ctnetlink {what}: {e}");
        let fd = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkNetFilter)
            .map_err(|x| e("socket", x))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|x| e("bind", x))?;
        let t = nix::sys::time::TimeVal::new(1, 0);
        setsockopt(&fd, sockopt::ReceiveTimeout, &t).map_err(|x| e("SO_RCVTIMEO", x))?;
        Ok(KernelConntrack { fd, seq: 0, buf: vec![0; 16384] })
    }

    /// The kernel's connection whose reply tuple is `reply`.
    ///
    /// # Errors
    /// The request or its answer failed.
    pub fn lookup(&mut self, reply: &CtTuple) -> Result<Option<KernelConn>, String> {
        self.seq = self.seq.wrapping_add(1);
        let req = get_request(reply, self.seq);
        self.request(&req)
    }

    /// Marks the kernel's connection `k` answered ([`answered_request`]).
    ///
    /// # Errors
    /// The kernel refused the update.
    pub fn mark_answered(&mut self, k: &KernelConn) -> Result<(), String> {
        self.seq = self.seq.wrapping_add(1);
        let req = answered_request(k, self.seq);
        self.request(&req).map(|_| ())
    }

    /// Sends `req` (numbered `self.seq`) and reads up to its
    /// acknowledgement.
    fn request(&mut self, req: &[u8]) -> Result<Option<KernelConn>, String> {
        sendto(self.fd.as_raw_fd(), req, &NetlinkAddr::new(0, 0), MsgFlags::empty())
            .map_err(|e| format!("ctnetlink send: {e}"))?;
        let mut found = None;
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::empty())
                .map_err(|e| format!("ctnetlink recv: {e}"))?;
            let msgs = &self.buf[..n];
            // The connection comes first, then the acknowledgement.
            let last = msgs.len() >= 6 && u16::from_ne_bytes([msgs[4], msgs[5]]) == NLMSG_ERROR;
            let has_error = contains_type(msgs, NLMSG_ERROR);
            match parse_reply(msgs, self.seq)? {
                Some(c) => found = Some(c),
                None if has_error => return Ok(found),
                None => {}
            }
            if last || has_error {
                return Ok(found);
            }
        }
    }
}

fn contains_type(mut b: &[u8], want: u16) -> bool {
    while b.len() >= 16 {
        let len = u32::from_ne_bytes(b[0..4].try_into().expect("4 bytes")) as usize;
        if u16::from_ne_bytes([b[4], b[5]]) == want {
            return true;
        }
        if len < 16 || len > b.len() {
            return false;
        }
        b = &b[len.next_multiple_of(4).min(b.len())..];
    }
    false
}

/// Answers the poll loops' questions until `stop`: each packet's
/// connection looked up in the kernel (only where `wanted` says the host
/// may have translated it: a pod's packet), the destination translation
/// adopted into `ct`, then the loop's `answered` counter moved on so that
/// its packet runs again. What is adopted is counted by the tracker
/// (`CtStats::adopted`); the kernel's first error is logged.
pub fn serve(
    rx: &Receiver<HostQuery>,
    answered: &[Arc<AtomicU64>],
    ct: &Conntrack,
    kernel: &mut KernelConntrack,
    wanted: impl Fn(&CtTuple) -> bool,
    stop: &AtomicBool,
    log: impl Fn(&str),
) {
    let mut logged = false;
    while !stop.load(Ordering::Relaxed) {
        let Ok(q) = rx.recv_timeout(Duration::from_millis(100)) else { continue };
        if wanted(&q.tuple) {
            let reply =
                CtTuple { src: q.tuple.dst, dst: q.tuple.src, sport: q.tuple.dport, dport: q.tuple.sport, ..q.tuple };
            match kernel.lookup(&reply) {
                Ok(Some(k)) => {
                    if let Some((dst, dport)) = k.dnat_of(&q.tuple) {
                        ct.adopt(&q.tuple, q.zone, dst, dport, fastpath::clock::now_ms());
                        if let Err(e) = kernel.mark_answered(&k) {
                            if !logged {
                                log(&format!("warning: the host's connection cannot be marked answered ({e}); its next packets may be left untranslated"));
                                logged = true;
                            }
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    if !logged {
                        log(&format!("warning: the host's translations cannot be read ({e}); replies to services may keep the backend's address"));
                        logged = true;
                    }
                }
            }
        }
        if let Some(a) = answered.get(q.pmd) {
            a.fetch_max(q.seq, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(src: u32, sport: u16, dst: u32, dport: u16) -> CtTuple {
        CtTuple { src, dst, proto: 6, sport, dport }
    }

    /// A reply the kernel sends for a connection translated to a backend,
    /// built as ctnetlink lays it out.
    fn kernel_reply(seq: u32, orig: &CtTuple, reply: &CtTuple, status: u32) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b.extend_from_slice(&[2, 0, 0, 0]);
        for (ty, tup) in [(CTA_TUPLE_ORIG, orig), (CTA_TUPLE_REPLY, reply)] {
            nested(&mut b, ty, |b| {
                nested(b, CTA_TUPLE_IP, |b| {
                    put_attr(b, CTA_IP_V4_SRC, &tup.src.to_be_bytes());
                    put_attr(b, CTA_IP_V4_DST, &tup.dst.to_be_bytes());
                });
                nested(b, CTA_TUPLE_PROTO, |b| {
                    put_attr(b, CTA_PROTO_NUM, &[tup.proto]);
                    put_attr(b, CTA_PROTO_SRC_PORT, &tup.sport.to_be_bytes());
                    put_attr(b, CTA_PROTO_DST_PORT, &tup.dport.to_be_bytes());
                });
            });
        }
        put_attr(&mut b, CTA_STATUS, &status.to_be_bytes());
        let len = b.len() as u32;
        b[0..4].copy_from_slice(&len.to_ne_bytes());
        b[4..6].copy_from_slice(&CT_NEW.to_ne_bytes());
        b[8..12].copy_from_slice(&seq.to_ne_bytes());
        // Then the acknowledgement.
        let mut ack = vec![0u8; 16];
        ack.extend_from_slice(&0i32.to_ne_bytes());
        ack.extend_from_slice(&[0; 16]);
        let alen = ack.len() as u32;
        ack[0..4].copy_from_slice(&alen.to_ne_bytes());
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack[8..12].copy_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&ack);
        b
    }

    #[test]
    fn test_request_layout() {
        let r = get_request(&t(0x0a83_0004, 8080, 0x0a83_0003, 40000), 7);
        // nlmsghdr, nfgenmsg, then CTA_TUPLE_REPLY (nested) holding the
        // addresses and the ports in network order.
        assert_eq!(r.len() as u32, u32::from_ne_bytes(r[0..4].try_into().unwrap()));
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), 0x0101);
        assert_eq!(u16::from_ne_bytes([r[6], r[7]]), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32::from_ne_bytes(r[8..12].try_into().unwrap()), 7);
        assert_eq!(&r[16..20], &[2, 0, 0, 0]);
        assert_eq!(u16::from_ne_bytes([r[22], r[23]]), CTA_TUPLE_REPLY | NLA_F_NESTED);
        let got = attrs(&r[20..]).find(|(ty, _)| *ty == CTA_TUPLE_REPLY).and_then(|(_, v)| tuple(v));
        assert_eq!(got, Some(t(0x0a83_0004, 8080, 0x0a83_0003, 40000)));
        assert_eq!(r.len(), 20 + 4 + (4 + 8 + 8) + (4 + 8 + 8 + 8));
    }

    #[test]
    fn test_answered_update_layout() {
        let k = KernelConn { orig: t(0x0a83_0003, 40000, 0xac1e_0c22, 8080), status: IPS_DST_NAT | 0x188 };
        let r = answered_request(&k, 3);
        assert_eq!(r.len() as u32, u32::from_ne_bytes(r[0..4].try_into().unwrap()));
        // IPCTNL_MSG_CT_NEW without NLM_F_CREATE: an update of what exists.
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), 0x0100);
        assert_eq!(u16::from_ne_bytes([r[6], r[7]]), NLM_F_REQUEST | NLM_F_ACK);
        let body: Vec<(u16, &[u8])> = attrs(&r[20..]).collect();
        assert_eq!(body[0].0, CTA_TUPLE_ORIG);
        assert_eq!(tuple(body[0].1), Some(k.orig));
        // The kernel's bits kept, SEEN_REPLY and ASSURED added.
        assert_eq!(body[1], (CTA_STATUS, &(IPS_DST_NAT | 0x188 | 0x6u32).to_be_bytes()[..]));
        assert_eq!(body[2].0, CTA_PROTOINFO);
        let tcp: Vec<(u16, &[u8])> = attrs(body[2].1).collect();
        assert_eq!(tcp[0].0, CTA_PROTOINFO_TCP);
        let fields: Vec<(u16, Vec<u8>)> = attrs(tcp[0].1).map(|(t, v)| (t, v.to_vec())).collect();
        assert_eq!(fields, vec![(1, vec![3]), (4, vec![8, 8]), (5, vec![8, 8])]);
        // UDP has no state to set.
        let udp = KernelConn { orig: CtTuple { proto: 17, ..k.orig }, ..k };
        assert_eq!(attrs(&answered_request(&udp, 4)[20..]).count(), 2);
    }

    #[test]
    fn test_reply_parsing_and_what_is_adopted() {
        let svc = t(0x0a83_0003, 40000, 0xac1e_0c22, 8080);
        let back = t(0x0a83_0004, 8080, 0x0a83_0003, 40000);
        let seen = t(0x0a83_0003, 40000, 0x0a83_0004, 8080);
        let msg = kernel_reply(9, &svc, &back, IPS_DST_NAT | 0xe);
        let k = parse_reply(&msg, 9).unwrap().unwrap();
        assert_eq!(k.orig, svc);
        assert_eq!(k.dnat_of(&seen), Some((0xac1e_0c22, 8080)));
        // Another request's answer is not this one's.
        assert_eq!(parse_reply(&msg, 10).unwrap(), None);
        // Source-translated too (a pod reaching itself through its
        // service): left to the host. Not translated: nothing to adopt.
        let both = parse_reply(&kernel_reply(9, &svc, &back, IPS_DST_NAT | IPS_SRC_NAT), 9).unwrap().unwrap();
        assert_eq!(both.dnat_of(&seen), None);
        let plain = parse_reply(&kernel_reply(9, &seen, &back, 0xe), 9).unwrap().unwrap();
        assert_eq!(plain.dnat_of(&seen), None);
        // ENOENT: none; another errno: an error; junk: no panic.
        let mut err = vec![0u8; 36];
        err[0..4].copy_from_slice(&36u32.to_ne_bytes());
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err[8..12].copy_from_slice(&9u32.to_ne_bytes());
        err[16..20].copy_from_slice(&(-2i32).to_ne_bytes());
        assert_eq!(parse_reply(&err, 9).unwrap(), None);
        err[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        assert!(parse_reply(&err, 9).unwrap_err().contains("ctnetlink"));
        for n in 0..msg.len() {
            let _ = parse_reply(&msg[..n], 9);
        }
        let mut junk = msg.clone();
        junk[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse_reply(&junk, 9).is_err());
    }
}
