//! Measuring plans and searching per-layer variants (see the crate docs).

use std::collections::HashMap;
use std::time::Instant;

use kerf_compress::layer;
use kerf_compress::plan::{LayerRule, Settings};
use kerf_compress::Plan;
use kerf_ir::{Graph, Tensor};
use kerf_pipeline::compression::ProbeMemo;
use kerf_pipeline::dataset::{run_samples, run_samples_all, top1, Fidelity};
use kerf_pipeline::measure::{estimated_cost, MeasureOptions, Runner};
use kerf_pipeline::{Session, Stage};

use crate::cache::Cache;
use crate::choose::{benefit, keep_the_best, knapsack, revert_choice, Row};
use crate::metric::MetricCommand;
use crate::options::{Data, Evaluated, LayerRow, Metric, Outcome, Progress, TuneOptions};
use crate::segment::{layer_segment, sample_for};
use crate::variants::{harsher, low_rank_everywhere, variant, variants_for, Variant};
use crate::TuneError;

struct Ctx<'a> {
    base: &'a Session,
    /// The imported FP32 graph (the baseline's layer segments).
    g: &'a Graph,
    /// Each layer's FP32 segment time, in milliseconds.
    seg_base: HashMap<String, f64>,
    data: &'a Data,
    opts: &'a TuneOptions,
    /// Output 0 of the FP32 model on every validation sample (the SNR
    /// metric's reference, and the per-sample errors').
    fp_out: Vec<Tensor>,
    command: Option<MetricCommand>,
    cache: Option<Cache>,
    /// Measurements done (for [`Progress`]).
    done: usize,
    /// The optimized graphs of the plans timed end to end on the host in
    /// this run, by label (for [`retime`]).
    graphs: Vec<(String, Graph)>,
}

