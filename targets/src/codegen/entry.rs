//! `<name>_run`: checks its arguments, reads the threading hook once, calls
//! the kernels in node order (split kernels through `parallel_for`;
//! returning at once the status a kernel leaves in its fault word,
//! [`Param::Fault`], with the outputs unfinished), then copies the graph
//! outputs that are not produced in place. The contract is
//! in the module docs of [`super`] and `docs/abi.md`; the runtime struct's
//! field offsets come from its `#[repr(C)]` mirror.

use std::collections::HashMap;
use std::mem::offset_of;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, FuncRef, InstBuilder, SigRef, Signature, StackSlot, StackSlotData, StackSlotKind, UserFuncName,
    Value,
};
use cranelift_frontend::FunctionBuilder;
use cranelift_module::{DataId, FuncId, Linkage, Module};
use kerf_ir::{Graph, ValueDef, ValueId};
use kerf_runtime::{status, KerfRuntime, ABI_VERSION, ARENA_ALIGN};

use super::kernels::KernelInfo;
use super::rodata::Rodata;
use super::threads::parallel_for_sig;
use super::{data_in_func, define_function, func_in_func, scratch_slot, Addressing};
use crate::arena::{GraphPlan, Loc};
use crate::lower::loops::mem;
use crate::lower::{Param, PTR};
use crate::TargetError;

/// Everything the entry calls and reads, decided before it is built.
pub(super) struct EntryParts<'a> {
    pub g: &'a Graph,
    pub name: &'a str,
    pub plan: &'a GraphPlan,
    pub kernels: &'a [KernelInfo],
    /// Per kernel: its trampoline when it is split.
    pub trampolines: &'a [Option<FuncId>],
    pub rodata: &'a Rodata<'a>,
    /// Graph outputs copied at the end: `(output index, value)`, and the copy helper.
    pub copies: &'a [(usize, ValueId)],
    pub copy_fn: Option<FuncId>,
    pub profile_hook: Option<FuncId>,
    pub addressing: Addressing,
}

/// The threading hook as read once: `(threads, parallel_for, ctx)` plus the
/// argument block and `parallel_for`'s signature.
#[derive(Clone, Copy)]
struct Threading {
    threads: Value,
    parallel_for: Value,
    ctx: Value,
    block: StackSlot,
    sig: SigRef,
}

/// Builds and defines `<name>_run`.
pub(super) fn build_entry<M: Module>(module: &mut M, p: &EntryParts<'_>) -> Result<FuncId, TargetError> {
    let call_conv = module.isa().default_call_conv();
    let run_name = format!("{}_run", p.name);
    let mut sig = Signature::new(call_conv);
    sig.params.extend(std::iter::repeat_n(AbiParam::new(PTR), 4));
    sig.returns.push(AbiParam::new(types::I32));
    define_function(module, &run_name, Linkage::Export, sig, UserFuncName::user(1, 0), |b, ps, module| {
        let (inputs, outputs, arena, rt) = (ps[0], ps[1], ps[2], ps[3]);
        check_args(b, p, inputs, outputs, arena, rt);
        let in_ptrs = buffer_ptrs(b, inputs, p.g.inputs.len());
        let out_ptrs = buffer_ptrs(b, outputs, p.g.outputs.len());
        let threading = p.trampolines.iter().any(Option::is_some).then(|| read_threading(b, p, rt, call_conv));
        let mut e = Entry { b, module, p, in_ptrs, out_ptrs, arena, data: HashMap::new() };
        let prof = p.profile_hook.map(|h| func_in_func(e.module, h, e.b.func, p.addressing));
        for (ki, k) in p.kernels.iter().enumerate() {
            e.profile(prof, ki);
            e.call_kernel(k, p.trampolines[ki], threading);
        }
        e.profile(prof, p.kernels.len());
        e.copy_outputs();
        let z = e.b.ins().iconst(types::I32, status::OK as i64);
        e.b.ins().return_(&[z]);
    })
}

