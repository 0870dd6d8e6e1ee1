//! Shape and data-movement ops. Everything that shapes a result (Reshape's
//! shape, Slice's starts/ends/axes/steps, Pad's pads, Expand's shape, ...)
//! must be a constant after folding and is resolved into the IR op's
//! attributes here: Flatten/Squeeze/Unsqueeze all become `Reshape{shape}`,
//! Slice becomes the IR's full-rank normalised form.

use kerf_ir::op::PadMode;
use kerf_ir::{DType, Op, Tensor, ValueId, F32};

use super::compose::R;
use super::{fits, non_neg, Converter};
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("Reshape", reshape));
    r.push(("Flatten", flatten));
    r.push(("Squeeze", squeeze));
    r.push(("Unsqueeze", unsqueeze));
    r.push(("Transpose", transpose));
    r.push(("Concat", concat));
    r.push(("Split", split));
    r.push(("Slice", slice));
    r.push(("Gather", gather));
    r.push(("Expand", expand));
    r.push(("Tile", tile));
    r.push(("Pad", pad));
    r.push(("DepthToSpace", depth_space));
    r.push(("SpaceToDepth", depth_space));
    r.push(("CenterCropPad", center_crop_pad));
    super::data::register(r);
}

fn reshape_to(cx: &mut Cx, x: ValueId, shape: Vec<usize>) -> Result<Vec<ValueId>, ImportError> {
    Ok(vec![cx.add1(Op::Reshape { shape }, vec![x])?])
}

/// Resolves an ONNX Reshape target: `0` copies the input dim (unless
/// `allowzero`), `-1` is inferred from the element count.
pub(crate) fn resolve_reshape(
    cx: &Cx,
    xs: &[usize],
    target: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>, ImportError> {
    let total: usize = xs.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &d) in target.iter().enumerate() {
        match d {
            -1 => {
                if infer_at.replace(i).is_some() {
                    return Err(cx.err(format!("shape {target:?} has more than one -1")));
                }
                out.push(1);
            }
            0 if !allowzero => {
                out.push(*xs.get(i).ok_or_else(|| {
                    cx.err(format!("shape {target:?} copies dim {i} (0), input has rank {}", xs.len()))
                })?)
            }
            d if d < 0 => return Err(cx.err(format!("shape {target:?} has invalid dimension {d}"))),
            d => out.push(d as usize),
        }
    }
    fits(cx, &out)?;
    if let Some(i) = infer_at {
        if allowzero && target.contains(&0) {
            return Err(cx.err(format!("shape {target:?} has both 0 and -1 with allowzero=1")));
        }
        let known: usize = out.iter().enumerate().filter(|&(k, _)| k != i).map(|(_, &d)| d).product();
        if known == 0 || !total.is_multiple_of(known) {
            return Err(cx.err(format!("cannot reshape {xs:?} to {target:?}")));
        }
        out[i] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(cx.err(format!("cannot reshape {xs:?} ({total} elements) to {target:?}")));
    }
    Ok(out)
}

fn reshape(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let a = cx.attrs();
    let target = if cx.opset < 5 {
        a.ints_req("shape")?
    } else {
        cx.const_ints(1, "shape")?.ok_or_else(|| cx.err("missing required input 'shape'"))?
    };
    let allowzero = a.bool("allowzero", false)?;
    let xs = cx.shape(x);
    let shape = resolve_reshape(cx, &xs, &target, allowzero)?;
    reshape_to(cx, x, shape)
}

fn flatten(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let xs = cx.shape(x);
    let r = xs.len() as i64;
    let axis = cx.attrs().int("axis", 1)?;
    let axis = if axis < 0 { axis.saturating_add(r) } else { axis };
    if axis < 0 || axis > r {
        return Err(cx.err(format!("axis {axis} is out of range for rank {r}")));
    }
    let axis = axis as usize;
    let outer: usize = xs[..axis].iter().product();
    let inner: usize = xs[axis..].iter().product();
    reshape_to(cx, x, vec![outer, inner])
}

