//! AVX-512 micro-kernels (EVEX encodings: 32 vector registers, embedded
//! broadcasts, the VNNI dot products).
//!
//! [`qdot_tile`]: the integer tile of [`crate::lower::qconv`] where the
//! target has AVX-512 VNNI with AVX-512VL ([`crate::isa::Caps::vnni`]).
//! `vpdpbusd` multiplies four u8 input bytes by four s8 weight bytes and
//! adds the four products to an i32 lane, without saturation (u8 × s8
//! products and sums of four fit i32 with room to spare), so each
//! instruction does 32 multiply-adds of a `ymm` where the AVX2 tile's
//! `vpmaddwd` + `vpaddd` do 16 in two. It works on `ymm` rather than `zmm`:
//! the layout stays the 8-pixel panels of the other tiles, and on AMD Zen 4
//! (the measured host) a `zmm` operation issues as two `ymm` halves anyway.
//!
//! Every kernel is assembled with `prefer_vex` off: `vpdpbusd` also has a
//! VEX form (AVX-VNNI) that CPUs with only AVX-512 VNNI (Zen 4, Ice Lake)
//! do not decode. The leaf ABI of [`crate::ukernel`] holds (`ymm16`–`ymm31`
//! are caller-saved under System V like the rest).

use iced_x86::code_asm::*;

pub use super::avx2::{QdotEpi, QDOT_ROWS};

/// Machine code of the VNNI integer tile: `rows` (1..=[`QDOT_ROWS`])
/// output channels × 8 pixels of i32 sums `Σ x·w` over `k` K quads, with
/// the arguments (System V order) `a` (the rows' weight quads, `4·rows`
/// bytes per K quad: four s8 per row), `b` (8 pixels' u8 quads per K quad,
/// 32 bytes), `out`, `k` (K quads, ≥ 0), `table` and `residual` (read only
/// with an epilogue). Per K quad: one B load, then per row one `vpdpbusd`
/// with the row's quad broadcast from memory (`{1to8}`). Without `epi` the
/// sums are stored as they are (`rows × 8` i32, row-major); with it, the
/// f32 results go to `out` (rows `ldo` bytes apart).
pub fn qdot_tile(rows: usize, epi: Option<&QdotEpi>) -> Result<Vec<u8>, IcedError> {
    let rows = rows.clamp(1, QDOT_ROWS);
    let acc = [ymm0, ymm1, ymm2, ymm3, ymm4, ymm5, ymm6, ymm7, ymm8, ymm9, ymm10, ymm11];
    let (a_p, b_p, n) = (rdi, rsi, rcx);
    let mut a = CodeAssembler::new(64)?;
    a.set_prefer_vex(false);
    for &r in &acc[..rows] {
        a.vpxord(r, r, r)?;
    }
    super::counted_loop(&mut a, n, |a| {
        a.vmovdqu32(ymm16, ymmword_ptr(b_p))?;
        for (r, &ac) in acc[..rows].iter().enumerate() {
            a.vpdpbusd(ac, ymm16, dword_bcst(a_p + (4 * r) as i64))?;
        }
        a.add(b_p, 32)?;
        a.add(a_p, (4 * rows) as i32)
    })?;
    super::avx2::int_store(&mut a, &acc[..rows], epi)?;
    super::leaf_end(a)
}
