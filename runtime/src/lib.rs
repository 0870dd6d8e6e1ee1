//! What generated code and its host share: the C ABI types (`#[repr(C)]`
//! mirrors of `kerf_runtime` and the model descriptor), the ABI version, the
//! dtype and status codes, and a safe wrapper that checks counts, sizes and
//! alignment before calling a compiled model's entry point.
//!
//! This crate depends on no compiler crate: an application that links a
//! kerf-generated object (or JIT-compiles one) only needs this.
//!
//! The ABI is described in `docs/abi.md`; the C header `include/kerf_runtime.h`
//! declares the same types for C hosts.
#![warn(missing_docs)]
#![warn(unreachable_pub)]
#![forbid(unsafe_op_in_unsafe_fn)]

use std::ffi::{c_char, c_void, CStr};
use std::fmt;

mod avx;
mod pool;

pub use avx::clean_upper_state;
pub use pool::ThreadPool;

/// Version of the generated-code ABI. Bumped on any incompatible change of
/// the entry-point signature, `kerf_runtime` or the descriptor layout.
pub const ABI_VERSION: u32 = 1;

/// Arena alignment every generated model requires (bytes).
pub const ARENA_ALIGN: usize = 64;

/// Status codes returned by `<name>_run`.
pub mod status {
    /// Success.
    pub const OK: i32 = 0;
    /// A required pointer (inputs, outputs, one of their entries, or the
    /// arena when the model needs one) was NULL.
    pub const NULL_POINTER: i32 = 1;
    /// The arena pointer is not aligned to `arena_align` (64) bytes.
    pub const MISALIGNED_ARENA: i32 = 2;
    /// `rt` is not NULL and its `abi_version` differs from [`super::ABI_VERSION`].
    pub const ABI_MISMATCH: i32 = 3;
    /// An index read at run time was outside its axis (a Gather's indices
    /// must lie in `[-n, n)` for an axis of `n`; ONNX leaves other values
    /// undefined; the importer's Gathers for RoiAlign's `batch_indices` and
    /// RotaryEmbedding's `position_ids` too): the run stopped after that
    /// node, and the outputs hold nothing meaningful.
    pub const INDEX_OUT_OF_RANGE: i32 = 4;
}

/// ONNX `TensorProto.DataType` codes used in descriptors.
pub mod dtype {
    /// `float`: IEEE 754 binary32, 4 bytes.
    pub const FLOAT: i32 = 1;
    /// `uint8`, 1 byte.
    pub const UINT8: i32 = 2;
    /// `int8` (two's complement), 1 byte.
    pub const INT8: i32 = 3;
    /// `uint16`, 2 bytes.
    pub const UINT16: i32 = 4;
    /// `int16` (two's complement), 2 bytes.
    pub const INT16: i32 = 5;
    /// `int32` (two's complement), 4 bytes.
    pub const INT32: i32 = 6;
    /// `int64` (two's complement), 8 bytes.
    pub const INT64: i32 = 7;
    /// `bool`, 1 byte holding 0 or 1.
    pub const BOOL: i32 = 9;
    /// `float16`: IEEE 754 binary16, 2 bytes.
    pub const FLOAT16: i32 = 10;
    /// `double`: IEEE 754 binary64, 8 bytes.
    pub const DOUBLE: i32 = 11;
    /// `uint32`, 4 bytes.
    pub const UINT32: i32 = 12;
    /// `uint64`, 8 bytes.
    pub const UINT64: i32 = 13;
    /// `bfloat16` (the upper half of an f32), 2 bytes.
    pub const BFLOAT16: i32 = 16;
    // Narrow types: one byte per element in kerf buffers, never packed
    // (float8: the code; float4: the code in the low nibble; int4/int2:
    // sign-extended; uint4/uint2: zero-extended). See docs/abi.md.
    /// `float8e4m3fn`: the 8-bit code, 1 byte.
    pub const FLOAT8E4M3FN: i32 = 17;
    /// `float8e4m3fnuz`: the 8-bit code, 1 byte.
    pub const FLOAT8E4M3FNUZ: i32 = 18;
    /// `float8e5m2`: the 8-bit code, 1 byte.
    pub const FLOAT8E5M2: i32 = 19;
    /// `float8e5m2fnuz`: the 8-bit code, 1 byte.
    pub const FLOAT8E5M2FNUZ: i32 = 20;
    /// `uint4`: one value per byte, zero-extended (0..15).
    pub const UINT4: i32 = 21;
    /// `int4`: one value per byte, sign-extended (-8..7).
    pub const INT4: i32 = 22;
    /// `float4e2m1`: the 4-bit code in bits 0-3 of a byte, bits 4-7 zero.
    pub const FLOAT4E2M1: i32 = 23;
    /// `float8e8m0`: the 8-bit code, 1 byte.
    pub const FLOAT8E8M0: i32 = 24;
    /// `uint2`: one value per byte, zero-extended (0..3).
    pub const UINT2: i32 = 25;
    /// `int2`: one value per byte, sign-extended (-2..1).
    pub const INT2: i32 = 26;

