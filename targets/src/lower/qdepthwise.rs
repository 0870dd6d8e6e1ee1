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
//!
//! Also here: a depthwise QConv's constants as every pass reads them
//! ([`QDepthwise`]) and the scalar integer kernel any padded one falls
//! back to on every target ([`quantised_scalar`]).

use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::conv_geo::Geo;
use super::depthwise::{FlatRun, DW_COST};
use super::epilogue::{apply_act, Epilogue};
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
    done.or_else(|| padded.then(|| quantised_scalar(k, g, q, epi)))
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

/// A depthwise [`kerf_ir::op::QConv`]'s constants: the int8 codes as
/// floats (`[c][kh·kw]`), the per-channel `s[c] = x_scale · w_scale[c]`
/// and bias, the input's zero point, and the requantising epilogue's grid
/// as `(factor, zp)` (`QOut::grid`), if any.
pub(super) struct QDepthwise<'a> {
    pub(super) codes: &'a [f32],
    pub(super) scale: &'a [f32],
    pub(super) bias: &'a [f32],
    pub(super) zp: u8,
    pub(super) quant: Option<(f32, u8)>,
}

impl QDepthwise<'_> {
    pub(super) fn check(&self, g: &Geo) -> LResult {
        let taps = g.kh * g.kw;
        if self.codes.len() != g.c * taps || self.scale.len() != g.c || self.bias.len() != g.c {
            return Err(format!("depthwise QConv: expected {} codes and {} scales and biases", g.c * taps, g.c));
        }
        Ok(())
    }
    /// Per channel its `taps` codes, its scale, its bias: the float
    /// passes' weight block.
    pub(super) fn per_channel(&self, taps: usize) -> Vec<f32> {
        let per = self.scale.iter().zip(self.bias);
        self.codes.chunks(taps).zip(per).flat_map(|(wc, (s, b))| wc.iter().chain([s, b]).copied()).collect()
    }
}

/// The integer depthwise conv of `depthwise::quantised` where the assembled pass
/// does not apply to a padded depthwise QConv (no AVX2, strides above 2,
/// rows under 4 pixels, an activation the pass lacks, a u8 output): one
/// output at a time, each in-bounds tap's
/// `(x − zp)·w` summed in i32 (padded taps add nothing), then the op's
/// epilogue. Exact and slow: it exists so that every padded depthwise
/// `QConv` runs on every target.
pub(super) fn quantised_scalar(k: &mut Kernel, g: &Geo, q: &QDepthwise, epi: Epilogue) -> LResult {
    q.check(g)?;
    let (g, taps) = (*g, g.kh * g.kw);
    let wb = k.blob(q.codes.iter().flat_map(|&c| (c as i32).to_le_bytes()).collect());
    let (sb, bb) = (k.blob_f32(q.scale), k.blob_f32(q.bias));
    let (xp, out) = (k.input(0), k.output(0));
    let (lo, hi) = k.parallel_range(g.n * g.c, 1, DW_COST * (2 * g.oh * g.ow * taps) as u64)?;
    let mut result: LResult = Ok(());
    k.for_dyn(lo, hi, 1, |k, nc| {
        let ch = k.b.ins().urem_imm_s(nc, g.c as i64);
        let xbase = k.addr(xp, nc, (g.h * g.w) as i64);
        let wrow = k.addr(wb, ch, (taps * 4) as i64);
        let s = k.ld_at(types::F32, sb, ch, 4, 0);
        let b = k.ld_at(types::F32, bb, ch, 4, 0);
        let plane = k.b.ins().imul_imm_s(nc, (g.oh * g.ow) as i64);
        k.for_n(0, g.oh as i64, 1, |k, oy| {
            k.for_n(0, g.ow as i64, 1, |k, ox| {
                let acc = scalar_sum(k, &g, (xbase, wrow), (oy, ox), q.zp);
                let f = k.b.ins().fcvt_from_sint(types::F32, acc);
                let f = k.b.ins().fmul(f, s);
                let mut f = k.b.ins().fadd(f, b);
                let row = k.b.ins().imul_imm_s(oy, g.ow as i64);
                let e = k.b.ins().iadd(plane, row);
                let e = k.b.ins().iadd(e, ox);
                if let Some(r) = epi.residual {
                    let rv = k.ld_at(types::F32, r, e, 4, 0);
                    f = k.b.ins().fadd(f, rv);
                }
                let y = apply_act(k, types::F32, epi.act, f);
                match q.quant {
                    None => k.st_at(y, out, e, 4, 0),
                    Some((f, zp)) => match super::quantize::one_value(k, y, kerf_ir::op::GridStep::Mul(f), zp) {
                        Ok(v) => {
                            let d = k.addr(out, e, 1);
                            k.b.ins().istore8(super::loops::mem(), v, d, 0);
                        }
                        Err(e) => result = Err(e),
                    },
                }
            });
        });
    });
    result
}

/// `Σ (x − zp)·w` (I32) of output `(oy, ox)` over the in-bounds taps of
/// the channel at `xbase` with i32 weights at `wrow`.
fn scalar_sum(k: &mut Kernel, g: &Geo, (xbase, wrow): (Value, Value), (oy, ox): (Value, Value), zp: u8) -> Value {
    let mut acc = k.b.ins().iconst(types::I32, 0);
    for t in 0..g.kh * g.kw {
        let (ky, kx) = (t / g.kw, t % g.kw);
        let iy = k.b.ins().imul_imm_s(oy, g.sh as i64);
        let iy = k.b.ins().iadd_imm_s(iy, (ky * g.dh) as i64 - g.ph as i64);
        let ix = k.b.ins().imul_imm_s(ox, g.sw as i64);
        let ix = k.b.ins().iadd_imm_s(ix, (kx * g.dw) as i64 - g.pw as i64);
        let (oky, okx) = (k.in_range(iy, g.h as i64), k.in_range(ix, g.w as i64));
        let ok = k.b.ins().band(oky, okx);
        let at = k.b.ins().imul_imm_s(iy, g.w as i64);
        let at = k.b.ins().iadd(at, ix);
        let zero = k.ic(0);
        let at = k.b.ins().select(ok, at, zero);
        let p = k.b.ins().iadd(xbase, at);
        let x = k.b.ins().uload8(types::I32, super::loops::mem(), p, 0);
        let x = k.b.ins().iadd_imm_s(x, -i64::from(zp));
        let w = k.ld_ro(types::I32, wrow, (4 * t) as i32);
        let prod = k.b.ins().imul(x, w);
        let none = k.b.ins().iconst(types::I32, 0);
        let prod = k.b.ins().select(ok, prod, none);
        acc = k.b.ins().iadd(acc, prod);
    }
    acc
}
