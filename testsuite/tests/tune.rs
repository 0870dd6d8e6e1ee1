//! The codesign loop on the trained digits CNN: calibrated on 500 training
//! images, tuned against the first 200 test images (the fixture has no
//! labelled training split; the full models' run in docs/compression.md
//! tunes on training images) and judged on the other 250, which the tuner
//! never sees; the plan must keep top-1 within the 1-point budget there,
//! round-trip as a plan file, give the snapshotted IR, and come with a
//! complete report. The budget
//! check searches for size, which does not depend on the machine's timing;
//! the latency search is checked for the rule it follows.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use std::path::{Path, PathBuf};

use kerf_compress::Plan;
use kerf_ir::Tensor;
use kerf_pipeline::compression::samples_for;
use kerf_pipeline::dataset::{run_samples, top1};
use kerf_pipeline::{npy, Session};
use kerf_tune::{tune, write_report, Data, Metric, Objective, TuneOptions, NOISE};

fn fixture(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/models/digits_cnn").join(f)
}

fn top1_of(s: &Session, samples: &[Vec<Tensor>], labels: &[i64]) -> f64 {
    let o = s.graph().unwrap();
    let jit = s.jit(&o.graph).unwrap();
    top1(&run_samples(jit.model(), &o.graph, samples).unwrap(), labels)
}

/// The digits session, validation data (the first 200 test images) and
/// the 250 held-out samples with their labels.
fn setup() -> (Session, Data, Vec<Vec<Tensor>>, Vec<i64>) {
    let base = Session::new(fixture("model.onnx")).target(kerf_targets::Target::host_baseline());
    let g = base.import().unwrap();
    let x = npy::read(&fixture("test_x.npy")).unwrap();
    let y = npy::read(&fixture("test_y.npy")).unwrap().to_i64_vec();
    let all = samples_for(&g, &[("input".to_string(), x)]).unwrap();
    let (val, test) = all.split_at(200);
    let (val_y, test_y) = y.split_at(200);
    let calib = vec![("input".to_string(), npy::read(&fixture("calib_x.npy")).unwrap())];
    let data = Data { calib, val: val.to_vec(), labels: Some(val_y.to_vec()) };
    (base, data, test.to_vec(), test_y.to_vec())
}

#[test]
fn tuned_plan_keeps_the_budget_on_held_out_data() {
    let (base, data, test, test_y) = setup();
    let (test, test_y, calib) = (&test[..], &test_y[..], data.calib.clone());
    let opts =
        TuneOptions { objective: Objective::Size, iters: 20, ..TuneOptions::new(Metric::Top1 { max_drop: 0.01 }) };
    let mut lines = Vec::new();
    let o = tune(&base, &data, &opts, &mut |p| lines.push(p.line.to_string())).unwrap();
    assert!(o.met, "budget not met on the validation data:\n{}", lines.join("\n"));
    let plan = o.chosen().plan.clone();
    assert_eq!(Plan::parse(&plan.to_toml()).unwrap(), plan, "the plan file round-trips");
    assert!(!plan.layers.is_empty(), "the tuner compressed nothing:\n{}", lines.join("\n"));
    assert!(o.chosen().weight_bytes < o.baseline.weight_bytes);
    // judged on held-out data the tuner never saw
    let fp32 = top1_of(&base, test, test_y);
    let tuned = top1_of(&base.clone().compression(plan, calib), test, test_y);
    eprintln!("held-out top-1: fp32 {fp32:.4}, tuned {tuned:.4}");
    assert!(fp32 - tuned <= 0.01 + 1e-9, "tuned plan loses {:.2} points on held-out data", (fp32 - tuned) * 100.0);
    // the tuned model's IR: the size search does not depend on timing, so
    // the plan and the graph it gives are a snapshot (weights by content
    // hash, which f64 rounding in the factorisations may move on another
    // CPU: redacted; the scales to four significant digits; structure,
    // layouts, grids and quantisers stay)
    let tuned_ir = base.clone().compression(o.chosen().plan.clone(), data.calib.clone()).graph().unwrap().graph;
    let text = format!("{}\n{}", o.chosen().plan.to_toml(), kerf_ir::text::print(&tuned_ir));
    let redacted: String = text
        .split('#')
        .enumerate()
        .map(|(i, part)| {
            let hex = part.chars().take_while(char::is_ascii_hexdigit).count();
            if i > 0 && hex == 16 {
                format!("#<hash>{}", &part[16..])
            } else if i > 0 {
                format!("#{part}")
            } else {
                part.to_string()
            }
        })
        .collect();
    insta::assert_snapshot!("tuned_digits_cnn_size", four_digits(&redacted));
    // the report
    let dir = std::env::temp_dir().join(format!("kerf-tune-{}", std::process::id()));
    write_report(&dir, &o).unwrap();
    let svg = std::fs::read_to_string(dir.join("pareto.svg")).unwrap();
    // plotters' SVG: a dot per plan and per (layer, variant), plus the legend's
    let dots = o.evaluated.len() + o.layers.len();
    assert!(svg.matches("<circle").count() >= dots, "fewer dots than measurements ({dots})");
    assert!(svg.contains(&o.chosen().label) && svg.contains("#FF0000"), "the chosen plan is marked and named");
    for text in ["Pareto front", "top1", "latency, ms"] {
        assert!(svg.contains(text), "pareto.svg has no '{text}'");
    }
    // every variant was timed as a layer micro-benchmark
    for l in &o.layers {
        assert!(l.delta_ms.is_some_and(f64::is_finite) && l.latency_ms > 0.0, "{} {}", l.layer, l.variant);
        assert!(l.error.is_some_and(|e| e >= 0.0), "{} {}: no reconstruction error", l.layer, l.variant);
    }
    let csv = std::fs::read_to_string(dir.join("pareto.csv")).unwrap();
    assert_eq!(csv.lines().count(), o.evaluated.len() + 1);
    assert!(std::fs::read_to_string(dir.join("report.md")).unwrap().contains("(chosen)"));
    assert_eq!(std::fs::read_to_string(dir.join("layers.csv")).unwrap().lines().count(), o.layers.len() + 1);
    std::fs::remove_dir_all(&dir).ok();
}

