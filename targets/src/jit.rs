//! The same code generation through `cranelift-jit`, for the host: used by
//! tests, `kerf run` and measurements. The returned [`JitModel`] owns the
//! executable memory; run it through `kerf_runtime::Model`.

use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::default_libcall_names;
use kerf_ir::Graph;
use kerf_runtime::{DescribeFn, Model, ModelDescRaw, RunFn};

use crate::codegen;
use crate::isa;
use crate::object::{CompileOptions, Report};
use crate::TargetError;

/// JIT-compiled code plus the safe wrapper around its entry point.
pub struct JitModel {
    /// Declared before `module`: dropped first, so it never outlives the code.
    model: Model,
    report: Report,
    /// Per kernel of `report.kernels`: its split, if it is parallel.
    splits: Vec<Option<crate::lower::Split>>,
    families: Vec<crate::lower::Family>,
    // Keeps the executable memory alive (freed on drop).
    _module: JitMemory,
}

/// Owns the JIT module; frees its memory on drop.
struct JitMemory(Option<JITModule>);

impl Drop for JitMemory {
    fn drop(&mut self) {
        if let Some(m) = self.0.take() {
            // SAFETY: the only pointers into this memory are held by the
            // `Model` of the same `JitModel`, which is dropped before this
            // field (fields drop in declaration order).
            unsafe { m.free_memory() };
        }
    }
}

impl std::fmt::Debug for JitModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitModel").field("report", &self.report).finish()
    }
}

impl JitModel {
    /// The safe wrapper around the compiled entry point and descriptor.
    pub fn model(&self) -> &Model {
        &self.model
    }
    /// Facts about the compiled model (`text_bytes` is 0: the JIT has no sections).
    pub fn report(&self) -> &Report {
        &self.report
    }
    /// Per kernel of [`Report::kernels`]: how it is split across threads
    /// (`None`: it always runs on the calling thread).
    pub fn splits(&self) -> &[Option<crate::lower::Split>] {
        &self.splits
    }
    /// Per kernel (the order of [`JitModel::splits`]): the vector code it runs.
    pub fn families(&self) -> &[crate::lower::Family] {
        &self.families
    }
}

/// JIT-compiles `g` for the host: `opts.target` must be the host's
/// canonical triple (any of its presets; `native` recommended).
pub fn jit_compile(g: &Graph, opts: &CompileOptions) -> Result<JitModel, TargetError> {
    jit_compile_inner(g, opts, None)
}

/// A profiling hook: called by the entry before kernel `i` (index in
/// `Report::kernels`) and once with `i = kernels.len()` at the end.
pub type ProfileHook = extern "C" fn(i: u32);

/// [`jit_compile`] with the entry instrumented to call `hook` between
/// kernels (see [`codegen::BuildOptions::profile_hook`]); the kernels are
/// the same code as without it. The hook runs on the thread calling
/// `<name>_run`.
pub fn jit_compile_profiled(g: &Graph, opts: &CompileOptions, hook: ProfileHook) -> Result<JitModel, TargetError> {
    jit_compile_inner(g, opts, Some(hook))
}

fn jit_compile_inner(g: &Graph, opts: &CompileOptions, hook: Option<ProfileHook>) -> Result<JitModel, TargetError> {
    let triple = opts.target.triple();
    if !opts.target.is_host() {
        return Err(TargetError::Jit(format!("{triple} is not the host ({})", isa::host_triple())));
    }
    let isa = opts.target.isa(false)?;
    let caps = opts.caps(isa.as_ref());
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    if let Some(h) = hook {
        jb.symbol(codegen::PROFILE_HOOK, h as *const u8);
    }
    let mut module = JITModule::new(jb);
    let bopts = codegen::BuildOptions { profile_hook: hook.is_some(), progress: opts.progress.clone() };
    let built = codegen::build_with(&mut module, g, &opts.name, caps, codegen::Addressing::Absolute, &bopts)?;
    module.finalize_definitions().map_err(|e| TargetError::Jit(e.to_string()))?;
    let run_ptr = module.get_finalized_function(built.run);
    let desc_ptr = module.get_finalized_function(built.describe);
    // SAFETY: both pointers are finalized functions of `module` with the
    // signatures `codegen::build` declared (`RunFn`, `DescribeFn`), and the
    // module's memory lives as long as the returned JitModel.
    let (run, describe): (RunFn, DescribeFn) = unsafe {
        (std::mem::transmute::<*const u8, RunFn>(run_ptr), std::mem::transmute::<*const u8, DescribeFn>(desc_ptr))
    };
    // SAFETY: `describe` takes no arguments and returns the static descriptor.
    let desc: *const ModelDescRaw = unsafe { describe() };
    // SAFETY: `run` and `desc` belong to the same compiled model.
    let model = unsafe { Model::from_raw(run, desc) }.map_err(|e| TargetError::Jit(e.to_string()))?;
    let splits = built.splits.clone();
    let families = built.families.clone();
    let report = Report::new(opts, built, caps, 0);
    Ok(JitModel { model, report, splits, families, _module: JitMemory(Some(module)) })
}
