//! `kerf tune`: the codesign loop (kerf-tune) from the command line: finds
//! the fastest per-layer compression plan within an accuracy budget,
//! measuring accuracy on the user's validation data and latency of the
//! generated code on this machine; writes the plan and a report.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use kerf_tune::{tune, write_report, Data, Metric, Objective, TuneOptions};

use crate::options::{DataArgs, DataSet, ModelArgs};

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
    // latency is measured on this machine, with every instruction it has
    let base = args.model.uncompressed()?.target(kerf_targets::Target::host("native")?);
    let calib = args.model.calibration(&base)?;
    let DataSet { session: base, samples, labels } = args.data.load(base, None)?;
    let metric = match (args.min_snr, &labels) {
        (Some(db), _) => Metric::Snr { min_db: db },
        (None, Some(_)) => Metric::Top1 { max_drop: args.max_drop / 100.0 },
        (None, None) => bail!("give --labels (top-1 budget, --max-drop) or --max-drop-snr DB"),
    };
    if !(0.0..=100.0).contains(&args.max_drop) {
        bail!("--max-drop {} is not a number of points in [0, 100]", args.max_drop);
    }
    let opts = TuneOptions {
        metric,
        objective: match args.objective {
            ObjectiveArg::Latency => Objective::Latency,
            ObjectiveArg::Size => Objective::Size,
        },
        iters: args.iters.max(1),
        time_budget: args.time_budget.map(std::time::Duration::from_secs_f64),
    };
    let data = Data { calib, val: samples, labels };
    // on a terminal: a spinner with the last measurement, the lines above it
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let outcome = tune(&base, &data, &opts, &mut |line| {
        if tty {
            bar.println(line);
            bar.set_message(format!("measuring... last: {line}"));
        } else {
            eprintln!("{line}");
        }
    });
    bar.finish_and_clear();
    let outcome = outcome?;
    let chosen = outcome.chosen();
    let text = format!(
        "# kerf tune: metric {:.4} (FP32 {:.4}), {:.4} ms (FP32 {:.4} ms) on this machine\n{}",
        chosen.metric,
        outcome.baseline.metric,
        chosen.latency_ms,
        outcome.baseline.latency_ms,
        chosen.plan.to_toml()
    );
    std::fs::write(&args.output, text).with_context(|| format!("cannot write '{}'", args.output.display()))?;
    if let Some(dir) = &args.report {
        write_report(dir, &outcome)?;
        eprintln!("report: {}", dir.display());
    }
    if outcome.met {
        eprintln!(
            "wrote {}: {:.2}x the speed and {:.2}x smaller weights than FP32, within the budget",
            args.output.display(),
            outcome.baseline.latency_ms / chosen.latency_ms,
            outcome.baseline.weight_bytes as f64 / chosen.weight_bytes.max(1) as f64
        );
    } else {
        eprintln!("warning: no plan met the budget; wrote the best found to {}", args.output.display());
    }
    Ok(())
}
