//! Elementwise ops: unary activations, binary arithmetic/comparison/logic,
//! variadic Max/Min/Sum/Mean (chains of binary ops), Where, Clip, PRelu.

use kerf_ir::{BinaryOp, Op, Tensor, UnaryOp, ValueId, F32};

use super::compose::reshape;
use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    for name in [
        "Neg",
        "Abs",
        "Sqrt",
        "Reciprocal",
        "Exp",
        "Log",
        "Erf",
        "Tanh",
        "Sigmoid",
        "Relu",
        "Floor",
        "Ceil",
        "Round",
        "Sign",
        "Not",
        "Sin",
        "Cos",
        "Softplus",
        "Softsign",
        "HardSwish",
        "BitwiseNot",
        "Tan",
        "Asin",
        "Acos",
        "Atan",
        "Sinh",
        "Cosh",
        "Asinh",
        "Acosh",
        "Atanh",
    ] {
        r.push((name, unary));
    }
    for name in ["LeakyRelu", "HardSigmoid", "Elu", "Selu", "Gelu"] {
        r.push((name, unary_param));
    }
    r.push(("Celu", celu));
    r.push(("Mish", mish));
    r.push(("Swish", swish));
    r.push(("SwiGLU", swiglu));
    r.push(("ThresholdedRelu", thresholded_relu));
    for name in [
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "Mod",
        "Equal",
        "Greater",
        "GreaterOrEqual",
        "Less",
        "LessOrEqual",
        "And",
        "Or",
        "Xor",
        "PRelu",
        "BitShift",
        "BitwiseAnd",
        "BitwiseOr",
        "BitwiseXor",
    ] {
        r.push((name, binary));
    }
    for name in ["Max", "Min", "Sum", "Mean"] {
        r.push((name, variadic));
    }
    r.push(("Where", where_));
    r.push(("Clip", clip));
}

fn simple(name: &str) -> Option<UnaryOp> {
    use UnaryOp::*;
    Some(match name {
        "Neg" => Neg,
        "Abs" => Abs,
        "Sqrt" => Sqrt,
        "Reciprocal" => Reciprocal,
        "Exp" => Exp,
        "Log" => Log,
        "Erf" => Erf,
        "Tanh" => Tanh,
        "Sigmoid" => Sigmoid,
        "Relu" => Relu,
        "Floor" => Floor,
        "Ceil" => Ceil,
        "Round" => Round,
        "Sign" => Sign,
        "Not" => Not,
        "Sin" => Sin,
        "Cos" => Cos,
        "Softplus" => Softplus,
        "Softsign" => Softsign,
        "HardSwish" => HardSwish,
        "BitwiseNot" => BitwiseNot,
        "Tan" => Tan,
        "Asin" => Asin,
        "Acos" => Acos,
        "Atan" => Atan,
        "Sinh" => Sinh,
        "Cosh" => Cosh,
        "Asinh" => Asinh,
        "Acosh" => Acosh,
        "Atanh" => Atanh,
        _ => return None,
    })
}

fn unary(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let u = simple(cx.op()).ok_or_else(|| cx.err("not a unary op"))?;
    let x = cx.input(0)?;
    Ok(vec![cx.add1(Op::Unary(u), vec![x])?])
}

fn unary_param(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let a = cx.attrs();
    let x = cx.input(0)?;
    let u = match cx.op() {
        "LeakyRelu" => UnaryOp::LeakyRelu { alpha: F32::new(a.float("alpha", 0.01)?) },
        "HardSigmoid" => {
            UnaryOp::HardSigmoid { alpha: F32::new(a.float("alpha", 0.2)?), beta: F32::new(a.float("beta", 0.5)?) }
        }
        "Elu" => UnaryOp::Elu { alpha: F32::new(a.float("alpha", 1.0)?) },
        "Selu" => UnaryOp::Selu {
            alpha: F32::new(a.float("alpha", 1.673_263_2)?),
            gamma: F32::new(a.float("gamma", 1.050_701)?),
        },
        "Gelu" => match a.string("approximate", "none")?.as_str() {
            "none" => UnaryOp::Gelu { tanh: false },
            "tanh" => UnaryOp::Gelu { tanh: true },
            other => return Err(cx.err(format!("unknown approximate '{other}' (expected none or tanh)"))),
        },
        _ => return Err(cx.err("not a parametric unary op")),
    };
    Ok(vec![cx.add1(Op::Unary(u), vec![x])?])
}

