//! Builds a whole model into any `cranelift_module::Module`: one kernel per
//! node (see [`crate::lower`]), read-only data for weights and packed blobs,
//! the descriptor, and the exported `<name>_run` / `<name>_describe`.
//!
//! Entry point (`docs/abi.md`):
//! `int32_t <name>_run(const void *const *inputs, void *const *outputs,
//! void *arena, const kerf_runtime *rt)`. It checks its pointers (status 1:
//! NULL, 2: misaligned arena, 3: `rt->abi_version` mismatch), then calls the
//! kernels in node order, then copies graph outputs that are not produced in
//! place (outputs that are inputs, constants or repeated).
//!
//! Threading: a kernel that declared a split ([`Kernel::parallel_range`],
//! contract in [`crate::lower`]) gets a trampoline `<name>_t<idx>(arg, i)`;
//! the entry reads `rt->num_threads`, `rt->parallel_for` and `rt->ctx` once
//! and, for that kernel, calls `parallel_for(ctx, n, trampoline, block)`
//! with `n = min(num_threads, max_tasks)` when `n >= 2`, else the kernel
//! directly over the whole range. `block` (a stack slot of the entry) holds
//! `n` and the kernel's pointer arguments.

mod descriptor;
mod entry;
mod kernels;
mod rodata;
mod threads;

use cranelift_codegen::ir::{types, AbiParam, Function, GlobalValueData, Signature, UserFuncName, Value};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataId, FuncId, Linkage, Module};
use kerf_ir::{Graph, ValueDef, ValueId};

use crate::arena::{self, GraphPlan};
use crate::isa::Caps;
use crate::lower::Split;
use crate::TargetError;
use rodata::Rodata;
pub use threads::task_chunk;

/// What was built.
#[derive(Clone, Debug)]
pub struct Built {
    /// The exported entry point `<name>_run`.
    pub run: FuncId,
    /// The exported `<name>_describe`, returning the model descriptor.
    pub describe: FuncId,
    /// The arena plan the kernels and the entry were built against.
    pub plan: GraphPlan,
    /// Names of the kernel functions, in call order.
    pub kernels: Vec<String>,
    /// Bytes of read-only data (weights, blobs, descriptor).
    pub rodata_bytes: usize,
    /// Per kernel (same order as `kernels`): its split, if it is parallel.
    pub splits: Vec<Option<Split>>,
    /// Per kernel (same order as `kernels`): the vector code it runs.
    pub families: Vec<crate::lower::Family>,
    /// Distinct micro-kernels defined ([`Param::Code`]).
    pub micro_kernels: usize,
}

/// Options of [`build_with`] that do not change the kernels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// Instrumentation for profiling: the entry calls the imported function
    /// [`PROFILE_HOOK`]`(uint32_t i)` before kernel `i` (index in
    /// [`Built::kernels`]) and once more with `i = kernels.len()` after the
    /// last one. The kernels themselves are the same as without it.
    pub profile_hook: bool,
    /// Told of each node's kernel as it is generated.
    pub progress: Option<crate::ProgressHook>,
}

/// Symbol the entry calls between kernels when [`BuildOptions::profile_hook`] is set.
pub const PROFILE_HOOK: &str = "kerf_prof_hook";

/// How generated code reaches its own data objects and functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addressing {
    /// PC-relative (`is_pic` objects): one instruction, but every data
    /// object must lie within the ISA's PC-relative reach of the code, so the
    /// total read-only data is capped by [`PCREL_DATA_LIMIT`].
    PcRelative,
    /// Absolute 64-bit addresses (`colocated: false` in a non-PIC module):
    /// for the JIT, whose code and data allocations may land anywhere in the
    /// address space (weights of hundreds of MB are routinely > 2 GiB away
    /// from the code). No reach limit.
    Absolute,
}

/// Largest total read-only data (weights, packed blobs, descriptor) an
/// object built with [`Addressing::PcRelative`] may hold. The shortest
/// PC-relative reach of the supported ISAs is ±2 GiB (x86-64 `rel32`,
/// riscv64 `auipc`; aarch64 `adrp` reaches ±4 GiB); 256 MiB of it are kept
/// for the code and the alignment padding between sections.
pub const PCREL_DATA_LIMIT: u64 = (2 << 30) - (256 << 20);

/// Checks that `data_bytes` of read-only data can be addressed under
/// `addressing` (the decision `build` makes before emitting anything that
/// could overflow a relocation).
pub fn check_data_reach(data_bytes: u64, addressing: Addressing) -> Result<(), TargetError> {
    match addressing {
        Addressing::PcRelative if data_bytes > PCREL_DATA_LIMIT => {
            Err(TargetError::TooLarge { bytes: data_bytes, limit: PCREL_DATA_LIMIT })
        }
        _ => Ok(()),
    }
}

