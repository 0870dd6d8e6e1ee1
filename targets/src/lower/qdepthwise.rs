//! A depthwise [`kerf_ir::op::QConv`] on the assembled integer passes
//! ([`conv`] picks). On AVX2 targets small stride-1 "same" planes take the
//! 8-lane flat pass ([`flat`]): f32 sums of `x − zp`, which are exact
//! integers. On AVX-512 VNNI targets the others, and those with rows of
//! [`QUAD_ROWS_FROM`] pixels or more, take the quad pass
//! ([`crate::ukernel::avx512::dw_quad`]): it reads each channel's u8 plane
//! in place (padding masked in as the zero point) and sums in integers
//! with `vpdpbusd`, a row of up to four taps per instruction. Both store
//! f32 or, for a requantising `QConv` (`QOut::Quant`), the next layer's u8
//! themselves; the flat pass is called once per plane, the quad pass once
//! per task's run of planes.
//!
//! Contract: the reference's bits (f32 out) and bytes (u8 out) for None,
//! Relu, Clip and HardSwish's tile form, like every integer kernel;
//! `None` where the target or the geometry is not the pass's (the caller
//! then takes the f32 pass of `depthwise::quantised` or the scalar kernel).

use cranelift_codegen::ir::InstBuilder;

use super::conv_geo::Geo;
use super::depthwise::{FlatRun, QDepthwise};
use super::epilogue::Epilogue;
use super::{Family, Kernel, LResult};
use crate::ukernel::avx2::Int;
use crate::ukernel::avx512::{dw_quad, DwQuad, DW_QUAD_CORR, DW_QUAD_TABLE};

/// The depthwise QConv `q` on the quad pass, or `None` (see the module docs).
fn vnni(k: &mut Kernel, g: &Geo, q: &QDepthwise, epi: Epilogue) -> Option<LResult> {
    if !k.caps.vnni || q.check(g).is_err() {
        return None;
    }
    let tile = super::qconv::int_epi(epi.act, epi.residual.is_some(), (q.scale, q.bias))?;
    let spec = DwQuad { plane: g.plane(), zp: q.zp, epi: tile, quant: q.quant };
    let code = dw_quad(&spec)?;
    Some(run(k, g, q, epi, (code, spec.indices())))
}

/// The depthwise QConv `q` on the first pass that takes it: the flat pass
/// ([`flat`]), VNNI's quad pass ([`vnni`]), the padded-plane float pass
/// (`depthwise::quantised`, f32 out), else, `padded`, the scalar integer
/// kernel (the integer GEMM, the caller's `None`, reads no padding).
pub(super) fn conv(k: &mut Kernel, g: &Geo, q: &QDepthwise, epi: Epilogue, padded: bool) -> Option<LResult> {
    let done = flat(k, g, q, epi).or_else(|| vnni(k, g, q, epi)).or_else(|| super::depthwise::quantised(k, g, q, epi));
    done.or_else(|| padded.then(|| super::depthwise::quantised_scalar(k, g, q, epi)))
}

/// Output rows from which the quad pass beats the flat one, where the
/// target has both (VNNI) and the quad pass takes the plane. The quad
/// pass spends a 16-pixel block per output row and row of taps, the flat
/// pass an 8-pixel vector per tap: 1 thread, Zen 4, `kerf bench
/// --profile`, quad against flat: DS-CNN's 25x5 planes (64 channels) 5.9
/// against 4.0 µs; MobileNetV2's 7x7 (960) 26 against 33 µs and 14x14
/// (384) 20 against 36 µs.
const QUAD_ROWS_FROM: usize = 7;

