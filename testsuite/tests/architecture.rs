//! The crate map's invariants (`docs/ARCHITECTURE.md`, "Architecture
//! invariants"), checked on `cargo metadata`: internal dependencies point
//! one way (down the layers), and each heavy external dependency lives in
//! exactly one crate.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Which internal crates each crate may depend on (normal and build
/// dependencies; dev-dependencies of tests are free). A crate not listed
/// here fails the test: a new crate states its layer.
const ALLOWED: &[(&str, &[&str])] = &[
    ("kerf-runtime", &[]),
    ("kerf-ir", &[]),
    ("kerf-onnx", &["kerf-ir"]),
    ("kerf-passes", &["kerf-ir"]),
    ("kerf-compress", &["kerf-ir"]),
    ("kerf-targets", &["kerf-ir", "kerf-runtime"]),
    ("kerf-pipeline", &["kerf-ir", "kerf-onnx", "kerf-passes", "kerf-compress", "kerf-targets", "kerf-runtime"]),
    // the tuner names targets (the runner builds plans for one)
    ("kerf-tune", &["kerf-ir", "kerf-compress", "kerf-targets", "kerf-pipeline"]),
    // the driver runs stages through the pipeline; it names the plan
    // (compress), artifacts and targets (targets) and the runtime's pool
    // (bench), never the frontend or the passes
    ("kerf", &["kerf-ir", "kerf-compress", "kerf-targets", "kerf-runtime", "kerf-pipeline", "kerf-tune"]),
    (
        "kerf-testsuite",
        &[
            "kerf-ir",
            "kerf-onnx",
            "kerf-passes",
            "kerf-compress",
            "kerf-targets",
            "kerf-runtime",
            "kerf-pipeline",
            "kerf-tune",
        ],
    ),
    ("kerf-example-rust", &["kerf-runtime", "kerf-pipeline"]),
];

/// Heavy external dependencies and the one crate each may live in.
const HEAVY: &[(&str, &str)] = &[
    ("onnx-protobuf", "kerf-onnx"),
    ("protobuf", "kerf-onnx"),
    ("egg", "kerf-passes"),
    ("cranelift-codegen", "kerf-targets"),
    ("cranelift-frontend", "kerf-targets"),
    ("cranelift-module", "kerf-targets"),
    ("cranelift-object", "kerf-targets"),
    ("cranelift-jit", "kerf-targets"),
    ("cranelift-native", "kerf-targets"),
    ("object", "kerf-targets"),
    ("ar_archive_writer", "kerf-targets"),
    ("iced-x86", "kerf-targets"),
    ("dynasm", "kerf-targets"),
    ("dynasmrt", "kerf-targets"),
    ("petgraph", "kerf-ir"),
    ("faer", "kerf-compress"),
    ("toml", "kerf-compress"),
    ("indicatif", "kerf"),
    ("plotters", "kerf-tune"),
];

/// (crate, its direct dependencies with their kind) for every workspace member.
fn workspace_deps() -> BTreeMap<String, Vec<(String, Option<String>)>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(&root)
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let mut map = BTreeMap::new();
    for p in meta["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().expect("name").to_string();
        let deps = p["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .map(|d| (d["name"].as_str().expect("dep name").to_string(), d["kind"].as_str().map(str::to_string)))
            .collect();
        map.insert(name, deps);
    }
    map
}

#[test]
fn internal_dependencies_point_down_the_layers() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> =
        ALLOWED.iter().map(|(c, deps)| (*c, deps.iter().copied().collect())).collect();
    let mut wrong = Vec::new();
    for (krate, deps) in workspace_deps() {
        let Some(ok) = allowed.get(krate.as_str()) else {
            wrong.push(format!("crate '{krate}' has no layer in ALLOWED (testsuite/tests/architecture.rs)"));
            continue;
        };
        for (dep, kind) in deps {
            let internal = dep == "kerf" || dep.starts_with("kerf-");
            if internal && kind.as_deref() != Some("dev") && !ok.contains(dep.as_str()) {
                wrong.push(format!("'{krate}' depends on '{dep}', which is not below it"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn each_heavy_dependency_lives_in_one_crate() {
    let deps = workspace_deps();
    let mut wrong = Vec::new();
    for (heavy, home) in HEAVY {
        for (krate, ds) in &deps {
            let uses = ds.iter().any(|(d, kind)| d == heavy && kind.as_deref() != Some("dev"));
            if uses && krate != home {
                wrong.push(format!("'{krate}' depends on '{heavy}', which belongs to '{home}' only"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
