//! `merge-pointwise` (run with the `bn-fold` group): two 1x1 convs in a
//! row, nothing between them, become one where that takes fewer
//! multiply-adds. This is the exact folding of a low-rank factor into a
//! neighbouring 1x1 conv: a factored layer's output side (`<layer>.u`, a
//! 1x1 conv, `compress::rewrite`) followed by a linear 1x1 conv, or a
//! linear 1x1 conv followed by a factor's 1x1 input side; a factored
//! layer's own two sides never merge back, as the compress stage factors
//! only where that is cheaper.
//!
//! Matches `Conv(y, W2[, b2])` where `y`'s class has no other user and
//! holds `Conv(x, W1[, b1])`, both direct f32 2-D 1x1 convs with stride 1,
//! no padding and one group, with constant dense weights not on an int8
//! grid (a compressed weight's layout is the compress stage's decision);
//! adds `Conv(x, W2·W1, W2·b1 + b2)` (the outer conv's attributes and
//! layer) when `c·p < c·m + m·p` for `c` inputs, `m` channels between and
//! `p` outputs.
//!
//! Sound up to rounding: a 1x1 conv is a matrix product per pixel, so
//! `W2·(W1·x + b1) + b2 = (W2·W1)·x + (W2·b1 + b2)` in exact arithmetic;
//! the merged weights are computed in f64 and rounded once, so the result
//! differs from the two rounded products by rounding in the sums' terms,
//! like BatchNorm folding's. Directional: nothing splits a conv.
//!
//! The merged conv keeps the outer conv's layer: the inner layer's work is
//! reported under it by `kerf bench --profile`, and the compress report
//! (made before the passes) and `kerf tune`'s per-layer timings (one layer
//! at a time) do not see the merge.

use egg::Id;
use kerf_ir::op::{Conv, ConvAlgo};
use kerf_ir::{DType, Op, Sparsity, Tensor, WeightId};

use super::bn_fold::add_weight;
use super::{add_union, rewrite, single_user, KRewrite, Rule};
use crate::analysis::{KEGraph, MemoKey};
use crate::lang::{KNode, NodeOp};

/// `merge-pointwise` (see the module docs).
pub struct MergePointwise;

/// A 1x1 conv found in a class: its op, input, weight and bias.
#[derive(Clone)]
pub struct Pointwise {
    conv: Conv,
    x: Id,
    w: WeightId,
    b: Option<WeightId>,
}

/// The 1x1 convs in `class` the rule takes (see the module docs).
fn pointwise(eg: &KEGraph, class: Id) -> Vec<Pointwise> {
    if eg[class].data.ty().is_none_or(|t| t.dtype != DType::F32) {
        return Vec::new();
    }
    let plain = |w: WeightId| {
        let w = eg.analysis.weights.get(w);
        w.grid.is_none() && w.sparsity == Sparsity::Dense && w.tensor.dtype() == DType::F32
    };
    let mut out = Vec::new();
    for n in &eg[class].nodes {
        let Some(Op::Conv(c)) = n.kerf_op() else { continue };
        let wd = &c.window;
        let one = wd.kernel == [1, 1] && wd.strides == [1, 1] && wd.pads.iter().all(|&p| p == 0);
        if !one || c.group != 1 || c.algo != ConvAlgo::Direct {
            continue;
        }
        let konst = |i: usize| n.children.get(i).and_then(|&k| eg[k].data.constant);
        let (w, b) = match n.children.len() {
            2 => (konst(1), None),
            3 => match konst(2) {
                Some(b) => (konst(1), Some(b)),
                None => continue,
            },
            _ => continue,
        };
        if let Some(w) = w.filter(|&w| plain(w)) {
            out.push(Pointwise { conv: c.clone(), x: n.children[0], w, b });
        }
    }
    out
}

