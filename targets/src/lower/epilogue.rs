//! Epilogues applied by the conv/GEMM kernels in registers, between the
//! last multiply-add and the store: `y = act(acc + residual)` (the bias is
//! the accumulators' initial value). Fusing them saves one full pass over
//! the output per activation / residual add (DESIGN-NOTES §8 rule 6: such
//! passes are memory-bound).

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Type, Value};
use kerf_ir::UnaryOp;

use super::{Family, Kernel};
use crate::math;
use crate::ukernel::vmath::{self, VFn};

/// An activation the kernels can apply before the store.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    /// No activation: the value is stored as is.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, lo), hi)`.
    Clip {
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
    /// `x >= 0 ? x : alpha * x`.
    LeakyRelu {
        /// Slope applied to negative inputs.
        alpha: f32,
    },
    /// `x * clip(x / 6 + 1/2, 0, 1)`.
    HardSwish,
    /// `1 / (1 + e^-x)` ([`math::sigmoid`]).
    Sigmoid,
    /// [`math::tanh`].
    Tanh,
    /// GELU: exact erf form ([`math::gelu`]) or the tanh approximation
    /// ([`math::gelu_tanh`]).
    Gelu {
        /// Use the tanh approximation instead of the exact erf form.
        tanh: bool,
    },
}

impl Act {
    /// The epilogue form of a fused activation (`kerf_ir::op::Epilogue::act`);
    /// `None` for an op the kernels cannot apply (a codegen error naming the op).
    pub fn of(act: Option<UnaryOp>) -> Result<Act, String> {
        Ok(match act {
            None => Act::None,
            Some(UnaryOp::Relu) => Act::Relu,
            Some(UnaryOp::Clip { min, max }) => Act::Clip { lo: min.get(), hi: max.get() },
            Some(UnaryOp::LeakyRelu { alpha }) => Act::LeakyRelu { alpha: alpha.get() },
            Some(UnaryOp::HardSwish) => Act::HardSwish,
            Some(UnaryOp::Sigmoid) => Act::Sigmoid,
            Some(UnaryOp::Tanh) => Act::Tanh,
            Some(UnaryOp::Gelu { tanh }) => Act::Gelu { tanh },
            Some(u) => return Err(format!("{} cannot be applied as a kernel epilogue", u.name())),
        })
    }
}

/// What happens to each output vector before it is stored.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue {
    /// Activation applied last, after the residual add.
    pub act: Act,
    /// Pointer to a tensor of the output's shape added before the activation.
    pub residual: Option<Value>,
}

impl Epilogue {
    /// Plain store: no activation, no residual.
    pub const NONE: Epilogue = Epilogue { act: Act::None, residual: None };
}

/// `y = act(y + residual)` in place over `n` floats at `y`, the residual's
/// `n` at `r` (the same layout): the epilogue as a pass of its own, for a
/// kernel that did not apply it before its stores (nothing when `epi` is
/// [`Epilogue::NONE`]).
pub fn epilogue_pass(k: &mut Kernel, epi: Epilogue, (y, r): (Value, Option<Value>), n: usize) {
    if epi.act == Act::None && r.is_none() {
        return;
    }
    k.for_vec(n, &mut |k, ty, i| {
        let p = k.addr(y, i, 4);
        let mut v = k.ld(ty, p, 0);
        if let Some(r) = r {
            let x = k.ld_at(ty, r, i, 4, 0);
            v = k.b.ins().fadd(v, x);
        }
        let v = apply_act(k, ty, epi.act, v);
        k.st(v, p, 0);
    });
}

