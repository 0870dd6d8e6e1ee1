//! Measuring plans and searching per-layer variants (see the crate docs).

use std::time::{Duration, Instant};

use kerf_compress::layer::{self, Kind};
use kerf_compress::plan::{LayerRule, Settings};
use kerf_compress::{Plan, Precision};
use kerf_ir::Tensor;
use kerf_pipeline::dataset::{run_samples, top1, Fidelity};
use kerf_pipeline::measure::{MeasureOptions, Runner};
use kerf_pipeline::Session;

use crate::TuneError;

/// What "accuracy" means for the budget.
#[derive(Clone, Copy, Debug, PartialEq)]
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

/// How to tune.
#[derive(Clone, Debug)]
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

/// A per-layer compression choice.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// Short name (`int8`, `p8c25`, `rank16+int8`, ...).
    pub name: String,
    /// The compression settings the layer gets.
    pub settings: Settings,
}

fn variant(name: &str, quant: bool, patterns: usize, connectivity: f64, rank: f64) -> Variant {
    Variant {
        name: name.to_string(),
        settings: Settings {
            quant: Some(if quant { Precision::Int8 } else { Precision::F32 }),
            patterns: (patterns > 0).then_some(patterns),
            connectivity: (connectivity > 0.0).then_some(connectivity),
            low_rank: (rank > 0.0).then_some(rank),
            ..Settings::default()
        },
    }
}

/// The variants tried for a layer: int8 for every layer; 8-pattern pruning
/// with 25% or 50% connectivity (alone and with int8) for 3x3 convs; rank
/// min(N, K)/4 (alone and with int8) for products where that is cheaper.
pub fn variants(site: &layer::Site) -> Vec<Variant> {
    let mut v = vec![variant("int8", true, 0, 0.0, 0.0)];
    if kerf_compress::prune::applies(site) {
        v.push(variant("p8c25", false, 8, 0.25, 0.0));
        v.push(variant("p8c50", false, 8, 0.5, 0.0));
        v.push(variant("p8c25+int8", true, 8, 0.25, 0.0));
        v.push(variant("p8c50+int8", true, 8, 0.5, 0.0));
    }
    if matches!(site.kind, Kind::MatMulKn | Kind::MatMulNk) {
        let r = (site.rows.min(site.cols) / 4).max(1);
        if r * (site.rows + site.cols) < site.rows * site.cols {
            v.push(variant(&format!("rank{r}"), false, 0, 0.0, r as f64));
            v.push(variant(&format!("rank{r}+int8"), true, 0, 0.0, r as f64));
        }
    }
    v
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
    /// three medians of timed runs.
    pub latency_ms: f64,
    /// Bytes of the compressible layers' weights.
    pub weight_bytes: usize,
    /// Multiply-accumulates of the compressible layers, per inference.
    pub macs: usize,
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
    /// Whether the chosen plan meets the budget.
    pub met: bool,
}

impl Outcome {
    /// The chosen plan's measurement.
    pub fn chosen(&self) -> &Evaluated {
        &self.evaluated[self.chosen]
    }
}

struct Ctx<'a> {
    base: &'a Session,
    data: &'a Data,
    opts: &'a TuneOptions,
    fp_out: Vec<Tensor>,
}

impl Ctx<'_> {
    /// Compresses with `plan`, runs the validation data, times one sample.
    fn evaluate(&self, label: &str, plan: &Plan) -> Result<(Evaluated, Vec<Tensor>), TuneError> {
        let lossy = plan != &Plan::default();
        let s = if lossy {
            self.base.clone().compression(plan.clone(), self.data.calib.clone())
        } else {
            self.base.clone()
        };
        let o = s.graph()?;
        let jit = s.jit(&o.graph)?;
        let outs = run_samples(jit.model(), &o.graph, &self.data.val)?;
        let metric = self.score(&outs);
        let mut runner = Runner::new(jit.model(), &self.data.val[0], None);
        let m = MeasureOptions { warmup: Some(self.opts.iters / 4 + 1), iters: Some(self.opts.iters) };
        let mut latency_ms = f64::INFINITY;
        for _ in 0..3 {
            latency_ms = latency_ms.min(runner.measure(&m)?.median());
        }
        let (macs, weight_bytes) = match &o.compression {
            Some(r) => {
                let (_, m1, _, b1) = r.totals();
                (m1, b1)
            }
            None => {
                let g = s.import()?;
                let sites = layer::sites(&g);
                (sites.iter().map(|x| x.macs(&g)).sum(), sites.iter().map(|x| 4 * x.rows * x.cols).sum())
            }
        };
        let e = Evaluated { label: label.to_string(), plan: plan.clone(), metric, latency_ms, weight_bytes, macs };
        Ok((e, outs))
    }

    fn score(&self, outs: &[Tensor]) -> f64 {
        match (self.opts.metric, &self.data.labels) {
            (Metric::Top1 { .. }, Some(l)) => top1(outs, l),
            _ => {
                let mut f = Fidelity::default();
                for (a, b) in outs.iter().zip(&self.fp_out) {
                    f.add(a, b);
                }
                f.snr_db().min(200.0)
            }
        }
    }

    /// The part of the budget a score uses: points lost, or noise power
    /// relative to the signal (which add across layers).
    fn cost(&self, baseline: f64, score: f64) -> f64 {
        match self.opts.metric {
            Metric::Top1 { .. } => (baseline - score).max(0.0),
            Metric::Snr { .. } => 10f64.powf(-score / 10.0),
        }
    }

    fn budget(&self) -> f64 {
        match self.opts.metric {
            Metric::Top1 { max_drop } => max_drop,
            Metric::Snr { min_db } => 10f64.powf(-min_db / 10.0),
        }
    }

    fn meets(&self, baseline: f64, score: f64) -> bool {
        match self.opts.metric {
            Metric::Top1 { max_drop } => baseline - score <= max_drop + 1e-12,
            Metric::Snr { min_db } => score >= min_db,
        }
    }
}

