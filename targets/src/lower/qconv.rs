//! [`kerf_ir::op::QConv`]: a 2-D convolution in integers, as a GEMM of
//! 16-bit pairs, or of byte quads where the target has AVX-512 VNNI or
//! AArch64's `dotprod`, or AVX2 and weights whose byte pairs cannot
//! saturate `vpmaddubsw`.
//!
//! `out[m, p] = Σ_k w[m, k] · (x[k, p] − x_zp)` with `k` over the window
//! (`C/group · kh · kw`, the weight's row order) and `p` over output
//! pixels. Both operands fit in i16 (`|w| ≤ 128`, `|x − zp| ≤ 255`), so a
//! pair of products fits in i32 and the sum is exact: the kernel multiplies
//! pairs of K steps at once, `pmaddwd` on x86-64 (Cranelift's
//! `iadd_pairwise(imul(swiden_low a, swiden_low b), imul(swiden_high a,
//! swiden_high b))`, DESIGN-NOTES §1), two products per i32 lane.
//!
//! Layout: A (the weights) is packed at compile time per group into blocks
//! of [`ROWS`] output channels, `[block][k pair][row]` of two i16 each, so
//! one 32-bit load and a splat give a row's pair in every lane. B (the
//! input) is packed per task and unit of 8 pixels, `[k pair][pixel][2]`
//! of i16 (32 bytes per K pair, pixel `p` at byte `4p`; `pack.rs`), centred (`x − x_zp`), from the u8
//! input through a compile-time table of tap offsets (the op has no
//! padding, so every tap is in bounds). A tile is `rows × 2` accumulators of
//! 4 i32 lanes (at most 12), over all K pairs; its epilogue converts to f32
//! and applies `· s[m] + b[m] (+ residual)` and the activation in the
//! order the op's contract states, then stores 4 pixels per panel.
//!
//! With VNNI ([`crate::isa::Caps::vnni`]) the K steps are quads instead
//! of pairs and the operands stay bytes: A holds four i8 per row and step,
//! B four raw u8 per pixel and step (`[k quad][pixel][4]`), and the
//! assembled tile (`ukernel::avx512::qdot_tile`) sums `Σ x·w` with
//! `vpdpbusd` on `zmm`, 16 pixels per unit (64 bytes per step, packed as
//! two halves of 8); the epilogue subtracts `zp · Σ_k w[m, k]`
//! (a compile-time i32 per output channel, zero-weight K padding
//! included), which gives the same exact `Σ (x − zp)·w`, so both layouts
//! produce the same bits. The weights take one byte each in the object
//! instead of two. Without VNNI, AVX2's byte tile (`ukernel::avx2::qbyte_tile`)
//! runs the same layout with `vpmaddubsw` + `vpmaddwd` by ones, exact for
//! weights [`kerf_ir::byte_pairs_exact`] accepts (every 7-bit grid), which
//! `byte_quads` checks per weight tensor. On AArch64 with `dotprod`
//! ([`crate::isa::Caps::dotprod`]) the assembled `sdot` tile
//! (`ukernel::neon::sdot_tile`, [`SDOT_ROWS`] channels × 8 pixels, sums
//! only) runs the same layout for every weight: `sdot` takes signed bytes,
//! so the tile sums `Σ (x − 128)·w` and the correction is `(zp − 128) · Σ
//! w` ([`SDOT_INPUT_OFFSET`]); the Cranelift epilogue does the rest.
//!
//! Work split: tasks take `(image, group, unit)` units of 8 pixels (16
//! with VNNI); each packs its own B (task scratch, `pack.rs`) and runs
//! every row block on it. AVX2's byte quads without VNNI take whole units
//! in pairs instead (`pairs.rs`): the wide tile
//! (`ukernel::avx2::qbyte_wide_tile`, [`QBYTE_WIDE_ROWS`] channels × 16
//! pixels) broadcasts each row's weights once for both units.
//!
//! Three other routes come first. A depthwise QConv (one channel per
//! group, the only kind with padding) runs on the depthwise passes
//! (`qdepthwise::conv`: the flat and quad passes, the padded-plane pass,
//! or, padded where none applies, the scalar integer kernel). A one-pixel
//! plane whose window is the whole input (a classifier head, a product's
//! rows) runs on the one-pixel product, output channels in the lanes:
//! VNNI's (`ukernel::avx512::qdot_gemv`), AVX2's
//! (`ukernel::avx2::ymm_gemv`, pairs or byte quads as above) or
//! `dotprod`'s (`ukernel::neon::sdot_gemv`, sums only, then Cranelift's
//! epilogue); `gemv.rs`: several images per call sharing each weight load,
//! chunk-major tasks. And a
//! weight of channel quads on the integer pattern kernel
//! (`qconv_pattern`). The assembled x86 tiles (AVX2's pair and byte
//! tiles, VNNI's) apply the f32 epilogue in their own store for whole
//! units (AVX2's pair tile stored sums for the Cranelift epilogue until
//! 2026-11-26: DS-CNN's requantised 64-channel 1x1 layers on `haswell`,
//! 12.4 → 8.8 µs). A requantised output (`QOut::Quant`) stores u8: those
//! tiles and the one-pixel product requantise in their own store, the
//! Cranelift epilogue ([`finish`]) with `quantize::words` (the quantiser
//! pass's operations, the division by the step a multiplication by
//! `QOut::factor`, so the reference's bytes).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, SigRef, Value};
use kerf_ir::op::{QConv, QOut};
use kerf_ir::{weights_byte_pairs_exact, DType, Op};

