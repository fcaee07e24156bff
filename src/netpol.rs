//! The 4.13 NetworkPolicy scenario on real kernels: the embedded cluster
//! [`config::yaml::NETPOL_CLUSTER`] in network namespaces, node-d and
//! node-b each running `sdnfwd run --sdn-version 4.13` with the
//! networkpolicy plugin, pods in three namespaces. `sdnfwd demo` and
//! tests/netpol_e2e.rs run the same list of checks ([`netpol_checks`]).
//!
//! What is checked, each on the kernels' own TCP (a connection is allowed
//! when the echo comes back, denied when no handshake completes):
//! - project-a's policy admits TCP 8080 to its web pods from namespaces
//!   labelled team=frontend (project-b): allowed on one node and across
//!   nodes over VXLAN, and the other way (project-b has no policy);
//! - a disallowed port and a disallowed namespace (project-c) are dropped
//!   by table 80's `reg1=V, nw_dst=POD → drop` rule of the web pod, whose
//!   packet counter must grow;
//! - project-c's egress policy (the cluster network except db-1) drops
//!   what it sends to db-1 in its own node's table 27 (the catch-all drop:
//!   the policy selects every pod of the namespace), counted there, and
//!   lets the rest through;
//! - a pod reaches the service address through tun0, where iptables rules
//!   as kube-proxy's iptables mode writes them (KUBE-SERVICES → KUBE-SVC-*
//!   → KUBE-SEP-* DNAT) translate it to web-1, on one node and across
//!   nodes; the client's kernel completes the echo only if the replies
//!   come from the service address; policies apply after the translation
//!   (project-c through the service is still refused);
//! - `sdnfwd ctl policy add` refuses a malformed policy at
//!   `file:line:column` leaving dump-flows as it was; a policy added on
//!   both nodes (node-d from a YAML file, node-b as JSON on stdin) applies
//!   to the very next connection after the commands return (one SYN, no
//!   retransmission: each attempt waits less than the kernel's first
//!   retransmission), survives `ctl reload`, and `ctl policy del` lifts it
//!   for the next connection just as fast; a connection established
//!   before the policy is cut too (openshift-sdn 4.13 lets only replies,
//!   `ct_state=+rpl`, bypass the policy tables; there is no `+est`
//!   bypass).
//!
//! Ends with both nodes stopped (exit 0, XDP detached, tun0 removed).

use std::path::Path;

use crate::topology::{Check, Outcome, Topology};

/// The service of the scenario (project-a's `web`).
pub const SVC: &str = "172.30.12.34";
const WEB1: &str = "10.131.0.3";
const DB1: &str = "10.131.0.4";
const API1: &str = "10.131.0.5";
const WEB2: &str = "10.129.0.7";
const API2: &str = "10.129.0.8";

/// Table 80's drop of web-1 for a source no policy admits.
const WEB1_DROP: &str = "priority=100,ip,reg1=0x2be3,nw_dst=10.131.0.3 actions=drop";
/// Table 27's catch-all drop (project-c's egress policy selects all its
/// pods, so what it does not admit ends there).
const T27_DROP: &str = "table=27, n_packets=";

/// The policy the ctl check adds: nothing may reach project-b's pods.
const DENY_B: &str = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny-all
  namespace: project-b
spec:
  podSelector: {}
  policyTypes: [Ingress]
";

/// [`DENY_B`] as `oc get -o json` prints it.
const DENY_B_JSON: &str = r#"{
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "deny-all", "namespace": "project-b"},
    "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}
}
"#;

/// Builds the NetworkPolicy cluster's namespaces and starts node-d and
/// node-b with the 4.13 rules (poll loops on the two CPUs the process may
/// use, idle sleep up to 200 µs).
///
/// # Errors
/// A namespace, link or node that could not be set up.
pub fn netpol_topology(tag: &str, bin: &Path) -> Result<Topology, String> {
    let mut t = Topology::build(tag, config::yaml::NETPOL_CLUSTER, &["node-d", "node-b"], None, bin)?;
    let cores = crate::netns::two_cores("netpol scenario").map(|c| c.to_string());
    for (node, core) in ["node-d", "node-b"].iter().zip(&cores) {
        t.start(node, &["--cores", core, "--sdn-version", "4.13", "--pmd-maxsleep-us", "200"])?;
    }
    Ok(t)
}

