//! Builds real frames from ofproto/trace flow text, for datapath tests.

use config::ofctl::{parse_trace_flow, Field};
use fastpath::wire;

fn ip_header(m: &config::ofctl::Match, payload_len: usize) -> Vec<u8> {
    let g = |f: Field| m.get(f).0;
    let mut h = vec![0u8; 20];
    h[0] = 0x45;
    h[1] = (g(Field::NwTos) | g(Field::NwEcn)) as u8;
    h[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    let frag = match g(Field::NwFrag) {
        1 => 0x2000u16, // first: MF, offset 0
        3 => 100,       // later: offset 800 bytes
        _ => 0x4000,    // DF
    };
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[8] = g(Field::NwTtl) as u8;
    h[9] = g(Field::NwProto) as u8;
    h[12..16].copy_from_slice(&(g(Field::NwSrc) as u32).to_be_bytes());
    h[16..20].copy_from_slice(&(g(Field::NwDst) as u32).to_be_bytes());
    let c = wire::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// (in_port, frame) for a flow string; in_port=1 flows come back as VXLAN
/// frames for the uplink (in_port 0) addressed to `vtep` from tun_src.
pub fn frame(flow: &str, vtep: u32) -> (u32, Vec<u8>) {
    let m = parse_trace_flow(flow).unwrap();
    let g = |f: Field| m.get(f).0;
    let mut f = Vec::new();
    f.extend_from_slice(&g(Field::DlDst).to_be_bytes()[2..]);
    f.extend_from_slice(&g(Field::DlSrc).to_be_bytes()[2..]);
    let dl = g(Field::DlType) as u16;
    f.extend_from_slice(&dl.to_be_bytes());
    match dl {
        0x0800 => {
            let proto = g(Field::NwProto);
            let later = g(Field::NwFrag) == 3;
            let mut l4 = match proto {
                6 if !later => {
                    let mut t = vec![0u8; 20];
                    t[12] = 0x50;
                    t
                }
                17 if !later => vec![0u8; 8],
                1 if !later => vec![0u8; 8],
                _ => vec![0u8; 8],
            };
            if !later && matches!(proto, 6 | 17) {
                l4[0..2].copy_from_slice(&(g(Field::TpSrc) as u16).to_be_bytes());
                l4[2..4].copy_from_slice(&(g(Field::TpDst) as u16).to_be_bytes());
            } else if !later && proto == 1 {
                l4[0] = g(Field::TpSrc) as u8;
                l4[1] = g(Field::TpDst) as u8;
            }
            l4.extend_from_slice(b"sdnfwd-payload!!");
            if proto == 17 && !later {
                let n = l4.len() as u16;
                l4[4..6].copy_from_slice(&n.to_be_bytes());
            }
            f.extend_from_slice(&ip_header(&m, l4.len()));
            f.extend_from_slice(&l4);
        }
        0x0806 => {
            f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
            f.extend_from_slice(&(g(Field::NwProto) as u16).to_be_bytes());
            f.extend_from_slice(&g(Field::ArpSha).to_be_bytes()[2..]);
            f.extend_from_slice(&(g(Field::NwSrc) as u32).to_be_bytes());
            f.extend_from_slice(&g(Field::ArpTha).to_be_bytes()[2..]);
            f.extend_from_slice(&(g(Field::NwDst) as u32).to_be_bytes());
        }
        _ => f.extend_from_slice(&[0x5a; 46]),
    }
    if f.len() < 60 {
        f.resize(60, 0);
    }
    let in_port = g(Field::InPort) as u32;
    if in_port != 1 {
        return (in_port, f);
    }
    let t = wire::VxlanTemplate::new(
        0x0a0000000009,
        0x0a0000000019,
        g(Field::TunSrc) as u32,
        vtep,
        4789,
        g(Field::TunId) as u32,
    );
    let mut out = vec![0u8; wire::VXLAN_ENCAP_LEN];
    t.write(&mut out, f.len(), 50000);
    out.extend_from_slice(&f);
    (0, out)
}
