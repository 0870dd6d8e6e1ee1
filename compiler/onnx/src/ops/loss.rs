//! NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss as compositions of
//! existing IR ops (no kernel of their own).
//!
//! The class pick `input[n, target[n, d..], d..]` is a one-hot mask:
//! `Equal(target reshaped to [N,1,D..], iota [1,C,1..])`, cast to the input
//! type and multiplied by the class weights (or 1), so
//! `loss = -ReduceSum(input * mask, axis 1)`. A target equal to
//! `ignore_index` is replaced by -1 first, which matches no class: its loss
//! and its weight are 0, as the spec says. `mean` divides the summed loss by
//! the summed weights of the cases not ignored. Targets outside `[0, C)`
//! that are not `ignore_index` are undefined behaviour in the spec; here they
//! contribute 0.

use kerf_ir::op::{BinaryOp, ReduceKind, UnaryOp};
use kerf_ir::{Op, Tensor, ValueId};

use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("NegativeLogLikelihoodLoss", nll));
    r.push(("SoftmaxCrossEntropyLoss", sce));
}

fn nll(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let input = cx.input(0)?;
    let loss = nll_of(cx, input)?;
    Ok(vec![loss])
}

fn sce(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let scores = cx.input(0)?;
    if cx.ty(scores).rank() < 2 {
        return Err(cx.err(format!("scores must have rank >= 2 (N, C, ...), got {}", cx.ty(scores))));
    }
    let log_prob = cx.add1(Op::LogSoftmax { axis: 1 }, vec![scores])?;
    let loss = nll_of(cx, log_prob)?;
    Ok(vec![loss, log_prob])
}

/// The loss of log-probabilities `input` [N, C, D..] against input 1
/// (targets [N, D..]) with optional weights (input 2, [C]).
fn nll_of(cx: &mut Cx, input: ValueId) -> Result<ValueId, ImportError> {
    let target = cx.input(1)?;
    let weight = cx.opt_input(2);
    let a = cx.attrs();
    let reduction = a.string("reduction", "mean")?;
    let ignore = a.int_opt("ignore_index")?;
    let it = cx.ty(input).clone();
    let tt = cx.ty(target).clone();
    if !it.dtype.is_float() {
        return Err(cx.err(format!("input must be floating point, got {it}")));
    }
    if !tt.dtype.is_int() {
        return Err(cx.err(format!("target must be an integer tensor, got {tt}")));
    }
    let (n, c, rest) = match it.shape.as_slice() {
        [n, c, rest @ ..] => (*n, *c, rest.to_vec()),
        _ => return Err(cx.err(format!("input must have rank >= 2 (N, C, ...), got {it}"))),
    };
    let mut want_t = vec![n];
    want_t.extend(&rest);
    if tt.shape != want_t {
        return Err(cx.err(format!("target {tt} does not match input {it}: expected shape {want_t:?}")));
    }
    if let Some(w) = weight {
        let wt = cx.ty(w);
        if wt.shape != [c] || wt.dtype != it.dtype {
            return Err(cx.err(format!("weight {wt} must be {}[{c}]", it.dtype)));
        }
    }
    let rank = it.shape.len();
    let tdt = tt.dtype;
    let scalar = |cx: &mut Cx, what: &str, v: i64| -> Result<ValueId, ImportError> {
        let t = Tensor::from_i64_values(tdt, vec![], &[v]).map_err(|e| cx.err(e.to_string()))?;
        Ok(cx.derived(what, t))
    };

    // Ignored targets become -1, which no class matches.
    let target = match ignore {
        Some(ii) => {
            let iiv = scalar(cx, "ignore_index", ii)?;
            let none = scalar(cx, "no_class", -1)?;
            let is_ignored = cx.add1(Op::Binary(BinaryOp::Equal), vec![target, iiv])?;
            cx.add1(Op::Where, vec![is_ignored, none, target])?
        }
        None => target,
    };
    let mut t_shape = vec![n, 1];
    t_shape.extend(&rest);
    let t_u = cx.add1(Op::Reshape { shape: t_shape }, vec![target])?;
    let mut class_shape = vec![1; rank];
    class_shape[1] = c;
    let classes: Vec<i64> = (0..c as i64).collect();
    let iota = Tensor::from_i64_values(tdt, class_shape.clone(), &classes).map_err(|e| cx.err(e.to_string()))?;
    let iota = cx.derived("classes", iota);
    let hit = cx.add1(Op::Binary(BinaryOp::Equal), vec![t_u, iota])?;
    let mut mask = cx.add1(Op::Cast(it.dtype), vec![hit])?;
    if let Some(w) = weight {
        let wb = cx.add1(Op::Reshape { shape: class_shape }, vec![w])?;
        mask = cx.add1(Op::Binary(BinaryOp::Mul), vec![mask, wb])?;
    }
    let picked = cx.add1(Op::Binary(BinaryOp::Mul), vec![input, mask])?;
    let picked = cx.add1(Op::Reduce { kind: ReduceKind::Sum, axes: vec![1], keepdims: false }, vec![picked])?;
    let loss = cx.add1(Op::Unary(UnaryOp::Neg), vec![picked])?;
    let all = |r: usize| Op::Reduce { kind: ReduceKind::Sum, axes: (0..r).collect(), keepdims: false };
    match reduction.as_str() {
        "none" => Ok(loss),
        "sum" => cx.add1(all(rank - 1), vec![loss]),
        "mean" => {
            let total = cx.add1(all(rank - 1), vec![loss])?;
            let weights = cx.add1(all(rank), vec![mask])?;
            cx.add1(Op::Binary(BinaryOp::Div), vec![total, weights])
        }
        other => Err(cx.err(format!("unknown reduction '{other}' (expected none, sum or mean)"))),
    }
}
