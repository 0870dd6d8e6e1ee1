//! Pattern-sparse direct convolution (PatDNN's compiler half): a conv whose
//! constant weight has a pattern layout ([`kerf_ir::Sparsity::detect`]:
//! every kernel keeps the taps of one of a few masks, or is removed) runs
//! only its kept taps, with no zero MACs.
//!
//! **Program**, built at compile time ([`Program`]): per (output channel,
//! block of input channels), per kind of entry ([`EntryKind`]), the number
//! of entries of that kind, then per entry (channel order) its byte
//! offsets into the padded image ([`Phases`]) and its taps' weights. At
//! stride 1 an entry is a *column entry*, up to three taps of one kernel
//! that read the same input columns, its kind their row offsets (`[0]`,
//! `[0, 1]`, `[0, 1, 2]`, ...), so the register tiles load each input row
//! under the tile once for all of them, and it stores one offset, its
//! first tap's; at stride 2 a whole kernel, with each tap's offset
//! ([`EntryKind::entry_bytes`]). Removed kernels have no entry and no zero
//! weight is stored; the entry's offset is the only index decoding.
//!
//! **Order**: per output pixel the bias, then the program in order, one
//! fused multiply-add per kept tap. Both forms below perform exactly that
//! sequence, so `--no-micro-kernels` gives the same bits.
//!
//! - **Register tiles** ([`conv_tiles`], AVX2 + FMA or AArch64 NEON:
//!   [`crate::isa::Caps::pattern_tiles`]; stride 1 or 2, any plane): the output plane is cut
//!   into tiles of up to 12 `ymm` accumulators (rows × 8-pixel vectors,
//!   [`schedule`]; 16 of 4 pixels on AArch64); an assembled tile
//!   (`ukernel::avx2::pattern_tile`, `ukernel::neon::pattern_tile`) holds one output channel's tile
//!   in registers while one channel block's program adds its taps, then
//!   stores it once. Tiles are the outer loop, then channel blocks, then
//!   output channels, so a block's input band stays in cache while every
//!   output channel reads it. Stride 2 reads a phase-split image, so
//!   consecutive output pixels still read consecutive floats.
//! - **128-bit passes** ([`conv_passes`], every ISA; stride 1, planes of
//!   64 pixels and more): each output plane starts as the bias, then
//!   consecutive entries, about four taps at a time (their weights
//!   broadcast once into registers), are applied to the whole plane: per
//!   output vector one load, one FMA per tap, one store.
//!
//! The register tiles apply a fused epilogue (residual, Relu/Clip,
//! HardSwish: [`super::gemm_wide::act_epi`]) in the last channel block's
//! tiles, before their stores; other epilogues, and the 128-bit passes',
//! run as a second pass.
//!
//! Threads split the output channels by work ([`work`]: ranges of kept
//! taps through [`Kernel::parallel_range`], not equal counts of
//! channels); each task pads the image into its own scratch copy (a small
//! fraction of its work), and computes its channels exactly as a serial
//! run does.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::conv_geo::Geo;
use super::epilogue::{epilogue_pass, Act, Epilogue};
use super::gemm_wide::act_epi;
use super::{Family, Kernel, LResult};
use crate::ukernel::epi::TileEpi;
use crate::ukernel::pattern::{max_accs, Elem, EntryKind, PatternTile};

mod phases;
mod work;
pub(super) use phases::Phases;

/// Whether the pattern kernel computes this conv: one group; for the
/// 128-bit passes stride 1 and an output plane of at least 64 pixels
/// (below that a pass per kernel costs more than the dense kernels' work;
/// see [`kerf_ir::Sparsity::pattern_beats_winograd`]); for the register
/// tiles (`wide`) any plane, stride 1 or 2.
pub(super) fn fits(gm: &Geo, wide: bool) -> bool {
    let stride = (gm.sh, gm.sw);
    gm.group == 1 && (stride == (1, 1) && (wide || gm.oh * gm.ow >= 64) || wide && stride == (2, 2))
}

/// Output vectors per step along a row of a pass (independent FMA chains;
/// 2 measured fastest of 1, 2, 4 and 8 on a 64-channel 56x56 layer).
const BLOCK: usize = 2;

/// Input channels per block: a register tile takes the kept kernels of one
/// block of input channels per call, so that the block's band of input
/// rows under a tile (about 64 KB: in L2, mostly in L1) stays close while
/// every output channel reads it. Measured on 22%-kept layers (AMD EPYC
/// Zen 3, 1 thread): a 12 KB band 1.3–2.0x slower than 48–96 KB (more
/// calls with shorter FMA chains), one block for all channels up to 10%
/// slower (its band falls out of L2 on 512-channel layers); with stride 2,
/// 16–256 KB bands 1.05–1.7x slower than 64 KB.
///
/// The blocks decide the order of the taps (kinds within a block), so they
/// are sized for the 8-pixel tiles whatever the target's width: every
/// form of the kernel then sums in the same order.
fn channel_block(gm: &Geo) -> usize {
    const LANES: usize = 8;
    let (sch, s) = (schedule(gm.oh, gm.ow, max_accs(Elem::F32, LANES), LANES), gm.sh.max(1));
    // per channel: the tile's rows of every phase plane ([`Phases`])
    let rows = sch.rows + (gm.kh - 1) * gm.dh / s;
    let row_bytes = ((LANES * sch.vecs + (gm.kw - 1) * gm.dw / s) * 4).next_multiple_of(64) + 64;
    (64 * 1024 / (s * s * rows * row_bytes)).clamp(8, gm.c.max(8))
}

