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
//! The causal and sliding-window masks are aligned at an offset: the past
//! length, or with `nonpad_kv_seqlen` (an external cache) `nonpad[b] − S_q`
//! per batch, computed at run time from that input; `nonpad_kv_seqlen` also
//! masks keys at or past `nonpad[b]`. Masks with a static offset are
//! constants; per-batch ones are integer comparisons against constant
//! iotas, selected to 0/-inf with `Where`.

use kerf_ir::op::{BinaryOp, PadMode, ReduceKind, UnaryOp};
use kerf_ir::{DType, Op, Tensor, ValueId, F32};

use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
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
    let nonpad = cx.opt_input(6);
    let a = cx.attrs();
    let left = a.int("left_window_size", -1)?;
    let right = a.int("right_window_size", -1)?;
    if left < -1 || right < -1 {
        return Err(cx.err(format!("window sizes must be -1 or non-negative, got {left} and {right}")));
    }
    if nonpad.is_some() && past_k.is_some() {
        return Err(cx.err("nonpad_kv_seqlen cannot be combined with past_key/past_value"));
    }
    let is_causal = a.bool("is_causal", false)?;
    let scale = a.float_opt("scale")?;
    let softcap = a.float("softcap", 0.0)?;
    let mode = a.int("qk_matmul_output_mode", 0)?;
    let out_dt = cx.ty(q).dtype;
    if !out_dt.is_float() {
        return Err(cx.err(format!("Q must be floating point, got {}", cx.ty(q))));
    }
    // Half-precision attention is computed in f32 and rounded once at the
    // end (at least as accurate as the reference's half arithmetic).
    let half = matches!(out_dt, DType::F16 | DType::BF16);
    let widen = |cx: &mut Cx, x: Option<ValueId>| -> Result<Option<ValueId>, ImportError> {
        match x {
            Some(x) if half && cx.ty(x).dtype == out_dt => Ok(Some(cx.add1(Op::Cast(DType::F32), vec![x])?)),
            other => Ok(other),
        }
    };
    let (q, k, v) = if half {
        (
            cx.add1(Op::Cast(DType::F32), vec![q])?,
            cx.add1(Op::Cast(DType::F32), vec![k])?,
            cx.add1(Op::Cast(DType::F32), vec![v])?,
        )
    } else {
        (q, k, v)
    };
    let (mask, past_k, past_v) = (widen(cx, mask)?, widen(cx, past_k)?, widen(cx, past_v)?);
    let dt = cx.ty(q).dtype;
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
    let kv = with_past(cx, (k, v), (past_k, past_v), (b, hq, hk))?;
    let (k, v, skv, past_len) = (kv.k, kv.v, kv.skv, kv.past_len);
    let (present_k, present_v) = kv.present;

    let qk = scores(cx, dt, (q, k), d, scale, softcap)?;
    let window = (left >= 0 || right >= 0).then_some((left, right));
    let masks = Masks { mask, is_causal, window, nonpad, past_len };
    let bias = bias(cx, dt, &masks, (b, sq, skv))?;
    let with_bias = match bias {
        Some(bv) => cx.add1(Op::Binary(BinaryOp::Add), vec![qk, bv])?,
        None => qk,
    };
    let probs = masked_softmax(cx, dt, with_bias, bias)?;
    let layer = cx.layer();
    let mut y = cx.add1(Op::MatMul(layer), vec![probs, v])?;
    if three_d {
        let dv = cx.shape(y).get(3).copied().unwrap_or(0);
        let t = cx.add1(Op::Transpose { perm: vec![0, 2, 1, 3] }, vec![y])?;
        y = cx.add1(Op::Reshape { shape: vec![b, sq, hq * dv] }, vec![t])?;
    }
    let qk_out = match mode {
        0 | 1 => qk,
        2 => with_bias,
        3 => probs,
        m => return Err(cx.err(format!("qk_matmul_output_mode {m} is not supported"))),
    };
    let mut outs = vec![y, present_k, present_v, qk_out];
    if half {
        for o in &mut outs {
            *o = cx.add1(Op::Cast(out_dt), vec![*o])?;
        }
    }
    Ok(outs)
}

/// K and V as the scores and the weighted sum read them ([`with_past`]).
struct KeysValues {
    /// K and V with every query head's copy (grouped-query attention).
    k: ValueId,
    v: ValueId,
    /// K and V after the past: the `present_key` and `present_value` outputs.
    present: (ValueId, ValueId),
    /// Keys in all (past and new).
    skv: usize,
    /// Keys of the past.
    past_len: usize,
}

/// K and V after their past values (`Concat` on the sequence axis), then
/// each K/V head repeated for the `hq / hk` query heads it serves.
fn with_past(
    cx: &mut Cx,
    (k, v): (ValueId, ValueId),
    (past_k, past_v): (Option<ValueId>, Option<ValueId>),
    (b, hq, hk): (usize, usize, usize),
) -> Result<KeysValues, ImportError> {
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
    let skv = cx.shape(k).get(2).copied().unwrap_or(0);
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
    let (rk, rv) = (repeat(cx, k)?, repeat(cx, v)?);
    Ok(KeysValues { k: rk, v: rv, present: (k, v), skv, past_len })
}

