//! Writing a compressed model back as standard ONNX (QDQ), by editing the
//! original model layer by layer, so ONNX Runtime (or any other tool) can
//! check the compressed model independently.
//!
//! Contract: each [`LayerEdit`] names a top-level Conv, Gemm or MatMul node
//! by its display name (the node name, or `<op_lowercase>_<index>` when it
//! has none: the importer's rule, shared; two nodes of one name are an
//! error, where the importer would suffix the second layer `_1`) whose weight is an
//! initializer or a `Constant` node's output. Its weight (and bias) are
//! replaced by new initializers; an int8 weight becomes an `INT8`
//! initializer behind a per-axis `DequantizeLinear`; an input quantiser
//! becomes `QuantizeLinear → DequantizeLinear` (uint8, per tensor) on that
//! node's input only; a factored (low-rank) layer gets its input side as a
//! node of its own before it, a Tucker-2 conv two ([`FactorEdit`]). Nothing else changes, except that the default-domain
//! opset is raised to 13 (per-axis `DequantizeLinear`) when every op of the
//! graph means the same at 13. Old weights no other node uses are dropped.
//! Output bytes are deterministic. Errors name the layer and what is wrong.
//! This module and [`crate::proto`] are the only ones touching protobuf types.

use std::collections::BTreeSet;
use std::path::Path;

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto};
use protobuf::{EnumOrUnknown, Message};

pub use kerf_ir::{ActQuant, AxisQuant};
use kerf_ir::{DType, Tensor};

use crate::ImportError;

/// What compression changed in one layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerEdit {
    /// The layer (node display) name.
    pub layer: String,
    /// New values of the weight input (input 1), f32, the same shape as in
    /// the file (pruned zeros included).
    pub weight: Tensor,
    /// Store the weight as int8 with these per-channel scales (a
    /// `DequantizeLinear` feeds the layer); `weight` must lie exactly on the
    /// grid. `None` keeps an f32 initializer.
    pub weight_quant: Option<AxisQuant>,
    /// New values of the bias (Conv input 2, Gemm input C), same shape;
    /// added (`[M]`; a Gemm's `beta` then 1) where the layer has none.
    pub bias: Option<Tensor>,
    /// Quantise input 0 (the activation).
    pub input_quant: Option<ActQuant>,
    /// The `Add` that takes this layer's output (a residual block's) reads
    /// its other operand through `QuantizeLinear → DequantizeLinear` with
    /// this grid (`residual = "int8"`).
    pub residual_quant: Option<ActQuant>,
    /// The layer is factored (low rank): this input side is inserted before
    /// it, and the layer itself takes the thin result with `weight` as the
    /// output side (a different shape from the file's; see [`FactorEdit`]).
    pub factor: Option<FactorEdit>,
}

/// The input side of a factored layer, written as a node of its own before
/// the layer: for a Gemm/MatMul `x·W ≈ (x·V)·U`, a `MatMul` with `weight`
/// `V` `[K, r]` and the layer's weight `U` (`[r, N]`, or `[N, r]` under
/// `transB`); for a one-group Conv, a Conv with the layer's kernel,
/// strides, pads and dilations, `r` output channels (`weight` `[r, C,
/// k...]`) and no bias, and the layer becomes a 1x1 conv with weight `[M,
/// r, 1...]` (its bias kept).
///
/// A conv's Tucker-2 form has one more node in front: `pointwise`, a 1x1
/// conv with weight `[r_in, C, 1...]`, after which the input side (the
/// KxK core) reads its `r_in` channels (`weight` `[r_out, r_in, k...]`)
/// and the layer takes the core's `r_out` (`[M, r_out, 1...]`).
#[derive(Clone, Debug, PartialEq)]
pub struct FactorEdit {
    /// The input side's weight, f32.
    pub weight: Tensor,
    /// Store it as int8 with these per-channel scales.
    pub weight_quant: Option<AxisQuant>,
    /// Quantise the input side's input.
    pub input_quant: Option<ActQuant>,
    /// Tucker-2: the 1x1 conv before the input side (its own `pointwise`
    /// is `None`).
    pub pointwise: Option<Box<FactorEdit>>,
}

