//! One case through kerf: read the test data, import, optimise, execute,
//! compare. Panics anywhere in kerf are caught and reported as
//! [`Status::Panic`] with their message and location.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Once;
use std::time::Instant;

use kerf_ir::{Graph, Tensor};
use kerf_onnx::{ImportError, ImportOptions};
use serde::{Deserialize, Serialize};

use super::classify;
use super::exec::{execute, Backend};
use crate::cases::Case;
use crate::compare::{compare, FloatTolerance};

/// How cases are run.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub backend: Backend,
    /// Run `kerf_passes::optimize` between import and execution.
    pub passes: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config { backend: Backend::Jit, passes: true }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Pass,
    Fail,
    /// kerf panicked (caught).
    Panic,
    /// The worker process died (e.g. generated code crashed).
    Crash,
    /// The case did not finish in time.
    Timeout,
}

impl Status {
    /// Panics, crashes and timeouts are bugs whatever the manifest says.
    pub fn is_abnormal(self) -> bool {
        matches!(self, Status::Panic | Status::Crash | Status::Timeout)
    }
}

/// The result of one case.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    pub status: Status,
    /// Reason tag; empty on pass. `panic`, `crash`, `timeout` for those.
    pub tag: String,
    pub detail: String,
    pub millis: u64,
    /// Graph inputs bound to their test-data values at compile time
    /// (`ImportOptions::constant_inputs`), in binding order.
    #[serde(default)]
    pub bound: Vec<String>,
}

impl Outcome {
    pub fn abnormal(status: Status, detail: String, millis: u64) -> Outcome {
        let tag = match status {
            Status::Crash => "crash",
            Status::Timeout => "timeout",
            _ => "panic",
        };
        Outcome { status, tag: tag.into(), detail, millis, bound: Vec::new() }
    }
}

struct Failure {
    tag: String,
    detail: String,
}

/// Cases whose reference outputs the ONNX case definition types in by hand,
/// rounded to 4 significant digits: they get ONNX's own rtol of 1e-3. The
/// list (with why each is there) is `conformance/rounded_references.txt`,
/// which `scripts/cli_conformance.py` reads too.
fn rounded_reference(case: &str) -> bool {
    include_str!("../../conformance/rounded_references.txt")
        .lines()
        .map(str::trim)
        .any(|l| !l.starts_with('#') && l == case)
}

fn fail(tag: impl Into<String>, detail: impl Into<String>) -> Failure {
    Failure { tag: tag.into(), detail: detail.into() }
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the panic hook (once per process) with one that records the
/// message and location for [`run_case`] instead of printing it.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "non-string panic payload".to_string()
            };
            let loc = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{loc}")));
        }));
    });
}

/// Runs one case; never panics.
pub fn run_case(case: &Case, cfg: &Config) -> Outcome {
    install_panic_hook();
    let t0 = Instant::now();
    let mut bound = Vec::new();
    let r = catch_unwind(AssertUnwindSafe(|| run_stages(case, cfg, &mut bound)));
    let millis = t0.elapsed().as_millis() as u64;
    match r {
        Ok(Ok(())) => Outcome { status: Status::Pass, tag: String::new(), detail: String::new(), millis, bound },
        Ok(Err(f)) => {
            // The case's own nature outranks the stage that happened to fail.
            let tag = classify::structural_tag(&case.info).unwrap_or(f.tag);
            Outcome { status: Status::Fail, tag, detail: f.detail, millis, bound }
        }
        Err(_) => {
            let detail = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| "panic".into());
            Outcome::abnormal(Status::Panic, detail, millis)
        }
    }
}

/// `<dir>/<prefix>_0.pb`, `_1.pb`, ... while they exist.
fn numbered(dir: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    (0..).map(|i| dir.join(format!("{prefix}_{i}.pb"))).take_while(|p| p.is_file()).collect()
}

fn read_tensors(dir: &Path, prefix: &str) -> Result<Vec<(String, Tensor)>, Failure> {
    numbered(dir, prefix)
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).map_err(|e| fail("data", format!("{}: {e}", p.display())))?;
            kerf_onnx::read_tensor_proto(&bytes)
                .map_err(|e| fail(classify::data_tag(&e), format!("{}: {e}", p.display())))
        })
        .collect()
}

/// A case's test data: graph inputs and reference outputs as tensors, with
/// sequence and optional values flattened into the tensors inside
/// (`kerf_onnx::IoValue::leaves`: `name`, `name[i]`), and the static types
/// of the structured inputs (`ImportOptions::structured_inputs`).
struct CaseIo {
    inputs: Vec<(String, Tensor)>,
    expected: Vec<(String, Tensor)>,
    structured: BTreeMap<String, kerf_onnx::IoType>,
    /// Names of the flattened tensors of structured inputs (never bound).
    leaves: Vec<String>,
}

