//! The layer-by-layer loop: probe, collect moments, prune, round, rewrite.

use faer::Mat;
use std::collections::VecDeque;

use kerf_ir::{Graph, Sparsity, Tensor, ValueId};

use crate::hessian::Moments;
use crate::layer::{self, Kind, Site};
use crate::plan::{BytePairs, Granularity, LayerSettings, Plan, Precision, Rounding, Selection};
use crate::probe::{Probe, ProbeFn};
use crate::quant::{self, ActQuant, Pairing, RangeObserver};
use crate::report::{LayerReport, Report};
use crate::{equalize, linalg, nm, prune, rewrite, tucker, CompressError};

/// Calibration samples: each one tensor per graph input, in input order.
#[derive(Clone, Debug, Default)]
pub struct Calibration {
    /// The samples, in the order they are run.
    pub samples: Vec<Vec<Tensor>>,
}

/// How many activation values an observer keeps (a strided subsample past
/// this).
const OBSERVER_CAPACITY: usize = 1 << 22;

/// Compresses every layer the plan makes lossy, in node order (see the
/// crate docs). Layers the plan leaves at FP32 are untouched and reported
/// as such. A factored layer's two products are compressed next, as
/// layers of their own (`<layer>.v`, `<layer>.u`).
pub fn compress(
    g: &Graph,
    plan: &Plan,
    calib: &Calibration,
    probe: &mut dyn Probe,
) -> Result<(Graph, Report), CompressError> {
    compress_with_progress(g, plan, calib, probe, &mut |_, _, _| {})
}

