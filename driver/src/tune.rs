//! `kerf tune`: the codesign loop (kerf-tune) from the command line: finds
//! the fastest per-layer compression plan within an accuracy budget,
//! measuring accuracy on the user's validation data (top-1, SNR or the
//! user's own metric command) and latency of the generated code on this
//! machine or on the target through a runner; writes the plan and a
//! report, and caches measurements.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use kerf_pipeline::Session;
use kerf_tune::{tune, write_report, Data, Metric, Objective, Outcome, Progress, TuneOptions};

use crate::options::{DataArgs, DataSet, ModelArgs, MAX_RUNS};

#[derive(Args, Debug)]
pub struct TuneArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Validation data (disjoint from --calib) and labels (top-1 budget).
    #[command(flatten)]
    data: DataArgs,
    /// Largest top-1 drop below FP32, in points.
    #[arg(long = "max-drop", default_value_t = 1.0)]
    max_drop: f64,
    /// Instead of labels: the lowest output SNR (dB) against FP32.
    #[arg(long = "max-drop-snr", value_name = "DB")]
    min_snr: Option<f64>,
    /// The plan to write (TOML; `kerf compile --plan`).
    #[arg(short = 'o', long = "output", default_value = "plan.toml")]
    output: PathBuf,
    /// Folder for pareto.csv, layers.csv, pareto.svg and report.md.
    #[arg(long)]
    report: Option<PathBuf>,
    /// What to minimise within the budget: measured latency (weight bytes
    /// break ties within 3%), or weight bytes alone.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::Latency)]
    objective: ObjectiveArg,
    /// Timed runs per latency measurement.
    #[arg(long, default_value_t = 200)]
    iters: usize,
    /// Stop measuring new variants after this many seconds.
    #[arg(long = "time-budget", value_name = "SECONDS")]
    time_budget: Option<f64>,
    /// Instead of labels or SNR: a command that scores the outputs and
    /// prints a number, higher is better (`{outputs}`: a folder with one
    /// `<output>.npy` per model output, samples stacked); --max-drop is
    /// then in the command's units.
    #[arg(long = "metric-cmd", value_name = "CMD")]
    metric_cmd: Option<String>,
    /// Target triple the plans are built for (default: this machine).
    #[arg(long, default_value = "host")]
    target: String,
    /// CPU preset of --target (default: `native` on this machine, the
    /// target's baseline preset elsewhere).
    #[arg(long)]
    cpu: Option<String>,
    /// Build every plan for --target and run it through this command
    /// (`{}`: the executable), e.g. 'qemu-aarch64 -L /usr/aarch64-linux-gnu {}'
    /// or 'scp {} board:/tmp/k && ssh board /tmp/k'; accuracy and latency
    /// then come from the target. Without it, a --target other than this
    /// machine is judged by the host's outputs and the cost model's
    /// latency estimates (the report says so).
    #[arg(long, value_name = "CMD")]
    runner: Option<String>,
    /// C compiler that links the runner's harness (default: `cc` for this
    /// machine, the Debian cross GCC `<arch>-linux-gnu-gcc` otherwise).
    #[arg(long)]
    cc: Option<String>,
    /// Folder of cached measurements (default: ~/.cache/kerf/tune).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Measure everything again; read and write no cache.
    #[arg(long = "no-cache")]
    no_cache: bool,
}

/// The settings every variant starts from: the compression flags that say
/// how to compress a layer (rounding, observer, granularity, weight bits,
/// byte pairs, selection, bias correction). The ones that say what to
/// compress are the search's to choose (`--pattern-group 4` is one of its
/// variants), and `--equalize` rewrites pairs of layers, which per-layer
/// measurements cannot price: giving one is an error that says so.
fn base_settings(c: &crate::options::CompressArgs) -> Result<kerf_compress::plan::Settings> {
    let searched = [
        ("--plan", c.plan.is_some()),
        ("--quantize", c.quantize.is_some()),
        ("--prune-patterns", c.prune_patterns.is_some()),
        ("--connectivity", c.connectivity.is_some()),
        ("--pattern-group", c.pattern_group.is_some()),
        ("--low-rank", c.low_rank.is_some()),
        ("--tucker", c.tucker.is_some()),
        ("--prune-nm", c.prune_nm.is_some()),
    ];
    let given: Vec<&str> = searched.iter().filter(|(_, on)| *on).map(|(f, _)| *f).collect();
    if !given.is_empty() {
        bail!(
            "kerf tune chooses precision, pruning and rank per layer itself: drop {} (the settings flags, \
             e.g. --rounding, --observer, --weight-bits, --byte-pairs, apply to every variant it tries)",
            given.join(", ")
        );
    }
    if c.equalize {
        bail!(
            "kerf tune cannot price --equalize layer by layer (it rescales pairs of layers): equalise first \
             (kerf compress MODEL --equalize -o MODEL.eq.onnx, an exact rewrite) and tune that model"
        );
    }
    Ok(c.parsed_plan()?.default)
}

