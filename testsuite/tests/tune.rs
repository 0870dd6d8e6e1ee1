//! The codesign loop on the trained digits CNN: calibrated on 500 training
//! images, tuned against the first 200 test images (the fixture has no
//! labelled training split; the full models' run in docs/compression.md
//! tunes on training images) and judged on the other 250, which the tuner
//! never sees; the plan must keep top-1 within the 1-point budget there,
//! round-trip as a plan file, and come with a complete report. The budget
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
    let opts = TuneOptions {
        metric: Metric::Top1 { max_drop: 0.01 },
        objective: Objective::Size,
        iters: 20,
        time_budget: None,
    };
    let mut lines = Vec::new();
    let o = tune(&base, &data, &opts, &mut |l| lines.push(l.to_string())).unwrap();
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
    // the report
    let dir = std::env::temp_dir().join(format!("kerf-tune-{}", std::process::id()));
    write_report(&dir, &o).unwrap();
    let svg = std::fs::read_to_string(dir.join("pareto.svg")).unwrap();
    assert_eq!(svg.matches("<circle").count(), o.evaluated.len(), "one dot per measured plan");
    assert!(svg.contains("crimson"), "the chosen plan is marked");
    let csv = std::fs::read_to_string(dir.join("pareto.csv")).unwrap();
    assert_eq!(csv.lines().count(), o.evaluated.len() + 1);
    assert!(std::fs::read_to_string(dir.join("report.md")).unwrap().contains("(chosen)"));
    assert_eq!(std::fs::read_to_string(dir.join("layers.csv")).unwrap().lines().count(), o.layers.len() + 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn latency_search_takes_only_what_measurably_pays() {
    let (base, data, _, _) = setup();
    let opts = TuneOptions {
        metric: Metric::Top1 { max_drop: 0.01 },
        objective: Objective::Latency,
        iters: 20,
        time_budget: None,
    };
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
    let opts = TuneOptions {
        metric: Metric::Top1 { max_drop: 0.01 },
        objective: Objective::Latency,
        iters: 5,
        time_budget: None,
    };
    let data = Data { calib, val: samples, labels: None };
    let e = tune(&base, &data, &opts, &mut |_| {}).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("labels"), "{e}");
}
