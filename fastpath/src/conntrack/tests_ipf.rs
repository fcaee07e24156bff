//! IPv4 reassembly through the tracker's API (`execute_frames`, as one
//! `ct` action of a datapath runs it): held and released fragments, their
//! order and bytes, the verdict and NAT written into each, OVS's checks
//! (overlaps, too small), limits, expiry and purging, the batch limit, a
//! reassembly too big, the counters and their `ipf-get-status` text.

use super::frames::{fragments, ip, udp};
use super::ipf::{format_status, max_list_len, FragOut, BATCH};
use super::tracker::Conntrack;
use super::types::*;
use crate::flow::FlowKey;
use crate::wire::{checksum, fold, sum16};

const C: u32 = ip(10, 0, 0, 1);
const S: u32 = ip(10, 0, 0, 2);
const X: u32 = ip(192, 168, 0, 1);
const NEW: u8 = CS_TRACKED | CS_NEW;
const INV: u8 = CS_TRACKED | CS_INVALID;

fn ct_with(ipf: IpfConfig) -> Conntrack {
    Conntrack::new(CtConfig { max_conns: 100, ipf, ..CtConfig::default() })
}

fn tracker() -> Conntrack {
    ct_with(IpfConfig::default())
}

fn commit() -> CtRequest {
    CtRequest { zone: 1, commit: true, ..CtRequest::default() }
}

/// One `ct` of `f` at `now` in pass `recirc`: what goes on.
fn go(ct: &Conntrack, f: &[u8], req: &CtRequest, now: u64, recirc: u32) -> Vec<FragOut> {
    ct.execute_frames(f.to_vec(), CtResult::default(), req, now, recirc, &FlowKey::default())
}

/// A UDP datagram from C to S with `len` bytes of data, cut after each of
/// `cuts` payload bytes, IP id `id`.
fn datagram(sport: u16, len: usize, id: u16, cuts: &[usize]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let whole = udp(C, sport, S, 53, len);
    let frags = fragments(&whole, id, cuts);
    (whole, frags)
}

/// The datagram a set of fragments carries (the first one's headers, the
/// payloads by offset), its total length and offset field fixed.
fn reassemble(frags: &[Vec<u8>]) -> Vec<u8> {
    let mut v: Vec<&Vec<u8>> = frags.iter().collect();
    v.sort_by_key(|f| u16::from_be_bytes([f[20], f[21]]) & 0x1fff);
    let mut p = v[0][..34].to_vec();
    for f in &v {
        let tot = u16::from_be_bytes([f[16], f[17]]) as usize;
        p.extend_from_slice(&f[34..14 + tot]);
    }
    let tot = (p.len() - 14) as u16;
    p[16..18].copy_from_slice(&tot.to_be_bytes());
    p[20..22].copy_from_slice(&[0, 0]);
    p
}

fn l4_sum_ok(p: &[u8]) -> bool {
    let end = p.len();
    fold(sum16(&p[26..34]) + p[23] as u32 + (end - 34) as u32 + sum16(&p[34..end])) == 0
}

#[test]
fn test_in_order_and_out_of_order() {
    let ct = tracker();
    let (_, d) = datagram(1000, 3500, 7, &[1480, 1480]);
    assert!(go(&ct, &d[0], &commit(), 0, 0).is_empty(), "held");
    assert!(go(&ct, &d[1], &commit(), 0, 0).is_empty(), "held");
    assert_eq!(ct.ipf_status().n_frags, 2);
    let out = go(&ct, &d[2], &commit(), 0, 0);
    // All three leave, in offset order, unchanged, with the verdict.
    assert_eq!(out.iter().map(|o| o.frame.clone()).collect::<Vec<_>>(), d);
    for o in &out {
        assert_eq!(o.md.state, NEW);
        assert_eq!((o.md.zone, o.md.orig.map(|t| (t.sport, t.dport))), (1, Some((1000, 53))));
        assert!(!o.md.has_conn(), "a fragment carries no connection (OVS: md.conn is not set)");
    }
    assert_eq!(ct.stats().n_conns, 1);
    // The reply, its fragments the other way round: sent on sorted by
    // offset, the reply of the connection.
    let d = fragments(&udp(S, 53, C, 1000, 3500), 8, &[1480, 1480]);
    assert!(go(&ct, &d[2], &commit(), 0, 0).is_empty());
    assert!(go(&ct, &d[1], &commit(), 0, 0).is_empty());
    let out = go(&ct, &d[0], &commit(), 0, 0);
    assert_eq!(out.iter().map(|o| o.frame.clone()).collect::<Vec<_>>(), d, "sorted by offset");
    assert!(out.iter().all(|o| o.md.state == CS_TRACKED | CS_ESTABLISHED | CS_REPLY_DIR));
    let st = ct.ipf_status();
    assert_eq!((st.n_accepted, st.n_completed, st.n_frags), (6, 6, 0));
    assert_eq!(ct.stats().n_fragments, 6);
    ct.audit(0).unwrap();
}

