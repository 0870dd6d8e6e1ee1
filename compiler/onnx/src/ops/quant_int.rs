//! Integer linear algebra: MatMulInteger, ConvInteger, QLinearMatMul,
//! QLinearConv and ONNX Runtime's `com.microsoft` QGemm (what its
//! `quantize_static` writes for a Gemm in the QOperator format), as
//! compositions that are exact against the ONNX reference.
//!
//! A 2-D conv of a u8 input (constant per-tensor zero point) with constant
//! i8 weights (zero zero points) runs on the integer conv kernel: an
//! accumulating `QConv` (exact i32 sums) on the input padded with its zero
//! point; so does a matmul of such operands, as a 1x1 conv over `A`'s rows. Otherwise the integer products are accumulated by the f32
//! MatMul/Conv kernels on
//! zero-point-centred operands. That is exact — every partial sum is an
//! integer below 2^24 — as long as `K · span(a) · span(b) <= 2^24`, where `K`
//! is the reduction length and `span` the width of the operand type's range
//! (255 for 8-bit types: K <= 258). Longer matmul reductions are split into
//! chunks of 256 whose exact partial products are added in int32, and so
//! are conv reductions (over input channels, one group); a grouped conv
//! whose `C/group · kernel` passes the bound is refused with an error rather
//! than computed inexactly.
//!
//! The requantisation of QLinearMatMul/QLinearConv is one `Requantize`
//! pass where its operands allow (u8/i8 output, constant zero point,
//! per-channel scales); either way it follows numpy's
//! promotion in the reference: the multiplier `a_scale * b_scale / y_scale`
//! is computed in the scales' type, the product with the int32 accumulator
//! and the zero-point addition in f64, then clamped to the output range and
//! rounded half to even (`(v + 1.5·2^52) - 1.5·2^52`, exact for the clamped
//! |v| <= 2^16), and cast.

use kerf_ir::op::{BinaryOp, Conv, ConvAlgo, Epilogue, PadMode, QConv, QOut, Window};
use kerf_ir::{DType, Op, ValueId, F32};

use super::compose::{bin, cast, reshape, scalar, R};
use super::conv::{kernel_from, window};
use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("MatMulInteger", matmul_integer));
    r.push(("ConvInteger", conv_integer));
    r.push(("QLinearMatMul", qlinear_matmul));
    r.push(("QLinearConv", qlinear_conv));
    r.push(("com.microsoft:QGemm", qgemm));
}

/// Largest integer every f32 partial sum must stay below to be exact.
const EXACT_F32: u64 = 1 << 24;

fn span(cx: &Cx, v: ValueId, what: &str) -> Result<u64, ImportError> {
    let d = cx.ty(v).dtype;
    match d {
        DType::I8 | DType::U8 => Ok(255),
        _ => Err(cx.err(format!("{what} must be int8 or uint8, got {d}"))),
    }
}

fn check_exact(cx: &Cx, k: usize, sa: u64, sb: u64) -> Result<(), ImportError> {
    if (k as u64).saturating_mul(sa).saturating_mul(sb) > EXACT_F32 {
        return Err(cx.err(format!(
            "reduction length {k} could accumulate beyond 2^24, where the f32 kernels are no longer exact \
             (at most {} for 8-bit operands)",
            EXACT_F32 / (sa * sb)
        )));
    }
    Ok(())
}

/// A zero point / scale reshaped to broadcast: one element → scalar,
/// otherwise 1-D of length `n` placed at `dims` (a shape with `n` at one axis).
fn shaped(cx: &mut Cx, v: ValueId, n: usize, dims: Vec<usize>, what: &str) -> R {
    let s = cx.shape(v);
    let numel: usize = s.iter().product();
    if numel == 1 {
        return reshape(cx, v, vec![]);
    }
    if s.len() != 1 || s[0] != n {
        return Err(cx.err(format!("{what} of shape {s:?} must have one element or {n}")));
    }
    reshape(cx, v, dims)
}

