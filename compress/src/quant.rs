//! int8: weight grids, GPTQ rounding, activation ranges.
//!
//! Weights are symmetric signed int8 per output channel: row `o` holds
//! `scale[o] · q` with integer `q ∈ [−127, 127]` (−128 is never used, so a
//! negated weight is still on the grid, and `u8 × s8` pair sums stay in
//! `i16` range one step longer). Activations are asymmetric uint8 per
//! tensor: `x' = (clamp(round(x / s) + z, 0, 255) − z) · s`, rounding half
//! to even, the ONNX `QuantizeLinear`/`DequantizeLinear` pair.

use faer::Mat;

pub use kerf_ir::ActQuant;

use crate::linalg;
use crate::plan::{Granularity, Observer};
use crate::CompressError;

/// Largest weight code of a `bits`-bit symmetric grid: `2^(bits−1) − 1`
/// (127 for 8 bits; 63 for 7, whose byte pairs never saturate AVX2's
/// `vpmaddubsw`, [`kerf_ir::byte_pairs_exact`]).
pub fn qmax(bits: u8) -> f64 {
    f64::from((1u32 << (bits.clamp(2, 8) - 1)) - 1)
}

/// The steps of a weight's rows for codes up to `qmax`: per row
/// ([`row_scales`]), or one for the whole tensor (its largest magnitude /
/// `qmax`, on every row).
pub fn scales_for(rows: &[Vec<f64>], g: Granularity, qmax: f64) -> Vec<f64> {
    match g {
        Granularity::Channel => row_scales(rows, qmax),
        Granularity::Tensor => {
            let m = rows.iter().flatten().fold(0.0f64, |m, &x| m.max(x.abs()));
            vec![if m > 0.0 { m / qmax } else { 1.0 }; rows.len()]
        }
    }
}

/// Per-row scales from each row's largest magnitude over `qmax` (a zero
/// row gets 1, any positive scale represents it exactly).
pub fn row_scales(rows: &[Vec<f64>], qmax: f64) -> Vec<f64> {
    rows.iter()
        .map(|r| {
            let m = r.iter().fold(0.0f64, |m, &x| m.max(x.abs()));
            if m > 0.0 {
                m / qmax
            } else {
                1.0
            }
        })
        .collect()
}

/// Which codes of a row a saturating byte product (AVX2's `vpmaddubsw`)
/// multiplies as pairs, each of which must then be an exact byte pair
/// ([`kerf_ir::byte_pair_partners`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pairing {
    /// None: every code free.
    Free,
    /// Adjacent codes `(2j, 2j + 1)`: the integer conv's byte tile and the
    /// one-pixel product ([`kerf_ir::byte_pairs_exact`]).
    Adjacent,
    /// Adjacent codes, and the same tap of input channels `(2i, 2i + 1)`
    /// (`area` taps per channel): the integer pattern kernel's channel
    /// quads as well ([`kerf_ir::channel_pairs_exact`]).
    Channels {
        /// Taps per input channel (the kernel's area).
        area: usize,
    },
}

impl Pairing {
    /// The earlier columns column `c` is paired with.
    fn partners(self, c: usize) -> impl Iterator<Item = usize> {
        let adjacent = (self != Pairing::Free && c % 2 == 1).then(|| c - 1);
        let channel = match self {
            Pairing::Channels { area } if area > 0 && (c / area) % 2 == 1 => Some(c - area),
            _ => None,
        };
        adjacent.into_iter().chain(channel)
    }
}

/// A weight's grid: one step per row, codes in `[−qmax, qmax]`, paired as
/// `pairing` says.
#[derive(Clone, Copy, Debug)]
pub struct Grid<'a> {
    /// One step per row.
    pub scales: &'a [f64],
    /// Largest code ([`qmax`]).
    pub qmax: f64,
    /// Which codes must be exact byte pairs.
    pub pairing: Pairing,
}

