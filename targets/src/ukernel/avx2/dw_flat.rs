//! [`DwFlat`]: a depthwise conv's small stride-1 "same" plane seen
//! flattened, as the 128-bit `lower::depthwise` flat path computes it, and
//! [`ymm_dw_flat`]: that path at 8 lanes on `ymm`, from f32 or from a u8
//! plane of an integer conv.
//!
//! Output pixel `q` (row-major over the `h × w` plane) reads input pixel
//! `q + dy·w + dx` for a tap at `(dy, dx)` from the window's centre, when
//! that pixel lies inside the plane. So a tap is one unaligned load per
//! vector of outputs whose lanes outside the plane (row or column) read
//! nothing: no per-row work and no lanes wasted on a short row's tail
//! (DS-CNN's 25x5 planes: 16 `ymm` for 125 pixels; MobileNetV2's 7x7: 7
//! for 49). `avx512::dw_flat` runs the same plane at 16 lanes with masks.
//!
//! **The copy.** AVX2 has no fault-suppressing zeroing load as cheap as
//! AVX-512's masks, so the pass first writes the plane into the caller's
//! scratch between two zero margins (zeroed once by the caller) of
//! [`DwFlat::reach`] floats or more
//! (from u8, each byte `x` as the float `x − zp`, exact). Every load of
//! the pass then stays inside the scratch, lanes above or below the plane
//! read zeros, and only lanes that wrap to a neighbouring row are zeroed,
//! with an immediate blend.
//!
//! **Bits, f32.** The 128-bit kernel computes 4-lane groups and, per group
//! and tap in order, skips a tap none of its lanes reads, else adds `x·w`
//! with the lanes it does not read zeroed (`fma(0, w, acc)`, which can turn
//! a `-0.0` sum into `+0.0`). Its groups ([`Groups`]) are the flat path's
//! (over the flattened plane, the last ending at the plane's end) on
//! planes of up to 256 pixels, else the row kernel's. The pass does the
//! same per lane: lanes that read nothing are zero, and where a tap's
//! group skips some lanes of a vector but not others the FMA goes to a
//! copy and an immediate blend keeps the skipping lanes' sums. Each lane
//! thus sees the same fused multiply-adds in the same order as in the
//! group whose store gives it its value, then the same residual add and
//! activation ([`super::activation`]): the same bits.
//!
//! **Bits, integers.** From u8 ([`Int`]) the weights are the int8 codes as
//! floats and every partial sum is an integer of magnitude below
//! `taps · 255 · 128 < 2^24`, so exact in any order: the sums are `Σ (x −
//! zp)·w`, zeroed lanes add `+0` to a sum that starts at `+0`, and the
//! epilogue is `QConv`'s `f32(acc) · s + b`, the residual, then the
//! activation and f32 store, or the requantiser's u8 store
//! ([`super::int_tile::requantise`]).

use iced_x86::code_asm::*;

use super::int_tile::requantise;
use kerf_ir::DW_FLAT_MAX_PIXELS;
pub use kerf_ir::DW_FLAT_MAX_TAPS;

use super::{activation, load_lanes, store_prefix, Lane};
use crate::ukernel::epi::TileEpi;

/// Lanes of the 128-bit path's groups the pass reproduces.
const GROUP: usize = 4;
/// Accumulators in flight: positions per pass.
const ACC: [AsmRegisterYmm; 8] = [ymm0, ymm1, ymm2, ymm3, ymm4, ymm5, ymm6, ymm7];
/// A loaded input vector (`ymm12`–`ymm15` are the epilogue's scratch).
const X: AsmRegisterYmm = ymm8;
/// A copy of a sum for a merging FMA.
const MERGE: AsmRegisterYmm = ymm9;
/// The tap's broadcast weight.
const WEIGHT: AsmRegisterYmm = ymm10;
/// Zero.
const ZERO: AsmRegisterYmm = ymm11;

