//! Packing the products' operands: a constant B into panels at compile
//! time ([`pack_b`]), a run-time B into scratch ([`pack_runtime`]), and a
//! run-time A into the tiles' row blocks ([`pack_a_runtime`], behind an
//! optimisation fence: [`pack_a_fenced`]).

use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::super::gemm::Panels;
use super::super::Kernel;
use super::{row_blocks, AView, Rows, MAX_ACC};

/// Packs a constant B (`b[k*sk + n*sn]`, `pan.kk()` × `n`) into panels
/// laid out as `pan`, times `scale` (unused lanes and halves zero).
pub(super) fn pack_b(b: &[f32], n: usize, sk: usize, sn: usize, pan: Panels, scale: f32) -> Vec<f32> {
    let (kk, l) = (pan.kk(), pan.lanes());
    let nb = n.div_ceil(l);
    let mut out = vec![0f32; pan.bytes(1, nb) / 4];
    for p in 0..nb {
        let base = pan.at(p) as usize / 4;
        for k in 0..kk {
            for j in 0..l {
                let col = p * l + j;
                if col < n {
                    out[base + k * pan.kstep() / 4 + j] = scale * b[k * sk + col * sn];
                }
            }
        }
    }
    out
}

/// Packs the rows `rows` of A (`a.ptr[a_off + m*sm + k*sk]`) into `dst` as
/// the row blocks [`gemm_tiles`](super::gemm_tiles) reads with `packed = true`: blocks of
/// `MAX_ACC` rows (the last holds `mm % MAX_ACC`), each `[k][h]` for its
/// height `h`, block of row `m0` starting at element `m0 * kk`.
pub(super) fn pack_a_runtime(k: &mut Kernel, a: AView, a_off: Value, mm: usize, kk: usize, rows: Rows, dst: Value) {
    row_blocks(k, mm, MAX_ACC, rows, &mut |k, m0, h| {
        let so = k.b.ins().imul_imm_s(m0, a.sm as i64);
        let so = k.b.ins().iadd(so, a_off);
        let src = k.addr(a.ptr, so, 4);
        let d0 = k.b.ins().imul_imm_s(m0, kk as i64);
        let d0 = k.addr(dst, d0, 4);
        k.for_n(0, kk as i64, 1, |k, kv| {
            let sp = k.addr(src, kv, (a.sk * 4) as i64);
            let dp = k.addr(d0, kv, (h * 4) as i64);
            for r in 0..h {
                let x = k.ld(types::F32, sp, (r * a.sm * 4) as i32);
                k.st(x, dp, (r * 4) as i32);
            }
        });
    });
}

/// [`pack_a_runtime`] into `dst`, returning `dst` reloaded from a stack
/// slot written *before* the packing stores: the returned pointer is not
/// known to the optimizer until after them, so loads through it (marked
/// movable, see [`gemm_tiles`](super::gemm_tiles)) can never be hoisted above the packing.
pub(super) fn pack_a_fenced(
    k: &mut Kernel,
    a: AView,
    a_off: Value,
    mm: usize,
    kk: usize,
    rows: Rows,
    dst: Value,
) -> Value {
    use cranelift_codegen::ir::{StackSlotData, StackSlotKind};
    let pty = k.b.func.dfg.value_type(dst);
    let slot = k.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 8, 3));
    k.b.ins().stack_store(pty, dst, slot, 0);
    pack_a_runtime(k, a, a_off, mm, kk, rows, dst);
    k.b.ins().stack_load(pty, pty, slot, 0)
}

/// Packs a run-time B (`b[off + k*sk + n*sn]`) into panels laid out as
/// `pan` in scratch.
#[allow(clippy::too_many_arguments)]
pub(super) fn pack_runtime(
    k: &mut Kernel,
    b: Value,
    b_off: Value,
    n: usize,
    sk: usize,
    sn: usize,
    pan: Panels,
    dst: Value,
) {
    let l = k.lanes();
    let kk = pan.kk();
    let full = n / l;
    let tail = n % l;
    let one_panel = |k: &mut Kernel, nb: Value, width: usize| {
        let po = pan.at_dyn(k, nb);
        let pd = k.b.ins().iadd(dst, po);
        k.for_n(0, kk as i64, 1, |k, kv| {
            let dp = k.addr(pd, kv, pan.kstep() as i64);
            let ko = k.b.ins().imul_imm_s(kv, sk as i64);
            let ko = k.b.ins().iadd(ko, b_off);
            let no = k.b.ins().imul_imm_s(nb, (l * sn) as i64);
            let e = k.b.ins().iadd(ko, no);
            let sp = k.addr(b, e, 4);
            for j in 0..l {
                let v = if j < width { k.ld(types::F32, sp, (j * sn * 4) as i32) } else { k.fc(0.0) };
                k.st(v, dp, (j * 4) as i32);
            }
        });
    };
    k.for_n(0, full as i64, 1, |k, nb| one_panel(k, nb, l));
    if tail > 0 {
        let nb = k.ic(full as i64);
        one_panel(k, nb, tail);
    }
}
