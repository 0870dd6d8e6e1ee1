//! Group `fusion`: conv and matrix-product epilogues, so the kernels apply
//! biases, activations and residual adds in registers instead of a separate
//! memory-bound pass.
//!
//! - `fuse-conv-act` matches `Act(c)` where `Act` is Relu, Clip, LeakyRelu,
//!   HardSwish, Sigmoid, Tanh or Gelu ([`Epilogue::fusable`]) and class `c` holds a direct
//!   f32 `Conv(x, w, b)` (or a `ConvFused` without an activation); it adds
//!   `ConvFused{act}(x, w, b[, r])` to the activation's class.
//! - `fuse-conv-hardsigmoid` matches `HardSigmoid{alpha, beta}(c)` where
//!   class `c` holds such a conv without a residual and with constant
//!   weight and bias; it adds `ConvFused{Clip(0, 1)}(x, alpha·w, alpha·b +
//!   beta)`: the conv computes the HardSigmoid's affine step itself (the
//!   `bn-fold` identity, `bn_fold::conv_affine`) and its epilogue the
//!   clamp. Sound up to rounding, as BatchNorm folding is: `clamp(alpha·(w∗x
//!   + b) + beta, 0, 1) = clamp((alpha·w)∗x + (alpha·b + beta), 0, 1)` in
//!   exact arithmetic; the folded weights round once each (f64, then f32).
//!   The SE gates of MobileNetV3-style networks (a 1x1 conv, then a
//!   HardSigmoid, spelt `relu6(x + 3)/6` by some exporters, which
//!   `recognise-hardsigmoid` has made one op) become one kernel.
//! - `fuse-convtranspose-act` matches `Act(c)` (`Act` as above) where `c`
//!   holds an f32 1-D or 2-D `ConvTranspose(x, w[, b])` with constant
//!   weight (and bias); it adds `ConvTransposeFused{act}(x, w[, b])`,
//!   defined as `act(ConvTranspose(x, w[, b]))`: its kernel applies the
//!   activation where each output is final
//!   (`targets/src/lower/conv_transpose.rs`; without a bias the outputs
//!   start from zero). With the `bn-fold` group's folds of a bias Add and a
//!   BatchNorm into the ConvTranspose, a detector's upsampling head is one
//!   kernel.
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
//!
//! Matrix products (`MatMulFused`, `GemmFused`, same guards and soundness
//! argument: each is defined by `kerf_ir::eval` as the unfused chain):
//! - `fuse-matmul-bias` matches `Add(m, c)` or `Add(c, m)` where `m` holds
//!   an f32 `MatMul(a, b)` of rank-≥2 inputs and `c` holds one value per
//!   output column (shape `[.., 1, N]`, broadcasting to the product without
//!   growing it); it adds `MatMulFused(a, b, c)`.
//! - `fuse-matmul-residual` matches `Add(p, y)` or `Add(y, p)` where `p`
//!   holds a `MatMulFused`, a `GemmFused` or an f32 `Gemm` with C, without
//!   residual or activation, and `y` has the product's type; it adds the
//!   fused op with `residual` and `y` as last input.
//! - `fuse-matmul-act` matches `Act(p)` (`Act` as for convs) where `p` holds
//!   such a product without activation; it adds the fused op with `act`.

use egg::Id;
use kerf_ir::op::{Conv, ConvAlgo, ConvTranspose, Epilogue, Gemm};
use kerf_ir::Layer;
use kerf_ir::{BinaryOp, DType, Op, UnaryOp, WeightId, F32};

use super::{add_union, rewrite, single_user, KRewrite, Rule};
use crate::analysis::KEGraph;
use crate::lang::{KNode, NodeOp};

/// A conv (plain or fused without activation) found in a class.
#[derive(Clone)]
pub struct Found {
    conv: Conv,
    epi: Epilogue,
    children: Vec<Id>,
}

