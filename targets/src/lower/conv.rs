//! Convolution (1-D and 2-D, groups, depthwise, dilation, padding); 3-D is
//! in `conv3d.rs`, Winograd in `winograd.rs`, ConvTranspose in
//! `conv_transpose.rs`, pointwise convs on small planes in `conv_lanes.rs`,
//! the packed-GEMM conv (and its task split) in
//! `conv_packed.rs`, short-K convs on narrow planes in `conv_smallk.rs`,
//! pattern-pruned weights in `conv_pattern.rs`.
//!
//! Conv: 1-D is run as 2-D with a height of 1. Weights are packed at compile
//! time as `[group][oc_block][kh][kw][ic][L]` with `L` output channels per
//! block (4 with SIMD when a group has at least 4 output channels, else 1),
//! zero past the group's channel count, and biases as `[group][oc_block][L]`.
//! For each output pixel the valid kernel window is computed once
//! (`kh_lo..kh_hi`, `kw_lo..kw_hi`), so no bounds checks run in the inner
//! loop, which broadcasts one input element and multiply-adds it into `L`
//! output channels at once.

use cranelift_codegen::ir::{types, InstBuilder, Value};
use kerf_ir::Op;

use super::conv_geo::{geometry, pad_input, tap_range, Geo};
use super::epilogue::{epilogue_pass, Act, Epilogue};
use super::{Kernel, LResult};

/// Conv and ConvFused. The packed-GEMM, depthwise, Winograd and small-K
/// kernels apply a fused epilogue before their stores, the pattern kernel
/// before its stores or per task over its own channels; every other path
/// (none of which splits into tasks) runs it as a second pass over the
/// output.
pub fn conv(k: &mut Kernel) -> LResult {
    k.require_f32()?;
    let (c, fused) = match &k.node.op {
        Op::Conv(c) => (c.clone(), None),
        Op::ConvFused(c, e) => (c.clone(), Some(*e)),
        _ => return Err("not a Conv".into()),
    };
    let epi = match fused {
        None => Epilogue::NONE,
        Some(e) => {
            let act = Act::of(e.act)?;
            let residual = if e.residual { Some(k.input(3)) } else { None };
            Epilogue { act, residual }
        }
    };
    if on_one_pixel(k, &c) {
        let (x, o) = (k.in_shape(0), k.out_shape(0));
        let shape = (x[0], x[1], o[1]);
        return super::matmul::pointwise_on_one_pixel(k, c.layer.clone(), fused.unwrap_or_default(), shape);
    }
    let done = conv_inner(k, &c, epi)?;
    if !done {
        let (out, n) = (k.output(0), k.out_shape(0).iter().product());
        epilogue_pass(k, epi, (out, epi.residual), n);
    }
    Ok(())
}

/// Whether the conv is a 1x1, one-group, unpadded conv on planes of one
/// pixel (its input and output): a Gemm in disguise
/// ([`super::matmul::pointwise_on_one_pixel`]).
fn on_one_pixel(k: &Kernel, c: &kerf_ir::op::Conv) -> bool {
    let w = &c.window;
    let ones = |s: &[usize]| s.len() > 2 && s[2..].iter().all(|&d| d == 1);
    c.group == 1
        && k.node.inputs.len() >= 2
        && ones(k.in_shape(0))
        && ones(k.out_shape(0))
        && w.kernel.iter().all(|&d| d == 1)
        && (0..w.rank()).all(|i| w.pad_begin(i) == 0 && w.pad_end(i) == 0)
}