/// A plan giving `layer` the settings `s` and every other layer FP32.
fn single(layer: &str, s: &Settings) -> Plan {
    Plan { default: Settings::default(), layers: vec![LayerRule { pattern: exact(layer), settings: s.clone() }] }
}

/// A glob matching exactly `name` (glob metacharacters replaced by `?`).
fn exact(name: &str) -> String {
    name.chars().map(|c| if c == '*' || c == '?' { '?' } else { c }).collect()
}

/// Runs the codesign loop on `base` (a session without compression whose
/// input shapes are fixed, targeting the host: its CPU preset is what the
/// plans are run and timed with — `native` for real latencies, `baseline`
/// for results that are the same bits on every x86-64). `progress` gets one
/// line per measurement.
pub fn tune(
    base: &Session,
    data: &Data,
    opts: &TuneOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, TuneError> {
    if data.val.is_empty() {
        return Err(TuneError::Config("no validation samples".into()));
    }
    if let (Metric::Top1 { .. }, None) = (opts.metric, &data.labels) {
        return Err(TuneError::Config("top-1 needs labels: pass --labels, or use --max-drop-snr".into()));
    }
    let start = Instant::now();
    let mut ctx = Ctx { base, data, opts, fp_out: Vec::new() };
    // (with no FP32 outputs yet, the SNR of the baseline is the ceiling)
    let (baseline, fp_out) = ctx.evaluate("fp32", &Plan::default())?;
    ctx.fp_out = fp_out;
    progress(&format!("fp32: metric {:.4}, {:.4} ms", baseline.metric, baseline.latency_ms));
    let g = base.import()?;
    let sites = layer::sites(&g);
    let mut evaluated = vec![baseline.clone()];
    // single-technique plans, for the report
    let everywhere = |s: Settings| Plan { default: s, layers: Vec::new() };
    for (label, plan) in [
        ("int8 everywhere", everywhere(variant("", true, 0, 0.0, 0.0).settings)),
        ("patterns 8 + 25% everywhere", everywhere(variant("", false, 8, 0.25, 0.0).settings)),
        ("low rank 1/4 everywhere", low_rank_everywhere(&sites)),
    ] {
        if plan == Plan::default() {
            continue;
        }
        let e = ctx.evaluate(label, &plan)?.0;
        progress(&format!("{label}: metric {:.4}, {:.4} ms", e.metric, e.latency_ms));
        evaluated.push(e);
    }
    // every (layer, variant) alone
    let mut rows = Vec::new();
    'outer: for site in &sites {
        for v in variants(site) {
            if opts.time_budget.is_some_and(|b| start.elapsed() > b) {
                progress("time budget reached: searching over what was measured");
                break 'outer;
            }
            let e = ctx.evaluate(&format!("{} {}", site.layer, v.name), &single(&site.layer, &v.settings))?.0;
            progress(&format!("{} {}: metric {:.4}, {:.4} ms", site.layer, v.name, e.metric, e.latency_ms));
            rows.push((site.layer.clone(), v, e));
        }
    }
    let (chosen_rows, chosen, met) = search(&ctx, &baseline, &rows, &mut evaluated, progress)?;
    // the baseline timed again last: drift over the run shows in the log
    // (the search compared against the first timing; the outcome keeps it)
    let again = ctx.evaluate("fp32", &Plan::default())?.0;
    progress(&format!("fp32 timed again: {:.4} ms (first {:.4} ms)", again.latency_ms, baseline.latency_ms));
    let layers = rows
        .iter()
        .enumerate()
        .map(|(i, (l, v, e))| LayerRow {
            layer: l.clone(),
            variant: v.name.clone(),
            metric: e.metric,
            latency_ms: e.latency_ms,
            weight_bytes: e.weight_bytes,
            chosen: chosen_rows.contains(&i),
        })
        .collect();
    Ok(Outcome { metric: opts.metric, baseline, evaluated, layers, chosen, met })
}

