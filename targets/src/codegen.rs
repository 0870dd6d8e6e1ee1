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

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, Function, GlobalValueData, InstBuilder, MemFlagsData, Signature, StackSlotData, StackSlotKind,
    UserFuncName, Value,
};
use cranelift_codegen::isa::CallConv;
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataDescription, DataId, FuncId, Linkage, Module};
use kerf_ir::{Graph, ValueDef, ValueId};

use crate::arena::{self, GraphPlan, Loc};
use crate::isa::Caps;
use crate::lower::{self, Kernel, Param, Split, PTR};
use crate::{TargetError, UnsupportedNode};

/// What was built.
#[derive(Clone, Debug)]
pub struct Built {
    pub run: FuncId,
    pub describe: FuncId,
    pub plan: GraphPlan,
    /// Names of the kernel functions, in call order.
    pub kernels: Vec<String>,
    /// Bytes of read-only data (weights, blobs, descriptor).
    pub rodata_bytes: usize,
    /// Per kernel (same order as `kernels`): its split, if it is parallel.
    pub splits: Vec<Option<Split>>,
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

/// Defines a micro-kernel ([`crate::ukernel`]) from its machine code: a
/// local function taking pointer arguments, called only through the
/// address the entry point passes to the kernels.
fn define_code<M: Module>(
    module: &mut M,
    fname: &str,
    bytes: &[u8],
    call_conv: CallConv,
) -> Result<FuncId, TargetError> {
    let mut sig = Signature::new(call_conv);
    sig.params.extend(std::iter::repeat_n(AbiParam::new(PTR), 6));
    let id = module.declare_function(fname, Linkage::Local, &sig).map_err(|e| cg_err(fname, e))?;
    module.define_function_bytes(id, 64, bytes, &[]).map_err(|e| cg_err(fname, format!("{e:?}")))?;
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

struct KernelInfo {
    node: usize,
    func: FuncId,
    params: Vec<Param>,
    split: Option<Split>,
}

/// Bytes of a scratch request as laid out in the arena.
fn scratch_slot(s: usize) -> usize {
    s.div_ceil(64) * 64
}

/// Signature of a task: `void task(void *arg, uint32_t i)`.
fn task_sig(cc: cranelift_codegen::isa::CallConv) -> Signature {
    let mut sig = Signature::new(cc);
    sig.params.push(AbiParam::new(PTR));
    sig.params.push(AbiParam::new(types::I32));
    sig
}

/// Signature of `parallel_for(ctx, n_tasks, task, arg)`. `n_tasks` is
/// sign-extended (the riscv64 psABI wants 32-bit arguments sign-extended
/// whatever their signedness; harmless elsewhere, and n is small).
fn parallel_for_sig(cc: cranelift_codegen::isa::CallConv) -> Signature {
    let mut sig = Signature::new(cc);
    sig.params.push(AbiParam::new(PTR));
    sig.params.push(AbiParam::new(types::I32).sext());
    sig.params.push(AbiParam::new(PTR));
    sig.params.push(AbiParam::new(PTR));
    sig
}

/// Iterations `lo..hi` of task `i` of `n` (what the trampoline computes in
/// generated code): units `i*U/n .. (i+1)*U/n` of `U = ceil(total/align)`,
/// times `align`, the end clamped to `total`.
pub fn task_chunk(split: Split, i: usize, n: usize) -> (usize, usize) {
    let units = split.total.div_ceil(split.align);
    let lo = i * units / n * split.align;
    let hi = ((i + 1) * units / n * split.align).min(split.total);
    (lo, hi)
}

/// `<name>_t<idx>(arg, i)`: task `i` of a split kernel. `arg` points to
/// `[n_tasks, p_0, p_1, ...]` (u64 each; the kernel's pointer parameters
/// without the range). Task `i` gets units `i*U/n .. (i+1)*U/n` of
/// `U = ceil(total/align)`, as iterations times `align` (the last clamped
/// to `total`), and its own copy of each task-private scratch.
fn build_trampoline<M: Module>(
    module: &mut M,
    fname: &str,
    kernel: FuncId,
    params: &[Param],
    split: Split,
    addressing: Addressing,
) -> Result<FuncId, TargetError> {
    let cc = module.isa().default_call_conv();
    let sig = task_sig(cc);
    let id = module.declare_function(fname, Linkage::Local, &sig).map_err(|e| cg_err(fname, e))?;
    let mut func = Function::with_name_signature(UserFuncName::user(2, kernel.as_u32()), sig);
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let ps = b.block_params(entry).to_vec();
        let (arg, i32v) = (ps[0], ps[1]);
        let flags = MemFlagsData::new().with_notrap().with_readonly();
        let n = b.ins().load(PTR, flags, arg, 0);
        let i = b.ins().uextend(PTR, i32v);
        let units = split.total.div_ceil(split.align) as i64;
        let ulo = b.ins().imul_imm_s(i, units);
        let ulo = b.ins().udiv(ulo, n);
        let i1 = b.ins().iadd_imm_s(i, 1);
        let uhi = b.ins().imul_imm_s(i1, units);
        let uhi = b.ins().udiv(uhi, n);
        let lo = b.ins().imul_imm_s(ulo, split.align as i64);
        let hi = b.ins().imul_imm_s(uhi, split.align as i64);
        let total = b.ins().iconst(PTR, split.total as i64);
        let hi = b.ins().umin(hi, total);
        let mut args = Vec::new();
        let mut slot = 1;
        for p in params {
            let a = match p {
                Param::RangeLo => lo,
                Param::RangeHi => hi,
                _ => {
                    let v = b.ins().load(PTR, flags, arg, 8 * slot);
                    slot += 1;
                    if let Param::TaskScratch(s) = p {
                        let off = b.ins().imul_imm_s(i, scratch_slot(*s) as i64);
                        b.ins().iadd(v, off)
                    } else {
                        v
                    }
                }
            };
            args.push(a);
        }
        let fref = func_in_func(module, kernel, b.func, addressing);
        b.ins().call(fref, &args);
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(module.target_config());
    }
    let mut ctx = Context::for_function(func);
    module.define_function(id, &mut ctx).map_err(|e| cg_err(fname, format!("{e:?}")))?;
    Ok(id)
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

/// [`build`] with options (profiling instrumentation).
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
    // Fail before compiling anything if the weights alone cannot be reached.
    let mut seen = std::collections::HashSet::new();
    let weight_bytes: u64 = g
        .values
        .iter()
        .filter_map(|v| if let ValueDef::Const(w) = v.def { seen.insert(w.0).then_some(w) } else { None })
        .map(|w| g.weights.tensor(w).bytes().len() as u64)
        .sum();
    check_data_reach(weight_bytes, addressing)?;
    let aliases = arena::decide_aliases(g);
    let call_conv = module.isa().default_call_conv();
    let tcfg = module.target_config();
    let mut fctx = FunctionBuilderContext::new();
    let mut unsupported = Vec::new();
    let mut kernels: Vec<KernelInfo> = Vec::new();
    let mut scratch = vec![0usize; g.nodes.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        if aliases.free[i] {
            continue;
        }
        let fname = format!("{name}_k{i}");
        let mut func = Function::with_name_signature(UserFuncName::user(0, i as u32), Signature::new(call_conv));
        let params;
        let split;
        {
            let mut b = FunctionBuilder::new(&mut func, &mut fctx);
            // The entry block only receives parameters (added on demand while
            // lowering) and jumps to the body, which starts in `start`.
            let entry = b.create_block();
            let start = b.create_block();
            // `entry` must come first in the layout.
            b.func.layout.append_block(entry);
            b.switch_to_block(start);
            let mut k = Kernel { b, caps, g, node, params: Vec::new(), entry, split: None, ranged: false };
            let res = lower::lower_node(&mut k);
            if let Err(reason) = res {
                drop(k);
                fctx = FunctionBuilderContext::new();
                unsupported.push(UnsupportedNode { node: node.name.clone(), op: node.op.name().to_string(), reason });
                continue;
            }
            k.b.ins().return_(&[]);
            k.b.switch_to_block(entry);
            k.b.ins().jump(start, &[]);
            k.b.seal_all_blocks();
            params = k.params;
            split = k.split;
            k.b.finalize(tcfg);
        }
        let copies = split.map_or(1, |s| s.max_tasks);
        scratch[i] = params
            .iter()
            .map(|p| match p {
                Param::Scratch(s) => scratch_slot(*s),
                Param::TaskScratch(s) => scratch_slot(*s) * copies,
                _ => 0,
            })
            .sum();
        let fid = module.declare_function(&fname, Linkage::Local, &func.signature).map_err(|e| cg_err(&fname, e))?;
        let mut ctx = Context::for_function(func);
        module.define_function(fid, &mut ctx).map_err(|e| cg_err(&fname, format!("{e:?}")))?;
        kernels.push(KernelInfo { node: i, func: fid, params, split });
    }
    if !unsupported.is_empty() {
        return Err(TargetError::Unsupported(unsupported));
    }
    let plan = arena::plan_graph(g, &scratch);

    // Read-only data: weights by weight id, blobs by content.
    let mut rodata_bytes = 0usize;
    let mut weight_data: HashMap<u32, DataId> = HashMap::new();
    let mut blob_data: HashMap<Vec<u8>, DataId> = HashMap::new();
    let mut code_funcs: HashMap<Vec<u8>, FuncId> = HashMap::new();
    let mut n_data = 0usize;
    let rodata_total = std::cell::Cell::new(0u64);
    let define_ro = |module: &mut M, bytes: &[u8], n_data: &mut usize| -> Result<DataId, TargetError> {
        // weights plus packed blobs (the blobs can exceed the weights)
        check_data_reach(rodata_total.get() + bytes.len() as u64, addressing)?;
        rodata_total.set(rodata_total.get() + bytes.len() as u64);
        let dname = format!("{name}_d{}", *n_data);
        *n_data += 1;
        let id = module.declare_data(&dname, Linkage::Local, false, false).map_err(|e| cg_err(&dname, e))?;
        let mut d = DataDescription::new();
        // never an empty object: zero-size tensors still get a valid address
        let mut v = bytes.to_vec();
        if v.is_empty() {
            v.push(0);
        }
        d.define(v.into_boxed_slice());
        d.set_align(64);
        module.define_data(id, &d).map_err(|e| cg_err(&dname, e))?;
        Ok(id)
    };
    for kinfo in &kernels {
        for p in &kinfo.params {
            match p {
                Param::Value(v) => {
                    if let ValueDef::Const(w) = g.value(*v).def {
                        if let std::collections::hash_map::Entry::Vacant(e) = weight_data.entry(w.0) {
                            let t = g.weights.tensor(w);
                            rodata_bytes += t.bytes().len();
                            e.insert(define_ro(module, t.bytes(), &mut n_data)?);
                        }
                    }
                }
                Param::Blob(bytes) => {
                    if !blob_data.contains_key(bytes) {
                        rodata_bytes += bytes.len();
                        let id = define_ro(module, bytes, &mut n_data)?;
                        blob_data.insert(bytes.clone(), id);
                    }
                }
                Param::Code(bytes) => {
                    if !code_funcs.contains_key(bytes) {
                        let id = define_code(module, &format!("{name}_u{}", code_funcs.len()), bytes, call_conv)?;
                        code_funcs.insert(bytes.clone(), id);
                    }
                }
                Param::Scratch(_) | Param::TaskScratch(_) | Param::RangeLo | Param::RangeHi => {}
            }
        }
    }
    // Graph outputs that need a copy in the entry.
    let slots = arena::output_slots(g);
    let mut out_copies: Vec<(usize, ValueId)> = Vec::new();
    for (k, o) in g.outputs.iter().enumerate() {
        if slots[o.value.0 as usize] != Some(k) {
            out_copies.push((k, o.value));
            if let ValueDef::Const(w) = g.value(o.value).def {
                if let std::collections::hash_map::Entry::Vacant(e) = weight_data.entry(w.0) {
                    let t = g.weights.tensor(w);
                    rodata_bytes += t.bytes().len();
                    e.insert(define_ro(module, t.bytes(), &mut n_data)?);
                }
            }
        }
    }
    let copy_fn = if out_copies.is_empty() { None } else { Some(build_copy(module, name, call_conv)?) };
    let mut trampolines: Vec<Option<FuncId>> = Vec::new();
    for kinfo in &kernels {
        trampolines.push(match kinfo.split {
            Some(sp) => {
                let tname = format!("{name}_t{}", kinfo.node);
                Some(build_trampoline(module, &tname, kinfo.func, &kinfo.params, sp, addressing)?)
            }
            None => None,
        });
    }
    let any_split = trampolines.iter().any(Option::is_some);
    let prof_hook = if opts.profile_hook {
        let mut sig = Signature::new(call_conv);
        sig.params.push(AbiParam::new(types::I32));
        Some(module.declare_function(PROFILE_HOOK, Linkage::Import, &sig).map_err(|e| cg_err(PROFILE_HOOK, e))?)
    } else {
        None
    };

    // The entry point.
    let run_name = format!("{name}_run");
    let mut sig = Signature::new(call_conv);
    for _ in 0..4 {
        sig.params.push(AbiParam::new(PTR));
    }
    sig.returns.push(AbiParam::new(types::I32));
    let run = module.declare_function(&run_name, Linkage::Export, &sig).map_err(|e| cg_err(&run_name, e))?;
    let mut func = Function::with_name_signature(UserFuncName::user(1, 0), sig);
    {
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let ps = b.block_params(entry).to_vec();
        let (inputs, outputs, arena_p, rt) = (ps[0], ps[1], ps[2], ps[3]);
        let fail = |b: &mut FunctionBuilder, cond: Value, code: i64| {
            let bad = b.create_block();
            let ok = b.create_block();
            b.ins().brif(cond, bad, &[], ok, &[]);
            b.switch_to_block(bad);
            b.seal_block(bad);
            let c = b.ins().iconst(types::I32, code);
            b.ins().return_(&[c]);
            b.switch_to_block(ok);
            b.seal_block(ok);
        };
        let flags = MemFlagsData::new().with_notrap();
        let c = b.ins().icmp_imm_s(IntCC::Equal, inputs, 0);
        let c2 = b.ins().icmp_imm_s(IntCC::Equal, outputs, 0);
        let c = b.ins().bor(c, c2);
        let c = if g.inputs.is_empty() && g.outputs.is_empty() { b.ins().iconst(types::I8, 0) } else { c };
        fail(&mut b, c, 1);
        if plan.arena_bytes > 0 {
            let c = b.ins().icmp_imm_s(IntCC::Equal, arena_p, 0);
            fail(&mut b, c, 1);
            let m = b.ins().band_imm_s(arena_p, (arena::ALIGN - 1) as i64);
            let c = b.ins().icmp_imm_s(IntCC::NotEqual, m, 0);
            fail(&mut b, c, 2);
        }
        // rt: NULL or the right ABI version
        {
            let has_rt = b.create_block();
            let go = b.create_block();
            let c = b.ins().icmp_imm_s(IntCC::NotEqual, rt, 0);
            b.ins().brif(c, has_rt, &[], go, &[]);
            b.switch_to_block(has_rt);
            b.seal_block(has_rt);
            let v = b.ins().load(types::I32, flags, rt, 0);
            let c = b.ins().icmp_imm_s(IntCC::NotEqual, v, kerf_runtime::ABI_VERSION as i64);
            let bad = b.create_block();
            b.ins().brif(c, bad, &[], go, &[]);
            b.switch_to_block(bad);
            b.seal_block(bad);
            let code = b.ins().iconst(types::I32, kerf_runtime::status::ABI_MISMATCH as i64);
            b.ins().return_(&[code]);
            b.switch_to_block(go);
            b.seal_block(go);
        }
        let mut in_ptrs = Vec::new();
        for k in 0..g.inputs.len() {
            let p = b.ins().load(PTR, flags, inputs, (8 * k) as i32);
            let c = b.ins().icmp_imm_s(IntCC::Equal, p, 0);
            fail(&mut b, c, 1);
            in_ptrs.push(p);
        }
        let mut out_ptrs = Vec::new();
        for k in 0..g.outputs.len() {
            let p = b.ins().load(PTR, flags, outputs, (8 * k) as i32);
            let c = b.ins().icmp_imm_s(IntCC::Equal, p, 0);
            fail(&mut b, c, 1);
            out_ptrs.push(p);
        }
        let mut gv_cache: HashMap<DataId, Value> = HashMap::new();
        let mut data_ptr = |b: &mut FunctionBuilder, module: &mut M, id: DataId| -> Value {
            if let Some(&v) = gv_cache.get(&id) {
                return v;
            }
            let gv = data_in_func(module, id, b.func, addressing);
            let v = b.ins().symbol_value(PTR, gv);
            gv_cache.insert(id, v);
            v
        };
        let value_ptr = |b: &mut FunctionBuilder,
                         module: &mut M,
                         data_ptr: &mut dyn FnMut(&mut FunctionBuilder, &mut M, DataId) -> Value,
                         v: ValueId|
         -> Value {
            match plan.loc[v.0 as usize] {
                Loc::Input(k) => in_ptrs[k],
                Loc::Output(k) => out_ptrs[k],
                Loc::Arena(off) => b.ins().iadd_imm_s(arena_p, off as i64),
                Loc::Const => match g.value(v).def {
                    ValueDef::Const(w) => data_ptr(b, module, weight_data[&w.0]),
                    _ => arena_p,
                },
            }
        };
        // Threading hook, read once: (threads, parallel_for, ctx), with
        // threads = 1 when rt or rt->parallel_for is NULL.
        let threading = if any_split {
            let with_rt = b.create_block();
            let join = b.create_block();
            let nt = b.append_block_param(join, PTR);
            let pf = b.append_block_param(join, PTR);
            let ctx = b.append_block_param(join, PTR);
            let one = b.ins().iconst(PTR, 1);
            let zero = b.ins().iconst(PTR, 0);
            let c = b.ins().icmp_imm_s(IntCC::NotEqual, rt, 0);
            b.ins().brif(c, with_rt, &[], join, &[one.into(), zero.into(), zero.into()]);
            b.switch_to_block(with_rt);
            b.seal_block(with_rt);
            let n = b.ins().load(types::I32, flags, rt, 4);
            let n = b.ins().uextend(PTR, n);
            let f = b.ins().load(PTR, flags, rt, 8);
            let x = b.ins().load(PTR, flags, rt, 16);
            let has_f = b.ins().icmp_imm_s(IntCC::NotEqual, f, 0);
            let n = b.ins().select(has_f, n, one);
            b.ins().jump(join, &[n.into(), f.into(), x.into()]);
            b.switch_to_block(join);
            b.seal_block(join);
            let words = kernels.iter().filter(|k| k.split.is_some()).map(|k| k.params.len() + 1).max().unwrap_or(1);
            let slot =
                b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, (8 * words) as u32, 3));
            let pf_sig = b.import_signature(parallel_for_sig(call_conv));
            Some((nt, pf, ctx, slot, pf_sig))
        } else {
            None
        };
        let prof_ref = prof_hook.map(|h| func_in_func(module, h, b.func, addressing));
        let prof = |b: &mut FunctionBuilder, i: usize| {
            if let Some(r) = prof_ref {
                let v = b.ins().iconst(types::I32, i as i64);
                b.ins().call(r, &[v]);
            }
        };
        for (ki, kinfo) in kernels.iter().enumerate() {
            prof(&mut b, ki);
            let fref = func_in_func(module, kinfo.func, b.func, addressing);
            let mut args = Vec::new();
            let mut soff = plan.scratch[kinfo.node].unwrap_or(0);
            let copies = kinfo.split.map_or(1, |s| s.max_tasks);
            for p in &kinfo.params {
                let a = match p {
                    Param::Value(v) => value_ptr(&mut b, module, &mut data_ptr, *v),
                    Param::Blob(bytes) => data_ptr(&mut b, module, blob_data[bytes]),
                    Param::Code(bytes) => {
                        let r = func_in_func(module, code_funcs[bytes], b.func, addressing);
                        b.ins().func_addr(PTR, r)
                    }
                    Param::Scratch(s) => {
                        let a = b.ins().iadd_imm_s(arena_p, soff as i64);
                        soff += scratch_slot(*s);
                        a
                    }
                    Param::TaskScratch(s) => {
                        let a = b.ins().iadd_imm_s(arena_p, soff as i64);
                        soff += scratch_slot(*s) * copies;
                        a
                    }
                    Param::RangeLo => b.ins().iconst(PTR, 0),
                    Param::RangeHi => b.ins().iconst(PTR, kinfo.split.map_or(0, |s| s.total) as i64),
                };
                args.push(a);
            }
            match (kinfo.split, trampolines[ki], threading) {
                (Some(sp), Some(tramp), Some((nt, pf, ctx, slot, pf_sig))) => {
                    let par = b.create_block();
                    let ser = b.create_block();
                    let done = b.create_block();
                    let max = b.ins().iconst(PTR, sp.max_tasks as i64);
                    let n = b.ins().umin(nt, max);
                    let c = b.ins().icmp_imm_s(IntCC::UnsignedGreaterThan, n, 1);
                    b.ins().brif(c, par, &[], ser, &[]);
                    b.switch_to_block(par);
                    b.seal_block(par);
                    b.ins().stack_store(PTR, n, slot, 0);
                    let mut w = 1;
                    for (p, &a) in kinfo.params.iter().zip(&args) {
                        if !matches!(p, Param::RangeLo | Param::RangeHi) {
                            b.ins().stack_store(PTR, a, slot, 8 * w);
                            w += 1;
                        }
                    }
                    let block = b.ins().stack_addr(PTR, slot, 0);
                    let tref = func_in_func(module, tramp, b.func, addressing);
                    let taddr = b.ins().func_addr(PTR, tref);
                    let n32 = b.ins().ireduce(types::I32, n);
                    b.ins().call_indirect(pf_sig, pf, &[ctx, n32, taddr, block]);
                    b.ins().jump(done, &[]);
                    b.switch_to_block(ser);
                    b.seal_block(ser);
                    b.ins().call(fref, &args);
                    b.ins().jump(done, &[]);
                    b.switch_to_block(done);
                    b.seal_block(done);
                }
                _ => {
                    b.ins().call(fref, &args);
                }
            }
        }
        prof(&mut b, kernels.len());
        if let Some(cf) = copy_fn {
            let fref = func_in_func(module, cf, b.func, addressing);
            for &(k, v) in &out_copies {
                let src = value_ptr(&mut b, module, &mut data_ptr, v);
                let n = b.ins().iconst(PTR, g.ty(v).bytes() as i64);
                b.ins().call(fref, &[out_ptrs[k], src, n]);
            }
        }
        let z = b.ins().iconst(types::I32, 0);
        b.ins().return_(&[z]);
        b.seal_all_blocks();
        b.finalize(module.target_config());
    }
    let mut ctx = Context::for_function(func);
    module.define_function(run, &mut ctx).map_err(|e| cg_err(&run_name, format!("{e:?}")))?;

    let (describe, desc_bytes) = build_descriptor(module, g, name, &plan, call_conv, addressing)?;
    rodata_bytes += desc_bytes;
    let kernel_names = kernels.iter().map(|k| format!("{name}_k{}", k.node)).collect();
    let splits = kernels.iter().map(|k| k.split).collect();
    Ok(Built { run, describe, plan, kernels: kernel_names, rodata_bytes, splits, micro_kernels: code_funcs.len() })
}

