//! A tiny ModelProto builder for the frontend tests.
#![allow(dead_code)]

use std::path::Path;

use kerf_ir::{Graph, Op};
use kerf_onnx::{ImportError, ImportOptions};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::type_proto;
use onnx_protobuf::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use protobuf::Message;

pub const F32: i32 = 1;
pub const I64: i32 = 7;

pub enum D {
    V(i64),
    P(&'static str),
}

pub fn value_info(name: &str, elem: i32, dims: Option<Vec<D>>) -> ValueInfoProto {
    let mut tt = type_proto::Tensor::new();
    tt.elem_type = elem;
    if let Some(dims) = dims {
        let mut sh = TensorShapeProto::new();
        for d in dims {
            let mut dim = Dimension::new();
            dim.value = Some(match d {
                D::V(v) => dimension::Value::DimValue(v),
                D::P(p) => dimension::Value::DimParam(p.to_string()),
            });
            sh.dim.push(dim);
        }
        tt.shape = Some(sh).into();
    }
    let mut tp = TypeProto::new();
    tp.value = Some(type_proto::Value::TensorType(tt));
    let mut v = ValueInfoProto::new();
    v.name = name.to_string();
    v.type_ = Some(tp).into();
    v
}

pub fn tensor_f32(name: &str, dims: &[i64], vals: &[f32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_string();
    t.dims = dims.to_vec();
    t.data_type = F32;
    t.raw_data = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    t
}

pub fn tensor_i64(name: &str, dims: &[i64], vals: &[i64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_string();
    t.dims = dims.to_vec();
    t.data_type = I64;
    t.int64_data = vals.to_vec();
    t
}

pub fn ai(name: &str, v: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INT.into();
    a.i = v;
    a
}
pub fn af(name: &str, v: f32) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::FLOAT.into();
    a.f = v;
    a
}
pub fn ais(name: &str, v: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INTS.into();
    a.ints = v.to_vec();
    a
}
pub fn afs(name: &str, v: &[f32]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::FLOATS.into();
    a.floats = v.to_vec();
    a
}
pub fn astr(name: &str, v: &str) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::STRING.into();
    a.s = v.as_bytes().to_vec();
    a
}
pub fn at(name: &str, t: TensorProto) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::TENSOR.into();
    a.t = Some(t).into();
    a
}

pub struct M {
    pub model: ModelProto,
}

impl M {
    pub fn new(opset: i64) -> M {
        let mut model = ModelProto::new();
        model.ir_version = 8;
        let mut o = OperatorSetIdProto::new();
        o.version = opset;
        model.opset_import.push(o);
        model.graph = Some(GraphProto::new()).into();
        M { model }
    }
    fn g(&mut self) -> &mut GraphProto {
        self.model.graph.mut_or_insert_default()
    }
    /// A float input with static dims.
    pub fn input(mut self, name: &str, dims: &[i64]) -> M {
        let vi = value_info(name, F32, Some(dims.iter().map(|&d| D::V(d)).collect()));
        self.g().input.push(vi);
        self
    }
    pub fn input_vi(mut self, vi: ValueInfoProto) -> M {
        self.g().input.push(vi);
        self
    }
    pub fn init(mut self, t: TensorProto) -> M {
        self.g().initializer.push(t);
        self
    }
    pub fn init_f32(self, name: &str, dims: &[i64], vals: &[f32]) -> M {
        self.init(tensor_f32(name, dims, vals))
    }
    /// A float initializer filled with `0.01 * i`.
    pub fn weight(self, name: &str, dims: &[i64]) -> M {
        let n: i64 = dims.iter().product();
        let vals: Vec<f32> = (0..n).map(|i| 0.01 * i as f32).collect();
        self.init(tensor_f32(name, dims, &vals))
    }
    pub fn init_i64(self, name: &str, dims: &[i64], vals: &[i64]) -> M {
        self.init(tensor_i64(name, dims, vals))
    }
    pub fn node(mut self, op: &str, name: &str, ins: &[&str], outs: &[&str], attrs: Vec<AttributeProto>) -> M {
        let mut n = NodeProto::new();
        n.op_type = op.into();
        n.name = name.into();
        n.input = ins.iter().map(|s| s.to_string()).collect();
        n.output = outs.iter().map(|s| s.to_string()).collect();
        n.attribute = attrs;
        self.g().node.push(n);
        self
    }
    /// Shorthand: node named after its first output.
    pub fn op(self, op: &str, ins: &[&str], out: &str, attrs: Vec<AttributeProto>) -> M {
        let name = out.to_string();
        self.node(op, &name, ins, &[out], attrs)
    }
    pub fn output(mut self, name: &str) -> M {
        let mut v = ValueInfoProto::new();
        v.name = name.into();
        self.g().output.push(v);
        self
    }
    pub fn bytes(&self) -> Vec<u8> {
        self.model.write_to_bytes().unwrap()
    }
    pub fn import(&self) -> Result<Graph, ImportError> {
        kerf_onnx::load_model_bytes(&self.bytes(), None, &ImportOptions::default())
    }
    pub fn import_in(&self, dir: &Path) -> Result<Graph, ImportError> {
        kerf_onnx::load_model_bytes(&self.bytes(), Some(dir), &ImportOptions::default())
    }
    pub fn ok(&self) -> Graph {
        match self.import() {
            Ok(g) => g,
            Err(e) => panic!("import failed: {e}"),
        }
    }
    pub fn err(&self) -> String {
        match self.import() {
            Ok(_) => panic!("import unexpectedly succeeded"),
            Err(e) => e.to_string(),
        }
    }
}

/// Shape of the graph output `name`.
pub fn out_shape(g: &Graph, name: &str) -> Vec<usize> {
    let o = g.outputs.iter().find(|o| o.name == name).expect("no such output");
    g.ty(o.value).shape.clone()
}

/// The ops of the graph's nodes, in order.
pub fn ops(g: &Graph) -> Vec<&Op> {
    g.nodes.iter().map(|n| &n.op).collect()
}

/// The op names, in order.
pub fn op_names(g: &Graph) -> Vec<&'static str> {
    g.nodes.iter().map(|n| n.op.name()).collect()
}

pub fn assert_contains(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} should contain {p:?}");
    }
}
