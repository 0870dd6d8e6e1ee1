//! GatherElements and ScatterElements as compositions of existing IR ops
//! (no kernels of their own).
//!
//! With static shapes the gather along `axis` is a one-hot selection: in a
//! rank r+1 space where the data axis sits right after the indices axis,
//! `out = ReduceSum(Where(Equal(indices[.., K, 1, ..], iota[1.., 1, D, 1..]),
//! data[.., 1, D, ..], 0), axis + 1)`. Exactly one term of each sum is
//! selected, so the result is exact for integers and floats (Where, not a
//! multiply, keeps Inf/NaN elsewhere out of it). On the other axes the
//! indices may be shorter than the data; the data is sliced to them first.
//! Negative indices count from the end; out-of-range indices (undefined in
//! the spec) select nothing and give 0.
//!
//! ScatterElements uses the same one-hot `hit [.., K, D, ..]`: the updates
//! landing on each data position are combined over K (sum for `none`/`add`,
//! product, max, min, with the neutral element where nothing lands), padded
//! with zeros to the data's extent on the other axes, and merged with the
//! data (`none`: replaced where something lands; duplicate indices are
//! undefined in the spec and sum here).

use kerf_ir::op::{BinaryOp, ReduceKind};
use kerf_ir::{Op, Tensor, ValueId};

use super::compose::{konst_int, wrap_negative};
use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("GatherElements", gather_elements));
    r.push(("ScatterElements", scatter_elements));
    // Scatter (opsets 9-10) is ScatterElements without reduction.
    r.push(("Scatter", scatter_elements));
}

fn gather_elements(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let data = cx.input(0)?;
    let indices = cx.input(1)?;
    let dt = cx.ty(data).clone();
    let it = cx.ty(indices).clone();
    let rank = dt.rank();
    let axis = cx.axis(cx.attrs().int("axis", 0)?, rank)?;
    if !it.dtype.is_int() {
        return Err(cx.err(format!("indices must be an integer tensor, got {it}")));
    }
    if !(dt.dtype.is_int() || dt.dtype.is_float()) {
        return Err(cx.err(format!("data of type {} is not supported (numeric types only)", dt.dtype)));
    }
    if it.rank() != rank {
        return Err(cx.err(format!("indices {it} must have the rank of data {dt}")));
    }
    for (k, (&i, &d)) in it.shape.iter().zip(&dt.shape).enumerate() {
        if k != axis && i > d {
            return Err(cx.err(format!("indices {it} are larger than data {dt} on axis {k}")));
        }
    }
    let d_axis = dt.shape[axis];

    // Data restricted to the indices' extent on the other axes.
    let mut data = data;
    if it.shape.iter().zip(&dt.shape).enumerate().any(|(k, (&i, &d))| k != axis && i != d) {
        let ends: Vec<i64> = it
            .shape
            .iter()
            .zip(&dt.shape)
            .enumerate()
            .map(|(k, (&i, &d))| if k == axis { d } else { i } as i64)
            .collect();
        let op = Op::Slice { starts: vec![0; rank], ends, steps: vec![1; rank] };
        data = cx.add1(op, vec![data])?;
    }

    let dim = konst_int(cx, "axis_size", it.dtype, vec![], &[d_axis as i64])?;
    let idx = wrap_negative(cx, indices, dim)?;

    let mut idx_shape = it.shape.clone();
    idx_shape.insert(axis + 1, 1);
    let idx = cx.add1(Op::Reshape { shape: idx_shape }, vec![idx])?;
    let mut data_shape: Vec<usize> = it.shape.clone();
    data_shape[axis] = d_axis;
    data_shape.insert(axis, 1);
    let data = cx.add1(Op::Reshape { shape: data_shape }, vec![data])?;
    let mut iota_shape = vec![1; rank + 1];
    iota_shape[axis + 1] = d_axis;
    let positions: Vec<i64> = (0..d_axis as i64).collect();
    let iota = Tensor::from_i64_values(it.dtype, iota_shape, &positions).map_err(|e| cx.err(e.to_string()))?;
    let iota = cx.derived("positions", iota);
    let hit = cx.add1(Op::Binary(BinaryOp::Equal), vec![idx, iota])?;
    let zero = Tensor::from_f64_values(dt.dtype, vec![], &[0.0]).map_err(|e| cx.err(e.to_string()))?;
    let zero = cx.derived("zero", zero);
    let picked = cx.add1(Op::Where, vec![hit, data, zero])?;
    Ok(vec![cx.add1(Op::Reduce { kind: ReduceKind::Sum, axes: vec![axis + 1], keepdims: false }, vec![picked])?])
}

