//! The graph walk: opset checks, the unsupported-op pre-pass, the value map
//! from ONNX names to IR values, and constant folding.
//!
//! Folding contract: every node a converter emits whose inputs are all
//! constants is evaluated with [`kerf_ir::eval::eval`] and replaced by
//! constants (`Origin::Derived`); when the evaluator has no reference for the
//! op the node is kept. Since graph inputs have static shapes, `Shape`/`Size`
//! always fold, which collapses the shape subgraphs exporters emit. Two
//! refinements keep parameter counts equal to the file's weights: a fold that
//! returns its single input unchanged (Identity, Expand/Reshape to the same
//! shape) reuses that constant, and a pure relabelling of one weight
//! (Reshape, Transpose, Expand, Cast, Identity, Dropout with the same element
//! count) keeps the weight's origin.
//!
//! Nodes out of topological order are sorted first ([`crate::order`]); a
//! cycle is an error naming the nodes on it. The walk is a
//! single loop, so deep graphs do not recurse.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use kerf_ir::{Graph, Layer, Op, Origin, Tensor, TensorType, ValueDef, ValueId};

use crate::attrs::Attrs;
use crate::error::UnsupportedOp;
use crate::graph_io::{graph_inputs, graph_outputs};
use crate::proto::{GraphDef, ModelDef, NodeDef};
use crate::{ops, tensor, ImportError, ImportOptions};

/// Newest `ai.onnx` opset this frontend knows.
///
/// Opsets 24–28 changed, for the ops converted here, only element-type
/// lists (float8e8m0, int2/uint2, float6, bfloat16 for TopK/Range) and
/// attributes that matter only for types the IR lacks (Cast/CastLike
/// `round_mode` for float8e8m0, Range `stash_type` for float16); the two
/// semantic additions are handled: SpaceToDepth's `mode` (opset 28, read for
/// every opset since the default DCR is the old behaviour) and Mod with
/// `fmod=0` on floats (opset 28 defines it as `a - floor(a/b)*b`, which is
/// what the IR's `Mod` computes).
pub const MAX_OPSET: i64 = 28;

/// Most bytes that constant folding may create in one import. Expand, Tile,
/// ConstantOfShape and friends turn a few bytes of file into gigabytes, so
/// past this budget a node is kept (computed at run time) instead of folded.
/// Results of at most `FOLD_ALWAYS_BYTES` (shape arithmetic) always fold.
pub(crate) const FOLD_BUDGET_BYTES: usize = 256 << 20;
const FOLD_ALWAYS_BYTES: usize = 4096;

/// Per-node conversion context handed to the op converters.
pub(crate) struct Cx<'a> {
    pub g: &'a mut Graph,
    pub node: &'a NodeDef,
    /// Resolved inputs; `None` for absent optional inputs (`""`).
    pub ins: Vec<Option<ValueId>>,
    pub opset: i64,
    /// Display name: the node name, or `<op_lowercase>_<index>` when empty.
    pub name: String,
    base_dir: Option<&'a Path>,
    layer_names: &'a mut HashSet<String>,
    emitted: usize,
    /// Bytes folded so far in this import (see [`FOLD_BUDGET_BYTES`]).
    folded_bytes: &'a mut usize,
    /// The f32 input of each per-tensor u8 QuantizeLinear output (see
    /// `ops::quant`): a DequantizeLinear on the same grid reads it directly.
    pub quantised_from: &'a mut HashMap<ValueId, ValueId>,
}

