//! Group `bn-fold`: fold inference BatchNormalization, and per-channel
//! constant scales and shifts, into the preceding Conv or Gemm.
//!
//! With `s = scale / sqrt(var + eps)` per channel, `BN(y) = y * s + (bias -
//! mean * s)`. When `y = conv(x, W) + b`, scaling output channel `o` of `W`
//! by `s[o]` scales `y[:, o]`, so `BN(conv(x, W, b)) = conv(x, W', b')` with
//! `W'[o] = W[o] * s[o]` and `b' = (b - mean) * s + bias`. The same holds
//! for `Gemm` on a 2-D `[N, C]` output with the columns of `B`. Values are
//! computed in f64 and rounded once to the weight dtype.
//!
//! A per-channel affine step after a conv (`Mul(conv, s)`, `Add(conv, t)`,
//! the "learnable affine blocks" of PP-LCNet/PP-HGNet exports, or a bias
//! exported as a separate Add) is the same identity with `mean = 0` and,
//! for a scale, `bias = 0`, for a shift, `s = 1, bias = t`.
//!
//! A ConvTranspose's weight is `[C_in, M / group, k...]`: output channel
//! `o = g·(M / group) + j` of group `g` reads the slices `W[c, j]` of that
//! group's input channels `c`, which are scaled by `s[o]`; the identity is
//! the same. The BatchNorm fold and the per-channel affine fold take it
//! like a conv (the upsampling heads of detectors: ConvTranspose, a bias
//! exported as an Add, BatchNorm, Relu).
//!
//! The fold only *adds* the folded op to the BatchNorm's class; when the
//! un-normalised output has another consumer both stay available and
//! extraction keeps whichever program is cheaper.

use egg::Id;
use kerf_ir::op::Gemm;
use kerf_ir::{infer, BinaryOp, DType, Op, Origin, Tensor, UnaryOp, WeightGrid, WeightId, F32};

use super::{add_union, rewrite, KRewrite, Rule};
use crate::analysis::{KEGraph, MemoKey};
use crate::lang::KNode;

/// `bn-fold-conv`: matches `BatchNormalization{eps}(y, scale, bias, mean,
/// var)` with constant parameters where `y`'s class contains `Conv(x, W[,
/// b])` or `ConvTranspose(x, W[, b])` with constant `W` (and `b`); adds the
/// same op on `(x, W', b')` with the same attributes (and layer identity)
/// to the BatchNorm's class. Sound by the identity in the module docs.
pub struct BnFoldConv;

/// `bn-fold-gemm`: matches `BatchNormalization{eps}(y, ...)` with constant
/// parameters where `y` is 2-D `[N, C]` and its class contains `Gemm(A, B[,
/// C])` with constant `B` (and `C`); adds `Gemm{beta=1}(A, B', C')` with `B'`
/// = `B` with column/row `c` scaled by `s[c]` (as `trans_b` says) and `C' =
/// (beta * C - mean) * s + bias`. Sound: `alpha * A (B s) = s * (alpha * A
/// B)`, and the constant term is normalised like any other.
pub struct BnFoldGemm;

/// `fold-conv-affine`: matches `Mul(y, s)` or `Add(y, t)` (either order)
/// with a constant f32 `s`/`t` that is one value or one value per output
/// channel (shape `[C, 1, ..]` aligned to the channel axis, broadcasting to
/// `y`'s type without growing it) where `y`'s class contains `Conv(x, W[,
/// b])` or `ConvTranspose(x, W[, b])` with constant `W` (and `b`); adds
/// the op on `(x, W·s, b·s)` or `(x, W, b + t)` to the class. Sound by the identity in the module docs:
/// scaling output channel `o` of `W` and `b` by `s[o]` scales `y[:, o]`.
pub struct FoldConvAffine;

