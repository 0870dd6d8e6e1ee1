//! Block-sparse integer weights: where each block of [`rows`] (8, 4 or 2)
//! output channels has whole K quads of zeros (block-shared N:M in runs
//! of four input channels, `--prune-nm 2:4x4/16`, or zeros a training-time
//! tool left in that shape), the byte tiles run only the block's kept
//! quads ([`KSteps::Listed`]): per kept step A holds the `u32` offset of
//! its B vector in the unit's packed panels, then the rows' weight quads.
//! Cranelift's 16-bit-pair tiles (targets without assembled ones: RISC-V,
//! x86-64 `baseline`) list their kept K pairs the same way, a pair of
//! i16 weights per row after each step's offset (a zero quad is two zero
//! pairs); `qconv.rs`'s `pair_step` reads them. RISC-V `v`, ds_cnn_kws
//! with `--prune-nm 2:4x4/16 --quantize int8`: 9.88 M → 4.93 M
//! instructions an inference under qemu (`rv64gc` 15.8 M → 10.0 M), the
//! same output bytes.
//! No skipped quad is multiplied or stored (only the padding steps below,
//! zeros, in blocks keeping fewer than the longest list). The one-pixel
//! products list per block of their lanes ([`gemv_layout`],
//! [`sdot_gemv_layout`]).
//!
//! Contract: the sums are the dense tiles' exactly (integer products; a
//! skipped quad's products are all zero), so every output has the dense
//! kernel's bits. Lists shorter than the layer's longest are padded with
//! steps of zero weights at the block's first kept offset. Only where the
//! byte tiles are assembled (VNNI's, AVX2's byte tile, AArch64's `sdot` and
//! `smull` tiles) or the pair tiles are Cranelift's, with
//! [`crate::isa::Caps::skip_zeros`], and where no block keeps more than
//! [`MAX_KEPT`] of the steps.

use super::super::Kernel;
use super::Dims;
use crate::ukernel::neon::{MULL_ROWS, SDOT_ROWS};
use crate::ukernel::KSteps;

/// Output channels per listed tile on `k`'s target: half a block of 16
/// (the N:M blocks of the products' kernels), so blocks of 16 and 8
/// channels align with it, within the `ymm` tile's 12 accumulators, one
/// `zmm` B vector per eight `vpdpbusd`, and `dotprod`'s `sdot` tile
/// ([`SDOT_ROWS`]); a quarter block on AArch64 without `dotprod`
/// ([`MULL_ROWS`]). Cranelift's 16-bit-pair tiles (`pairs`: the targets
/// without assembled tiles) take 8 rows where 32 vector registers hold
/// their 16 accumulators (RISC-V `v`), else 4 (x86-64 `baseline`'s 16),
/// and the scalar tile its 2 (16 accumulators).
pub(super) fn rows(k: &Kernel, pairs: bool) -> usize {
    match (k.caps.neon, k.caps.dotprod) {
        _ if pairs && k.lanes() == 1 => 2,
        _ if pairs && k.caps.vector_registers >= 32 => 8,
        _ if pairs => 4,
        (true, false) => MULL_ROWS,
        (true, true) => SDOT_ROWS,
        _ => 8,
    }
}

/// The most kept K quads, as a fraction of the steps, at which the listed
/// tiles run instead of the dense ones: they do the kept work at about the
/// dense tiles' rate (Zen 4: 3/4 kept 0.178 ms against dense 0.236 on a
/// 256-channel 28² 1x1 conv; 7/8 kept on a 512-channel 7² one 0.067
/// against 0.063), `docs/compression.md`, "Block-sparse integer convs and
/// products".
pub(super) const MAX_KEPT: f64 = 0.85;

/// Whether the tiles walk K steps in order or by list.
pub(super) fn steps(d: &Dims) -> KSteps {
    match d.listed {
        Some(_) => KSteps::Listed,
        None => KSteps::Dense,
    }
}

/// The order of a `QConv`'s K values in its packed operands: the weight's
/// own (channel, kernel row, kernel column), or tap-major (kernel row,
/// kernel column, channel), where four consecutive input channels at one
/// tap, an N:M run of four, make one K quad. Integer sums do not depend
/// on the order, so both give the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KOrder {
    Channel,
    Tap,
}

/// `w` (`[rows][cg · area]`, channel-major) with its columns tap-major.
fn tap_major(w: &[f64], kk: usize, area: usize) -> Vec<f64> {
    let cg = kk / area;
    w.chunks(kk).flat_map(|row| (0..area).flat_map(move |t| (0..cg).map(move |c| row[c * area + t]))).collect()
}

