//! The GEMM engine's 256-bit path: [`crate::ukernel::avx2::gemm_tile`]
//! micro-kernels called from the Cranelift loops of [`super::gemm`] on
//! targets with [`crate::isa::Caps::avx2`].
//!
//! Contract: for the panels it covers (whole groups of four full panels of
//! a row of B panels, then one group of two), the assembled tile computes exactly what
//! `gemm::tile` would (same layouts, same per-output FMA chain over K in
//! order, same epilogue), so a product is bit-identical with and without
//! it. It applies when the pass's epilogue is none, Relu or a Clip the
//! vector selects express (`epilogue::clamp_select`); other activations,
//! partial panels and leftover panels stay on the Cranelift tile.

use cranelift_codegen::ir::{AbiParam, InstBuilder, Signature, Value};

use super::epilogue::{Act, Epilogue};
use super::gemm::{Gemm, Pass};
use super::{Kernel, PTR};
use crate::ukernel::avx2::{gemm_tile, max_rows, Clamp, GemmTile};

/// Assembled tiles for one A row block of a pass: for each tile width
/// (2 then 1 panel pairs), the row splits `(first row, rows, code)`.
pub(super) struct Wide {
    widths: [Vec<(usize, usize, Vec<u8>)>; 2],
}

impl Wide {
    /// How many of `full` full panels the tiles cover: whole groups of four,
    /// then one group of two.
    pub fn covers(&self, full: usize) -> usize {
        let four = full / 4 * 4;
        four + if full - four >= 2 { 2 } else { 0 }
    }
}

/// The clamp an epilogue's activation is, if the tile can apply it.
fn clamp_of(act: Act) -> Option<Option<Clamp>> {
    match act {
        Act::None => Some(None),
        Act::Relu => Some(Some(Clamp { lo: 0.0, hi: None })),
        // the selects' exceptions (`clamp_select`): -0 lower or zero upper bound
        Act::Clip { lo, hi } if lo.to_bits() != (-0.0f32).to_bits() && hi != 0.0 => {
            Some(Some(Clamp { lo, hi: Some(hi) }))
        }
        _ => None,
    }
}

/// The tiles for an A block of height `h` in `pass`, or `None` when the
/// 256-bit path does not apply (no AVX2, not 4-lane panels, an epilogue
/// the tile cannot apply).
pub(super) fn plan(k: &Kernel, g: &Gemm, h: usize, pass: Pass) -> Option<Wide> {
    let l = k.lanes();
    if !k.caps.avx2 || l != 4 || h == 0 {
        return None;
    }
    let epi = if pass.last { g.epi } else { Epilogue::NONE };
    let clamp = clamp_of(epi.act)?;
    let mut widths = [Vec::new(), Vec::new()];
    for (i, pairs) in [2, 1].into_iter().enumerate() {
        let mut r0 = 0;
        while r0 < h {
            let rows = max_rows(pairs).min(h - r0);
            let t = GemmTile {
                rows,
                pairs,
                a_step: h * 4,
                panel: g.kk * l * 4,
                ldo: g.ldo * 4,
                first: pass.first,
                residual: epi.residual.is_some(),
                clamp,
            };
            widths[i].push((r0, rows, gemm_tile(&t).ok()?));
            r0 += rows;
        }
    }
    Some(Wide { widths })
}

/// Calls the tiles for the first [`Wide::covers`]`(full)` panels of one
/// row of B panels: `brow` its first panel at the pass's first K step,
/// `orow` the output element offset of (`m0`, its first pixel), `a_blk`
/// the A block at that K step.
#[allow(clippy::too_many_arguments)]
pub(super) fn tiles(
    k: &mut Kernel,
    w: &Wide,
    g: &Gemm,
    a_blk: Value,
    m0: Value,
    brow: Value,
    orow: Value,
    full: usize,
    pass: Pass,
) {
    let four = full / 4 * 4;
    let spans = [(0, four, 4), (four, w.covers(full), 2)];
    for (parts, (lo, hi, step)) in w.widths.iter().zip(spans) {
        if lo < hi {
            span(k, parts, g, a_blk, m0, brow, orow, (lo, hi, step), pass);
        }
    }
}

/// Panels `lo..hi` in tiles of `step` panels, each tile split in rows as
/// `parts` says.
#[allow(clippy::too_many_arguments)]
fn span(
    k: &mut Kernel,
    parts: &[(usize, usize, Vec<u8>)],
    g: &Gemm,
    a_blk: Value,
    m0: Value,
    brow: Value,
    orow: Value,
    (lo, hi, step): (usize, usize, usize),
    pass: Pass,
) {
    let l = k.lanes();
    let pstride = (g.kk * l * 4) as i64;
    let mut sig = Signature::new(k.b.func.signature.call_conv);
    sig.params.extend(std::iter::repeat_n(AbiParam::new(PTR), 6));
    let sref = k.b.import_signature(sig);
    let codes: Vec<Value> = parts.iter().map(|(_, _, c)| k.code(c.clone())).collect();
    let residual = if pass.last { g.epi.residual } else { None };
    let g2 = *g;
    k.for_n(lo as i64, hi as i64, step as i64, |k, c| {
        let bp = k.addr(brow, c, pstride);
        let oe = k.addr(orow, c, l as i64);
        let out = k.addr(g2.out, oe, 4);
        let bias = k.addr(g2.bias, m0, 4);
        let res = match residual {
            Some(r) => k.addr(r, oe, 4),
            None => k.ic(0),
        };
        let n = k.ic(pass.len as i64);
        for (&(r0, _, _), &code) in parts.iter().zip(&codes) {
            let a = k.add_c(a_blk, (r0 * 4) as i64);
            let o = k.add_c(out, (r0 * g2.ldo * 4) as i64);
            let b = k.add_c(bias, (r0 * 4) as i64);
            let r = if residual.is_some() { k.add_c(res, (r0 * g2.ldo * 4) as i64) } else { res };
            k.b.ins().call_indirect(sref, code, &[a, bp, o, b, r, n]);
        }
    });
}
