//! The Cranelift tiles' K loops, where no assembled tile applies: 16-bit
//! weight pairs against B pair vectors through `pmaddwd`'s tree on 128-bit
//! targets ([`k_loop`]), and scalar `i32` products without SIMD
//! ([`k_loop_scalar`]). Both give the exact sums `Σ x·w` of the pairs.

use cranelift_codegen::ir::{types, Endianness, InstBuilder, MemFlagsData, Value};

use super::super::loops::{mem, ro};
use super::super::Kernel;
use super::Dims;

/// The scalar tile's sums (targets without SIMD): `rows × 8` i32 values
/// (row-major) over every K pair.
pub(super) fn k_loop_scalar(k: &mut Kernel, d: &Dims, b: Value, a_blk: Value, rows: usize) -> Vec<Value> {
    let zero = k.b.ins().iconst(types::I32, 0);
    let init = vec![zero; 8 * rows];
    k.for_acc_n(0, d.a_steps() as i64, 1, &init, |k, t, acc| {
        let (bp, ap) = pair_step(k, d, (b, a_blk), t, rows);
        let bv: Vec<Value> = (0..16).map(|i| k.b.ins().sload16(types::I32, mem(), bp, 2 * i)).collect();
        let mut next = Vec::with_capacity(acc.len());
        for r in 0..rows {
            let w0 = k.b.ins().sload16(types::I32, ro(), ap, (4 * r) as i32);
            let w1 = k.b.ins().sload16(types::I32, ro(), ap, (4 * r + 2) as i32);
            for i in 0..8 {
                let p0 = k.b.ins().imul(w0, bv[2 * i]);
                let p1 = k.b.ins().imul(w1, bv[2 * i + 1]);
                let pp = k.b.ins().iadd(p0, p1);
                next.push(k.b.ins().iadd(acc[8 * r + i], pp));
            }
        }
        next
    })
}

/// The Cranelift tile's sums: `rows × 2` i32x4 accumulators (row-major,
/// 4 pixels each) over every K pair, or over the listed ones.
pub(super) fn k_loop(k: &mut Kernel, d: &Dims, b: Value, a_blk: Value, rows: usize) -> Vec<Value> {
    let le = MemFlagsData::new().with_endianness(Endianness::Little);
    let zero = k.b.ins().iconst(types::I32, 0);
    let z4 = k.b.ins().splat(types::I32X4, zero);
    let init = vec![z4; 2 * rows];
    k.for_acc_n(0, d.a_steps() as i64, 1, &init, |k, t, acc| {
        let (bp, ap) = pair_step(k, d, (b, a_blk), t, rows);
        let bv = [k.ld(types::I16X8, bp, 0), k.ld(types::I16X8, bp, 16)];
        let mut next = Vec::with_capacity(acc.len());
        for r in 0..rows {
            let a32 = k.ld_ro(types::I32, ap, (4 * r) as i32);
            let a4 = k.b.ins().splat(types::I32X4, a32);
            let a8 = k.b.ins().bitcast(types::I16X8, le, a4);
            for (j, &b) in bv.iter().enumerate() {
                let prod = madd(k, a8, b);
                next.push(k.b.ins().iadd(acc[2 * r + j], prod));
            }
        }
        next
    })
}

/// Where the Cranelift tiles' step `t` reads: its B pair vectors (32 bytes
/// a step in the unit's panel at `b`) and its rows' weight pairs in the
/// block at `a_blk`; listed ([`listed`](super::listed)), A's step starts with the `u32`
/// offset of its B step and the pairs follow.
fn pair_step(k: &mut Kernel, d: &Dims, (b, a_blk): (Value, Value), t: Value, rows: usize) -> (Value, Value) {
    let ap = k.addr(a_blk, t, d.a_step_bytes(rows) as i64);
    match d.listed {
        Some(_) => {
            let off = k.b.ins().uload32(ro(), ap, 0);
            (k.b.ins().iadd(b, off), k.b.ins().iadd_imm_s(ap, 4))
        }
        None => (k.addr(b, t, d.step_bytes() as i64), ap),
    }
}

/// `[a0·b0 + a1·b1, …]`: pairs of i16 lanes multiplied and added into i32
/// lanes, in the tree Cranelift lowers to `pmaddwd` on x86-64.
fn madd(k: &mut Kernel, a: Value, b: Value) -> Value {
    let al = k.b.ins().swiden_low(a);
    let bl = k.b.ins().swiden_low(b);
    let ah = k.b.ins().swiden_high(a);
    let bh = k.b.ins().swiden_high(b);
    let lo = k.b.ins().imul(al, bl);
    let hi = k.b.ins().imul(ah, bh);
    k.b.ins().iadd_pairwise(lo, hi)
}