/// The listed form of `w` in the K order that has one ([`layout`]): the
/// weight's own, else, for a KxK conv of whole quads of input channels per
/// group (`area` taps), tap-major; the order, the kept steps and A's bytes.
/// Cranelift's pair tiles ([`pair_tiles`]) take whichever order keeps
/// fewer steps (their packers read any order from the tap table at the
/// same cost; the assembled byte tiles' window packing does not, so they
/// keep the weight's own order where it lists).
/// AVX2's byte tile without VNNI adds adjacent byte products in an i16
/// (`vpmaddubsw`), exact only for the pairs `kerf_ir::byte_pairs_exact`
/// accepts, which the caller checked in the weight's own order: tap-major
/// pairs other codes, so there it is taken only where those pairs are
/// exact too.
pub(super) fn plan(k: &Kernel, d: &Dims, w: &[f64], kk: usize, area: usize) -> Option<(KOrder, usize, Vec<u8>)> {
    let own = layout(k, d, w, kk).map(|(kept, bytes)| (KOrder::Channel, kept, bytes));
    if own.is_some() && !pair_tiles(k, d) || !(area > 1 && d.cg.is_multiple_of(4)) {
        return own;
    }
    let tap = tap_major(w, kk, area);
    let saturating = d.quads && !(k.caps.vnni || k.caps.neon);
    if saturating && !kerf_ir::byte_pairs_exact(&tap.iter().map(|&c| c as i8).collect::<Vec<_>>(), kk) {
        return own;
    }
    let taps = layout(k, d, &tap, kk).map(|(kept, bytes)| (KOrder::Tap, kept, bytes));
    match (own, taps) {
        (Some(o), Some(t)) => Some(if t.1 < o.1 { t } else { o }),
        (o, t) => o.or(t),
    }
}

/// Row `m`'s weight quad `t` as bytes (`w` is `[rows][kk]` integer codes;
/// K past `kk` and rows past `w` are zeros).
fn quad(w: &[f64], kk: usize, m: usize, t: usize) -> [u8; 4] {
    // the grid is −128..=127: one byte, two's complement
    std::array::from_fn(|j| match 4 * t + j < kk {
        true => w.get(m * kk + 4 * t + j).map_or(0, |&c| (c as i8) as u8),
        false => 0,
    })
}

/// Row `m`'s K step `t` as the tiles read it: a byte quad, or (`pairs`)
/// the pair `(w[m, 2t], w[m, 2t + 1])` as two little-endian i16
/// (`pack_weights`' dense layout of one step and row).
fn step(w: &[f64], kk: usize, m: usize, t: usize, pairs: bool) -> [u8; 4] {
    if !pairs {
        return quad(w, kk, m, t);
    }
    let at = |j: usize| if j < kk { w.get(m * kk + j).map_or(0, |&c| c as i16) } else { 0 };
    let (a, b) = (at(2 * t).to_le_bytes(), at(2 * t + 1).to_le_bytes());
    [a[0], a[1], b[0], b[1]]
}

/// The K quads (of `steps`) some row of `rows` keeps.
fn kept_quads(w: &[f64], kk: usize, steps: usize, rows: std::ops::Range<usize>) -> Vec<usize> {
    kept_steps(w, kk, steps, rows, false)
}

/// The K steps (quads, or `pairs`) some row of `rows` keeps.
fn kept_steps(w: &[f64], kk: usize, steps: usize, rows: std::ops::Range<usize>, pairs: bool) -> Vec<usize> {
    (0..steps).filter(|&t| rows.clone().any(|m| step(w, kk, m, t, pairs) != [0; 4])).collect()
}

/// The longest of `lists`, if it keeps at most [`MAX_KEPT`] of `steps`.
fn longest<'a>(lists: impl IntoIterator<Item = &'a Vec<usize>>, steps: usize) -> Option<usize> {
    let kept = lists.into_iter().map(Vec::len).max()?;
    (kept as f64 <= MAX_KEPT * steps as f64).then_some(kept)
}

/// The listed form of `w` (`[groups · mg][kk]` integer codes) for `d`'s
/// byte quads (or i16 pairs) in blocks of [`rows`], if `k`'s target runs
/// the byte tiles (AVX2, VNNI, AArch64's) or Cranelift's pair tiles
/// ([`pair_tiles`]) and skips zeros and the weights have a form
/// worth running:
/// the kept steps of the longest list and A's bytes (per group, per block:
/// per kept step the B offset `4·px·t` then a quad or pair per row).
fn layout(k: &Kernel, d: &Dims, w: &[f64], kk: usize) -> Option<(usize, Vec<u8>)> {
    if !k.caps.skip_zeros || !(d.quads && (k.caps.avx2 || k.caps.neon) || pair_tiles(k, d)) {
        return None;
    }
    let pairs = !d.quads;
    let d = &Dims { rows: rows(k, pairs), ..*d };
    let mut lists = Vec::new();
    for g in 0..d.groups {
        for r0 in (0..d.mg).step_by(d.rows) {
            let rows = g * d.mg + r0..g * d.mg + (r0 + d.rows).min(d.mg);
            lists.push((rows.clone(), kept_steps(w, kk, d.steps, rows, pairs)));
        }
    }
    let kept = longest(lists.iter().map(|(_, l)| l), d.steps)?;
    if (4 * d.px * d.steps) > u32::MAX as usize {
        return None;
    }
    let mut bytes = Vec::with_capacity(lists.len() * kept * (4 + 4 * d.rows));
    for (rows, list) in &lists {
        let pad = list.first().copied().unwrap_or(0);
        for i in 0..kept {
            let t = list.get(i).copied().unwrap_or(pad);
            bytes.extend(((4 * d.px * t) as u32).to_le_bytes());
            for m in rows.clone() {
                bytes.extend(if i < list.len() { step(w, kk, m, t, pairs) } else { [0; 4] });
            }
        }
    }
    Some((kept, bytes))
}

