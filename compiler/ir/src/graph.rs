//! The plain dataflow graph: SSA values with static types, nodes in
//! topological order, constants by id in a weight table.

use std::collections::HashMap;
use std::fmt;

use crate::weights::{Quant, WeightId, WeightTable};
use crate::{infer, DType, IrError, Op, Origin, Tensor};

/// Index of a value in [`Graph::values`]; printed `%n` in the text format.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

impl fmt::Debug for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// Static type of a value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    /// Element type.
    pub dtype: DType,
    /// Static shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// Present on quantised (int8/uint8) values.
    pub quant: Option<Quant>,
}

impl TensorType {
    /// An unquantised type.
    pub fn new(dtype: DType, shape: Vec<usize>) -> TensorType {
        TensorType { dtype, shape, quant: None }
    }
    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// Size in bytes ([`DType::size`] per element).
    pub fn bytes(&self) -> usize {
        self.numel() * self.dtype.size()
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.dtype)?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// What defines a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueDef {
    /// The i-th graph input.
    Input(usize),
    /// The constant held by this weight.
    Const(WeightId),
    /// Output `output` of node `node`.
    Node {
        /// Index into [`Graph::nodes`].
        node: usize,
        /// Index into that node's outputs.
        output: usize,
    },
}

/// An SSA value: its static type and what defines it.
#[derive(Clone, Debug)]
pub struct Value {
    /// Static type.
    pub ty: TensorType,
    /// What defines it: a graph input, a constant or a node output.
    pub def: ValueDef,
    /// Source name (ONNX tensor name), kept for diagnostics and I/O names.
    pub name: String,
}

/// One application of an op to values, defining its output values.
#[derive(Clone, Debug)]
pub struct Node {
    /// Node name (from ONNX or made up by a pass), used in diagnostics and to name its outputs.
    pub name: String,
    /// The operation with its resolved attributes.
    pub op: Op,
    /// Operand values, in the op's input order.
    pub inputs: Vec<ValueId>,
    /// Values this node defines, in the op's output order ([`Op::num_outputs`] of them).
    pub outputs: Vec<ValueId>,
}

/// A named output of the graph.
#[derive(Clone, Debug)]
pub struct GraphOutput {
    /// Output name (the ONNX graph output's name).
    pub name: String,
    /// The value returned.
    pub value: ValueId,
}

/// A model: inputs, nodes in topological order, named outputs, weights.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Model name.
    pub name: String,
    /// Every value, indexed by [`ValueId`].
    pub values: Vec<Value>,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// Graph inputs, in call order.
    pub inputs: Vec<ValueId>,
    /// Named graph outputs, in order.
    pub outputs: Vec<GraphOutput>,
    /// Every constant, referenced by [`ValueDef::Const`] values.
    pub weights: WeightTable,
}

impl Graph {
    /// An empty graph called `name`.
    pub fn new(name: impl Into<String>) -> Graph {
        Graph { name: name.into(), ..Graph::default() }
    }

    /// The value with id `v` (panics if out of range).
    pub fn value(&self, v: ValueId) -> &Value {
        &self.values[v.0 as usize]
    }

    /// The static type of value `v`.
    pub fn ty(&self, v: ValueId) -> &TensorType {
        &self.value(v).ty
    }

    fn push_value(&mut self, ty: TensorType, def: ValueDef, name: String) -> ValueId {
        let id = ValueId(self.values.len() as u32);
        self.values.push(Value { ty, def, name });
        id
    }

    /// Appends a graph input of type `ty` and returns its value.
    pub fn add_input(&mut self, name: impl Into<String>, ty: TensorType) -> ValueId {
        let idx = self.inputs.len();
        let v = self.push_value(ty, ValueDef::Input(idx), name.into());
        self.inputs.push(v);
        v
    }

    /// Adds a constant value backed by a new weight.
    pub fn add_const(&mut self, name: impl Into<String>, tensor: Tensor, origin: Origin) -> ValueId {
        let name = name.into();
        let ty = TensorType::new(tensor.dtype(), tensor.shape().to_vec());
        let w = self.weights.add(name.clone(), tensor, origin);
        self.push_value(ty, ValueDef::Const(w), name)
    }

