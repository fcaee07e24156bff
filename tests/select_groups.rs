//! Select groups: a flow's bucket is stable; flows spread over the buckets
//! in proportion to their weights; removing a bucket (mod-group) moves only
//! the flows it had; the megaflow un-wildcards what the choice hashed.
//! (Open vSwitch cannot be the oracle here: its trace of a select group
//! recirculates through dp_hash, which has no bucket in a trace.)

mod common;

use std::collections::BTreeMap;

use common::Rng;
use config::ofctl::{parse_flow_file, parse_group_line, FlowCommand, GroupLineKind};
use slowpath::{xlate, OfFlow, Ofproto};

const FLOWS: usize = 100_000;

fn tables(group: &str) -> Ofproto {
    let mut of = Ofproto::new();
    of.apply_group(&parse_group_line(group, GroupLineKind::Add).unwrap()).unwrap();
    let cmds: Vec<FlowCommand> =
        parse_flow_file("table=0,ip,actions=group:1\n").unwrap().into_iter().map(|(_, c)| c).collect();
    of.apply(&cmds).unwrap();
    of
}

/// A random TCP flow's key.
fn flow(r: &mut Rng) -> OfFlow {
    let text = format!(
        "in_port=4,tcp,nw_src=10.{}.{}.{},nw_dst=172.30.{}.{},tcp_src={},tcp_dst={}",
        r.below(256),
        r.below(256),
        r.below(256),
        r.below(256),
        r.below(256),
        1024 + r.below(60000),
        r.below(65536)
    );
    OfFlow::from_match(&config::ofctl::parse_trace_flow(&text).unwrap()).0
}

/// The output port each of `flows` gets.
fn outputs(of: &Ofproto, flows: &[OfFlow]) -> Vec<u32> {
    flows
        .iter()
        .map(|f| {
            let x = xlate(of, f, None);
            assert_eq!(x.outputs.len(), 1, "one bucket, one output");
            x.outputs[0].port
        })
        .collect()
}

#[test]
fn buckets_by_weight_stable_and_removal_moves_only_its_own() {
    let four = "group_id=1,type=select,selection_method=hash,fields(ip_src,ip_dst,nw_proto,tcp_src,tcp_dst),\
                bucket=weight:1,actions=output:11,bucket=weight:2,actions=output:12,\
                bucket=weight:3,actions=output:13,bucket=weight:4,actions=output:14";
    let of = tables(four);
    let mut r = Rng(0x5e1ec7);
    let flows: Vec<OfFlow> = (0..FLOWS).map(|_| flow(&mut r)).collect();
    let first = outputs(&of, &flows);
    assert_eq!(outputs(&of, &flows[..1000]), first[..1000], "a flow's bucket must not change");
    let mut count: BTreeMap<u32, usize> = BTreeMap::new();
    for p in &first {
        *count.entry(*p).or_default() += 1;
    }
    for (port, w) in [(11, 1.0), (12, 2.0), (13, 3.0), (14, 4.0)] {
        let got = count[&port] as f64 / FLOWS as f64;
        let want = w / 10.0;
        assert!((got - want).abs() <= 0.05 * want, "bucket of port {port}: {got:.4} of the flows, weight says {want}");
    }
    // Bucket 12 removed: its flows go elsewhere; no other flow moves.
    let three = four.replace("bucket=weight:2,actions=output:12,", "");
    let of3 = tables(&three);
    let after = outputs(&of3, &flows);
    let mut moved_others = 0;
    for (b, a) in first.iter().zip(&after) {
        if *b == 12 {
            assert_ne!(*a, 12);
        } else if a != b {
            moved_others += 1;
        }
    }
    assert_eq!(moved_others, 0, "removing a bucket moved flows of other buckets");
}

#[test]
fn default_selection_is_symmetric_and_unwildcards_what_it_hashed() {
    let g = "group_id=1,type=select,bucket=actions=output:11,bucket=actions=output:12,bucket=actions=output:13";
    let of = tables(g);
    let mut r = Rng(7);
    for _ in 0..2000 {
        let f = flow(&mut r);
        // The reply direction (addresses and ports swapped) takes the
        // same bucket: the default hash is symmetric.
        let mut back = f;
        for (a, b) in [
            (config::ofctl::Field::NwSrc, config::ofctl::Field::NwDst),
            (config::ofctl::Field::TpSrc, config::ofctl::Field::TpDst),
        ] {
            back.set(a, f.get(b));
            back.set(b, f.get(a));
        }
        let (x, y) = (xlate(&of, &f, None), xlate(&of, &back, None));
        assert_eq!(x.outputs, y.outputs);
        // Every field the default hash reads is exact in the megaflow.
        let m = x.megaflow_mask();
        use fastpath::flow::loc;
        for l in [loc::NW_SRC, loc::NW_DST, loc::NW_PROTO, loc::TP_SRC, loc::TP_DST, loc::DL_SRC, loc::DL_DST] {
            assert_eq!(m.get(l), l.mask, "{l:?} not exact in the megaflow");
        }
    }
}
