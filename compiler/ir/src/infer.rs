//! Shape and dtype inference. Every op's output types are a function of its
//! attributes and input types; errors say what was expected.

use crate::op::*;
use crate::{DType, TensorType};

type R = Result<Vec<TensorType>, String>;

fn one(dtype: DType, shape: Vec<usize>) -> R {
    Ok(vec![TensorType::new(dtype, shape)])
}

fn arity(ins: &[&TensorType], lo: usize, hi: usize) -> Result<(), String> {
    if ins.len() < lo || ins.len() > hi {
        if lo == hi {
            return Err(format!("expected {lo} inputs, got {}", ins.len()));
        }
        return Err(format!("expected {lo} to {hi} inputs, got {}", ins.len()));
    }
    Ok(())
}

fn same_dtype(ins: &[&TensorType]) -> Result<DType, String> {
    let d = ins[0].dtype;
    for (i, t) in ins.iter().enumerate().skip(1) {
        if t.dtype != d {
            return Err(format!("input {i} has dtype {} but input 0 has {}", t.dtype, d));
        }
    }
    Ok(d)
}

fn float_input(t: &TensorType, what: &str) -> Result<(), String> {
    if t.dtype.is_float() {
        Ok(())
    } else {
        Err(format!("{what} must be a float tensor, got {t}"))
    }
}

/// Narrow dtypes (float8, float4, 4/2-bit ints) are storage types: only
/// casts and pure data movement (which moves whole bytes, one per element)
/// take them.
fn narrow_inputs(op: &Op, ins: &[&TensorType]) -> Result<(), String> {
    let movement = matches!(
        op,
        Op::Cast(_)
            | Op::CastF8 { .. }
            | Op::Identity
            | Op::Dropout
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Concat { .. }
            | Op::Split { .. }
            | Op::Slice { .. }
            | Op::Gather { .. }
            | Op::Expand { .. }
            | Op::Tile { .. }
    );
    match ins.iter().find(|t| t.dtype.is_narrow()) {
        Some(t) if !movement => {
            Err(format!("{} does not take {} tensors (cast them to a wider type first)", op.name(), t.dtype))
        }
        _ => Ok(()),
    }
}

/// Numpy-style broadcast of shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
        let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
        out[i] = if da == db {
            da
        } else if da == 1 {
            db
        } else if db == 1 {
            da
        } else {
            return Err(format!("shapes {a:?} and {b:?} do not broadcast"));
        };
    }
    Ok(out)
}

/// Output length of one windowed axis (conv/pool), or an error if the window
/// does not fit.
pub fn window_out(
    input: usize,
    k: usize,
    stride: usize,
    dil: usize,
    pb: usize,
    pe: usize,
    ceil: bool,
) -> Result<usize, String> {
    let too_large = || format!("window (kernel {k}, dilation {dil}) or padded input ({input} + {pb} + {pe}) too large");
    let eff =
        k.checked_sub(1).and_then(|k1| dil.checked_mul(k1)).and_then(|e| e.checked_add(1)).ok_or_else(too_large)?;
    let padded = input.checked_add(pb).and_then(|p| p.checked_add(pe)).ok_or_else(too_large)?;
    // (past 2^40 the kernels' element offsets, multiplied out, leave i64)
    if padded.max(eff) > MAX_ELEMENTS {
        return Err(too_large());
    }
    if padded < eff {
        return Err(format!("window of extent {eff} does not fit padded input of {padded}"));
    }
    if stride == 0 {
        return Err("stride 0".to_string());
    }
    let span = padded - eff;
    let mut out = if ceil { span.div_ceil(stride) + 1 } else { span / stride + 1 };
    // ONNX/PyTorch rule: the last window must start inside the input or left padding.
    if ceil && (out - 1).checked_mul(stride).is_none_or(|s| s >= input + pb) {
        out -= 1;
    }
    Ok(out)
}

fn spatial(x: &TensorType, w: &Window, ceil: bool) -> Result<Vec<usize>, String> {
    let r = w.rank();
    if x.rank() != r + 2 {
        return Err(format!("input {x} must have rank {} for a {r}-D window", r + 2));
    }
    (0..r)
        .map(|i| {
            window_out(x.shape[2 + i], w.kernel[i], w.strides[i], w.dilations[i], w.pad_begin(i), w.pad_end(i), ceil)
        })
        .collect()
}

/// Most elements of one value: 2^40 (4 TiB of f32), far past any device
/// kerf targets, and small enough that byte sizes and offsets stay within
/// `usize` and `i64` arithmetic everywhere.
pub const MAX_ELEMENTS: usize = 1 << 40;

