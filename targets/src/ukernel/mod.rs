//! Micro-kernels assembled by kerf (with `iced-x86` on x86-64, `dynasm`
//! on AArch64: [`neon`]) and placed into the same object as the Cranelift
//! code: the hot inner loops at the vector width Cranelift does not lower
//! (256-bit AVX2 and 512-bit AVX-512 on x86-64) and with the instructions
//! it does not emit (AVX-512 VNNI's and `dotprod`'s dot products).
//!
//! **Leaf ABI** (x86-64; AArch64's is in [`neon`]). Every micro-kernel is a leaf function of the target's C
//! calling convention (System V only: [`crate::isa::Caps::avx2`] is false
//! for any other), taking only integer/pointer arguments (six in
//! registers; a seventh, [`avx512::qdot_tile_tail`]'s, read from the
//! caller's stack by one `mov` from `[rsp + 8]`), returning nothing,
//! pushing nothing and writing no stack, touching no callee-saved register,
//! and ending with `vzeroupper` (Cranelift's own code may use legacy-SSE
//! encodings, which a dirty upper state slows down by an order of
//! magnitude: DESIGN-NOTES §8 rule 5).
//!
//! **Placement.** A lowering asks for the machine code of the variant it
//! needs ([`crate::lower::Kernel::code`]); the bytes are a kernel parameter
//! like a packed blob, so identical variants are defined once per object
//! (`define_function_bytes`) and the entry point passes their address. The
//! bytes depend only on the variant, so objects stay deterministic.
//!
//! **Numerics.** A micro-kernel performs the same operations in the same
//! order as the Cranelift code it replaces (one fused multiply-add chain
//! per output over K in order, the same epilogue selects), so both paths
//! give the same bits: the `native` and `baseline` runs of every kernel
//! test check each other as well as the reference.

pub mod avx2;
pub mod avx512;
pub mod epi;
pub mod neon;
pub mod pattern;
pub mod pool;
pub mod quantize;
pub mod vmath;

use iced_x86::code_asm::{AsmRegister64, CodeAssembler};
use iced_x86::IcedError;

/// How an integer tile (`avx2::qbyte_tile`, `avx512::qdot_tile`,
/// `neon::sdot_tile` / `mull_tile`, and the one-pixel products) walks its
/// K steps: every one in order, B advancing a vector per step; or the
/// steps a list names (block-sparse weights: a block of output channels
/// that shares its zero K quads runs only its kept ones), each step of A
/// led by the `u32` byte offset of its B vector (the one-pixel products:
/// by the offsets of their blocks' input quads, stated with each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KSteps {
    /// Every K step, in order.
    Dense,
    /// The listed steps: A holds per step the B offset, then the weights.
    Listed,
}

/// A leaf micro-kernel with a constant pool: its instructions first
/// (`code_len` bytes, ending with `vzeroupper; ret`), then the constants
/// they read rip-relative, 32-byte aligned from the function's start
/// (aligned in memory as the code generator places every function at 64
/// bytes, `codegen::rodata`).
pub struct PooledCode {
    /// The whole function.
    pub bytes: Vec<u8>,
    /// Bytes of instructions before the pool.
    pub code_len: usize,
}

/// A loop run `n` times (the register counts down; zero runs nothing):
/// the tiles' K loops, the depthwise passes' rows and groups.
pub(crate) fn counted_loop(
    a: &mut CodeAssembler,
    n: AsmRegister64,
    mut body: impl FnMut(&mut CodeAssembler) -> Result<(), IcedError>,
) -> Result<(), IcedError> {
    let mut done = a.create_label();
    let mut top = a.create_label();
    a.test(n, n)?;
    a.jz(done)?;
    a.set_label(&mut top)?;
    body(a)?;
    a.dec(n)?;
    a.jnz(top)?;
    a.set_label(&mut done)
}

/// A leaf micro-kernel's end: `vzeroupper`, `ret`, and the machine code.
pub(crate) fn leaf_end(mut a: CodeAssembler) -> Result<Vec<u8>, IcedError> {
    a.vzeroupper()?;
    a.ret()?;
    a.assemble(0)
}
