//! Options shared by several subcommands, and the one way they become a
//! [`Session`].

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use kerf_compress::{NmSetting, Plan, Precision};
use kerf_ir::{Graph, Tensor};
use kerf_pipeline::compression::{data_files, read_stacked, samples_for};
use kerf_pipeline::dataset::read_labels;
use kerf_pipeline::inputs::{read_named, read_specs, InputFile};
use kerf_pipeline::{Optimized, Session};

/// The model and how to import it (every subcommand).
#[derive(Args, Debug)]
pub struct ModelArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// Fix a dynamic input shape: NAME=D0,D1,... (repeatable).
    #[arg(long = "input-shape", value_parser = parse_input_shape)]
    pub input_shape: Vec<(String, Vec<usize>)>,
    /// Fold an input as a constant: NAME=value.npy (repeatable). It leaves
    /// the compiled signature; for inputs that decide shapes or branches
    /// (Reshape's shape, Slice's starts, an `If` condition).
    #[arg(long = "bind", value_name = "NAME=FILE")]
    pub bind: Vec<String>,
    /// Keep every conv on the direct kernels (no Winograd rewrite): to
    /// compare a layer's forms, e.g. a pattern-pruned conv against the
    /// dense direct one.
    #[arg(long = "no-winograd")]
    pub no_winograd: bool,
    #[command(flatten)]
    pub compress: CompressArgs,
}

