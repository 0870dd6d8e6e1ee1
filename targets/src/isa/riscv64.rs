//! riscv64: `rv64gc` (the default, scalar kernels) and `v` (adds the V
//! extension with a VLEN of at least 128 bits: the 128-bit vector kernels,
//! which Cranelift lowers to RVV with `vsetivli` for 4 × f32 or 16 × i8
//! whatever the CPU's VLEN, so the same objects run on VLEN 128, 256 and
//! 512; the op battery runs them at 128 and 256 under qemu).
//!
//! Cranelift's RVV lowering is its least-travelled backend path (Tier 3
//! in Wasmtime), so every test that runs `v` objects compares them with
//! the reference like the other ISAs do: the op battery, the ONNX node
//! cases, the fixture models and the integer conv battery.

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

// Vectors with `v` only; F/D have fused multiply-add; rounding goes
// through libcalls unless Zfa.
fn caps(on: FlagOn<'_>) -> Caps {
    Caps {
        simd: on("has_v"),
        fma: true,
        round: on("has_zfa"),
        cache: ISA.cache,
        avx2: false,
        avx512: false,
        vnni: false,
        vbmi: false,
        dotprod: false,
        neon: false,
        vector_registers: 32,
        skip_zeros: true,
    }
}
