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

use kerf_ir::op::{BinaryOp, CoordMode, NearestMode, ResizeMode};
use kerf_ir::ValueId;

use super::compose::{bin, konst_f, matmul, reshape};
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
        let pre: usize = shape[..axis].iter().product();
        let post: usize = shape[axis + 1..].iter().product();
        let last = axis + 1 == rank;
        let mut out_shape = shape.clone();
        out_shape[axis] = out_w;
        let z = if last {
            let wv = konst_f(cx, "resize_weights", dt, vec![in_w, out_w], &w)?;
            let y2 = reshape(cx, y, vec![pre, in_w])?;
            matmul(cx, y2, wv)?
        } else {
            // W^T [out, in] times [pre, in, post].
            let wt: Vec<f64> =
                (0..out_w).flat_map(|o| (0..in_w).map(move |i| (i, o))).map(|(i, o)| w[i * out_w + o]).collect();
            let wv = konst_f(cx, "resize_weights", dt, vec![out_w, in_w], &wt)?;
            let y3 = reshape(cx, y, vec![pre, in_w, post])?;
            matmul(cx, wv, y3)?
        };
        let z = if extra.contains(&true) && m.extrapolation != 0.0 {
            let b: Vec<f64> = extra.iter().map(|&e| if e { m.extrapolation } else { 0.0 }).collect();
            let bshape = if last { vec![out_w] } else { vec![out_w, 1] };
            let bv = konst_f(cx, "extrapolation", dt, bshape, &b)?;
            bin(cx, BinaryOp::Add, z, bv)?
        } else {
            z
        };
        y = reshape(cx, z, out_shape)?;
    }
    if y == x {
        return cx.add1(kerf_ir::Op::Identity, vec![x]);
    }
    Ok(y)
}
