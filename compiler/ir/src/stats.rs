//! Static cost facts: multiply-accumulates, parameters, weight bytes and the
//! activation-memory lower bound.

use std::collections::HashSet;

use crate::{Graph, Node, Op, ValueDef, WeightId};

/// Multiply-accumulates of a node. Only Conv, ConvTranspose, MatMul, Gemm,
/// LSTM and GRU count (the convention model zoos use); everything else is 0.
pub fn node_macs(g: &Graph, n: &Node) -> u64 {
    let ty = |i: usize| g.ty(n.inputs[i]);
    let out = |i: usize| g.ty(n.outputs[i]);
    match &n.op {
        Op::Conv(c) | Op::ConvFused(c, _) => {
            let w = ty(1);
            let per_out: usize = w.shape[1..].iter().product();
            let _ = c;
            (out(0).numel() * per_out) as u64
        }
        Op::ConvTranspose(c) => {
            let w = ty(1);
            // every input element is multiplied into (C_out/group) * kernel outputs
            let per_in: usize = w.shape[1..].iter().product();
            let _ = c;
            (ty(0).numel() * per_in) as u64
        }
        Op::Gemm(gm) | Op::GemmFused(gm, _) => {
            let a = ty(0);
            let k = if gm.trans_a { a.shape[0] } else { a.shape[1] };
            (out(0).numel() * k) as u64
        }
        Op::MatMul(_) | Op::MatMulFused(..) => {
            let a = ty(0);
            let k = *a.shape.last().unwrap_or(&0);
            (out(0).numel() * k) as u64
        }
        Op::Lstm(r) | Op::Gru(r) | Op::Rnn(r) => {
            let x = ty(0);
            let (seq, batch, input) = (x.shape[0], x.shape[1], x.shape[2]);
            let gates = match n.op {
                Op::Lstm(_) => 4,
                Op::Gru(_) => 3,
                _ => 1,
            };
            let d = r.direction.num_directions();
            (seq * batch * d * gates * r.hidden * (input + r.hidden)) as u64
        }
        _ => 0,
    }
}

/// Parameter elements among a node's constant inputs.
pub fn node_params(g: &Graph, n: &Node) -> u64 {
    let mut seen = HashSet::new();
    n.inputs
        .iter()
        .filter_map(|&v| match g.value(v).def {
            ValueDef::Const(w) if seen.insert(w) => Some(w),
            _ => None,
        })
        .filter(|&w| g.weights.get(w).is_param)
        .map(|w| g.weights.tensor(w).numel() as u64)
        .sum()
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub params: u64,
    pub weight_bytes: u64,
    pub macs: u64,
    pub peak_activation_bytes: u64,
}

/// Weights referenced by the graph (by a node or as an output).
fn used_weights(g: &Graph) -> Vec<WeightId> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let vals = g.nodes.iter().flat_map(|n| n.inputs.iter().copied()).chain(g.outputs.iter().map(|o| o.value));
    for v in vals {
        if let ValueDef::Const(w) = g.value(v).def {
            if seen.insert(w) {
                out.push(w);
            }
        }
    }
    out
}

pub fn totals(g: &Graph) -> Totals {
    let used = used_weights(g);
    Totals {
        params: used.iter().filter(|&&w| g.weights.get(w).is_param).map(|&w| g.weights.tensor(w).numel() as u64).sum(),
        weight_bytes: used.iter().map(|&w| g.weights.tensor(w).bytes().len() as u64).sum(),
        macs: g.nodes.iter().map(|n| node_macs(g, n)).sum(),
        peak_activation_bytes: peak_live_bytes(g),
    }
}

/// The largest sum of live activation bytes (graph inputs and node outputs,
/// not weights) at any step of the node order: a lower bound for any arena
/// that executes the nodes in this order without recomputation. A node's
/// inputs and outputs are live together while it runs.
pub fn peak_live_bytes(g: &Graph) -> u64 {
    let n_vals = g.values.len();
    let mut last_use = vec![None::<usize>; n_vals];
    for (i, n) in g.nodes.iter().enumerate() {
        for &v in &n.inputs {
            last_use[v.0 as usize] = Some(i);
        }
    }
    let end = g.nodes.len();
    for o in &g.outputs {
        last_use[o.value.0 as usize] = Some(end);
    }
    let is_act = |v: usize| !matches!(g.values[v].def, ValueDef::Const(_));
    let mut live: u64 = g.inputs.iter().map(|&v| g.ty(v).bytes() as u64).sum();
    let mut peak = live;
    for (i, n) in g.nodes.iter().enumerate() {
        for &o in &n.outputs {
            live += g.ty(o).bytes() as u64;
        }
        peak = peak.max(live);
        // free what dies here (inputs whose last use is this node, and dead outputs)
        let mut freed = HashSet::new();
        for &v in n.inputs.iter().chain(n.outputs.iter()) {
            let vi = v.0 as usize;
            if is_act(vi) && last_use[vi].is_none_or(|l| l <= i) && freed.insert(vi) {
                live -= g.ty(v).bytes() as u64;
            }
        }
    }
    peak
}
