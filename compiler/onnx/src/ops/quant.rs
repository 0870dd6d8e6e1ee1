//! QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear: compositions of
//! IR ops that reproduce the ONNX reference implementation bit for bit.
//!
//! - Quantize: `q = x / scale` in the common float type (x's when x and
//!   scale agree, f32 otherwise, or the `precision` attribute); integer
//!   targets round half to even, add the zero point in i64, clamp to the
//!   type's range and cast (saturating, unlike Cast); float8 targets cast
//!   with `saturate` (the zero point is ignored, as the reference does);
//!   float4 adds the zero point and casts (float4 always saturates).
//! - Dequantize: `(x - zero_point) * scale` in f32 (exact for every input
//!   type of 16 bits or fewer: the difference is an exact f32 and the
//!   product is rounded once), in f64 for i32 inputs (as numpy promotes),
//!   then cast to the scale's type (or `output_dtype`). float8/float4 inputs
//!   ignore the zero point.
//! - Scales and zero points are per-tensor (one element), per-axis (1-D
//!   along `axis`) or blocked (`block_size` along `axis`, each element
//!   repeated `block_size` times and the last block cut to fit); they are
//!   reshaped/expanded to broadcast against `x` (folded when constant).

use kerf_ir::op::{BinaryOp, ReduceKind, UnaryOp};
use kerf_ir::{DType, Op, Origin, Quant, Tensor, ValueId, F32};

use super::compose::{bin, cast, reshape, scalar, un, R};
use super::Converter;
use crate::import::Cx;
use crate::{tensor, ImportError};

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("QuantizeLinear", quantize_linear));
    r.push(("DequantizeLinear", dequantize_linear));
    r.push(("DynamicQuantizeLinear", dynamic_quantize_linear));
}

fn cast_to(cx: &mut Cx, v: ValueId, to: DType) -> R {
    if cx.ty(v).dtype == to {
        Ok(v)
    } else {
        cast(cx, v, to)
    }
}

/// Reshapes/replicates a scale or zero point so that it broadcasts against
/// an input of shape `xs` (see the module docs).
fn param_for(cx: &mut Cx, v: ValueId, xs: &[usize], axis: Option<usize>, block: usize, what: &str) -> R {
    let s = cx.shape(v);
    let n: usize = s.iter().product();
    if n == 1 && block == 0 {
        return reshape(cx, v, vec![]);
    }
    let axis = axis.ok_or_else(|| {
        cx.err(format!("axis is out of range for input {xs:?} (needed by the per-axis or blocked {what})"))
    })?;
    if block == 0 {
        if s.len() != 1 || s[0] != xs[axis] {
            return Err(cx.err(format!(
                "{what} of shape {s:?} must be a scalar or 1-D of length {} (axis {axis} of input {xs:?})",
                xs[axis]
            )));
        }
        let mut dims = vec![1; xs.len()];
        dims[axis] = n;
        return reshape(cx, v, dims);
    }
    let nb = xs[axis].div_ceil(block);
    let ok = s.len() == xs.len() && s.iter().enumerate().all(|(i, &d)| if i == axis { d == nb } else { d == xs[i] });
    if !ok {
        return Err(
            cx.err(format!("{what} of shape {s:?} does not match input {xs:?} blocked by {block} along axis {axis}"))
        );
    }
    let mut ins = s.clone();
    ins.insert(axis + 1, 1);
    let r = reshape(cx, v, ins.clone())?;
    let mut ex = ins;
    ex[axis + 1] = block;
    let e = cx.add1(Op::Expand { shape: ex }, vec![r])?;
    let mut full = s.clone();
    full[axis] = nb * block;
    let f = reshape(cx, e, full.clone())?;
    if full[axis] == xs[axis] {
        return Ok(f);
    }
    let rank = xs.len();
    let starts = vec![0i64; rank];
    let ends: Vec<i64> = xs.iter().map(|&d| d as i64).collect();
    cx.add1(Op::Slice { starts, ends, steps: vec![1; rank] }, vec![f])
}

/// `axis` (`None` when out of range: only per-axis and blocked parameters
/// use it) and `block_size`, resolved against rank `rank`.
fn axis_block(cx: &Cx, rank: usize) -> Result<(Option<usize>, usize), ImportError> {
    let a = cx.attrs();
    let axis = a.int("axis", 1)?;
    let block = a.int("block_size", 0)?;
    let block = usize::try_from(block).map_err(|_| cx.err(format!("block_size {block} must be >= 0")))?;
    let axis = cx.axis(axis, rank).ok();
    Ok((axis, block))
}

fn is_float8(d: DType) -> bool {
    matches!(d, DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ)
}

