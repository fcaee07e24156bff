//! Instructions per packet of the whole-burst cases, for callgrind: each
//! case warms a poll loop up (as `benches/datapath.rs` does) and then runs a
//! fixed number of iterations in [`measured`], so that the instruction count
//! of that function, divided by the packets printed, is exact and the same
//! on every run. This VM's speed swings up to 2x within minutes; instruction
//! counts do not, so they show what a change does to the work per packet.
//! `tools/instructions.sh` runs it.
//!
//! Usage: `instructions [CASE ...] [--iterations N]` (default: every case,
//! 20,000 iterations of 32 frames; the connection-tracking cases receive
//! from two ports, 64 frames an iteration).

use fastpath::pmd::Pmd;

mod common;

/// The iterations that are counted (callgrind's inclusive count of this
/// function is the work of `iterations` bursts).
#[inline(never)]
fn measured(pmd: &mut Pmd, iterations: u64) {
    for _ in 0..iterations {
        pmd.iterate();
    }
}

fn main() {
    let mut iterations = 20_000;
    let mut only = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--iterations" => iterations = args.next().and_then(|n| n.parse().ok()).expect("--iterations N"),
            "--bench" => {} // what `cargo bench` passes
            _ => only.push(a),
        }
    }
    for (name, in_port, frames) in common::burst_cases() {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let mut pmd = common::warm_pmd(name, in_port, frames);
        let (p0, u0) = common::counts(&pmd);
        measured(&mut pmd, iterations);
        let (p1, u1) = common::counts(&pmd);
        assert_eq!(u1, u0, "{name}: no upcalls while measured");
        println!("{name}: {} packets in {iterations} iterations", p1 - p0);
    }
    for (name, n) in common::ct_cases() {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let mut pmd = common::warm_ct_pmd(name, n);
        let (p0, u0) = common::counts(&pmd);
        let recirculations = || pmd.stats.recirculations.load(std::sync::atomic::Ordering::Relaxed);
        let r0 = recirculations();
        measured(&mut pmd, iterations);
        let (p1, u1) = common::counts(&pmd);
        let r1 = pmd.stats.recirculations.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(u1, u0, "{name}: no upcalls while measured");
        // Every frame received is counted (64 an iteration, both ports'),
        // and its recirculations are those `sdnfwd bench` shows a frame.
        println!("{name}: {} packets in {iterations} iterations, {} recirculations", p1 - p0, r1 - r0);
    }
}
