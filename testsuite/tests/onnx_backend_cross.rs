//! The cross-ISA leg of the ONNX backend conformance suite.
//!
//! Every node case that passes on the host (`pass` in
//! `testsuite/conformance/manifest.txt`, which `tests/onnx_backend.rs` keeps
//! true) and whose graph uses only ops of the nine public models
//! (`testsuite/conformance/cross_isa_ops.txt`, derived by
//! `testsuite/scripts/model_ops.py`) is imported and optimised exactly as the
//! host run does it (same binding of shape inputs), compiled to an object for
//! aarch64, for riscv64 (rv64gc, the non-SIMD path) and for riscv64 with
//! `v` (the 128-bit vector kernels), all objects of one
//! ISA linked into one program with `testsuite/c/harness.c` by the cross GCC
//! (`-static`) and run in one process under qemu-user. Outputs are compared
//! with the case's reference `.pb` with the conformance tolerances
//! (`kerf_testsuite::compare`, via `pipeline::compare_outputs`).
//!
//! Any case failing on an ISA fails that ISA's test. A missing cross
//! compiler or qemu skips with a message, and fails when
//! `KERF_REQUIRE_CROSS=1` (CI and `testsuite/run-all.sh` set it).
//!
//! ```text
//! cargo test -p kerf-testsuite --test onnx_backend_cross -- --nocapture
//! ```
//!
//! `KERF_ONNX_CASES` points at another case root (as for `onnx_backend`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use e2e::Target;
use kerf_testsuite::cases::{discover, Case};
use kerf_testsuite::conformance::pipeline::{self, Config, Prepared};
use kerf_testsuite::manifest::{Expect, Manifest};

/// With the default case root, at least this many cases must qualify: a
/// filter or manifest bug that selects nothing must not pass silently.
const MIN_CASES: usize = 150;

fn case_root() -> (PathBuf, bool) {
    match std::env::var_os("KERF_ONNX_CASES") {
        Some(p) => (PathBuf::from(p), false),
        None => (e2e::testsuite_dir().join("generated/onnx"), true),
    }
}

/// The op set of the public models (comments and blank lines skipped).
fn model_ops() -> BTreeSet<String> {
    let p = e2e::testsuite_dir().join("conformance/cross_isa_ops.txt");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let ops: BTreeSet<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect();
    assert!(ops.len() >= 10, "{}: only {} ops", p.display(), ops.len());
    ops
}

/// The C symbol prefix of a case.
fn symbol(case: &Case) -> String {
    format!("nc_{}", kerf_pipeline::c_identifier(case.id.trim_start_matches("node/")))
}

/// The selected cases, imported and optimised once for both ISAs.
fn prepared() -> &'static Vec<(Case, Prepared)> {
    static CASES: OnceLock<Vec<(Case, Prepared)>> = OnceLock::new();
    CASES.get_or_init(|| {
        let t = Instant::now();
        let (root, default_root) = case_root();
        let cases = discover(&root).unwrap_or_else(|e| panic!("{e}"));
        let manifest_path = e2e::testsuite_dir().join("conformance/manifest.txt");
        let text = std::fs::read_to_string(&manifest_path).unwrap_or_else(|e| panic!("{e}"));
        let manifest = Manifest::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", manifest_path.display()));
        let ops = model_ops();
        let mut out = Vec::new();
        let mut failed = Vec::new();
        for c in cases {
            if c.suite != "node"
                || c.info.ops.is_empty()
                || !c.info.ops.iter().all(|o| ops.contains(o))
                || manifest.cases.get(&c.id) != Some(&Expect::Pass)
            {
                continue;
            }
            match pipeline::prepare(&c, &Config::default()) {
                Ok(p) => out.push((c, p)),
                // The manifest says it passes on the host, so it must import.
                Err(e) => failed.push(format!("{}: {e}", c.id)),
            }
        }
        assert!(failed.is_empty(), "cases passing on the host failed to import:\n{}", failed.join("\n"));
        if default_root {
            assert!(out.len() >= MIN_CASES, "only {} node cases selected (expected >= {MIN_CASES})", out.len());
        }
        eprintln!(
            "onnx_backend_cross: {} node cases selected, imported in {:.1} s",
            out.len(),
            t.elapsed().as_secs_f64()
        );
        out
    })
}