/// The layer's weights as the pattern kernel reads them: the dense
/// weight and bias, and the pattern layout (`Sparsity::Pattern`).
pub(super) struct Weights<'a> {
    pub w: &'a [f32],
    pub bias: &'a [f32],
    pub patterns: &'a [u32],
    pub assignment: &'a [Option<u8>],
}

/// Emits the pattern conv with `epi` applied (`Ok(true)`): the register
/// tiles apply the epilogues they have before their stores; any other
/// (and every one on the 128-bit passes) runs as a pass over the task's
/// own output channels once they are complete ([`task_epilogue`]), never
/// over the whole output, which other tasks are still writing.
pub(super) fn conv(k: &mut Kernel, gm: &Geo, wt: &Weights, epi: Epilogue) -> LResult<bool> {
    let lanes = tile_lanes(k, gm, Elem::F32);
    let back = if k.caps.pattern_tiles() { last_back(gm, Elem::F32, lanes) } else { 0 };
    let ph = Phases::new(gm, lanes, back);
    let area = gm.kh * gm.kw;
    let weight = |o: usize, c: usize, tap: usize| wt.w[(o * gm.c + c) * area + tap].to_le_bytes();
    let layout = Layout { patterns: wt.patterns, assignment: wt.assignment, weight: &weight };
    let prog = Program::new(gm, &layout, &ph)?;
    let per_channel = wt.bias.iter().flat_map(|b| b.to_le_bytes()).collect();
    let f = Frame::new(k, gm, &prog, per_channel, &ph, (epi.residual.map(|r| (r, 4)), false))?;
    if k.caps.pattern_tiles() {
        let tile_epi = act_epi(epi.act, epi.residual.is_some());
        let fused = tile_epi.filter(|e| *e != TileEpi::default());
        let tiles = Tiles { elem: Elem::F32, epi: fused, lanes, quant: None, res_u8: None };
        ph.clear(k, gm, f.img);
        let (x, img) = (f.x, f.img);
        conv_tiles(k, gm, &prog, &ph, &f, &tiles, &mut |k, n| ph.pad(k, gm, x, n, img))?;
        if tile_epi.is_none() {
            task_epilogue(k, gm, &f, epi);
        }
    } else {
        conv_passes(k, gm, &prog, &ph, &f);
        task_epilogue(k, gm, &f, epi);
    }
    Ok(true)
}

/// `y = act(y + residual)` over this task's output channels (`f.lo..f.hi`)
/// of every image, for an epilogue the conv itself did not apply: the
/// operations of `conv`'s pass over the whole output, so a conv split into
/// tasks gives the bits of one run whole.
fn task_epilogue(k: &mut Kernel, g: &Geo, f: &Frame, epi: Epilogue) {
    if epi.act == Act::None && epi.residual.is_none() {
        return;
    }
    k.for_n(0, g.n as i64, 1, |k, n| {
        k.for_acc(f.lo, f.hi, 1, &[], |k, oc, _| {
            let zero = k.ic(0);
            let y = f.out_at(k, g, n, oc, zero);
            let r = epi.residual.map(|r| out_at(k, g, r, (n, oc, zero), 4));
            epilogue_pass(k, epi, (y, r), g.oh * g.ow);
            vec![]
        });
    });
}

/// A layer's kept kernels as [`Program::new`] reads them: per (output
/// channel, input channel) kernel its mask (an index into `patterns`, or
/// removed), and each kept tap's weight as it goes into the program (an
/// f32, or the integer kernel's quad of i8: then the "input channels" are
/// quads).
pub(super) struct Layout<'a> {
    pub patterns: &'a [u32],
    pub assignment: &'a [Option<u8>],
    /// The program bytes of tap `tap` of kernel `(o, c)`.
    pub weight: &'a dyn Fn(usize, usize, usize) -> [u8; 4],
}

/// The kept taps of a layer in the order they are applied (see the module
/// docs).
pub(super) struct Program {
    /// Every (output channel, channel block)'s program, one after another.
    blob: Vec<u8>,
    /// Where each starts in `blob`, `[oc][block]`.
    starts: Vec<i64>,
    /// The kinds of entry, in program order ([`PatternTile::kinds`]).
    kinds: Vec<EntryKind>,
    /// Channel blocks per output channel.
    blocks: usize,
    /// Per output channel its first work unit, then the total
    /// ([`work::starts`]).
    work: Vec<u64>,
}