/// Returns `code` when `cond` holds, else continues in a new block.
fn fail(b: &mut FunctionBuilder, cond: Value, code: i32) {
    let bad = b.create_block();
    let ok = b.create_block();
    b.ins().brif(cond, bad, &[], ok, &[]);
    b.switch_to_block(bad);
    b.seal_block(bad);
    let c = b.ins().iconst(types::I32, code as i64);
    b.ins().return_(&[c]);
    b.switch_to_block(ok);
    b.seal_block(ok);
}

/// The pointer checks: NULL buffer arrays, a NULL or misaligned arena
/// (when one is needed), `rt` not NULL with another ABI version.
fn check_args(b: &mut FunctionBuilder, p: &EntryParts<'_>, inputs: Value, outputs: Value, arena: Value, rt: Value) {
    let c = b.ins().icmp_imm_s(IntCC::Equal, inputs, 0);
    let c2 = b.ins().icmp_imm_s(IntCC::Equal, outputs, 0);
    let c = b.ins().bor(c, c2);
    let c = if p.g.inputs.is_empty() && p.g.outputs.is_empty() { b.ins().iconst(types::I8, 0) } else { c };
    fail(b, c, status::NULL_POINTER);
    if p.plan.arena_bytes > 0 {
        let c = b.ins().icmp_imm_s(IntCC::Equal, arena, 0);
        fail(b, c, status::NULL_POINTER);
        let m = b.ins().band_imm_s(arena, (ARENA_ALIGN - 1) as i64);
        let c = b.ins().icmp_imm_s(IntCC::NotEqual, m, 0);
        fail(b, c, status::MISALIGNED_ARENA);
    }
    let has_rt = b.create_block();
    let go = b.create_block();
    let c = b.ins().icmp_imm_s(IntCC::NotEqual, rt, 0);
    b.ins().brif(c, has_rt, &[], go, &[]);
    b.switch_to_block(has_rt);
    b.seal_block(has_rt);
    let v = b.ins().load(types::I32, mem(), rt, offset_of!(KerfRuntime, abi_version) as i32);
    let c = b.ins().icmp_imm_s(IntCC::NotEqual, v, ABI_VERSION as i64);
    let bad = b.create_block();
    b.ins().brif(c, bad, &[], go, &[]);
    b.switch_to_block(bad);
    b.seal_block(bad);
    let code = b.ins().iconst(types::I32, status::ABI_MISMATCH as i64);
    b.ins().return_(&[code]);
    b.switch_to_block(go);
    b.seal_block(go);
}

/// The `n` buffer pointers of an array, each checked for NULL.
fn buffer_ptrs(b: &mut FunctionBuilder, array: Value, n: usize) -> Vec<Value> {
    (0..n)
        .map(|k| {
            let p = b.ins().load(PTR, mem(), array, (8 * k) as i32);
            let c = b.ins().icmp_imm_s(IntCC::Equal, p, 0);
            fail(b, c, status::NULL_POINTER);
            p
        })
        .collect()
}

