//! Recurrent-state ops of linear-attention / state-space models (opset 27),
//! as compositions of existing IR ops, following the ONNX reference
//! (`onnx/reference/ops/op_linear_attention.py`,
//! `op_causal_conv_with_state.py`).
//!
//! `LinearAttention` is unrolled over the (static) sequence length T: per
//! step, the state `S[B, H_kv, d_k, d_v]` decays (`S *= exp(g_t)`, gated
//! rules), the value is delta-corrected (`v_t = β_t (v_t − Sᵀk_t)`, delta
//! rules), the outer product `k_t ⊗ v_t` is added, and the output is
//! `scale · q_t S` with K/V heads repeated for grouped-query attention. As in
//! the reference, everything is computed in f32 (half-precision inputs are
//! cast) and cast back at the end. The graph grows linearly in T.
//!
//! `CausalConvWithState` is a depthwise 1-D convolution (group = channels,
//! valid padding) over `concat(past_state or zeros, input)`, with an
//! optional SiLU, and the last `k − 1` positions of the padded input as the
//! new state. Half-precision inputs are computed in f32 (the reference
//! applies SiLU in f32) and cast back.

use kerf_ir::op::{BinaryOp, Conv, ConvAlgo, UnaryOp, Window};
use kerf_ir::{DType, Op, Tensor, ValueId};

use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("LinearAttention", linear_attention));
    r.push(("CausalConvWithState", causal_conv_with_state));
}

fn konst_f(cx: &mut Cx, dt: DType, what: &str, shape: Vec<usize>, v: &[f64]) -> Result<ValueId, ImportError> {
    let t = Tensor::from_f64_values(dt, shape, v).map_err(|e| cx.err(e.to_string()))?;
    Ok(cx.derived(what, t))
}

fn is_half(dt: DType) -> bool {
    matches!(dt, DType::F16 | DType::BF16)
}

/// `x` as f32 (a Cast for half types; f32 and f64 pass through).
fn widen(cx: &mut Cx, x: ValueId) -> Result<ValueId, ImportError> {
    if is_half(cx.ty(x).dtype) {
        cx.add1(Op::Cast(DType::F32), vec![x])
    } else {
        Ok(x)
    }
}

fn narrow(cx: &mut Cx, x: ValueId, dt: DType) -> Result<ValueId, ImportError> {
    if cx.ty(x).dtype == dt {
        Ok(x)
    } else {
        cx.add1(Op::Cast(dt), vec![x])
    }
}

/// `x[.., a:b, ..]` on `axis`, axis kept.
fn slice(cx: &mut Cx, x: ValueId, axis: usize, a: usize, b: usize) -> Result<ValueId, ImportError> {
    let s = cx.shape(x);
    let mut starts = vec![0i64; s.len()];
    let mut ends: Vec<i64> = s.iter().map(|&d| d as i64).collect();
    starts[axis] = a as i64;
    ends[axis] = b as i64;
    cx.add1(Op::Slice { starts, ends, steps: vec![1; s.len()] }, vec![x])
}

/// `[B, T, H·D]` → `[B, H, T, D]`.
fn heads(cx: &mut Cx, x: ValueId, h: usize, what: &str) -> Result<ValueId, ImportError> {
    let [b, t, hd] = cx.shape(x)[..] else {
        return Err(cx.err(format!("{what} must be rank 3 (B, T, H*D), got {}", cx.ty(x))));
    };
    if h == 0 || !hd.is_multiple_of(h) {
        return Err(cx.err(format!("{what} last dim {hd} is not divisible by {h} heads")));
    }
    let r = cx.add1(Op::Reshape { shape: vec![b, t, h, hd / h] }, vec![x])?;
    cx.add1(Op::Transpose { perm: vec![0, 2, 1, 3] }, vec![r])
}

