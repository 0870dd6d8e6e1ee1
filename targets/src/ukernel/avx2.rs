//! AVX2 + FMA micro-kernels (256-bit `ymm`, 16 registers).
//!
//! [`gemm_tile`]: the micro-tile of both GEMM engines (`lower::gemm` behind
//! the convs, `lower::matmul` behind MatMul/Gemm): rows of A × pairs of
//! 4-column B panels, each pair joined into one `ymm` of 8 columns (12
//! accumulators: 6 rows × 2 pairs, or 12 rows × 1 pair). Per K step, 6 × 2
//! issues 12 FMAs against 4 + 6 loads (bound by the two FMA ports); 12 × 1
//! issues 12 FMAs against 2 + 12 loads (FMA-bound with three load ports,
//! at ~85% with two). The `vinsertf128` that join panels go to the
//! shuffle port.
//!
//! [`qgemm_tile`] and [`qbyte_tile`]: the integer conv's tiles (16-bit
//! pairs; byte quads through `vpmaddubsw` where the weights allow it);
//! [`quad_pack`] packs their byte-quad B (and the VNNI tile's);
//! [`ymm_gemv`]: the one-pixel integer product (output channels in the
//! lanes); [`even_pack`] and [`flat_pack`]: the f32 conv's B panels at
//! stride 2 and of 1x1 convs.
//!
//! [`pattern_tile`]: the pattern-sparse convs' register tile (f32, or byte
//! quads of four input channels); [`dw_plane`]:
//! the depthwise conv's whole-plane pass over a zero-padded input copy;
//! [`ymm_dw_flat`]: small stride-1 "same" depthwise planes flattened
//! ([`DwFlat`], shared with `avx512::dw_flat`), f32 or from u8.

use iced_x86::code_asm::asm_traits::{CodeAsmVaddps, CodeAsmVmaxps, CodeAsmVminps, CodeAsmVmulps};
use iced_x86::code_asm::*;
use iced_x86::Register;

mod dw;
mod dw_flat;
mod even_pack;
mod gemv;
mod int_tail;
mod int_tile;
mod pattern;
mod quad_pack;
mod rnn;
pub use dw::{dw_copy, dw_plane, DwCopy, DwPlane};
pub use dw_flat::{ymm_dw_flat, DwFlat, Groups, Int, YmmFlat, DW_FLAT_MAX_TAPS};
pub use even_pack::{even_pack, flat_pack};
pub(crate) use gemv::listed_quads;
pub use gemv::{ymm_gemv, GemvStep, QdotGemv, YMM_GEMV_ACCS, YMM_GEMV_IMAGES_MAX};
pub use int_tail::{ymm_qdot_tail, ymm_tail_lanes, YMM_TAIL_PIXELS};
pub(crate) use int_tile::{
    int_tile, int_tile_then, int_to_real, int_to_real_lanes, requantise, requantise_setup, IntOps, IntVreg,
};
pub use int_tile::{qbyte_tile, qbyte_wide_tile, qgemm_tile, QdotEpi, QBYTE_WIDE_ROWS, QDOT_ROWS};
pub use pattern::pattern_tile;
pub use quad_pack::{quad_pack, quad_pack_table};
pub use rnn::{rnn_product, RNN_MAX_BLOCKS};

use super::epi::TileEpi;

