//! [`Target`]: `--target`/`--cpu` parsed once. Everything downstream (the
//! object writer, the JIT, archives, reports) takes the parsed value and
//! never re-validates a string.

use cranelift_codegen::isa::{CallConv, OwnedTargetIsa, TargetIsa};

use super::{host_triple, native_builder, shared_flags, Caps, IsaDesc, ISAS};
use crate::TargetError;

/// A described ISA in one of its object formats, with a CPU preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    desc: &'static IsaDesc,
    triple: &'static str,
    /// A preset of `desc` (aliases resolved) or `native`.
    cpu: &'static str,
}

impl Target {
    /// Parses a triple (`host` allowed; one of [`super::all_triples`]) and
    /// a CPU preset of that ISA (an alias allowed; `native` only when the
    /// triple is the host's).
    pub fn parse(triple: &str, cpu: &str) -> Result<Target, TargetError> {
        let t = if triple == "host" { host_triple() } else { triple };
        let (desc, triple) = ISAS
            .iter()
            .find_map(|d| d.triples().find(|&x| x == t).map(|x| (*d, x)))
            .ok_or_else(|| TargetError::UnknownTriple(triple.to_string()))?;
        let unknown = |note: &str| TargetError::UnknownCpu {
            triple: triple.into(),
            cpu: cpu.into(),
            supported: format!("{}{note}", desc.preset_help()),
        };
        let cpu = if cpu == "native" {
            if triple != host_triple() {
                return Err(unknown(" ('native' only when compiling for the host)"));
            }
            "native"
        } else {
            let preset = desc.aliases.iter().find(|(a, _)| *a == cpu).map_or(cpu, |(_, p)| *p);
            desc.presets.iter().map(|p| p.0).find(|&p| p == preset).ok_or_else(|| unknown(""))?
        };
        Ok(Target { desc, triple, cpu })
    }

    /// The machine running the compiler with CPU preset `cpu`.
    pub fn host(cpu: &str) -> Result<Target, TargetError> {
        Target::parse("host", cpu)
    }

    /// The lowest common denominator of the host's ISA (its first preset):
    /// the same code, and so the same bits, on every CPU of the kind.
    pub fn host_baseline() -> Target {
        let desc = ISAS.iter().copied().find(|d| d.triple == host_triple()).unwrap_or(ISAS[0]);
        Target { desc, triple: desc.triple, cpu: desc.presets[0].0 }
    }

    /// The triple (the canonical one or another object format's).
    pub fn triple(&self) -> &'static str {
        self.triple
    }
    /// The CPU preset (aliases resolved) or `native`.
    pub fn cpu(&self) -> &'static str {
        self.cpu
    }
    /// The ISA's description.
    pub fn desc(&self) -> &'static IsaDesc {
        self.desc
    }
    /// Whether this is the machine running the compiler (the JIT's target).
    pub fn is_host(&self) -> bool {
        self.triple == host_triple()
    }

    /// Builds the Cranelift ISA with kerf's fixed flags. `pic = false` is
    /// for the in-process JIT only (cranelift-jit refuses PIC code;
    /// objects are always PIC).
    pub(crate) fn isa(&self, pic: bool) -> Result<OwnedTargetIsa, TargetError> {
        let b = if self.cpu == "native" {
            native_builder()?
        } else {
            let flags = self.desc.presets.iter().find(|p| p.0 == self.cpu).map_or(&[][..], |p| p.1);
            let mut b = super::base_builder(self.triple)?;
            super::enable(&mut b, flags)?;
            b
        };
        b.finish(shared_flags(pic)?).map_err(|e| TargetError::Isa(e.to_string()))
    }
}

impl Target {
    /// What kernels may use on `isa` (built by [`Target::isa`]): the ISA
    /// description's capabilities from the built flags; the System V
    /// micro-kernels only under the System V calling convention.
    pub fn caps(&self, isa: &dyn TargetIsa) -> Caps {
        let flags = isa.isa_flags();
        let on = |name: &str| flags.iter().any(|v| v.name == name && v.as_bool() == Some(true));
        let mut c = (self.desc.caps)(&on);
        c.avx2 &= isa.default_call_conv() == CallConv::SystemV;
        c.avx512 &= c.avx2;
        c.vnni &= c.avx512 && (self.cpu != "native" || host_has_avx512bw());
        c.vbmi &= c.vnni;
        c
    }
}

/// Whether the host has AVX-512BW, which every AVX-512 VNNI CPU has and
/// the VNNI kernels use ([`Caps::vnni`]); checked for `native` because
/// Cranelift's flags do not name it (a virtual machine may mask it).
fn host_has_avx512bw() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} --cpu {}", self.triple, self.cpu)
    }
}
