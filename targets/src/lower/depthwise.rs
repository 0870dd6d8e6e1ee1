//! Depthwise convolution (one input and one output channel per group), the
//! memory-bound half of MobileNet-style blocks.
//!
//! Direct, without a padded copy. Per channel (the parallel unit) and output
//! row, the `kh` input row pointers are computed once; a row that falls in
//! the vertical padding points at a constant zero row instead, so every
//! output row runs the same code. Along the width the outputs are computed
//! `L` at a time (`L` = vector lanes), in *positions* `0, L, 2L, …` plus an
//! overlapping last position `ow - L` when `L` does not divide `ow` (the
//! output never aliases an input of a conv, so recomputing a few columns is
//! harmless and saves a scalar tail). Positions whose taps all read inside
//! the row (*interior*) run in a loop, `VECS` positions per pass with one
//! accumulator each and each tap's pre-broadcast weight vector. The few
//! *border* positions are unrolled at compile time: a tap whose lanes are
//! partly outside the row loads the in-bounds window and moves the lanes
//! into place with a lane shuffle, zeroing the outside lanes with a mask; a
//! tap entirely outside is skipped. Every load is of memory the kernel never
//! writes and is marked read-only (movable): Cranelift then builds each
//! output's chain of taps right before its store instead of issuing all
//! loads of a pass first (which spilled them).
//!
//! Stride 2 (vectors): the 8 input floats of a tap's 4 lanes are loaded as
//! two vectors and deinterleaved with one shuffle; the next tap's inputs
//! (one float to the right) are the odd lanes of the same pair. Other strides,
//! rows narrower than the vector span, and targets without SIMD use the same
//! scheme with `L = 1` (scalar). Small stride-1 "same" planes take the
//! `flat` path (the plane as one run of outputs, fully unrolled).
//!
//! The bias is the accumulators' initial value; the fused epilogue
//! (residual, activation: `apply_act`) is applied before the store.
//!
//! With AVX2 + FMA, stride-1 and stride-2 depthwise convs whose epilogue
//! the assembled tiles apply (none, Relu, Clip, HardSwish) run
//! through `ukernel::avx2::dw_plane` instead: each task copies its
//! channel's plane into a zero-padded scratch plane (columns split by
//! parity for stride 2, so every tap reads 8 consecutive floats; the copy
//! itself assembled too, `ukernel::avx2::dw_copy`: Cranelift's 4-lane copy
//! loop took 40–60% of the layer) and one
//! assembled pass computes the whole output plane, 8 pixels per `ymm` with
//! the taps' weights in registers (rows of at least 4 pixels; a row's last
//! vector ends at its end and recomputes a few pixels), the same operations
//! in the same order as the 128-bit kernel (Cranelift keeps its register
//! allocation from holding 25 weights and 8 accumulators; the 5x5 kernels
//! of PP-LCNet/PicoDet spilled on every tap). Small stride-1 3x3 "same"
//! planes the flat passes do not take keep the 128-bit unrolled path
//! ([`wide_pays`]).
//!
//! With AVX-512F, stride-1 "same" convs of up to 9 taps on planes of up to
//! 16384 pixels run on `ukernel::avx512::dw_flat` first ([`flat_zmm`]):
//! the flat scheme at 16 lanes straight from the input plane, no copy, the
//! lanes outside the plane masked, the bits of the 128-bit kernel the
//! plane takes without micro-kernels (the flat path or the row kernel).
//! With AVX2 only, the small ones of up to 256 pixels (the flat path's)
//! run on `ukernel::avx2::ymm_dw_flat` ([`flat_ymm`]): the same scheme at
//! 8 lanes from a copy with zero margins.

use cranelift_codegen::ir::{types, ConstantData, Endianness, Immediate, InstBuilder, MemFlagsData, Type, Value};

use super::conv_geo::Geo;
use super::epilogue::{apply_act, Epilogue};
use super::qdepthwise::QDepthwise;
use super::{Family, Kernel, LResult};
use crate::ukernel::avx2::{
    dw_copy, dw_plane, ymm_dw_flat, DwCopy, DwFlat, DwPlane, Groups, Int, YmmFlat, DW_FLAT_MAX_TAPS,
};
use crate::ukernel::avx512::dw_flat;
use crate::ukernel::epi::TileEpi;

/// Weight of a depthwise conv's FLOPs in its task cost
/// ([`super::Kernel::parallel_range`], calibrated on GEMM kernels at
/// 80–110 GFLOP/s): the depthwise kernels run at 10–25 (few taps per
/// loaded value), so a FLOP costs them about four times the time, and
/// counted plainly the small late layers (7x7 and 14x14 planes of
/// MobileNetV2, 20–45 µs) ran as one or two tasks.
pub(super) const DW_COST: u64 = 4;

/// Positions computed together per pass (accumulators in flight).
const VECS: usize = 8;
/// Positions per pass for stride 2, which also keeps a loaded pair, its
/// shuffle and the row's weights in registers (16 vector registers on x86-64).
const VECS_S2: usize = 6;
/// Largest `h·w` of the flat small-plane path (its code is unrolled over
/// the plane: `h·w/4` positions × taps), the 8-lane flat pass's
/// ([`kerf_ir::DepthwisePlane::flat_fits`]).
const FLAT_MAX: usize = kerf_ir::DW_FLAT_MAX_PIXELS;

