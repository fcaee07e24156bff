//! Ports: where frames come from and go to. A poll loop owns its port
//! instances (one per port and core, as AF_XDP queues are per core); the
//! trait is in [`api`], and each kind of port has its module: frames in
//! memory and pcap files.

pub mod api;
pub mod memory;
pub mod pcap;

// The poll loop (pmd.rs) still names the trait and its counters here.
pub use api::{Port, PortCounters};
