//! Ops that make or relabel data rather than move it: Shape, Size,
//! ConstantOfShape, Range, Constant, Cast, CastLike, Identity, Dropout.
//! Shape/Size of a statically shaped value are constants; Range and
//! ConstantOfShape need constant inputs and become constants.

use kerf_ir::{numel, DType, Op, Origin, Tensor, ValueId, MAX_CONST_ELEMENTS};

use super::{non_neg, Converter};
use crate::import::Cx;
use crate::{tensor, ImportError};

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("Shape", shape));
    r.push(("Size", size));
    r.push(("ConstantOfShape", constant_of_shape));
    r.push(("Range", range));
    r.push(("Constant", constant));
    r.push(("Cast", cast));
    r.push(("CastLike", cast));
    r.push(("Identity", identity));
    r.push(("Dropout", dropout));
}

fn shape(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let xs = cx.shape(x);
    let r = xs.len() as i64;
    let a = cx.attrs();
    let norm = |v: i64| (if v < 0 { v.saturating_add(r) } else { v }).clamp(0, r) as usize;
    let start = norm(a.int("start", 0)?);
    let end = norm(a.int("end", r)?);
    let dims: Vec<i64> = xs.get(start..end.max(start)).unwrap_or(&[]).iter().map(|&d| d as i64).collect();
    let t = Tensor::from_i64(vec![dims.len()], &dims)?;
    Ok(vec![cx.derived("shape", t)])
}

fn size(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let n = cx.ty(x).numel() as i64;
    let t = Tensor::from_i64(vec![], &[n])?;
    Ok(vec![cx.derived("size", t)])
}

fn constant_of_shape(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let dims = cx.const_ints(0, "input")?.ok_or_else(|| cx.err("missing required input 'input'"))?;
    let shape = non_neg(cx, "shape", &dims)?;
    let value = match cx.attrs().tensor_opt("value")? {
        Some(t) => cx.tensor(t)?,
        None => Tensor::scalar_f32(0.0),
    };
    if value.numel() != 1 {
        return Err(cx.err(format!("value must hold one element, got shape {:?}", value.shape())));
    }
    let n = numel(&shape)
        .filter(|&n| n <= MAX_CONST_ELEMENTS)
        .ok_or_else(|| cx.err(format!("shape {shape:?} is too large for a constant")))?;
    let t = Tensor::from_bytes(value.dtype(), shape, value.bytes().repeat(n))?;
    Ok(vec![cx.derived("value", t)])
}

fn range(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let start = cx.konst_req(0, "start")?;
    let limit = cx.konst_req(1, "limit")?;
    let delta = cx.konst_req(2, "delta")?;
    for (t, w) in [(&start, "start"), (&limit, "limit"), (&delta, "delta")] {
        if t.numel() != 1 {
            return Err(cx.err(format!("input '{w}' must be a scalar, got shape {:?}", t.shape())));
        }
    }
    let dt = start.dtype();
    let t = if dt.is_float() {
        let (s, l, d) = (start.get_f64(0), limit.get_f64(0), delta.get_f64(0));
        if d == 0.0 || !d.is_finite() || !s.is_finite() || !l.is_finite() {
            return Err(cx.err("range needs finite inputs and a non-zero delta"));
        }
        let n = ((l - s) / d).ceil().max(0.0);
        if n > MAX_CONST_ELEMENTS as f64 {
            return Err(cx.err(format!("range of {n} elements is too large")));
        }
        let n = n as usize;
        // Accumulate in the element type as runtimes do.
        let vals: Vec<f64> = if dt == DType::F32 {
            let mut v = s as f32;
            (0..n)
                .map(|_| {
                    let cur = v;
                    v += d as f32;
                    cur as f64
                })
                .collect()
        } else {
            (0..n).map(|i| s + i as f64 * d).collect()
        };
        Tensor::from_f64_values(dt, vec![n], &vals)?
    } else {
        let (s, l, d) = (start.get_i64(0) as i128, limit.get_i64(0) as i128, delta.get_i64(0) as i128);
        if d == 0 {
            return Err(cx.err("range delta must not be 0"));
        }
        let span = l - s;
        let n = if (span > 0) == (d > 0) && span != 0 { (span + d - d.signum()) / d } else { 0 };
        if n > MAX_CONST_ELEMENTS as i128 {
            return Err(cx.err(format!("range of {n} elements is too large")));
        }
        let vals: Vec<i64> = (0..n).map(|i| (s + i * d) as i64).collect();
        Tensor::from_i64_values(dt, vec![n as usize], &vals)?
    };
    Ok(vec![cx.derived("range", t)])
}

