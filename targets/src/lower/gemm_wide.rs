//! The assembled tiles of the GEMM engines: [`crate::ukernel::avx2::gemm_tile`]
//! (256-bit, [`crate::isa::Caps::avx2`]) or
//! [`crate::ukernel::avx512::zmm_gemm_tile`] (512-bit,
//! [`crate::isa::Caps::avx512`], B in groups of four panels), called from
//! the Cranelift loops of [`super::gemm`] (convs, Winograd) and
//! [`super::matmul`] (MatMul, Gemm).
//!
//! Contract: for the panels it covers (whole units of the widest tile,
//! then at most one of the narrower: 8 then 4 panels at 512 bits, 4 then
//! 2 at 256; in the conv engine also a row's last, partial unit:
//! [`run_conv_last`]), an assembled tile computes exactly what the
//! engine's Cranelift tile would (same layouts, same per-output FMA chain
//! over K in order, same epilogue operations in the same order), so a
//! product is bit-identical with and without it, at either width.
//! Epilogue activations other than none, Relu, HardSwish and the Clips
//! the vector selects express (`epilogue::clamp_select`) keep the
//! Cranelift tile, as do the MatMul engine's partial and leftover panels.

use cranelift_codegen::ir::{InstBuilder, Value};

use super::epilogue::{Act, Epilogue};
use super::gemm::{Gemm, Pass};
use super::{Family, Kernel};
use crate::ukernel::avx2::{gemm_tile, max_rows, GemmTile, Init};
use crate::ukernel::avx512::{zmm_gemm_tile, zmm_max_rows};
use crate::ukernel::epi::{Clamp, TileEpi};

/// Assembled tiles for one block of `h` rows: for each tile width (two
/// vectors, then one), the row splits `(first row, code)`.
pub(super) struct Wide {
    widths: [Vec<(usize, Vec<u8>)>; 2],
    /// The tiles' shape but for `rows`, `vecs` and `last_lanes`.
    tile: GemmTile,
    /// The tiles' vector width.
    width: Width,
    /// Rows of the block.
    h: usize,
    /// Bytes between rows of what the `bias` argument points at.
    bias_row: usize,
}

/// Which assembled tile family a plan uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Width {
    /// `ymm`: 8 columns (a pair of panels) per vector.
    Ymm,
    /// `zmm`: 16 columns (a quad of panels) per vector; B in groups of four.
    Zmm,
}

impl Width {
    /// Panels per vector.
    fn panels(self) -> usize {
        match self {
            Width::Ymm => 2,
            Width::Zmm => 4,
        }
    }
    fn family(self) -> Family {
        match self {
            Width::Ymm => Family::Avx2,
            Width::Zmm => Family::Avx512,
        }
    }
    fn max_rows(self, vecs: usize) -> usize {
        match self {
            Width::Ymm => max_rows(vecs),
            Width::Zmm => zmm_max_rows(),
        }
    }
    fn assemble(self, t: &GemmTile) -> Option<Vec<u8>> {
        match self {
            Width::Ymm => gemm_tile(t).ok(),
            Width::Zmm => zmm_gemm_tile(t).ok(),
        }
    }
}

/// A tile's pointers at one panel group, for the block's first row (I64
/// values; `residual` ignored by tiles without one).
pub(super) struct TilePtrs {
    pub a: Value,
    pub b: Value,
    pub out: Value,
    pub bias: Value,
    pub residual: Value,
}

impl Wide {
    /// How many of `full` full panels the tiles cover.
    pub(super) fn covers(&self, full: usize) -> usize {
        spans(full, self.width.panels())[1].1
    }
}

/// The panels each tile width covers of `full` full panels, as (first,
/// end, panels per tile): whole units of two vectors (`2·per` panels),
/// then at most one of one vector.
fn spans(full: usize, per: usize) -> [(usize, usize, usize); 2] {
    let two = full / (2 * per) * (2 * per);
    let one = if full - two >= per { per } else { 0 };
    [(0, two, 2 * per), (two, two + one, per)]
}

