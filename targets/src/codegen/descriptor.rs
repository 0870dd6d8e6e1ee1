//! The model descriptor (`<name>_describe`) and the output copy helper:
//! the parts of an object that are data about the model rather than its
//! computation. Layouts come from the runtime crate's `#[repr(C)]` mirrors
//! (`offset_of!`, `size_of`), stated once there.

use std::mem::{offset_of, size_of};

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, AbiParam, InstBuilder, MemFlagsData, Signature, UserFuncName, Value};
use cranelift_frontend::FunctionBuilder;
use cranelift_module::{DataDescription, FuncId, Linkage, Module};
use kerf_ir::Graph;
use kerf_runtime::{ModelDescRaw, TensorDescRaw};

use super::{cg_err, data_in_func, define_function, Addressing};
use crate::arena::GraphPlan;
use crate::lower::PTR;
use crate::TargetError;

/// `<name>_copy(dst, src, n)`: byte copy in 8-byte words plus a tail (no
/// memcpy: the object must not have undefined symbols).
pub(super) fn build_copy<M: Module>(
    module: &mut M,
    name: &str,
    cc: cranelift_codegen::isa::CallConv,
) -> Result<FuncId, TargetError> {
    let fname = format!("{name}_copy");
    let mut sig = Signature::new(cc);
    sig.params.extend(std::iter::repeat_n(AbiParam::new(PTR), 3));
    define_function(module, &fname, Linkage::Local, sig, UserFuncName::user(1, 1), |b, ps, _| {
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
        emit(b, zero, words, 8, types::I64);
        emit(b, words, n, 1, types::I8);
        b.ins().return_(&[]);
    })
}

/// Size of `kerf_tensor_desc` (the runtime's mirror: every target is a
/// 64-bit LP64 one, like the compiler's host, so the host layout is the
/// target's).
const TENSOR_DESC: usize = size_of::<TensorDescRaw>();
/// Size of `kerf_model_desc`.
const MODEL_DESC: usize = size_of::<ModelDescRaw>();

/// Writes `v` at `offset` of a descriptor.
fn put(bytes: &mut [u8], offset: usize, v: &[u8]) {
    bytes[offset..offset + v.len()].copy_from_slice(v);
}

/// `<name>_describe()` and the static descriptor it returns (names,
/// dtypes, dims, sizes of the inputs and outputs; the arena), laid out as
/// the runtime's `ModelDescRaw`/`TensorDescRaw`. Returns the function and
/// the descriptor's bytes.
pub(super) fn build_descriptor<M: Module>(
    module: &mut M,
    g: &Graph,
    name: &str,
    plan: &GraphPlan,
    addressing: Addressing,
) -> Result<(FuncId, usize), TargetError> {
    let cc = module.isa().default_call_conv();
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
        put(&mut bytes, o + offset_of!(TensorDescRaw, dtype), &t.dtype.onnx_code().to_le_bytes());
        put(&mut bytes, o + offset_of!(TensorDescRaw, rank), &(t.rank() as u32).to_le_bytes());
        put(&mut bytes, o + offset_of!(TensorDescRaw, bytes), &(t.bytes() as u64).to_le_bytes());
        d.write_data_addr((o + offset_of!(TensorDescRaw, name)) as u32, sgv, str_off[i] as i64);
        d.write_data_addr((o + offset_of!(TensorDescRaw, dims)) as u32, dgv, dim_off[i] as i64);
    }
    total += bytes.len();
    d.define(bytes.into_boxed_slice());
    d.set_align(8);
    module.define_data(tens_id, &d).map_err(|e| cg_err("tensors", e))?;
    // model descriptor
    let mut bytes = vec![0u8; MODEL_DESC];
    put(&mut bytes, offset_of!(ModelDescRaw, abi_version), &kerf_runtime::ABI_VERSION.to_le_bytes());
    put(&mut bytes, offset_of!(ModelDescRaw, num_inputs), &(g.inputs.len() as u32).to_le_bytes());
    put(&mut bytes, offset_of!(ModelDescRaw, num_outputs), &(g.outputs.len() as u32).to_le_bytes());
    put(&mut bytes, offset_of!(ModelDescRaw, arena_align), &(kerf_runtime::ARENA_ALIGN as u32).to_le_bytes());
    put(&mut bytes, offset_of!(ModelDescRaw, arena_bytes), &(plan.arena_bytes as u64).to_le_bytes());
    let mut d = DataDescription::new();
    let tgv = module.declare_data_in_data(tens_id, &mut d);
    let sgv = module.declare_data_in_data(strs_id, &mut d);
    d.write_data_addr(offset_of!(ModelDescRaw, inputs) as u32, tgv, 0);
    d.write_data_addr(offset_of!(ModelDescRaw, outputs) as u32, tgv, (TENSOR_DESC * g.inputs.len()) as i64);
    d.write_data_addr(offset_of!(ModelDescRaw, name) as u32, sgv, 0);
    total += bytes.len();
    d.define(bytes.into_boxed_slice());
    d.set_align(8);
    module.define_data(desc_id, &d).map_err(|e| cg_err("desc", e))?;

    let fname = format!("{name}_describe");
    let mut sig = Signature::new(cc);
    sig.returns.push(AbiParam::new(PTR));
    let fid = define_function(module, &fname, Linkage::Export, sig, UserFuncName::user(1, 2), |b, _, module| {
        let gv = data_in_func(module, desc_id, b.func, addressing);
        let v = b.ins().symbol_value(PTR, gv);
        b.ins().return_(&[v]);
    })?;
    Ok((fid, total))
}