impl<'a> Cx<'a> {
    /// Attribute access. Errors carry the file's node name; for unnamed
    /// nodes [`Cx::relabel`] substitutes the display name.
    pub(crate) fn attrs(&self) -> Attrs<'a> {
        Attrs::new(&self.node.name, &self.node.op_type, &self.node.attrs)
    }

    pub(crate) fn err(&self, msg: impl Into<String>) -> ImportError {
        ImportError::Node { node: self.name.clone(), op: self.node.op_type.clone(), msg: msg.into() }
    }

    /// Re-labels an attribute error with the display name (nodes without a
    /// name in the file).
    pub(crate) fn relabel(&self, e: ImportError) -> ImportError {
        match e {
            ImportError::Node { node, op, msg } if node.is_empty() => {
                ImportError::Node { node: self.name.clone(), op, msg }
            }
            other => other,
        }
    }

    pub(crate) fn op(&self) -> &str {
        &self.node.op_type
    }

    pub(crate) fn input(&self, i: usize) -> Result<ValueId, ImportError> {
        self.opt_input(i).ok_or_else(|| self.err(format!("missing required input {i}")))
    }

    pub(crate) fn opt_input(&self, i: usize) -> Option<ValueId> {
        self.ins.get(i).copied().flatten()
    }

    pub(crate) fn ty(&self, v: ValueId) -> &TensorType {
        self.g.ty(v)
    }

    pub(crate) fn shape(&self, v: ValueId) -> Vec<usize> {
        self.g.ty(v).shape.clone()
    }

    /// An optional input that shapes the result and so must be a constant.
    pub(crate) fn konst(&self, i: usize, what: &str) -> Result<Option<Tensor>, ImportError> {
        match self.opt_input(i) {
            None => Ok(None),
            Some(v) => match self.g.const_of(v) {
                Some(t) => Ok(Some(t.clone())),
                None => Err(self.non_constant(i, v, what)),
            },
        }
    }

    /// Input `i` (value `v`, named `what`) would have to be constant: the
    /// error that names the graph input it comes from, so binding resolves it.
    pub(crate) fn non_constant(&self, i: usize, v: ValueId, what: &str) -> ImportError {
        ImportError::NonConstantInput {
            node: self.name.clone(),
            op: self.node.op_type.clone(),
            input: what.to_string(),
            value: non_constant_source(self.g, v)
                .unwrap_or_else(|| self.node.inputs.get(i).cloned().unwrap_or_default()),
        }
    }

    pub(crate) fn konst_req(&self, i: usize, what: &str) -> Result<Tensor, ImportError> {
        self.konst(i, what)?.ok_or_else(|| self.err(format!("missing required input '{what}'")))
    }

    /// A constant integer-list input.
    pub(crate) fn const_ints(&self, i: usize, what: &str) -> Result<Option<Vec<i64>>, ImportError> {
        match self.konst(i, what)? {
            None => Ok(None),
            Some(t) if t.dtype().is_int() => Ok(Some(t.to_i64_vec())),
            Some(t) => Err(self.err(format!("input '{what}' must be an integer tensor, got {}", t.dtype()))),
        }
    }

    /// Emits one IR node (folding it when all inputs are constants).
    pub(crate) fn add(&mut self, op: Op, inputs: Vec<ValueId>) -> Result<Vec<ValueId>, ImportError> {
        let name = if self.emitted == 0 { self.name.clone() } else { format!("{}/{}", self.name, self.emitted) };
        self.emitted += 1;
        let consts: Option<Vec<Tensor>> = inputs.iter().map(|&v| self.g.const_of(v).cloned()).collect();
        if let Some(consts) = consts.filter(|c| self.fold_fits(&op, c)) {
            let refs: Vec<&Tensor> = consts.iter().collect();
            // Any evaluation failure (no reference, or a shape error that
            // add_node will report properly) keeps the node.
            if let Ok(outs) = kerf_ir::eval::eval(&op, &refs) {
                let n = outs.len();
                // A fold that returns its single input unchanged (Expand or
                // Reshape to the same shape, Identity) reuses that constant,
                // so one weight stays one weight.
                if let ([v], [out]) = (inputs.as_slice(), outs.as_slice()) {
                    if consts.first() == Some(out) {
                        return Ok(vec![*v]);
                    }
                }
                let origin = self.folded_origin(&op, &inputs, &outs);
                return Ok(outs
                    .into_iter()
                    .enumerate()
                    .map(|(k, t)| {
                        let vname = if n == 1 { name.clone() } else { format!("{name}:{k}") };
                        self.g.add_const(vname, t, origin)
                    })
                    .collect());
            }
        }
        Ok(self.g.add_node(name, op, inputs)?)
    }

    /// Whether folding `op` on `consts` stays within the import's fold
    /// budget (charging it if so), judged from the inferred result types
    /// before anything is allocated.
    fn fold_fits(&mut self, op: &Op, consts: &[Tensor]) -> bool {
        let tys: Vec<TensorType> = consts.iter().map(|t| TensorType::new(t.dtype(), t.shape().to_vec())).collect();
        let refs: Vec<&TensorType> = tys.iter().collect();
        let Ok(outs) = kerf_ir::infer::infer(op, &refs) else {
            return true; // eval fails the same way and the node reports it
        };
        let bytes = outs
            .iter()
            .map(|t| t.shape.iter().fold(t.dtype.size(), |a, &d| a.saturating_mul(d)))
            .fold(0, usize::saturating_add);
        if bytes <= FOLD_ALWAYS_BYTES {
            return true;
        }
        if bytes > FOLD_BUDGET_BYTES.saturating_sub(*self.folded_bytes) {
            return false;
        }
        *self.folded_bytes += bytes;
        true
    }

    /// Origin of a folded result. A pure relabelling of one weight (same
    /// elements, new shape/layout/type) is still that weight, so it keeps
    /// the input's origin and parameter counts do not depend on how an
    /// exporter wrapped its weights; anything else computed is `Derived`.
    fn folded_origin(&self, op: &Op, inputs: &[ValueId], outs: &[Tensor]) -> Origin {
        let relabel = matches!(
            op,
            Op::Identity | Op::Dropout | Op::Reshape { .. } | Op::Transpose { .. } | Op::Expand { .. } | Op::Cast(_)
        );
        match (inputs, outs) {
            ([v], [out]) if relabel => match self.g.value(*v).def {
                ValueDef::Const(w) if self.g.weights.tensor(w).numel() == out.numel() => self.g.weights.get(w).origin,
                _ => Origin::Derived,
            },
            _ => Origin::Derived,
        }
    }

    pub(crate) fn add1(&mut self, op: Op, inputs: Vec<ValueId>) -> Result<ValueId, ImportError> {
        let outs = self.add(op, inputs)?;
        outs.first().copied().ok_or_else(|| self.err("op produced no output"))
    }

    /// A compiler-made constant (materialised defaults and the like).
    pub(crate) fn derived(&mut self, what: &str, t: Tensor) -> ValueId {
        let name = format!("{}/{what}", self.name);
        self.g.add_const(name, t, Origin::Derived)
    }

    /// The layer identity: the node name or `<op_lowercase>_<index>`, made
    /// unique.
    pub(crate) fn layer(&mut self) -> Layer {
        let base = self.name.clone();
        let mut cand = base.clone();
        let mut k = 1;
        while self.layer_names.contains(&cand) {
            cand = format!("{base}_{k}");
            k += 1;
        }
        self.layer_names.insert(cand.clone());
        Layer(cand)
    }

    /// Whether output `k` is requested (named) by the node.
    pub(crate) fn output_used(&self, k: usize) -> bool {
        self.node.outputs.get(k).is_some_and(|s| !s.is_empty())
    }

    pub(crate) fn tensor(&self, t: &crate::proto::TensorDef) -> Result<Tensor, ImportError> {
        tensor::convert(t, self.base_dir)
    }

    /// Normalises a possibly negative axis against `rank`.
    pub(crate) fn axis(&self, axis: i64, rank: usize) -> Result<usize, ImportError> {
        let r = rank as i64;
        let a = if axis < 0 { axis.saturating_add(r) } else { axis };
        if a < 0 || a >= r {
            return Err(self.err(format!("axis {axis} is out of range for rank {rank}")));
        }
        Ok(a as usize)
    }

    /// Normalises a list of axes: in range, no repeats, order kept (for
    /// per-axis values given alongside).
    pub(crate) fn axes_in_order(&self, axes: &[i64], rank: usize) -> Result<Vec<usize>, ImportError> {
        let mut out = Vec::with_capacity(axes.len());
        for &a in axes {
            let n = self.axis(a, rank)?;
            if out.contains(&n) {
                return Err(self.err(format!("axis {a} is repeated in {axes:?}")));
            }
            out.push(n);
        }
        Ok(out)
    }

    /// Normalises a set of axes: in range, no repeats, sorted.
    pub(crate) fn axes(&self, axes: &[i64], rank: usize) -> Result<Vec<usize>, ImportError> {
        let mut out = self.axes_in_order(axes, rank)?;
        out.sort_unstable();
        Ok(out)
    }
}