/// Ops whose meaning is the same at opset 13 as at any opset from 11 on,
/// so a model of opset 11 or 12 may be raised to 13.
const SAME_AT_13: &[&str] = &[
    "Conv",
    "Gemm",
    "MatMul",
    "Relu",
    "Clip",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Concat",
    "Reshape",
    "Transpose",
    "Identity",
    "BatchNormalization",
    "Sigmoid",
    "Tanh",
    "LeakyRelu",
    "Constant",
    "QuantizeLinear",
    "DequantizeLinear",
    "Pad",
    "Shape",
    "Gather",
    "Cast",
];

fn err(layer: &str, msg: impl Into<String>) -> ImportError {
    ImportError::Model(format!("export: layer '{layer}': {}", msg.into()))
}

/// The edited model's bytes.
pub fn export_edited(model: &Path, edits: &[LayerEdit]) -> Result<Vec<u8>, ImportError> {
    let bytes = std::fs::read(model).map_err(|e| ImportError::Io { path: model.to_path_buf(), source: e })?;
    let mut m = ModelProto::parse_from_bytes(&bytes).map_err(|e| ImportError::Protobuf(e.to_string()))?;
    if edits.iter().any(|e| e.weight_quant.is_some() || e.factor.as_ref().is_some_and(|f| f.weight_quant.is_some())) {
        raise_opset(&mut m)?;
    }
    let g = m.graph.as_mut().ok_or_else(|| ImportError::model("model has no graph"))?;
    let mut names = Names::of(g);
    // every layer's node by its first output, found before any node moves
    // (an unnamed node's display name holds its index, which the nodes
    // inserted for an earlier layer shift)
    let outs = edits.iter().map(|e| layer_output(g, &e.layer)).collect::<Result<Vec<_>, _>>()?;
    let residuals: Vec<_> = edits
        .iter()
        .zip(&outs)
        .filter_map(|(e, out)| e.residual_quant.map(|q| (e.layer.as_str(), out.clone(), q)))
        .collect();
    for (e, out) in edits.iter().zip(&outs) {
        edit_layer(g, &mut names, e, out)?;
    }
    for (layer, out, q) in residuals {
        quantize_residual(g, &mut names, layer, &out, q)?;
    }
    drop_unused_initializers(g);
    m.write_to_bytes().map_err(|e| ImportError::Protobuf(e.to_string()))
}

/// Every name already used by a value or node, so new ones are unique.
struct Names(BTreeSet<String>);

impl Names {
    fn of(g: &GraphProto) -> Names {
        let mut s = BTreeSet::new();
        for n in &g.node {
            s.insert(n.name.clone());
            s.extend(n.input.iter().cloned());
            s.extend(n.output.iter().cloned());
        }
        s.extend(g.initializer.iter().map(|t| t.name.clone()));
        s.extend(g.input.iter().map(|v| v.name.clone()));
        Names(s)
    }
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while self.0.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.0.insert(name.clone());
        name
    }
}

fn display_name(n: &NodeProto, index: usize) -> String {
    crate::import::node_display_name(&n.name, &n.op_type, index)
}

/// The first output of the one node named `layer`.
fn layer_output(g: &GraphProto, layer: &str) -> Result<String, ImportError> {
    let found: Vec<usize> = (0..g.node.len()).filter(|&i| display_name(&g.node[i], i) == layer).collect();
    let at = match found.as_slice() {
        [i] => *i,
        [] => return Err(err(layer, "no node of that name")),
        _ => return Err(err(layer, "several nodes have that name")),
    };
    g.node[at].output.first().filter(|o| !o.is_empty()).cloned().ok_or_else(|| err(layer, "has no output"))
}

/// The index of the node whose first output is `out` (layer `layer`'s,
/// [`layer_output`]).
fn node_with_output(g: &GraphProto, layer: &str, out: &str) -> Result<usize, ImportError> {
    g.node.iter().position(|n| n.output.first().is_some_and(|o| o == out)).ok_or_else(|| err(layer, "its node is gone"))
}

