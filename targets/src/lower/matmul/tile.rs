//! The MatMul engine's Cranelift register tile: `rows` rows × `np` panels
//! of one product held in vector accumulators over the whole K loop, then
//! stored once through the store epilogue. What every target without the
//! assembled tiles runs, and what the assembled ones leave over (partial
//! and leftover panels); the parent module decides the tiling.

use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Value};

use super::super::Kernel;
use super::{finish, AView, OutView, StoreEpi, Tiles};

/// What a tile reads and writes: the product's tiling `t`, A (`a` at
/// element offset `a_off`, or the packed row blocks when `t.packed`) and
/// its load flags, B's panels and their load flags, the output at element
/// offset `o_off` and the store's epilogue (the part applied in
/// registers).
pub(super) struct Operands<'a> {
    pub t: &'a Tiles,
    pub a: AView,
    pub a_off: Value,
    pub a_flags: MemFlagsData,
    pub panel: Value,
    pub b_flags: MemFlagsData,
    pub out: OutView,
    pub o_off: Value,
    pub epi: StoreEpi,
}

/// Where one tile's K step reads (I64 values and constant offsets): B's
/// panel bases and, per panel, (base index, byte offset); A's base with
/// element strides between rows (`sr`) and K steps (`sk`).
struct Reads {
    bases: Vec<Value>,
    slots: Vec<(usize, i32)>,
    abase: Value,
    sr: usize,
    sk: usize,
}

/// One tile: rows `m0..m0 + rows`, panels `nb0..nb0 + np`, the last of
/// `width` columns (a whole panel's `l`, or fewer).
pub(super) fn emit(k: &mut Kernel, o: &Operands, m0: Value, (rows, np): (usize, usize), nb0: Value, width: usize) {
    let init = initial(k, o, m0, rows, np);
    let reads = reads(k, o, m0, rows, nb0, np);
    // Unrolled by 2: halves the loop overhead and the accumulator moves
    // the register allocator inserts at the back edge.
    let kk = o.t.kk;
    let even = kk / 2 * 2;
    let mut accs = k.for_acc_n(0, even as i64, 2, &init, |k, kv, accs| {
        let a1 = step(k, o, &reads, (rows, np), kv, 0, accs);
        step(k, o, &reads, (rows, np), kv, 1, &a1)
    });
    if even < kk {
        let kv = k.ic(even as i64);
        accs = step(k, o, &reads, (rows, np), kv, 0, &accs);
    }
    store(k, o, m0, (rows, np), nb0, width, &accs);
}

/// The accumulators' start: each row's bias, or zero.
fn initial(k: &mut Kernel, o: &Operands, m0: Value, rows: usize, np: usize) -> Vec<Value> {
    let vty = k.vty();
    let mut init = Vec::with_capacity(rows * np);
    for r in 0..rows {
        let v = match o.out.bias {
            Some(bp) => {
                let m = k.b.ins().iadd_imm_s(m0, r as i64);
                let p = k.addr(bp, m, 4);
                let x = k.ld_ro(types::F32, p, 0);
                k.widen(vty, x)
            }
            None => k.fsplat(vty, 0.0),
        };
        init.extend(std::iter::repeat_n(v, np));
    }
    init
}