/// A kernel's kept taps as program entries, in order of their first tap.
/// At stride 1, column entries: taps reading the same input columns (one
/// column offset) grouped top to bottom, at most
/// [`PatternTile::MAX_TAPS`] to an entry, their kind the row offsets from
/// the entry's first tap. At stride 2 one whole-kernel entry: with the
/// phase split only taps `ky = 0` and `ky = 2` share a plane, and column
/// entries measured 5% slower there (more, shorter loop iterations for
/// little sharing).
pub(super) fn entries(mask: u32, area: usize, ph: &Phases) -> Vec<(EntryKind, Vec<usize>)> {
    let taps: Vec<usize> = (0..area).filter(|tap| mask & (1 << tap) != 0).collect();
    if taps.is_empty() {
        return Vec::new();
    }
    if ph.s > 1 {
        return vec![(EntryKind::Kernel(taps.len()), taps)];
    }
    let mut cols: Vec<((usize, usize), Vec<usize>)> = Vec::new();
    for tap in taps {
        let (col, _) = ph.place(tap);
        match cols.iter_mut().find(|(c, _)| *c == col) {
            Some((_, taps)) => taps.push(tap),
            None => cols.push((col, vec![tap])),
        }
    }
    let mut entries = Vec::new();
    for (_, taps) in cols {
        // taps come in row-major order: rows ascending within a column
        for chunk in taps.chunks(PatternTile::MAX_TAPS) {
            let d0 = ph.place(chunk[0]).1;
            let rows = chunk.iter().map(|&t| ph.place(t).1 - d0).collect();
            entries.push((EntryKind::Column(rows), chunk.to_vec()));
        }
    }
    entries.sort_by_key(|(_, taps)| taps[0]);
    entries
}

impl Program {
    pub(super) fn new(gm: &Geo, wt: &Layout, ph: &Phases) -> LResult<Program> {
        let (patterns, assignment) = (wt.patterns, wt.assignment);
        let area = gm.kh * gm.kw;
        let plane = ph.channel_bytes();
        if gm.c * plane > u32::MAX as usize / 2 {
            return Err(format!(
                "pattern conv: a {}-channel padded image of {plane} bytes per channel is too large",
                gm.c
            ));
        }
        let entries: Vec<Vec<(EntryKind, Vec<usize>)>> = patterns.iter().map(|&m| entries(m, area, ph)).collect();
        let mut used = vec![false; patterns.len()];
        for p in assignment.iter().flatten() {
            if let Some(u) = used.get_mut(*p as usize) {
                *u = true;
            }
        }
        let mut kinds: Vec<EntryKind> =
            entries.iter().zip(&used).filter(|(_, &u)| u).flat_map(|(e, _)| e.iter().map(|(k, _)| k.clone())).collect();
        kinds.sort_unstable_by(|a, b| (a.taps(), a).cmp(&(b.taps(), b)));
        kinds.dedup();
        let cb = channel_block(gm);
        let pattern_of = |o: usize, c: usize| assignment[o * gm.c + c].filter(|&p| (p as usize) < patterns.len());
        let blocks = gm.c.div_ceil(cb);
        let mut p = Program { blob: Vec::new(), starts: Vec::new(), kinds, blocks, work: Vec::new() };
        let mut taps = vec![0u64; gm.oc];
        for (o, taps) in taps.iter_mut().enumerate() {
            for c0 in (0..gm.c).step_by(cb) {
                p.starts.push(p.blob.len() as i64);
                for kind in &p.kinds {
                    // this kind's entries of the block's kept kernels, in channel order
                    let kept: Vec<(usize, &Vec<usize>)> = (c0..(c0 + cb).min(gm.c))
                        .filter_map(|c| pattern_of(o, c).map(|pi| (c, pi)))
                        .flat_map(|(c, pi)| {
                            entries[pi as usize].iter().filter(|(k, _)| k == kind).map(move |(_, t)| (c, t))
                        })
                        .collect();
                    p.blob.extend((kept.len() as i64).to_le_bytes());
                    for (c, kernel_taps) in kept {
                        for &tap in &kernel_taps[..kind.offsets()] {
                            p.blob.extend(((c * plane) as u32 + ph.tap(tap) as u32).to_le_bytes());
                        }
                        for &tap in kernel_taps {
                            p.blob.extend((wt.weight)(o, c, tap));
                        }
                        *taps += kernel_taps.len() as u64;
                    }
                }
            }
        }
        p.work = work::starts(&taps, blocks);
        Ok(p)
    }
}

/// What both forms share: the program and the per-channel data as blobs,
/// this task's output channels and its padded image.
pub(super) struct Frame {
    prog: Value,
    starts: Value,
    /// Per output channel: the f32 bias, or the integer tiles' epilogue
    /// row ([`Tiles::per_channel`] bytes each).
    bias: Value,
    /// This task's output channels.
    lo: Value,
    hi: Value,
    /// This task's padded image (or quad image).
    pub(super) img: Value,
    /// The conv's input.
    pub(super) x: Value,
    out: Value,
    /// The fused epilogue's residual (output layout), if any, and its
    /// element's bytes (4: f32; 1: u8, [`Tiles::res_u8`]).
    residual: Option<(Value, i64)>,
    /// A u8 output ([`Tiles::quant`]) over several channel blocks: the
    /// task's i32 partial sums between blocks (one image's output layout, 4
    /// bytes per element), which the u8 output cannot hold. Sized for
    /// every output channel of the plane although a task uses only its
    /// own and only one tile's rows at a time: simple, and at most a few
    /// hundred KB on ResNet-18's layers (it counts against the task cap).
    partials: Option<Value>,
}

