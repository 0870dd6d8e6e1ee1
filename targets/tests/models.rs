#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Real models: import the fixture ONNX files with kerf-onnx, JIT them for
//! the host and compare with the ONNX Runtime reference output.
//! Tolerance: |got - ref| <= 1e-5 + 1e-4 * max|ref| elementwise.

use std::path::PathBuf;

use kerf_targets::{jit_compile, CompileOptions};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testsuite/fixtures/models").join(name)
}

fn read_npy(p: &PathBuf) -> Vec<f32> {
    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    npy.into_vec::<f32>().unwrap()
}

fn run_model(name: &str) {
    let dir = fixture(name);
    let g = kerf_onnx::load_model(&dir.join("model.onnx"), &Default::default())
        .unwrap_or_else(|e| panic!("{name}: import failed: {e}"));
    let jm = jit_compile(&g, &CompileOptions::host(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let x = read_npy(&dir.join("input_0.npy"));
    let want = read_npy(&dir.join("output_0.npy"));
    let m = jm.model();
    let mut arena = m.new_arena().unwrap();
    let got = m.run_f32(&[&x], &mut arena).unwrap();
    assert_eq!(got[0].len(), want.len(), "{name}: output length");
    let maxref = want.iter().fold(0f32, |a, &b| a.max(b.abs()));
    let tol = 1e-5 + 1e-4 * maxref;
    let mut worst = 0f32;
    for (i, (a, b)) in got[0].iter().zip(&want).enumerate() {
        let d = (a - b).abs();
        worst = worst.max(d);
        assert!(d <= tol, "{name}: element {i}: got {a}, want {b} (tol {tol})");
    }
    let r = jm.report();
    eprintln!(
        "{name}: max err {worst:e}, arena {} bytes (lower bound {}), {} kernels",
        r.arena_bytes,
        r.arena_lower_bound,
        r.kernels.len()
    );
    assert!(
        r.arena_bytes as f64 <= 1.1 * r.arena_lower_bound as f64 + 64.0 * r.kernels.len() as f64,
        "{name}: arena {} too far above the bound {}",
        r.arena_bytes,
        r.arena_lower_bound
    );
}

#[test]
fn digits_mlp() {
    run_model("digits_mlp");
    // the descriptor the generated code exports
    let g = kerf_onnx::load_model(&fixture("digits_mlp").join("model.onnx"), &Default::default()).unwrap();
    let jm = jit_compile(&g, &CompileOptions::host("mlp")).unwrap();
    let info = jm.model().info();
    assert_eq!(info.abi_version, kerf_runtime::ABI_VERSION);
    assert_eq!(info.inputs.len(), 1);
    assert_eq!(info.inputs[0].dims, vec![1, 64]);
    assert_eq!(info.inputs[0].dtype, kerf_runtime::dtype::FLOAT);
    assert_eq!(info.inputs[0].bytes, 256);
    assert_eq!(info.outputs[0].dims, vec![1, 10]);
    assert_eq!(info.arena_bytes, jm.report().arena_bytes);
    assert_eq!(info.arena_align, 64);
}

#[test]
fn digits_cnn() {
    run_model("digits_cnn");
}

#[test]
fn ds_cnn_kws() {
    run_model("ds_cnn_kws");
}

#[test]
fn tiny_transformer() {
    run_model("tiny_transformer");
}

#[test]
fn lstm_kws() {
    run_model("lstm_kws");
}

#[test]
fn gru_kws() {
    run_model("gru_kws");
}
