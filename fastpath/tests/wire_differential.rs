//! The flow key checked against a second opinion: random frames (Ethernet
//! with or without a tag, ARP, IPv4 with options and fragments, TCP, UDP,
//! ICMP, SCTP and other protocols, IPv6 and other ethertypes, VXLAN around
//! all of these), truncated and corrupted, are parsed by `etherparse` and by
//! [`FlowKey::extract_hashed`] / [`FlowKey::extract_uplink`], and the keys
//! are compared field by field, with the `Malformed` reason.
//!
//! The oracle composes etherparse's per-layer slicers (`Ethernet2Slice`,
//! `SingleVlanSlice`, `LaxIpv4Slice`, `ArpPacketSlice`, `TcpSlice`,
//! `UdpSlice`, `Icmpv4Slice`: the ones its `LaxSlicedPacket` is made of) in
//! the order OVS's `flow_extract` follows, rather than calling
//! `LaxSlicedPacket::from_ethernet` whole: that one follows up to three
//! VLAN/MACsec tags, takes the IP version from the header instead of the
//! ethertype and reads no L4 header of a first fragment, none of which is
//! what a flow key does. `LaxIpv4Slice` is etherparse's lenient IPv4
//! slicer, the one that matches the datapath: it neither verifies the header
//! checksum nor requires the whole total length to be in the frame.
//!
//! Where sdnfwd's key legitimately differs from what etherparse reads (or
//! from OVS), the oracle says so in a rule marked `RULE` with the reason;
//! nothing is compared loosely.

use etherparse::{
    ArpHardwareId, ArpPacketSlice, EtherType, Ethernet2Slice, Icmpv4Slice, IpNumber, LaxIpv4Slice, SingleVlanSlice,
    TcpSlice, UdpHeaderSlice, UdpSlice,
};
use fastpath::flow::{loc, FieldLoc, FlowKey, LocalVtep, Malformed, BASE_WORDS, KEY_WORDS};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

/// Cases per property.
const CASES: u32 = 10_000;

// ---------------------------------------------------------------------------
// The oracle: etherparse's reading of a frame, as a flow key.
// ---------------------------------------------------------------------------

fn mac48(b: &[u8]) -> u64 {
    b.iter().fold(0, |a, &x| a << 8 | x as u64)
}

fn ip32(b: &[u8]) -> u64 {
    mac48(b)
}

thread_local! {
    /// L4 headers the oracle read: [by etherparse, by the fallback rule].
    static READ_BY: [std::cell::Cell<usize>; 2] = Default::default();
}

/// The key and malformation reason sdnfwd should give `f` on `in_port`.
fn oracle(f: &[u8], in_port: u32) -> (FlowKey, Option<Malformed>) {
    let mut k = FlowKey::default();
    k.set(loc::IN_PORT, in_port as u64);
    let Ok(eth) = Ethernet2Slice::from_slice_without_fcs(f) else {
        return (k, Some(Malformed::ShortEthernet));
    };
    let (mut ether_type, mut payload) = (eth.ether_type(), eth.payload_slice());
    // RULE (VLAN): sdnfwd skips exactly one 802.1Q (0x8100) tag and keeps
    // no vlan_tci in the key (br0 carries untagged traffic); an 802.1ad or
    // 0x9100 outer tag, or a second tag, is just the ethertype (etherparse
    // would follow up to three). A frame cut inside the 0x8100 tag counts as
    // a short Ethernet header with nothing but in_port in the key (OVS would
    // keep the MACs and dl_type 0x8100; such a frame is a runt, < 18 bytes).
    if ether_type == EtherType::VLAN_TAGGED_FRAME {
        let Ok(tag) = SingleVlanSlice::from_slice(payload) else {
            return (k, Some(Malformed::ShortEthernet));
        };
        (ether_type, payload) = (tag.ether_type(), tag.payload_slice());
    }
    k.set(loc::DL_DST, mac48(&eth.destination()));
    k.set(loc::DL_SRC, mac48(&eth.source()));
    // RULE (802.3): an ethertype below 0x600 is a length; OVS then parses
    // LLC/SNAP and sets dl_type 0x05ff or the SNAP type; sdnfwd keeps the
    // raw value, as etherparse reports it.
    k.set(loc::DL_TYPE, ether_type.0 as u64);
    let bad = match ether_type {
        EtherType::IPV4 => oracle_ipv4(&mut k, payload),
        EtherType::ARP => oracle_arp(&mut k, payload),
        _ => None,
    };
    (k, bad)
}

