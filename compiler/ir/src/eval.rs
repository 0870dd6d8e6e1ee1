//! A reference evaluator for constant folding.
//!
//! It covers the elementwise, data-movement and reduction ops that appear in
//! shape subgraphs and in the constant arithmetic that rewrites create (e.g.
//! BatchNorm folding). Floats are computed in f64 and rounded once to the
//! result dtype, which for `+ - * / sqrt` gives the correctly rounded f32
//! result. Ops it does not cover return [`IrError::Eval`], and the caller
//! keeps the node instead of folding it.

use crate::infer;
use crate::op::*;
use crate::{DType, Graph, IrError, Tensor, TensorType, ValueDef, ValueId};

fn err(op: &Op, msg: impl Into<String>) -> IrError {
    IrError::Eval { op: op.name().to_string(), msg: msg.into() }
}

/// Row-major strides, in elements, of a tensor of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// For each output index of `out_shape`, the flat index into a tensor of
/// `in_shape` broadcast to it.
fn broadcast_index(in_shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let r = out_shape.len();
    let off = r - in_shape.len();
    let in_str = strides(in_shape);
    let n: usize = out_shape.iter().product();
    let mut idx = vec![0usize; r];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut flat = 0;
        for a in off..r {
            if in_shape[a - off] != 1 {
                flat += idx[a] * in_str[a - off];
            }
        }
        out.push(flat);
        for a in (0..r).rev() {
            idx[a] += 1;
            if idx[a] < out_shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    out
}

/// Runs a whole graph through [`eval`], node by node in order: the
/// reference semantics of a graph, the oracle the kernels and rewrites are
/// tested against. Errors name the node that failed, including a node whose
/// result does not have the type the graph gives it. Intermediate values are
/// dropped after their last use, so memory stays near the graph's live set.
pub fn eval_graph(g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, IrError> {
    if inputs.len() != g.inputs.len() {
        return Err(IrError::Invalid(format!("{} inputs given, the graph has {}", inputs.len(), g.inputs.len())));
    }
    let mut vals: Vec<Option<Tensor>> = vec![None; g.values.len()];
    for (i, v) in g.values.iter().enumerate() {
        match v.def {
            ValueDef::Input(k) => vals[i] = Some(inputs[k].clone()),
            ValueDef::Const(w) => vals[i] = Some(g.weights.tensor(w).clone()),
            ValueDef::Node { .. } => {}
        }
    }
    let undefined = |v: ValueId| IrError::Invalid(format!("value %{} used before it is defined", v.0));
    // graph outputs count as uses, so they are never dropped
    let mut uses = g.use_counts();
    for n in &g.nodes {
        let ins = n
            .inputs
            .iter()
            .map(|&v| vals[v.0 as usize].as_ref().ok_or_else(|| undefined(v)))
            .collect::<Result<Vec<&Tensor>, IrError>>()?;
        let node_err = |msg: String| IrError::Node { node: n.name.clone(), op: n.op.name().to_string(), msg };
        let outs = eval(&n.op, &ins).map_err(|e| node_err(e.to_string()))?;
        if outs.len() != n.outputs.len() {
            return Err(node_err(format!("evaluator gave {} outputs, the node has {}", outs.len(), n.outputs.len())));
        }
        for (&o, t) in n.outputs.iter().zip(outs) {
            let ty = g.ty(o);
            if t.dtype() != ty.dtype || t.shape() != ty.shape.as_slice() {
                return Err(node_err(format!("evaluator gave {}{:?}, the graph says {ty}", t.dtype(), t.shape())));
            }
            vals[o.0 as usize] = Some(t);
        }
        for &v in &n.inputs {
            let u = &mut uses[v.0 as usize];
            *u = u.saturating_sub(1);
            if *u == 0 && matches!(g.value(v).def, ValueDef::Node { .. }) {
                vals[v.0 as usize] = None;
            }
        }
    }
    g.outputs.iter().map(|o| vals[o.value.0 as usize].clone().ok_or_else(|| undefined(o.value))).collect()
}

/// Evaluates `op` on constant inputs. The output types are exactly what
/// [`infer::infer`] gives.
pub fn eval(op: &Op, inputs: &[&Tensor]) -> Result<Vec<Tensor>, IrError> {
    let tys: Vec<TensorType> = inputs.iter().map(|t| TensorType::new(t.dtype(), t.shape().to_vec())).collect();
    let ty_refs: Vec<&TensorType> = tys.iter().collect();
    let out_tys = infer::infer(op, &ty_refs).map_err(|m| err(op, m))?;
    let out0 = &out_tys[0];
    let total: usize = out_tys.iter().map(|t| t.numel()).sum();
    if total > crate::MAX_CONST_ELEMENTS {
        return Err(err(op, "result too large to fold"));
    }
    let x = inputs[0];
    let res = match op {
        Op::Identity | Op::Dropout => x.clone(),
        Op::Cast(to) => x.cast(*to)?,
        Op::BitCast(to) => Tensor::from_bytes(*to, x.shape().to_vec(), x.bytes().to_vec())?,
        Op::CastF8 { to, saturate, round } => x.cast_with(*to, *saturate, *round)?,
        Op::Requantize { axis, zp, out } => crate::eval_nn::requantize(*axis, *zp, *out, inputs, x)?,
        Op::Quantize { scale, zp, pads } => crate::eval_nn::quantize(x, *scale, *zp, pads)?,
        Op::Unary(u) => {
            if x.dtype().is_float() {
                let v: Vec<f64> = x.to_f64_vec().into_iter().map(|a| unary_f(*u, a)).collect();
                Tensor::from_f64_values(x.dtype(), x.shape().to_vec(), &v)?
            } else {
                let v = x
                    .to_i64_vec()
                    .into_iter()
                    .map(|a| unary_i(*u, a).ok_or_else(|| err(op, format!("not defined on {}", x.dtype()))))
                    .collect::<Result<Vec<_>, _>>()?;
                Tensor::from_i64_values(out0.dtype, x.shape().to_vec(), &v)?
            }
        }
        Op::Binary(b) if b.is_bitwise() => {
            let (a, c) = (inputs[0], inputs[1]);
            let ia = broadcast_index(a.shape(), &out0.shape);
            let ic = broadcast_index(c.shape(), &out0.shape);
            let (va, vc) = (a.to_i64_vec(), c.to_i64_vec());
            let d = a.dtype();
            let v = ia
                .iter()
                .zip(&ic)
                .map(|(&i, &j)| bitwise_i(*b, d, va[i], vc[j]).ok_or_else(|| err(op, format!("not defined on {d}"))))
                .collect::<Result<Vec<_>, _>>()?;
            Tensor::from_i64_values(out0.dtype, out0.shape.clone(), &v)?
        }
        Op::Binary(b) => {
            let (a, c) = (inputs[0], inputs[1]);
            let ia = broadcast_index(a.shape(), &out0.shape);
            let ic = broadcast_index(c.shape(), &out0.shape);
            let float = a.dtype().is_float();
            if float || *b == BinaryOp::Pow {
                let (va, vc) = (a.to_f64_vec(), c.to_f64_vec());
                let v: Vec<f64> = ia.iter().zip(&ic).map(|(&i, &j)| binary_f(*b, va[i], vc[j])).collect();
                Tensor::from_f64_values(out0.dtype, out0.shape.clone(), &v)?
            } else {
                let (va, vc) = (a.to_i64_vec(), c.to_i64_vec());
                let v = ia
                    .iter()
                    .zip(&ic)
                    .map(|(&i, &j)| binary_i(*b, va[i], vc[j]).ok_or_else(|| err(op, "integer division by zero")))
                    .collect::<Result<Vec<_>, _>>()?;
                Tensor::from_i64_values(out0.dtype, out0.shape.clone(), &v)?
            }
        }
        Op::Chain(steps) => crate::op::chain::eval(steps, inputs)?,
        Op::Where => {
            let ic = broadcast_index(inputs[0].shape(), &out0.shape);
            let ia = broadcast_index(inputs[1].shape(), &out0.shape);
            let ib = broadcast_index(inputs[2].shape(), &out0.shape);
            let cond = inputs[0].to_i64_vec();
            gather_bytes(&out0.shape, out0.dtype, |k| {
                if cond[ic[k]] != 0 {
                    (inputs[1], ia[k])
                } else {
                    (inputs[2], ib[k])
                }
            })?
        }
        Op::Reshape { shape } => x.reshaped(shape.clone())?,
        Op::Expand { shape } => {
            let idx = broadcast_index(x.shape(), shape);
            gather_bytes(shape, x.dtype(), |k| (x, idx[k]))?
        }
        Op::Pad { pads, mode: PadMode::Constant, value } if !matches!(x.dtype(), DType::I64 | DType::U64) => {
            // through f64, exact for every other dtype's values
            let xs = x.shape();
            let src = strides(xs);
            let xv = x.to_f64_vec();
            let v: Vec<f64> = (0..out0.numel())
                .map(|k| {
                    let mut rem = k;
                    let mut off = 0;
                    for (i, d) in out0.shape.iter().enumerate().rev() {
                        let o = rem % d;
                        rem /= d;
                        match o.checked_sub(pads[i]).filter(|&p| p < xs[i]) {
                            Some(p) => off += p * src[i],
                            None => return f64::from(value.get()),
                        }
                    }
                    xv[off]
                })
                .collect();
            Tensor::from_f64_values(x.dtype(), out0.shape.clone(), &v)?
        }
        Op::Transpose { perm } => {
            let src = strides(x.shape());
            let idx = map_index(&out0.shape, |o| perm.iter().enumerate().map(|(i, &p)| o[i] * src[p]).sum());
            gather_bytes(&out0.shape, x.dtype(), |k| (x, idx[k]))?
        }
        Op::Slice { starts, steps, .. } => {
            let src = strides(x.shape());
            let idx = map_index(&out0.shape, |o| {
                (0..o.len()).map(|i| ((starts[i] + o[i] as i64 * steps[i]) as usize) * src[i]).sum()
            });
            gather_bytes(&out0.shape, x.dtype(), |k| (x, idx[k]))?
        }
        Op::Tile { .. } => {
            let src = strides(x.shape());
            let xs = x.shape();
            let idx = map_index(&out0.shape, |o| (0..o.len()).map(|i| (o[i] % xs[i]) * src[i]).sum());
            gather_bytes(&out0.shape, x.dtype(), |k| (x, idx[k]))?
        }
        Op::Concat { axis } => {
            let mut bounds = Vec::new();
            let mut acc = 0;
            for t in inputs {
                bounds.push(acc);
                acc += t.shape()[*axis];
            }
            let srcs: Vec<Vec<usize>> = inputs.iter().map(|t| strides(t.shape())).collect();
            let mut which = Vec::new();
            let idx = map_index(&out0.shape, |o| {
                let a = o[*axis];
                let k = bounds
                    .iter()
                    .rposition(|&b| {
                        b <= a && inputs[bounds.iter().position(|&x| x == b).unwrap_or(0)].shape()[*axis] > 0
                    })
                    .unwrap_or(0);
                let k = (0..inputs.len()).rev().find(|&j| bounds[j] <= a && inputs[j].shape()[*axis] > 0).unwrap_or(k);
                which.push(k);
                (0..o.len()).map(|i| if i == *axis { (a - bounds[k]) * srcs[k][i] } else { o[i] * srcs[k][i] }).sum()
            });
            gather_bytes(&out0.shape, x.dtype(), |k| (inputs[which[k]], idx[k]))?
        }
        Op::Split { axis, sizes } => {
            let src = strides(x.shape());
            let mut outs = Vec::new();
            let mut off = 0;
            for (t, &n) in out_tys.iter().zip(sizes) {
                let idx = map_index(&t.shape, |o| {
                    (0..o.len()).map(|i| if i == *axis { (o[i] + off) * src[i] } else { o[i] * src[i] }).sum()
                });
                outs.push(gather_bytes(&t.shape, x.dtype(), |k| (x, idx[k]))?);
                off += n;
            }
            return Ok(outs);
        }
        Op::Gather { axis } => {
            let ind = inputs[1].to_i64_vec();
            let dim = x.shape()[*axis] as i64;
            let src = strides(x.shape());
            let q = inputs[1].shape().len();
            let mut bad = None;
            let idx = map_index(&out0.shape, |o| {
                let lin_ind = {
                    let istr = strides(inputs[1].shape());
                    (0..q).map(|j| o[axis + j] * istr[j]).sum::<usize>()
                };
                let mut i = ind[lin_ind];
                if i < 0 {
                    i += dim;
                }
                if i < 0 || i >= dim {
                    bad = Some(ind[lin_ind]);
                    return 0;
                }
                let mut flat = 0;
                for a in 0..*axis {
                    flat += o[a] * src[a];
                }
                flat += i as usize * src[*axis];
                for a in axis + 1..x.shape().len() {
                    flat += o[a + q - 1] * src[a];
                }
                flat
            });
            if let Some(b) = bad {
                return Err(err(op, format!("index {b} out of range for axis of {dim}")));
            }
            gather_bytes(&out0.shape, x.dtype(), |k| (x, idx[k]))?
        }
        Op::Reduce { kind, axes, .. } => {
            let xs = x.shape();
            let mut kept = xs.to_vec();
            for &a in axes {
                kept[a] = 1;
            }
            let ks = strides(&kept);
            let n_out: usize = kept.iter().product();
            let vals = x.to_f64_vec();
            let init = match kind {
                ReduceKind::Max => f64::NEG_INFINITY,
                ReduceKind::Min => f64::INFINITY,
                ReduceKind::Prod => 1.0,
                _ => 0.0,
            };
            let mut acc = vec![init; n_out];
            let mut count = vec![0usize; n_out];
            let pos = map_index(xs, |o| (0..o.len()).map(|i| if kept[i] == 1 { 0 } else { o[i] * ks[i] }).sum());
            for (k, &p) in pos.iter().enumerate() {
                let v = vals[k];
                count[p] += 1;
                acc[p] = match kind {
                    ReduceKind::Sum | ReduceKind::Mean | ReduceKind::LogSum => acc[p] + v,
                    ReduceKind::Max => acc[p].max(v),
                    ReduceKind::Min => acc[p].min(v),
                    ReduceKind::Prod => acc[p] * v,
                    ReduceKind::L1 => acc[p] + v.abs(),
                    ReduceKind::L2 | ReduceKind::SumSquare => acc[p] + v * v,
                    ReduceKind::LogSumExp => acc[p] + v.exp(),
                };
            }
            for (a, &c) in acc.iter_mut().zip(&count) {
                *a = match kind {
                    ReduceKind::Mean => *a / c as f64,
                    ReduceKind::L2 => a.sqrt(),
                    ReduceKind::LogSum | ReduceKind::LogSumExp => a.ln(),
                    _ => *a,
                };
            }
            if x.dtype().is_float() {
                Tensor::from_f64_values(x.dtype(), out0.shape.clone(), &acc)?
            } else {
                let v: Vec<i64> = acc.iter().map(|&a| a as i64).collect();
                Tensor::from_i64_values(x.dtype(), out0.shape.clone(), &v)?
            }
        }
        Op::MatMul(_) | Op::Gemm(_) => matmul(op, inputs, out0)?,
        Op::Conv(c) => crate::eval_nn::conv(op, c, inputs, out0)?,
        Op::ConvFused(c, e) => {
            let conv = Op::Conv(c.clone());
            let mut y = crate::eval_nn::conv(&conv, c, &inputs[..3.min(inputs.len())], out0)?;
            if e.residual {
                let r = inputs.get(3).ok_or_else(|| err(op, "missing residual input"))?;
                y = eval(&Op::Binary(crate::BinaryOp::Add), &[&y, r])?.remove(0);
            }
            if let Some(u) = e.act {
                y = eval(&Op::Unary(u), &[&y])?.remove(0);
            }
            y
        }
        Op::QConv(q) => crate::eval_nn::qconv(op, q, inputs, out0)?,
        Op::MaxPool(p) => crate::eval_nn::max_pool(op, p, x, out0)?,
        Op::MatMulFused(l, e) | Op::GemmFused(Gemm { layer: l, .. }, e) => {
            // act((product + bias) + residual), in that order
            let (prod, bias) = match op {
                Op::GemmFused(g, _) => (Op::Gemm(g.clone()), None),
                _ => (Op::MatMul(l.clone()), inputs.get(2)),
            };
            let n_prod = if bias.is_some() { 2 } else { 3 };
            let mut y = matmul(&prod, &inputs[..n_prod.min(inputs.len())], out0)?;
            if let Some(b) = bias {
                y = eval(&Op::Binary(crate::BinaryOp::Add), &[&y, b])?.remove(0);
            }
            if e.residual {
                let r = inputs.get(3).ok_or_else(|| err(op, "missing residual input"))?;
                y = eval(&Op::Binary(crate::BinaryOp::Add), &[&y, r])?.remove(0);
            }
            if let Some(u) = e.act {
                y = eval(&Op::Unary(u), &[&y])?.remove(0);
            }
            y
        }
        Op::BatchNorm { epsilon } => crate::eval_nn::batch_norm(op, epsilon.get(), inputs, out0)?,
        _ => return Err(err(op, "no reference implementation for folding")),
    };
    Ok(vec![res])
}

fn matmul(op: &Op, inputs: &[&Tensor], out: &TensorType) -> Result<Tensor, IrError> {
    if !inputs[0].dtype().is_float() {
        return Err(err(op, "integer matmul folding is not supported"));
    }
    let (a, b) = (inputs[0], inputs[1]);
    let (av, bv) = (a.to_f64_vec(), b.to_f64_vec());
    match op {
        Op::Gemm(g) => {
            let (m, n) = (out.shape[0], out.shape[1]);
            let k = if g.trans_a { a.shape()[0] } else { a.shape()[1] };
            let cv = inputs.get(2).map(|c| (c.to_f64_vec(), broadcast_index(c.shape(), &out.shape)));
            let mut r = vec![0.0; m * n];
            for i in 0..m {
                for j in 0..n {
                    let mut s = 0.0;
                    for p in 0..k {
                        let x = if g.trans_a { av[p * m + i] } else { av[i * k + p] };
                        let y = if g.trans_b { bv[j * k + p] } else { bv[p * n + j] };
                        s += x * y;
                    }
                    let mut v = g.alpha.get() as f64 * s;
                    if let Some((c, ci)) = &cv {
                        v += g.beta.get() as f64 * c[ci[i * n + j]];
                    }
                    r[i * n + j] = v;
                }
            }
            Tensor::from_f64_values(out.dtype, out.shape.clone(), &r)
        }
        _ => {
            let ash = if a.shape().len() == 1 { vec![1, a.shape()[0]] } else { a.shape().to_vec() };
            let bsh = if b.shape().len() == 1 { vec![b.shape()[0], 1] } else { b.shape().to_vec() };
            let (m, k, n) = (ash[ash.len() - 2], ash[ash.len() - 1], bsh[bsh.len() - 1]);
            let batch = infer::broadcast(&ash[..ash.len() - 2], &bsh[..bsh.len() - 2]).map_err(|e| err(op, e))?;
            let nb: usize = batch.iter().product();
            let ia = broadcast_index(&ash[..ash.len() - 2], &batch);
            let ib = broadcast_index(&bsh[..bsh.len() - 2], &batch);
            let mut r = vec![0.0; nb * m * n];
            for bi in 0..nb {
                let (oa, ob) = (ia[bi] * m * k, ib[bi] * k * n);
                for i in 0..m {
                    for j in 0..n {
                        let mut s = 0.0;
                        for p in 0..k {
                            s += av[oa + i * k + p] * bv[ob + p * n + j];
                        }
                        r[bi * m * n + i * n + j] = s;
                    }
                }
            }
            Tensor::from_f64_values(out.dtype, out.shape.clone(), &r)
        }
    }
}

/// Calls `f` with every multi-index of `shape` in row-major order.
fn map_index(shape: &[usize], mut f: impl FnMut(&[usize]) -> usize) -> Vec<usize> {
    let n: usize = shape.iter().product();
    let mut idx = vec![0usize; shape.len()];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(f(&idx));
        for a in (0..shape.len()).rev() {
            idx[a] += 1;
            if idx[a] < shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    out
}

/// Builds a tensor whose k-th element is copied from element `i` of tensor `t`
/// where `(t, i) = src(k)`.
fn gather_bytes<'a>(
    shape: &[usize],
    dtype: DType,
    mut src: impl FnMut(usize) -> (&'a Tensor, usize),
) -> Result<Tensor, IrError> {
    let n: usize = shape.iter().product();
    let s = dtype.size();
    let mut out = Vec::with_capacity(n * s);
    for k in 0..n {
        let (t, i) = src(k);
        out.extend_from_slice(&t.bytes()[i * s..(i + 1) * s]);
    }
    Tensor::from_bytes(dtype, shape.to_vec(), out)
}

fn unary_f(u: UnaryOp, x: f64) -> f64 {
    use UnaryOp::*;
    match u {
        Neg => -x,
        Abs => x.abs(),
        Sqrt => x.sqrt(),
        Reciprocal => 1.0 / x,
        Exp => x.exp(),
        Log => x.ln(),
        Erf => erf(x),
        Tanh => x.tanh(),
        Sigmoid => 1.0 / (1.0 + (-x).exp()),
        // NaN stays NaN (ONNX's `max(0, x)` and `clip` are numpy's, which
        // propagate it; Rust's `max` would return the other operand)
        Relu if x.is_nan() => x,
        Relu => x.max(0.0),
        Floor => x.floor(),
        Ceil => x.ceil(),
        Round => x.round_ties_even(),
        Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        }
        Not => f64::from(x == 0.0),
        Sin => x.sin(),
        Cos => x.cos(),
        Softplus => x.exp().ln_1p(),
        Softsign => x / (1.0 + x.abs()),
        HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        BitwiseNot => f64::NAN,
        Tan => x.tan(),
        Asin => x.asin(),
        Acos => x.acos(),
        Atan => x.atan(),
        Sinh => x.sinh(),
        Cosh => x.cosh(),
        Asinh => x.asinh(),
        Acosh => x.acosh(),
        Atanh => x.atanh(),
        LeakyRelu { alpha } => {
            if x < 0.0 {
                alpha.get() as f64 * x
            } else {
                x
            }
        }
        HardSigmoid { alpha, beta } => (alpha.get() as f64 * x + beta.get() as f64).clamp(0.0, 1.0),
        Clip { .. } if x.is_nan() => x,
        Clip { min, max } => x.max(min.get() as f64).min(max.get() as f64),
        Gelu { tanh: false } => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
        Gelu { tanh: true } => {
            0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
        }
        Elu { alpha } => {
            if x < 0.0 {
                alpha.get() as f64 * (x.exp() - 1.0)
            } else {
                x
            }
        }
        Selu { alpha, gamma } => gamma.get() as f64 * if x <= 0.0 { alpha.get() as f64 * (x.exp() - 1.0) } else { x },
    }
}

fn unary_i(u: UnaryOp, x: i64) -> Option<i64> {
    Some(match u {
        UnaryOp::Neg => x.wrapping_neg(),
        UnaryOp::Abs => x.wrapping_abs(),
        UnaryOp::Relu => x.max(0),
        UnaryOp::Sign => x.signum(),
        UnaryOp::Not => i64::from(x == 0),
        // the bit pattern is truncated to the dtype's width on store
        UnaryOp::BitwiseNot => !x,
        UnaryOp::Clip { min, max } => {
            let (lo, hi) = (min.get() as f64, max.get() as f64);
            (x as f64).max(lo).min(hi) as i64
        }
        _ => return None,
    })
}

fn binary_f(b: BinaryOp, x: f64, y: f64) -> f64 {
    use BinaryOp::*;
    let t = |c: bool| f64::from(c);
    match b {
        Add => x + y,
        Sub => x - y,
        Mul => x * y,
        Div => x / y,
        Pow => x.powf(y),
        Max => {
            if x.is_nan() || y.is_nan() {
                f64::NAN
            } else {
                x.max(y)
            }
        }
        Min => {
            if x.is_nan() || y.is_nan() {
                f64::NAN
            } else {
                x.min(y)
            }
        }
        Mod => {
            let r = x % y;
            if r != 0.0 && (r < 0.0) != (y < 0.0) {
                r + y
            } else {
                r
            }
        }
        Fmod => x % y,
        Equal => t(x == y),
        Greater => t(x > y),
        GreaterOrEqual => t(x >= y),
        Less => t(x < y),
        LessOrEqual => t(x <= y),
        And => t(x != 0.0 && y != 0.0),
        Or => t(x != 0.0 || y != 0.0),
        Xor => t((x != 0.0) != (y != 0.0)),
        PRelu => {
            if x < 0.0 {
                y * x
            } else {
                x
            }
        }
        BitShiftLeft | BitShiftRight | BitwiseAnd | BitwiseOr | BitwiseXor => f64::NAN,
    }
}

fn binary_i(b: BinaryOp, x: i64, y: i64) -> Option<i64> {
    use BinaryOp::*;
    let t = |c: bool| i64::from(c);
    Some(match b {
        Add => x.wrapping_add(y),
        Sub => x.wrapping_sub(y),
        Mul => x.wrapping_mul(y),
        Div => x.checked_div(y)?,
        Pow => (x as f64).powf(y as f64) as i64,
        Max => x.max(y),
        Min => x.min(y),
        Mod => {
            let r = x.checked_rem(y)?;
            if r != 0 && (r < 0) != (y < 0) {
                r + y
            } else {
                r
            }
        }
        Fmod => x.checked_rem(y)?,
        Equal => t(x == y),
        Greater => t(x > y),
        GreaterOrEqual => t(x >= y),
        Less => t(x < y),
        LessOrEqual => t(x <= y),
        And => t(x != 0 && y != 0),
        Or => t(x != 0 || y != 0),
        Xor => t((x != 0) != (y != 0)),
        PRelu => {
            if x < 0 {
                y * x
            } else {
                x
            }
        }
        BitShiftLeft | BitShiftRight | BitwiseAnd | BitwiseOr | BitwiseXor => return None,
    })
}

/// Shifts and bitwise ops on integers held as i64 (sign- or zero-extended
/// from dtype `d`); the result is truncated to `d` by the caller.
fn bitwise_i(b: BinaryOp, d: DType, x: i64, y: i64) -> Option<i64> {
    use BinaryOp::*;
    if !d.is_int() {
        return None;
    }
    let bits = d.size() as u32 * 8;
    // the shift amount is read as an unsigned number of the dtype's width
    let amount = (y as u64) & (u64::MAX >> (64 - bits));
    let mask = u64::MAX >> (64 - bits);
    Some(match b {
        BitwiseAnd => x & y,
        BitwiseOr => x | y,
        BitwiseXor => x ^ y,
        BitShiftLeft => {
            if amount >= u64::from(bits) {
                0
            } else {
                x.wrapping_shl(amount as u32)
            }
        }
        BitShiftRight => {
            if d.is_signed_int() {
                // sign-extended i64: an arithmetic shift by at most bits-1 is the sign fill
                x >> amount.min(u64::from(bits) - 1)
            } else if amount >= u64::from(bits) {
                0
            } else {
                (((x as u64) & mask) >> amount) as i64
            }
        }
        _ => return None,
    })
}

/// erf with |error| < 1.2e-7 relative (Numerical Recipes erfc, Chebyshev),
/// enough for folding f32 constants.
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.26551223
            + t * (1.00002368
                + t * (0.37409196
                    + t * (0.09678418
                        + t * (-0.18628806
                            + t * (0.27886807
                                + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
            .exp();
    if x >= 0.0 {
        1.0 - r
    } else {
        r - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Layer;

    fn f(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_f32(shape.to_vec(), v).unwrap()
    }

    #[test]
    fn eval_graph_runs_nodes_in_order_and_names_a_failing_node() {
        let g = crate::text::parse(
            "graph \"g\"\n  input %0 \"x\": f32[3]\n  const %1 \"c\": f32[3] = [1.0, -5.0, 2.0]\n  %2 = Add(%0, %1): f32[3]\n  %3 = Relu(%2): f32[3]\n  output \"y\" = %3\n",
        )
        .unwrap();
        let y = eval_graph(&g, &[f(&[3], &[1.0, 2.0, -4.0])]).unwrap();
        assert_eq!(y[0].to_f32_vec(), vec![2.0, 0.0, 0.0]);
        assert!(matches!(eval_graph(&g, &[]), Err(IrError::Invalid(_))));
        // an input of the wrong shape: the Add fails, and the error says which node
        let e = eval_graph(&g, &[f(&[2], &[1.0, 2.0])]).unwrap_err();
        assert!(matches!(&e, IrError::Node { op, .. } if op == "Add"), "{e}");
    }

    /// Relu and Clip keep a NaN, as ONNX's numpy definitions (and every
    /// kernel) do; the other values as usual.
    #[test]
    fn relu_and_clip_keep_nan() {
        let x = f(&[4], &[f32::NAN, -1.0, 0.5, 9.0]);
        let clip = UnaryOp::Clip { min: crate::F32::new(0.0), max: crate::F32::new(6.0) };
        for (u, rest) in [(UnaryOp::Relu, [0.0, 0.5, 9.0]), (clip, [0.0, 0.5, 6.0])] {
            let y = eval(&Op::Unary(u), &[&x]).unwrap().remove(0).to_f32_vec();
            assert!(y[0].is_nan(), "{u:?}: {y:?}");
            assert_eq!(y[1..], rest, "{u:?}");
        }
    }

    #[test]
    fn broadcast_add() {
        let a = f(&[2, 1], &[1.0, 2.0]);
        let b = f(&[3], &[10.0, 20.0, 30.0]);
        let r = eval(&Op::Binary(BinaryOp::Add), &[&a, &b]).unwrap();
        assert_eq!(r[0].shape(), &[2, 3]);
        assert_eq!(r[0].to_f32_vec(), vec![11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
    }

    #[test]
    fn shape_chain_ops() {
        let s = Tensor::from_i64(vec![4], &[1, 3, 224, 224]).unwrap();
        let idx = Tensor::from_i64(vec![], &[0]).unwrap();
        let g = eval(&Op::Gather { axis: 0 }, &[&s, &idx]).unwrap();
        assert_eq!(g[0].shape(), &[] as &[usize]);
        assert_eq!(g[0].to_i64_vec(), vec![1]);
        let u = eval(&Op::Reshape { shape: vec![1] }, &[&g[0]]).unwrap();
        let c = eval(&Op::Concat { axis: 0 }, &[&u[0], &Tensor::from_i64(vec![1], &[-1]).unwrap()]).unwrap();
        assert_eq!(c[0].to_i64_vec(), vec![1, -1]);
        let neg = Tensor::from_i64(vec![1], &[-1]).unwrap();
        let g2 = eval(&Op::Gather { axis: 0 }, &[&s, &neg]).unwrap();
        assert_eq!(g2[0].to_i64_vec(), vec![224]);
        let oob = Tensor::from_i64(vec![1], &[4]).unwrap();
        assert!(eval(&Op::Gather { axis: 0 }, &[&s, &oob]).is_err());
    }

    #[test]
    fn transpose_slice_split() {
        let x = f(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let t = eval(&Op::Transpose { perm: vec![1, 0] }, &[&x]).unwrap();
        assert_eq!(t[0].to_f32_vec(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let s = eval(&Op::Slice { starts: vec![1, 2], ends: vec![-1, -1], steps: vec![-1, -1] }, &[&x]).unwrap();
        assert_eq!(s[0].shape(), &[2, 3]);
        assert_eq!(s[0].to_f32_vec(), vec![5.0, 4.0, 3.0, 2.0, 1.0, 0.0]);
        let sp = eval(&Op::Split { axis: 1, sizes: vec![1, 2] }, &[&x]).unwrap();
        assert_eq!(sp[1].to_f32_vec(), vec![1.0, 2.0, 4.0, 5.0]);
        let c = eval(&Op::Concat { axis: 1 }, &[&sp[1], &sp[0]]).unwrap();
        assert_eq!(c[0].to_f32_vec(), vec![1.0, 2.0, 0.0, 4.0, 5.0, 3.0]);
    }

    #[test]
    fn reductions_and_matmul() {
        let x = f(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let r = eval(&Op::Reduce { kind: ReduceKind::Sum, axes: vec![1], keepdims: false }, &[&x]).unwrap();
        assert_eq!(r[0].to_f32_vec(), vec![3.0, 12.0]);
        let m = eval(&Op::MatMul(Layer("m".into())), &[&x, &f(&[3, 1], &[1.0, 1.0, 1.0])]).unwrap();
        assert_eq!(m[0].to_f32_vec(), vec![3.0, 12.0]);
    }

    #[test]
    fn erf_accuracy() {
        for (x, want) in [(0.5, 0.5204998778130465), (1.0, 0.8427007929497149), (-2.0, -0.9953222650189527)] {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x})");
        }
    }
}
