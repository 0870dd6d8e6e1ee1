//! `kerf compile`: an ONNX model to a native object or static library plus C header.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::options::{warn, ModelArgs};

#[derive(Args, Debug)]
pub struct CompileArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Target triple.
    #[arg(long, default_value = "host", long_help = format!("Target triple: {}", kerf_targets::isa::targets_help()))]
    target: String,
    /// CPU feature preset of the target (see --help for each target's presets).
    #[arg(long, default_value = "baseline")]
    cpu: String,
    /// Keep every kernel in Cranelift's own 128-bit code (no assembled
    /// AVX2 micro-kernels, which presets from `haswell` up get).
    #[arg(long = "no-micro-kernels")]
    no_micro_kernels: bool,
    /// Output: `NAME.o` for an object, `libNAME.a` for a static library.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Also write the C header here.
    #[arg(long)]
    header: Option<PathBuf>,
    /// Prefix of the exported symbols (default: from the file name).
    #[arg(long)]
    name: Option<String>,
    /// Skip the lossless rewrites.
    #[arg(long)]
    no_optimize: bool,
}

pub fn run(args: &CompileArgs) -> Result<()> {
    let ext = args.output.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !matches!(ext, "o" | "obj" | "a" | "lib") {
        bail!("output '{}' must end in .o or .a (.obj or .lib for Windows)", args.output.display());
    }
    let target = kerf_targets::Target::parse(&args.target, &args.cpu)?;
    let mut session = args
        .model
        .session()?
        .target(target)
        .micro_kernels(!args.no_micro_kernels)
        .optimize_enabled(!args.no_optimize)
        .codegen_progress(crate::options::progress_bar("generating code"));
    if let Some(n) = &args.name {
        if kerf_pipeline::c_identifier(n) != *n {
            bail!("--name '{n}' is not a C identifier");
        }
        session = session.name(n);
    }
    let o = session.graph()?;
    warn(&o);
    let art = session.compile(&o.graph)?;
    let name = session.symbol_name();
    let bytes = match ext {
        "o" | "obj" => art.object.clone(),
        _ => art.archive()?,
    };
    std::fs::write(&args.output, bytes).with_context(|| format!("cannot write '{}'", args.output.display()))?;
    if let Some(h) = &args.header {
        std::fs::write(h, &art.header).with_context(|| format!("cannot write '{}'", h.display()))?;
    }
    let r = &art.report;
    eprintln!(
        "compiled '{}' for {} ({}): text {} B, rodata {} B, arena {} B (lower bound {} B), {} kernels",
        name,
        r.triple,
        r.cpu,
        r.text_bytes,
        r.rodata_bytes,
        r.arena_bytes,
        r.arena_lower_bound,
        r.kernels.len()
    );
    Ok(())
}
