//! The only module that reads `onnx_protobuf`/`protobuf` types ([`crate::export`]
//! writes them). It decodes
//! the bytes with `protobuf::Message::parse_from_bytes` and copies what the
//! importer needs into plain structs, so a later switch of protobuf library
//! stays local. It never calls onnx-protobuf's `as_value()` helper, which
//! panics on malformed attributes: attribute kinds are decided here from the
//! declared type (or, for old files that leave it unset, from which field is
//! populated).

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataLocation;
use onnx_protobuf::tensor_shape_proto::dimension;
use onnx_protobuf::type_proto;
use onnx_protobuf::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use protobuf::Message;

use crate::ImportError;

#[derive(Clone, Debug, Default)]
pub(crate) struct ModelDef {
    pub ir_version: i64,
    /// `(domain, version)`; the default domain is spelled `""`.
    pub opsets: Vec<(String, i64)>,
    pub graph: Option<GraphDef>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct GraphDef {
    pub nodes: Vec<NodeDef>,
    pub initializers: Vec<TensorDef>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct NodeDef {
    pub name: String,
    pub op_type: String,
    pub domain: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: Vec<AttrDef>,
}

#[derive(Clone, Debug)]
pub(crate) struct AttrDef {
    pub name: String,
    pub value: AttrValue,
}

#[derive(Clone, Debug)]
pub(crate) enum AttrValue {
    Float(f32),
    Int(i64),
    Str(Vec<u8>),
    Tensor(Box<TensorDef>),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Strings(Vec<Vec<u8>>),
    /// A subgraph (If branches, Loop/Scan bodies, SequenceMap bodies).
    Graph(Box<GraphDef>),
    /// A kind the importer never needs (graph lists, sparse tensors, type protos).
    Other(&'static str),
}

impl AttrValue {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            AttrValue::Float(_) => "a float",
            AttrValue::Int(_) => "an int",
            AttrValue::Str(_) => "a string",
            AttrValue::Tensor(_) => "a tensor",
            AttrValue::Floats(_) => "a list of floats",
            AttrValue::Ints(_) => "a list of ints",
            AttrValue::Strings(_) => "a list of strings",
            AttrValue::Graph(_) => "a graph",
            AttrValue::Other(k) => k,
        }
    }
}

/// A tensor as stored in the file, before its data is checked.
#[derive(Clone, Debug, Default)]
pub(crate) struct TensorDef {
    pub name: String,
    pub dims: Vec<i64>,
    pub data_type: i32,
    pub raw_data: Vec<u8>,
    pub float_data: Vec<f32>,
    pub int32_data: Vec<i32>,
    pub int64_data: Vec<i64>,
    pub double_data: Vec<f64>,
    pub uint64_data: Vec<u64>,
    /// `Some(key/value pairs)` when `data_location` is EXTERNAL.
    pub external: Option<Vec<(String, String)>>,
    /// Whether the proto used a segment (unsupported).
    pub segmented: bool,
}

#[derive(Clone, Debug)]
pub(crate) enum Dim {
    Value(i64),
    Param(String),
    Unknown,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct ValueInfo {
    pub name: String,
    /// Element type code, when the value is declared as a tensor.
    pub elem_type: Option<i32>,
    /// The declared shape; `None` when absent.
    pub dims: Option<Vec<Dim>>,
    /// Set for non-tensor types (sequence, map, optional, sparse).
    pub non_tensor: Option<&'static str>,
    /// The structure of the declared type (tensor, sequence, optional).
    pub kind: Option<IoKind>,
}

/// The structure of a graph input's or output's type: what its test data
/// holds and how it is flattened into tensors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoKind {
    /// A tensor.
    Tensor,
    /// A sequence whose elements have this kind.
    Sequence(Box<IoKind>),
    /// An optional value of this kind.
    Optional(Box<IoKind>),
}

fn io_kind(t: &onnx_protobuf::TypeProto) -> Option<IoKind> {
    match t.value.as_ref()? {
        type_proto::Value::TensorType(_) => Some(IoKind::Tensor),
        type_proto::Value::SequenceType(s) => Some(IoKind::Sequence(Box::new(io_kind(s.elem_type.as_ref()?)?))),
        type_proto::Value::OptionalType(o) => Some(IoKind::Optional(Box::new(io_kind(o.elem_type.as_ref()?)?))),
        _ => None,
    }
}

/// A test-data value: `TensorProto`, `SequenceProto` or `OptionalProto`
/// (onnx-data.proto, which onnx-protobuf does not include: decoded here
/// from the wire format).
#[derive(Clone, Debug)]
pub(crate) enum ValueDef {
    Tensor(TensorDef),
    Sequence(Vec<ValueDef>),
    Optional(Option<Box<ValueDef>>),
}

/// Reads one protobuf field: (field number, wire type, payload for
/// length-delimited fields), advancing `pos`.
fn wire_field<'b>(b: &'b [u8], pos: &mut usize) -> Result<(u64, u64, &'b [u8]), ImportError> {
    let bad = || ImportError::Protobuf("truncated or malformed value proto".into());
    let varint = |pos: &mut usize| -> Result<u64, ImportError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*pos).ok_or_else(bad)?;
            *pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad())
    };
    let key = varint(pos)?;
    let (field, wt) = (key >> 3, key & 7);
    let payload: &[u8] = match wt {
        0 => {
            varint(pos)?;
            &[]
        }
        1 | 5 => {
            let n = if wt == 1 { 8 } else { 4 };
            *pos = pos.checked_add(n).filter(|&e| e <= b.len()).ok_or_else(bad)?;
            &[]
        }
        2 => {
            let n = usize::try_from(varint(pos)?).map_err(|_| bad())?;
            let end = pos.checked_add(n).filter(|&e| e <= b.len()).ok_or_else(bad)?;
            let p = &b[*pos..end];
            *pos = end;
            p
        }
        _ => return Err(bad()),
    };
    Ok((field, wt, payload))
}