    /// Element size in bytes of a dtype code in kerf buffers, or `None` if unknown.
    pub fn size(code: i32) -> Option<usize> {
        Some(match code {
            UINT8 | INT8 | BOOL => 1,
            FLOAT8E4M3FN..=INT2 => 1,
            UINT16 | INT16 | FLOAT16 | BFLOAT16 => 2,
            FLOAT | INT32 | UINT32 => 4,
            INT64 | DOUBLE | UINT64 => 8,
            _ => return None,
        })
    }
}

/// A task callback for [`KerfRuntime::parallel_for`].
pub type TaskFn = unsafe extern "C" fn(arg: *mut c_void, i: u32);

/// `parallel_for(ctx, n_tasks, task, arg)` must call `task(arg, i)` once for
/// every `i < n_tasks` (in any order, on any threads) and return when all
/// calls have returned.
pub type ParallelForFn = unsafe extern "C" fn(ctx: *mut c_void, n_tasks: u32, task: TaskFn, arg: *mut c_void);

/// Mirror of the C `kerf_runtime` struct. Generated code splits its large
/// kernels into tasks through `parallel_for` when it is not NULL and
/// `num_threads > 1` (see `docs/abi.md`); [`ThreadPool::runtime`] makes one.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct KerfRuntime {
    /// Must equal [`ABI_VERSION`], or `<name>_run` returns [`status::ABI_MISMATCH`].
    pub abi_version: u32,
    /// Threads available to `parallel_for`, the calling thread included; a split kernel uses
    /// at most this many tasks, and a value `<= 1` runs everything on the calling thread.
    pub num_threads: u32,
    /// The threading hook (contract on [`ParallelForFn`]); `None` (NULL) runs everything on the
    /// calling thread.
    pub parallel_for: Option<ParallelForFn>,
    /// Opaque host pointer passed unchanged as the first argument of every `parallel_for` call.
    pub ctx: *mut c_void,
}

unsafe extern "C" fn serial_parallel_for(_ctx: *mut c_void, n_tasks: u32, task: TaskFn, arg: *mut c_void) {
    for i in 0..n_tasks {
        // SAFETY: the caller (generated code) passes a task and argument that
        // are valid to call for every index below n_tasks.
        unsafe { task(arg, i) };
    }
}

impl KerfRuntime {
    /// A single-threaded runtime whose `parallel_for` runs tasks in order.
    pub fn serial() -> KerfRuntime {
        KerfRuntime {
            abi_version: ABI_VERSION,
            num_threads: 1,
            parallel_for: Some(serial_parallel_for),
            ctx: std::ptr::null_mut(),
        }
    }
}

/// Mirror of the C `kerf_tensor_desc`.
#[repr(C)]
#[derive(Debug)]
pub struct TensorDescRaw {
    /// The tensor's name, a static NUL-terminated string.
    pub name: *const c_char,
    /// ONNX `TensorProto.DataType` code (see [`dtype`]).
    pub dtype: i32,
    /// Number of dimensions (entries of `dims`).
    pub rank: u32,
    /// The `rank` dimensions, outermost first (row-major); may be NULL when `rank` is 0.
    pub dims: *const i64,
    /// Exact buffer size in bytes: element count times element size.
    pub bytes: u64,
}

/// Mirror of the C `kerf_model_desc`.
#[repr(C)]
#[derive(Debug)]
pub struct ModelDescRaw {
    /// The ABI version the model was compiled for ([`ABI_VERSION`]).
    pub abi_version: u32,
    /// Number of entries in `inputs`.
    pub num_inputs: u32,
    /// Number of entries in `outputs`.
    pub num_outputs: u32,
    /// Required arena alignment in bytes ([`ARENA_ALIGN`], 64).
    pub arena_align: u32,
    /// Arena size in bytes the model needs (0: the arena may be NULL).
    pub arena_bytes: u64,
    /// `num_inputs` input descriptors, in entry-point argument order.
    pub inputs: *const TensorDescRaw,
    /// `num_outputs` output descriptors, in entry-point argument order.
    pub outputs: *const TensorDescRaw,
    /// The model name given at compile time, a static NUL-terminated string.
    pub name: *const c_char,
}

/// The entry point `<name>_run`.
pub type RunFn = unsafe extern "C" fn(
    inputs: *const *const c_void,
    outputs: *const *mut c_void,
    arena: *mut c_void,
    rt: *const KerfRuntime,
) -> i32;

/// The descriptor function `<name>_describe`.
pub type DescribeFn = unsafe extern "C" fn() -> *const ModelDescRaw;

