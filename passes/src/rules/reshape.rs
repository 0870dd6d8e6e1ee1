//! Group `reshape`: redundant Reshape and Transpose.

use egg::Id;
use kerf_ir::Op;

use super::{add_union, rewrite, union, KRewrite, Rule};
use crate::analysis::KEGraph;
use crate::lang::KNode;

/// `reshape-chain`: matches `Reshape{s2}(y)` where `y`'s class contains
/// `Reshape{s1}(x)`, and adds `Reshape{s2}(x)`. Sound because row-major
/// reshapes only reinterpret the same element order, so composing two is one
/// reshape to the final shape (the element counts agree by inference).
pub struct ReshapeChain;

/// `reshape-noop`: matches `Reshape{s}(x)` where `x` already has shape `s`,
/// and unions the class with `x`. Sound: same elements, same order, same
/// shape.
pub struct ReshapeNoop;

/// `transpose-pair`: matches `Transpose{p2}(y)` where `y`'s class contains
/// `Transpose{p1}(x)`; adds `Transpose{q}(x)` with `q[i] = p1[p2[i]]`, or
/// unions with `x` when `q` is the identity. Sound because output axis `i`
/// of the outer transpose is axis `p2[i]` of `y`, which is axis
/// `p1[p2[i]]` of `x`.
pub struct TransposePair;

/// `transpose-noop`: matches `Transpose{p}(x)` with `p = [0, 1, ..]` and
/// unions the class with `x`. Sound: the identity permutation moves nothing.
pub struct TransposeNoop;

fn is_identity_perm(p: &[usize]) -> bool {
    p.iter().enumerate().all(|(i, &a)| i == a)
}

