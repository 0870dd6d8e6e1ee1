//! MaxPool of bytes (`lower::pool`'s 2-D fast path on u8/i8 planes: the
//! integer convs' pools) over whole interior rows with AVX-512BW (and, at
//! stride 2, VBMI): 64 outputs per `zmm`, border columns included.
//!
//! Per group of up to 64 outputs of a row and per tap, one `vmovdqu8` of
//! the inputs under a byte mask of the row's extent (compile-time: the
//! columns before the row and past its end are never read, and their lanes
//! keep the dtype's lowest value, which no maximum picks over a valid
//! tap), then `vpmaxub`/`vpmaxsb`. At stride 2 a pair of taps takes two
//! such loads (128 input bytes; one when the group has at most 32
//! outputs) and two `vpermt2b` by the even and odd byte numbers. The
//! group's outputs are stored under a mask of the row's length. The
//! maximum of bytes is exact, so any tap order gives the 128-bit pass's
//! bits.
//!
//! Arguments (System V): `src` (the first output row's top window row, at
//! its column 0), `dst` (that output row), `rows` (≥ 0 consecutive output
//! rows: `src` steps by [`BytePoolRows::row_step`] bytes per row, `dst` by
//! the output width). Every window row of every one of those output rows
//! must lie in the plane (the caller's interior rows).

use iced_x86::code_asm::*;

use super::masks::{masked, merge, span, MaskRegs};

/// A byte MaxPool row pass ([`byte_pool_rows`]), fixed at assembly time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BytePoolRows {
    /// Window rows.
    pub kh: usize,
    /// Window columns.
    pub kw: usize,
    /// Column stride (1 or 2).
    pub stride: usize,
    /// Padding columns before the row.
    pub pad: usize,
    /// Bytes per input row.
    pub in_w: usize,
    /// Outputs per row.
    pub out_w: usize,
    /// Input bytes from one output row's window to the next one's (the
    /// row stride times `in_w`).
    pub row_step: usize,
    /// i8 (`vpmaxsb`, lowest −128) instead of u8 (`vpmaxub`, lowest 0).
    pub signed: bool,
}

/// Outputs per row up to which [`byte_pool_rows`] applies (the code is
/// unrolled over a row's groups and taps).
pub const BYTE_POOL_MAX_OUT: usize = 256;

impl BytePoolRows {
    /// Whether the pass is defined for these sizes.
    pub fn fits(&self) -> bool {
        matches!(self.stride, 1 | 2)
            && (1..=16).contains(&self.kh)
            && (1..=16).contains(&self.kw)
            && self.pad < self.kw
            && (1..=BYTE_POOL_MAX_OUT).contains(&self.out_w)
            && self.in_w >= 1
    }

    /// Outputs of group `g` (64 but for the last).
    fn outputs(&self, g: usize) -> usize {
        (self.out_w - 64 * g).min(64)
    }

    /// The loads of group `g`'s taps along one window row: per load its
    /// column (relative to the row's column 0, possibly negative) and the
    /// byte mask of the row's extent from there. Stride 1: one per tap;
    /// stride 2: per pair of taps the two halves (the second only where
    /// the group has more than 32 outputs).
    fn loads(&self, g: usize) -> Vec<Vec<(i64, u64)>> {
        let first = (64 * g * self.stride) as i64 - self.pad as i64;
        let at = |s: i64| (s, span(s, 0, self.in_w as i64));
        match self.stride {
            1 => (0..self.kw).map(|t| vec![at(first + t as i64)]).collect(),
            _ => (0..self.kw.div_ceil(2))
                .map(|j| {
                    let s = first + 2 * j as i64;
                    let halves = if 2 * self.outputs(g) > 64 { 2 } else { 1 };
                    (0..halves).map(|h| at(s + 64 * h)).collect()
                })
                .collect(),
        }
    }

    /// Every byte mask the code uses: the loads' and the groups' stores.
    fn masks(&self) -> Vec<u64> {
        let groups = self.out_w.div_ceil(64);
        let loads = (0..groups).flat_map(|g| self.loads(g)).flatten().map(|(_, m)| m);
        loads.chain((0..groups).map(|g| span(0, 0, self.outputs(g) as i64))).collect()
    }
}

/// The registers: the dtype's lowest value, the even and odd byte
/// numbers, the accumulator, the loads and the permuted taps.
const LOW: AsmRegisterZmm = zmm8;
const EVEN: AsmRegisterZmm = zmm10;
const ODD: AsmRegisterZmm = zmm11;
const ACC: AsmRegisterZmm = zmm0;
const HALVES: [AsmRegisterZmm; 2] = [zmm1, zmm2];
const TAP: AsmRegisterZmm = zmm3;

