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
    /// The ONNX op type.
    pub op: String,
    /// Display names of the nodes using it, in file order; nodes inside
    /// subgraphs are prefixed with `<node>/<attribute>/`.
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

/// Why an ONNX model (or test-data file) could not be imported or edited.
#[derive(Debug, Error)]
pub enum ImportError {
    /// A file could not be read.
    #[error("cannot read '{}': {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes do not decode (or the edited model does not encode) as the
    /// expected protobuf message; the string says what went wrong.
    #[error("malformed ONNX protobuf: {0}")]
    Protobuf(String),
    /// A problem with the model as a whole (version, graph structure, I/O).
    #[error("{0}")]
    Model(String),
    /// The model imports an opset newer than this frontend knows.
    #[error("model uses {domain} opset {opset}, newer than the newest supported opset {max}")]
    OpsetTooNew {
        /// The operator-set domain (`ai.onnx` for the default domain).
        domain: String,
        /// The opset version the model imports.
        opset: i64,
        /// The newest version supported for that domain.
        max: i64,
    },
    /// Every op type without a converter, in order of first use.
    #[error("unsupported operators: {}", list_unsupported(.0))]
    Unsupported(Vec<UnsupportedOp>),
    /// An input that shapes the result (or otherwise must be known at
    /// compile time) is computed at run time. `input` is the schema name of
    /// the input (`shape`, `axes`, ...), `value` the ONNX value the node
    /// reads there; binding that value with [`crate::ImportOptions::constant_inputs`]
    /// (when it is a graph input) resolves the error.
    #[error("node '{node}' ({op}): input '{input}' must be a constant (dynamic shapes are not supported)")]
    NonConstantInput {
        /// Display name of the node.
        node: String,
        /// The node's op type.
        op: String,
        /// Schema name of the input.
        input: String,
        /// Name of the ONNX value connected to that input.
        value: String,
    },
    /// An element type the IR has no dtype for. `kind` is its name
    /// (`float8e4m3fn`, `string`, ...), `code` the ONNX `TensorProto.DataType`.
    #[error("{site} '{name}': element type {kind} is not supported")]
    UnsupportedElementType {
        /// Whether a stored tensor or a graph input has the type.
        site: TypeSite,
        /// Name of the tensor or input.
        name: String,
        /// The ONNX `TensorProto.DataType` code.
        code: i32,
        /// Name of the element type (`unknown type <code>` for codes ONNX
        /// does not define).
        kind: String,
    },
    /// A stored tensor is invalid or unreadable (bad dims, wrong value
    /// count, unusable external data, ...).
    #[error("tensor '{name}': {msg}")]
    Tensor {
        /// Name of the tensor.
        name: String,
        /// What is wrong with it.
        msg: String,
    },
    /// A node cannot be converted (bad attributes, inputs or shapes).
    #[error("node '{node}' ({op}): {msg}")]
    Node {
        /// Display name of the node (its name, or `<op_lowercase>_<index>`).
        node: String,
        /// The node's op type.
        op: String,
        /// What is wrong with it.
        msg: String,
    },
    /// Building the IR graph failed.
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
