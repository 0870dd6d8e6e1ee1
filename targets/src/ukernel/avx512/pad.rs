//! A constant Pad of the last two axes (`lower::movement`'s Pad; the
//! integer convs' zero-point borders) with AVX-512BW byte masks: every
//! output byte written once.
//!
//! A plane of `h` rows of `w` bytes becomes `top + h + bottom` rows of
//! `left + w + right` bytes. Each output row is cut into 64-byte chunks;
//! a chunk that overlaps the input row is one `vmovdqu8` load merged, under
//! a byte mask, into a register of the pad value (the masked-off bytes are
//! never read, so the load may start before the row or end past it) and
//! one store, masked at the row's end; a chunk wholly in the border is a
//! store of the value. The border rows are stores of the value. The value
//! is an element's bit pattern repeated; chunks start at multiples of 64
//! bytes from a row start, itself a multiple of the element size, so the
//! pattern lines up with the elements.
//!
//! Arguments (System V): `src` (the first plane's input), `dst` (its
//! output), `planes` (≥ 0); planes follow each other in both.

use iced_x86::code_asm::*;

use super::masks::{masked, merge, span, MaskRegs};

/// A plane pad ([`pad_planes`]): the plane, the pads (bytes along a row,
/// rows across) and the value, fixed at assembly time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PadPlanes {
    /// Input rows per plane (≥ 1).
    pub h: usize,
    /// Bytes per input row (≥ 1).
    pub w: usize,
    /// Rows of the value above the input's.
    pub top: usize,
    /// Rows of the value below the input's.
    pub bottom: usize,
    /// Bytes of the value before each input row (a multiple of the
    /// element size).
    pub left: usize,
    /// Bytes of the value after each input row (a multiple of the element
    /// size).
    pub right: usize,
    /// The value: one element's bits in the low `elem` bytes.
    pub value: u64,
    /// Element size in bytes: 1, 2, 4 or 8.
    pub elem: usize,
}

/// Output row bytes up to which [`pad_planes`] applies (16 chunks).
pub const PAD_MAX_ROW: usize = 1024;

impl PadPlanes {
    /// Bytes per output row.
    pub fn out_row(&self) -> usize {
        self.left + self.w + self.right
    }

    /// Whether the kernel is defined for these sizes.
    pub fn fits(&self) -> bool {
        matches!(self.elem, 1 | 2 | 4 | 8)
            && self.h >= 1
            && self.w >= 1
            && self.out_row() <= PAD_MAX_ROW
            && [self.w, self.left, self.right].iter().all(|n| n.is_multiple_of(self.elem))
    }

    /// The value repeated over eight bytes.
    fn pattern(&self) -> u64 {
        let bits = 8 * self.elem as u32;
        let one = if bits == 64 { self.value } else { self.value & ((1u64 << bits) - 1) };
        (0..8 / self.elem).fold(0, |p, i| p | one << (bits * i as u32))
    }

    /// Per 64-byte chunk of an output row: the bytes read from the input
    /// row (as a mask; zero when none) and the bytes stored.
    fn chunks(&self) -> Vec<(u64, u64)> {
        let (ow, left, w) = (self.out_row() as i64, self.left as i64, self.w as i64);
        (0..(ow + 63) / 64).map(|c| (span(64 * c, left, left + w), span(64 * c, 0, ow))).collect()
    }
}

/// The pad value's register.
const VALUE: AsmRegisterZmm = zmm9;

/// Machine code of the plane pad ([`PadPlanes`]; the module docs state
/// the operations and the arguments). `None` where it does not
/// [`PadPlanes::fits`].
pub fn pad_planes(p: &PadPlanes) -> Result<Option<Vec<u8>>, IcedError> {
    if !p.fits() {
        return Ok(None);
    }
    let mut a = CodeAssembler::new(64)?;
    a.set_prefer_vex(false);
    let (src, dst, planes) = (rdi, rsi, rdx);
    a.mov(rax, p.pattern())?;
    a.vpbroadcastq(VALUE, rax)?;
    let masks = MaskRegs::hoist(&mut a, p.chunks().iter().flat_map(|&(l, s)| [l, s]))?;
    let ow = p.out_row();
    super::super::counted_loop(&mut a, planes, |a| {
        fill(a, &masks, p.top * ow)?;
        a.mov(r8, p.h as u64)?;
        super::super::counted_loop(a, r8, |a| {
            row(a, &masks, p)?;
            a.add(src, p.w as i32)?;
            a.add(dst, ow as i32)
        })?;
        fill(a, &masks, p.bottom * ow)
    })?;
    super::super::leaf_end(a).map(Some)
}

/// One interior output row at `rsi` from the input row at `rdi`.
fn row(a: &mut CodeAssembler, masks: &MaskRegs, p: &PadPlanes) -> Result<(), IcedError> {
    for (c, &(load, store)) in p.chunks().iter().enumerate() {
        let at = 64 * c as i64;
        if load == 0 {
            store_value(a, masks, rsi + at, store)?;
            continue;
        }
        let from = rdi + (at - p.left as i64);
        match masks.get(a, load)? {
            None => a.vmovdqu8(zmm0, zmmword_ptr(from))?,
            Some(k) => {
                a.vmovdqa64(zmm0, VALUE)?;
                a.vmovdqu8(merge(zmm0, k), zmmword_ptr(from))?
            }
        }
        match masks.get(a, store)? {
            None => a.vmovdqu8(zmmword_ptr(rsi + at), zmm0)?,
            Some(k) => a.vmovdqu8(masked(zmmword_ptr(rsi + at), k), zmm0)?,
        }
    }
    Ok(())
}

/// `n` bytes of the value from `rsi`, leaving `rsi` past them: whole
/// chunks (a loop past 8), then a masked one.
fn fill(a: &mut CodeAssembler, masks: &MaskRegs, n: usize) -> Result<(), IcedError> {
    let whole = n / 64;
    if whole > 8 {
        a.mov(rcx, whole as u64)?;
        super::super::counted_loop(a, rcx, |a| {
            a.vmovdqu8(zmmword_ptr(rsi), VALUE)?;
            a.add(rsi, 64)
        })?;
    } else {
        for c in 0..whole {
            a.vmovdqu8(zmmword_ptr(rsi + 64 * c as i64), VALUE)?;
        }
        if whole > 0 {
            a.add(rsi, (64 * whole) as i32)?;
        }
    }
    if !n.is_multiple_of(64) {
        store_value(a, masks, rsi + 0, (1u64 << (n % 64)) - 1)?;
        a.add(rsi, (n % 64) as i32)?;
    }
    Ok(())
}

/// The value stored at `to` under byte mask `m`.
fn store_value(a: &mut CodeAssembler, masks: &MaskRegs, to: AsmMemoryOperand, m: u64) -> Result<(), IcedError> {
    match masks.get(a, m)? {
        None => a.vmovdqu8(zmmword_ptr(to), VALUE),
        Some(k) => a.vmovdqu8(masked(zmmword_ptr(to), k), VALUE),
    }
}