/// One plane's geometry and epilogue.
#[derive(Clone, Debug, PartialEq)]
pub struct DwFlat {
    /// Plane rows (input and output alike).
    pub h: usize,
    /// Plane columns.
    pub w: usize,
    /// Each tap's offset `(dy, dx)` from the output pixel, in tap order.
    pub taps: Vec<(i64, i64)>,
    /// Residual and activation (`scale` and `addend` must be `None`).
    pub epi: TileEpi,
    /// The 4-lane groups of the 128-bit kernel whose bits the pass gives.
    pub groups: Groups,
}

/// How the 128-bit depthwise kernel groups a plane's pixels into 4-lane
/// vectors, each computed with its own tap skips.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Groups {
    /// Over the flattened plane, the last group ending at its end; a tap
    /// none of a group's pixels reads is skipped (`lower::depthwise`'s flat path).
    Flat,
    /// Per output row, the last group ending at the row's end; only a tap
    /// whose columns fall outside the row for the whole group is skipped
    /// (rows outside the plane read zeros: the row kernel).
    Rows,
}

impl DwFlat {
    /// Pixels of the plane.
    pub fn n(&self) -> usize {
        self.h * self.w
    }
    /// The flat offset of `tap`: output pixel `q` reads `q + offset`.
    pub(crate) fn offset(&self, (down, right): (i64, i64)) -> i64 {
        down * self.w as i64 + right
    }
    /// The largest `|offset|` of any tap: floats of zero margin a copy of
    /// the plane needs on either side.
    pub fn reach(&self) -> usize {
        self.taps.iter().map(|&t| self.offset(t).unsigned_abs() as usize).max().unwrap_or(0)
    }
    /// Whether output pixel `q` reads a pixel of the plane through `tap`.
    fn reads(&self, q: usize, (down, right): (i64, i64)) -> bool {
        let (row, col) = ((q / self.w) as i64 + down, (q % self.w) as i64 + right);
        (0..self.h as i64).contains(&row) && (0..self.w as i64).contains(&col)
    }
    /// The pixels of the 128-bit kernel's group whose store gives pixel
    /// `q` its value: over the plane or `q`'s row, the last group ending
    /// at its end.
    fn group(&self, q: usize) -> std::ops::Range<usize> {
        let (base, len) = match self.groups {
            Groups::Flat => (0, self.n()),
            Groups::Rows => (q / self.w * self.w, self.w),
        };
        let at = q - base;
        let start = if !len.is_multiple_of(GROUP) && at + GROUP >= len { len - GROUP } else { at / GROUP * GROUP };
        base + start..base + start + GROUP
    }
    /// Whether the 128-bit kernel adds `tap` for pixel `g` of a group:
    /// when `g` reads a pixel (flat path), or a column of its row (row kernel).
    fn counts(&self, g: usize, tap: (i64, i64)) -> bool {
        match self.groups {
            Groups::Flat => self.reads(g, tap),
            Groups::Rows => (0..self.w as i64).contains(&((g % self.w) as i64 + tap.1)),
        }
    }
    /// The load and FMA masks of the vector of `lanes` pixels from pixel
    /// `first` for `tap`: lanes that read a pixel, and lanes whose group
    /// reads one (lanes past the plane in neither).
    pub(crate) fn masks(&self, first: usize, lanes: usize, tap: (i64, i64)) -> (u32, u32) {
        let (mut load, mut fma) = (0u32, 0u32);
        for (i, q) in (first..(first + lanes).min(self.n())).enumerate() {
            if self.reads(q, tap) {
                load |= 1 << i;
            }
            if self.group(q).any(|g| self.counts(g, tap)) {
                fma |= 1 << i;
            }
        }
        (load, fma)
    }
}

/// The integer form: the input plane holds u8 with zero point `zp`, the
/// weights are the int8 codes as floats followed by the scale and the bias,
/// and the output is f32 or, with `quant` (scale, zero point), u8.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Int {
    /// The input's zero point.
    pub zp: u8,
    /// The output grid (factor, zero point; `kerf_ir::op::QOut::grid`) of a u8 output.
    pub quant: Option<(f32, u8)>,
}

