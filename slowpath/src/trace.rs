//! ofproto/trace-style reports: the flow, each table with the rule hit and
//! its actions, the final flow, the megaflow and the datapath actions.

use config::ofctl::{fmt_match, Field, Match, ETH_TYPE_ARP, ETH_TYPE_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};

use config::ofctl::cs;
use fastpath::conntrack::types::NatRequest;
use fastpath::conntrack::{Conntrack, CtRequest, CtResult};
use fastpath::DpAction;

use crate::flow::OfFlow;
use crate::ofproto::Ofproto;
use crate::xlate::{xlate, Recirculation, TraceSink, Xlate};

/// Lines recorded during a translation.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The table/rule/action lines, already indented as ofproto/trace does.
    pub lines: Vec<String>,
}

impl TraceSink for Trace {
    fn line(&mut self, line: String) {
        self.lines.push(line);
    }
}

/// `ct_state` bits as a flow prints them (`new|trk`, in bit order).
pub fn fmt_ct_state(state: u64) -> String {
    let names: Vec<&str> = cs::NAMES.iter().filter(|(b, _)| state & b != 0).map(|(_, n)| *n).collect();
    names.join("|")
}

/// Parses `--ct-next` flags as ofproto/trace takes them (`trk,est,rpl` or
/// `trk|est`).
///
/// # Errors
/// An unknown flag, named.
pub fn parse_ct_flags(s: &str) -> Result<u64, String> {
    let mut v = 0;
    for w in s.split([',', '|', '+']).map(str::trim).filter(|w| !w.is_empty()) {
        let bit = cs::NAMES.iter().find(|(_, n)| *n == w).map(|(b, _)| *b);
        v |= bit.ok_or_else(|| format!("unknown ct_state flag `{w}` (new, est, rel, rpl, inv, trk, snat, dnat)"))?;
    }
    Ok(v)
}

/// The recirculation and connection-tracking part of a flow, as OVS prints
/// it before the packet fields (`recirc_id=0x1,ct_state=new|trk,`), or
/// nothing for a packet's first, untracked pass.
fn fmt_ct_prefix(f: &OfFlow) -> String {
    let mut s = String::new();
    if f.recirc_id() != 0 {
        s += &format!("recirc_id={:#x},", f.recirc_id());
    }
    let state = f.get(Field::CtState);
    if state != 0 {
        s += &format!("ct_state={},", fmt_ct_state(state));
    }
    for (fld, name) in [(Field::CtZone, "ct_zone"), (Field::CtMark, "ct_mark")] {
        let v = f.get(fld);
        if v != 0 {
            s += &format!("{name}={},", if fld == Field::CtZone { v.to_string() } else { format!("{v:#x}") });
        }
    }
    let label = (f.get(Field::CtLabelHi) as u128) << 64 | f.get(Field::CtLabelLo) as u128;
    if label != 0 {
        s += &format!("ct_label={label:#x},");
    }
    if s.is_empty() {
        s
    } else {
        s + "eth,"
    }
}

/// A flow as ofproto/trace's `Flow:` line shows it: the fields that exist
/// for its type, zeros included; registers and tunnel fields when set.
pub fn fmt_flow(f: &OfFlow) -> String {
    fmt_ct_prefix(f) + &fmt_packet_fields(f)
}

fn fmt_packet_fields(f: &OfFlow) -> String {
    let mut m = Match::any();
    let exact = |m: &mut Match, fld: Field| m.set(fld, f.get(fld));
    for r in 0..8 {
        let fld = Field::reg(r);
        if f.get(fld) != 0 {
            exact(&mut m, fld);
        }
    }
    if f.get(Field::PktMark) != 0 {
        exact(&mut m, Field::PktMark);
    }
    if f.get(Field::TunSrc) != 0 || f.get(Field::TunDst) != 0 || f.get(Field::TunId) != 0 {
        exact(&mut m, Field::TunId);
        exact(&mut m, Field::TunSrc);
        exact(&mut m, Field::TunDst);
    }
    exact(&mut m, Field::InPort);
    exact(&mut m, Field::DlSrc);
    exact(&mut m, Field::DlDst);
    exact(&mut m, Field::DlType);
    let dl = f.get(Field::DlType);
    if dl == ETH_TYPE_IP {
        for fld in [Field::NwSrc, Field::NwDst, Field::NwProto, Field::NwTos, Field::NwEcn, Field::NwTtl, Field::NwFrag]
        {
            exact(&mut m, fld);
        }
        let proto = f.get(Field::NwProto);
        if [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, 132].contains(&proto) {
            exact(&mut m, Field::TpSrc);
            exact(&mut m, Field::TpDst);
        }
    } else if dl == ETH_TYPE_ARP {
        for fld in [Field::NwSrc, Field::NwDst, Field::NwProto, Field::ArpSha, Field::ArpTha] {
            exact(&mut m, fld);
        }
    }
    // OVS prints a flow's VLAN, after in_port, even without one (and
    // sdnfwd's flows have none).
    let mut s = fmt_match(&m, None);
    if let Some(i) = s.find("in_port=") {
        let end = s[i..].find(',').map_or(s.len(), |j| i + j);
        s.insert_str(end, ",vlan_tci=0x0000");
    }
    s
}