/// An owned copy of one input/output description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name (empty if the descriptor's name was NULL).
    pub name: String,
    /// ONNX dtype code (see [`dtype`]).
    pub dtype: i32,
    /// The dimensions, outermost first (row-major).
    pub dims: Vec<usize>,
    /// Exact buffer size in bytes.
    pub bytes: usize,
}

/// An owned copy of a model descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// The model name given at compile time.
    pub name: String,
    /// The descriptor's ABI version (always [`ABI_VERSION`] once read).
    pub abi_version: u32,
    /// Arena size in bytes the model needs.
    pub arena_bytes: usize,
    /// Required arena alignment in bytes.
    pub arena_align: usize,
    /// The inputs, in entry-point argument order.
    pub inputs: Vec<TensorInfo>,
    /// The outputs, in entry-point argument order.
    pub outputs: Vec<TensorInfo>,
}

/// Why a descriptor could not be read or a checked call was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeError {
    /// The descriptor is malformed or of another ABI version.
    BadDescriptor(String),
    /// Wrong number of input or output buffers.
    Count {
        /// `"input"` or `"output"`.
        what: &'static str,
        /// The count the descriptor states.
        expected: usize,
        /// The number of buffers passed.
        actual: usize,
    },
    /// A buffer has the wrong byte size.
    Size {
        /// `"input"` or `"output"`.
        what: &'static str,
        /// Position of the buffer among the inputs or outputs.
        index: usize,
        /// The tensor's name from the descriptor.
        name: String,
        /// The size in bytes the descriptor states.
        expected: usize,
        /// The size in bytes of the buffer passed.
        actual: usize,
    },
    /// The arena is too small, or an input or output buffer is not aligned to its element size.
    Arena(String),
    /// Memory for a run (the arena, an output buffer) cannot be allocated.
    Memory {
        /// What it was for: `"the arena"`, `"output 0 ('y')"`.
        what: String,
        /// The bytes asked for.
        bytes: usize,
    },
    /// The generated code returned a nonzero status.
    Status(i32),
    /// [`Model::run_guarded`]: the run wrote outside an output buffer.
    Stray {
        /// Position of the output.
        index: usize,
        /// The output's name from the descriptor.
        name: String,
        /// Where: `"before its start"` (the bytes to the farthest one
        /// written) or `"past its end"` (the bytes to the first one).
        side: &'static str,
        /// How far from the buffer.
        bytes: usize,
    },
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::BadDescriptor(m) => write!(f, "bad model descriptor: {m}"),
            RuntimeError::Count { what, expected, actual } => {
                write!(f, "expected {expected} {what} buffers, got {actual}")
            }
            RuntimeError::Size { what, index, name, expected, actual } => {
                write!(f, "{what} {index} ('{name}') must be {expected} bytes, got {actual}")
            }
            RuntimeError::Arena(m) => write!(f, "arena: {m}"),
            RuntimeError::Memory { what, bytes } => write!(
                f,
                "cannot allocate {bytes} bytes ({:.1} GB) for {what}: more than this process can have",
                *bytes as f64 / 1e9
            ),
            RuntimeError::Status(status::INDEX_OUT_OF_RANGE) => write!(
                f,
                "an index read at run time was outside its axis (a Gather's indices must lie in [-n, n) for an axis of n); the run stopped there"
            ),
            RuntimeError::Status(s) => write!(f, "generated code returned status {s}"),
            RuntimeError::Stray { index, name, side, bytes } => {
                write!(f, "output {index} ('{name}'): a store {bytes} bytes {side}")
            }
        }
    }
}

impl std::error::Error for RuntimeError {}

