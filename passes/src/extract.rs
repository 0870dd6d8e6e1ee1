//! DAG-aware extraction.
//!
//! egg's `Extractor` minimises *tree* cost: a subterm used twice is paid
//! twice, so it prefers recomputing cheap-looking alternatives over sharing.
//! A program is a DAG: each chosen e-class is computed once. This extractor
//! minimises the cost of the *set* of classes a choice needs:
//!
//! 1. Greedy fixpoint: for every class and candidate node whose children
//!    all have a choice, the candidate's needed set is the union of its
//!    children's sets plus the class itself (a candidate whose children
//!    already need the class is a cycle and is skipped); its cost is the sum
//!    of the node costs in that set, each class counted once. A class takes
//!    a candidate only on strict improvement, so the sweep terminates.
//! 2. Refinement on the real objective: the cost of everything reachable
//!    from the roots. For each class with alternatives, try each one and keep
//!    it if the whole program gets strictly cheaper (this catches sharing
//!    across roots that per-class sets cannot see, e.g. a Conv whose raw
//!    output is also needed elsewhere, where folding a BatchNorm into a copy
//!    would cost a second convolution). A candidate's child classes that
//!    nothing reached yet are re-picked with it: their step-1 choice was
//!    made for the class alone.
//!
//! Determinism: classes are visited in id order and candidates in `KNode`
//! order (sorted, canonical children), and ties keep the earlier candidate.

use std::collections::{BTreeMap, HashMap};

use egg::{Id, Language};
use kerf_ir::TensorType;

use crate::analysis::KEGraph;
use crate::cost;
use crate::lang::KNode;

/// Rounds of step 2 at most (each accepts at least one strict improvement).
const MAX_REFINE_ROUNDS: usize = 8;
/// Sweeps of step 1 at most.
const MAX_SWEEPS: usize = 64;
/// Above this many classes step 1 uses tree cost instead of needed sets
/// (sets are O(classes) each, so O(classes²) memory); step 2 still works on
/// the DAG cost.
const MAX_SET_CLASSES: usize = 20_000;

/// The chosen node (with canonical children) of every class the roots need.
#[derive(Debug, Clone)]
pub struct Extraction {
    /// The chosen node of each needed class, keyed by canonical class id.
    pub choice: BTreeMap<Id, KNode>,
    /// Total cost of the chosen DAG (each class once).
    pub cost: f64,
}

struct Cand {
    node: KNode,
    children: Vec<usize>,
    cost: f64,
}

/// Extracts with the default cost model ([`cost::node_cost_with`] for the
/// code generator the analysis names).
pub fn extract(eg: &KEGraph, roots: &[Id]) -> Result<Extraction, String> {
    let int8_dot = eg.analysis.int8_dot;
    extract_with(eg, roots, |eg, class, node| {
        let ins: Vec<&[TensorType]> = node.children.iter().map(|&c| eg[c].data.types.as_slice()).collect();
        let rate = int8_dot.rate(int8_dot == crate::Int8Dot::ExactBytes && exact_bytes(eg, node));
        let rate = rate / quad_density(eg, node).unwrap_or(1.0);
        cost::node_cost_with(&node.op, &ins, &eg[class].data.types, rate)
    })
}

/// The fraction of its multiply-adds a `QConv` does on the integer
/// pattern kernel (the assembled tiles, [`kerf_ir::ChannelQuads::of_integer_conv`]),
/// `None` for any other node: its price counts only the kept taps.
fn quad_density(eg: &KEGraph, node: &KNode) -> Option<f64> {
    let crate::lang::NodeOp::Op(kerf_ir::Op::QConv(q)) = &node.op else { return None };
    if !eg.analysis.quad_tiles() {
        return None;
    }
    let w = node.children.get(1).and_then(|&c| eg[c].data.constant)?;
    let saturating = eg.analysis.int8_dot.saturates();
    let quads = kerf_ir::ChannelQuads::of_integer_conv(&q.conv, eg.analysis.weights.tensor(w), saturating)?;
    Some(quads.density().max(0.01))
}

/// Whether `node` is a `QConv` whose constant weight's byte pairs cannot
/// saturate `vpmaddubsw` ([`kerf_ir::weights_byte_pairs_exact`]).
fn exact_bytes(eg: &KEGraph, node: &KNode) -> bool {
    if !matches!(&node.op, crate::lang::NodeOp::Op(kerf_ir::Op::QConv(_))) {
        return false;
    }
    let w = node.children.get(1).and_then(|&c| eg[c].data.constant);
    w.is_some_and(|w| kerf_ir::weights_byte_pairs_exact(eg.analysis.weights.tensor(w)))
}