/// Reads `(num_threads, parallel_for, ctx)` once, with one thread when
/// `rt` or `rt->parallel_for` is NULL, and makes the argument block (big
/// enough for the split kernel with the most parameters).
fn read_threading(
    b: &mut FunctionBuilder,
    p: &EntryParts<'_>,
    rt: Value,
    call_conv: cranelift_codegen::isa::CallConv,
) -> Threading {
    let with_rt = b.create_block();
    let join = b.create_block();
    let threads = b.append_block_param(join, PTR);
    let parallel_for = b.append_block_param(join, PTR);
    let ctx = b.append_block_param(join, PTR);
    let one = b.ins().iconst(PTR, 1);
    let zero = b.ins().iconst(PTR, 0);
    let c = b.ins().icmp_imm_s(IntCC::NotEqual, rt, 0);
    b.ins().brif(c, with_rt, &[], join, &[one.into(), zero.into(), zero.into()]);
    b.switch_to_block(with_rt);
    b.seal_block(with_rt);
    let n = b.ins().load(types::I32, mem(), rt, offset_of!(KerfRuntime, num_threads) as i32);
    let n = b.ins().uextend(PTR, n);
    let f = b.ins().load(PTR, mem(), rt, offset_of!(KerfRuntime, parallel_for) as i32);
    let x = b.ins().load(PTR, mem(), rt, offset_of!(KerfRuntime, ctx) as i32);
    let has_f = b.ins().icmp_imm_s(IntCC::NotEqual, f, 0);
    let n = b.ins().select(has_f, n, one);
    b.ins().jump(join, &[n.into(), f.into(), x.into()]);
    b.switch_to_block(join);
    b.seal_block(join);
    let words = p.kernels.iter().filter(|k| k.split.is_some()).map(|k| k.params.len() + 1).max().unwrap_or(1);
    let block = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, (8 * words) as u32, 3));
    let sig = b.import_signature(parallel_for_sig(call_conv));
    Threading { threads, parallel_for, ctx, block, sig }
}

/// The entry under construction.
struct Entry<'a, 'b, 'f, M: Module> {
    b: &'b mut FunctionBuilder<'f>,
    module: &'a mut M,
    p: &'a EntryParts<'a>,
    in_ptrs: Vec<Value>,
    out_ptrs: Vec<Value>,
    arena: Value,
    /// Addresses of data objects, materialised once.
    data: HashMap<DataId, Value>,
}

