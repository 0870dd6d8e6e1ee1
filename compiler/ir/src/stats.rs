//! Static cost facts: multiply-accumulates, parameters, weight bytes and the
//! activation-memory lower bound.

use std::collections::HashSet;

use crate::{Graph, Node, Op, TensorType, ValueDef, WeightId};

/// Multiply-accumulates of a node (see [`macs`]).
pub fn node_macs(g: &Graph, n: &Node) -> u64 {
    let ins: Vec<&TensorType> = n.inputs.iter().map(|&v| g.ty(v)).collect();
    n.outputs.first().map_or(0, |&o| macs(&n.op, &ins, g.ty(o)))
}

/// Multiply-accumulates of `op` on inputs of types `ins` giving a first
/// output of type `out`: the one formula the reports, the compress stage
/// and the extractor's cost model share. Only Conv, ConvTranspose, MatMul,
/// Gemm (fused or not), LSTM, GRU and RNN count (the convention model zoos
/// use; an elementwise epilogue is not a MAC). The match is exhaustive so
/// that a new op states its count. Missing input types count 0.
pub fn macs(op: &Op, ins: &[&TensorType], out: &TensorType) -> u64 {
    let inner = |i: usize| ins.get(i).map_or(0, |w| w.shape.iter().skip(1).product::<usize>());
    let dim = |i: usize, d: usize| ins.get(i).and_then(|t| t.shape.get(d)).copied().unwrap_or(0);
    let n = match op {
        // each output reads (C_in/group) * kernel weights
        Op::Conv(_) | Op::ConvFused(..) | Op::QConv(_) => out.numel() * inner(1),
        // every input element is multiplied into (C_out/group) * kernel outputs
        Op::ConvTranspose(_) | Op::ConvTransposeFused(..) => ins.first().map_or(0, |x| x.numel()) * inner(1),
        Op::Gemm(gm) | Op::GemmFused(gm, _) => out.numel() * dim(0, if gm.trans_a { 0 } else { 1 }),
        Op::MatMul(_) | Op::MatMulFused(..) => {
            out.numel() * ins.first().and_then(|a| a.shape.last()).copied().unwrap_or(0)
        }
        Op::Lstm(r) | Op::Gru(r) | Op::Rnn(r) => {
            let gates = match op {
                Op::Lstm(_) => 4,
                Op::Gru(_) => 3,
                _ => 1,
            };
            let (seq, batch, input) = (dim(0, 0), dim(0, 1), dim(0, 2));
            seq * batch * r.direction.num_directions() * gates * r.hidden * (input + r.hidden)
        }
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Where
        | Op::Chain(_)
        | Op::Cast(_)
        | Op::BitCast(_)
        | Op::CastF8 { .. }
        | Op::Requantize { .. }
        | Op::Quantize { .. }
        | Op::Identity
        | Op::Dropout
        | Op::BatchNorm { .. }
        | Op::LayerNorm { .. }
        | Op::InstanceNorm { .. }
        | Op::Softmax { .. }
        | Op::LogSoftmax { .. }
        | Op::MaxPool(_)
        | Op::AveragePool(_)
        | Op::GlobalAveragePool
        | Op::GlobalMaxPool
        | Op::Reduce { .. }
        | Op::ArgMax { .. }
        | Op::ArgMin { .. }
        | Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Concat { .. }
        | Op::Split { .. }
        | Op::Slice { .. }
        | Op::Gather { .. }
        | Op::Expand { .. }
        | Op::Tile { .. }
        | Op::Pad { .. }
        | Op::Resize(_) => 0,
    };
    n as u64
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

/// Whole-graph cost facts (see [`totals`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Parameter elements among the weights the graph uses (those with [`Weight::is_param`](crate::Weight)).
    pub params: u64,
    /// Bytes of every weight the graph uses, parameter or not.
    pub weight_bytes: u64,
    /// Multiply-accumulates of all nodes (see [`macs`]).
    pub macs: u64,
    /// [`peak_live_bytes`] of the graph.
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

/// The [`Totals`] of a graph, counting each weight it uses once.
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
