//! Resize with linear and cubic interpolation (f32), every coordinate
//! transformation mode except `tf_crop_and_resize`, following the ONNX
//! reference implementation (`onnx/reference/ops/op_resize.py`).
//!
//! Interpolation is separable: along each axis, output index `o` maps to a
//! source coordinate `x` and reads `T` taps (2 linear, 4 cubic) at indices
//! clamped to the input (the reference's edge padding) with coefficients
//! depending on `x`'s fractional part. Both are computed at compile time into
//! per-axis tables (element offsets and f32 weights); an axis whose every
//! output reads exactly one source element with weight 1 (unchanged axes,
//! integer ratios in some modes) collapses to one tap. The kernel visits each
//! output element and sums the products of the taps of all axes (the tap
//! combinations are unrolled; at most [`MAX_COMBOS`]).

use cranelift_codegen::ir::{types, InstBuilder};
use kerf_ir::op::{CoordMode, ResizeMode};

use super::{Kernel, LResult};

/// Largest number of unrolled tap combinations per output element.
pub const MAX_COMBOS: usize = 256;

/// Source coordinate of output index `o` (ONNX `_interpolate_1d_with_x`).
fn source_coord(o: usize, in_len: usize, out_len: usize, scale: f64, coord: CoordMode) -> f64 {
    let (x, il) = (o as f64, in_len as f64);
    // the reference uses the unrounded output length `scale * in_len`
    let ow = scale * il;
    match coord {
        CoordMode::AlignCorners => {
            if ow == 1.0 {
                0.0
            } else {
                x * (il - 1.0) / (ow - 1.0)
            }
        }
        CoordMode::Asymmetric | CoordMode::TfCropAndResize => x / scale,
        CoordMode::PytorchHalfPixel => {
            if ow == 1.0 {
                -0.5
            } else {
                (x + 0.5) / scale - 0.5
            }
        }
        CoordMode::HalfPixel => (x + 0.5) / scale - 0.5,
        CoordMode::HalfPixelSymmetric => {
            let adjustment = out_len as f64 / ow;
            let offset = il / 2.0 * (1.0 - adjustment);
            offset + (x + 0.5) / scale - 0.5
        }
    }
}

fn cubic_coeffs(r: f64, a: f64) -> [f64; 4] {
    let r1 = r + 1.0;
    let q = 1.0 - r;
    let q1 = q + 1.0;
    [
        ((a * r1 - 5.0 * a) * r1 + 8.0 * a) * r1 - 4.0 * a,
        ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
        ((a + 2.0) * q - (a + 3.0)) * q * q + 1.0,
        ((a * q1 - 5.0 * a) * q1 + 8.0 * a) * q1 - 4.0 * a,
    ]
}

/// Taps `(source index, weight)` of one output index along one axis.
pub fn taps(o: usize, in_len: usize, out_len: usize, r: &kerf_ir::op::Resize, scale: f64) -> Vec<(usize, f64)> {
    let x = source_coord(o, in_len, out_len, scale, r.coord);
    // The reference prefers the left neighbour: ratio in (0, 1], so an
    // integer x is reached with ratio 1 from base x - 1.
    let base = x.ceil() - 1.0;
    let ratio = x - base;
    let (first, coeffs): (f64, Vec<f64>) = match r.mode {
        ResizeMode::Cubic => (base - 1.0, cubic_coeffs(ratio, r.cubic_coeff.get() as f64).to_vec()),
        _ => (base, vec![1.0 - ratio, ratio]),
    };
    let mut t: Vec<(f64, f64)> = coeffs.iter().enumerate().map(|(i, &c)| (first + i as f64, c)).collect();
    if r.exclude_outside {
        for (i, c) in t.iter_mut() {
            if *i < 0.0 || *i >= in_len as f64 {
                *c = 0.0;
            }
        }
        let s: f64 = t.iter().map(|p| p.1).sum();
        if s != 0.0 {
            for p in t.iter_mut() {
                p.1 /= s;
            }
        }
    }
    let hi = in_len.saturating_sub(1) as f64;
    t.into_iter().map(|(i, c)| (i.clamp(0.0, hi) as usize, c)).collect()
}