/// `(operand, act)` for each fusable activation node in `class` whose
/// operand has no other user: the producers an activation can fuse into.
fn act_operands(eg: &KEGraph, class: Id) -> Vec<(Id, UnaryOp)> {
    let mut out = Vec::new();
    for n in &eg[class].nodes {
        let Some(Op::Unary(u)) = n.kerf_op() else { continue };
        let Some(&c) = n.children.first() else { continue };
        if Epilogue::fusable(*u) && single_user(eg, c, class) {
            out.push((c, *u));
        }
    }
    out
}

/// `(producer, residual)` for each operand order of each `Add` node in
/// `class` where both operands have the sum's type, are different classes,
/// and the producer has no other user: the producers a residual Add can
/// fuse into.
fn residual_operands(eg: &KEGraph, class: Id) -> Vec<(Id, Id)> {
    let mut out = Vec::new();
    let Some(ty) = eg[class].data.ty() else { return out };
    for n in &eg[class].nodes {
        if n.kerf_op() != Some(&Op::Binary(BinaryOp::Add)) || n.children.len() != 2 {
            continue;
        }
        for (pi, yi) in [(0, 1), (1, 0)] {
            let (p, y) = (n.children[pi], n.children[yi]);
            if eg.find(p) != eg.find(y)
                && eg[y].data.ty() == Some(ty)
                && eg[p].data.ty() == Some(ty)
                && single_user(eg, p, class)
            {
                out.push((p, y));
            }
        }
    }
    out
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

/// `fuse-conv-act` (see the module docs): matches a fusable activation of a single-use f32
/// direct or Winograd conv with a bias (plain, or `ConvFused` without an activation) and adds
/// the `ConvFused` with that activation to the activation's class.
pub struct FuseAct;

impl Rule for FuseAct {
    type Match = (Found, UnaryOp);
    fn name(&self) -> &'static str {
        "fuse-conv-act"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<(Found, UnaryOp)>) {
        for (c, u) in act_operands(eg, class) {
            for f in convs(eg, c, false) {
                out.push((f, u));
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &(Found, UnaryOp)) -> Vec<Id> {
        let (f, u) = m;
        let op = Op::ConvFused(f.conv.clone(), Epilogue { act: Some(*u), residual: f.epi.residual });
        add_union(eg, class, KNode::op(op, f.children.clone()))
    }
}

/// `fuse-conv-hardsigmoid` (see the module docs): matches `HardSigmoid` of a
/// single-use f32 direct or Winograd conv with constant weight and bias and
/// no residual, and adds the `ConvFused` with the affine step folded into
/// its weights and `Clip(0, 1)` as its activation to the HardSigmoid's class.
pub struct FuseHardSigmoid;

/// A conv a HardSigmoid folds into: the conv, its weight and bias, and
/// the HardSigmoid's `(alpha, beta)`.
type HardSigmoidMatch = (Found, (WeightId, WeightId), (F32, F32));

impl Rule for FuseHardSigmoid {
    type Match = HardSigmoidMatch;
    fn name(&self) -> &'static str {
        "fuse-conv-hardsigmoid"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<HardSigmoidMatch>) {
        for n in &eg[class].nodes {
            let Some(&Op::Unary(UnaryOp::HardSigmoid { alpha, beta })) = n.kerf_op() else { continue };
            let Some(&c) = n.children.first().filter(|&&c| single_user(eg, c, class)) else { continue };
            for f in convs(eg, c, false) {
                let consts = (eg[f.children[1]].data.constant, eg[f.children[2]].data.constant);
                if let (false, (Some(w), Some(b))) = (f.epi.residual, consts) {
                    out.push((f, (w, b), (alpha, beta)));
                }
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &HardSigmoidMatch) -> Vec<Id> {
        let (f, (w, b), affine) = m;
        let conv = Op::Conv(f.conv.clone());
        let Some((w, b)) =
            super::bn_fold::conv_affine(eg, self.name(), (&conv, f.children[0]), (*w, Some(*b)), *affine)
        else {
            return vec![];
        };
        let (w, b) = (eg.add(KNode::leaf(NodeOp::Const(w))), eg.add(KNode::leaf(NodeOp::Const(b))));
        let clip = UnaryOp::Clip { min: F32::new(0.0), max: F32::new(1.0) };
        let op = Op::ConvFused(f.conv.clone(), Epilogue { act: Some(clip), residual: false });
        add_union(eg, class, KNode::op(op, vec![f.children[0], w, b]))
    }
}

/// `fuse-convtranspose-act` (see the module docs): matches a fusable
/// activation of a single-use f32 1-D or 2-D ConvTranspose with constant
/// weight (and bias, if it has one), and adds the `ConvTransposeFused` with that activation
/// to the activation's class.
pub struct FuseConvTransposeAct;

impl Rule for FuseConvTransposeAct {
    type Match = (ConvTranspose, Vec<Id>, UnaryOp);
    fn name(&self) -> &'static str {
        "fuse-convtranspose-act"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<(ConvTranspose, Vec<Id>, UnaryOp)>) {
        for (c, u) in act_operands(eg, class) {
            if eg[c].data.ty().is_none_or(|t| t.dtype != DType::F32) {
                continue;
            }
            for n in &eg[c].nodes {
                let Some(Op::ConvTranspose(ct)) = n.kerf_op() else { continue };
                let arity = (2..=3).contains(&n.children.len());
                let constant = arity && n.children[1..].iter().all(|&i| eg[i].data.constant.is_some());
                if constant && ct.window.rank() <= 2 {
                    out.push((ct.clone(), n.children.clone(), u));
                }
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &(ConvTranspose, Vec<Id>, UnaryOp)) -> Vec<Id> {
        let (ct, children, u) = m;
        let op = Op::ConvTransposeFused(ct.clone(), Epilogue { act: Some(*u), residual: false });
        add_union(eg, class, KNode::op(op, children.clone()))
    }
}

/// `fuse-conv-residual` (see the module docs): matches `Add` of a single-use plain f32 direct
/// or Winograd conv with a bias and a value of the same type, and adds
/// `ConvFused{residual}(x, w, b, y)` to the `Add`'s class.
pub struct FuseResidual;

impl Rule for FuseResidual {
    type Match = (Found, Id);
    fn name(&self) -> &'static str {
        "fuse-conv-residual"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<(Found, Id)>) {
        for (c, y) in residual_operands(eg, class) {
            for f in convs(eg, c, true) {
                out.push((f, y));
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

/// A matrix product in fused form, to which an epilogue can be added.
#[derive(Clone)]
pub enum Product {
    /// A `MatMulFused`, with the matched op's layer identity.
    MatMul(Layer),
    /// A `GemmFused`, with the matched Gemm's attributes.
    Gemm(Gemm),
}

/// A product found in a class: its fused form, current epilogue, inputs.
#[derive(Clone)]
pub struct FoundProduct {
    product: Product,
    epi: Epilogue,
    children: Vec<Id>,
}

impl FoundProduct {
    fn node(&self, epi: Epilogue, children: Vec<Id>) -> KNode {
        let op = match &self.product {
            Product::MatMul(l) => Op::MatMulFused(l.clone(), epi),
            Product::Gemm(g) => Op::GemmFused(g.clone(), epi),
        };
        KNode::op(op, children)
    }
}

/// f32 products in `class` that have a bias (`MatMulFused`, `GemmFused`,
/// or a plain `Gemm` with C) and neither residual nor activation yet
/// (`allow_residual`: a residual is fine, for the activation rule).
fn products(eg: &KEGraph, class: Id, allow_residual: bool) -> Vec<FoundProduct> {
    let mut out = Vec::new();
    if eg[class].data.ty().is_none_or(|t| t.dtype != DType::F32) {
        return out;
    }
    let open = |e: &Epilogue| e.act.is_none() && (allow_residual || !e.residual);
    for n in &eg[class].nodes {
        let (product, epi) = match n.kerf_op() {
            Some(Op::Gemm(g)) if n.children.len() == 3 => (Product::Gemm(g.clone()), Epilogue::default()),
            Some(Op::GemmFused(g, e)) if open(e) => (Product::Gemm(g.clone()), *e),
            Some(Op::MatMulFused(l, e)) if open(e) => (Product::MatMul(l.clone()), *e),
            _ => continue,
        };
        out.push(FoundProduct { product, epi, children: n.children.clone() });
    }
    out
}

/// `fuse-matmul-bias` (see the module docs): matches `Add` of a single-use f32 `MatMul(a, b)`
/// and a per-column bias `c` and adds `MatMulFused(a, b, c)` to the `Add`'s class.
pub struct FuseMatMulBias;

impl Rule for FuseMatMulBias {
    type Match = (Layer, Vec<Id>);
    fn name(&self) -> &'static str {
        "fuse-matmul-bias"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<(Layer, Vec<Id>)>) {
        let Some(ty) = eg[class].data.ty() else { return };
        if ty.dtype != DType::F32 || ty.rank() < 2 {
            return;
        }
        let n_cols = ty.shape[ty.rank() - 1];
        for n in &eg[class].nodes {
            if n.kerf_op() != Some(&Op::Binary(BinaryOp::Add)) || n.children.len() != 2 {
                continue;
            }
            for (mi, ci) in [(0, 1), (1, 0)] {
                let (m, c) = (n.children[mi], n.children[ci]);
                if eg.find(m) == eg.find(c) || eg[m].data.ty() != Some(ty) || !single_user(eg, m, class) {
                    continue;
                }
                let Some(ct) = eg[c].data.ty() else { continue };
                let leading_ones = ct.shape[..ct.rank().saturating_sub(1)].iter().all(|&d| d == 1);
                if ct.dtype != DType::F32 || ct.shape.last() != Some(&n_cols) || !leading_ones || ct.rank() > ty.rank()
                {
                    continue;
                }
                for mn in &eg[m].nodes {
                    let Some(Op::MatMul(l)) = mn.kerf_op() else { continue };
                    let ranks_ok = mn.children.iter().all(|&x| eg[x].data.ty().is_some_and(|t| t.rank() >= 2));
                    if mn.children.len() == 2 && ranks_ok {
                        out.push((l.clone(), vec![mn.children[0], mn.children[1], c]));
                    }
                }
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &(Layer, Vec<Id>)) -> Vec<Id> {
        let op = Op::MatMulFused(m.0.clone(), Epilogue::default());
        add_union(eg, class, KNode::op(op, m.1.clone()))
    }
}

/// `fuse-matmul-residual` (see the module docs): matches `Add` of a single-use biased f32
/// product without epilogue and a value `y` of its type, and adds the fused product with
/// `residual` and `y` as last input to the `Add`'s class.
pub struct FuseMatMulResidual;

impl Rule for FuseMatMulResidual {
    type Match = (FoundProduct, Id);
    fn name(&self) -> &'static str {
        "fuse-matmul-residual"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<(FoundProduct, Id)>) {
        for (p, y) in residual_operands(eg, class) {
            for f in products(eg, p, false) {
                out.push((f, y));
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &(FoundProduct, Id)) -> Vec<Id> {
        let (f, y) = m;
        let mut children = f.children.clone();
        children.push(*y);
        let node = f.node(Epilogue { act: None, residual: true }, children);
        add_union(eg, class, node)
    }
}

/// `fuse-matmul-act` (see the module docs): matches a fusable activation of a single-use
/// biased f32 product without activation and adds the fused product with `act` to the
/// activation's class.
pub struct FuseMatMulAct;

impl Rule for FuseMatMulAct {
    type Match = (FoundProduct, UnaryOp);
    fn name(&self) -> &'static str {
        "fuse-matmul-act"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<(FoundProduct, UnaryOp)>) {
        for (p, u) in act_operands(eg, class) {
            for f in products(eg, p, true) {
                out.push((f, u));
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &(FoundProduct, UnaryOp)) -> Vec<Id> {
        let (f, u) = m;
        let node = f.node(Epilogue { act: Some(*u), residual: f.epi.residual }, f.children.clone());
        add_union(eg, class, node)
    }
}

/// The rules of group `fusion`: the conv rules, then the matrix-product rules.
pub fn rules() -> Vec<KRewrite> {
    vec![
        rewrite(FuseResidual),
        rewrite(FuseAct),
        rewrite(FuseHardSigmoid),
        rewrite(FuseConvTransposeAct),
        rewrite(FuseMatMulBias),
        rewrite(FuseMatMulResidual),
        rewrite(FuseMatMulAct),
    ]
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
    fn hardsigmoid_folds_into_the_conv_as_a_clip() {
        let out = fuse(&format!(
            "  %3 = {CONV}(%0, %1, %2): f32[1,4,5,5] @\"c\"\n  %4 = HardSigmoid{{alpha=0.2, beta=0.5}}(%3): f32[1,4,5,5]\n  \
             output \"o\" = %4\n"
        ));
        assert!(out.contains("act=Clip") && out.contains("act_max=1.0") && !out.contains("HardSigmoid"), "{out}");
        assert!(out.contains("\"w.affine\"") && out.contains("\"w.affine_bias\""), "{out}");
        // after a residual add the affine step would scale the residual too: it stays
        let out = fuse(&format!(
            "  %3 = {CONV}(%0, %1, %2): f32[1,4,5,5] @\"c\"\n  %4 = Add(%3, %9): f32[1,4,5,5]\n  \
             %5 = HardSigmoid{{alpha=0.2, beta=0.5}}(%4): f32[1,4,5,5]\n  output \"o\" = %5\n"
        ));
        assert!(out.contains("residual=true") && out.contains("= HardSigmoid{"), "{out}");
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

    fn konst(id: usize, name: &str, shape: &[usize], seed: u64) -> String {
        let n: usize = shape.iter().product();
        let v: Vec<String> = random(seed, n, -1.0, 1.0).iter().map(|v| format!("{v:?}")).collect();
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        format!("  const %{id} \"{name}\": f32[{}] = [{}]\n", dims.join(","), v.join(","))
    }

    /// Runs the group on `src` (inputs `x`, `y` of the given shapes) and
    /// checks the result against the reference evaluator on the original.
    fn fuse_graph(src: &str, xs: &[usize], ys: &[usize]) -> String {
        let g0 = text::parse(src).unwrap();
        let (g1, reports) = crate::run_groups(&g0, &["fusion"], &crate::PassOptions::default()).unwrap();
        assert_eq!(reports[0].stop, crate::Stop::Saturated, "{reports:?}");
        let out = text::print(&g1);
        let x = Tensor::from_f32(xs.to_vec(), &random(3, xs.iter().product(), -1.0, 1.0)).unwrap();
        let y = Tensor::from_f32(ys.to_vec(), &random(4, ys.iter().product(), -1.0, 1.0)).unwrap();
        let (a, b) = (interpret(&g0, &[x.clone(), y.clone()]), interpret(&g1, &[x, y]));
        for (a, b) in a.iter().zip(&b) {
            let d = a.to_f32_vec().iter().zip(b.to_f32_vec()).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
            assert!(d <= 1e-6, "fused graph differs by {d}:\n{out}");
        }
        out
    }

    /// `x: [2,3,4] · w: [4,5]`, bias `b: [5]`, residual input `y: [2,3,5]`.
    fn matmul_graph(body: &str) -> String {
        let src = format!(
            "graph \"g\"\n  input %0 \"x\": f32[2,3,4]\n  input %9 \"y\": f32[2,3,5]\n{}{}{body}",
            konst(1, "w", &[4, 5], 1),
            konst(2, "b", &[5], 2)
        );
        fuse_graph(&src, &[2, 3, 4], &[2, 3, 5])
    }

    const MM: &str = "  %3 = MatMul{layer=\"m\"}(%0, %1): f32[2,3,5] @\"m\"\n";

    #[test]
    fn matmul_bias_residual_and_relu_fuse() {
        for (bias, res) in [("Add(%2, %3)", "Add(%9, %4)"), ("Add(%3, %2)", "Add(%4, %9)")] {
            let out = matmul_graph(&format!(
                "{MM}  %4 = {bias}: f32[2,3,5]\n  %5 = {res}: f32[2,3,5]\n  %6 = Relu(%5): f32[2,3,5]\n  \
                 output \"o\" = %6\n"
            ));
            assert!(out.contains("MatMulFused{layer=\"m\", act=Relu, residual=true}"), "{out}");
            assert!(!out.contains("Add(") && !out.contains("= Relu("), "{out}");
        }
        // bias alone (the bias-add output has two users: the fused op is still one kernel)
        let out = matmul_graph(&format!(
            "{MM}  %4 = Add(%3, %2): f32[2,3,5]\n  %5 = Mul(%4, %4): f32[2,3,5]\n  output \"o\" = %5\n"
        ));
        assert!(out.contains("MatMulFused{layer=\"m\", act=None, residual=false}") && !out.contains("Add("), "{out}");
    }

    #[test]
    fn matmul_without_a_column_bias_or_shared_stays() {
        // a full-shape addend is a residual, not a bias: without a bias nothing fuses
        let out = matmul_graph(&format!("{MM}  %4 = Add(%3, %9): f32[2,3,5]\n  output \"o\" = %4\n"));
        assert!(!out.contains("MatMulFused"), "{out}");
        // the product is also an output: fusing would compute it twice
        let out =
            matmul_graph(&format!("{MM}  %4 = Add(%3, %2): f32[2,3,5]\n  output \"o\" = %4\n  output \"p\" = %3\n"));
        assert!(!out.contains("MatMulFused"), "{out}");
        // one value per row ([3,1]) is not a column bias
        let src = format!(
            "graph \"g\"\n  input %0 \"x\": f32[2,3,4]\n  input %9 \"y\": f32[2,3,5]\n{}{}{MM}  \
             %4 = Add(%3, %2): f32[2,3,5]\n  output \"o\" = %4\n",
            konst(1, "w", &[4, 5], 1),
            konst(2, "b", &[3, 1], 2)
        );
        let out = fuse_graph(&src, &[2, 3, 4], &[2, 3, 5]);
        assert!(!out.contains("MatMulFused"), "{out}");
    }

    /// `Gemm(x: [3,4], w: [5,4]ᵀ, c: [5])`, residual input `y: [3,5]`.
    fn gemm_graph(body: &str) -> String {
        let src = format!(
            "graph \"g\"\n  input %0 \"x\": f32[3,4]\n  input %9 \"y\": f32[3,5]\n{}{}  \
             %3 = Gemm{{alpha=0.5, beta=2.0, trans_a=false, trans_b=true, layer=\"fc\"}}(%0, %1, %2): f32[3,5] @\"fc\"\n\
             {body}",
            konst(1, "w", &[5, 4], 1),
            konst(2, "c", &[5], 2)
        );
        fuse_graph(&src, &[3, 4], &[3, 5])
    }

    #[test]
    fn gemm_activation_and_residual_fuse() {
        let out = gemm_graph("  %4 = Relu(%3): f32[3,5]\n  output \"o\" = %4\n");
        assert!(out.contains("GemmFused{alpha=0.5, beta=2.0") && out.contains("act=Relu, residual=false"), "{out}");
        let out = gemm_graph(
            "  %4 = Add(%9, %3): f32[3,5]\n  %5 = Clip{min=0.0, max=6.0}(%4): f32[3,5]\n  output \"o\" = %5\n",
        );
        assert!(out.contains("act=Clip") && out.contains("residual=true") && !out.contains("Add("), "{out}");
    }
}
