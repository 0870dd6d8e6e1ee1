//! The frontend's error type. `Display` is the message a user sees, so every
//! variant names the file, tensor, input or node it is about. Variants that
//! tools act on (the conformance runner, the driver) carry structured fields,
//! so nobody has to parse the message.

use std::fmt;
use std::path::PathBuf;

use kerf_ir::IrError;
use thiserror::Error;

/// One op type the frontend has no converter for, with every node using it
/// (display names: the node name, or `<op_lowercase>_<index>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedOp {
    pub op: String,
    pub nodes: Vec<String>,
}

/// Where an unsupported element type was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeSite {
    /// A stored tensor (initializer, Constant attribute, test-data file).
    Tensor,
    /// A graph input's declared type.
    Input,
}

impl fmt::Display for TypeSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TypeSite::Tensor => "tensor",
            TypeSite::Input => "input",
        })
    }
}

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
    /// The model imports an opset newer than this frontend knows.
    #[error("model uses {domain} opset {opset}, newer than the newest supported opset {max}")]
    OpsetTooNew { domain: String, opset: i64, max: i64 },
    /// Every op type without a converter, in order of first use.
    #[error("unsupported operators: {}", list_unsupported(.0))]
    Unsupported(Vec<UnsupportedOp>),
    /// An input that shapes the result (or otherwise must be known at
    /// compile time) is computed at run time. `input` is the schema name of
    /// the input (`shape`, `axes`, ...), `value` the ONNX value the node
    /// reads there; binding that value with [`crate::ImportOptions::constant_inputs`]
    /// (when it is a graph input) resolves the error.
    #[error("node '{node}' ({op}): input '{input}' must be a constant (dynamic shapes are not supported)")]
    NonConstantInput { node: String, op: String, input: String, value: String },
    /// An element type the IR has no dtype for. `kind` is its name
    /// (`float8e4m3fn`, `string`, ...), `code` the ONNX `TensorProto.DataType`.
    #[error("{site} '{name}': element type {kind} is not supported")]
    UnsupportedElementType { site: TypeSite, name: String, code: i32, kind: String },
    #[error("tensor '{name}': {msg}")]
    Tensor { name: String, msg: String },
    #[error("node '{node}' ({op}): {msg}")]
    Node { node: String, op: String, msg: String },
    #[error(transparent)]
    Ir(#[from] IrError),
}

/// Ops kerf declines by design, with the reason (shown in the error).
/// Everything else without a converter is simply not implemented yet.
pub fn declined_reason(op: &str) -> Option<&'static str> {
    match op {
        "NonZero" | "Unique" | "NonMaxSuppression" => {
            Some("its output shape depends on the input data; kerf compiles static shapes")
        }
        "RandomUniform" | "RandomUniformLike" | "RandomNormal" | "RandomNormalLike" | "Bernoulli" | "Multinomial" => {
            Some("random sampling has no reproducible compiled form")
        }
        _ => None,
    }
}

/// "Op (node 'a'), Op2 (nodes 'b', 'c'; why)".
fn list_unsupported(ops: &[UnsupportedOp]) -> String {
    let parts: Vec<String> = ops
        .iter()
        .map(|u| {
            let list: Vec<String> = u.nodes.iter().map(|n| format!("'{n}'")).collect();
            let word = if u.nodes.len() == 1 { "node" } else { "nodes" };
            match declined_reason(&u.op) {
                Some(why) => format!("{} ({word} {}: {why})", u.op, list.join(", ")),
                None => format!("{} ({word} {})", u.op, list.join(", ")),
            }
        })
        .collect();
    parts.join(", ")
}

impl ImportError {
    pub(crate) fn model(msg: impl Into<String>) -> ImportError {
        ImportError::Model(msg.into())
    }
    pub(crate) fn tensor(name: &str, msg: impl Into<String>) -> ImportError {
        ImportError::Tensor { name: name.to_string(), msg: msg.into() }
    }
}