/// `act(x)` on `ty` (`F32` or `F32X4`). Uses only min/max/mul/add/select
/// paths that every ISA lowers natively. Max/min operand order follows the
/// reference evaluator: NaN inputs stay NaN through Relu and Clip. The
/// transcendental activations are the `math` routines the standalone
/// elementwise kernels use, so a fused and an unfused activation give
/// bit-identical results.
pub fn apply_act(k: &mut Kernel, ty: Type, act: Act, x: Value) -> Value {
    if let Some(y) = clamp_select(k, ty, act, x) {
        return y;
    }
    match act {
        Act::None => x,
        Act::Relu => {
            let z = k.fsplat(ty, 0.0);
            k.b.ins().fmax(x, z)
        }
        Act::Clip { lo, hi } => {
            let l = k.fsplat(ty, lo);
            let h = k.fsplat(ty, hi);
            let t = k.b.ins().fmax(x, l);
            k.b.ins().fmin(t, h)
        }
        Act::LeakyRelu { alpha } => {
            // max(x, 0) + alpha * min(x, 0)
            let z = k.fsplat(ty, 0.0);
            let a = k.fsplat(ty, alpha);
            let p = k.b.ins().fmax(x, z);
            let n = k.b.ins().fmin(x, z);
            let an = k.b.ins().fmul(a, n);
            k.b.ins().fadd(p, an)
        }
        Act::HardSwish => {
            let sixth = k.fsplat(ty, 1.0 / 6.0);
            let half = k.fsplat(ty, 0.5);
            let z = k.fsplat(ty, 0.0);
            let one = k.fsplat(ty, 1.0);
            let t = k.b.ins().fmul(x, sixth);
            let t = k.b.ins().fadd(t, half);
            let t = if ty.is_vector() {
                // selects (one maxps/minps each on x86-64): `t` is never -0
                // (`x/6 + 0.5` rounds an exact zero to +0), so they equal
                // fmax/fmin for every non-NaN `t`, and NaN stays NaN
                let t = sel_lt(k, ty, t, z, z, t); // t < 0 ? 0 : t
                sel_lt(k, ty, one, t, one, t) // 1 < t ? 1 : t
            } else {
                let t = k.b.ins().fmax(t, z);
                k.b.ins().fmin(t, one)
            };
            k.b.ins().fmul(x, t)
        }
        Act::Sigmoid => math::sigmoid(&mut k.b, x),
        Act::Tanh => math::tanh(&mut k.b, x),
        Act::Gelu { tanh: false } => math::gelu(&mut k.b, x),
        Act::Gelu { tanh: true } => math::gelu_tanh(&mut k.b, x),
    }
}

/// The function of `act`'s AVX2 stream ([`vmath`]), for the long
/// transcendental activations.
pub fn act_stream(act: Act) -> Option<VFn> {
    match act {
        Act::Sigmoid => Some(VFn::Sigmoid),
        Act::Tanh => Some(VFn::Tanh),
        Act::Gelu { tanh: false } => Some(VFn::Gelu),
        Act::Gelu { tanh: true } => Some(VFn::GeluTanh),
        _ => None,
    }
}

/// Whether [`stream_prefix`] runs a stream over `n` elements on this
/// target (AVX2, at least one whole vector).
pub fn has_streams(k: &Kernel, n: usize) -> bool {
    k.caps.avx2 && k.lanes() == 4 && n >= 8
}

/// `dst[i] = f(src[i])` over the first `n / 8 · 8` elements through the
/// AVX2 stream of `f` (`dst` may equal `src`) when the target has AVX2;
/// returns how many elements it covered (0 without a stream), for the
/// caller's Cranelift loop to finish. The stream gives that loop's bits
/// ([`vmath`]), so the split point does not show in the output.
pub fn stream_prefix(k: &mut Kernel, f: Option<VFn>, src: Value, dst: Value, n: usize) -> usize {
    let Some(f) = f else { return 0 };
    if !has_streams(k, n) {
        return 0;
    }
    // assembly cannot fail for the functions `VFn` names (a unit test
    // assembles each); should it, the Cranelift loop does all of it
    let Ok(code) = vmath::stream(f) else { return 0 };
    let code = k.code(Family::Avx2, code.bytes.clone());
    let sig = k.ukernel_sig(3);
    let count = k.ic((n / 8) as i64);
    k.b.ins().call_indirect(sig, code, &[src, dst, count]);
    n / 8 * 8
}

