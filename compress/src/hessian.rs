//! Second moments of a layer's input over the calibration set.
//!
//! For a layer in matrix form (see [`crate::layer`]) every sample contributes
//! columns `x` of length `cols`: the im2col patches of a conv's input (zero
//! padding included, one column per output pixel), the rows of a product's
//! left operand. [`Moments`] accumulates, per conv group:
//! - `H = Σ x xᵀ` over the compressed network's inputs (what OBS, GPTQ and
//!   the least-squares refits weigh errors by),
//! - `G = Σ x x̄ᵀ` with `x̄` the same column of the FP32 network (the
//!   asymmetric target `‖W X̄ − Ŵ X‖²`: a layer is fitted to what the
//!   original layer computed on the original inputs, so it also corrects
//!   the error the layers before it left),
//! - the column count and the sums `Σ x`, `Σ x̄` (for bias correction).

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};

use crate::layer::{Kind, Site};
use crate::CompressError;

/// Accumulated moments of one layer's input, one set per conv group.
#[derive(Clone, Debug)]
pub struct Moments {
    /// `H = Σ x xᵀ` per group, `[cols, cols]`.
    pub h: Vec<Mat<f64>>,
    /// `G = Σ x x̄ᵀ` per group, `[cols, cols]`.
    pub g: Vec<Mat<f64>>,
    /// `Σ x` per group (the compressed network's input columns).
    pub sum: Vec<Vec<f64>>,
    /// `Σ x̄` per group (the FP32 network's).
    pub sum_fp: Vec<Vec<f64>>,
    /// Columns accumulated (per group; every group sees the same number).
    pub count: usize,
}

impl Moments {
    /// Zero moments for `site`: one `[cols, cols]` pair per conv group.
    pub fn new(site: &Site) -> Moments {
        let n = site.cols;
        let groups = site.groups();
        Moments {
            h: vec![Mat::zeros(n, n); groups],
            g: vec![Mat::zeros(n, n); groups],
            sum: vec![vec![0.0; n]; groups],
            sum_fp: vec![vec![0.0; n]; groups],
            count: 0,
        }
    }

    /// Adds one sample: the layer's input in the compressed network (`x`)
    /// and in the FP32 network (`x_fp`), both as f32 tensors of the input's
    /// shape.
    pub fn add(&mut self, site: &Site, x: &[f32], x_fp: &[f32], shape: &[usize]) -> Result<(), CompressError> {
        for grp in 0..site.groups() {
            let cols = columns(site, x, shape, grp)?;
            let cols_fp = columns(site, x_fp, shape, grp)?;
            matmul(self.h[grp].as_mut(), Accum::Add, cols.as_ref(), cols.transpose(), 1.0, Par::Seq);
            matmul(self.g[grp].as_mut(), Accum::Add, cols.as_ref(), cols_fp.transpose(), 1.0, Par::Seq);
            for (r, (s, sf)) in self.sum[grp].iter_mut().zip(self.sum_fp[grp].iter_mut()).enumerate() {
                *s += (0..cols.ncols()).map(|c| cols[(r, c)]).sum::<f64>();
                *sf += (0..cols_fp.ncols()).map(|c| cols_fp[(r, c)]).sum::<f64>();
            }
            if grp == 0 {
                self.count += cols.ncols();
            }
        }
        Ok(())
    }
}

/// The input as a `[cols, n]` matrix of columns for group `grp`.
pub fn columns(site: &Site, x: &[f32], shape: &[usize], grp: usize) -> Result<Mat<f64>, CompressError> {
    match &site.kind {
        Kind::Conv { group, kernel, strides, dilations, pads } => {
            let conv = ConvGeometry { group: *group, kernel, strides, dilations, pads };
            conv.im2col(site, x, shape, grp)
        }
        Kind::MatMulKn | Kind::MatMulNk => {
            let k = site.cols;
            if shape.last() != Some(&k) {
                return Err(CompressError::layer(&site.layer, format!("input {shape:?} does not end in K = {k}")));
            }
            let n = x.len() / k;
            Ok(Mat::from_fn(k, n, |r, c| x[c * k + r] as f64))
        }
    }
}

struct ConvGeometry<'a> {
    group: usize,
    kernel: &'a [usize],
    strides: &'a [usize],
    dilations: &'a [usize],
    pads: &'a [usize],
}

impl ConvGeometry<'_> {
    /// im2col of one group: row `(c, k...)` (the weight's flattening order),
    /// one column per `(batch, output position)`.
    fn im2col(&self, site: &Site, x: &[f32], shape: &[usize], grp: usize) -> Result<Mat<f64>, CompressError> {
        let r = self.kernel.len();
        if shape.len() != r + 2 {
            return Err(CompressError::layer(&site.layer, format!("conv input {shape:?} is not [N, C, {r} dims]")));
        }
        let (batch, channels, spatial) = (shape[0], shape[1], &shape[2..]);
        let cpg = channels / self.group;
        let out: Vec<usize> = (0..r)
            .map(|d| {
                let span = self.dilations[d] * (self.kernel[d] - 1) + 1;
                (spatial[d] + self.pads[d] + self.pads[r + d]).saturating_sub(span) / self.strides[d] + 1
            })
            .collect();
        let opix: usize = out.iter().product();
        let area: usize = self.kernel.iter().product();
        let ipix: usize = spatial.iter().product();
        let mut m = Mat::<f64>::zeros(cpg * area, batch * opix);
        let mut o_idx = vec![0usize; r];
        let mut k_idx = vec![0usize; r];
        for b in 0..batch {
            for p in 0..opix {
                unflatten(p, &out, &mut o_idx);
                let col = b * opix + p;
                for t in 0..area {
                    unflatten(t, self.kernel, &mut k_idx);
                    // the input position of tap t, or None in the padding
                    let mut at = 0usize;
                    let mut inside = true;
                    for d in 0..r {
                        let pos = (o_idx[d] * self.strides[d] + k_idx[d] * self.dilations[d]) as isize
                            - self.pads[d] as isize;
                        if pos < 0 || pos as usize >= spatial[d] {
                            inside = false;
                            break;
                        }
                        at = at * spatial[d] + pos as usize;
                    }
                    if !inside {
                        continue;
                    }
                    for c in 0..cpg {
                        let ch = grp * cpg + c;
                        m[(c * area + t, col)] = x[(b * channels + ch) * ipix + at] as f64;
                    }
                }
            }
        }
        Ok(m)
    }
}

fn unflatten(mut i: usize, dims: &[usize], out: &mut [usize]) {
    for d in (0..dims.len()).rev() {
        out[d] = i % dims[d];
        i /= dims[d];
    }
}