/// The one two-input `Add` reading `layer`'s output `out` (or the output
/// of a `BatchNormalization` that alone reads it) reads its other operand
/// through `QuantizeLinear → DequantizeLinear` with `q`, inserted before
/// it.
fn quantize_residual(
    g: &mut GraphProto,
    names: &mut Names,
    layer: &str,
    out: &str,
    q: ActQuant,
) -> Result<(), ImportError> {
    let readers: Vec<usize> = (0..g.node.len()).filter(|&i| g.node[i].input.iter().any(|x| x == out)).collect();
    let out = match readers.as_slice() {
        [i] if g.node[*i].op_type == "BatchNormalization" && g.node[*i].domain.is_empty() => {
            g.node[*i].output.first().cloned().unwrap_or_default()
        }
        _ => out.to_string(),
    };
    let out = out.as_str();
    let adds: Vec<usize> = (0..g.node.len())
        .filter(|&i| {
            g.node[i].op_type == "Add" && g.node[i].domain.is_empty() && g.node[i].input.iter().any(|x| x == out)
        })
        .collect();
    let [at] = adds.as_slice() else {
        return Err(err(layer, format!("its output feeds {} Add nodes; a residual needs one", adds.len())));
    };
    let at = *at;
    let other = match g.node[at].input.as_slice() {
        [a, b] if a == out && b != out => 1,
        [a, b] if b == out && a != out => 0,
        _ => return Err(err(layer, "the Add of its residual does not take two distinct operands")),
    };
    let mut before = Vec::new();
    let r = g.node[at].input[other].clone();
    g.node[at].input[other] = quantized_input(g, names, &format!("{layer}.residual"), &r, Some(q), &mut before)?;
    g.node.splice(at..at, before);
    Ok(())
}

fn edit_layer(g: &mut GraphProto, names: &mut Names, e: &LayerEdit, out: &str) -> Result<(), ImportError> {
    let layer = e.layer.as_str();
    let at = node_with_output(g, layer, out)?;
    let op = g.node[at].op_type.clone();
    if !g.node[at].domain.is_empty() || !["Conv", "ConvTranspose", "Gemm", "MatMul"].contains(&op.as_str()) {
        return Err(err(layer, format!("is a {op}; only Conv, ConvTranspose, Gemm and MatMul layers are exported")));
    }
    if op == "ConvTranspose" && e.factor.is_some() {
        return Err(err(layer, "a factored ConvTranspose (compression never factors one)".to_string()));
    }
    let w_name = g.node[at].input.get(1).cloned().unwrap_or_default();
    // nodes to insert before the layer, in order
    let mut before = Vec::new();
    let mut x = g.node[at].input[0].clone();
    match &e.factor {
        None => check_shape(g, layer, &w_name, &e.weight, "weight")?,
        Some(f) => {
            check_factors(g, layer, &g.node[at], &w_name, f, &e.weight)?;
            let spatial = f.weight.shape().len() - 2;
            if let Some(t) = &f.pointwise {
                // Tucker-2's first 1x1 conv: the layer's node made pointwise
                let mut n = g.node[at].clone();
                pointwise(&mut n, spatial);
                x = part_before(g, names, &format!("{layer}.t"), &x, t, n, &mut before)?;
            }
            // the input side: the layer's conv, or a MatMul
            let n =
                if op == "Conv" { g.node[at].clone() } else { node("MatMul", String::new(), vec![], String::new()) };
            x = part_before(g, names, &format!("{layer}.v"), &x, f, n, &mut before)?;
            if op == "Conv" {
                pointwise(&mut g.node[at], spatial);
            }
        }
    }
    let w = weight_input(g, names, layer, &e.weight, e.weight_quant.as_ref(), &mut before)?;
    let xin = quantized_input(g, names, layer, &x, e.input_quant, &mut before)?;
    g.node[at].input[0] = xin;
    g.node[at].input[1] = w;
    if let Some(b) = &e.bias {
        let b_name = g.node[at].input.get(2).cloned().unwrap_or_default();
        let new_b = add_f32(g, names, &format!("{layer}.bias"), b)?;
        if b_name.is_empty() {
            // a bias the layer did not have: Conv's B, or Gemm's C at beta 1
            // (a MatMul has no bias input), one value per output channel
            let channels = match (op.as_str(), e.weight.shape()) {
                ("Conv", [m, ..]) => Some(*m),
                ("Gemm", [r, c]) => Some(if gemm_trans_b(&g.node[at]) { *r } else { *c }),
                _ => None,
            };
            if channels.is_none_or(|m| b.shape() != [m]) {
                return Err(err(
                    layer,
                    format!("a new bias {:?} does not fit its {op} weight {:?}", b.shape(), e.weight.shape()),
                ));
            }
            g.node[at].input.resize(2, String::new());
            g.node[at].input.push(new_b);
            g.node[at].attribute.retain(|a| a.name != "beta");
        } else {
            check_shape(g, layer, &b_name, b, "bias")?;
            g.node[at].input[2] = new_b;
        }
    }
    g.node.splice(at..at, before);
    Ok(())
}

