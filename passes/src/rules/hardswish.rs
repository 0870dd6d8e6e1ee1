//! `recognise-hardswish` and `recognise-hardsigmoid` (run with the
//! `cleanup` group): the HardSwish and HardSigmoid that exporters spell out
//! become one op, which the conv kernels fuse into their epilogue.
//!
//! `recognise-hardswish` matches, on f32, a `Mul` whose operands (either
//! order) are a class `x` and a class holding `HardSigmoid{alpha,
//! beta}(x)` of the same `x` (PyTorch below opset 14), with `beta` exactly
//! 0.5 and `alpha` within half an f32 ulp of 1/6; and `Div(Mul(x, R), 6)`
//! or `Mul(Mul(x, R), 1/6)` (each `Mul` either order) with `R = Clip{0,
//! 6}(Add(x, 3))` (the Add either order) of the same `x` (Paddle and
//! TensorFlow exports, `x·relu6(x + 3)/6`). Adds `HardSwish(x)` to the
//! outer op's class.
//!
//! `recognise-hardsigmoid` matches `Div(R, 6)` or `Mul(R, 1/6)` (either
//! order) with `R` as above and adds `HardSigmoid{f32(1/6), 0.5}(x)`;
//! `x · relu6(x + 3)/6` spelt `Mul(x, Div(R, 6))` then becomes a HardSwish
//! by the first form.
//!
//! Constants are single-element f32 tensors that broadcast away: exactly
//! 3, 0 and 6, and 1/6 within half an f32 ulp (the f32 rounding of the
//! exact value, as the exporters write it).
//!
//! Sound up to f32 rounding: `HardSigmoid` computes `clamp(alpha·x + 0.5,
//! 0, 1)` with `alpha = f32(1/6)`, `HardSwish` computes `x·clamp(x/6 + 0.5,
//! 0, 1)` (`kerf_ir::eval`), `relu6(x + 3)/6 = clamp(x/6 + 0.5, 0, 1)` in
//! exact arithmetic; the spelled-out forms round after each step, so the
//! results differ by a few ulp of the value (the equality is as loose as
//! BatchNorm folding's). Directional: nothing expands either op. The
//! intermediate ops stay in the e-graph; when one has another user,
//! extraction keeps it for that user.

use egg::Id;
use kerf_ir::{BinaryOp, DType, Op, UnaryOp};

use super::gelu::{is_f32_of, operands, scalar};
use super::{add_union, rewrite, KRewrite, Rule};
use crate::analysis::KEGraph;
use crate::lang::KNode;

/// `recognise-hardswish` (see the module docs).
pub struct RecogniseHardSwish;

/// `recognise-hardsigmoid` (see the module docs).
pub struct RecogniseHardSigmoid;

/// The classes `x` for which `class` holds `Clip{0, 6}(Add(x, 3))`.
fn relu6_plus_3(eg: &KEGraph, class: Id, rank: usize) -> Vec<Id> {
    let mut out = Vec::new();
    for n in &eg[class].nodes {
        let Some(Op::Unary(UnaryOp::Clip { min, max })) = n.kerf_op() else { continue };
        let [a] = n.children.as_slice() else { continue };
        if min.get() != 0.0 || max.get() != 6.0 {
            continue;
        }
        for (x, three) in operands(eg, *a, BinaryOp::Add) {
            if scalar(eg, three, rank) == Some(3.0) && eg[x].data.ty() == eg[*a].data.ty() {
                out.push(eg.find(x));
            }
        }
    }
    out
}

/// The classes `p` for which `class` holds `Div(p, 6)` or `Mul(p, 1/6)`.
fn sixths(eg: &KEGraph, class: Id, rank: usize) -> Vec<Id> {
    let mut out = Vec::new();
    for n in &eg[class].nodes {
        if n.kerf_op() == Some(&Op::Binary(BinaryOp::Div)) {
            if let [p, six] = n.children.as_slice() {
                if scalar(eg, *six, rank) == Some(6.0) {
                    out.push(*p);
                }
            }
        }
    }
    for (p, c) in operands(eg, class, BinaryOp::Mul) {
        if scalar(eg, c, rank).is_some_and(|v| is_f32_of(v, 1.0 / 6.0)) {
            out.push(p);
        }
    }
    out
}