    /// Adds a value for an existing weight.
    pub fn add_const_ref(&mut self, w: WeightId) -> ValueId {
        let wt = self.weights.get(w);
        let ty = TensorType::new(wt.tensor.dtype(), wt.tensor.shape().to_vec());
        let name = wt.name.clone();
        self.push_value(ty, ValueDef::Const(w), name)
    }

    /// Appends a node after inferring its output types. Errors name the node.
    pub fn add_node(&mut self, name: impl Into<String>, op: Op, inputs: Vec<ValueId>) -> Result<Vec<ValueId>, IrError> {
        let name = name.into();
        let tys: Vec<&TensorType> = inputs.iter().map(|&v| self.ty(v)).collect();
        let out_tys = infer::infer(&op, &tys).map_err(|msg| IrError::Node {
            node: name.clone(),
            op: op.name().to_string(),
            msg,
        })?;
        let node = self.nodes.len();
        let outputs: Vec<ValueId> = out_tys
            .into_iter()
            .enumerate()
            .map(|(i, ty)| {
                let vname = if i == 0 { name.clone() } else { format!("{name}:{i}") };
                self.push_value(ty, ValueDef::Node { node, output: i }, vname)
            })
            .collect();
        self.nodes.push(Node { name, op, inputs, outputs: outputs.clone() });
        Ok(outputs)
    }

    /// Like [`Graph::add_node`] for single-output ops.
    pub fn add_node1(&mut self, name: impl Into<String>, op: Op, inputs: Vec<ValueId>) -> Result<ValueId, IrError> {
        let outs = self.add_node(name, op, inputs)?;
        outs.first().copied().ok_or_else(|| IrError::Invalid("op produced no output".into()))
    }

    /// Appends `value` as the next graph output, named `name`.
    pub fn add_output(&mut self, name: impl Into<String>, value: ValueId) {
        self.outputs.push(GraphOutput { name: name.into(), value });
    }

    /// The constant behind a value, if it is one.
    pub fn const_of(&self, v: ValueId) -> Option<&Tensor> {
        match self.value(v).def {
            ValueDef::Const(w) => Some(self.weights.tensor(w)),
            _ => None,
        }
    }

    /// Checks structural invariants: values defined before use, node outputs
    /// point back at their node, and every node's recorded output types are
    /// what inference says.
    pub fn validate(&self) -> Result<(), IrError> {
        let mut defined = vec![false; self.values.len()];
        for (i, v) in self.values.iter().enumerate() {
            match v.def {
                ValueDef::Input(k) => {
                    if self.inputs.get(k) != Some(&ValueId(i as u32)) {
                        return Err(IrError::Invalid(format!("value %{i} claims to be input {k}")));
                    }
                    defined[i] = true;
                }
                ValueDef::Const(w) => {
                    if w.0 as usize >= self.weights.len() {
                        return Err(IrError::Invalid(format!("value %{i} uses missing weight {}", w.0)));
                    }
                    defined[i] = true;
                }
                ValueDef::Node { .. } => {}
            }
        }
        for (ni, n) in self.nodes.iter().enumerate() {
            for &inp in &n.inputs {
                if !defined.get(inp.0 as usize).copied().unwrap_or(false) {
                    return Err(IrError::Node {
                        node: n.name.clone(),
                        op: n.op.name().into(),
                        msg: format!("reads {inp:?} before it is defined"),
                    });
                }
            }
            let tys: Vec<&TensorType> = n.inputs.iter().map(|&v| self.ty(v)).collect();
            let want = infer::infer(&n.op, &tys).map_err(|msg| IrError::Node {
                node: n.name.clone(),
                op: n.op.name().into(),
                msg,
            })?;
            if want.len() != n.outputs.len() {
                return Err(IrError::Invalid(format!("node '{}' has the wrong number of outputs", n.name)));
            }
            for (k, (&o, t)) in n.outputs.iter().zip(&want).enumerate() {
                let v = self.value(o);
                if v.def != (ValueDef::Node { node: ni, output: k }) || v.ty.dtype != t.dtype || v.ty.shape != t.shape {
                    return Err(IrError::Invalid(format!(
                        "node '{}' output {k}: recorded {} but inference gives {}",
                        n.name, v.ty, t
                    )));
                }
                defined[o.0 as usize] = true;
            }
        }
        for o in &self.outputs {
            if !defined.get(o.value.0 as usize).copied().unwrap_or(false) {
                return Err(IrError::Invalid(format!("output '{}' is never defined", o.name)));
            }
        }
        for (i, v) in self.values.iter().enumerate() {
            if let Some(q) = &v.ty.quant {
                let missing = [q.scale, q.zero_point].iter().any(|w| w.0 as usize >= self.weights.len());
                if missing {
                    return Err(IrError::Invalid(format!("value %{i} '{}': its grid uses a missing weight", v.name)));
                }
                q.validate(v.ty.dtype, &v.ty.shape, &self.weights)
                    .map_err(|e| IrError::Invalid(format!("value %{i} '{}': {e}", v.name)))?;
            }
        }
        Ok(())
    }