/// A GEMM micro-tile variant: everything but the pointers and the K count
/// is fixed at assembly time. The same description serves the 256-bit tile
/// ([`gemm_tile`], 8-column `ymm` vectors) and the 512-bit one
/// ([`super::avx512::zmm_gemm_tile`], 16-column `zmm` vectors).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmTile {
    /// Rows of the tile, 1..=[`max_rows`]`(vecs)` (or
    /// [`super::avx512::zmm_max_rows`]; with a block-sparse B of `blocks`
    /// blocks on `zmm`, at most `24 / blocks` too).
    pub rows: usize,
    /// Vectors of B columns per row, 1 or 2: pairs of 4-column panels
    /// (`ymm`) or quads of them (`zmm`).
    pub vecs: usize,
    /// Bytes between rows of A (4 in a packed `[k][h]` block).
    pub a_row: usize,
    /// Bytes between consecutive K steps of A (4·h in a packed block).
    pub a_step: usize,
    /// Bytes between consecutive B panels (4 × K × 4 lanes).
    pub panel: usize,
    /// Panels per stored group of B (1, 2 or 4; `lower::gemm::Panels`):
    /// a group is `[k][4·group]`, so a vector of as many panels as the
    /// group holds is one load per K step (`16·group` bytes per step);
    /// single panels (group 1) are joined per step (`vinsertf128`). The
    /// `zmm` tile needs groups of four. The tile's first panel starts a
    /// group.
    pub group: usize,
    /// Bytes between output rows.
    pub ldo: usize,
    /// The accumulators' starting values.
    pub init: Init,
    /// What the store applies, in this order.
    pub epi: TileEpi,
    /// Valid columns of the last vector (1..=8, or 1..=16 for `zmm`): its
    /// output (and residual, partial sums, per-column addend) is read and
    /// written for these columns only; the lanes past them compute on
    /// whatever B holds there and are dropped. 8 (16): the whole vector.
    pub last_lanes: usize,
    /// Prefetch A 1 KiB ahead at every K step: for A larger than L2 (a
    /// layer's weights past L2 stream from L3 on each row block's first
    /// pass). Where A stays in L2 the prefetches only take load slots
    /// (MobileNetV2 +2% with them; ResNet-18 −5% to −6%, Zen 4, both
    /// widths).
    pub prefetch: bool,
    /// Block-sparse B ([`Indexed`]). `None`: dense, B in panels as above.
    pub indexed: Option<Indexed>,
}

/// A block-sparse B: `b` points at a block of 16 columns in its compact
/// form, the `k` argument counts its kept K steps, and per kept step the
/// list that starts at `b` holds a `u32`, the byte offset of that step's A
/// column from `a` (`a_step` unused); the list takes `list` bytes (a
/// multiple of 64), then come the steps' B values, 16 f32 (64 bytes) each:
/// on `ymm` vector `j` at `32·j` (`vecs` 2, or 1 for a last block of at
/// most 8 columns), on `zmm` one vector per block. The `zmm` tile takes
/// `blocks` consecutive blocks (`stride` bytes apart, the same step
/// count; `vecs` ignored): one FMA chain per row and block, so a product
/// of one to three rows still has four chains in flight. No prefetch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Indexed {
    /// Bytes of a block's offset list.
    pub list: usize,
    /// Blocks per call (`zmm`: 1..=4, at most 24 accumulators; `ymm`: 1).
    pub blocks: usize,
    /// Bytes from one block to the next.
    pub stride: usize,
}

/// Bytes of one kept K step of a block-sparse B ([`GemmTile::indexed`]):
/// 16 f32, the columns of a block.
pub const INDEXED_STEP: usize = 64;

impl GemmTile {
    /// Byte offset of element (row `r`, vector `j` of `width` columns) in
    /// a tensor of the output's layout.
    pub(crate) fn at(&self, r: usize, j: usize, width: usize) -> i64 {
        r as i64 * self.ldo as i64 + (4 * width * j) as i64
    }
    /// Valid columns of vector `j` of `vecs`, `width` columns each.
    pub(crate) fn lanes(&self, j: usize, vecs: usize, width: usize) -> usize {
        if j + 1 == vecs {
            self.last_lanes.clamp(1, width)
        } else {
            width
        }
    }
    /// Byte offset of B panel `c` (from the tile's first) at a K step.
    pub(crate) fn panel_at(&self, c: usize) -> i64 {
        let g = self.group.max(1);
        ((c / g * g) * self.panel + c % g * 16) as i64
    }
    /// Bytes from one K step of B to the next.
    pub(crate) fn b_step(&self) -> i32 {
        16 * self.group.max(1) as i32
    }
}

/// Where a tile's accumulators start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Zero.
    Zero,
    /// One value per row, from the `bias` argument.
    RowBias,
    /// The partial sums already in the output (a later pass over K).
    Partial,
}

/// Most rows of a tile of `vecs` panel pairs: 12 accumulators of the 16
/// `ymm` (the others hold the B vectors and the broadcast).
pub fn max_rows(vecs: usize) -> usize {
    12 / vecs.clamp(1, 2)
}