use super::epilogue::{Act, Epilogue};
use super::gemm_wide::act_epi;
use super::{Kernel, LResult};
use crate::isa::Caps;
use crate::ukernel::avx2::{QdotEpi, QBYTE_WIDE_ROWS, QDOT_ROWS};
use crate::ukernel::epi::TileEpi;
use crate::ukernel::neon::{MULL_ROWS, SDOT_INPUT_OFFSET, SDOT_ROWS};

mod chunks;
mod gemv;
mod k_loop;
mod listed;
use listed::KOrder;
mod pack;
mod pairs;
mod store;
mod tiles;
use gemv::{gemv, gemv_fits};
use k_loop::{k_loop, k_loop_scalar};
use pack::pack_b;
pub(super) use pack::shuffle_mask;
use store::{finish, res_bytes, Store};
use tiles::Assembled;

/// Output channels per register tile (× 2 panels = 12 accumulators).
const ROWS: usize = 6;

/// Static sizes of one QConv.
#[derive(Clone, Copy)]
struct Dims {
    /// Input channels, height, width (per image).
    c: usize,
    h: usize,
    w: usize,
    /// Output channels per group, groups, input channels per group.
    mg: usize,
    groups: usize,
    cg: usize,
    /// Output width and pixels per image.
    ow: usize,
    pixels: usize,
    /// K steps (`ceil(cg·kh·kw / per_step)`): pairs of i16, or quads of bytes.
    steps: usize,
    /// Byte quads (4 K values per step) for the VNNI tile, the `sdot`
    /// tile or the AVX2 byte tile, instead of i16 pairs (2).
    quads: bool,
    /// Strides.
    sh: usize,
    sw: usize,
    /// Pixels per unit of work and register tile: 8 (two 4-pixel panels,
    /// or one `ymm`), or 16 for the VNNI tile on `zmm`.
    px: usize,
    /// Units per image (`px` pixels each, the last possibly partial).
    units: usize,
    /// The input grid's zero point.
    zp: u8,
    /// Output channels per register tile: [`ROWS`], 12 for the assembled
    /// AVX2 tile, [`QDOT_ROWS`] for the byte tiles (AVX2's, and VNNI's
    /// with one vector of `px` pixels per row), [`SDOT_ROWS`] for
    /// AArch64's `sdot` tile, [`MULL_ROWS`] for its `smull` tile.
    rows: usize,
    /// Whole units run in pairs on AVX2's wide byte tile ([`pairs`]);
    /// `rows` is then its [`QBYTE_WIDE_ROWS`].
    paired: bool,
    /// With block-sparse weights ([`listed`]): the K steps each row block
    /// of [`listed::rows`] lists (padded to the longest list).
    listed: Option<usize>,
    /// What the byte tile adds to every input byte before multiplying (0,
    /// or [`SDOT_INPUT_OFFSET`] for AArch64's signed bytes): the zero-point
    /// correction is `(zp − offset) · Σ w`.
    x_offset: i64,
}

impl Dims {
    /// K values per packed step.
    fn per_step(&self) -> usize {
        if self.quads {
            4
        } else {
            2
        }
    }
    /// Bytes of one packed K step of B: `px` pixels × 4 (an i16 pair or a
    /// byte quad each).
    fn step_bytes(&self) -> usize {
        4 * self.px
    }
    /// K steps of A per row block: the listed ones, or every one.
    fn a_steps(&self) -> usize {
        self.listed.unwrap_or(self.steps)
    }
    /// Bytes of A per K step of a block of `rows` output channels: a quad
    /// or pair per row, after the step's B offset when listed.
    fn a_step_bytes(&self, rows: usize) -> usize {
        4 * rows + if self.listed.is_some() { 4 } else { 0 }
    }
}

