//! Softmax, LogSoftmax, LayerNormalization, BatchNormalization (inference)
//! and InstanceNormalization.
//!
//! Each reduces along one contiguous or strided axis: the tensor is seen as
//! `[outer, len, inner]`; when `inner == 1` rows are contiguous and run with
//! `f32x4` steps, otherwise scalars with stride `inner`.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, InstBuilder, Type, Value};
use kerf_ir::Op;

use super::elementwise::fsel;
use super::epilogue::{has_streams, stream_prefix};
use super::{Kernel, LResult};
use crate::math;
use crate::ukernel::vmath::VFn;

/// Independent vector accumulators of a row reduction: one accumulator
/// chains every step on the add (or max) latency; 4 keep the adder busy.
const NACC: usize = 4;

/// How [`row_reduce`] combines.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Comb {
    Add,
    /// `a < v ? v : a`: a compare and select (a NaN element is skipped
    /// here, but every caller feeds the same element to an `exp` or a
    /// difference, so the row's result is NaN either way, as in the
    /// reference). Cheaper than Cranelift's NaN-exact `fmax` on x86-64.
    Max,
}

fn comb(k: &mut Kernel, c: Comb, a: Value, v: Value) -> Value {
    match c {
        Comb::Add => k.b.ins().fadd(a, v),
        Comb::Max => fsel(k, FloatCC::LessThan, a, v, v, a),
    }
}

/// Reduces `f(k, ty, j)` over the `len` elements `j` of a contiguous row:
/// blocks of [`NACC`] vectors with independent accumulators, then single
/// vectors, then scalars (`ty` tells `f` which). Returns the scalar.
fn row_reduce(
    k: &mut Kernel,
    len: usize,
    c: Comb,
    init: f32,
    f: &mut dyn FnMut(&mut Kernel, Type, Value) -> Value,
) -> Value {
    let l = k.lanes();
    let vty = k.vty();
    let chunk = NACC * l;
    let main = if l > 1 { len / chunk * chunk } else { 0 };
    let z = k.fsplat(vty, init);
    let accs = k.for_acc_n(0, main as i64, chunk as i64, &[z; NACC], |k, j, a| {
        (0..NACC)
            .map(|i| {
                let ji = k.b.ins().iadd_imm_s(j, (i * l) as i64);
                let v = f(k, vty, ji);
                comb(k, c, a[i], v)
            })
            .collect()
    });
    let mut acc = accs[0];
    for &a in &accs[1..] {
        acc = comb(k, c, acc, a);
    }
    let vmain = len / l * l;
    let acc = k.for_acc_n(main as i64, vmain as i64, l as i64, &[acc], |k, j, a| {
        let v = f(k, vty, j);
        vec![comb(k, c, a[0], v)]
    })[0];
    let head = match (l > 1, c) {
        (false, _) => acc,
        (true, Comb::Add) => k.hsum(acc),
        (true, Comb::Max) => k.hmax(acc),
    };
    k.for_acc_n(vmain as i64, len as i64, 1, &[head], |k, j, a| {
        let v = f(k, types::F32, j);
        vec![comb(k, c, a[0], v)]
    })[0]
}

/// `v` (an f32 scalar computed from a finished reduction) through a stack
/// slot, so that its computation stays where it is. Without the fence,
/// Cranelift's e-graph elaboration places the pure computation at its uses,
/// which are inside the next loop: the horizontal sum, division and square
/// root of a row's statistics ran once per vector step instead of once per
/// row (LayerNormalization on 64×128: 15.4 µs before, 6.6 µs after).
fn pin(k: &mut Kernel, v: Value) -> Value {
    use cranelift_codegen::ir::{StackSlotData, StackSlotKind};
    let ty = k.b.func.dfg.value_type(v);
    let slot = k.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, ty.bytes(), 2));
    k.b.ins().stack_store(super::PTR, v, slot, 0);
    k.b.ins().stack_load(super::PTR, ty, slot, 0)
}

/// `for j in 0..len` over a row at `p` (elements `j*stride`), vector steps
/// when the row is contiguous.
fn row_loop(k: &mut Kernel, len: usize, stride: usize, body: &mut dyn FnMut(&mut Kernel, Type, Value)) {
    if stride == 1 {
        k.for_vec(len, body);
    } else {
        k.for_n(0, len as i64, 1, |k, j| body(k, types::F32, j));
    }
}

