//! GridSample and AffineGrid as compositions of IR ops.
//!
//! GridSample (any number of spatial axes; nearest / linear / cubic;
//! zeros / border / reflection padding; align_corners) follows the ONNX
//! reference implementation axis by axis: the sampling position along each
//! spatial axis depends only on that axis' grid component, so for every axis
//! we compute, elementwise over the grid, a few taps `(index, weight)`
//! (1 for nearest, 2 for linear, 4 for cubic), with padding folded in
//! (zeros: out-of-range taps get weight 0 and a clamped index; border:
//! clamped index; reflection: reflected index). The result is the sum over
//! all tap combinations of `Π weights * X[n, idx...]`, each a Gather of a
//! channels-last copy of X (one gather moves `C` contiguous elements).
//! Cost: `taps^rank` gathers of `N * out_positions * C` elements plus
//! `O(taps * rank)` elementwise ops on `N * out_positions` values.
//!
//! Where ONNX Runtime (like PyTorch) differs from the ONNX reference, the
//! reference wins: with cubic mode and border/reflection padding, a grid
//! location outside the image is clamped/reflected first and the taps are
//! then taken around it (ORT fixes up each tap instead).
//!
//! AffineGrid is a MatMul of a constant base grid (`[x, y, (z,) 1]` per
//! output position) with the transposed `theta`.

use kerf_ir::op::{BinaryOp, UnaryOp};
use kerf_ir::{DType, Op, ValueId};

use super::compose::{affine, bin, cast, clip, konst_f, konst_i, matmul, reshape, scalar, sum, transpose, un, where_};
use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("GridSample", grid_sample));
    r.push(("AffineGrid", affine_grid));
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Padding {
    Zeros,
    Border,
    Reflection,
}

/// `reflect(v)` into `[lo, hi]` as the ONNX reference's `_gs_reflect`,
/// written without branches: with `t = v - lo` and period `2 (hi - lo)`,
/// `y = t mod period` and the result is `lo + min(y, period - y)`.
fn reflect(cx: &mut Cx, v: ValueId, lo: f64, hi: f64) -> Result<ValueId, ImportError> {
    let dt = cx.ty(v).dtype;
    let rng = hi - lo;
    if rng <= 0.0 {
        // A single position: everything reflects onto it.
        let zero = scalar(cx, dt, 0.0)?;
        let z = bin(cx, BinaryOp::Mul, v, zero)?;
        return affine(cx, z, 1.0, lo);
    }
    let period = 2.0 * rng;
    let t = affine(cx, v, 1.0, -lo)?;
    let p = scalar(cx, dt, period)?;
    let q = bin(cx, BinaryOp::Div, t, p)?;
    let q = un(cx, UnaryOp::Floor, q)?;
    let qp = bin(cx, BinaryOp::Mul, q, p)?;
    let y = bin(cx, BinaryOp::Sub, t, qp)?;
    let back = affine(cx, y, -1.0, period)?;
    let m = bin(cx, BinaryOp::Min, y, back)?;
    affine(cx, m, 1.0, lo)
}

/// Keys cubic convolution coefficients (A = -0.75) for fraction `t`.
fn cubic_coeffs(cx: &mut Cx, t: ValueId) -> Result<[ValueId; 4], ImportError> {
    const A: f64 = -0.75;
    // outer taps: ((A*s - 5A)*s + 8A)*s - 4A for s = t + 1 and s = 2 - t
    let outer = |cx: &mut Cx, s: ValueId| -> Result<ValueId, ImportError> {
        let a = affine(cx, s, A, -5.0 * A)?;
        let a = bin(cx, BinaryOp::Mul, a, s)?;
        let a = affine(cx, a, 1.0, 8.0 * A)?;
        let a = bin(cx, BinaryOp::Mul, a, s)?;
        affine(cx, a, 1.0, -4.0 * A)
    };
    // inner taps: ((A+2)*s - (A+3))*s*s + 1 for s = t and s = 1 - t
    let inner = |cx: &mut Cx, s: ValueId| -> Result<ValueId, ImportError> {
        let a = affine(cx, s, A + 2.0, -(A + 3.0))?;
        let a = bin(cx, BinaryOp::Mul, a, s)?;
        let a = bin(cx, BinaryOp::Mul, a, s)?;
        affine(cx, a, 1.0, 1.0)
    };
    let s0 = affine(cx, t, 1.0, 1.0)?;
    let s2 = affine(cx, t, -1.0, 1.0)?;
    let s3 = affine(cx, t, -1.0, 2.0)?;
    Ok([outer(cx, s0)?, inner(cx, t)?, inner(cx, s2)?, outer(cx, s3)?])
}

