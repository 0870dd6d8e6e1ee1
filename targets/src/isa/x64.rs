//! x86-64 presets. `baseline` is SSE2 only (no FMA, no SSE4.1 rounding:
//! kernels use their own rounding); `haswell` and `sapphirerapids` set both
//! `has_avx` and `has_fma`, which Cranelift needs before it emits
//! `vfmadd` instead of calls to `fmaf`.

use super::CacheParams;
use crate::TargetError;

pub const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// Cache sizes to block for: 32 KiB L1d, 1 MiB L2 per core (AMD Zen 2-4
/// EPYC, the measured host; Intel server cores have 48 KiB / 1.25-2 MiB,
/// which these blocks under-use slightly but never overflow). Gives the
/// GEMM K slice 384 and 1 MiB pixel / Winograd tile blocks.
pub const CACHE: CacheParams = CacheParams { l1d: 32 << 10, l2: 1 << 20 };

/// CPU presets this target accepts.
pub const PRESETS: [&str; 4] = ["baseline", "haswell", "sapphirerapids", "native"];

pub(crate) fn builder(cpu: &str, on_host: bool) -> Result<cranelift_codegen::isa::Builder, TargetError> {
    if cpu == "native" {
        return super::native_builder(TRIPLE, cpu, on_host, &PRESETS);
    }
    let mut b = super::base_builder(TRIPLE)?;
    match cpu {
        "baseline" => {}
        "haswell" | "sapphirerapids" => super::enable(&mut b, &[cpu])?,
        _ => return Err(super::unknown_cpu(TRIPLE, cpu, &PRESETS)),
    }
    Ok(b)
}