/// Axes from the attribute (before `input_opset`) or from input 1.
fn axes_arg(cx: &Cx, input_opset: i64) -> Result<Option<Vec<i64>>, ImportError> {
    if cx.opset < input_opset {
        cx.attrs().ints_opt("axes")
    } else {
        cx.const_ints(1, "axes")
    }
}

fn squeeze(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let xs = cx.shape(x);
    let shape = match axes_arg(cx, 13)? {
        None => xs.iter().copied().filter(|&d| d != 1).collect(),
        Some(axes) => {
            let axes = cx.axes(&axes, xs.len())?;
            for &a in &axes {
                if xs[a] != 1 {
                    return Err(cx.err(format!("cannot squeeze axis {a} of size {} in {xs:?}", xs[a])));
                }
            }
            xs.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect()
        }
    };
    reshape_to(cx, x, shape)
}

fn unsqueeze(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let xs = cx.shape(x);
    let axes = axes_arg(cx, 13)?.ok_or_else(|| cx.err("missing axes"))?;
    let out_rank = xs.len() + axes.len();
    let axes = cx.axes(&axes, out_rank)?;
    let mut it = xs.iter();
    let shape = (0..out_rank).map(|i| if axes.contains(&i) { 1 } else { it.next().copied().unwrap_or(1) }).collect();
    reshape_to(cx, x, shape)
}

fn transpose(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let r = cx.ty(x).rank();
    let perm = match cx.attrs().ints_opt("perm")? {
        Some(p) => non_neg(cx, "perm", &p)?,
        None => (0..r).rev().collect(),
    };
    Ok(vec![cx.add1(Op::Transpose { perm }, vec![x])?])
}

fn concat(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let ins: Vec<ValueId> = cx.ins.iter().flatten().copied().collect();
    let first = *ins.first().ok_or_else(|| cx.err("needs at least one input"))?;
    let axis = cx.axis(cx.attrs().int_req("axis")?, cx.ty(first).rank())?;
    Ok(vec![cx.add1(Op::Concat { axis }, ins)?])
}

fn split(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let xs = cx.shape(x);
    let a = cx.attrs();
    let axis = cx.axis(a.int("axis", 0)?, xs.len())?;
    let d = xs[axis];
    let given = if cx.opset < 13 { a.ints_opt("split")? } else { cx.const_ints(1, "split")? };
    let n_out = cx.node.outputs.len();
    let sizes = match given {
        Some(s) => non_neg(cx, "split", &s)?,
        None => {
            let n = match a.int_opt("num_outputs")? {
                Some(n) => {
                    usize::try_from(n).ok().filter(|&n| n > 0).ok_or_else(|| cx.err("num_outputs must be positive"))?
                }
                None => n_out,
            };
            if n == 0 {
                return Err(cx.err("split has no outputs"));
            }
            if a.has("num_outputs") || cx.opset >= 18 {
                // Uneven: every chunk ceil(d/n), the last one smaller.
                let chunk = d.div_ceil(n);
                let rest = d
                    .checked_sub(chunk * (n - 1))
                    .ok_or_else(|| cx.err(format!("cannot split {d} into {n} chunks of {chunk}")))?;
                let mut s = vec![chunk; n - 1];
                s.push(rest);
                s
            } else {
                if !d.is_multiple_of(n) {
                    return Err(cx.err(format!("axis {axis} of size {d} does not split into {n} equal parts")));
                }
                vec![d / n; n]
            }
        }
    };
    if sizes.len() != n_out {
        return Err(cx.err(format!("split gives {} parts but the node has {n_out} outputs", sizes.len())));
    }
    cx.add(Op::Split { axis, sizes }, vec![x])
}

/// Normalises one ONNX slice (start, end, step) on an axis of `d` to the
/// IR form: positive steps clamp to `[0, d]`, negative steps clamp start to
/// `[0, d-1]` and end to `[-1, d-1]` (`-1` = before index 0).
pub(super) fn normalise_slice(start: i64, end: i64, step: i64, d: usize) -> (i64, i64) {
    let d = d as i128;
    let (mut s, mut e) = (start as i128, end as i128);
    if s < 0 {
        s += d;
    }
    if e < 0 {
        e += d;
    }
    if step > 0 {
        (s.clamp(0, d) as i64, e.clamp(0, d) as i64)
    } else {
        let s = if d == 0 { -1 } else { s.clamp(0, d - 1) };
        (s as i64, e.clamp(-1, (d - 1).max(-1)) as i64)
    }
}

