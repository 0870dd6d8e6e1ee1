//! Self-contained transcendental functions emitted as Cranelift IR.
//!
//! Generated objects must not have undefined symbols (no libm, no `fmaf`), so every kernel that
//! needs `exp`, `log`, `tanh`, `sigmoid`, `erf`, `gelu`, `gelu_tanh`, `floor`, `sin` or `cos` gets it from here, inlined;
//! `math/trig.rs` adds tan and the inverse trigonometric/hyperbolic functions, `math/double.rs`
//! scalar f64 `exp64`/`log64` and the exact remainders `fmod64`/`pymod64` (f64 arguments; the
//! f32x4 contract below does not apply to them).
//!
//! `exp`, `log`, `tanh`, `sigmoid`, `erf`, `gelu` and `gelu_tanh` are written once against the
//! lane operations of [`Emit`] (`math/emit.rs`), which Cranelift's `FunctionBuilder` implements
//! (so `math::exp(&mut k.b, x)` emits IR) and so does the AVX2 stream assembler
//! (`ukernel::vmath`, eight lanes per `ymm`); both perform the same IEEE operations in the same
//! order, so an assembled stream gives the Cranelift loop's bits.
//!
//! Contract shared by every function:
//! - The argument is either an `f32` scalar or an `f32x4` vector (or, through [`Emit`], a `ymm`);
//!   the routine emits the same operation sequence for each, so a scalar tail loop and the
//!   vector body of a kernel give bit-identical results (NaN results may differ in sign/payload,
//!   which Cranelift's `fmin`/`fmax` leave unspecified). Any other type is a codegen bug and panics.
//! - No calls, no branches: special cases are handled with `fcmp` + `select` (scalars) or
//!   `bitselect` (vectors), so the code vectorises and works on x86-64 (SSE2 baseline), AArch64
//!   and riscv64gc. Clamps against constants are `fmin`/`fmax` on scalars and a NaN-propagating
//!   compare + `bitselect` on vectors (one `minps`/`maxps` on x86-64, see [`max_c`]).
//! - No `fma`: on x86-64 without AVX+FMA flags Cranelift turns `fma` into a call to `fmaf`.
//!   Everything is `fmul` + `fadd`, so results do not depend on the target's FMA support.
//! - Vector constants are `vconst`s (one constant-pool load each), scalar ones `f32const`.
//!   Cranelift does not hoist them out of loops; callers in hot loops rely on the backend folding
//!   the loads into their users.
//!
//! Accuracy (measured by the tests in `math/tests.rs`, against f64 references, on x86-64 and,
//! when the cross toolchains are present, on AArch64 and riscv64 under qemu):
//! - `exp`: ≤ [`MAX_ULP_EXP`] ulp over the whole f32 range, including gradual underflow to
//!   subnormals (computed with two scale multiplications, so results are correctly signed and
//!   rounded once), `+inf` above ln(f32::MAX), `0` below about -103.97, NaN propagates.
//! - `log`: ≤ [`MAX_ULP_LOG`] ulp over all positive floats including subnormals; `log(±0) = -inf`,
//!   `log(x < 0) = NaN`, `log(inf) = inf`, NaN propagates.
//! - `tanh`, `sigmoid`, `erf`: absolute error ≤ the `MAX_ABS_ERR_*` constants on all of f32;
//!   they saturate exactly to ±1 (0 and 1 for sigmoid) and never produce NaN from a non-NaN input.
//! - `gelu`: error ≤ [`MAX_ABS_ERR_GELU`] · max(1, |gelu(x)|); `gelu(-inf) = -0`, `gelu(inf) = inf`.
//! - `gelu_tanh` (the tanh approximation): error against that formula in f64 ≤
//!   [`MAX_ABS_ERR_GELU_TANH`] · max(1, |result|); -inf gives -0, inf gives inf.
//! - `floor`: exact, including -0, |x| ≥ 2^23, ±inf and NaN.
//! - `tan`, `asin`, `acos`, `atan`, `sinh`, `cosh`, `asinh`, `acosh`, `atanh` (in `math/trig.rs`):
//!   ≤ [`MAX_ULP_TAN`] / [`MAX_ULP_INV_HYP`] ulp (tan for |x| ≤ [`TAN_ULP_MAX_ARG`], and
//!   beyond that within 4 ulp of tan(x + δ), |δ| ≤ [`TAN_ARG_REL_ERR`]·|x|).
//! - `exp64`, `log64` (scalar f64, `math/double.rs`): ≤ 1 ulp; `fmod64`/`pymod64` exact for
//!   quotients below 2^53.
//! - `sin`, `cos`: absolute error ≤ [`MAX_ABS_ERR_SIN_COS`] for |x| ≤ [`SIN_COS_MAX_ARG`];
//!   beyond that the reduction loses accuracy but results stay in [-1, 1]; ±inf and NaN give
//!   NaN.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