/// `<name>_copy(dst, src, n)`: byte copy in 8-byte words plus a tail (no
/// memcpy: the object must not have undefined symbols).
fn build_copy<M: Module>(
    module: &mut M,
    name: &str,
    cc: cranelift_codegen::isa::CallConv,
) -> Result<FuncId, TargetError> {
    let fname = format!("{name}_copy");
    let mut sig = Signature::new(cc);
    for _ in 0..3 {
        sig.params.push(AbiParam::new(PTR));
    }
    let id = module.declare_function(&fname, Linkage::Local, &sig).map_err(|e| cg_err(&fname, e))?;
    let mut func = Function::with_name_signature(UserFuncName::user(1, 1), sig);
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let ps = b.block_params(entry).to_vec();
        let (dst, src, n) = (ps[0], ps[1], ps[2]);
        let flags = MemFlagsData::new().with_notrap();
        // words
        let words = b.ins().band_imm_s(n, !7i64);
        let emit = |b: &mut FunctionBuilder, lo: Value, hi: Value, step: i64, ty: types::Type| {
            let header = b.create_block();
            let body = b.create_block();
            let exit = b.create_block();
            let i = b.append_block_param(header, PTR);
            b.ins().jump(header, &[lo.into()]);
            b.switch_to_block(header);
            let c = b.ins().icmp(IntCC::UnsignedLessThan, i, hi);
            b.ins().brif(c, body, &[], exit, &[]);
            b.switch_to_block(body);
            let s = b.ins().iadd(src, i);
            let v = b.ins().load(ty, flags, s, 0);
            let d = b.ins().iadd(dst, i);
            b.ins().store(flags, v, d, 0);
            let i2 = b.ins().iadd_imm_s(i, step);
            b.ins().jump(header, &[i2.into()]);
            b.switch_to_block(exit);
        };
        let zero = b.ins().iconst(PTR, 0);
        emit(&mut b, zero, words, 8, types::I64);
        emit(&mut b, words, n, 1, types::I8);
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(module.target_config());
    }
    let mut ctx = Context::for_function(func);
    module.define_function(id, &mut ctx).map_err(|e| cg_err(&fname, format!("{e:?}")))?;
    Ok(id)
}

