//! The e-class analysis: the facts every class carries.
//!
//! Contract: every e-class has [`ClassData::types`] (one [`TensorType`] per
//! output; a tuple class of a multi-output op has several, every other class
//! exactly one) and [`ClassData::constant`] (`Some(w)` when the class is known
//! to equal weight `w`). `make` derives types with [`kerf_ir::infer::infer`]
//! from the children's facts, so a rewrite can never change a type silently.
//!
//! Merging two classes whose facts disagree (different output count, dtype or
//! shape, or two constants with different contents) means a rule equated
//! values that are not equal: a compiler bug. It is recorded in
//! [`KerfAnalysis::contradiction`] (the runner turns it into
//! [`crate::PassError::Contradiction`]) and, when `strict` is set (the
//! default), also trips a `debug_assert!` so tests fail at the source.
//!
//! The analysis owns the [`WeightTable`] so appliers can add derived weights,
//! and the memo tables that keep those appliers from creating a new weight
//! every time they re-match.

use std::cell::Cell;
use std::collections::HashMap;

use egg::{Analysis, DidMerge, EGraph, Id};
use kerf_ir::{infer, Op, TensorType, WeightId, WeightTable};

use crate::lang::{KNode, NodeOp};

/// The e-graph of kerf's language ([`KNode`]) with its analysis.
pub type KEGraph = EGraph<KNode, KerfAnalysis>;

/// Facts of one e-class.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassData {
    /// One type per output (several only for tuple classes).
    pub types: Vec<TensorType>,
    /// The weight this class is known to equal.
    pub constant: Option<WeightId>,
}

impl ClassData {
    /// The type of a single-output class.
    pub fn ty(&self) -> Option<&TensorType> {
        match self.types.as_slice() {
            [t] => Some(t),
            _ => None,
        }
    }
}

/// What an applier that creates weights memoizes: the rule, the ops whose
/// attributes matter and the source weights.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MemoKey {
    /// Name of the rule whose applier created the weights.
    pub rule: &'static str,
    /// The matched ops whose attributes determine the result.
    pub ops: Vec<Op>,
    /// The source weights the result is computed from.
    pub inputs: Vec<WeightId>,
}

/// The e-class analysis: derives each class's [`ClassData`], detects contradictions, and owns
/// the weight table and applier memo tables (see the module docs).
#[derive(Debug)]
pub struct KerfAnalysis {
    /// Every constant of the graph plus the ones rules derived.
    pub weights: WeightTable,
    /// Types of the graph inputs, for `Input(i)` leaves.
    pub input_types: Vec<TensorType>,
    /// Results of weight-creating appliers, by source (`None`: the rule
    /// declined, e.g. the evaluator cannot compute the op).
    pub memo: HashMap<MemoKey, Option<Vec<WeightId>>>,
    /// The first contradiction seen, with the rule that was applying.
    pub contradiction: Option<String>,
    /// Name of the rule whose applier is running (set by the rule adapter).
    pub current_rule: Option<&'static str>,
    /// The classes of the first contradiction, when it came from a union.
    pub contradiction_classes: Option<(Id, Id)>,
    /// Whether a contradiction also trips `debug_assert!`.
    pub strict: bool,
    /// [`crate::PassOptions::wide_patterns`], for the rules that price by it.
    pub wide_patterns: bool,
    /// [`crate::PassOptions::int8_dot`], for the extraction cost.
    pub int8_dot: crate::Int8Dot,
    /// [`crate::PassOptions::int8_depthwise`], for the `int8` group.
    pub int8_depthwise: bool,
    /// The pair being unioned (set by `pre_union`, read by `merge`).
    last_union: Cell<Option<(Id, Id)>>,
}

impl KerfAnalysis {
    /// An analysis owning `weights`, with `input_types[i]` the type of `Input(i)` leaves; strict,
    /// with empty memo tables and no contradiction.
    pub fn new(weights: WeightTable, input_types: Vec<TensorType>) -> KerfAnalysis {
        KerfAnalysis {
            weights,
            input_types,
            memo: HashMap::new(),
            contradiction: None,
            current_rule: None,
            contradiction_classes: None,
            strict: true,
            wide_patterns: false,
            int8_dot: crate::Int8Dot::Pairs,
            int8_depthwise: false,
            last_union: Cell::new(None),
        }
    }

    /// Whether the code generator has the integer pattern kernel: the
    /// assembled pattern tiles ([`KerfAnalysis::wide_patterns`]) taking
    /// byte quads, which every target whose integer conv multiplies byte
    /// quads has ([`crate::Int8Dot::byte_quads`]; AArch64 `baseline` has
    /// the f32 tiles only).
    pub fn quad_tiles(&self) -> bool {
        self.wide_patterns && self.int8_dot.byte_quads()
    }

    /// Records a contradiction (keeping the first) and, if strict, panics in
    /// debug builds.
    pub fn contradict(&mut self, what: String) {
        let msg = match self.current_rule {
            Some(rule) => format!("rule '{rule}': {what}"),
            None => format!("outside any rule (construction or congruence in rebuild): {what}"),
        };
        debug_assert!(!self.strict, "e-graph contradiction: {msg}");
        if self.contradiction.is_none() {
            self.contradiction = Some(msg);
            self.contradiction_classes = self.last_union.get();
        }
    }
}

fn types_text(ts: &[TensorType]) -> String {
    let v: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
    format!("({})", v.join(", "))
}

impl Analysis<KNode> for KerfAnalysis {
    type Data = ClassData;

