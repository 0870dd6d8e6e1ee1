//! Test helpers.

/// A deterministic stream of uniform values in `[-0.5, 0.5)` (xorshift64
/// from `seed`, which must not be zero).
pub(crate) fn uniform(mut seed: u64) -> impl FnMut() -> f64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }
}
