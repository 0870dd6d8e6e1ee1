//! Register-blocked GEMM with a compile-time packed A, the engine of the
//! convolutions: `C[m, p] = epilogue(bias[m] + Σ_k A[m, k] · B[k, p])` where
//! A is the weight matrix (`M` output channels × `K` = icg·kh·kw taps) and B
//! the input patches of a block of output pixels.
//!
//! Layouts:
//! - **A** (a blob, packed by [`pack_a`]): row blocks of [`MR`] rows (the
//!   last block holds the `M % MR` remaining rows), each stored `[k][h]`
//!   for its height `h`, so one k step of a block is `h` consecutive floats:
//!   the `h` broadcasts of a k step come from one or two cache lines and the
//!   whole block streams sequentially (DESIGN-NOTES §8 rules 2–4).
//! - **B** (scratch, packed at run time by the caller): panels of `L`
//!   pixels (`L` = 4 with SIMD, else 1), `panel[j][k][l]`, grouped in
//!   *rows* of `ppr` panels; row `r`, panel `c` covers output pixels
//!   `out_base + r·pitch + c·L ..` (`pitch` = the output width for KxK
//!   convs; one row of all pixels for pointwise convs).
//!
//! Micro-tile: `h` rows × `np` panels of accumulators, `h·np ≤ 12`
//! (MR×1 = 12×4 for full blocks, the measured best; 4×3, 8×1, ... for the
//! remaining rows). The K loop is unrolled by 2, each step loads one B
//! vector per panel and one broadcast per row. The epilogue (activation,
//! residual) runs on the accumulators before the store.
//!
//! Blocking (from the target's [`crate::isa::CacheParams`]): the caller
//! sizes a pixel block so its B panels fit in [`b_block_bytes`] (L2);
//! within a block, each A row block is reused across all panels of the
//! block, K in slices of at most [`kc_max`] steps (L1).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::epilogue::{act_rows, act_stream, apply_act, has_streams, Act, Epilogue};
use super::gemm_wide;
use super::loops::{mem, ro};
use super::Kernel;
use crate::isa::Caps;

/// Rows of a full A block: 12 accumulators hide the 4-cycle FMA latency
/// and leave registers for the B vector and the broadcast (16 xmm).
pub const MR: usize = 12;

/// Pixel blocks below which the conv kernels (direct GEMM and Winograd)
/// also split their tasks over output-channel row blocks: with fewer
/// independent pixel blocks than this, threads would idle on the late,
/// small layers (one 7×7 block at the end of ResNet).
pub const SPLIT_UNITS: usize = 8;

/// Most bytes of private task buffers ([`super::Kernel::task_scratch`]) all
/// tasks of one conv kernel may hold together: the arena keeps one copy per
/// possible task, so a kernel with large per-task buffers is split into
/// fewer tasks (ResNet-18's first conv already holds 8 × ~1 MiB).
pub const TASK_SCRATCH_BUDGET: usize = 8 << 20;

/// Budget for the B panels of one pixel block: they are re-read once per A
/// row block, so they should stay in L2 (`caps.cache.l2`, see
/// [`crate::isa::CacheParams`]; smaller L2s degrade gracefully to L3 reads).
pub fn b_block_bytes(caps: &Caps) -> usize {
    caps.cache.l2
}

/// Packs `M × K` weights (`w[m * row_stride + k]`) into A row blocks.
pub fn pack_a(w: &[f32], m: usize, kk: usize, row_stride: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(m * kk);
    let mut r0 = 0;
    while r0 < m {
        let h = MR.min(m - r0);
        for kx in 0..kk {
            for r in 0..h {
                out.push(w[(r0 + r) * row_stride + kx]);
            }
        }
        r0 += h;
    }
    out
}

/// Panels per micro-tile for a block of `h` rows: at most 12 accumulators,
/// at most 3 B vectors live.
fn panels_for(h: usize) -> usize {
    (MR / h.max(1)).clamp(1, 3)
}