/// Compression flags (every subcommand): they set the plan's `[default]`
/// table, on top of `--plan`'s file (docs/compression.md).
#[derive(Args, Debug, Default)]
pub struct CompressArgs {
    /// Quantise weights (int8 per channel) and layer inputs (uint8).
    #[arg(long, value_name = "int8|f32")]
    pub quantize: Option<String>,
    /// Pattern pruning of 3x3 convs (4-tap patterns) and 5x5 convs (8-tap patterns fitted to the layer): library size K (4..12 typical; at most 56).
    #[arg(long = "prune-patterns", value_name = "K")]
    pub prune_patterns: Option<usize>,
    /// Fraction of 3x3/5x5 kernels removed whole (connectivity pruning), in [0, 1).
    #[arg(long, value_name = "FRACTION")]
    pub connectivity: Option<f64>,
    /// Input channels sharing one pattern and removed together (default 1;
    /// 4 lets int8 pruned convs run on the integer pattern kernel).
    #[arg(long = "pattern-group", value_name = "N")]
    pub pattern_group: Option<usize>,
    /// Tucker-2 of one-group KxK convs (1x1 → KxK core → 1x1), ranks of
    /// the input and output channel modes: R_IN,R_OUT.
    #[arg(long, value_name = "R_IN,R_OUT")]
    pub tucker: Option<String>,
    /// N:M sparsity of Gemm/MatMul and convs without patterns: N of every M
    /// input channels kept (e.g. 2:4), chosen by saliency and refitted;
    /// N:M/B makes blocks of B output channels share the kept positions
    /// (2:4/16: Gemm/MatMul and pointwise convs then run the block-sparse
    /// kernels, about twice as fast in f32); N:MxU keeps runs of U input
    /// channels whole (2:4x4/16: the same with int8 on x86-64).
    #[arg(long = "prune-nm", value_name = "N:M[xU][/B]")]
    pub prune_nm: Option<String>,
    /// Weight rounding for int8: gptq (default) or nearest.
    #[arg(long, value_name = "gptq|nearest")]
    pub rounding: Option<String>,
    /// Low rank for Gemm/MatMul and one-group convs (channel SVD: an r-output conv, then 1x1): a
    /// whitened-energy fraction in (0, 1) to keep, or a whole-number rank.
    #[arg(long = "low-rank", value_name = "ENERGY|RANK")]
    pub low_rank: Option<f64>,
    /// How pruning chooses and compensates: obs (default: saliency + least-squares refit) or magnitude.
    #[arg(long, value_name = "obs|magnitude")]
    pub selection: Option<String>,
    /// Activation range observer: mse (default), minmax, percentile or kl (entropy).
    #[arg(long, value_name = "mse|minmax|percentile|kl")]
    pub observer: Option<String>,
    /// Bias correction: shift each compressed Conv/Gemm's bias by its mean
    /// output error on the calibration data.
    #[arg(long = "bias-correction")]
    pub bias_correction: bool,
    /// int8 weight steps: channel (default) or tensor.
    #[arg(long, value_name = "channel|tensor")]
    pub granularity: Option<String>,
    /// Bits of the int8 weight codes, 2..=8 (default 8). 7 keeps codes
    /// within ±63, which x86-64 CPUs with AVX2 but no VNNI multiply about
    /// twice as fast as free 8-bit codes (`vpmaddubsw` without saturation;
    /// so do 8-bit codes with --byte-pairs exact; docs/compression.md).
    #[arg(long = "weight-bits", value_name = "BITS")]
    pub weight_bits: Option<u8>,
    /// Whether each row's adjacent int8 weight codes must fit `vpmaddubsw`
    /// without saturating (exact) or may be any (default: exact when
    /// compiling for AVX2 without VNNI, e.g. `--cpu haswell`, or `native`
    /// on such a CPU, where it doubles the integer conv's rate; any
    /// elsewhere, and for `kerf compress`).
    #[arg(long = "byte-pairs", value_name = "exact|any")]
    pub byte_pairs: Option<String>,
    /// Cross-layer equalisation first: rescale the channels between layers
    /// joined by a ReLU to equal ranges (exact; helps per-tensor int8).
    #[arg(long)]
    pub equalize: bool,
    /// int8: a residual added to a quantised conv's output (ResNet's and
    /// MobileNetV2's skip connections) reads the int8 grid its other
    /// consumer already quantises it to, so the integer conv adds it as u8
    /// (lossy, as ONNX Runtime's `QLinearAdd`); f32: as it is (default:
    /// int8 when compiling for x86-64 with AVX2, e.g. `--cpu native` there
    /// or `haswell`, whose tiles read u8 residuals; f32 elsewhere, and for
    /// `kerf compress`).
    #[arg(long, value_name = "f32|int8")]
    pub residual: Option<String>,
    /// A compression plan file (TOML; per-layer overrides).
    #[arg(long, value_name = "plan.toml")]
    pub plan: Option<PathBuf>,
    /// Calibration samples: FILE.npy (N samples stacked), NAME=FILE.npy per input, or a folder of <input>.npy.
    #[arg(long, value_name = "DATA")]
    pub calib: Vec<String>,
    /// Use only the first N calibration samples.
    #[arg(long = "calib-samples", value_name = "N")]
    pub calib_samples: Option<usize>,
    /// Keep int8 convs in f32 on the dequantised grid instead of the
    /// integer kernel (u8 x i8, exact i32 sums) the cost model picks where
    /// it is cheaper (docs/compression.md).
    #[arg(long = "no-int8-kernels")]
    pub no_int8_kernels: bool,
}

impl CompressArgs {
    /// The plan these flags ask for, or `None` when they ask for nothing.
    /// A flag that only tunes a technique no layer is given is an error,
    /// not ignored (`kerf tune` reads them through
    /// [`CompressArgs::parsed_plan`] as the settings of every variant it
    /// tries).
    pub fn plan(&self) -> Result<Option<Plan>> {
        let plan = self.parsed_plan()?;
        self.settings_have_a_technique(&plan)?;
        let asked = self.plan.is_some()
            || self.quantize.is_some()
            || self.prune_patterns.is_some()
            || self.connectivity.is_some()
            || self.low_rank.is_some()
            || self.prune_nm.is_some()
            || self.tucker.is_some()
            || self.granularity.is_some()
            || self.weight_bits.is_some()
            || self.byte_pairs.is_some()
            || self.equalize
            || self.residual.is_some()
            || self.bias_correction;
        Ok(asked.then_some(plan))
    }