/// Decodes a test-data value of the given structure. Nesting is bounded
/// by `kind`, which comes from the model.
pub(crate) fn parse_value(bytes: &[u8], kind: &IoKind) -> Result<ValueDef, ImportError> {
    match kind {
        IoKind::Tensor => Ok(ValueDef::Tensor(parse_tensor(bytes)?)),
        // SequenceProto: tensor_values = 3, sequence_values = 5, optional_values = 7.
        IoKind::Sequence(elem) => {
            let want = match **elem {
                IoKind::Tensor => 3,
                IoKind::Sequence(_) => 5,
                IoKind::Optional(_) => 7,
            };
            let mut pos = 0;
            let mut out = Vec::new();
            while pos < bytes.len() {
                let (f, wt, p) = wire_field(bytes, &mut pos)?;
                if f == want && wt == 2 {
                    out.push(parse_value(p, elem)?);
                }
            }
            Ok(ValueDef::Sequence(out))
        }
        // OptionalProto: tensor_value = 3, sequence_value = 5, optional_value = 7.
        IoKind::Optional(elem) => {
            let want = match **elem {
                IoKind::Tensor => 3,
                IoKind::Sequence(_) => 5,
                IoKind::Optional(_) => 7,
            };
            let mut pos = 0;
            let mut out = None;
            while pos < bytes.len() {
                let (f, wt, p) = wire_field(bytes, &mut pos)?;
                if f == want && wt == 2 {
                    out = Some(Box::new(parse_value(p, elem)?));
                }
            }
            Ok(ValueDef::Optional(out))
        }
    }
}

pub(crate) fn parse_model(bytes: &[u8]) -> Result<ModelDef, ImportError> {
    // Zero bytes decode as a default ModelProto; say what is really wrong.
    if bytes.is_empty() {
        return Err(ImportError::model("the file is empty: not an ONNX model"));
    }
    let mut m = ModelProto::parse_from_bytes(bytes).map_err(|e| ImportError::Protobuf(e.to_string()))?;
    Ok(ModelDef {
        ir_version: m.ir_version,
        opsets: m.opset_import.iter().map(|o| (o.domain.clone(), o.version)).collect(),
        graph: m.graph.as_mut().map(graph),
    })
}

pub(crate) fn parse_tensor(bytes: &[u8]) -> Result<TensorDef, ImportError> {
    let mut t = TensorProto::parse_from_bytes(bytes).map_err(|e| ImportError::Protobuf(e.to_string()))?;
    Ok(tensor(&mut t))
}

/// Initializer payloads are moved out of the proto, not copied: they are
/// most of a model's bytes.
fn graph(g: &mut GraphProto) -> GraphDef {
    GraphDef {
        nodes: g.node.iter().map(node).collect(),
        initializers: g.initializer.iter_mut().map(tensor).collect(),
        inputs: g.input.iter().map(value_info).collect(),
        outputs: g.output.iter().map(value_info).collect(),
    }
}

