//! Gemm and MatMul.

use kerf_ir::op::Gemm;
use kerf_ir::{Op, ValueId, F32};

use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub fn register(r: &mut Vec<(&'static str, Converter)>) {
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
    Ok(vec![cx.add1(Op::MatMul(layer), vec![a, b])?])
}
