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

impl Geo {
    /// The plane as `kerf_ir` states the depthwise passes' fits
    /// ([`kerf_ir::DepthwisePlane`]).
    pub(super) fn plane(&self) -> kerf_ir::DepthwisePlane {
        let Geo { h, w, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw, .. } = *self;
        kerf_ir::DepthwisePlane { h, w, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw }
    }
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
/// padding) and zeros around them as far as the first `read` floats of a
/// row ([`zero_frame`]), so conv taps need no bounds checks. Each float
/// is written at most once.
#[allow(clippy::too_many_arguments)]
pub(super) fn pad_input(
    k: &mut Kernel,
    g: &Geo,
    xp: Value,
    n: Value,
    first: Value,
    channels: usize,
    pad_img: Value,
    (hp, wpd, read): (usize, usize, usize),
) {
    let nc = k.b.ins().imul_imm_s(n, g.c as i64);
    let nc = k.b.ins().iadd(nc, first);
    let plane = k.b.ins().imul_imm_s(nc, (g.h * g.w) as i64);
    let xbase = k.addr(xp, plane, 4);
    let g2 = *g;
    k.for_n(0, channels as i64, 1, |k, c| {
        let dst = k.b.ins().imul_imm_s(c, (hp * wpd) as i64);
        let db = k.addr(pad_img, dst, 4);
        zero_frame(k, db, (hp, wpd), (g2.ph, g2.ph + g2.h), (g2.pw, g2.pw + g2.w), read);
    });
    k.for_n(0, (channels * g.h) as i64, 1, |k, row| {
        // row = c * H + y
        let src = k.b.ins().imul_imm_s(row, g2.w as i64);
        let sb = k.addr(xbase, src, 4);
        let c = k.b.ins().udiv_imm_s(row, g2.h as i64);
        let y = k.b.ins().urem_imm_s(row, g2.h as i64);
        let drow = k.b.ins().imul_imm_s(c, hp as i64);
        let drow = k.b.ins().iadd(drow, y);
        let drow = k.b.ins().iadd_imm_s(drow, g2.ph as i64);
        let d = k.b.ins().imul_imm_s(drow, wpd as i64);
        let d = k.b.ins().iadd_imm_s(d, g2.pw as i64);
        let db = k.addr(pad_img, d, 4);
        k.for_vec(g2.w, &mut |k, ty, j| {
            let v = k.ld_at(ty, sb, j, 4, 0);
            k.st_at(v, db, j, 4, 0);
        });
    });
}

/// Zeroes a `[hp][wpd]` f32 plane at `plane` except its interior, rows
/// `rows` × columns `cols` (what a copy writes afterwards), as far as the
/// plane's reader reads: the first `read` floats of each row (`read ≤
/// wpd`; the columns past it are never loaded and stay as they are). With
/// `read == wpd`: the floats before the interior's first row, each
/// interior row's gap up to the next one's first float (its right and the
/// next row's left margin), and the floats after the last row. An empty
/// interior zeroes it all.
pub(super) fn zero_frame(
    k: &mut Kernel,
    plane: Value,
    (hp, wpd): (usize, usize),
    rows: (usize, usize),
    cols: (usize, usize),
    read: usize,
) {
    let read = read.min(wpd);
    let (r0, r1) = (rows.0.min(hp), rows.1.min(hp));
    let (c0, c1) = (cols.0.min(read), cols.1.min(read));
    if r0 >= r1 || c0 >= c1 {
        return zero_runs(k, plane, (0, hp), (0, read), wpd);
    }
    if read < wpd {
        // row by row: the margins, and whole rows above and below
        zero_runs(k, plane, (0, r0), (0, read), wpd);
        zero_runs(k, plane, (r0, r1), (0, c0), wpd);
        zero_runs(k, plane, (r0, r1), (c1, read), wpd);
        return zero_runs(k, plane, (r1, hp), (0, read), wpd);
    }
    zero_runs(k, plane, (0, 1), (0, r0 * wpd + c0), wpd);
    // the gaps after rows r0 .. r1 - 1, `wpd` floats apart
    let gap = r0 * wpd + c1;
    zero_runs(k, plane, (0, r1 - r0 - 1), (gap, gap + wpd - (c1 - c0)), wpd);
    zero_runs(k, plane, (0, 1), ((r1 - 1) * wpd + c1, hp * wpd), wpd);
}

/// Zeroes floats `cols` of rows `rows` of a plane of `wpd`-float rows (a
/// run may reach past its row: the single-run calls of [`zero_frame`]).
fn zero_runs(k: &mut Kernel, plane: Value, (r0, r1): (usize, usize), (c0, c1): (usize, usize), wpd: usize) {
    if r0 >= r1 || c0 >= c1 {
        return;
    }
    let at = k.b.ins().iadd_imm_s(plane, (4 * (r0 * wpd + c0)) as i64);
    let row = |k: &mut Kernel, row: Value| {
        k.for_vec(c1 - c0, &mut |k, ty, j| {
            let z = k.fsplat(ty, 0.0);
            k.st_at(z, row, j, 4, 0);
        });
    };
    if r1 - r0 == 1 {
        return row(k, at);
    }
    k.for_n(0, (r1 - r0) as i64, 1, |k, i| {
        let off = k.b.ins().imul_imm_s(i, (4 * wpd) as i64);
        let at = k.b.ins().iadd(at, off);
        row(k, at);
    });
}
