//! Ops without an IR op of their own, lowered to IR ops: IsNaN, IsInf,
//! Shrink, Trilu, EyeLike, Hardmax, LpNormalization, RMSNormalization,
//! MeanVarianceNormalization, GroupNormalization, LRN. Every lowering
//! follows the ONNX function body (or reference) of the op.

use kerf_ir::op::{Pool, ReduceKind, Window};
use kerf_ir::{BinaryOp, DType, Op, Tensor, UnaryOp, ValueId, F32};

use super::compose::reshape;
use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("IsNaN", is_nan));
    r.push(("IsInf", is_inf));
    r.push(("Shrink", shrink));
    r.push(("Trilu", trilu));
    r.push(("EyeLike", eye_like));
    r.push(("Hardmax", hardmax));
    r.push(("LpNormalization", lp_norm));
    r.push(("RMSNormalization", rms_norm));
    r.push(("MeanVarianceNormalization", mvn));
    r.push(("GroupNormalization", group_norm));
    r.push(("LRN", lrn));
    r.push(("BitCast", bit_cast));
}

/// BitCast (opset 26): each element's bits reinterpreted as `to` (same width).
fn bit_cast(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let code = cx.attrs().int_req("to")?;
    let code = i32::try_from(code).map_err(|_| cx.err(format!("unknown type {code}")))?;
    let to = crate::tensor::dtype_of(code, &cx.name)
        .map_err(|_| cx.err(format!("cannot bit-cast to element type {code}")))?;
    let from = cx.ty(x).dtype;
    if from.size() != to.size() {
        return Err(cx.err(format!("BitCast needs types of the same width, got {from} -> {to}")));
    }
    Ok(vec![cx.add1(Op::BitCast(to), vec![x])?])
}

fn scalar(cx: &mut Cx, dt: DType, what: &str, v: f64) -> Result<ValueId, ImportError> {
    let t = Tensor::from_f64_values(dt, vec![], &[v])?;
    Ok(cx.derived(what, t))
}

fn bin(cx: &mut Cx, b: BinaryOp, x: ValueId, y: ValueId) -> Result<ValueId, ImportError> {
    cx.add1(Op::Binary(b), vec![x, y])
}

fn float_in(cx: &Cx, x: ValueId) -> Result<DType, ImportError> {
    let dt = cx.ty(x).dtype;
    if !dt.is_float() {
        return Err(cx.err(format!("input must be a float tensor, got {}", cx.ty(x))));
    }
    Ok(dt)
}

fn is_nan(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let eq = bin(cx, BinaryOp::Equal, x, x)?;
    Ok(vec![cx.add1(Op::Unary(UnaryOp::Not), vec![eq])?])
}

fn is_inf(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let dt = float_in(cx, x)?;
    let a = cx.attrs();
    let (neg, pos) = (a.bool("detect_negative", true)?, a.bool("detect_positive", true)?);
    let out = match (neg, pos) {
        (true, true) => {
            let abs = cx.add1(Op::Unary(UnaryOp::Abs), vec![x])?;
            let inf = scalar(cx, dt, "inf", f64::INFINITY)?;
            bin(cx, BinaryOp::Equal, abs, inf)?
        }
        (false, true) | (true, false) => {
            let inf = scalar(cx, dt, "inf", if pos { f64::INFINITY } else { f64::NEG_INFINITY })?;
            bin(cx, BinaryOp::Equal, x, inf)?
        }
        (false, false) => {
            let t = Tensor::splat(DType::Bool, cx.shape(x), 0.0)?;
            cx.derived("none", t)
        }
    };
    Ok(vec![out])
}

/// `x < -l ? x + b : x > l ? x - b : 0`.
fn shrink(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let dt = cx.ty(x).dtype;
    let a = cx.attrs();
    let (l, b) = (a.float("lambd", 0.5)? as f64, a.float("bias", 0.0)? as f64);
    let (neg_l, pos_l) = (scalar(cx, dt, "neg_lambd", -l)?, scalar(cx, dt, "lambd", l)?);
    let bias = scalar(cx, dt, "bias", b)?;
    let zero = scalar(cx, dt, "zero", 0.0)?;
    let lo = bin(cx, BinaryOp::Less, x, neg_l)?;
    let hi = bin(cx, BinaryOp::Greater, x, pos_l)?;
    let plus = bin(cx, BinaryOp::Add, x, bias)?;
    let minus = bin(cx, BinaryOp::Sub, x, bias)?;
    let inner = cx.add1(Op::Where, vec![hi, minus, zero])?;
    Ok(vec![cx.add1(Op::Where, vec![lo, plus, inner])?])
}

