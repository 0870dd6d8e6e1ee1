//! [`Op::Requantize`]: the requantisation of QLinearConv/QLinearMatMul in
//! one pass, in f64 with the reference's order of operations — the
//! accumulator (i32, converted exactly) plus the channel's i32 bias,
//! times the channel's f32 multiplier widened to f64, plus the zero point,
//! clamped to the output type's range, rounded half to even by adding and
//! subtracting 1.5·2^52 (exact for the clamped range; no `nearest`
//! instruction, which baseline x86-64 lacks), then narrowed. Every step is
//! one IEEE f64 operation, so the bits are the reference evaluator's on
//! every ISA. Scalar: the pass reads 4 bytes and writes 1 per element.

use cranelift_codegen::ir::{types, InstBuilder};
use kerf_ir::Op;

use super::{Kernel, LResult};

/// Lowers a [`Op::Requantize`] node.
pub fn lower(k: &mut Kernel) -> LResult {
    let Op::Requantize { axis, zp, out } = k.node.op.clone() else {
        return Err("internal: requantize lowering on another op".into());
    };
    let (lo, hi) = out.int_range().ok_or("Requantize needs an integer output")?;
    let shape = k.in_shape(0).to_vec();
    let n: usize = shape.iter().product();
    let inner: usize = shape.get(axis + 1..).map_or(1, |s| s.iter().product());
    let c = shape.get(axis).copied().unwrap_or(1).max(1);
    let per_channel = k.in_shape(1).len() == 1;
    let has_bias = k.node.inputs.len() > 2;
    let (acc, mult, y) = (k.input(0), k.input(1), k.output(0));
    let bias = if has_bias { Some(k.input(2)) } else { None };
    // channels outermost but one: the multiplier and bias are loaded once
    // per run of `inner` elements (a per-tensor multiplier: one run)
    let (c, inner) = if per_channel { (c, inner) } else { (1, n) };
    let outer = n / (c * inner).max(1);
    // the zero point, the clamp bounds and the rounding constant, once
    let z = k.b.ins().f64const(f64::from(zp));
    let (l, h) = (k.b.ins().f64const(lo as f64), k.b.ins().f64const(hi as f64));
    let magic = k.b.ins().f64const(1.5 * 2f64.powi(52));
    k.for_n(0, outer as i64, 1, |k, o| {
        k.for_n(0, c as i64, 1, |k, ch| {
            let oc = k.b.ins().imul_imm_s(o, c as i64);
            let oc = k.b.ins().iadd(oc, ch);
            let base = k.b.ins().imul_imm_s(oc, inner as i64);
            let bv = bias.map(|b| {
                let bv = k.ld_at(types::I32, b, ch, 4, 0);
                k.b.ins().fcvt_from_sint(types::F64, bv)
            });
            let m = k.ld_at(types::F32, mult, ch, 4, 0);
            let m = k.b.ins().fpromote(types::F64, m);
            k.for_n(0, inner as i64, 1, |k, j| {
                let i = k.b.ins().iadd(base, j);
                let a = k.ld_at(types::I32, acc, i, 4, 0);
                let a = k.b.ins().fcvt_from_sint(types::F64, a);
                let a = match bv {
                    Some(bv) => k.b.ins().fadd(a, bv),
                    None => a,
                };
                let v = k.b.ins().fmul(a, m);
                let v = k.b.ins().fadd(v, z);
                // clamp (NaN cannot occur: every operand is finite)
                let v = k.b.ins().fmax(v, l);
                let v = k.b.ins().fmin(v, h);
                let v = k.b.ins().fadd(v, magic);
                let v = k.b.ins().fsub(v, magic);
                let q = k.b.ins().fcvt_to_sint_sat(types::I32, v);
                let q = k.b.ins().ireduce(types::I8, q);
                k.st_at(q, y, i, 1, 0);
            });
        });
    });
    Ok(())
}
