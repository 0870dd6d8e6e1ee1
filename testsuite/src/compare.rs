//! Dtype-aware comparison of a computed tensor with a reference.
//!
//! Contract, per output:
//! - dtype and shape must be equal;
//! - integers and bools must be exactly equal (bools compare as `!= 0`);
//! - floats: NaN must sit at the same positions, infinities must be equal
//!   (same sign), and every finite pair must satisfy
//!   `|a - b| <= atol + rtol * |ref|` **or** `ulp_distance(a, b) <= max_ulp`,
//!   with the ULP distance counted in the tensor's own format.
//!
//! Defaults ([`FloatTolerance::default_for`]):
//!
//! | dtype | atol | rtol | max ULP |
//! |---|---|---|---|
//! | f32  | 1e-5 | 1e-4 | 64 |
//! | f64  | 1e-9 | 1e-8 | 64 |
//! | f16  | 1e-3 | 1e-3 | 4 |
//! | bf16 | 1e-2 | 1e-2 | 4 |
//! | float8, float4 | 0 | 0 | 0 (decoded values must be equal) |
//!
//! The absolute term covers results near zero (where a relative bound means
//! nothing, e.g. a sum that cancels); the relative term covers accumulations
//! done in another order; the ULP bound covers transcendental functions
//! whose error is specified in ULPs. A case may declare looser tolerances
//! (the ONNX `light` models declare rtol 1e-3/2e-3): [`FloatTolerance::loosened`].

use kerf_ir::{DType, Tensor};
use thiserror::Error;

/// Float tolerance: pass if within `atol + rtol*|ref|` or within `max_ulp` ULPs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FloatTolerance {
    pub atol: f64,
    pub rtol: f64,
    pub max_ulp: u64,
}

impl FloatTolerance {
    /// The documented defaults for a float dtype (f32's for non-float dtypes,
    /// where they are not used).
    pub fn default_for(dtype: DType) -> FloatTolerance {
        match dtype {
            DType::F64 => FloatTolerance { atol: 1e-9, rtol: 1e-8, max_ulp: 64 },
            DType::F16 => FloatTolerance { atol: 1e-3, rtol: 1e-3, max_ulp: 4 },
            DType::BF16 => FloatTolerance { atol: 1e-2, rtol: 1e-2, max_ulp: 4 },
            // float8/float4 results are conversions: exact (decoded values equal)
            d if d.is_narrow() => FloatTolerance { atol: 0.0, rtol: 0.0, max_ulp: 0 },
            _ => FloatTolerance { atol: 1e-5, rtol: 1e-4, max_ulp: 64 },
        }
    }

    /// Takes the larger of each bound and a case's declared `rtol`/`atol`.
    pub fn loosened(self, rtol: Option<f64>, atol: Option<f64>) -> FloatTolerance {
        FloatTolerance {
            atol: atol.map_or(self.atol, |a| self.atol.max(a)),
            rtol: rtol.map_or(self.rtol, |r| self.rtol.max(r)),
            max_ulp: self.max_ulp,
        }
    }
}

/// What a passing comparison measured (floats only; zero for exact types).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CompareStats {
    pub elements: usize,
    /// Largest `|a - b|` over positions where both are finite.
    pub max_abs: f64,
    /// Largest ULP distance over positions where both are finite.
    pub max_ulp: u64,
}

/// Why a computed tensor does not match its reference.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum Mismatch {
    #[error("dtype {actual}, expected {expected}")]
    DType { expected: DType, actual: DType },
    #[error("shape {actual:?}, expected {expected:?}")]
    Shape { expected: Vec<usize>, actual: Vec<usize> },
    #[error("{count} of {total} elements differ; first at {index}: got {actual}, expected {expected}")]
    Exact { index: usize, expected: i64, actual: i64, count: usize, total: usize },
    #[error("NaN mismatch at {index}: got {actual}, expected {expected} ({count} positions)")]
    Nan { index: usize, expected: f64, actual: f64, count: usize },
    #[error("infinity mismatch at {index}: got {actual}, expected {expected} ({count} positions)")]
    Inf { index: usize, expected: f64, actual: f64, count: usize },
    #[error(
        "{count} of {total} elements out of tolerance (atol {atol:e}, rtol {rtol:e}, {max_ulp_allowed} ULP); \
         first at {index}: got {actual}, expected {expected}; max abs error {max_abs:e}, max ULP {max_ulp}"
    )]
    Values {
        index: usize,
        expected: f64,
        actual: f64,
        count: usize,
        total: usize,
        max_abs: f64,
        max_ulp: u64,
        atol: f64,
        rtol: f64,
        max_ulp_allowed: u64,
    },
}