/// A value in the import environment. Sequences and optionals never reach
/// the IR: with static lengths they are resolved at import time into lists
/// of tensor values (see `ops/control.rs`).
#[derive(Clone, Debug)]
pub(crate) enum Val {
    Tensor(ValueId),
    Seq(Vec<ValueId>),
    /// An optional: empty, or holding a tensor or a sequence.
    Opt(Option<Box<Val>>),
}

impl Val {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Val::Tensor(_) => "a tensor",
            Val::Seq(_) => "a sequence",
            Val::Opt(_) => "an optional",
        }
    }
}

/// ONNX value name → value, for one (sub)graph scope. A subgraph body sees
/// its enclosing scopes' names: its environment starts as a copy of theirs.
pub(crate) type Env = HashMap<String, Val>;

/// Most nested subgraph levels (If inside Loop inside ...) imported.
pub(crate) const MAX_SUBGRAPH_DEPTH: usize = 16;

/// Most nodes that inlining subgraphs (If branches, unrolled Loop/Scan
/// bodies, SequenceMap bodies) may import in one model. Unrolling is what a
/// static-graph compiler can do with control flow; past this budget the
/// import stops with an error naming the node instead of growing without
/// bound.
pub(crate) const MAX_INLINED_NODES: usize = 20_000;