/// `f32(x) - f32(zp)` (or just `f32(x)`), zp already shaped.
fn centred(cx: &mut Cx, x: ValueId, zp: Option<ValueId>) -> R {
    let xf = cast(cx, x, DType::F32)?;
    match zp {
        None => Ok(xf),
        Some(z) => {
            if cx.ty(z).dtype != cx.ty(x).dtype {
                return Err(cx.err(format!(
                    "zero point type {} differs from its input's {}",
                    cx.ty(z).dtype,
                    cx.ty(x).dtype
                )));
            }
            let zf = cast(cx, z, DType::F32)?;
            bin(cx, BinaryOp::Sub, xf, zf)
        }
    }
}

/// Reduction chunk of a long integer matmul (a multiple of 4 below 258).
const K_CHUNK: usize = 256;

/// The int32 product of centred matmul operands (`a`'s reduction axis is
/// its last, of length `k`). Up to `K_CHUNK` in one exact f32 MatMul; longer
/// reductions in chunks whose exact partial products are added in int32
/// (wrapping, like the reference's int32 accumulator).
fn int_matmul(cx: &mut Cx, a: ValueId, b: ValueId) -> R {
    let (sa, sb) = (cx.shape(a), cx.shape(b));
    let k = sa[sa.len() - 1];
    if k <= K_CHUNK {
        let layer = cx.layer();
        let c = cx.add1(Op::MatMul(layer), vec![a, b])?;
        return cast(cx, c, DType::I32);
    }
    let slice = |cx: &mut Cx, v: ValueId, shape: &[usize], axis: usize, lo: usize, hi: usize| -> R {
        let mut starts = vec![0i64; shape.len()];
        let mut ends: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        starts[axis] = lo as i64;
        ends[axis] = hi as i64;
        cx.add1(Op::Slice { starts, ends, steps: vec![1; shape.len()] }, vec![v])
    };
    let b_axis = sb.len().saturating_sub(2);
    let mut acc: Option<ValueId> = None;
    for lo in (0..k).step_by(K_CHUNK) {
        let hi = (lo + K_CHUNK).min(k);
        let ap = slice(cx, a, &sa, sa.len() - 1, lo, hi)?;
        let bp = slice(cx, b, &sb, b_axis, lo, hi)?;
        let layer = cx.layer();
        let c = cx.add1(Op::MatMul(layer), vec![ap, bp])?;
        let c = cast(cx, c, DType::I32)?;
        acc = Some(match acc {
            None => c,
            Some(s) => bin(cx, BinaryOp::Add, s, c)?,
        });
    }
    acc.ok_or_else(|| cx.err("empty reduction"))
}

/// Per-row (`[M, 1]`) zero point of a matmul's left operand, per-column
/// (`[N]`) of its right operand.
fn matmul_operands(
    cx: &mut Cx,
    a: ValueId,
    azp: Option<ValueId>,
    b: ValueId,
    bzp: Option<ValueId>,
) -> Result<(ValueId, ValueId), ImportError> {
    let (sa, sb) = (cx.shape(a), cx.shape(b));
    if sa.is_empty() || sb.is_empty() {
        return Err(cx.err("operands must have rank >= 1"));
    }
    // 8-bit operands only: K_CHUNK * 255 * 255 < 2^24 keeps each chunk exact
    check_exact(cx, K_CHUNK, span(cx, a, "A")?, span(cx, b, "B")?)?;
    let m = if sa.len() >= 2 { sa[sa.len() - 2] } else { 1 };
    let n = sb[sb.len() - 1];
    let azp = match azp {
        Some(z) => Some(shaped(cx, z, m, vec![m, 1], "a_zero_point")?),
        None => None,
    };
    let bzp = match bzp {
        Some(z) => Some(shaped(cx, z, n, vec![n], "b_zero_point")?),
        None => None,
    };
    Ok((centred(cx, a, azp)?, centred(cx, b, bzp)?))
}

fn matmul_integer(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let (a, b) = (cx.input(0)?, cx.input(1)?);
    Ok(vec![int_product(cx, a, cx.opt_input(2), b, cx.opt_input(3))?])
}

