//! The control socket of a running node (`sdnfwd run --socket PATH`);
//! its client is `sdnfwd ctl`. A request is one command line, optionally
//! followed by a body (the flows of add-flows); the answer's first line is
//! `OK` or `ERROR: why`, then the text (an error may have more lines, one
//! per problem). Commands: see [`HELP`]. Flow changes go to the slow path
//! as one bundle and are revalidated at once; a bad line changes nothing.
//! `pod`, `hostsubnet`, `policy` and `reload` go to the main thread, which
//! owns the node's desired state (node/src/state.rs): a change is checked with the
//! whole cluster and applied whole or not at all, and pods, HostSubnets and
//! NetworkPolicies added here survive a reload. `--metrics ADDR` serves the counters in the
//! Prometheus text format. `help` needs no running node; a closed stdout
//! ends the client quietly.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use config::ofctl::{
    parse_flow_file, parse_flow_line, parse_group_file, parse_group_line, parse_trace_flow, FlowCommand, GroupLineKind,
    LineKind,
};
use fastpath::stats::{DatapathDrop, PmdStats};
use slowpath::trace::{report_passes_with, CtNext, LiveCt};

use crate::control::{ask, ask_node, on_slow_path, port_dumps, Control, NodeRequest};
use crate::logging::{self, Level};
use crate::state::parse_edit;
use slowpath::upcall::{Command, SlowPath};
use slowpath::OfFlow;

/// `pod ...`, `hostsubnet ...` and `policy ...`: `list`, or a change made
/// by the main thread (checked with the whole cluster; nothing changes
/// when refused). `policy add FILE` carries the file in `body`: its
/// NetworkPolicies are read and checked here, each problem at
/// `FILE:line:column`.
fn node_cmd(c: &Control, what: &str, rest: &str, body: &str) -> Result<String, String> {
    let w: Vec<&str> = rest.split_whitespace().collect();
    if w == ["list"] {
        return ask_node(
            c,
            match what {
                "pod" => NodeRequest::PodList,
                "policy" => NodeRequest::PolicyList,
                _ => NodeRequest::HostSubnetList,
            },
        );
    }
    if let ("policy", ["add", file]) = (what, &w[..]) {
        let ps = config::load::network_policies(file, body)
            .map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))?;
        let cmd = format!("policy add {file}");
        return ask_node(c, NodeRequest::Edit(cmd, Box::new(crate::state::Edit::AddPolicies(ps)))).map(|m| m + "\n");
    }
    let cmd = format!("{what} {}", w.join(" "));
    let e = parse_edit(what, &w).map_err(|e| format!("ctl {cmd}: {e}"))?;
    ask_node(c, NodeRequest::Edit(cmd, Box::new(e))).map(|m| m + "\n")
}

