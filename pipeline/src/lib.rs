//! The kerf pipeline as a library: ONNX → IR → lossless rewrites → native
//! code, with a report from every stage.
//!
//! - [`Session`] ([`session`]): the stages — import, optimize, compile, jit —
//!   that the `kerf` CLI, tests and the tuner all go through, so a model is
//!   the same bytes whichever way it is compiled.
//! - [`measure`]: the measure stage (timed calls, median and quantiles).
//! - [`inputs`], [`npy`]: `.npy` files as model inputs and outputs;
//!   [`compare`]: outputs against references (`kerf run --expect`).
//! - [`Build`]: the `build.rs` helper (`prost-build`/`cc` style) on top.
//!
//! Layering: this crate sits above the frontend (`kerf-onnx`), the passes
//! and the targets, and below the driver; nothing below depends on it.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

mod build;
pub mod compare;
pub mod compression;
pub mod dataset;
pub mod inputs;
pub mod measure;
mod names;
pub mod npy;
pub mod session;

use std::path::PathBuf;

use thiserror::Error;

pub use build::Build;
pub use kerf_passes::PassOptions;
pub use kerf_targets::ProgressHook;
pub use names::{c_identifier, default_name};
pub use session::{Optimized, Session, Stage};

/// Why a stage failed.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The model could not be read or imported.
    #[error("cannot import '{path}': {source}")]
    Import {
        /// The model file.
        path: PathBuf,
        /// What the frontend found.
        source: Box<kerf_onnx::ImportError>,
    },
    /// The model needs an input constant (it decides a shape or a branch).
    #[error("cannot import '{path}': {source}; model input '{input}' decides it: bind it to a value with --bind {input}=FILE.npy (it then leaves the compiled signature)")]
    NeedsBinding {
        /// The model file.
        path: PathBuf,
        /// What the frontend found.
        source: Box<kerf_onnx::ImportError>,
        /// The model input to bind.
        input: String,
    },
    /// The compress stage failed.
    #[error(transparent)]
    Compress(#[from] kerf_compress::CompressError),
    /// A rewrite phase failed.
    #[error(transparent)]
    Passes(#[from] kerf_passes::PassError),
    /// Code generation failed.
    #[error("cannot compile '{path}': {source}")]
    Compile {
        /// The model file.
        path: PathBuf,
        /// What the code generator found.
        source: kerf_targets::TargetError,
    },
    /// Writing an archive failed.
    #[error(transparent)]
    Target(#[from] kerf_targets::TargetError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Inconsistent options.
    #[error("{0}")]
    Config(String),
    /// A model input that is missing or does not match what the model takes.
    #[error("input '{input}' {msg}")]
    Input {
        /// The input's name.
        input: String,
        /// What is wrong.
        msg: String,
    },
    /// A `.npy` file that cannot be read or written.
    #[error("'{path}': {msg}")]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The runtime refused (memory for the arena or an output that cannot
    /// be allocated) or the generated code returned an error status.
    #[error("{0}")]
    Runtime(#[from] kerf_runtime::RuntimeError),
    /// An index read at run time was outside its axis
    /// ([`kerf_runtime::status::INDEX_OUT_OF_RANGE`]), in one of these nodes
    /// (each Gather whose indices the model computes or takes as an input,
    /// with its axis' size; [`PipelineError::in_graph`]).
    #[error(
        "an index read at run time was outside its axis in {}: a Gather's indices must lie in [-n, n) for an axis of n; the run stopped there",
        .0.join(" or ")
    )]
    IndexOutOfRange(Vec<String>),
}

impl PipelineError {
    /// This error with what `g` (the graph the model was compiled from)
    /// says of it: a run's index fault names the nodes that can raise it.
    pub fn in_graph(self, g: &kerf_ir::Graph) -> PipelineError {
        use kerf_runtime::{status, RuntimeError};
        if !matches!(self, PipelineError::Runtime(RuntimeError::Status(status::INDEX_OUT_OF_RANGE))) {
            return self;
        }
        let nodes: Vec<String> = g
            .nodes
            .iter()
            .filter_map(|n| match n.op {
                kerf_ir::Op::Gather { axis } if g.const_of(n.inputs[1]).is_none() => {
                    let size = g.ty(n.inputs[0]).shape[axis];
                    Some(format!("Gather '{}' (axis {axis} of size {size})", n.name))
                }
                _ => None,
            })
            .collect();
        if nodes.is_empty() {
            return self;
        }
        PipelineError::IndexOutOfRange(nodes)
    }
}