/// Largest `h·w` of the assembled flat path ([`flat_zmm`]: its code is
/// unrolled over the plane, about 10 bytes per tap and 16 pixels; 112x112
/// fits).
const FLAT_ZMM_MAX: usize = 16384;

/// Where the lanes of one position read for one tap.
enum TapLoad {
    /// Every lane outside the row: the tap contributes nothing.
    Skip,
    /// `L` contiguous in-bounds floats (or one float when `L = 1`) at this column.
    Direct(i64),
    /// Window of `L · sw` floats at column `base`, lane `j` takes window float
    /// `idx[j]`; lanes with `valid[j] == false` are zeroed.
    Gather { base: i64, idx: Vec<usize>, valid: Vec<bool> },
}

/// Code-generation plan shared by all rows.
struct Plan {
    g: Geo,
    /// Lanes per position (1 = scalar).
    l: usize,
    ty: Type,
    /// Positions per pass of the interior loop.
    vecs: usize,
    /// Weights `[c][kh·kw][l]`, each tap broadcast to `l` lanes.
    wb: Value,
    /// Stride 2 with vectors: the immediates of the even/odd deinterleaving
    /// shuffles of a loaded pair.
    pair: Option<(Immediate, Immediate)>,
}

/// `w`: `[c][kh][kw]`, `bias`: `[c]`, both constants.
pub(super) fn depthwise(k: &mut Kernel, g: &Geo, w: &[f32], bias: &[f32], epi: Epilogue) -> LResult {
    let g = *g;
    let taps = g.kh * g.kw;
    if w.len() != g.c * taps || bias.len() != g.c {
        return Err(format!(
            "depthwise conv: expected {} weights and {} biases, got {} and {}",
            g.c * taps,
            g.c,
            w.len(),
            bias.len()
        ));
    }
    if let Some(code) = flat_zmm(k, &g, epi) {
        let run = FlatRun { family: Family::Avx512, code, io: (4, 4), scratch: None };
        return flat_assembled(k, &g, &per_channel(w, bias, taps), epi, run);
    }
    if let Some((p, code)) =
        super::gemm_wide::act_epi(epi.act, epi.residual.is_some()).and_then(|t| flat_ymm(k, &g, t, None))
    {
        let run = FlatRun { family: Family::Avx2, code, io: (4, 4), scratch: Some(p.scratch_bytes()) };
        return flat_assembled(k, &g, &per_channel(w, bias, taps), epi, run);
    }
    if let Some(code) = wide_pass(k, &g, epi, None).filter(|_| wide_pays(&g)) {
        return wide(k, &g, &per_channel(w, bias, taps), epi, code, None);
    }
    // vector lanes only where the row holds a whole vector span
    let lanes = k.lanes();
    let l = if lanes > 1 && g.sw <= 2 && g.w >= g.sw * lanes && g.ow >= lanes { lanes } else { 1 };
    let ty = if l > 1 { k.vty() } else { types::F32 };
    let splat: Vec<f32> = w.iter().flat_map(|&x| std::iter::repeat_n(x, l)).collect();
    let wb = k.blob_f32(&splat);
    let bb = k.blob_f32(bias);
    let pair = (l > 1 && g.sw == 2).then(|| deinterleave(k, l));
    let vecs = if g.sw == 2 && l > 1 { VECS_S2 } else { VECS };
    let p = Plan { g, l, ty, vecs, wb, pair };
    let xp = k.input(0);
    let out = k.output(0);
    let (lo, hi) = k.parallel_range(g.n * g.c, 1, DW_COST * (2 * g.oh * g.ow * taps + g.w) as u64)?;
    if l > 1 && g.sh == 1 && g.sw == 1 && g.oh == g.h && g.ow == g.w && g.h * g.w <= FLAT_MAX {
        flat(k, &p, bb, xp, out, epi, lo, hi);
        return Ok(());
    }
    // the zero row that vertical padding rows point at (constant data, so
    // every load of the kernel reads memory it never writes)
    let zrow = k.blob_f32(&vec![0.0; g.w]);

    // positions: interior ones form one run [i_lo, i_hi) of regular positions
    let npos = g.ow / l;
    let tail = (!g.ow.is_multiple_of(l)).then_some(g.ow - l);
    let interior = |ox0: usize| (0..g.kw).all(|kx| matches!(tap_load(&p, ox0, kx), TapLoad::Direct(_)));
    let i_lo = (0..npos).find(|&i| interior(i * l)).unwrap_or(npos);
    let i_hi = (i_lo..npos).find(|&i| !interior(i * l)).unwrap_or(npos);
    let mut borders: Vec<usize> = (0..i_lo).chain(i_hi..npos).map(|i| i * l).collect();
    borders.extend(tail);

    k.for_dyn(lo, hi, 1, |k, nc| {
        let ch = k.b.ins().urem_imm_s(nc, g.c as i64);
        let xo = k.b.ins().imul_imm_s(nc, (g.h * g.w * 4) as i64);
        let xbase = k.b.ins().iadd(xp, xo);
        let wrow = k.b.ins().imul_imm_s(ch, (taps * l * 4) as i64);
        let wrow = k.b.ins().iadd(p.wb, wrow);
        let bp = k.addr(bb, ch, 4);
        let bs = k.ld_ro(types::F32, bp, 0);
        let oo = k.b.ins().imul_imm_s(nc, (g.oh * g.ow * 4) as i64);
        let obase = k.b.ins().iadd(out, oo);
        let rbase = epi.residual.map(|r| k.b.ins().iadd(r, oo));
        k.for_n(0, g.oh as i64, 1, |k, oy| {
            let bv = k.widen(ty, bs);
            let rows: Vec<Value> = (0..g.kh)
                .map(|ky| {
                    let iy = k.b.ins().imul_imm_s(oy, g.sh as i64);
                    let iy = k.b.ins().iadd_imm_s(iy, (ky * g.dh) as i64 - g.ph as i64);
                    let ok = k.in_range(iy, g.h as i64);
                    let ptr = k.addr(xbase, iy, (g.w * 4) as i64);
                    k.b.ins().select(ok, ptr, zrow)
                })
                .collect();
            let oro = k.b.ins().imul_imm_s(oy, (g.ow * 4) as i64);
            let orow = k.b.ins().iadd(obase, oro);
            let rrow = rbase.map(|r| k.b.ins().iadd(r, oro));
            let ctx = RowCtx { rows: &rows, wrow, bias: bv, orow, rrow, act: epi };
            // interior: passes of `vecs` positions, then one shorter pass
            let n_int = i_hi - i_lo;
            let full = n_int / p.vecs * p.vecs;
            let span = (p.vecs * l) as i64;
            let start = (i_lo * l) as i64;
            k.for_n(start, start + full as i64 * l as i64, span, |k, ox0| {
                interior_pass(k, &p, &ctx, ox0, p.vecs);
            });
            if n_int > full {
                let ox0 = k.ic(((i_lo + full) * l) as i64);
                interior_pass(k, &p, &ctx, ox0, n_int - full);
            }
            for chunk in borders.chunks(p.vecs) {
                border_pass(k, &p, &ctx, chunk);
            }
        });
    });
    Ok(())
}

