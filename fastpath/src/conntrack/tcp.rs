//! TCP window tracking, OVS's `conntrack-tcp.c` (itself pf's, after Guido
//! van Rooij's "Real Stateful TCP Packet Filtering"): each side (peer)
//! keeps the highest sequence number it sent (`seqlo`), the highest the
//! other side allowed it (`seqhi`: acknowledged + window), its largest
//! window and its window scale; a segment is accepted when its data lies in
//! the window the other side advertised, it acknowledges nothing much
//! further back or ahead than the other side sent, and a reset carries the
//! expected sequence number. Accepted segments move each side through
//! SYN_SENT, ESTABLISHED, CLOSING (FIN sent), FIN_WAIT_2 (FIN acknowledged)
//! and TIME_WAIT (reset); a bare SYN once both sides have closed starts a
//! new connection on the tuple. A connection picked up mid-stream (first
//! packet without SYN) does not know the window scales and assumes the
//! largest until it sees them.
//!
//! Plain data, updated under the connection's lock by the caller.

use super::l4::{Tm, Update};
use super::parse::{TcpSeg, MAX_WSCALE, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG, WSCALE_FLAG};

/// Peer states (OVS `CT_DPIF_TCPS_*`; the dump prints their names).
pub const CLOSED: u8 = 0;
/// SYN (or first segment) sent.
pub const SYN_SENT: u8 = 2;
/// SYN received (never entered; printed as ESTABLISHED).
pub const SYN_RECV: u8 = 3;
/// Established.
pub const ESTABLISHED: u8 = 4;
/// FIN sent.
pub const CLOSING: u8 = 7;
/// FIN sent and acknowledged.
pub const FIN_WAIT_2: u8 = 9;
/// Reset.
pub const TIME_WAIT: u8 = 10;

/// The state names, indexed by state.
pub const STATE_NAMES: [&str; 11] = [
    "CLOSED",
    "LISTEN",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "CLOSE_WAIT",
    "FIN_WAIT_1",
    "CLOSING",
    "LAST_ACK",
    "FIN_WAIT_2",
    "TIME_WAIT",
];

/// Window scale unknown (picked up mid-stream): assume the largest.
const WSCALE_UNKNOWN: u8 = 0x40;
const WSCALE_MASK: u8 = 0x0f;
/// One window of slack for acknowledgements (pf's MAXACKWINDOW).
const MAX_ACK_WINDOW: u32 = 0xffff + 1500;

/// One side of a TCP connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    /// Highest sequence number sent (+1).
    pub seqlo: u32,
    /// Highest sequence number the other side allows (acked + window).
    pub seqhi: u32,
    /// Largest window advertised (before scaling).
    pub max_win: u16,
    /// Window scale: `WSCALE_FLAG | shift`, `WSCALE_UNKNOWN` or 0.
    pub wscale: u8,
    /// State (`CLOSED` …).
    pub state: u8,
}

/// Both sides: `[originator, responder]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tcp {
    /// The peers.
    pub peers: [Peer; 2],
}

