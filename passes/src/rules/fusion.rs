//! Group `fusion`: conv epilogues, so the kernels apply activations and
//! residual adds in registers instead of a separate memory-bound pass.
//!
//! - `fuse-conv-act` matches `Act(c)` where `Act` is Relu, Clip, LeakyRelu
//!   or HardSwish ([`Epilogue::fusable`]) and class `c` holds a direct
//!   f32 `Conv(x, w, b)` (or a `ConvFused` without an activation); it adds
//!   `ConvFused{act}(x, w, b[, r])` to the activation's class.
//! - `fuse-conv-residual` matches `Add(c, y)` or `Add(y, c)` where `c` holds
//!   a direct `Conv(x, w, b)` and `y` has exactly the conv output's type (no
//!   broadcasting); it adds `ConvFused{residual}(x, w, b, y)`.
//!
//! Sound: `ConvFused{act, residual}(x, w, b, y)` is defined as
//! `act(Conv(x, w, b) + y)` (`kerf_ir::eval`), so each rewrite adds an equal
//! term; Add is commutative in IEEE arithmetic, so both orders are exact.
//! Guarded: only when the conv's class has no other user (its only parent
//! class is the matched one), so the unfused conv never has to be computed
//! as well; extraction (cost: the fused op costs the conv alone) then picks
//! the fused form. Directional: nothing un-fuses. The layer name is kept.
//! Only direct and Winograd convs with a bias, in 1-D or 2-D, are fused:
//! their kernels apply the epilogue in registers before the store (the
//! Winograd kernel after its output transform); `Exact` (integer-valued)
//! convs are left alone.

use std::collections::BTreeSet;

use egg::Id;
use kerf_ir::op::{Conv, ConvAlgo, Epilogue};
use kerf_ir::{BinaryOp, DType, Op, UnaryOp};

use super::{add_union, rewrite, KRewrite, Rule};
use crate::analysis::KEGraph;
use crate::lang::KNode;

/// A conv (plain or fused without activation) found in a class.
#[derive(Clone)]
pub struct Found {
    conv: Conv,
    epi: Epilogue,
    children: Vec<Id>,
}

/// The class's only parent class is `parent` (no other user).
fn single_user(eg: &KEGraph, class: Id, parent: Id) -> bool {
    let parents: BTreeSet<Id> = eg[class].parents().map(|p| eg.find(p)).collect();
    parents.len() == 1 && parents.contains(&eg.find(parent))
}

/// Direct or Winograd f32 convs in `class` that an epilogue can still be added to;
/// `want_plain` restricts to unfused convs (for the residual rule).
fn convs(eg: &KEGraph, class: Id, want_plain: bool) -> Vec<Found> {
    let mut out = Vec::new();
    if eg[class].data.ty().is_none_or(|t| t.dtype != DType::F32) {
        return out;
    }
    for n in &eg[class].nodes {
        match n.kerf_op() {
            Some(Op::Conv(c))
                if matches!(c.algo, ConvAlgo::Direct | ConvAlgo::Winograd { .. })
                    && c.window.rank() <= 2
                    && n.children.len() == 3 =>
            {
                out.push(Found {
                    conv: c.clone(),
                    epi: Epilogue { act: None, residual: false },
                    children: n.children.clone(),
                });
            }
            Some(Op::ConvFused(c, e)) if !want_plain && e.act.is_none() => {
                out.push(Found { conv: c.clone(), epi: *e, children: n.children.clone() });
            }
            _ => {}
        }
    }
    out
}

pub struct FuseAct;

