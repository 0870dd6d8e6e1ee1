//! The frontend's error type. `Display` is the message a user sees, so every
//! variant names the file, tensor, input or node it is about.

use std::path::PathBuf;

use kerf_ir::IrError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ImportError {
    #[error("cannot read '{}': {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed ONNX protobuf: {0}")]
    Protobuf(String),
    /// A problem with the model as a whole (version, graph structure, I/O).
    #[error("{0}")]
    Model(String),
    #[error("unsupported operators: {0}")]
    Unsupported(String),
    #[error("tensor '{name}': {msg}")]
    Tensor { name: String, msg: String },
    #[error("node '{node}' ({op}): {msg}")]
    Node { node: String, op: String, msg: String },
    #[error(transparent)]
    Ir(#[from] IrError),
}

impl ImportError {
    pub(crate) fn model(msg: impl Into<String>) -> ImportError {
        ImportError::Model(msg.into())
    }
    pub(crate) fn tensor(name: &str, msg: impl Into<String>) -> ImportError {
        ImportError::Tensor { name: name.to_string(), msg: msg.into() }
    }
}