/// One block of B panels and where its outputs go.
#[derive(Clone, Copy)]
pub struct Block {
    /// Packed B panels of this block (`[row][ppr][K][L]`).
    pub b: Value,
    /// Rows of panels (compile-time).
    pub rows: usize,
    /// Panels per row (the last may be partial).
    pub ppr: usize,
    /// Valid output pixels per row (`≤ ppr·L`).
    pub width: usize,
    /// Output elements between rows.
    pub pitch: usize,
    /// Element offset (I64) of the block's first output pixel in channel 0.
    pub out_off: Value,
    /// Panels per stored group of B ([`Panels`]; [`panel_group`]): 1, or
    /// 2 (AVX2 targets) or 4 (AVX-512), so the assembled tiles load a
    /// vector of panels with one load per K step and the 128-bit tiles
    /// read its quarters or halves. Rows hold a whole number of groups
    /// (`ppr` rounded up).
    pub group: usize,
}

/// How many B panels the conv engine stores in one group ([`Block::group`])
/// on this target: four where the 512-bit tiles run, two where the 256-bit
/// ones do, else one.
pub fn panel_group(k: &Kernel) -> usize {
    match (k.caps.avx512, k.caps.avx2 && k.lanes() == 4) {
        (_, false) => 1,
        (true, true) => 4,
        (false, true) => 2,
    }
}

/// The byte layout of B panels of `l` lanes over `kk` K steps, in groups
/// of `group` panels ([`Block::group`]): what the packers write and the
/// tiles read. Group `q` (panels `group·q ..`) is `[k][group·l]`, panel
/// `group·q + i` in lanes `i·l ..`, `group` panel strides after group
/// `q − 1`.
#[derive(Clone, Copy, Debug)]
pub struct Panels {
    l: usize,
    kk: usize,
    group: usize,
}

impl Panels {
    /// The layout of `l`-lane panels over `kk` K steps, `group` (1, 2 or
    /// 4) panels per stored group.
    pub fn new(l: usize, kk: usize, group: usize) -> Panels {
        Panels { l, kk, group: group.max(1) }
    }
    /// Panels per stored group.
    pub fn group(&self) -> usize {
        self.group
    }
    /// K steps per panel.
    pub fn kk(&self) -> usize {
        self.kk
    }
    /// Lanes per panel.
    pub fn lanes(&self) -> usize {
        self.l
    }
    /// Bytes one panel takes (a group takes `group` of them).
    pub fn stride(&self) -> i64 {
        (self.kk * self.l * 4) as i64
    }
    /// Bytes from one K step of a panel to the next.
    pub fn kstep(&self) -> usize {
        self.group * self.l * 4
    }
    /// Panels a row of `ppr` panels takes in the buffer (whole groups).
    pub fn per_row(&self, ppr: usize) -> usize {
        ppr.next_multiple_of(self.group)
    }
    /// Buffer bytes for `rows` rows of `ppr` panels.
    pub fn bytes(&self, rows: usize, ppr: usize) -> usize {
        rows * self.per_row(ppr) * self.stride() as usize
    }
    /// Byte offset of panel `c` from the start of its row.
    pub fn at(&self, c: usize) -> i64 {
        let g = self.group;
        (c / g * g) as i64 * self.stride() + (c % g * self.l * 4) as i64
    }
    /// [`Panels::at`] for a run-time panel index `c` (I64).
    pub fn at_dyn(&self, k: &mut Kernel, c: Value) -> Value {
        let g = self.group as i64;
        if g == 1 {
            return k.b.ins().imul_imm_s(c, self.stride());
        }
        let first = k.b.ins().band_imm_s(c, -g);
        let base = k.b.ins().imul_imm_s(first, self.stride());
        let within = k.b.ins().band_imm_s(c, g - 1);
        let part = k.b.ins().imul_imm_s(within, (self.l * 4) as i64);
        k.b.ins().iadd(base, part)
    }
}

