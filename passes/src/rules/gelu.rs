//! `recognise-gelu` and `recognise-gelu-tanh` (run with the `cleanup`
//! group): the expanded GELUs that exporters write for opsets below 20, the
//! exact `0.5·x·(1 + erf(x/√2))` and the tanh approximation `0.5·x·(1 +
//! tanh(√(2/π)·(x + 0.044715·x³)))`, become one `Gelu` op (which the
//! matrix products fuse into their epilogue).
//!
//! Matches, on f32, a `Mul` whose operands (either order) are
//! - `Mul(x, E)` and the constant 0.5 (`nn.GELU`: `Mul(Mul(x, E), 0.5)`), or
//! - `Mul(x, 0.5)` and `E` (Hugging Face: `x * 0.5 * (1 + erf(x / sqrt(2)))`),
//!
//! with the inner `Mul` in either order, where `E` is `Add(Erf(d), 1)` (either
//! order) and `d` is `Div(x, √2)` or `Mul(x, 1/√2)` (either order) of the
//! same class `x`. Constants are single-element f32 tensors that broadcast
//! away (the result has `x`'s type) with exactly 0.5 and 1, and √2 or 1/√2
//! within half an f32 ulp (so only the f32 rounding of the exact value, as
//! the exporters write it, is accepted). Adds `Gelu{tanh=false}(x)` to the
//! outer `Mul`'s class.
//!
//! `recognise-gelu-tanh` matches the same two outer shapes with `E` =
//! `Add(Tanh(S), 1)` (either order), `S` = `Mul(I, √(2/π))` (either order),
//! `I` = `Add(x, Mul(C, 0.044715))` (each either order) and `C` = `Pow(x, 3)`
//! or `Mul(x, Mul(x, x))` (either order) of the same `x`; √(2/π) and
//! 0.044715 within half an f32 ulp. Adds `Gelu{tanh=true}(x)`.
//!
//! Sound: every match computes 0.5·x·(1 + erf(x/√2)) (or its tanh form) up to f32 rounding of
//! the constant and the intermediate results; `Gelu` computes the same
//! function with one rounding (the equality is as loose as BatchNorm
//! folding's). One input differs: at x = -inf the expanded form is
//! -inf·0 = NaN while `Gelu` gives -0, its limit (`math::gelu`'s contract).
//! Directional: nothing expands a `Gelu`. The intermediate ops
//! stay in the e-graph; when one of them has another user, extraction keeps
//! it for that user.

use egg::Id;
use kerf_ir::{BinaryOp, DType, Op, UnaryOp};

use super::{add_union, rewrite, KRewrite, Rule};
use crate::analysis::KEGraph;
use crate::lang::KNode;

/// `recognise-gelu` (see the module docs): adds `Gelu{tanh=false}(x)` to the class of an
/// expanded exact f32 GELU of `x`.
pub struct RecogniseGelu;

/// The single f32 value of a constant class with at most `rank` dims, all 1.
pub(super) fn scalar(eg: &KEGraph, class: Id, rank: usize) -> Option<f64> {
    let w = eg[class].data.constant?;
    let t = eg.analysis.weights.tensor(w);
    if t.dtype() != DType::F32 || t.numel() != 1 || t.shape().len() > rank {
        return None;
    }
    Some(t.get_f64(0))
}

/// `v` is the f32 rounding of `exact`: within half an ulp of f32 at `exact`.
pub(super) fn is_f32_of(v: f64, exact: f64) -> bool {
    let ulp = f64::from(f32::EPSILON) * 2f64.powi(exact.abs().log2().floor() as i32);
    (v - exact).abs() <= ulp / 2.0
}

/// The two children of the `Binary(op)` nodes of `class`, both orders.
pub(super) fn operands(eg: &KEGraph, class: Id, op: BinaryOp) -> Vec<(Id, Id)> {
    let mut out = Vec::new();
    for n in &eg[class].nodes {
        if n.kerf_op() == Some(&Op::Binary(op)) {
            if let [a, b] = n.children.as_slice() {
                out.push((*a, *b));
                out.push((*b, *a));
            }
        }
    }
    out
}