/// Every number with a fraction or exponent in `s` that stands on its own
/// (after `[`, `=`, `,`, `(`, a space or a minus; not inside a name like
/// `0.weight` or `Add.39.Chain`) rounded to four significant digits.
fn four_digits(s: &str) -> String {
    let (mut out, b) = (String::new(), s.as_bytes());
    let mut i = 0;
    while i < b.len() {
        let after_sep = i == 0 || b"[=,( -".contains(&b[i - 1]);
        if b[i].is_ascii_digit() && after_sep {
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_digit() || b"e.".contains(&b[j]) || (b[j] == b'-' && b[j - 1] == b'e'))
            {
                j += 1;
            }
            let (tok, next) = (&s[i..j], b.get(j).copied().unwrap_or(b' '));
            let numeric = (tok.contains('.') || tok.contains('e')) && !next.is_ascii_alphanumeric();
            match tok.parse::<f64>() {
                Ok(v) if numeric => out.push_str(&format!("{v:.3e}")),
                _ => out.push_str(tok),
            }
            i = j;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

#[test]
fn latency_search_takes_only_what_measurably_pays() {
    let (base, data, _, _) = setup();
    let opts = TuneOptions { iters: 20, ..TuneOptions::new(Metric::Top1 { max_drop: 0.01 }) };
    let o = tune(&base, &data, &opts, &mut |_| {}).unwrap();
    assert!(o.met, "budget not met on the validation data");
    let b = &o.baseline;
    for r in o.layers.iter().filter(|r| r.chosen) {
        let saved = (b.latency_ms - r.latency_ms) / b.latency_ms;
        let smaller = r.weight_bytes < b.weight_bytes;
        assert!(
            saved >= NOISE || (saved > -NOISE && smaller),
            "{} {} chosen: {:.1}% latency saved, {} of {} weight bytes",
            r.layer,
            r.variant,
            saved * 100.0,
            r.weight_bytes,
            b.weight_bytes
        );
    }
}

#[test]
fn bad_tuning_input_is_a_clear_error() {
    let base = Session::new(fixture("model.onnx"));
    let x = npy::read(&fixture("test_x.npy")).unwrap();
    let samples = samples_for(&base.import().unwrap(), &[("input".to_string(), x)]).unwrap();
    let calib = vec![("input".to_string(), npy::read(&fixture("calib_x.npy")).unwrap())];
    let opts = TuneOptions { iters: 5, ..TuneOptions::new(Metric::Top1 { max_drop: 0.01 }) };
    let data = Data { calib, val: samples, labels: None };
    let e = tune(&base, &data, &opts, &mut |_| {}).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("labels"), "{e}");
}

/// A metric command in plain `python3` (no numpy): top-1 in percent of the
/// (only) output's `.npy` (float32 logits, samples stacked) against `labels`.
const TOP1_PY: &str = r#"
import os, struct, sys
d, labels = sys.argv[1], [int(x) for x in sys.argv[2].split(",")]
raw = open(os.path.join(d, sorted(os.listdir(d))[0]), "rb").read()
hl = struct.unpack("<H", raw[8:10])[0]
v = struct.unpack("<%df" % ((len(raw) - 10 - hl) // 4), raw[10 + hl:])
k = len(v) // len(labels)
hits = sum(max(range(k), key=lambda j: v[i * k + j]) == l for i, l in enumerate(labels))
print("top-1: %.4f%%" % (100.0 * hits / len(labels)))
"#;

#[test]
fn a_user_metric_command_scores_the_outputs() {
    if !kerf_testsuite::tools::present_or_skip(
        "metric command",
        &[kerf_testsuite::tools::Tool::new("python3", "python3")],
    ) {
        return;
    }
    let (base, mut data, _, _) = setup();
    data.val.truncate(60);
    let labels = data.labels.take().unwrap()[..60].to_vec();
    let dir = std::env::temp_dir().join(format!("kerf-tune-metric-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("top1.py");
    std::fs::write(&script, TOP1_PY).unwrap();
    let list: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    let cmd = format!("python3 {} {{outputs}} {}", script.display(), list.join(","));
    // a size search, so that a plan is chosen whatever the timings
    let opts = TuneOptions {
        iters: 5,
        objective: Objective::Size,
        ..TuneOptions::new(Metric::Command { cmd, max_drop: 1.0 })
    };
    let o = tune(&base, &data, &opts, &mut |_| {}).unwrap();
    // the command saw what kerf computed: its score is kerf's own top-1
    let fp32 = top1_of(&base, &data.val, &labels);
    assert!((o.baseline.metric - 100.0 * fp32).abs() < 1e-3, "command {} vs kerf {}", o.baseline.metric, 100.0 * fp32);
    let c = o.chosen();
    assert!(!c.plan.layers.is_empty(), "nothing chosen");
    assert!(o.met && o.baseline.metric - c.metric <= 1.0 + 1e-9, "chosen {} vs fp32 {}", c.metric, o.baseline.metric);
    let tuned = top1_of(&base.clone().compression(c.plan.clone(), data.calib.clone()), &data.val, &labels);
    assert!((c.metric - 100.0 * tuned).abs() < 1e-3);
    // a command that fails, or prints no number, is a clear error
    for (cmd, want) in [("false", "failed"), ("echo no score here", "printed no number")] {
        let opts = TuneOptions { iters: 5, ..TuneOptions::new(Metric::Command { cmd: cmd.into(), max_drop: 1.0 }) };
        let e = tune(&base, &data, &opts, &mut |_| {}).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains(want) && e.contains(cmd), "{cmd}: {e}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn measurements_are_cached_on_disk() {
    let (base, mut data, _, _) = setup();
    data.val.truncate(50);
    data.labels.as_mut().unwrap().truncate(50);
    let dir = std::env::temp_dir().join(format!("kerf-tune-cache-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let opts = TuneOptions {
        objective: Objective::Size,
        iters: 5,
        cache: Some(dir.clone()),
        ..TuneOptions::new(Metric::Top1 { max_drop: 0.01 })
    };
    let first = tune(&base, &data, &opts, &mut |_| {}).unwrap();
    assert!(!first.layers.is_empty());
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert!(files >= first.layers.len(), "{files} cache files for {} layer rows", first.layers.len());
    // the second run reads every (layer, variant) back bit for bit
    let second = tune(&base, &data, &opts, &mut |_| {}).unwrap();
    assert_eq!(first.layers.len(), second.layers.len());
    for (a, b) in first.layers.iter().zip(&second.layers) {
        assert_eq!(
            (a.metric.to_bits(), a.latency_ms.to_bits()),
            (b.metric.to_bits(), b.latency_ms.to_bits()),
            "{}",
            a.layer
        );
    }
    assert_eq!(first.chosen().plan, second.chosen().plan);
    // other data is another key: nothing is read back
    data.val.truncate(40);
    data.labels.as_mut().unwrap().truncate(40);
    tune(&base, &data, &opts, &mut |_| {}).unwrap();
    assert!(std::fs::read_dir(&dir).unwrap().count() > files);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn labels_that_do_not_match_the_data_are_an_error() {
    let (base, mut data, _, _) = setup();
    data.labels.as_mut().unwrap().pop();
    let opts = TuneOptions { iters: 5, ..TuneOptions::new(Metric::Top1 { max_drop: 0.01 }) };
    let e = tune(&base, &data, &opts, &mut |_| {}).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("199 labels for 200 validation samples"), "{e}");
}

/// The `--runner` path: every plan built for aarch64, linked by the cross
/// GCC and run under qemu-user; the metric comes from what the target
/// computed (timings under qemu mean nothing, the plumbing and accuracy do).
#[test]
fn plans_run_on_the_target_through_a_runner() {
    use kerf_testsuite::tools::{present_or_skip, Tool};
    let tools = [
        Tool::new("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu libc6-dev-arm64-cross"),
        Tool::new("qemu-aarch64", "qemu-user"),
    ];
    if !present_or_skip("tune --runner (aarch64)", &tools) {
        return;
    }
    let (base, mut data, _, _) = setup();
    data.val.truncate(60);
    data.labels.as_mut().unwrap().truncate(60);
    let target = kerf_targets::Target::parse("aarch64-unknown-linux-gnu", "baseline").unwrap();
    let base = base.target(target);
    let runner = kerf_tune::TargetRunner::new(&target, "qemu-aarch64 -L /usr/aarch64-linux-gnu {}", None).unwrap();
    let opts = TuneOptions {
        objective: Objective::Size,
        iters: 3,
        runner: Some(runner),
        ..TuneOptions::new(Metric::Top1 { max_drop: 0.01 })
    };
    let o = tune(&base, &data, &opts, &mut |_| {}).unwrap();
    assert!(o.latency_source.contains("aarch64") && o.latency_source.contains("qemu"), "{}", o.latency_source);
    assert!(o.met);
    // the target's top-1 is the host's for the same plans
    let host = base.clone().target(kerf_targets::Target::host_baseline());
    let labels = data.labels.clone().unwrap();
    assert!((o.baseline.metric - top1_of(&host, &data.val, &labels)).abs() <= 1.0 / 60.0 + 1e-9);
    let c = o.chosen();
    let tuned = top1_of(&host.compression(c.plan.clone(), data.calib.clone()), &data.val, &labels);
    assert!((c.metric - tuned).abs() <= 1.0 / 60.0 + 1e-9, "target {} vs host {tuned}", c.metric);
    // a runner that cannot run is a clear error
    let bad = kerf_tune::TargetRunner::new(&target, "/nonexistent/runner {}", None).unwrap();
    let opts = TuneOptions { iters: 3, runner: Some(bad), ..TuneOptions::new(Metric::Top1 { max_drop: 0.01 }) };
    let e = tune(&base, &data, &opts, &mut |_| {}).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("/nonexistent/runner"), "{e}");
}

/// A target with no runner: the metric from the host JIT, the latencies
/// the cost model's estimates of the plans' optimized graphs, and the
/// report says so.
#[test]
fn without_a_runner_a_foreign_target_gets_the_cost_models_estimates() {
    let (base, mut data, _, _) = setup();
    data.val.truncate(40);
    data.labels.as_mut().unwrap().truncate(40);
    let opts = TuneOptions {
        iters: 3,
        estimate_for: Some("riscv64gc-unknown-linux-gnu".into()),
        ..TuneOptions::new(Metric::Top1 { max_drop: 0.01 })
    };
    let o = tune(&base, &data, &opts, &mut |_| {}).unwrap();
    assert!(o.latency_source.contains("cost model") && o.latency_source.contains("riscv64"), "{}", o.latency_source);
    // the baseline's "latency" is exactly the estimate of its optimized graph
    let g = base.graph().unwrap().graph;
    assert_eq!(o.baseline.latency_ms, kerf_pipeline::measure::estimated_cost(&g));
    // estimates are deterministic: the same choice twice
    let again = tune(&base, &data, &opts, &mut |_| {}).unwrap();
    assert_eq!(o.chosen().plan, again.chosen().plan);
    assert!(o.met);
}
