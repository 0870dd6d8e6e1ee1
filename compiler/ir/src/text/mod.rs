//! The IR text format: deterministic printing and parsing.
//!
//! ```text
//! graph "tiny"
//!   input %0 "x": f32[1,4]
//!   const %1 "w": f32[3,4] = #5d41402abc4b2a76
//!   const %2 "b": f32[3] = [0.5,0.25,-1.0]
//!   %3 = Gemm{alpha=1.0, beta=1.0, trans_a=false, trans_b=true, layer="fc"}(%0, %1, %2): f32[1,3] @"fc"
//!   output "y" = %3
//! ```
//!
//! Values are renumbered on print (inputs, then constants in order of first
//! use, then node outputs), attributes print in each op's fixed order, and
//! weights of more than [`INLINE_LIMIT`] elements print as shape + content
//! hash. The parser accepts inline data, `fill(v)` and `iota(start,step)`
//! generators, and hashes that a [`WeightTable`] resolves, and re-checks every
//! declared type against inference.

mod lex;
mod parse;
#[cfg(test)]
mod tests;

pub use parse::{parse, parse_with_weights};

use std::collections::HashMap;
use std::fmt::Write;

use crate::attr::fmt_f32;
use crate::{DType, Graph, Sparsity, Tensor, TensorType, ValueDef, ValueId, WeightGrid};

/// Weights with at most this many elements print their values.
pub const INLINE_LIMIT: usize = 8;

/// Prints a graph in the text format.
pub fn print(g: &Graph) -> String {
    let mut num: HashMap<ValueId, usize> = HashMap::new();
    let mut next = 0;
    let mut out = String::new();
    let _ = writeln!(out, "graph {:?}", g.name);
    for &i in &g.inputs {
        num.insert(i, next);
        let v = g.value(i);
        let _ = writeln!(out, "  input %{next} {:?}: {}", v.name, ty_text(g, &v.ty));
        next += 1;
    }
    let uses = g.nodes.iter().flat_map(|n| n.inputs.iter().copied()).chain(g.outputs.iter().map(|o| o.value));
    for v in uses {
        if num.contains_key(&v) {
            continue;
        }
        if let ValueDef::Const(w) = g.value(v).def {
            num.insert(v, next);
            let wt = g.weights.get(w);
            let (name, ty) = (&g.value(v).name, ty_text(g, &g.value(v).ty));
            let _ = writeln!(
                out,
                "  const %{next} {name:?}: {ty} = {}{}{}",
                const_text(&wt.tensor),
                layout_text(&wt.sparsity),
                grid_text(wt.grid.as_ref())
            );
            next += 1;
        }
    }
    for n in &g.nodes {
        let mut outs = Vec::new();
        for &o in &n.outputs {
            num.insert(o, next);
            outs.push(format!("%{next}"));
            next += 1;
        }
        let attrs: Vec<String> = n.op.attrs().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        let attrs = if attrs.is_empty() { String::new() } else { format!("{{{}}}", attrs.join(", ")) };
        let ins: Vec<String> =
            n.inputs.iter().map(|i| format!("%{}", num.get(i).copied().unwrap_or(usize::MAX))).collect();
        let tys: Vec<String> = n.outputs.iter().map(|&o| ty_text(g, g.ty(o))).collect();
        let _ = writeln!(
            out,
            "  {} = {}{}({}): {} @{:?}",
            outs.join(", "),
            n.op.name(),
            attrs,
            ins.join(", "),
            tys.join(", "),
            n.name
        );
    }
    for o in &g.outputs {
        let _ = writeln!(out, "  output {:?} = %{}", o.name, num.get(&o.value).copied().unwrap_or(usize::MAX));
    }
    out
}

/// A type, with its grid when it has one:
/// `u8[1,4] quant(scale: f32[] = [0.05], zp: u8[] = [128])`, per channel
/// `i8[8,4] quant(axis=0, scale: f32[8] = #…, zp: i8[8] = [0,…])`.
fn ty_text(g: &Graph, ty: &TensorType) -> String {
    let Some(q) = &ty.quant else { return ty.to_string() };
    let param = |w| {
        let t = g.weights.tensor(w);
        format!("{} = {}", TensorType::new(t.dtype(), t.shape().to_vec()), const_text(t))
    };
    let axis = q.axis.map(|a| format!("axis={a}, ")).unwrap_or_default();
    format!("{ty} quant({axis}scale: {}, zp: {})", param(q.scale), param(q.zero_point))
}

/// A weight's int8 grid after its data and layout (nothing without one):
/// ` grid=int8(axis=0, scales=[…])`.
fn grid_text(g: Option<&WeightGrid>) -> String {
    let Some(g) = g else { return String::new() };
    let s: Vec<String> = g.scales.iter().map(|x| format!("{x:?}")).collect();
    format!(" grid=int8(axis={}, scales=[{}])", g.axis, s.join(","))
}

/// A weight's recorded layout after its data (nothing when dense):
/// ` layout=pattern(kernel=[3,3], masks=[…], kept=N)` (the assignment is
/// re-derived from the data on parse, see [`parse_layout`]),
/// ` layout=unstructured(nonzeros=N)`.
fn layout_text(s: &Sparsity) -> String {
    match s {
        Sparsity::Dense => String::new(),
        Sparsity::Pattern { kernel, patterns, assignment } => {
            let masks: Vec<String> = patterns.iter().map(u32::to_string).collect();
            let kept = assignment.iter().filter(|a| a.is_some()).count();
            format!(" layout=pattern(kernel=[{},{}], masks=[{}], kept={kept})", kernel[0], kernel[1], masks.join(","))
        }
        Sparsity::Unstructured { nonzeros } => format!(" layout=unstructured(nonzeros={nonzeros})"),
    }
}

fn const_text(t: &Tensor) -> String {
    if t.numel() > INLINE_LIMIT {
        return format!("#{}", t.content_hash());
    }
    let items: Vec<String> = (0..t.numel())
        .map(|i| match t.dtype() {
            DType::F32 | DType::F16 | DType::BF16 => fmt_f32(t.get_f64(i) as f32),
            DType::F64 => format!("{:?}", t.get_f64(i)),
            _ => t.get_i64(i).to_string(),
        })
        .collect();
    format!("[{}]", items.join(","))
}
