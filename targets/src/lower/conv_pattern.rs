//! Pattern-sparse direct convolution (PatDNN's compiler half): a conv whose
//! constant weight has a pattern layout ([`kerf_ir::Sparsity::detect`]:
//! every kernel keeps the taps of one of a few masks, or is removed) runs
//! only its kept taps, with no index decoding and no zero MACs.
//!
//! Order: per output pixel, the bias, then block by block of input
//! channels ([`channel_block`]), mask by mask, the block's kept kernels of
//! that mask in channel order, tap by tap: one fused multiply-add each.
//! Both pass forms perform exactly that sequence ([`program_order`]), so
//! they give the same bits. The register tiles group a block's kernels by
//! tap count instead of by mask (one loop per group: fewer mispredicted
//! loop exits), so their sums round differently; tests hold them to the
//! reference.
//!
//! Compact storage, built at compile time: per (output channel, channel
//! block, mask or tap count), the kept kernels' offsets into the padded
//! image and their kept weights (`f32`, one per tap). Removed kernels have
//! no entry at all, and no zero weight is stored.
//!
//! Three forms:
//! - **128-bit passes** ([`conv_passes`], every ISA; stride 1, output
//!   planes of 64 pixels and more): the input is copied into a zero-padded
//!   scratch image (so no tap is bounds-checked); each output plane starts
//!   as the bias, then one loop per mask runs over that mask's kept
//!   kernels, and each kernel (its kept weights broadcast once into
//!   registers) is applied to the whole plane: per output vector one load,
//!   one FMA per kept tap at the tap's constant offset (the
//!   pattern-specialised inner loop: no index decoding, no zero MACs), one
//!   store.
//! - **AVX2 passes** (`ukernel::avx2::pattern_pass`, planes of
//!   [`TILE_PLANE`] pixels and more): the same passes assembled, 8 pixels
//!   per `ymm`, two kept kernels of a mask per pass.
//! - **AVX2 register tiles** ([`conv_tiles`], smaller planes and stride
//!   2): the loops turn inside out. The output plane is cut into tiles of
//!   up to 12 `ymm` accumulators (rows × 8-pixel vectors, [`schedule`]);
//!   an assembled tile (`ukernel::avx2::pattern_tile`) holds one output
//!   channel's tile in registers while the kept kernels of one channel
//!   block add their taps, reading the block's *program* (per tap count:
//!   a count, then per kernel each tap's offset into the padded image and
//!   its weight: the only index decoding, one scalar load per tap), and
//!   stores it once. Tiles are the outer loop, then channel
//!   blocks, then output channels, so a block's input band stays in cache
//!   while every output channel reads it. Stride 2 reads a phase-split
//!   image ([`Phases`]), so consecutive output pixels still read
//!   consecutive floats.
//!
//! The epilogue runs as a second pass.
//!
//! Threads split the output channels ([`Kernel::parallel_range`]); each
//! task pads the image into its own scratch copy (a small fraction of its
//! work), and computes its channels exactly as a serial run does.

use cranelift_codegen::ir::{types, ConstantData, Endianness, InstBuilder, MemFlagsData, Value};

use super::conv_geo::{pad_input, Geo};
use super::{Family, Kernel, LResult};
use crate::ukernel::avx2::{pattern_pass, pattern_tile, PatternPass, PatternTile};

/// Whether the pattern kernel computes this conv: one group; for the
/// 128-bit passes stride 1 and an output plane of at least 64 pixels
/// (below that a pass per kernel costs more than the dense kernels' work;
/// see [`kerf_ir::Sparsity::pattern_beats_winograd`]); for the register
/// tiles (`wide`) any plane, stride 1 or 2.
pub(super) fn fits(gm: &Geo, wide: bool) -> bool {
    let stride = (gm.sh, gm.sw);
    gm.group == 1 && (stride == (1, 1) && (wide || gm.oh * gm.ow >= 64) || wide && stride == (2, 2))
}

/// Output planes below this many pixels run on the register tiles with
/// AVX2 (above it the assembled passes measured as fast or faster: at 22%
/// of the weights kept, AMD EPYC Zen 3, 1 thread, 64 channels on 56x56
/// 1.21 ms passes vs 1.19–1.38 ms tiles, 128 on 28x28 1.12 vs 1.23–1.37;
/// 256 on 14x14 2.43 vs 1.21, 512 on 7x7 2.7 (dense) vs 1.08).
const TILE_PLANE: usize = 512;

