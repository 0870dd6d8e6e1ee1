//! LSTM and GRU (ONNX semantics, layout `[seq, batch, input]`).
//! Not implemented yet: reported as unsupported.

use super::{Kernel, LResult};

pub fn lower(k: &mut Kernel) -> LResult {
    Err(format!("{} kernels are not implemented yet", k.node.op.name()))
}
