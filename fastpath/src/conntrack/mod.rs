//! Connection tracking: the datapath's tracker, as Open vSwitch's
//! userspace datapath owns its tracker (DESIGN.md §9): one table per node
//! shared by the poll loops, keyed by zone and both directions' tuples,
//! with TCP window tracking, ICMP and other protocols, NAT and timeouts,
//! reproducing OVS 3.1's `lib/conntrack*.c`. [`tracker`] has the
//! [`Conntrack`] and its threading, [`types`] what goes in and out,
//! [`frames`] test frames, [`ipf`] IPv4 reassembly; the rest is internal: keys, parsing, the
//! protocols' state machines, NAT, the lock-free table.

mod conn;
mod dump;
pub mod frames;
pub mod fuzzing;
pub mod ipf;
mod key;
mod l4;
mod nat;
mod parse;
mod proto;
mod table;
mod tcp;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_ipf;
pub mod tracker;
pub mod types;

pub use ipf::FragOut;
pub use tracker::{Conntrack, CtPin, Track};
pub use types::{
    CtConfig, CtRequest, CtResult, CtStats, CtTuple, IpfConfig, IpfStatus, NatRange, NatRequest, Timeouts, CS_DST_NAT,
    CS_ESTABLISHED, CS_INVALID, CS_NEW, CS_RELATED, CS_REPLY_DIR, CS_SRC_NAT, CS_TRACKED,
};