fn constant(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let a = cx.attrs();
    let names: Vec<&str> = a.names().collect();
    let t = if let Some(t) = a.tensor_opt("value")? {
        cx.tensor(t)?
    } else if let Some(v) = a.float_opt("value_float")? {
        Tensor::scalar_f32(v)
    } else if let Some(v) = a.floats_opt("value_floats")? {
        Tensor::from_f32(vec![v.len()], &v)?
    } else if let Some(v) = a.int_opt("value_int")? {
        Tensor::from_i64(vec![], &[v])?
    } else if let Some(v) = a.ints_opt("value_ints")? {
        Tensor::from_i64(vec![v.len()], &v)?
    } else if names.iter().any(|n| n.starts_with("value_string")) {
        return Err(cx.err("string constants are not supported"));
    } else if names.contains(&"sparse_value") {
        return Err(cx.err("sparse constants are not supported"));
    } else {
        return Err(cx.err("has no value attribute"));
    };
    let name = cx.node.outputs.first().cloned().unwrap_or_else(|| cx.name.clone());
    Ok(vec![cx.g.add_const(name, t, Origin::ConstantNode)])
}

fn cast(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let to = if cx.op() == "CastLike" {
        let like = cx.input(1)?;
        cx.ty(like).dtype
    } else {
        let code = cx.attrs().int_req("to")?;
        let code = i32::try_from(code).map_err(|_| cx.err(format!("unknown type {code}")))?;
        tensor::dtype_of(code, &cx.name).map_err(|_| cx.err(format!("cannot cast to element type {code}")))?
    };
    // Cast-19/24 `saturate` (float8 targets only) and `round_mode` (E8M0 only);
    // the defaults are what `Op::Cast` means.
    let saturate = cx.attrs().bool("saturate", true)?;
    let mode = cx.attrs().string("round_mode", "up")?;
    let round = kerf_ir::narrow::CastRound::from_name(&mode)
        .ok_or_else(|| cx.err(format!("round_mode '{mode}' is not one of up, down, nearest")))?;
    let float8 = matches!(to, DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ | DType::F8E8M0);
    let round = if to == DType::F8E8M0 { round } else { kerf_ir::narrow::CastRound::Up };
    let op = if float8 && (!saturate || round != kerf_ir::narrow::CastRound::Up) {
        Op::CastF8 { to, saturate, round }
    } else {
        Op::Cast(to)
    };
    Ok(vec![cx.add1(op, vec![x])?])
}

/// Identity of a constant is the constant itself (so an initializer keeps
/// its origin and still counts as a parameter); otherwise an Identity node.
fn identity(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    if cx.g.const_of(x).is_some() {
        return Ok(vec![x]);
    }
    Ok(vec![cx.add1(Op::Identity, vec![x])?])
}

/// Inference-mode Dropout: the identity; a requested mask is all true.
fn dropout(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    if let Some(t) = cx.konst(2, "training_mode")? {
        if t.numel() == 1 && t.get_i64(0) != 0 {
            // Training mode with ratio 0 keeps every element (mask all
            // true, scale 1): exactly the identity. Any other ratio draws a
            // random mask, which a compiled inference graph does not do.
            let ratio = match cx.konst(1, "ratio")? {
                Some(r) if r.numel() == 1 => r.get_f64(0),
                Some(_) => return Err(cx.err("ratio must be a scalar")),
                None => 0.5,
            };
            if ratio != 0.0 {
                return Err(cx.err(format!(
                    "training_mode=true with ratio {ratio} draws a random mask (not supported; inference only)"
                )));
            }
        }
    }
    let out = if cx.g.const_of(x).is_some() { x } else { cx.add1(Op::Dropout, vec![x])? };
    let mut outs = vec![out];
    if cx.output_used(1) {
        let shape = cx.shape(x);
        let mask = Tensor::splat(DType::Bool, shape, 1.0)?;
        outs.push(cx.derived("mask", mask));
    }
    Ok(outs)
}
