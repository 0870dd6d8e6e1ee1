//! `kerf run`: compile in-process (JIT, same codegen as `compile`) and run.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use kerf_pipeline::{npy, Build};
use kerf_ir::Tensor;
use kerf_targets::CompileOptions;

use crate::options::parse_input_shape;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The ONNX model.
    model: PathBuf,
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
    /// Fix a dynamic input shape: NAME=D0,D1,... (repeatable).
    #[arg(long = "input-shape", value_parser = parse_input_shape)]
    input_shape: Vec<(String, Vec<usize>)>,
    /// CPU preset for the host JIT.
    #[arg(long, default_value = "native")]
    cpu: String,
    /// Absolute tolerance term: pass if max|a-b| <= atol + rtol * max|ref|.
    #[arg(long, default_value_t = 1e-5)]
    atol: f64,
    /// Relative tolerance term (scaled by max|ref| of the output).
    #[arg(long, default_value_t = 1e-4)]
    rtol: f64,
}

/// Splits `NAME=path` or `path` into (name, path). A `=` inside an existing
/// file name is taken as part of the path.
fn named(s: &str) -> (Option<String>, PathBuf) {
    if Path::new(s).exists() {
        return (None, PathBuf::from(s));
    }
    match s.split_once('=') {
        Some((n, p)) if !n.is_empty() => (Some(n.to_string()), PathBuf::from(p)),
        _ => (None, PathBuf::from(s)),
    }
}

/// Assigns files to the model's tensors by name, or positionally.
pub(crate) fn assign(what: &str, specs: &[String], names: &[String]) -> Result<Vec<Option<PathBuf>>> {
    let mut out = vec![None; names.len()];
    let mut next = 0;
    for s in specs {
        let (n, p) = named(s);
        let idx = match n {
            Some(n) => names
                .iter()
                .position(|x| *x == n)
                .with_context(|| format!("the model has no {what} named '{n}' (it has: {})", names.join(", ")))?,
            None => {
                while next < names.len() && out[next].is_some() {
                    next += 1;
                }
                if next >= names.len() {
                    bail!("more {what} files than the model's {} {what}s", names.len());
                }
                next
            }
        };
        if out[idx].is_some() {
            bail!("{what} '{}' given twice", names[idx]);
        }
        out[idx] = Some(p);
    }
    Ok(out)
}

pub fn run(args: &RunArgs) -> Result<()> {
    let mut b = Build::new(&args.model).target("host").cpu(&args.cpu);
    for (input, dims) in &args.input_shape {
        b = b.input_shape(input, dims);
    }
    let g = b.graph().with_context(|| format!("cannot import '{}'", args.model.display()))?;
    let jit = kerf_targets::jit_compile(&g, &CompileOptions::new("host", &args.cpu, &b.symbol_name()))
        .with_context(|| format!("cannot compile '{}'", args.model.display()))?;
    let model = jit.model();
    let info = model.info().clone();

    let in_names: Vec<String> = info.inputs.iter().map(|t| t.name.clone()).collect();
    let files = assign("input", &args.inputs, &in_names)?;
    let mut inputs = Vec::new();
    for (i, (t, f)) in info.inputs.iter().zip(files).enumerate() {
        let path = f.with_context(|| format!("missing --input for input {i} '{}'", t.name))?;
        let x = npy::read(&path)?;
        let want = g.ty(g.inputs[i]);
        if x.dtype() != want.dtype || x.shape() != want.shape.as_slice() {
            bail!("input '{}' must be {} but '{}' holds {}{:?}", t.name, want, path.display(), x.dtype(), x.shape());
        }
        inputs.push(x);
    }
    let mut out_bufs: Vec<Vec<u8>> = info.outputs.iter().map(|t| vec![0u8; t.bytes]).collect();
    let mut arena = model.new_arena();
    {
        let ins: Vec<&[u8]> = inputs.iter().map(|t| t.bytes()).collect();
        let mut outs: Vec<&mut [u8]> = out_bufs.iter_mut().map(|v| v.as_mut_slice()).collect();
        model.run(&ins, &mut outs, &mut arena).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let mut results = Vec::new();
    for (k, (buf, o)) in out_bufs.into_iter().zip(&g.outputs).enumerate() {
        let ty = g.ty(o.value);
        let t = Tensor::from_bytes(ty.dtype, ty.shape.clone(), buf).with_context(|| format!("output {k}"))?;
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
            let (a, b) = (got.to_f64_vec(), want.to_f64_vec());
            let ref_max = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let max_abs = a.iter().zip(&b).fold(0.0f64, |m, (x, y)| {
                let d = if x.is_nan() && y.is_nan() { 0.0 } else { (x - y).abs() };
                if d.is_nan() {
                    f64::INFINITY
                } else {
                    m.max(d)
                }
            });
            let rel = if ref_max > 0.0 { max_abs / ref_max } else { max_abs };
            let tol = args.atol + args.rtol * ref_max;
            let ok = max_abs <= tol;
            println!(
                "{name}: max abs error {max_abs:.3e}, max rel error {rel:.3e} (tolerance {tol:.3e}) {}",
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