#[test]
fn test_execute_does_not_reassemble() {
    let ct = tracker();
    let (_, d) = datagram(1000, 2000, 7, &[1480]);
    let r = ct.execute(&mut d[0].clone(), &commit(), 0);
    assert_eq!((r.state, r.orig), (INV, None));
    let st = ct.stats();
    assert_eq!((st.n_fragments, st.n_invalid, st.n_conns), (1, 1, 0));
    assert_eq!(ct.ipf_status().n_accepted, 0);
}

#[test]
fn test_nat_rewrites_every_fragment() {
    let ct = tracker();
    let r = NatRange { addr_min: X, addr_max: X, port_min: 5000, port_max: 5000, ..NatRange::default() };
    let snat = CtRequest { nat: Some(NatRequest::Src(r)), ..commit() };
    let (whole, d) = datagram(1000, 3500, 7, &[1480, 1480]);
    go(&ct, &d[1], &snat, 0, 0);
    go(&ct, &d[0], &snat, 0, 0);
    let out = go(&ct, &d[2], &snat, 0, 0);
    let frames: Vec<Vec<u8>> = out.iter().map(|o| o.frame.clone()).collect();
    for (f, o) in frames.iter().zip(&out) {
        assert_eq!(o.md.state, NEW | CS_SRC_NAT);
        assert_eq!(&f[26..30], &X.to_be_bytes(), "every fragment's source");
        assert_eq!(checksum(&f[14..34]), 0, "every fragment's header checksum");
    }
    assert_eq!(u16::from_be_bytes([frames[0][34], frames[0][35]]), 5000, "the first fragment's port");
    assert_eq!(&frames[1][34..], &d[1][34..], "a later fragment's data is left alone");
    let p = reassemble(&frames);
    assert_eq!(p.len(), whole.len());
    assert!(l4_sum_ok(&p), "the datagram's UDP checksum, updated in the first fragment");
    // The reply, fragmented, is translated back in every fragment.
    let back = udp(S, 53, X, 5000, 2000);
    let d = fragments(&back, 9, &[1480]);
    go(&ct, &d[1], &CtRequest { zone: 1, nat: Some(NatRequest::Reverse), ..CtRequest::default() }, 0, 0);
    let out = go(&ct, &d[0], &CtRequest { zone: 1, nat: Some(NatRequest::Reverse), ..CtRequest::default() }, 0, 0);
    assert_eq!(out.len(), 2);
    for o in &out {
        assert_eq!(o.md.state, CS_TRACKED | CS_ESTABLISHED | CS_REPLY_DIR | CS_DST_NAT);
        assert_eq!(&o.frame[30..34], &C.to_be_bytes());
        assert_eq!(checksum(&o.frame[14..34]), 0);
    }
    assert_eq!(u16::from_be_bytes([out[0].frame[36], out[0].frame[37]]), 1000);
    let frames: Vec<Vec<u8>> = out.into_iter().map(|o| o.frame).collect();
    assert!(l4_sum_ok(&reassemble(&frames)));
}

