//! [`dw_plane`]: the depthwise conv's whole-plane pass over a zero-padded
//! copy of its input plane ([`DwPlane`]), and [`dw_copy`]: that copy
//! ([`DwCopy`]), both for `lower::depthwise`.

use iced_x86::code_asm::*;

use super::super::epi::TileEpi;
use super::{activation, low_half, steps_to_end};

/// A depthwise (one channel) conv over a whole output plane
/// ([`crate::lower::depthwise`]), reading a zero-padded copy of the input
/// plane: per output row, groups of `DW_GROUP` 8-pixel `ymm` vectors in a
/// loop, then the last vectors, the last one ending at the row's end
/// (rows of 4 to 7 pixels: two 4-pixel `xmm` vectors; narrower rows:
/// single pixels).
/// Each output starts as the bias and takes the taps in order, one FMA
/// each, then the epilogue's residual and activation: the operations of the
/// Cranelift kernel in the same order. With `scaled` (the integer
/// depthwise conv, whose plane holds `x − zp` and whose weights are the
/// int8 codes, so every partial sum is an integer below 2^24 and exact) an
/// output starts at zero and is multiplied by the channel's scale, then the
/// bias added, after the taps: `QConv`'s `f32(acc) · s + b`. A group holds up to nine taps'
/// pre-broadcast weights in registers at a time, so each FMA reads only its
/// input from memory (one load per FMA: both FMA ports can issue).
#[derive(Clone, Debug, PartialEq)]
pub struct DwPlane {
    /// Byte offsets of the taps from an output pixel's window corner in
    /// the padded input plane, in tap order.
    pub taps: Vec<i32>,
    /// Output rows.
    pub rows: usize,
    /// Pixels per output row.
    pub cols: usize,
    /// Bytes between output rows (and residual rows).
    pub out_row: usize,
    /// Bytes between padded input rows.
    pub in_row: usize,
    /// Residual and activation (its `scale` and `addend` must be `None`).
    pub epi: TileEpi,
    /// Start at zero and apply `· scale + bias` after the taps (the weight
    /// block then holds the taps, the scale and the bias).
    pub scaled: bool,
}

/// The copy of one input plane into the interior of [`dw_plane`]'s
/// zero-padded plane: `rows` rows of `cols` floats, each row whole
/// (stride 1) or split by the parity of its padded column into two halves
/// (stride 2: padded column `q = pad + x` goes to half `q % 2` at `q / 2`),
/// 8 or 16 floats per step, a row's last step ending at the row's end
/// (it rewrites a few floats with the same values); rows shorter than a
/// step in `xmm` steps (stride 1) or one float at a time. From u8
/// (`zero_point`) each byte becomes the float `x − zp`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DwCopy {
    /// Input rows.
    pub rows: usize,
    /// Floats per input row.
    pub cols: usize,
    /// Split the columns by parity (stride 2).
    pub split: bool,
    /// Left padding in columns (the parity of the first input column's
    /// padded column, with `split`).
    pub pad: usize,
    /// Floats per padded half row (`split`).
    pub half: usize,
    /// Bytes between padded rows.
    pub dst_row: usize,
    /// The source is u8 with this zero point: each byte `x` is written as
    /// the float `x − zp` (exact), rows `cols` bytes apart.
    pub zero_point: Option<u8>,
}