/// Import-wide state shared by the main graph and the subgraphs inlined
/// into it.
pub(crate) struct State<'a> {
    pub g: Graph,
    pub opset: i64,
    base_dir: Option<&'a Path>,
    layer_names: HashSet<String>,
    /// Bytes folded so far (see [`FOLD_BUDGET_BYTES`]).
    folded_bytes: usize,
    /// See [`Cx::quantised_from`].
    quantised_from: HashMap<ValueId, ValueId>,
    /// Nodes imported from subgraph bodies so far (see [`MAX_INLINED_NODES`]).
    pub inlined_nodes: usize,
    /// Current subgraph nesting level.
    pub depth: usize,
}

impl State<'_> {
    /// A conversion context for `node` (named `name`) with tensor inputs `ins`.
    pub(crate) fn cx<'b>(&'b mut self, node: &'b NodeDef, name: &str, ins: Vec<Option<ValueId>>) -> Cx<'b> {
        Cx {
            g: &mut self.g,
            node,
            ins,
            opset: self.opset,
            name: name.to_string(),
            base_dir: self.base_dir,
            layer_names: &mut self.layer_names,
            emitted: 0,
            folded_bytes: &mut self.folded_bytes,
            quantised_from: &mut self.quantised_from,
        }
    }
}

/// The graph input a non-constant value is computed from, if any (the
/// first found walking its producers; a value read directly is its own
/// source). [`ImportError::NonConstantInput`] names it, so binding that
/// input (`ImportOptions::constant_inputs`) makes the value constant when
/// it is computed from inputs and constants only, e.g. a Loop trip count
/// computed from Range-like scalar inputs.
pub(crate) fn non_constant_source(g: &Graph, v: ValueId) -> Option<String> {
    let mut stack = vec![v];
    let mut seen = HashSet::new();
    while let Some(x) = stack.pop() {
        if !seen.insert(x) {
            continue;
        }
        match g.value(x).def {
            ValueDef::Input(_) => return Some(g.value(x).name.clone()),
            ValueDef::Const(_) => {}
            ValueDef::Node { node, .. } => {
                if let Some(n) = g.nodes.get(node) {
                    stack.extend(n.inputs.iter().rev().copied());
                }
            }
        }
    }
    None
}

/// Ops handled by `ops/control.rs` (subgraphs, sequences, optionals)
/// rather than by the tensor-op registry.
pub(crate) fn is_control_op(op: &str) -> bool {
    ops::control::handles(op)
}

/// Adds every op in `nodes` (and their subgraphs) without a converter to
/// `unsupported`.
fn collect_unsupported(nodes: &[NodeDef], scope: &str, unsupported: &mut Vec<UnsupportedOp>, depth: usize) {
    for (i, n) in nodes.iter().enumerate() {
        if !is_default_domain(&n.domain) {
            // Reported (with the domain) by the domain check, or converted.
            continue;
        }
        if ops::lookup(&n.op_type).is_none() && !is_control_op(&n.op_type) {
            let dn = format!("{scope}{}", display_name(n, i));
            match unsupported.iter_mut().find(|u| u.op == n.op_type) {
                Some(u) => u.nodes.push(dn),
                None => unsupported.push(UnsupportedOp { op: n.op_type.clone(), nodes: vec![dn] }),
            }
        }
        if depth < MAX_SUBGRAPH_DEPTH {
            for a in &n.attrs {
                if let crate::proto::AttrValue::Graph(body) = &a.value {
                    let inner = format!("{scope}{}/{}/", display_name(n, i), a.name);
                    collect_unsupported(&body.nodes, &inner, unsupported, depth + 1);
                }
            }
        }
    }
}