/// The tile epilogue of an activation (clamp or HardSwish), if the tiles
/// can apply it; `residual` says whether the residual is added first.
pub(super) fn act_epi(act: Act, residual: bool) -> Option<TileEpi> {
    let (clamp, hardswish) = match act {
        Act::None => (None, false),
        Act::Relu => (Some(Clamp { lo: 0.0, hi: None }), false),
        Act::Clip { lo, hi } if super::epilogue::selects_clamp(lo, Some(hi)) => {
            (Some(Clamp { lo, hi: Some(hi) }), false)
        }
        Act::HardSwish => (None, true),
        _ => return None,
    };
    Some(TileEpi { residual, clamp, hardswish, ..TileEpi::default() })
}

/// The tiles of `t` (its `rows` and `vecs` ignored) for a block of `h`
/// rows, or `None` without AVX2 or 4-lane panels: 512-bit where the
/// target has AVX-512 and B is in groups of four panels, else 256-bit.
/// `bias_row`: bytes between rows of the `bias` argument's tensor.
pub(super) fn plan(k: &Kernel, t: GemmTile, h: usize, bias_row: usize) -> Option<Wide> {
    if !k.caps.avx2 || k.lanes() != 4 || h == 0 {
        return None;
    }
    let width = if k.caps.avx512 && t.group == 4 { Width::Zmm } else { Width::Ymm };
    let widths = [row_splits(width, GemmTile { vecs: 2, ..t }, h)?, row_splits(width, GemmTile { vecs: 1, ..t }, h)?];
    Some(Wide { widths, tile: t, width, h, bias_row })
}

/// The tiles of `t` (its `rows` ignored) down a block of `h` rows, as
/// `(first row, code)`: as many rows each as the registers hold.
fn row_splits(width: Width, t: GemmTile, h: usize) -> Option<Vec<(usize, Vec<u8>)>> {
    let step = width.max_rows(t.vecs);
    (0..h).step_by(step).map(|r0| Some((r0, width.assemble(&GemmTile { rows: step.min(h - r0), ..t })?))).collect()
}

/// Calls the tiles over the first [`Wide::covers`]`(full)` panels: group
/// `c` (its first panel, I64) has the pointers `ptrs(k, c)`; `steps` K
/// steps.
pub(super) fn run(k: &mut Kernel, w: &Wide, full: usize, steps: usize, ptrs: &dyn Fn(&mut Kernel, Value) -> TilePtrs) {
    for (parts, (lo, hi, step)) in w.widths.iter().zip(spans(full, w.width.panels())) {
        if lo >= hi {
            continue;
        }
        let codes = codes(k, w.width, parts);
        k.for_n(lo as i64, hi as i64, step as i64, |k, c| {
            let p = ptrs(k, c);
            call_splits(k, w, &codes, &p, steps);
        });
    }
}

/// The row splits' code as kernel parameters.
fn codes(k: &mut Kernel, width: Width, parts: &[(usize, Vec<u8>)]) -> Vec<(usize, Value)> {
    parts.iter().map(|(r0, c)| (*r0, k.code(width.family(), c.clone()))).collect()
}

/// One call per row split, its pointers `p` moved down to its first row.
fn call_splits(k: &mut Kernel, w: &Wide, codes: &[(usize, Value)], p: &TilePtrs, steps: usize) {
    let sref = k.ukernel_sig(6);
    let n = k.ic(steps as i64);
    for &(r0, code) in codes {
        let a = k.add_c(p.a, (r0 * w.tile.a_row) as i64);
        let o = k.add_c(p.out, (r0 * w.tile.ldo) as i64);
        let b = k.add_c(p.bias, (r0 * w.bias_row) as i64);
        let r = k.add_c(p.residual, (r0 * w.tile.ldo) as i64);
        k.b.ins().call_indirect(sref, code, &[a, p.b, o, b, r, n]);
    }
}

