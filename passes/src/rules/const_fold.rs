//! Group `const-fold`: evaluate ops whose inputs are all constants.

use egg::Id;
use kerf_ir::{eval, Op, Origin, Tensor};

use super::{add_union, rewrite, KRewrite, Rule};
use crate::analysis::{KEGraph, MemoKey};
use crate::lang::{is_tuple, KNode, NodeOp};

/// Results up to this many elements are always folded; larger ones only when
/// they are no larger than the inputs (so `Expand`/`Tile` of a constant into a
/// huge tensor stays an op).
pub const SMALL_RESULT: usize = 4096;

/// `const-fold`: matches an op node whose children are all constant classes
/// (and whose class is not yet known constant), evaluates it with
/// [`kerf_ir::eval::eval`] and unions the class (or, for multi-output ops,
/// each `Proj(i)` of it) with a new `Const`. Sound because the evaluator is
/// the IR's reference semantics; ops it cannot evaluate are left alone. The
/// result is memoized by (op, input weights), so re-matching reuses the
/// weights. New weights are `Origin::Derived` and count as parameters when
/// any input does (and they are float with more than one element).
pub struct ConstFold;

/// A `const-fold` match: the op to evaluate and the weights of its (all constant) inputs.
pub struct FoldMatch {
    op: Op,
    inputs: Vec<kerf_ir::WeightId>,
}

impl Rule for ConstFold {
    type Match = FoldMatch;
    fn name(&self) -> &'static str {
        "const-fold"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<FoldMatch>) {
        let data = &eg[class].data;
        if data.constant.is_some() {
            return;
        }
        let out_n: usize = data.types.iter().map(|t| t.numel()).sum();
        for n in &eg[class].nodes {
            let NodeOp::Op(op) = &n.op else { continue };
            if n.children.is_empty() {
                continue;
            }
            let inputs: Option<Vec<_>> = n.children.iter().map(|&c| eg[c].data.constant).collect();
            let Some(inputs) = inputs else { continue };
            let in_n: usize = inputs.iter().map(|&w| eg.analysis.weights.tensor(w).numel()).sum();
            if out_n > SMALL_RESULT && out_n > in_n {
                continue;
            }
            let key = MemoKey { rule: "const-fold", ops: vec![op.clone()], inputs: inputs.clone() };
            if matches!(eg.analysis.memo.get(&key), Some(None)) {
                continue; // the evaluator declined before
            }
            out.push(FoldMatch { op: op.clone(), inputs });
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &FoldMatch) -> Vec<Id> {
        let key = MemoKey { rule: "const-fold", ops: vec![m.op.clone()], inputs: m.inputs.clone() };
        let ws = match eg.analysis.memo.get(&key) {
            Some(r) => r.clone(),
            None => {
                let r = fold(eg, m);
                eg.analysis.memo.insert(key, r.clone());
                r
            }
        };
        let Some(ws) = ws else { return vec![] };
        let mut changed = Vec::new();
        if !is_tuple(&m.op) {
            if let Some(&w) = ws.first() {
                changed.extend(add_union(eg, class, KNode::leaf(NodeOp::Const(w))));
            }
        } else {
            for (i, &w) in ws.iter().enumerate() {
                let proj = eg.add(KNode::new(NodeOp::Proj(i as u32), vec![class]));
                changed.extend(add_union(eg, proj, KNode::leaf(NodeOp::Const(w))));
            }
        }
        changed
    }
}

/// Evaluates the match and stores its results as derived weights.
fn fold(eg: &mut KEGraph, m: &FoldMatch) -> Option<Vec<kerf_ir::WeightId>> {
    let table = &eg.analysis.weights;
    let tensors: Vec<&Tensor> = m.inputs.iter().map(|&w| table.tensor(w)).collect();
    let results = eval::eval(&m.op, &tensors).ok()?;
    let is_param = m.inputs.iter().any(|&w| table.get(w).is_param);
    let base = m.inputs.first().map(|&w| table.get(w).name.clone()).unwrap_or_default();
    let mut ids = Vec::with_capacity(results.len());
    for (i, t) in results.into_iter().enumerate() {
        let name = if i == 0 { format!("{base}.{}", m.op.name()) } else { format!("{base}.{}:{i}", m.op.name()) };
        let param = is_param && t.dtype().is_float() && t.numel() > 1;
        let w = eg.analysis.weights.add(name, t, Origin::Derived);
        eg.analysis.weights.get_mut(w).is_param = param;
        ids.push(w);
    }
    Some(ids)
}

