//! The extraction cost model.
//!
//! Cost of one e-node = [`OP_OVERHEAD`] + arithmetic work + bytes moved,
//! computed from the analysis types of its class and children:
//!
//! * work: 2 FLOPs per multiply-accumulate for Conv, ConvTranspose, Gemm,
//!   MatMul, LSTM and GRU (plus one per output for a bias); one per output
//!   element for cheap elementwise ops, [`TRANSCENDENTAL`] per element for
//!   exp/tanh/erf-like ops and the normalisations; one per input element for
//!   reductions and pools (times the window);
//! * bytes: every input read (weights included: a kernel streams them) plus
//!   every output written. Reshape is a view and moves nothing.
//! * a Winograd conv ([`winograd_work`]) is priced by its GEMMs, transforms
//!   and transformed weights instead, so extraction picks direct, F(2×2,3×3)
//!   or F(4×4,3×3) per layer.
//!
//! Leaves are free: `Input` is given, `Const` is a weight baked into the
//! binary (weights are free at run time; reading them is charged to the op
//! that reads them), and `Proj` only names an output of its tuple. Every op
//! node costs at least [`OP_OVERHEAD`], so `Identity`/`Dropout` (and any
//! redundant Reshape/Transpose) are never cheaper than their input.
//!
//! The units are deliberately crude (a FLOP and a byte weigh the same); the
//! model only has to rank alternatives of the same value.

use kerf_ir::op::{ChainStep, Conv, ConvAlgo};
use kerf_ir::{Op, TensorType, UnaryOp};

use crate::lang::NodeOp;

/// Fixed cost of running any op (a call, a loop nest).
pub const OP_OVERHEAD: f64 = 16.0;
/// Work per element of a transcendental elementwise op or normalisation.
pub const TRANSCENDENTAL: f64 = 8.0;

fn numel(t: &TensorType) -> f64 {
    t.numel() as f64
}

fn bytes(t: &TensorType) -> f64 {
    t.bytes() as f64
}

/// Cost of an e-node whose children have types `ins` (one slice per child)
/// and whose class has types `outs`, for a code generator whose integer
/// conv multiplies 16-bit pairs.
pub fn node_cost(op: &NodeOp, ins: &[&[TensorType]], outs: &[TensorType]) -> f64 {
    node_cost_with(op, ins, outs, crate::Int8Dot::Pairs.rate(false))
}

