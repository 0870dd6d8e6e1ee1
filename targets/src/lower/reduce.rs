//! Reductions (ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp)
//! and ArgMax/ArgMin on f32: an outer nest over the output, an inner nest
//! over the reduced axes, scalar accumulation.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, InstBuilder, Type, Value};
use kerf_ir::op::ReduceKind;
use kerf_ir::{DType, Op};

use super::{Kernel, LResult};
use crate::math;

/// Lowers `Reduce*`, `ArgMax` and `ArgMin` on f32; f64 and integer inputs
/// support a subset of the reductions and no arg-reductions.
pub fn lower(k: &mut Kernel) -> LResult {
    if k.in_dtype(0) != DType::F32 {
        if let Op::Reduce { kind, axes, .. } = &k.node.op {
            return reduce_other(k, *kind, axes);
        }
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
    // one output costs about two operations per reduced element
    k.parallel_nest(&kshape, 2 * count as u64, &mut |k, idx| {
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
                    let off = reduced_offset(k, base, r, &rshape, &rstr);
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
    })
}

/// Reductions on f64 (Sum, Mean, Max, Min, Prod, L1, L2, SumSquare) and
/// integers (Sum, Max, Min, Prod, L1, SumSquare; wrapping like the
/// reference's machine integers): scalar accumulation in the input type.
fn reduce_other(k: &mut Kernel, kind: ReduceKind, axes: &[usize]) -> LResult {
    let d = k.in_dtype(0);
    let Some(ty) = super::cl_type(d) else { return Err(format!("dtype {d} is not supported")) };
    let float = d == DType::F64;
    let ok = match kind {
        ReduceKind::Sum
        | ReduceKind::Max
        | ReduceKind::Min
        | ReduceKind::Prod
        | ReduceKind::L1
        | ReduceKind::SumSquare => float || (d.is_int() && d != DType::Bool),
        ReduceKind::Mean | ReduceKind::L2 | ReduceKind::LogSum | ReduceKind::LogSumExp => float,
    };
    if !ok || k.out_dtype(0) != d {
        return Err(format!(
            "{kind:?} on {d} is not supported (f32 and f64, and integer Sum/Max/Min/Prod/L1/SumSquare are)"
        ));
    }
    let signed = d.is_signed_int();
    let xs = k.in_shape(0).to_vec();
    let xst = kerf_ir::eval::strides(&xs);
    let axes: Vec<usize> = if axes.is_empty() { (0..xs.len()).collect() } else { axes.to_vec() };
    let kept: Vec<usize> = (0..xs.len()).filter(|a| !axes.contains(a)).collect();
    let kshape: Vec<usize> = kept.iter().map(|&a| xs[a]).collect();
    let kstr: Vec<usize> = kept.iter().map(|&a| xst[a]).collect();
    let rshape: Vec<usize> = axes.iter().map(|&a| xs[a]).collect();
    let rstr: Vec<usize> = axes.iter().map(|&a| xst[a]).collect();
    let count: usize = rshape.iter().product();
    let es = d.size() as i64;
    let (src, dst) = (k.input(0), k.output(0));
    let ost = kerf_ir::eval::strides(&kshape);
    // one output costs about two operations per reduced element
    k.parallel_nest(&kshape, 2 * count as u64, &mut |k, idx| {
        let base = k.linear(idx, &kstr);
        let o = k.linear(idx, &ost);
        let init = other_init(k, kind, ty, float, signed);
        // LogSumExp: a first pass finds the maximum m, the sum is of e^(v - m)
        let lse_max = if kind == ReduceKind::LogSumExp {
            let ninf = k.b.ins().f64const(f64::NEG_INFINITY);
            let m = k.for_acc_n(0, count as i64, 1, &[ninf], |k, r, a| {
                let off = reduced_offset(k, base, r, &rshape, &rstr);
                let v = k.ld_at(ty, src, off, es, 0);
                vec![k.b.ins().fmax(a[0], v)]
            })[0];
            // all -inf (or empty): shift by 0 so the sum is 0 (or e^-inf = 0) and the log -inf
            let z = k.b.ins().f64const(0.0);
            let fin = k.b.ins().fcmp(FloatCC::NotEqual, m, ninf);
            let pinf = k.b.ins().f64const(f64::INFINITY);
            let not_pinf = k.b.ins().fcmp(FloatCC::NotEqual, m, pinf);
            let ok = k.b.ins().band(fin, not_pinf);
            Some(k.b.ins().select(ok, m, z))
        } else {
            None
        };
        let acc = k.for_acc_n(0, count as i64, 1, &[init], |k, r, a| {
            let off = reduced_offset(k, base, r, &rshape, &rstr);
            let v = k.ld_at(ty, src, off, es, 0);
            let a = a[0];
            if let Some(m) = lse_max {
                let t = k.b.ins().fsub(v, m);
                let e = math::exp64(&mut k.b, t);
                return vec![k.b.ins().fadd(a, e)];
            }
            vec![other_step(k, kind, (float, signed), a, v)]
        });
        let r = other_finish(k, kind, count, acc[0], lse_max);
        k.st_at(r, dst, o, es, 0);
    })?;
    Ok(())
}

/// The first value of a reduction's accumulator: the identity of `kind`
/// (−inf for Max, the type's least integer, …).
fn other_init(k: &mut Kernel, kind: ReduceKind, ty: Type, float: bool, signed: bool) -> Value {
    let bits = ty.bits();
    if float {
        k.b.ins().f64const(match kind {
            ReduceKind::Max => f64::NEG_INFINITY,
            ReduceKind::Min => f64::INFINITY,
            ReduceKind::Prod => 1.0,
            _ => 0.0,
        })
    } else {
        let v: i64 = match (kind, signed) {
            (ReduceKind::Max, true) => i64::MIN >> (64 - bits),
            (ReduceKind::Max, false) => 0,
            (ReduceKind::Min, true) => i64::MAX >> (64 - bits),
            (ReduceKind::Min, false) => (u64::MAX >> (64 - bits)) as i64,
            (ReduceKind::Prod, _) => 1,
            _ => 0,
        };
        k.b.ins().iconst(ty, v)
    }
}

/// One step of a reduction: accumulator `a` and the element `v` (f64 when
/// `float`, else an integer of the input's type, `signed` or not).
fn other_step(k: &mut Kernel, kind: ReduceKind, (float, signed): (bool, bool), a: Value, v: Value) -> Value {
    use cranelift_codegen::ir::condcodes::IntCC;
    let ins = k.b.ins();
    match (kind, float) {
        (ReduceKind::Sum | ReduceKind::Mean, true) => ins.fadd(a, v),
        (ReduceKind::Sum, false) => ins.iadd(a, v),
        (ReduceKind::Max, true) => ins.fmax(a, v),
        (ReduceKind::Min, true) => ins.fmin(a, v),
        (ReduceKind::Max, false) => {
            let c = ins.icmp(if signed { IntCC::SignedGreaterThan } else { IntCC::UnsignedGreaterThan }, v, a);
            k.b.ins().select(c, v, a)
        }
        (ReduceKind::Min, false) => {
            let c = ins.icmp(if signed { IntCC::SignedLessThan } else { IntCC::UnsignedLessThan }, v, a);
            k.b.ins().select(c, v, a)
        }
        (ReduceKind::Prod, true) => ins.fmul(a, v),
        (ReduceKind::Prod, false) => ins.imul(a, v),
        (ReduceKind::L1, true) => {
            let t = ins.fabs(v);
            k.b.ins().fadd(a, t)
        }
        (ReduceKind::L1, false) => {
            let t = if signed { ins.iabs(v) } else { v };
            k.b.ins().iadd(a, t)
        }
        (ReduceKind::LogSum, true) => ins.fadd(a, v),
        (_, true) => {
            // L2, SumSquare
            let t = ins.fmul(v, v);
            k.b.ins().fadd(a, t)
        }
        (_, false) => {
            let t = ins.imul(v, v);
            k.b.ins().iadd(a, t)
        }
    }
}

/// The output from the accumulator: Mean divides by `count`, L2 takes the
/// root, LogSum the log, LogSumExp the log plus the first pass's maximum.
fn other_finish(k: &mut Kernel, kind: ReduceKind, count: usize, a: Value, lse_max: Option<Value>) -> Value {
    match kind {
        ReduceKind::Mean => {
            let c = k.b.ins().f64const(count as f64);
            k.b.ins().fdiv(a, c)
        }
        ReduceKind::L2 => k.b.ins().sqrt(a),
        ReduceKind::LogSum => math::log64(&mut k.b, a),
        ReduceKind::LogSumExp => {
            let l = math::log64(&mut k.b, a);
            let m = lse_max.unwrap_or(a);
            k.b.ins().fadd(l, m)
        }
        _ => a,
    }
}

/// Element offset of the `r`-th element (row-major counter) of the reduced
/// sub-nest with extents `rshape` and element strides `rstr`, from `base`:
/// the reduced axes are flattened into one loop counter, split back here
/// with div/mod.
fn reduced_offset(k: &mut Kernel, base: Value, r: Value, rshape: &[usize], rstr: &[usize]) -> Value {
    let mut off = base;
    let mut rem = r;
    for q in (0..rshape.len()).rev() {
        let i = k.b.ins().urem_imm_s(rem, rshape[q] as i64);
        rem = k.b.ins().udiv_imm_s(rem, rshape[q] as i64);
        let t = k.b.ins().imul_imm_s(i, rstr[q] as i64);
        off = k.b.ins().iadd(off, t);
    }
    off
}