/// Reads a NUL-terminated string from the descriptor.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string valid for `'static`.
unsafe fn read_str(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: guaranteed by the caller.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// # Safety
/// `t` must point to `n` valid descriptors whose pointers are valid.
unsafe fn read_tensors(t: *const TensorDescRaw, n: u32) -> Result<Vec<TensorInfo>, RuntimeError> {
    if n > 0 && t.is_null() {
        return Err(RuntimeError::BadDescriptor("NULL tensor list".into()));
    }
    let mut out = Vec::new();
    for i in 0..n as usize {
        // SAFETY: the caller guarantees `n` readable entries.
        let d = unsafe { &*t.add(i) };
        if d.rank > 0 && d.dims.is_null() {
            return Err(RuntimeError::BadDescriptor(format!("tensor {i} has NULL dims")));
        }
        let dims = (0..d.rank as usize)
            // SAFETY: `rank` entries are readable per the descriptor contract.
            .map(|k| unsafe { *d.dims.add(k) })
            .map(|x| usize::try_from(x).map_err(|_| RuntimeError::BadDescriptor(format!("negative dim {x}"))))
            .collect::<Result<Vec<_>, _>>()?;
        // SAFETY: names are static NUL-terminated strings.
        let name = unsafe { read_str(d.name) };
        let bytes = usize::try_from(d.bytes).map_err(|_| RuntimeError::BadDescriptor("size overflow".into()))?;
        out.push(TensorInfo { name, dtype: d.dtype, dims, bytes });
    }
    Ok(out)
}

impl ModelInfo {
    /// Copies a raw descriptor.
    ///
    /// # Safety
    /// `d` must point to a descriptor produced by kerf (or laid out the same
    /// way) whose pointers stay valid while this call runs.
    pub unsafe fn from_raw(d: *const ModelDescRaw) -> Result<ModelInfo, RuntimeError> {
        if d.is_null() {
            return Err(RuntimeError::BadDescriptor("NULL descriptor".into()));
        }
        // SAFETY: non-NULL and valid per the caller's guarantee.
        let d = unsafe { &*d };
        if d.abi_version != ABI_VERSION {
            return Err(RuntimeError::BadDescriptor(format!(
                "ABI version {} (this runtime speaks {ABI_VERSION})",
                d.abi_version
            )));
        }
        Ok(ModelInfo {
            // SAFETY: see above.
            name: unsafe { read_str(d.name) },
            abi_version: d.abi_version,
            arena_bytes: usize::try_from(d.arena_bytes).map_err(|_| RuntimeError::BadDescriptor("arena".into()))?,
            arena_align: d.arena_align as usize,
            // SAFETY: counts and pointers come from the same descriptor.
            inputs: unsafe { read_tensors(d.inputs, d.num_inputs) }?,
            // SAFETY: as above.
            outputs: unsafe { read_tensors(d.outputs, d.num_outputs) }?,
        })
    }
}

/// `include/kerf_runtime.h`: the C declarations hosts share with generated code.
pub const C_HEADER: &str = include_str!("../include/kerf_runtime.h");

/// The guarded block of ABI macros and typedefs (`#ifndef KERF_RUNTIME_TYPES`
/// ... `#endif`) from [`C_HEADER`]. Every generated model header embeds this
/// same text, so the runtime header and any number of model headers can be
/// included together, and the ABI is spelled out in exactly one file.
pub fn c_types_block() -> &'static str {
    const END: &str = "#endif /* KERF_RUNTIME_TYPES */\n";
    let start = C_HEADER.find("#ifndef KERF_RUNTIME_TYPES").unwrap_or(0);
    let end = C_HEADER[start..].find(END).map_or(C_HEADER.len(), |e| start + e + END.len());
    &C_HEADER[start..end]
}

/// The byte [`Model::run_guarded`] starts every output buffer as and its
/// guards hold.
pub const GUARD: u8 = 0xA5;

/// Bytes before and after each output of [`Model::run_guarded`] that no
/// kernel may write (a 64-byte vector store past either end reaches at most
/// this far).
pub const GUARD_BYTES: usize = 64;

/// A 64-byte aligned scratch buffer for a model's activations.
pub struct Arena {
    buf: Vec<u8>,
    offset: usize,
    len: usize,
}

impl fmt::Debug for Arena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Arena({} bytes)", self.len)
    }
}

impl Arena {
    /// An owned, zeroed arena of `bytes` bytes aligned to [`ARENA_ALIGN`];
    /// [`RuntimeError::Memory`], not an abort, when the memory cannot be had.
    pub fn new(bytes: usize) -> Result<Arena, RuntimeError> {
        let memory = |_| RuntimeError::Memory { what: "the arena".into(), bytes };
        let buf = zeroed(bytes.saturating_add(ARENA_ALIGN), String::new).map_err(memory)?;
        let addr = buf.as_ptr() as usize;
        let offset = addr.next_multiple_of(ARENA_ALIGN) - addr;
        Ok(Arena { buf, offset, len: bytes })
    }

    /// An arena sized for `info`.
    pub fn for_model(info: &ModelInfo) -> Result<Arena, RuntimeError> {
        Arena::new(info.arena_bytes)
    }

    /// Usable size in bytes (as requested, excluding alignment padding).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the usable size is 0.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fills the arena with `byte`. The generated code never reads arena
    /// bytes it did not write in the same run, so a run's outputs do not
    /// depend on it; tests poison the arena to check exactly that (as the
    /// C harness does).
    pub fn poison(&mut self, byte: u8) {
        let (offset, len) = (self.offset, self.len);
        self.buf[offset..offset + len].fill(byte);
    }

    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.buf[self.offset..].as_mut_ptr()
    }
}

/// A compiled model behind its raw entry point, with checked calls.
#[derive(Debug)]
pub struct Model {
    run: RunFn,
    info: ModelInfo,
}

/// Whether a byte slice is aligned for elements of `size` bytes.
fn aligned(p: *const u8, size: usize) -> bool {
    size <= 1 || (p as usize).is_multiple_of(size)
}

