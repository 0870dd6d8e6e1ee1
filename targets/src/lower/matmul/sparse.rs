//! Block-sparse products by constant weights: where every block of 16
//! output columns of B skips the same K rows (block-shared N:M,
//! `--prune-nm 2:4/16`, or zeros a training-time tool left in that shape),
//! the tiles run only the kept K steps of each block: per kept step one
//! `u32` offset into A, the block's 16 B values and one A broadcast per
//! row. No zero is multiplied and none is stored. Two forms of the tiles
//! read the same blocks:
//!
//! - the assembled ones ([`crate::ukernel::avx2::GemmTile::indexed`],
//!   AVX2 + FMA): a block is one `zmm` or two `ymm`;
//! - Cranelift's 128-bit ones ([`run_cranelift`]) on every other SIMD
//!   target (AArch64, RISC-V `v`, x86-64 `baseline`): a block is four
//!   `f32x4`, as many accumulators a tile as the target's registers
//!   allow ([`cl_accs`]: rows of one block, or one row of several
//!   blocks), the dense 128-bit tiles' multiply-add and store epilogue
//!   ([`super::finish`]).
//!
//! Contract: for every output, the multiply-add chain runs over the
//! block's kept K rows in increasing order, then the epilogue of the dense
//! tiles; the dense product adds the skipped rows' zero products too, and
//! adding `0·y` leaves a finite non-zero sum as it is, so results equal
//! the dense engine's bit for bit for finite inputs (a zero sum's sign
//! aside). Lists shorter than the layer's longest are padded with steps
//! of zero weights (the same argument). A is read in place (never packed:
//! the offsets are its column offsets). With `zmm`, products of fewer
//! than four rows take four blocks per call (four FMA chains in flight).
//! Only with SIMD and [`crate::isa::Caps::skip_zeros`] (on unless a test
//! compares against the dense engine), where at most [`MAX_KEPT`] of K is
//! kept, and on AVX2 targets where the epilogue is one the assembled
//! tiles apply; elsewhere the dense engine runs the zeros.

use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::super::loops::{mem, ro};
use super::super::{Family, Kernel};
use super::{finish, AView, OutView, StoreEpi};
use crate::ukernel::avx2::{gemm_tile, max_rows, GemmTile, Indexed, Init, INDEXED_STEP};
use crate::ukernel::avx512::{zmm_gemm_tile, zmm_max_rows, INDEXED_BLOCKS};
use crate::ukernel::epi::TileEpi;

/// Output columns per block (one `zmm`, two `ymm`): the block size of
/// block-shared N:M that these kernels skip by (`kerf tune`'s variant).
pub const BLOCK: usize = 16;

/// The most kept K steps, as a fraction of K, at which the block-sparse
/// tiles run instead of the dense ones. Their time follows the kept steps
/// (128 × 384 · 384 × 1536, Zen 4: 1:4 0.33, 2:4 0.65, 5:8 0.81, 3:4 0.99
/// ms against 1.32 dense; 20 × 512 · 512 × 1000 at 7:8 0.157 against
/// 0.182); a one-row product (four blocks a call) breaks even near 7:8
/// (1 × 512 · 512 × 1000: 2:4 0.011, 3:4 0.019, 7:8 0.022 ms, dense 0.023).
pub(super) const MAX_KEPT: f64 = 0.85;

/// A constant B in blocks: each `stride` bytes, `list` bytes of A offsets
/// then `steps` × 64 bytes of B values; the assembled tiles' store
/// epilogue `epi` (no row bias: they start from zero), or `None` for
/// Cranelift's tiles (which apply the product's [`StoreEpi`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sparse {
    pub steps: usize,
    pub list: usize,
    pub stride: usize,
    pub epi: Option<TileEpi>,
}

/// Vector accumulators of a Cranelift tile on this target: whole rows of
/// a block's [`CL_VECS`] vectors, leaving registers for those B vectors,
/// a broadcast and two spare (x86-64: 8, two rows; AArch64 and RISC-V:
/// 24, six rows).
fn cl_accs(k: &Kernel) -> usize {
    (k.caps.vector_registers.saturating_sub(CL_VECS + 3) / CL_VECS).max(1) * CL_VECS
}

/// `f32x4` vectors per block.
const CL_VECS: usize = BLOCK / 4;