    fn make(egraph: &mut KEGraph, enode: &KNode, id: Id) -> ClassData {
        egraph.analysis.last_union.set(Some((id, id)));
        match &enode.op {
            NodeOp::Input(i) => {
                let types = egraph.analysis.input_types.get(*i as usize).cloned().into_iter().collect();
                ClassData { types, constant: None }
            }
            NodeOp::Const(w) => {
                let t = egraph.analysis.weights.tensor(*w);
                ClassData { types: vec![TensorType::new(t.dtype(), t.shape().to_vec())], constant: Some(*w) }
            }
            NodeOp::Proj(i) => {
                let types = enode
                    .children
                    .first()
                    .and_then(|&c| egraph[c].data.types.get(*i as usize).cloned())
                    .into_iter()
                    .collect::<Vec<_>>();
                if types.is_empty() {
                    egraph.analysis.contradict(format!("Proj({i}) of a class without output {i}"));
                }
                ClassData { types, constant: None }
            }
            NodeOp::Op(op) => {
                let mut ins: Vec<TensorType> = Vec::with_capacity(enode.children.len());
                let mut bad = None;
                for &c in &enode.children {
                    match egraph[c].data.ty() {
                        Some(t) => ins.push(t.clone()),
                        None => bad = Some(format!("{} takes a tuple class as an input", op.name())),
                    }
                }
                let types = match bad {
                    Some(msg) => Err(msg),
                    None => {
                        let refs: Vec<&TensorType> = ins.iter().collect();
                        infer::infer(op, &refs).map_err(|m| format!("built an ill-typed {}: {m}", op.name()))
                    }
                };
                match types {
                    Ok(types) => ClassData { types, constant: None },
                    Err(msg) => {
                        egraph.analysis.contradict(msg);
                        ClassData { types: vec![], constant: None }
                    }
                }
            }
        }
    }

    fn pre_union(egraph: &KEGraph, id1: Id, id2: Id, _why: &Option<egg::Justification>) {
        egraph.analysis.last_union.set(Some((id1, id2)));
    }

    fn merge(&mut self, a: &mut ClassData, b: ClassData) -> DidMerge {
        let same_types = a.types.len() == b.types.len()
            && a.types.iter().zip(&b.types).all(|(x, y)| x.dtype == y.dtype && x.shape == y.shape);
        if !same_types {
            self.contradict(format!(
                "merged classes of different types {} and {}",
                types_text(&a.types),
                types_text(&b.types)
            ));
            return DidMerge(false, true);
        }
        let mut a_changed = false;
        let mut b_changed = false;
        // Grids: keep whichever side knows one; two different grids mean
        // the classes compute different functions of the same integers.
        for (i, (x, y)) in a.types.iter_mut().zip(&b.types).enumerate() {
            match (&x.quant, &y.quant) {
                (None, Some(q)) => {
                    x.quant = Some(q.clone());
                    a_changed = true;
                }
                (Some(_), None) => b_changed = true,
                (Some(p), Some(q)) if !p.same_grid(q, &self.weights) => {
                    let msg = format!("merged classes whose output {i} has two different quantisation grids");
                    self.contradict(msg);
                    return DidMerge(false, true);
                }
                _ => {}
            }
        }
        match (a.constant, b.constant) {
            (None, Some(w)) => {
                a.constant = Some(w);
                a_changed = true;
            }
            (Some(_), None) => b_changed = true,
            (Some(x), Some(y)) if x != y => {
                if self.weights.tensor(x) == self.weights.tensor(y) {
                    // Equal contents: keep the older weight so output is stable.
                    let keep = x.min(y);
                    a_changed |= keep != x;
                    b_changed |= keep != y;
                    a.constant = Some(keep);
                } else {
                    let (nx, ny) = (self.weights.get(x).name.clone(), self.weights.get(y).name.clone());
                    self.contradict(format!("merged different constants '{nx}' (#{}) and '{ny}' (#{})", x.0, y.0));
                    b_changed = true;
                }
            }
            _ => {}
        }
        DidMerge(a_changed, b_changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kerf_ir::{Origin, Tensor};

    fn graph_with(a: &[f32], b: &[f32]) -> (KEGraph, Id, Id) {
        let mut w = WeightTable::new();
        let wa = w.add("a", Tensor::from_f32(vec![2], a).unwrap(), Origin::Initializer);
        let wb = w.add("b", Tensor::from_f32(vec![2], b).unwrap(), Origin::Initializer);
        let mut eg = KEGraph::new(KerfAnalysis::new(w, vec![]));
        eg.analysis.strict = false;
        let ca = eg.add(KNode::leaf(NodeOp::Const(wa)));
        let cb = eg.add(KNode::leaf(NodeOp::Const(wb)));
        (eg, ca, cb)
    }

    #[test]
    fn equal_constants_merge_quietly() {
        let (mut eg, ca, cb) = graph_with(&[1.0, 2.0], &[1.0, 2.0]);
        eg.union(cb, ca);
        eg.rebuild();
        assert_eq!(eg.analysis.contradiction, None);
        assert_eq!(eg[ca].data.constant, Some(WeightId(0)), "the older weight is kept");
    }

    #[test]
    fn different_constants_contradict() {
        let (mut eg, ca, cb) = graph_with(&[1.0, 2.0], &[1.0, 3.0]);
        eg.union(ca, cb);
        let msg = eg.analysis.contradiction.clone().unwrap();
        assert!(msg.contains("merged different constants 'a' (#0) and 'b' (#1)"), "{msg}");
    }

    #[test]
    fn ill_typed_nodes_contradict() {
        let (mut eg, ca, _) = graph_with(&[1.0, 2.0], &[1.0, 3.0]);
        eg.add(KNode::op(Op::Reshape { shape: vec![3] }, vec![ca]));
        let msg = eg.analysis.contradiction.clone().unwrap();
        assert!(
            msg.starts_with("outside any rule (construction or congruence in rebuild): built an ill-typed Reshape"),
            "{msg}"
        );
    }
}
