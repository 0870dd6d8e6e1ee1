//! Control flow, sequences and optionals, resolved at import time.
//!
//! kerf's IR is a static dataflow graph, so these ONNX constructs are
//! compiled away by the frontend when everything that decides their
//! structure is known at import:
//! - `If` with a constant condition (after folding, or a bound input):
//!   the taken branch is inlined; with a run-time condition both branches
//!   are inlined and each output is a `Where` select, when the branches
//!   agree on every output's type (else the error says to bind it);
//! - `Loop` with a constant trip count and/or a condition that folds to a
//!   constant every iteration: the body is unrolled, scan outputs are
//!   stacked along a new axis 0;
//! - `Scan` (opset 8 with its batch axis, and 9+): the body is unrolled over
//!   the (static) sequence length, slicing the scan inputs and stacking the
//!   scan outputs on their axes, in either direction;
//! - sequences (`SequenceConstruct/Empty/At/Insert/Erase/Length`,
//!   `SplitToSequence`, `ConcatFromSequence`, `SequenceMap`) become lists of
//!   tensor values whose length and positions are import-time constants;
//! - optionals (`Optional`, `OptionalHasElement`, `OptionalGetElement`) are
//!   present or absent at import time.
//!
//! Inlined nodes count against `import::MAX_INLINED_NODES`; a condition or
//! position that is not constant is an `ImportError::NonConstantInput` (or a
//! node error) naming the node, so nothing dynamic slips through.

use kerf_ir::{DType, Op, Tensor, ValueId};

use crate::import::{inline_graph, Env, State, Val};
use crate::proto::NodeDef;
use crate::ImportError;

/// Most iterations a `Loop` without a constant trip count may unroll while
/// its condition stays true.
const MAX_LOOP_ITERATIONS: usize = 4096;

const OPS: &[&str] = &[
    "If",
    "Loop",
    "Scan",
    "SequenceConstruct",
    "SequenceEmpty",
    "SequenceAt",
    "SequenceInsert",
    "SequenceErase",
    "SequenceLength",
    "SplitToSequence",
    "ConcatFromSequence",
    "SequenceMap",
    "Optional",
    "OptionalHasElement",
    "OptionalGetElement",
    super::attention_flex::NAME,
];

/// Whether `op` (domain-qualified outside the default domain) is converted
/// here rather than by the tensor registry.
pub(crate) fn handles(op: &str) -> bool {
    OPS.contains(&op)
}

/// What the converters here need about the node being converted.
struct Node<'n> {
    n: &'n NodeDef,
    /// Display name, already scoped for nodes inside subgraphs.
    name: &'n str,
}