/// `act` in place over `rows` rows of `width` elements, the first at `p`,
/// `row_bytes` apart: per row the AVX2 stream of a transcendental
/// activation ([`stream_prefix`]), then [`apply_act`] on what it left
/// (everything, without a stream): the values an in-register epilogue
/// gives. The GEMM engines' pass over a finished block.
pub fn act_rows(k: &mut Kernel, act: Act, p: Value, rows: usize, row_bytes: usize, width: usize) {
    k.for_n(0, rows as i64, 1, |k, r| {
        let q = k.addr(p, r, row_bytes as i64);
        let done = stream_prefix(k, act_stream(act), q, q, width);
        k.for_vec_from(done, width, &mut |k, ty, j| {
            let e = k.addr(q, j, 4);
            let x = k.ld(ty, e, 0);
            let y = apply_act(k, ty, act, x);
            k.st(y, e, 0);
        });
    });
}

/// Vector Relu and Clip as compare-and-select, the form x86-64 lowers to one
/// `maxps`/`minps` each (Cranelift's `fmax`/`fmin` are a NaN- and
/// signed-zero-exact sequence of ~8 instructions, costlier than the nine taps
/// of a 3x3 depthwise output). The result equals [`apply_act`]'s bit for bit
/// for every non-NaN input and NaN stays NaN (`NaN < c` is false): the
/// selects differ from `fmax`/`fmin` only for a zero against a zero bound:
/// a `+0` lower bound adds `+0.0` afterwards (`-0 + 0 = +0`, as
/// `fmax(-0, +0)`); a `-0` lower bound and a `+0` upper one need nothing
/// (`fmax(+0, -0) = +0` and `fmin(-0, +0) = -0` are what the selects keep);
/// a `-0` upper bound (`fmin(+0, -0) = -0`) and NaN bounds take the
/// `fmax`/`fmin` path (`None`). Scalars (kernel tails) keep `fmax`/`fmin`, so
/// a tail and a vector body give the same bits.
pub(super) fn clamp_select(k: &mut Kernel, ty: Type, act: Act, x: Value) -> Option<Value> {
    let (lo, hi) = match act {
        Act::Relu => (0.0f32, None),
        Act::Clip { lo, hi } => (lo, Some(hi)),
        _ => return None,
    };
    if !ty.is_vector() || !selects_clamp(lo, hi) {
        return None;
    }
    let l = k.fsplat(ty, lo);
    let mut y = sel_lt(k, ty, x, l, l, x); // x < lo ? lo : x
    if lo.to_bits() == 0 {
        let z = k.fsplat(ty, 0.0);
        y = k.b.ins().fadd(y, z);
    }
    if let Some(hi) = hi {
        let h = k.fsplat(ty, hi);
        y = sel_lt(k, ty, h, y, h, y); // hi < y ? hi : y
    }
    Some(y)
}

/// Whether [`clamp_select`]'s compare-selects give `fmax`/`fmin`'s bits
/// for these bounds ([`crate::ukernel::epi::Clamp::selects_equal_fmax_fmin`]:
/// the tiles' clamp is the same selects, so they take the same bounds).
pub(super) fn selects_clamp(lo: f32, hi: Option<f32>) -> bool {
    crate::ukernel::epi::Clamp { lo, hi }.selects_equal_fmax_fmin()
}

/// `(a < b) ? pick_a : pick_b` on vectors, in the shape the x86-64 backend
/// matches to one `maxps`/`minps`.
pub(super) fn sel_lt(k: &mut Kernel, ty: Type, a: Value, b: Value, pick_a: Value, pick_b: Value) -> Value {
    let le = MemFlagsData::new().with_endianness(Endianness::Little);
    let c = k.b.ins().fcmp(FloatCC::LessThan, a, b);
    let m = k.b.ins().bitcast(ty, le, c);
    k.b.ins().bitselect(m, pick_a, pick_b)
}
