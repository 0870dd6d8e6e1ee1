//! Elementwise kernels: unary and binary ops with numpy broadcasting,
//! `Where`, and `Chain` (several f32 steps in one pass: one load of each
//! input and one store per element, the steps in registers; `Cast` is in
//! `cast.rs`).
//!
//! Shape handling: every operand gets per-axis element strides into the
//! output shape (0 on broadcast axes); adjacent axes that are contiguous for
//! all operands are merged. The innermost axis runs `f32x4` steps with a
//! scalar tail when every operand and the result are f32; operands
//! broadcast along it are loaded once and splatted outside the inner loop.
//! Other dtypes (ints, bool) run the same nest with scalars.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Type, Value};
use kerf_ir::op::ChainStep;
use kerf_ir::{BinaryOp, DType, Op, UnaryOp};

use super::cast::{cast_scalar, f32_to_half, half_to_f32, is_half};
use super::chain::{chain, chain_streamed, step_stream};
use super::epilogue::{has_streams, stream_prefix};
use super::{cl_type, Kernel, LResult};
use crate::math;
use crate::ukernel::vmath::VFn;

/// Strides (elements) of `shape` broadcast into an output of rank `r`.
pub fn bcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let r = out.len();
    let off = r - shape.len();
    let own = kerf_ir::eval::strides(shape);
    (0..r).map(|a| if a < off || shape[a - off] == 1 && out[a] != 1 { 0 } else { own[a - off] }).collect()
}

/// Merges adjacent axes that are contiguous in every stride list.
pub fn collapse(shape: &[usize], strides: &[Vec<usize>]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut s: Vec<usize> = Vec::new();
    let mut st: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
    for a in 0..shape.len() {
        if shape[a] == 1 {
            continue;
        }
        let mergeable =
            !s.is_empty() && strides.iter().enumerate().all(|(k, v)| st[k].last().copied() == Some(v[a] * shape[a]));
        if mergeable {
            let last = s.len() - 1;
            s[last] *= shape[a];
            for (k, v) in strides.iter().enumerate() {
                let l = st[k].len() - 1;
                st[k][l] = v[a];
            }
        } else {
            s.push(shape[a]);
            for (k, v) in strides.iter().enumerate() {
                st[k].push(v[a]);
            }
        }
    }
    if s.is_empty() {
        s.push(1);
        for v in &mut st {
            v.push(1);
        }
    }
    (s, st)
}

/// `cmp(x, y) ? a : b` for f32 scalars or f32x4 vectors.
pub fn fsel(k: &mut Kernel, cc: FloatCC, x: Value, y: Value, a: Value, b: Value) -> Value {
    let ty = k.b.func.dfg.value_type(a);
    let c = k.b.ins().fcmp(cc, x, y);
    if ty.is_vector() {
        let m =
            k.b.ins().bitcast(ty, MemFlagsData::new().with_endianness(cranelift_codegen::ir::Endianness::Little), c);
        k.b.ins().bitselect(m, a, b)
    } else {
        k.b.ins().select(c, a, b)
    }
}

fn clamp01(k: &mut Kernel, ty: Type, x: Value) -> Value {
    let z = k.fsplat(ty, 0.0);
    let o = k.fsplat(ty, 1.0);
    let t = k.b.ins().fmax(x, z);
    k.b.ins().fmin(t, o)
}

/// Round half to even without SSE4.1: `(x + 1.5*2^23) - 1.5*2^23` is exact
/// for |x| < 2^22; larger values are already integers.
fn round_even(k: &mut Kernel, ty: Type, x: Value) -> Value {
    if k.caps.round {
        return k.b.ins().nearest(x);
    }
    let c = k.fsplat(ty, 12582912.0);
    let t = k.b.ins().fadd(x, c);
    let r = k.b.ins().fsub(t, c);
    let ax = k.b.ins().fabs(x);
    let lim = k.fsplat(ty, 4194304.0);
    fsel(k, FloatCC::LessThan, ax, lim, r, x)
}