fn slice(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let xs = cx.shape(x);
    let a = cx.attrs();
    let (starts, ends, axes, steps) = if cx.opset < 10 {
        (a.ints_req("starts")?, a.ints_req("ends")?, a.ints_opt("axes")?, None)
    } else {
        (
            cx.const_ints(1, "starts")?.ok_or_else(|| cx.err("missing required input 'starts'"))?,
            cx.const_ints(2, "ends")?.ok_or_else(|| cx.err("missing required input 'ends'"))?,
            cx.const_ints(3, "axes")?,
            cx.const_ints(4, "steps")?,
        )
    };
    let n = starts.len();
    let axes = axes.unwrap_or_else(|| (0..n as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; n]);
    if ends.len() != n || axes.len() != n || steps.len() != n {
        return Err(cx.err(format!(
            "starts ({n}), ends ({}), axes ({}) and steps ({}) must have the same length",
            ends.len(),
            axes.len(),
            steps.len()
        )));
    }
    let mut st: Vec<i64> = vec![0; xs.len()];
    let mut en: Vec<i64> = xs.iter().map(|&d| d as i64).collect();
    let mut sp: Vec<i64> = vec![1; xs.len()];
    let mut seen = vec![false; xs.len()];
    for k in 0..n {
        let ax = cx.axis(axes[k], xs.len())?;
        if std::mem::replace(&mut seen[ax], true) {
            return Err(cx.err(format!("axis {} is repeated in {axes:?}", axes[k])));
        }
        if steps[k] == 0 {
            return Err(cx.err("slice step must not be 0"));
        }
        let (s, e) = normalise_slice(starts[k], ends[k], steps[k], xs[ax]);
        st[ax] = s;
        en[ax] = e;
        sp[ax] = steps[k];
    }
    Ok(vec![cx.add1(Op::Slice { starts: st, ends: en, steps: sp }, vec![x])?])
}

fn gather(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let (x, idx) = (cx.input(0)?, cx.input(1)?);
    let axis = cx.axis(cx.attrs().int("axis", 0)?, cx.ty(x).rank())?;
    // No index is valid on an empty axis (the kernel's clamp would give -1).
    let n_idx: usize = cx.shape(idx).iter().product();
    if n_idx > 0 && cx.shape(x).get(axis) == Some(&0) {
        return Err(cx.err(format!("gathers {n_idx} indices from axis {axis}, which has size 0")));
    }
    // constant indices out of range are the model's error, said here
    // (run-time ones end the run with a status: the kernel's fault word)
    // (read without `const_ints`, which would ask for run-time indices to be bound)
    let d = cx.shape(x).get(axis).copied().unwrap_or(0) as i64;
    let known = cx.g.const_of(idx).filter(|t| t.dtype().is_int()).map(|t| t.to_i64_vec());
    if let Some(bad) = known.and_then(|ix| ix.into_iter().find(|&i| i < -d || i >= d)) {
        return Err(cx.err(format!("index {bad} is out of range for axis {axis} of size {d}")));
    }
    Ok(vec![cx.add1(Op::Gather { axis }, vec![x, idx])?])
}

fn expand(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let target = cx.const_ints(1, "shape")?.ok_or_else(|| cx.err("missing required input 'shape'"))?;
    let target = non_neg(cx, "shape", &target)?;
    fits(cx, &target)?;
    let shape = kerf_ir::infer::broadcast(&cx.shape(x), &target).map_err(|m| cx.err(m))?;
    Ok(vec![cx.add1(Op::Expand { shape }, vec![x])?])
}

