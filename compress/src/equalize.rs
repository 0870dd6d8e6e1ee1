//! Cross-layer equalisation (Nagel et al. 2019, "Data-Free Quantization";
//! `../shared/COMPRESSION.md`): for two convs joined by a positively
//! homogeneous activation (none, ReLU, LeakyRelu), `A → act → B`, scaling
//! A's output channel `i` by `1/s_i` and B's input channel `i` by `s_i`
//! leaves the function unchanged (`act(x/s) = act(x)/s` for `s > 0`). With
//! `s_i = sqrt(r1_i / r2_i)`, where `r1_i` is the largest magnitude of A's
//! output channel `i` and `r2_i` that of B's weights reading channel `i`,
//! both become `sqrt(r1_i · r2_i)`: the channel ranges of a layer even out,
//! which is what a per-tensor int8 grid needs (a depthwise conv after a
//! BatchNorm fold can have channels 100x apart). Pairs are equalised in node
//! order, repeated until no scale moves by more than 1% (at most
//! [`ROUNDS`] times), since equalising `(B, C)` changes B again.
//!
//! Contract: only pairs where both layers' settings ask for it, A's output
//! and the activation's output have exactly one user each and are not
//! graph outputs, A's weight (and bias) are used by A alone and B's by B
//! alone, and B reads A's channels one to one (its input channels are A's
//! output channels; any group count). ReLU6 / Clip pairs are left alone:
//! a clip is not homogeneous, and replacing it by a ReLU (as DFQ does)
//! would change the function.

use kerf_ir::{Graph, Op, UnaryOp, ValueDef, ValueId, WeightId};

use crate::layer::{Kind, Site};
use crate::plan::LayerSettings;
use crate::{rewrite, CompressError};

/// Most passes over the pairs.
pub const ROUNDS: usize = 20;

/// A pair to equalise: the node indices of A and B (both sites).
#[derive(Clone, Copy, Debug)]
struct Pair {
    a: usize,
    b: usize,
}

/// The equalised graph and the layers whose weights changed.
pub fn equalize(g: &Graph, sites: &[Site], settings: &[LayerSettings]) -> Result<(Graph, Vec<String>), CompressError> {
    let pairs = pairs(g, sites, settings);
    let mut out = g.clone();
    let mut changed = Vec::new();
    for _ in 0..ROUNDS {
        let mut moved = false;
        for p in &pairs {
            let (a, b) = (&sites[p.a], &sites[p.b]);
            let s = scales(&out, a, b);
            if s.iter().all(|&x| (x - 1.0).abs() < 0.01) {
                continue;
            }
            moved = true;
            apply(&mut out, a, b, &s)?;
            for l in [&a.layer, &b.layer] {
                if !changed.contains(l) {
                    changed.push(l.clone());
                }
            }
        }
        if !moved {
            break;
        }
    }
    Ok((out, changed))
}

/// The pairs of `sites` (indices) that may be equalised.
fn pairs(g: &Graph, sites: &[Site], settings: &[LayerSettings]) -> Vec<Pair> {
    let uses = g.use_counts();
    let user = |v: ValueId| -> Option<usize> {
        if uses[v.0 as usize] != 1 || g.outputs.iter().any(|o| o.value == v) {
            return None;
        }
        g.nodes.iter().position(|n| n.inputs.contains(&v))
    };
    let mut out = Vec::new();
    for (ia, a) in sites.iter().enumerate() {
        if !settings[ia].equalize
            || !matches!(a.kind, Kind::Conv { .. })
            || !crate::layer::sole_reader(g, a.node, a.weight)
        {
            continue;
        }
        // A's bias is scaled with its weight: a constant only A reads
        if let Some(&b) = g.nodes[a.node].inputs.get(2) {
            match g.value(b).def {
                ValueDef::Const(w) if crate::layer::sole_reader(g, a.node, w) => {}
                _ => continue,
            }
        }
        let Some(&y) = g.nodes[a.node].outputs.first() else { continue };
        let Some(mut next) = user(y) else { continue };
        if let Op::Unary(UnaryOp::Relu | UnaryOp::LeakyRelu { .. }) = g.nodes[next].op {
            let Some(&z) = g.nodes[next].outputs.first() else { continue };
            let Some(n2) = user(z) else { continue };
            next = n2;
        }
        let Some(ib) = sites.iter().position(|s| s.node == next) else { continue };
        let b = &sites[ib];
        let b_in_channels = g.ty(b.input).shape.get(1).copied().unwrap_or(0);
        if settings[ib].equalize
            && matches!(b.kind, Kind::Conv { .. })
            && b_in_channels == a.rows
            && crate::layer::sole_reader(g, b.node, b.weight)
        {
            out.push(Pair { a: ia, b: ib });
        }
    }
    out
}