mod emit;
pub use emit::Emit;
use emit::{splat_bits, Ty};

// Measured by `tests::exhaustive_all_floats` over all 2^32 inputs on x86-64 (the sweeps that run
// in CI and under qemu on AArch64/riscv64 see slightly smaller maxima). Bounds are against the
// exact value (f64 reference), so they include the final rounding to f32.

/// Maximum error of [`exp`] in units in the last place (exhaustive maximum: 0.990 ulp).
pub const MAX_ULP_EXP: u32 = 1;
/// Maximum error of [`log`] in units in the last place (exhaustive maximum: 0.835 ulp).
pub const MAX_ULP_LOG: u32 = 1;
/// Maximum absolute error of [`tanh`] (exhaustive maximum: 7.93e-8).
pub const MAX_ABS_ERR_TANH: f32 = 1e-7;
/// Maximum absolute error of [`sigmoid`] (exhaustive maximum: 8.93e-8).
pub const MAX_ABS_ERR_SIGMOID: f32 = 1e-7;
/// Maximum absolute error of [`erf`] (exhaustive maximum: 1.39e-7).
pub const MAX_ABS_ERR_ERF: f32 = 1.6e-7;
/// Maximum error of [`gelu`] divided by max(1, |gelu(x)|) (exhaustive maximum: 1.64e-7).
pub const MAX_ABS_ERR_GELU: f32 = 2e-7;
/// Maximum error of [`gelu_tanh`] divided by max(1, |result|) (see `tests.rs`).
pub const MAX_ABS_ERR_GELU_TANH: f32 = 2e-7;
/// Largest |x| for which [`sin`] and [`cos`] meet [`MAX_ABS_ERR_SIN_COS`]: the Cody–Waite
/// reduction by π/2 stays exact while the quadrant index has at most 13 bits.
pub const SIN_COS_MAX_ARG: f32 = 8192.0;
/// Maximum absolute error of [`sin`] and [`cos`] for |x| ≤ [`SIN_COS_MAX_ARG`] (measured by
/// `tests::sin_cos_within_documented_abs_error`: 9.11e-8 over 4.3 million points).
pub const MAX_ABS_ERR_SIN_COS: f32 = 1e-7;

// Cranelift-only helpers of the routines not written against [`Emit`]
// (`floor`, `sin`/`cos` and `math/trig.rs`); the logic is [`Emit`]'s.

/// A float constant of the shape `t` (splatted for vectors).
fn fc(b: &mut FunctionBuilder, t: Ty, v: f32) -> Value {
    splat_bits(b, t.float, v.to_bits())
}

/// An i32 constant of the shape `t` (splatted for vectors).
fn ic(b: &mut FunctionBuilder, t: Ty, v: i32) -> Value {
    splat_bits(b, t.int, v as u32)
}

fn to_int(b: &mut FunctionBuilder, _t: Ty, x: Value) -> Value {
    b.bits(x)
}

fn to_float(b: &mut FunctionBuilder, _t: Ty, x: Value) -> Value {
    b.float(x)
}

/// `cond ? x : y` where `cond` comes from `fcmp`/`icmp` on values of shape `t`.
fn sel(b: &mut FunctionBuilder, _t: Ty, cond: Value, x: Value, y: Value) -> Value {
    b.select(cond, x, y)
}