/// Imports `nodes` in order into `st.g`, reading and extending `env`.
/// `scope` prefixes node and value names (subgraph iterations get their
/// own); `node_of` (main graph only) improves the out-of-order message.
pub(crate) fn run_nodes(
    st: &mut State,
    nodes: &[NodeDef],
    env: &mut Env,
    unavailable: &mut HashMap<String, String>,
    node_of: Option<&HashMap<&str, usize>>,
    scope: &str,
) -> Result<(), ImportError> {
    for (i, n) in nodes.iter().enumerate() {
        let name = format!("{scope}{}", display_name(n, i));
        if !known_domain(n) && !is_control_op(&qualified(n)) {
            return Err(ImportError::model(format!(
                "node '{name}' ({}) is in unknown domain '{}'",
                n.op_type, n.domain
            )));
        }
        // (the ONNX checker's rule; the attribute lookups would take the first)
        if let Some(a) =
            n.attrs.iter().enumerate().find_map(|(j, a)| n.attrs[..j].iter().any(|b| b.name == a.name).then_some(a))
        {
            return Err(ImportError::model(format!("node '{name}' ({}) has attribute '{}' twice", n.op_type, a.name)));
        }
        let mut ins: Vec<Option<Val>> = Vec::with_capacity(n.inputs.len());
        for s in &n.inputs {
            if s.is_empty() {
                ins.push(None);
                continue;
            }
            match env.get(s) {
                Some(v) => ins.push(Some(v.clone())),
                None => {
                    let msg = if let Some(why) = unavailable.get(s) {
                        format!("reads '{s}', which {why}")
                    } else if let Some(&p) = node_of.and_then(|m| m.get(s.as_str())) {
                        format!(
                            "reads '{s}' before node '{}' produces it: nodes are not in topological order (or form a cycle)",
                            nodes.get(p).map_or_else(String::new, |pn| display_name(pn, p))
                        )
                    } else {
                        format!("reads undefined value '{s}'")
                    };
                    return Err(ImportError::Node { node: name, op: n.op_type.clone(), msg });
                }
            }
        }
        let first_new = st.g.values.len();
        let outs: Vec<Val> =
            if is_control_op(&qualified(n)) || ins.iter().flatten().any(|v| !matches!(v, Val::Tensor(_))) {
                ops::control::convert(st, n, &name, ins, env)?
            } else {
                let conv = ops::lookup(&qualified(n)).ok_or_else(|| {
                    ImportError::Unsupported(vec![UnsupportedOp { op: n.op_type.clone(), nodes: vec![name.clone()] }])
                })?;
                let tins = ins
                    .iter()
                    .map(|v| v.as_ref().and_then(|v| if let Val::Tensor(t) = v { Some(*t) } else { None }))
                    .collect();
                let mut cx = st.cx(n, &name, tins);
                let outs = conv(&mut cx).map_err(|e| cx.relabel(e))?;
                outs.into_iter().map(Val::Tensor).collect()
            };
        for (k, o) in n.outputs.iter().enumerate() {
            if o.is_empty() {
                continue;
            }
            match outs.get(k) {
                Some(v) => {
                    // Values this node created carry its ONNX output names;
                    // a value it passed through (an aliased constant) keeps
                    // its own.
                    if let Val::Tensor(t) = v {
                        if t.0 as usize >= first_new {
                            if let Some(val) = st.g.values.get_mut(t.0 as usize) {
                                val.name = format!("{scope}{o}");
                            }
                        }
                    }
                    env.insert(o.clone(), v.clone());
                }
                None => {
                    unavailable.insert(
                        o.clone(),
                        format!("is output {k} of node '{name}' ({}), which is not supported", n.op_type),
                    );
                }
            }
        }
    }
    Ok(())
}

