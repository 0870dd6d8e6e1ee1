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

use cranelift_codegen::isa::{CallConv, OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};

use crate::TargetError;

/// Per-core data cache sizes (bytes) the kernels block for; one per ISA
/// description ([`IsaDesc::cache`]), reached by kernels through [`Caps::cache`].
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
    /// AVX2 + FMA under the System V ABI: the assembled 256-bit
    /// micro-kernels of [`crate::ukernel::avx2`] replace the GEMM engine's
    /// 128-bit tiles (x86-64 `haswell` and newer presets, `native` where
    /// the host has them; never `baseline`).
    pub avx2: bool,
}

impl Caps {
    /// Capabilities of a built ISA, from its description and flags.
    pub fn of(isa: &dyn TargetIsa) -> Caps {
        let flags = isa.isa_flags();
        let on = |name: &str| flags.iter().any(|v| v.name == name && v.as_bool() == Some(true));
        match describe(isa.triple()) {
            Some(d) => {
                let mut c = (d.caps)(&on);
                c.avx2 &= isa.default_call_conv() == CallConv::SystemV;
                c
            }
            // lookup builds only described ISAs; anything else gets the
            // scalar, libcall-free subset
            None => Caps { simd: false, fma: false, round: false, cache: riscv64::ISA.cache, avx2: false },
        }
    }
}

/// Whether a flag is set on a built ISA.
pub type FlagOn<'a> = &'a dyn Fn(&str) -> bool;
/// A target's capabilities from its flags.
pub type CapsOf = fn(FlagOn<'_>) -> Caps;

/// Everything kerf knows about one ISA, stated once in its module: adding a
/// target or a preset touches that module and [`ISAS`] only.
#[derive(Clone, Copy)]
pub struct IsaDesc {
    /// The canonical triple (ELF, Linux: objects, archives, the JIT).
    pub triple: &'static str,
    /// The same ISA for the other object formats, same presets and
    /// kernels: Mach-O (`*-apple-darwin`: symbols get the leading
    /// underscore C expects there, BSD-style archives) and COFF
    /// (`*-pc-windows-msvc`: the Windows x64 calling convention, COFF
    /// archives). Compile-only: the JIT runs the canonical triple.
    pub formats: &'static [&'static str],
    /// CPU presets and the Cranelift flags or presets each enables (the
    /// first is the lowest common denominator). `native` (the host's
    /// detected flags) is accepted on the host in addition.
    pub presets: &'static [(&'static str, &'static [&'static str])],
    /// Other accepted names of presets: `(alias, preset)`.
    pub aliases: &'static [(&'static str, &'static str)],
    /// Cache sizes the kernels block for.
    pub cache: CacheParams,
    /// What kernels may use, from the built ISA's flags.
    pub caps: CapsOf,
}

impl std::fmt::Debug for IsaDesc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsaDesc").field("triple", &self.triple).finish_non_exhaustive()
    }
}

impl IsaDesc {
    /// The preset names, `native` last.
    pub fn preset_names(&self) -> Vec<&'static str> {
        self.presets.iter().map(|p| p.0).chain(std::iter::once("native")).collect()
    }
    /// Every triple of this ISA, the canonical one first.
    pub fn triples(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.triple).chain(self.formats.iter().copied())
    }
    /// The Cranelift builder for `triple` (one of [`IsaDesc::triples`]) and
    /// preset `cpu` (an alias allowed).
    fn builder(&self, triple: &str, cpu: &str, on_host: bool) -> Result<cranelift_codegen::isa::Builder, TargetError> {
        let names = self.preset_names();
        if cpu == "native" {
            return native_builder(triple, cpu, on_host, &names);
        }
        let cpu = self.aliases.iter().find(|(a, _)| *a == cpu).map_or(cpu, |(_, p)| *p);
        let Some((_, flags)) = self.presets.iter().find(|(p, _)| *p == cpu) else {
            return Err(unknown_cpu(triple, cpu, &names));
        };
        let mut b = base_builder(triple)?;
        enable(&mut b, flags)?;
        Ok(b)
    }
}

/// Every target kerf compiles for.
pub const ISAS: [&IsaDesc; 3] = [&x64::ISA, &aarch64::ISA, &riscv64::ISA];

/// The canonical triples (one per ISA, from [`ISAS`]).
pub const TRIPLES: [&str; 3] = [ISAS[0].triple, ISAS[1].triple, ISAS[2].triple];

/// Every triple kerf compiles for: the canonical ones and the other
/// object formats ([`IsaDesc::formats`]).
pub fn all_triples() -> impl Iterator<Item = &'static str> {
    ISAS.iter().flat_map(|d| d.triples())
}

/// The description of a built ISA's triple.
fn describe(t: &target_lexicon::Triple) -> Option<&'static IsaDesc> {
    ISAS.iter()
        .copied()
        .find(|d| d.triple.parse::<target_lexicon::Triple>().is_ok_and(|x| x.architecture == t.architecture))
}

/// One line per target with its presets: the CLI's help and the errors.
pub fn targets_help() -> String {
    let lines: Vec<String> = ISAS
        .iter()
        .map(|d| format!("{} (--cpu {})", d.triples().collect::<Vec<_>>().join(", "), d.preset_names().join(", ")))
        .collect();
    format!("{}, or host", lines.join("; "))
}

/// The triple of the machine running the compiler.
pub fn host_triple() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        x64::ISA.triple
    } else if cfg!(target_arch = "aarch64") {
        aarch64::ISA.triple
    } else {
        riscv64::ISA.triple
    }
}

/// Resolves `host` and checks the triple is one of [`all_triples`].
pub fn canonical_triple(triple: &str) -> Result<&'static str, TargetError> {
    let t = if triple == "host" { host_triple() } else { triple };
    all_triples().find(|&x| x == t).ok_or_else(|| TargetError::UnknownTriple(triple.to_string()))
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
    let desc = ISAS
        .iter()
        .find(|d| d.triples().any(|x| x == t))
        .ok_or_else(|| TargetError::UnknownTriple(triple.to_string()))?;
    let isa_builder = desc.builder(t, cpu, t == host_triple())?;
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
