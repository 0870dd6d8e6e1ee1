//! AVX-512 micro-kernels (EVEX encodings: 32 vector registers, masks,
//! embedded broadcasts, the VNNI dot products).
//!
//! [`zmm_gemm_tile`]: the GEMM engines' f32 tile at 512 bits where the
//! target has AVX-512F + VL ([`crate::isa::Caps::avx512`]). On cores with
//! two 512-bit FMA ports (Intel Xeon: 64 f32 FLOP/cycle, twice the `ymm`
//! peak) it doubles what the AVX2 tile can reach; on cores that split a
//! `zmm` FMA into two halves (AMD Zen 4) the peak is the same and the tile
//! saves instructions and registers.
//!
//! [`qdot_tile`]: the integer tile of [`crate::lower::qconv`] where the
//! target has AVX-512 VNNI with AVX-512VL ([`crate::isa::Caps::vnni`]).
//! `vpdpbusd` multiplies four u8 input bytes by four s8 weight bytes and
//! adds the four products to an i32 lane, without saturation (u8 × s8
//! products and sums of four fit i32 with room to spare), so each
//! instruction does 64 multiply-adds of a `zmm` where the AVX2 tile's
//! `vpmaddwd` + `vpaddd` do 16 in two. It runs on `zmm`, 16 pixels per
//! row: the dense conv's units widen with it.
//!
//! Every kernel is assembled with `prefer_vex` off: `vpdpbusd` also has a
//! VEX form (AVX-VNNI) that CPUs with only AVX-512 VNNI (Zen 4, Ice Lake)
//! do not decode. The leaf ABI of [`crate::ukernel`] holds (`ymm16`–`ymm31`
//! are caller-saved under System V like the rest).

use iced_x86::code_asm::*;

mod byte_pool;
mod depthwise;
mod dw_flat;
mod masks;
mod pad;
mod quad_pack;
pub use byte_pool::{byte_pool_rows, BytePoolRows, BYTE_POOL_MAX_OUT};
pub use depthwise::{dw_quad, DwQuad, DW_QUAD_CORR, DW_QUAD_MAX_KH, DW_QUAD_TABLE};
pub use dw_flat::dw_flat;
pub use pad::{pad_planes, PadPlanes, PAD_MAX_ROW};
pub use quad_pack::{quad_pack_vbmi, quad_pack_windows, WindowPlan, WindowStep};

use super::avx2::{
    activation, int_tile, int_tile_then, int_to_real_lanes, GemmTile, Init, IntVreg, QdotEpi, QdotGemv, Vreg,
};
use super::KSteps;

/// Machine code of the VNNI integer tile: `rows` (1..=[`super::avx2::QDOT_ROWS`]: B in
/// `zmm12`, the epilogue's scratch `zmm28`–`zmm31`; sixteen rows, whole
/// blocks for a CNN's 64, 128, … channels, measured no faster on
/// resnet18's convs, Intel Xeon, 2026-11-25: 0.52 ms either way on its 56²
/// layers)
/// output channels × 16 pixels (one `zmm` per row) of i32 sums `Σ x·w`
/// over `k` K quads, with the arguments (System V order) `a` (the rows'
/// weight quads, `4·rows` bytes per K quad: four s8 per row), `b` (the
/// pixels' u8 quads per K quad, 64 bytes), `out`, `k` (K quads, ≥ 0),
/// `table` and `residual` (read only with an epilogue). Per K quad
/// ([`int_tile`]'s frame): one B load, then per row one `vpdpbusd` with
/// the row's quad broadcast from memory (`{1to16}`). Without `epi` the
/// sums are stored as they are (`rows × 16` i32, row-major); with it, the
/// f32 results go to `out` (rows `ldo` bytes apart). With
/// [`KSteps::Listed`], `k` counts the listed steps and each leads its
/// weights with its B offset.
pub fn qdot_tile(rows: usize, epi: Option<&QdotEpi>, steps: KSteps) -> Result<Vec<u8>, IcedError> {
    let setup = |a: &mut CodeAssembler| {
        a.set_prefer_vex(false);
        Ok(())
    };
    let quad = |r: usize| dword_bcst(rdi + (4 * r) as i64);
    int_tile::<AsmRegisterZmm>(rows, (epi, steps), setup, |a, r, ac| a.vpdpbusd(ac, zmm12, quad(r)))
}

