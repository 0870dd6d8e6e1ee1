//! Gemm and MatMul (batched, broadcast).
//!
//! Both become `C[b] = A[b] · B[b]` on row-major tiles. B is always read from
//! *panels* of `L` columns (`L` = 4 with SIMD, else 1): `panel[nb][k][l] =
//! B[k][nb*L + l]`, zero past `N`; on AVX2 targets two panels share each
//! K step (`[pair][k][8]`, `gemm::Panels`), so the assembled tile loads a
//! pair with one `ymm` load. Constant B (weights) is packed at compile
//! time with Gemm's `alpha` folded in; B computed at run time is packed into
//! scratch memory first (O(K·N) per batch against O(M·K·N) of compute).
//!
//! The micro-kernel computes `rows` × `panels·L` outputs with up to 12
//! vector accumulators (12×1 panels for tall products, 4×3, or 1×8 for
//! matrix-vector shapes), broadcasting one A element per row and loading one
//! B vector per panel per k. Tall activation A (≥ 12 rows, SIMD) is first
//! repacked into row blocks `[k][12]` so its loads can be movable (see
//! `pack_a_fenced`).
//!
//! The store applies the epilogue in registers ([`StoreEpi`]): Gemm's
//! `alpha` (run-time B) and `beta · C`, the bias of `MatMulFused`, a
//! residual and an activation, so no second pass over the output is needed.
//!
//! Threading: the product rows are split into tasks of 4-row units
//! ([`Rows::Range`], [`SPLIT_ROWS`]); every task runs all batches for its rows,
//! packs its rows of A into disjoint parts of the shared scratch and a
//! run-time B into its private scratch. An output's arithmetic (its
//! multiply-add chain over k, then the epilogue) does not depend on the
//! tile that computes it, so threaded runs are bit-identical to serial ones.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Type, Value};
use kerf_ir::op::Epilogue;
use kerf_ir::{DType, Op};

use super::elementwise::bcast_strides;
use super::epilogue::{act_rows, apply_act, Act};
use super::gemm::Panels;
use super::{Kernel, LResult};
use crate::ukernel::avx2::Init;
use crate::ukernel::epi::{Addend as TileAddend, TileEpi};

mod cols;
mod pack;
mod sparse;
mod tile;

use pack::{pack_a_fenced, pack_b, pack_runtime};

pub(super) use sparse::kept_steps as block_sparse_steps;
pub use sparse::BLOCK as SPARSE_BLOCK;

/// At most this many vector accumulators per micro-tile (16 xmm registers:
/// accumulators + one B vector per panel + a broadcast; DESIGN-NOTES §8).
const MAX_ACC: usize = 12;

/// Where the A operand lives and how to step through it (elements).
#[derive(Clone, Copy)]
pub struct AView {
    /// Address of element `(0, 0)`: `A[m, k]` is the f32 at `ptr[m*sm + k*sk]`.
    pub ptr: Value,
    /// Element stride between rows (`m`).
    pub sm: usize,
    /// Element stride along the reduction axis (`k`).
    pub sk: usize,
    /// A is read-only constant data (loads may be hoisted/folded).
    pub ro: bool,
}

/// Micro-tile shape (rows, panels) for an `mm`-row product.
fn tile_shape(mm: usize, n_panels: usize) -> (usize, usize) {
    // mm == 0 (an empty batch or sequence axis): any tile works, and the
    // last branch would divide by zero.
    if mm >= MAX_ACC || n_panels == 1 || mm == 0 {
        (mm.clamp(1, MAX_ACC), 1)
    } else if mm >= 4 {
        (4, 3.min(n_panels))
    } else {
        (mm, (MAX_ACC / mm).min(n_panels).min(8))
    }
}

/// The layout of B's panels over `kk` K steps: the conv engine's groups
/// ([`super::gemm::panel_group`]: pairs on AVX2 targets, quads on
/// AVX-512, one load per vector and K step in the assembled tiles), else
/// `[panel][k][l]`. Layouts change addresses, not arithmetic.
fn b_layout(k: &Kernel, kk: usize) -> Panels {
    Panels::new(k.lanes(), kk, super::gemm::panel_group(k))
}

/// Output of a product: `out[m * ldo + n]`, plus an optional per-row bias
/// (read-only, one f32 per row) added at the start.
#[derive(Clone, Copy)]
pub struct OutView {
    /// Address of output element `(0, 0)`.
    pub ptr: Value,
    /// Output row stride, in f32 elements.
    pub ldo: usize,
    /// Per-row bias (read-only, one f32 per row), if any.
    pub bias: Option<Value>,
}

