//! Prints the IR text of an imported ONNX file (weights by hash).
//!
//! `cargo run -p kerf-onnx --example print_ir -- model.onnx`

fn main() {
    for arg in std::env::args().skip(1) {
        match kerf_onnx::load_model(std::path::Path::new(&arg), &kerf_onnx::ImportOptions::default()) {
            Ok(g) => print!("{}", kerf_ir::text::print(&g)),
            Err(e) => {
                eprintln!("{arg}: {e}");
                std::process::exit(1);
            }
        }
    }
}