#[test]
fn test_duplicates_and_overlaps() {
    let ct = tracker();
    let (whole, d) = datagram(1000, 2000, 7, &[1480]);
    assert!(go(&ct, &d[0], &commit(), 0, 0).is_empty());
    let dup = go(&ct, &d[0], &commit(), 0, 0);
    assert_eq!(dup.len(), 1, "a duplicate goes on");
    assert_eq!(dup[0].md.state, INV);
    // Starting inside the held fragment.
    let inside = &fragments(&whole, 7, &[1400])[1];
    assert_eq!(go(&ct, inside, &commit(), 0, 0)[0].md.state, INV);
    assert_eq!(ct.ipf_status().n_overlapped, 2);
    assert_eq!(go(&ct, &d[1], &commit(), 0, 0).len(), 2, "the right one completes the list");
    // A fragment covering a held one is not caught (as in OVS): the list
    // never completes.
    let (_, d) = datagram(2000, 1972, 8, &[1480]);
    let longer = udp(C, 2000, S, 53, 1984);
    assert!(go(&ct, &d[1], &commit(), 0, 0).is_empty());
    assert!(go(&ct, &fragments(&longer, 8, &[1472])[1], &commit(), 0, 0).is_empty(), "held");
    assert_eq!(go(&ct, &d[0], &commit(), 0, 0)[0].md.state, INV, "its end falls inside the cover");
    assert_eq!(ct.ipf_status().n_overlapped, 3);
    assert!(ct.ipf_show(true).contains("ip_id=8,dl_type=0x800,zone=1,nw_proto=17,num_fragments=2,state=last frag"));
    ct.audit(0).unwrap();
}

#[test]
fn test_too_small_and_minimum_size() {
    let ct = tracker();
    // 1,196 bytes of IPv4, not the last: too small.
    let (_, d) = datagram(1000, 2000, 7, &[1176]);
    assert_eq!(go(&ct, &d[0], &commit(), 0, 0)[0].md.state, INV);
    assert_eq!(ct.ipf_status().n_too_small, 1);
    // The last one may be small; 1,200 bytes is enough (24-byte header).
    assert!(go(&ct, &d[1], &commit(), 0, 0).is_empty());
    let mut f = d[0].clone();
    f.splice(34..34, [1, 1, 1, 0]);
    f[14] = 0x46;
    f[16..18].copy_from_slice(&1200u16.to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let c = checksum(&f[14..38]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let out = go(&ct, &f, &commit(), 0, 0);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|o| o.md.state == NEW));
    // A bad header checksum: +inv, counted by no ipf counter.
    let (_, mut d) = datagram(3000, 2000, 9, &[1480]);
    d[0][25] ^= 1;
    assert_eq!(go(&ct, &d[0], &commit(), 0, 0)[0].md.state, INV);
    let st = ct.ipf_status();
    assert_eq!((st.n_too_small, st.n_overlapped, st.n_accepted), (1, 0, 2));
}

#[test]
fn test_limits() {
    // Fragments held at most (every list of one fragment).
    let ct = ct_with(IpfConfig { max_frags: 4, ..IpfConfig::default() });
    for id in 0..4 {
        assert!(go(&ct, &datagram(1000, 2000, id, &[1480]).1[0], &commit(), 0, 0).is_empty());
    }
    let out = go(&ct, &datagram(1000, 2000, 9, &[1480]).1[0], &commit(), 0, 0);
    assert_eq!(out[0].md.state, INV, "over the limit");
    assert_eq!(ct.ipf_status().n_accepted, 4);
    // A list holds 58 fragments at 1,200 bytes minimum. Fragments that
    // big cannot fill it below offset 65,528, but last fragments (no
    // more-fragments bit) escape the minimum: 59 small ones at distinct
    // offsets.
    assert_eq!(max_list_len(1200), 58);
    let ct = tracker();
    for k in 1..=58 {
        assert!(go(&ct, &long_list(7, 0, 0, k * 32, 16)[0], &commit(), 0, 0).is_empty(), "fragment {k}");
    }
    assert_eq!(go(&ct, &long_list(7, 0, 0, 59 * 32, 16)[0], &commit(), 0, 0)[0].md.state, INV, "the 59th");
    let st = ct.ipf_status();
    assert_eq!((st.n_frags, st.n_accepted, st.n_overlapped), (58, 58, 0), "refused uncounted");
    // Off: every fragment +trk+inv.
    let ct = ct_with(IpfConfig { enabled: false, ..IpfConfig::default() });
    assert_eq!(go(&ct, &datagram(1000, 2000, 1, &[1480]).1[0], &commit(), 0, 0)[0].md.state, INV);
    assert_eq!((ct.ipf_status().n_accepted, ct.stats().n_fragments), (0, 1));
}