/// The int32 product of a MatMulInteger/QLinearMatMul: on the integer
/// kernel where it applies ([`integer_matmul`]), else exactly on the f32
/// MatMul kernels.
fn int_product(cx: &mut Cx, a: ValueId, azp: Option<ValueId>, b: ValueId, bzp: Option<ValueId>) -> R {
    let a_rank = cx.ty(a).rank().max(1);
    if let Some(zp) = integer_kernel_fits(cx, (a, azp, a_rank), (b, bzp, 2)) {
        return integer_matmul(cx, a, zp, b);
    }
    let (ac, bc) = matmul_operands(cx, a, azp, b, bzp)?;
    int_matmul(cx, ac, bc)
}

/// `Σ_k (a[.., m, k] − zp)·b[k, n]` on the integer kernel, as a 1x1
/// accumulating `QConv`: the rows of `a` are its pixels (`a` transposed to
/// `[1, K, rows, 1]`, free when there is one row), `bᵀ` its `[N, K, 1, 1]`
/// weight; the `[1, N, rows, 1]` sums transposed back to `[.., M, N]`.
fn integer_matmul(cx: &mut Cx, a: ValueId, zp: u8, b: ValueId) -> R {
    let sa = cx.shape(a);
    let k = sa[sa.len() - 1];
    let rows: usize = sa[..sa.len() - 1].iter().product();
    let bt = cx.g.const_of(b).cloned().ok_or_else(|| cx.err("internal: B is not constant"))?;
    let n = bt.shape()[1];
    if bt.shape()[0] != k {
        return Err(cx.err(format!("A {sa:?} and B {:?} do not match", bt.shape())));
    }
    let bv = bt.to_i64_vec();
    let wt: Vec<i64> = (0..n).flat_map(|j| (0..k).map(move |i| (i, j))).map(|(i, j)| bv[i * n + j]).collect();
    let w = kerf_ir::Tensor::from_i64_values(DType::I8, vec![n, k, 1, 1], &wt).map_err(|e| cx.err(e.to_string()))?;
    let w = cx.derived("b_t", w);
    let x = if rows == 1 {
        reshape(cx, a, vec![1, k, 1, 1])?
    } else {
        let a2 = reshape(cx, a, vec![rows, k])?;
        let at = cx.add1(Op::Transpose { perm: vec![1, 0] }, vec![a2])?;
        reshape(cx, at, vec![1, k, rows, 1])?
    };
    let window = Window { kernel: vec![1, 1], strides: vec![1, 1], dilations: vec![1, 1], pads: vec![0; 4] };
    let y = integer_conv(cx, x, zp, w, window, 1)?;
    let mut out_shape = sa[..sa.len() - 1].to_vec();
    out_shape.push(n);
    if rows == 1 {
        return reshape(cx, y, out_shape);
    }
    let y2 = reshape(cx, y, vec![n, rows])?;
    let yt = cx.add1(Op::Transpose { perm: vec![1, 0] }, vec![y2])?;
    reshape(cx, yt, out_shape)
}