/// `s_i = sqrt(r1_i / r2_i)` per channel (1 where either range is zero).
fn scales(g: &Graph, a: &Site, b: &Site) -> Vec<f64> {
    let wa = a.rows_of(g.weights.tensor(a.weight));
    let r1: Vec<f64> = wa.iter().map(|r| r.iter().fold(0.0f64, |m, &x| m.max(x.abs()))).collect();
    let r2 = input_ranges(g, b);
    r1.iter().zip(&r2).map(|(&x, &y)| if x > 0.0 && y > 0.0 { (x / y).sqrt() } else { 1.0 }).collect()
}

/// The largest magnitude of B's weights reading each input channel.
fn input_ranges(g: &Graph, b: &Site) -> Vec<f64> {
    let w = g.weights.tensor(b.weight);
    let shape = w.shape();
    let (m, cg) = (shape[0], shape[1]);
    let area: usize = shape[2..].iter().product();
    let groups = b.groups();
    let mg = m / groups.max(1);
    let v = w.to_f64_vec();
    let mut r = vec![0f64; cg * groups];
    for o in 0..m {
        let grp = o / mg.max(1);
        for c in 0..cg {
            let base = (o * cg + c) * area;
            let mx = v[base..base + area].iter().fold(0.0f64, |acc, &x| acc.max(x.abs()));
            let ch = grp * cg + c;
            r[ch] = r[ch].max(mx);
        }
    }
    r
}

/// A's output channel `i` (weights and bias) divided by `s_i`, B's input
/// channel `i` multiplied by it.
fn apply(g: &mut Graph, a: &Site, b: &Site, s: &[f64]) -> Result<(), CompressError> {
    let wa = g.weights.tensor(a.weight).clone();
    let per = wa.numel() / a.rows.max(1);
    let va: Vec<f32> = wa.to_f64_vec().iter().enumerate().map(|(i, &x)| (x / s[i / per]) as f32).collect();
    set(g, a.weight, &wa, &va, &a.layer)?;
    if let Some(&bias) = g.nodes[a.node].inputs.get(2) {
        if let ValueDef::Const(bw) = g.value(bias).def {
            let t = g.weights.tensor(bw).clone();
            let vb: Vec<f32> = t.to_f64_vec().iter().enumerate().map(|(i, &x)| (x / s[i]) as f32).collect();
            set(g, bw, &t, &vb, &a.layer)?;
        }
    }
    let wb = g.weights.tensor(b.weight).clone();
    let shape = wb.shape().to_vec();
    let (m, cg) = (shape[0], shape[1]);
    let area: usize = shape[2..].iter().product();
    let mg = m / b.groups().max(1);
    let vb: Vec<f32> = wb
        .to_f64_vec()
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let (o, c) = (i / (cg * area), i / area % cg);
            (x * s[o / mg.max(1) * cg + c]) as f32
        })
        .collect();
    set(g, b.weight, &wb, &vb, &b.layer)
}

fn set(g: &mut Graph, w: WeightId, like: &kerf_ir::Tensor, v: &[f32], layer: &str) -> Result<(), CompressError> {
    let t =
        kerf_ir::Tensor::from_f32(like.shape().to_vec(), v).map_err(|e| CompressError::layer(layer, e.to_string()))?;
    let slot = g.weights.get(w);
    // scaling keeps zeros where they are, so a pattern layout stays valid
    let (sparsity, grid) = (slot.sparsity.clone(), None);
    rewrite::set_weight(g, w, t, sparsity, grid)
}