fn linear_attention(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let (q, k, v) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let (past, decay, beta) = (cx.opt_input(3), cx.opt_input(4), cx.opt_input(5));
    let Rule { hq, hk, scale } = Rule::read(cx, decay.is_some(), beta.is_some())?;
    let out_dt = cx.ty(q).dtype;
    if !out_dt.is_float() {
        return Err(cx.err(format!("query must be floating point, got {}", cx.ty(q))));
    }
    let [b, t, _] = cx.shape(q)[..] else {
        return Err(cx.err(format!("query must be rank 3 (B, T, H*D), got {}", cx.ty(q))));
    };
    let (q, k, v) = (widen(cx, q)?, widen(cx, k)?, widen(cx, v)?);
    let q4 = heads(cx, q, hq, "query")?;
    let k4 = heads(cx, k, hk, "key")?;
    let v4 = heads(cx, v, hk, "value")?;
    let dk = cx.shape(q4)[3];
    let dv = cx.shape(v4)[3];
    if cx.shape(k4)[3] != dk || cx.shape(k4)[2] != t || cx.shape(v4)[2] != t {
        return Err(cx.err(format!(
            "query {:?}, key {:?} and value {:?} do not fit",
            cx.shape(q4),
            cx.shape(k4),
            cx.shape(v4)
        )));
    }
    let dt = cx.ty(q4).dtype;
    let decay4 = decay.map(|g| decay_heads(cx, g, (b, t, hk, dk))).transpose()?;
    let beta4 = beta.map(|be| beta_heads(cx, be, (b, t, hk))).transpose()?;
    let state_shape = vec![b, hk, dk, dv];
    let (mut s, state_dt) = match past {
        Some(p) => {
            if cx.shape(p) != state_shape {
                return Err(cx.err(format!("past_state {} does not match {state_shape:?}", cx.ty(p))));
            }
            let pdt = cx.ty(p).dtype;
            (widen(cx, p)?, pdt)
        }
        None => {
            let n = state_shape.iter().product();
            (konst_f(cx, dt, "state0", state_shape.clone(), &vec![0.0; n])?, out_dt)
        }
    };
    let scale = if scale == 0.0 { 1.0 / (dk as f64).sqrt() } else { f64::from(scale) };
    let scale_c = konst_f(cx, dt, "scale", vec![], &[scale])?;
    let mut outs = Vec::with_capacity(t);
    for i in 0..t {
        let inputs = Step { q4, k4, v4, decay4, beta4, i };
        let o;
        (s, o) = step(cx, s, inputs, (b, hq, hk, dk, dv))?;
        outs.push(cx.add1(Op::Binary(BinaryOp::Mul), vec![o, scale_c])?);
    }
    let o = if outs.len() == 1 { outs[0] } else { cx.add1(Op::Concat { axis: 2 }, outs)? };
    let o = cx.add1(Op::Transpose { perm: vec![0, 2, 1, 3] }, vec![o])?;
    let o = cx.add1(Op::Reshape { shape: vec![b, t, hq * dv] }, vec![o])?;
    let y = narrow(cx, o, out_dt)?;
    let present = narrow(cx, s, state_dt)?;
    Ok(vec![y, present])
}

/// A LinearAttention node's heads and scale, its update rule checked
/// against the inputs it has (gated rules need the decay, delta rules beta).
struct Rule {
    hq: usize,
    hk: usize,
    /// The `scale` attribute (0: `1/√d_k`).
    scale: f32,
}

impl Rule {
    fn read(cx: &Cx, has_decay: bool, has_beta: bool) -> Result<Rule, ImportError> {
        let a = cx.attrs();
        let rule = a.string("update_rule", "gated_delta")?;
        let hq = a.int_req("q_num_heads")?;
        let hk = a.int_req("kv_num_heads")?;
        let scale = a.float("scale", 0.0)?;
        let (gating, delta) = match rule.as_str() {
            "linear" => (false, false),
            "gated" => (true, false),
            "delta" => (false, true),
            "gated_delta" => (true, true),
            r => return Err(cx.err(format!("update_rule '{r}' is not one of linear, gated, delta, gated_delta"))),
        };
        if hq <= 0 || hk <= 0 || hq % hk != 0 {
            return Err(cx.err(format!("q_num_heads {hq} must be a positive multiple of kv_num_heads {hk}")));
        }
        let need = |yes: bool| if yes { "requires" } else { "forbids" };
        if gating != has_decay {
            return Err(cx.err(format!("update_rule '{rule}' {} the decay input", need(gating))));
        }
        if delta != has_beta {
            return Err(cx.err(format!("update_rule '{rule}' {} the beta input", need(delta))));
        }
        Ok(Rule { hq: hq as usize, hk: hk as usize, scale })
    }
}

