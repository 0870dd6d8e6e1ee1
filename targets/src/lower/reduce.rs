//! Reductions (ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp)
//! and ArgMax/ArgMin on f32: an outer nest over the output, an inner nest
//! over the reduced axes, scalar accumulation.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, InstBuilder};
use kerf_ir::op::ReduceKind;
use kerf_ir::{DType, Op};

use super::{Kernel, LResult};
use crate::math;

pub fn lower(k: &mut Kernel) -> LResult {
    if k.in_dtype(0) != DType::F32 {
        return Err(format!("only f32 input is supported, got {}", k.in_dtype(0)));
    }
    let xs = k.in_shape(0).to_vec();
    let xst = kerf_ir::eval::strides(&xs);
    let (axes, kind): (Vec<usize>, Option<ReduceKind>) = match &k.node.op {
        Op::Reduce { kind, axes, .. } => {
            let a = if axes.is_empty() { (0..xs.len()).collect() } else { axes.clone() };
            (a, Some(*kind))
        }
        Op::ArgMax { axis, .. } | Op::ArgMin { axis, .. } => (vec![*axis], None),
        _ => return Err("not a reduction".into()),
    };
    let is_argmax = matches!(k.node.op, Op::ArgMax { .. });
    let select_last = matches!(k.node.op, Op::ArgMax { select_last: true, .. } | Op::ArgMin { select_last: true, .. });
    let kept: Vec<usize> = (0..xs.len()).filter(|a| !axes.contains(a)).collect();
    let kshape: Vec<usize> = kept.iter().map(|&a| xs[a]).collect();
    let kstr: Vec<usize> = kept.iter().map(|&a| xst[a]).collect();
    let rshape: Vec<usize> = axes.iter().map(|&a| xs[a]).collect();
    let rstr: Vec<usize> = axes.iter().map(|&a| xst[a]).collect();
    let count: usize = rshape.iter().product();
    let (src, dst) = (k.input(0), k.output(0));
    let ost = kerf_ir::eval::strides(&kshape);
    k.nest(&kshape, &mut |k, idx| {
        let base = k.linear(idx, &kstr);
        let o = k.linear(idx, &ost);
        match kind {
            Some(kind) => {
                let init = k.fc(match kind {
                    ReduceKind::Max => f32::NEG_INFINITY,
                    ReduceKind::Min => f32::INFINITY,
                    ReduceKind::Prod => 1.0,
                    _ => 0.0,
                });
                // flatten the reduced nest into one counter with div/mod
                let acc = k.for_acc_n(0, count as i64, 1, &[init], |k, r, a| {
                    let mut off = base;
                    let mut rem = r;
                    for q in (0..rshape.len()).rev() {
                        let i = k.b.ins().urem_imm_s(rem, rshape[q] as i64);
                        rem = k.b.ins().udiv_imm_s(rem, rshape[q] as i64);
                        let t = k.b.ins().imul_imm_s(i, rstr[q] as i64);
                        off = k.b.ins().iadd(off, t);
                    }
                    let v = k.ld_at(types::F32, src, off, 4, 0);
                    let ins = k.b.ins();
                    vec![match kind {
                        ReduceKind::Sum | ReduceKind::Mean | ReduceKind::LogSum => ins.fadd(a[0], v),
                        ReduceKind::Max => ins.fmax(a[0], v),
                        ReduceKind::Min => ins.fmin(a[0], v),
                        ReduceKind::Prod => ins.fmul(a[0], v),
                        ReduceKind::L1 => {
                            let t = ins.fabs(v);
                            k.b.ins().fadd(a[0], t)
                        }
                        ReduceKind::L2 | ReduceKind::SumSquare => k.fmadd(v, v, a[0]),
                        ReduceKind::LogSumExp => {
                            let e = math::exp(&mut k.b, v);
                            k.b.ins().fadd(a[0], e)
                        }
                    }]
                });
                let a = acc[0];
                let r = match kind {
                    ReduceKind::Mean => {
                        let c = k.fc(count as f32);
                        k.b.ins().fdiv(a, c)
                    }
                    ReduceKind::L2 => k.b.ins().sqrt(a),
                    ReduceKind::LogSum | ReduceKind::LogSumExp => math::log(&mut k.b, a),
                    _ => a,
                };
                k.st_at(r, dst, o, 4, 0);
            }
            None => {
                let init_v = k.fc(if is_argmax { f32::NEG_INFINITY } else { f32::INFINITY });
                let init_i = k.ic(0);
                let acc = k.for_acc_n(0, count as i64, 1, &[init_v, init_i], |k, r, a| {
                    let t = k.b.ins().imul_imm_s(r, rstr[0] as i64);
                    let off = k.b.ins().iadd(base, t);
                    let v = k.ld_at(types::F32, src, off, 4, 0);
                    let cc = match (is_argmax, select_last) {
                        (true, false) => FloatCC::GreaterThan,
                        (true, true) => FloatCC::GreaterThanOrEqual,
                        (false, false) => FloatCC::LessThan,
                        (false, true) => FloatCC::LessThanOrEqual,
                    };
                    let better = k.b.ins().fcmp(cc, v, a[0]);
                    let nv = k.b.ins().select(better, v, a[0]);
                    let ni = k.b.ins().select(better, r, a[1]);
                    vec![nv, ni]
                });
                k.st_at(acc[1], dst, o, 8, 0);
            }
        }
    });
    Ok(())
}
