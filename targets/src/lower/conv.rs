//! Convolution (1-D and 2-D, groups, depthwise, dilation, padding); 3-D is
//! in `conv3d.rs`, Winograd in `winograd.rs`, ConvTranspose in
//! `conv_transpose.rs`.
//!
//! Conv: 1-D is run as 2-D with a height of 1. Weights are packed at compile
//! time as `[group][oc_block][kh][kw][ic][L]` with `L` output channels per
//! block (4 with SIMD when a group has at least 4 output channels, else 1),
//! zero past the group's channel count, and biases as `[group][oc_block][L]`.
//! For each output pixel the valid kernel window is computed once
//! (`kh_lo..kh_hi`, `kw_lo..kw_hi`), so no bounds checks run in the inner
//! loop, which broadcasts one input element and multiply-adds it into `L`
//! output channels at once.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};
use kerf_ir::Op;

use super::epilogue::{apply_act, Act, Epilogue};
use super::gemm::{self, Block, Gemm};
use super::{Kernel, LResult};

/// Geometry of a 2-D conv (1-D has `h = kh = 1`).
#[derive(Clone, Copy, Debug)]
struct Geo {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oc: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
    ph: usize,
    pw: usize,
    group: usize,
}

fn geometry(k: &Kernel, window: &kerf_ir::op::Window, group: usize) -> LResult<Geo> {
    let x = k.in_shape(0);
    let o = k.out_shape(0);
    let r = window.rank();
    match r {
        1 => Ok(Geo {
            n: x[0],
            c: x[1],
            h: 1,
            w: x[2],
            oc: o[1],
            oh: 1,
            ow: o[2],
            kh: 1,
            kw: window.kernel[0],
            sh: 1,
            sw: window.strides[0],
            dh: 1,
            dw: window.dilations[0],
            ph: 0,
            pw: window.pad_begin(0),
            group,
        }),
        2 => Ok(Geo {
            n: x[0],
            c: x[1],
            h: x[2],
            w: x[3],
            oc: o[1],
            oh: o[2],
            ow: o[3],
            kh: window.kernel[0],
            kw: window.kernel[1],
            sh: window.strides[0],
            sw: window.strides[1],
            dh: window.dilations[0],
            dw: window.dilations[1],
            ph: window.pad_begin(0),
            pw: window.pad_begin(1),
            group,
        }),
        _ => Err(format!("{r}-D windows are not supported (1-D and 2-D are)")),
    }
}

pub fn imax(k: &mut Kernel, a: Value, b: Value) -> Value {
    let c = k.b.ins().icmp(IntCC::SignedGreaterThan, a, b);
    k.b.ins().select(c, a, b)
}
pub fn imin(k: &mut Kernel, a: Value, b: Value) -> Value {
    let c = k.b.ins().icmp(IntCC::SignedLessThan, a, b);
    k.b.ins().select(c, a, b)
}

/// Valid kernel taps `lo..hi` along one axis for output position `o`:
/// taps `t` with `0 <= o*s - p + t*d < size`.
pub fn tap_range(k: &mut Kernel, o: Value, s: usize, p: usize, d: usize, size: usize, taps: usize) -> (Value, Value) {
    // t0 = p - o*s: first tap index times d that lands on 0
    let os = k.b.ins().imul_imm_s(o, s as i64);
    let pv = k.ic(p as i64);
    let t = k.b.ins().isub(pv, os);
    let zero = k.ic(0);
    let tp = imax(k, t, zero);
    let lo = if d == 1 {
        tp
    } else {
        let x = k.b.ins().iadd_imm_s(tp, (d - 1) as i64);
        k.b.ins().udiv_imm_s(x, d as i64)
    };
    let u = k.b.ins().iadd_imm_s(t, size as i64);
    let up = imax(k, u, zero);
    let hi = if d == 1 {
        up
    } else {
        let x = k.b.ins().iadd_imm_s(up, (d - 1) as i64);
        k.b.ins().udiv_imm_s(x, d as i64)
    };
    let kt = k.ic(taps as i64);
    let hi = imin(k, hi, kt);
    (lo, hi)
}

