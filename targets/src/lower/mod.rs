//! Lowering of one node to one Cranelift function.
//!
//! Kernel interface: every kernel is a function `<name>_k<idx>` with local
//! linkage, returning nothing, whose parameters are pointers, in the order
//! the lowering asked for them with [`Kernel::input`], [`Kernel::output`],
//! [`Kernel::blob`] and [`Kernel::scratch`]. The entry function passes, for
//! each [`Param`], the caller's buffer, an arena address or the address of a
//! read-only data object. Shapes are static, so every loop bound and stride
//! is a constant baked into the code.
//!
//! Weights are pre-packed at compile time into the layout the kernel reads
//! (blobs), e.g. GEMM B panels of 4 columns.
//!
//! Elementwise kernels must stay correct when an output aliases an input of
//! the same shape (in-place reuse, see `arena`): each element is read before
//! the same element is written.

pub mod conv;
pub mod elementwise;
pub mod loops;
pub mod matmul;
pub mod movement;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod resize;
pub mod rnn;

use cranelift_codegen::ir::{types, AbiParam, Block, Type, Value};
use cranelift_frontend::FunctionBuilder;
use kerf_ir::{DType, Graph, Node, Op, ValueId};

use crate::isa::Caps;

/// What the entry function passes for one kernel parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Param {
    /// The buffer of a graph value (input, output, activation or raw weight).
    Value(ValueId),
    /// A constant blob packed by the lowering, stored as read-only data.
    Blob(Vec<u8>),
    /// Scratch memory of this many bytes in the arena, valid during the call.
    Scratch(usize),
}

/// A kernel under construction.
pub struct Kernel<'a, 'g> {
    pub b: FunctionBuilder<'a>,
    pub caps: Caps,
    pub g: &'g Graph,
    pub node: &'g Node,
    pub params: Vec<Param>,
    pub entry: Block,
}

/// Result of a lowering: `Err` carries the reason a node is unsupported.
pub type LResult<T = ()> = Result<T, String>;

pub const PTR: Type = types::I64;

impl<'a, 'g> Kernel<'a, 'g> {
    fn param(&mut self, p: Param) -> Value {
        if let Some(k) = self.params.iter().position(|q| *q == p && !matches!(p, Param::Scratch(_))) {
            return self.b.block_params(self.entry)[k];
        }
        self.params.push(p);
        self.b.func.signature.params.push(AbiParam::new(PTR));
        self.b.append_block_param(self.entry, PTR)
    }
    /// Pointer to input `i` of the node.
    pub fn input(&mut self, i: usize) -> Value {
        let v = self.node.inputs[i];
        self.param(Param::Value(v))
    }
    /// Pointer to output `i` of the node.
    pub fn output(&mut self, i: usize) -> Value {
        let v = self.node.outputs[i];
        self.param(Param::Value(v))
    }
    /// Pointer to a packed constant.
    pub fn blob(&mut self, bytes: Vec<u8>) -> Value {
        self.param(Param::Blob(bytes))
    }
    /// Pointer to f32 values packed as a blob.
    pub fn blob_f32(&mut self, v: &[f32]) -> Value {
        self.blob(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
    /// Pointer to scratch memory.
    pub fn scratch(&mut self, bytes: usize) -> Value {
        self.param(Param::Scratch(bytes))
    }

    pub fn in_shape(&self, i: usize) -> &'g [usize] {
        &self.g.ty(self.node.inputs[i]).shape
    }
    pub fn out_shape(&self, i: usize) -> &'g [usize] {
        &self.g.ty(self.node.outputs[i]).shape
    }
    pub fn in_dtype(&self, i: usize) -> DType {
        self.g.ty(self.node.inputs[i]).dtype
    }
    pub fn out_dtype(&self, i: usize) -> DType {
        self.g.ty(self.node.outputs[i]).dtype
    }
    /// Input `i` as f32 values when it is a constant.
    pub fn const_f32(&self, i: usize) -> Option<Vec<f32>> {
        self.node.inputs.get(i).and_then(|&v| self.g.const_of(v)).map(|t| t.to_f32_vec())
    }
    pub fn is_const(&self, i: usize) -> bool {
        self.node.inputs.get(i).is_some_and(|&v| self.g.const_of(v).is_some())
    }
    /// Fails unless every input and output is f32.
    pub fn require_f32(&self) -> LResult {
        let all = self.node.inputs.iter().chain(&self.node.outputs);
        for &v in all {
            let t = self.g.ty(v);
            if t.dtype != DType::F32 {
                return Err(format!("only f32 is supported, got {t} for '{}'", self.g.value(v).name));
            }
        }
        Ok(())
    }
}

/// Emits the body of the kernel for the node. `Err` = unsupported.
pub fn lower_node(k: &mut Kernel) -> LResult {
    match &k.node.op {
        Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Cast(_) => elementwise::lower(k),
        Op::Identity | Op::Dropout | Op::Reshape { .. } => movement::copy(k),
        Op::Conv(_) => conv::conv(k),
        Op::ConvTranspose(_) => conv::conv_transpose(k),
        Op::Gemm(_) | Op::MatMul(_) => matmul::lower(k),
        Op::MaxPool(_) | Op::AveragePool(_) => pool::pool(k),
        Op::GlobalAveragePool | Op::GlobalMaxPool => pool::global(k),
        Op::Softmax { .. } | Op::LogSoftmax { .. } => norm::softmax(k),
        Op::LayerNorm { .. } => norm::layer_norm(k),
        Op::BatchNorm { .. } => norm::batch_norm(k),
        Op::InstanceNorm { .. } => norm::instance_norm(k),
        Op::Reduce { .. } | Op::ArgMax { .. } | Op::ArgMin { .. } => reduce::lower(k),
        Op::Transpose { .. }
        | Op::Concat { .. }
        | Op::Split { .. }
        | Op::Slice { .. }
        | Op::Gather { .. }
        | Op::Expand { .. }
        | Op::Tile { .. }
        | Op::Pad { .. }
        | Op::Resize(_) => movement::lower(k),
        Op::Lstm(_) | Op::Gru(_) => rnn::lower(k),
    }
}