/// Emits the conv; `Ok(true)` when the kernel already applied `epi`.
fn conv_inner(k: &mut Kernel, c: &kerf_ir::op::Conv, epi: Epilogue) -> LResult<bool> {
    if c.window.rank() > 2 {
        return super::conv3d::conv(k).map(|()| false);
    }
    if matches!(c.algo, kerf_ir::op::ConvAlgo::Winograd { .. }) {
        return super::winograd::conv(k, c, epi).map(|()| true);
    }
    let gm = geometry(k, &c.window, c.group)?;
    let icg = gm.c / gm.group;
    let ocg = gm.oc / gm.group;
    let wconst = k.const_f32(1);
    let bconst = if k.node.inputs.len() >= 3 { k.const_f32(2) } else { Some(vec![0.0; gm.oc]) };
    if let (Some(w), Some(b)) = (&wconst, &bconst) {
        // a pointwise conv by block-sparse weights (block-shared N:M): the
        // kept input channels only, output channels in the lanes
        if super::conv_lanes::fits_block_sparse(&gm, &k.caps, w, &epi) {
            return super::conv_lanes::conv(k, &gm, w, b, epi).map(|()| true);
        }
        // a pattern-pruned weight: only its kept taps, mask by mask
        let layout = k.node.inputs.get(1).and_then(|&v| k.g.const_of(v)).and_then(kerf_ir::Sparsity::detect);
        if let Some(sp @ kerf_ir::Sparsity::Pattern { patterns, assignment, .. }) = &layout {
            let wide = k.caps.pattern_tiles();
            if super::conv_pattern::fits(&gm, wide) && sp.pattern_beats_dense(wide) {
                let wt = super::conv_pattern::Weights { w, bias: b, patterns, assignment };
                return super::conv_pattern::conv(k, &gm, &wt, epi);
            }
        }
        // a short reduction on a small plane of narrow rows (e.g. a first
        // layer on audio features) on 128-bit targets: taps broadcast,
        // channels in lanes
        if super::conv_smallk::fits(&gm, &k.caps) {
            return super::conv_smallk::conv(k, &gm, w, b, epi).map(|()| true);
        }
        // a pointwise conv on a small plane: output channels in the lanes
        if super::conv_lanes::fits(&gm, &k.caps) {
            return super::conv_lanes::conv(k, &gm, w, b, epi).map(|()| true);
        }
        if ocg >= 4 {
            return super::conv_packed::conv_packed(k, &gm, w, b, epi).map(|()| true);
        }
        if icg == 1 && ocg == 1 {
            return super::depthwise::depthwise(k, &gm, w, b, epi).map(|()| true);
        }
    }
    let packed_scalar = ocg < 4 && !k.caps.simd;
    if !packed_scalar || wconst.is_none() || bconst.is_none() {
        // The GEMM, pointwise and narrow paths read W in its own row-major
        // layout `[oc][icg*kh*kw]` and the bias as `[oc]`, so run-time
        // tensors are passed as they are; constants become blobs.
        let wp = match &wconst {
            Some(w) => k.blob_f32(w),
            None => k.input(1),
        };
        let bp = match &bconst {
            Some(b) => k.blob_f32(b),
            None => k.input(2),
        };
        let pointwise = gm.kh == 1 && gm.kw == 1 && gm.sh == 1 && gm.sw == 1 && gm.ph == 0 && gm.pw == 0;
        if ocg >= 4 && pointwise && gm.oh == gm.h && gm.ow == gm.w {
            return conv_pointwise(k, &gm, wp, bp).map(|()| false);
        }
        if ocg >= 4 || !k.caps.simd {
            return conv_gemm(k, &gm, wp, bp).map(|()| false);
        }
        return conv_narrow(k, &gm, wp, bp).map(|()| false);
    }
    let (Some(wv), Some(bias)) = (wconst, bconst) else { return Err("unreachable: constant weights".into()) };
    conv_scalar(k, &gm, &wv, &bias).map(|()| false)
}

