//! ONNX backend conformance (a `harness = false` test).
//!
//! Runs every case under `testsuite/generated/onnx/` (made by
//! `testsuite/scripts/make_onnx_node_tests.py`; `KERF_ONNX_CASES` overrides
//! the folder) through kerf and judges the outcomes against
//! `testsuite/conformance/manifest.txt`. The run fails when a `pass` case
//! regresses, an `xfail` case passes or fails for another reason, a case is
//! missing from the manifest, the manifest lists cases that do not exist,
//! kerf panics, a worker crashes or times out, or `docs/onnx-coverage.md` is
//! stale.
//!
//! ```text
//! cargo test -p kerf-testsuite --test onnx_backend              # everything
//! cargo test -p kerf-testsuite --test onnx_backend -- node/test_conv   # ids containing a string
//! KERF_BLESS=1 cargo test -p kerf-testsuite --test onnx_backend # rewrite manifest + coverage doc
//! ```
//!
//! Environment: `KERF_BACKEND=jit|interp` (default jit), `KERF_PASSES=0` (skip
//! the e-graph passes), `KERF_WORKERS` (default 2), `KERF_IN_PROCESS=1` (threads
//! instead of worker processes), `KERF_CASE_TIMEOUT` seconds (default 120),
//! `KERF_VERBOSE=1` (worker stderr, every failure in full, expected failures too).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kerf_testsuite::cases::{discover, Case};
use kerf_testsuite::conformance::coverage;
use kerf_testsuite::conformance::exec::Backend;
use kerf_testsuite::conformance::pipeline::{Config, Outcome};
use kerf_testsuite::conformance::pool::{self, PoolOptions};
use kerf_testsuite::conformance::report::{blessed, Report, Verdict};
use kerf_testsuite::manifest::Manifest;

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

fn root() -> PathBuf {
    match std::env::var_os("KERF_ONNX_CASES") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("generated/onnx"),
    }
}

fn config() -> Result<Config, String> {
    let backend = match std::env::var("KERF_BACKEND") {
        Ok(s) => Backend::parse(&s).ok_or_else(|| format!("KERF_BACKEND={s}: expected jit or interp"))?,
        Err(_) => Backend::Jit,
    };
    let passes = std::env::var("KERF_PASSES").map_or(true, |v| v != "0");
    Ok(Config { backend, passes })
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}

fn describe(v: &Verdict, o: &Outcome) -> String {
    match v {
        Verdict::AsExpected => "as expected".to_string(),
        Verdict::Regressed => format!("REGRESSED (now {})", o.tag),
        Verdict::UnexpectedPass => "PASSES now (update the manifest)".to_string(),
        Verdict::ReasonChanged { was } => format!("reason changed: {was} -> {}", o.tag),
        Verdict::BindingChanged { was } => {
            format!("bound inputs changed: [{}] -> [{}] (update the manifest)", was.join(","), o.bound.join(","))
        }
        Verdict::NotInManifest => {
            if o.tag.is_empty() {
                "not in manifest (passes)".to_string()
            } else {
                format!("not in manifest ({})", o.tag)
            }
        }
        Verdict::Abnormal => o.tag.to_uppercase(),
    }
}