impl<M: Module> Entry<'_, '_, '_, M> {
    fn data_ptr(&mut self, id: DataId) -> Value {
        if let Some(&v) = self.data.get(&id) {
            return v;
        }
        let gv = data_in_func(self.module, id, self.b.func, self.p.addressing);
        let v = self.b.ins().symbol_value(PTR, gv);
        self.data.insert(id, v);
        v
    }

    /// Where value `v` lives: an input or output buffer, the arena, a weight.
    fn value_ptr(&mut self, v: ValueId) -> Value {
        match self.p.plan.loc[v.0 as usize] {
            Loc::Input(k) => self.in_ptrs[k],
            Loc::Output(k) => self.out_ptrs[k],
            Loc::Arena(off) => self.b.ins().iadd_imm_s(self.arena, off as i64),
            Loc::Const => match self.p.g.value(v).def {
                ValueDef::Const(w) => self.data_ptr(self.p.rodata.weights[&w]),
                _ => self.arena,
            },
        }
    }

    fn profile(&mut self, hook: Option<FuncRef>, i: usize) {
        if let Some(r) = hook {
            let v = self.b.ins().iconst(types::I32, i as i64);
            self.b.ins().call(r, &[v]);
        }
    }

    /// A kernel's arguments in parameter order (its scratch laid out from
    /// the node's scratch offset, task-private scratch once per task).
    fn args(&mut self, k: &KernelInfo) -> Vec<Value> {
        let mut soff = self.p.plan.scratch[k.node].unwrap_or(0);
        let copies = k.split.map_or(1, |s| s.max_tasks);
        let mut args = Vec::with_capacity(k.params.len());
        for param in &k.params {
            let a = match param {
                Param::Value(v) => self.value_ptr(*v),
                Param::Blob(bytes) => self.data_ptr(self.p.rodata.blobs[bytes]),
                Param::Code(bytes, _) => {
                    let r = func_in_func(self.module, self.p.rodata.code[bytes], self.b.func, self.p.addressing);
                    self.b.ins().func_addr(PTR, r)
                }
                Param::Scratch(s) | Param::TaskScratch(s) => {
                    let a = self.b.ins().iadd_imm_s(self.arena, soff as i64);
                    let n = if matches!(param, Param::TaskScratch(_)) { copies } else { 1 };
                    soff += scratch_slot(*s) * n;
                    a
                }
                Param::Fault => {
                    let a = self.b.ins().iadd_imm_s(self.arena, soff as i64);
                    soff += scratch_slot(4);
                    a
                }
                Param::RangeLo => self.b.ins().iconst(PTR, 0),
                Param::RangeHi => self.b.ins().iconst(PTR, k.split.map_or(0, |s| s.total) as i64),
            };
            args.push(a);
        }
        args
    }

    /// Calls kernel `k`: over `n = min(threads, max_tasks)` tasks through
    /// `parallel_for` when it is split and `n >= 2`, else directly.
    fn call_kernel(&mut self, k: &KernelInfo, trampoline: Option<FuncId>, threading: Option<Threading>) {
        let args = self.args(k);
        let fault = k.params.iter().position(|p| *p == Param::Fault).map(|i| args[i]);
        if let Some(w) = fault {
            let z = self.b.ins().iconst(types::I32, 0);
            self.b.ins().store(mem(), z, w, 0);
        }
        self.call_with(k, &args, trampoline, threading);
        if let Some(w) = fault {
            let code = self.b.ins().load(types::I32, mem(), w, 0);
            self.fail_with(code);
        }
    }

    /// Returns the status in `code` when it is not OK ([`Param::Fault`]).
    fn fail_with(&mut self, code: Value) {
        let b = &mut *self.b;
        let (bad, ok) = (b.create_block(), b.create_block());
        b.ins().brif(code, bad, &[], ok, &[]);
        b.switch_to_block(bad);
        b.seal_block(bad);
        b.ins().return_(&[code]);
        b.switch_to_block(ok);
        b.seal_block(ok);
    }

    /// The call of [`Entry::call_kernel`] with its arguments made.
    fn call_with(&mut self, k: &KernelInfo, args: &[Value], trampoline: Option<FuncId>, threading: Option<Threading>) {
        let fref = func_in_func(self.module, k.func, self.b.func, self.p.addressing);
        let (Some(sp), Some(tramp), Some(t)) = (k.split, trampoline, threading) else {
            self.b.ins().call(fref, args);
            return;
        };
        let b = &mut *self.b;
        let (par, ser, done) = (b.create_block(), b.create_block(), b.create_block());
        let max = b.ins().iconst(PTR, sp.max_tasks as i64);
        let n = b.ins().umin(t.threads, max);
        let c = b.ins().icmp_imm_s(IntCC::UnsignedGreaterThan, n, 1);
        b.ins().brif(c, par, &[], ser, &[]);
        b.switch_to_block(par);
        b.seal_block(par);
        // the block: [n, every pointer argument but the range]
        b.ins().stack_store(PTR, n, t.block, 0);
        let mut w = 1;
        for (p, &a) in k.params.iter().zip(args) {
            if !matches!(p, Param::RangeLo | Param::RangeHi) {
                b.ins().stack_store(PTR, a, t.block, 8 * w);
                w += 1;
            }
        }
        let block = b.ins().stack_addr(PTR, t.block, 0);
        let tref = func_in_func(self.module, tramp, self.b.func, self.p.addressing);
        let b = &mut *self.b;
        let taddr = b.ins().func_addr(PTR, tref);
        let n32 = b.ins().ireduce(types::I32, n);
        b.ins().call_indirect(t.sig, t.parallel_for, &[t.ctx, n32, taddr, block]);
        b.ins().jump(done, &[]);
        b.switch_to_block(ser);
        b.seal_block(ser);
        b.ins().call(fref, args);
        b.ins().jump(done, &[]);
        b.switch_to_block(done);
        b.seal_block(done);
    }

    /// Copies the outputs not produced in place (inputs, constants, repeats).
    fn copy_outputs(&mut self) {
        let Some(cf) = self.p.copy_fn else { return };
        let fref = func_in_func(self.module, cf, self.b.func, self.p.addressing);
        for &(k, v) in self.p.copies {
            let src = self.value_ptr(v);
            let n = self.b.ins().iconst(PTR, self.p.g.ty(v).bytes() as i64);
            self.b.ins().call(fref, &[self.out_ptrs[k], src, n]);
        }
    }
}
