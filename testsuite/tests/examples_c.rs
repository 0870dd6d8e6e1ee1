//! Builds and runs the C example (`examples/c`: `main.c` + `Makefile`)
//! for the host, aarch64 and riscv64 (the latter two under qemu-user) and
//! Windows x64 (a COFF archive linked by MinGW-w64, run under Wine), and
//! checks that the printed accuracy over the 450 held-out digits equals
//! the ONNX Runtime accuracy in the fixture's `meta.json` exactly (same
//! number of correct images).
//!
//! The model archive and header come from `kerf_pipeline` (the library behind
//! `kerf compile`, same bytes), passed to make as `KERF_OUT`, so the test
//! needs no `kerf` binary.

mod e2e;

use std::path::Path;
use std::process::Command;

use e2e::Target;

/// "... 440/450 correct ..." → (440, 450).
fn parse_counts(line: &str) -> Option<(usize, usize)> {
    let (c, n) = line.split_whitespace().find(|w| w.contains('/'))?.split_once('/')?;
    Some((c.parse().ok()?, n.parse().ok()?))
}

/// `test_set.ort_accuracy` and `test_set.n` of a fixture's meta.json.
fn ort_accuracy(meta: &Path) -> (f64, usize) {
    let text = std::fs::read_to_string(meta).unwrap_or_else(|e| panic!("{}: {e}", meta.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", meta.display()));
    let acc = v["test_set"]["ort_accuracy"].as_f64();
    let n = v["test_set"]["n"].as_u64();
    match (acc, n) {
        (Some(a), Some(n)) => (a, n as usize),
        _ => panic!("{}: no test_set.ort_accuracy / test_set.n", meta.display()),
    }
}

fn run_example(t: &Target, make_target: &str) {
    e2e::require_tools(t);
    let model_dir = e2e::testsuite_dir().join("fixtures/models/digits_cnn");
    let scratch = e2e::scratch_dir(&format!("example_c-{}", t.label));
    let s = kerf_pipeline::Session::new(model_dir.join("model.onnx")).name("digits").target(t.target());
    let art = s.graph().and_then(|o| s.compile(&o.graph)).unwrap_or_else(|e| panic!("{}: {e}", t.label));
    let archive = art.archive().unwrap_or_else(|e| panic!("{}: {e}", t.label));
    std::fs::write(scratch.join("libdigits.a"), archive).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(scratch.join("digits.h"), art.header).unwrap_or_else(|e| panic!("{e}"));

    let out = Command::new("make")
        .arg("-C")
        .arg(e2e::repo_root().join("examples/c"))
        .arg(format!("TARGET={make_target}"))
        .arg(format!("KERF_OUT={}", scratch.display()))
        .arg(format!("BUILD={}", scratch.join("build").display()))
        .arg("run")
        .output()
        .unwrap_or_else(|e| panic!("cannot start make: {e} (apt-get install make)"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: make failed ({}):\n{stdout}\n{}",
        t.label,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // "model digits: 440/450 correct, accuracy 0.977778"
    let line = stdout
        .lines()
        .find(|l| l.contains(" correct, accuracy "))
        .unwrap_or_else(|| panic!("no accuracy line in:\n{stdout}"));
    let (correct, n) = parse_counts(line).unwrap_or_else(|| panic!("bad accuracy line '{line}'"));
    let (ort, n_ref) = ort_accuracy(&model_dir.join("meta.json"));
    assert_eq!(n, n_ref, "{}: classified {n} images, the test set has {n_ref}", t.label);
    let ort_correct = (ort * n as f64).round() as usize;
    assert_eq!(correct, ort_correct, "{}: {correct}/{n} correct, ONNX Runtime gets {ort_correct}/{n} ({ort})", t.label);
    eprintln!("{}: {line}", t.label);
}

#[test]
fn host() {
    run_example(&e2e::X86_64, "host");
}

#[test]
fn aarch64_qemu() {
    run_example(&e2e::AARCH64, "aarch64");
}

#[test]
fn riscv64_qemu() {
    run_example(&e2e::RISCV64, "riscv64");
}

/// The COFF object in a COFF archive, linked by MinGW-w64 and run under
/// Wine: the Windows x64 calling convention end to end.
#[test]
fn windows_x64_wine() {
    run_example(&e2e::WINDOWS_X64, "windows");
}