/// `len` zero bytes, or [`RuntimeError::Memory`] for `what` where the
/// allocator cannot give them (where `vec![0; len]` would abort). Like
/// `vec!`, through the allocator's zeroed allocation: the pages are not
/// written here.
pub fn zeroed(len: usize, what: impl FnOnce() -> String) -> Result<Vec<u8>, RuntimeError> {
    if len == 0 {
        return Ok(Vec::new());
    }
    // (no layout for more than isize::MAX bytes, and null where the allocator fails)
    let ptr = std::alloc::Layout::array::<u8>(len).ok().map(|layout| {
        // SAFETY: `layout` has a nonzero size.
        unsafe { std::alloc::alloc_zeroed(layout) }
    });
    let Some(ptr) = ptr.filter(|p| !p.is_null()) else {
        return Err(RuntimeError::Memory { what: what(), bytes: len });
    };
    // SAFETY: `ptr` comes from the global allocator with `u8`'s layout for
    // `len` bytes, all initialised (zero): a Vec of length and capacity `len`.
    Ok(unsafe { Vec::from_raw_parts(ptr, len, len) })
}

impl Model {
    /// Wraps a raw entry point.
    ///
    /// # Safety
    /// `run` must be the `<name>_run` function that matches `desc` (the
    /// `<name>_describe()` result of the same model), and the code behind
    /// both must stay valid as long as the returned `Model` lives.
    pub unsafe fn from_raw(run: RunFn, desc: *const ModelDescRaw) -> Result<Model, RuntimeError> {
        // SAFETY: forwarded from the caller's guarantee.
        let info = unsafe { ModelInfo::from_raw(desc) }?;
        Ok(Model { run, info })
    }

    /// The model's descriptor, as read when it was wrapped.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// A fresh arena of the right size ([`RuntimeError::Memory`] where it
    /// cannot be allocated).
    pub fn new_arena(&self) -> Result<Arena, RuntimeError> {
        Arena::for_model(&self.info)
    }

    /// A zeroed buffer for each output ([`RuntimeError::Memory`] naming
    /// the output where one cannot be allocated).
    pub fn output_buffers(&self) -> Result<Vec<Vec<u8>>, RuntimeError> {
        let outs = self.info.outputs.iter().enumerate();
        outs.map(|(i, t)| zeroed(t.bytes, || format!("output {i} ('{}')", t.name))).collect()
    }

    /// Runs the model single-threaded. Inputs and outputs are raw
    /// little-endian bytes of each tensor; counts, sizes and element
    /// alignment are checked first.
    pub fn run(&self, inputs: &[&[u8]], outputs: &mut [&mut [u8]], arena: &mut Arena) -> Result<(), RuntimeError> {
        // SAFETY: no runtime: the generated code calls nothing of the host.
        unsafe { self.run_with(inputs, outputs, arena, None) }
    }

    /// Like [`Model::run`], with tasks of split kernels run on `pool`.
    pub fn run_with_pool(
        &self,
        inputs: &[&[u8]],
        outputs: &mut [&mut [u8]],
        arena: &mut Arena,
        pool: &ThreadPool,
    ) -> Result<(), RuntimeError> {
        let rt = pool.runtime();
        // SAFETY: the pool's runtime is valid while `pool` is borrowed.
        unsafe { self.run_with(inputs, outputs, arena, Some(&rt)) }
    }