impl Frame {
    /// `bytes_out`: the output is u8 ([`Tiles::quant`]).
    pub(super) fn new(
        k: &mut Kernel,
        g: &Geo,
        p: &Program,
        per_channel: Vec<u8>,
        ph: &Phases,
        (residual, bytes_out): (Option<(Value, i64)>, bool),
    ) -> LResult<Frame> {
        let prog = k.blob(p.blob.clone());
        let starts = k.blob(p.starts.iter().flat_map(|x| x.to_le_bytes()).collect());
        let bias = k.blob(per_channel);
        let img_bytes = g.c * ph.channel_bytes();
        let partial_bytes = if bytes_out && p.blocks > 1 { 4 * g.oc * g.oh * g.ow } else { 0 };
        // tasks take ranges of work units ([`work`]): a unit is one kept
        // tap of one output channel over the batch's planes
        let units = p.work.last().map_or(0, |&u| u as usize);
        let cost = 2 * (g.n * g.oh * g.ow) as u64;
        let cap = (super::gemm::TASK_SCRATCH_BUDGET / (img_bytes + partial_bytes).max(1)).max(2);
        let (ulo, uhi) = k.parallel_range_capped(units, 1, cost, cap)?;
        let (lo, hi) = if k.split.is_some() {
            let firsts = k.blob(p.work.iter().flat_map(|&x| (x as i64).to_le_bytes()).collect());
            (channels_before(k, firsts, g.oc, ulo), channels_before(k, firsts, g.oc, uhi))
        } else {
            (k.ic(0), k.ic(g.oc as i64))
        };
        let img = k.task_scratch(img_bytes);
        let partials = (partial_bytes > 0).then(|| k.task_scratch(partial_bytes));
        Ok(Frame { prog, starts, bias, lo, hi, img, x: k.input(0), out: k.output(0), residual, partials })
    }

    /// The program of output channel `oc`, channel block `cb`.
    fn program(&self, k: &mut Kernel, p: &Program, oc: Value, cb: Value) -> Value {
        let at = k.b.ins().imul_imm_s(oc, p.blocks as i64);
        let at = k.b.ins().iadd(at, cb);
        let start = k.ld_at(types::I64, self.starts, at, 8, 0);
        k.b.ins().iadd(self.prog, start)
    }

    /// Output channel `oc`'s plane of image `n`, from pixel `pix`.
    fn out_at(&self, k: &mut Kernel, g: &Geo, n: Value, oc: Value, pix: Value) -> Value {
        out_at(k, g, self.out, (n, oc, pix), 4)
    }

    /// The three addresses a tile call at output channel `oc` of image `n`,
    /// pixel `pix` takes ([`PatternTile`]'s `out`, `residual` and sixth
    /// argument): the f32 output and the residual (or the output again);
    /// for a u8 output the partial sums (or, with one channel block,
    /// nothing: the bytes' address again), the bytes and a u8 residual
    /// ([`PatternTile::res_u8`]; else the bytes' address again).
    fn tile_out(&self, k: &mut Kernel, g: &Geo, bytes_out: bool, (n, oc, pix): (Value, Value, Value)) -> [Value; 3] {
        let residual = |k: &mut Kernel| self.residual.map(|(r, size)| out_at(k, g, r, (n, oc, pix), size));
        if bytes_out {
            let bytes = out_at(k, g, self.out, (n, oc, pix), 1);
            // (one image's partial sums at a time)
            let sums = match self.partials {
                Some(p) => {
                    let first = k.ic(0);
                    out_at(k, g, p, (first, oc, pix), 4)
                }
                None => bytes,
            };
            return [sums, bytes, residual(k).unwrap_or(bytes)];
        }
        let dst = self.out_at(k, g, n, oc, pix);
        let res = residual(k).unwrap_or(dst);
        [dst, res, res]
    }
}

/// How many of the `n` output channels' first work units (`firsts`, i64
/// each) are below `unit`: the first channel of a task whose units start
/// at `unit` ([`work`]). A branch-free scan, once per task and call.
fn channels_before(k: &mut Kernel, firsts: Value, n: usize, unit: Value) -> Value {
    let zero = k.ic(0);
    k.for_acc_n(0, n as i64, 1, &[zero], |k, c, acc| {
        let first = k.ld_at(types::I64, firsts, c, 8, 0);
        let below = k.b.ins().icmp(IntCC::SignedLessThan, first, unit);
        let below = k.b.ins().uextend(types::I64, below);
        vec![k.b.ins().iadd(acc[0], below)]
    })[0]
}

/// Output channel `oc`'s plane of image `n` in `base` (the output's
/// layout, `size`-byte elements), from pixel `pix`.
fn out_at(k: &mut Kernel, g: &Geo, base: Value, (n, oc, pix): (Value, Value, Value), size: i64) -> Value {
    let no = k.b.ins().imul_imm_s(n, g.oc as i64);
    let o = k.b.ins().iadd(no, oc);
    let o = k.b.ins().imul_imm_s(o, (g.oh * g.ow) as i64);
    let o = k.b.ins().iadd(o, pix);
    k.addr(base, o, size)
}

