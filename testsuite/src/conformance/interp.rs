//! A debugging backend: runs a graph node by node with kerf-ir's reference
//! evaluator ([`kerf_ir::eval::eval_graph`], the oracle the kernels and
//! rewrites are tested against). It covers fewer ops than the JIT and
//! computes floats in f64, so it is a second opinion when the JIT and a
//! reference disagree, not the backend the manifest is blessed for.

use kerf_ir::{Graph, IrError, Tensor};

use super::exec::ExecError;

/// Evaluates `g` on `inputs` (one per graph input, already type-checked).
/// A node the evaluator cannot compute is reported as unsupported.
pub fn run(g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, ExecError> {
    kerf_ir::eval::eval_graph(g, inputs).map_err(|e| match e {
        IrError::Node { node, op, msg } => ExecError::Unsupported { node, op, msg },
        other => ExecError::Other(other.to_string()),
    })
}
