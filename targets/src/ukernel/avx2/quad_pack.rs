//! [`quad_pack`]: the integer GEMM's B packing for a unit of pixels that
//! lie one after another in an input row (stride 1), the step the
//! Cranelift packer spent a fifth of ResNet-18's int8 conv time on.

use iced_x86::code_asm::*;

/// Machine code packing `pixels` (8 or 16) consecutive input bytes per K
/// value into byte quads: per K step, for each pixel `p`, the four bytes
/// at `base + tap[4t + j] + p` (`j` = 0..4) at `dst + 4p` (`[k quad][pixel][4]`,
/// [`crate::lower`]'s `qconv` layout: `4·pixels` bytes per step).
/// Arguments (System V order): `base` (the unit's first pixel's first input
/// byte), `tap` (per K step four i32 byte offsets), `dst`, `k` (steps, ≥ 0).
/// Per step: four loads of the pixels' bytes (`vmovq` or `vmovdqu`), then
/// the 4 × `pixels` byte transpose in two rounds of unpacks (bytes, then
/// words) and `pixels / 4` stores of 16 bytes. VEX-encoded `xmm` only (AVX).
pub fn quad_pack(pixels: usize) -> Result<Vec<u8>, IcedError> {
    let (base, tap, dst, n) = (rdi, rsi, rdx, rcx);
    let wide = pixels > 8;
    let offs = [rax, r8, r9, r10];
    let v = [xmm0, xmm1, xmm2, xmm3];
    let mut a = CodeAssembler::new(64)?;
    super::super::counted_loop(&mut a, n, |a| {
        for (j, &o) in offs.iter().enumerate() {
            a.movsxd(o, dword_ptr(tap + (4 * j) as i64))?;
        }
        for (&o, &r) in offs.iter().zip(&v) {
            match wide {
                true => a.vmovdqu(r, xmmword_ptr(base + o))?,
                false => a.vmovq(r, qword_ptr(base + o))?,
            }
        }
        // bytes of K values 0 and 1 (2 and 3) side by side per pixel
        a.vpunpcklbw(xmm4, xmm0, xmm1)?;
        a.vpunpcklbw(xmm6, xmm2, xmm3)?;
        // then their pairs: each pixel's quad, four pixels per register
        a.vpunpcklwd(xmm8, xmm4, xmm6)?;
        a.vpunpckhwd(xmm9, xmm4, xmm6)?;
        a.vmovdqu(xmmword_ptr(dst), xmm8)?;
        a.vmovdqu(xmmword_ptr(dst + 16), xmm9)?;
        if wide {
            a.vpunpckhbw(xmm5, xmm0, xmm1)?;
            a.vpunpckhbw(xmm7, xmm2, xmm3)?;
            a.vpunpcklwd(xmm10, xmm5, xmm7)?;
            a.vpunpckhwd(xmm11, xmm5, xmm7)?;
            a.vmovdqu(xmmword_ptr(dst + 32), xmm10)?;
            a.vmovdqu(xmmword_ptr(dst + 48), xmm11)?;
        }
        a.add(tap, 16)?;
        a.add(dst, (4 * pixels) as i32)
    })?;
    super::super::leaf_end(a)
}