/// A conv with constant weights and fewer than four output channels per
/// group on a target without SIMD: per output pixel and channel, one
/// scalar multiply-add chain over the taps inside the input and the
/// group's input channels, from the bias, weights repacked
/// `[g][o][kh][kw][ic]` so that a tap's channels are consecutive.
fn conv_scalar(k: &mut Kernel, gm: &Geo, wv: &[f32], bias: &[f32]) -> LResult {
    let icg = gm.c / gm.group;
    let ocg = gm.oc / gm.group;
    let ty = types::F32;
    let mut wp = vec![0f32; gm.group * ocg * gm.kh * gm.kw * icg];
    for oc in 0..gm.oc {
        for i in 0..icg {
            for y in 0..gm.kh {
                for x in 0..gm.kw {
                    let src = ((oc * icg + i) * gm.kh + y) * gm.kw + x;
                    let dst = ((oc * gm.kh + y) * gm.kw + x) * icg + i;
                    wp[dst] = wv[src];
                }
            }
        }
    }
    let xp = k.input(0);
    let wptr = k.blob_f32(&wp);
    let bptr = k.blob_f32(bias);
    let out = k.output(0);
    let channel = |k: &mut Kernel, n: Value, g: Value, o: Value| {
        let go = k.b.ins().imul_imm_s(g, ocg as i64);
        let go = k.b.ins().iadd(go, o);
        let bias_v = k.ld_at(ty, bptr, go, 4, 0);
        let wblk = k.b.ins().imul_imm_s(go, (gm.kh * gm.kw * icg * 4) as i64);
        let wblk = k.b.ins().iadd(wptr, wblk);
        // input plane base for (n, g*icg)
        let ng = k.b.ins().imul_imm_s(n, gm.c as i64);
        let gi = k.b.ins().imul_imm_s(g, icg as i64);
        let nc = k.b.ins().iadd(ng, gi);
        let xplane = k.b.ins().imul_imm_s(nc, (gm.h * gm.w) as i64);
        let xbase = k.addr(xp, xplane, 4);
        // output channel base
        let no = k.b.ins().imul_imm_s(n, gm.oc as i64);
        let oc0 = k.b.ins().iadd(no, go);
        let oplane = k.b.ins().imul_imm_s(oc0, (gm.oh * gm.ow) as i64);
        let obase = k.addr(out, oplane, 4);
        k.for_n(0, gm.oh as i64, 1, |k, oy| {
            let (ylo, yhi) = tap_range(k, oy, gm.sh, gm.ph, gm.dh, gm.h, gm.kh);
            let iy0 = k.b.ins().imul_imm_s(oy, gm.sh as i64);
            let iy0 = k.b.ins().iadd_imm_s(iy0, -(gm.ph as i64));
            k.for_n(0, gm.ow as i64, 1, |k, ox| {
                let (xlo, xhi) = tap_range(k, ox, gm.sw, gm.pw, gm.dw, gm.w, gm.kw);
                let ix0 = k.b.ins().imul_imm_s(ox, gm.sw as i64);
                let ix0 = k.b.ins().iadd_imm_s(ix0, -(gm.pw as i64));
                let acc = k.for_acc(ylo, yhi, 1, &[bias_v], |k, ty_, a| {
                    let iy = k.b.ins().imul_imm_s(ty_, gm.dh as i64);
                    let iy = k.b.ins().iadd(iy, iy0);
                    let xrow = k.b.ins().imul_imm_s(iy, gm.w as i64);
                    let xrow = k.b.ins().iadd(xrow, ix0);
                    let wrow = k.b.ins().imul_imm_s(ty_, (gm.kw * icg * 4) as i64);
                    let wrow = k.b.ins().iadd(wblk, wrow);
                    k.for_acc(xlo, xhi, 1, a, |k, tx, a| {
                        let ix = k.b.ins().imul_imm_s(tx, gm.dw as i64);
                        let xe = k.b.ins().iadd(xrow, ix);
                        let xpp = k.addr(xbase, xe, 4);
                        let wpp = k.b.ins().imul_imm_s(tx, (icg * 4) as i64);
                        let wpp = k.b.ins().iadd(wrow, wpp);
                        k.for_acc_n(0, icg as i64, 1, a, |k, ic, a| {
                            let xo = k.b.ins().imul_imm_s(ic, (gm.h * gm.w * 4) as i64);
                            let xa = k.b.ins().iadd(xpp, xo);
                            let xv = k.ld(ty, xa, 0);
                            let wv = k.ld_at(ty, wpp, ic, 4, 0);
                            vec![k.fmadd(xv, wv, a[0])]
                        })
                    })
                });
                let pix = k.b.ins().imul_imm_s(oy, gm.ow as i64);
                let pix = k.b.ins().iadd(pix, ox);
                let op = k.addr(obase, pix, 4);
                k.st(acc[0], op, 0);
            });
        });
    };
    k.for_n(0, gm.n as i64, 1, |k, n| {
        k.for_n(0, gm.group as i64, 1, |k, g| {
            k.for_n(0, ocg as i64, 1, |k, o| channel(k, n, g, o));
        });
    });
    Ok(())
}