/// A constant B's block-sparse form, if it has one worth running: `b` is
/// `kk × n` with element `(k, j)` at `b[k·sk + j·sn]`, times `scale`; the
/// step of A between K columns is `a_step` bytes; the assembled tiles
/// apply `epi` (`None`: Cranelift's). `None` without SIMD or
/// [`crate::isa::Caps::skip_zeros`], with more than [`MAX_KEPT`] of K
/// kept in some block, or with offsets past `u32`.
pub(crate) fn layout(
    k: &Kernel,
    b: &[f32],
    (kk, n): (usize, usize),
    (sk, sn): (usize, usize),
    scale: f32,
    a_step: usize,
    epi: Option<TileEpi>,
) -> Option<(Sparse, Vec<u8>)> {
    if !k.caps.skip_zeros || k.lanes() != 4 || (kk * a_step) > u32::MAX as usize {
        return None;
    }
    let (kept, steps) = kept_rows(b, (kk, n), (sk, sn))?;
    let blocks = kept.len();
    let list = (4 * steps).div_ceil(INDEXED_STEP) * INDEXED_STEP;
    let stride = list + steps * INDEXED_STEP;
    let mut bytes = Vec::with_capacity(blocks * stride);
    for (c, rows) in kept.iter().enumerate() {
        // padding steps: the block's first kept row (or row 0), zero weights
        let pad = rows.first().copied().unwrap_or(0);
        let at = |i: usize| rows.get(i).copied();
        for i in 0..list / 4 {
            let off = if i < steps { (at(i).unwrap_or(pad) * a_step) as u32 } else { 0 };
            bytes.extend(off.to_le_bytes());
        }
        for i in 0..steps {
            for l in 0..BLOCK {
                let j = c * BLOCK + l;
                let v = match at(i) {
                    Some(r) if j < n => scale * b[r * sk + j * sn],
                    _ => 0.0,
                };
                bytes.extend(v.to_le_bytes());
            }
        }
    }
    Some((Sparse { steps, list, stride, epi }, bytes))
}

/// Per block of [`BLOCK`] columns of a `kk × n` B (`b[k·sk + j·sn]`) the
/// K rows it keeps (any non-zero), and the most any block keeps; `None`
/// for an empty B or one with more than [`MAX_KEPT`] of K kept in some
/// block (not worth the block-sparse tiles).
fn kept_rows(b: &[f32], (kk, n): (usize, usize), (sk, sn): (usize, usize)) -> Option<(Vec<Vec<usize>>, usize)> {
    if kk == 0 || n == 0 {
        return None;
    }
    let kept: Vec<Vec<usize>> = (0..n.div_ceil(BLOCK))
        .map(|c| {
            let cols = c * BLOCK..(c * BLOCK + BLOCK).min(n);
            (0..kk).filter(|&r| cols.clone().any(|j| b[r * sk + j * sn] != 0.0)).collect()
        })
        .collect();
    let steps = kept.iter().map(Vec::len).max().unwrap_or(0);
    (steps as f64 <= MAX_KEPT * kk as f64).then_some((kept, steps))
}

/// The kept K steps of a constant B's block-sparse form (`kk × n`,
/// element `(k, j)` at `b[k·sk + j·sn]`; the most any block keeps), if it
/// has one worth running, whatever the target: what a kernel choosing its
/// route by the weights alone asks (a route that depends on no target
/// capability gives the same bits with the block-sparse tiles on and
/// off).
pub(crate) fn kept_steps(b: &[f32], dims: (usize, usize), strides: (usize, usize)) -> Option<usize> {
    kept_rows(b, dims, strides).map(|(_, steps)| steps)
}

/// Where one call of the block-sparse tiles works.
pub(super) struct At {
    /// The product's A (read in place) at this batch: `a.ptr + a_off`.
    pub a: AView,
    pub a_off: Value,
    /// The blocks' blob.
    pub blob: Value,
    pub out: OutView,
    pub o_off: Value,
    /// The store (its addend and residual pointers; the tiles apply
    /// [`Sparse::epi`]).
    pub epi: StoreEpi,
}