/// A tensor added at the store: element `(m, n)` of the product (row `m`
/// within the batch) reads `ptr[m*sm + n*sn]` times `scale`; `sn` is 0 (one
/// value per row) or 1.
#[derive(Clone, Copy)]
struct Addend {
    ptr: Value,
    sm: usize,
    sn: usize,
    scale: f32,
}

/// What the store does to each accumulator, in this order (the reference
/// evaluator's): `act(acc * scale + addend + residual)`. The residual has
/// the output's layout (read at the output element's offset).
#[derive(Clone, Copy)]
struct StoreEpi {
    scale: Option<f32>,
    addend: Option<Addend>,
    residual: Option<Value>,
    act: Act,
}

impl StoreEpi {
    const NONE: StoreEpi = StoreEpi { scale: None, addend: None, residual: None, act: Act::None };

    /// What the store applies in registers, and the activation it leaves
    /// to a vector loop over each finished row block ([`act_rows`]): the
    /// long transcendental ones (Gelu, Sigmoid, ...) would be inlined into
    /// every tile shape and, with the accumulators live, spill.
    fn in_registers(self) -> (StoreEpi, Option<Act>) {
        match self.act {
            Act::None | Act::Relu | Act::Clip { .. } | Act::LeakyRelu { .. } | Act::HardSwish => (self, None),
            act => (StoreEpi { act: Act::None, ..self }, Some(act)),
        }
    }

    /// The assembled tiles' start and epilogue for this store (in
    /// registers, [`StoreEpi::in_registers`]) with or without a row bias,
    /// if they apply it.
    fn tile(self, row_bias: bool) -> Option<(Init, TileEpi)> {
        if row_bias && self.addend.is_some() {
            return None;
        }
        let tile = TileEpi {
            scale: self.scale,
            addend: self.addend.map(|ad| TileAddend { per_column: ad.sn == 1, row: ad.sm * 4, scale: ad.scale }),
            ..super::gemm_wide::act_epi(self.act, self.residual.is_some())?
        };
        Some((if row_bias { Init::RowBias } else { Init::Zero }, tile))
    }
}

/// Whether the assembled tiles apply the store of a product by constant
/// weights (a per-column addend, no scale or residual) ending in `act`:
/// where they do not, an AVX2 target runs a block-sparse B dense
/// ([`sparse_b`]), so a kernel choosing a product route for its
/// block-sparse weights asks this too (a question of the op alone, not of
/// the target).
pub(super) fn block_sparse_store(act: Act) -> bool {
    let (e, _) = StoreEpi { act, ..StoreEpi::NONE }.in_registers();
    e.tile(false).is_some()
}

/// The rows of a product one kernel call computes: all, or a task's range
/// from [`Kernel::parallel_range`] (I64 values; `lo` a multiple of the tile
/// height, `hi` a multiple of it or the row count).
#[derive(Clone, Copy)]
enum Rows {
    All,
    Range(Value, Value),
}

/// Row granularity of a split: task ranges start at multiples of it.
/// Tiles never change an output's arithmetic (every accumulator runs the
/// same multiply-add chain over k whatever the tile shape), so a task may
/// tile its range on its own: 4-row units balance two tasks on 64 rows
/// (32 + 32) where whole 12-row blocks gave 36 + 28.
const SPLIT_ROWS: usize = 4;

/// Calls `body(k, m0, h)` for the row blocks of an `mm`-row product that
/// fall in `rows`. All rows: blocks of `rm` rows from row 0, then one block
/// of the `mm % rm` rows left. A task's range (`lo` a multiple of
/// [`SPLIT_ROWS`], `hi` too or `mm`): blocks of `rm` rows from `lo`, then
/// blocks of `SPLIT_ROWS`, then the `mm % SPLIT_ROWS` last rows in the last
/// task. Packing and tiles use the same blocks (`rm` = the tile height,
/// [`MAX_ACC`] when A is packed).
fn row_blocks(k: &mut Kernel, mm: usize, rm: usize, rows: Rows, body: &mut dyn FnMut(&mut Kernel, Value, usize)) {
    match rows {
        Rows::All => {
            let main = mm / rm * rm;
            k.for_n(0, main as i64, rm as i64, |k, m0| body(k, m0, rm));
            if main < mm {
                let m0 = k.ic(main as i64);
                body(k, m0, mm - main);
            }
        }
        Rows::Range(lo, hi) => {
            let (small, q) = (SPLIT_ROWS.min(rm), mm / SPLIT_ROWS * SPLIT_ROWS);
            let qv = k.ic(q as i64);
            let below = k.b.ins().icmp(IntCC::SignedLessThan, hi, qv);
            let end = k.b.ins().select(below, hi, qv);
            // lo + (end - lo) / rm * rm: the end of the full tiles
            let span = k.b.ins().isub(end, lo);
            let nfull = k.b.ins().udiv_imm_s(span, rm as i64);
            let full = k.b.ins().imul_imm_s(nfull, rm as i64);
            let mid = k.b.ins().iadd(lo, full);
            k.for_dyn(lo, mid, rm as i64, |k, m0| body(k, m0, rm));
            if small < rm {
                k.for_dyn(mid, end, small as i64, |k, m0| body(k, m0, small));
            }
            if q < mm {
                let past = k.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, hi, q as i64);
                k.if_then(past, |k| {
                    let m0 = k.ic(q as i64);
                    body(k, m0, mm - q);
                });
            }
        }
    }
}

