//! Transposed convolution (1-D and 2-D; 3-D is in `conv3d.rs`).
//!
//! With constant weights (every exported model): a GEMM and a col2im, after
//! the "backward-data" form of convolution. Per group, the weights are the
//! matrix `A[(oc, ty, tx), ic] = W[ic, oc, ty, tx]` (packed at compile time
//! into the GEMM engine's row blocks, [`gemm`]) and the input the matrix
//! `B[ic, (iy, ix)]`; `C = A · B` holds, for every input pixel, what it
//! adds to each output tap, and col2im adds row `(oc, ty, tx)` of `C` into
//! output pixel `(iy·sh − ph + ty·dh, ix·sw − pw + tx·dw)` where that lies
//! inside the output.
//!
//! Work is split into tasks over (image, group, block of output channels):
//! a task owns its channels' whole output planes, so the overlapping
//! scatters of neighbouring input pixels never race, and the sums are the
//! same in the same order whatever the thread count. Within a task, input
//! rows go in blocks whose B panels and C rows fit L2. When the kernel
//! tiles the output exactly (kernel = stride, no dilation, pads or output
//! padding, e.g. the 2×2 stride-2 upsampling of detection heads), every
//! output pixel receives exactly one tap: the bias goes into the GEMM and
//! col2im is a plain copy, with no initialising pass.
//!
//! Run-time weights keep a scalar scatter: every input element adds
//! `x * w` into each output it reaches, after the output is set to the bias.
//!
//! A `ConvTransposeFused` (the `fusion` group's, constant weights, 1-D or
//! 2-D) applies its activation where each output is final: in the GEMM's
//! epilogue when the output is tiled exactly (each C element is one output
//! with its bias), else in a pass over the task's own output planes after
//! its last pixel block, while they are still in cache.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, Endianness, InstBuilder, MemFlagsData, Type, Value};
use kerf_ir::Op;

use super::conv_geo::{geometry, Geo};
use super::epilogue::{apply_act, Act, Epilogue};
use super::gemm::{self, Block, Gemm};
use super::{Kernel, LResult};

/// Lowers a `ConvTranspose` or `ConvTransposeFused` (f32); three or more
/// spatial axes go to [`super::conv3d`].
pub fn conv_transpose(k: &mut Kernel) -> LResult {
    k.require_f32()?;
    let (c, act) = match k.node.op.clone() {
        Op::ConvTranspose(c) => (c, Act::None),
        Op::ConvTransposeFused(c, e) => (c, Act::of(e.act)?),
        _ => return Err("not a ConvTranspose".into()),
    };
    let fused = act != Act::None;
    if c.window.rank() > 2 {
        return match fused {
            true => Err("internal: a fused ConvTranspose of more than two spatial axes".into()),
            false => super::conv3d::conv_transpose(k),
        };
    }
    let gm = geometry(k, &c.window, c.group)?;
    let wconst = k.const_f32(1);
    let bconst = if k.node.inputs.len() >= 3 { k.const_f32(2) } else { Some(vec![0.0; gm.oc]) };
    let empty = [gm.n, gm.c, gm.h, gm.w, gm.oc, gm.oh, gm.ow].contains(&0);
    match (wconst, bconst) {
        (Some(w), Some(b)) if !empty => gemm_col2im(k, &gm, &w, &b, act),
        // run-time weights, or an empty input (the output is the bias) or
        // output: the scatter, then the activation over the whole output
        _ => {
            scatter(k, &gm)?;
            if fused {
                let out = k.output(0);
                activate_planes(k, act, gm.n * gm.oc, gm.oh * gm.ow, out);
            }
            Ok(())
        }
    }
}

/// The task and block sizes of [`gemm_col2im`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    /// Output channels per task (the last block of a group may hold fewer).
    cb: usize,
    /// Channel blocks per group.
    nch: usize,
    /// Input rows per pixel block (the last block may hold fewer).
    rows: usize,
    /// Pixel blocks per image.
    nblk: usize,
    /// The kernel tiles the output exactly ([`tiles_exactly`]): a task
    /// computes one pixel block (no two input pixels reach one output) and
    /// the bias goes into the GEMM; else a task computes all pixel blocks
    /// of its channels, whose planes start as the bias.
    exact: bool,
}

/// Most GEMM rows (`channels × taps`) one task computes against a B block
/// when tasks own whole planes: 4 full row blocks of the engine, so that
/// several channel blocks feed the threads.
const MAX_TASK_ROWS: usize = 4 * gemm::MR;