/// A float unary op on `F32` or `F32X4`.
pub fn unary_f(k: &mut Kernel, u: UnaryOp, ty: Type, x: Value) -> LResult<Value> {
    use UnaryOp::*;
    let z = || 0.0f32;
    Ok(match u {
        Neg => k.b.ins().fneg(x),
        Abs => k.b.ins().fabs(x),
        Sqrt => k.b.ins().sqrt(x),
        Reciprocal => {
            let o = k.fsplat(ty, 1.0);
            k.b.ins().fdiv(o, x)
        }
        Exp => math::exp(&mut k.b, x),
        Log => math::log(&mut k.b, x),
        Erf => math::erf(&mut k.b, x),
        Tanh => math::tanh(&mut k.b, x),
        Sigmoid => math::sigmoid(&mut k.b, x),
        Relu => {
            let zero = k.fsplat(ty, z());
            fsel(k, FloatCC::LessThan, x, zero, zero, x)
        }
        Floor => math::floor(&mut k.b, x, k.caps.round),
        Ceil => {
            let n = k.b.ins().fneg(x);
            let f = math::floor(&mut k.b, n, k.caps.round);
            k.b.ins().fneg(f)
        }
        Round => round_even(k, ty, x),
        Sign => {
            let zero = k.fsplat(ty, 0.0);
            let one = k.fsplat(ty, 1.0);
            let m1 = k.fsplat(ty, -1.0);
            let neg = fsel(k, FloatCC::LessThan, x, zero, m1, x);
            fsel(k, FloatCC::GreaterThan, x, zero, one, neg)
        }
        Softplus => {
            // max(x, 0) + log(1 + exp(-|x|)) never overflows.
            let zero = k.fsplat(ty, 0.0);
            let one = k.fsplat(ty, 1.0);
            let a = k.b.ins().fabs(x);
            let na = k.b.ins().fneg(a);
            let e = math::exp(&mut k.b, na);
            let s = k.b.ins().fadd(one, e);
            let l = math::log(&mut k.b, s);
            let p = fsel(k, FloatCC::LessThan, x, zero, zero, x);
            k.b.ins().fadd(p, l)
        }
        Softsign => {
            let one = k.fsplat(ty, 1.0);
            let a = k.b.ins().fabs(x);
            let d = k.b.ins().fadd(one, a);
            k.b.ins().fdiv(x, d)
        }
        HardSwish => {
            let s = k.fsplat(ty, 1.0 / 6.0);
            let h = k.fsplat(ty, 0.5);
            let t = k.b.ins().fmul(x, s);
            let t = k.b.ins().fadd(t, h);
            let c = clamp01(k, ty, t);
            k.b.ins().fmul(x, c)
        }
        LeakyRelu { alpha } => {
            let zero = k.fsplat(ty, 0.0);
            let a = k.fsplat(ty, alpha.get());
            let m = k.b.ins().fmul(x, a);
            fsel(k, FloatCC::LessThan, x, zero, m, x)
        }
        HardSigmoid { alpha, beta } => {
            let a = k.fsplat(ty, alpha.get());
            let bb = k.fsplat(ty, beta.get());
            let t = k.b.ins().fmul(x, a);
            let t = k.b.ins().fadd(t, bb);
            clamp01(k, ty, t)
        }
        Clip { min, max } => {
            // compare-selects where they give fmax/fmin's bits (vectors)
            let act = super::epilogue::Act::Clip { lo: min.get(), hi: max.get() };
            if let Some(y) = super::epilogue::clamp_select(k, ty, act, x) {
                return Ok(y);
            }
            let lo = k.fsplat(ty, min.get());
            let hi = k.fsplat(ty, max.get());
            let t = k.b.ins().fmax(x, lo);
            k.b.ins().fmin(t, hi)
        }
        Gelu { tanh: false } => math::gelu(&mut k.b, x),
        Gelu { tanh: true } => math::gelu_tanh(&mut k.b, x),
        Elu { alpha } | Selu { alpha, .. } => {
            let zero = k.fsplat(ty, 0.0);
            let one = k.fsplat(ty, 1.0);
            let a = k.fsplat(ty, alpha.get());
            let e = math::exp(&mut k.b, x);
            let e = k.b.ins().fsub(e, one);
            let e = k.b.ins().fmul(e, a);
            let cc = if matches!(u, Selu { .. }) { FloatCC::LessThanOrEqual } else { FloatCC::LessThan };
            let r = fsel(k, cc, x, zero, e, x);
            if let Selu { gamma, .. } = u {
                let g = k.fsplat(ty, gamma.get());
                k.b.ins().fmul(r, g)
            } else {
                r
            }
        }
        Sin => math::sin(&mut k.b, x),
        Cos => math::cos(&mut k.b, x),
        Tan => math::tan(&mut k.b, x),
        Asin => math::asin(&mut k.b, x),
        Acos => math::acos(&mut k.b, x),
        Atan => math::atan(&mut k.b, x),
        Sinh => math::sinh(&mut k.b, x),
        Cosh => math::cosh(&mut k.b, x),
        Asinh => math::asinh(&mut k.b, x),
        Acosh => math::acosh(&mut k.b, x),
        Atanh => math::atanh(&mut k.b, x),
        Not | BitwiseNot => return Err(format!("{} is not implemented for f32", u.name())),
    })
}

