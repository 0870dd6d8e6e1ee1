//! `int8-convtranspose` (in the `int8` group): a transposed conv that tiles
//! its output exactly runs on the integer conv kernel.
//!
//! Matches a 2-D `ConvTranspose(a, w[, b])` or `ConvTransposeFused(a, w,
//! b)` (an activation, no residual) of one group whose kernel equals its
//! stride, with no dilation, padding or output padding (the 2x2 stride-2
//! upsampling of detection and segmentation heads), where `a`'s class holds
//! the activation quantiser (`Mul(Clip{−z, 255 − z}(Round(Div(x, s))), s)`,
//! as for `int8-conv`) and `w` `[C, M, kh, kw]` is a constant on a
//! per-output-channel int8 grid along axis 1 (what `--quantize int8`
//! writes for a ConvTranspose). It adds
//!
//! `Reshape{[n, M, h·kh, w·kw]}(Transpose{[0, 1, 4, 2, 5, 3]}(Reshape{[n,
//! M, kh, kw, h, w]}(QConv{1x1}(Quantize{s, z}(x), q', sc', b'))))`
//!
//! where the 1x1 `QConv` has `M·kh·kw` output channels, channel `(m, ty,
//! tx)` with the codes `q'[(m, ty, tx), c] = q[c, m, ty, tx]`, the step
//! `sc'[(m, ty, tx)] = sc[m]` and the bias `b'[(m, ty, tx)] = b[m]`, and
//! the conv's activation in its epilogue. Exact up to f32 rounding (as
//! `int8-conv`): with kernel = stride and nothing cropped or added, output
//! pixel `(iy·kh + ty, ix·kw + tx)` of channel `m` receives exactly one
//! tap, `Σ_c x[c, iy, ix]·w[c, m, ty, tx] + b[m]`, which is the 1x1 conv's
//! channel `(m, ty, tx)` at pixel `(iy, ix)`; the reshapes and the
//! transpose only move it there, so the activation may come before them.
//! The QConv sums the products exactly and scales once by `f32(s·sc[m])`.
//!
//! Other transposed convs (overlapping taps) stay f32 on their grid. The
//! extractor weighs the integer form, its quantiser and the pixel shuffle
//! against the f32 GEMM + col2im; a `Quantize` after it moves before the
//! shuffle (`int8-reshape`) and the conv then stores the bytes itself
//! (`int8-requant`). Directional.

use egg::Id;
use kerf_ir::op::{Conv, ConvAlgo, ConvTranspose, Epilogue, QConv, QOut, Window};
use kerf_ir::{DType, Op, Origin, Tensor, WeightId, F32};

use super::int8::quantiser;
use super::{add_union, rewrite, KRewrite, Rule};
use crate::analysis::{KEGraph, MemoKey};
use crate::lang::{KNode, NodeOp};

/// `int8-convtranspose` (see the module docs).
pub struct Int8ConvTranspose;

/// A match: the transposed conv, its activation, the quantiser's input and
/// grid, the weight and bias, and `[n, M, kh, kw, h, w]`.
pub struct Match {
    c: ConvTranspose,
    act: Option<kerf_ir::UnaryOp>,
    x: Id,
    s: f32,
    z: u8,
    w: WeightId,
    b: Option<WeightId>,
    dims: [usize; 6],
}

/// Whether every output pixel of `c` receives exactly one tap: 2-D, one
/// group, kernel = stride, no dilation, pads or output padding.
fn tiles_exactly(c: &ConvTranspose) -> bool {
    let w = &c.window;
    c.group == 1
        && w.rank() == 2
        && w.kernel == w.strides
        && w.dilations.iter().all(|&d| d == 1)
        && w.pads.iter().all(|&p| p == 0)
        && c.output_padding.iter().all(|&p| p == 0)
}