/// The dwords `0, 1, …, 15` in `dst` (`rax` and `tmp`, the low 128 bits
/// of `dst` or another register, clobbered): the lane numbers the
/// assembled kernels build scatter and permute indices from.
fn lane_indices(a: &mut CodeAssembler, dst: AsmRegisterZmm, tmp: AsmRegisterXmm) -> Result<(), IcedError> {
    a.mov(rax, 0x0706_0504_0302_0100u64)?;
    a.vmovq(tmp, rax)?;
    a.mov(rax, 0x0f0e_0d0c_0b0a_0908u64)?;
    a.vpinsrq(tmp, tmp, rax, 1)?;
    a.vpmovzxbd(dst, tmp)
}

/// The tail's accumulators in [`qdot_tile_tail`]: registers the tile and
/// its epilogue leave alone.
const RIDE_ACC: [AsmRegisterZmm; QDOT_TAIL_PIXELS] = [zmm16, zmm17, zmm18, zmm19, zmm20, zmm21, zmm22, zmm23];

/// Machine code of [`qdot_tile`] with its own epilogue and a plane's short
/// last unit riding along: the unit's `rows` × 16 results as
/// [`qdot_tile`] stores them, and the next unit's first `tail`
/// (1..=[`QDOT_TAIL_PIXELS`]) pixels' sums as [`qdot_tail`] leaves them
/// (`rows × 16` i32, row-major, at a seventh argument: the stack's first
/// word). That unit's B, compacted to its pixels (`4·tail` bytes per K
/// quad), follows this one's (`64·k` bytes on: a chunk's consecutive
/// units, `lower::qconv::chunks`). Per K quad, after the tile's rows: the
/// rows' weights in one masked load (the lines the broadcasts just read)
/// and per tail pixel a broadcast and one `vpdpbusd`. Alone, the tail
/// products stream a block's weights from L2 a second time for a pixel
/// or four.
pub fn qdot_tile_tail(rows: usize, epi: &QdotEpi, tail: usize) -> Result<Vec<u8>, IcedError> {
    let rows = rows.clamp(1, super::avx2::QDOT_ROWS);
    let tail = tail.clamp(1, QDOT_TAIL_PIXELS);
    let acc = &RIDE_ACC[..tail];
    let (w, x, idx) = (zmm13, [zmm14, zmm15], zmm13);
    let (tail_b, sums) = (r10, r11);
    let setup = |a: &mut CodeAssembler| {
        a.set_prefer_vex(false);
        a.mov(tail_b, rcx)?;
        a.shl(tail_b, 6)?;
        a.add(tail_b, rsi)?;
        a.mov(sums, qword_ptr(rsp + 8))?;
        a.mov(eax, (1u32 << rows) - 1)?;
        a.kmovw(k1, eax)?;
        for &r in acc {
            a.vpxord(r, r, r)?;
        }
        Ok(())
    };
    let row = |a: &mut CodeAssembler, r: usize, ac: AsmRegisterZmm| {
        a.vpdpbusd(ac, zmm12, dword_bcst(rdi + (4 * r) as i64))?;
        if r + 1 < rows {
            return Ok(());
        }
        a.vmovdqu32(w.k1().z(), zmmword_ptr(rdi))?;
        for (p, &t) in acc.iter().enumerate() {
            a.vpbroadcastd(x[p % 2], dword_ptr(tail_b + (4 * p) as i64))?;
            a.vpdpbusd(t, x[p % 2], w)?;
        }
        a.add(tail_b, (4 * tail) as i32)
    };
    let after = |a: &mut CodeAssembler| {
        // row r's sums 16·r dwords on: the scatter's index
        lane_indices(a, idx, xmm13)?;
        a.vpslld(idx, idx, 4)?;
        for (p, &t) in acc.iter().enumerate() {
            // a scatter clears its mask as it goes
            a.kmovw(k2, k1)?;
            a.vpscatterdd(dword_ptr(sums + idx * 4 + (4 * p) as i64).k2(), t)?;
            a.vpxord(t, t, t)?;
        }
        Ok(())
    };
    int_tile_then::<AsmRegisterZmm>(rows, (Some(epi), KSteps::Dense), setup, row, after)
}