/// [`node_cost`] with `QConv`'s multiply-adds at `int8_rate` times the f32
/// rate ([`crate::Int8Dot::rate`]).
pub fn node_cost_with(op: &NodeOp, ins: &[&[TensorType]], outs: &[TensorType], int8_rate: f64) -> f64 {
    let op = match op {
        NodeOp::Input(_) | NodeOp::Const(_) | NodeOp::Proj(_) => return 0.0,
        NodeOp::Op(op) => op,
    };
    let inp = |i: usize| ins.get(i).and_then(|t| t.first());
    let out_n: f64 = outs.iter().map(numel).sum();
    let in_bytes: f64 = ins.iter().flat_map(|t| t.iter()).map(bytes).sum();
    let out_bytes: f64 = outs.iter().map(bytes).sum();
    let in0_n = inp(0).map_or(0.0, numel);
    let has_bias = ins.len() > 2;
    let macs = {
        let tys: Option<Vec<&TensorType>> = ins.iter().map(|t| t.first()).collect();
        match (tys, outs.first()) {
            (Some(tys), Some(out)) => kerf_ir::stats::macs(op, &tys, out) as f64,
            _ => 0.0,
        }
    };
    let work = match op {
        Op::Reshape { .. } => return OP_OVERHEAD,
        Op::Conv(c) | Op::ConvFused(c, _) if matches!(c.algo, ConvAlgo::Winograd { .. }) => {
            // the transformed weights replace the 3x3 ones in the bytes read
            let w_bytes = inp(1).map_or(0.0, bytes);
            return OP_OVERHEAD + winograd_work(c, inp(0), inp(1), outs.first()) + in_bytes - w_bytes + out_bytes;
        }
        // two flops per multiply-accumulate (the one formula, kerf_ir::stats::macs)
        Op::Conv(_) | Op::ConvTranspose(_) | Op::Gemm(_) => 2.0 * macs + if has_bias { out_n } else { 0.0 },
        Op::MatMul(_) => 2.0 * macs,
        // The epilogue's adds and activation run in registers: their work
        // only, no pass over memory (that is what makes fusing pay).
        Op::ConvFused(..) => 2.0 * macs + if has_bias { out_n } else { 0.0 },
        // Integer multiply-adds priced at `int8_rate` times the f32 rate
        // (crate::Int8Dot::rate); the input is quantised once (a divide,
        // round and clamp per element).
        // A depthwise one (one channel per group) converts its input to
        // floats once and multiply-adds in f32 (the integer depthwise pass).
        Op::QConv(q) if inp(1).is_some_and(|w| q.conv.is_depthwise(&w.shape)) => {
            2.0 * macs + in0_n + out_n + epilogue_work(&q.epi, out_n)
        }
        Op::QConv(q) => 2.0 * macs / int8_rate + 4.0 * in0_n + out_n + epilogue_work(&q.epi, out_n),
        Op::MatMulFused(_, e) | Op::GemmFused(_, e) | Op::ConvTransposeFused(_, e) => {
            2.0 * macs + out_n + epilogue_work(e, out_n)
        }
        Op::Lstm(r) | Op::Gru(r) | Op::Rnn(r) => {
            let gates = match op {
                Op::Lstm(_) => 4.0,
                Op::Gru(_) => 3.0,
                _ => 1.0,
            };
            let (seq, batch) = inp(0).map_or((0.0, 0.0), |x| {
                let d = |i: usize| *x.shape.get(i).unwrap_or(&0) as f64;
                (d(0), d(1))
            });
            let steps = seq * batch * r.direction.num_directions() as f64 * gates * r.hidden as f64;
            2.0 * macs + TRANSCENDENTAL * steps
        }
        Op::Unary(u) => unary_work(*u) * out_n,
        // Each step's work; the bytes are one read of each input and one
        // write, which is what makes a chain cheaper than its steps as nodes.
        Op::Chain(steps) => {
            let per: f64 = steps
                .iter()
                .map(|s| match s {
                    ChainStep::Unary(u) => unary_work(*u),
                    ChainStep::Binary { .. } => 1.0,
                })
                .sum();
            per * out_n
        }
        Op::Binary(_) | Op::Where | Op::Cast(_) | Op::CastF8 { .. } | Op::BitCast(_) => out_n,
        // a dozen f64 steps per element, in one pass
        Op::Requantize { .. } => 4.0 * out_n,
        // a divide, round, clamp and add per element, in one pass
        Op::Quantize { .. } => 4.0 * out_n,
        Op::BatchNorm { .. } => 2.0 * out_n,
        Op::LayerNorm { .. } | Op::InstanceNorm { .. } | Op::Softmax { .. } | Op::LogSoftmax { .. } => {
            TRANSCENDENTAL * out_n
        }
        Op::MaxPool(p) | Op::AveragePool(p) => out_n * p.window.kernel.iter().product::<usize>() as f64,
        Op::GlobalAveragePool | Op::GlobalMaxPool | Op::Reduce { .. } | Op::ArgMax { .. } | Op::ArgMin { .. } => in0_n,
        Op::Resize(_) => 4.0 * out_n,
        // Pure data movement: only the bytes count.
        Op::Identity
        | Op::Dropout
        | Op::Transpose { .. }
        | Op::Concat { .. }
        | Op::Split { .. }
        | Op::Slice { .. }
        | Op::Gather { .. }
        | Op::Expand { .. }
        | Op::Tile { .. }
        | Op::Pad { .. } => 0.0,
    };
    OP_OVERHEAD + work + in_bytes + out_bytes
}

/// Work of a fused epilogue on `out_n` outputs: one add for a residual, the
/// activation's elementwise work (as its unfused node would be charged).
fn epilogue_work(e: &kerf_ir::op::Epilogue, out_n: f64) -> f64 {
    let act = match e.act {
        None => 0.0,
        Some(UnaryOp::Relu | UnaryOp::LeakyRelu { .. } | UnaryOp::Clip { .. } | UnaryOp::HardSwish) => out_n,
        Some(_) => TRANSCENDENTAL * out_n,
    };
    act + if e.residual { out_n } else { 0.0 }
}

