//! Running a graph on calibration samples to see one value.
//!
//! Compression needs a layer's input on every calibration sample, in the
//! FP32 network and in the network compressed so far. [`Probe`] abstracts
//! how: [`EvalProbe`] uses the reference evaluator (exact, slow: fine for
//! small models); the pipeline can supply a JIT-compiled probe.

use kerf_ir::{Graph, Tensor, ValueId};

use crate::CompressError;

/// A function from one sample's inputs to the probed value's data.
pub type ProbeFn = Box<dyn FnMut(&[Tensor]) -> Result<Vec<f32>, CompressError>>;

/// Prepares a way to compute value `v` of `g` from the graph's inputs.
pub trait Probe {
    fn prepare(&mut self, g: &Graph, v: ValueId) -> Result<ProbeFn, CompressError>;
}

/// Probes with [`kerf_ir::eval::eval_graph`] on the part of the graph the
/// value depends on.
#[derive(Clone, Copy, Debug, Default)]
pub struct EvalProbe;

impl Probe for EvalProbe {
    fn prepare(&mut self, g: &Graph, v: ValueId) -> Result<ProbeFn, CompressError> {
        let part = truncated(g, v);
        Ok(Box::new(move |inputs: &[Tensor]| {
            let out = kerf_ir::eval::eval_graph(&part, inputs).map_err(|e| CompressError::Run(e.to_string()))?;
            out.first().map(|t| t.to_f32_vec()).ok_or_else(|| CompressError::Run("no output".into()))
        }))
    }
}

/// `g` with `v` as its only output and every node `v` does not need
/// removed (inputs stay: they are the signature).
pub fn truncated(g: &Graph, v: ValueId) -> Graph {
    let mut t = g.clone();
    t.outputs.clear();
    t.add_output("probe", v);
    t.compact()
}
