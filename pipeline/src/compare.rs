//! Output checks: a computed tensor against a reference, the way
//! `kerf run --expect` and the tuner's fidelity checks judge them.
//!
//! Contract ([`check`]): shapes must be equal. Per element, equal values
//! (equal infinities included) and NaN against NaN differ by 0; with
//! `max_ulp > 0`, two finite floats of the same dtype at most `max_ulp`
//! representable values apart (counted in that dtype, [`ulp_distance_bits`])
//! differ by 0; anything else differs by `|a - b|` (infinite for NaN against
//! a number or an infinity against anything else). The output passes when
//! the largest difference is at most `atol + rtol * max|ref|`, the maximum
//! over the reference's finite elements: a model-level bound, looser near
//! zero than an element-wise relative one, which the op-level tests use
//! (`kerf_testsuite::compare`).

use kerf_ir::{DType, Tensor};

use crate::PipelineError;

/// Tolerance of [`check`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Absolute term.
    pub atol: f64,
    /// Relative term, scaled by the largest finite |reference|.
    pub rtol: f64,
    /// Elements at most this many ULPs apart count as equal (0: off).
    pub max_ulp: u64,
}

/// What [`check`] measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Checked {
    /// Largest element difference (after the equal/NaN/ULP rules).
    pub max_abs: f64,
    /// `max_abs / max|ref|` (or `max_abs` when the reference is all zero).
    pub max_rel: f64,
    /// The bound `atol + rtol * max|ref|`.
    pub bound: f64,
}

impl Checked {
    /// Whether the output is within the bound.
    pub fn ok(&self) -> bool {
        self.max_abs <= self.bound
    }
}

/// The bit pattern of element `i` of a float tensor, zero-extended.
pub fn float_bits(t: &Tensor, i: usize) -> u64 {
    let s = t.dtype().size();
    let b = t.bytes().get(i * s..(i + 1) * s).unwrap_or(&[]);
    let mut buf = [0u8; 8];
    buf[..b.len()].copy_from_slice(b);
    u64::from_le_bytes(buf)
}

/// Maps a float's bits (of `width` bits) to an integer whose order is the
/// order of the floats, with +0 and -0 both at 0.
fn ordered(bits: u64, width: u32) -> i128 {
    let sign = 1u64 << (width - 1);
    let magnitude = (bits & (sign - 1)) as i128;
    if bits & sign != 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// Number of representable values of `dtype` between two bit patterns
/// (0 for equal values and for +0/-0). Only meaningful for finite values.
pub fn ulp_distance_bits(dtype: DType, a: u64, b: u64) -> u64 {
    let width = (dtype.size() * 8) as u32;
    let d = ordered(a, width) - ordered(b, width);
    u64::try_from(d.unsigned_abs()).unwrap_or(u64::MAX)
}

/// Checks `got` against the reference `want` (see the module doc).
pub fn check(got: &Tensor, want: &Tensor, tol: Tolerance) -> Result<Checked, PipelineError> {
    if got.shape() != want.shape() {
        return Err(PipelineError::Config(format!("shape {:?}, reference {:?}", got.shape(), want.shape())));
    }
    let same_float = got.dtype() == want.dtype() && got.dtype().is_float() && !got.dtype().is_narrow();
    let ref_max =
        (0..want.numel()).map(|i| want.get_f64(i)).filter(|x| x.is_finite()).fold(0.0f64, |m, x| m.max(x.abs()));
    let mut max_abs = 0.0f64;
    for i in 0..want.numel() {
        let (a, b) = (got.get_f64(i), want.get_f64(i));
        let same = a == b || (a.is_nan() && b.is_nan());
        let d = if same
            || (tol.max_ulp > 0
                && same_float
                && a.is_finite()
                && b.is_finite()
                && ulp_distance_bits(got.dtype(), float_bits(got, i), float_bits(want, i)) <= tol.max_ulp)
        {
            0.0
        } else {
            let d = (a - b).abs();
            if d.is_nan() {
                f64::INFINITY
            } else {
                d
            }
        };
        max_abs = max_abs.max(d);
    }
    let max_rel = if ref_max > 0.0 { max_abs / ref_max } else { max_abs };
    Ok(Checked { max_abs, max_rel, bound: tol.atol + tol.rtol * ref_max })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(v: &[f32]) -> Tensor {
        Tensor::from_f32(vec![v.len()], v).unwrap()
    }
    const TIGHT: Tolerance = Tolerance { atol: 0.0, rtol: 0.0, max_ulp: 0 };

    #[test]
    fn infinities_and_nans_compare_by_value() {
        let r = f32s(&[f32::INFINITY, f32::NAN, 1.0]);
        assert!(check(&r, &r, TIGHT).unwrap().ok(), "equal infinities and NaNs match");
        let c = check(&f32s(&[1.0, f32::NAN, 1.0]), &r, TIGHT).unwrap();
        assert!(!c.ok() && c.max_abs.is_infinite());
        // an infinite reference does not make the bound infinite
        let c = check(&f32s(&[f32::INFINITY, f32::NAN, 2.0]), &r, Tolerance { rtol: 0.5, ..TIGHT }).unwrap();
        assert_eq!(c.bound, 0.5);
        assert!(!c.ok());
    }

    #[test]
    fn ulp_escape_counts_in_the_dtype() {
        let x = 1.0f32;
        let near = f32::from_bits(x.to_bits() + 3);
        let got = f32s(&[near]);
        let want = f32s(&[x]);
        assert!(!check(&got, &want, TIGHT).unwrap().ok());
        assert!(check(&got, &want, Tolerance { max_ulp: 3, ..TIGHT }).unwrap().ok());
        assert!(!check(&got, &want, Tolerance { max_ulp: 2, ..TIGHT }).unwrap().ok());
        assert_eq!(ulp_distance_bits(DType::F32, 0x8000_0000, 0), 0, "+0 and -0");
    }

    #[test]
    fn shapes_must_match() {
        assert!(check(&f32s(&[1.0]), &f32s(&[1.0, 2.0]), TIGHT).is_err());
    }
}