/// The block-sparse tiles over every column block of the rows `m0 ..
/// m0 + rows` of an `n`-column product. With `zmm` and fewer than four
/// rows a call takes [`INDEXED_BLOCKS`] blocks (one FMA chain per row and
/// block: four in flight), else one.
pub(super) fn run(k: &mut Kernel, sp: Sparse, n: usize, at: &At, m0: Value, rows: usize) {
    // both forms start from zero: no caller gives a block-sparse product
    // a row bias (`store_ptrs` would pass it where the addend goes)
    debug_assert!(at.out.bias.is_none(), "a row bias on the block-sparse tiles");
    let Some(epi) = sp.epi else {
        return run_cranelift(k, sp, n, at, m0, rows);
    };
    let zmm = k.caps.avx512;
    let step = if zmm { zmm_max_rows() } else { max_rows(2) };
    let per_call = if zmm && rows < 4 { INDEXED_BLOCKS } else { 1 };
    let tile = |r: usize, blocks: usize, lanes: usize| {
        // `ymm`: a block's two vectors, or one for a last block of at most
        // 8 columns; `zmm`: one per block (`blocks` of them)
        let vecs = if zmm { blocks } else { 1 + usize::from(lanes > 8) };
        let last = if zmm { lanes } else { lanes - 8 * (vecs - 1) };
        let t = GemmTile {
            rows: r,
            vecs,
            a_row: at.a.sm * 4,
            a_step: 0,
            panel: 0,
            group: if zmm { 4 } else { 2 },
            ldo: at.out.ldo * 4,
            init: Init::Zero,
            epi,
            last_lanes: last,
            prefetch: false,
            indexed: Some(Indexed { list: sp.list, blocks, stride: sp.stride }),
        };
        let code = if zmm { zmm_gemm_tile(&t) } else { gemm_tile(&t) };
        code.unwrap_or_else(|e| unreachable!("block-sparse tile {t:?}: {e}"))
    };
    let family = if zmm { Family::Avx512 } else { Family::Avx2 };
    let sref = k.ukernel_sig(6);
    let calls = BlockCalls::new(n, per_call);
    for r0 in (0..rows).step_by(step) {
        let h = step.min(rows - r0);
        let call = |k: &mut Kernel, c: Value, code: Value| {
            let p = ptrs(k, sp, at, m0, r0, c);
            let steps = k.ic(sp.steps as i64);
            k.b.ins().call_indirect(sref, code, &[p[0], p[1], p[2], p[3], p[4], steps]);
        };
        if calls.whole > 0 {
            let code = k.code(family, tile(h, per_call, BLOCK));
            k.for_n(0, (calls.whole * per_call) as i64, per_call as i64, |k, c| call(k, c, code));
        }
        if calls.rest > 0 {
            let code = k.code(family, tile(h, calls.rest, calls.last_cols));
            let c = k.ic((calls.whole * per_call) as i64);
            call(k, c, code);
        }
    }
}

/// How the column blocks of an `n`-column product fall into tile calls of
/// `per_call` blocks: `whole` calls of whole blocks, then one call of the
/// `rest` (0..=`per_call`) blocks left, the last of them holding
/// `last_cols` columns.
struct BlockCalls {
    whole: usize,
    rest: usize,
    last_cols: usize,
}

impl BlockCalls {
    fn new(n: usize, per_call: usize) -> BlockCalls {
        let (nb, tail) = (n.div_ceil(BLOCK), n % BLOCK);
        // a partial last block goes into the last call
        let whole = if tail > 0 { (nb - 1) / per_call } else { nb / per_call };
        BlockCalls { whole, rest: nb - whole * per_call, last_cols: if tail > 0 { tail } else { BLOCK } }
    }
}

/// Row `m0 + r0` of the product (I64) and its first A element's address.
fn a_rows(k: &mut Kernel, at: &At, m0: Value, r0: usize) -> (Value, Value) {
    let m = k.b.ins().iadd_imm_s(m0, r0 as i64);
    let mo = k.b.ins().imul_imm_s(m, at.a.sm as i64);
    let ao = k.b.ins().iadd(mo, at.a_off);
    (m, k.addr(at.a.ptr, ao, 4))
}

/// The tile arguments `a, b, out, bias, residual` for rows `m0 + r0 ..`
/// and column blocks from `c` (I64).
fn ptrs(k: &mut Kernel, sp: Sparse, at: &At, m0: Value, r0: usize, c: Value) -> [Value; 5] {
    let (m, a) = a_rows(k, at, m0, r0);
    let b = k.addr(at.blob, c, sp.stride as i64);
    let col = k.b.ins().imul_imm_s(c, BLOCK as i64);
    let [out, bias, residual] = super::store_ptrs(k, (at.out, at.o_off), at.epi, m, col);
    [a, b, out, bias, residual]
}

