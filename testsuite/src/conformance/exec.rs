//! The execution stage: runs an imported (and optimised) graph on inputs.
//!
//! [`execute`] is the one function a backend plugs into. The default backend
//! is kerf-targets' Cranelift JIT ([`Backend::Jit`]); [`Backend::Interp`]
//! runs kerf-ir's reference evaluator instead, for a second opinion.
//! Select with `KERF_BACKEND=jit|interp`.

use kerf_ir::{Graph, Tensor};
use kerf_targets::{jit_compile, CompileOptions, JitModel, TargetError};
use thiserror::Error;

use super::interp;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Jit,
    Interp,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Jit => "jit",
            Backend::Interp => "interp",
        }
    }

    pub fn parse(s: &str) -> Option<Backend> {
        match s {
            "jit" => Some(Backend::Jit),
            "interp" => Some(Backend::Interp),
            _ => None,
        }
    }
}

#[derive(Debug, Error)]
pub enum ExecError {
    /// The backend does not implement this node (op, variant or dtype).
    #[error("node '{node}' ({op}) is not supported: {msg}")]
    Unsupported { node: String, op: String, msg: String },
    /// Compilation or execution failed for another reason.
    #[error("node '{node}' ({op}): {msg}")]
    Failed { node: String, op: String, msg: String },
    #[error("{0}")]
    Other(String),
}

/// Runs `g` on `inputs` (one per graph input, types already checked against
/// the graph) and returns one tensor per graph output.
pub fn execute(backend: Backend, g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, ExecError> {
    match backend {
        Backend::Jit => run_jit(g, inputs),
        Backend::Interp => interp::run(g, inputs),
    }
}

fn from_target(e: TargetError) -> ExecError {
    match e {
        // Report the first node; all of them are in the message.
        TargetError::Unsupported(nodes) => match nodes.first() {
            Some(n) => ExecError::Unsupported {
                node: n.node.clone(),
                op: n.op.clone(),
                msg: if nodes.len() > 1 {
                    format!("{} (and {} more node(s))", n.reason, nodes.len() - 1)
                } else {
                    n.reason.clone()
                },
            },
            None => ExecError::Other("backend reported an empty list of unsupported nodes".into()),
        },
        TargetError::Codegen { func, msg } => {
            ExecError::Failed { node: func, op: "codegen".into(), msg: format!("Cranelift: {msg}") }
        }
        other => ExecError::Other(other.to_string()),
    }
}

fn run_jit(g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, ExecError> {
    let jit = jit_compile(g, &CompileOptions::host("kerf_case")).map_err(from_target)?;
    let outs = run_guarded(&jit, inputs).map_err(ExecError::Other)?;
    if g.outputs.len() != outs.len() {
        return Err(ExecError::Other(format!(
            "compiled model has {} outputs, graph has {}",
            outs.len(),
            g.outputs.len()
        )));
    }
    g.outputs
        .iter()
        .zip(outs)
        .map(|(o, bytes)| {
            let ty = g.ty(o.value);
            Tensor::from_bytes(ty.dtype, ty.shape.clone(), bytes)
                .map_err(|e| ExecError::Other(format!("output '{}': {e}", o.name)))
        })
        .collect()
}

/// Runs `jit`'s model once on `inputs` through the runtime's strictest run
/// (the runtime's `Model::run_guarded`: aligned input copies, a poisoned
/// arena, every output starting as guard bytes with more before and after
/// it that must stay) and returns each output's bytes: an unwritten
/// element, a store outside an output or a read of unwritten scratch fails.
pub fn run_guarded(jit: &JitModel, inputs: &[Tensor]) -> Result<Vec<Vec<u8>>, String> {
    let views: Vec<&[u8]> = inputs.iter().map(Tensor::bytes).collect();
    // SAFETY: no runtime: the generated code calls nothing of the host.
    unsafe { jit.model().run_guarded(&views, None) }.map_err(|e| format!("run: {e}"))
}
