//! [`quad_pack`]: the integer GEMM's B packing for a whole unit of 8 or
//! 16 output pixels, the step the Cranelift packer spent a fifth of
//! ResNet-18's int8 conv time on.

use iced_x86::code_asm::*;

/// Machine code packing a unit of `pixels` (8 or 16) output pixels into
/// byte quads: per K step, for each pixel `p`, the four input bytes its
/// taps read (`tap[4t + j]`, `j` = 0..4, from the pixel's first byte) at
/// `dst + 4p` (`[k quad][pixel][4]`, [`crate::lower`]'s `qconv` layout:
/// `4·pixels` bytes per step).
///
/// The unit may span `segments` (1..=4) output rows at input stride
/// `stride` (1 or 2): the pixels of row `s` sit `s · gap` bytes further
/// than one row would put them (`gap` = the input row step minus the
/// output row's span, ≥ 0). So per K value one load per row, at that
/// displacement, merged into row 0's with `vpblendvb` through the 16-byte
/// masks at `table + 16·s` (byte `p` set: pixel `p` is in row `s`). At
/// stride 2 each row's load is two, from the pixels' first byte (the
/// first half's pixels at its even bytes) and from the first half's last
/// byte (the second half's at odd ones), shuffled into place by the masks
/// at `table + 64` and `table + 80`. Every load starts at or after pixel
/// 0's byte and ends at or before the last pixel's, inside the input.
/// Then the 4 × `pixels` byte transpose in two rounds of unpacks (bytes,
/// then words) and `pixels / 4` stores of 16 bytes.
///
/// Arguments (System V order): `base` (pixel 0's first input byte),
/// `tap` (four i32 byte offsets per K step), `dst`, `k` (steps, ≥ 0),
/// `table` ([`quad_pack_table`] of the unit's first column). VEX-encoded
/// `xmm` only (AVX2).
pub fn quad_pack(pixels: usize, segments: usize, stride: usize, gap: i64) -> Result<Vec<u8>, IcedError> {
    let (base, tap, dst, n, table) = (rdi, rsi, rdx, rcx, r8);
    let wide = pixels > 8;
    let segments = segments.clamp(1, 4);
    let offs = [rax, r9, r10, r11];
    let v = [xmm0, xmm1, xmm2, xmm3];
    let seg_mask = [xmm12, xmm13, xmm14];
    // bytes a load of half the span reads: 8 (stride 1, 8 pixels) or 16
    let load = |a: &mut CodeAssembler, r: AsmRegisterXmm, at: AsmMemoryOperand, full: bool| match full {
        true => a.vmovdqu(r, xmmword_ptr(at)),
        false => a.vmovq(r, qword_ptr(at)),
    };
    let mut a = CodeAssembler::new(64)?;
    for s in 1..segments {
        a.vmovdqu(seg_mask[s - 1], xmmword_ptr(table + (16 * s) as i64))?;
    }
    super::super::counted_loop(&mut a, n, |a| {
        for (j, &o) in offs.iter().enumerate() {
            a.movsxd(o, dword_ptr(tap + (4 * j) as i64))?;
        }
        for (&o, &r) in offs.iter().zip(&v) {
            for s in 0..segments {
                let at = base + o + s as i64 * gap;
                // row 0 straight into the register, the others through xmm15
                let t = if s == 0 { r } else { xmm15 };
                if stride == 1 {
                    load(a, t, at, wide)?;
                } else {
                    // the second half's pixels start one byte before the
                    // first half's last byte ends: at byte pixels − 1
                    load(a, t, at, wide)?;
                    a.vpshufb(t, t, xmmword_ptr(table + 64))?;
                    load(a, xmm4, at + (pixels - 1) as i64, wide)?;
                    a.vpshufb(xmm4, xmm4, xmmword_ptr(table + 80))?;
                    a.vpor(t, t, xmm4)?;
                }
                if s > 0 {
                    a.vpblendvb(r, r, t, seg_mask[s - 1])?;
                }
            }
        }
        // bytes of K values 0 and 1 (2 and 3) side by side per pixel, then
        // their pairs: each pixel's quad, four pixels per register
        a.vpunpcklbw(xmm4, xmm0, xmm1)?;
        a.vpunpcklbw(xmm6, xmm2, xmm3)?;
        a.vpunpcklwd(xmm8, xmm4, xmm6)?;
        a.vpunpckhwd(xmm9, xmm4, xmm6)?;
        let mut stores = vec![xmm8, xmm9];
        if wide {
            a.vpunpckhbw(xmm5, xmm0, xmm1)?;
            a.vpunpckhbw(xmm7, xmm2, xmm3)?;
            a.vpunpcklwd(xmm10, xmm5, xmm7)?;
            a.vpunpckhwd(xmm11, xmm5, xmm7)?;
            stores.extend([xmm10, xmm11]);
        }
        for (i, r) in stores.into_iter().enumerate() {
            a.vmovdqu(xmmword_ptr(dst + (16 * i) as i64), r)?;
        }
        a.add(tap, 16)?;
        a.add(dst, (4 * pixels) as i32)
    })?;
    super::super::leaf_end(a)
}

/// The table [`quad_pack`] reads for a unit of `pixels` (8 or 16) whose
/// first pixel is at column `ox0` of rows `ow` pixels wide: the four
/// 16-byte row masks, then the stride-2 shuffles (the first half's pixels
/// from the even bytes of the first load, the second half's from the odd
/// bytes of the second); and the unit's row count.
pub fn quad_pack_table(ox0: usize, ow: usize, pixels: usize) -> ([u8; 96], usize) {
    let mut t = [0u8; 96];
    let mut segments = 0;
    for p in 0..pixels {
        let s = (ox0 + p) / ow;
        if s < 4 {
            t[16 * s + p] = 0xFF;
        }
        segments = segments.max(s + 1);
    }
    let half = pixels / 2;
    for i in 0..16 {
        t[64 + i] = if i < half { 2 * i as u8 } else { 0x80 };
        t[80 + i] = if (half..pixels).contains(&i) { (2 * (i - half) + 1) as u8 } else { 0x80 };
    }
    (t, segments)
}