/// [`run`] on Cranelift's 128-bit tiles of [`cl_accs`] accumulators:
/// as many rows of one block as fit, a last tile of fewer rows taking as
/// many blocks a call as fit; calls of whole blocks, then one holding the
/// partial last block and what is left.
fn run_cranelift(k: &mut Kernel, sp: Sparse, n: usize, at: &At, m0: Value, rows: usize) {
    let accs = cl_accs(k);
    let max_rows = accs / CL_VECS;
    for r0 in (0..rows).step_by(max_rows) {
        let h = max_rows.min(rows - r0);
        let per_call = (accs / (CL_VECS * h)).max(1);
        let calls = BlockCalls::new(n, per_call);
        k.for_n(0, (calls.whole * per_call) as i64, per_call as i64, |k, c| {
            cl_tile(k, sp, at, (m0, r0, h), c, (per_call, BLOCK));
        });
        if calls.rest > 0 {
            let c = k.ic((calls.whole * per_call) as i64);
            cl_tile(k, sp, at, (m0, r0, h), c, (calls.rest, calls.last_cols));
        }
    }
}

/// One Cranelift tile: rows `m0 + r0 ..` (`h` of them) by `blocks` blocks
/// from block `c` (I64), the last holding `last_cols` columns. Per kept
/// step and block: its A offset, its B vectors, per row one broadcast and
/// a multiply-add into each vector's accumulator; then the dense tiles'
/// store ([`finish`]) of each output vector, lane by lane past the
/// product's last column.
fn cl_tile(
    k: &mut Kernel,
    sp: Sparse,
    at: &At,
    (m0, r0, h): (Value, usize, usize),
    c: Value,
    (blocks, last_cols): (usize, usize),
) {
    let vty = k.vty();
    let vecs = |b: usize| if b + 1 == blocks { last_cols.div_ceil(4) } else { CL_VECS };
    let (m, abase) = a_rows(k, at, m0, r0);
    let a_flags = if at.a.ro { ro() } else { mem() };
    let bases: Vec<Value> = (0..blocks)
        .map(|b| {
            let cb = k.b.ins().iadd_imm_s(c, b as i64);
            k.addr(at.blob, cb, sp.stride as i64)
        })
        .collect();
    // accumulators in (row, block, vector) order
    let slots: Vec<(usize, usize, usize)> =
        (0..h).flat_map(|r| (0..blocks).flat_map(move |b| (0..vecs(b)).map(move |j| (r, b, j)))).collect();
    let zero = k.fsplat(vty, 0.0);
    let init = vec![zero; slots.len()];
    let accs = k.for_acc_n(0, sp.steps as i64, 1, &init, |k, i, accs| {
        let mut next = accs.to_vec();
        for (b, &base) in bases.iter().enumerate() {
            let lp = k.addr(base, i, 4);
            let off = k.b.ins().uload32(ro(), lp, 0);
            let vp = k.addr(base, i, (CL_VECS * 16) as i64);
            let bv: Vec<Value> =
                (0..vecs(b)).map(|j| k.b.ins().load(vty, ro(), vp, (sp.list + 16 * j) as i32)).collect();
            let ap = k.b.ins().iadd(abase, off);
            for r in 0..h {
                let a = k.b.ins().load(types::F32, a_flags, ap, (r * at.a.sm * 4) as i32);
                let a = k.widen(vty, a);
                for (s, &(sr, sb, j)) in slots.iter().enumerate() {
                    if (sr, sb) == (r, b) {
                        next[s] = k.fmadd(a, bv[j], next[s]);
                    }
                }
            }
        }
        next
    });
    let col = k.b.ins().imul_imm_s(c, BLOCK as i64);
    for r in 0..h {
        let mr = k.b.ins().iadd_imm_s(m, r as i64);
        let [p, ap, rp] = super::store_ptrs(k, (at.out, at.o_off), at.epi, mr, col);
        let (ap, rp) = (at.epi.addend.map(|_| ap), at.epi.residual.map(|_| rp));
        for (s, &(sr, b, j)) in slots.iter().enumerate() {
            if sr != r {
                continue;
            }
            let first = b * BLOCK + 4 * j;
            let width = if b + 1 == blocks { (last_cols - 4 * j).min(4) } else { 4 };
            if width == 4 {
                let y = finish(k, &at.epi, vty, accs[s], ap, rp, (first * 4) as i32);
                k.st(y, p, (first * 4) as i32);
            } else {
                for q in 0..width {
                    let x = k.b.ins().extractlane(accs[s], q as u8);
                    let off = ((first + q) * 4) as i32;
                    let y = finish(k, &at.epi, types::F32, x, ap, rp, off);
                    k.st(y, p, off);
                }
            }
        }
    }
}
