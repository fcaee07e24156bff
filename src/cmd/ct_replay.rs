//! `sdnfwd ct-replay`: a packet file through sdnfwd's real datapath in
//! memory (the poll loop, the connection tracker, recirculation, the slow
//! path's translation), printed as `tools/ovs-ct-oracle.sh` prints Open
//! vSwitch's run of the same file, so that the two can be compared line by
//! line: `packet N: in P out [PORTS]`, a `  -> PORT HEX` line per frame sent
//! (NAT and checksum rewrites visible), then `--- dpctl/dump-conntrack`,
//! `--- dpctl/ipf-get-status` (with `-m`: the fragment lists, sorted) and
//! `--- dump-flows`.
//!
//! The packet file: one packet a line, `PORT PACKET`, PACKET a frame in hex
//! or a datapath flow as `ovs-appctl netdev-dummy/receive` takes it
//! (`eth(src=..,dst=..),eth_type(0x0800),ipv4(src=..,dst=..,proto=6,tos=0,
//! ttl=64,frag=no),tcp(src=..,dst=..),tcp_flags(syn)`), composed into the
//! frame Open vSwitch composes from it (`flow_compose`: 64 bytes of payload
//! 0, 1, 2, ... unless SYN, FIN or RST); `#` lines are comments; `warp MS`
//! moves the clock MS milliseconds forward (`ovs-appctl time/warp`), and a
//! file with such a line runs on a stopped clock (`time/stop`), moved by
//! its warps alone, so that what expires (fragment lists, connections) is
//! what the file says, as the oracle script does with OVS.

use std::process::ExitCode;

use clap::Args;
use fastpath::conntrack::CtConfig;
use slowpath::replay::Replay;

use super::common::{file_tables, read_file};

/// `sdnfwd ct-replay`.
#[derive(Args)]
pub struct CtReplayArgs {
    /// Flow file (add-flows syntax).
    #[arg(long)]
    pub flows: String,
    /// Group file (`ovs-ofctl add-groups` lines).
    #[arg(long)]
    pub groups: Option<String>,
    /// The packet file.
    pub packets: String,
}

pub fn ct_replay(a: CtReplayArgs) -> Result<ExitCode, String> {
    let of = file_tables(&a.flows, a.groups.as_deref())?;
    let text = read_file(&a.packets)?;
    // (port, frame), or (0, warp in ms as 8 bytes).
    let mut packets: Vec<(u32, Vec<u8>)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let at = |col: usize, msg: String| format!("{}:{}:{col}: {msg}", a.packets, n + 1);
        let (port, pkt) = t.split_once(char::is_whitespace).ok_or_else(|| at(1, "expected `PORT PACKET`".into()))?;
        if port == "warp" {
            let ms: u64 =
                pkt.trim().parse().ok().filter(|&m| m > 0).ok_or_else(|| at(6, "`warp MS`: MS > 0".into()))?;
            packets.push((0, ms.to_be_bytes().to_vec()));
            continue;
        }
        let port: u32 =
            port.parse().ok().filter(|p| (1..=9).contains(p)).ok_or_else(|| at(1, format!("port `{port}`: 1 to 9")))?;
        let pkt = pkt.trim();
        let col = line.find(pkt).unwrap_or(0) + 1;
        let frame = if pkt.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex(pkt).map_err(|e| at(col, e))?
        } else {
            compose(pkt).map_err(|e| at(col, e))?
        };
        packets.push((port, frame));
    }
    if packets.iter().any(|(p, _)| *p == 0) {
        fastpath::clock::stop();
    }
    let mut r = Replay::new(of, &[1, 2, 3, 4, 5, 6, 7, 8, 9], CtConfig::default());
    let mut i = 0;
    for (port, frame) in packets {
        if port == 0 {
            let ms = u64::from_be_bytes(frame.try_into().map_err(|_| "warp".to_string())?);
            fastpath::clock::warp(ms);
            continue;
        }
        i += 1;
        let out = r.packet(port, frame).map_err(|e| format!("packet {i}: {e}"))?;
        let ports: Vec<String> = out.iter().map(|(p, _)| p.to_string()).collect();
        println!("packet {i}: in {port} out [{}]", ports.join(" "));
        for (p, f) in &out {
            println!("  -> {p} {}", f.iter().map(|b| format!("{b:02x}")).collect::<String>());
        }
    }
    println!("--- dpctl/dump-conntrack");
    for l in r.dump_conntrack() {
        println!("{l}");
    }
    println!("--- dpctl/ipf-get-status");
    print!("{}", r.conntrack().ipf_show(true));
    println!("--- dump-flows");
    for l in r.dump_flows() {
        println!("{l}");
    }
    Ok(ExitCode::SUCCESS)
}