/// The rules of group `const-fold`: [`ConstFold`].
pub fn rules() -> Vec<KRewrite> {
    vec![rewrite(ConstFold)]
}

#[cfg(test)]
mod tests {
    use crate::testutil::{run_graph, run_text};
    use crate::PassOptions;

    #[test]
    fn folds_a_constant_subgraph() {
        let out = run_text(
            "const-fold",
            r#"
graph "g"
  input %0 "x": f32[2]
  const %1 "a": f32[2] = [1.0,2.0]
  const %2 "b": f32[2] = [3.0,4.0]
  %3 = Mul(%1, %2): f32[2] @"mul"
  %4 = Neg(%3): f32[2] @"neg"
  %5 = Add(%0, %4): f32[2] @"add"
  output "y" = %5
"#,
        );
        assert_eq!(
            out,
            r#"graph "g"
  input %0 "x": f32[2]
  const %1 "neg": f32[2] = [-3.0,-8.0]
  %2 = Add(%0, %1): f32[2] @"add"
  output "y" = %2
"#
        );
    }

    #[test]
    fn folds_split_outputs() {
        let out = run_text(
            "const-fold",
            r#"
graph "g"
  input %0 "x": f32[1]
  const %1 "c": f32[3] = [1.0,2.0,3.0]
  %2, %3 = Split{axis=0, sizes=[1,2]}(%1): f32[1], f32[2] @"split"
  %4 = Add(%0, %2): f32[1] @"add"
  output "y" = %4
  output "z" = %3
"#,
        );
        assert_eq!(
            out,
            r#"graph "g"
  input %0 "x": f32[1]
  const %1 "split": f32[1] = [1.0]
  const %2 "split:1": f32[2] = [2.0,3.0]
  %3 = Add(%0, %1): f32[1] @"add"
  output "y" = %3
  output "z" = %2
"#
        );
    }

    #[test]
    fn does_not_expand_a_constant_into_a_big_tensor() {
        let src = r#"
graph "g"
  input %0 "x": f32[64,128]
  const %1 "c": f32[1] = [2.0]
  %2 = Expand{shape=[64,128]}(%1): f32[64,128] @"big"
  %3 = Expand{shape=[4,8]}(%1): f32[4,8] @"small"
  %4 = Mul(%0, %2): f32[64,128] @"mul"
  output "y" = %4
  output "z" = %3
"#;
        let out = run_text("const-fold", src);
        assert!(out.contains("Expand{shape=[64,128]}"), "{out}");
        assert!(!out.contains("Expand{shape=[4,8]}"), "{out}");
    }

    #[test]
    fn memoization_keeps_the_weight_table_small() {
        let src = r#"
graph "g"
  input %0 "x": f32[2]
  const %1 "a": f32[2] = [1.0,2.0]
  %2 = Neg(%1): f32[2] @"n1"
  %3 = Neg(%2): f32[2] @"n2"
  %4 = Neg(%3): f32[2] @"n3"
  %5 = Add(%0, %4): f32[2] @"add"
  output "y" = %5
"#;
        let g = kerf_ir::text::parse(src).unwrap();
        let opts = PassOptions { iter_limit: 50, ..PassOptions::default() };
        let (eg_weights, out) = run_graph(&g, "const-fold", &opts);
        // one input weight + three folded ones, however many iterations ran
        assert_eq!(eg_weights, 4);
        assert!(out.contains("const %1 \"n3\": f32[2] = [-1.0,-2.0]"), "{out}");
    }
}
