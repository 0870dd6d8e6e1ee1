//! Running a graph on calibration samples to see one value.
//!
//! Compression needs a layer's input on every calibration sample, in the
//! FP32 network and in the network compressed so far. [`Probe`] abstracts
//! how, so this crate needs no code generator: the pipeline supplies one
//! that JIT-compiles [`truncated`] graphs.

use kerf_ir::{Graph, Tensor, ValueId};

use crate::CompressError;

/// A function from one sample's inputs to the probed value's data.
pub type ProbeFn = Box<dyn FnMut(&[Tensor]) -> Result<Vec<f32>, CompressError>>;

/// Prepares a way to compute value `v` of `g` from the graph's inputs.
pub trait Probe {
    /// A function from one sample's inputs (one tensor per graph input, in
    /// input order) to value `v`'s data as f32, row-major.
    fn prepare(&mut self, g: &Graph, v: ValueId) -> Result<ProbeFn, CompressError>;
}

/// `g` with `v` as its only output and every node `v` does not need
/// removed (inputs stay: they are the signature).
pub fn truncated(g: &Graph, v: ValueId) -> Graph {
    let mut t = g.clone();
    t.outputs.clear();
    t.add_output("probe", v);
    t.compact()
}
