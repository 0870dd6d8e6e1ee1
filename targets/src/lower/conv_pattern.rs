//! Pattern-sparse direct convolution (PatDNN's compiler half): a conv whose
//! constant weight has a pattern layout ([`kerf_ir::Sparsity::detect`]:
//! every kernel keeps the taps of one of a few masks, or is removed) runs
//! only its kept taps, with no index decoding and no zero MACs.
//!
//! Compact storage, built at compile time: for each output channel and each
//! mask, the kept kernels' input-channel offsets (`i64`, bytes into the
//! padded image) and their kept weights (`f32`, one per tap), grouped so
//! that one mask is one loop. A header per (output channel, mask) holds the
//! kernel count and where its offsets and weights start. Removed kernels
//! have no entry at all.
//!
//! Code: the input is copied into a zero-padded scratch image (so no tap is
//! bounds-checked); each output plane starts as the bias, then, mask by
//! mask, one loop runs over that mask's kept kernels, and each kernel
//! (its kept weights broadcast once into registers) is applied to the whole
//! plane: per output vector one load, one FMA per kept tap with the tap's
//! constant offset (the pattern-specialised inner loop: no index decoding,
//! no zero MACs), one store; the plane stays in L1 across kernels. Stride 1
//! only (any dilation, padding); the epilogue runs as a second pass.
//!
//! With AVX2 + FMA, an assembled pass (`ukernel::avx2::pattern_pass`)
//! covers the whole plane instead (8-pixel `ymm` vectors, a 4-pixel `xmm`
//! one, single pixels), two kept kernels of a mask at a time (one
//! accumulator load and store per two kernels); per pixel the order of the
//! fused multiply-adds is the same, so the bits are too.
//!
//! Threads split the output channels ([`Kernel::parallel_range`]); each
//! task pads the image into its own scratch copy (a small fraction of its
//! work), and computes its channels exactly as a serial run does.

use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::conv_geo::{pad_input, Geo};
use super::{Family, Kernel, LResult};
use crate::ukernel::avx2::{pattern_pass, PatternPass};

/// Whether the pattern kernel computes this conv: one group, stride 1, and
/// an output plane of at least 64 pixels (below that its per-kernel pass
/// costs more than the dense kernels' work; see
/// [`kerf_ir::Sparsity::pattern_beats_winograd`]).
pub(super) fn fits(gm: &Geo) -> bool {
    gm.group == 1 && gm.sh == 1 && gm.sw == 1 && gm.oh * gm.ow >= 64
}

/// Output vectors per step along a row (independent FMA chains; 2 measured
/// fastest of 1, 2, 4 and 8 on a 64-channel 56x56 layer).
const BLOCK: usize = 2;

/// The compile-time tables of one layer.
struct Tables {
    /// `[oc][mask]`: (kernel count, first offset index, first weight index).
    header: Vec<[i64; 3]>,
    /// Byte offset of each kept kernel's input channel in the padded image.
    offsets: Vec<i64>,
    /// The kept weights, per kernel in tap order.
    weights: Vec<f32>,
}

fn tables(gm: &Geo, w: &[f32], patterns: &[u32], assignment: &[Option<u8>], plane_bytes: i64) -> Tables {
    let area = gm.kh * gm.kw;
    let mut t = Tables { header: Vec::new(), offsets: Vec::new(), weights: Vec::new() };
    for o in 0..gm.oc {
        for (p, &mask) in patterns.iter().enumerate() {
            let (start_o, start_w) = (t.offsets.len() as i64, t.weights.len() as i64);
            for c in 0..gm.c {
                if assignment[o * gm.c + c] != Some(p as u8) {
                    continue;
                }
                t.offsets.push(c as i64 * plane_bytes);
                let kernel = &w[(o * gm.c + c) * area..(o * gm.c + c + 1) * area];
                t.weights.extend((0..area).filter(|tap| mask & (1 << tap) != 0).map(|tap| kernel[tap]));
            }
            t.header.push([t.offsets.len() as i64 - start_o, start_o, start_w]);
        }
    }
    t
}