impl Rule for FuseAct {
    type Match = (Found, UnaryOp);
    fn name(&self) -> &'static str {
        "fuse-conv-act"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<(Found, UnaryOp)>) {
        for n in &eg[class].nodes {
            let Some(Op::Unary(u)) = n.kerf_op() else { continue };
            if !Epilogue::fusable(*u) {
                continue;
            }
            let Some(&c) = n.children.first() else { continue };
            if !single_user(eg, c, class) {
                continue;
            }
            for f in convs(eg, c, false) {
                out.push((f, *u));
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &(Found, UnaryOp)) -> Vec<Id> {
        let (f, u) = m;
        let op = Op::ConvFused(f.conv.clone(), Epilogue { act: Some(*u), residual: f.epi.residual });
        add_union(eg, class, KNode::op(op, f.children.clone()))
    }
}

pub struct FuseResidual;

impl Rule for FuseResidual {
    type Match = (Found, Id);
    fn name(&self) -> &'static str {
        "fuse-conv-residual"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<(Found, Id)>) {
        let Some(ty) = eg[class].data.ty() else { return };
        for n in &eg[class].nodes {
            if n.kerf_op() != Some(&Op::Binary(BinaryOp::Add)) || n.children.len() != 2 {
                continue;
            }
            for (ci, yi) in [(0, 1), (1, 0)] {
                let (c, y) = (n.children[ci], n.children[yi]);
                if eg.find(c) == eg.find(y) || eg[y].data.ty() != Some(ty) || !single_user(eg, c, class) {
                    continue;
                }
                if eg[c].data.ty() != Some(ty) {
                    continue;
                }
                for f in convs(eg, c, true) {
                    out.push((f, y));
                }
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &(Found, Id)) -> Vec<Id> {
        let (f, y) = m;
        let mut children = f.children.clone();
        children.push(*y);
        let op = Op::ConvFused(f.conv.clone(), Epilogue { act: None, residual: true });
        add_union(eg, class, KNode::op(op, children))
    }
}

pub fn rules() -> Vec<KRewrite> {
    vec![rewrite(FuseResidual), rewrite(FuseAct)]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use kerf_ir::{text, Tensor};

    use crate::testutil::{interpret, random};

    const CONV: &str = "Conv{kernel=[3,3], strides=[1,1], dilations=[1,1], pads=[1,1,1,1], group=1, layer=\"c\"}";

    fn consts() -> String {
        let w: Vec<String> = random(1, 4 * 2 * 9, -1.0, 1.0).iter().map(|v| format!("{v:?}")).collect();
        let b: Vec<String> = random(2, 4, -1.0, 1.0).iter().map(|v| format!("{v:?}")).collect();
        format!("  const %1 \"w\": f32[4,2,3,3] = [{}]\n  const %2 \"b\": f32[4] = [{}]\n", w.join(","), b.join(","))
    }

    /// Runs the group and checks the result against the reference
    /// evaluator on the original graph (the rewrite is an equality).
    fn fuse(body: &str) -> String {
        let src =
            format!("graph \"g\"\n  input %0 \"x\": f32[1,2,5,5]\n  input %9 \"y\": f32[1,4,5,5]\n{}{body}", consts());
        let g0 = text::parse(&src).unwrap();
        let (g1, reports) = crate::run_groups(&g0, &["fusion"], &crate::PassOptions::default()).unwrap();
        assert_eq!(reports[0].stop, crate::Stop::Saturated, "{reports:?}");
        let out = text::print(&g1);
        let x = Tensor::from_f32(vec![1, 2, 5, 5], &random(3, 50, -1.0, 1.0)).unwrap();
        let y = Tensor::from_f32(vec![1, 4, 5, 5], &random(4, 100, -1.0, 1.0)).unwrap();
        let (a, b) = (interpret(&g0, &[x.clone(), y.clone()]), interpret(&g1, &[x, y]));
        for (a, b) in a.iter().zip(&b) {
            let d = a.to_f32_vec().iter().zip(b.to_f32_vec()).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
            assert!(d <= 1e-6, "fused graph differs by {d}:\n{out}");
        }
        out
    }

    #[test]
    fn relu_and_clip_fuse_into_the_conv() {
        let out = fuse(&format!(
            "  %3 = {CONV}(%0, %1, %2): f32[1,4,5,5] @\"c\"\n  %4 = Relu(%3): f32[1,4,5,5]\n  output \"o\" = %4\n"
        ));
        assert!(out.contains("ConvFused{") && out.contains("act=Relu") && !out.contains("= Relu("), "{out}");
        let out = fuse(&format!(
            "  %3 = {CONV}(%0, %1, %2): f32[1,4,5,5] @\"c\"\n  %4 = Clip{{min=0.0, max=6.0}}(%3): f32[1,4,5,5]\n  \
             output \"o\" = %4\n"
        ));
        assert!(out.contains("act=Clip") && out.contains("act_max=6.0"), "{out}");
    }

    #[test]
    fn residual_add_then_relu_fuse() {
        for add in ["Add(%3, %9)", "Add(%9, %3)"] {
            let out = fuse(&format!(
                "  %3 = {CONV}(%0, %1, %2): f32[1,4,5,5] @\"c\"\n  %4 = {add}: f32[1,4,5,5]\n  \
                 %5 = Relu(%4): f32[1,4,5,5]\n  output \"o\" = %5\n"
            ));
            assert!(out.contains("act=Relu") && out.contains("residual=true") && !out.contains("Add("), "{out}");
        }
    }

    #[test]
    fn shared_conv_output_is_not_fused() {
        // the conv output is also used by the Add: fusing would compute the conv twice
        let out = fuse(&format!(
            "  %3 = {CONV}(%0, %1, %2): f32[1,4,5,5] @\"c\"\n  %4 = Relu(%3): f32[1,4,5,5]\n  \
             %5 = Add(%3, %4): f32[1,4,5,5]\n  output \"o\" = %5\n"
        ));
        assert!(!out.contains("ConvFused"), "{out}");
    }

    #[test]
    fn unfusable_activation_and_missing_bias_stay() {
        let out = fuse(&format!(
            "  %3 = {CONV}(%0, %1, %2): f32[1,4,5,5] @\"c\"\n  %4 = Exp(%3): f32[1,4,5,5]\n  output \"o\" = %4\n"
        ));
        assert!(!out.contains("ConvFused"), "{out}");
        let out = fuse(&format!(
            "  %3 = {CONV}(%0, %1): f32[1,4,5,5] @\"c\"\n  %4 = Relu(%3): f32[1,4,5,5]\n  output \"o\" = %4\n"
        ));
        assert!(!out.contains("ConvFused"), "{out}");
    }
}
