//! Regression tests for what the fuzzers (`fuzz/`, see docs/fuzzing.md)
//! found. Each input under `fixtures/malformed/fuzz-<target>-<n>.onnx` is
//! the file libFuzzer saved; it goes through the same steps as its fuzz
//! target and must end in a clean error (or a clean success), never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

mod hardening_common;

use std::path::{Path, PathBuf};

use hardening_common::kerf_limited;
use kerf_onnx::{ImportError, ImportOptions};

fn malformed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/malformed")
}

/// Why a pipeline run stopped.
#[derive(Debug)]
#[allow(dead_code)] // the payloads are read through Debug in failure messages
enum Outcome {
    Import(ImportError),
    Passes(kerf_passes::PassError),
    Target(kerf_targets::TargetError),
    Compiled(kerf_targets::Artifact),
}

/// The `pipeline` fuzz target's steps: import, optimize with the fuzzer's
/// limits, compile for the triple the input's hash picks. Panics propagate
/// (they are the bug).
fn pipeline(bytes: &[u8]) -> Outcome {
    let g = match kerf_onnx::load_model_bytes(bytes, None, &ImportOptions::default()) {
        Ok(g) => g,
        Err(e) => return Outcome::Import(e),
    };
    let popts = kerf_passes::PassOptions {
        iter_limit: 30,
        node_limit: 50_000,
        time_limit: std::time::Duration::from_secs(2),
        ..kerf_passes::PassOptions::default()
    };
    let g = match kerf_passes::optimize(&g, &popts) {
        Ok((g, _)) => g,
        Err(e) => return Outcome::Passes(e),
    };
    let h = bytes.iter().fold(0u32, |h, &b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let (triple, cpu) = match h % 8 {
        0 => ("aarch64-unknown-linux-gnu", "baseline"),
        1 => ("riscv64gc-unknown-linux-gnu", "rv64gc"),
        2 => ("x86_64-unknown-linux-gnu", "haswell"),
        _ => ("x86_64-unknown-linux-gnu", "baseline"),
    };
    let target = kerf_targets::Target::parse(triple, cpu).unwrap_or_else(|e| panic!("{e}"));
    match kerf_targets::compile_object(&g, &kerf_targets::CompileOptions::new(target, "fuzz")) {
        Ok(a) => Outcome::Compiled(a),
        Err(e) => Outcome::Target(e),
    }
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(malformed().join(name)).unwrap()
}

/// fuzz-pipeline-1: a GRU keyword model whose input got sequence length 0.
/// The GRU's input projection became a GEMM with zero rows, and picking its
/// micro-tile divided by zero (`targets/src/lower/matmul.rs`); the model
/// then gathers element -1 of the empty sequence axis, which has no
/// element to read (the kernel's clamp turned it into index -1, out of
/// bounds). Now the importer rejects the Gather.
#[test]
fn fuzz_pipeline_1_gather_from_empty_axis() {
    match pipeline(&read("fuzz-pipeline-1.onnx")) {
        Outcome::Import(ImportError::Node { node, op, msg }) => {
            assert_eq!((node.as_str(), op.as_str()), ("/Gather", "Gather"));
            assert_eq!(msg, "gathers 1 indices from axis 1, which has size 0");
        }
        other => panic!("expected a Gather error, got {other:?}"),
    }
}

/// The zero-row product of fuzz-pipeline-1, minimized: `[0,4] x [4,8]`
/// compiles (to a kernel that does nothing) for every triple.
#[test]
fn fuzz_pipeline_1_zero_row_matmul_compiles() {
    let g = kerf_onnx::load_model(&malformed().join("zero_rows_matmul.onnx"), &ImportOptions::default()).unwrap();
    for triple in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu", "riscv64gc-unknown-linux-gnu"] {
        for cpu in ["baseline", "haswell", "v"] {
            match kerf_targets::Target::parse(triple, cpu) {
                Ok(t) => {
                    let a = kerf_targets::compile_object(&g, &kerf_targets::CompileOptions::new(t, "zero")).unwrap();
                    assert_eq!(a.report.arena_bytes % 64, 0);
                }
                // A preset of another triple: the error names it.
                Err(e) => assert!(e.to_string().contains(cpu), "{triple}/{cpu}: {e}"),
            }
        }
    }
}

/// fuzz-load_onnx-1 (an OOM): an 87 KB GRU model whose `Expand` of a
/// constant got a target shape of 2^25 rows; the importer folded it,
/// allocating gigabytes. Folding now has a byte budget
/// (`FOLD_BUDGET_BYTES` in kerf-onnx's import.rs), so the Expand stays a node and the GRU
/// reports the shape of its initial state, all under 1 GiB and in well
/// under 10 s.
#[test]
fn fuzz_load_onnx_1_fold_budget() {
    match kerf_onnx::load_model_bytes(&read("fuzz-load_onnx-1.onnx"), None, &ImportOptions::default()) {
        Err(ImportError::Ir(kerf_ir::IrError::Node { node, op, msg })) => {
            assert_eq!((node.as_str(), op.as_str()), ("/rnn/GRU", "GRU"));
            assert_eq!(msg, "input 4 has shape f32[33554432,1,64], expected [1, 1, 64]");
        }
        other => panic!("expected a GRU error, got {other:?}"),
    }
    let r = kerf_limited(&["inspect", "fuzz-load_onnx-1.onnx"], &malformed());
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("node '/rnn/GRU' (GRU): input 4 has shape f32[33554432,1,64]"), "{}", r.stderr);
}

/// fuzz-pipeline-2: a ConvTranspose whose input has a spatial size of 0.
/// Shape inference computed `stride * (size - 1)` and overflowed
/// (`compiler/ir/src/infer.rs`); it now rejects the empty axis, and the
/// rest of that formula is checked arithmetic.
#[test]
fn fuzz_pipeline_2_conv_transpose_empty_spatial_axis() {
    match pipeline(&read("fuzz-pipeline-2.onnx")) {
        Outcome::Import(ImportError::Ir(kerf_ir::IrError::Node { node, op, msg })) => {
            assert_eq!(op, "ConvTranspose", "{node}: {msg}");
            assert_eq!(msg, "spatial axis 1 of the input is empty");
        }
        other => panic!("expected a ConvTranspose error, got {other:?}"),
    }
}

/// Every fuzzer finding, through the CLI under the catalogue's limits
/// (1 GiB address space, 10 s): a clean exit, never a crash. The two
/// later load_onnx OOMs are the same fold blow-up as fuzz-load_onnx-1.
#[test]
fn all_findings_exit_cleanly_under_limits() {
    let mut seen = 0;
    let mut names: Vec<String> = std::fs::read_dir(malformed())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("fuzz-") && n.ends_with(".onnx"))
        .collect();
    names.sort();
    for name in &names {
        for cmd in [&["inspect"][..], &["inspect", "--optimized"][..]] {
            let r = kerf_limited(&[cmd, &[name.as_str()]].concat(), &malformed());
            assert!(r.code == Some(0) || r.code == Some(1), "{name} {cmd:?}: {:?} {}", r.code, r.stderr);
            assert!(!r.stderr.contains("panicked"), "{name}: {}", r.stderr);
        }
        assert!(std::panic::catch_unwind(|| pipeline(&read(name))).is_ok(), "{name} panics");
        seen += 1;
    }
    assert!(seen >= 5, "{names:?}");
}