/// The conv engine's tiles for an A block of height `h` in `pass`, on B
/// stored in groups of `group` panels (see [`super::gemm::Block`]).
pub(super) fn plan_conv(k: &Kernel, g: &Gemm, h: usize, pass: Pass, group: usize) -> Option<Wide> {
    let epi = if pass.last { g.epi } else { Epilogue::NONE };
    let t = GemmTile {
        rows: 0,
        vecs: 0,
        a_row: 4,
        a_step: h * 4,
        panel: g.kk * k.lanes() * 4,
        group,
        ldo: g.ldo * 4,
        init: if pass.first { Init::RowBias } else { Init::Partial },
        epi: act_epi(epi.act, epi.residual.is_some())?,
        // a whole vector at either width (the ymm tile clamps to 8)
        last_lanes: 16,
        prefetch: g.a_bytes > k.caps.cache.l2,
        indexed: None,
    };
    plan(k, t, h, 4)
}

/// The conv engine's last vector of a row of B panels when it is not
/// whole: panel `c` (a vector's first, starting a stored group) and the
/// next hold `lanes` (1..=7 at 256 bits, 1..=15 at 512) valid pixels —
/// leftover full panels and/or the zero-filled partial one — computed by
/// one-vector tiles of `w`'s shape that read and write only those pixels
/// (instead of the 128-bit Cranelift tile over the whole A block), at 256
/// bits where a 512-bit vector has at most 8 of them. `false`
/// (nothing emitted) when B is in single panels or the vector is not one.
pub(super) fn run_conv_last(k: &mut Kernel, w: &Wide, g: &Gemm, at: ConvAt, c: usize, lanes: usize) -> bool {
    let per = w.width.panels();
    if w.tile.group < 2 || !c.is_multiple_of(per) || !(1..4 * per).contains(&lanes) {
        return false;
    }
    // at most 8 pixels of a 512-bit vector: the 256-bit tile over its
    // first two panels (same operations, so the same bits) at half the
    // price where a zmm FMA is two ymm ones (Zen 4)
    let width = if w.width == Width::Zmm && lanes <= 8 { Width::Ymm } else { w.width };
    let t = GemmTile { vecs: 1, last_lanes: lanes, ..w.tile };
    let Some(parts) = row_splits(width, t, w.h) else { return false };
    let codes = codes(k, width, &parts);
    let c = k.ic(c as i64);
    let p = conv_ptrs(k, g, at, c);
    call_splits(k, w, &codes, &p, at.pass.len);
    true
}

/// Where the conv tiles of one row of B panels work: `brow` its first
/// panel at the pass's first K step, `orow` the output element offset of
/// (`m0`, its first pixel), `a_blk` the A block at that K step.
#[derive(Clone, Copy)]
pub(super) struct ConvAt {
    pub a_blk: Value,
    pub m0: Value,
    pub brow: Value,
    pub orow: Value,
    pub pass: Pass,
}

/// The conv tiles' pointers at panel `c` (I64) of the row `at`.
fn conv_ptrs(k: &mut Kernel, g: &Gemm, at: ConvAt, c: Value) -> TilePtrs {
    let l = k.lanes();
    let oe = k.addr(at.orow, c, l as i64);
    TilePtrs {
        a: at.a_blk,
        b: k.addr(at.brow, c, (g.kk * l * 4) as i64),
        out: k.addr(g.out, oe, 4),
        bias: k.addr(g.bias, at.m0, 4),
        residual: match g.epi.residual.filter(|_| at.pass.last) {
            Some(r) => k.addr(r, oe, 4),
            None => k.ic(0),
        },
    }
}

/// Calls the conv tiles over the first [`Wide::covers`]`(full)` panels of
/// the row `at`.
pub(super) fn run_conv(k: &mut Kernel, w: &Wide, g: &Gemm, at: ConvAt, full: usize) {
    let g2 = *g;
    run(k, w, full, at.pass.len, &|k, c| conv_ptrs(k, &g2, at, c));
}