impl Dims {
    /// The sizes of `k`'s QConv `q`, on byte quads or 16-bit pairs.
    fn new(k: &Kernel, q: &QConv, quads: bool) -> Dims {
        let (xs, ws, os) = (k.in_shape(0), k.in_shape(1), k.out_shape(0));
        let wd = &q.conv.window;
        let pixels = os[2] * os[3];
        // the VNNI tile runs on zmm (VNNI here implies AVX-512F + VL)
        let px = if k.caps.vnni { 16 } else { 8 };
        Dims {
            c: xs[1],
            h: xs[2],
            w: xs[3],
            mg: ws[0] / q.conv.group,
            groups: q.conv.group,
            cg: ws[1],
            ow: os[3],
            pixels,
            steps: (ws[1] * ws[2] * ws[3]).div_ceil(if quads { 4 } else { 2 }),
            quads,
            sh: wd.strides[0],
            sw: wd.strides[1],
            px,
            units: pixels.div_ceil(px),
            zp: q.x_zp,
            rows: if quads && k.caps.dotprod {
                SDOT_ROWS
            } else if quads && k.caps.neon {
                MULL_ROWS
            } else if quads {
                QDOT_ROWS
            } else if k.caps.avx2 {
                12
            } else if k.lanes() == 4 {
                ROWS
            } else {
                2
            },
            x_offset: if quads && k.caps.neon { SDOT_INPUT_OFFSET } else { 0 },
            paired: false,
            listed: None,
        }
    }
}

/// Whether every scale and bias of an integer epilogue is finite
/// ([`TileEpi::finite`]).
pub(super) fn finite(scales: &[f32], bias: &[f32]) -> bool {
    scales.iter().chain(bias).all(|v| v.is_finite())
}

/// The assembled integer kernels' epilogue for `act` (and a residual):
/// [`act_epi`]'s, with [`TileEpi::finite`] from the per-channel `scales`
/// and `bias`; `None` for an activation they do not apply.
pub(super) fn int_epi(act: Act, residual: bool, (scales, bias): (&[f32], &[f32])) -> Option<TileEpi> {
    act_epi(act, residual).map(|e| TileEpi { finite: finite(scales, bias), ..e })
}

/// The requantising epilogue's grid `(factor, zp)` ([`QOut::grid`]), if
/// the output is u8.
fn out_grid(out: QOut) -> LResult<Option<(f32, u8)>> {
    match out {
        QOut::Quant { scale, .. } => out.grid().map(Some).ok_or_else(|| format!("QConv: output step {}", scale.get())),
        _ => Ok(None),
    }
}

/// Lowers a [`QConv`] node.
pub fn qconv(k: &mut Kernel) -> LResult {
    let Op::QConv(q) = &k.node.op else {
        return Err("internal: qconv lowering on another op".into());
    };
    let q = q.clone();
    if k.in_dtype(0) != DType::U8 || k.in_dtype(1) != DType::I8 {
        return Err("QConv needs a u8 input and i8 weights".into());
    }
    let ws = k.in_shape(1).to_vec();
    let wd = &q.conv.window;
    let kk = ws[1] * ws[2] * ws[3];
    let w_t = k.node.inputs.get(1).and_then(|&v| k.g.const_of(v)).ok_or("QConv needs constant weights")?;
    let quads = byte_quads(k.caps, w_t);
    let w = w_t.to_f64_vec();
    let d = Dims::new(k, &q, quads);
    // the accumulating form has no scales or bias: its epilogue stores the sums
    let (w_scale, bias) = match (q.out, k.const_f32(2), k.const_f32(3)) {
        (QOut::Acc, ..) => (vec![0.0; ws[0]], vec![0.0; ws[0]]),
        (o, Some(s), Some(b)) if o.is_real() => (s, b),
        _ => return Err("QConv needs a constant weight scale and bias".into()),
    };
    let quant = out_grid(q.out)?;
    let act = Act::of(q.epi.act)?;
    let scales: Vec<f32> = w_scale.iter().map(|&s| q.x_scale.get() * s).collect();
    // a pointwise conv with listed quads: the byte tiles beat the pattern
    // kernel's one-tap rows (`listed`); a KxK conv's patterns stay the
    // pattern kernel's where it takes them
    let pointwise = wd.kernel.iter().all(|&k| k == 1) && wd.pads.iter().all(|&p| p == 0);
    let listed = pointwise && listed::plan(k, &d, &w, kk, 1).is_some();
    if let Some((quads, epi)) = super::qconv_pattern::applies(k, &q, w_t, act).filter(|_| !listed) {
        return super::qconv_pattern::conv(k, &q, (&quads, epi, quant), &w, (&scales, &bias));
    }
    // depthwise: one input and one output channel per group
    if q.conv.is_depthwise(&ws) && q.out.is_real() {
        let g = super::conv_geo::geometry(k, wd, q.conv.group)?;
        let residual = if q.epi.residual { Some(k.input(4)) } else { None };
        let codes: Vec<f32> = w.iter().map(|&c| c as f32).collect();
        let dw = super::qdepthwise::QDepthwise { codes: &codes, scale: &scales, bias: &bias, zp: q.x_zp, quant };
        let padded = wd.pads.iter().any(|&p| p != 0);
        if let Some(done) = super::qdepthwise::conv(k, &g, &dw, Epilogue { act, residual }, padded) {
            return done;
        }
    }
    if wd.pads.iter().any(|&p| p != 0) {
        return Err("internal: only a depthwise QConv has padding".into());
    }

    let window = (kk, wd.kernel[0], wd.kernel[1]);
    let res_grid = q.res_grid.map(|g| (g.scale.get(), g.zp));
    // the one-pixel product adds an f32 residual only
    if let Some(g) = gemv_fits(k, &d, window, act, q.epi.residual).filter(|_| q.out.is_real() && res_grid.is_none()) {
        return gemv(k, &d, g, (&w, kk), (&scales, &bias), quant);
    }
    gemm(k, &q, d, (&w, kk), (&scales, &bias), (act, quant, res_grid))
}

