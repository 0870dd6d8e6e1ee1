//! tan, the inverse trigonometric and the (inverse) hyperbolic functions.
//!
//! Same contract as the parent module: f32 or f32x4 argument, one operation sequence for both
//! (bit-identical scalar and vector results), no calls, no branches, no `fma`. Every branch of
//! a piecewise definition is computed and the lanes pick theirs with `select`/`bitselect`, so
//! intermediate infinities and NaNs in unpicked branches are harmless.
//!
//! Accuracy (measured by `math/tests.rs::trig_within_documented_ulp` against f64 `std`
//! references; the constants below are the documented bounds, the measured maxima are in their
//! doc comments):
//! - `atan`, `asin`, `acos`, `sinh`, `cosh`, `asinh`, `acosh`, `atanh`: ≤ [`MAX_ULP_INV_HYP`] ulp
//!   over their whole domain; out-of-domain inputs give NaN, poles ±inf, NaN propagates.
//! - `tan`: ≤ [`MAX_ULP_TAN`] ulp for |x| ≤ [`TAN_ULP_MAX_ARG`]. Up to
//!   [`SIN_COS_MAX_ARG`](super::SIN_COS_MAX_ARG) the result is within 4 ulp of tan(x + δ) with
//!   |δ| ≤ [`TAN_ARG_REL_ERR`]·|x| (the π/2 reduction's error; next to a pole tan' = 1 + tan² is
//!   huge, so no ulp bound holds there); ±inf and NaN give NaN.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

use super::{exp, fc, horner, ic, log, odd_branches, reduce_half_pi, sel, with_sign_of, Ty};

/// Maximum error of every function here except `tan`, in ulp (measured over 3-6.5 million
/// points each by `trig_within_documented_ulp`: sinh 3.44, atanh 3.08, cosh 3.01, acosh 2.76,
/// atan 2.71, asinh 2.47, asin 2.39, acos 1.27).
pub const MAX_ULP_INV_HYP: u32 = 4;
/// Maximum error of [`tan`] in ulp for |x| ≤ [`TAN_ULP_MAX_ARG`] (measured: 3.52).
pub const MAX_ULP_TAN: u32 = 4;
/// Range of [`MAX_ULP_TAN`].
pub const TAN_ULP_MAX_ARG: f32 = 256.0;
/// Relative argument error of [`tan`] beyond [`TAN_ULP_MAX_ARG`] (see the module docs; measured
/// 2.9e-15 over 6.9 million points up to `SIN_COS_MAX_ARG`).
pub const TAN_ARG_REL_ERR: f32 = 5e-15;

/// Above this magnitude `asinh`/`acosh` use log(2|x|): the neglected term is below 2^-26
/// relative, and x² stays finite below it.
const HYP_BIG: f32 = 4096.0;

/// log(1 + u) for u ≥ 0, accurate for small u (Kahan's trick): with w = 1 + u rounded,
/// log1p(u) = log(w)·u/(w - 1), and u itself where w == 1. `u` must be finite and below 2^100
/// (callers clamp), so w - 1 never overflows to inf/inf.
fn log1p_pos(b: &mut FunctionBuilder, t: Ty, u: Value) -> Value {
    let one = fc(b, t, 1.0);
    let zero = fc(b, t, 0.0);
    let w = b.ins().fadd(u, one);
    let d = b.ins().fsub(w, one);
    let l = log(b, w);
    let q = b.ins().fdiv(u, d);
    let r = b.ins().fmul(l, q);
    let tiny = b.ins().fcmp(FloatCC::Equal, d, zero);
    sel(b, t, tiny, u, r)
}

/// tan(x) from the sin/cos reduction: sin r / cos r in even quadrants, -cos r / sin r in odd.
pub fn tan(b: &mut FunctionBuilder, x: Value) -> Value {
    let t = Ty::of(b, x);
    let (j, sin_r, cos_r) = reduce_half_pi(b, t, x);
    let even = b.ins().fdiv(sin_r, cos_r);
    let odd = b.ins().fdiv(cos_r, sin_r);
    let odd = b.ins().fneg(odd);
    let one_i = ic(b, t, 1);
    let q = b.ins().band(j, one_i);
    let zero_i = ic(b, t, 0);
    let is_odd = b.ins().icmp(IntCC::NotEqual, q, zero_i);
    let y = sel(b, t, is_odd, odd, even);
    // ±inf and NaN -> NaN
    let a = b.ins().fabs(x);
    let inf = fc(b, t, f32::INFINITY);
    let finite = b.ins().fcmp(FloatCC::LessThan, a, inf);
    let nan = fc(b, t, f32::NAN);
    sel(b, t, finite, y, nan)
}