/// Output vectors per step along a row (independent FMA chains; 2 measured
/// fastest of 1, 2, 4 and 8 on a 64-channel 56x56 layer).
const BLOCK: usize = 2;

/// The compile-time tables of one layer.
struct Tables {
    /// `[oc][channel block][mask]`: (kernel count, first offset index,
    /// first weight index).
    header: Vec<[i64; 3]>,
    /// Byte offset of each kept kernel's input channel in the padded image.
    offsets: Vec<i64>,
    /// The kept weights, per kernel in tap order.
    weights: Vec<f32>,
}

fn tables(gm: &Geo, w: &[f32], patterns: &[u32], assignment: &[Option<u8>], plane_bytes: i64) -> Tables {
    let area = gm.kh * gm.kw;
    let mut t = Tables { header: Vec::new(), offsets: Vec::new(), weights: Vec::new() };
    for (o, cb, p, mask) in program_order(gm, patterns) {
        let (start_o, start_w) = (t.offsets.len() as i64, t.weights.len() as i64);
        for c in cb.filter(|&c| assignment[o * gm.c + c] == Some(p as u8)) {
            t.offsets.push(c as i64 * plane_bytes);
            let kernel = &w[(o * gm.c + c) * area..(o * gm.c + c + 1) * area];
            t.weights.extend((0..area).filter(|tap| mask & (1 << tap) != 0).map(|tap| kernel[tap]));
        }
        t.header.push([t.offsets.len() as i64 - start_o, start_o, start_w]);
    }
    t
}

/// Input channels per block (the passes use the same blocks, so that
/// both pass forms share one order): the register tiles take the kept kernels of
/// one block of input channels per call, so that the block's band of
/// input rows under a tile (about 64 KB: in L2, mostly in L1) stays close
/// while every output channel reads it. Measured on 22%-kept layers (AMD
/// EPYC Zen 3, 1 thread): a 12 KB band 1.3–2.0x slower than 48–96 KB
/// (more calls with shorter FMA chains), one block for all channels up to
/// 10% slower (its band falls out of L2 on 512-channel layers); with
/// stride 2, 16–256 KB bands 1.05–1.7x slower than 64 KB. Both kernels use the same blocks: the order of the
/// fused multiply-adds, and so the bits, is theirs together.
fn channel_block(gm: &Geo) -> usize {
    let (sch, s) = (schedule(gm.oh, gm.ow), gm.sh.max(1));
    // per channel: the tile's rows of every phase plane ([`Phases`])
    let rows = sch.rows + (gm.kh - 1) * gm.dh / s;
    let row_bytes = ((8 * sch.vecs + (gm.kw - 1) * gm.dw / s) * 4).next_multiple_of(64) + 64;
    (64 * 1024 / (s * s * rows * row_bytes)).clamp(8, gm.c.max(8))
}

/// The order every kept tap is applied in, per output pixel: output
/// channel, then block of input channels ([`channel_block`]), then mask,
/// then the block's channels holding that mask, in order:
/// `(output channel, the block's channels, mask index, mask)`.
fn program_order<'a>(
    gm: &'a Geo,
    patterns: &'a [u32],
) -> impl Iterator<Item = (usize, std::ops::Range<usize>, usize, u32)> + 'a {
    let cb = channel_block(gm);
    (0..gm.oc).flat_map(move |o| {
        (0..gm.c)
            .step_by(cb)
            .flat_map(move |c0| patterns.iter().enumerate().map(move |(p, &m)| (o, c0..(c0 + cb).min(gm.c), p, m)))
    })
}

/// Emits the pattern conv (no epilogue: `conv` runs it as a second pass).
pub(super) fn conv(
    k: &mut Kernel,
    gm: &Geo,
    w: &[f32],
    bias: &[f32],
    patterns: &[u32],
    assignment: &[Option<u8>],
) -> LResult {
    if k.caps.avx2 && (gm.oh * gm.ow < TILE_PLANE || gm.sh > 1) {
        return conv_tiles(k, gm, w, bias, patterns, assignment);
    }
    conv_passes(k, gm, w, bias, patterns, assignment)
}

