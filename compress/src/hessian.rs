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
        Kind::ConvTranspose { kernel, strides, dilations, pads, out } => {
            transposed_columns(site, x, shape, TransposedGeometry { kernel, strides, dilations, pads, out })
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

struct TransposedGeometry<'a> {
    kernel: &'a [usize],
    strides: &'a [usize],
    dilations: &'a [usize],
    pads: &'a [usize],
    out: &'a [usize],
}

/// A one-group ConvTranspose's columns: row `(c, k...)` (the order of
/// [`Site::rows_of`]), one column per `(batch, output position)` holding
/// the input value tap `k` of channel `c` adds there: output `o` receives
/// input `i` through tap `t` where `o = i·stride − pad + t·dilation`, so the
/// entry is `x[c, (o + pad − t·dilation) / stride]` where that divides
/// exactly and lies inside the input, else zero.
fn transposed_columns(
    site: &Site,
    x: &[f32],
    shape: &[usize],
    geo: TransposedGeometry,
) -> Result<Mat<f64>, CompressError> {
    let r = geo.kernel.len();
    if shape.len() != r + 2 || geo.out.len() != r {
        return Err(CompressError::layer(
            &site.layer,
            format!("ConvTranspose input {shape:?} is not [N, C, {r} dims]"),
        ));
    }
    let (batch, channels, spatial) = (shape[0], shape[1], &shape[2..]);
    let opix: usize = geo.out.iter().product();
    let area: usize = geo.kernel.iter().product();
    let ipix: usize = spatial.iter().product();
    let mut m = Mat::<f64>::zeros(channels * area, batch * opix);
    let (mut o_idx, mut k_idx) = (vec![0usize; r], vec![0usize; r]);
    for b in 0..batch {
        for p in 0..opix {
            unflatten(p, geo.out, &mut o_idx);
            for t in 0..area {
                unflatten(t, geo.kernel, &mut k_idx);
                let mut at = Some(0usize);
                for d in 0..r {
                    let num = (o_idx[d] + geo.pads[d]) as isize - (k_idx[d] * geo.dilations[d]) as isize;
                    let i = num / geo.strides[d] as isize;
                    let inside = num >= 0 && num % geo.strides[d] as isize == 0 && (i as usize) < spatial[d];
                    at = at.filter(|_| inside).map(|a| a * spatial[d] + i as usize);
                }
                let Some(at) = at else { continue };
                for c in 0..channels {
                    m[(c * area + t, b * opix + p)] = x[(b * channels + c) * ipix + at] as f64;
                }
            }
        }
    }
    Ok(m)
}

