//! Graph → e-graph and extraction → Graph.
//!
//! Building the e-graph remembers what the plain graph knows beyond the
//! dataflow ([`Meta`]): graph name, input order, names and types, output
//! names, value names and node names. Going back, the extracted choice is
//! emitted in an order close to the original (a topological sort keyed by
//! each class's original node position), names are restored: a node that
//! survived unchanged keeps its name; a node a rewrite produced is named
//! after the node whose value it now computes (`"<name>.<Op>"`). Layer
//! identities live in the ops themselves, which rules copy. The result is
//! validated and compacted.

use std::collections::{HashMap, HashSet};

use egg::{Id, Language};
use kerf_ir::{Graph, TensorType, ValueDef, ValueId};

use crate::analysis::{KEGraph, KerfAnalysis};
use crate::extract::Extraction;
use crate::lang::{is_tuple, KNode, NodeOp};
use crate::PassError;

/// What the source graph knew beyond the e-graph.
#[derive(Debug, Clone)]
pub struct Meta {
    /// The source graph's name.
    pub name: String,
    /// Name and type of every graph input, in order (entry `i` is the `Input(i)` leaf).
    pub inputs: Vec<(String, TensorType)>,
    /// Output names and their classes (as built; canonicalise with `find`).
    pub outputs: Vec<(String, Id)>,
    /// Class of every source value, in value order.
    pub value_classes: Vec<(Id, String)>,
    /// Every source node: name, the e-node as built, its class.
    pub nodes: Vec<(String, KNode, Id)>,
}

impl Meta {
    /// A readable name for a class, for error messages.
    pub fn describe(&self, eg: &KEGraph, class: Id) -> String {
        let c = eg.find(class);
        let mut what: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, _, id)| eg.find(*id) == c)
            .map(|(name, n, _)| format!("node '{name}' ({n})"))
            .collect();
        for (i, (name, _)) in self.inputs.iter().enumerate() {
            if eg.lookup(KNode::leaf(NodeOp::Input(i as u32))) == Some(c) {
                what.push(format!("input '{name}'"));
            }
        }
        if what.is_empty() {
            format!("class {c}")
        } else {
            format!("class {c}: {}", what.join(", "))
        }
    }
}

