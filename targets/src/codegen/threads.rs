//! The threading side of the entry: the task and `parallel_for`
//! signatures of the runtime's hook, and one trampoline per split kernel
//! that turns a task index into its iteration range (contract in
//! [`crate::lower`]: a split kernel computes any sub-range on its own).

use cranelift_codegen::ir::{types, AbiParam, InstBuilder, MemFlagsData, Signature, UserFuncName};
use cranelift_module::{FuncId, Linkage, Module};

use super::{define_function, func_in_func, scratch_slot, Addressing};
use crate::lower::{Param, Split, PTR};
use crate::TargetError;

/// Signature of a task: `void task(void *arg, uint32_t i)`.
pub(super) fn task_sig(cc: cranelift_codegen::isa::CallConv) -> Signature {
    let mut sig = Signature::new(cc);
    sig.params.push(AbiParam::new(PTR));
    sig.params.push(AbiParam::new(types::I32));
    sig
}

/// Signature of `parallel_for(ctx, n_tasks, task, arg)`. `n_tasks` is
/// sign-extended (the riscv64 psABI wants 32-bit arguments sign-extended
/// whatever their signedness; harmless elsewhere, and n is small).
pub(super) fn parallel_for_sig(cc: cranelift_codegen::isa::CallConv) -> Signature {
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
pub(super) fn build_trampoline<M: Module>(
    module: &mut M,
    fname: &str,
    kernel: FuncId,
    params: &[Param],
    split: Split,
    addressing: Addressing,
) -> Result<FuncId, TargetError> {
    let cc = module.isa().default_call_conv();
    let sig = task_sig(cc);
    define_function(module, fname, Linkage::Local, sig, UserFuncName::user(2, kernel.as_u32()), |b, ps, module| {
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
    })
}
