//! Issue 15's "pruned elsewhere": a model whose 3x3 conv weights a
//! training-time tool already pattern-pruned, compiled without any
//! compression flag, runs on the same pattern kernels as one kerf pruned
//! itself (`kerf_ir::Sparsity::detect` at code generation).
//!
//! The model is the generated `pattern_pruned_cnn` (`make_models.py`:
//! two 32-channel 3x3 convs on 28x28 planes pruned by numpy to 8 centred
//! 4-tap patterns with half the kernels removed, 22% of their weights
//! kept), with ONNX Runtime's outputs as the reference.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use std::path::Path;

use kerf_ir::{Graph, Sparsity, Tensor};
use kerf_pipeline::compression::samples_for;
use kerf_pipeline::dataset::run_samples;
use kerf_pipeline::{npy, Session};
use kerf_targets::Target;

/// Compiled for x86-64 `baseline` and `haswell` (objects: any host), the
/// object's read-only data holds only the kept taps: it is smaller than a
/// dense twin's (the same graph with the pruned weights' zeros made
/// non-zero) by more than half of those convs' dense f32 bytes. Where the
/// host runs the preset, the outputs match ONNX Runtime's within `1e-4 ·
/// max|ref| + 1e-5`.
#[test]
fn pattern_pruned_weights_are_found_and_run_on_the_pattern_kernels() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("generated/pattern_pruned_cnn/model.onnx");
    assert!(model.is_file(), "{} is missing: run testsuite/run-all.sh (make_models.py)", model.display());
    let read = |f: &str| npy::read(&model.with_file_name(f)).unwrap();
    let (x, want) = (read("input_0.npy"), read("output_0.npy"));
    for cpu in ["baseline", "haswell"] {
        let s = Session::new(&model).target(Target::parse("x86_64-unknown-linux-gnu", cpu).unwrap());
        let g = s.graph().unwrap().graph;
        let (twin, pruned_bytes) = dense_twin(&g);
        assert_eq!(pruned_bytes, 2 * 32 * 32 * 9 * 4, "the two pruned convs' weights");
        let rodata = s.compile(&g).unwrap().report.rodata_bytes;
        let dense = s.compile(&twin).unwrap().report.rodata_bytes;
        eprintln!("{cpu}: read-only data {rodata} bytes, the dense twin {dense}");
        assert!(rodata + pruned_bytes / 2 < dense, "{cpu}: {rodata} bytes of read-only data, the dense twin {dense}");
        let avx2 = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
        if cfg!(target_arch = "x86_64") && (cpu == "baseline" || avx2) {
            let samples = samples_for(&g, &[("input".to_string(), x.clone())]).unwrap();
            let jit = s.jit(&g).unwrap();
            let got = run_samples(jit.model(), &g, &samples).unwrap()[0].to_f32_vec();
            let want = want.to_f32_vec();
            let max = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst <= 1e-4 * max + 1e-5, "{cpu}: max abs error {worst} against ONNX Runtime (max |ref| {max})");
        } else {
            eprintln!("{cpu}: not run here (the host lacks AVX2 + FMA); the object was checked");
        }
    }
}

/// `g` with every weight that has zeros made dense (each zero becomes
/// 1e-3), and the f32 bytes of those weights.
fn dense_twin(g: &Graph) -> (Graph, usize) {
    let mut twin = g.clone();
    let mut bytes = 0;
    let ids: Vec<_> = g.weights.iter().map(|(id, _)| id).collect();
    for id in ids {
        let w = twin.weights.get_mut(id);
        let v = w.tensor.to_f32_vec();
        if v.contains(&0.0) {
            let dense: Vec<f32> = v.iter().map(|&x| if x == 0.0 { 1e-3 } else { x }).collect();
            w.tensor = Tensor::from_f32(w.tensor.shape().to_vec(), &dense).unwrap();
            w.sparsity = Sparsity::Dense;
            bytes += 4 * v.len();
        }
    }
    (twin, bytes)
}