/// arctan (Cephes `atanf`): |x| > tan(3π/8): π/2 + atan(-1/|x|); |x| > tan(π/8):
/// π/4 + atan((|x|-1)/(|x|+1)); then an odd polynomial on the reduced argument (|r| ≤ 0.4143).
pub fn atan(b: &mut FunctionBuilder, x: Value) -> Value {
    let t = Ty::of(b, x);
    let a = b.ins().fabs(x);
    let one = fc(b, t, 1.0);
    let zero = fc(b, t, 0.0);
    let m1 = fc(b, t, -1.0);
    let inv = b.ins().fdiv(m1, a);
    let num = b.ins().fsub(a, one);
    let den = b.ins().fadd(a, one);
    let mid = b.ins().fdiv(num, den);
    let t3 = fc(b, t, 2.414_213_5);
    let t1 = fc(b, t, 0.414_213_57);
    let big = b.ins().fcmp(FloatCC::GreaterThan, a, t3);
    let medium = b.ins().fcmp(FloatCC::GreaterThan, a, t1);
    let pi2 = fc(b, t, std::f32::consts::FRAC_PI_2);
    let pi4 = fc(b, t, std::f32::consts::FRAC_PI_4);
    let r = sel(b, t, medium, mid, a);
    let r = sel(b, t, big, inv, r);
    let y0 = sel(b, t, medium, pi4, zero);
    let y0 = sel(b, t, big, pi2, y0);
    let z = b.ins().fmul(r, r);
    let p = horner(b, t, z, &[8.053_744_5e-2, -1.387_768_6e-1, 1.997_771_1e-1, -3.333_295e-1]);
    let rz = b.ins().fmul(r, z);
    let y = b.ins().fmul(rz, p);
    let y = b.ins().fadd(y, r);
    let y = b.ins().fadd(y0, y);
    with_sign_of(b, t, y, x)
}

/// asin on |s| ≤ 0.5 (Cephes `asinf` polynomial): s + s·z·P(z), z = s². Odd in s.
fn asin_core(b: &mut FunctionBuilder, t: Ty, s: Value) -> Value {
    let z = b.ins().fmul(s, s);
    let p = horner(b, t, z, &[4.216_32e-2, 2.418_131e-2, 4.547_002_6e-2, 7.495_300_3e-2, 1.666_675_2e-1]);
    let sz = b.ins().fmul(s, z);
    let y = b.ins().fmul(sz, p);
    b.ins().fadd(y, s)
}

/// √((1 - |x|)/2) and the flag |x| > 0.5, shared by asin and acos (the half-angle identity
/// asin(a) = π/2 - 2·asin(√((1-a)/2)) keeps the core's argument ≤ 0.5). |x| > 1 gives NaN.
fn half_angle(b: &mut FunctionBuilder, t: Ty, a: Value) -> (Value, Value) {
    let one = fc(b, t, 1.0);
    let half = fc(b, t, 0.5);
    let d = b.ins().fsub(one, a);
    let z = b.ins().fmul(d, half);
    let s = b.ins().sqrt(z);
    let big = b.ins().fcmp(FloatCC::GreaterThan, a, half);
    (s, big)
}

/// arcsin (Cephes `asinf`).
pub fn asin(b: &mut FunctionBuilder, x: Value) -> Value {
    let t = Ty::of(b, x);
    let a = b.ins().fabs(x);
    let (s, big) = half_angle(b, t, a);
    let arg = sel(b, t, big, s, a);
    let y = asin_core(b, t, arg);
    let y2 = b.ins().fadd(y, y);
    let pi2 = fc(b, t, std::f32::consts::FRAC_PI_2);
    let yb = b.ins().fsub(pi2, y2);
    let r = sel(b, t, big, yb, y);
    // |x| > 1: the half-angle sqrt is NaN, but a NaN lane has no sign to restore
    with_sign_of(b, t, r, x)
}

/// arccos (Cephes `acosf`): |x| ≤ 0.5: π/2 - asin(x); otherwise 2·asin(√((1-|x|)/2)),
/// reflected to π - that for x < 0.
pub fn acos(b: &mut FunctionBuilder, x: Value) -> Value {
    let t = Ty::of(b, x);
    let a = b.ins().fabs(x);
    let (s, big) = half_angle(b, t, a);
    let arg = sel(b, t, big, s, x);
    let y = asin_core(b, t, arg);
    let pi2 = fc(b, t, std::f32::consts::FRAC_PI_2);
    let small = b.ins().fsub(pi2, y);
    let y2 = b.ins().fadd(y, y);
    let pi = fc(b, t, std::f32::consts::PI);
    let refl = b.ins().fsub(pi, y2);
    let zero = fc(b, t, 0.0);
    let neg = b.ins().fcmp(FloatCC::LessThan, x, zero);
    let bigr = sel(b, t, neg, refl, y2);
    sel(b, t, big, bigr, small)
}

/// s = e^a/2 computed as (h/2)·h with h = e^{a/2}, which stays finite for every a where
/// sinh/cosh are (a ≤ 89.4).
fn half_exp(b: &mut FunctionBuilder, t: Ty, a: Value) -> Value {
    let half = fc(b, t, 0.5);
    let ha = b.ins().fmul(a, half);
    let h = exp(b, ha);
    let hh = b.ins().fmul(h, half);
    b.ins().fmul(hh, h)
}

