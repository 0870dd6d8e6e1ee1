//! Depthwise convolution (one input and one output channel per group), the
//! memory-bound half of MobileNet-style blocks.
//!
//! Per channel (the parallel unit): the input plane is copied into a
//! task-private zero-padded scratch plane, split into `sw` *phases* by
//! column (`phase[s][j] = padded[j·sw + s]`), so that for any horizontal
//! stride and dilation the input pixels of `L` adjacent outputs for one tap
//! are contiguous: tap `kx` reads phase `(kx·dw) % sw` at offset
//! `ox + (kx·dw) / sw`. Each output row is then computed [`VECS`] vectors
//! at a time (8 independent accumulators hide the FMA latency), taps fully
//! unrolled, each tap's weight broadcast once for all vectors, the bias as
//! the initial value and the epilogue applied before the store.

use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Value};

use super::epilogue::{apply_act, Epilogue};
use super::{Kernel, LResult};

/// Output vectors computed together (accumulators in flight).
const VECS: usize = 8;

/// Geometry of a 2-D depthwise conv (1-D has `h = kh = 1`).
#[derive(Clone, Copy, Debug)]
pub struct DwGeo {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub ph: usize,
    pub pw: usize,
}

/// `w`: `[c][kh][kw]`, `bias`: `[c]`, both constants.
pub fn depthwise(k: &mut Kernel, g: &DwGeo, w: &[f32], bias: &[f32], epi: Epilogue) -> LResult {
    let l = k.lanes();
    let vty = k.vty();
    let g = *g;
    let ow_pad = g.ow.div_ceil(l) * l;
    let hp = (g.h + g.ph).max((g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1);
    let wph = (g.w + g.pw).div_ceil(g.sw).max(ow_pad + (g.kw - 1) * g.dw / g.sw) + 1;
    let row = g.sw * wph; // floats per padded row (all phases)
    let plane = hp * row;
    let xp = k.input(0);
    let out = k.output(0);
    let wb = k.blob_f32(w);
    let bb = k.blob_f32(bias);
    let taps = g.kh * g.kw;
    let (lo, hi) = k.parallel_range(g.n * g.c, 1, (2 * g.oh * g.ow * taps + plane) as u64)?;
    let pad = k.task_scratch(plane * 4);
    k.for_dyn(lo, hi, 1, |k, nc| {
        let ch = k.b.ins().urem_imm_s(nc, g.c as i64);
        // zero the padding rows (the padding columns of the image rows are
        // zeroed row by row in copy_plane), then copy the plane into its phases
        let top = g.ph * row;
        let bottom = (g.h + g.ph) * row;
        for (lo, hi) in [(0, top), (bottom, plane)] {
            let base = k.add_c(pad, (lo * 4) as i64);
            k.for_vec(hi - lo, &mut |k, ty, i| {
                let z = k.fsplat(ty, 0.0);
                k.st_at(z, base, i, 4, 0);
            });
        }
        let xo = k.b.ins().imul_imm_s(nc, (g.h * g.w * 4) as i64);
        let xbase = k.b.ins().iadd(xp, xo);
        copy_plane(k, &g, xbase, pad, wph);
        let wrow = k.b.ins().imul_imm_s(ch, (taps * 4) as i64);
        let wrow = k.b.ins().iadd(wb, wrow);
        let bp = k.addr(bb, ch, 4);
        let bs = k.ld_ro(types::F32, bp, 0);
        let bv = k.widen(vty, bs);
        let oo = k.b.ins().imul_imm_s(nc, (g.oh * g.ow * 4) as i64);
        let obase = k.b.ins().iadd(out, oo);
        let rbase = epi.residual.map(|r| k.b.ins().iadd(r, oo));
        k.for_n(0, g.oh as i64, 1, |k, oy| {
            let ro_ = k.b.ins().imul_imm_s(oy, (g.sh * row * 4) as i64);
            let prow = k.b.ins().iadd(pad, ro_);
            let oro = k.b.ins().imul_imm_s(oy, (g.ow * 4) as i64);
            let orow = k.b.ins().iadd(obase, oro);
            let rrow = rbase.map(|r| k.b.ins().iadd(r, oro));
            // one group of `nv` vectors at output column ox0 (element index),
            // the last vector `last` lanes wide
            let group = |k: &mut Kernel, ox0: Value, nv: usize, last: usize| {
                let po = k.b.ins().imul_imm_s(ox0, 4);
                let src = k.b.ins().iadd(prow, po);
                let dst = k.b.ins().iadd(orow, po);
                let mut acc = vec![bv; nv];
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let t = ky * g.kw + kx;
                        let wv = k.ld_ro(types::F32, wrow, (t * 4) as i32);
                        let wv = k.widen(vty, wv);
                        let (s, jo) = ((kx * g.dw) % g.sw, (kx * g.dw) / g.sw);
                        let base = ((ky * g.dh * row) + s * wph + jo) * 4;
                        for (v, a) in acc.iter_mut().enumerate() {
                            let x = k.ld(vty, src, (base + v * l * 4) as i32);
                            *a = k.fmadd(x, wv, *a);
                        }
                    }
                }
                for (v, a) in acc.into_iter().enumerate() {
                    let off = (v * l * 4) as i32;
                    let width = if v + 1 == nv { last } else { l };
                    if width == l {
                        let mut y = a;
                        if let Some(rr) = rrow {
                            let rp = k.b.ins().iadd(rr, po);
                            let r = k.ld(vty, rp, off);
                            y = k.b.ins().fadd(y, r);
                        }
                        let y = apply_act(k, vty, epi.act, y);
                        k.st(y, dst, off);
                    } else {
                        for q in 0..width {
                            let mut x = k.b.ins().extractlane(a, q as u8);
                            let o = off + (q * 4) as i32;
                            if let Some(rr) = rrow {
                                let rp = k.b.ins().iadd(rr, po);
                                let r = k.ld(types::F32, rp, o);
                                x = k.b.ins().fadd(x, r);
                            }
                            let x = apply_act(k, types::F32, epi.act, x);
                            k.st(x, dst, o);
                        }
                    }
                }
            };
            let span = VECS * l;
            let groups = g.ow / span;
            k.for_n(0, (groups * span) as i64, span as i64, |k, ox0| group(k, ox0, VECS, l));
            let left = g.ow - groups * span;
            if left > 0 {
                let ox0 = k.ic((groups * span) as i64);
                let nv = left.div_ceil(l);
                let last = left - (nv - 1) * l;
                group(k, ox0, nv, last);
            }
        });
    });
    Ok(())
}

