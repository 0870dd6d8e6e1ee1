//! Direct convolution for a short reduction (`K = C·kh·kw` ≤ [`MAX_K`], one
//! group) on a small output plane with narrow rows, e.g. the first layer of
//! DS-CNN (1 input channel, 10×4 taps, 25×5 outputs). The GEMM engine's
//! im2col and packing do not amortise over so few taps and pixels; here the
//! taps are broadcast and the output channels are the vector lanes.
//!
//! The image is first copied into a zero-padded scratch copy (task-private,
//! refilled per image), so every tap of every pixel is an in-bounds load.
//! Tile: `PIX` consecutive pixels of the flattened output plane (crossing
//! rows, so a 5-wide row wastes no lanes) × `QV` vectors of 4 output
//! channels, `PIX·QV` accumulators starting at the bias. The `(c, ky)` pairs
//! are a run-time loop carrying the accumulators, its body the `kw` taps:
//! per tap each pixel's input float is broadcast once and each weight vector
//! (packed `[oc/4][C·kh][kw][4]`) loaded once, then `PIX·QV` FMAs.
//! Afterwards each 4 × 4 block (4 pixels × 4 channels) is transposed so that
//! every store writes 4 pixels of one channel plane (NCHW), with the fused
//! epilogue applied. The last tile overlaps the previous one when 4 does not
//! divide the plane (a conv's output never aliases its inputs).
//!
//! Wide rows are left to the GEMM path: on MobileNet's 3×3 RGB stem (112-wide
//! rows) a row-tiled variant of this kernel measured ~10% slower than it.
//! So is everything on targets with the assembled 256-bit GEMM tile: there
//! the packed conv's im2col and packing cost less than this kernel's 128-bit
//! FMAs (DS-CNN's first conv, `kerf bench --profile`, AVX2 host: 57 µs here,
//! 14 µs on the packed conv).

use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::conv_geo::Geo;
use super::epilogue::{apply_act, Epilogue};
use super::{Kernel, LResult};

/// Output pixels per tile (one `f32x4` after the transpose).
const PIX: usize = 4;
/// Vectors of 4 output channels per tile (`PIX·QV` accumulators). Cranelift
/// builds pure values at their first use, one accumulator's chain (over the
/// `kw` taps of a loop body) at a time, so operands shared between chains
/// stay live and a few accumulators spill; measured on DS-CNN's first conv,
/// 2 is still ~12% faster than 1 (no spills, but half the FMAs per load)
/// and a one-tap loop body (no sharing) 1.6x slower (loop overhead).
const QV: usize = 2;
/// Output rows narrower than this (wider ones go to the GEMM path).
const MAX_OW: usize = 15;
/// Largest padded copy of the image (per task).
const MAX_COPY_BYTES: usize = 256 * 1024;
/// Largest reduction length this kernel takes.
pub const MAX_K: usize = 48;

/// Whether this kernel handles the conv (one group; 1-D has `h = kh = 1`):
/// 128-bit SIMD without the assembled 256-bit tiles (`caps.avx2`), a short
/// but not pointwise reduction, whole channel tiles, narrow rows, a plane of
/// at least `PIX` pixels and a small padded copy.
pub(super) fn fits(g: &Geo, caps: &crate::isa::Caps) -> bool {
    let k = g.c * g.kh * g.kw;
    caps.simd
        && !caps.avx2
        && g.group == 1
        && g.n >= 1
        && k <= MAX_K
        && g.kh * g.kw > 1
        && g.oc.is_multiple_of(4 * QV)
        && g.ow <= MAX_OW
        && g.oh * g.ow >= PIX
        && g.c * padded_rows(g) * padded_cols(g) * 4 <= MAX_COPY_BYTES
}

/// Rows of the padded copy.
fn padded_rows(g: &Geo) -> usize {
    (g.h + g.ph).max((g.oh.max(1) - 1) * g.sh + (g.kh - 1) * g.dh + 1)
}

/// Columns of the padded copy.
fn padded_cols(g: &Geo) -> usize {
    (g.w + g.pw).max((g.ow.max(1) - 1) * g.sw + (g.kw - 1) * g.dw + 1)
}

