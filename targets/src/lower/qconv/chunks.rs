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
use super::tiles::Assembled;
use super::{by_unit, call_fused, epilogue, pack_b, row_blocks, tile, tile_sums, unit_input, Dims, Ptrs, Unit};

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
/// units before it rather than running alone: exactly so where a task
/// starts at an image's first unit, as one thread's single task does;
/// chunks step from the task's first unit and may span images).
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
            k.for_dyn(c, end, 1, |k, at| {
                let u = unit(k, at);
                r = r.clone().and(unit_tile(k, d, act, p, (&u, at), (c, end), (a_blk, m0, rows), tail));
            });
            r
        }));
    });
    result
}

/// Unit `u` (item `at` of the chunk `c..end`) on the row block `(a_blk,
/// m0, rows)`: its own tile, or where the target has the riding tail
/// (`ukernel::avx512::qdot_tile_tail`), an image's last whole unit and
/// the short last unit after it in the chunk in one call (which that
/// last unit then skips).
#[allow(clippy::too_many_arguments)]
fn unit_tile(
    k: &mut Kernel,
    d: &Dims,
    act: Act,
    p: &Ptrs,
    (u, at): (&Unit, Value),
    (c, end): (Value, Value),
    (a_blk, m0, rows): (Value, Value, usize),
    tail: usize,
) -> LResult {
    let alone = |k: &mut Kernel| by_unit(k, d, u, tail, |k, valid| tile(k, d, act, p, u, a_blk, m0, rows, valid));
    let Some((code, t)) = p.tiles.as_ref().and_then(|t| Some((t.ride[usize::from(rows != d.rows)]?, t))) else {
        return alone(k);
    };
    let next = k.b.ins().iadd_imm_s(at, 1);
    let held = k.b.ins().icmp(IntCC::SignedLessThan, next, end);
    let before = k.b.ins().icmp_imm_s(IntCC::Equal, u.jp, (d.units - 2) as i64);
    let both = k.b.ins().band(held, before);
    let after_first = k.b.ins().icmp(IntCC::SignedGreaterThan, at, c);
    let last = k.b.ins().icmp_imm_s(IntCC::Equal, u.jp, (d.units - 1) as i64);
    let done = k.b.ins().band(after_first, last);
    let taken = k.b.ins().bor(both, done);
    let mut r: LResult = Ok(());
    k.if_then(both, |k| {
        let unit_bytes = (d.steps * d.step_bytes()) as i64;
        let tail_unit = Unit { jp: k.b.ins().iadd_imm_s(u.jp, 1), packed: k.add_c(u.packed, unit_bytes), ..*u };
        r = ride_along(k, d, act, p, (u, &tail_unit), (code, t), (a_blk, m0, rows), tail);
    });
    let single = k.b.ins().icmp_imm_s(IntCC::Equal, taken, 0);
    k.if_then(single, |k| r = r.clone().and(alone(k)));
    r
}

/// Unit `u` (whole) and the image's last unit `t` (`tail` pixels, its B
/// compacted right after `u`'s) on the row block `(a_blk, m0, rows)`: the
/// fused tile with the tail riding along (`ukernel::avx512::qdot_tile_tail`)
/// stores `u`'s results and leaves `t`'s sums in [`Assembled::sums`]; then
/// `t`'s Cranelift epilogue.
#[allow(clippy::too_many_arguments)]
fn ride_along(
    k: &mut Kernel,
    d: &Dims,
    act: Act,
    p: &Ptrs,
    (u, t): (&Unit, &Unit),
    (code, tiles): (Value, &Assembled),
    (a_blk, m0, rows): (Value, Value, usize),
    tail: usize,
) -> LResult {
    let table = p.table.ok_or("internal: a riding tail without the tile's epilogue table")?;
    let sig = k.ukernel_sig(7);
    call_fused(k, d, p, u, (code, sig), table, (a_blk, m0), &[tiles.sums]);
    let sums = tile_sums(k, d, p, tiles, m0, rows);
    epilogue(k, d, act, p, t, (m0, rows), tail, &sums)
}