/// Conv and ConvFused. The packed-GEMM, depthwise, Winograd and small-K
/// kernels apply a fused epilogue before their stores; every other path
/// runs it as a second pass over the output.
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
    let done = conv_inner(k, &c, epi)?;
    if !done && (epi.act != Act::None || epi.residual.is_some()) {
        let out = k.output(0);
        let n: usize = k.out_shape(0).iter().product();
        k.for_vec(n, &mut |k, ty, i| {
            let p = k.addr(out, i, 4);
            let mut y = k.ld(ty, p, 0);
            if let Some(r) = epi.residual {
                let x = k.ld_at(ty, r, i, 4, 0);
                y = k.b.ins().fadd(y, x);
            }
            let y = apply_act(k, ty, epi.act, y);
            k.st(y, p, 0);
        });
    }
    Ok(())
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
        if gm.group == 1 {
            // a short reduction on a small plane of narrow rows (e.g. a first
            // layer on audio features): taps broadcast, channels in lanes
            let sg = super::conv_smallk::SmallGeo {
                n: gm.n,
                c: gm.c,
                h: gm.h,
                w: gm.w,
                oc: gm.oc,
                oh: gm.oh,
                ow: gm.ow,
                kh: gm.kh,
                kw: gm.kw,
                sh: gm.sh,
                sw: gm.sw,
                dh: gm.dh,
                dw: gm.dw,
                ph: gm.ph,
                pw: gm.pw,
            };
            if sg.fits(k.caps.simd) {
                return super::conv_smallk::conv(k, &sg, w, b, epi).map(|()| true);
            }
        }
        if ocg >= 4 {
            return conv_packed(k, &gm, w, b, epi).map(|()| true);
        }
        if icg == 1 && ocg == 1 {
            let d = super::depthwise::DwGeo {
                n: gm.n,
                c: gm.c,
                h: gm.h,
                w: gm.w,
                oh: gm.oh,
                ow: gm.ow,
                kh: gm.kh,
                kw: gm.kw,
                sh: gm.sh,
                sw: gm.sw,
                dh: gm.dh,
                dw: gm.dw,
                ph: gm.ph,
                pw: gm.pw,
            };
            return super::depthwise::depthwise(k, &d, w, b, epi).map(|()| true);
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
    let l = if k.caps.simd && ocg >= 4 { 4 } else { 1 };
    let ty = if l == 4 { types::F32X4 } else { types::F32 };
    let nob = ocg.div_ceil(l);
    // pack weights [g][ob][kh][kw][ic][l]
    let mut wp = vec![0f32; gm.group * nob * gm.kh * gm.kw * icg * l];
    let mut bp = vec![0f32; gm.group * nob * l];
    for g in 0..gm.group {
        for o in 0..ocg {
            let (ob, j) = (o / l, o % l);
            let oc = g * ocg + o;
            bp[(g * nob + ob) * l + j] = bias[oc];
            for i in 0..icg {
                for y in 0..gm.kh {
                    for x in 0..gm.kw {
                        let src = ((oc * icg + i) * gm.kh + y) * gm.kw + x;
                        let dst = (((((g * nob + ob) * gm.kh + y) * gm.kw + x) * icg + i) * l) + j;
                        wp[dst] = wv[src];
                    }
                }
            }
        }
    }
    let xp = k.input(0);
    let wptr = k.blob_f32(&wp);
    let bptr = k.blob_f32(&bp);
    let out = k.output(0);
    let full = ocg / l;
    let tail = ocg % l;
    let block = |k: &mut Kernel, n: Value, g: Value, ob: Value, width: usize| {
        let gob = k.b.ins().imul_imm_s(g, nob as i64);
        let gob = k.b.ins().iadd(gob, ob);
        let bias_v = k.ld_at(ty, bptr, gob, (l * 4) as i64, 0);
        let wblk = k.b.ins().imul_imm_s(gob, (gm.kh * gm.kw * icg * l * 4) as i64);
        let wblk = k.b.ins().iadd(wptr, wblk);
        // input plane base for (n, g*icg)
        let ng = k.b.ins().imul_imm_s(n, gm.c as i64);
        let gi = k.b.ins().imul_imm_s(g, icg as i64);
        let nc = k.b.ins().iadd(ng, gi);
        let xplane = k.b.ins().imul_imm_s(nc, (gm.h * gm.w) as i64);
        let xbase = k.addr(xp, xplane, 4);
        // output channel base
        let no = k.b.ins().imul_imm_s(n, gm.oc as i64);
        let go = k.b.ins().imul_imm_s(g, ocg as i64);
        let oo = k.b.ins().imul_imm_s(ob, l as i64);
        let oc0 = k.b.ins().iadd(no, go);
        let oc0 = k.b.ins().iadd(oc0, oo);
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
                    let wrow = k.b.ins().imul_imm_s(ty_, (gm.kw * icg * l * 4) as i64);
                    let wrow = k.b.ins().iadd(wblk, wrow);
                    k.for_acc(xlo, xhi, 1, a, |k, tx, a| {
                        let ix = k.b.ins().imul_imm_s(tx, gm.dw as i64);
                        let xe = k.b.ins().iadd(xrow, ix);
                        let xpp = k.addr(xbase, xe, 4);
                        let wpp = k.b.ins().imul_imm_s(tx, (icg * l * 4) as i64);
                        let wpp = k.b.ins().iadd(wrow, wpp);
                        k.for_acc_n(0, icg as i64, 1, a, |k, ic, a| {
                            let xo = k.b.ins().imul_imm_s(ic, (gm.h * gm.w * 4) as i64);
                            let xa = k.b.ins().iadd(xpp, xo);
                            let xv = k.ld(types::F32, xa, 0);
                            let xv = k.widen(ty, xv);
                            let wv = k.ld_at(ty, wpp, ic, (l * 4) as i64, 0);
                            vec![k.fmadd(xv, wv, a[0])]
                        })
                    })
                });
                let pix = k.b.ins().imul_imm_s(oy, gm.ow as i64);
                let pix = k.b.ins().iadd(pix, ox);
                let op = k.addr(obase, pix, 4);
                if l == 1 {
                    k.st(acc[0], op, 0);
                } else {
                    for j in 0..width {
                        let v = k.b.ins().extractlane(acc[0], j as u8);
                        k.st(v, op, (j * gm.oh * gm.ow * 4) as i32);
                    }
                }
            });
        });
    };
    k.for_n(0, gm.n as i64, 1, |k, n| {
        k.for_n(0, gm.group as i64, 1, |k, g| {
            k.for_n(0, full as i64, 1, |k, ob| block(k, n, g, ob, l));
            if tail > 0 {
                let ob = k.ic(full as i64);
                block(k, n, g, ob, tail);
            }
        });
    });
    Ok(false)
}

