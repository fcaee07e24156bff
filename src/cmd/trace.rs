//! `sdnfwd trace`: a flow through a node's tables (ofproto/trace layout or
//! JSON), or pod to pod in both directions across nodes (ovnkube-trace).

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Args;
use config::ofctl::{parse_trace_flow, Field, ETH_TYPE_IP, IPPROTO_TCP, IPPROTO_UDP};
use config::yaml::{Cluster, Node, Pod};
use serde_json::{json, Value};
use slowpath::trace::{fmt_dp_actions, fmt_megaflow, parse_ct_flags, report_passes};
use slowpath::{OfFlow, Ofproto, Xlate};

use super::common::{file_tables, node_tables, ClusterArgs};

/// `sdnfwd trace`.
#[derive(Args)]
pub struct TraceArgs {
    /// Flow file to load instead of a rendered cluster.
    #[arg(long, conflicts_with_all = ["cluster", "src"])]
    pub flows: Option<String>,
    /// Group file (`ovs-ofctl add-groups` lines), loaded before `--flows`.
    #[arg(long, requires = "flows")]
    pub groups: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The flow, in ofproto/trace syntax (`in_port=3,tcp,nw_dst=...`).
    #[arg(conflicts_with = "src")]
    pub flow: Option<String>,
    /// Source pod `namespace/name` (pod-to-pod form).
    #[arg(long, requires = "dst")]
    pub src: Option<String>,
    /// Destination pod `namespace/name`.
    #[arg(long, requires = "src")]
    pub dst: Option<String>,
    /// TCP (the default).
    #[arg(long, conflicts_with = "udp")]
    pub tcp: bool,
    /// UDP.
    #[arg(long)]
    pub udp: bool,
    /// Destination port.
    #[arg(long, default_value_t = 80)]
    pub dst_port: u16,
    /// The connection-tracking state of each recirculation's next pass,
    /// in order (`trk,est`, `trk,est,rpl`; repeatable, as ofproto/trace's
    /// `--ct-next`); `trk,new` when they run out.
    #[arg(long = "ct-next", value_name = "FLAGS")]
    pub ct_next: Vec<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// The ephemeral source port of pod-to-pod traces.
pub(crate) const SRC_PORT: u16 = 40000;

pub fn trace(a: TraceArgs) -> Result<ExitCode, String> {
    if let (Some(src), Some(dst)) = (&a.src, &a.dst) {
        return pod_to_pod(&a, src, dst);
    }
    let Some(flow_text) = &a.flow else {
        return Err("trace: give a flow (`in_port=3,tcp,...`) or --src ns/pod --dst ns/pod".into());
    };
    let of = match &a.flows {
        Some(path) => file_tables(path, a.groups.as_deref())?,
        None => {
            let (c, extra) = a.cluster.load()?;
            let node = a.cluster.node_name(&c)?;
            node_tables(&c, &node, extra.as_ref(), &a.cluster.source())?
        }
    };
    let m = parse_trace_flow(flow_text).map_err(|e| e.in_file("<flow>").to_string())?;
    let (flow, _) = OfFlow::from_match(&m);
    let ct_next = a
        .ct_next
        .iter()
        .map(|s| parse_ct_flags(s).map_err(|e| format!("--ct-next {s}: {e}")))
        .collect::<Result<Vec<u64>, String>>()?;
    let (text, passes) = report_passes(&of, &flow, &ct_next, "br0");
    if a.json {
        // One pass: the translation's object; more: the first pass's
        // object with every pass under `passes`.
        let mut v = xlate_json(&passes[0].flow, &passes[0].xlate);
        if passes.len() > 1 {
            v["passes"] = passes.iter().map(|p| xlate_json(&p.flow, &p.xlate)).collect();
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The JSON form of a translation (the contract).
pub fn xlate_json(flow: &OfFlow, x: &Xlate) -> Value {
    let rules: Vec<Value> = x
        .rules
        .iter()
        .map(|r| {
            json!({
                "table": r.table,
                "priority": r.rule.spec.priority,
                "cookie": format!("{:#x}", r.rule.spec.cookie),
                "match": config::ofctl::fmt_match(&r.rule.spec.m, None),
                "actions": config::ofctl::fmt_actions(&r.rule.spec.actions),
            })
        })
        .collect();
    let outputs: Vec<Value> = x
        .outputs
        .iter()
        .map(|o| match (o.tun_dst, o.tun_id) {
            (Some(d), Some(id)) => {
                json!({"port": o.port, "tun_dst": std::net::Ipv4Addr::from(d).to_string(), "tun_id": id})
            }
            _ => json!({"port": o.port}),
        })
        .collect();
    json!({
        "flow": slowpath::trace::fmt_flow(flow),
        "rules": rules,
        "outputs": outputs,
        "verdict": if x.drop.is_some() { "drop" } else { "output" },
        "drop": x.drop.map(|d| json!({"table": d.table, "reason": d.kind.as_str()})),
        "megaflow": fmt_megaflow(flow, x),
        "datapath_actions": fmt_dp_actions(x),
    })
}

pub(crate) struct Hop {
    pub node: String,
    flow: OfFlow,
    x: Xlate,
}

pub(crate) struct PathResult {
    pub ok: bool,
    pub why: String,
    pub hops: Vec<Hop>,
}

/// Follows a packet from `src` to `dst` through the sender's node and, when
/// it is tunnelled, the receiving node; each recirculation resumes with
/// `ct_state=trk,new` (a new connection).
pub(crate) fn follow(
    c: &Cluster,
    tables: &mut HashMap<String, Ofproto>,
    src: (&Node, &Pod),
    dst: (&Node, &Pod),
    l4: (u64, u16, u16),
    source: &str,
) -> Result<PathResult, String> {
    follow_ct(c, tables, src, dst, l4, source, slowpath::trace::parse_ct_flags("trk,new").unwrap_or(0))
}

/// [`follow`], each recirculation resuming with `ct_state` (`trk,est,rpl`
/// follows a reply of an established connection).
pub(crate) fn follow_ct(
    c: &Cluster,
    tables: &mut HashMap<String, Ofproto>,
    src: (&Node, &Pod),
    dst: (&Node, &Pod),
    (proto, sport, dport): (u64, u16, u16),
    source: &str,
    ct_state: u64,
) -> Result<PathResult, String> {
    let mut flow = OfFlow::default();
    flow.set(Field::InPort, src.1.ofport as u64);
    flow.set(Field::DlSrc, src.1.mac());
    flow.set(Field::DlDst, dst.1.mac());
    flow.set(Field::DlType, ETH_TYPE_IP);
    flow.set(Field::NwSrc, u32::from(src.1.ip.0) as u64);
    flow.set(Field::NwDst, u32::from(dst.1.ip.0) as u64);
    flow.set(Field::NwProto, proto);
    flow.set(Field::NwTtl, 64);
    flow.set(Field::TpSrc, sport as u64);
    flow.set(Field::TpDst, dport as u64);
    let mut node = src.0.name.clone();
    let mut hops = Vec::new();
    let ct_next = [ct_state; 8];
    for _ in 0..4 {
        if !tables.contains_key(&node) {
            tables.insert(node.clone(), node_tables(c, &node, None, source)?);
        }
        // Every pass through conntrack on this node.
        let (_, passes) = report_passes(&tables[&node], &flow, &ct_next, "br0");
        let here_is_dst = node == dst.0.name;
        let mut delivered = false;
        let mut tunnel = None;
        let mut drop = None;
        for p in passes {
            delivered |= here_is_dst && p.xlate.outputs.iter().any(|o| o.port == dst.1.ofport);
            tunnel = tunnel.or(p.xlate.outputs.iter().find(|o| o.tun_dst.is_some()).copied());
            drop = drop.or(p.xlate.drop);
            hops.push(Hop { node: node.clone(), flow: p.flow, x: p.xlate });
        }
        if delivered {
            return Ok(PathResult { ok: true, why: String::new(), hops });
        }
        if let Some(d) = drop {
            let why = format!("dropped on {node} in table {} ({})", d.table, d.kind.as_str());
            return Ok(PathResult { ok: false, why, hops });
        }
        let Some(t) = tunnel.filter(|_| !here_is_dst) else {
            return Ok(PathResult { ok: false, why: format!("not delivered to {} on {node}", dst.1.name), hops });
        };
        let dst_ip = std::net::Ipv4Addr::from(t.tun_dst.unwrap_or(0));
        let Some(next) = c.host_subnets.iter().find(|h| h.host_ip.0 == dst_ip) else {
            return Ok(PathResult { ok: false, why: format!("tunnelled to {dst_ip}, which is no node"), hops });
        };
        let here_ip = c.host_subnet(&node).map(|h| u32::from(h.host_ip.0)).unwrap_or(0);
        let mut f = flow;
        f.set(Field::InPort, 1);
        f.set(Field::TunId, t.tun_id.unwrap_or(0) & 0xff_ffff);
        f.set(Field::TunSrc, here_ip as u64);
        f.set(Field::TunDst, u32::from(dst_ip) as u64);
        flow = f;
        node = next.host.clone();
        if c.find_node(&node).is_none() {
            return Ok(PathResult {
                ok: false,
                why: format!("node {node} is not described (no pods, no ports)"),
                hops,
            });
        }
    }
    Ok(PathResult { ok: false, why: "too many hops".into(), hops })
}

/// The NetworkPolicies whose allow flows (tables 80 and 27) a path went
/// through, as `policy (table T on node)`.
fn policies_on_path(c: &Cluster, r: &PathResult) -> Vec<String> {
    let mut rendered: HashMap<&str, config::render::Rendered> = HashMap::new();
    let mut out = Vec::new();
    for h in &r.hops {
        for rule in &h.x.rules {
            if ![27, 80].contains(&rule.table) {
                continue;
            }
            if !rendered.contains_key(h.node.as_str()) {
                match config::render::render(c, &h.node) {
                    Ok(x) => rendered.insert(&h.node, x),
                    Err(_) => continue,
                };
            }
            if let Some(ps) = rendered[h.node.as_str()].policies_of(&rule.rule.spec) {
                for p in ps {
                    let s = format!("{p} (table {} on {})", rule.table, h.node);
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
            }
        }
    }
    out
}

fn pod_to_pod(a: &TraceArgs, src: &str, dst: &str) -> Result<ExitCode, String> {
    let (c, _) = a.cluster.load()?;
    let source = a.cluster.source();
    let find = |name: &str| {
        c.find_pod(name)
            .ok_or_else(|| format!("{source}: no pod `{name}` (write namespace/name) on any described node"))
    };
    let s = find(src)?;
    let d = find(dst)?;
    let proto = if a.udp { IPPROTO_UDP } else { IPPROTO_TCP };
    let mut tables = HashMap::new();
    let fwd = follow(&c, &mut tables, s, d, (proto, SRC_PORT, a.dst_port), &source)?;
    // The reply of the same connection: conntrack says established reply.
    let rpl = slowpath::trace::parse_ct_flags("trk,est,rpl").unwrap_or(0);
    let rev = follow_ct(&c, &mut tables, d, s, (proto, a.dst_port, SRC_PORT), &source, rpl)?;
    let line = |r: &PathResult, from: &Pod, to: &Pod, dir: &str| {
        let verdict = if r.ok { "success" } else { "failure" };
        let mut l = format!("ofproto/trace {dir} indicates {verdict} from {} to {}", from.name, to.name);
        if !r.ok {
            l.push_str(&format!(": {}", r.why));
        }
        let by = policies_on_path(&c, r);
        if !by.is_empty() {
            l.push_str(&format!(" (admitted by NetworkPolicy {})", by.join(", ")));
        }
        l
    };
    if a.json {
        let hops = |r: &PathResult| -> Vec<Value> {
            r.hops
                .iter()
                .map(|h| {
                    let mut v = xlate_json(&h.flow, &h.x);
                    v["node"] = json!(h.node);
                    v
                })
                .collect()
        };
        let out = json!({
            "forward": {"from": src, "to": dst, "success": fwd.ok, "reason": fwd.why, "hops": hops(&fwd), "policies": policies_on_path(&c, &fwd)},
            "reverse": {"from": dst, "to": src, "success": rev.ok, "reason": rev.why, "hops": hops(&rev), "policies": policies_on_path(&c, &rev)},
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        println!("{}", line(&fwd, s.1, d.1, "source pod to destination pod"));
        println!("{}", line(&rev, d.1, s.1, "destination pod to source pod"));
    }
    Ok(if fwd.ok && rev.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