fn unflatten(mut i: usize, dims: &[usize], out: &mut [usize]) {
    for d in (0..dims.len()).rev() {
        out[d] = i % dims[d];
        i /= dims[d];
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use kerf_ir::text;

    use crate::layer::sites;
    use crate::testutil::uniform;

    /// ConvTranspose by its definition (the reference evaluator has none):
    /// input pixel `i` adds `x · w[tap]` to output `i·stride − pad +
    /// tap·dilation` where that lies inside the output.
    fn scatter(
        x: &[f32],
        xs: &[usize],
        w: &[f32],
        ws: &[usize],
        geo: (&[usize], &[usize], &[usize]),
        ys: &[usize],
    ) -> Vec<f64> {
        let (strides, dilations, pads) = geo;
        let r = xs.len() - 2;
        let (ipix, opix, area): (usize, usize, usize) =
            (xs[2..].iter().product(), ys[2..].iter().product(), ws[2..].iter().product());
        let mut y = vec![0f64; ys.iter().product()];
        let (mut ii, mut tt) = (vec![0; r], vec![0; r]);
        for b in 0..xs[0] {
            for c in 0..xs[1] {
                for p in 0..ipix {
                    super::unflatten(p, &xs[2..], &mut ii);
                    for t in 0..area {
                        super::unflatten(t, &ws[2..], &mut tt);
                        let mut at = Some(0usize);
                        for d in 0..r {
                            let o = (ii[d] * strides[d] + tt[d] * dilations[d]) as isize - pads[d] as isize;
                            at = at.filter(|_| o >= 0 && (o as usize) < ys[2 + d]).map(|a| a * ys[2 + d] + o as usize);
                        }
                        let Some(at) = at else { continue };
                        for o in 0..ys[1] {
                            let wv = w[(c * ws[1] + o) * area + t];
                            y[(b * ys[1] + o) * opix + at] += f64::from(x[(b * xs[1] + c) * ipix + p]) * f64::from(wv);
                        }
                    }
                }
            }
        }
        y
    }

    /// A transposed conv's rows times its columns is the layer's output:
    /// `W · X` for `W = rows_of(w)` and `X = columns(x)` equals the
    /// ConvTranspose of its definition ([`scatter`], no bias), on exact tilings,
    /// overlapping taps with cropping pads and output padding, dilation,
    /// and one spatial axis. A wrong tap offset or row order fails it.
    #[test]
    fn transposed_columns_reproduce_the_transposed_conv() {
        let cases = [
            // (x shape, w shape, kernel, strides, dilations, pads, output_padding, out shape)
            ("[1,3,4,5]", "[3,4,2,2]", "[2,2]", "[2,2]", "[1,1]", "[0,0,0,0]", "[0,0]", "[1,4,8,10]"),
            ("[2,3,4,4]", "[3,2,3,3]", "[3,3]", "[2,2]", "[1,1]", "[1,1,1,1]", "[1,1]", "[2,2,8,8]"),
            ("[1,2,5,4]", "[2,3,3,2]", "[3,2]", "[1,2]", "[2,1]", "[1,0,2,1]", "[0,1]", "[1,3,6,8]"),
            ("[1,2,6]", "[2,3,4]", "[4]", "[3]", "[1]", "[1,0]", "[0]", "[1,3,18]"),
        ];
        for (i, (xs, ws, k, st, d, p, op, ys)) in cases.into_iter().enumerate() {
            let dims =
                |s: &str| -> Vec<usize> { s.trim_matches(['[', ']']).split(',').map(|v| v.parse().unwrap()).collect() };
            let mut next = uniform(7 + i as u64);
            let w: Vec<f32> = (0..dims(ws).iter().product()).map(|_| next() as f32).collect();
            let w_text: Vec<String> = w.iter().map(|v| format!("{v:?}")).collect();
            let g = text::parse(&format!(
                "graph \"t\"\n  input %0 \"x\": f32{xs}\n  const %1 \"w\": f32{ws} = [{}]\n  %2 = ConvTranspose{{kernel={k}, strides={st}, dilations={d}, pads={p}, group=1, output_padding={op}, layer=\"up\"}}(%0, %1): f32{ys} @\"up\"\n  output \"y\" = %2\n",
                w_text.join(",")
            ))
            .unwrap_or_else(|e| panic!("case {i}: {e}"));
            let x: Vec<f32> = (0..dims(xs).iter().product()).map(|_| next() as f32).collect();
            let want = scatter(&x, &dims(xs), &w, &dims(ws), (&dims(st), &dims(d), &dims(p)), &dims(ys));
            let site = sites(&g).remove(0);
            let rows = site.rows_of(g.weights.tensor(site.weight));
            let cols = super::columns(&site, &x, &dims(xs), 0).unwrap();
            let y = dims(ys);
            let (batch, opix) = (y[0], y[2..].iter().product::<usize>());
            assert_eq!((rows.len(), cols.nrows(), cols.ncols()), (y[1], site.cols, batch * opix), "case {i}");
            for b in 0..batch {
                for (o, row) in rows.iter().enumerate() {
                    for p in 0..opix {
                        let got: f64 = row.iter().enumerate().map(|(r, w)| w * cols[(r, b * opix + p)]).sum();
                        let want = want[(b * y[1] + o) * opix + p];
                        assert!(
                            (got - want).abs() <= 1e-5,
                            "case {i}: image {b} channel {o} pixel {p}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