/// A bool mask over the last two dims `[m, n]` keeping `keep(i, j)`.
fn mask_2d(m: usize, n: usize, keep: impl Fn(i64, i64) -> bool) -> Result<Tensor, ImportError> {
    let vals: Vec<i64> = (0..m * n).map(|p| i64::from(keep((p / n) as i64, (p % n) as i64))).collect();
    Ok(Tensor::from_i64_values(DType::Bool, vec![m, n], &vals)?)
}

/// Trilu: keep `x[.., i, j]` where `j − i >= k` (upper) or `<= k` (lower),
/// zero elsewhere. A constant `k` gives a constant mask; a `k` computed at
/// run time stays a runtime input: the mask is `(j − i) >= k` (or `<=`)
/// compared at run time against the constant `j − i` table.
fn trilu(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let xs = cx.shape(x);
    let upper = cx.attrs().bool("upper", true)?;
    let [.., m, n] = xs[..] else {
        return Err(cx.err(format!("input must have rank >= 2, got {}", cx.ty(x))));
    };
    super::fits(cx, &[m, n])?;
    let zero = scalar(cx, cx.ty(x).dtype, "zero", 0.0)?;
    let runtime_k = cx.opt_input(1).filter(|&v| cx.g.const_of(v).is_none());
    let mask = match runtime_k {
        Some(kv) => {
            let ks = cx.shape(kv);
            if ks.iter().product::<usize>() != 1 || cx.ty(kv).dtype != DType::I64 {
                return Err(cx.err(format!("k must be an int64 scalar, got {}", cx.ty(kv))));
            }
            let k = reshape(cx, kv, vec![])?;
            let diag: Vec<f64> = (0..m * n).map(|p| (p % n) as f64 - (p / n) as f64).collect();
            let d = cx.derived("offsets", Tensor::from_f64_values(DType::I64, vec![m, n], &diag)?);
            let cmp = if upper { BinaryOp::GreaterOrEqual } else { BinaryOp::LessOrEqual };
            cx.add1(Op::Binary(cmp), vec![d, k])?
        }
        None => {
            let k = match cx.konst(1, "k")? {
                Some(t) if t.numel() == 1 => t.get_i64(0),
                Some(t) => return Err(cx.err(format!("k must be a scalar, got shape {:?}", t.shape()))),
                None => 0,
            };
            let mask = mask_2d(m, n, |i, j| if upper { j - i >= k } else { j - i <= k })?;
            cx.derived("mask", mask)
        }
    };
    Ok(vec![cx.add1(Op::Where, vec![mask, x, zero])?])
}

fn eye_like(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let a = cx.attrs();
    let dt = match a.int_opt("dtype")? {
        Some(code) => {
            let code = i32::try_from(code).map_err(|_| cx.err(format!("unknown dtype {code}")))?;
            crate::tensor::dtype_of(code, &cx.name)?
        }
        None => cx.ty(x).dtype,
    };
    let k = a.int("k", 0)?;
    let [m, n] = cx.shape(x)[..] else {
        return Err(cx.err(format!("input must be 2-D, got {}", cx.ty(x))));
    };
    super::fits(cx, &[m, n])?;
    let mask = mask_2d(m, n, |i, j| j - i == k)?;
    let t = mask.cast(dt)?;
    Ok(vec![cx.derived("eye", t)])
}

