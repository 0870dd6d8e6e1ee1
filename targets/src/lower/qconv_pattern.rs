//! The integer pattern conv: a [`QConv`] whose weight keeps few taps per
//! quad of input channels ([`ChannelQuads`]: pattern pruning with the
//! pattern shared by each four input channels) runs only those taps, four
//! channels per byte-quad dot product, on the pattern conv's register
//! tiles ([`super::conv_pattern`]: its program, tile schedule and loop;
//! the tile is `ukernel::avx2::pattern_tile` with `Elem::Quads`, or
//! `Elem::QuadsVnni` where the target has AVX-512 VNNI; on AArch64
//! `dotprod` `ukernel::neon::pattern_tile` with `Elem::QuadsSdot`). AVX2
//! or `dotprod` only, stride 1 or 2,
//! one group, an epilogue the tiles apply (residual, Relu/Clip,
//! HardSwish; on x86 a residual may be u8, `PatternTile::res_u8`), the f32
//! output or, on x86 and without a residual or with a u8 one where
//! [`ChannelQuads::u8_residual_fits`], the next layer's u8 (`QOut::Quant`:
//! the tiles requantise in their own store, `PatternTile::quant`; the
//! partial sums between channel blocks, which a u8 output cannot hold, in
//! the task's scratch); every other `QConv` takes the integer GEMM
//! ([`super::qconv`]).
//!
//! **Quad image.** Per image, each task interleaves the u8 input (already
//! padded with the zero point by `Quantize`) into its own scratch: quad
//! `q`'s plane holds, per pixel, the bytes of channels `4q..4q + 4`
//! (`[quad][row][column][4]`, rows [`Phases`]`::wq` pixels wide, a
//! multiple of 8; at stride 2 split into four phase planes by row and
//! column parity, as the f32 kernel's [`Phases`]). Channels past `C` and
//! the columns past the input's width hold 0: the former have zero
//! weights, the latter feed only lanes past the output row, which are
//! never stored. For `sdot` (signed bytes only) every byte is stored as
//! `x ^ 0x80`, i.e. `x − 128` as an i8.
//!
//! **Numerics.** Per output channel the tiles sum `x·w` over each kept
//! tap's quad (`vpmaddubsw`, exact for weights
//! [`kerf_ir::channel_pairs_exact`] accepts, then `vpmaddwd` by ones; or
//! one `vpdpbusd` or `sdot`, exact for any weights), so
//! the i32 sum is exactly `Σ x·w` over the window (`Σ (x − 128)·w` with
//! `sdot`, whose correction is `(zp − 128)·Σ w`), and the epilogue
//! computes `f32(Σ x·w − zp·Σ w) · scale + bias (+ residual)` and the
//! activation, and for a u8 output the requantiser's operations: the
//! integer GEMM's byte tiles' sums and operations, so both kernels give
//! the same bits (and bytes).

use cranelift_codegen::ir::{types, InstBuilder, Value};
use kerf_ir::op::{QConv, QOut};
use kerf_ir::{ChannelQuads, Tensor};

use super::conv_geo::{geometry, Geo};
use super::conv_pattern::{conv_tiles, last_back, tile_lanes, Frame, Layout, Phases, Program, Tiles};
use super::epilogue::Act;
use super::gemm_wide::act_epi;
use super::qconv::epilogue_table;
use super::{Kernel, LResult};
use crate::ukernel::epi::TileEpi;
use crate::ukernel::pattern::Elem;

/// The quads of `w` when the integer pattern kernel computes this conv
/// (AVX2 or `dotprod`, an epilogue the tiles apply, and
/// [`ChannelQuads::of_integer_conv`] for the target's dot product), and
/// the tiles' epilogue. The output is real-valued, or u8 on the x86 tiles
/// (`QOut::Quant` without a residual or with a u8 one: their requantising
/// store, [`crate::ukernel::pattern::PatternTile::quant`]); a u8 residual
/// on the x86 tiles where [`ChannelQuads::u8_residual_fits`].
pub(super) fn applies(k: &Kernel, q: &QConv, w: &Tensor, act: Act) -> Option<(ChannelQuads, TileEpi)> {
    let x86 = quad_elem(k) != Elem::QuadsSdot;
    let bytes_out = matches!(q.out, QOut::Quant { .. });
    let out_ok = match q.out {
        QOut::Real => true,
        // with a residual, only a u8 one
        QOut::Quant { .. } => x86 && (!q.epi.residual || q.res_grid.is_some()),
        QOut::Acc => false,
    };
    let res_ok = q.res_grid.is_none() || x86 && ChannelQuads::u8_residual_fits(&q.conv, bytes_out);
    if !k.caps.pattern_quads() || !out_ok || !res_ok {
        return None;
    }
    let epi = act_epi(act, q.epi.residual)?;
    ChannelQuads::of_integer_conv(&q.conv, w, quad_elem(k) == Elem::Quads).map(|cq| (cq, epi))
}