/// Machine code of `t` with the arguments (System V order) `a` (A at the
/// tile's first row and K step), `b` (the first of the `2·vecs` panels at
/// that K step), `out` (the output element of the first row and column),
/// `bias` (the first row's bias for [`Init::RowBias`], or the addend at the
/// first row and column), `residual` (at the same element as `out`) and `k`
/// (K steps, ≥ 0).
pub fn gemm_tile(t: &GemmTile) -> Result<Vec<u8>, IcedError> {
    let pairs = t.vecs.clamp(1, 2);
    let sh = Shape { rows: t.rows.clamp(1, max_rows(pairs)), pairs };
    let (rows, acc) = (sh.rows, |r, j| sh.acc(r, j));
    let (out_p, bias_p) = (rdx, rcx);
    let mut a = CodeAssembler::new(64)?;
    for r in 0..rows {
        for j in 0..pairs {
            match t.init {
                Init::Zero => a.vxorps(acc(r, j), acc(r, j), acc(r, j))?,
                Init::RowBias if j == 0 => a.vbroadcastss(acc(r, 0), dword_ptr(bias_p + (4 * r) as i64))?,
                Init::RowBias => a.vmovaps(acc(r, j), acc(r, 0))?,
                Init::Partial => load_lanes(&mut a, sh.acc(r, j), out_p, t.at(r, j, 8), t.lanes(j, pairs, 8))?,
            }
        }
    }
    k_loop(&mut a, t, &sh)?;
    epilogue(&mut a, t, &sh)?;
    for r in 0..rows {
        for j in 0..pairs {
            store_lanes(&mut a, sh.acc(r, j), out_p, t.at(r, j, 8), t.lanes(j, pairs, 8))?;
        }
    }
    super::leaf_end(a)
}

/// A tile's rows and panel pairs; accumulator (row, pair) is `ymm(pairs·row + pair)`.
struct Shape {
    rows: usize,
    pairs: usize,
}

impl Shape {
    fn acc(&self, r: usize, j: usize) -> AsmRegisterYmm {
        [ymm0, ymm1, ymm2, ymm3, ymm4, ymm5, ymm6, ymm7, ymm8, ymm9, ymm10, ymm11][self.pairs * r + j]
    }
}

/// The multiply-adds over `k` steps: per step, the B pairs into ymm12/13,
/// one A broadcast per row into ymm14, `rows × pairs` FMAs.
fn k_loop(a: &mut CodeAssembler, t: &GemmTile, sh: &Shape) -> Result<(), IcedError> {
    let (rows, pairs, acc) = (sh.rows, sh.pairs, |r, j| sh.acc(r, j));
    let (a_p, b_p, n) = (rdi, rsi, r9);
    let bvecs = [(ymm12, xmm12), (ymm13, xmm13)];
    let av = ymm14;
    if let Some(ix) = t.indexed {
        debug_assert_eq!(ix.blocks, 1, "the ymm tile takes one block of a block-sparse B per call");
        return indexed_loop(a, ix.list, n, |a| {
            a.mov(eax, dword_ptr(rsi))?;
            for (j, &(bvec, _)) in bvecs.iter().enumerate().take(pairs) {
                a.vmovups(bvec, ymmword_ptr(INDEXED_B + (32 * j) as i64))?;
            }
            for r in 0..rows {
                a.vbroadcastss(av, dword_ptr(a_p + rax + (r * t.a_row) as i64))?;
                for (j, &(bvec, _)) in bvecs.iter().enumerate().take(pairs) {
                    a.vfmadd231ps(acc(r, j), bvec, av)?;
                }
            }
            Ok(())
        });
    }
    super::counted_loop(a, n, |a| {
        if t.prefetch {
            a.prefetcht0(byte_ptr(a_p + 1024))?;
        }
        for (j, &(bvec, bxmm)) in bvecs.iter().enumerate().take(pairs) {
            if t.group >= 2 {
                a.vmovups(bvec, ymmword_ptr(b_p + t.panel_at(2 * j)))?;
            } else {
                a.vmovups(bxmm, xmmword_ptr(b_p + t.panel_at(2 * j)))?;
                a.vinsertf128(bvec, bvec, xmmword_ptr(b_p + t.panel_at(2 * j + 1)), 1)?;
            }
        }
        for r in 0..rows {
            a.vbroadcastss(av, dword_ptr(a_p + (r * t.a_row) as i64))?;
            for (j, &(bvec, _)) in bvecs.iter().enumerate().take(pairs) {
                a.vfmadd231ps(acc(r, j), bvec, av)?;
            }
        }
        a.add(b_p, t.b_step())?;
        a.add(a_p, t.a_step as i32)
    })
}