impl RecogniseGelu {
    /// Whether `class` computes `x/√2` (or `x·(1/√2)`).
    fn is_scaled(eg: &KEGraph, class: Id, x: Id, rank: usize) -> bool {
        let same = |a: Id| eg.find(a) == eg.find(x);
        let half_sqrt2 = std::f64::consts::FRAC_1_SQRT_2;
        let div = eg[class].nodes.iter().any(|n| {
            n.kerf_op() == Some(&Op::Binary(BinaryOp::Div))
                && matches!(n.children.as_slice(), [a, c] if same(*a)
                    && scalar(eg, *c, rank).is_some_and(|v| is_f32_of(v, std::f64::consts::SQRT_2)))
        });
        div || operands(eg, class, BinaryOp::Mul)
            .into_iter()
            .any(|(a, c)| same(a) && scalar(eg, c, rank).is_some_and(|v| is_f32_of(v, half_sqrt2)))
    }

    /// Whether `class` computes `1 + erf(x/√2)`.
    fn is_one_plus_erf(eg: &KEGraph, class: Id, x: Id, rank: usize) -> bool {
        operands(eg, class, BinaryOp::Add).into_iter().any(|(e, one)| {
            scalar(eg, one, rank) == Some(1.0)
                && eg[e].nodes.iter().any(|n| {
                    n.kerf_op() == Some(&Op::Unary(UnaryOp::Erf))
                        && matches!(n.children.as_slice(), [d] if Self::is_scaled(eg, *d, x, rank))
                })
        })
    }
}