/// Work per input element per transform position of the Winograd input
/// transform (a scalar gather per lane, then the Bᵀ d B adds); measured
/// kernels put it well above one FLOP.
pub const WINOGRAD_IN_XFORM: f64 = 6.0;
/// Work per product element of the Winograd output transform (Aᵀ M A, the
/// bias, a scalar store per lane); measured kernels put it well above one FLOP.
pub const WINOGRAD_OUT_XFORM: f64 = 4.0;
/// Fixed cost of each of the n² GEMMs (loop setup, partial micro-tiles):
/// keeps tiny convs (a few channels on a few pixels) direct.
pub const WINOGRAD_PER_GEMM: f64 = 256.0;
/// Cost per byte of transformed weights beyond [`WINOGRAD_CACHE_BYTES`]:
/// they are streamed from DRAM (~15 GB/s) once per call while the core
/// does ~56 GFLOP/s, so a byte weighs ~4 FLOPs. Measured on resnet18's
/// 512-channel 7×7 layers: F(4×4) (37.7 MB of U, 4 tiles) ran slower than
/// F(2×2) (16.7 MB, 16 tiles).
pub const WINOGRAD_DRAM_BYTE: f64 = 4.0;
/// Transformed weights up to this size stay in cache across calls.
pub const WINOGRAD_CACHE_BYTES: f64 = 1048576.0;

/// Work of a Winograd F(m×m, 3×3) conv (`n = m + 2`): the n² GEMMs
/// `K×C · C×T` over tiles `T = N·⌈OH/m⌉·⌈OW/m⌉` (rounded up to 4 tiles per
/// image: the kernel works on 4 tiles at a time), the input and output
/// transforms per tile and channel, the padded copy of the input, plus the
/// transformed weights `n²·K·C` f32 streamed once per call (bytes).
pub fn winograd_work(c: &Conv, x: Option<&TensorType>, w: Option<&TensorType>, y: Option<&TensorType>) -> f64 {
    let (Some(x), Some(w), Some(y)) = (x, w, y) else { return f64::INFINITY };
    let ConvAlgo::Winograd { tile } = c.algo else { return f64::INFINITY };
    let d = |t: &TensorType, i: usize| *t.shape.get(i).unwrap_or(&0) as f64;
    let (m, batch, cin, kout) = (f64::from(tile), d(x, 0), d(x, 1), d(w, 0));
    let (oh, ow) = (d(y, 2), d(y, 3));
    let n2 = (m + 2.0) * (m + 2.0);
    let tiles = batch * ((oh / m).ceil() * (ow / m).ceil() / 4.0).ceil() * 4.0;
    let gemm = 2.0 * n2 * kout * cin * tiles;
    let xform = n2 * tiles * (WINOGRAD_IN_XFORM * cin + WINOGRAD_OUT_XFORM * kout);
    let pad = 2.0 * batch * cin * ((oh / m).ceil() * m + 2.0) * ((ow / m).ceil() * m + 2.0);
    let u_bytes = 4.0 * n2 * kout * cin;
    let u_cost = if u_bytes > WINOGRAD_CACHE_BYTES { WINOGRAD_DRAM_BYTE * u_bytes } else { u_bytes };
    gemm + xform + pad + u_cost + WINOGRAD_PER_GEMM * n2
}

/// Work per element of a unary op: one for the cheap ones,
/// [`TRANSCENDENTAL`] for the rest.
fn unary_work(u: UnaryOp) -> f64 {
    if u.is_cheap() {
        1.0
    } else {
        TRANSCENDENTAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kerf_ir::DType;

    #[test]
    fn leaves_are_free_and_identity_is_not() {
        let t = vec![TensorType::new(DType::F32, vec![4])];
        assert_eq!(node_cost(&NodeOp::Input(0), &[], &t), 0.0);
        assert_eq!(node_cost(&NodeOp::Const(kerf_ir::WeightId(0)), &[], &t), 0.0);
        let c = node_cost(&NodeOp::Op(Op::Identity), &[&t], &t);
        assert_eq!(c, OP_OVERHEAD + 32.0);
        assert!(node_cost(&NodeOp::Op(Op::Dropout), &[&t], &t) > 0.0);
    }
}