/// Accumulators of the one-pixel product (`zmm0`–`zmm23`): `images ·
/// blocks` at most.
pub const GEMV_ACCS: usize = 24;

/// Most images per call of the one-pixel product (their broadcasts live in
/// `zmm24`–`zmm27` through the K loop).
pub const GEMV_IMAGES_MAX: usize = 4;

const GEMV_REGS: [AsmRegisterZmm; GEMV_ACCS] = [
    zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14, zmm15, zmm16, zmm17,
    zmm18, zmm19, zmm20, zmm21, zmm22, zmm23,
];

/// Machine code of the VNNI one-pixel product: `y[m] = Σ_k x[k]·w[m, k]`
/// for `16·blocks` output channels of one pixel (a classifier head, a
/// 1x1 conv on a 1x1 plane, a product's row) in each of `images` images,
/// the `QConv` tile with the roles turned: the channels are the vector
/// lanes, so no lane is wasted on absent pixels.
/// Arguments (System V order): `w` (per K quad, the blocks' 16 channels ×
/// four s8 weights: `64·blocks` bytes), `x` (the first image's u8 quads),
/// `out`, `k` (K quads, ≥ 0), `table` (per block three vectors of 16: the
/// i32 `zp·Σ_k w[m, k]`, the f32 scale and the f32 bias) and `residual`
/// (f32, per channel; read only with `epi.residual`). Per K quad: each
/// image's quad broadcast to every lane (`vpbroadcastd`, the u8 operand),
/// then per block one load of its weights (the s8 operand) and one
/// `vpdpbusd` per image. Then per image and block
/// `f32(acc − corr) · scale + bias (+ residual)`, the activation and the
/// store of 16 f32 (or u8 through `quant`), the last block's through the
/// mask `k1`: `QConv`'s epilogue operations in their order, so the
/// reference's bits. With [`KSteps::Listed`] (block-sparse weights) `k`
/// counts listed steps, `x` stays put, and each step of `w` starts with a
/// 64-byte header of the blocks' `u32` byte offsets into the input (each
/// block its own quads, each broadcast per block), then the weights.
/// An error where `blocks` or `images` is out of range.
pub fn qdot_gemv(g: &QdotGemv) -> Result<Vec<u8>, String> {
    let (blocks, images) = (g.blocks, g.images);
    let fits = (1..=super::avx2::QDOT_ROWS).contains(&blocks) && (1..=GEMV_IMAGES_MAX).contains(&images);
    // (the listed header holds at most 16 offsets)
    if !fits || images * blocks > GEMV_ACCS {
        return Err(format!("one-pixel product: {blocks} blocks of {images} images"));
    }
    gemv_code(g).map_err(|e| e.to_string())
}

