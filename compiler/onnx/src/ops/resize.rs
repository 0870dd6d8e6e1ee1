//! Resize (nearest, linear, cubic) and the older Upsample. Scales or sizes
//! must be constants; the IR op gets both the resolved output shape and the
//! per-axis scale used for coordinate mapping (given scales, or `out/in`
//! when sizes were given). Opset 10 Resize and Upsample use asymmetric
//! coordinates with floor rounding for nearest.

use kerf_ir::op::{CoordMode, NearestMode, Resize, ResizeMode};
use kerf_ir::{Op, Tensor, ValueId, F32};

use super::resize_matrix::MatrixResize;
use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("Resize", resize));
    r.push(("Upsample", upsample));
}

fn mode_of(cx: &Cx, mode: &str, nearest: NearestMode) -> Result<ResizeMode, ImportError> {
    Ok(match mode {
        "nearest" => ResizeMode::Nearest(nearest),
        "linear" | "bilinear" => ResizeMode::Linear,
        "cubic" => ResizeMode::Cubic,
        other => return Err(cx.err(format!("unknown mode '{other}'"))),
    })
}

fn floats(t: &Tensor) -> Vec<f32> {
    t.to_f64_vec().into_iter().map(|v| v as f32).collect()
}

/// Output sizes and scales from either per-axis scales or sizes.
fn resolve(
    cx: &Cx,
    xs: &[usize],
    scales: Option<Vec<f32>>,
    sizes: Option<Vec<i64>>,
) -> Result<(Vec<F32>, Vec<usize>), ImportError> {
    let r = xs.len();
    match (scales, sizes) {
        (Some(sc), _) => {
            if sc.len() != r {
                return Err(cx.err(format!("scales {sc:?} must have one value per axis of {xs:?}")));
            }
            let mut sizes = Vec::with_capacity(r);
            for (i, &s) in sc.iter().enumerate() {
                if !(s > 0.0 && s.is_finite()) {
                    return Err(cx.err(format!("scale {s} on axis {i} must be positive")));
                }
                sizes.push((xs[i] as f64 * s as f64).floor() as usize);
            }
            super::fits(cx, &sizes)?;
            Ok((sc.into_iter().map(F32::new).collect(), sizes))
        }
        (None, Some(sz)) => {
            if sz.len() != r {
                return Err(cx.err(format!("sizes {sz:?} must have one value per axis of {xs:?}")));
            }
            let sizes = super::non_neg(cx, "sizes", &sz)?;
            super::fits(cx, &sizes)?;
            let scales =
                sizes.iter().zip(xs).map(|(&o, &i)| F32::new(if i == 0 { 1.0 } else { o as f32 / i as f32 })).collect();
            Ok((scales, sizes))
        }
        (None, None) => Err(cx.err("needs either constant 'scales' or 'sizes'")),
    }
}

/// Expands values given for `axes` to all axes (others keep `fill`).
fn on_axes<T: Copy>(
    cx: &Cx,
    vals: Vec<T>,
    axes: &Option<Vec<usize>>,
    rank: usize,
    fill: &[T],
) -> Result<Vec<T>, ImportError> {
    match axes {
        None => Ok(vals),
        Some(ax) => {
            if vals.len() != ax.len() {
                return Err(cx.err(format!("{} values for {} axes", vals.len(), ax.len())));
            }
            let mut out: Vec<T> = fill.get(..rank).unwrap_or(&[]).to_vec();
            for (v, &a) in vals.into_iter().zip(ax) {
                if let Some(slot) = out.get_mut(a) {
                    *slot = v;
                }
            }
            Ok(out)
        }
    }
}