fn hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("a hex frame needs an even number of digits".into());
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string())).collect()
}

/// `name(args)` items of a datapath flow, in order.
fn items(s: &str) -> Result<Vec<(&str, &str)>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let open = rest.find('(').ok_or_else(|| format!("expected `name(...)` at `{rest}`"))?;
        let close = rest[open..].find(')').map(|i| open + i).ok_or_else(|| format!("`(` without `)` at `{rest}`"))?;
        out.push((rest[..open].trim(), &rest[open + 1..close]));
        rest = rest[close + 1..].trim_start_matches([',', ' ']);
    }
    Ok(out)
}

fn kv(args: &str) -> impl Iterator<Item = (&str, &str)> {
    args.split(',').filter_map(|p| p.split_once('='))
}

fn num(v: &str) -> Result<u64, String> {
    let r = match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    };
    r.map_err(|_| format!("bad number `{v}`"))
}

fn ip(v: &str) -> Result<[u8; 4], String> {
    v.parse::<std::net::Ipv4Addr>().map(|a| a.octets()).map_err(|_| format!("bad address `{v}`"))
}

fn mac(v: &str) -> Result<[u8; 6], String> {
    let b: Vec<u8> = v
        .split(':')
        .map(|x| u8::from_str_radix(x, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("bad MAC `{v}`"))?;
    b.try_into().map_err(|_| format!("bad MAC `{v}`"))
}

/// The one's-complement sum of `b` (big-endian words) folded to 16 bits.
fn csum(b: &[u8], mut sum: u32) -> u16 {
    for c in b.chunks(2) {
        sum += u32::from(c[0]) << 8 | c.get(1).map_or(0, |&x| u32::from(x));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The frame OVS's `flow_compose` makes of a datapath flow (Ethernet, ARP
/// or IPv4 with TCP, UDP or ICMP; 64 bytes of payload 0..63 where OVS adds
/// them).
fn compose(s: &str) -> Result<Vec<u8>, String> {
    let (mut src, mut dst, mut ty) = ([0u8; 6], [0u8; 6], 0u16);
    let (mut ipsrc, mut ipdst, mut proto, mut tos, mut ttl, mut frag) = ([0u8; 4], [0u8; 4], 0u8, 0u8, 0u8, "no");
    let (mut sport, mut dport, mut flags) = (0u16, 0u16, 0u16);
    let (mut icmp_type, mut icmp_code) = (0u8, 0u8);
    for (name, args) in items(s)? {
        match name {
            "eth" => {
                for (k, v) in kv(args) {
                    match k {
                        "src" => src = mac(v)?,
                        "dst" => dst = mac(v)?,
                        _ => {}
                    }
                }
            }
            "eth_type" => ty = num(args)? as u16,
            "ipv4" => {
                for (k, v) in kv(args) {
                    match k {
                        "src" => ipsrc = ip(v)?,
                        "dst" => ipdst = ip(v)?,
                        "proto" => proto = num(v)? as u8,
                        "tos" => tos = num(v)? as u8,
                        "ttl" => ttl = num(v)? as u8,
                        "frag" => {
                            frag = if v == "first" {
                                "first"
                            } else if v == "later" {
                                "later"
                            } else {
                                "no"
                            }
                        }
                        _ => {}
                    }
                }
            }
            "tcp" | "udp" => {
                for (k, v) in kv(args) {
                    match k {
                        "src" => sport = num(v)? as u16,
                        "dst" => dport = num(v)? as u16,
                        _ => {}
                    }
                }
            }
            "icmp" => {
                for (k, v) in kv(args) {
                    match k {
                        "type" => icmp_type = num(v)? as u8,
                        "code" => icmp_code = num(v)? as u8,
                        _ => {}
                    }
                }
            }
            "tcp_flags" => {
                flags = 0;
                for f in args.split('|') {
                    flags |= match f.trim() {
                        "fin" => 0x01,
                        "syn" => 0x02,
                        "rst" => 0x04,
                        "psh" => 0x08,
                        "ack" => 0x10,
                        "urg" => 0x20,
                        "ece" => 0x40,
                        "cwr" => 0x80,
                        x => num(x)? as u16,
                    };
                }
            }
            // Metadata OVS takes and the frame does not carry.
            "in_port" | "recirc_id" | "skb_priority" | "skb_mark" | "ct_state" | "ct_zone" | "ct_mark" | "ct_label"
            | "dp_hash" | "packet_type" => {}
            other => return Err(format!("`{other}(...)` is not composed here")),
        }
    }
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ty.to_be_bytes());
    if ty != 0x0800 {
        return Ok(f);
    }
    let l3 = f.len();
    f.extend_from_slice(&[0x45, tos, 0, 0, 0, 0, 0, 0, ttl, proto, 0, 0]);
    f.extend_from_slice(&ipsrc);
    f.extend_from_slice(&ipdst);
    if frag != "no" {
        let off: u16 = 0x2000 | if frag == "later" { 100 } else { 0 };
        f[l3 + 6..l3 + 8].copy_from_slice(&off.to_be_bytes());
    }
    let l4 = f.len();
    let payload: Vec<u8> = (0..64u8).collect();
    if frag != "later" {
        match proto {
            6 => {
                f.extend_from_slice(&sport.to_be_bytes());
                f.extend_from_slice(&dport.to_be_bytes());
                f.extend_from_slice(&[0; 8]);
                f.extend_from_slice(&((5u16 << 12) | flags).to_be_bytes());
                f.extend_from_slice(&[0; 6]);
                if flags & 0x07 == 0 {
                    f.extend_from_slice(&payload);
                }
            }
            17 => {
                f.extend_from_slice(&sport.to_be_bytes());
                f.extend_from_slice(&dport.to_be_bytes());
                f.extend_from_slice(&(8u16 + 64).to_be_bytes());
                f.extend_from_slice(&[0, 0]);
                f.extend_from_slice(&payload);
            }
            1 => {
                f.extend_from_slice(&[icmp_type, icmp_code, 0, 0, 0, 0, 0, 0]);
                if matches!(icmp_type, 0 | 8) && icmp_code == 0 {
                    f.extend_from_slice(&payload);
                }
            }
            _ => {}
        }
    }
    let tot = (f.len() - l3) as u16;
    f[l3 + 2..l3 + 4].copy_from_slice(&tot.to_be_bytes());
    let c = csum(&f[l3..l4], 0);
    f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    if frag != "later" && matches!(proto, 6 | 17 | 1) {
        let l4_len = f.len() - l4;
        let pseudo = if proto == 1 {
            0
        } else {
            let mut p = 0u32;
            for w in [&ipsrc[..], &ipdst[..]] {
                p += u32::from(u16::from_be_bytes([w[0], w[1]])) + u32::from(u16::from_be_bytes([w[2], w[3]]));
            }
            p + u32::from(proto) + l4_len as u32
        };
        let mut c = csum(&f[l4..], pseudo);
        if proto == 17 && c == 0 {
            c = 0xffff;
        }
        let at = l4
            + match proto {
                6 => 16,
                17 => 6,
                _ => 2,
            };
        if f.len() >= at + 2 {
            f[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
    }
    Ok(f)
}
