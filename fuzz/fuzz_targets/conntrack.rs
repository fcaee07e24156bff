//! Arbitrary sequences of packets (built from a small vocabulary of flows,
//! flags and sequence numbers, raw frames, fragments), time steps, sweeps,
//! flushes and dumps through the connection tracker, with a small
//! connection limit: no panic, the table within its limit, its counters
//! and keys consistent, the fragments adding up, checksums right on what
//! leaves (`fastpath::conntrack::fuzzing`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fastpath::conntrack::fuzzing::run(data));