fn main() -> ExitCode {
    let cfg = match config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("onnx_backend: {e}");
            return ExitCode::FAILURE;
        }
    };
    let root = root();
    if pool::is_worker() {
        let cases = match discover(&root) {
            Ok(c) => c,
            Err(_) => return ExitCode::FAILURE,
        };
        return match pool::worker_main(&cases, &cfg) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("onnx_backend: test");
        return ExitCode::SUCCESS;
    }
    // libtest-style flags (--nocapture, --test-threads=N, ...) are accepted and ignored.
    let filter = args.iter().find(|a| !a.starts_with('-')).cloned();
    let ok = run(&root, cfg, filter.as_deref());
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(root: &Path, cfg: Config, filter: Option<&str>) -> bool {
    let t0 = Instant::now();
    let all_cases = match discover(root) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("onnx_backend: {e}");
            println!("0 passed, 1 failed");
            return false;
        }
    };
    let cases: Vec<Case> = match filter {
        Some(f) => all_cases.into_iter().filter(|c| c.id.contains(f)).collect(),
        None => all_cases,
    };
    let full_run = filter.is_none();
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest_path = crate_dir.join("conformance/manifest.txt");
    let doc_path = crate_dir.parent().unwrap_or(crate_dir).join("docs/onnx-coverage.md");
    let manifest = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => match Manifest::parse(&text) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("onnx_backend: {}: {e}", manifest_path.display());
                return false;
            }
        },
        Err(e) => {
            eprintln!("onnx_backend: cannot read {} ({e}); every case counts as new", manifest_path.display());
            Manifest::default()
        }
    };

    let workers = std::env::var("KERF_WORKERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let timeout = std::env::var("KERF_CASE_TIMEOUT").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    let mut worker_env = vec![("KERF_ONNX_CASES".to_string(), root.display().to_string())];
    worker_env.push(("KERF_BACKEND".into(), cfg.backend.name().into()));
    worker_env.push(("KERF_PASSES".into(), if cfg.passes { "1" } else { "0" }.into()));
    let opts = PoolOptions {
        workers,
        in_process: env_flag("KERF_IN_PROCESS"),
        timeout: Duration::from_secs(timeout),
        worker_env,
    };
    println!(
        "onnx_backend: {} cases from {} (backend {}, passes {}, {} workers{})",
        cases.len(),
        root.display(),
        cfg.backend.name(),
        if cfg.passes { "on" } else { "off" },
        opts.workers,
        if opts.in_process { ", in process" } else { "" }
    );
    let done = AtomicUsize::new(0);
    let n = cases.len();
    let progress = |_: &Case, _: &Outcome| {
        let d = done.fetch_add(1, Ordering::SeqCst) + 1;
        if d.is_multiple_of(250) || d == n {
            eprintln!("  {d}/{n} cases ({:.0} s)", t0.elapsed().as_secs_f64());
        }
    };
    let outcomes = pool::run_all(&cases, &cfg, &opts, &progress);
    let report = Report::build(&cases, &outcomes, &manifest, full_run);

    // Failures, grouped by verdict kind, abnormal ones first.
    let verbose = env_flag("KERF_VERBOSE");
    let mut problems: Vec<&(String, Verdict, Outcome)> = report.problems.iter().collect();
    problems.sort_by_key(|(id, v, o)| {
        (!o.status.is_abnormal(), std::mem::discriminant(v) != std::mem::discriminant(&Verdict::Regressed), id.clone())
    });
    for (id, v, o) in &problems {
        let mut detail = if verbose { o.detail.clone() } else { shorten(&o.detail, 400) };
        if !o.bound.is_empty() {
            detail = format!("[bound {}] {detail}", o.bound.join(","));
        }
        let sep = if detail.is_empty() { "" } else { ": " };
        println!("FAIL {id}: {}{sep}{detail}", describe(v, o));
    }
    if verbose {
        for (c, o) in cases.iter().zip(&outcomes) {
            if !o.tag.is_empty() && !report.problems.iter().any(|(id, _, _)| *id == c.id) {
                println!("xfail {}: {}: {}", c.id, o.tag, o.detail);
            }
            if !o.bound.is_empty() {
                println!("bound {}: {} ({})", c.id, o.bound.join(","), if o.tag.is_empty() { "pass" } else { &o.tag });
            }
        }
    }
    for id in &report.stale {
        println!("FAIL {id}: in the manifest but there is no such case");
    }

    // Slowest cases, to keep the run within budget.
    let mut slow: Vec<(u64, &str)> = outcomes.iter().zip(&cases).map(|(o, c)| (o.millis, c.id.as_str())).collect();
    slow.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let slow: Vec<String> = slow.iter().take(5).map(|(ms, id)| format!("{id} {:.1} s", *ms as f64 / 1000.0)).collect();
    println!("slowest: {}", slow.join(", "));

    println!("\nper suite (pass = passes as expected, xfail = fails as expected):");
    for (suite, c) in &report.suites {
        println!(
            "  {suite:18} {:5} cases: {:5} pass, {:5} xfail, {:4} failed (regressed {}, unexpected pass {}, \
             reason changed {}, not in manifest {}, panic {}, crash {}, timeout {})",
            c.cases,
            c.pass,
            c.xfail,
            c.failed(),
            c.regressed,
            c.unexpected_pass,
            c.reason_changed,
            c.not_in_manifest,
            c.panic,
            c.crash,
            c.timeout
        );
    }
    // Specialisation is reported, not hidden: how many cases needed inputs
    // bound to their test-data values.
    let bound_pass = outcomes.iter().filter(|o| !o.bound.is_empty() && o.tag.is_empty()).count();
    let bound_all = outcomes.iter().filter(|o| !o.bound.is_empty()).count();
    println!(
        "inputs bound to test-data constants in {bound_all} cases ({bound_pass} of them pass; `bound=` in the manifest)"
    );
    let abnormal = report.total.panic + report.total.crash + report.total.timeout;
    println!(
        "panics: {}, crashes: {}, timeouts: {} (must all be 0); {:.0} s",
        report.total.panic,
        report.total.crash,
        report.total.timeout,
        t0.elapsed().as_secs_f64()
    );

    let mut ok = true;
    if env_flag("KERF_BLESS") {
        if cfg.backend != Backend::Jit || !cfg.passes {
            eprintln!("onnx_backend: KERF_BLESS needs the default configuration (KERF_BACKEND=jit, passes on)");
            ok = false;
        } else {
            ok &= bless(&manifest, &cases, &outcomes, full_run, &manifest_path, &doc_path);
        }
        ok &= abnormal == 0;
        let failed = abnormal;
        println!("{} passed, {} failed", cases.len() - failed, failed);
        return ok;
    }
    if full_run {
        let want = coverage::render(&manifest, &cases);
        match std::fs::read_to_string(&doc_path) {
            Ok(have) if have == want => {}
            _ => {
                println!(
                    "FAIL {} is stale: regenerate with KERF_BLESS=1 cargo test -p kerf-testsuite --test onnx_backend",
                    doc_path.display()
                );
                ok = false;
            }
        }
    }
    let failed = report.failed();
    println!("{} passed, {} failed", report.passed(), failed);
    ok && failed == 0
}

fn bless(old: &Manifest, cases: &[Case], outcomes: &[Outcome], full: bool, manifest: &Path, doc: &Path) -> bool {
    let m = blessed(old, cases, outcomes, full);
    let write = |p: &Path, text: String| -> bool {
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match std::fs::write(p, text) {
            Ok(()) => {
                println!("wrote {}", p.display());
                true
            }
            Err(e) => {
                eprintln!("onnx_backend: cannot write {}: {e}", p.display());
                false
            }
        }
    };
    let mut ok = write(manifest, m.render());
    // The doc describes all cases; on a filtered run only the manifest lines
    // of the cases run changed, so rebuild it over every discovered case.
    let all = if full { cases.to_vec() } else { discover(&root()).unwrap_or_else(|_| cases.to_vec()) };
    ok &= write(doc, coverage::render(&m, &all));
    ok
}
