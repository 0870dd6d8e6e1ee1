//! Group `chain`: runs of single-use f32 elementwise ops become one
//! [`Op::Chain`], computed in one pass over memory (one read of each input,
//! one write) instead of one pass per op. Runs after `fusion`, so the
//! activations and residual adds that a conv or matrix-product epilogue can
//! take are already gone.
//!
//! `form-chain` matches a class `c` of type f32 holding an elementwise node
//! `n` (a unary op, or a binary Add/Sub/Mul/Div/Max/Min one of whose
//! operands has `c`'s type: the stream) and walks down the stream: while
//! the stream class has `c` (then the class above) as its only user and
//! holds such a node (or a `Chain`), that node joins the run. A run of two
//! or more ops adds `Chain(steps bottom to top)` to `c`, over the bottom
//! stream plus every other operand once (an operand that is already an
//! input reuses its index, e.g. GELU-like `Mul(x, f(x))`), up to
//! [`MAX_STEPS`] steps of which at most [`MAX_HEAVY`] are transcendental
//! (two inlined exp-based routines in one loop spill vector registers and
//! run slower than two kernels). Every class of a run gets the chain ending there;
//! extraction keeps the longest.
//!
//! Sound: a chain is defined as its steps as separate ops, each rounded to
//! f32 ([`kerf_ir::op::chain`]), and the kernel uses the same per-op
//! emitters, so the added term computes exactly the matched one. Guarded:
//! `s` must have `c` as its only user among the e-graph's nodes. (Graph
//! outputs are not parents in the e-graph, so a value that is also a graph
//! output passes this guard; there DAG-aware extraction, which counts the
//! recomputed steps, is what keeps it from being computed twice.) Other
//! operands only broadcast into the stream (a chain never grows its input's
//! shape). Directional: nothing splits a
//! chain. The cost model charges a chain its steps' work and one pass of
//! bytes, so extraction prefers the longest chain.

use egg::Id;
use kerf_ir::op::chain::{binary_ok, heavy, unary_ok, MAX_HEAVY, MAX_STEPS};
use kerf_ir::op::ChainStep;
use kerf_ir::{DType, Op, TensorType};

use super::{add_union, rewrite, single_user, KRewrite, Rule};
use crate::analysis::KEGraph;
use crate::lang::KNode;

/// `form-chain` (see the module docs): matches a run of two or more single-use f32 elementwise
/// ops ending at a class and adds one `Chain` of their steps to that class.
pub struct FormChain;

/// A chain to add: its steps and input classes (input 0 the stream).
pub struct Found {
    steps: Vec<ChainStep>,
    inputs: Vec<Id>,
}

fn is_f32(eg: &KEGraph, class: Id) -> bool {
    eg[class].data.ty().is_some_and(|t| t.dtype == DType::F32)
}

/// A node as a chain: steps and input classes, input 0 the stream.
type Form = (Vec<ChainStep>, Vec<Id>);

/// Node `n` of a class of type `ty` as a chain, once per operand that can
/// be the stream (has type `ty`). `Chain` nodes are returned as they are
/// only when `whole` (the inner node of a match may be a chain, the outer
/// one is a single op).
fn as_chain(eg: &KEGraph, n: &KNode, ty: &TensorType, whole: bool) -> Vec<Form> {
    let same = |c: Id| eg[c].data.ty() == Some(ty);
    let Some(op) = n.kerf_op() else { return vec![] };
    match (op, n.children.as_slice()) {
        (Op::Unary(u), [x]) if unary_ok(*u) && same(*x) => vec![(vec![ChainStep::Unary(*u)], vec![*x])],
        (Op::Binary(op), [a, b]) if binary_ok(*op) && is_f32(eg, *a) && is_f32(eg, *b) => {
            if eg.find(*a) == eg.find(*b) {
                return if same(*a) {
                    vec![(vec![ChainStep::Binary { op: *op, arg: 0, swap: false }], vec![*a])]
                } else {
                    vec![]
                };
            }
            let mut v = Vec::new();
            if same(*a) {
                v.push((vec![ChainStep::Binary { op: *op, arg: 1, swap: false }], vec![*a, *b]));
            }
            if same(*b) {
                v.push((vec![ChainStep::Binary { op: *op, arg: 1, swap: true }], vec![*b, *a]));
            }
            v
        }
        (Op::Chain(steps), [x, ..]) if whole && same(*x) => vec![(steps.clone(), n.children.clone())],
        _ => vec![],
    }
}