/// sinh: |x| < 1: Cephes' odd polynomial x + x³·P(x²); otherwise s - 1/(4s) with s = e^|x|/2.
pub fn sinh(b: &mut FunctionBuilder, x: Value) -> Value {
    let t = Ty::of(b, x);
    let a = b.ins().fabs(x);
    let z = b.ins().fmul(a, a);
    let p = horner(b, t, z, &[2.037_219_1e-4, 8.330_284e-3, 1.666_671_6e-1]);
    let az = b.ins().fmul(a, z);
    let small = b.ins().fmul(az, p);
    let small = b.ins().fadd(small, a);
    let s = half_exp(b, t, a);
    let q = fc(b, t, 0.25);
    let inv = b.ins().fdiv(q, s);
    let big = b.ins().fsub(s, inv);
    odd_branches(b, x, a, 1.0, small, big)
}

/// cosh = s + 1/(4s) with s = e^|x|/2 (no cancellation anywhere).
pub fn cosh(b: &mut FunctionBuilder, x: Value) -> Value {
    let t = Ty::of(b, x);
    let a = b.ins().fabs(x);
    let s = half_exp(b, t, a);
    let q = fc(b, t, 0.25);
    let inv = b.ins().fdiv(q, s);
    b.ins().fadd(s, inv)
}

/// asinh: log1p(a + a²/(1 + √(1 + a²))) for a = |x| ≤ 4096, log(a) + ln 2 above; odd.
pub fn asinh(b: &mut FunctionBuilder, x: Value) -> Value {
    let t = Ty::of(b, x);
    let a = b.ins().fabs(x);
    let cap = fc(b, t, HYP_BIG);
    let ac = b.ins().fmin(a, cap);
    let one = fc(b, t, 1.0);
    let a2 = b.ins().fmul(ac, ac);
    let r = b.ins().fadd(a2, one);
    let r = b.ins().sqrt(r);
    let r = b.ins().fadd(r, one);
    let q = b.ins().fdiv(a2, r);
    let u = b.ins().fadd(ac, q);
    let small = log1p_pos(b, t, u);
    let la = log(b, a);
    let ln2 = fc(b, t, std::f32::consts::LN_2);
    let big = b.ins().fadd(la, ln2);
    let is_big = b.ins().fcmp(FloatCC::GreaterThan, a, cap);
    let y = sel(b, t, is_big, big, small);
    with_sign_of(b, t, y, x)
}

/// acosh for x ≥ 1: log1p(d + √(2d + d²)) with d = x - 1 (exact near 1) for x ≤ 4096,
/// log(x) + ln 2 above; NaN below 1.
pub fn acosh(b: &mut FunctionBuilder, x: Value) -> Value {
    let t = Ty::of(b, x);
    let one = fc(b, t, 1.0);
    let cap = fc(b, t, HYP_BIG);
    let xc = b.ins().fmin(x, cap);
    let d = b.ins().fsub(xc, one);
    let d2 = b.ins().fadd(d, d);
    let dd = b.ins().fmul(d, d);
    let r = b.ins().fadd(d2, dd);
    let r = b.ins().sqrt(r);
    let u = b.ins().fadd(d, r);
    let small = log1p_pos(b, t, u);
    let lx = log(b, x);
    let ln2 = fc(b, t, std::f32::consts::LN_2);
    let big = b.ins().fadd(lx, ln2);
    let is_big = b.ins().fcmp(FloatCC::GreaterThan, x, cap);
    let y = sel(b, t, is_big, big, small);
    let below = b.ins().fcmp(FloatCC::LessThan, x, one);
    let nan = fc(b, t, f32::NAN);
    sel(b, t, below, nan, y)
}

/// atanh = ½·log1p(2a/(1 - a)) for a = |x| < 1 (1 - a is exact for a ≥ ½); ±inf at ±1, NaN
/// beyond; odd.
pub fn atanh(b: &mut FunctionBuilder, x: Value) -> Value {
    let t = Ty::of(b, x);
    let a = b.ins().fabs(x);
    let one = fc(b, t, 1.0);
    let half = fc(b, t, 0.5);
    let zero = fc(b, t, 0.0);
    let d = b.ins().fsub(one, a);
    let a2 = b.ins().fadd(a, a);
    let u = b.ins().fdiv(a2, d);
    // a ≥ 1 makes u inf or negative; those lanes are replaced below
    let u = b.ins().fmax(u, zero);
    let lim = fc(b, t, 1e30);
    let u = b.ins().fmin(u, lim);
    let l = log1p_pos(b, t, u);
    let y = b.ins().fmul(l, half);
    let inf = fc(b, t, f32::INFINITY);
    let at_one = b.ins().fcmp(FloatCC::Equal, a, one);
    let y = sel(b, t, at_one, inf, y);
    let beyond = b.ins().fcmp(FloatCC::GreaterThan, a, one);
    let nan = fc(b, t, f32::NAN);
    let y = sel(b, t, beyond, nan, y);
    with_sign_of(b, t, y, x)
}
