//! What an OpenFlow connection reaches: the node behind it ([`Switch`]),
//! the ports and PACKET_OUTs it speaks of, the byte stream it comes over
//! ([`Conn`]) and the switch-wide configuration. A file of its own so that
//! the listener ([`super`]), the sessions and the codecs all import it and
//! none of them imports another both ways.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use config::ofctl::FlowCommand;
use crossbeam_channel::Receiver;

use crate::ofproto::{FlowEvent, FlowModError, GroupStats, Rule};

/// A port as PORT_DESC and PORT_STATS report it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortDesc {
    /// OpenFlow port number.
    pub port_no: u32,
    /// Interface name (at most 15 bytes go on the wire).
    pub name: String,
    /// Ethernet address (low 48 bits).
    pub mac: u64,
    /// Whether the port is attached (a configured pod whose veth is
    /// missing is down).
    pub up: bool,
    /// Frames received.
    pub rx_packets: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}

/// What a PACKET_OUT does with its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketOutAction {
    /// Through the pipeline from table 0, as if received on the in_port
    /// (`actions=table`, `resubmit(,0)`).
    Pipeline,
    /// Out of one port as it is.
    Output(u32),
}

/// A PACKET_OUT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketOut {
    /// The port it is said to come in on.
    pub in_port: u32,
    /// The Ethernet frame.
    pub frame: Vec<u8>,
    /// What to do with it.
    pub action: PacketOutAction,
}

/// The node an OpenFlow connection programs.
pub trait Switch: Send + Sync {
    /// The datapath id FEATURES reports.
    fn datapath_id(&self) -> u64;
    /// A line for DESC's `dp_desc`.
    fn description(&self) -> String;
    /// Applies flow and group commands ([`FlowCommand::Group`] for a
    /// GROUP_MOD) one at a time, in order (each its own transaction), then
    /// revalidates the caches once. `origin` (the connection's id) goes
    /// with the events the changes make.
    ///
    /// # Errors
    /// When the node cannot be reached (it is stopping).
    fn flow_mods(&self, cmds: Vec<FlowCommand>, origin: u64) -> Result<Vec<Result<(), FlowModError>>, String>;
    /// Applies commands as one transaction (a bundle's commit): all of them
    /// or none, the datapath's caches revalidated once, so that no packet
    /// sees part of the change. A refusal names the refused command.
    ///
    /// # Errors
    /// When the node cannot be reached.
    fn apply_atomic(&self, cmds: Vec<FlowCommand>, origin: u64) -> Result<Result<(), (usize, FlowModError)>, String>;
    /// Every group with its statistics, by id
    /// ([`Ofproto::group_stats`]), the flows' counters up to date.
    ///
    /// # Errors
    /// When the node cannot be reached.
    fn groups(&self) -> Result<Vec<GroupStats>, String>;
    /// Every rule in dump order, with its counters up to date.
    ///
    /// # Errors
    /// When the node cannot be reached.
    fn rules(&self) -> Result<Vec<Arc<Rule>>, String>;
    /// The ports, with their counters.
    ///
    /// # Errors
    /// When the node cannot be reached.
    fn ports(&self) -> Result<Vec<PortDesc>, String>;
    /// The committed changes to the flows from now on (added, modified,
    /// removed and why).
    ///
    /// # Errors
    /// When the node cannot be reached.
    fn subscribe(&self) -> Result<Receiver<FlowEvent>, String>;
    /// Removes the flows whose timeouts have passed, where nothing else
    /// does (a running node's slow path does it itself).
    fn expire(&self) {}
    /// Sends a frame through the pipeline or out of a port.
    ///
    /// # Errors
    /// Why it cannot (no datapath, no such port).
    fn packet_out(&self, p: PacketOut) -> Result<(), String> {
        let _ = p;
        Err("PACKET_OUT: this switch has no datapath".into())
    }
    /// A line for the node's log (refused requests, connections closed for
    /// junk or silence).
    fn log(&self, msg: &str) {
        let _ = msg;
    }
    /// The OpenFlow versions this switch accepts, as a HELLO's version
    /// bitmap (bit N: wire version N): all that sdnfwd speaks, unless the
    /// bridge's `protocols` narrow them.
    fn versions(&self) -> u32 {
        super::codec::ALL_VERSIONS
    }
}

/// A connection's byte stream.
pub trait Conn: Read + Write + Send {
    /// Another handle to the same connection (its write half).
    ///
    /// # Errors
    /// The system's.
    fn try_clone_conn(&self) -> std::io::Result<Box<dyn Write + Send>>;
    /// Sets the read timeout.
    ///
    /// # Errors
    /// The system's.
    fn set_timeout(&self, t: Option<Duration>) -> std::io::Result<()>;
}

impl Conn for TcpStream {
    fn try_clone_conn(&self) -> std::io::Result<Box<dyn Write + Send>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn set_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(t)
    }
}

impl Conn for UnixStream {
    fn try_clone_conn(&self) -> std::io::Result<Box<dyn Write + Send>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn set_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(t)
    }
}

/// SET_CONFIG's flags (shared by the switch's connections; each has its
/// own `miss_send_len`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SwitchConfig {
    /// `OFPC_FRAG_*`.
    pub flags: u16,
}

/// Writes `s` as a NUL-padded field of `n` bytes.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str, n: usize) {
    let b = s.as_bytes();
    let k = b.len().min(n - 1);
    out.extend_from_slice(&b[..k]);
    out.resize(out.len() + n - k, 0);
}
