//! Elementwise kernels: unary and binary ops with numpy broadcasting,
//! `Where`, and `Chain` (several f32 steps in one pass: one load of each
//! input and one store per element, the steps in registers; `Cast` is in
//! `cast.rs`).
//!
//! Shape handling: every operand gets per-axis element strides into the
//! output shape (0 on broadcast axes); adjacent axes that are contiguous for
//! all operands are merged. The innermost axis runs `f32x4` steps with a
//! scalar tail when every operand and the result are f32; operands
//! broadcast along it are loaded once and splatted outside the inner loop.
//! Other dtypes (ints, bool) run the same nest with scalars.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Type, Value};
use kerf_ir::op::ChainStep;
use kerf_ir::{BinaryOp, DType, Op, UnaryOp};

use super::cast::{f32_to_half, half_to_f32, is_half};
use super::chain::{chain, chain_streamed, step_stream};
use super::epilogue::{has_streams, stream_prefix};
use super::{cl_type, Kernel, LResult};
use crate::math;
use crate::ukernel::vmath::VFn;

mod scalar;
use scalar::{binary_scalar, pow_mixed, unary_scalar};

/// Strides (elements) of `shape` broadcast into an output of rank `r`.
pub fn bcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let r = out.len();
    let off = r - shape.len();
    let own = kerf_ir::eval::strides(shape);
    (0..r).map(|a| if a < off || shape[a - off] == 1 && out[a] != 1 { 0 } else { own[a - off] }).collect()
}

/// Merges adjacent axes that are contiguous in every stride list.
pub fn collapse(shape: &[usize], strides: &[Vec<usize>]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut s: Vec<usize> = Vec::new();
    let mut st: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
    for a in 0..shape.len() {
        if shape[a] == 1 {
            continue;
        }
        let mergeable =
            !s.is_empty() && strides.iter().enumerate().all(|(k, v)| st[k].last().copied() == Some(v[a] * shape[a]));
        if mergeable {
            let last = s.len() - 1;
            s[last] *= shape[a];
            for (k, v) in strides.iter().enumerate() {
                let l = st[k].len() - 1;
                st[k][l] = v[a];
            }
        } else {
            s.push(shape[a]);
            for (k, v) in strides.iter().enumerate() {
                st[k].push(v[a]);
            }
        }
    }
    if s.is_empty() {
        s.push(1);
        for v in &mut st {
            v.push(1);
        }
    }
    (s, st)
}

/// `cmp(x, y) ? a : b` for f32 scalars or f32x4 vectors.
pub fn fsel(k: &mut Kernel, cc: FloatCC, x: Value, y: Value, a: Value, b: Value) -> Value {
    let ty = k.b.func.dfg.value_type(a);
    let c = k.b.ins().fcmp(cc, x, y);
    if ty.is_vector() {
        let m =
            k.b.ins().bitcast(ty, MemFlagsData::new().with_endianness(cranelift_codegen::ir::Endianness::Little), c);
        k.b.ins().bitselect(m, a, b)
    } else {
        k.b.ins().select(c, a, b)
    }
}

fn clamp01(k: &mut Kernel, ty: Type, x: Value) -> Value {
    let z = k.fsplat(ty, 0.0);
    let o = k.fsplat(ty, 1.0);
    let t = k.b.ins().fmax(x, z);
    k.b.ins().fmin(t, o)
}

/// Round half to even without SSE4.1: `(x + 1.5*2^23) - 1.5*2^23` is exact
/// for |x| < 2^22; larger values are already integers.
fn round_even(k: &mut Kernel, ty: Type, x: Value) -> Value {
    if k.caps.round {
        return k.b.ins().nearest(x);
    }
    let c = k.fsplat(ty, 12582912.0);
    let t = k.b.ins().fadd(x, c);
    let r = k.b.ins().fsub(t, c);
    let ax = k.b.ins().fabs(x);
    let lim = k.fsplat(ty, 4194304.0);
    fsel(k, FloatCC::LessThan, ax, lim, r, x)
}

