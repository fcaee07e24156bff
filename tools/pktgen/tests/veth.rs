//! pktgen against its own sink over a veth pair in two namespaces the test
//! creates: every frame sent arrives once, in order, with a plausible
//! latency, in every generator mode (XDP live frames, AF_XDP TX, AF_PACKET).
//! Needs root (CI has it): without it the test fails, it does not skip.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use sdnfwd::netns::{run, Lab};

fn pktgen() -> &'static str {
    env!("CARGO_BIN_EXE_pktgen")
}

/// One at a time: two generator/sink pairs on two cores starve each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_run(mode: &str, tag: &str) -> (serde_json::Value, serde_json::Value) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let out = run("id", &["-u"]).expect("id -u");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "pktgen tests need root (CI runs as root)");
    Lab::sweep_stale(tag);
    let mut lab = Lab::new(tag);
    let a = lab.ns("a").unwrap();
    let b = lab.ns("b").unwrap();
    lab.veth(("eth0", Some(&a)), ("eth0", Some(&b))).unwrap();
    let mut sink = Command::new("ip")
        .args([
            "netns",
            "exec",
            &b,
            pktgen(),
            "sink",
            "--iface",
            "eth0",
            "--seconds",
            "20",
            "--idle",
            "3",
            "--ready",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(sink.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let g = run(
        "ip",
        &[
            "netns",
            "exec",
            &a,
            pktgen(),
            "gen",
            "--iface",
            "eth0",
            "--mode",
            mode,
            "--count",
            "20000",
            "--seconds",
            "30",
            "--rate",
            "20000",
            "--flows",
            "8",
            "--json",
        ],
    )
    .expect("pktgen gen");
    let gen: serde_json::Value = serde_json::from_slice(&g.stdout).unwrap();
    sink.wait().unwrap();
    let s: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    (gen, s)
}

fn check(mode: &str, gen: &serde_json::Value, s: &serde_json::Value) {
    assert_eq!(gen["sent"], 20000, "{mode}: {gen}");
    // The kernel's own frames (IPv6 neighbour discovery) may come too.
    assert!(s["received"].as_u64().unwrap() >= 20000, "{mode}: {s}");
    assert_eq!(s["stamped"], 20000, "{mode}: {s}");
    assert_eq!(s["lost"], 0, "{mode}: {s}");
    assert_eq!(s["duplicates"], 0, "{mode}: {s}");
    assert_eq!(s["reordered"], 0, "{mode}: {s}");
    let p50 = s["latency_us"]["p50"].as_f64().unwrap();
    assert!(p50 < 10_000.0, "{mode}: p50 latency {p50} µs");
}

#[test]
fn xdp_live_frames_to_sink() {
    let (g, s) = one_run("xdp", "spx");
    assert_eq!(g["mode"], "xdp-live-frames");
    check("xdp", &g, &s);
}

#[test]
fn af_xdp_tx_to_sink() {
    let (g, s) = one_run("xsk", "spk");
    assert_eq!(g["mode"], "af_xdp-tx");
    check("xsk", &g, &s);
}

#[test]
fn af_packet_to_sink() {
    let (g, s) = one_run("packet", "spp");
    assert_eq!(g["mode"], "af_packet");
    check("packet", &g, &s);
}