/// The 128-bit passes: one pass over the output plane per kept kernel.
fn conv_passes(
    k: &mut Kernel,
    gm: &Geo,
    w: &[f32],
    bias: &[f32],
    patterns: &[u32],
    assignment: &[Option<u8>],
) -> LResult {
    let l = k.lanes();
    let vty = k.vty();
    let g = *gm;
    // padded image: rows of `wpd` with slack for the last vector's lanes
    let hp = (g.h + g.ph).max((g.oh - 1) + (g.kh - 1) * g.dh + 1);
    let wpd = (g.w + g.pw).max(g.ow.div_ceil(l) * l - 1 + (g.kw - 1) * g.dw + 1);
    let plane = (hp * wpd * 4) as i64;
    let t = tables(gm, w, patterns, assignment, plane);
    let as_bytes = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let header: Vec<i64> = t.header.iter().flatten().copied().collect();
    let hdr = k.blob(as_bytes(&header));
    let offs = k.blob(as_bytes(&t.offsets));
    let wts = k.blob_f32(&t.weights);
    let bp = k.blob_f32(bias);
    let img = g.c * hp * wpd;
    // per output channel: every kept tap over the batch's planes
    let cost = 2 * (g.n * g.oh * g.ow * t.weights.len()).div_ceil(g.oc.max(1)) as u64;
    let cap = (super::gemm::TASK_SCRATCH_BUDGET / (img * 4).max(1)).max(2);
    let (lo, hi) = k.parallel_range_capped(g.oc, 1, cost, cap)?;
    let pad_img = k.task_scratch(img * 4);
    let xp = k.input(0);
    let out = k.output(0);
    // per mask: the taps' byte offsets from a pixel's top-left corner
    let taps: Vec<Vec<i32>> = patterns
        .iter()
        .map(|&m| {
            (0..g.kh * g.kw)
                .filter(|tap| m & (1 << tap) != 0)
                .map(|tap| (((tap / g.kw) * g.dh * wpd + (tap % g.kw) * g.dw) * 4) as i32)
                .collect()
        })
        .collect();
    let ow = g.ow;
    // with AVX2, assembled passes cover the whole plane
    // (`ukernel::avx2::pattern_pass`, two kept kernels per pass)
    let wide: Vec<Option<[Value; 2]>> = taps
        .iter()
        .map(|offsets| {
            let pass = |kernels| PatternPass {
                taps: offsets.clone(),
                kernels,
                rows: g.oh,
                cols: ow,
                out_row: ow * 4,
                in_row: wpd * 4,
            };
            let (one, two) = (pass(1), pass(2));
            if !(k.caps.avx2 && two.fits()) {
                return None;
            }
            let (one, two) = (pattern_pass(&one).ok()?, pattern_pass(&two).ok()?);
            Some([k.code(Family::Avx2, one), k.code(Family::Avx2, two)])
        })
        .collect();
    let sref = k.ukernel_sig(4);
    k.for_n(0, g.n as i64, 1, |k, n| {
        let first = k.ic(0);
        pad_input(k, &g, xp, n, first, g.c, pad_img, hp, wpd);
        k.for_acc(lo, hi, 1, &[], |k, oc, _| {
            let no = k.b.ins().imul_imm_s(n, g.oc as i64);
            let o = k.b.ins().iadd(no, oc);
            let o = k.b.ins().imul_imm_s(o, (g.oh * ow * 4) as i64);
            let obase = k.b.ins().iadd(out, o);
            // the output plane starts as the bias
            let bs = k.ld_at(types::F32, bp, oc, 4, 0);
            k.for_vec(g.oh * ow, &mut |k, ty, i| {
                let v = k.widen(ty, bs);
                k.st_at(v, obase, i, 4, 0);
            });
            let ncb = g.c.div_ceil(channel_block(&g));
            k.for_n(0, ncb as i64, 1, |k, cb| {
                let hrow = k.b.ins().imul_imm_s(oc, ncb as i64);
                let hrow = k.b.ins().iadd(hrow, cb);
                let hrow = k.b.ins().imul_imm_s(hrow, (patterns.len() * 24) as i64);
                let hrow = k.b.ins().iadd(hdr, hrow);
                for (p, offsets) in taps.iter().enumerate() {
                    let cnt = k.ld_ro(types::I64, hrow, (p * 24) as i32);
                    let so = k.ld_ro(types::I64, hrow, (p * 24 + 8) as i32);
                    let sw = k.ld_ro(types::I64, hrow, (p * 24 + 16) as i32);
                    let op = k.addr(offs, so, 8);
                    let wp = k.addr(wts, sw, 4);
                    let nvec = ow / l;
                    let blocks = nvec / BLOCK;
                    // `nk` kept kernels of this mask from index `i0`, over the whole plane
                    let apply = |k: &mut Kernel, i0: Value, nk: usize| {
                        let ntap = offsets.len();
                        let mut srcs = Vec::with_capacity(nk);
                        let mut ws = Vec::with_capacity(nk * ntap);
                        let wk = k.b.ins().imul_imm_s(i0, (ntap * 4) as i64);
                        let wk = k.b.ins().iadd(wp, wk);
                        for kk in 0..nk {
                            let coff = k.ld_at(types::I64, op, i0, 8, (kk * 8) as i32);
                            srcs.push(k.b.ins().iadd(pad_img, coff));
                            for j in 0..ntap {
                                ws.push(k.ld_ro(types::F32, wk, ((kk * ntap + j) * 4) as i32));
                            }
                        }
                        let wv: Vec<Value> = ws.iter().map(|&w| k.widen(vty, w)).collect();
                        k.for_n(0, g.oh as i64, 1, |k, oy| {
                            let roff = k.b.ins().imul_imm_s(oy, (wpd * 4) as i64);
                            let rows: Vec<Value> = srcs.iter().map(|&s| k.b.ins().iadd(s, roff)).collect();
                            let orow = k.b.ins().imul_imm_s(oy, (ow * 4) as i64);
                            let orow = k.b.ins().iadd(obase, orow);
                            // `nv` vectors (or one scalar) at pixel ox0
                            let step = |k: &mut Kernel, ox0: Value, nv: usize, ty: types::Type, w: &[Value]| {
                                let width = if ty == types::F32 { 1 } else { l };
                                let oa = k.addr(orow, ox0, 4);
                                let mut acc: Vec<Value> =
                                    (0..nv).map(|v| k.ld(ty, oa, (v * width * 4) as i32)).collect();
                                for (kk, &row) in rows.iter().enumerate() {
                                    let xa = k.addr(row, ox0, 4);
                                    for (j, &off) in offsets.iter().enumerate() {
                                        for (v, a) in acc.iter_mut().enumerate() {
                                            let x = k.ld(ty, xa, off + (v * width * 4) as i32);
                                            *a = k.fmadd(w[kk * ntap + j], x, *a);
                                        }
                                    }
                                }
                                for (v, &a) in acc.iter().enumerate() {
                                    k.st(a, oa, (v * width * 4) as i32);
                                }
                            };
                            // BLOCK independent accumulator chains hide the FMA latency
                            k.for_n(0, (blocks * BLOCK * l) as i64, (BLOCK * l) as i64, |k, ox0| {
                                step(k, ox0, BLOCK, vty, &wv)
                            });
                            if !nvec.is_multiple_of(BLOCK) {
                                let ox0 = k.ic((blocks * BLOCK * l) as i64);
                                step(k, ox0, nvec % BLOCK, vty, &wv);
                            }
                            for q in nvec * l..ow {
                                let ox0 = k.ic(q as i64);
                                step(k, ox0, 1, types::F32, &ws);
                            }
                        });
                    };
                    let zero = k.ic(0);
                    if let Some([one, two]) = wide[p] {
                        // per pixel the same order as one kernel per pass:
                        // kernel i's taps, then kernel i + 1's
                        let ntap = offsets.len() as i64;
                        let src = |k: &mut Kernel, i: Value| {
                            let coff = k.ld_at(types::I64, op, i, 8, 0);
                            k.b.ins().iadd(pad_img, coff)
                        };
                        let pairs = k.b.ins().ushr_imm_u(cnt, 1);
                        k.for_acc(zero, pairs, 1, &[], |k, q, _| {
                            let i = k.b.ins().ishl_imm_u(q, 1);
                            let i1 = k.b.ins().iadd_imm_s(i, 1);
                            let (s0, s1) = (src(k, i), src(k, i1));
                            let wk = k.addr(wp, i, ntap * 4);
                            k.b.ins().call_indirect(sref, two, &[obase, s0, s1, wk]);
                            vec![]
                        });
                        let odd = k.b.ins().band_imm_u(cnt, 1);
                        k.if_then(odd, |k| {
                            let i = k.b.ins().iadd_imm_s(cnt, -1);
                            let s0 = src(k, i);
                            let wk = k.addr(wp, i, ntap * 4);
                            k.b.ins().call_indirect(sref, one, &[obase, s0, s0, wk]);
                        });
                    } else {
                        // one kept kernel per pass over the plane (measured against
                        // two per pass, which the register pressure made slower)
                        k.for_acc(zero, cnt, 1, &[], |k, i, _| {
                            apply(k, i, 1);
                            vec![]
                        });
                    }
                }
            });
            vec![]
        });
    });
    Ok(())
}

