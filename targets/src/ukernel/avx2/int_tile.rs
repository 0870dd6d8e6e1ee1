//! The integer tiles of `lower::qconv` ([`qgemm_tile`]: 16-bit pairs;
//! [`qbyte_tile`]: byte quads through `vpmaddubsw`; [`qbyte_wide_tile`]:
//! the same for two units at once, its ones in a constant pool after the
//! code) and the frame they share with the VNNI tile
//! ([`crate::ukernel::avx512::qdot_tile`]) at either width ([`IntVreg`],
//! [`int_tile`], [`int_store`], [`int_to_real`]).

use iced_x86::code_asm::asm_traits::{
    CodeAsmVaddps, CodeAsmVbroadcastss, CodeAsmVcvtdq2ps, CodeAsmVcvtps2dq, CodeAsmVcvttps2dq, CodeAsmVmovups,
    CodeAsmVmulps, CodeAsmVpbroadcastd, CodeAsmVpmaxsd, CodeAsmVpsubd,
};
use iced_x86::code_asm::*;

use super::{activation, VecOps, Vreg};
use crate::ukernel::epi::TileEpi;
use crate::ukernel::KSteps;
use crate::ukernel::PooledCode;

/// Machine code of the integer tile of [`crate::lower::qconv`]: `rows` (1..=12)
/// output channels × 8 pixels of i32 sums over `k` K pairs, with the
/// arguments (System V order) `a` (the rows' weight pairs, `4·rows` bytes
/// per K pair: one i16 pair per row), `b` (8 pixels' i16 pairs per K pair,
/// 32 bytes), `out` (`rows × 8` i32, row-major) and `k` (K pairs, ≥ 0).
/// Per K pair: one B load, then per row a `vpbroadcastd` of its pair,
/// `vpmaddwd` and `vpaddd` (exact: each pair of products fits in i32).
/// With `epi`, the f32 (or requantised u8) epilogue of [`QdotEpi`] and its
/// stores instead of the sums, the arguments then as [`qbyte_tile`]'s (the
/// pairs hold `x − zp`: the table's corrections are zero).
pub fn qgemm_tile(rows: usize, epi: Option<&QdotEpi>) -> Result<Vec<u8>, IcedError> {
    let tmp = [ymm13, ymm14, ymm15];
    int_tile::<AsmRegisterYmm>(
        rows,
        (epi, KSteps::Dense),
        |_| Ok(()),
        |a, r, ac| {
            let t = tmp[r % 3];
            a.vpbroadcastd(t, dword_ptr(rdi + (4 * r) as i64))?;
            a.vpmaddwd(t, t, INT_B)?;
            a.vpaddd(ac, ac, t)
        },
    )
}

/// A register class the integer tiles run on ([`int_tile`]): `ymm`
/// (8 pixels of i32 sums per row) or `zmm` (16, [`crate::ukernel::avx512::qdot_tile`]).
pub(crate) trait IntVreg: Vreg + 'static {
    /// The accumulators, one per row: as many as the tile may have rows.
    const ACC: &'static [Self];
    /// The K loop's B vector, then the epilogue's scratch.
    const B: Self;
    /// Registers past the 16 that survive `vzeroupper` which the tile's
    /// code may write ([`Vreg::SCRATCH`] of `zmm`): zeroed at its end, so
    /// no upper state outlives the call.
    const UPPER: &'static [Self];
    /// i32 lanes (pixels) per vector.
    const LANES: usize;
    /// A memory operand of the class's width.
    fn ptr(at: AsmMemoryOperand) -> AsmMemoryOperand;
    /// Rounds `acc` to the nearest whole number, ties to even (`vroundps`
    /// / `vrndscaleps` with immediate 0: Cranelift's `nearest`).
    fn round(a: &mut CodeAssembler, acc: Self) -> Result<(), IcedError>;
    /// Stores the low bytes of `acc`'s i32 lanes (whole numbers in
    /// `0..=255`, so no pack saturates) at `dst`, one byte per lane;
    /// clobbers `acc`.
    fn store_bytes(a: &mut CodeAssembler, acc: Self, dst: AsmMemoryOperand) -> Result<(), IcedError>;
    /// Loads one vector's worth of u8 at `src`, each zero-extended into an
    /// i32 lane (`vpmovzxbd`).
    fn load_bytes(a: &mut CodeAssembler, dst: Self, src: AsmMemoryOperand) -> Result<(), IcedError>;
}