/// Copies one input plane (`xbase`, `h × w`) into the zeroed phase-split
/// padded plane `pad` (`[hp][sw][wph]`): `pad[y+ph][s][j] = x[y][j·sw + s - pw]`.
fn copy_plane(k: &mut Kernel, g: &DwGeo, xbase: Value, pad: Value, wph: usize) {
    let g = *g;
    let row = g.sw * wph;
    k.for_n(0, g.h as i64, 1, |k, y| {
        let so = k.b.ins().imul_imm_s(y, (g.w * 4) as i64);
        let src = k.b.ins().iadd(xbase, so);
        let dof = k.b.ins().imul_imm_s(y, (row * 4) as i64);
        let dst = k.add_c(pad, (g.ph * row * 4) as i64);
        let dst = k.b.ins().iadd(dst, dof);
        zero_row_pads(k, &g, dst, wph);
        if g.sw == 1 {
            let d = k.add_c(dst, (g.pw * 4) as i64);
            k.for_vec(g.w, &mut |k, ty, j| {
                let v = k.ld_at(ty, src, j, 4, 0);
                k.st_at(v, d, j, 4, 0);
            });
            return;
        }
        // padded column xp = x + pw = j*sw + s
        let mut j_vec_end = 0usize;
        if g.sw == 2 && k.caps.simd {
            // 8 input floats → 4 even + 4 odd padded columns; j0 must make
            // x0 = 2*j0 - pw >= 0 and x0 + 8 <= w.
            let j_lo = g.pw.div_ceil(2);
            let j_hi = if g.w + g.pw >= 8 { (g.w + g.pw - 8) / 2 + 1 } else { 0 };
            let nvec = j_hi.saturating_sub(j_lo) / 4;
            if nvec > 0 {
                // phase of the even source floats: (x0 + pw) % 2 = 0
                let even = k.b.func.dfg.immediates.push(cranelift_codegen::ir::ConstantData::from(
                    [0u8, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27].as_slice(),
                ));
                let odd = k.b.func.dfg.immediates.push(cranelift_codegen::ir::ConstantData::from(
                    [4u8, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31].as_slice(),
                ));
                let flags = MemFlagsData::new().with_notrap();
                k.for_n(0, nvec as i64, 1, |k, i| {
                    let j0 = k.b.ins().imul_imm_s(i, 4);
                    let j0 = k.b.ins().iadd_imm_s(j0, j_lo as i64);
                    // x0 = 2*j0 - pw
                    let xo = k.b.ins().imul_imm_s(j0, 8);
                    let sp = k.b.ins().iadd(src, xo);
                    let soff = -((g.pw * 4) as i32);
                    let a = k.b.ins().load(types::I8X16, flags, sp, soff);
                    let b = k.b.ins().load(types::I8X16, flags, sp, soff + 16);
                    let e = k.b.ins().shuffle(a, b, even);
                    let o = k.b.ins().shuffle(a, b, odd);
                    let dp = k.addr(dst, j0, 4);
                    k.b.ins().store(flags, e, dp, 0);
                    k.b.ins().store(flags, o, dp, (wph * 4) as i32);
                });
                j_vec_end = j_lo + nvec * 4;
                // scalar for j in 0..j_lo and j_vec_end.. (below), skipping the vector range
                scalar_phases(k, &g, src, dst, wph, 0, j_lo);
                scalar_phases(k, &g, src, dst, wph, j_vec_end, usize::MAX);
                return;
            }
        }
        scalar_phases(k, &g, src, dst, wph, j_vec_end, usize::MAX);
    });
}