/// Small-integer power by repeated multiplication, or the general
/// `exp(y * log(x))` (defined for x > 0).
fn pow_f(k: &mut Kernel, ty: Type, x: Value, y: Value, const_exp: Option<f32>) -> Value {
    match const_exp {
        Some(1.0) => x,
        Some(2.0) => k.b.ins().fmul(x, x),
        Some(3.0) => {
            let t = k.b.ins().fmul(x, x);
            k.b.ins().fmul(t, x)
        }
        Some(0.5) => k.b.ins().sqrt(x),
        Some(-1.0) => {
            let o = k.fsplat(ty, 1.0);
            k.b.ins().fdiv(o, x)
        }
        Some(0.0) => k.fsplat(ty, 1.0),
        _ => {
            let l = math::log(&mut k.b, x);
            let t = k.b.ins().fmul(l, y);
            math::exp(&mut k.b, t)
        }
    }
}

/// A float binary op with a float result.
pub(super) fn binary_f(
    k: &mut Kernel,
    op: BinaryOp,
    ty: Type,
    a: Value,
    b: Value,
    const_exp: Option<f32>,
) -> LResult<Value> {
    use BinaryOp::*;
    Ok(match op {
        Add => k.b.ins().fadd(a, b),
        Sub => k.b.ins().fsub(a, b),
        Mul => k.b.ins().fmul(a, b),
        Div => k.b.ins().fdiv(a, b),
        Max => k.b.ins().fmax(a, b),
        Min => k.b.ins().fmin(a, b),
        Pow => pow_f(k, ty, a, b, const_exp),
        PRelu => {
            let zero = k.fsplat(ty, 0.0);
            let m = k.b.ins().fmul(a, b);
            fsel(k, FloatCC::LessThan, a, zero, m, a)
        }
        _ => return Err(format!("{} is not implemented for f32 results", op.name())),
    })
}

fn bool_of(k: &mut Kernel, c: Value) -> Value {
    // icmp/fcmp give an i8 0/1 already
    let _ = k;
    c
}

/// A scalar binary op for any dtype (`a`, `b` of the input type).
fn binary_scalar(k: &mut Kernel, op: BinaryOp, d: DType, a: Value, b: Value, const_exp: Option<f32>) -> LResult<Value> {
    use BinaryOp::*;
    if d == DType::F32 {
        let cc = match op {
            Equal => Some(FloatCC::Equal),
            Greater => Some(FloatCC::GreaterThan),
            GreaterOrEqual => Some(FloatCC::GreaterThanOrEqual),
            Less => Some(FloatCC::LessThan),
            LessOrEqual => Some(FloatCC::LessThanOrEqual),
            _ => None,
        };
        if let Some(cc) = cc {
            let c = k.b.ins().fcmp(cc, a, b);
            return Ok(bool_of(k, c));
        }
        if matches!(op, Mod | Fmod) {
            // exact in f64 (the f32 remainder is representable), rounded once back
            let a64 = k.b.ins().fpromote(types::F64, a);
            let b64 = k.b.ins().fpromote(types::F64, b);
            let r = binary_f64(k, op, a64, b64)?;
            return Ok(k.b.ins().fdemote(types::F32, r));
        }
        return binary_f(k, op, types::F32, a, b, const_exp);
    }
    if d == DType::F64 {
        return binary_f64(k, op, a, b);
    }
    if !d.is_int() && d != DType::Bool {
        return Err(format!("{} on {d} is not supported", op.name()));
    }
    let signed = d.is_signed_int();
    if matches!(op, Div | Mod | Fmod) && d != DType::Bool {
        return Ok(int_div(k, op, signed, a, b));
    }
    let cmp = |cs: IntCC, cu: IntCC| if signed { cs } else { cu };
    let ins = k.b.ins();
    Ok(match op {
        Add => ins.iadd(a, b),
        Sub => ins.isub(a, b),
        Mul => ins.imul(a, b),
        Max => {
            if signed {
                ins.smax(a, b)
            } else {
                ins.umax(a, b)
            }
        }
        Min => {
            if signed {
                ins.smin(a, b)
            } else {
                ins.umin(a, b)
            }
        }
        Equal => ins.icmp(IntCC::Equal, a, b),
        Greater => ins.icmp(cmp(IntCC::SignedGreaterThan, IntCC::UnsignedGreaterThan), a, b),
        GreaterOrEqual => ins.icmp(cmp(IntCC::SignedGreaterThanOrEqual, IntCC::UnsignedGreaterThanOrEqual), a, b),
        Less => ins.icmp(cmp(IntCC::SignedLessThan, IntCC::UnsignedLessThan), a, b),
        LessOrEqual => ins.icmp(cmp(IntCC::SignedLessThanOrEqual, IntCC::UnsignedLessThanOrEqual), a, b),
        And | BitwiseAnd => ins.band(a, b),
        Or | BitwiseOr => ins.bor(a, b),
        Xor | BitwiseXor => ins.bxor(a, b),
        BitShiftLeft | BitShiftRight => shift(k, op == BitShiftLeft, signed, a, b),
        _ => return Err(format!("{} on {d} is not supported", op.name())),
    })
}

