//! Attention (opset 23/24) as a composition of existing IR ops, following
//! the ONNX reference (`onnx/reference/ops/op_attention.py`):
//!
//! 3-D inputs `[B, S, H·D]` are split into heads (`q_num_heads`,
//! `kv_num_heads`) and moved to `[B, H, S, D]`; `past_key`/`past_value` are
//! concatenated in front of K/V on the sequence axis (the `present_*`
//! outputs); K/V heads are repeated for grouped-query attention; then
//! `qk = (Q·√scale)(K·√scale)ᵀ`, optional `softcap·tanh(qk/softcap)`, plus
//! the bias (the attention mask, booleans as 0/-inf and padded with -inf up
//! to the key length, and the causal mask `j <= i + past_len`), softmax over
//! the keys (rows whose bias is all -inf give 0, as the reference) and `·V`.
//! The `qk_matmul_output` output follows `qk_matmul_output_mode` (0/1: after
//! softcap, 2: with the bias, 3: after softmax).
//!
//! Not supported (an error naming the feature): `nonpad_kv_seqlen` and the
//! sliding-window attributes.

use kerf_ir::op::{BinaryOp, PadMode, ReduceKind, UnaryOp};
use kerf_ir::{DType, Op, Tensor, ValueId, F32};

use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("Attention", attention));
}

fn konst_f(cx: &mut Cx, dt: DType, what: &str, shape: Vec<usize>, v: &[f64]) -> Result<ValueId, ImportError> {
    let t = Tensor::from_f64_values(dt, shape, v).map_err(|e| cx.err(e.to_string()))?;
    Ok(cx.derived(what, t))
}

/// `[B, S, H·D]` → `[B, H, S, D]`.
fn split_heads(cx: &mut Cx, x: ValueId, heads: usize, what: &str) -> Result<ValueId, ImportError> {
    let s = cx.shape(x);
    let [b, n, hidden] = s[..] else {
        return Err(cx.err(format!("{what} must be 3-D or 4-D, got {}", cx.ty(x))));
    };
    if heads == 0 || !hidden.is_multiple_of(heads) {
        return Err(cx.err(format!("{what} hidden size {hidden} is not divisible by {heads} heads")));
    }
    let r = cx.add1(Op::Reshape { shape: vec![b, n, heads, hidden / heads] }, vec![x])?;
    cx.add1(Op::Transpose { perm: vec![0, 2, 1, 3] }, vec![r])
}