/// `qk = (Q·√scale)(K·√scale)ᵀ` (the scale defaults to `1/√d`), then
/// `softcap·tanh(qk/softcap)` when `softcap > 0`.
fn scores(
    cx: &mut Cx,
    dt: DType,
    (q, k): (ValueId, ValueId),
    d: usize,
    scale: Option<f32>,
    softcap: f32,
) -> Result<ValueId, ImportError> {
    let scale = scale.map_or(1.0 / (d as f64).sqrt(), f64::from).sqrt();
    let sc = konst_f(cx, dt, "scale", vec![], &[scale])?;
    let qsc = cx.add1(Op::Binary(BinaryOp::Mul), vec![q, sc])?;
    let ksc = cx.add1(Op::Binary(BinaryOp::Mul), vec![k, sc])?;
    let kt = cx.add1(Op::Transpose { perm: vec![0, 1, 3, 2] }, vec![ksc])?;
    let layer = cx.layer();
    let qk = cx.add1(Op::MatMul(layer), vec![qsc, kt])?;
    if softcap > 0.0 {
        let c = konst_f(cx, dt, "softcap", vec![], &[f64::from(softcap)])?;
        let t = cx.add1(Op::Binary(BinaryOp::Div), vec![qk, c])?;
        let t = cx.add1(Op::Unary(UnaryOp::Tanh), vec![t])?;
        return cx.add1(Op::Binary(BinaryOp::Mul), vec![t, c]);
    }
    Ok(qk)
}

/// What masks the scores: the attention mask, the causal and sliding-window
/// masks at their offset (the past length, or per batch from
/// `nonpad_kv_seqlen`), and the key padding of `nonpad_kv_seqlen`.
struct Masks {
    mask: Option<ValueId>,
    is_causal: bool,
    window: Option<(i64, i64)>,
    nonpad: Option<ValueId>,
    past_len: usize,
}