/// The output types of `op` applied to inputs of types `ins`, or a message
/// saying what was expected; no output has more than [`MAX_ELEMENTS`]
/// elements (an attribute such as a stride of 2^62 gives an error here,
/// not a shape whose size overflows later).
pub fn infer(op: &Op, ins: &[&TensorType]) -> R {
    let outs = infer_types(op, ins)?;
    for t in &outs {
        let n = t.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if n.is_none_or(|n| n > MAX_ELEMENTS) {
            return Err(format!("output {t} has more than 2^40 elements"));
        }
    }
    Ok(outs)
}

fn infer_types(op: &Op, ins: &[&TensorType]) -> R {
    narrow_inputs(op, ins)?;
    match op {
        Op::Unary(u) => {
            arity(ins, 1, 1)?;
            let t = ins[0];
            match u {
                UnaryOp::Not => {
                    if t.dtype != DType::Bool {
                        return Err(format!("Not needs bool input, got {t}"));
                    }
                }
                UnaryOp::BitwiseNot => {
                    if !t.dtype.is_int() {
                        return Err(format!("BitwiseNot needs an integer input, got {t}"));
                    }
                }
                u if u.accepts_int() => {
                    if t.dtype == DType::Bool {
                        return Err(format!("input must be numeric, got {t}"));
                    }
                }
                _ => float_input(t, "input")?,
            }
            one(t.dtype, t.shape.clone())
        }
        Op::Binary(b) => {
            arity(ins, 2, 2)?;
            let shape = broadcast(&ins[0].shape, &ins[1].shape)?;
            if *b == BinaryOp::Pow {
                // Pow allows a different exponent type; the result has the base's type.
                return one(ins[0].dtype, shape);
            }
            let d = same_dtype(ins)?;
            match b {
                BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => {
                    if d != DType::Bool {
                        return Err(format!("{} needs bool inputs, got {d}", b.name()));
                    }
                    one(DType::Bool, shape)
                }
                b if b.is_bitwise() => {
                    if !d.is_int() {
                        return Err(format!("{} needs integer inputs, got {d}", b.name()));
                    }
                    one(d, shape)
                }
                b if b.yields_bool() => one(DType::Bool, shape),
                _ => one(d, shape),
            }
        }
        Op::Chain(steps) => crate::op::chain::infer(steps, ins),
        Op::Where => {
            arity(ins, 3, 3)?;
            if ins[0].dtype != DType::Bool {
                return Err(format!("condition must be bool, got {}", ins[0]));
            }
            if ins[1].dtype != ins[2].dtype {
                return Err(format!("branches differ in dtype: {} vs {}", ins[1], ins[2]));
            }
            let s = broadcast(&broadcast(&ins[0].shape, &ins[1].shape)?, &ins[2].shape)?;
            one(ins[1].dtype, s)
        }
        Op::BitCast(to) => {
            arity(ins, 1, 1)?;
            if to.size() != ins[0].dtype.size() {
                return Err(format!("BitCast needs a type of the same width, {} -> {to}", ins[0].dtype));
            }
            one(*to, ins[0].shape.clone())
        }
        Op::Quantize { scale, pads, .. } => {
            arity(ins, 1, 1)?;
            let x = ins[0];
            let r = x.shape.len();
            if x.dtype != DType::F32 {
                return Err(format!("Quantize takes f32, got {x}"));
            }
            if !(scale.get() > 0.0 && scale.get().is_finite()) {
                return Err(format!("Quantize's scale must be positive and finite, got {}", scale.get()));
            }
            if pads.len() != 2 * r || pads.iter().enumerate().any(|(i, &p)| p != 0 && i % r.max(1) + 2 < r) {
                return Err(format!("Quantize pads the last two axes of {x}: 2 x {r} entries, got {pads:?}"));
            }
            one(DType::U8, (0..r).map(|a| x.shape[a] + pads[a] + pads[a + r]).collect())
        }
        Op::Requantize { axis, out, .. } => {
            arity(ins, 2, 3)?;
            let acc = ins[0];
            if acc.dtype != DType::I32 || ins[1].dtype != DType::F32 {
                return Err(format!("Requantize takes an i32 accumulator and f32 multipliers, got {acc}, {}", ins[1]));
            }
            if !matches!(out, DType::U8 | DType::I8) {
                return Err(format!("Requantize outputs u8 or i8, not {out}"));
            }
            let c = acc.shape.get(*axis).copied().unwrap_or(1);
            for t in &ins[1..] {
                if !(t.shape.is_empty() || t.shape == [c]) || (t.dtype != DType::F32 && t.dtype != DType::I32) {
                    return Err(format!(
                        "Requantize's multipliers and bias must be scalars or [{c}] (axis {axis}), got {t}"
                    ));
                }
            }
            if ins.len() == 3 && (ins[2].dtype != DType::I32 || ins[2].shape != ins[1].shape) {
                return Err(format!("Requantize's bias must be i32 shaped like the multipliers, got {}", ins[2]));
            }
            one(*out, acc.shape.clone())
        }
        Op::Cast(to) | Op::CastF8 { to, .. } => {
            arity(ins, 1, 1)?;
            one(*to, ins[0].shape.clone())
        }
        Op::Identity | Op::Dropout => {
            arity(ins, 1, 1)?;
            Ok(vec![ins[0].clone()])
        }
        Op::ConvTransposeFused(c, e) => {
            if e.residual {
                return Err("a ConvTransposeFused has no residual".to_string());
            }
            arity(ins, 2, 3)?;
            infer(&Op::ConvTranspose(c.clone()), ins)
        }
        Op::ConvFused(c, e) => {
            arity(ins, 3 + usize::from(e.residual), 3 + usize::from(e.residual))?;
            let out = infer(&Op::Conv(c.clone()), &ins[..3])?;
            if e.residual && out.first().is_some_and(|o| o != ins[3]) {
                return Err(format!("residual {} must have the output's type {}", ins[3], out[0]));
            }
            Ok(out)
        }
        Op::QConv(q) => {
            let wd = &q.conv.window;
            if wd.rank() != 2 || q.conv.algo != ConvAlgo::Direct {
                return Err("QConv is a direct 2-D conv".to_string());
            }
            let depthwise = ins.get(1).is_some_and(|w| q.conv.is_depthwise(&w.shape))
                && ins.first().is_some_and(|x| x.shape.get(1) == Some(&q.conv.group));
            if wd.pads.iter().any(|&p| p != 0) && !(depthwise && q.out != QOut::Acc) {
                return Err("only a real-valued depthwise QConv (one channel per group) has padding".to_string());
            }
            if q.res_grid.is_some() && !q.epi.residual {
                return Err("a QConv without a residual has no residual grid".to_string());
            }
            if q.out == QOut::Acc {
                arity(ins, 2, 2)?;
                if ins[0].dtype != DType::U8 || ins[1].dtype != DType::I8 || q.epi != Epilogue::default() {
                    return Err(format!(
                        "an accumulating QConv takes u8 x and i8 w, no epilogue; got {}, {}",
                        ins[0], ins[1]
                    ));
                }
                let (xf, wf) = (
                    TensorType::new(DType::F32, ins[0].shape.clone()),
                    TensorType::new(DType::F32, ins[1].shape.clone()),
                );
                let out = infer(&Op::Conv(q.conv.clone()), &[&xf, &wf])?;
                return Ok(out.into_iter().map(|o| TensorType::new(DType::I32, o.shape)).collect());
            }
            let n_in = 4 + usize::from(q.epi.residual);
            arity(ins, n_in, n_in)?;
            let (x, w, ws, b) = (ins[0], ins[1], ins[2], ins[3]);
            if x.dtype != DType::U8 || w.dtype != DType::I8 || ws.dtype != DType::F32 || b.dtype != DType::F32 {
                return Err(format!("QConv takes u8 x, i8 w, f32 w_scale and b, got {x}, {w}, {ws}, {b}"));
            }
            let m = w.shape.first().copied().unwrap_or(0);
            if ws.shape != [m] || b.shape != [m] {
                return Err(format!("w_scale {ws} and bias {b} must be [{m}]"));
            }
            let (xf, wf) = (TensorType::new(DType::F32, x.shape.clone()), TensorType::new(DType::F32, w.shape.clone()));
            let out = infer(&Op::Conv(q.conv.clone()), &[&xf, &wf])?;
            match (q.epi.residual, q.res_grid) {
                (true, Some(_)) if depthwise => {
                    return Err("a depthwise QConv takes an f32 residual, not a u8 one".to_string())
                }
                (true, g) => {
                    let dtype = if g.is_some() { DType::U8 } else { DType::F32 };
                    if out.first().is_some_and(|o| o.shape != ins[4].shape || ins[4].dtype != dtype) {
                        return Err(format!("residual {} must be {dtype}{:?}", ins[4], out[0].shape));
                    }
                }
                (false, _) => {}
            }
            match q.out {
                QOut::Quant { scale, .. } if QOut::factor(scale.get()).is_none() => {
                    Err(format!("QConv's output step {} has no finite normal reciprocal", scale.get()))
                }
                QOut::Quant { .. } => Ok(out.into_iter().map(|o| TensorType::new(DType::U8, o.shape)).collect()),
                _ => Ok(out),
            }
        }
        Op::MatMulFused(l, e) => {
            let n_in = 3 + usize::from(e.residual);
            arity(ins, n_in, n_in)?;
            if ins[0].rank() < 2 || ins[1].rank() < 2 {
                return Err(format!("MatMulFused needs inputs of rank >= 2, got {} and {}", ins[0], ins[1]));
            }
            let out = infer(&Op::MatMul(l.clone()), &ins[..2])?;
            let o = &out[0];
            let (bias, n) = (ins[2], o.shape[o.rank() - 1]);
            let leading_ones = bias.shape[..bias.rank().saturating_sub(1)].iter().all(|&d| d == 1);
            if bias.dtype != o.dtype || bias.shape.last() != Some(&n) || !leading_ones || bias.rank() > o.rank() {
                return Err(format!("bias {bias} must hold the {n} output columns ([.., 1, {n}]) of {o}"));
            }
            if e.residual && o != ins[3] {
                return Err(format!("residual {} must have the output's type {o}", ins[3]));
            }
            Ok(out)
        }
        Op::GemmFused(g, e) => {
            let n_in = 3 + usize::from(e.residual);
            arity(ins, n_in, n_in)?;
            let out = infer(&Op::Gemm(g.clone()), &ins[..3])?;
            if e.residual && out.first().is_some_and(|o| o != ins[3]) {
                return Err(format!("residual {} must have the output's type {}", ins[3], out[0]));
            }
            Ok(out)
        }
        Op::Conv(c) => {
            arity(ins, 2, 3)?;
            let (x, w) = (ins[0], ins[1]);
            float_input(x, "input")?;
            same_dtype(ins)?;
            let r = c.window.rank();
            if w.rank() != r + 2 {
                return Err(format!("weight {w} must have rank {}", r + 2));
            }
            if c.group == 0 || x.rank() < 2 || x.shape[1] != w.shape[1] * c.group || w.shape[0] % c.group != 0 {
                return Err(format!(
                    "input channels {} do not match weight {} with group {}",
                    x.shape.get(1).copied().unwrap_or(0),
                    w,
                    c.group
                ));
            }
            if w.shape[2..] != c.window.kernel[..] {
                return Err(format!("weight {w} does not match kernel {:?}", c.window.kernel));
            }
            if let Some(b) = ins.get(2) {
                if b.shape != [w.shape[0]] {
                    return Err(format!("bias {b} must be [{}]", w.shape[0]));
                }
            }
            let mut s = vec![x.shape[0], w.shape[0]];
            s.extend(spatial(x, &c.window, false)?);
            one(x.dtype, s)
        }
        Op::ConvTranspose(c) => {
            arity(ins, 2, 3)?;
            let (x, w) = (ins[0], ins[1]);
            float_input(x, "input")?;
            same_dtype(ins)?;
            let r = c.window.rank();
            if x.rank() != r + 2 || w.rank() != r + 2 || c.output_padding.len() != r {
                return Err(format!("input {x} / weight {w} do not match a {r}-D transposed conv"));
            }
            if x.shape[1] != w.shape[0] || c.group == 0 || w.shape[0] % c.group != 0 {
                return Err(format!("input channels {} do not match weight {w}", x.shape[1]));
            }
            let co = w.shape[1] * c.group;
            if let Some(b) = ins.get(2) {
                if b.shape != [co] {
                    return Err(format!("bias {b} must be [{co}]"));
                }
            }
            let mut s = vec![x.shape[0], co];
            for i in 0..r {
                let wd = &c.window;
                // Checked: the sizes and attributes come from the user's file.
                let (xd, k) = (x.shape[2 + i], wd.kernel[i]);
                if xd == 0 || k == 0 {
                    return Err(format!(
                        "spatial axis {i} of the {} is empty",
                        if xd == 0 { "input" } else { "kernel" }
                    ));
                }
                let full = wd.strides[i]
                    .checked_mul(xd - 1)
                    .and_then(|a| a.checked_add(c.output_padding[i]))
                    .and_then(|a| a.checked_add((k - 1).checked_mul(wd.dilations[i])?))
                    .and_then(|a| a.checked_add(1))
                    .ok_or_else(|| format!("output size on spatial axis {i} overflows"))?;
                let pads = wd.pad_begin(i).saturating_add(wd.pad_end(i));
                if full <= pads {
                    return Err(format!("pads {pads} consume the whole output on axis {i}"));
                }
                s.push(full - pads);
            }
            one(x.dtype, s)
        }
        Op::Gemm(g) => {
            arity(ins, 2, 3)?;
            same_dtype(ins)?;
            let (a, b) = (ins[0], ins[1]);
            if a.rank() != 2 || b.rank() != 2 {
                return Err(format!("Gemm needs 2-D inputs, got {a} and {b}"));
            }
            let (m, ka) = if g.trans_a { (a.shape[1], a.shape[0]) } else { (a.shape[0], a.shape[1]) };
            let (kb, n) = if g.trans_b { (b.shape[1], b.shape[0]) } else { (b.shape[0], b.shape[1]) };
            if ka != kb {
                return Err(format!(
                    "inner dimensions differ: A {a} (trans={}) and B {b} (trans={})",
                    g.trans_a, g.trans_b
                ));
            }
            if let Some(c) = ins.get(2) {
                let s = broadcast(&c.shape, &[m, n])?;
                if s != [m, n] {
                    return Err(format!("C {c} does not broadcast to [{m},{n}]"));
                }
            }
            one(a.dtype, vec![m, n])
        }
        Op::MatMul(_) => {
            arity(ins, 2, 2)?;
            let d = same_dtype(ins)?;
            let (a, b) = (&ins[0].shape, &ins[1].shape);
            if a.is_empty() || b.is_empty() {
                return Err("MatMul inputs must have rank >= 1".into());
            }
            let a2: Vec<usize> = if a.len() == 1 { vec![1, a[0]] } else { a.clone() };
            let b2: Vec<usize> = if b.len() == 1 { vec![b[0], 1] } else { b.clone() };
            let (m, k1) = (a2[a2.len() - 2], a2[a2.len() - 1]);
            let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
            if k1 != k2 {
                return Err(format!("inner dimensions differ: {a:?} x {b:?}"));
            }
            let mut s = broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
            if a.len() > 1 {
                s.push(m);
            }
            if b.len() > 1 {
                s.push(n);
            }
            one(d, s)
        }
        Op::BatchNorm { .. } => {
            arity(ins, 5, 5)?;
            let x = ins[0];
            float_input(x, "input")?;
            if x.rank() < 2 {
                return Err(format!("input {x} needs a channel axis"));
            }
            for (i, p) in ins.iter().enumerate().skip(1) {
                if p.shape != [x.shape[1]] {
                    return Err(format!("parameter {i} has shape {p}, expected [{}]", x.shape[1]));
                }
            }
            one(x.dtype, x.shape.clone())
        }
        Op::InstanceNorm { .. } => {
            arity(ins, 3, 3)?;
            let x = ins[0];
            float_input(x, "input")?;
            if x.rank() < 3 {
                return Err(format!("input {x} needs rank >= 3"));
            }
            for p in &ins[1..] {
                if p.shape != [x.shape[1]] {
                    return Err(format!("scale/bias {p} must be [{}]", x.shape[1]));
                }
            }
            one(x.dtype, x.shape.clone())
        }
        Op::LayerNorm { axis, .. } => {
            arity(ins, 2, 3)?;
            let x = ins[0];
            float_input(x, "input")?;
            if *axis >= x.rank() {
                return Err(format!("axis {axis} out of range for {x}"));
            }
            for p in &ins[1..] {
                let s = broadcast(&p.shape, &x.shape[*axis..])?;
                if s != x.shape[*axis..] {
                    return Err(format!("scale/bias {p} do not broadcast to {:?}", &x.shape[*axis..]));
                }
            }
            one(x.dtype, x.shape.clone())
        }
        Op::Softmax { axis } | Op::LogSoftmax { axis } => {
            arity(ins, 1, 1)?;
            float_input(ins[0], "input")?;
            if *axis >= ins[0].rank() {
                return Err(format!("axis {axis} out of range for {}", ins[0]));
            }
            one(ins[0].dtype, ins[0].shape.clone())
        }
        Op::MaxPool(p) | Op::AveragePool(p) => {
            arity(ins, 1, 1)?;
            let x = ins[0];
            let mut s = vec![x.shape.first().copied().unwrap_or(0), x.shape.get(1).copied().unwrap_or(0)];
            s.extend(spatial(x, &p.window, p.ceil_mode)?);
            one(x.dtype, s)
        }
        Op::GlobalAveragePool | Op::GlobalMaxPool => {
            arity(ins, 1, 1)?;
            let x = ins[0];
            if x.rank() < 3 {
                return Err(format!("input {x} needs rank >= 3"));
            }
            let mut s = x.shape.clone();
            for d in s.iter_mut().skip(2) {
                *d = 1;
            }
            one(x.dtype, s)
        }
        Op::Reduce { axes, keepdims, kind } => {
            arity(ins, 1, 1)?;
            let x = ins[0];
            if x.dtype == DType::Bool {
                return Err(format!("{} needs a numeric input", kind.name()));
            }
            for &a in axes {
                if a >= x.rank().max(1) {
                    return Err(format!("axis {a} out of range for {x}"));
                }
            }
            let mut s = Vec::new();
            for (i, &d) in x.shape.iter().enumerate() {
                if axes.contains(&i) {
                    if *keepdims {
                        s.push(1);
                    }
                } else {
                    s.push(d);
                }
            }
            one(x.dtype, s)
        }
        Op::ArgMax { axis, keepdims, .. } | Op::ArgMin { axis, keepdims, .. } => {
            arity(ins, 1, 1)?;
            let x = ins[0];
            if *axis >= x.rank() {
                return Err(format!("axis {axis} out of range for {x}"));
            }
            let mut s = x.shape.clone();
            if *keepdims {
                s[*axis] = 1;
            } else {
                s.remove(*axis);
            }
            one(DType::I64, s)
        }
        Op::Reshape { shape } => {
            arity(ins, 1, 1)?;
            let n: usize = shape.iter().product();
            if n != ins[0].numel() {
                return Err(format!("cannot reshape {} ({} elements) to {shape:?}", ins[0], ins[0].numel()));
            }
            one(ins[0].dtype, shape.clone())
        }
        Op::Transpose { perm } => {
            arity(ins, 1, 1)?;
            let x = ins[0];
            let mut seen = vec![false; x.rank()];
            if perm.len() != x.rank() {
                return Err(format!("perm {perm:?} does not match rank of {x}"));
            }
            for &p in perm {
                if p >= x.rank() || seen[p] {
                    return Err(format!("perm {perm:?} is not a permutation"));
                }
                seen[p] = true;
            }
            one(x.dtype, perm.iter().map(|&p| x.shape[p]).collect())
        }
        Op::Concat { axis } => {
            if ins.is_empty() {
                return Err("Concat needs at least one input".into());
            }
            let d = same_dtype(ins)?;
            let first = ins[0];
            if *axis >= first.rank() {
                return Err(format!("axis {axis} out of range for {first}"));
            }
            let mut s = first.shape.clone();
            s[*axis] = 0;
            for t in ins {
                if t.rank() != first.rank()
                    || t.shape.iter().enumerate().any(|(i, &d)| i != *axis && d != first.shape[i])
                {
                    return Err(format!("inputs {first} and {t} differ outside axis {axis}"));
                }
                s[*axis] += t.shape[*axis];
            }
            one(d, s)
        }
        Op::Split { axis, sizes } => {
            arity(ins, 1, 1)?;
            let x = ins[0];
            if *axis >= x.rank() {
                return Err(format!("axis {axis} out of range for {x}"));
            }
            if sizes.iter().sum::<usize>() != x.shape[*axis] {
                return Err(format!("split sizes {sizes:?} do not sum to {}", x.shape[*axis]));
            }
            Ok(sizes
                .iter()
                .map(|&n| {
                    let mut s = x.shape.clone();
                    s[*axis] = n;
                    TensorType::new(x.dtype, s)
                })
                .collect())
        }
        Op::Slice { starts, ends, steps } => {
            arity(ins, 1, 1)?;
            let x = ins[0];
            if starts.len() != x.rank() || ends.len() != x.rank() || steps.len() != x.rank() {
                return Err(format!("slice must give start/end/step for each axis of {x}"));
            }
            let mut s = Vec::new();
            for i in 0..x.rank() {
                s.push(slice_len(starts[i], ends[i], steps[i], x.shape[i])?);
            }
            one(x.dtype, s)
        }
        Op::Gather { axis } => {
            arity(ins, 2, 2)?;
            let (x, idx) = (ins[0], ins[1]);
            if !matches!(idx.dtype, DType::I32 | DType::I64) {
                return Err(format!("indices must be int32 or int64, got {idx}"));
            }
            if *axis >= x.rank() {
                return Err(format!("axis {axis} out of range for {x}"));
            }
            let mut s = x.shape[..*axis].to_vec();
            s.extend(&idx.shape);
            s.extend(&x.shape[axis + 1..]);
            one(x.dtype, s)
        }
        Op::Expand { shape } => {
            arity(ins, 1, 1)?;
            let s = broadcast(&ins[0].shape, shape)?;
            if &s != shape {
                return Err(format!("{} does not expand to {shape:?}", ins[0]));
            }
            one(ins[0].dtype, s)
        }
        Op::Tile { repeats } => {
            arity(ins, 1, 1)?;
            if repeats.len() != ins[0].rank() {
                return Err(format!("repeats {repeats:?} do not match rank of {}", ins[0]));
            }
            one(ins[0].dtype, ins[0].shape.iter().zip(repeats).map(|(a, b)| a * b).collect())
        }
        Op::Pad { pads, mode, .. } => {
            arity(ins, 1, 1)?;
            let x = ins[0];
            if pads.len() != 2 * x.rank() {
                return Err(format!("pads {pads:?} must hold 2 values per axis of {x}"));
            }
            let r = x.rank();
            for i in 0..r {
                if *mode == PadMode::Reflect
                    && (pads[i] >= x.shape[i] || pads[r + i] >= x.shape[i])
                    && (pads[i] + pads[r + i] > 0)
                {
                    return Err(format!(
                        "reflect padding {} on axis {i} of size {} is too large",
                        pads[i].max(pads[r + i]),
                        x.shape[i]
                    ));
                }
                if *mode != PadMode::Constant && x.shape[i] == 0 && pads[i] + pads[r + i] > 0 {
                    return Err(format!("cannot {} pad an empty axis {i}", pad_mode_name(*mode)));
                }
            }
            one(x.dtype, (0..r).map(|i| x.shape[i] + pads[i] + pads[r + i]).collect())
        }
        Op::Resize(rz) => {
            arity(ins, 1, 1)?;
            let x = ins[0];
            if rz.sizes.len() != x.rank() || rz.scales.len() != x.rank() {
                return Err(format!("resize sizes/scales must match rank of {x}"));
            }
            one(x.dtype, rz.sizes.clone())
        }
        Op::Lstm(r) | Op::Gru(r) | Op::Rnn(r) => {
            let is_lstm = matches!(op, Op::Lstm(_));
            let (n_in, gates) = match op {
                Op::Lstm(_) => (7, 4),
                Op::Gru(_) => (5, 3),
                _ => (5, 1),
            };
            arity(ins, n_in, n_in + 1)?;
            let x = ins[0];
            float_input(x, "X")?;
            same_dtype(&ins[..n_in])?;
            if x.rank() != 3 {
                return Err(format!("X must be [seq, batch, input], got {x}"));
            }
            let (seq, batch, input) = (x.shape[0], x.shape[1], x.shape[2]);
            let (d, h) = (r.direction.num_directions(), r.hidden);
            let expect = |i: usize, s: Vec<usize>| -> Result<(), String> {
                if ins[i].shape != s {
                    return Err(format!("input {i} has shape {}, expected {s:?}", ins[i]));
                }
                Ok(())
            };
            expect(1, vec![d, gates * h, input])?;
            expect(2, vec![d, gates * h, h])?;
            expect(3, vec![d, 2 * gates * h])?;
            expect(4, vec![d, batch, h])?;
            if is_lstm {
                expect(5, vec![d, batch, h])?;
                expect(6, vec![d, 3 * h])?;
            }
            if let Some(l) = ins.get(n_in) {
                if l.dtype != DType::I32 {
                    return Err(format!("sequence lengths must be i32, got {l}"));
                }
                expect(n_in, vec![batch])?;
            }
            let nact = match op {
                Op::Lstm(_) => 3,
                Op::Gru(_) => 2,
                _ => 1,
            } * d;
            if r.activations.len() != nact {
                return Err(format!("expected {nact} activations, got {}", r.activations.len()));
            }
            let mut outs =
                vec![TensorType::new(x.dtype, vec![seq, d, batch, h]), TensorType::new(x.dtype, vec![d, batch, h])];
            if is_lstm {
                outs.push(TensorType::new(x.dtype, vec![d, batch, h]));
            }
            Ok(outs)
        }
    }
}