fn gemv_code(g: &QdotGemv) -> Result<Vec<u8>, IcedError> {
    let (w_p, x_p, out_p, n, table, res) = (rdi, rsi, rdx, rcx, r8, r9);
    let (blocks, images) = (g.blocks, g.images);
    let acc = &GEMV_REGS[..images * blocks];
    let at = |i: usize, j: usize| acc[i * blocks + j];
    let bcast = [zmm24, zmm25, zmm26, zmm27];
    let (wr, x) = ([zmm28, zmm29], zmm24);
    let mut a = CodeAssembler::new(64)?;
    a.set_prefer_vex(false);
    for &r in acc {
        a.vpxord(r, r, r)?;
    }
    let listed = g.steps == KSteps::Listed;
    // listed: the step's 64-byte header of block offsets comes first
    let head = if listed { 64 } else { 0 };
    super::counted_loop(&mut a, n, |a| {
        for j in 0..blocks {
            if listed {
                super::avx2::listed_quads(a, j, &bcast[..images], g.x_stride)?;
            } else if j == 0 {
                for (i, &b) in bcast.iter().enumerate().take(images) {
                    a.vpbroadcastd(b, dword_ptr(x_p + (i * g.x_stride) as i64))?;
                }
            }
            let m = zmmword_ptr(w_p + (head + 64 * j) as i64);
            match images {
                1 => a.vpdpbusd(at(0, j), bcast[0], m)?,
                _ => {
                    a.vmovdqu32(wr[j % 2], m)?;
                    for (i, &b) in bcast.iter().enumerate().take(images) {
                        a.vpdpbusd(at(i, j), b, wr[j % 2])?;
                    }
                }
            }
        }
        if !listed {
            a.add(x_p, 4)?;
        }
        a.add(w_p, (head + 64 * blocks) as i32)
    })?;
    for i in 0..images {
        for j in 0..blocks {
            int_to_real_lanes(&mut a, at(i, j), (table, (192 * j) as i64))?;
        }
    }
    let lanes = g.last_lanes.clamp(1, 16);
    let partial = |j: usize| lanes < 16 && j == blocks - 1;
    if lanes < 16 {
        a.mov(eax, (1u32 << lanes) - 1)?;
        a.kmovw(k1, eax)?;
    }
    for (i, j) in (0..images).flat_map(|i| (0..blocks).map(move |j| (i, j))).filter(|_| g.epi.residual) {
        let m = res + (4 * (i * g.out_stride + 16 * j)) as i64;
        match partial(j) {
            true => a.vmovups(x.k1().z(), zmmword_ptr(m))?,
            false => a.vmovups(x, zmmword_ptr(m))?,
        }
        a.vaddps(at(i, j), at(i, j), x)?;
    }
    let el = if g.quant.is_some() { 1 } else { 4 };
    match g.quant {
        Some(grid) => super::avx2::requantise(&mut a, &g.epi, acc, grid, false)?,
        None => activation(&mut a, &g.epi, acc)?,
    }
    for i in 0..images {
        for j in 0..blocks {
            let m = out_p + (el * (i * g.out_stride + 16 * j)) as i64;
            match (g.quant.is_some(), partial(j)) {
                (true, true) => a.vpmovdb(xmmword_ptr(m).k1(), at(i, j))?,
                (true, false) => a.vpmovdb(xmmword_ptr(m), at(i, j))?,
                (false, true) => a.vmovups(zmmword_ptr(m).k1(), at(i, j))?,
                (false, false) => a.vmovups(zmmword_ptr(m), at(i, j))?,
            }
        }
    }
    for r in GEMV_REGS[16..].iter().chain(&bcast).chain(&AsmRegisterZmm::SCRATCH) {
        a.vpxord(*r, *r, *r)?;
    }
    super::leaf_end(a)
}

/// Most pixels [`qdot_tail`] takes: past 8 the unit tile's 12 products
/// per K quad cost no more than the tail's one per pixel.
pub const QDOT_TAIL_PIXELS: usize = 8;

/// Independent sums a tail keeps in flight: `vpdpbusd` has a latency of
/// 4–5 cycles and a throughput of one `zmm` per cycle (Zen 4, Ice Lake),
/// so a pixel's one accumulator would leave the unit idle most cycles.
const TAIL_CHAINS: usize = 6;

