//! Normalisations and softmax.
//!
//! Softmax/LogSoftmax before opset 13 coerce the input to 2-D at `axis`
//! (`[prod(dims < axis), prod(dims >= axis)]`) and normalise the whole second
//! dimension; that is emitted as Reshape → Softmax(last axis) → Reshape
//! unless `axis` already is the last axis, where both readings agree.

use kerf_ir::op::ReduceKind;
use kerf_ir::{BinaryOp, Op, Tensor, UnaryOp, ValueId, F32};

use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("BatchNormalization", batch_norm));
    r.push(("LayerNormalization", layer_norm));
    r.push(("InstanceNormalization", instance_norm));
    r.push(("Softmax", softmax));
    r.push(("LogSoftmax", softmax));
}

fn batch_norm(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let a = cx.attrs();
    if a.int("training_mode", 0)? != 0 {
        return batch_norm_training(cx);
    }
    if cx.opset < 9 && a.int("spatial", 1)? != 1 {
        return Err(cx.err("spatial=0 is not supported"));
    }
    let eps = a.float("epsilon", 1e-5)?;
    let ins = (0..5).map(|i| cx.input(i)).collect::<Result<Vec<_>, _>>()?;
    // Outputs 1.. (running mean/var, saved stats) exist only in training.
    Ok(vec![cx.add1(Op::BatchNorm { epsilon: F32::new(eps) }, ins)?])
}

/// BatchNormalization with `training_mode=1`: normalise with the batch
/// statistics (mean and biased variance over every axis but 1) and output
/// the updated running statistics `running * momentum + batch * (1 -
/// momentum)`; before opset 14 also the saved batch mean and variance.
fn batch_norm_training(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let a = cx.attrs();
    let eps = a.float("epsilon", 1e-5)? as f64;
    let momentum = a.float("momentum", 0.9)? as f64;
    let ins = (0..5).map(|i| cx.input(i)).collect::<Result<Vec<_>, _>>()?;
    let (x, scale, bias, rmean, rvar) = (ins[0], ins[1], ins[2], ins[3], ins[4]);
    let xs = cx.shape(x);
    let dt = cx.ty(x).dtype;
    if xs.len() < 2 || !dt.is_float() {
        return Err(cx.err(format!("input {} must be float with a channel axis", cx.ty(x))));
    }
    let c = xs[1];
    for &p in &ins[1..] {
        if cx.shape(p) != [c] {
            return Err(cx.err(format!("scale/bias/mean/var {} must be [{c}]", cx.ty(p))));
        }
    }
    let axes: Vec<usize> = (0..xs.len()).filter(|&i| i != 1).collect();
    let mut bshape = vec![1; xs.len()];
    bshape[1] = c;
    let scalar = |cx: &mut Cx, v: f64| -> Result<ValueId, ImportError> {
        let t = Tensor::from_f64_values(dt, vec![], &[v]).map_err(|e| cx.err(e.to_string()))?;
        Ok(cx.derived("c", t))
    };
    let bc = |cx: &mut Cx, v: ValueId| cx.add1(Op::Reshape { shape: bshape.clone() }, vec![v]);
    let mean_op = Op::Reduce { kind: ReduceKind::Mean, axes, keepdims: false };
    let mean = cx.add1(mean_op.clone(), vec![x])?;
    let mean_b = bc(cx, mean)?;
    let diff = cx.add1(Op::Binary(BinaryOp::Sub), vec![x, mean_b])?;
    let sq = cx.add1(Op::Binary(BinaryOp::Mul), vec![diff, diff])?;
    let var = cx.add1(mean_op, vec![sq])?;
    let e = scalar(cx, eps)?;
    let ve = cx.add1(Op::Binary(BinaryOp::Add), vec![var, e])?;
    let sd = cx.add1(Op::Unary(UnaryOp::Sqrt), vec![ve])?;
    let inv = cx.add1(Op::Unary(UnaryOp::Reciprocal), vec![sd])?;
    let k = cx.add1(Op::Binary(BinaryOp::Mul), vec![inv, scale])?;
    let k_b = bc(cx, k)?;
    let bias_b = bc(cx, bias)?;
    let y = cx.add1(Op::Binary(BinaryOp::Mul), vec![diff, k_b])?;
    let y = cx.add1(Op::Binary(BinaryOp::Add), vec![y, bias_b])?;
    let m = scalar(cx, momentum)?;
    let m1 = scalar(cx, 1.0 - momentum)?;
    let blend = |cx: &mut Cx, run: ValueId, batch: ValueId| -> Result<ValueId, ImportError> {
        let p = cx.add1(Op::Binary(BinaryOp::Mul), vec![run, m])?;
        let q = cx.add1(Op::Binary(BinaryOp::Mul), vec![batch, m1])?;
        cx.add1(Op::Binary(BinaryOp::Add), vec![p, q])
    };
    let run_mean = blend(cx, rmean, mean)?;
    let run_var = blend(cx, rvar, var)?;
    let mut outs = vec![y, run_mean, run_var];
    if cx.opset < 14 {
        outs.extend([mean, var]);
    }
    Ok(outs)
}