impl IntVreg for AsmRegisterYmm {
    const ACC: &'static [Self] = &[ymm0, ymm1, ymm2, ymm3, ymm4, ymm5, ymm6, ymm7, ymm8, ymm9, ymm10, ymm11];
    const B: Self = ymm12;
    const UPPER: &'static [Self] = &[];
    const LANES: usize = 8;
    fn ptr(at: AsmMemoryOperand) -> AsmMemoryOperand {
        ymmword_ptr(at)
    }
    fn round(a: &mut CodeAssembler, acc: Self) -> Result<(), IcedError> {
        a.vroundps(acc, acc, 0)
    }
    fn store_bytes(a: &mut CodeAssembler, acc: Self, dst: AsmMemoryOperand) -> Result<(), IcedError> {
        super::store_prefix(a, acc, dst, 8, super::Lane::Byte)
    }
    fn load_bytes(a: &mut CodeAssembler, dst: Self, src: AsmMemoryOperand) -> Result<(), IcedError> {
        a.vpmovzxbd(dst, qword_ptr(src))
    }
}

/// The assembler's operations the integer tiles' frame and stores use on
/// register class `R`.
pub(crate) trait IntOps<R>:
    VecOps<R>
    + CodeAsmVmovups<R, AsmMemoryOperand>
    + CodeAsmVmovups<AsmMemoryOperand, R>
    + CodeAsmVpbroadcastd<R, AsmMemoryOperand>
    + CodeAsmVpsubd<R, R, R>
    + CodeAsmVpsubd<R, R, AsmMemoryOperand>
    + CodeAsmVcvtdq2ps<R, R>
    + CodeAsmVbroadcastss<R, AsmMemoryOperand>
    + CodeAsmVaddps<R, R, AsmMemoryOperand>
    + CodeAsmVmulps<R, R, AsmMemoryOperand>
    + CodeAsmVcvttps2dq<R, R>
    + CodeAsmVcvtps2dq<R, R>
    + CodeAsmVpmaxsd<R, R, R>
{
}

impl<R, T> IntOps<R> for T where
    T: VecOps<R>
        + CodeAsmVmovups<R, AsmMemoryOperand>
        + CodeAsmVmovups<AsmMemoryOperand, R>
        + CodeAsmVpbroadcastd<R, AsmMemoryOperand>
        + CodeAsmVpsubd<R, R, R>
        + CodeAsmVpsubd<R, R, AsmMemoryOperand>
        + CodeAsmVcvtdq2ps<R, R>
        + CodeAsmVbroadcastss<R, AsmMemoryOperand>
        + CodeAsmVaddps<R, R, AsmMemoryOperand>
        + CodeAsmVmulps<R, R, AsmMemoryOperand>
        + CodeAsmVcvttps2dq<R, R>
        + CodeAsmVcvtps2dq<R, R>
        + CodeAsmVpmaxsd<R, R, R>
{
}

/// The B vector of the `ymm` integer tiles' K loop ([`int_tile`]).
const INT_B: AsmRegisterYmm = ymm12;

/// The integer tiles' frame ([`qgemm_tile`], [`qbyte_tile`],
/// [`crate::ukernel::avx512::qdot_tile`]) on register class `R`: `setup`
/// (constants, the encoding), the `rows` (1..=`R::ACC.len()`) accumulators
/// [`IntVreg::ACC`] zeroed, then per K step (`rcx` of them) a prefetch of A
/// 1 KiB ahead, one B load into
/// [`IntVreg::B`] and `row(a, r, acc)` for each row, A (`rdi`) and B
/// (`rsi`) advanced by `4·rows` and `4·lanes` bytes, and the stores
/// ([`int_store`]). Registers 13–15 of the class are the rows' to use.
/// With [`KSteps::Listed`] each step of A starts with the `u32` byte
/// offset of its B vector from `b` (which stays put), then the rows'
/// weights.
pub(crate) fn int_tile<R: IntVreg>(
    rows: usize,
    (epi, steps): (Option<&QdotEpi>, KSteps),
    setup: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
    row: impl FnMut(&mut CodeAssembler, usize, R) -> Result<(), IcedError>,
) -> Result<Vec<u8>, IcedError>
where
    CodeAssembler: IntOps<R>,
{
    int_tile_then(rows, (epi, steps), setup, row, |_| Ok(()))
}