#[test]
fn test_lists_keyed_by_zone_and_pass() {
    let ct = tracker();
    let (_, d) = datagram(1000, 2000, 7, &[1480]);
    assert!(go(&ct, &d[0], &commit(), 0, 0).is_empty());
    assert!(go(&ct, &d[1], &commit(), 0, 5).is_empty(), "another recirculation id: another list");
    assert!(go(&ct, &d[1], &CtRequest { zone: 2, ..commit() }, 0, 0).is_empty(), "another zone too");
    assert_eq!(go(&ct, &d[1], &commit(), 0, 0).len(), 2);
    assert_eq!(ct.ipf_status().n_frags, 2);
}

#[test]
fn test_expiry_and_purge() {
    let ct = tracker();
    let other = udp(C, 9, S, 53, 1);
    let (_, d) = datagram(1000, 2000, 7, &[1480]);
    assert!(go(&ct, &d[0], &commit(), 1_000, 0).is_empty());
    assert_eq!(ct.fragments_due(), 16_001);
    // 15 s: not yet; past it, the next ct anywhere sends it on, +inv alone.
    assert_eq!(go(&ct, &other, &commit(), 16_000, 0).len(), 1);
    let out = go(&ct, &other, &CtRequest::default(), 16_001, 3);
    assert_eq!(out.len(), 2);
    assert_eq!((out[1].frame.clone(), out[1].md.state), (d[0].clone(), CS_INVALID), "not +trk, as OVS");
    assert_eq!(ct.ipf_status().n_expired, 1);
    // One list per ct; 10 s past its expiry, a list is purged instead.
    for id in [8, 9] {
        assert!(go(&ct, &datagram(1000, 2000, id, &[1480]).1[0], &commit(), 20_000, 0).is_empty());
    }
    assert_eq!(go(&ct, &other, &commit(), 35_001, 0).len(), 2, "the first list");
    assert_eq!(go(&ct, &other, &commit(), 45_000, 0).len(), 1, "the second, purged");
    let st = ct.ipf_status();
    assert_eq!((st.n_expired, st.n_purged, st.n_frags), (2, 1, 0));
    // The sweeper purges too, without traffic.
    assert!(go(&ct, &d[1], &commit(), 50_000, 0).is_empty());
    assert_eq!(ct.sweep(74_999, 10), 0);
    assert_eq!(ct.ipf_status().n_purged, 1);
    ct.sweep(75_000, 10);
    assert_eq!((ct.ipf_status().n_purged, ct.ipf_status().n_frags, ct.fragments_due()), (2, 0, u64::MAX));
    ct.audit(75_000).unwrap();
}

#[test]
fn test_one_batch_at_a_time() {
    let ct = tracker();
    let (_, d) = datagram(1000, 40 * 1184, 7, &[1184; 39]);
    for f in &d[..39] {
        assert!(go(&ct, f, &commit(), 0, 0).is_empty());
    }
    let out = go(&ct, &d[39], &commit(), 0, 0);
    assert_eq!(out.len(), BATCH, "a batch's worth");
    assert_eq!(out[0].frame, d[0]);
    let out = go(&ct, &udp(C, 9, S, 53, 1), &commit(), 0, 0);
    assert_eq!(out.len(), 1 + 40 - BATCH, "the rest with the next ct");
    assert_eq!(out[1].frame, d[BATCH]);
    assert!(out[1..].iter().all(|o| o.md.state == NEW));
    assert_eq!(ct.ipf_status().n_completed, 40);
}

/// Fragments at `offsets` (bytes) of `len` data bytes each (the last one
/// `last` bytes), built by hand (a datagram this long has no IPv4 total
/// length of its own).
fn long_list(id: u16, len: usize, n: usize, last_at: usize, last: usize) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for i in 0..=n {
        let (at, size, more) = if i < n { (i * len, len, true) } else { (last_at, last, false) };
        let mut f = udp(C, 1000, S, 53, size - 8);
        f[18..20].copy_from_slice(&id.to_be_bytes());
        let fo = (if more { 0x2000 } else { 0 }) | (at / 8) as u16;
        f[20..22].copy_from_slice(&fo.to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let c = checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        v.push(f);
    }
    v
}