/// The int32 Conv of centred operands: exact f32 Convs over chunks of at
/// most `K_CHUNK` reduction terms (input channels × taps), summed in int32.
///
/// Only direct convolution is exact: the convs are `ConvAlgo::Exact`, which
/// the `winograd` rule group leaves alone (F(4×4,3×3) is off by ±1 on
/// integer data of this size).
fn conv_centred(cx: &mut Cx, x: ValueId, xzp: Option<ValueId>, w: ValueId, wzp: Option<ValueId>) -> R {
    let (xs, ws) = (cx.shape(x), cx.shape(w));
    if ws.len() < 3 || xs.len() != ws.len() {
        return Err(cx.err(format!("input {xs:?} and weight {ws:?} must have the same rank >= 3")));
    }
    let kernel = kernel_from(cx, &ws)?;
    let win = window(cx, kernel, &xs[2..])?;
    let group = usize::try_from(cx.attrs().int("group", 1)?).map_err(|_| cx.err("group must be positive"))?;
    if let Some(zp) = integer_kernel_fits(cx, (x, xzp, 4), (w, wzp, 4)) {
        return integer_conv(cx, x, zp, w, win, group);
    }
    let taps: usize = ws[2..].iter().product();
    let (sx, sw) = (span(cx, x, "x")?, span(cx, w, "w")?);
    // a long reduction is split over input channels (one group only)
    let chunk = if group == 1 && taps <= K_CHUNK { ws[1].min(K_CHUNK / taps) } else { ws[1] };
    check_exact(cx, chunk * taps, sx, sw)?;
    let xzp = match xzp {
        Some(z) => Some(shaped(cx, z, 1, vec![], "x_zero_point")?),
        None => None,
    };
    let wzp = match wzp {
        Some(z) => {
            let mut dims = vec![1; ws.len()];
            dims[0] = ws[0];
            Some(shaped(cx, z, ws[0], dims, "w_zero_point")?)
        }
        None => None,
    };
    let xc = centred(cx, x, xzp)?;
    let wc = centred(cx, w, wzp)?;
    let channels = |cx: &mut Cx, v: ValueId, lo: usize, hi: usize| -> R {
        let shape = cx.shape(v);
        let mut starts = vec![0i64; shape.len()];
        let mut ends: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        starts[1] = lo as i64;
        ends[1] = hi as i64;
        cx.add1(Op::Slice { starts, ends, steps: vec![1; shape.len()] }, vec![v])
    };
    let mut acc: Option<ValueId> = None;
    for lo in (0..ws[1]).step_by(chunk.max(1)) {
        let hi = (lo + chunk).min(ws[1]);
        let (xp, wp) = if chunk == ws[1] { (xc, wc) } else { (channels(cx, xc, lo, hi)?, channels(cx, wc, lo, hi)?) };
        let conv = Conv { window: win.clone(), group, layer: cx.layer(), algo: ConvAlgo::Exact };
        let c = cx.add1(Op::Conv(conv), vec![xp, wp])?;
        let c = cast(cx, c, DType::I32)?;
        acc = Some(match acc {
            None => c,
            Some(s) => bin(cx, BinaryOp::Add, s, c)?,
        });
    }
    acc.ok_or_else(|| cx.err("empty reduction"))
}

/// The zero point of `x` when `x ⊛ w` can run on the integer conv kernel
/// (`QConv` accumulating exactly in i32): a u8 `x` of rank `x_rank` with a
/// constant per-tensor u8 zero point (or none), a constant i8 `w` of rank
/// `w_rank` whose zero points are all zero (or absent).
fn integer_kernel_fits(
    cx: &Cx,
    (x, xzp, x_rank): (ValueId, Option<ValueId>, usize),
    (w, wzp, w_rank): (ValueId, Option<ValueId>, usize),
) -> Option<u8> {
    let (xt, wt) = (cx.ty(x), cx.ty(w));
    if xt.rank() != x_rank || xt.dtype != DType::U8 || wt.rank() != w_rank || wt.dtype != DType::I8 {
        return None;
    }
    cx.g.const_of(w)?;
    if let Some(z) = wzp {
        let t = cx.g.const_of(z)?;
        if t.dtype() != DType::I8 || t.to_i64_vec().iter().any(|&v| v != 0) {
            return None;
        }
    }
    match xzp {
        None => Some(0),
        Some(z) => {
            let t = cx.g.const_of(z)?;
            match t.to_i64_vec().as_slice() {
                [v] if t.dtype() == DType::U8 => u8::try_from(*v).ok(),
                _ => None,
            }
        }
    }
}

/// `Σ (x − zp)·w` on the integer kernel: the input padded with its zero
/// point where the conv pads, then an accumulating `QConv` (exact i32).
fn integer_conv(cx: &mut Cx, x: ValueId, zp: u8, w: ValueId, win: Window, group: usize) -> R {
    let n = win.rank();
    let x = if win.pads.iter().any(|&p| p != 0) {
        let mut pads = vec![0; 2 * (n + 2)];
        for i in 0..n {
            pads[2 + i] = win.pads[i];
            pads[n + 4 + i] = win.pads[n + i];
        }
        cx.add1(Op::Pad { pads, mode: PadMode::Constant, value: F32::new(f32::from(zp)) }, vec![x])?
    } else {
        x
    };
    let window = Window { pads: vec![0; 2 * n], ..win };
    let conv = Conv { window, group, layer: cx.layer(), algo: ConvAlgo::Direct };
    let q = QConv { conv, epi: Epilogue::default(), x_scale: F32::new(1.0), x_zp: zp, out: QOut::Acc, res_grid: None };
    cx.add1(Op::QConv(q), vec![x, w])
}

