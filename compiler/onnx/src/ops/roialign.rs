//! RoiAlign (avg and max modes, half_pixel and output_half_pixel) as a
//! composition, following the ONNX reference's `pre_calc` arithmetic.
//!
//! For every roi, output bin and sampling point (`sampling_ratio` per bin and
//! axis; it must be positive, since the adaptive count depends on the roi
//! values) the bilinear corner indices and weights are computed elementwise
//! from the rois, per axis; samples outside `[-1, size]` get weight 0. The
//! four corners are gathered from a channels-last copy of X at the roi's
//! batch index, weighted, combined (sum for avg, max for max mode) and
//! reduced over the sampling points. Cost: `4 * R * C * PH * PW * S^2`
//! gathered elements.

use kerf_ir::op::{BinaryOp, ReduceKind, UnaryOp};
use kerf_ir::{DType, Op, ValueId};

use super::compose::{affine, bin, cast, konst_f, konst_i, reshape, scalar, transpose, un};
use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("RoiAlign", roi_align));
}

/// One axis' sampling geometry: low/high corner element offsets (i64, times
/// the axis stride), their weights, and the validity (0/1 float).
struct Axis {
    lo: ValueId,
    hi: ValueId,
    w_lo: ValueId,
    w_hi: ValueId,
    valid: ValueId,
}

#[allow(clippy::too_many_arguments)]
fn axis(
    cx: &mut Cx,
    start: ValueId,
    end: ValueId,
    pooled: usize,
    s: usize,
    size: usize,
    stride: usize,
    half_pixel: bool,
    shape: Vec<usize>,
) -> Result<Axis, ImportError> {
    let dt = cx.ty(start).dtype;
    let mut len = bin(cx, BinaryOp::Sub, end, start)?;
    if !half_pixel {
        let one = scalar(cx, dt, 1.0)?;
        len = bin(cx, BinaryOp::Max, len, one)?;
    }
    let binsz = affine(cx, len, 1.0 / pooled as f64, 0.0)?;
    // position = start + bin * (p + (i + 0.5) / s) over (p, i)
    let c: Vec<f64> = (0..pooled).flat_map(|p| (0..s).map(move |i| p as f64 + (i as f64 + 0.5) / s as f64)).collect();
    let cv = konst_f(cx, "sample_offsets", dt, shape, &c)?;
    let pos = bin(cx, BinaryOp::Mul, binsz, cv)?;
    let pos = bin(cx, BinaryOp::Add, pos, start)?;
    let lo_c = scalar(cx, dt, -1.0)?;
    let hi_c = scalar(cx, dt, size as f64)?;
    let ge = bin(cx, BinaryOp::GreaterOrEqual, pos, lo_c)?;
    let le = bin(cx, BinaryOp::LessOrEqual, pos, hi_c)?;
    let ok = bin(cx, BinaryOp::And, ge, le)?;
    let valid = cast(cx, ok, dt)?;
    // y = clamp(max(y, 0), .., size - 1); low = floor(y); high = min(low + 1, size - 1)
    let last = (size - 1) as f64;
    let y = super::compose::clip(cx, pos, 0.0, last)?;
    let low = un(cx, UnaryOp::Floor, y)?;
    let w_hi = bin(cx, BinaryOp::Sub, y, low)?;
    let w_lo = affine(cx, w_hi, -1.0, 1.0)?;
    let high = affine(cx, low, 1.0, 1.0)?;
    let high = super::compose::clip(cx, high, 0.0, last)?;
    let st = konst_i(cx, "stride", vec![], &[stride as i64])?;
    let li = cast(cx, low, DType::I64)?;
    let lo = bin(cx, BinaryOp::Mul, li, st)?;
    let hi_i = cast(cx, high, DType::I64)?;
    let hi = bin(cx, BinaryOp::Mul, hi_i, st)?;
    Ok(Axis { lo, hi, w_lo, w_hi, valid })
}