/// Most GEMM rows per B block when tasks split pixel blocks: B is packed
/// once per channel block, so as many rows as keep C in L2 with B.
const MAX_BLOCK_ROWS: usize = 8 * gemm::MR;

fn plan(gm: &Geo, budget: usize) -> Plan {
    let ocg = gm.oc / gm.group;
    let taps = gm.kh * gm.kw;
    let icg = gm.c / gm.group;
    let exact = tiles_exactly(gm);
    let cb = if exact {
        ocg.min((MAX_BLOCK_ROWS / taps).max(1))
    } else {
        // enough channel blocks for the threads
        let want = gemm::SPLIT_UNITS.div_ceil(gm.n * gm.group);
        ocg.div_ceil(want).min((MAX_TASK_ROWS / taps).max(1)).max(1)
    };
    let nch = ocg.div_ceil(cb);
    // input rows whose B panels and C rows fit the budget
    let per_row = (icg + cb * taps) * gm.w.div_ceil(4) * 4 * 4;
    let mut fit = (budget / per_row.max(1)).clamp(1, gm.h);
    if exact {
        // enough pixel blocks for the threads
        fit = fit.min(gm.h.div_ceil(gemm::SPLIT_UNITS.div_ceil(gm.n * gm.group * nch))).max(1);
    }
    let rows = gm.h.div_ceil(gm.h.div_ceil(fit));
    Plan { cb, nch, rows, nblk: gm.h.div_ceil(rows), exact }
}

/// Whether every output pixel receives exactly one tap.
fn tiles_exactly(gm: &Geo) -> bool {
    gm.kh == gm.sh
        && gm.kw == gm.sw
        && gm.dh == 1
        && gm.dw == 1
        && gm.ph == 0
        && gm.pw == 0
        && gm.oh == gm.h * gm.sh
        && gm.ow == gm.w * gm.sw
}

/// Input columns `lo..hi` whose tap `t` (stride `s`, dilation `d`, begin
/// pad `p`) lands inside an output of width `o`.
fn tap_cols(w: usize, o: usize, s: usize, d: usize, p: usize, t: usize) -> (usize, usize) {
    // ix·s − p + t·d ∈ [0, o)
    let off = t * d;
    let lo = if p > off { (p - off).div_ceil(s) } else { 0 };
    let hi = if o + p > off { ((o + p - off - 1) / s + 1).min(w) } else { 0 };
    (lo.min(hi), hi)
}

/// Constant weights: GEMM + col2im (see the module docs).
fn gemm_col2im(k: &mut Kernel, gm: &Geo, w: &[f32], bias: &[f32], act: Act) -> LResult {
    let (icg, ocg) = (gm.c / gm.group, gm.oc / gm.group);
    let taps = gm.kh * gm.kw;
    let p = plan(gm, gemm::b_block_bytes(&k.caps));
    let l = k.lanes();
    // A per (group, channel block): rows (oc, ty, tx), columns ic
    let mut a = Vec::with_capacity(gm.group * ocg * taps * icg);
    for g in 0..gm.group {
        for cblk in 0..p.nch {
            let c0 = cblk * p.cb;
            let cbi = p.cb.min(ocg - c0);
            let mut m = vec![0f32; cbi * taps * icg];
            for oc in 0..cbi {
                for t in 0..taps {
                    for ic in 0..icg {
                        m[(oc * taps + t) * icg + ic] = w[((g * icg + ic) * ocg + c0 + oc) * taps + t];
                    }
                }
            }
            a.extend(gemm::pack_a(&m, cbi * taps, icg, icg));
        }
    }
    // GEMM bias per row: the channel's bias when each output gets one tap
    let row_bias: Vec<f32> = if p.exact {
        (0..gm.oc).flat_map(|oc| std::iter::repeat_n(bias[oc], taps)).collect()
    } else {
        vec![0.0; gm.oc * taps]
    };
    let ptrs = Ptrs {
        a: k.blob_f32(&a),
        row_bias: k.blob_f32(&row_bias),
        bias: k.blob_f32(bias),
        xp: k.input(0),
        out: k.output(0),
        b: k.ic(0),
        c: k.ic(0),
    };
    let ldc = (p.rows * gm.w).div_ceil(l) * l;
    let bbytes = gemm::Panels::new(l, icg, gemm::panel_group(k)).bytes(1, ldc / l);
    let cbytes = p.cb * taps * ldc * 4;
    let bu = if p.exact { p.nblk } else { 1 };
    let items = gm.n * gm.group * p.nch * bu;
    let cost = 2 * (p.cb * taps * icg * gm.w) as u64 * if p.exact { p.rows } else { gm.h } as u64;
    let cap = (gemm::TASK_SCRATCH_BUDGET / (bbytes + cbytes)).max(2);
    let (lo, hi) = k.parallel_range_capped(items, 1, cost, cap)?;
    let ptrs = Ptrs { b: k.task_scratch(bbytes), c: k.task_scratch(cbytes), ..ptrs };
    let g2 = *gm;
    let last_cb = ocg - (p.nch - 1) * p.cb;
    k.for_dyn(lo, hi, 1, |k, it| {
        // it = ((n·group + g)·nch + cblk)·bu + blk
        let ngc = k.b.ins().udiv_imm_s(it, bu as i64);
        let blk = if p.exact { Some(k.b.ins().urem_imm_s(it, bu as i64)) } else { None };
        let ng = k.b.ins().udiv_imm_s(ngc, p.nch as i64);
        let cblk = k.b.ins().urem_imm_s(ngc, p.nch as i64);
        let task = |k: &mut Kernel, cbi: usize| run_task(k, &g2, &p, &ptrs, &Task { ng, cblk, cbi, blk, act });
        if last_cb == p.cb {
            task(k, p.cb);
        } else {
            let is_last = k.b.ins().icmp_imm_s(IntCC::Equal, cblk, (p.nch - 1) as i64);
            let not_last = k.b.ins().icmp_imm_s(IntCC::NotEqual, cblk, (p.nch - 1) as i64);
            k.if_then(not_last, |k| task(k, p.cb));
            k.if_then(is_last, |k| task(k, last_cb));
        }
    });
    Ok(())
}