/// A u8 grid `(factor or step, zero point)`, if the value is on one: the
/// output's ([`QOut::grid`]) or the residual's ([`QConv::res_grid`]).
type U8Grid = Option<(f32, u8)>;

/// The GEMM route of [`qconv`] (no padding, not the one-pixel product):
/// per task and unit (or pair of units), B packed, then every row block on
/// the assembled tiles or the Cranelift ones.
fn gemm(
    k: &mut Kernel,
    q: &QConv,
    d: Dims,
    (w, kk): (&[f64], usize),
    (scales, bias): (&[f32], &[f32]),
    (act, quant, res_grid): (Act, U8Grid, U8Grid),
) -> LResult {
    let wd = &q.conv.window;
    // the assembled tiles' own epilogue (AVX2's pair and byte tiles, VNNI's):
    // full units of the real-valued form, for the activations the shared
    // tile code applies
    let out_bytes = if quant.is_some() { 1 } else { 4 };
    let fused = match (k.caps.avx2, q.out.is_real()) {
        (true, true) => {
            let ldo = out_bytes * d.pixels;
            int_epi(act, q.epi.residual, (scales, bias)).map(|epi| QdotEpi { epi, ldo, quant, res_grid })
        }
        _ => None,
    };
    // block-sparse weights on the byte tiles: the listed K quads only
    let (d, a_blob, order) = match listed::plan(k, &d, w, kk, wd.kernel[0] * wd.kernel[1]) {
        Some((order, kept, bytes)) => (Dims { rows: listed::rows(k, !d.quads), listed: Some(kept), ..d }, bytes, order),
        None => {
            // AVX2's byte quads without VNNI: whole units in pairs, on the wide tile
            let d = match pairs::applies(k.caps, &d, fused.is_some(), k.in_shape(0)[0] * d.groups) {
                true => Dims { rows: QBYTE_WIDE_ROWS, paired: true, ..d },
                false => d,
            };
            (d, pack_weights(&d, w, kk), KOrder::Channel)
        }
    };
    let taps = tap_offsets(&d, (wd.kernel[0], wd.kernel[1]), (wd.dilations[0], wd.dilations[1]), order);
    let x = k.input(0);
    let out = k.output(0);
    let res = if q.epi.residual { Some(k.input(4)) } else { None };
    let a = k.blob(a_blob);
    let tap = k.blob(taps.iter().flat_map(|t| t.to_le_bytes()).collect());
    let s_p = k.blob_f32(scales);
    let b_p = k.blob_f32(bias);

    // work items per image and group: units, or pairs of them
    let (per, unit_px) = match d.paired {
        true => (pairs::items(&d), 2 * d.px),
        false => (d.units, d.px),
    };
    let cost = (unit_px * d.per_step() * d.a_steps() * d.mg) as u64; // pixels × K (kept) × rows
    let (lo, hi) = k.parallel_range(k.in_shape(0)[0] * d.groups * per, 1, cost)?;
    // units per chunk sharing each row block's weights (1 for a pair's two)
    let span = chunks::span(&d);
    let bbuf = k.task_scratch(d.steps * d.step_bytes() * span.max(unit_px / d.px));
    let tail = d.pixels - d.px * (d.units - 1);
    // `zp · Σ_k w[m, k]`, once: the fused tile's table and the sums-only
    // tiles' correction (none for pairs, which hold `x − zp`)
    let zp_terms = if d.quads { zero_point_terms(&d, w, kk) } else { vec![0; 4 * d.groups * d.mg] };
    let table = fused.map(|_| k.blob(epilogue_table(&zp_terms, scales, bias)));
    // the sums-only tiles' correction: where some unit has no fused epilogue
    let sums_only = fused.is_none() || tail != d.px;
    let corr = if d.quads && sums_only { Some(k.blob(zp_terms)) } else { None };
    let tiles = match k.caps.avx2 || (d.quads && k.caps.neon) {
        true => Some(Assembled::new(k, &d, fused.as_ref(), tail, span > 1, &taps)?),
        false => None,
    };
    let wide = match (d.paired, &fused) {
        (true, Some(e)) => Some(pairs::Wide::new(k, &d, e)?),
        _ => None,
    };
    let acc = q.out == QOut::Acc;
    let ptrs = Ptrs { x, out, res, res_grid, a, tap, s: s_p, b: b_p, corr, table, bbuf, tiles, wide, acc, quant };
    match span {
        1 => run_items(k, &d, act, &ptrs, (lo, hi), per, tail),
        _ => chunks::run(k, &d, act, &ptrs, (lo, hi), span, tail),
    }
}

