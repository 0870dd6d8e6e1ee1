//! The code one task runs for one block of tile rows (and, with a channel
//! split, a range of output channels): the zero-padded input strip, the
//! input transform into V, the n² products into M and the output
//! transform with the epilogue (steps 2–4 of the parent module).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::super::epilogue::{apply_act, Epilogue};
use super::super::gemm::{run_block, Block, Gemm};
use super::super::loops::imin;
use super::super::Kernel;
use super::plan::Plan;
use super::quads::{quad_rows, store_quad};
use super::{sandwich, Transform};

/// The pointers a block's code reads and writes (I64 values).
pub(super) struct Bufs {
    /// The input image and the output.
    pub x: Value,
    pub out: Value,
    /// The packed transformed weights U, the GEMM's zero bias and the
    /// conv's bias (a blob, an input, or none).
    pub u: Value,
    pub zeros: Value,
    pub bias: Option<Value>,
    /// The task's strip, V and M buffers, and the dummy slot the stores of
    /// tiles past the output's edge go to.
    pub strip: Value,
    pub v: Value,
    pub m: Value,
    pub dummy: Option<Value>,
}

/// What every piece of a block's code reads: the plan, the transform,
/// the pointers and the fused epilogue.
pub(super) struct Code<'a> {
    pub p: &'a Plan,
    pub t: &'a Transform,
    pub b: &'a Bufs,
    pub epi: Epilogue,
}

/// Where the block is (I64 values): image `bn`, first tile row `ty0`,
/// first tile `t0` (of the image's tiles), the block's last tile `last`,
/// the image's first output element `ob`.
struct At {
    bn: Value,
    ty0: Value,
    t0: Value,
    last: Value,
    ob: Value,
}

/// Block `bi` (image-major over the blocks of every image), output
/// channels `c_lo..c_hi`.
pub(super) fn emit(k: &mut Kernel, c: &Code, bi: Value, ch: (Value, Value)) {
    let (p, b) = (c.p, c.b);
    let bn = k.b.ins().udiv_imm_s(bi, p.nblk as i64);
    let blk = k.b.ins().urem_imm_s(bi, p.nblk as i64);
    let ty0 = k.b.ins().imul_imm_s(blk, p.rows as i64);
    let t0 = k.b.ins().imul_imm_s(ty0, p.tw as i64);
    // Lanes past the block are clamped to the block's last tile, not to
    // the plane's: a surplus lane past the block would read outside this
    // block's input strip and store a wrong value into the next block's
    // tile, which another task may already have written (serial order hid
    // it).
    let last = {
        let e = k.b.ins().iadd_imm_s(t0, (p.rows * p.tw) as i64 - 1);
        let end = k.ic(p.tiles as i64 - 1);
        imin(k, e, end)
    };
    let ob = k.b.ins().imul_imm_s(bn, (p.kout * p.oh * p.ow) as i64);
    let at = At { bn, ty0, t0, last, ob };
    fill_strip(k, p, b, &at);
    input_transform(k, c, &at);
    // per chunk of at most `mc` of the channels: M[ξ] = U[ξ] · V[ξ], then
    // the output transform
    let (c_lo, c_hi) = ch;
    k.for_dyn(c_lo, c_hi, p.mc as i64, |k, cs| {
        let ce = k.b.ins().iadd_imm_s(cs, p.mc as i64);
        let ce = imin(k, ce, c_hi);
        // M chunk row r (absolute channel) at m + ξ·mstride + (r − cs)·tb·4
        let shift = k.b.ins().imul_imm_s(cs, -((p.tb * 4) as i64));
        let mbase = k.b.ins().iadd(b.m, shift);
        products(k, p, b, (cs, ce), mbase);
        k.for_dyn(cs, ce, 1, |k, ko| output_transform(k, c, &at, ko, mbase));
    });
}

