//! The coarse clock of connection tracking: milliseconds since the first
//! read in this process (CLOCK_MONOTONIC through `Instant`), the same for
//! every poll loop and the sweeper. A loop reads it once per iteration that
//! tracks a packet, never per packet.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since this process first asked.
pub fn now_ms() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}