/// The zero-padded input copy of the assembled pass: `hp` rows of `wpd`
/// padded columns, enough for every output's window. With stride 2 along
/// the width the columns are split by parity, each row holding the even
/// columns then the odd ones (`wh` each), so that the pass reads 8
/// consecutive floats for 8 outputs at every tap.
#[derive(Clone, Copy)]
struct Pad {
    hp: usize,
    wpd: usize,
    /// Floats per parity half (`wpd` without the split): with the split a
    /// multiple of 16, so the halves of every row start on a cache line
    /// (a 112-wide stride-2 plane with 57-float halves, split loads and
    /// stores on every vector, ran 0.49 ms against 0.41 ms aligned on an
    /// Intel Xeon; MobileNetV2 6.83 → 6.70 ms).
    wh: usize,
    /// Floats per padded row in the buffer.
    row: usize,
}

impl Pad {
    fn of(g: &Geo) -> Pad {
        let hp = (g.h + g.ph).max(g.sh * (g.oh - 1) + (g.kh - 1) * g.dh + 1);
        let wpd = (g.w + g.pw).max(g.sw * (g.ow - 1) + (g.kw - 1) * g.dw + 1);
        let wh = if g.sw == 2 { wpd.div_ceil(2).next_multiple_of(16) } else { wpd };
        Pad { hp, wpd, wh, row: if g.sw == 2 { 2 * wh } else { wpd } }
    }
    /// Buffer index (floats, within a row) of padded column `q`.
    fn col(&self, g: &Geo, q: usize) -> usize {
        if g.sw == 2 {
            (q % 2) * self.wh + q / 2
        } else {
            q
        }
    }
}

/// The assembled whole-plane pass for `g`, when it applies (see the module
/// docs); `q`: the integer conv's (scaled sums; f32 output only).
fn wide_pass(k: &Kernel, g: &Geo, epi: Epilogue, q: Option<&QDepthwise>) -> Option<Vec<u8>> {
    if !k.caps.avx2 || k.lanes() != 4 || g.sh > 2 || g.sw > 2 {
        return None;
    }
    let act = super::gemm_wide::act_epi(epi.act, epi.residual.is_some())?;
    let pd = Pad::of(g);
    let taps =
        (0..g.kh * g.kw).map(|t| (((t / g.kw) * g.dh * pd.row + pd.col(g, (t % g.kw) * g.dw)) * 4) as i32).collect();
    // rows of 1..3 pixels would run on single floats
    if g.ow < 4 {
        return None;
    }
    // the pass stores f32 only: a requantised output takes the scalar kernel
    if q.is_some_and(|q| q.quant.is_some()) {
        return None;
    }
    let (rows, cols, out_row, in_row, scaled) = (g.oh, g.ow, g.ow * 4, g.sh * pd.row * 4, q.is_some());
    dw_plane(&DwPlane { taps, rows, cols, out_row, in_row, epi: act, scaled }).ok()
}

