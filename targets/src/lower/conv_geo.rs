//! The geometry every 2-D conv kernel shares (direct, packed GEMM,
//! depthwise, small-K, pattern, Winograd's tiling): sizes, strides,
//! padding and dilation read once from the node, the valid tap range of an
//! output position, and the zero-padded input copy.

use cranelift_codegen::ir::{InstBuilder, Value};

use super::loops::{imax, imin};
use super::{Kernel, LResult};

/// Geometry of a 2-D conv (1-D has `h = kh = 1`), shared by every conv
/// kernel (direct, packed GEMM, depthwise, small-K).
#[derive(Clone, Copy, Debug)]
pub(super) struct Geo {
    pub(super) n: usize,
    pub(super) c: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) oc: usize,
    pub(super) oh: usize,
    pub(super) ow: usize,
    pub(super) kh: usize,
    pub(super) kw: usize,
    pub(super) sh: usize,
    pub(super) sw: usize,
    pub(super) dh: usize,
    pub(super) dw: usize,
    pub(super) ph: usize,
    pub(super) pw: usize,
    pub(super) group: usize,
}

pub(super) fn geometry(k: &Kernel, window: &kerf_ir::op::Window, group: usize) -> LResult<Geo> {
    let x = k.in_shape(0);
    let o = k.out_shape(0);
    let r = window.rank();
    match r {
        1 => Ok(Geo {
            n: x[0],
            c: x[1],
            h: 1,
            w: x[2],
            oc: o[1],
            oh: 1,
            ow: o[2],
            kh: 1,
            kw: window.kernel[0],
            sh: 1,
            sw: window.strides[0],
            dh: 1,
            dw: window.dilations[0],
            ph: 0,
            pw: window.pad_begin(0),
            group,
        }),
        2 => Ok(Geo {
            n: x[0],
            c: x[1],
            h: x[2],
            w: x[3],
            oc: o[1],
            oh: o[2],
            ow: o[3],
            kh: window.kernel[0],
            kw: window.kernel[1],
            sh: window.strides[0],
            sw: window.strides[1],
            dh: window.dilations[0],
            dw: window.dilations[1],
            ph: window.pad_begin(0),
            pw: window.pad_begin(1),
            group,
        }),
        _ => Err(format!("{r}-D windows are not supported (1-D and 2-D are)")),
    }
}

/// Valid kernel taps `lo..hi` along one axis for output position `o`:
/// taps `t` with `0 <= o*s - p + t*d < size`.
pub(super) fn tap_range(
    k: &mut Kernel,
    o: Value,
    s: usize,
    p: usize,
    d: usize,
    size: usize,
    taps: usize,
) -> (Value, Value) {
    // t0 = p - o*s: first tap index times d that lands on 0
    let os = k.b.ins().imul_imm_s(o, s as i64);
    let pv = k.ic(p as i64);
    let t = k.b.ins().isub(pv, os);
    let zero = k.ic(0);
    let tp = imax(k, t, zero);
    let lo = if d == 1 {
        tp
    } else {
        let x = k.b.ins().iadd_imm_s(tp, (d - 1) as i64);
        k.b.ins().udiv_imm_s(x, d as i64)
    };
    let u = k.b.ins().iadd_imm_s(t, size as i64);
    let up = imax(k, u, zero);
    let hi = if d == 1 {
        up
    } else {
        let x = k.b.ins().iadd_imm_s(up, (d - 1) as i64);
        k.b.ins().udiv_imm_s(x, d as i64)
    };
    let kt = k.ic(taps as i64);
    let hi = imin(k, hi, kt);
    (lo, hi)
}

/// Fills a padded image of `[channels][hp][wpd]` with batch `n`'s input
/// planes `first..first + channels` in its interior (offset by the
/// padding) and zeros around them, so conv taps need no bounds checks.
/// Each float is written once: per channel the zeros before the first
/// row, each row followed by the zeros up to the next one's first float
/// (its right padding and the next row's left padding), the zeros after
/// the last row.
#[allow(clippy::too_many_arguments)]
pub(super) fn pad_input(
    k: &mut Kernel,
    g: &Geo,
    xp: Value,
    n: Value,
    first: Value,
    channels: usize,
    pad_img: Value,
    hp: usize,
    wpd: usize,
) {
    let zeros = |k: &mut Kernel, at: Value, len: usize| {
        k.for_vec(len, &mut |k, ty, i| {
            let z = k.fsplat(ty, 0.0);
            k.st_at(z, at, i, 4, 0);
        });
    };
    let nc = k.b.ins().imul_imm_s(n, g.c as i64);
    let nc = k.b.ins().iadd(nc, first);
    let plane = k.b.ins().imul_imm_s(nc, (g.h * g.w) as i64);
    let xbase = k.addr(xp, plane, 4);
    let g2 = *g;
    let (head, gap) = (g2.ph * wpd + g2.pw, wpd - g2.w);
    let tail = hp * wpd - (head + (g2.h - 1) * wpd + g2.w);
    k.for_n(0, channels as i64, 1, |k, c| {
        let src = k.b.ins().imul_imm_s(c, (g2.h * g2.w) as i64);
        let sb = k.addr(xbase, src, 4);
        let dst = k.b.ins().imul_imm_s(c, (hp * wpd) as i64);
        let db = k.addr(pad_img, dst, 4);
        zeros(k, db, head);
        let db = k.b.ins().iadd_imm_s(db, (head * 4) as i64);
        // row y at `db + y·wpd`, its gap after it
        let row = |k: &mut Kernel, y: Value, gap: usize| {
            let s = k.b.ins().imul_imm_s(y, (g2.w * 4) as i64);
            let s = k.b.ins().iadd(sb, s);
            let d = k.b.ins().imul_imm_s(y, (wpd * 4) as i64);
            let d = k.b.ins().iadd(db, d);
            k.for_vec(g2.w, &mut |k, ty, j| {
                let v = k.ld_at(ty, s, j, 4, 0);
                k.st_at(v, d, j, 4, 0);
            });
            let d = k.b.ins().iadd_imm_s(d, (g2.w * 4) as i64);
            zeros(k, d, gap);
        };
        k.for_n(0, g2.h as i64 - 1, 1, |k, y| row(k, y, gap));
        let last = k.ic(g2.h as i64 - 1);
        row(k, last, tail);
    });
}
