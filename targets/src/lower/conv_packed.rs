//! The packed-GEMM convolution: constant weights packed at compile time into
//! the GEMM engine's A row blocks ([`gemm`]), input patches packed straight
//! from the input into B panels per block of output pixels, and the task
//! split over (pixel block, output-channel row block) units that
//! `winograd.rs` shares (`unit_items`, `unit_rows`).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::conv_geo::Geo;
use super::epilogue::Epilogue;
use super::gemm::{self, Block, Gemm};
use super::loops::{imax, imin};
use super::{Kernel, LResult};

/// Conv with constant weights as a GEMM over blocks of output pixels
/// ([`gemm`]): W packed at compile time into A row blocks, the input
/// patches of a block of output rows (or, for pointwise convs, of a block
/// of flattened pixels) packed into B panels straight from the input, with
/// padding resolved at compile time per kernel column (no padded copy of
/// the input, so blocks are independent and run as parallel tasks).
pub(super) fn conv_packed(k: &mut Kernel, gm: &Geo, w: &[f32], bias: &[f32], epi: Epilogue) -> LResult {
    let icg = gm.c / gm.group;
    let ocg = gm.oc / gm.group;
    let kk = icg * gm.kh * gm.kw;
    let l = k.lanes();
    let ohw = gm.oh * gm.ow;
    let mut a = Vec::with_capacity(gm.oc * kk);
    for g in 0..gm.group {
        a.extend(gemm::pack_a(&w[g * ocg * kk..], ocg, kk, kk));
    }
    let Blocks { pointwise, flat_rows, rows, ppr, width, pitch, nblk, rbu } = Blocks::new(k, gm, kk);
    let xp = k.input(0);
    let out = k.output(0);
    let (a_ptr, a_bytes) = (k.blob_f32(&a), 4 * a.len());
    let b_ptr = k.blob_f32(bias);
    let items = gm.n * gm.group * nblk;
    let cost = 2 * (ocg * kk * rows * ppr * l) as u64;
    let group = gemm::panel_group(k);
    let bbytes = gemm::Panels::new(l, kk, group).bytes(rows, ppr);
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
        let oy0 = k.b.ins().imul_imm_s(blk, rows as i64);
        if pointwise {
            pack_flat(k, xbase, icg, g2.h * g2.w, p0, bw, bbuf, group);
        } else if flat_rows {
            pack_rows_flat(k, &g2, icg, xbase, oy0, nrows, bbuf, group);
        } else {
            pack_rows(k, &g2, icg, xbase, oy0, (nrows, ppr), bbuf, group);
        }
        let ga = k.b.ins().imul_imm_s(g, (ocg * kk * 4) as i64);
        let gb = k.b.ins().imul_imm_s(g, (ocg * 4) as i64);
        let (a, bias) = (k.b.ins().iadd(a_ptr, ga), k.b.ins().iadd(b_ptr, gb));
        let gp = Gemm { a, bias, m: ocg, kk, out, ldo: ohw, epi, rows: mrows, a_bytes };
        let bk = if flat_rows {
            // the block's rows as one run of nrows·ow pixels
            let n = nrows * g2.ow;
            Block { b: bbuf, rows: 1, ppr: n.div_ceil(l), width: n, pitch: n, out_off, group }
        } else {
            Block { b: bbuf, rows: nrows, ppr: bw.div_ceil(l), width: bw, pitch, out_off, group }
        };
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

/// How a packed conv cuts its output into pixel blocks (whose B panels fit
/// the L2 budget) and its task units, decided before any code.
struct Blocks {
    /// A 1x1 stride-1 conv without padding: blocks of flattened pixels.
    pointwise: bool,
    /// Output rows narrower than four panels, packed as one flat run.
    flat_rows: bool,
    /// Output rows per block (1 for pointwise convs), panels per row,
    /// pixels per row (or per block), the output's pitch between rows.
    rows: usize,
    ppr: usize,
    width: usize,
    pitch: usize,
    /// Pixel blocks per image and group.
    nblk: usize,
    /// Units per pixel block: GEMM row blocks of output channels when the
    /// tasks split channels too, else 1.
    rbu: usize,
}

impl Blocks {
    fn new(k: &Kernel, gm: &Geo, kk: usize) -> Blocks {
        let (l, ohw, ocg) = (k.lanes(), gm.oh * gm.ow, gm.oc / gm.group);
        let pointwise = gm.kh == 1 && gm.kw == 1 && gm.sh == 1 && gm.sw == 1 && gm.ph == 0 && gm.pw == 0;
        // narrow output rows (fewer than four panels: the late layers of a
        // CNN, 7 or 14 pixels wide) pack a block's rows as one flat run of
        // pixels, so that panels are full and the wide GEMM tiles apply
        let flat_rows = !pointwise && gm.ow < 4 * l && l > 1;
        let budget = gemm::b_block_bytes(&k.caps);
        // Pixel blocks as large as the B budget allows.
        let per_flat = (budget / (kk * 4)).clamp(l, 512) / l * l;
        let ppr_rows = gm.ow.div_ceil(l);
        let fit_rows = (budget / (ppr_rows * kk * l * 4)).max(1);
        let nblk_fit =
            if pointwise { ohw.div_ceil(per_flat.min(ohw.div_ceil(l) * l)) } else { gm.oh.div_ceil(fit_rows) };
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
            // chunks are equal work, and without a channel split a count that
            // two or four threads share evenly (MobileNetV2's 56x56
            // projections made 7 blocks: 4 + 3 at two threads, 1.60x)
            let count = ohw.div_ceil(nb);
            let count = if chan_split { count } else { balanced_count(count, ohw.div_ceil(l)) };
            let nb = ohw.div_ceil(count).div_ceil(l) * l;
            (1, nb / l, nb, nb, ohw.div_ceil(nb))
        } else {
            // without a channel split: at least two blocks when there are two
            // rows, so that two threads have work even on the last layers
            let cap = if chan_split { gm.oh } else { gm.oh.div_ceil(2) };
            let r = fit_rows.min(cap).max(1);
            // balanced: the fewest rows per block that keeps the block count
            // (rounded as for pointwise convs)
            let count = gm.oh.div_ceil(r);
            let count = if chan_split { count } else { balanced_count(count, gm.oh) };
            let r = gm.oh.div_ceil(count);
            (r, ppr_rows, gm.ow, gm.ow, gm.oh.div_ceil(r))
        };
        // units per pixel block: GEMM row blocks when splitting channels
        let rbu = if chan_split { ocg.div_ceil(gemm::MR) } else { 1 };
        Blocks { pointwise, flat_rows, rows, ppr, width, pitch, nblk, rbu }
    }
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
/// into B panels in groups of `group` (`[c/group][ic][group·L]`,
/// [`gemm::Block::group`]); the last partial panel is
/// zero-filled, nothing past the plane is read.
///
/// Whole units (a pair, or a single panel) are packed one at a time, all
/// `icg` planes each: the destination is written sequentially, and the
/// source lines a unit reads (one per plane) hold the next unit's pixels
/// too, so they are still in L1. Plane-major order wrote every unit's
/// buffer at a 32-byte step per plane; on a 144-plane 56x56 input the
/// writes missed L1 and packing cost more than a 24-row product (1x1
/// 144→24 on 56x56: 0.73 → 0.39 ms, `kerf bench --profile`).
#[allow(clippy::too_many_arguments)]
pub(super) fn pack_flat(
    k: &mut Kernel,
    xbase: Value,
    icg: usize,
    hw: usize,
    p0: Value,
    width: usize,
    dst: Value,
    group: usize,
) {
    let l = k.lanes();
    let vty = k.vty();
    let full = width / l;
    let tail = width % l;
    let src0 = k.addr(xbase, p0, 4);
    let pan = gemm::Panels::new(l, icg, group);
    // panels per unit, and the units' panels in order
    let per = pan.group();
    let units = full / per;
    let kstep = pan.kstep() as i64;
    let unit_bytes = (per * l * 4) as i64;
    // `n` units from unit `u`: each plane's `n·per` vectors in one go
    // (two units of pairs read a whole 64-byte line of each plane, two of
    // quads two lines)
    // with AVX2 and panels in groups: the assembled copy
    let wide = flat_packers(k, &pan, hw, units);
    let pack_units = |k: &mut Kernel, u: Value, n: usize| {
        let so = k.b.ins().imul_imm_s(u, unit_bytes);
        let src = k.b.ins().iadd(src0, so);
        let d0 = k.b.ins().imul_imm_s(u, per as i64 * pan.stride());
        let d0 = k.b.ins().iadd(dst, d0);
        if let Some((Some(code), sig)) = wide.map(|(c, sig)| (c[n - 1], sig)) {
            let count = k.ic(icg as i64);
            k.b.ins().call_indirect(sig, code, &[src, d0, count]);
            return;
        }
        k.for_n(0, icg as i64, 1, |k, ic| {
            let xo = k.b.ins().imul_imm_s(ic, (hw * 4) as i64);
            let xs = k.b.ins().iadd(src, xo);
            let d = k.b.ins().imul_imm_s(ic, kstep);
            let d = k.b.ins().iadd(d0, d);
            for q in 0..n {
                for j in 0..per {
                    let v = k.ld(vty, xs, ((q * per + j) * l * 4) as i32);
                    let at = q as i64 * per as i64 * pan.stride() + (j * l * 4) as i64;
                    k.st(v, d, at as i32);
                }
            }
        });
    };
    k.for_n(0, (units / 2 * 2) as i64, 2, |k, u| pack_units(k, u, 2));
    if units % 2 == 1 {
        let u = k.ic((units - 1) as i64);
        pack_units(k, u, 1);
    }
    if units * per == full && tail == 0 {
        return;
    }
    // the panels after the whole units: a lone full panel of a pair, the tail
    k.for_n(0, icg as i64, 1, |k, ic| {
        let xo = k.b.ins().imul_imm_s(ic, (hw * 4) as i64);
        let xrow = k.b.ins().iadd(src0, xo);
        let d0 = k.addr(dst, ic, kstep);
        for c in units * per..full {
            let v = k.ld(vty, xrow, (c * l * 4) as i32);
            k.st(v, d0, pan.at(c) as i32);
        }
        if tail > 0 {
            let d = pan.at(full) as i32;
            for q in 0..l {
                let v = if q < tail { k.ld(types::F32, xrow, ((full * l + q) * 4) as i32) } else { k.fc(0.0) };
                k.st(v, d0, d + (q * 4) as i32);
            }
        }
    });
}

/// The assembled copies of [`pack_flat`]'s whole units
/// (`ukernel::avx2::flat_pack`; runs of one unit and of two, each only
/// where it occurs) and their call signature, where the target has AVX2
/// and B is stored in groups of panels: the same floats to the same
/// places as the Cranelift copy.
fn flat_packers(
    k: &mut Kernel,
    pan: &gemm::Panels,
    hw: usize,
    units: usize,
) -> Option<([Option<Value>; 2], cranelift_codegen::ir::SigRef)> {
    if !k.caps.avx2 || k.lanes() != 4 || pan.group() < 2 {
        return None;
    }
    let (per, mut codes) = (pan.group(), [None, None]);
    let occurs = [units % 2 == 1, units >= 2];
    for (n, code) in [1, 2].into_iter().zip(&mut codes) {
        if occurs[n - 1] {
            let bytes =
                crate::ukernel::avx2::flat_pack(per, n, per * pan.stride() as usize, hw * 4, pan.kstep()).ok()?;
            *code = Some(k.code(super::Family::Avx2, bytes));
        }
    }
    Some((codes, k.ukernel_sig(3)))
}

/// Packs the patches of output rows `oy0..oy0+rows` as one flat run of
/// `rows·ow` pixels into B panels `[c][k][L]` (`k = (ic, ky, kx)`; pixel
/// `p = r·ow + ox` in panel `p / L`, lane `p % L`; the lanes past the run
/// zero-filled). The pixel → (row, column) map and each kernel column's
/// valid output columns are compile-time facts: a panel wholly inside one
/// row and valid is one vector copy (stride 1), everything else lane by
/// lane, and a row whose input row is padding is zero-filled.
#[allow(clippy::too_many_arguments)]
fn pack_rows_flat(
    k: &mut Kernel,
    gm: &Geo,
    icg: usize,
    xbase: Value,
    oy0: Value,
    rows: usize,
    dst: Value,
    group: usize,
) {
    let l = k.lanes();
    let vty = k.vty();
    let g = *gm;
    let n = rows * g.ow;
    let npan = n.div_ceil(l);
    let kk = icg * g.kh * g.kw;
    let pan = gemm::Panels::new(l, kk, group);
    let kstep = pan.kstep();
    let valid = valid_columns(&g);
    k.for_n(0, icg as i64, 1, |k, ic| {
        let (xch, dch) = channel_ptrs(k, &g, ic, xbase, dst, kstep);
        k.for_n(0, g.kh as i64, 1, |k, ky| {
            let dkyo = k.b.ins().imul_imm_s(ky, (g.kw * kstep) as i64);
            let dky = k.b.ins().iadd(dch, dkyo);
            let t = k.b.ins().imul_imm_s(ky, g.dh as i64);
            // B element of pixel p at kernel column kx
            let at = |p: usize, kx: usize| (pan.at(p / l) + (kx * kstep + (p % l) * 4) as i64) as i32;
            for r in 0..rows {
                let oy = k.b.ins().iadd_imm_s(oy0, r as i64);
                let (xrow, ok, bad) = input_row(k, &g, xch, oy, t);
                k.if_then(ok, |k| {
                    for (kx, &(vlo, vhi)) in valid.iter().enumerate() {
                        let ix0 = (kx * g.dw) as i64 - g.pw as i64;
                        let mut ox = 0;
                        while ox < g.ow {
                            let p = r * g.ow + ox;
                            let whole = p.is_multiple_of(l) && ox + l <= g.ow && ox >= vlo && ox + l <= vhi;
                            if whole && g.sw == 1 {
                                let v = k.ld(vty, xrow, ((ox as i64 + ix0) * 4) as i32);
                                k.st(v, dky, at(p, kx));
                                ox += l;
                                continue;
                            }
                            let v = if ox >= vlo && ox < vhi {
                                k.ld(types::F32, xrow, ((ox as i64 * g.sw as i64 + ix0) * 4) as i32)
                            } else {
                                k.fc(0.0)
                            };
                            k.st(v, dky, at(p, kx));
                            ox += 1;
                        }
                    }
                });
                k.if_then(bad, |k| {
                    let z = k.fc(0.0);
                    for kx in 0..g.kw {
                        for ox in 0..g.ow {
                            k.st(z, dky, at(r * g.ow + ox, kx));
                        }
                    }
                });
            }
            let z = k.fc(0.0);
            for kx in 0..g.kw {
                for p in n..npan * l {
                    k.st(z, dky, at(p, kx));
                }
            }
        });
    });
}

/// A row's panels for a kernel column whose valid output columns are
/// `vlo..vhi` and whose output column 0 reads input column `ix0`: panels
/// `c_lo..c_hi` are whole inside the valid columns (the others go lane by
/// lane), and at stride 2 with 4-lane vectors those before `c_pair` have
/// their `2L` floats inside the input row (their even lanes by vector
/// loads; `c_pair = c_lo` elsewhere).
fn panel_spans(g: &Geo, (vlo, vhi): (usize, usize), ix0: i64, l: usize) -> (usize, usize, usize) {
    let c_lo = vlo.div_ceil(l);
    let c_hi = (vhi / l).max(c_lo);
    let c_pair = if g.sw == 2 && l == 4 { pair_end(g, ix0, l).clamp(c_lo, c_hi) } else { c_lo };
    (c_lo, c_pair, c_hi)
}

/// The whole groups of `group` panels among panels `c_lo..c_pair`, as the
/// panel range `g_lo..g_hi` (empty when `g_hi ≤ g_lo`).
fn whole_groups(c_lo: usize, c_pair: usize, group: usize) -> (usize, usize) {
    (c_lo.next_multiple_of(group).min(c_pair), c_pair / group * group)
}

/// The assembled stride-2 packer for `g`'s B panels (`pan`) and its call
/// signature, where the target has AVX2 and B is stored in groups of
/// panels (`ukernel::avx2::even_pack`: the even-lane panels' whole groups
/// at once; the same floats as [`even_lanes`] panel by panel).
fn even_packer(k: &mut Kernel, g: &Geo, pan: &gemm::Panels) -> Option<(Value, cranelift_codegen::ir::SigRef)> {
    if !k.caps.avx2 || k.lanes() != 4 || g.sw != 2 || pan.group() < 2 {
        return None;
    }
    let group_bytes = pan.group() * pan.stride() as usize;
    let code = crate::ukernel::avx2::even_pack(pan.group(), group_bytes).ok()?;
    let code = k.code(super::Family::Avx2, code);
    Some((code, k.ukernel_sig(3)))
}

/// The input row that output row `oy` reads at kernel row offset `t`
/// (`ky·dh`, I64) in the channel plane `xch`: its pointer (valid only when
/// inside the image), and whether it is inside (`ok`) or padding (`bad`).
fn input_row(k: &mut Kernel, g: &Geo, xch: Value, oy: Value, t: Value) -> (Value, Value, Value) {
    let iy = k.b.ins().imul_imm_s(oy, g.sh as i64);
    let iy = k.b.ins().iadd(iy, t);
    let iy = k.b.ins().iadd_imm_s(iy, -(g.ph as i64));
    let ok = k.in_range(iy, g.h as i64);
    let bad = k.b.ins().bxor_imm_u(ok, 1);
    let xr = k.b.ins().imul_imm_s(iy, (g.w * 4) as i64);
    (k.b.ins().iadd(xch, xr), ok, bad)
}

/// Input channel `ic`'s plane in `xbase` and its first B element in the
/// panels at `dst` (each channel holds `kh·kw` K steps of `kstep` bytes).
fn channel_ptrs(k: &mut Kernel, g: &Geo, ic: Value, xbase: Value, dst: Value, kstep: usize) -> (Value, Value) {
    let xo = k.b.ins().imul_imm_s(ic, (g.h * g.w * 4) as i64);
    let dof = k.b.ins().imul_imm_s(ic, (g.kh * g.kw * kstep) as i64);
    (k.b.ins().iadd(xbase, xo), k.b.ins().iadd(dst, dof))
}

/// Output columns `[lo, hi)` whose input column is inside the image, per
/// kernel column.
fn valid_columns(g: &Geo) -> Vec<(usize, usize)> {
    (0..g.kw)
        .map(|kx| {
            let off = kx * g.dw;
            // ix = ox*sw + off - pw in [0, w)
            let lo = if off >= g.pw { 0 } else { (g.pw - off).div_ceil(g.sw) };
            let hi = if g.w + g.pw > off { ((g.w + g.pw - off - 1) / g.sw + 1).min(g.ow) } else { 0 };
            (lo.min(g.ow), hi.max(lo.min(g.ow)))
        })
        .collect()
}

/// First panel (stride 2, `l` lanes) whose `2l` floats from input column
/// `ix0 + 2·l·c` reach past the row: panels before it may load both
/// vectors of the pair (the odd lanes are read and dropped).
fn pair_end(g: &Geo, ix0: i64, l: usize) -> usize {
    // need ix0 + 2l·c + 2l - 1 < w, i.e. c < (w - ix0 - 2l + 1) / 2l
    let room = g.w as i64 - ix0 - 2 * l as i64 + 1;
    if room <= 0 {
        0
    } else {
        (room as usize).div_ceil(2 * l)
    }
}

/// The even floats of the 8 at `p + off`, as one `f32x4` (two loads, one
/// `shufps`): the lanes of a stride-2 panel.
fn even_lanes(k: &mut Kernel, p: Value, off: i32) -> Value {
    let lo = k.ld(types::F32X4, p, off);
    let hi = k.ld(types::F32X4, p, off + 16);
    k.shuffle_f32(lo, hi, [0, 2, 4, 6])
}

/// Packs the patches of output rows `oy0..oy0+rows` into B panels
/// `[r][c][k][L]` with `k = (ic, ky, kx)`: W's row-major order. Per kernel
/// column `kx` the output columns whose input column is inside the image
/// are known at compile time, so interior panels are plain (vector) copies
/// and only border panels read lane by lane with zeros for the padding;
/// rows whose input row is padding are zero-filled.
#[allow(clippy::too_many_arguments)]
fn pack_rows(
    k: &mut Kernel,
    gm: &Geo,
    icg: usize,
    xbase: Value,
    oy0: Value,
    (rows, ppr): (usize, usize),
    dst: Value,
    group: usize,
) {
    let l = k.lanes();
    let vty = k.vty();
    let kk = icg * gm.kh * gm.kw;
    let pan = gemm::Panels::new(l, kk, group);
    let kstep = pan.kstep();
    let g = *gm;
    let valid = valid_columns(&g);
    // stride 2 on AVX2 targets: whole groups of panels by the assembled
    // packer, where some kernel column has one
    let grouped = valid.iter().enumerate().any(|(kx, &v)| {
        let (c_lo, c_pair, _) = panel_spans(&g, v, (kx * g.dw) as i64 - g.pw as i64, l);
        let (g_lo, g_hi) = whole_groups(c_lo, c_pair, pan.group());
        g_hi > g_lo
    });
    let even = if grouped { even_packer(k, &g, &pan) } else { None };
    k.for_n(0, rows as i64, 1, |k, r| {
        let oy = k.b.ins().iadd(oy0, r);
        let ro_ = k.b.ins().imul_imm_s(r, pan.per_row(ppr) as i64 * pan.stride());
        let rbase = k.b.ins().iadd(dst, ro_);
        k.for_n(0, icg as i64, 1, |k, ic| {
            let (xch, dch) = channel_ptrs(k, &g, ic, xbase, rbase, kstep);
            k.for_n(0, g.kh as i64, 1, |k, ky| {
                let t = k.b.ins().imul_imm_s(ky, g.dh as i64);
                let dkyo = k.b.ins().imul_imm_s(ky, (g.kw * kstep) as i64);
                let dky = k.b.ins().iadd(dch, dkyo);
                let (xrow, ok, bad) = input_row(k, &g, xch, oy, t);
                k.if_then(ok, |k| {
                    for (kx, &span) in valid.iter().enumerate() {
                        let dkx = k.add_c(dky, (kx * kstep) as i64);
                        pack_column(k, (&g, &pan, even), (xrow, dkx), kx, span, ppr);
                    }
                });
                k.if_then(bad, |k| {
                    let z = k.fsplat(vty, 0.0);
                    for kx in 0..g.kw {
                        let dkx = k.add_c(dky, (kx * kstep) as i64);
                        k.for_n(0, ppr as i64, 1, |k, c| {
                            let d = pan.at_dyn(k, c);
                            let d = k.b.ins().iadd(dkx, d);
                            k.st(z, d, 0);
                        });
                    }
                });
            });
        });
    });
}

/// Kernel column `kx`'s panels of one input row at `xrow` into `dkx`:
/// output columns `vlo..vhi` read the image, the others zeros; interior
/// panels as vector copies (at stride 2 their even lanes, by whole groups
/// through the assembled packer `even` where there is one), border panels
/// lane by lane.
fn pack_column(
    k: &mut Kernel,
    (g, pan, even): (&Geo, &gemm::Panels, Option<(Value, cranelift_codegen::ir::SigRef)>),
    (xrow, dkx): (Value, Value),
    kx: usize,
    (vlo, vhi): (usize, usize),
    ppr: usize,
) {
    let (l, vty) = (k.lanes(), k.vty());
    // ix of output column 0 for this kx (may be negative)
    let ix0 = (kx * g.dw) as i64 - g.pw as i64;
    let (c_lo, c_pair, c_hi) = panel_spans(g, (vlo, vhi), ix0, l);
    let lane = |k: &mut Kernel, c: usize| {
        for q in 0..l {
            let ox = c * l + q;
            let v = if ox >= vlo && ox < vhi {
                let ix = ox as i64 * g.sw as i64 + ix0;
                k.ld(types::F32, xrow, (ix * 4) as i32)
            } else {
                k.fc(0.0)
            };
            k.st(v, dkx, pan.at(c) as i32 + (q * 4) as i32);
        }
    };
    for c in (0..c_lo).chain(c_hi..ppr) {
        lane(k, c);
    }
    // stride 2 with vectors: panels whose 2L floats lie in
    // the row take their even lanes (one shuffle); the rest
    // of the interior goes lane by lane
    // the whole groups among the even-lane panels, if assembled
    let grp = pan.group();
    let (g_lo, g_hi) = match even {
        Some(_) => whole_groups(c_lo, c_pair, grp),
        None => (c_pair, c_pair),
    };
    if let (Some((code, sig)), true) = (even, g_hi > g_lo) {
        let src = k.add_c(xrow, (ix0 + (2 * l * g_lo) as i64) * 4);
        let dst = k.add_c(dkx, pan.at(g_lo));
        let n = k.ic(((g_hi - g_lo) / grp) as i64);
        k.b.ins().call_indirect(sig, code, &[src, dst, n]);
    }
    let g_hi = g_hi.max(g_lo);
    let spans = [(c_lo, g_lo, true), (g_hi, c_pair, true), (c_pair, c_hi, false)];
    for (a, b, pairs) in spans.into_iter().filter(|&(a, b, _)| b > a) {
        k.for_n(a as i64, b as i64, 1, |k, c| {
            let d = pan.at_dyn(k, c);
            let d = k.b.ins().iadd(dkx, d);
            let s = k.b.ins().imul_imm_s(c, (l * g.sw * 4) as i64);
            let s = k.b.ins().iadd(xrow, s);
            if g.sw == 1 || l == 1 {
                let v = k.ld(vty, s, (ix0 * 4) as i32);
                k.st(v, d, 0);
            } else if pairs && g.sw == 2 && l == 4 {
                let v = even_lanes(k, s, (ix0 * 4) as i32);
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

/// A pixel block count of at least `count` that threads share evenly: from
/// 3 to 15 blocks, the next multiple of four (two or four threads then
/// take equal shares), at most `most` (one panel or row per block).
fn balanced_count(count: usize, most: usize) -> usize {
    if (3..16).contains(&count) {
        count.next_multiple_of(4).min(most.max(count))
    } else {
        count
    }
}

#[cfg(test)]
mod tests {
    use super::balanced_count;

    #[test]
    fn block_counts_split_evenly_over_two_and_four_threads() {
        let cases = [(7, 100, 8), (5, 100, 8), (3, 100, 4), (13, 100, 16), (5, 6, 6), (7, 7, 7)];
        for (count, most, want) in cases {
            assert_eq!(balanced_count(count, most), want, "{count} blocks, at most {most}");
        }
        // one or two blocks (already even), and sixteen and more (dynamic claiming evens them out)
        for count in [1, 2, 16, 17, 40] {
            assert_eq!(balanced_count(count, 100), count);
        }
    }
}