/// Whether the assembled pass is the faster kernel for `g` (measured on
/// MobileNetV2-, PP-LCNet- and PicoDet-shaped layers, `bench_vs_ort.py` on
/// single-conv models): always for kernels larger than 3x3 (25 taps spill
/// the 128-bit kernel's registers); for 3x3 except on the small stride-1
/// "same" planes of the 128-bit kernel's unrolled path ([`flat`]: 14x14,
/// 384 channels: 0.082 against 0.099 ms; 7x7: 0.053 against 0.070 ms),
/// which has no padded copy to make; nor on output planes of at most 64
/// pixels at any stride (MobileNetV2's stride-2 576-channel 14x14 → 7x7
/// layer, Zen 4: 0.065 ms assembled against 0.043 ms on the 128-bit kernel:
/// there the per-channel copy and calls outweigh the 9 taps of 7 vectors).
/// The AVX2-only numbers above are Zen 3's. On AVX-512 targets the
/// stride-1 "same" planes of up to 9 taps and [`FLAT_ZMM_MAX`] pixels (25
/// taps and [`FLAT_MAX`]) do not get here: [`flat_zmm`] takes them; on
/// AVX2 ones, [`flat_ymm`] takes those of 8 to [`FLAT_MAX`] pixels.
fn wide_pays(g: &Geo) -> bool {
    let small_same = g.sh == 1 && g.sw == 1 && g.oh == g.h && g.ow == g.w && g.h * g.w <= FLAT_MAX;
    let tiny = g.oh * g.ow <= 64;
    g.kh * g.kw > 9 || !(tiny || small_same)
}

/// A depthwise QConv (one input and one output channel per group; its
/// padded taps read the zero point) on the assembled padded-plane float
/// pass, where the target has it and neither the flat nor VNNI's quad
/// pass (`lower::qdepthwise`, tried first) applies (`None` otherwise: the
/// caller runs it on `qdepthwise::quantised_scalar` or the integer GEMM). Each task converts its
/// channel's plane to the floats `x − zp` (exact) in its zero-padded
/// scratch plane and the pass multiplies by the int8 codes as floats:
/// every partial sum is an integer below 2^24 (taps · 255 · 128), so the
/// sums are `Σ (x − zp)·w` exactly, and the pass then applies `· s[c] +
/// b[c]`, the residual and the activation in the op's order (the
/// reference's bits). A requantised (u8) output is left to the caller
/// (`lower::qdepthwise`: `quantised_scalar` when padded, else the
/// integer GEMM): the `int8-requant` rule gives a depthwise conv one only
/// where the flat or the quad pass takes it, which store u8 themselves
/// (this pass's u8 store measured slower than the separate quantiser,
/// docs/compression.md).
pub(super) fn quantised(k: &mut Kernel, g: &Geo, q: &QDepthwise, epi: Epilogue) -> Option<LResult> {
    let taps = g.kh * g.kw;
    if q.check(g).is_err() || taps * 255 * 128 >= 1 << 24 {
        return None;
    }
    let code = wide_pass(k, g, epi, Some(q))?;
    Some(wide(k, g, &q.per_channel(taps), epi, code, Some(q.zp)))
}

/// Depthwise through the assembled pass `code`: per channel, copy the
/// plane into the task's zero-padded scratch ([`Pad`]), one call. `per`
/// holds each channel's values of the pass's weight block (taps, then the
/// bias, or the scale and the bias); `zp`: the input is u8 with this zero
/// point (the copy converts it).
fn wide(k: &mut Kernel, g: &Geo, per: &[f32], epi: Epilogue, code: Vec<u8>, zp: Option<u8>) -> LResult {
    let taps = g.kh * g.kw;
    let vals = per.len() / g.c.max(1);
    let pd = Pad::of(g);
    // 8 copies of each value
    let splat: Vec<f32> = per.iter().flat_map(|&x| std::iter::repeat_n(x, 8)).collect();
    let wb = k.blob_f32(&splat);
    let xp = k.input(0);
    let out = k.output(0);
    let plane = pd.hp * pd.row * 4;
    let cap = (super::gemm::TASK_SCRATCH_BUDGET / plane.max(1)).max(2);
    let cost = DW_COST * (2 * g.oh * g.ow * taps + pd.hp * pd.wpd) as u64;
    let (lo, hi) = k.parallel_range_capped(g.n * g.c, 1, cost, cap)?;
    let pad = k.task_scratch(plane);
    let code = k.code(Family::Avx2, code);
    let sref = k.ukernel_sig(4);
    let g2 = *g;
    // the padding stays zero: each channel only overwrites the interior
    k.for_vec(pd.hp * pd.row, &mut |k, ty, i| {
        let z = k.fsplat(ty, 0.0);
        k.st_at(z, pad, i, 4, 0);
    });
    let first_row = k.add_c(pad, (g.ph * pd.row * 4) as i64);
    let copy =
        DwCopy { rows: g.h, cols: g.w, split: g.sw == 2, pad: g.pw, half: pd.wh, dst_row: pd.row * 4, zero_point: zp };
    let copy = k.code(Family::Avx2, dw_copy(&copy).map_err(|e| format!("depthwise copy: {e}"))?);
    let copy_sig = k.ukernel_sig(2);
    let in_el = if zp.is_some() { 1 } else { 4 };
    k.for_dyn(lo, hi, 1, |k, nc| {
        let ch = k.b.ins().urem_imm_s(nc, g2.c as i64);
        let xo = k.b.ins().imul_imm_s(nc, (g2.h * g2.w * in_el) as i64);
        let xbase = k.b.ins().iadd(xp, xo);
        k.b.ins().call_indirect(copy_sig, copy, &[xbase, first_row]);
        let oo = k.b.ins().imul_imm_s(nc, (g2.oh * g2.ow * 4) as i64);
        let obase = k.b.ins().iadd(out, oo);
        let res = match epi.residual {
            Some(r) => k.b.ins().iadd(r, oo),
            None => k.ic(0),
        };
        let wo = k.b.ins().imul_imm_s(ch, (vals * 32) as i64);
        let wp = k.b.ins().iadd(wb, wo);
        k.b.ins().call_indirect(sref, code, &[obase, pad, wp, res]);
    });
    Ok(())
}

