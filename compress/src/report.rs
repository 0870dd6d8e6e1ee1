//! What compression did to each layer, what it cost and what it saved.

use std::fmt;

use kerf_ir::{AxisQuant, Graph, Sparsity, Tensor};

use crate::layer::{Kind, Site};
use crate::plan::{LayerSettings, Precision};
use crate::quant::ActQuant;

/// One layer's outcome.
#[derive(Clone, Debug)]
pub struct LayerReport {
    /// The layer name.
    pub layer: String,
    /// `Conv 3x3`, `Gemm`, ...
    pub kind: String,
    /// The settings the plan resolved to for this layer.
    pub settings: LayerSettings,
    /// Weights before compression.
    pub weights: usize,
    /// Weights kept: the non-zero ones after pruning, or the two factors'
    /// weights of a factored layer.
    pub kept: usize,
    /// Multiply-accumulates per inference before compression.
    pub macs: usize,
    /// Multiply-accumulates per inference after pruning or factoring.
    pub macs_kept: usize,
    /// Weight storage before, in bytes: f32 dense.
    pub bytes_before: usize,
    /// Weight storage after, in bytes: 1 per kept int8 weight (4 per f32)
    /// plus f32 per-channel scales and one pattern id per kernel (N:M:
    /// `⌈log₂ M⌉` bits of position per kept weight).
    pub bytes_after: usize,
    /// `‖(W − Ŵ) X‖² / ‖W X‖²` on the calibration inputs.
    pub error: f64,
    /// Kernels removed whole (connectivity pruning).
    pub removed_kernels: usize,
    /// The pattern library: bitmasks over a kernel's taps, row-major (empty
    /// without pattern pruning).
    pub patterns: Vec<u32>,
    /// The input activation's int8 grid, for export.
    pub input_quant: Option<ActQuant>,
    /// The weight's per-output-channel int8 scales, for export.
    pub weight_quant: Option<AxisQuant>,
    /// The final weight values (the layer's weight tensor, as stored);
    /// `None` for a layer left unchanged or factored.
    pub weight: Option<Tensor>,
    /// The layer's new bias after bias correction (the bias input's shape;
    /// Conv `[M]`, Gemm `C`), for export; `None` when unchanged.
    pub bias: Option<Tensor>,
    /// Remarks for the report (why a setting did not apply, the rank, ...).
    pub notes: Vec<String>,
    /// The int8 grid the residual added to this conv's output is read on
    /// (`residual = "int8"`, [`crate::rewrite::quantize_residuals`]).
    pub residual_quant: Option<ActQuant>,
    /// The rank a factored layer was given.
    pub rank: Option<usize>,
    /// The Tucker-2 ranks `[r_in, r_out]` a conv was factored with (its
    /// `factors` are then the first 1x1, the core and the last 1x1).
    pub tucker: Option<[usize; 2]>,
    /// A factored layer's two weights as factored, in their own layouts:
    /// the input side (`<layer>.v`), then the output side (`<layer>.u`).
    /// A part compressed further has its own entry, whose `weight`
    /// supersedes its factor here. Empty for other layers.
    pub factors: Vec<Tensor>,
    /// For a product of a factored layer: that layer (its MACs and bytes
    /// are counted there).
    pub parent: Option<String>,
}

fn kind_name(site: &Site) -> String {
    match &site.kind {
        Kind::Conv { kernel, group, .. } => {
            let k: Vec<String> = kernel.iter().map(|k| k.to_string()).collect();
            let dw = if *group > 1 { format!(" g{group}") } else { String::new() };
            format!("Conv {}{dw}", k.join("x"))
        }
        Kind::ConvTranspose { kernel, .. } => {
            let k: Vec<String> = kernel.iter().map(|k| k.to_string()).collect();
            format!("ConvT {}", k.join("x"))
        }
        Kind::MatMulKn | Kind::MatMulNk => "MatMul".to_string(),
    }
}

impl LayerReport {
    pub(crate) fn unchanged(g: &Graph, site: &Site, settings: LayerSettings) -> LayerReport {
        let n = site.rows * site.cols;
        LayerReport {
            layer: site.layer.clone(),
            kind: kind_name(site),
            settings,
            weights: n,
            kept: n,
            macs: site.macs(g),
            macs_kept: site.macs(g),
            bytes_before: 4 * n,
            bytes_after: 4 * n,
            error: 0.0,
            removed_kernels: 0,
            patterns: Vec::new(),
            input_quant: None,
            weight_quant: None,
            weight: None,
            bias: None,
            notes: Vec::new(),
            residual_quant: None,
            rank: None,
            tucker: None,
            factors: Vec::new(),
            parent: None,
        }
    }

    /// A layer factored into two products of rank `rank`: MACs and bytes of
    /// the pair (int8 when the settings quantise).
    pub(crate) fn factored(
        g: &Graph,
        site: &Site,
        settings: LayerSettings,
        rank: usize,
        error: f64,
        factors: [Tensor; 2],
    ) -> LayerReport {
        let kept = rank * (site.rows + site.cols);
        let macs_kept = site.macs(g) / (site.rows * site.cols).max(1) * kept;
        let mut r = LayerReport::split(g, site, settings, factors.into(), macs_kept, site.rows + rank, error);
        r.rank = Some(rank);
        r.notes.push(format!("rank {rank}"));
        r
    }