fn conv_integer(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    Ok(vec![conv_centred(cx, x, cx.opt_input(2), w, cx.opt_input(3))?])
}

/// `a_scale * b_scale / y_scale` in the scales' type (shaped operands).
fn multiplier(cx: &mut Cx, sa: ValueId, sb: ValueId, sy: ValueId) -> R {
    let d = cx.ty(sa).dtype;
    if !matches!(d, DType::F32 | DType::F16 | DType::BF16) || cx.ty(sb).dtype != d || cx.ty(sy).dtype != d {
        return Err(cx.err(format!(
            "scales must share one float type, got {}, {}, {}",
            d,
            cx.ty(sb).dtype,
            cx.ty(sy).dtype
        )));
    }
    let p = bin(cx, BinaryOp::Mul, sa, sb)?;
    bin(cx, BinaryOp::Div, p, sy)
}

/// `clamp(round_half_even(acc * mult + y_zp))` to `out`, in f64.
fn requantize(cx: &mut Cx, acc: ValueId, mult: ValueId, yzp: Option<ValueId>, out: DType) -> R {
    let (lo, hi) = out.int_range().ok_or_else(|| cx.err(format!("output type {out} is not an integer type")))?;
    let a = cast(cx, acc, DType::F64)?;
    let m = cast(cx, mult, DType::F64)?;
    let mut v = bin(cx, BinaryOp::Mul, a, m)?;
    if let Some(z) = yzp {
        let zf = cast(cx, z, DType::F64)?;
        v = bin(cx, BinaryOp::Add, v, zf)?;
    }
    let lo_c = scalar(cx, DType::F64, lo as f64)?;
    let hi_c = scalar(cx, DType::F64, hi as f64)?;
    let v = bin(cx, BinaryOp::Max, v, lo_c)?;
    let v = bin(cx, BinaryOp::Min, v, hi_c)?;
    // round half to even in f64 (|v| <= 2^16 here)
    let magic = scalar(cx, DType::F64, 1.5 * 2f64.powi(52))?;
    let v = bin(cx, BinaryOp::Add, v, magic)?;
    let v = bin(cx, BinaryOp::Sub, v, magic)?;
    // integral and in range: exact in f32, then the integer cast
    let v = cast(cx, v, DType::F32)?;
    cast(cx, v, out)
}

/// The requantisation as one [`Op::Requantize`] pass where the operands
/// allow it — a u8/i8 output, a constant output zero point, multipliers
/// (and the i32 bias), shaped to broadcast against `acc`, that are one
/// value or vary along `acc`'s axis `axis` only — else `None`. The same f64 steps as [`requantize`] (with the
/// bias added to the accumulator first), so the same bits.
fn requantize_fused(
    cx: &mut Cx,
    acc: ValueId,
    bias: Option<ValueId>,
    mult: ValueId,
    axis: usize,
    yzp: Option<ValueId>,
    out: DType,
) -> Option<R> {
    if !matches!(out, DType::U8 | DType::I8) {
        return None;
    }
    let zp = match yzp {
        None => 0,
        Some(z) => match cx.g.const_of(z)?.to_i64_vec().as_slice() {
            [v] => i32::try_from(*v).ok()?,
            _ => return None,
        },
    };
    let rank = cx.shape(acc).len();
    let c = cx.shape(acc).get(axis).copied()?;
    // one value, or one per entry of `axis` *on that axis* (aligned to
    // `acc`'s trailing dimensions, as broadcasting reads it): a per-row
    // multiplier of a matmul is not per column, even when M == N
    let per = |cx: &Cx, v: ValueId| -> Option<Vec<usize>> {
        let s = cx.shape(v);
        if s.iter().product::<usize>() == 1 {
            return Some(vec![]);
        }
        let lead = rank.checked_sub(s.len())?;
        let on_axis = s.iter().enumerate().all(|(i, &d)| d == 1 || lead + i == axis);
        (on_axis && s.iter().product::<usize>() == c).then(|| vec![c])
    };
    let mshape = per(cx, mult)?;
    if let Some(b) = bias {
        if per(cx, b)? != mshape {
            return None;
        }
    }
    Some((|| {
        let m = reshape(cx, mult, mshape.clone())?;
        let m = if cx.ty(m).dtype == DType::F32 { m } else { cast(cx, m, DType::F32)? };
        let mut ins = vec![acc, m];
        if let Some(b) = bias {
            ins.push(reshape(cx, b, mshape.clone())?);
        }
        cx.add1(Op::Requantize { axis, zp, out }, ins)
    })())
}

