//! What the codesign loop takes and gives: the metric and objective, the
//! options, the data, progress lines, and the measured plans and layer
//! variants of the outcome (the loop itself is [`crate::search`]).

use std::path::PathBuf;
use std::time::Duration;

use kerf_compress::plan::Settings;
use kerf_compress::Plan;
use kerf_ir::Tensor;

use crate::target_runner::TargetRunner;

/// What "accuracy" means for the budget.
#[derive(Clone, Debug, PartialEq)]
pub enum Metric {
    /// Top-1 against labels; the budget is the largest drop (a fraction:
    /// 0.01 = one point) below FP32.
    Top1 {
        /// Largest allowed top-1 drop, as a fraction.
        max_drop: f64,
    },
    /// Output SNR against the FP32 model (no labels); the budget is the
    /// lowest SNR in dB.
    Snr {
        /// Lowest allowed output SNR, in dB.
        min_db: f64,
    },
    /// The user's command scores the outputs ([`crate::metric`]; higher is
    /// better); the budget is the largest drop below FP32, in the
    /// command's own units.
    Command {
        /// The command line (`{outputs}`: the folder of outputs).
        cmd: String,
        /// Largest allowed drop, in the command's units.
        max_drop: f64,
    },
}

impl Metric {
    /// The metric's short name (report column headers).
    pub fn name(&self) -> &'static str {
        match self {
            Metric::Top1 { .. } => "top1",
            Metric::Snr { .. } => "snr_db",
            Metric::Command { .. } => "metric",
        }
    }
}

/// What the search minimises within the accuracy budget.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Objective {
    /// Measured latency first; weight bytes break ties. Latency changes
    /// smaller than [`NOISE`] of the baseline count as ties.
    #[default]
    Latency,
    /// Weight bytes only (flash size on the device); latency is measured
    /// and reported but does not steer the search, which is then
    /// independent of the machine's timing.
    Size,
}

/// Relative latency differences below this are treated as measurement
/// noise (a median of a few hundred runs of a sub-millisecond model
/// moves by a few percent between measurements on a quiet machine).
pub const NOISE: f64 = 0.03;

/// How to tune (not `Clone`: a runner owns its build folder).
#[derive(Debug)]
pub struct TuneOptions {
    /// The accuracy metric and its budget.
    pub metric: Metric,
    /// What to minimise within the budget.
    pub objective: Objective,
    /// Timed runs per latency measurement.
    pub iters: usize,
    /// Stop measuring new variants after this long (the search then uses
    /// what was measured).
    pub time_budget: Option<Duration>,
    /// Build and run every plan on the target through this runner instead
    /// of timing the host JIT ([`TargetRunner`]); the session's target is
    /// the one built for.
    pub runner: Option<TargetRunner>,
    /// Folder of cached measurements ([`Cache`]); `None` measures everything.
    pub cache: Option<PathBuf>,
    /// Estimate latencies with the cost model for this target (a triple
    /// with no runner) instead of timing: the metric still comes from the
    /// host JIT (the same function), "latency" is
    /// [`kerf_pipeline::measure::estimated_cost`] of the optimized graph,
    /// in the cost model's units, and the report says so.
    pub estimate_for: Option<String>,
    /// The settings every variant starts from (the user's settings flags:
    /// rounding, observer, granularity, weight bits, byte pairs, selection,
    /// pattern group, bias correction, equalisation); a variant's own
    /// choices override them, and the int8 ones reach only the variants
    /// that quantise ([`crate::variants`]). Default: none.
    pub base: Settings,
}

impl TuneOptions {
    /// Options for `metric` with the defaults: latency objective, 200 timed
    /// runs, no time budget, the host JIT, no cache.
    pub fn new(metric: Metric) -> TuneOptions {
        TuneOptions {
            metric,
            objective: Objective::Latency,
            iters: 200,
            time_budget: None,
            runner: None,
            cache: None,
            estimate_for: None,
            base: Settings::default(),
        }
    }
}

/// One line of progress: what was just measured, how far the run is, and
/// the best single-layer choice so far.
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    /// What happened (`conv1 int8: metric 0.9756, 0.0125 ms`).
    pub line: &'a str,
    /// Measurements done so far.
    pub done: usize,
    /// Measurements planned (the end-to-end verifications may add a few).
    pub total: usize,
    /// The best (layer, variant) within the budget so far, or empty.
    pub best: &'a str,
}