impl Node<'_> {
    fn err(&self, msg: impl Into<String>) -> ImportError {
        ImportError::Node { node: self.name.to_string(), op: self.n.op_type.clone(), msg: msg.into() }
    }

    fn attrs(&self) -> crate::attrs::Attrs<'_> {
        crate::attrs::Attrs::new(self.name, &self.n.op_type, &self.n.attrs)
    }

    /// Input `i` (value `v`) is not constant; names the graph input it is
    /// computed from when there is one.
    fn non_constant(&self, st: &State, i: usize, v: ValueId, what: &str) -> ImportError {
        ImportError::NonConstantInput {
            node: self.name.to_string(),
            op: self.n.op_type.clone(),
            input: what.to_string(),
            value: crate::import::non_constant_source(&st.g, v)
                .unwrap_or_else(|| self.n.inputs.get(i).cloned().unwrap_or_default()),
        }
    }

    /// Input `i` as a tensor (error if absent or not a tensor).
    fn tensor(&self, ins: &[Option<Val>], i: usize, what: &str) -> Result<ValueId, ImportError> {
        match ins.get(i) {
            Some(Some(Val::Tensor(v))) => Ok(*v),
            Some(Some(other)) => Err(self.err(format!("input '{what}' must be a tensor, got {}", other.kind()))),
            _ => Err(self.err(format!("missing required input '{what}'"))),
        }
    }

    /// Input `i` as a sequence.
    fn seq(&self, ins: &[Option<Val>], i: usize, what: &str) -> Result<Vec<ValueId>, ImportError> {
        match ins.get(i) {
            Some(Some(Val::Seq(s))) => Ok(s.clone()),
            Some(Some(Val::Opt(Some(inner)))) => match inner.as_ref() {
                Val::Seq(s) => Ok(s.clone()),
                other => Err(self.err(format!("input '{what}' must be a sequence, got an optional {}", other.kind()))),
            },
            Some(Some(other)) => Err(self.err(format!("input '{what}' must be a sequence, got {}", other.kind()))),
            _ => Err(self.err(format!("missing required input '{what}'"))),
        }
    }

    /// An optional integer-scalar input that must be constant.
    fn const_int(&self, st: &State, ins: &[Option<Val>], i: usize, what: &str) -> Result<Option<i64>, ImportError> {
        match ins.get(i) {
            None | Some(None) => Ok(None),
            Some(Some(Val::Tensor(v))) => match st.g.const_of(*v) {
                Some(t) if t.dtype().is_int() && t.numel() == 1 => Ok(t.to_i64_vec().first().copied()),
                Some(t) => {
                    Err(self.err(format!("input '{what}' must be an integer scalar, got {}{:?}", t.dtype(), t.shape())))
                }
                None => Err(self.non_constant(st, i, *v, what)),
            },
            Some(Some(other)) => Err(self.err(format!("input '{what}' must be a tensor, got {}", other.kind()))),
        }
    }

    /// A constant boolean scalar (bool or numeric, non-zero is true).
    fn const_bool(&self, st: &State, v: ValueId, i: usize, what: &str) -> Result<bool, ImportError> {
        match st.g.const_of(v) {
            Some(t) if t.numel() == 1 => Ok(t.to_f64_vec().first().is_some_and(|x| *x != 0.0)),
            Some(t) => Err(self.err(format!("'{what}' must hold one element, got shape {:?}", t.shape()))),
            None => Err(self.non_constant(st, i, v, what)),
        }
    }

    /// Emits one IR op (folded when its inputs are constant).
    fn emit(&self, st: &mut State, tag: &str, op: Op, inputs: Vec<ValueId>) -> Result<ValueId, ImportError> {
        let name = format!("{}/{tag}", self.name);
        let mut cx = st.cx(self.n, &name, Vec::new());
        cx.add1(op, inputs)
    }

    fn konst(&self, st: &mut State, tag: &str, t: Tensor) -> ValueId {
        let name = format!("{}/{tag}", self.name);
        let mut cx = st.cx(self.n, &name, Vec::new());
        cx.derived("c", t)
    }
}