/// Machine code of the VNNI tail product: the sums of [`qdot_tile`]'s
/// sums-only form (`rows × 16` i32, row-major, at `out`) for only the
/// first `pixels` (1..=[`QDOT_TAIL_PIXELS`]) of a unit, with the roles
/// turned as in [`qdot_gemv`]: the tile's `rows` (1..=[`super::avx2::QDOT_ROWS`])
/// output channels are the lanes. The arguments are the tile's: `a` (per
/// K quad the rows' four s8 each, `4·rows` bytes), `b` (the unit's B
/// compacted to its `pixels`: `4·pixels` bytes per K quad, pixel `p`'s
/// quad at `4p`), `out`, `k` (K quads, ≥ 0), then `index` (16 i32
/// `16·r`, the row offsets of the stores) in the place of the table.
/// Per K quad: the rows' weights in one masked load (lanes past `rows`
/// zero), per pixel its quad broadcast and one `vpdpbusd`. Few pixels
/// split their sums over ⌈[`TAIL_CHAINS`]` / pixels`⌉ accumulators each,
/// at most `12 / pixels` (consecutive K quads in turn, added at the end: integer sums, the same
/// result), so the products do not wait on one another. Then per pixel
/// one scatter of its `rows` sums into the tile's layout. A 7x7 plane's
/// last unit of 16 has one pixel: the unit tile spends 16 products on it,
/// this one. Compacted, B stays in L1: read at the tile's 64 bytes per
/// quad, 4 of them used, B and A streamed from L2 at 112 bytes per quad
/// bounded the product (resnet18's 512-channel 7x7 convs, Zen 4, 0.05 ms
/// of the tail's 0.56 ms conv).
pub fn qdot_tail(rows: usize, pixels: usize) -> Result<Vec<u8>, IcedError> {
    let (a_p, b_p, out_p, n, index) = (rdi, rsi, rdx, rcx, r8);
    let rows = rows.clamp(1, super::avx2::QDOT_ROWS);
    let pixels = pixels.clamp(1, QDOT_TAIL_PIXELS);
    let all = <AsmRegisterZmm as IntVreg>::ACC;
    let chains = TAIL_CHAINS.div_ceil(pixels).min(all.len() / pixels).max(1);
    let acc = &all[..pixels * chains];
    let (w, idx) = ([zmm12, zmm15], zmm15);
    let x = [zmm13, zmm14];
    let mut a = CodeAssembler::new(64)?;
    a.set_prefer_vex(false);
    a.mov(eax, (1u32 << rows) - 1)?;
    a.kmovw(k1, eax)?;
    for &r in acc {
        a.vpxord(r, r, r)?;
    }
    // K quad `j` of a step group of `chains` into chain `j`'s sums
    let quad = |a: &mut CodeAssembler, j: usize| -> Result<(), IcedError> {
        let wr = w[j % 2];
        a.vmovdqu32(wr.k1().z(), zmmword_ptr(a_p + (4 * rows * j) as i64))?;
        for p in 0..pixels {
            let xr = x[(j * pixels + p) % 2];
            a.vpbroadcastd(xr, dword_ptr(b_p + (4 * (pixels * j + p)) as i64))?;
            a.vpdpbusd(acc[j * pixels + p], xr, wr)?;
        }
        Ok(())
    };
    let (mut rest, mut top) = (a.create_label(), a.create_label());
    a.cmp(n, chains as i32)?;
    a.jb(rest)?;
    a.set_label(&mut top)?;
    for j in 0..chains {
        quad(&mut a, j)?;
    }
    a.add(a_p, (4 * rows * chains) as i32)?;
    a.add(b_p, (4 * pixels * chains) as i32)?;
    a.sub(n, chains as i32)?;
    a.cmp(n, chains as i32)?;
    a.jae(top)?;
    // the last `k mod chains` quads one at a time (`counted_loop` skips none)
    a.set_label(&mut rest)?;
    super::counted_loop(&mut a, n, |a| {
        quad(a, 0)?;
        a.add(a_p, (4 * rows) as i32)?;
        a.add(b_p, (4 * pixels) as i32)
    })?;
    for j in 1..chains {
        for p in 0..pixels {
            a.vpaddd(acc[p], acc[p], acc[j * pixels + p])?;
        }
    }
    a.vmovdqu32(idx, zmmword_ptr(index))?;
    for (p, &ac) in acc.iter().take(pixels).enumerate() {
        // a scatter clears its mask as it goes
        a.kmovw(k2, k1)?;
        a.vpscatterdd(dword_ptr(out_p + idx * 4 + (4 * p) as i64).k2(), ac)?;
    }
    super::leaf_end(a)
}

