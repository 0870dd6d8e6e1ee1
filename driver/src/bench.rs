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
//! `kerf_ir::stats`), achieved GFLOP/s, the most tasks the kernel is
//! split into (1: it always runs on the calling thread) and its code family
//! (`avx2`: calls assembled 256-bit micro-kernels; `cl-128`: Cranelift's
//! 128-bit vectors; `scalar`).

use std::cell::RefCell;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use kerf_ir::{Graph, Tensor};
use kerf_pipeline::inputs::{arrange, Missing};
use kerf_pipeline::measure::{median, MeasureOptions, Runner};
use kerf_pipeline::Session;
use kerf_runtime::ThreadPool;

use crate::options::{note_bound, warn, with_input_files, ModelArgs, MAX_RUNS};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
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
    /// CPU preset for the host JIT.
    #[arg(long, default_value = "native")]
    cpu: String,
    /// Keep every kernel in Cranelift's own 128-bit code (no assembled
    /// AVX2 micro-kernels); the outputs are the same bits.
    #[arg(long = "no-micro-kernels")]
    no_micro_kernels: bool,
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

/// Most threads `--threads` takes (each is an OS thread with its stack).
const MAX_THREADS: usize = 1024;

pub fn run(args: &BenchArgs) -> Result<()> {
    if !(1..=MAX_THREADS).contains(&args.threads) {
        bail!("--threads {} must be in 1..={MAX_THREADS}", args.threads);
    }
    for (flag, n) in [("--iters", args.iters), ("--warmup", args.warmup)] {
        if let Some(n) = n.filter(|&n| n > MAX_RUNS) {
            bail!("{flag} {n} is more than {MAX_RUNS} runs");
        }
    }
    if args.iters == Some(0) {
        bail!("--iters must be at least 1");
    }
    let (session, files) = with_input_files(
        args.model.session()?.target(kerf_targets::Target::host(&args.cpu)?).micro_kernels(!args.no_micro_kernels),
        &args.inputs,
    )?;
    let o = session.graph()?;
    warn(&o);
    let g = o.graph;
    note_bound(&session, &g, &files);
    let inputs = arrange(&g, &files, Missing::Zeros)?;
    let t0 = Instant::now();
    let jit = session.jit(&g)?;
    let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
    let pool = (args.threads > 1).then(|| ThreadPool::new(args.threads));
    let threads = pool.as_ref().map_or(1, ThreadPool::threads);
    let mut r = Runner::new(jit.model(), &inputs, pool.as_ref())?;
    let t = r.measure(&MeasureOptions { warmup: args.warmup, iters: args.iters }).map_err(|e| e.in_graph(&g))?;
    println!("model: {}", args.model.model.display());
    println!("threads: {threads}");
    println!("compile: {compile_ms:.1} ms");
    println!("warmup: {}", t.warmup);
    println!("iters: {}", t.iters());
    println!("median: {:.4} ms", t.median());
    println!("min: {:.4} ms", t.min());
    println!("p90: {:.4} ms", t.quantile(0.9));
    if args.profile {
        profile(&session, &g, &inputs, pool.as_ref(), t.warmup, t.iters())?;
    }
    Ok(())
}

/// The share of non-zero values in a conv's or product's constant weight
/// (its input 1): with `MFLOP` (every weight's multiply-adds) what a
/// kernel skipping zeros (pattern, block-sparse) has left to do.
fn nonzero_share(g: &Graph, n: &kerf_ir::Node) -> Option<f64> {
    use kerf_ir::Op;
    let weighted = matches!(
        n.op,
        Op::Conv(_)
            | Op::ConvFused(..)
            | Op::QConv(_)
            | Op::ConvTranspose(_)
            | Op::ConvTransposeFused(..)
            | Op::Gemm(_)
            | Op::GemmFused(..)
            | Op::MatMul(_)
            | Op::MatMulFused(..)
    );
    let w = n.inputs.get(1).filter(|_| weighted).and_then(|&v| g.const_of(v))?;
    let numel = w.numel();
    (numel > 0).then(|| w.to_f32_vec().iter().filter(|x| **x != 0.0).count() as f64 / numel as f64)
}

/// `kerf bench --profile`: every kernel timed through the profiling hook.
fn profile(
    session: &Session,
    g: &Graph,
    inputs: &[Tensor],
    pool: Option<&ThreadPool>,
    warmup: usize,
    iters: usize,
) -> Result<()> {
    let jit = session.jit_profiled(g, prof_hook)?;
    let kernels = &jit.report().kernels;
    let splits = jit.splits();
    let families = jit.families();
    let nk = kernels.len();
    let mut r = Runner::new(jit.model(), inputs, pool)?;
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
    let prefix = format!("{}_k", session.symbol_name());
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
        "{:>4}  {:<18} {:<32} {:>10} {:>6} {:>10} {:>8} {:>5} {:>5}  code",
        "#", "op", "layer", "ms", "share", "MFLOP", "GFLOP/s", "nz%", "tasks"
    );
    let mut flops_total = 0u64;
    for (i, &(node, t)) in rows.iter().enumerate() {
        let (op, layer, flops, nz) = match g.nodes.get(node) {
            Some(n) => {
                (n.op.name().to_string(), n.name.clone(), 2 * kerf_ir::stats::node_macs(g, n), nonzero_share(g, n))
            }
            None => ("?".to_string(), kernels[i].clone(), 0, None),
        };
        let nz = nz.map_or("-".to_string(), |f| format!("{:.0}", 100.0 * f));
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
        let family = families.get(i).map_or("?", |f| f.name());
        println!(
            "{i:>4}  {op:<18} {layer:<32} {t:>10.4} {share:>5.1}% {:>10.3} {gflops:>8.2} {nz:>5} {tasks:>5}  {family}",
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
