//! CumSum, CumProd and OneHot as compositions of existing IR ops (no kernels).
//!
//! CumSum along an axis of length D is a masked sum: with the axis moved
//! last, `out[.., i] = ReduceSum_j(Where(M[i, j], x[.., 1, j], 0))` where
//! the constant D×D mask `M` says which j feed position i (j <= i; j < i
//! when `exclusive`; mirrored when `reverse`). Exact for integers; O(D²),
//! fine for the static sizes this compiler sees. CumProd is the same with a
//! product and 1 for the positions left out. OneHot compares the
//! (wrapped) index with a constant iota and selects `values[1]`/`values[0]`.
//! OneHot's depth shapes the result and must be constant; a CumSum axis
//! computed at run time selects among the sums along every axis.

use kerf_ir::op::{BinaryOp, ReduceKind};
use kerf_ir::{DType, Op, Tensor, ValueId};

use super::compose::{konst_i, pick_by_axis, wrap_negative};
use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("CumSum", cumsum));
    r.push(("CumProd", cumsum));
    r.push(("OneHot", one_hot));
}

fn tensor_err(cx: &Cx, e: kerf_ir::IrError) -> ImportError {
    cx.err(e.to_string())
}

/// CumSum / CumProd. A constant axis gives one masked reduction along it;
/// an axis computed at run time stays a runtime input: the op is computed
/// along every axis and the result picked at run time by comparing the
/// axis with each (negative values count from the end; an axis outside
/// `[-rank, rank)` picks the last axis' result, since a kernel cannot fail).
fn cumsum(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let xt = cx.ty(x).clone();
    let rank = xt.rank();
    if !(xt.dtype.is_int() || xt.dtype.is_float()) {
        return Err(cx.err(format!("input of type {} is not supported", xt.dtype)));
    }
    let axis_in = cx.input(1)?;
    if cx.g.const_of(axis_in).is_some() {
        let axis_v = cx.const_ints(1, "axis")?.ok_or_else(|| cx.err("missing required input 'axis'"))?;
        let axis = match axis_v.as_slice() {
            [a] => cx.axis(*a, rank)?,
            _ => return Err(cx.err(format!("axis must hold one value, got {axis_v:?}"))),
        };
        return Ok(vec![cumulative(cx, x, axis)?]);
    }
    let at = cx.ty(axis_in).clone();
    if at.numel() != 1 || !matches!(at.dtype, DType::I32 | DType::I64) || rank == 0 {
        return Err(cx.err(format!("axis must be one int32 or int64 value, got {at}")));
    }
    let mut by_axis = Vec::with_capacity(rank);
    for a in 0..rank {
        by_axis.push((a, cumulative(cx, x, a)?));
    }
    Ok(vec![pick_by_axis(cx, axis_in, rank, &by_axis)?])
}

