//! sdnfwd's datapath: the flow key extracted once per packet and the
//! datapath actions a megaflow carries. The caches, ports and poll loops
//! build on these (DESIGN.md §1); fastpath never depends on slowpath.
#![warn(missing_docs)]

pub mod actions;
pub mod dpcls;
pub mod emc;
pub mod flow;
pub mod pmd;
pub mod pool;
pub mod port;
pub mod wire;

pub use actions::{DpAction, SetField};
pub use flow::{FlowKey, KEY_WORDS};

/// What the crate's tests share.
#[cfg(test)]
pub(crate) mod testutil {
    /// The next value of a 64-bit linear congruential generator (Knuth's
    /// MMIX constants): reproducible pseudo-random test inputs.
    pub fn lcg(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *seed
    }
}
