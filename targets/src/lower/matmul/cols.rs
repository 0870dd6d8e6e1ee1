//! Products with too few rows for the row split (a classifier's one-row
//! Gemm, 1x1 convs on one pixel) split over columns instead: the tasks
//! take chunks of [`CHUNK`] columns, each running the engine's tiling on
//! its chunk (B panels, output, per-column addend and residual moved to
//! the chunk's first column). An output's arithmetic does not depend on
//! the tile that computes it, so threaded runs are bit-identical to serial
//! ones, and the chunks are the same whatever the thread count.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value};

use super::{gemm_tiles, AView, OutView, Rows, Tiles, SPLIT_ROWS};
use crate::lower::loops::imin;
use crate::lower::{Kernel, LResult};

/// Columns per task unit: a whole number of 16-lane vectors (and of the
/// stored panel groups, so a chunk's panels start a group).
const CHUNK: usize = 64;

/// Whether an `mm × kk · kk × n` product (B its input 1) splits over
/// columns: SIMD panels, fewer rows than two row-split units, at least two
/// chunks, and a constant B (a run-time one is packed whole per task).
pub(super) fn wants(k: &Kernel, mm: usize, n: usize) -> bool {
    k.lanes() == 4 && mm < 2 * SPLIT_ROWS && n >= 2 * CHUNK && k.is_const(1)
}

/// Whether a block-sparse product of `n` columns splits over columns
/// whatever its row count: each task then reads its columns' weights once
/// for all rows (a row split re-reads every weight per task).
pub(super) fn wants_sparse(n: usize) -> bool {
    n >= 2 * CHUNK
}

/// The task's chunk range for a product of `n` columns costing `cost`
/// per column.
pub(super) fn split(k: &mut Kernel, n: usize, cost: usize) -> LResult<(Value, Value)> {
    k.parallel_range(n.div_ceil(CHUNK), 1, (cost * CHUNK) as u64)
}

/// Runs `t` (all its rows) over the column chunks `lo..hi` of
/// [`split`]; the arguments are [`gemm_tiles`]'s.
pub(super) fn run(
    k: &mut Kernel,
    t: &Tiles,
    (a, a_off): (AView, Value),
    (panel, ro): (Value, bool),
    (out, o_off): (OutView, Value),
    (lo, hi): (Value, Value),
) {
    let (full, rest) = (t.n / CHUNK, t.n % CHUNK);
    let l = k.lanes();
    let chunk = |k: &mut Kernel, u: Value, width: usize| {
        let c0 = k.b.ins().imul_imm_s(u, CHUNK as i64);
        let pp = match t.sparse {
            // the chunk's first block
            Some(sp) => k.addr(panel, u, (CHUNK / super::sparse::BLOCK * sp.stride) as i64),
            None => {
                let p0 = k.b.ins().imul_imm_s(u, (CHUNK / l) as i64);
                let pb = t.pan.at_dyn(k, p0);
                k.b.ins().iadd(panel, pb)
            }
        };
        let oo = k.b.ins().iadd(o_off, c0);
        let mut epi = t.epi;
        if let Some(ad) = epi.addend.as_mut().filter(|ad| ad.sn == 1) {
            ad.ptr = k.addr(ad.ptr, c0, 4);
        }
        let sub = Tiles { n: width, epi, rows: Rows::All, ..*t };
        gemm_tiles(k, &sub, a, a_off, (pp, ro), out, oo);
    };
    let cap = k.ic(full as i64);
    let end = imin(k, hi, cap);
    k.for_dyn(lo, end, 1, |k, u| chunk(k, u, CHUNK));
    if rest > 0 {
        let last = k.b.ins().icmp_imm_s(IntCC::Equal, hi, (full + 1) as i64);
        k.if_then(last, |k| {
            let u = k.ic(full as i64);
            chunk(k, u, rest);
        });
    }
}