/// What is folded into the Conv or Gemm.
#[derive(Clone, Copy)]
enum Norm {
    /// BatchNormalization with constant scale, bias, mean, var.
    Bn(F32, [WeightId; 4]),
    /// A per-channel scale (one value, or one per channel).
    Scale(WeightId),
    /// A per-channel shift.
    Shift(WeightId),
    /// `alpha · y + beta` on every channel: a HardSigmoid's affine step
    /// (the fusion group's [`conv_affine`]).
    Affine(F32, F32),
}

/// A match of `bn-fold-conv`, `bn-fold-gemm` or `fold-conv-affine` (or the
/// fusion group's `fuse-conv-hardsigmoid`, through [`conv_affine`]): the
/// Conv, ConvTranspose or Gemm and the constant weights to fold into it.
pub struct BnMatch {
    /// The Conv or Gemm op (attributes and layer kept).
    op: Op,
    /// The non-constant input (Conv `x`, Gemm `A`).
    x: Id,
    w: WeightId,
    b: Option<WeightId>,
    norm: Norm,
}

/// The ops whose output channels are the weight's per-channel slices:
/// `Conv` and `ConvTranspose` (see the module docs).
fn conv_like(op: &Op) -> bool {
    matches!(op, Op::Conv(_) | Op::ConvTranspose(_))
}

/// BatchNorm nodes in `class` with constant parameters: `(eps, y, params)`.
fn bn_nodes(eg: &KEGraph, class: Id) -> Vec<(F32, Id, [WeightId; 4])> {
    let mut out = Vec::new();
    for n in &eg[class].nodes {
        let Some(Op::BatchNorm { epsilon }) = n.kerf_op() else { continue };
        let [y, s, b, m, v] = n.children.as_slice() else { continue };
        let consts = [*s, *b, *m, *v].map(|c| eg[c].data.constant);
        if let [Some(s), Some(b), Some(m), Some(v)] = consts {
            out.push((*epsilon, *y, [s, b, m, v]));
        }
    }
    out
}

/// The producers `op(x, W[, b])` in class `y` with constant `W` (and `b`).
fn producers(eg: &KEGraph, y: Id, want: fn(&Op) -> bool) -> Vec<(Op, Id, WeightId, Option<WeightId>)> {
    let mut out = Vec::new();
    for n in &eg[y].nodes {
        let Some(op) = n.kerf_op().filter(|op| want(op)) else { continue };
        let (x, w, b) = match n.children.as_slice() {
            [x, w] => (*x, *w, None),
            [x, w, b] => (*x, *w, Some(*b)),
            _ => continue,
        };
        let Some(w) = eg[w].data.constant else { continue };
        let b = match b {
            None => None,
            Some(b) => match eg[b].data.constant {
                Some(b) => Some(b),
                None => continue,
            },
        };
        out.push((op.clone(), x, w, b));
    }
    out
}

fn find(eg: &KEGraph, class: Id, out: &mut Vec<BnMatch>, want: fn(&Op) -> bool) {
    for (epsilon, y, bn) in bn_nodes(eg, class) {
        // both folds need float weights
        if !eg[class].data.ty().is_some_and(|t| t.dtype.is_float()) {
            continue;
        }
        for (op, x, w, b) in producers(eg, y, want) {
            out.push(BnMatch { op, x, w, b, norm: Norm::Bn(epsilon, bn) });
        }
    }
}