impl Grid<'_> {
    /// The grid point for column `c` of row `o` nearest `w` (ties to even,
    /// like the exported `round`), given the row's codes already decided
    /// (`done`, columns `0..c`, on the grid); for the second code of a pair
    /// the nearest of the first code's partners
    /// ([`kerf_ir::byte_pair_partners`]; of both firsts' where the column
    /// is the second of two pairs, ranges that both hold 0).
    pub fn decide(&self, o: usize, c: usize, done: &[f64], w: f64) -> f64 {
        let s = self.scales[o];
        let mut q = (w / s).round_ties_even().clamp(-self.qmax, self.qmax);
        for p in self.pairing.partners(c) {
            // the first code, on the grid by contract (|code| <= 127)
            let first = (done[p] / s).round() as i8;
            let partners = kerf_ir::byte_pair_partners(first);
            q = q.clamp(f64::from(*partners.start()), f64::from(*partners.end()));
        }
        q * s
    }

    /// The grid of rows `r` only (a conv group's).
    pub fn rows(&self, r: std::ops::Range<usize>) -> Grid<'_> {
        Grid { scales: &self.scales[r], ..*self }
    }
}

/// Rounds every weight to its nearest grid point ([`Grid::decide`], in
/// column order); masked-off weights (`keep[o][j] == false`) become zero.
pub fn round_nearest(rows: &mut [Vec<f64>], grid: Grid, keep: Option<&[Vec<bool>]>) {
    for (o, r) in rows.iter_mut().enumerate() {
        for j in 0..r.len() {
            let kept = keep.is_none_or(|k| k[o][j]);
            r[j] = if kept { grid.decide(o, j, &r[..j], r[j]) } else { 0.0 };
        }
    }
}

/// GPTQ (Frantar et al. 2022; `../shared/COMPRESSION.md` §2): columns are
/// rounded in order, and each column's rounding error, scaled through the
/// upper Cholesky factor `U` of `H⁻¹` (`H` dampened by 1% of its mean
/// diagonal), is subtracted from the columns not yet rounded, which
/// minimises `‖(W − Ŵ) X‖²` greedily. Masked-off weights are "rounded" to
/// zero the same way (SparseGPT's joint prune + quantise with a fixed mask).
/// Columns no calibration sample ever touched (zero diagonal) are rounded
/// alone. Deterministic: plain arithmetic in a fixed order ([`obs_sweep`],
/// in GPTQ's lazy blocks).
pub fn gptq(rows: &mut [Vec<f64>], h: &Mat<f64>, grid: Grid, keep: Option<&[Vec<bool>]>) -> Result<(), CompressError> {
    obs_sweep(rows, h, |o, c, done, v| if keep.is_none_or(|k| k[o][c]) { grid.decide(o, c, done, v) } else { 0.0 })
}

/// The sweep GPTQ and SparseGPT share: column by column, every row's
/// weight becomes `decide(row, column, the row's columns decided so far,
/// weight)` and the change, scaled
/// through the upper Cholesky factor `U` of `H⁻¹` (1% dampening), is pushed
/// onto the row's columns not yet decided, in lazy blocks of
/// [`GPTQ_BLOCK`] columns (inside a block column by column; the columns
/// past it get the whole block's errors as one product `E · U[block,
/// rest]`). The same updates as the column-by-column definition in
/// another order: a 512 × 4608 layer takes about a second.
pub fn obs_sweep(
    rows: &mut [Vec<f64>],
    h: &Mat<f64>,
    decide: impl Fn(usize, usize, &[f64], f64) -> f64,
) -> Result<(), CompressError> {
    let n = h.nrows();
    let u = linalg::inverse_upper_cholesky(h, 0.01)?;
    let m = rows.len();
    for b0 in (0..n).step_by(GPTQ_BLOCK) {
        let b1 = (b0 + GPTQ_BLOCK).min(n);
        // the block's rows of U, row-major (contiguous inner loops)
        let ub: Vec<f64> = (b0..b1).flat_map(|i| (b0..b1).map(move |j| (i, j))).map(|(i, j)| u[(i, j)]).collect();
        let w = b1 - b0;
        let mut err = Mat::<f64>::zeros(m, w);
        for i in 0..w {
            let d = ub[i * w + i];
            for (o, r) in rows.iter_mut().enumerate() {
                let c = b0 + i;
                let q = decide(o, c, &r[..c], r[c]);
                let e = (r[c] - q) / d;
                r[c] = q;
                err[(o, i)] = e;
                if e != 0.0 {
                    let urow = &ub[i * w + i + 1..(i + 1) * w];
                    for (x, uv) in r[c + 1..b1].iter_mut().zip(urow) {
                        *x -= e * uv;
                    }
                }
            }
        }
        if b1 < n {
            // W[:, b1:] -= E · U[b0:b1, b1:], transposed so each row's
            // update is a contiguous column
            let dt = u.as_ref().submatrix(b0, b1, w, n - b1).transpose() * err.transpose();
            for (o, r) in rows.iter_mut().enumerate() {
                for (j, x) in r[b1..].iter_mut().enumerate() {
                    *x -= dt[(j, o)];
                }
            }
        }
    }
    Ok(())
}

