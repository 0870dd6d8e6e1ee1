//! Labelled and unlabelled sample sets from `.npy` files, and the metrics
//! `kerf eval` and the tuner report.
//!
//! A data file holds samples stacked on a leading axis: `N × the input's
//! shape`, or `N × the shape without its batch-1 axis` (how datasets are
//! usually saved). Labels are `N` integers.

use std::path::Path;

use kerf_ir::{Graph, Tensor};
use kerf_runtime::Model;

use crate::{npy, PipelineError};

/// Splits `x` (`N × …`) into `N` samples of shape `sample`: `x`'s shape must
/// be `[N] ++ sample`, or `[N] ++ sample[1..]` when `sample[0] == 1`.
pub fn split(x: &Tensor, sample: &[usize], what: &str) -> Result<Vec<Tensor>, PipelineError> {
    let s = x.shape();
    let bad = || PipelineError::Input {
        input: what.to_string(),
        msg: format!(
            "data of shape {s:?} is neither N x {sample:?} nor N x {:?} (samples stacked on a leading axis)",
            sample.get(1..).unwrap_or(&[])
        ),
    };
    let fits = !s.is_empty() && (s[1..] == *sample || (sample.first() == Some(&1) && s[1..] == sample[1..]));
    if !fits {
        return Err(bad());
    }
    let per: usize = sample.iter().product::<usize>() * x.dtype().size();
    let bytes = x.bytes();
    (0..s[0])
        .map(|k| {
            Tensor::from_bytes(x.dtype(), sample.to_vec(), bytes[k * per..(k + 1) * per].to_vec())
                .map_err(|e| PipelineError::Input { input: what.to_string(), msg: e.to_string() })
        })
        .collect()
}

/// Reads integer class labels.
pub fn read_labels(path: &Path) -> Result<Vec<i64>, PipelineError> {
    let t = npy::read(path)?;
    if !t.dtype().is_int() || t.shape().len() != 1 {
        return Err(PipelineError::Npy {
            path: path.to_path_buf(),
            msg: format!("labels must be a 1-D integer array, found {}{:?}", t.dtype(), t.shape()),
        });
    }
    Ok(t.to_i64_vec())
}

/// The index of the largest logit (first on ties), over all elements.
pub fn argmax(t: &Tensor) -> usize {
    (0..t.numel())
        .fold((0, f64::NEG_INFINITY), |(bi, bv), i| {
            let v = t.get_f64(i);
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        })
        .0
}

/// Accumulates agreement and fidelity of one output against a reference.
#[derive(Clone, Debug, Default)]
pub struct Fidelity {
    /// Σ reference² (also the reference's squared norm).
    signal: f64,
    noise: f64,
    dot: f64,
    norm_a: f64,
    agree: usize,
    n: usize,
}

impl Fidelity {
    /// Adds one sample's output and its reference.
    pub fn add(&mut self, out: &Tensor, reference: &Tensor) {
        for i in 0..out.numel().min(reference.numel()) {
            let (a, b) = (out.get_f64(i), reference.get_f64(i));
            self.signal += b * b;
            self.noise += (a - b) * (a - b);
            self.dot += a * b;
            self.norm_a += a * a;
        }
        self.agree += usize::from(argmax(out) == argmax(reference));
        self.n += 1;
    }
    /// Output SNR in dB over all samples (infinite when identical).
    pub fn snr_db(&self) -> f64 {
        if self.noise == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (self.signal / self.noise).log10()
        }
    }
    /// Noise power relative to the reference's (0 when identical; the SNR
    /// as a ratio, `10^(−SNR/10)`).
    pub fn noise_ratio(&self) -> f64 {
        self.noise / self.signal.max(f64::MIN_POSITIVE)
    }
    /// Cosine similarity of all outputs concatenated.
    pub fn cosine(&self) -> f64 {
        self.dot / (self.norm_a.sqrt() * self.signal.sqrt()).max(f64::MIN_POSITIVE)
    }
    /// Fraction of samples with the same arg-max.
    pub fn agreement(&self) -> f64 {
        self.agree as f64 / self.n.max(1) as f64
    }
}

/// Output 0 of `model` (compiled from `g`) on every sample, in order.
pub fn run_samples(model: &Model, g: &Graph, samples: &[Vec<Tensor>]) -> Result<Vec<Tensor>, PipelineError> {
    let mut all = run_samples_all(model, g, samples)?;
    if all.is_empty() {
        return Err(PipelineError::Config("the model has no outputs".into()));
    }
    Ok(all.swap_remove(0).1)
}

/// Every output of `model` (compiled from `g`) on every sample: per output
/// (in the graph's order) its name and its value for each sample, in order.
pub fn run_samples_all(
    model: &Model,
    g: &Graph,
    samples: &[Vec<Tensor>],
) -> Result<Vec<(String, Vec<Tensor>)>, PipelineError> {
    let types: Vec<_> = g.outputs.iter().map(|o| g.ty(o.value).clone()).collect();
    let mut res: Vec<(String, Vec<Tensor>)> =
        g.outputs.iter().map(|o| (o.name.clone(), Vec::with_capacity(samples.len()))).collect();
    let mut arena = model.new_arena()?;
    let mut bufs = model.output_buffers()?;
    for s in samples {
        let ins: Vec<&[u8]> = s.iter().map(Tensor::bytes).collect();
        let mut ov: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
        model.run(&ins, &mut ov, &mut arena).map_err(|e| PipelineError::from(e).in_graph(g))?;
        for ((ty, buf), (_, outs)) in types.iter().zip(&bufs).zip(res.iter_mut()) {
            let t = Tensor::from_bytes(ty.dtype, ty.shape.clone(), buf.clone())
                .map_err(|e| PipelineError::Config(e.to_string()))?;
            outs.push(t);
        }
    }
    Ok(res)
}

/// The fraction of outputs whose arg-max is the label.
pub fn top1(outs: &[Tensor], labels: &[i64]) -> f64 {
    let hits = outs.iter().zip(labels).filter(|(o, &l)| argmax(o) as i64 == l).count();
    hits as f64 / outs.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_with_and_without_the_batch_axis() {
        let x = Tensor::from_f32(vec![3, 2, 2], &[0.0; 12]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(split(&x, &[1, 2, 2], "x").map(|v| v.len()).ok(), Some(3));
        assert_eq!(split(&x, &[2, 2], "x").map(|v| v[0].shape().to_vec()).ok(), Some(vec![2, 2]));
        let e = split(&x, &[1, 3, 2], "input").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("input") && e.contains("[3, 2, 2]"), "{e}");
    }

    #[test]
    fn fidelity_of_identical_outputs() {
        let a = Tensor::from_f32(vec![3], &[1.0, 3.0, 2.0]).unwrap_or_else(|e| panic!("{e}"));
        let mut f = Fidelity::default();
        f.add(&a, &a);
        assert_eq!(f.snr_db(), f64::INFINITY);
        assert!((f.cosine() - 1.0).abs() < 1e-12);
        assert_eq!(f.agreement(), 1.0);
        assert_eq!(argmax(&a), 1);
    }
}