/// Emits `out[m*ldo + n] (+)= sum_k A[m,k] * panel(k, n)` for all m < M,
/// n < N, B packed `[panel][k][l]` (single panels). `a_off`/`o_off` are element offsets (I64 values) of this batch.
/// Tiles of `rows x panels` accumulators; loads of A are broadcasts, one B
/// vector per panel per k.
#[allow(clippy::too_many_arguments)]
pub fn gemm_core(
    k: &mut Kernel,
    mm: usize,
    n: usize,
    kk: usize,
    a: AView,
    a_off: Value,
    panel: (Value, bool),
    out: OutView,
    o_off: Value,
) {
    // callers pack their panels `[panel][k][l]`
    let pan = Panels::new(k.lanes(), kk, 1);
    let t = Tiles { mm, n, kk, pan, packed: false, rows: Rows::All, epi: StoreEpi::NONE, sparse: None };
    gemm_tiles(k, &t, a, a_off, panel, out, o_off);
}

/// Whether an `mm × kk` A operand is worth repacking at run time into row
/// blocks (see [`pack_a_runtime`](pack::pack_a_runtime)): tall products whose A row block is
/// re-read for every B panel group. Packing costs O(M·K) copies against
/// O(M·K·N) multiply-adds. It gives the tile the conv GEMM engine's A
/// layout (gemm.rs: one sequential stream instead of 12 strided ones) and,
/// mostly, lets the A loads be movable (see [`pack_a_fenced`]): measured on
/// x86-64, 64×128·128×512 went from ~19–21 to ~46 GFLOP/s.
fn wants_packed_a(k: &Kernel, mm: usize, n: usize) -> bool {
    k.caps.simd && mm >= MAX_ACC && n >= 2 * k.lanes()
}

/// One product's tiling: `mm × kk · kk × n`; `packed` reads A from the row
/// blocks written by [`pack_a_runtime`](pack::pack_a_runtime) (`a.ptr`, `a_off` ignored); `rows`
/// the rows to compute; `epi` applied at the store.
#[derive(Clone, Copy)]
struct Tiles {
    mm: usize,
    n: usize,
    kk: usize,
    /// B's panel layout.
    pan: Panels,
    packed: bool,
    rows: Rows,
    epi: StoreEpi,
    /// B in [`sparse`]'s block-sparse form (the `panel` pointer is its
    /// blob; A is not packed).
    sparse: Option<sparse::Sparse>,
}

/// `act(x * scale + addend + residual)` on one vector (`ty` the vector
/// type, `w` = lanes) or one lane (`ty` = F32, `w` = 1): `ap` points at the
/// addend of the first column (row pointer for `sn = 0`), `rp` at the
/// residual of it, `off` is the column's byte offset from both.
#[allow(clippy::too_many_arguments)]
fn finish(k: &mut Kernel, e: &StoreEpi, ty: Type, x: Value, ap: Option<Value>, rp: Option<Value>, off: i32) -> Value {
    let mut v = x;
    if let Some(s) = e.scale {
        let c = k.fsplat(ty, s);
        v = k.b.ins().fmul(v, c);
    }
    if let (Some(ad), Some(ap)) = (e.addend, ap) {
        let c = if ad.sn == 0 {
            let c = k.ld_ro(types::F32, ap, 0);
            k.widen(ty, c)
        } else {
            k.b.ins().load(ty, super::loops::ro(), ap, off)
        };
        let c = if ad.scale != 1.0 {
            let s = k.fsplat(ty, ad.scale);
            k.b.ins().fmul(c, s)
        } else {
            c
        };
        v = k.b.ins().fadd(v, c);
    }
    if let Some(rp) = rp {
        let r = k.ld(ty, rp, off);
        v = k.b.ins().fadd(v, r);
    }
    apply_act(k, ty, e.act, v)
}