/// Rejects a constant scale that is not positive and finite (`QuantizeLinear`
/// would divide by it; no tool writes one on purpose).
fn check_scale(cx: &Cx, scale: ValueId, what: &str) -> Result<(), ImportError> {
    if let Some(t) = cx.g.const_of(scale) {
        if let Some(i) = (0..t.numel()).find(|&i| !(t.get_f64(i) > 0.0 && t.get_f64(i).is_finite())) {
            return Err(cx.err(format!("{what} element {i} is {}, scales must be positive and finite", t.get_f64(i))));
        }
    }
    Ok(())
}

/// The grid of an integer value of type `dtype[shape]` that a
/// `QuantizeLinear` writes or a `DequantizeLinear` reads, when the scale
/// and zero point are constants, per tensor or per axis (not blocked): the
/// type annotation of ARCHITECTURE "Quantised values". `None` otherwise
/// (the composition alone computes the same values).
fn grid(
    cx: &mut Cx,
    scale: ValueId,
    zp: Option<ValueId>,
    axis: Option<usize>,
    block: usize,
    dtype: DType,
    shape: &[usize],
) -> Option<Quant> {
    if block != 0 || !dtype.is_int() {
        return None;
    }
    let s = cx.g.const_of(scale)?.clone();
    let z = match zp {
        Some(z) => cx.g.const_of(z)?.clone(),
        None => Tensor::splat(dtype, s.shape().to_vec(), 0.0).ok()?,
    };
    let (axis, dims) = match s.numel() {
        1 => (None, vec![]),
        n => (axis, vec![n]),
    };
    let s = s.reshaped(dims.clone()).ok()?;
    let z = z.reshaped(dims).ok()?;
    let name = cx.name.clone();
    let scale = cx.g.weights.add(format!("{name}.grid_scale"), s, Origin::Derived);
    let zero_point = cx.g.weights.add(format!("{name}.grid_zero_point"), z, Origin::Derived);
    let q = Quant { axis, scale, zero_point };
    q.validate(dtype, shape, &cx.g.weights).ok().map(|()| q)
}

fn quantize_linear(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let scale = cx.input(1)?;
    let zp = cx.opt_input(2);
    let xs = cx.shape(x);
    let (axis, block) = axis_block(cx, xs.len())?;
    let out_attr = cx.attrs().int("output_dtype", 0)?;
    let out = match (zp, out_attr) {
        (Some(z), o) => {
            let zd = cx.ty(z).dtype;
            if o != 0 && tensor::dtype_of(o as i32, &cx.name)? != zd {
                return Err(cx.err(format!("output_dtype {o} differs from the zero point's type {zd}")));
            }
            zd
        }
        (None, 0) => DType::U8,
        (None, o) => tensor::dtype_of(o as i32, &cx.name)?,
    };
    let saturate = cx.attrs().bool("saturate", true)?;
    let xd = cx.ty(x).dtype;
    let sd = cx.ty(scale).dtype;
    if !xd.is_float() || xd.is_narrow() || !sd.is_float() || sd.is_narrow() {
        return Err(cx.err(format!("input ({xd}) and scale ({sd}) must be f32, f16, bf16 or f64")));
    }
    let precision = cx.attrs().int("precision", 0)?;
    let f = if precision != 0 {
        tensor::dtype_of(precision as i32, &cx.name)?
    } else if xd == sd {
        xd
    } else {
        DType::F32
    };
    check_scale(cx, scale, "y_scale")?;
    let s = param_for(cx, scale, &xs, axis, block, "y_scale")?;
    let xf = cast_to(cx, x, f)?;
    let sf = cast_to(cx, s, f)?;
    let q = bin(cx, BinaryOp::Div, xf, sf)?;
    let y = if let Some((lo, hi)) = out.int_range() {
        // round half to even (in f32 for the half types: exact), add the
        // zero point in i64, clamp, cast
        let qr = if matches!(f, DType::F16 | DType::BF16) { cast(cx, q, DType::F32)? } else { q };
        let r = un(cx, UnaryOp::Round, qr)?;
        let mut i = cast(cx, r, DType::I64)?;
        if let Some(z) = zp {
            let zb = param_for(cx, z, &xs, axis, block, "y_zero_point")?;
            let zi = cast_to(cx, zb, DType::I64)?;
            i = bin(cx, BinaryOp::Add, i, zi)?;
        }
        let c = un(cx, UnaryOp::Clip { min: F32::new(lo as f32), max: F32::new(hi as f32) }, i)?;
        let y = cast(cx, c, out)?;
        cx.g.values[y.0 as usize].ty.quant = grid(cx, scale, zp, axis, block, out, &xs);
        if out == DType::U8 && xd == DType::F32 && f == DType::F32 && per_tensor_const(cx, scale, zp).is_some() {
            cx.quantised_from.insert(y, x);
        }
        y
    } else if is_float8(out) {
        let op = if saturate {
            Op::Cast(out)
        } else {
            Op::CastF8 { to: out, saturate: false, round: kerf_ir::narrow::CastRound::Up }
        };
        cx.add1(op, vec![q])?
    } else if out == DType::F4E2M1 {
        let mut v = q;
        if let Some(z) = zp {
            let zb = param_for(cx, z, &xs, axis, block, "y_zero_point")?;
            let zf = cast_to(cx, zb, f)?;
            v = bin(cx, BinaryOp::Add, v, zf)?;
        }
        cast(cx, v, out)?
    } else {
        return Err(cx.err(format!("{out} is not a quantized type")));
    };
    Ok(vec![y])
}