/// The tiles' element: byte quads through VNNI's `vpdpbusd` where the
/// target has it, AArch64 `dotprod`'s `sdot`, else AVX2's saturating
/// `vpmaddubsw`.
fn quad_elem(k: &Kernel) -> Elem {
    if k.caps.vnni {
        Elem::QuadsVnni
    } else if k.caps.dotprod {
        Elem::QuadsSdot
    } else {
        Elem::Quads
    }
}

/// Emits the integer pattern conv: `w` the weight codes (`[O, C, kh, kw]`),
/// `scales` `x_scale · w_scale[o]`, `bias` per output channel, `quant`
/// the u8 output's grid ([`QOut::grid`]) if it has one.
pub(super) fn conv(
    k: &mut Kernel,
    q: &QConv,
    (cq, epi, quant): (&ChannelQuads, TileEpi, Option<(f32, u8)>),
    w: &[f64],
    (scales, bias): (&[f32], &[f32]),
) -> LResult {
    let g = geometry(k, &q.conv.window, 1)?;
    // the pattern conv's geometry over quads: one "channel" per quad
    let gq = Geo { c: cq.quads, ..g };
    let area = g.kh * g.kw;
    let patterns = cq.patterns();
    let assignment: Vec<Option<u8>> =
        cq.unions.iter().map(|u| patterns.iter().position(|p| p == u).and_then(|i| u8::try_from(i).ok())).collect();
    if patterns.len() > usize::from(u8::MAX) {
        return Err(format!("integer pattern conv: {} distinct tap unions", patterns.len()));
    }
    let weight = |o: usize, quad: usize, tap: usize| {
        [0, 1, 2, 3].map(|j| {
            let c = 4 * quad + j;
            if c < g.c {
                (w[(o * g.c + c) * area + tap] as i8).to_le_bytes()[0]
            } else {
                0
            }
        })
    };
    let layout = Layout { patterns: &patterns, assignment: &assignment, weight: &weight };
    let lanes = tile_lanes(k, &gq, quad_elem(k));
    let ph = Phases::new(&gq, lanes, last_back(&gq, quad_elem(k), lanes));
    if ph.s == 1 && ph.hq != g.h {
        return Err(format!("internal: integer pattern conv: {} quad-image rows for a {}-row input", ph.hq, g.h));
    }
    let prog = Program::new(&gq, &layout, &ph)?;
    // `zp · Σ w` per output channel (`(zp − 128) · Σ w` for `sdot`'s
    // offset bytes), then the epilogue rows
    let sdot = quad_elem(k) == Elem::QuadsSdot;
    let zp = i64::from(q.x_zp) - if sdot { crate::ukernel::neon::SDOT_INPUT_OFFSET } else { 0 };
    let corr: Vec<u8> = w
        .chunks((g.c * area).max(1))
        .flat_map(|row| ((zp * row.iter().map(|&v| v as i64).sum::<i64>()) as i32).to_le_bytes())
        .collect();
    let table = epilogue_table(&corr, scales, bias);
    let res_size = if q.res_grid.is_some() { 1 } else { 4 };
    let residual = if q.epi.residual { Some((k.input(4), res_size)) } else { None };
    let f = Frame::new(k, &gq, &prog, table, &ph, (residual, quant.is_some()))?;
    let (x, img) = (f.x, f.img);
    // stride 2: the phase planes' positions no input pixel lands on, once
    ph.clear(k, &gq, img);
    let epi = TileEpi { finite: super::qconv::finite(scales, bias), ..epi };
    let res_u8 = q.res_grid.map(|g| (g.scale.get(), g.zp));
    let tiles = Tiles { elem: quad_elem(k), epi: Some(epi), lanes, quant, res_u8 };
    conv_tiles(k, &gq, &prog, &ph, &f, &tiles, &mut |k, n| quad_image(k, &g, &ph, (x, n, img), sdot))
}