/// Per-channel `(s, mean, bias)` of the identity in the module docs, for
/// `c` output channels (`BN: s = scale / sqrt(var + eps)`).
fn scale_shift(eg: &KEGraph, m: &BnMatch, c: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let t = |w: WeightId| eg.analysis.weights.tensor(w).to_f64_vec();
    // one value or one per channel
    let per_channel = |w: WeightId| {
        let v = t(w);
        if v.len() == 1 {
            vec![v[0]; c]
        } else {
            v
        }
    };
    match m.norm {
        Norm::Bn(epsilon, bn) => {
            let [scale, bias, mean, var] = bn.map(t);
            let eps = epsilon.get() as f64;
            let s: Vec<f64> = scale.iter().zip(&var).map(|(sc, v)| sc / (v + eps).sqrt()).collect();
            (s, mean, bias)
        }
        Norm::Scale(w) => (per_channel(w), vec![0.0; c], vec![0.0; c]),
        Norm::Shift(w) => (vec![1.0; c], vec![0.0; c], per_channel(w)),
        Norm::Affine(alpha, beta) => (vec![alpha.get() as f64; c], vec![0.0; c], vec![beta.get() as f64; c]),
    }
}

/// The norm's op and constant inputs.
fn norm_parts(n: Norm) -> (Op, Vec<WeightId>) {
    match n {
        Norm::Bn(epsilon, bn) => (Op::BatchNorm { epsilon }, bn.to_vec()),
        Norm::Scale(w) => (Op::Binary(BinaryOp::Mul), vec![w]),
        Norm::Shift(w) => (Op::Binary(BinaryOp::Add), vec![w]),
        Norm::Affine(alpha, beta) => (Op::Unary(UnaryOp::HardSigmoid { alpha, beta }), vec![]),
    }
}

fn memo_key(rule: &'static str, m: &BnMatch) -> MemoKey {
    let (op, norm) = norm_parts(m.norm);
    let mut inputs = vec![m.w];
    inputs.extend(m.b);
    inputs.extend(norm);
    let mut ops = vec![op];
    // the folded op decides the weight's layout (a Conv's channels are its
    // weight's outer axis, a ConvTranspose's are not): a weight both use
    // folds differently for each
    if matches!(m.op, Op::Gemm(_) | Op::ConvTranspose(_)) {
        ops.push(m.op.clone());
    }
    MemoKey { rule, ops, inputs }
}

/// Adds a derived weight; it is a parameter when any source is.
pub(super) fn add_weight(eg: &mut KEGraph, name: String, t: Tensor, sources: &[WeightId]) -> WeightId {
    let param = sources.iter().any(|&w| eg.analysis.weights.get(w).is_param) && t.numel() > 1;
    let id = eg.analysis.weights.add(name, t, Origin::Derived);
    eg.analysis.weights.get_mut(id).is_param = param;
    id
}

fn sources(m: &BnMatch) -> Vec<WeightId> {
    let mut v = vec![m.w];
    v.extend(m.b);
    v.extend(norm_parts(m.norm).1);
    v
}

/// Computes (or recalls) the folded weights.
fn folded(eg: &mut KEGraph, rule: &'static str, m: &BnMatch) -> Option<Vec<WeightId>> {
    super::memoized(eg, memo_key(rule, m), |eg| compute(eg, m))
}

