//! Connections as `ovs-appctl dpctl/dump-conntrack` prints them (OVS
//! `ct_dpif_format_entry`, not verbose): the protocol, the original and
//! reply tuples, the zone if not 0, with `-s` the seconds left, the mark and
//! labels if set, and for TCP the state (the further of the two sides',
//! FIN_WAIT_2 shown as TIME_WAIT). Without `-s` there is no timeout: that is
//! what `dump-conntrack` prints by default. The userspace tracker keeps no
//! packet counters or timestamps, so none are printed.

use std::fmt::Write;
use std::net::Ipv4Addr;

use super::conn::Conn;
use super::key::{Key, IPPROTO_ICMP};
use super::tcp::STATE_NAMES;

/// OVS's name of an IP protocol, or its number.
fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        136 => "udplite".into(),
        33 => "dccp".into(),
        2 => "igmp".into(),
        n => n.to_string(),
    }
}

/// One tuple, `src=...,dst=...,sport=...,dport=...` or with `id`, `type`,
/// `code` for ICMP.
fn tuple(s: &mut String, k: &Key) {
    let _ = write!(s, "src={},dst={}", Ipv4Addr::from(k.src), Ipv4Addr::from(k.dst));
    if k.proto == IPPROTO_ICMP {
        let _ = write!(s, ",id={},type={},code=0", k.sport, k.icmp_type);
    } else {
        let _ = write!(s, ",sport={},dport={}", k.sport, k.dport);
    }
}

/// The dump line of `c` at `now`; `stats` adds `timeout=` as `-s` does.
pub fn format(c: &Conn, now: u64, stats: bool) -> String {
    let st = *c.lock();
    let mut s = proto_name(c.keys[0].proto);
    s.push_str(",orig=(");
    tuple(&mut s, &c.keys[0]);
    s.push_str("),reply=(");
    tuple(&mut s, &c.keys[1]);
    s.push(')');
    if c.keys[0].zone != 0 {
        let _ = write!(s, ",zone={}", c.keys[0].zone);
    }
    if stats {
        let left = c.expiration.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(now);
        let _ = write!(s, ",timeout={}", left / 1000);
    }
    if st.mark != 0 {
        let _ = write!(s, ",mark={}", st.mark);
    }
    if st.label != 0 {
        let _ = write!(s, ",labels={:#x}", st.label);
    }
    if let Some(t) = st.proto.tcp() {
        let _ = write!(s, ",protoinfo=(state={})", STATE_NAMES[t.dump_state() as usize]);
    }
    s
}

/// Per-protocol counts of connections, and TCP's per state, as
/// `dpctl/ct-stats-show` gathers them.
#[derive(Default)]
pub struct ProtoCounts {
    total: usize,
    /// By OVS's `CT_STATS_*` order: TCP, UDP, UDPLITE, SCTP, ICMP, DCCP,
    /// IGMP, other.
    by_proto: [usize; 8],
    tcp_states: [usize; STATE_NAMES.len()],
}

impl ProtoCounts {
    /// Counts `c`.
    pub fn add(&mut self, c: &Conn) {
        self.total += 1;
        let i = match c.keys[0].proto {
            6 => 0,
            17 => 1,
            136 => 2,
            132 => 3,
            1 => 4,
            33 => 5,
            2 => 6,
            _ => 7,
        };
        self.by_proto[i] += 1;
        if let Some(t) = c.lock().proto.tcp() {
            self.tcp_states[t.dump_state() as usize] += 1;
        }
    }

    /// The text of `ovs-appctl dpctl/ct-stats-show` (with `verbose`, TCP's
    /// connections per state).
    pub fn show(&self, verbose: bool) -> String {
        let mut s = format!("Connections Stats:\n    Total: {}\n", self.total);
        let names = ["TCP", "UDP", "UDPLITE", "SCTP", "ICMP", "DCCP", "IGMP", "Other"];
        for (i, name) in names.iter().enumerate() {
            if self.by_proto[i] == 0 {
                continue;
            }
            let _ = writeln!(s, "  {name}: {}", self.by_proto[i]);
            if i == 0 && verbose {
                s.push_str("    Conn per TCP states:\n");
                for (st, n) in self.tcp_states.iter().enumerate().filter(|(_, n)| **n > 0) {
                    let _ = writeln!(s, "\t  [{}]={n}", STATE_NAMES[st]);
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::key::IPPROTO_TCP;
    use crate::conntrack::parse::{Parsed, TcpSeg, TCP_SYN};
    use crate::conntrack::proto::ProtoState;

    #[test]
    fn test_format() {
        let k = Key {
            src: 0x0a000001,
            dst: 0x0a000002,
            sport: 40000,
            dport: 80,
            zone: 0,
            proto: IPPROTO_TCP,
            icmp_type: 0,
        };
        let p = Parsed {
            key: k,
            tcp: TcpSeg { flags: TCP_SYN, seq: 1, win: 100, ..TcpSeg::default() },
            ..Parsed::default()
        };
        let (ps, _) = ProtoState::new(&p);
        let c = Conn::new([k, k.reverse()], 0, ps, 31_500);
        assert_eq!(
            format(&c, 0, false),
            "tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=40000,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=40000),protoinfo=(state=SYN_SENT)"
        );
        {
            let mut st = c.lock();
            st.mark = 42;
            st.label = 0x0102;
        }
        let ki = Key { proto: IPPROTO_ICMP, sport: 7, dport: 7, icmp_type: 8, zone: 5, ..k };
        let ci = Conn::new([ki, ki.reverse()], 0, ProtoState::Icmp(0), 60_000);
        assert_eq!(
            format(&ci, 1_000, true),
            "icmp,orig=(src=10.0.0.1,dst=10.0.0.2,id=7,type=8,code=0),reply=(src=10.0.0.2,dst=10.0.0.1,id=7,type=0,code=0),zone=5,timeout=59"
        );
        assert!(format(&c, 0, true).ends_with(",timeout=31,mark=42,labels=0x102,protoinfo=(state=SYN_SENT)"));
        let ko = Key { proto: 47, sport: 0, dport: 0, ..k };
        let co = Conn::new([ko, ko.reverse()], 0, ProtoState::Other(0), 1);
        assert_eq!(
            format(&co, 0, false),
            "47,orig=(src=10.0.0.1,dst=10.0.0.2,sport=0,dport=0),reply=(src=10.0.0.2,dst=10.0.0.1,sport=0,dport=0)"
        );
    }
}