/// Work items `lo..hi` of [`gemm`]: `per` per image and group (units, or
/// pairs of them), the last unit of an image `tail` pixels.
fn run_items(
    k: &mut Kernel,
    d: &Dims,
    act: Act,
    ptrs: &Ptrs,
    (lo, hi): (Value, Value),
    per: usize,
    tail: usize,
) -> LResult {
    let mut result: LResult = Ok(());
    k.for_dyn(lo, hi, 1, |k, u| {
        let jp = k.b.ins().urem_imm_u(u, per as i64);
        let ng = k.b.ins().udiv_imm_u(u, per as i64);
        let (gi, ni) = (k.b.ins().urem_imm_u(ng, d.groups as i64), k.b.ins().udiv_imm_u(ng, d.groups as i64));
        let unit = Unit { jp, gi, ni, packed: ptrs.bbuf };
        result = match d.paired {
            // `jp` counts pairs here
            true => pairs::item(k, d, act, ptrs, &unit, tail),
            false => by_unit(k, d, &unit, tail, |k, valid| unit_body(k, d, act, ptrs, &unit, valid)),
        };
    });
    result
}

/// The kernel's pointer parameters.
struct Ptrs {
    x: Value,
    out: Value,
    res: Option<Value>,
    /// The residual is u8 on this grid (`scale`, `zp`; [`QConv::res_grid`]).
    res_grid: Option<(f32, u8)>,
    a: Value,
    tap: Value,
    s: Value,
    b: Value,
    /// With byte quads: `(zp − offset) · Σ_k w[m, k]` per output channel
    /// (i32; [`Dims::x_offset`]).
    corr: Option<Value>,
    /// With the assembled tiles' own epilogue: `(corr, scale, bias)` per
    /// output channel (i32, f32, f32; `corr` zero for 16-bit pairs).
    table: Option<Value>,
    bbuf: Value,
    /// With AVX2, or byte quads on AArch64: the assembled tiles.
    tiles: Option<Assembled>,
    /// With [`Dims::paired`]: the wide tiles.
    wide: Option<pairs::Wide>,
    /// Store the i32 sums themselves ([`QOut::Acc`]).
    acc: bool,
    /// Store u8 through this grid (`factor`, `zp`; [`QOut::grid`]).
    quant: Option<(f32, u8)>,
}

/// One unit of work: pixels `px·jp..` of group `gi` of image `ni` (I64
/// values), its B packed at `packed` ([`Ptrs::bbuf`], or further on in it for a
/// chunk's later units).
struct Unit {
    jp: Value,
    gi: Value,
    ni: Value,
    packed: Value,
}

/// Whether the K steps are byte quads: with VNNI or on AArch64 always
/// (`vpdpbusd`, `sdot`, `smull`/`sadalp` sum byte products without
/// saturation); with AVX2 where the weights'
/// byte pairs cannot saturate `vpmaddubsw`'s i16 ([`weights_byte_pairs_exact`]:
/// every 7-bit grid, `--weight-bits 7`); otherwise 16-bit pairs.
fn byte_quads(caps: Caps, w: &kerf_ir::Tensor) -> bool {
    caps.vnni || caps.neon || (caps.avx2 && weights_byte_pairs_exact(w))
}

/// Byte offset in the input of each K value (`ci, ky, kx` in the weight's
/// row order, or `ky, kx, ci` tap-major: [`KOrder`]) from a pixel's
/// top-left tap; K padded to whole steps repeats the last value (its
/// weight is zero).
fn tap_offsets(d: &Dims, (kh, kw): (usize, usize), (dh, dw): (usize, usize), order: KOrder) -> Vec<i32> {
    let mut t = Vec::with_capacity(d.per_step() * d.steps);
    let at = |ci: usize, ky: usize, kx: usize| (ci * d.h * d.w + ky * dh * d.w + kx * dw) as i32;
    match order {
        KOrder::Channel => {
            for ci in 0..d.cg {
                for (ky, kx) in (0..kh).flat_map(|ky| (0..kw).map(move |kx| (ky, kx))) {
                    t.push(at(ci, ky, kx));
                }
            }
        }
        KOrder::Tap => {
            for (ky, kx) in (0..kh).flat_map(|ky| (0..kw).map(move |kx| (ky, kx))) {
                t.extend((0..d.cg).map(|ci| at(ci, ky, kx)));
            }
        }
    }
    while t.len() < d.per_step() * d.steps {
        t.push(t.last().copied().unwrap_or(0));
    }
    t
}