/// The 128-bit passes: per output channel the plane starts as the bias,
/// then passes over it of consecutive entries ([`PASS_TAPS`] taps or so), in
/// program order.
fn conv_passes(k: &mut Kernel, g: &Geo, p: &Program, ph: &Phases, f: &Frame) {
    let (l, vty, ow) = (k.lanes(), k.vty(), g.ow);
    let row_bytes = (ph.wq * 4) as i64;
    ph.clear(k, g, f.img);
    k.for_n(0, g.n as i64, 1, |k, n| {
        ph.pad(k, g, f.x, n, f.img);
        k.for_acc(f.lo, f.hi, 1, &[], |k, oc, _| {
            let zero = k.ic(0);
            let obase = f.out_at(k, g, n, oc, zero);
            let bs = k.ld_at(types::F32, f.bias, oc, 4, 0);
            k.for_vec(g.oh * ow, &mut |k, ty, i| {
                let v = k.widen(ty, bs);
                k.st_at(v, obase, i, 4, 0);
            });
            k.for_n(0, p.blocks as i64, 1, |k, cb| {
                let mut at = f.program(k, p, oc, cb);
                for kind in &p.kinds {
                    let nt = kind.taps();
                    let cnt = k.ld_ro(types::I64, at, 0);
                    let entries = k.b.ins().iadd_imm_s(at, 8);
                    // `per` consecutive entries per pass (about four taps, as
                    // one kernel had before the column entries): the same
                    // multiply-adds in the same order, one output load and
                    // store per pass
                    let per = (PASS_TAPS / nt).max(1);
                    let whole = k.b.ins().udiv_imm_s(cnt, per as i64);
                    let split = k.b.ins().imul_imm_s(whole, per as i64);
                    for (lo, hi, step) in [(zero, split, per), (split, cnt, 1)] {
                        k.for_acc(lo, hi, step as i64, &[], |k, i, _| {
                            let e = k.addr(entries, i, kind.entry_bytes() as i64);
                            let (srcs, ws) = entry_taps(k, (f.img, e), kind, step, row_bytes);
                            let wv: Vec<Value> = ws.iter().map(|&w| k.widen(vty, w)).collect();
                            pass(k, g, obase, &srcs, (&ws, &wv), row_bytes, l);
                            vec![]
                        });
                    }
                    let len = k.b.ins().imul_imm_s(cnt, kind.entry_bytes() as i64);
                    at = k.b.ins().iadd(entries, len);
                }
            });
            vec![]
        });
    });
}

/// Taps per 128-bit pass over the plane, from consecutive entries.
const PASS_TAPS: usize = 4;

/// The taps of `count` consecutive entries of `kind` from `e`: their
/// inputs at output pixel 0 (in `img`; a column entry's taps `rows` input
/// rows of `row_bytes` below its one offset) and their weights, in
/// program order.
fn entry_taps(
    k: &mut Kernel,
    (img, e): (Value, Value),
    kind: &EntryKind,
    count: usize,
    row_bytes: i64,
) -> (Vec<Value>, Vec<Value>) {
    let (nt, no) = (kind.taps(), kind.offsets());
    let (mut srcs, mut ws) = (Vec::new(), Vec::new());
    for q in 0..count {
        let base = (kind.entry_bytes() * q) as i32;
        let offs: Vec<Value> = (0..no)
            .map(|j| {
                let off = k.ld_ro(types::I32, e, base + (4 * j) as i32);
                let off = k.b.ins().uextend(types::I64, off);
                k.b.ins().iadd(img, off)
            })
            .collect();
        for j in 0..nt {
            srcs.push(match kind {
                EntryKind::Column(rows) => k.b.ins().iadd_imm_s(offs[0], rows[j] as i64 * row_bytes),
                EntryKind::Kernel(_) => offs[j],
            });
            ws.push(k.ld_ro(types::F32, e, base + (4 * (no + j)) as i32));
        }
    }
    (srcs, ws)
}