/// IPv4 and its L4 header into `k`.
fn oracle_ipv4(k: &mut FlowKey, payload: &[u8]) -> Option<Malformed> {
    // Version 4, IHL >= 5, the whole header (options included) present;
    // the header checksum is not verified (OVS neither).
    let Ok((ip, _)) = LaxIpv4Slice::from_slice(payload) else {
        return Some(Malformed::BadIpv4);
    };
    let h = ip.header();
    // RULE (total length < header length): invalid, as OVS's
    // ipv4_sanity_check (`ip_len > tot_len`); etherparse's lax slicer would
    // fall back to the frame's length. A total length past the frame's end
    // is accepted by both sdnfwd and the lax slicer (L4 read as far as the
    // frame goes), where OVS rejects it (`tot_len > size`): sdnfwd is
    // deliberately lenient there (see `wire::fix_l4_checksum`).
    if (h.total_len() as usize) < h.slice().len() {
        return Some(Malformed::BadIpv4);
    }
    // OVS nw_frag: FLOW_NW_FRAG_ANY (1) for any fragment, plus
    // FLOW_NW_FRAG_LATER (2) when the offset is not 0. The reserved bit and
    // DF do not matter.
    let later = h.fragments_offset().value() != 0;
    let frag = if later { 3 } else { h.more_fragments() as u64 };
    k.set(loc::NW_PROTO, h.protocol().0 as u64);
    k.set(loc::NW_FRAG, frag);
    k.set(loc::NW_SRC, ip32(&h.source()));
    k.set(loc::NW_DST, ip32(&h.destination()));
    // nw_tos holds the whole TOS byte (DSCP and ECN).
    k.set(loc::NW_TOS, (h.dcp().value() << 2 | h.ecn().value()) as u64);
    k.set(loc::NW_TTL, h.ttl() as u64);
    // OVS flow_extract: a later fragment has no L4 header, its ports stay
    // 0 and that is no malformation. A first fragment's L4 header is read.
    if later {
        return None;
    }
    // The IPv4 payload: up to the total length, never the Ethernet padding
    // after it (OVS: "never pull padding"), or to the frame's end if the
    // total length goes past it.
    let l4 = ip.payload().payload;
    let (parsed, need) = match h.protocol() {
        IpNumber::TCP => (TcpSlice::from_slice(l4).ok().map(|t| (t.source_port(), t.destination_port())), 4),
        IpNumber::UDP => (UdpSlice::from_slice_lax(l4).ok().map(|u| (u.source_port(), u.destination_port())), 4),
        IpNumber::ICMP => (Icmpv4Slice::from_slice(l4).ok().map(|i| (i.type_u8() as u16, i.code_u8() as u16)), 2),
        // RULE (SCTP): etherparse has no SCTP parser; the two ports are the
        // first four bytes (RFC 9260), read by the fallback below.
        IpNumber::SCTP => (None, 4),
        _ => return None,
    };
    READ_BY.with(|c| c[parsed.is_none() as usize].set(c[parsed.is_none() as usize].get() + 1));
    // RULE (short or odd L4 header): sdnfwd reads only what the key needs,
    // the ports (4 bytes) or ICMP type and code (2 bytes), and validates
    // nothing else of the L4 header (no TCP data offset check, no ICMP
    // timestamp length check). Where etherparse rejects the header (shorter
    // than 20/8/8 bytes, data offset < 5 or past the payload, ...) but
    // those bytes are there, the key still holds them and the frame is not
    // malformed; OVS would leave tp_src/tp_dst 0 for such a header. Only
    // when they are not there is it ShortL4, ports 0, as OVS.
    let ports = parsed.or_else(|| match need {
        2 => Some((*l4.first()? as u16, *l4.get(1)? as u16)),
        _ => Some((u16::from_be_bytes([*l4.first()?, *l4.get(1)?]), u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]))),
    });
    let Some((sp, dp)) = ports else {
        return Some(Malformed::ShortL4);
    };
    k.set(loc::TP_SRC, sp as u64);
    k.set(loc::TP_DST, dp as u64);
    None
}

