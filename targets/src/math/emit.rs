//! The lane operations the math routines are written in, so that one
//! routine body serves two code generators: Cranelift IR (`f32` and
//! `f32x4` values, every target; the impl below) and the AVX2 stream
//! assembler (`ukernel::vmath`, eight lanes in a `ymm`).
//!
//! Contract for every implementation: each operation acts lane by lane
//! with IEEE single-precision semantics (round to nearest, no fused
//! multiply-add, no flush to zero), integer operations on the lanes' bit
//! patterns wrap, masks are all-ones or all-zeros lanes. Under that
//! contract a routine gives the same bits from every implementation (NaN
//! payloads and signs aside), which is what lets an assembled stream
//! replace a Cranelift loop without changing outputs.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, ConstantData, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;

/// Lane operations on values of one shape. Float and integer views of a
/// lane share its bits ([`Emit::bits`], [`Emit::float`]).
pub trait Emit {
    /// A value: a float, integer or mask vector (or scalar) of the shape.
    type V: Copy;
    /// The float constant `v` in every lane, shaped like `like`.
    fn fconst(&mut self, like: Self::V, v: f32) -> Self::V;
    /// The integer constant `v` in every lane, shaped like `like`.
    fn iconst(&mut self, like: Self::V, v: i32) -> Self::V;
    /// `a + b`.
    fn fadd(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`.
    fn fsub(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// `a · b`.
    fn fmul(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// `a / b`.
    fn fdiv(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// `|a|` (clears the sign bit).
    fn fabs(&mut self, a: Self::V) -> Self::V;
    /// `-a` (flips the sign bit).
    fn fneg(&mut self, a: Self::V) -> Self::V;
    /// Mask of `a < b` (false when either is NaN).
    fn flt(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// Mask of `a == b` (false when either is NaN).
    fn feq(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// Mask of `a != b` (true when either is NaN).
    fn fne(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// `mask ? x : y` per lane.
    fn select(&mut self, mask: Self::V, x: Self::V, y: Self::V) -> Self::V;
    /// `x < c ? c : x` for a non-zero constant `c`: NaN stays NaN.
    fn max_c(&mut self, x: Self::V, c: f32) -> Self::V;
    /// `c < x ? c : x` for a non-zero constant `c`: NaN stays NaN.
    fn min_c(&mut self, x: Self::V, c: f32) -> Self::V;
    /// The bits of a float as an integer.
    fn bits(&mut self, x: Self::V) -> Self::V;
    /// The float whose bits are the integer `x`.
    fn float(&mut self, x: Self::V) -> Self::V;
    /// Integer `a + b`.
    fn iadd(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// Integer `a - b`.
    fn isub(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// Bitwise `a & b` (integers or masks).
    fn and(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// Bitwise `a | b` (integers or masks).
    fn or(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// Arithmetic shift right by `n`.
    fn sshr(&mut self, a: Self::V, n: u8) -> Self::V;
    /// Logical shift right by `n`.
    fn ushr(&mut self, a: Self::V, n: u8) -> Self::V;
    /// Shift left by `n`.
    fn shl(&mut self, a: Self::V, n: u8) -> Self::V;
    /// The signed integer `a` converted to float (round to nearest).
    fn int_to_float(&mut self, a: Self::V) -> Self::V;
}

/// Type facts of a Cranelift value: float and same-shaped integer types.
#[derive(Clone, Copy)]
pub(super) struct Ty {
    pub(super) float: Type,
    pub(super) int: Type,
    pub(super) vector: bool,
}

impl Ty {
    /// The shape of `x`, which must be `f32`/`i32` or `f32x4`/`i32x4`
    /// (the kernels pick the type from the dtype; anything else is a
    /// codegen bug).
    pub(super) fn of(b: &FunctionBuilder, x: Value) -> Ty {
        let t = b.func.dfg.value_type(x);
        if t == types::F32 || t == types::I32 || t == types::I8 {
            Ty { float: types::F32, int: types::I32, vector: false }
        } else if t == types::F32X4 || t == types::I32X4 {
            Ty { float: types::F32X4, int: types::I32X4, vector: true }
        } else {
            panic!("kerf math routines take f32 or f32x4, got {t}")
        }
    }
}

/// A constant of `ty` with the 32-bit pattern `bits` in every lane.
pub(super) fn splat_bits(b: &mut FunctionBuilder, ty: Type, bits: u32) -> Value {
    if ty.is_vector() {
        let bytes: Vec<u8> = (0..4).flat_map(|_| bits.to_le_bytes()).collect();
        let handle = b.func.dfg.constants.insert(ConstantData::from(bytes));
        b.ins().vconst(ty, handle)
    } else if ty == types::F32 {
        b.ins().f32const(f32::from_bits(bits))
    } else {
        b.ins().iconst(types::I32, i64::from(bits as i32))
    }
}

/// Cranelift IR: scalars and `f32x4`. Vector constants are `vconst`s (one
/// constant-pool load each; callers in hot loops rely on the backend
/// folding them into their users), vector selects `bitselect` on the lane
/// mask, vector clamps the compare-and-select x86-64 lowers to one
/// `maxps`/`minps`.
impl Emit for FunctionBuilder<'_> {
    type V = Value;
    fn fconst(&mut self, like: Value, v: f32) -> Value {
        let t = Ty::of(self, like);
        splat_bits(self, t.float, v.to_bits())
    }
    fn iconst(&mut self, like: Value, v: i32) -> Value {
        let t = Ty::of(self, like);
        splat_bits(self, t.int, v as u32)
    }
    fn fadd(&mut self, a: Value, b: Value) -> Value {
        self.ins().fadd(a, b)
    }
    fn fsub(&mut self, a: Value, b: Value) -> Value {
        self.ins().fsub(a, b)
    }
    fn fmul(&mut self, a: Value, b: Value) -> Value {
        self.ins().fmul(a, b)
    }
    fn fdiv(&mut self, a: Value, b: Value) -> Value {
        self.ins().fdiv(a, b)
    }
    fn fabs(&mut self, a: Value) -> Value {
        self.ins().fabs(a)
    }
    fn fneg(&mut self, a: Value) -> Value {
        self.ins().fneg(a)
    }
    fn flt(&mut self, a: Value, b: Value) -> Value {
        self.ins().fcmp(FloatCC::LessThan, a, b)
    }
    fn feq(&mut self, a: Value, b: Value) -> Value {
        self.ins().fcmp(FloatCC::Equal, a, b)
    }
    fn fne(&mut self, a: Value, b: Value) -> Value {
        self.ins().fcmp(FloatCC::NotEqual, a, b)
    }
    fn select(&mut self, mask: Value, x: Value, y: Value) -> Value {
        if Ty::of(self, x).vector {
            let xt = self.func.dfg.value_type(x);
            let m = if self.func.dfg.value_type(mask) == xt {
                mask
            } else {
                self.ins().bitcast(xt, MemFlagsData::new(), mask)
            };
            self.ins().bitselect(m, x, y)
        } else {
            self.ins().select(mask, x, y)
        }
    }
    /// Scalars keep `fmax` (one instruction on riscv64gc and AArch64;
    /// x86-64 runs scalars in loop tails only). The two forms agree on every
    /// non-NaN `x` (they differ only for ±0 against ±0, and `c` is not
    /// zero), so scalar tails and vector bodies stay bit-identical.
    fn max_c(&mut self, x: Value, c: f32) -> Value {
        let cv = self.fconst(x, c);
        if Ty::of(self, x).vector {
            let lt = self.flt(x, cv);
            self.select(lt, cv, x)
        } else {
            self.ins().fmax(x, cv)
        }
    }
    fn min_c(&mut self, x: Value, c: f32) -> Value {
        let cv = self.fconst(x, c);
        if Ty::of(self, x).vector {
            let lt = self.flt(cv, x);
            self.select(lt, cv, x)
        } else {
            self.ins().fmin(x, cv)
        }
    }
    fn bits(&mut self, x: Value) -> Value {
        let t = Ty::of(self, x);
        self.ins().bitcast(t.int, MemFlagsData::new(), x)
    }
    fn float(&mut self, x: Value) -> Value {
        let t = Ty::of(self, x);
        self.ins().bitcast(t.float, MemFlagsData::new(), x)
    }
    fn iadd(&mut self, a: Value, b: Value) -> Value {
        self.ins().iadd(a, b)
    }
    fn isub(&mut self, a: Value, b: Value) -> Value {
        self.ins().isub(a, b)
    }
    fn and(&mut self, a: Value, b: Value) -> Value {
        self.ins().band(a, b)
    }
    fn or(&mut self, a: Value, b: Value) -> Value {
        self.ins().bor(a, b)
    }
    fn sshr(&mut self, a: Value, n: u8) -> Value {
        self.ins().sshr_imm_u(a, i64::from(n))
    }
    fn ushr(&mut self, a: Value, n: u8) -> Value {
        self.ins().ushr_imm_u(a, i64::from(n))
    }
    fn shl(&mut self, a: Value, n: u8) -> Value {
        self.ins().ishl_imm_u(a, i64::from(n))
    }
    fn int_to_float(&mut self, a: Value) -> Value {
        let t = Ty::of(self, a);
        self.ins().fcvt_from_sint(t.float, a)
    }
}
