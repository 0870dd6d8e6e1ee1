//! `kerf bench`: JIT-compile a model for the host (the same code generation
//! as `kerf compile`) and time `<name>_run` on it.
//!
//! Timing: `warmup` untimed runs, then `iters` timed runs, each one call of
//! the entry point (through `kerf_runtime::Model::run`/`run_with_pool`, with a fresh
//! `Instant` per call); prints median, min, p90. With `--threads N > 1` the
//! entry gets a `kerf_runtime::ThreadPool` of N threads (the calling thread
//! included); with 1, `rt` is NULL.
//!
//! `--profile` builds a second, instrumented copy whose entry calls a hook
//! between kernels (`kerf_targets::jit::jit_compile_profiled`: the kernels
//! are the same generated code) and prints per kernel its op, layer name,
//! median time, share of the summed medians, FLOPs (2 × MACs from
//! `kerf_ir::stats`), achieved GFLOP/s and the most tasks the kernel is
//! split into (1: it always runs on the calling thread).

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use kerf_pipeline::{npy, Build};
use kerf_ir::{Graph, Tensor};
use kerf_runtime::{Model, ThreadPool};
use kerf_targets::CompileOptions;

use crate::options::parse_input_shape;
use crate::run::assign;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The ONNX model.
    model: PathBuf,
    /// Threads (the calling thread plus N-1 pool workers); 1 = no pool.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Timed runs (default: as many as fit in about one second, 10 to 100000).
    #[arg(long)]
    iters: Option<usize>,
    /// Untimed runs first (default: as many as fit in about 0.2 s, at least 3).
    #[arg(long)]
    warmup: Option<usize>,
    /// An input: NAME=x.npy, or x.npy for the inputs in order (repeatable);
    /// inputs not given are zeros.
    #[arg(long = "input", short = 'i')]
    inputs: Vec<String>,
    /// Fix a dynamic input shape: NAME=D0,D1,... (repeatable).
    #[arg(long = "input-shape", value_parser = parse_input_shape)]
    input_shape: Vec<(String, Vec<usize>)>,
    /// CPU preset for the host JIT.
    #[arg(long, default_value = "native")]
    cpu: String,
    /// Also time every kernel (instrumented build of the same kernels).
    #[arg(long)]
    profile: bool,
}

thread_local! {
    /// (kernel index, time) marks of the profiled entry, on the calling thread.
    static MARKS: RefCell<Vec<(u32, Instant)>> = const { RefCell::new(Vec::new()) };
}

extern "C" fn prof_hook(i: u32) {
    let now = Instant::now();
    MARKS.with(|m| m.borrow_mut().push((i, now)));
}

/// Input tensors: given files, zeros for the rest.
fn inputs(args: &BenchArgs, g: &Graph, model: &Model) -> Result<Vec<Tensor>> {
    let info = model.info();
    let names: Vec<String> = info.inputs.iter().map(|t| t.name.clone()).collect();
    let files = assign("input", &args.inputs, &names)?;
    let mut out = Vec::new();
    for (i, f) in files.into_iter().enumerate() {
        let want = g.ty(g.inputs[i]);
        let t = match f {
            Some(path) => {
                let x = npy::read(&path)?;
                if x.dtype() != want.dtype || x.shape() != want.shape.as_slice() {
                    bail!(
                        "input '{}' must be {} but '{}' holds {}{:?}",
                        names[i],
                        want,
                        path.display(),
                        x.dtype(),
                        x.shape()
                    );
                }
                x
            }
            None => Tensor::from_bytes(want.dtype, want.shape.clone(), vec![0u8; want.bytes()])
                .with_context(|| format!("zero input '{}'", names[i]))?,
        };
        out.push(t);
    }
    Ok(out)
}

/// Runs the model `warmup` + `iters` times; returns the timed durations.
struct Runner<'a> {
    model: &'a Model,
    ins: Vec<&'a [u8]>,
    outs: Vec<Vec<u8>>,
    arena: kerf_runtime::Arena,
    pool: Option<&'a ThreadPool>,
}

impl Runner<'_> {
    fn once(&mut self) -> Result<Duration> {
        let mut ov: Vec<&mut [u8]> = self.outs.iter_mut().map(|v| v.as_mut_slice()).collect();
        let t0 = Instant::now();
        match self.pool {
            Some(p) => self.model.run_with_pool(&self.ins, &mut ov, &mut self.arena, p),
            None => self.model.run(&self.ins, &mut ov, &mut self.arena),
        }
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(t0.elapsed())
    }
}

