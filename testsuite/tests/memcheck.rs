//! Generated code touches only the memory it owns.
//!
//! - Every public model's x86-64 object runs under valgrind memcheck
//!   (`--error-exitcode`), with the harness in its exact-size mode
//!   (`KERF_HARNESS_VALGRIND=1`: no guard slack, nothing pre-initialised), so
//!   any out-of-bounds access or read of uninitialised memory is an error;
//!   outputs are also compared with the ONNX Runtime reference.
//! - The harness's canaries (guard bytes around the arena, inputs and
//!   outputs, a poisoned arena, inputs checked unchanged) are active in every
//!   cross-ISA and op-battery run; here hand-written ABI-breaking "models"
//!   (`testsuite/c/bad_models.c`) prove that both the canaries (on all three
//!   ISAs, under qemu) and valgrind really catch such writes.
//!
//! Models: the fixture models plus the generated mobilenet_v2, resnet18 and
//! squeezenet1_1 (`testsuite/run-all.sh` makes them). Tolerance: as in
//! `e2e/mod.rs`, every element within `1e-4 * max|ref| + 1e-5`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod e2e;

use std::path::PathBuf;
use std::process::Command;

use e2e::Target;

const FIXTURES: [&str; 6] = ["digits_mlp", "digits_cnn", "ds_cnn_kws", "lstm_kws", "gru_kws", "tiny_transformer"];
const GENERATED: [&str; 3] = ["mobilenet_v2", "resnet18", "squeezenet1_1"];
const BAD: [&str; 4] = ["out_overflow", "arena_underflow", "input_write", "uninit_read"];

fn model_dirs() -> Vec<(String, PathBuf)> {
    let ts = e2e::testsuite_dir();
    let mut v: Vec<(String, PathBuf)> =
        FIXTURES.iter().map(|m| (m.to_string(), ts.join("fixtures/models").join(m))).collect();
    for m in GENERATED {
        let d = ts.join("generated").join(m);
        assert!(d.join("model.onnx").is_file(), "{} is missing: run testsuite/run-all.sh", d.display());
        v.push((m.to_string(), d));
    }
    v
}

fn require_valgrind() {
    kerf_testsuite::tools::require("memcheck", &[kerf_testsuite::tools::Tool::new("valgrind", "valgrind")]);
}

fn bad_models() -> Vec<(String, PathBuf)> {
    BAD.iter().map(|b| (b.to_string(), e2e::testsuite_dir().join("c/bad_models.c"))).collect()
}