/// Emits the pattern conv (no epilogue: `conv` runs it as a second pass).
pub(super) fn conv(
    k: &mut Kernel,
    gm: &Geo,
    w: &[f32],
    bias: &[f32],
    patterns: &[u32],
    assignment: &[Option<u8>],
) -> LResult {
    let l = k.lanes();
    let vty = k.vty();
    let g = *gm;
    // padded image: rows of `wpd` with slack for the last vector's lanes
    let hp = (g.h + g.ph).max((g.oh - 1) + (g.kh - 1) * g.dh + 1);
    let wpd = (g.w + g.pw).max(g.ow.div_ceil(l) * l - 1 + (g.kw - 1) * g.dw + 1);
    let plane = (hp * wpd * 4) as i64;
    let t = tables(gm, w, patterns, assignment, plane);
    let as_bytes = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let header: Vec<i64> = t.header.iter().flatten().copied().collect();
    let hdr = k.blob(as_bytes(&header));
    let offs = k.blob(as_bytes(&t.offsets));
    let wts = k.blob_f32(&t.weights);
    let bp = k.blob_f32(bias);
    let img = g.c * hp * wpd;
    // per output channel: every kept tap over the batch's planes
    let cost = 2 * (g.n * g.oh * g.ow * t.weights.len()).div_ceil(g.oc.max(1)) as u64;
    let cap = (super::gemm::TASK_SCRATCH_BUDGET / (img * 4).max(1)).max(2);
    let (lo, hi) = k.parallel_range_capped(g.oc, 1, cost, cap)?;
    let pad_img = k.task_scratch(img * 4);
    let xp = k.input(0);
    let out = k.output(0);
    // per mask: the taps' byte offsets from a pixel's top-left corner
    let taps: Vec<Vec<i32>> = patterns
        .iter()
        .map(|&m| {
            (0..g.kh * g.kw)
                .filter(|tap| m & (1 << tap) != 0)
                .map(|tap| (((tap / g.kw) * g.dh * wpd + (tap % g.kw) * g.dw) * 4) as i32)
                .collect()
        })
        .collect();
    let ow = g.ow;
    // with AVX2, assembled passes cover the whole plane
    // (`ukernel::avx2::pattern_pass`, two kept kernels per pass)
    let wide: Vec<Option<[Value; 2]>> = taps
        .iter()
        .map(|offsets| {
            let pass = |kernels| PatternPass {
                taps: offsets.clone(),
                kernels,
                rows: g.oh,
                cols: ow,
                out_row: ow * 4,
                in_row: wpd * 4,
            };
            let (one, two) = (pass(1), pass(2));
            if !(k.caps.avx2 && two.fits()) {
                return None;
            }
            let (one, two) = (pattern_pass(&one).ok()?, pattern_pass(&two).ok()?);
            Some([k.code(Family::Avx2, one), k.code(Family::Avx2, two)])
        })
        .collect();
    let sref = k.ukernel_sig(4);
    k.for_n(0, g.n as i64, 1, |k, n| {
        let first = k.ic(0);
        pad_input(k, &g, xp, n, first, g.c, pad_img, hp, wpd);
        k.for_acc(lo, hi, 1, &[], |k, oc, _| {
            let no = k.b.ins().imul_imm_s(n, g.oc as i64);
            let o = k.b.ins().iadd(no, oc);
            let o = k.b.ins().imul_imm_s(o, (g.oh * ow * 4) as i64);
            let obase = k.b.ins().iadd(out, o);
            // the output plane starts as the bias
            let bs = k.ld_at(types::F32, bp, oc, 4, 0);
            k.for_vec(g.oh * ow, &mut |k, ty, i| {
                let v = k.widen(ty, bs);
                k.st_at(v, obase, i, 4, 0);
            });
            let hrow = k.b.ins().imul_imm_s(oc, (patterns.len() * 24) as i64);
            let hrow = k.b.ins().iadd(hdr, hrow);
            for (p, offsets) in taps.iter().enumerate() {
                let cnt = k.ld_ro(types::I64, hrow, (p * 24) as i32);
                let so = k.ld_ro(types::I64, hrow, (p * 24 + 8) as i32);
                let sw = k.ld_ro(types::I64, hrow, (p * 24 + 16) as i32);
                let op = k.addr(offs, so, 8);
                let wp = k.addr(wts, sw, 4);
                let nvec = ow / l;
                let blocks = nvec / BLOCK;
                // `nk` kept kernels of this mask from index `i0`, over the whole plane
                let apply = |k: &mut Kernel, i0: Value, nk: usize| {
                    let ntap = offsets.len();
                    let mut srcs = Vec::with_capacity(nk);
                    let mut ws = Vec::with_capacity(nk * ntap);
                    let wk = k.b.ins().imul_imm_s(i0, (ntap * 4) as i64);
                    let wk = k.b.ins().iadd(wp, wk);
                    for kk in 0..nk {
                        let coff = k.ld_at(types::I64, op, i0, 8, (kk * 8) as i32);
                        srcs.push(k.b.ins().iadd(pad_img, coff));
                        for j in 0..ntap {
                            ws.push(k.ld_ro(types::F32, wk, ((kk * ntap + j) * 4) as i32));
                        }
                    }
                    let wv: Vec<Value> = ws.iter().map(|&w| k.widen(vty, w)).collect();
                    k.for_n(0, g.oh as i64, 1, |k, oy| {
                        let roff = k.b.ins().imul_imm_s(oy, (wpd * 4) as i64);
                        let rows: Vec<Value> = srcs.iter().map(|&s| k.b.ins().iadd(s, roff)).collect();
                        let orow = k.b.ins().imul_imm_s(oy, (ow * 4) as i64);
                        let orow = k.b.ins().iadd(obase, orow);
                        // `nv` vectors (or one scalar) at pixel ox0
                        let step = |k: &mut Kernel, ox0: Value, nv: usize, ty: types::Type, w: &[Value]| {
                            let width = if ty == types::F32 { 1 } else { l };
                            let oa = k.addr(orow, ox0, 4);
                            let mut acc: Vec<Value> = (0..nv).map(|v| k.ld(ty, oa, (v * width * 4) as i32)).collect();
                            for (kk, &row) in rows.iter().enumerate() {
                                let xa = k.addr(row, ox0, 4);
                                for (j, &off) in offsets.iter().enumerate() {
                                    for (v, a) in acc.iter_mut().enumerate() {
                                        let x = k.ld(ty, xa, off + (v * width * 4) as i32);
                                        *a = k.fmadd(w[kk * ntap + j], x, *a);
                                    }
                                }
                            }
                            for (v, &a) in acc.iter().enumerate() {
                                k.st(a, oa, (v * width * 4) as i32);
                            }
                        };
                        // BLOCK independent accumulator chains hide the FMA latency
                        k.for_n(0, (blocks * BLOCK * l) as i64, (BLOCK * l) as i64, |k, ox0| {
                            step(k, ox0, BLOCK, vty, &wv)
                        });
                        if !nvec.is_multiple_of(BLOCK) {
                            let ox0 = k.ic((blocks * BLOCK * l) as i64);
                            step(k, ox0, nvec % BLOCK, vty, &wv);
                        }
                        for q in nvec * l..ow {
                            let ox0 = k.ic(q as i64);
                            step(k, ox0, 1, types::F32, &ws);
                        }
                    });
                };
                let zero = k.ic(0);
                if let Some([one, two]) = wide[p] {
                    // per pixel the same order as one kernel per pass:
                    // kernel i's taps, then kernel i + 1's
                    let ntap = offsets.len() as i64;
                    let src = |k: &mut Kernel, i: Value| {
                        let coff = k.ld_at(types::I64, op, i, 8, 0);
                        k.b.ins().iadd(pad_img, coff)
                    };
                    let pairs = k.b.ins().ushr_imm_u(cnt, 1);
                    k.for_acc(zero, pairs, 1, &[], |k, q, _| {
                        let i = k.b.ins().ishl_imm_u(q, 1);
                        let i1 = k.b.ins().iadd_imm_s(i, 1);
                        let (s0, s1) = (src(k, i), src(k, i1));
                        let wk = k.addr(wp, i, ntap * 4);
                        k.b.ins().call_indirect(sref, two, &[obase, s0, s1, wk]);
                        vec![]
                    });
                    let odd = k.b.ins().band_imm_u(cnt, 1);
                    k.if_then(odd, |k| {
                        let i = k.b.ins().iadd_imm_s(cnt, -1);
                        let s0 = src(k, i);
                        let wk = k.addr(wp, i, ntap * 4);
                        k.b.ins().call_indirect(sref, one, &[obase, s0, s0, wk]);
                    });
                } else {
                    // one kept kernel per pass over the plane (measured against
                    // two per pass, which the register pressure made slower)
                    k.for_acc(zero, cnt, 1, &[], |k, i, _| {
                        apply(k, i, 1);
                        vec![]
                    });
                }
            }
            vec![]
        });
    });
    Ok(())
}
