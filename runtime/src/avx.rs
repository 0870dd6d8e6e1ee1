//! The AVX upper-state guard: [`clean_upper_state`] runs before generated
//! code is entered.
//!
//! Cranelift's x86-64 code mixes VEX instructions with legacy-SSE moves. A
//! host that leaves the upper halves of the ymm/zmm registers dirty (a
//! library built with AVX that returns without `vzeroupper`; tract does)
//! makes every legacy-SSE instruction pay a state transition or a false
//! dependency: kerf's kernels measured ~1.8x slower until something
//! executed `vzeroupper` (`docs/performance.md`, lstm_kws 0.086 -> 0.151 ms).
//! Executing it on entry costs a few cycles and makes the model's speed
//! independent of what the host ran before.

/// Clears the upper halves of the vector registers when the CPU has AVX
/// (`vzeroupper`); does nothing elsewhere.
#[inline]
pub fn clean_upper_state() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX, so `vzeroupper` exists. It zeroes bits
        // 128+ of the vector registers and touches no memory, stack or
        // flags; the xmm clobbers tell the compiler not to keep any vector
        // value live across it.
        unsafe {
            core::arch::asm!(
                "vzeroupper",
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                options(nomem, nostack, preserves_flags),
            );
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use std::arch::x86_64::__cpuid_count;

    /// XINUSE (XGETBV with ECX = 1), when the CPU reports it.
    fn xinuse() -> Option<u64> {
        let xsave = __cpuid_count(1, 0).ecx & (1 << 27) != 0; // OSXSAVE
        let ecx1 = xsave && __cpuid_count(0xd, 1).eax & (1 << 2) != 0; // XGETBV with ECX = 1
        if !ecx1 {
            return None;
        }
        let (lo, hi): (u32, u32);
        // SAFETY: XGETBV with ECX = 1 is supported (CPUID.(0DH,1):EAX[2]).
        unsafe { core::arch::asm!("xgetbv", in("ecx") 1u32, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
        Some(u64::from(hi) << 32 | u64::from(lo))
    }

    /// Dirty upper state (a 256-bit write, as an AVX host leaves it) is
    /// clean after the guard: XINUSE bit 2 (AVX state) goes from 1 to 0.
    #[test]
    fn guard_clears_a_dirty_upper_state() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("SKIPPED guard_clears_a_dirty_upper_state: this CPU has no AVX2");
            return;
        }
        if xinuse().is_none() {
            eprintln!("SKIPPED guard_clears_a_dirty_upper_state: this CPU does not report XINUSE (XGETBV ECX=1)");
            return;
        }
        // SAFETY: AVX2 is present; ymm15 is declared clobbered.
        unsafe { core::arch::asm!("vpcmpeqd ymm15, ymm15, ymm15", out("xmm15") _, options(nomem, nostack)) };
        let dirty = xinuse().unwrap_or(0);
        super::clean_upper_state();
        let clean = xinuse().unwrap_or(u64::MAX);
        assert_eq!(dirty & 4, 4, "a 256-bit write should mark the AVX state in use (XINUSE {dirty:#x})");
        assert_eq!(clean & 4, 0, "vzeroupper should clear the AVX state (XINUSE {clean:#x})");
    }
}