    /// Number of uses of each value (by nodes and graph outputs).
    pub fn use_counts(&self) -> Vec<usize> {
        let mut uses = vec![0; self.values.len()];
        for n in &self.nodes {
            for &i in &n.inputs {
                uses[i.0 as usize] += 1;
            }
        }
        for o in &self.outputs {
            uses[o.value.0 as usize] += 1;
        }
        uses
    }

    /// Weight `w` copied into `g` once (layout, grid and counting kept).
    fn weight_into(&self, w: WeightId, g: &mut Graph, wmap: &mut HashMap<WeightId, WeightId>) -> WeightId {
        *wmap.entry(w).or_insert_with(|| {
            let wt = self.weights.get(w).clone();
            let id = g.weights.add(wt.name.clone(), wt.tensor.clone(), wt.origin);
            let slot = g.weights.get_mut(id);
            slot.sparsity = wt.sparsity;
            slot.grid = wt.grid;
            slot.is_param = wt.is_param;
            id
        })
    }

    /// A type of this graph as a type of `g`: its grid's weights copied.
    fn ty_into(&self, ty: &TensorType, g: &mut Graph, wmap: &mut HashMap<WeightId, WeightId>) -> TensorType {
        let mut t = ty.clone();
        if let Some(q) = &mut t.quant {
            q.scale = self.weight_into(q.scale, g, wmap);
            q.zero_point = self.weight_into(q.zero_point, g, wmap);
        }
        t
    }

    /// The nodes marked in `keep` as a graph of their own: every non-constant
    /// value they read that no kept node defines becomes an input (in order
    /// of first use, named after the value), and every value a kept node
    /// defines that an unkept node or a graph output reads becomes an output.
    /// Constants come along. A kept node whose outputs nothing reads is
    /// dropped (as by [`Graph::compact`]). Used to time one layer with its
    /// real shapes and neighbours (`kerf tune`'s micro-benchmarks).
    pub fn segment(&self, keep: &[bool]) -> Graph {
        let kept = |n: usize| keep.get(n).copied().unwrap_or(false);
        let inside = |v: ValueId| match self.value(v).def {
            ValueDef::Node { node, .. } => kept(node),
            _ => false,
        };
        let mut t = Graph::new(self.name.clone());
        t.values = self.values.clone();
        t.weights = self.weights.clone();
        let mut seen = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for (ni, n) in self.nodes.iter().enumerate() {
            if !kept(ni) {
                continue;
            }
            for &v in &n.inputs {
                if inside(v) || matches!(self.value(v).def, ValueDef::Const(_)) || !seen.insert(v) {
                    continue;
                }
                let mut name = self.value(v).name.clone();
                if name.is_empty() || !names.insert(name.clone()) {
                    name = format!("in{}", t.inputs.len());
                    names.insert(name.clone());
                }
                t.values[v.0 as usize].name = name;
                t.values[v.0 as usize].def = ValueDef::Input(t.inputs.len());
                t.inputs.push(v);
            }
        }
        t.nodes = self.nodes.iter().enumerate().filter(|&(i, _)| kept(i)).map(|(_, n)| n.clone()).collect();
        let mut read_outside = vec![false; self.values.len()];
        for (ni, n) in self.nodes.iter().enumerate() {
            if !kept(ni) {
                for &v in &n.inputs {
                    read_outside[v.0 as usize] = true;
                }
            }
        }
        for o in &self.outputs {
            read_outside[o.value.0 as usize] = true;
        }
        for n in &t.nodes {
            for &o in &n.outputs {
                if read_outside[o.0 as usize] {
                    let name = self.value(o).name.clone();
                    let name = if name.is_empty() { format!("out{}", t.outputs.len()) } else { name };
                    t.outputs.push(GraphOutput { name, value: o });
                }
            }
        }
        // node indices in the values' definitions are stale until compaction
        t.compact()
    }