impl IntVreg for AsmRegisterZmm {
    const ACC: &'static [Self] = &[zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11];
    const B: Self = zmm12;
    const UPPER: &'static [Self] = &Self::SCRATCH;
    const LANES: usize = 16;
    fn ptr(at: AsmMemoryOperand) -> AsmMemoryOperand {
        zmmword_ptr(at)
    }
    fn round(a: &mut CodeAssembler, acc: Self) -> Result<(), IcedError> {
        a.vrndscaleps(acc, acc, 0)
    }
    fn store_bytes(a: &mut CodeAssembler, acc: Self, dst: AsmMemoryOperand) -> Result<(), IcedError> {
        a.vpmovdb(xmmword_ptr(dst), acc)
    }
    fn load_bytes(a: &mut CodeAssembler, dst: Self, src: AsmMemoryOperand) -> Result<(), IcedError> {
        a.vpmovzxbd(dst, xmmword_ptr(src))
    }
}

/// Most blocks of a block-sparse B one `zmm` tile takes
/// ([`super::avx2::Indexed::blocks`]: their B quads in `zmm24`–`zmm27`).
pub const INDEXED_BLOCKS: usize = 4;

/// Most rows of a `zmm` GEMM tile (either width): the conv engine's row
/// block ([`crate::lower::gemm::MR`]); 12 × 2 accumulators leave `zmm24`–
/// `zmm31` to the B vectors, the broadcasts and the epilogue.
pub fn zmm_max_rows() -> usize {
    12
}

/// Machine code of the 512-bit GEMM tile: the contract of
/// [`super::avx2::gemm_tile`] (same arguments, same [`GemmTile`]
/// description, the same FMA chain per output over K in order and the
/// same epilogue operations, so the same bits) on `zmm` vectors of 16
/// columns, a quad of 4-column panels each, on B stored in groups of four
/// (`t.group` 4: one `zmm` load per quad and K step). Rows
/// 1..=[`zmm_max_rows`], `t.vecs` 1 or 2 quads. A partial last quad
/// (`t.last_lanes` < 16) reads and writes its valid columns through the
/// mask `k1`, nothing past them.
///
/// Per K step: the quads into `zmm24`/`zmm25`, then per row, with two
/// quads, one A broadcast (`zmm26`–`zmm29` in turn) and its two FMAs (12 ×
/// 2 issues 24 FMAs against 14 loads, bound by the two 512-bit FMA ports),
/// with one quad its FMA taking A's broadcast from memory (`{1to16}`): a
/// separate `vbroadcastss zmm, m32` per FMA holds Zen 4 to 75% of its FMA
/// peak (measured in isolation, L1-resident: 16 cycles per 12 FMAs instead
/// of 12; the two-quad tile runs at peak either way).
pub fn zmm_gemm_tile(t: &GemmTile) -> Result<Vec<u8>, IcedError> {
    debug_assert_eq!(t.group, 4, "the zmm tile reads B in groups of four panels");
    // a block-sparse B: one quad of columns per block
    let (vecs, max_rows) = match t.indexed {
        Some(ix) => {
            let blocks = ix.blocks.clamp(1, INDEXED_BLOCKS);
            let rows = (ZMM.len() / blocks).min(zmm_max_rows());
            debug_assert!(
                ix.blocks == blocks && t.rows <= rows,
                "block-sparse zmm tile: {} rows of {} blocks",
                t.rows,
                ix.blocks
            );
            (blocks, rows)
        }
        None => (t.vecs.clamp(1, 2), zmm_max_rows()),
    };
    let sh = ZmmShape { rows: t.rows.clamp(1, max_rows), vecs };
    let lanes = t.last_lanes.clamp(1, 16);
    let out_p = rdx;
    let mut a = CodeAssembler::new(64)?;
    a.set_prefer_vex(false);
    if lanes < 16 {
        a.mov(eax, (1u32 << lanes) - 1)?;
        a.kmovw(k1, eax)?;
    }
    for r in 0..sh.rows {
        for j in 0..sh.vecs {
            let acc = sh.acc(r, j);
            match t.init {
                Init::Zero => a.vpxord(acc, acc, acc)?,
                Init::RowBias if j == 0 => a.vbroadcastss(acc, dword_ptr(rcx + (4 * r) as i64))?,
                Init::RowBias => a.vmovaps(acc, sh.acc(r, 0))?,
                Init::Partial => load(&mut a, acc, out_p + t.at(r, j, 16), sh.partial(j, lanes))?,
            }
        }
    }
    zmm_k_loop(&mut a, t, &sh)?;
    zmm_epilogue(&mut a, t, &sh, lanes)?;
    for r in 0..sh.rows {
        for j in 0..sh.vecs {
            let at = out_p + t.at(r, j, 16);
            match sh.partial(j, lanes) {
                true => a.vmovups(zmmword_ptr(at).k1(), sh.acc(r, j))?,
                false => a.vmovups(zmmword_ptr(at), sh.acc(r, j))?,
            }
        }
    }
    // the upper registers hold no state past the call
    let upper = [zmm24, zmm25, zmm26, zmm27, zmm28, zmm29, zmm30, zmm31];
    for z in ZMM[16..].iter().chain(&upper) {
        a.vpxord(*z, *z, *z)?;
    }
    super::leaf_end(a)
}