fn run_isa(t: &Target) {
    if !e2e::tools_present(t) {
        return;
    }
    let cases = prepared();
    let start = Instant::now();
    let scratch = e2e::scratch_dir(&format!("onnx_backend_cross-{}", t.label));
    let mut failures = Vec::new();
    let mut objects = Vec::new();
    let mut runnable = Vec::new();
    let mut compiled = Vec::new();
    for (c, p) in cases {
        let opts = kerf_targets::CompileOptions::new(t.target(), &symbol(c));
        match kerf_targets::compile_object(&p.graph, &opts) {
            Ok(art) => {
                let dir = scratch.join(symbol(c));
                e2e::write_inputs(&dir, &p.inputs).unwrap_or_else(|e| panic!("{e}"));
                objects.push((symbol(c), art.object));
                runnable.push((symbol(c), dir.clone()));
                compiled.push((c, p, dir));
            }
            Err(e) => failures.push(format!("{}: compile: {e}", c.id)),
        }
    }
    let compiled_at = start.elapsed().as_secs_f64();
    let exe = e2e::link_harness(t, &scratch, &objects).unwrap_or_else(|e| panic!("{e}"));
    let linked_at = start.elapsed().as_secs_f64();
    let ran: std::collections::BTreeMap<String, Result<(), String>> =
        e2e::run_harness(t, &exe, &runnable).into_iter().collect();
    let mut passed = 0;
    let mut perturbed_checked = false;
    for (c, p, dir) in compiled {
        let r = match ran.get(&symbol(c)) {
            Some(Ok(())) => e2e::read_outputs(&p.graph, dir.as_path())
                .and_then(|got| pipeline::compare_outputs(c, &p.expected, &got)),
            Some(Err(m)) => Err(m.clone()),
            None => Err("the harness reported nothing".into()),
        };
        match r {
            Ok(()) => {
                passed += 1;
                if !perturbed_checked {
                    perturbed_checked = perturbed_output_fails(c, p, &dir);
                }
            }
            Err(m) => failures.push(format!("{}: {m}", c.id)),
        }
    }
    assert!(perturbed_checked || cases.is_empty(), "{}: no passing f32 case to check the comparison with", t.label);
    eprintln!(
        "onnx_backend_cross {}: {} cases, {passed} pass, {} fail; compile {compiled_at:.1} s, link {:.1} s, run+compare {:.1} s",
        t.label,
        cases.len(),
        failures.len(),
        linked_at - compiled_at,
        start.elapsed().as_secs_f64() - linked_at
    );
    assert!(failures.is_empty(), "{}: {} node cases failed:\n{}", t.label, failures.len(), failures.join("\n"));
}

/// The comparison can fail: flipping an exponent bit of the first element of
/// a passing case's f32 output must make it mismatch. False when the case
/// has no non-empty f32 output.
fn perturbed_output_fails(c: &Case, p: &Prepared, dir: &std::path::Path) -> bool {
    let got = e2e::read_outputs(&p.graph, dir).unwrap();
    let Some(k) = got.iter().position(|t| t.dtype() == kerf_ir::DType::F32 && t.numel() > 0) else {
        return false;
    };
    let mut bad = got.clone();
    let mut bytes = bad[k].bytes().to_vec();
    bytes[3] ^= 0x40;
    bad[k] = kerf_ir::Tensor::from_bytes(got[k].dtype(), got[k].shape().to_vec(), bytes).unwrap();
    assert!(pipeline::compare_outputs(c, &p.expected, &bad).is_err(), "{}: a perturbed output passed", c.id);
    true
}

#[test]
fn aarch64_qemu() {
    run_isa(&e2e::AARCH64);
}

#[test]
fn riscv64_qemu() {
    run_isa(&e2e::RISCV64);
}

/// riscv64 with the V extension: Cranelift's 128-bit vector kernels.
#[test]
fn riscv64_v_qemu() {
    run_isa(&e2e::RISCV64_V);
}