/// Lowers `Softmax` / `LogSoftmax` along one axis, rows split across tasks.
pub fn softmax(k: &mut Kernel) -> LResult {
    k.require_f32()?;
    let (axis, log) = match k.node.op {
        Op::Softmax { axis } => (axis, false),
        Op::LogSoftmax { axis } => (axis, true),
        _ => return Err("not a softmax".into()),
    };
    let sh = k.in_shape(0).to_vec();
    let outer: usize = sh[..axis].iter().product();
    let len = sh[axis];
    let inner: usize = sh[axis + 1..].iter().product();
    let xp = k.input(0);
    let out = k.output(0);
    // Rows are independent: split across tasks. Cost per element: an exp
    // and ~6 other operations, measured ~2.5 ns on x86-64, which is ~50
    // units on MIN_TASK_COST's scale (400 000 units ~ 20 us).
    k.parallel_nest(&[outer, inner], (50 * len) as u64, &mut |k, idx| {
        let base = k.linear(idx, &[len * inner, 1]);
        let xb = k.addr(xp, base, 4);
        let ob = k.addr(out, base, 4);
        let mx = if inner == 1 {
            row_reduce(k, len, Comb::Max, f32::NEG_INFINITY, &mut |k, ty, j| k.ld_at(ty, xb, j, 4, 0))
        } else {
            let init = k.fc(f32::NEG_INFINITY);
            k.for_acc_n(0, len as i64, 1, &[init], |k, j, a| {
                let v = k.ld_at(types::F32, xb, j, (inner * 4) as i64, 0);
                vec![k.b.ins().fmax(a[0], v)]
            })[0]
        };
        let mx = pin(k, mx);
        if !log && inner == 1 && has_streams(k, len) {
            let sum = exp_row_streamed(k, xb, ob, mx, len);
            return normalise(k, ob, sum, len, inner);
        }
        // exp(x - max) into out (unless log), accumulating the sum
        let mut ex = |k: &mut Kernel, ty: Type, j: Value| {
            let v = k.ld_at(ty, xb, j, (inner * 4) as i64, 0);
            let m = k.widen(ty, mx);
            let d = k.b.ins().fsub(v, m);
            let e = math::exp(&mut k.b, d);
            if !log {
                k.st_at(e, ob, j, (inner * 4) as i64, 0);
            }
            e
        };
        let sum = if inner == 1 {
            row_reduce(k, len, Comb::Add, 0.0, &mut ex)
        } else {
            let z = k.fc(0.0);
            k.for_acc_n(0, len as i64, 1, &[z], |k, j, a| {
                let e = ex(k, types::F32, j);
                vec![k.b.ins().fadd(a[0], e)]
            })[0]
        };
        if log {
            // (x - max) - log(sum): `x - (max + lse)` would round `max + lse`
            // at the magnitude of `max` (an ulp of 1e4 is 1e-3 in f32).
            let ls = math::log(&mut k.b, sum);
            let ls = pin(k, ls);
            row_loop(k, len, inner, &mut |k, ty, j| {
                let v = k.ld_at(ty, xb, j, (inner * 4) as i64, 0);
                let m = k.widen(ty, mx);
                let s = k.widen(ty, ls);
                let d = k.b.ins().fsub(v, m);
                let r = k.b.ins().fsub(d, s);
                k.st_at(r, ob, j, (inner * 4) as i64, 0);
            });
        } else {
            normalise(k, ob, sum, len, inner);
        }
    })?;
    Ok(())
}

/// `out[j] = exp(x[j] - mx)` over a contiguous row and its sum, in
/// three passes: the differences, the AVX2 exp stream over whole vectors
/// in place (then Cranelift's exp on the tail), the sum. Every value and
/// the summation order are those of the fused one-pass loop, so the
/// bits are too.
fn exp_row_streamed(k: &mut Kernel, xb: Value, ob: Value, mx: Value, len: usize) -> Value {
    row_loop(k, len, 1, &mut |k, ty, j| {
        let v = k.ld_at(ty, xb, j, 4, 0);
        let m = k.widen(ty, mx);
        let d = k.b.ins().fsub(v, m);
        k.st_at(d, ob, j, 4, 0);
    });
    let done = stream_prefix(k, Some(VFn::Exp), ob, ob, len);
    k.for_vec_from(done, len, &mut |k, ty, j| {
        let d = k.ld_at(ty, ob, j, 4, 0);
        let e = math::exp(&mut k.b, d);
        k.st_at(e, ob, j, 4, 0);
    });
    row_reduce(k, len, Comb::Add, 0.0, &mut |k, ty, j| k.ld_at(ty, ob, j, 4, 0))
}

/// `out[j] /= sum` as a multiplication by `1 / sum`.
fn normalise(k: &mut Kernel, ob: Value, sum: Value, len: usize, inner: usize) {
    let one = k.fc(1.0);
    let inv = k.b.ins().fdiv(one, sum);
    let inv = pin(k, inv);
    row_loop(k, len, inner, &mut |k, ty, j| {
        let v = k.ld_at(ty, ob, j, (inner * 4) as i64, 0);
        let s = k.widen(ty, inv);
        let r = k.b.ins().fmul(v, s);
        k.st_at(r, ob, j, (inner * 4) as i64, 0);
    });
}

