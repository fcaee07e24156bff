//! Loading what the commands share: the cluster, a node's tables.

use clap::Args;
use config::ofctl::{parse_flow_file, parse_group_file};
use config::yaml::{Cluster, SdnVersion};
pub use node::sys::spawn_pinned;
pub use node::tables::{node_tables, parse_sdn_version};
use slowpath::Ofproto;

/// `--cluster F... --node NAME --sdn-version V` (all optional: the
/// embedded default cluster, its first node, its nodes' own versions).
#[derive(Args, Clone, Default)]
pub struct ClusterArgs {
    /// Cluster state: sdnfwd's cluster YAML, or API objects as `oc get ...
    /// -A -o yaml|json` prints them; repeat to merge several files
    /// (default: the embedded default cluster).
    #[arg(long)]
    pub cluster: Vec<String>,
    /// Node to act as (default: the first node the cluster describes).
    #[arg(long)]
    pub node: Option<String>,
    /// The openshift-sdn rules to render: 3.11 or 4.13 (default: the node
    /// section's `sdnVersion`, else 3.11).
    #[arg(long, value_name = "VERSION", value_parser = parse_sdn_version)]
    pub sdn_version: Option<SdnVersion>,
}

/// Reads and merges cluster files (one: [`Cluster::from_yaml_all`]; more:
/// [`config::load::load`]); prints the loading warnings. Errors: every
/// problem, one `file:line:column: message` line each.
pub fn load_cluster_files(paths: &[String]) -> Result<Cluster, String> {
    let c = match paths {
        [] => Cluster::default_cluster(),
        [p] => Cluster::from_yaml_all(&read_file(p)?)
            .map_err(|v| v.into_iter().map(|e| e.in_file(p).to_string()).collect::<Vec<_>>().join("\n"))?,
        _ => {
            let mut sources = Vec::new();
            for p in paths {
                sources.push((Some(p.clone()), read_file(p)?));
            }
            config::load::load(&sources).map_err(|v| v.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))?
        }
    };
    for w in &c.warnings {
        eprintln!("warning: {w}");
    }
    Ok(c)
}

/// Reads a file, naming it in the error.
pub fn read_file(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

impl ClusterArgs {
    /// Where the cluster comes from, for messages.
    pub fn source(&self) -> String {
        if self.cluster.is_empty() {
            "<embedded default cluster>".into()
        } else {
            self.cluster.join(" + ")
        }
    }

    /// Loads the cluster (with `--sdn-version` applied) and its optional
    /// extra flow file's text.
    pub fn load(&self) -> Result<(Cluster, Option<(String, String)>), String> {
        let mut c = load_cluster_files(&self.cluster)?;
        c.sdn_version = self.sdn_version;
        let extra = match (&c.flows, self.cluster.first()) {
            (Some(f), Some(p)) => {
                let base = std::path::Path::new(p).parent().unwrap_or(std::path::Path::new("."));
                let path = base.join(f).to_string_lossy().into_owned();
                Some((read_file(&path)?, path))
            }
            (Some(f), None) => return Err(format!("the embedded cluster cannot name a flow file ({f})")),
            _ => None,
        };
        Ok((c, extra.map(|(t, p)| (p, t))))
    }

    /// The node to act as.
    pub fn node_name(&self, c: &Cluster) -> Result<String, String> {
        match &self.node {
            Some(n) => {
                if c.host_subnet(n).is_none() {
                    return Err(format!("{}: node `{n}` has no HostSubnet", self.source()));
                }
                Ok(n.clone())
            }
            None => c
                .all_nodes()
                .next()
                .map(|n| n.name.clone())
                .ok_or_else(|| format!("{}: no node described; pass --node NAME", self.source())),
        }
    }
}

/// Tables from a flow file (every port exists), after the groups of a
/// group file (`ovs-ofctl add-groups` lines) if one is given.
pub fn file_tables(path: &str, groups: Option<&str>) -> Result<Ofproto, String> {
    let groups = match groups {
        Some(g) => Some((g, read_file(g)?)),
        None => None,
    };
    text_tables((path, &read_file(path)?), groups.as_ref().map(|(g, t)| (*g, t.as_str())))
}

/// Tables from flows and groups given as (name for messages, text), as
/// [`file_tables`] reads them.
pub fn text_tables(flows: (&str, &str), groups: Option<(&str, &str)>) -> Result<Ofproto, String> {
    let mut of = Ofproto::new();
    if let Some((gpath, text)) = groups {
        for (line, g) in parse_group_file(text).map_err(|e| e.in_file(gpath).to_string())? {
            of.apply_group(&g).map_err(|e| format!("{gpath}:{line}:1: {e}"))?;
        }
    }
    let (path, text) = flows;
    let cmds = parse_flow_file(text).map_err(|e| e.in_file(path).to_string())?;
    for (line, c) in cmds {
        of.apply(std::slice::from_ref(&c)).map_err(|e| format!("{path}:{line}:1: {e}"))?;
    }
    Ok(of)
}
