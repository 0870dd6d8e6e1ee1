//! AArch64 presets: `baseline` (ARMv8-A with NEON, always present) and
//! `dotprod` (adds `sdot`/`udot`).

use super::CacheParams;
use crate::TargetError;

pub const TRIPLE: &str = "aarch64-unknown-linux-gnu";

/// Cache sizes to block for: 64 KiB L1d, 1 MiB L2 per core (Arm Neoverse
/// N1/V1/N2 servers; Cortex-A7x cores have 32-64 KiB / 256-512 KiB, where
/// the pixel blocks spill to L3 and degrade gracefully). Not measured on
/// hardware here (qemu only).
pub const CACHE: CacheParams = CacheParams { l1d: 64 << 10, l2: 1 << 20 };

/// CPU presets this target accepts.
pub const PRESETS: [&str; 3] = ["baseline", "dotprod", "native"];

pub(crate) fn builder(cpu: &str, on_host: bool) -> Result<cranelift_codegen::isa::Builder, TargetError> {
    if cpu == "native" {
        return super::native_builder(TRIPLE, cpu, on_host, &PRESETS);
    }
    let mut b = super::base_builder(TRIPLE)?;
    match cpu {
        "baseline" => {}
        "dotprod" => super::enable(&mut b, &["has_dotprod"])?,
        _ => return Err(super::unknown_cpu(TRIPLE, cpu, &PRESETS)),
    }
    Ok(b)
}