/// The default measurement cache: `$XDG_CACHE_HOME/kerf/tune`, else
/// `$HOME/.cache/kerf/tune`; none when neither is set.
fn default_cache() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("XDG_CACHE_HOME").or_else(|| env("HOME").map(|h| h.join(".cache"))).map(|d| d.join("kerf").join("tune"))
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ObjectiveArg {
    Latency,
    Size,
}

pub fn run(args: &TuneArgs) -> Result<()> {
    if args.model.compress.calib.is_empty() {
        bail!("kerf tune needs --calib (calibration samples, disjoint from --data)");
    }
    let settings = base_settings(&args.model.compress)?;
    if !(args.max_drop.is_finite() && args.max_drop >= 0.0) {
        bail!("--max-drop {} must be a non-negative number", args.max_drop);
    }
    if args.min_snr.is_some_and(|d| !d.is_finite()) {
        bail!("--max-drop-snr must be a number of dB");
    }
    // (a week at most: Duration takes any finite non-negative number)
    if args.time_budget.is_some_and(|t| !(t.is_finite() && t > 0.0 && t <= 604_800.0)) {
        bail!("--time-budget {} must be a number of seconds in (0, 604800]", args.time_budget.unwrap_or(0.0));
    }
    if !(1..=MAX_RUNS).contains(&args.iters) {
        bail!("--iters {} must be in 1..={MAX_RUNS}", args.iters);
    }
    // before the search, not after it: both are folders
    let cache = if args.no_cache { None } else { args.cache.clone().or_else(default_cache) };
    for (flag, dir) in [("--report", args.report.as_ref()), ("--cache", cache.as_ref())] {
        if let Some(dir) = dir {
            if dir.exists() && !dir.is_dir() {
                bail!("{flag} {}: is a file; {flag} takes a folder (created if missing)", dir.display());
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{flag} {}: cannot create the folder", dir.display()))?;
        }
    }
    let host = args.target == "host" || args.target == kerf_targets::Target::host_baseline().triple();
    let cpu = args.cpu.clone().unwrap_or_else(|| if host { "native".into() } else { "baseline".into() });
    let target = kerf_targets::Target::parse(&args.target, &cpu)?;
    // a target nobody can run here: the metric on the host (the same
    // function), latency from the cost model
    let estimate_for = (!host && args.runner.is_none()).then(|| target.triple().to_string());
    if let Some(t) = &estimate_for {
        eprintln!(
            "note: no --runner for {t}: latencies are the cost model's estimates (FLOPs + bytes), not measurements; \
             give --runner to time the target"
        );
    }
    let base = args.model.uncompressed()?;
    let base = if estimate_for.is_some() { base } else { base.target(target) };
    let calib = args.model.calibration(&base)?;
    let DataSet { session: base, samples, labels } = args.data.load(base, None)?;
    let metric = metric(args, labels.is_some())?;
    let runner = match &args.runner {
        Some(r) => Some(kerf_tune::TargetRunner::new(&target, r, args.cc.as_deref())?),
        None => None,
    };
    let opts = TuneOptions {
        metric,
        objective: match args.objective {
            ObjectiveArg::Latency => Objective::Latency,
            ObjectiveArg::Size => Objective::Size,
        },
        iters: args.iters.max(1),
        time_budget: args.time_budget.map(std::time::Duration::from_secs_f64),
        runner,
        estimate_for,
        cache,
        base: settings,
    };
    let data = Data { calib, val: samples, labels };
    let outcome = tune_with_progress(&base, &data, &opts)?;
    write_plan(&args.output, &outcome)?;
    if let Some(dir) = &args.report {
        write_report(dir, &outcome)?;
        eprintln!("report: {}", dir.display());
    }
    summarise(args, &outcome);
    Ok(())
}

/// The budget's metric from the flags: a command's score, an output SNR, or
/// top-1 against the labels.
fn metric(args: &TuneArgs, labelled: bool) -> Result<Metric> {
    Ok(match (&args.metric_cmd, args.min_snr, labelled) {
        (Some(cmd), _, _) => Metric::Command { cmd: cmd.clone(), max_drop: args.max_drop },
        (None, Some(db), _) => Metric::Snr { min_db: db },
        (None, None, true) => {
            if args.max_drop > 100.0 {
                bail!("--max-drop {} is not a number of points in [0, 100]", args.max_drop);
            }
            Metric::Top1 { max_drop: args.max_drop / 100.0 }
        }
        (None, None, false) => bail!("give --labels (top-1 budget, --max-drop), --max-drop-snr DB or --metric-cmd CMD"),
    })
}

/// [`tune`] with its progress on stderr: on a terminal a bar over the
/// measurements with the best choice so far, the lines above it; plain
/// lines otherwise.
fn tune_with_progress(base: &Session, data: &Data, opts: &TuneOptions) -> Result<Outcome> {
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = indicatif::ProgressBar::new(0);
    if tty {
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} best: {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let outcome = tune(base, data, opts, &mut |p: &Progress| {
        if tty {
            bar.set_length(p.total as u64);
            if p.done > 0 {
                bar.set_position(p.done as u64);
            }
            bar.set_message(p.best.to_string());
            bar.println(p.line);
        } else {
            eprintln!("{}", p.line);
        }
    });
    bar.finish_and_clear();
    Ok(outcome?)
}

/// Writes the chosen plan (a TOML plan file under a comment line with its
/// metric and latency against FP32) to `output`.
fn write_plan(output: &std::path::Path, outcome: &Outcome) -> Result<()> {
    let chosen = outcome.chosen();
    let text = format!(
        "# kerf tune: metric {:.4} (FP32 {:.4}), {:.4} ms (FP32 {:.4} ms) on {}\n{}",
        chosen.metric,
        outcome.baseline.metric,
        chosen.latency_ms,
        outcome.fp32().latency_ms,
        outcome.latency_source,
        chosen.plan.to_toml()
    );
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create '{}'", dir.display()))?;
    }
    std::fs::write(output, text).with_context(|| format!("cannot write '{}'", output.display()))?;
    Ok(())
}

/// What the run found, on stderr: the chosen plan against FP32, or why it
/// is not the searched one, or by how much the budget was missed.
fn summarise(args: &TuneArgs, outcome: &Outcome) {
    let chosen = outcome.chosen();
    if outcome.searched != outcome.chosen {
        eprintln!(
            "note: the best plan within the budget ({}) ran measurably slower than {} timed together; wrote {} as {}",
            outcome.evaluated[outcome.searched].label,
            chosen.label,
            args.output.display(),
            chosen.label
        );
    } else if outcome.met && chosen.plan == kerf_compress::Plan::default() {
        eprintln!(
            "warning: no compression of any layer fits the budget ({}); wrote {} with every layer FP32",
            args.report.as_deref().map_or("--report DIR lists each variant's metric".into(), |d| format!(
                "each variant's metric is in {}",
                d.join("layers.csv").display()
            )),
            args.output.display()
        );
    } else if outcome.met {
        eprintln!(
            "wrote {}: {:.2}x the speed and {:.2}x smaller weights than FP32, within the budget",
            args.output.display(),
            outcome.fp32().latency_ms / chosen.latency_ms,
            outcome.baseline.weight_bytes as f64 / chosen.weight_bytes.max(1) as f64
        );
    } else {
        let drop = outcome.baseline.metric - chosen.metric;
        let miss = match &outcome.metric {
            Metric::Top1 { max_drop } => {
                format!("it loses {:.2} points, {:.2} more than --max-drop", drop * 100.0, (drop - max_drop) * 100.0)
            }
            Metric::Snr { min_db } => {
                format!("its SNR is {:.1} dB, {:.1} dB short", chosen.metric, min_db - chosen.metric)
            }
            Metric::Command { max_drop, .. } => {
                format!("its score drops {drop:.4}, {:.4} more than --max-drop", drop - max_drop)
            }
        };
        eprintln!("warning: no plan met the budget ({miss}); wrote the best found to {}", args.output.display());
    }
}
