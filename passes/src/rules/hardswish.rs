//! `recognise-hardswish` (run with the `cleanup` group): the HardSwish that
//! exporters write for opsets below 14, `Mul(x, HardSigmoid{1/6, 0.5}(x))`
//! (either operand order), becomes one `HardSwish` op, which the conv
//! kernels fuse into their epilogue.
//!
//! Matches, on f32, a `Mul` whose operands are a class `x` and a class
//! holding `HardSigmoid{alpha, beta}(x)` of the same `x`, with `beta`
//! exactly 0.5 and `alpha` within half an f32 ulp of 1/6 (the f32 rounding
//! of the exact value, as the exporters write it). Adds `HardSwish(x)` to
//! the `Mul`'s class.
//!
//! Sound up to f32 rounding: `HardSigmoid` computes `clamp(alpha·x + 0.5,
//! 0, 1)` with `alpha = f32(1/6)`, `HardSwish` computes `x·clamp(x/6 + 0.5,
//! 0, 1)` (`kerf_ir::eval`); `alpha·x` and `x/6` differ by at most an ulp
//! of the product (the equality is as loose as BatchNorm folding's).
//! Directional: nothing expands a `HardSwish`. The `HardSigmoid` stays in
//! the e-graph; when it has another user, extraction keeps it for that user.

use egg::Id;
use kerf_ir::{BinaryOp, DType, Op, UnaryOp};

use super::{add_union, rewrite, KRewrite, Rule};
use crate::analysis::KEGraph;
use crate::lang::KNode;

/// `recognise-hardswish` (see the module docs).
pub struct RecogniseHardSwish;

/// Whether `alpha` is the f32 rounding of 1/6 (within half an ulp).
fn is_sixth(alpha: f32) -> bool {
    let exact = 1.0f64 / 6.0;
    (f64::from(alpha) - exact).abs() <= f64::from(f32::EPSILON) * 0.125 / 2.0
}

impl RecogniseHardSwish {
    /// Whether `class` holds `HardSigmoid{≈1/6, 0.5}(x)`.
    fn is_gate(eg: &KEGraph, class: Id, x: Id) -> bool {
        eg[class].nodes.iter().any(|n| match n.kerf_op() {
            Some(Op::Unary(UnaryOp::HardSigmoid { alpha, beta })) => {
                is_sixth(alpha.get())
                    && beta.get() == 0.5
                    && n.children.first().is_some_and(|&c| eg.find(c) == eg.find(x))
            }
            _ => false,
        })
    }
}

impl Rule for RecogniseHardSwish {
    type Match = Id;
    fn name(&self) -> &'static str {
        "recognise-hardswish"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<Id>) {
        if eg[class].data.ty().is_none_or(|t| t.dtype != DType::F32) {
            return;
        }
        let mut found = Vec::new();
        for n in &eg[class].nodes {
            if n.kerf_op() != Some(&Op::Binary(BinaryOp::Mul)) {
                continue;
            }
            let [a, b] = n.children.as_slice() else { continue };
            for (x, g) in [(*a, *b), (*b, *a)] {
                if eg[x].data.ty() == eg[class].data.ty() && Self::is_gate(eg, g, x) {
                    found.push(eg.find(x));
                }
            }
        }
        found.sort();
        found.dedup();
        out.extend(found);
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, x: &Id) -> Vec<Id> {
        add_union(eg, class, KNode::op(Op::Unary(UnaryOp::HardSwish), vec![*x]))
    }
}

/// [`RecogniseHardSwish`], run as part of group `cleanup`.
pub fn rules() -> Vec<KRewrite> {
    vec![rewrite(RecogniseHardSwish)]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use kerf_ir::{text, Tensor};

    use crate::testutil::{interpret, random};

    fn run(body: &str) -> (String, f32) {
        let src = format!("graph \"h\"\n  input %0 \"x\": f32[2,8]\n{body}");
        let g = text::parse(&src).unwrap_or_else(|e| panic!("{e}\n{src}"));
        let (out, _) = crate::run_groups(&g, &["cleanup"], &crate::PassOptions::default()).unwrap();
        let x = Tensor::from_f32(vec![2, 8], &random(5, 16, -8.0, 8.0)).unwrap();
        let want = interpret(&g, std::slice::from_ref(&x)).remove(0).to_f32_vec();
        let got = interpret(&out, &[x]).remove(0).to_f32_vec();
        let err = got.iter().zip(&want).fold(0f32, |a, (g, w)| a.max((g - w).abs() / w.abs().max(1.0)));
        (text::print(&out), err)
    }

    #[test]
    fn the_opset_13_export_becomes_hardswish() {
        for order in ["%1, %0", "%0, %1"] {
            let (out, err) = run(&format!(
                "  %1 = HardSigmoid{{alpha=0.16666667, beta=0.5}}(%0): f32[2,8] @\"g\"\n  %2 = Mul({order}): f32[2,8] @\"m\"\n  output \"y\" = %2\n"
            ));
            assert!(out.contains("= HardSwish(%0)"), "{out}");
            assert!(!out.contains("HardSigmoid"), "{out}");
            assert!(err <= 2.0 * f32::EPSILON, "relative error {err}");
        }
    }

    #[test]
    fn other_gates_stay() {
        for (alpha, beta) in [("0.2", "0.5"), ("0.16666667", "0.4"), ("0.1666667", "0.5")] {
            let (out, _) = run(&format!(
                "  %1 = HardSigmoid{{alpha={alpha}, beta={beta}}}(%0): f32[2,8] @\"g\"\n  %2 = Mul(%0, %1): f32[2,8] @\"m\"\n  output \"y\" = %2\n"
            ));
            assert!(!out.contains("HardSwish"), "alpha {alpha} beta {beta}: {out}");
        }
    }
}