/// `(W2·W1, W2·b1 + b2)` for `outer(inner(x))`, or `None` where the shapes
/// do not chain.
fn merged(eg: &KEGraph, outer: &Pointwise, inner: &Pointwise) -> Option<(Tensor, Tensor)> {
    let t = |w: WeightId| eg.analysis.weights.tensor(w);
    let (w2, w1) = (t(outer.w), t(inner.w));
    let ([p, m2, ..], [m, c, ..]) = (w2.shape(), w1.shape()) else { return None };
    let (p, m, c) = (*p, *m, *c);
    if m2 != &m {
        return None;
    }
    let (a, b) = (w2.to_f64_vec(), w1.to_f64_vec());
    let mut w = vec![0f64; p * c];
    for o in 0..p {
        for k in 0..m {
            let s = a[o * m + k];
            for i in 0..c {
                w[o * c + i] += s * b[k * c + i];
            }
        }
    }
    let b1 = inner.b.map_or_else(|| vec![0.0; m], |b| t(b).to_f64_vec());
    let b2 = outer.b.map_or_else(|| vec![0.0; p], |b| t(b).to_f64_vec());
    let bias: Vec<f64> = (0..p).map(|o| (0..m).map(|k| a[o * m + k] * b1[k]).sum::<f64>() + b2[o]).collect();
    let w = Tensor::from_f64_values(DType::F32, vec![p, c, 1, 1], &w).ok()?;
    Some((w, Tensor::from_f64_values(DType::F32, vec![p], &bias).ok()?))
}

