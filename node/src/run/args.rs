//! `sdnfwd run`'s command line.

use clap::{Args, ValueEnum};
use fastpath::conntrack::CtConfig;
use fastpath::port::xsk::XdpMode;

use crate::logging::Level;

/// XDP attach mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Native, else generic.
    Auto,
    /// Native (driver) mode.
    Native,
    /// Generic (SKB) mode.
    Skb,
}

impl Mode {
    /// The port layer's mode.
    pub fn xdp(self) -> XdpMode {
        match self {
            Mode::Auto => XdpMode::Auto,
            Mode::Native => XdpMode::Native,
            Mode::Skb => XdpMode::Skb,
        }
    }
}

/// `sdnfwd run`.
#[derive(Args, Clone)]
pub struct RunArgs {
    /// Node configuration: a cluster YAML with this node's `node:` section.
    #[arg(long)]
    pub config: String,
    /// Node to act as (default: the config's `node:` section).
    #[arg(long)]
    pub node: Option<String>,
    /// The openshift-sdn rules to run: 3.11 or 4.13 (default: the node
    /// section's `sdnVersion`, else 3.11).
    #[arg(long, value_name = "VERSION", value_parser = crate::tables::parse_sdn_version)]
    pub sdn_version: Option<config::yaml::SdnVersion>,
    /// How XDP programs are attached.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub xdp_mode: Mode,
    /// Ask for zero-copy AF_XDP (drivers that lack it, veth included,
    /// refuse; the port then stays down with the reason logged).
    #[arg(long)]
    pub zero_copy: bool,
    /// Print pmd-stats every this many seconds (0: only at exit).
    #[arg(long, default_value_t = 0.0)]
    pub stats_interval: f64,
    /// Let an idle poll loop sleep up to this many microseconds (OVS's
    /// pmd-maxsleep; 0: poll without pause).
    #[arg(long, default_value_t = 0)]
    pub pmd_maxsleep_us: u64,
    /// Poll loop cores (comma-separated; default: the config's `cores`).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Control socket for `sdnfwd ctl` (default /run/sdnfwd/NODE.ctl).
    #[arg(long)]
    pub socket: Option<String>,
    /// Do not create tun0.
    #[arg(long)]
    pub no_tun0: bool,
    /// Log level (default: RUST_LOG's, else info). Lines carry a UTC
    /// timestamp and the level.
    #[arg(long, value_enum)]
    pub log_level: Option<Level>,
    /// Serve the tables over OpenFlow 1.0, 1.3, 1.4 and 1.5 for ovs-ofctl and controllers:
    /// `ptcp:PORT[:IP]` or `punix:PATH` (repeatable).
    #[arg(long, value_name = "TARGET")]
    pub openflow: Vec<String>,
    /// Connections the tracker holds at most (OVS's default; a commit
    /// beyond it is refused and counted). Sizes the tracker's hash table
    /// once, 8 bytes a slot, the next power of two above it.
    #[arg(long, default_value_t = fastpath::conntrack::types::DEFAULT_MAX_CONNS)]
    pub ct_max_conns: usize,
    /// A conntrack timeout, `NAME=SECONDS` with OVS's timeout-policy
    /// names (tcp_syn_sent, tcp_syn_recv, tcp_established, tcp_fin_wait,
    /// tcp_time_wait, tcp_close, udp_first, udp_single, udp_multiple,
    /// icmp_first, icmp_reply); repeatable or comma-separated.
    #[arg(long, value_name = "NAME=SECONDS", value_delimiter = ',')]
    pub ct_timeout: Vec<String>,
    /// Do not check TCP sequence numbers and windows (OVS's
    /// `dpctl/ct-disable-tcp-seq-chk`).
    #[arg(long)]
    pub ct_no_tcp_seq_check: bool,
}

impl RunArgs {
    /// The tracker's configuration from the flags.
    pub fn ct_config(&self) -> Result<CtConfig, String> {
        if self.ct_max_conns == 0 || self.ct_max_conns > 1 << 30 {
            return Err(format!("--ct-max-conns {}: out of range (1 to 2^30)", self.ct_max_conns));
        }
        let mut timeouts = fastpath::conntrack::Timeouts::default();
        for t in &self.ct_timeout {
            timeouts.set(t).map_err(|e| format!("--ct-timeout {e}"))?;
        }
        Ok(CtConfig {
            max_conns: self.ct_max_conns,
            timeouts,
            tcp_seq_check: !self.ct_no_tcp_seq_check,
            ..CtConfig::default()
        })
    }
}
