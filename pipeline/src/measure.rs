//! The `measure` stage: times a compiled model's entry point.
//!
//! Contract: `warmup` untimed calls, then `iters` timed calls, each one call
//! of the entry point through [`kerf_runtime::Model::run`] (or
//! `run_with_pool` with a pool) with a fresh `Instant` per call. The same
//! buffers are reused for every call. [`Timing`] holds every sample, so the
//! median and any quantile are exact order statistics of what was measured.
//! This is what `kerf bench` prints and what the tuner ranks variants by.

use std::time::{Duration, Instant};

use kerf_ir::Tensor;
use kerf_runtime::{Arena, Model, ThreadPool};

use crate::PipelineError;

/// How many calls to make: given counts, or sized from a first call.
#[derive(Clone, Copy, Debug, Default)]
pub struct MeasureOptions {
    /// Untimed calls first (default: about 0.2 s worth, at least 3).
    pub warmup: Option<usize>,
    /// Timed calls (default: about 1 s worth, 10 to 100 000).
    pub iters: Option<usize>,
}

/// Calls one model on fixed inputs, reusing its output buffers and arena.
pub struct Runner<'a> {
    model: &'a Model,
    ins: Vec<&'a [u8]>,
    outs: Vec<Vec<u8>>,
    arena: Arena,
    pool: Option<&'a ThreadPool>,
}

impl std::fmt::Debug for Runner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("inputs", &self.ins.len()).field("pool", &self.pool.is_some()).finish()
    }
}

impl<'a> Runner<'a> {
    /// A runner for `model` on `inputs` (in the model's input order);
    /// `pool` runs split kernels on its threads. An error where the arena
    /// or an output buffer cannot be allocated.
    pub fn new(
        model: &'a Model,
        inputs: &'a [Tensor],
        pool: Option<&'a ThreadPool>,
    ) -> Result<Runner<'a>, PipelineError> {
        Ok(Runner {
            model,
            ins: inputs.iter().map(Tensor::bytes).collect(),
            outs: model.output_buffers()?,
            arena: model.new_arena()?,
            pool,
        })
    }

    /// One call of the entry point; returns its wall time.
    pub fn once(&mut self) -> Result<Duration, PipelineError> {
        let mut ov: Vec<&mut [u8]> = self.outs.iter_mut().map(|v| v.as_mut_slice()).collect();
        let t0 = Instant::now();
        match self.pool {
            Some(p) => self.model.run_with_pool(&self.ins, &mut ov, &mut self.arena, p),
            None => self.model.run(&self.ins, &mut ov, &mut self.arena),
        }?;
        Ok(t0.elapsed())
    }

    /// The output buffers of the last call, in the model's output order.
    pub fn outputs(&self) -> &[Vec<u8>] {
        &self.outs
    }

    /// Warm-up and timed calls per `opts`.
    pub fn measure(&mut self, opts: &MeasureOptions) -> Result<Timing, PipelineError> {
        let first = self.once()?.as_secs_f64().max(1e-7);
        let warmup = opts.warmup.unwrap_or_else(|| ((0.2 / first) as usize).clamp(3, 10_000));
        let iters = opts.iters.unwrap_or_else(|| ((1.0 / first) as usize).clamp(10, 100_000));
        if iters == 0 {
            return Err(PipelineError::Config("the number of timed runs must be at least 1".into()));
        }
        for _ in 0..warmup {
            self.once()?;
        }
        let mut ms = Vec::with_capacity(iters);
        for _ in 0..iters {
            ms.push(self.once()?.as_secs_f64() * 1e3);
        }
        Ok(Timing::new(warmup, ms))
    }
}

/// The timed samples of one measurement, in milliseconds, sorted.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// Untimed calls made before the samples.
    pub warmup: usize,
    sorted_ms: Vec<f64>,
}

impl Timing {
    /// Sorts the samples.
    pub fn new(warmup: usize, mut ms: Vec<f64>) -> Timing {
        ms.sort_by(f64::total_cmp);
        Timing { warmup, sorted_ms: ms }
    }
    /// Number of timed calls.
    pub fn iters(&self) -> usize {
        self.sorted_ms.len()
    }
    /// Median (mean of the middle two for an even count; 0 without samples).
    pub fn median(&self) -> f64 {
        median_sorted(&self.sorted_ms)
    }
    /// Fastest sample.
    pub fn min(&self) -> f64 {
        self.sorted_ms.first().copied().unwrap_or(0.0)
    }
    /// Quantile `q` in [0, 1] by nearest rank.
    pub fn quantile(&self, q: f64) -> f64 {
        quantile_sorted(&self.sorted_ms, q)
    }
}

/// Median of sorted `v` (0 when empty).
pub fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Median of `v` in any order (sorts it).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    median_sorted(v)
}

/// Quantile `q` of sorted `v` (nearest rank; 0 when empty).
pub fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let k = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[k]
}

/// The cost model's price of an optimized graph (FLOPs + bytes moved, in
/// the extractor's crude units; [`kerf_passes::graph_cost`]): what ranks
/// plans for a target that cannot be timed. Not a latency.
pub fn estimated_cost(g: &kerf_ir::Graph) -> f64 {
    kerf_passes::graph_cost(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_quantile() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        let t = Timing::new(0, (1..=10).rev().map(f64::from).collect());
        assert_eq!(t.quantile(0.9), 9.0);
        assert_eq!(t.quantile(0.0), 1.0);
        assert_eq!(t.quantile(1.0), 10.0);
        assert_eq!(t.min(), 1.0);
        assert_eq!(t.median(), 5.5);
        assert_eq!(Timing::new(0, vec![]).median(), 0.0);
    }
}
