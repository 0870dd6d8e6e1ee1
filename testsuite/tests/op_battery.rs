//! The single-op battery: every case in `testsuite/fixtures/ops/<case>/`
//! (`model.onnx`, `input_<i>.npy`, `output_<i>.npy` from ONNX Runtime,
//! `case.json`) goes through import → lossless rewrites and then
//! - `host`: JIT on the host;
//! - `x86_64` (object, baseline CPU, run natively), `aarch64`, `riscv64`,
//!   `riscv64-v` (V preset, Cranelift's 128-bit vector kernels; its objects
//!   run again on a 256-bit-VLEN CPU): an object per case, all linked into one
//!   program with `testsuite/c/harness.c` (cc or cross GCC `-static`) and
//!   run in one process, under qemu-user for the foreign ISAs (a crash
//!   restarts it after the crashing case).
//!
//! Comparison (see `e2e/mod.rs`): same dtype and shape; ints and bools
//! exact; floats within `1e-5 + 1e-4 * max|ref|`, NaN/inf at the same places.
//!
//! `testsuite/fixtures/ops/EXPECTED_FAILURES.txt` lists the cases kerf does
//! not support yet, one per line: `<case>[@<platform>] <reason>` (no
//! platform: all of them; `#` starts a comment). Each platform's test fails
//! when a case fails that is not listed for it, and when a listed case
//! passes, so the list stays exactly true.

mod e2e;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use e2e::Target;
use kerf_ir::{Graph, Tensor};

fn ops_dir() -> PathBuf {
    e2e::testsuite_dir().join("fixtures/ops")
}

/// One loaded case: its graph (or why import failed), inputs and references.
struct Case {
    name: String,
    graph: Result<Graph, String>,
    inputs: Vec<Tensor>,
    want: Vec<Tensor>,
}

/// The C symbol prefix of a case (never clashes with the harness).
fn symbol(case: &str) -> String {
    format!("op_{}", kerf_pipeline::c_identifier(case))
}

fn load_cases() -> Vec<Case> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(ops_dir())
        .unwrap_or_else(|e| panic!("{}: {e}", ops_dir().display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 250, "{}: only {} cases", ops_dir().display(), dirs.len());
    dirs.into_iter()
        .map(|dir| {
            let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
            let inputs = e2e::read_numbered(&dir, "input").unwrap_or_else(|e| panic!("{name}: {e}"));
            let want = e2e::read_numbered(&dir, "output").unwrap_or_else(|e| panic!("{name}: {e}"));
            let graph = e2e::load_graph(&dir.join("model.onnx"), &symbol(&name))
                .and_then(|g| e2e::check_inputs(&g, &inputs).map(|()| g));
            Case { name, graph, inputs, want }
        })
        .collect()
}

/// The expectation list: case → (platform or None for all, reason).
fn expected_failures() -> BTreeMap<(String, Option<String>), String> {
    let path = ops_dir().join("EXPECTED_FAILURES.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (key, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        assert!(!reason.trim().is_empty(), "{}:{}: '{key}' has no reason", path.display(), i + 1);
        let (case, platform) = match key.split_once('@') {
            Some((c, p)) => (c.to_string(), Some(p.to_string())),
            None => (key.to_string(), None),
        };
        assert!(ops_dir().join(&case).is_dir(), "{}:{}: no case '{case}'", path.display(), i + 1);
        let prev = out.insert((case, platform), reason.trim().to_string());
        assert!(prev.is_none(), "{}:{}: '{key}' listed twice", path.display(), i + 1);
    }
    out
}