/// GPTQ's lazy block width (columns per block).
const GPTQ_BLOCK: usize = 128;

/// Collects an activation's values (a deterministic subsample past
/// `capacity`) and picks its range.
#[derive(Clone, Debug)]
pub struct RangeObserver {
    values: Vec<f32>,
    seen: usize,
    capacity: usize,
    stride: usize,
    lo: f32,
    hi: f32,
}

impl RangeObserver {
    /// An empty observer keeping fewer than `2 · capacity` values
    /// (`capacity` at least 1); the range's ends are tracked exactly.
    pub fn new(capacity: usize) -> RangeObserver {
        RangeObserver {
            values: Vec::new(),
            seen: 0,
            capacity: capacity.max(1),
            stride: 1,
            lo: f32::INFINITY,
            hi: f32::NEG_INFINITY,
        }
    }

    /// Adds values; a non-finite value is an error naming `what`.
    pub fn add(&mut self, xs: &[f32], what: &str) -> Result<(), CompressError> {
        for &x in xs {
            if !x.is_finite() {
                return Err(CompressError::Calibration(format!("{what}: a calibration sample gives {x}")));
            }
            self.lo = self.lo.min(x);
            self.hi = self.hi.max(x);
            // every stride-th value; when twice full, every other one is
            // dropped and the stride doubles: an even, deterministic subsample
            if self.seen.is_multiple_of(self.stride) {
                self.values.push(x);
                if self.values.len() >= 2 * self.capacity {
                    let kept: Vec<f32> = self.values.iter().step_by(2).copied().collect();
                    self.values = kept;
                    self.stride *= 2;
                }
            }
            self.seen += 1;
        }
        Ok(())
    }

