//! The one-pixel integer product: `y[m] = Σ_k x[k]·w[m, k]` for a block
//! of output channels of one pixel (a classifier head, a 1x1 conv on a 1x1
//! plane, a product's row) in each of a few images, the integer tile with
//! the roles turned: the channels are the vector lanes, so no lane is
//! spent on absent pixels. [`QdotGemv`] describes a variant at either
//! width; [`ymm_gemv`] is the AVX2 form (8 channels per `ymm`, 16-bit
//! pairs or `vpmaddubsw` byte quads), [`crate::ukernel::avx512::qdot_gemv`]
//! the VNNI one (16 per `zmm`, `vpdpbusd`).

use iced_x86::code_asm::asm_traits::CodeAsmVpbroadcastd;
use iced_x86::code_asm::*;

use super::{activation, int_to_real_lanes, load_lanes, low_half, requantise, store_prefix, Lane};
use crate::ukernel::epi::TileEpi;
use crate::ukernel::KSteps;

/// A one-pixel integer product's variant: how many channel blocks and
/// images, the last block's valid channels, and the store.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QdotGemv {
    /// Channel blocks, one vector of i32 lanes each (16 on `zmm`, 8 on
    /// `ymm`).
    pub blocks: usize,
    /// Valid channels of the last block (1..=lanes): the lanes past them are
    /// computed on zero weights and not stored.
    pub last_lanes: usize,
    /// Residual and activation (`scale`/`addend` unused: the table has them).
    pub epi: TileEpi,
    /// Store u8 through this grid (`factor`, `zp`; `kerf_ir::op::QOut::grid`) instead of f32.
    pub quant: Option<(f32, u8)>,
    /// Images per call, each weight load shared by all of them: image `i`
    /// reads its input `i · x_stride` bytes past the first's, its output
    /// and residual `i · out_stride` elements past theirs.
    pub images: usize,
    /// Bytes between the images' inputs.
    pub x_stride: usize,
    /// Elements between the images' outputs (and residuals).
    pub out_stride: usize,
    /// Every K step in order, or the steps each block lists
    /// ([`KSteps::Listed`], byte quads only: per step a 64-byte header of
    /// the blocks' `u32` input offsets, then their weights).
    pub steps: KSteps,
}

/// What [`ymm_gemv`] multiplies per K step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemvStep {
    /// A K pair: the image's two bytes widened to i16 and broadcast, the
    /// weights an i16 pair per channel, `vpmaddwd` (exact for any s8
    /// weight: a pair of u8 × s8 products fits i32).
    Pairs,
    /// A K quad: the image's four bytes broadcast, the weights four s8 per
    /// channel, `vpmaddubsw` then `vpmaddwd` by ones. `vpmaddubsw`
    /// saturates, so only for weights [`kerf_ir::byte_pairs_exact`] accepts.
    Bytes,
}

impl GemvStep {
    /// K values per step.
    pub fn k(self) -> usize {
        match self {
            GemvStep::Pairs => 2,
            GemvStep::Bytes => 4,
        }
    }
}

/// Accumulators of [`ymm_gemv`] (`ymm0`–`ymm11`): `images · blocks` at
/// most; in the K loop `ymm12` and `ymm13` hold the broadcasts, `ymm14`
/// the ones of the byte-quad step and `ymm15` the products; after it they
/// are the epilogue's [`super::Vreg::SCRATCH`].
pub const YMM_GEMV_ACCS: usize = 12;

/// Most images per call of [`ymm_gemv`] (their broadcasts live in `ymm12`
/// and `ymm13`).
pub const YMM_GEMV_IMAGES_MAX: usize = 2;

/// Machine code of the AVX2 one-pixel product, [`QdotGemv`]'s contract at 8
/// channels per block ([`crate::ukernel::avx512::qdot_gemv`] states it at
/// 16). Arguments (System V order): `w` (per K step, the blocks' 8
/// channels × one step's weights, 4 bytes each: an i16 pair or four s8;
/// `32·blocks` bytes), `x` (the first image's u8 input), `out`, `k` (K
/// steps, ≥ 0), `table` (per block three vectors of 8: the i32 `zp·Σ_k
/// w[m, k]`, the f32 scale and the f32 bias) and `residual` (f32, per
/// channel; read only with `epi.residual`). Per K step: each image's step
/// broadcast to every lane, then per block and image one multiply
/// ([`GemvStep`]) with the block's weights as a memory operand and one
/// `vpaddd`. Then per image and block `f32(acc − corr) · scale + bias (+
/// residual)`, the activation and the store of 8 f32 (or u8 through
/// `quant`), the last block's first `last_lanes` only: `QConv`'s epilogue
/// operations in their order, so the reference's bits. With
/// [`KSteps::Listed`] (byte quads only) each step of `w` starts with the
/// 64-byte header of the blocks' input offsets, as in `qdot_gemv`.
/// An error where `blocks` or `images` is out of range, or for listed
/// 16-bit pairs.
pub fn ymm_gemv(g: &QdotGemv, step: GemvStep) -> Result<Vec<u8>, String> {
    let (blocks, images) = (g.blocks, g.images);
    let fits = blocks >= 1 && (1..=YMM_GEMV_IMAGES_MAX).contains(&images) && (1..=8).contains(&g.last_lanes);
    if g.steps == KSteps::Listed && step != GemvStep::Bytes {
        return Err("one-pixel product: listed steps of 16-bit pairs".into());
    }
    if !fits || images * blocks > YMM_GEMV_ACCS {
        return Err(format!("one-pixel product: {blocks} blocks of {images} images, {} lanes", g.last_lanes));
    }
    ymm_code(g, step).map_err(|e| e.to_string())
}