fn scatter_elements(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let data = cx.input(0)?;
    let indices = cx.input(1)?;
    let updates = cx.input(2)?;
    let dt = cx.ty(data).clone();
    let it = cx.ty(indices).clone();
    let ut = cx.ty(updates).clone();
    let rank = dt.rank();
    let a = cx.attrs();
    let axis = cx.axis(a.int("axis", 0)?, rank)?;
    let reduction = a.string("reduction", "none")?;
    if !it.dtype.is_int() {
        return Err(cx.err(format!("indices must be an integer tensor, got {it}")));
    }
    if !(dt.dtype.is_int() || dt.dtype.is_float()) {
        return Err(cx.err(format!("data of type {} is not supported (numeric types only)", dt.dtype)));
    }
    if ut.shape != it.shape || ut.dtype != dt.dtype || it.rank() != rank {
        return Err(cx.err(format!("indices {it} and updates {ut} must have the same shape, data {dt}")));
    }
    for (k, (&i, &d)) in it.shape.iter().zip(&dt.shape).enumerate() {
        if k != axis && i > d {
            return Err(cx.err(format!("indices {it} are larger than data {dt} on axis {k}")));
        }
    }
    let d_axis = dt.shape[axis];
    let (kind, neutral) = match reduction.as_str() {
        "none" | "add" => (ReduceKind::Sum, 0.0),
        "mul" => (ReduceKind::Prod, 1.0),
        "max" => (ReduceKind::Max, f64::NEG_INFINITY),
        "min" => (ReduceKind::Min, f64::INFINITY),
        other => return Err(cx.err(format!("unknown reduction '{other}'"))),
    };
    if dt.dtype.is_int() && neutral.is_infinite() {
        return Err(cx.err(format!("reduction '{reduction}' on integer data is not supported")));
    }
    let scalar_d = |cx: &mut Cx, what: &str, v: f64| -> Result<ValueId, ImportError> {
        let t = Tensor::from_f64_values(dt.dtype, vec![], &[v]).map_err(|e| cx.err(e.to_string()))?;
        Ok(cx.derived(what, t))
    };
    let dim = konst_int(cx, "axis_size", it.dtype, vec![], &[d_axis as i64])?;
    let idx = wrap_negative(cx, indices, dim)?;
    // [.., K, 1, ..] against iota [1.., 1, D, 1..].
    let mut kshape = it.shape.clone();
    kshape.insert(axis + 1, 1);
    let idx = cx.add1(Op::Reshape { shape: kshape.clone() }, vec![idx])?;
    let upd = cx.add1(Op::Reshape { shape: kshape }, vec![updates])?;
    let mut iota_shape = vec![1; rank + 1];
    iota_shape[axis + 1] = d_axis;
    let positions: Vec<i64> = (0..d_axis as i64).collect();
    let iota = Tensor::from_i64_values(it.dtype, iota_shape, &positions).map_err(|e| cx.err(e.to_string()))?;
    let iota = cx.derived("positions", iota);
    let hit = cx.add1(Op::Binary(BinaryOp::Equal), vec![idx, iota])?;
    let neutral_v = scalar_d(cx, "neutral", neutral)?;
    let landed = cx.add1(Op::Where, vec![hit, upd, neutral_v])?;
    let combined = cx.add1(Op::Reduce { kind, axes: vec![axis], keepdims: false }, vec![landed])?;
    let hits = cx.add1(Op::Cast(dt.dtype), vec![hit])?;
    let hits = cx.add1(Op::Reduce { kind: ReduceKind::Sum, axes: vec![axis], keepdims: false }, vec![hits])?;
    // Out to the data's extent on the other axes (nothing lands there).
    let mut pads = vec![0usize; 2 * rank];
    for k in 0..rank {
        if k != axis {
            pads[rank + k] = dt.shape[k] - it.shape[k];
        }
    }
    let (combined, hits) = if pads.iter().any(|&p| p != 0) {
        let pad = |v: f64| Op::Pad {
            pads: pads.clone(),
            mode: kerf_ir::op::PadMode::Constant,
            value: kerf_ir::F32::new(v as f32),
        };
        (cx.add1(pad(neutral), vec![combined])?, cx.add1(pad(0.0), vec![hits])?)
    } else {
        (combined, hits)
    };
    let zero = scalar_d(cx, "zero", 0.0)?;
    let landed_any = cx.add1(Op::Binary(BinaryOp::Greater), vec![hits, zero])?;
    let merged = match reduction.as_str() {
        "none" => combined,
        "add" => cx.add1(Op::Binary(BinaryOp::Add), vec![data, combined])?,
        "mul" => cx.add1(Op::Binary(BinaryOp::Mul), vec![data, combined])?,
        "max" => cx.add1(Op::Binary(BinaryOp::Max), vec![data, combined])?,
        _ => cx.add1(Op::Binary(BinaryOp::Min), vec![data, combined])?,
    };
    Ok(vec![cx.add1(Op::Where, vec![landed_any, merged, data])?])
}