fn horner(b: &mut FunctionBuilder, _t: Ty, x: Value, coeffs: &[f32]) -> Value {
    poly(b, x, coeffs)
}

fn with_sign_of(b: &mut FunctionBuilder, _t: Ty, r: Value, x: Value) -> Value {
    sign_of(b, r, x)
}

fn max_c(b: &mut FunctionBuilder, _t: Ty, x: Value, c: f32) -> Value {
    b.max_c(x, c)
}

fn min_c(b: &mut FunctionBuilder, _t: Ty, x: Value, c: f32) -> Value {
    b.min_c(x, c)
}

/// Horner evaluation `((c[0]·x + c[1])·x + …)·x + c[n-1]` with separate multiply and add.
fn poly<E: Emit + ?Sized>(e: &mut E, x: E::V, coeffs: &[f32]) -> E::V {
    let mut it = coeffs.iter();
    let mut acc = e.fconst(x, it.next().copied().unwrap_or(0.0));
    for &c in it {
        let k = e.fconst(x, c);
        let m = e.fmul(acc, x);
        acc = e.fadd(m, k);
    }
    acc
}

/// `r` with the sign bit of `x` OR-ed in; `r` must be non-negative or already have x's sign.
fn sign_of<E: Emit + ?Sized>(e: &mut E, r: E::V, x: E::V) -> E::V {
    let xi = e.bits(x);
    let sign_mask = e.iconst(x, i32::MIN);
    let sign = e.and(xi, sign_mask);
    let ri = e.bits(r);
    let out = e.or(ri, sign);
    e.float(out)
}

/// `a < thr ? small : big` (`a = |x|`) with the sign of `x` restored: the
/// last step of the odd functions computed on |x| in two branches.
fn odd_branches<E: Emit + ?Sized>(e: &mut E, x: E::V, a: E::V, thr: f32, small: E::V, big: E::V) -> E::V {
    let t = e.fconst(x, thr);
    let is_small = e.flt(a, t);
    let r = e.select(is_small, small, big);
    sign_of(e, r, x)
}

/// e^x.
///
/// x = n·ln2 + r with |r| ≤ ln2/2 (Cody–Waite split of ln2 so n·C1 is exact), Cephes' degree-6
/// polynomial for e^r, then two multiplications by 2^⌊n/2⌋ and 2^⌈n/2⌉ (built in the exponent
/// bits) so both factors stay normal while the product reaches subnormals and overflows to inf.
/// The input is clamped to [-110, 89], where the result is already 0 or inf.
pub fn exp<E: Emit + ?Sized>(e: &mut E, x: E::V) -> E::V {
    let xc = e.max_c(x, -110.0);
    let xc = e.min_c(xc, 89.0);

    // Round x·log2(e) to an integer without rounding instructions: adding 1.5·2^23 leaves the
    // integer in the low mantissa bits (|x·log2 e| ≤ 159 ≪ 2^22).
    let log2e = e.fconst(x, std::f32::consts::LOG2_E);
    let magic = e.fconst(x, 12_582_912.0);
    let scaled = e.fmul(xc, log2e);
    let shifted = e.fadd(scaled, magic);
    let nf = e.fsub(shifted, magic);
    let shifted_bits = e.bits(shifted);
    let magic_bits = e.iconst(x, 0x4b40_0000);
    let n = e.isub(shifted_bits, magic_bits);

    // r = x - n·ln2 in two steps; C1 has 9 significant bits so n·C1 is exact.
    let c1 = e.fconst(x, 0.693_359_4);
    let c2 = e.fconst(x, -2.121_944_4e-4);
    let p1 = e.fmul(nf, c1);
    let r = e.fsub(xc, p1);
    let p2 = e.fmul(nf, c2);
    let r = e.fsub(r, p2);

    // Cephes expf: e^r ≈ 1 + r + r²·P(r).
    let p = poly(e, r, &[1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_66, 0.5]);
    let r2 = e.fmul(r, r);
    let y = e.fmul(p, r2);
    let y = e.fadd(y, r);
    let one = e.fconst(x, 1.0);
    let y = e.fadd(y, one);

    // 2^n = 2^n1 · 2^n2 with n1 = n >> 1, n2 = n - n1, both in [-80, 64].
    let n1 = e.sshr(n, 1);
    let n2 = e.isub(n, n1);
    let bias = e.iconst(x, 127);
    let e1 = e.iadd(n1, bias);
    let e1 = e.shl(e1, 23);
    let s1 = e.float(e1);
    let e2 = e.iadd(n2, bias);
    let e2 = e.shl(e2, 23);
    let s2 = e.float(e2);
    let y = e.fmul(y, s1);
    e.fmul(y, s2)
}