/// [`ymm_dw_flat`]'s pass: the plane, and the integer form if any.
#[derive(Clone, Debug, PartialEq)]
pub struct YmmFlat {
    /// The plane, taps and epilogue.
    pub plane: DwFlat,
    /// The integer form, or `None` for f32 in and out.
    pub int: Option<Int>,
}

impl YmmFlat {
    /// Floats of zero margin before the plane in the scratch (a whole
    /// number of vectors).
    fn front(&self) -> usize {
        self.plane.reach().next_multiple_of(8)
    }
    /// Bytes of scratch the pass needs: the front margin, the plane, and
    /// the back margin every vector of the last position reads.
    pub fn scratch_bytes(&self) -> usize {
        4 * (self.front() + self.plane.n().next_multiple_of(8) + self.front())
    }
}

/// Machine code of the pass over one plane, with the arguments (System V
/// order) `out` (the output plane: f32, or u8 with `int.quant`), `x` (the
/// input plane: f32, or u8 with `int`), `w` (the taps' weights then the
/// bias, one f32 each; with `int` the codes, the scale, the bias),
/// `residual` (an f32 plane, read with `epi.residual`) and `scratch`
/// ([`YmmFlat::scratch_bytes`], zero outside the plane's floats: the
/// caller zeroes it once, the pass writes only the plane).
/// `None` where the plane does not fit the pass: fewer than 8 pixels,
/// rows shorter than a group, more than [`DW_FLAT_MAX_PIXELS`] pixels or
/// [`DW_FLAT_MAX_TAPS`] taps, a scale or an addend.
pub fn ymm_dw_flat(p: &YmmFlat) -> Option<Vec<u8>> {
    let d = &p.plane;
    let fits = (8..=DW_FLAT_MAX_PIXELS).contains(&d.n()) && d.w >= GROUP && d.taps.len() <= DW_FLAT_MAX_TAPS;
    if !fits || d.epi.scale.is_some() || d.epi.addend.is_some() {
        return None;
    }
    assemble(p).ok()
}

fn assemble(p: &YmmFlat) -> Result<Vec<u8>, IcedError> {
    let (out, w, res, scratch) = (rdi, rdx, rcx, r8);
    let d = &p.plane;
    let mut a = CodeAssembler::new(64)?;
    a.vxorps(ZERO, ZERO, ZERO)?;
    copy(&mut a, p)?;
    // the plane's first float in the scratch
    let base = scratch + (4 * p.front()) as i64;
    let nt = d.taps.len() as i64;
    let positions = d.n().div_ceil(8);
    for first in (0..positions).step_by(ACC.len()) {
        let group: Vec<usize> = (first..positions.min(first + ACC.len())).collect();
        let accs = &ACC[..group.len()];
        for &ac in accs {
            match p.int {
                Some(_) => a.vxorps(ac, ac, ac)?,
                None => a.vbroadcastss(ac, dword_ptr(w + 4 * nt))?,
            }
        }
        for (t, &tap) in d.taps.iter().enumerate() {
            let masks: Vec<(u32, u32)> = group.iter().map(|&j| d.masks(8 * j, 8, tap)).collect();
            if masks.iter().all(|&(_, fma)| fma == 0) {
                continue;
            }
            a.vbroadcastss(WEIGHT, dword_ptr(w + (4 * t) as i64))?;
            for ((&j, &ac), &(load, fma)) in group.iter().zip(accs).zip(&masks) {
                if fma == 0 {
                    continue;
                }
                // lanes past the plane (in no mask) are never stored: any
                // value will do there
                let live = live_lanes(d.n(), j);
                let at = (8 * j) as i64 + d.offset(tap);
                let mem = ymmword_ptr(base + 4 * at);
                // integer sums are exact: zeroed lanes may take the FMA too
                let merge = p.int.is_none() && fma != live;
                let zeroed = live & !load & reads_data(d.n(), at);
                if zeroed == 0 && !merge {
                    a.vfmadd231ps(ac, WEIGHT, mem)?;
                    continue;
                }
                a.vmovups(X, mem)?;
                if zeroed != 0 {
                    a.vblendps(X, X, ZERO, zeroed)?;
                }
                if merge {
                    a.vmovaps(MERGE, ac)?;
                    a.vfmadd231ps(MERGE, WEIGHT, X)?;
                    a.vblendps(ac, ac, MERGE, fma)?;
                } else {
                    a.vfmadd231ps(ac, WEIGHT, X)?;
                }
            }
        }
        epilogue(&mut a, p, (&group, accs), (out, res, w))?;
    }
    super::super::leaf_end(a)
}