/// Converts a control-flow, sequence or optional node, or a tensor op
/// reached with a non-tensor input (only `Identity` accepts those).
pub(crate) fn convert(
    st: &mut State,
    n: &NodeDef,
    name: &str,
    ins: Vec<Option<Val>>,
    env: &Env,
) -> Result<Vec<Val>, ImportError> {
    let nd = Node { n, name };
    let key = if n.domain.is_empty() || n.domain == "ai.onnx" {
        n.op_type.clone()
    } else {
        format!("{}:{}", n.domain, n.op_type)
    };
    match key.as_str() {
        super::attention_flex::NAME => super::attention_flex::flex_attention(st, n, name, &ins, env),
        "If" => if_(st, &nd, &ins, env),
        "Loop" => loop_(st, &nd, &ins, env),
        "Scan" => scan(st, &nd, &ins, env),
        "SequenceConstruct" => {
            let vs = (0..ins.len()).map(|i| nd.tensor(&ins, i, "inputs")).collect::<Result<Vec<_>, _>>()?;
            check_same_dtype(st, &nd, &vs)?;
            Ok(vec![Val::Seq(vs)])
        }
        "SequenceEmpty" => Ok(vec![Val::Seq(Vec::new())]),
        "SequenceLength" => {
            let s = nd.seq(&ins, 0, "input_sequence")?;
            let t =
                Tensor::from_i64_values(DType::I64, vec![], &[s.len() as i64]).map_err(|e| nd.err(e.to_string()))?;
            Ok(vec![Val::Tensor(nd.konst(st, "length", t))])
        }
        "SequenceAt" => {
            let s = nd.seq(&ins, 0, "input_sequence")?;
            let p =
                nd.const_int(st, &ins, 1, "position")?.ok_or_else(|| nd.err("missing required input 'position'"))?;
            let k = position(&nd, p, s.len(), false)?;
            Ok(vec![Val::Tensor(s[k])])
        }
        "SequenceInsert" => {
            let mut s = nd.seq(&ins, 0, "input_sequence")?;
            let t = nd.tensor(&ins, 1, "tensor")?;
            let k = match nd.const_int(st, &ins, 2, "position")? {
                Some(p) => position(&nd, p, s.len(), true)?,
                None => s.len(),
            };
            s.insert(k, t);
            check_same_dtype(st, &nd, &s)?;
            Ok(vec![Val::Seq(s)])
        }
        "SequenceErase" => {
            let mut s = nd.seq(&ins, 0, "input_sequence")?;
            if s.is_empty() {
                return Err(nd.err("cannot erase from an empty sequence"));
            }
            let k = match nd.const_int(st, &ins, 1, "position")? {
                Some(p) => position(&nd, p, s.len(), false)?,
                None => s.len() - 1,
            };
            s.remove(k);
            Ok(vec![Val::Seq(s)])
        }
        "SplitToSequence" => split_to_sequence(st, &nd, &ins),
        "ConcatFromSequence" => concat_from_sequence(st, &nd, &ins),
        "SequenceMap" => sequence_map(st, &nd, &ins, env),
        "Optional" => match ins.first() {
            Some(Some(v)) => Ok(vec![Val::Opt(Some(Box::new(v.clone())))]),
            _ => Ok(vec![Val::Opt(None)]),
        },
        "OptionalHasElement" => {
            let has = match ins.first() {
                None | Some(None) | Some(Some(Val::Opt(None))) => false,
                Some(Some(_)) => true,
            };
            let t =
                Tensor::from_i64_values(DType::Bool, vec![], &[i64::from(has)]).map_err(|e| nd.err(e.to_string()))?;
            Ok(vec![Val::Tensor(nd.konst(st, "has_element", t))])
        }
        "OptionalGetElement" => match ins.first() {
            Some(Some(Val::Opt(Some(v)))) => Ok(vec![(**v).clone()]),
            Some(Some(Val::Opt(None))) => Err(nd.err("the optional input is empty")),
            Some(Some(v)) => Ok(vec![v.clone()]),
            _ => Err(nd.err("missing required input 'input'")),
        },
        "Identity" => match ins.first() {
            Some(Some(v)) => Ok(vec![v.clone()]),
            _ => Err(nd.err("missing required input 'input'")),
        },
        op => {
            let bad = ins.iter().flatten().find(|v| !matches!(v, Val::Tensor(_)));
            Err(nd.err(format!("{op} takes tensors, but an input is {}", bad.map_or("not a tensor", Val::kind))))
        }
    }
}

/// A sequence position (negative counts from the end); `insert` allows
/// `len` (append).
fn position(nd: &Node, p: i64, len: usize, insert: bool) -> Result<usize, ImportError> {
    let n = len as i64;
    let k = if p < 0 { p + n } else { p };
    let hi = if insert { n } else { n - 1 };
    if k < 0 || k > hi {
        return Err(nd.err(format!("position {p} is out of range for a sequence of length {len}")));
    }
    Ok(k as usize)
}

fn check_same_dtype(st: &State, nd: &Node, vs: &[ValueId]) -> Result<(), ImportError> {
    if let Some(&first) = vs.first() {
        let dt = st.g.ty(first).dtype;
        if let Some(&bad) = vs.iter().find(|&&v| st.g.ty(v).dtype != dt) {
            return Err(nd.err(format!("sequence elements must share one type: {} and {}", dt, st.g.ty(bad).dtype)));
        }
    }
    Ok(())
}

fn if_(st: &mut State, nd: &Node, ins: &[Option<Val>], env: &Env) -> Result<Vec<Val>, ImportError> {
    let c = nd.tensor(ins, 0, "cond")?;
    if st.g.const_of(c).is_none() {
        return if_runtime(st, nd, c, env);
    }
    let taken = nd.const_bool(st, c, 0, "cond")?;
    let branch = if taken { "then" } else { "else" };
    inline_branch(st, nd, branch, env)
}