/// The block-sparse form of a constant B ([`sparse::layout`]: `b` is `dims`
/// = `(K, N)` with strides `strides`, times `scale`) and its blob, for a
/// product (no row bias) with store `epi`: on the assembled tiles where
/// the target has them (only if they apply `epi`), else on Cranelift's; A
/// (`a`, read in place) steps evenly along K.
#[allow(clippy::too_many_arguments)]
fn sparse_b(
    k: &mut Kernel,
    b: &[f32],
    dims: (usize, usize),
    strides: (usize, usize),
    scale: f32,
    a: AView,
    epi: StoreEpi,
) -> Option<(sparse::Sparse, Value)> {
    // the assembled tiles where the target has them (if they apply the
    // store), else Cranelift's
    let epi = match k.caps.avx2 {
        true => Some(epi.in_registers().0.tile(false)?.1),
        false => None,
    };
    let (sp, bytes) = sparse::layout(k, b, dims, strides, scale, a.sk * 4, epi)?;
    Some((sp, k.blob(bytes)))
}

/// [`gemm_core`] with the tiling, A layout, row range and store epilogue
/// of `t`.
fn gemm_tiles(k: &mut Kernel, t: &Tiles, a: AView, a_off: Value, panel: (Value, bool), out: OutView, o_off: Value) {
    let (mm, n, kk, packed) = (t.mm, t.n, t.kk, t.packed);
    // min/max/mul activations at the store, the others over each finished
    // row block, still in L1
    let (epi, block_act) = t.epi.in_registers();
    // (pointer, read-only): panels packed at run time in this very kernel
    // must not be marked read-only, or their loads could move above the
    // stores that pack them.
    let (panel, panel_ro) = panel;
    let b_flags = if panel_ro { super::loops::ro() } else { super::loops::mem() };
    let l = k.lanes();
    let full_nb = n / l;
    let tail = n % l;
    // Packed A comes from [`pack_a_fenced`], whose pointer is only known
    // after the packing stores, so its loads may move (next to their use,
    // folded into the broadcast): with in-order loads the 2·rows scalars of
    // an unrolled k step are all live at once and spill.
    let a_flags = if a.ro || packed { super::loops::ro() } else { super::loops::mem() };
    let tile = tile::Operands { t, a, a_off, a_flags, panel, b_flags, out, o_off, epi };
    let emit_tile = |k: &mut Kernel, m0: Value, rows: usize, nb0: Value, np: usize, width: usize| {
        tile::emit(k, &tile, m0, (rows, np), nb0, width);
    };
    let (rm, np0) = tile_shape(mm, n.div_ceil(l));
    if let Some(sp) = t.sparse {
        let at = sparse::At { a, a_off, blob: panel, out, o_off, epi };
        // blocks of the tiles' own height (the dense tiling's 4-row
        // blocks for 4..11 rows would stream B once per 4 rows)
        row_blocks(k, mm, MAX_ACC, t.rows, &mut |k, m0, rows| {
            sparse::run(k, sp, n, &at, m0, rows);
            if let Some(act) = block_act {
                let e = k.b.ins().imul_imm_s(m0, out.ldo as i64);
                let e = k.b.ins().iadd(e, o_off);
                let first = k.addr(out.ptr, e, 4);
                act_rows(k, act, first, rows, out.ldo * 4, n);
            }
        });
        return;
    }
    // Full groups of np full panels, then the remaining full panels one
    // group, then the partial panel.
    row_blocks(k, mm, rm, t.rows, &mut |k, m0, rows| {
        // The remaining rows of a 12-row tiling (e.g. 64 = 5·12 + 4) and a
        // task's 4-row blocks get two panels: 4×1 would leave the FMA
        // latency bare, and 4×3 (12 accumulators plus the 2·3 B vectors of
        // the unrolled k step) spilled to the stack (seen in objdump);
        // 4×2 took qkv/ff2/proj of tiny_transformer from ~44-46 to ~47-48
        // GFLOP/s.
        let np = if rows < rm && rm == MAX_ACC { (8 / rows).clamp(1, 2).min(n.div_ceil(l)) } else { np0 };
        // the assembled tiles (AVX2) take whole groups of four, then two, panels
        let wide = match wide_tiles(k, t, a, rows, out, epi) {
            Some(w) => {
                let ptrs = |k: &mut Kernel, nb: Value| tile_ptrs(k, t, a, a_off, panel, out, o_off, epi, m0, nb);
                super::gemm_wide::run(k, &w, full_nb, kk, &ptrs);
                w.covers(full_nb)
            }
            None => 0,
        };
        let groups = (full_nb - wide) / np;
        k.for_n(wide as i64, (wide + groups * np) as i64, np as i64, |k, nb| emit_tile(k, m0, rows, nb, np, l));
        let rest = full_nb - wide - groups * np;
        if rest > 0 {
            let nb = k.ic((wide + groups * np) as i64);
            emit_tile(k, m0, rows, nb, rest, l);
        }
        if tail > 0 {
            let nb = k.ic(full_nb as i64);
            emit_tile(k, m0, rows, nb, 1, tail);
        }
        if let Some(act) = block_act {
            let e = k.b.ins().imul_imm_s(m0, out.ldo as i64);
            let e = k.b.ins().iadd(e, o_off);
            let first = k.addr(out.ptr, e, 4);
            act_rows(k, act, first, rows, out.ldo * 4, n);
        }
    });
}