/// Zeroes the entries of one padded image row that the copy leaves alone:
/// per phase `s`, the columns `j` whose source `x = j·sw + s - pw` falls
/// outside `[0, w)`.
fn zero_row_pads(k: &mut Kernel, g: &DwGeo, dst: Value, wph: usize) {
    let z = k.fc(0.0);
    for s in 0..g.sw {
        let lo = if s >= g.pw { 0 } else { (g.pw - s).div_ceil(g.sw) };
        let hi = if g.w + g.pw > s { (g.w + g.pw - s - 1) / g.sw + 1 } else { 0 };
        let (lo, hi) = (lo.min(wph), hi.clamp(lo.min(wph), wph));
        let d = k.add_c(dst, (s * wph * 4) as i64);
        for (a, b) in [(0, lo), (hi, wph)] {
            if b - a <= 8 {
                for j in a..b {
                    k.st(z, d, (j * 4) as i32);
                }
            } else {
                k.for_n(a as i64, b as i64, 1, |k, j| k.st_at(z, d, j, 4, 0));
            }
        }
    }
}

/// Scalar phase copy of padded columns `j in [j_from, j_to)` (clamped to
/// the valid source range) for every phase.
fn scalar_phases(k: &mut Kernel, g: &DwGeo, src: Value, dst: Value, wph: usize, j_from: usize, j_to: usize) {
    for s in 0..g.sw {
        // x = j*sw + s - pw in [0, w)
        let lo = if s >= g.pw { 0 } else { (g.pw - s).div_ceil(g.sw) };
        let hi = if g.w + g.pw > s { (g.w + g.pw - s - 1) / g.sw + 1 } else { 0 };
        let (lo, hi) = (lo.max(j_from), hi.min(j_to));
        if lo >= hi {
            continue;
        }
        let d = k.add_c(dst, (s * wph * 4) as i64);
        k.for_n(lo as i64, hi as i64, 1, |k, j| {
            let x = k.b.ins().imul_imm_s(j, g.sw as i64);
            let x = k.b.ins().iadd_imm_s(x, s as i64 - g.pw as i64);
            let v = k.ld_at(types::F32, src, x, 4, 0);
            k.st_at(v, d, j, 4, 0);
        });
    }
}