/// Lowers a linear or cubic `Resize` (f32) with the per-axis tap tables described in the module docs.
pub fn interp(k: &mut Kernel, r: &kerf_ir::op::Resize) -> LResult {
    k.require_f32()?;
    if r.coord == CoordMode::TfCropAndResize {
        return Err("tf_crop_and_resize is not supported".into());
    }
    let xs = k.in_shape(0).to_vec();
    let os = r.sizes.clone();
    if os.len() != xs.len() || r.scales.len() != xs.len() {
        return Err(format!("rank mismatch: input {xs:?}, sizes {os:?}"));
    }
    if xs.contains(&0) || os.contains(&0) {
        return Ok(());
    }
    let xst = kerf_ir::eval::strides(&xs);
    // per axis: tap count and tables [out][T] of offsets and weights
    let mut ntaps = Vec::new();
    let mut offs: Vec<u8> = Vec::new();
    let mut wts: Vec<f32> = Vec::new();
    let mut starts = Vec::new();
    for a in 0..xs.len() {
        let all: Vec<Vec<(usize, f64)>> =
            (0..os[a]).map(|o| taps(o, xs[a], os[a], r, r.scales[a].get() as f64)).collect();
        // one tap when every output reads one element with weight 1
        let single: Option<Vec<usize>> = all
            .iter()
            .map(|t| {
                let nz: Vec<&(usize, f64)> = t.iter().filter(|p| p.1 != 0.0).collect();
                match nz.as_slice() {
                    [p] if p.1 == 1.0 => Some(p.0),
                    _ => None,
                }
            })
            .collect();
        starts.push(wts.len());
        match single {
            Some(idx) => {
                ntaps.push(1);
                for i in idx {
                    offs.extend(((i * xst[a]) as i64).to_le_bytes());
                    wts.push(1.0);
                }
            }
            None => {
                ntaps.push(all[0].len());
                for t in &all {
                    for &(i, c) in t {
                        offs.extend(((i * xst[a]) as i64).to_le_bytes());
                        wts.push(c as f32);
                    }
                }
            }
        }
    }
    let combos: usize = ntaps.iter().product();
    if combos > MAX_COMBOS {
        return Err(format!("{combos} tap combinations per element (more than {MAX_COMBOS}): too many resized axes"));
    }
    let (src, dst) = (k.input(0), k.output(0));
    let op = k.blob(offs);
    let wp = k.blob_f32(&wts);
    let ost = kerf_ir::eval::strides(&os);
    k.nest(&os, &mut |k, idx| {
        // per axis and tap: (offset, weight) values
        let mut per_axis = Vec::new();
        for a in 0..idx.len() {
            let row = k.b.ins().imul_imm_s(idx[a], ntaps[a] as i64);
            let row = k.b.ins().iadd_imm_s(row, starts[a] as i64);
            let mut v = Vec::new();
            for t in 0..ntaps[a] {
                let o = k.ld_at(types::I64, op, row, 8, (t * 8) as i32);
                let w = if ntaps[a] == 1 { None } else { Some(k.ld_at(types::F32, wp, row, 4, (t * 4) as i32)) };
                v.push((o, w));
            }
            per_axis.push(v);
        }
        let mut acc = k.fc(0.0);
        for c in 0..combos {
            let mut rem = c;
            let mut off = k.ic(0);
            let mut w: Option<cranelift_codegen::ir::Value> = None;
            for a in (0..idx.len()).rev() {
                let t = rem % ntaps[a];
                rem /= ntaps[a];
                let (o, wa) = per_axis[a][t];
                off = k.b.ins().iadd(off, o);
                if let Some(wa) = wa {
                    w = Some(match w {
                        Some(w) => k.b.ins().fmul(w, wa),
                        None => wa,
                    });
                }
            }
            let x = k.ld_at(types::F32, src, off, 4, 0);
            acc = match w {
                Some(w) => k.fmadd(x, w, acc),
                None => k.b.ins().fadd(acc, x),
            };
        }
        let o = k.linear(idx, &ost);
        k.st_at(acc, dst, o, 4, 0);
    });
    Ok(())
}