impl Rule for MergePointwise {
    type Match = (Pointwise, Pointwise);
    fn name(&self) -> &'static str {
        "merge-pointwise"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<(Pointwise, Pointwise)>) {
        for outer in pointwise(eg, class) {
            if !single_user(eg, outer.x, class) {
                continue;
            }
            for inner in pointwise(eg, outer.x) {
                let dims = |w: WeightId| eg.analysis.weights.tensor(w).shape()[..2].to_vec();
                let (pm, mc) = (dims(outer.w), dims(inner.w));
                let (p, m, c) = (pm[0], mc[0], mc[1]);
                if pm[1] == m && c * p < c * m + m * p {
                    out.push((outer.clone(), inner));
                }
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, (outer, inner): &(Pointwise, Pointwise)) -> Vec<Id> {
        let inputs: Vec<WeightId> = [Some(outer.w), outer.b, Some(inner.w), inner.b].into_iter().flatten().collect();
        let key = MemoKey { rule: self.name(), ops: vec![Op::Conv(outer.conv.clone())], inputs };
        let ws = match eg.analysis.memo.get(&key) {
            Some(r) => r.clone(),
            None => {
                let sources = key.inputs.clone();
                let r = merged(eg, outer, inner).map(|(w, b)| {
                    let name = eg.analysis.weights.get(outer.w).name.clone();
                    let w = add_weight(eg, format!("{name}.merged"), w, &sources);
                    vec![w, add_weight(eg, format!("{name}.merged_bias"), b, &sources)]
                });
                eg.analysis.memo.insert(key, r.clone());
                r
            }
        };
        let Some([w, b]) = ws.as_deref() else { return vec![] };
        let (w, b) = (eg.add(KNode::leaf(NodeOp::Const(*w))), eg.add(KNode::leaf(NodeOp::Const(*b))));
        add_union(eg, class, KNode::op(Op::Conv(outer.conv.clone()), vec![inner.x, w, b]))
    }
}

/// The rule of `merge-pointwise`, run with the `bn-fold` group.
pub fn rules() -> Vec<KRewrite> {
    vec![rewrite(MergePointwise)]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use kerf_ir::{text, Tensor};

    use crate::testutil::{interpret, random};

    const ONE: &str = "kernel=[1,1], strides=[1,1], dilations=[1,1], pads=[0,0,0,0], group=1";

    /// A 3x3 conv to `r` channels, a 1x1 conv `r → m` and a linear 1x1
    /// conv `m → p` (with or without its bias), through the `bn-fold`
    /// group; the result against the reference evaluator.
    fn run(r: usize, m: usize, p: usize, bias: bool) -> String {
        let k = |seed: u64, n: usize| {
            random(seed, n, -0.5, 0.5).iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(",")
        };
        let b3 = if bias { format!("  const %7 \"b3\": f32[{p}] = [{}]\n", k(7, p)) } else { String::new() };
        let conv3 = if bias { "(%5, %6, %7)" } else { "(%5, %6)" };
        let src = format!(
            "graph \"g\"\n  input %0 \"x\": f32[1,3,6,6]\n  const %1 \"w1\": f32[{r},3,3,3] = [{}]\n  \
             const %2 \"b1\": f32[{r}] = [{}]\n  %3 = Conv{{{}, group=1, layer=\"v\"}}(%0, %1, %2): f32[1,{r},4,4] @\"v\"\n  \
             const %8 \"w2\": f32[{m},{r},1,1] = [{}]\n  const %9 \"b2\": f32[{m}] = [{}]\n  \
             %5 = Conv{{{ONE}, layer=\"u\"}}(%3, %8, %9): f32[1,{m},4,4] @\"u\"\n  \
             const %6 \"w3\": f32[{p},{m},1,1] = [{}]\n{b3}  %10 = Conv{{{ONE}, layer=\"next\"}}{conv3}: f32[1,{p},4,4] @\"next\"\n  \
             output \"y\" = %10\n",
            k(1, r * 27),
            k(2, r),
            "kernel=[3,3], strides=[1,1], dilations=[1,1], pads=[0,0,0,0]",
            k(3, m * r),
            k(4, m),
            k(5, p * m),
        );
        let g0 = text::parse(&src).unwrap();
        let (g1, _) = crate::run_groups(&g0, &["bn-fold"], &crate::PassOptions::default()).unwrap();
        let x = Tensor::from_f32(vec![1, 3, 6, 6], &random(9, 108, -1.0, 1.0)).unwrap();
        let (a, b) = (interpret(&g0, std::slice::from_ref(&x)), interpret(&g1, &[x]));
        for (p, q) in a[0].to_f32_vec().iter().zip(b[0].to_f32_vec()) {
            assert!((p - q).abs() <= 1e-5 * p.abs().max(1.0), "{p} vs {q}");
        }
        text::print(&g1)
    }

    #[test]
    fn a_factor_merges_into_the_next_pointwise_conv() {
        // 4 → 8 → 2: 8 multiply-adds per pixel instead of 48
        for bias in [true, false] {
            let out = run(4, 8, 2, bias);
            assert_eq!(out.matches("= Conv{").count(), 2, "{out}");
            assert!(out.contains("layer=\"next\"") && !out.contains("layer=\"u\""), "{out}");
        }
    }

    /// The inner conv without a bias merges (zeros); with a second user of
    /// its output it stays, or both products would be computed.
    #[test]
    fn a_bias_less_inner_conv_merges_and_a_shared_one_stays() {
        let k = |seed: u64, n: usize| {
            random(seed, n, -0.5, 0.5).iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(",")
        };
        let graph = |second_user: bool| {
            let out = if second_user { "  output \"z\" = %3\n" } else { "" };
            format!(
                "graph \"g\"\n  input %0 \"x\": f32[1,4,3,3]\n  const %1 \"w1\": f32[8,4,1,1] = [{}]\n  \
                 %3 = Conv{{{ONE}, layer=\"u\"}}(%0, %1): f32[1,8,3,3] @\"u\"\n  const %4 \"w2\": f32[2,8,1,1] = [{}]\n  \
                 const %5 \"b2\": f32[2] = [0.5,-0.25]\n  %6 = Conv{{{ONE}, layer=\"next\"}}(%3, %4, %5): f32[1,2,3,3] @\"next\"\n  \
                 output \"y\" = %6\n{out}",
                k(1, 32),
                k(2, 16)
            )
        };
        for (second_user, convs) in [(false, 1), (true, 2)] {
            let g0 = text::parse(&graph(second_user)).unwrap();
            let (g1, _) = crate::run_groups(&g0, &["bn-fold"], &crate::PassOptions::default()).unwrap();
            let out = text::print(&g1);
            assert_eq!(out.matches("= Conv{").count(), convs, "{out}");
            let x = Tensor::from_f32(vec![1, 4, 3, 3], &random(3, 36, -1.0, 1.0)).unwrap();
            let (a, b) = (interpret(&g0, std::slice::from_ref(&x)), interpret(&g1, &[x]));
            for (p, q) in a[0].to_f32_vec().iter().zip(b[0].to_f32_vec()) {
                assert!((p - q).abs() <= 1e-5 * p.abs().max(1.0), "{p} vs {q}");
            }
        }
    }

    #[test]
    fn a_bottleneck_stays_factored() {
        // 8 → 2 → 8: 32 multiply-adds per pixel through the bottleneck, 64 merged
        let out = run(8, 2, 8, true);
        assert_eq!(out.matches("= Conv{").count(), 3, "{out}");
    }
}
