//! `kerf compress`: the compression flags' result written as standard ONNX
//! (QDQ: int8 weights behind per-channel `DequantizeLinear`, uint8
//! `QuantizeLinear → DequantizeLinear` on each quantised layer's input;
//! pruned weights as zeros), which ONNX Runtime loads, so the accuracy can
//! be checked independently of kerf.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use kerf_pipeline::compression::export_onnx;
use kerf_pipeline::Stage;

use crate::options::{warn, ModelArgs};

#[derive(Args, Debug)]
pub struct CompressCmdArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The compressed model to write (.onnx).
    #[arg(short = 'o', long = "output", required = true)]
    output: PathBuf,
}

pub fn run(args: &CompressCmdArgs) -> Result<()> {
    if !args.model.compressing()? {
        bail!(
            "nothing to compress: give --quantize, --prune-patterns, --connectivity, --prune-nm, --low-rank, --tucker or --plan"
        );
    }
    // the compressed file must not replace the model it comes from: the
    // same file by any path is refused up front
    if matches!((args.output.canonicalize(), args.model.model.canonicalize()), (Ok(x), Ok(y)) if x == y) {
        bail!(
            "-o '{}' is the model being compressed; write the compressed model to another file",
            args.output.display()
        );
    }
    let session = args.model.session()?;
    let o = session.graph_at(Stage::Compress)?;
    warn(&o);
    let Some(report) = o.compression else { bail!("the compress stage did not run") };
    let (bytes, layers) = export_onnx(&args.model.model, &report)?;
    std::fs::write(&args.output, bytes).with_context(|| format!("cannot write '{}'", args.output.display()))?;
    eprintln!("wrote {} ({layers} layers compressed)", args.output.display());
    Ok(())
}