fn qlinear_matmul(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let (a, sa, azp) = (cx.input(0)?, cx.input(1)?, cx.opt_input(2));
    let (b, sb, bzp) = (cx.input(3)?, cx.input(4)?, cx.opt_input(5));
    let (sy, yzp) = (cx.input(6)?, cx.opt_input(7));
    let out = yzp.map_or_else(|| cx.ty(a).dtype, |z| cx.ty(z).dtype);
    let c = int_product(cx, a, azp, b, bzp)?;
    let (m, n) = {
        let (s_a, s_b) = (cx.shape(a), cx.shape(b));
        (if s_a.len() >= 2 { s_a[s_a.len() - 2] } else { 1 }, s_b[s_b.len() - 1])
    };
    let sa = shaped(cx, sa, m, vec![m, 1], "a_scale")?;
    let sb = shaped(cx, sb, n, vec![n], "b_scale")?;
    let sy = shaped(cx, sy, 1, vec![], "y_scale")?;
    let mult = multiplier(cx, sa, sb, sy)?;
    let yzp = match yzp {
        Some(z) => Some(shaped(cx, z, 1, vec![], "y_zero_point")?),
        None => None,
    };
    let last = cx.shape(c).len().saturating_sub(1);
    if let Some(y) = requantize_fused(cx, c, None, mult, last, yzp, out) {
        return Ok(vec![y?]);
    }
    Ok(vec![requantize(cx, c, mult, yzp, out)?])
}

fn qlinear_conv(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let (x, sx, xzp) = (cx.input(0)?, cx.input(1)?, cx.opt_input(2));
    let (w, sw, wzp) = (cx.input(3)?, cx.input(4)?, cx.opt_input(5));
    let (sy, yzp) = (cx.input(6)?, cx.opt_input(7));
    let bias = cx.opt_input(8);
    let out = yzp.map_or_else(|| cx.ty(x).dtype, |z| cx.ty(z).dtype);
    if let Some(b) = bias.filter(|&b| cx.ty(b).dtype != DType::I32) {
        return Err(cx.err(format!("bias must be int32, got {}", cx.ty(b).dtype)));
    }
    let c = conv_centred(cx, x, xzp, w, wzp)?;
    let rank = cx.shape(c).len();
    let oc = cx.shape(w)[0];
    // per output channel: along axis 1
    let mut dims = vec![1; rank];
    dims[1] = oc;
    let sx = shaped(cx, sx, 1, vec![], "x_scale")?;
    let sw = shaped(cx, sw, oc, dims.clone(), "w_scale")?;
    let sy = shaped(cx, sy, 1, vec![], "y_scale")?;
    let mult = multiplier(cx, sx, sw, sy)?;
    let yzp = match yzp {
        Some(z) => Some(shaped(cx, z, 1, vec![], "y_zero_point")?),
        None => None,
    };
    let bias = match bias {
        Some(b) => Some(shaped(cx, b, oc, dims, "B")?),
        None => None,
    };
    if let Some(y) = requantize_fused(cx, c, bias, mult, 1, yzp, out) {
        return Ok(vec![y?]);
    }
    // the accumulator with the int32 bias, exactly, in f64
    let acc = match bias {
        Some(bb) => {
            let cf = cast(cx, c, DType::F64)?;
            let bf = cast(cx, bb, DType::F64)?;
            bin(cx, BinaryOp::Add, cf, bf)?
        }
        None => c,
    };
    Ok(vec![requantize(cx, acc, mult, yzp, out)?])
}