fn resize(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let xs = cx.shape(x);
    let a = cx.attrs();
    let mode = a.string("mode", "nearest")?;
    if cx.opset < 11 {
        return resize_v10(cx, x, &mode);
    }
    let nearest = match a.string("nearest_mode", "round_prefer_floor")?.as_str() {
        "round_prefer_floor" => NearestMode::RoundPreferFloor,
        "round_prefer_ceil" => NearestMode::RoundPreferCeil,
        "floor" => NearestMode::Floor,
        "ceil" => NearestMode::Ceil,
        other => return Err(cx.err(format!("unknown nearest_mode '{other}'"))),
    };
    let ctm = a.string("coordinate_transformation_mode", "half_pixel")?;
    let coord = kerf_ir::op::parse_coord_mode(&ctm)
        .ok_or_else(|| cx.err(format!("unknown coordinate_transformation_mode '{ctm}'")))?;
    let antialias = a.int("antialias", 0)? != 0;
    let policy = a.string("keep_aspect_ratio_policy", "stretch")?;
    let rank = xs.len();
    let axes = match a.ints_opt("axes")? {
        Some(ax) => Some(cx.axes_in_order(&ax, rank)?),
        None => None,
    };
    // An empty scales tensor means "not given" (exporters pass one with sizes).
    let scales = cx.konst(2, "scales")?.filter(|t| t.numel() > 0).map(|t| floats(&t));
    let sizes = cx.konst(3, "sizes")?.filter(|t| t.numel() > 0).map(|t| t.to_i64_vec());
    let ones = vec![1.0f32; rank];
    let dims: Vec<i64> = xs.iter().map(|&d| d as i64).collect();
    let scales = scales.map(|s| on_axes(cx, s, &axes, rank, &ones)).transpose()?;
    let sizes = sizes.map(|s| on_axes(cx, s, &axes, rank, &dims)).transpose()?;
    let on: Vec<usize> = axes.clone().unwrap_or_else(|| (0..rank).collect());
    let (scales64, sizes) = scales_f64(cx, &xs, (&scales, &sizes), &policy, &on)?;
    let (scales, sizes) = match (&scales, sizes) {
        (None, Some(sz)) if policy != "stretch" => {
            let sz = super::non_neg(cx, "sizes", &sz)?;
            super::fits(cx, &sz)?;
            let sc = scales64.iter().flatten().map(|&v| F32::new(v as f32)).collect();
            (sc, sz)
        }
        (scales, sizes) => resolve(cx, &xs, scales.clone(), sizes)?,
    };
    let mode = mode_of(cx, &mode, nearest)?;
    if antialias || coord == CoordMode::TfCropAndResize {
        let scales64 = scales64.ok_or_else(|| cx.err("needs either constant 'scales' or 'sizes'"))?;
        return matrix_resize(cx, x, (mode, coord, antialias), (&axes, &on), &scales64, &sizes);
    }
    let rz = Resize {
        mode,
        coord,
        cubic_coeff: F32::new(a.float("cubic_coeff_a", -0.75)?),
        exclude_outside: a.bool("exclude_outside", false)?,
        scales,
        sizes,
    };
    Ok(vec![cx.add1(Op::Resize(rz), vec![x])?])
}

/// Resize before opset 11: scales only (input 1), floor rounding, asymmetric
/// coordinates.
fn resize_v10(cx: &mut Cx, x: ValueId, mode: &str) -> Result<Vec<ValueId>, ImportError> {
    let scales = cx.konst(1, "scales")?.map(|t| floats(&t));
    floor_asymmetric(cx, x, mode, scales)
}

/// A resize by `scales` with floor rounding and asymmetric coordinates:
/// `Upsample`, and `Resize` before opset 11.
fn floor_asymmetric(
    cx: &mut Cx,
    x: ValueId,
    mode: &str,
    scales: Option<Vec<f32>>,
) -> Result<Vec<ValueId>, ImportError> {
    let xs = cx.shape(x);
    let (scales, sizes) = resolve(cx, &xs, scales, None)?;
    let rz = Resize {
        mode: mode_of(cx, mode, NearestMode::Floor)?,
        coord: CoordMode::Asymmetric,
        cubic_coeff: F32::new(-0.75),
        exclude_outside: false,
        scales,
        sizes,
    };
    Ok(vec![cx.add1(Op::Resize(rz), vec![x])?])
}

/// Per-axis scales in f64 and output sizes, each if known.
type ScalesAndSizes = (Option<Vec<f64>>, Option<Vec<i64>>);