/// The B pointer of a block-sparse tile's K loop ([`indexed_loop`]).
pub(crate) const INDEXED_B: AsmRegister64 = r10;

/// A block-sparse tile's K loop ([`GemmTile::indexed`]): `n` kept steps;
/// in each `step`, `rsi` points at the first block's A offset of the step
/// (the 32-bit load into `eax` zero-extends into `rax`) and [`INDEXED_B`]
/// at its 16 B values; block `q`'s are `q · stride` further.
pub(crate) fn indexed_loop(
    a: &mut CodeAssembler,
    list: usize,
    n: AsmRegister64,
    mut step: impl FnMut(&mut CodeAssembler) -> Result<(), IcedError>,
) -> Result<(), IcedError> {
    a.lea(INDEXED_B, qword_ptr(rsi + list as i64))?;
    super::counted_loop(a, n, |a| {
        step(a)?;
        a.add(rsi, 4)?;
        a.add(INDEXED_B, INDEXED_STEP as i32)
    })
}

/// Scale, addend, residual and clamp on the accumulators (ymm12–15 free).
fn epilogue(a: &mut CodeAssembler, t: &GemmTile, sh: &Shape) -> Result<(), IcedError> {
    let (rows, pairs, acc) = (sh.rows, sh.pairs, |r, j| sh.acc(r, j));
    let (bias_p, res_p) = (rcx, r8);
    let (s, adds, x) = (ymm12, ymm13, ymm14);
    let each = |a: &mut CodeAssembler, f: &mut dyn FnMut(&mut CodeAssembler, usize, usize) -> Result<(), IcedError>| {
        (0..rows).flat_map(|r| (0..pairs).map(move |j| (r, j))).try_for_each(|(r, j)| f(a, r, j))
    };
    if let Some(v) = t.epi.scale {
        splat(a, s, v)?;
        each(a, &mut |a, r, j| a.vmulps(acc(r, j), acc(r, j), s))?;
    }
    if let Some(ad) = t.epi.addend {
        if ad.scale != 1.0 {
            splat(a, adds, ad.scale)?;
        }
        each(a, &mut |a, r, j| {
            let p = bias_p + (r * ad.row) as i64;
            if ad.per_column {
                load_lanes(a, x, bias_p, (r * ad.row) as i64 + 32 * j as i64, t.lanes(j, pairs, 8))?;
            } else {
                a.vbroadcastss(x, dword_ptr(p))?;
            }
            if ad.scale != 1.0 {
                a.vmulps(x, x, adds)?;
            }
            a.vaddps(acc(r, j), acc(r, j), x)
        })?;
    }
    if t.epi.residual {
        each(a, &mut |a, r, j| {
            let lanes = t.lanes(j, pairs, 8);
            if lanes == 8 {
                return a.vaddps(acc(r, j), acc(r, j), ymmword_ptr(res_p + t.at(r, j, 8)));
            }
            load_lanes(a, x, res_p, t.at(r, j, 8), lanes)?;
            a.vaddps(acc(r, j), acc(r, j), x)
        })?;
    }
    let accs: Vec<AsmRegisterYmm> = (0..rows).flat_map(|r| (0..pairs).map(move |j| sh.acc(r, j))).collect();
    activation(a, &t.epi, &accs)
}

/// A vector register class the tiles' shared activation code
/// ([`activation`]) runs on: `ymm` here, `zmm` for
/// [`super::avx512::zmm_gemm_tile`].
pub(crate) trait Vreg: Copy {
    /// Four registers free for the activation once the accumulators are
    /// final.
    const SCRATCH: [Self; 4];
    /// `dst = [v; lanes]` (clobbers `eax`; the `ymm` form `xmm15` too).
    fn splat(a: &mut CodeAssembler, dst: Self, v: f32) -> Result<(), IcedError>;
    /// `dst = 0`.
    fn zero(a: &mut CodeAssembler, dst: Self) -> Result<(), IcedError>;
}

