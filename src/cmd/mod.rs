//! The subcommands.

mod bench;
mod bench_veth;
mod common;
mod ct_replay;
mod ctl;
mod demo;
mod netcheck;
mod trace;

pub use bench::{bench, BenchArgs};
pub use bench_veth::{bench_veth, BenchVethArgs};
pub use common::*;
pub use ct_replay::{ct_replay, CtReplayArgs};
pub use ctl::{ctl, CtlArgs, HELP as CTL_HELP};
pub use demo::{demo, DemoArgs};
pub use netcheck::{netcheck, NetcheckArgs};
pub use node::run::{run, RunArgs};
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

/// `sdnfwd check-config`.
#[derive(Args)]
pub struct CheckConfigArgs {
    /// Cluster YAML, as `sdnfwd run --config` reads it.
    pub file: String,
    /// The node to check it as (default: the `node:` section); its tables
    /// are rendered too. Every node's pods are checked either way.
    #[arg(long)]
    pub node: Option<String>,
}

/// Checks a config as `sdnfwd run` (start-up or reload) would: the whole
/// cluster, the flow file it names, the node's tables rendered; touches
/// nothing. Every problem is one line on stderr, exit status 2.
pub fn check_config(a: CheckConfigArgs) -> Result<ExitCode, String> {
    let file = ::node::state::FileState::read(&a.file)?;
    let node = a.node.clone().or_else(|| file.cluster.node.as_ref().map(|n| n.name.clone()));
    let (c, extra) = match &node {
        Some(n) => {
            let st = ::node::state::NodeState::new(n, file)?;
            (st.cluster.clone(), st.extra().cloned())
        }
        None => {
            let text = read_file(&a.file)?;
            let c = config::yaml::Cluster::from_yaml_all(&text)
                .map_err(|v| v.into_iter().map(|e| e.in_file(&a.file).to_string()).collect::<Vec<_>>().join("\n"))?;
            (c, file.extra)
        }
    };
    let mut what = format!(
        "{} HostSubnets, {} NetNamespaces, {} services",
        c.host_subnets.len(),
        c.net_namespaces.len(),
        c.services.len()
    );
    match &node {
        Some(n) => {
            let of = node_tables(&c, n, extra.as_ref(), &a.file)?;
            let pods = c.find_node(n).map_or(0, |x| x.pods.len());
            what = format!("node {n}: {pods} pods, {} flows; {what}", of.n_rules());
        }
        None => {
            if let Some((path, text)) = &extra {
                parse_flow_file(text).map_err(|e| e.in_file(path).to_string())?;
            }
        }
    }
    println!("{}: OK: {what}", a.file);
    Ok(ExitCode::SUCCESS)
}

pub fn render(a: RenderArgs) -> Result<ExitCode, String> {
    let (cluster, _) = a.cluster.load()?;
    let node = a.cluster.node_name(&cluster)?;
    let r = config::render::render(&cluster, &node).map_err(|e| format!("{}: {e}", a.cluster.source()))?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    print!("{}", r.to_text());
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