/// The A side and the output of a product.
#[derive(Clone, Copy)]
pub struct Gemm {
    /// Packed A (see [`pack_a`]).
    pub a: Value,
    /// Bias, one f32 per row of A (read-only).
    pub bias: Value,
    /// Rows of A and of the output (output channels).
    pub m: usize,
    /// Reduction length `K`: columns of A, rows of B.
    pub kk: usize,
    /// Output tensor; row `m` starts at element `m * ldo`.
    pub out: Value,
    /// Output row stride, in f32 elements.
    pub ldo: usize,
    /// Applied to each output vector before it is stored.
    pub epi: Epilogue,
    /// Rows `r0..r1` (I64) to compute, `None` = all `m`: `r0` a multiple
    /// of [`MR`], `r1` a multiple of [`MR`] or `m`. The row blocks are the
    /// same as for the whole product, and every output is the same sum in
    /// the same order whichever rows a call covers, so a product split
    /// over row ranges (threads over output channels) is bit-identical to
    /// the unsplit one.
    pub rows: Option<(Value, Value)>,
    /// Bytes of all the A the kernel streams (every group, every Winograd
    /// position): past L2 the assembled tiles prefetch A
    /// (`ukernel::avx2::GemmTile::prefetch`).
    pub a_bytes: usize,
}

/// Largest K slice per pass over a block: the largest even `KC` with
/// `(MR + L) · KC · 4 ≤ 3/4 · L1d` ([`crate::isa::CacheParams`]), so one A
/// row-block slice (MR·KC floats) and the B slice of a panel (KC·L floats)
/// stay in L1 (x86-64: 384, an 18 KiB A slice). Longer K runs in several
/// passes that reload and re-store the partial sums (12 vectors per tile
/// per pass, against MR·KC multiply-adds).
pub fn kc_max(caps: &Caps, lanes: usize) -> usize {
    (caps.cache.l1d * 3 / 4 / ((MR + lanes) * 4) / 2 * 2).max(2)
}

/// Which pass over K a tile performs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Pass {
    /// Start from the bias (else from the partial sums in the output).
    pub first: bool,
    /// Apply the epilogue (else store raw partial sums).
    pub last: bool,
    /// K steps of this pass.
    pub len: usize,
}

/// Computes every output of `blk` for all `M` rows.
pub fn run_block(k: &mut Kernel, g: &Gemm, blk: &Block) {
    let nkb = g.kk.div_ceil(kc_max(&k.caps, k.lanes())).max(1);
    let kc = g.kk.div_ceil(nkb).div_ceil(2) * 2;
    let last_len = g.kk - (nkb - 1) * kc;
    if nkb == 1 {
        let k0 = k.ic(0);
        run_pass(k, g, blk, k0, Pass { first: true, last: true, len: g.kk });
        return;
    }
    let k0 = k.ic(0);
    run_pass(k, g, blk, k0, Pass { first: true, last: false, len: kc });
    if nkb > 2 {
        let (g2, b2) = (*g, *blk);
        k.for_n(1, (nkb - 1) as i64, 1, |k, kb| {
            let k0 = k.b.ins().imul_imm_s(kb, kc as i64);
            run_pass(k, &g2, &b2, k0, Pass { first: false, last: false, len: kc });
        });
    }
    let k0 = k.ic(((nkb - 1) * kc) as i64);
    run_pass(k, g, blk, k0, Pass { first: false, last: true, len: last_len });
}

