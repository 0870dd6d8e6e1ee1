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
//!
//! # Multi-threading: [`Kernel::parallel_range`]
//!
//! A kernel whose work is an outer loop of independent iterations declares it
//! with `let (lo, hi) = k.parallel_range(total, align, cost_per_iter)` and
//! then runs only iterations `lo..hi` (I64 values, `lo` a multiple of
//! `align`, `hi` a multiple of `align` or `total`). The code generator
//! ([`crate::codegen`]) then:
//!
//! - calls the kernel once with `(0, total)` when the caller passed no
//!   runtime (`rt == NULL`), `rt->parallel_for == NULL`,
//!   `rt->num_threads <= 1`, or when the work is too small to split (the
//!   total cost `total * cost_per_iter` below [`MIN_TASK_COST`] per task;
//!   then `lo`/`hi` are the constants 0 and `total`);
//! - otherwise splits `ceil(total / align)` units into
//!   `n = min(num_threads, max_tasks)` contiguous chunks of (nearly) equal
//!   unit counts and calls `rt->parallel_for(ctx, n, trampoline, block)`; the
//!   trampoline reads the kernel's pointer arguments from `block` (on the
//!   entry function's stack) and calls the kernel with task `i`'s range.
//!   `max_tasks = min(units, total_cost / MIN_TASK_COST, MAX_TASKS)`.
//!
//! Contract for the kernel author:
//! - Tasks run concurrently, in any order, on any thread: iterations in
//!   different chunks must write disjoint memory and must not read what
//!   another chunk writes. Everything the body does outside the `lo..hi`
//!   loop runs once per task.
//! - Results must not depend on the split: each output element computed the
//!   same way (same operation order) whichever chunk it falls in. Choose
//!   `align` so chunk boundaries fall on tile boundaries (e.g. the
//!   micro-tile height) — then a threaded run is bit-identical to a serial
//!   one, which the tests check.
//! - [`Kernel::scratch`] is *shared* by all tasks (use it for buffers tasks
//!   fill at disjoint offsets); [`Kernel::task_scratch`] is *private* to one
//!   task (the arena holds `max_tasks` copies; keep it tile-sized).
//! - `cost_per_iter` is in FLOP-like units (one f32 multiply-add = 2; for
//!   memory-bound loops use bytes moved / 4). It only decides whether and
//!   how far to split.
//! - Call it at most once per kernel (`Err` otherwise), before the loop.

pub mod cast;
mod chain;
pub mod conv;
pub mod conv3d;
mod conv_geo;
mod conv_lanes;
pub mod conv_packed;
pub mod conv_pattern;
pub mod conv_smallk;
pub mod conv_transpose;
pub mod depthwise;
pub mod elementwise;
pub mod epilogue;
pub mod gemm;
mod gemm_wide;
pub mod loops;
pub mod matmul;
pub mod movement;
pub mod norm;
pub mod pool;
pub mod qconv;
pub mod qconv_pattern;
pub mod qdepthwise;
pub mod quantize;
pub mod reduce;
pub mod requant;
pub mod resize;
pub mod rnn;
pub mod winograd;

use cranelift_codegen::ir::{types, AbiParam, Block, InstBuilder, Type, Value};
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
    /// Scratch memory of this many bytes in the arena, valid during the call
    /// and shared by every task of a parallel kernel.
    Scratch(usize),
    /// Scratch memory private to one task of a parallel kernel (the arena
    /// holds one copy per possible task).
    TaskScratch(usize),
    /// First iteration of this task's chunk (I64), see [`Kernel::parallel_range`].
    RangeLo,
    /// End (exclusive) of this task's chunk (I64).
    RangeHi,
    /// Address of a micro-kernel with this machine code ([`crate::ukernel`]),
    /// defined once per object however many kernels call it, and the
    /// family its instructions belong to.
    Code(Vec<u8>, Family),
    /// A 4-byte word in the arena that `<name>_run` zeroes before the call
    /// and reads after it: the kernel stores a status there
    /// ([`Kernel::fault`]) when its run-time input is outside what the op
    /// defines, and the run returns that status instead of going on.
    Fault,
}

/// Smallest total cost (FLOP-like units, see [`Kernel::parallel_range`]) a
/// task must carry for a kernel to be split: a `parallel_for` costs a few
/// microseconds (wake-up and join), so a task should run ≳ 20 µs.
pub const MIN_TASK_COST: u64 = 400_000;

/// Most tasks one kernel is split into (bounds the arena copies of
/// [`Kernel::task_scratch`]); more threads than this gain nothing on it.
pub const MAX_TASKS: usize = 16;

/// Which vector code a kernel runs: what `kerf bench --profile` reports
/// per layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// Cranelift scalar code only (a target without SIMD, or `baseline`
    /// kernels that have no vector form).
    Scalar,
    /// Cranelift's 128-bit vectors.
    Vec128,
    /// Calls assembled AArch64 NEON micro-kernels ([`crate::ukernel::neon`]:
    /// `dotprod`'s `sdot` tiles and the pattern tiles).
    Neon,
    /// Calls assembled 256-bit AVX2 micro-kernels ([`crate::ukernel::avx2`]).
    Avx2,
    /// Calls assembled AVX-512 (EVEX) micro-kernels ([`crate::ukernel::avx512`]).
    Avx512,
}