/// The decay `[B, T, H_kv | H_kv·d_k]` as `[B, H_kv, T, 1 | d_k]`.
fn decay_heads(cx: &mut Cx, g: ValueId, (b, t, hk, dk): (usize, usize, usize, usize)) -> Result<ValueId, ImportError> {
    let g = widen(cx, g)?;
    let gs = cx.shape(g);
    if gs.len() != 3 || gs[0] != b || gs[1] != t {
        return Err(cx.err(format!("decay must be [B, T, H_kv or H_kv*d_k], got {gs:?}")));
    }
    if gs[2] == hk {
        let r = cx.add1(Op::Reshape { shape: vec![b, t, hk, 1] }, vec![g])?;
        cx.add1(Op::Transpose { perm: vec![0, 2, 1, 3] }, vec![r])
    } else if gs[2] == hk * dk {
        heads(cx, g, hk, "decay")
    } else {
        Err(cx.err(format!("decay last dim {} must be kv_num_heads or kv_num_heads*d_k", gs[2])))
    }
}

/// Beta `[B, T, H_kv | 1]` as `[B, H_kv | 1, T, 1]`.
fn beta_heads(cx: &mut Cx, be: ValueId, (b, t, hk): (usize, usize, usize)) -> Result<ValueId, ImportError> {
    let be = widen(cx, be)?;
    let bs = cx.shape(be);
    if bs.len() != 3 || bs[0] != b || bs[1] != t || (bs[2] != hk && bs[2] != 1) {
        return Err(cx.err(format!("beta must be [B, T, H_kv or 1], got {bs:?}")));
    }
    let r = cx.add1(Op::Reshape { shape: vec![b, t, bs[2], 1] }, vec![be])?;
    cx.add1(Op::Transpose { perm: vec![0, 2, 1, 3] }, vec![r])
}

/// What one step of [`step`] reads: the per-head sequences and the step.
#[derive(Clone, Copy)]
struct Step {
    q4: ValueId,
    k4: ValueId,
    v4: ValueId,
    decay4: Option<ValueId>,
    beta4: Option<ValueId>,
    i: usize,
}

/// Step `i` of the recurrence from state `s`: the decayed, delta-corrected,
/// updated state and the unscaled output `q_t S` (`[B, Hq, 1, dv]`).
fn step(
    cx: &mut Cx,
    mut s: ValueId,
    Step { q4, k4, v4, decay4, beta4, i }: Step,
    (b, hq, hk, dk, dv): (usize, usize, usize, usize, usize),
) -> Result<(ValueId, ValueId), ImportError> {
    let qt = slice(cx, q4, 2, i, i + 1)?; // [B, Hq, 1, dk]
    let kt = slice(cx, k4, 2, i, i + 1)?; // [B, Hkv, 1, dk]
    let mut vt = slice(cx, v4, 2, i, i + 1)?; // [B, Hkv, 1, dv]
    if let Some(g4) = decay4 {
        let gt = slice(cx, g4, 2, i, i + 1)?; // [B, Hkv, 1, X]
        let x = cx.shape(gt)[3];
        let gt = cx.add1(Op::Reshape { shape: vec![b, hk, x, 1] }, vec![gt])?;
        let e = cx.add1(Op::Unary(UnaryOp::Exp), vec![gt])?;
        s = cx.add1(Op::Binary(BinaryOp::Mul), vec![s, e])?;
    }
    if let Some(b4) = beta4 {
        let layer = cx.layer();
        let retrieved = cx.add1(Op::MatMul(layer), vec![kt, s])?; // [B, Hkv, 1, dv]
        let diff = cx.add1(Op::Binary(BinaryOp::Sub), vec![vt, retrieved])?;
        let bt = slice(cx, b4, 2, i, i + 1)?; // [B, Hb, 1, 1]
        vt = cx.add1(Op::Binary(BinaryOp::Mul), vec![bt, diff])?;
    }
    let kcol = cx.add1(Op::Reshape { shape: vec![b, hk, dk, 1] }, vec![kt])?;
    let outer = cx.add1(Op::Binary(BinaryOp::Mul), vec![kcol, vt])?; // [B, Hkv, dk, dv]
    s = cx.add1(Op::Binary(BinaryOp::Add), vec![s, outer])?;
    let group = hq / hk;
    let read = if group == 1 {
        s
    } else {
        let r = cx.add1(Op::Reshape { shape: vec![b, hk, 1, dk, dv] }, vec![s])?;
        let r = cx.add1(Op::Expand { shape: vec![b, hk, group, dk, dv] }, vec![r])?;
        cx.add1(Op::Reshape { shape: vec![b, hq, dk, dv] }, vec![r])?
    };
    let layer = cx.layer();
    let o = cx.add1(Op::MatMul(layer), vec![qt, read])?; // [B, Hq, 1, dv]
    Ok((s, o))
}