/// The tile's read addresses: panel j's K-step-0 address as a base and a
/// constant offset (single panels share one base; in groups each panel has
/// its own), and one A base pointer per tile, rows being constant offsets
/// folded into the loads (no per-row address arithmetic in the K loop):
/// row r, step k at element offset r·sr + k·sk from it.
fn reads(k: &mut Kernel, o: &Operands, m0: Value, rows: usize, nb0: Value, np: usize) -> Reads {
    let pan = o.t.pan;
    let (bases, slots): (Vec<Value>, Vec<(usize, i32)>) = if pan.group() > 1 {
        let bases = (0..np)
            .map(|j| {
                let c = k.b.ins().iadd_imm_s(nb0, j as i64);
                let off = pan.at_dyn(k, c);
                k.b.ins().iadd(o.panel, off)
            })
            .collect();
        (bases, (0..np).map(|j| (j, 0)).collect())
    } else {
        let off = pan.at_dyn(k, nb0);
        (vec![k.b.ins().iadd(o.panel, off)], (0..np).map(|j| (0, pan.at(j) as i32)).collect())
    };
    let (abase, sr, sk) = if o.t.packed {
        let mo = k.b.ins().imul_imm_s(m0, o.t.kk as i64);
        (k.addr(o.a.ptr, mo, 4), 1, rows)
    } else {
        let mo = k.b.ins().imul_imm_s(m0, o.a.sm as i64);
        let off = k.b.ins().iadd(mo, o.a_off);
        (k.addr(o.a.ptr, off, 4), o.a.sm, o.a.sk)
    };
    Reads { bases, slots, abase, sr, sk }
}

/// One K step (`kv + koff`): B vectors for each panel, a broadcast per
/// row, a multiply-add per accumulator.
fn step(
    k: &mut Kernel,
    o: &Operands,
    rd: &Reads,
    (rows, np): (usize, usize),
    kv: Value,
    koff: usize,
    accs: &[Value],
) -> Vec<Value> {
    let (vty, kstep) = (k.vty(), o.t.pan.kstep());
    let ko = k.b.ins().imul_imm_s(kv, kstep as i64);
    let bps: Vec<Value> = rd.bases.iter().map(|&b| k.b.ins().iadd(b, ko)).collect();
    let bvs: Vec<Value> =
        rd.slots.iter().map(|&(i, off)| k.b.ins().load(vty, o.b_flags, bps[i], off + (koff * kstep) as i32)).collect();
    let ap = k.addr(rd.abase, kv, (rd.sk * 4) as i64);
    let mut next = Vec::with_capacity(rows * np);
    for r in 0..rows {
        let av = k.b.ins().load(types::F32, o.a_flags, ap, ((r * rd.sr + koff * rd.sk) * 4) as i32);
        let av = k.widen(vty, av);
        for j in 0..np {
            next.push(k.fmadd(av, bvs[j], accs[r * np + j]));
        }
    }
    next
}

/// The accumulators through the store epilogue into the output: whole
/// vectors, the last panel's `width` lanes one at a time when it is
/// partial.
fn store(
    k: &mut Kernel,
    o: &Operands,
    m0: Value,
    (rows, np): (usize, usize),
    nb0: Value,
    width: usize,
    accs: &[Value],
) {
    let (l, vty, epi, out) = (k.lanes(), k.vty(), &o.epi, o.out);
    let col = k.b.ins().imul_imm_s(nb0, l as i64);
    for r in 0..rows {
        let m = k.b.ins().iadd_imm_s(m0, r as i64);
        let row = k.b.ins().imul_imm_s(m, out.ldo as i64);
        let e = k.b.ins().iadd(row, col);
        let e = k.b.ins().iadd(e, o.o_off);
        let p = k.addr(out.ptr, e, 4);
        let rp = epi.residual.map(|rb| k.addr(rb, e, 4));
        let ap = epi.addend.map(|ad| {
            let ae = k.b.ins().imul_imm_s(m, ad.sm as i64);
            let ae = if ad.sn == 0 { ae } else { k.b.ins().iadd(ae, col) };
            k.addr(ad.ptr, ae, 4)
        });
        for j in 0..np {
            let acc = accs[r * np + j];
            let w = if j + 1 == np { width } else { l };
            if w == l {
                let y = finish(k, epi, vty, acc, ap, rp, (j * l * 4) as i32);
                k.st(y, p, (j * l * 4) as i32);
            } else {
                for q in 0..w {
                    let x = k.b.ins().extractlane(acc, q as u8);
                    let y = finish(k, epi, types::F32, x, ap, rp, ((j * l + q) * 4) as i32);
                    k.st(y, p, ((j * l + q) * 4) as i32);
                }
            }
        }
    }
}
