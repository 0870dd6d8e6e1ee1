//! The targets: one [`IsaDesc`] per ISA module (triples, presets, caches,
//! capabilities), [`Target`] (a triple and a CPU preset parsed once) that
//! builds the Cranelift ISA with kerf's fixed flags (`is_pic`,
//! `opt_level=speed`), and [`Caps`]: which instructions kernels may emit.
//!
//! Kernels must never emit `floor/ceil/trunc/nearest` without
//! [`Caps::round`], nor `fma` without [`Caps::fma`]: Cranelift would lower
//! them to libm calls (`floorf`, `fmaf`) and the object would have undefined
//! symbols. They must not use vector types without [`Caps::simd`]
//! (riscv64gc has no vector registers in the default preset).

pub mod aarch64;
pub mod riscv64;
mod target;
pub mod x64;

pub use target::Target;

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
    /// AVX-512F with AVX-512VL on top of [`Caps::avx2`]: the GEMM engines'
    /// 512-bit tiles ([`crate::ukernel::avx512::zmm_gemm_tile`], B packed
    /// in groups of four panels) replace the 256-bit ones
    /// (`cascadelake`, `sapphirerapids`, `native` where the host has them).
    pub avx512: bool,
    /// AVX-512 VNNI on top of [`Caps::avx512`]: the integer
    /// conv's EVEX dot-product tile ([`crate::ukernel::avx512`]) replaces
    /// the AVX2 16-bit-pair tile (`cascadelake`, `sapphirerapids`, `native`
    /// where the host has them). Every CPU with AVX-512 VNNI has AVX-512BW too, whose byte
    /// instructions the VNNI kernels use (Cranelift has no flag for it:
    /// `native` checks the host too).
    pub vnni: bool,
    /// AVX-512 VBMI's byte permutes on top of [`Caps::vnni`]: the integer
    /// conv's B packer for whole units of 16 pixels
    /// ([`crate::ukernel::avx512::quad_pack_vbmi`]) replaces AVX2's
    /// (`sapphirerapids`, `native` where the host has it: Ice Lake, Zen 4
    /// and later; Cascade Lake has VNNI without it).
    pub vbmi: bool,
    /// AArch64's `dotprod` extension (`sdot`): the integer conv's byte-quad
    /// tile [`crate::ukernel::neon::sdot_tile`] replaces the Cranelift
    /// 16-bit-pair tile (the `dotprod` preset; `native` on an AArch64 host
    /// that has it).
    pub dotprod: bool,
    /// AArch64's Advanced SIMD for assembled kernels (every AArch64 preset):
    /// the pattern-sparse convs' f32 register tile
    /// ([`crate::ukernel::neon::pattern_tile`]), which keeps a tile's sums
    /// in registers across a channel's kept taps where Cranelift's 128-bit
    /// passes load and store them per entry (3x the instructions,
    /// `docs/compression.md`).
    pub neon: bool,
    /// Vector registers Cranelift's register allocator gives kernels
    /// (x86-64: `xmm0`–`xmm15`, whatever the CPU; AArch64 and RISC-V: 32):
    /// how many accumulators a 128-bit tile may hold.
    pub vector_registers: usize,
    /// Products by constant weights whose 16-column blocks skip the same K
    /// rows run only the kept rows (`lower/matmul/sparse.rs`; every preset
    /// with SIMD). Off only through [`crate::CompileOptions::skip_zeros`],
    /// so tests can compare against the dense engine, which gives the same
    /// bits.
    pub skip_zeros: bool,
}

impl Caps {
    /// Whether the pattern-sparse convs have assembled register tiles:
    /// AVX2 + FMA (`ukernel::avx2::pattern_tile`) or NEON
    /// (`ukernel::neon::pattern_tile`).
    pub fn pattern_tiles(&self) -> bool {
        self.avx2 || self.neon
    }

    /// Whether those tiles also take byte quads (the integer pattern
    /// kernel): AVX2's `vpmaddubsw` or VNNI's `vpdpbusd`, or `dotprod`'s
    /// `sdot`.
    pub fn pattern_quads(&self) -> bool {
        self.avx2 || self.dotprod
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

/// One description per ISA: two are the same when their canonical triples are.
impl PartialEq for IsaDesc {
    fn eq(&self, other: &IsaDesc) -> bool {
        self.triple == other.triple
    }
}
impl Eq for IsaDesc {}

impl IsaDesc {
    /// The preset names, `native` last.
    pub fn preset_names(&self) -> Vec<&'static str> {
        self.presets.iter().map(|p| p.0).chain(std::iter::once("native")).collect()
    }
    /// The preset names as help and errors show them: aliases beside
    /// their preset (`rv64gc|baseline`), `native` last.
    pub fn preset_help(&self) -> String {
        let alias = |p: &str| self.aliases.iter().filter(|a| a.1 == p).map(|a| format!("|{}", a.0)).collect::<String>();
        self.preset_names().iter().map(|p| format!("{p}{}", alias(p))).collect::<Vec<_>>().join(", ")
    }
    /// Every triple of this ISA, the canonical one first.
    pub fn triples(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.triple).chain(self.formats.iter().copied())
    }
}

/// Every target kerf compiles for.
pub const ISAS: [&IsaDesc; 3] = [&x64::ISA, &aarch64::ISA, &riscv64::ISA];

/// Every triple kerf compiles for: the canonical ones and the other
/// object formats ([`IsaDesc::formats`]).
pub fn all_triples() -> impl Iterator<Item = &'static str> {
    ISAS.iter().flat_map(|d| d.triples())
}

/// One line per target with its presets: the CLI's help and the errors.
pub fn targets_help() -> String {
    let lines: Vec<String> = ISAS
        .iter()
        .map(|d| format!("{} (--cpu {})", d.triples().collect::<Vec<_>>().join(", "), d.preset_help()))
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

/// The shared (target-independent) flags.
fn shared_flags(pic: bool) -> Result<settings::Flags, TargetError> {
    let mut b = settings::builder();
    let pic = if pic { "true" } else { "false" };
    for (k, v) in [("opt_level", "speed"), ("is_pic", pic), ("enable_verifier", "true")] {
        b.set(k, v).map_err(|e| TargetError::Isa(format!("{k}={v}: {e}")))?;
    }
    Ok(settings::Flags::new(b))
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
pub(crate) fn native_builder() -> Result<cranelift_codegen::isa::Builder, TargetError> {
    cranelift_native::builder().map_err(|e| TargetError::Isa(e.to_string()))
}