impl RecogniseHardSwish {
    /// Whether `class` holds `HardSigmoid{≈1/6, 0.5}(x)`.
    fn is_gate(eg: &KEGraph, class: Id, x: Id) -> bool {
        eg[class].nodes.iter().any(|n| match n.kerf_op() {
            Some(Op::Unary(UnaryOp::HardSigmoid { alpha, beta })) => {
                is_f32_of(f64::from(alpha.get()), 1.0 / 6.0)
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
        let ty = eg[class].data.ty();
        let rank = ty.map_or(0, |t| t.shape.len());
        for (x, g) in operands(eg, class, BinaryOp::Mul) {
            if eg[x].data.ty() == ty && Self::is_gate(eg, g, x) {
                found.push(eg.find(x));
            }
        }
        // x·relu6(x + 3) / 6
        for p in sixths(eg, class, rank) {
            for (x, r) in operands(eg, p, BinaryOp::Mul) {
                if eg[x].data.ty() == ty && relu6_plus_3(eg, r, rank).contains(&eg.find(x)) {
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

impl Rule for RecogniseHardSigmoid {
    type Match = Id;
    fn name(&self) -> &'static str {
        "recognise-hardsigmoid"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<Id>) {
        let Some(ty) = eg[class].data.ty() else { return };
        if ty.dtype != DType::F32 {
            return;
        }
        let rank = ty.shape.len();
        let mut found: Vec<Id> = sixths(eg, class, rank)
            .into_iter()
            .flat_map(|r| relu6_plus_3(eg, r, rank))
            .filter(|&x| eg[x].data.ty() == Some(ty))
            .collect();
        found.sort();
        found.dedup();
        out.extend(found);
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, x: &Id) -> Vec<Id> {
        let op = UnaryOp::HardSigmoid { alpha: kerf_ir::F32::new(1.0 / 6.0), beta: kerf_ir::F32::new(0.5) };
        add_union(eg, class, KNode::op(Op::Unary(op), vec![*x]))
    }
}

/// [`RecogniseHardSwish`] and [`RecogniseHardSigmoid`], run as part of
/// group `cleanup`.
pub fn rules() -> Vec<KRewrite> {
    vec![rewrite(RecogniseHardSwish), rewrite(RecogniseHardSigmoid)]
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

    /// `body` on `%0` with constants `%1` = 3, `%2` = 6, `%3` = 1/6.
    fn spelt(body: &str) -> (String, f32) {
        run(&format!(
            "  const %1 \"three\": f32[] = [3.0]\n  const %2 \"six\": f32[1] = [6.0]\n  const %3 \"sixth\": f32[1,1] = [0.16666667]\n{body}"
        ))
    }

    #[test]
    fn relu6_forms_become_hardswish() {
        for (add, outer) in [("%0, %1", "Div(%5, %2)"), ("%1, %0", "Mul(%3, %5)"), ("%0, %1", "Mul(%5, %3)")] {
            for mul in ["%0, %4", "%4, %0"] {
                let (out, err) = spelt(&format!(
                    "  %8 = Add({add}): f32[2,8]\n  %4 = Clip{{min=0.0, max=6.0}}(%8): f32[2,8]\n  %5 = Mul({mul}): f32[2,8]\n  %6 = {outer}: f32[2,8]\n  output \"y\" = %6\n"
                ));
                assert!(out.contains("= HardSwish(%0)"), "{add} {mul} {outer}: {out}");
                assert!(!out.contains("Clip"), "{out}");
                assert!(err <= 4.0 * f32::EPSILON, "relative error {err}");
            }
        }
    }

    #[test]
    fn relu6_over_six_becomes_hardsigmoid_and_its_product_hardswish() {
        let (out, err) = spelt(
            "  %8 = Add(%0, %1): f32[2,8]\n  %4 = Clip{min=0.0, max=6.0}(%8): f32[2,8]\n  %5 = Div(%4, %2): f32[2,8]\n  output \"g\" = %5\n",
        );
        assert!(out.contains("= HardSigmoid{alpha=0.16666667, beta=0.5}(%0)"), "{out}");
        assert!(err <= 4.0 * f32::EPSILON, "relative error {err}");
        let (out, err) = spelt(
            "  %8 = Add(%0, %1): f32[2,8]\n  %4 = Clip{min=0.0, max=6.0}(%8): f32[2,8]\n  %5 = Mul(%4, %3): f32[2,8]\n  %6 = Mul(%0, %5): f32[2,8]\n  output \"y\" = %6\n",
        );
        assert!(out.contains("= HardSwish(%0)"), "{out}");
        assert!(err <= 4.0 * f32::EPSILON, "relative error {err}");
    }

    #[test]
    fn other_relu6_constants_stay() {
        // Add 2, Clip to 5, Div by 5, and x + 3 of another input
        for (add, clip, outer) in [
            ("Add(%0, %2)", "min=0.0, max=6.0", "Div(%5, %2)"),
            ("Add(%0, %1)", "min=0.0, max=5.0", "Div(%5, %2)"),
            ("Add(%0, %1)", "min=0.0, max=6.0", "Div(%5, %1)"),
            ("Add(%9, %1)", "min=0.0, max=6.0", "Div(%5, %2)"),
        ] {
            let (out, _) = spelt(&format!(
                "  %9 = Neg(%0): f32[2,8]\n  %8 = {add}: f32[2,8]\n  %4 = Clip{{{clip}}}(%8): f32[2,8]\n  %5 = Mul(%0, %4): f32[2,8]\n  %6 = {outer}: f32[2,8]\n  output \"y\" = %6\n"
            ));
            assert!(!out.contains("HardSwish") && !out.contains("HardSigmoid"), "{add} {clip} {outer}: {out}");
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
