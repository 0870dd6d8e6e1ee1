//! Whole models end to end on the host: every fixture model
//! (`testsuite/fixtures/models/*`) and every generated model
//! (`testsuite/generated/*`, made by `testsuite/run-all.sh`) goes through
//! import → lossless rewrites (`kerf_pipeline::Session::graph`) → JIT (`native`
//! CPU) → one run on `input_<i>.npy`, compared with the ONNX Runtime
//! reference `output_<i>.npy`.
//!
//! Tolerance per output tensor: every element within
//! `max abs error <= 1e-4 * max|ref| + 1e-5` (ints/bools exact, same dtype
//! and shape). The per-model max abs / rel error is printed (run with
//! `--nocapture` to see it).

mod e2e;

use std::path::{Path, PathBuf};
use std::time::Instant;

/// Model folders (those holding a `model.onnx`) under `root`, sorted.
fn model_dirs(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    v.sort();
    v
}

fn run_model(dir: &Path) -> Result<e2e::Errors, String> {
    let name = kerf_pipeline::c_identifier(&dir.file_name().unwrap_or_default().to_string_lossy());
    let g = e2e::load_graph(&dir.join("model.onnx"), &name)?;
    let inputs = e2e::read_numbered(dir, "input")?;
    let want = e2e::read_numbered(dir, "output")?;
    let got = e2e::jit_run(&g, &name, &inputs)?;
    e2e::compare_all(&want, &got)
}

/// Runs every model folder under `root`; fails listing each bad model.
fn run_all(root: &Path, min_models: usize) {
    let dirs = model_dirs(root);
    assert!(
        dirs.len() >= min_models,
        "{}: found {} models, expected at least {min_models}",
        root.display(),
        dirs.len()
    );
    let mut failures = Vec::new();
    for d in &dirs {
        let name = d.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let t = Instant::now();
        match run_model(d) {
            Ok(e) => eprintln!(
                "{name}: ok, max abs err {:.3e}, max rel err (to max|ref|) {:.3e}, {:.2} s",
                e.max_abs,
                e.max_rel,
                t.elapsed().as_secs_f64()
            ),
            Err(m) => {
                eprintln!("{name}: FAILED: {m}");
                failures.push(format!("{name}: {m}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} models failed:\n{}", failures.len(), dirs.len(), failures.join("\n"));
}

#[test]
fn fixture_models_match_onnx_runtime() {
    run_all(&e2e::testsuite_dir().join("fixtures/models"), 6);
}

#[test]
fn generated_models_match_onnx_runtime() {
    let root = e2e::testsuite_dir().join("generated");
    assert!(
        root.join("resnet18/model.onnx").is_file(),
        "{} has no generated models: run testsuite/run-all.sh (or \
         `python testsuite/scripts/make_models.py testsuite/generated` in the venv of testsuite/requirements.txt)",
        root.display()
    );
    run_all(&root, 11);
}