/// The cumulative sum (or product, for CumProd) of `x` along `axis`, with
/// the node's `exclusive` and `reverse`: a masked reduction over a `[D, D]`
/// table with the axis moved last.
fn cumulative(cx: &mut Cx, x: ValueId, axis: usize) -> Result<ValueId, ImportError> {
    let xt = cx.ty(x).clone();
    let rank = xt.rank();
    let a = cx.attrs();
    let exclusive = a.bool("exclusive", false)?;
    let reverse = a.bool("reverse", false)?;
    let d = xt.shape[axis];
    // Axis last.
    let mut perm: Vec<usize> = (0..rank).filter(|&k| k != axis).collect();
    perm.push(axis);
    let moved = if axis + 1 == rank { x } else { cx.add1(Op::Transpose { perm: perm.clone() }, vec![x])? };
    let mut shape: Vec<usize> = perm.iter().map(|&k| xt.shape[k]).collect();
    // [.., 1, D]: j on the last axis, i broadcast.
    shape.insert(rank - 1, 1);
    let xe = cx.add1(Op::Reshape { shape }, vec![moved])?;
    let mut mask = Vec::with_capacity(d * d);
    for i in 0..d {
        for j in 0..d {
            let feeds = match (reverse, exclusive) {
                (false, false) => j <= i,
                (false, true) => j < i,
                (true, false) => j >= i,
                (true, true) => j > i,
            };
            mask.push(i64::from(feeds));
        }
    }
    let m = Tensor::from_i64_values(DType::Bool, vec![d, d], &mask).map_err(|e| tensor_err(cx, e))?;
    let m = cx.derived("mask", m);
    let (kind, neutral) = if cx.op() == "CumProd" { (ReduceKind::Prod, 1.0) } else { (ReduceKind::Sum, 0.0) };
    let neutral = Tensor::from_f64_values(xt.dtype, vec![], &[neutral]).map_err(|e| tensor_err(cx, e))?;
    let neutral = cx.derived("neutral", neutral);
    let picked = cx.add1(Op::Where, vec![m, xe, neutral])?;
    let summed = cx.add1(Op::Reduce { kind, axes: vec![rank], keepdims: false }, vec![picked])?;
    if axis + 1 == rank {
        return Ok(summed);
    }
    let mut back = vec![0; rank];
    for (k, &p) in perm.iter().enumerate() {
        back[p] = k;
    }
    cx.add1(Op::Transpose { perm: back }, vec![summed])
}

fn one_hot(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let indices = cx.input(0)?;
    let values = cx.input(2)?;
    let depth = cx.konst_req(1, "depth")?;
    let depth = match depth.to_f64_vec().as_slice() {
        [v] if v.is_finite() && *v >= 1.0 && *v <= (1u64 << 31) as f64 => *v as i64,
        other => return Err(cx.err(format!("depth must be one positive value, got {other:?}"))),
    };
    let it = cx.ty(indices).clone();
    let vt = cx.ty(values).clone();
    if vt.numel() != 2 {
        return Err(cx.err(format!("values must hold [off, on], got {vt}")));
    }
    let r = it.rank() as i64;
    let axis = cx.attrs().int("axis", -1)?;
    let axis = if axis < 0 { axis.saturating_add(r + 1) } else { axis };
    if axis < 0 || axis > r {
        return Err(cx.err(format!("axis out of range for output rank {}", r + 1)));
    }
    let axis = axis as usize;
    // Indices as i64 (float indices are truncated), negative ones wrapped.
    let idx = if it.dtype == DType::I64 { indices } else { cx.add1(Op::Cast(DType::I64), vec![indices])? };
    let dep = konst_i(cx, "depth", vec![], &[depth])?;
    let idx = wrap_negative(cx, idx, dep)?;
    let mut ishape = it.shape.clone();
    ishape.insert(axis, 1);
    let idx = cx.add1(Op::Reshape { shape: ishape.clone() }, vec![idx])?;
    let mut iota_shape = vec![1; ishape.len()];
    iota_shape[axis] = depth as usize;
    let positions: Vec<i64> = (0..depth).collect();
    let iota = Tensor::from_i64_values(DType::I64, iota_shape, &positions).map_err(|e| tensor_err(cx, e))?;
    let iota = cx.derived("positions", iota);
    let hit = cx.add1(Op::Binary(BinaryOp::Equal), vec![idx, iota])?;
    let flat = cx.add1(Op::Reshape { shape: vec![2] }, vec![values])?;
    let off = cx.add1(Op::Slice { starts: vec![0], ends: vec![1], steps: vec![1] }, vec![flat])?;
    let on = cx.add1(Op::Slice { starts: vec![1], ends: vec![2], steps: vec![1] }, vec![flat])?;
    let off = cx.add1(Op::Reshape { shape: vec![] }, vec![off])?;
    let on = cx.add1(Op::Reshape { shape: vec![] }, vec![on])?;
    Ok(vec![cx.add1(Op::Where, vec![hit, on, off])?])
}
