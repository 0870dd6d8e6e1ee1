//! Scalar f64 routines: `exp64`, `log64` and the exact remainder `fmod64`.
//!
//! Same rules as the parent module (no calls, no branches, no `fma`, `select` for special
//! cases), but scalar `f64` only: kernels on f64 data run the scalar loop. The argument must be
//! an `f64` value; anything else is a codegen bug.
//!
//! Accuracy (measured by `math/tests.rs::f64_routines_within_documented_ulp` against the
//! correctly rounded `std` results): `exp64` and `log64` ≤ [`MAX_ULP_EXP64`] /
//! [`MAX_ULP_LOG64`] ulp, same special values as the f32 versions; `fmod64` is exact (C `fmod`
//! semantics, result has the dividend's sign) whenever the truncated quotient is below 2^53,
//! which covers every pair of f32 inputs with |a/b| < 2^53 and f64 inputs in the same range.

// The constants are fdlibm's decimal literals verbatim (each rounds to the intended double),
// kept that way so they can be checked against the source.
#![allow(clippy::excessive_precision)]

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;

/// Maximum error of [`exp64`] in ulp.
pub const MAX_ULP_EXP64: u32 = 1;
/// Maximum error of [`log64`] in ulp.
pub const MAX_ULP_LOG64: u32 = 1;

fn c(b: &mut FunctionBuilder, v: f64) -> Value {
    b.ins().f64const(v)
}

fn bits(b: &mut FunctionBuilder, x: Value) -> Value {
    b.ins().bitcast(types::I64, MemFlagsData::new(), x)
}

fn float(b: &mut FunctionBuilder, x: Value) -> Value {
    b.ins().bitcast(types::F64, MemFlagsData::new(), x)
}

/// e^x (fdlibm `__ieee754_exp`): x = k·ln2 + r with ln2 split in hi/lo parts, the rational
/// approximation `1 + r + r·c/(2 - c)`, then 2^k applied as two factors 2^⌊k/2⌋·2^⌈k/2⌉ so
/// results reach subnormals and overflow to inf with one rounding. x is clamped to
/// [-746, 710], where the result is already 0 or inf.
pub fn exp64(b: &mut FunctionBuilder, x: Value) -> Value {
    let lo = c(b, -746.0);
    let hi = c(b, 710.0);
    let xc = b.ins().fmax(x, lo);
    let xc = b.ins().fmin(xc, hi);
    // k = round(x·log2 e) with the 1.5·2^52 trick (|k| ≤ 1077)
    let log2e = c(b, std::f64::consts::LOG2_E);
    let magic = c(b, 6_755_399_441_055_744.0);
    let s = b.ins().fmul(xc, log2e);
    let sh = b.ins().fadd(s, magic);
    let kf = b.ins().fsub(sh, magic);
    let shb = bits(b, sh);
    let magic_bits = b.ins().iconst(types::I64, 0x4338_0000_0000_0000);
    let k = b.ins().isub(shb, magic_bits);

    let ln2_hi = c(b, 6.931_471_803_691_238_164_90e-1);
    let ln2_lo = c(b, 1.908_214_929_270_587_700_02e-10);
    let ph = b.ins().fmul(kf, ln2_hi);
    let hi_r = b.ins().fsub(xc, ph);
    let lo_r = b.ins().fmul(kf, ln2_lo);
    let r = b.ins().fsub(hi_r, lo_r);
    let t = b.ins().fmul(r, r);
    let mut p = c(b, 4.138_136_797_057_238_460_39e-8);
    for coef in [-1.653_390_220_546_525_153_90e-6, 6.613_756_321_437_934_361_17e-5, -2.777_777_777_701_559_338_42e-3] {
        let m = b.ins().fmul(p, t);
        let cc = c(b, coef);
        p = b.ins().fadd(m, cc);
    }
    let m = b.ins().fmul(p, t);
    let p1 = c(b, 1.666_666_666_666_660_190_37e-1);
    let p = b.ins().fadd(m, p1);
    let tp = b.ins().fmul(t, p);
    let cr = b.ins().fsub(r, tp);
    // y = 1 - ((lo - (r·c)/(2 - c)) - hi)
    let rc = b.ins().fmul(r, cr);
    let two = c(b, 2.0);
    let den = b.ins().fsub(two, cr);
    let q = b.ins().fdiv(rc, den);
    let a = b.ins().fsub(lo_r, q);
    let a = b.ins().fsub(a, hi_r);
    let one = c(b, 1.0);
    let y = b.ins().fsub(one, a);

    let k1 = b.ins().sshr_imm_u(k, 1);
    let k2 = b.ins().isub(k, k1);
    let e1 = b.ins().iadd_imm_s(k1, 1023);
    let e1 = b.ins().ishl_imm_u(e1, 52);
    let s1 = float(b, e1);
    let e2 = b.ins().iadd_imm_s(k2, 1023);
    let e2 = b.ins().ishl_imm_u(e2, 52);
    let s2 = float(b, e2);
    let y = b.ins().fmul(y, s1);
    b.ins().fmul(y, s2)
}