/// Mean and 1/sqrt(var + eps) of `len` contiguous values at `p`.
fn moments(k: &mut Kernel, p: Value, len: usize, eps: f32) -> (Value, Value) {
    // two passes (mean, then squared deviations): the one-pass E[x²] - mean²
    // cancels badly when |mean| >> std
    let s = row_reduce(k, len, Comb::Add, 0.0, &mut |k, ty, i| k.ld_at(ty, p, i, 4, 0));
    let n = k.fc(len as f32);
    let mean = k.b.ins().fdiv(s, n);
    let mean = pin(k, mean);
    let q = row_reduce(k, len, Comb::Add, 0.0, &mut |k, ty, i| {
        let v = k.ld_at(ty, p, i, 4, 0);
        let m = k.widen(ty, mean);
        let d = k.b.ins().fsub(v, m);
        k.b.ins().fmul(d, d)
    });
    let var = k.b.ins().fdiv(q, n);
    let e = k.fc(eps);
    let ve = k.b.ins().fadd(var, e);
    let sd = k.b.ins().sqrt(ve);
    let one = k.fc(1.0);
    let rstd = k.b.ins().fdiv(one, sd);
    (mean, pin(k, rstd))
}

/// Pointer to parameter `i` broadcast to `shape` (row-major, full length):
/// a packed blob when it is a constant, the tensor itself when it is a
/// run-time value that already has `shape`'s element count (the only
/// run-time broadcast that needs no copy).
fn param_broadcast(k: &mut Kernel, i: usize, shape: &[usize]) -> LResult<Value> {
    let n: usize = shape.iter().product();
    let Some(v) = k.const_f32(i) else {
        let ps = k.in_shape(i);
        if ps.iter().product::<usize>() != n {
            return Err(format!("run-time input {i} of shape {ps:?} must have the normalized shape {shape:?}"));
        }
        return Ok(k.input(i));
    };
    let ps = k.in_shape(i);
    let st = super::elementwise::bcast_strides(ps, shape);
    let sts = kerf_ir::eval::strides(shape);
    let full: Vec<f32> = (0..n)
        .map(|f| {
            let src: usize = (0..shape.len()).map(|a| (f / sts[a]) % shape[a] * st[a]).sum();
            v[src]
        })
        .collect();
    Ok(k.blob_f32(&full))
}

/// Lowers `LayerNormalization`: normalizes over the axes from `axis` on, then scale and optional bias.
pub fn layer_norm(k: &mut Kernel) -> LResult {
    k.require_f32()?;
    let Op::LayerNorm { axis, epsilon } = k.node.op else { return Err("not a LayerNorm".into()) };
    let sh = k.in_shape(0).to_vec();
    let outer: usize = sh[..axis].iter().product();
    let len: usize = sh[axis..].iter().product();
    let sp = param_broadcast(k, 1, &sh[axis..])?;
    let bp = if k.node.inputs.len() > 2 { param_broadcast(k, 2, &sh[axis..])? } else { k.blob_f32(&vec![0.0; len]) };
    let xp = k.input(0);
    let out = k.output(0);
    k.for_n(0, outer as i64, 1, |k, r| {
        let base = k.b.ins().imul_imm_s(r, len as i64);
        let xb = k.addr(xp, base, 4);
        let ob = k.addr(out, base, 4);
        let (mean, rstd) = moments(k, xb, len, epsilon.get());
        k.for_vec(len, &mut |k, ty, j| {
            let v = k.ld_at(ty, xb, j, 4, 0);
            let m = k.widen(ty, mean);
            let s = k.widen(ty, rstd);
            let d = k.b.ins().fsub(v, m);
            let d = k.b.ins().fmul(d, s);
            let g = k.ld_at(ty, sp, j, 4, 0);
            let bb = k.ld_at(ty, bp, j, 4, 0);
            let r = k.fmadd(d, g, bb);
            k.st_at(r, ob, j, 4, 0);
        });
    });
    Ok(())
}

