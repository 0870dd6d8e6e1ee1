//! A debugging backend: runs a graph node by node with kerf-ir's reference
//! evaluator ([`kerf_ir::eval::eval`], written for constant folding). It
//! covers fewer ops than the JIT and computes floats in f64, so it is a
//! second opinion when the JIT and a reference disagree, not the backend the
//! manifest is blessed for.

use kerf_ir::{Graph, IrError, Tensor, ValueDef};

use super::exec::ExecError;

/// Evaluates `g` on `inputs` (one per graph input, already type-checked).
pub fn run(g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, ExecError> {
    let mut vals: Vec<Option<Tensor>> = vec![None; g.values.len()];
    for (v, val) in g.values.iter().zip(vals.iter_mut()) {
        match v.def {
            ValueDef::Input(i) => *val = inputs.get(i).cloned(),
            ValueDef::Const(w) => *val = Some(g.weights.tensor(w).clone()),
            ValueDef::Node { .. } => {}
        }
    }
    // Free each intermediate after its last use.
    let mut uses = g.use_counts();
    for node in &g.nodes {
        let fail = |msg: String| ExecError::Failed { node: node.name.clone(), op: node.op.name().to_string(), msg };
        let mut ins: Vec<&Tensor> = Vec::with_capacity(node.inputs.len());
        for v in &node.inputs {
            let t = vals.get(v.0 as usize).and_then(Option::as_ref);
            ins.push(t.ok_or_else(|| fail(format!("input {v:?} has no value")))?);
        }
        let outs = kerf_ir::eval::eval(&node.op, &ins).map_err(|e| match e {
            IrError::Eval { msg, .. } => {
                ExecError::Unsupported { node: node.name.clone(), op: node.op.name().to_string(), msg }
            }
            other => fail(other.to_string()),
        })?;
        if outs.len() != node.outputs.len() {
            return Err(fail(format!("evaluator gave {} outputs, node has {}", outs.len(), node.outputs.len())));
        }
        for (&o, t) in node.outputs.iter().zip(outs) {
            let ty = g.ty(o);
            if t.dtype() != ty.dtype || t.shape() != ty.shape.as_slice() {
                return Err(fail(format!("evaluator gave {}{:?}, graph says {ty}", t.dtype(), t.shape())));
            }
            if let Some(slot) = vals.get_mut(o.0 as usize) {
                *slot = Some(t);
            }
        }
        for v in &node.inputs {
            let i = v.0 as usize;
            if let Some(u) = uses.get_mut(i) {
                *u = u.saturating_sub(1);
                if *u == 0 && matches!(g.value(*v).def, ValueDef::Node { .. }) {
                    vals[i] = None;
                }
            }
        }
    }
    g.outputs
        .iter()
        .map(|o| {
            vals.get(o.value.0 as usize).and_then(Clone::clone).ok_or_else(|| ExecError::Failed {
                node: String::new(),
                op: String::new(),
                msg: format!("graph output '{}' was not computed", o.name),
            })
        })
        .collect()
}