/// ONNX Runtime's QGemm (`com.microsoft`): `alpha · a_scale·b_scale ·
/// ((A − a_zp)·(B − b_zp) + C)` with `C` an int32 bias joining the int32
/// sum (ONNX Runtime's kernel adds it to the accumulator and scales both),
/// then quantised to `(y_scale, y_zero_point)` when `y_scale` is given,
/// else f32. `A` and `B` are 2-D (`transA`, `transB` as Gemm's); `b_scale` one
/// value or one per column. The int32 sum is [`int_product`]'s (the
/// integer kernel where `B` is a constant i8 with zero zero points); the
/// requantisation is QLinearMatMul's with the multiplier `alpha ·
/// a_scale·b_scale / y_scale`.
fn qgemm(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let (a, sa, azp) = (cx.input(0)?, cx.input(1)?, cx.opt_input(2));
    let (b, sb, bzp) = (cx.input(3)?, cx.input(4)?, cx.opt_input(5));
    let (c, sy, yzp) = (cx.opt_input(6), cx.opt_input(7), cx.opt_input(8));
    let at = cx.attrs();
    let (alpha, trans_a, trans_b) = (at.float("alpha", 1.0)?, at.bool("transA", false)?, at.bool("transB", false)?);
    if cx.shape(a).len() != 2 || cx.shape(b).len() != 2 {
        return Err(cx.err(format!("A {:?} and B {:?} must be 2-D", cx.shape(a), cx.shape(b))));
    }
    let a = if trans_a { cx.add1(Op::Transpose { perm: vec![1, 0] }, vec![a])? } else { a };
    let b = match (trans_b, cx.g.const_of(b).cloned()) {
        (false, _) => b,
        // a constant B transposed here, so the integer kernel sees a constant
        (true, Some(t)) => {
            let (n, k) = (t.shape()[0], t.shape()[1]);
            let v = t.to_i64_vec();
            let bt: Vec<i64> = (0..k * n).map(|i| v[(i % n) * k + i / n]).collect();
            let bt = kerf_ir::Tensor::from_i64_values(t.dtype(), vec![k, n], &bt).map_err(|e| cx.err(e.to_string()))?;
            cx.derived("b_t", bt)
        }
        (true, None) => cx.add1(Op::Transpose { perm: vec![1, 0] }, vec![b])?,
    };
    let n = cx.shape(b)[1];
    let mut acc = int_product(cx, a, azp, b, bzp)?;
    if let Some(c) = c {
        if cx.ty(c).dtype != DType::I32 {
            return Err(cx.err(format!("C must be int32, got {}", cx.ty(c).dtype)));
        }
        acc = bin(cx, BinaryOp::Add, acc, c)?;
    }
    let sa = shaped(cx, sa, 1, vec![], "a_scale")?;
    let sb = shaped(cx, sb, n, vec![n], "b_scale")?;
    let al = scalar(cx, cx.ty(sa).dtype, f64::from(alpha))?;
    let scale = bin(cx, BinaryOp::Mul, al, sa)?;
    let Some(sy) = sy else {
        // f32 out: the exact int32 sum times its scale, once
        let scale = bin(cx, BinaryOp::Mul, scale, sb)?;
        let accf = cast(cx, acc, DType::F32)?;
        let scale = if cx.ty(scale).dtype == DType::F32 { scale } else { cast(cx, scale, DType::F32)? };
        return Ok(vec![bin(cx, BinaryOp::Mul, accf, scale)?]);
    };
    let out = yzp.map_or(DType::U8, |z| cx.ty(z).dtype);
    let sy = shaped(cx, sy, 1, vec![], "y_scale")?;
    let mult = multiplier(cx, scale, sb, sy)?;
    let yzp = match yzp {
        Some(z) => Some(shaped(cx, z, 1, vec![], "y_zero_point")?),
        None => None,
    };
    if let Some(y) = requantize_fused(cx, acc, None, mult, 1, yzp, out) {
        return Ok(vec![y?]);
    }
    Ok(vec![requantize(cx, acc, mult, yzp, out)?])
}
