//! Gemm and MatMul (f16/bf16 MatMul runs on the f32 kernel between exact casts).

use kerf_ir::op::Gemm;
use kerf_ir::{DType, Op, ValueId, F32};

use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("Gemm", gemm));
    r.push(("MatMul", matmul));
}

fn gemm(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let a = cx.attrs();
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    let g = Gemm {
        alpha: F32::new(a.float("alpha", 1.0)?),
        beta: F32::new(a.float("beta", 1.0)?),
        trans_a: a.bool("transA", false)?,
        trans_b: a.bool("transB", false)?,
        layer: cx.layer(),
    };
    let mut ins = vec![x, w];
    ins.extend(cx.opt_input(2));
    Ok(vec![cx.add1(Op::Gemm(g), ins)?])
}

fn matmul(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let (a, b) = (cx.input(0)?, cx.input(1)?);
    let layer = cx.layer();
    let d = cx.ty(a).dtype;
    if matches!(d, DType::F16 | DType::BF16) && cx.ty(b).dtype == d {
        // f16/bf16: exact widening, the f32 kernel (f32 accumulation), one rounding back
        let a32 = cx.add1(Op::Cast(DType::F32), vec![a])?;
        let b32 = cx.add1(Op::Cast(DType::F32), vec![b])?;
        let y = cx.add1(Op::MatMul(layer), vec![a32, b32])?;
        return Ok(vec![cx.add1(Op::Cast(d), vec![y])?]);
    }
    Ok(vec![cx.add1(Op::MatMul(layer), vec![a, b])?])
}