/// Inlines the `then` or `else` branch; its output count must be the node's.
fn inline_branch(st: &mut State, nd: &Node, branch: &str, env: &Env) -> Result<Vec<Val>, ImportError> {
    let g = nd.attrs().graph_req(&format!("{branch}_branch"))?;
    let scope = format!("{}/{branch}/", nd.name);
    let outs = inline_graph(st, g, Vec::new(), env, &scope, nd.name, &nd.n.op_type)?;
    if outs.len() != nd.n.outputs.len() {
        return Err(nd.err(format!("the {branch} branch has {} outputs, the node {}", outs.len(), nd.n.outputs.len())));
    }
    Ok(outs)
}

/// `If` on a run-time condition: both branches are computed and each output
/// is selected element by element (`Where`), which is exact because the
/// branches are pure.
fn if_runtime(st: &mut State, nd: &Node, c: ValueId, env: &Env) -> Result<Vec<Val>, ImportError> {
    if st.g.ty(c).shape.iter().product::<usize>() != 1 {
        return Err(nd.err(format!("'cond' must hold one element, got {}", st.g.ty(c))));
    }
    let then = inline_branch(st, nd, "then", env)?;
    let els = inline_branch(st, nd, "else", env)?;
    let flag = nd.emit(st, "cond_scalar", Op::Reshape { shape: Vec::new() }, vec![c])?;
    let flag = if st.g.ty(flag).dtype == DType::Bool {
        flag
    } else {
        nd.emit(st, "cond_bool", Op::Cast(DType::Bool), vec![flag])?
    };
    let mut outs = Vec::with_capacity(then.len());
    for (k, (t, e)) in then.into_iter().zip(els).enumerate() {
        outs.push(select(st, nd, (c, flag), &format!("select{k}"), t, e)?);
    }
    Ok(outs)
}

/// `flag ? t : e` for two branch values of the same structure; where they
/// differ in more than values (type, shape, sequence length, presence) the
/// condition decides the output's type and must be constant: the usual
/// non-constant input error, which binding resolves.
fn select(
    st: &mut State,
    nd: &Node,
    (cond, flag): (ValueId, ValueId),
    tag: &str,
    t: Val,
    e: Val,
) -> Result<Val, ImportError> {
    match (t, e) {
        (Val::Tensor(a), Val::Tensor(b)) => {
            let (ta, tb) = (st.g.ty(a).clone(), st.g.ty(b).clone());
            if ta != tb {
                return Err(nd.non_constant(st, 0, cond, "cond"));
            }
            Ok(Val::Tensor(nd.emit(st, tag, Op::Where, vec![flag, a, b])?))
        }
        (Val::Seq(a), Val::Seq(b)) => {
            if a.len() != b.len() {
                return Err(nd.non_constant(st, 0, cond, "cond"));
            }
            let mut out = Vec::with_capacity(a.len());
            for (i, (x, y)) in a.into_iter().zip(b).enumerate() {
                match select(st, nd, (cond, flag), &format!("{tag}_{i}"), Val::Tensor(x), Val::Tensor(y))? {
                    Val::Tensor(v) => out.push(v),
                    _ => return Err(nd.err("a sequence element must be a tensor")),
                }
            }
            Ok(Val::Seq(out))
        }
        (Val::Opt(None), Val::Opt(None)) => Ok(Val::Opt(None)),
        (Val::Opt(Some(a)), Val::Opt(Some(b))) => {
            Ok(Val::Opt(Some(Box::new(select(st, nd, (cond, flag), tag, *a, *b)?))))
        }
        _ => Err(nd.non_constant(st, 0, cond, "cond")),
    }
}

/// `x` with a new axis of length 1 at `axis`.
fn unsqueeze(st: &mut State, nd: &Node, tag: &str, x: ValueId, axis: usize) -> Result<ValueId, ImportError> {
    let mut shape = st.g.ty(x).shape.clone();
    if axis > shape.len() {
        return Err(nd.err(format!("axis {axis} is out of range for rank {}", shape.len())));
    }
    shape.insert(axis, 1);
    nd.emit(st, tag, Op::Reshape { shape }, vec![x])
}

/// Stacks same-shaped tensors along a new axis `axis`.
fn stack(st: &mut State, nd: &Node, tag: &str, xs: &[ValueId], axis: usize) -> Result<ValueId, ImportError> {
    let mut parts = Vec::with_capacity(xs.len());
    for (k, &x) in xs.iter().enumerate() {
        parts.push(unsqueeze(st, nd, &format!("{tag}_u{k}"), x, axis)?);
    }
    if parts.len() == 1 {
        return Ok(parts[0]);
    }
    nd.emit(st, tag, Op::Concat { axis }, parts)
}