/// One pass over K steps `k0..k0+pass.len` for all rows and panels.
fn run_pass(k: &mut Kernel, g: &Gemm, blk: &Block, k0: Value, pass: Pass) {
    let full = g.m / MR;
    let rest = g.m % MR;
    let g2 = *g;
    let b2 = *blk;
    let l = k.lanes();
    // the B slice starts k0 steps into every panel
    let bk = k.b.ins().imul_imm_s(k0, Panels::new(l, g.kk, b2.group).kstep() as i64);
    let bstart = k.b.ins().iadd(b2.b, bk);
    let full_block = |k: &mut Kernel, mb: Value| {
        let a_off = k.b.ins().imul_imm_s(mb, (MR * g2.kk * 4) as i64);
        let a_blk = k.b.ins().iadd(g2.a, a_off);
        let ak = k.b.ins().imul_imm_s(k0, (MR * 4) as i64);
        let a_blk = k.b.ins().iadd(a_blk, ak);
        let m0 = k.b.ins().imul_imm_s(mb, MR as i64);
        block_rows(k, &g2, &b2, bstart, a_blk, m0, MR, pass);
    };
    let rest_block = |k: &mut Kernel| {
        let a_blk = k.add_c(g2.a, (full * MR * g2.kk * 4) as i64);
        let ak = k.b.ins().imul_imm_s(k0, (rest * 4) as i64);
        let a_blk = k.b.ins().iadd(a_blk, ak);
        let m0 = k.ic((full * MR) as i64);
        block_rows(k, &g2, &b2, bstart, a_blk, m0, rest, pass);
    };
    match g.rows {
        None => {
            k.for_n(0, full as i64, 1, full_block);
            if rest > 0 {
                rest_block(k);
            }
        }
        Some((r0, r1)) => {
            // full row blocks r0/MR .. min(r1, full·MR)/MR, then the rest
            // block when the range reaches m
            let mb0 = k.b.ins().udiv_imm_s(r0, MR as i64);
            let cap = k.ic((full * MR) as i64);
            let r1f = super::loops::imin(k, r1, cap);
            let mb1 = k.b.ins().udiv_imm_s(r1f, MR as i64);
            k.for_dyn(mb0, mb1, 1, full_block);
            if rest > 0 {
                let reach = k.b.ins().icmp_imm_s(IntCC::Equal, r1, g.m as i64);
                k.if_then(reach, rest_block);
            }
        }
    }
}

/// All panels of the block for one A row block of height `h`.
#[allow(clippy::too_many_arguments)]
fn block_rows(k: &mut Kernel, g: &Gemm, blk: &Block, bstart: Value, a_blk: Value, m0: Value, h: usize, pass: Pass) {
    let l = k.lanes();
    let np = panels_for(h);
    let full_p = blk.width / l;
    let tail = blk.width % l;
    let pan = Panels::new(l, g.kk, blk.group);
    let kstep = pan.kstep() as i64;
    // A long transcendental activation (Sigmoid, Tanh, Gelu) would keep the
    // block off the assembled tiles: the tiles store `acc + residual`, and
    // the activation's AVX2 stream runs over each finished output row.
    let act = g.epi.act;
    let streamed = pass.last && act_stream(act).is_some() && has_streams(k, blk.width);
    let mut g2 = *g;
    if streamed {
        g2.epi.act = Act::None;
    }
    let (g, b2) = (&g2, *blk);
    // Element offset of (m0, row 0, col 0).
    let mo = k.b.ins().imul_imm_s(m0, g.ldo as i64);
    let o0 = k.b.ins().iadd(mo, blk.out_off);
    // the assembled tiles (AVX2) take whole groups of four, then two, panels
    let wide_plan = gemm_wide::plan_conv(k, g, h, pass, blk.group);
    let wide = wide_plan.as_ref().map_or(0, |w| w.covers(full_p));
    // the B pointers of `n` panels from panel `c` (I64)
    let panels = |k: &mut Kernel, brow: Value, c: Value, n: usize| -> Vec<Value> {
        (0..n)
            .map(|j| {
                let cj = k.b.ins().iadd_imm_s(c, j as i64);
                let off = pan.at_dyn(k, cj);
                k.b.ins().iadd(brow, off)
            })
            .collect()
    };
    // the Cranelift tiles over panels `done..` of a row: groups of `np`,
    // the leftover full panels, the partial one
    let narrow_rest = |k: &mut Kernel, (brow, orow): (Value, Value), done: usize| {
        let groups = (full_p - done) / np;
        k.for_n(done as i64, (done + groups * np) as i64, np as i64, |k, c| {
            let bps = panels(k, brow, c, np);
            let oe = k.addr(orow, c, l as i64);
            tile(k, &g2, a_blk, m0, h, (&bps, kstep), l, oe, pass);
        });
        let left = full_p - done - groups * np;
        if left > 0 {
            let first = k.ic((done + groups * np) as i64);
            let bps = panels(k, brow, first, left);
            let oe = k.add_c(orow, ((done + groups * np) * l) as i64);
            tile(k, &g2, a_blk, m0, h, (&bps, kstep), l, oe, pass);
        }
        if tail > 0 {
            let last = k.ic(full_p as i64);
            let bps = panels(k, brow, last, 1);
            let oe = k.add_c(orow, (full_p * l) as i64);
            tile(k, &g2, a_blk, m0, h, (&bps, kstep), tail, oe, pass);
        }
    };
    let one_row = |k: &mut Kernel, r: Value| {
        let bro = k.b.ins().imul_imm_s(r, pan.per_row(b2.ppr) as i64 * pan.stride());
        let brow = k.b.ins().iadd(bstart, bro);
        let oro = k.b.ins().imul_imm_s(r, b2.pitch as i64);
        let orow = k.b.ins().iadd(o0, oro);
        let at = gemm_wide::ConvAt { a_blk, m0, brow, orow, pass };
        if let Some(w) = wide_plan.as_ref().filter(|_| wide > 0) {
            gemm_wide::run_conv(k, w, &g2, at, full_p);
        }
        // what the wide tiles leave (at most a full panel and the partial
        // one) as one partial pair of the assembled tile, if it can, else
        // on the Cranelift tile
        let rest_px = (full_p - wide) * l + tail;
        let rest_on_wide =
            wide_plan.as_ref().is_some_and(|w| rest_px > 0 && gemm_wide::run_conv_last(k, w, &g2, at, wide, rest_px));
        if !rest_on_wide {
            narrow_rest(k, (brow, orow), wide);
        }
        if streamed {
            let first = k.addr(g2.out, orow, 4);
            act_rows(k, act, first, h, g2.ldo * 4, b2.width);
        }
    };
    k.for_n(0, blk.rows as i64, 1, |k, r| one_row(k, r));
}