fn causal_conv_with_state(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    let (bias, past) = (cx.opt_input(2), cx.opt_input(3));
    let act = cx.attrs().string("activation", "none")?;
    let silu = match act.as_str() {
        "none" => false,
        "silu" | "swish" => true,
        a => return Err(cx.err(format!("activation '{a}' is not one of none, silu, swish"))),
    };
    let dt = cx.ty(x).dtype;
    if !dt.is_float() {
        return Err(cx.err(format!("input must be floating point, got {}", cx.ty(x))));
    }
    let [b, c, _] = cx.shape(x)[..] else {
        return Err(cx.err(format!("input must be rank 3 (B, C, L), got {}", cx.ty(x))));
    };
    let [wc, 1, k] = cx.shape(w)[..] else {
        return Err(cx.err(format!("weight must be [C, 1, k], got {}", cx.ty(w))));
    };
    if wc != c || k == 0 {
        return Err(cx.err(format!("weight {} does not fit input {}", cx.ty(w), cx.ty(x))));
    }
    let pad = match past {
        Some(p) => {
            if cx.shape(p) != [b, c, k - 1] {
                return Err(cx.err(format!("past_state {} must be [{b}, {c}, {}]", cx.ty(p), k - 1)));
            }
            Some(p)
        }
        None if k > 1 => Some(konst_f(cx, dt, "zero_state", vec![b, c, k - 1], &vec![0.0; b * c * (k - 1)])?),
        None => None,
    };
    let padded = match pad {
        Some(p) => cx.add1(Op::Concat { axis: 2 }, vec![p, x])?,
        None => x,
    };
    let total = cx.shape(padded)[2];
    let present = slice(cx, padded, 2, total + 1 - k, total)?;
    let pw = widen(cx, padded)?;
    let ww = widen(cx, w)?;
    let mut ins = vec![pw, ww];
    if let Some(bv) = bias {
        if cx.shape(bv) != [c] {
            return Err(cx.err(format!("bias {} must be [{c}]", cx.ty(bv))));
        }
        ins.push(widen(cx, bv)?);
    }
    let window = Window { kernel: vec![k], strides: vec![1], dilations: vec![1], pads: vec![0, 0] };
    let layer = cx.layer();
    let mut y = cx.add1(Op::Conv(Conv { window, group: c, layer, algo: ConvAlgo::Direct }), ins)?;
    if silu {
        let sg = cx.add1(Op::Unary(UnaryOp::Sigmoid), vec![y])?;
        y = cx.add1(Op::Binary(BinaryOp::Mul), vec![y, sg])?;
    }
    let y = narrow(cx, y, dt)?;
    Ok(vec![y, present])
}