/// The byte-shuffle immediates that take the even and the odd `f32` lanes
/// of a pair of `l`-lane vectors.
fn deinterleave(k: &mut Kernel, l: usize) -> (Immediate, Immediate) {
    let mut lanes_of = |first: usize| {
        let idx: Vec<u8> = (0..l).map(|j| (2 * j + first) as u8).collect();
        k.lane_mask(&idx)
    };
    (lanes_of(0), lanes_of(1))
}

/// Small "same" planes with stride 1 (e.g. 25×5, 7×7, 14×14): the plane is
/// one flat run of `h·w` outputs computed `L` at a time, every position and
/// tap unrolled at compile time. Output `q` reads input `q + d` for tap
/// offset `d = (ky·dh - ph)·w + (kx·dw - pw)`, so a tap's lanes are one
/// contiguous load whose lanes outside the image (row or column) are masked
/// to zero; at the ends of the plane the window is clamped and permuted as
/// in `gather`. No per-row work and no lanes wasted on a short row's tail.
#[allow(clippy::too_many_arguments)]
fn flat(k: &mut Kernel, p: &Plan, bb: Value, xp: Value, out: Value, epi: Epilogue, lo: Value, hi: Value) {
    let g = p.g;
    let l = p.l;
    let (n, w, taps) = (g.h * g.w, g.w, g.kh * g.kw);
    let le = MemFlagsData::new().with_endianness(Endianness::Little);
    let mut starts: Vec<usize> = (0..n / l).map(|i| i * l).collect();
    if !n.is_multiple_of(l) {
        starts.push(n - l);
    }
    k.for_dyn(lo, hi, 1, |k, nc| {
        let ch = k.b.ins().urem_imm_s(nc, g.c as i64);
        let xo = k.b.ins().imul_imm_s(nc, (n * 4) as i64);
        let xbase = k.b.ins().iadd(xp, xo);
        let wrow = k.b.ins().imul_imm_s(ch, (taps * l * 4) as i64);
        let wrow = k.b.ins().iadd(p.wb, wrow);
        let bp = k.addr(bb, ch, 4);
        let bs = k.ld_ro(types::F32, bp, 0);
        let bias = k.widen(p.ty, bs);
        let obase = k.b.ins().iadd(out, xo);
        let rbase = epi.residual.map(|r| k.b.ins().iadd(r, xo));
        let ctx = RowCtx { rows: &[], wrow, bias, orow: obase, rrow: rbase, act: epi };
        for &p0 in &starts {
            let mut acc = bias;
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let d = (ky * g.dh) as i64 - g.ph as i64;
                    let e = (kx * g.dw) as i64 - g.pw as i64;
                    let valid: Vec<bool> = (0..l)
                        .map(|j| {
                            let q = p0 + j;
                            let (iy, ix) = ((q / w) as i64 + d, (q % w) as i64 + e);
                            (0..g.h as i64).contains(&iy) && (0..w as i64).contains(&ix)
                        })
                        .collect();
                    if !valid.iter().any(|&v| v) {
                        continue;
                    }
                    let off = d * w as i64 + e;
                    let src: Vec<i64> = (0..l).map(|j| (p0 + j) as i64 + off).collect();
                    let base = if src[0] >= 0 && src[0] + l as i64 <= n as i64 {
                        src[0]
                    } else {
                        let first = src.iter().zip(&valid).find(|(_, &v)| v).map_or(0, |(&c, _)| c);
                        first.clamp(0, (n - l) as i64)
                    };
                    let idx: Vec<usize> =
                        src.iter().zip(&valid).map(|(&c, &v)| if v { (c - base) as usize } else { 0 }).collect();
                    let x = gather(k, p, xbase, base, &idx, &valid, le);
                    let wv = weight(k, p, &ctx, ky * g.kw + kx);
                    acc = k.fmadd(x, wv, acc);
                }
            }
            store(k, p, &ctx, acc, obase, rbase, (p0 * 4) as i32);
        }
    });
}