impl Ctx<'_> {
    /// Measures `plan`, from the cache when it holds it: timed end to end,
    /// or, with `layer`, through that layer's micro-benchmark.
    fn measure(&mut self, label: &str, plan: &Plan, layer: Option<&str>) -> Result<Evaluated, TuneError> {
        self.done += 1;
        if let Some(e) = self.cache.as_ref().and_then(|c| c.get(label, plan)) {
            return Ok(e);
        }
        let e = self.evaluate(label, plan, layer)?.0;
        if let Some(c) = &self.cache {
            c.put(&e)?;
        }
        Ok(e)
    }

    /// Output 0 of the FP32 model on every validation sample, on the host
    /// JIT (the reference the SNR metric compares with, when the baseline's
    /// measurement comes from the cache).
    fn fp32_outputs(&self) -> Result<Vec<Tensor>, TuneError> {
        let s = self.base.clone().target(kerf_targets::Target::host_baseline());
        let o = s.graph()?;
        let jit = s.jit(&o.graph)?;
        Ok(run_samples(jit.model(), &o.graph, &self.data.val)?)
    }

    /// Compresses with `plan`, runs the validation data and times it: the
    /// whole model on the first sample, or, with `layer`, that layer's
    /// segment against the FP32 one ([`crate::segment`]); on the host JIT,
    /// or on the target through the runner. Also returns output 0 of every
    /// sample.
    fn evaluate(
        &mut self,
        label: &str,
        plan: &Plan,
        layer: Option<&str>,
    ) -> Result<(Evaluated, Vec<Tensor>), TuneError> {
        let lossy = plan != &Plan::default();
        let s = if lossy {
            self.base.clone().compression(plan.clone(), self.data.calib.clone())
        } else {
            self.base.clone()
        };
        let c = s.graph_at(Stage::Compress)?;
        let mut o = s.optimize(&c.graph)?;
        o.compression = c.compression;
        let whole = layer.is_none();
        let (outs, mut latency_ms) = self.run(&s, &o.graph, &self.data.val, whole)?;
        if whole && self.opts.runner.is_none() && self.opts.estimate_for.is_none() {
            self.graphs.retain(|(l, _)| l != label);
            self.graphs.push((label.to_string(), o.graph.clone()));
        }
        let mut layer_delta_ms = None;
        if let Some(l) = layer {
            let base = self.base_segment_ms(l)?;
            let delta = self.segment_ms(&s, &c.graph, l)? - base;
            layer_delta_ms = Some(delta);
            latency_ms = f64::NAN; // the baseline's plus the delta, set once the baseline is final
        }
        let layer_error = layer.and_then(|l| {
            let r = o.compression.as_ref()?;
            r.layers.iter().find(|x| x.layer == l).map(|x| x.error)
        });
        let metric = self.score(&outs)?;
        let sample_error = self.sample_error(outs.first().map(|(_, v)| v.as_slice()).unwrap_or(&[]));
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
        let e = Evaluated {
            label: label.to_string(),
            plan: plan.clone(),
            metric,
            latency_ms,
            layer_delta_ms,
            layer_error,
            weight_bytes,
            macs,
            sample_error,
        };
        Ok((e, outs.into_iter().next().map(|(_, v)| v).unwrap_or_default()))
    }

    /// Runs `samples` through the optimized graph `g` of session `s` and,
    /// when `timed`, times the first: every output per sample and the
    /// latency (NaN untimed).
    #[allow(clippy::type_complexity)]
    fn run(
        &self,
        s: &Session,
        g: &Graph,
        samples: &[Vec<Tensor>],
        timed: bool,
    ) -> Result<(Vec<(String, Vec<Tensor>)>, f64), TuneError> {
        let iters = if timed { self.opts.iters } else { 1 };
        match &self.opts.runner {
            Some(r) => {
                let run = r.run(s, g, samples, iters)?;
                Ok((run.outputs, if timed { run.latency_ms } else { f64::NAN }))
            }
            None => {
                let jit = s.jit(g)?;
                let outs = run_samples_all(jit.model(), g, samples)?;
                if !timed {
                    return Ok((outs, f64::NAN));
                }
                if self.opts.estimate_for.is_some() {
                    return Ok((outs, estimated_cost(g)));
                }
                let mut runner = Runner::new(jit.model(), &samples[0], None)?;
                let m = MeasureOptions { warmup: Some(iters / 4 + 1), iters: Some(iters) };
                let mut latency_ms = f64::INFINITY;
                for _ in 0..3 {
                    latency_ms = latency_ms.min(runner.measure(&m)?.median());
                }
                Ok((outs, latency_ms))
            }
        }
    }

    /// The time of `layer`'s segment of `g` (compressed, not yet
    /// optimized), compiled by `s`, from the cache when it holds it.
    fn segment_ms(&self, s: &Session, g: &Graph, layer: &str) -> Result<f64, TuneError> {
        let seg = layer_segment(g, layer)
            .ok_or_else(|| TuneError::Config(format!("layer '{layer}' is not in the compressed graph")))?;
        // what the code depends on: the segment and the base session's
        // target, CPU and passes (not the plan or calibration data)
        let key = self.base.fingerprint(&seg);
        if let Some(ms) = self.cache.as_ref().and_then(|c| c.get_segment(&key)) {
            return Ok(ms);
        }
        let o = s.optimize(&seg)?;
        let sample = sample_for(&o.graph).map_err(|e| TuneError::Config(format!("layer '{layer}': {e}")))?;
        let ms = self.run(s, &o.graph, &[sample], true)?.1;
        if let Some(c) = &self.cache {
            c.put_segment(&key, ms)?;
        }
        Ok(ms)
    }

    /// `layer`'s FP32 segment time (measured once per run).
    fn base_segment_ms(&mut self, layer: &str) -> Result<f64, TuneError> {
        if let Some(&ms) = self.seg_base.get(layer) {
            return Ok(ms);
        }
        let ms = self.segment_ms(self.base, self.g, layer)?;
        self.seg_base.insert(layer.to_string(), ms);
        Ok(ms)
    }

    /// Per sample, output 0's noise power relative to the FP32 model's
    /// (empty before the FP32 outputs are known).
    fn sample_error(&self, outs: &[Tensor]) -> Vec<f64> {
        let one = |a: &Tensor, b: &Tensor| {
            let mut f = Fidelity::default();
            f.add(a, b);
            f.noise_ratio()
        };
        outs.iter().zip(&self.fp_out).map(|(a, b)| one(a, b)).collect()
    }

    fn score(&self, outs: &[(String, Vec<Tensor>)]) -> Result<f64, TuneError> {
        let first: &[Tensor] = outs.first().map(|(_, v)| v.as_slice()).unwrap_or(&[]);
        Ok(match (&self.opts.metric, &self.data.labels, &self.command) {
            (Metric::Command { .. }, _, Some(c)) => c.score(outs)?,
            (Metric::Top1 { .. }, Some(l), _) => top1(first, l),
            _ => {
                let mut f = Fidelity::default();
                for (a, b) in first.iter().zip(&self.fp_out) {
                    f.add(a, b);
                }
                f.snr_db().min(200.0)
            }
        })
    }

    /// The part of the budget a score uses: points lost, or noise power
    /// relative to the signal (which add across layers).
    fn cost(&self, baseline: f64, score: f64) -> f64 {
        match self.opts.metric {
            Metric::Top1 { .. } | Metric::Command { .. } => (baseline - score).max(0.0),
            Metric::Snr { .. } => 10f64.powf(-score / 10.0),
        }
    }

    fn budget(&self) -> f64 {
        match self.opts.metric {
            Metric::Top1 { max_drop } | Metric::Command { max_drop, .. } => max_drop,
            Metric::Snr { min_db } => 10f64.powf(-min_db / 10.0),
        }
    }

    fn meets(&self, baseline: f64, score: f64) -> bool {
        match self.opts.metric {
            Metric::Top1 { max_drop } | Metric::Command { max_drop, .. } => baseline - score <= max_drop + 1e-12,
            Metric::Snr { min_db } => score >= min_db,
        }
    }
}