/// `x[.., t, ..]` on `axis` (the axis removed).
fn take(st: &mut State, nd: &Node, tag: &str, x: ValueId, axis: usize, t: usize) -> Result<ValueId, ImportError> {
    let shape = st.g.ty(x).shape.clone();
    let mut starts = vec![0i64; shape.len()];
    let mut ends: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    starts[axis] = t as i64;
    ends[axis] = t as i64 + 1;
    let sl = nd.emit(st, &format!("{tag}_s"), Op::Slice { starts, ends, steps: vec![1; shape.len()] }, vec![x])?;
    let mut out = shape;
    out.remove(axis);
    nd.emit(st, tag, Op::Reshape { shape: out }, vec![sl])
}

fn loop_(st: &mut State, nd: &Node, ins: &[Option<Val>], env: &Env) -> Result<Vec<Val>, ImportError> {
    let body = nd.attrs().graph_req("body")?;
    let trip = nd.const_int(st, ins, 0, "M")?;
    if trip.is_some_and(|m| m < 0) {
        return Err(nd.err(format!("trip count {trip:?} is negative")));
    }
    let mut cond = match ins.get(1) {
        Some(Some(Val::Tensor(c))) => nd.const_bool(st, *c, 1, "cond")?,
        Some(Some(other)) => return Err(nd.err(format!("input 'cond' must be a tensor, got {}", other.kind()))),
        _ => true,
    };
    let mut state: Vec<Val> = Vec::new();
    for (k, v) in ins.iter().enumerate().skip(2) {
        state.push(v.clone().ok_or_else(|| nd.err(format!("loop-carried input {k} is missing")))?);
    }
    let n_state = state.len();
    if body.outputs.len() < 1 + n_state || body.inputs.len() != 2 + n_state {
        return Err(nd.err(format!(
            "body has {} inputs and {} outputs for {n_state} loop-carried values",
            body.inputs.len(),
            body.outputs.len()
        )));
    }
    let n_scan = body.outputs.len() - 1 - n_state;
    let mut scans: Vec<Vec<ValueId>> = vec![Vec::new(); n_scan];
    let limit = trip.map_or(MAX_LOOP_ITERATIONS, |m| m as usize);
    if trip.is_some_and(|m| m as usize > MAX_LOOP_ITERATIONS) {
        return Err(nd.err(format!("trip count {} is more than {MAX_LOOP_ITERATIONS} iterations to unroll", limit)));
    }
    let mut i = 0usize;
    while i < limit && cond {
        let it = Tensor::from_i64_values(DType::I64, vec![], &[i as i64]).map_err(|e| nd.err(e.to_string()))?;
        let it = nd.konst(st, &format!("iter{i}"), it);
        let cin = Tensor::from_i64_values(DType::Bool, vec![], &[1]).map_err(|e| nd.err(e.to_string()))?;
        let cin = nd.konst(st, &format!("cond{i}"), cin);
        let mut args = vec![Val::Tensor(it), Val::Tensor(cin)];
        args.extend(state.iter().cloned());
        let scope = format!("{}/it{i}/", nd.name);
        let outs = inline_graph(st, body, args, env, &scope, nd.name, "Loop")?;
        cond = match outs.first() {
            Some(Val::Tensor(c)) => match st.g.const_of(*c) {
                Some(t) if t.numel() == 1 => t.to_f64_vec().first().is_some_and(|x| *x != 0.0),
                _ => {
                    return Err(nd.err(format!(
                        "the body's condition output is not a constant in iteration {i}; only loops whose \
                         iteration count is known at import can be unrolled"
                    )))
                }
            },
            _ => return Err(nd.err("the body's first output (condition) must be a tensor")),
        };
        state = outs.get(1..1 + n_state).map(<[Val]>::to_vec).unwrap_or_default();
        for (k, v) in outs.iter().skip(1 + n_state).enumerate() {
            match v {
                Val::Tensor(t) => scans[k].push(*t),
                other => return Err(nd.err(format!("scan output {k} is {}, expected a tensor", other.kind()))),
            }
        }
        i += 1;
    }
    if trip.is_none() && cond && i == limit {
        return Err(nd.err(format!("the loop runs more than {MAX_LOOP_ITERATIONS} iterations; it cannot be unrolled")));
    }
    let mut outs = state;
    for (k, s) in scans.iter().enumerate() {
        if s.is_empty() {
            return Err(nd.err(format!("scan output {k} is empty (zero iterations): its shape is unknown")));
        }
        if s.iter().any(|&v| st.g.ty(v).shape != st.g.ty(s[0]).shape) {
            return Err(nd.err(format!("scan output {k} changes shape between iterations")));
        }
        outs.push(Val::Tensor(stack(st, nd, &format!("scan{k}"), s, 0)?));
    }
    Ok(outs)
}