/// Conv with constant weights as a GEMM over blocks of output pixels
/// ([`gemm`]): W packed at compile time into A row blocks, the input
/// patches of a block of output rows (or, for pointwise convs, of a block
/// of flattened pixels) packed into B panels straight from the input, with
/// padding resolved at compile time per kernel column (no padded copy of
/// the input, so blocks are independent and run as parallel tasks).
fn conv_packed(k: &mut Kernel, gm: &Geo, w: &[f32], bias: &[f32], epi: Epilogue) -> LResult {
    let icg = gm.c / gm.group;
    let ocg = gm.oc / gm.group;
    let kk = icg * gm.kh * gm.kw;
    let l = k.lanes();
    let ohw = gm.oh * gm.ow;
    let mut a = Vec::with_capacity(gm.oc * kk);
    for g in 0..gm.group {
        a.extend(gemm::pack_a(&w[g * ocg * kk..], ocg, kk, kk));
    }
    let pointwise = gm.kh == 1 && gm.kw == 1 && gm.sh == 1 && gm.sw == 1 && gm.ph == 0 && gm.pw == 0;
    let budget = gemm::b_block_bytes(&k.caps);
    // Pixel blocks as large as the B budget allows.
    let per_flat = (budget / (kk * 4)).clamp(l, 512) / l * l;
    let ppr_rows = gm.ow.div_ceil(l);
    let fit_rows = (budget / (ppr_rows * kk * l * 4)).max(1);
    let nblk_fit = if pointwise { ohw.div_ceil(per_flat.min(ohw.div_ceil(l) * l)) } else { gm.oh.div_ceil(fit_rows) };
    // Too few pixel blocks to keep the threads busy (the late, small
    // layers): the tasks also split the output channels, in row blocks of
    // the GEMM (a task packs its pixel block's B once and computes its
    // rows of A against it).
    let chan_split = gm.n * gm.group * nblk_fit < gemm::SPLIT_UNITS && ocg >= 4 * gemm::MR;
    // Pixel block: `rows` rows of `ppr` panels whose B fits the budget.
    let (rows, ppr, width, pitch, nblk) = if pointwise {
        // without a channel split: at least two blocks when the plane has
        // two panels, so that two threads have work on the small late
        // layers too (A is re-read from L2 once more)
        let cap = if chan_split { ohw.div_ceil(l) * l } else { ohw.div_ceil(2).div_ceil(l) * l };
        let nb = per_flat.min(cap).max(l);
        // balanced: equal blocks (up to a panel), so that equal task
        // chunks are equal work
        let nb = ohw.div_ceil(ohw.div_ceil(nb)).div_ceil(l) * l;
        (1, nb / l, nb, nb, ohw.div_ceil(nb))
    } else {
        // without a channel split: at least two blocks when there are two
        // rows, so that two threads have work even on the last layers
        let cap = if chan_split { gm.oh } else { gm.oh.div_ceil(2) };
        let r = fit_rows.min(cap).max(1);
        // balanced: the fewest rows per block that keeps the block count
        let r = gm.oh.div_ceil(gm.oh.div_ceil(r));
        (r, ppr_rows, gm.ow, gm.ow, gm.oh.div_ceil(r))
    };
    // units per pixel block: GEMM row blocks when splitting channels
    let rbu = if chan_split { ocg.div_ceil(gemm::MR) } else { 1 };
    let xp = k.input(0);
    let out = k.output(0);
    let a_ptr = k.blob_f32(&a);
    let b_ptr = k.blob_f32(bias);
    let items = gm.n * gm.group * nblk;
    let cost = 2 * (ocg * kk * rows * ppr * l) as u64;
    let bbytes = rows * ppr * kk * l * 4;
    let cap = (gemm::TASK_SCRATCH_BUDGET / bbytes.max(1)).max(2);
    let (lo, hi) = k.parallel_range_capped(items * rbu, 1, cost.div_ceil(rbu as u64), cap)?;
    let bbuf = k.task_scratch(bbytes);
    let g2 = *gm;
    // the last block holds what is left (rows or pixels)
    let last_rows = if pointwise { 1 } else { gm.oh - (nblk - 1) * rows };
    let last_width = if pointwise { ohw - (nblk - 1) * width } else { width };
    type Rows = Option<(Value, Value)>;
    let body = |k: &mut Kernel, ng: Value, blk: Value, nrows: usize, bw: usize, mrows: Rows| {
        // ng = n * group + g
        let g = k.b.ins().urem_imm_s(ng, g2.group as i64);
        let cin = k.b.ins().imul_imm_s(ng, icg as i64);
        let xoff = k.b.ins().imul_imm_s(cin, (g2.h * g2.w) as i64);
        let xbase = k.addr(xp, xoff, 4);
        let cout = k.b.ins().imul_imm_s(ng, ocg as i64);
        let obase = k.b.ins().imul_imm_s(cout, ohw as i64);
        let p0 = k.b.ins().imul_imm_s(blk, (rows * pitch) as i64);
        let out_off = k.b.ins().iadd(obase, p0);
        if pointwise {
            pack_flat(k, xbase, icg, g2.h * g2.w, p0, bw, bbuf);
        } else {
            let oy0 = k.b.ins().imul_imm_s(blk, rows as i64);
            pack_rows(k, &g2, icg, xbase, oy0, nrows, ppr, bbuf);
        }
        let ga = k.b.ins().imul_imm_s(g, (ocg * kk * 4) as i64);
        let gb = k.b.ins().imul_imm_s(g, (ocg * 4) as i64);
        let (a, bias) = (k.b.ins().iadd(a_ptr, ga), k.b.ins().iadd(b_ptr, gb));
        let gp = Gemm { a, bias, m: ocg, kk, out, ldo: ohw, epi, rows: mrows };
        let bk = Block { b: bbuf, rows: nrows, ppr: bw.div_ceil(l), width: bw, pitch, out_off };
        gemm::run_block(k, &gp, &bk);
    };
    let item = |k: &mut Kernel, it: Value, mrows: Rows| {
        let ng = k.b.ins().udiv_imm_s(it, nblk as i64);
        let blk = k.b.ins().urem_imm_s(it, nblk as i64);
        if last_rows == rows && last_width == width {
            body(k, ng, blk, rows, width, mrows);
        } else {
            let is_last = k.b.ins().icmp_imm_s(IntCC::Equal, blk, (nblk - 1) as i64);
            let not_last = k.b.ins().icmp_imm_s(IntCC::NotEqual, blk, (nblk - 1) as i64);
            k.if_then(not_last, |k| body(k, ng, blk, rows, width, mrows));
            k.if_then(is_last, |k| body(k, ng, blk, last_rows, last_width, mrows));
        }
    };
    if rbu == 1 {
        k.for_dyn(lo, hi, 1, |k, it| item(k, it, None));
    } else {
        let (it_lo, it_hi) = unit_items(k, lo, hi, rbu);
        k.for_dyn(it_lo, it_hi, 1, |k, it| {
            let rr = unit_rows(k, it, lo, hi, rbu, gemm::MR, ocg);
            item(k, it, Some(rr));
        });
    }
    Ok(())
}