/// `y = x * s[c] + t[c]` over `[n, c, plane]`, with `(s, t)` computed per
/// channel by `st` from the channel index.
fn channel_affine(k: &mut Kernel, st: &mut dyn FnMut(&mut Kernel, Value) -> (Value, Value)) {
    let sh = k.in_shape(0).to_vec();
    let (n, c) = (sh[0], sh[1]);
    let plane: usize = sh[2..].iter().product();
    let xp = k.input(0);
    let out = k.output(0);
    k.for_n(0, (n * c) as i64, 1, |k, nc| {
        let ch = k.b.ins().urem_imm_s(nc, c as i64);
        let (sv, tv) = st(k, ch);
        let base = k.b.ins().imul_imm_s(nc, plane as i64);
        k.for_vec(plane, &mut |k, ty, j| {
            let e = k.b.ins().iadd(base, j);
            let v = k.ld_at(ty, xp, e, 4, 0);
            let a = k.widen(ty, sv);
            let b = k.widen(ty, tv);
            let r = k.fmadd(v, a, b);
            k.st_at(r, out, e, 4, 0);
        });
    });
}

/// Lowers inference `BatchNormalization` as a per-channel `x * s + t`, with
/// `s` and `t` folded at compile time when all four parameters are constant.
pub fn batch_norm(k: &mut Kernel) -> LResult {
    k.require_f32()?;
    let Op::BatchNorm { epsilon } = k.node.op else { return Err("not a BatchNorm".into()) };
    let eps = epsilon.get();
    if k.node.inputs.len() < 5 {
        return Err(format!("expected 5 inputs, got {}", k.node.inputs.len()));
    }
    let c = k.in_shape(0).get(1).copied().unwrap_or(1);
    for i in 1..5 {
        if k.in_shape(i).iter().product::<usize>() != c {
            return Err(format!("parameter {i} of shape {:?} must have {c} elements", k.in_shape(i)));
        }
    }
    if let (Some(scale), Some(bias), Some(mean), Some(var)) =
        (k.const_f32(1), k.const_f32(2), k.const_f32(3), k.const_f32(4))
    {
        // folded at compile time
        let s: Vec<f32> = scale.iter().zip(&var).map(|(g, v)| g / (v + eps).sqrt()).collect();
        let t: Vec<f32> = bias.iter().zip(&mean).zip(&s).map(|((b, m), s)| b - m * s).collect();
        let sp = k.blob_f32(&s);
        let tp = k.blob_f32(&t);
        channel_affine(k, &mut |k, ch| (k.ld_at(types::F32, sp, ch, 4, 0), k.ld_at(types::F32, tp, ch, 4, 0)));
    } else {
        // run-time parameters: s = g / sqrt(v + eps), t = b - m * s per channel
        let ps: Vec<Value> = (1..5).map(|i| k.input(i)).collect();
        channel_affine(k, &mut |k, ch| {
            let [g, b, m, v] = [ps[0], ps[1], ps[2], ps[3]].map(|p| k.ld_at(types::F32, p, ch, 4, 0));
            let e = k.fc(eps);
            let ve = k.b.ins().fadd(v, e);
            let sd = k.b.ins().sqrt(ve);
            let s = k.b.ins().fdiv(g, sd);
            let ms = k.b.ins().fmul(m, s);
            let t = k.b.ins().fsub(b, ms);
            (s, t)
        });
    }
    Ok(())
}

/// Lowers `InstanceNormalization`: normalizes each `(n, c)` plane, then per-channel scale and bias.
pub fn instance_norm(k: &mut Kernel) -> LResult {
    k.require_f32()?;
    let Op::InstanceNorm { epsilon } = k.node.op else { return Err("not an InstanceNorm".into()) };
    let sh = k.in_shape(0).to_vec();
    let (n, c) = (sh[0], sh[1]);
    let plane: usize = sh[2..].iter().product();
    for i in 1..3 {
        if k.in_shape(i).iter().product::<usize>() != c {
            return Err(format!("parameter {i} of shape {:?} must have {c} elements", k.in_shape(i)));
        }
    }
    // scale and bias are read in place (constants are passed as their data)
    let xp = k.input(0);
    let sp = k.input(1);
    let bp = k.input(2);
    let out = k.output(0);
    k.for_n(0, (n * c) as i64, 1, |k, nc| {
        let ch = k.b.ins().urem_imm_s(nc, c as i64);
        let base = k.b.ins().imul_imm_s(nc, plane as i64);
        let xb = k.addr(xp, base, 4);
        let ob = k.addr(out, base, 4);
        let (mean, rstd) = moments(k, xb, plane, epsilon.get());
        let g = k.ld_at(types::F32, sp, ch, 4, 0);
        let bb = k.ld_at(types::F32, bp, ch, 4, 0);
        let a = k.b.ins().fmul(rstd, g);
        k.for_vec(plane, &mut |k, ty, j| {
            let v = k.ld_at(ty, xb, j, 4, 0);
            let m = k.widen(ty, mean);
            let av = k.widen(ty, a);
            let bv = k.widen(ty, bb);
            let d = k.b.ins().fsub(v, m);
            let r = k.fmadd(d, av, bv);
            k.st_at(r, ob, j, 4, 0);
        });
    });
    Ok(())
}