/// Whether `d` runs on Cranelift's 16-bit-pair tiles (`qconv.rs`'s
/// `k_loop` and `k_loop_scalar`: no assembled tile on the target, i16
/// pairs of `x − zp` and the weights), which read listed steps too.
fn pair_tiles(k: &Kernel, d: &Dims) -> bool {
    !d.quads && !k.caps.avx2 && !k.caps.neon
}

/// The listed form of the one-pixel product's weights in byte quads
/// (`lanes` channels a block: VNNI's 16, AVX2's 8; `blocks` blocks a
/// chunk; `w` is `[mg][kk]`), if `k` skips zeros and the weights have one
/// worth running: the kept steps of the longest list and the bytes, per
/// chunk and kept step a 64-byte header of its blocks' `u32` input
/// offsets (`4·t` for quad `t`), then per block its channels' weight
/// quads (zeros past the last channel; lists padded with zero-weight steps
/// at the block's first offset).
pub(super) fn gemv_layout(
    k: &Kernel,
    d: &Dims,
    (w, kk): (&[f64], usize),
    (lanes, blocks): (usize, usize),
) -> Option<(usize, Vec<u8>)> {
    const LANES_MAX: usize = 16;
    if !k.caps.skip_zeros || kk == 0 || !kk.is_multiple_of(4) || blocks > LANES_MAX {
        return None;
    }
    let steps = kk / 4;
    // per block of `lanes` channels, its kept quads
    let lists: Vec<Vec<usize>> =
        (0..d.mg.div_ceil(lanes)).map(|b| kept_quads(w, kk, steps, b * lanes..((b + 1) * lanes).min(d.mg))).collect();
    let kept = longest(&lists, steps)?;
    let mut bytes = Vec::new();
    for chunk in lists.chunks(blocks).enumerate() {
        let (c, chunk) = chunk;
        for i in 0..kept {
            let at = |l: &Vec<usize>| l.get(i).copied();
            let mut head = [0u8; 64];
            for (j, list) in chunk.iter().enumerate() {
                let t = at(list).unwrap_or(list.first().copied().unwrap_or(0));
                head[4 * j..4 * j + 4].copy_from_slice(&((4 * t) as u32).to_le_bytes());
            }
            bytes.extend(head);
            for (j, list) in chunk.iter().enumerate() {
                let m0 = (c * blocks + j) * lanes;
                for m in m0..m0 + lanes {
                    bytes.extend(at(list).map_or([0; 4], |t| quad(w, kk, m, t)));
                }
            }
        }
    }
    Some((kept, bytes))
}

/// The listed form of `dotprod`'s one-pixel product's weights (blocks of
/// 4 channels in groups of four, 16 channels: one N:M block; `blocks` a
/// chunk, a multiple of four; `w` is `[mg][kk]`), if `k` skips zeros and
/// the weights have one worth running: the kept steps of the longest list
/// and the bytes, per chunk, kept step and group the `u32` input offset
/// (`4·t` for quad `t`) then the group's channels' weight quads (zeros past
/// the last channel; lists padded with zero-weight steps).
pub(super) fn sdot_gemv_layout(
    k: &Kernel,
    d: &Dims,
    (w, kk): (&[f64], usize),
    blocks: usize,
) -> Option<(usize, Vec<u8>)> {
    const GROUP: usize = 16;
    if !k.caps.skip_zeros || kk == 0 || !kk.is_multiple_of(4) || !blocks.is_multiple_of(4) {
        return None;
    }
    let steps = kk / 4;
    let lists: Vec<Vec<usize>> =
        (0..d.mg.div_ceil(GROUP)).map(|g| kept_quads(w, kk, steps, g * GROUP..((g + 1) * GROUP).min(d.mg))).collect();
    let kept = longest(&lists, steps)?;
    let chunk = 4 * blocks;
    let mut bytes = Vec::new();
    for c in 0..d.mg.div_ceil(chunk) {
        // this chunk's channels, in whole blocks of 4
        let width = (d.mg - c * chunk).min(chunk).div_ceil(4) * 4;
        for i in 0..kept {
            for g in (0..width).step_by(GROUP) {
                let list = &lists[(c * chunk + g) / GROUP];
                let t = list.get(i).copied();
                bytes.extend(((4 * t.or(list.first().copied()).unwrap_or(0)) as u32).to_le_bytes());
                for m in c * chunk + g..c * chunk + (g + GROUP).min(width) {
                    bytes.extend(t.map_or([0; 4], |t| quad(w, kk, m, t)));
                }
            }
        }
    }
    Some((kept, bytes))
}
