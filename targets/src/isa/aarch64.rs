//! AArch64 presets: `baseline` (ARMv8-A with NEON, always present) and
//! `dotprod` (adds `sdot`/`udot`).

use crate::TargetError;

pub const TRIPLE: &str = "aarch64-unknown-linux-gnu";

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