/// The assembled tiles for a block of `rows` rows of `t` (see
/// `gemm_wide`), when the target has them and the store's epilogue is one
/// they apply (not a row bias and an addend together; no LeakyRelu or
/// HardSwish).
fn wide_tiles(
    k: &Kernel,
    t: &Tiles,
    a: AView,
    rows: usize,
    out: OutView,
    epi: StoreEpi,
) -> Option<super::gemm_wide::Wide> {
    use crate::ukernel::avx2::GemmTile;
    let (init, tile_epi) = epi.tile(out.bias.is_some())?;
    let tile = GemmTile {
        rows: 0,
        vecs: 0,
        a_row: if t.packed { 4 } else { a.sm * 4 },
        a_step: if t.packed { rows * 4 } else { a.sk * 4 },
        panel: t.pan.stride() as usize,
        group: t.pan.group(),
        ldo: out.ldo * 4,
        init,
        epi: tile_epi,
        // a whole vector at either width (the ymm tile clamps to 8)
        last_lanes: 16,
        // not measured to pay on the products (tiny_transformer: unchanged)
        prefetch: false,
        indexed: None,
    };
    let bias_row = if out.bias.is_some() { 4 } else { epi.addend.map_or(0, |ad| ad.sm * 4) };
    super::gemm_wide::plan(k, tile, rows, bias_row)
}

/// The pointers of the assembled tile at rows `m0..`, panels `nb..` (what
/// `emit_tile` addresses for the same outputs).
#[allow(clippy::too_many_arguments)]
fn tile_ptrs(
    k: &mut Kernel,
    t: &Tiles,
    a: AView,
    a_off: Value,
    panel: Value,
    out: OutView,
    o_off: Value,
    epi: StoreEpi,
    m0: Value,
    nb: Value,
) -> super::gemm_wide::TilePtrs {
    let l = k.lanes();
    let abase = if t.packed {
        let mo = k.b.ins().imul_imm_s(m0, t.kk as i64);
        k.addr(a.ptr, mo, 4)
    } else {
        let mo = k.b.ins().imul_imm_s(m0, a.sm as i64);
        let off = k.b.ins().iadd(mo, a_off);
        k.addr(a.ptr, off, 4)
    };
    let pb = t.pan.at_dyn(k, nb);
    let col = k.b.ins().imul_imm_s(nb, l as i64);
    let [out, bias, residual] = store_ptrs(k, (out, o_off), epi, m0, col);
    super::gemm_wide::TilePtrs { a: abase, b: k.b.ins().iadd(panel, pb), out, bias, residual }
}

/// The assembled tiles' `out`, `bias` (the row bias at row `m`, or the
/// addend at (`m`, `col`), or 0) and `residual` (or 0) arguments for the
/// outputs from row `m`, column `col` (I64) of the product stored at
/// `out` + `o_off`.
fn store_ptrs(k: &mut Kernel, (out, o_off): (OutView, Value), epi: StoreEpi, m: Value, col: Value) -> [Value; 3] {
    let row = k.b.ins().imul_imm_s(m, out.ldo as i64);
    let e = k.b.ins().iadd(row, col);
    let e = k.b.ins().iadd(e, o_off);
    let bias = match (out.bias, epi.addend) {
        (Some(bp), _) => k.addr(bp, m, 4),
        (None, Some(ad)) => {
            let ae = k.b.ins().imul_imm_s(m, ad.sm as i64);
            let ae = if ad.sn == 0 { ae } else { k.b.ins().iadd(ae, col) };
            k.addr(ad.ptr, ae, 4)
        }
        (None, None) => k.ic(0),
    };
    let residual = match epi.residual {
        Some(rb) => k.addr(rb, e, 4),
        None => k.ic(0),
    };
    [k.addr(out.ptr, e, 4), bias, residual]
}

/// Lowers `Gemm`, `MatMul` and their fused forms (f32 only).
pub fn lower(k: &mut Kernel) -> LResult {
    for i in 0..k.node.inputs.len() {
        if k.in_dtype(i) != DType::F32 {
            return Err(format!("only f32 is supported, got {} for input {i}", k.in_dtype(i)));
        }
    }
    match k.node.op.clone() {
        Op::Gemm(gm) => lower_gemm(k, &gm, Epilogue::default()),
        Op::GemmFused(gm, e) => lower_gemm(k, &gm, e),
        Op::MatMul(_) => lower_matmul(k, None),
        Op::MatMulFused(_, e) => lower_matmul(k, Some(e)),
        _ => Err("not a matrix product".into()),
    }
}