    /// A conv factored by Tucker-2 at `ranks`, its three convs doing
    /// `macs_kept` multiply-adds.
    pub(crate) fn tucker(
        g: &Graph,
        site: &Site,
        settings: LayerSettings,
        ranks: [usize; 2],
        macs_kept: usize,
        error: f64,
        factors: [Tensor; 3],
    ) -> LayerReport {
        let scales = ranks[0] + ranks[1] + site.rows;
        let mut r = LayerReport::split(g, site, settings, factors.into(), macs_kept, scales, error);
        r.tucker = Some(ranks);
        r.notes.push(format!("Tucker-2 ranks {}, {}", ranks[0], ranks[1]));
        r
    }

    /// A layer split into the products `factors`: their weights are the
    /// kept ones, in bytes one each plus a 4-byte step for each of their
    /// `scales` output channels when the settings quantise, else four each.
    fn split(
        g: &Graph,
        site: &Site,
        settings: LayerSettings,
        factors: Vec<Tensor>,
        macs_kept: usize,
        scales: usize,
        error: f64,
    ) -> LayerReport {
        let mut r = LayerReport::unchanged(g, site, settings);
        r.kept = factors.iter().map(Tensor::numel).sum();
        r.macs_kept = macs_kept;
        r.bytes_after = if settings.quant == Precision::Int8 { r.kept + 4 * scales } else { 4 * r.kept };
        r.error = error;
        r.factors = factors;
        r
    }

    /// Whether the layer was split into products of its own (low rank or
    /// Tucker-2), whose output side `<layer>.u` carries the bias.
    pub fn is_factored(&self) -> bool {
        self.rank.is_some() || self.tucker.is_some()
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn compressed(
        g: &Graph,
        site: &Site,
        settings: LayerSettings,
        weight: &Tensor,
        sparsity: &Sparsity,
        removed_kernels: usize,
        error: f64,
        input_quant: Option<ActQuant>,
        scales: Option<Vec<f64>>,
        notes: Vec<String>,
    ) -> LayerReport {
        let mut r = LayerReport::unchanged(g, site, settings);
        let kept = match sparsity {
            Sparsity::Dense => r.weights,
            _ => (0..weight.numel()).filter(|&i| weight.get_f64(i) != 0.0).count(),
        };
        let (patterns, ids) = match sparsity {
            Sparsity::Pattern { patterns, assignment, .. } => (patterns.clone(), assignment.len()),
            _ => (Vec::new(), 0),
        };
        let int8 = settings.quant == Precision::Int8;
        let per_weight = if int8 { 1 } else { 4 };
        let stored = if matches!(sparsity, Sparsity::Dense) { r.weights } else { kept };
        r.kept = kept;
        r.macs_kept = (r.macs as f64 * kept as f64 / r.weights.max(1) as f64).round() as usize;
        let values = match (sparsity, settings.nm) {
            (Sparsity::Unstructured { .. }, Some(nm)) => crate::nm::stored_bytes(kept, per_weight, nm),
            _ => stored * per_weight,
        };
        r.bytes_after = values + if int8 { 4 * site.rows } else { 0 } + ids;
        r.error = error;
        r.removed_kernels = removed_kernels;
        r.patterns = patterns;
        r.input_quant = input_quant;
        r.weight_quant =
            scales.map(|s| AxisQuant { axis: site.channel_axis(), scales: s.iter().map(|&x| x as f32).collect() });
        r.weight = Some(weight.clone());
        r.notes = notes;
        r
    }
}

/// Every layer's outcome, in node order.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// One entry per layer, in node order; a factored layer's products,
    /// when compressed further, follow it.
    pub layers: Vec<LayerReport>,
}

impl Report {
    /// Total (weights kept, MACs before, MACs after, bytes before, bytes after).
    pub fn totals(&self) -> (usize, usize, usize, usize) {
        self.layers
            .iter()
            .filter(|l| l.parent.is_none())
            .fold((0, 0, 0, 0), |t, l| (t.0 + l.macs, t.1 + l.macs_kept, t.2 + l.bytes_before, t.3 + l.bytes_after))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<24} {:<12} {:<5} {:>8} {:>9} {:>10} {:>10} {:>10}  notes",
            "layer", "kind", "quant", "patterns", "removed", "MACs", "bytes", "rel. error"
        )?;
        for l in &self.layers {
            let quant = match l.settings.quant {
                Precision::F32 => "f32",
                Precision::Int8 => "int8",
            };
            let pats = if l.patterns.is_empty() { "-".to_string() } else { l.patterns.len().to_string() };
            writeln!(
                f,
                "{:<24} {:<12} {:<5} {:>8} {:>9} {:>10} {:>10} {:>10.2e}  {}",
                if l.parent.is_some() { format!("  {}", l.layer) } else { l.layer.clone() },
                l.kind,
                quant,
                pats,
                l.removed_kernels,
                format!("{}/{}", short(l.macs_kept), short(l.macs)),
                format!("{}/{}", short(l.bytes_after), short(l.bytes_before)),
                l.error,
                l.notes.join("; ")
            )?;
        }
        let (m0, m1, b0, b1) = self.totals();
        writeln!(
            f,
            "total: MACs {} -> {} ({:.2}x fewer), weight bytes {} -> {} ({:.2}x smaller)",
            short(m0),
            short(m1),
            m0 as f64 / m1.max(1) as f64,
            short(b0),
            short(b1),
            b0 as f64 / b1.max(1) as f64
        )
    }
}

fn short(n: usize) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}K", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2}M", n as f64 / 1e6),
        _ => format!("{:.2}G", n as f64 / 1e9),
    }
}