/// The pointers every task reads or writes.
#[derive(Clone, Copy)]
struct Ptrs {
    xp: Value,
    out: Value,
    a: Value,
    row_bias: Value,
    bias: Value,
    b: Value,
    c: Value,
}

/// One task: image·group `ng`, channel block `cblk` of `cbi` channels, and
/// pixel block `blk` (else all of them).
struct Task {
    ng: Value,
    cblk: Value,
    cbi: usize,
    blk: Option<Value>,
    /// The fused activation.
    act: Act,
}

fn run_task(k: &mut Kernel, gm: &Geo, p: &Plan, ptrs: &Ptrs, t: &Task) {
    let (icg, ocg) = (gm.c / gm.group, gm.oc / gm.group);
    let taps = gm.kh * gm.kw;
    let exact = p.exact;
    let g = k.b.ins().urem_imm_s(t.ng, gm.group as i64);
    // first channel of the block in the whole output / in the weights
    let oc_g = k.b.ins().imul_imm_s(t.cblk, p.cb as i64);
    let gch = k.b.ins().imul_imm_s(t.ng, ocg as i64);
    let oc0 = k.b.ins().iadd(gch, oc_g);
    let g_oc = k.b.ins().imul_imm_s(g, ocg as i64);
    let boc0 = k.b.ins().iadd(g_oc, oc_g);
    // A blocks are packed in (group, block) order, each `rows × icg`
    let a_off = k.b.ins().imul_imm_s(boc0, (taps * icg * 4) as i64);
    let a = k.b.ins().iadd(ptrs.a, a_off);
    let rb_off = k.b.ins().imul_imm_s(boc0, (taps * 4) as i64);
    let row_bias = k.b.ins().iadd(ptrs.row_bias, rb_off);
    let ohw = gm.oh * gm.ow;
    let obase = k.b.ins().imul_imm_s(oc0, (ohw * 4) as i64);
    let obase = k.b.ins().iadd(ptrs.out, obase);
    if !exact {
        init_bias(k, ohw, t.cbi, ptrs.bias, boc0, obase);
    }
    let cin = k.b.ins().imul_imm_s(t.ng, icg as i64);
    let xoff = k.b.ins().imul_imm_s(cin, (gm.h * gm.w * 4) as i64);
    let xbase = k.b.ins().iadd(ptrs.xp, xoff);
    let l = k.lanes();
    let ldc = (p.rows * gm.w).div_ceil(l) * l;
    let block = |k: &mut Kernel, blk: Value, nrows: usize| {
        let width = nrows * gm.w;
        let p0 = k.b.ins().imul_imm_s(blk, (p.rows * gm.w) as i64);
        let group = gemm::panel_group(k);
        super::conv_packed::pack_flat(k, xbase, icg, gm.h * gm.w, p0, width, ptrs.b, group);
        let zero = k.ic(0);
        let gp = Gemm {
            a,
            bias: row_bias,
            m: t.cbi * taps,
            kk: icg,
            out: ptrs.c,
            ldo: ldc,
            // tiled exactly, each C element is one output, bias included
            epi: Epilogue { act: if exact { t.act } else { Act::None }, residual: None },
            rows: None,
            a_bytes: 4 * t.cbi * taps * icg,
        };
        let bk = Block { b: ptrs.b, rows: 1, ppr: width.div_ceil(l), width, pitch: width, out_off: zero, group };
        gemm::run_block(k, &gp, &bk);
        let iy0 = k.b.ins().imul_imm_s(blk, p.rows as i64);
        col2im(k, gm, exact, t.cbi, ldc, ptrs.c, obase, iy0, nrows);
    };
    let last_rows = gm.h - (p.nblk - 1) * p.rows;
    match t.blk {
        Some(blk) if last_rows == p.rows => block(k, blk, p.rows),
        Some(blk) => {
            let is_last = k.b.ins().icmp_imm_s(IntCC::Equal, blk, (p.nblk - 1) as i64);
            let not_last = k.b.ins().icmp_imm_s(IntCC::NotEqual, blk, (p.nblk - 1) as i64);
            k.if_then(not_last, |k| block(k, blk, p.rows));
            k.if_then(is_last, |k| block(k, blk, last_rows));
        }
        None => {
            if p.nblk > 1 {
                k.for_n(0, (p.nblk - 1) as i64, 1, |k, blk| block(k, blk, p.rows));
            }
            let lastb = k.ic((p.nblk - 1) as i64);
            block(k, lastb, last_rows);
            // the task's planes are final: the fused activation, in place
            if t.act != Act::None {
                activate_planes(k, t.act, t.cbi, ohw, obase);
            }
        }
    }
}