/// One kept kernel over a whole output plane at `obase`: its taps read
/// `srcs` (each tap's input at output pixel 0), weights `ws` (scalars) and
/// `wv` (broadcast); `l`-lane vectors, `BLOCK` at a time, then single
/// pixels.
fn pass(
    k: &mut Kernel,
    g: &Geo,
    obase: Value,
    srcs: &[Value],
    (ws, wv): (&[Value], &[Value]),
    row_bytes: i64,
    l: usize,
) {
    let (ow, vty) = (g.ow, k.vty());
    let nvec = ow / l;
    let blocks = nvec / BLOCK;
    k.for_n(0, g.oh as i64, 1, |k, oy| {
        let roff = k.b.ins().imul_imm_s(oy, row_bytes);
        let rows: Vec<Value> = srcs.iter().map(|&s| k.b.ins().iadd(s, roff)).collect();
        let orow = k.b.ins().imul_imm_s(oy, (ow * 4) as i64);
        let orow = k.b.ins().iadd(obase, orow);
        // `nv` vectors (or one scalar) at pixel ox0
        let step = |k: &mut Kernel, ox0: Value, nv: usize, ty: types::Type, w: &[Value]| {
            let width = if ty == types::F32 { 1 } else { l };
            let oa = k.addr(orow, ox0, 4);
            let mut acc: Vec<Value> = (0..nv).map(|v| k.ld(ty, oa, (v * width * 4) as i32)).collect();
            for (j, &row) in rows.iter().enumerate() {
                let xa = k.addr(row, ox0, 4);
                for (v, a) in acc.iter_mut().enumerate() {
                    let x = k.ld(ty, xa, (v * width * 4) as i32);
                    *a = k.fmadd(w[j], x, *a);
                }
            }
            for (v, &a) in acc.iter().enumerate() {
                k.st(a, oa, (v * width * 4) as i32);
            }
        };
        // BLOCK independent accumulator chains hide the FMA latency
        k.for_n(0, (blocks * BLOCK * l) as i64, (BLOCK * l) as i64, |k, ox0| step(k, ox0, BLOCK, vty, wv));
        if !nvec.is_multiple_of(BLOCK) {
            let ox0 = k.ic((blocks * BLOCK * l) as i64);
            step(k, ox0, nvec % BLOCK, vty, wv);
        }
        for q in nvec * l..ow {
            let ox0 = k.ic(q as i64);
            step(k, ox0, 1, types::F32, ws);
        }
    });
}

/// How [`conv_tiles`] cuts an output plane: tiles of `rows` rows × `vecs`
/// vectors ([`tile_lanes`] pixels each), the last row and column blocks
/// smaller.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Schedule {
    rows: usize,
    vecs: usize,
}

/// The tile shape that covers an `oh` × `ow` plane at the lowest cost,
/// pricing a tile of `a` accumulators over `r` rows at `max(a, 8) + 2 +
/// r/2` per tap: eight independent chains keep both FMA ports busy through
/// the FMA latency, each tap adds a broadcast and the loop's share, and
/// each row another stream of input lines (tall tiles measured 10% slower
/// than 3-row ones on 56x56 and 28x28 planes).
fn schedule(oh: usize, ow: usize, max_accs: usize, lanes: usize) -> Schedule {
    let nvec = ow.div_ceil(lanes);
    let price = |rows: usize, vecs: usize| {
        // (doubled, to stay in integers)
        let tile = |r: usize, v: usize| if r * v == 0 { 0 } else { 2 * (r * v).max(8) + 4 + r };
        let (full_r, rem_r) = (oh / rows, oh % rows);
        let (full_v, rem_v) = (nvec / vecs, nvec % vecs);
        full_v * (full_r * tile(rows, vecs) + tile(rem_r, vecs)) + full_r * tile(rows, rem_v) + tile(rem_r, rem_v)
    };
    (1..=nvec.min(max_accs))
        .map(|vecs| Schedule { rows: oh.min(max_accs / vecs).max(1), vecs })
        .min_by_key(|s| (price(s.rows, s.vecs), std::cmp::Reverse(s.vecs)))
        .unwrap_or(Schedule { rows: 1, vecs: 1 })
}

/// Which register tiles run a layer: their element type and the epilogue
/// of the last channel block (f32: the fused one, if any; quads: always
/// `QConv`'s, which makes the i32 sums real).
pub(super) struct Tiles {
    pub elem: Elem,
    pub epi: Option<TileEpi>,
    /// Pixels per vector ([`tile_lanes`]).
    pub lanes: usize,
    /// The last channel block's tiles store u8 on this grid
    /// ([`PatternTile::quant`]; quads only).
    pub quant: Option<(f32, u8)>,
    /// The residual is u8 on this grid ([`PatternTile::res_u8`]; quads only).
    pub res_u8: Option<(f32, u8)>,
}

/// Pixels per vector of the register tiles for `elem` on this conv: 4 on
/// AArch64 ([`crate::isa::Caps::pattern_tiles`]); on x86-64 16 (`zmm`)
/// where the target has AVX-512F and the output rows are whole 16-pixel
/// vectors, or at least 16 pixels that 16-pixel vectors cover with no
/// more lanes to spare than 8-pixel ones while 8-pixel tiles would have to
/// store a partial vector ([`last_back`] finds no earlier start); else 8
/// (`ymm`). Measured on an Intel Xeon with two 512-bit FMA ports (f32, 22%
/// of the weights kept, 1 thread, before [`last_back`]): 28-pixel rows
/// 0.91 → 0.82 ms with `zmm`, 56 → 28 at stride 2 1.26 → 1.18 ms;
/// 56-pixel rows no faster, 14-pixel rows 10% slower. On Zen 4 (its
/// 512-bit FMAs are two 256-bit halves) `ymm` tiles whose last vector
/// starts early beat `zmm` on 28-pixel rows, 0.79 → 0.70 ms at stride 1
/// and 1.11 → 0.90 at stride 2 (VNNI quads 0.211 → 0.201 and 0.355 →
/// 0.300), and tie or lose where `zmm` vectors are whole (32-pixel rows
/// 0.89 either way, 48-pixel rows 1.19 against 1.27): so whole `zmm`
/// vectors, or `ymm` with an early last vector. (Not measured on Intel
/// since; `docs/compression.md`, "Early last vectors".)
pub(super) fn tile_lanes(k: &Kernel, g: &Geo, elem: Elem) -> usize {
    if !k.caps.avx2 && k.caps.neon {
        return crate::ukernel::neon::PATTERN_LANES;
    }
    let zmm = k.caps.avx512 && elem != Elem::Quads && g.ow >= 16;
    let fills = g.ow.div_ceil(16) * 16 <= g.ow.div_ceil(8) * 8;
    if zmm && (g.ow.is_multiple_of(16) || fills && last_back(g, elem, 8) == 0) {
        16
    } else {
        8
    }
}

