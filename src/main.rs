//! `sdnfwd`: a userspace forwarder for the OpenShift SDN `br0` pipeline.
//! See DESIGN.md §4 for the command-line contract.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "sdnfwd", version, about = "Userspace poll-mode forwarder for the OpenShift SDN br0 pipeline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The embedded default cluster in network namespaces, checked and reported.
    Demo(cmd::DemoArgs),
    /// Run the forwarder on this node (AF_XDP ports, tun0, uplink).
    Run(cmd::RunArgs),
    /// In place of ovs-vswitchd: the bridge, ports and flows from the OVS
    /// database (ovs-vsctl), OpenFlow (ovs-ofctl) and ovs-appctl.
    Vswitchd(node::vswitchd::VswitchdArgs),
    /// Talk to a running node's control socket (dump-flows, add-flow, pmd-stats, ...).
    #[command(after_help = cmd::CTL_HELP)]
    Ctl(cmd::CtlArgs),
    /// Check a cluster YAML as `sdnfwd run` would, touching nothing (exit 2 with the errors).
    CheckConfig(cmd::CheckConfigArgs),
    /// Print a node's OpenShift SDN flows (add-flows syntax).
    Render(cmd::RenderArgs),
    /// Parse and validate a flow file; print the normalised flows.
    CheckFlows(cmd::CheckArgs),
    /// Trace a packet through the tables, like `ovs-appctl ofproto/trace`.
    Trace(cmd::TraceArgs),
    /// Run a packet file through the real datapath in memory (connection
    /// tracker included), printed as tools/ovs-ct-oracle.sh prints OVS's.
    CtReplay(cmd::CtReplayArgs),
    /// Measure the datapath in memory, per core.
    Bench(cmd::BenchArgs),
    /// One forwarder between veth pairs, driven by tools/pktgen (root).
    BenchVeth(cmd::BenchVethArgs),
    /// TCP probes for the demo and tests (run inside namespaces).
    #[command(hide = true)]
    Netcheck(cmd::NetcheckArgs),
}

fn main() -> ExitCode {
    // Installed as (or linked to) `ovs-vswitchd`, sdnfwd is `sdnfwd
    // vswitchd`: ovs-ctl and the OVS units run it with ovs-vswitchd's
    // command line.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let called = args.first().map(std::path::Path::new).and_then(|p| p.file_name()).map(|n| n.to_os_string());
    if called.as_deref() == Some(std::ffi::OsStr::new("ovs-vswitchd")) {
        args.insert(1, "vswitchd".into());
    }
    let cli = Cli::parse_from(args);
    let r = match cli.command {
        Command::Demo(a) => cmd::demo(a),
        Command::Run(a) => cmd::run(a),
        Command::Vswitchd(a) => node::vswitchd::vswitchd(a),
        Command::Ctl(a) => cmd::ctl(a),
        Command::CheckConfig(a) => cmd::check_config(a),
        Command::Render(a) => cmd::render(a),
        Command::CheckFlows(a) => cmd::check_flows(a),
        Command::Trace(a) => cmd::trace(a),
        Command::CtReplay(a) => cmd::ct_replay(a),
        Command::Bench(a) => cmd::bench(a),
        Command::Netcheck(a) => cmd::netcheck(a),
        Command::BenchVeth(a) => cmd::bench_veth(a),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
