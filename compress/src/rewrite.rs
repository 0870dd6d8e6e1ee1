//! Graph edits the lossy transforms make: new weight values (with their
//! layout) and an activation quantiser in front of a layer.

use kerf_ir::{
    BinaryOp, Graph, Layer, Op, Origin, Sparsity, Tensor, UnaryOp, ValueDef, ValueId, WeightGrid, WeightId, F32,
};

use crate::layer::Site;
use crate::quant::ActQuant;
use crate::CompressError;

/// Replaces a weight's values (same shape) and records its layout and
/// int8 grid. The weight is checked against both.
pub fn set_weight(
    g: &mut Graph,
    w: WeightId,
    t: Tensor,
    sparsity: Sparsity,
    grid: Option<WeightGrid>,
) -> Result<(), CompressError> {
    let bad = |e: String| CompressError::Numeric(format!("weight '{}': {e}", g.weights.get(w).name));
    sparsity.validate(&t).map_err(|e| bad(e.to_string()))?;
    if let Some(gr) = &grid {
        gr.validate(&t).map_err(bad)?;
    }
    let slot = g.weights.get_mut(w);
    slot.tensor = t;
    slot.sparsity = sparsity;
    slot.grid = grid;
    Ok(())
}

/// A node being rebuilt: its inputs in the new graph, its op and name, all
/// of which an edit may change (adding nodes before it to `out`).
pub struct Rebuilt<'a> {
    /// The graph being built, holding the nodes before this one.
    pub out: &'a mut Graph,
    /// The node's inputs, as values of `out`.
    pub inputs: Vec<ValueId>,
    /// The node's op.
    pub op: Op,
    /// The node's name.
    pub name: String,
}