/// ONNX BitShift: the amount is unsigned; amounts ≥ the width give 0, or the
/// sign fill for an arithmetic right shift (Cranelift masks the amount to the
/// width, so it is clamped to width - 1 and the out-of-range lanes selected).
fn shift(k: &mut Kernel, left: bool, signed: bool, a: Value, s: Value) -> Value {
    let ty = k.b.func.dfg.value_type(a);
    let bits = i64::from(ty.bits());
    let big = k.b.ins().icmp_imm_s(IntCC::UnsignedGreaterThanOrEqual, s, bits);
    let top = k.b.ins().iconst(ty, bits - 1);
    let sc = k.b.ins().umin(s, top);
    if !left && signed {
        return k.b.ins().sshr(a, sc);
    }
    let r = if left { k.b.ins().ishl(a, sc) } else { k.b.ins().ushr(a, sc) };
    let zero = k.b.ins().iconst(ty, 0);
    k.b.ins().select(big, zero, r)
}

/// The f64 binary ops (scalar; exact IEEE operations, no transcendental).
fn binary_f64(k: &mut Kernel, op: BinaryOp, a: Value, b: Value) -> LResult<Value> {
    use BinaryOp::*;
    let ins = k.b.ins();
    Ok(match op {
        Add => ins.fadd(a, b),
        Sub => ins.fsub(a, b),
        Mul => ins.fmul(a, b),
        Div => ins.fdiv(a, b),
        Max => ins.fmax(a, b),
        Min => ins.fmin(a, b),
        Equal => ins.fcmp(FloatCC::Equal, a, b),
        Greater => ins.fcmp(FloatCC::GreaterThan, a, b),
        GreaterOrEqual => ins.fcmp(FloatCC::GreaterThanOrEqual, a, b),
        Less => ins.fcmp(FloatCC::LessThan, a, b),
        LessOrEqual => ins.fcmp(FloatCC::LessThanOrEqual, a, b),
        Mod => math::pymod64(&mut k.b, a, b),
        Fmod => math::fmod64(&mut k.b, a, b),
        _ => return Err(format!("{} on f64 is not supported", op.name())),
    })
}

/// Integer Div (truncating), Mod (result has the divisor's sign, like
/// Python) and Fmod (the dividend's sign, like C). Never traps: ONNX leaves
/// division by zero undefined, and kerf gives 0 for all three; `MIN / -1`
/// wraps to MIN (Cranelift's `sdiv` would trap on both).
fn int_div(k: &mut Kernel, op: BinaryOp, signed: bool, a: Value, b: Value) -> Value {
    let ty = k.b.func.dfg.value_type(b);
    let one = k.b.ins().iconst(ty, 1);
    let zero = k.b.ins().iconst(ty, 0);
    let is_zero = k.b.ins().icmp_imm_s(IntCC::Equal, b, 0);
    let is_m1 = if signed { k.b.ins().icmp_imm_s(IntCC::Equal, b, -1) } else { k.b.ins().iconst(types::I8, 0) };
    let bad = k.b.ins().bor(is_zero, is_m1);
    let safe = k.b.ins().select(bad, one, b);
    match op {
        BinaryOp::Div => {
            let q = if signed { k.b.ins().sdiv(a, safe) } else { k.b.ins().udiv(a, safe) };
            let na = k.b.ins().ineg(a);
            let q = k.b.ins().select(is_m1, na, q);
            k.b.ins().select(is_zero, zero, q)
        }
        _ => {
            // x % 1 == 0 covers both b == 0 and b == -1
            if !signed {
                return k.b.ins().urem(a, safe);
            }
            let r = k.b.ins().srem(a, safe);
            if op == BinaryOp::Fmod {
                return r;
            }
            let rneg = k.b.ins().icmp_imm_s(IntCC::SignedLessThan, r, 0);
            let bneg = k.b.ins().icmp_imm_s(IntCC::SignedLessThan, b, 0);
            let differ = k.b.ins().bxor(rneg, bneg);
            let nz = k.b.ins().icmp_imm_s(IntCC::NotEqual, r, 0);
            let adj = k.b.ins().band(differ, nz);
            let rb = k.b.ins().iadd(r, b);
            k.b.ins().select(adj, rb, r)
        }
    }
}