/// A datapath key under its mask, in match syntax (`(any)` when empty).
pub fn fmt_masked(flow: &OfFlow, mask: &OfFlow) -> String {
    let s = fmt_match(&OfFlow::to_match(&flow.masked(mask), mask, false), None);
    if s.is_empty() {
        "(any)".into()
    } else {
        s
    }
}

/// The megaflow of a translation: the key under its mask, with its
/// recirculation id and packet type first as OVS prints them
/// (`recirc_id=0,eth,ip,in_port=4,...`).
pub fn fmt_megaflow(flow: &OfFlow, x: &Xlate) -> String {
    let mut mask = x.wc;
    // Metadata words are not part of the datapath key.
    for w in fastpath::KEY_WORDS..crate::flow::FLOW_WORDS {
        mask.w[w] = 0;
    }
    let rid = flow.recirc_id();
    let rid = if rid == 0 { "0".to_string() } else { format!("{rid:#x}") };
    let rest = fmt_masked(flow, &mask);
    // OVS's order: the connection-tracking fields, then the packet type.
    let mut ct: Vec<&str> = Vec::new();
    let mut other: Vec<&str> = Vec::new();
    for t in rest.split(',').filter(|t| *t != "(any)") {
        if t.starts_with("ct_") && other.is_empty() {
            ct.push(t);
        } else {
            other.push(t);
        }
    }
    let mut s = format!("recirc_id={rid},");
    for t in ct {
        s += t;
        s.push(',');
    }
    s += "eth";
    for t in other {
        s.push(',');
        s += t;
    }
    s
}

/// One pass of a packet through the tables: its flow and translation.
#[derive(Clone, Debug)]
pub struct Pass {
    /// The flow the pass started from.
    pub flow: OfFlow,
    /// Its translation.
    pub xlate: Xlate,
}

/// Most passes a trace follows (the datapath's recirculation limit).
pub const MAX_PASSES: usize = fastpath::stats::MAX_RECIRC_DEPTH;

/// Where a trace's later passes get their connection-tracking verdicts.
pub trait CtVerdicts {
    /// Makes `next` (the flow at the `ct` that recirculated, with its
    /// recirculation id and zone set) the flow the next pass starts from:
    /// its `ct_*` fields, and its addresses and ports where NAT applies.
    /// `req` is the datapath's request for that `ct`. Returns the text of
    /// the banner after `recirc(0x..)`: the state, then any lines.
    fn resume(&mut self, r: &Recirculation, req: Option<&CtRequest>, next: &mut OfFlow) -> String;
}

/// `--ct-next`'s states in turn (`trk|new` once they run out); a `nat`
/// with an address moves the flow's address and port to the range's
/// first, as OVS's trace simulates it.
pub struct CtNext<'a>(std::slice::Iter<'a, u64>);