fn dequantize_linear(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let scale = cx.input(1)?;
    let zp = cx.opt_input(2);
    let xs = cx.shape(x);
    let (axis, block) = axis_block(cx, xs.len())?;
    let xd = cx.ty(x).dtype;
    let sd = cx.ty(scale).dtype;
    if !sd.is_float() || sd.is_narrow() {
        return Err(cx.err(format!("x_scale must be f32, f16, bf16 or f64, got {sd}")));
    }
    check_scale(cx, scale, "x_scale")?;
    let out_attr = cx.attrs().int("output_dtype", 0)?;
    let out = if out_attr == 0 { sd } else { tensor::dtype_of(out_attr as i32, &cx.name)? };
    // an integer value read on a grid and without one yet (an int8
    // initializer, a graph input) takes it; a producer's grid stays
    if cx.g.ty(x).quant.is_none() {
        cx.g.values[x.0 as usize].ty.quant = grid(cx, scale, zp, axis, block, xd, &xs);
    }
    if out == DType::F32 && block == 0 {
        if let Some(y) = requantised(cx, x, scale, zp)? {
            return Ok(vec![y]);
        }
        if let Some(y) = weight_on_grid(cx, x, scale, zp, axis)? {
            return Ok(vec![y]);
        }
    }
    let f = if matches!(xd, DType::I32 | DType::U32 | DType::I64 | DType::U64) { DType::F64 } else { DType::F32 };
    let mut d = cast(cx, x, f)?;
    if let Some(z) = zp.filter(|_| xd.is_int()) {
        let zd = cx.ty(z).dtype;
        if zd != xd {
            return Err(cx.err(format!("x_zero_point has type {zd}, x has {xd}")));
        }
        let zb = param_for(cx, z, &xs, axis, block, "x_zero_point")?;
        let zf = cast(cx, zb, f)?;
        d = bin(cx, BinaryOp::Sub, d, zf)?;
    }
    let s = param_for(cx, scale, &xs, axis, block, "x_scale")?;
    let sf = cast_to(cx, s, f)?;
    let y = bin(cx, BinaryOp::Mul, d, sf)?;
    Ok(vec![cast_to(cx, y, out)?])
}

/// `(scale, zero point)` of a per-tensor grid given as constants (an
/// absent zero point is 0), when the zero point fits u8.
fn per_tensor_const(cx: &Cx, scale: ValueId, zp: Option<ValueId>) -> Option<(f32, u8)> {
    let s = cx.g.const_of(scale)?;
    if s.numel() != 1 || s.dtype() != DType::F32 {
        return None;
    }
    let z = match zp {
        None => 0.0,
        Some(z) => {
            let t = cx.g.const_of(z)?;
            (t.numel() == 1 && t.dtype() == DType::U8).then(|| t.get_f64(0))?
        }
    };
    Some((s.to_f32_vec()[0], z as u8))
}

/// `DequantizeLinear(QuantizeLinear(x))` on one per-tensor u8 grid, as
/// the activation quantiser the compress stage writes:
/// `Mul(Clip{−z, 255 − z}(Round(Div(x, s))), s)`. The same values bit for
/// bit for every non-NaN `x` (`(q − z)` is exactly the clipped rounded
/// quotient, and both sides multiply it by `s` once; a NaN stays NaN here
/// where the pair's u8 cast gives 0), in the form the `int8` rule group runs
/// on integer kernels.
fn requantised(cx: &mut Cx, x: ValueId, scale: ValueId, zp: Option<ValueId>) -> Result<Option<ValueId>, ImportError> {
    let Some(&src) = cx.quantised_from.get(&x) else { return Ok(None) };
    let Some((s, z)) = per_tensor_const(cx, scale, zp) else { return Ok(None) };
    let same = cx.g.ty(x).quant.as_ref().is_some_and(|q| {
        let qs = cx.g.weights.tensor(q.scale).to_f32_vec();
        let qz = cx.g.weights.tensor(q.zero_point).to_f64_vec();
        q.axis.is_none() && qs == [s] && qz == [f64::from(z)]
    });
    if !same {
        return Ok(None);
    }
    let sc = cx.derived("scale", Tensor::scalar_f32(s));
    let d = bin(cx, BinaryOp::Div, src, sc)?;
    let r = un(cx, UnaryOp::Round, d)?;
    let zf = f32::from(z);
    let c = un(cx, UnaryOp::Clip { min: F32::new(-zf), max: F32::new(255.0 - zf) }, r)?;
    Ok(Some(bin(cx, BinaryOp::Mul, c, sc)?))
}

