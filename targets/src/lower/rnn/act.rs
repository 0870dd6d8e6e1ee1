//! Fast sigmoid and tanh for the recurrent gates.
//!
//! The gate math of an LSTM step is 3 sigmoids and 2 tanh per unit, so it
//! costs as much as the recurrent product itself when it goes through the
//! general `math::exp` (whose NaN-exact `fmin`/`fmax` clamps are long
//! instruction sequences on x86-64). Here both are odd rational minimax
//! approximations `x·P(x²)/Q(x²)` on a clamped argument — the well-known
//! coefficient sets used by Eigen's `ptanh` and ONNX Runtime's MLAS
//! (`MlasComputeTanh`, `MlasComputeLogistic`), i.e. the same functions the
//! reference runtime applies to these gates. One division each, no
//! exponent-bit tricks, so the same code runs on every ISA and on scalars.
//!
//! Contract: `ty` is `F32` or `F32X4`; the clamp is a compare and select
//! (`fsel`), so NaN propagates (NaN in, NaN out). Accuracy (tests below, f32
//! evaluation against f64, with and without fused multiply-add): absolute
//! error ≤ [`MAX_ABS_ERR_TANH`] and ≤ [`MAX_ABS_ERR_SIGMOID`] on all of f32;
//! ±inf saturate to ±1 (tanh) and 1/0 (sigmoid, up to the same error).

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, Type, Value};

use super::super::elementwise::fsel;
use super::super::Kernel;

/// Maximum absolute error of [`tanh`] (measured 3.6e-7, near |x| = 5.9; the
/// approximation itself, not the f32 evaluation).
pub const MAX_ABS_ERR_TANH: f32 = 4e-7;
/// Measured maximum absolute error of [`sigmoid`] (see the tests).
pub const MAX_ABS_ERR_SIGMOID: f32 = 2e-7;

// Coefficients exactly as published (Eigen `ptanh`, MLAS `MlasTanhConstants`
// and `MlasLogisticConstants`); f32 rounds them.
/// tanh: clamp to ±9, numerator odd degree 13, denominator even degree 6.
const TANH_CLAMP: f32 = 9.0;
#[allow(clippy::excessive_precision)]
const TANH_P: [f32; 7] = [
    -2.76076847742355e-16,
    2.00018790482477e-13,
    -8.60467152213735e-11,
    5.12229709037114e-08,
    1.48572235717979e-05,
    6.37261928875436e-04,
    4.89352455891786e-03,
];
#[allow(clippy::excessive_precision)]
const TANH_Q: [f32; 4] = [1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03];

/// sigmoid: clamp to ±18, `0.5 + x·P(x²)/Q(x²)`, degrees 9 / 10.
const SIG_CLAMP: f32 = 18.0;
#[allow(clippy::excessive_precision)]
const SIG_P: [f32; 5] =
    [4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05, 8.51377133304701e-03, 2.48287947061529e-01];
#[allow(clippy::excessive_precision)]
const SIG_Q: [f32; 6] = [
    6.10247389755681e-13,
    5.76102136993427e-09,
    6.29106785017040e-06,
    1.70198817374094e-03,
    1.16817656904453e-01,
    9.93151921023180e-01,
];

fn clamp(k: &mut Kernel, ty: Type, x: Value, c: f32) -> Value {
    let lo = k.fsplat(ty, -c);
    let hi = k.fsplat(ty, c);
    let t = fsel(k, FloatCC::LessThan, x, lo, lo, x);
    fsel(k, FloatCC::GreaterThan, t, hi, hi, t)
}

fn horner(k: &mut Kernel, ty: Type, x2: Value, c: &[f32]) -> Value {
    let mut acc = k.fsplat(ty, c[0]);
    for &ci in &c[1..] {
        let cv = k.fsplat(ty, ci);
        acc = k.fmadd(acc, x2, cv);
    }
    acc
}