/// Natural logarithm.
///
/// Subnormals are first scaled by 2^23. Then (musl's `logf`) x = 2^k·m with m in
/// [sqrt(1/2), sqrt(2)) by integer arithmetic on the bits, f = m - 1, s = f/(2+f) and a
/// degree-4 polynomial in s². Special inputs are patched with selects at the end.
pub fn log<E: Emit + ?Sized>(e: &mut E, x: E::V) -> E::V {
    let min_normal = e.fconst(x, f32::MIN_POSITIVE);
    let is_sub = e.flt(x, min_normal);
    let two23 = e.fconst(x, 8_388_608.0);
    let xs = e.fmul(x, two23);
    let xn = e.select(is_sub, xs, x);
    let adj_sub = e.iconst(x, -23);
    let adj_none = e.iconst(x, 0);
    let kadj = e.select(is_sub, adj_sub, adj_none);

    let bits = e.bits(xn);
    let off = e.iconst(x, 0x3f80_0000 - 0x3f35_04f3);
    let ix = e.iadd(bits, off);
    let k = e.ushr(ix, 23);
    let bias = e.iconst(x, 127);
    let k = e.isub(k, bias);
    let k = e.iadd(k, kadj);
    let mant_mask = e.iconst(x, 0x007f_ffff);
    let m = e.and(ix, mant_mask);
    let sqrt_half = e.iconst(x, 0x3f35_04f3);
    let m = e.iadd(m, sqrt_half);
    let m = e.float(m);

    let one = e.fconst(x, 1.0);
    let two = e.fconst(x, 2.0);
    let half = e.fconst(x, 0.5);
    let f = e.fsub(m, one);
    let den = e.fadd(f, two);
    let s = e.fdiv(f, den);
    let z = e.fmul(s, s);
    let w = e.fmul(z, z);
    // musl: Lg1..Lg4 = 0xaaaaaa.0p-24, 0xccce13.0p-25, 0x91e9ee.0p-25, 0xf89e26.0p-26.
    let t1 = poly(e, w, &[0.242_790_79, 0.400_009_72]);
    let t1 = e.fmul(w, t1);
    let t2 = poly(e, w, &[0.284_987_87, 0.666_666_6]);
    let t2 = e.fmul(z, t2);
    let rr = e.fadd(t2, t1);
    let hf = e.fmul(half, f);
    let hfsq = e.fmul(hf, f);
    let dk = e.int_to_float(k);
    let ln2_hi = e.fconst(x, 0.693_138_1);
    let ln2_lo = e.fconst(x, 9.058_001e-6);
    // s·(hfsq + R) + dk·ln2_lo - hfsq + f + dk·ln2_hi, left to right as in musl.
    let a = e.fadd(hfsq, rr);
    let a = e.fmul(s, a);
    let lo = e.fmul(dk, ln2_lo);
    let a = e.fadd(a, lo);
    let a = e.fsub(a, hfsq);
    let a = e.fadd(a, f);
    let hi = e.fmul(dk, ln2_hi);
    let res = e.fadd(a, hi);

    let inf = e.fconst(x, f32::INFINITY);
    let is_inf = e.feq(x, inf);
    let res = e.select(is_inf, inf, res);
    let zero = e.fconst(x, 0.0);
    let is_zero = e.feq(x, zero);
    let neg_inf = e.fconst(x, f32::NEG_INFINITY);
    let res = e.select(is_zero, neg_inf, res);
    // Negative or NaN: NaN. (AArch64 has no vector `ult` compare: spell it as lt | ne(x, x).)
    let neg = e.flt(x, zero);
    let is_nan = e.fne(x, x);
    let bad = e.or(neg, is_nan);
    let nan = e.fconst(x, f32::NAN);
    e.select(bad, nan, res)
}

