//! Shared test helpers: an Open vSwitch instance under a temp dir (the
//! oracle), and a small deterministic random generator.
#![allow(dead_code)]

pub mod frames;
pub mod gen;
pub mod ovs;

/// xorshift64*: deterministic, seedable, no dependencies.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// The flow lines of a dump (`ovs-ofctl dump-flows`, `sdnfwd ctl
/// dump-flows`) without their durations, sorted: what two dumps of the
/// same tables share (Open vSwitch dumps in classifier order, sdnfwd in
/// table and insertion order).
pub fn flows_without_durations(dump: &str) -> Vec<String> {
    let mut v: Vec<String> = dump
        .lines()
        .filter(|l| l.starts_with(" cookie="))
        .map(|l| l.split(", ").filter(|p| !p.starts_with("duration=")).collect::<Vec<_>>().join(", "))
        .collect();
    v.sort();
    v
}
