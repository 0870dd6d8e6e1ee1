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

use super::avx2::{int_tile, QdotEpi, INT_B};

/// Machine code of the VNNI integer tile: `rows` (1..=[`super::avx2::QDOT_ROWS`])
/// output channels × 8 pixels of i32 sums `Σ x·w` over `k` K quads, with
/// the arguments (System V order) `a` (the rows' weight quads, `4·rows`
/// bytes per K quad: four s8 per row), `b` (8 pixels' u8 quads per K quad,
/// 32 bytes), `out`, `k` (K quads, ≥ 0), `table` and `residual` (read only
/// with an epilogue). Per K quad ([`int_tile`]'s frame): one B load, then
/// per row one `vpdpbusd` with the row's quad broadcast from memory
/// (`{1to8}`). Without `epi` the
/// sums are stored as they are (`rows × 8` i32, row-major); with it, the
/// f32 results go to `out` (rows `ldo` bytes apart).
pub fn qdot_tile(rows: usize, epi: Option<&QdotEpi>) -> Result<Vec<u8>, IcedError> {
    let setup = |a: &mut CodeAssembler| {
        a.set_prefer_vex(false);
        Ok(())
    };
    int_tile(rows, epi, setup, |a, r, ac| a.vpdpbusd(ac, INT_B, dword_bcst(rdi + (4 * r) as i64)))
}