/// Whether a form's steps read its stream as an operand (`op(x, x)`): the
/// stream must then stay the chain's input, so the run cannot extend below.
fn reads_stream(steps: &[ChainStep]) -> bool {
    steps.iter().any(|s| matches!(s, ChainStep::Binary { arg: 0, .. }))
}

/// The maximal run ending with `top` (a single op of class `class`): walks
/// down through stream classes that have one user and an elementwise node
/// (preferring a node whose own stream can continue the run) while the steps
/// fit in [`MAX_STEPS`] and [`MAX_HEAVY`]. `None` when the run is `top` alone.
fn run_below(eg: &KEGraph, class: Id, top: Form, ty: &TensorType) -> Option<Found> {
    let mut levels = vec![top];
    let mut n_steps = levels[0].0.len();
    let n_heavy = |f: &Form| f.0.iter().filter(|s| heavy(s)).count();
    let mut heavy_steps = n_heavy(&levels[0]);
    let mut user = class;
    while let Some(last) = levels.last() {
        let s = last.1[0];
        if reads_stream(&last.0) || eg.find(s) == eg.find(user) || !single_user(eg, s, user) {
            break;
        }
        // of the forms that fit, prefer one whose stream can extend the run
        let fits: Vec<Form> = eg[s]
            .nodes
            .iter()
            .flat_map(|m| as_chain(eg, m, ty, true))
            .filter(|f| {
                n_steps + f.0.len() <= MAX_STEPS
                    && heavy_steps + n_heavy(f) <= MAX_HEAVY
                    && eg.find(f.1[0]) != eg.find(s)
            })
            .collect();
        let extends = |f: &Form| !reads_stream(&f.0) && single_user(eg, f.1[0], s);
        let Some(next) = fits.iter().find(|f| extends(f)).or(fits.first()).cloned() else { break };
        n_steps += next.0.len();
        heavy_steps += n_heavy(&next);
        levels.push(next);
        user = s;
    }
    if levels.len() < 2 {
        return None;
    }
    // assemble bottom-up; input 0 is the bottom level's stream
    let mut inputs: Vec<Id> = vec![levels[levels.len() - 1].1[0]];
    let mut steps = Vec::with_capacity(n_steps);
    for (depth, (lsteps, lins)) in levels.iter().rev().enumerate() {
        let mut map = Vec::with_capacity(lins.len());
        for (k, &c) in lins.iter().enumerate() {
            if k == 0 {
                map.push(0); // the accumulator's start (only read as an operand at the bottom)
                continue;
            }
            let c = eg.find(c);
            let idx = match inputs.iter().position(|&i| eg.find(i) == c) {
                Some(i) => i,
                None => {
                    inputs.push(c);
                    inputs.len() - 1
                }
            };
            map.push(idx);
        }
        for st in lsteps {
            steps.push(match *st {
                ChainStep::Binary { op, arg, swap } => {
                    if arg == 0 && depth != 0 {
                        return None; // cannot happen: such a level ends the walk
                    }
                    ChainStep::Binary { op, arg: *map.get(arg)?, swap }
                }
                u => u,
            });
        }
    }
    Some(Found { steps, inputs })
}