    /// Removes nodes whose outputs are unused, then values and weights nothing
    /// refers to, renumbering everything in definition order. Inputs are kept
    /// (they are the ABI) even when unused.
    pub fn compact(&self) -> Graph {
        let mut live_nodes = vec![false; self.nodes.len()];
        let mut live_vals = vec![false; self.values.len()];
        for o in &self.outputs {
            live_vals[o.value.0 as usize] = true;
        }
        for (ni, n) in self.nodes.iter().enumerate().rev() {
            if n.outputs.iter().any(|o| live_vals[o.0 as usize]) {
                live_nodes[ni] = true;
                for &i in &n.inputs {
                    live_vals[i.0 as usize] = true;
                }
            }
        }
        let mut g = Graph::new(self.name.clone());
        let mut vmap: HashMap<ValueId, ValueId> = HashMap::new();
        let mut wmap: HashMap<WeightId, WeightId> = HashMap::new();
        for &i in &self.inputs {
            let v = self.value(i);
            let ty = self.ty_into(&v.ty, &mut g, &mut wmap);
            vmap.insert(i, g.add_input(v.name.clone(), ty));
        }
        // Constants first, in order of first use, so numbering is stable.
        let mut order: Vec<ValueId> = Vec::new();
        for (ni, n) in self.nodes.iter().enumerate() {
            if live_nodes[ni] {
                order.extend(n.inputs.iter().copied());
            }
        }
        order.extend(self.outputs.iter().map(|o| o.value));
        for v in order {
            if let ValueDef::Const(w) = self.value(v).def {
                if vmap.contains_key(&v) {
                    continue;
                }
                let nw = self.weight_into(w, &mut g, &mut wmap);
                let nv = g.add_const_ref(nw);
                g.values[nv.0 as usize].name = self.value(v).name.clone();
                g.values[nv.0 as usize].ty = self.ty_into(&self.value(v).ty, &mut g, &mut wmap);
                vmap.insert(v, nv);
            }
        }
        for (ni, n) in self.nodes.iter().enumerate() {
            if !live_nodes[ni] {
                continue;
            }
            let node = g.nodes.len();
            let inputs = n.inputs.iter().map(|i| vmap[i]).collect();
            let outputs: Vec<ValueId> = n
                .outputs
                .iter()
                .enumerate()
                .map(|(k, &o)| {
                    let v = self.value(o);
                    let ty = self.ty_into(&v.ty, &mut g, &mut wmap);
                    let nv = g.push_value(ty, ValueDef::Node { node, output: k }, v.name.clone());
                    vmap.insert(o, nv);
                    nv
                })
                .collect();
            g.nodes.push(Node { name: n.name.clone(), op: n.op.clone(), inputs, outputs });
        }
        for o in &self.outputs {
            g.add_output(o.name.clone(), vmap[&o.value]);
        }
        g
    }
}
