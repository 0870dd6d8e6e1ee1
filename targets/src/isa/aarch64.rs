//! AArch64: `baseline` (ARMv8-A with NEON, always present) and `dotprod`
//! (adds `sdot`/`udot`).

use super::{CacheParams, Caps, FlagOn, IsaDesc};

/// Everything kerf knows about AArch64.
pub const ISA: IsaDesc = IsaDesc {
    triple: "aarch64-unknown-linux-gnu",
    formats: &["aarch64-apple-darwin"],
    presets: &[("baseline", &[]), ("dotprod", &["has_dotprod"])],
    aliases: &[],
    // 64 KiB L1d, 1 MiB L2 per core (Arm Neoverse N1/V1/N2 servers;
    // Cortex-A7x cores have 32-64 KiB / 256-512 KiB, where the pixel blocks
    // spill to L3 and degrade gracefully). Not measured on hardware here
    // (qemu only).
    cache: CacheParams { l1d: 64 << 10, l2: 1 << 20 },
    caps,
};

fn caps(on: FlagOn<'_>) -> Caps {
    let dotprod = on("has_dotprod");
    let cache = ISA.cache;
    Caps {
        simd: true,
        fma: true,
        round: true,
        cache,
        avx2: false,
        avx512: false,
        vnni: false,
        vbmi: false,
        dotprod,
        neon: true,
        vector_registers: 32,
        skip_zeros: true,
    }
}
