//! [`quad_pack_vbmi`]: the integer GEMM's B packing for a whole unit of
//! 16 output pixels with AVX-512 VBMI's byte permutes, where AVX2's
//! [`crate::ukernel::avx2::quad_pack`] transposes through unpacks.

use iced_x86::code_asm::*;

/// Machine code packing a unit of 16 output pixels into byte quads with
/// [`crate::ukernel::avx2::quad_pack`]'s contract: the same arguments
/// (`base`, `tap`, `dst`, `k`, `table`), layout (`[k quad][pixel][4]`, 64
/// bytes per step), row segments (1..=4, `gap` bytes apart, their pixels
/// flagged by the table's 16-byte masks at `table + 16·s`) and strides (1
/// or 2). Per K step and segment: at stride 1 the four K values' 16-byte
/// input spans side by side in one `zmm` and one `vpermb`; at stride 2
/// their 31-byte spans (masked loads that stop at the last pixel's byte,
/// so nothing past the input is read) in two `zmm` and one `vpermt2b`;
/// then, for segments past the first, a byte-masked merge. ResNet-18's
/// 7x7 stride-2 stem on Zen 4: 0.648 → 0.597 ms (0.549 with no packing
/// at all); its 64-channel 3x3 convs' packing 10.8% → 8.5% of their time.
pub fn quad_pack_vbmi(segments: usize, stride: usize, gap: i64) -> Result<Vec<u8>, IcedError> {
    let (base, tap, dst, n, table) = (rdi, rsi, rdx, rcx, r8);
    let segments = segments.clamp(1, 4);
    let stride = stride.clamp(1, 2);
    let offs = [rax, r9, r10, r11];
    let (idx, out, t) = (zmm5, zmm4, zmm6);
    let merge = [k2, k3, k4];
    let mut a = CodeAssembler::new(64)?;
    a.set_prefer_vex(false);
    // stride 2's loads: 31 bytes, pixel 15's quad ends 30 bytes on
    if stride == 2 {
        a.mov(eax, 0x7fff_ffffu32)?;
        a.kmovd(k1, eax)?;
    }
    // byte 4p + j of a step is K value j of pixel p, `stride · p` bytes into
    // value j's span (values 0 and 1 in the first table's halves, 2 and 3
    // in the second's): dword p of the index is `0x60402000 + stride · p ·
    // 0x01010101` (no carries: stride · p < 32)
    super::lane_indices(&mut a, idx, xmm6)?;
    a.mov(eax, (stride as u32) * 0x0101_0101)?;
    a.vpbroadcastd(t, eax)?;
    a.vpmulld(idx, idx, t)?;
    a.mov(eax, if stride == 1 { 0x3020_1000u32 } else { 0x6040_2000 })?;
    a.vpbroadcastd(t, eax)?;
    a.vpaddd(idx, idx, t)?;
    for s in 1..segments {
        // a pixel's flag byte to its quad's four mask bits
        a.vpmovsxbd(t, xmmword_ptr(table + (16 * s) as i64))?;
        a.vpmovb2m(merge[s - 1], t)?;
    }
    super::super::counted_loop(&mut a, n, |a| {
        for (j, &o) in offs.iter().enumerate() {
            a.movsxd(o, dword_ptr(tap + (4 * j) as i64))?;
        }
        for s in 0..segments {
            let disp = s as i64 * gap;
            let lo = if s == 0 { out } else { zmm0 };
            let at = |j: usize| base + offs[j] + disp;
            if stride == 1 {
                // the four 16-byte spans side by side, then one table
                let lo_x = if s == 0 { xmm4 } else { xmm0 };
                a.vmovdqu8(lo_x, xmmword_ptr(at(0)))?;
                for j in 1..4 {
                    a.vinserti32x4(lo, lo, xmmword_ptr(at(j)), j as u32)?;
                }
                a.vpermb(lo, idx, lo)?;
            } else {
                let lo_y = if s == 0 { ymm4 } else { ymm0 };
                a.vmovdqu8(lo_y.k1().z(), ymmword_ptr(at(0)))?;
                a.vmovdqu8(ymm1.k1().z(), ymmword_ptr(at(1)))?;
                a.vmovdqu8(ymm2.k1().z(), ymmword_ptr(at(2)))?;
                a.vmovdqu8(ymm3.k1().z(), ymmword_ptr(at(3)))?;
                a.vinserti64x4(lo, lo, ymm1, 1)?;
                a.vinserti64x4(zmm2, zmm2, ymm3, 1)?;
                a.vpermt2b(lo, idx, zmm2)?;
            }
            match s {
                0 => {}
                1 => a.vmovdqu8(out.k2(), lo)?,
                2 => a.vmovdqu8(out.k3(), lo)?,
                _ => a.vmovdqu8(out.k4(), lo)?,
            }
        }
        a.vmovdqu8(zmmword_ptr(dst), out)?;
        a.add(tap, 16)?;
        a.add(dst, 64)
    })?;
    super::super::leaf_end(a)
}
