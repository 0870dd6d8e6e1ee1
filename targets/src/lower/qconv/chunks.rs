//! Chunks of units sharing each row block's weights: where a one-group
//! integer conv's weights outgrow the L2 cache, a task's units run in
//! chunks of up to [`span`] consecutive units, each chunk's B packed side
//! by side, then every row block over all of the chunk's units in turn, so
//! a block's weights are read from memory once per chunk instead of once
//! per unit (loop interchange: row blocks outside, units inside).
//!
//! Each unit still runs the tile it runs alone (the whole units' fused
//! tile, the last unit's tail products or sums-only tile) on its own
//! packed B, so the results are the same bits; the task split is the
//! same units, so threaded runs still match serial ones.
//!
//! Measured (Zen 4, 1 thread, int8, in resnet18 where the other layers'
//! weights evict these from the caches): its 512-channel 3x3 convs
//! (2.36 MB of weights, four units of 16 pixels, the last of 1) 0.602 /
//! 0.613 ms one unit at a time, 0.585 / 0.589 ms in chunks of four.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value};

use super::super::epilogue::Act;
use super::super::{Kernel, LResult};
use super::{pack_b, row_blocks, tile, unit_input, Dims, Ptrs, Unit};

/// Weights (bytes of A per group) past which units run in chunks: about
/// half of the smallest L2 the x86-64 targets have (512 KiB on Zen 2/3).
const CHUNK_WEIGHTS: usize = 256 << 10;

/// Most bytes of packed B one chunk holds (per task: the arena holds it
/// once per possible task): the chunk's B and a row block's weights stay
/// within a 512 KiB L2.
const CHUNK_B_BYTES: usize = 320 << 10;

/// Units per chunk for `d` (1: no chunks): one group, weights past
/// [`CHUNK_WEIGHTS`], as many units as [`CHUNK_B_BYTES`] holds, evened
/// out over the image's units (so a plane's short last unit joins the
/// units before it rather than running alone).
pub(super) fn span(d: &Dims) -> usize {
    let a_bytes = d.a_steps() * d.a_step_bytes(d.rows) * d.mg.div_ceil(d.rows);
    let unit_b = d.steps * d.step_bytes();
    if d.groups != 1 || d.paired || d.units < 2 || a_bytes <= CHUNK_WEIGHTS || unit_b == 0 {
        return 1;
    }
    let most = (CHUNK_B_BYTES / unit_b).clamp(1, d.units);
    let chunks = d.units.div_ceil(most);
    d.units.div_ceil(chunks)
}

/// Work items (units) `lo..hi` of a one-group conv in chunks of `span`
/// units: each chunk's units packed (unit `i` of the chunk at
/// `bbuf + i · unit bytes`), then per row block every unit's tile; an
/// image's last unit has `tail` pixels.
pub(super) fn run(
    k: &mut Kernel,
    d: &Dims,
    act: Act,
    p: &Ptrs,
    (lo, hi): (Value, Value),
    span: usize,
    tail: usize,
) -> LResult {
    let unit_bytes = (d.steps * d.step_bytes()) as i64;
    let mut result: LResult = Ok(());
    k.for_dyn(lo, hi, span as i64, |k, c| {
        let end = k.b.ins().iadd_imm_s(c, span as i64);
        let end = k.b.ins().smin(end, hi);
        let unit = |k: &mut Kernel, u: Value| {
            let jp = k.b.ins().urem_imm_u(u, d.units as i64);
            let ni = k.b.ins().udiv_imm_u(u, d.units as i64);
            let gi = k.ic(0);
            let i = k.b.ins().isub(u, c);
            let packed = k.addr(p.bbuf, i, unit_bytes);
            Unit { jp, gi, ni, packed }
        };
        k.for_dyn(c, end, 1, |k, u| {
            let u = unit(k, u);
            let xb = unit_input(k, d, p, &u);
            let packed = by_unit(k, d, &u, tail, |k, valid| {
                pack_b(k, d, p, &u, xb, valid, u.packed);
                Ok(())
            });
            result = result.clone().and(packed);
        });
        let first = unit(k, c);
        result = result.clone().and(row_blocks(k, d, p, &first, |k, a_blk, m0, rows| {
            let mut r: LResult = Ok(());
            k.for_dyn(c, end, 1, |k, u| {
                let u = unit(k, u);
                r = r.clone().and(by_unit(k, d, &u, tail, |k, valid| tile(k, d, act, p, &u, a_blk, m0, rows, valid)));
            });
            r
        }));
    });
    result
}

/// `body(k, valid)` for unit `u`'s pixels: `d.px`, or `tail` in an
/// image's last unit (a branch where the two differ).
fn by_unit(
    k: &mut Kernel,
    d: &Dims,
    u: &Unit,
    tail: usize,
    mut body: impl FnMut(&mut Kernel, usize) -> LResult,
) -> LResult {
    if tail == d.px {
        return body(k, d.px);
    }
    let last = k.b.ins().icmp_imm_s(IntCC::Equal, u.jp, (d.units - 1) as i64);
    let not_last = k.b.ins().icmp_imm_s(IntCC::NotEqual, u.jp, (d.units - 1) as i64);
    let mut r = Ok(());
    k.if_then(last, |k| r = body(k, tail));
    k.if_then(not_last, |k| r = r.clone().and(body(k, d.px)));
    r
}