pub use kerf_pipeline::compare::{float_bits, ulp_distance_bits};

/// ULP distance between two f32 values.
pub fn ulp_distance_f32(a: f32, b: f32) -> u64 {
    ulp_distance_bits(DType::F32, u64::from(a.to_bits()), u64::from(b.to_bits()))
}

/// Compares `actual` with `expected` (the reference). `tol` applies to float dtypes.
pub fn compare(expected: &Tensor, actual: &Tensor, tol: FloatTolerance) -> Result<CompareStats, Mismatch> {
    if expected.dtype() != actual.dtype() {
        return Err(Mismatch::DType { expected: expected.dtype(), actual: actual.dtype() });
    }
    if expected.shape() != actual.shape() {
        return Err(Mismatch::Shape { expected: expected.shape().to_vec(), actual: actual.shape().to_vec() });
    }
    if expected.dtype().is_float() {
        compare_float(expected, actual, tol)
    } else {
        compare_exact(expected, actual)
    }
}

fn compare_exact(expected: &Tensor, actual: &Tensor) -> Result<CompareStats, Mismatch> {
    let total = expected.numel();
    let is_bool = expected.dtype() == DType::Bool;
    let mut first = None;
    let mut count = 0;
    for i in 0..total {
        let (e, a) = (expected.get_i64(i), actual.get_i64(i));
        let same = if is_bool { (e != 0) == (a != 0) } else { e == a };
        if !same {
            count += 1;
            first.get_or_insert((i, e, a));
        }
    }
    match first {
        None => Ok(CompareStats { elements: total, ..CompareStats::default() }),
        Some((index, expected, actual)) => Err(Mismatch::Exact { index, expected, actual, count, total }),
    }
}