/// Declares data object `id` in `func`, reached as `addressing` says.
fn data_in_func<M: Module>(
    module: &M,
    id: DataId,
    func: &mut Function,
    addressing: Addressing,
) -> cranelift_codegen::ir::GlobalValue {
    let gv = module.declare_data_in_func(id, func);
    if addressing == Addressing::Absolute {
        if let GlobalValueData::Symbol { colocated, .. } = &mut func.global_values[gv] {
            *colocated = false;
        }
    }
    gv
}

/// Declares function `id` in `func`, called as `addressing` says.
fn func_in_func<M: Module>(
    module: &mut M,
    id: FuncId,
    func: &mut Function,
    addressing: Addressing,
) -> cranelift_codegen::ir::FuncRef {
    let fref = module.declare_func_in_func(id, func);
    if addressing == Addressing::Absolute {
        func.dfg.ext_funcs[fref].colocated = false;
    }
    fref
}

/// Declares function `fname` (`linkage`, `sig`) and defines it: `body`
/// gets the builder positioned in the entry block, the entry block's
/// parameters and the module, and emits the whole body with its returns;
/// sealing, finalizing and defining happen here.
fn define_function<M: Module>(
    module: &mut M,
    fname: &str,
    linkage: Linkage,
    sig: Signature,
    user: UserFuncName,
    body: impl FnOnce(&mut FunctionBuilder<'_>, &[Value], &mut M),
) -> Result<FuncId, TargetError> {
    let id = module.declare_function(fname, linkage, &sig).map_err(|e| cg_err(fname, e))?;
    let mut func = Function::with_name_signature(user, sig);
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    body(&mut b, &params, module);
    b.seal_all_blocks();
    b.finalize(module.target_config());
    let mut ctx = Context::for_function(func);
    module.define_function(id, &mut ctx).map_err(|e| cg_err(fname, format!("{e:?}")))?;
    Ok(id)
}

/// Checks a model name is a C identifier.
pub fn check_name(name: &str) -> Result<(), TargetError> {
    let mut cs = name.chars();
    let ok = cs.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(TargetError::BadName(name.to_string()))
    }
}

fn cg_err(func: &str, e: impl std::fmt::Display) -> TargetError {
    TargetError::Codegen { func: func.to_string(), msg: e.to_string() }
}

/// Bytes of a scratch request as laid out in the arena.
fn scratch_slot(s: usize) -> usize {
    s.div_ceil(64) * 64
}

/// Builds every function and data object of `g` into `module`; references
/// between them use `addressing` (the object path uses
/// [`Addressing::PcRelative`], the non-PIC JIT [`Addressing::Absolute`]).
pub fn build<M: Module>(
    module: &mut M,
    g: &Graph,
    name: &str,
    caps: Caps,
    addressing: Addressing,
) -> Result<Built, TargetError> {
    build_with(module, g, name, caps, addressing, &BuildOptions::default())
}

