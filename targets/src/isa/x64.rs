//! x86-64: `baseline` is SSE2 only (no FMA, no SSE4.1 rounding: kernels
//! use their own rounding); `haswell`, `cascadelake` and `sapphirerapids`
//! set both `has_avx` and `has_fma`, which Cranelift needs before it emits
//! `vfmadd` instead of calls to `fmaf`. `cascadelake` is AVX-512 with VNNI
//! but without VBMI (Intel's Cascade Lake and Cooper Lake servers): the
//! VNNI tiles with AVX2's quad packer, and no VBMI byte permutes.

use super::{CacheParams, Caps, FlagOn, IsaDesc};

/// Everything kerf knows about x86-64.
pub const ISA: IsaDesc = IsaDesc {
    triple: "x86_64-unknown-linux-gnu",
    formats: &["x86_64-apple-darwin", "x86_64-pc-windows-msvc"],
    presets: &[
        ("baseline", &[]),
        ("haswell", &["haswell"]),
        ("cascadelake", &["cascadelake"]),
        ("sapphirerapids", &["sapphirerapids"]),
    ],
    aliases: &[],
    // 32 KiB L1d, 1 MiB L2 per core (AMD Zen 2-4 EPYC, the measured host;
    // Intel server cores have 48 KiB / 1.25-2 MiB, which these blocks
    // under-use slightly but never overflow). Gives the GEMM K slice 384 and
    // 1 MiB pixel / Winograd tile blocks.
    cache: CacheParams { l1d: 32 << 10, l2: 1 << 20 },
    caps,
};

fn caps(on: FlagOn<'_>) -> Caps {
    let fma = on("has_avx") && on("has_fma");
    let avx2 = fma && on("has_avx2");
    let avx512 = avx2 && on("has_avx512f") && on("has_avx512vl");
    let vnni = avx512 && on("has_avx512vnni");
    let vbmi = vnni && on("has_avx512vbmi");
    let round = on("has_sse41");
    Caps {
        simd: true,
        fma,
        round,
        cache: ISA.cache,
        avx2,
        avx512,
        vnni,
        vbmi,
        dotprod: false,
        neon: false,
        vector_registers: 16,
        skip_zeros: true,
    }
}
