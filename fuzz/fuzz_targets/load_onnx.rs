//! Raw bytes → `kerf_onnx::load_model_bytes`. Covers the protobuf decoder,
//! tensor decoding, model checks and every op converter's attribute and
//! shape validation. Any panic, hang or OOM is a bug: a malformed file must
//! give an `ImportError`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kerf_onnx::load_model_bytes(data, None, &kerf_onnx::ImportOptions::default());
});
