//! The elementwise ops on scalars of every dtype (ints, bools, f64, f16
//! through f32), what the kernels run where not every operand and the
//! result are f32: binary ops (comparisons to bool, integer division and
//! shifts with ONNX's semantics, f64 in f64), unary ops, and `Pow` with
//! mixed operand types.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, InstBuilder, Value};
use kerf_ir::{BinaryOp, DType, UnaryOp};

use super::super::cast::cast_scalar;
use super::super::{Kernel, LResult};
use super::{binary_f, unary_f};
use crate::math;

fn bool_of(k: &mut Kernel, c: Value) -> Value {
    // icmp/fcmp give an i8 0/1 already
    let _ = k;
    c
}

/// A scalar binary op for any dtype (`a`, `b` of the input type).
pub(super) fn binary_scalar(
    k: &mut Kernel,
    op: BinaryOp,
    d: DType,
    a: Value,
    b: Value,
    const_exp: Option<f32>,
) -> LResult<Value> {
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

pub(super) fn unary_scalar(k: &mut Kernel, u: UnaryOp, d: DType, x: Value) -> LResult<Value> {
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
pub(super) fn pow_mixed(k: &mut Kernel, in_d: &[DType], od: DType, x: Value, y: Value) -> LResult<Value> {
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