/// Hyperbolic tangent.
///
/// |x| < 0.625: odd minimax polynomial x + x³·P(x²) (relative error ~1 ulp);
/// otherwise 1 - 2/(e^{2|x|} + 1) with |x| clamped to 10 (f32 tanh is exactly 1 from 9.011 on, and
/// the clamp keeps e^{2|x|} finite so inf gives 1, not NaN). The sign of x is
/// OR-ed back in, so tanh(-0) = -0.
pub fn tanh<E: Emit + ?Sized>(e: &mut E, x: E::V) -> E::V {
    let a = e.fabs(x);
    let s = e.fmul(a, a);
    let p = poly(e, s, &[-0.005_704_984_5, 0.020_639_084, -0.053_739_715, 0.133_314_42, -0.333_332_8]);
    let as_ = e.fmul(a, s);
    let small = e.fmul(as_, p);
    let small = e.fadd(a, small);

    let ac = e.min_c(a, 10.0);
    let two_a = e.fadd(ac, ac);
    let ex = exp(e, two_a);
    let one = e.fconst(x, 1.0);
    let two = e.fconst(x, 2.0);
    let den = e.fadd(ex, one);
    let q = e.fdiv(two, den);
    let big = e.fsub(one, q);

    odd_branches(e, x, a, 0.625, small, big)
}

/// Logistic function 1/(1 + e^{-x}).
///
/// Computed from e = e^{-|x|} ∈ (0, 1], which never overflows: r = 1/(1+e) for x ≥ 0 and
/// e·r = e/(1+e) for x < 0 (accurate relative error on both sides, no NaN at ±inf).
pub fn sigmoid<E: Emit + ?Sized>(e: &mut E, x: E::V) -> E::V {
    let a = e.fabs(x);
    let na = e.fneg(a);
    let ex = exp(e, na);
    let one = e.fconst(x, 1.0);
    let den = e.fadd(ex, one);
    let r = e.fdiv(one, den);
    let er = e.fmul(ex, r);
    let zero = e.fconst(x, 0.0);
    let neg = e.flt(x, zero);
    e.select(neg, er, r)
}

/// Error function.
///
/// |x| < 0.875: x·P(x²), degree-5 polynomial in x² (relative error ~2 ulp).
/// Otherwise 1 - e^{-a²}·Q(a) with a = min(|x|, 4) and Q a degree-8 polynomial fitted to
/// erfc(a)·e^{a²} on [0.875, 4] (erf(4) rounds to 1 in f32). Sign restored from x.
pub fn erf<E: Emit + ?Sized>(e: &mut E, x: E::V) -> E::V {
    let a = e.fabs(x);
    let s = e.fmul(a, a);
    let p = poly(
        e,
        s,
        &[
            -0.000_622_245_6,
            0.005_035_879,
            -0.026_793_96,
            0.112_825_245,
            -0.376_125_57,
            std::f32::consts::FRAC_2_SQRT_PI,
        ],
    );
    let small = e.fmul(a, p);

    let ac = e.min_c(a, 4.0);
    let q = poly(
        e,
        ac,
        &[
            0.000_142_779_74,
            -0.002_433_51,
            0.018_543_553,
            -0.084_017_16,
            0.254_487_28,
            -0.550_694_3,
            0.888_659_3,
            -1.091_680_2,
            0.994_575_8,
        ],
    );
    let ac2 = e.fmul(ac, ac);
    let nac2 = e.fneg(ac2);
    let ex = exp(e, nac2);
    let eq = e.fmul(ex, q);
    let one = e.fconst(x, 1.0);
    let big = e.fsub(one, eq);

    odd_branches(e, x, a, 0.875, small, big)
}