/// A part of a factored layer as node `n` (its op and attributes) named
/// `name` before the layer (pushed to `before`, with the part's weight
/// and input quantisers): it reads `x` and the part's weight; returns its
/// output's name.
fn part_before(
    g: &mut GraphProto,
    names: &mut Names,
    name: &str,
    x: &str,
    part: &FactorEdit,
    mut n: NodeProto,
    before: &mut Vec<NodeProto>,
) -> Result<String, ImportError> {
    let xin = quantized_input(g, names, name, x, part.input_quant, before)?;
    let w = weight_input(g, names, name, &part.weight, part.weight_quant.as_ref(), before)?;
    let out = names.fresh(&format!("{name}_out"));
    n.input = vec![xin, w];
    n.output = vec![out.clone()];
    n.name = names.fresh(name);
    before.push(n);
    Ok(out)
}

/// The weight input: an f32 initializer, or an int8 one behind a
/// `DequantizeLinear` (pushed to `before`); its name.
fn weight_input(
    g: &mut GraphProto,
    names: &mut Names,
    layer: &str,
    w: &Tensor,
    q: Option<&AxisQuant>,
    before: &mut Vec<NodeProto>,
) -> Result<String, ImportError> {
    match q {
        None => add_f32(g, names, &format!("{layer}.weight"), w),
        Some(q) => {
            let (node, out) = dequantized_weight(g, names, layer, w, q)?;
            before.push(node);
            Ok(out)
        }
    }
}

/// `x`, or `x` through `QuantizeLinear → DequantizeLinear` (uint8, per
/// tensor; pushed to `before`) when `q` is given; the name to read.
fn quantized_input(
    g: &mut GraphProto,
    names: &mut Names,
    layer: &str,
    x: &str,
    q: Option<ActQuant>,
    before: &mut Vec<NodeProto>,
) -> Result<String, ImportError> {
    let Some(q) = q else { return Ok(x.to_string()) };
    if !(q.scale.is_finite() && q.scale > 0.0) {
        return Err(err(layer, format!("input scale {} is not a positive number", q.scale)));
    }
    let s = add_tensor(g, names, &format!("{layer}.x_scale"), 1, vec![], q.scale.to_le_bytes().to_vec());
    let z = add_tensor(g, names, &format!("{layer}.x_zero_point"), 2, vec![], vec![q.zero_point]);
    let xq = names.fresh(&format!("{layer}.x_q"));
    let xdq = names.fresh(&format!("{layer}.x_dq"));
    let qn = node(
        "QuantizeLinear",
        names.fresh(&format!("{layer}.x_quantize")),
        vec![x.to_string(), s.clone(), z.clone()],
        xq.clone(),
    );
    let dn = node("DequantizeLinear", names.fresh(&format!("{layer}.x_dequantize")), vec![xq, s, z], xdq.clone());
    before.push(qn);
    before.push(dn);
    Ok(xdq)
}

/// Integer attribute `name` of `n`, or `default`.
fn attr_int(n: &NodeProto, name: &str, default: i64) -> i64 {
    n.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.i)
}

/// Whether a Gemm node transposes B.
fn gemm_trans_b(n: &NodeProto) -> bool {
    attr_int(n, "transB", 0) != 0
}