/// `DequantizeLinear` of a constant int8 weight with zero zero points: the
/// f32 values `f32(q · s[c])` it computes, as a constant recording its grid
/// (`WeightGrid`, per output channel, axis 0), so the `int8` rule group can
/// run the layer on integer kernels. `None` for anything else.
fn weight_on_grid(
    cx: &mut Cx,
    x: ValueId,
    scale: ValueId,
    zp: Option<ValueId>,
    axis: Option<usize>,
) -> Result<Option<ValueId>, ImportError> {
    let (Some(q), Some(s)) = (cx.g.const_of(x), cx.g.const_of(scale)) else { return Ok(None) };
    let zero = zp.map_or(Some(true), |z| cx.g.const_of(z).map(|t| t.to_f64_vec().iter().all(|&v| v == 0.0)));
    let shape = q.shape().to_vec();
    let per_tensor = s.numel() == 1;
    if q.dtype() != DType::I8 || s.dtype() != DType::F32 || zero != Some(true) || shape.is_empty() {
        return Ok(None);
    }
    if !per_tensor && (axis != Some(0) || s.numel() != shape[0]) {
        return Ok(None);
    }
    let sv = s.to_f32_vec();
    let scales: Vec<f32> = (0..shape[0]).map(|c| if per_tensor { sv[0] } else { sv[c] }).collect();
    let inner: usize = shape[1..].iter().product();
    let values: Vec<f32> =
        q.to_f64_vec().iter().enumerate().map(|(i, &c)| c as f32 * scales[i / inner.max(1)]).collect();
    let t = Tensor::from_f32(shape, &values).map_err(|e| cx.err(e.to_string()))?;
    let grid = kerf_ir::WeightGrid { axis: 0, scales };
    if grid.validate(&t).is_err() {
        return Ok(None);
    }
    let v = cx.derived("weight", t);
    if let kerf_ir::ValueDef::Const(w) = cx.g.value(v).def {
        let slot = cx.g.weights.get_mut(w);
        slot.grid = Some(grid);
        slot.is_param = true;
    }
    Ok(Some(v))
}

/// DynamicQuantizeLinear (uint8): scale from the data range including 0,
/// zero point rounded half to even, then QuantizeLinear, all in f32 as the
/// reference computes it.
fn dynamic_quantize_linear(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    if cx.ty(x).dtype != DType::F32 {
        return Err(cx.err(format!("input must be f32, got {}", cx.ty(x).dtype)));
    }
    let rank = cx.shape(x).len();
    let axes: Vec<usize> = (0..rank).collect();
    let mx = cx.add1(Op::Reduce { kind: ReduceKind::Max, axes: axes.clone(), keepdims: false }, vec![x])?;
    let mn = cx.add1(Op::Reduce { kind: ReduceKind::Min, axes, keepdims: false }, vec![x])?;
    let zero = scalar(cx, DType::F32, 0.0)?;
    let maxx = bin(cx, BinaryOp::Max, mx, zero)?;
    let minx = bin(cx, BinaryOp::Min, mn, zero)?;
    // (max - min) / 255, with 1 / 255 when the range is empty
    let range = bin(cx, BinaryOp::Sub, maxx, minx)?;
    let same = bin(cx, BinaryOp::Equal, maxx, minx)?;
    let one = scalar(cx, DType::F32, 1.0)?;
    let range = cx.add1(Op::Where, vec![same, one, range])?;
    let q = scalar(cx, DType::F32, 255.0)?;
    let y_scale = bin(cx, BinaryOp::Div, range, q)?;
    // zp = rint(clamp(0 - min / scale, 0, 255))
    let t = bin(cx, BinaryOp::Div, minx, y_scale)?;
    let t = bin(cx, BinaryOp::Sub, zero, t)?;
    let t = un(cx, UnaryOp::Clip { min: F32::new(0.0), max: F32::new(255.0) }, t)?;
    let zpf = un(cx, UnaryOp::Round, t)?;
    // y = clamp(rint(x / scale) + zp, 0, 255)
    let d = bin(cx, BinaryOp::Div, x, y_scale)?;
    let r = un(cx, UnaryOp::Round, d)?;
    let s = bin(cx, BinaryOp::Add, r, zpf)?;
    let c = un(cx, UnaryOp::Clip { min: F32::new(0.0), max: F32::new(255.0) }, s)?;
    let y = cast(cx, c, DType::U8)?;
    let zp = cast(cx, zpf, DType::U8)?;
    Ok(vec![y, y_scale, zp])
}
