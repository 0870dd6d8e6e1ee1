//! IR snapshots of every fixture model: as imported, and after each lossless
//! rule group in pipeline order. Review changes with `cargo insta review`.

use std::collections::BTreeSet;
use std::path::Path;

use kerf_passes::{rule_groups, run_groups, PassOptions};

fn model_name(path: &Path) -> String {
    path.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

#[test]
fn fixture_models() {
    insta::glob!("../fixtures/models", "*/model.onnx", |path| {
        let name = model_name(path);
        let g = kerf_onnx::load_model(path, &Default::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        g.validate().unwrap();
        insta::assert_snapshot!("import", kerf_ir::text::print(&g));
        let mut cur = g;
        for group in rule_groups() {
            let (next, reports) = run_groups(&cur, &[group], &PassOptions::default()).unwrap();
            next.validate().unwrap();
            for r in &reports {
                assert_eq!(r.stop, kerf_passes::Stop::Saturated, "{name}: group {group} stopped early: {:?}", r.stop);
            }
            insta::assert_snapshot!(format!("after-{group}"), kerf_ir::text::print(&next));
            cur = next;
        }
    });
}

/// Rule tests written in IR text: each `fixtures/ir/*.kir` file runs the
/// pipeline its `; run:` line names (Cranelift filetests' `test` lines) and
/// the printed result, or the error, is snapshotted:
/// - `; run: optimize` (the default): every rule group in pipeline order;
/// - `; run: groups a, b`: those rule groups only;
/// - `; run: print`: parse and print (the text format itself).
#[test]
fn ir_text_fixtures() {
    insta::glob!("../fixtures/ir", "*.kir", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let g = kerf_ir::text::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let run = text.lines().find_map(|l| l.trim().strip_prefix("; run:")).map(str::trim).unwrap_or("optimize");
        let result = match run.split_once(' ').unwrap_or((run, "")) {
            ("optimize", "") => kerf_passes::optimize(&g, &PassOptions::default()).map(|r| r.0),
            ("groups", list) => {
                let groups: Vec<&str> = list.split(',').map(str::trim).collect();
                run_groups(&g, &groups, &PassOptions::default()).map(|r| r.0)
            }
            ("print", "") => Ok(g),
            _ => panic!("{}: unknown run line '{run}' (optimize, groups a, b, print)", path.display()),
        };
        let shown = match result {
            Ok(g) => kerf_ir::text::print(&g),
            Err(e) => format!("error: {e}\n"),
        };
        insta::assert_snapshot!("result", format!("; run: {run}\n{shown}"));
    });
}

/// Every committed snapshot belongs to a fixture that still exists (the
/// equivalent of `cargo insta test --unreferenced=reject`).
#[test]
fn no_unreferenced_snapshots() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut expected = BTreeSet::new();
    for entry in std::fs::read_dir(root.join("fixtures/models")).unwrap() {
        let m = entry.unwrap().file_name().to_string_lossy().into_owned();
        expected.insert(format!("ir_snapshots__import@{m}__model.onnx.snap"));
        for group in rule_groups() {
            expected.insert(format!("ir_snapshots__after-{group}@{m}__model.onnx.snap"));
        }
    }
    for entry in std::fs::read_dir(root.join("fixtures/ir")).unwrap() {
        let f = entry.unwrap().file_name().to_string_lossy().into_owned();
        expected.insert(format!("ir_snapshots__result@{f}.snap"));
    }
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(root.join("tests/snapshots")).unwrap() {
        let f = entry.unwrap().file_name().to_string_lossy().into_owned();
        if f.starts_with("ir_snapshots__") {
            found.insert(f);
        }
    }
    let stale: Vec<_> = found.difference(&expected).collect();
    let missing: Vec<_> = expected.difference(&found).collect();
    assert!(stale.is_empty(), "unreferenced snapshots: {stale:?}");
    assert!(missing.is_empty(), "missing snapshots: {missing:?}");
}
