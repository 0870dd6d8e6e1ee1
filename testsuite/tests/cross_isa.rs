//! Real models compiled ahead of time for each ISA, linked with the generic
//! C harness (`testsuite/c/harness.c`) and run: x86-64 natively (`cc`),
//! aarch64 and riscv64 under qemu-user (`aarch64-linux-gnu-gcc -static`,
//! `riscv64-linux-gnu-gcc -static`), aarch64 also with the `dotprod` preset
//! under `qemu-aarch64 -cpu max`, riscv64 also with the `v` CPU preset
//! under `qemu-riscv64 -cpu rv64,v=true,vlen=128`.
//!
//! Models: the fixture models digits_mlp, digits_cnn, ds_cnn_kws,
//! lstm_kws, gru_kws, tiny_transformer and the generated mobilenet_v2
//! (`testsuite/run-all.sh` makes it), and compressed models against the
//! host JIT with the baseline preset running the same graph: digits_cnn
//! with pattern pruning + int8 (kernel-by-kernel patterns on the f32
//! pattern kernels; patterns shared by channel quads on the integer
//! pattern kernel where the target has one), int8 on the integer conv
//! kernel, low rank + int8 and Tucker-2; digits_cnn5 with 5x5 patterns
//! (fitted libraries; f32 on the grid and in channel quads); ds_cnn_kws at
//! 1:4 (its 1x1 convs on the pattern kernel); digits_mlp at 2:4 + int8; and
//! tiny_transformer in int8 (its products on the one-pixel product with
//! `dotprod`, f32 on the grid elsewhere). All models of one ISA are linked into
//! one program and run in one process; the five targets run as parallel tests.
//!
//! Tolerance per output tensor, against the ONNX Runtime reference: every
//! element within `1e-4 * max|ref| + 1e-5` (see `e2e/mod.rs`).
//!
//! A missing cross compiler or qemu fails the test with the Debian package
//! to install.

mod e2e;

use std::path::PathBuf;
use std::time::Instant;

use e2e::Target;

const FIXTURES: [&str; 6] = ["digits_mlp", "digits_cnn", "ds_cnn_kws", "lstm_kws", "gru_kws", "tiny_transformer"];
const GENERATED: [&str; 1] = ["mobilenet_v2"];

fn model_dirs() -> Vec<(String, PathBuf)> {
    let ts = e2e::testsuite_dir();
    let mut v: Vec<(String, PathBuf)> =
        FIXTURES.iter().map(|m| (m.to_string(), ts.join("fixtures/models").join(m))).collect();
    for m in GENERATED {
        let d = ts.join("generated").join(m);
        assert!(
            d.join("model.onnx").is_file(),
            "{} is missing: run testsuite/run-all.sh (or `python testsuite/scripts/make_models.py testsuite/generated`)",
            d.display()
        );
        v.push((m.to_string(), d));
    }
    v
}

