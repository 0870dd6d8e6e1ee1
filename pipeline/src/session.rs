//! [`Session`]: the one pipeline every entry point goes through — the `kerf`
//! CLI (`inspect`, `compile`, `run`, `bench`), [`crate::Build`] in
//! `build.rs` scripts, the tests and the tuner.
//!
//! Stages, each a method that takes the previous stage's result and returns
//! its own with a report:
//!
//! | stage | method | gives |
//! |---|---|---|
//! | import | [`Session::import`] | the imported [`Graph`] (static shapes) |
//! | compress | [`Session::compress`] | the graph after the plan's lossy transforms + a per-layer [`kerf_compress::Report`] |
//! | optimize | [`Session::optimize`] | the rewritten graph + one [`GroupReport`] per rule-group phase ([`Optimized`]) |
//! | compile | [`Session::compile`] | object, header and [`kerf_targets::Report`] ([`Artifact`]) |
//! | jit | [`Session::jit`] | the same code in this process ([`JitModel`], with its report) |
//! | measure | [`crate::measure::Runner`] | timed calls of a compiled model ([`crate::measure::Timing`]) |
//!
//! Contracts: options are checked once, when a stage first needs them (a
//! repeated `--input-shape` or `--bind` is an error, whoever calls); the
//! graph's name is the symbol name ([`Session::symbol_name`]) on every path;
//! a rule group that stops on a limit rather than saturating is reported in
//! [`Optimized::warnings`], never dropped.
//!
//! Static shapes: kerf compiles for one shape and one value of every input
//! that decides a shape. [`Session::input_shape`] fixes a dynamic
//! dimension; [`Session::bind`] folds an input as a constant (it leaves the
//! compiled signature); [`Session::input_data`] gives the data a run will
//! use, which fixes the shapes of those inputs and binds exactly those the
//! frontend reports it needs constant ([`kerf_onnx::ImportError::NonConstantInput`],
//! e.g. Reshape's shape or an `If` condition), the specialisation the
//! conformance runner applies. A bound input is gone from the graph's
//! inputs: [`Session::auto_bound`] names them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use kerf_compress::Plan;
use kerf_ir::{Graph, Tensor};
use kerf_onnx::ImportError;
use kerf_passes::{GroupReport, PassOptions, Stop};
use kerf_targets::jit::ProfileHook;
use kerf_targets::{Artifact, CompileOptions, JitModel, ProgressHook, Target};

use crate::{names, PipelineError};

/// A pipeline stage whose result is a graph (what `kerf inspect --dump-ir` can show).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// As imported: ONNX semantics, constant subgraphs folded, static shapes.
    Import,
    /// After the compression plan's lossy transforms (the imported graph
    /// when there is no plan).
    Compress,
    /// After the lossless rewrite groups.
    Optimize,
}

impl Stage {
    /// Every graph stage in pipeline order.
    pub const ALL: [Stage; 3] = [Stage::Import, Stage::Compress, Stage::Optimize];

    /// The stage's name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Import => "import",
            Stage::Compress => "compress",
            Stage::Optimize => "optimize",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The optimize stage's result.
#[derive(Clone, Debug)]
pub struct Optimized {
    /// The rewritten graph.
    pub graph: Graph,
    /// One report per rule-group phase, in the order they ran.
    pub groups: Vec<GroupReport>,
    /// What the compress stage did per layer, when it ran.
    pub compression: Option<kerf_compress::Report>,
    /// Advice on the target's kernels for this graph (one line each).
    pub notes: Vec<String>,
}

impl Optimized {
    /// One line per phase that stopped on a limit instead of saturating
    /// (the result is still correct, but possibly less optimised).
    pub fn warnings(&self) -> Vec<String> {
        self.groups.iter().filter(|r| r.stop != Stop::Saturated).map(limit_warning).collect()
    }
}

/// Where the target's integer conv has AVX2's byte tile but no VNNI, the
/// integer convs whose 8-bit weights keep them on the 16-bit pairs
/// (depthwise ones aside: no byte tile multiplies them).
fn int8_notes(g: &Graph, dot: kerf_passes::Int8Dot) -> Vec<String> {
    if dot != kerf_passes::Int8Dot::ExactBytes {
        return Vec::new();
    }
    let pairs = g
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            kerf_ir::Op::QConv(q) => n.inputs.get(1).and_then(|&w| g.const_of(w)).map(|w| (q, w)),
            _ => None,
        })
        .filter(|(q, w)| !q.conv.is_depthwise(w.shape()) && !kerf_ir::weights_byte_pairs_exact(w))
        .count();
    if pairs == 0 {
        return Vec::new();
    }
    vec![format!(
        "{pairs} integer conv(s) have 8-bit weights whose byte pairs can saturate: without VNNI they multiply \
         16-bit pairs; --byte-pairs exact or --weight-bits 7 (plan: byte_pairs = \"exact\", weight_bits = 7) \
         lets this CPU's AVX2 byte tile take them, about 1.5x faster (docs/compression.md)"
    )]
}