/// A plan giving `layer` the settings `s` and every other layer FP32.
fn single(layer: &str, s: &Settings) -> Plan {
    Plan { default: Settings::default(), layers: vec![LayerRule { pattern: exact(layer), settings: s.clone() }] }
}

/// A glob matching exactly `name` (glob metacharacters replaced by `?`).
pub(crate) fn exact(name: &str) -> String {
    name.chars().map(|c| if c == '*' || c == '?' { '?' } else { c }).collect()
}

/// Runs the codesign loop on `base` (a session without compression whose
/// input shapes are fixed; its target is what the plans are built for:
/// the host JIT times them with its CPU preset — `native` for real
/// latencies, `baseline` for results that are the same bits on every
/// x86-64 — unless [`TuneOptions::runner`] runs them on the target).
/// `progress` gets one [`Progress`] per measurement. A variant whose
/// metric command or runner fails is left out with a note; a failure of
/// the FP32 baseline is an error (nothing can be judged without it).
pub fn tune(
    base: &Session,
    data: &Data,
    opts: &TuneOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Outcome, TuneError> {
    check_data(data, opts)?;
    let start = Instant::now();
    // every variant of a layer probes the same FP32 prefix on the same
    // calibration samples: once is enough
    let base = &base.clone().probe_memo(ProbeMemo::default());
    let command = match &opts.metric {
        Metric::Command { cmd, .. } => Some(MetricCommand::new(cmd)),
        _ => None,
    };
    let g = base.import()?;
    let cache = opts.cache.clone().map(|d| Cache::new(d, base, &g, data, opts)).transpose()?;
    let sites = layer::sites(&g);
    let total = 1 + 3 + sites.iter().map(|s| variants_for(s, opts).len()).sum::<usize>() + 2;
    let mut ctx = Ctx {
        base,
        g: &g,
        seg_base: HashMap::new(),
        data,
        opts,
        fp_out: Vec::new(),
        command,
        cache,
        done: 0,
        graphs: Vec::new(),
    };
    let mut say = |done: usize, best: &str, line: &str| progress(&Progress { line, done, total, best });
    let (mut baseline, cached) = ctx.baseline(&mut say)?;
    let mut evaluated = vec![baseline.clone()];
    ctx.technique_plans(&sites, &mut evaluated, &mut say)?;
    let singles = 1..evaluated.len();
    let (mut rows, best) = ctx.layer_variants(&sites, &baseline, start, &mut say)?;
    if !cached {
        ctx.baseline_again(&mut baseline, &mut evaluated, &best, &mut say)?;
    }
    for row in &mut rows {
        row.2 = with_delta(row.2.clone(), &baseline);
    }
    let (mut chosen_rows, searched, met) = search(&mut ctx, &baseline, &rows, &mut evaluated, &mut |l| say(0, "", l))?;
    // the plans' table only: the layer rows stay relative to the baseline
    // the search used (and a re-run from the cache reads them back)
    let mut chosen = searched;
    if let Some(line) = retime(&ctx, &mut evaluated, searched, singles.clone())? {
        say(ctx.done, "", &line);
        let meets = |m: f64| ctx.meets(evaluated[0].metric, m);
        chosen = keep_the_best(opts.objective, &evaluated, searched, singles, &meets);
        if chosen != searched {
            chosen_rows.clear();
            let (c, s) = (&evaluated[chosen].label, &evaluated[searched].label);
            say(ctx.done, "", &format!("{s} is measurably slower than {c} timed together: {c} is kept"));
        }
    }
    let layers = layer_table(&rows, &chosen_rows);
    let latency_source = latency_source(base, opts);
    Ok(Outcome { metric: opts.metric.clone(), baseline, evaluated, layers, chosen, searched, met, latency_source })
}

/// How [`tune`] reports a line: measurements done, the best layer
/// variant so far, the line.
type Say<'s> = dyn FnMut(usize, &str, &str) + 's;

/// A measured (layer, variant) pair.
type LayerVariant = (String, Variant, Evaluated);

/// The validation data can be judged by the metric: samples, and with
/// top-1 one label each.
fn check_data(data: &Data, opts: &TuneOptions) -> Result<(), TuneError> {
    if data.val.is_empty() {
        return Err(TuneError::Config("no validation samples".into()));
    }
    match (&opts.metric, &data.labels) {
        (Metric::Top1 { .. }, None) => {
            Err(TuneError::Config("top-1 needs labels: pass --labels, or use --max-drop-snr".into()))
        }
        (Metric::Top1 { .. }, Some(l)) if l.len() != data.val.len() => Err(TuneError::Config(format!(
            "{} labels for {} validation samples: they must match one to one",
            l.len(),
            data.val.len()
        ))),
        _ => Ok(()),
    }
}

impl Ctx<'_> {
    /// The FP32 baseline, measured (or read back) like every plan, so a
    /// re-run from the cache compares against the same baseline and
    /// chooses the same plan; its outputs become the SNR metric's and the
    /// per-sample errors' reference (the baseline itself scores the
    /// ceiling). Also whether it came from the cache.
    fn baseline(&mut self, say: &mut Say) -> Result<(Evaluated, bool), TuneError> {
        let cached = self.cache.as_ref().and_then(|c| c.get("fp32", &Plan::default()));
        self.done += 1;
        let baseline = match &cached {
            Some(e) => {
                self.fp_out = self.fp32_outputs()?;
                e.clone()
            }
            None => {
                let (e, outs) = self.evaluate("fp32", &Plan::default(), None)?;
                self.fp_out = outs;
                e
            }
        };
        say(self.done, "", &format!("fp32: metric {:.4}, {:.4} ms", baseline.metric, baseline.latency_ms));
        Ok((baseline, cached.is_some()))
    }

    /// The single-technique plans (int8, patterns, low rank everywhere),
    /// for the report: measured and added to `evaluated`, or left out with
    /// a note.
    fn technique_plans(
        &mut self,
        sites: &[layer::Site],
        evaluated: &mut Vec<Evaluated>,
        say: &mut Say,
    ) -> Result<(), TuneError> {
        let opts = self.opts;
        let everywhere = |s: Settings| Plan { default: s, layers: Vec::new() };
        for (label, plan) in [
            ("int8 everywhere", everywhere(variant("", true, 0, 0.0, 0.0).on(&opts.base).settings)),
            ("patterns 8 + 25% everywhere", everywhere(variant("", false, 8, 0.25, 0.0).on(&opts.base).settings)),
            ("low rank 1/4 everywhere", low_rank_everywhere(sites, opts)),
        ] {
            if plan == Plan::default() {
                continue;
            }
            match skippable(self.measure(label, &plan, None))? {
                Ok(e) => {
                    say(self.done, "", &format!("{label}: metric {:.4}, {:.4} ms", e.metric, e.latency_ms));
                    evaluated.push(e);
                }
                Err(why) => say(self.done, "", &format!("{label}: left out: {why}")),
            }
        }
        Ok(())
    }

    /// Every (layer, variant) alone, until the time budget runs out;
    /// variants harsher than one that alone misses the budget are skipped.
    /// Also the best variant's label so far (for the progress line).
    fn layer_variants(
        &mut self,
        sites: &[layer::Site],
        baseline: &Evaluated,
        start: Instant,
        say: &mut Say,
    ) -> Result<(Vec<LayerVariant>, String), TuneError> {
        let opts = self.opts;
        let mut rows = Vec::new();
        let mut best = (0.0, String::new());
        'outer: for site in sites {
            // the variants that alone miss the budget
            let mut missed: Vec<Variant> = Vec::new();
            for v in variants_for(site, opts) {
                if opts.time_budget.is_some_and(|b| start.elapsed() > b) {
                    say(self.done, &best.1, "time budget reached: searching over what was measured");
                    break 'outer;
                }
                let label = format!("{} {}", site.layer, v.name);
                if let Some(a) = missed.iter().find(|a| harsher(&v.settings, &a.settings)) {
                    self.done += 1;
                    say(self.done, &best.1, &format!("{label}: skipped: {} alone already misses the budget", a.name));
                    continue;
                }
                let e = match skippable(self.measure(&label, &single(&site.layer, &v.settings), Some(&site.layer)))? {
                    Ok(e) => e,
                    Err(why) => {
                        say(self.done, &best.1, &format!("{label}: left out: {why}"));
                        continue;
                    }
                };
                let e = with_delta(e, baseline);
                let meets = self.meets(baseline.metric, e.metric);
                if !meets {
                    missed.push(v.clone());
                }
                let gain = benefit(opts.objective, baseline, &e);
                if meets && gain > best.0 {
                    let speed = baseline.latency_ms / e.latency_ms;
                    best = (gain, format!("{label} ({speed:.2}x, metric {:.4})", e.metric));
                }
                let delta = e.layer_delta_ms.map(|d| format!(" (layer {:+.4} ms)", d)).unwrap_or_default();
                say(self.done, &best.1, &format!("{label}: metric {:.4}, {:.4} ms{delta}", e.metric, e.latency_ms));
                rows.push((site.layer.clone(), v, e));
            }
        }
        Ok((rows, best.1))
    }

    /// A fresh baseline timed again after the variants keeps the lesser
    /// time (a first timing in a cold process can run slow, and every
    /// benefit is relative to it); then it is cached, so a re-run from the
    /// cache compares against the same baseline and chooses the same plan.
    fn baseline_again(
        &mut self,
        baseline: &mut Evaluated,
        evaluated: &mut [Evaluated],
        best: &str,
        say: &mut Say,
    ) -> Result<(), TuneError> {
        let again = self.evaluate("fp32", &Plan::default(), None)?.0;
        let line = format!("fp32 timed again: {:.4} ms (first {:.4} ms)", again.latency_ms, baseline.latency_ms);
        say(self.done, best, &line);
        baseline.latency_ms = baseline.latency_ms.min(again.latency_ms);
        evaluated[0].latency_ms = baseline.latency_ms;
        if let Some(c) = &self.cache {
            c.put(baseline)?;
        }
        Ok(())
    }
}