/// One tap along one axis: element offset (i64, already times the axis
/// stride) and weight (`None` = 1).
struct Tap {
    offset: ValueId,
    weight: Option<ValueId>,
}

/// Turns a (float, integral-valued) tap position into a [`Tap`], applying
/// the padding mode as the reference's `_pixel_at_array`.
fn tap(
    cx: &mut Cx,
    pos: ValueId,
    weight: Option<ValueId>,
    d: usize,
    stride: usize,
    pad: Padding,
    border: (f64, f64),
) -> Result<Tap, ImportError> {
    let dt = cx.ty(pos).dtype;
    let hi = (d - 1) as f64;
    let (idx, weight) = match pad {
        Padding::Zeros => {
            let lo_c = scalar(cx, dt, 0.0)?;
            let hi_c = scalar(cx, dt, hi)?;
            let ge = bin(cx, BinaryOp::GreaterOrEqual, pos, lo_c)?;
            let le = bin(cx, BinaryOp::LessOrEqual, pos, hi_c)?;
            let ok = bin(cx, BinaryOp::And, ge, le)?;
            let okf = cast(cx, ok, dt)?;
            let w = match weight {
                Some(w) => bin(cx, BinaryOp::Mul, w, okf)?,
                None => okf,
            };
            (clip(cx, pos, 0.0, hi)?, Some(w))
        }
        Padding::Border => (clip(cx, pos, 0.0, hi)?, weight),
        Padding::Reflection => {
            // int(reflect(i)): the reflection lies in [-0.5, d - 0.5], so
            // truncation is floor after clamping at 0.
            let r = reflect(cx, pos, border.0, border.1)?;
            let r = clip(cx, r, 0.0, hi)?;
            (un(cx, UnaryOp::Floor, r)?, weight)
        }
    };
    let i = cast(cx, idx, DType::I64)?;
    let offset = if stride == 1 {
        i
    } else {
        let s = konst_i(cx, "stride", vec![], &[stride as i64])?;
        bin(cx, BinaryOp::Mul, i, s)?
    };
    Ok(Tap { offset, weight })
}

fn grid_sample(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let grid = cx.input(1)?;
    let (xs, gs) = (cx.shape(x), cx.shape(grid));
    let dt = cx.ty(x).dtype;
    if !dt.is_float() || cx.ty(grid).dtype != dt {
        return Err(cx.err(format!("X and grid must share one float type, got {} and {}", cx.ty(x), cx.ty(grid))));
    }
    if xs.len() < 3 || gs.len() != xs.len() || gs[0] != xs[0] || gs[gs.len() - 1] != xs.len() - 2 {
        return Err(cx.err(format!(
            "grid {} does not fit X {} (expected [N, out..., {}])",
            cx.ty(grid),
            cx.ty(x),
            xs.len().saturating_sub(2)
        )));
    }
    let a = cx.attrs();
    let mode = match a.string("mode", if cx.opset >= 20 { "linear" } else { "bilinear" })?.as_str() {
        "nearest" => Mode::Nearest,
        "linear" | "bilinear" => Mode::Linear,
        "cubic" | "bicubic" => Mode::Cubic,
        m => return Err(cx.err(format!("unknown mode '{m}'"))),
    };
    let pad = match a.string("padding_mode", "zeros")?.as_str() {
        "zeros" => Padding::Zeros,
        "border" => Padding::Border,
        "reflection" => Padding::Reflection,
        m => return Err(cx.err(format!("unknown padding_mode '{m}'"))),
    };
    let align = a.bool("align_corners", false)?;
    let r = xs.len() - 2;
    let (n, c) = (xs[0], xs[1]);
    let dims = xs[2..].to_vec();
    if dims.contains(&0) || n == 0 || c == 0 {
        return Err(cx.err(format!("empty input {}", cx.ty(x))));
    }
    let outsp = gs[1..=r].to_vec();
    let plane: usize = dims.iter().product();
    super::fits(cx, &[n, c, outsp.iter().product()])?;

    // X channels-last, rows = (n, spatial position): [N * P, C].
    let mut perm = vec![0];
    perm.extend(2..r + 2);
    perm.push(1);
    let xt = transpose(cx, x, perm)?;
    let xt = reshape(cx, xt, vec![n * plane, c])?;

    // Grid components, each [N, out..., 1]; component 0 is the last axis.
    let comps = if r == 1 { vec![grid] } else { cx.add(Op::Split { axis: r + 1, sizes: vec![1; r] }, vec![grid])? };
    let mut coords = Vec::with_capacity(r);
    for (i, &d) in dims.iter().enumerate() {
        let df = d as f64;
        let g = comps[r - 1 - i];
        // denormalise
        coords.push(if align {
            affine(cx, g, (df - 1.0) / 2.0, (df - 1.0) / 2.0)?
        } else {
            affine(cx, g, df / 2.0, (df - 1.0) / 2.0)?
        });
    }
    let y = sample(cx, xt, n, &dims, &coords, &outsp, Sampler { mode, pad, align })?;
    // [N, out..., C] -> [N, C, out...]
    let mut perm = vec![0, r + 1];
    perm.extend(1..=r);
    Ok(vec![transpose(cx, y, perm)?])
}