/// Inlines a subgraph: binds its inputs to `args` (by position), imports
/// its initializers and nodes in a copy of the enclosing `env`, and returns
/// its outputs. Counts the nodes against [`MAX_INLINED_NODES`] and nesting
/// against [`MAX_SUBGRAPH_DEPTH`]; `node`/`op` name the node that owns the
/// subgraph in errors.
pub(crate) fn inline_graph(
    st: &mut State,
    body: &GraphDef,
    args: Vec<Val>,
    env: &Env,
    scope: &str,
    node: &str,
    op: &str,
) -> Result<Vec<Val>, ImportError> {
    let err = |msg: String| ImportError::Node { node: node.to_string(), op: op.to_string(), msg };
    if st.depth >= MAX_SUBGRAPH_DEPTH {
        return Err(err(format!("subgraphs are nested deeper than {MAX_SUBGRAPH_DEPTH} levels")));
    }
    st.inlined_nodes = st.inlined_nodes.saturating_add(body.nodes.len());
    if st.inlined_nodes > MAX_INLINED_NODES {
        return Err(err(format!(
            "inlining its subgraph would import more than {MAX_INLINED_NODES} nodes (unrolled control flow is bounded)"
        )));
    }
    if args.len() != body.inputs.len() {
        return Err(err(format!("its subgraph takes {} inputs, {} given", body.inputs.len(), args.len())));
    }
    let mut inner = env.clone();
    for (inp, a) in body.inputs.iter().zip(args) {
        inner.insert(inp.name.clone(), a);
    }
    for t in &body.initializers {
        let tensor = tensor::convert(t, st.base_dir)?;
        let v = st.g.add_const(format!("{scope}{}", t.name), tensor, Origin::Initializer);
        inner.insert(t.name.clone(), Val::Tensor(v));
    }
    st.depth += 1;
    let mut unavailable = HashMap::new();
    let r = run_nodes(st, &body.nodes, &mut inner, &mut unavailable, None, scope);
    st.depth -= 1;
    r?;
    body.outputs
        .iter()
        .map(|o| match inner.get(&o.name) {
            Some(v) => Ok(v.clone()),
            None => Err(err(match unavailable.get(&o.name) {
                Some(why) => format!("subgraph output '{}' {why}", o.name),
                None => format!("subgraph output '{}' is not produced by any node", o.name),
            })),
        })
        .collect()
}

fn display_name(n: &NodeDef, index: usize) -> String {
    node_display_name(&n.name, &n.op_type, index)
}

/// A node's display name: its name, or `<op_lowercase>_<index>` when it
/// has none. The one rule for error messages, layer names (before
/// [`Cx::layer`] makes them unique) and the exporter's layer lookup.
pub(crate) fn node_display_name(name: &str, op_type: &str, index: usize) -> String {
    if name.is_empty() {
        format!("{}_{index}", op_type.to_lowercase())
    } else {
        name.to_string()
    }
}

/// The op's registry name: `Op` in the default domain, `domain:Op` outside
/// it (only ops converted in `ops/control.rs` live outside it so far).
fn qualified(n: &NodeDef) -> String {
    if is_default_domain(&n.domain) {
        n.op_type.clone()
    } else {
        format!("{}:{}", n.domain, n.op_type)
    }
}

fn is_default_domain(d: &str) -> bool {
    d.is_empty() || d == "ai.onnx"
}

/// Whether the node's domain is one this frontend reads: ONNX's own, or an
/// op of another domain that has a converter under its qualified name
/// (`com.microsoft:QGemm`, which ONNX Runtime's quantiser writes).
fn known_domain(n: &NodeDef) -> bool {
    is_default_domain(&n.domain) || ops::lookup(&qualified(n)).is_some()
}