    /// Settings flags of int8 need a layer that quantises, and pruning's a
    /// layer that prunes: in `plan`, the plan file with the flags written
    /// into its defaults, so a `[[layer]]` rule asking for it counts.
    fn settings_have_a_technique(&self, plan: &Plan) -> Result<()> {
        let all = || std::iter::once(&plan.default).chain(plan.layers.iter().map(|r| &r.settings));
        let quantising = all().any(|s| s.quant == Some(Precision::Int8));
        let patterns = all().any(|s| s.patterns.is_some_and(|k| k > 0) || s.connectivity.is_some_and(|c| c > 0.0));
        let nm = all().any(|s| matches!(s.nm, Some(NmSetting::Sparse(_))));
        let none = match &self.plan {
            Some(p) => format!(", and no layer of the plan '{}' (with the flags given) has one", p.display()),
            None => String::new(),
        };
        let int8 = [
            ("--rounding", self.rounding.is_some()),
            ("--observer", self.observer.is_some()),
            ("--granularity", self.granularity.is_some()),
            ("--weight-bits", self.weight_bits.is_some()),
            ("--byte-pairs", self.byte_pairs.is_some()),
            ("--residual", self.residual.is_some()),
            ("--no-int8-kernels", self.no_int8_kernels),
        ];
        if let Some((flag, _)) = int8.iter().find(|(_, given)| *given).filter(|_| !quantising) {
            bail!(
                "{flag} is a setting of int8: it needs --quantize int8 or a plan layer with quant = \"int8\"{none}; alone it changes nothing"
            );
        }
        if self.pattern_group.is_some() && !patterns {
            bail!(
                "--pattern-group groups the kernels pattern pruning keeps: it needs --prune-patterns or --connectivity, or a plan layer with patterns or connectivity{none}; alone it changes nothing"
            );
        }
        if self.selection.is_some() && !patterns && !nm {
            bail!(
                "--selection sets how pruning chooses: it needs --prune-patterns, --connectivity or --prune-nm, or a plan layer with patterns, connectivity or nm{none}; alone it changes nothing"
            );
        }
        Ok(())
    }

    /// The plan file (if any) with every flag given written into its
    /// defaults, parsed and checked, whether or not the flags ask for any
    /// compression (`kerf tune` takes the settings flags alone).
    pub fn parsed_plan(&self) -> Result<Plan> {
        let mut plan = match &self.plan {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("cannot read plan '{}'", p.display()))?;
                Plan::parse(&text).with_context(|| format!("plan '{}'", p.display()))?
            }
            None => Plan::default(),
        };
        let d = &mut plan.default;
        if let Some(q) = &self.quantize {
            d.quant = Some(q.parse().map_err(|e| anyhow!("--quantize {e}"))?);
        }
        if let Some(r) = &self.rounding {
            d.rounding = Some(r.parse().map_err(|e| anyhow!("--rounding {e}"))?);
        }
        if let Some(o) = &self.observer {
            d.observer = Some(o.parse().map_err(|e| anyhow!("--observer {e}"))?);
        }
        if let Some(m) = &self.selection {
            d.selection = Some(m.parse().map_err(|e| anyhow!("--selection {e}"))?);
        }
        if let Some(k) = self.prune_patterns {
            d.patterns = Some(k);
        }
        if let Some(c) = self.connectivity {
            d.connectivity = Some(c);
        }
        if let Some(g) = self.pattern_group {
            d.pattern_group = Some(g);
        }
        if let Some(r) = self.low_rank {
            d.low_rank = Some(r);
        }
        if let Some(ranks) = &self.tucker {
            d.tucker = Some(parse_ranks(ranks).map_err(|e| anyhow!("--tucker {e}"))?);
        }
        if let Some(nm) = &self.prune_nm {
            d.nm = Some(NmSetting::Sparse(nm.parse().map_err(|e| anyhow!("--prune-nm {e}"))?));
        }
        if self.bias_correction {
            d.bias_correction = Some(true);
        }
        if let Some(g) = &self.granularity {
            d.granularity = Some(g.parse().map_err(|e| anyhow!("--granularity {e}"))?);
        }
        if self.equalize {
            d.equalize = Some(true);
        }
        if let Some(b) = self.weight_bits {
            d.weight_bits = Some(b);
        }
        if let Some(p) = &self.byte_pairs {
            d.byte_pairs = Some(p.parse().map_err(|e| anyhow!("--byte-pairs {e}"))?);
        }
        if let Some(r) = &self.residual {
            d.residual = Some(r.parse().map_err(|e| anyhow!("--residual {e}"))?);
        }
        plan.check()?;
        Ok(plan)
    }
}