/// A per-input list attribute (axes or directions) with its default.
fn per_input(nd: &Node, name: &str, n: usize) -> Result<Vec<i64>, ImportError> {
    match nd.attrs().ints_opt(name)? {
        None => Ok(vec![0; n]),
        Some(v) if v.len() == n => Ok(v),
        Some(v) => Err(nd.err(format!("attribute '{name}' has {} entries for {n} inputs/outputs", v.len()))),
    }
}

fn norm_axis(nd: &Node, a: i64, rank: usize) -> Result<usize, ImportError> {
    let r = rank as i64;
    let k = if a < 0 { a + r } else { a };
    if k < 0 || k >= r.max(1) {
        return Err(nd.err(format!("axis {a} is out of range for rank {rank}")));
    }
    Ok(k as usize)
}

fn scan(st: &mut State, nd: &Node, ins: &[Option<Val>], env: &Env) -> Result<Vec<Val>, ImportError> {
    let a = nd.attrs();
    let m = usize::try_from(a.int_req("num_scan_inputs")?).map_err(|_| nd.err("num_scan_inputs must be positive"))?;
    if st.opset < 9 {
        return scan8(st, nd, ins, env, m);
    }
    let vals = (0..ins.len()).map(|i| nd.tensor(ins, i, "inputs")).collect::<Result<Vec<_>, _>>()?;
    if m == 0 || m > vals.len() {
        return Err(nd.err(format!("num_scan_inputs {m} does not fit {} inputs", vals.len())));
    }
    let n_state = vals.len() - m;
    scan_core(st, nd, &vals[..n_state], &vals[n_state..], env, "")
}

/// Opset-8 Scan: a leading batch axis on every state and scan input (scan
/// axis 1), an optional `sequence_lens` first input (must be constant and
/// equal to the full length) and one `directions` attribute for the inputs.
fn scan8(st: &mut State, nd: &Node, ins: &[Option<Val>], env: &Env, m: usize) -> Result<Vec<Val>, ImportError> {
    if ins.first().is_some_and(Option::is_some) {
        return Err(nd.err("input 'sequence_lens' is not supported (give full-length sequences)"));
    }
    let vals = (1..ins.len()).map(|i| nd.tensor(ins, i, "inputs")).collect::<Result<Vec<_>, _>>()?;
    if m == 0 || m > vals.len() {
        return Err(nd.err(format!("num_scan_inputs {m} does not fit {} inputs", vals.len())));
    }
    let n_state = vals.len() - m;
    let batch = st.g.ty(vals[0]).shape.first().copied().ok_or_else(|| nd.err("inputs must have a batch axis"))?;
    let mut per_batch: Vec<Vec<ValueId>> = Vec::new();
    for b in 0..batch {
        let mut xs = Vec::with_capacity(vals.len());
        for (k, &v) in vals.iter().enumerate() {
            if st.g.ty(v).shape.first() != Some(&batch) {
                return Err(nd.err(format!("input {k} does not have batch size {batch}")));
            }
            xs.push(take(st, nd, &format!("b{b}_in{k}"), v, 0, b)?);
        }
        let outs = scan_core(st, nd, &xs[..n_state], &xs[n_state..], env, &format!("b{b}/"))?;
        per_batch.push(
            outs.into_iter()
                .map(|v| if let Val::Tensor(t) = v { Ok(t) } else { Err(nd.err("non-tensor")) })
                .collect::<Result<_, _>>()?,
        );
    }
    let n_out = per_batch.first().map_or(0, Vec::len);
    let mut outs = Vec::with_capacity(n_out);
    for k in 0..n_out {
        let col: Vec<ValueId> = per_batch.iter().map(|o| o[k]).collect();
        outs.push(Val::Tensor(stack(st, nd, &format!("batch_out{k}"), &col, 0)?));
    }
    Ok(outs)
}

