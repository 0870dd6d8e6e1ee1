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
    let x = solve_spd_many(a, &Mat::from_fn(b.len(), 1, |i, _| b[i]))?;
    Ok((0..b.len()).map(|i| x[(i, 0)]).collect())
}

/// Solves `A X = B` for SPD `A` (dampened by the caller), every column of
/// `B` with one factorisation.
pub fn solve_spd_many(a: &Mat<f64>, b: &Mat<f64>) -> Result<Mat<f64>, CompressError> {
    let llt = a.llt(Side::Lower).map_err(|e| CompressError::Numeric(format!("Cholesky factorisation: {e:?}")))?;
    Ok(llt.solve(b))
}

/// The principal submatrix of `m` on `idx × idx`.
pub fn sub(m: &Mat<f64>, idx: &[usize]) -> Mat<f64> {
    Mat::from_fn(idx.len(), idx.len(), |i, j| m[(idx[i], idx[j])])
}

/// The OBS cost `w_Dᵀ ([H⁻¹]_DD)⁻¹ w_D` of removing a 3x3 kernel's taps
/// `idx` (D), on the stack: `a` the kernel's 9 × 9 `H⁻¹` block, `w` its
/// weights. Pattern selection evaluates it 57 times per kernel (a 512 ×
/// 4608 layer: 15 million times), where allocating matrices dominated.
pub fn obs_cost(a: &[[f64; 9]; 9], idx: &[usize], w: &[f64; 9]) -> Result<f64, CompressError> {
    let (mut l, mut y) = ([0f64; 81], [0f64; 9]);
    obs_cost_in((&mut l, &mut y), idx.len().min(9), |i, j| a[idx[i]][idx[j]], |i| w[idx[i]])
}

/// [`obs_cost`] over `n` indices of any count: `a(i, j)` the `H⁻¹` entries
/// and `w(i)` the weights of the removed set D (a pattern shared by
/// several kernels removes their taps together).
pub fn obs_cost_of(n: usize, a: impl Fn(usize, usize) -> f64, w: impl Fn(usize) -> f64) -> Result<f64, CompressError> {
    obs_cost_in((&mut vec![0f64; n * n], &mut vec![0f64; n]), n, a, w)
}

