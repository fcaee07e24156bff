//! The `sdnfwd` command line: outputs, JSON shape, exit codes and located
//! errors.

use std::process::{Command, Output};

fn sdnfwd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sdnfwd")).args(args).output().expect("run sdnfwd")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn data(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_flows_prints_all_65_seed_flows() {
    let o = sdnfwd(&["check-flows", &data("seed001.dump")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 65);
    assert!(out.contains(" cookie=0x0, table=253, actions=note:00.07.00.00.00.00"));
}

#[test]
fn bad_flow_names_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.flows");
    std::fs::write(&p, "table=0, priority=1, ip, actions=drop\n\ntable=0, priority=2, udp_dst=53, actions=drop\n")
        .unwrap();
    let o = sdnfwd(&["check-flows", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.starts_with(&format!("{}:3:22: udp_dst requires `udp`", p.display())), "{e}");
}

#[test]
fn bad_yaml_names_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.yaml");
    let y = std::fs::read_to_string(data("seed001-cluster.yaml")).unwrap().replace("172.16.1.22", "172.16.1.2222");
    std::fs::write(&p, y).unwrap();
    let o = sdnfwd(&["render", "--cluster", p.to_str().unwrap(), "--node", "oc-04.test"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    let y = std::fs::read_to_string(&p).unwrap();
    let (line, l) = y.lines().enumerate().find(|(_, l)| l.contains("2222")).unwrap();
    let col = l.find("172.16.1.2222").unwrap() + 1;
    assert!(e.starts_with(&format!("{}:{}:{col}: ", p.display(), line + 1)) && e.contains("IPv4 address"), "{e}");
}

#[test]
fn unknown_node_is_an_error() {
    let o = sdnfwd(&["render", "--node", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("node `nope`"));
}

#[test]
fn render_output_parses_back() {
    let o = sdnfwd(&["render", "--node", "node-d"]);
    assert!(o.status.success());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.flows");
    std::fs::write(&p, stdout(&o)).unwrap();
    let o2 = sdnfwd(&["check-flows", p.to_str().unwrap()]);
    assert!(o2.status.success(), "{}", stderr(&o2));
    assert_eq!(stdout(&o2).lines().count(), stdout(&o).lines().count());
}

#[test]
fn trace_text_layout() {
    let o = sdnfwd(&["trace", "in_port=4,tcp,nw_src=10.131.0.3,nw_dst=10.129.0.7,tcp_dst=8080"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = stdout(&o);
    assert!(t.starts_with("Flow: tcp,in_port=4,"), "{t}");
    assert!(t.contains("\nbridge(\"br0\")\n-------------\n 0. ip, priority 100\n    goto_table:20\n"), "{t}");
    assert!(t.contains("90. ip,nw_dst=10.129.0.0/23, priority 100, cookie 0x2ec252d1\n"), "{t}");
    assert!(t.contains("\nMegaflow: recirc_id=0,eth,ip,in_port=4,"), "{t}");
    assert!(t.contains("\nDatapath actions: set(tunnel(tun_id=0x2be3,dst=172.16.1.16,flags(df|key))),1\n"), "{t}");
}

#[test]
fn trace_json_shape() {
    let o = sdnfwd(&["trace", "--json", "in_port=4,tcp,nw_src=10.131.0.3,nw_dst=10.129.0.7,tcp_dst=8080"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verdict"], "output");
    assert_eq!(
        v["rules"][0],
        serde_json::json!({"table":0,"priority":100,"cookie":"0x0","match":"ip","actions":"goto_table:20"})
    );
    assert_eq!(v["outputs"], serde_json::json!([{"port":1,"tun_dst":"172.16.1.16","tun_id":11235}]));
    assert!(v["drop"].is_null());
    assert!(v["megaflow"].as_str().unwrap().contains("in_port=4"));

    let o = sdnfwd(&["trace", "--json", "in_port=6,tcp,nw_src=10.131.0.5,nw_dst=10.131.0.3,tcp_dst=80"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verdict"], "drop");
    assert_eq!(v["drop"], serde_json::json!({"table":80,"reason":"explicit drop"}));
}

#[test]
fn trace_flows_file_and_bad_flow() {
    let o =
        sdnfwd(&["trace", "--flows", &data("seed001.dump"), "in_port=28,ip,nw_src=10.131.0.16,nw_dst=10.131.1.241"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("Datapath actions: 3\n"));
    let o = sdnfwd(&["trace", "in_port=4,tcp,nw_dst=10.0.0.0/8"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("<flow>:1:"));
}

#[test]
fn pod_to_pod_both_directions() {
    let o = sdnfwd(&["trace", "--src", "project-a/web-1", "--dst", "project-a/web-2", "--tcp", "--dst-port", "8080"]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o),
        "ofproto/trace source pod to destination pod indicates success from web-1 to web-2\n\
         ofproto/trace destination pod to source pod indicates success from web-2 to web-1\n"
    );
    let o = sdnfwd(&["trace", "--src", "project-b/api-1", "--dst", "project-a/db-1", "--udp", "--dst-port", "53"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("indicates failure from api-1 to db-1: dropped on node-d in table 80"));
    let o = sdnfwd(&["trace", "--src", "project-b/nope", "--dst", "project-a/db-1"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn demo_table_checks_pass() {
    let o = sdnfwd(&["demo", "--tables-only"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(!stdout(&o).contains("FAIL"));
}

/// The upcall benchmark installs every flow each round (no flow limit hit)
/// and reports the cold round and the steady-state rounds.
#[test]
fn bench_upcalls_reports_cold_and_warm_rounds() {
    let o = sdnfwd(&["bench", "--pattern", "upcalls", "--flows", "3000", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["megaflows"], 3000, "{v}");
    assert!(v["cold_upcalls_per_sec"].as_f64().unwrap() > 0.0, "{v}");
    let warm: Vec<f64> = v["warm_rounds"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(warm.len(), 5);
    assert_eq!(v["upcalls_per_sec"].as_f64().unwrap(), warm[2], "the median of the warm rounds");
    let o = sdnfwd(&["bench", "--pattern", "upcalls", "--flows", "250000", "--json"]);
    assert!(!o.status.success() && stderr(&o).contains("flow limit"), "{}", stderr(&o));
}

#[test]
fn bench_json_reports_every_pattern() {
    for p in ["pod-pod", "pod-remote", "remote-pod", "pod-service", "mixed"] {
        let o = sdnfwd(&["bench", "--pattern", p, "--flows", "100", "--seconds", "0.3", "--json"]);
        assert!(o.status.success(), "{p}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(v["mpps"].as_f64().unwrap() > 0.0, "{p}: {v}");
        assert_eq!(v["per_core"].as_array().unwrap().len(), 1);
        assert!(v["upcalls"].as_u64().unwrap() >= 1);
        assert_eq!(v["leaked_frames"], 0);
        let hits = v["emc_hit"].as_f64().unwrap() + v["megaflow_hit"].as_f64().unwrap();
        assert!(hits > 0.99, "{p}: after warm-up every packet hits a cache: {v}");
    }
}

/// `bench --ct-mode`: the connections are opened before the clock starts
/// and the measured frames are tracked as the pattern means (the bench's
/// own check, and its counters): established data both ways is +est and
/// creates nothing; the churn creates a connection per SYN. Counters only,
/// never speed.
#[test]
fn bench_ct_mode_tracks_frames_as_the_pattern_means() {
    let run = |args: &[&str]| {
        let mut all = vec!["bench", "--seconds", "0.3", "--json"];
        all.extend_from_slice(args);
        let o = sdnfwd(&all);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["leaked_frames"], 0, "{v}");
        v
    };
    // More connections than one (client, server, port) has source ports
    // for: two pairs the table lets through.
    for n in [1u64, 65_000] {
        let v = run(&["--ct-mode", "--pattern", "tcp-est", "--flows", &n.to_string()]);
        let ct = &v["conntrack"];
        assert_eq!(ct["check"], "ok", "{v}");
        assert_eq!((ct["connections"].as_u64(), ct["created"].as_u64()), (Some(n), Some(0)), "{v}");
        assert_eq!(ct["invalid"], 0, "{v}");
        assert_eq!(ct["warm_up"]["created"].as_u64(), Some(n), "{v}");
        assert!(ct["est_pct"].as_f64().unwrap() > 99.9, "{v}");
        assert_eq!(v["drops"], 0, "{v}");
    }
    let v = run(&["--ct-mode", "--pattern", "tcp-new", "--flows", "1000"]);
    let ct = &v["conntrack"];
    assert_eq!(ct["check"], "ok", "{v}");
    assert_eq!(ct["scenario_connections"], 1024, "rounded up to whole bursts: {v}");
    // A SYN's two ct are new, an RST's two est; one creation per SYN (the
    // verdicts are counted a burst at a time, creations as they happen).
    let (new, est) = (ct["verdicts"]["new"].as_u64().unwrap(), ct["verdicts"]["est"].as_u64().unwrap());
    let created = ct["created"].as_u64().unwrap();
    assert!(new > 1000 && new.abs_diff(est) <= 64 && created.abs_diff(new / 2) <= 64, "{v}");
    assert_eq!((ct["invalid"].as_u64(), ct["full"].as_u64()), (Some(0), Some(0)), "{v}");
}

/// The ct-mode table printed by `bench --ct-mode` is a flow file and a
/// group file `bench --flow-file --groups` runs the same way; the ct
/// patterns need such a table; conn-memory counts its connections.
#[test]
fn bench_ct_table_files_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let (f, g) = (dir.path().join("ct.flows"), dir.path().join("ct.groups"));
    let o = sdnfwd(&["bench", "--ct-mode", "--print-flows"]);
    assert!(o.status.success() && stdout(&o).contains("ct(commit,table=30)"), "{}", stderr(&o));
    std::fs::write(&f, &o.stdout).unwrap();
    let o = sdnfwd(&["bench", "--ct-mode", "--print-groups"]);
    assert!(o.status.success() && stdout(&o).starts_with("group_id=11235,type=indirect"), "{}", stderr(&o));
    std::fs::write(&g, &o.stdout).unwrap();
    let (f, g) = (f.to_str().unwrap(), g.to_str().unwrap());
    let o = sdnfwd(&["bench", "--flow-file", f, "--groups", g, "--pattern", "tcp-est", "--flows", "100"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("  pods: 10.131.0.2 (port 3) -> 10.131.0.3:8080 (port 4)\n"), "{out}");
    assert!(out.contains("conntrack: 100 connections; during the run 0 created, 0 invalid"), "{out}");
    assert!(out.contains("  conntrack verdicts: est="), "pmd-stats counts the verdicts: {out}");
    // The pcap files for OVS: three warm-up phases and two rings.
    let prefix = dir.path().join("f");
    let o = sdnfwd(&[
        "bench",
        "--flow-file",
        f,
        "--groups",
        g,
        "--pattern",
        "tcp-est",
        "--flows",
        "10",
        "--write-pcap",
        prefix.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(|l| l.replace(prefix.to_str().unwrap(), "F")).collect();
    assert_eq!(
        lines,
        [
            "warm 1 3 F.w1.p3.pcap 10",
            "warm 2 4 F.w2.p4.pcap 10",
            "warm 3 3 F.w3.p3.pcap 10",
            "run 3 F.run.p3.pcap 10",
            "run 4 F.run.p4.pcap 10"
        ]
    );
    for (args, want) in [
        (&["--pattern", "tcp-est"][..], "node-d's table has no ct action"),
        (&["--ct-mode", "--pattern", "pod-pod"][..], "go with --pattern tcp-est or tcp-new"),
        (&["--ct-mode", "--node", "node-a", "--pattern", "tcp-new"][..], "no --cluster or --node"),
        (&["--ct-mode", "--pattern", "tcp-est", "--flows", "9000000"][..], "tuples"),
    ] {
        let mut all = vec!["bench"];
        all.extend_from_slice(args);
        let o = sdnfwd(&all);
        assert!(!o.status.success() && stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    // The renderer's 4.13 networkpolicy table (tests/data/np-*.yaml): the
    // pairs its policies let through, tracked as meant.
    let o = sdnfwd(&[
        "bench",
        "--cluster",
        "tests/data/np-node-d.yaml",
        "--cluster",
        "tests/data/np-cluster-oc.yaml",
        "--sdn-version",
        "4.13",
        "--pattern",
        "tcp-est",
        "--flows",
        "100",
        "--seconds",
        "0.3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((&v["conntrack"]["check"], v["conntrack"]["connections"].as_u64()), (&"ok".into(), Some(100)), "{v}");
    let o = sdnfwd(&["bench", "--pattern", "conn-memory", "--flows", "20000", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["n_conns"].as_u64(), v["not_established"].as_u64()), (Some(20000), Some(0)), "{v}");
}

/// `--cluster` twice (sdnfwd's node section, an `oc get -o yaml` List):
/// pod-to-pod traces name the NetworkPolicy that admitted the packet or
/// the table that dropped it, with either release's rules; replies pass as
/// established connections.
#[test]
fn trace_names_the_policy_or_the_dropping_table() {
    let (node, list) = (data("np-node-d.yaml"), data("np-cluster-oc.yaml"));
    for v in ["3.11", "4.13"] {
        let run = |src: &str, dst: &str, port: &str| {
            sdnfwd(&[
                "trace",
                "--cluster",
                &node,
                "--cluster",
                &list,
                "--sdn-version",
                v,
                "--src",
                src,
                "--dst",
                dst,
                "--dst-port",
                port,
            ])
        };
        let o = run("project-a/web-2", "project-a/db-1", "5432");
        assert!(o.status.success(), "{v}: {}{}", stdout(&o), stderr(&o));
        let out = stdout(&o);
        assert!(
            out.lines().next().unwrap().ends_with(
                "success from web-2 to db-1 (admitted by NetworkPolicy project-a/p2-db-from-web (table 80 on node-d))"
            ),
            "{v}: {out}"
        );
        assert!(out.contains("success from db-1 to web-2"), "{v}: {out}");
        assert!(stderr(&o).contains("warning: skipped 1 objects of kinds sdnfwd does not use: ConfigMap (1)"));
        let o = run("project-b/api-1", "project-a/db-1", "5432");
        assert_eq!(o.status.code(), Some(1), "{v}");
        assert!(
            stdout(&o).contains("failure from api-1 to db-1: dropped on node-d in table 80"),
            "{v}: {}",
            stdout(&o)
        );
        // Not the port the policy admits.
        let o = run("project-a/web-1", "project-a/db-1", "5433");
        assert!(stdout(&o).contains("failure from web-1 to db-1: dropped on node-d in table 80"), "{v}");
    }
}

/// `render --sdn-version`: the note and the groups; a bad API object is
/// refused at its file, line and column.
#[test]
fn render_sdn_version_and_located_api_errors() {
    let (node, list) = (data("np-node-d.yaml"), data("np-cluster-oc.yaml"));
    let o = sdnfwd(&["render", "--cluster", &node, "--cluster", &list, "--sdn-version", "4.13"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("group add group_id=11235,type=select,"), "{out}");
    assert!(out.contains("table=253, actions=note:02.0d.00.00.00.00"), "{out}");
    let o = sdnfwd(&["render", "--cluster", &node, "--cluster", &list]);
    assert!(stdout(&o).contains("table=253, actions=note:02.07.00.00.00.00"));
    let o = sdnfwd(&["render", "--cluster", &list, "--sdn-version", "4.12"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("expected 3.11 or 4.13"), "{}", stderr(&o));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(&list).unwrap();
    std::fs::write(&bad, text.replace("podIP: 10.131.0.5}", "podIP: 10.131.0.500}")).unwrap();
    let o = sdnfwd(&["render", "--cluster", &node, "--cluster", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let line = text.lines().position(|l| l.contains("podIP: 10.131.0.5}")).unwrap() + 1;
    let col = text.lines().nth(line - 1).unwrap().find("10.131.0.5").unwrap() + 1;
    let e = stderr(&o);
    assert!(e.starts_with(&format!("{}:{line}:{col}: Pod project-b/api-1 at status.podIP: ", bad.display())), "{e}");
    assert!(e.contains("10.131.0.500"), "{e}");
}