fn read_case_io(case: &Case) -> Result<CaseIo, Failure> {
    let data = case.data_set();
    let kinds = kerf_onnx::model_io_kinds(&case.model()).ok();
    let structured_model = kinds.as_ref().is_some_and(|(i, o)| {
        i.iter().chain(o).any(|(_, k)| k.as_ref().is_some_and(|k| *k != kerf_onnx::IoKind::Tensor))
    });
    let (Some((in_kinds, out_kinds)), true) = (kinds, structured_model) else {
        return Ok(CaseIo {
            inputs: read_tensors(&data, "input")?,
            expected: read_tensors(&data, "output")?,
            structured: BTreeMap::new(),
            leaves: Vec::new(),
        });
    };
    let mut io = CaseIo { inputs: Vec::new(), expected: Vec::new(), structured: BTreeMap::new(), leaves: Vec::new() };
    for (prefix, kinds, is_input) in [("input", &in_kinds, true), ("output", &out_kinds, false)] {
        let files = numbered(&data, prefix);
        if files.len() != kinds.len() {
            return Err(fail("data", format!("{} {prefix} files for {} graph {prefix}s", files.len(), kinds.len())));
        }
        for (p, (name, kind)) in files.iter().zip(kinds) {
            let bytes = std::fs::read(p).map_err(|e| fail("data", format!("{}: {e}", p.display())))?;
            let kind = kind.clone().unwrap_or(kerf_onnx::IoKind::Tensor);
            let v = kerf_onnx::read_value_proto(&bytes, &kind)
                .map_err(|e| fail(classify::data_tag(&e), format!("{}: {e}", p.display())))?;
            let leaves = v.leaves(name);
            if is_input {
                if kind != kerf_onnx::IoKind::Tensor {
                    io.structured.insert(name.clone(), v.io_type());
                    io.leaves.extend(leaves.iter().map(|(n, _)| n.clone()));
                }
                io.inputs.extend(leaves);
            } else {
                io.expected.extend(leaves);
            }
        }
    }
    Ok(io)
}

/// At most this many inputs are bound per case (each binding is one import).
const MAX_BINDINGS: usize = 8;

/// Imports the case, binding graph inputs to their test-data values while
/// the frontend reports one it needs constant
/// ([`ImportError::NonConstantInput`] naming a graph input). This is the
/// static-shape specialisation onnx2c-style compilers apply (and what
/// `--input-shape` does for shapes): only inputs the frontend asks for are
/// bound, never the data inputs of an op, and every binding is recorded in
/// the outcome (and so in the manifest line). Bound inputs are removed from
/// `inputs`.
fn import_binding(case: &Case, io: &mut CaseIo, bound: &mut Vec<String>) -> Result<Graph, Failure> {
    // Shapes from the data make symbolic input dims concrete, as a user
    // compiling for a fixed shape would (`--input-shape`).
    let mut opts = ImportOptions { structured_inputs: io.structured.clone(), ..ImportOptions::default() };
    let leaves = io.leaves.clone();
    let inputs = &mut io.inputs;
    for (name, t) in inputs.iter() {
        if !name.is_empty() && !leaves.contains(name) {
            opts.input_shapes.insert(name.clone(), t.shape().to_vec());
        }
    }
    loop {
        match kerf_onnx::load_model(&case.model(), &opts) {
            Ok(g) => {
                inputs.retain(|(name, _)| !bound.contains(name));
                return Ok(g);
            }
            Err(ImportError::NonConstantInput { value, .. })
                if bound.len() < MAX_BINDINGS
                    && !bound.contains(&value)
                    && !leaves.contains(&value)
                    && inputs.iter().any(|(name, _)| !name.is_empty() && *name == value) =>
            {
                if let Some((_, t)) = inputs.iter().find(|(name, _)| *name == value) {
                    opts.constant_inputs.insert(value.clone(), t.clone());
                }
                bound.push(value);
            }
            Err(e) => return Err(fail(classify::import_tag(&e), format!("import: {e}"))),
        }
    }
}

