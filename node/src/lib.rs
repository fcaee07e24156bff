//! sdnfwd's node agent, as a library above config, slowpath and fastpath
//! (DESIGN.md §1, §9). It grows into the crate that owns a running node
//! (its desired state from the YAML file, the control socket, OpenFlow and
//! the OVS database; the reconciled ports, tun0, tunnels and neighbours);
//! today it holds the protocols by which a stock OpenShift node drives its
//! switch, the drop-in for ovs-vswitchd being built on them:
//!
//! - [`jsonrpc`]: JSON-RPC 1.0 over a stream socket, as OVS speaks it;
//! - [`ovsdb`]: the OVSDB client (RFC 7047) that reads bridges, ports and
//!   interfaces from Debian's ovsdb-server and writes back what the switch
//!   did (`ofport`, `cur_cfg`), as ovs-vswitchd does;
//! - [`unixctl`]: the server `ovs-appctl` talks to;
//! - [`bridge`]: what a bridge of the database asks of the datapath (ports
//!   and how each is served, `pmd-cpu-mask`'s cores);
//! - [`ovs_paths`]: where ovs-vswitchd's files are, so the stock tools
//!   find the drop-in's.
//!
//! And the first parts of the running node, moved out of the binary:
//! [`state`] (the node's desired state: the config file plus what ctl
//! changed, validated whole), [`control`] (what ctl, metrics and OpenFlow
//! reach of a running node), [`logging`].

pub mod bridge;
pub mod control;
pub mod jsonrpc;
pub mod logging;
pub mod ovs_paths;
pub mod ovsdb;
pub mod state;
pub mod unixctl;