impl ModelArgs {
    /// A session for this model (host target, baseline CPU until the caller
    /// sets one), with its shapes and bound inputs.
    pub fn session(&self) -> Result<Session> {
        self.compressed(self.uncompressed()?)
    }

    /// The session without the compression flags (the FP32 baseline).
    pub fn uncompressed(&self) -> Result<Session> {
        let mut s = Session::new(&self.model);
        for (input, dims) in &self.input_shape {
            s = s.input_shape(input, dims);
        }
        for (input, value) in read_named("--bind", &self.bind)? {
            s = s.bind(&input, value);
        }
        Ok(s.pass_options(self.passes()))
    }

    /// The rule-group options the flags ask for.
    fn passes(&self) -> kerf_pipeline::PassOptions {
        kerf_pipeline::PassOptions {
            int8_kernels: !self.compress.no_int8_kernels,
            winograd: !self.no_winograd,
            ..Default::default()
        }
    }

    /// Whether any compression flag is given.
    pub fn compressing(&self) -> Result<bool> {
        Ok(self.compress.plan()?.is_some())
    }

    /// `s` with the compression flags' plan and calibration data.
    fn compressed(&self, s: Session) -> Result<Session> {
        let Some(plan) = self.compress.plan()? else {
            if !self.compress.calib.is_empty() {
                bail!(
                    "--calib given without a compression flag (--quantize, --prune-patterns, --connectivity, --prune-nm, --low-rank, --tucker or --plan)"
                );
            }
            return Ok(s);
        };
        let stacked = self.calibration(&s)?;
        Ok(s.sample_shapes(&stacked)?.compression(plan, stacked).progress(layer_bar()).pass_options(self.passes()))
    }

    /// The `--calib` data (stacked, per input), cut to `--calib-samples`.
    pub fn calibration(&self, s: &Session) -> Result<Vec<(String, Tensor)>> {
        if self.compress.calib.is_empty() {
            return Ok(Vec::new());
        }
        let stacked = read_stacked(&data_files(&self.compress.calib, &s.model_inputs()?)?)?;
        match self.compress.calib_samples {
            Some(n) => stacked.into_iter().map(|(k, t)| Ok((k, first_samples(&t, n)?))).collect(),
            None => Ok(stacked),
        }
    }
}

/// A data set (`kerf eval`, `kerf tune`): samples and optional labels.
#[derive(Args, Debug)]
pub struct DataArgs {
    /// Samples: FILE.npy (N samples stacked on a leading axis), or NAME=FILE.npy per input.
    #[arg(long, required = true)]
    pub data: Vec<String>,
    /// Class labels: N integers (top-1 of output 0).
    #[arg(long)]
    pub labels: Option<PathBuf>,
}

/// Samples of a data set, split per sample for a session whose dynamic
/// dimensions the data fixed.
pub struct DataSet {
    pub session: Session,
    pub samples: Vec<Vec<Tensor>>,
    pub labels: Option<Vec<i64>>,
}

