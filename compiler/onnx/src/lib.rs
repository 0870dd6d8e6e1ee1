//! ONNX frontend: turns an ONNX file into a [`kerf_ir::Graph`] with fully
//! static shapes.
//!
//! Pipeline: [`proto`] decodes the protobuf into plain structs, [`tensor`]
//! turns stored tensors (inline or external) into IR tensors, [`import`]
//! checks the model (opset, domains, all unsupported ops at once, dynamic
//! input dims) and walks the nodes in order, asking the converter registered
//! in [`ops`] for each op type. Nodes whose inputs are all constants are
//! folded, so exporter shape subgraphs disappear; inputs that shape a result
//! must be constant after folding.
#![warn(missing_docs)]
#![warn(unreachable_pub)]

mod attrs;
mod error;
pub mod export;
mod graph_io;
mod import;
mod ops;
mod order;
mod proto;
mod tensor;

use std::collections::BTreeMap;
use std::path::Path;

use kerf_ir::{Graph, Tensor};

pub use error::{declined_reason, ImportError, TypeSite, UnsupportedOp};
pub use import::MAX_OPSET;

/// Options for an import.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Static shapes for inputs whose declared shape has symbolic or unknown
    /// dimensions (or no shape at all).
    pub input_shapes: BTreeMap<String, Vec<usize>>,
    /// Graph inputs bound to constant values: each becomes a constant
    /// (`Origin::Derived`) instead of an input, which specialises the graph
    /// to that value the way `input_shapes` specialises it to a shape. Meant
    /// for inputs that shape a result (Reshape's shape, Slice's starts,
    /// Resize's scales, ...; see [`ImportError::NonConstantInput`]); the
    /// tensor must match the input's declared element type and shape.
    pub constant_inputs: BTreeMap<String, Tensor>,
    /// Graph name; defaults to the file stem, else "model".
    pub name: Option<String>,
    /// Types of sequence and optional graph inputs (their lengths and
    /// presence are static, like tensor shapes). Each tensor inside becomes
    /// one graph input: `name` for an optional tensor, `name[i]` for the
    /// i-th element of a sequence (see [`IoValue::leaves`]). Sequence and
    /// optional graph outputs are flattened the same way.
    pub structured_inputs: BTreeMap<String, IoType>,
}

pub use proto::IoKind;

/// A graph input or output value: a tensor, a sequence of values, or an
/// optional value.
#[derive(Clone, Debug, PartialEq)]
pub enum IoValue {
    /// A single tensor.
    Tensor(Tensor),
    /// A sequence of values, in order.
    Sequence(Vec<IoValue>),
    /// An optional value; `None` when absent.
    Optional(Option<Box<IoValue>>),
}

/// The static type of an [`IoValue`]: tensor types, sequence lengths and
/// optional presence.
#[derive(Clone, Debug, PartialEq)]
pub enum IoType {
    /// A tensor of this element type and shape.
    Tensor(kerf_ir::TensorType),
    /// A sequence of this length, with the type of each element.
    Sequence(Vec<IoType>),
    /// An optional value: the inner type when present, `None` when absent.
    Optional(Option<Box<IoType>>),
}

impl IoValue {
    /// The tensors inside, in flattening order, with their graph names
    /// (`name`, `name[i]` for sequence elements, nested `name[i][j]`).
    pub fn leaves(&self, name: &str) -> Vec<(String, Tensor)> {
        match self {
            IoValue::Tensor(t) => vec![(name.to_string(), t.clone())],
            IoValue::Sequence(items) => {
                items.iter().enumerate().flat_map(|(i, v)| v.leaves(&format!("{name}[{i}]"))).collect()
            }
            IoValue::Optional(Some(v)) => v.leaves(name),
            IoValue::Optional(None) => Vec::new(),
        }
    }