/// How [`conv_tiles`] cuts an output plane: tiles of `rows` rows × `vecs`
/// 8-pixel vectors, the last row and column blocks smaller.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Schedule {
    rows: usize,
    vecs: usize,
}

/// The tile shape that covers an `oh` × `ow` plane at the lowest cost,
/// pricing a tile of `a` accumulators at `max(a, 8) + 2` per tap: eight
/// independent chains keep both FMA ports busy through the FMA latency,
/// and each tap adds a broadcast and the loop's share.
fn schedule(oh: usize, ow: usize) -> Schedule {
    let nvec = ow.div_ceil(8);
    let price = |rows: usize, vecs: usize| {
        let tile = |r: usize, v: usize| if r * v == 0 { 0 } else { (r * v).max(8) + 2 };
        let (full_r, rem_r) = (oh / rows, oh % rows);
        let (full_v, rem_v) = (nvec / vecs, nvec % vecs);
        full_v * (full_r * tile(rows, vecs) + tile(rem_r, vecs)) + full_r * tile(rows, rem_v) + tile(rem_r, rem_v)
    };
    (1..=nvec.min(PatternTile::MAX_ACCS))
        .map(|vecs| Schedule { rows: oh.min(PatternTile::MAX_ACCS / vecs).max(1), vecs })
        .min_by_key(|s| (price(s.rows, s.vecs), std::cmp::Reverse(s.vecs)))
        .unwrap_or(Schedule { rows: 1, vecs: 1 })
}

