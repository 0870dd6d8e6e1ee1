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

mod attrs;
mod error;
mod import;
mod ops;
mod proto;
mod tensor;

use std::collections::BTreeMap;
use std::path::Path;

use kerf_ir::{Graph, Tensor};

pub use error::{ImportError, TypeSite, UnsupportedOp};
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