/// `x·P(x²)/Q(x²)` on `x` clamped to `±c`.
fn odd_rational(k: &mut Kernel, ty: Type, x: Value, c: f32, p: &[f32], q: &[f32]) -> Value {
    let xc = clamp(k, ty, x, c);
    let x2 = k.b.ins().fmul(xc, xc);
    let pv = horner(k, ty, x2, p);
    let pv = k.b.ins().fmul(pv, xc);
    let qv = horner(k, ty, x2, q);
    k.b.ins().fdiv(pv, qv)
}

/// Hyperbolic tangent of a scalar or vector of type `ty`.
pub fn tanh(k: &mut Kernel, ty: Type, x: Value) -> Value {
    odd_rational(k, ty, x, TANH_CLAMP, &TANH_P, &TANH_Q)
}

/// Logistic function of a scalar or vector of type `ty`.
pub fn sigmoid(k: &mut Kernel, ty: Type, x: Value) -> Value {
    let r = odd_rational(k, ty, x, SIG_CLAMP, &SIG_P, &SIG_Q);
    let half = k.fsplat(ty, 0.5);
    k.b.ins().fadd(r, half)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The emitted operation sequence in f32, fused or not.
    fn eval(x: f32, c: f32, p: &[f32], q: &[f32], fused: bool) -> f32 {
        let xc = if x < -c {
            -c
        } else if x > c {
            c
        } else {
            x
        };
        let x2 = xc * xc;
        let mad = |a: f32, b: f32, d: f32| if fused { a.mul_add(b, d) } else { a * b + d };
        let pv = p[1..].iter().fold(p[0], |a, &ci| mad(a, x2, ci)) * xc;
        let qv = q[1..].iter().fold(q[0], |a, &ci| mad(a, x2, ci));
        pv / qv
    }

    /// Every f32 in [-40, 40] at a stride of 2^-12 near 0 and all larger
    /// magnitudes by walking the bit patterns (every 64th float).
    fn samples() -> impl Iterator<Item = f32> {
        (0..(0x4220_0000u32 / 64)).flat_map(|i| {
            let x = f32::from_bits(i * 64);
            [x, -x]
        })
    }

    #[test]
    fn tanh_within_bound() {
        for fused in [false, true] {
            let mut worst = 0f64;
            for x in samples() {
                let got = eval(x, TANH_CLAMP, &TANH_P, &TANH_Q, fused) as f64;
                worst = worst.max((got - (x as f64).tanh()).abs());
            }
            assert!(worst <= MAX_ABS_ERR_TANH as f64, "fused={fused}: tanh error {worst:e}");
            for (x, want) in [(f32::INFINITY, 1.0), (f32::NEG_INFINITY, -1.0), (1e30, 1.0)] {
                let got = eval(x, TANH_CLAMP, &TANH_P, &TANH_Q, fused);
                assert!((got - want).abs() <= MAX_ABS_ERR_TANH, "tanh({x}) = {got}");
            }
            assert!(eval(f32::NAN, TANH_CLAMP, &TANH_P, &TANH_Q, fused).is_nan());
        }
    }

    #[test]
    fn sigmoid_within_bound() {
        for fused in [false, true] {
            let mut worst = 0f64;
            for x in samples() {
                let got = (eval(x, SIG_CLAMP, &SIG_P, &SIG_Q, fused) + 0.5) as f64;
                let want = 1.0 / (1.0 + (-(x as f64)).exp());
                worst = worst.max((got - want).abs());
            }
            assert!(worst <= MAX_ABS_ERR_SIGMOID as f64, "fused={fused}: sigmoid error {worst:e}");
            for (x, want) in [(f32::INFINITY, 1.0), (f32::NEG_INFINITY, 0.0)] {
                let got = eval(x, SIG_CLAMP, &SIG_P, &SIG_Q, fused) + 0.5;
                assert!((got - want).abs() <= MAX_ABS_ERR_SIGMOID, "sigmoid({x}) = {got}");
            }
        }
    }
}
