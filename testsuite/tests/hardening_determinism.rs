//! Reproducible builds: the same model compiled twice, by two processes
//! started in different working directories (one given a relative path, one
//! an absolute path), gives byte-identical `.o`, `.a` and `.h` for every
//! triple, and `kerf inspect --dump-ir optimized` prints the same text.
//! Each run is a fresh process, so hash-map seeds, addresses and thread
//! timing differ between them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

mod hardening_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use hardening_common::kerf_bin;

/// The canonical triple of every described ISA.
fn triples() -> impl Iterator<Item = &'static str> {
    kerf_targets::isa::ISAS.iter().map(|d| d.triple)
}

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/models")
}

/// A fresh scratch folder for one test.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kerf-determinism-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn kerf_in(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(kerf_bin()).args(args).current_dir(dir).output().expect("kerf runs");
    assert!(out.status.success(), "kerf {args:?} in {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Compiles `model_dir/model.onnx` to `out/{name}.o`, `out/lib{name}.a` and
/// `out/{name}.h`, running in `cwd` with `model` as given (relative to `cwd`
/// or absolute); returns the three files.
fn compile_all(cwd: &Path, model: &str, out: &Path, triple: &str) -> [Vec<u8>; 3] {
    let o = out.join("m.o");
    let a = out.join("libm.a");
    let h = out.join("m.h");
    let common = ["--target", triple, "--name", "m", "--header"];
    kerf_in(cwd, &[&["compile", model, "-o", o.to_str().unwrap()], &common[..], &[h.to_str().unwrap()]].concat());
    let h1 = std::fs::read(&h).unwrap();
    kerf_in(cwd, &[&["compile", model, "-o", a.to_str().unwrap()], &common[..], &[h.to_str().unwrap()]].concat());
    let h2 = std::fs::read(&h).unwrap();
    assert_eq!(h1, h2, "header differs between the .o and .a runs");
    [std::fs::read(&o).unwrap(), std::fs::read(&a).unwrap(), h1]
}

#[test]
fn object_archive_and_header_are_byte_identical_across_runs_and_working_dirs() {
    let model_dir = models().join("digits_cnn");
    let root = scratch("compile");
    for triple in triples() {
        let (out1, out2, elsewhere) = (root.join("a"), root.join("b"), root.join("cwd"));
        for d in [&out1, &out2, &elsewhere] {
            std::fs::create_dir_all(d).unwrap();
        }
        // Run 1: in the model's folder, relative path.
        let first = compile_all(&model_dir, "model.onnx", &out1, triple);
        // Run 2: somewhere else, absolute path.
        let abs = model_dir.join("model.onnx");
        let second = compile_all(&elsewhere, abs.to_str().unwrap(), &out2, triple);
        for (k, what) in ["object", "archive", "header"].iter().enumerate() {
            assert!(!first[k].is_empty(), "{triple}: empty {what}");
            assert!(
                first[k] == second[k],
                "{triple}: {what} differs between runs ({} vs {} bytes)",
                first[k].len(),
                second[k].len()
            );
        }
        // The archive holds exactly the object.
        assert!(
            first[1].windows(first[0].len()).any(|w| w == first[0].as_slice()),
            "{triple}: archive lacks the object"
        );
        // No path of either run leaks into the artifacts.
        for bytes in &first {
            for p in [&model_dir, &elsewhere, &root] {
                let needle = p.to_str().unwrap().as_bytes();
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{triple}: artifact contains path {}",
                    p.display()
                );
            }
        }
        std::fs::remove_dir_all(&out1).unwrap();
        std::fs::remove_dir_all(&out2).unwrap();
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn optimized_ir_dump_is_identical_across_runs() {
    let other = scratch("dump");
    let mut checked = 0;
    for entry in std::fs::read_dir(models()).unwrap() {
        let dir = entry.unwrap().path();
        let abs = dir.join("model.onnx");
        let a = kerf_in(&dir, &["inspect", "--dump-ir", "optimized", "model.onnx"]);
        let b = kerf_in(&other, &["inspect", "--dump-ir", "optimized", abs.to_str().unwrap()]);
        assert!(!a.is_empty(), "{}", dir.display());
        assert!(a == b, "{}: optimized IR differs between runs", dir.display());
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} models");
    std::fs::remove_dir_all(&other).unwrap();
}

#[test]
fn in_process_compiles_are_identical() {
    // Two compiles in one process (different hash-map instances, warm
    // allocator) agree too, for every triple, from the library API.
    let path = models().join("ds_cnn_kws/model.onnx");
    let g = kerf_onnx::load_model(&path, &kerf_onnx::ImportOptions::default()).unwrap();
    let (g, _) = kerf_passes::optimize(&g, &kerf_passes::PassOptions::default()).unwrap();
    for triple in triples() {
        let opts = kerf_targets::CompileOptions::new(kerf_targets::Target::parse(triple, "baseline").unwrap(), "kws");
        let a = kerf_targets::compile_object(&g, &opts).unwrap();
        let b = kerf_targets::compile_object(&g, &opts).unwrap();
        assert!(a.object == b.object, "{triple}: objects differ");
        assert_eq!(a.header, b.header, "{triple}");
    }
}