/// Machine code of the pass ([`BytePoolRows`]; the module docs state the
/// operations and the arguments). `None` where it does not
/// [`BytePoolRows::fits`].
pub fn byte_pool_rows(p: &BytePoolRows) -> Result<Option<Vec<u8>>, IcedError> {
    if !p.fits() {
        return Ok(None);
    }
    let mut a = CodeAssembler::new(64)?;
    a.set_prefer_vex(false);
    let (src, dst, rows) = (rdi, rsi, rdx);
    a.mov(eax, if p.signed { 0x8080_8080u32 } else { 0 })?;
    a.vpbroadcastd(LOW, eax)?;
    if p.stride == 2 {
        byte_numbers(&mut a)?;
    }
    let masks = MaskRegs::hoist(&mut a, p.masks())?;
    super::super::counted_loop(&mut a, rows, |a| {
        for g in 0..p.out_w.div_ceil(64) {
            group(a, &masks, p, g)?;
        }
        a.add(src, p.row_step as i32)?;
        a.add(dst, p.out_w as i32)
    })?;
    super::super::leaf_end(a).map(Some)
}

/// `EVEN` = bytes `0, 2, …, 126`, `ODD` = `1, 3, …, 127` (`rax`, `zmm3`
/// clobbered).
fn byte_numbers(a: &mut CodeAssembler) -> Result<(), IcedError> {
    // dwords 0..15, times 4, spread to the dword's four bytes, plus 0..3:
    // the byte numbers 0..63; doubled, and plus one
    super::lane_indices(a, EVEN, xmm3)?;
    a.vpslld(EVEN, EVEN, 2)?;
    a.mov(eax, 0x0101_0101u32)?;
    a.vpbroadcastd(zmm3, eax)?;
    a.vpmulld(EVEN, EVEN, zmm3)?;
    a.mov(eax, 0x0302_0100u32)?;
    a.vpbroadcastd(ODD, eax)?;
    a.vpaddb(EVEN, EVEN, ODD)?;
    a.vpaddb(EVEN, EVEN, EVEN)?;
    a.vpaddb(ODD, EVEN, zmm3)
}

/// Group `g` of the output row at `rsi` from the window rows at `rdi`.
fn group(a: &mut CodeAssembler, masks: &MaskRegs, p: &BytePoolRows, g: usize) -> Result<(), IcedError> {
    a.vmovdqa64(ACC, LOW)?;
    for ty in 0..p.kh {
        let row = (ty * p.in_w) as i64;
        for (j, loads) in p.loads(g).iter().enumerate() {
            let mut regs = Vec::new();
            for (&(col, m), &r) in loads.iter().zip(&HALVES) {
                regs.push(load(a, masks, r, rdi + (row + col), m)?);
            }
            if p.stride == 1 {
                max(a, p, regs[0])?;
                continue;
            }
            let hi = regs.get(1).copied().unwrap_or(LOW);
            for (idx, tap) in [(EVEN, 2 * j), (ODD, 2 * j + 1)] {
                if tap < p.kw {
                    a.vmovdqa64(TAP, regs[0])?;
                    a.vpermt2b(TAP, idx, hi)?;
                    max(a, p, TAP)?;
                }
            }
        }
    }
    let at = rsi + (64 * g) as i64;
    match masks.get(a, span(0, 0, p.outputs(g) as i64))? {
        None => a.vmovdqu8(zmmword_ptr(at), ACC),
        Some(k) => a.vmovdqu8(masked(zmmword_ptr(at), k), ACC),
    }
}

/// The 64 bytes at `from` under mask `m` into `r`, the masked-off lanes
/// the lowest value; `LOW` itself when `m` is empty.
fn load(
    a: &mut CodeAssembler,
    masks: &MaskRegs,
    r: AsmRegisterZmm,
    from: AsmMemoryOperand,
    m: u64,
) -> Result<AsmRegisterZmm, IcedError> {
    if m == 0 {
        return Ok(LOW);
    }
    match masks.get(a, m)? {
        None => a.vmovdqu8(r, zmmword_ptr(from))?,
        Some(k) => {
            a.vmovdqa64(r, LOW)?;
            a.vmovdqu8(merge(r, k), zmmword_ptr(from))?;
        }
    }
    Ok(r)
}

/// `ACC = max(ACC, v)` in the dtype's order.
fn max(a: &mut CodeAssembler, p: &BytePoolRows, v: AsmRegisterZmm) -> Result<(), IcedError> {
    match p.signed {
        true => a.vpmaxsb(ACC, ACC, v),
        false => a.vpmaxub(ACC, ACC, v),
    }
}