/// The report's layer table: every measured (layer, variant), with the
/// chosen plan's rows marked.
fn layer_table(rows: &[LayerVariant], chosen_rows: &[usize]) -> Vec<LayerRow> {
    rows.iter()
        .enumerate()
        .map(|(i, (l, v, e))| LayerRow {
            layer: l.clone(),
            variant: v.name.clone(),
            metric: e.metric,
            latency_ms: e.latency_ms,
            delta_ms: e.layer_delta_ms,
            error: e.layer_error,
            weight_bytes: e.weight_bytes,
            chosen: chosen_rows.contains(&i),
        })
        .collect()
}

/// Where the latencies come from, as the report states it.
fn latency_source(base: &Session, opts: &TuneOptions) -> String {
    match (&opts.runner, &opts.estimate_for) {
        (Some(r), _) => format!("{} through `{}`", base.compile_options().target.triple(), r.runner),
        (None, Some(t)) => format!("the cost model's estimate for {t} (FLOPs + bytes, not ms: no runner)"),
        (None, None) => {
            format!("host JIT ({} {})", base.compile_options().target.triple(), base.compile_options().target.cpu())
        }
    }
}

/// Rounds of [`retime`].
const RETIME_ROUNDS: usize = 5;

/// Times the baseline, the chosen plan and the single-technique plans
/// (`evaluated[singles]`) that meet the budget again, in alternating rounds (each round times each
/// once; the least median wins), so the comparison the report makes is
/// not decided by when each was first timed: on a shared machine the
/// timings of one sub-millisecond model move by tens of percent within a
/// minute. Only plans timed on the host in this run (their graphs kept);
/// `None` when the baseline or the chosen plan is not among them. Returns
/// the progress line.
fn retime(
    ctx: &Ctx,
    evaluated: &mut [Evaluated],
    chosen: usize,
    singles: std::ops::Range<usize>,
) -> Result<Option<String>, TuneError> {
    let base_metric = evaluated[0].metric;
    let wanted =
        |i: usize, e: &Evaluated| i == 0 || i == chosen || (singles.contains(&i) && ctx.meets(base_metric, e.metric));
    let picked: Vec<(usize, &Graph)> = evaluated
        .iter()
        .enumerate()
        .filter(|&(i, e)| wanted(i, e))
        .filter_map(|(i, e)| ctx.graphs.iter().find(|(l, _)| *l == e.label).map(|(_, g)| (i, g)))
        .collect();
    if !picked.iter().any(|&(i, _)| i == 0) || !picked.iter().any(|&(i, _)| i == chosen) {
        return Ok(None);
    }
    let jits = picked.iter().map(|&(_, g)| ctx.base.jit(g)).collect::<Result<Vec<_>, _>>()?;
    let mut runners: Vec<Runner> =
        jits.iter().map(|j| Runner::new(j.model(), &ctx.data.val[0], None)).collect::<Result<_, _>>()?;
    let m = MeasureOptions { warmup: Some(ctx.opts.iters / 4 + 1), iters: Some(ctx.opts.iters) };
    let mut best = vec![f64::INFINITY; runners.len()];
    for _ in 0..RETIME_ROUNDS {
        for (r, b) in runners.iter_mut().zip(&mut best) {
            *b = b.min(r.measure(&m)?.median());
        }
    }
    let mut parts = Vec::new();
    for (&(i, _), &ms) in picked.iter().zip(&best) {
        parts.push(format!("{} {:.4} ms", evaluated[i].label, ms));
        evaluated[i].latency_ms = ms;
    }
    Ok(Some(format!("timed again together: {}", parts.join(", "))))
}