fn layer_norm(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let a = cx.attrs();
    let x = cx.input(0)?;
    let rank = cx.ty(x).rank();
    let axis = cx.axis(a.int("axis", -1)?, rank)?;
    if a.int("stash_type", 1)? != 1 {
        return Err(cx.err("stash_type other than float is not supported"));
    }
    let eps = a.float("epsilon", 1e-5)?;
    let mut ins = vec![x, cx.input(1)?];
    ins.extend(cx.opt_input(2));
    let y = cx.add1(Op::LayerNorm { axis, epsilon: F32::new(eps) }, ins)?;
    if !cx.output_used(1) && !cx.output_used(2) {
        return Ok(vec![y]);
    }
    // The optional statistics outputs, spelled out with reductions:
    // mean and 1 / sqrt(var + eps) over axes `axis..`, kept as size-1 dims.
    let axes: Vec<usize> = (axis..rank).collect();
    let mean_op = Op::Reduce { kind: ReduceKind::Mean, axes, keepdims: true };
    let mean = cx.add1(mean_op.clone(), vec![x])?;
    let diff = cx.add1(Op::Binary(BinaryOp::Sub), vec![x, mean])?;
    let sq = cx.add1(Op::Binary(BinaryOp::Mul), vec![diff, diff])?;
    let var = cx.add1(mean_op, vec![sq])?;
    let e = Tensor::from_f64_values(cx.ty(x).dtype, vec![], &[eps as f64])?;
    let e = cx.derived("epsilon", e);
    let ve = cx.add1(Op::Binary(BinaryOp::Add), vec![var, e])?;
    let sd = cx.add1(Op::Unary(UnaryOp::Sqrt), vec![ve])?;
    let inv = cx.add1(Op::Unary(UnaryOp::Reciprocal), vec![sd])?;
    Ok(vec![y, mean, inv])
}

fn instance_norm(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let eps = cx.attrs().float("epsilon", 1e-5)?;
    let ins = (0..3).map(|i| cx.input(i)).collect::<Result<Vec<_>, _>>()?;
    Ok(vec![cx.add1(Op::InstanceNorm { epsilon: F32::new(eps) }, ins)?])
}

fn softmax(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let d = cx.ty(x).dtype;
    if !matches!(d, kerf_ir::DType::F16 | kerf_ir::DType::BF16) {
        return softmax_of(cx, x);
    }
    // f16/bf16: exact widening, the f32 kernel, one rounding back
    let x32 = cx.add1(Op::Cast(kerf_ir::DType::F32), vec![x])?;
    let y = softmax_of(cx, x32)?;
    let y = *y.first().ok_or_else(|| cx.err("Softmax gave no value"))?;
    Ok(vec![cx.add1(Op::Cast(d), vec![y])?])
}

fn softmax_of(cx: &mut Cx, x: ValueId) -> Result<Vec<ValueId>, ImportError> {
    let shape = cx.shape(x);
    let rank = shape.len();
    let log = cx.op() == "LogSoftmax";
    let mk = |axis: usize| if log { Op::LogSoftmax { axis } } else { Op::Softmax { axis } };
    if cx.opset >= 13 {
        let axis = cx.axis(cx.attrs().int("axis", -1)?, rank)?;
        return Ok(vec![cx.add1(mk(axis), vec![x])?]);
    }
    let axis = cx.axis(cx.attrs().int("axis", 1)?, rank)?;
    if axis + 1 == rank {
        return Ok(vec![cx.add1(mk(axis), vec![x])?]);
    }
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis..].iter().product();
    let flat = cx.add1(Op::Reshape { shape: vec![outer, inner] }, vec![x])?;
    let s = cx.add1(mk(1), vec![flat])?;
    Ok(vec![cx.add1(Op::Reshape { shape }, vec![s])?])
}
