//! Imports ONNX files and prints params / MACs / node counts, compared with
//! the `meta.json` beside each model when present.
//!
//! `cargo run -p kerf-onnx --example import_check -- path/to/model.onnx ...`

use std::path::Path;

fn meta_number(meta: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let i = meta.find(&pat)? + pat.len();
    let rest = meta[i..].trim_start();
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn main() {
    let mut failed = false;
    for arg in std::env::args().skip(1) {
        let path = Path::new(&arg);
        let start = std::time::Instant::now();
        match kerf_onnx::load_model(path, &kerf_onnx::ImportOptions::default()) {
            Ok(g) => {
                let t = kerf_ir::stats::totals(&g);
                let meta = path.parent().map(|p| p.join("meta.json")).and_then(|p| std::fs::read_to_string(p).ok());
                let (mp, mm) =
                    meta.as_deref().map_or((None, None), |m| (meta_number(m, "params"), meta_number(m, "macs")));
                let ok = mp.is_none_or(|p| p == t.params) && mm.is_none_or(|m| m == t.macs);
                failed |= !ok;
                println!(
                    "{} {arg}: nodes {} params {} (meta {:?}) macs {} (meta {:?}) in {:?}",
                    if ok { "OK  " } else { "DIFF" },
                    g.nodes.len(),
                    t.params,
                    mp,
                    t.macs,
                    mm,
                    start.elapsed()
                );
            }
            Err(e) => {
                failed = true;
                println!("ERR  {arg}: {e}");
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
