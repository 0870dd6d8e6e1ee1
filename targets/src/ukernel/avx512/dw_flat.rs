//! [`dw_flat`]: a depthwise conv's small stride-1 "same" plane on `zmm`,
//! the plane flattened: the 128-bit `lower::depthwise` flat path at 16
//! lanes, with AVX-512's masks where that path zeroes and skips lanes.
//!
//! Output pixel `q` (row-major over the `h × w` plane) reads input pixel
//! `q + dy·w + dx` for a tap at `(dy, dx)` from the window's centre, when
//! that pixel lies inside the plane. So a tap is one unaligned load per 16
//! outputs whose lanes outside the plane (row or column) are masked: no
//! per-row work, no padded copy and no lanes wasted on a short row's tail
//! (DS-CNN's 25x5 planes: 8 vectors for 125 pixels; MobileNetV2's 7x7: 4
//! for 49).
//!
//! **Bits.** The 128-bit kernel it replaces computes 4-lane groups and,
//! per group and tap in order, skips a tap none of its lanes reads, else
//! adds `x·w` with the lanes it does not read zeroed (`fma(0, w, acc)`,
//! which can turn a `-0.0` sum into `+0.0`). Its groups ([`Groups`]) are
//! the flat path's (over the flattened plane, the last ending at the
//! plane's end) on planes of up to 256 pixels, else the row kernel's (per
//! output row, the last ending at the row's end; a row above or below the
//! plane is read as a zero row, never skipped). The pass does the same per
//! lane: its load mask zeroes the lanes that read nothing (a zero-masked
//! load, which also suppresses the faults of addresses outside the plane),
//! its FMA mask keeps the lanes whose group skips the tap (merge masking).
//! Each lane thus sees the same fused multiply-adds in the same order as
//! in the group whose store gives it its value, then the same residual add
//! and activation ([`super::super::avx2::activation`]): the same bits.

use iced_x86::code_asm::*;

use super::super::avx2::{activation, TileEpi};

