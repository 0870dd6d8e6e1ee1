//! Every fixture model imports and its parameter and MAC counts match the
//! `params` and `macs` recorded in its `meta.json`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use std::path::Path;

/// The unsigned integer after `"key":` at the top level of a small JSON file.
fn meta_number(meta: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let i = meta.find(&pat)? + pat.len();
    let rest = meta[i..].trim_start();
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[test]
fn fixture_models_match_meta() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testsuite/fixtures/models");
    let mut dirs: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    let mut checked = 0;
    for dir in dirs {
        let model = dir.join("model.onnx");
        if !model.exists() {
            continue;
        }
        let meta = std::fs::read_to_string(dir.join("meta.json")).unwrap();
        let g =
            kerf_onnx::load_model(&model, &Default::default()).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
        g.validate().unwrap();
        let t = kerf_ir::stats::totals(&g);
        assert_eq!(Some(t.params), meta_number(&meta, "params"), "{}: params", dir.display());
        assert_eq!(Some(t.macs), meta_number(&meta, "macs"), "{}: macs", dir.display());
        assert_eq!(g.name, "model");
        // Every shape is static and every shaping subgraph folded away.
        for n in &g.nodes {
            assert!(!matches!(n.op.name(), "Shape" | "ConstantOfShape" | "Range"), "{}", n.name);
        }
        checked += 1;
    }
    assert!(checked >= 6, "expected the fixture models, found {checked}");
}
