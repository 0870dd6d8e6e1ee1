//! Target lookup: a triple and a CPU preset give an [`OwnedTargetIsa`] with
//! kerf's fixed flags (`is_pic=true`, `opt_level=speed`), and [`Caps`] say
//! which instructions kernels may emit on it.
//!
//! Kernels must never emit `floor/ceil/trunc/nearest` without
//! [`Caps::round`], nor `fma` without [`Caps::fma`]: Cranelift would lower
//! them to libm calls (`floorf`, `fmaf`) and the object would have undefined
//! symbols. They must not use vector types without [`Caps::simd`]
//! (riscv64gc has no vector registers in the default preset).

pub mod aarch64;
pub mod riscv64;
pub mod x64;

use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};

use crate::TargetError;

/// Per-core data cache sizes (bytes) the kernels block for; one constant
/// `CACHE` per ISA module, reached by kernels through [`Caps::cache`].
///
/// Contract (how `lower::gemm` and `lower::winograd` derive their blocks):
/// - `l1d`: the GEMM engine's K slice is the largest even `KC` with
///   `(MR + L) · KC · 4 ≤ 3/4 · l1d` (one A row-block slice of `MR` rows
///   and one B panel slice of `L` lanes stay in L1; the last quarter is
///   left for the output tile, stack and whatever else is hot).
/// - `l2`: the budget for the B panels of one pixel block (conv GEMM) and
///   for one tile block's transformed input and products (Winograd): they
///   are re-read once per A row block, so they should stay in L2.
///
/// The values only decide blocking: results are the same for any values
/// (every output is the same sum in the same order; a K slice stores and
/// reloads exact f32 partial sums).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheParams {
    /// L1 data cache per core.
    pub l1d: usize,
    /// L2 cache per core (the private share when it is shared).
    pub l2: usize,
}

/// What the kernels may use on a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// 128-bit `f32x4` vectors.
    pub simd: bool,
    /// A native fused multiply-add (no libcall).
    pub fma: bool,
    /// Native `floor/ceil/trunc/nearest` on f32 (no libcall).
    pub round: bool,
    /// Cache sizes to block for (the ISA module's `CACHE`).
    pub cache: CacheParams,
}

impl Caps {
    /// Capabilities of a built ISA, read from its flags.
    pub fn of(isa: &dyn TargetIsa) -> Caps {
        let flags = isa.isa_flags();
        let on = |name: &str| flags.iter().any(|v| v.name == name && v.as_bool() == Some(true));
        match isa.triple().architecture {
            target_lexicon::Architecture::X86_64 => {
                Caps { simd: true, fma: on("has_avx") && on("has_fma"), round: on("has_sse41"), cache: x64::CACHE }
            }
            target_lexicon::Architecture::Aarch64(_) => {
                Caps { simd: true, fma: true, round: true, cache: aarch64::CACHE }
            }
            // Scalar path on riscv64 (the V extension is a Tier-3 experiment);
            // F/D have fused multiply-add, rounding goes through libcalls in
            // Cranelift unless Zfa is present.
            target_lexicon::Architecture::Riscv64(_) => {
                Caps { simd: false, fma: true, round: on("has_zfa"), cache: riscv64::CACHE }
            }
            _ => Caps { simd: false, fma: false, round: false, cache: riscv64::CACHE },
        }
    }
}

/// The canonical triples kerf accepts.
pub const TRIPLES: [&str; 3] = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu", "riscv64gc-unknown-linux-gnu"];

/// The triple of the machine running the compiler.
pub fn host_triple() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        TRIPLES[0]
    } else if cfg!(target_arch = "aarch64") {
        TRIPLES[1]
    } else {
        TRIPLES[2]
    }
}

/// Resolves `host` and checks the triple is one of [`TRIPLES`].
pub fn canonical_triple(triple: &str) -> Result<&'static str, TargetError> {
    let t = if triple == "host" { host_triple() } else { triple };
    TRIPLES.iter().copied().find(|&x| x == t).ok_or_else(|| TargetError::UnknownTriple(triple.to_string()))
}

/// The shared (target-independent) flags.
fn shared_flags(pic: bool) -> Result<settings::Flags, TargetError> {
    let mut b = settings::builder();
    let pic = if pic { "true" } else { "false" };
    for (k, v) in [("opt_level", "speed"), ("is_pic", pic), ("enable_verifier", "true")] {
        b.set(k, v).map_err(|e| TargetError::Isa(format!("{k}={v}: {e}")))?;
    }
    Ok(settings::Flags::new(b))
}

/// Builds the ISA for `triple` (`host` allowed) and `cpu` (a preset of the
/// per-ISA module, `native` on the host only).
pub fn lookup(triple: &str, cpu: &str) -> Result<OwnedTargetIsa, TargetError> {
    lookup_with_pic(triple, cpu, true)
}

/// Like [`lookup`]; `pic = false` is for the in-process JIT only
/// (cranelift-jit refuses PIC code; objects are always PIC).
pub(crate) fn lookup_with_pic(triple: &str, cpu: &str, pic: bool) -> Result<OwnedTargetIsa, TargetError> {
    let t = canonical_triple(triple)?;
    let isa_builder = match t {
        "x86_64-unknown-linux-gnu" => x64::builder(cpu, t == host_triple())?,
        "aarch64-unknown-linux-gnu" => aarch64::builder(cpu, t == host_triple())?,
        _ => riscv64::builder(cpu, t == host_triple())?,
    };
    isa_builder.finish(shared_flags(pic)?).map_err(|e| TargetError::Isa(e.to_string()))
}

/// Creates the Cranelift builder for a triple string.
pub(crate) fn base_builder(triple: &str) -> Result<cranelift_codegen::isa::Builder, TargetError> {
    let t: target_lexicon::Triple = triple.parse().map_err(|e| TargetError::Isa(format!("{triple}: {e}")))?;
    cranelift_codegen::isa::lookup(t).map_err(|e| TargetError::Isa(e.to_string()))
}

/// Applies a list of ISA flag names (`has_x` = true) or presets.
pub(crate) fn enable(b: &mut cranelift_codegen::isa::Builder, names: &[&str]) -> Result<(), TargetError> {
    for n in names {
        b.enable(n).map_err(|e| TargetError::Isa(format!("{n}: {e}")))?;
    }
    Ok(())
}

/// The host builder with flags detected from the running CPU.
pub(crate) fn native_builder(
    triple: &str,
    cpu: &str,
    on_host: bool,
    presets: &[&str],
) -> Result<cranelift_codegen::isa::Builder, TargetError> {
    if !on_host {
        return Err(TargetError::UnknownCpu {
            triple: triple.into(),
            cpu: cpu.into(),
            supported: format!("{} ('native' only when compiling for the host)", presets.join(", ")),
        });
    }
    cranelift_native::builder().map_err(|e| TargetError::Isa(e.to_string()))
}

pub(crate) fn unknown_cpu(triple: &str, cpu: &str, presets: &[&str]) -> TargetError {
    TargetError::UnknownCpu { triple: triple.into(), cpu: cpu.into(), supported: presets.join(", ") }
}
