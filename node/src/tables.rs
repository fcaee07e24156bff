//! A node's OpenFlow tables as the renderer makes them from the cluster
//! (what `run` starts with and re-renders on a change; `render`, `trace`,
//! `bench` and the demo use the same).

use std::collections::BTreeSet;

use config::ofctl::{parse_flow_file, FlowCommand};
use config::yaml::{Cluster, SdnVersion};
use slowpath::Ofproto;

/// `--sdn-version 3.11|4.13`.
pub fn parse_sdn_version(s: &str) -> Result<SdnVersion, String> {
    SdnVersion::parse(s)
}

/// A node's tables: the rendered flows, then the cluster's extra flows;
/// ports are vxlan0, tun0 and the node's pods.
pub fn node_tables(c: &Cluster, node: &str, extra: Option<&(String, String)>, source: &str) -> Result<Ofproto, String> {
    node_tables_warning(c, node, extra, source).map(|(of, _)| of)
}

/// [`node_tables`], and the renderer's warnings (what the cluster asks for
/// that produces no flow: `sdnfwd render` prints them, `run` logs them).
pub fn node_tables_warning(
    c: &Cluster,
    node: &str,
    extra: Option<&(String, String)>,
    source: &str,
) -> Result<(Ofproto, Vec<String>), String> {
    let r = config::render::render(c, node).map_err(|e| format!("{source}: {e}"))?;
    let mut of = Ofproto::new();
    for g in &r.groups {
        of.apply_group(&config::ofctl::GroupCommand::Add(g.clone())).map_err(|e| format!("{source}: {e}"))?;
    }
    for f in &r.flows {
        of.add_flow(f.clone()).map_err(|e| format!("{source}: {e}"))?;
    }
    if let Some((path, text)) = extra {
        let cmds = parse_flow_file(text).map_err(|e| e.in_file(path).to_string())?;
        let cmds: Vec<FlowCommand> = cmds.into_iter().map(|(_, c)| c).collect();
        of.apply(&cmds).map_err(|e| format!("{path}: {e}"))?;
    }
    let mut ports: BTreeSet<u32> = [1, 2].into();
    if let Some(n) = c.find_node(node) {
        ports.extend(n.pods.iter().map(|p| p.ofport));
    }
    of.ports = Some(ports);
    Ok((of, r.warnings))
}
