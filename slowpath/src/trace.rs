//! ofproto/trace-style reports: the flow, each table with the rule hit and
//! its actions, the final flow, the megaflow and the datapath actions.

use config::ofctl::{fmt_match, Field, Match, ETH_TYPE_ARP, ETH_TYPE_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};

use crate::flow::OfFlow;
use crate::xlate::{TraceSink, Xlate};

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

/// A flow as ofproto/trace's `Flow:` line shows it: the fields that exist
/// for its type, zeros included; registers and tunnel fields when set.
pub fn fmt_flow(f: &OfFlow) -> String {
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
    fmt_match(&m, None)
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

/// The megaflow of a translation: the key under its mask.
pub fn fmt_megaflow(flow: &OfFlow, x: &Xlate) -> String {
    let mut mask = x.wc;
    // Metadata words are not part of the datapath key.
    for w in fastpath::KEY_WORDS..crate::flow::FLOW_WORDS {
        mask.w[w] = 0;
    }
    fmt_masked(flow, &mask)
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