/// The classes `x` for which `class` computes `Mul(Mul(x, E), 0.5)` or
/// `Mul(Mul(x, 0.5), E)` (each `Mul` either order) with `is_e(E, x)`.
fn gelu_inputs(eg: &KEGraph, class: Id, is_e: &dyn Fn(&KEGraph, Id, Id, usize) -> bool) -> Vec<Id> {
    let Some(ty) = eg[class].data.ty() else { return vec![] };
    if ty.dtype != DType::F32 {
        return vec![];
    }
    let rank = ty.shape.len();
    let mut found = Vec::new();
    for (p, q) in operands(eg, class, BinaryOp::Mul) {
        for (x, r) in operands(eg, p, BinaryOp::Mul) {
            if eg[x].data.ty() != Some(ty) {
                continue;
            }
            // Mul(Mul(x, E), 0.5) or Mul(Mul(x, 0.5), E)
            let a = scalar(eg, q, rank) == Some(0.5) && is_e(eg, r, x, rank);
            let b = scalar(eg, r, rank) == Some(0.5) && is_e(eg, q, x, rank);
            if a || b {
                found.push(eg.find(x));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

impl Rule for RecogniseGelu {
    type Match = Id;
    fn name(&self) -> &'static str {
        "recognise-gelu"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<Id>) {
        out.extend(gelu_inputs(eg, class, &Self::is_one_plus_erf));
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, x: &Id) -> Vec<Id> {
        add_union(eg, class, KNode::op(Op::Unary(UnaryOp::Gelu { tanh: false }), vec![*x]))
    }
}

/// `recognise-gelu-tanh` (see the module docs): adds `Gelu{tanh=true}(x)` to the class of an
/// expanded tanh-approximated f32 GELU of `x`.
pub struct RecogniseGeluTanh;

impl RecogniseGeluTanh {
    /// Whether `class` computes `x³` (`Pow(x, 3)` or `x·(x·x)`).
    fn is_cube(eg: &KEGraph, class: Id, x: Id, rank: usize) -> bool {
        let same = |a: Id| eg.find(a) == eg.find(x);
        let pow = eg[class].nodes.iter().any(|n| {
            n.kerf_op() == Some(&Op::Binary(BinaryOp::Pow))
                && matches!(n.children.as_slice(), [b, e] if same(*b) && scalar(eg, *e, rank) == Some(3.0))
        });
        pow || operands(eg, class, BinaryOp::Mul)
            .into_iter()
            .any(|(a, sq)| same(a) && operands(eg, sq, BinaryOp::Mul).into_iter().any(|(p, q)| same(p) && same(q)))
    }

    /// Whether `class` computes `√(2/π)·(x + 0.044715·x³)`.
    fn is_tanh_arg(eg: &KEGraph, class: Id, x: Id, rank: usize) -> bool {
        let same = |a: Id| eg.find(a) == eg.find(x);
        let c = (2.0 / std::f64::consts::PI).sqrt();
        operands(eg, class, BinaryOp::Mul).into_iter().any(|(i, k)| {
            scalar(eg, k, rank).is_some_and(|v| is_f32_of(v, c))
                && operands(eg, i, BinaryOp::Add).into_iter().any(|(a, m)| {
                    same(a)
                        && operands(eg, m, BinaryOp::Mul).into_iter().any(|(cube, k)| {
                            scalar(eg, k, rank).is_some_and(|v| is_f32_of(v, 0.044715))
                                && Self::is_cube(eg, cube, x, rank)
                        })
                })
        })
    }

    /// Whether `class` computes `1 + tanh(√(2/π)·(x + 0.044715·x³))`.
    fn is_one_plus_tanh(eg: &KEGraph, class: Id, x: Id, rank: usize) -> bool {
        operands(eg, class, BinaryOp::Add).into_iter().any(|(t, one)| {
            scalar(eg, one, rank) == Some(1.0)
                && eg[t].nodes.iter().any(|n| {
                    n.kerf_op() == Some(&Op::Unary(UnaryOp::Tanh))
                        && matches!(n.children.as_slice(), [s] if Self::is_tanh_arg(eg, *s, x, rank))
                })
        })
    }
}

impl Rule for RecogniseGeluTanh {
    type Match = Id;
    fn name(&self) -> &'static str {
        "recognise-gelu-tanh"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<Id>) {
        out.extend(gelu_inputs(eg, class, &Self::is_one_plus_tanh));
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, x: &Id) -> Vec<Id> {
        add_union(eg, class, KNode::op(Op::Unary(UnaryOp::Gelu { tanh: true }), vec![*x]))
    }
}

/// [`RecogniseGelu`] and [`RecogniseGeluTanh`], run as part of group `cleanup`.
pub fn rules() -> Vec<KRewrite> {
    vec![rewrite(RecogniseGelu), rewrite(RecogniseGeluTanh)]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use kerf_ir::{text, Tensor};

    use crate::testutil::{interpret, random};

    /// Runs `cleanup` on a graph computing `body` from `%0` (f32[2,8]) with
    /// the constants %1 = 1.4142135, %2 = 1, %3 = 0.5, %4 = 0.70710677, and
    /// checks the result against the reference evaluator on the original.
    fn run(body: &str) -> String {
        let src = format!(
            "graph \"g\"\n  input %0 \"x\": f32[2,8]\n  const %1 \"s\": f32[] = [1.4142135]\n  \
             const %2 \"one\": f32[1] = [1.0]\n  const %3 \"h\": f32[] = [0.5]\n  \
             const %4 \"r\": f32[1,1] = [0.70710677]\n{body}"
        );
        let g0 = text::parse(&src).unwrap();
        let (g1, reports) = crate::run_groups(&g0, &["cleanup"], &crate::PassOptions::default()).unwrap();
        assert_eq!(reports[0].stop, crate::Stop::Saturated, "{reports:?}");
        let out = text::print(&g1);
        let x = Tensor::from_f32(vec![2, 8], &random(7, 16, -4.0, 4.0)).unwrap();
        let (a, b) = (interpret(&g0, std::slice::from_ref(&x)), interpret(&g1, &[x]));
        for (a, b) in a.iter().zip(&b) {
            for (p, q) in a.to_f32_vec().iter().zip(b.to_f32_vec()) {
                assert!((p - q).abs() <= 1e-6 * p.abs().max(1.0), "{p} vs {q}:\n{out}");
            }
        }
        out
    }

    fn gelu_of_input(out: &str) -> bool {
        out.contains("= Gelu{tanh=false}(%0): f32[2,8]") && !out.contains("Erf(")
    }

    #[test]
    fn pytorch_nn_gelu_export() {
        // torch.onnx, opset 17: Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5)
        let out = run("  %5 = Div(%0, %1): f32[2,8]\n  %6 = Erf(%5): f32[2,8]\n  %7 = Add(%6, %2): f32[2,8]\n  \
             %8 = Mul(%0, %7): f32[2,8]\n  %9 = Mul(%8, %3): f32[2,8]\n  output \"y\" = %9\n");
        assert!(gelu_of_input(&out), "{out}");
    }

    #[test]
    fn huggingface_order_and_reciprocal_scale() {
        // x * 0.5 * (1 + erf(x * (1/√2))), constants on the left
        let out = run("  %5 = Mul(%4, %0): f32[2,8]\n  %6 = Erf(%5): f32[2,8]\n  %7 = Add(%2, %6): f32[2,8]\n  \
             %8 = Mul(%3, %0): f32[2,8]\n  %9 = Mul(%7, %8): f32[2,8]\n  output \"y\" = %9\n");
        assert!(gelu_of_input(&out), "{out}");
    }

    #[test]
    fn shared_intermediate_is_kept_for_its_other_user() {
        let out = run("  %5 = Div(%0, %1): f32[2,8]\n  %6 = Erf(%5): f32[2,8]\n  %7 = Add(%6, %2): f32[2,8]\n  \
             %8 = Mul(%0, %7): f32[2,8]\n  %9 = Mul(%8, %3): f32[2,8]\n  output \"y\" = %9\n  output \"e\" = %6\n");
        assert!(out.contains("= Gelu{tanh=false}(%0)") && out.contains("Erf("), "{out}");
    }

    #[test]
    fn wrong_constants_or_operands_do_not_match() {
        // sqrt(2) off by more than half an ulp (1.4142137)
        let bad_scale = "  const %10 \"s2\": f32[] = [1.4142137]\n  %5 = Div(%0, %10): f32[2,8]\n  \
             %6 = Erf(%5): f32[2,8]\n  %7 = Add(%6, %2): f32[2,8]\n  %8 = Mul(%0, %7): f32[2,8]\n  \
             %9 = Mul(%8, %3): f32[2,8]\n  output \"y\" = %9\n";
        // 0.5 replaced by 0.25
        let bad_half = "  const %10 \"q\": f32[] = [0.25]\n  %5 = Div(%0, %1): f32[2,8]\n  %6 = Erf(%5): f32[2,8]\n  \
             %7 = Add(%6, %2): f32[2,8]\n  %8 = Mul(%0, %7): f32[2,8]\n  %9 = Mul(%8, %10): f32[2,8]\n  \
             output \"y\" = %9\n";
        // Div(√2, x) instead of Div(x, √2)
        let swapped_div = "  %5 = Div(%1, %0): f32[2,8]\n  %6 = Erf(%5): f32[2,8]\n  %7 = Add(%6, %2): f32[2,8]\n  \
             %8 = Mul(%0, %7): f32[2,8]\n  %9 = Mul(%8, %3): f32[2,8]\n  output \"y\" = %9\n";
        // erf of another value: Relu(x)/√2
        let other_x = "  %10 = Relu(%0): f32[2,8]\n  %5 = Div(%10, %1): f32[2,8]\n  %6 = Erf(%5): f32[2,8]\n  \
             %7 = Add(%6, %2): f32[2,8]\n  %8 = Mul(%0, %7): f32[2,8]\n  %9 = Mul(%8, %3): f32[2,8]\n  \
             output \"y\" = %9\n";
        for body in [bad_scale, bad_half, swapped_div, other_x] {
            let out = run(body);
            assert!(!out.contains("Gelu"), "{out}");
        }
    }

    /// `body` with the tanh form's constants %11 = 3, %12 = 0.044715,
    /// %13 = √(2/π) (f32) besides `run`'s.
    fn run_tanh(body: &str) -> String {
        run(&format!(
            "  const %11 \"three\": f32[] = [3.0]\n  const %12 \"k\": f32[] = [0.044715]\n  const %13 \"c\": f32[1] = [0.7978846]\n{body}"
        ))
    }

    #[test]
    fn tanh_forms_become_gelu_tanh() {
        // BERT export: Mul(Mul(x, 0.5), Add(Tanh(Mul(Add(x, Mul(Pow(x, 3), k)), c)), 1))
        let bert = "  %5 = Pow(%0, %11): f32[2,8]\n  %6 = Mul(%5, %12): f32[2,8]\n  %7 = Add(%0, %6): f32[2,8]\n  \
             %8 = Mul(%7, %13): f32[2,8]\n  %9 = Tanh(%8): f32[2,8]\n  %10 = Add(%9, %2): f32[2,8]\n  \
             %14 = Mul(%0, %3): f32[2,8]\n  %15 = Mul(%14, %10): f32[2,8]\n  output \"y\" = %15\n";
        // x·x·x, constants on the left, Mul(Mul(x, E), 0.5)
        let cubed = "  %5 = Mul(%0, %0): f32[2,8]\n  %16 = Mul(%0, %5): f32[2,8]\n  %6 = Mul(%12, %16): f32[2,8]\n  \
             %7 = Add(%6, %0): f32[2,8]\n  %8 = Mul(%13, %7): f32[2,8]\n  %9 = Tanh(%8): f32[2,8]\n  \
             %10 = Add(%2, %9): f32[2,8]\n  %14 = Mul(%10, %0): f32[2,8]\n  %15 = Mul(%3, %14): f32[2,8]\n  \
             output \"y\" = %15\n";
        for body in [bert, cubed] {
            let out = run_tanh(body);
            assert!(out.contains("= Gelu{tanh=true}(%0): f32[2,8]") && !out.contains("Tanh("), "{out}");
        }
    }

    #[test]
    fn tanh_forms_with_other_constants_or_powers_stay() {
        let body = |pow: &str, k: &str| {
            format!(
                "  const %20 \"p\": f32[] = [{pow}]\n  const %21 \"k2\": f32[] = [{k}]\n  %5 = Pow(%0, %20): f32[2,8]\n  \
                 %6 = Mul(%5, %21): f32[2,8]\n  %7 = Add(%0, %6): f32[2,8]\n  %8 = Mul(%7, %13): f32[2,8]\n  \
                 %9 = Tanh(%8): f32[2,8]\n  %10 = Add(%9, %2): f32[2,8]\n  %14 = Mul(%0, %3): f32[2,8]\n  \
                 %15 = Mul(%14, %10): f32[2,8]\n  output \"y\" = %15\n"
            )
        };
        for (pow, k) in [("2.0", "0.044715"), ("3.0", "0.05"), ("3.0", "0.0447")] {
            let out = run_tanh(&body(pow, k));
            assert!(!out.contains("Gelu"), "pow {pow} k {k}: {out}");
        }
    }

    #[test]
    fn constant_that_would_broadcast_the_result_does_not_match() {
        // a [1,1,1] constant makes the Mul's result rank 3: the types differ, no Gelu
        let out = run("  const %10 \"h3\": f32[1,1,1] = [0.5]\n  %5 = Div(%0, %1): f32[2,8]\n  \
             %6 = Erf(%5): f32[2,8]\n  %7 = Add(%6, %2): f32[2,8]\n  %8 = Mul(%0, %7): f32[2,8]\n  \
             %9 = Mul(%8, %10): f32[1,2,8]\n  output \"y\" = %9\n");
        assert!(!out.contains("Gelu"), "{out}");
    }
}