/// The distinct tap counts of the masks, ascending: the groups of a
/// tile program.
fn tap_counts(patterns: &[u32]) -> Vec<usize> {
    let mut t: Vec<usize> = patterns.iter().map(|m| m.count_ones() as usize).filter(|&n| n > 0).collect();
    t.sort_unstable();
    t.dedup();
    t
}

/// Per (output channel, channel block), its program for [`pattern_tile`]:
/// per tap count ([`tap_counts`]) the number of kept kernels with that
/// many taps, then per kernel, in channel order, each tap's byte offset
/// into the padded image (`u32`: the channel's plane plus the tap's
/// place, [`Phases::tap`]) and the kept weights. All programs in one
/// blob, and where each starts.
fn programs(
    gm: &Geo,
    w: &[f32],
    assignment: &[Option<u8>],
    patterns: &[u32],
    ph: &Phases,
) -> LResult<(Vec<u8>, Vec<i64>)> {
    let area = gm.kh * gm.kw;
    let plane = ph.channel_bytes();
    if gm.c * plane > u32::MAX as usize / 2 {
        return Err(format!("pattern conv: a {}-channel padded image of {plane} bytes per channel is too large", gm.c));
    }
    let (mut blob, mut starts) = (Vec::new(), Vec::new());
    let cb = channel_block(gm);
    for o in 0..gm.oc {
        for c0 in (0..gm.c).step_by(cb) {
            starts.push(blob.len() as i64);
            for nt in tap_counts(patterns) {
                let mask_of = |c: usize| assignment[o * gm.c + c].and_then(|p| patterns.get(p as usize)).copied();
                let kept: Vec<(usize, u32)> = (c0..(c0 + cb).min(gm.c))
                    .filter_map(|c| mask_of(c).filter(|m| m.count_ones() as usize == nt).map(|m| (c, m)))
                    .collect();
                blob.extend((kept.len() as i64).to_le_bytes());
                for (c, mask) in kept {
                    let taps: Vec<usize> = (0..area).filter(|tap| mask & (1 << tap) != 0).collect();
                    for &tap in &taps {
                        blob.extend(((c * plane) as u32 + ph.tap(tap) as u32).to_le_bytes());
                    }
                    let kernel = &w[(o * gm.c + c) * area..(o * gm.c + c + 1) * area];
                    for &tap in &taps {
                        blob.extend(kernel[tap].to_le_bytes());
                    }
                }
            }
        }
    }
    Ok((blob, starts))
}