/// The assembled flat pass ([`dw_flat`]: 16 lanes, masks for the lanes
/// the 128-bit kernel zeroes or skips, so its bits) where the target has
/// AVX-512F, the conv is a stride-1 "same" one of at most 9 taps on a plane
/// of at most [`FLAT_ZMM_MAX`] pixels, or of up to 25 (5x5) on one of at
/// most [`FLAT_MAX`], with rows of at least 4, and the pass applies the
/// activation. 5x5 windows, 1 thread, minimum of `kerf bench`, against
/// `dw_plane`: 7x7, 512 channels 0.082 → 0.029 ms; 14x14, 256 channels
/// (PP-LCNet's) 0.058 → 0.042 ms; 28x28, 128 channels 0.087 → 0.088–0.090
/// ms (left to `dw_plane`). Measured on Zen 4 (1 thread, per layer,
/// `kerf bench --profile`): DS-CNN's 25x5, 64 channels, 6.2 → 2.5 µs
/// (128-bit flat path before); MobileNetV2's 7x7, 960 channels, 0.043 →
/// 0.025 ms (128-bit); 14x14, 384 channels, 0.035 → 0.025 ms and 576,
/// 0.050 → 0.038 ms (`dw_plane` before); 28x28, 192 channels, 0.063 →
/// 0.044 ms; 56x56, 144, 0.169 → 0.122 ms; 112x112, 32, 0.19 → 0.12 ms.
/// The code is unrolled over the plane (MobileNetV2's text grows from 125
/// to 259 KB; its read-only data shrinks by 560 KB: no 8-fold weights).
fn flat_zmm(k: &Kernel, g: &Geo, epi: Epilogue) -> Option<Vec<u8>> {
    let same = g.sh == 1 && g.sw == 1 && g.oh == g.h && g.ow == g.w;
    // more than 9 taps (up to 5x5) only on small planes: 7x7 and 14x14
    // gain, 28x28 does not (see above)
    let taps = g.kh * g.kw;
    let window = taps <= 9 || (taps <= DW_FLAT_MAX_TAPS && g.h * g.w <= FLAT_MAX);
    let fits = same && g.w >= 4 && g.h * g.w <= FLAT_ZMM_MAX && window;
    if !k.caps.avx512 || k.lanes() != 4 || !fits {
        return None;
    }
    let act = super::gemm_wide::act_epi(epi.act, epi.residual.is_some())?;
    dw_flat(&flat_plane(g, act))
}

/// `g`'s plane as the flat passes see it, with the epilogue `epi`: the
/// taps' offsets from the window's centre, and the groups of the 128-bit
/// kernel the plane would take (whose bits the passes give).
fn flat_plane(g: &Geo, epi: TileEpi) -> DwFlat {
    let taps = (0..g.kh * g.kw)
        .map(|t| ((t / g.kw * g.dh) as i64 - g.ph as i64, (t % g.kw * g.dw) as i64 - g.pw as i64))
        .collect();
    let groups = if g.h * g.w <= FLAT_MAX { Groups::Flat } else { Groups::Rows };
    DwFlat { h: g.h, w: g.w, taps, epi, groups }
}

/// The 8-lane flat pass ([`ymm_dw_flat`]) and its machine code, where the
/// target has AVX2 and the conv is a stride-1 "same" one of at most
/// [`DW_FLAT_MAX_TAPS`] taps on a plane of 8 to [`kerf_ir::DW_FLAT_MAX_PIXELS`] pixels
/// with rows of at least 4 ([`kerf_ir::op::Conv::on_depthwise_flat`], which
/// the `int8` rules read), the f32 conv's (`int` `None`) or the integer
/// one's. An f32 conv on an AVX-512 target takes [`flat_zmm`] first; an
/// integer one takes this pass there too (its sums are exact: the same
/// bytes on either pass, and this one reads no padding lanes).
/// Measured against the 128-bit flat path it replaces, 1 thread, `kerf
/// bench --profile --cpu haswell` on Zen 4: DS-CNN's 25x5 planes, 64
/// channels, 6.7 → 3.0 µs (the model 0.075 → 0.062 ms); MobileNetV2
/// (7x7 and 14x14 planes) 8.10–8.17 → 7.72–7.73 ms.
pub(super) fn flat_ymm(k: &Kernel, g: &Geo, epi: TileEpi, int: Option<Int>) -> Option<(YmmFlat, Vec<u8>)> {
    if !k.caps.avx2 || k.lanes() != 4 || !g.plane().flat_fits() {
        return None;
    }
    let p = YmmFlat { plane: flat_plane(g, epi), int };
    let code = ymm_dw_flat(&p);
    // the rules give such planes u8 outputs only this pass stores
    debug_assert!(code.is_some(), "internal: the flat pass refused a plane flat_fits takes: {p:?}");
    Some((p, code?))
}

/// Per channel its `taps` weights then its bias: the assembled passes' weights.
fn per_channel(w: &[f32], bias: &[f32], taps: usize) -> Vec<f32> {
    w.chunks(taps).zip(bias).flat_map(|(wc, b)| wc.iter().chain([b]).copied()).collect()
}

/// A flat pass to run per plane: its machine code and family, the bytes
/// per input and per output element, and the task scratch it takes (the
/// 8-lane pass's copy), if any.
pub(super) struct FlatRun {
    pub(super) family: Family,
    pub(super) code: Vec<u8>,
    pub(super) io: (usize, usize),
    pub(super) scratch: Option<usize>,
}

