//! MaxPool's row pass (`lower::pool`'s 2-D fast path, interior rows and
//! columns) at 256 bits (AVX2: 8 outputs per `ymm`) or 512 (AVX-512F: 16
//! per `zmm`), stride 1 or 2 along the row.
//!
//! **Same bits as the 128-bit pass.** Per output the taps fold in
//! row-major order from −∞ with the fast path's step: `a < v ? v : a`
//! (`vmaxps acc, v, acc`: `v > acc ? v : acc`), and all bits set where
//! either operand is NaN (`vcmpunordps`, then `vorps` of the mask with
//! AVX2, a masked move of ones through `k1` with AVX-512): the step's own
//! operations. At stride 2 a pair of taps takes two loads of a vector each,
//! deinterleaved into the even and odd inputs: `vpermi2ps` with lane
//! indices built in registers (AVX-512), or `vshufps` + `vpermpd` (AVX2).
//!
//! Arguments (System V): `src` (the window's top-left input of the first
//! output), `dst`, `groups` (runs of one vector of outputs, ≥ 0). A group
//! reads `src + row·row_bytes + [0, 4·n)`, `n = kw − 1 + lanes` at stride
//! 1 and `2·⌊(kw − 1)/2⌋ + 2·lanes` at stride 2 (`lower::pool`'s `reach`):
//! the caller keeps groups whose reads stay in the row.

use iced_x86::code_asm::*;

use super::avx2::Vreg;

/// A MaxPool row pass ([`max_pool_row`]): the window, the input's row
/// pitch and the width, fixed at assembly time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoolRow {
    /// Window rows.
    pub kh: usize,
    /// Window columns.
    pub kw: usize,
    /// Column stride (1 or 2).
    pub stride: usize,
    /// Bytes between input rows.
    pub row_bytes: usize,
    /// `zmm` (16 outputs per group, AVX-512F) instead of `ymm` (8).
    pub zmm: bool,
}

impl PoolRow {
    /// Outputs per group.
    pub fn lanes(&self) -> usize {
        if self.zmm {
            16
        } else {
            8
        }
    }
}

/// Machine code of the row pass ([`PoolRow`]; the module docs state the
/// operations and the arguments).
pub fn max_pool_row(p: &PoolRow) -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    let (src, dst, n) = (rdi, rsi, rdx);
    let step = (4 * p.lanes()) as i64;
    if p.zmm {
        a.set_prefer_vex(false);
        zmm_setup(&mut a, p.stride)?;
    } else {
        Vreg::splat(&mut a, ymm9, f32::NEG_INFINITY)?;
    }
    super::counted_loop(&mut a, n, |a| {
        match p.zmm {
            true => a.vmovaps(zmm0, zmm9)?,
            false => a.vmovaps(ymm0, ymm9)?,
        }
        for ty in 0..p.kh {
            let row = (ty * p.row_bytes) as i64;
            if p.stride == 1 {
                for tx in 0..p.kw {
                    let at = src + (row + 4 * tx as i64);
                    match p.zmm {
                        true => a.vmovups(zmm1, zmmword_ptr(at))?,
                        false => a.vmovups(ymm1, ymmword_ptr(at))?,
                    }
                    fold(a, p.zmm)?;
                }
                continue;
            }
            for j in 0..p.kw.div_ceil(2) {
                let at = row + 8 * j as i64;
                for (tx, odd) in [(2 * j, false), (2 * j + 1, true)] {
                    if tx < p.kw {
                        match p.zmm {
                            true => zmm_tap(a, src + at, step, odd)?,
                            false => ymm_tap(a, src + at, step, odd)?,
                        }
                        fold(a, p.zmm)?;
                    }
                }
            }
        }
        match p.zmm {
            true => a.vmovups(zmmword_ptr(dst), zmm0)?,
            false => a.vmovups(ymmword_ptr(dst), ymm0)?,
        }
        a.add(src, (step * p.stride as i64) as i32)?;
        a.add(dst, step as i32)
    })?;
    super::leaf_end(a)
}

/// `acc = a < v ? v : a`, all bits set where either is NaN: `zmm0`/`ymm0`
/// the accumulator, register 1 the tap (`ymm2` or `k1` scratch).
fn fold(a: &mut CodeAssembler, zmm: bool) -> Result<(), IcedError> {
    if zmm {
        a.vcmpps(k1, zmm0, zmm1, 3)?; // unordered
        a.vmaxps(zmm0, zmm1, zmm0)?;
        return a.vmovaps(zmm0.k1(), zmm8);
    }
    a.vcmpps(ymm2, ymm0, ymm1, 3)?;
    a.vmaxps(ymm0, ymm1, ymm0)?;
    a.vorps(ymm0, ymm0, ymm2)
}

/// The `zmm` constants: ones (`zmm8`), −∞ (`zmm9`) and at stride 2 the
/// even and odd lane indices (`zmm10`, `zmm11`: `2i` built from its bits,
/// `2 << b` added where bit `b` of `i` is set).
fn zmm_setup(a: &mut CodeAssembler, stride: usize) -> Result<(), IcedError> {
    a.vpternlogd(zmm8, zmm8, zmm8, 0xff)?;
    Vreg::splat(a, zmm9, f32::NEG_INFINITY)?;
    if stride != 2 {
        return Ok(());
    }
    let (even, odd, t) = (zmm10, zmm11, zmm12);
    a.vpxord(even, even, even)?;
    for b in 0..4 {
        let lanes: u32 = (0..16u32).filter(|i| i >> b & 1 == 1).map(|i| 1 << i).sum();
        a.mov(eax, lanes)?;
        a.kmovw(k2, eax)?;
        a.mov(eax, 2u32 << b)?;
        a.vpbroadcastd(t, eax)?;
        a.vpaddd(even.k2(), even, t)?;
    }
    a.mov(eax, 1u32)?;
    a.vpbroadcastd(t, eax)?;
    a.vpaddd(odd, even, t)
}

/// `zmm1` = the even (or odd) floats of the 32 at `at`.
fn zmm_tap(a: &mut CodeAssembler, at: AsmMemoryOperand, step: i64, odd: bool) -> Result<(), IcedError> {
    a.vmovups(zmm2, zmmword_ptr(at))?;
    a.vmovups(zmm3, zmmword_ptr(at + step))?;
    a.vmovaps(zmm1, if odd { zmm11 } else { zmm10 })?;
    a.vpermi2ps(zmm1, zmm2, zmm3)
}

/// `ymm1` = the even (or odd) floats of the 16 at `at`: `vshufps` picks
/// them per 128-bit lane (`[0 2 | 8 10 | 4 6 | 12 14]` for even), `vpermpd`
/// puts the pairs in order.
fn ymm_tap(a: &mut CodeAssembler, at: AsmMemoryOperand, step: i64, odd: bool) -> Result<(), IcedError> {
    a.vmovups(ymm2, ymmword_ptr(at))?;
    a.vmovups(ymm3, ymmword_ptr(at + step))?;
    a.vshufps(ymm1, ymm2, ymm3, if odd { 0xdd } else { 0x88 })?;
    a.vpermpd(ymm1, ymm1, 0xd8)
}
