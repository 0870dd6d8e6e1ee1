//! The factorisations compression needs, on `faer` (the one crate that
//! uses it). All inputs are symmetric positive semi-definite second-moment
//! matrices; they are dampened before factorising.

use faer::linalg::solvers::{DenseSolveCore, Solve};
use faer::{Mat, Side};

use crate::CompressError;

/// `H` plus `frac · mean(diag H) · I`, with every zero-diagonal (dead)
/// input's diagonal set to 1 so the matrix is definite.
pub fn dampened(h: &Mat<f64>, frac: f64) -> Mat<f64> {
    let n = h.nrows();
    let mean = (0..n).map(|i| h[(i, i)]).sum::<f64>() / n.max(1) as f64;
    let damp = if mean > 0.0 { frac * mean } else { 1.0 };
    let mut d = h.clone();
    for i in 0..n {
        if d[(i, i)] <= 0.0 {
            d[(i, i)] = 1.0;
        }
        d[(i, i)] += damp;
    }
    d
}

/// The inverse of a dampened SPD matrix.
pub fn inverse_spd(h: &Mat<f64>) -> Result<Mat<f64>, CompressError> {
    let llt = h.llt(Side::Lower).map_err(|e| CompressError::Numeric(format!("Cholesky factorisation: {e:?}")))?;
    Ok(llt.inverse())
}

/// `U` with `U ᵀU = (dampened H)⁻¹`, upper triangular: GPTQ's factor.
pub fn inverse_upper_cholesky(h: &Mat<f64>, frac: f64) -> Result<Mat<f64>, CompressError> {
    let inv = inverse_spd(&dampened(h, frac))?;
    let llt = inv.llt(Side::Lower).map_err(|e| CompressError::Numeric(format!("Cholesky of H⁻¹: {e:?}")))?;
    Ok(llt.L().transpose().to_owned())
}

/// Solves `A x = b` for SPD `A` (dampened by the caller).
pub fn solve_spd(a: &Mat<f64>, b: &[f64]) -> Result<Vec<f64>, CompressError> {
    let llt = a.llt(Side::Lower).map_err(|e| CompressError::Numeric(format!("Cholesky factorisation: {e:?}")))?;
    let rhs = Mat::from_fn(b.len(), 1, |i, _| b[i]);
    let x = llt.solve(&rhs);
    Ok((0..b.len()).map(|i| x[(i, 0)]).collect())
}

/// The principal submatrix of `m` on `idx × idx`.
pub fn sub(m: &Mat<f64>, idx: &[usize]) -> Mat<f64> {
    Mat::from_fn(idx.len(), idx.len(), |i, j| m[(idx[i], idx[j])])
}

/// `wᵀ A⁻¹ w` for a small SPD `A`: the OBS cost of removing the weights `w`
/// whose `H⁻¹` block is `A`.
pub fn obs_cost(a: &Mat<f64>, w: &[f64]) -> Result<f64, CompressError> {
    let x = solve_spd(a, w)?;
    Ok(w.iter().zip(&x).map(|(a, b)| a * b).sum())
}
