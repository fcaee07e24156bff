//! `sdnfwd demo`: the embedded default cluster (four nodes, multitenant),
//! checked scenario by scenario, one OK/FAIL line each.
//!
//! First the tables: packets translated through the rendered tables of the
//! node(s) they cross (services, multicast, egress IPs and firewall, which
//! need no kernel). Then the real thing, in network namespaces it creates
//! and removes (root): node-d and node-b each run `sdnfwd run` (AF_XDP on
//! pod veths, tun0 and the uplink), node-c is the Linux kernel's VXLAN
//! device, pods are namespaces with kernel stacks; ping and TCP where
//! openshift-sdn allows them, isolation where it does not, a UDP burst,
//! then each node's dump-flows counters and pmd-stats. Then OpenShift
//! 4.13's NetworkPolicy rules on real kernels (the embedded NetworkPolicy
//! cluster: node-d and node-b with `--sdn-version 4.13`, three
//! namespaces; sdnfwd::netpol::netpol_checks): TCP a policy admits and
//! TCP it denies (counted by the table 80 and 27 drop rules), a service
//! through tun0 with kube-proxy's iptables rules, `ctl policy add/del` in
//! effect for the next connection. Everything is torn down on success,
//! failure or Ctrl-C. Exit 0 only if every line is OK.
//!
//! `sdnfwd demo --vswitchd` runs instead the drop-in for ovs-vswitchd
//! (sdnfwd::vswitchd_lab::dropin_checks, as tests/vswitchd_e2e.rs): Open
//! vSwitch's own database and tools drive `sdnfwd vswitchd` on node-d and
//! node-b as the OpenShift SDN daemon drives them.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use sdnfwd::netpol::{netpol_checks, netpol_topology};
use sdnfwd::topology::{default_cluster_checks, Topology};

use config::ofctl::{parse_trace_flow, IPPROTO_TCP, IPPROTO_UDP};
use config::yaml::Cluster;
use slowpath::{xlate, OfFlow};

use super::common::node_tables;
use super::trace::{follow, SRC_PORT};

/// `sdnfwd demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Only the table checks (no namespaces, no root needed).
    #[arg(long)]
    pub tables_only: bool,
    /// The openshift-sdn rules the multitenant part's nodes run: 3.11 or
    /// 4.13 (default 3.11). Its in-memory table checks stay 3.11's; the
    /// NetworkPolicy part is 4.13's either way.
    #[arg(long, value_name = "VERSION", value_parser = super::common::parse_sdn_version)]
    pub sdn_version: Option<config::yaml::SdnVersion>,
    /// Only the drop-in for ovs-vswitchd: node-d and node-b run Debian's
    /// ovsdb-server and `sdnfwd vswitchd`, set up by the OpenShift SDN
    /// daemon's own ovs-vsctl, ovs-ofctl and ovs-appctl commands (root,
    /// openvswitch-switch).
    #[arg(long, conflicts_with_all = ["tables_only", "sdn_version"])]
    pub vswitchd: bool,
}

/// Prints, ignoring a closed stdout (`sdnfwd demo | head`): the demo must
/// still tear down what it built.
fn say(s: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{s}");
}

fn line(ok: bool, what: &str, detail: &str) {
    say(&format!(
        "{} {what}{}",
        if ok { "OK  " } else { "FAIL" },
        if detail.is_empty() { String::new() } else { format!(" ({detail})") }
    ));
}

/// Before a demo builds namespaces tagged `tag`: root (else `no_root`),
/// what an interrupted earlier one left removed, SIGINT and SIGTERM caught
/// (the flag they set).
fn lab_start(tag: &str, no_root: &str) -> Result<Arc<AtomicBool>, String> {
    if !sdnfwd::netns::is_root() {
        return Err(no_root.into());
    }
    let swept = sdnfwd::netns::Lab::sweep_stale(tag);
    if swept > 0 {
        say(&format!("(removed {swept} namespaces an interrupted earlier demo left)"));
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    for s in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(s, interrupted.clone()).map_err(|e| format!("signal handler: {e}"))?;
    }
    Ok(interrupted)
}