/// `‖L⁻¹w_D‖²` with `A_DD = L Lᵀ` (Cholesky, row-major `L` in the first
/// scratch slice, `n × n`; the forward substitution in the second).
fn obs_cost_in(
    (l, y): (&mut [f64], &mut [f64]),
    n: usize,
    a: impl Fn(usize, usize) -> f64,
    w: impl Fn(usize) -> f64,
) -> Result<f64, CompressError> {
    for i in 0..n {
        for j in 0..=i {
            let s = a(i, j) - (0..j).map(|p| l[i * n + p] * l[j * n + p]).sum::<f64>();
            if i == j {
                if s <= 0.0 || s.is_nan() {
                    return Err(CompressError::Numeric(
                        "Cholesky factorisation: a kernel's H⁻¹ block is not positive definite".into(),
                    ));
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    let mut cost = 0.0;
    for i in 0..n {
        let s = w(i) - (0..i).map(|p| l[i * n + p] * y[p]).sum::<f64>();
        y[i] = s / l[i * n + i];
        cost += y[i] * y[i];
    }
    Ok(cost)
}

/// Data-aware low rank (SVD-LLM's whitening; `../shared/COMPRESSION.md`
/// §4): with `L` the Cholesky factor of the dampened `H` (`H = L Lᵀ`),
/// `W L = U Σ Vᵀ`, and `W ≈ (U_r Σ_r)(V_rᵀ L⁻¹)`: the rank-r product with the
/// least output error `‖(W − Ŵ) X‖²`, which is the sum of the dropped `σ²`.
/// `w` is `[n][k]`; returns the whitened singular values (descending) and a
/// function giving the factors `(u [n][r], v [r][k])` for a rank.
pub struct Whitened {
    /// The singular values of `W L`, descending.
    pub sigma: Vec<f64>,
    u: Mat<f64>,
    v_linv: Mat<f64>,
}

impl Whitened {
    /// Factors `w` (`[n][k]`) whitened by `h` (`[k, k]`, the layer's input
    /// second moments, dampened by 1% of its mean diagonal). Fails when the
    /// Cholesky factorisation or the SVD does.
    pub fn new(w: &[Vec<f64>], h: &Mat<f64>) -> Result<Whitened, CompressError> {
        let (n, k) = (w.len(), h.nrows());
        let llt = dampened(h, 0.01)
            .llt(Side::Lower)
            .map_err(|e| CompressError::Numeric(format!("Cholesky factorisation: {e:?}")))?;
        let l = llt.L().to_owned();
        let wm = Mat::from_fn(n, k, |i, j| w[i][j]);
        let wl = &wm * &l;
        let svd = wl.thin_svd().map_err(|e| CompressError::Numeric(format!("SVD: {e:?}")))?;
        let sigma: Vec<f64> = (0..svd.S().dim()).map(|i| svd.S()[i]).collect();
        // Vᵀ L⁻¹ = (L⁻ᵀ V)ᵀ: solve Lᵀ Y = V
        let v = svd.V().to_owned();
        let y = l.transpose().to_owned().partial_piv_lu().solve(&v);
        Ok(Whitened { sigma, u: svd.U().to_owned(), v_linv: y.transpose().to_owned() })
    }

    /// The smallest rank keeping `energy` of `Σ σ²`.
    pub fn rank_for(&self, energy: f64) -> usize {
        let total: f64 = self.sigma.iter().map(|s| s * s).sum();
        let mut acc = 0.0;
        for (i, s) in self.sigma.iter().enumerate() {
            acc += s * s;
            if acc >= energy * total {
                return i + 1;
            }
        }
        self.sigma.len()
    }

    /// `(U_r Σ_r, V_rᵀ L⁻¹)` as row lists.
    pub fn factors(&self, r: usize) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let r = r.min(self.sigma.len());
        let u = (0..self.u.nrows()).map(|i| (0..r).map(|j| self.u[(i, j)] * self.sigma[j]).collect()).collect();
        let v = (0..r).map(|j| (0..self.v_linv.ncols()).map(|c| self.v_linv[(j, c)]).collect()).collect();
        (u, v)
    }
}

#[cfg(test)]
mod small_tests {
    use super::*;

    /// `wᵀ A⁻¹ w` through a faer factorisation: the reference.
    fn factorised_obs_cost(a: &Mat<f64>, w: &[f64]) -> Result<f64, CompressError> {
        let x = solve_spd(a, w)?;
        Ok(w.iter().zip(&x).map(|(a, b)| a * b).sum())
    }

    #[test]
    fn the_stack_obs_cost_is_the_factorised_one() {
        let x =
            Mat::from_fn(9, 30, |i, j| ((i * 31 + j * 17) % 13) as f64 / 13.0 - 0.4 + if i == j { 1.0 } else { 0.0 });
        let a = &x * x.transpose();
        let mut block = [[0f64; 9]; 9];
        for (i, row) in block.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = a[(i, j)];
            }
        }
        let w = [0.3, -1.2, 0.7, 0.05, -0.4, 2.0, -0.9, 0.0, 1.1];
        for idx in [vec![0usize, 1, 2, 3, 4, 5, 6, 7, 8], vec![1, 3, 5, 7, 8], vec![4], vec![0, 8, 2]] {
            let wd: Vec<f64> = idx.iter().map(|&t| w[t]).collect();
            let want = factorised_obs_cost(&sub(&a, &idx), &wd).unwrap_or_else(|e| panic!("{e}"));
            let got = obs_cost(&block, &idx, &w).unwrap_or_else(|e| panic!("{e}"));
            assert!((got - want).abs() <= 1e-10 * want.abs().max(1.0), "{idx:?}: {got} vs {want}");
        }
        // not positive definite: an error, not a NaN
        let mut bad = block;
        bad[4][4] = -1.0;
        assert!(obs_cost(&bad, &[4], &w).is_err());
    }
}