/// `act` in place on the `cbi` output planes of `ohw` values at `obase`.
fn activate_planes(k: &mut Kernel, act: Act, cbi: usize, ohw: usize, obase: Value) {
    k.for_vec(cbi * ohw, &mut |k, ty, i| {
        let v = k.ld_at(ty, obase, i, 4, 0);
        let y = apply_act(k, ty, act, v);
        k.st_at(y, obase, i, 4, 0);
    });
}

/// Sets the `cbi` output planes at `obase` to their channels' bias
/// (channels from `boc0` in the bias vector).
fn init_bias(k: &mut Kernel, ohw: usize, cbi: usize, bias: Value, boc0: Value, obase: Value) {
    k.for_n(0, cbi as i64, 1, |k, oc| {
        let bi = k.b.ins().iadd(boc0, oc);
        let bv = k.ld_at(types::F32, bias, bi, 4, 0);
        let po = k.b.ins().imul_imm_s(oc, (ohw * 4) as i64);
        let plane = k.b.ins().iadd(obase, po);
        k.for_vec(ohw, &mut |k, ty, i| {
            let v = k.widen(ty, bv);
            k.st_at(v, plane, i, 4, 0);
        });
    });
}

/// Adds (or, when the output is tiled exactly, stores) C's rows of `cbi`
/// channels for input rows `iy0..iy0+nrows` into the output planes at `obase`.
#[allow(clippy::too_many_arguments)]
fn col2im(
    k: &mut Kernel,
    gm: &Geo,
    exact: bool,
    cbi: usize,
    ldc: usize,
    c: Value,
    obase: Value,
    iy0: Value,
    nrows: usize,
) {
    let taps = gm.kh * gm.kw;
    let ohw = gm.oh * gm.ow;
    let g = *gm;
    // stride 2 with SIMD: taps tx, tx+1 fill neighbouring output columns,
    // so their C rows are interleaved a vector at a time
    let tap_pairs = g.sw == 2 && g.dw == 1 && k.caps.simd;
    k.for_n(0, cbi as i64, 1, |k, oc| {
        let po = k.b.ins().imul_imm_s(oc, (ohw * 4) as i64);
        let plane = k.b.ins().iadd(obase, po);
        let m0 = k.b.ins().imul_imm_s(oc, taps as i64);
        for ty in 0..g.kh {
            let crow = |k: &mut Kernel, tx: usize| {
                let m = k.b.ins().iadd_imm_s(m0, (ty * g.kw + tx) as i64);
                let off = k.b.ins().imul_imm_s(m, (ldc * 4) as i64);
                k.b.ins().iadd(c, off)
            };
            let mut tx = 0;
            while tx < g.kw {
                let pair = tap_pairs && tx + 1 < g.kw;
                let rows: Vec<(Value, usize)> =
                    if pair { vec![(crow(k, tx), tx), (crow(k, tx + 1), tx + 1)] } else { vec![(crow(k, tx), tx)] };
                k.for_n(0, nrows as i64, 1, |k, r| {
                    // oy = (iy0 + r)·sh − ph + ty·dh
                    let iy = k.b.ins().iadd(iy0, r);
                    let oy = k.b.ins().imul_imm_s(iy, g.sh as i64);
                    let oy = k.b.ins().iadd_imm_s(oy, (ty * g.dh) as i64 - g.ph as i64);
                    let ok = k.in_range(oy, g.oh as i64);
                    k.if_then(ok, |k| {
                        let orow = k.b.ins().imul_imm_s(oy, (g.ow * 4) as i64);
                        let orow = k.b.ins().iadd(plane, orow);
                        let cr = k.b.ins().imul_imm_s(r, (g.w * 4) as i64);
                        let src: Vec<(Value, usize)> =
                            rows.iter().map(|&(c0, t)| (k.b.ins().iadd(c0, cr), t)).collect();
                        if let [(a, ta), (b, _)] = src[..] {
                            scatter_pair(k, &g, exact, (a, b), orow, ta);
                        } else {
                            let (lo, hi) = tap_cols(g.w, g.ow, g.sw, g.dw, g.pw, src[0].1);
                            scatter_row(k, &g, exact, src[0].0, orow, src[0].1, lo, hi);
                        }
                    });
                });
                tx += if pair { 2 } else { 1 };
            }
        }
    });
}