fn limit_warning(r: &GroupReport) -> String {
    let limit = match r.stop {
        Stop::IterationLimit => "iteration limit",
        Stop::NodeLimit => "e-node limit",
        Stop::TimeLimit => "time limit",
        Stop::Saturated => "saturation",
    };
    format!(
        "rule group '{}' stopped at its {limit} after {} iterations ({} e-nodes, {} e-classes); \
         the result is correct but may be less optimised",
        r.group, r.iterations, r.enodes, r.eclasses
    )
}

/// One model through the pipeline: what to read, how to name it, which
/// target to build for.
#[derive(Clone, Debug)]
pub struct Session {
    model: PathBuf,
    name: Option<String>,
    input_shapes: Vec<(String, Vec<usize>)>,
    bound: Vec<(String, Tensor)>,
    data: Vec<(String, Tensor)>,
    target: Target,
    micro_kernels: bool,
    optimize: bool,
    passes: PassOptions,
    plan: Option<Plan>,
    calib: Vec<(String, Tensor)>,
    progress: Option<ProgressHook>,
    codegen_progress: Option<ProgressHook>,
    probe_memo: Option<crate::compression::ProbeMemo>,
}

impl Session {
    /// Host target, baseline CPU, lossless rewrites on.
    pub fn new(model: impl AsRef<Path>) -> Session {
        Session {
            model: model.as_ref().to_path_buf(),
            name: None,
            input_shapes: Vec::new(),
            bound: Vec::new(),
            data: Vec::new(),
            target: Target::host_baseline(),
            micro_kernels: true,
            optimize: true,
            passes: PassOptions::default(),
            plan: None,
            calib: Vec::new(),
            progress: None,
            codegen_progress: None,
            probe_memo: None,
        }
    }
    /// Shares probed calibration values with every session given the same
    /// memo (see [`crate::compression::ProbeMemo`]); results are the same
    /// with or without it.
    pub fn probe_memo(mut self, memo: crate::compression::ProbeMemo) -> Session {
        self.probe_memo = Some(memo);
        self
    }
    /// Reports code generation's progress (per node) to `hook`; the output
    /// is the same with or without it.
    pub fn codegen_progress(mut self, hook: ProgressHook) -> Session {
        self.codegen_progress = Some(hook);
        self
    }
    /// Reports the compress stage's progress (per layer) to `hook`.
    pub fn progress(mut self, hook: ProgressHook) -> Session {
        self.progress = Some(hook);
        self
    }
    /// Compresses with `plan` before optimizing, calibrated on `calib`
    /// (per input name, samples stacked on a leading axis; see
    /// [`crate::dataset::split`]).
    pub fn compression(mut self, plan: Plan, calib: Vec<(String, Tensor)>) -> Session {
        self.plan = Some(plan);
        self.calib = calib;
        self
    }
    /// Fixes the shapes of dynamic inputs from stacked sample data (`N ×`
    /// the sample, with or without a batch-1 axis): tries `[1] ++ x[1..]`,
    /// then `x[1..]`, keeping the first the model accepts. Inputs with a
    /// given `--input-shape` or run data are left alone.
    pub fn sample_shapes(self, stacked: &[(String, Tensor)]) -> Result<Session, PipelineError> {
        if self.import().is_ok() {
            return Ok(self);
        }
        let free: Vec<&(String, Tensor)> = stacked
            .iter()
            .filter(|(n, _)| !self.input_shapes.iter().any(|(m, _)| m == n) && !self.data.iter().any(|(m, _)| m == n))
            .collect();
        let with = |batched: bool| {
            let mut s = self.clone();
            for (n, x) in &free {
                let rest = &x.shape()[1.min(x.shape().len())..];
                let dims: Vec<usize> =
                    if batched { std::iter::once(1).chain(rest.iter().copied()).collect() } else { rest.to_vec() };
                s = s.input_shape(n, &dims);
            }
            s
        };
        let batched = with(true);
        if batched.import().is_ok() {
            return Ok(batched);
        }
        Ok(with(false))
    }
    /// Prefix of the exported symbols and the graph's name (default:
    /// [`names::default_name`] of the model path). Must be a C identifier.
    pub fn name(mut self, name: &str) -> Session {
        self.name = Some(name.to_string());
        self
    }
    /// The target to compile for (default: the host, baseline preset).
    pub fn target(mut self, target: Target) -> Session {
        self.target = target;
        self
    }
    /// Whether the target's assembled micro-kernels may replace Cranelift's
    /// own loops (default on; see [`CompileOptions::ukernels`]).
    pub fn micro_kernels(mut self, on: bool) -> Session {
        self.micro_kernels = on;
        self
    }
    /// Fixes a dynamic input's shape (giving one input twice is an error at import).
    pub fn input_shape(mut self, input: &str, dims: &[usize]) -> Session {
        self.input_shapes.push((input.to_string(), dims.to_vec()));
        self
    }
    /// Folds input `input` as the constant `value` (giving one input twice
    /// is an error at import); it is no longer an input of the compiled model.
    pub fn bind(mut self, input: &str, value: Tensor) -> Session {
        self.bound.push((input.to_string(), value));
        self
    }
    /// The data a run will use, by input name: fixes those inputs' shapes
    /// (where no [`Session::input_shape`] is given) and binds those the
    /// frontend needs constant.
    pub fn input_data(mut self, data: Vec<(String, Tensor)>) -> Session {
        self.data = data;
        self
    }
    /// Whether [`Session::graph`] runs the optimize stage.
    pub fn optimize_enabled(mut self, on: bool) -> Session {
        self.optimize = on;
        self
    }
    /// Limits of each rule group's run.
    pub fn pass_options(mut self, opts: PassOptions) -> Session {
        self.passes = opts;
        self
    }

