//! Whole-vector data movement for Winograd's transforms when the four
//! tiles in a vector's lanes are consecutive tiles of one tile row: the
//! input tiles from vector loads of each strip row, the output rows of the
//! four tiles as transposes and vector stores (see the parent module). Only
//! shuffle shapes SSE2 has an instruction for ([`Kernel::shuffle_f32`]),
//! so the baseline x86-64 CPU runs them too.

use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::super::epilogue::{apply_act, Act};
use super::super::Kernel;

/// `[c₁, c₂, c₃, v_j]`: `c` moved down a lane, lane `j` of `v` shifted in
/// (two `shufps`-shaped shuffles: SSE2 has no lane shift across two
/// registers, and a general shuffle would need SSSE3's `pshufb`).
fn shift_in(k: &mut Kernel, c: Value, v: Value, j: u8) -> Value {
    let t = k.shuffle_f32(c, v, [3, 3, 4 + j, 4 + j]);
    k.shuffle_f32(c, t, [1, 2, 4, 6])
}

/// Stores the m×m output tiles `y` (one `f32x4` per position, lane q: the
/// q-th of four consecutive tiles of one row, all inside the output) at
/// `p`, rows `ow` floats apart: each output row of the four tiles is 4m
/// consecutive floats, so it is a transpose (F(4×4)) or an interleave
/// (F(2×2)) and whole-vector stores; with a residual (`rp`), its vectors
/// are added and `act` applied after the transpose (the per-lane path's
/// operations on the same elements).
pub(super) fn store_quad(k: &mut Kernel, y: &[Value], m: usize, ow: usize, (p, rp): (Value, Option<Value>), act: Act) {
    for r in 0..m {
        let row = &y[r * m..(r + 1) * m];
        let vs: Vec<Value> = if m == 4 {
            k.transpose4([row[0], row[1], row[2], row[3]]).to_vec()
        } else {
            vec![k.shuffle_f32(row[0], row[1], [0, 4, 1, 5]), k.shuffle_f32(row[0], row[1], [2, 6, 3, 7])]
        };
        for (q, mut v) in vs.into_iter().enumerate() {
            let off = ((r * ow + 4 * q) * 4) as i32;
            if let Some(rp) = rp {
                let x = k.ld(types::F32X4, rp, off);
                v = k.b.ins().fadd(v, x);
                v = apply_act(k, types::F32X4, act, v);
            }
            k.st(v, p, off);
        }
    }
}

/// The n×n input tiles of four consecutive tiles of one tile row (lane q:
/// the tile at `p + q·m` floats), one `f32x4` per position, from whole
/// vector loads of each strip row instead of a load per lane: F(4×4)
/// transposes four vectors and shifts in a fifth for columns 4 and 5;
/// F(2×2) takes even and odd lanes of two and shifts in a third. Reads up
/// to two floats past the last tile's window (the strip has that slack).
pub(super) fn quad_rows(k: &mut Kernel, p: Value, m: usize, sw: usize) -> Vec<Value> {
    let n = m + 2;
    let mut d = vec![p; n * n];
    for i in 0..n {
        let at = |j: usize| ((i * sw + 4 * j) * 4) as i32;
        let v: Vec<Value> = (0..if m == 4 { 5 } else { 3 }).map(|j| k.ld(types::F32X4, p, at(j))).collect();
        let cols = if m == 4 {
            let [c0, c1, c2, c3] = k.transpose4([v[0], v[1], v[2], v[3]]);
            let c4 = shift_in(k, c0, v[4], 0);
            let c5 = shift_in(k, c1, v[4], 1);
            vec![c0, c1, c2, c3, c4, c5]
        } else {
            let c0 = k.shuffle_f32(v[0], v[1], [0, 2, 4, 6]);
            let c1 = k.shuffle_f32(v[0], v[1], [1, 3, 5, 7]);
            let c2 = shift_in(k, c0, v[2], 0);
            let c3 = shift_in(k, c1, v[2], 1);
            vec![c0, c1, c2, c3]
        };
        d[i * n..(i + 1) * n].copy_from_slice(&cols);
    }
    d
}
