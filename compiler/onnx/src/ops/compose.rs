//! Small helpers for converters that express an ONNX op as a composition of
//! IR ops (GridSample, AffineGrid, DFT, STFT, Col2Im, ...): constants and
//! one-line wrappers around [`Cx::add1`], so the compositions read like the
//! formulas they implement.

use kerf_ir::op::{BinaryOp, UnaryOp};
use kerf_ir::{DType, Op, Tensor, ValueId, F32};

use crate::import::Cx;
use crate::ImportError;

pub(crate) type R = Result<ValueId, ImportError>;

/// A constant of `dtype` (float) with the given shape and values.
pub(crate) fn konst_f(cx: &mut Cx, what: &str, dt: DType, shape: Vec<usize>, v: &[f64]) -> R {
    let t = Tensor::from_f64_values(dt, shape, v).map_err(|e| cx.err(e.to_string()))?;
    Ok(cx.derived(what, t))
}

/// An i64 constant with the given shape and values.
pub(crate) fn konst_i(cx: &mut Cx, what: &str, shape: Vec<usize>, v: &[i64]) -> R {
    konst_int(cx, what, DType::I64, shape, v)
}

/// A constant of integer (or bool) type `dt` with the given shape and values.
pub(crate) fn konst_int(cx: &mut Cx, what: &str, dt: DType, shape: Vec<usize>, v: &[i64]) -> R {
    let t = Tensor::from_i64_values(dt, shape, v).map_err(|e| cx.err(e.to_string()))?;
    Ok(cx.derived(what, t))
}

/// ONNX index semantics: negative indices count from the end, i.e.
/// `where(idx < 0, idx + size, idx)`; `size` has `idx`'s type and
/// broadcasts against it (a scalar, or one size per index component).
pub(crate) fn wrap_negative(cx: &mut Cx, idx: ValueId, size: ValueId) -> R {
    let zero = konst_int(cx, "zero_index", cx.ty(idx).dtype, vec![], &[0])?;
    let neg = bin(cx, BinaryOp::Less, idx, zero)?;
    let wrapped = bin(cx, BinaryOp::Add, idx, size)?;
    where_(cx, neg, wrapped, idx)
}

/// A scalar (rank 0) constant of float type `dt`.
pub(crate) fn scalar(cx: &mut Cx, dt: DType, v: f64) -> R {
    konst_f(cx, "c", dt, vec![], &[v])
}

pub(crate) fn bin(cx: &mut Cx, op: BinaryOp, a: ValueId, b: ValueId) -> R {
    cx.add1(Op::Binary(op), vec![a, b])
}

pub(crate) fn un(cx: &mut Cx, op: UnaryOp, a: ValueId) -> R {
    cx.add1(Op::Unary(op), vec![a])
}

/// `a * s + t` for scalars `s`, `t` (either skipped when neutral).
pub(crate) fn affine(cx: &mut Cx, a: ValueId, s: f64, t: f64) -> R {
    let dt = cx.ty(a).dtype;
    let mut v = a;
    if s != 1.0 {
        let c = scalar(cx, dt, s)?;
        v = bin(cx, BinaryOp::Mul, v, c)?;
    }
    if t != 0.0 {
        let c = scalar(cx, dt, t)?;
        v = bin(cx, BinaryOp::Add, v, c)?;
    }
    Ok(v)
}

/// `clamp(a, lo, hi)`.
pub(crate) fn clip(cx: &mut Cx, a: ValueId, lo: f64, hi: f64) -> R {
    un(cx, UnaryOp::Clip { min: F32::new(lo as f32), max: F32::new(hi as f32) }, a)
}

pub(crate) fn cast(cx: &mut Cx, a: ValueId, to: DType) -> R {
    cx.add1(Op::Cast(to), vec![a])
}

pub(crate) fn where_(cx: &mut Cx, c: ValueId, a: ValueId, b: ValueId) -> R {
    cx.add1(Op::Where, vec![c, a, b])
}

pub(crate) fn reshape(cx: &mut Cx, a: ValueId, shape: Vec<usize>) -> R {
    if cx.shape(a) == shape {
        return Ok(a);
    }
    cx.add1(Op::Reshape { shape }, vec![a])
}

pub(crate) fn transpose(cx: &mut Cx, a: ValueId, perm: Vec<usize>) -> R {
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(a);
    }
    cx.add1(Op::Transpose { perm }, vec![a])
}

pub(crate) fn matmul(cx: &mut Cx, a: ValueId, b: ValueId) -> R {
    let layer = cx.layer();
    cx.add1(Op::MatMul(layer), vec![a, b])
}

/// Sum of a non-empty list of values (broadcasting).
pub(crate) fn sum(cx: &mut Cx, vs: &[ValueId]) -> R {
    let (&first, rest) = vs.split_first().ok_or_else(|| cx.err("internal: empty sum"))?;
    let mut acc = first;
    for &v in rest {
        acc = bin(cx, BinaryOp::Add, acc, v)?;
    }
    Ok(acc)
}

/// The result for a run-time axis: `by_axis` holds `(a, result along a)`
/// for every axis the op may run along (all of one type), and the one whose
/// `a` equals the scalar `axis` (negative values count from the end) is
/// selected with `Where`. An axis naming none of them selects the last
/// entry's result, since a kernel cannot fail; callers document that.
pub(crate) fn pick_by_axis(cx: &mut Cx, axis: ValueId, rank: usize, by_axis: &[(usize, ValueId)]) -> R {
    let Some((&(_, last), rest)) = by_axis.split_last() else {
        return Err(cx.err("internal: no axis to select from"));
    };
    let dt = cx.ty(axis).dtype;
    let axis = reshape(cx, axis, vec![])?;
    let size = konst_int(cx, "rank", dt, vec![], &[rank as i64])?;
    let axis = wrap_negative(cx, axis, size)?;
    let mut y = last;
    for &(a, ya) in rest.iter().rev() {
        let c = konst_int(cx, "axis", dt, vec![], &[a as i64])?;
        let hit = bin(cx, BinaryOp::Equal, axis, c)?;
        y = where_(cx, hit, ya, y)?;
    }
    Ok(y)
}
