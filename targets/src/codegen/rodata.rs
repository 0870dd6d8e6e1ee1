//! Read-only data and micro-kernel code of an object: weights by weight
//! id, packed blobs by content, assembled micro-kernels by content, each
//! defined once however many kernels use it. Every definition is checked
//! against the PC-relative reach before it is emitted.

use std::collections::HashMap;

use cranelift_codegen::ir::{AbiParam, Signature};
use cranelift_codegen::isa::CallConv;
use cranelift_module::{DataDescription, DataId, FuncId, Linkage, Module};
use kerf_ir::{Graph, ValueDef, WeightId};

use super::{cg_err, check_data_reach, Addressing};
use crate::lower::{Param, PTR};
use crate::TargetError;

/// What has been defined, and how much of it.
pub(super) struct Rodata<'n> {
    name: &'n str,
    addressing: Addressing,
    pub weights: HashMap<WeightId, DataId>,
    pub blobs: HashMap<Vec<u8>, DataId>,
    pub code: HashMap<Vec<u8>, FuncId>,
    /// Bytes of weights and blobs defined (the report's `rodata_bytes`
    /// before the descriptor).
    pub bytes: usize,
    n_data: usize,
}

impl<'n> Rodata<'n> {
    pub(super) fn new(name: &'n str, addressing: Addressing) -> Rodata<'n> {
        Rodata {
            name,
            addressing,
            weights: HashMap::new(),
            blobs: HashMap::new(),
            code: HashMap::new(),
            bytes: 0,
            n_data: 0,
        }
    }

    /// Defines what a kernel's parameters need: its constant inputs, its
    /// blobs, its micro-kernels.
    pub(super) fn define_params<M: Module>(
        &mut self,
        module: &mut M,
        g: &Graph,
        params: &[Param],
    ) -> Result<(), TargetError> {
        for p in params {
            match p {
                Param::Value(v) => self.define_value(module, g, *v)?,
                Param::Blob(bytes) => {
                    if !self.blobs.contains_key(bytes) {
                        let id = self.define(module, bytes)?;
                        self.blobs.insert(bytes.clone(), id);
                    }
                }
                Param::Code(bytes, _) => {
                    if !self.code.contains_key(bytes) {
                        let fname = format!("{}_u{}", self.name, self.code.len());
                        let id = define_code(module, &fname, bytes, module.isa().default_call_conv())?;
                        self.code.insert(bytes.clone(), id);
                    }
                }
                Param::Scratch(_) | Param::TaskScratch(_) | Param::Fault | Param::RangeLo | Param::RangeHi => {}
            }
        }
        Ok(())
    }

    /// Defines value `v`'s weight if it is a constant.
    pub(super) fn define_value<M: Module>(
        &mut self,
        module: &mut M,
        g: &Graph,
        v: kerf_ir::ValueId,
    ) -> Result<(), TargetError> {
        if let ValueDef::Const(w) = g.value(v).def {
            if !self.weights.contains_key(&w) {
                let id = self.define(module, g.weights.tensor(w).bytes())?;
                self.weights.insert(w, id);
            }
        }
        Ok(())
    }

    /// One 64-byte aligned data object (never empty: zero-size tensors
    /// still get a valid address).
    fn define<M: Module>(&mut self, module: &mut M, bytes: &[u8]) -> Result<DataId, TargetError> {
        // weights plus packed blobs (the blobs can exceed the weights)
        check_data_reach((self.bytes + bytes.len()) as u64, self.addressing)?;
        self.bytes += bytes.len();
        let dname = format!("{}_d{}", self.name, self.n_data);
        self.n_data += 1;
        let id = module.declare_data(&dname, Linkage::Local, false, false).map_err(|e| cg_err(&dname, e))?;
        let mut d = DataDescription::new();
        let mut v = bytes.to_vec();
        if v.is_empty() {
            v.push(0);
        }
        d.define(v.into_boxed_slice());
        d.set_align(64);
        module.define_data(id, &d).map_err(|e| cg_err(&dname, e))?;
        Ok(id)
    }
}

/// Defines a micro-kernel ([`crate::ukernel`]) from its machine code: a
/// local function taking pointer arguments, called only through the
/// address the entry point passes to the kernels.
pub(super) fn define_code<M: Module>(
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
