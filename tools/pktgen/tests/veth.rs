//! pktgen against its own sink over a veth pair in two namespaces the test
//! creates: every frame sent arrives once, in order, with a plausible
//! latency, in every generator mode (XDP live frames, AF_XDP TX, AF_PACKET).
//! Whether the kernel allows XDP live frames depends on the machine (its
//! BPF restrictions, not its kernel version): that test probes, runs the
//! branch this machine offers and says which; another runs the refusing
//! branch on every machine, under a seccomp filter that refuses
//! `BPF_PROG_RUN` (tools/no-live-frames). Needs root (CI has it): without
//! it the tests fail, they do not skip.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use sdnfwd::netns::{branch, run, Lab};

fn pktgen() -> &'static str {
    env!("CARGO_BIN_EXE_pktgen")
}

/// The seccomp wrapper that makes any machine refuse XDP live frames.
fn no_live_frames() -> String {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../no-live-frames");
    let ok = Command::new(p).arg("true").status().is_ok_and(|s| s.success());
    assert!(
        ok,
        "{p} cannot install its seccomp filter: it needs /usr/bin/python3 with python3-seccomp (tools/deps.sh)"
    );
    p.to_string()
}

/// One at a time: two generator/sink pairs on two cores starve each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Two namespaces `a` and `b` joined by a veth `eth0`–`eth0`.
struct Rig {
    _lab: Lab,
    a: String,
    b: String,
}

fn rig(tag: &str) -> Rig {
    let out = run("id", &["-u"]).expect("id -u");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "pktgen tests need root (CI runs as root)");
    Lab::sweep_stale(tag);
    let mut lab = Lab::new(tag);
    let a = lab.ns("a").unwrap();
    let b = lab.ns("b").unwrap();
    lab.veth(("eth0", Some(&a)), ("eth0", Some(&b))).unwrap();
    Rig { _lab: lab, a, b }
}

/// `pktgen ARGS` in namespace `ns`, under `wrap` (a command prefix) if given.
fn pktgen_in(ns: &str, wrap: Option<&str>, args: &[&str]) -> Command {
    let mut c = Command::new(wrap.unwrap_or("ip"));
    if wrap.is_some() {
        c.arg("ip");
    }
    c.args(["netns", "exec", ns, pktgen()]).args(args);
    c
}

/// `pktgen probe` on side a: which modes this machine allows.
fn probe(r: &Rig, wrap: Option<&str>) -> serde_json::Value {
    let out = pktgen_in(&r.a, wrap, &["probe", "--iface", "eth0", "--json"]).output().expect("pktgen probe");
    assert!(out.status.success(), "pktgen probe: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// 20,000 frames from a to b's sink in `mode`.
fn to_sink(r: &Rig, mode: &str, wrap: Option<&str>) -> (serde_json::Value, serde_json::Value) {
    let mut sink = pktgen_in(&r.b, None, &["sink", "--iface", "eth0", "--seconds", "20", "--idle", "3", "--ready"])
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(sink.stdout.take().unwrap()).lines();
    if lines.next().and_then(Result::ok).as_deref() != Some("ready") {
        let o = sink.wait_with_output().unwrap();
        panic!("pktgen sink did not start: {}", String::from_utf8_lossy(&o.stderr));
    }
    let mut sink_err = sink.stderr.take().unwrap();
    let sink_err = std::thread::spawn(move || std::io::copy(&mut sink_err, &mut std::io::sink()));
    let g = pktgen_in(&r.a, wrap, &["gen", "--iface", "eth0", "--mode", mode, "--count", "20000", "--seconds", "30"])
        .args(["--rate", "20000", "--flows", "8", "--json"])
        .output()
        .expect("pktgen gen");
    assert!(g.status.success(), "pktgen gen --mode {mode}: {}", String::from_utf8_lossy(&g.stderr));
    let gen: serde_json::Value = serde_json::from_slice(&g.stdout).unwrap();
    sink.wait().unwrap();
    let _ = sink_err.join();
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

/// Where live frames are refused: `--mode xdp` fails with one line that
/// names the refusal and the modes that work, and `--mode auto` falls
/// back to AF_XDP TX and still delivers every frame.
fn refused_branch(r: &Rig, wrap: Option<&str>) {
    let p = probe(r, wrap);
    assert_eq!(p["xdp"]["ok"], false, "{p}");
    assert_eq!(p["xsk"]["ok"], true, "{p}");
    assert_eq!(p["packet"]["ok"], true, "{p}");
    assert_eq!(p["auto"], "xsk", "{p}");
    let out = pktgen_in(&r.a, wrap, &["gen", "--iface", "eth0", "--mode", "xdp", "--count", "10"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "--mode xdp succeeded where live frames are refused: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.contains("XDP live frames refused: BPF_PROG_RUN (live frames): Operation not permitted"), "{err}");
    assert!(err.contains("modes that work here: xsk (AF_XDP TX), packet (AF_PACKET)"), "{err}");
    let (g, s) = to_sink(r, "auto", wrap);
    assert_eq!(g["mode"], "af_xdp-tx");
    check("auto", &g, &s);
}

/// XDP live frames where this machine allows them; where it refuses them,
/// the refusal and the fallback.
#[test]
fn xdp_live_frames_to_sink() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let r = rig("spx");
    let p = probe(&r, None);
    if p["xdp"]["ok"] == true {
        branch("XDP live frames", "allowed: pktgen --mode xdp to the sink");
        assert_eq!(p["auto"], "xdp", "{p}");
        let (g, s) = to_sink(&r, "xdp", None);
        assert_eq!(g["mode"], "xdp-live-frames");
        check("xdp", &g, &s);
    } else {
        let why = p["xdp"]["error"].as_str().unwrap_or("?");
        branch("XDP live frames", &format!("refused ({why}): --mode xdp's error, --mode auto's fallback"));
        refused_branch(&r, None);
    }
}

/// The refusing branch on every machine: live frames refused by a seccomp
/// filter, as some machines refuse them.
#[test]
fn xdp_live_frames_refused_falls_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let wrap = no_live_frames();
    let r = rig("spr");
    branch("XDP live frames", "refused by tools/no-live-frames: --mode xdp's error, --mode auto's fallback");
    refused_branch(&r, Some(&wrap));
}

#[test]
fn af_xdp_tx_to_sink() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let r = rig("spk");
    let (g, s) = to_sink(&r, "xsk", None);
    assert_eq!(g["mode"], "af_xdp-tx");
    check("xsk", &g, &s);
}

#[test]
fn af_packet_to_sink() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let r = rig("spp");
    let (g, s) = to_sink(&r, "packet", None);
    assert_eq!(g["mode"], "af_packet");
    check("packet", &g, &s);
}