    /// The model file.
    pub fn model_path(&self) -> &Path {
        &self.model
    }
    /// The exported symbols' prefix and the graph's name.
    pub fn symbol_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| names::default_name(&self.model))
    }
    /// Everything that decides what this session compiles and how it runs,
    /// as text: `g`, the session's imported graph (model, input shapes, bound inputs;
    /// weights by content hash), target triple and CPU (for `native`, the
    /// host CPU's model name and flags), micro-kernels, rewrites and pass options,
    /// the compression plan and calibration data (by content hash). Equal
    /// fingerprints mean the same generated code; callers hash it to key
    /// caches of measurements.
    pub fn fingerprint(&self, g: &Graph) -> String {
        let mut s = kerf_ir::text::print(g);
        let cpu = if self.target.cpu() == "native" { host_cpu_name() } else { self.target.cpu().to_string() };
        s.push_str(&format!(
            "\ntarget {} {cpu}\nmicro-kernels {}\noptimize {}\npasses {:?}\n",
            self.target.triple(),
            self.micro_kernels,
            self.optimize,
            self.passes
        ));
        if let Some(p) = self.plan() {
            s.push_str(&p.to_toml());
        }
        for (name, t) in &self.calib {
            s.push_str(&format!("calib {name} {}\n", t.content_hash()));
        }
        s
    }

    /// The code generator's options for this session's target.
    pub fn compile_options(&self) -> CompileOptions {
        let mut o = CompileOptions::new(self.target, &self.symbol_name());
        o.ukernels = self.micro_kernels;
        o.progress = self.codegen_progress.clone();
        o
    }

    /// The model's graph inputs (initializers excluded), in order: what
    /// positional `--input` files are matched to before import.
    pub fn model_inputs(&self) -> Result<Vec<String>, PipelineError> {
        let (ins, _) = kerf_onnx::model_io_kinds(&self.model)
            .map_err(|source| PipelineError::Import { path: self.model.clone(), source: Box::new(source) })?;
        Ok(ins.into_iter().map(|(n, _)| n).collect())
    }

    /// Inputs of [`Session::input_data`] that [`Session::import`] binds
    /// because the model needs them constant: those of `g` missing from its
    /// inputs and not bound explicitly.
    pub fn auto_bound(&self, g: &Graph) -> Vec<String> {
        let inputs: Vec<&str> = g.inputs.iter().map(|&v| g.value(v).name.as_str()).collect();
        self.data
            .iter()
            .map(|(n, _)| n)
            .filter(|n| !inputs.contains(&n.as_str()) && !self.bound.iter().any(|(b, _)| b == *n))
            .cloned()
            .collect()
    }

    /// The frontend's options: name, shapes and bindings, each input once.
    fn import_options(&self) -> Result<kerf_onnx::ImportOptions, PipelineError> {
        let name = self.symbol_name();
        if names::c_identifier(&name) != name {
            return Err(PipelineError::Config(format!("name '{name}' is not a C identifier")));
        }
        let mut input_shapes = BTreeMap::new();
        for (n, d) in &self.input_shapes {
            if input_shapes.insert(n.clone(), d.clone()).is_some() {
                return Err(PipelineError::Config(format!("--input-shape given twice for '{n}'")));
            }
        }
        let mut constant_inputs = BTreeMap::new();
        for (n, t) in &self.bound {
            if constant_inputs.insert(n.clone(), t.clone()).is_some() {
                return Err(PipelineError::Config(format!("--bind given twice for '{n}'")));
            }
        }
        for (n, t) in &self.data {
            if !constant_inputs.contains_key(n) {
                input_shapes.entry(n.clone()).or_insert_with(|| t.shape().to_vec());
            }
        }
        Ok(kerf_onnx::ImportOptions { input_shapes, constant_inputs, name: Some(name), ..Default::default() })
    }

    /// Stage `import`: reads and imports the model, binding inputs of
    /// [`Session::input_data`] the frontend needs constant (at most one
    /// import per input).
    pub fn import(&self) -> Result<Graph, PipelineError> {
        let mut opts = self.import_options()?;
        loop {
            match kerf_onnx::load_model(&self.model, &opts) {
                Ok(g) => return Ok(g),
                Err(ImportError::NonConstantInput { value, .. })
                    if !opts.constant_inputs.contains_key(&value) && self.data.iter().any(|(n, _)| *n == value) =>
                {
                    let t = self.data.iter().find(|(n, _)| *n == value).map(|(_, t)| t.clone());
                    if let Some(t) = t {
                        opts.input_shapes.remove(&value);
                        opts.constant_inputs.insert(value, t);
                    }
                }
                Err(source @ ImportError::NonConstantInput { .. }) => return Err(self.needs_binding(source)),
                Err(source) => {
                    return Err(PipelineError::Import { path: self.model.clone(), source: Box::new(source) })
                }
            }
        }
    }

    /// A [`ImportError::NonConstantInput`] that names a model input becomes
    /// [`PipelineError::NeedsBinding`], which says how to bind it.
    fn needs_binding(&self, source: ImportError) -> PipelineError {
        let input = match &source {
            ImportError::NonConstantInput { value, .. } => value.clone(),
            _ => String::new(),
        };
        let is_input = self.model_inputs().is_ok_and(|ins| ins.contains(&input));
        if is_input {
            PipelineError::NeedsBinding { path: self.model.clone(), source: Box::new(source), input }
        } else {
            PipelineError::Import { path: self.model.clone(), source: Box::new(source) }
        }
    }

    /// Stage `optimize`: the lossless rewrite groups.
    pub fn optimize(&self, g: &Graph) -> Result<Optimized, PipelineError> {
        // what the passes may count on from the code generator
        let mut opts = self.passes.clone();
        let caps = self.compile_options().kernel_caps().ok();
        opts.wide_patterns = caps.is_some_and(|c| c.pattern_tiles());
        opts.int8_depthwise = caps.is_some_and(|c| c.avx2);
        opts.int8_dot = match caps {
            Some(c) if c.vnni => kerf_passes::Int8Dot::Bytes,
            Some(c) if c.dotprod => kerf_passes::Int8Dot::Sdot,
            Some(c) if c.avx2 => kerf_passes::Int8Dot::ExactBytes,
            _ => kerf_passes::Int8Dot::Pairs,
        };
        let (graph, groups) = kerf_passes::optimize(g, &opts)?;
        let notes = int8_notes(&graph, opts.int8_dot);
        Ok(Optimized { graph, groups, compression: None, notes })
    }

    /// The compression plan as the compress stage runs it: what the
    /// session was given, with what it leaves open that depends on the
    /// target decided for the target:
    /// - `byte_pairs`: exact where the integer conv multiplies byte pairs
    ///   through AVX2's saturating `vpmaddubsw` (x86-64 with AVX2 and the
    ///   micro-kernels, no VNNI, integer kernels on), so 8-bit codes take
    ///   the byte tile there;
    /// - `residual`: int8 where the integer convs store u8 and read u8
    ///   residuals in their assembled tiles (x86-64 with AVX2 and the
    ///   micro-kernels, integer kernels on), so no f32 tensor passes
    ///   between residual blocks; f32 elsewhere, where the residual's
    ///   quantiser would be one more pass.
    pub fn plan(&self) -> Option<Plan> {
        let mut plan = self.plan.clone()?;
        let tiles = self.micro_kernels && self.passes.int8_kernels;
        let caps = self.compile_options().kernel_caps().ok();
        if plan.default.byte_pairs.is_none() {
            let saturating = tiles && caps.is_some_and(|c| c.avx2 && !c.vnni);
            let pairs = if saturating { kerf_compress::BytePairs::Exact } else { kerf_compress::BytePairs::Any };
            plan.default.byte_pairs = Some(pairs);
        }
        if plan.default.residual.is_none() {
            let u8_residuals = tiles && caps.is_some_and(|c| c.avx2);
            let residual = if u8_residuals { kerf_compress::Precision::Int8 } else { kerf_compress::Precision::F32 };
            plan.default.residual = Some(residual);
        }
        Some(plan)
    }

    /// Stage `compress`: the plan's lossy transforms, calibrated on the
    /// session's samples (see [`Session::compression`]); `None` without a
    /// plan.
    pub fn compress(&self, g: &Graph) -> Result<Option<(Graph, kerf_compress::Report)>, PipelineError> {
        let Some(plan) = self.plan() else { return Ok(None) };
        let samples = if self.calib.is_empty() { Vec::new() } else { crate::compression::samples_for(g, &self.calib)? };
        let calib = kerf_compress::Calibration { samples };
        let hook = self.progress.clone();
        let mut report_progress = |done: usize, total: usize, what: &str| {
            if let Some(h) = &hook {
                (h.0)(done, total, what);
            }
        };
        let (cg, report) = kerf_compress::compress_with_progress(
            g,
            &plan,
            &calib,
            &mut crate::compression::JitProbe { memo: self.probe_memo.clone() },
            &mut report_progress,
        )?;
        Ok(Some((cg, report)))
    }

    /// Import, compress when a plan is set, then optimize unless turned
    /// off; the graph and the stages' reports.
    pub fn graph(&self) -> Result<Optimized, PipelineError> {
        self.graph_at(if self.optimize { Stage::Optimize } else { Stage::Compress })
    }

    /// The graph after `stage`, with the reports of the stages that ran.
    pub fn graph_at(&self, stage: Stage) -> Result<Optimized, PipelineError> {
        let g = self.import()?;
        if stage == Stage::Import {
            return Ok(Optimized { graph: g, groups: Vec::new(), compression: None, notes: Vec::new() });
        }
        let (g, compression) = match self.compress(&g)? {
            Some((g, r)) => (g, Some(r)),
            None => (g, None),
        };
        if stage == Stage::Compress {
            return Ok(Optimized { graph: g, groups: Vec::new(), compression, notes: Vec::new() });
        }
        let mut o = self.optimize(&g)?;
        o.compression = compression;
        Ok(o)
    }

    /// Stage `compile`: object, header and report for the session's target.
    /// The header's comment names the inputs bound at compile time and the
    /// compression plan.
    pub fn compile(&self, g: &Graph) -> Result<Artifact, PipelineError> {
        let mut opts = self.compile_options();
        opts.notes = self.header_notes(g);
        kerf_targets::compile_object(g, &opts)
            .map_err(|source| PipelineError::Compile { path: self.model.clone(), source })
    }

    /// What a user of the compiled model must know about how it was made.
    fn header_notes(&self, g: &Graph) -> Vec<String> {
        let mut notes: Vec<String> = self
            .bound
            .iter()
            .map(|(n, _)| n.clone())
            .chain(self.auto_bound(g))
            .map(|n| format!("Model input '{n}' was bound to a constant at compile time: it is not an input here."))
            .collect();
        if let Some(plan) = self.plan() {
            let text = plan.to_toml().replace('\n', " ").replace("  ", " ");
            notes.push(format!("Compressed with the plan: {}", text.trim()));
        }
        notes
    }

    /// Stage `jit`: the same code generation, loaded into this process. The
    /// session's target must be the host.
    pub fn jit(&self, g: &Graph) -> Result<JitModel, PipelineError> {
        kerf_targets::jit_compile(g, &self.compile_options())
            .map_err(|source| PipelineError::Compile { path: self.model.clone(), source })
    }

    /// Like [`Session::jit`], with `hook(i)` called before kernel `i` and
    /// after the last one (per-kernel profiling).
    pub fn jit_profiled(&self, g: &Graph, hook: ProfileHook) -> Result<JitModel, PipelineError> {
        kerf_targets::jit::jit_compile_profiled(g, &self.compile_options(), hook)
            .map_err(|source| PipelineError::Compile { path: self.model.clone(), source })
    }
}