/// Lanes of the 128-bit path's groups the masks reproduce.
const GROUP: usize = 4;
/// Accumulators in flight (`zmm16`–`zmm23`): positions per pass.
const ACC: [AsmRegisterZmm; 8] = [zmm16, zmm17, zmm18, zmm19, zmm20, zmm21, zmm22, zmm23];
/// Taps whose weights live in registers (`zmm0`–`zmm15`); the FMAs of
/// later taps read theirs from the weights argument, broadcast
/// (`{1to16}`).
const REG_TAPS: usize = 16;
/// Most taps (a 5x5 window).
pub const DW_FLAT_MAX_TAPS: usize = 25;

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
    fn n(&self) -> usize {
        self.h * self.w
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
    /// The load and FMA masks of position `j` (pixels `16j..16j + 16`)
    /// for `tap`: lanes that read a pixel, and lanes whose group reads one.
    fn masks(&self, j: usize, tap: (i64, i64)) -> (u16, u16) {
        let (mut load, mut fma) = (0u16, 0u16);
        for i in 0..16 {
            let q = 16 * j + i;
            if q >= self.n() {
                break;
            }
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

/// Machine code of the pass over one plane, with the arguments (System V
/// order) `out` (the output plane), `x` (the input plane), `w` (the taps'
/// weights then the bias, one f32 each) and `residual` (a plane, read with
/// `epi.residual`).
/// `None` where the plane does not fit the pass: rows shorter than a
/// group, more taps than [`DW_FLAT_MAX_TAPS`], a scale or an addend.
pub fn dw_flat(p: &DwFlat) -> Option<Vec<u8>> {
    let fits = p.n() >= GROUP && p.w >= GROUP && p.taps.len() <= DW_FLAT_MAX_TAPS;
    if !fits || p.epi.scale.is_some() || p.epi.addend.is_some() {
        return None;
    }
    assemble(p).ok()
}

fn assemble(p: &DwFlat) -> Result<Vec<u8>, IcedError> {
    let (out, x, w, res) = (rdi, rsi, rdx, rcx);
    let weights =
        [zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14, zmm15];
    let (tmp, b, r) = (zmm24, zmm25, zmm26);
    let mut a = CodeAssembler::new(64)?;
    a.set_prefer_vex(false);
    for (t, &wr) in weights.iter().enumerate().take(p.taps.len().min(REG_TAPS)) {
        a.vbroadcastss(wr, dword_ptr(w + (4 * t) as i64))?;
    }
    a.vbroadcastss(b, dword_ptr(w + (4 * p.taps.len()) as i64))?;
    let positions = p.n().div_ceil(16);
    let mut masks = Masks::default();
    for first in (0..positions).step_by(ACC.len()) {
        let group: Vec<usize> = (first..positions.min(first + ACC.len())).collect();
        let accs = &ACC[..group.len()];
        for &ac in accs {
            a.vmovaps(ac, b)?;
        }
        for (t, &tap) in p.taps.iter().enumerate() {
            for (&j, &ac) in group.iter().zip(accs) {
                let (load, fma) = p.masks(j, tap);
                if fma == 0 {
                    continue;
                }
                let at = x + 4 * ((16 * j) as i64 + tap.0 * p.w as i64 + tap.1);
                if load == u16::MAX && t < REG_TAPS {
                    a.vfmadd231ps(ac, weights[t], zmmword_ptr(at))?;
                    continue;
                }
                match load {
                    u16::MAX => a.vmovups(tmp, zmmword_ptr(at))?,
                    _ => {
                        masks.set(&mut a, k1, load)?;
                        a.vmovups(tmp.k1().z(), zmmword_ptr(at))?;
                    }
                }
                // x·w + acc either way round: the same fused result
                let ac = match fma {
                    u16::MAX => ac,
                    m => {
                        masks.set(&mut a, k2, m)?;
                        ac.k2()
                    }
                };
                match weights.get(t) {
                    Some(&wr) => a.vfmadd231ps(ac, wr, tmp)?,
                    None => a.vfmadd231ps(ac, tmp, dword_bcst(w + (4 * t) as i64))?,
                }
            }
        }
        epilogue(&mut a, p, (&group, accs), (out, res, r), &mut masks)?;
    }
    for z in ACC.into_iter().chain([tmp, b, r, zmm28, zmm29, zmm30, zmm31]) {
        a.vpxord(z, z, z)?;
    }
    super::super::leaf_end(a)
}

/// The residual add, the activation and the stores of one pass's
/// positions; the plane's last partial position through the mask `k3`.
fn epilogue(
    a: &mut CodeAssembler,
    p: &DwFlat,
    (group, accs): (&[usize], &[AsmRegisterZmm]),
    (out, res, r): (AsmRegister64, AsmRegister64, AsmRegisterZmm),
    masks: &mut Masks,
) -> Result<(), IcedError> {
    let n = p.n();
    let lanes = |j: usize| (n - 16 * j).min(16);
    let tail = |j: usize| ((1u32 << lanes(j)) - 1) as u16;
    for (&j, &ac) in group.iter().zip(accs).filter(|_| p.epi.residual) {
        let at = res + (64 * j) as i64;
        if lanes(j) == 16 {
            a.vaddps(ac, ac, zmmword_ptr(at))?;
        } else {
            masks.set(a, k3, tail(j))?;
            a.vmovups(r.k3().z(), zmmword_ptr(at))?;
            a.vaddps(ac, ac, r)?;
        }
    }
    activation(a, &p.epi, accs)?;
    for (&j, &ac) in group.iter().zip(accs) {
        let at = out + (64 * j) as i64;
        if lanes(j) == 16 {
            a.vmovups(zmmword_ptr(at), ac)?;
        } else {
            masks.set(a, k3, tail(j))?;
            a.vmovups(zmmword_ptr(at).k3(), ac)?;
        }
    }
    Ok(())
}

/// What `k1`–`k3` hold, so a mask is loaded only when it changes.
#[derive(Default)]
struct Masks {
    held: [Option<u16>; 3],
}

impl Masks {
    fn set(&mut self, a: &mut CodeAssembler, k: AsmRegisterK, m: u16) -> Result<(), IcedError> {
        let i = [k1, k2, k3].iter().position(|&r| r == k).unwrap_or(2);
        if self.held[i] != Some(m) {
            a.mov(eax, u32::from(m))?;
            a.kmovw(k, eax)?;
            self.held[i] = Some(m);
        }
        Ok(())
    }
}