/// Pixels the last vector of each output row starts early
/// ([`PatternTile::back`]): on `ymm` tiles (8 lanes) whose rows end in a
/// partial vector held by the same tile as the one before it (14-pixel
/// rows: vectors at 0 and 6; 28: 0, 8, 16 and 20). The tiles then read
/// `ow + kw − 1` floats of each image row at stride 1 (16 for 14 pixels:
/// a 64-byte row stride, [`Phases::new`]), so fewer taps of kernel columns 1 and 2 load across
/// a cache line (none on 14-pixel rows), and no store goes lane by lane.
/// Measured on Zen 4 (1 thread, alternating builds): the 256-channel
/// 14x14 layer of `make_pattern_layers.py` 0.79 → 0.70 ms, 28x28 → 14x14
/// at stride 2 1.08 → 0.90 ms. Not on `zmm` (16 lanes: an early vector's
/// first-column loads would cross a line too) nor AArch64's 4 lanes.
pub(super) fn last_back(g: &Geo, elem: Elem, lanes: usize) -> usize {
    let rem = g.ow % lanes;
    if lanes != 8 || rem == 0 {
        return 0;
    }
    let sch = schedule(g.oh, g.ow, max_accs(elem, lanes), lanes);
    // vectors of the row's last column block ([`conv_tiles`]' `cols`)
    let last_block = (g.ow.div_ceil(lanes) - 1) % sch.vecs + 1;
    if last_block >= 2 {
        lanes - rem
    } else {
        0
    }
}

impl Tiles {
    /// Bytes per output channel of the frame's per-channel data (an f32
    /// bias, or the integer epilogue's `(corr, scale, bias)` row).
    fn per_channel(&self) -> i64 {
        if self.elem.quads() {
            12
        } else {
            4
        }
    }

    /// A tile shape's code for the first, middle and last channel blocks:
    /// the first starts from the bias (or zero), the others from the
    /// partial sums, the last applies the epilogue.
    fn codes(
        &self,
        k: &mut Kernel,
        p: &Program,
        (rows, vecs, last_lanes, back): (usize, usize, usize, usize),
        (out_row, in_row): (usize, usize),
    ) -> LResult<[Value; 3]> {
        let many = p.blocks > 1;
        let mut code = |accumulate: bool, last: bool| -> LResult<Value> {
            let (elem, kinds, epi) = (self.elem, p.kinds.clone(), if last { self.epi } else { None });
            let (lanes, quant) = (self.lanes, if last { self.quant } else { None });
            let res_u8 = if last { self.res_u8 } else { None };
            let t = PatternTile {
                elem,
                kinds,
                rows,
                vecs,
                lanes,
                last_lanes,
                back,
                out_row,
                in_row,
                accumulate,
                epi,
                quant,
                res_u8,
            };
            if !t.fits() {
                return Err(format!("internal: {elem:?} pattern tile {rows}x{vecs} does not fit the registers"));
            }
            let assembled = if lanes == crate::ukernel::neon::PATTERN_LANES {
                crate::ukernel::neon::pattern_tile(&t).map(|c| (Family::Neon, c))
            } else {
                // the VNNI quads are EVEX code: AVX-512's family in profiles
                let family = if elem == Elem::QuadsVnni { Family::Avx512 } else { Family::Avx2 };
                crate::ukernel::avx2::pattern_tile(&t).map(|c| (family, c))
            };
            let (family, bytes) = assembled.map_err(|e| format!("assembling the {elem:?} pattern tile: {e}"))?;
            Ok(k.code(family, bytes))
        };
        let first = code(false, !many)?;
        if !many {
            return Ok([first; 3]);
        }
        let middle = code(true, false)?;
        let last = if self.epi.is_some() { code(true, true)? } else { middle };
        Ok([first, middle, last])
    }
}

