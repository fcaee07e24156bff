//! sdnfwd's node agent, as a library above config, slowpath and fastpath
//! (DESIGN.md §1, §9): the crate that owns a running node.
//!
//! The running node: [`run`] (`sdnfwd run`: its setup, ports and tun0,
//! the main loop that applies reloads and ctl changes and keeps the
//! underlay neighbours), [`state`] (the desired state: the config file
//! plus what ctl changed, validated whole), [`control`] (what ctl, metrics
//! and OpenFlow reach of a running node), [`ctl`] (the control socket and
//! the metrics endpoint), [`openflow`] (the node as an OpenFlow switch),
//! [`tables`] (a node's rendered tables), [`sys`], [`logging`];
//! [`testdp`]: an in-memory datapath behind a [`control::Control`], for
//! tests of the control surfaces.
//!
//! The protocols by which a stock OpenShift node drives its switch, for
//! the drop-in for ovs-vswitchd:
//!
//! - [`jsonrpc`]: JSON-RPC 1.0 over a stream socket, as OVS speaks it;
//! - [`ovsdb`]: the OVSDB client (RFC 7047) that reads bridges, ports and
//!   interfaces from Debian's ovsdb-server and writes back what the switch
//!   did (`ofport`, `cur_cfg`), as ovs-vswitchd does;
//! - [`unixctl`]: the server `ovs-appctl` talks to, and [`appctl`]:
//!   ovs-vswitchd's commands on it, answered from the running datapath;
//! - [`bridge`]: what a bridge of the database asks of the datapath (ports
//!   and how each is served, `pmd-cpu-mask`'s cores);
//! - [`ovs_paths`]: where ovs-vswitchd's files are, so the stock tools
//!   find the drop-in's.

pub mod appctl;
pub mod bridge;
pub mod control;
pub mod ctl;
pub mod datapath;
pub mod jsonrpc;
pub mod logging;
pub mod openflow;
pub mod ovs_paths;
pub mod ovsdb;
pub mod run;
pub mod state;
pub mod sys;
pub mod tables;
pub mod testdp;
pub mod unixctl;
pub mod vswitchd;