/// Opset-9 Scan semantics on already-unbatched values.
fn scan_core(
    st: &mut State,
    nd: &Node,
    states: &[ValueId],
    xs: &[ValueId],
    env: &Env,
    prefix: &str,
) -> Result<Vec<Val>, ImportError> {
    let a = nd.attrs();
    let m = xs.len();
    let in_axes = if st.opset < 9 { vec![0; m] } else { per_input(nd, "scan_input_axes", m)? };
    let in_dirs = per_input(nd, if st.opset < 9 { "directions" } else { "scan_input_directions" }, m)?;
    let n_state = states.len();
    let k_out = body_outputs(nd)?.checked_sub(n_state).ok_or_else(|| nd.err("body has fewer outputs than states"))?;
    let out_axes = if st.opset < 9 { vec![0; k_out] } else { per_input(nd, "scan_output_axes", k_out)? };
    let out_dirs = if st.opset < 9 { vec![0; k_out] } else { per_input(nd, "scan_output_directions", k_out)? };
    let mut axes = Vec::with_capacity(m);
    let mut len: Option<usize> = None;
    for (k, &x) in xs.iter().enumerate() {
        let shape = st.g.ty(x).shape.clone();
        let ax = norm_axis(nd, in_axes[k], shape.len())?;
        let l = shape.get(ax).copied().unwrap_or(0);
        if len.is_some_and(|p| p != l) {
            return Err(nd.err(format!("scan inputs have different sequence lengths ({len:?} and {l})")));
        }
        len = Some(l);
        axes.push(ax);
    }
    let len = len.unwrap_or(0);
    let body = a.graph_req("body")?;
    let mut state: Vec<Val> = states.iter().map(|&v| Val::Tensor(v)).collect();
    let mut scans: Vec<Vec<ValueId>> = vec![Vec::new(); k_out];
    for t in 0..len {
        let mut args = state.clone();
        for (k, &x) in xs.iter().enumerate() {
            let pos = if in_dirs[k] == 1 { len - 1 - t } else { t };
            args.push(Val::Tensor(take(st, nd, &format!("{prefix}t{t}_x{k}"), x, axes[k], pos)?));
        }
        let scope = format!("{}/{prefix}it{t}/", nd.name);
        let outs = inline_graph(st, body, args, env, &scope, nd.name, "Scan")?;
        state = outs.get(..n_state).map(<[Val]>::to_vec).unwrap_or_default();
        for (k, v) in outs.iter().skip(n_state).enumerate() {
            match v {
                Val::Tensor(y) => scans[k].push(*y),
                other => return Err(nd.err(format!("scan output {k} is {}, expected a tensor", other.kind()))),
            }
        }
    }
    let mut outs = state;
    for (k, mut s) in scans.into_iter().enumerate() {
        if s.is_empty() {
            return Err(nd.err(format!("scan output {k} is empty (sequence length 0): its shape is unknown")));
        }
        if out_dirs[k] == 1 {
            s.reverse();
        }
        let rank = st.g.ty(s[0]).rank() + 1;
        let ax = norm_axis(nd, out_axes[k], rank)?;
        outs.push(Val::Tensor(stack(st, nd, &format!("{prefix}out{k}"), &s, ax)?));
    }
    Ok(outs)
}

fn body_outputs(nd: &Node) -> Result<usize, ImportError> {
    Ok(nd.attrs().graph_req("body")?.outputs.len())
}