/// Items `lo / per .. ceil(hi / per)` that units `lo..hi` touch when each
/// item has `per` units (I64 values).
pub fn unit_items(k: &mut Kernel, lo: Value, hi: Value, per: usize) -> (Value, Value) {
    let a = k.b.ins().udiv_imm_s(lo, per as i64);
    let h = k.b.ins().iadd_imm_s(hi, per as i64 - 1);
    let b = k.b.ins().udiv_imm_s(h, per as i64);
    (a, b)
}

/// Rows `r0..r1` of item `it` covered by units `lo..hi` (each item has
/// `per` units of `size` rows, `m` rows in all; I64 values).
pub fn unit_rows(k: &mut Kernel, it: Value, lo: Value, hi: Value, per: usize, size: usize, m: usize) -> (Value, Value) {
    let base = k.b.ins().imul_imm_s(it, per as i64);
    let zero = k.ic(0);
    let ulo = k.b.ins().isub(lo, base);
    let ulo = imax(k, ulo, zero);
    let uhi = k.b.ins().isub(hi, base);
    let cap = k.ic(per as i64);
    let uhi = imin(k, uhi, cap);
    let r0 = k.b.ins().imul_imm_s(ulo, size as i64);
    let r1 = k.b.ins().imul_imm_s(uhi, size as i64);
    let mv = k.ic(m as i64);
    let r1 = imin(k, r1, mv);
    (r0, r1)
}