/// Extracts with a custom per-node cost. `eg` must be clean (rebuilt).
pub fn extract_with(
    eg: &KEGraph,
    roots: &[Id],
    cost: impl Fn(&KEGraph, Id, &KNode) -> f64,
) -> Result<Extraction, String> {
    extract_impl(eg, roots, cost, MAX_SET_CLASSES)
}

fn extract_impl(
    eg: &KEGraph,
    roots: &[Id],
    cost: impl Fn(&KEGraph, Id, &KNode) -> f64,
    max_set_classes: usize,
) -> Result<Extraction, String> {
    let Classes { ids, index, cands } = candidates(eg, cost)?;
    let idx = |id: Id| index.get(&eg.find(id)).copied();
    // Step 1: greedy fixpoint over needed sets.
    let choice = greedy(&cands, ids.len() <= max_set_classes);
    let root_idx: Vec<usize> =
        roots.iter().map(|&r| idx(r).ok_or_else(|| format!("root {r} is not an e-class"))).collect::<Result<_, _>>()?;
    for &r in &root_idx {
        if choice[r].is_none() {
            return Err(format!("class {} has no acyclic term", ids[r]));
        }
    }
    let choice: Vec<usize> = choice.into_iter().map(|c| c.unwrap_or(usize::MAX)).collect();
    // Step 2: refine on the cost of the whole program.
    let (choice, best) = refine(&cands, choice, &root_idx)?;
    let mut out = BTreeMap::new();
    for c in reach(&cands, &choice, &root_idx) {
        out.insert(ids[c], cands[c][choice[c]].node.clone());
    }
    Ok(Extraction { choice: out, cost: best })
}

/// The e-graph's classes as the extraction indexes them.
struct Classes {
    /// Every class, in id order: index `i` is class `ids[i]`.
    ids: Vec<Id>,
    /// Each class's index in `ids`.
    index: HashMap<Id, usize>,
    /// Per class (by index) its distinct nodes, children canonical, as
    /// candidates with their costs.
    cands: Vec<Vec<Cand>>,
}

/// The classes of `eg` and their candidates under `cost`.
fn candidates(eg: &KEGraph, cost: impl Fn(&KEGraph, Id, &KNode) -> f64) -> Result<Classes, String> {
    let mut ids: Vec<Id> = eg.classes().map(|c| c.id).collect();
    ids.sort();
    let index: HashMap<Id, usize> = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let idx = |id: Id| index.get(&eg.find(id)).copied();
    let mut cands: Vec<Vec<Cand>> = Vec::with_capacity(ids.len());
    for &id in &ids {
        let mut nodes: Vec<KNode> = eg[id].nodes.iter().map(|n| n.clone().map_children(|c| eg.find(c))).collect();
        nodes.sort();
        nodes.dedup();
        let mut cs = Vec::with_capacity(nodes.len());
        for node in nodes {
            let children = node.children.iter().map(|&c| idx(c)).collect::<Option<Vec<_>>>();
            let Some(children) = children else { return Err(format!("class {id} has a child outside the e-graph")) };
            let c = cost(eg, id, &node);
            cs.push(Cand { node, children, cost: c });
        }
        cands.push(cs);
    }
    Ok(Classes { ids, index, cands })
}