/// The register-tiled pattern conv (AVX2 + FMA): for each tile of the
/// output plane, for each output channel, one call of the assembled tile.
fn conv_tiles(
    k: &mut Kernel,
    gm: &Geo,
    w: &[f32],
    bias: &[f32],
    patterns: &[u32],
    assignment: &[Option<u8>],
) -> LResult {
    let g = *gm;
    let sch = schedule(g.oh, g.ow);
    let nvec = g.ow.div_ceil(8);
    let ph = Phases::new(&g);
    let wpd = ph.wq;
    let (prog, starts) = programs(gm, w, assignment, patterns, &ph)?;
    let ncb = g.c.div_ceil(channel_block(gm));
    let kept_taps = (prog.len() / 4) as u64; // an upper bound, for the split's cost
    let groups = tap_counts(patterns);
    // column blocks: (first vector, vectors, lanes stored from the last)
    let mut cols = Vec::new();
    for v0 in (0..nvec).step_by(sch.vecs) {
        let vecs = sch.vecs.min(nvec - v0);
        let last = if v0 + vecs == nvec { g.ow - 8 * (nvec - 1) } else { 8 };
        cols.push((v0, vecs, last));
    }
    let tile = |k: &mut Kernel, rows: usize, vecs: usize, last_lanes: usize, accumulate: bool| -> LResult<Value> {
        let t = PatternTile {
            groups: groups.clone(),
            rows,
            vecs,
            last_lanes,
            out_row: g.ow * 4,
            in_row: wpd * 4,
            accumulate,
        };
        if !t.fits() {
            return Err(format!("internal: pattern tile {rows}x{vecs} does not fit the registers"));
        }
        let code = pattern_tile(&t).map_err(|e| format!("assembling the pattern tile: {e}"))?;
        Ok(k.code(Family::Avx2, code))
    };
    let progp = k.blob(prog);
    let startp = k.blob(starts.iter().flat_map(|x| x.to_le_bytes()).collect());
    let bp = k.blob_f32(bias);
    let img = g.c * ph.channel_bytes() / 4;
    let cost = 2 * (g.n * g.oh * g.ow) as u64 * kept_taps.div_ceil(g.oc.max(1) as u64);
    let cap = (super::gemm::TASK_SCRATCH_BUDGET / (img * 4).max(1)).max(2);
    let (lo, hi) = k.parallel_range_capped(g.oc, 1, cost, cap)?;
    let pad_img = k.task_scratch(img * 4);
    let xp = k.input(0);
    let out = k.output(0);
    let sig = k.ukernel_sig(4);
    // the row blocks: `full` blocks of `sch.rows`, then one of `rest` rows
    let (full, rest) = (g.oh / sch.rows, g.oh % sch.rows);
    let mut blocks = Vec::new();
    for (rows, count) in [(sch.rows, full), (rest, usize::from(rest > 0))] {
        if count > 0 {
            let mut codes = Vec::with_capacity(cols.len());
            for &(_, v, last) in &cols {
                codes.push([tile(k, rows, v, last, false)?, tile(k, rows, v, last, true)?]);
            }
            blocks.push((rows, count, codes));
        }
    }
    k.for_n(0, g.n as i64, 1, |k, n| {
        ph.pad(k, &g, xp, n, pad_img);
        let mut oy_first = 0;
        for (rows, count, codes) in &blocks {
            let (rows, y0) = (*rows, oy_first);
            k.for_n(0, *count as i64, 1, |k, rb| {
                let oy0 = k.b.ins().imul_imm_s(rb, rows as i64);
                let oy0 = k.b.ins().iadd_imm_s(oy0, y0 as i64);
                for (&(v0, _, _), &[first, later]) in cols.iter().zip(codes) {
                    let ox0 = (v0 * 8) as i64;
                    let src = k.b.ins().imul_imm_s(oy0, (wpd * 4) as i64);
                    let src = k.b.ins().iadd_imm_s(src, ox0 * 4);
                    let src = k.b.ins().iadd(pad_img, src);
                    let opix = k.b.ins().imul_imm_s(oy0, g.ow as i64);
                    let opix = k.b.ins().iadd_imm_s(opix, ox0);
                    // channel block 0 starts from the bias, the others
                    // from the partial sums
                    k.for_n(0, ncb as i64, 1, |k, cb| {
                        let code = k.b.ins().select(cb, later, first);
                        k.for_acc(lo, hi, 1, &[], |k, oc, _| {
                            let no = k.b.ins().imul_imm_s(n, g.oc as i64);
                            let o = k.b.ins().iadd(no, oc);
                            let o = k.b.ins().imul_imm_s(o, (g.oh * g.ow) as i64);
                            let o = k.b.ins().iadd(o, opix);
                            let dst = k.addr(out, o, 4);
                            let at = k.b.ins().imul_imm_s(oc, ncb as i64);
                            let at = k.b.ins().iadd(at, cb);
                            let start = k.ld_at(types::I64, startp, at, 8, 0);
                            let pr = k.b.ins().iadd(progp, start);
                            let b = k.addr(bp, oc, 4);
                            k.b.ins().call_indirect(sig, code, &[dst, src, pr, b]);
                            vec![]
                        });
                    });
                }
            });
            oy_first += rows * count;
        }
    });
    Ok(())
}