/// Builds the e-graph of a validated graph.
pub fn to_egraph(g: &Graph, strict: bool) -> Result<(KEGraph, Meta), PassError> {
    g.validate()?;
    let input_types: Vec<TensorType> = g.inputs.iter().map(|&v| g.ty(v).clone()).collect();
    let mut analysis = KerfAnalysis::new(g.weights.clone(), input_types);
    analysis.strict = strict;
    let mut eg = KEGraph::new(analysis);
    let mut class_of: Vec<Option<Id>> = vec![None; g.values.len()];
    for (i, v) in g.values.iter().enumerate() {
        let leaf = match v.def {
            ValueDef::Input(k) => NodeOp::Input(k as u32),
            ValueDef::Const(w) => NodeOp::Const(w),
            ValueDef::Node { .. } => continue,
        };
        class_of[i] = Some(eg.add(KNode::leaf(leaf)));
    }
    let mut nodes = Vec::with_capacity(g.nodes.len());
    for n in &g.nodes {
        let children = n
            .inputs
            .iter()
            .map(|v| class_of.get(v.0 as usize).copied().flatten())
            .collect::<Option<Vec<Id>>>()
            .ok_or_else(|| PassError::Convert(format!("node '{}' reads a value defined later", n.name)))?;
        let knode = KNode::op(n.op.clone(), children);
        let id = eg.add(knode.clone());
        nodes.push((n.name.clone(), knode, id));
        if !is_tuple(&n.op) {
            if let Some(o) = n.outputs.first() {
                class_of[o.0 as usize] = Some(id);
            }
        } else {
            for (k, o) in n.outputs.iter().enumerate() {
                class_of[o.0 as usize] = Some(eg.add(KNode::new(NodeOp::Proj(k as u32), vec![id])));
            }
        }
    }
    // Grids are not inferred: copy them from the graph. Two values that
    // hash-cons to one class with different grids contradict each other.
    for (i, v) in g.values.iter().enumerate() {
        let (Some(q), Some(id)) = (&v.ty.quant, class_of[i]) else { continue };
        let known = eg[id].data.types.first().and_then(|t| t.quant.clone());
        match known {
            Some(k) if !k.same_grid(q, &eg.analysis.weights) => {
                // the input's fault, not a rule's: an error, never the
                // strict-mode assertion
                let what = format!("value '{}' and an identical computation have different quantisation grids", v.name);
                eg.analysis.contradiction.get_or_insert(what);
            }
            Some(_) => {}
            None => {
                if let Some(t) = eg[id].data.types.first_mut() {
                    t.quant = Some(q.clone());
                }
            }
        }
    }
    eg.rebuild();
    let value_classes =
        g.values.iter().enumerate().filter_map(|(i, v)| class_of[i].map(|c| (c, v.name.clone()))).collect();
    let outputs = g
        .outputs
        .iter()
        .map(|o| {
            class_of
                .get(o.value.0 as usize)
                .copied()
                .flatten()
                .map(|c| (o.name.clone(), c))
                .ok_or_else(|| PassError::Convert(format!("output '{}' is undefined", o.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let meta = Meta {
        name: g.name.clone(),
        inputs: g.inputs.iter().map(|&v| (g.value(v).name.clone(), g.ty(v).clone())).collect(),
        outputs,
        value_classes,
        nodes,
    };
    if let Some(msg) = &eg.analysis.contradiction {
        return Err(PassError::Convert(format!("the input graph is inconsistent: {msg}")));
    }
    Ok((eg, meta))
}

/// The canonical roots (output classes) of the e-graph.
pub fn roots(eg: &KEGraph, meta: &Meta) -> Vec<Id> {
    meta.outputs.iter().map(|(_, c)| eg.find(*c)).collect()
}

/// Emits the extracted program as a validated, compacted graph.
pub fn to_graph(eg: &KEGraph, meta: &Meta, ex: &Extraction) -> Result<Graph, PassError> {
    let roots = roots(eg, meta);
    let order = emission_order(eg, meta, ex, &roots)?;
    let mut e = Emitter::new(eg, meta, ex);
    for &u in &order {
        e.node(u)?;
    }
    for ((name, _), &r) in meta.outputs.iter().zip(&roots) {
        let v = e.value(r)?;
        e.g.add_output(name.clone(), v);
    }
    let g = e.g;
    g.validate()?;
    let g = g.compact();
    g.validate()?;
    Ok(g)
}

/// The extracted choice of class `c`.
fn chosen<'a>(eg: &KEGraph, ex: &'a Extraction, c: Id) -> Result<&'a KNode, PassError> {
    ex.choice.get(&eg.find(c)).ok_or_else(|| PassError::Convert(format!("class {c} was not extracted")))
}

/// The emission unit computing class `c`: itself when its choice is an op,
/// the tuple a `Proj` reads, `None` for a leaf (resolved on use).
fn unit_of(eg: &KEGraph, ex: &Extraction, c: Id) -> Result<Option<Id>, PassError> {
    let c = eg.find(c);
    Ok(match &chosen(eg, ex, c)?.op {
        NodeOp::Op(_) => Some(c),
        NodeOp::Proj(_) => chosen(eg, ex, c)?.children.first().map(|&t| eg.find(t)),
        _ => None,
    })
}

/// The classes reachable from the roots under the extraction, in
/// postorder (children first).
fn postorder(eg: &KEGraph, ex: &Extraction, roots: &[Id]) -> Result<Vec<Id>, PassError> {
    let mut post: Vec<Id> = Vec::new();
    let mut seen: HashSet<Id> = HashSet::new();
    for &r in roots {
        let mut stack = vec![(r, false)];
        while let Some((c, done)) = stack.pop() {
            if done {
                post.push(c);
                continue;
            }
            if !seen.insert(c) {
                continue;
            }
            stack.push((c, true));
            for &ch in chosen(eg, ex, c)?.children.iter().rev() {
                let ch = eg.find(ch);
                if !seen.contains(&ch) {
                    stack.push((ch, false));
                }
            }
        }
    }
    Ok(post)
}

/// The order ops are emitted in: a topological order of the units keyed by
/// the position of the class's first original node (a class without one
/// takes the least key of its consumers), postorder breaking ties, so a
/// graph the rewrites did not change comes back in its own order. An
/// extracted cycle is an error naming its classes.
fn emission_order(eg: &KEGraph, meta: &Meta, ex: &Extraction, roots: &[Id]) -> Result<Vec<Id>, PassError> {
    let post = postorder(eg, ex, roots)?;
    let post_idx: HashMap<Id, usize> = post.iter().enumerate().map(|(i, &c)| (c, i)).collect();
    let mut orig_pos: HashMap<Id, usize> = HashMap::new();
    for (i, (_, _, id)) in meta.nodes.iter().enumerate() {
        orig_pos.entry(eg.find(*id)).or_insert(i);
    }
    let mut key: HashMap<Id, usize> = HashMap::new();
    for &c in post.iter().rev() {
        let k = orig_pos.get(&c).copied().unwrap_or_else(|| key.get(&c).copied().unwrap_or(usize::MAX));
        key.insert(c, k);
        for &ch in &chosen(eg, ex, c)?.children {
            let e = key.entry(eg.find(ch)).or_insert(usize::MAX);
            *e = (*e).min(k);
        }
    }
    let mut units: Vec<Id> = Vec::new();
    for &c in &post {
        if unit_of(eg, ex, c)? == Some(c) {
            units.push(c);
        }
    }
    let index: HashMap<Id, usize> = units.iter().enumerate().map(|(i, &u)| (u, i)).collect();
    let mut edges = Vec::new();
    for (i, &u) in units.iter().enumerate() {
        for &ch in &chosen(eg, ex, u)?.children {
            if let Some(d) = unit_of(eg, ex, ch)? {
                edges.push((index[&d], i));
            }
        }
    }
    let prio = |i: usize| (key.get(&units[i]).copied().unwrap_or(usize::MAX), post_idx[&units[i]]);
    match kerf_ir::order::toposort_by(units.len(), edges, prio) {
        Ok(order) => Ok(order.into_iter().map(|i| units[i]).collect()),
        Err(cycle) => {
            let classes: Vec<String> = cycle.iter().map(|&i| meta.describe(eg, units[i])).collect();
            Err(PassError::Convert(format!("extracted program has a cycle through {}", classes.join("; "))))
        }
    }
}

/// Builds the graph unit by unit: names restored, leaves created on first
/// use, quantisation facts of the classes carried to the values.
struct Emitter<'a> {
    eg: &'a KEGraph,
    ex: &'a Extraction,
    g: Graph,
    inputs: Vec<ValueId>,
    outs_of: HashMap<Id, Vec<ValueId>>,
    leaf_val: HashMap<Id, ValueId>,
    used_names: HashSet<String>,
    /// An original node's name, by its canonical e-node.
    orig_name: HashMap<KNode, &'a str>,
    /// The first original node's name, by class.
    class_node_name: HashMap<Id, &'a str>,
    /// The first original value's name, by class.
    value_name: HashMap<Id, &'a str>,
}

impl<'a> Emitter<'a> {
    fn new(eg: &'a KEGraph, meta: &'a Meta, ex: &'a Extraction) -> Emitter<'a> {
        let mut orig_name: HashMap<KNode, &str> = HashMap::new();
        let mut class_node_name: HashMap<Id, &str> = HashMap::new();
        for (name, n, id) in &meta.nodes {
            orig_name.entry(n.clone().map_children(|c| eg.find(c))).or_insert(name.as_str());
            class_node_name.entry(eg.find(*id)).or_insert(name.as_str());
        }
        let mut value_name: HashMap<Id, &str> = HashMap::new();
        for (c, name) in &meta.value_classes {
            value_name.entry(eg.find(*c)).or_insert(name.as_str());
        }
        let mut g = Graph::new(meta.name.clone());
        g.weights = eg.analysis.weights.clone();
        let inputs = meta.inputs.iter().map(|(n, t)| g.add_input(n.clone(), t.clone())).collect();
        Emitter {
            eg,
            ex,
            g,
            inputs,
            outs_of: HashMap::new(),
            leaf_val: HashMap::new(),
            used_names: HashSet::new(),
            orig_name,
            class_node_name,
            value_name,
        }
    }

    /// The value of class `c`, creating leaf values on first use.
    fn value(&mut self, c: Id) -> Result<ValueId, PassError> {
        let c = self.eg.find(c);
        if let Some(v) = self.leaf_val.get(&c) {
            return Ok(*v);
        }
        let n = chosen(self.eg, self.ex, c)?;
        let missing = || PassError::Convert(format!("class {c} ({n}) used before it is computed"));
        let v = match &n.op {
            NodeOp::Input(k) => *self.inputs.get(*k as usize).ok_or_else(missing)?,
            NodeOp::Const(w) => {
                let v = self.g.add_const_ref(*w);
                if let Some(name) = self.value_name.get(&c) {
                    self.g.values[v.0 as usize].name = (*name).to_string();
                }
                v
            }
            NodeOp::Op(_) => return self.outs_of.get(&c).and_then(|o| o.first().copied()).ok_or_else(missing),
            NodeOp::Proj(k) => {
                let t = n.children.first().map(|&t| self.eg.find(t)).ok_or_else(missing)?;
                return self.outs_of.get(&t).and_then(|o| o.get(*k as usize).copied()).ok_or_else(missing);
            }
        };
        self.leaf_val.insert(c, v);
        Ok(v)
    }

    /// A node's name: the original node's when it survived unchanged,
    /// else `"<name of the class's first node>.<Op>"`; in a class no
    /// original node computed (a rule made it: a requantising conv in the
    /// class of the quantiser another rule wrote) `"<layer>.<Op>"` for an
    /// op with a layer identity, else `"<Op>.<class>"`; made unique.
    fn node_name(&mut self, u: Id, n: &KNode, op: &kerf_ir::Op) -> String {
        let layer = op.layer().filter(|l| !l.0.is_empty());
        let base = match (self.orig_name.get(n), self.class_node_name.get(&u), layer) {
            (Some(name), _, _) => (*name).to_string(),
            (None, Some(b), _) => format!("{b}.{}", op.name()),
            (None, None, Some(l)) => format!("{}.{}", l.0, op.name()),
            (None, None, None) => format!("{}.{u}", op.name()),
        };
        let mut name = base.clone();
        let mut k = 1;
        while !self.used_names.insert(name.clone()) {
            name = format!("{base}.{k}");
            k += 1;
        }
        name
    }

    /// Emits unit `u` (an op class) after its inputs.
    fn node(&mut self, u: Id) -> Result<(), PassError> {
        let (eg, ex) = (self.eg, self.ex);
        let n = chosen(eg, ex, u)?;
        let NodeOp::Op(op) = &n.op else { return Ok(()) };
        let ins = n.children.iter().map(|&ch| self.value(ch)).collect::<Result<Vec<_>, _>>()?;
        let name = self.node_name(u, n, op);
        let outs = self.g.add_node(name, op.clone(), ins)?;
        // Value names and quantisation facts of the class(es) computed.
        for (k, &o) in outs.iter().enumerate() {
            let cls = if !is_tuple(op) { Some(u) } else { eg.lookup(KNode::new(NodeOp::Proj(k as u32), vec![u])) };
            if let Some(vn) = cls.and_then(|c| self.value_name.get(&eg.find(c))) {
                self.g.values[o.0 as usize].name = (*vn).to_string();
            }
            let q = cls.and_then(|c| eg[c].data.ty().and_then(|t| t.quant.clone()));
            if q.is_some() {
                self.g.values[o.0 as usize].ty.quant = q;
            }
        }
        self.outs_of.insert(u, outs);
        Ok(())
    }
}