    /// Like [`Model::run`] with an explicit runtime (threading hook).
    ///
    /// # Safety
    /// When `rt` is given with a non-NULL `parallel_for`, the generated code
    /// calls `parallel_for(ctx, n, task, arg)`: it must be a function that
    /// honours the contract in `docs/abi.md` (*Threading*) for that `ctx`, as
    /// [`KerfRuntime::serial`] and a live [`ThreadPool::runtime`] do.
    pub unsafe fn run_with(
        &self,
        inputs: &[&[u8]],
        outputs: &mut [&mut [u8]],
        arena: &mut Arena,
        rt: Option<&KerfRuntime>,
    ) -> Result<(), RuntimeError> {
        let info = &self.info;
        if inputs.len() != info.inputs.len() {
            return Err(RuntimeError::Count { what: "input", expected: info.inputs.len(), actual: inputs.len() });
        }
        if outputs.len() != info.outputs.len() {
            return Err(RuntimeError::Count { what: "output", expected: info.outputs.len(), actual: outputs.len() });
        }
        for (i, (buf, t)) in inputs.iter().zip(&info.inputs).enumerate() {
            if buf.len() != t.bytes {
                return Err(RuntimeError::Size {
                    what: "input",
                    index: i,
                    name: t.name.clone(),
                    expected: t.bytes,
                    actual: buf.len(),
                });
            }
            // empty buffers are passed as an aligned dangling pointer below
            if !buf.is_empty() && !aligned(buf.as_ptr(), dtype::size(t.dtype).unwrap_or(1)) {
                return Err(RuntimeError::Arena(format!("input {i} is not aligned to its element size")));
            }
        }
        for (i, (buf, t)) in outputs.iter().zip(&info.outputs).enumerate() {
            if buf.len() != t.bytes {
                return Err(RuntimeError::Size {
                    what: "output",
                    index: i,
                    name: t.name.clone(),
                    expected: t.bytes,
                    actual: buf.len(),
                });
            }
            // empty buffers are passed as an aligned dangling pointer below
            if !buf.is_empty() && !aligned(buf.as_ptr(), dtype::size(t.dtype).unwrap_or(1)) {
                return Err(RuntimeError::Arena(format!("output {i} is not aligned to its element size")));
            }
        }
        if arena.len() < info.arena_bytes {
            return Err(RuntimeError::Arena(format!(
                "model needs {} bytes, arena has {}",
                info.arena_bytes,
                arena.len()
            )));
        }
        // Generated code reads input pointers; distinct non-NULL pointers
        // for empty tensors keep the NULL check meaningful.
        let dangling = ARENA_ALIGN as *const u8;
        let in_ptrs: Vec<*const c_void> =
            inputs.iter().map(|b| if b.is_empty() { dangling } else { b.as_ptr() } as *const c_void).collect();
        let out_ptrs: Vec<*mut c_void> = outputs
            .iter_mut()
            .map(|b| if b.is_empty() { dangling as *mut u8 } else { b.as_mut_ptr() } as *mut c_void)
            .collect();
        let arena_ptr = arena.as_mut_ptr() as *mut c_void;
        let rt_ptr = rt.map_or(std::ptr::null(), |r| r as *const KerfRuntime);
        // the host may have left the AVX upper state dirty (see `avx`)
        avx::clean_upper_state();
        // SAFETY: `from_raw`'s contract makes `run` the entry point matching
        // `info`; every buffer was checked to have the size the descriptor
        // states and element alignment, the arena is 64-byte aligned and
        // large enough, and all buffers outlive the call.
        let status = unsafe { (self.run)(in_ptrs.as_ptr(), out_ptrs.as_ptr(), arena_ptr, rt_ptr) };
        if status != status::OK {
            return Err(RuntimeError::Status(status));
        }
        Ok(())
    }

    /// The strictest run a test can make, for checking generated code:
    /// [`Model::run_with`] on 8-byte aligned copies of `inputs`, with an
    /// arena poisoned with 0xFF bytes (NaNs: a kernel reading scratch it
    /// did not write shows in the outputs), and every output buffer
    /// starting as [`GUARD`] bytes (an element no kernel writes shows) with
    /// [`GUARD_BYTES`] more on each side that must stay ([`RuntimeError::Stray`]
    /// otherwise). Returns each output's bytes.
    ///
    /// # Safety
    /// As for [`Model::run_with`].
    pub unsafe fn run_guarded(&self, inputs: &[&[u8]], rt: Option<&KerfRuntime>) -> Result<Vec<Vec<u8>>, RuntimeError> {
        let words = |bytes: usize, fill: u8, what: String| {
            let mut v = Vec::new();
            v.try_reserve_exact(bytes.div_ceil(8)).map_err(|_| RuntimeError::Memory { what, bytes })?;
            v.resize(bytes.div_ceil(8), u64::from_ne_bytes([fill; 8]));
            Ok::<_, RuntimeError>(v)
        };
        let mut in_store: Vec<Vec<u64>> = inputs
            .iter()
            .enumerate()
            .map(|(i, b)| words(b.len(), 0, format!("a copy of input {i}")))
            .collect::<Result<_, _>>()?;
        for (s, b) in in_store.iter_mut().zip(inputs) {
            bytes_of_mut(s)[..b.len()].copy_from_slice(b);
        }
        let in_views: Vec<&[u8]> = in_store.iter().zip(inputs).map(|(s, b)| &bytes_of(s)[..b.len()]).collect();
        let head = GUARD_BYTES;
        let lens: Vec<usize> = self.info.outputs.iter().map(|t| t.bytes).collect();
        let outs = self.info.outputs.iter().enumerate();
        let mut out_store: Vec<Vec<u64>> = outs
            .map(|(i, t)| words(head + t.bytes + GUARD_BYTES, GUARD, format!("output {i} ('{}')", t.name)))
            .collect::<Result<_, _>>()?;
        {
            let mut out_views: Vec<&mut [u8]> =
                out_store.iter_mut().zip(&lens).map(|(s, &n)| &mut bytes_of_mut(s)[head..head + n]).collect();
            let mut arena = self.new_arena()?;
            arena.poison(0xFF);
            // SAFETY: the caller's guarantee for `rt`.
            unsafe { self.run_with(&in_views, &mut out_views, &mut arena, rt) }?;
        }
        let stray = |index: usize, side, bytes| {
            let name = self.info.outputs[index].name.clone();
            Err(RuntimeError::Stray { index, name, side, bytes })
        };
        let mut outs = Vec::with_capacity(lens.len());
        for (i, (s, &n)) in out_store.iter().zip(&lens).enumerate() {
            let b = bytes_of(s);
            if let Some(at) = b[..head].iter().position(|&x| x != GUARD) {
                return stray(i, "before its start", head - at);
            }
            if let Some(at) = b[head + n..].iter().position(|&x| x != GUARD) {
                return stray(i, "past its end", at);
            }
            outs.push(b[head..head + n].to_vec());
        }
        Ok(outs)
    }