/// Machine code of `c` with the arguments (System V order) `src` (the
/// input plane) and `dst` (padded row of the first input row, column 0).
pub fn dw_copy(c: &DwCopy) -> Result<Vec<u8>, IcedError> {
    let (src, dst, n) = (rdi, rsi, rdx);
    // padded column q's byte offset in its row
    let col = |q: usize| if c.split { 4 * ((q % 2) * c.half + q / 2) } else { 4 * q } as i64;
    // bytes per source element
    let el = if c.zero_point.is_some() { 1 } else { 4 };
    let mut a = CodeAssembler::new(64)?;
    if let Some(zp) = c.zero_point {
        a.mov(eax, u32::from(zp))?;
        a.vmovd(xmm4, eax)?;
        a.vpbroadcastd(ymm4, xmm4)?;
    }
    // `dst` = the source's `x`.. as floats (8 of them, or 4 in `xmm`)
    let load = |a: &mut CodeAssembler, dst: AsmRegisterYmm, x: usize, four: bool| -> Result<(), IcedError> {
        let at = (el * x) as i64;
        match (c.zero_point.is_some(), four) {
            (false, false) => a.vmovups(dst, ymmword_ptr(src + at)),
            (false, true) => a.vmovups(low_half(dst), xmmword_ptr(src + at)),
            (true, false) => {
                a.vpmovzxbd(dst, qword_ptr(src + at))?;
                a.vpsubd(dst, dst, ymm4)?;
                a.vcvtdq2ps(dst, dst)
            }
            (true, true) => {
                let d = low_half(dst);
                a.vpmovzxbd(d, dword_ptr(src + at))?;
                a.vpsubd(d, d, xmm4)?;
                a.vcvtdq2ps(d, d)
            }
        }
    };
    a.mov(n, c.rows as u64)?;
    super::super::counted_loop(&mut a, n, |a| {
        if c.split && c.cols >= 16 {
            for x in steps_to_end(c.cols, 16) {
                load(a, ymm0, x, false)?;
                load(a, ymm1, x + 8, false)?;
                // per 128-bit lane the even (odd) floats of both vectors,
                // then the lanes' halves put in order
                a.vshufps(ymm2, ymm0, ymm1, 0x88)?;
                a.vshufps(ymm3, ymm0, ymm1, 0xDD)?;
                a.vpermpd(ymm2, ymm2, 0xD8)?;
                a.vpermpd(ymm3, ymm3, 0xD8)?;
                a.vmovups(ymmword_ptr(dst + col(c.pad + x)), ymm2)?;
                a.vmovups(ymmword_ptr(dst + col(c.pad + x + 1)), ymm3)?;
            }
        } else if c.split && c.cols >= 8 {
            for x in steps_to_end(c.cols, 8) {
                load(a, ymm0, x, false)?;
                // the even (odd) floats of the eight, in `xmm`
                a.vextractf128(xmm1, ymm0, 1)?;
                a.vshufps(xmm2, xmm0, xmm1, 0x88)?;
                a.vshufps(xmm3, xmm0, xmm1, 0xDD)?;
                a.vmovups(xmmword_ptr(dst + col(c.pad + x)), xmm2)?;
                a.vmovups(xmmword_ptr(dst + col(c.pad + x + 1)), xmm3)?;
            }
        } else if !c.split && c.cols >= 8 {
            for x in steps_to_end(c.cols, 8) {
                load(a, ymm0, x, false)?;
                a.vmovups(ymmword_ptr(dst + col(c.pad + x)), ymm0)?;
            }
        } else if !c.split && c.cols >= 4 {
            for x in steps_to_end(c.cols, 4) {
                load(a, ymm0, x, true)?;
                a.vmovups(xmmword_ptr(dst + col(c.pad + x)), xmm0)?;
            }
        } else {
            for x in 0..c.cols {
                match c.zero_point {
                    None => a.vmovss(xmm0, dword_ptr(src + (4 * x) as i64))?,
                    Some(zp) => {
                        a.movzx(eax, byte_ptr(src + x as i64))?;
                        a.sub(eax, i32::from(zp))?;
                        a.vcvtsi2ss(xmm0, xmm0, eax)?;
                    }
                }
                a.vmovss(dword_ptr(dst + col(c.pad + x)), xmm0)?;
            }
        }
        a.add(src, (el * c.cols) as i32)?;
        a.add(dst, c.dst_row as i32)
    })?;
    super::super::leaf_end(a)
}

/// Machine code of `p` with the arguments (System V order) `out` (the
/// output plane), `src` (the padded input plane, window corner of output
/// pixel (0, 0)), `w` (the taps' weights then the bias, 8 copies each: 32
/// bytes per tap and 32 for the bias; with `scaled` the scale's 32 bytes
/// before the bias) and `residual` (a plane of the
/// output's layout, read when `p.epi.residual`).
pub fn dw_plane(p: &DwPlane) -> Result<Vec<u8>, IcedError> {
    // rdx (the weights) is read by `dw_vectors` and `dw_tail`
    let (out_p, src_p, n) = (rdi, rsi, r9);
    // the residual pointer is its own cursor (rows are contiguous, and
    // `splat` clobbers rax)
    let (out_c, src_c, res_c, groups) = (r10, r11, rcx, r8);
    let full = p.cols / (8 * DW_GROUP);
    let done_px = 8 * DW_GROUP * full;
    let group: Vec<i64> = (0..DW_GROUP as i64).map(|i| 8 * i).collect();
    let mut a = CodeAssembler::new(64)?;
    a.mov(n, p.rows as u64)?;
    super::super::counted_loop(&mut a, n, |a| {
        a.mov(out_c, out_p)?;
        a.mov(src_c, src_p)?;
        if full > 0 {
            a.mov(groups, full as u64)?;
            super::super::counted_loop(a, groups, |a| {
                dw_vectors(a, p, &group)?;
                [out_c, src_c, res_c].into_iter().try_for_each(|c| a.add(c, (32 * DW_GROUP) as i32))
            })?;
        }
        // the row's last pixels, at pixel offsets from the cursors (the
        // last vector ending at the row's end)
        let px = |x: usize| x as i64 - done_px as i64;
        if p.cols >= 8 {
            let ats: Vec<i64> = steps_to_end(p.cols, 8).filter(|&x| x + 8 > done_px).map(px).collect();
            if !ats.is_empty() {
                dw_vectors(a, p, &ats)?;
            }
        } else if p.cols >= 4 {
            steps_to_end(p.cols, 4).try_for_each(|x| dw_tail(a, p, px(x), true))?;
        } else {
            (0..p.cols).try_for_each(|x| dw_tail(a, p, px(x), false))?;
        }
        a.add(out_p, p.out_row as i32)?;
        a.add(src_p, p.in_row as i32)?;
        a.add(res_c, (p.out_row as i64 - (4 * done_px) as i64) as i32)
    })?;
    super::super::leaf_end(a)
}