/// ARP into `k`, as OVS: opcode in nw_proto (0 if above 255), the protocol
/// addresses in nw_src/nw_dst, the hardware ones in arp_sha/arp_tha.
fn oracle_arp(k: &mut FlowKey, payload: &[u8]) -> Option<Malformed> {
    let Ok(a) = ArpPacketSlice::from_slice(payload) else {
        return Some(Malformed::BadArp);
    };
    // RULE (ARP kinds): the key has room for Ethernet/IPv4 ARP only (OVS
    // reads no other either); etherparse accepts any hardware and protocol
    // type and address sizes, sdnfwd counts the others as BadArp.
    if a.hw_addr_type() != ArpHardwareId::ETHERNET
        || a.proto_addr_type() != EtherType::IPV4
        || a.hw_addr_size() != 6
        || a.proto_addr_size() != 4
    {
        return Some(Malformed::BadArp);
    }
    let op = a.operation().0;
    k.set(loc::NW_PROTO, if op <= 0xff { op as u64 } else { 0 });
    k.set(loc::NW_SRC, ip32(a.sender_protocol_addr()));
    k.set(loc::NW_DST, ip32(a.target_protocol_addr()));
    k.set(loc::ARP_SHA, mac48(a.sender_hw_addr()));
    k.set(loc::ARP_THA, mac48(a.target_hw_addr()));
    None
}

/// What `extract_uplink` should return for `f`: the inner frame's offset,
/// key and malformation, or `NotForUs`.
fn oracle_uplink(f: &[u8], vtep: &LocalVtep) -> Result<(usize, FlowKey, Option<Malformed>), Malformed> {
    let not_for_us = Err(Malformed::NotForUs);
    let Ok(eth) = Ethernet2Slice::from_slice_without_fcs(f) else {
        return not_for_us;
    };
    let (mut ether_type, mut payload) = (eth.ether_type(), eth.payload_slice());
    // RULE (VLAN) as for the inner frame: one 802.1Q tag is skipped.
    if ether_type == EtherType::VLAN_TAGGED_FRAME {
        let Ok(tag) = SingleVlanSlice::from_slice(payload) else {
            return not_for_us;
        };
        (ether_type, payload) = (tag.ether_type(), tag.payload_slice());
    }
    if ether_type != EtherType::IPV4 {
        return not_for_us;
    }
    let Ok((ip, _)) = LaxIpv4Slice::from_slice(payload) else {
        return not_for_us;
    };
    let h = ip.header();
    // RULE (total length < header length): invalid, as above.
    if (h.total_len() as usize) < h.slice().len()
        || ip32(&h.destination()) != vtep.ip as u64
        || h.protocol() != IpNumber::UDP
        || h.is_fragmenting_payload()
    {
        return not_for_us;
    }
    // RULE (outer lengths): the outer IPv4 total length and UDP length are
    // not applied; the inner frame is the rest of the received frame, what
    // the datapath forwards (Linux would trim the outer padding first).
    let udp_and_rest = &payload[h.slice().len()..];
    let Ok(udp) = UdpHeaderSlice::from_slice(udp_and_rest) else {
        return not_for_us;
    };
    if udp.destination_port() != vtep.udp_port {
        return not_for_us;
    }
    // VXLAN (RFC 7348; etherparse has no parser for it): flags, 3 reserved
    // bytes, the VNI (24 bits), 1 reserved byte. Only the I flag (0x08) is
    // required; the reserved bits are ignored, as the RFC asks of receivers.
    let Some(vx) = udp_and_rest.get(8..16) else {
        return not_for_us;
    };
    if vx[0] & 0x08 == 0 {
        return not_for_us;
    }
    let inner_at = f.len() - udp_and_rest.len() + 16;
    let (mut k, bad) = oracle(&f[inner_at..], vtep.port);
    k.set(loc::TUN_ID, mac48(&vx[4..7]));
    k.set(loc::TUN_SRC, ip32(&h.source()));
    k.set(loc::TUN_DST, vtep.ip as u64);
    Ok((inner_at, k, bad))
}

