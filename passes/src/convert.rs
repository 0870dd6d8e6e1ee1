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

use std::collections::{BTreeSet, HashMap, HashSet};

use egg::{Id, Language};
use kerf_ir::{Graph, TensorType, ValueDef, ValueId};

use crate::analysis::{KEGraph, KerfAnalysis};
use crate::extract::Extraction;
use crate::lang::{is_tuple, KNode, NodeOp};
use crate::PassError;

/// What the source graph knew beyond the e-graph.
#[derive(Debug, Clone)]
pub struct Meta {
    pub name: String,
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
    // Quantisation facts are not inferred: copy them from the graph.
    for (i, v) in g.values.iter().enumerate() {
        if let (Some(q), Some(id)) = (&v.ty.quant, class_of[i]) {
            if let Some(t) = eg[id].data.types.first_mut() {
                t.quant = Some(q.clone());
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
    let chosen = |c: Id| -> Result<&KNode, PassError> {
        ex.choice.get(&eg.find(c)).ok_or_else(|| PassError::Convert(format!("class {c} was not extracted")))
    };
    let roots = roots(eg, meta);

    // Emission units are classes whose choice is an op; Proj and leaves are
    // resolved on demand. `deps` resolves a child through Proj to its tuple.
    let unit_of = |c: Id| -> Result<Option<Id>, PassError> {
        let c = eg.find(c);
        let n = chosen(c)?;
        Ok(match &n.op {
            NodeOp::Op(_) => Some(c),
            NodeOp::Proj(_) => n.children.first().map(|&t| eg.find(t)),
            _ => None,
        })
    };

    // Postorder from the roots: a topological order used for tie-breaking.
    let mut post: Vec<Id> = Vec::new();
    let mut seen: HashSet<Id> = HashSet::new();
    for &r in &roots {
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
            for &ch in chosen(c)?.children.iter().rev() {
                let ch = eg.find(ch);
                if !seen.contains(&ch) {
                    stack.push((ch, false));
                }
            }
        }
    }
    let post_idx: HashMap<Id, usize> = post.iter().enumerate().map(|(i, &c)| (c, i)).collect();

    // Priority: the position of the class's first original node; classes
    // without one inherit the smallest key of their consumers.
    let mut orig_pos: HashMap<Id, usize> = HashMap::new();
    for (i, (_, _, id)) in meta.nodes.iter().enumerate() {
        orig_pos.entry(eg.find(*id)).or_insert(i);
    }
    let mut key: HashMap<Id, usize> = HashMap::new();
    for &c in post.iter().rev() {
        let k = match orig_pos.get(&c) {
            Some(&p) => p,
            None => key.get(&c).copied().unwrap_or(usize::MAX),
        };
        key.insert(c, k);
        for &ch in &chosen(c)?.children {
            let e = key.entry(eg.find(ch)).or_insert(usize::MAX);
            *e = (*e).min(k);
        }
    }

    // Kahn's algorithm over units, smallest (key, postorder) first.
    let mut units: Vec<Id> = Vec::new();
    for &c in &post {
        if unit_of(c)? == Some(c) {
            units.push(c);
        }
    }
    let mut deps: HashMap<Id, usize> = HashMap::new();
    let mut users: HashMap<Id, Vec<Id>> = HashMap::new();
    for &u in &units {
        let mut ds: BTreeSet<Id> = BTreeSet::new();
        for &ch in &chosen(u)?.children {
            if let Some(d) = unit_of(ch)? {
                ds.insert(d);
            }
        }
        deps.insert(u, ds.len());
        for d in ds {
            users.entry(d).or_default().push(u);
        }
    }
    let prio = |c: Id| (key.get(&c).copied().unwrap_or(usize::MAX), post_idx.get(&c).copied().unwrap_or(0), c);
    let mut ready: BTreeSet<(usize, usize, Id)> =
        units.iter().filter(|u| deps.get(u) == Some(&0)).map(|&u| prio(u)).collect();
    let mut order = Vec::with_capacity(units.len());
    while let Some(first) = ready.pop_first() {
        let u = first.2;
        order.push(u);
        for &v in users.get(&u).map(|v| v.as_slice()).unwrap_or(&[]) {
            if let Some(d) = deps.get_mut(&v) {
                *d -= 1;
                if *d == 0 {
                    ready.insert(prio(v));
                }
            }
        }
    }
    if order.len() != units.len() {
        return Err(PassError::Convert("extracted program has a cycle".into()));
    }

    // Names.
    let mut orig_name: HashMap<KNode, &str> = HashMap::new();
    for (name, n, _) in &meta.nodes {
        let canon = n.clone().map_children(|c| eg.find(c));
        orig_name.entry(canon).or_insert(name.as_str());
    }
    let mut class_node_name: HashMap<Id, &str> = HashMap::new();
    for (name, _, id) in &meta.nodes {
        class_node_name.entry(eg.find(*id)).or_insert(name.as_str());
    }
    let mut value_name: HashMap<Id, &str> = HashMap::new();
    for (c, name) in &meta.value_classes {
        value_name.entry(eg.find(*c)).or_insert(name.as_str());
    }

    let mut g = Graph::new(meta.name.clone());
    g.weights = eg.analysis.weights.clone();
    let inputs: Vec<ValueId> = meta.inputs.iter().map(|(n, t)| g.add_input(n.clone(), t.clone())).collect();
    let mut outs_of: HashMap<Id, Vec<ValueId>> = HashMap::new();
    let mut leaf_val: HashMap<Id, ValueId> = HashMap::new();
    let mut used_names: HashSet<String> = HashSet::new();

    // Resolves a class to a value, creating leaf values on first use.
    #[allow(clippy::too_many_arguments)] // plain state threading, no clearer as a struct
    fn value(
        g: &mut Graph,
        eg: &KEGraph,
        ex: &Extraction,
        c: Id,
        inputs: &[ValueId],
        outs_of: &HashMap<Id, Vec<ValueId>>,
        leaf_val: &mut HashMap<Id, ValueId>,
        value_name: &HashMap<Id, &str>,
    ) -> Result<ValueId, PassError> {
        let c = eg.find(c);
        if let Some(v) = leaf_val.get(&c) {
            return Ok(*v);
        }
        let n = ex.choice.get(&c).ok_or_else(|| PassError::Convert(format!("class {c} was not extracted")))?;
        let missing = || PassError::Convert(format!("class {c} ({n}) used before it is computed"));
        let v = match &n.op {
            NodeOp::Input(k) => *inputs.get(*k as usize).ok_or_else(missing)?,
            NodeOp::Const(w) => {
                let v = g.add_const_ref(*w);
                if let Some(name) = value_name.get(&c) {
                    g.values[v.0 as usize].name = (*name).to_string();
                }
                v
            }
            NodeOp::Op(_) => return outs_of.get(&c).and_then(|o| o.first().copied()).ok_or_else(missing),
            NodeOp::Proj(k) => {
                let t = n.children.first().map(|&t| eg.find(t)).ok_or_else(missing)?;
                return outs_of.get(&t).and_then(|o| o.get(*k as usize).copied()).ok_or_else(missing);
            }
        };
        leaf_val.insert(c, v);
        Ok(v)
    }

    for &u in &order {
        let n = chosen(u)?;
        let NodeOp::Op(op) = &n.op else { continue };
        let mut ins = Vec::with_capacity(n.children.len());
        for &ch in &n.children {
            ins.push(value(&mut g, eg, ex, ch, &inputs, &outs_of, &mut leaf_val, &value_name)?);
        }
        let base = match orig_name.get(n) {
            Some(name) => (*name).to_string(),
            None => match class_node_name.get(&u) {
                Some(b) => format!("{b}.{}", op.name()),
                None => format!("{}.{u}", op.name()),
            },
        };
        let mut name = base.clone();
        let mut k = 1;
        while !used_names.insert(name.clone()) {
            name = format!("{base}.{k}");
            k += 1;
        }
        let outs = g.add_node(name, op.clone(), ins)?;
        // Value names and quantisation facts of the class(es) computed.
        let types = &eg[u].data.types;
        for (k, &o) in outs.iter().enumerate() {
            let cls = if !is_tuple(op) { Some(u) } else { eg.lookup(KNode::new(NodeOp::Proj(k as u32), vec![u])) };
            if let Some(vn) = cls.and_then(|c| value_name.get(&eg.find(c))) {
                g.values[o.0 as usize].name = (*vn).to_string();
            }
            let q = if !is_tuple(op) {
                types.first().and_then(|t| t.quant.clone())
            } else {
                cls.and_then(|c| eg[c].data.ty().and_then(|t| t.quant.clone()))
            };
            if q.is_some() {
                g.values[o.0 as usize].ty.quant = q;
            }
        }
        outs_of.insert(u, outs);
    }
    for ((name, _), &r) in meta.outputs.iter().zip(&roots) {
        let v = value(&mut g, eg, ex, r, &inputs, &outs_of, &mut leaf_val, &value_name)?;
        g.add_output(name.clone(), v);
    }
    g.validate()?;
    let g = g.compact();
    g.validate()?;
    Ok(g)
}