/// [`flat`] on an assembled pass: one call per plane, with the plane's
/// output, input, its channel's values of `per` (the same number per
/// channel: taps' weights then bias, or codes, scale and bias) and the
/// residual, and the task's scratch.
pub(super) fn flat_assembled(k: &mut Kernel, g: &Geo, per: &[f32], epi: Epilogue, run: FlatRun) -> LResult {
    let (n, taps) = (g.h * g.w, g.kh * g.kw);
    let vals = per.len() / g.c.max(1);
    let wb = k.blob_f32(per);
    let (xp, out) = (k.input(0), k.output(0));
    let cost = DW_COST * (2 * n * taps + g.w) as u64;
    let (lo, hi) = match run.scratch {
        Some(bytes) => {
            let cap = (super::gemm::TASK_SCRATCH_BUDGET / bytes.max(1)).max(2);
            k.parallel_range_capped(g.n * g.c, 1, cost, cap)?
        }
        None => k.parallel_range(g.n * g.c, 1, cost)?,
    };
    let scratch = match run.scratch {
        Some(bytes) => {
            // the margins stay zero: each plane's copy writes only the plane
            let s = k.task_scratch(bytes);
            k.for_vec(bytes / 4, &mut |k, ty, i| {
                let z = k.fsplat(ty, 0.0);
                k.st_at(z, s, i, 4, 0);
            });
            s
        }
        None => k.ic(0),
    };
    let (in_el, out_el) = run.io;
    let code = k.code(run.family, run.code);
    let sig = k.ukernel_sig(5);
    let c = g.c;
    k.for_dyn(lo, hi, 1, |k, nc| {
        let ch = k.b.ins().urem_imm_s(nc, c as i64);
        let x = k.addr(xp, nc, (n * in_el) as i64);
        let o = k.addr(out, nc, (n * out_el) as i64);
        let r = match epi.residual {
            Some(r) => k.addr(r, nc, (n * 4) as i64),
            None => o,
        };
        let wc = k.addr(wb, ch, (vals * 4) as i64);
        k.b.ins().call_indirect(sig, code, &[o, x, wc, r, scratch]);
    });
    Ok(())
}

/// Per-row values shared by the passes of one output row.
struct RowCtx<'r> {
    /// Input row pointer per `ky` (the zero row in the padding).
    rows: &'r [Value],
    /// The channel's weights `[kh·kw][l]`.
    wrow: Value,
    /// Bias splat (accumulators' initial value).
    bias: Value,
    orow: Value,
    rrow: Option<Value>,
    act: Epilogue,
}

/// How position `ox0`'s lanes read tap column `kx` (compile time).
fn tap_load(p: &Plan, ox0: usize, kx: usize) -> TapLoad {
    let g = &p.g;
    let (l, s) = (p.l, g.sw);
    let o = (kx * g.dw) as i64 - g.pw as i64;
    let w = g.w as i64;
    let cols: Vec<i64> = (0..l).map(|j| ((ox0 + j) * s) as i64 + o).collect();
    let valid: Vec<bool> = cols.iter().map(|&c| (0..w).contains(&c)).collect();
    if !valid.iter().any(|&v| v) {
        return TapLoad::Skip;
    }
    // the window loaded for these lanes: `l` floats (stride 1) or a pair (stride 2)
    let win = (if l > 1 { s * l } else { 1 }) as i64;
    if valid.iter().all(|&v| v) && cols[0] + win <= w {
        return TapLoad::Direct(cols[0]);
    }
    let first = cols.iter().zip(&valid).find(|(_, &v)| v).map_or(0, |(&c, _)| c);
    let base = first.clamp(0, w - win);
    let idx = cols.iter().zip(&valid).map(|(&c, &v)| if v { (c - base) as usize } else { 0 }).collect();
    TapLoad::Gather { base, idx, valid }
}

/// The channel's weight (vector) of tap `t`.
fn weight(k: &mut Kernel, p: &Plan, ctx: &RowCtx, t: usize) -> Value {
    k.ld_ro(p.ty, ctx.wrow, (t * p.l * 4) as i32)
}

/// `nv` interior positions starting at output column `ox0` (run time).
fn interior_pass(k: &mut Kernel, p: &Plan, ctx: &RowCtx, ox0: Value, nv: usize) {
    let g = p.g;
    let (l, s) = (p.l, g.sw);
    let mut acc = vec![ctx.bias; nv];
    // byte offset of the pass's first output column in an input row
    let xo = k.b.ins().imul_imm_s(ox0, (s * 4) as i64);
    let le = MemFlagsData::new().with_endianness(Endianness::Little);
    for ky in 0..g.kh {
        let src = k.b.ins().iadd(ctx.rows[ky], xo);
        let wts: Option<Vec<Value>> =
            (g.kw <= 4).then(|| (0..g.kw).map(|kx| weight(k, p, ctx, ky * g.kw + kx)).collect());
        for (v, a) in acc.iter_mut().enumerate() {
            // (offset, lo, hi) of the last pair loaded for this position
            let mut last: Option<(i64, Value, Value)> = None;
            for kx in 0..g.kw {
                let o = (kx * g.dw) as i64 - g.pw as i64;
                let off = ((v * l * s) as i64 + o) * 4;
                let x = if let Some((even, odd)) = p.pair {
                    let (a0, b0, imm) = match last {
                        Some((lo_off, a0, b0)) if lo_off == o - 1 => (a0, b0, odd),
                        _ => {
                            let a0 = k.ld_ro(types::I8X16, src, off as i32);
                            let b0 = k.ld_ro(types::I8X16, src, (off + 4 * l as i64) as i32);
                            last = Some((o, a0, b0));
                            (a0, b0, even)
                        }
                    };
                    let sh = k.b.ins().shuffle(a0, b0, imm);
                    k.b.ins().bitcast(p.ty, le, sh)
                } else {
                    k.ld_ro(p.ty, src, off as i32)
                };
                let wv = match &wts {
                    Some(ws) => ws[kx],
                    None => weight(k, p, ctx, ky * g.kw + kx),
                };
                *a = k.fmadd(x, wv, *a);
            }
        }
    }
    let po = k.b.ins().imul_imm_s(ox0, 4);
    let dst = k.b.ins().iadd(ctx.orow, po);
    let res = ctx.rrow.map(|r| k.b.ins().iadd(r, po));
    for (v, a) in acc.into_iter().enumerate() {
        store(k, p, ctx, a, dst, res, (v * l * 4) as i32);
    }
}