// ---------------------------------------------------------------------------
// Comparison.
// ---------------------------------------------------------------------------

const FIELDS: [(&str, FieldLoc); 19] = [
    ("in_port", loc::IN_PORT),
    ("recirc_id", loc::RECIRC_ID),
    ("ct_state", loc::CT_STATE),
    ("tun_id", loc::TUN_ID),
    ("dl_type", loc::DL_TYPE),
    ("nw_proto", loc::NW_PROTO),
    ("nw_frag", loc::NW_FRAG),
    ("tun_src", loc::TUN_SRC),
    ("tun_dst", loc::TUN_DST),
    ("dl_src", loc::DL_SRC),
    ("tp_src", loc::TP_SRC),
    ("dl_dst", loc::DL_DST),
    ("tp_dst", loc::TP_DST),
    ("nw_src", loc::NW_SRC),
    ("nw_dst", loc::NW_DST),
    ("arp_sha", loc::ARP_SHA),
    ("nw_tos", loc::NW_TOS),
    ("nw_ttl", loc::NW_TTL),
    ("arp_tha", loc::ARP_THA),
];

/// The fields where `got` and `want` differ ("" if the keys are equal).
fn diff(got: &FlowKey, want: &FlowKey) -> String {
    let mut out = String::new();
    for (name, l) in FIELDS {
        if got.get(l) != want.get(l) {
            out += &format!("{name}: got {:#x}, want {:#x}; ", got.get(l), want.get(l));
        }
    }
    if out.is_empty() && got != want {
        out = format!("bits outside every field: got {:x?}, want {:x?}", got.w, want.w);
    }
    out
}

/// A key full of stale bits in its base words, as a reused key slot would
/// be: extraction must overwrite every one. (The poll loop's key slots
/// never hold a tracked key: their connection-tracking words stay zero.)
fn stale() -> FlowKey {
    let mut w = [0xa5a5_a5a5_a5a5_a5a5; KEY_WORDS];
    w[BASE_WORDS..].fill(0);
    FlowKey { w }
}

fn check_extract(f: &[u8], in_port: u32) -> Result<(), TestCaseError> {
    let (want, want_bad) = oracle(f, in_port);
    let mut got = stale();
    let (bad, hash) = got.extract_hashed(f, in_port);
    prop_assert!(got == want, "{}\nframe {:02x?}", diff(&got, &want), f);
    prop_assert_eq!(bad, want_bad, "frame {:02x?}", f);
    prop_assert_eq!(hash, want.hash());
    let mut plain = stale();
    prop_assert_eq!(plain.extract(f, in_port), want_bad);
    prop_assert_eq!(plain, want);
    Ok(())
}