fn compute(eg: &mut KEGraph, m: &BnMatch) -> Option<Vec<WeightId>> {
    let channels = match &m.op {
        Op::Conv(_) => *eg.analysis.weights.tensor(m.w).shape().first()?,
        Op::ConvTranspose(ct) => *eg.analysis.weights.tensor(m.w).shape().get(1)? * ct.group,
        _ => 0,
    };
    let (s, mean, bias) = scale_shift(eg, m, channels);
    let c = s.len();
    // Inference guarantees these; checking keeps every index below in range.
    if mean.len() != c || bias.len() != c || c == 0 {
        return None;
    }
    let wt = eg.analysis.weights.tensor(m.w).clone();
    let wname = eg.analysis.weights.get(m.w).name.clone();
    let wv = wt.to_f64_vec();
    let bv = m.b.map(|b| eg.analysis.weights.tensor(b));
    let (w2, b2) = match &m.op {
        Op::Conv(_) | Op::ConvTranspose(_) => {
            let (ocg, icg, area) = channel_layout(&m.op, wt.shape(), c)?;
            // element i's output channel: group (i / (ocg·area) / icg), j = (i / area) % ocg
            let w2: Vec<f64> =
                wv.iter().enumerate().map(|(i, &x)| x * s[i / (ocg * area) / icg * ocg + i / area % ocg]).collect();
            let b0 = bv.map(|b| b.to_f64_vec()).unwrap_or_else(|| vec![0.0; c]);
            if b0.len() != c {
                return None;
            }
            let b2: Vec<f64> = (0..c).map(|o| (b0[o] - mean[o]) * s[o] + bias[o]).collect();
            let b2 = Tensor::from_f64_values(wt.dtype(), vec![c], &b2).ok()?;
            (w2, b2)
        }
        Op::Gemm(g) => {
            let sh = wt.shape();
            let (rows, cols) = (*sh.first()?, *sh.get(1)?);
            if (if g.trans_b { rows } else { cols }) != c || sh.len() != 2 {
                return None;
            }
            // the output column n is B's row (trans_b) or column
            let w2: Vec<f64> =
                wv.iter().enumerate().map(|(i, &x)| x * if g.trans_b { s[i / cols] } else { s[i % cols] }).collect();
            let beta = g.beta.get() as f64;
            let b2 = match bv {
                None => {
                    let v: Vec<f64> = (0..c).map(|n| bias[n] - mean[n] * s[n]).collect();
                    Tensor::from_f64_values(wt.dtype(), vec![c], &v).ok()?
                }
                Some(ct) => {
                    let shape = infer::broadcast(ct.shape(), &[c]).ok()?;
                    let cv = ct.to_f64_vec();
                    let cs = ct.shape().to_vec();
                    let n_out: usize = shape.iter().product();
                    let v: Vec<f64> = (0..n_out)
                        .map(|i| {
                            let n = i % c;
                            let row = i / c;
                            // broadcast index into C (rank <= 2)
                            let ci = match cs.as_slice() {
                                [] => 0,
                                [d] => usize::from(*d != 1) * n,
                                [r, d] => usize::from(*r != 1) * row * d + usize::from(*d != 1) * n,
                                _ => 0,
                            };
                            (beta * cv.get(ci).copied().unwrap_or(0.0) - mean[n]) * s[n] + bias[n]
                        })
                        .collect();
                    Tensor::from_f64_values(wt.dtype(), shape, &v).ok()?
                }
            };
            (w2, b2)
        }
        _ => return None,
    };
    let axis = match &m.op {
        Op::Gemm(g) if !g.trans_b => 1,
        // `[in, out, k...]`: one group's output channels are axis 1
        Op::ConvTranspose(_) => 1,
        _ => 0,
    };
    // a grouped ConvTranspose's channels are not one weight axis: no grid to keep
    let grouped = matches!(&m.op, Op::ConvTranspose(ct) if ct.group != 1);
    let src_grid = eg.analysis.weights.get(m.w).grid.clone().filter(|_| !grouped);
    let (w2, grid) = match src_grid.and_then(|g| fold_grid(&g, &wt, &s, axis)) {
        Some((t, g)) => (t, Some(g)),
        None => (Tensor::from_f64_values(wt.dtype(), wt.shape().to_vec(), &w2).ok()?, None),
    };
    let src = sources(m);
    // Scaling output channels keeps zeros zero: the folded weight keeps the
    // source's recorded layout (checked, so a layout never lies).
    let layout = eg.analysis.weights.get(m.w).sparsity.clone();
    let keeps_layout = layout.validate(&w2).is_ok();
    let suffix = match m.norm {
        Norm::Bn(..) => "bn",
        Norm::Scale(_) => "scaled",
        Norm::Shift(_) => "shifted",
        Norm::Affine(..) => "affine",
    };
    let w_id = add_weight(eg, format!("{wname}.{suffix}"), w2, &src);
    if keeps_layout {
        eg.analysis.weights.get_mut(w_id).sparsity = layout;
    }
    eg.analysis.weights.get_mut(w_id).grid = grid;
    let b_id = add_weight(eg, format!("{wname}.{suffix}_bias"), b2, &src);
    Some(vec![w_id, b_id])
}

