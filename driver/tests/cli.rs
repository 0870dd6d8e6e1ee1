//! The `kerf` binary as a user runs it: outputs, exit codes, error messages.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testsuite/fixtures")
}

fn kerf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kerf")).args(args).output().expect("kerf runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A user error: exit code 1, a rustc-style message, no panic or backtrace.
fn assert_user_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected '{n}' in: {err}");
    }
}

#[test]
fn inspect_totals_match_model_metadata() {
    let models = fixtures().join("models");
    let mut checked = 0;
    for entry in std::fs::read_dir(&models).unwrap() {
        let dir = entry.unwrap().path();
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
        let out = kerf(&["inspect", "--json", dir.join("model.onnx").to_str().unwrap()]);
        assert!(out.status.success(), "{}: {}", dir.display(), stderr(&out));
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let totals = &j["totals"];
        for key in ["params", "weight_bytes", "macs", "peak_activation_bytes"] {
            assert!(totals[key].is_u64(), "{}: totals.{key} missing", dir.display());
        }
        assert_eq!(totals["params"], meta["params"], "{}", dir.display());
        assert_eq!(totals["macs"], meta["macs"], "{}", dir.display());
        assert!(totals["peak_activation_bytes"].as_u64().unwrap() > 0);
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} fixture models");
}

