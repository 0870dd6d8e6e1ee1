//! Structure-aware fuzzing of the whole compiler: ONNX bytes → import →
//! optimize → `compile_object` (x86-64 mostly, sometimes aarch64/riscv64).
//! The generated code is never run.
//!
//! The custom mutator decodes the input as a `ModelProto` and, most of the
//! time, edits its structure (attribute values, dims, input shapes, data
//! types, node wiring, op types, opset) before re-encoding, so mutants stay
//! valid protobuf and reach the passes and the code generator instead of
//! dying in the decoder. Otherwise it falls back to libFuzzer's byte-level
//! mutations.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use protobuf::Message;

mod mutate {
    include!("../src/mutate.rs");
}

fuzz_target!(|data: &[u8]| {
    let opts = kerf_onnx::ImportOptions::default();
    let Ok(g) = kerf_onnx::load_model_bytes(data, None, &opts) else { return };
    // Tighter limits than the default (20 s per group) so that one input
    // stays well under libFuzzer's -timeout=10.
    let popts = kerf_passes::PassOptions {
        iter_limit: 30,
        node_limit: 50_000,
        time_limit: std::time::Duration::from_secs(2),
        ..kerf_passes::PassOptions::default()
    };
    let Ok((g, _)) = kerf_passes::optimize(&g, &popts) else { return };
    // Pick the target from the input so that a crash reproduces.
    let h = data.iter().fold(0u32, |h, &b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let (triple, cpu) = match h % 8 {
        0 => ("aarch64-unknown-linux-gnu", "baseline"),
        1 => ("riscv64gc-unknown-linux-gnu", "rv64gc"),
        2 => ("x86_64-unknown-linux-gnu", "haswell"),
        _ => ("x86_64-unknown-linux-gnu", "baseline"),
    };
    let Ok(target) = kerf_targets::Target::parse(triple, cpu) else { return };
    let _ = kerf_targets::compile_object(&g, &kerf_targets::CompileOptions::new(target, "fuzz"));
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    let mut rng = mutate::Rng::new(seed);
    if rng.below(5) != 0 {
        if let Ok(mut m) = onnx_protobuf::ModelProto::parse_from_bytes(&data[..size]) {
            mutate::mutate_model(&mut m, &mut rng);
            if let Ok(out) = m.write_to_bytes() {
                if out.len() <= max_size {
                    data[..out.len()].copy_from_slice(&out);
                    return out.len();
                }
            }
        }
    }
    libfuzzer_sys::fuzzer_mutate(data, size, max_size)
});