/// The block's input rows (plus the 2-row halo) copied into the zeroed
/// strip, the padding around them left zero.
fn fill_strip(k: &mut Kernel, p: &Plan, b: &Bufs, at: &At) {
    let pad = b.strip;
    k.for_vec(p.strip, &mut |k, ty, i| {
        let z = k.fsplat(ty, 0.0);
        k.st_at(z, pad, i, 4, 0);
    });
    let xo = k.b.ins().imul_imm_s(at.bn, (p.cin * p.h * p.wd) as i64);
    let xbase = k.addr(b.x, xo, 4);
    let y0 = k.b.ins().imul_imm_s(at.ty0, p.m as i64);
    let y0 = k.b.ins().iadd_imm_s(y0, -(p.ph as i64));
    k.for_n(0, p.sh as i64, 1, |k, r| {
        let y = k.b.ins().iadd(y0, r);
        let ok = k.in_range(y, p.h as i64);
        k.if_then(ok, |k| {
            let srow = k.b.ins().imul_imm_s(y, p.wd as i64);
            let srow = k.addr(xbase, srow, 4);
            let drow = k.b.ins().imul_imm_s(r, p.sw as i64);
            let drow = k.b.ins().iadd_imm_s(drow, p.pw as i64);
            let drow = k.addr(pad, drow, 4);
            k.for_n(0, p.cin as i64, 1, |k, c| {
                let so = k.b.ins().imul_imm_s(c, (p.h * p.wd * 4) as i64);
                let sb = k.b.ins().iadd(srow, so);
                let d_o = k.b.ins().imul_imm_s(c, (p.sh * p.sw * 4) as i64);
                let db = k.b.ins().iadd(drow, d_o);
                k.for_vec(p.wd, &mut |k, ty, j| {
                    let v = k.ld_at(ty, sb, j, 4, 0);
                    k.st_at(v, db, j, 4, 0);
                });
            });
        });
    });
}

/// Tile (row, column) of each lane of panel `qd`, clamped to the block's
/// last tile: clamped lanes recompute (and store) that tile again.
fn lane_tiles(k: &mut Kernel, p: &Plan, at: &At, qd: Value) -> Vec<(Value, Value)> {
    let first = k.b.ins().imul_imm_s(qd, p.l as i64);
    let first = k.b.ins().iadd(first, at.t0);
    (0..p.l)
        .map(|q| {
            let ti = k.b.ins().iadd_imm_s(first, q as i64);
            let ti = imin(k, ti, at.last);
            let ty = k.b.ins().udiv_imm_s(ti, p.tw as i64);
            let tx = k.b.ins().urem_imm_s(ti, p.tw as i64);
            (ty, tx)
        })
        .collect()
}

/// Whether panel `qd`'s four tiles are consecutive tiles of one tile row
/// (none clamped), so that its lanes read one run of the strip
/// ([`quad_rows`]); `None` without 4-lane vectors.
fn quad_in_row(k: &mut Kernel, p: &Plan, at: &At, qd: Value, lanes: &[(Value, Value)]) -> Option<Value> {
    if p.l != 4 {
        return None;
    }
    let first = k.b.ins().imul_imm_s(qd, 4);
    let first = k.b.ins().iadd(first, at.t0);
    let last = k.b.ins().iadd_imm_s(first, 3);
    let unclamped = k.b.ins().icmp(IntCC::SignedLessThanOrEqual, last, at.last);
    let one_row = k.b.ins().icmp_imm_s(IntCC::SignedLessThan, lanes[0].1, p.tw as i64 - 3);
    Some(k.b.ins().band(unclamped, one_row))
}