/// Per-axis scales in f64 as the reference computes them (sizes / input
/// when sizes are given; one scale for the resized axes under a
/// `keep_aspect_ratio_policy` other than `stretch`), and the output sizes
/// that policy gives (else `sizes` as given).
fn scales_f64(
    cx: &Cx,
    xs: &[usize],
    (scales, sizes): (&Option<Vec<f32>>, &Option<Vec<i64>>),
    policy: &str,
    on: &[usize],
) -> Result<ScalesAndSizes, ImportError> {
    let rank = xs.len();
    Ok(match (scales, sizes) {
        (None, Some(sz)) if policy != "stretch" => {
            let sz = super::non_neg(cx, "sizes", sz)?;
            let ratios = on.iter().filter(|&&i| xs[i] > 0).map(|&i| sz[i] as f64 / xs[i] as f64);
            let scale = match policy {
                "not_larger" => ratios.fold(f64::INFINITY, f64::min),
                "not_smaller" => ratios.fold(0.0, f64::max),
                other => return Err(cx.err(format!("unknown keep_aspect_ratio_policy '{other}'"))),
            };
            if !(scale.is_finite() && scale > 0.0) {
                return Err(cx.err(format!("sizes {sz:?} give no positive scale for input {xs:?}")));
            }
            let sc: Vec<f64> = (0..rank).map(|i| if on.contains(&i) { scale } else { 1.0 }).collect();
            // round half up, as the reference
            let out: Vec<i64> = (0..rank)
                .map(|i| if on.contains(&i) { (scale * xs[i] as f64 + 0.5).floor() as i64 } else { xs[i] as i64 })
                .collect();
            (Some(sc), Some(out))
        }
        (None, Some(sz)) => {
            let sc = sz.iter().zip(xs).map(|(&o, &i)| if i == 0 { 1.0 } else { o as f64 / i as f64 }).collect();
            (Some(sc), sizes.clone())
        }
        (Some(sc), _) => (Some(sc.iter().map(|&v| v as f64).collect()), None),
        (None, None) => (None, None),
    })
}

/// Antialiased and `tf_crop_and_resize` resizes, as per-axis interpolation
/// matrices (`resize_matrix`), the ROI constant or (crop and resize only)
/// computed at run time.
fn matrix_resize(
    cx: &mut Cx,
    x: ValueId,
    (mode, coord, antialias): (ResizeMode, CoordMode, bool),
    (axes, on): (&Option<Vec<usize>>, &[usize]),
    scales64: &[f64],
    sizes: &[usize],
) -> Result<Vec<ValueId>, ImportError> {
    let a = cx.attrs();
    let m = MatrixResize {
        mode,
        coord,
        antialias,
        cubic_coeff: a.float("cubic_coeff_a", -0.75)? as f64,
        exclude_outside: a.bool("exclude_outside", false)?,
        extrapolation: a.float("extrapolation_value", 0.0)? as f64,
    };
    if let Some(roi) = cx.opt_input(1).filter(|&v| cx.g.const_of(v).is_none() && coord == CoordMode::TfCropAndResize) {
        return Ok(vec![super::resize_matrix::resize_runtime_roi(cx, x, &m, on, scales64, sizes, roi)?]);
    }
    let rank = cx.shape(x).len();
    let roi = match cx.konst(1, "roi")?.filter(|t| t.numel() > 0) {
        Some(t) => Some(on_axes_roi(cx, t.to_f64_vec(), axes, rank)?),
        None if coord == CoordMode::TfCropAndResize => {
            return Err(cx.err("tf_crop_and_resize needs a constant 'roi'"));
        }
        None => None,
    };
    Ok(vec![super::resize_matrix::resize(cx, x, &m, on, scales64, sizes, roi.as_deref())?])
}

fn upsample(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let a = cx.attrs();
    let mode = a.string("mode", "nearest")?;
    let scales = if cx.opset < 9 {
        Some(a.floats_opt("scales")?.ok_or_else(|| cx.err("missing required attribute 'scales'"))?)
    } else {
        cx.konst(1, "scales")?.map(|t| floats(&t))
    };
    floor_asymmetric(cx, x, &mode, scales)
}

/// Expands a roi given for `axes` (starts then ends) to all axes (others
/// keep `0..1`).
fn on_axes_roi(cx: &Cx, roi: Vec<f64>, axes: &Option<Vec<usize>>, rank: usize) -> Result<Vec<f64>, ImportError> {
    let n = axes.as_ref().map_or(rank, Vec::len);
    if roi.len() != 2 * n {
        return Err(cx.err(format!("roi {roi:?} must hold {} values", 2 * n)));
    }
    match axes {
        None => Ok(roi),
        Some(ax) => {
            let mut out = vec![0.0; rank];
            out.extend(std::iter::repeat_n(1.0, rank));
            for (i, &a) in ax.iter().enumerate() {
                out[a] = roi[i];
                out[rank + a] = roi[n + i];
            }
            Ok(out)
        }
    }
}