/// The zero-padded input of the register tiles, split into `s × s` phase
/// planes for stride `s` (one plane for stride 1): phase `(a, b)` holds
/// the padded pixels `(s·i + a, s·j + b)` at `(i, j)`, so output pixel
/// `(y, x)`'s tap `(ky, kx)` reads phase `(ky·dh mod s, kx·dw mod s)` at
/// `(y + ky·dh div s, x + kx·dw div s)`: consecutive output pixels read
/// consecutive floats, whatever the stride.
struct Phases {
    s: usize,
    hq: usize,
    /// Floats per phase row (a multiple of 8: the taps of the first
    /// kernel column load aligned).
    wq: usize,
    dh: usize,
    dw: usize,
    kw: usize,
}

impl Phases {
    fn new(g: &Geo) -> Phases {
        let s = g.sh;
        // every tile reads whole vectors, `ow.div_ceil(8)` of them per row
        let hq = (g.h + g.ph).div_ceil(s).max(g.oh + (g.kh - 1) * g.dh / s);
        let wq = (g.w + g.pw).div_ceil(s).max(g.ow.div_ceil(8) * 8 + (g.kw - 1) * g.dw / s).next_multiple_of(8);
        Phases { s, hq, wq, dh: g.dh, dw: g.dw, kw: g.kw }
    }

    fn channel_bytes(&self) -> usize {
        self.s * self.s * self.hq * self.wq * 4
    }

    /// Byte offset of row-major tap `tap` from an output pixel's origin.
    fn tap(&self, tap: usize) -> i32 {
        let (ry, rx) = ((tap / self.kw) * self.dh, (tap % self.kw) * self.dw);
        let phase = (ry % self.s) * self.s + rx % self.s;
        ((phase * self.hq * self.wq + (ry / self.s) * self.wq + rx / self.s) * 4) as i32
    }