/// GELU, exact form 0.5·x·(1 + erf(x/√2)).
///
/// x is clamped below at -f32::MAX for the outer product so gelu(-inf) = -0 instead of NaN.
pub fn gelu<E: Emit + ?Sized>(e: &mut E, x: E::V) -> E::V {
    let k = e.fconst(x, std::f32::consts::FRAC_1_SQRT_2);
    let xs = e.fmul(x, k);
    let r = erf(e, xs);
    let one = e.fconst(x, 1.0);
    let ope = e.fadd(one, r);
    let xm = e.max_c(x, f32::MIN);
    let half = e.fconst(x, 0.5);
    let hx = e.fmul(xm, half);
    e.fmul(hx, ope)
}

/// GELU, tanh approximation 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
///
/// Evaluated as x·σ(2u) with u the tanh argument (0.5·(1 + tanh u) = σ(2u) exactly), which
/// is cheaper than tanh (one exp and one division, no branch blend) and keeps a small relative
/// error in the left tail where 1 + tanh u cancels. 2u = x·(c1 + c2·x²) with both constants
/// doubled. As in [`gelu`], x is clamped below at -f32::MAX for the outer product so
/// gelu_tanh(-inf) = -0.
pub fn gelu_tanh<E: Emit + ?Sized>(e: &mut E, x: E::V) -> E::V {
    let s = (2.0 / std::f64::consts::PI).sqrt();
    let c1 = e.fconst(x, (2.0 * s) as f32);
    let c2 = e.fconst(x, (2.0 * s * 0.044715) as f32);
    let x2 = e.fmul(x, x);
    let p = e.fmul(x2, c2);
    let p = e.fadd(p, c1);
    let u2 = e.fmul(x, p);
    let sg = sigmoid(e, u2);
    let xm = e.max_c(x, f32::MIN);
    e.fmul(xm, sg)
}

/// Round toward -inf.
///
/// With native rounding (x86-64 SSE4.1, AArch64, riscv64) this is Cranelift's `floor`. Without
/// it: truncate with `fcvt_to_sint_sat`, convert back, subtract 1 where that exceeded x; values
/// with |x| ≥ 2^23 (already integral), ±inf and NaN are passed through, and the sign bit of x is
/// OR-ed in so floor(-0) = -0 (a negative x always has a negative floor).
pub fn floor(b: &mut FunctionBuilder, x: Value, has_sse41_or_native_round: bool) -> Value {
    let t = Ty::of(b, x);
    if has_sse41_or_native_round {
        return b.ins().floor(x);
    }
    let ti = b.ins().fcvt_to_sint_sat(t.int, x);
    let tf = b.ins().fcvt_from_sint(t.float, ti);
    let gt = b.ins().fcmp(FloatCC::GreaterThan, tf, x);
    let one = fc(b, t, 1.0);
    let tm1 = b.ins().fsub(tf, one);
    let r = sel(b, t, gt, tm1, tf);
    let r = with_sign_of(b, t, r, x);
    let a = b.ins().fabs(x);
    let big = fc(b, t, 8_388_608.0);
    let in_range = b.ins().fcmp(FloatCC::LessThan, a, big);
    sel(b, t, in_range, r, x)
}

/// sin(x).
pub fn sin(b: &mut FunctionBuilder, x: Value) -> Value {
    sin_cos(b, x, 0)
}

/// cos(x) = sin(x + π/2): the same reduction with the quadrant advanced by one.
pub fn cos(b: &mut FunctionBuilder, x: Value) -> Value {
    sin_cos(b, x, 1)
}

