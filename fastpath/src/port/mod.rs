//! Ports: where frames come from and go to. A poll loop owns its port
//! instances (one per port and core, as AF_XDP queues are per core); the
//! trait is in [`api`], and each kind of port has its module: frames in
//! memory, pcap files, AF_XDP sockets (with the uplink's XDP program) and
//! an AF_PACKET socket.

pub mod api;
pub mod memory;
pub mod packet;
pub mod pcap;
pub mod uplink;
pub mod xsk;