/// The bias added to the scores (`None`: no mask at all): the attention
/// mask (0/-inf for booleans, padded with -inf up to the key length), plus
/// the causal and window masks, plus the key padding.
fn bias(
    cx: &mut Cx,
    dt: DType,
    m: &Masks,
    (b, sq, skv): (usize, usize, usize),
) -> Result<Option<ValueId>, ImportError> {
    let mut bias: Option<ValueId> = None;
    if let Some(mask) = m.mask {
        let mt = cx.ty(mask).clone();
        let mut mf = if mt.dtype == DType::Bool {
            let zero = konst_f(cx, dt, "mask_zero", vec![], &[0.0])?;
            let inf = konst_f(cx, dt, "mask_ninf", vec![], &[f64::NEG_INFINITY])?;
            cx.add1(Op::Where, vec![mask, zero, inf])?
        } else if mt.dtype == dt {
            mask
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
    let offset = match m.nonpad {
        Some(np) => {
            let nt = cx.ty(np).clone();
            if nt.dtype != DType::I64 || nt.numel() != b {
                return Err(cx.err(format!("nonpad_kv_seqlen {nt} must be int64 with {b} elements")));
            }
            Offset::PerBatch(np)
        }
        None => Offset::Fixed(m.past_len as i64),
    };
    let mut extra = Vec::new();
    if m.is_causal {
        extra.push(position_mask(cx, dt, &offset, sq, skv, None, b)?);
    }
    if let Some(w) = m.window {
        extra.push(position_mask(cx, dt, &offset, sq, skv, Some(w), b)?);
    }
    if let Some(np) = m.nonpad {
        extra.push(key_padding(cx, dt, np, skv, b)?);
    }
    for e in extra {
        bias = Some(match bias {
            Some(m) => cx.add1(Op::Binary(BinaryOp::Add), vec![m, e])?,
            None => e,
        });
    }
    Ok(bias)
}

/// Softmax over the keys of the biased scores; rows the bias masks
/// completely give 0 (softmax alone gives NaN there), as the reference.
fn masked_softmax(cx: &mut Cx, dt: DType, with_bias: ValueId, bias: Option<ValueId>) -> Result<ValueId, ImportError> {
    let probs = cx.add1(Op::Softmax { axis: 3 }, vec![with_bias])?;
    let Some(bv) = bias else { return Ok(probs) };
    let last = cx.ty(bv).rank().saturating_sub(1);
    let mx = cx.add1(Op::Reduce { kind: ReduceKind::Max, axes: vec![last], keepdims: true }, vec![bv])?;
    let inf = konst_f(cx, dt, "row_ninf", vec![], &[f64::NEG_INFINITY])?;
    let dead = cx.add1(Op::Binary(BinaryOp::Equal), vec![mx, inf])?;
    let zero = konst_f(cx, dt, "row_zero", vec![], &[0.0])?;
    cx.add1(Op::Where, vec![dead, zero, probs])
}

/// Where the causal/window frontier of query row `i` sits: key `j` is at
/// relative position `i + offset - j`.
enum Offset {
    /// Past length (0 without a cache).
    Fixed(i64),
    /// `nonpad_kv_seqlen[b] - S_q`, at run time.
    PerBatch(ValueId),
}

/// The causal mask (`window` None: `j <= i + offset`) or the sliding
/// window (`i + offset - j <= left` and `j - (i + offset) <= right`, -1
/// unbounded) as a 0/-inf bias: `[S_q, S_kv]` for a fixed offset,
/// `[B, 1, S_q, S_kv]` per batch.
fn position_mask(
    cx: &mut Cx,
    dt: DType,
    offset: &Offset,
    sq: usize,
    skv: usize,
    window: Option<(i64, i64)>,
    b: usize,
) -> Result<ValueId, ImportError> {
    let ok = |diff: i64| match window {
        None => diff >= 0,
        Some((l, r)) => (l < 0 || diff <= l) && (r < 0 || -diff <= r),
    };
    let ninf = f64::NEG_INFINITY;
    match offset {
        Offset::Fixed(o) => {
            let mut v = Vec::with_capacity(sq * skv);
            for i in 0..sq as i64 {
                for j in 0..skv as i64 {
                    v.push(if ok(i + o - j) { 0.0 } else { ninf });
                }
            }
            konst_f(cx, dt, if window.is_some() { "window" } else { "causal" }, vec![sq, skv], &v)
        }
        Offset::PerBatch(np) => {
            // diff[b, i, j] = nonpad[b] - sq + i - j = nonpad[b] + c[i, j]
            let c: Vec<i64> = (0..sq as i64).flat_map(|i| (0..skv as i64).map(move |j| i - j - sq as i64)).collect();
            let c = Tensor::from_i64_values(DType::I64, vec![1, sq, skv], &c).map_err(|e| cx.err(e.to_string()))?;
            let c = cx.derived("rel_pos", c);
            let n = cx.add1(Op::Reshape { shape: vec![b, 1, 1] }, vec![*np])?;
            let diff = cx.add1(Op::Binary(BinaryOp::Add), vec![n, c])?;
            let int = |cx: &mut Cx, what: &str, x: i64| -> Result<ValueId, ImportError> {
                let t = Tensor::from_i64_values(DType::I64, vec![], &[x]).map_err(|e| cx.err(e.to_string()))?;
                Ok(cx.derived(what, t))
            };
            let allowed = match window {
                None => {
                    let z = int(cx, "zero_i", 0)?;
                    cx.add1(Op::Binary(BinaryOp::GreaterOrEqual), vec![diff, z])?
                }
                Some((l, r)) => {
                    let mut parts = Vec::new();
                    if l >= 0 {
                        let lv = int(cx, "left", l)?;
                        parts.push(cx.add1(Op::Binary(BinaryOp::LessOrEqual), vec![diff, lv])?);
                    }
                    if r >= 0 {
                        let rv = int(cx, "neg_right", -r)?;
                        parts.push(cx.add1(Op::Binary(BinaryOp::GreaterOrEqual), vec![diff, rv])?);
                    }
                    let mut acc = parts[0];
                    for p in parts.into_iter().skip(1) {
                        acc = cx.add1(Op::Binary(BinaryOp::And), vec![acc, p])?;
                    }
                    acc
                }
            };
            let zero = konst_f(cx, dt, "pos_zero", vec![], &[0.0])?;
            let inf = konst_f(cx, dt, "pos_ninf", vec![], &[ninf])?;
            let m = cx.add1(Op::Where, vec![allowed, zero, inf])?;
            cx.add1(Op::Reshape { shape: vec![b, 1, sq, skv] }, vec![m])
        }
    }
}

/// Keys at or past `nonpad[b]` masked: a `[B, 1, 1, S_kv]` 0/-inf bias.
fn key_padding(cx: &mut Cx, dt: DType, np: ValueId, skv: usize, b: usize) -> Result<ValueId, ImportError> {
    let iota: Vec<i64> = (0..skv as i64).collect();
    let iota = Tensor::from_i64_values(DType::I64, vec![1, skv], &iota).map_err(|e| cx.err(e.to_string()))?;
    let iota = cx.derived("key_iota", iota);
    let n = cx.add1(Op::Reshape { shape: vec![b, 1] }, vec![np])?;
    let valid = cx.add1(Op::Binary(BinaryOp::Less), vec![iota, n])?;
    let zero = konst_f(cx, dt, "pad_zero", vec![], &[0.0])?;
    let inf = konst_f(cx, dt, "pad_ninf", vec![], &[f64::NEG_INFINITY])?;
    let m = cx.add1(Op::Where, vec![valid, zero, inf])?;
    cx.add1(Op::Reshape { shape: vec![b, 1, 1, skv] }, vec![m])
}
