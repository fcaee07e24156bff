//! What the per-protocol state machines answer and the timeout classes
//! they move a connection into (OVS `enum ct_update_res`, `CT_TIMEOUTS`),
//! with the mapping of each class to a configured timeout
//! (`tm_to_ct_dpif_tp`).

use super::types::Timeouts;

/// The verdict of a state machine on a packet of a known connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    /// Not acceptable (`+inv`).
    Invalid,
    /// Part of the connection (`+est`).
    Valid,
    /// Starts a new connection on this tuple: the old one ends.
    New,
    /// Acceptable, but the connection is not established yet (`+new`).
    ValidNew,
}

/// Timeout classes (OVS `CT_TM_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Tm {
    /// TCP, the first packet or a repeated SYN.
    TcpFirstPacket,
    /// TCP, opening.
    TcpOpening,
    /// TCP, established.
    TcpEstablished,
    /// TCP, one side closing.
    TcpClosing,
    /// TCP, both closing.
    TcpFinWait,
    /// TCP, both closed or reset.
    TcpClosed,
    /// Other, the first packet.
    OtherFirst,
    /// Other, several packets one way.
    OtherMultiple,
    /// Other, both ways.
    OtherBidir,
    /// ICMP, the first packet.
    IcmpFirst,
    /// ICMP, replied.
    IcmpReply,
}

/// Number of timeout classes.
pub const N_TM: usize = 11;

/// Each class's timeout in milliseconds.
pub fn timeouts_ms(t: &Timeouts) -> [u64; N_TM] {
    let s = [
        t.tcp_syn_sent,
        t.tcp_syn_recv,
        t.tcp_established,
        t.tcp_fin_wait,
        t.tcp_time_wait,
        t.tcp_close,
        t.udp_first,
        t.udp_single,
        t.udp_multiple,
        t.icmp_first,
        t.icmp_reply,
    ];
    s.map(|x| x as u64 * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_mapping() {
        let ms = timeouts_ms(&Timeouts::default());
        assert_eq!(ms[Tm::TcpFirstPacket as usize], 30_000);
        assert_eq!(ms[Tm::TcpEstablished as usize], 86_400_000);
        assert_eq!(ms[Tm::TcpClosing as usize], 900_000, "CT_TM_TCP_CLOSING is FIN_WAIT's");
        assert_eq!(ms[Tm::TcpFinWait as usize], 45_000, "CT_TM_TCP_FIN_WAIT is TIME_WAIT's");
        assert_eq!(ms[Tm::TcpClosed as usize], 30_000);
        assert_eq!(ms[Tm::OtherMultiple as usize], 60_000, "UDP_SINGLE");
        assert_eq!(ms[Tm::OtherBidir as usize], 30_000, "UDP_MULTIPLE");
        assert_eq!(ms[Tm::IcmpReply as usize], 30_000);
    }
}