/// `e` with its latency as the baseline's plus its layer delta, when it
/// was timed as a layer micro-benchmark.
fn with_delta(mut e: Evaluated, baseline: &Evaluated) -> Evaluated {
    if let Some(d) = e.layer_delta_ms {
        e.latency_ms = (baseline.latency_ms + d).max(f64::MIN_POSITIVE);
    }
    e
}

/// A measurement whose metric command or runner failed is left out (the
/// inner `Err`, with the reason); any other failure is the tuner's error.
fn skippable(r: Result<Evaluated, TuneError>) -> Result<Result<Evaluated, String>, TuneError> {
    match r {
        Ok(e) => Ok(Ok(e)),
        Err(e @ (TuneError::Metric(_) | TuneError::Runner(_))) => Ok(Err(e.to_string())),
        Err(e) => Err(e),
    }
}

/// The dynamic programme's choice under the budget, then end-to-end
/// verification with reverts. Returns the chosen rows, the chosen plan's
/// index in `evaluated`, and whether it meets the budget.
fn search(
    ctx: &mut Ctx,
    baseline: &Evaluated,
    rows: &[Row],
    evaluated: &mut Vec<Evaluated>,
    progress: &mut dyn FnMut(&str),
) -> Result<(Vec<usize>, usize, bool), TuneError> {
    let b = baseline;
    let objective = ctx.opts.objective;
    let mut chosen = {
        let c: &Ctx = ctx;
        knapsack(rows, &|e| benefit(objective, b, e), &|e| c.cost(b.metric, e.metric), c.budget())
    };
    loop {
        // nothing chosen is the baseline, measured first
        if chosen.is_empty() {
            return Ok((chosen, 0, true));
        }
        let plan = Plan {
            default: Settings::default(),
            layers: chosen
                .iter()
                .map(|&i| LayerRule { pattern: exact(&rows[i].0), settings: rows[i].1.settings.clone() })
                .collect(),
        };
        let label = format!("chosen ({} layers)", chosen.len());
        let (ok, plan_error) = match skippable(ctx.measure(&label, &plan, None))? {
            Ok(e) => {
                progress(&format!("{label}: metric {:.4}, {:.4} ms", e.metric, e.latency_ms));
                let ok = ctx.meets(b.metric, e.metric);
                let err = e.sample_error.clone();
                evaluated.push(e);
                (ok, err)
            }
            Err(why) => {
                progress(&format!("{label}: could not be measured ({why})"));
                (false, Vec::new())
            }
        };
        if ok {
            return Ok((chosen, evaluated.len() - 1, ok));
        }
        let errors: Vec<&[f64]> = chosen.iter().map(|&i| rows[i].2.sample_error.as_slice()).collect();
        let costs: Vec<f64> = chosen.iter().map(|&i| ctx.cost(b.metric, rows[i].2.metric)).collect();
        let (worst, how) = revert_choice(&plan_error, &errors, &costs);
        progress(&format!("over budget: reverting {} ({how})", rows[chosen[worst]].0));
        chosen.remove(worst);
    }
}
