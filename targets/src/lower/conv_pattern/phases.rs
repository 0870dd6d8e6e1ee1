//! The pattern kernel's input image: zero-padded and, for stride 2, split
//! into phase planes so that consecutive output pixels read consecutive
//! floats ([`Phases`]), and the row split that writes them.

use cranelift_codegen::ir::{types, Endianness, InstBuilder, MemFlagsData, Value};

use super::super::conv_geo::{pad_input, zero_frame, Geo};
use super::super::Kernel;

/// The zero-padded input of the register tiles, split into `s × s` phase
/// planes for stride `s` (one plane for stride 1): phase `(a, b)` holds
/// the padded pixels `(s·i + a, s·j + b)` at `(i, j)`, so output pixel
/// `(y, x)`'s tap `(ky, kx)` reads phase `(ky·dh mod s, kx·dw mod s)` at
/// `(y + ky·dh div s, x + kx·dw div s)`: consecutive output pixels read
/// consecutive floats, whatever the stride.
pub(in crate::lower) struct Phases {
    pub(in crate::lower) s: usize,
    pub(in crate::lower) hq: usize,
    /// Floats per phase row (a multiple of `lanes`: the taps of the first
    /// kernel column load aligned, but for a row's early last vector,
    /// [`Phases::back`]).
    pub(in crate::lower) wq: usize,
    /// Floats of each phase row that any tile or pass reads (whole vectors
    /// from every tap's column offset); the rest of a row is never zeroed.
    pub(in crate::lower) read: usize,
    /// Pixels each output row's last vector starts early
    /// ([`crate::ukernel::pattern::PatternTile::back`], decided by
    /// [`super::last_back`]).
    pub(in crate::lower) back: usize,
    dh: usize,
    dw: usize,
    kw: usize,
}

impl Phases {
    /// The phases of `g`'s input for register tiles of `lanes`-pixel
    /// vectors ([`super::tile_lanes`]: 4, 8 or 16; the 128-bit passes take
    /// 8) whose rows' last vector starts `back` pixels early.
    pub(in crate::lower) fn new(g: &Geo, lanes: usize, back: usize) -> Phases {
        let s = g.sh;
        // every tile reads whole vectors, `ow.div_ceil(lanes)` of them per
        // row, the last `back` pixels early
        let hq = (g.h + g.ph).div_ceil(s).max(g.oh + (g.kh - 1) * g.dh / s);
        let read = g.ow.div_ceil(lanes) * lanes - back + (g.kw - 1) * g.dw / s;
        let wq = (g.w + g.pw).div_ceil(s).max(read).next_multiple_of(lanes);
        Phases { s, hq, wq, read, back, dh: g.dh, dw: g.dw, kw: g.kw }
    }

    pub(in crate::lower) fn channel_bytes(&self) -> usize {
        self.s * self.s * self.hq * self.wq * 4
    }

    /// Byte offset of row-major tap `tap` from an output pixel's origin.
    pub(in crate::lower) fn tap(&self, tap: usize) -> i32 {
        let ((phase, col), row) = self.place(tap);
        ((phase * self.hq * self.wq + row * self.wq + col) * 4) as i32
    }

    /// Where row-major tap `tap` reads, from an output pixel's origin:
    /// ((phase plane, column offset), row offset in that plane's rows).
    pub(in crate::lower) fn place(&self, tap: usize) -> ((usize, usize), usize) {
        let (ry, rx) = ((tap / self.kw) * self.dh, (tap % self.kw) * self.dw);
        (((ry % self.s) * self.s + rx % self.s, rx / self.s), ry / self.s)
    }

    /// Zeroes what the phase split of every image leaves alone, once per
    /// call ([`zero_frame`] of each phase plane around the positions the
    /// input's pixels land on; stride 1's copy writes its own padding).
    pub(in crate::lower) fn clear(&self, k: &mut Kernel, g: &Geo, img: Value) {
        if self.s == 1 {
            return;
        }
        let s = self.s;
        // phase `a` holds padded position s·i + a: input index s·i + a − pad in 0..len
        let interior = |a: usize, pad: usize, len: usize| {
            let lo = pad.saturating_sub(a).div_ceil(s);
            let hi = if len + pad > a { (len + pad - a - 1) / s + 1 } else { 0 };
            (lo, hi.max(lo))
        };
        let plane = self.hq * self.wq;
        for a in 0..s {
            for b in 0..s {
                let (rows, cols) = (interior(a, g.ph, g.h), interior(b, g.pw, g.w));
                k.for_n(0, g.c as i64, 1, |k, c| {
                    let at = k.b.ins().imul_imm_s(c, (s * s * plane) as i64);
                    let at = k.b.ins().iadd_imm_s(at, ((a * s + b) * plane) as i64);
                    let p = k.addr(img, at, 4);
                    zero_frame(k, p, (self.hq, self.wq), rows, cols, self.read);
                });
            }
        }
    }

