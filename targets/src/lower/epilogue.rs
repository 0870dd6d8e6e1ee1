//! Epilogues applied by the conv/GEMM kernels in registers, between the
//! last multiply-add and the store: `y = act(acc + residual)` (the bias is
//! the accumulators' initial value). Fusing them saves one full pass over
//! the output per activation / residual add (DESIGN-NOTES §8 rule 6: such
//! passes are memory-bound).

use cranelift_codegen::ir::{InstBuilder, Type, Value};

use super::Kernel;

/// An activation the kernels can apply before the store.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    None,
    Relu,
    /// `min(max(x, lo), hi)`.
    Clip {
        lo: f32,
        hi: f32,
    },
    /// `x >= 0 ? x : alpha * x`.
    LeakyRelu {
        alpha: f32,
    },
    /// `x * clip(x / 6 + 1/2, 0, 1)`.
    HardSwish,
}

/// What happens to each output vector before it is stored.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue {
    pub act: Act,
    /// Pointer to a tensor of the output's shape added before the activation.
    pub residual: Option<Value>,
}

impl Epilogue {
    /// Plain store: no activation, no residual.
    pub const NONE: Epilogue = Epilogue { act: Act::None, residual: None };
}

/// `act(x)` on `ty` (`F32` or `F32X4`). Uses only min/max/mul/add/select
/// paths that every ISA lowers natively. Max/min operand order follows the
/// reference evaluator: NaN inputs stay NaN through Relu and Clip.
pub fn apply_act(k: &mut Kernel, ty: Type, act: Act, x: Value) -> Value {
    match act {
        Act::None => x,
        Act::Relu => {
            let z = k.fsplat(ty, 0.0);
            k.b.ins().fmax(x, z)
        }
        Act::Clip { lo, hi } => {
            let l = k.fsplat(ty, lo);
            let h = k.fsplat(ty, hi);
            let t = k.b.ins().fmax(x, l);
            k.b.ins().fmin(t, h)
        }
        Act::LeakyRelu { alpha } => {
            // max(x, 0) + alpha * min(x, 0)
            let z = k.fsplat(ty, 0.0);
            let a = k.fsplat(ty, alpha);
            let p = k.b.ins().fmax(x, z);
            let n = k.b.ins().fmin(x, z);
            let an = k.b.ins().fmul(a, n);
            k.b.ins().fadd(p, an)
        }
        Act::HardSwish => {
            let sixth = k.fsplat(ty, 1.0 / 6.0);
            let half = k.fsplat(ty, 0.5);
            let z = k.fsplat(ty, 0.0);
            let one = k.fsplat(ty, 1.0);
            let t = k.b.ins().fmul(x, sixth);
            let t = k.b.ins().fadd(t, half);
            let t = k.b.ins().fmax(t, z);
            let t = k.b.ins().fmin(t, one);
            k.b.ins().fmul(x, t)
        }
    }
}