/// One-hot of the first maximum along `axis` (2-D coercion before opset 13).
fn hardmax(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let dt = cx.ty(x).dtype;
    let shape = cx.shape(x);
    let rank = shape.len();
    let (input, axis, restore) = if cx.opset >= 13 {
        (x, cx.axis(cx.attrs().int("axis", -1)?, rank)?, None)
    } else {
        let axis = cx.axis(cx.attrs().int("axis", 1)?, rank)?;
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis..].iter().product();
        let flat = cx.add1(Op::Reshape { shape: vec![outer, inner] }, vec![x])?;
        (flat, 1, Some(shape.clone()))
    };
    let ishape = cx.shape(input);
    let am = cx.add1(Op::ArgMax { axis, keepdims: true, select_last: false }, vec![input])?;
    let mut iota_shape = vec![1; ishape.len()];
    iota_shape[axis] = ishape[axis];
    let iota: Vec<i64> = (0..ishape[axis] as i64).collect();
    let iota = Tensor::from_i64(iota_shape, &iota)?;
    let iota = cx.derived("iota", iota);
    let hot = bin(cx, BinaryOp::Equal, am, iota)?;
    let y = cx.add1(Op::Cast(dt), vec![hot])?;
    match restore {
        Some(s) => Ok(vec![cx.add1(Op::Reshape { shape: s }, vec![y])?]),
        None => Ok(vec![y]),
    }
}

fn lp_norm(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let a = cx.attrs();
    let axis = cx.axis(a.int("axis", -1)?, cx.ty(x).rank())?;
    let kind = match a.int("p", 2)? {
        1 => ReduceKind::L1,
        2 => ReduceKind::L2,
        p => return Err(cx.err(format!("p must be 1 or 2, got {p}"))),
    };
    let norm = cx.add1(Op::Reduce { kind, axes: vec![axis], keepdims: true }, vec![x])?;
    let q = bin(cx, BinaryOp::Div, x, norm)?;
    // A zero norm gives 0, not NaN (as the ONNX reference).
    let zero = scalar(cx, cx.ty(x).dtype, "zero", 0.0)?;
    let is_zero = bin(cx, BinaryOp::Equal, norm, zero)?;
    Ok(vec![cx.add1(Op::Where, vec![is_zero, zero, q])?])
}

/// `x / sqrt(mean(x^2 over axis..) + eps) * scale`.
fn rms_norm(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let scale = cx.input(1)?;
    let dt = float_in(cx, x)?;
    let rank = cx.ty(x).rank();
    let a = cx.attrs();
    let axis = cx.axis(a.int("axis", -1)?, rank)?;
    let eps = a.float("epsilon", 1e-5)? as f64;
    let sq = bin(cx, BinaryOp::Mul, x, x)?;
    let ms = cx.add1(Op::Reduce { kind: ReduceKind::Mean, axes: (axis..rank).collect(), keepdims: true }, vec![sq])?;
    let e = scalar(cx, dt, "epsilon", eps)?;
    let ms = bin(cx, BinaryOp::Add, ms, e)?;
    let rms = cx.add1(Op::Unary(UnaryOp::Sqrt), vec![ms])?;
    let normed = bin(cx, BinaryOp::Div, x, rms)?;
    Ok(vec![bin(cx, BinaryOp::Mul, normed, scale)?])
}

/// The ONNX function body: `(x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9)`.
fn mvn(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let dt = float_in(cx, x)?;
    let rank = cx.ty(x).rank();
    let axes = cx.attrs().ints_opt("axes")?.unwrap_or_else(|| vec![0, 2, 3]);
    let axes = cx.axes(&axes, rank)?;
    let mean = Op::Reduce { kind: ReduceKind::Mean, axes, keepdims: true };
    let ex = cx.add1(mean.clone(), vec![x])?;
    let ex2 = bin(cx, BinaryOp::Mul, ex, ex)?;
    let xsq = bin(cx, BinaryOp::Mul, x, x)?;
    let exsq = cx.add1(mean, vec![xsq])?;
    let var = bin(cx, BinaryOp::Sub, exsq, ex2)?;
    let std = cx.add1(Op::Unary(UnaryOp::Sqrt), vec![var])?;
    let e = scalar(cx, dt, "epsilon", 1e-9)?;
    let std = bin(cx, BinaryOp::Add, std, e)?;
    let centred = bin(cx, BinaryOp::Sub, x, ex)?;
    Ok(vec![bin(cx, BinaryOp::Div, centred, std)?])
}

