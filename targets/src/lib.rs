//! Native code generation for kerf graphs with Cranelift.
//!
//! Layering (Cranelift style):
//! - [`isa`]: target lookup (triple + CPU preset) and the capabilities kernels
//!   may use (128-bit vectors, FMA, hardware rounding).
//! - [`arena`]: the static activation-memory plan.
//! - [`lower`]: one Cranelift function per node, one file per op family.
//! - [`codegen`]: builds every kernel, the entry point and the descriptor into
//!   any `cranelift_module::Module`, so the object path and the JIT share it.
//! - [`object`], [`archive`], [`header`], [`jit`]: the artifacts.
//!
//! The generated ABI is documented in `docs/abi.md`.
#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod archive;
pub mod arena;
pub mod codegen;
mod error;
pub mod header;
pub mod isa;
pub mod jit;
pub mod lower;
pub mod math;
pub mod object;
pub mod rust_module;
pub mod ukernel;

pub use error::{TargetError, UnsupportedNode};
pub use isa::Target;
pub use jit::{jit_compile, JitModel};
pub use object::{compile_object, Artifact, CompileOptions, ProgressFn, ProgressHook, Report};