/// How a conv-like weight's elements map to the `c` output channels, as
/// `(ocg, icg, area)`: element `i` feeds channel `(i / (ocg·area) / icg)·ocg
/// + (i / area) % ocg`. A Conv's `[O, I/g, k...]` has the channel outermost
/// (`(c, 1, I/g·k)`); a ConvTranspose's `[C_in, M/g, k...]` holds group
/// `g`'s channel `j` in the slices `W[c, j]` of the group's input channels
/// (`(M/g, C_in/g, k)`). `None` for a shape that does not fit.
fn channel_layout(op: &Op, shape: &[usize], c: usize) -> Option<(usize, usize, usize)> {
    let numel: usize = shape.iter().product();
    let (ocg, icg, area) = match op {
        Op::Conv(_) if shape.first() == Some(&c) => (c, 1, numel / c.max(1)),
        Op::ConvTranspose(ct) => {
            let (cin, ocg) = (*shape.first()?, *shape.get(1)?);
            if ct.group == 0 || cin % ct.group != 0 || ocg * ct.group != c {
                return None;
            }
            (ocg, cin / ct.group, numel / (cin * ocg).max(1))
        }
        _ => return None,
    };
    (area > 0).then_some((ocg, icg, area))
}

/// The folded weight of a weight on an int8 grid, kept on a grid: channel
/// `c`'s codes `q` and step `sc` become `sign(s[c])·q` and `f32(|sc·s[c]|)`,
/// and the values `f32(q'·sc')` (the same product up to one rounding, as
/// the plain fold). `None` (fold without a grid) when the grid is not along
/// the scaled `axis`, the data is off it, a step would be zero or not
/// finite, or a code of −128 would be negated.
fn fold_grid(g: &WeightGrid, wt: &Tensor, s: &[f64], axis: usize) -> Option<(Tensor, WeightGrid)> {
    if g.axis != axis || g.scales.len() != s.len() {
        return None;
    }
    let codes = g.codes(wt).ok()?;
    let scales: Vec<f32> = g.scales.iter().zip(s).map(|(&sc, &f)| (f64::from(sc) * f).abs() as f32).collect();
    if scales.iter().any(|x| !(*x > 0.0 && x.is_finite())) {
        return None;
    }
    let inner: usize = wt.shape()[axis + 1..].iter().product();
    let n = s.len();
    // a negated −128 is off the int8 grid: fold without one
    if n == 0 || codes.iter().enumerate().any(|(i, &q)| i32::from(q) == -128 && s[i / inner.max(1) % n] < 0.0) {
        return None;
    }
    let v: Vec<f32> = codes
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            let c = i / inner % n;
            let q = if s[c] < 0.0 { -f32::from(q) } else { f32::from(q) };
            q * scales[c]
        })
        .collect();
    let t = Tensor::from_f32(wt.shape().to_vec(), &v).ok()?;
    Some((t, WeightGrid { axis, scales }))
}

/// The constant weight and bias of `Conv(x, W, b)` (`conv`, a bias
/// present or not) scaled so that the conv computes `alpha · Conv(x, W, b)
/// + beta`: `(W·alpha, b·alpha + beta)`, the module docs' identity with
/// `s = alpha`, `mean = 0`, `bias = beta`, memoized under `rule` like the
/// group's own folds. `None` where the fold does not apply.
pub(super) fn conv_affine(
    eg: &mut KEGraph,
    rule: &'static str,
    (conv, x): (&Op, Id),
    (w, b): (WeightId, Option<WeightId>),
    (alpha, beta): (F32, F32),
) -> Option<(WeightId, WeightId)> {
    let m = BnMatch { op: conv.clone(), x, w, b, norm: Norm::Affine(alpha, beta) };
    match folded(eg, rule, &m)?.as_slice() {
        [w, b] => Some((*w, *b)),
        _ => None,
    }
}