fn roi_align(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let rois = cx.input(1)?;
    let bidx = cx.input(2)?;
    let (xs, rs, bs) = (cx.shape(x), cx.shape(rois), cx.shape(bidx));
    let dt = cx.ty(x).dtype;
    if xs.len() != 4 || !dt.is_float() || cx.ty(rois).dtype != dt || rs.len() != 2 || rs[1] != 4 || bs != [rs[0]] {
        return Err(cx.err(format!(
            "expected float X [N,C,H,W], rois [R,4] of its type and batch_indices [R], got {}, {}, {}",
            cx.ty(x),
            cx.ty(rois),
            cx.ty(bidx)
        )));
    }
    if !cx.ty(bidx).dtype.is_int() {
        return Err(cx.err(format!("batch_indices must be integers, got {}", cx.ty(bidx))));
    }
    let a = cx.attrs();
    let ph = usize::try_from(a.int("output_height", 1)?).ok().filter(|&v| v > 0);
    let pw = usize::try_from(a.int("output_width", 1)?).ok().filter(|&v| v > 0);
    let (Some(ph), Some(pw)) = (ph, pw) else { return Err(cx.err("output_height/output_width must be positive")) };
    let s = a.int("sampling_ratio", 0)?;
    let s = usize::try_from(s).ok().filter(|&v| v > 0).ok_or_else(|| {
        cx.err(format!("sampling_ratio {s}: only a positive sampling ratio is supported (0 adapts to the roi values)"))
    })?;
    let scale = a.float("spatial_scale", 1.0)? as f64;
    let half_pixel = match a.string("coordinate_transformation_mode", "half_pixel")?.as_str() {
        "half_pixel" => true,
        "output_half_pixel" => false,
        m => return Err(cx.err(format!("unknown coordinate_transformation_mode '{m}'"))),
    };
    let is_max = match a.string("mode", "avg")?.as_str() {
        "avg" => false,
        "max" => true,
        m => return Err(cx.err(format!("unknown mode '{m}'"))),
    };
    let (n, c, h, w) = (xs[0], xs[1], xs[2], xs[3]);
    let r = rs[0];
    if h == 0 || w == 0 || n == 0 {
        return Err(cx.err(format!("empty input {}", cx.ty(x))));
    }
    super::fits(cx, &[r, c, ph * pw, s * s])?;
    // Roi coordinates, each [R, 1], scaled and shifted.
    let off = if half_pixel { -0.5 } else { 0.0 };
    let mut col = Vec::with_capacity(4);
    for k in 0..4i64 {
        let op = Op::Slice { starts: vec![0, k], ends: vec![r as i64, k + 1], steps: vec![1, 1] };
        let v = cx.add1(op, vec![rois])?;
        col.push(affine(cx, v, scale, off)?);
    }
    // y geometry over [R, PH, 1, S, 1, 1]; x over [R, 1, PW, 1, S, 1].
    let yshape = vec![r, ph, 1, s, 1, 1];
    let xshape = vec![r, 1, pw, 1, s, 1];
    let ry = |cx: &mut Cx, v: ValueId| reshape(cx, v, vec![r, 1, 1, 1, 1, 1]);
    let (y0, y1) = (ry(cx, col[1])?, ry(cx, col[3])?);
    let (x0, x1) = (ry(cx, col[0])?, ry(cx, col[2])?);
    let mut ys = yshape.clone();
    ys[0] = 1;
    let mut xsh = xshape.clone();
    xsh[0] = 1;
    let ay = axis(cx, y0, y1, ph, s, h, w, half_pixel, ys)?;
    let ax = axis(cx, x0, x1, pw, s, w, 1, half_pixel, xsh)?;
    let valid = bin(cx, BinaryOp::Mul, ay.valid, ax.valid)?;
    // Batch row base b * H * W, [R, 1, 1, 1, 1, 1].
    let b = cast(cx, bidx, DType::I64)?;
    let hw = konst_i(cx, "plane", vec![], &[(h * w) as i64])?;
    let b = bin(cx, BinaryOp::Mul, b, hw)?;
    let b = reshape(cx, b, vec![r, 1, 1, 1, 1, 1])?;
    let xt = transpose(cx, x, vec![0, 2, 3, 1])?;
    let xt = reshape(cx, xt, vec![n * h * w, c])?;
    let idx_shape = vec![r, ph, pw, s, s];
    let mut terms = Vec::with_capacity(4);
    for (yo, yw) in [(ay.lo, ay.w_lo), (ay.hi, ay.w_hi)] {
        for (xo, xw) in [(ax.lo, ax.w_lo), (ax.hi, ax.w_hi)] {
            let e = bin(cx, BinaryOp::Add, b, yo)?;
            let e = bin(cx, BinaryOp::Add, e, xo)?;
            let e = reshape(cx, e, idx_shape.clone())?;
            let g = cx.add1(Op::Gather { axis: 0 }, vec![xt, e])?;
            let wt = bin(cx, BinaryOp::Mul, yw, xw)?;
            let wt = bin(cx, BinaryOp::Mul, wt, valid)?;
            terms.push(bin(cx, BinaryOp::Mul, g, wt)?);
        }
    }
    let comb = if is_max { BinaryOp::Max } else { BinaryOp::Add };
    let mut v = terms[0];
    for &t in &terms[1..] {
        v = bin(cx, comb, v, t)?;
    }
    // [R, PH, PW, S, S, C] -> [R, PH, PW, C]
    let kind = if is_max { ReduceKind::Max } else { ReduceKind::Mean };
    let v = cx.add1(Op::Reduce { kind, axes: vec![3, 4], keepdims: false }, vec![v])?;
    Ok(vec![transpose(cx, v, vec![0, 3, 1, 2])?])
}