/// The rows this kernel computes: `mm` rows (tile height `rm`) split into
/// tasks at multiples of [`SPLIT_ROWS`], each row costing `row_cost`.
fn split_rows(k: &mut Kernel, mm: usize, rm: usize, row_cost: usize) -> LResult<Rows> {
    let (lo, hi) = k.parallel_range(mm, SPLIT_ROWS.min(rm), row_cost as u64)?;
    Ok(if k.split.is_some() { Rows::Range(lo, hi) } else { Rows::All })
}

/// Gemm and GemmFused: `act(alpha·A·B + beta·C + residual)`.
fn lower_gemm(k: &mut Kernel, gm: &kerf_ir::op::Gemm, e: Epilogue) -> LResult {
    let (ash, bsh) = (k.in_shape(0).to_vec(), k.in_shape(1).to_vec());
    let (mm, kk) = if gm.trans_a { (ash[1], ash[0]) } else { (ash[0], ash[1]) };
    let n = if gm.trans_b { bsh[0] } else { bsh[1] };
    gemm_shaped(k, gm, e, (mm, kk, n))
}

/// A 1x1 conv (or ConvFused, epilogue `e`) of `[N, C, 1, 1]` by constant or
/// run-time weights `[M, C, 1, 1]` (+ bias `[M]`) into `[N, M, 1, 1]`: in
/// row-major order that is exactly `Gemm(x[N, C], W[M, C]ᵀ) + b`, the
/// conv's inputs in Gemm's order (a residual fourth). The conv engine
/// would spend a 4-pixel panel on the one pixel (SE blocks after a global
/// pool, a classifier as a conv: 3–9 GFLOP/s); the MatMul engine runs the
/// product as a matrix-vector tile.
pub fn pointwise_on_one_pixel(
    k: &mut Kernel,
    layer: kerf_ir::op::Layer,
    e: Epilogue,
    (n, c, m): (usize, usize, usize),
) -> LResult {
    let one = kerf_ir::F32::new(1.0);
    let gm = kerf_ir::op::Gemm { alpha: one, beta: one, trans_a: false, trans_b: true, layer };
    gemm_shaped(k, &gm, e, (n, c, m))
}

/// [`lower_gemm`] on the product's `(rows, K, columns)`, whatever the
/// operands' ranks.
fn gemm_shaped(k: &mut Kernel, gm: &kerf_ir::op::Gemm, e: Epilogue, (mm, kk, n): (usize, usize, usize)) -> LResult {
    let l = k.lanes();
    let (rm, _) = tile_shape(mm, n.div_ceil(l));
    let a = k.input(0);
    let av = AView { ptr: a, sm: if gm.trans_a { 1 } else { kk }, sk: if gm.trans_a { mm } else { 1 }, ro: false };
    let (sk, sn) = if gm.trans_b { (1, kk) } else { (n, 1) };
    let alpha = gm.alpha.get();
    let b_const = k.const_f32(1);
    let pan = b_layout(k, kk);
    let beta = gm.beta.get();
    let addend = if k.node.inputs.len() > 2 && beta != 0.0 {
        let cs = bcast_strides(k.in_shape(2), &[mm, n]);
        let (ptr, scale) = match k.const_f32(2) {
            Some(c) => {
                let v: Vec<f32> = c.iter().map(|x| x * beta).collect();
                (k.blob_f32(&v), 1.0)
            }
            None => (k.input(2), beta),
        };
        Some(Addend { ptr, sm: cs[0], sn: cs[1], scale })
    } else {
        None
    };
    let epi = StoreEpi {
        scale: (b_const.is_none() && alpha != 1.0).then_some(alpha),
        addend,
        residual: if e.residual { Some(k.input(3)) } else { None },
        act: Act::of(e.act)?,
    };
    let sparse = b_const.as_ref().and_then(|bv| sparse_b(k, bv, (kk, n), (sk, sn), alpha, av, epi));
    let by_cols = cols::wants(k, mm, n) || (sparse.is_some() && cols::wants_sparse(n));
    let (rows, chunks) = if by_cols {
        (Rows::All, Some(cols::split(k, n, 2 * mm * kk)?))
    } else {
        (split_rows(k, mm, rm, 2 * kk * n)?, None)
    };
    let panel = match (&b_const, sparse) {
        (_, Some((_, blob))) => blob,
        (Some(bv), None) => {
            let p = pack_b(bv, n, sk, sn, pan, alpha);
            k.blob_f32(&p)
        }
        (None, None) => {
            // every task packs all of B into its own scratch
            let s = k.task_scratch(pan.bytes(1, n.div_ceil(l)));
            let bp = k.input(1);
            let z = k.ic(0);
            pack_runtime(k, bp, z, n, sk, sn, pan, s);
            s
        }
    };
    let out = k.output(0);
    let z = k.ic(0);
    let ov = OutView { ptr: out, ldo: n, bias: None };
    let ro_b = b_const.is_some();
    let sparse = sparse.map(|(sp, _)| sp);
    let packed = sparse.is_none() && wants_packed_a(k, mm, n);
    let t = Tiles { mm, n, kk, pan, packed, rows, epi, sparse };
    if let Some(range) = chunks {
        // fewer rows than a row block, or block-sparse: A is never packed
        cols::run(k, &t, (av, z), (panel, ro_b), (ov, z), range);
    } else if packed {
        let ap = k.scratch(mm * kk * 4);
        let ap = pack_a_fenced(k, av, z, mm, kk, rows, ap);
        gemm_tiles(k, &t, AView { ptr: ap, sm: kk, sk: 1, ro: false }, z, (panel, ro_b), ov, z);
    } else {
        gemm_tiles(k, &t, av, z, (panel, ro_b), ov, z);
    }
    Ok(())
}