/// Step 1 of the extraction: each class's cheapest candidate whose
/// children have one, to a fixpoint. With `use_sets` a candidate's cost
/// counts every class it needs once (the union of its children's needed
/// sets, which also rejects cycles); without (large e-graphs) it is the
/// tree cost.
fn greedy(cands: &[Vec<Cand>], use_sets: bool) -> Vec<Option<usize>> {
    let n = cands.len();
    let mut choice: Vec<Option<usize>> = vec![None; n];
    let mut sets: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut totals: Vec<f64> = vec![f64::INFINITY; n];
    for _ in 0..MAX_SWEEPS {
        let mut changed = false;
        for c in 0..n {
            for (k, cand) in cands[c].iter().enumerate() {
                if cand.children.iter().any(|&ch| choice[ch].is_none()) {
                    continue;
                }
                if !use_sets {
                    // tree cost; cycles are impossible because a class only
                    // takes a candidate whose children were chosen earlier
                    // and strictly cheaper
                    let total = cand.cost + cand.children.iter().map(|&ch| totals[ch]).sum::<f64>();
                    if total < totals[c] && cand.children.iter().all(|&ch| totals[ch] < total) {
                        choice[c] = Some(k);
                        totals[c] = total;
                        changed = true;
                    }
                    continue;
                }
                let mut set: Vec<u32> = Vec::new();
                for &ch in &cand.children {
                    set = union(&set, &sets[ch]);
                }
                if set.binary_search(&(c as u32)).is_ok() {
                    continue; // cycle through this class
                }
                let total = cand.cost + set.iter().map(|&s| own_cost(cands, &choice, s as usize)).sum::<f64>();
                if total < totals[c] {
                    set = union(&set, &[c as u32]);
                    choice[c] = Some(k);
                    sets[c] = set;
                    totals[c] = total;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    choice
}

/// Step 2 of the extraction: every reachable class tries its other
/// candidates, each judged by the whole program's cost (children it newly
/// reaches re-picked), until no change lowers it. The choices and that cost.
fn refine(cands: &[Vec<Cand>], mut choice: Vec<usize>, root_idx: &[usize]) -> Result<(Vec<usize>, f64), String> {
    let n = cands.len();
    let mut best = dag_cost(cands, &choice, root_idx).ok_or("greedy extraction produced a cycle")?;
    for _ in 0..MAX_REFINE_ROUNDS {
        let mut improved = false;
        let reachable = reach(cands, &choice, root_idx);
        let mut reached = vec![false; n];
        reachable.iter().for_each(|&c| reached[c] = true);
        for c in reachable {
            for k in 0..cands[c].len() {
                if k == choice[c] || cands[c][k].children.iter().any(|&ch| choice[ch] == usize::MAX) {
                    continue;
                }
                let old = choice[c];
                choice[c] = k;
                let (cost, repicked) = repick_new_children(cands, &mut choice, root_idx, &reached, c);
                match cost {
                    Some(t) if t < best => {
                        best = t;
                        improved = true;
                        reached.fill(false);
                        reach(cands, &choice, root_idx).iter().for_each(|&c| reached[c] = true);
                    }
                    _ => {
                        choice[c] = old;
                        repicked.into_iter().rev().for_each(|(ch, was)| choice[ch] = was);
                    }
                }
            }
        }
        if !improved {
            break;
        }
    }
    Ok((choice, best))
}

/// The whole program's cost after class `c` took a new candidate, with each
/// child class that candidate newly reaches (`reached` is the set before)
/// re-picked in this context, and the children it re-picked with their
/// old choices. A class nothing reached kept its step-1 choice, made for
/// the class alone: a quantiser that recomputes its producer's conv is
/// cheaper alone than one reading it, yet not beside a node that needs
/// the conv anyway (ResNet-18's int8 downsample convs stayed f32 for this).
fn repick_new_children(
    cands: &[Vec<Cand>],
    choice: &mut [usize],
    roots: &[usize],
    reached: &[bool],
    c: usize,
) -> (Option<f64>, Vec<(usize, usize)>) {
    let mut cost = dag_cost(cands, choice, roots);
    let mut repicked = Vec::new();
    for &ch in &cands[c][choice[c]].children {
        if reached[ch] || ch == c {
            continue;
        }
        let was = choice[ch];
        for alt in 0..cands[ch].len() {
            if alt == choice[ch] || cands[ch][alt].children.iter().any(|&g| choice[g] == usize::MAX) {
                continue;
            }
            let prev = choice[ch];
            choice[ch] = alt;
            match dag_cost(cands, choice, roots) {
                Some(t) if cost.is_none_or(|best| t < best) => cost = Some(t),
                _ => choice[ch] = prev,
            }
        }
        if choice[ch] != was {
            repicked.push((ch, was));
        }
    }
    (cost, repicked)
}

fn own_cost(cands: &[Vec<Cand>], choice: &[Option<usize>], c: usize) -> f64 {
    choice[c].map_or(f64::INFINITY, |k| cands[c][k].cost)
}

/// Sorted union of two sorted sets.
fn union(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let x = a.get(i).copied().unwrap_or(u32::MAX);
        let y = b.get(j).copied().unwrap_or(u32::MAX);
        if x < y {
            out.push(x);
            i += 1;
        } else if y < x {
            out.push(y);
            j += 1;
        } else {
            out.push(x);
            i += 1;
            j += 1;
        }
    }
    out
}

/// Classes reachable from the roots under `choice`, sorted.
fn reach(cands: &[Vec<Cand>], choice: &[usize], roots: &[usize]) -> Vec<usize> {
    let mut seen = vec![false; cands.len()];
    let mut stack: Vec<usize> = roots.to_vec();
    let mut out = Vec::new();
    while let Some(c) = stack.pop() {
        if seen[c] {
            continue;
        }
        seen[c] = true;
        out.push(c);
        if let Some(cand) = cands[c].get(choice[c]) {
            stack.extend(cand.children.iter().copied());
        }
    }
    out.sort_unstable();
    out
}

/// Cost of everything reachable from the roots, or `None` on a cycle or a
/// class without a choice. One depth-first pass does both the sum and the
/// cycle check: it runs once per candidate change in the refinement loop,
/// where building a `petgraph` graph each time would cost more than the
/// walk (the converter's final order uses `kerf_ir::order`, which names a
/// cycle if one ever got through).
fn dag_cost(cands: &[Vec<Cand>], choice: &[usize], roots: &[usize]) -> Option<f64> {
    // 0 = unvisited, 1 = on the stack, 2 = done
    let mut state = vec![0u8; cands.len()];
    let mut total = 0.0;
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for &r in roots {
        if state[r] == 2 {
            continue;
        }
        stack.push((r, 0));
        state[r] = 1;
        while let Some(&mut (c, ref mut next)) = stack.last_mut() {
            let cand = cands[c].get(choice[c])?;
            if let Some(&ch) = cand.children.get(*next) {
                *next += 1;
                match state[ch] {
                    0 => {
                        state[ch] = 1;
                        stack.push((ch, 0));
                    }
                    1 => return None,
                    _ => {}
                }
            } else {
                state[c] = 2;
                total += cand.cost;
                stack.pop();
            }
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::KerfAnalysis;
    use crate::lang::NodeOp;
    use egg::{CostFunction, Extractor, Language};
    use kerf_ir::{BinaryOp, DType, Op, UnaryOp, WeightTable};

    /// Costs by op name, for tests that need exact numbers.
    fn test_cost(op: &NodeOp) -> f64 {
        match op {
            NodeOp::Op(Op::Unary(UnaryOp::Exp)) => 100.0,
            NodeOp::Op(Op::Binary(BinaryOp::Add)) => 10.0,
            NodeOp::Op(Op::Unary(UnaryOp::Abs)) => 150.0,
            NodeOp::Op(_) => 1.0,
            _ => 0.0,
        }
    }

    struct TreeCost;
    impl CostFunction<KNode> for TreeCost {
        type Cost = f64;
        fn cost<C: FnMut(Id) -> f64>(&mut self, enode: &KNode, mut costs: C) -> f64 {
            enode.fold(test_cost(&enode.op), |s, id| s + costs(id))
        }
    }

    #[test]
    fn shared_subterm_is_counted_once() {
        let t = kerf_ir::TensorType::new(DType::F32, vec![4]);
        let mut eg = KEGraph::new(KerfAnalysis::new(WeightTable::new(), vec![t]));
        let x = eg.add(KNode::leaf(NodeOp::Input(0)));
        let s = eg.add(KNode::op(Op::Unary(UnaryOp::Exp), vec![x]));
        let a = eg.add(KNode::op(Op::Binary(BinaryOp::Add), vec![s, s]));
        let b = eg.add(KNode::op(Op::Unary(UnaryOp::Abs), vec![x]));
        // Pretend a rule proved Add(Exp x, Exp x) == Abs(x): tree cost
        // 10 + 100 + 100 = 210 > 150, DAG cost 10 + 100 = 110 < 150.
        eg.union(a, b);
        eg.rebuild();
        let root = eg.find(a);
        let (tree_cost, tree) = Extractor::new(&eg, TreeCost).find_best(root);
        assert_eq!(tree_cost, 150.0);
        assert_eq!(tree.to_string(), "(Abs \"Input(0)\")");
        let ours = extract_with(&eg, &[root], |_, _, n| test_cost(&n.op)).unwrap();
        assert_eq!(ours.cost, 110.0);
        assert_eq!(ours.choice[&root].to_string(), "Add");
        assert_eq!(ours.choice.len(), 3, "{:?}", ours.choice);
    }

    #[test]
    fn refinement_fixes_a_tree_cost_start() {
        // Same e-graph as above, but step 1 uses tree cost (as it does on
        // huge graphs): it starts from Abs and step 2 must move to Add.
        let t = kerf_ir::TensorType::new(DType::F32, vec![4]);
        let mut eg = KEGraph::new(KerfAnalysis::new(WeightTable::new(), vec![t]));
        let x = eg.add(KNode::leaf(NodeOp::Input(0)));
        let s = eg.add(KNode::op(Op::Unary(UnaryOp::Exp), vec![x]));
        let a = eg.add(KNode::op(Op::Binary(BinaryOp::Add), vec![s, s]));
        let b = eg.add(KNode::op(Op::Unary(UnaryOp::Abs), vec![x]));
        eg.union(a, b);
        eg.rebuild();
        let root = eg.find(a);
        let ex = extract_impl(&eg, &[root], |_, _, n| test_cost(&n.op), 0).unwrap();
        assert_eq!(ex.cost, 110.0);
        assert_eq!(ex.choice[&root].to_string(), "Add");
    }

    #[test]
    fn refinement_repicks_the_classes_a_new_candidate_reaches() {
        // P = Exp x is needed anyway (W reads it). Q = Abs P, or Sqrt x, a
        // recomputation that is cheaper for Q alone (100 against 110), so
        // step 1 gives Q the Sqrt. Y = Mul(P, W) (151 with P, W) or
        // Add(Q, W): 206 with Q's Sqrt, 116 with its Abs. Trying Add for Y
        // alone keeps Sqrt for Q, which nothing reached: a local minimum
        // unless the new child is re-picked with the move.
        let t = kerf_ir::TensorType::new(DType::F32, vec![4]);
        let mut eg = KEGraph::new(KerfAnalysis::new(WeightTable::new(), vec![t]));
        let x = eg.add(KNode::leaf(NodeOp::Input(0)));
        let p = eg.add(KNode::op(Op::Unary(UnaryOp::Exp), vec![x]));
        let w = eg.add(KNode::op(Op::Unary(UnaryOp::Neg), vec![p]));
        let qa = eg.add(KNode::op(Op::Unary(UnaryOp::Abs), vec![p]));
        let qr = eg.add(KNode::op(Op::Unary(UnaryOp::Sqrt), vec![x]));
        eg.union(qa, qr);
        let f = eg.add(KNode::op(Op::Binary(BinaryOp::Mul), vec![p, w]));
        let i = eg.add(KNode::op(Op::Binary(BinaryOp::Add), vec![qa, w]));
        eg.union(f, i);
        eg.rebuild();
        let root = eg.find(f);
        let cost = |n: &KNode| match n.kerf_op() {
            Some(Op::Unary(UnaryOp::Exp | UnaryOp::Sqrt)) => 100.0,
            Some(Op::Unary(UnaryOp::Abs)) => 10.0,
            Some(Op::Binary(BinaryOp::Mul)) => 50.0,
            Some(Op::Binary(BinaryOp::Add)) => 5.0,
            Some(_) => 1.0,
            None => 0.0,
        };
        let ex = extract_with(&eg, &[root], |_, _, n| cost(n)).unwrap();
        assert_eq!(ex.cost, 116.0);
        assert_eq!(ex.choice[&root].to_string(), "Add");
        assert_eq!(ex.choice[&eg.find(qa)].to_string(), "Abs");
    }

    #[test]
    fn cycles_are_never_chosen() {
        let t = kerf_ir::TensorType::new(DType::F32, vec![4]);
        let mut eg = KEGraph::new(KerfAnalysis::new(WeightTable::new(), vec![t]));
        let x = eg.add(KNode::leaf(NodeOp::Input(0)));
        let id = eg.add(KNode::op(Op::Identity, vec![x]));
        eg.union(id, x);
        eg.rebuild();
        let r = eg.find(x);
        // Identity(r) is in class r itself and would be free under this cost.
        let ex = extract_with(&eg, &[r], |_, _, n| if n.kerf_op().is_some() { 0.0 } else { 1.0 }).unwrap();
        assert_eq!(ex.choice[&r], KNode::leaf(NodeOp::Input(0)));
    }
}