/// Interleaves image `n` of the u8 input `x` into the quad image at `img`
/// (see the module docs): sixteen pixels at a time as four byte and four
/// 16-bit interleaving shuffles (`punpck*` on x86-64; at stride 2 first
/// one even/odd split per channel), the rest of a row pixel by pixel, then
/// (stride 1) the row's zero columns. `flip`: every input byte stored as
/// `x ^ 0x80` (`sdot`'s signed bytes).
fn quad_image(k: &mut Kernel, g: &Geo, ph: &Phases, (x, n, img): (Value, Value, Value), flip: bool) {
    let (quads, full) = (g.c.div_ceil(4), g.c / 4);
    let plane = g.h * g.w;
    let xn = k.b.ins().imul_imm_s(n, (g.c * plane) as i64);
    let xn = k.addr(x, xn, 1);
    let zero8 = k.b.ins().iconst(types::I8, 0);
    let zeros = k.b.ins().splat(types::I8X16, zero8);
    let top8 = k.b.ins().iconst(types::I8, 0x80);
    let tops = k.b.ins().splat(types::I8X16, top8);
    let bytes = |lo: u8| -> Vec<u8> { (0..8u8).flat_map(|i| [lo + i, 16 + lo + i]).collect() };
    let halves = |lo: u8| -> Vec<u8> {
        (0..4u8).flat_map(|i| [lo + 2 * i, lo + 2 * i + 1, 16 + lo + 2 * i, 17 + lo + 2 * i]).collect()
    };
    let split: Vec<u8> = (0..8u8).map(|i| 2 * i).chain((0..8u8).map(|i| 2 * i + 1)).collect();
    let masks = [bytes(0), bytes(8), halves(0), halves(8), split].map(|m| super::qconv::shuffle_mask(k, &m));
    let s2 = ph.s == 2;
    let phase_bytes = (ph.hq * ph.wq * 4) as i64;
    // one quad's rows; `present` channels of it are real, the rest zero
    let quad = |k: &mut Kernel, qi: Value, present: usize| {
        let src = k.b.ins().imul_imm_s(qi, (4 * plane) as i64);
        let src = k.b.ins().iadd(xn, src);
        let dst = k.b.ins().imul_imm_s(qi, ph.channel_bytes() as i64);
        let dst = k.b.ins().iadd(img, dst);
        k.for_n(0, g.h as i64, 1, |k, y| {
            let s = k.b.ins().imul_imm_s(y, g.w as i64);
            let s = k.b.ins().iadd(src, s);
            // input row y: row y / 2 of row phase y mod 2 at stride 2
            let d = if s2 {
                let (a, i) = (k.b.ins().urem_imm_u(y, 2), k.b.ins().udiv_imm_u(y, 2));
                let a = k.b.ins().imul_imm_s(a, 2 * phase_bytes);
                let i = k.b.ins().imul_imm_s(i, (ph.wq * 4) as i64);
                k.b.ins().iadd(a, i)
            } else {
                k.b.ins().imul_imm_s(y, (ph.wq * 4) as i64)
            };
            let d = k.b.ins().iadd(dst, d);
            k.for_n(0, (g.w / 16 * 16) as i64, 16, |k, x0| {
                let sp = k.b.ins().iadd(s, x0);
                let mut v: Vec<Value> = (0..4)
                    .map(|j| {
                        if j >= present {
                            return zeros;
                        }
                        let v = k.ld(types::I8X16, sp, (j * plane) as i32);
                        if flip {
                            k.b.ins().bxor(v, tops)
                        } else {
                            v
                        }
                    })
                    .collect();
                if s2 {
                    // even pixels to the low half, odd ones to the high
                    v = v.into_iter().map(|c| k.b.ins().shuffle(c, c, masks[4])).collect();
                }
                let ab = [0, 1].map(|h| k.b.ins().shuffle(v[0], v[1], masks[h]));
                let cd = [0, 1].map(|h| k.b.ins().shuffle(v[2], v[3], masks[h]));
                // stride 1: 16 consecutive quads; stride 2: 8 even pixels'
                // quads to column phase 0, 8 odd ones' to phase 1, from x0 / 2
                let (dp, at) = if s2 {
                    let half = k.b.ins().ushr_imm_u(x0, 1);
                    (k.addr(d, half, 4), [0, 16, phase_bytes as i32, phase_bytes as i32 + 16])
                } else {
                    (k.addr(d, x0, 4), [0, 16, 32, 48])
                };
                for h in 0..2 {
                    for m in 0..2 {
                        let out = k.b.ins().shuffle(ab[h], cd[h], masks[2 + m]);
                        k.st(out, dp, at[2 * h + m]);
                    }
                }
            });
            for x0 in g.w / 16 * 16..g.w {
                let at = if s2 { (x0 % 2) as i64 * phase_bytes + 4 * (x0 / 2) as i64 } else { 4 * x0 as i64 };
                tail_pixel(k, (s, d), (x0, plane, at), present, flip);
            }
            if s2 {
                return;
            }
            let z32 = k.b.ins().iconst(types::I32, 0);
            // the columns past the row that the tiles read ([`Phases::read`])
            for x0 in g.w..ph.read {
                k.b.ins().store(super::loops::mem(), z32, d, (4 * x0) as i32);
            }
        });
    };
    k.for_n(0, full as i64, 1, |k, qi| quad(k, qi, 4));
    if quads > full {
        let qi = k.ic(full as i64);
        quad(k, qi, g.c - 4 * full);
    }
}

/// One pixel of a quad row past its 16-pixel blocks, byte by byte: the
/// `present` channels' bytes of input pixel `x0` (channel planes `plane`
/// bytes apart from `src`), flipped for `sdot`, the rest zero, at
/// `dst + at`.
fn tail_pixel(
    k: &mut Kernel,
    (src, dst): (Value, Value),
    (x0, plane, at): (usize, usize, i64),
    present: usize,
    flip: bool,
) {
    for j in 0..4 {
        let b = if j < present {
            let b = k.b.ins().uload8(types::I32, super::loops::mem(), src, (j * plane + x0) as i32);
            if flip {
                k.b.ins().bxor_imm_s(b, 0x80)
            } else {
                b
            }
        } else {
            k.ic(0)
        };
        k.b.ins().istore8(super::loops::mem(), b, dst, (at + j as i64) as i32);
    }
}
