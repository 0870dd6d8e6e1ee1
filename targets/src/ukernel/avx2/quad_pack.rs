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

/// Machine code of [`quad_pack`] for a unit of 16 pixels that spans
/// `segments` (1..=4) output rows, at input stride `stride` (1 or 2): the
/// pixels of segment `s` sit `s · gap` bytes further than one row would
/// put them (`gap` = the input row step minus the output row's span), so
/// per K value one load per segment at that displacement, merged into the
/// segment-0 load with `vpblendvb` through the 16-byte masks at `masks +
/// 16·s` (byte `p` set: pixel `p` is in segment `s`). The arguments are
/// [`quad_pack`]'s, then `masks`. Stride 2: per segment the 16 bytes
/// from the pixels' first (pixels 0–7 at its even bytes) and from byte 15
/// (pixels 8–15 at odd ones) each shuffled into place (`vpshufb` with the
/// 32 bytes at `masks + 64`), so no load reads past the last pixel's byte.
/// Every load ends at or before pixel 15's byte and starts at or after
/// pixel 0's (`gap` ≥ 0), inside the input.
pub fn quad_pack_rows(segments: usize, stride: usize, gap: i64) -> Result<Vec<u8>, IcedError> {
    let (base, tap, dst, n, masks) = (rdi, rsi, rdx, rcx, r8);
    let segments = segments.clamp(1, 4);
    let offs = [rax, r9, r10, r11];
    let v = [xmm0, xmm1, xmm2, xmm3];
    let seg_mask = [xmm12, xmm13, xmm14];
    let mut a = CodeAssembler::new(64)?;
    for s in 1..segments {
        a.vmovdqu(seg_mask[s - 1], xmmword_ptr(masks + (16 * s) as i64))?;
    }
    super::super::counted_loop(&mut a, n, |a| {
        for (j, &o) in offs.iter().enumerate() {
            a.movsxd(o, dword_ptr(tap + (4 * j) as i64))?;
        }
        for (&o, &r) in offs.iter().zip(&v) {
            for s in 0..segments {
                let at = base + o + s as i64 * gap;
                // segment 0 straight into the register, the others through xmm15
                let t = if s == 0 { r } else { xmm15 };
                match stride {
                    1 if s == 0 => a.vmovdqu(t, xmmword_ptr(at))?,
                    1 => {
                        a.vpblendvb(r, r, xmmword_ptr(at), seg_mask[s - 1])?;
                        continue;
                    }
                    _ => {
                        a.vmovdqu(t, xmmword_ptr(at))?;
                        a.vpshufb(t, t, xmmword_ptr(masks + 64))?;
                        a.vmovdqu(xmm4, xmmword_ptr(at + 15))?;
                        a.vpshufb(xmm4, xmm4, xmmword_ptr(masks + 80))?;
                        a.vpor(t, t, xmm4)?;
                    }
                }
                if s > 0 {
                    a.vpblendvb(r, r, t, seg_mask[s - 1])?;
                }
            }
        }
        a.vpunpcklbw(xmm4, xmm0, xmm1)?;
        a.vpunpcklbw(xmm6, xmm2, xmm3)?;
        a.vpunpckhbw(xmm5, xmm0, xmm1)?;
        a.vpunpckhbw(xmm7, xmm2, xmm3)?;
        a.vpunpcklwd(xmm8, xmm4, xmm6)?;
        a.vpunpckhwd(xmm9, xmm4, xmm6)?;
        a.vpunpcklwd(xmm10, xmm5, xmm7)?;
        a.vpunpckhwd(xmm11, xmm5, xmm7)?;
        for (i, r) in [xmm8, xmm9, xmm10, xmm11].into_iter().enumerate() {
            a.vmovdqu(xmmword_ptr(dst + (16 * i) as i64), r)?;
        }
        a.add(tap, 16)?;
        a.add(dst, 64)
    })?;
    super::super::leaf_end(a)
}

/// The table [`quad_pack_rows`] reads for a unit whose first pixel is at
/// column `ox0` of rows `ow` pixels wide: the four 16-byte segment masks,
/// then the stride-2 shuffles (even bytes into bytes 0–7, odd bytes of the
/// load from byte 15 into bytes 8–15); and the unit's segment count.
pub fn quad_pack_table(ox0: usize, ow: usize) -> ([u8; 96], usize) {
    let mut t = [0u8; 96];
    let mut segments = 0;
    for p in 0..16 {
        let s = (ox0 + p) / ow;
        if s < 4 {
            t[16 * s + p] = 0xFF;
        }
        segments = segments.max(s + 1);
    }
    for i in 0..16 {
        t[64 + i] = if i < 8 { 2 * i as u8 } else { 0x80 };
        t[80 + i] = if i < 8 { 0x80 } else { (2 * (i - 8) + 1) as u8 };
    }
    (t, segments)
}