    /// The static type of this value (dtypes and shapes of its tensors,
    /// sequence lengths, optional presence).
    pub fn io_type(&self) -> IoType {
        match self {
            IoValue::Tensor(t) => IoType::Tensor(kerf_ir::TensorType::new(t.dtype(), t.shape().to_vec())),
            IoValue::Sequence(items) => IoType::Sequence(items.iter().map(IoValue::io_type).collect()),
            IoValue::Optional(v) => IoType::Optional(v.as_ref().map(|v| Box::new(v.io_type()))),
        }
    }
}

fn value_from_def(v: proto::ValueDef) -> Result<IoValue, ImportError> {
    Ok(match v {
        proto::ValueDef::Tensor(t) => IoValue::Tensor(tensor::convert_owned(t, None)?),
        proto::ValueDef::Sequence(items) => {
            IoValue::Sequence(items.into_iter().map(value_from_def).collect::<Result<_, _>>()?)
        }
        proto::ValueDef::Optional(v) => IoValue::Optional(match v {
            Some(v) => Some(Box::new(value_from_def(*v)?)),
            None => None,
        }),
    })
}

/// Decodes a serialized `TensorProto`, `SequenceProto` or `OptionalProto`
/// (test data of a graph input/output of that [`IoKind`]).
pub fn read_value_proto(bytes: &[u8], kind: &IoKind) -> Result<IoValue, ImportError> {
    value_from_def(proto::parse_value(bytes, kind)?)
}

/// The structure of a model's graph inputs (initializers excluded) and
/// outputs, by name; `None` for types other than tensor/sequence/optional.
#[allow(clippy::type_complexity)]
pub fn model_io_kinds(
    path: &Path,
) -> Result<(Vec<(String, Option<IoKind>)>, Vec<(String, Option<IoKind>)>), ImportError> {
    let bytes = std::fs::read(path).map_err(|e| ImportError::Io { path: path.to_path_buf(), source: e })?;
    let m = proto::parse_model(&bytes)?;
    let g = m.graph.ok_or_else(|| ImportError::model("model has no graph"))?;
    let inits: std::collections::HashSet<&str> = g.initializers.iter().map(|t| t.name.as_str()).collect();
    let ins = g
        .inputs
        .iter()
        .filter(|i| !inits.contains(i.name.as_str()))
        .map(|i| (i.name.clone(), i.kind.clone()))
        .collect();
    let outs = g.outputs.iter().map(|o| (o.name.clone(), o.kind.clone())).collect();
    Ok((ins, outs))
}

/// Loads a model file. External data is resolved relative to the file's folder.
pub fn load_model(path: &Path, opts: &ImportOptions) -> Result<Graph, ImportError> {
    let bytes = std::fs::read(path).map_err(|e| ImportError::Io { path: path.to_path_buf(), source: e })?;
    let base = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => Path::new("."),
    };
    let name = opts
        .name
        .clone()
        .or_else(|| path.file_stem().and_then(|s| s.to_str()).map(str::to_string))
        .unwrap_or_else(|| "model".to_string());
    let model = proto::parse_model(&bytes)?;
    import::import(model, Some(base), opts, name)
}

/// Imports a model from memory. `base_dir` is where external data lives
/// (`None`: a model with external data is an error).
pub fn load_model_bytes(bytes: &[u8], base_dir: Option<&Path>, opts: &ImportOptions) -> Result<Graph, ImportError> {
    let name = opts.name.clone().unwrap_or_else(|| "model".to_string());
    let model = proto::parse_model(bytes)?;
    import::import(model, base_dir, opts, name)
}

/// Decodes a serialized `TensorProto` (the `.pb` files of ONNX test data).
pub fn read_tensor_proto(bytes: &[u8]) -> Result<(String, Tensor), ImportError> {
    let t = proto::parse_tensor(bytes)?;
    let name = t.name.clone();
    let tensor = tensor::convert_owned(t, None)?;
    Ok((name, tensor))
}

/// The ONNX op types this frontend converts.
pub fn supported_ops() -> &'static [&'static str] {
    ops::names()
}
