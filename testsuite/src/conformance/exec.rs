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

/// An 8-byte aligned copy of `bytes` (the runtime checks element alignment).
fn aligned_copy(bytes: &[u8]) -> Vec<u64> {
    let mut v = vec![0u64; bytes.len().div_ceil(8)];
    if let Some(dst) = u64_bytes_mut(&mut v).get_mut(..bytes.len()) {
        dst.copy_from_slice(bytes);
    }
    v
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

/// Runs `jit`'s model once on `inputs` (copied to 8-byte aligned storage) and
/// returns each output's bytes, as strictly as a test can: the arena is
/// poisoned (0xFF bytes, NaNs: scratch read before it is written shows),
/// every output starts as [`GUARD`] bytes (an element no kernel writes
/// shows) and has [`GUARD_WORDS`] more before and after it that must stay (a
/// store before its start or past its end is an error).
pub fn run_guarded(jit: &JitModel, inputs: &[Tensor]) -> Result<Vec<Vec<u8>>, String> {
    let model = jit.model();
    let in_store: Vec<Vec<u64>> = inputs.iter().map(|t| aligned_copy(t.bytes())).collect();
    let in_views: Vec<&[u8]> =
        in_store.iter().zip(inputs).map(|(s, t)| u64_bytes(s).get(..t.bytes().len()).unwrap_or(&[])).collect();
    let out_lens: Vec<usize> = model.info().outputs.iter().map(|t| t.bytes).collect();
    // each output: guard words, the output (starting as guard bytes), guard words
    let head = 8 * GUARD_WORDS;
    let mut out_store: Vec<Vec<u64>> = out_lens
        .iter()
        .map(|&len| vec![u64::from_ne_bytes([GUARD; 8]); GUARD_WORDS + len.div_ceil(8) + GUARD_WORDS])
        .collect();
    {
        let mut out_views: Vec<&mut [u8]> = out_store
            .iter_mut()
            .zip(&out_lens)
            .map(|(s, &len)| u64_bytes_mut(s).get_mut(head..head + len).unwrap_or(&mut []))
            .collect();
        let mut arena = model.new_arena();
        arena.poison(0xFF);
        model.run(&in_views, &mut out_views, &mut arena).map_err(|e| format!("run: {e}"))?;
    }
    out_store
        .iter()
        .zip(&out_lens)
        .enumerate()
        .map(|(i, (s, &len))| {
            let bytes = u64_bytes(s);
            if let Some(at) = bytes[..head].iter().position(|&b| b != GUARD) {
                return Err(format!("output {i}: a store {} bytes before its start", head - at));
            }
            match bytes[head + len..].iter().position(|&b| b != GUARD) {
                Some(at) => Err(format!("output {i}: a store {at} bytes past its end")),
                None => Ok(bytes[head..head + len].to_vec()),
            }
        })
        .collect()
}

/// The byte every output buffer starts as and its guard words hold.
const GUARD: u8 = 0xA5;

/// 8-byte words before and after each output that no kernel may write (a
/// 64-byte vector store past either end reaches at most this far).
const GUARD_WORDS: usize = 8;

fn u64_bytes(v: &[u64]) -> &[u8] {
    // SAFETY: u8 has alignment 1 and every byte of a u64 is initialised;
    // the length covers exactly the u64 storage.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

fn u64_bytes_mut(v: &mut [u64]) -> &mut [u8] {
    // SAFETY: as in `u64_bytes`; any byte pattern is a valid u64, and the
    // borrow is exclusive.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}
