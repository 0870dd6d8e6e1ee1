#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The C threading path on every ISA: models compiled ahead of time, linked
//! with the C harness and the pthread pool (`runtime/c/kerf_pool.c`), run
//! once single-threaded and once with `KERF_THREADS=3` (x86-64 natively,
//! aarch64, riscv64 and riscv64 `v` under qemu-user). The outputs must be bit-identical,
//! and the models whose kernels are split must really have gone through
//! `parallel_for` (the harness reports the count on stderr).
//!
//! Models: large reductions (split by `Kernel::parallel_range`) written in
//! the IR text format, the generated mobilenet_v2 (its convolutions are
//! split), plus the fixture models (whatever of their kernels are split).

mod e2e;

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::Target;
use kerf_ir::{Graph, Tensor};

const FIXTURES: [&str; 4] = ["digits_cnn", "ds_cnn_kws", "gru_kws", "tiny_transformer"];

/// Models that must be split (name, graph, inputs).
fn split_models() -> Vec<(String, Graph, Vec<Tensor>)> {
    let xs = |n: usize| -> Vec<f32> { (0..n).map(|i| (((i * 7919) % 97) as f32 / 24.0) - 2.0).collect() };
    let mut v = Vec::new();
    for (name, op, out) in [
        ("rsum", "ReduceSum{axes=[1], keepdims=true}", "f32[40,1,64]"),
        ("rmax", "ReduceMax{axes=[2], keepdims=false}", "f32[40,300]"),
    ] {
        let text = format!(
            "graph \"{name}\"\n  input %0 \"x\": f32[40,300,64]\n  %1 = {op}(%0): {out} @\"r\"\n  output \"y\" = %1\n"
        );
        let g = kerf_ir::text::parse(&text).unwrap();
        let x = Tensor::from_f32(vec![40, 300, 64], &xs(40 * 300 * 64)).unwrap();
        v.push((name.to_string(), g, vec![x]));
    }
    v
}

/// Runs the harness on all cases with the given thread setting; returns
/// its stdout and stderr.
fn run(t: &Target, exe: &Path, cases: &[(String, PathBuf)], threads: Option<&str>) -> (String, String) {
    let mut cmd = match t.runner.split_first() {
        Some((p, a)) => {
            let mut c = Command::new(p);
            c.args(a).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    for (n, d) in cases {
        cmd.arg(n).arg(d);
    }
    match threads {
        Some(n) => cmd.env("KERF_THREADS", n),
        None => cmd.env_remove("KERF_THREADS"),
    };
    let out = cmd.output().unwrap_or_else(|e| panic!("{}: cannot run the harness: {e}", t.label));
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn read_outs(dir: &Path, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| std::fs::read(dir.join(format!("out{i}.bin"))).unwrap()).collect()
}

fn run_target(t: &Target) {
    e2e::require_tools(t);
    let scratch = e2e::scratch_dir(&format!("threads_c-{}", t.label));
    let mut models: Vec<(String, Graph, Vec<Tensor>)> = split_models();
    let ts = e2e::testsuite_dir();
    let dirs = FIXTURES
        .iter()
        .map(|m| (*m, ts.join("fixtures/models").join(m)))
        .chain(std::iter::once(("mobilenet_v2", ts.join("generated/mobilenet_v2"))));
    for (name, dir) in dirs {
        assert!(
            dir.join("model.onnx").is_file(),
            "{} is missing: run testsuite/run-all.sh (or `python testsuite/scripts/make_models.py testsuite/generated`)",
            dir.display()
        );
        let g = e2e::load_graph(&dir.join("model.onnx"), name).unwrap();
        let inputs = e2e::read_numbered(&dir, "input").unwrap();
        models.push((name.to_string(), g, inputs));
    }
    let mut objects = Vec::new();
    let mut cases = Vec::new();
    for (name, g, inputs) in &models {
        let art = kerf_targets::compile_object(g, &kerf_targets::CompileOptions::new(t.target(), name))
            .unwrap_or_else(|e| panic!("{}: {name}: {e}", t.label));
        objects.push((name.clone(), art.object));
        let d = scratch.join(name);
        e2e::write_inputs(&d, inputs).unwrap();
        cases.push((name.clone(), d));
    }
    let exe = e2e::link_harness(t, &scratch, &objects).unwrap_or_else(|e| panic!("{e}"));
    let (out, err) = run(t, &exe, &cases, None);
    assert_eq!(out.lines().filter(|l| l.starts_with("ok ")).count(), cases.len(), "{}: serial:\n{out}\n{err}", t.label);
    assert!(!err.contains("parallel_for"), "{}: no pool without KERF_THREADS: {err}", t.label);
    let serial: Vec<Vec<Vec<u8>>> =
        models.iter().zip(&cases).map(|((_, g, _), (_, d))| read_outs(d, g.outputs.len())).collect();
    for (_, d) in &cases {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap().to_string_lossy().starts_with("out") {
                std::fs::remove_file(p).unwrap();
            }
        }
    }
    let (out, err) = run(t, &exe, &cases, Some("3"));
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok ")).count(),
        cases.len(),
        "{}: 3 threads:\n{out}\n{err}",
        t.label
    );
    for (((name, g, _), (_, d)), want) in models.iter().zip(&cases).zip(&serial) {
        assert!(read_outs(d, g.outputs.len()) == *want, "{}: {name}: 3 threads differ from serial", t.label);
        let calls: u64 = err
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).and_then(|r| r.strip_suffix(" parallel_for calls")))
            .unwrap_or_else(|| panic!("{}: {name}: no count in {err}", t.label))
            .parse()
            .unwrap();
        eprintln!("{} {name}: {calls} parallel_for calls, outputs identical", t.label);
        if name.starts_with('r') || name == "mobilenet_v2" {
            assert!(calls >= 1, "{}: {name} was not split", t.label);
        }
    }
}

#[test]
fn x86_64_native() {
    run_target(&e2e::X86_64);
}

#[test]
fn aarch64_qemu() {
    run_target(&e2e::AARCH64);
}

#[test]
fn riscv64_qemu() {
    run_target(&e2e::RISCV64);
}

/// riscv64 `v`: the vector kernels' splits (4-lane panels, as AArch64's).
#[test]
fn riscv64_v_qemu() {
    run_target(&e2e::RISCV64_V);
}