    /// Copies image `n` of `x` into `img` (all channels), zero elsewhere.
    fn pad(&self, k: &mut Kernel, g: &Geo, x: Value, n: Value, img: Value) {
        if self.s == 1 {
            let first = k.ic(0);
            return pad_input(k, g, x, n, first, g.c, img, self.hq, self.wq);
        }
        k.for_vec(g.c * self.channel_bytes() / 4, &mut |k, ty, i| {
            let z = k.fsplat(ty, 0.0);
            k.st_at(z, img, i, 4, 0);
        });
        debug_assert_eq!(self.s, 2, "phase splits are written for stride 2");
        let (s, hq, wq, gc) = (self.s as i64, self.hq as i64, self.wq as i64, *g);
        let nc = k.b.ins().imul_imm_s(n, (g.c * g.h * g.w) as i64);
        let xbase = k.addr(x, nc, 4);
        k.for_n(0, (g.c * g.h) as i64, 1, |k, row| {
            // row = c * H + y; padded row y + ph is phase row (y + ph) / s of phase (y + ph) % s
            let src = k.b.ins().imul_imm_s(row, gc.w as i64);
            let sb = k.addr(xbase, src, 4);
            let c = k.b.ins().udiv_imm_s(row, gc.h as i64);
            let y = k.b.ins().urem_imm_s(row, gc.h as i64);
            let py = k.b.ins().iadd_imm_s(y, gc.ph as i64);
            let (a, i) = (k.b.ins().urem_imm_s(py, s), k.b.ins().udiv_imm_s(py, s));
            let d = k.b.ins().imul_imm_s(c, s * s);
            let a = k.b.ins().imul_imm_s(a, s);
            let d = k.b.ins().iadd(d, a);
            let d = k.b.ins().imul_imm_s(d, hq);
            let d = k.b.ins().iadd(d, i);
            let d = k.b.ins().imul_imm_s(d, wq);
            let db = k.addr(img, d, 4);
            split_row(k, sb, db, gc.w, gc.pw, (hq * wq) as usize);
        });
    }
}

/// Splits one input row at `src` (`w` floats) into the two column phases
/// of stride 2: padded column `x + pw` goes to phase `(x + pw) mod 2`
/// (`phase` floats after phase 0) at `(x + pw) div 2` from `dst`. Eight
/// floats at a time, as two `f32x4` loads and their even and odd lanes
/// (one `shufps` each on x86-64), the rest one by one.
fn split_row(k: &mut Kernel, src: Value, dst: Value, w: usize, pw: usize, phase: usize) {
    let le = MemFlagsData::new().with_endianness(Endianness::Little);
    let imm = |k: &mut Kernel, lanes: [u8; 4]| {
        let bytes: Vec<u8> = lanes.iter().flat_map(|&i| (0..4).map(move |q| 4 * i + q)).collect();
        k.b.func.dfg.immediates.push(ConstantData::from(bytes.as_slice()))
    };
    let (even, odd) = (imm(k, [0, 2, 4, 6]), imm(k, [1, 3, 5, 7]));
    // even input columns land in phase pw mod 2, odd ones in the other,
    // both at (x + pw) div 2 (x even) and (x + 1 + pw) div 2
    let (pe, po) = ((pw % 2) * phase, ((pw + 1) % 2) * phase);
    let (je, jo) = (pw / 2, pw.div_ceil(2));
    let body = w / 8;
    k.for_n(0, body as i64, 1, |k, i| {
        let x = k.b.ins().imul_imm_s(i, 32);
        let sp = k.b.ins().iadd(src, x);
        let a = k.ld(types::F32X4, sp, 0);
        let b = k.ld(types::F32X4, sp, 16);
        let (a, b) = (k.b.ins().bitcast(types::I8X16, le, a), k.b.ins().bitcast(types::I8X16, le, b));
        let (ev, od) = (k.b.ins().shuffle(a, b, even), k.b.ins().shuffle(a, b, odd));
        let (ev, od) = (k.b.ins().bitcast(types::F32X4, le, ev), k.b.ins().bitcast(types::F32X4, le, od));
        let j = k.b.ins().imul_imm_s(i, 16);
        let dp = k.b.ins().iadd(dst, j);
        k.st(ev, dp, ((pe + je) * 4) as i32);
        k.st(od, dp, ((po + jo) * 4) as i32);
    });
    for x in body * 8..w {
        let v = k.ld(types::F32, src, (4 * x) as i32);
        let px = x + pw;
        k.st(v, dst, (((px % 2) * phase + px / 2) * 4) as i32);
    }
}