/// Conv as GEMM per group and output row: `out[oc, oy, ox] = bias[oc] +
/// Σ_k W[oc, k] · col[k, ox]` with `k = (ic, kh, kw)` (W's own row-major
/// layout). The group's input planes are first copied into a zero-padded
/// scratch image (so im2col needs no bounds checks), then each output row's
/// columns are packed into B panels of 4 pixels (one vector load per panel
/// and k when the stride is 1) and the shared GEMM micro-kernel writes the
/// NCHW output row.
fn conv_gemm(k: &mut Kernel, gm: &Geo, wp: Value, bp: Value) -> LResult {
    let icg = gm.c / gm.group;
    let ocg = gm.oc / gm.group;
    let kk = icg * gm.kh * gm.kw;
    let l = k.lanes();
    let ohw = gm.oh * gm.ow;
    let npan = gm.ow.div_ceil(l);
    // padded image extent, with slack for the last panel's unused lanes
    let hp = (gm.h + gm.ph).max((gm.oh - 1) * gm.sh + (gm.kh - 1) * gm.dh + 1);
    let wpd = (gm.w + gm.pw).max((npan * l - 1) * gm.sw + (gm.kw - 1) * gm.dw + 1);
    let img = icg * hp * wpd;
    let xp = k.input(0);
    let out = k.output(0);
    let pad_img = k.scratch(img * 4);
    let panels = k.scratch(npan * kk * l * 4);
    let g2 = *gm;
    let vty = k.vty();
    k.for_n(0, gm.n as i64, 1, |k, n| {
        k.for_n(0, g2.group as i64, 1, |k, g| {
            // zero-padded copy of this group's input planes
            let first = k.b.ins().imul_imm_s(g, icg as i64);
            pad_input(k, &g2, xp, n, first, icg, pad_img, (hp, wpd, wpd));
            let a_off = k.b.ins().imul_imm_s(g, (ocg * kk) as i64);
            let boff = k.b.ins().imul_imm_s(g, (ocg * 4) as i64);
            let bias_p = k.b.ins().iadd(bp, boff);
            let no = k.b.ins().imul_imm_s(n, g2.oc as i64);
            let go = k.b.ins().imul_imm_s(g, ocg as i64);
            let o = k.b.ins().iadd(no, go);
            let obase = k.b.ins().imul_imm_s(o, ohw as i64);
            k.for_n(0, g2.oh as i64, 1, |k, oy| {
                // pack: panel[pn][k][q] = pad[ic][oy*sh + kh*dh][(pn*l + q)*sw + kw*dw]
                k.for_n(0, icg as i64, 1, |k, ic| {
                    k.for_n(0, g2.kh as i64, 1, |k, ky| {
                        let iy = k.b.ins().imul_imm_s(oy, g2.sh as i64);
                        let t = k.b.ins().imul_imm_s(ky, g2.dh as i64);
                        let iy = k.b.ins().iadd(iy, t);
                        let r = k.b.ins().imul_imm_s(ic, hp as i64);
                        let r = k.b.ins().iadd(r, iy);
                        let r = k.b.ins().imul_imm_s(r, wpd as i64);
                        let rowp = k.addr(pad_img, r, 4);
                        let kbase = k.b.ins().imul_imm_s(ic, (g2.kh * g2.kw) as i64);
                        let t = k.b.ins().imul_imm_s(ky, g2.kw as i64);
                        let kbase = k.b.ins().iadd(kbase, t);
                        k.for_n(0, g2.kw as i64, 1, |k, kx| {
                            let kidx = k.b.ins().iadd(kbase, kx);
                            let xo = k.b.ins().imul_imm_s(kx, (g2.dw * 4) as i64);
                            let src0 = k.b.ins().iadd(rowp, xo);
                            let dst0 = k.addr(panels, kidx, (l * 4) as i64);
                            k.for_n(0, npan as i64, 1, |k, pn| {
                                let src = k.b.ins().imul_imm_s(pn, (l * g2.sw * 4) as i64);
                                let src = k.b.ins().iadd(src0, src);
                                let dst = k.b.ins().imul_imm_s(pn, (kk * l * 4) as i64);
                                let dst = k.b.ins().iadd(dst0, dst);
                                if g2.sw == 1 || l == 1 {
                                    let v = k.ld(vty, src, 0);
                                    k.st(v, dst, 0);
                                } else {
                                    for q in 0..l {
                                        let v = k.ld(types::F32, src, (q * g2.sw * 4) as i32);
                                        k.st(v, dst, (q * 4) as i32);
                                    }
                                }
                            });
                        });
                    });
                });
                let po = k.b.ins().imul_imm_s(oy, g2.ow as i64);
                let o_off = k.b.ins().iadd(obase, po);
                let av = super::matmul::AView { ptr: wp, sm: kk, sk: 1, ro: true };
                let ov = super::matmul::OutView { ptr: out, ldo: ohw, bias: Some(bias_p) };
                super::matmul::gemm_core(k, ocg, g2.ow, kk, av, a_off, (panels, false), ov, o_off);
            });
        });
    });
    Ok(())
}