/// Imports a parsed model: checks, graph inputs and initializers, every
/// node in a topological order, the outputs; the result is compacted and
/// validated.
pub(crate) fn import(
    model: ModelDef,
    base_dir: Option<&Path>,
    opts: &ImportOptions,
    name: String,
) -> Result<Graph, ImportError> {
    let opset = default_opset(&model)?;
    let mut gd = model.graph.ok_or_else(|| ImportError::model("model has no graph"))?;
    // Owned separately so their payloads can be moved into the weight table.
    let initializers = std::mem::take(&mut gd.initializers);
    let gd = &gd;
    check_nodes(&gd.nodes)?;
    let init_names: HashSet<&str> = initializers.iter().map(|t| t.name.as_str()).collect();
    let node_of = producers(gd, &initializers, &init_names)?;

    let mut g = Graph::new(name);
    let (values, structured) = graph_inputs(&mut g, gd, &init_names, opts)?;
    let mut env: Env = values.into_iter().map(|(k, v)| (k, Val::Tensor(v))).collect();
    env.extend(structured);
    for t in initializers {
        let name = t.name.clone();
        let tensor = tensor::convert_owned(t, base_dir)?;
        let v = g.add_const(name.clone(), tensor, Origin::Initializer);
        env.insert(name, Val::Tensor(v));
    }

    let mut st = State {
        g,
        opset,
        base_dir,
        layer_names: HashSet::new(),
        folded_bytes: 0,
        quantised_from: HashMap::new(),
        inlined_nodes: 0,
        depth: 0,
    };
    // Outputs that a converter could not provide (e.g. MaxPool indices).
    let mut unavailable: HashMap<String, String> = HashMap::new();
    match crate::order::topological(&gd.nodes, &node_of, |i| display_name(&gd.nodes[i], i))? {
        None => run_nodes(&mut st, &gd.nodes, &mut env, &mut unavailable, Some(&node_of), "")?,
        Some(order) => {
            // sorted: unnamed nodes keep the display names of their
            // original positions
            let sorted: Vec<NodeDef> =
                order.iter().map(|&i| NodeDef { name: display_name(&gd.nodes[i], i), ..gd.nodes[i].clone() }).collect();
            run_nodes(&mut st, &sorted, &mut env, &mut unavailable, None, "")?;
        }
    }
    let mut g = st.g;
    graph_outputs(&mut g, gd, &env, &unavailable)?;
    let g = g.compact();
    g.validate()?;
    Ok(g)
}

/// The `ai.onnx` opset the model imports, checked against [`MAX_OPSET`].
fn default_opset(model: &ModelDef) -> Result<i64, ImportError> {
    if model.ir_version == 0 {
        return Err(ImportError::model("model has ir_version 0 (missing or not an ONNX model)"));
    }
    let opset = model
        .opsets
        .iter()
        .filter(|(d, _)| is_default_domain(d))
        .map(|(_, v)| *v)
        .max()
        .ok_or_else(|| ImportError::model("model does not import the ai.onnx opset"))?;
    if opset > MAX_OPSET {
        return Err(ImportError::OpsetTooNew { domain: "ai.onnx".into(), opset, max: MAX_OPSET });
    }
    Ok(opset)
}

/// Before anything is converted: every node is in a known domain, and every
/// unsupported op (subgraphs too) is reported at once.
fn check_nodes(nodes: &[NodeDef]) -> Result<(), ImportError> {
    for (i, n) in nodes.iter().enumerate() {
        if !known_domain(n) && !is_control_op(&qualified(n)) {
            return Err(ImportError::model(format!(
                "node '{}' ({}) is in unknown domain '{}'",
                display_name(n, i),
                n.op_type,
                n.domain
            )));
        }
    }
    let mut unsupported: Vec<UnsupportedOp> = Vec::new();
    collect_unsupported(nodes, "", &mut unsupported, 0);
    if !unsupported.is_empty() {
        return Err(ImportError::Unsupported(unsupported));
    }
    Ok(())
}

/// Who defines each name: a value defined twice is an error naming both
/// definitions; returns the producing node of each node output.
fn producers<'g>(
    gd: &'g crate::proto::GraphDef,
    initializers: &[crate::proto::TensorDef],
    init_names: &HashSet<&str>,
) -> Result<HashMap<&'g str, usize>, ImportError> {
    let mut producer: HashMap<&str, String> = HashMap::new();
    for t in initializers {
        if producer.insert(&t.name, "an initializer".to_string()).is_some() {
            return Err(ImportError::model(format!("value '{}' is defined by two initializers", t.name)));
        }
    }
    for inp in &gd.inputs {
        if init_names.contains(inp.name.as_str()) {
            continue;
        }
        if producer.insert(&inp.name, "a graph input".to_string()).is_some() {
            return Err(ImportError::model(format!("value '{}' is defined twice (graph input)", inp.name)));
        }
    }
    let mut node_of: HashMap<&str, usize> = HashMap::new();
    for (i, n) in gd.nodes.iter().enumerate() {
        for o in n.outputs.iter().filter(|o| !o.is_empty()) {
            let me = format!("node '{}'", display_name(n, i));
            if let Some(prev) = producer.insert(o, me.clone()) {
                return Err(ImportError::model(format!("value '{o}' is produced twice: by {prev} and by {me}")));
            }
            node_of.insert(o, i);
        }
    }
    Ok(node_of)
}