/// Size of `kerf_tensor_desc` and `kerf_model_desc` (64-bit targets).
const TENSOR_DESC: usize = 32;
const MODEL_DESC: usize = 48;

fn build_descriptor<M: Module>(
    module: &mut M,
    g: &Graph,
    name: &str,
    plan: &GraphPlan,
    cc: cranelift_codegen::isa::CallConv,
    addressing: Addressing,
) -> Result<(FuncId, usize), TargetError> {
    let mut total = 0;
    let declare = |module: &mut M, suffix: &str| {
        let n = format!("{name}_{suffix}");
        module.declare_data(&n, Linkage::Local, false, false).map_err(|e| cg_err(&n, e))
    };
    // strings: model name, then tensor names, NUL-terminated
    let tensors: Vec<(String, &kerf_ir::TensorType)> = g
        .inputs
        .iter()
        .map(|&v| (g.value(v).name.clone(), g.ty(v)))
        .chain(g.outputs.iter().map(|o| (o.name.clone(), g.ty(o.value))))
        .collect();
    let mut strs: Vec<u8> = Vec::new();
    let mut str_off = Vec::new();
    let clean = |s: &str| s.bytes().filter(|&c| c != 0).collect::<Vec<u8>>();
    strs.extend(clean(name));
    strs.push(0);
    for (n, _) in &tensors {
        str_off.push(strs.len());
        strs.extend(clean(n));
        strs.push(0);
    }
    let mut dims: Vec<u8> = Vec::new();
    let mut dim_off = Vec::new();
    for (_, t) in &tensors {
        dim_off.push(dims.len());
        for &d in &t.shape {
            dims.extend((d as i64).to_le_bytes());
        }
    }
    dims.extend(0i64.to_le_bytes());
    let strs_id = declare(module, "strs")?;
    let dims_id = declare(module, "dims")?;
    let tens_id = declare(module, "tensors")?;
    let desc_id = declare(module, "desc")?;
    let mut d = DataDescription::new();
    total += strs.len();
    d.define(strs.into_boxed_slice());
    module.define_data(strs_id, &d).map_err(|e| cg_err("strs", e))?;
    let mut d = DataDescription::new();
    total += dims.len();
    d.define(dims.into_boxed_slice());
    d.set_align(8);
    module.define_data(dims_id, &d).map_err(|e| cg_err("dims", e))?;
    // tensor descriptors
    let mut bytes = vec![0u8; TENSOR_DESC * tensors.len().max(1)];
    let mut d = DataDescription::new();
    let sgv = module.declare_data_in_data(strs_id, &mut d);
    let dgv = module.declare_data_in_data(dims_id, &mut d);
    for (i, (_, t)) in tensors.iter().enumerate() {
        let o = i * TENSOR_DESC;
        bytes[o + 8..o + 12].copy_from_slice(&t.dtype.onnx_code().to_le_bytes());
        bytes[o + 12..o + 16].copy_from_slice(&(t.rank() as u32).to_le_bytes());
        bytes[o + 24..o + 32].copy_from_slice(&(t.bytes() as u64).to_le_bytes());
        d.write_data_addr(o as u32, sgv, str_off[i] as i64);
        d.write_data_addr((o + 16) as u32, dgv, dim_off[i] as i64);
    }
    total += bytes.len();
    d.define(bytes.into_boxed_slice());
    d.set_align(8);
    module.define_data(tens_id, &d).map_err(|e| cg_err("tensors", e))?;
    // model descriptor
    let mut bytes = vec![0u8; MODEL_DESC];
    bytes[0..4].copy_from_slice(&kerf_runtime::ABI_VERSION.to_le_bytes());
    bytes[4..8].copy_from_slice(&(g.inputs.len() as u32).to_le_bytes());
    bytes[8..12].copy_from_slice(&(g.outputs.len() as u32).to_le_bytes());
    bytes[12..16].copy_from_slice(&(arena::ALIGN as u32).to_le_bytes());
    bytes[16..24].copy_from_slice(&(plan.arena_bytes as u64).to_le_bytes());
    let mut d = DataDescription::new();
    let tgv = module.declare_data_in_data(tens_id, &mut d);
    let sgv = module.declare_data_in_data(strs_id, &mut d);
    d.write_data_addr(24, tgv, 0);
    d.write_data_addr(32, tgv, (TENSOR_DESC * g.inputs.len()) as i64);
    d.write_data_addr(40, sgv, 0);
    total += bytes.len();
    d.define(bytes.into_boxed_slice());
    d.set_align(8);
    module.define_data(desc_id, &d).map_err(|e| cg_err("desc", e))?;

    let fname = format!("{name}_describe");
    let mut sig = Signature::new(cc);
    sig.returns.push(AbiParam::new(PTR));
    let fid = module.declare_function(&fname, Linkage::Export, &sig).map_err(|e| cg_err(&fname, e))?;
    let mut func = Function::with_name_signature(UserFuncName::user(1, 2), sig);
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let entry = b.create_block();
        b.switch_to_block(entry);
        let gv = data_in_func(module, desc_id, b.func, addressing);
        let v = b.ins().symbol_value(PTR, gv);
        b.ins().return_(&[v]);
        b.seal_all_blocks();
        b.finalize(module.target_config());
    }
    let mut ctx = Context::for_function(func);
    module.define_function(fid, &mut ctx).map_err(|e| cg_err(&fname, format!("{e:?}")))?;
    Ok((fid, total))
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
