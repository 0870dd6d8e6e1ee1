//! The codesign loop (`kerf tune`): which compression each layer gets is
//! decided by what the generated code measurably does, under an accuracy
//! contract the user can audit.
//!
//! 1. **Baseline**: the FP32 model's metric on the validation data and its
//!    latency (median of timed JIT runs on this machine).
//! 2. **Per-layer variants** ([`variants`]): int8, 3x3/5x5 patterns with 25% or
//!    50% connectivity (alone and with int8; with int8, patterns shared by
//!    quads of input channels too), low rank for products and
//!    convs, Tucker-2 for KxK convs, 2:4 sparsity. Each is
//!    applied to its layer alone, the whole model is compressed, run on the
//!    validation data and timed: its metric drop, latency and weight bytes
//!    are *measured*, not estimated.
//! 3. **Search**: a dynamic programme (a multiple-choice knapsack over the
//!    discretised budget, SPDY-style) picks at most one variant per layer
//!    with the largest summed benefit ([`Objective`]: latency first and
//!    weight bytes second, latency differences within [`NOISE`] counting
//!    as ties; or weight bytes alone) whose summed metric costs fit the
//!    budget; the combined plan is then verified end to end, and while it
//!    misses the budget a chosen layer is reverted (NNCF's accuracy
//!    control): the one whose output error alone is largest on the
//!    quarter of the validation samples where the combined plan strays
//!    furthest from FP32.
//! 4. **Single-technique plans** (int8 everywhere, patterns everywhere, low
//!    rank everywhere) are measured the same way, for the report; timed
//!    together with the baseline and the searched plan, under the latency
//!    objective the best of them within the budget is kept.
//!
//! The metric is top-1 against labels, output SNR against FP32, or the
//! user's own command ([`metric`]); plans run on the host JIT or, with a
//! runner, on the target itself ([`target_runner`]: qemu-user, ssh, adb);
//! measurements are cached on disk ([`Cache`]).
//!
//! Deterministic for given data: compression is, and the search orders
//! ties by layer and variant. Latencies (each the least of three medians;
//! the baseline the lesser of its timings before and after the variants)
//! vary run to run, so the plan a latency search picks can too where
//! variants are within a few percent of each other — except that a re-run
//! from the cache reads back the same measurements and picks the same
//! plan; a size search does not depend on timing.
#![warn(missing_docs)]
#![warn(unreachable_pub)]

mod cache;
mod choose;
pub mod metric;
mod options;
mod report;
mod search;
mod segment;
pub mod target_runner;
mod variants;

pub use cache::Cache;
pub use options::{Data, Evaluated, LayerRow, Metric, Objective, Outcome, Progress, TuneOptions, NOISE};
pub use report::write_report;
pub use search::tune;
pub use target_runner::TargetRunner;
pub use variants::{variants, Variant};

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
    /// The user's metric command failed or printed no number.
    #[error("{0}")]
    Metric(String),
    /// Building or running a plan on the target through the runner failed.
    #[error("{0}")]
    Runner(String),
    /// Writing the report, the cache or the metric command's inputs failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A folder name under the system's temporary directory unique to this
/// process and call (`kerf-<what>-<pid>-<n>`).
fn scratch_dir(what: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("kerf-{what}-{}-{n}", std::process::id()))
}

/// `s` quoted for `sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The last lines of a tool's stderr, for an error message.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(6)..].join("\n")
}
