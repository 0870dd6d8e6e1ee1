//! [`Op::Quantize`]: the u8 activation quantiser in one pass.
//!
//! Per element `u8(clip(round(x / scale), −zp, 255 − zp) + zp)`, computed by
//! the elementwise kernels' own emitters for `Div` and `Round` (and, on the
//! scalar path, `Clip` and `Add`: `elementwise::chain`), so the values are
//! the bits the separate ops would give; they are whole numbers in
//! `0..=255`, so the conversion to u8 is exact. Vectors take the clamp as
//! compare-selects and the conversion as `+ 2^23` and the low byte (see
//! `Quantiser::words`); four `f32x4` become one 16-byte store (narrowed
//! twice with saturation, which never clips here), then 4-byte stores, then
//! single bytes. With AVX2 the blocks of 16 are an assembled pass
//! (`ukernel::quantize`, 256 or 512 bits: the same operations, so the
//! same bytes). The output is walked plane by plane: pad rows
//! are stores of `zp`, each input row is a run of `zp` bytes, the row's
//! quantised values and another run of `zp` bytes. Without padding the
//! whole tensor is one row.

use cranelift_codegen::ir::{types, Endianness, InstBuilder, MemFlagsData, SigRef, Type, Value};
use kerf_ir::op::{ChainStep, GridStep};
use kerf_ir::{BinaryOp, Op, UnaryOp, F32};

use super::chain::chain;
use super::elementwise::{binary_f, unary_f};
use super::epilogue::sel_lt;
use super::loops::mem;
use super::{Family, Kernel, LResult};
use crate::ukernel::quantize::{quantize_blocks, QuantBlocks};

/// Lowers an [`Op::Quantize`] node.
pub fn lower(k: &mut Kernel) -> LResult {
    let Op::Quantize { scale, zp, pads } = k.node.op.clone() else {
        return Err("internal: quantize lowering on another op".into());
    };
    let xs = k.in_shape(0).to_vec();
    let r = xs.len();
    let n: usize = xs.iter().product();
    let steps = steps(BinaryOp::Div, zp);
    let blocks = match k.caps.avx2 {
        true => {
            let qb = QuantBlocks { scale: scale.get(), zp, zmm: k.caps.avx512 };
            let code = quantize_blocks(&qb).map_err(|e| format!("internal: quantiser blocks: {e}"))?;
            let family = if qb.zmm { Family::Avx512 } else { Family::Avx2 };
            Some((k.code(family, code), k.ukernel_sig(3)))
        }
        false => None,
    };
    let q = Quantiser { steps, scale: scale.get(), zp, x: k.input(0), y: k.output(0), blocks };
    if pads.iter().all(|&p| p == 0) || r < 2 {
        return q.run(k, q.x, q.y, n);
    }
    let (h, w) = (xs[r - 2], xs[r - 1]);
    let (top, left, bottom, right) = (pads[r - 2], pads[r - 1], pads[2 * r - 2], pads[2 * r - 1]);
    let ow = left + w + right;
    let planes = n / (h * w).max(1);
    let plane_out = (top + h + bottom) * ow;
    let mut result: LResult = Ok(());
    k.for_n(0, planes as i64, 1, |k, p| {
        if result.is_err() {
            return;
        }
        let src = k.addr(q.x, p, (4 * h * w) as i64);
        let dst = k.addr(q.y, p, plane_out as i64);
        q.fill(k, dst, top * ow);
        let below = k.add_c(dst, ((top + h) * ow) as i64);
        q.fill(k, below, bottom * ow);
        let first = k.add_c(dst, (top * ow) as i64);
        k.for_n(0, h as i64, 1, |k, row| {
            if result.is_err() {
                return;
            }
            let out_row = k.addr(first, row, ow as i64);
            let in_row = k.addr(src, row, (4 * w) as i64);
            q.fill(k, out_row, left);
            let values = k.add_c(out_row, left as i64);
            result = q.run(k, in_row, values, w);
            let after = k.add_c(values, w as i64);
            q.fill(k, after, right);
        });
    });
    result
}

/// One quantiser: its steps, constants and the node's pointers.
struct Quantiser {
    steps: [ChainStep; 4],
    scale: f32,
    zp: u8,
    x: Value,
    y: Value,
    /// With AVX2: the assembled block pass ([`quantize_blocks`]) and its
    /// call signature.
    blocks: Option<(Value, SigRef)>,
}