#[inline]
fn seq_geq(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

#[inline]
fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Flag combinations no stack sends (OVS `tcp_invalid_flags`).
#[inline]
pub fn invalid_flags(flags: u16) -> bool {
    if flags & TCP_SYN != 0 {
        if flags & (TCP_RST | TCP_FIN) != 0 {
            return true;
        }
    } else if flags & (TCP_ACK | TCP_RST) == 0 {
        return true;
    }
    flags & TCP_ACK == 0 && flags & (TCP_FIN | TCP_PSH | TCP_URG) != 0
}

/// Whether a segment may create a connection: sane flags, and not a
/// SYN+ACK (a half-open connection is not picked up).
#[inline]
pub fn valid_new(flags: u16) -> bool {
    !invalid_flags(flags) && flags & (TCP_SYN | TCP_ACK) != (TCP_SYN | TCP_ACK)
}

#[inline]
fn div_round_up(x: u32, d: u32) -> u32 {
    x.div_ceil(d)
}

impl Tcp {
    /// A connection created by segment `s` (OVS `tcp_new_conn`).
    pub fn new(s: &TcpSeg) -> (Tcp, Tm) {
        let mut src =
            Peer { seqlo: s.seq, seqhi: s.seq.wrapping_add(s.payload_len).wrapping_add(1), ..Peer::default() };
        let mut dst = Peer::default();
        if s.flags & TCP_SYN != 0 {
            src.seqhi = src.seqhi.wrapping_add(1);
            src.wscale = s.wscale;
        } else {
            src.wscale = WSCALE_UNKNOWN;
            dst.wscale = WSCALE_UNKNOWN;
        }
        src.max_win = s.win.max(1);
        if src.wscale & WSCALE_MASK != 0 {
            let sws = (src.wscale & WSCALE_MASK) as u32;
            src.max_win = div_round_up(src.max_win as u32, 1 << sws) as u16;
        }
        if s.flags & TCP_FIN != 0 {
            src.seqhi = src.seqhi.wrapping_add(1);
        }
        dst.seqhi = 1;
        dst.max_win = 1;
        src.state = SYN_SENT;
        dst.state = CLOSED;
        (Tcp { peers: [src, dst] }, Tm::TcpFirstPacket)
    }

    /// Runs segment `s`, sent by the responder if `reply`, through the
    /// window tracking (OVS `tcp_conn_update`); `seq_check` false accepts
    /// any sequence numbers. Returns the verdict and the timeout class the
    /// connection moves to, if it changes. The peers are updated even when
    /// the verdict is `Invalid` once the segment's flags were sane, as OVS
    /// does.
    pub fn update(&mut self, s: &TcpSeg, reply: bool, seq_check: bool) -> (Update, Option<Tm>) {
        let [p0, p1] = &mut self.peers;
        let (src, dst) = if reply { (p1, p0) } else { (p0, p1) };
        let flags = s.flags;
        if invalid_flags(flags) {
            return (Update::Invalid, None);
        }
        if flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
            if dst.state >= FIN_WAIT_2 && src.state >= FIN_WAIT_2 {
                src.state = CLOSED;
                dst.state = CLOSED;
                return (Update::New, None);
            } else if src.state <= SYN_SENT {
                src.state = SYN_SENT;
                return (Update::ValidNew, Some(Tm::TcpFirstPacket));
            }
        }
        let (mut sws, mut dws) = (0u32, 0u32);
        if src.wscale & WSCALE_FLAG != 0 && dst.wscale & WSCALE_FLAG != 0 && flags & TCP_SYN == 0 {
            sws = (src.wscale & WSCALE_MASK) as u32;
            dws = (dst.wscale & WSCALE_MASK) as u32;
        } else if src.wscale & WSCALE_UNKNOWN != 0 && dst.wscale & WSCALE_UNKNOWN != 0 && flags & TCP_SYN == 0 {
            sws = MAX_WSCALE as u32;
            dws = MAX_WSCALE as u32;
        }

        let mut win = s.win;
        let orig_seq = s.seq;
        let mut seq = s.seq;
        let mut ack = s.ack;
        let mut end = seq.wrapping_add(s.payload_len);
        if flags & TCP_SYN != 0 {
            end = end.wrapping_add(1);
        }
        if flags & TCP_FIN != 0 {
            end = end.wrapping_add(1);
        }
        let mut check_ackskew = true;
        if src.state < SYN_SENT {
            // The first packet from this side.
            if flags & TCP_SYN != 0 && dst.wscale & WSCALE_FLAG != 0 {
                src.wscale = s.wscale;
                if src.wscale & WSCALE_FLAG != 0 {
                    // Remove the scale factor from the initial window.
                    sws = (src.wscale & WSCALE_MASK) as u32;
                    win = div_round_up(win as u32, 1 << sws) as u16;
                    dws = (dst.wscale & WSCALE_MASK) as u32;
                } else {
                    // Fix up the other side's window (a retransmitted SYN+ACK
                    // without the option).
                    dst.max_win = ((dst.max_win as u32) << (dst.wscale & WSCALE_MASK)) as u16;
                    dst.wscale = 0;
                }
            }
            src.seqlo = seq;
            src.state = SYN_SENT;
            // Slide the window if picking up an established connection or
            // seqhi was only a guess: be lenient with the ACK then.
            let w = ((dst.max_win as u32) << dws).max(1);
            if src.seqhi == 1 || seq_geq(end.wrapping_add(w), src.seqhi) {
                src.seqhi = end.wrapping_add(w);
                check_ackskew = false;
            }
            if win > src.max_win {
                src.max_win = win;
            }
        }

        if flags & TCP_ACK == 0 {
            // Let it pass the ACK skew check.
            ack = dst.seqlo;
        } else if ack == 0 && flags & (TCP_ACK | TCP_RST) == (TCP_ACK | TCP_RST) {
            // Broken stacks send RST+ACK with no acknowledgement.
            ack = dst.seqlo;
        }
        if seq == end {
            // No data: ease the sequencing restrictions.
            seq = src.seqlo;
            end = seq;
        }

        let ackskew: i64 = if check_ackskew { dst.seqlo.wrapping_sub(ack) as i32 as i64 } else { 0 };
        let dst_win = (dst.max_win as u32) << dws;
        let in_window = seq_geq(src.seqhi, end)
            && seq_geq(seq, src.seqlo.wrapping_sub(dst_win))
            && ackskew >= -(MAX_ACK_WINDOW as i64)
            && ackskew <= (MAX_ACK_WINDOW as i64) << sws
            && (flags & TCP_RST == 0
                || orig_seq == src.seqlo
                || orig_seq == src.seqlo.wrapping_add(1)
                || orig_seq.wrapping_add(1) == src.seqlo);

        let slide = |src: &mut Peer, dst: &mut Peer| {
            if src.max_win < win {
                src.max_win = win;
            }
            if seq_gt(end, src.seqlo) {
                src.seqlo = end;
            }
            let scaled = (win as u32) << sws;
            if seq_geq(ack.wrapping_add(scaled), dst.seqhi) {
                dst.seqhi = ack.wrapping_add(scaled.max(1));
            }
        };

        if in_window || !seq_check {
            slide(src, dst);
            if flags & TCP_SYN != 0 && src.state < SYN_SENT {
                src.state = SYN_SENT;
            }
            if flags & TCP_FIN != 0 && src.state < CLOSING {
                src.state = CLOSING;
            }
            if flags & TCP_ACK != 0 {
                if dst.state == SYN_SENT {
                    dst.state = ESTABLISHED;
                } else if dst.state == CLOSING {
                    dst.state = FIN_WAIT_2;
                }
            }
            if flags & TCP_RST != 0 {
                src.state = TIME_WAIT;
                dst.state = TIME_WAIT;
            }
            let tm = if src.state >= FIN_WAIT_2 && dst.state >= FIN_WAIT_2 {
                Tm::TcpClosed
            } else if src.state >= CLOSING && dst.state >= CLOSING {
                Tm::TcpFinWait
            } else if src.state < ESTABLISHED || dst.state < ESTABLISHED {
                Tm::TcpOpening
            } else if src.state >= CLOSING || dst.state >= CLOSING {
                Tm::TcpClosing
            } else {
                Tm::TcpEstablished
            };
            (Update::Valid, Some(tm))
        } else if (dst.state < SYN_SENT || dst.state >= FIN_WAIT_2 || src.state >= FIN_WAIT_2)
            && seq_geq(src.seqhi.wrapping_add(MAX_ACK_WINDOW), end)
            && seq_geq(seq, src.seqlo.wrapping_sub(MAX_ACK_WINDOW))
        {
            // Shotgunned SYNs before the peer answers, a connection picked
            // up after establishment, stray segments after a close: accept
            // loosely, without refreshing the timeout.
            slide(src, dst);
            if flags & TCP_FIN != 0 && src.state < CLOSING {
                src.state = CLOSING;
            }
            if flags & TCP_RST != 0 {
                src.state = TIME_WAIT;
                dst.state = TIME_WAIT;
            }
            (Update::Valid, None)
        } else {
            (Update::Invalid, None)
        }
    }

    /// The state the dump prints: the further of the two, FIN_WAIT_2 shown
    /// as TIME_WAIT and SYN_RECV as ESTABLISHED (OVS `coalesce_tcp_state`).
    pub fn dump_state(&self) -> u8 {
        match self.peers[0].state.max(self.peers[1].state) {
            FIN_WAIT_2 => TIME_WAIT,
            SYN_RECV => ESTABLISHED,
            s => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(flags: u16, seq: u32, ack: u32, win: u16, len: u32) -> TcpSeg {
        TcpSeg { flags, seq, ack, win, payload_len: len, wscale: 0 }
    }

    /// Client 1000, server 5000, windows 64 KB without scaling.
    fn handshake() -> Tcp {
        let (mut t, tm) = Tcp::new(&seg(TCP_SYN, 1000, 0, 65535, 0));
        assert_eq!(tm, Tm::TcpFirstPacket);
        assert_eq!(t.peers[0].state, SYN_SENT);
        assert_eq!(
            t.update(&seg(TCP_SYN | TCP_ACK, 5000, 1001, 65535, 0), true, true),
            (Update::Valid, Some(Tm::TcpOpening))
        );
        assert_eq!(t.peers[0].state, ESTABLISHED, "the SYN+ACK acknowledges the client's SYN");
        assert_eq!(
            t.update(&seg(TCP_ACK, 1001, 5001, 65535, 0), false, true),
            (Update::Valid, Some(Tm::TcpEstablished))
        );
        assert_eq!(t.dump_state(), ESTABLISHED);
        t
    }

    #[test]
    fn test_handshake_data_close() {
        let mut t = handshake();
        assert_eq!(t.update(&seg(TCP_ACK | TCP_PSH, 1001, 5001, 65535, 100), false, true).0, Update::Valid);
        assert_eq!(t.update(&seg(TCP_ACK, 5001, 1101, 65535, 0), true, true).0, Update::Valid);
        // A retransmission of the same data is fine.
        assert_eq!(t.update(&seg(TCP_ACK | TCP_PSH, 1001, 5001, 65535, 100), false, true).0, Update::Valid);
        // Data far beyond the window is not.
        assert_eq!(t.update(&seg(TCP_ACK | TCP_PSH, 1101 + 200_000, 5001, 65535, 100), false, true).0, Update::Invalid);
        // FIN from the client, ACKed, FIN from the server, ACKed.
        assert_eq!(
            t.update(&seg(TCP_ACK | TCP_FIN, 1101, 5001, 65535, 0), false, true),
            (Update::Valid, Some(Tm::TcpClosing))
        );
        assert_eq!(t.peers[0].state, CLOSING);
        assert_eq!(t.update(&seg(TCP_ACK, 5001, 1102, 65535, 0), true, true).0, Update::Valid);
        assert_eq!(t.peers[0].state, FIN_WAIT_2);
        assert_eq!(
            t.update(&seg(TCP_ACK | TCP_FIN, 5001, 1102, 65535, 0), true, true),
            (Update::Valid, Some(Tm::TcpFinWait))
        );
        assert_eq!(t.update(&seg(TCP_ACK, 1102, 5002, 65535, 0), false, true), (Update::Valid, Some(Tm::TcpClosed)));
        assert_eq!(t.dump_state(), TIME_WAIT, "FIN_WAIT_2 prints as TIME_WAIT");
        // A new SYN on the tuple starts a new connection.
        assert_eq!(t.update(&seg(TCP_SYN, 9000, 0, 65535, 0), false, true), (Update::New, None));
    }

    #[test]
    fn test_rst() {
        let mut t = handshake();
        // A reset with a sequence number far off is refused.
        assert_eq!(t.update(&seg(TCP_RST | TCP_ACK, 7000, 1001, 0, 0), true, true).0, Update::Invalid);
        assert_eq!(
            t.update(&seg(TCP_RST | TCP_ACK, 5001, 1001, 0, 0), true, true),
            (Update::Valid, Some(Tm::TcpClosed))
        );
        assert_eq!(t.dump_state(), TIME_WAIT);
        assert_eq!(t.update(&seg(TCP_SYN, 1, 0, 1000, 0), false, true).0, Update::New);
    }

    #[test]
    fn test_flags() {
        assert!(invalid_flags(TCP_SYN | TCP_FIN));
        assert!(invalid_flags(TCP_SYN | TCP_RST));
        assert!(invalid_flags(0));
        assert!(invalid_flags(TCP_FIN));
        assert!(invalid_flags(TCP_RST | TCP_PSH));
        assert!(!invalid_flags(TCP_RST));
        assert!(!invalid_flags(TCP_SYN));
        assert!(valid_new(TCP_SYN));
        assert!(valid_new(TCP_ACK));
        assert!(!valid_new(TCP_SYN | TCP_ACK));
        let mut t = handshake();
        assert_eq!(t.update(&seg(TCP_SYN | TCP_FIN, 1001, 0, 1, 0), false, true).0, Update::Invalid);
    }

    #[test]
    fn test_repeated_syn_and_midstream() {
        let (mut t, _) = Tcp::new(&seg(TCP_SYN, 1000, 0, 65535, 0));
        assert_eq!(
            t.update(&seg(TCP_SYN, 1000, 0, 65535, 0), false, true),
            (Update::ValidNew, Some(Tm::TcpFirstPacket))
        );
        // Picked up mid-stream: window scales unknown, both ends accepted.
        let (mut m, _) = Tcp::new(&seg(TCP_ACK, 100_000, 7_000_000, 500, 10));
        assert_eq!(m.peers[0].wscale, WSCALE_UNKNOWN);
        assert_eq!(m.update(&seg(TCP_ACK, 7_000_000, 100_010, 500, 0), true, true).0, Update::Valid);
        assert_eq!(m.update(&seg(TCP_ACK, 100_010, 7_000_000, 500, 1000), false, true).0, Update::Valid);
        assert_eq!(m.dump_state(), ESTABLISHED);
    }

    #[test]
    fn test_window_scaling() {
        // Both sides scale by 7: a 500-unit window is 64000 bytes.
        let mut syn = seg(TCP_SYN, 1000, 0, 64240, 0);
        syn.wscale = WSCALE_FLAG | 7;
        let (mut t, _) = Tcp::new(&syn);
        let mut synack = seg(TCP_SYN | TCP_ACK, 5000, 1001, 65160, 0);
        synack.wscale = WSCALE_FLAG | 7;
        assert_eq!(t.update(&synack, true, true).0, Update::Valid);
        assert_eq!(t.update(&seg(TCP_ACK, 1001, 5001, 502, 0), false, true).0, Update::Valid);
        // The server sends 60 KB in one go: within 502 << 7.
        assert_eq!(t.update(&seg(TCP_ACK, 5001, 1001, 509, 60_000), true, true).0, Update::Valid);
        // Beyond the scaled window (plus slack): refused.
        assert_eq!(t.update(&seg(TCP_ACK, 5001 + 200_000, 1001, 509, 1000), true, true).0, Update::Invalid);
        // Without sequence checks, accepted.
        assert_eq!(t.update(&seg(TCP_ACK, 5001 + 200_000, 1001, 509, 1000), true, false).0, Update::Valid);
        assert!(seq_gt(2, 1) && seq_geq(0, u32::MAX) && !seq_gt(u32::MAX, 0));
    }
}