/// A: per group, per block of `d.rows` output channels (the last block may
/// be shorter), per K step, 4 bytes per row: the `(w[m, 2t], w[m, 2t + 1])`
/// i16 pair, or the quad `w[m, 4t..4t + 4]` of i8.
fn pack_weights(d: &Dims, w: &[f64], kk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(d.groups * d.mg * d.steps * 4);
    let at = |m: usize, k: usize| if k < kk { w[m * kk + k] as i16 } else { 0 };
    let per = d.per_step();
    for g in 0..d.groups {
        for r0 in (0..d.mg).step_by(d.rows) {
            let rows = d.rows.min(d.mg - r0);
            for t in 0..d.steps {
                for r in 0..rows {
                    let m = g * d.mg + r0 + r;
                    for j in per * t..per * (t + 1) {
                        match d.quads {
                            // the grid is −128..=127: one byte, two's complement
                            true => out.push(at(m, j).to_le_bytes()[0]),
                            false => out.extend_from_slice(&at(m, j).to_le_bytes()),
                        }
                    }
                }
            }
        }
    }
    out
}

/// The VNNI epilogue's table: per output channel its `zp · Σ_k w[m, k]`
/// (i32), `x_scale · w_scale[m]` and bias (f32), 12 bytes.
pub(super) fn epilogue_table(corr: &[u8], scales: &[f32], bias: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 * scales.len());
    for (m, (s, b)) in scales.iter().zip(bias).enumerate() {
        out.extend_from_slice(&corr[4 * m..4 * m + 4]);
        out.extend_from_slice(&s.to_le_bytes());
        out.extend_from_slice(&b.to_le_bytes());
    }
    out
}

/// Per output channel, `(zp − offset) · Σ_k w[m, k]` as i32 (offset
/// [`Dims::x_offset`]): what the byte tiles' sums `Σ (x − offset)·w`
/// carry beyond `Σ (x − zp)·w`.
fn zero_point_terms(d: &Dims, w: &[f64], kk: usize) -> Vec<u8> {
    zero_point_sums(d, w, kk).into_iter().flat_map(i32::to_le_bytes).collect()
}

/// [`zero_point_terms`] as numbers, one per output channel.
fn zero_point_sums(d: &Dims, w: &[f64], kk: usize) -> Vec<i32> {
    let zp = i64::from(d.zp) - d.x_offset;
    w.chunks(kk.max(1))
        .map(|row| {
            let sum: i64 = row.iter().map(|&v| v as i64).sum();
            // |Σ w| ≤ 128·K and |zp − offset| ≤ 255, so the product fits
            // i32 for any K the i32 sums allow
            (zp * sum) as i32
        })
        .collect()
}

/// `body(k, valid)` for unit `u`'s pixels: `d.px`, or `tail` in an
/// image's last unit (a branch where the two differ).
fn by_unit(
    k: &mut Kernel,
    d: &Dims,
    u: &Unit,
    tail: usize,
    mut body: impl FnMut(&mut Kernel, usize) -> LResult,
) -> LResult {
    if tail == d.px {
        return body(k, d.px);
    }
    let last = k.b.ins().icmp_imm_s(IntCC::Equal, u.jp, (d.units - 1) as i64);
    let not_last = k.b.ins().icmp_imm_s(IntCC::NotEqual, u.jp, (d.units - 1) as i64);
    let mut r = Ok(());
    k.if_then(last, |k| r = body(k, tail));
    k.if_then(not_last, |k| r = r.clone().and(body(k, d.px)));
    r
}

/// Packs the unit's B panels, then runs every row block; `valid` pixels of
/// the unit are stored (`d.px`, or fewer in an image's last unit).
fn unit_body(k: &mut Kernel, d: &Dims, act: Act, p: &Ptrs, u: &Unit, valid: usize) -> LResult {
    let xb = unit_input(k, d, p, u);
    pack_b(k, d, p, u, xb, valid, u.packed);
    row_blocks(k, d, p, u, |k, a_blk, m0, rows| tile(k, d, act, p, u, a_blk, m0, rows, valid))
}

/// The input of unit `u`'s image and group.
fn unit_input(k: &mut Kernel, d: &Dims, p: &Ptrs, u: &Unit) -> Value {
    let xb = k.addr(p.x, u.ni, (d.c * d.h * d.w) as i64);
    k.addr(xb, u.gi, (d.cg * d.h * d.w) as i64)
}

