//! Ahead-of-time compilation to a relocatable object (ELF for the Linux
//! triples), plus a compile report. Deterministic: the same graph and
//! options give byte-identical output.

use cranelift_module::default_libcall_names;
use cranelift_object::{ObjectBuilder, ObjectModule};
use kerf_ir::Graph;

use crate::codegen;
use crate::isa::{Caps, Target};
use crate::TargetError;

/// `f(done, total, what)`: one step of a long stage.
pub type ProgressFn = dyn Fn(usize, usize, &str) + Send + Sync;

/// Called as `hook(done, total, what)` while a long stage runs (code
/// generation: per node, `what` the node's name; the pipeline's compress
/// stage: per layer). Reaches `done == total` at the end.
#[derive(Clone)]
pub struct ProgressHook(pub std::sync::Arc<ProgressFn>);

impl std::fmt::Debug for ProgressHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressHook")
    }
}

/// Two hooks are equal when they are the same closure.
impl PartialEq for ProgressHook {
    fn eq(&self, other: &ProgressHook) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for ProgressHook {}

/// What to compile for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileOptions {
    /// The target, parsed once ([`isa::Target::parse`]).
    pub target: Target,
    /// Prefix of every exported symbol (`<name>_run`, `<name>_describe`).
    pub name: String,
    /// Lines for the header's opening comment (what the caller did to the
    /// model that its user should know: inputs bound at compile time,
    /// compression).
    pub notes: Vec<String>,
    /// Use the assembled micro-kernels ([`crate::ukernel`]) where the
    /// target has them (default). Off, every kernel is Cranelift's own
    /// code: the same bits, at 128-bit speed.
    pub ukernels: bool,
    /// Products by block-sparse constant weights run only their kept K
    /// steps (default; [`Caps::skip_zeros`]). Off, the dense engine
    /// multiplies the zeros: the same bits, for tests to compare.
    pub skip_zeros: bool,
    /// Told of each node's code generation (for a progress bar); never
    /// changes the output.
    pub progress: Option<ProgressHook>,
}

impl CompileOptions {
    /// Options for `target` with symbol prefix `name`, no notes and micro-kernels on.
    pub fn new(target: Target, name: &str) -> CompileOptions {
        CompileOptions {
            target,
            name: name.into(),
            notes: Vec::new(),
            ukernels: true,
            skip_zeros: true,
            progress: None,
        }
    }
    /// [`CompileOptions::new`] with the target parsed from a triple and a
    /// CPU preset ([`Target::parse`]).
    pub fn parse(triple: &str, cpu: &str, name: &str) -> Result<CompileOptions, TargetError> {
        Ok(CompileOptions::new(Target::parse(triple, cpu)?, name))
    }
    /// The capabilities the kernels are built for: the ISA's, less the
    /// micro-kernels when [`CompileOptions::ukernels`] is off and the
    /// block-sparse products when [`CompileOptions::skip_zeros`] is.
    pub fn caps(&self, isa: &dyn cranelift_codegen::isa::TargetIsa) -> Caps {
        let mut c = self.target.caps(isa);
        c.avx2 &= self.ukernels;
        c.avx512 &= self.ukernels;
        c.vnni &= self.ukernels;
        c.vbmi &= self.ukernels;
        c.dotprod &= self.ukernels;
        c.neon &= self.ukernels;
        c.skip_zeros &= self.skip_zeros;
        c
    }
    /// [`CompileOptions::caps`] on the target's own ISA: what kernels the
    /// code generator will use (the passes' cost choices depend on a few).
    pub fn kernel_caps(&self) -> Result<Caps, TargetError> {
        let isa = self.target.isa(true)?;
        Ok(self.caps(&*isa))
    }
    /// The host with `native` CPU flags.
    pub fn host(name: &str) -> CompileOptions {
        let target = Target::host("native").unwrap_or_else(|_| Target::host_baseline());
        CompileOptions::new(target, name)
    }
}

/// Facts about a compiled model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The target triple compiled for.
    pub triple: String,
    /// The CPU preset (aliases resolved) or `native`.
    pub cpu: String,
    /// The model name: prefix of the exported symbols.
    pub name: String,
    /// Bytes of machine code (sum of `.text` sections).
    pub text_bytes: usize,
    /// Bytes of read-only data: weights, packed blobs, descriptor.
    pub rodata_bytes: usize,
    /// Arena the caller must provide (64-byte aligned).
    pub arena_bytes: usize,
    /// Largest sum of live activation bytes at any step (lower bound).
    pub arena_lower_bound: usize,
    /// Kernel function names in call order.
    pub kernels: Vec<String>,
    /// Distinct assembled micro-kernels ([`crate::ukernel`]) in the code.
    pub micro_kernels: usize,
    /// The capabilities the kernels were built for ([`CompileOptions::caps`]).
    pub caps: Caps,
}

/// An object file and its report.
#[derive(Clone, Debug)]
pub struct Artifact {
    /// The relocatable object file's bytes.
    pub object: Vec<u8>,
    /// Facts about the compiled model.
    pub report: Report,
    /// The header matching the object (see [`crate::header`]).
    pub header: String,
}

impl Artifact {
    /// The object as a one-member static library in the target format's
    /// archive kind ([`crate::archive`]): `lib<name>.a` (`<name>.lib` on
    /// Windows), the member named `<name>.o`.
    pub fn archive(&self) -> Result<Vec<u8>, TargetError> {
        let r = &self.report;
        crate::archive::write_archive(&r.triple, &[(format!("{}.o", r.name), self.object.clone())])
    }
}

/// Compiles `g` to an object for `opts`.
pub fn compile_object(g: &Graph, opts: &CompileOptions) -> Result<Artifact, TargetError> {
    let isa = opts.target.isa(true)?;
    let caps = opts.caps(isa.as_ref());
    let mut ob = ObjectBuilder::new(isa, opts.name.as_bytes().to_vec(), default_libcall_names())
        .map_err(|e| TargetError::Object(e.to_string()))?;
    ob.per_function_section(true);
    let mut module = ObjectModule::new(ob);
    let bopts = codegen::BuildOptions { profile_hook: false, progress: opts.progress.clone() };
    let built = codegen::build_with(&mut module, g, &opts.name, caps, codegen::Addressing::PcRelative, &bopts)?;
    let product = module.finish();
    let object = product.emit().map_err(|e| TargetError::Object(e.to_string()))?;
    let text_bytes = text_size(&object);
    let header = crate::header::generate(g, &opts.name, built.plan.arena_bytes, &opts.notes);
    Ok(Artifact { object, header, report: Report::new(opts, built, caps, text_bytes) })
}

impl Report {
    /// The report of what `codegen` built for `opts` (`text_bytes` is 0
    /// for the JIT, which has no sections).
    pub(crate) fn new(opts: &CompileOptions, built: codegen::Built, caps: Caps, text_bytes: usize) -> Report {
        Report {
            triple: opts.target.triple().to_string(),
            cpu: opts.target.cpu().to_string(),
            name: opts.name.clone(),
            text_bytes,
            rodata_bytes: built.rodata_bytes,
            arena_bytes: built.plan.arena_bytes,
            arena_lower_bound: built.plan.lower_bound,
            kernels: built.kernels,
            micro_kernels: built.micro_kernels,
            caps,
        }
    }
}

fn text_size(obj: &[u8]) -> usize {
    use object::{Object, ObjectSection, SectionKind};
    match object::File::parse(obj) {
        Ok(f) => f.sections().filter(|s| s.kind() == SectionKind::Text).map(|s| s.size() as usize).sum(),
        Err(_) => 0,
    }
}