const ACCS: [AsmRegisterYmm; YMM_GEMV_ACCS] =
    [ymm0, ymm1, ymm2, ymm3, ymm4, ymm5, ymm6, ymm7, ymm8, ymm9, ymm10, ymm11];

fn ymm_code(g: &QdotGemv, step: GemvStep) -> Result<Vec<u8>, IcedError> {
    let (w_p, x_p, out_p, n, table, res) = (rdi, rsi, rdx, rcx, r8, r9);
    let (blocks, images) = (g.blocks, g.images);
    let acc = &ACCS[..images * blocks];
    let at = |i: usize, j: usize| acc[i * blocks + j];
    let (bcast, ones, t) = ([ymm12, ymm13], ymm14, ymm15);
    let mut a = CodeAssembler::new(64)?;
    for &r in acc {
        a.vpxor(r, r, r)?;
    }
    if step == GemvStep::Bytes {
        // ones in every i16 lane: all bits set, shifted right by 15
        a.vpcmpeqw(ones, ones, ones)?;
        a.vpsrlw(ones, ones, 15)?;
    }
    let listed = g.steps == KSteps::Listed;
    // listed: the step's 64-byte header of block offsets comes first
    let head = if listed { 64 } else { 0 };
    super::super::counted_loop(&mut a, n, |a| {
        for j in 0..blocks {
            if listed {
                listed_quads(a, j, &bcast[..images], g.x_stride)?;
            } else if j == 0 {
                for (i, &b) in bcast.iter().enumerate().take(images) {
                    let x = x_p + (i * g.x_stride) as i64;
                    match step {
                        GemvStep::Pairs => {
                            a.vpbroadcastw(low_half(b), word_ptr(x))?;
                            a.vpmovzxbw(b, low_half(b))?;
                        }
                        GemvStep::Bytes => a.vpbroadcastd(b, dword_ptr(x))?,
                    }
                }
            }
            let w = ymmword_ptr(w_p + (head + 32 * j) as i64);
            for (i, &b) in bcast.iter().enumerate().take(images) {
                match step {
                    GemvStep::Pairs => a.vpmaddwd(t, b, w)?,
                    GemvStep::Bytes => {
                        a.vpmaddubsw(t, b, w)?;
                        a.vpmaddwd(t, t, ones)?;
                    }
                }
                a.vpaddd(at(i, j), at(i, j), t)?;
            }
        }
        if !listed {
            a.add(x_p, step.k() as i32)?;
        }
        a.add(w_p, (head + 32 * blocks) as i32)
    })?;
    let lanes = |j: usize| if j == blocks - 1 { g.last_lanes } else { 8 };
    for i in 0..images {
        for j in 0..blocks {
            let ac = at(i, j);
            int_to_real_lanes(&mut a, ac, (table, (96 * j) as i64))?;
            if g.epi.residual {
                let r = (4 * (i * g.out_stride + 8 * j)) as i64;
                load_lanes(&mut a, ymm14, res, r, lanes(j))?;
                a.vaddps(ac, ac, ymm14)?;
            }
        }
    }
    let el = if g.quant.is_some() { 1 } else { 4 };
    match g.quant {
        Some(grid) => requantise(&mut a, &g.epi, acc, grid, false)?,
        None => activation(&mut a, &g.epi, acc)?,
    }
    for i in 0..images {
        for j in 0..blocks {
            let o = (el * (i * g.out_stride + 8 * j)) as i64;
            let kind = if g.quant.is_some() { Lane::Byte } else { Lane::F32 };
            store_prefix(&mut a, at(i, j), out_p + o, lanes(j), kind)?;
        }
    }
    super::super::leaf_end(a)
}

/// The listed one-pixel products' input quads for block `j`
/// ([`KSteps::Listed`]): its `u32` offset from the step's header at `w`
/// (`rdi`) into `eax`, then each image's quad at `x + offset` (`rsi`,
/// images `x_stride` bytes apart) broadcast into its register of `bcast`.
pub(crate) fn listed_quads<R: Copy>(
    a: &mut CodeAssembler,
    j: usize,
    bcast: &[R],
    x_stride: usize,
) -> Result<(), IcedError>
where
    CodeAssembler: CodeAsmVpbroadcastd<R, AsmMemoryOperand>,
{
    a.mov(eax, dword_ptr(rdi + (4 * j) as i64))?;
    for (i, &b) in bcast.iter().enumerate() {
        a.vpbroadcastd(b, dword_ptr(rsi + rax + (i * x_stride) as i64))?;
    }
    Ok(())
}
