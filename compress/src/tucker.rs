//! Tucker-2 factorisation of a one-group KxK conv, data-aware: a 1x1 conv
//! `C → r_in`, the KxK core `r_in → r_out` (the layer's strides, pads and
//! dilations), and a 1x1 conv `r_out → M` (`../shared/COMPRESSION.md` §4).
//!
//! Both modes are fitted to the layer's inputs, not to the weight alone:
//!
//! 1. **Output mode** is the channel SVD of [`crate::linalg::Whitened`]:
//!    `W ≈ U·V` with `V` an `r_out`-output KxK conv, `U` the 1x1 conv, the
//!    rank-`r_out` product with the least output error `‖(W − Ŵ)X‖²`.
//! 2. **Input mode**: the input's channels are projected onto an
//!    `r_in`-dimensional subspace before `V`. With `S = L Lᵀ` the per-pixel
//!    channel second moments (the same-tap blocks of the layer's im2col
//!    `H`, averaged over taps) and `A` the core's taps stacked as rows
//!    (`[r_out·k², C]`), the projection that loses least of `Σ_t ‖V_t x‖²`
//!    keeps the top right singular vectors `Q` of `A L`: the first conv is
//!    `P = Qᵀ L⁻¹` and the core `V_t L Q` per tap, so `core(P x) = V (L Q Qᵀ
//!    L⁻¹) x`.
//!
//! Contract: `r_in ≤ C`, `r_out ≤ min(M, C·k²)`; the three factors compose
//! to the layer's weight up to the dropped singular directions, and the
//! factorisation is deterministic.

use faer::linalg::solvers::Solve;
use faer::{Mat, Side};

use crate::linalg::{self, Whitened};
use crate::CompressError;

/// The three weights of a Tucker-2 conv, as row lists.
#[derive(Clone, Debug)]
pub struct Tucker2 {
    /// The first 1x1 conv, `[r_in][C]`.
    pub first: Vec<Vec<f64>>,
    /// The KxK core, `[r_out][r_in · area]` (channel-major, taps inside).
    pub core: Vec<Vec<f64>>,
    /// The last 1x1 conv, `[M][r_out]`.
    pub last: Vec<Vec<f64>>,
}

/// The ranks [`factor`] gives when asked for `[r_in, r_out]` on a conv
/// with `c` input channels, `m` outputs and `area` taps: `r_out` at most
/// the rank of `W` (`min(m, c · area)`), `r_in` at most `c` and the rank of
/// the core's stacked taps (`r_out · area`).
pub fn ranks(c: usize, m: usize, area: usize, [r_in, r_out]: [usize; 2]) -> [usize; 2] {
    let r_out = r_out.min(m).min(c * area);
    [r_in.min(c).min(r_out * area), r_out]
}

/// Multiply-accumulates per inference of the three convs at `ranks`: the
/// first conv on every input pixel, the core and the last conv on every
/// output pixel (pixels counting the batch). With one pixel in and out,
/// the three convs' weights.
pub fn macs(c: usize, m: usize, area: usize, [r_in, r_out]: [usize; 2], in_pixels: usize, out_pixels: usize) -> usize {
    in_pixels * c * r_in + out_pixels * (r_out * r_in * area + m * r_out)
}

impl Tucker2 {
    /// The composed weight `last · core · first` as `[M][C · area]` rows.
    pub fn compose(&self) -> Vec<Vec<f64>> {
        let (r_in, c) = (self.first.len(), self.first.first().map_or(0, Vec::len));
        let area = self.core.first().map_or(0, Vec::len) / r_in.max(1);
        // core · first: [r_out][C · area]
        let inner: Vec<Vec<f64>> = self
            .core
            .iter()
            .map(|row| {
                let mut out = vec![0.0; c * area];
                for (j, p) in self.first.iter().enumerate() {
                    for t in 0..area {
                        let k = row[j * area + t];
                        for (ch, &pv) in p.iter().enumerate() {
                            out[ch * area + t] += k * pv;
                        }
                    }
                }
                out
            })
            .collect();
        self.last
            .iter()
            .map(|u| (0..c * area).map(|col| u.iter().zip(&inner).map(|(a, r)| a * r[col]).sum()).collect())
            .collect()
    }
}