/// [`compress`], calling `progress(done, total, layer)` before each layer
/// (`total` grows when a layer is split) and once with `done == total` at
/// the end.
pub fn compress_with_progress(
    g: &Graph,
    plan: &Plan,
    calib: &Calibration,
    probe: &mut dyn Probe,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<(Graph, Report), CompressError> {
    let sites = layer::sites(g);
    let names: Vec<&str> = sites.iter().map(|s| s.layer.as_str()).collect();
    let settings = plan.resolve(&names)?;
    if settings.iter().any(LayerSettings::is_lossy) {
        check_samples(g, calib)?;
    }
    // cross-layer equalisation first: the equalised network is the FP32
    // reference every layer is then fitted to (same function, other channels)
    let (equalized, changed) = match settings.iter().any(|s| s.equalize) {
        true => equalize::equalize(g, &sites, &settings)?,
        false => (g.clone(), Vec::new()),
    };
    let g = &equalized;
    let mut jobs: VecDeque<Job> = sites
        .iter()
        .zip(&settings)
        .map(|(site, s)| Job {
            layer: site.layer.clone(),
            settings: *s,
            fp_input: Some(site.input),
            reference: g.weights.tensor(site.weight).clone(),
            parent: None,
        })
        .collect();
    let mut cur = g.clone();
    // until a layer is made lossy, `cur` is the FP32 network itself
    let mut pristine = true;
    let mut report = Report::default();
    let mut done = 0;
    while let Some(job) = jobs.pop_front() {
        progress(done, done + jobs.len() + 1, &job.layer);
        done += 1;
        // node indices move as nodes are inserted: find the layer again
        let site = layer::sites(&cur)
            .into_iter()
            .find(|x| x.layer == job.layer)
            .ok_or_else(|| CompressError::layer(&job.layer, "lost while compressing earlier layers"))?;
        if !job.settings.is_lossy() {
            if job.parent.is_none() {
                report.layers.push(LayerReport::unchanged(&cur, &site, job.settings));
            }
            continue;
        }
        let fp = if pristine { Reference::Same } else { Reference::Graph(g) };
        let (next, rep, more) = compress_layer(fp, &cur, &job, &site, calib, probe)?;
        pristine = false;
        cur = next;
        report.layers.push(rep);
        for j in more.into_iter().rev() {
            jobs.push_front(j);
        }
    }
    progress(done, done, "");
    record_equalized(&cur, &changed, &mut report);
    // residuals on int8 grids, once every layer's input grid is known
    let residual: std::collections::HashMap<&str, bool> = names
        .iter()
        .zip(&settings)
        .map(|(n, s)| (*n, s.residual == Precision::Int8 && s.quant == Precision::Int8))
        .collect();
    if residual.values().any(|&r| r) {
        let (g, notes) = rewrite::quantize_residuals(&cur, |layer| residual.get(layer).copied().unwrap_or(false))?;
        cur = g;
        for e in notes {
            if let Some(r) = report.layers.iter_mut().find(|r| r.layer == e.layer) {
                let (s, z) = (e.grid.scale, e.grid.zero_point);
                r.notes.push(format!("residual '{}' read on its int8 grid (step {s:e}, zero point {z})", e.residual));
                r.residual_quant = Some(e.grid);
            }
        }
    }
    Ok((cur, report))
}

/// Equalised layers report their weights and biases (for export) where
/// compression left them f32 or kept the bias.
fn record_equalized(g: &Graph, changed: &[String], report: &mut Report) {
    let sites = layer::sites(g);
    let touched =
        |r: &LayerReport| changed.contains(&r.layer) || r.parent.as_ref().is_some_and(|p| changed.contains(p));
    for rep in report.layers.iter_mut().filter(|r| touched(r)) {
        // a factored layer's bias sits on its output side (whose export
        // reads it from here when that part has no entry of its own)
        let name = if rep.is_factored() { rewrite::factor_names(&rep.layer).1 } else { rep.layer.clone() };
        let Some(site) = sites.iter().find(|s| s.layer == name) else { continue };
        if rep.weight.is_none() && !rep.is_factored() {
            rep.weight = Some(g.weights.tensor(site.weight).clone());
        }
        if rep.bias.is_none() {
            rep.bias = g.nodes[site.node].inputs.get(2).and_then(|&b| g.const_of(b)).cloned();
        }
    }
}

/// A layer to compress.
struct Job {
    layer: String,
    settings: LayerSettings,
    /// The layer's input in the FP32 graph (`None` for a layer the FP32
    /// graph lacks: the output side of a factored layer, fitted to its own
    /// unquantised input).
    fp_input: Option<ValueId>,
    /// The weight the layer should reproduce, in its own layout.
    reference: Tensor,
    /// The factored layer this one is a part of.
    parent: Option<String>,
}

/// Every sample gives each graph input a tensor of its type.
fn check_samples(g: &Graph, calib: &Calibration) -> Result<(), CompressError> {
    if calib.samples.is_empty() {
        return Err(CompressError::Calibration(
            "no samples; pass --calib FILE.npy (N samples stacked on a leading axis), a folder of .npy files, or NAME=FILE.npy per input".into(),
        ));
    }
    for (k, sample) in calib.samples.iter().enumerate() {
        if sample.len() != g.inputs.len() {
            return Err(CompressError::Calibration(format!(
                "sample {k} has {} tensors, the model has {} inputs",
                sample.len(),
                g.inputs.len()
            )));
        }
        for (t, &i) in sample.iter().zip(&g.inputs) {
            let v = g.value(i);
            if t.dtype() != v.ty.dtype || t.shape() != v.ty.shape.as_slice() {
                return Err(CompressError::Calibration(format!(
                    "sample {k} gives input '{}' {}{:?}, the model takes {}",
                    v.name,
                    t.dtype(),
                    t.shape(),
                    v.ty
                )));
            }
            if t.dtype().is_float() && (0..t.numel()).any(|i| !t.get_f64(i).is_finite()) {
                return Err(CompressError::Calibration(format!("sample {k} of input '{}' holds NaN or Inf", v.name)));
            }
        }
    }
    Ok(())
}

/// Where a layer's FP32 input comes from.
#[derive(Clone, Copy)]
enum Reference<'a> {
    /// The FP32 network (equalised when the plan asks).
    Graph(&'a Graph),
    /// The network compressed so far, which is still the FP32 one (no
    /// layer before this one was made lossy): one probe serves both.
    Same,
}

/// One layer: the graph with the layer compressed, its report, and the
/// layers it was split into (still to compress).
fn compress_layer(
    fp: Reference,
    cur: &Graph,
    job: &Job,
    site: &Site,
    calib: &Calibration,
    probe: &mut dyn Probe,
) -> Result<(Graph, LayerReport, Vec<Job>), CompressError> {
    let s = job.settings;
    if !crate::layer::sole_reader(cur, site.node, site.weight) {
        return Err(CompressError::layer(
            &site.layer,
            "its weight is shared with another layer; leave it at f32 in the plan",
        ));
    }
    let rows_fp = site.rows_of(&job.reference);
    let mut notes = Vec::new();
    // the layer's input, in this network and (when it has one) in FP32:
    // compiled once, run by every pass over the samples below
    let mut probes = Probes {
        cur: Kept::new(probe.prepare(cur, site.input)?, calib.samples.len()),
        fp: match (job.fp_input, fp) {
            (Some(v), Reference::Graph(fp)) => Some(probe.prepare(fp, v)?),
            (_, Reference::Same) | (None, _) => None,
        },
    };
    let mut unquantised = None;
    let tucker = s.tucker.filter(|_| tucker_applies(site));
    if let Some(requested) = tucker {
        // whether it pays is a matter of shapes: decided before any probing
        match tucker_shape(cur, site, requested) {
            Some(shape) => {
                let m = moments(&mut probes, site, cur, None, calib)?;
                return tucker2(cur, job, site, &rows_fp, &m, shape);
            }
            None => notes.push("Tucker-2 would not be faster at these ranks (price.rs): left whole".to_string()),
        }
    } else if s.tucker.is_some() {
        notes.push("Tucker-2 applies to one-group convs with kernels larger than 1x1: left whole".to_string());
    }
    if s.low_rank > 0.0 && tucker.is_none() {
        if site.groups() == 1 && !matches!(site.kind, Kind::ConvTranspose { .. }) {
            let m = moments(&mut probes, site, cur, None, calib)?;
            if let Some(split) = low_rank(cur, job, site, &rows_fp, &m)? {
                return Ok(split);
            }
            notes.push("low rank would not be faster at this rank (price.rs): left whole".to_string());
            unquantised = Some(m);
        } else {
            notes.push("low rank applies to Gemm/MatMul and one-group convs: left whole".to_string());
        }
    }
    let int8 = s.quant == Precision::Int8;
    let input_quant = if int8 { Some(observe(&mut probes.cur, site, s, calib)?) } else { None };
    let m = match (unquantised, input_quant) {
        (Some(m), None) => m,
        _ => moments(&mut probes, site, cur, input_quant, calib)?,
    };

    // 1. structure: patterns and removed kernels, or N:M, compensated
    let Structure { mut rows, keep, sparsity, removed } = structure(site, s, &rows_fp, &m, &mut notes)?;

    // 2. int8 grid
    let scales = match int8 {
        true => Some(int8_grid(site, &mut rows, &m.h, s, pairing(site, s, &sparsity), keep.as_deref(), &mut notes)?),
        false => None,
    };

    let final_rows = stored(&rows, scales.as_deref());
    let tensor = site.tensor_of(&final_rows, &job.reference)?;
    let error = relative_error(site, &rows_fp, &rows, &m.h);
    let mut next = cur.clone();
    let grid = scales
        .as_ref()
        .map(|sc| kerf_ir::WeightGrid { axis: site.channel_axis(), scales: sc.iter().map(|&x| x as f32).collect() });
    rewrite::set_weight(&mut next, site.weight, tensor.clone(), sparsity.clone(), grid)?;
    // 3. bias correction: the mean output error moves into the bias
    let bias = match s.bias_correction {
        true => correct_bias(&mut next, job, site, (&rows_fp, &final_rows, &m), &mut notes)?,
        false => None,
    };
    if let Some(q) = input_quant {
        next = rewrite::quantize_input(&next, site.node, &site.layer, q)?;
    }
    let mut rep = LayerReport::compressed(cur, site, s, &tensor, &sparsity, removed, error, input_quant, scales, notes);
    rep.parent = job.parent.clone();
    rep.bias = bias;
    Ok((next, rep, Vec::new()))
}

/// Bias correction of the layer just compressed in `next`: the mean
/// output error over the calibration data (FP32 rows against the stored
/// ones) moves into the bias. The bias written, if any; a factored layer's
/// input side has no bias to move into (nor one its export could carry):
/// its error is the output side's to correct.
fn correct_bias(
    next: &mut Graph,
    job: &Job,
    site: &Site,
    (rows_fp, final_rows, m): (&[Vec<f64>], &[Vec<f64>], &Moments),
    notes: &mut Vec<String>,
) -> Result<Option<Tensor>, CompressError> {
    let input_side = job.parent.as_deref().is_some_and(|p| rewrite::factor_names(p).1 != job.layer);
    if input_side {
        notes.push("bias correction: left to the factored layer's output side".to_string());
        return Ok(None);
    }
    let shift = mean_output_error(site, rows_fp, final_rows, m);
    match rewrite::shift_bias(next, site, &shift)? {
        Some((g, b)) => {
            *next = g;
            Ok(Some(b))
        }
        None => {
            notes.push("bias correction applies to Conv and Gemm: left out".to_string());
            Ok(None)
        }
    }
}

/// A layer's pruned structure: the weights (compensated), the mask, the
/// layout recorded in the IR and the kernels removed whole.
struct Structure {
    rows: Vec<Vec<f64>>,
    keep: Option<Vec<Vec<bool>>>,
    sparsity: Sparsity,
    removed: usize,
}

/// Prunes the layer as its settings ask: patterns and connectivity on 3x3
/// and 5x5 convs (which take precedence), N:M on other layers whose input channels
/// divide into groups; weights refitted unless `selection` is magnitude.
fn structure(
    site: &Site,
    s: LayerSettings,
    rows_fp: &[Vec<f64>],
    m: &Moments,
    notes: &mut Vec<String>,
) -> Result<Structure, CompressError> {
    let dense = || Structure { rows: rows_fp.to_vec(), keep: None, sparsity: Sparsity::Dense, removed: 0 };
    let patterns = s.patterns > 0 || s.connectivity > 0.0;
    let patterned = patterns && prune::applies(site);
    let transposed = matches!(site.kind, Kind::ConvTranspose { .. });
    let nm = s.nm.filter(|&nm| !patterned && !transposed && nm::applies(site, nm));
    if !patterned && nm.is_none() {
        if patterns {
            notes.push("pruning applies to 3x3 and 5x5 convs only: left dense".to_string());
        }
        match s.nm {
            Some(_) if transposed => notes.push("N:M applies to Conv, Gemm and MatMul: left dense".to_string()),
            Some(nm) => notes.push(format!("{nm} needs input channels in groups of {}: left dense", nm.span())),
            None => {}
        }
        return Ok(dense());
    }
    let hinv = m.h.iter().map(|h| linalg::inverse_spd(&linalg::dampened(h, 0.01))).collect::<Result<Vec<_>, _>>()?;
    let magnitude = s.selection == Selection::Magnitude;
    let (keep, sparsity, removed) = match nm {
        Some(nm) => {
            notes.push(nm.to_string());
            let keep = nm::choose(site, rows_fp, &hinv, nm, magnitude)?;
            let nonzeros = keep.iter().map(|r| r.iter().filter(|&&k| k).count()).sum();
            (keep, Sparsity::Unstructured { nonzeros }, 0)
        }
        None => {
            if s.nm.is_some() {
                notes.push("patterned conv: patterns instead of N:M".to_string());
            }
            let choice = prune::choose(site, rows_fp, &hinv, (s.patterns, s.pattern_group), s.connectivity, magnitude)?;
            (choice.keep, choice.sparsity, choice.removed)
        }
    };
    let rows = if magnitude { mask(rows_fp, &keep) } else { prune::compensate(site, rows_fp, &keep, &m.h, &m.g)? };
    Ok(Structure { rows, keep: Some(keep), sparsity, removed })
}

/// Per output channel, `E[w·x̄ − ŵ·x]` over the calibration columns: the
/// FP32 layer on the FP32 inputs minus the compressed layer on this
/// network's inputs (Nagel et al.'s bias correction, from the sums the
/// moments keep).
fn mean_output_error(site: &Site, fp: &[Vec<f64>], now: &[Vec<f64>], m: &Moments) -> Vec<f64> {
    let per = site.rows / site.groups().max(1);
    let n = m.count.max(1) as f64;
    fp.iter()
        .zip(now)
        .enumerate()
        .map(|(o, (w, wq))| {
            let grp = o / per.max(1);
            let (sf, sc) = (&m.sum_fp[grp], &m.sum[grp]);
            w.iter().zip(sf).map(|(a, b)| a * b).sum::<f64>() / n
                - wq.iter().zip(sc).map(|(a, b)| a * b).sum::<f64>() / n
        })
        .collect()
}

/// Factors a product or one-group conv layer by whitened SVD when that
/// pays ([`crate::price::low_rank_pays`]: `r·(rows + cols)` against
/// `rows·cols` multiply-accumulates per output position, a 3x3 conv's
/// Winograd parts priced as such): the graph with the two thinner layers (for a conv,
/// an r-channel conv and a 1x1 conv: the channel SVD), the layer's report,
/// and the two parts as jobs carrying the rest of the layer's settings.
fn low_rank(
    cur: &Graph,
    job: &Job,
    site: &Site,
    rows_fp: &[Vec<f64>],
    m: &Moments,
) -> Result<Option<(Graph, LayerReport, Vec<Job>)>, CompressError> {
    let s = job.settings;
    // The FP32 weight, whitened by this network's input. (Refitting it to
    // the FP32 output first, as pruning does, overfits here: a dense K-wide
    // row has far more freedom than a pattern's kept taps; measured on
    // digits_mlp, rank 16: 30.3 dB output SNR with the refit, 34.3 without.)
    let w = linalg::Whitened::new(rows_fp, &m.h[0])?;
    let r = if s.low_rank < 1.0 { w.rank_for(s.low_rank) } else { s.low_rank as usize }.max(1);
    if !crate::price::low_rank_pays(site, r) {
        return Ok(None);
    }
    let (u, v) = w.factors(r);
    // products: v [r][K] as the first product's [K, r] weight, u [N][r] in
    // the layer's layout; convs: v as an r-output conv's [r, C, k...]
    // weight, u as a 1x1 conv's [M, r, 1...]
    let (vt, u_t) = match &site.kind {
        Kind::Conv { kernel, .. } => {
            let wshape = cur.weights.tensor(site.weight).shape().to_vec();
            let mut vs = wshape.clone();
            vs[0] = r;
            let mut us = vec![site.rows, r];
            us.extend(std::iter::repeat_n(1, kernel.len()));
            (Tensor::from_f32(vs, &flat(&v)), Tensor::from_f32(us, &flat(&u)))
        }
        Kind::MatMulNk => {
            (Tensor::from_f32(vec![site.cols, r], &transpose(&v)), Tensor::from_f32(vec![site.rows, r], &flat(&u)))
        }
        Kind::MatMulKn => {
            (Tensor::from_f32(vec![site.cols, r], &transpose(&v)), Tensor::from_f32(vec![r, site.rows], &transpose(&u)))
        }
        // not factored (`compress_layer` leaves it whole)
        Kind::ConvTranspose { .. } => return Ok(None),
    };
    let err = |e: kerf_ir::IrError| CompressError::layer(&site.layer, e.to_string());
    let (vt, u_t) = (vt.map_err(err)?, u_t.map_err(err)?);
    let next = rewrite::split_low_rank(cur, site, vt.clone(), u_t.clone())?;
    let approx: Vec<Vec<f64>> =
        u.iter().map(|ur| (0..site.cols).map(|k| (0..r).map(|j| ur[j] * v[j][k]).sum()).collect()).collect();
    let error = relative_error(site, rows_fp, &approx, &m.h);
    let rep = LayerReport::factored(cur, site, s, r, error, [vt.clone(), u_t.clone()]);
    let (vname, uname) = rewrite::factor_names(&site.layer);
    let part = LayerSettings { low_rank: 0.0, ..s };
    let jobs = vec![
        Job { layer: vname, settings: part, fp_input: job.fp_input, reference: vt, parent: Some(site.layer.clone()) },
        Job { layer: uname, settings: part, fp_input: None, reference: u_t, parent: Some(site.layer.clone()) },
    ];
    Ok(Some((next, rep, jobs)))
}

/// Whether Tucker-2 applies: a one-group conv with a kernel larger than 1x1
/// (a 1x1 conv is a product: `low_rank` factors it).
fn tucker_applies(site: &Site) -> bool {
    site.groups() == 1 && site.kernel_area() > 1 && matches!(site.kind, Kind::Conv { .. })
}

/// A Tucker-2 split's shape: the ranks it gets and its multiply-accumulates.
struct TuckerShape {
    ranks: [usize; 2],
    macs: usize,
}

/// The shape of the layer's Tucker-2 split at the `requested` ranks, when
/// it pays ([`crate::price::tucker_pays`]).
fn tucker_shape(cur: &Graph, site: &Site, requested: [usize; 2]) -> Option<TuckerShape> {
    let area = site.kernel_area();
    let c = site.cols / area;
    let ranks = tucker::ranks(c, site.rows, area, requested);
    // batch × spatial positions
    let pixels = |v: ValueId| {
        let shape = &cur.ty(v).shape;
        shape.first().copied().unwrap_or(1) * shape.iter().skip(2).product::<usize>()
    };
    let (p_in, p_out) = (pixels(site.input), pixels(cur.nodes[site.node].outputs[0]));
    let macs = tucker::macs(c, site.rows, area, ranks, p_in, p_out);
    crate::price::tucker_pays(site, ranks, p_in, p_out).then_some(TuckerShape { ranks, macs })
}

/// Factors a one-group KxK conv by Tucker-2 ([`crate::tucker`]) into
/// `shape`: the graph with the three convs, the layer's report, and the
/// three parts as jobs carrying the rest of the layer's settings.
fn tucker2(
    cur: &Graph,
    job: &Job,
    site: &Site,
    rows_fp: &[Vec<f64>],
    m: &Moments,
    TuckerShape { ranks, macs }: TuckerShape,
) -> Result<(Graph, LayerReport, Vec<Job>), CompressError> {
    let area = site.kernel_area();
    let c = site.cols / area;
    let t = tucker::factor(rows_fp, &m.h[0], area, ranks[0], ranks[1])?;
    let kernel = cur.weights.tensor(site.weight).shape()[2..].to_vec();
    let shape =
        |a: usize, b: usize, k: &[usize]| -> Vec<usize> { [a, b].into_iter().chain(k.iter().copied()).collect() };
    let ones = vec![1; kernel.len()];
    let err = |e: kerf_ir::IrError| CompressError::layer(&site.layer, e.to_string());
    let first = Tensor::from_f32(shape(ranks[0], c, &ones), &flat(&t.first)).map_err(err)?;
    let core = Tensor::from_f32(shape(ranks[1], ranks[0], &kernel), &flat(&t.core)).map_err(err)?;
    let last = Tensor::from_f32(shape(site.rows, ranks[1], &ones), &flat(&t.last)).map_err(err)?;
    let next = rewrite::split_tucker(cur, site, first.clone(), core.clone(), last.clone())?;
    let error = relative_error(site, rows_fp, &t.compose(), &m.h);
    let factors = [first.clone(), core.clone(), last.clone()];
    let rep = LayerReport::tucker(cur, site, job.settings, ranks, macs, error, factors);
    let (vname, uname) = rewrite::factor_names(&site.layer);
    let part = LayerSettings { low_rank: 0.0, tucker: None, ..job.settings };
    let parent = Some(site.layer.clone());
    let jobs = vec![
        Job {
            layer: rewrite::tucker_first_name(&site.layer),
            settings: part,
            fp_input: job.fp_input,
            reference: first,
            parent: parent.clone(),
        },
        Job { layer: vname, settings: part, fp_input: None, reference: core, parent: parent.clone() },
        Job { layer: uname, settings: part, fp_input: None, reference: last, parent },
    ];
    Ok((next, rep, jobs))
}

/// `[a][b]` rows as a row-major `[b, a]` f32 buffer.
fn transpose(rows: &[Vec<f64>]) -> Vec<f32> {
    let b = rows.first().map_or(0, Vec::len);
    (0..b).flat_map(|j| rows.iter().map(move |r| r[j] as f32)).collect()
}

fn flat(rows: &[Vec<f64>]) -> Vec<f32> {
    rows.iter().flat_map(|r| r.iter().map(|&x| x as f32)).collect()
}

/// A layer's input as compiled probes: in the network compressed so far,
/// and in the FP32 network when that differs (`None`: the layer is not in
/// the FP32 network, or nothing before it is lossy yet; either way its
/// unquantised input is the reference).
struct Probes {
    cur: Kept,
    fp: Option<ProbeFn>,
}

/// Probed values kept for the layer's later passes over the samples (the
/// observer's, then the moments'), up to [`KEPT_BYTES`] in all; past that
/// the probe runs again.
struct Kept {
    run: ProbeFn,
    kept: Vec<Option<Vec<f32>>>,
    bytes: usize,
}

/// What [`Kept`] holds at most per layer.
const KEPT_BYTES: usize = 1 << 30;

impl Kept {
    fn new(run: ProbeFn, samples: usize) -> Kept {
        Kept { run, kept: vec![None; samples], bytes: 0 }
    }

    /// The value on sample `k` of the calibration set (`sample`).
    fn get(&mut self, k: usize, sample: &[Tensor]) -> Result<Vec<f32>, CompressError> {
        if let Some(Some(v)) = self.kept.get(k) {
            return Ok(v.clone());
        }
        let v = (self.run)(sample)?;
        let size = 4 * v.len();
        if let Some(slot) = self.kept.get_mut(k) {
            if self.bytes + size <= KEPT_BYTES {
                self.bytes += size;
                *slot = Some(v.clone());
            }
        }
        Ok(v)
    }
}

/// The input quantiser: the plan's observer over the layer's input in the
/// network compressed so far.
fn observe(run: &mut Kept, site: &Site, s: LayerSettings, calib: &Calibration) -> Result<ActQuant, CompressError> {
    let mut obs = RangeObserver::new(OBSERVER_CAPACITY);
    let what = format!("input of layer '{}'", site.layer);
    for (k, sample) in calib.samples.iter().enumerate() {
        obs.add(&run.get(k, sample)?, &what)?;
    }
    Ok(obs.choose(s.observer))
}

/// `H` and `G` of the layer's input, the compressed side seen through the
/// layer's own input quantiser, the reference side the FP32 network's
/// input (or, for a layer the FP32 network lacks, the unquantised input).
fn moments(
    p: &mut Probes,
    site: &Site,
    cur: &Graph,
    input_quant: Option<ActQuant>,
    calib: &Calibration,
) -> Result<Moments, CompressError> {
    let shape = cur.ty(site.input).shape.clone();
    let mut m = Moments::new(site);
    for (k, sample) in calib.samples.iter().enumerate() {
        let raw = p.cur.get(k, sample)?;
        let reference = match &mut p.fp {
            Some(f) => f(sample)?,
            None => raw.clone(),
        };
        let mut x = raw;
        if let Some(q) = input_quant {
            x.iter_mut().for_each(|v| *v = q.fake(*v));
        }
        m.add(site, &x, &reference, &shape)?;
    }
    Ok(m)
}

/// Rounds each conv group's rows with that group's Hessian.
fn round_rows(
    site: &Site,
    rows: &mut [Vec<f64>],
    h: &[Mat<f64>],
    grid: quant::Grid,
    keep: Option<&[Vec<bool>]>,
    how: Rounding,
) -> Result<(), CompressError> {
    let per = site.rows / site.groups();
    for (grp, hg) in h.iter().enumerate() {
        let r = grp * per..(grp + 1) * per;
        let k = keep.map(|k| &k[r.clone()]);
        match how {
            Rounding::Nearest => quant::round_nearest(&mut rows[r.clone()], grid.rows(r), k),
            Rounding::Gptq => quant::gptq(&mut rows[r.clone()], hg, grid.rows(r), k)?,
        }
    }
    Ok(())
}

/// Which of a layer's int8 codes must be exact byte pairs: none unless the
/// settings ask; none of a depthwise conv's (no byte tile multiplies them);
/// with a pattern shared by channel quads the integer pattern kernel's
/// channel pairs as well as the adjacent ones, and so with a KxK conv's
/// N:M in runs of whole quads (the byte tiles list those with K ordered
/// tap-major, pairing channels at one tap: `lower/qconv/listed.rs`).
fn pairing(site: &Site, s: LayerSettings, sparsity: &Sparsity) -> Pairing {
    let depthwise = site.groups() > 1 && site.cols == site.kernel_area();
    // what `kerf_ir::ChannelQuads::of_integer_conv` takes
    let pattern_quads =
        matches!(sparsity, Sparsity::Pattern { .. }) && s.pattern_group.is_multiple_of(4) && site.groups() == 1;
    let run_quads = site.kernel_area() > 1 && s.nm.is_some_and(|nm| nm.unit.is_multiple_of(4));
    let quads = pattern_quads || run_quads;
    match (s.byte_pairs, depthwise, quads) {
        (BytePairs::Any, _, _) | (_, true, _) => Pairing::Free,
        (BytePairs::Exact, false, true) => Pairing::Channels { area: site.kernel_area() },
        (BytePairs::Exact, false, false) => Pairing::Adjacent,
    }
}

/// Rounds `rows` onto their int8 grid and returns its steps. Where codes
/// must pair exactly (`pairing`, [`quant::Pairing`]) and the grid is wider
/// than ±64 (narrower ones have no pair to hold back), holding a pair's
/// second code back costs more the more codes are large, so a coarser step
/// can lose less: each output channel takes the step `max |w| / q` over
/// [`PAIR_STEPS`] whose nearest rounding leaves the least error weighted by
/// `H`'s diagonal (the inputs' second moments; the cross terms would cost
/// a product with `H` per step, as much as GPTQ's sweep), per-tensor steps
/// the one with the least sum, and the report notes the top codes taken.
/// Otherwise the one step is `weight_bits`' `max |w| / qmax`. Then GPTQ
/// rounds the layer once on those steps (nearest rounding keeps the
/// search's).
fn int8_grid(
    site: &Site,
    rows: &mut [Vec<f64>],
    h: &[Mat<f64>],
    s: LayerSettings,
    pairing: Pairing,
    keep: Option<&[Vec<bool>]>,
    notes: &mut Vec<String>,
) -> Result<Vec<f64>, CompressError> {
    let qmax = quant::qmax(s.weight_bits);
    let pairing = if qmax > PAIR_STEPS[PAIR_STEPS.len() - 1] { pairing } else { Pairing::Free };
    let steps: &[f64] = if pairing == Pairing::Free { &[qmax] } else { &PAIR_STEPS };
    let per = (site.rows / site.groups()).max(1);
    let diag = |o: usize, c: usize| h.get(o / per).map_or(1.0, |hm| hm[(c, c)]);
    let candidate = |top: f64| -> (Vec<Vec<f64>>, Vec<f64>, Vec<f64>) {
        let scales = f32_scales(&quant::scales_for(rows, s.granularity, top));
        let mut q = rows.to_vec();
        quant::round_nearest(&mut q, quant::Grid { scales: &scales, qmax, pairing }, keep);
        let err = (0..rows.len())
            .map(|o| rows[o].iter().zip(&q[o]).enumerate().map(|(c, (w, v))| diag(o, c) * (w - v) * (w - v)).sum())
            .collect();
        (q, scales, err)
    };
    let (mut near, mut scales, mut best) = candidate(steps[0]);
    let mut tops = vec![steps[0]; rows.len()];
    for &top in &steps[1..] {
        let (q, sc, err) = candidate(top);
        let take: Vec<bool> = match s.granularity {
            Granularity::Channel => err.iter().zip(&best).map(|(e, b)| e < b).collect(),
            Granularity::Tensor => vec![err.iter().sum::<f64>() < best.iter().sum::<f64>(); rows.len()],
        };
        for (o, _) in take.iter().enumerate().filter(|(_, &t)| t) {
            near[o].clone_from(&q[o]);
            (scales[o], best[o], tops[o]) = (sc[o], err[o], top);
        }
    }
    match s.rounding {
        // the search's own rounding of the chosen steps
        Rounding::Nearest => rows.clone_from_slice(&near),
        Rounding::Gptq => round_rows(site, rows, h, quant::Grid { scales: &scales, qmax, pairing }, keep, s.rounding)?,
    }
    if pairing != Pairing::Free {
        notes.push(pair_note(&tops));
    }
    Ok(scales)
}

/// Grid steps as stored and exported: f32.
fn f32_scales(scales: &[f64]) -> Vec<f64> {
    scales.iter().map(|&x| x as f32 as f64).collect()
}

/// The top codes an exact-pair grid tries, from the 8-bit grid's down to
/// 64, where no pair can saturate (`64 + 64 = 128`,
/// [`kerf_ir::byte_pair_partners`]).
const PAIR_STEPS: [f64; 7] = [127.0, 112.0, 100.0, 90.0, 80.0, 72.0, 64.0];

/// The layer report's note on an exact-pair grid: the top codes its rows took.
fn pair_note(tops: &[f64]) -> String {
    let mut t = tops.to_vec();
    t.sort_by(f64::total_cmp);
    let (lo, mid, hi) = (t[0], t[t.len() / 2], t[t.len() - 1]);
    format!("exact byte pairs: top codes {lo}..{hi} (median {mid})")
}

/// `rows` with the masked-off weights zeroed.
fn mask(rows: &[Vec<f64>], keep: &[Vec<bool>]) -> Vec<Vec<f64>> {
    rows.iter().zip(keep).map(|(r, k)| r.iter().zip(k).map(|(&w, &kp)| if kp { w } else { 0.0 }).collect()).collect()
}

/// The values stored: on the grid, `f32(q) · f32(scale)` exactly.
fn stored(rows: &[Vec<f64>], scales: Option<&[f64]>) -> Vec<Vec<f64>> {
    match scales {
        None => rows.to_vec(),
        Some(sc) => rows
            .iter()
            .zip(sc)
            .map(|(r, &s)| r.iter().map(|&w| ((w / s).round_ties_even() as f32 * s as f32) as f64).collect())
            .collect(),
    }
}

/// `Σ (w − ŵ)ᵀ H (w − ŵ) / Σ wᵀ H w` over rows: the layer's relative output
/// error on the calibration inputs.
fn relative_error(site: &Site, rows_fp: &[Vec<f64>], rows: &[Vec<f64>], h: &[Mat<f64>]) -> f64 {
    let diff: Vec<Vec<f64>> =
        rows_fp.iter().zip(rows).map(|(a, b)| a.iter().zip(b).map(|(x, y)| x - y).collect()).collect();
    let num: f64 = quad_forms(site, &diff, h).iter().sum();
    let den: f64 = quad_forms(site, rows_fp, h).iter().sum();
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// Each row's `vᵀ H v`, `H` its group's input moments.
///
/// Per group, the rows go through one product with `H` (`faer`, blocked),
/// and each quadratic form is a row's dot product with its image: a 512 ×
/// 4608 layer takes a fraction of a second, where the row-by-row forms took
/// minutes.
fn quad_forms(site: &Site, rows: &[Vec<f64>], h: &[Mat<f64>]) -> Vec<f64> {
    let per = site.rows / site.groups();
    let mut out = vec![0.0; rows.len()];
    for (grp, hm) in h.iter().enumerate() {
        let lo = (grp * per).min(rows.len());
        let hi = ((grp + 1) * per).min(rows.len());
        let k = hm.nrows();
        if hi == lo || k == 0 {
            continue;
        }
        let v = Mat::from_fn(hi - lo, k, |r, c| rows[lo + r][c]);
        let vh = &v * hm;
        // column-major: walk down the columns
        for c in 0..k {
            for (r, q) in out[lo..hi].iter_mut().enumerate() {
                *q += vh[(r, c)] * v[(r, c)];
            }
        }
    }
    out
}