/// [`int_tile`] with `after` between the K loop and the stores (whatever
/// else the loop summed, stored from registers the stores leave alone).
pub(crate) fn int_tile_then<R: IntVreg>(
    rows: usize,
    (epi, steps): (Option<&QdotEpi>, KSteps),
    setup: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
    mut row: impl FnMut(&mut CodeAssembler, usize, R) -> Result<(), IcedError>,
    after: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> Result<Vec<u8>, IcedError>
where
    CodeAssembler: IntOps<R>,
{
    let rows = rows.clamp(1, R::ACC.len());
    let acc = &R::ACC[..rows];
    let (a_p, b_p, n) = (rdi, rsi, rcx);
    let mut a = CodeAssembler::new(64)?;
    setup(&mut a)?;
    for &r in acc {
        R::zero(&mut a, r)?;
    }
    super::super::counted_loop(&mut a, n, |a| {
        // A streams once per unit; past L2 (ResNet-18's 512-channel 3x3
        // weights, 2.4 MB) the hardware prefetcher alone left the tile at
        // 300 of 360 GOP/s (Zen 4); ~20 K steps ahead brings it to ~330
        a.prefetcht0(byte_ptr(a_p + 1024))?;
        match steps {
            KSteps::Dense => a.vmovups(R::B, R::ptr(b_p + 0))?,
            KSteps::Listed => {
                // the step's byte offset into B, then its weights
                a.mov(eax, dword_ptr(a_p))?;
                a.add(a_p, 4)?;
                a.vmovups(R::B, R::ptr(b_p + rax))?;
            }
        }
        for (r, &ac) in acc.iter().enumerate() {
            row(a, r, ac)?;
        }
        if steps == KSteps::Dense {
            a.add(b_p, (4 * R::LANES) as i32)?;
        }
        a.add(a_p, (4 * rows) as i32)
    })?;
    after(&mut a)?;
    int_store(&mut a, acc, 1, epi)?;
    for &r in R::UPPER {
        R::zero(&mut a, r)?;
    }
    super::super::leaf_end(a)
}

/// The f32 epilogue an integer tile ([`qgemm_tile`], [`qbyte_tile`],
/// [`crate::ukernel::avx512::qdot_tile`]) applies before storing: per row
/// `act(f32(acc − corr) · scale + bias (+ residual))`, the operations and
/// order of the Cranelift epilogue of `lower::qconv` (so the same bits),
/// with `corr`, `scale` and `bias` read from a per-channel table (12 bytes
/// per channel: i32, f32, f32).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QdotEpi {
    /// Residual and activation (`scale`/`addend` unused: the table has them).
    pub epi: TileEpi,
    /// Bytes between the output's channel rows (f32, or u8 with `quant`).
    pub ldo: usize,
    /// Store u8 through this grid (`factor`, `zp`;
    /// `kerf_ir::op::QOut::grid`): the requantiser's operations after the
    /// activation ([`requantise`]); `ldo` then counts bytes of the u8
    /// output.
    pub quant: Option<(f32, u8)>,
    /// The residual is u8 on this grid (`scale`, `zp`;
    /// `kerf_ir::op::QConv::res_grid`): it enters as `f32(r − zp) · scale`.
    pub res_grid: Option<(f32, u8)>,
}

impl QdotEpi {
    /// Bytes between the residual's channel rows: as many pixels as the
    /// output's, of 4 bytes (f32) or 1 (u8, [`QdotEpi::res_grid`]).
    fn residual_row(&self) -> i64 {
        let pixels = if self.quant.is_some() { self.ldo } else { self.ldo / 4 };
        let bytes = if self.res_grid.is_some() { 1 } else { 4 };
        (pixels * bytes) as i64
    }
}

/// Most output channels of one integer byte tile ([`qbyte_tile`],
/// [`crate::ukernel::avx512::qdot_tile`]): 12 accumulators, leaving
/// registers 12–15 to the loop's operands (and, on `ymm`, to the
/// epilogue; the `zmm` epilogue takes `zmm28`–`zmm31`).
pub const QDOT_ROWS: usize = 12;

