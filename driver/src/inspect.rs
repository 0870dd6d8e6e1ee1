//! `kerf inspect`: per-node and total static facts about a model.

use anyhow::Result;
use clap::{Args, ValueEnum};
use kerf_ir::stats::{node_macs, node_params, totals};
use kerf_ir::{Graph, ValueDef};
use kerf_pipeline::Stage;
use serde_json::{json, Value};
use std::fmt::Write as _;

use crate::options::{warn, ModelArgs};

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Print the IR text after a pipeline stage instead of the table.
    #[arg(long = "dump-ir", value_enum)]
    dump_ir: Option<DumpStage>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Inspect the graph after the lossless rewrites instead of as imported.
    #[arg(long)]
    optimized: bool,
    /// Target triple whose kernels the rewrites plan for (which convs
    /// become integer, Winograd, assembled passes).
    #[arg(long, default_value = "host", long_help = format!("Target triple: {}", kerf_targets::isa::targets_help()))]
    target: String,
    /// CPU feature preset of the target (`native` shows what `kerf bench` and `kerf run` compile).
    #[arg(long, default_value = "baseline")]
    cpu: String,
}

/// The graph stages `--dump-ir` can show (one per [`Stage`]).
#[derive(Clone, Copy, Debug, ValueEnum)]
enum DumpStage {
    /// As imported.
    Import,
    /// After the compression flags' lossy transforms.
    Compress,
    /// After the lossless rewrite groups.
    #[value(alias = "optimized")]
    Optimize,
}

impl DumpStage {
    fn stage(self) -> Stage {
        match self {
            DumpStage::Import => Stage::Import,
            DumpStage::Compress => Stage::Compress,
            DumpStage::Optimize => Stage::Optimize,
        }
    }
}

pub fn run(args: &InspectArgs) -> Result<()> {
    let session = args.model.session()?.target(kerf_targets::Target::parse(&args.target, &args.cpu)?);
    let stage = match (args.dump_ir, args.optimized) {
        (Some(d), _) => d.stage(),
        (None, true) => Stage::Optimize,
        (None, false) => Stage::Import,
    };
    let o = session.graph_at(stage)?;
    warn(&o);
    let g = o.graph;
    if args.dump_ir.is_some() {
        print!("{}", kerf_ir::text::print(&g));
        return Ok(());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&g))?);
    } else {
        print!("{}", table(&g));
    }
    Ok(())
}

fn shapes(g: &Graph, vals: &[kerf_ir::ValueId]) -> Vec<String> {
    vals.iter()
        .map(|&v| match g.value(v).def {
            ValueDef::Const(_) => format!("const {}", g.ty(v)),
            _ => g.ty(v).to_string(),
        })
        .collect()
}

fn to_json(g: &Graph) -> Value {
    let t = totals(g);
    let io = |vals: Vec<(String, kerf_ir::ValueId)>| -> Vec<Value> {
        vals.into_iter()
            .map(|(name, v)| {
                let ty = g.ty(v);
                json!({ "name": name, "dtype": ty.dtype.name(), "shape": ty.shape })
            })
            .collect()
    };
    let nodes: Vec<Value> = g
        .nodes
        .iter()
        .map(|n| {
            json!({
                "name": n.name,
                "op": n.op.name(),
                "layer": n.op.layer().map(|l| l.0.clone()),
                "inputs": shapes(g, &n.inputs),
                "outputs": shapes(g, &n.outputs),
                "dtype": n.outputs.first().map(|&o| g.ty(o).dtype.name()),
                "params": node_params(g, n),
                "macs": node_macs(g, n),
            })
        })
        .collect();
    json!({
        "model": g.name,
        "inputs": io(g.inputs.iter().map(|&v| (g.value(v).name.clone(), v)).collect()),
        "outputs": io(g.outputs.iter().map(|o| (o.name.clone(), o.value)).collect()),
        "nodes": nodes,
        "totals": {
            "params": t.params,
            "weight_bytes": t.weight_bytes,
            "macs": t.macs,
            "peak_activation_bytes": t.peak_activation_bytes,
        },
    })
}

/// Human-readable SI-style count (1.23K, 4.56M, 7.89G).
fn human(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.2}G", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.2}M", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.2}K", f / 1e3)
    } else {
        n.to_string()
    }
}

fn table(g: &Graph) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "node".into(),
        "op".into(),
        "inputs".into(),
        "outputs".into(),
        "dtype".into(),
        "params".into(),
        "MACs".into(),
    ]];
    for n in &g.nodes {
        rows.push([
            n.name.clone(),
            n.op.name().into(),
            shapes(g, &n.inputs).join(" "),
            shapes(g, &n.outputs).join(" "),
            n.outputs.first().map(|&o| g.ty(o).dtype.name()).unwrap_or("-").into(),
            node_params(g, n).to_string(),
            node_macs(g, n).to_string(),
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "model '{}'", g.name);
    for &i in &g.inputs {
        let _ = writeln!(out, "  input  {} : {}", g.value(i).name, g.ty(i));
    }
    for o in &g.outputs {
        let _ = writeln!(out, "  output {} : {}", o.name, g.ty(o.value));
    }
    out.push('\n');
    for r in &rows {
        let line: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    let t = totals(g);
    let _ = writeln!(
        out,
        "\ntotals: {} nodes, params {} ({}), weight bytes {} ({}B), MACs {} ({}), peak activation bytes {} ({}B)",
        g.nodes.len(),
        t.params,
        human(t.params),
        t.weight_bytes,
        human(t.weight_bytes),
        t.macs,
        human(t.macs),
        t.peak_activation_bytes,
        human(t.peak_activation_bytes)
    );
    out
}