/// Pixels per block of a pointwise conv.
const POINTWISE_BLOCK: usize = 256;

/// 1x1 stride-1 unpadded conv: per group, `out[oc, p] = bias[oc] +
/// Σ_ic W[oc, ic] · x[ic, p]` is one GEMM over the flattened plane; blocks
/// of pixels are packed into B panels straight from the input (vector loads;
/// the last partial panel with scalar loads so nothing past the input is
/// read).
fn conv_pointwise(k: &mut Kernel, gm: &Geo, wp: Value, bp: Value) -> LResult {
    let icg = gm.c / gm.group;
    let ocg = gm.oc / gm.group;
    let hw = gm.h * gm.w;
    let l = k.lanes();
    let nb = POINTWISE_BLOCK.min(hw).div_ceil(l) * l;
    let xp = k.input(0);
    let out = k.output(0);
    let panels = k.scratch(icg * nb * 4);
    let g2 = *gm;
    let block = |k: &mut Kernel, n: Value, g: Value, p0: Value, width: usize| {
        let nc = k.b.ins().imul_imm_s(n, g2.c as i64);
        let gi = k.b.ins().imul_imm_s(g, icg as i64);
        let nc = k.b.ins().iadd(nc, gi);
        let plane = k.b.ins().imul_imm_s(nc, hw as i64);
        let xbase = k.addr(xp, plane, 4);
        super::conv_packed::pack_flat(k, xbase, icg, hw, p0, width, panels, 1);
        let a_off = k.b.ins().imul_imm_s(g, (ocg * icg) as i64);
        let boff = k.b.ins().imul_imm_s(g, (ocg * 4) as i64);
        let bias_p = k.b.ins().iadd(bp, boff);
        let no = k.b.ins().imul_imm_s(n, g2.oc as i64);
        let go = k.b.ins().imul_imm_s(g, ocg as i64);
        let o = k.b.ins().iadd(no, go);
        let o = k.b.ins().imul_imm_s(o, hw as i64);
        let o_off = k.b.ins().iadd(o, p0);
        let av = super::matmul::AView { ptr: wp, sm: icg, sk: 1, ro: true };
        let ov = super::matmul::OutView { ptr: out, ldo: hw, bias: Some(bias_p) };
        super::matmul::gemm_core(k, ocg, width, icg, av, a_off, (panels, false), ov, o_off);
    };
    let full = hw / nb;
    let rest = hw % nb;
    k.for_n(0, gm.n as i64, 1, |k, n| {
        k.for_n(0, g2.group as i64, 1, |k, g| {
            k.for_n(0, (full * nb) as i64, nb as i64, |k, p0| block(k, n, g, p0, nb));
            if rest > 0 {
                let p0 = k.ic((full * nb) as i64);
                block(k, n, g, p0, rest);
            }
        });
    });
    Ok(())
}