/// The depthwise QConv `q` on the 8-lane flat pass
/// ([`crate::ukernel::avx2::ymm_dw_flat`], from the u8 plane: small
/// stride-1 "same" planes, [`kerf_ir::DepthwisePlane::flat_fits`]), which
/// stores f32 or the next layer's u8 itself; `None` where the target or
/// the geometry is not the pass's.
fn flat(k: &mut Kernel, g: &Geo, q: &QDepthwise, epi: Epilogue) -> Option<LResult> {
    if q.check(g).is_err() || k.caps.vnni && g.ow >= QUAD_ROWS_FROM && g.plane().quads_fit() {
        return None;
    }
    let tile = super::qconv::int_epi(epi.act, epi.residual.is_some(), (q.scale, q.bias))?;
    let (p, code) = super::depthwise::flat_ymm(k, g, tile, Some(Int { zp: q.zp, quant: q.quant }))?;
    let out_el = if q.quant.is_some() { 1 } else { 4 };
    let run = FlatRun { family: Family::Avx2, code, io: (1, out_el), scratch: Some(p.scratch_bytes()) };
    Some(super::depthwise::flat_assembled(k, g, &q.per_channel(g.kh * g.kw), epi, run))
}

/// Per channel its [`DW_QUAD_TABLE`] bytes: the rows' weight quads (s8,
/// zero past `kw`), the i32 `zp·Σ w` over every tap, the scale, the bias;
/// repeated per image, so a task's planes read consecutive entries.
fn table(g: &Geo, q: &QDepthwise) -> Vec<u8> {
    let taps = g.kh * g.kw;
    let mut out = Vec::with_capacity(g.c * DW_QUAD_TABLE);
    for c in 0..g.c {
        let codes: Vec<i32> = q.codes[c * taps..(c + 1) * taps].iter().map(|&v| v as i32).collect();
        let mut t = [0u8; DW_QUAD_TABLE];
        for (i, &v) in codes.iter().enumerate() {
            t[4 * (i / g.kw) + i % g.kw] = v as i8 as u8;
        }
        let corr = i32::from(q.zp) * codes.iter().sum::<i32>();
        let at = DW_QUAD_CORR;
        t[at..at + 4].copy_from_slice(&corr.to_le_bytes());
        t[at + 4..at + 8].copy_from_slice(&q.scale[c].to_le_bytes());
        t[at + 8..at + 12].copy_from_slice(&q.bias[c].to_le_bytes());
        out.extend(t);
    }
    out.repeat(g.n)
}

fn run(k: &mut Kernel, g: &Geo, q: &QDepthwise, epi: Epilogue, (code, indices): (Vec<u8>, Vec<u8>)) -> LResult {
    let tb = k.blob(table(g, q));
    let ib = k.blob(indices);
    let (xp, out) = (k.input(0), k.output(0));
    let out_el = if q.quant.is_some() { 1 } else { 4 };
    let cost = super::depthwise::DW_COST * (2 * g.oh * g.ow * g.kh * g.kw) as u64;
    let (lo, hi) = k.parallel_range(g.n * g.c, 1, cost)?;
    let code = k.code(Family::Avx512, code);
    let sig = k.ukernel_sig(6);
    let g = *g;
    let plane = |k: &mut Kernel, at: cranelift_codegen::ir::Value, bytes: usize| {
        let o = k.b.ins().imul_imm_s(lo, bytes as i64);
        k.b.ins().iadd(at, o)
    };
    let x = plane(k, xp, g.h * g.w);
    let o = plane(k, out, g.oh * g.ow * out_el);
    let t = plane(k, tb, DW_QUAD_TABLE);
    // the residual addressed from the output: `residual − out·(4 / out_el)`
    let r = match epi.residual {
        Some(r) => {
            let r = plane(k, r, g.oh * g.ow * 4);
            let scaled = k.b.ins().imul_imm_s(o, (4 / out_el) as i64);
            k.b.ins().isub(r, scaled)
        }
        None => k.ic(0),
    };
    let count = k.b.ins().isub(hi, lo);
    k.b.ins().call_indirect(sig, code, &[x, o, t, r, count, ib]);
    Ok(())
}
