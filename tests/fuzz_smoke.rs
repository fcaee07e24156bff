//! A bounded fuzz run on stable Rust for every CI run: a mutation loop over
//! the seed corpora in `fuzz/seeds` (byte flips, deletions, insertions,
//! splices of flow-text and YAML tokens) feeding the same properties as the
//! cargo-fuzz targets (the tracker's: packets, fragments, time steps and
//! sweeps from binary seeds). The long runs (≥ 10 M inputs) use `cargo
//! fuzz`.

mod common;

use common::Rng;

const DICT: &[&str] = &[
    ",",
    "=",
    "/",
    ":",
    "->",
    "[]",
    "[0..31]",
    " ",
    "actions=",
    "table=",
    "priority=",
    "cookie=0x1/0xff",
    "ip",
    "arp",
    "tcp",
    "udp",
    "icmp",
    "sctp",
    "ipv6",
    "in_port=",
    "nw_src=",
    "nw_dst=",
    "arp_spa=",
    "arp_tpa=",
    "arp_sha=",
    "tp_dst=",
    "tcp_dst=",
    "udp_src=",
    "icmp_type=",
    "nw_frag=later",
    "ip_frag=not_later",
    "reg0=",
    "reg7=0x1/0x3",
    "tun_id=",
    "tun_src=",
    "pkt_mark=",
    "dl_dst=",
    "0a:58:00:00:00:00/ff:ff:00:00:00:00",
    "10.128.0.0/14",
    "255.0.255.0",
    "0xffffffff",
    "18446744073709551615",
    "65536",
    "output:",
    "output:NXM_NX_REG2[]",
    "goto_table:",
    "move:NXM_NX_TUN_ID[0..31]->NXM_NX_REG0[]",
    "load:0x2->NXM_NX_REG2[]",
    "set_field:",
    "->tun_dst",
    "note:",
    "ct(",
    ")",
    "commit,",
    "ct_state=+trk-est",
    "ct_state=est|trk",
    "ct_label=0x1/0xff00000000000000ff",
    "ct_nw_proto=6,ct_tp_src=",
    "nat(src=10.0.0.1-10.0.0.9:5-9,persistent)",
    "exec(set_field:0x5/0xf0->ct_mark)",
    "NXM_NX_CT_LABEL[32..95]",
    "group:",
    "group add group_id=1,type=select,",
    "bucket=",
    "weight:",
    "drop",
    "LOCAL",
    "IN_PORT",
    "ä",
    "\n",
    "#",
    "flow add ",
    "delete ",
    "modify_strict ",
    "hostIP: ",
    "subnet: ",
    "netid: ",
    "ofport: ",
    "{",
    "}",
    "[",
    "]",
    "- ",
    "  ",
    "CIDR: ",
    "items:",
    "null",
    "~",
    "&a",
    "*a",
    "!!str",
];

fn mutate(r: &mut Rng, base: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + r.below(4) {
        let at = if v.is_empty() { 0 } else { r.below(v.len() as u64 + 1) as usize };
        match r.below(6) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << r.below(8);
            }
            1 if !v.is_empty() => {
                let end = (at + 1 + r.below(8) as usize).min(v.len());
                v.drain(at.min(end)..end);
            }
            2 | 3 => {
                let t = r.pick(DICT).as_bytes();
                v.splice(at..at, t.iter().copied());
            }
            4 => {
                let other = r.pick(corpus);
                if !other.is_empty() {
                    let s = r.below(other.len() as u64) as usize;
                    let e = (s + 1 + r.below(40) as usize).min(other.len());
                    v.splice(at..at, other[s..e].iter().copied());
                }
            }
            _ => {
                let b = r.below(256) as u8;
                v.insert(at, b);
            }
        }
    }
    v
}

fn corpus(dir: &str) -> Vec<Vec<u8>> {
    let d = format!("{}/fuzz/seeds/{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(&d)
        .unwrap_or_else(|e| panic!("{d}: {e}"))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

fn run(dir: &str, n: usize, seed: u64, prop: fn(&[u8])) {
    let corpus = corpus(dir);
    let mut r = Rng(seed);
    for s in &corpus {
        prop(s);
    }
    for i in 0..n {
        let base = r.pick(&corpus).clone();
        let input = mutate(&mut r, &base, &corpus);
        let res = std::panic::catch_unwind(|| prop(&input));
        assert!(res.is_ok(), "input {i} panicked: {:?}", String::from_utf8_lossy(&input));
    }
}

#[test]
fn fuzz_ofctl_bounded() {
    run("ofctl_parse", 200_000, 0xf00d, config::fuzzing::ofctl_roundtrip);
}

#[test]
fn fuzz_yaml_bounded() {
    run("yaml_load", 3_000, 0xbeef, config::fuzzing::yaml_load);
}

#[test]
fn fuzz_frames_bounded() {
    run("frame_pipeline", 100_000, 0xfa11, slowpath::fuzzing::pipeline);
}

#[test]
fn fuzz_conntrack_bounded() {
    run("conntrack", 800_000, 0xc7, fastpath::conntrack::fuzzing::run);
}

#[test]
fn fuzz_openflow_bounded() {
    run("openflow", 1_000_000, 0x0f13, slowpath::fuzzing::openflow_message);
}