fn binary_op(cx: &Cx) -> Result<BinaryOp, ImportError> {
    use BinaryOp::*;
    Ok(match cx.op() {
        // Mean is a Sum followed by a division (see `variadic`).
        "Add" | "Sum" | "Mean" => Add,
        "Sub" => Sub,
        "Mul" => Mul,
        "Div" => Div,
        "Pow" => Pow,
        "Mod" => {
            if cx.attrs().int("fmod", 0)? != 0 {
                Fmod
            } else {
                Mod
            }
        }
        "Max" => Max,
        "Min" => Min,
        "Equal" => Equal,
        "Greater" => Greater,
        "GreaterOrEqual" => GreaterOrEqual,
        "Less" => Less,
        "LessOrEqual" => LessOrEqual,
        "And" => And,
        "Or" => Or,
        "Xor" => Xor,
        "PRelu" => PRelu,
        "BitShift" => match cx.attrs().string("direction", "")?.as_str() {
            "LEFT" => BitShiftLeft,
            "RIGHT" => BitShiftRight,
            other => return Err(cx.err(format!("direction must be LEFT or RIGHT, got '{other}'"))),
        },
        "BitwiseAnd" => BitwiseAnd,
        "BitwiseOr" => BitwiseOr,
        "BitwiseXor" => BitwiseXor,
        _ => return Err(cx.err("not a binary op")),
    })
}

fn binary(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let b = binary_op(cx)?;
    let a = cx.attrs();
    let (x, mut y) = (cx.input(0)?, cx.input(1)?);
    let (xs, ys) = (cx.shape(x), cx.shape(y));
    if cx.opset < 7 && a.int("broadcast", 0)? != 0 {
        if let Some(axis) = a.int_opt("axis")? {
            // Legacy broadcasting: B's dims line up with A's from `axis`;
            // spelled as a reshape of B to A's rank with trailing ones.
            let axis = cx.axis(axis, xs.len())?;
            if axis + ys.len() > xs.len() {
                return Err(cx.err(format!("B {ys:?} does not fit A {xs:?} at axis {axis}")));
            }
            let mut shape = vec![1; xs.len() - axis];
            shape[..ys.len()].copy_from_slice(&ys);
            y = cx.add1(Op::Reshape { shape }, vec![y])?;
        }
    }
    if b == BinaryOp::PRelu && cx.opset < 7 && ys.len() == 1 && xs.len() > 2 && xs.get(1) == ys.first() {
        // Old PRelu: a 1-D slope of length C is per channel.
        let mut shape = vec![1; xs.len() - 1];
        shape[0] = ys[0];
        y = cx.add1(Op::Reshape { shape }, vec![y])?;
    }
    Ok(vec![cx.add1(Op::Binary(b), vec![x, y])?])
}

/// Variadic Max/Min/Sum/Mean: a left-to-right chain of binary ops (Mean
/// divides the sum by the input count).
fn variadic(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let ins: Vec<ValueId> = cx.ins.iter().flatten().copied().collect();
    let first = *ins.first().ok_or_else(|| cx.err("needs at least one input"))?;
    let b = binary_op(cx)?;
    let mut acc = first;
    for &v in &ins[1..] {
        acc = cx.add1(Op::Binary(b), vec![acc, v])?;
    }
    if cx.op() == "Mean" && ins.len() > 1 {
        let dt = cx.ty(first).dtype;
        let n = Tensor::from_f64_values(dt, vec![], &[ins.len() as f64])?;
        let c = cx.derived("count", n);
        acc = cx.add1(Op::Binary(BinaryOp::Div), vec![acc, c])?;
    }
    if ins.len() == 1 {
        acc = cx.add1(Op::Identity, vec![acc])?;
    }
    Ok(vec![acc])
}

fn where_(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let (c, x, y) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    Ok(vec![cx.add1(Op::Where, vec![c, x, y])?])
}