/// Natural logarithm (fdlibm `__ieee754_log`): subnormals scaled by 2^54 first, x = 2^k·m with
/// m in [√½, √2) from the bits, f = m - 1, s = f/(2 + f), a degree-7 polynomial in s², and the
/// special inputs patched with selects.
pub fn log64(b: &mut FunctionBuilder, x: Value) -> Value {
    let min_normal = c(b, f64::MIN_POSITIVE);
    let is_sub = b.ins().fcmp(FloatCC::LessThan, x, min_normal);
    let two54 = c(b, 18_014_398_509_481_984.0);
    let xs = b.ins().fmul(x, two54);
    let xn = b.ins().select(is_sub, xs, x);
    let m54 = b.ins().iconst(types::I64, -54);
    let z0 = b.ins().iconst(types::I64, 0);
    let kadj = b.ins().select(is_sub, m54, z0);

    let ix = bits(b, xn);
    let ix = b.ins().iadd_imm_s(ix, (0x3ff0_0000 - 0x3fe6_a09e) << 32);
    let k = b.ins().ushr_imm_u(ix, 52);
    let k = b.ins().iadd_imm_s(k, -0x3ff);
    let k = b.ins().iadd(k, kadj);
    let m = b.ins().band_imm_s(ix, 0x000f_ffff_ffff_ffff);
    let m = b.ins().iadd_imm_s(m, 0x3fe6_a09e << 32);
    let m = float(b, m);

    let one = c(b, 1.0);
    let two = c(b, 2.0);
    let half = c(b, 0.5);
    let f = b.ins().fsub(m, one);
    let den = b.ins().fadd(f, two);
    let s = b.ins().fdiv(f, den);
    let z = b.ins().fmul(s, s);
    let w = b.ins().fmul(z, z);
    let horner = |b: &mut FunctionBuilder, x: Value, cs: &[f64]| {
        let mut acc = c(b, cs[0]);
        for &cc in &cs[1..] {
            let m = b.ins().fmul(acc, x);
            let k = c(b, cc);
            acc = b.ins().fadd(m, k);
        }
        acc
    };
    // t1 = w·(Lg2 + w·(Lg4 + w·Lg6)), t2 = z·(Lg1 + w·(Lg3 + w·(Lg5 + w·Lg7)))
    let t1 = horner(b, w, &[1.531_383_769_920_937_332e-1, 2.222_219_843_214_978_396e-1, 3.999_999_999_940_941_908e-1]);
    let t1 = b.ins().fmul(w, t1);
    let t2 = horner(
        b,
        w,
        &[
            1.479_819_860_511_658_591e-1,
            1.818_357_216_161_805_012e-1,
            2.857_142_874_366_239_149e-1,
            6.666_666_666_666_735_130e-1,
        ],
    );
    let t2 = b.ins().fmul(z, t2);
    let rr = b.ins().fadd(t2, t1);
    let hf = b.ins().fmul(half, f);
    let hfsq = b.ins().fmul(hf, f);
    let dk = b.ins().fcvt_from_sint(types::F64, k);
    let ln2_hi = c(b, 6.931_471_803_691_238_164_90e-1);
    let ln2_lo = c(b, 1.908_214_929_270_587_700_02e-10);
    let a = b.ins().fadd(hfsq, rr);
    let a = b.ins().fmul(s, a);
    let lo = b.ins().fmul(dk, ln2_lo);
    let a = b.ins().fadd(a, lo);
    let a = b.ins().fsub(a, hfsq);
    let a = b.ins().fadd(a, f);
    let hi = b.ins().fmul(dk, ln2_hi);
    let res = b.ins().fadd(a, hi);

    let inf = c(b, f64::INFINITY);
    let is_inf = b.ins().fcmp(FloatCC::Equal, x, inf);
    let res = b.ins().select(is_inf, inf, res);
    let zero = c(b, 0.0);
    let is_zero = b.ins().fcmp(FloatCC::Equal, x, zero);
    let ninf = c(b, f64::NEG_INFINITY);
    let res = b.ins().select(is_zero, ninf, res);
    let bad = b.ins().fcmp(FloatCC::UnorderedOrLessThan, x, zero);
    let nan = c(b, f64::NAN);
    b.ins().select(bad, nan, res)
}