/// Machine code of the AVX2 byte tile of [`crate::lower::qconv`]: `rows`
/// (1..=[`QDOT_ROWS`]) output channels × 8 pixels of i32 sums `Σ x·w` over
/// `k` K quads, the VNNI tile's contract ([`crate::ukernel::avx512::qdot_tile`]:
/// the same arguments, packing and epilogue) without VNNI. Per K quad: one
/// B load (8 pixels × 4 u8), then per row a `vpbroadcastd` of its four s8
/// weights, `vpmaddubsw` (u8 × s8 products of adjacent bytes added into an
/// i16), `vpmaddwd` by ones (the two i16 into the i32 lane) and `vpaddd`:
/// 32 multiply-adds for two multiplier µops, twice the 16-bit-pair tile's
/// rate. `vpmaddubsw` saturates, so the caller uses it only on weights
/// whose byte pairs fit i16 for every input ([`kerf_ir::byte_pairs_exact`]);
/// then the sums are exact and equal the VNNI tile's.
pub fn qbyte_tile(rows: usize, epi: Option<&QdotEpi>, steps: KSteps) -> Result<Vec<u8>, IcedError> {
    let (ones, tmp) = (ymm13, [ymm14, ymm15]);
    // ones in every i16 lane: all bits set, shifted right by 15
    let setup = |a: &mut CodeAssembler| {
        a.vpcmpeqw(ones, ones, ones)?;
        a.vpsrlw(ones, ones, 15)
    };
    int_tile::<AsmRegisterYmm>(rows, (epi, steps), setup, |a, r, ac| {
        let t = tmp[r % 2];
        a.vpbroadcastd(t, dword_ptr(rdi + (4 * r) as i64))?;
        a.vpmaddubsw(t, INT_B, t)?;
        a.vpmaddwd(t, t, ones)?;
        a.vpaddd(ac, ac, t)
    })
}

/// Most output channels of AVX2's wide byte tile ([`qbyte_wide_tile`]):
/// two accumulators per channel, 12 in all.
pub const QBYTE_WIDE_ROWS: usize = 6;

/// Machine code of AVX2's wide byte tile: [`qbyte_tile`]'s sums and fused
/// epilogue (`epi`) for `rows` (1..=[`QBYTE_WIDE_ROWS`]) output channels
/// × two whole units of 8 pixels, with [`qbyte_tile`]'s arguments. The
/// second unit's packed panels follow the first's in `b` (`32·k` bytes
/// on); its pixels follow the first's in the output and residual rows.
/// Per K quad: the two units' B loads, then per row one `vpbroadcastd` of
/// its weights for both, and per unit `vpmaddubsw`, `vpmaddwd` by ones and
/// `vpaddd`. The byte tile broadcasts a row's weights for every 8 pixels;
/// on Zen 3 those broadcasts kept it 4% below the multipliers' rate in L1
/// (192 against 200 GOP/s at 3.1 GHz, one vector per row; this tile 199).
/// All sixteen registers are taken (12 accumulators, two B vectors, the
/// weights, one product), so the ones are read from the constant pool
/// after the code.
pub fn qbyte_wide_tile(rows: usize, epi: &QdotEpi) -> Result<PooledCode, String> {
    let assemble = |pad| wide_tile(rows, epi, pad).map_err(|e| format!("wide byte tile: {e}"));
    let code_len = assemble(0)?.len() - WIDE_POOL;
    let pad = (32 - code_len % 32) % 32;
    let bytes = assemble(pad)?;
    // the padding must not have moved the code: a rip-relative operand is
    // always a 32-bit displacement and the branches end before the `ret`
    if bytes.len() != code_len + pad + WIDE_POOL {
        return Err(format!("wide byte tile: the code ({code_len} bytes) moved with the pool's padding"));
    }
    Ok(PooledCode { bytes, code_len })
}

/// Bytes of [`qbyte_wide_tile`]'s constant pool: sixteen i16 ones.
const WIDE_POOL: usize = 32;