/// Checks a platform's outcomes against the list; panics with every
/// unexpected failure and every unexpected pass.
fn check_expectations(platform: &str, outcomes: &BTreeMap<String, Result<e2e::Errors, String>>) {
    let list = expected_failures();
    let listed = |case: &str| {
        list.get(&(case.to_string(), Some(platform.to_string()))).or_else(|| list.get(&(case.to_string(), None)))
    };
    let mut unexpected_fail = Vec::new();
    let mut unexpected_pass = Vec::new();
    let mut worst = e2e::Errors::default();
    let mut expected = 0;
    for (case, r) in outcomes {
        match (r, listed(case)) {
            (Ok(e), None) => worst = worst.merge(*e),
            (Ok(_), Some(reason)) => unexpected_pass.push(format!("{case} (listed: {reason})")),
            (Err(m), None) => unexpected_fail.push(format!("{case}: {m}")),
            (Err(_), Some(_)) => expected += 1,
        }
    }
    eprintln!(
        "{platform}: {} cases, {} pass, {expected} expected failures; worst passing error: abs {:.3e}, rel {:.3e}",
        outcomes.len(),
        outcomes.values().filter(|r| r.is_ok()).count(),
        worst.max_abs,
        worst.max_rel
    );
    let mut msg = String::new();
    if !unexpected_fail.is_empty() {
        msg += &format!(
            "{platform}: {} cases failed that are not in EXPECTED_FAILURES.txt:\n  {}\n",
            unexpected_fail.len(),
            unexpected_fail.join("\n  ")
        );
    }
    if !unexpected_pass.is_empty() {
        msg += &format!(
            "{platform}: {} cases in EXPECTED_FAILURES.txt now pass; remove them from the list:\n  {}\n",
            unexpected_pass.len(),
            unexpected_pass.join("\n  ")
        );
    }
    assert!(msg.is_empty(), "{msg}");
}

#[test]
fn host_jit() {
    let t = Instant::now();
    let cases = load_cases();
    let outcomes: BTreeMap<String, Result<e2e::Errors, String>> = cases
        .iter()
        .map(|c| {
            let r = c.graph.as_ref().map_err(Clone::clone).and_then(|g| {
                let got = e2e::jit_run(g, &symbol(&c.name), &c.inputs)?;
                e2e::compare_all(&c.want, &got)
            });
            (c.name.clone(), r)
        })
        .collect();
    eprintln!("host: {:.1} s", t.elapsed().as_secs_f64());
    check_expectations("host", &outcomes);
}

/// Compiles every case for `t`, links them into one harness program, runs
/// it under qemu and compares.
fn cross(t: &Target) {
    e2e::require_tools(t);
    let start = Instant::now();
    let cases = load_cases();
    let scratch = e2e::scratch_dir(&format!("op_battery-{}", t.label));
    let mut outcomes: BTreeMap<String, Result<e2e::Errors, String>> = BTreeMap::new();
    let mut objects = Vec::new();
    let mut runnable = Vec::new();
    for c in &cases {
        let compiled = c.graph.as_ref().map_err(Clone::clone).and_then(|g| {
            let opts = kerf_targets::CompileOptions::new(t.target(), &symbol(&c.name));
            kerf_targets::compile_object(g, &opts).map_err(|e| format!("compile: {e}"))
        });
        match compiled {
            Ok(art) => {
                let dir = scratch.join(&c.name);
                e2e::write_inputs(&dir, &c.inputs).unwrap_or_else(|e| panic!("{e}"));
                objects.push((symbol(&c.name), art.object));
                runnable.push((symbol(&c.name), dir));
            }
            Err(m) => {
                outcomes.insert(c.name.clone(), Err(m));
            }
        }
    }
    let compiled_at = start.elapsed().as_secs_f64();
    let exe = e2e::link_harness(t, &scratch, &objects).unwrap_or_else(|e| panic!("{e}"));
    let linked_at = start.elapsed().as_secs_f64();
    let results: BTreeMap<String, Result<(), String>> = e2e::run_harness(t, &exe, &runnable).into_iter().collect();
    for c in &cases {
        if outcomes.contains_key(&c.name) {
            continue;
        }
        let r = match (results.get(&symbol(&c.name)), &c.graph) {
            (Some(Ok(())), Ok(g)) => {
                e2e::read_outputs(g, &scratch.join(&c.name)).and_then(|got| e2e::compare_all(&c.want, &got))
            }
            (Some(Err(m)), _) => Err(m.clone()),
            (None, _) => Err("the harness reported nothing".into()),
            (_, Err(m)) => Err(m.clone()),
        };
        outcomes.insert(c.name.clone(), r);
    }
    eprintln!(
        "{}: compile {compiled_at:.1} s, link {:.1} s, run+compare {:.1} s",
        t.label,
        linked_at - compiled_at,
        start.elapsed().as_secs_f64() - linked_at
    );
    check_expectations(t.label, &outcomes);
}

