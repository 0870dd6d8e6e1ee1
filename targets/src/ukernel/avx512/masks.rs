//! Byte masks of the AVX-512BW kernels whose loads and stores are cut at
//! compile-time positions (the plane pad, the byte MaxPool rows): every
//! partial mask a kernel uses lives in its own `k` register, loaded once
//! before the loops, as long as six registers hold them; any other is
//! loaded where it is used, into `k7`.

use iced_x86::code_asm::*;

/// The mask registers of one kernel ([`MaskRegs::hoist`]).
pub(super) struct MaskRegs {
    hoisted: Vec<(u64, AsmRegisterK)>,
}

impl MaskRegs {
    /// Loads the partial masks among `masks` (neither empty nor full),
    /// the six numerically smallest distinct ones, into `k1`–`k6` (`rax`
    /// clobbered).
    pub(super) fn hoist(a: &mut CodeAssembler, masks: impl IntoIterator<Item = u64>) -> Result<MaskRegs, IcedError> {
        let mut partial: Vec<u64> = masks.into_iter().filter(|&m| m != 0 && m != u64::MAX).collect();
        partial.sort_unstable();
        partial.dedup();
        let mut hoisted = Vec::new();
        for (m, k) in partial.into_iter().zip([k1, k2, k3, k4, k5, k6]) {
            a.mov(rax, m)?;
            a.kmovq(k, rax)?;
            hoisted.push((m, k));
        }
        Ok(MaskRegs { hoisted })
    }

    /// The register holding `m` (`None`: all 64 bytes), loading it into
    /// `k7` here when it was not hoisted (`rax` clobbered).
    pub(super) fn get(&self, a: &mut CodeAssembler, m: u64) -> Result<Option<AsmRegisterK>, IcedError> {
        if m == u64::MAX {
            return Ok(None);
        }
        if let Some(&(_, k)) = self.hoisted.iter().find(|(h, _)| *h == m) {
            return Ok(Some(k));
        }
        a.mov(rax, m)?;
        a.kmovq(k7, rax)?;
        Ok(Some(k7))
    }
}

/// `r` under merge masking by `k` (one of `k1`–`k7`).
pub(super) fn merge(r: AsmRegisterZmm, k: AsmRegisterK) -> AsmRegisterZmm {
    match k {
        k if k == k1 => r.k1(),
        k if k == k2 => r.k2(),
        k if k == k3 => r.k3(),
        k if k == k4 => r.k4(),
        k if k == k5 => r.k5(),
        k if k == k6 => r.k6(),
        _ => r.k7(),
    }
}

/// A memory operand under mask `k` (one of `k1`–`k7`).
pub(super) fn masked(m: AsmMemoryOperand, k: AsmRegisterK) -> AsmMemoryOperand {
    match k {
        k if k == k1 => m.k1(),
        k if k == k2 => m.k2(),
        k if k == k3 => m.k3(),
        k if k == k4 => m.k4(),
        k if k == k5 => m.k5(),
        k if k == k6 => m.k6(),
        _ => m.k7(),
    }
}

/// Bits `i` of 64 where `lo ≤ at + i < hi`.
pub(super) fn span(at: i64, lo: i64, hi: i64) -> u64 {
    (0..64).filter(|&i| (lo..hi).contains(&(at + i))).fold(0u64, |m, i| m | 1 << i)
}
