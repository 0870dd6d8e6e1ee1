//! Group `cleanup`: ops that are the identity at inference time.

use egg::Id;
use kerf_ir::Op;

use super::{rewrite, union, KRewrite, Rule};
use crate::analysis::KEGraph;

/// `remove-identity`: matches `Identity(x)` and unions its class with `x`.
/// Sound because Identity returns its input unchanged (same dtype, shape and
/// values).
pub struct RemoveIdentity;

/// `remove-dropout`: matches `Dropout(x)` and unions its class with `x`.
/// Sound because the IR's Dropout is inference-mode Dropout, the identity on
/// its data output (the frontend drops the mask output).
pub struct RemoveDropout;

fn find_unary_identity(eg: &KEGraph, class: Id, want: &Op, out: &mut Vec<Id>) {
    for n in &eg[class].nodes {
        if n.kerf_op() == Some(want) {
            if let [x] = n.children.as_slice() {
                out.push(*x);
            }
        }
    }
}

impl Rule for RemoveIdentity {
    type Match = Id;
    fn name(&self) -> &'static str {
        "remove-identity"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<Id>) {
        find_unary_identity(eg, class, &Op::Identity, out)
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, x: &Id) -> Vec<Id> {
        union(eg, class, *x)
    }
}

impl Rule for RemoveDropout {
    type Match = Id;
    fn name(&self) -> &'static str {
        "remove-dropout"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<Id>) {
        find_unary_identity(eg, class, &Op::Dropout, out)
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, x: &Id) -> Vec<Id> {
        union(eg, class, *x)
    }
}

/// [`RemoveIdentity`] and [`RemoveDropout`]; group `cleanup` also runs
/// [`super::gelu::RecogniseGelu`].
pub fn rules() -> Vec<KRewrite> {
    vec![rewrite(RemoveIdentity), rewrite(RemoveDropout)]
}

#[cfg(test)]
mod tests {
    use crate::testutil::run_text;

    #[test]
    fn remove_identity() {
        let out = run_text(
            "cleanup",
            r#"
graph "g"
  input %0 "x": f32[2,3]
  %1 = Relu(%0): f32[2,3] @"relu"
  %2 = Identity(%1): f32[2,3] @"id"
  %3 = Exp(%2): f32[2,3] @"exp"
  output "y" = %3
"#,
        );
        assert_eq!(
            out,
            r#"graph "g"
  input %0 "x": f32[2,3]
  %1 = Relu(%0): f32[2,3] @"relu"
  %2 = Exp(%1): f32[2,3] @"exp"
  output "y" = %2
"#
        );
    }

    #[test]
    fn remove_dropout_feeding_an_output() {
        let out = run_text(
            "cleanup",
            r#"
graph "g"
  input %0 "x": f32[4]
  %1 = Sigmoid(%0): f32[4] @"s"
  %2 = Dropout(%1): f32[4] @"drop"
  output "y" = %2
  output "z" = %1
"#,
        );
        assert_eq!(
            out,
            r#"graph "g"
  input %0 "x": f32[4]
  %1 = Sigmoid(%0): f32[4] @"s"
  output "y" = %1
  output "z" = %1
"#
        );
    }

    #[test]
    fn identity_of_an_input_is_the_input() {
        let out = run_text(
            "cleanup",
            "graph \"g\"\n  input %0 \"x\": f32[4]\n  %1 = Identity(%0): f32[4] @\"i\"\n  output \"y\" = %1\n",
        );
        assert_eq!(out, "graph \"g\"\n  input %0 \"x\": f32[4]\n  output \"y\" = %0\n");
    }
}