/// [`qbyte_wide_tile`]'s bytes, its pool `pad` bytes after the `ret`.
fn wide_tile(rows: usize, epi: &QdotEpi, pad: usize) -> Result<Vec<u8>, IcedError> {
    let rows = rows.clamp(1, QBYTE_WIDE_ROWS);
    let acc = &AsmRegisterYmm::ACC[..2 * rows];
    let (a_p, b_p, n, second) = (rdi, rsi, rcx, r10);
    let (b0, b1, w, t) = (ymm12, ymm13, ymm14, ymm15);
    let mut a = CodeAssembler::new(64)?;
    let mut ones = a.create_label();
    for &r in acc {
        a.vpxor(r, r, r)?;
    }
    // the second unit's panels: 32 bytes per K quad on
    a.mov(second, n)?;
    a.shl(second, 5)?;
    super::super::counted_loop(&mut a, n, |a| {
        a.vmovups(b0, ymmword_ptr(b_p))?;
        a.vmovups(b1, ymmword_ptr(b_p + second))?;
        for r in 0..rows {
            a.vpbroadcastd(w, dword_ptr(a_p + (4 * r) as i64))?;
            a.vpmaddubsw(t, b0, w)?;
            a.vpmaddubsw(w, b1, w)?;
            a.vpmaddwd(t, t, ymmword_ptr(ones))?;
            a.vpmaddwd(w, w, ymmword_ptr(ones))?;
            a.vpaddd(acc[2 * r], acc[2 * r], t)?;
            a.vpaddd(acc[2 * r + 1], acc[2 * r + 1], w)?;
        }
        a.add(b_p, 32)?;
        a.add(a_p, (4 * rows) as i32)
    })?;
    int_store(&mut a, acc, 2, Some(epi))?;
    a.vzeroupper()?;
    a.ret()?;
    a.db(&vec![0xcc; pad])?;
    a.set_label(&mut ones)?;
    a.dw(&[1; WIDE_POOL / 2])?;
    a.assemble(0)
}

/// The integer tiles' stores (`out` in `rdx`, the table in `r8`, the
/// residual in `r9`; [`IntVreg::B`] and [`Vreg::SCRATCH`] free) of `acc`,
/// `cols` vectors of consecutive pixels per output channel (row `r`'s
/// vector `c` in `acc[cols·r + c]`): without `epi` the i32 sums as they are
/// (row-major, `cols · lanes` per row); with it, per row `f32(acc − corr) ·
/// scale + bias (+ residual)`, the activation, and the f32 (or requantised
/// u8) results, rows `ldo` bytes apart ([`QdotEpi`]).
fn int_store<R: IntVreg>(a: &mut CodeAssembler, acc: &[R], cols: usize, epi: Option<&QdotEpi>) -> Result<(), IcedError>
where
    CodeAssembler: IntOps<R>,
{
    let (out_p, table, res) = (rdx, r8, r9);
    let Some(e) = epi else {
        for (i, &ac) in acc.iter().enumerate() {
            a.vmovups(R::ptr(out_p + (4 * R::LANES * i) as i64), ac)?;
        }
        return Ok(());
    };
    let (ldo, ldr, t) = (e.ldo as i64, e.residual_row(), R::B);
    // where vector `i` goes in a run of rows `ld` bytes apart, of `bytes`-byte elements
    let at = |i: usize, ld: i64, bytes: usize| (i / cols) as i64 * ld + ((i % cols) * R::LANES * bytes) as i64;
    // a u8 residual's step and zero point (as an i32's bits), in scratch
    // registers other than `t`
    let [_, step, zp, _] = R::SCRATCH;
    if let (true, Some((s, z))) = (e.epi.residual, e.res_grid) {
        R::splat(a, step, s)?;
        R::splat(a, zp, f32::from_bits(u32::from(z)))?;
    }
    for (i, &ac) in acc.iter().enumerate() {
        int_to_real(a, ac, t, (table, (12 * (i / cols)) as i64))?;
        if !e.epi.residual {
            continue;
        }
        match e.res_grid {
            None => a.vaddps(ac, ac, R::ptr(res + at(i, ldr, 4)))?,
            // f32(r − zp) · step: the difference is exact, one rounding
            Some(_) => {
                R::load_bytes(a, t, res + at(i, ldr, 1))?;
                a.vpsubd(t, t, zp)?;
                a.vcvtdq2ps(t, t)?;
                a.vmulps(t, t, step)?;
                a.vaddps(ac, ac, t)?;
            }
        }
    }
    if let Some(grid) = e.quant {
        requantise(a, &e.epi, acc, grid, false)?;
        for (i, &ac) in acc.iter().enumerate() {
            R::store_bytes(a, ac, out_p + at(i, ldo, 1))?;
        }
        return Ok(());
    }
    activation(a, &e.epi, acc)?;
    for (i, &ac) in acc.iter().enumerate() {
        a.vmovups(R::ptr(out_p + at(i, ldo, 4)), ac)?;
    }
    Ok(())
}