fn run_target(t: &Target) {
    e2e::require_tools(t);
    let start = Instant::now();
    let scratch = e2e::scratch_dir(&format!("cross_isa-{}", t.label));
    let mut objects = Vec::new();
    let mut cases = Vec::new();
    let mut graphs = Vec::new();
    for (name, dir) in model_dirs() {
        let s = kerf_pipeline::Session::new(dir.join("model.onnx")).name(&name).target(t.target());
        let g = s.graph().unwrap_or_else(|e| panic!("{}: {name}: {e}", t.label)).graph;
        let art = s.compile(&g).unwrap_or_else(|e| panic!("{}: {name}: compile: {e}", t.label));
        let inputs = e2e::read_numbered(&dir, "input").unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = e2e::read_numbered(&dir, "output").unwrap_or_else(|e| panic!("{name}: {e}"));
        e2e::check_inputs(&g, &inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
        let case_dir = scratch.join(&name);
        e2e::write_inputs(&case_dir, &inputs).unwrap_or_else(|e| panic!("{e}"));
        objects.push((name.clone(), art.object));
        cases.push((name.clone(), case_dir.clone()));
        graphs.push((name, g, want, case_dir));
    }
    // compressed models, against the host JIT running the same graph: 8
    // patterns + 25% connectivity + int8 (the pattern conv kernel and the
    // input quantisers), int8 on the integer conv kernel (QConv), and
    // tiny_transformer's int8 products, on the one-pixel product where the
    // target has one (`dotprod`), else f32 on the grid; the generated
    // upsample_head's integer ConvTranspose
    let int8 = "[default]\nquant = \"int8\"\n";
    let pruned = "[default]\nquant = \"int8\"\npatterns = 8\nconnectivity = 0.25\n";
    let quads = "[default]\nquant = \"int8\"\npatterns = 8\nconnectivity = 0.25\npattern_group = 4\n";
    let low_rank = "[default]\nquant = \"int8\"\nlow_rank = 16\n";
    let tucker = "[default]\ntucker = [8, 16]\n";
    let nm = "[default]\nquant = \"int8\"\nnm = \"2:4\"\n";
    // a quarter of each 1x1 conv's kernels kept: the pattern kernel's one-tap entries
    let nm_quarter = "[default]\nnm = \"1:4\"\n";
    // (name, fixture, plan, the int8 rule group, whether QConvs must be
    // there (None: either), whether the plan removes MACs)
    for (name, model, plan, int8_kernels, qconvs, fewer) in [
        ("digits_cnn_pruned", "digits_cnn", pruned, false, Some(false), true),
        ("digits_cnn_quads", "digits_cnn", quads, true, None, true),
        ("digits_cnn_int8", "digits_cnn", int8, true, Some(true), false),
        ("digits_cnn_low_rank", "digits_cnn", low_rank, true, None, true),
        ("digits_cnn_tucker", "digits_cnn", tucker, false, Some(false), true),
        ("digits_mlp_nm", "digits_mlp", nm, true, None, true),
        // 5x5 patterns (fitted 8-tap libraries), f32 on the grid and in quads
        ("digits_cnn5_pruned", "digits_cnn5", pruned, false, Some(false), true),
        ("digits_cnn5_quads", "digits_cnn5", quads, true, None, true),
        ("ds_cnn_kws_nm", "ds_cnn_kws", nm_quarter, false, Some(false), true),
        ("tiny_transformer_int8", "tiny_transformer", int8, true, Some(t.cpu == "dotprod"), false),
        // an integer ConvTranspose: a 1x1 QConv and the interleaving pixel shuffle
        ("upsample_head_int8", "upsample_head", int8, true, Some(true), false),
        // overlapping ones whose output the stride does not divide: phases and a crop
        ("upsample_odd_int8", "upsample_odd", int8, true, Some(true), false),
    ] {
        let (g, art, inputs, want) = compressed(t, (name, model), plan, (int8_kernels, qconvs, fewer));
        let case_dir = scratch.join(name);
        e2e::write_inputs(&case_dir, &inputs).unwrap_or_else(|e| panic!("{e}"));
        objects.push((name.to_string(), art.object));
        cases.push((name.to_string(), case_dir.clone()));
        graphs.push((name.to_string(), g, want, case_dir));
    }
    let compiled = start.elapsed().as_secs_f64();
    let exe = e2e::link_harness(t, &scratch, &objects).unwrap_or_else(|e| panic!("{e}"));
    let linked = start.elapsed().as_secs_f64();
    let ran: std::collections::BTreeMap<String, Result<(), String>> =
        e2e::run_harness(t, &exe, &cases).into_iter().collect();
    let run_secs = start.elapsed().as_secs_f64() - linked;
    let mut failures = Vec::new();
    for (name, g, want, dir) in &graphs {
        let r = match ran.get(name) {
            Some(Ok(())) => e2e::read_outputs(g, dir).and_then(|got| e2e::compare_all(want, &got)),
            Some(Err(m)) => Err(m.clone()),
            None => Err("the harness reported nothing".into()),
        };
        match r {
            Ok(e) => eprintln!("{} {name}: ok, max abs err {:.3e}, max rel err {:.3e}", t.label, e.max_abs, e.max_rel),
            Err(m) => {
                eprintln!("{} {name}: FAILED: {m}", t.label);
                failures.push(format!("{name}: {m}"));
            }
        }
    }
    eprintln!("{}: compile {compiled:.1} s, link {:.1} s, run {run_secs:.1} s", t.label, linked - compiled);
    assert!(failures.is_empty(), "{}: {} models failed:\n{}", t.label, failures.len(), failures.join("\n"));
}

/// The fixture (or generated model) `model` compressed by `plan` for `t` (with the `int8` group
/// when `int8_kernels`; calibrated on its `calib_x.npy`, else its input):
/// the graph, which must hold `QConv`s where `qconvs` says (`None`: it may
/// or may not, as the target's kernels decide) and fewer MACs than the
/// model where `fewer` says (the compression report's totals), the artifact,
/// the inputs and the host JIT's outputs on them (baseline preset, so the
/// reference is CPU-independent).
fn compressed(
    t: &Target,
    (name, model): (&str, &str),
    plan: &str,
    (int8_kernels, want_qconvs, fewer): (bool, Option<bool>, bool),
) -> (kerf_ir::Graph, kerf_targets::Artifact, Vec<kerf_ir::Tensor>, Vec<kerf_ir::Tensor>) {
    let fixture = e2e::testsuite_dir().join("fixtures/models").join(model);
    let dir = if fixture.is_dir() { fixture } else { e2e::testsuite_dir().join("generated").join(model) };
    let plan = kerf_compress::Plan::parse(plan).unwrap_or_else(|e| panic!("{e}"));
    let calib_file = ["calib_x.npy", "input_0.npy"].map(|f| dir.join(f)).into_iter().find(|p| p.exists());
    let calib_file = calib_file.unwrap_or_else(|| panic!("{model}: no calibration data"));
    let names = kerf_pipeline::Session::new(dir.join("model.onnx")).model_inputs();
    let input_name = names.unwrap_or_else(|e| panic!("{model}: {e}")).remove(0);
    let calib = vec![(input_name, e2e::read_npy(&calib_file).unwrap_or_else(|e| panic!("{e}")))];
    let passes = kerf_pipeline::PassOptions { int8_kernels, ..Default::default() };
    let s = kerf_pipeline::Session::new(dir.join("model.onnx"))
        .name(name)
        .target(t.target())
        .compression(plan, calib)
        .pass_options(passes);
    let opt = s.graph().unwrap_or_else(|e| panic!("{}: {name}: {e}", t.label));
    let (macs, kept, ..) = opt.compression.as_ref().map(|r| r.totals()).unwrap_or_else(|| panic!("{name}: no report"));
    assert_eq!(kept < macs, fewer, "{name}: MACs {macs} -> {kept}");
    let g = opt.graph;
    let qconvs = g.nodes.iter().filter(|n| matches!(n.op, kerf_ir::Op::QConv(_))).count();
    if let Some(want) = want_qconvs {
        assert_eq!(qconvs > 0, want, "{name}: {qconvs} QConv nodes");
    }
    let art = s.compile(&g).unwrap_or_else(|e| panic!("{}: {name}: compile: {e}", t.label));
    let inputs = e2e::read_numbered(&dir, "input").unwrap_or_else(|e| panic!("{name}: {e}"));
    // the host's baseline preset: the same reference bits on every x86-64
    let host = kerf_targets::CompileOptions::new(kerf_targets::Target::host_baseline(), &format!("{name}_host"));
    let want = e2e::jit_run_with(&g, &host, &inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
    (g, art, inputs, want)
}

#[test]
fn x86_64_native() {
    run_target(&e2e::X86_64);
}

#[test]
fn aarch64_qemu() {
    run_target(&e2e::AARCH64);
}

/// The `dotprod` preset: digits_cnn's integer conv on the `sdot` tile.
#[test]
fn aarch64_dotprod_qemu() {
    run_target(&e2e::AARCH64_DOTPROD);
}

#[test]
fn riscv64_qemu() {
    run_target(&e2e::RISCV64);
}

#[test]
fn riscv64_v_qemu() {
    run_target(&e2e::RISCV64_V);
}