/// Calibration data (stacked, by input name) and validation samples.
#[derive(Clone, Debug)]
pub struct Data {
    /// Calibration data per input name, samples stacked on a leading axis.
    pub calib: Vec<(String, Tensor)>,
    /// Validation samples, each one tensor per graph input in order; the
    /// first is also the one timed. Must not be empty.
    pub val: Vec<Vec<Tensor>>,
    /// The class index of each validation sample, compared with the
    /// arg-max of output 0; required for [`Metric::Top1`].
    pub labels: Option<Vec<i64>>,
}

/// One measured plan.
#[derive(Clone, Debug)]
pub struct Evaluated {
    /// What the plan is (`fp32`, `int8 everywhere`, `<layer> <variant>`,
    /// `chosen (<n> layers)`, ...).
    pub label: String,
    /// The compression plan measured.
    pub plan: Plan,
    /// Top-1 (fraction) or SNR (dB) per [`Metric`].
    pub metric: f64,
    /// Latency on the first validation sample in milliseconds: the least of
    /// three medians of timed runs of the whole model, or, for a (layer,
    /// variant), the FP32 model's plus `layer_delta_ms`.
    pub latency_ms: f64,
    /// For a (layer, variant) timed as a micro-benchmark
    /// ([`crate::segment`]): the layer segment's time with the variant minus
    /// the FP32 segment's, in milliseconds.
    pub layer_delta_ms: Option<f64>,
    /// The compressed layer's relative output error on the calibration
    /// data (`Σ‖(W − Ŵ)X‖² / Σ‖WX‖²`, the compress report's), for a
    /// (layer, variant).
    pub layer_error: Option<f64>,
    /// Bytes of the compressible layers' weights.
    pub weight_bytes: usize,
    /// Multiply-accumulates of the compressible layers, per inference.
    pub macs: usize,
    /// Per validation sample, output 0's noise power relative to the FP32
    /// model's (`‖y − y₃₂‖² / ‖y₃₂‖²`): what the reverts rank layers by.
    /// Empty for the FP32 model's first measurement.
    pub sample_error: Vec<f64>,
}

/// One measured (layer, variant).
#[derive(Clone, Debug)]
pub struct LayerRow {
    /// The layer name.
    pub layer: String,
    /// The [`Variant`] name.
    pub variant: String,
    /// The whole model's metric with only this layer compressed (as
    /// [`Evaluated::metric`]).
    pub metric: f64,
    /// The whole model's latency in milliseconds (as [`Evaluated::latency_ms`]).
    pub latency_ms: f64,
    /// The layer's micro-benchmark: its segment's time with the variant
    /// minus without, in milliseconds.
    pub delta_ms: Option<f64>,
    /// The layer's relative output error on the calibration data.
    pub error: Option<f64>,
    /// The whole model's weight bytes (as [`Evaluated::weight_bytes`]).
    pub weight_bytes: usize,
    /// Whether the chosen plan uses this variant for this layer.
    pub chosen: bool,
}

/// What tuning found.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The metric and budget tuned for.
    pub metric: Metric,
    /// The uncompressed (FP32) model, as first measured.
    pub baseline: Evaluated,
    /// Every plan measured end to end (single-technique plans, the
    /// intermediate and the chosen plans).
    pub evaluated: Vec<Evaluated>,
    /// Every measured (layer, variant), in layer then variant order.
    pub layers: Vec<LayerRow>,
    /// Index of the chosen plan in `evaluated`.
    pub chosen: usize,
    /// Index of the plan the search picked (`chosen` unless it timed
    /// measurably slower, together, than the plan kept instead).
    pub searched: usize,
    /// Whether the chosen plan meets the budget.
    pub met: bool,
    /// Where the latencies were measured (host JIT or the runner).
    pub latency_source: String,
}

impl Outcome {
    /// The chosen plan's measurement.
    pub fn chosen(&self) -> &Evaluated {
        &self.evaluated[self.chosen]
    }

    /// The FP32 plan as last timed (with the chosen plan and the single
    /// plans within budget, in alternating rounds, when they were timed on
    /// the host in this run): what plan-level speed-ups compare against.
    /// [`Outcome::baseline`] is the one the search and the layer rows used.
    pub fn fp32(&self) -> &Evaluated {
        &self.evaluated[0]
    }
}