/// Stride 2, taps `tx` and `tx + 1` (C rows `a`, `b`) into one output row:
/// the input columns both reach go a vector at a time, interleaved
/// (`a0 b0 a1 b1 | a2 b2 a3 b3`); each tap's remaining columns one by one.
fn scatter_pair(k: &mut Kernel, g: &Geo, exact: bool, (a, b): (Value, Value), orow: Value, tx: usize) {
    let (alo, ahi) = tap_cols(g.w, g.ow, 2, 1, g.pw, tx);
    let (blo, bhi) = tap_cols(g.w, g.ow, 2, 1, g.pw, tx + 1);
    let (lo, hi) = (alo.max(blo), ahi.min(bhi));
    if lo >= hi {
        scatter_row(k, g, exact, a, orow, tx, alo, ahi);
        scatter_row(k, g, exact, b, orow, tx + 1, blo, bhi);
        return;
    }
    let vecs = (hi - lo) / 4;
    let mid = lo + vecs * 4;
    // output column of input column `lo`, tap tx
    let first = (2 * lo + tx) as i64 - g.pw as i64;
    let (sa, sb) = (k.add_c(a, (lo * 4) as i64), k.add_c(b, (lo * 4) as i64));
    let dst = k.add_c(orow, first * 4);
    let lo_imm = k.lane_mask(&[0, 4, 1, 5]);
    let hi_imm = k.lane_mask(&[2, 6, 3, 7]);
    let mut flags = MemFlagsData::new();
    flags.set_endianness(Endianness::Little);
    k.for_n(0, vecs as i64, 1, |k, v| {
        let va = k.ld_at(types::F32X4, sa, v, 16, 0);
        let vb = k.ld_at(types::F32X4, sb, v, 16, 0);
        let (ba, bb) = (k.b.ins().bitcast(types::I8X16, flags, va), k.b.ins().bitcast(types::I8X16, flags, vb));
        let zl = k.b.ins().shuffle(ba, bb, lo_imm);
        let zh = k.b.ins().shuffle(ba, bb, hi_imm);
        let zl = k.b.ins().bitcast(types::F32X4, flags, zl);
        let zh = k.b.ins().bitcast(types::F32X4, flags, zh);
        let d = k.addr(dst, v, 32);
        put(k, exact, zl, d, 0);
        put(k, exact, zh, d, 16);
    });
    // the columns only one tap reaches, and the tail
    scatter_row(k, g, exact, a, orow, tx, alo, lo);
    scatter_row(k, g, exact, a, orow, tx, mid, ahi);
    scatter_row(k, g, exact, b, orow, tx + 1, blo, lo);
    scatter_row(k, g, exact, b, orow, tx + 1, mid, bhi);
}

