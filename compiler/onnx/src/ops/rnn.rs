//! LSTM, GRU and RNN. The IR takes the full ONNX input list (LSTM: X W R B
//! H0 C0 P; GRU and RNN: X W R B H0) in `[seq, batch, ...]` layout, so absent optional
//! inputs become zero constants (`Origin::Derived`) and `layout=1` models get
//! Transposes around the op. `sequence_lens` becomes the op's optional
//! last input (i32) unless it is a constant equal to the sequence length
//! everywhere; a run-time one stays a run-time input.

use kerf_ir::op::{Activation, Direction, Rnn};
use kerf_ir::{DType, Op, Tensor, ValueId, F32};

use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("LSTM", rnn));
    r.push(("GRU", rnn));
    r.push(("RNN", rnn));
}

fn activations(cx: &Cx, per_dir: &[&str], dirs: usize) -> Result<Vec<Activation>, ImportError> {
    let a = cx.attrs();
    let names: Vec<String> = match a.strings_opt("activations")? {
        Some(v) if v.len() == per_dir.len() && dirs == 2 => v.iter().chain(v.iter()).cloned().collect(),
        Some(v) => v,
        None => (0..dirs).flat_map(|_| per_dir.iter().map(|s| s.to_string())).collect(),
    };
    let alphas = a.floats_opt("activation_alpha")?.unwrap_or_default();
    let betas = a.floats_opt("activation_beta")?.unwrap_or_default();
    let (mut ai, mut bi) = (alphas.iter(), betas.iter());
    let mut out = Vec::with_capacity(names.len());
    for n in &names {
        let mut alpha = |d: f32| F32::new(ai.next().copied().unwrap_or(d));
        let act = match n.to_ascii_lowercase().as_str() {
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "relu" => Activation::Relu,
            "softsign" => Activation::Softsign,
            "softplus" => Activation::Softplus,
            "leakyrelu" => Activation::LeakyRelu(alpha(0.01)),
            "thresholdedrelu" => Activation::ThresholdedRelu(alpha(1.0)),
            "elu" => Activation::Elu(alpha(1.0)),
            "hardsigmoid" => {
                let x = alpha(0.2);
                Activation::HardSigmoid(x, F32::new(bi.next().copied().unwrap_or(0.5)))
            }
            "affine" => {
                let x = alpha(1.0);
                Activation::Affine(x, F32::new(bi.next().copied().unwrap_or(0.0)))
            }
            "scaledtanh" => {
                let x = alpha(1.0);
                Activation::ScaledTanh(x, F32::new(bi.next().copied().unwrap_or(1.0)))
            }
            other => return Err(cx.err(format!("unknown activation '{other}'"))),
        };
        out.push(act);
    }
    Ok(out)
}

