//! Datapath actions: what a megaflow does to a packet, in the spirit of OVS's
//! ODP actions (DESIGN.md §2). The slow path produces them; the poll loops
//! execute them.

use std::sync::Arc;

use smallvec::SmallVec;

use crate::conntrack::types::{CtRequest, NatRequest};

/// A header field rewrite, applied before the outputs that follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetField {
    /// Ethernet source.
    EthSrc(u64),
    /// Ethernet destination.
    EthDst(u64),
    /// Packet mark (skb mark handed to the host on tun0).
    PktMark(u32),
    /// IPv4 source.
    Ipv4Src(u32),
    /// IPv4 destination.
    Ipv4Dst(u32),
    /// IPv4 TOS byte.
    IpTos(u8),
    /// IPv4 TTL.
    IpTtl(u8),
    /// L4 source port.
    TpSrc(u16),
    /// L4 destination port.
    TpDst(u16),
}

/// One datapath action.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DpAction {
    /// Send a copy out of an OpenFlow port (a pod, tun0).
    Output(u32),
    /// Encapsulate in VXLAN towards a remote VTEP and send on the uplink. The
    /// outer source, MACs and UDP source port are filled in by the tunnel
    /// layer (local VTEP, neighbour table, inner flow hash).
    TunnelPush {
        /// OpenFlow port of the tunnel (vxlan0 = 1).
        port: u32,
        /// VNI (low 24 bits of tun_id).
        vni: u32,
        /// Remote VTEP IPv4 address.
        dst: u32,
    },
    /// Rewrite a header field.
    Set(SetField),
    /// Send the packet through the connection tracker (the ct fields of
    /// its key change; NAT rewrites it).
    Ct(Arc<CtRequest>),
    /// Look the packet up again with this recirculation id in its key (the
    /// slow path's frozen translation resumes); a copy when more actions
    /// follow.
    Recirc(u32),
}

/// A megaflow's actions: one inline (the usual case: an output or a VXLAN
/// push). The translation builds them in this type and the megaflow takes
/// them by move: `DpAction` is not `Copy` (`ct`'s parameters are shared),
/// and cloning it element by element stalls on store forwarding.
pub type Actions = SmallVec<[DpAction; 1]>;

/// The actions as a megaflow keeps them: one inline (the usual case),
/// otherwise on the heap. 24 bytes where an [`Actions`] takes 32: with it
/// a megaflow and its reference counts are 128 bytes, two cache lines for
/// each new one to write rather than three (3586e79's megaflow padded to
/// three lines made its upcalls 7 % slower at 200,000 flows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MfActions {
    /// One action.
    One(DpAction),
    /// None (drop) or several.
    Many(Box<[DpAction]>),
}

impl From<Actions> for MfActions {
    #[inline]
    fn from(mut a: Actions) -> MfActions {
        if a.len() == 1 {
            MfActions::One(a.remove(0))
        } else {
            MfActions::Many(a.into_boxed_slice())
        }
    }
}

impl std::ops::Deref for MfActions {
    type Target = [DpAction];

    #[inline]
    fn deref(&self) -> &[DpAction] {
        match self {
            MfActions::One(a) => std::slice::from_ref(a),
            MfActions::Many(b) => b,
        }
    }
}

impl std::fmt::Display for DpAction {
    /// OVS's datapath action syntax (`set(tunnel(...)),1`, `set(eth(dst=..))`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = |v: u32| std::net::Ipv4Addr::from(v).to_string();
        let mac = crate::wire::fmt_mac;
        match *self {
            DpAction::Output(p) => write!(f, "{p}"),
            DpAction::TunnelPush { port, vni, dst } => {
                write!(f, "set(tunnel(tun_id={vni:#x},dst={},flags(df|key))),{port}", ip(dst))
            }
            DpAction::Ct(ref c) => fmt_ct(f, c.as_ref()),
            DpAction::Recirc(id) => write!(f, "recirc({id:#x})"),
            DpAction::Set(s) => match s {
                SetField::EthSrc(v) => write!(f, "set(eth(src={}))", mac(v)),
                SetField::EthDst(v) => write!(f, "set(eth(dst={}))", mac(v)),
                SetField::PktMark(v) => write!(f, "set(skb_mark({v:#x}))"),
                SetField::Ipv4Src(v) => write!(f, "set(ipv4(src={}))", ip(v)),
                SetField::Ipv4Dst(v) => write!(f, "set(ipv4(dst={}))", ip(v)),
                SetField::IpTos(v) => write!(f, "set(ipv4(tos={v:#x}))"),
                SetField::IpTtl(v) => write!(f, "set(ipv4(ttl={v}))"),
                SetField::TpSrc(v) => write!(f, "set(l4(src={v}))"),
                SetField::TpDst(v) => write!(f, "set(l4(dst={v}))"),
            },
        }
    }
}

/// OVS's datapath syntax for `ct` (odp-util's format_odp_conntrack_action):
/// `ct`, `ct(commit,zone=5,mark=0x1/0xff,label=...,nat(src=...))`.
fn fmt_ct(f: &mut std::fmt::Formatter<'_>, c: &CtRequest) -> std::fmt::Result {
    let ip = |v: u32| std::net::Ipv4Addr::from(v).to_string();
    let mut parts: Vec<String> = Vec::new();
    if c.commit {
        parts.push(if c.force { "force_commit".into() } else { "commit".into() });
    }
    if c.zone != 0 {
        parts.push(format!("zone={}", c.zone));
    }
    if let Some((v, m)) = c.set_mark {
        parts.push(format!("mark={v:#x}/{m:#x}"));
    }
    if let Some((v, m)) = c.set_label {
        parts.push(format!("label={v:#x}/{m:#x}"));
    }
    match c.nat {
        None => {}
        Some(NatRequest::Reverse) => parts.push("nat".into()),
        Some(NatRequest::Src(r)) | Some(NatRequest::Dst(r)) => {
            let kind = if matches!(c.nat, Some(NatRequest::Src(_))) { "src" } else { "dst" };
            let mut s = format!("nat({kind}={}", ip(r.addr_min));
            if r.addr_max != r.addr_min {
                s += &format!("-{}", ip(r.addr_max));
            }
            if r.port_min != 0 || r.port_max != 0 {
                s += &format!(":{}", r.port_min);
                if r.port_max != r.port_min {
                    s += &format!("-{}", r.port_max);
                }
            }
            for (on, w) in [(r.random, "random"), (r.hash, "hash"), (r.persistent, "persistent")] {
                if on {
                    s += &format!(",{w}");
                }
            }
            parts.push(s + ")");
        }
    }
    if parts.is_empty() {
        f.write_str("ct")
    } else {
        write!(f, "ct({})", parts.join(","))
    }
}