/// Reshape to `[N, G, rest]`, InstanceNorm with unit scale, reshape back,
/// then the per-channel (opset 21) or per-group (opset 18) affine.
fn group_norm(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let (scale, bias) = (cx.input(1)?, cx.input(2)?);
    let dt = float_in(cx, x)?;
    let xs = cx.shape(x);
    let a = cx.attrs();
    let groups = usize::try_from(a.int_req("num_groups")?).ok().filter(|&g| g > 0);
    let groups = groups.ok_or_else(|| cx.err("num_groups must be positive"))?;
    let eps = a.float("epsilon", 1e-5)?;
    if xs.len() < 3 || !xs[1].is_multiple_of(groups) {
        return Err(cx.err(format!("input {} needs rank >= 3 and channels divisible by {groups}", cx.ty(x))));
    }
    let (n, c) = (xs[0], xs[1]);
    let rest: usize = xs[2..].iter().product();
    let grouped = cx.add1(Op::Reshape { shape: vec![n, groups, c / groups * rest] }, vec![x])?;
    let ones = Tensor::splat(dt, vec![groups], 1.0)?;
    let ones = cx.derived("ones", ones);
    let zeros = Tensor::splat(dt, vec![groups], 0.0)?;
    let zeros = cx.derived("zeros", zeros);
    let normed = cx.add1(Op::InstanceNorm { epsilon: F32::new(eps) }, vec![grouped, ones, zeros])?;
    let normed = cx.add1(Op::Reshape { shape: xs.clone() }, vec![normed])?;
    // Per-channel parameters shaped [C, 1, ...] to broadcast over the spatial dims.
    let mut bshape = vec![c];
    bshape.extend(std::iter::repeat_n(1, xs.len() - 2));
    let per_channel = |cx: &mut Cx, p: ValueId| -> Result<ValueId, ImportError> {
        let ps = cx.shape(p);
        if ps == [c] {
            cx.add1(Op::Reshape { shape: bshape.clone() }, vec![p])
        } else if ps == [groups] {
            let g = cx.add1(Op::Reshape { shape: vec![groups, 1] }, vec![p])?;
            let g = cx.add1(Op::Expand { shape: vec![groups, c / groups] }, vec![g])?;
            cx.add1(Op::Reshape { shape: bshape.clone() }, vec![g])
        } else {
            Err(cx.err(format!("scale/bias {} must be [{c}] or [{groups}]", cx.ty(p))))
        }
    };
    let s = per_channel(cx, scale)?;
    let b = per_channel(cx, bias)?;
    let y = bin(cx, BinaryOp::Mul, normed, s)?;
    Ok(vec![bin(cx, BinaryOp::Add, y, b)?])
}

/// Local response normalisation across channels:
/// `x / (bias + alpha / size * sum_{window} x^2) ^ beta`, the window sum
/// taken by a zero-padded average pool over the channel axis.
fn lrn(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let dt = float_in(cx, x)?;
    let xs = cx.shape(x);
    let a = cx.attrs();
    let size = usize::try_from(a.int_req("size")?).ok().filter(|&s| s > 0);
    let size = size.ok_or_else(|| cx.err("size must be positive"))?;
    let (alpha, beta, bias) = (a.float("alpha", 1e-4)?, a.float("beta", 0.75)?, a.float("bias", 1.0)?);
    if xs.len() < 3 {
        return Err(cx.err(format!("input {} needs rank >= 3", cx.ty(x))));
    }
    let (n, c) = (xs[0], xs[1]);
    let rest: usize = xs[2..].iter().product();
    let sq = bin(cx, BinaryOp::Mul, x, x)?;
    let sq = cx.add1(Op::Reshape { shape: vec![n, 1, c, rest] }, vec![sq])?;
    let (lo, hi) = ((size - 1) / 2, (size - 1).div_ceil(2));
    let window = Window { kernel: vec![size, 1], strides: vec![1, 1], dilations: vec![1, 1], pads: vec![lo, 0, hi, 0] };
    let avg = cx.add1(Op::AveragePool(Pool { window, ceil_mode: false, count_include_pad: true }), vec![sq])?;
    let avg = cx.add1(Op::Reshape { shape: xs.clone() }, vec![avg])?;
    let al = scalar(cx, dt, "alpha", alpha as f64)?;
    let scaled = bin(cx, BinaryOp::Mul, avg, al)?;
    let b = scalar(cx, dt, "bias", bias as f64)?;
    let base = bin(cx, BinaryOp::Add, scaled, b)?;
    let be = scalar(cx, dt, "beta", beta as f64)?;
    let den = bin(cx, BinaryOp::Pow, base, be)?;
    Ok(vec![bin(cx, BinaryOp::Div, x, den)?])
}