fn unary_scalar(k: &mut Kernel, u: UnaryOp, d: DType, x: Value) -> LResult<Value> {
    if d == DType::F32 {
        return unary_f(k, u, types::F32, x);
    }
    if d == DType::F64 {
        return Ok(match u {
            UnaryOp::Neg => k.b.ins().fneg(x),
            UnaryOp::Abs => k.b.ins().fabs(x),
            UnaryOp::Sqrt => k.b.ins().sqrt(x),
            UnaryOp::Relu => {
                let z = k.b.ins().f64const(0.0);
                let c = k.b.ins().fcmp(FloatCC::LessThan, x, z);
                k.b.ins().select(c, z, x)
            }
            UnaryOp::Exp => math::exp64(&mut k.b, x),
            UnaryOp::Log => math::log64(&mut k.b, x),
            UnaryOp::Reciprocal => {
                let o = k.b.ins().f64const(1.0);
                k.b.ins().fdiv(o, x)
            }
            UnaryOp::Sigmoid => {
                // e = e^-|x| never overflows; 1/(1+e) or e/(1+e)
                let a = k.b.ins().fabs(x);
                let na = k.b.ins().fneg(a);
                let e = math::exp64(&mut k.b, na);
                let o = k.b.ins().f64const(1.0);
                let den = k.b.ins().fadd(e, o);
                let r = k.b.ins().fdiv(o, den);
                let er = k.b.ins().fmul(e, r);
                let z = k.b.ins().f64const(0.0);
                let neg = k.b.ins().fcmp(FloatCC::LessThan, x, z);
                k.b.ins().select(neg, er, r)
            }
            _ => return Err(format!("{} on {d} is not supported", u.name())),
        });
    }
    if d == DType::Bool && u == UnaryOp::Not {
        return Ok(k.b.ins().bxor_imm_s(x, 1));
    }
    if let (UnaryOp::Clip { min, max }, true) = (u, d.is_int()) {
        // bounds (f32, ±inf when absent) clamped to the type's range
        let bits = d.size() as u32 * 8;
        let (tmin, tmax) = if d.is_signed_int() {
            ((i64::MIN >> (64 - bits)) as f64, (i64::MAX >> (64 - bits)) as f64)
        } else {
            (0.0, (u64::MAX >> (64 - bits)) as f64)
        };
        let lo = (min.get() as f64).ceil().clamp(tmin, tmax);
        let hi = (max.get() as f64).floor().clamp(tmin, tmax);
        let ty = k.b.func.dfg.value_type(x);
        // u64's top values do not fit i64: reinterpret the bits
        let cv = |v: f64| if v > i64::MAX as f64 { v as u64 as i64 } else { v as i64 };
        let lo = k.b.ins().iconst(ty, cv(lo));
        let hi = k.b.ins().iconst(ty, cv(hi));
        let ins = k.b.ins();
        return Ok(if d.is_signed_int() {
            let v = ins.smax(x, lo);
            k.b.ins().smin(v, hi)
        } else {
            let v = ins.umax(x, lo);
            k.b.ins().umin(v, hi)
        });
    }
    if u == UnaryOp::BitwiseNot && d.is_int() {
        return Ok(k.b.ins().bnot(x));
    }
    if d.is_signed_int() {
        let ins = k.b.ins();
        return Ok(match u {
            UnaryOp::Neg => ins.ineg(x),
            UnaryOp::Abs => ins.iabs(x),
            UnaryOp::Relu => {
                let ty = k.b.func.dfg.value_type(x);
                let z = k.b.ins().iconst(ty, 0);
                k.b.ins().smax(x, z)
            }
            _ => return Err(format!("{} on {d} is not supported", u.name())),
        });
    }
    Err(format!("{} on {d} is not supported", u.name()))
}