/// V[ξ] = Bᵀ d B for every channel and tile of the block, in panels of L
/// tiles over the channels, in the GEMM engine's groups (`vpan`).
fn input_transform(k: &mut Kernel, c: &Code, at: &At) {
    let (p, t, b) = (c.p, c.t, c.b);
    let (n, nn, vty) = (p.n, p.nn, k.vty());
    k.for_n(0, p.nq as i64, 1, |k, qd| {
        let lanes = lane_tiles(k, p, at, qd);
        let bases: Vec<Value> = lanes
            .iter()
            .map(|&(ty, tx)| {
                let r = k.b.ins().isub(ty, at.ty0);
                let r = k.b.ins().imul_imm_s(r, (p.m * p.sw) as i64);
                let c = k.b.ins().imul_imm_s(tx, p.m as i64);
                let e = k.b.ins().iadd(r, c);
                k.addr(b.strip, e, 4)
            })
            .collect();
        let vq = p.vpan.at_dyn(k, qd);
        let vq = k.b.ins().iadd(b.v, vq);
        // each channel's n×n tiles, one vector per position (lane q:
        // tile q), transformed into V
        let transform = |k: &mut Kernel, rows_of: &dyn Fn(&mut Kernel, &[Value]) -> Vec<Value>| {
            k.for_n(0, p.cin as i64, 1, |k, ci| {
                let co = k.b.ins().imul_imm_s(ci, (p.sh * p.sw * 4) as i64);
                let ps: Vec<Value> = bases.iter().map(|&base| k.b.ins().iadd(base, co)).collect();
                let d = rows_of(k, &ps);
                let vv = sandwich(k, vty, &t.bt, n, n, &d);
                let dst = k.addr(vq, ci, p.vpan.kstep() as i64);
                for (xi, v) in vv.into_iter().enumerate() {
                    k.st(v, dst, (xi * p.vstride) as i32);
                }
            });
        };
        // a lane at a time (tiles anywhere: across tile rows, clamped)
        let gather = |k: &mut Kernel, ps: &[Value]| {
            let mut d = Vec::with_capacity(nn);
            for i in 0..n {
                for j in 0..n {
                    let off = ((i * p.sw + j) * 4) as i32;
                    let mut v = k.ld(types::F32, ps[0], off);
                    if p.l > 1 {
                        v = k.b.ins().scalar_to_vector(vty, v);
                        for (q, &pq) in ps.iter().enumerate().skip(1) {
                            let s = k.ld(types::F32, pq, off);
                            v = k.b.ins().insertlane(v, s, q as u8);
                        }
                    }
                    d.push(v);
                }
            }
            d
        };
        match quad_in_row(k, p, at, qd, &lanes) {
            Some(in_row) => {
                let across = k.b.ins().bxor_imm_s(in_row, 1);
                k.if_then(in_row, |k| transform(k, &|k, ps| quad_rows(k, ps[0], p.m, p.sw)));
                k.if_then(across, |k| transform(k, &gather));
            }
            None => transform(k, &gather),
        }
    });
}

/// M[ξ] = U[ξ] · V[ξ] for output channels `cs..ce` (rows of the chunk at
/// `mbase`), one GEMM per position ξ.
fn products(k: &mut Kernel, p: &Plan, b: &Bufs, (cs, ce): (Value, Value), mbase: Value) {
    let a_bytes = 4 * p.nn * p.kout * p.cin;
    k.for_n(0, p.nn as i64, 1, |k, xi| {
        let a = k.b.ins().imul_imm_s(xi, (p.kout * p.cin * 4) as i64);
        let a = k.b.ins().iadd(b.u, a);
        let vp = k.b.ins().imul_imm_s(xi, p.vstride as i64);
        let vp = k.b.ins().iadd(b.v, vp);
        let mo = k.b.ins().imul_imm_s(xi, p.mstride as i64);
        let mo = k.b.ins().iadd(mbase, mo);
        let rows = Some((cs, ce));
        let g = Gemm { a, bias: b.zeros, m: p.kout, kk: p.cin, out: mo, ldo: p.tb, epi: Epilogue::NONE, rows, a_bytes };
        let out_off = k.ic(0);
        let blk = Block { b: vp, rows: 1, ppr: p.nq, width: p.tb, pitch: p.tb, out_off, group: p.vpan.group() };
        run_block(k, &g, &blk);
    });
}

