//! Group `winograd`: choose Winograd convolution per layer.
//!
//! `winograd-conv` matches `Conv{algo=Direct}(x, w[, b])` where the conv is
//! Winograd-eligible ([`kerf_ir::op::Conv::winograd_eligible`]: 2-D, 3×3,
//! stride 1, dilation 1, one group), the output is f32 and `w` is a
//! constant (its transform `G w Gᵀ` is done at compile time). It adds the
//! same conv with `algo = Winograd { tile: 2 }` and `{ tile: 4 }` to the
//! class; the cost model ([`crate::cost`]) prices each (transforms, the n²
//! batched GEMMs, the transformed weights' bytes), so extraction picks, per
//! layer, whichever of direct, F(2×2,3×3) and F(4×4,3×3) is cheapest.
//!
//! Sound: every algorithm computes the same convolution exactly in real
//! arithmetic; they differ only in f32 rounding, which the lowering keeps
//! within the codegen tolerance (see `targets/src/lower/winograd.rs`). The
//! rule is directional (it never rewrites Winograd back) and creates no
//! weights, so re-matching cannot grow the weight table.

use egg::Id;
use kerf_ir::op::{Conv, ConvAlgo};
use kerf_ir::{DType, Op};

use super::{add_union, rewrite, KRewrite, Rule};
use crate::analysis::KEGraph;
use crate::lang::KNode;

/// The Winograd tiles offered to the extractor.
pub const TILES: [u8; 2] = [2, 4];

/// `winograd-conv` (see the module docs): adds the Winograd forms ([`TILES`]) of an eligible
/// direct f32 conv with a constant weight to its class; a pattern-pruned weight on a plane
/// where its sparse kernel beats Winograd stays direct.
pub struct WinogradConv;

/// A direct conv node and its children.
pub struct ConvMatch {
    conv: Conv,
    children: Vec<Id>,
}

impl Rule for WinogradConv {
    type Match = ConvMatch;
    fn name(&self) -> &'static str {
        "winograd-conv"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<ConvMatch>) {
        if eg[class].data.ty().is_none_or(|t| t.dtype != DType::F32 || t.rank() != 4) {
            return;
        }
        for n in &eg[class].nodes {
            let Some(Op::Conv(c)) = n.kerf_op() else { continue };
            if c.algo != ConvAlgo::Direct || !c.winograd_eligible() {
                continue;
            }
            let Some(&w) = n.children.get(1) else { continue };
            // a pattern-pruned weight on a plane where its own kernel is
            // faster than Winograd's densified transform stays direct
            match eg[w].data.constant {
                Some(id) if !super::on_pattern_kernel(eg, class, c, id) => {}
                _ => continue,
            }
            out.push(ConvMatch { conv: c.clone(), children: n.children.clone() });
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &ConvMatch) -> Vec<Id> {
        let mut changed = Vec::new();
        for tile in TILES {
            let op = Op::Conv(Conv { algo: ConvAlgo::Winograd { tile }, ..m.conv.clone() });
            changed.extend(add_union(eg, class, KNode::op(op, m.children.clone())));
        }
        changed
    }
}

/// The rules of group `winograd`: [`WinogradConv`].
pub fn rules() -> Vec<KRewrite> {
    vec![rewrite(WinogradConv)]
}

#[cfg(test)]
mod tests {
    use crate::testutil::run_text;

    fn conv_graph(c: usize, hw: usize, k: usize, stride: usize, w: &str) -> String {
        let o = (hw + 2 - 3) / stride + 1;
        format!(
            "graph \"g\"\n  input %0 \"x\": f32[1,{c},{hw},{hw}]\n  const %1 \"w\": f32[{k},{c},3,3] = {w}\n  \
             %2 = Conv{{kernel=[3,3], strides=[{stride},{stride}], dilations=[1,1], pads=[1,1,1,1], group=1, \
             layer=\"c\"}}(%0, %1): f32[1,{k},{o},{o}] @\"c\"\n  output \"y\" = %2\n"
        )
    }

    fn zeros(n: usize) -> String {
        format!("[{}]", vec!["0.0"; n].join(","))
    }

    #[test]
    fn picks_winograd_for_wide_layers_only() {
        // 64 channels on 56x56: the multiplications saved dominate
        let out = run_text("winograd", &conv_graph(64, 56, 64, 1, &zeros(64 * 64 * 9)));
        assert!(out.contains("winograd=4"), "{out}");
        // 2 channels on 4x4: transforms cost more than they save
        let out = run_text("winograd", &conv_graph(2, 4, 2, 1, &zeros(2 * 2 * 9)));
        assert!(!out.contains("winograd"), "{out}");
        // stride 2 is not eligible
        let out = run_text("winograd", &conv_graph(64, 16, 64, 2, &zeros(64 * 64 * 9)));
        assert!(!out.contains("winograd"), "{out}");
    }

    #[test]
    fn leaves_exact_convs_alone() {
        // the layer the first test rewrites, marked exact (integer-valued data)
        let src = conv_graph(64, 56, 64, 1, &zeros(64 * 64 * 9)).replace("group=1,", "group=1, exact=true,");
        let out = run_text("winograd", &src);
        assert!(out.contains("exact=true") && !out.contains("winograd"), "{out}");
    }

    #[test]
    fn needs_constant_weights() {
        let src = "graph \"g\"\n  input %0 \"x\": f32[1,64,56,56]\n  input %1 \"w\": f32[64,64,3,3]\n  \
                   %2 = Conv{kernel=[3,3], strides=[1,1], dilations=[1,1], pads=[1,1,1,1], group=1, \
                   layer=\"c\"}(%0, %1): f32[1,64,56,56] @\"c\"\n  output \"y\" = %2\n";
        let out = run_text("winograd", src);
        assert!(!out.contains("winograd"), "{out}");
    }
}