/// Warm-up and iteration counts: given, or sized from a first run.
fn counts(args: &BenchArgs, r: &mut Runner) -> Result<(usize, usize)> {
    let first = r.once()?.as_secs_f64().max(1e-7);
    let warmup = args.warmup.unwrap_or_else(|| ((0.2 / first) as usize).clamp(3, 10_000));
    let iters = args.iters.unwrap_or_else(|| ((1.0 / first) as usize).clamp(10, 100_000));
    if iters == 0 {
        bail!("--iters must be at least 1");
    }
    Ok((warmup, iters))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Quantile `q` of sorted `v` (nearest rank).
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let k = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[k]
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let mut b = Build::new(&args.model).target("host").cpu(&args.cpu);
    for (input, dims) in &args.input_shape {
        b = b.input_shape(input, dims);
    }
    let g = b.graph().with_context(|| format!("cannot import '{}'", args.model.display()))?;
    let opts = CompileOptions::new("host", &args.cpu, &b.symbol_name());
    let t0 = Instant::now();
    let jit =
        kerf_targets::jit_compile(&g, &opts).with_context(|| format!("cannot compile '{}'", args.model.display()))?;
    let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
    let model = jit.model();
    let inputs = inputs(args, &g, model)?;
    let pool = (args.threads > 1).then(|| ThreadPool::new(args.threads));
    let threads = pool.as_ref().map_or(1, ThreadPool::threads);
    let mut r = Runner {
        model,
        ins: inputs.iter().map(|t| t.bytes()).collect(),
        outs: model.info().outputs.iter().map(|t| vec![0u8; t.bytes]).collect(),
        arena: model.new_arena(),
        pool: pool.as_ref(),
    };
    let (warmup, iters) = counts(args, &mut r)?;
    for _ in 0..warmup {
        r.once()?;
    }
    let mut ms = Vec::with_capacity(iters);
    for _ in 0..iters {
        ms.push(r.once()?.as_secs_f64() * 1e3);
    }
    let med = median(&mut ms);
    println!("model: {}", args.model.display());
    println!("threads: {threads}");
    println!("compile: {compile_ms:.1} ms");
    println!("warmup: {warmup}");
    println!("iters: {iters}");
    println!("median: {med:.4} ms");
    println!("min: {:.4} ms", ms[0]);
    println!("p90: {:.4} ms", quantile(&ms, 0.9));
    if args.profile {
        profile(args, &g, &opts, &inputs, pool.as_ref(), warmup, iters)?;
    }
    Ok(())
}

fn profile(
    args: &BenchArgs,
    g: &Graph,
    opts: &CompileOptions,
    inputs: &[Tensor],
    pool: Option<&ThreadPool>,
    warmup: usize,
    iters: usize,
) -> Result<()> {
    let jit = kerf_targets::jit::jit_compile_profiled(g, opts, prof_hook)
        .with_context(|| format!("cannot compile '{}' (profiled)", args.model.display()))?;
    let model = jit.model();
    let kernels = &jit.report().kernels;
    let splits = jit.splits();
    let nk = kernels.len();
    let mut r = Runner {
        model,
        ins: inputs.iter().map(|t| t.bytes()).collect(),
        outs: model.info().outputs.iter().map(|t| vec![0u8; t.bytes]).collect(),
        arena: model.new_arena(),
        pool,
    };
    for _ in 0..warmup {
        r.once()?;
    }
    let mut per: Vec<Vec<f64>> = vec![Vec::with_capacity(iters); nk];
    for _ in 0..iters {
        MARKS.with(|m| m.borrow_mut().clear());
        r.once()?;
        let marks = MARKS.with(|m| std::mem::take(&mut *m.borrow_mut()));
        if marks.len() != nk + 1 || marks.iter().enumerate().any(|(i, &(k, _))| k as usize != i) {
            bail!("profile hook saw {} marks for {nk} kernels", marks.len());
        }
        for (i, w) in marks.windows(2).enumerate() {
            per[i].push((w[1].1 - w[0].1).as_secs_f64() * 1e3);
        }
    }
    let prefix = format!("{}_k", opts.name);
    let rows: Vec<(usize, f64)> = per
        .iter_mut()
        .enumerate()
        .map(|(i, v)| {
            let node = kernels[i].strip_prefix(&prefix).and_then(|s| s.parse::<usize>().ok()).unwrap_or(usize::MAX);
            (node, median(v))
        })
        .collect();
    let total: f64 = rows.iter().map(|r| r.1).sum();
    println!();
    println!("profile: {nk} kernels, median per kernel over {iters} runs (sum {total:.4} ms)");
    println!(
        "{:>4}  {:<18} {:<32} {:>10} {:>6} {:>10} {:>8} {:>5}",
        "#", "op", "layer", "ms", "share", "MFLOP", "GFLOP/s", "tasks"
    );
    let mut flops_total = 0u64;
    for (i, &(node, t)) in rows.iter().enumerate() {
        let (op, layer, flops) = match g.nodes.get(node) {
            Some(n) => (n.op.name().to_string(), n.name.clone(), 2 * kerf_ir::stats::node_macs(g, n)),
            None => ("?".to_string(), kernels[i].clone(), 0),
        };
        flops_total += flops;
        let gflops = if t > 0.0 { flops as f64 / (t * 1e6) } else { 0.0 };
        let share = if total > 0.0 { 100.0 * t / total } else { 0.0 };
        let layer: String = if layer.chars().count() > 32 {
            let tail: String = layer.chars().rev().take(31).collect::<Vec<_>>().into_iter().rev().collect();
            format!("…{tail}")
        } else {
            layer
        };
        // most tasks the kernel is split into (1: never split)
        let tasks = splits.get(i).copied().flatten().map_or(1, |s| s.max_tasks);
        println!(
            "{i:>4}  {op:<18} {layer:<32} {t:>10.4} {share:>5.1}% {:>10.3} {gflops:>8.2} {tasks:>5}",
            flops as f64 / 1e6
        );
    }
    let gflops = if total > 0.0 { flops_total as f64 / (total * 1e6) } else { 0.0 };
    println!(
        "{:>4}  {:<18} {:<32} {total:>10.4} {:>5.1}% {:>10.3} {gflops:>8.2}",
        "",
        "total",
        "",
        100.0,
        flops_total as f64 / 1e6
    );
    let split_ms: f64 =
        rows.iter().enumerate().filter(|(i, _)| splits.get(*i).is_some_and(Option::is_some)).map(|(_, r)| r.1).sum();
    let n_split = splits.iter().filter(|s| s.is_some()).count();
    println!(
        "split: {n_split} of {nk} kernels, {:.1}% of the time",
        if total > 0.0 { 100.0 * split_ms / total + 0.0 } else { 0.0 }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_quantile() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.9), 9.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 10.0);
    }
}