/// How [`sample`] interpolates and pads.
#[derive(Clone, Copy)]
pub(crate) struct Sampler {
    pub mode: Mode,
    pub pad: Padding,
    pub align: bool,
}

/// Samples `xt` (`[N * P, C]`: X channels-last, P = product of `dims`) at
/// the pixel coordinates `coords` (one value per spatial axis, each
/// `[N, out..., 1]`, already denormalised) as GridSample does after its
/// denormalisation step. Returns `[N, out..., C]`.
pub(crate) fn sample(
    cx: &mut Cx,
    xt: ValueId,
    n: usize,
    dims: &[usize],
    coords: &[ValueId],
    outsp: &[usize],
    s: Sampler,
) -> Result<ValueId, ImportError> {
    let Sampler { mode, pad, align } = s;
    let r = dims.len();
    let dt = cx.ty(xt).dtype;
    let plane: usize = dims.iter().product();
    let strides: Vec<usize> = (0..r).map(|i| dims[i + 1..].iter().product()).collect();
    let mut axis_taps: Vec<Vec<Tap>> = Vec::with_capacity(r);
    for (i, &d) in dims.iter().enumerate() {
        let df = d as f64;
        let v = coords[i];
        let v = if mode == Mode::Nearest { un(cx, UnaryOp::Round, v)? } else { v };
        let border = if align { (0.0, df - 1.0) } else { (-0.5, df - 0.5) };
        // coordinates outside the border range are clamped / reflected
        let v = match pad {
            Padding::Zeros => v,
            Padding::Border | Padding::Reflection => {
                let lo = scalar(cx, dt, border.0)?;
                let hi = scalar(cx, dt, border.1)?;
                let below = bin(cx, BinaryOp::Less, v, lo)?;
                let above = bin(cx, BinaryOp::Greater, v, hi)?;
                let out = bin(cx, BinaryOp::Or, below, above)?;
                let fixed = if pad == Padding::Border {
                    clip(cx, v, 0.0, df - 1.0)?
                } else {
                    reflect(cx, v, border.0, border.1)?
                };
                where_(cx, out, fixed, v)?
            }
        };
        let taps = match mode {
            Mode::Nearest => {
                // astype(int32) of a (possibly reflected, half-integral)
                // coordinate truncates toward zero.
                let t = if pad == Padding::Reflection {
                    let z = clip(cx, v, 0.0, df - 1.0)?;
                    un(cx, UnaryOp::Floor, z)?
                } else {
                    v
                };
                vec![tap(cx, t, None, d, strides[i], pad, border)?]
            }
            Mode::Linear | Mode::Cubic => {
                let f = un(cx, UnaryOp::Floor, v)?;
                let t = bin(cx, BinaryOp::Sub, v, f)?;
                let (first, ws) = if mode == Mode::Linear {
                    let w0 = affine(cx, t, -1.0, 1.0)?;
                    (0i64, vec![w0, t])
                } else {
                    (-1i64, cubic_coeffs(cx, t)?.to_vec())
                };
                let mut taps = Vec::with_capacity(ws.len());
                for (k, w) in ws.into_iter().enumerate() {
                    let pos = affine(cx, f, 1.0, (first + k as i64) as f64)?;
                    taps.push(tap(cx, pos, Some(w), d, strides[i], pad, border)?);
                }
                taps
            }
        };
        axis_taps.push(taps);
    }

    // Row base n * P, shaped [N, 1, ..., 1] like the offsets.
    let mut bshape = vec![n];
    bshape.extend(std::iter::repeat_n(1, outsp.len() + 1));
    let bases: Vec<i64> = (0..n).map(|k| (k * plane) as i64).collect();
    let base = konst_i(cx, "row_base", bshape, &bases)?;
    let mut idx_shape = vec![n];
    idx_shape.extend(outsp);

    // Every combination of one tap per axis.
    let combos: usize = axis_taps.iter().map(Vec::len).product();
    let mut terms = Vec::with_capacity(combos);
    for combo in 0..combos {
        let mut rem = combo;
        let mut offs = vec![base];
        let mut w: Option<ValueId> = None;
        for taps in axis_taps.iter().rev() {
            let t = &taps[rem % taps.len()];
            rem /= taps.len();
            offs.push(t.offset);
            if let Some(tw) = t.weight {
                w = Some(match w {
                    None => tw,
                    Some(p) => bin(cx, BinaryOp::Mul, p, tw)?,
                });
            }
        }
        let flat = sum(cx, &offs)?;
        let flat = reshape(cx, flat, idx_shape.clone())?;
        let g = cx.add1(Op::Gather { axis: 0 }, vec![xt, flat])?;
        terms.push(match w {
            Some(w) => bin(cx, BinaryOp::Mul, g, w)?,
            None => g,
        });
    }
    sum(cx, &terms)
}