impl<'a> CtNext<'a> {
    /// The states `ct_next`, in order.
    pub fn new(ct_next: &'a [u64]) -> CtNext<'a> {
        CtNext(ct_next.iter())
    }
}

impl CtVerdicts for CtNext<'_> {
    fn resume(&mut self, r: &Recirculation, _req: Option<&CtRequest>, nf: &mut OfFlow) -> String {
        let mut out = String::new();
        let state = match self.0.next() {
            Some(&s) => {
                out += &format!(" - resume conntrack with ct_state={}", fmt_ct_state(s));
                s
            }
            None => {
                out += " - resume conntrack with default ct_state=trk|new (use --ct-next to customize)";
                cs::TRK | cs::NEW
            }
        };
        nf.set(Field::CtState, state);
        out.push('\n');
        if let Some(nat) = r.nat {
            out += "Replacing src/dst IP/ports to simulate NAT:\n";
            out += &format!(" Initial flow: {}\n", fmt_ip_flow(nf));
            match nat {
                NatRequest::Src(range) => {
                    nf.set(Field::NwSrc, range.addr_min as u64);
                    if range.port_min != 0 {
                        nf.set(Field::TpSrc, range.port_min as u64);
                    }
                }
                NatRequest::Dst(range) => {
                    nf.set(Field::NwDst, range.addr_min as u64);
                    if range.port_min != 0 {
                        nf.set(Field::TpDst, range.port_min as u64);
                    }
                }
                NatRequest::Reverse => {}
            }
            out += &format!(" Modified flow: {}\n", fmt_ip_flow(nf));
        }
        out
    }
}

/// A running node's tracker as the verdicts' source (`sdnfwd ctl trace`):
/// at each recirculation the packet, composed from the flow, goes through
/// [`Conntrack::trial`] (the table is not changed; a TCP packet is taken
/// as its connection's next segment, or as a SYN where there is none), and
/// the next pass starts from the key the datapath would build: the state,
/// zone, mark, label and original tuple the tracker gave, the addresses
/// and ports as its NAT left them.
pub struct LiveCt<'a> {
    ct: &'a Conntrack,
    md: CtResult,
    now_ms: u64,
}

impl<'a> LiveCt<'a> {
    /// Verdicts from `ct` at `now_ms` (its clock, `fastpath::clock`).
    pub fn new(ct: &'a Conntrack, now_ms: u64) -> LiveCt<'a> {
        LiveCt { ct, md: CtResult::default(), now_ms }
    }
}

impl CtVerdicts for LiveCt<'_> {
    fn resume(&mut self, r: &Recirculation, req: Option<&CtRequest>, nf: &mut OfFlow) -> String {
        let (Some(req), Some(mut frame)) = (req, frame_of(nf)) else {
            nf.set(Field::CtState, cs::TRK | cs::INV);
            return " - resume conntrack with ct_state=inv|trk (not an IPv4 packet the tracker reads)\n".into();
        };
        let before = fmt_ip_flow(nf);
        let conns = self.ct.trial(&mut frame, &mut self.md, req, self.now_ms, true);
        let prev = nf.key();
        *nf = OfFlow::from_key(&fastpath::recirc::next_key(&frame, &prev, r.id, &self.md));
        let mut out =
            format!(" - resume conntrack with ct_state={} (the node's tracker", fmt_ct_state(self.md.state as u64));
        if conns.is_empty() {
            out += ": no connection)\n";
        } else {
            out += "):\n";
            for c in conns {
                out += &format!(" {c}\n");
            }
        }
        let after = fmt_ip_flow(nf);
        if after != before {
            out += &format!("NAT by the tracker:\n Initial flow: {before}\n Modified flow: {after}\n");
        }
        out
    }
}

/// An IPv4 frame with `f`'s addresses and ports (TCP, UDP, ICMP with its
/// type and code, another protocol bare), for the tracker to judge; `None`
/// for anything else.
fn frame_of(f: &OfFlow) -> Option<Vec<u8>> {
    use fastpath::conntrack::frames::{ipv4, tcp, udp, TcpSpec};
    if f.get(Field::DlType) != ETH_TYPE_IP {
        return None;
    }
    let (src, dst) = (f.get(Field::NwSrc) as u32, f.get(Field::NwDst) as u32);
    let (sp, dp) = (f.get(Field::TpSrc) as u16, f.get(Field::TpDst) as u16);
    let mut fr = match f.get(Field::NwProto) {
        IPPROTO_TCP => tcp(&TcpSpec {
            src,
            sport: sp,
            dst,
            dport: dp,
            seq: 0,
            ack: 0,
            flags: 0,
            win: 65535,
            wscale: None,
            payload: 0,
        }),
        IPPROTO_UDP => udp(src, sp, dst, dp, 0),
        IPPROTO_ICMP => ipv4(src, dst, 1, &[sp as u8, dp as u8, 0, 0, 0, 0, 0, 0]),
        p => ipv4(src, dst, p as u8, &[]),
    };
    fr[0..6].copy_from_slice(&f.get(Field::DlDst).to_be_bytes()[2..]);
    fr[6..12].copy_from_slice(&f.get(Field::DlSrc).to_be_bytes()[2..]);
    fr[15] = f.get(Field::NwTos) as u8 | f.get(Field::NwEcn) as u8;
    fr[22] = f.get(Field::NwTtl) as u8;
    Some(fr)
}