impl DataArgs {
    /// Reads the data for `base`'s model: the session gets the samples'
    /// shapes; labels must number as many as the samples. `limit` keeps the
    /// first samples (and labels) only.
    pub fn load(&self, base: Session, limit: Option<usize>) -> Result<DataSet> {
        let stacked = read_stacked(&data_files(&self.data, &base.model_inputs()?)?)?;
        let session = base.sample_shapes(&stacked)?;
        let g = session.import()?;
        let mut samples = samples_for(&g, &stacked)?;
        let mut labels = self.labels.as_ref().map(|p| read_labels(p)).transpose()?;
        if let (Some(l), Some(p)) = (&labels, &self.labels) {
            if l.len() != samples.len() {
                bail!("{} labels in '{}' for {} samples", l.len(), p.display(), samples.len());
            }
        }
        if let Some(n) = limit {
            samples.truncate(n);
            if let Some(l) = &mut labels {
                l.truncate(n);
            }
        }
        if samples.is_empty() {
            bail!("no samples to run (the data holds none, or --limit 0)");
        }
        note_non_finite(&g, &samples);
        if let (Some(l), Some(out)) = (&labels, g.outputs.first()) {
            classes_fit(&g.ty(out.value).shape, l)?;
        }
        Ok(DataSet { session, samples, labels })
    }
}

/// A note for data that holds NaN or Inf (calibration data is an error
/// there; data to score may mean it, but its outputs, and so its top-1,
/// are rarely what the user expects): per input of `g`, how many values
/// of the samples to be run.
fn note_non_finite(g: &Graph, samples: &[Vec<Tensor>]) {
    for (i, &v) in g.inputs.iter().enumerate() {
        let (mut bad, mut all) = (0, 0);
        for t in samples.iter().filter_map(|s| s.get(i)) {
            bad += non_finite(t);
            all += t.numel();
        }
        if bad > 0 {
            let name = &g.value(v).name;
            eprintln!(
                "note: input '{name}' holds {bad} NaN or Inf value(s) of {all}: their samples are scored as they are"
            );
        }
    }
}

/// How many NaN or Inf values a float tensor holds (the calibration
/// check's reading, `compress`'s `engine.rs`: `get_f64` of each element).
fn non_finite(t: &Tensor) -> usize {
    if !t.dtype().is_float() {
        return 0;
    }
    (0..t.numel()).filter(|&i| !t.get_f64(i).is_finite()).count()
}

/// Most timed (or warm-up) runs a measurement takes (`bench`, `tune`): their
/// times are kept for the median.
pub const MAX_RUNS: usize = 10_000_000;

/// Labels name classes of output 0, which top-1 reads as one score per
/// class: it must be a vector (`[C]`, `[1, C]`, ... one axis past 1), and
/// every label in `0..C`.
fn classes_fit(out: &[usize], labels: &[i64]) -> Result<()> {
    if out.iter().filter(|&&d| d > 1).count() > 1 {
        bail!(
            "top-1 reads output 0 as one score per class, but it has shape {out:?}: labels need a classifier's output"
        );
    }
    let classes: usize = out.iter().product();
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| usize::try_from(l).map_or(true, |l| l >= classes)) {
        bail!("label {l} (sample {i}) is not a class of output 0's {classes}");
    }
    Ok(())
}

/// Reads `--input` specs for the model's inputs and gives them to the
/// session: their shapes fix dynamic dimensions, and inputs the model needs
/// constant are bound to them.
pub fn with_input_files(session: Session, specs: &[String]) -> Result<(Session, Vec<InputFile>)> {
    let names = session.model_inputs()?;
    let files = read_specs(specs, &names)?;
    let data = files.iter().map(|f| (f.name.clone(), f.tensor.clone())).collect();
    Ok((session.input_data(data), files))
}

/// Says which inputs were bound from their files because the model needs them constant.
pub fn note_bound(session: &Session, g: &Graph, files: &[InputFile]) {
    for name in session.auto_bound(g) {
        let from = files.iter().find(|f| f.name == name).map(|f| f.path.display().to_string()).unwrap_or_default();
        eprintln!("note: input '{name}' bound to its value from '{from}' (the model needs it constant; --bind does this explicitly)");
    }
}

