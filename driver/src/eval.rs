//! `kerf eval`: accuracy and fidelity of a (compressed) model on a data set.
//!
//! Runs every sample through the JIT-compiled model. With `--labels`, prints
//! top-1 accuracy; with compression flags, the same for the FP32 model,
//! measured the same way, and the compressed model's agreement with it
//! (same arg-max), output SNR and cosine similarity. `--save-outputs`
//! writes what the evaluated model (the compressed one, with compression
//! flags) computed: output 0 of every sample, stacked on a leading axis,
//! for checks outside kerf (`testsuite/scripts/check_export.py` compares
//! ONNX Runtime's run of `kerf compress`'s file against it).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use kerf_ir::Tensor;
use kerf_pipeline::dataset::{run_samples, top1, Fidelity};
use kerf_pipeline::{Optimized, Session};

use crate::options::{warn, DataArgs, DataSet, ModelArgs};

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Use only the first N samples.
    #[arg(long)]
    limit: Option<usize>,
    /// Write output 0 of every sample (the compressed model's, with
    /// compression flags) to this .npy file, stacked: [N, output shape...], f32.
    #[arg(long, value_name = "FILE.npy")]
    save_outputs: Option<PathBuf>,
}

pub fn run(args: &EvalArgs) -> Result<()> {
    // compressed, optimised and run for this host: what `kerf run` and
    // `kerf bench` build (target-dependent plan settings included)
    let native = kerf_targets::Target::host("native")?;
    // the compression flags are checked before the FP32 pass, not after it
    let compressing = args.model.compressing()?;
    let DataSet { session: fp, samples, labels } =
        args.data.load(args.model.uncompressed()?.target(native), args.limit)?;
    let fp_graph = fp.graph()?;
    let fp_out = outputs(&fp, &fp_graph, &samples)?;
    println!("samples: {}", samples.len());
    if !compressing {
        if let Some(l) = &labels {
            println!("top1: {:.4}", top1(&fp_out, l));
        }
        return save(args.save_outputs.as_deref(), &fp_out);
    }
    let cs = args.model.session()?.target(native);
    let c_graph = cs.graph()?;
    warn(&c_graph);
    let c_out = outputs(&cs, &c_graph, &samples)?;
    if let Some(l) = &labels {
        println!("top1: {:.4} (fp32 {:.4})", top1(&c_out, l), top1(&fp_out, l));
    }
    let mut f = Fidelity::default();
    for (a, b) in c_out.iter().zip(&fp_out) {
        f.add(a, b);
    }
    println!("agreement: {:.4}  snr: {:.1} dB  cosine: {:.5}", f.agreement(), f.snr_db(), f.cosine());
    save(args.save_outputs.as_deref(), &c_out)
}

/// Writes the outputs stacked on a new leading axis as f32 (`--save-outputs`).
fn save(path: Option<&Path>, outs: &[Tensor]) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let shape = outs.first().map(|t| t.shape().to_vec()).unwrap_or_default();
    let values: Vec<f32> = outs.iter().flat_map(|t| t.to_f32_vec()).collect();
    let stacked = Tensor::from_f32([vec![outs.len()], shape].concat(), &values)
        .context("--save-outputs: the samples' outputs differ in shape")?;
    kerf_pipeline::npy::write(path, &stacked).with_context(|| format!("--save-outputs: writing {}", path.display()))
}

/// Output 0 of the JIT-compiled graph on every sample.
fn outputs(s: &Session, o: &Optimized, samples: &[Vec<Tensor>]) -> Result<Vec<Tensor>> {
    let jit = s.jit(&o.graph)?;
    Ok(run_samples(jit.model(), &o.graph, samples)?)
}
