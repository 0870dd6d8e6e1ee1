//! [`dw_flat`]: a depthwise conv's small stride-1 "same" plane on `zmm`,
//! the plane flattened ([`DwFlat`], which states the scheme and the bits
//! it keeps): the 128-bit `lower::depthwise` flat path at 16 lanes, with
//! AVX-512's masks where that path zeroes and skips lanes (DS-CNN's 25x5
//! planes: 8 vectors for 125 pixels; MobileNetV2's 7x7: 4 for 49).
//!
//! Unlike the 8-lane pass (`avx2::ymm_dw_flat`) it reads the plane in
//! place, no copy: its load mask zeroes the lanes that read nothing (a
//! zero-masked load, which also suppresses the faults of addresses outside
//! the plane) and its FMA mask keeps the lanes whose group skips the tap
//! (merge masking).

use iced_x86::code_asm::*;

use super::super::avx2::{activation, DwFlat, DW_FLAT_MAX_TAPS};

/// Accumulators in flight (`zmm16`–`zmm23`): positions per pass.
const ACC: [AsmRegisterZmm; 8] = [zmm16, zmm17, zmm18, zmm19, zmm20, zmm21, zmm22, zmm23];
/// Taps whose weights live in registers (`zmm0`–`zmm15`); the FMAs of
/// later taps read theirs from the weights argument, broadcast
/// (`{1to16}`).
const REG_TAPS: usize = 16;

/// Machine code of the pass over one plane, with the arguments (System V
/// order) `out` (the output plane), `x` (the input plane), `w` (the taps'
/// weights then the bias, one f32 each) and `residual` (a plane, read with
/// `epi.residual`).
/// `None` where the plane does not fit the pass: rows shorter than a
/// group, more taps than [`DW_FLAT_MAX_TAPS`], a scale or an addend.
pub fn dw_flat(p: &DwFlat) -> Option<Vec<u8>> {
    let fits = p.n() >= 4 && p.w >= 4 && p.taps.len() <= DW_FLAT_MAX_TAPS;
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
                let (load, fma) = p.masks(16 * j, 16, tap);
                let (load, fma) = (load as u16, fma as u16);
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
