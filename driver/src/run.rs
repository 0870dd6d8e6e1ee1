//! `kerf run`: compile in-process (JIT, same codegen as `compile`) and run.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use kerf_ir::Tensor;
use kerf_pipeline::compare::{check, Tolerance};
use kerf_pipeline::inputs::{arrange, assign, Missing};
use kerf_pipeline::measure::Runner;
use kerf_pipeline::npy;

use crate::options::{note_bound, warn, with_input_files, ModelArgs};

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// An input: NAME=x.npy, or x.npy for the inputs in order (repeatable).
    #[arg(long = "input", short = 'i')]
    inputs: Vec<String>,
    /// Expected output: NAME=ref.npy, or ref.npy for the outputs in order (repeatable).
    /// Prints max absolute and relative error per output; exits 1 beyond tolerance.
    #[arg(long = "expect")]
    expect: Vec<String>,
    /// Write outputs: one path per output in order (repeatable).
    #[arg(short = 'o', long = "output")]
    outputs: Vec<PathBuf>,
    /// CPU preset for the host JIT.
    #[arg(long, default_value = "native")]
    cpu: String,
    /// Keep every kernel in Cranelift's own 128-bit code (no assembled
    /// AVX2 micro-kernels); the outputs are the same bits.
    #[arg(long = "no-micro-kernels")]
    no_micro_kernels: bool,
    /// Absolute tolerance term: pass if max|a-b| <= atol + rtol * max|ref|.
    #[arg(long, default_value_t = 1e-5)]
    atol: f64,
    /// Relative tolerance term (scaled by max|ref| of the output).
    #[arg(long, default_value_t = 1e-4)]
    rtol: f64,
    /// Elements at most this many ULPs (of the output's float type) from the
    /// reference count as equal (0: off).
    #[arg(long, default_value_t = 0)]
    max_ulp: u64,
}

pub fn run(args: &RunArgs) -> Result<()> {
    for (flag, v) in [("--atol", args.atol), ("--rtol", args.rtol)] {
        if !(v.is_finite() && v >= 0.0) {
            bail!("{flag} {v} must be a non-negative number");
        }
    }
    let (session, files) = with_input_files(
        args.model.session()?.target(kerf_targets::Target::host(&args.cpu)?).micro_kernels(!args.no_micro_kernels),
        &args.inputs,
    )?;
    let o = session.graph()?;
    warn(&o);
    let g = o.graph;
    note_bound(&session, &g, &files);
    let inputs = arrange(&g, &files, Missing::Error)?;
    let jit = session.jit(&g)?;
    let mut runner = Runner::new(jit.model(), &inputs, None)?;
    runner.once().map_err(|e| e.in_graph(&g))?;
    let mut results = Vec::new();
    for (k, (buf, o)) in runner.outputs().iter().zip(&g.outputs).enumerate() {
        let ty = g.ty(o.value);
        let t = Tensor::from_bytes(ty.dtype, ty.shape.clone(), buf.clone()).with_context(|| format!("output {k}"))?;
        results.push((o.name.clone(), t));
    }

    if args.outputs.len() > results.len() {
        bail!("{} -o paths for {} outputs", args.outputs.len(), results.len());
    }
    for (p, (_, t)) in args.outputs.iter().zip(&results) {
        npy::write(p, t)?;
    }
    if args.outputs.is_empty() && args.expect.is_empty() {
        for (n, t) in &results {
            let v = t.to_f64_vec();
            let head: Vec<String> = v.iter().take(8).map(|x| format!("{x:.6}")).collect();
            println!(
                "{n}: {}{:?} [{}{}]",
                t.dtype(),
                t.shape(),
                head.join(", "),
                if v.len() > 8 { ", ..." } else { "" }
            );
        }
    }

    if !args.expect.is_empty() {
        let out_names: Vec<String> = results.iter().map(|(n, _)| n.clone()).collect();
        let files = assign("output", &args.expect, &out_names)?;
        let mut failed = Vec::new();
        for ((name, got), f) in results.iter().zip(files) {
            let Some(path) = f else { continue };
            let want = npy::read(&path)?;
            if want.shape() != got.shape() {
                bail!("output '{name}' has shape {:?} but '{}' holds {:?}", got.shape(), path.display(), want.shape());
            }
            let tol = Tolerance { atol: args.atol, rtol: args.rtol, max_ulp: args.max_ulp };
            let c = check(got, &want, tol).with_context(|| format!("output '{name}' against '{}'", path.display()))?;
            let ok = c.ok();
            println!(
                "{name}: max abs error {:.3e}, max rel error {:.3e} (tolerance {:.3e}) {}",
                c.max_abs,
                c.max_rel,
                c.bound,
                if ok { "ok" } else { "FAIL" }
            );
            if !ok {
                failed.push(name.clone());
            }
        }
        if !failed.is_empty() {
            bail!("outputs beyond tolerance: {}", failed.join(", "));
        }
    }
    Ok(())
}