/// The reduced argument of [`sin`], [`cos`] and [`tan`](trig::tan): `(j, sin r, cos r)` with
/// x = j·π/2 + r, |r| ≤ π/4 (j rounded with the 1.5·2^23 trick, r by a three-part Cody–Waite
/// split of π/2 from Cephes) and Cephes' `sinf`/`cosf` polynomials on r.
fn reduce_half_pi(b: &mut FunctionBuilder, t: Ty, x: Value) -> (Value, Value, Value) {
    // |x·2/π| is clamped to 2^22 so the rounding trick stays valid (results beyond
    // SIN_COS_MAX_ARG are inaccurate anyway; the final clamp keeps them in [-1, 1]).
    let two_over_pi = fc(b, t, std::f32::consts::FRAC_2_PI);
    let s = b.ins().fmul(x, two_over_pi);
    let s = max_c(b, t, s, -4_194_304.0);
    let s = min_c(b, t, s, 4_194_304.0);
    let magic = fc(b, t, 12_582_912.0);
    let shifted = b.ins().fadd(s, magic);
    let jf = b.ins().fsub(shifted, magic);
    let shifted_bits = to_int(b, t, shifted);
    let magic_bits = ic(b, t, 0x4b40_0000);
    let j = b.ins().isub(shifted_bits, magic_bits);

    let mut r = x;
    for c in [1.570_312_5f32, 4.837_513e-4, 7.549_79e-8] {
        let cv = fc(b, t, c);
        let p = b.ins().fmul(jf, cv);
        r = b.ins().fsub(r, p);
    }
    // In range |r| ≤ π/4 (+ rounding); beyond SIN_COS_MAX_ARG r can be huge and the
    // polynomials would overflow to inf - inf = NaN: keep it bounded.
    let r = max_c(b, t, r, -2.0);
    let r = min_c(b, t, r, 2.0);
    let z = b.ins().fmul(r, r);
    // sin r ≈ r + r·z·S(z)
    let ps = horner(b, t, z, &[-1.951_529_6e-4, 8.332_161e-3, -1.666_665_5e-1]);
    let rz = b.ins().fmul(r, z);
    let sr = b.ins().fmul(rz, ps);
    let sin_r = b.ins().fadd(r, sr);
    // cos r ≈ 1 - z/2 + z²·C(z)
    let pc = horner(b, t, z, &[2.443_315_7e-5, -1.388_731_6e-3, 4.166_664_6e-2]);
    let z2 = b.ins().fmul(z, z);
    let cz = b.ins().fmul(z2, pc);
    let half = fc(b, t, 0.5);
    let hz = b.ins().fmul(z, half);
    let one = fc(b, t, 1.0);
    let c1 = b.ins().fsub(one, hz);
    let cos_r = b.ins().fadd(c1, cz);
    (j, sin_r, cos_r)
}

/// The quadrant `q = j + shift` of [`reduce_half_pi`] picks the polynomial (q odd: cos) and
/// the sign (q & 2).
fn sin_cos(b: &mut FunctionBuilder, x: Value, shift: i32) -> Value {
    let t = Ty::of(b, x);
    let (j, sin_r, cos_r) = reduce_half_pi(b, t, x);
    let sh = ic(b, t, shift);
    let q = b.ins().iadd(j, sh);
    let one_i = ic(b, t, 1);
    let odd = b.ins().band(q, one_i);
    let zero_i = ic(b, t, 0);
    let is_odd = b.ins().icmp(IntCC::NotEqual, odd, zero_i);
    let y = sel(b, t, is_odd, cos_r, sin_r);
    let two_i = ic(b, t, 2);
    let neg = b.ins().band(q, two_i);
    let sign = b.ins().ishl_imm_u(neg, 30);
    let yi = to_int(b, t, y);
    let yi = b.ins().bxor(yi, sign);
    let y = to_float(b, t, yi);
    let y = max_c(b, t, y, -1.0);
    let y = min_c(b, t, y, 1.0);
    // ±inf and NaN -> NaN
    let a = b.ins().fabs(x);
    let inf = fc(b, t, f32::INFINITY);
    let finite = b.ins().fcmp(FloatCC::LessThan, a, inf);
    let nan = fc(b, t, f32::NAN);
    sel(b, t, finite, y, nan)
}

mod double;
mod trig;
pub use double::{exp64, fmod64, log64, pymod64, MAX_ULP_EXP64, MAX_ULP_LOG64};
pub use trig::{
    acos, acosh, asin, asinh, atan, atanh, cosh, sinh, tan, MAX_ULP_INV_HYP, MAX_ULP_TAN, TAN_ARG_REL_ERR,
    TAN_ULP_MAX_ARG,
};

#[cfg(test)]
mod tests;
