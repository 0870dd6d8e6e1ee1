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
//! | optimize | [`Session::optimize`] | the rewritten graph + one [`GroupReport`] per rule-group phase ([`Optimized`]) |
//! | compile | [`Session::compile`] | object, header and [`kerf_targets::Report`] ([`Artifact`]) |
//! | jit | [`Session::jit`] | the same code in this process ([`JitModel`], with its report) |
//! | measure | [`crate::measure::Runner`] | timed calls of a compiled model ([`crate::measure::Timing`]) |
//!
//! Contracts: options are checked once, when a stage first needs them (a
//! repeated `--input-shape` is an error, whoever calls); the graph's name is
//! the symbol name ([`Session::symbol_name`]) on every path; a rule group
//! that stops on a limit rather than saturating is reported in
//! [`Optimized::warnings`], never dropped.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use kerf_ir::Graph;
use kerf_passes::{GroupReport, PassOptions, Stop};
use kerf_targets::jit::ProfileHook;
use kerf_targets::{Artifact, CompileOptions, JitModel};

use crate::{names, PipelineError};

/// A pipeline stage whose result is a graph (what `kerf inspect --dump-ir` can show).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// As imported: ONNX semantics, constant subgraphs folded, static shapes.
    Import,
    /// After the lossless rewrite groups.
    Optimize,
}

impl Stage {
    /// Every graph stage in pipeline order.
    pub const ALL: [Stage; 2] = [Stage::Import, Stage::Optimize];

    /// The stage's name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Import => "import",
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
}

impl Optimized {
    /// One line per phase that stopped on a limit instead of saturating
    /// (the result is still correct, but possibly less optimised).
    pub fn warnings(&self) -> Vec<String> {
        self.groups.iter().filter(|r| r.stop != Stop::Saturated).map(limit_warning).collect()
    }
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
    triple: String,
    cpu: String,
    optimize: bool,
    passes: PassOptions,
}

impl Session {
    /// Host target, baseline CPU, lossless rewrites on.
    pub fn new(model: impl AsRef<Path>) -> Session {
        Session {
            model: model.as_ref().to_path_buf(),
            name: None,
            input_shapes: Vec::new(),
            triple: "host".into(),
            cpu: "baseline".into(),
            optimize: true,
            passes: PassOptions::default(),
        }
    }
    /// Prefix of the exported symbols and the graph's name (default:
    /// [`names::default_name`] of the model path). Must be a C identifier.
    pub fn name(mut self, name: &str) -> Session {
        self.name = Some(name.to_string());
        self
    }
    /// Target triple (`host` allowed) and CPU preset.
    pub fn target(mut self, triple: &str, cpu: &str) -> Session {
        self.triple = triple.to_string();
        self.cpu = cpu.to_string();
        self
    }
    /// Fixes a dynamic input's shape (giving one input twice is an error at import).
    pub fn input_shape(mut self, input: &str, dims: &[usize]) -> Session {
        self.input_shapes.push((input.to_string(), dims.to_vec()));
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
    /// The code generator's options for this session's target.
    pub fn compile_options(&self) -> CompileOptions {
        CompileOptions::new(&self.triple, &self.cpu, &self.symbol_name())
    }

    /// Stage `import`: reads and imports the model.
    pub fn import(&self) -> Result<Graph, PipelineError> {
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
        let opts = kerf_onnx::ImportOptions { input_shapes, name: Some(name), ..Default::default() };
        kerf_onnx::load_model(&self.model, &opts)
            .map_err(|source| PipelineError::Import { path: self.model.clone(), source })
    }

    /// Stage `optimize`: the lossless rewrite groups.
    pub fn optimize(&self, g: &Graph) -> Result<Optimized, PipelineError> {
        let (graph, groups) = kerf_passes::optimize(g, &self.passes)?;
        Ok(Optimized { graph, groups })
    }

    /// Import, then optimize unless turned off; the graph and the phase reports.
    pub fn graph(&self) -> Result<Optimized, PipelineError> {
        let g = self.import()?;
        if self.optimize {
            self.optimize(&g)
        } else {
            Ok(Optimized { graph: g, groups: Vec::new() })
        }
    }

    /// The graph after `stage` (its reports dropped: for dumps).
    pub fn graph_at(&self, stage: Stage) -> Result<Optimized, PipelineError> {
        let g = self.import()?;
        match stage {
            Stage::Import => Ok(Optimized { graph: g, groups: Vec::new() }),
            Stage::Optimize => self.optimize(&g),
        }
    }

    /// Stage `compile`: object, header and report for the session's target.
    pub fn compile(&self, g: &Graph) -> Result<Artifact, PipelineError> {
        kerf_targets::compile_object(g, &self.compile_options())
            .map_err(|source| PipelineError::Compile { path: self.model.clone(), source })
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
}