/// Length of a normalised slice.
pub fn slice_len(start: i64, end: i64, step: i64, dim: usize) -> Result<usize, String> {
    if step == 0 {
        return Err("slice step must not be 0".into());
    }
    let d = dim as i64;
    if step > 0 {
        if start < 0 || end > d || start > d {
            return Err(format!("slice [{start}:{end}:{step}] is not normalised for axis of {dim}"));
        }
        Ok(if end > start { ((end - start + step - 1) / step) as usize } else { 0 })
    } else {
        if start >= d.max(0) && d > 0 || end < -1 || start < -1 {
            return Err(format!("slice [{start}:{end}:{step}] is not normalised for axis of {dim}"));
        }
        Ok(if start > end { ((start - end - step - 1) / (-step)) as usize } else { 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Layer;

    fn t(shape: &[usize]) -> TensorType {
        TensorType::new(DType::F32, shape.to_vec())
    }

    /// Window arithmetic that would overflow, or axes past 2^40 elements
    /// (whose byte offsets leave i64 in the kernels), are errors: a conv
    /// with dilations and pads of 2^62 once compiled to code that crashed,
    /// a ConvTranspose with strides of 2^62 to a shape of 1.4e19.
    #[test]
    fn sizes_that_overflow_are_errors() {
        let big = 1usize << 62;
        assert!(window_out(4, 3, 1, big, big, big, false).is_err(), "extent 2^63 + 1");
        assert!(window_out(4, 3, 1, usize::MAX, 0, 0, false).is_err(), "extent overflows");
        assert!(window_out(4, 3, 1, 1, usize::MAX, 1, false).is_err(), "padding overflows");
        assert!(window_out(4, 3, 0, 1, 1, 1, false).is_err(), "stride 0");
        assert_eq!(window_out(1 << 20, 3, 2, 1, 1, 1, true), Ok((1 << 19) + 1), "ceil mode, last window inside");
        let huge = Op::Unary(UnaryOp::Relu);
        let e = infer(&huge, &[&t(&[1 << 21, 1 << 20])]).unwrap_err();
        assert!(e.contains("2^40"), "{e}");
        assert!(infer(&huge, &[&t(&[1 << 20, 1 << 20])]).is_ok(), "2^40 elements exactly");
    }

    /// Only a depthwise QConv (one input and one output channel per
    /// group) may have padding; its output extent counts the padding.
    #[test]
    fn only_depthwise_qconvs_have_padding() {
        use crate::op::{Conv, ConvAlgo, Epilogue, QConv, QOut, Window};
        let q = |group: usize| {
            let window = Window { kernel: vec![3, 3], strides: vec![1, 1], dilations: vec![1, 1], pads: vec![1; 4] };
            let conv = Conv { window, group, layer: Layer("c".into()), algo: ConvAlgo::Direct };
            Op::QConv(QConv {
                conv,
                epi: Epilogue::default(),
                x_scale: crate::F32::new(0.1),
                x_zp: 3,
                out: QOut::Real,
                res_grid: None,
            })
        };
        let x = TensorType::new(DType::U8, vec![1, 4, 6, 6]);
        let (ws, b) = (t(&[4]), t(&[4]));
        let dw = TensorType::new(DType::I8, vec![4, 1, 3, 3]);
        assert_eq!(infer(&q(4), &[&x, &dw, &ws, &b]).unwrap()[0].shape, vec![1, 4, 6, 6]);
        let dense = TensorType::new(DType::I8, vec![4, 4, 3, 3]);
        let e = infer(&q(1), &[&x, &dense, &ws, &b]).unwrap_err();
        assert!(e.contains("only a real-valued depthwise QConv"), "{e}");
    }

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast(&[2, 1, 4], &[3, 1]).unwrap(), vec![2, 3, 4]);
        assert!(broadcast(&[2, 3], &[4]).is_err());
        assert_eq!(broadcast(&[], &[5]).unwrap(), vec![5]);
    }

    #[test]
    fn conv_shapes() {
        let op = Op::Conv(Conv {
            window: Window { kernel: vec![3, 3], strides: vec![2, 2], dilations: vec![1, 1], pads: vec![1, 1, 1, 1] },
            group: 1,
            layer: Layer("c".into()),
            algo: crate::op::ConvAlgo::Direct,
        });
        let out = infer(&op, &[&t(&[1, 3, 224, 224]), &t(&[32, 3, 3, 3])]).unwrap();
        assert_eq!(out[0].shape, vec![1, 32, 112, 112]);
        let err = infer(&op, &[&t(&[1, 4, 224, 224]), &t(&[32, 3, 3, 3])]).unwrap_err();
        assert!(err.contains("input channels 4"), "{err}");
    }

    #[test]
    fn pool_ceil_mode() {
        // PyTorch: 112 -> MaxPool k3 s2 p1 -> 56; ceil on 13 k3 s2 -> 6 (squeezenet)
        assert_eq!(window_out(112, 3, 2, 1, 1, 1, false).unwrap(), 56);
        assert_eq!(window_out(13, 3, 2, 1, 0, 0, true).unwrap(), 6);
        assert_eq!(window_out(111, 3, 2, 1, 0, 0, true).unwrap(), 55);
    }

    #[test]
    fn matmul_batch_broadcast() {
        let op = Op::MatMul(Layer("m".into()));
        let out = infer(&op, &[&t(&[2, 1, 64, 32]), &t(&[4, 32, 16])]).unwrap();
        assert_eq!(out[0].shape, vec![2, 4, 64, 16]);
        let out = infer(&op, &[&t(&[32]), &t(&[32, 16])]).unwrap();
        assert_eq!(out[0].shape, vec![16]);
    }

    #[test]
    fn slices() {
        assert_eq!(slice_len(0, 10, 3, 10).unwrap(), 4);
        assert_eq!(slice_len(9, -1, -1, 10).unwrap(), 10);
        assert_eq!(slice_len(5, 5, 1, 10).unwrap(), 0);
        assert!(slice_len(0, 11, 1, 10).is_err());
    }
}