fn split_to_sequence(st: &mut State, nd: &Node, ins: &[Option<Val>]) -> Result<Vec<Val>, ImportError> {
    let x = nd.tensor(ins, 0, "input")?;
    let shape = st.g.ty(x).shape.clone();
    let a = nd.attrs();
    let axis = norm_axis(nd, a.int("axis", 0)?, shape.len())?;
    let keepdims = a.bool("keepdims", true)?;
    let d = shape[axis];
    let split = match ins.get(1) {
        Some(Some(Val::Tensor(v))) => match st.g.const_of(*v) {
            Some(t) if t.dtype().is_int() => Some((t.shape().is_empty(), t.to_i64_vec())),
            Some(t) => return Err(nd.err(format!("input 'split' must be integer, got {}", t.dtype()))),
            None => return Err(nd.non_constant(st, 1, *v, "split")),
        },
        _ => None,
    };
    // (start, size, squeeze)
    let parts: Vec<(usize, usize, bool)> = match split {
        None => (0..d).map(|k| (k, 1, !keepdims)).collect(),
        Some((true, v)) => {
            let c = v.first().copied().unwrap_or(0);
            if c <= 0 {
                return Err(nd.err(format!("split size {c} must be positive")));
            }
            let c = c as usize;
            (0..d.div_ceil(c)).map(|k| (k * c, c.min(d - k * c), false)).collect()
        }
        Some((false, v)) => {
            let mut at = 0usize;
            let mut out = Vec::with_capacity(v.len());
            for s in v {
                let s = usize::try_from(s).map_err(|_| nd.err("split sizes must not be negative"))?;
                out.push((at, s, false));
                at += s;
            }
            if at != d {
                return Err(nd.err(format!("split sizes sum to {at}, the axis has {d}")));
            }
            out
        }
    };
    let mut seq = Vec::with_capacity(parts.len());
    for (k, (start, size, squeeze)) in parts.into_iter().enumerate() {
        let mut starts = vec![0i64; shape.len()];
        let mut ends: Vec<i64> = shape.iter().map(|&e| e as i64).collect();
        starts[axis] = start as i64;
        ends[axis] = (start + size) as i64;
        let mut v =
            nd.emit(st, &format!("part{k}"), Op::Slice { starts, ends, steps: vec![1; shape.len()] }, vec![x])?;
        if squeeze {
            let mut s = shape.clone();
            s.remove(axis);
            v = nd.emit(st, &format!("part{k}_sq"), Op::Reshape { shape: s }, vec![v])?;
        }
        seq.push(v);
    }
    Ok(vec![Val::Seq(seq)])
}

fn concat_from_sequence(st: &mut State, nd: &Node, ins: &[Option<Val>]) -> Result<Vec<Val>, ImportError> {
    let s = nd.seq(ins, 0, "input_sequence")?;
    let first = *s.first().ok_or_else(|| nd.err("the sequence is empty"))?;
    let a = nd.attrs();
    let new_axis = a.bool("new_axis", false)?;
    let rank = st.g.ty(first).rank() + usize::from(new_axis);
    let axis = norm_axis(nd, a.int_req("axis")?, rank)?;
    let v = if new_axis {
        stack(st, nd, "stack", &s, axis)?
    } else if s.len() == 1 {
        first
    } else {
        nd.emit(st, "concat", Op::Concat { axis }, s)?
    };
    Ok(vec![Val::Tensor(v)])
}

fn sequence_map(st: &mut State, nd: &Node, ins: &[Option<Val>], env: &Env) -> Result<Vec<Val>, ImportError> {
    let body = nd.attrs().graph_req("body")?;
    let len = nd.seq(ins, 0, "input_sequence")?.len();
    for (k, v) in ins.iter().enumerate() {
        if let Some(Val::Seq(s)) = v {
            if s.len() != len {
                return Err(nd.err(format!("input {k} has length {}, the first sequence {len}", s.len())));
            }
        }
    }
    let mut outs: Vec<Vec<ValueId>> = vec![Vec::new(); body.outputs.len()];
    for i in 0..len {
        let mut args = Vec::with_capacity(ins.len());
        for (k, v) in ins.iter().enumerate() {
            args.push(match v {
                Some(Val::Seq(s)) => Val::Tensor(s[i]),
                Some(Val::Tensor(t)) => Val::Tensor(*t),
                Some(other) => return Err(nd.err(format!("input {k} is {}", other.kind()))),
                None => return Err(nd.err(format!("input {k} is missing"))),
            });
        }
        let scope = format!("{}/it{i}/", nd.name);
        let r = inline_graph(st, body, args, env, &scope, nd.name, "SequenceMap")?;
        for (k, v) in r.into_iter().enumerate() {
            match v {
                Val::Tensor(t) => outs[k].push(t),
                other => return Err(nd.err(format!("body output {k} is {}, expected a tensor", other.kind()))),
            }
        }
    }
    Ok(outs.into_iter().map(Val::Seq).collect())
}