/// The live lanes (pixels inside the plane) of position `j`.
fn live_lanes(n: usize, j: usize) -> u32 {
    (1u32 << (n - 8 * j).min(8)) - 1
}

/// The lanes of a vector loaded from plane float `at` (maybe negative)
/// that fall inside the plane, not in the scratch's zero margins.
fn reads_data(n: usize, at: i64) -> u32 {
    (0..8).filter(|&i| (0..n as i64).contains(&(at + i))).fold(0, |m, i| m | 1 << i)
}

/// Copies the plane into the scratch between its margins, 8 floats at a
/// time, the last step ending at the plane's end: nothing outside the
/// plane's floats is written, so margins the caller zeroed once stay zero.
fn copy(a: &mut CodeAssembler, p: &YmmFlat) -> Result<(), IcedError> {
    let (x, scratch) = (rsi, r8);
    let (front, n) = (p.front(), p.plane.n());
    if let Some(int) = p.int {
        a.mov(eax, u32::from(int.zp))?;
        a.vmovd(xmm15, eax)?;
        a.vpbroadcastd(ymm15, xmm15)?;
    }
    for s in super::steps_to_end(n, 8) {
        match p.int {
            None => a.vmovups(X, ymmword_ptr(x + (4 * s) as i64))?,
            Some(_) => {
                a.vpmovzxbd(X, qword_ptr(x + s as i64))?;
                a.vpsubd(X, X, ymm15)?;
                a.vcvtdq2ps(X, X)?;
            }
        }
        a.vmovups(ymmword_ptr(scratch + (4 * (front + s)) as i64), X)?;
    }
    Ok(())
}

/// One pass's epilogue: the integer form's scale and bias, the residual,
/// the activation (or the requantiser) and the stores, the plane's last
/// vector partial.
fn epilogue(
    a: &mut CodeAssembler,
    p: &YmmFlat,
    (group, accs): (&[usize], &[AsmRegisterYmm]),
    (out, res, w): (AsmRegister64, AsmRegister64, AsmRegister64),
) -> Result<(), IcedError> {
    let d = &p.plane;
    let (n, nt) = (d.n(), d.taps.len() as i64);
    let lanes = |j: usize| (n - 8 * j).min(8);
    if p.int.is_some() {
        a.vbroadcastss(X, dword_ptr(w + 4 * nt))?;
        a.vbroadcastss(MERGE, dword_ptr(w + 4 * (nt + 1)))?;
        for &ac in accs {
            a.vmulps(ac, ac, X)?;
            a.vaddps(ac, ac, MERGE)?;
        }
    }
    for (&j, &ac) in group.iter().zip(accs).filter(|_| d.epi.residual) {
        let at = (32 * j) as i64;
        match lanes(j) {
            8 => a.vaddps(ac, ac, ymmword_ptr(res + at))?,
            l => {
                load_lanes(a, X, res, at, l)?;
                a.vaddps(ac, ac, X)?;
            }
        }
    }
    let quant = p.int.and_then(|i| i.quant);
    match quant {
        Some(grid) => requantise(a, &d.epi, accs, grid, false)?,
        None => activation(a, &d.epi, accs)?,
    }
    for (&j, &ac) in group.iter().zip(accs) {
        match quant {
            Some(_) => store_prefix(a, ac, out + (8 * j) as i64, lanes(j), Lane::Byte)?,
            None => store_prefix(a, ac, out + (32 * j) as i64, lanes(j), Lane::F32)?,
        }
    }
    Ok(())
}