    /// The grid the observer chooses.
    pub fn choose(&self, how: Observer) -> ActQuant {
        if self.seen == 0 {
            return ActQuant { scale: 1.0, zero_point: 0 };
        }
        let (lo, hi) = (self.lo as f64, self.hi as f64);
        match how {
            Observer::MinMax => ActQuant::covering(lo, hi),
            Observer::Percentile => {
                let mut v = self.values.clone();
                v.sort_by(f32::total_cmp);
                let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize] as f64;
                ActQuant::covering(at(0.0001), at(0.9999))
            }
            Observer::Mse => self.mse(lo, hi),
            Observer::Kl => self.kl(lo, hi),
        }
    }

    /// Entropy calibration (TensorRT's, for an asymmetric grid): a
    /// histogram of [`KL_BINS`] bins over `[lo, hi]`, its bin of zero
    /// flattened to its neighbours' mean; for each clipped range
    /// `[α·lo, α·hi]` (α on a grid of 100 steps in (0, 1]) the reference
    /// distribution `P` is the histogram inside it with the clipped mass
    /// added to its end bins, and `Q` the histogram inside it without that
    /// mass, merged into the grid's 255 levels ([`kl_divergence`]); the
    /// range with the least `KL(P ‖ Q)` wins (ties: the wider range).
    fn kl(&self, lo: f64, hi: f64) -> ActQuant {
        // the grid always holds zero, and α scales the range about it
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let width = (hi - lo) / KL_BINS as f64;
        if width.is_nan() || width <= 0.0 || self.values.is_empty() {
            return ActQuant::covering(lo, hi);
        }
        let mut hist = vec![0f64; KL_BINS];
        for &x in &self.values {
            let b = (((x as f64 - lo) / width) as usize).min(KL_BINS - 1);
            hist[b] += 1.0;
        }
        let zero = ((-lo / width).floor() as usize).min(KL_BINS);
        // The spike of exact zeros a ReLU leaves would make every coarse
        // level look costly (its mass spread over the level's bins): it is
        // flattened to its neighbours, as NVIDIA's entropy calibrator does.
        let zbin = zero.min(KL_BINS - 1);
        let near: Vec<f64> = [zbin.checked_sub(1), Some(zbin + 1)]
            .into_iter()
            .flatten()
            .filter(|&b| b < KL_BINS)
            .map(|b| hist[b])
            .collect();
        if !near.is_empty() {
            hist[zbin] = near.iter().sum::<f64>() / near.len() as f64;
        }
        let mut best = (f64::INFINITY, ActQuant::covering(lo, hi));
        for step in (1..=100).rev() {
            let a = step as f64 / 100.0;
            // bins [b0, b1) stay; the rest is folded into the ends
            let b0 = zero - (zero as f64 * a).round() as usize;
            let b1 = zero + ((KL_BINS - zero) as f64 * a).round() as usize;
            if b1 <= b0 + 1 {
                continue;
            }
            let d = kl_divergence(&hist, b0, b1, 255);
            if d < best.0 {
                best = (d, ActQuant::covering(a * lo, a * hi));
            }
        }
        best.1
    }

    /// The clipped range `[α·lo, α·hi]`, α on a grid of 100 steps in
    /// (0, 1], with the least squared error over the kept values.
    fn mse(&self, lo: f64, hi: f64) -> ActQuant {
        let mut best = (f64::INFINITY, ActQuant::covering(lo, hi));
        for step in (1..=100).rev() {
            let a = step as f64 / 100.0;
            let q = ActQuant::covering(a * lo, a * hi);
            let e: f64 = self.values.iter().map(|&x| ((q.fake(x) - x) as f64).powi(2)).sum();
            if e < best.0 {
                best = (e, q);
            }
        }
        best.1
    }
}

/// Histogram bins of the KL observer.
pub const KL_BINS: usize = 2048;