impl Vreg for AsmRegisterYmm {
    const SCRATCH: [Self; 4] = [ymm12, ymm13, ymm14, ymm15];
    fn splat(a: &mut CodeAssembler, dst: Self, v: f32) -> Result<(), IcedError> {
        splat(a, dst, v)
    }
    fn zero(a: &mut CodeAssembler, dst: Self) -> Result<(), IcedError> {
        a.vxorps(dst, dst, dst)
    }
}

/// The assembler's arithmetic the activation uses on register class `R`.
pub(crate) trait VecOps<R>:
    CodeAsmVmaxps<R, R, R> + CodeAsmVminps<R, R, R> + CodeAsmVaddps<R, R, R> + CodeAsmVmulps<R, R, R>
{
}

impl<R, T> VecOps<R> for T where
    T: CodeAsmVmaxps<R, R, R> + CodeAsmVminps<R, R, R> + CodeAsmVaddps<R, R, R> + CodeAsmVmulps<R, R, R>
{
}

/// The epilogue's activation on `accs`: its clamp, or HardSwish (the
/// class's [`Vreg::SCRATCH`] free), at either width.
pub(crate) fn activation<R: Vreg>(a: &mut CodeAssembler, epi: &TileEpi, accs: &[R]) -> Result<(), IcedError>
where
    CodeAssembler: VecOps<R>,
{
    let [_, _, x, zero] = R::SCRATCH;
    if let Some(c) = epi.clamp {
        R::splat(a, x, c.lo)?;
        R::zero(a, zero)?;
        for &ac in accs {
            a.vmaxps(ac, x, ac)?;
            if c.lo.to_bits() == 0 {
                a.vaddps(ac, ac, zero)?;
            }
        }
        if let Some(hi) = c.hi {
            R::splat(a, x, hi)?;
            for &ac in accs {
                a.vminps(ac, x, ac)?;
            }
        }
    }
    if epi.hardswish {
        hardswish(a, accs)?;
    }
    Ok(())
}

/// HardSwish on the accumulators: `t = max(acc·sixth + half, 0)` as
/// `vmaxps t, zero, t` and `min(t, 1)` as `vminps t, one, t` (a NaN `t`
/// passes through, as in Cranelift's `fmax`/`fmin`; for other values the
/// same result, `t` is never -0), then `acc·t`. Four free registers hold
/// 1/6, 0.5, 1 and `t`; zero borrows 1/6's register per accumulator.
fn hardswish<R: Vreg>(a: &mut CodeAssembler, accs: &[R]) -> Result<(), IcedError>
where
    CodeAssembler: VecOps<R>,
{
    let [sixth, half, one, t] = R::SCRATCH;
    R::splat(a, half, 0.5)?;
    R::splat(a, one, 1.0)?;
    for &ac in accs {
        R::splat(a, sixth, 1.0 / 6.0)?;
        a.vmulps(t, ac, sixth)?;
        a.vaddps(t, t, half)?;
        R::zero(a, sixth)?;
        a.vmaxps(t, sixth, t)?;
        a.vminps(t, one, t)?;
        a.vmulps(ac, ac, t)?;
    }
    Ok(())
}

/// `dst = [v; 8]` through `eax` and `xmm15` (`dst` may be `ymm15`).
fn splat(a: &mut CodeAssembler, dst: AsmRegisterYmm, v: f32) -> Result<(), IcedError> {
    a.mov(eax, v.to_bits())?;
    a.vmovd(xmm15, eax)?;
    a.vbroadcastss(dst, xmm15)
}

/// The low 128 bits of `y` (`xmmN` of `ymmN`).
pub(crate) fn low_half(y: AsmRegisterYmm) -> AsmRegisterXmm {
    const XMM: [AsmRegisterXmm; 16] =
        [xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14, xmm15];
    XMM[Register::from(y) as usize - Register::YMM0 as usize]
}

