//! RotaryEmbedding (opset 23) as a composition of existing IR ops,
//! following the ONNX reference (`onnx/reference/ops/op_rotary_embedding.py`):
//!
//! the input is brought to `[B, S, H, D]` (4-D `[B, H, S, D]` transposed,
//! 3-D `[B, S, H·D]` split by `num_heads`); the cos/sin caches are gathered
//! by `position_ids` (or used as `[B, S, R/2]` directly) and broadcast over
//! heads; the first `R = rotary_embedding_dim` (default D) channels are
//! split into halves (or even/odd channels when `interleaved`) and rotated:
//! `real = cos·x1 − sin·x2`, `imag = sin·x1 + cos·x2`, written back in the
//! same layout; the remaining channels pass through.

use kerf_ir::op::BinaryOp;
use kerf_ir::{Op, ValueId};

use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("RotaryEmbedding", rotary_embedding));
}

/// `x[..., a:b:step]` on the last axis.
fn last_slice(cx: &mut Cx, x: ValueId, a: usize, b: usize, step: usize) -> Result<ValueId, ImportError> {
    let s = cx.shape(x);
    let r = s.len();
    let mut starts = vec![0i64; r];
    let mut ends: Vec<i64> = s.iter().map(|&d| d as i64).collect();
    let mut steps = vec![1i64; r];
    starts[r - 1] = a as i64;
    ends[r - 1] = b as i64;
    steps[r - 1] = step as i64;
    cx.add1(Op::Slice { starts, ends, steps }, vec![x])
}

fn rotary_embedding(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let (x, cos, sin) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let pos = cx.opt_input(3);
    let a = cx.attrs();
    let interleaved = a.bool("interleaved", false)?;
    let rdim = a.int("rotary_embedding_dim", 0)?;
    let num_heads = a.int("num_heads", 0)?;
    let xt = cx.ty(x).clone();
    if !xt.dtype.is_float() {
        return Err(cx.err(format!("input must be floating point, got {xt}")));
    }
    // To [B, S, H, D].
    let (x4, three_d) = match xt.shape[..] {
        [_, _, _, _] => (cx.add1(Op::Transpose { perm: vec![0, 2, 1, 3] }, vec![x])?, false),
        [b, s, hd] => {
            if num_heads <= 0 || hd % num_heads as usize != 0 {
                return Err(cx.err(format!("3-D input {xt} needs num_heads dividing {hd}, got {num_heads}")));
            }
            let h = num_heads as usize;
            (cx.add1(Op::Reshape { shape: vec![b, s, h, hd / h] }, vec![x])?, true)
        }
        _ => return Err(cx.err(format!("input must be 3-D or 4-D, got {xt}"))),
    };
    let s4 = cx.shape(x4);
    let (b, s, h, d) = (s4[0], s4[1], s4[2], s4[3]);
    let r =
        if rdim == 0 { d } else { usize::try_from(rdim).map_err(|_| cx.err("rotary_embedding_dim must be >= 0"))? };
    if r > d || !r.is_multiple_of(2) {
        return Err(cx.err(format!("rotary_embedding_dim {r} must be even and at most the head size {d}")));
    }
    let half = r / 2;
    // Caches to [B, S, 1, R/2].
    let mut caches = Vec::with_capacity(2);
    for (c, what) in [(cos, "cos_cache"), (sin, "sin_cache")] {
        if cx.ty(c).dtype != xt.dtype {
            return Err(cx.err(format!("{what} {} must have the input's type {}", cx.ty(c), xt.dtype)));
        }
        let g = match pos {
            Some(p) => {
                if cx.shape(p) != [b, s] || !cx.ty(p).dtype.is_int() {
                    return Err(cx.err(format!("position_ids {} must be integer [{b}, {s}]", cx.ty(p))));
                }
                if cx.ty(c).rank() != 2 {
                    return Err(cx.err(format!("{what} {} must be 2-D with position_ids", cx.ty(c))));
                }
                cx.add1(Op::Gather { axis: 0 }, vec![c, p])?
            }
            None => c,
        };
        if cx.shape(g) != [b, s, half] {
            return Err(cx.err(format!("{what} gives {:?}, expected [{b}, {s}, {half}]", cx.shape(g))));
        }
        caches.push(cx.add1(Op::Reshape { shape: vec![b, s, 1, half] }, vec![g])?);
    }
    let (cos, sin) = (caches[0], caches[1]);
    let rot = if r == d { x4 } else { last_slice(cx, x4, 0, r, 1)? };
    let (x1, x2) = if interleaved {
        (last_slice(cx, rot, 0, r, 2)?, last_slice(cx, rot, 1, r, 2)?)
    } else {
        (last_slice(cx, rot, 0, half, 1)?, last_slice(cx, rot, half, r, 1)?)
    };
    let mul = |cx: &mut Cx, p: ValueId, q: ValueId| cx.add1(Op::Binary(BinaryOp::Mul), vec![p, q]);
    let (c1, s2) = (mul(cx, cos, x1)?, mul(cx, sin, x2)?);
    let real = cx.add1(Op::Binary(BinaryOp::Sub), vec![c1, s2])?;
    let (s1, c2) = (mul(cx, sin, x1)?, mul(cx, cos, x2)?);
    let imag = cx.add1(Op::Binary(BinaryOp::Add), vec![s1, c2])?;
    let rotated = if interleaved {
        let re = cx.add1(Op::Reshape { shape: vec![b, s, h, half, 1] }, vec![real])?;
        let im = cx.add1(Op::Reshape { shape: vec![b, s, h, half, 1] }, vec![imag])?;
        let c = cx.add1(Op::Concat { axis: 4 }, vec![re, im])?;
        cx.add1(Op::Reshape { shape: vec![b, s, h, r] }, vec![c])?
    } else {
        cx.add1(Op::Concat { axis: 3 }, vec![real, imag])?
    };
    let full = if r == d {
        rotated
    } else {
        let pass = last_slice(cx, x4, r, d, 1)?;
        cx.add1(Op::Concat { axis: 3 }, vec![rotated, pass])?
    };
    let y = if three_d {
        cx.add1(Op::Reshape { shape: xt.shape.clone() }, vec![full])?
    } else {
        cx.add1(Op::Transpose { perm: vec![0, 2, 1, 3] }, vec![full])?
    };
    Ok(vec![y])
}