/// One C row segment (input columns `lo..hi` of tap column `tx`; `cr` is
/// the row's column 0) into one output row.
#[allow(clippy::too_many_arguments)]
fn scatter_row(k: &mut Kernel, g: &Geo, exact: bool, cr: Value, orow: Value, tx: usize, lo: usize, hi: usize) {
    if lo >= hi {
        return;
    }
    let first = (lo * g.sw + tx * g.dw) as i64 - g.pw as i64;
    let src = k.add_c(cr, (lo * 4) as i64);
    let dst = k.add_c(orow, first * 4);
    let n = hi - lo;
    let add = |k: &mut Kernel, ty: Type, i: Value, stride: i64| {
        let v = k.ld_at(ty, src, i, 4, 0);
        let p = k.addr(dst, i, stride);
        put(k, exact, v, p, 0);
    };
    if g.sw == 1 {
        k.for_vec(n, &mut |k, ty, i| add(k, ty, i, 4));
    } else {
        k.for_n(0, n as i64, 1, |k, i| add(k, types::F32, i, (g.sw * 4) as i64));
    }
}

/// Stores `v` at `p + off` when the output is tiled exactly (`exact`),
/// else adds it to what is there.
fn put(k: &mut Kernel, exact: bool, v: Value, p: Value, off: i32) {
    let v = if exact {
        v
    } else {
        let ty = k.b.func.dfg.value_type(v);
        let cur = k.ld(ty, p, off);
        k.b.ins().fadd(cur, v)
    };
    k.st(v, p, off);
}

/// Run-time weights: the scalar scatter (see the module docs).
fn scatter(k: &mut Kernel, gm: &Geo) -> LResult {
    let Geo { n, c: ci, h, w: wd, oc: co, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw, group: g } = *gm;
    let (icg, ocg) = (ci / g, co / g);
    let xp = k.input(0);
    // W `[ci][ocg][kh][kw]` and the bias are read in their own layout:
    // constants and run-time tensors alike are passed as they are.
    let wptr = k.input(1);
    let bptr = if k.node.inputs.len() == 3 { k.input(2) } else { k.blob_f32(&vec![0.0; co]) };
    let out = k.output(0);
    // init with bias
    k.for_n(0, (n * co) as i64, 1, |k, nc| {
        let c_ = k.b.ins().urem_imm_s(nc, co as i64);
        let bv = k.ld_at(types::F32, bptr, c_, 4, 0);
        let base = k.b.ins().imul_imm_s(nc, (oh * ow) as i64);
        k.for_n(0, (oh * ow) as i64, 1, |k, p| {
            let e = k.b.ins().iadd(base, p);
            k.st_at(bv, out, e, 4, 0);
        });
    });
    k.nest(&[n, g, icg, h, wd], &mut |k, idx| {
        let (nn, gg, ic, iy, ix) = (idx[0], idx[1], idx[2], idx[3], idx[4]);
        let cin = k.b.ins().imul_imm_s(gg, icg as i64);
        let cin = k.b.ins().iadd(cin, ic);
        let e = k.linear(&[nn, cin, iy, ix], &[ci * h * wd, h * wd, wd, 1]);
        let xv = k.ld_at(types::F32, xp, e, 4, 0);
        k.nest(&[ocg, kh, kw], &mut |k, j| {
            let (oc, ty_, tx) = (j[0], j[1], j[2]);
            let y = k.linear(&[iy, ty_], &[sh, dh]);
            let y = k.b.ins().iadd_imm_s(y, -(ph as i64));
            let xx = k.linear(&[ix, tx], &[sw, dw]);
            let xx = k.b.ins().iadd_imm_s(xx, -(pw as i64));
            let okx = k.in_range(xx, ow as i64);
            let oky = k.in_range(y, oh as i64);
            let ok = k.b.ins().band(okx, oky);
            k.if_then(ok, |k| {
                let co_ = k.b.ins().imul_imm_s(gg, ocg as i64);
                let co_ = k.b.ins().iadd(co_, oc);
                let we = k.linear(&[cin, oc, ty_, tx], &[ocg * kh * kw, kh * kw, kw, 1]);
                let wv = k.ld_at(types::F32, wptr, we, 4, 0);
                let oe = k.linear(&[nn, co_, y, xx], &[co * oh * ow, oh * ow, ow, 1]);
                let p = k.addr(out, oe, 4);
                let cur = k.ld(types::F32, p, 0);
                let r = k.fmadd(xv, wv, cur);
                k.st(r, p, 0);
            });
        });
    });
    Ok(())
}
