//! `kerf`: the command-line driver.
//!
//! Errors are printed like rustc's (`error: node 'conv_3' (Conv): ...`) with
//! exit code 1, a malformed command line (clap's message) included; a user
//! mistake never produces a panic or a backtrace.

mod bench;
mod compile;
mod compress;
mod eval;
mod inspect;
mod options;
mod run;
mod tune;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// kerf: an ahead-of-time compiler from ONNX models to native code.
#[derive(Parser, Debug)]
#[command(name = "kerf", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show a model's nodes, shapes, parameters and MACs.
    Inspect(inspect::InspectArgs),
    /// Compile a model to a native object (.o) or static library (.a) and a C header.
    Compile(compile::CompileArgs),
    /// Compile in-process for the host and run on .npy inputs.
    Run(run::RunArgs),
    /// Compile in-process for the host and time it (median/min/p90; --profile per kernel).
    Bench(bench::BenchArgs),
    /// Find the fastest per-layer compression plan within an accuracy budget (measured); write plan.toml and a report.
    Tune(tune::TuneArgs),
    /// Write the compressed model as standard ONNX (QDQ) that ONNX Runtime loads.
    Compress(compress::CompressCmdArgs),
    /// Top-1 accuracy on a labelled data set; with compression flags, beside FP32, with agreement and output SNR.
    Eval(eval::EvalArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `--help` and `--version`: printed, exit 0
        Err(e) if !e.use_stderr() => e.exit(),
        // a malformed command line is a user error like any other: exit 1
        // (clap's own `exit` would give 2)
        Err(e) => {
            // a failed write to stderr leaves nothing else to report it on
            let _ = e.print();
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Compile(args) => compile::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Compress(args) => compress::run(&args),
        Command::Tune(args) => tune::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Like `{e:#}`, but a cause whose text the message already
            // includes (errors that print their source) is not repeated.
            let mut msg = String::new();
            for cause in e.chain() {
                let s = cause.to_string();
                if !msg.contains(&s) {
                    if !msg.is_empty() {
                        msg.push_str(": ");
                    }
                    msg.push_str(&s);
                }
            }
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}