/// Parses `name=1,3,224,224`.
pub fn parse_input_shape(s: &str) -> Result<(String, Vec<usize>), String> {
    let (name, dims) = s.rsplit_once('=').ok_or_else(|| format!("expected NAME=D0,D1,..., got '{s}'"))?;
    if name.is_empty() {
        return Err(format!("missing input name in '{s}'"));
    }
    let dims = dims
        .split(',')
        .map(|d| d.trim().parse::<usize>().map_err(|_| format!("'{d}' is not a dimension in '{s}'")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((name.to_string(), dims))
}

/// Prints the compress stage's per-layer report and the optimize stage's
/// warnings (rule groups stopped on a limit).
pub fn warn(o: &Optimized) {
    if let Some(r) = &o.compression {
        eprint!("{r}");
    }
    for w in o.warnings() {
        eprintln!("warning: {w}");
    }
    for n in &o.notes {
        eprintln!("note: {n}");
    }
}

/// The first `n` samples of stacked data.
fn first_samples(t: &Tensor, n: usize) -> Result<Tensor> {
    let s = t.shape();
    if s.is_empty() || s[0] <= n {
        return Ok(t.clone());
    }
    let per = t.bytes().len() / s[0];
    let mut shape = s.to_vec();
    shape[0] = n;
    Ok(Tensor::from_bytes(t.dtype(), shape, t.bytes()[..n * per].to_vec())?)
}

/// A progress bar on stderr for the compress stage (per layer); hidden when
/// stderr is not a terminal.
fn layer_bar() -> kerf_pipeline::ProgressHook {
    progress_bar("compressing")
}

/// A progress bar on stderr, `<what> [=====>   ] done/total <step>`, cleared
/// when the stage ends; hidden when stderr is not a terminal.
pub fn progress_bar(what: &str) -> kerf_pipeline::ProgressHook {
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    let template = format!("{what} [{{bar:30}}] {{pos}}/{{len}} {{msg}}");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    kerf_pipeline::ProgressHook(std::sync::Arc::new(move |done, total, what| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(what.to_string());
        if done == total {
            bar.finish_and_clear();
        }
    }))
}

/// `R_IN,R_OUT`: two ranks of at least 1.
fn parse_ranks(s: &str) -> std::result::Result<[usize; 2], String> {
    let bad = || format!("'{s}': expected two ranks R_IN,R_OUT (whole numbers >= 1), e.g. 8,16");
    let (a, b) = s.split_once(',').ok_or_else(bad)?;
    let (a, b): (usize, usize) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
    if a == 0 || b == 0 {
        return Err(bad());
    }
    Ok([a, b])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tucker_ranks_parse() {
        assert_eq!(parse_ranks("8, 16").unwrap(), [8, 16]);
        for bad in ["8", "0,4", "4,x", "-1,2"] {
            assert!(parse_ranks(bad).unwrap_err().contains("R_IN,R_OUT"), "{bad}");
        }
    }

    #[test]
    fn input_shapes_parse() {
        assert_eq!(parse_input_shape("x=1,3,224,224").unwrap(), ("x".into(), vec![1, 3, 224, 224]));
        assert_eq!(parse_input_shape("a=b=2").unwrap(), ("a=b".into(), vec![2]));
        assert!(parse_input_shape("x=1,-3").unwrap_err().contains("'-3'"));
        assert!(parse_input_shape("x").is_err());
        assert!(parse_input_shape("=1").is_err());
    }

    /// NaN and Inf counted in every float type, from the bytes; finite
    /// values (the largest included) are not.
    #[test]
    fn non_finite_values_in_every_float_type() {
        use kerf_ir::DType;
        let values = [0.0, -1.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e-30, -2.0];
        for (dtype, max) in
            [(DType::F64, f64::MAX), (DType::F32, f32::MAX as f64), (DType::BF16, 3.0e38), (DType::F16, 65504.0)]
        {
            let t = Tensor::from_f64_values(dtype, vec![8], &[&values[..], &[max]].concat()).unwrap();
            assert_eq!(super::non_finite(&t), 3, "{dtype}");
        }
        let ints = Tensor::from_f64_values(DType::I32, vec![2], &[-1.0, 7.0]).unwrap();
        assert_eq!(super::non_finite(&ints), 0);
    }
}