/// The register-tiled pattern conv ([`crate::isa::Caps::pattern_tiles`]): for each tile of the
/// output plane, for each channel block, for each output channel, one
/// call of the assembled tile. The image is prepared first (per image `n`,
/// into `f.img`): the padded (phase-split) copy, or for the integer tiles
/// the quad image ([`super::qconv_pattern`]).
pub(super) fn conv_tiles(
    k: &mut Kernel,
    g: &Geo,
    p: &Program,
    ph: &Phases,
    f: &Frame,
    tiles: &Tiles,
    prepare: &mut dyn FnMut(&mut Kernel, Value),
) -> LResult {
    let l = tiles.lanes;
    let sch = schedule(g.oh, g.ow, max_accs(tiles.elem, l), l);
    let nvec = g.ow.div_ceil(l);
    // column blocks: (first vector, vectors, lanes stored from the last,
    // pixels the last starts early)
    let mut cols = Vec::new();
    for v0 in (0..nvec).step_by(sch.vecs) {
        let vecs = sch.vecs.min(nvec - v0);
        let shape = match v0 + vecs == nvec {
            true if ph.back > 0 => (l, ph.back),
            true => (g.ow - l * (nvec - 1), 0),
            false => (l, 0),
        };
        cols.push((v0, vecs, shape));
    }
    let many = p.blocks > 1;
    let strides = (g.ow * 4, ph.wq * 4);
    let codes = |k: &mut Kernel, rows: usize, vecs: usize, (last, back): (usize, usize)| {
        tiles.codes(k, p, (rows, vecs, last, back), strides)
    };
    let sig = k.ukernel_sig(6);
    // the row blocks: `full` blocks of `sch.rows`, then one of `rest` rows
    let (full, rest) = (g.oh / sch.rows, g.oh % sch.rows);
    let mut blocks = Vec::new();
    for (rows, count) in [(sch.rows, full), (rest, usize::from(rest > 0))] {
        if count > 0 {
            let codes = cols.iter().map(|&(_, v, shape)| codes(k, rows, v, shape)).collect::<LResult<Vec<_>>>()?;
            blocks.push((rows, count, codes));
        }
    }
    k.for_n(0, g.n as i64, 1, |k, n| {
        prepare(k, n);
        let mut oy_first = 0;
        for (rows, count, codes) in &blocks {
            let (rows, y0) = (*rows, oy_first);
            k.for_n(0, *count as i64, 1, |k, rb| {
                let oy0 = k.b.ins().imul_imm_s(rb, rows as i64);
                let oy0 = k.b.ins().iadd_imm_s(oy0, y0 as i64);
                for (&(v0, _, _), &[first, middle, last]) in cols.iter().zip(codes) {
                    let ox0 = (v0 * l) as i64;
                    let src = k.b.ins().imul_imm_s(oy0, (ph.wq * 4) as i64);
                    let src = k.b.ins().iadd_imm_s(src, ox0 * 4);
                    let src = k.b.ins().iadd(f.img, src);
                    let opix = k.b.ins().imul_imm_s(oy0, g.ow as i64);
                    let opix = k.b.ins().iadd_imm_s(opix, ox0);
                    k.for_n(0, p.blocks as i64, 1, |k, cb| {
                        let code = if many {
                            let code = k.b.ins().select(cb, middle, first);
                            let is_last = k.b.ins().icmp_imm_s(IntCC::Equal, cb, p.blocks as i64 - 1);
                            k.b.ins().select(is_last, last, code)
                        } else {
                            first
                        };
                        k.for_acc(f.lo, f.hi, 1, &[], |k, oc, _| {
                            let [dst, aux, res] = f.tile_out(k, g, tiles.quant.is_some(), (n, oc, opix));
                            let pr = f.program(k, p, oc, cb);
                            let b = k.addr(f.bias, oc, tiles.per_channel());
                            k.b.ins().call_indirect(sig, code, &[dst, src, pr, b, aux, res]);
                            vec![]
                        });
                    });
                }
            });
            oy_first += rows * count;
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A square 3x3 "same" conv of `c` channels on `hw`-pixel planes at `stride`.
    fn geo(c: usize, hw: usize, stride: usize) -> Geo {
        let o = (hw + 2 - 3) / stride + 1;
        Geo {
            n: 1,
            c,
            h: hw,
            w: hw,
            oc: c,
            oh: o,
            ow: o,
            kh: 3,
            kw: 3,
            sh: stride,
            sw: stride,
            dh: 1,
            dw: 1,
            ph: 1,
            pw: 1,
            group: 1,
        }
    }

    /// Which rows end in an early vector, by how much, and the image rows
    /// the tiles then read: 14 pixels from 6 (rows of 16 floats, one
    /// line), 28 from 20; whole vectors (56), a row of one vector (7) and
    /// other widths than `ymm`'s none.
    #[test]
    fn early_last_vectors_where_a_tile_holds_the_one_before() {
        for (hw, stride, back, read) in
            [(14, 1, 2, 16usize), (28, 1, 4, 30), (56, 1, 0, 58), (7, 1, 0, 10), (28, 2, 2, 15)]
        {
            let g = geo(64, hw, stride);
            assert_eq!(last_back(&g, Elem::F32, 8), back, "{hw} pixels, stride {stride}");
            let ph = Phases::new(&g, 8, back);
            assert_eq!((ph.read, ph.wq), (read, read.next_multiple_of(8)), "{hw} pixels, stride {stride}");
        }
        for lanes in [4, 16] {
            assert_eq!(last_back(&geo(64, 14, 1), Elem::F32, lanes), 0, "{lanes} lanes");
        }
    }
}
