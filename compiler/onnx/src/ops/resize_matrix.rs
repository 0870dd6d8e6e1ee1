//! Resize forms the IR `Resize` op does not carry: antialiased linear/cubic
//! downsampling and `tf_crop_and_resize` (roi, extrapolation value).
//!
//! With static shapes every Resize is separable and linear per axis: the
//! output along one axis is a fixed `[in, out]` weight matrix applied to the
//! input along that axis (plus a constant for extrapolated positions). This
//! module builds those matrices with the ONNX reference's arithmetic (f64;
//! `_interpolate_1d_along_axis`: coordinate mapping, coefficient functions,
//! neighbour selection, exclude_outside, edge clamping, extrapolation) and
//! applies them axis by axis, in the reference's order, as MatMuls with a
//! constant. Cost per axis: `in * out` multiply-adds per line (dense; the
//! matrices are banded), fine for the image sizes these modes are used on.

use kerf_ir::op::{BinaryOp, CoordMode, NearestMode, ResizeMode, UnaryOp};
use kerf_ir::{DType, Op, ValueId};

use super::compose::{bin, cast, konst_f, konst_i, matmul, reshape, scalar, un, where_, R};
use crate::import::Cx;
use crate::ImportError;

/// The resolved attributes of a matrix resize.
pub(super) struct MatrixResize {
    pub mode: ResizeMode,
    pub coord: CoordMode,
    pub antialias: bool,
    pub cubic_coeff: f64,
    pub exclude_outside: bool,
    pub extrapolation: f64,
}