/// The factors of a factored layer fit its stored weight: a conv's `[M, C,
/// k...]` as `[r, C, k...]` then `[M, r, 1...]` (one group); a product's
/// `[K, N]` as `[K, r]` then `[r, N]`, or `[N, K]` under `transB` as `[K,
/// r]` then `[N, r]`.
fn check_factors(
    g: &GraphProto,
    layer: &str,
    n: &NodeProto,
    w_name: &str,
    f: &FactorEdit,
    u: &Tensor,
) -> Result<(), ImportError> {
    let old = stored_dims(g, w_name)
        .ok_or_else(|| err(layer, format!("its weight '{w_name}' is neither an initializer nor a Constant node")))?;
    let old: Vec<usize> = old.iter().map(|&d| d as usize).collect();
    let (v, u) = (f.weight.shape(), u.shape());
    if let Some(t) = &f.pointwise {
        let fits = match (n.op_type.as_str(), old.as_slice(), v) {
            ("Conv", [m, c, kernel @ ..], [r_out, r_in, vk @ ..]) if !kernel.is_empty() && t.pointwise.is_none() => {
                let ones = vec![1; kernel.len()];
                let want = |a: usize, b: usize| [vec![a, b], ones.clone()].concat();
                attr_int(n, "group", 1) == 1
                    && vk == kernel
                    && t.weight.shape() == want(*r_in, *c).as_slice()
                    && u == want(*m, *r_out).as_slice()
            }
            _ => false,
        };
        if !fits {
            return Err(err(
                layer,
                format!("Tucker-2 factors {:?}, {v:?} and {u:?} do not factor its weight {old:?}", t.weight.shape()),
            ));
        }
        return Ok(());
    }
    let fits = match (n.op_type.as_str(), old.as_slice(), v) {
        ("Conv", [m, rest @ ..], [r, vrest @ ..]) if !rest.is_empty() => {
            let mut want_u = vec![*m, *r];
            want_u.extend(std::iter::repeat_n(1, rest.len() - 1));
            attr_int(n, "group", 1) == 1 && vrest == rest && u == want_u.as_slice()
        }
        // a transposed A would need a transposed input side: not written
        (_, &[o0, o1], &[vk, r]) if attr_int(n, "transA", 0) == 0 => {
            let trans_b = n.op_type == "Gemm" && gemm_trans_b(n);
            let (k, nn) = if trans_b { (o1, o0) } else { (o0, o1) };
            vk == k && if trans_b { u == [nn, r] } else { u == [r, nn] }
        }
        _ => false,
    };
    if !fits {
        return Err(err(layer, format!("factors {v:?} and {u:?} do not factor its weight {old:?}")));
    }
    Ok(())
}

/// A conv node made 1x1 over `spatial` axes: unit kernel, strides and
/// dilations, no padding.
fn pointwise(n: &mut NodeProto, spatial: usize) {
    n.attribute.retain(|a| !["kernel_shape", "strides", "dilations", "pads", "auto_pad"].contains(&a.name.as_str()));
    let ints = |name: &str, v: Vec<i64>| {
        let mut a = AttributeProto::new();
        a.name = name.into();
        a.type_ = EnumOrUnknown::new(AttributeType::INTS);
        a.ints = v;
        a
    };
    n.attribute.push(ints("kernel_shape", vec![1; spatial]));
    n.attribute.push(ints("strides", vec![1; spatial]));
    n.attribute.push(ints("dilations", vec![1; spatial]));
    n.attribute.push(ints("pads", vec![0; 2 * spatial]));
}

/// The int8 initializer and its `DequantizeLinear`; returns the node and
/// the dequantised value's name.
fn dequantized_weight(
    g: &mut GraphProto,
    names: &mut Names,
    layer: &str,
    w: &Tensor,
    q: &AxisQuant,
) -> Result<(NodeProto, String), ImportError> {
    let shape = w.shape();
    let channels =
        *shape.get(q.axis).ok_or_else(|| err(layer, format!("axis {} of a rank-{} weight", q.axis, shape.len())))?;
    if q.scales.len() != channels {
        return Err(err(layer, format!("{} scales for {channels} channels along axis {}", q.scales.len(), q.axis)));
    }
    if let Some(s) = q.scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(err(layer, format!("weight scale {s} is not a positive number")));
    }
    let inner: usize = shape[q.axis + 1..].iter().product();
    let vals = w.to_f32_vec();
    let mut codes = Vec::with_capacity(vals.len());
    for (i, &x) in vals.iter().enumerate() {
        let s = q.scales[(i / inner) % channels];
        let c = (x / s).round_ties_even();
        if c.abs() > 127.0 || ((c * s) - x).abs() > 1e-6 * x.abs().max(s) {
            return Err(err(layer, format!("weight element {i} = {x} is not on its channel's int8 grid (scale {s})")));
        }
        codes.push(c as i8 as u8);
    }
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let wq = add_tensor(g, names, &format!("{layer}.weight_q"), 3, dims, codes);
    let scales: Vec<u8> = q.scales.iter().flat_map(|s| s.to_le_bytes()).collect();
    let ws = add_tensor(g, names, &format!("{layer}.weight_scale"), 1, vec![channels as i64], scales);
    let wz = add_tensor(g, names, &format!("{layer}.weight_zero_point"), 3, vec![channels as i64], vec![0; channels]);
    let out = names.fresh(&format!("{layer}.weight_dq"));
    let mut n =
        node("DequantizeLinear", names.fresh(&format!("{layer}.weight_dequantize")), vec![wq, ws, wz], out.clone());
    let mut axis = AttributeProto::new();
    axis.name = "axis".into();
    axis.type_ = EnumOrUnknown::new(AttributeType::INT);
    axis.i = q.axis as i64;
    n.attribute.push(axis);
    Ok((n, out))
}

