//! riscv64 presets: `rv64gc` (the default, scalar kernels) and `v` (adds the
//! V extension with VLEN >= 128; kernels still use the scalar path for now,
//! so the code runs on any rv64gc CPU).

use super::CacheParams;
use crate::TargetError;

pub const TRIPLE: &str = "riscv64gc-unknown-linux-gnu";

/// Cache sizes to block for: 32 KiB L1d, 512 KiB L2 per core (SiFive U74,
/// SpacemiT X60 class). Not measured on hardware here (qemu only).
pub const CACHE: CacheParams = CacheParams { l1d: 32 << 10, l2: 512 << 10 };

/// CPU presets this target accepts.
pub const PRESETS: [&str; 3] = ["rv64gc", "v", "native"];

pub(crate) fn builder(cpu: &str, on_host: bool) -> Result<cranelift_codegen::isa::Builder, TargetError> {
    if cpu == "native" {
        return super::native_builder(TRIPLE, cpu, on_host, &PRESETS);
    }
    let mut b = super::base_builder(TRIPLE)?;
    match cpu {
        "rv64gc" | "baseline" => {}
        "v" => super::enable(&mut b, &["has_v", "has_zvl128b"])?,
        _ => return Err(super::unknown_cpu(TRIPLE, cpu, &PRESETS)),
    }
    Ok(b)
}