/// Packs `width` flattened pixels from `p0` of `icg` planes of `hw` floats
/// into B panels `[c][ic][L]` (the last partial panel zero-filled; nothing
/// past the plane is read).
fn pack_flat(k: &mut Kernel, xbase: Value, icg: usize, hw: usize, p0: Value, width: usize, dst: Value) {
    let l = k.lanes();
    let vty = k.vty();
    let full = width / l;
    let tail = width % l;
    let src0 = k.addr(xbase, p0, 4);
    k.for_n(0, icg as i64, 1, |k, ic| {
        let xo = k.b.ins().imul_imm_s(ic, (hw * 4) as i64);
        let xrow = k.b.ins().iadd(src0, xo);
        let d0 = k.addr(dst, ic, (l * 4) as i64);
        k.for_n(0, full as i64, 1, |k, c| {
            let v = k.ld_at(vty, xrow, c, (l * 4) as i64, 0);
            let d = k.b.ins().imul_imm_s(c, (icg * l * 4) as i64);
            let d = k.b.ins().iadd(d0, d);
            k.st(v, d, 0);
        });
        if tail > 0 {
            let src = k.add_c(xrow, (full * l * 4) as i64);
            let d = k.add_c(d0, (full * icg * l * 4) as i64);
            for q in 0..l {
                let v = if q < tail { k.ld(types::F32, src, (q * 4) as i32) } else { k.fc(0.0) };
                k.st(v, d, (q * 4) as i32);
            }
        }
    });
}