fn run_stages(case: &Case, cfg: &Config, bound: &mut Vec<String>) -> Result<(), Failure> {
    let mut io = read_case_io(case)?;
    let imported = import_binding(case, &mut io, bound)?;
    let (inputs, expected) = (io.inputs, io.expected);
    check_inputs(&imported, &inputs)?;

    let graph = if cfg.passes {
        kerf_passes::optimize(&imported, &kerf_passes::PassOptions::default())
            .map_err(|e| fail("passes", format!("optimize: {e}")))?
            .0
    } else {
        imported.clone()
    };

    let input_tensors: Vec<Tensor> = inputs.into_iter().map(|(_, t)| t).collect();
    let actual = execute(cfg.backend, &graph, &input_tensors)
        .map_err(|e| fail(classify::exec_tag(&e), format!("{}: {e}", cfg.backend.name())))?;
    let problems = check_outputs(case, &expected, &actual)?;
    if problems.is_empty() {
        return Ok(());
    }
    // Triage hint (detail only, the tag stays `mismatch`): does the graph
    // as imported, without the e-graph passes, give the right answer?
    let mut detail = problems.join("; ");
    if cfg.passes {
        let hint = match execute(cfg.backend, &imported, &input_tensors) {
            Ok(raw) => match check_outputs(case, &expected, &raw) {
                Ok(p) if p.is_empty() => "without the passes it matches: suspect kerf-passes",
                _ => "without the passes it mismatches too",
            },
            Err(_) => "without the passes it does not run",
        };
        detail = format!("{detail} [{hint}]");
    }
    Err(fail("mismatch", detail))
}

/// A case imported (inputs bound as the conformance run binds them) and
/// optimised, ready to compile for any target: what the cross-ISA leg
/// (`tests/onnx_backend_cross.rs`) runs.
pub struct Prepared {
    pub graph: Graph,
    /// One tensor per graph input (bound inputs removed).
    pub inputs: Vec<Tensor>,
    /// The reference outputs, named.
    pub expected: Vec<(String, Tensor)>,
    /// Graph inputs bound to their test-data values.
    pub bound: Vec<String>,
}

/// Reads the case's data, imports it exactly as [`run_case`] does (same
/// binding of shape inputs) and runs the passes when `cfg.passes`.
pub fn prepare(case: &Case, cfg: &Config) -> Result<Prepared, String> {
    let mut io = read_case_io(case).map_err(|f| f.detail)?;
    let mut bound = Vec::new();
    let imported = import_binding(case, &mut io, &mut bound).map_err(|f| f.detail)?;
    let (inputs, expected) = (io.inputs, io.expected);
    check_inputs(&imported, &inputs).map_err(|f| f.detail)?;
    let graph = if cfg.passes {
        kerf_passes::optimize(&imported, &kerf_passes::PassOptions::default()).map_err(|e| format!("optimize: {e}"))?.0
    } else {
        imported
    };
    Ok(Prepared { graph, inputs: inputs.into_iter().map(|(_, t)| t).collect(), expected, bound })
}

/// Compares outputs computed elsewhere (e.g. under qemu) with the case's
/// references, with the same tolerances as the conformance run.
pub fn compare_outputs(case: &Case, expected: &[(String, Tensor)], actual: &[Tensor]) -> Result<(), String> {
    let problems = check_outputs(case, expected, actual).map_err(|f| f.detail)?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Compares every output; returns one message per mismatching output.
fn check_outputs(case: &Case, expected: &[(String, Tensor)], actual: &[Tensor]) -> Result<Vec<String>, Failure> {
    if actual.len() != expected.len() {
        return Err(fail(
            "io-mismatch",
            format!("graph has {} outputs, the test data {}", actual.len(), expected.len()),
        ));
    }
    let mut problems = Vec::new();
    let rounded = rounded_reference(&case.id);
    for (i, ((name, want), got)) in expected.iter().zip(actual).enumerate() {
        let mut tol = FloatTolerance::default_for(want.dtype()).loosened(case.info.rtol, case.info.atol);
        if rounded {
            tol = tol.loosened(Some(1e-3), None);
        }
        if let Err(m) = compare(want, got, tol) {
            problems.push(format!("output {i} '{name}': {m}"));
        }
    }
    Ok(problems)
}

fn check_inputs(g: &Graph, inputs: &[(String, Tensor)]) -> Result<(), Failure> {
    if g.inputs.len() != inputs.len() {
        let names: Vec<&str> = g.inputs.iter().map(|&v| g.value(v).name.as_str()).collect();
        return Err(fail(
            "io-mismatch",
            format!("graph has {} inputs ({}), the test data {}", g.inputs.len(), names.join(", "), inputs.len()),
        ));
    }
    let mut bad = BTreeMap::new();
    for (i, (&v, (name, t))) in g.inputs.iter().zip(inputs).enumerate() {
        let ty = g.ty(v);
        if ty.dtype != t.dtype() || ty.shape != t.shape() {
            bad.insert(i, format!("input {i} '{name}' is {}{:?}, the graph expects {ty}", t.dtype(), t.shape()));
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(fail("io-mismatch", bad.into_values().collect::<Vec<_>>().join("; ")))
    }
}