fn apply(eg: &mut KEGraph, rule: &'static str, class: Id, m: &BnMatch) -> Vec<Id> {
    let Some(ws) = folded(eg, rule, m) else { return vec![] };
    let [w, b] = ws.as_slice() else { return vec![] };
    let (w, b) =
        (eg.add(KNode::leaf(crate::lang::NodeOp::Const(*w))), eg.add(KNode::leaf(crate::lang::NodeOp::Const(*b))));
    let op = match &m.op {
        Op::Gemm(g) => Op::Gemm(Gemm { beta: F32::new(1.0), ..g.clone() }),
        other => other.clone(),
    };
    add_union(eg, class, KNode::op(op, vec![m.x, w, b]))
}

impl Rule for BnFoldConv {
    type Match = BnMatch;
    fn name(&self) -> &'static str {
        "bn-fold-conv"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<BnMatch>) {
        find(eg, class, out, conv_like)
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &BnMatch) -> Vec<Id> {
        apply(eg, self.name(), class, m)
    }
}

impl Rule for BnFoldGemm {
    type Match = BnMatch;
    fn name(&self) -> &'static str {
        "bn-fold-gemm"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<BnMatch>) {
        if eg[class].data.ty().is_some_and(|t| t.rank() == 2) {
            find(eg, class, out, |op| matches!(op, Op::Gemm(_)))
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &BnMatch) -> Vec<Id> {
        apply(eg, self.name(), class, m)
    }
}

/// Whether constant `w` is f32 and one value per channel of a conv output
/// of type `out` (or one value): every axis but the channel axis is 1, and
/// it broadcasts to `out` without growing it.
fn per_channel(eg: &KEGraph, w: WeightId, out: &kerf_ir::TensorType) -> bool {
    let t = eg.analysis.weights.tensor(w);
    let (sh, rank) = (t.shape(), out.shape.len());
    if t.dtype() != DType::F32 || sh.len() > rank || rank < 2 {
        return false;
    }
    let lead = rank - sh.len();
    sh.iter().enumerate().all(|(i, &d)| d == 1 || (i + lead == 1 && d == out.shape[1]))
}

impl Rule for FoldConvAffine {
    type Match = BnMatch;
    fn name(&self) -> &'static str {
        "fold-conv-affine"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<BnMatch>) {
        let Some(ty) = eg[class].data.ty() else { return };
        if ty.dtype != DType::F32 {
            return;
        }
        for n in &eg[class].nodes {
            let norm: fn(WeightId) -> Norm = match n.kerf_op() {
                Some(Op::Binary(BinaryOp::Mul)) => Norm::Scale,
                Some(Op::Binary(BinaryOp::Add)) => Norm::Shift,
                _ => continue,
            };
            let [a, b] = n.children.as_slice() else { continue };
            for (y, c) in [(*a, *b), (*b, *a)] {
                let Some(w) = eg[c].data.constant else { continue };
                if eg[y].data.ty() != Some(ty) || !per_channel(eg, w, ty) {
                    continue;
                }
                for (op, x, wt, bt) in producers(eg, y, conv_like) {
                    out.push(BnMatch { op, x, w: wt, b: bt, norm: norm(w) });
                }
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &BnMatch) -> Vec<Id> {
        apply(eg, self.name(), class, m)
    }
}

/// The rules of group `bn-fold`: [`BnFoldConv`], [`BnFoldGemm`] and
/// [`FoldConvAffine`].
pub fn rules() -> Vec<KRewrite> {
    vec![rewrite(BnFoldConv), rewrite(BnFoldGemm), rewrite(FoldConvAffine)]
}

#[cfg(test)]
#[path = "bn_fold_tests.rs"]
mod tests;
