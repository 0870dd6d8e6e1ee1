//! The codesign loop (`kerf tune`): which compression each layer gets is
//! decided by what the generated code measurably does, under an accuracy
//! contract the user can audit.
//!
//! 1. **Baseline**: the FP32 model's metric on the validation data and its
//!    latency (median of timed JIT runs on this machine).
//! 2. **Per-layer variants** ([`variants`]): int8, 3x3 patterns with 25% or
//!    50% connectivity (alone and with int8), low rank for products. Each is
//!    applied to its layer alone, the whole model is compressed, run on the
//!    validation data and timed: its metric drop, latency and weight bytes
//!    are *measured*, not estimated.
//! 3. **Search**: the variants are taken greedily by benefit per unit of
//!    metric drop ([`Objective`]: latency first and weight bytes second,
//!    latency differences within [`NOISE`] counting as ties; or weight
//!    bytes alone), at most one per
//!    layer, while the summed drops fit the budget; the combined plan is
//!    then verified end to end, and while it misses the budget the chosen
//!    layer with the largest drop is reverted (NNCF's accuracy control).
//! 4. **Single-technique plans** (int8 everywhere, patterns everywhere, low
//!    rank everywhere) are measured the same way, for the report.
//!
//! Deterministic for given data: compression is, and the search orders
//! ties by layer and variant. Latencies (each the least of three medians,
//! the baseline timed again at the end to show drift) vary run to run, so the plan a
//! latency search picks can too where variants are within a few percent of
//! each other; a size search does not depend on timing.
#![warn(missing_docs)]
#![warn(unreachable_pub)]

mod report;
mod search;

pub use report::write_report;
pub use search::{tune, variants, Data, Evaluated, LayerRow, Metric, Objective, Outcome, TuneOptions, Variant, NOISE};

/// What can go wrong while tuning.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// Importing, compressing, compiling or running a plan failed.
    #[error(transparent)]
    Pipeline(#[from] kerf_pipeline::PipelineError),
    /// The data or options cannot be tuned with (no validation samples,
    /// top-1 without labels, ...).
    #[error("{0}")]
    Config(String),
    /// Writing the report failed.
    #[error("writing the report: {0}")]
    Io(#[from] std::io::Error),
}