/// The activation of `epi` and the requantising store's arithmetic on the
/// accumulators (whole numbers in `0..=255` after it): [`activation`] then
/// [`quantise`], or where [`fused_bounds`] allows, the same values in
/// fewer operations ([`quantise_clamped`]). `preset`: the folded form's
/// constants are already in [`Vreg::SCRATCH`] ([`requantise_setup`]).
pub(crate) fn requantise<R: IntVreg>(
    a: &mut CodeAssembler,
    epi: &TileEpi,
    acc: &[R],
    grid: (f32, u8),
    preset: bool,
) -> Result<(), IcedError>
where
    CodeAssembler: IntOps<R>,
{
    match fused_bounds(epi, grid) {
        Some(bounds) => {
            if !preset {
                clamped_constants::<R>(a, grid, bounds)?;
            }
            quantise_clamped(a, acc, epi.residual || !epi.finite)
        }
        None => {
            activation(a, epi, acc)?;
            quantise(a, acc, grid)
        }
    }
}

/// Loads the constants of [`requantise`]'s folded form into
/// [`Vreg::SCRATCH`] once, for a caller that calls it many times and
/// leaves those registers alone (the depthwise quad pass, per row):
/// whether it did (`false`: that form does not apply, and each call
/// loads what it needs itself).
pub(crate) fn requantise_setup<R: IntVreg>(
    a: &mut CodeAssembler,
    epi: &TileEpi,
    grid: (f32, u8),
) -> Result<bool, IcedError>
where
    CodeAssembler: IntOps<R>,
{
    match fused_bounds(epi, grid) {
        Some(bounds) => clamped_constants::<R>(a, grid, bounds).map(|()| true),
        None => Ok(false),
    }
}

/// [`quantise_clamped`]'s constants: the factor, the bounds and `−zp` (as
/// an i32, the splat's bits) in [`Vreg::SCRATCH`].
fn clamped_constants<R: IntVreg>(
    a: &mut CodeAssembler,
    (f, zp): (f32, u8),
    (lo, hi): (f32, f32),
) -> Result<(), IcedError>
where
    CodeAssembler: IntOps<R>,
{
    let nz = f32::from_bits((-i32::from(zp)) as u32);
    for (r, v) in R::SCRATCH.into_iter().zip([f, lo, hi, nz]) {
        R::splat(a, r, v)?;
    }
    Ok(())
}

/// The clamp activation of `epi` folded into the requantiser's: integer
/// bounds `(lo, hi)` on `round(y · f)` such that
/// `clamp(round(y · f), lo, hi) = clamp(round(clip(y) · f), −zp,
/// 255 − zp)` for every non-NaN `y`: multiplication by a positive factor,
/// its rounding and round-to-nearest-even are monotone, so they commute
/// with `max`/`min` (`lo = max(round(clip_lo · f), −zp)`, `hi` likewise;
/// the signs of zero vanish in the conversion; ±∞ land on the bounds as
/// they do through the clip). A NaN, which the separate steps turn into
/// byte 0, [`quantise_clamped`] carries to the same byte. `None` with
/// HardSwish or with bounds out of order.
fn fused_bounds(epi: &TileEpi, (f, zp): (f32, u8)) -> Option<(f32, f32)> {
    if epi.hardswish || epi.scale.is_some() || epi.addend.is_some() || !f.is_finite() || f <= 0.0 {
        return None;
    }
    let z = f32::from(zp);
    let (lo, hi) = match epi.clamp {
        None => (-z, 255.0 - z),
        Some(c) => {
            let lo = (c.lo * f).round_ties_even().max(-z);
            let hi = c.hi.map_or(255.0 - z, |h| (h * f).round_ties_even().min(255.0 - z));
            (lo, hi)
        }
    };
    (lo <= hi).then_some((lo, hi))
}