impl Rule for Int8ConvTranspose {
    type Match = Match;
    fn name(&self) -> &'static str {
        "int8-convtranspose"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<Match>) {
        for n in &eg[class].nodes {
            let (c, act) = match n.kerf_op() {
                Some(Op::ConvTranspose(c)) => (c, None),
                Some(Op::ConvTransposeFused(c, e)) if !e.residual => (c, e.act),
                _ => continue,
            };
            if !tiles_exactly(c) {
                continue;
            }
            let (a, w, b) = match n.children.as_slice() {
                [a, w] => (*a, *w, None),
                [a, w, b] => (*a, *w, Some(*b)),
                _ => continue,
            };
            let Some(q) = quantiser(eg, a) else { continue };
            let Some(w) = eg[w].data.constant else { continue };
            let b = match b.map(|b| eg[b].data.constant) {
                Some(None) => continue,
                b => b.flatten(),
            };
            let weight = eg.analysis.weights.get(w);
            let on_grid = weight.grid.as_ref().is_some_and(|g| g.axis == 1);
            let Some(t) = eg[q.x].data.ty().filter(|t| t.dtype == DType::F32) else { continue };
            let (&[n_, _, h, wd], &[_, m, kh, kw]) = (t.shape.as_slice(), weight.tensor.shape()) else { continue };
            if on_grid && b.is_none_or(|b| eg.analysis.weights.tensor(b).shape() == [m]) {
                let dims = [n_, m, kh, kw, h, wd];
                out.push(Match { c: c.clone(), act, x: q.x, s: q.s, z: q.z, w, b, dims });
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &Match) -> Vec<Id> {
        let Some([q, sc, b]) = weights(eg, m) else { return vec![] };
        let [n, ch, kh, kw, h, w] = m.dims;
        let window = Window { kernel: vec![1, 1], strides: vec![1, 1], dilations: vec![1, 1], pads: vec![0; 4] };
        let conv = Conv { window, group: 1, layer: m.c.layer.clone(), algo: ConvAlgo::Direct };
        let epi = Epilogue { act: m.act, residual: false };
        let qconv = QConv { conv, epi, x_scale: F32::new(m.s), x_zp: m.z, out: QOut::Real, res_grid: None };
        let quantise = Op::Quantize { scale: F32::new(m.s), zp: m.z, pads: vec![0; 8] };
        let x = eg.add(KNode::op(quantise, vec![m.x]));
        let konst = |eg: &mut KEGraph, w: WeightId| eg.add(KNode::leaf(NodeOp::Const(w)));
        let children = vec![x, konst(eg, q), konst(eg, sc), konst(eg, b)];
        let y = eg.add(KNode::op(Op::QConv(qconv), children));
        let y = eg.add(KNode::op(Op::Reshape { shape: vec![n, ch, kh, kw, h, w] }, vec![y]));
        let y = eg.add(KNode::op(Op::Transpose { perm: vec![0, 1, 4, 2, 5, 3] }, vec![y]));
        add_union(eg, class, KNode::op(Op::Reshape { shape: vec![n, ch, h * kh, w * kw] }, vec![y]))
    }
}

/// The 1x1 conv's codes, steps and bias, made once per weight and bias.
fn weights(eg: &mut KEGraph, m: &Match) -> Option<[WeightId; 3]> {
    let mut inputs = vec![m.w];
    inputs.extend(m.b);
    let key = MemoKey { rule: "int8-convtranspose", ops: vec![], inputs };
    super::memoized(eg, key, |eg| make_weights(eg, m).map(Vec::from))?.try_into().ok()
}

fn make_weights(eg: &mut KEGraph, m: &Match) -> Option<[WeightId; 3]> {
    let weight = eg.analysis.weights.get(m.w);
    let grid = weight.grid.as_ref()?;
    let codes = grid.codes(&weight.tensor).ok()?;
    let &[c, ch, kh, kw] = weight.tensor.shape() else { return None };
    let (area, rows) = (kh * kw, ch * kh * kw);
    // row (m, t) of the 1x1 conv reads input channel i at codes[i, m, t]
    let bytes: Vec<u8> =
        (0..rows * c).map(|k| codes[((k % c) * ch + (k / c) / area) * area + (k / c) % area] as u8).collect();
    let q = Tensor::from_bytes(DType::I8, vec![rows, c, 1, 1], bytes).ok()?;
    let steps: Vec<f32> = (0..rows).map(|r| grid.scales[r / area]).collect();
    let bias: Vec<f32> = match m.b {
        Some(b) => eg.analysis.weights.tensor(b).to_f32_vec(),
        None => vec![0.0; ch],
    };
    let bias: Vec<f32> = (0..rows).map(|r| bias[r / area]).collect();
    let (name, is_param) = (weight.name.clone(), weight.is_param);
    let w = &mut eg.analysis.weights;
    let qid = w.add(format!("{name}.int8"), q, Origin::Derived);
    w.get_mut(qid).is_param = is_param;
    let sid = w.add(format!("{name}.int8_scale"), Tensor::from_f32(vec![rows], &steps).ok()?, Origin::Derived);
    let bid = w.add(format!("{name}.int8_bias"), Tensor::from_f32(vec![rows], &bias).ok()?, Origin::Derived);
    Some([qid, sid, bid])
}

/// The rule.
pub fn rules() -> Vec<KRewrite> {
    vec![rewrite(Int8ConvTranspose)]
}