/// Packs the patches of output rows `oy0..oy0+rows` into B panels
/// `[r][c][k][L]` with `k = (ic, ky, kx)`: W's row-major order. Per kernel
/// column `kx` the output columns whose input column is inside the image
/// are known at compile time, so interior panels are plain (vector) copies
/// and only border panels read lane by lane with zeros for the padding;
/// rows whose input row is padding are zero-filled.
#[allow(clippy::too_many_arguments)]
fn pack_rows(k: &mut Kernel, gm: &Geo, icg: usize, xbase: Value, oy0: Value, rows: usize, ppr: usize, dst: Value) {
    let l = k.lanes();
    let vty = k.vty();
    let kk = icg * gm.kh * gm.kw;
    let pstride = (kk * l * 4) as i64;
    let g = *gm;
    // valid output columns [lo, hi) per kernel column
    let valid: Vec<(usize, usize)> = (0..g.kw)
        .map(|kx| {
            let off = kx * g.dw;
            // ix = ox*sw + off - pw in [0, w)
            let lo = if off >= g.pw { 0 } else { (g.pw - off).div_ceil(g.sw) };
            let hi = if g.w + g.pw > off { ((g.w + g.pw - off - 1) / g.sw + 1).min(g.ow) } else { 0 };
            (lo.min(g.ow), hi.max(lo.min(g.ow)))
        })
        .collect();
    k.for_n(0, rows as i64, 1, |k, r| {
        let oy = k.b.ins().iadd(oy0, r);
        let ro_ = k.b.ins().imul_imm_s(r, ppr as i64 * pstride);
        let rbase = k.b.ins().iadd(dst, ro_);
        k.for_n(0, icg as i64, 1, |k, ic| {
            let xo = k.b.ins().imul_imm_s(ic, (g.h * g.w * 4) as i64);
            let xch = k.b.ins().iadd(xbase, xo);
            let dof = k.b.ins().imul_imm_s(ic, (g.kh * g.kw * l * 4) as i64);
            let dch = k.b.ins().iadd(rbase, dof);
            k.for_n(0, g.kh as i64, 1, |k, ky| {
                let iy = k.b.ins().imul_imm_s(oy, g.sh as i64);
                let t = k.b.ins().imul_imm_s(ky, g.dh as i64);
                let iy = k.b.ins().iadd(iy, t);
                let iy = k.b.ins().iadd_imm_s(iy, -(g.ph as i64));
                let dkyo = k.b.ins().imul_imm_s(ky, (g.kw * l * 4) as i64);
                let dky = k.b.ins().iadd(dch, dkyo);
                let ok = k.in_range(iy, g.h as i64);
                let bad = k.b.ins().bxor_imm_u(ok, 1);
                k.if_then(ok, |k| {
                    let xr = k.b.ins().imul_imm_s(iy, (g.w * 4) as i64);
                    let xrow = k.b.ins().iadd(xch, xr);
                    for (kx, &(vlo, vhi)) in valid.iter().enumerate() {
                        let dkx = k.add_c(dky, (kx * l * 4) as i64);
                        // ix of output column 0 for this kx (may be negative)
                        let ix0 = (kx * g.dw) as i64 - g.pw as i64;
                        let c_lo = vlo.div_ceil(l);
                        let c_hi = (vhi / l).max(c_lo);
                        let lane = |k: &mut Kernel, c: usize| {
                            for q in 0..l {
                                let ox = c * l + q;
                                let v = if ox >= vlo && ox < vhi {
                                    let ix = ox as i64 * g.sw as i64 + ix0;
                                    k.ld(types::F32, xrow, (ix * 4) as i32)
                                } else {
                                    k.fc(0.0)
                                };
                                k.st(v, dkx, (c as i64 * pstride) as i32 + (q * 4) as i32);
                            }
                        };
                        for c in (0..c_lo).chain(c_hi..ppr) {
                            lane(k, c);
                        }
                        if c_hi > c_lo {
                            k.for_n(c_lo as i64, c_hi as i64, 1, |k, c| {
                                let d = k.addr(dkx, c, pstride);
                                let s = k.b.ins().imul_imm_s(c, (l * g.sw * 4) as i64);
                                let s = k.b.ins().iadd(xrow, s);
                                if g.sw == 1 || l == 1 {
                                    let v = k.ld(vty, s, (ix0 * 4) as i32);
                                    k.st(v, d, 0);
                                } else {
                                    for q in 0..l {
                                        let v = k.ld(types::F32, s, ((ix0 + (q * g.sw) as i64) * 4) as i32);
                                        k.st(v, d, (q * 4) as i32);
                                    }
                                }
                            });
                        }
                    }
                });
                k.if_then(bad, |k| {
                    let z = k.fsplat(vty, 0.0);
                    for kx in 0..g.kw {
                        let dkx = k.add_c(dky, (kx * l * 4) as i64);
                        k.for_n(0, ppr as i64, 1, |k, c| {
                            let d = k.addr(dkx, c, pstride);
                            k.st(z, d, 0);
                        });
                    }
                });
            });
        });
    });
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
            k.for_vec(img, &mut |k, ty, i| {
                let z = k.fsplat(ty, 0.0);
                k.st_at(z, pad_img, i, 4, 0);
            });
            let nc = k.b.ins().imul_imm_s(n, g2.c as i64);
            let gi = k.b.ins().imul_imm_s(g, icg as i64);
            let nc = k.b.ins().iadd(nc, gi);
            let plane = k.b.ins().imul_imm_s(nc, (g2.h * g2.w) as i64);
            let xbase = k.addr(xp, plane, 4);
            k.for_n(0, (icg * g2.h) as i64, 1, |k, row| {
                // row = ic * H + y
                let src = k.b.ins().imul_imm_s(row, g2.w as i64);
                let sb = k.addr(xbase, src, 4);
                let ic = k.b.ins().udiv_imm_s(row, g2.h as i64);
                let y = k.b.ins().urem_imm_s(row, g2.h as i64);
                let drow = k.b.ins().imul_imm_s(ic, hp as i64);
                let drow = k.b.ins().iadd(drow, y);
                let drow = k.b.ins().iadd_imm_s(drow, g2.ph as i64);
                let d = k.b.ins().imul_imm_s(drow, wpd as i64);
                let d = k.b.ins().iadd_imm_s(d, g2.pw as i64);
                let db = k.addr(pad_img, d, 4);
                k.for_vec(g2.w, &mut |k, ty, j| {
                    let v = k.ld_at(ty, sb, j, 4, 0);
                    k.st_at(v, db, j, 4, 0);
                });
            });
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
    let vty = k.vty();
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
        let plane = k.b.ins().iadd(plane, p0);
        let xbase = k.addr(xp, plane, 4);
        let full = width / l;
        let tail = width % l;
        k.for_n(0, icg as i64, 1, |k, ic| {
            let xo = k.b.ins().imul_imm_s(ic, (hw * 4) as i64);
            let xrow = k.b.ins().iadd(xbase, xo);
            let dst0 = k.addr(panels, ic, (l * 4) as i64);
            k.for_n(0, full as i64, 1, |k, pn| {
                let v = k.ld_at(vty, xrow, pn, (l * 4) as i64, 0);
                let d = k.b.ins().imul_imm_s(pn, (icg * l * 4) as i64);
                let d = k.b.ins().iadd(dst0, d);
                k.st(v, d, 0);
            });
            if tail > 0 {
                let src = k.add_c(xrow, (full * l * 4) as i64);
                let d = k.add_c(dst0, (full * icg * l * 4) as i64);
                for q in 0..l {
                    let v = if q < tail { k.ld(types::F32, src, (q * 4) as i32) } else { k.fc(0.0) };
                    k.st(v, d, (q * 4) as i32);
                }
            }
        });
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
        k.for_vec(img, &mut |k, ty, i| {
            let z = k.fsplat(ty, 0.0);
            k.st_at(z, pad_img, i, 4, 0);
        });
        let plane = k.b.ins().imul_imm_s(n, (g2.c * g2.h * g2.w) as i64);
        let xbase = k.addr(xp, plane, 4);
        k.for_n(0, (g2.c * g2.h) as i64, 1, |k, row| {
            let src = k.b.ins().imul_imm_s(row, g2.w as i64);
            let sb = k.addr(xbase, src, 4);
            let c = k.b.ins().udiv_imm_s(row, g2.h as i64);
            let y = k.b.ins().urem_imm_s(row, g2.h as i64);
            let drow = k.b.ins().imul_imm_s(c, hp as i64);
            let drow = k.b.ins().iadd(drow, y);
            let drow = k.b.ins().iadd_imm_s(drow, g2.ph as i64);
            let d = k.b.ins().imul_imm_s(drow, wpd as i64);
            let d = k.b.ins().iadd_imm_s(d, g2.pw as i64);
            let db = k.addr(pad_img, d, 4);
            k.for_vec(g2.w, &mut |k, ty, j| {
                let v = k.ld_at(ty, sb, j, 4, 0);
                k.st_at(v, db, j, 4, 0);
            });
        });
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