/// The host CPU's model name and feature flags (`/proc/cpuinfo`), or the
/// architecture where those cannot be read.
fn host_cpu_name() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let line = |key: &str| info.lines().find(|l| l.starts_with(key)).unwrap_or("").to_string();
    format!("{} {} | {} | {}", std::env::consts::ARCH, line("model name"), line("flags"), line("Features"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testsuite/fixtures/models/digits_cnn/model.onnx")
    }

    #[test]
    fn repeated_input_shape_is_an_error_on_every_path() {
        let s = Session::new(digits()).input_shape("x", &[1]).input_shape("x", &[2]);
        let e = s.import().unwrap_err().to_string();
        assert!(e.contains("--input-shape given twice for 'x'"), "{e}");
        let e = s.graph().unwrap_err().to_string();
        assert!(e.contains("given twice"), "{e}");
    }

    #[test]
    fn graph_is_named_by_the_symbol_name() {
        let s = Session::new(digits());
        assert_eq!(s.import().unwrap().name, "digits_cnn");
        assert_eq!(s.clone().name("m1").import().unwrap().name, "m1");
        let e = s.name("not an id").import().unwrap_err().to_string();
        assert!(e.contains("not a C identifier"), "{e}");
    }

    #[test]
    fn limit_stops_are_warnings() {
        let s = Session::new(digits()).pass_options(PassOptions { iter_limit: 1, ..PassOptions::default() });
        let o = s.graph().unwrap();
        let w = o.warnings();
        assert!(!w.is_empty(), "{:?}", o.groups);
        assert!(w[0].contains("iteration limit"), "{w:?}");
        assert!(Session::new(digits()).graph().unwrap().warnings().is_empty());
    }

    /// `byte_pairs` left open by a plan is the target's: exact where the
    /// integer conv's byte products saturate (AVX2 without VNNI), free
    /// elsewhere; a plan that says is obeyed everywhere.
    #[test]
    fn the_target_decides_open_byte_pairs() {
        use kerf_compress::BytePairs;
        let int8 = || Plan::parse("[default]\nquant = \"int8\"\n").unwrap();
        let pairs = |triple: &str, cpu: &str, plan: Plan| {
            let s = Session::new(digits()).target(Target::parse(triple, cpu).unwrap()).compression(plan, Vec::new());
            s.plan().and_then(|p| p.default.byte_pairs)
        };
        let x86 = "x86_64-unknown-linux-gnu";
        assert_eq!(pairs(x86, "haswell", int8()), Some(BytePairs::Exact));
        assert_eq!(pairs(x86, "sapphirerapids", int8()), Some(BytePairs::Any));
        assert_eq!(pairs(x86, "baseline", int8()), Some(BytePairs::Any));
        assert_eq!(pairs("aarch64-unknown-linux-gnu", "baseline", int8()), Some(BytePairs::Any));
        let any = Plan::parse("[default]\nquant = \"int8\"\nbyte_pairs = \"any\"\n").unwrap();
        assert_eq!(pairs(x86, "haswell", any), Some(BytePairs::Any));
        // no byte tile to feed: integer kernels off, or no micro-kernels
        let s = Session::new(digits()).target(Target::parse(x86, "haswell").unwrap()).compression(int8(), Vec::new());
        let off = s.clone().pass_options(PassOptions { int8_kernels: false, ..PassOptions::default() });
        assert_eq!(off.plan().and_then(|p| p.default.byte_pairs), Some(BytePairs::Any));
        assert_eq!(s.micro_kernels(false).plan().and_then(|p| p.default.byte_pairs), Some(BytePairs::Any));
        assert!(Session::new(digits()).plan().is_none());
    }

    /// `residual` left open by a plan is the target's: int8 where the
    /// integer convs' assembled x86 tiles read and store u8 (AVX2, VNNI),
    /// f32 elsewhere (baseline x86, AArch64, no micro-kernels); a plan that
    /// says is obeyed everywhere.
    #[test]
    fn the_target_decides_open_residuals() {
        use kerf_compress::Precision;
        let plan = |extra: &str| Plan::parse(&format!("[default]\nquant = \"int8\"\n{extra}")).unwrap();
        let residual = |triple: &str, cpu: &str, plan: Plan| {
            let s = Session::new(digits()).target(Target::parse(triple, cpu).unwrap()).compression(plan, Vec::new());
            s.plan().and_then(|p| p.default.residual)
        };
        let x86 = "x86_64-unknown-linux-gnu";
        assert_eq!(residual(x86, "haswell", plan("")), Some(Precision::Int8));
        assert_eq!(residual(x86, "sapphirerapids", plan("")), Some(Precision::Int8));
        assert_eq!(residual(x86, "baseline", plan("")), Some(Precision::F32));
        assert_eq!(residual("aarch64-unknown-linux-gnu", "dotprod", plan("")), Some(Precision::F32));
        assert_eq!(residual(x86, "haswell", plan("residual = \"f32\"\n")), Some(Precision::F32));
        assert_eq!(residual(x86, "baseline", plan("residual = \"int8\"\n")), Some(Precision::Int8));
        let s = Session::new(digits()).target(Target::parse(x86, "haswell").unwrap()).compression(plan(""), Vec::new());
        assert_eq!(s.micro_kernels(false).plan().and_then(|p| p.default.residual), Some(Precision::F32));
    }
}