/// `each(k, a_blk, m0, rows)` for every block of `d.rows` output channels
/// of unit `u`'s group (the last block possibly shorter): its packed
/// weights and first channel.
fn row_blocks(
    k: &mut Kernel,
    d: &Dims,
    p: &Ptrs,
    u: &Unit,
    mut each: impl FnMut(&mut Kernel, Value, Value, usize) -> LResult,
) -> LResult {
    let m_base = k.b.ins().imul_imm_s(u.gi, d.mg as i64);
    let full = d.mg / d.rows;
    let rest = d.mg % d.rows;
    let block_bytes = (d.a_steps() * d.a_step_bytes(d.rows)) as i64;
    let rest_bytes = if rest > 0 { d.a_steps() * d.a_step_bytes(rest) } else { 0 };
    let a_group = k.addr(p.a, u.gi, full as i64 * block_bytes + rest_bytes as i64);
    let mut result: LResult = Ok(());
    k.for_n(0, full as i64, 1, |k, blk| {
        let a_blk = k.addr(a_group, blk, block_bytes);
        let m0 = k.b.ins().imul_imm_s(blk, d.rows as i64);
        let m0 = k.b.ins().iadd(m_base, m0);
        result = result.clone().and(each(k, a_blk, m0, d.rows));
    });
    if rest > 0 {
        let a_blk = k.add_c(a_group, full as i64 * block_bytes);
        let m0 = k.b.ins().iadd_imm_s(m_base, (full * d.rows) as i64);
        result = result.and(each(k, a_blk, m0, rest));
    }
    result
}

/// Calls a tile with its own epilogue (`code`, signature `sig`, reading B
/// at [`Unit::packed`]) on the block of output channels from `m0` and unit
/// `u`'s pixels: it stores the f32 (or requantised u8) results itself.
/// `more`: arguments past the tile's six (the riding tail's sums).
#[allow(clippy::too_many_arguments)]
fn call_fused(
    k: &mut Kernel,
    d: &Dims,
    p: &Ptrs,
    u: &Unit,
    (code, sig): (Value, SigRef),
    table: Value,
    (a_blk, m0): (Value, Value),
    more: &[Value],
) {
    let e = out_index(k, d, u, m0);
    let out = k.addr(p.out, e, if p.quant.is_some() { 1 } else { 4 });
    let res = p.res.map_or(out, |r| k.addr(r, e, res_bytes(p.res_grid)));
    let tab = k.addr(table, m0, 12);
    let n = k.ic(d.a_steps() as i64);
    let mut args = vec![a_blk, u.packed, out, n, tab, res];
    args.extend_from_slice(more);
    k.b.ins().call_indirect(sig, code, &args);
}

/// One register tile: `rows` output channels from `m0` × the unit's
/// pixels, over every K step, then the epilogue and the stores.
#[allow(clippy::too_many_arguments)]
fn tile(
    k: &mut Kernel,
    d: &Dims,
    act: Act,
    p: &Ptrs,
    u: &Unit,
    a_blk: Value,
    m0: Value,
    rows: usize,
    valid: usize,
) -> LResult {
    let which = usize::from(rows != d.rows);
    let fused = p.tiles.as_ref().and_then(|t| Some((t.fused[which]?, t)));
    if let (Some((code, t)), Some(table), true) = (fused, p.table, valid == d.px) {
        call_fused(k, d, p, u, (code, t.sig), table, (a_blk, m0), &[]);
        return Ok(());
    }
    // the tail products for a last unit of few pixels, else the sums-only tile
    let asm = p.tiles.as_ref().and_then(|t| {
        let tail = t.tail[which].zip(t.index).filter(|_| valid < d.px);
        match tail {
            Some((code, index)) => Some((code, Some(index), t)),
            None => Some((t.code[which]?, None, t)),
        }
    });
    let accs = match asm {
        Some((code, index, t)) => {
            let n = k.ic(d.a_steps() as i64);
            let mut args = vec![a_blk, u.packed, t.sums, n];
            match index {
                // the same sums for the unit's few pixels, channels in the lanes
                Some(index) => args.extend([index, t.sums]),
                // the sums-only tiles read neither table nor residual
                None => args.extend([t.sums, t.sums]),
            }
            k.b.ins().call_indirect(t.sig, code, &args);
            tile_sums(k, d, p, t, m0, rows)
        }
        // no AVX2, or the tile did not assemble: the Cranelift tile
        None if k.lanes() == 4 => k_loop(k, d, u.packed, a_blk, rows),
        None => k_loop_scalar(k, d, u.packed, a_blk, rows),
    };
    epilogue(k, d, act, p, u, (m0, rows), valid, &accs)
}