/// Convs with fewer than 4 output channels per group (depthwise and
/// friends): vectorised over 4 adjacent output pixels of a row. The input is
/// first copied into a zero-padded scratch image; each output vector then
/// accumulates `w[oc, ic, kh, kw]` (a broadcast constant) times 4 input
/// pixels (one vector load at stride 1, four scalar loads otherwise).
fn conv_narrow(k: &mut Kernel, gm: &Geo, wp: Value, bp: Value) -> LResult {
    let icg = gm.c / gm.group;
    let ocg = gm.oc / gm.group;
    let l = 4usize;
    let nvec = gm.ow / l;
    let tail = gm.ow % l;
    let hp = (gm.h + gm.ph).max((gm.oh - 1) * gm.sh + (gm.kh - 1) * gm.dh + 1);
    let wpd = (gm.w + gm.pw).max((gm.ow.div_ceil(l) * l - 1) * gm.sw + (gm.kw - 1) * gm.dw + 1);
    let img = gm.c * hp * wpd;
    let xp = k.input(0);
    let out = k.output(0);
    let pad_img = k.scratch(img * 4);
    let g2 = *gm;
    let vty = types::F32X4;
    let taps = icg * gm.kh * gm.kw;
    k.for_n(0, gm.n as i64, 1, |k, n| {
        let first = k.ic(0);
        pad_input(k, &g2, xp, n, first, g2.c, pad_img, (hp, wpd, wpd));
        k.for_n(0, g2.oc as i64, 1, |k, oc| {
            let g = k.b.ins().udiv_imm_s(oc, ocg as i64);
            let bv = k.ld_at(types::F32, bp, oc, 4, 0);
            let bv = k.widen(vty, bv);
            let wrow = k.b.ins().imul_imm_s(oc, (taps * 4) as i64);
            let wrow = k.b.ins().iadd(wp, wrow);
            let ic0 = k.b.ins().imul_imm_s(g, icg as i64);
            let chan = k.b.ins().imul_imm_s(ic0, (hp * wpd * 4) as i64);
            let chan = k.b.ins().iadd(pad_img, chan);
            let no = k.b.ins().imul_imm_s(n, g2.oc as i64);
            let o = k.b.ins().iadd(no, oc);
            let o = k.b.ins().imul_imm_s(o, (g2.oh * g2.ow) as i64);
            let obase = k.addr(out, o, 4);
            k.for_n(0, g2.oh as i64, 1, |k, oy| {
                let iy = k.b.ins().imul_imm_s(oy, (g2.sh * wpd * 4) as i64);
                let rowp = k.b.ins().iadd(chan, iy);
                let orow = k.b.ins().imul_imm_s(oy, (g2.ow * 4) as i64);
                let orow = k.b.ins().iadd(obase, orow);
                let one = |k: &mut Kernel, ox0: Value, width: usize| {
                    let xo = k.b.ins().imul_imm_s(ox0, (g2.sw * 4) as i64);
                    let base = k.b.ins().iadd(rowp, xo);
                    let mut acc = bv;
                    // taps fully unrolled: kernels are small (icg*kh*kw <= 3*7*7 here)
                    for ic in 0..icg {
                        for ky in 0..g2.kh {
                            for kx in 0..g2.kw {
                                let t = (ic * g2.kh + ky) * g2.kw + kx;
                                let w = k.ld_ro(types::F32, wrow, (t * 4) as i32);
                                let w = k.widen(vty, w);
                                let off = (((ic * hp + ky * g2.dh) * wpd) + kx * g2.dw) * 4;
                                let x = if g2.sw == 1 {
                                    k.ld(vty, base, off as i32)
                                } else {
                                    let x0 = k.ld(types::F32, base, off as i32);
                                    let mut v = k.widen(vty, x0);
                                    for q in 1..4 {
                                        let xq = k.ld(types::F32, base, (off + q * g2.sw * 4) as i32);
                                        v = k.b.ins().insertlane(v, xq, q as u8);
                                    }
                                    v
                                };
                                acc = k.fmadd(w, x, acc);
                            }
                        }
                    }
                    let op = k.addr(orow, ox0, 4);
                    if width == 4 {
                        k.st(acc, op, 0);
                    } else {
                        for q in 0..width {
                            let v = k.b.ins().extractlane(acc, q as u8);
                            k.st(v, op, (q * 4) as i32);
                        }
                    }
                };
                k.for_n(0, (nvec * l) as i64, l as i64, |k, ox0| one(k, ox0, l));
                if tail > 0 {
                    let ox0 = k.ic((nvec * l) as i64);
                    one(k, ox0, tail);
                }
            });
        });
    });
    Ok(())
}