fn tile(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let reps = cx.const_ints(1, "repeats")?.ok_or_else(|| cx.err("missing required input 'repeats'"))?;
    let repeats = non_neg(cx, "repeats", &reps)?;
    let xs = cx.shape(x);
    let out: Option<Vec<usize>> = xs.iter().zip(&repeats).map(|(&d, &r)| d.checked_mul(r)).collect();
    fits(cx, &out.ok_or_else(|| cx.err(format!("repeats {repeats:?} are too large")))?)?;
    Ok(vec![cx.add1(Op::Tile { repeats }, vec![x])?])
}

fn pad(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).rank();
    let a = cx.attrs();
    let mode = match a.string("mode", "constant")?.as_str() {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" => PadMode::Wrap,
        other => return Err(cx.err(format!("unknown pad mode '{other}'"))),
    };
    let (raw, value, axes) = if cx.opset < 11 {
        let p = if cx.opset < 2 { a.ints_opt("paddings")? } else { a.ints_opt("pads")? };
        (p.ok_or_else(|| cx.err("missing required attribute 'pads'"))?, a.float("value", 0.0)?, None)
    } else {
        let p = cx.const_ints(1, "pads")?.ok_or_else(|| cx.err("missing required input 'pads'"))?;
        let v = match cx.opt_input(2).filter(|&v| cx.g.const_of(v).is_none()) {
            // computed at run time: padded with 0 here, replaced below
            Some(_) => 0.0,
            None => match cx.konst(2, "constant_value")? {
                Some(t) if t.numel() == 1 => t.get_f64(0) as f32,
                Some(t) if t.numel() == 0 => 0.0,
                Some(t) => return Err(cx.err(format!("constant_value must be a scalar, got shape {:?}", t.shape()))),
                None => 0.0,
            },
        };
        (p, v, cx.const_ints(3, "axes")?)
    };
    if mode != PadMode::Constant && raw.iter().any(|&p| p < 0) {
        return Err(cx.err(format!("negative pads {raw:?} are only supported in constant mode")));
    }
    // Pads follow the order of `axes` as given, so they are not sorted.
    let axes = match axes {
        Some(ax) => cx.axes_in_order(&ax, rank)?,
        None => (0..rank).collect(),
    };
    if raw.len() != 2 * axes.len() {
        return Err(cx.err(format!("pads {raw:?} must hold 2 values for each of {} axes", axes.len())));
    }
    let mut signed = vec![0i64; 2 * rank];
    let k = axes.len();
    for (j, &ax) in axes.iter().enumerate() {
        signed[ax] = raw[j];
        signed[rank + ax] = raw[k + j];
    }
    // Negative pads crop (constant mode): a Slice removes them first, then
    // the positive pads are added; for constant padding the order does not
    // change the result.
    let mut x = x;
    if signed.iter().any(|&p| p < 0) {
        let xs = cx.shape(x);
        let mut starts = vec![0i64; rank];
        let mut ends: Vec<i64> = xs.iter().map(|&d| d as i64).collect();
        for i in 0..rank {
            starts[i] = (-signed[i]).max(0);
            ends[i] -= (-signed[rank + i]).max(0);
            if ends[i] < starts[i] {
                return Err(cx.err(format!("pads {raw:?} crop more than the {} elements of axis {i}", xs[i])));
            }
        }
        x = cx.add1(Op::Slice { starts, ends, steps: vec![1; rank] }, vec![x])?;
    }
    let pads: Vec<usize> = signed.iter().map(|&p| p.max(0) as usize).collect();
    let xs = cx.shape(x);
    let out: Option<Vec<usize>> =
        (0..rank).map(|i| xs[i].checked_add(pads[i]).and_then(|v| v.checked_add(pads[rank + i]))).collect();
    let out = out.ok_or_else(|| cx.err(format!("pads {raw:?} are too large")))?;
    fits(cx, &out)?;
    let y = cx.add1(Op::Pad { pads: pads.clone(), mode, value: F32::new(value) }, vec![x])?;
    let runtime_value = cx.opt_input(2).filter(|&v| cx.opset >= 11 && cx.g.const_of(v).is_none());
    match runtime_value {
        Some(v) if mode == PadMode::Constant => Ok(vec![fill_padding(cx, y, v, &xs, &pads, &out)?]),
        _ => Ok(vec![y]),
    }
}