fn compare_float(expected: &Tensor, actual: &Tensor, tol: FloatTolerance) -> Result<CompareStats, Mismatch> {
    let total = expected.numel();
    let dtype = expected.dtype();
    let mut stats = CompareStats { elements: total, ..CompareStats::default() };
    let (mut nan, mut inf, mut bad) = (None, None, None);
    let (mut nan_count, mut inf_count, mut bad_count) = (0, 0, 0);
    for i in 0..total {
        let (e, a) = (expected.get_f64(i), actual.get_f64(i));
        if e.is_nan() || a.is_nan() {
            if e.is_nan() != a.is_nan() {
                nan_count += 1;
                nan.get_or_insert((i, e, a));
            }
            continue;
        }
        if e.is_infinite() || a.is_infinite() {
            if e != a {
                inf_count += 1;
                inf.get_or_insert((i, e, a));
            }
            continue;
        }
        let abs = (a - e).abs();
        let ulp = ulp_distance_bits(dtype, float_bits(expected, i), float_bits(actual, i));
        stats.max_abs = stats.max_abs.max(abs);
        stats.max_ulp = stats.max_ulp.max(ulp);
        if !(abs <= tol.atol + tol.rtol * e.abs() || ulp <= tol.max_ulp) {
            bad_count += 1;
            bad.get_or_insert((i, e, a));
        }
    }
    if let Some((index, expected, actual)) = nan {
        return Err(Mismatch::Nan { index, expected, actual, count: nan_count });
    }
    if let Some((index, expected, actual)) = inf {
        return Err(Mismatch::Inf { index, expected, actual, count: inf_count });
    }
    if let Some((index, expected, actual)) = bad {
        return Err(Mismatch::Values {
            index,
            expected,
            actual,
            count: bad_count,
            total,
            max_abs: stats.max_abs,
            max_ulp: stats.max_ulp,
            atol: tol.atol,
            rtol: tol.rtol,
            max_ulp_allowed: tol.max_ulp,
        });
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(v: &[f32]) -> Tensor {
        Tensor::from_f32(vec![v.len()], v).unwrap()
    }

    /// `x` moved by `n` ULPs towards +inf (for positive finite x).
    fn up(x: f32, n: u32) -> f32 {
        f32::from_bits(x.to_bits() + n)
    }

    /// Tolerance with only the ULP bound active.
    fn ulp_only(max_ulp: u64) -> FloatTolerance {
        FloatTolerance { atol: 0.0, rtol: 0.0, max_ulp }
    }

    #[test]
    fn ulp_distance_counts_representable_values() {
        assert_eq!(ulp_distance_f32(1.0, 1.0), 0);
        assert_eq!(ulp_distance_f32(1.0, up(1.0, 1)), 1);
        assert_eq!(ulp_distance_f32(up(1.0, 7), 1.0), 7);
        assert_eq!(ulp_distance_f32(0.0, -0.0), 0);
        // Across zero: the smallest subnormals on either side are 2 apart.
        assert_eq!(ulp_distance_f32(f32::from_bits(1), -f32::from_bits(1)), 2);
        // Just below 1.0 the spacing halves: 1.0 - 2^-24 is one ULP below 1.0.
        assert_eq!(ulp_distance_f32(1.0, 1.0 - f32::EPSILON / 2.0), 1);
    }

    #[test]
    fn ulp_bound_is_inclusive_and_off_by_one_fails() {
        let r = f32s(&[1.0, 2.0]);
        assert!(compare(&r, &f32s(&[up(1.0, 64), 2.0]), ulp_only(64)).is_ok());
        let err = compare(&r, &f32s(&[up(1.0, 65), 2.0]), ulp_only(64)).unwrap_err();
        match err {
            Mismatch::Values { index, count, max_ulp, .. } => {
                assert_eq!((index, count, max_ulp), (0, 1, 65));
            }
            other => panic!("expected a value mismatch, got {other:?}"),
        }
    }

    #[test]
    fn absolute_tolerance_covers_values_near_zero() {
        // 1e-30 and -1e-30 are billions of ULPs apart but well within atol.
        let tol = FloatTolerance::default_for(DType::F32);
        assert!(compare(&f32s(&[1e-30]), &f32s(&[-1e-30]), tol).is_ok());
        assert!(compare(&f32s(&[0.0]), &f32s(&[1.1e-5]), tol).is_err());
        assert!(compare(&f32s(&[0.0]), &f32s(&[0.9e-5]), tol).is_ok());
    }

    #[test]
    fn relative_tolerance_scales_with_the_reference() {
        let tol = FloatTolerance { atol: 0.0, rtol: 1e-4, max_ulp: 0 };
        assert!(compare(&f32s(&[1000.0]), &f32s(&[1000.09]), tol).is_ok());
        let e = compare(&f32s(&[1000.0]), &f32s(&[1000.2]), tol).unwrap_err();
        let Mismatch::Values { max_abs, .. } = e else { panic!("expected Values, got {e:?}") };
        assert!((max_abs - 0.2).abs() < 1e-3, "max_abs {max_abs}");
    }

    #[test]
    fn failure_reports_max_abs_and_max_ulp_over_all_elements() {
        let r = f32s(&[1.0, 1.0, 1.0]);
        let a = f32s(&[up(1.0, 100), 1.0, up(1.0, 300)]);
        let e = compare(&r, &a, ulp_only(64)).unwrap_err();
        let Mismatch::Values { index, count, total, max_ulp, max_abs, .. } = e.clone() else {
            panic!("expected Values, got {e:?}")
        };
        assert_eq!((index, count, total, max_ulp), (0, 2, 3, 300));
        assert_eq!(max_abs, (up(1.0, 300) - 1.0) as f64);
        let msg = e.to_string();
        assert!(msg.contains("max ULP 300") && msg.contains("2 of 3"), "{msg}");
    }

    #[test]
    fn nan_positions_must_match() {
        let tol = FloatTolerance::default_for(DType::F32);
        let r = f32s(&[f32::NAN, 1.0]);
        assert!(compare(&r, &f32s(&[f32::NAN, 1.0]), tol).is_ok());
        let e = compare(&r, &f32s(&[0.0, 1.0]), tol).unwrap_err();
        assert!(matches!(e, Mismatch::Nan { index: 0, count: 1, .. }), "{e:?}");
        let e = compare(&r, &f32s(&[f32::NAN, f32::NAN]), tol).unwrap_err();
        assert!(matches!(e, Mismatch::Nan { index: 1, count: 1, .. }), "{e:?}");
    }

    #[test]
    fn infinities_must_have_the_same_sign() {
        let tol = FloatTolerance::default_for(DType::F32);
        let r = f32s(&[f32::INFINITY, f32::NEG_INFINITY]);
        assert!(compare(&r, &f32s(&[f32::INFINITY, f32::NEG_INFINITY]), tol).is_ok());
        let e = compare(&r, &f32s(&[f32::INFINITY, f32::INFINITY]), tol).unwrap_err();
        assert!(matches!(e, Mismatch::Inf { index: 1, .. }), "{e:?}");
        let e = compare(&r, &f32s(&[f32::MAX, f32::NEG_INFINITY]), tol).unwrap_err();
        assert!(matches!(e, Mismatch::Inf { index: 0, .. }), "{e:?}");
    }

    #[test]
    fn shape_and_dtype_must_match() {
        let tol = FloatTolerance::default_for(DType::F32);
        let a = Tensor::from_f32(vec![2, 3], &[0.0; 6]).unwrap();
        let b = Tensor::from_f32(vec![3, 2], &[0.0; 6]).unwrap();
        assert_eq!(compare(&a, &b, tol).unwrap_err(), Mismatch::Shape { expected: vec![2, 3], actual: vec![3, 2] });
        let c = a.cast(DType::F64).unwrap();
        assert_eq!(compare(&a, &c, tol).unwrap_err(), Mismatch::DType { expected: DType::F32, actual: DType::F64 });
    }

    #[test]
    fn integers_compare_exactly() {
        let tol = FloatTolerance::default_for(DType::F32);
        let a = Tensor::from_i64(vec![3], &[1, 2, 3]).unwrap();
        assert!(compare(&a, &Tensor::from_i64(vec![3], &[1, 2, 3]).unwrap(), tol).is_ok());
        let e = compare(&a, &Tensor::from_i64(vec![3], &[1, 2, 4]).unwrap(), tol).unwrap_err();
        assert_eq!(e, Mismatch::Exact { index: 2, expected: 3, actual: 4, count: 1, total: 3 });
    }

    #[test]
    fn bools_compare_by_truth() {
        let tol = FloatTolerance::default_for(DType::F32);
        let a = Tensor::from_bytes(DType::Bool, vec![2], vec![1, 0]).unwrap();
        let b = Tensor::from_bytes(DType::Bool, vec![2], vec![1, 1]).unwrap();
        assert!(matches!(compare(&a, &b, tol), Err(Mismatch::Exact { index: 1, .. })));
    }

    #[test]
    fn f16_ulps_are_counted_in_f16() {
        // 1.0 = 0x3c00; +3 ULP = 0x3c03.
        let r = Tensor::from_bytes(DType::F16, vec![1], 0x3c00u16.to_le_bytes().to_vec()).unwrap();
        let a3 = Tensor::from_bytes(DType::F16, vec![1], 0x3c03u16.to_le_bytes().to_vec()).unwrap();
        let a5 = Tensor::from_bytes(DType::F16, vec![1], 0x3c05u16.to_le_bytes().to_vec()).unwrap();
        assert!(compare(&r, &a3, ulp_only(4)).is_ok());
        let e = compare(&r, &a5, ulp_only(4)).unwrap_err();
        assert!(matches!(e, Mismatch::Values { max_ulp: 5, .. }), "{e:?}");
    }

    #[test]
    fn declared_tolerances_only_loosen() {
        let t = FloatTolerance::default_for(DType::F32).loosened(Some(1e-3), Some(1e-7));
        assert_eq!(t, FloatTolerance { atol: 1e-5, rtol: 1e-3, max_ulp: 64 });
    }
}