/// `w`: `[oc][c][kh][kw]`, `bias`: `[oc]`, both constants; call only when
/// [`fits`].
pub(super) fn conv(k: &mut Kernel, g: &Geo, w: &[f32], bias: &[f32], epi: Epilogue) -> LResult {
    let g = *g;
    let kk = g.c * g.kh * g.kw;
    if w.len() != g.oc * kk || bias.len() != g.oc {
        return Err(format!(
            "small-K conv: expected {} weights and {} biases, got {} and {}",
            g.oc * kk,
            g.oc,
            w.len(),
            bias.len()
        ));
    }
    // weights [oc/4][c*kh][kw][4]
    let nob = g.oc / 4;
    let mut wp = vec![0f32; nob * kk * 4];
    for o in 0..g.oc {
        for t in 0..kk {
            wp[((o / 4) * kk + t) * 4 + o % 4] = w[o * kk + t];
        }
    }
    let wb = k.blob_f32(&wp);
    let bb = k.blob_f32(bias);
    let xp = k.input(0);
    let out = k.output(0);
    let npix = g.oh * g.ow;
    let (hp, wpad) = (padded_rows(&g), padded_cols(&g));
    let plane = hp * wpad;
    let (lo, hi) = k.parallel_range(nob / QV, 1, (2 * g.n * npix * QV * 4 * kk) as u64)?;
    let pad = k.task_scratch(g.c * plane * 4);
    let cx = Ctx { g, wb, bb, pad, out, epi };
    let ngr = npix / PIX;
    let tail = !npix.is_multiple_of(PIX);
    k.for_n(0, g.n as i64, 1, |k, b| {
        // zero, then copy the image into the padded planes
        k.for_vec(g.c * plane, &mut |k, ty, i| {
            let z = k.fsplat(ty, 0.0);
            k.st_at(z, pad, i, 4, 0);
        });
        let img = k.b.ins().imul_imm_s(b, (g.c * g.h * g.w * 4) as i64);
        let img = k.b.ins().iadd(xp, img);
        k.for_n(0, (g.c * g.h) as i64, 1, |k, r| {
            // r = ic*h + y -> padded row ic*hp + y + ph
            let src = k.addr(img, r, (g.w * 4) as i64);
            let ic = k.b.ins().udiv_imm_s(r, g.h as i64);
            let pr = k.b.ins().imul_imm_s(ic, (hp - g.h) as i64);
            let pr = k.b.ins().iadd(pr, r);
            let pr = k.b.ins().iadd_imm_s(pr, g.ph as i64);
            let dst = k.addr(pad, pr, (wpad * 4) as i64);
            let dst = k.add_c(dst, (g.pw * 4) as i64);
            k.for_vec(g.w, &mut |k, ty, i| {
                let v = k.ld_at(ty, src, i, 4, 0);
                k.st_at(v, dst, i, 4, 0);
            });
        });
        k.for_dyn(lo, hi, 1, |k, u| {
            let ob = k.b.ins().imul_imm_s(u, QV as i64);
            k.for_n(0, (ngr * PIX) as i64, PIX as i64, |k, p0| tile(k, &cx, b, ob, p0));
            if tail {
                let p0 = k.ic((npix - PIX) as i64);
                tile(k, &cx, b, ob, p0);
            }
        });
    });
    Ok(())
}

/// Values shared by every tile.
struct Ctx {
    g: Geo,
    /// Packed weights and the bias.
    wb: Value,
    bb: Value,
    /// The padded copy `[c][hp][wp]`.
    pad: Value,
    out: Value,
    epi: Epilogue,
}

