use thiserror::Error;

use crate::DType;

/// Errors of IR construction, inference, parsing and evaluation.
#[derive(Debug, Error)]
pub enum IrError {
    /// A node is invalid: its op rejects its inputs, or it breaks a graph invariant.
    #[error("node '{node}' ({op}): {msg}")]
    Node {
        /// The node's name.
        node: String,
        /// Its op's name.
        op: String,
        /// What is wrong.
        msg: String,
    },
    /// An op's attributes are missing, unknown, of the wrong kind or out of range.
    #[error("{op}: {msg}")]
    Attr {
        /// The op's name.
        op: String,
        /// What is wrong.
        msg: String,
    },
    /// An op name the IR does not have.
    #[error("unknown op '{0}'")]
    UnknownOp(String),
    /// A shape whose element or byte count overflows `usize`.
    #[error("shape {0:?} has more elements than fit in memory")]
    ShapeOverflow(Vec<usize>),
    /// A constant of more than [`MAX_CONST_ELEMENTS`](crate::MAX_CONST_ELEMENTS) elements was requested.
    #[error("tensor of {shape:?} elements exceeds the limit of {limit} elements")]
    TooLarge {
        /// The requested shape.
        shape: Vec<usize>,
        /// The element limit.
        limit: usize,
    },
    /// Tensor data whose length does not fit the dtype and shape (also a reshape to another element
    /// count).
    #[error("{dtype}{shape:?} needs {expected} bytes of data, got {actual}")]
    DataLength {
        /// The element type.
        dtype: DType,
        /// The requested shape.
        shape: Vec<usize>,
        /// Bytes the dtype and shape need.
        expected: usize,
        /// Bytes supplied.
        actual: usize,
    },
    /// The text format could not be parsed.
    #[error("line {line}: {msg}")]
    Parse {
        /// The 1-based line of the error.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// The reference evaluator does not cover an op, dtype or input; constant folding keeps the node.
    #[error("cannot evaluate {op}: {msg}")]
    Eval {
        /// The op's name.
        op: String,
        /// Why it cannot be evaluated.
        msg: String,
    },
    /// A graph, weight or call breaks a structural invariant (see
    /// [`Graph::validate`](crate::Graph::validate)).
    #[error("invalid graph: {0}")]
    Invalid(String),
}
