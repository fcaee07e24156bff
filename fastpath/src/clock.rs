//! The coarse clock of connection tracking: milliseconds since the first
//! read in this process (CLOCK_MONOTONIC through `Instant`), the same for
//! every poll loop and the sweeper. A loop reads it once per iteration that
//! tracks a packet, never per packet.
//!
//! For replays and tests it can be stopped and moved forward, as Open
//! vSwitch's `ovs-appctl time/stop` and `time/warp` move OVS's: [`stop`]
//! freezes it, [`warp`] adds to it, for the whole process.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();
/// Milliseconds added by [`warp`].
static WARP_MS: AtomicU64 = AtomicU64::new(0);
/// Set by [`stop`]; the time it stopped at is in `STOPPED_AT`.
static STOPPED: AtomicBool = AtomicBool::new(false);
static STOPPED_AT: AtomicU64 = AtomicU64::new(0);

/// Milliseconds since this process first asked (plus any warp).
pub fn now_ms() -> u64 {
    let base = if STOPPED.load(Ordering::Relaxed) {
        STOPPED_AT.load(Ordering::Relaxed)
    } else {
        EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
    };
    base + WARP_MS.load(Ordering::Relaxed)
}

/// Stops the clock where it is (`time/stop`): from now on it moves only by
/// [`warp`]. For replays and tests; there is no restarting it.
pub fn stop() {
    if !STOPPED.load(Ordering::Relaxed) {
        STOPPED_AT.store(EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64, Ordering::Relaxed);
        STOPPED.store(true, Ordering::Relaxed);
    }
}

/// Moves the clock `ms` forward (`time/warp`). For replays and tests.
pub fn warp(ms: u64) {
    WARP_MS.fetch_add(ms, Ordering::Relaxed);
}
