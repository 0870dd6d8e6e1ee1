use thiserror::Error;

use crate::DType;

/// Errors of IR construction, inference, parsing and evaluation.
#[derive(Debug, Error)]
pub enum IrError {
    #[error("node '{node}' ({op}): {msg}")]
    Node { node: String, op: String, msg: String },
    #[error("{op}: {msg}")]
    Attr { op: String, msg: String },
    #[error("unknown op '{0}'")]
    UnknownOp(String),
    #[error("shape {0:?} has more elements than fit in memory")]
    ShapeOverflow(Vec<usize>),
    #[error("tensor of {shape:?} elements exceeds the limit of {limit} elements")]
    TooLarge { shape: Vec<usize>, limit: usize },
    #[error("{dtype}{shape:?} needs {expected} bytes of data, got {actual}")]
    DataLength { dtype: DType, shape: Vec<usize>, expected: usize, actual: usize },
    #[error("line {line}: {msg}")]
    Parse { line: usize, msg: String },
    #[error("cannot evaluate {op}: {msg}")]
    Eval { op: String, msg: String },
    #[error("invalid graph: {0}")]
    Invalid(String),
}