/// A product by constant weights for kernels other than the matrix-product
/// ops (the pointwise conv with the channels in the lanes,
/// [`super::conv_lanes`]): per batch `b < batches`,
/// `out[m·n + j] = act(Σ_c A_b[m, c] · w[j·kk + c] + bias[j])` for the rows
/// `m` this call computes, then `after(k, b, lo, hi)` on them (`lo`/`hi`
/// I64 row bounds; a task's range when the kernel is split). `A_b` is `a`
/// moved by `b · a_batch` elements; `out` is one batch's `[mm, n]` buffer,
/// reused.
pub(super) struct ByWeights<'a> {
    pub mm: usize,
    pub kk: usize,
    pub n: usize,
    /// `[n, kk]`, row-major (a conv's `[M, C]`).
    pub w: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub act: Act,
    pub batches: usize,
    pub a: AView,
    pub a_batch: usize,
}

pub(super) fn by_weights(
    k: &mut Kernel,
    p: &ByWeights,
    out: Value,
    after: &mut dyn FnMut(&mut Kernel, Value, Value, Value),
) -> LResult {
    let (mm, kk, n) = (p.mm, p.kk, p.n);
    let (rm, _) = tile_shape(mm, n.div_ceil(k.lanes()));
    let rows = split_rows(k, mm, rm, 2 * kk * n * p.batches)?;
    let pan = b_layout(k, kk);
    let addend = p.bias.map(|b| Addend { ptr: k.blob_f32(b), sm: 0, sn: 1, scale: 1.0 });
    let epi = StoreEpi { scale: None, addend, residual: None, act: p.act };
    let sparse = sparse_b(k, p.w, (kk, n), (1, kk), 1.0, p.a, epi);
    let panel = match sparse {
        Some((_, blob)) => blob,
        None => {
            let packed = pack_b(p.w, n, 1, kk, pan, 1.0);
            k.blob_f32(&packed)
        }
    };
    let sparse = sparse.map(|(sp, _)| sp);
    let packed = sparse.is_none() && wants_packed_a(k, mm, n);
    let t = Tiles { mm, n, kk, pan, packed, rows, epi, sparse };
    let packed_a = packed.then(|| k.scratch(mm * kk * 4));
    let (lo, hi) = match rows {
        Rows::All => (k.ic(0), k.ic(mm as i64)),
        Rows::Range(lo, hi) => (lo, hi),
    };
    let a = p.a;
    k.for_n(0, p.batches as i64, 1, |k, b| {
        let ao = k.b.ins().imul_imm_s(b, p.a_batch as i64);
        let z = k.ic(0);
        let ov = OutView { ptr: out, ldo: n, bias: None };
        match packed_a {
            Some(ap) => {
                let ap = pack_a_fenced(k, a, ao, mm, kk, rows, ap);
                gemm_tiles(k, &t, AView { ptr: ap, sm: kk, sk: 1, ro: false }, ao, (panel, true), ov, z);
            }
            None => gemm_tiles(k, &t, a, ao, (panel, true), ov, z),
        }
        after(k, b, lo, hi);
    });
    Ok(())
}