    /// Runs a model whose inputs and outputs are all f32.
    pub fn run_f32(&self, inputs: &[&[f32]], arena: &mut Arena) -> Result<Vec<Vec<f32>>, RuntimeError> {
        let in_views: Vec<&[u8]> = inputs.iter().map(|v| bytes_of(v)).collect();
        let mut out_store: Vec<Vec<f32>> = self.info.outputs.iter().map(|t| vec![0f32; t.bytes.div_ceil(4)]).collect();
        {
            let mut out_views: Vec<&mut [u8]> =
                out_store.iter_mut().zip(&self.info.outputs).map(|(v, t)| &mut bytes_of_mut(v)[..t.bytes]).collect();
            self.run(&in_views, &mut out_views, arena)?;
        }
        Ok(out_store)
    }
}

/// Decodes little-endian f32 bytes (trailing partial element ignored).
pub fn f32_from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A Rust element type a model buffer can be viewed as: plain old data
/// whose every bit pattern is a valid value, with its ONNX dtype code. The
/// typed wrappers kerf generates for `build.rs` users
/// (`kerf_targets::rust_module`) pass arrays of these.
///
/// # Safety
/// Implementors must have no padding, no invalid bit patterns, and the size
/// and alignment of the dtype `DTYPE` names.
pub unsafe trait Element: Copy + Default + 'static {
    /// The ONNX dtype code (see [`dtype`]).
    const DTYPE: i32;
}

macro_rules! element {
    ($($t:ty => $code:expr),* $(,)?) => {
        $(
            // SAFETY: primitive integers and floats have no padding and no
            // invalid bit patterns; their sizes are the dtypes' element sizes.
            unsafe impl Element for $t {
                const DTYPE: i32 = $code;
            }
        )*
        /// Every [`Element`] type: its dtype code and its Rust name (what
        /// generated wrappers spell the type as).
        pub const ELEMENTS: &[(i32, &str)] = &[$(($code, stringify!($t))),*];
    };
}
element!(f32 => dtype::FLOAT, f64 => dtype::DOUBLE, i8 => dtype::INT8, u8 => dtype::UINT8, i16 => dtype::INT16,
    u16 => dtype::UINT16, i32 => dtype::INT32, u32 => dtype::UINT32, i64 => dtype::INT64, u64 => dtype::UINT64);

