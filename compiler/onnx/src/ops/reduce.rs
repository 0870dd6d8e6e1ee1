//! Reductions and ArgMax/ArgMin. Axes come from the attribute before the
//! opset where they became an input (13 for ReduceSum, 18 for the others);
//! empty axes mean "all axes" unless `noop_with_empty_axes` is set, which
//! makes the op the identity.

use kerf_ir::op::ReduceKind;
use kerf_ir::{DType, Op, ValueId};

use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    for k in ReduceKind::ALL {
        r.push((k.name(), reduce));
    }
    r.push(("ArgMax", arg));
    r.push(("ArgMin", arg));
}

fn reduce(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let kind = ReduceKind::ALL.into_iter().find(|k| k.name() == cx.op()).ok_or_else(|| cx.err("not a reduction"))?;
    let x = cx.input(0)?;
    let rank = cx.ty(x).rank();
    let a = cx.attrs();
    let keepdims = a.bool("keepdims", true)?;
    let input_opset = if kind == ReduceKind::Sum { 13 } else { 18 };
    let axes = if cx.opset < input_opset { a.ints_opt("axes")? } else { cx.const_ints(1, "axes")? };
    let axes = match axes {
        Some(ax) if !ax.is_empty() => cx.axes(&ax, rank)?,
        _ => {
            if cx.opset >= input_opset && a.bool("noop_with_empty_axes", false)? {
                return Ok(vec![cx.add1(Op::Identity, vec![x])?]);
            }
            (0..rank).collect()
        }
    };
    if cx.ty(x).dtype == DType::Bool && matches!(kind, ReduceKind::Max | ReduceKind::Min) {
        // Max / Min on bool are any / all: reduce 0/1 as u8 (whose max over
        // an empty set is 0 = false, as ONNX defines) and convert back.
        let u = cx.add1(Op::Cast(DType::U8), vec![x])?;
        let r = cx.add1(Op::Reduce { kind, axes, keepdims }, vec![u])?;
        return Ok(vec![cx.add1(Op::Cast(DType::Bool), vec![r])?]);
    }
    let d = cx.ty(x).dtype;
    if matches!(d, DType::F16 | DType::BF16) {
        // f16/bf16: exact widening, the f32 reduction, one rounding back
        let w = cx.add1(Op::Cast(DType::F32), vec![x])?;
        let r = cx.add1(Op::Reduce { kind, axes, keepdims }, vec![w])?;
        return Ok(vec![cx.add1(Op::Cast(d), vec![r])?]);
    }
    Ok(vec![cx.add1(Op::Reduce { kind, axes, keepdims }, vec![x])?])
}

fn arg(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let a = cx.attrs();
    let axis = cx.axis(a.int("axis", 0)?, cx.ty(x).rank())?;
    let keepdims = a.bool("keepdims", true)?;
    let select_last = a.bool("select_last_index", false)?;
    let op = if cx.op() == "ArgMax" {
        Op::ArgMax { axis, keepdims, select_last }
    } else {
        Op::ArgMin { axis, keepdims, select_last }
    };
    Ok(vec![cx.add1(op, vec![x])?])
}
