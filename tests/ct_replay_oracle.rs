//! The whole datapath against Open vSwitch's, connection tracking
//! included: the tracker oracle's table and corpus (see
//! fastpath/tests/ct_oracle.rs) run through `sdnfwd ct-replay` (the poll
//! loop with the tracker and recirculation, the slow path translating
//! `ct(table=N)`, `resubmit`, the ct fields moved into headers) and through
//! OVS's own datapath (`tools/ovs-ct-oracle.sh`); every packet leaves by
//! the same ports with the same bytes, and the connections dumped are the
//! same, but for the tracker's documented deviations.
//! Needs root and Open vSwitch (`openvswitch-switch`): fails loudly without.

#[path = "../fastpath/tests/ct_corpus/mod.rs"]
mod ct_corpus;

use std::process::Command;

use ct_corpus::{
    compare, corpus, frag_corpus, n_packets, packet_file, parse_output, random_tcp, run_ovs, run_ovs_raw, section, Out,
    Pkt, FLOWS,
};

/// The corpus through `sdnfwd ct-replay`: its output.
fn run_sdnfwd_raw(pkts: &[Pkt]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (flows, packets) = (dir.path().join("flows"), dir.path().join("packets"));
    std::fs::write(&flows, FLOWS).unwrap();
    std::fs::write(&packets, packet_file(pkts)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sdnfwd"))
        .args(["ct-replay", "--flows", flows.to_str().unwrap(), packets.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "ct-replay failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The corpus through `sdnfwd ct-replay`: each packet's outputs, the dump.
fn run_sdnfwd(pkts: &[Pkt]) -> (Vec<Out>, Vec<String>) {
    let stdout = run_sdnfwd_raw(pkts);
    let (outs, dump) = parse_output(&stdout);
    assert_eq!(outs.len(), n_packets(pkts), "one result per packet:\n{stdout}");
    (outs, dump)
}

/// The dump without the deviations' connections (a translated tuple
/// reopened at once; plain `nat` commits in zone 10).
fn comparable(mut d: Vec<String>) -> Vec<String> {
    d.retain(|l| !l.contains("src=10.3.0.3,") && !l.contains(",zone=10"));
    d.sort();
    d
}

#[test]
fn ct_replay_matches_ovs_on_the_corpus() {
    let pkts = corpus();
    let (ovs_out, our_out) = (run_ovs_raw(&pkts), run_sdnfwd_raw(&pkts));
    let ((ovs, ovs_dump), (ours, our_dump)) = (parse_output(&ovs_out), parse_output(&our_out));
    assert_eq!((ovs.len(), ours.len()), (pkts.len(), pkts.len()), "one result per packet");
    let (matched, bad) = compare(&pkts, &ovs, &ours);
    assert!(bad.is_empty(), "packets that differ from OVS:{bad}");
    let dev = pkts.iter().filter(|p| p.deviation).count();
    assert_eq!(matched + dev, pkts.len());
    let (o, s) = (comparable(ovs_dump), comparable(our_dump));
    assert_eq!(s, o, "dump-conntrack differs");
    // The corpus ends with a large first fragment held: its list shows.
    let (oi, si) = (ipf_status(&ovs_out), ipf_status(&our_out));
    assert!(si.iter().any(|l| l.contains("num_fragments=1,state=first frag")), "{si:?}");
    assert_eq!(si, oi, "ipf-get-status differs");
    eprintln!(
        "ct-replay: {} packets, {matched} identical to OVS, {dev} deviations; {} connections identical",
        pkts.len(),
        o.len()
    );
}

#[test]
fn ct_replay_matches_ovs_on_random_tcp() {
    let pkts = random_tcp(3, 140, 0x5eed_cafe_f00d);
    let (ovs, mut ovs_dump) = run_ovs(&pkts);
    let (ours, mut our_dump) = run_sdnfwd(&pkts);
    let (matched, bad) = compare(&pkts, &ovs, &ours);
    assert!(bad.is_empty(), "packets that differ from OVS:{bad}");
    ovs_dump.sort();
    our_dump.sort();
    assert_eq!(our_dump, ovs_dump, "dump-conntrack differs");
    eprintln!("ct-replay random TCP: {} packets, {matched} identical", pkts.len());
}

/// The reassembler's status as printed, its lists sorted (OVS prints
/// them in hash order), without the line that differs by design: sdnfwd
/// does not track IPv6 (`v6 enabled: 0`).
fn ipf_status(stdout: &str) -> Vec<String> {
    let mut s = section(stdout, "dpctl/ipf-get-status");
    let lists = s.iter().position(|l| l.trim() == "Fragment Lists:").map_or(s.len(), |i| i + 2);
    s[lists..].sort();
    s.retain(|l| !l.contains("v6 enabled"));
    s
}

/// The whole output with what is in hash order sorted (the sections'
/// lines after the packets: connections, fragment lists, rules) and two
/// lines set aside: OVS's `OFPST_FLOW reply` header and `v6 enabled`
/// (sdnfwd does not track IPv6).
fn normalised(stdout: &str) -> String {
    let mut out = String::new();
    let mut section: Vec<&str> = Vec::new();
    let flush = |out: &mut String, section: &mut Vec<&str>| {
        section.sort();
        for l in section.drain(..) {
            out.push_str(l);
            out.push('\n');
        }
    };
    let mut sorting = false;
    for l in stdout.lines() {
        if l.starts_with("OFPST_FLOW reply") || l.contains("v6 enabled:") {
            continue;
        }
        if l.starts_with("--- ") || l.trim() == "Fragment Lists:" {
            flush(&mut out, &mut section);
            out.push_str(l);
            out.push('\n');
            sorting = l != "--- dpctl/ipf-get-status";
        } else if sorting {
            section.push(l);
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    flush(&mut out, &mut section);
    out
}

/// IPv4 fragments (fastpath/tests/ct_corpus: `frag_corpus`) through both
/// datapaths: every packet line, every fragment's bytes, the connections,
/// the reassembler's counters and lists and the rules' counters the same,
/// byte for byte (but for the order of what OVS prints in hash order).
#[test]
fn ct_replay_matches_ovs_on_fragments() {
    let pkts = frag_corpus();
    let ovs = run_ovs_raw(&pkts);
    let ours = run_sdnfwd_raw(&pkts);
    // CT_ORACLE_OUT=DIR keeps both outputs and the packet file for diff.
    if let Ok(d) = std::env::var("CT_ORACLE_OUT") {
        std::fs::write(format!("{d}/packets"), packet_file(&pkts)).unwrap();
        std::fs::write(format!("{d}/ovs"), &ovs).unwrap();
        std::fs::write(format!("{d}/sdnfwd"), &ours).unwrap();
    }
    let ((o, mut od), (s, mut sd)) = (parse_output(&ovs), parse_output(&ours));
    assert_eq!((o.len(), s.len()), (n_packets(&pkts), n_packets(&pkts)), "one result per packet");
    let (matched, bad) = compare(&pkts, &o, &s);
    assert!(bad.is_empty(), "packets that differ from OVS:{bad}");
    od.sort();
    sd.sort();
    assert_eq!(sd, od, "dump-conntrack differs");
    let (oi, si) = (ipf_status(&ovs), ipf_status(&ours));
    assert_eq!(si, oi, "ipf-get-status differs");
    assert_eq!(normalised(&ours), normalised(&ovs), "the outputs differ");
    let frames: usize = o.iter().map(|x| x.len()).sum();
    eprintln!(
        "ct-replay fragments: {} packets, {matched} identical ({frames} frames out), {} connections, ipf status identical",
        n_packets(&pkts),
        od.len()
    );
}