/// Views elements as bytes (native = little-endian on every supported target).
pub fn bytes_of<T: Element>(v: &[T]) -> &[u8] {
    // SAFETY: `Element` types have no padding, so every byte is initialised;
    // the length is exactly size_of_val(v) and the lifetime is tied to `v`.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

/// Mutable byte view of elements.
pub fn bytes_of_mut<T: Element>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: as in `bytes_of`; any byte pattern written is a valid `T`
    // (`Element` has no invalid bit patterns).
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, std::mem::size_of_val(v)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_types_block_is_the_guarded_abi() {
        let b = c_types_block();
        assert!(b.starts_with("#ifndef KERF_RUNTIME_TYPES\n"), "{b}");
        assert!(b.ends_with("#endif /* KERF_RUNTIME_TYPES */\n"), "{b}");
        assert!(b.contains(&format!("#define KERF_ABI_VERSION {ABI_VERSION}\n")), "{b}");
        assert!(b.contains("} kerf_model_desc;"), "{b}");
        for (name, code) in [
            ("OK", status::OK),
            ("NULL_POINTER", status::NULL_POINTER),
            ("MISALIGNED_ARENA", status::MISALIGNED_ARENA),
            ("ABI_MISMATCH", status::ABI_MISMATCH),
            ("INDEX_OUT_OF_RANGE", status::INDEX_OUT_OF_RANGE),
        ] {
            assert!(b.contains(&format!("#define KERF_STATUS_{name} {code}\n")), "{name}: {b}");
        }
    }

    #[test]
    fn arena_is_aligned() {
        for n in [0, 1, 63, 64, 1000] {
            let mut a = Arena::new(n).unwrap();
            assert_eq!(a.as_mut_ptr() as usize % ARENA_ALIGN, 0);
            assert_eq!(a.len(), n);
        }
    }

    /// Memory the allocator cannot give is an error naming what it was
    /// for, not an abort (`vec![0; n]` aborts).
    #[test]
    fn arenas_too_large_are_errors() {
        for bytes in [1usize << 60, usize::MAX] {
            match Arena::new(bytes) {
                Err(RuntimeError::Memory { what, bytes: b }) => assert_eq!((what.as_str(), b), ("the arena", bytes)),
                other => panic!("{bytes} bytes: {:?}", other.map(|a| a.len())),
            }
        }
        let e = zeroed(1 << 61, || "output 0 ('y')".into()).unwrap_err();
        assert!(e.to_string().contains("for output 0 ('y')"), "{e}");
    }

    #[test]
    fn dtype_sizes() {
        assert_eq!(dtype::size(dtype::FLOAT), Some(4));
        assert_eq!(dtype::size(dtype::INT64), Some(8));
        assert_eq!(dtype::size(8), None);
        assert_eq!(dtype::size(dtype::INT4), Some(1), "narrow types are unpacked");
        assert_eq!(dtype::size(dtype::FLOAT8E4M3FN), Some(1));
    }

    static NAME: &[u8] = b"x\0";
    static DIMS: [i64; 2] = [1, 3];

    /// Doubles the first `N` of the 3-float input into the output (`N` < 3
    /// leaves the rest unwritten) and, unless `OFF` is `NONE`, writes one
    /// more float `OFF` floats from the output's start (outside it for
    /// `OFF` < 0 or ≥ 3).
    unsafe extern "C" fn double_and_store<const N: usize, const OFF: isize>(
        inputs: *const *const c_void,
        outputs: *const *mut c_void,
        _arena: *mut c_void,
        _rt: *const KerfRuntime,
    ) -> i32 {
        // SAFETY: called only with one 3-float input and output; a stray
        // store lands in the guards `Model::run_guarded` puts around the
        // output (|OFF| ≤ 16 floats).
        unsafe {
            let (x, y) = (*inputs as *const f32, *outputs as *mut f32);
            for i in 0..N {
                *y.add(i) = 2.0 * *x.add(i);
            }
            if OFF != NONE {
                *y.offset(OFF) = 1.0;
            }
        }
        0
    }

    /// [`double_and_store`]'s `OFF` for no extra store.
    const NONE: isize = isize::MIN;

    /// The well-behaved model: doubles its input.
    const DOUBLE_IT: RunFn = double_and_store::<3, NONE>;

    /// A model of one 3-float input and output behind `run`.
    fn model(run: RunFn) -> Model {
        let t = TensorDescRaw {
            name: NAME.as_ptr() as *const c_char,
            dtype: dtype::FLOAT,
            rank: 2,
            dims: DIMS.as_ptr(),
            bytes: 12,
        };
        let d = ModelDescRaw {
            abi_version: ABI_VERSION,
            num_inputs: 1,
            num_outputs: 1,
            arena_align: 64,
            arena_bytes: 0,
            inputs: &t,
            outputs: &t,
            name: NAME.as_ptr() as *const c_char,
        };
        // SAFETY: every `run` passed matches the descriptor.
        unsafe { Model::from_raw(run, &d) }.unwrap()
    }

    #[test]
    fn guarded_run_names_stray_stores() {
        let x = bytes_of(&[1.0f32, 2.0, 3.0]).to_vec();
        let run = |f: RunFn| {
            // SAFETY: no runtime.
            unsafe { model(f).run_guarded(&[&x], None) }
        };
        assert_eq!(run(DOUBLE_IT).unwrap(), vec![bytes_of(&[2.0f32, 4.0, 6.0]).to_vec()]);
        let stray = |side, bytes| RuntimeError::Stray { index: 0, name: "x".into(), side, bytes };
        assert_eq!(run(double_and_store::<3, -1>).unwrap_err(), stray("before its start", 4));
        assert_eq!(run(double_and_store::<3, -16>).unwrap_err(), stray("before its start", 64));
        assert_eq!(run(double_and_store::<3, 3>).unwrap_err(), stray("past its end", 0));
        assert_eq!(run(double_and_store::<3, 18>).unwrap_err(), stray("past its end", 60));
        // an element the run does not write keeps the guard bytes
        let mut want = bytes_of(&[2.0f32, 4.0, 6.0]).to_vec();
        want[8..].fill(GUARD);
        assert_eq!(run(double_and_store::<2, NONE>).unwrap(), vec![want]);
    }

    #[test]
    fn wrapper_checks_and_runs() {
        let m = model(DOUBLE_IT);
        assert_eq!(m.info().inputs[0].dims, vec![1, 3]);
        let mut arena = m.new_arena().unwrap();
        let out = m.run_f32(&[&[1.0, 2.0, 3.0]], &mut arena).unwrap();
        assert_eq!(out, vec![vec![2.0, 4.0, 6.0]]);
        let err = m.run_f32(&[&[1.0, 2.0]], &mut arena).unwrap_err();
        assert_eq!(err, RuntimeError::Size { what: "input", index: 0, name: "x".into(), expected: 12, actual: 8 });
        let err = m.run_f32(&[], &mut arena).unwrap_err();
        assert_eq!(err, RuntimeError::Count { what: "input", expected: 1, actual: 0 });
    }
}