#[test]
fn test_reassembly_too_big_fails() {
    // 44 fragments of 1,480 bytes, the last ending at byte 65,519: over
    // 65,535 with the header. The list fails and waits for its expiry.
    let ct = tracker();
    for f in long_list(7, 1480, 44, 44 * 1480, 400) {
        assert!(go(&ct, &f, &commit(), 0, 0).is_empty());
    }
    assert!(ct.ipf_show(true).contains("num_fragments=45,state=reassemble fail"), "{}", ct.ipf_show(true));
    let refused = go(&ct, &long_list(7, 1480, 0, 65_000, 100)[0], &commit(), 0, 0);
    assert_eq!(refused[0].md.state, INV, "a failed list takes no more");
    // Expired: the packet and 31 fragments fill the batch of 32.
    assert_eq!(go(&ct, &udp(C, 9, S, 53, 1), &commit(), 15_001, 0).len(), 32);
    ct.audit(15_001).unwrap();
    // The last fragment ending past byte 65,535 (its end wraps to 75 in
    // OVS's 16 bits), held before fragment 0 so that the wrapped end is
    // not caught as an overlap: the list sorts contiguous, and OVS would
    // compute a negative length and abort. Here it fails, no panic.
    let ct = tracker();
    let mut list = long_list(8, 8, 0, 65_512, 100);
    list.extend(long_list(8, 1480, 43, 43 * 1480, 8));
    list.pop();
    list.extend(long_list(8, 1872, 0, 63_640, 1872).into_iter().take(1).map(|mut f| {
        let fo = 0x2000 | (63_640 / 8) as u16;
        f[20..22].copy_from_slice(&fo.to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let c = checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f
    }));
    for f in &list {
        assert!(go(&ct, f, &commit(), 0, 0).is_empty());
    }
    assert!(ct.ipf_show(true).contains("state=reassemble fail"), "{}", ct.ipf_show(true));
    ct.audit(0).unwrap();
}

#[test]
fn test_bad_datagram_checksum() {
    let ct = tracker();
    let (_, mut d) = datagram(1000, 2000, 7, &[1480]);
    d[1][40] ^= 0x20;
    go(&ct, &d[0], &commit(), 0, 0);
    let out = go(&ct, &d[1], &commit(), 0, 0);
    assert_eq!(out.iter().map(|o| o.md.state).collect::<Vec<_>>(), [INV, INV]);
    assert_eq!(ct.stats().n_conns, 0);
}

#[test]
fn test_status_text() {
    // As `ovs-appctl dpctl/ipf-get-status -m` printed it for OVS 3.1 (but
    // for "v6 enabled: 1": sdnfwd does not track IPv6).
    let ct = tracker();
    let (_, d) = datagram(5555, 2048, 77, &[1480]);
    go(&ct, &d[1], &CtRequest { zone: 1, commit: true, ..CtRequest::default() }, 0, 0);
    let want = "        Fragmentation Module Status
        ---------------------------
        v4 enabled: 1
        v6 enabled: 0
        max num frags (v4/v6): 1000
        num frag: 1
        min v4 frag size: 1200
        v4 frags accepted: 1
        v4 frags completed: 0
        v4 frags expired: 0
        v4 frags too small: 0
        v4 frags overlapped: 0
        v4 frags purged: 0
        min v6 frag size: 1280
        v6 frags accepted: 0
        v6 frags completed: 0
        v6 frags expired: 0
        v6 frags too small: 0
        v6 frags overlapped: 0
        v6 frags purged: 0

        Fragment Lists:

(src=10.0.0.1,dst=10.0.0.2,recirc_id=0,ip_id=77,dl_type=0x800,zone=1,nw_proto=17,num_fragments=1,state=last frag)
";
    assert_eq!(ct.ipf_show(true), want);
    assert_eq!(format_status(&ct.ipf_status(), None), want.split("\n        Fragment Lists").next().unwrap());
}