/// Truncation toward zero without a rounding instruction (baseline x86-64 has none):
/// through i64 below 2^52, where every f64 is already an integer above.
fn trunc64(b: &mut FunctionBuilder, q: Value) -> Value {
    let i = b.ins().fcvt_to_sint_sat(types::I64, q);
    let t = b.ins().fcvt_from_sint(types::F64, i);
    let a = b.ins().fabs(q);
    let lim = c(b, 4_503_599_627_370_496.0);
    let small = b.ins().fcmp(FloatCC::LessThan, a, lim);
    b.ins().select(small, t, q)
}

/// Veltkamp split: x = hi + lo with hi holding the top 26 bits.
fn split(b: &mut FunctionBuilder, x: Value) -> (Value, Value) {
    let k = c(b, 134_217_729.0);
    let t = b.ins().fmul(x, k);
    let d = b.ins().fsub(t, x);
    let hi = b.ins().fsub(t, d);
    let lo = b.ins().fsub(x, hi);
    (hi, lo)
}

/// C `fmod(a, b)`: a - trunc(a/b)·b with the product formed exactly (Dekker's two-product, no
/// FMA), a one-step correction when the rounded quotient was off by one, and the sign of a.
/// fmod(±inf, y) and fmod(x, 0) are NaN, fmod(x, ±inf) = x for finite x.
pub fn fmod64(b: &mut FunctionBuilder, a: Value, d: Value) -> Value {
    let q = b.ins().fdiv(a, d);
    let qt = trunc64(b, q);
    let p = b.ins().fmul(qt, d);
    let (qh, ql) = split(b, qt);
    let (dh, dl) = split(b, d);
    let e = b.ins().fmul(qh, dh);
    let e = b.ins().fsub(e, p);
    let t = b.ins().fmul(qh, dl);
    let e = b.ins().fadd(e, t);
    let t = b.ins().fmul(ql, dh);
    let e = b.ins().fadd(e, t);
    let t = b.ins().fmul(ql, dl);
    let e = b.ins().fadd(e, t);
    let r = b.ins().fsub(a, p);
    let r = b.ins().fsub(r, e);
    // quotient rounded up to the next integer: r has the wrong sign; rounded down: |r| ≥ |d|
    let ad = b.ins().fabs(d);
    let sd = b.ins().fcopysign(ad, a);
    let zero = c(b, 0.0);
    let ra = b.ins().fmul(r, a);
    let wrong = b.ins().fcmp(FloatCC::LessThan, ra, zero);
    let rp = b.ins().fadd(r, sd);
    let r = b.ins().select(wrong, rp, r);
    let ar = b.ins().fabs(r);
    let over = b.ins().fcmp(FloatCC::GreaterThanOrEqual, ar, ad);
    let rm = b.ins().fsub(r, sd);
    let r = b.ins().select(over, rm, r);
    // finite a over an infinite divisor
    let inf = c(b, f64::INFINITY);
    let aa = b.ins().fabs(a);
    let a_fin = b.ins().fcmp(FloatCC::LessThan, aa, inf);
    let d_inf = b.ins().fcmp(FloatCC::Equal, ad, inf);
    let keep = b.ins().band(a_fin, d_inf);
    let r = b.ins().select(keep, a, r);
    b.ins().fcopysign(r, a)
}

/// Python/numpy `mod` (ONNX Mod with fmod=0) for floats: the fmod remainder moved to the
/// divisor's sign, and a zero remainder signed like the divisor.
pub fn pymod64(b: &mut FunctionBuilder, a: Value, d: Value) -> Value {
    let r = fmod64(b, a, d);
    let zero = c(b, 0.0);
    let rneg = b.ins().fcmp(FloatCC::LessThan, r, zero);
    let dneg = b.ins().fcmp(FloatCC::LessThan, d, zero);
    let differ = b.ins().bxor(rneg, dneg);
    let nz = b.ins().fcmp(FloatCC::NotEqual, r, zero);
    let adj = b.ins().band(differ, nz);
    let rd = b.ins().fadd(r, d);
    let r = b.ins().select(adj, rd, r);
    let is_zero = b.ins().fcmp(FloatCC::Equal, r, zero);
    let signed_zero = b.ins().fcopysign(zero, d);
    b.ins().select(is_zero, signed_zero, r)
}