fn check_uplink(f: &[u8], vtep: &LocalVtep) -> Result<(), TestCaseError> {
    let mut got = stale();
    let r = got.extract_uplink(f, vtep);
    match (r, oracle_uplink(f, vtep)) {
        (Ok((at, bad)), Ok((want_at, want, want_bad))) => {
            prop_assert_eq!(at, want_at, "inner offset; frame {:02x?}", f);
            prop_assert!(got == want, "{}\nframe {:02x?}", diff(&got, &want), f);
            prop_assert_eq!(bad, want_bad, "frame {:02x?}", f);
        }
        (Err(e), Err(want)) => prop_assert_eq!(e, want),
        (got, want) => {
            let want = want.map(|(at, _, bad)| (at, bad));
            prop_assert!(false, "extract_uplink {:?}, want {:?}; frame {:02x?}", got, want, f);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Frames.
// ---------------------------------------------------------------------------

/// A generated frame and where its IPv4 header starts, if it has one.
#[derive(Clone, Debug)]
struct Frame {
    bytes: Vec<u8>,
    ip_at: Option<usize>,
}

/// An L4 protocol number and segment (header and payload).
fn l4() -> impl Strategy<Value = (u8, Vec<u8>)> {
    let payload = || vec(any::<u8>(), 0..24);
    let tcp = (any::<[u16; 2]>(), prop_oneof![8 => Just(5u8), 2 => 0u8..16], any::<u8>(), payload()).prop_map(
        |([sp, dp], doff, flags, data)| {
            let mut h = vec![0u8; 20];
            h[0..2].copy_from_slice(&sp.to_be_bytes());
            h[2..4].copy_from_slice(&dp.to_be_bytes());
            h[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
            h[12] = doff << 4;
            h[13] = flags;
            h[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
            // Options as NOPs, up to what the data offset says.
            h.resize((doff as usize * 4).max(20), 1);
            h.extend_from_slice(&data);
            (6, h)
        },
    );
    let udp = (any::<[u16; 2]>(), prop_oneof![4 => Just(None), 1 => any::<u16>().prop_map(Some)], payload()).prop_map(
        |([sp, dp], len, data)| {
            let len = len.unwrap_or(8 + data.len() as u16);
            let mut h = [sp.to_be_bytes(), dp.to_be_bytes(), len.to_be_bytes(), [0, 0]].concat();
            h.extend_from_slice(&data);
            (17, h)
        },
    );
    let icmp_type = prop_oneof![Just(0u8), Just(3), Just(8), Just(11), Just(13), Just(14), any::<u8>()];
    let icmp = (icmp_type, any::<u8>(), any::<[u8; 6]>(), payload()).prop_map(|(t, c, rest, data)| {
        let mut h = vec![t, c];
        h.extend_from_slice(&rest);
        h.extend_from_slice(&data);
        (1, h)
    });
    let sctp = (any::<[u16; 2]>(), payload()).prop_map(|([sp, dp], data)| {
        let mut h = [sp.to_be_bytes(), dp.to_be_bytes()].concat();
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&data);
        (132, h)
    });
    let other = (any::<u8>(), payload());
    prop_oneof![3 => tcp, 3 => udp, 2 => icmp, 1 => sctp, 1 => other]
}

/// An IPv4 packet: options, fragments, any L4; checksum valid.
fn ipv4() -> impl Strategy<Value = Vec<u8>> {
    let options = prop_oneof![6 => Just(vec![]), 2 => (1usize..=10).prop_flat_map(|w| vec(any::<u8>(), w * 4))];
    // (MF, offset): not a fragment, a first fragment, a later one.
    let frag = prop_oneof![6 => Just((false, 0u16)), 2 => Just((true, 0)), 2 => (any::<bool>(), 1u16..0x2000)];
    (options, frag, any::<(bool, bool)>(), any::<(u8, u8, u16)>(), any::<[u32; 2]>(), l4()).prop_map(
        |(opts, (mf, off), (df, evil), (tos, ttl, id), [src, dst], (proto, seg))| {
            let hl = 20 + opts.len();
            let mut h = vec![0u8; 20];
            h[0] = 0x40 | (hl / 4) as u8;
            h[1] = tos;
            h[2..4].copy_from_slice(&((hl + seg.len()) as u16).to_be_bytes());
            h[4..6].copy_from_slice(&id.to_be_bytes());
            let fo = off | (mf as u16) << 13 | (df as u16) << 14 | (evil as u16) << 15;
            h[6..8].copy_from_slice(&fo.to_be_bytes());
            h[8] = ttl;
            h[9] = proto;
            h[12..16].copy_from_slice(&src.to_be_bytes());
            h[16..20].copy_from_slice(&dst.to_be_bytes());
            h.extend_from_slice(&opts);
            let c = fastpath::wire::checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            h.extend_from_slice(&seg);
            h
        },
    )
}

/// An ARP packet: mostly Ethernet/IPv4 requests and replies.
fn arp() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![8 => Just(1u16), 1 => any::<u16>()],
        prop_oneof![8 => Just(0x0800u16), 1 => any::<u16>()],
        prop_oneof![8 => Just((6u8, 4u8)), 1 => (0u8..=16, 0u8..=16)],
        prop_oneof![4 => Just(1u16), 4 => Just(2u16), 1 => any::<u16>()],
        vec(any::<u8>(), 64),
    )
        .prop_map(|(htype, ptype, (hl, pl), op, addrs)| {
            let mut a = [htype.to_be_bytes(), ptype.to_be_bytes(), [hl, pl], op.to_be_bytes()].concat();
            a.extend_from_slice(&addrs[..2 * (hl + pl) as usize]);
            a
        })
}

/// An Ethernet frame, sometimes tagged, padded to 60 bytes with garbage
/// (as NICs that leak memory into the padding do).
fn ethernet() -> impl Strategy<Value = Frame> {
    let tag = prop_oneof![
        8 => Just(None),
        3 => any::<u16>().prop_map(|tci| Some((0x8100u16, tci))),
        1 => (prop_oneof![Just(0x88a8u16), Just(0x9100)], any::<u16>()).prop_map(Some),
    ];
    let ipv6 = vec(any::<u8>(), 40..80).prop_map(|mut b| {
        b[0] = 0x60 | (b[0] & 0x0f);
        b
    });
    let ether_type = prop_oneof![Just(0x8100u16), Just(0x88a8), Just(0x0800), any::<u16>()];
    let net = prop_oneof![
        6 => ipv4().prop_map(|b| (0x0800u16, b)),
        2 => arp().prop_map(|b| (0x0806u16, b)),
        1 => ipv6.prop_map(|b| (0x86dd, b)),
        1 => (ether_type, vec(any::<u8>(), 0..64)),
    ];
    (any::<[u8; 6]>(), any::<[u8; 6]>(), tag, net, vec(any::<u8>(), 60), 0usize..4).prop_map(
        |(dst, src, tag, (ether_type, net), pad, trailer)| {
            let mut f = [dst, src].concat();
            if let Some((tpid, tci)) = tag {
                f.extend_from_slice(&tpid.to_be_bytes());
                f.extend_from_slice(&tci.to_be_bytes());
            }
            f.extend_from_slice(&ether_type.to_be_bytes());
            let ip_at = (ether_type == 0x0800).then_some(f.len());
            f.extend_from_slice(&net);
            let padded = f.len().max(60) + trailer;
            f.extend_from_slice(&pad[..padded - f.len()]);
            Frame { bytes: f, ip_at }
        },
    )
}

/// A change to a frame.
#[derive(Clone, Debug)]
enum Mutation {
    /// Cut at any length.
    Truncate(Index),
    /// Overwrite a byte among the first 80 (the headers).
    Byte(Index, u8),
    /// A random IPv4 version/IHL byte.
    VersionIhl(u8),
    /// A random IPv4 total length, or one near the header's length.
    TotalLen(u16),
    /// A random IPv4 flags/fragment offset field.
    FragField(u16),
    /// An IPv4 total length a few bytes past the header: the packet ends
    /// inside (or right after) the L4 header.
    L4Cut(u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => any::<Index>().prop_map(Mutation::Truncate),
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Byte(i, b)),
        1 => prop_oneof![3 => (0u8..16).prop_map(|l| 0x40 | l), 1 => any::<u8>()].prop_map(Mutation::VersionIhl),
        1 => prop_oneof![Just(0u16), 0u16..80, any::<u16>()].prop_map(Mutation::TotalLen),
        1 => any::<u16>().prop_map(Mutation::FragField),
        1 => (0u8..6).prop_map(Mutation::L4Cut),
    ]
}

/// Applies `m` to `f`; targets within `span` bytes from the start (the
/// headers being exercised), IPv4 fields at `ip_at`.
fn mutate(f: &mut Vec<u8>, m: &Mutation, span: usize, ip_at: Option<usize>) {
    fn put(f: &mut [u8], at: usize, b: &[u8]) {
        if let Some(s) = f.get_mut(at..at + b.len()) {
            s.copy_from_slice(b);
        }
    }
    match m {
        Mutation::Truncate(i) => {
            let n = i.index(f.len() + 1);
            f.truncate(n);
        }
        Mutation::Byte(i, b) => {
            if !f.is_empty() {
                let at = i.index(f.len().min(span));
                f[at] = *b;
            }
        }
        Mutation::VersionIhl(b) => ip_at.into_iter().for_each(|at| put(f, at, &[*b])),
        Mutation::TotalLen(l) => ip_at.into_iter().for_each(|at| put(f, at + 2, &l.to_be_bytes())),
        Mutation::FragField(v) => ip_at.into_iter().for_each(|at| put(f, at + 6, &v.to_be_bytes())),
        Mutation::L4Cut(n) => {
            if let Some(&vihl) = ip_at.and_then(|at| f.get(at)) {
                let len = (vihl & 0x0f) as u16 * 4 + *n as u16;
                put(f, ip_at.unwrap_or(0) + 2, &len.to_be_bytes());
            }
        }
    }
}

/// Mostly left whole, otherwise one or two changes.
fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop_oneof![1 => Just(vec![]), 1 => vec(mutation(), 1..=2)]
}