/// One tile: `PIX` output pixels from flattened pixel `p0` of image `b`,
/// output channels `4·ob .. 4·(ob+QV)`.
fn tile(k: &mut Kernel, cx: &Ctx, b: Value, ob: Value, p0: Value) {
    let g = cx.g;
    let kk = g.c * g.kh * g.kw;
    let (hp, wpad) = (padded_rows(&g), padded_cols(&g));
    let npix = g.oh * g.ow;
    let ty = types::F32X4;
    // accumulators [q][p], starting at the bias
    let bo = k.b.ins().imul_imm_s(ob, 16);
    let bptr = k.b.ins().iadd(cx.bb, bo);
    let mut init = Vec::with_capacity(QV * PIX);
    for q in 0..QV {
        let bv = k.ld_ro(ty, bptr, (q * 16) as i32);
        init.extend(std::iter::repeat_n(bv, PIX));
    }
    // tap-0 byte offset of each pixel within a padded plane
    let offs: Vec<Value> = (0..PIX)
        .map(|p| {
            let q = k.b.ins().iadd_imm_s(p0, p as i64);
            let oy = k.b.ins().udiv_imm_s(q, g.ow as i64);
            let ox = k.b.ins().urem_imm_s(q, g.ow as i64);
            let y = k.b.ins().imul_imm_s(oy, (g.sh * wpad * 4) as i64);
            let x = k.b.ins().imul_imm_s(ox, (g.sw * 4) as i64);
            k.b.ins().iadd(y, x)
        })
        .collect();
    // this tile's weights: channel block ob, then [r][kx][4] per block
    let wo = k.b.ins().imul_imm_s(ob, (kk * 16) as i64);
    let wbase = k.b.ins().iadd(cx.wb, wo);
    let zero = k.ic(0);
    let nr = k.ic((g.c * g.kh) as i64);
    let acc = k.for_acc(zero, nr, 1, &init, |k, r, accs| {
        // r = (ic, ky): padded row ic*hp + ky*dh (+ the pixel's own row)
        let ic = k.b.ins().udiv_imm_s(r, g.kh as i64);
        let ky = k.b.ins().urem_imm_s(r, g.kh as i64);
        let pr = k.b.ins().imul_imm_s(ic, hp as i64);
        let kyd = k.b.ins().imul_imm_s(ky, g.dh as i64);
        let pr = k.b.ins().iadd(pr, kyd);
        let base = k.addr(cx.pad, pr, (wpad * 4) as i64);
        let pix: Vec<Value> = offs.iter().map(|&o| k.b.ins().iadd(base, o)).collect();
        let wr = k.b.ins().imul_imm_s(r, (g.kw * 16) as i64);
        let wr = k.b.ins().iadd(wbase, wr);
        let mut a = accs.to_vec();
        for kx in 0..g.kw {
            // the copy is written by this kernel: plain loads, never moved above it
            let xs: Vec<Value> = pix
                .iter()
                .map(|&pp| {
                    let s = k.ld(types::F32, pp, (kx * g.dw * 4) as i32);
                    k.b.ins().splat(ty, s)
                })
                .collect();
            for q in 0..QV {
                let wv = k.ld_ro(ty, wr, ((q * kk + kx) * 16) as i32);
                for (p, &x) in xs.iter().enumerate() {
                    a[q * PIX + p] = k.fmadd(x, wv, a[q * PIX + p]);
                }
            }
        }
        a
    });
    // element offset of (image b, channel 4*ob, pixel p0)
    let e = k.b.ins().imul_imm_s(b, (g.oc * npix) as i64);
    let co = k.b.ins().imul_imm_s(ob, (4 * npix) as i64);
    let e = k.b.ins().iadd(e, co);
    let e = k.b.ins().iadd(e, p0);
    let dst = k.addr(cx.out, e, 4);
    let res = cx.epi.residual.map(|r| k.addr(r, e, 4));
    for q in 0..QV {
        let a = &acc[q * PIX..(q + 1) * PIX];
        let cols = k.transpose4([a[0], a[1], a[2], a[3]]);
        for (j, v) in cols.into_iter().enumerate() {
            // channel 4*(ob+q) + j
            let off = (((q * 4 + j) * npix) * 4) as i32;
            let mut y = v;
            if let Some(r) = res {
                let rv = k.ld_ro(ty, r, off);
                y = k.b.ins().fadd(y, rv);
            }
            let y = apply_act(k, ty, cx.epi.act, y);
            k.st(y, dst, off);
        }
    }
}
