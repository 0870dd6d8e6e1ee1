//! riscv64: `rv64gc` (the default, scalar kernels) and `v` (adds the V
//! extension with VLEN >= 128; kernels still use the scalar path for now,
//! so the code runs on any rv64gc CPU).

use super::{CacheParams, Caps, FlagOn, IsaDesc};

/// Everything kerf knows about RISC-V 64.
pub const ISA: IsaDesc = IsaDesc {
    triple: "riscv64gc-unknown-linux-gnu",
    formats: &[],
    presets: &[("rv64gc", &[]), ("v", &["has_v", "has_zvl128b"])],
    // the name every other target uses for its lowest preset
    aliases: &[("baseline", "rv64gc")],
    // 32 KiB L1d, 512 KiB L2 per core (SiFive U74, SpacemiT X60 class). Not
    // measured on hardware here (qemu only).
    cache: CacheParams { l1d: 32 << 10, l2: 512 << 10 },
    caps,
};

// Scalar path (the V extension is a Tier-3 experiment in Cranelift); F/D
// have fused multiply-add; rounding goes through libcalls unless Zfa.
fn caps(on: FlagOn<'_>) -> Caps {
    Caps {
        simd: false,
        fma: true,
        round: on("has_zfa"),
        cache: ISA.cache,
        avx2: false,
        avx512: false,
        vnni: false,
        dotprod: false,
    }
}