/// Runs `exe` on `cases` under valgrind memcheck in exact-size mode; returns
/// (exit code, stdout, stderr).
fn memcheck(exe: &std::path::Path, cases: &[(String, PathBuf)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new("valgrind");
    cmd.args(["--tool=memcheck", "--error-exitcode=99", "--track-origins=no", "--quiet"]).arg(exe);
    for (n, d) in cases {
        cmd.arg(n).arg(d);
    }
    let out = cmd.env("KERF_HARNESS_VALGRIND", "1").output().expect("valgrind runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn public_models_are_clean_under_valgrind() {
    require_valgrind();
    let t = e2e::X86_64;
    let scratch = e2e::scratch_dir("memcheck-models");
    let mut objects = Vec::new();
    let mut cases = Vec::new();
    let mut checks = Vec::new();
    for (name, dir) in model_dirs() {
        let s = kerf_pipeline::Session::new(dir.join("model.onnx")).name(&name).target(t.target());
        let g = s.graph().unwrap_or_else(|e| panic!("{name}: {e}")).graph;
        let art = s.compile(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
        let inputs = e2e::read_numbered(&dir, "input").unwrap();
        let want = e2e::read_numbered(&dir, "output").unwrap();
        let case_dir = scratch.join(&name);
        e2e::write_inputs(&case_dir, &inputs).unwrap();
        objects.push((name.clone(), art.object));
        cases.push((name.clone(), case_dir.clone()));
        checks.push((name, g, want, case_dir));
    }
    let exe = e2e::link_harness(&t, &scratch, &objects).unwrap();
    // Two valgrind processes (the machine has two cores), largest models split.
    let (a, b): (Vec<_>, Vec<_>) = cases.iter().cloned().enumerate().partition(|(i, _)| i % 2 == 0);
    let halves: Vec<Vec<(String, PathBuf)>> =
        [a, b].into_iter().map(|h| h.into_iter().map(|(_, c)| c).collect()).collect();
    let results: Vec<(Option<i32>, String, String)> = std::thread::scope(|s| {
        let hs: Vec<_> = halves.iter().map(|h| s.spawn(|| memcheck(&exe, h))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (code, stdout, stderr) in &results {
        assert_eq!(*code, Some(0), "valgrind reported errors (exit {code:?}):\n{stderr}\n{stdout}");
        assert!(!stdout.contains("fail "), "{stdout}");
    }
    for (name, g, want, dir) in &checks {
        let got = e2e::read_outputs(g, dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        let err = e2e::compare_all(want, &got).unwrap_or_else(|e| panic!("{name} under valgrind: {e}"));
        eprintln!("{name}: clean under memcheck, max abs err {:.3e}", err.max_abs);
    }
}

#[test]
fn valgrind_catches_abi_breaking_code() {
    require_valgrind();
    let t = e2e::X86_64;
    let scratch = e2e::scratch_dir("memcheck-bad");
    let exe = e2e::link_harness_with(&t, &scratch, &[], &bad_models()).unwrap();
    let case_dir = scratch.join("case");
    let x = kerf_ir::Tensor::from_f32(vec![4], &[1.0, -2.0, 3.0, -4.0]).unwrap();
    e2e::write_inputs(&case_dir, &[x]).unwrap();
    for bad in ["out_overflow", "arena_underflow", "uninit_read"] {
        let (code, stdout, stderr) = memcheck(&exe, &[(bad.to_string(), case_dir.clone())]);
        assert_eq!(code, Some(99), "valgrind did not flag {bad}:\n{stderr}\n{stdout}");
    }
}

/// The canaries catch writes outside owned memory on every ISA (under qemu
/// for the foreign ones), and a real model passes through the same harness.
#[test]
fn canaries_catch_abi_breaking_code_on_every_isa() {
    for t in [e2e::X86_64, e2e::AARCH64, e2e::RISCV64] {
        canaries_on(&t);
    }
}

fn canaries_on(t: &Target) {
    e2e::require_tools(t);
    let scratch = e2e::scratch_dir(&format!("canary-{}", t.label));
    let dir = e2e::testsuite_dir().join("fixtures/models/digits_cnn");
    let s = kerf_pipeline::Session::new(dir.join("model.onnx")).name("digits_cnn").target(t.target());
    let g = s.graph().unwrap().graph;
    let art = s.compile(&g).unwrap();
    let exe = e2e::link_harness_with(t, &scratch, &[("digits_cnn".to_string(), art.object)], &bad_models()).unwrap();
    let real_dir = scratch.join("digits_cnn");
    e2e::write_inputs(&real_dir, &e2e::read_numbered(&dir, "input").unwrap()).unwrap();
    let bad_dir = scratch.join("bad");
    e2e::write_inputs(&bad_dir, &[kerf_ir::Tensor::from_f32(vec![4], &[1.0, 2.0, 3.0, 4.0]).unwrap()]).unwrap();
    let mut cases = vec![("digits_cnn".to_string(), real_dir.clone())];
    for bad in ["out_overflow", "arena_underflow", "input_write"] {
        cases.push((bad.to_string(), bad_dir.clone()));
    }
    let results: std::collections::BTreeMap<String, Result<(), String>> =
        e2e::run_harness(t, &exe, &cases).into_iter().collect();
    assert_eq!(results.get("digits_cnn"), Some(&Ok(())), "{}: {results:?}", t.label);
    let got = e2e::read_outputs(&g, &real_dir).unwrap();
    e2e::compare_all(&e2e::read_numbered(&dir, "output").unwrap(), &got).unwrap();
    for (bad, needle) in [
        ("out_overflow", "canary after output 0"),
        ("arena_underflow", "canary before the arena"),
        ("input_write", "input 0 ('x') was modified"),
    ] {
        match results.get(bad) {
            Some(Err(m)) => assert!(m.contains(needle), "{}: {bad}: '{m}' lacks '{needle}'", t.label),
            other => panic!("{}: {bad} was not caught: {other:?}", t.label),
        }
    }
}
