//! Megaflow soundness: any packet inside the megaflow a translation produced
//! (same bits under the mask, anything elsewhere) translates to the same
//! datapath actions through the same rules. Checked on the rendered
//! multitenant table and seed 001's flows with random packets and random
//! fill of the wildcarded bits. The same packets traced translate as they
//! do untraced (the translation runs common actions inline only when not
//! tracing), and the slow path's reused translator, which has translated
//! every packet before, translates each as a fresh translation does.

mod common;

use common::gen::Pools;
use common::Rng;
use config::ofctl::{parse_flow_file, parse_trace_flow, FlowCommand};
use config::yaml::Cluster;
use fastpath::KEY_WORDS;
use slowpath::trace::Trace;
use slowpath::xlate::Translator;
use slowpath::{xlate, OfFlow, Ofproto, Xlate};

/// Asserts that translation `b` (`what`: how it was made) has `a`'s
/// actions, megaflow, final flow, outputs, drop and rules (`a_rules`).
fn assert_same<R, S>(text: &str, what: &str, a: &Xlate<R>, a_rules: &[(u8, u64)], b: &Xlate<S>, b_rules: &[(u8, u64)]) {
    assert_eq!(b.actions, a.actions, "{text}: {what}, other actions");
    assert_eq!(b.wc, a.wc, "{text}: {what}, another megaflow");
    assert_eq!(b.final_flow, a.final_flow, "{text}: {what}, another final flow");
    assert_eq!(b.outputs, a.outputs, "{text}: {what}, other outputs");
    assert_eq!(b.drop, a.drop, "{text}: {what}, another drop");
    assert_eq!(b_rules, a_rules, "{text}: {what}, other rules");
}

fn check(of: &Ofproto, pools: &Pools, seed: u64, n: usize) {
    let mut r = Rng(seed);
    let mut widest = 0u32;
    let mut translator = Translator::new(of);
    for _ in 0..n {
        let text = pools.flow(&mut r);
        let (flow, _) = OfFlow::from_match(&parse_trace_flow(&text).unwrap());
        let x = xlate(of, &flow, None);
        let mask = x.megaflow_mask();
        widest = widest.max(mask.w.iter().map(|w| w.count_zeros()).sum());
        let rules: Vec<(u8, u64)> = x.rules.iter().map(|r| (r.table, r.rule.seq)).collect();
        let mut trace = Trace::default();
        let t = xlate(of, &flow, Some(&mut trace));
        assert!(!trace.lines.is_empty(), "{text}: no trace");
        let traced: Vec<(u8, u64)> = t.rules.iter().map(|r| (r.table, r.rule.seq)).collect();
        assert_same(&text, "traced", &x, &rules, &t, &traced);
        let u = translator.run(&flow);
        let reused: Vec<(u8, u64)> = u.rules.iter().map(|&(table, r)| (table, r.seq)).collect();
        assert_same(&text, "reused translator", &x, &rules, u, &reused);
        assert_eq!(u.recirc, x.recirc, "{text}: reused translator, another recirculation");
        for _ in 0..16 {
            let mut g = flow;
            for w in 0..KEY_WORDS {
                g.w[w] = (flow.w[w] & mask.w[w]) | (r.next() & !mask.w[w]);
            }
            let y = xlate(of, &g, None);
            assert_eq!(y.actions, x.actions, "{text}: a packet inside the megaflow gets other actions\n{g:?}");
            assert_eq!(y.drop.map(|d| d.kind), x.drop.map(|d| d.kind), "{text}");
            let r2: Vec<(u8, u64)> = y.rules.iter().map(|r| (r.table, r.rule.seq)).collect();
            assert_eq!(r2, rules, "{text}: other rules inside the megaflow");
        }
    }
    assert!(widest > 64, "megaflows never wildcard anything: the test would be vacuous");
}

#[test]
fn megaflows_are_sound_on_rendered_table() {
    let c = Cluster::default_cluster();
    let r = config::render::render(&c, "node-d").unwrap();
    let mut of = Ofproto::with_flows(&r.flows).unwrap();
    of.ports = Some([1, 2, 3, 4, 5, 6].into());
    check(&of, &Pools::from_cluster(&c, "node-d"), 0xabcdef, 3000);
}

#[test]
fn megaflows_are_sound_on_seed001() {
    let c = Cluster::from_yaml(include_str!("data/seed001-cluster.yaml")).unwrap();
    let mut of = Ofproto::new();
    for (_, cmd) in parse_flow_file(include_str!("data/seed001.dump")).unwrap() {
        if let FlowCommand::Add(s) = cmd {
            of.add_flow(s).unwrap();
        }
    }
    check(&of, &Pools::from_cluster(&c, "oc-04.test"), 0x123457, 3000);
}