/// `ofproto/trace` across recirculations, as `--ct-next` drives it: each
/// pass's report; where a pass recirculates (`ct(table=N)`), the next pass
/// starts from the flow at that `ct` with the recirculation id, the `ct`'s
/// zone and the next of `ct_next`'s states (`trk|new` when they run out);
/// a `nat` with an address moves the flow's address and port to the
/// range's first, as OVS's trace simulates it. Returns the text and the
/// passes.
pub fn report_passes(of: &Ofproto, flow: &OfFlow, ct_next: &[u64], bridge: &str) -> (String, Vec<Pass>) {
    report_passes_with(of, flow, &mut CtNext::new(ct_next), bridge)
}

/// [`report_passes`] with the verdicts from `verdicts`.
pub fn report_passes_with(
    of: &Ofproto,
    flow: &OfFlow,
    verdicts: &mut dyn CtVerdicts,
    bridge: &str,
) -> (String, Vec<Pass>) {
    let mut out = String::new();
    let mut passes = Vec::new();
    let mut queue = std::collections::VecDeque::from([*flow]);
    while let Some(f) = queue.pop_front() {
        let mut t = Trace::default();
        let x = xlate(of, &f, Some(&mut t));
        out += &report(&f, &x, &t, bridge);
        if let Some(r) = x.recirc.filter(|_| passes.len() + 1 < MAX_PASSES) {
            let mut nf = r.flow;
            nf.set_recirc_id(r.id);
            nf.set(Field::CtZone, r.zone as u64);
            out += &format!("\n{}\nrecirc({:#x})", "=".repeat(79), r.id);
            // The datapath's request: the `ct` right before the recirculation.
            let req = x.actions.iter().rev().find_map(|a| match a {
                DpAction::Ct(c) => Some(c.clone()),
                _ => None,
            });
            out += &verdicts.resume(&r, req.as_deref(), &mut nf);
            out += &format!("{}\n\n", "=".repeat(79));
            queue.push_back(nf);
        }
        passes.push(Pass { flow: f, xlate: x });
    }
    (out, passes)
}

/// The addresses and ports of a flow, as OVS's trace shows them around NAT.
fn fmt_ip_flow(f: &OfFlow) -> String {
    let ip = |v: u64| std::net::Ipv4Addr::from(v as u32).to_string();
    format!(
        "nw_src={},tp_src={},nw_dst={},tp_dst={}",
        ip(f.get(Field::NwSrc)),
        f.get(Field::TpSrc),
        ip(f.get(Field::NwDst)),
        f.get(Field::TpDst)
    )
}

/// The datapath actions (`drop` when none).
pub fn fmt_dp_actions(x: &Xlate) -> String {
    if x.actions.is_empty() {
        return "drop".into();
    }
    x.actions.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",")
}

/// The whole report, as `ovs-appctl ofproto/trace` prints it.
pub fn report(flow: &OfFlow, x: &Xlate, trace: &Trace, bridge: &str) -> String {
    let mut s = String::new();
    s.push_str(&format!("Flow: {}\n\n", fmt_flow(flow)));
    s.push_str(&format!("bridge(\"{bridge}\")\n"));
    s.push_str(&format!("{}\n", "-".repeat(bridge.len() + 10)));
    for l in &trace.lines {
        s.push_str(l);
        s.push('\n');
    }
    s.push('\n');
    if x.final_flow == *flow {
        s.push_str("Final flow: unchanged\n");
    } else {
        s.push_str(&format!("Final flow: {}\n", fmt_flow(&x.final_flow)));
    }
    s.push_str(&format!("Megaflow: {}\n", fmt_megaflow(flow, x)));
    s.push_str(&format!("Datapath actions: {}\n", fmt_dp_actions(x)));
    if let Some(d) = x.drop {
        s.push_str(&format!("Drop: table {} ({})\n", d.table, d.kind.as_str()));
    }
    s
}
