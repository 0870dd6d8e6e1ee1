//! Compiles the digits_mlp fixture model with kerf for Cargo's target and
//! links it: `libdigits_mlp.a` and `digits_mlp.h` land in `OUT_DIR`.

use std::path::Path;

fn main() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testsuite/fixtures/models/digits_mlp/model.onnx");
    if let Err(e) = kerf_pipeline::Build::new(&model).name("digits_mlp").compile_for_cargo() {
        // A build script reports errors by failing; the message names the model.
        eprintln!("kerf could not compile {}: {e}", model.display());
        std::process::exit(1);
    }
}
