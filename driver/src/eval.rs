//! `kerf eval`: accuracy and fidelity of a (compressed) model on a data set.
//!
//! Runs every sample through the JIT-compiled model. With `--labels`, prints
//! top-1 accuracy; with compression flags, the same for the FP32 model,
//! measured the same way, and the compressed model's agreement with it
//! (same arg-max), output SNR and cosine similarity.

use anyhow::Result;
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
}

pub fn run(args: &EvalArgs) -> Result<()> {
    // compressed, optimised and run for this host: what `kerf run` and
    // `kerf bench` build (target-dependent plan settings included)
    let native = kerf_targets::Target::host("native")?;
    let DataSet { session: fp, samples, labels } =
        args.data.load(args.model.uncompressed()?.target(native), args.limit)?;
    let fp_graph = fp.graph()?;
    let fp_out = outputs(&fp, &fp_graph, &samples)?;
    println!("samples: {}", samples.len());
    if !args.model.compressing()? {
        if let Some(l) = &labels {
            println!("top1: {:.4}", top1(&fp_out, l));
        }
        return Ok(());
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
    Ok(())
}

/// Output 0 of the JIT-compiled graph on every sample.
fn outputs(s: &Session, o: &Optimized, samples: &[Vec<Tensor>]) -> Result<Vec<Tensor>> {
    let jit = s.jit(&o.graph)?;
    Ok(run_samples(jit.model(), &o.graph, samples)?)
}