/// `KL(P ‖ Q)` (TensorRT's entropy calibration): `P` is `hist[b0..b1]`
/// with the mass outside folded into its first and last bins (what the
/// clipped grid represents there), `Q` the same bins *without* the folded
/// mass, merged into `levels` groups of consecutive bins with each group's
/// mass spread evenly over its non-empty bins — so clipping costs the
/// folded mass, and coarse levels cost the spread. Both are normalised;
/// bins empty in `Q` but not in `P` get a tiny mass (the divergence stays
/// finite and large).
fn kl_divergence(hist: &[f64], b0: usize, b1: usize, levels: usize) -> f64 {
    let raw = &hist[b0..b1];
    let n = raw.len();
    let mut p = raw.to_vec();
    p[0] += hist[..b0].iter().sum::<f64>();
    p[n - 1] += hist[b1..].iter().sum::<f64>();
    let mut q = vec![0f64; n];
    let groups = levels.min(n);
    for g in 0..groups {
        let (s, e) = (g * n / groups, (g + 1) * n / groups);
        let mass: f64 = raw[s..e].iter().sum();
        let nonzero = raw[s..e].iter().filter(|&&v| v > 0.0).count();
        for i in s..e {
            if raw[i] > 0.0 {
                q[i] = mass / nonzero as f64;
            }
        }
    }
    let (pt, qt): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if pt == 0.0 || qt == 0.0 {
        return f64::INFINITY;
    }
    const EPS: f64 = 1e-12;
    p.iter()
        .zip(&q)
        .filter(|(&pi, _)| pi > 0.0)
        .map(|(&pi, &qi)| {
            let (pn, qn) = (pi / pt, (qi / qt).max(EPS));
            pn * (pn / qn).ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GPTQ's column-by-column definition, unblocked: the reference the
    /// lazy-block schedule must reproduce.
    fn gptq_reference(rows: &mut [Vec<f64>], h: &Mat<f64>, grid: Grid, keep: Option<&[Vec<bool>]>) {
        let n = h.nrows();
        let u = linalg::inverse_upper_cholesky(h, 0.01).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..n {
            for (o, r) in rows.iter_mut().enumerate() {
                let q = if keep.is_none_or(|k| k[o][i]) { grid.decide(o, i, &r[..i], r[i]) } else { 0.0 };
                let e = (r[i] - q) / u[(i, i)];
                r[i] = q;
                for j in i + 1..n {
                    r[j] -= e * u[(i, j)];
                }
            }
        }
    }

    #[test]
    fn lazy_blocks_give_the_column_by_column_result() {
        // three blocks, the last partial; a mask on some weights
        let (m, n, k) = (7, 2 * GPTQ_BLOCK + 37, 400);
        let mut rnd = crate::testutil::uniform(0x2545_f491_4f6c_dd1d);
        let x = Mat::from_fn(n, k, |_, _| rnd());
        let h = &x * x.transpose();
        let rows: Vec<Vec<f64>> = (0..m).map(|_| (0..n).map(|_| rnd()).collect()).collect();
        let keep: Vec<Vec<bool>> = (0..m).map(|o| (0..n).map(|j| (o + j) % 5 != 0).collect()).collect();
        let scales: Vec<f64> = (0..m).map(|o| 0.004 + 0.001 * o as f64).collect();
        for mask in [None, Some(keep.as_slice())] {
            let (mut a, mut b) = (rows.clone(), rows.clone());
            let grid = Grid { scales: &scales, qmax: qmax(8), pairing: Pairing::Free };
            gptq(&mut a, &h, grid, mask).unwrap_or_else(|e| panic!("{e}"));
            gptq_reference(&mut b, &h, grid, mask);
            let differ = a.iter().flatten().zip(b.iter().flatten()).filter(|(x, y)| x != y).count();
            // the same grid points; f64 reassociation may move a value
            // sitting on a rounding boundary, nothing more
            assert!(differ <= 2, "{differ} of {} weights differ", m * n);
        }
    }

    #[test]
    fn act_grid_holds_zero_and_range() {
        let q = ActQuant::covering(-1.0, 3.0);
        assert_eq!(q.fake(0.0), 0.0);
        assert!((q.fake(3.0) - 3.0).abs() <= q.scale / 2.0);
        assert!((q.fake(-1.0) + 1.0).abs() <= q.scale / 2.0);
        assert!(q.fake(100.0) <= 3.0 + q.scale);
    }

    #[test]
    fn gptq_beats_nearest_on_correlated_inputs() {
        // inputs with strongly correlated columns: error compensation pays
        let (n, rows, samples) = (16, 8, 200);
        let mut h = Mat::<f64>::zeros(n, n);
        let mut seed = 1u64;
        let mut rnd = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        let xs: Vec<Vec<f64>> = (0..samples)
            .map(|_| {
                let base = rnd();
                (0..n).map(|_| base + 0.1 * rnd()).collect()
            })
            .collect();
        for x in &xs {
            for i in 0..n {
                for j in 0..n {
                    h[(i, j)] += x[i] * x[j];
                }
            }
        }
        let w: Vec<Vec<f64>> = (0..rows).map(|_| (0..n).map(|_| rnd()).collect()).collect();
        let scales: Vec<f64> = row_scales(&w, qmax(8)).iter().map(|s| s * 8.0).collect(); // a coarse grid
        let grid = Grid { scales: &scales, qmax: qmax(8), pairing: Pairing::Free };
        let loss = |q: &[Vec<f64>]| -> f64 {
            xs.iter()
                .map(|x| {
                    (0..rows).map(|o| (0..n).map(|j| (w[o][j] - q[o][j]) * x[j]).sum::<f64>().powi(2)).sum::<f64>()
                })
                .sum()
        };
        let mut near = w.clone();
        round_nearest(&mut near, grid, None);
        let mut opt = w.clone();
        gptq(&mut opt, &h, grid, None).unwrap_or_else(|e| panic!("{e}"));
        for (o, r) in opt.iter().enumerate() {
            for &x in r {
                let k = x / scales[o];
                assert!((k - k.round()).abs() < 1e-9 && k.abs() <= qmax(8), "off the grid: {k}");
            }
        }
        assert!(loss(&opt) < 0.5 * loss(&near), "gptq {} vs nearest {}", loss(&opt), loss(&near));
    }

    /// Uniform weights, where half the pairs would saturate: every row's
    /// pairs come out exact, codes stay on the grid, a pair's second code is
    /// only ever held back (never moved away from its nearest point
    /// otherwise), and a zero first code holds nothing back.
    #[test]
    fn exact_pairs_hold_back_only_the_second_code() {
        let mut uniform = crate::testutil::uniform(7);
        let mut rnd = || 2.0 * uniform();
        let w: Vec<Vec<f64>> = (0..16).map(|_| (0..37).map(|_| rnd()).collect()).collect();
        let scales = row_scales(&w, qmax(8));
        let grid = Grid { scales: &scales, qmax: qmax(8), pairing: Pairing::Adjacent };
        let mut q = w.clone();
        round_nearest(&mut q, grid, None);
        let mut held = 0;
        for (o, (r, rq)) in w.iter().zip(&q).enumerate() {
            let codes: Vec<i8> = rq.iter().map(|&x| (x / scales[o]).round() as i8).collect();
            assert!(kerf_ir::byte_pairs_exact(&codes, codes.len()), "row {o}: {codes:?}");
            for (j, (&x, &c)) in r.iter().zip(&codes).enumerate() {
                let nearest = (x / scales[o]).round_ties_even();
                if j % 2 == 0 || f64::from(c) == nearest {
                    assert_eq!(f64::from(c), nearest, "row {o} column {j}");
                } else {
                    assert!(f64::from(c).abs() < nearest.abs() && f64::from(c) * nearest >= 0.0, "{c} vs {nearest}");
                    held += 1;
                }
            }
        }
        assert!(held > 16, "only {held} codes held back: the test's weights do not press the bound");
        let free = |a: i8| grid.decide(0, 1, &[f64::from(a) * scales[0]], 127.0 * scales[0]) / scales[0];
        assert_eq!(free(0), 127.0);
        assert_eq!(free(-100), 127.0);
        assert_eq!(free(100), 28.0);
    }

    /// A pattern layer's pairing: rows of `[channels, taps]` come out with
    /// both the adjacent pairs and the channel pairs at each tap exact
    /// (the integer pattern kernel's test), odd channel counts included.
    #[test]
    fn channel_pairing_makes_both_kernels_exact() {
        let mut uniform = crate::testutil::uniform(11);
        let mut rnd = || 2.0 * uniform();
        for (o, ci) in [(6, 8), (4, 5)] {
            let area = 9;
            let w: Vec<Vec<f64>> = (0..o).map(|_| (0..ci * area).map(|_| rnd()).collect()).collect();
            let scales = row_scales(&w, qmax(8));
            let grid = Grid { scales: &scales, qmax: qmax(8), pairing: Pairing::Channels { area } };
            let mut q = w.clone();
            round_nearest(&mut q, grid, None);
            let tensor = |q: &[Vec<f64>]| {
                let codes: Vec<i64> = q
                    .iter()
                    .enumerate()
                    .flat_map(|(r, row)| {
                        let step = scales[r];
                        row.iter().map(move |&x| (x / step).round() as i64)
                    })
                    .collect();
                kerf_ir::Tensor::from_i64_values(kerf_ir::DType::I8, vec![o, ci, 3, 3], &codes)
                    .unwrap_or_else(|e| panic!("{e}"))
            };
            let t = tensor(&q);
            assert!(kerf_ir::channel_pairs_exact(&t), "{o}x{ci}: a channel pair saturates");
            assert!(kerf_ir::weights_byte_pairs_exact(&t), "{o}x{ci}: an adjacent pair saturates");
            // the uniform weights press the bound: a free grid fails both tests
            let mut free = w.clone();
            round_nearest(&mut free, Grid { pairing: Pairing::Free, ..grid }, None);
            let t = tensor(&free);
            assert!(!kerf_ir::channel_pairs_exact(&t) && !kerf_ir::weights_byte_pairs_exact(&t));
        }
    }

    #[test]
    fn observers_reject_non_finite() {
        let mut o = RangeObserver::new(10);
        let e = o.add(&[1.0, f32::NAN], "input of conv1").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("conv1") && e.contains("NaN"), "{e}");
    }

    #[test]
    fn kl_clips_rare_outliers_but_not_a_relu_range() {
        // 99.9% of the values in [0, 1), a sparse tail up to 10: clipped
        let mut o = RangeObserver::new(1 << 20);
        let mut v: Vec<f32> = (0..200_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        v.extend((0..200).map(|i| 1.0 + 9.0 * i as f32 / 199.0));
        o.add(&v, "x").unwrap_or_else(|e| panic!("{e}"));
        let (kl, mm) = (o.choose(Observer::Kl), o.choose(Observer::MinMax));
        assert!(kl.scale < mm.scale * 0.5, "kl {kl:?} minmax {mm:?}");
        // the same values added in other chunks choose the same grid
        let mut again = RangeObserver::new(1 << 20);
        for chunk in v.chunks(777) {
            again.add(chunk, "x").unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(kl, again.choose(Observer::Kl));
        // a ReLU's output: half exact zeros, the rest uniform in [0, 1]; the
        // spike at zero must not push the range in
        let mut r = RangeObserver::new(1 << 20);
        let v: Vec<f32> = (0..100_000).map(|i| if i % 2 == 0 { 0.0 } else { (i % 1000) as f32 / 999.0 }).collect();
        r.add(&v, "r").unwrap_or_else(|e| panic!("{e}"));
        let (kl, mm) = (r.choose(Observer::Kl), r.choose(Observer::MinMax));
        assert!(kl.scale >= mm.scale * 0.9, "kl {kl:?} minmax {mm:?}");
    }

    #[test]
    fn percentile_drops_the_outermost_hundredth_of_a_percent() {
        // 100,000 values in [0, 1) and five outliers on either side: the
        // 0.01% and 99.99% quantiles fall inside the bulk, so the grid
        // covers [0, 0.999]; min/max covers [−100, 100]
        let mut o = RangeObserver::new(1 << 20);
        let mut v: Vec<f32> = (0..100_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        v.extend([100.0; 5]);
        v.extend([-100.0; 5]);
        o.add(&v, "x").unwrap_or_else(|e| panic!("{e}"));
        let (p, mm) = (o.choose(Observer::Percentile), o.choose(Observer::MinMax));
        assert_eq!(p, ActQuant::covering(0.0, 0.999), "percentile {p:?}");
        assert_eq!(mm, ActQuant::covering(-100.0, 100.0), "minmax {mm:?}");
        // a tail of 0.1% is kept: it is more than the quantile drops
        let mut t = RangeObserver::new(1 << 20);
        let mut v: Vec<f32> = (0..100_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        v.extend([100.0; 100]);
        t.add(&v, "t").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.choose(Observer::Percentile), ActQuant::covering(0.0, 100.0));
    }

    #[test]
    fn mse_clips_a_rare_outlier_and_never_loses_to_minmax() {
        // a million values in [0, 1) and one at 2: the rounding error saved
        // on the many outweighs the clipping error of the one
        let mut o = RangeObserver::new(1 << 21);
        let mut v: Vec<f32> = (0..1_000_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        v.push(2.0);
        o.add(&v, "x").unwrap_or_else(|e| panic!("{e}"));
        let (mse, mm) = (o.choose(Observer::Mse), o.choose(Observer::MinMax));
        assert!(mse.scale < mm.scale * 0.75, "mse {mse:?} minmax {mm:?}");
        let err = |q: ActQuant| v.iter().map(|&x| ((q.fake(x) - x) as f64).powi(2)).sum::<f64>();
        assert!(err(mse) <= err(mm));
    }
}