fn affine_grid(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let theta = cx.input(0)?;
    let size = cx.const_ints(1, "size")?.ok_or_else(|| cx.err("missing required input 'size'"))?;
    let dt = cx.ty(theta).dtype;
    let ts = cx.shape(theta);
    let align = cx.attrs().bool("align_corners", false)?;
    let r = size.len().saturating_sub(2);
    if !(r == 2 || r == 3) || ts.len() != 3 || ts[1] != r || ts[2] != r + 1 || !dt.is_float() {
        return Err(
            cx.err(format!("theta {} and size {size:?} must be [N,2,3] with 4 sizes or [N,3,4] with 5", cx.ty(theta)))
        );
    }
    let size = super::non_neg(cx, "size", &size)?;
    if size[0] != ts[0] {
        return Err(cx.err(format!("size {size:?} has another batch than theta {}", cx.ty(theta))));
    }
    let sp = size[2..].to_vec();
    let count: usize = sp.iter().product();
    super::fits(cx, &[size[0], count, r])?;
    // Normalised coordinate of position i on an axis of length d.
    let coord = |i: usize, d: usize| -> f64 {
        if align {
            if d <= 1 {
                0.0
            } else {
                -1.0 + 2.0 * i as f64 / (d - 1) as f64
            }
        } else {
            (2.0 * i as f64 + 1.0) / d as f64 - 1.0
        }
    };
    // Base grid [count, r + 1]: (x, y, (z,) 1) with x along the last axis.
    let mut base = Vec::with_capacity(count * (r + 1));
    for p in 0..count {
        let mut rem = p;
        let mut pos = vec![0; r];
        for a in (0..r).rev() {
            pos[a] = rem % sp[a];
            rem /= sp[a];
        }
        for a in (0..r).rev() {
            base.push(coord(pos[a], sp[a]));
        }
        base.push(1.0);
    }
    let b = konst_f(cx, "base_grid", dt, vec![count, r + 1], &base)?;
    let tt = transpose(cx, theta, vec![0, 2, 1])?;
    let g = matmul(cx, b, tt)?;
    let mut shape = vec![size[0]];
    shape.extend(&sp);
    shape.push(r);
    Ok(vec![reshape(cx, g, shape)?])
}