impl Family {
    /// The family of a kernel with parameters `params` built for `caps`
    /// (the widest of the micro-kernels it calls, declaration order).
    pub fn of(params: &[Param], caps: &crate::isa::Caps) -> Family {
        let called = params.iter().filter_map(|p| match p {
            Param::Code(_, f) => Some(*f),
            _ => None,
        });
        if let Some(f) = called.max() {
            f
        } else if caps.simd {
            Family::Vec128
        } else {
            Family::Scalar
        }
    }
    /// Short name: `scalar`, `cl-128`, `neon`, `avx2`, `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Scalar => "scalar",
            Family::Vec128 => "cl-128",
            Family::Neon => "neon",
            Family::Avx2 => "avx2",
            Family::Avx512 => "avx512",
        }
    }
}

/// A kernel's declared split, see [`Kernel::parallel_range`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Iterations of the split loop.
    pub total: usize,
    /// Chunk boundaries are multiples of this (≥ 1).
    pub align: usize,
    /// Most tasks the kernel may be split into (≥ 2).
    pub max_tasks: usize,
}

/// A kernel under construction.
pub struct Kernel<'a, 'g> {
    /// Builder of the kernel function, positioned in the body (after `entry`).
    pub b: FunctionBuilder<'a>,
    /// What the generated code may use on the target.
    pub caps: Caps,
    /// The graph the node belongs to (value types and constants).
    pub g: &'g Graph,
    /// The node being lowered.
    pub node: &'g Node,
    /// The parameters requested so far, one pointer argument each, in order.
    pub params: Vec<Param>,
    /// The entry block: it only receives the parameters and jumps to the body.
    pub entry: Block,
    /// Set by [`Kernel::parallel_range`] when the kernel is split.
    pub split: Option<Split>,
    /// Whether [`Kernel::parallel_range`] was called (split or not).
    pub ranged: bool,
}

/// Result of a lowering: `Err` carries the reason a node is unsupported.
pub type LResult<T = ()> = Result<T, String>;

/// Cranelift type of pointers and indices in kernels (every target is 64-bit).
pub const PTR: Type = types::I64;

