//! sdnfwd's datapath: the flow key extracted once per packet and the
//! datapath actions a megaflow carries. The caches, ports and poll loops
//! build on these (DESIGN.md §1); fastpath never depends on slowpath.
#![warn(missing_docs)]

pub mod actions;
pub mod batch;
pub mod clock;
pub mod conntrack;
pub mod dpcls;
pub mod emc;
mod exec;
pub mod flow;
pub mod hostnat;
pub mod pmd;
pub mod pool;
pub mod port;
pub mod recirc;
pub mod shared;
pub mod stats;
#[cfg(test)]
mod testutil;
pub mod upcall;
pub mod wire;

pub use actions::{Actions, DpAction, MfActions, SetField};
pub use flow::{FlowKey, KEY_WORDS};