/// [`build`] with options (profiling instrumentation). The steps, in order.
pub fn build_with<M: Module>(
    module: &mut M,
    g: &Graph,
    name: &str,
    caps: Caps,
    addressing: Addressing,
    opts: &BuildOptions,
) -> Result<Built, TargetError> {
    check_name(name)?;
    g.validate().map_err(|e| TargetError::Graph(e.to_string()))?;
    // fail before compiling anything if the weights alone cannot be reached
    check_data_reach(weight_bytes(g), addressing)?;
    let kernels = kernels::lower_all(module, g, name, caps, opts.progress.as_ref())?;
    let plan = arena::plan_graph(g, &kernels.scratch);
    let mut rodata = Rodata::new(name, addressing);
    for k in &kernels.list {
        rodata.define_params(module, g, &k.params)?;
    }
    let copies = output_copies(g);
    for &(_, v) in &copies {
        rodata.define_value(module, g, v)?;
    }
    let copy_fn = if copies.is_empty() {
        None
    } else {
        Some(descriptor::build_copy(module, name, module.isa().default_call_conv())?)
    };
    let trampolines = kernels
        .list
        .iter()
        .map(|k| match k.split {
            Some(sp) => {
                let tname = format!("{name}_t{}", k.node);
                threads::build_trampoline(module, &tname, k.func, &k.params, sp, addressing).map(Some)
            }
            None => Ok(None),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let profile_hook = if opts.profile_hook { Some(declare_profile_hook(module)?) } else { None };
    let parts = entry::EntryParts {
        g,
        name,
        plan: &plan,
        kernels: &kernels.list,
        trampolines: &trampolines,
        rodata: &rodata,
        copies: &copies,
        copy_fn,
        profile_hook,
        addressing,
    };
    let run = entry::build_entry(module, &parts)?;
    let (describe, desc_bytes) = descriptor::build_descriptor(module, g, name, &plan, addressing)?;
    Ok(Built {
        run,
        describe,
        kernels: kernels.list.iter().map(|k| format!("{name}_k{}", k.node)).collect(),
        rodata_bytes: rodata.bytes + desc_bytes,
        splits: kernels.list.iter().map(|k| k.split).collect(),
        families: kernels.list.iter().map(|k| crate::lower::Family::of(&k.params, &caps)).collect(),
        micro_kernels: rodata.code.len(),
        plan,
    })
}

/// Bytes of the distinct weights `g`'s values use.
fn weight_bytes(g: &Graph) -> u64 {
    let mut seen = std::collections::HashSet::new();
    g.values
        .iter()
        .filter_map(|v| if let ValueDef::Const(w) = v.def { seen.insert(w).then_some(w) } else { None })
        .map(|w| g.weights.tensor(w).bytes().len() as u64)
        .sum()
}

/// Graph outputs the entry copies at the end, `(output index, value)`:
/// those not produced in place (inputs, constants, repeated outputs).
fn output_copies(g: &Graph) -> Vec<(usize, ValueId)> {
    let slots = arena::output_slots(g);
    g.outputs
        .iter()
        .enumerate()
        .filter(|(k, o)| slots[o.value.0 as usize] != Some(*k))
        .map(|(k, o)| (k, o.value))
        .collect()
}

/// The imported [`PROFILE_HOOK`]`(uint32_t i)`.
fn declare_profile_hook<M: Module>(module: &mut M) -> Result<FuncId, TargetError> {
    let mut sig = Signature::new(module.isa().default_call_conv());
    sig.params.push(AbiParam::new(types::I32));
    module.declare_function(PROFILE_HOOK, Linkage::Import, &sig).map_err(|e| cg_err(PROFILE_HOOK, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_chunks_tile_the_range_on_align_boundaries() {
        for total in [1usize, 2, 7, 12, 13, 100, 1000, 1001] {
            for align in [1usize, 4, 12] {
                let units = total.div_ceil(align);
                for max_tasks in 2..=crate::lower::MAX_TASKS.min(units.max(2)) {
                    let sp = Split { total, align, max_tasks };
                    for n in 1..=max_tasks {
                        let mut next = 0;
                        for i in 0..n {
                            let (lo, hi) = task_chunk(sp, i, n);
                            assert_eq!(lo, next, "{sp:?} n={n} i={i}");
                            assert!(lo % align == 0 && (hi % align == 0 || hi == total), "{sp:?} {lo}..{hi}");
                            assert!(lo <= hi, "{sp:?} n={n} i={i}");
                            next = hi;
                        }
                        assert_eq!(next, total, "{sp:?} n={n}");
                        // balanced: chunk sizes in units differ by at most one
                        let sizes: Vec<usize> =
                            (0..n).map(|i| task_chunk(sp, i, n)).map(|(l, h)| (h - l).div_ceil(align)).collect();
                        let (mn, mx) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                        assert!(mx - mn <= 1, "{sp:?} n={n}: {sizes:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn pc_relative_data_is_capped_absolute_is_not() {
        assert!(check_data_reach(0, Addressing::PcRelative).is_ok());
        assert!(check_data_reach(PCREL_DATA_LIMIT, Addressing::PcRelative).is_ok());
        // the limit stays inside the ±2 GiB reach of x86-64 rel32 / riscv auipc
        const { assert!(PCREL_DATA_LIMIT < (2 << 30) - (128 << 20)) };
        match check_data_reach(PCREL_DATA_LIMIT + 1, Addressing::PcRelative) {
            Err(e @ TargetError::TooLarge { bytes, limit }) => {
                assert_eq!((bytes, limit), (PCREL_DATA_LIMIT + 1, PCREL_DATA_LIMIT));
                assert!(e.to_string().starts_with("model too large: 1879048193 bytes"), "{e}");
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // VGG-19 (~550 MB) and far beyond are fine for the JIT's absolute addresses
        assert!(check_data_reach(550 << 20, Addressing::Absolute).is_ok());
        assert!(check_data_reach(u64::MAX, Addressing::Absolute).is_ok());
    }
}
