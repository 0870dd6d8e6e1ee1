//! Lossy compression of a kerf [`Graph`], driven by a per-layer [`Plan`]
//! and a few hundred unlabelled calibration samples, without retraining.
//!
//! Every transform solves one per-layer problem (`../shared/COMPRESSION.md`
//! §1): with `W` the layer's weight as `[output channels, cols]` and `X` its
//! input as columns (im2col patches for a conv),
//!
//! ```text
//! minimise ‖W X̄ − Ŵ X‖²   with Ŵ on the int8 grid / under a pattern mask
//! ```
//!
//! where `X̄` is the input in the FP32 network and `X` the input in the
//! network compressed so far. Layers are compressed in node order
//! ([`compress`]): each one's input moments ([`hessian::Moments`]) are
//! collected by running both networks on the calibration samples through a
//! [`Probe`], then the layer is pruned ([`prune`]: OBS-chosen patterns and
//! removed kernels, least-squares compensation), its weights rounded
//! ([`quant`]: GPTQ), and a `QuantizeLinear → DequantizeLinear` pair put on
//! its input ([`rewrite`]).
//!
//! Contract: the returned graph computes what the compressed model computes
//! (weights hold the dequantised grid values, pruned weights are exact
//! zeros and their layout is recorded as [`kerf_ir::Sparsity`]); it is a
//! plain `Graph` every backend runs. The [`Report`] says per layer what was
//! done, what it cost in output error and what it saved. The same graph,
//! plan and samples give the same result, bit for bit.
//!
//! Lossy transforms are not e-graph equalities, so they live here, outside
//! `kerf-passes`; this crate depends on `kerf-ir` only (and is the one user
//! of `faer`).
#![warn(missing_docs)]
#![warn(unreachable_pub)]

mod engine;
pub mod equalize;
pub mod hessian;
pub mod layer;
pub mod linalg;
pub mod nm;
pub mod plan;
pub mod price;
pub mod probe;
pub mod prune;
pub mod quant;
mod report;
pub mod rewrite;
#[cfg(test)]
mod testutil;
pub mod tucker;

pub use engine::{compress, compress_with_progress, Calibration};
pub use plan::{
    BytePairs, Granularity, LayerSettings, NmSetting, NmSparsity, Observer, Plan, Precision, Rounding, Selection,
};
pub use probe::Probe;
pub use quant::ActQuant;
pub use report::{LayerReport, Report};

/// What can go wrong while compressing.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// The plan file is malformed or names what the model lacks.
    #[error("compression plan: {0}")]
    Plan(String),
    /// Calibration data that cannot be used.
    #[error("calibration data: {0}")]
    Calibration(String),
    /// A layer that cannot be compressed as asked.
    #[error("layer '{layer}': {msg}")]
    Layer {
        /// The layer name.
        layer: String,
        /// What went wrong.
        msg: String,
    },
    /// A factorisation failed (a singular second-moment matrix after
    /// dampening: should not happen on real data).
    #[error("numerics: {0}")]
    Numeric(String),
    /// Running the model on a calibration sample failed.
    #[error("running the model on calibration data: {0}")]
    Run(String),
}

impl CompressError {
    pub(crate) fn layer(layer: &str, msg: impl Into<String>) -> CompressError {
        CompressError::Layer { layer: layer.to_string(), msg: msg.into() }
    }
}