/// One micro-tile: rows `m0..m0+h` (A block `a_blk`, `[k][h]`) × the
/// panels whose B pointers are `bps.0` (K steps `bps.1` bytes apart); the
/// last panel has `w_last` valid lanes. `oe` is the output element offset
/// of (m0, first pixel).
#[allow(clippy::too_many_arguments)]
fn tile(
    k: &mut Kernel,
    g: &Gemm,
    a_blk: Value,
    m0: Value,
    h: usize,
    bps: (&[Value], i64),
    w_last: usize,
    oe: Value,
    pass: Pass,
) {
    let (bps, kstep) = bps;
    let np = bps.len();
    let vty = k.vty();
    let op = k.addr(g.out, oe, 4);
    let init = tile_start(k, g, (m0, op), h, np, w_last, pass.first);
    let step = |k: &mut Kernel, kv: Value, koff: usize, accs: &[Value]| -> Vec<Value> {
        let ko = k.b.ins().imul_imm_s(kv, kstep);
        let bvs: Vec<Value> = bps
            .iter()
            .map(|&bp| {
                let bq = k.b.ins().iadd(bp, ko);
                k.b.ins().load(vty, mem(), bq, (koff as i64 * kstep) as i32)
            })
            .collect();
        let aq = k.addr(a_blk, kv, (h * 4) as i64);
        let mut next = Vec::with_capacity(h * np);
        for r in 0..h {
            let av = k.b.ins().load(types::F32, ro(), aq, ((koff * h + r) * 4) as i32);
            let av = k.widen(vty, av);
            for (j, bv) in bvs.iter().enumerate() {
                next.push(k.fmadd(av, *bv, accs[r * np + j]));
            }
        }
        next
    };
    let even = pass.len / 2 * 2;
    let mut accs = k.for_acc_n(0, even as i64, 2, &init, |k, kv, accs| {
        let a1 = step(k, kv, 0, accs);
        step(k, kv, 1, &a1)
    });
    if even < pass.len {
        let kv = k.ic(even as i64);
        accs = step(k, kv, 0, &accs);
    }
    let epi = if pass.last { g.epi } else { Epilogue::NONE };
    tile_store(k, g, &accs, (op, oe), (h, np, w_last), epi);
}