/// Nodes `op(child)` in `class` for which `f(op)` holds.
fn unary_nodes<'a>(eg: &'a KEGraph, class: Id) -> impl Iterator<Item = (&'a Op, Id)> + 'a {
    eg[class].nodes.iter().filter_map(|n| match (n.kerf_op(), n.children.as_slice()) {
        (Some(op), [c]) => Some((op, *c)),
        _ => None,
    })
}

impl Rule for ReshapeChain {
    /// `(x, s2)`
    type Match = (Id, Vec<usize>);
    fn name(&self) -> &'static str {
        "reshape-chain"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<Self::Match>) {
        for (op, y) in unary_nodes(eg, class) {
            let Op::Reshape { shape } = op else { continue };
            for (inner, x) in unary_nodes(eg, y) {
                if matches!(inner, Op::Reshape { .. }) {
                    out.push((x, shape.clone()));
                }
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, (x, shape): &Self::Match) -> Vec<Id> {
        add_union(eg, class, KNode::op(Op::Reshape { shape: shape.clone() }, vec![*x]))
    }
}

impl Rule for ReshapeNoop {
    type Match = Id;
    fn name(&self) -> &'static str {
        "reshape-noop"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<Id>) {
        for (op, x) in unary_nodes(eg, class) {
            if let Op::Reshape { shape } = op {
                if eg[x].data.ty().is_some_and(|t| &t.shape == shape) {
                    out.push(x);
                }
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, x: &Id) -> Vec<Id> {
        union(eg, class, *x)
    }
}

impl Rule for TransposePair {
    /// `(x, composed perm)`
    type Match = (Id, Vec<usize>);
    fn name(&self) -> &'static str {
        "transpose-pair"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<Self::Match>) {
        for (op, y) in unary_nodes(eg, class) {
            let Op::Transpose { perm: p2 } = op else { continue };
            for (inner, x) in unary_nodes(eg, y) {
                let Op::Transpose { perm: p1 } = inner else { continue };
                let q: Option<Vec<usize>> = p2.iter().map(|&a| p1.get(a).copied()).collect();
                if let Some(q) = q {
                    out.push((x, q));
                }
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, (x, q): &Self::Match) -> Vec<Id> {
        if is_identity_perm(q) {
            union(eg, class, *x)
        } else {
            add_union(eg, class, KNode::op(Op::Transpose { perm: q.clone() }, vec![*x]))
        }
    }
}

impl Rule for TransposeNoop {
    type Match = Id;
    fn name(&self) -> &'static str {
        "transpose-noop"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<Id>) {
        for (op, x) in unary_nodes(eg, class) {
            if matches!(op, Op::Transpose { perm } if is_identity_perm(perm)) {
                out.push(x);
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, x: &Id) -> Vec<Id> {
        union(eg, class, *x)
    }
}

/// The rules of group `reshape`: the Reshape rules, then the Transpose rules.
pub fn rules() -> Vec<KRewrite> {
    vec![rewrite(ReshapeChain), rewrite(ReshapeNoop), rewrite(TransposePair), rewrite(TransposeNoop)]
}

#[cfg(test)]
mod tests {
    use crate::testutil::run_text;

    #[test]
    fn reshape_chain() {
        let out = run_text(
            "reshape",
            r#"
graph "g"
  input %0 "x": f32[2,3,4]
  %1 = Reshape{shape=[6,4]}(%0): f32[6,4] @"r1"
  %2 = Reshape{shape=[24]}(%1): f32[24] @"r2"
  output "y" = %2
"#,
        );
        assert_eq!(
            out,
            r#"graph "g"
  input %0 "x": f32[2,3,4]
  %1 = Reshape{shape=[24]}(%0): f32[24] @"r2.Reshape"
  output "y" = %1
"#
        );
    }

    #[test]
    fn reshape_chain_keeps_a_shared_inner_reshape() {
        // The inner reshape is an output too, so it stays; the outer one
        // still reads x directly (one reshape each, no chain).
        let out = run_text(
            "reshape",
            r#"
graph "g"
  input %0 "x": f32[2,3,4]
  %1 = Reshape{shape=[6,4]}(%0): f32[6,4] @"r1"
  %2 = Reshape{shape=[24]}(%1): f32[24] @"r2"
  output "y" = %2
  output "z" = %1
"#,
        );
        assert!(out.contains("%1 = Reshape{shape=[6,4]}(%0): f32[6,4] @\"r1\""), "{out}");
        assert_eq!(out.matches("= Reshape").count(), 2, "{out}");
        assert!(out.contains("Reshape{shape=[24]}(%0)"), "{out}");
    }

    #[test]
    fn reshape_noop_and_chain_back_to_the_input() {
        let out = run_text(
            "reshape",
            r#"
graph "g"
  input %0 "x": f32[2,6]
  %1 = Reshape{shape=[3,4]}(%0): f32[3,4] @"r1"
  %2 = Reshape{shape=[2,6]}(%1): f32[2,6] @"r2"
  %3 = Relu(%2): f32[2,6] @"relu"
  output "y" = %3
"#,
        );
        assert_eq!(
            out,
            r#"graph "g"
  input %0 "x": f32[2,6]
  %1 = Relu(%0): f32[2,6] @"relu"
  output "y" = %1
"#
        );
    }

    #[test]
    fn transpose_pair_composes() {
        let out = run_text(
            "reshape",
            r#"
graph "g"
  input %0 "x": f32[2,3,4]
  %1 = Transpose{perm=[1,2,0]}(%0): f32[3,4,2] @"t1"
  %2 = Transpose{perm=[0,2,1]}(%1): f32[3,2,4] @"t2"
  output "y" = %2
"#,
        );
        // axis i of the result is axis p1[p2[i]] of x: [1,0,2]
        assert_eq!(
            out,
            r#"graph "g"
  input %0 "x": f32[2,3,4]
  %1 = Transpose{perm=[1,0,2]}(%0): f32[3,2,4] @"t2.Transpose"
  output "y" = %1
"#
        );
    }

    #[test]
    fn transpose_pair_cancels_and_noop_disappears() {
        let out = run_text(
            "reshape",
            r#"
graph "g"
  input %0 "x": f32[2,3,4]
  %1 = Transpose{perm=[2,0,1]}(%0): f32[4,2,3] @"t1"
  %2 = Transpose{perm=[1,2,0]}(%1): f32[2,3,4] @"t2"
  %3 = Transpose{perm=[0,1,2]}(%2): f32[2,3,4] @"t3"
  %4 = Neg(%3): f32[2,3,4] @"neg"
  output "y" = %4
"#,
        );
        assert_eq!(
            out,
            r#"graph "g"
  input %0 "x": f32[2,3,4]
  %1 = Neg(%0): f32[2,3,4] @"neg"
  output "y" = %1
"#
        );
    }
}