/// `y` (a constant-mode Pad of an `xs` tensor by `pads`, shape `out`) with
/// its padding replaced by the runtime scalar `v`: `Where(mask, v, y)` over
/// a constant mask of the padded positions. The constant value stays a
/// runtime input (it shapes nothing).
fn fill_padding(cx: &mut Cx, y: ValueId, v: ValueId, xs: &[usize], pads: &[usize], out: &[usize]) -> R {
    let vt = cx.ty(v).clone();
    if vt.numel() != 1 || vt.dtype != cx.ty(y).dtype {
        return Err(cx.err(format!("constant_value must be one value of the input's type, got {vt}")));
    }
    let rank = out.len();
    let n: usize = out.iter().product();
    let mut mask = Vec::with_capacity(n);
    let mut idx = vec![0usize; rank];
    for _ in 0..n {
        let inside = (0..rank).all(|a| idx[a] >= pads[a] && idx[a] < pads[a] + xs[a]);
        mask.push(i64::from(!inside));
        for a in (0..rank).rev() {
            idx[a] += 1;
            if idx[a] < out[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    let m = cx.derived("padding", Tensor::from_i64_values(DType::Bool, out.to_vec(), &mask)?);
    let v = super::compose::reshape(cx, v, vec![])?;
    cx.add1(Op::Where, vec![m, v, y])
}

/// CenterCropPad as Slice (centred crop; an odd excess leaves the extra
/// element at the end) then zero Pad (the extra element goes after), as
/// the ONNX reference does. The target `shape` must be constant.
fn center_crop_pad(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let xs = cx.shape(x);
    let rank = xs.len();
    let target = cx.const_ints(1, "shape")?.ok_or_else(|| cx.err("missing required input 'shape'"))?;
    let target = non_neg(cx, "shape", &target)?;
    let axes = match cx.attrs().ints_opt("axes")? {
        Some(a) => cx.axes_in_order(&a, rank)?,
        None => (0..rank).collect(),
    };
    if axes.len() != target.len() {
        return Err(cx.err(format!("shape {target:?} must have one value per axis in {axes:?}")));
    }
    let (mut starts, mut ends) = (vec![0i64; rank], xs.iter().map(|&d| d as i64).collect::<Vec<_>>());
    let mut pads = vec![0usize; 2 * rank];
    for (&a, &t) in axes.iter().zip(&target) {
        let d = xs[a];
        if t < d {
            let lo = (d - t) / 2;
            starts[a] = lo as i64;
            ends[a] = (lo + t) as i64;
        } else if t > d {
            let extra = t - d;
            pads[a] = extra / 2;
            pads[rank + a] = extra - extra / 2;
        }
    }
    let mut y = x;
    if starts.iter().any(|&v| v != 0) || ends.iter().zip(&xs).any(|(&e, &d)| e != d as i64) {
        y = cx.add1(Op::Slice { starts, ends, steps: vec![1; rank] }, vec![y])?;
    }
    if pads.iter().any(|&p| p != 0) {
        let out: Vec<usize> = (0..rank).map(|i| cx.shape(y)[i] + pads[i] + pads[rank + i]).collect();
        fits(cx, &out)?;
        y = cx.add1(Op::Pad { pads, mode: PadMode::Constant, value: F32::new(0.0) }, vec![y])?;
    }
    if y == x {
        y = cx.add1(Op::Identity, vec![x])?;
    }
    Ok(vec![y])
}

/// DepthToSpace (DCR or CRD) and SpaceToDepth as Reshape → Transpose →
/// Reshape over 4-D NCHW.
fn depth_space(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let xs = cx.shape(x);
    let a = cx.attrs();
    let b = usize::try_from(a.int_req("blocksize")?)
        .ok()
        .filter(|&b| b > 0)
        .ok_or_else(|| cx.err("blocksize must be positive"))?;
    let [n, c, h, w] = xs[..] else {
        return Err(cx.err(format!("input must be 4-D NCHW, got {}", cx.ty(x))));
    };
    // Every product below must fit (a huge blocksize on an empty tensor
    // passes the divisibility checks).
    let fits = b.checked_mul(b).and_then(|bb| c.checked_mul(bb)).is_some()
        && h.checked_mul(b).is_some()
        && w.checked_mul(b).is_some();
    if !fits {
        return Err(cx.err(format!("blocksize {b} is too large for input {}", cx.ty(x))));
    }
    let (mid, perm, out) = if cx.op() == "DepthToSpace" {
        if !c.is_multiple_of(b * b) {
            return Err(cx.err(format!("channels {c} are not divisible by blocksize² {}", b * b)));
        }
        let out = vec![n, c / (b * b), h * b, w * b];
        match a.string("mode", "DCR")?.as_str() {
            "DCR" => (vec![n, b, b, c / (b * b), h, w], vec![0, 3, 4, 1, 5, 2], out),
            "CRD" => (vec![n, c / (b * b), b, b, h, w], vec![0, 1, 4, 2, 5, 3], out),
            other => return Err(cx.err(format!("unknown mode '{other}'"))),
        }
    } else {
        if !h.is_multiple_of(b) || !w.is_multiple_of(b) {
            return Err(cx.err(format!("spatial dims {h}x{w} are not divisible by blocksize {b}")));
        }
        // The inverse of DepthToSpace in the same mode.
        let perm = match a.string("mode", "DCR")?.as_str() {
            "DCR" => vec![0, 3, 5, 1, 2, 4],
            "CRD" => vec![0, 1, 3, 5, 2, 4],
            other => return Err(cx.err(format!("unknown mode '{other}'"))),
        };
        (vec![n, c, h / b, b, w / b, b], perm, vec![n, c * b * b, h / b, w / b])
    };
    let r = cx.add1(Op::Reshape { shape: mid }, vec![x])?;
    let t = cx.add1(Op::Transpose { perm }, vec![r])?;
    reshape_to(cx, t, out)
}

#[cfg(test)]
mod tests {
    use super::normalise_slice;

    /// ONNX Slice semantics enumerated directly. Same as numpy except that a
    /// start before the beginning with a negative step clamps to 0 (the
    /// spec and ONNX Runtime) where numpy would select nothing.
    fn reference(start: i64, end: i64, step: i64, d: i64) -> Vec<i64> {
        let norm = |v: i64, lo: i64, hi: i64| {
            let v = if v < 0 { v.saturating_add(d) } else { v };
            v.clamp(lo, hi)
        };
        let mut out = Vec::new();
        if step > 0 {
            let (s, e) = (norm(start, 0, d), norm(end, 0, d));
            let mut i = s;
            while i < e {
                out.push(i);
                i += step;
            }
        } else if d > 0 {
            let (s, e) = (norm(start, 0, d - 1), norm(end, -1, d - 1));
            let mut i = s;
            while i > e {
                out.push(i);
                i += step;
            }
        }
        out
    }

    #[test]
    fn normalised_slices_select_the_numpy_elements() {
        let edges = [i64::MIN, i64::MIN + 1, -9, -7, -5, -3, -2, -1, 0, 1, 2, 3, 4, 5, 7, 9, i64::MAX];
        for d in 0..6usize {
            for &s in &edges {
                for &e in &edges {
                    for step in [-3i64, -2, -1, 1, 2, 3] {
                        let want = reference(s, e, step, d as i64);
                        let (ns, ne) = normalise_slice(s, e, step, d);
                        let len = kerf_ir::infer::slice_len(ns, ne, step, d)
                            .unwrap_or_else(|m| panic!("[{s}:{e}:{step}] on {d} -> [{ns}:{ne}]: {m}"));
                        let got: Vec<i64> = (0..len as i64).map(|i| ns + i * step).collect();
                        assert_eq!(got, want, "[{s}:{e}:{step}] on axis of {d} normalised to [{ns}:{ne}]");
                    }
                }
            }
        }
    }
}