fn rnn(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let is_lstm = cx.op() == "LSTM";
    let is_gru = cx.op() == "GRU";
    let gates = match cx.op() {
        "LSTM" => 4,
        "GRU" => 3,
        _ => 1,
    };
    let a = cx.attrs();
    let direction = match a.string("direction", "forward")?.as_str() {
        "forward" => Direction::Forward,
        "reverse" => Direction::Reverse,
        "bidirectional" => Direction::Bidirectional,
        other => return Err(cx.err(format!("unknown direction '{other}'"))),
    };
    let dirs = direction.num_directions();
    let layout = a.int("layout", 0)?;
    if layout != 0 && layout != 1 {
        return Err(cx.err(format!("layout must be 0 or 1, got {layout}")));
    }
    let (mut x, w, r) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let ws = cx.shape(w);
    if ws.len() != 3 || !ws[1].is_multiple_of(gates) {
        return Err(cx.err(format!("W must be [directions, {gates}*hidden, input], got {}", cx.ty(w))));
    }
    let hidden = match a.int_opt("hidden_size")? {
        Some(h) => usize::try_from(h).map_err(|_| cx.err("hidden_size must be positive"))?,
        None => ws[1] / gates,
    };
    if layout == 1 {
        x = cx.add1(Op::Transpose { perm: vec![1, 0, 2] }, vec![x])?;
    }
    let xs = cx.shape(x);
    if xs.len() != 3 {
        return Err(cx.err(format!("X must have rank 3, got {}", cx.ty(x))));
    }
    let (seq, batch) = (xs[0], xs[1]);
    let dt = cx.ty(x).dtype;
    let zeros = |cx: &mut Cx, what: &str, shape: Vec<usize>| -> Result<ValueId, ImportError> {
        let t = Tensor::splat(dt, shape, 0.0)?;
        Ok(cx.derived(what, t))
    };
    let b = match cx.opt_input(3) {
        Some(b) => b,
        None => zeros(cx, "B", vec![dirs, 2 * gates * hidden])?,
    };
    let lens = sequence_lens(cx, seq, batch)?;
    let state = |cx: &mut Cx, i: usize, what: &str| -> Result<ValueId, ImportError> {
        match cx.opt_input(i) {
            Some(v) if layout == 1 => cx.add1(Op::Transpose { perm: vec![1, 0, 2] }, vec![v]),
            Some(v) => Ok(v),
            None => zeros(cx, what, vec![dirs, batch, hidden]),
        }
    };
    let h0 = state(cx, 5, "initial_h")?;
    let mut ins = vec![x, w, r, b, h0];
    if is_lstm {
        let c0 = state(cx, 6, "initial_c")?;
        let p = match cx.opt_input(7) {
            Some(p) => p,
            None => zeros(cx, "P", vec![dirs, 3 * hidden])?,
        };
        ins.push(c0);
        ins.push(p);
    }
    let per_dir: &[&str] = match gates {
        4 => &["Sigmoid", "Tanh", "Tanh"],
        3 => &["Sigmoid", "Tanh"],
        _ => &["Tanh"],
    };
    ins.extend(lens);
    let acts = activations(cx, per_dir, dirs)?;
    let clip = a.float_opt("clip")?.map(F32::new);
    let rnn = Rnn {
        hidden,
        direction,
        activations: acts,
        clip,
        linear_before_reset: is_gru && a.bool("linear_before_reset", false)?,
        input_forget: is_lstm && a.bool("input_forget", false)?,
        layer: cx.layer(),
    };
    let op = match gates {
        4 => Op::Lstm(rnn),
        3 => Op::Gru(rnn),
        _ => Op::Rnn(rnn),
    };
    let mut outs = cx.add(op, ins)?;
    if layout == 1 {
        for (k, v) in outs.iter_mut().enumerate() {
            if !cx.output_used(k) {
                continue;
            }
            let perm = if k == 0 { vec![2, 0, 1, 3] } else { vec![1, 0, 2] };
            *v = cx.add1(Op::Transpose { perm }, vec![*v])?;
        }
    }
    Ok(outs)
}

/// The op's per-row lengths input: `None` when absent or a constant that is
/// `seq` everywhere; a constant outside `[0, seq]` is an error; else the
/// value as i32 `[batch]` (a run-time one is clamped by the kernel).
fn sequence_lens(cx: &mut Cx, seq: usize, batch: usize) -> Result<Option<ValueId>, ImportError> {
    let Some(v) = cx.opt_input(4) else { return Ok(None) };
    let ty = cx.ty(v).clone();
    if !matches!(ty.dtype, DType::I32 | DType::I64) || ty.shape != [batch] {
        return Err(
            cx.err(format!("sequence_lens must be int32 or int64 [{batch}] (one length per batch row), got {ty}"))
        );
    }
    if let Some(t) = cx.g.const_of(v) {
        let lens = t.to_i64_vec();
        if let Some(bad) = lens.iter().find(|&&l| l < 0 || l > seq as i64) {
            return Err(cx.err(format!("sequence_lens {lens:?}: length {bad} is outside [0, {seq}]")));
        }
        if lens.iter().all(|&l| l == seq as i64) {
            return Ok(None);
        }
    }
    if ty.dtype == DType::I32 {
        return Ok(Some(v));
    }
    Ok(Some(cx.add1(Op::Cast(DType::I32), vec![v])?))
}