/// What `sdnfwd ctl help` prints (also without a running node).
pub const HELP: &str = "\
Commands (sdnfwd ctl [--socket PATH] COMMAND):
  show                                  node, VTEP, loops; each port with its pod; port counters
  dump-flows [table=N]                  the rules, as ovs-ofctl dump-flows (live counters)
  dump-tables | dump-ports | dump-megaflows
  add-flow FLOW | add-flows FILE        FILE `-` for stdin; one bundle: a bad line changes nothing
  replace-flows FILE                    only what differs changes
  mod-flows [--strict] FLOW | del-flows [--strict] [MATCH]
  trace FLOW [--ct-next FLAGS]...       ofproto/trace on the live tables; each recirculation resumes
                                        with the node's tracker's verdict (unchanged by the trace),
                                        or with --ct-next's states
  dump-groups [GROUP_ID] | dump-group-stats [GROUP_ID]
  add-group GROUP | mod-group GROUP | del-groups [group_id=N] | add-groups FILE
  dump-conntrack [-s] [zone=N]          the tracker's connections, as dpctl/dump-conntrack
  flush-conntrack [zone=N]              remove connections (all, or one zone's)
  ct-stats [verbose] [zone=N]           connections by protocol (dpctl/ct-stats-show) and the
                                        tracker's counters
  ipf-get-status [-m]                   IPv4 reassembly's settings and counters, with -m its
                                        fragment lists (dpctl/ipf-get-status)
  pmd-stats | pmd-stats-clear
  pod list | pod add NS/NAME IP VETH OFPORT | pod del NS/NAME
  hostsubnet list | hostsubnet add NAME HOSTIP SUBNET | hostsubnet del NAME
  policy list | policy add FILE | policy del NS/NAME
                                        NetworkPolicies (networking.k8s.io/v1 YAML or JSON, `-` for
                                        stdin): only the affected namespaces' flows, one bundle; in
                                        effect for the next connection once the command returns
  reload                                re-read the config file (as SIGHUP), keeping ctl's pods,
                                        HostSubnets and policies; prints the changes applied, or why
                                        nothing was
  help                                  this list
";

/// A read-only query answered with text.
type Query = Box<dyn FnOnce(&SlowPath) -> String + Send>;

fn query(c: &Control, q: Query) -> Result<String, String> {
    on_slow_path(c, move |s| q(s))
}

fn flow_mods(c: &Control, cmds: Vec<FlowCommand>) -> Result<String, String> {
    let n = cmds.len();
    ask(c, |tx| Command::FlowMods(cmds, tx))?.map_err(|e| format!("rejected, nothing changed: {e}"))?;
    Ok(format!("{n} flow command(s) applied\n"))
}

fn dump_ports(c: &Control) -> Result<String, String> {
    Ok(port_dumps(c)?
        .into_iter()
        .map(|(i, ofport, name, pc, detail)| {
            format!(
                "  port {ofport:>3}: {name} (loop {i})\n           rx pkts={} bytes={}\n           tx pkts={} bytes={}\n           {detail}\n",
                pc.rx_packets, pc.rx_bytes, pc.tx_packets, pc.tx_bytes
            )
        })
        .collect())
}

/// Answers one request.
pub fn handle(c: &Control, line: &str, body: &str) -> Result<String, String> {
    let line = line.trim();
    let (cmd, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let strict = rest.starts_with("--strict");
    let arg = rest.trim_start_matches("--strict").trim();
    let loc = |e: config::ParseError| e.in_file("<request>").to_string();
    match cmd {
        "dump-flows" => {
            let table = match arg.strip_prefix("table=") {
                Some(t) => Some(t.parse::<u8>().map_err(|e| format!("table={t}: {e}"))?),
                None if arg.is_empty() => None,
                None => return Err(format!("dump-flows: unexpected `{arg}` (table=N)")),
            };
            query(c, Box::new(move |s| s.ofproto.rules(table).iter().map(|r| r.to_dump_line() + "\n").collect()))
        }
        "add-flow" => flow_mods(c, vec![FlowCommand::Add(parse_flow_line(arg, LineKind::Add).map_err(loc)?)]),
        "add-flows" => {
            let file = if arg.is_empty() { "<request>" } else { arg };
            let cmds = parse_flow_file(body).map_err(|e| e.in_file(file).to_string())?;
            flow_mods(c, cmds.into_iter().map(|(_, c)| c).collect())
        }
        "replace-flows" => {
            let file = if arg.is_empty() { "<request>" } else { arg };
            let mut specs = Vec::new();
            for (line, cmd) in parse_flow_file(body).map_err(|e| e.in_file(file).to_string())? {
                match cmd {
                    FlowCommand::Add(s) => specs.push(s),
                    _ => return Err(format!("{file}:{line}:1: replace-flows takes flows to add only")),
                }
            }
            let n = ask(c, |tx| Command::ReplaceFlows(specs, tx))?
                .map_err(|e| format!("rejected, nothing changed: {e}"))?;
            Ok(format!("{n} flow command(s) applied\n"))
        }
        "mod-flows" => {
            let spec = parse_flow_line(arg, LineKind::Match).map_err(loc)?;
            flow_mods(c, vec![FlowCommand::Modify { strict, spec }])
        }
        "del-flows" => {
            let spec = parse_flow_line(arg, LineKind::Match).map_err(loc)?;
            flow_mods(c, vec![FlowCommand::Delete { strict, spec }])
        }
        "dump-megaflows" => query(c, Box::new(|s| s.dump_megaflows())),
        "hostsubnet" | "pod" | "policy" => node_cmd(c, cmd, rest, body),
        "reload" => ask_node(c, NodeRequest::Reload),
        "help" => Ok(HELP.to_string()),
        "trace" => {
            // `trace FLOW [--ct-next FLAGS]...`: without --ct-next, each
            // recirculation's verdict is the node's tracker's.
            let mut words = arg.split_whitespace();
            let (mut flow_text, mut ct_next) = (Vec::new(), Vec::new());
            while let Some(w) = words.next() {
                if w == "--ct-next" {
                    let f = words.next().ok_or("--ct-next needs FLAGS (trk,est,...)")?;
                    ct_next.push(slowpath::trace::parse_ct_flags(f).map_err(|e| format!("--ct-next {f}: {e}"))?);
                } else {
                    flow_text.push(w);
                }
            }
            let m = parse_trace_flow(&flow_text.join(" ")).map_err(loc)?;
            trace(c, OfFlow::from_match(&m).0, ct_next, "br0")
        }
        "pmd-stats" => {
            let b = c.baselines.lock().unwrap_or_else(|p| p.into_inner());
            let loops: String =
                c.stats.iter().enumerate().map(|(i, (core, s))| s.show_since(Some(*core), &b[i])).collect();
            Ok(loops + &ct_counters(&c.ct.stats()))
        }
        "dump-conntrack" | "flush-conntrack" => conntrack_cmd(c, cmd, rest),
        "ct-stats" => Ok(conntrack_cmd(c, cmd, rest)? + &ct_counters(&c.ct.stats())),
        "ipf-get-status" => match rest.trim() {
            "" => Ok(c.ct.ipf_show(false)),
            "-m" | "--more" => Ok(c.ct.ipf_show(true)),
            w => Err(format!("`{w}`: ipf-get-status takes -m alone")),
        },
        "dump-groups" | "dump-group-stats" => {
            let id = match rest {
                "" | "all" => None,
                r => Some(parse_group_id(r)?),
            };
            let stats = cmd == "dump-group-stats";
            query(
                c,
                Box::new(move |s| {
                    let now = std::time::Instant::now();
                    let mut out = String::new();
                    for g in s.ofproto.group_stats().into_iter().filter(|g| id.is_none_or(|i| i == g.spec.group_id)) {
                        if stats {
                            out += &format!(
                                " group_id={},duration={:.3}s,ref_count={},packet_count={},byte_count={}\n",
                                g.spec.group_id,
                                now.duration_since(g.created).as_secs_f64(),
                                g.ref_count,
                                g.n_packets,
                                g.n_bytes
                            );
                        } else {
                            out += &format!("{}\n", g.spec.to_dump_line());
                        }
                    }
                    out
                }),
            )
        }
        "add-group" | "mod-group" | "del-groups" => {
            let kind = match cmd {
                "add-group" => GroupLineKind::Add,
                "mod-group" => GroupLineKind::Modify,
                _ => GroupLineKind::Delete,
            };
            flow_mods(c, vec![FlowCommand::Group(parse_group_line(rest, kind).map_err(loc)?)])
        }
        "add-groups" => {
            let cmds = parse_group_file(body).map_err(|e| e.in_file(rest).to_string())?;
            flow_mods(c, cmds.into_iter().map(|(_, g)| FlowCommand::Group(g)).collect())
        }
        "pmd-stats-clear" => {
            clear_pmd_stats(c);
            Ok(String::new())
        }
        "dump-tables" => query(
            c,
            Box::new(|s| {
                s.ofproto
                    .table_stats()
                    .iter()
                    .map(|(t, n, st)| {
                        let dropped: u64 = s.table_drops.iter().filter(|((x, _), _)| x == t).map(|(_, n)| n).sum();
                        let matched: u64 = s
                            .ofproto
                            .rules(Some(*t))
                            .iter()
                            .map(|r| r.n_packets.load(std::sync::atomic::Ordering::Relaxed))
                            .sum();
                        format!("  table {t}: active={n} subtables={st} matched={matched} dropped={dropped}\n")
                    })
                    .collect()
            }),
        ),
        "dump-ports" => dump_ports(c),
        "show" => Ok(format!("{}\n{}{}", c.header, ask_node(c, NodeRequest::Ports)?, dump_ports(c)?)),
        "" => Err("empty request".into()),
        other => Err(format!(
            "unknown command `{other}` (dump-flows, dump-tables, add-flow, add-flows, replace-flows, mod-flows, \
             del-flows, dump-megaflows, trace, dump-groups, dump-group-stats, add-group, mod-group, del-groups, \
             add-groups, dump-conntrack, flush-conntrack, ct-stats, ipf-get-status, pmd-stats, pmd-stats-clear, \
             dump-ports, show, hostsubnet, pod, policy, reload, help)"
        )),
    }
}

/// A group id as dump-groups takes it (`7`, `group_id=7`).
fn parse_group_id(s: &str) -> Result<u32, String> {
    let v = s.trim().trim_start_matches("group_id=");
    let n = if let Some(h) = v.strip_prefix("0x") { u32::from_str_radix(h, 16).ok() } else { v.parse().ok() };
    n.filter(|n| *n <= 0xffff_ff00).ok_or_else(|| format!("`{s}` is not a group id (0 to 4294967040)"))
}

/// `ofproto/trace` of `flow` on the live tables, on bridge `bridge`:
/// without `ct_next`, each recirculation resumes with the node's
/// tracker's verdict (the tracker unchanged), else with those states.
pub(crate) fn trace(c: &Control, flow: OfFlow, ct_next: Vec<u64>, bridge: &str) -> Result<String, String> {
    let ct = c.ct.clone();
    let bridge = bridge.to_string();
    query(
        c,
        Box::new(move |s| {
            if ct_next.is_empty() {
                let mut live = LiveCt::new(&ct, fastpath::clock::now_ms());
                report_passes_with(&s.ofproto, &flow, &mut live, &bridge).0
            } else {
                report_passes_with(&s.ofproto, &flow, &mut CtNext::new(&ct_next), &bridge).0
            }
        }),
    )
}

/// Counts every poll loop's statistics from now (`pmd-stats-clear`).
pub(crate) fn clear_pmd_stats(c: &Control) {
    let mut b = c.baselines.lock().unwrap_or_else(|p| p.into_inner());
    *b = c.stats.iter().map(|(_, s)| s.baseline()).collect();
}

/// `zone=N` of a conntrack command.
fn parse_zone(w: &str) -> Result<u16, String> {
    let v = w.strip_prefix("zone=").ok_or_else(|| format!("`{w}`: expected zone=N"))?;
    v.parse().map_err(|_| format!("`{w}`: a zone is 0 to 65535"))
}

/// `dump-conntrack [-s] [zone=N]`, `flush-conntrack [zone=N]` and
/// `ct-stats [verbose] [zone=N]` (as `ovs-appctl dpctl/ct-stats-show`
/// prints it), on the tracker itself (the poll loops go on meanwhile).
pub(crate) fn conntrack_cmd(c: &Control, cmd: &str, rest: &str) -> Result<String, String> {
    let (mut zone, mut stats, mut verbose) = (None, false, false);
    for w in rest.split_whitespace() {
        match (cmd, w) {
            ("dump-conntrack", "-s" | "--statistics") => stats = true,
            ("ct-stats", "verbose" | "-m" | "--more") => verbose = true,
            (_, w) => zone = Some(parse_zone(w)?),
        }
    }
    let now = fastpath::clock::now_ms();
    Ok(match cmd {
        "dump-conntrack" => c.ct.dump_with(zone, now, stats).into_iter().map(|l| l + "\n").collect(),
        "flush-conntrack" => {
            c.ct.flush(zone);
            String::new()
        }
        _ => c.ct.stats_show(zone, now, verbose),
    })
}

/// The tracker's counters (pmd-stats, ct-stats and a node's exit).
pub fn ct_counters(s: &fastpath::conntrack::CtStats) -> String {
    format!(
        "conntrack:\n  connections: {}\n  created: {}\n  expired: {}\n  flushed: {}\n  refused, table full: {}\n  \
         invalid packets: {}\n  fragments: {}\n  NAT without a free tuple: {}\n  adopted from the host: {}\n",
        s.n_conns,
        s.n_created,
        s.n_expired,
        s.n_flushed,
        s.n_full,
        s.n_invalid,
        s.n_fragments,
        s.n_nat_exhausted,
        s.adopted
    )
}

/// Serves the socket until the process ends (one request at a time).
pub fn serve(listener: UnixListener, c: Control) {
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut text = String::new();
        if BufReader::new(&s).read_to_string(&mut text).is_err() {
            continue;
        }
        let (line, body) = text.split_once('\n').unwrap_or((&text, ""));
        logging::log(Level::Debug, &format!("ctl request: {line} ({} bytes of body)", body.len()));
        let reply = match handle(&c, line, body) {
            Ok(t) => format!("OK\n{t}"),
            Err(e) => {
                logging::log(Level::Debug, &format!("ctl {line}: refused: {}", e.lines().next().unwrap_or("")));
                format!("ERROR: {e}\n")
            }
        };
        let _ = s.write_all(reply.as_bytes());
    }
}

/// A label value as the text exposition format escapes it.
fn label_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The Prometheus text exposition of the node's counters.
pub fn metrics(c: &Control) -> Result<String, String> {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering::Relaxed;
    let mut m = String::new();
    let family = |m: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(m, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(&mut m, "sdnfwd_port_packets_total", "counter", "Frames per port and direction.");
    let mut bytes = String::new();
    for (i, ofport, name, pc, _) in port_dumps(c)? {
        let l = format!("port=\"{ofport}\",name=\"{}\",pmd=\"{i}\"", label_value(&name));
        let _ = writeln!(m, "sdnfwd_port_packets_total{{{l},dir=\"rx\"}} {}", pc.rx_packets);
        let _ = writeln!(m, "sdnfwd_port_packets_total{{{l},dir=\"tx\"}} {}", pc.tx_packets);
        let _ = writeln!(bytes, "sdnfwd_port_bytes_total{{{l},dir=\"rx\"}} {}", pc.rx_bytes);
        let _ = writeln!(bytes, "sdnfwd_port_bytes_total{{{l},dir=\"tx\"}} {}", pc.tx_bytes);
    }
    family(&mut m, "sdnfwd_port_bytes_total", "counter", "Bytes per port and direction.");
    m += &bytes;
    type Counter = fn(&PmdStats) -> u64;
    let per_core: [(&str, &str, Counter); 7] = [
        ("sdnfwd_pmd_packets_total", "Frames received by the poll loop.", |s| s.packets.load(Relaxed)),
        ("sdnfwd_pmd_emc_hits_total", "Exact-match cache hits.", |s| s.emc_hits.load(Relaxed)),
        ("sdnfwd_pmd_megaflow_hits_total", "Megaflow classifier hits.", |s| s.megaflow_hits.load(Relaxed)),
        ("sdnfwd_pmd_misses_total", "Frames that found no megaflow.", |s| s.misses.load(Relaxed)),
        ("sdnfwd_pmd_upcalls_total", "Upcalls sent to the slow path.", |s| s.upcalls.load(Relaxed)),
        ("sdnfwd_pmd_recirculations_total", "Packets recirculated (after ct).", |s| s.recirculations.load(Relaxed)),
        ("sdnfwd_pmd_busy_ns_total", "Nanoseconds spent in busy iterations.", |s| s.busy_ns.load(Relaxed)),
    ];
    for (name, help, f) in per_core {
        family(&mut m, name, "counter", help);
        for (core, s) in &c.stats {
            let _ = writeln!(m, "{name}{{core=\"{core}\"}} {}", f(s));
        }
    }
    family(&mut m, "sdnfwd_pmd_ns_per_packet", "gauge", "Processing time per packet since start.");
    for (core, s) in &c.stats {
        let pk = s.packets.load(Relaxed).max(1) as f64;
        let _ = writeln!(m, "sdnfwd_pmd_ns_per_packet{{core=\"{core}\"}} {:.1}", s.busy_ns.load(Relaxed) as f64 / pk);
    }
    family(&mut m, "sdnfwd_pmd_drops_total", "counter", "Frames the datapath dropped, by reason.");
    for (core, s) in &c.stats {
        for r in DatapathDrop::ALL {
            let _ = writeln!(m, "sdnfwd_pmd_drops_total{{core=\"{core}\",reason=\"{}\"}} {}", r.name(), s.dropped(r));
        }
    }
    let ct = c.ct.stats();
    family(&mut m, "sdnfwd_conntrack_connections", "gauge", "Connections in the tracker.");
    let _ = writeln!(m, "sdnfwd_conntrack_connections {}", ct.n_conns);
    let ct_counters: [(&str, &str, u64); 8] = [
        ("sdnfwd_conntrack_created_total", "Connections created.", ct.n_created),
        ("sdnfwd_conntrack_expired_total", "Connections removed expired.", ct.n_expired),
        ("sdnfwd_conntrack_flushed_total", "Connections removed by a flush.", ct.n_flushed),
        ("sdnfwd_conntrack_full_total", "Commits refused: the table was full.", ct.n_full),
        ("sdnfwd_conntrack_invalid_total", "Packets marked +inv.", ct.n_invalid),
        ("sdnfwd_conntrack_fragments_total", "IPv4 fragments seen by the tracker.", ct.n_fragments),
        ("sdnfwd_conntrack_nat_exhausted_total", "Commits refused: NAT found no free tuple.", ct.n_nat_exhausted),
        ("sdnfwd_conntrack_adopted_total", "Destination translations adopted from the host's tracker.", ct.adopted),
    ];
    for (name, help, v) in ct_counters {
        family(&mut m, name, "counter", help);
        let _ = writeln!(m, "{name} {v}");
    }
    family(&mut m, "sdnfwd_upcall_queue_depth", "gauge", "Misses waiting for the slow path.");
    let _ = writeln!(m, "sdnfwd_upcall_queue_depth {}", (c.upcall_depth)());
    m += &query(
        c,
        Box::new(|s| {
            let mut t = String::new();
            let _ = writeln!(t, "# HELP sdnfwd_megaflows Installed megaflows.\n# TYPE sdnfwd_megaflows gauge");
            let _ = writeln!(t, "sdnfwd_megaflows {}", s.n_megaflows());
            let _ = writeln!(
                t,
                "# HELP sdnfwd_table_drop_packets_total Packets the pipeline dropped, by the table where it ended and why \
                 (drop-rule: a rule without actions; no-match: no rule matched; no-output: only outputs that go nowhere).\n\
                 # TYPE sdnfwd_table_drop_packets_total counter"
            );
            for ((table, why), n) in &s.table_drops {
                let _ = writeln!(t, "sdnfwd_table_drop_packets_total{{table=\"{table}\",reason=\"{why}\"}} {n}");
            }
            // Each family's HELP and TYPE right before its samples (the
            // exposition format keeps a family's lines together).
            let _ = writeln!(
                t,
                "# HELP sdnfwd_rule_drop_packets_total Packets dropped by an OpenFlow rule (no actions).\n\
                 # TYPE sdnfwd_rule_drop_packets_total counter"
            );
            for r in s.ofproto.rules(None).iter().filter(|r| r.spec.actions.is_empty()) {
                let line = r.spec.to_dump_line(None);
                let what = label_value(line.trim_start().trim_end_matches(" actions=drop"));
                let _ = writeln!(
                    t,
                    "sdnfwd_rule_drop_packets_total{{table=\"{}\",priority=\"{}\",rule=\"{what}\"}} {}",
                    r.spec.table,
                    r.spec.priority,
                    r.n_packets.load(Relaxed)
                );
            }
            t
        }),
    )?;
    Ok(m)
}

/// Serves `GET /metrics` over HTTP/1.0 on `listener`.
pub fn serve_metrics(listener: std::net::TcpListener, c: Control) {
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        // The request line, then the headers up to the empty line: all of
        // it is read before answering (unread bytes at close would reset
        // the connection under the client).
        let mut r = BufReader::new(&s);
        let mut line = String::new();
        if r.read_line(&mut line).is_err() {
            continue;
        }
        let mut h = String::new();
        while r.read_line(&mut h).is_ok_and(|n| n > 0) && h.trim_end() != "" {
            h.clear();
        }
        let reply = if line.starts_with("GET /metrics") {
            match metrics(&c) {
                Ok(body) => format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ),
                Err(e) => format!("HTTP/1.0 503 Service Unavailable\r\nContent-Length: {}\r\n\r\n{e}", e.len()),
            }
        } else {
            "HTTP/1.0 404 Not Found\r\nContent-Length: 10\r\n\r\nnot found\n".to_string()
        };
        let _ = s.write_all(reply.as_bytes());
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
}

/// Binds the control socket (removing a stale one, refusing a live one).
pub fn bind(path: &str) -> Result<UnixListener, String> {
    let p = std::path::Path::new(path);
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    if p.exists() {
        if UnixStream::connect(p).is_ok() {
            return Err(format!("{path}: another sdnfwd answers there"));
        }
        let _ = std::fs::remove_file(p);
    }
    UnixListener::bind(p).map_err(|e| format!("{path}: {e}"))
}