/// A micro-tile's accumulators at the start of a K pass: the rows' biases
/// (`first`) or the partial sums at `op` (the last panel's `w_last` lanes,
/// the others zero).
fn tile_start(
    k: &mut Kernel,
    g: &Gemm,
    (m0, op): (Value, Value),
    h: usize,
    np: usize,
    w_last: usize,
    first: bool,
) -> Vec<Value> {
    let (l, vty) = (k.lanes(), k.vty());
    let mut init = Vec::with_capacity(h * np);
    if first {
        let bias_p = k.addr(g.bias, m0, 4);
        for r in 0..h {
            let x = k.ld_ro(types::F32, bias_p, (r * 4) as i32);
            let v = k.widen(vty, x);
            init.extend(std::iter::repeat_n(v, np));
        }
        return init;
    }
    for r in 0..h {
        for j in 0..np {
            let off = ((r * g.ldo + j * l) * 4) as i32;
            let w = if j + 1 == np { w_last } else { l };
            let v = if w == l {
                k.ld(vty, op, off)
            } else {
                let x = k.ld(types::F32, op, off);
                let mut v = k.widen(vty, x);
                for q in 1..w {
                    let x = k.ld(types::F32, op, off + (q * 4) as i32);
                    v = k.b.ins().insertlane(v, x, q as u8);
                }
                v
            };
            init.push(v);
        }
    }
    init
}

/// Stores a micro-tile's accumulators at `op` (output element offset `oe`)
/// through `epi` (residual, then activation), the last panel only its
/// `w_last` lanes.
fn tile_store(
    k: &mut Kernel,
    g: &Gemm,
    accs: &[Value],
    (op, oe): (Value, Value),
    (h, np, w_last): (usize, usize, usize),
    epi: Epilogue,
) {
    let (l, vty) = (k.lanes(), k.vty());
    let rp = epi.residual.map(|r| k.addr(r, oe, 4));
    for r in 0..h {
        for j in 0..np {
            let off = ((r * g.ldo + j * l) * 4) as i32;
            let w = if j + 1 == np { w_last } else { l };
            let mut acc = accs[r * np + j];
            if w == l {
                if let Some(rp) = rp {
                    let x = k.ld(vty, rp, off);
                    acc = k.b.ins().fadd(acc, x);
                }
                let y = apply_act(k, vty, epi.act, acc);
                k.st(y, op, off);
            } else {
                let y = if epi.residual.is_none() { apply_act(k, vty, epi.act, acc) } else { acc };
                for q in 0..w {
                    let mut x = k.b.ins().extractlane(y, q as u8);
                    let o = off + (q * 4) as i32;
                    if let Some(rp) = rp {
                        let rv = k.ld(types::F32, rp, o);
                        x = k.b.ins().fadd(x, rv);
                        x = apply_act(k, types::F32, epi.act, x);
                    }
                    k.st(x, op, o);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::{aarch64, riscv64, x64, CacheParams};

    fn caps(cache: CacheParams) -> Caps {
        let (avx2, avx512, vnni, vbmi, dotprod, neon) = (false, false, false, false, false, false);
        let (vector_registers, skip_zeros) = (16, true);
        Caps {
            simd: true,
            fma: true,
            round: true,
            cache,
            avx2,
            avx512,
            vnni,
            vbmi,
            dotprod,
            neon,
            vector_registers,
            skip_zeros,
        }
    }

    /// The blocks derived from the per-ISA cache parameters. On x86-64 they
    /// are the literals the engine used before the parameters existed (K
    /// slice 384, 1 MiB B panels), so its code is unchanged.
    #[test]
    fn blocks_from_cache_parameters() {
        assert_eq!((kc_max(&caps(x64::ISA.cache), 4), b_block_bytes(&caps(x64::ISA.cache))), (384, 1 << 20));
        assert_eq!(kc_max(&caps(aarch64::ISA.cache), 4), 768);
        // scalar riscv64: one lane per panel
        assert_eq!(kc_max(&caps(riscv64::ISA.cache), 1), 472);
        for (c, l) in [(x64::ISA.cache, 4), (aarch64::ISA.cache, 4), (riscv64::ISA.cache, 1)] {
            let kc = kc_max(&caps(c), l);
            assert!(
                kc.is_multiple_of(2) && (MR + l) * kc * 4 <= c.l1d * 3 / 4 && (MR + l) * (kc + 2) * 4 > c.l1d * 3 / 4
            );
        }
    }
}
