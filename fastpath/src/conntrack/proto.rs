//! The per-protocol state of a connection and its state machines besides
//! TCP's ([`super::tcp`]): ICMP queries (OVS `conntrack-icmp.c`: first,
//! then replied) and every other protocol, UDP included
//! (`conntrack-other.c`: first, several packets one way, both ways).
//! A packet of a connection not yet seen both ways is `+new` (UDP's second
//! packet one way too), one of a connection seen both ways `+est`.

use super::key::IPPROTO_ICMP;
use super::key::IPPROTO_TCP;
use super::l4::{Tm, Update};
use super::parse::Parsed;
use super::tcp::{self, Tcp};

/// ICMP: only the first direction seen.
const ICMP_FIRST: u8 = 0;
/// ICMP: a reply seen.
const ICMP_REPLY: u8 = 1;
/// Other: one packet.
const OTHER_FIRST: u8 = 0;
/// Other: several packets, one way.
const OTHER_MULTIPLE: u8 = 1;
/// Other: both ways.
const OTHER_BIDIR: u8 = 2;

/// A connection's protocol state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoState {
    /// TCP window tracking.
    Tcp(Tcp),
    /// ICMP query: `ICMP_FIRST` or `ICMP_REPLY`.
    Icmp(u8),
    /// Anything else: `OTHER_FIRST`, `OTHER_MULTIPLE` or `OTHER_BIDIR`.
    Other(u8),
}

/// Whether packet `p` (not related) may start a connection: TCP without
/// nonsense flags and not a SYN+ACK; an ICMP echo, timestamp or
/// information request; anything of other protocols.
#[inline]
pub fn valid_new(p: &Parsed) -> bool {
    match p.key.proto {
        IPPROTO_TCP => tcp::valid_new(p.tcp.flags),
        IPPROTO_ICMP => matches!(p.key.icmp_type, 8 | 13 | 15),
        _ => true,
    }
}

impl ProtoState {
    /// The state of a connection packet `p` creates, and its timeout class.
    pub fn new(p: &Parsed) -> (ProtoState, Tm) {
        match p.key.proto {
            IPPROTO_TCP => {
                let (t, tm) = Tcp::new(&p.tcp);
                (ProtoState::Tcp(t), tm)
            }
            IPPROTO_ICMP => (ProtoState::Icmp(ICMP_FIRST), Tm::IcmpFirst),
            _ => (ProtoState::Other(OTHER_FIRST), Tm::OtherFirst),
        }
    }

    /// Runs packet `p` (sent by the responder if `reply`) through the
    /// connection's state machine: the verdict and the timeout class to
    /// move to, if the timeout is refreshed.
    #[inline]
    pub fn update(&mut self, p: &Parsed, reply: bool, seq_check: bool) -> (Update, Option<Tm>) {
        match self {
            ProtoState::Tcp(t) => t.update(&p.tcp, reply, seq_check),
            ProtoState::Icmp(s) => {
                let mut res = Update::Valid;
                if reply && *s == ICMP_FIRST {
                    *s = ICMP_REPLY;
                } else if *s == ICMP_FIRST {
                    res = Update::ValidNew;
                }
                (res, Some(if *s == ICMP_FIRST { Tm::IcmpFirst } else { Tm::IcmpReply }))
            }
            ProtoState::Other(s) => {
                if reply && *s != OTHER_BIDIR {
                    *s = OTHER_BIDIR;
                } else if *s == OTHER_FIRST {
                    *s = OTHER_MULTIPLE;
                }
                let tm = match *s {
                    OTHER_FIRST => Tm::OtherFirst,
                    OTHER_MULTIPLE => Tm::OtherMultiple,
                    _ => Tm::OtherBidir,
                };
                (if *s == OTHER_BIDIR { Update::Valid } else { Update::ValidNew }, Some(tm))
            }
        }
    }

    /// The TCP state, if TCP.
    pub fn tcp(&self) -> Option<&Tcp> {
        match self {
            ProtoState::Tcp(t) => Some(t),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::key::{Key, IPPROTO_UDP};

    fn parsed(proto: u8, icmp_type: u8) -> Parsed {
        Parsed { key: Key { proto, icmp_type, ..Key::default() }, ..Parsed::default() }
    }

    #[test]
    fn test_udp() {
        let p = parsed(IPPROTO_UDP, 0);
        assert!(valid_new(&p));
        let (mut s, tm) = ProtoState::new(&p);
        assert_eq!(tm, Tm::OtherFirst);
        assert_eq!(s.update(&p, false, true), (Update::ValidNew, Some(Tm::OtherMultiple)));
        assert_eq!(s.update(&p, true, true), (Update::Valid, Some(Tm::OtherBidir)));
        assert_eq!(s.update(&p, false, true), (Update::Valid, Some(Tm::OtherBidir)));
    }

    #[test]
    fn test_icmp() {
        assert!(valid_new(&parsed(IPPROTO_ICMP, 8)));
        assert!(!valid_new(&parsed(IPPROTO_ICMP, 0)), "an echo reply starts nothing");
        let p = parsed(IPPROTO_ICMP, 8);
        let (mut s, tm) = ProtoState::new(&p);
        assert_eq!(tm, Tm::IcmpFirst);
        assert_eq!(s.update(&p, false, true), (Update::ValidNew, Some(Tm::IcmpFirst)));
        assert_eq!(s.update(&p, true, true), (Update::Valid, Some(Tm::IcmpReply)));
        assert_eq!(s.update(&p, false, true), (Update::Valid, Some(Tm::IcmpReply)));
    }
}
