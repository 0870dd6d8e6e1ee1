//! The integer conv's Cranelift epilogue ([`finish`]): what the assembled
//! tiles' own store does (`ukernel::avx2::int_tile`), for the units and
//! targets they leave to Cranelift (tails, partial blocks, `baseline`,
//! AArch64, RISC-V): the residual (f32, or u8 on its grid), the
//! activation, and the f32 or requantised u8 store, in the reference's
//! order, so its bits.

use cranelift_codegen::ir::{types, Endianness, InstBuilder, MemFlagsData, Value};
use kerf_ir::op::GridStep;

use super::super::epilogue::{apply_act, Act};
use super::super::loops::mem;
use super::super::{Kernel, LResult};

/// Where [`finish`] puts a real-valued result: the output and the
/// residual (each addressed at element 0 of the run it stores), f32 or
/// u8 on the requantiser's grid `(factor, zp)` ([`kerf_ir::op::QOut::grid`]).
pub(super) struct Store {
    pub(super) out: Value,
    pub(super) res: Option<Value>,
    /// The residual is u8 on this grid (`scale`, `zp`), else f32.
    pub(super) res_grid: Option<(f32, u8)>,
    pub(super) quant: Option<(f32, u8)>,
}

/// Bytes per residual element: 1 on a u8 grid, else 4 (f32).
pub(super) fn res_bytes(grid: Option<(f32, u8)>) -> i64 {
    if grid.is_some() {
        1
    } else {
        4
    }
}

/// The residual's value(s) of type `ty` (`f32x4` or `f32`) at element `at`
/// of `st.res`: f32 as stored, or a u8 code `r` as `f32(r − zp) · scale`.
fn residual(k: &mut Kernel, st: &Store, r: Value, ty: types::Type, at: usize) -> Value {
    let Some((scale, zp)) = st.res_grid else {
        return k.ld(ty, r, (4 * at) as i32);
    };
    let codes = if ty.is_vector() {
        let four = k.b.ins().load(types::I32, mem(), r, at as i32);
        let v = k.b.ins().scalar_to_vector(types::I32X4, four);
        let v = k.b.ins().bitcast(types::I8X16, MemFlagsData::new().with_endianness(Endianness::Little), v);
        let v = k.b.ins().uwiden_low(v);
        k.b.ins().uwiden_low(v)
    } else {
        k.b.ins().uload8(types::I32, mem(), r, at as i32)
    };
    let ity = if ty.is_vector() { types::I32X4 } else { types::I32 };
    let z = k.b.ins().iconst(types::I32, i64::from(zp));
    let z = if ty.is_vector() { k.b.ins().splat(ity, z) } else { z };
    let c = k.b.ins().isub(codes, z);
    let f = k.b.ins().fcvt_from_sint(ty, c);
    let s = k.b.ins().f32const(scale);
    let s = if ty.is_vector() { k.b.ins().splat(ty, s) } else { s };
    k.b.ins().fmul(f, s)
}

/// The rest of the integer epilogue on `f = f32(acc)·s + b` (an `f32x4`,
/// or one `f32` on targets without SIMD) at element `at`: the residual,
/// the activation, then the f32 or requantised u8 store, `live` of its
/// lanes (all of them as one vector, fewer one by one: an image's last
/// pixels, a block's last channels).
pub(super) fn finish(k: &mut Kernel, act: Act, st: &Store, f: Value, live: usize, at: usize) -> LResult {
    let ty = k.b.func.dfg.value_type(f);
    let lanes = if ty.is_vector() { ty.lane_count() as usize } else { 1 };
    if live == lanes {
        let f = match st.res {
            Some(r) => {
                let rv = residual(k, st, r, ty, at);
                k.b.ins().fadd(f, rv)
            }
            None => f,
        };
        let y = apply_act(k, ty, act, f);
        return store_one(k, st, y, at);
    }
    for l in 0..live {
        let mut x = k.b.ins().extractlane(f, l as u8);
        if let Some(r) = st.res {
            let rv = residual(k, st, r, types::F32, at + l);
            x = k.b.ins().fadd(x, rv);
        }
        let y = apply_act(k, types::F32, act, x);
        store_one(k, st, y, at + l)?;
    }
    Ok(())
}

/// Stores the real-valued `y` (`f32x4` or one `f32`) at element `at`: as
/// it is, or on the requantiser's grid (`QOut::Quant`: a multiplication by
/// the factor, [`GridStep::Mul`]).
fn store_one(k: &mut Kernel, st: &Store, y: Value, at: usize) -> LResult {
    let vector = k.b.func.dfg.value_type(y).is_vector();
    match st.quant {
        None => k.st(y, st.out, (4 * at) as i32),
        Some((f, zp)) if vector => super::super::quantize::store_words(k, y, GridStep::Mul(f), zp, st.out, at as i32)?,
        Some((f, zp)) => {
            let q = super::super::quantize::one_value(k, y, GridStep::Mul(f), zp)?;
            k.b.ins().istore8(mem(), q, st.out, at as i32);
        }
    }
    Ok(())
}