/// A frame as the datapath may receive it: valid or mutated.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    (ethernet(), mutations()).prop_map(|(fr, ms)| {
        let mut b = fr.bytes;
        for m in &ms {
            mutate(&mut b, m, 80, fr.ip_at);
        }
        b
    })
}

/// A frame from the uplink: VXLAN around `frame()` (sometimes to another
/// address or port, another protocol, a fragment, without the I flag),
/// with the outer headers mutated in turn; and the local VTEP.
fn uplink() -> impl Strategy<Value = (Vec<u8>, LocalVtep)> {
    let vtep = (any::<u32>(), prop_oneof![4 => Just(4789u16), 1 => any::<u16>()], any::<u32>())
        .prop_map(|(ip, udp_port, port)| LocalVtep { ip, udp_port, port });
    let outer_ip = (
        prop_oneof![8 => Just(0usize), 1 => 1usize..=10],
        prop_oneof![8 => Just(0x4000u16), 1 => Just(0), 1 => any::<u16>()],
        prop_oneof![9 => Just(17u8), 1 => any::<u8>()],
        any::<(u8, u8, u32)>(),
        prop_oneof![8 => Just(None), 1 => any::<u32>().prop_map(Some)],
    );
    let udp = (
        any::<u16>(),
        prop_oneof![8 => Just(None), 1 => Just(Some(4789u16)), 1 => any::<u16>().prop_map(Some)],
        prop_oneof![8 => Just(0x08u8), 1 => any::<u8>()],
        any::<[u8; 3]>(),
        any::<u32>(),
    );
    let tag = prop_oneof![8 => Just(None), 1 => prop_oneof![Just(0x8100u16), Just(0x88a8)].prop_map(Some)];
    (vtep, frame(), tag, outer_ip, udp, mutations()).prop_map(
        |(vtep, inner, tag, (opts, fo, proto, (tos, ttl, src), dst), (sport, dport, flags, rsvd, vni), ms)| {
            let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
            if let Some(tpid) = tag {
                f.extend_from_slice(&tpid.to_be_bytes());
                f.extend_from_slice(&7u16.to_be_bytes());
            }
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let ip_at = f.len();
            let hl = 20 + opts * 4;
            let mut ip = vec![0u8; hl];
            ip[0] = 0x40 | (hl / 4) as u8;
            ip[1] = tos;
            ip[2..4].copy_from_slice(&((hl + 16 + inner.len()) as u16).to_be_bytes());
            ip[6..8].copy_from_slice(&fo.to_be_bytes());
            ip[8] = ttl;
            ip[9] = proto;
            ip[12..16].copy_from_slice(&src.to_be_bytes());
            ip[16..20].copy_from_slice(&dst.unwrap_or(vtep.ip).to_be_bytes());
            let c = fastpath::wire::checksum(&ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
            f.extend_from_slice(&sport.to_be_bytes());
            f.extend_from_slice(&dport.unwrap_or(vtep.udp_port).to_be_bytes());
            f.extend_from_slice(&((16 + inner.len()) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0, flags, rsvd[0], rsvd[1], rsvd[2]]);
            // VNI: VXLAN bytes 4..7 take `vni`'s low 24 bits, the reserved
            // byte 7 its high 8.
            f.extend_from_slice(&vni.rotate_left(8).to_be_bytes());
            let outer_len = f.len();
            f.extend_from_slice(&inner);
            for m in &ms {
                mutate(&mut f, m, outer_len, Some(ip_at));
            }
            (f, vtep)
        },
    )
}

// ---------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// A frame's key (and malformation) is what etherparse reads from it.
    #[test]
    fn extract_matches_etherparse(f in frame(), in_port in any::<u32>()) {
        check_extract(&f, in_port)?;
    }

    /// An uplink frame is decapsulated exactly when etherparse finds VXLAN
    /// to the local VTEP in it, and the inner key is what etherparse reads.
    #[test]
    fn uplink_matches_etherparse((f, vtep) in uplink()) {
        check_uplink(&f, &vtep)?;
    }
}