/// Output channel `ko`'s tiles of the block: Y = Aᵀ M A plus the bias,
/// then the epilogue, stored to the output (whole vectors for four tiles
/// of one row inside the output, else a lane at a time).
fn output_transform(k: &mut Kernel, c: &Code, at: &At, ko: Value, mbase: Value) {
    let (p, t, b, epi) = (c.p, c.t, c.b, c.epi);
    let (m, vty) = (p.m, k.vty());
    let bv = match b.bias {
        Some(bp) => {
            let s = k.ld_at(types::F32, bp, ko, 4, 0);
            k.widen(vty, s)
        }
        None => k.fsplat(vty, 0.0),
    };
    let mrow = k.addr(mbase, ko, (p.tb * 4) as i64);
    let oplane = k.b.ins().imul_imm_s(ko, (p.oh * p.ow) as i64);
    let oplane = k.b.ins().iadd(oplane, at.ob);
    k.for_n(0, p.nq as i64, 1, |k, qd| {
        let mp = k.addr(mrow, qd, (p.l * 4) as i64);
        let mv: Vec<Value> = (0..p.nn).map(|xi| k.ld(vty, mp, (xi * p.mstride) as i32)).collect();
        let y = sandwich(k, vty, &t.at, m, p.n, &mv);
        let y: Vec<Value> = y.into_iter().map(|v| k.b.ins().fadd(v, bv)).collect();
        // without a residual the activation runs on whole vectors
        let y: Vec<Value> =
            if epi.residual.is_none() { y.into_iter().map(|v| apply_act(k, vty, epi.act, v)).collect() } else { y };
        let lanes = lane_tiles(k, p, at, qd);
        // four tiles of one row inside the output: whole vectors
        let Some(mut fast) = quad_in_row(k, p, at, qd, &lanes) else {
            store_lanes(k, c, &y, &lanes, oplane);
            return;
        };
        let (ty, tx) = lanes[0];
        let r0 = k.b.ins().imul_imm_s(ty, m as i64);
        let c0 = k.b.ins().imul_imm_s(tx, m as i64);
        if p.edge {
            // (signed: a plane narrower than a quad has no quad inside)
            let (ow, oh, mi) = (p.ow as i64, p.oh as i64, m as i64);
            let cols_in = k.b.ins().icmp_imm_s(IntCC::SignedLessThanOrEqual, c0, ow - 4 * mi);
            let rows_in = k.b.ins().icmp_imm_s(IntCC::SignedLessThanOrEqual, r0, oh - mi);
            let inside = k.b.ins().band(cols_in, rows_in);
            fast = k.b.ins().band(fast, inside);
        }
        let slow = k.b.ins().bxor_imm_s(fast, 1);
        k.if_then(fast, |k| {
            let e = k.b.ins().imul_imm_s(r0, p.ow as i64);
            let e = k.b.ins().iadd(e, c0);
            let e = k.b.ins().iadd(e, oplane);
            let po = k.addr(b.out, e, 4);
            let rp = epi.residual.map(|r| k.addr(r, e, 4));
            store_quad(k, &y, m, p.ow, (po, rp), epi.act);
        });
        k.if_then(slow, |k| store_lanes(k, c, &y, &lanes, oplane));
    });
}

/// Stores the m×m tiles `y` a lane at a time, each lane's tile at its
/// (row, column) in the output plane at `oplane`; with a residual, it is
/// added and the activation applied per element. On a plane the tiles do
/// not divide, the stores (and residual reads) past the edge go to the
/// dummy slot.
fn store_lanes(k: &mut Kernel, c: &Code, y: &[Value], lanes: &[(Value, Value)], oplane: Value) {
    let (p, b, epi, m) = (c.p, c.b, c.epi, c.p.m);
    for (q, &(ty, tx)) in lanes.iter().enumerate() {
        let r0 = k.b.ins().imul_imm_s(ty, m as i64);
        let c0 = k.b.ins().imul_imm_s(tx, m as i64);
        let e = k.b.ins().imul_imm_s(r0, p.ow as i64);
        let e = k.b.ins().iadd(e, c0);
        let e = k.b.ins().iadd(e, oplane);
        let po = k.addr(b.out, e, 4);
        let rp = epi.residual.map(|r| k.addr(r, e, 4));
        // per row and column of the tile: inside the output (edge planes)
        let inside = |k: &mut Kernel, base: Value, limit: usize| -> Vec<Option<Value>> {
            (0..m)
                .map(|i| p.edge.then(|| k.b.ins().icmp_imm_s(IntCC::SignedLessThan, base, limit as i64 - i as i64)))
                .collect()
        };
        let rok = inside(k, r0, p.oh);
        let cok = inside(k, c0, p.ow);
        for r in 0..m {
            for col in 0..m {
                let v = y[r * m + col];
                let mut s = if p.l > 1 { k.b.ins().extractlane(v, q as u8) } else { v };
                let off = ((r * p.ow + col) * 4) as i64;
                // outside the output: store (and read the residual) at the
                // dummy slot instead
                let (at, rat) = match (rok[r], cok[col], b.dummy) {
                    (Some(a), Some(bc), Some(dm)) => {
                        let ok = k.b.ins().band(a, bc);
                        let real = k.add_c(po, off);
                        let at = k.b.ins().select(ok, real, dm);
                        let rat = rp.map(|rp| {
                            let real = k.add_c(rp, off);
                            k.b.ins().select(ok, real, dm)
                        });
                        (at, rat)
                    }
                    _ => (k.add_c(po, off), rp.map(|rp| k.add_c(rp, off))),
                };
                if let Some(ra) = rat {
                    let x = k.ld(types::F32, ra, 0);
                    s = k.b.ins().fadd(s, x);
                    s = apply_act(k, types::F32, epi.act, s);
                }
                k.st(s, at, 0);
            }
        }
    }
}