    /// Copies image `n` of `x` into `img` (all channels), zero elsewhere
    /// (after [`Phases::clear`]).
    pub(in crate::lower) fn pad(&self, k: &mut Kernel, g: &Geo, x: Value, n: Value, img: Value) {
        if self.s == 1 {
            let first = k.ic(0);
            return pad_input(k, g, x, n, first, g.c, img, (self.hq, self.wq, self.read));
        }
        debug_assert_eq!(self.s, 2, "phase splits are written for stride 2");
        let (s, hq, wq, gc) = (self.s as i64, self.hq as i64, self.wq as i64, *g);
        let nc = k.b.ins().imul_imm_s(n, (g.c * g.h * g.w) as i64);
        let xbase = k.addr(x, nc, 4);
        k.for_n(0, (g.c * g.h) as i64, 1, |k, row| {
            // row = c * H + y; padded row y + ph is phase row (y + ph) / s of phase (y + ph) % s
            let src = k.b.ins().imul_imm_s(row, gc.w as i64);
            let sb = k.addr(xbase, src, 4);
            let c = k.b.ins().udiv_imm_s(row, gc.h as i64);
            let y = k.b.ins().urem_imm_s(row, gc.h as i64);
            let py = k.b.ins().iadd_imm_s(y, gc.ph as i64);
            let (a, i) = (k.b.ins().urem_imm_s(py, s), k.b.ins().udiv_imm_s(py, s));
            let d = k.b.ins().imul_imm_s(c, s * s);
            let a = k.b.ins().imul_imm_s(a, s);
            let d = k.b.ins().iadd(d, a);
            let d = k.b.ins().imul_imm_s(d, hq);
            let d = k.b.ins().iadd(d, i);
            let d = k.b.ins().imul_imm_s(d, wq);
            let db = k.addr(img, d, 4);
            split_row(k, sb, db, gc.w, gc.pw, (hq * wq) as usize);
        });
    }
}

/// Eight-float steps of [`split_row`] written out rather than looped.
const SPLIT_UNROLL: usize = 16;

/// Splits one input row at `src` (`w` floats) into the two column phases
/// of stride 2: padded column `x + pw` goes to phase `(x + pw) mod 2`
/// (`phase` floats after phase 0) at `(x + pw) div 2` from `dst`. Eight
/// floats at a time, as two `f32x4` loads and their even and odd lanes
/// (one `shufps` each on x86-64), at constant offsets from the row's two
/// addresses for rows of up to [`SPLIT_UNROLL`] such steps (a loop
/// recomputed both row addresses on every step), the rest one by one.
fn split_row(k: &mut Kernel, src: Value, dst: Value, w: usize, pw: usize, phase: usize) {
    let le = MemFlagsData::new().with_endianness(Endianness::Little);
    let (even, odd) = (k.lane_mask(&[0, 2, 4, 6]), k.lane_mask(&[1, 3, 5, 7]));
    // even input columns land in phase pw mod 2, odd ones in the other,
    // both at (x + pw) div 2 (x even) and (x + 1 + pw) div 2
    let (pe, po) = ((pw % 2) * phase, ((pw + 1) % 2) * phase);
    let (je, jo) = (pw / 2, pw.div_ceil(2));
    let body = w / 8;
    let step = |k: &mut Kernel, sp: Value, dp: Value, at: usize| {
        let a = k.ld(types::F32X4, sp, (32 * at) as i32);
        let b = k.ld(types::F32X4, sp, (32 * at + 16) as i32);
        let (a, b) = (k.b.ins().bitcast(types::I8X16, le, a), k.b.ins().bitcast(types::I8X16, le, b));
        let (ev, od) = (k.b.ins().shuffle(a, b, even), k.b.ins().shuffle(a, b, odd));
        let (ev, od) = (k.b.ins().bitcast(types::F32X4, le, ev), k.b.ins().bitcast(types::F32X4, le, od));
        k.st(ev, dp, ((pe + je + 4 * at) * 4) as i32);
        k.st(od, dp, ((po + jo + 4 * at) * 4) as i32);
    };
    if body <= SPLIT_UNROLL {
        (0..body).for_each(|at| step(k, src, dst, at));
    } else {
        k.for_n(0, body as i64, 1, |k, i| {
            let x = k.b.ins().imul_imm_s(i, 32);
            let sp = k.b.ins().iadd(src, x);
            let j = k.b.ins().imul_imm_s(i, 16);
            let dp = k.b.ins().iadd(dst, j);
            step(k, sp, dp, 0);
        });
    }
    for x in body * 8..w {
        let v = k.ld(types::F32, src, (4 * x) as i32);
        let px = x + pw;
        k.st(v, dst, (((px % 2) * phase + px / 2) * 4) as i32);
    }
}
