//! The subcommands.

mod bench;
mod bench_veth;
mod common;
mod control;
mod ct_replay;
mod ctl;
mod demo;
mod netcheck;
mod openflow;
mod run;
mod trace;

pub use bench::{bench, BenchArgs};
pub use bench_veth::{bench_veth, BenchVethArgs};
pub use common::*;
pub use ct_replay::{ct_replay, CtReplayArgs};
pub use ctl::{ctl, CtlArgs};
pub use demo::{demo, DemoArgs};
pub use netcheck::{netcheck, NetcheckArgs};
pub use run::{run, RunArgs};
pub use trace::{trace, TraceArgs};

use std::process::ExitCode;

use clap::Args;
use config::ofctl::{parse_flow_file, FlowCommand};

/// `sdnfwd render`.
#[derive(Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `sdnfwd check-flows`.
#[derive(Args)]
pub struct CheckArgs {
    /// Flow file (add-flows syntax or dump-flows output).
    pub file: String,
    /// Print as dump-flows with zero counters (default: without counters).
    #[arg(long)]
    pub stats: bool,
    /// Group file (`ovs-ofctl add-groups` lines) the flows may name.
    #[arg(long)]
    pub groups: Option<String>,
}

pub fn render(a: RenderArgs) -> Result<ExitCode, String> {
    let (cluster, _) = a.cluster.load()?;
    let node = a.cluster.node_name(&cluster)?;
    let r = config::render::render(&cluster, &node).map_err(|e| format!("{}: {e}", a.cluster.source()))?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    print!("{}", config::ofctl::flow_file(&r.flows));
    Ok(ExitCode::SUCCESS)
}

pub fn check_flows(a: CheckArgs) -> Result<ExitCode, String> {
    let text = read_file(&a.file)?;
    let cmds = parse_flow_file(&text).map_err(|e| e.in_file(&a.file).to_string())?;
    let mut of = slowpath::Ofproto::new();
    if let Some(gpath) = &a.groups {
        let gtext = read_file(gpath)?;
        for (line, g) in config::ofctl::parse_group_file(&gtext).map_err(|e| e.in_file(gpath).to_string())? {
            of.apply_group(&g).map_err(|e| format!("{gpath}:{line}:1: {e}"))?;
            if let config::ofctl::GroupCommand::Add(spec) | config::ofctl::GroupCommand::Modify(spec) = &g {
                println!("{}", spec.to_dump_line());
            }
        }
    }
    for (line, c) in &cmds {
        if let FlowCommand::Add(s) = c {
            slowpath::Ofproto::validate(s).map_err(|e| format!("{}:{}:1: {e}", a.file, line))?;
        }
    }
    let stats = a.stats.then(config::ofctl::FlowStats::default);
    for (line, c) in &cmds {
        match c {
            FlowCommand::Add(s) => {
                println!("{}", s.to_dump_line(stats));
                of.add_flow(s.clone()).map_err(|e| format!("{}:{}:1: {e}", a.file, line))?;
            }
            FlowCommand::Modify { strict, spec } => {
                println!(
                    "{} {}",
                    if *strict { "modify_strict" } else { "modify" },
                    spec.to_dump_line(None).trim_start()
                );
            }
            FlowCommand::Delete { strict, spec } => {
                println!(
                    "{} {}",
                    if *strict { "delete_strict" } else { "delete" },
                    spec.to_dump_line(None).trim_start()
                );
            }
            // Applied: later flows may name the group.
            FlowCommand::Group(g) => {
                println!("{g}");
                of.apply_group(g).map_err(|e| format!("{}:{}:1: {e}", a.file, line))?;
            }
        }
    }
    eprintln!("{}: {} flows OK", a.file, cmds.len());
    Ok(ExitCode::SUCCESS)
}