pub fn demo(a: DemoArgs) -> Result<ExitCode, String> {
    let t0 = Instant::now();
    if a.vswitchd {
        return vswitchd_demo(t0);
    }
    say("sdnfwd demo: OpenShift SDN multitenant pipeline, 4 nodes, node-d and node-b with pods; then OpenShift \
         4.13's NetworkPolicy rules\n");
    say("== the tables (rendered for node-d and node-b, translated in memory)");
    let mut all_ok = tables()?;
    if a.tables_only {
        return Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    say(&format!(
        "\n== the datapath: node-d and node-b run sdnfwd (AF_XDP) with {}'s rules, node-c is a kernel VXLAN node",
        a.sdn_version.unwrap_or_default()
    ));
    let interrupted = lab_start(
        "sdd",
        "sdnfwd demo: the datapath part needs root (network namespaces, AF_XDP); `sdnfwd demo --tables-only` runs \
         without",
    )?;
    let bin = std::env::current_exe().map_err(|e| format!("sdnfwd binary: {e}"))?;
    let mut t = Topology::build("sdd", config::yaml::DEFAULT_CLUSTER, &["node-d", "node-b"], Some("node-c"), &bin)
        .map_err(|e| format!("sdnfwd demo: building the namespaces: {e}"))?;
    let maxsleep = ["--pmd-maxsleep-us", "200"];
    let [c0, c1] = sdnfwd::netns::two_cores("demo").map(|c| c.to_string());
    for (n, core) in [("node-d", &c0), ("node-b", &c1)] {
        let mut args = vec!["--cores", core.as_str()];
        args.extend(maxsleep);
        let version = a.sdn_version.map(|v| v.to_string());
        if let Some(v) = &version {
            args.extend(["--sdn-version", v.as_str()]);
        }
        if let Err(e) = t.start(n, &args) {
            line(false, &format!("{n}: sdnfwd run starts"), &e);
            return Ok(ExitCode::from(1));
        }
        line(true, &format!("{n}: sdnfwd run starts (poll loop on core {core})"), "");
    }
    let stop = interrupted.clone();
    let (checks, exits) =
        default_cluster_checks(&mut t, &|| stop.load(Ordering::Relaxed), &mut |c| line(c.ok, &c.what, &c.detail))?;
    all_ok &= checks.iter().all(|c| c.ok);
    if interrupted.load(Ordering::Relaxed) {
        say("\ninterrupted: tearing down");
        drop(t);
        return Ok(ExitCode::from(130));
    }
    for (n, e) in &exits {
        say(&format!("\n== {n}: final pmd-stats, ports and dump-flows counters (rules that matched)"));
        say(&e.stdout);
    }
    drop(t);
    all_ok &= netpol_section(&bin, &interrupted)?;
    Ok(finish(&interrupted, "namespaces, links and XDP programs", t0, all_ok))
}

/// `sdnfwd demo --vswitchd`: the drop-in for ovs-vswitchd
/// (sdnfwd::vswitchd_lab), one line per check.
fn vswitchd_demo(t0: Instant) -> Result<ExitCode, String> {
    say("sdnfwd demo --vswitchd: sdnfwd in place of ovs-vswitchd. node-d and node-b each run Debian's ovsdb-server \
         and `sdnfwd vswitchd` (node-b --detach, as ovs-ctl starts it); node-c is a kernel VXLAN node. The OpenShift \
         SDN daemon's commands set them up: ovs-vsctl (br0, vxlan0, tun0, a port per pod), ip (tun0), ovs-ofctl \
         (the rendered flows in one bundle, table 253), then ovs-appctl\n");
    let interrupted = lab_start("sdw", "sdnfwd demo --vswitchd needs root (network namespaces, AF_XDP)")?;
    sdnfwd::vswitchd_lab::ovs_installed().map_err(|e| format!("sdnfwd demo --vswitchd: {e}"))?;
    let bin = std::env::current_exe().map_err(|e| format!("sdnfwd binary: {e}"))?;
    let mut d = match sdnfwd::vswitchd_lab::DropIn::build("sdw", &bin) {
        Ok(d) => d,
        Err(e) => {
            line(false, "node-d and node-b: ovsdb-server and sdnfwd vswitchd start", &e);
            say("demo: FAILED");
            return Ok(ExitCode::from(1));
        }
    };
    for n in sdnfwd::vswitchd_lab::NODES.iter().filter_map(|n| d.nodes.get(*n)) {
        line(
            true,
            &format!(
                "{}: ovsdb-server and sdnfwd vswitchd start (OVS_RUNDIR={}, pmd-cpu-mask core {})",
                n.name,
                n.dir.display(),
                n.core
            ),
            "",
        );
    }
    let stop = interrupted.clone();
    let r = sdnfwd::vswitchd_lab::dropin_checks(&mut d, &|| stop.load(Ordering::Relaxed), &mut |c| {
        line(c.ok, &c.what, &c.detail)
    });
    let all_ok = match r {
        Ok(checks) => checks.iter().all(|c| c.ok),
        Err(e) => {
            line(false, "the drop-in scenario", &e);
            false
        }
    };
    if !all_ok {
        say(&format!("\n== the vswitchds' logs\n{}", d.logs()));
    }
    drop(d);
    Ok(finish(&interrupted, "namespaces, databases, tun0 and XDP programs", t0, all_ok))
}

/// The demo's last lines once `removed` is torn down, and its exit code
/// (130 when interrupted).
fn finish(interrupted: &AtomicBool, removed: &str, t0: Instant, all_ok: bool) -> ExitCode {
    if interrupted.load(Ordering::Relaxed) {
        say("\ninterrupted: torn down");
        return ExitCode::from(130);
    }
    say(&format!("\n{removed} removed; {:.1} s", t0.elapsed().as_secs_f64()));
    say(if all_ok { "demo: all OK" } else { "demo: FAILED" });
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The 4.13 NetworkPolicy section on real kernels; true when every check
/// passed. Ends with the policy tables' counters of each node (the rules
/// of tables 27 and 80 that matched packets).
fn netpol_section(bin: &std::path::Path, interrupted: &Arc<AtomicBool>) -> Result<bool, String> {
    say("\n== OpenShift 4.13 NetworkPolicy: node-d and node-b run sdnfwd --sdn-version 4.13, networkpolicy plugin, \
         pods in project-a (web, db), project-b (api, team=frontend), project-c (cli)");
    say("   policies: project-a's web pods take TCP 8080 from team=frontend only; project-c may send inside the \
         cluster network except to db-1");
    let swept = sdnfwd::netns::Lab::sweep_stale("sdq");
    if swept > 0 {
        say(&format!("(removed {swept} namespaces an interrupted earlier demo left)"));
    }
    let mut t = match netpol_topology("sdq", bin) {
        Ok(t) => t,
        Err(e) => {
            line(false, "node-d and node-b: sdnfwd run --sdn-version 4.13 starts", &e);
            return Ok(false);
        }
    };
    line(true, "node-d and node-b: sdnfwd run --sdn-version 4.13 starts", "");
    let stop = interrupted.clone();
    let (checks, exits) =
        netpol_checks(&mut t, &|| stop.load(Ordering::Relaxed), &mut |c| line(c.ok, &c.what, &c.detail))?;
    for (n, e) in &exits {
        say(&format!("\n== {n}: the policy tables' counters (rules of tables 27 and 80 that matched)"));
        for l in e.stdout.lines().filter(|l| l.contains(" table=27,") || l.contains(" table=80,")) {
            say(l);
        }
    }
    drop(t);
    Ok(checks.iter().all(|c| c.ok))
}

/// The table checks; true when all pass.
fn tables() -> Result<bool, String> {
    let c = Cluster::default_cluster();
    let src = "<embedded default cluster>";
    let mut tables = HashMap::new();
    let mut all_ok = true;
    let mut report = |ok: bool, what: &str, detail: String| {
        all_ok &= ok;
        line(ok, what, &detail);
    };
    let pods = [
        ("project-a/web-1", "project-a/db-1", IPPROTO_TCP, 5432, true, "pod to pod, same node, same tenant"),
        (
            "project-a/web-1",
            "project-a/web-2",
            IPPROTO_TCP,
            8080,
            true,
            "pod to pod across nodes over VXLAN (VNI 11235)",
        ),
        (
            "project-b/api-1",
            "project-a/web-2",
            IPPROTO_TCP,
            8080,
            false,
            "tenant isolation: project-b cannot reach project-a",
        ),
        ("default/router-1", "project-a/web-2", IPPROTO_TCP, 8080, true, "VNID 0 (default) reaches every tenant"),
        ("project-b/api-1", "project-b/api-2", IPPROTO_UDP, 5353, true, "UDP across nodes within project-b"),
    ];
    for (s, d, proto, port, expect, what) in pods {
        let sp = c.find_pod(s).ok_or("default cluster lacks a pod")?;
        let dp = c.find_pod(d).ok_or("default cluster lacks a pod")?;
        let r = follow(&c, &mut tables, sp, dp, (proto, SRC_PORT, port), src)?;
        let path: Vec<String> = r.hops.iter().map(|h| h.node.clone()).collect();
        let detail = if r.ok { format!("{s} -> {d} via {}", path.join(" -> ")) } else { r.why.clone() };
        report(r.ok == expect, what, detail);
    }
    let node_d = node_tables(&c, "node-d", None, src)?;
    let flows = [
        (
            "in_port=4,tcp,nw_src=10.131.0.3,nw_dst=172.30.12.34,tcp_dst=8080",
            Some("2"),
            "service in own tenant goes to tun0 (kube-proxy)",
        ),
        (
            "in_port=6,tcp,nw_src=10.131.0.5,nw_dst=172.30.12.34,tcp_dst=8080",
            None,
            "service of another tenant is dropped in table 80",
        ),
        (
            "in_port=4,udp,nw_src=10.131.0.3,nw_dst=224.1.2.3,udp_dst=5000",
            Some("1,1,1,5"),
            "multicast replicated to 3 remote nodes and db-1",
        ),
        (
            "in_port=4,tcp,nw_src=10.131.0.3,nw_dst=8.8.8.8,tcp_dst=443",
            Some("1"),
            "egress IP hosted on node-b: tunnelled there",
        ),
        (
            "in_port=6,tcp,nw_src=10.131.0.5,nw_dst=172.16.5.5,tcp_dst=443",
            Some("2"),
            "egress firewall allows 172.16.0.0/16",
        ),
        ("in_port=6,tcp,nw_src=10.131.0.5,nw_dst=8.8.8.8,tcp_dst=443", None, "egress firewall denies the rest"),
        ("in_port=4,ip,nw_src=10.131.0.99,nw_dst=10.131.0.4", None, "spoofed source address dropped in table 20"),
        (
            "in_port=1,tun_id=0x2be3,tun_src=172.16.9.9,tun_dst=172.16.1.25,ip,nw_src=10.129.0.7,nw_dst=10.131.0.3",
            None,
            "VXLAN from an unknown node dropped in table 10",
        ),
        ("in_port=2,tcp,nw_src=10.131.0.1,nw_dst=10.131.0.5,tcp_dst=80", Some("6"), "host to pod through tun0"),
    ];
    for (f, expect, what) in flows {
        let m = parse_trace_flow(f).map_err(|e| e.to_string())?;
        let (flow, _) = OfFlow::from_match(&m);
        let x = xlate(&node_d, &flow, None);
        let got: Vec<String> = x.outputs.iter().map(|o| o.port.to_string()).collect();
        let ok = match expect {
            Some(e) => got.join(",") == e,
            None => x.drop.is_some(),
        };
        let detail = match x.drop {
            Some(d) => format!("dropped in table {} ({})", d.table, d.kind.as_str()),
            None => format!("out {}", slowpath::trace::fmt_dp_actions(&x)),
        };
        report(ok, what, detail);
    }
    say(&format!("node-d: {} flows in {} tables", node_d.n_rules(), node_d.table_stats().len()));
    Ok(all_ok)
}
