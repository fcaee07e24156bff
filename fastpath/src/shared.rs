//! What the slow path publishes to every poll loop: the megaflow table and
//! the tunnel state (local VTEP, neighbours), each an `ArcSwap` the slow
//! path replaces whole and the loops read without a lock.

use std::sync::Arc;

use arc_swap::ArcSwap;
use hashbrown::HashMap;

use crate::dpcls::FlowTable;
use crate::flow::LocalVtep;

/// Underlay state for VXLAN push, published by the slow path.
#[derive(Clone, Debug, Default)]
pub struct TunnelState {
    /// Local VTEP (node IP, UDP port, vxlan0's OpenFlow port).
    pub vtep: Option<LocalVtep>,
    /// The uplink's MAC address.
    pub local_mac: u64,
    /// Next-hop MAC per remote VTEP.
    pub neighbours: HashMap<u32, u64>,
}

/// What the slow path publishes to every poll loop.
#[derive(Debug, Default)]
pub struct Shared {
    /// Megaflows.
    pub flows: Arc<ArcSwap<FlowTable>>,
    /// Tunnel and neighbour state.
    pub tunnel: Arc<ArcSwap<TunnelState>>,
}

/// A loop's view of what the slow path publishes: the current value kept
/// between bursts and checked with one atomic load per use (arc-swap's
/// `Cache`), so that a burst takes no reference count and no debt slot.
/// The loop refreshes both at the start of every iteration, so a table it
/// held is let go within one iteration of the slow path's next publish.
pub type Cached<T> = arc_swap::Cache<Arc<ArcSwap<T>>, Arc<T>>;