/// MatMul (batched, broadcast) and MatMulFused:
/// `act(A·B + bias + residual)`.
fn lower_matmul(k: &mut Kernel, fused: Option<Epilogue>) -> LResult {
    let l = k.lanes();
    let (a0, b0) = (k.in_shape(0).to_vec(), k.in_shape(1).to_vec());
    let ash = if a0.len() == 1 { vec![1, a0[0]] } else { a0.clone() };
    let bsh = if b0.len() == 1 { vec![b0[0], 1] } else { b0.clone() };
    let (mm, kk, n) = (ash[ash.len() - 2], ash[ash.len() - 1], bsh[bsh.len() - 1]);
    let batch = kerf_ir::infer::broadcast(&ash[..ash.len() - 2], &bsh[..bsh.len() - 2])?;
    let nb_total: usize = batch.iter().product();
    let (rm, _) = tile_shape(mm, n.div_ceil(l));
    let rows = split_rows(k, mm, rm, 2 * kk * n * nb_total)?;
    let a_bs: Vec<usize> = bcast_strides(&ash[..ash.len() - 2], &batch).iter().map(|s| s * mm * kk).collect();
    let b_bs: Vec<usize> = bcast_strides(&bsh[..bsh.len() - 2], &batch).iter().map(|s| s * kk * n).collect();
    let epi = match fused {
        None => StoreEpi::NONE,
        Some(e) => StoreEpi {
            scale: None,
            // one bias value per column, for every row and batch
            addend: Some(Addend { ptr: k.input(2), sm: 0, sn: 1, scale: 1.0 }),
            residual: if e.residual { Some(k.input(3)) } else { None },
            act: Act::of(e.act)?,
        },
    };
    let a = k.input(0);
    let av = AView { ptr: a, sm: kk, sk: 1, ro: false };
    let out = k.output(0);
    let pan = b_layout(k, kk);
    let panel_elems = pan.bytes(1, n.div_ceil(l)) / 4;
    // one constant B for every batch: its block-sparse form, if it has one
    let one_b = bsh[..bsh.len() - 2].iter().product::<usize>() == 1;
    let b_const = k.const_f32(1);
    let sparse = match &b_const {
        Some(bv) if one_b => sparse_b(k, bv, (kk, n), (n, 1), 1.0, av, epi),
        _ => None,
    };
    let packed = sparse.is_none() && wants_packed_a(k, mm, n);
    let t = Tiles { mm, n, kk, pan, packed, rows, epi, sparse: sparse.map(|(sp, _)| sp) };
    // One batch's A, repacked into row blocks (reused across batches; the
    // tasks pack disjoint rows).
    let packed_a = if packed { Some(k.scratch(mm * kk * 4)) } else { None };
    let product = move |k: &mut Kernel, ao: Value, panel: (Value, bool), oo: Value| {
        let ov = OutView { ptr: out, ldo: n, bias: None };
        match packed_a {
            Some(ap) => {
                let ap = pack_a_fenced(k, av, ao, mm, kk, rows, ap);
                let pv = AView { ptr: ap, sm: kk, sk: 1, ro: false };
                gemm_tiles(k, &t, pv, ao, panel, ov, oo);
            }
            None => gemm_tiles(k, &t, av, ao, panel, ov, oo),
        }
    };
    match b_const {
        Some(bv) => {
            // One packed panel set per distinct B batch (the one B's
            // block-sparse form: every batch offset is 0).
            let panels = match sparse {
                Some((_, blob)) => blob,
                None => {
                    let nbb: usize = bsh[..bsh.len() - 2].iter().product();
                    let mut all = Vec::with_capacity(nbb * panel_elems);
                    for bi in 0..nbb {
                        all.extend(pack_b(&bv[bi * kk * n..], n, n, 1, pan, 1.0));
                    }
                    k.blob_f32(&all)
                }
            };
            let b_ps: Vec<usize> = b_bs.iter().map(|s| s / (kk * n).max(1) * panel_elems).collect();
            k.nest(&batch, &mut |k, idx| {
                let ao = k.linear(idx, &a_bs);
                let po = k.linear(idx, &b_ps);
                let pp = k.addr(panels, po, 4);
                let bi = k.linear(idx, &kerf_ir::eval::strides(&batch));
                let oo = k.b.ins().imul_imm_s(bi, (mm * n) as i64);
                product(k, ao, (pp, true), oo);
            });
        }
        None => {
            // every task packs each batch's B into its own scratch
            let bp = k.input(1);
            let s = k.task_scratch(panel_elems * 4);
            k.nest(&batch, &mut |k, idx| {
                let ao = k.linear(idx, &a_bs);
                let bo = k.linear(idx, &b_bs);
                pack_runtime(k, bp, bo, n, n, 1, pan, s);
                let bi = k.linear(idx, &kerf_ir::eval::strides(&batch));
                let oo = k.b.ins().imul_imm_s(bi, (mm * n) as i64);
                product(k, ao, (s, false), oo);
            });
        }
    }
    Ok(())
}