/// A `zmm` tile's rows and quads; accumulator (row, quad) is
/// `zmm(vecs·row + quad)`.
struct ZmmShape {
    rows: usize,
    vecs: usize,
}

impl ZmmShape {
    fn acc(&self, r: usize, j: usize) -> AsmRegisterZmm {
        ZMM[self.vecs * r + j]
    }
    /// Whether quad `j` is the partial last one (masked by `k1`).
    fn partial(&self, j: usize, lanes: usize) -> bool {
        j + 1 == self.vecs && lanes < 16
    }
    fn each(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.rows).flat_map(move |r| (0..self.vecs).map(move |j| (r, j)))
    }
}

const ZMM: [AsmRegisterZmm; 24] = [
    zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14, zmm15, zmm16, zmm17,
    zmm18, zmm19, zmm20, zmm21, zmm22, zmm23,
];

/// `dst = [base]`, all 16 lanes, or (`masked`) the `k1` lanes with the
/// others zeroed.
fn load(a: &mut CodeAssembler, dst: AsmRegisterZmm, at: AsmMemoryOperand, masked: bool) -> Result<(), IcedError> {
    match masked {
        true => a.vmovups(dst.k1().z(), zmmword_ptr(at)),
        false => a.vmovups(dst, zmmword_ptr(at)),
    }
}