/// The object path on the host (PIC code, baseline x86-64, linked by cc).
#[test]
fn x86_64_object() {
    cross(&e2e::X86_64);
}

#[test]
fn aarch64_qemu() {
    cross(&e2e::AARCH64);
}

#[test]
fn riscv64_qemu() {
    cross(&e2e::RISCV64);
}

/// riscv64 with the V extension (`-cpu rv64,v=true,vlen=128`).
#[test]
fn riscv64_v_qemu() {
    cross(&e2e::RISCV64_V);
}

/// The same `v` objects on a 256-bit-VLEN CPU.
#[test]
fn riscv64_v_vlen256_qemu() {
    cross(&e2e::RISCV64_V256);
}

/// The batch protocol itself: a model that crashes the harness process is
/// reported as failed and the cases after it still run; a wrong output is
/// caught by the comparison.
#[test]
fn harness_survives_a_crashing_case() {
    let t = &e2e::X86_64;
    e2e::require_tools(t);
    let scratch = e2e::scratch_dir("op_battery-harness-selftest");
    let crash_c = scratch.join("crash.c");
    std::fs::write(
        &crash_c,
        "#include <stdlib.h>\n#include \"kerf_runtime.h\"\n\
         static const kerf_model_desc d = {KERF_ABI_VERSION, 0, 0, 64, 0, 0, 0, \"crash\"};\n\
         const kerf_model_desc *crash_describe(void) { return &d; }\n\
         int32_t crash_run(const void *const *i, void *const *o, void *a, const kerf_runtime *rt) {\n\
         (void)i; (void)o; (void)a; (void)rt; abort(); }\n",
    )
    .unwrap();
    let cases: Vec<Case> = load_cases().into_iter().filter(|c| c.name == "Abs_n3x7" || c.name == "Add_same").collect();
    assert_eq!(cases.len(), 2);
    let objects: Vec<(String, Vec<u8>)> = cases
        .iter()
        .map(|c| {
            let opts = kerf_targets::CompileOptions::new(t.target(), &symbol(&c.name));
            (symbol(&c.name), kerf_targets::compile_object(c.graph.as_ref().unwrap(), &opts).unwrap().object)
        })
        .collect();
    let exe = e2e::link_harness_with(t, &scratch, &objects, &[("crash".into(), crash_c)]).unwrap();
    for c in &cases {
        e2e::write_inputs(&scratch.join(&c.name), &c.inputs).unwrap();
    }
    let order = vec![
        (symbol(&cases[0].name), scratch.join(&cases[0].name)),
        ("crash".to_string(), scratch.clone()),
        (symbol(&cases[1].name), scratch.join(&cases[1].name)),
    ];
    let r = e2e::run_harness(t, &exe, &order);
    let names: Vec<&str> = r.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["op_Abs_n3x7", "crash", "op_Add_same"]);
    assert!(r[0].1.is_ok() && r[2].1.is_ok(), "{r:?}");
    let err = r[1].1.as_ref().unwrap_err();
    assert!(err.contains("harness process died"), "{err}");
    for c in &cases {
        let g = c.graph.as_ref().unwrap();
        let got = e2e::read_outputs(g, &scratch.join(&c.name)).unwrap();
        e2e::compare_all(&c.want, &got).unwrap();
        // A perturbed output must not pass.
        let mut bytes = got[0].bytes().to_vec();
        bytes[3] ^= 0x40; // an exponent bit of the first f32
        let bad = kerf_ir::Tensor::from_bytes(got[0].dtype(), got[0].shape().to_vec(), bytes).unwrap();
        assert!(e2e::compare(&c.want[0], &bad).is_err(), "{}: perturbed output passed", c.name);
    }
}