impl Quantiser {
    /// `n` bytes of `zp` at `dst` (static `n`): a loop of 16-byte stores
    /// (single bytes without SIMD), then single bytes.
    fn fill(&self, k: &mut Kernel, dst: Value, n: usize) {
        let b = k.b.ins().iconst(types::I32, i64::from(self.zp));
        let (chunk, chunks) = if k.lanes() == 4 { (16, n / 16) } else { (1, n) };
        if chunks > 0 {
            let v = if chunk == 16 {
                let b8 = k.b.ins().iconst(types::I8, i64::from(self.zp));
                Some(k.b.ins().splat(types::I8X16, b8))
            } else {
                None
            };
            k.for_n(0, chunks as i64, 1, |k, i| {
                let d = k.addr(dst, i, chunk as i64);
                match v {
                    Some(v) => k.st(v, d, 0),
                    None => {
                        k.b.ins().istore8(mem(), b, d, 0);
                    }
                }
            });
        }
        for i in chunk * chunks..n {
            k.b.ins().istore8(mem(), b, dst, i as i32);
        }
    }

    /// The quantised `f32` values of `ty` (`F32` or `F32X4`) at `src`.
    fn values(&self, k: &mut Kernel, ty: Type, src: Value, off: i32) -> LResult<Value> {
        let x = k.ld(ty, src, off);
        let s = k.b.ins().f32const(self.scale);
        let z = k.b.ins().f32const(f32::from(self.zp));
        let args = [x, k.widen(ty, s), k.widen(ty, z)];
        chain(k, &self.steps, ty, &args)
    }

    /// `n` consecutive elements from `src` (f32) to `dst` (u8).
    fn run(&self, k: &mut Kernel, src: Value, dst: Value, n: usize) -> LResult {
        if k.lanes() != 4 {
            return self.run_scalar(k, src, dst, n);
        }
        let blocks = n / 16;
        match self.blocks {
            Some((code, sig)) if blocks > 0 => {
                let count = k.ic(blocks as i64);
                k.b.ins().call_indirect(sig, code, &[src, dst, count]);
            }
            _ => {
                let mut result: LResult = Ok(());
                k.for_n(0, blocks as i64, 1, |k, i| {
                    if result.is_err() {
                        return;
                    }
                    let s = k.addr(src, i, 64);
                    let d = k.addr(dst, i, 16);
                    result = self.block(k, s, d);
                });
                result?;
            }
        }
        let mut at = 16 * blocks;
        while n - at >= 4 {
            let x = k.ld(types::F32X4, src, 4 * at as i32);
            store_words(k, x, GridStep::Div(self.scale), self.zp, dst, at as i32)?;
            at += 4;
        }
        for e in at..n {
            self.one(k, src, dst, e as i32)?;
        }
        Ok(())
    }

    /// Four quantised values at `src + off` as the low bytes of an
    /// `i32x4`'s lanes, the rest zero: the chain's `Div` and `Round`
    /// emitters, the clamp as compare-selects (`lo < r ? r : lo`, then
    /// `c < hi ? c : hi`: they differ from the chain's `fmax`/`fmin` only on
    /// −0, which still ends as byte 0, and NaN, which becomes `lo` and so
    /// byte 0, what the reference's cast makes of NaN), `+ zp`, then `+ 2^23`,
    /// exact for a whole number in `0..=255`, whose bits' low byte is that
    /// number.
    fn words(&self, k: &mut Kernel, src: Value, off: i32) -> LResult<Value> {
        let x = k.ld(types::F32X4, src, off);
        words(k, x, GridStep::Div(self.scale), self.zp)
    }

    /// 16 elements at `src` to 16 bytes at `dst`.
    fn block(&self, k: &mut Kernel, src: Value, dst: Value) -> LResult {
        let mut v = Vec::with_capacity(4);
        for j in 0..4 {
            v.push(self.words(k, src, 16 * j)?);
        }
        let lo = k.b.ins().snarrow(v[0], v[1]);
        let hi = k.b.ins().snarrow(v[2], v[3]);
        let bytes = k.b.ins().unarrow(lo, hi);
        k.st(bytes, dst, 0);
        Ok(())
    }

    /// Element `e` of `src` to byte `e` of `dst`.
    fn one(&self, k: &mut Kernel, src: Value, dst: Value, e: i32) -> LResult {
        let f = self.values(k, types::F32, src, 4 * e)?;
        let i = k.b.ins().fcvt_to_sint_sat(types::I32, f);
        k.b.ins().istore8(mem(), i, dst, e);
        Ok(())
    }