/// Every product at the rank its per-layer variant uses (min(N, K)/4),
/// where that is cheaper.
fn low_rank_everywhere(sites: &[layer::Site]) -> Plan {
    let layers = sites
        .iter()
        .filter_map(|site| {
            let v = variants(site)
                .into_iter()
                .find(|v| v.settings.low_rank.is_some() && v.settings.quant != Some(Precision::Int8))?;
            Some(LayerRule { pattern: exact(&site.layer), settings: v.settings })
        })
        .collect();
    Plan { default: Settings::default(), layers }
}

type Row = (String, Variant, Evaluated);

/// What `e` buys over the baseline `b` under `objective`: relative latency
/// saved plus a tenth of the relative weight bytes saved, where a variant
/// within [`NOISE`] of the baseline is a tie (bytes alone decide) and one
/// measurably slower is never taken; or the bytes saved alone. Only
/// variants with a positive benefit are considered.
fn benefit(objective: Objective, b: &Evaluated, e: &Evaluated) -> f64 {
    let bytes = (b.weight_bytes as f64 - e.weight_bytes as f64) / b.weight_bytes.max(1) as f64;
    match objective {
        Objective::Size => bytes,
        Objective::Latency => {
            let saved = (b.latency_ms - e.latency_ms) / b.latency_ms;
            if saved <= -NOISE {
                saved // measurably slower: never taken, however small
            } else if saved < NOISE {
                0.1 * bytes // a tie: the smaller wins
            } else {
                saved + 0.1 * bytes
            }
        }
    }
}

/// Greedy choice under the budget, then end-to-end verification with
/// reverts. Returns the chosen rows, the chosen plan's index in
/// `evaluated`, and whether it meets the budget.
fn search(
    ctx: &Ctx,
    baseline: &Evaluated,
    rows: &[Row],
    evaluated: &mut Vec<Evaluated>,
    progress: &mut dyn FnMut(&str),
) -> Result<(Vec<usize>, usize, bool), TuneError> {
    let b = baseline;
    let benefit = |e: &Evaluated| benefit(ctx.opts.objective, b, e);
    let mut order: Vec<usize> = (0..rows.len()).filter(|&i| benefit(&rows[i].2) > 0.0).collect();
    let key = |i: usize| benefit(&rows[i].2) / (ctx.cost(b.metric, rows[i].2.metric) + 1e-4);
    order.sort_by(|&x, &y| key(y).total_cmp(&key(x)).then(x.cmp(&y)));
    let mut chosen: Vec<usize> = Vec::new();
    let mut used = 0.0;
    for i in order {
        let c = ctx.cost(b.metric, rows[i].2.metric);
        if chosen.iter().any(|&j| rows[j].0 == rows[i].0) || used + c > ctx.budget() {
            continue;
        }
        used += c;
        chosen.push(i);
    }
    loop {
        let plan = Plan {
            default: Settings::default(),
            layers: chosen
                .iter()
                .map(|&i| LayerRule { pattern: exact(&rows[i].0), settings: rows[i].1.settings.clone() })
                .collect(),
        };
        let label = format!("chosen ({} layers)", chosen.len());
        let e = ctx.evaluate(&label, &plan)?.0;
        progress(&format!("{label}: metric {:.4}, {:.4} ms", e.metric, e.latency_ms));
        let ok = ctx.meets(b.metric, e.metric);
        evaluated.push(e);
        if ok || chosen.is_empty() {
            return Ok((chosen, evaluated.len() - 1, ok));
        }
        // revert the chosen layer that cost the most on its own
        let worst = chosen
            .iter()
            .enumerate()
            .max_by(|x, y| ctx.cost(b.metric, rows[*x.1].2.metric).total_cmp(&ctx.cost(b.metric, rows[*y.1].2.metric)))
            .map(|(k, _)| k)
            .unwrap_or(0);
        progress(&format!("over budget: reverting {}", rows[chosen[worst]].0));
        chosen.remove(worst);
    }
}