fn node(n: &NodeProto) -> NodeDef {
    NodeDef {
        name: n.name.clone(),
        op_type: n.op_type.clone(),
        domain: n.domain.clone(),
        inputs: n.input.clone(),
        outputs: n.output.clone(),
        attrs: n.attribute.iter().map(attr).collect(),
    }
}

fn attr(a: &AttributeProto) -> AttrDef {
    let value = match a.type_.enum_value() {
        Ok(AttributeType::FLOAT) => AttrValue::Float(a.f),
        Ok(AttributeType::INT) => AttrValue::Int(a.i),
        Ok(AttributeType::STRING) => AttrValue::Str(a.s.clone()),
        Ok(AttributeType::TENSOR) => match a.t.as_ref() {
            Some(t) => AttrValue::Tensor(Box::new(tensor(&mut t.clone()))),
            None => AttrValue::Other("an empty tensor"),
        },
        Ok(AttributeType::FLOATS) => AttrValue::Floats(a.floats.clone()),
        Ok(AttributeType::INTS) => AttrValue::Ints(a.ints.clone()),
        Ok(AttributeType::STRINGS) => AttrValue::Strings(a.strings.clone()),
        Ok(AttributeType::GRAPH) => match a.g.as_ref() {
            Some(g) => AttrValue::Graph(Box::new(graph(&mut g.clone()))),
            None => AttrValue::Other("an empty graph"),
        },
        Ok(AttributeType::GRAPHS) => AttrValue::Other("a list of graphs"),
        Ok(AttributeType::SPARSE_TENSOR) | Ok(AttributeType::SPARSE_TENSORS) => AttrValue::Other("a sparse tensor"),
        Ok(AttributeType::TYPE_PROTO) | Ok(AttributeType::TYPE_PROTOS) => AttrValue::Other("a type"),
        Ok(AttributeType::TENSORS) => AttrValue::Other("a list of tensors"),
        // Files from before the type field existed: guess from the payload.
        Ok(AttributeType::UNDEFINED) | Err(_) => {
            if !a.floats.is_empty() {
                AttrValue::Floats(a.floats.clone())
            } else if !a.ints.is_empty() {
                AttrValue::Ints(a.ints.clone())
            } else if !a.strings.is_empty() {
                AttrValue::Strings(a.strings.clone())
            } else if let Some(t) = a.t.as_ref() {
                AttrValue::Tensor(Box::new(tensor(&mut t.clone())))
            } else if !a.s.is_empty() {
                AttrValue::Str(a.s.clone())
            } else if a.f != 0.0 {
                AttrValue::Float(a.f)
            } else {
                AttrValue::Int(a.i)
            }
        }
    };
    AttrDef { name: a.name.clone(), value }
}

fn tensor(t: &mut TensorProto) -> TensorDef {
    let external = match t.data_location.enum_value() {
        Ok(DataLocation::EXTERNAL) => Some(t.external_data.iter().map(|e| (e.key.clone(), e.value.clone())).collect()),
        _ => None,
    };
    TensorDef {
        name: t.name.clone(),
        dims: t.dims.clone(),
        data_type: t.data_type,
        raw_data: std::mem::take(&mut t.raw_data),
        float_data: std::mem::take(&mut t.float_data),
        int32_data: std::mem::take(&mut t.int32_data),
        int64_data: std::mem::take(&mut t.int64_data),
        double_data: std::mem::take(&mut t.double_data),
        uint64_data: std::mem::take(&mut t.uint64_data),
        external,
        segmented: t.segment.is_some(),
    }
}

fn value_info(v: &ValueInfoProto) -> ValueInfo {
    let mut out = ValueInfo { name: v.name.clone(), ..ValueInfo::default() };
    out.kind = v.type_.as_ref().and_then(io_kind);
    match v.type_.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(tt)) => {
            out.elem_type = Some(tt.elem_type);
            out.dims = tt.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(dimension::Value::DimValue(v)) => Dim::Value(*v),
                        Some(dimension::Value::DimParam(p)) => Dim::Param(p.clone()),
                        _ => Dim::Unknown,
                    })
                    .collect()
            });
        }
        Some(type_proto::Value::SequenceType(_)) => out.non_tensor = Some("a sequence"),
        Some(type_proto::Value::MapType(_)) => out.non_tensor = Some("a map"),
        Some(type_proto::Value::OptionalType(_)) => out.non_tensor = Some("an optional"),
        Some(type_proto::Value::SparseTensorType(_)) => out.non_tensor = Some("a sparse tensor"),
        Some(_) => out.non_tensor = Some("an unknown type"),
        None => {}
    }
    out
}