impl<'a, 'g> Kernel<'a, 'g> {
    fn param(&mut self, p: Param) -> Value {
        let unique = matches!(p, Param::Scratch(_) | Param::TaskScratch(_));
        if let Some(k) = self.params.iter().position(|q| *q == p && !unique) {
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
    /// Address of the micro-kernel of `family` whose machine code is
    /// `bytes` ([`crate::ukernel`]; called with `call_indirect`).
    pub fn code(&mut self, family: Family, bytes: Vec<u8>) -> Value {
        self.param(Param::Code(bytes, family))
    }
    /// The signature of a micro-kernel call ([`crate::ukernel`]'s leaf
    /// ABI): `args` pointer arguments, no result, the target's calling
    /// convention.
    pub fn ukernel_sig(&mut self, args: usize) -> cranelift_codegen::ir::SigRef {
        let mut sig = cranelift_codegen::ir::Signature::new(self.b.func.signature.call_conv);
        sig.params.extend(std::iter::repeat_n(cranelift_codegen::ir::AbiParam::new(PTR), args));
        self.b.import_signature(sig)
    }
    /// Pointer to f32 values packed as a blob.
    pub fn blob_f32(&mut self, v: &[f32]) -> Value {
        self.blob(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
    /// Pointer to the kernel's fault word ([`Param::Fault`]): storing a
    /// nonzero `kerf_runtime::status` code there ends the run with it. Tasks
    /// of a split kernel may all store to it (the same code).
    pub fn fault(&mut self) -> Value {
        self.param(Param::Fault)
    }
    /// Pointer to scratch memory (shared by all tasks of a parallel kernel).
    pub fn scratch(&mut self, bytes: usize) -> Value {
        self.param(Param::Scratch(bytes))
    }
    /// Pointer to scratch memory private to the running task (the same as
    /// [`Kernel::scratch`] when the kernel is not split).
    pub fn task_scratch(&mut self, bytes: usize) -> Value {
        self.param(Param::TaskScratch(bytes))
    }

    /// Declares that the kernel's work is `total` independent iterations of
    /// an outer loop and returns this task's `(lo, hi)` (I64 values); see
    /// the module docs for the contract. `align` ≥ 1: chunk boundaries fall
    /// on multiples of it. `cost_per_iter`: FLOP-like cost of one iteration.
    /// Small kernels are not split: `(0, total)` as constants.
    pub fn parallel_range(&mut self, total: usize, align: usize, cost_per_iter: u64) -> LResult<(Value, Value)> {
        self.parallel_range_capped(total, align, cost_per_iter, MAX_TASKS)
    }

    /// [`Kernel::parallel_range`] split into at most `cap` tasks (at most
    /// [`MAX_TASKS`]): for kernels with a large [`Kernel::task_scratch`],
    /// which the arena holds once per possible task.
    pub fn parallel_range_capped(
        &mut self,
        total: usize,
        align: usize,
        cost_per_iter: u64,
        cap: usize,
    ) -> LResult<(Value, Value)> {
        if self.ranged {
            return Err("internal: parallel_range called twice for one kernel".into());
        }
        self.ranged = true;
        let align = align.max(1);
        let units = total.div_ceil(align);
        let cost = (total as u64).saturating_mul(cost_per_iter);
        let max_tasks = units.min(MAX_TASKS).min(cap).min(usize::try_from(cost / MIN_TASK_COST).unwrap_or(usize::MAX));
        if max_tasks < 2 {
            let lo = self.b.ins().iconst(PTR, 0);
            let hi = self.b.ins().iconst(PTR, total as i64);
            return Ok((lo, hi));
        }
        self.split = Some(Split { total, align, max_tasks });
        let lo = self.param(Param::RangeLo);
        let hi = self.param(Param::RangeHi);
        Ok((lo, hi))
    }

    /// [`Kernel::nest`] over `dims` with the outermost dimension split
    /// across tasks ([`Kernel::parallel_range`] with align 1);
    /// `cost_per_point` is the cost of one body call. Unsplit kernels get
    /// exactly the code of [`Kernel::nest`].
    pub fn parallel_nest(
        &mut self,
        dims: &[usize],
        cost_per_point: u64,
        body: &mut dyn FnMut(&mut Self, &[Value]),
    ) -> LResult {
        let Some((&d0, rest)) = dims.split_first() else {
            self.nest(dims, body);
            return Ok(());
        };
        let inner: usize = rest.iter().product();
        let (lo, hi) = self.parallel_range(d0, 1, cost_per_point.saturating_mul(inner as u64))?;
        if self.split.is_none() {
            self.nest(dims, body);
            return Ok(());
        }
        self.for_dyn(lo, hi, 1, |k, i| {
            k.nest(rest, &mut |k, idx| {
                let mut all = Vec::with_capacity(idx.len() + 1);
                all.push(i);
                all.extend_from_slice(idx);
                body(k, &all);
            });
        });
        Ok(())
    }

    /// Shape of input `i` of the node.
    pub fn in_shape(&self, i: usize) -> &'g [usize] {
        &self.g.ty(self.node.inputs[i]).shape
    }
    /// Shape of output `i` of the node.
    pub fn out_shape(&self, i: usize) -> &'g [usize] {
        &self.g.ty(self.node.outputs[i]).shape
    }
    /// Element type of input `i` of the node.
    pub fn in_dtype(&self, i: usize) -> DType {
        self.g.ty(self.node.inputs[i]).dtype
    }
    /// Element type of output `i` of the node.
    pub fn out_dtype(&self, i: usize) -> DType {
        self.g.ty(self.node.outputs[i]).dtype
    }
    /// Input `i` as f32 values when it is a constant.
    pub fn const_f32(&self, i: usize) -> Option<Vec<f32>> {
        self.node.inputs.get(i).and_then(|&v| self.g.const_of(v)).map(|t| t.to_f32_vec())
    }
    /// Whether input `i` exists and is a constant.
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
        Op::Unary(_) | Op::Binary(_) | Op::Where => elementwise::lower(k),
        Op::Chain(_) => elementwise::lower(k),
        Op::Cast(_) | Op::CastF8 { .. } => cast::lower(k),
        Op::Requantize { .. } => requant::lower(k),
        Op::Quantize { .. } => quantize::lower(k),
        Op::BitCast(_) => elementwise::lower(k),
        Op::Identity | Op::Dropout | Op::Reshape { .. } => movement::copy(k),
        Op::Conv(_) | Op::ConvFused(..) => conv::conv(k),
        Op::QConv(_) => qconv::qconv(k),
        Op::ConvTranspose(_) | Op::ConvTransposeFused(..) => conv_transpose::conv_transpose(k),
        Op::Gemm(_) | Op::MatMul(_) | Op::GemmFused(..) | Op::MatMulFused(..) => matmul::lower(k),
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
        Op::Lstm(_) | Op::Gru(_) | Op::Rnn(_) => rnn::lower(k),
    }
}

/// Cranelift scalar type of a dtype (bool is a byte).
pub fn cl_type(d: DType) -> Option<Type> {
    Some(match d {
        DType::F32 => types::F32,
        DType::F64 => types::F64,
        DType::I8 | DType::U8 | DType::Bool => types::I8,
        DType::I16 | DType::U16 => types::I16,
        DType::I32 | DType::U32 => types::I32,
        DType::I64 | DType::U64 => types::I64,
        // stored as 16-bit patterns; float ops convert through f32
        DType::F16 | DType::BF16 => types::I16,
        // narrow storage types: only Cast (lower/cast.rs) and data movement
        _ => return None,
    })
}