/// Loads `lanes` (1..=8) floats at `base + at` into the first lanes of
/// `acc`, zeroing the others: nothing past them is read (`xmm15` is
/// scratch).
fn load_lanes(
    a: &mut CodeAssembler,
    acc: AsmRegisterYmm,
    base: AsmRegister64,
    at: i64,
    lanes: usize,
) -> Result<(), IcedError> {
    let low = low_half(acc);
    if lanes == 8 {
        return a.vmovups(acc, ymmword_ptr(base + at));
    }
    let (part, rest, at) = if lanes >= 4 {
        a.vmovups(low, xmmword_ptr(base + at))?;
        (xmm15, lanes - 4, at + 16)
    } else {
        (low, lanes, at)
    };
    match rest {
        0 => return Ok(()),
        1 => a.vmovss(part, dword_ptr(base + at))?,
        2 => a.vmovsd(part, qword_ptr(base + at))?,
        _ => {
            a.vmovsd(part, qword_ptr(base + at))?;
            a.vinsertps(part, part, dword_ptr(base + (at + 8)), 0x20)?;
        }
    }
    if lanes > 4 {
        a.vinsertf128(acc, acc, xmm15, 1)?;
    }
    Ok(())
}

/// Stores the first `lanes` (1..=8) floats of `acc` at `base + at`
/// (clobbers `acc`).
fn store_lanes(
    a: &mut CodeAssembler,
    acc: AsmRegisterYmm,
    base: AsmRegister64,
    at: i64,
    lanes: usize,
) -> Result<(), IcedError> {
    store_prefix(a, acc, base + at, lanes, Lane::F32)
}

/// What each lane of a store through [`store_prefix`] holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// An f32, stored as it is.
    F32,
    /// An i32 holding a whole number in `0..=255` (no pack saturates),
    /// stored as one byte.
    Byte,
}

/// Stores the first `lanes` (1..=8) lanes of `acc` (as `kind` says) at
/// `dst`, nothing past them; clobbers `acc`. Bytes are packed first
/// (`vpackusdw` + `vpackuswb`: each 128-bit half's four in its low dword);
/// then four lanes from the low half, the high half moved into the low
/// one, and the rest one, two, three or four at a time.
pub(crate) fn store_prefix(
    a: &mut CodeAssembler,
    acc: AsmRegisterYmm,
    dst: AsmMemoryOperand,
    lanes: usize,
    kind: Lane,
) -> Result<(), IcedError> {
    if kind == Lane::F32 && lanes >= 8 {
        return a.vmovups(ymmword_ptr(dst), acc);
    }
    let low = low_half(acc);
    let size = match kind {
        Lane::F32 => 4,
        Lane::Byte => {
            a.vpackusdw(acc, acc, acc)?;
            a.vpackuswb(acc, acc, acc)?;
            1
        }
    };
    let (rest, at) = match (lanes >= 4, kind) {
        (true, Lane::F32) => {
            a.vmovups(xmmword_ptr(dst), low)?;
            a.vextractf128(low, acc, 1)?;
            (lanes - 4, dst + 16)
        }
        (true, Lane::Byte) => {
            a.vmovd(dword_ptr(dst), low)?;
            a.vextracti128(low, acc, 1)?;
            (lanes - 4, dst + 4)
        }
        (false, _) => (lanes, dst),
    };
    match (rest, kind) {
        (0, _) => Ok(()),
        (1, Lane::F32) => a.vmovss(dword_ptr(at), low),
        (1, Lane::Byte) => a.vpextrb(byte_ptr(at), low, 0),
        (2, Lane::F32) => a.vmovlps(qword_ptr(at), low),
        (2, Lane::Byte) => a.vpextrw(word_ptr(at), low, 0),
        (3, Lane::F32) => {
            a.vmovlps(qword_ptr(at), low)?;
            a.vextractps(dword_ptr(at + 2 * size), low, 2)
        }
        (3, Lane::Byte) => {
            a.vpextrw(word_ptr(at), low, 0)?;
            a.vpextrb(byte_ptr(at + 2 * size), low, 2)
        }
        // the high half's four bytes of a whole vector (four f32 lanes
        // never get here: eight return at the top)
        (4, Lane::Byte) => a.vmovd(dword_ptr(at), low),
        _ => unreachable!("store_prefix: {lanes} lanes"),
    }
}

/// Starts of `step`-wide pieces covering `0..len` (`len ≥ step`): the
/// whole steps, then one ending at `len` when `step` does not divide it
/// (it overlaps the one before: rewriting a few elements with the same
/// values).
pub(super) fn steps_to_end(len: usize, step: usize) -> impl Iterator<Item = usize> {
    (0..len / step).map(move |i| i * step).chain((!len.is_multiple_of(step)).then(|| len - step))
}