/// Factors `rows` (`[M][C · area]`, one group) with the layer's im2col
/// second moments `h` into ranks `r_in` (input channels) and `r_out`
/// (output channels).
pub fn factor(
    rows: &[Vec<f64>],
    h: &Mat<f64>,
    area: usize,
    r_in: usize,
    r_out: usize,
) -> Result<Tucker2, CompressError> {
    let cols = h.nrows();
    let c = cols / area.max(1);
    let (last, v) = Whitened::new(rows, h)?.factors(r_out);
    let r_out = v.len();
    let r_in = r_in.min(c);
    // per-pixel channel moments: H's same-tap blocks, averaged
    let s = Mat::from_fn(c, c, |i, j| (0..area).map(|t| h[(i * area + t, j * area + t)]).sum::<f64>() / area as f64);
    let l = linalg::dampened(&s, 0.01)
        .llt(Side::Lower)
        .map_err(|e| CompressError::Numeric(format!("Cholesky of the channel moments: {e:?}")))?
        .L()
        .to_owned();
    // the core's taps as rows: A[(o, t), ch] = v[o][ch · area + t]
    let a = Mat::from_fn(r_out * area, c, |row, ch| v[row / area][ch * area + row % area]);
    let al = &a * &l;
    let svd = al.thin_svd().map_err(|e| CompressError::Numeric(format!("SVD: {e:?}")))?;
    let q = svd.V().subcols(0, r_in.min(svd.V().ncols())).to_owned();
    let r_in = q.ncols();
    // P = Qᵀ L⁻¹ = (L⁻ᵀ Q)ᵀ; the core's channel map L Q
    let y = l.transpose().to_owned().partial_piv_lu().solve(&q);
    let lq = &l * &q;
    let first = (0..r_in).map(|j| (0..c).map(|ch| y[(ch, j)]).collect()).collect();
    let core = v
        .iter()
        .map(|vo| {
            let mut out = vec![0.0; r_in * area];
            for j in 0..r_in {
                for t in 0..area {
                    out[j * area + t] = (0..c).map(|ch| vo[ch * area + t] * lq[(ch, j)]).sum();
                }
            }
            out
        })
        .collect();
    Ok(Tucker2 { first, core, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Σ (w − ŵ)ᵀ H (w − ŵ) / Σ wᵀ H w`.
    fn rel_error(w: &[Vec<f64>], wh: &[Vec<f64>], h: &Mat<f64>) -> f64 {
        let quad = |d: &[f64]| -> f64 {
            (0..d.len()).map(|i| (0..d.len()).map(|j| d[i] * h[(i, j)] * d[j]).sum::<f64>()).sum()
        };
        let num: f64 =
            w.iter().zip(wh).map(|(a, b)| quad(&a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<_>>())).sum();
        num / w.iter().map(|a| quad(a)).sum::<f64>()
    }

    /// Full ranks reproduce the weight, and at low ranks the data-aware
    /// factors beat the same ranks fitted to the weight alone when the
    /// inputs are uneven.
    #[test]
    fn factors_compose_back_and_follow_the_data() {
        let (m, c, area, n) = (6usize, 8usize, 9usize, 400usize);
        let mut rnd = crate::testutil::uniform(0xabc);
        let w: Vec<Vec<f64>> = (0..m).map(|_| (0..c * area).map(|_| rnd()).collect()).collect();
        // inputs: channel scales 1..8, neighbouring channels correlated
        let base = Mat::from_fn(c * area, n, |_, _| rnd());
        let x = Mat::from_fn(c * area, n, |i, j| {
            let ch = i / area;
            (1.0 + ch as f64) * (base[(i, j)] + 0.5 * base[((i + area) % (c * area), j)])
        });
        let h = &x * x.transpose();
        let full = factor(&w, &h, area, c, m).unwrap_or_else(|e| panic!("{e}"));
        let e_full = rel_error(&w, &full.compose(), &h);
        assert!(e_full < 1e-6, "full ranks: relative error {e_full}");
        let t = factor(&w, &h, area, 4, 4).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.first.len(), t.core.len(), t.last.len()), (4, 4, m));
        let weights: usize = [&t.first, &t.core, &t.last].iter().map(|f| f.iter().map(Vec::len).sum::<usize>()).sum();
        assert_eq!(weights, 4 * c + 4 * 4 * area + m * 4);
        // one pixel in, one out: a multiply-add per weight
        assert_eq!(macs(c, m, area, [4, 4], 1, 1), weights);
        let e = rel_error(&w, &t.compose(), &h);
        // the same ranks fitted to the weight alone (H = identity)
        let eye = Mat::from_fn(c * area, c * area, |i, j| if i == j { 1.0 } else { 0.0 });
        let plain = factor(&w, &eye, area, 4, 4).unwrap_or_else(|e| panic!("{e}"));
        let e_plain = rel_error(&w, &plain.compose(), &h);
        eprintln!("relative output error at ranks (4, 4): data-aware {e:.4}, weight-only {e_plain:.4}");
        assert!(e < 1.0 && e < 0.9 * e_plain, "data-aware {e} vs weight-only {e_plain}");
        // the ranks the engine prices before factoring are the ones it gets
        for requested in [[4, 4], [20, 3], [8, 100], [1, 1], [3, 50]] {
            let t = factor(&w, &h, area, requested[0], requested[1]).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!([t.first.len(), t.core.len()], ranks(c, m, area, requested), "{requested:?}");
        }
    }
}