/// Pow with integer base and/or exponent, computed in f32: `|x|^y` by
/// exp(y·log|x|), negated for a negative base and an odd integer exponent,
/// NaN for a negative base and a non-integer exponent, 1 for y = 0; an
/// integer result is rounded to nearest (exact while it fits f32's 24-bit
/// mantissa, which covers the values int Pow can produce without overflow
/// in practice).
fn pow_mixed(k: &mut Kernel, in_d: &[DType], od: DType, x: Value, y: Value) -> LResult<Value> {
    let xf = if in_d[0] == DType::F32 { x } else { cast_scalar(k, in_d[0], DType::F32, x)? };
    let yf = if in_d[1] == DType::F32 { y } else { cast_scalar(k, in_d[1], DType::F32, y)? };
    let ax = k.b.ins().fabs(xf);
    let l = math::log(&mut k.b, ax);
    let t = k.b.ins().fmul(l, yf);
    let r = math::exp(&mut k.b, t);
    // integer-ness and parity of y
    let fy = math::floor(&mut k.b, yf, k.caps.round);
    let is_int = k.b.ins().fcmp(FloatCC::Equal, fy, yf);
    let half = k.b.ins().f32const(0.5);
    let hy = k.b.ins().fmul(yf, half);
    let fh = math::floor(&mut k.b, hy, k.caps.round);
    let two = k.b.ins().f32const(2.0);
    let even = k.b.ins().fmul(fh, two);
    let odd = k.b.ins().fcmp(FloatCC::NotEqual, even, yf);
    let zero = k.b.ins().f32const(0.0);
    let neg = k.b.ins().fcmp(FloatCC::LessThan, xf, zero);
    let flip = k.b.ins().band(neg, odd);
    let flip = k.b.ins().band(flip, is_int);
    let nr = k.b.ins().fneg(r);
    let r = k.b.ins().select(flip, nr, r);
    let not_int = k.b.ins().bxor_imm_s(is_int, 1);
    let bad = k.b.ins().band(neg, not_int);
    let nan = k.b.ins().f32const(f32::NAN);
    let r = k.b.ins().select(bad, nan, r);
    let y0 = k.b.ins().fcmp(FloatCC::Equal, yf, zero);
    let one = k.b.ins().f32const(1.0);
    let r = k.b.ins().select(y0, one, r);
    if od == DType::F32 {
        return Ok(r);
    }
    // round half away from zero, then convert
    let ar = k.b.ins().fabs(r);
    let ar = k.b.ins().fadd(ar, half);
    let ar = math::floor(&mut k.b, ar, k.caps.round);
    let rr = k.b.ins().fcopysign(ar, r);
    cast_scalar(k, DType::F32, od, rr)
}

/// The constant exponent of a Pow when every element is the same.
fn const_exponent(k: &Kernel) -> Option<f32> {
    let v = k.const_f32(1)?;
    let first = *v.first()?;
    v.iter().all(|&x| x == first).then_some(first)
}