/// A float unary op on `F32` or `F32X4`.
pub fn unary_f(k: &mut Kernel, u: UnaryOp, ty: Type, x: Value) -> LResult<Value> {
    use UnaryOp::*;
    let z = || 0.0f32;
    Ok(match u {
        Neg => k.b.ins().fneg(x),
        Abs => k.b.ins().fabs(x),
        Sqrt => k.b.ins().sqrt(x),
        Reciprocal => {
            let o = k.fsplat(ty, 1.0);
            k.b.ins().fdiv(o, x)
        }
        Exp => math::exp(&mut k.b, x),
        Log => math::log(&mut k.b, x),
        Erf => math::erf(&mut k.b, x),
        Tanh => math::tanh(&mut k.b, x),
        Sigmoid => math::sigmoid(&mut k.b, x),
        Relu => {
            let zero = k.fsplat(ty, z());
            fsel(k, FloatCC::LessThan, x, zero, zero, x)
        }
        Floor => math::floor(&mut k.b, x, k.caps.round),
        Ceil => {
            let n = k.b.ins().fneg(x);
            let f = math::floor(&mut k.b, n, k.caps.round);
            k.b.ins().fneg(f)
        }
        Round => round_even(k, ty, x),
        Sign => {
            let zero = k.fsplat(ty, 0.0);
            let one = k.fsplat(ty, 1.0);
            let m1 = k.fsplat(ty, -1.0);
            let neg = fsel(k, FloatCC::LessThan, x, zero, m1, x);
            fsel(k, FloatCC::GreaterThan, x, zero, one, neg)
        }
        Softplus => {
            // max(x, 0) + log(1 + exp(-|x|)) never overflows.
            let zero = k.fsplat(ty, 0.0);
            let one = k.fsplat(ty, 1.0);
            let a = k.b.ins().fabs(x);
            let na = k.b.ins().fneg(a);
            let e = math::exp(&mut k.b, na);
            let s = k.b.ins().fadd(one, e);
            let l = math::log(&mut k.b, s);
            let p = fsel(k, FloatCC::LessThan, x, zero, zero, x);
            k.b.ins().fadd(p, l)
        }
        Softsign => {
            let one = k.fsplat(ty, 1.0);
            let a = k.b.ins().fabs(x);
            let d = k.b.ins().fadd(one, a);
            k.b.ins().fdiv(x, d)
        }
        HardSwish => {
            let s = k.fsplat(ty, 1.0 / 6.0);
            let h = k.fsplat(ty, 0.5);
            let t = k.b.ins().fmul(x, s);
            let t = k.b.ins().fadd(t, h);
            let c = clamp01(k, ty, t);
            k.b.ins().fmul(x, c)
        }
        LeakyRelu { alpha } => {
            let zero = k.fsplat(ty, 0.0);
            let a = k.fsplat(ty, alpha.get());
            let m = k.b.ins().fmul(x, a);
            fsel(k, FloatCC::LessThan, x, zero, m, x)
        }
        HardSigmoid { alpha, beta } => {
            let a = k.fsplat(ty, alpha.get());
            let bb = k.fsplat(ty, beta.get());
            let t = k.b.ins().fmul(x, a);
            let t = k.b.ins().fadd(t, bb);
            clamp01(k, ty, t)
        }
        Clip { min, max } => {
            // compare-selects where they give fmax/fmin's bits (vectors)
            let act = super::epilogue::Act::Clip { lo: min.get(), hi: max.get() };
            if let Some(y) = super::epilogue::clamp_select(k, ty, act, x) {
                return Ok(y);
            }
            let lo = k.fsplat(ty, min.get());
            let hi = k.fsplat(ty, max.get());
            let t = k.b.ins().fmax(x, lo);
            k.b.ins().fmin(t, hi)
        }
        Gelu { tanh: false } => math::gelu(&mut k.b, x),
        Gelu { tanh: true } => math::gelu_tanh(&mut k.b, x),
        Elu { alpha } | Selu { alpha, .. } => {
            let zero = k.fsplat(ty, 0.0);
            let one = k.fsplat(ty, 1.0);
            let a = k.fsplat(ty, alpha.get());
            let e = math::exp(&mut k.b, x);
            let e = k.b.ins().fsub(e, one);
            let e = k.b.ins().fmul(e, a);
            let cc = if matches!(u, Selu { .. }) { FloatCC::LessThanOrEqual } else { FloatCC::LessThan };
            let r = fsel(k, cc, x, zero, e, x);
            if let Selu { gamma, .. } = u {
                let g = k.fsplat(ty, gamma.get());
                k.b.ins().fmul(r, g)
            } else {
                r
            }
        }
        Sin => math::sin(&mut k.b, x),
        Cos => math::cos(&mut k.b, x),
        Tan => math::tan(&mut k.b, x),
        Asin => math::asin(&mut k.b, x),
        Acos => math::acos(&mut k.b, x),
        Atan => math::atan(&mut k.b, x),
        Sinh => math::sinh(&mut k.b, x),
        Cosh => math::cosh(&mut k.b, x),
        Asinh => math::asinh(&mut k.b, x),
        Acosh => math::acosh(&mut k.b, x),
        Atanh => math::atanh(&mut k.b, x),
        Not | BitwiseNot => return Err(format!("{} is not implemented for f32", u.name())),
    })
}