/// Clip: attributes before opset 11, constant `min`/`max` inputs after.
/// Clip. Constant bounds become the `Clip` op; a bound computed at run time
/// (opset 11+) stays a runtime input, as `Max(x, min)` and `Min(·, max)`
/// in that order (`min(max(x, lo), hi)`, so `lo > hi` gives `hi`, as the
/// reference does).
fn clip(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    if cx.opset < 11 {
        let a = cx.attrs();
        let (min, max) = (a.float("min", f32::NEG_INFINITY)?, a.float("max", f32::INFINITY)?);
        return Ok(vec![cx.add1(Op::Unary(UnaryOp::Clip { min: F32::new(min), max: F32::new(max) }), vec![x])?]);
    }
    let mut bounds = [(f32::NEG_INFINITY, None), (f32::INFINITY, None)];
    for (i, what) in [(1, "min"), (2, "max")] {
        let Some(v) = cx.opt_input(i) else { continue };
        let shape = cx.shape(v);
        if shape.iter().product::<usize>() != 1 {
            return Err(cx.err(format!("input '{what}' must be a scalar, got shape {shape:?}")));
        }
        if cx.ty(v).dtype != cx.ty(x).dtype {
            return Err(cx.err(format!("input '{what}' has type {}, the input {}", cx.ty(v).dtype, cx.ty(x).dtype)));
        }
        bounds[i - 1] = match cx.g.const_of(v) {
            Some(t) => (t.get_f64(0) as f32, None),
            None => (bounds[i - 1].0, Some(reshape(cx, v, vec![])?)),
        };
    }
    let [(lo, lo_rt), (hi, hi_rt)] = bounds;
    let mut y = x;
    if let Some(l) = lo_rt {
        y = cx.add1(Op::Binary(BinaryOp::Max), vec![y, l])?;
    }
    if lo_rt.is_none() && lo != f32::NEG_INFINITY || hi_rt.is_none() && hi != f32::INFINITY || y == x && hi_rt.is_none()
    {
        // the constant bounds (with a runtime min, only the upper one is left)
        let (l, h) =
            (if lo_rt.is_some() { f32::NEG_INFINITY } else { lo }, if hi_rt.is_some() { f32::INFINITY } else { hi });
        y = cx.add1(Op::Unary(UnaryOp::Clip { min: F32::new(l), max: F32::new(h) }), vec![y])?;
    }
    if let Some(h) = hi_rt {
        y = cx.add1(Op::Binary(BinaryOp::Min), vec![y, h])?;
    }
    Ok(vec![y])
}

/// A scalar constant of `x`'s dtype.
fn scalar_like(cx: &mut Cx, x: ValueId, what: &str, v: f64) -> Result<ValueId, ImportError> {
    let dt = cx.ty(x).dtype;
    let t = Tensor::from_f64_values(dt, vec![], &[v])?;
    Ok(cx.derived(what, t))
}

/// `celu(x, a) = max(0, x) + min(0, a * (exp(x / a) - 1)) = a * elu(x / a)`.
fn celu(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let alpha = cx.attrs().float("alpha", 1.0)?;
    let elu = Op::Unary(UnaryOp::Elu { alpha: F32::new(1.0) });
    if alpha == 1.0 {
        return Ok(vec![cx.add1(elu, vec![x])?]);
    }
    let a = scalar_like(cx, x, "alpha", alpha as f64)?;
    let scaled = cx.add1(Op::Binary(BinaryOp::Div), vec![x, a])?;
    let e = cx.add1(elu, vec![scaled])?;
    Ok(vec![cx.add1(Op::Binary(BinaryOp::Mul), vec![e, a])?])
}

/// `mish(x) = x * tanh(softplus(x))`.
fn mish(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let sp = cx.add1(Op::Unary(UnaryOp::Softplus), vec![x])?;
    let t = cx.add1(Op::Unary(UnaryOp::Tanh), vec![sp])?;
    Ok(vec![cx.add1(Op::Binary(BinaryOp::Mul), vec![x, t])?])
}

/// `swish(x) = x * sigmoid(alpha * x)` (opset 24).
fn swish(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let alpha = cx.attrs().float("alpha", 1.0)?;
    let scaled = if alpha == 1.0 {
        x
    } else {
        let a = scalar_like(cx, x, "alpha", alpha as f64)?;
        cx.add1(Op::Binary(BinaryOp::Mul), vec![x, a])?
    };
    let s = cx.add1(Op::Unary(UnaryOp::Sigmoid), vec![scaled])?;
    Ok(vec![cx.add1(Op::Binary(BinaryOp::Mul), vec![x, s])?])
}

/// SwiGLU (opset 24): `Swish(a, alpha) * b`, the function body of the spec.
fn swiglu(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let gate = swish(cx)?;
    let b = cx.input(1)?;
    let gate = *gate.first().ok_or_else(|| cx.err("Swish gave no value"))?;
    Ok(vec![cx.add1(Op::Binary(BinaryOp::Mul), vec![gate, b])?])
}

/// `x > alpha ? x : 0`.
fn thresholded_relu(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let alpha = cx.attrs().float("alpha", 1.0)?;
    let a = scalar_like(cx, x, "alpha", alpha as f64)?;
    let zero = scalar_like(cx, x, "zero", 0.0)?;
    let gt = cx.add1(Op::Binary(BinaryOp::Greater), vec![x, a])?;
    Ok(vec![cx.add1(Op::Where, vec![gt, x, zero])?])
}