impl Rule for FormChain {
    type Match = Found;
    fn name(&self) -> &'static str {
        "form-chain"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<Found>) {
        let Some(ty) = eg[class].data.ty() else { return };
        if ty.dtype != DType::F32 {
            return;
        }
        for n in &eg[class].nodes {
            for top in as_chain(eg, n, ty, false) {
                if let Some(f) = run_below(eg, class, top, ty) {
                    out.push(f);
                }
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &Found) -> Vec<Id> {
        add_union(eg, class, KNode::op(Op::Chain(m.steps.clone()), m.inputs.clone()))
    }
}

/// The rules of group `chain`: [`FormChain`].
pub fn rules() -> Vec<KRewrite> {
    vec![rewrite(FormChain)]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use kerf_ir::{text, Tensor};

    use crate::testutil::{interpret, random};

    /// Runs `chain` on a graph over `%0` (f32[2,3,8]), `%1` (f32[8]) and
    /// `%2` (f32[2,1,1]) and checks it against the reference evaluator on
    /// the original graph, bit for bit (a chain is its steps).
    fn run(body: &str) -> String {
        let src = format!(
            "graph \"g\"\n  input %0 \"x\": f32[2,3,8]\n  input %1 \"y\": f32[8]\n  input %2 \"z\": f32[2,1,1]\n{body}"
        );
        let g0 = text::parse(&src).unwrap();
        let (g1, reports) = crate::run_groups(&g0, &["chain"], &crate::PassOptions::default()).unwrap();
        assert_eq!(reports[0].stop, crate::Stop::Saturated, "{reports:?}");
        let out = text::print(&g1);
        let ins = [
            Tensor::from_f32(vec![2, 3, 8], &random(1, 48, -3.0, 3.0)).unwrap(),
            Tensor::from_f32(vec![8], &random(2, 8, 0.5, 2.0)).unwrap(),
            Tensor::from_f32(vec![2, 1, 1], &random(3, 2, -1.0, 1.0)).unwrap(),
        ];
        let (a, b) = (interpret(&g0, &ins), interpret(&g1, &ins));
        for (a, b) in a.iter().zip(&b) {
            assert_eq!(a.bytes(), b.bytes(), "{out}");
        }
        out
    }

    #[test]
    fn a_run_of_single_use_ops_becomes_one_chain() {
        let out = run("  %3 = Mul(%0, %1): f32[2,3,8]\n  %4 = Sigmoid(%3): f32[2,3,8]\n  \
             %5 = Sub(%2, %4): f32[2,3,8]\n  %6 = Mul(%0, %5): f32[2,3,8]\n  %7 = Relu(%6): f32[2,3,8]\n  \
             output \"o\" = %7\n");
        assert!(
            out.contains("= Chain{steps=\"Mul(@,$1) Sigmoid Sub($2,@) Mul($0,@) Relu\"}(%0, %1, %2): f32[2,3,8]"),
            "{out}"
        );
        assert_eq!(out.matches(" = ").count(), 2, "{out}"); // the chain and the output
    }

    #[test]
    fn a_value_with_two_users_ends_a_chain() {
        // %4 feeds both %5 and the output "e": chains stop at it
        let out = run("  %3 = Add(%0, %1): f32[2,3,8]\n  %4 = Tanh(%3): f32[2,3,8]\n  %5 = Exp(%4): f32[2,3,8]\n  \
             %6 = Neg(%5): f32[2,3,8]\n  %7 = Add(%4, %5): f32[2,3,8]\n  output \"o\" = %7\n  output \"e\" = %6\n");
        assert!(out.contains("Chain{steps=\"Add(@,$1) Tanh\"}(%0, %1)"), "{out}");
        assert!(out.contains("= Exp("), "{out}");
        assert!(out.contains("= Neg(%"), "{out}");
    }

    #[test]
    fn one_transcendental_step_per_chain() {
        // Sigmoid and Tanh in one run: the run is cut below the second one
        let out =
            run("  %3 = Sigmoid(%0): f32[2,3,8]\n  %4 = Mul(%0, %3): f32[2,3,8]\n  %5 = Add(%4, %1): f32[2,3,8]\n  \
             %6 = Tanh(%5): f32[2,3,8]\n  %7 = Sub(%6, %0): f32[2,3,8]\n  output \"o\" = %7\n");
        assert!(out.contains("= Sigmoid(%0)"), "{out}");
        let chain = out.lines().find(|l| l.contains("Chain{")).unwrap_or_default();
        assert!(chain.contains("Add(@,$2) Tanh Sub(@,$") && !chain.contains("Sigmoid"), "{out}");
    }

    #[test]
    fn broadcasting_the_stream_or_other_dtypes_is_not_chained() {
        // Add(%2, %2') grows [2,1,1] to [2,3,8]: the stream would change shape
        let out = run("  %3 = Exp(%2): f32[2,1,1]\n  %4 = Add(%3, %1): f32[2,1,8]\n  output \"o\" = %4\n");
        assert!(!out.contains("Chain"), "{out}");
        let out =
            run("  %3 = Cast{to=i32}(%0): i32[2,3,8]\n  %4 = Neg(%3): i32[2,3,8]\n  %5 = Abs(%4): i32[2,3,8]\n  \
             output \"o\" = %5\n");
        assert!(!out.contains("Chain"), "{out}");
    }
}