/// Lowers `Unary`, `Binary`, `Where`, `Chain` and `BitCast` (see the module
/// docs); `Err` for dtypes the kernels do not handle.
pub fn lower(k: &mut Kernel) -> LResult {
    let op = k.node.op.clone();
    let n_in = k.node.inputs.len();
    let out_shape = k.out_shape(0).to_vec();
    let od = k.out_dtype(0);
    let in_d: Vec<DType> = (0..n_in).map(|i| k.in_dtype(i)).collect();
    for d in in_d.iter().chain([&od]) {
        if cl_type(*d).is_none() {
            return Err(format!("dtype {d} is not supported"));
        }
    }
    let pow_exp = if op == Op::Binary(BinaryOp::Pow) { const_exponent(k) } else { None };
    let int_or_f32 = |d: DType| d == DType::F32 || (d.is_int() && d != DType::Bool);
    let mixed_pow = op == Op::Binary(BinaryOp::Pow) && (in_d[0] != DType::F32 || in_d[1] != DType::F32);
    if mixed_pow && !(int_or_f32(in_d[0]) && int_or_f32(in_d[1]) && od == in_d[0]) {
        return Err(format!("Pow on {} ^ {} is not supported (f32 and integer operands are)", in_d[0], in_d[1]));
    }
    // Vector path: every operand and the result are f32 and the op is float -> float.
    let all_f32 = in_d.iter().all(|&d| d == DType::F32) && od == DType::F32;
    let vec_ok = k.caps.simd && all_f32 && !matches!(op, Op::Binary(BinaryOp::Mod | BinaryOp::Fmod) | Op::BitCast(_));
    // Validate the op once on a scalar type by dry-run checks.
    if !mixed_pow {
        check(&op, &in_d, od)?;
    }

    let mut strides: Vec<Vec<usize>> = (0..n_in).map(|i| bcast_strides(k.in_shape(i), &out_shape)).collect();
    strides.push(kerf_ir::eval::strides(&out_shape));
    let (shape, st) = collapse(&out_shape, &strides);
    let ptrs: Vec<Value> = (0..n_in).map(|i| k.input(i)).collect();
    let out = k.output(0);
    let sizes: Vec<i64> = in_d.iter().map(|d| d.size() as i64).collect();
    let osize = od.size() as i64;
    let r = shape.len();
    let inner = shape[r - 1];
    let mut first_err: Option<String> = None;
    k.nest(&shape[..r - 1], &mut |k, idx| {
        let offs: Vec<Value> = st.iter().map(|s| k.linear(idx, &s[..r - 1])).collect();
        // Operands broadcast along the inner axis: load once here.
        let mut hoisted: Vec<Option<Value>> = vec![None; n_in];
        for i in 0..n_in {
            if st[i][r - 1] == 0 {
                let p = k.addr(ptrs[i], offs[i], sizes[i]);
                let t = cl_type(in_d[i]).unwrap_or(types::I8);
                hoisted[i] = Some(k.ld(t, p, 0));
            }
        }
        // `check` above makes the emitters infallible; should one fail anyway,
        // the first error is returned instead of leaving the output unwritten.
        let mut failed: Option<String> = None;
        // the operands at element j; those `want` leaves out are a dead
        // constant in their place
        let load_args = |k: &mut Kernel, ty: Type, j: Value, want: Option<&dyn Fn(usize) -> bool>| -> Vec<Value> {
            let mut args = Vec::with_capacity(n_in);
            for i in 0..n_in {
                if want.is_some_and(|w| !w(i)) {
                    args.push(k.fsplat(ty, 0.0));
                    continue;
                }
                let v = match hoisted[i] {
                    Some(s) => k.widen(if ty.is_vector() { ty } else { types::F32 }, s),
                    None => {
                        let e = k.b.ins().iadd(offs[i], j);
                        let lt = if ty.is_vector() { ty } else { cl_type(in_d[i]).unwrap_or(types::I8) };
                        k.ld_at(lt, ptrs[i], e, sizes[i], 0)
                    }
                };
                let v = if !ty.is_vector() && hoisted[i].is_some() { hoisted[i].unwrap_or(v) } else { v };
                args.push(v);
            }
            args
        };
        if let Op::Chain(steps) = &op {
            if vec_ok && has_streams(k, inner) && steps.iter().any(|s| step_stream(s).is_some()) {
                let ob = k.addr(out, offs[n_in], 4);
                if let Err(e) = chain_streamed(k, steps, inner, ob, &load_args) {
                    first_err.get_or_insert(e);
                }
                return;
            }
        }
        let mut body = |k: &mut Kernel, ty: Type, j: Value| {
            let args = load_args(k, ty, j, None);
            let res = if ty.is_vector() {
                apply_vec(k, &op, ty, &args, pow_exp)
            } else {
                if mixed_pow {
                    pow_mixed(k, &in_d, od, args[0], args[1])
                } else {
                    apply_scalar(k, &op, &in_d, od, &args, pow_exp)
                }
            };
            match res {
                Ok(v) => {
                    let e = k.b.ins().iadd(offs[n_in], j);
                    k.st_at(v, out, e, osize, 0);
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        };
        if vec_ok {
            let done = match (unary_stream(&op), hoisted[0]) {
                (Some(f), None) => {
                    let src = k.addr(ptrs[0], offs[0], 4);
                    let dst = k.addr(out, offs[n_in], 4);
                    stream_prefix(k, Some(f), src, dst, inner)
                }
                _ => 0,
            };
            k.for_vec_from(done, inner, &mut body);
        } else {
            k.for_n(0, inner as i64, 1, |k, j| body(k, types::F32, j));
        }
        if let Some(e) = failed {
            first_err.get_or_insert(e);
        }
    });
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The AVX2 stream ([`crate::ukernel::vmath`]) computing a unary op the
/// way [`unary_f`] does.
pub(super) fn unary_stream(op: &Op) -> Option<VFn> {
    match op {
        Op::Unary(UnaryOp::Exp) => Some(VFn::Exp),
        Op::Unary(UnaryOp::Erf) => Some(VFn::Erf),
        Op::Unary(UnaryOp::Tanh) => Some(VFn::Tanh),
        Op::Unary(UnaryOp::Sigmoid) => Some(VFn::Sigmoid),
        Op::Unary(UnaryOp::Gelu { tanh: false }) => Some(VFn::Gelu),
        Op::Unary(UnaryOp::Gelu { tanh: true }) => Some(VFn::GeluTanh),
        _ => None,
    }
}

/// Checks support up front so that the emitters never fail halfway.
fn check(op: &Op, in_d: &[DType], od: DType) -> LResult {
    use BinaryOp::*;
    match op {
        Op::Unary(u) => {
            // halves compute in f32
            let d = if is_half(in_d[0]) { DType::F32 } else { in_d[0] };
            let ok = match d {
                DType::F32 => !matches!(u, UnaryOp::Not | UnaryOp::BitwiseNot),
                DType::F64 => matches!(
                    u,
                    UnaryOp::Neg
                        | UnaryOp::Abs
                        | UnaryOp::Sqrt
                        | UnaryOp::Relu
                        | UnaryOp::Exp
                        | UnaryOp::Log
                        | UnaryOp::Reciprocal
                        | UnaryOp::Sigmoid
                ),
                DType::Bool => *u == UnaryOp::Not,
                d if d.is_signed_int() => matches!(
                    u,
                    UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Relu | UnaryOp::Clip { .. } | UnaryOp::BitwiseNot
                ),
                d if d.is_int() => matches!(u, UnaryOp::Clip { .. } | UnaryOp::BitwiseNot),
                _ => false,
            };
            if !ok {
                return Err(format!("{} on {d} is not supported", u.name()));
            }
        }
        Op::Binary(b) => {
            let d = if is_half(in_d[0]) { DType::F32 } else { in_d[0] };
            let ok = match d {
                DType::F32 => !matches!(b, And | Or | Xor) && !b.is_bitwise(),
                DType::F64 => {
                    matches!(
                        b,
                        Add | Sub
                            | Mul
                            | Div
                            | Max
                            | Min
                            | Mod
                            | Fmod
                            | Equal
                            | Greater
                            | GreaterOrEqual
                            | Less
                            | LessOrEqual
                    )
                }
                DType::Bool => matches!(b, And | Or | Xor | Equal),
                d if d.is_int() => {
                    matches!(
                        b,
                        Add | Sub
                            | Mul
                            | Div
                            | Mod
                            | Fmod
                            | Max
                            | Min
                            | Equal
                            | Greater
                            | GreaterOrEqual
                            | Less
                            | LessOrEqual
                    ) || b.is_bitwise()
                }
                _ => false,
            };
            if !ok {
                return Err(format!("{} on {d} is not supported", b.name()));
            }
        }
        Op::BitCast(to) => {
            if in_d[0].size() != to.size() || cl_type(*to).is_none() {
                return Err(format!("BitCast {} -> {to} is not supported", in_d[0]));
            }
        }
        Op::Where => {
            if cl_type(in_d[1]).is_none() {
                return Err(format!("Where on {} is not supported", in_d[1]));
            }
        }
        Op::Chain(steps) => {
            if in_d.iter().any(|&d| d != DType::F32) || od != DType::F32 {
                return Err("Chain needs f32 inputs and output".into());
            }
            for s in steps {
                match *s {
                    ChainStep::Unary(u) if !kerf_ir::op::chain::unary_ok(u) => {
                        return Err(format!("{} cannot be a chain step", u.name()))
                    }
                    ChainStep::Binary { op, arg, .. } if !kerf_ir::op::chain::binary_ok(op) || arg >= in_d.len() => {
                        return Err(format!("{} (input {arg}) cannot be a chain step", op.name()))
                    }
                    _ => {}
                }
            }
        }
        _ => return Err("not an elementwise op".into()),
    }
    let _ = od;
    Ok(())
}

fn apply_vec(k: &mut Kernel, op: &Op, ty: Type, args: &[Value], pow_exp: Option<f32>) -> LResult<Value> {
    match op {
        Op::Unary(u) => unary_f(k, *u, ty, args[0]),
        Op::Binary(b) => binary_f(k, *b, ty, args[0], args[1], pow_exp),
        Op::Chain(steps) => chain(k, steps, ty, args),
        _ => Err("no vector form".into()),
    }
}

fn apply_scalar(
    k: &mut Kernel,
    op: &Op,
    in_d: &[DType],
    od: DType,
    args: &[Value],
    pow_exp: Option<f32>,
) -> LResult<Value> {
    let half_math = matches!(op, Op::Unary(_) | Op::Binary(_)) && in_d.iter().all(|&d| is_half(d));
    if half_math {
        // f16/bf16 arithmetic: exact widening to f32, the f32 op, one rounding back
        let wide: Vec<Value> = args.iter().zip(in_d).map(|(&a, &d)| half_to_f32(k, d, a)).collect();
        let f32s = vec![DType::F32; in_d.len()];
        let od32 = if is_half(od) { DType::F32 } else { od };
        let r = apply_scalar(k, op, &f32s, od32, &wide, pow_exp)?;
        return Ok(if is_half(od) { f32_to_half(k, od, r) } else { r });
    }
    match op {
        Op::Unary(u) => unary_scalar(k, *u, in_d[0], args[0]),
        Op::Binary(b) => binary_scalar(k, *b, in_d[0], args[0], args[1], pow_exp),
        Op::Chain(steps) => chain(k, steps, types::F32, args),
        Op::Where => Ok(k.b.ins().select(args[0], args[1], args[2])),
        Op::BitCast(to) => {
            let tt = cl_type(*to).ok_or_else(|| format!("BitCast to {to} is not supported"))?;
            let x = args[0];
            if k.b.func.dfg.value_type(x) == tt {
                Ok(x)
            } else {
                Ok(k.b.ins().bitcast(tt, MemFlagsData::new(), x))
            }
        }
        _ => Err(format!("{} is not elementwise (result {od})", op.name())),
    }
}
