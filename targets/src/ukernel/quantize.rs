//! The activation quantiser's block pass (`lower::quantize`, the integer
//! conv's u8 input): `u8(clip(round(x / scale), −zp, 255 − zp) + zp)` on
//! blocks of 16 floats, at 256 bits (AVX2: two `ymm` per block) or 512
//! (AVX-512F: one `zmm`).
//!
//! The operations are the Cranelift pass's own, in its order, so the bytes
//! are the same: an IEEE division by the scale (`vdivps`), rounding to
//! nearest even (`vroundps`/`vrndscaleps` with immediate 0, Cranelift's
//! `nearest`), the clamp as `vmaxps r, lo` then `vminps c, hi` (`r > lo ?
//! r : lo` and `c < hi ? c : hi`: the pass's compare-selects, NaN ending as
//! `lo`), `+ zp`. The result is a whole number in `0..=255`, so its
//! conversion to i32 is exact and the low byte of each lane is the u8 the
//! pass stores (`vpmovdb` with AVX-512; with AVX2 `vpackusdw` +
//! `vpackuswb`, which cannot saturate such values, and a dword shuffle
//! undoing the packs' lane interleave).
//!
//! Arguments (System V): `src` (f32), `dst` (u8), `blocks` (≥ 0). The
//! division bounds the pass (one `vdivps` per 8 or 16 floats); the caller
//! quantises the last `n mod 16` elements itself.

use iced_x86::code_asm::*;

use super::avx2::Vreg;

/// A quantiser block pass: its grid and width.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantBlocks {
    /// The grid's scale (> 0, finite).
    pub scale: f32,
    /// The grid's zero point.
    pub zp: u8,
    /// `zmm` (AVX-512F) instead of `ymm`.
    pub zmm: bool,
}

/// Machine code of the block pass ([`QuantBlocks`]; the module docs state
/// the operations and the arguments).
pub fn quantize_blocks(q: &QuantBlocks) -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    let z = f32::from(q.zp);
    let consts = [q.scale, -z, 255.0 - z, z];
    let (src, dst, n) = (rdi, rsi, rdx);
    if q.zmm {
        a.set_prefer_vex(false);
        let [s, lo, hi, zp] = splats(&mut a, [zmm8, zmm9, zmm10, zmm11], consts)?;
        super::counted_loop(&mut a, n, |a| {
            a.vmovups(zmm0, zmmword_ptr(src))?;
            a.vdivps(zmm0, zmm0, s)?;
            a.vrndscaleps(zmm0, zmm0, 0)?;
            a.vmaxps(zmm0, zmm0, lo)?;
            a.vminps(zmm0, zmm0, hi)?;
            a.vaddps(zmm0, zmm0, zp)?;
            a.vcvttps2dq(zmm0, zmm0)?;
            a.vpmovdb(xmmword_ptr(dst), zmm0)?;
            a.add(src, 64)?;
            a.add(dst, 16)
        })?;
    } else {
        let [s, lo, hi, zp] = splats(&mut a, [ymm8, ymm9, ymm10, ymm11], consts)?;
        super::counted_loop(&mut a, n, |a| {
            for (i, v) in [ymm0, ymm1].into_iter().enumerate() {
                a.vmovups(v, ymmword_ptr(src + 32 * i as i64))?;
                a.vdivps(v, v, s)?;
                a.vroundps(v, v, 0)?;
                a.vmaxps(v, v, lo)?;
                a.vminps(v, v, hi)?;
                a.vaddps(v, v, zp)?;
                a.vcvttps2dq(v, v)?;
            }
            // words [0-3 8-11 | 4-7 12-15], bytes [0-3 8-11 4-7 12-15], in order
            a.vpackusdw(ymm0, ymm0, ymm1)?;
            a.vextracti128(xmm1, ymm0, 1)?;
            a.vpackuswb(xmm0, xmm0, xmm1)?;
            a.vpshufd(xmm0, xmm0, 0xd8)?;
            a.vmovdqu(xmmword_ptr(dst), xmm0)?;
            a.add(src, 64)?;
            a.add(dst, 16)
        })?;
    }
    super::leaf_end(a)
}

/// `regs[i] = [values[i]; lanes]`: the grid's constants.
fn splats<R: Vreg>(a: &mut CodeAssembler, regs: [R; 4], values: [f32; 4]) -> Result<[R; 4], IcedError> {
    for (r, v) in regs.into_iter().zip(values) {
        R::splat(a, r, v)?;
    }
    Ok(regs)
}