    /// [`Quantiser::run`] without SIMD: a loop over the elements.
    fn run_scalar(&self, k: &mut Kernel, src: Value, dst: Value, n: usize) -> LResult {
        let mut result: LResult = Ok(());
        k.for_n(0, n as i64, 1, |k, e| {
            if result.is_ok() {
                let s = k.addr(src, e, 4);
                let d = k.addr(dst, e, 1);
                result = self.one(k, s, d, 0);
            }
        });
        result
    }
}

/// The quantised values of the `f32x4` `x` (`u8(clip(round(x ∘ step),
/// −zp, 255 − zp) + zp)`) as the low bytes of an `i32x4`'s lanes, the rest
/// zero: the chain's `Div` (or `Mul`) and `Round` emitters, the clamp as
/// compare-selects (`lo < r ? r : lo`, then `c < hi ? c : hi`: they differ
/// from the chain's `fmax`/`fmin` only on −0, which still ends as byte 0,
/// and NaN, which becomes `lo` and so byte 0, what the reference's cast
/// makes of NaN), `+ zp`, then `+ 2^23`, exact for a whole number in
/// `0..=255`, whose bits' low byte is that number. The pass's blocks and a
/// requantising epilogue (`lower::qconv`) share it.
pub(super) fn words(k: &mut Kernel, x: Value, step: GridStep, zp: u8) -> LResult<Value> {
    let ty = types::F32X4;
    let (op, by) = step.binary();
    let s = k.fsplat(ty, by);
    let d = binary_f(k, op, ty, x, s, None)?;
    let r = unary_f(k, UnaryOp::Round, ty, d)?;
    let z = f32::from(zp);
    let (lo, hi) = (k.fsplat(ty, -z), k.fsplat(ty, 255.0 - z));
    let c = sel_lt(k, ty, lo, r, r, lo);
    let c = sel_lt(k, ty, c, hi, c, hi);
    let zv = k.fsplat(ty, z);
    let a = k.b.ins().fadd(c, zv);
    let magic = k.fsplat(ty, 8_388_608.0);
    let m = k.b.ins().fadd(a, magic);
    let le = MemFlagsData::new().with_endianness(Endianness::Little);
    let w = k.b.ins().bitcast(types::I32X4, le, m);
    let ff = k.b.ins().iconst(types::I32, 0xff);
    let ff = k.b.ins().splat(types::I32X4, ff);
    Ok(k.b.ins().band(w, ff))
}

/// The quantised value of the f32 `x` as an I32 in `0..=255`: the
/// quantiser's chain (`Div` or `Mul`, `Round`, `Clip`, `Add`) on one
/// float, then the saturating conversion (NaN to 0), as the pass's single
/// elements.
pub(super) fn one_value(k: &mut Kernel, x: Value, step: GridStep, zp: u8) -> LResult<Value> {
    let (op, by) = step.binary();
    let s = k.b.ins().f32const(by);
    let zc = k.b.ins().f32const(f32::from(zp));
    let f = chain(k, &steps(op, zp), types::F32, &[x, s, zc])?;
    Ok(k.b.ins().fcvt_to_sint_sat(types::I32, f))
}

/// Stores the quantised `f32x4` `x` as 4 bytes at `dst + off`.
pub(super) fn store_words(k: &mut Kernel, x: Value, step: GridStep, zp: u8, dst: Value, off: i32) -> LResult {
    let i = words(k, x, step, zp)?;
    let h = k.b.ins().snarrow(i, i);
    let b = k.b.ins().unarrow(h, h);
    let le = MemFlagsData::new().with_endianness(Endianness::Little);
    let w = k.b.ins().bitcast(types::I32X4, le, b);
    let w = k.b.ins().extractlane(w, 0);
    k.b.ins().store(mem(), w, dst, off);
    Ok(())
}

/// The quantiser's steps as a chain over `(x, step, zp)`: `op` (`Div` or
/// `Mul`), `Round`, `Clip{−zp, 255 − zp}`, `Add`.
fn steps(op: BinaryOp, zp: u8) -> [ChainStep; 4] {
    let z = f32::from(zp);
    [
        ChainStep::Binary { op, arg: 1, swap: false },
        ChainStep::Unary(UnaryOp::Round),
        ChainStep::Unary(UnaryOp::Clip { min: F32::new(-z), max: F32::new(255.0 - z) }),
        ChainStep::Binary { op: BinaryOp::Add, arg: 2, swap: false },
    ]
}