/// The multiply-adds over `k` (`r9`) steps.
fn zmm_k_loop(a: &mut CodeAssembler, t: &GemmTile, sh: &ZmmShape) -> Result<(), IcedError> {
    let (a_p, b_p, n) = (rdi, rsi, r9);
    let bvecs = [zmm24, zmm25];
    let bcast = [zmm26, zmm27, zmm28, zmm29];
    if let Some(ix) = t.indexed {
        // per block of 16 columns: its offset, its quad, then per row an
        // FMA with A's broadcast inside
        let bregs = [zmm24, zmm25, zmm26, zmm27];
        return super::avx2::indexed_loop(a, ix.list, n, |a| {
            for (q, &bq) in bregs.iter().enumerate().take(sh.vecs) {
                let at = (q * ix.stride) as i64;
                a.mov(eax, dword_ptr(b_p + at))?;
                a.vmovups(bq, zmmword_ptr(super::avx2::INDEXED_B + at))?;
                for r in 0..sh.rows {
                    a.vfmadd231ps(sh.acc(r, q), bq, dword_bcst(a_p + rax + (r * t.a_row) as i64))?;
                }
            }
            Ok(())
        });
    }
    super::counted_loop(a, n, |a| {
        if t.prefetch {
            a.prefetcht0(byte_ptr(a_p + 1024))?;
        }
        for (j, &bv) in bvecs.iter().enumerate().take(sh.vecs) {
            a.vmovups(bv, zmmword_ptr(b_p + t.panel_at(4 * j)))?;
        }
        for r in 0..sh.rows {
            let ar = a_p + (r * t.a_row) as i64;
            if sh.vecs == 1 {
                // the broadcast inside the FMA: a separate `vbroadcastss
                // zmm, m32` per FMA holds Zen 4 to 75% of its FMA peak
                a.vfmadd231ps(sh.acc(r, 0), bvecs[0], dword_bcst(ar))?;
                continue;
            }
            let av = bcast[r % bcast.len()];
            a.vbroadcastss(av, dword_ptr(ar))?;
            for (j, &bv) in bvecs.iter().enumerate().take(sh.vecs) {
                a.vfmadd231ps(sh.acc(r, j), bv, av)?;
            }
        }
        a.add(b_p, t.b_step())?;
        a.add(a_p, t.a_step as i32)
    })
}

impl Vreg for AsmRegisterZmm {
    const SCRATCH: [Self; 4] = [zmm28, zmm29, zmm30, zmm31];
    /// `dst = [v; 16]` through `eax`.
    fn splat(a: &mut CodeAssembler, dst: Self, v: f32) -> Result<(), IcedError> {
        a.mov(eax, v.to_bits())?;
        a.vpbroadcastd(dst, eax)
    }
    fn zero(a: &mut CodeAssembler, dst: Self) -> Result<(), IcedError> {
        a.vpxord(dst, dst, dst)
    }
}

/// Scale, addend, residual and activation on the accumulators, the
/// operations and order of [`super::avx2::gemm_tile`]'s epilogue
/// (`zmm24`–`zmm31` free), the activation [`super::avx2::activation`]'s.
fn zmm_epilogue(a: &mut CodeAssembler, t: &GemmTile, sh: &ZmmShape, lanes: usize) -> Result<(), IcedError> {
    let (bias_p, res_p) = (rcx, r8);
    let (s, adds, x) = (zmm24, zmm25, zmm26);
    if let Some(v) = t.epi.scale {
        Vreg::splat(a, s, v)?;
        for (r, j) in sh.each() {
            a.vmulps(sh.acc(r, j), sh.acc(r, j), s)?;
        }
    }
    if let Some(ad) = t.epi.addend {
        if ad.scale != 1.0 {
            Vreg::splat(a, adds, ad.scale)?;
        }
        for (r, j) in sh.each() {
            let at = (r * ad.row) as i64;
            match ad.per_column {
                true => load(a, x, bias_p + (at + 64 * j as i64), sh.partial(j, lanes))?,
                false => a.vbroadcastss(x, dword_ptr(bias_p + at))?,
            }
            if ad.scale != 1.0 {
                a.vmulps(x, x, adds)?;
            }
            a.vaddps(sh.acc(r, j), sh.acc(r, j), x)?;
        }
    }
    if t.epi.residual {
        for (r, j) in sh.each() {
            load(a, x, res_p + t.at(r, j, 16), sh.partial(j, lanes))?;
            a.vaddps(sh.acc(r, j), sh.acc(r, j), x)?;
        }
    }
    let accs: Vec<AsmRegisterZmm> = sh.each().map(|(r, j)| sh.acc(r, j)).collect();
    activation(a, &t.epi, &accs)
}