fn isclose(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Interpolation coefficients for fractional position `ratio`.
fn coeffs(m: &MatrixResize, ratio: f64, scale: f64) -> Vec<f64> {
    let a = m.cubic_coeff;
    match m.mode {
        ResizeMode::Nearest(nm) => {
            if ratio.fract() == 0.0 {
                return vec![0.0, 1.0];
            }
            let up = match nm {
                NearestMode::RoundPreferFloor => ratio > 0.5,
                NearestMode::RoundPreferCeil => ratio >= 0.5,
                NearestMode::Floor => false,
                NearestMode::Ceil => true,
            };
            if up {
                vec![0.0, 1.0]
            } else {
                vec![1.0, 0.0]
            }
        }
        ResizeMode::Linear if m.antialias => {
            let s = scale.min(1.0);
            let start = (-1.0 / s).floor() as i64 + 1;
            let footprint = 2 - 2 * start;
            let c: Vec<f64> =
                (start..start + footprint).map(|i| (1.0 - ((i as f64 - ratio) * s).abs()).clamp(0.0, 1.0)).collect();
            normalised(c)
        }
        ResizeMode::Linear => vec![1.0 - ratio, ratio],
        ResizeMode::Cubic if m.antialias => {
            let s = scale.min(1.0);
            let f = |x: f64| {
                let x = x.abs();
                let (x2, x3) = (x * x, x * x * x);
                if x <= 1.0 {
                    (a + 2.0) * x3 - (a + 3.0) * x2 + 1.0
                } else if x < 2.0 {
                    a * x3 - 5.0 * a * x2 + 8.0 * a * x - 4.0 * a
                } else {
                    0.0
                }
            };
            let i_start = (-2.0 / s).floor() as i64 + 1;
            let i_end = 2 - i_start;
            normalised((i_start..i_end).map(|i| f(s * (i as f64 - ratio))).collect())
        }
        ResizeMode::Cubic => {
            let r = ratio;
            let q = 1.0 - r;
            vec![
                ((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a,
                ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
                ((a + 2.0) * q - (a + 3.0)) * q * q + 1.0,
                ((a * (q + 1.0) - 5.0 * a) * (q + 1.0) + 8.0 * a) * (q + 1.0) - 4.0 * a,
            ]
        }
    }
}

fn normalised(c: Vec<f64>) -> Vec<f64> {
    let s: f64 = c.iter().sum();
    c.into_iter().map(|v| v / s).collect()
}

/// The `[in_w, out_w]` weight matrix (row-major) of one axis and, per output
/// position, whether it is extrapolated.
fn axis_matrix(
    m: &MatrixResize,
    in_w: usize,
    out_w: usize,
    scale: f64,
    roi: Option<(f64, f64)>,
) -> Result<(Vec<f64>, Vec<bool>), String> {
    let mut w = vec![0.0; in_w * out_w];
    let mut extra = vec![false; out_w];
    let fin = in_w as f64;
    let fout = scale * fin;
    for y in 0..out_w {
        let yf = y as f64;
        let x = match m.coord {
            CoordMode::AlignCorners => {
                if fout == 1.0 {
                    0.0
                } else {
                    yf * (fin - 1.0) / (fout - 1.0)
                }
            }
            CoordMode::Asymmetric => yf / scale,
            CoordMode::TfCropAndResize => {
                let (r0, r1) = roi.ok_or("tf_crop_and_resize needs a roi")?;
                let x = if fout == 1.0 {
                    (r1 - r0) * (fin - 1.0) / 2.0
                } else {
                    yf * (r1 - r0) * (fin - 1.0) / (fout - 1.0)
                };
                let x = x + r0 * (fin - 1.0);
                extra[y] = x < 0.0 || x > fin - 1.0;
                x
            }
            CoordMode::PytorchHalfPixel => {
                if fout == 1.0 {
                    -0.5
                } else {
                    (yf + 0.5) / scale - 0.5
                }
            }
            CoordMode::HalfPixel => (yf + 0.5) / scale - 0.5,
            CoordMode::HalfPixelSymmetric => {
                let adjustment = out_w as f64 / fout;
                let offset = fin / 2.0 * (1.0 - adjustment);
                offset + (yf + 0.5) / scale - 0.5
            }
        };
        if extra[y] {
            continue;
        }
        let xi = x.floor();
        let ratio = if x == xi { 1.0 } else { x - xi };
        let mut c = coeffs(m, ratio, scale);
        let n = c.len() as i64;
        let pad = (n + 1) / 2;
        let xp = x + pad as f64;
        let p = xp.floor();
        let frac = xp - p;
        let off = if n % 2 == 0 {
            if frac == 0.0 {
                -(n / 2)
            } else {
                -(n / 2) + 1
            }
        } else if frac <= 0.5 {
            -((n - 1) / 2)
        } else {
            -((n - 1) / 2) + 1
        };
        let start = p as i64 + off - pad;
        let idx: Vec<i64> = (0..n).map(|k| start + k).collect();
        if m.exclude_outside {
            for (ci, &i) in c.iter_mut().zip(&idx) {
                if i < 0 || i >= in_w as i64 {
                    *ci = 0.0;
                }
            }
            let s: f64 = c.iter().sum();
            let s = if s == 0.0 { 1.0 } else { s };
            c.iter_mut().for_each(|v| *v /= s);
        }
        for (&ci, &i) in c.iter().zip(&idx) {
            let i = i.clamp(0, in_w as i64 - 1) as usize;
            w[i * out_w + y] += ci;
        }
    }
    Ok((w, extra))
}

/// Resizes `x` along `axes` (in order) to `sizes` with per-axis `scales`
/// (f64) and an optional full-rank roi (starts then ends).
pub(super) fn resize(
    cx: &mut Cx,
    x: ValueId,
    m: &MatrixResize,
    axes: &[usize],
    scales: &[f64],
    sizes: &[usize],
    roi: Option<&[f64]>,
) -> Result<ValueId, ImportError> {
    let dt = cx.ty(x).dtype;
    if !dt.is_float() {
        return Err(cx.err(format!("antialias / tf_crop_and_resize need a float input, got {}", cx.ty(x))));
    }
    if m.antialias && matches!(m.mode, ResizeMode::Nearest(_)) {
        return Err(cx.err("antialias=1 is not defined for mode nearest"));
    }
    let rank = cx.shape(x).len();
    super::fits(cx, sizes)?;
    let mut y = x;
    for &axis in axes {
        let shape = cx.shape(y);
        let (in_w, out_w, scale) = (shape[axis], sizes[axis], scales[axis]);
        let r = roi.map(|r| (r[axis], r[axis + rank]));
        let trivial_roi = r.is_none_or(|(a, b)| isclose(a, 0.0) && isclose(b, 1.0));
        if isclose(scale, 1.0) && out_w == in_w && trivial_roi {
            continue;
        }
        if in_w == 0 || out_w == 0 {
            return Err(cx.err(format!("cannot resize axis {axis} from {in_w} to {out_w}")));
        }
        if !(scale.is_finite() && scale > 0.0) {
            return Err(cx.err(format!("scale {scale} on axis {axis} must be positive")));
        }
        let (w, extra) = axis_matrix(m, in_w, out_w, scale, r).map_err(|e| cx.err(e))?;
        let (wv, bias) = oriented_const(cx, m, dt, axis + 1 == rank, &w, &extra)?;
        y = apply_axis(cx, y, axis, out_w, wv, bias)?;
    }
    identity_if_unchanged(cx, x, y)
}

/// `y`, or an `Identity` of `x` when no axis changed it (the node needs an
/// output of its own).
fn identity_if_unchanged(cx: &mut Cx, x: ValueId, y: ValueId) -> R {
    if y == x {
        return cx.add1(kerf_ir::Op::Identity, vec![x]);
    }
    Ok(y)
}

/// The constant added to extrapolated output positions (`None` when there
/// are none or the value is 0), shaped to broadcast over the product.
fn extrapolation_bias(
    cx: &mut Cx,
    m: &MatrixResize,
    dt: DType,
    extra: &[bool],
    shape: Vec<usize>,
) -> Result<Option<ValueId>, ImportError> {
    if !extra.contains(&true) || m.extrapolation == 0.0 {
        return Ok(None);
    }
    let b: Vec<f64> = extra.iter().map(|&e| if e { m.extrapolation } else { 0.0 }).collect();
    Ok(Some(konst_f(cx, "extrapolation", dt, shape, &b)?))
}

/// Resizes `y` along `axis` to `out_w` with the axis' weights `wv`: `[in,
/// out]` when the axis is the last one (`y · W`), else `[out, in]` (`Wᵀ ·
/// y` over `[pre, in, post]`), plus `bias` where given.
fn apply_axis(cx: &mut Cx, y: ValueId, axis: usize, out_w: usize, wv: ValueId, bias: Option<ValueId>) -> R {
    let shape = cx.shape(y);
    let in_w = shape[axis];
    let pre: usize = shape[..axis].iter().product();
    let post: usize = shape[axis + 1..].iter().product();
    let z = if axis + 1 == shape.len() {
        let y2 = reshape(cx, y, vec![pre, in_w])?;
        matmul(cx, y2, wv)?
    } else {
        let y3 = reshape(cx, y, vec![pre, in_w, post])?;
        matmul(cx, wv, y3)?
    };
    let z = match bias {
        Some(b) => bin(cx, BinaryOp::Add, z, b)?,
        None => z,
    };
    let mut out_shape = shape;
    out_shape[axis] = out_w;
    reshape(cx, z, out_shape)
}

/// `tf_crop_and_resize` with a roi computed at run time (linear or nearest
/// mode, no antialias): each axis' weights are built at run time from the
/// roi — the sampling positions with the constant path's f64 arithmetic
/// (same operations, same order, so the same positions), then the tent
/// (linear) or the selected neighbour (nearest, by `nearest_mode`) on the
/// clamped position, zero for extrapolated positions, which get
/// `extrapolation_value` instead. The roi holds `2 * axes.len()` values:
/// the starts, then the ends, of `axes` in order.
pub(super) fn resize_runtime_roi(
    cx: &mut Cx,
    x: ValueId,
    m: &MatrixResize,
    axes: &[usize],
    scales: &[f64],
    sizes: &[usize],
    roi: ValueId,
) -> R {
    let dt = cx.ty(x).dtype;
    let n = axes.len();
    if !dt.is_float() || m.antialias || !matches!(m.mode, ResizeMode::Linear | ResizeMode::Nearest(_)) {
        return Err(cx.non_constant(1, roi, "roi"));
    }
    let rt = cx.ty(roi).clone();
    if !rt.dtype.is_float() || rt.numel() != 2 * n {
        return Err(cx.err(format!("roi must hold {} float values (starts, then ends), got {rt}", 2 * n)));
    }
    super::fits(cx, sizes)?;
    let roi = reshape(cx, roi, vec![2 * n])?;
    let roi = if rt.dtype == DType::F64 { roi } else { cast(cx, roi, DType::F64)? };
    let mut y = x;
    // the roi holds its starts and ends for `axes` in order
    for (k, &axis) in axes.iter().enumerate() {
        let (in_w, out_w, scale) = (cx.shape(y)[axis], sizes[axis], scales[axis]);
        if in_w == 0 || out_w == 0 || !(scale.is_finite() && scale > 0.0) {
            return Err(cx.err(format!("cannot resize axis {axis} from {in_w} to {out_w} (scale {scale})")));
        }
        let last = axis + 1 == cx.shape(y).len();
        let pos = sample_positions(cx, roi, k, n, in_w, out_w, scale)?;
        // Positions along the output dimension of the weight matrix.
        let pos = reshape(cx, pos, if last { vec![1, out_w] } else { vec![out_w, 1] })?;
        let iota: Vec<f64> = (0..in_w).map(|i| i as f64).collect();
        let iota = konst_f(cx, "input_positions", DType::F64, if last { vec![in_w, 1] } else { vec![1, in_w] }, &iota)?;
        let w = match m.mode {
            ResizeMode::Nearest(nm) => {
                let idx = nearest_index(cx, pos, nm, in_w)?;
                let hit = bin(cx, BinaryOp::Equal, iota, idx)?;
                cast(cx, hit, DType::F64)?
            }
            _ => {
                let clamped = clamp64(cx, pos, in_w)?;
                let d = bin(cx, BinaryOp::Sub, iota, clamped)?;
                let d = un(cx, UnaryOp::Abs, d)?;
                let one = scalar(cx, DType::F64, 1.0)?;
                let t = bin(cx, BinaryOp::Sub, one, d)?;
                un(cx, UnaryOp::Relu, t)?
            }
        };
        let zero = scalar(cx, DType::F64, 0.0)?;
        let lo = bin(cx, BinaryOp::Less, pos, zero)?;
        let top = scalar(cx, DType::F64, (in_w - 1) as f64)?;
        let hi = bin(cx, BinaryOp::Greater, pos, top)?;
        let outside = bin(cx, BinaryOp::Or, lo, hi)?;
        let w = where_(cx, outside, zero, w)?;
        let wv = cast(cx, w, dt)?;
        let bias = if m.extrapolation != 0.0 {
            let e = scalar(cx, dt, m.extrapolation)?;
            let z = scalar(cx, dt, 0.0)?;
            let b = where_(cx, outside, e, z)?;
            Some(reshape(cx, b, if last { vec![out_w] } else { vec![out_w, 1] })?)
        } else {
            None
        };
        y = apply_axis(cx, y, axis, out_w, wv, bias)?;
    }
    identity_if_unchanged(cx, x, y)
}

/// The constant weights `w` (`[in_w, out_w]`, row-major) and extrapolation
/// bias of one axis, in the orientation [`apply_axis`] takes.
fn oriented_const(
    cx: &mut Cx,
    m: &MatrixResize,
    dt: DType,
    last: bool,
    w: &[f64],
    extra: &[bool],
) -> Result<(ValueId, Option<ValueId>), ImportError> {
    let out_w = extra.len();
    let in_w = w.len() / out_w.max(1);
    if last {
        let wv = konst_f(cx, "resize_weights", dt, vec![in_w, out_w], w)?;
        return Ok((wv, extrapolation_bias(cx, m, dt, extra, vec![out_w])?));
    }
    let wt: Vec<f64> = (0..out_w).flat_map(|o| (0..in_w).map(move |i| (i, o))).map(|(i, o)| w[i * out_w + o]).collect();
    let wv = konst_f(cx, "resize_weights", dt, vec![out_w, in_w], &wt)?;
    Ok((wv, extrapolation_bias(cx, m, dt, extra, vec![out_w, 1])?))
}

/// The f64 input positions `[out_w]` the output samples of one axis map to
/// under `tf_crop_and_resize`, from roi values `k` (start) and `n + k` (end):
/// `start·(in−1) + y·(end−start)·(in−1)/(out−1)`, or the roi's centre for a
/// single output, in the constant path's order of operations.
fn sample_positions(cx: &mut Cx, roi: ValueId, k: usize, n: usize, in_w: usize, out_w: usize, scale: f64) -> R {
    let fin = in_w as f64;
    let fout = scale * fin;
    let i0 = konst_i(cx, "roi_start", vec![], &[k as i64])?;
    let i1 = konst_i(cx, "roi_end", vec![], &[(n + k) as i64])?;
    let r0 = cx.add1(Op::Gather { axis: 0 }, vec![roi, i0])?;
    let r1 = cx.add1(Op::Gather { axis: 0 }, vec![roi, i1])?;
    let d = bin(cx, BinaryOp::Sub, r1, r0)?;
    let span = scalar(cx, DType::F64, fin - 1.0)?;
    let x = if fout == 1.0 {
        let t = bin(cx, BinaryOp::Mul, d, span)?;
        let two = scalar(cx, DType::F64, 2.0)?;
        let t = bin(cx, BinaryOp::Div, t, two)?;
        // The one position, for each of the `out_w` (= 1) samples.
        let zeros = konst_f(cx, "zeros", DType::F64, vec![out_w], &vec![0.0; out_w])?;
        bin(cx, BinaryOp::Add, t, zeros)?
    } else {
        let ys: Vec<f64> = (0..out_w).map(|y| y as f64).collect();
        let ys = konst_f(cx, "output_positions", DType::F64, vec![out_w], &ys)?;
        let t = bin(cx, BinaryOp::Mul, ys, d)?;
        let t = bin(cx, BinaryOp::Mul, t, span)?;
        let den = scalar(cx, DType::F64, fout - 1.0)?;
        bin(cx, BinaryOp::Div, t, den)?
    };
    let off = bin(cx, BinaryOp::Mul, r0, span)?;
    bin(cx, BinaryOp::Add, x, off)
}

/// The input index nearest mode `nm` picks for each position, clamped to
/// the axis (as f64): the reference's rounding of the fractional part.
fn nearest_index(cx: &mut Cx, pos: ValueId, nm: NearestMode, in_w: usize) -> R {
    let r = match nm {
        NearestMode::Floor => un(cx, UnaryOp::Floor, pos)?,
        NearestMode::Ceil => un(cx, UnaryOp::Ceil, pos)?,
        // frac > 0.5 rounds up: ceil(x - 0.5).
        NearestMode::RoundPreferFloor => {
            let h = scalar(cx, DType::F64, 0.5)?;
            let t = bin(cx, BinaryOp::Sub, pos, h)?;
            un(cx, UnaryOp::Ceil, t)?
        }
        // frac >= 0.5 rounds up: floor(x + 0.5).
        NearestMode::RoundPreferCeil => {
            let h = scalar(cx, DType::F64, 0.5)?;
            let t = bin(cx, BinaryOp::Add, pos, h)?;
            un(cx, UnaryOp::Floor, t)?
        }
    };
    clamp64(cx, r, in_w)
}

/// `x` (f64) clamped to `[0, in_w - 1]` (Max/Min: Clip has no f64 kernel).
fn clamp64(cx: &mut Cx, x: ValueId, in_w: usize) -> R {
    let lo = scalar(cx, DType::F64, 0.0)?;
    let hi = scalar(cx, DType::F64, (in_w - 1) as f64)?;
    let t = bin(cx, BinaryOp::Max, x, lo)?;
    bin(cx, BinaryOp::Min, t, hi)
}