#[test]
fn inspect_table_names_nodes_and_totals() {
    let m = fixtures().join("models/digits_cnn/model.onnx");
    let out = kerf(&["inspect", m.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Conv") && text.contains("Gemm"), "{text}");
    assert!(text.contains("params 9930"), "{text}");
    assert!(text.contains("MACs 309248"), "{text}");
}

#[test]
fn dump_ir_is_deterministic_and_parses() {
    let m = fixtures().join("models/digits_mlp/model.onnx");
    // `optimized` is the older spelling of `optimize`
    for stage in ["import", "optimize", "optimized"] {
        let a = kerf(&["inspect", "--dump-ir", stage, m.to_str().unwrap()]);
        let b = kerf(&["inspect", "--dump-ir", stage, m.to_str().unwrap()]);
        assert!(a.status.success(), "{}", stderr(&a));
        assert_eq!(a.stdout, b.stdout);
        let text = String::from_utf8(a.stdout).unwrap();
        // the graph is named by the symbol name, as `kerf compile` names it
        assert!(text.starts_with("graph \"digits_mlp\"\n"), "{text}");
        assert!(text.contains("Gemm{"), "{text}");
    }
}

#[test]
fn no_winograd_keeps_convs_direct() {
    let m = fixtures().join("models/digits_cnn/model.onnx");
    let ir = |extra: &[&str]| {
        let mut args = vec!["inspect", "--dump-ir", "optimize", m.to_str().unwrap()];
        args.extend(extra);
        let o = kerf(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    assert!(ir(&[]).contains("winograd=4"), "digits_cnn's 3x3 convs run as Winograd by default");
    let direct = ir(&["--no-winograd"]);
    assert!(!direct.contains("winograd="), "{direct}");
    assert!(direct.contains("ConvFused{"), "{direct}");
}

#[test]
fn unsupported_ops_are_listed_at_once() {
    let m = fixtures().join("bad/unsupported_ops.onnx");
    let out = kerf(&["inspect", m.to_str().unwrap()]);
    assert_user_error(&out, &["StringNormalizer", "'norm1'", "'norm2'", "TfIdfVectorizer", "'tfidf'"]);
}

#[test]
fn dynamic_dims_need_input_shape() {
    let m = fixtures().join("bad/dynamic_batch.onnx");
    let out = kerf(&["inspect", m.to_str().unwrap()]);
    assert_user_error(&out, &["'x'", "batch", "--input-shape"]);
    let ok = kerf(&["inspect", "--json", "--input-shape", "x=3,4", m.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let j: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(j["outputs"][0]["shape"], serde_json::json!([3, 4]));
    let bad = kerf(&["inspect", "--input-shape", "x=3,-4", m.to_str().unwrap()]);
    assert_user_error(&bad, &["--input-shape"]);
}

/// `inspect` and `compile`/`run` go through one pipeline: a repeated
/// `--input-shape` is the same error in each (compile used to let the last
/// one win silently).
#[test]
fn repeated_input_shape_is_an_error_in_every_subcommand() {
    let m = fixtures().join("bad/dynamic_batch.onnx");
    let m = m.to_str().unwrap();
    let out_dir = std::env::temp_dir().join(format!("kerf-cli-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let obj = out_dir.join("m.o");
    let twice = ["--input-shape", "x=3,4", "--input-shape", "x=5,4"];
    for cmd in [vec!["inspect", m], vec!["compile", m, "-o", obj.to_str().unwrap()], vec!["run", m]] {
        let args: Vec<&str> = cmd.iter().copied().chain(twice).collect();
        assert_user_error(&kerf(&args), &["--input-shape given twice for 'x'"]);
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn shape_mismatch_names_the_node() {
    let m = fixtures().join("bad/shape_mismatch.onnx");
    assert_user_error(&kerf(&["inspect", m.to_str().unwrap()]), &["node 'add_0' (Add)", "[1, 4]", "[1, 3]"]);
}

#[test]
fn unknown_domain_names_node_and_domain() {
    let m = fixtures().join("bad/unknown_domain.onnx");
    assert_user_error(&kerf(&["inspect", m.to_str().unwrap()]), &["foo_node", "com.example"]);
}

#[test]
fn garbage_and_missing_files_are_errors() {
    let m = fixtures().join("bad/not_a_model.onnx");
    assert_user_error(&kerf(&["inspect", m.to_str().unwrap()]), &["not_a_model.onnx"]);
    assert_user_error(&kerf(&["inspect", "/nonexistent/model.onnx"]), &["/nonexistent/model.onnx"]);
}

/// The large architectures (MobileNetV2, ResNet-18, SqueezeNet, tiny
/// transformer, ...) are rebuilt with seeded weights by
/// `testsuite/scripts/make_models.py` (run by `testsuite/run-all.sh`).
#[test]
fn inspect_generated_models_match_their_metadata() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testsuite/generated");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!("{}: {e}; run `bash testsuite/run-all.sh` (or testsuite/scripts/make_models.py) first", dir.display())
    });
    let mut checked = Vec::new();
    for entry in entries {
        let d = entry.unwrap().path();
        if !d.join("meta.json").exists() {
            continue;
        }
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("meta.json")).unwrap()).unwrap();
        let out = kerf(&["inspect", "--json", d.join("model.onnx").to_str().unwrap()]);
        assert!(out.status.success(), "{}: {}", d.display(), stderr(&out));
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(j["totals"]["params"], meta["params"], "{}", d.display());
        assert_eq!(j["totals"]["macs"], meta["macs"], "{}", d.display());
        checked.push(d.file_name().unwrap().to_string_lossy().into_owned());
    }
    for want in ["mobilenet_v2", "resnet18", "squeezenet1_1", "tiny_transformer"] {
        assert!(checked.iter().any(|c| c == want), "{want} not generated; have {checked:?}");
    }
}

/// `kerf bench`: the output format (not the timings), per-kernel profile
/// rows, zero inputs by default, given inputs by name, user errors.
#[test]
fn bench_prints_times_and_profile() {
    let dir = fixtures().join("models/digits_cnn");
    let m = dir.join("model.onnx");
    let x = format!("input={}", dir.join("input_0.npy").display());
    let out =
        kerf(&["bench", m.to_str().unwrap(), "--iters", "5", "--warmup", "1", "--threads", "2", "--profile", "-i", &x]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let value = |key: &str| -> f64 {
        let line =
            text.lines().find(|l| l.starts_with(&format!("{key}: "))).unwrap_or_else(|| panic!("no {key}: {text}"));
        line[key.len() + 2..].trim_end_matches(" ms").parse().unwrap_or_else(|_| panic!("{line}"))
    };
    assert_eq!(value("iters"), 5.0);
    assert_eq!(value("warmup"), 1.0);
    assert_eq!(value("threads"), 2.0);
    let (med, min, p90) = (value("median"), value("min"), value("p90"));
    assert!(min > 0.0 && min <= med && med <= p90, "{text}");
    // profile: a header, one row per kernel naming op and layer, a total
    assert!(text.contains("profile: ") && text.contains("GFLOP/s"), "{text}");
    let rows: Vec<&str> = text.lines().skip_while(|l| !l.contains("GFLOP/s")).skip(1).collect();
    assert!(rows.iter().any(|r| r.contains("Conv")) && rows.iter().any(|r| r.contains("Gemm")), "{text}");
    let total = rows.iter().position(|r| r.contains("total")).unwrap_or_else(|| panic!("no total: {text}"));
    // the non-zero share of each weighted kernel's weight (dense: all of
    // it, bar a stray exact zero), "-" for kernels without one
    for r in &rows[..total] {
        let nz = r.split_whitespace().rev().nth(2).unwrap_or_else(|| panic!("{r}"));
        let op = r.split_whitespace().nth(1).unwrap_or_default();
        let weighted = ["Conv", "QConv", "Gemm", "MatMul"].iter().any(|w| op.starts_with(w));
        assert!(if weighted { nz.parse::<f64>().is_ok_and(|p| p >= 99.0) } else { nz == "-" }, "{r}\n{text}");
    }
    assert!(rows[total].contains("100.0%"), "{text}");
    assert!(rows[total + 1].starts_with("split: ") && rows[total + 1].ends_with("% of the time"), "{text}");
    // every kernel row names its code family; baseline has no assembled kernels
    let family = |r: &&str| ["scalar", "cl-128", "avx2", "avx512"].iter().any(|f| r.ends_with(&format!("  {f}")));
    assert!(rows[..total].iter().all(family), "{text}");
    // on a host with AVX2 + FMA, the native build's convs and Gemm run assembled kernels and say so
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        let wide = ["  avx2", "  avx512"];
        assert!(rows[..total].iter().any(|r| wide.iter().any(|f| r.ends_with(f))), "{text}");
    } else {
        eprintln!("the host lacks AVX2 + FMA: no assembled kernel family to expect");
    }
    let out = kerf(&["bench", m.to_str().unwrap(), "--iters", "2", "--warmup", "0", "--cpu", "baseline", "--profile"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let base = String::from_utf8(out.stdout).unwrap();
    let base_rows: Vec<&str> =
        base.lines().skip_while(|l| !l.contains("GFLOP/s")).skip(1).take_while(|l| !l.contains("total")).collect();
    assert!(
        !base_rows.is_empty() && base_rows.iter().all(family) && !base_rows.iter().any(|r| r.ends_with("avx2")),
        "{base}"
    );
    // zeros when no input is given
    let out = kerf(&["bench", m.to_str().unwrap(), "--iters", "3", "--warmup", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8(out.stdout).unwrap().contains("median: "));
    assert_user_error(&kerf(&["bench", m.to_str().unwrap(), "--threads", "0"]), &["--threads"]);
    assert_user_error(&kerf(&["bench", m.to_str().unwrap(), "--iters", "0"]), &["--iters"]);
    assert_user_error(&kerf(&["bench", m.to_str().unwrap(), "-i", "nope=x.npy"]), &["no input named 'nope'"]);
}

fn cli_fixture(name: &str) -> String {
    fixtures().join("cli").join(name).to_string_lossy().into_owned()
}

/// `kerf run` reads every dtype a model input can have: here float16
/// (refused as "dtype 'f2'" before).
#[test]
fn run_reads_float16_inputs() {
    let out = kerf(&[
        "run",
        &cli_fixture("f16_abs.onnx"),
        "-i",
        &cli_fixture("f16_x.npy"),
        "--expect",
        &cli_fixture("f16_y.npy"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A dynamic dimension takes its size from the input file, and an input the
/// model needs constant (Reshape's shape) is bound from its file, with a note.
#[test]
fn run_takes_shapes_from_files_and_binds_shape_inputs() {
    let (m, x, shape, y) = (
        cli_fixture("reshape_input.onnx"),
        cli_fixture("reshape_x.npy"),
        cli_fixture("reshape_shape.npy"),
        cli_fixture("reshape_y.npy"),
    );
    let out = kerf(&["run", &m, "-i", &x, "-i", &shape, "--expect", &y]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("note: input 'shape' bound"), "{}", stderr(&out));
    // without the shape's value the error says how to bind it
    let out = kerf(&["run", &m, "-i", &x]);
    assert_user_error(&out, &["'shape'", "--bind shape="]);
}

/// `--bind` folds an `If` condition's input at compile time (a sample-rate
/// switch): the compiled model has one input left.
#[test]
fn bind_folds_an_input_at_compile_time() {
    let m = cli_fixture("if_rate.onnx");
    let sr = format!("sr={}", cli_fixture("sr16k.npy"));
    let dir = std::env::temp_dir().join(format!("kerf-cli-bind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (obj, hdr) = (dir.join("m.o"), dir.join("m.h"));
    // unbound, `sr` stays a run-time input: both branches are computed and
    // the result selected by the condition
    let unbound = kerf(&["compile", &m, "-o", obj.to_str().unwrap()]);
    assert!(unbound.status.success(), "{}", stderr(&unbound));
    for (rate, want) in [("sr16k.npy", "sr_y16k.npy"), ("sr8k.npy", "sr_y8k.npy")] {
        let out = kerf(&[
            "run",
            &m,
            "-i",
            &format!("x={}", cli_fixture("sr_x.npy")),
            "-i",
            &format!("sr={}", cli_fixture(rate)),
            "--expect",
            &cli_fixture(want),
        ]);
        assert!(out.status.success(), "{rate}: {}", stderr(&out));
    }
    let out = kerf(&["compile", &m, "--bind", &sr, "-o", obj.to_str().unwrap(), "--header", hdr.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let h = std::fs::read_to_string(&hdr).unwrap();
    assert!(h.contains("#define IF_RATE_NUM_INPUTS 1\n"), "{h}");
    assert!(h.contains("Model input 'sr' was bound to a constant at compile time"), "the header says so: {h}");
    let out = kerf(&[
        "run",
        &m,
        "--bind",
        &sr,
        "-i",
        &format!("x={}", cli_fixture("sr_x.npy")),
        "--expect",
        &cli_fixture("sr_y16k.npy"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bad = kerf(&["compile", &m, "--bind", "sr", "-o", obj.to_str().unwrap()]);
    assert_user_error(&bad, &["--bind 'sr'", "NAME=FILE.npy"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kerf tune` chooses precision, pruning and rank itself: the flags that
/// say what to compress are an error naming them; the settings flags
/// are read and checked like everywhere else (a bad `--byte-pairs`).
#[test]
fn tune_rejects_what_it_searches_and_checks_the_settings() {
    let m = fixtures().join("models/digits_cnn");
    let p = |f: &str| m.join(f).to_str().unwrap().to_string();
    let (model, calib, data, labels) = (p("model.onnx"), p("calib_x.npy"), p("test_x.npy"), p("test_y.npy"));
    let common = ["tune", &model, "--calib", &calib, "--data", &data, "--labels", &labels];
    let o = kerf(&[&common[..], &["--quantize", "int8", "--prune-patterns", "8"]].concat());
    assert_user_error(&o, &["chooses precision, pruning and rank per layer itself", "--quantize, --prune-patterns"]);
    let o = kerf(&[&common[..], &["--byte-pairs", "sometimes"]].concat());
    assert_user_error(&o, &["--byte-pairs"]);
    let o = kerf(&[&common[..], &["--pattern-group", "4"]].concat());
    assert_user_error(&o, &["drop --pattern-group"]);
    let o = kerf(&[&common[..], &["--equalize"]].concat());
    assert_user_error(&o, &["--equalize", "kerf compress MODEL --equalize"]);
}

/// A settings flag given alone reaches the int8 variants `kerf tune`
/// writes (a size search: every layer takes an int8 variant).
#[test]
fn tune_writes_the_settings_flags_into_its_int8_variants() {
    let m = fixtures().join("models/digits_cnn");
    let p = |f: &str| m.join(f).to_str().unwrap().to_string();
    let dir = std::env::temp_dir().join(format!("kerf-cli-tune-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plan = dir.join("plan.toml");
    let args = [
        "tune",
        &p("model.onnx"),
        "--calib",
        &p("calib_x.npy"),
        "--data",
        &p("test_x.npy"),
        "--labels",
        &p("test_y.npy"),
        "--objective",
        "size",
        "--iters",
        "3",
        "--no-cache",
        "--observer",
        "kl",
        "-o",
        plan.to_str().unwrap(),
    ];
    let o = kerf(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&plan).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let int8 = text.matches("quant = \"int8\"").count();
    assert!(int8 > 0 && text.matches("observer = \"kl\"").count() == int8, "{text}");
}

/// `--residual` takes the plan's spellings: anything else is an error
/// naming the flag and what it takes, exit 1, before any work.
#[test]
fn residual_flag_is_checked() {
    let m = fixtures().join("models/digits_cnn");
    let p = |f: &str| m.join(f).to_str().unwrap().to_string();
    let o = kerf(&["run", &p("model.onnx"), "--quantize", "int8", "--calib", &p("calib_x.npy"), "--residual", "int4"]);
    assert_user_error(&o, &["--residual", "'int4'", "f32, int8"]);
}

/// Issue 15's bad input, as a user meets it: pruning flags on a model
/// without 3x3 convs compile it dense with a note per layer (not an
/// error); `--calib` given a folder reads `<input>.npy` from it; fractions, ranks and pattern counts out of range, a missing or
/// absent calibration file, `--calib` alone and a malformed number are
/// errors naming what is wrong, exit 1, before any work.
#[test]
fn compression_flags_are_checked() {
    let m = fixtures().join("models/digits_mlp");
    let p = |f: &str| m.join(f).to_str().unwrap().to_string();
    let (model, calib) = (p("model.onnx"), p("calib_x.npy"));
    let dir = std::env::temp_dir().join(format!("kerf-cli-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let obj = dir.join("m.o");
    let compile = |extra: &[&str]| kerf(&[&["compile", &model, "-o", obj.to_str().unwrap()], extra].concat());
    let o = compile(&["--prune-patterns", "8", "--calib", &calib]);
    assert!(o.status.success(), "{}", stderr(&o));
    // the per-layer report goes to stderr, beside the compile summary
    let err = stderr(&o);
    assert_eq!(err.matches("pruning applies to 3x3 and 5x5 convs only: left dense").count(), 3, "{err}");
    // a folder of `<input>.npy` files calibrates too; one without them is an error naming the file
    let folder = dir.join("calib");
    std::fs::create_dir_all(&folder).unwrap();
    let o = compile(&["--quantize", "int8", "--calib", folder.to_str().unwrap()]);
    assert_user_error(&o, &["'input'", "input.npy", "no calibration file", "it holds no .npy file"]);
    // a file under another name: the message lists what the folder holds
    std::fs::copy(&calib, folder.join("x.npy")).unwrap();
    let o = compile(&["--quantize", "int8", "--calib", folder.to_str().unwrap()]);
    assert_user_error(&o, &["input.npy", "it holds x.npy"]);
    std::fs::copy(&calib, folder.join("input.npy")).unwrap();
    let o = compile(&["--quantize", "int8", "--calib", folder.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
    for (flags, needles) in [
        (&["--connectivity", "1.5"][..], &["connectivity = 1.5", "[0, 1)"][..]),
        (&["--low-rank", "0"], &["low_rank = 0", "(0, 1)"]),
        (&["--prune-patterns", "99"], &["patterns = 99", "56"]),
        (&["--prune-nm", "5:4"], &["--prune-nm '5:4'", "N:M"]),
        (&["--connectivity", "abc"], &["'abc'", "--connectivity"]),
    ] {
        assert_user_error(&compile(&[flags, &["--calib", &calib]].concat()), needles);
    }
    assert_user_error(&compile(&["--prune-patterns", "8"]), &["calibration data", "--calib"]);
    assert_user_error(&compile(&["--prune-patterns", "8", "--calib", "/nonexistent/c.npy"]), &["/nonexistent/c.npy"]);
    assert_user_error(&compile(&["--calib", &calib]), &["--calib given without a compression flag"]);
}

/// `kerf eval --save-outputs` writes what it scored: output 0 of every
/// sample, stacked, from the compressed model when compression flags are
/// given; its arg-max per row is the printed top-1, and the int8 logits
/// are close to, but not, the FP32 ones. A file it cannot write is a user
/// error.
#[test]
fn eval_saves_the_outputs_it_scored() {
    let d = fixtures().join("models/digits_cnn");
    let dir = std::env::temp_dir().join(format!("kerf-cli-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |f: &str| d.join(f).to_str().unwrap().to_string();
    let (model, x, y, calib) = (path("model.onnx"), path("test_x.npy"), path("test_y.npy"), path("calib_x.npy"));
    let run = |name: &str, flags: &[&str]| {
        let out = dir.join(name);
        let mut args = vec!["eval", &model, "--data", &x, "--labels", &y, "--limit", "60"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--save-outputs", out.to_str().unwrap()]);
        let o = kerf(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let top1: f64 = stdout.lines().find_map(|l| l.strip_prefix("top1: ")).unwrap()[..6].parse().unwrap();
        (kerf_pipeline::npy::read(&out).unwrap(), top1)
    };
    let labels = kerf_pipeline::npy::read(&d.join("test_y.npy")).unwrap().to_i64_vec();
    let (fp32, fp32_top1) = run("fp32.npy", &[]);
    let (int8, int8_top1) = run("int8.npy", &["--quantize", "int8", "--calib", &calib]);
    for (t, top1) in [(&fp32, fp32_top1), (&int8, int8_top1)] {
        assert_eq!(t.shape(), &[60, 1, 10]);
        let v = t.to_f32_vec();
        let hits = v
            .chunks(10)
            .zip(&labels)
            .filter(|(r, &l)| r.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as i64 == l)
            .count();
        assert!((hits as f64 / 60.0 - top1).abs() < 1e-4, "{hits}/60 vs top1 {top1}");
    }
    let (a, b) = (fp32.to_f32_vec(), int8.to_f32_vec());
    let worst = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
    assert!(worst > 0.0 && worst < 1.0, "int8 logits {worst} from FP32's");
    let o = kerf(&["eval", &model, "--data", &x, "--limit", "2", "--save-outputs", "/nonexistent-dir/o.npy"]);
    assert_user_error(&o, &["--save-outputs", "/nonexistent-dir/o.npy"]);
    std::fs::remove_dir_all(&dir).ok();
}

/// Numbers past what a flag means, labels that are not classes of a
/// classifier's output, and an empty evaluation are clear errors (a review
/// found each one accepted, or aborting: `--threads 100000` failed to set up
/// thread stacks, `--iters 2^64−1` overflowed a capacity, a negative
/// `--time-budget` panicked converting to a duration, out-of-range labels
/// were counted as misses, a transformer's `[1, 64, 128]` output was
/// ranked as 8,192 classes); `kerf compress` refuses to write over its
/// input model.
#[test]
fn out_of_range_flags_labels_and_outputs_are_clear_errors() {
    let d = fixtures().join("models/digits_cnn");
    let p = |f: &str| d.join(f).to_str().unwrap().to_string();
    let (model, x, y) = (p("model.onnx"), p("test_x.npy"), p("test_y.npy"));
    let dir = std::env::temp_dir().join(format!("kerf-cli-ranges-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let labels = |name: &str, v: &[i64]| {
        let path = dir.join(name);
        let t = kerf_ir::Tensor::from_i64_values(kerf_ir::DType::I64, vec![v.len()], v).unwrap();
        kerf_pipeline::npy::write(&path, &t).unwrap();
        path.to_str().unwrap().to_string()
    };
    let mut bad: Vec<i64> = vec![0; 450];
    bad[7] = 10;
    let oob = labels("oob.npy", &bad);
    bad[7] = -1;
    let neg = labels("neg.npy", &bad);
    assert_user_error(&kerf(&["eval", &model, "--data", &x, "--labels", &oob]), &["label 10 (sample 7)"]);
    assert_user_error(&kerf(&["eval", &model, "--data", &x, "--labels", &neg]), &["label -1 (sample 7)"]);
    assert_user_error(&kerf(&["eval", &model, "--data", &x, "--labels", &y, "--limit", "0"]), &["no samples"]);
    assert_user_error(&kerf(&["bench", &model, "--threads", "100000"]), &["--threads 100000"]);
    assert_user_error(&kerf(&["bench", &model, "--iters", "18446744073709551615"]), &["--iters"]);
    let calib = p("calib_x.npy");
    let tune = |budget: &str| {
        let flag = format!("--time-budget={budget}");
        kerf(&["tune", &model, "--calib", &calib, "--data", &x, "--labels", &y, &flag])
    };
    assert_user_error(&tune("-1"), &["--time-budget"]);
    assert_user_error(&tune("nan"), &["--time-budget"]);
    let out = p("output_0.npy");
    let input = p("input_0.npy");
    assert_user_error(&kerf(&["run", &model, "-i", &input, "--expect", &out, "--atol", "nan"]), &["--atol"]);
    // a model whose output is not one score per class
    let t = fixtures().join("models/tiny_transformer");
    let tx = t.join("input_0.npy");
    let stacked = dir.join("tt_x.npy");
    let one = kerf_pipeline::npy::read(&tx).unwrap();
    let shape = [vec![1], one.shape().to_vec()].concat();
    let one = kerf_ir::Tensor::from_bytes(one.dtype(), shape, one.bytes().to_vec()).unwrap();
    kerf_pipeline::npy::write(&stacked, &one).unwrap();
    let tl = labels("tt_y.npy", &[3]);
    let tm = t.join("model.onnx");
    let e = kerf(&["eval", tm.to_str().unwrap(), "--data", stacked.to_str().unwrap(), "--labels", &tl]);
    assert_user_error(&e, &["one score per class", "[1, 64, 128]"]);
    // compress onto its own input
    let copy = dir.join("m.onnx");
    std::fs::copy(&model, &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let c = copy.to_str().unwrap();
    let o = kerf(&["compress", c, "--quantize", "int8", "--calib", &calib, "-o", c]);
    assert_user_error(&o, &["is the model being compressed"]);
    assert_eq!(std::fs::read(&copy).unwrap(), before, "the model is untouched");
    std::fs::remove_dir_all(&dir).ok();
}

/// Flags that would change nothing, or fail only after minutes of work,
/// are errors up front that name the flag or file: a setting of a
/// technique not asked for, `tune --report`/`--cache` onto a file, and a
/// truncated `.npy`.
#[test]
fn flags_that_would_do_nothing_and_cut_files_are_named() {
    let d = fixtures().join("models/digits_cnn");
    let p = |f: &str| d.join(f).to_str().unwrap().to_string();
    let (model, x, y, calib) = (p("model.onnx"), p("test_x.npy"), p("test_y.npy"), p("calib_x.npy"));
    let alone =
        |flags: &[&str]| kerf(&[&["eval", &model, "--data", &x, "--labels", &y, "--calib", &calib], flags].concat());
    assert_user_error(&alone(&["--weight-bits", "7"]), &["--weight-bits", "needs --quantize int8"]);
    assert_user_error(
        &alone(&["--quantize", "f32", "--rounding", "nearest"]),
        &["--rounding", "needs --quantize int8"],
    );
    assert_user_error(
        &alone(&["--low-rank", "0.9", "--selection", "magnitude"]),
        &["--selection", "needs --prune-patterns"],
    );
    assert_user_error(
        &alone(&["--prune-nm", "2:4", "--pattern-group", "4"]),
        &["--pattern-group", "needs --prune-patterns"],
    );
    // a plan counts for what its layers ask, not for being given
    let dir = std::env::temp_dir().join(format!("kerf-cli-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plan = |name: &str, text: &str| {
        let f = dir.join(name);
        std::fs::write(&f, text).unwrap();
        f.to_str().unwrap().to_string()
    };
    let (low_rank, one_int8) = (
        plan("low_rank.toml", "[default]\nlow_rank = 0.9\n"),
        plan("one_int8.toml", "[[layer]]\nmatch = \"*\"\nquant = \"int8\"\n"),
    );
    assert_user_error(
        &alone(&["--plan", &low_rank, "--rounding", "nearest"]),
        &["--rounding", "needs --quantize int8", "low_rank.toml' (with the flags given) has one"],
    );
    assert_user_error(
        &alone(&["--plan", &low_rank, "--pattern-group", "4"]),
        &["--pattern-group", "low_rank.toml' (with the flags given) has one"],
    );
    assert_user_error(
        &alone(&["--plan", &low_rank, "--no-int8-kernels"]),
        &["--no-int8-kernels", "needs --quantize int8"],
    );
    let ok = alone(&["--plan", &one_int8, "--rounding", "nearest", "--limit", "20"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    std::fs::remove_dir_all(&dir).ok();
    // eval says so before its FP32 pass (which prints the sample count)
    assert!(!String::from_utf8_lossy(&alone(&["--weight-bits", "7"]).stdout).contains("samples:"));
    let ok = alone(&["--quantize", "int8", "--weight-bits", "7", "--limit", "20"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let dir = std::env::temp_dir().join(format!("kerf-cli-named-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("taken");
    std::fs::write(&file, "x").unwrap();
    let f = file.to_str().unwrap();
    for flag in ["--report", "--cache"] {
        let o = kerf(&["tune", &model, "--calib", &calib, "--data", &x, "--labels", &y, flag, f]);
        assert_user_error(&o, &[flag, f, "takes a folder"]);
    }
    let cut = dir.join("cut.npy");
    let whole = std::fs::read(&x).unwrap();
    std::fs::write(&cut, &whole[..whole.len() - 100]).unwrap();
    let o = kerf(&["eval", &model, "--data", cut.to_str().unwrap(), "--labels", &y]);
    assert_user_error(&o, &["cut.npy", "truncated"]);
    // data to score may hold NaN: scored, with a note
    let t = kerf_pipeline::npy::read(Path::new(&x)).unwrap();
    let mut bytes = t.bytes().to_vec();
    bytes[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    let nan = dir.join("nan.npy");
    kerf_pipeline::npy::write(&nan, &kerf_ir::Tensor::from_bytes(t.dtype(), t.shape().to_vec(), bytes).unwrap())
        .unwrap();
    let o = kerf(&["eval", &model, "--data", nan.to_str().unwrap(), "--labels", &y, "--limit", "5"]);
    assert!(o.status.success() && stderr(&o).contains("holds 1 NaN or Inf value(s)"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).ok();
    // memory a run cannot have: an error from the runtime's arena, not an
    // abort; where the kernel grants any allocation (overcommit mode 1) the
    // run would get 640 GB it then writes, so not there
    let overcommit = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap_or_default();
    if overcommit.trim() == "1" {
        eprintln!("skipped the 640 GB arena: vm.overcommit_memory = 1 grants it");
        return;
    }
    let (huge, one) = (cli_fixture("huge_activation.onnx"), format!("x={}", cli_fixture("one_x.npy")));
    for run in [&["run", &huge, "-i", &one][..], &["bench", &huge, "--iters", "1"]] {
        assert_user_error(&kerf(run), &["cannot allocate 640000000", "(640.0 GB) for the arena"]);
    }
}

/// An index input outside its axis at run time (an embedding lookup past
/// the table): `run` and `bench` exit 1 naming the Gather and its axis'
/// size, where the kernel had clamped to the last row; in range it runs.
#[test]
fn run_time_indices_out_of_range_name_the_gather() {
    let model = cli_fixture("embed.onnx");
    let (ok, bad) = (format!("ids={}", cli_fixture("ids_ok.npy")), format!("ids={}", cli_fixture("ids_bad.npy")));
    let y = format!("y={}", cli_fixture("embed_y.npy"));
    let o = kerf(&["run", &model, "-i", &ok, "--expect", &y]);
    assert!(o.status.success(), "{}", stderr(&o));
    for cmd in [&["run", &model, "-i", &bad][..], &["bench", &model, "-i", &bad, "--iters", "2"]] {
        assert_user_error(&kerf(cmd), &["outside its axis", "Gather 'embed' (axis 0 of size 10)"]);
    }
}