/// One tail output of [`dw_plane`] at pixel `at` past the cursors: four
/// pixels in an `xmm` (`four`) or one (loads and stores of one float; the
/// FMA on the vector is the scalar FMA in lane 0, the other lanes unused).
fn dw_tail(a: &mut CodeAssembler, p: &DwPlane, at: i64, four: bool) -> Result<(), IcedError> {
    let (out_c, src_c, res_c, w_p) = (r10, r11, rcx, rdx);
    let (acc, x) = (xmm0, xmm4);
    let at4 = 4 * at;
    let load = |a: &mut CodeAssembler, dst: AsmRegisterXmm, m: AsmMemoryOperand| {
        if four {
            a.vmovups(dst, xmmword_ptr(m))
        } else {
            a.vmovss(dst, dword_ptr(m))
        }
    };
    let nt = p.taps.len() as i64;
    match p.scaled {
        true => a.vxorps(acc, acc, acc)?,
        false => a.vmovups(acc, xmmword_ptr(w_p + 32 * nt))?,
    }
    for (t, &off) in p.taps.iter().enumerate() {
        load(a, x, src_c + (off as i64 + at4))?;
        a.vfmadd231ps(acc, x, xmmword_ptr(w_p + 32 * t as i64))?;
    }
    if p.scaled {
        a.vmulps(acc, acc, xmmword_ptr(w_p + 32 * nt))?;
        a.vaddps(acc, acc, xmmword_ptr(w_p + 32 * (nt + 1)))?;
    }
    if p.epi.residual {
        load(a, x, res_c + at4)?;
        a.vaddps(acc, acc, x)?;
    }
    activation(a, &p.epi, &[ymm0])?;
    if four {
        a.vmovups(xmmword_ptr(out_c + at4), acc)
    } else {
        a.vmovss(dword_ptr(out_c + at4), acc)
    }
}

/// Output vectors per group of [`dw_plane`]: six accumulators and nine
/// weight registers (a 3x3 kernel's taps) fill the sixteen `ymm`
/// registers but one. Six FMA chains of nine taps keep both FMA ports busy
/// with the next group's chains overlapping (out of order).
const DW_GROUP: usize = 6;

/// Output vectors at pixel offsets `ats` (1..=[`DW_GROUP`] of them) from
/// the cursors (`r10` out, `r11` input, `rcx` residual): bias (or zero),
/// taps (weights loaded into registers nine at a time, inputs as the FMAs'
/// memory operands), scale and bias, residual, activation (which may
/// clobber weight registers: the next group reloads them), store.
fn dw_vectors(a: &mut CodeAssembler, p: &DwPlane, ats: &[i64]) -> Result<(), IcedError> {
    let (out_c, src_c, res_c, w_p) = (r10, r11, rcx, rdx);
    let m = ats.len();
    let accs = [ymm0, ymm1, ymm2, ymm3, ymm4, ymm5];
    let ws = [ymm6, ymm7, ymm8, ymm9, ymm10, ymm11, ymm12, ymm13, ymm14];
    let nt = p.taps.len() as i64;
    for &ac in &accs[..m] {
        match p.scaled {
            true => a.vxorps(ac, ac, ac)?,
            false => a.vmovups(ac, ymmword_ptr(w_p + 32 * nt))?,
        }
    }
    for (c, chunk) in p.taps.chunks(ws.len()).enumerate() {
        let t0 = c * ws.len();
        for (j, &w) in ws[..chunk.len()].iter().enumerate() {
            a.vmovups(w, ymmword_ptr(w_p + 32 * (t0 + j) as i64))?;
        }
        for (&w, &off) in ws.iter().zip(chunk) {
            for (&ac, &at) in accs.iter().zip(ats) {
                a.vfmadd231ps(ac, w, ymmword_ptr(src_c + (off as i64 + 4 * at)))?;
            }
        }
    }
    if p.scaled {
        for &ac in &accs[..m] {
            a.vmulps(ac, ac, ymmword_ptr(w_p + 32 * nt))?;
            a.vaddps(ac, ac, ymmword_ptr(w_p + 32 * (nt + 1)))?;
        }
    }
    if p.epi.residual {
        for (&ac, &at) in accs.iter().zip(ats) {
            a.vaddps(ac, ac, ymmword_ptr(res_c + 4 * at))?;
        }
    }
    activation(a, &p.epi, &accs[..m])?;
    for (&ac, &at) in accs.iter().zip(ats) {
        a.vmovups(ymmword_ptr(out_c + 4 * at), ac)?;
    }
    Ok(())
}