/// The packets of the rule of `node`'s table `table` whose dump line
/// contains `what`.
fn rule_packets(t: &Topology, node: &str, table: u8, what: &str) -> Result<u64, String> {
    let dump = t.ctl(node, &["dump-flows", &format!("table={table}")])?;
    let l = dump
        .lines()
        .find(|l| l.contains(what) && (what != T27_DROP || l.contains(" priority=0 actions=drop")))
        .ok_or_else(|| format!("{node}: no rule `{what}` in table {table}:\n{dump}"))?;
    l.split("n_packets=")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("{node}: no n_packets in `{l}`"))
}

/// Waits (up to 1 s: counters are credited every 100 ms) for a rule's
/// counter to pass `before`; the count it reached.
fn counted_past(t: &Topology, node: &str, table: u8, what: &str, before: u64) -> Result<u64, String> {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let n = rule_packets(t, node, table, what)?;
        if n > before || std::time::Instant::now() > end {
            return Ok(n);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A TCP transfer of 2 MB that pauses half-way for 2 s: the sink's and
/// the sender's processes.
struct Established {
    sink: std::process::Child,
    send: std::process::Child,
}

impl Established {
    /// Starts the transfer from namespace `from` to `ip:port` in `to` and
    /// waits until the sender has paused (the connection is established
    /// and half the data is written).
    fn start(t: &Topology, from: &str, to: &str, ip: &str, port: u16) -> Result<Established, String> {
        use std::io::BufRead;
        let bin = t.bin().to_string_lossy().into_owned();
        let spawn = |ns: &str, args: &[&str]| {
            std::process::Command::new("ip")
                .args(["netns", "exec", ns, &bin])
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("{bin}: {e}"))
        };
        let line = |c: &mut std::process::Child| {
            let mut l = String::new();
            let _ = std::io::BufReader::new(c.stdout.as_mut().ok_or("no stdout")?).read_line(&mut l);
            Ok::<String, String>(l)
        };
        let listen = format!("0.0.0.0:{port}");
        let mut sink = spawn(to, &["netcheck", "tcp-sink", &listen, "--bytes", "2000000", "--timeout", "6"])?;
        line(&mut sink)?;
        let dst = format!("{ip}:{port}");
        let args = ["netcheck", "tcp-send", &dst, "--bytes", "2000000", "--timeout", "6"];
        let mut send = spawn(from, &[&args[..], &["--pause-at", "1000000", "--pause-ms", "2000"]].concat())?;
        let connected = line(&mut send)?;
        let paused = line(&mut send)?;
        if !paused.starts_with("paused at") {
            let _ = (sink.kill(), send.kill(), sink.wait(), send.wait());
            return Err(format!("the transfer did not get half-way: {connected} {paused}"));
        }
        Ok(Established { sink, send })
    }

    /// Waits for both ends: whether the sink received everything, and
    /// what it said.
    fn finish(self) -> Result<(bool, String), String> {
        let sink = self.sink.wait_with_output().map_err(|e| e.to_string())?;
        let _ = self.send.wait_with_output();
        let said = format!("{}{}", String::from_utf8_lossy(&sink.stdout), String::from_utf8_lossy(&sink.stderr));
        Ok((sink.status.success(), said.trim().replace('\n', "; ")))
    }
}

/// dump-flows of a node without the durations (which move on their own).
fn flows_now(t: &Topology, node: &str) -> Result<String, String> {
    Ok(t.ctl(node, &["dump-flows"])?
        .lines()
        .map(|l| match (l.find(" duration="), l.find("s, table=")) {
            (Some(a), Some(b)) if a < b => format!("{}{}\n", &l[..a], &l[b + 2..]),
            _ => format!("{l}\n"),
        })
        .collect())
}

/// The 4.13 NetworkPolicy checks on a topology from [`netpol_topology`]
/// (see the module doc), each reported as it completes; `interrupted`
/// stops early. Ends with both nodes stopped; returns the checks and their
/// exits.
///
/// # Errors
/// A pod or node the cluster lacks, a node that cannot be stopped.
pub fn netpol_checks(
    t: &mut Topology,
    interrupted: &dyn Fn() -> bool,
    report: &mut dyn FnMut(&Check),
) -> Result<Outcome, String> {
    let pod = |t: &Topology, id: &str| t.pod(id).map(str::to_string);
    let (web1, db1, api1, cli1) =
        (pod(t, "project-a/web-1")?, pod(t, "project-a/db-1")?, pod(t, "project-b/api-1")?, pod(t, "project-c/cli-1")?);
    let (web2, api2, cli2) = (pod(t, "project-a/web-2")?, pod(t, "project-b/api-2")?, pod(t, "project-c/cli-2")?);
    let mut checks: Vec<Check> = Vec::new();
    let mut add = |what: &str, ok: bool, detail: String, checks: &mut Vec<Check>| {
        let c = Check { what: what.to_string(), ok, detail };
        report(&c);
        checks.push(c);
    };
    // One attempt (one SYN) within the kernel's first retransmission time.
    let allowed = |from: &str, to: &str, ip: &str, port: u16| match t.tcp(from, to, ip, port) {
        Ok(()) => (true, String::new()),
        Err(e) => (false, e),
    };
    let refused = |from: &str, to: &str, ip: &str, port: u16| match t.tcp_with(from, to, ip, port, 1.0, 0.45) {
        Ok(()) => (false, "the connection was made".to_string()),
        Err(_) => (true, String::new()),
    };

    // Allowed by the policy, and the other way.
    let ok_probes: [(&str, &str, &str, &str, u16); 5] = [
        ("TCP admitted by the policy, one node (api-1 [project-b] → web-1:8080)", &api1, &web1, WEB1, 8080),
        ("TCP admitted by the policy across nodes over VXLAN (api-2 → web-1:8080)", &api2, &web1, WEB1, 8080),
        ("TCP admitted by the policy across nodes (api-1 → web-2:8080)", &api1, &web2, WEB2, 8080),
        ("TCP the other way, one node (web-1 → api-1:7000; project-b has no policy)", &web1, &api1, API1, 7000),
        ("TCP the other way across nodes (web-1 → api-2:7001)", &web1, &api2, API2, 7001),
    ];
    for (what, from, to, ip, port) in ok_probes {
        if interrupted() {
            return Ok((checks, Vec::new()));
        }
        let (ok, d) = allowed(from, to, ip, port);
        add(what, ok, d, &mut checks);
    }

    // Denied, and counted by the rule that dropped it.
    // (what, client, server, address, port) and the rule: (node, table, rule).
    type Probe<'a> = (&'a str, &'a str, &'a str, &'a str, u16);
    let denied: [(Probe, (&str, u8, &str)); 5] = [
        (
            ("disallowed port dropped in node-d's table 80 and counted (api-1 → web-1:9090)", &api1, &web1, WEB1, 9090),
            ("node-d", 80, WEB1_DROP),
        ),
        (
            (
                "disallowed namespace dropped in node-d's table 80 and counted (cli-1 [project-c] → web-1:8080)",
                &cli1,
                &web1,
                WEB1,
                8080,
            ),
            ("node-d", 80, WEB1_DROP),
        ),
        (
            (
                "disallowed namespace across nodes, dropped in node-d's table 80 (cli-2 → web-1:8080)",
                &cli2,
                &web1,
                WEB1,
                8080,
            ),
            ("node-d", 80, WEB1_DROP),
        ),
        (
            (
                "egress policy denies db-1: dropped in node-d's table 27 and counted (cli-1 → db-1:5432)",
                &cli1,
                &db1,
                DB1,
                5432,
            ),
            ("node-d", 27, T27_DROP),
        ),
        (
            ("egress policy across nodes: dropped in node-b's table 27 (cli-2 → db-1:5432)", &cli2, &db1, DB1, 5432),
            ("node-b", 27, T27_DROP),
        ),
    ];
    for ((what, from, to, ip, port), (node, table, rule)) in denied {
        if interrupted() {
            return Ok((checks, Vec::new()));
        }
        let r = rule_packets(t, node, table, rule).and_then(|before| {
            let (ok, d) = refused(from, to, ip, port);
            let after = counted_past(t, node, table, rule, before)?;
            Ok((
                ok && after > before,
                format!("{d}{}the drop rule counted {before} → {after}", if d.is_empty() { "" } else { "; " }),
            ))
        });
        let (ok, d) = r.unwrap_or_else(|e| (false, e));
        add(what, ok, d, &mut checks);
    }
    if interrupted() {
        return Ok((checks, Vec::new()));
    }
    let (ok, d) = allowed(&cli1, &api1, API1, 7002);
    add("egress policy lets the rest through (cli-1 → api-1:7002)", ok, d, &mut checks);

    // Services through tun0, translated by kube-proxy's rules.
    let mut proxied = Ok(());
    for node in ["node-d", "node-b"] {
        if let Err(e) = t.kube_proxy_rules(node, SVC, 8080, WEB1) {
            proxied = Err(e);
        }
    }
    let svc_probes: [(&str, &str, &str, bool); 3] = [
        (
            "service through tun0 with kube-proxy's DNAT, one node (api-1 → 172.30.12.34:8080 → web-1)",
            &api1,
            "node-d",
            true,
        ),
        (
            "service through tun0 across nodes (api-2 on node-b → 172.30.12.34:8080 → web-1 on node-d)",
            &api2,
            "node-b",
            true,
        ),
        ("policy after the service's DNAT: cli-1 → 172.30.12.34:8080 → web-1 refused", &cli1, "node-d", false),
    ];
    for (what, from, node, expect) in svc_probes {
        if interrupted() {
            return Ok((checks, Vec::new()));
        }
        let (ok, d) = match (&proxied, expect) {
            (Err(e), _) => (false, format!("iptables: {e}")),
            (Ok(()), true) => match t.tcp(from, &web1, SVC, 8080) {
                // The client's tracker holds the kernel's translation.
                Ok(()) => {
                    let dump = t.ctl(node, &["dump-conntrack"]).unwrap_or_default();
                    let src = if from == api1 { API1 } else { API2 };
                    let kept = dump.lines().any(|l| {
                        l.starts_with(&format!("tcp,orig=(src={src},dst={SVC},"))
                            && l.contains(&format!("reply=(src={WEB1},dst={src},sport=8080,"))
                    });
                    (kept, if kept { "echo from the service address".into() } else { format!("{node}:\n{dump}") })
                }
                Err(e) => (false, e),
            },
            (Ok(()), false) => refused(from, &web1, SVC, 8080),
        };
        add(what, ok, d, &mut checks);
    }

    // ctl policy add and del on the running nodes.
    if interrupted() {
        return Ok((checks, Vec::new()));
    }
    let dir = std::env::temp_dir();
    let bad = dir.join(format!("{}-bad-np.yaml", t.lab.prefix()));
    let good = dir.join(format!("{}-deny-b.yaml", t.lab.prefix()));
    let write = |p: &Path, s: &str| std::fs::write(p, s).map_err(|e| format!("{}: {e}", p.display()));
    let r = write(
        &bad,
        &DENY_B.replace("policyTypes: [Ingress]", "policyTypes: [Ingress]\n  ingress:\n  - ports: [{port: 99999}]"),
    )
    .and_then(|()| flows_now(t, "node-d"))
    .and_then(|before| {
        let e = match t.ctl("node-d", &["policy", "add", &bad.to_string_lossy()]) {
            Ok(o) => return Ok((false, format!("accepted: {o}"))),
            Err(e) => e,
        };
        let at = format!("{}:10:20: NetworkPolicy project-b/deny-all: ingress[0]: port 99999", bad.display());
        let same = flows_now(t, "node-d")? == before;
        let e = e.rsplit("sdnfwd ctl: ").next().unwrap_or_default().to_string();
        Ok((e.contains(&at) && same, if same { e } else { format!("dump-flows changed; {e}") }))
    });
    let (ok, d) = r.unwrap_or_else(|e| (false, e));
    add("ctl policy add: a malformed policy refused at file:line:column, dump-flows unchanged", ok, d, &mut checks);
    // A connection established before the policy, paused half-way.
    let long = Established::start(t, &cli1, &api1, API1, 7010);
    // node-d reads the YAML file, node-b the same policy as JSON on stdin.
    let r = write(&good, DENY_B)
        .and_then(|()| t.ctl("node-d", &["policy", "add", &good.to_string_lossy()]))
        .and_then(|out| t.ctl_stdin("node-b", &["policy", "add", "-"], DENY_B_JSON).map(|_| out));
    match r {
        Ok(out) => {
            let (ok, d) = refused(&cli1, &api1, API1, 7003);
            add(
                "ctl policy add project-b/deny-all: the next connection is refused (cli-1 → api-1:7003)",
                ok,
                format!("{}{d}", out.trim()),
                &mut checks,
            );
            let (ok, d) = refused(&web1, &api2, API2, 7004);
            add("... and across nodes (web-1 → api-2:7004)", ok, d, &mut checks);
            let list = t.ctl("node-d", &["policy", "list"]).unwrap_or_else(|e| e);
            let ok = list.contains("project-b/deny-all types=Ingress selects=2 pod(s) from=`ctl policy add");
            add("ctl policy list names it and its source", ok, if ok { String::new() } else { list }, &mut checks);
            let (ok, d) = match t.ctl("node-d", &["reload"]) {
                Ok(out) if out.contains("policies only") => refused(&cli1, &api1, API1, 7006),
                Ok(out) => (false, format!("reload: {out}")),
                Err(e) => (false, e),
            };
            add("ctl reload keeps the policy ctl added (cli-1 → api-1:7006 still refused)", ok, d, &mut checks);
            // As in openshift-sdn 4.13, only replies bypass the policy
            // tables: the established connection's next data is dropped.
            let (ok, d) = match long.and_then(Established::finish) {
                Ok((sink_ok, sink)) => (!sink_ok, sink),
                Err(e) => (false, e),
            };
            add(
                "a connection established before the policy is cut too (cli-1 → api-1:7010; as in openshift-sdn 4.13, \
                 only replies bypass the policy tables)",
                ok,
                d,
                &mut checks,
            );
            let r: Result<(), String> = ["node-d", "node-b"]
                .iter()
                .try_for_each(|n| t.ctl(n, &["policy", "del", "project-b/deny-all"]).map(|_| ()));
            let (ok, d) = match r {
                // The first SYN must pass: one attempt, shorter than a retransmission.
                Ok(()) => match t.tcp_with(&cli1, &api1, API1, 7005, 0.9, 0.9) {
                    Ok(()) => (true, String::new()),
                    Err(e) => (false, e),
                },
                Err(e) => (false, e),
            };
            add(
                "ctl policy del: the next connection gets through at its first SYN (cli-1 → api-1:7005)",
                ok,
                d,
                &mut checks,
            );
        }
        Err(e) => add("ctl policy add project-b/deny-all", false, e, &mut checks),
    }
    let _ = std::fs::remove_file(&bad);
    let _ = std::fs::remove_file(&good);

    let mut exits = Vec::new();
    for n in ["node-d", "node-b"] {
        let e = t.stop(n)?;
        let ok = e.code == Some(0) && e.stderr.contains("XDP programs detached") && e.stderr.contains("tun0 removed");
        add(
            &format!("{n}: SIGINT detaches XDP, removes tun0, exits 0"),
            ok,
            if ok { String::new() } else { format!("exit {:?}", e.code) },
            &mut checks,
        );
        exits.push((n.to_string(), e));
    }
    Ok((checks, exits))
}