/// Small-integer power by repeated multiplication, or the general
/// `exp(y * log(x))` (defined for x > 0).
fn pow_f(k: &mut Kernel, ty: Type, x: Value, y: Value, const_exp: Option<f32>) -> Value {
    match const_exp {
        Some(1.0) => x,
        Some(2.0) => k.b.ins().fmul(x, x),
        Some(3.0) => {
            let t = k.b.ins().fmul(x, x);
            k.b.ins().fmul(t, x)
        }
        Some(0.5) => k.b.ins().sqrt(x),
        Some(-1.0) => {
            let o = k.fsplat(ty, 1.0);
            k.b.ins().fdiv(o, x)
        }
        Some(0.0) => k.fsplat(ty, 1.0),
        _ => {
            let l = math::log(&mut k.b, x);
            let t = k.b.ins().fmul(l, y);
            math::exp(&mut k.b, t)
        }
    }
}

/// A float binary op with a float result.
pub(super) fn binary_f(
    k: &mut Kernel,
    op: BinaryOp,
    ty: Type,
    a: Value,
    b: Value,
    const_exp: Option<f32>,
) -> LResult<Value> {
    use BinaryOp::*;
    Ok(match op {
        Add => k.b.ins().fadd(a, b),
        Sub => k.b.ins().fsub(a, b),
        Mul => k.b.ins().fmul(a, b),
        Div => k.b.ins().fdiv(a, b),
        Max => k.b.ins().fmax(a, b),
        Min => k.b.ins().fmin(a, b),
        Pow => pow_f(k, ty, a, b, const_exp),
        PRelu => {
            let zero = k.fsplat(ty, 0.0);
            let m = k.b.ins().fmul(a, b);
            fsel(k, FloatCC::LessThan, a, zero, m, a)
        }
        _ => return Err(format!("{} is not implemented for f32 results", op.name())),
    })
}

/// The constant exponent of a Pow when every element is the same.
fn const_exponent(k: &Kernel) -> Option<f32> {
    let v = k.const_f32(1)?;
    let first = *v.first()?;
    v.iter().all(|&x| x == first).then_some(first)
}