/// A copy of `g` in which node `node` is first given to `edit`. Values keep
/// their meaning; weight ids are unchanged (the table is copied).
pub fn rebuild_at(
    g: &Graph,
    node: usize,
    layer: &str,
    edit: impl FnOnce(&mut Rebuilt<'_>) -> Result<(), CompressError>,
) -> Result<Graph, CompressError> {
    let mut out = Graph::new(g.name.clone());
    out.weights = g.weights.clone();
    let mut map: Vec<Option<ValueId>> = vec![None; g.values.len()];
    for &i in &g.inputs {
        let v = g.value(i);
        map[i.0 as usize] = Some(out.add_input(v.name.clone(), v.ty.clone()));
    }
    let err = |e: kerf_ir::IrError| CompressError::layer(layer, e.to_string());
    let mut edit = Some(edit);
    for (ni, n) in g.nodes.iter().enumerate() {
        let mut ins = Vec::with_capacity(n.inputs.len());
        for &v in &n.inputs {
            ins.push(mapped(g, &mut out, &mut map, v, layer)?);
        }
        let (mut op, mut name) = (n.op.clone(), n.name.clone());
        if ni == node {
            if let Some(f) = edit.take() {
                let mut r = Rebuilt { out: &mut out, inputs: ins, op, name };
                f(&mut r)?;
                (ins, op, name) = (r.inputs, r.op, r.name);
            }
        }
        let outs = out.add_node(name, op, ins).map_err(err)?;
        for (&o, no) in n.outputs.iter().zip(outs) {
            map[o.0 as usize] = Some(no);
        }
    }
    for o in &g.outputs {
        let v = mapped(g, &mut out, &mut map, o.value, layer)?;
        out.add_output(o.name.clone(), v);
    }
    Ok(out)
}

/// A copy of `g` where input 0 of node `node` reads `x` through
/// `QuantizeLinear → DequantizeLinear` with `q`, spelt in IR ops exactly as
/// the ONNX pair computes it: `Mul(Clip(Round(Div(x, s)), −z, 255 − z), s)`
/// (the zero point's add and subtract cancel around the clip). Other users
/// of `x` are unchanged. The new nodes are named `<layer>.xq/…`.
pub fn quantize_input(g: &Graph, node: usize, layer: &str, q: ActQuant) -> Result<Graph, CompressError> {
    rebuild_at(g, node, layer, |r| {
        let err = |e: kerf_ir::IrError| CompressError::layer(layer, e.to_string());
        let out = &mut *r.out;
        let s = out.add_const(format!("{layer}.xq/scale"), Tensor::scalar_f32(q.scale), Origin::Derived);
        let z = q.zero_point as f32;
        let x = r.inputs[0];
        let d = out.add_node1(format!("{layer}.xq/div"), Op::Binary(BinaryOp::Div), vec![x, s]).map_err(err)?;
        let rd = out.add_node1(format!("{layer}.xq/round"), Op::Unary(UnaryOp::Round), vec![d]).map_err(err)?;
        let clip = UnaryOp::Clip { min: F32::new(-z), max: F32::new(255.0 - z) };
        let c = out.add_node1(format!("{layer}.xq/clip"), Op::Unary(clip), vec![rd]).map_err(err)?;
        r.inputs[0] = out.add_node1(format!("{layer}.xq"), Op::Binary(BinaryOp::Mul), vec![c, s]).map_err(err)?;
        Ok(())
    })
}

/// A copy of `g` where the Conv or Gemm at `site` adds `shift[m]` (in the
/// weight's units: times `alpha` for a Gemm) to output channel `m`: a
/// constant bias (Conv input 2, Gemm `C` of shape `[N]` or `[1, N]`,
/// divided by `beta`) becomes `bias + shift`; an absent one is
/// added (Gemm: with `beta = 1`). Returns the graph and the new bias
/// tensor, or `None` where the layer cannot take a per-channel bias (a
/// MatMul, a Gemm whose `C` is a run-time value or another shape, `beta =
/// 0`).
pub fn shift_bias(g: &Graph, site: &Site, shift: &[f64]) -> Result<Option<(Graph, Tensor)>, CompressError> {
    let node = &g.nodes[site.node];
    let old = node.inputs.get(2).copied();
    // the shift is in the weight's units: a Gemm applies alpha to the
    // product (sites keep it outside the weight) and beta to C
    let (shape, base, k) = match (&node.op, old) {
        (Op::Conv(_), None) => (vec![site.rows], vec![0.0; site.rows], 1.0),
        (Op::Conv(_), Some(b)) => match g.const_of(b) {
            Some(t) if t.shape() == [site.rows] => (t.shape().to_vec(), t.to_f64_vec(), 1.0),
            _ => return Ok(None),
        },
        (Op::Gemm(gm), None) => (vec![site.rows], vec![0.0; site.rows], f64::from(gm.alpha.get())),
        (Op::Gemm(gm), Some(c)) => match g.const_of(c) {
            Some(t) if gm.beta.get() != 0.0 && t.numel() == site.rows && t.shape().last() == Some(&site.rows) => {
                (t.shape().to_vec(), t.to_f64_vec(), f64::from(gm.alpha.get()) / f64::from(gm.beta.get()))
            }
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let v: Vec<f32> = base.iter().zip(shift).map(|(b, d)| (b + k * d) as f32).collect();
    let t = Tensor::from_f32(shape, &v).map_err(|e| CompressError::layer(&site.layer, e.to_string()))?;
    let layer = site.layer.as_str();
    let next = rebuild_at(g, site.node, layer, |r| {
        let c = r.out.add_const(format!("{layer}/bias"), t.clone(), Origin::Derived);
        if r.inputs.len() > 2 {
            r.inputs[2] = c;
        } else {
            r.inputs.push(c);
            if let Op::Gemm(gm) = &r.op {
                r.op = Op::Gemm(kerf_ir::op::Gemm { beta: F32::new(1.0), ..gm.clone() });
            }
        }
        Ok(())
    })?;
    Ok(Some((next, t)))
}

/// The names of a factored layer's two products: `<layer>.v` (input side)
/// then `<layer>.u` (output side).
pub fn factor_names(layer: &str) -> (String, String) {
    (format!("{layer}.v"), format!("{layer}.u"))
}

/// The name of a Tucker-2 layer's first 1x1 conv, before `<layer>.v` (the
/// KxK core) and `<layer>.u`.
pub fn tucker_first_name(layer: &str) -> String {
    format!("{layer}.t")
}

/// A copy of `g` where the layer at `site` (`W = u·v` of rank r) becomes two
/// thinner layers: the input side `<layer>.v` with weight `vt`, then the
/// original op on the thin result with weight `u` (layer `<layer>.u`).
/// - A product `x·W`: `MatMul(x, vᵀ)` (`vt` is `[K, r]`), then the product
///   with `u` in the original layout (`Gemm`'s alpha, beta and bias kept).
/// - A conv (one group): the conv with `r` output channels (`vt` is
///   `[r, C, k...]`: same kernel, strides, dilations and pads, no bias),
///   then a 1x1 conv with `u` (`[M, r, 1...]`), the bias and whatever
///   followed the original.
pub fn split_low_rank(g: &Graph, site: &Site, vt: Tensor, u: Tensor) -> Result<Graph, CompressError> {
    split(g, site, None, vt, u)
}

/// A copy of `g` where the one-group conv at `site` becomes its Tucker-2
/// form: a 1x1 conv `<layer>.t` with `first` (`[r_in, C, 1...]`, no bias),
/// the core `<layer>.v` with `core` (`[r_out, r_in, k...]`, the layer's
/// kernel, strides, dilations and pads) and the 1x1 conv `<layer>.u` with
/// `last` (`[M, r_out, 1...]`, the bias and what followed the original).
pub fn split_tucker(g: &Graph, site: &Site, first: Tensor, core: Tensor, last: Tensor) -> Result<Graph, CompressError> {
    split(g, site, Some(first), core, last)
}

/// A unit-kernel window over `n` spatial axes.
fn pointwise(n: usize) -> kerf_ir::op::Window {
    kerf_ir::op::Window { kernel: vec![1; n], strides: vec![1; n], dilations: vec![1; n], pads: vec![0; 2 * n] }
}

fn split(g: &Graph, site: &Site, first: Option<Tensor>, vt: Tensor, u: Tensor) -> Result<Graph, CompressError> {
    let layer = site.layer.as_str();
    let (vname, uname) = factor_names(layer);
    rebuild_at(g, site.node, layer, |r| {
        let err = |e: kerf_ir::IrError| CompressError::layer(layer, e.to_string());
        let out = &mut *r.out;
        let mut params = Vec::new();
        let mut x = r.inputs[0];
        if let (Some(p), Op::Conv(c)) = (first, &r.op) {
            let tname = tucker_first_name(layer);
            let wt = out.add_const(format!("{tname}/weight"), p, Origin::Derived);
            params.push(wt);
            let op = Op::Conv(kerf_ir::op::Conv {
                window: pointwise(c.window.rank()),
                group: 1,
                layer: Layer(tname.clone()),
                algo: Default::default(),
            });
            x = out.add_node1(tname, op, vec![x, wt]).map_err(err)?;
        }
        let wv = out.add_const(format!("{vname}/weight"), vt, Origin::Derived);
        let first = match &r.op {
            Op::Conv(c) => Op::Conv(kerf_ir::op::Conv { layer: Layer(vname.clone()), ..c.clone() }),
            _ => Op::MatMul(Layer(vname.clone())),
        };
        let t = out.add_node1(vname.clone(), first, vec![x, wv]).map_err(err)?;
        let wu = out.add_const(format!("{uname}/weight"), u, Origin::Derived);
        params.extend([wv, wu]);
        for v in params {
            if let kerf_ir::ValueDef::Const(w) = out.value(v).def {
                out.weights.get_mut(w).is_param = true;
            }
        }
        r.inputs[0] = t;
        r.inputs[1] = wu;
        r.op = match &r.op {
            Op::Gemm(gm) => Op::Gemm(kerf_ir::op::Gemm { layer: Layer(uname.clone()), ..gm.clone() }),
            Op::MatMul(_) => Op::MatMul(Layer(uname.clone())),
            Op::Conv(c) if c.group == 1 => Op::Conv(kerf_ir::op::Conv {
                window: pointwise(c.window.rank()),
                group: 1,
                layer: Layer(uname.clone()),
                algo: Default::default(),
            }),
            other => return Err(CompressError::layer(layer, format!("{} cannot be factored", other.name()))),
        };
        r.name = uname.clone();
        Ok(())
    })
}

/// The new graph's value for `v`: inputs and node outputs are mapped when
/// defined, constants on first use (same weight id: the table is copied).
fn mapped(
    g: &Graph,
    out: &mut Graph,
    map: &mut [Option<ValueId>],
    v: ValueId,
    layer: &str,
) -> Result<ValueId, CompressError> {
    if let Some(m) = map[v.0 as usize] {
        return Ok(m);
    }
    let m = match g.value(v).def {
        ValueDef::Const(w) => out.add_const_ref(w),
        _ => return Err(CompressError::layer(layer, format!("value %{} used before it is defined", v.0))),
    };
    map[v.0 as usize] = Some(m);
    Ok(m)
}

/// A residual [`quantize_residuals`] put on an int8 grid.
#[derive(Clone, Debug, PartialEq)]
pub struct ResidualEdit {
    /// The conv whose output the residual is added to.
    pub layer: String,
    /// The residual's value name.
    pub residual: String,
    /// Its grid (another layer's input grid).
    pub grid: ActQuant,
}

/// The activation quantisers [`quantize_input`] wrote into `g`, by the
/// value they quantise: `x → (Mul(Clip(Round(Div(x, s))), s), the Mul's
/// node index, s, z)`, the first one of each `x`.
fn input_quantisers(g: &Graph) -> std::collections::HashMap<ValueId, (ValueId, usize, f32, u8)> {
    let producer = |v: ValueId| match g.value(v).def {
        ValueDef::Node { node, .. } => Some(&g.nodes[node]),
        _ => None,
    };
    let scalar = |v: ValueId| g.const_of(v).filter(|t| t.numel() == 1).map(|t| t.to_f32_vec()[0]);
    let mut out = std::collections::HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let (Op::Binary(BinaryOp::Mul), [c, s]) = (&n.op, n.inputs.as_slice()) else { continue };
        let Some(step) = scalar(*s) else { continue };
        let Some(clip) = producer(*c) else { continue };
        let Op::Unary(UnaryOp::Clip { min, max }) = clip.op else { continue };
        let z = -min.get();
        if !(0.0..=255.0).contains(&z) || z.fract() != 0.0 || max.get() != 255.0 - z {
            continue;
        }
        let Some(round) = clip.inputs.first().and_then(|&r| producer(r)) else { continue };
        let Some(div) = round.inputs.first().and_then(|&d| producer(d)) else { continue };
        match (&round.op, &div.op, div.inputs.as_slice()) {
            (Op::Unary(UnaryOp::Round), Op::Binary(BinaryOp::Div), [x, s2]) if scalar(*s2) == Some(step) => {
                out.entry(*x).or_insert((n.outputs[0], i, step, z as u8));
            }
            _ => {}
        }
    }
    out
}

/// A copy of `g` where each residual `Add(conv(…), x)` (either order,
/// operands of one type; the conv possibly through a BatchNormalization
/// only it feeds, which the passes fold into it) whose conv's layer `int8`
/// names reads `x` through
/// the activation quantiser `g` already has for `x` in front of another
/// layer (ResNet's and MobileNetV2's skip connections: the same block's
/// first conv quantises its input `x`), instead of `x` itself. A factored
/// layer's output side (`<layer>.u`) is not named, so it keeps an f32
/// residual. This is
/// the lossy step (the residual takes that grid's rounding, as ONNX
/// Runtime's `QLinearAdd` does); the `int8` rule group then lets the
/// integer conv read the residual as u8 (`QConv::res_grid`), so no f32
/// tensor need pass between the blocks. Returns the graph and, per changed
/// layer, the residual's name and grid.
pub fn quantize_residuals(g: &Graph, int8: impl Fn(&str) -> bool) -> Result<(Graph, Vec<ResidualEdit>), CompressError> {
    let quantisers = input_quantisers(g);
    let uses = g.use_counts();
    let mut out = g.clone();
    let mut notes = Vec::new();
    for (ai, n) in g.nodes.iter().enumerate() {
        let (Op::Binary(BinaryOp::Add), [a, b]) = (&n.op, n.inputs.as_slice()) else { continue };
        if g.ty(*a) != g.ty(*b) {
            continue;
        }
        for (conv, other, at) in [(*a, *b, 1), (*b, *a, 0)] {
            let ValueDef::Node { node: mut ci, .. } = g.value(conv).def else { continue };
            // through a BatchNormalization only the conv reads (folded into it later)
            if let (Op::BatchNorm { .. }, Some(&x)) = (&g.nodes[ci].op, g.nodes[ci].inputs.first()) {
                match g.value(x).def {
                    ValueDef::Node { node, .. } if uses[x.0 as usize] == 1 => ci = node,
                    _ => continue,
                }
            }
            let Op::Conv(c) = &g.nodes[ci].op else { continue };
            let Some(&(fq, qi, s, z)) = quantisers.get(&other) else { continue };
            // the quantiser must come before the Add (it is another layer's input)
            if !int8(&c.layer.0) || qi >= ai {
                continue;
            }
            out.nodes[ai].inputs[at] = fq;
            let residual = g.value(other).name.clone();
            notes.push(ResidualEdit { layer: c.layer.0.clone(), residual, grid: ActQuant { scale: s, zero_point: z } });
            break;
        }
    }
    out.validate().map_err(|e| CompressError::Numeric(format!("quantising residuals: {e}")))?;
    Ok((out, notes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use kerf_ir::text;

    use super::quantize_residuals;

    /// `x` quantised for conv `c1` (step 0.5, zero point 10), `c2` after
    /// `c1`, and a residual `Add` of `c2`'s output and `x` (`swap`: `x`
    /// first).
    fn block(swap: bool) -> String {
        let add = if swap { "%0, %8" } else { "%8, %0" };
        format!(
            r#"graph "g"
  input %0 "x": f32[1,2,2,2]
  const %1 "s": f32[] = [0.5]
  const %6 "w": f32[2,2,1,1] = [1.0,0.5,-0.5,1.0]
  %2 = Div(%0, %1): f32[1,2,2,2] @"d"
  %3 = Round(%2): f32[1,2,2,2] @"r"
  %4 = Clip{{min=-10.0, max=245.0}}(%3): f32[1,2,2,2] @"c"
  %5 = Mul(%4, %1): f32[1,2,2,2] @"q"
  %7 = Conv{{kernel=[1,1], strides=[1,1], dilations=[1,1], pads=[0,0,0,0], group=1, layer="c1"}}(%5, %6): f32[1,2,2,2] @"c1"
  %8 = Conv{{kernel=[1,1], strides=[1,1], dilations=[1,1], pads=[0,0,0,0], group=1, layer="c2"}}(%7, %6): f32[1,2,2,2] @"c2"
  %9 = Add({add}): f32[1,2,2,2] @"add"
  output "y" = %9
"#
        )
    }

    /// The residual operand of `c2`'s Add is replaced by the quantiser
    /// `c1` already reads, on either side of the Add, only where the
    /// layer asks for it; its grid is reported.
    #[test]
    fn a_residual_reads_the_quantiser_of_its_tensor() {
        for swap in [false, true] {
            let g = text::parse(&block(swap)).unwrap();
            let add = g.nodes.iter().position(|n| n.name == "add").unwrap();
            let fq = g.nodes.iter().find(|n| n.name == "q").unwrap().outputs[0];
            let (q, edits) = quantize_residuals(&g, |l| l == "c2").unwrap();
            let x = usize::from(!swap);
            assert_eq!(q.nodes[add].inputs[x], fq, "swap {swap}");
            assert_eq!(q.nodes[add].inputs[1 - x], g.nodes[add].inputs[1 - x]);
            assert_eq!(edits.len(), 1);
            assert_eq!((edits[0].layer.as_str(), edits[0].grid.scale, edits[0].grid.zero_point), ("c2", 0.5, 10));
            let (same, none) = quantize_residuals(&g, |l| l == "c1").unwrap();
            assert!(none.is_empty());
            assert_eq!(same.nodes[add].inputs, g.nodes[add].inputs);
        }
    }
}