/// Border positions (compile-time output columns), one accumulator each.
fn border_pass(k: &mut Kernel, p: &Plan, ctx: &RowCtx, cols: &[usize]) {
    let g = p.g;
    let l = p.l;
    let le = MemFlagsData::new().with_endianness(Endianness::Little);
    let mut acc = vec![ctx.bias; cols.len()];
    for ky in 0..g.kh {
        let src = ctx.rows[ky];
        for kx in 0..g.kw {
            let plans: Vec<TapLoad> = cols.iter().map(|&ox0| tap_load(p, ox0, kx)).collect();
            if plans.iter().all(|t| matches!(t, TapLoad::Skip)) {
                continue;
            }
            let wv = weight(k, p, ctx, ky * g.kw + kx);
            for (a, plan) in acc.iter_mut().zip(plans) {
                let x = match plan {
                    TapLoad::Skip => continue,
                    TapLoad::Direct(c) if g.sw == 1 || l == 1 => k.ld_ro(p.ty, src, (c * 4) as i32),
                    TapLoad::Direct(c) => {
                        let idx: Vec<usize> = (0..l).map(|j| 2 * j).collect();
                        gather(k, p, src, c, &idx, &vec![true; l], le)
                    }
                    TapLoad::Gather { base, idx, valid } => gather(k, p, src, base, &idx, &valid, le),
                };
                *a = k.fmadd(x, wv, *a);
            }
        }
    }
    for (&ox0, a) in cols.iter().zip(acc) {
        let off = (ox0 * 4) as i32;
        store(k, p, ctx, a, ctx.orow, ctx.rrow, off);
    }
}

/// Loads the window at column `base` of row `src` (one vector for stride 1,
/// two for stride 2) and returns lane `j` = window float `idx[j]`, zero where
/// `!valid[j]`. Only lane-granular shuffles that baseline x86-64 (SSE2) has
/// are used: the stride-2 even/odd deinterleave (`shufps`) and a one-source
/// lane permutation (`pshufd`); a general byte shuffle would be a libcall.
fn gather(k: &mut Kernel, p: &Plan, src: Value, base: i64, idx: &[usize], valid: &[bool], le: MemFlagsData) -> Value {
    let l = p.l;
    let mut x = k.ld_ro(types::I8X16, src, (base * 4) as i32);
    // lane j of `x` holds window float `have[j]`
    let mut perm: Vec<usize> = idx.to_vec();
    if let Some((even, odd)) = p.pair {
        let b = k.ld_ro(types::I8X16, src, ((base + l as i64) * 4) as i32);
        // every valid lane reads the same parity (lanes are 2 floats apart)
        let par = idx.iter().zip(valid).find(|(_, &v)| v).map_or(0, |(&i, _)| i % 2);
        x = k.b.ins().shuffle(x, b, if par == 0 { even } else { odd });
        perm = idx.iter().map(|&i| i.saturating_sub(par) / 2).collect();
    }
    // invalid lanes are masked: let them keep their own lane
    for (j, q) in perm.iter_mut().enumerate() {
        if !valid[j] {
            *q = j;
        }
    }
    if perm.iter().enumerate().any(|(j, &q)| q != j) {
        let idx: Vec<u8> = perm.iter().map(|&i| i as u8).collect();
        let imm = k.lane_mask(&idx);
        x = k.b.ins().shuffle(x, x, imm);
    }
    let x = k.b.ins().bitcast(p.ty, le, x);
    if valid.iter().all(|&v| v) {
        return x;
    }
    let mask: Vec<u8> = valid.iter().flat_map(|&v| [if v { 0xff } else { 0 }; 4]).collect();
    let mc = k.b.func.dfg.constants.insert(ConstantData::from(mask.as_slice()));
    let m = k.b.ins().vconst(p.ty, mc);
    k.b.ins().band(x, m)
}

/// `act(acc + residual)` stored at `dst + off` (residual at `res + off`).
fn store(k: &mut Kernel, p: &Plan, ctx: &RowCtx, acc: Value, dst: Value, res: Option<Value>, off: i32) {
    let mut y = acc;
    if let Some(r) = res {
        let rv = k.ld_ro(p.ty, r, off);
        y = k.b.ins().fadd(y, rv);
    }
    let y = apply_act(k, p.ty, ctx.act.act, y);
    k.st(y, dst, off);
}