/// Lowers `Unary`, `Binary`, `Where`, `Chain` and `BitCast` (see the module
/// docs); `Err` for dtypes the kernels do not handle.
pub fn lower(k: &mut Kernel) -> LResult {
    let op = k.node.op.clone();
    let n_in = k.node.inputs.len();
    let out_shape = k.out_shape(0).to_vec();
    let od = k.out_dtype(0);
    let in_d: Vec<DType> = (0..n_in).map(|i| k.in_dtype(i)).collect();
    for d in in_d.iter().chain([&od]) {
        if cl_type(*d).is_none() {
            return Err(format!("dtype {d} is not supported"));
        }
    }
    let pow_exp = if op == Op::Binary(BinaryOp::Pow) { const_exponent(k) } else { None };
    let int_or_f32 = |d: DType| d == DType::F32 || (d.is_int() && d != DType::Bool);
    let mixed_pow = op == Op::Binary(BinaryOp::Pow) && (in_d[0] != DType::F32 || in_d[1] != DType::F32);
    if mixed_pow && !(int_or_f32(in_d[0]) && int_or_f32(in_d[1]) && od == in_d[0]) {
        return Err(format!("Pow on {} ^ {} is not supported (f32 and integer operands are)", in_d[0], in_d[1]));
    }
    // Vector path: every operand and the result are f32 and the op is float -> float.
    let all_f32 = in_d.iter().all(|&d| d == DType::F32) && od == DType::F32;
    let vec_ok = k.caps.simd && all_f32 && !matches!(op, Op::Binary(BinaryOp::Mod | BinaryOp::Fmod) | Op::BitCast(_));
    // Validate the op once on a scalar type by dry-run checks.
    if !mixed_pow {
        check(&op, &in_d, od)?;
    }

    let mut strides: Vec<Vec<usize>> = (0..n_in).map(|i| bcast_strides(k.in_shape(i), &out_shape)).collect();
    strides.push(kerf_ir::eval::strides(&out_shape));
    let (shape, st) = collapse(&out_shape, &strides);
    let ptrs: Vec<Value> = (0..n_in).map(|i| k.input(i)).collect();
    let out = k.output(0);
    let sizes: Vec<i64> = in_d.iter().map(|d| d.size() as i64).collect();
    let r = shape.len();
    let rows = Rows { op: &op, in_d: &in_d, od, pow_exp, mixed_pow, vec_ok, ptrs, out, sizes, inner: shape[r - 1] };
    let mut first_err: Option<String> = None;
    k.nest(&shape[..r - 1], &mut |k, idx| {
        let offs: Vec<Value> = st.iter().map(|s| k.linear(idx, &s[..r - 1])).collect();
        let inner_strides: Vec<usize> = st.iter().map(|s| s[r - 1]).collect();
        if let Err(e) = rows.row(k, &offs, &inner_strides) {
            first_err.get_or_insert(e);
        }
    });
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// What every innermost row of an elementwise kernel computes ([`lower`]).
struct Rows<'a> {
    op: &'a Op,
    in_d: &'a [DType],
    od: DType,
    /// A Pow's constant exponent.
    pow_exp: Option<f32>,
    /// A Pow with an integer operand.
    mixed_pow: bool,
    /// All f32: the vector path.
    vec_ok: bool,
    ptrs: Vec<Value>,
    out: Value,
    /// Bytes per element of each input.
    sizes: Vec<i64>,
    /// Elements of the innermost (collapsed) axis.
    inner: usize,
}