fn node(op: &str, name: String, inputs: Vec<String>, output: String) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = name;
    n.input = inputs;
    n.output = vec![output];
    n
}

/// Adds an initializer (ONNX data type code, raw little-endian bytes).
fn add_tensor(g: &mut GraphProto, names: &mut Names, base: &str, dtype: i32, dims: Vec<i64>, raw: Vec<u8>) -> String {
    let mut t = TensorProto::new();
    t.name = names.fresh(base);
    t.data_type = dtype;
    t.dims = dims;
    t.raw_data = raw;
    let name = t.name.clone();
    g.initializer.push(t);
    name
}

fn add_f32(g: &mut GraphProto, names: &mut Names, base: &str, t: &Tensor) -> Result<String, ImportError> {
    if t.dtype() != DType::F32 {
        return Err(err(base, format!("new values are {}, expected f32", t.dtype())));
    }
    let dims = t.shape().iter().map(|&d| d as i64).collect();
    Ok(add_tensor(g, names, base, 1, dims, t.bytes().to_vec()))
}

/// The stored dims of `name`: an initializer's, or a `Constant` node's
/// value's.
fn stored_dims(g: &GraphProto, name: &str) -> Option<Vec<i64>> {
    g.initializer.iter().find(|i| i.name == name).map(|i| i.dims.clone()).or_else(|| {
        g.node
            .iter()
            .find(|n| n.op_type == "Constant" && n.output.first().map(String::as_str) == Some(name))
            .and_then(|n| n.attribute.iter().find(|a| a.name == "value"))
            .and_then(|a| a.t.as_ref().map(|t| t.dims.clone()))
    })
}

/// The stored shape of `name` (an initializer or a `Constant` node's
/// output) must be `t`'s.
fn check_shape(g: &GraphProto, layer: &str, name: &str, t: &Tensor, what: &str) -> Result<(), ImportError> {
    let Some(dims) = stored_dims(g, name) else {
        return Err(err(layer, format!("its {what} '{name}' is neither an initializer nor a Constant node")));
    };
    let want: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
    if dims != want {
        return Err(err(layer, format!("its {what} '{name}' is {dims:?}, the new values {want:?}")));
    }
    Ok(())
}

/// Per-axis `DequantizeLinear` needs opset 13: raise 11 and 12 when every
/// op means the same there.
fn raise_opset(m: &mut ModelProto) -> Result<(), ImportError> {
    let Some(o) = m.opset_import.iter().position(|o| o.domain.is_empty() || o.domain == "ai.onnx") else {
        let mut o = OperatorSetIdProto::new();
        o.version = 13;
        m.opset_import.push(o);
        return Ok(());
    };
    let v = m.opset_import[o].version;
    if v >= 13 {
        return Ok(());
    }
    let ops: BTreeSet<&str> =
        m.graph.as_ref().map(|g| g.node.iter().map(|n| n.op_type.as_str()).collect()).unwrap_or_default();
    if v < 11 {
        return Err(ImportError::Model(format!(
            "export: per-channel int8 needs opset 13 and the model is opset {v}; convert it to opset 13 first"
        )));
    }
    if let Some(op) = ops.iter().find(|op| !SAME_AT_13.contains(op)) {
        return Err(ImportError::Model(format!(
            "export: per-channel int8 needs opset 13; the model is opset {v} and its {op} may mean something else at 13: convert the model to opset 13 first"
        )));
    }
    m.opset_import[o].version = 13;
    Ok(())
}

/// Drops initializers no node reads (the replaced weights).
fn drop_unused_initializers(g: &mut GraphProto) {
    let used: BTreeSet<String> = g.node.iter().flat_map(|n| n.input.iter().cloned()).collect();
    let outputs: BTreeSet<String> = g.output.iter().map(|o| o.name.clone()).collect();
    let inputs: BTreeSet<String> = g.input.iter().map(|o| o.name.clone()).collect();
    g.initializer.retain(|t| used.contains(&t.name) || outputs.contains(&t.name) || inputs.contains(&t.name));
}