fn attention(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let (q, k, v) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let mask = cx.opt_input(3);
    let (past_k, past_v) = (cx.opt_input(4), cx.opt_input(5));
    if cx.opt_input(6).is_some() {
        return Err(cx.err("input 'nonpad_kv_seqlen' is not supported"));
    }
    let a = cx.attrs();
    if a.int("left_window_size", -1)? >= 0 || a.int("right_window_size", -1)? >= 0 {
        return Err(cx.err("sliding-window attention is not supported"));
    }
    let is_causal = a.bool("is_causal", false)?;
    let scale = a.float_opt("scale")?;
    let softcap = a.float("softcap", 0.0)?;
    let mode = a.int("qk_matmul_output_mode", 0)?;
    let dt = cx.ty(q).dtype;
    if !dt.is_float() {
        return Err(cx.err(format!("Q must be floating point, got {}", cx.ty(q))));
    }
    let three_d = cx.ty(q).rank() == 3;
    let (q, k, v) = if three_d {
        let qh = usize::try_from(a.int_req("q_num_heads")?).map_err(|_| cx.err("q_num_heads must be positive"))?;
        let kh = usize::try_from(a.int_req("kv_num_heads")?).map_err(|_| cx.err("kv_num_heads must be positive"))?;
        (split_heads(cx, q, qh, "Q")?, split_heads(cx, k, kh, "K")?, split_heads(cx, v, kh, "V")?)
    } else {
        (q, k, v)
    };
    let (qs, ks, vs) = (cx.shape(q), cx.shape(k), cx.shape(v));
    let (&[b, hq, sq, d], &[_, hk, _, dk], &[_, hv, _, _]) = (qs.as_slice(), ks.as_slice(), vs.as_slice()) else {
        return Err(cx.err("Q, K and V must all be 3-D or all 4-D"));
    };
    if dk != d || hk != hv || hk == 0 || !hq.is_multiple_of(hk) {
        return Err(cx.err(format!("Q {qs:?}, K {ks:?} and V {vs:?} do not fit together")));
    }
    let past_len = match past_k {
        Some(p) => cx.shape(p).get(2).copied().unwrap_or(0),
        None => 0,
    };
    let k = match past_k {
        Some(p) => cx.add1(Op::Concat { axis: 2 }, vec![p, k])?,
        None => k,
    };
    let v = match past_v {
        Some(p) => cx.add1(Op::Concat { axis: 2 }, vec![p, v])?,
        None => v,
    };
    let (present_k, present_v) = (k, v);
    let skv = cx.shape(k).get(2).copied().unwrap_or(0);

    // Grouped-query attention: each K/V head serves hq/hk query heads.
    let rep = hq / hk;
    let repeat = |cx: &mut Cx, x: ValueId| -> Result<ValueId, ImportError> {
        if rep == 1 {
            return Ok(x);
        }
        let s = cx.shape(x);
        let (n, e) = (s.get(2).copied().unwrap_or(0), s.get(3).copied().unwrap_or(0));
        let r = cx.add1(Op::Reshape { shape: vec![b, hk, 1, n, e] }, vec![x])?;
        let r = cx.add1(Op::Expand { shape: vec![b, hk, rep, n, e] }, vec![r])?;
        cx.add1(Op::Reshape { shape: vec![b, hq, n, e] }, vec![r])
    };
    let k = repeat(cx, k)?;
    let v = repeat(cx, v)?;

    let scale = scale.map_or(1.0 / (d as f64).sqrt(), f64::from).sqrt();
    let sc = konst_f(cx, dt, "scale", vec![], &[scale])?;
    let qsc = cx.add1(Op::Binary(BinaryOp::Mul), vec![q, sc])?;
    let ksc = cx.add1(Op::Binary(BinaryOp::Mul), vec![k, sc])?;
    let kt = cx.add1(Op::Transpose { perm: vec![0, 1, 3, 2] }, vec![ksc])?;
    let layer = cx.layer();
    let mut qk = cx.add1(Op::MatMul(layer), vec![qsc, kt])?;
    if softcap > 0.0 {
        let c = konst_f(cx, dt, "softcap", vec![], &[f64::from(softcap)])?;
        let t = cx.add1(Op::Binary(BinaryOp::Div), vec![qk, c])?;
        let t = cx.add1(Op::Unary(UnaryOp::Tanh), vec![t])?;
        qk = cx.add1(Op::Binary(BinaryOp::Mul), vec![t, c])?;
    }
    let qk_capped = qk;

    // The bias: mask (0/-inf for booleans, padded with -inf) plus causal.
    let ninf = f64::NEG_INFINITY;
    let mut bias: Option<ValueId> = None;
    if let Some(m) = mask {
        let mt = cx.ty(m).clone();
        let mut mf = if mt.dtype == DType::Bool {
            let zero = konst_f(cx, dt, "mask_zero", vec![], &[0.0])?;
            let inf = konst_f(cx, dt, "mask_ninf", vec![], &[ninf])?;
            cx.add1(Op::Where, vec![m, zero, inf])?
        } else if mt.dtype == dt {
            m
        } else {
            return Err(cx.err(format!("attn_mask {mt} must be bool or {dt}")));
        };
        let last = mt.shape.last().copied().unwrap_or(0);
        if last < skv {
            let r = mt.rank();
            let mut pads = vec![0; 2 * r];
            pads[2 * r - 1] = skv - last;
            mf = cx.add1(Op::Pad { pads, mode: PadMode::Constant, value: F32::new(f32::NEG_INFINITY) }, vec![mf])?;
        }
        bias = Some(mf);
    }
    if is_causal {
        let mut c = Vec::with_capacity(sq * skv);
        for i in 0..sq {
            for j in 0..skv {
                c.push(if j <= i + past_len { 0.0 } else { ninf });
            }
        }
        let c = konst_f(cx, dt, "causal", vec![sq, skv], &c)?;
        bias = Some(match bias {
            Some(m) => cx.add1(Op::Binary(BinaryOp::Add), vec![m, c])?,
            None => c,
        });
    }
    let with_bias = match bias {
        Some(bv) => cx.add1(Op::Binary(BinaryOp::Add), vec![qk, bv])?,
        None => qk,
    };
    let mut probs = cx.add1(Op::Softmax { axis: 3 }, vec![with_bias])?;
    if let Some(bv) = bias {
        // Rows the bias masks completely give 0 (softmax alone gives NaN).
        let r = cx.ty(bv).rank();
        let last = r.saturating_sub(1);
        let mx = cx.add1(Op::Reduce { kind: ReduceKind::Max, axes: vec![last], keepdims: true }, vec![bv])?;
        let inf = konst_f(cx, dt, "row_ninf", vec![], &[ninf])?;
        let dead = cx.add1(Op::Binary(BinaryOp::Equal), vec![mx, inf])?;
        let zero = konst_f(cx, dt, "row_zero", vec![], &[0.0])?;
        probs = cx.add1(Op::Where, vec![dead, zero, probs])?;
    }
    let layer = cx.layer();
    let mut y = cx.add1(Op::MatMul(layer), vec![probs, v])?;
    if three_d {
        let dv = cx.shape(y).get(3).copied().unwrap_or(0);
        let t = cx.add1(Op::Transpose { perm: vec![0, 2, 1, 3] }, vec![y])?;
        y = cx.add1(Op::Reshape { shape: vec![b, sq, hq * dv] }, vec![t])?;
    }
    let qk_out = match mode {
        0 | 1 => qk_capped,
        2 => with_bias,
        3 => probs,
        m => return Err(cx.err(format!("qk_matmul_output_mode {m} is not supported"))),
    };
    Ok(vec![y, present_k, present_v, qk_out])
}