/// `acc = max(i32(clamp(acc · f, lo, hi)), −zp) + zp` with the
/// conversion's round to nearest even ([`fused_bounds`]'s `lo`, `hi`:
/// whole numbers, so clamping before the rounding is clamping after it,
/// and the integer `max` then changes nothing). The clamps keep a NaN
/// (`vmaxps`/`vminps` return their second operand, the accumulator, when
/// either is NaN), the conversion makes it `i32::MIN`, and the integer
/// `max` makes that `−zp`: byte 0, the separate steps' byte. Where no NaN
/// can arrive (`nan` false: no residual, finite scales and biases,
/// [`TileEpi::finite`]) the `max` is left out: five operations per vector,
/// six with it, where the activation then [`quantise`] take nine or ten.
/// The constants are in [`Vreg::SCRATCH`] ([`clamped_constants`]).
fn quantise_clamped<R: IntVreg>(a: &mut CodeAssembler, acc: &[R], nan: bool) -> Result<(), IcedError>
where
    CodeAssembler: IntOps<R>,
{
    let [f, l, h, nz] = R::SCRATCH;
    for &ac in acc {
        a.vmulps(ac, ac, f)?;
        a.vmaxps(ac, l, ac)?;
        a.vminps(ac, h, ac)?;
        a.vcvtps2dq(ac, ac)?;
        if nan {
            a.vpmaxsd(ac, ac, nz)?;
        }
        a.vpsubd(ac, ac, nz)?;
    }
    Ok(())
}

/// `acc = i32(clip(round(acc · f), −zp, 255 − zp) + zp)`, whole
/// numbers in `0..=255`: `kerf_ir::op::QOut::Quant`'s operations in its
/// order (`vmulps` by the factor, round to nearest even, `vmaxps`/`vminps`
/// against the bounds, `+ zp`, truncating conversion of the whole number;
/// the quantiser pass's, `ukernel::quantize`, with its division by the
/// step a multiplication), so the reference's bytes. The constants live in
/// [`Vreg::SCRATCH`] (free after the activation).
pub(crate) fn quantise<R: IntVreg>(a: &mut CodeAssembler, acc: &[R], (f, zp): (f32, u8)) -> Result<(), IcedError>
where
    CodeAssembler: IntOps<R>,
{
    let z = f32::from(zp);
    let [s, lo, hi, zr] = R::SCRATCH;
    for (r, v) in [s, lo, hi, zr].into_iter().zip([f, -z, 255.0 - z, z]) {
        R::splat(a, r, v)?;
    }
    for &ac in acc {
        a.vmulps(ac, ac, s)?;
        R::round(a, ac)?;
        a.vmaxps(ac, ac, lo)?;
        a.vminps(ac, ac, hi)?;
        a.vaddps(ac, ac, zr)?;
        a.vcvttps2dq(ac, ac)?;
    }
    Ok(())
}

/// `acc = f32(acc − corr) · scale + bias` with `(corr, scale, bias)` the
/// 12-byte epilogue-table row at `table + at` (i32, f32, f32; `t`
/// scratch): the integer tiles' sums made real, the operations and order
/// of `lower::qconv`'s Cranelift epilogue.
pub(crate) fn int_to_real<R: IntVreg>(
    a: &mut CodeAssembler,
    acc: R,
    t: R,
    (table, at): (AsmRegister64, i64),
) -> Result<(), IcedError>
where
    CodeAssembler: IntOps<R>,
{
    a.vpbroadcastd(t, dword_ptr(table + at))?;
    a.vpsubd(acc, acc, t)?;
    a.vcvtdq2ps(acc, acc)?;
    a.vbroadcastss(t, dword_ptr(table + (at + 4)))?;
    a.vmulps(acc, acc, t)?;
    a.vbroadcastss(t, dword_ptr(table + (at + 8)))?;
    a.vaddps(acc, acc, t)
}

/// [`int_to_real`] with the output channels in the lanes (the one-pixel
/// products): `acc = f32(acc − corr) · scale + bias` lane by lane, with
/// `corr`, `scale` and `bias` three whole vectors at `table + at` (i32,
/// f32, f32).
pub(crate) fn int_to_real_lanes<R: IntVreg>(
    a: &mut CodeAssembler,
    acc: R,
    (table, at): (AsmRegister64, i64),
) -> Result<(), IcedError>
where
    CodeAssembler: IntOps<R>,
{
    let v = (4 * R::LANES) as i64;
    a.vpsubd(acc, acc, R::ptr(table + at))?;
    a.vcvtdq2ps(acc, acc)?;
    a.vmulps(acc, acc, R::ptr(table + (at + v)))?;
    a.vaddps(acc, acc, R::ptr(table + (at + 2 * v)))
}
