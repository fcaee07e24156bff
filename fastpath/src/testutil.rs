//! What the crate's tests share.

/// The next value of a 64-bit linear congruential generator (Knuth's
/// MMIX constants): reproducible pseudo-random test inputs.
pub fn lcg(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *seed
}