/// The generators reach every case the oracle distinguishes, so that a
/// property cannot pass by never meeting one.
#[test]
fn generators_cover_every_case() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut bad, mut frag, mut arp, mut icmp, mut sctp, mut opts, mut tagged) =
        ([0usize; 6], [0usize; 4], 0, 0, 0, 0, 0);
    let strategy = frame();
    for _ in 0..CASES {
        let f = strategy.new_tree(&mut runner).unwrap().current();
        let (k, m) = oracle(&f, 0);
        bad[m.map_or(5, |m| m as usize)] += 1;
        if k.get(loc::DL_TYPE) == 0x0800 && m.is_none() {
            frag[k.get(loc::NW_FRAG) as usize] += 1;
            icmp += (k.get(loc::NW_PROTO) == 1) as usize;
            sctp += (k.get(loc::NW_PROTO) == 132) as usize;
        }
        arp += (k.get(loc::DL_TYPE) == 0x0806 && m.is_none()) as usize;
        opts += (f.len() > 14 && f[12..14] == [8, 0] && f[14] >> 4 == 4 && f[14] & 0xf > 5) as usize;
        tagged += (f.len() > 14 && f[12..14] == [0x81, 0]) as usize;
    }
    let read_by = READ_BY.with(|c| [c[0].get(), c[1].get()]);
    let (mut decap, mut refused) = (0, 0);
    let strategy = uplink();
    for _ in 0..CASES {
        let (f, vtep) = strategy.new_tree(&mut runner).unwrap().current();
        match oracle_uplink(&f, &vtep) {
            Ok(_) => decap += 1,
            Err(_) => refused += 1,
        }
    }
    let counts = format!(
        "malformed {bad:?} (ShortEthernet, BadIpv4, BadArp, ShortL4, NotForUs, none), nw_frag {frag:?}, \
         arp {arp}, icmp {icmp}, sctp {sctp}, options {opts}, tagged {tagged}, decap {decap}, refused {refused}, \
         L4 read by etherparse/by the fallback {read_by:?}"
    );
    println!("{counts}");
    for n in [bad[0], bad[1], bad[2], bad[3], bad[5], frag[0], frag[1], frag[3], arp, icmp, sctp, opts, tagged] {
        assert!(n >= CASES as usize / 200, "a case is rare: {counts}");
    }
    assert!(decap >= CASES as usize / 4 && refused >= CASES as usize / 10, "{counts}");
    // The fallback rule reads the L4 fields only where etherparse cannot
    // (and SCTP): most are etherparse's reading.
    assert!(read_by[0] >= 2 * read_by[1], "{counts}");
}