impl Rows<'_> {
    /// One row: the operands at element offsets `offs` (the output's last),
    /// `strides` their innermost strides (0: broadcast along the row).
    fn row(&self, k: &mut Kernel, offs: &[Value], strides: &[usize]) -> LResult {
        let Rows { op, in_d, od, pow_exp, mixed_pow, vec_ok, ref ptrs, out, ref sizes, inner } = *self;
        let n_in = in_d.len();
        let osize = od.size() as i64;
        // Operands broadcast along the inner axis: load once here.
        let mut hoisted: Vec<Option<Value>> = vec![None; n_in];
        for i in 0..n_in {
            if strides[i] == 0 {
                let p = k.addr(ptrs[i], offs[i], sizes[i]);
                let t = cl_type(in_d[i]).unwrap_or(types::I8);
                hoisted[i] = Some(k.ld(t, p, 0));
            }
        }
        // `check` above makes the emitters infallible; should one fail anyway,
        // the first error is returned instead of leaving the output unwritten.
        let mut failed: Option<String> = None;
        // the operands at element j; those `want` leaves out are a dead
        // constant in their place
        let load_args = |k: &mut Kernel, ty: Type, j: Value, want: Option<&dyn Fn(usize) -> bool>| -> Vec<Value> {
            let mut args = Vec::with_capacity(n_in);
            for i in 0..n_in {
                if want.is_some_and(|w| !w(i)) {
                    args.push(k.fsplat(ty, 0.0));
                    continue;
                }
                let v = match hoisted[i] {
                    Some(s) => k.widen(if ty.is_vector() { ty } else { types::F32 }, s),
                    None => {
                        let e = k.b.ins().iadd(offs[i], j);
                        let lt = if ty.is_vector() { ty } else { cl_type(in_d[i]).unwrap_or(types::I8) };
                        k.ld_at(lt, ptrs[i], e, sizes[i], 0)
                    }
                };
                let v = if !ty.is_vector() && hoisted[i].is_some() { hoisted[i].unwrap_or(v) } else { v };
                args.push(v);
            }
            args
        };
        if let Op::Chain(steps) = op {
            if vec_ok && has_streams(k, inner) && steps.iter().any(|s| step_stream(s).is_some()) {
                let ob = k.addr(out, offs[n_in], 4);
                return chain_streamed(k, steps, inner, ob, &load_args);
            }
        }
        let mut body = |k: &mut Kernel, ty: Type, j: Value| {
            let args = load_args(k, ty, j, None);
            let res = if ty.is_vector() {
                apply_vec(k, op, ty, &args, pow_exp)
            } else if mixed_pow {
                pow_mixed(k, in_d, od, args[0], args[1])
            } else {
                apply_scalar(k, op, in_d, od, &args, pow_exp)
            };
            match res {
                Ok(v) => {
                    let e = k.b.ins().iadd(offs[n_in], j);
                    k.st_at(v, out, e, osize, 0);
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        };
        if vec_ok {
            let done = match (unary_stream(op), hoisted[0]) {
                (Some(f), None) => {
                    let src = k.addr(ptrs[0], offs[0], 4);
                    let dst = k.addr(out, offs[n_in], 4);
                    stream_prefix(k, Some(f), src, dst, inner)
                }
                _ => 0,
            };
            k.for_vec_from(done, inner, &mut body);
        } else {
            k.for_n(0, inner as i64, 1, |k, j| body(k, types::F32, j));
        }
        failed.map_or(Ok(()), Err)
    }
}

/// The AVX2 stream ([`crate::ukernel::vmath`]) computing a unary op the
/// way [`unary_f`] does.
pub(super) fn unary_stream(op: &Op) -> Option<VFn> {
    match op {
        Op::Unary(UnaryOp::Exp) => Some(VFn::Exp),
        Op::Unary(UnaryOp::Erf) => Some(VFn::Erf),
        Op::Unary(UnaryOp::Tanh) => Some(VFn::Tanh),
        Op::Unary(UnaryOp::Sigmoid) => Some(VFn::Sigmoid),
        Op::Unary(UnaryOp::Gelu { tanh: false }) => Some(VFn::Gelu),
        Op::Unary(UnaryOp::Gelu { tanh: true }) => Some(VFn::GeluTanh),
        _ => None,
    }
}

/// Checks support up front so that the emitters never fail halfway.
fn check(op: &Op, in_d: &[DType], od: DType) -> LResult {
    use BinaryOp::*;
    match op {
        Op::Unary(u) => {
            // halves compute in f32
            let d = if is_half(in_d[0]) { DType::F32 } else { in_d[0] };
            let ok = match d {
                DType::F32 => !matches!(u, UnaryOp::Not | UnaryOp::BitwiseNot),
                DType::F64 => matches!(
                    u,
                    UnaryOp::Neg
                        | UnaryOp::Abs
                        | UnaryOp::Sqrt
                        | UnaryOp::Relu
                        | UnaryOp::Exp
                        | UnaryOp::Log
                        | UnaryOp::Reciprocal
                        | UnaryOp::Sigmoid
                ),
                DType::Bool => *u == UnaryOp::Not,
                d if d.is_signed_int() => matches!(
                    u,
                    UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Relu | UnaryOp::Clip { .. } | UnaryOp::BitwiseNot
                ),
                d if d.is_int() => matches!(u, UnaryOp::Clip { .. } | UnaryOp::BitwiseNot),
                _ => false,
            };
            if !ok {
                return Err(format!("{} on {d} is not supported", u.name()));
            }
        }
        Op::Binary(b) => {
            let d = if is_half(in_d[0]) { DType::F32 } else { in_d[0] };
            let ok = match d {
                DType::F32 => !matches!(b, And | Or | Xor) && !b.is_bitwise(),
                DType::F64 => {
                    matches!(
                        b,
                        Add | Sub
                            | Mul
                            | Div
                            | Max
                            | Min
                            | Mod
                            | Fmod
                            | Equal
                            | Greater
                            | GreaterOrEqual
                            | Less
                            | LessOrEqual
                    )
                }
                DType::Bool => matches!(b, And | Or | Xor | Equal),
                d if d.is_int() => {
                    matches!(
                        b,
                        Add | Sub
                            | Mul
                            | Div
                            | Mod
                            | Fmod
                            | Max
                            | Min
                            | Equal
                            | Greater
                            | GreaterOrEqual
                            | Less
                            | LessOrEqual
                    ) || b.is_bitwise()
                }
                _ => false,
            };
            if !ok {
                return Err(format!("{} on {d} is not supported", b.name()));
            }
        }
        Op::BitCast(to) => {
            if in_d[0].size() != to.size() || cl_type(*to).is_none() {
                return Err(format!("BitCast {} -> {to} is not supported", in_d[0]));
            }
        }
        Op::Where => {
            if cl_type(in_d[1]).is_none() {
                return Err(format!("Where on {} is not supported", in_d[1]));
            }
        }
        Op::Chain(steps) => {
            if in_d.iter().any(|&d| d != DType::F32) || od != DType::F32 {
                return Err("Chain needs f32 inputs and output".into());
            }
            for s in steps {
                match *s {
                    ChainStep::Unary(u) if !kerf_ir::op::chain::unary_ok(u) => {
                        return Err(format!("{} cannot be a chain step", u.name()))
                    }
                    ChainStep::Binary { op, arg, .. } if !kerf_ir::op::chain::binary_ok(op) || arg >= in_d.len() => {
                        return Err(format!("{} (input {arg}) cannot be a chain step", op.name()))
                    }
                    _ => {}
                }
            }
        }
        _ => return Err("not an elementwise op".into()),
    }
    let _ = od;
    Ok(())
}

fn apply_vec(k: &mut Kernel, op: &Op, ty: Type, args: &[Value], pow_exp: Option<f32>) -> LResult<Value> {
    match op {
        Op::Unary(u) => unary_f(k, *u, ty, args[0]),
        Op::Binary(b) => binary_f(k, *b, ty, args[0], args[1], pow_exp),
        Op::Chain(steps) => chain(k, steps, ty, args),
        _ => Err("no vector form".into()),
    }
}

fn apply_scalar(
    k: &mut Kernel,
    op: &Op,
    in_d: &[DType],
    od: DType,
    args: &[Value],
    pow_exp: Option<f32>,
) -> LResult<Value> {
    let half_math = matches!(op, Op::Unary(_) | Op::Binary(_)) && in_d.iter().all(|&d| is_half(d));
    if half_math {
        // f16/bf16 arithmetic: exact widening to f32, the f32 op, one rounding back
        let wide: Vec<Value> = args.iter().zip(in_d).map(|(&a, &d)| half_to_f32(k, d, a)).collect();
        let f32s = vec![DType::F32; in_d.len()];
        let od32 = if is_half(od) { DType::F32 } else { od };
        let r = apply_scalar(k, op, &f32s, od32, &wide, pow_exp)?;
        return Ok(if is_half(od) { f32_to_half(k, od, r) } else { r });
    }
    match op {
        Op::Unary(u) => unary_scalar(k, *u, in_d[0], args[0]),
        Op::Binary(b) => binary_scalar(k, *b, in_d[0], args[0], args[1], pow_exp),
        Op::Chain(steps) => chain(k, steps, types::F32, args),
        Op::Where => Ok(k.b.ins().select(args[0], args[1], args[2])),
        Op::BitCast(to) => {
            let tt = cl_type(*to).ok_or_else(|| format!("BitCast to {to} is not supported"))?;
            let x = args[0];
            if k.b.func.dfg.value_type(x) == tt {
                Ok(x)
            } else {
                Ok(k.b.ins().bitcast(tt, MemFlagsData::new(), x))
            }
        }
        _ => Err(format!("{} is not elementwise (result {od})", op.name())),
    }
}
