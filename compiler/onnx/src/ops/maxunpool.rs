//! MaxUnpool as a one-hot composition.
//!
//! Output element `p` is the input element whose index equals `p`, or 0 when
//! none does: `Equal(I[j], p)` over all (j, p), the masked values reduced
//! with Max (indices from an overlapping MaxPool repeat an element with the
//! same value, which Max keeps once, as the reference's assignment does).
//! Indices address the shape MaxUnpool infers from kernel/strides/pads; a
//! larger `output_shape` holds that block at its origin, zeros elsewhere
//! (the ONNX reference and backend data; ONNX Runtime indexes the
//! output_shape tensor directly instead).
//! Cost and memory are `numel(X) * numel(Y)`, so this is for small maps; a
//! larger one is refused with an error rather than compiled into something
//! slow.

use kerf_ir::op::{BinaryOp, PadMode, ReduceKind};
use kerf_ir::{DType, Op, ValueId, F32};

use super::compose::{bin, cast, konst_f, konst_i, reshape, where_};
use super::Converter;
use crate::import::Cx;
use crate::ImportError;

/// Largest `numel(X) * numel(Y)` the one-hot form is built for.
const MAX_ONE_HOT: usize = 1 << 24;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("MaxUnpool", max_unpool));
}

fn max_unpool(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let i = cx.input(1)?;
    let (xs, is) = (cx.shape(x), cx.shape(i));
    let dt = cx.ty(x).dtype;
    if xs.len() < 3 || is != xs || !dt.is_float() || !cx.ty(i).dtype.is_int() {
        return Err(cx.err(format!(
            "expected float X and integer indices of one shape, got {} and {}",
            cx.ty(x),
            cx.ty(i)
        )));
    }
    let a = cx.attrs();
    let kernel = a.usizes_opt("kernel_shape")?.ok_or_else(|| cx.err("missing required attribute 'kernel_shape'"))?;
    let r = kernel.len();
    let strides = a.usizes_opt("strides")?.unwrap_or_else(|| vec![1; r]);
    let pads = a.usizes_opt("pads")?.unwrap_or_else(|| vec![0; 2 * r]);
    if r != xs.len() - 2 || strides.len() != r || pads.len() != 2 * r || kernel.contains(&0) || strides.contains(&0) {
        return Err(cx.err(format!("kernel {kernel:?}, strides {strides:?}, pads {pads:?} do not fit {}", cx.ty(x))));
    }
    // Indices address the inferred shape; a given output_shape places that
    // block at the origin of a larger zero tensor (as the reference).
    let mut inferred = xs[..2].to_vec();
    for d in 0..r {
        let full = (xs[2 + d].max(1) - 1) * strides[d] + kernel[d];
        let o_d = full
            .checked_sub(pads[d] + pads[r + d])
            .ok_or_else(|| cx.err(format!("pads {pads:?} exceed the unpooled size on axis {d}")))?;
        inferred.push(o_d);
    }
    let out: Vec<usize> = match cx.const_ints(2, "output_shape")? {
        Some(v) => super::non_neg(cx, "output_shape", &v)?,
        None => inferred.clone(),
    };
    if out.len() != xs.len() || out[..2] != xs[..2] || out.iter().zip(&inferred).any(|(o, i)| o < i) {
        return Err(cx.err(format!("output_shape {out:?} must keep N and C of {} and hold {inferred:?}", cx.ty(x))));
    }
    let j: usize = xs.iter().product();
    let p: usize = inferred.iter().product();
    if j.saturating_mul(p) > MAX_ONE_HOT {
        return Err(cx.err(format!(
            "MaxUnpool of {j} elements into {p} is beyond the one-hot composition's limit ({MAX_ONE_HOT} pairs)"
        )));
    }
    let xf = reshape(cx, x, vec![j, 1])?;
    let i64v = cast(cx, i, DType::I64)?;
    let idx = reshape(cx, i64v, vec![j, 1])?;
    let pos: Vec<i64> = (0..p as i64).collect();
    let pos = konst_i(cx, "positions", vec![1, p], &pos)?;
    let eq = bin(cx, BinaryOp::Equal, idx, pos)?;
    let neg = konst_f(cx, "lowest", dt, vec![], &[f64::NEG_INFINITY])?;
    let masked = where_(cx, eq, xf, neg)?;
    let m = cx.add1(Op::Reduce { kind: ReduceKind::Max, axes: vec![0], keepdims: false }, vec![masked])?;
    let hit = cast(cx, eq, DType::U8)?;
    let hit = cx.add1(Op::Reduce { kind: ReduceKind::Max, axes: vec![0], keepdims: false }, vec![hit])?;
    let hit = cast(cx, hit, DType::Bool)?;
    let zero = konst_f(cx, "zero", dt, vec![], &[0.0])?;
    let y = where_(cx, hit, m, zero)?;
    let y = reshape(cx, y, inferred.clone())?;
    if out == inferred {
        return Ok(vec![y]);
    }
    let mut pads = vec![0; out.len()];
    pads.extend(out.iter().zip(&inferred).map(|(o, i)| o - i));
    Ok(vec![cx.add1(Op::Pad { pads, mode: PadMode::Constant, value: F32::new(0.0) }, vec![y])?])
}