/// The sums a sums-only tile (or the tail products) left in
/// [`Assembled::sums`] for `rows` channels from `m0`, made exact
/// `Σ (x − zp)·w` ([`centre`]) where the tiles sum raw bytes.
fn tile_sums(k: &mut Kernel, d: &Dims, p: &Ptrs, t: &Assembled, m0: Value, rows: usize) -> Vec<Value> {
    let sums = (0..rows * d.px / 4).map(|i| k.ld(types::I32X4, t.sums, (16 * i) as i32)).collect();
    match p.corr {
        Some(corr) => centre(k, corr, m0, sums, d.px / 4),
        None => sums,
    }
}

/// The Cranelift epilogue of a tile's sums `accs` (`rows × px / lanes`
/// vectors, row-major) for the channels from `m0` and unit `u`'s first
/// `valid` pixels: `· s + b`, the residual, the activation and the store
/// ([`finish`]), or the sums themselves ([`QOut::Acc`]).
#[allow(clippy::too_many_arguments)]
fn epilogue(
    k: &mut Kernel,
    d: &Dims,
    act: Act,
    p: &Ptrs,
    u: &Unit,
    (m0, rows): (Value, usize),
    valid: usize,
    accs: &[Value],
) -> LResult {
    let lanes = k.lanes();
    let (ty, per_row) = (if lanes == 4 { types::F32X4 } else { types::F32 }, d.px / lanes);
    if p.acc {
        store_sums(k, d, p, u, m0, rows, valid, accs);
        return Ok(());
    }
    let ob = if p.quant.is_some() { 1 } else { 4 };
    for r in 0..rows {
        let m = k.b.ins().iadd_imm_s(m0, r as i64);
        let s = k.ld_at(types::F32, p.s, m, 4, 0);
        let s = k.widen(ty, s);
        let bias = k.ld_at(types::F32, p.b, m, 4, 0);
        let bias = k.widen(ty, bias);
        let e = out_index(k, d, u, m);
        let res = p.res.map(|r| k.addr(r, e, res_bytes(p.res_grid)));
        let st = Store { out: k.addr(p.out, e, ob), res, res_grid: p.res_grid, quant: p.quant };
        for j in 0..per_row {
            let n = valid.saturating_sub(lanes * j).min(lanes);
            if n == 0 {
                continue;
            }
            let f = k.b.ins().fcvt_from_sint(ty, accs[per_row * r + j]);
            let f = k.b.ins().fmul(f, s);
            let f = k.b.ins().fadd(f, bias);
            finish(k, act, &st, f, n, lanes * j)?;
        }
    }
    Ok(())
}

/// `Σ (x − offset)·w − (zp − offset)·Σ w` per row: the byte tiles' sums (`rows ×
/// per_row` i32x4, row-major) made the exact `Σ (x − zp)·w` of the other
/// tiles.
fn centre(k: &mut Kernel, corr: Value, m0: Value, sums: Vec<Value>, per_row: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(sums.len());
    for (r, row) in sums.chunks(per_row).enumerate() {
        let m = k.b.ins().iadd_imm_s(m0, r as i64);
        let c = k.ld_at(types::I32, corr, m, 4, 0);
        let c = k.b.ins().splat(types::I32X4, c);
        out.extend(row.iter().map(|&v| k.b.ins().isub(v, c)));
    }
    out
}

/// The element index of `out[n, m, px·jp]`: where output channel `m`'s
/// pixels of the unit start.
fn out_index(k: &mut Kernel, d: &Dims, u: &Unit, m: Value) -> Value {
    let nm = k.b.ins().imul_imm_s(u.ni, (d.groups * d.mg) as i64);
    let nm = k.b.ins().iadd(nm, m);
    let row = k.b.ins().imul_imm_s(nm, d.pixels as i64);
    let pix = k.b.ins().imul_imm_s(u.jp, d.px as i64);
    k.b.ins().iadd(row, pix)
}

/// [`QOut::Acc`]'s epilogue: the tile's i32 sums stored as they are, lane
/// by lane for the image's last partial vector.
#[allow(clippy::too_many_arguments)]
fn store_sums(k: &mut Kernel, d: &Dims, p: &Ptrs, u: &Unit, m0: Value, rows: usize, valid: usize, accs: &[Value]) {
    let lanes = k.lanes();
    let per_row = d.px / lanes;
    for r in 0..rows {
        let m = k.b.ins().iadd_imm_s(m0, r as i64);
        let e = out_index(k, d, u, m);
        for j in 0..per_row {
            let n = valid.saturating_sub(lanes * j).min(lanes);
            let off = (4 * lanes * j) as i32;
            let v = accs[per_row * r + j];
            if n == lanes {
                k.st_at(v, p.out, e, 4, off);
            } else {
                for l in 0..n {
                    let x = k.b.ins().extractlane(v, l as u8);
                    k.st_at(x, p.out, e, 4, off + 4 * l as i32);
                }
            }
        }
    }
}
