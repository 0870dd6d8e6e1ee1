//! The operator set. Attributes are fully resolved at import: every ONNX
//! input that shapes the result (Reshape's shape, Slice's starts, Pad's pads,
//! Resize's sizes, ...) is a constant folded into an attribute, and every
//! default is explicit. Two ops that print the same compute the same function.
//!
//! Ops are plain data (`Eq + Hash`) so the e-graph can use them as node
//! payloads; tensors never live in an op, only in the weight table.

mod attrs;
pub mod chain;

pub use attrs::{activation_text, coord_mode_name, pad_mode_name, parse_coord_mode};
pub use chain::ChainStep;

use crate::attr::F32;
use crate::DType;

/// The stable identity of a compute layer (Conv, ConvTranspose, Gemm, MatMul,
/// LSTM, GRU). Compression plans address layers by this name, so passes must
/// carry it through every rewrite of the layer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Layer(pub String);

/// Elementwise ops with one input (and possibly float parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnaryOp {
    /// `-x`.
    Neg,
    /// `|x|`.
    Abs,
    /// Square root.
    Sqrt,
    /// `1 / x`.
    Reciprocal,
    /// `e^x`.
    Exp,
    /// Natural logarithm.
    Log,
    /// The Gauss error function.
    Erf,
    /// Hyperbolic tangent.
    Tanh,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `max(x, 0)`.
    Relu,
    /// Round toward −∞.
    Floor,
    /// Round toward +∞.
    Ceil,
    /// Round to nearest, ties to even (ONNX Round).
    Round,
    /// `-1`, `0` or `1` by the sign of `x`; zeros and NaN pass through.
    Sign,
    /// Logical negation of a bool.
    Not,
    /// Sine (radians).
    Sin,
    /// Cosine (radians).
    Cos,
    /// `ln(1 + e^x)`.
    Softplus,
    /// `x / (1 + |x|)`.
    Softsign,
    /// `x * clamp(x / 6 + 0.5, 0, 1)`.
    HardSwish,
    /// Bitwise complement of an integer (ONNX BitwiseNot).
    BitwiseNot,
    /// Tangent (radians).
    Tan,
    /// Arcsine.
    Asin,
    /// Arccosine.
    Acos,
    /// Arctangent.
    Atan,
    /// Hyperbolic sine.
    Sinh,
    /// Hyperbolic cosine.
    Cosh,
    /// Inverse hyperbolic sine.
    Asinh,
    /// Inverse hyperbolic cosine.
    Acosh,
    /// Inverse hyperbolic tangent.
    Atanh,
    /// `max(x, 0) + alpha * min(x, 0)`
    LeakyRelu {
        /// Slope for negative inputs (ONNX `alpha`).
        alpha: F32,
    },
    /// `clamp(alpha * x + beta, 0, 1)`
    HardSigmoid {
        /// Slope (ONNX `alpha`).
        alpha: F32,
        /// Offset (ONNX `beta`).
        beta: F32,
    },
    /// `clamp(x, min, max)`; absent bounds are ±inf.
    Clip {
        /// Lower bound (ONNX `min`).
        min: F32,
        /// Upper bound (ONNX `max`).
        max: F32,
    },
    /// exact (erf) or tanh-approximated GELU.
    Gelu {
        /// Use the tanh approximation (ONNX `approximate = "tanh"`) instead of erf.
        tanh: bool,
    },
    /// `x < 0 ? alpha * (e^x - 1) : x`.
    Elu {
        /// Scale of the negative part (ONNX `alpha`).
        alpha: F32,
    },
    /// `gamma * (x <= 0 ? alpha * (e^x - 1) : x)`.
    Selu {
        /// Scale of the exponential part (ONNX `alpha`).
        alpha: F32,
        /// Overall scale (ONNX `gamma`).
        gamma: F32,
    },
}

impl UnaryOp {
    /// Whether the op lowers to a few arithmetic instructions (min/max,
    /// compare+select, sqrt, divide, rounding) rather than a polynomial
    /// routine with its own constants (exp, erf, tanh, sin, ...). The cost
    /// model charges the latter a transcendental's work per element and an
    /// elementwise chain holds at most one of them.
    pub fn is_cheap(self) -> bool {
        use UnaryOp::*;
        matches!(
            self,
            Neg | Abs
                | Relu
                | Floor
                | Ceil
                | Round
                | Sign
                | Not
                | Sqrt
                | Reciprocal
                | LeakyRelu { .. }
                | Clip { .. }
                | HardSigmoid { .. }
                | HardSwish
                | Softsign
        )
    }

    /// The op's name in the text format (the ONNX op name).
    pub fn name(self) -> &'static str {
        use UnaryOp::*;
        match self {
            Neg => "Neg",
            Abs => "Abs",
            Sqrt => "Sqrt",
            Reciprocal => "Reciprocal",
            Exp => "Exp",
            Log => "Log",
            Erf => "Erf",
            Tanh => "Tanh",
            Sigmoid => "Sigmoid",
            Relu => "Relu",
            Floor => "Floor",
            Ceil => "Ceil",
            Round => "Round",
            Sign => "Sign",
            Not => "Not",
            Sin => "Sin",
            Cos => "Cos",
            Softplus => "Softplus",
            Softsign => "Softsign",
            HardSwish => "HardSwish",
            BitwiseNot => "BitwiseNot",
            Tan => "Tan",
            Asin => "Asin",
            Acos => "Acos",
            Atan => "Atan",
            Sinh => "Sinh",
            Cosh => "Cosh",
            Asinh => "Asinh",
            Acosh => "Acosh",
            Atanh => "Atanh",
            LeakyRelu { .. } => "LeakyRelu",
            HardSigmoid { .. } => "HardSigmoid",
            Clip { .. } => "Clip",
            Gelu { .. } => "Gelu",
            Elu { .. } => "Elu",
            Selu { .. } => "Selu",
        }
    }

    const SIMPLE: [UnaryOp; 30] = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Sqrt,
        UnaryOp::Reciprocal,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Erf,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Relu,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Round,
        UnaryOp::Sign,
        UnaryOp::Not,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Softplus,
        UnaryOp::Softsign,
        UnaryOp::HardSwish,
        UnaryOp::BitwiseNot,
        UnaryOp::Tan,
        UnaryOp::Asin,
        UnaryOp::Acos,
        UnaryOp::Atan,
        UnaryOp::Sinh,
        UnaryOp::Cosh,
        UnaryOp::Asinh,
        UnaryOp::Acosh,
        UnaryOp::Atanh,
    ];

    /// Whether the op is defined on integer inputs as well as floats.
    pub fn accepts_int(self) -> bool {
        matches!(
            self,
            UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Relu | UnaryOp::Sign | UnaryOp::Clip { .. } | UnaryOp::BitwiseNot
        )
    }
}

/// Elementwise ops with two broadcasting inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BinaryOp {
    /// `x + y` (integers wrap).
    Add,
    /// `x - y` (integers wrap).
    Sub,
    /// `x * y` (integers wrap).
    Mul,
    /// `x / y`; integer division truncates toward zero.
    Div,
    /// `x ^ y`; the exponent may have another dtype, the result has the base's.
    Pow,
    /// Elementwise maximum; a NaN operand gives NaN.
    Max,
    /// Elementwise minimum; a NaN operand gives NaN.
    Min,
    /// Integer modulus with the sign of the divisor (ONNX `fmod=0`).
    Mod,
    /// C `fmod` (ONNX `fmod=1`).
    Fmod,
    /// `x == y`, as bool.
    Equal,
    /// `x > y`, as bool.
    Greater,
    /// `x >= y`, as bool.
    GreaterOrEqual,
    /// `x < y`, as bool.
    Less,
    /// `x <= y`, as bool.
    LessOrEqual,
    /// Logical and of bools.
    And,
    /// Logical or of bools.
    Or,
    /// Logical exclusive or of bools.
    Xor,
    /// PRelu: `x < 0 ? slope * x : x` (slope is the second input).
    PRelu,
    /// Integer shifts (ONNX BitShift). The shift amount is read as unsigned;
    /// amounts ≥ the bit width give 0 (left, logical right) or the sign fill
    /// (arithmetic right on signed types).
    BitShiftLeft,
    /// Right shift: logical on unsigned types, arithmetic on signed ones.
    BitShiftRight,
    /// Integer bitwise ops (ONNX BitwiseAnd/Or/Xor); `And`/`Or`/`Xor` are the
    /// logical ops on bool.
    BitwiseAnd,
    /// Integer bitwise or (ONNX BitwiseOr).
    BitwiseOr,
    /// Integer bitwise exclusive or (ONNX BitwiseXor).
    BitwiseXor,
}

impl BinaryOp {
    /// Every binary op, in declaration order.
    pub const ALL: [BinaryOp; 23] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Mod,
        BinaryOp::Fmod,
        BinaryOp::Equal,
        BinaryOp::Greater,
        BinaryOp::GreaterOrEqual,
        BinaryOp::Less,
        BinaryOp::LessOrEqual,
        BinaryOp::And,
        BinaryOp::Or,
        BinaryOp::Xor,
        BinaryOp::PRelu,
        BinaryOp::BitShiftLeft,
        BinaryOp::BitShiftRight,
        BinaryOp::BitwiseAnd,
        BinaryOp::BitwiseOr,
        BinaryOp::BitwiseXor,
    ];

    /// The op's name in the text format: ONNX's, except `Fmod`, `BitShiftLeft` and `BitShiftRight`,
    /// which ONNX spells as attributes of `Mod` and `BitShift`.
    pub fn name(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Add => "Add",
            Sub => "Sub",
            Mul => "Mul",
            Div => "Div",
            Pow => "Pow",
            Max => "Max",
            Min => "Min",
            Mod => "Mod",
            Fmod => "Fmod",
            Equal => "Equal",
            Greater => "Greater",
            GreaterOrEqual => "GreaterOrEqual",
            Less => "Less",
            LessOrEqual => "LessOrEqual",
            And => "And",
            Or => "Or",
            Xor => "Xor",
            PRelu => "PRelu",
            BitShiftLeft => "BitShiftLeft",
            BitShiftRight => "BitShiftRight",
            BitwiseAnd => "BitwiseAnd",
            BitwiseOr => "BitwiseOr",
            BitwiseXor => "BitwiseXor",
        }
    }

    /// Shifts and bitwise ops: integer inputs only, result of the input type.
    pub fn is_bitwise(self) -> bool {
        use BinaryOp::*;
        matches!(self, BitShiftLeft | BitShiftRight | BitwiseAnd | BitwiseOr | BitwiseXor)
    }

    /// Comparison and logic ops produce `bool`.
    pub fn yields_bool(self) -> bool {
        use BinaryOp::*;
        matches!(self, Equal | Greater | GreaterOrEqual | Less | LessOrEqual | And | Or | Xor)
    }
}

/// Reductions over a set of axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReduceKind {
    /// `Σ x`.
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
    /// `Π x`.
    Prod,
    /// `Σ |x|`.
    L1,
    /// `√(Σ x²)`.
    L2,
    /// `Σ x²`.
    SumSquare,
    /// `ln(Σ x)`.
    LogSum,
    /// `ln(Σ e^x)`.
    LogSumExp,
}

impl ReduceKind {
    /// Every reduction, in declaration order.
    pub const ALL: [ReduceKind; 10] = [
        ReduceKind::Sum,
        ReduceKind::Mean,
        ReduceKind::Max,
        ReduceKind::Min,
        ReduceKind::Prod,
        ReduceKind::L1,
        ReduceKind::L2,
        ReduceKind::SumSquare,
        ReduceKind::LogSum,
        ReduceKind::LogSumExp,
    ];
    /// The ONNX op name (`ReduceSum`, ...), also the text-format name.
    pub fn name(self) -> &'static str {
        match self {
            ReduceKind::Sum => "ReduceSum",
            ReduceKind::Mean => "ReduceMean",
            ReduceKind::Max => "ReduceMax",
            ReduceKind::Min => "ReduceMin",
            ReduceKind::Prod => "ReduceProd",
            ReduceKind::L1 => "ReduceL1",
            ReduceKind::L2 => "ReduceL2",
            ReduceKind::SumSquare => "ReduceSumSquare",
            ReduceKind::LogSum => "ReduceLogSum",
            ReduceKind::LogSumExp => "ReduceLogSumExp",
        }
    }
}

/// Convolution geometry shared by Conv, ConvTranspose and the pools.
/// `pads` holds all begin pads then all end pads (ONNX order), resolved
/// from `auto_pad` at import.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// Kernel extent per spatial axis (ONNX `kernel_shape`).
    pub kernel: Vec<usize>,
    /// Stride per spatial axis (ONNX `strides`).
    pub strides: Vec<usize>,
    /// Dilation per spatial axis (ONNX `dilations`).
    pub dilations: Vec<usize>,
    /// Padding before each spatial axis, then after each (ONNX `pads`, `2 * rank` entries).
    pub pads: Vec<usize>,
}

impl Window {
    /// Number of spatial axes.
    pub fn rank(&self) -> usize {
        self.kernel.len()
    }
    /// Padding before spatial axis `i`.
    pub fn pad_begin(&self, i: usize) -> usize {
        self.pads[i]
    }
    /// Padding after spatial axis `i`.
    pub fn pad_end(&self, i: usize) -> usize {
        self.pads[self.kernel.len() + i]
    }
}

/// What a fused conv ([`Op::ConvFused`]) or matrix product
/// ([`Op::MatMulFused`], [`Op::GemmFused`]) does to each output before it is
/// stored: `y = act(conv(x, w, b) + residual)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Epilogue {
    /// Applied last; one of [`Epilogue::fusable`] or none.
    pub act: Option<UnaryOp>,
    /// A fourth input, of the output's type, is added before `act`.
    pub residual: bool,
}

impl Epilogue {
    /// Whether a clamp to `[lo, hi]` done as compare-selects (`x < lo ? lo
    /// : x`, then `hi < y ? hi : y`) gives `fmax`/`fmin`'s bits: all bounds
    /// but NaN ones and a `-0` upper bound (`fmin(+0, -0)` is `-0`, the
    /// select keeps `+0`). The assembled tiles clamp that way, so the code
    /// generator and the rules that count on those tiles ask this.
    pub fn clamp_by_selects(lo: f32, hi: Option<f32>) -> bool {
        !lo.is_nan() && hi.is_none_or(|h| !h.is_nan() && h.to_bits() != (-0.0f32).to_bits())
    }

    /// The activations conv kernels apply in registers.
    pub fn fusable(u: UnaryOp) -> bool {
        matches!(
            u,
            UnaryOp::Relu
                | UnaryOp::Clip { .. }
                | UnaryOp::LeakyRelu { .. }
                | UnaryOp::HardSwish
                | UnaryOp::Sigmoid
                | UnaryOp::Tanh
                | UnaryOp::Gelu { .. }
        )
    }
}

/// ONNX Conv attributes. Inputs `x, w[, b]`: `x` is `[N, C, spatial..]`, `w` is
/// `[M, C / group, kernel..]`, `b` is `[M]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Conv {
    /// Kernel, strides, dilations and pads.
    pub window: Window,
    /// Number of channel groups (ONNX `group`); input and output channels split into that many
    /// independent convolutions.
    pub group: usize,
    /// The layer identity.
    pub layer: Layer,
    /// How the conv is computed (not what): chosen per layer by the
    /// `winograd` rule group and the cost model. Printed only when not
    /// [`ConvAlgo::Direct`].
    pub algo: ConvAlgo,
}

/// The algorithm of a [`Conv`]. Every algorithm computes the same function;
/// they differ in f32 rounding only (Winograd within the codegen tolerance).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConvAlgo {
    /// Direct / im2col-GEMM convolution.
    #[default]
    Direct,
    /// Direct convolution that no rewrite may replace by an algorithm with
    /// different rounding. The frontend uses it where the f32 conv carries
    /// integer-valued data whose sums must stay exact (ConvInteger,
    /// QLinearConv): Winograd's fractional transforms are off by ±1 there.
    /// Lowered exactly like `Direct`; printed as `exact=true`.
    Exact,
    /// Winograd F(m×m, 3×3) with `tile` = m ∈ {2, 4} output pixels per tile
    /// side; only for 2-D 3×3 stride-1 dilation-1 group-1 convs
    /// ([`Conv::winograd_eligible`]).
    Winograd {
        /// Output pixels per tile side, `m`: 2 or 4.
        tile: u8,
    },
}

impl Conv {
    /// Whether the conv with weight shape `w` (`[M, C / group, ..]`) is
    /// depthwise: one input and one output channel per group, more than
    /// one group.
    pub fn is_depthwise(&self, w: &[usize]) -> bool {
        self.group > 1 && w.first() == Some(&self.group) && w.get(1) == Some(&1)
    }
    /// This 2-D depthwise conv's plane (weight shape `w`, NCHW input and
    /// output shapes `x`, `y`), or `None` for any other conv.
    pub fn depthwise_plane(&self, w: &[usize], x: &[usize], y: &[usize]) -> Option<crate::DepthwisePlane> {
        let wd = &self.window;
        if !self.is_depthwise(w) || wd.rank() != 2 || w.len() != 4 || x.len() != 4 || y.len() != 4 {
            return None;
        }
        let (s, d) = (&wd.strides, &wd.dilations);
        Some(crate::DepthwisePlane {
            h: x[2],
            w: x[3],
            oh: y[2],
            ow: y[3],
            kh: w[2],
            kw: w[3],
            sh: s[0],
            sw: s[1],
            dh: d[0],
            dw: d[1],
            ph: wd.pad_begin(0),
            pw: wd.pad_begin(1),
        })
    }
    /// Whether this 2-D depthwise conv suits the VNNI depthwise quad pass
    /// ([`crate::DepthwisePlane::quads_fit`]).
    pub fn on_depthwise_quads(&self, w: &[usize], x: &[usize], y: &[usize]) -> bool {
        self.depthwise_plane(w, x, y).is_some_and(|p| p.quads_fit())
    }
    /// Whether this 2-D depthwise conv suits the flat depthwise pass
    /// ([`crate::DepthwisePlane::flat_fits`]).
    pub fn on_depthwise_flat(&self, w: &[usize], x: &[usize], y: &[usize]) -> bool {
        self.depthwise_plane(w, x, y).is_some_and(|p| p.flat_fits())
    }
    /// Whether Winograd F(m×m, 3×3) computes this conv: 2-D, 3×3 kernel,
    /// stride 1, dilation 1, one group (any padding). Dtype and constant
    /// weights are the caller's to check.
    pub fn winograd_eligible(&self) -> bool {
        let w = &self.window;
        w.rank() == 2 && w.kernel == [3, 3] && w.strides == [1, 1] && w.dilations == [1, 1] && self.group == 1
    }
}

/// A 2-D convolution computed in integers: the `int8` rule group's form of
/// a conv whose input passes through an activation quantiser and whose
/// weight lies on a per-channel int8 grid. Inputs `x` (u8 `[N, C, H, W]`,
/// the quantised activation), `w` (i8 `[M, C / group, kh, kw]`), `w_scale`
/// (f32 `[M]`), `b` (f32 `[M]`)[, `residual` of the output's type]. Only
/// a depthwise one (one input and one output channel per group: `M = C =
/// group`) has padding, whose taps read `x_zp` (they add nothing); others
/// read an explicit padded `x` (`Quantize`'s pads, or a `Pad` with `x_zp`):
///
/// ```text
/// acc[n, m, p] = Σ (x − x_zp)·w            (exact, in i32)
/// y[n, m, p]   = act(f32(acc) · s[m] + b[m] + residual),   s[m] = f32(x_scale · w_scale[m])
/// ```
///
/// each step rounded to f32 in that order, so every backend computes the
/// same bits when the activation is computed exactly (none, Relu, Clip).
/// With [`QConv::res_grid`] the residual input is u8 on that grid and
/// enters as `f32(r − zp) · scale` (the integer difference is exact in
/// f32, so one rounding: `DequantizeLinear`'s value).
///
/// With [`QOut::Quant`] the output is `y` quantised (u8, see there). With
/// [`QOut::Acc`] the output is `acc` itself (i32; inputs `x` and `w`
/// only, no epilogue, `x_scale` unused): the integer core of ONNX
/// `ConvInteger` and `QLinearConv`, whose requantisation the frontend
/// writes after it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QConv {
    /// Geometry (pads all zero unless depthwise), groups and layer
    /// identity (`algo` is always `Direct`).
    pub conv: Conv,
    /// Residual and activation applied at the store.
    pub epi: Epilogue,
    /// The activation grid's step (positive, finite).
    pub x_scale: F32,
    /// The activation grid's zero point (the u8 value standing for 0).
    pub x_zp: u8,
    /// What the conv outputs.
    pub out: QOut,
    /// The residual's grid, where the residual input is u8 (`None`: it is
    /// of the real-valued output's type, f32). Only with a residual.
    pub res_grid: Option<ResGrid>,
}

/// The grid of a u8 residual ([`QConv::res_grid`]): the code `r` stands
/// for `f32(r − zp) · scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResGrid {
    /// The grid's step (positive, finite).
    pub scale: F32,
    /// The code standing for 0.
    pub zp: u8,
}

impl ResGrid {
    /// The real value of code `r`: `f32(r − zp) · scale`.
    pub fn value(self, r: u8) -> f32 {
        (i32::from(r) - i32::from(self.zp)) as f32 * self.scale.get()
    }
}

/// The output of a [`QConv`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QOut {
    /// f32: `act(f32(acc) · s[m] + b[m] + residual)`.
    #[default]
    Real,
    /// i32: `acc`, exactly.
    Acc,
    /// u8: the real-valued output `y` of [`QOut::Real`] on the next
    /// layer's activation grid, `u8(clip(round(y · f), −zp, 255 − zp) +
    /// zp)` with `f = `[`QOut::factor`]`(scale)`, each step in f32, round
    /// to nearest even: the requantising epilogue, which hands the next
    /// integer conv its input without an f32 tensor in between. A
    /// multiplication, where `Quantize` divides by the scale: the same
    /// value except where `y / scale` lies within a few ulps of a
    /// half-integer (one step apart there), and a division bounds the
    /// kernels' stores (MobileNetV2's int8 model with VNNI: 8% of its time).
    Quant {
        /// The output grid's step (positive, finite, with a finite normal
        /// reciprocal: [`QOut::factor`]).
        scale: F32,
        /// The output grid's zero point.
        zp: u8,
    },
}

/// How a real value reaches its grid's integers before rounding:
/// `Quantize` divides by the grid's step, [`QOut::Quant`] multiplies by its
/// factor ([`QOut::factor`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GridStep {
    /// Divide by the grid's step.
    Div(f32),
    /// Multiply by the grid's factor.
    Mul(f32),
}

impl GridStep {
    /// The elementwise op and its scalar operand: `Div` by the step or
    /// `Mul` by the factor.
    pub fn binary(self) -> (BinaryOp, f32) {
        match self {
            GridStep::Div(s) => (BinaryOp::Div, s),
            GridStep::Mul(f) => (BinaryOp::Mul, f),
        }
    }
}

impl QOut {
    /// Whether the output is the real-valued result (f32, or quantised to u8).
    pub fn is_real(self) -> bool {
        matches!(self, QOut::Real | QOut::Quant { .. })
    }
    /// What [`QOut::Quant`] multiplies by for a grid of step `scale`: `1 /
    /// scale` rounded to f32, where that is a finite normal number (`None`
    /// otherwise: such a grid has no requantising epilogue).
    pub fn factor(scale: f32) -> Option<f32> {
        let f = 1.0 / scale;
        (scale > 0.0 && f.is_normal()).then_some(f)
    }
    /// The requantising grid as `(factor, zp)` ([`QOut::factor`]), for
    /// [`QOut::Quant`] with a valid step.
    pub fn grid(self) -> Option<(f32, u8)> {
        match self {
            QOut::Quant { scale, zp } => QOut::factor(scale.get()).map(|f| (f, zp)),
            _ => None,
        }
    }
}

/// ONNX ConvTranspose attributes. Inputs `x, w[, b]`: `x` is `[N, C, spatial..]`, `w` is
/// `[C, M / group, kernel..]`, `b` is `[M]`. Each output extent is
/// `stride * (in - 1) + output_padding + dilation * (kernel - 1) + 1` minus both pads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConvTranspose {
    /// Kernel, strides, dilations and pads (the pads crop the full output).
    pub window: Window,
    /// Number of channel groups (ONNX `group`).
    pub group: usize,
    /// Extra cells added at the end of each spatial axis of the output (ONNX `output_padding`).
    pub output_padding: Vec<usize>,
    /// The layer identity.
    pub layer: Layer,
}

/// ONNX Gemm: `alpha * A' * B' + beta * C` on 2-D `A` and `B`, each transposed first when its flag
/// is set. Inputs `a, b[, c]`; `c` broadcasts to the `[M, N]` output.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gemm {
    /// Scale of the product (ONNX `alpha`).
    pub alpha: F32,
    /// Scale of `C` (ONNX `beta`).
    pub beta: F32,
    /// Transpose `A` first (ONNX `transA`).
    pub trans_a: bool,
    /// Transpose `B` first (ONNX `transB`).
    pub trans_b: bool,
    /// The layer identity.
    pub layer: Layer,
}

/// MaxPool and AveragePool attributes. The input is `[N, C, spatial..]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pool {
    /// Kernel, strides, dilations and pads.
    pub window: Window,
    /// Round each output extent up rather than down (ONNX `ceil_mode`); a last window that would
    /// start in the end padding is dropped.
    pub ceil_mode: bool,
    /// AveragePool only: whether padded cells count in the divisor.
    pub count_include_pad: bool,
}

/// How [`Op::Pad`] fills the padding (ONNX `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PadMode {
    /// With [`Op::Pad`]'s constant `value`.
    Constant,
    /// Mirror the input about the edge element, which is not repeated.
    Reflect,
    /// Repeat the edge element.
    Edge,
    /// Continue cyclically from the opposite end of the axis.
    Wrap,
}

/// Interpolation of a [`Resize`] (ONNX `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResizeMode {
    /// Nearest neighbour with ONNX `nearest_mode`.
    Nearest(NearestMode),
    /// (Multi-)linear interpolation.
    Linear,
    /// Cubic interpolation with coefficient [`Resize::cubic_coeff`].
    Cubic,
}

/// How nearest-neighbour [`Resize`] rounds the source coordinate (ONNX `nearest_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NearestMode {
    /// Round to nearest, halves down.
    RoundPreferFloor,
    /// Round to nearest, halves up.
    RoundPreferCeil,
    /// Round down.
    Floor,
    /// Round up.
    Ceil,
}

/// How [`Resize`] maps an output coordinate to an input one (ONNX `coordinate_transformation_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CoordMode {
    /// `(x + 0.5) / scale - 0.5`.
    HalfPixel,
    /// `(x + 0.5) / scale - 0.5`, special-cased for an output axis of length 1 (PyTorch's convention).
    PytorchHalfPixel,
    /// `x * (in - 1) / (out - 1)`: the corner pixels' centres align.
    AlignCorners,
    /// `x / scale`.
    Asymmetric,
    /// ONNX `tf_crop_and_resize`, which maps through a roi box that [`Resize`] cannot hold; the frontend
    /// lowers such resizes to other ops.
    TfCropAndResize,
    /// `HalfPixel` with an offset that centres the resized grid on the input (ONNX `half_pixel_symmetric`).
    HalfPixelSymmetric,
}

/// ONNX Resize with its scales and sizes resolved to constants; one input `x`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resize {
    /// Interpolation (ONNX `mode`, with `nearest_mode`).
    pub mode: ResizeMode,
    /// Coordinate mapping (ONNX `coordinate_transformation_mode`).
    pub coord: CoordMode,
    /// The cubic kernel's `a` (ONNX `cubic_coeff_a`, -0.75 by default); used only by cubic mode.
    pub cubic_coeff: F32,
    /// Give taps outside the input zero weight and renormalise the rest (ONNX `exclude_outside`).
    pub exclude_outside: bool,
    /// Per-axis scale used for coordinate mapping (ONNX: given scales, or
    /// `out/in` when sizes were given).
    pub scales: Vec<F32>,
    /// Resolved output shape.
    pub sizes: Vec<usize>,
}

/// Which way a recurrent op runs over the sequence (ONNX `direction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// First step to last.
    Forward,
    /// Last step to first.
    Reverse,
    /// Both, with separate weights; outputs stack the directions, forward first.
    Bidirectional,
}

impl Direction {
    /// 1, or 2 for `Bidirectional`: the leading axis of the weights and states.
    pub fn num_directions(self) -> usize {
        if self == Direction::Bidirectional {
            2
        } else {
            1
        }
    }
}

/// Activation functions of the recurrent ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Activation {
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// `max(x, 0)`.
    Relu,
    /// `alpha * x + beta`, clamped to [0, 1]
    HardSigmoid(F32, F32),
    /// `alpha * x + beta`
    Affine(F32, F32),
    /// `x < 0 ? alpha * x : x`.
    LeakyRelu(F32),
    /// `x > alpha ? x : 0`.
    ThresholdedRelu(F32),
    /// `alpha * tanh(beta * x)`.
    ScaledTanh(F32, F32),
    /// `x < 0 ? alpha * (e^x - 1) : x`.
    Elu(F32),
    /// `x / (1 + |x|)`.
    Softsign,
    /// `ln(1 + e^x)`.
    Softplus,
}

/// LSTM / GRU attributes. Inputs are always the full ONNX list with absent
/// optional inputs materialised as zero constants at import:
/// LSTM: `X W R B H0 C0 P`; GRU and RNN: `X W R B H0`; then, only where the
/// batch rows have different lengths, `L`: i32 `[batch]`, the ONNX
/// `sequence_lens` — steps `t >= L[b]` leave row `b`'s state unchanged and
/// give zeros in `Y` (so `Y_h`/`Y_c` hold the last valid step in either
/// direction; a length outside `[0, seq]` is clamped there, since a kernel
/// cannot fail). Layout is always `[seq, batch, input]` (layout=1 models
/// get transposes at import).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rnn {
    /// Hidden state size (ONNX `hidden_size`).
    pub hidden: usize,
    /// Which way the sequence is processed (ONNX `direction`).
    pub direction: Direction,
    /// ONNX `activations` with defaults filled in, per direction (forward first): LSTM's `f, g, h`,
    /// GRU's `f, g`, RNN's one.
    pub activations: Vec<Activation>,
    /// Cell clip threshold (ONNX `clip`): activation inputs are clamped to `[-clip, clip]`; `None` for
    /// no clipping.
    pub clip: Option<F32>,
    /// GRU only.
    pub linear_before_reset: bool,
    /// LSTM only.
    pub input_forget: bool,
    /// The layer identity.
    pub layer: Layer,
}

/// One operation. See the module docs for the conventions.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// An elementwise unary op.
    Unary(UnaryOp),
    /// An elementwise binary op with broadcasting.
    Binary(BinaryOp),
    /// `cond ? x : y` with broadcasting.
    Where,
    /// f32 elementwise steps in one pass over input 0 (see [`chain`]).
    Chain(Vec<ChainStep>),
    /// The requantisation of ONNX QLinearConv/QLinearMatMul with the ONNX
    /// reference's numpy semantics, in f64: inputs `acc` (i32),
    /// `mult` (f32, `[]` or `[C]` with `C` the size of `acc`'s axis `axis`)
    /// and optionally `bias` (i32, shaped like `mult`);
    /// `y = out(round_half_even(clamp((f64(acc) + f64(bias[c])) · f64(mult[c]) + zp, lo, hi)))`
    /// with `[lo, hi]` the range of `out` (an 8-bit integer type). One pass
    /// instead of the eleven elementwise ops it stands for.
    Requantize {
        /// The axis `mult` and `bias` run along (unused when they are scalars).
        axis: usize,
        /// The output zero point.
        zp: i32,
        /// The output type: u8 or i8.
        out: DType,
    },
    /// The u8 activation quantiser in one pass: by definition
    /// `Cast<u8>(Add(Clip{−zp, 255 − zp}(Round(Div(Pad{0}(x), scale))), zp))`
    /// (the reference evaluator runs exactly those ops), `x` f32, `pads` as
    /// [`Op::Pad`]'s (begin pads, then end pads) on the last two axes only.
    /// The padding reads `zp`, what a padded zero quantises to. Made by the
    /// `int8` rule group for the integer conv's input: one pass reading 4
    /// bytes and writing 1 per element instead of a pad copy, a chain and a
    /// cast.
    Quantize {
        /// The step (positive, finite).
        scale: F32,
        /// The zero point.
        zp: u8,
        /// Padding before each axis, then after each (`2 * rank` entries).
        pads: Vec<usize>,
    },
    /// ONNX Cast with default attributes (`saturate = 1`, `round_mode = up`); see
    /// [`Tensor::cast`](crate::Tensor::cast).
    Cast(DType),
    /// Reinterprets each element's bits as the given dtype of the same width
    /// (ONNX BitCast).
    BitCast(DType),
    /// ONNX Cast to a float8 type with non-default attributes: `saturate =
    /// false` (overflow gives inf/NaN instead of ±max) and/or an E8M0
    /// `round_mode` other than `up`. The frontend emits [`Op::Cast`] for the
    /// defaults, so each function has one spelling.
    CastF8 {
        /// The float8 target type.
        to: DType,
        /// ONNX `saturate`: overflow gives ±max rather than inf/NaN.
        saturate: bool,
        /// ONNX `round_mode` (E8M0 only).
        round: crate::narrow::CastRound,
    },
    /// Returns its input unchanged.
    Identity,
    /// Dropout in inference mode: the identity on its data output.
    Dropout,
    /// ONNX Conv (see [`Conv`]).
    Conv(Conv),
    /// A direct Conv with an epilogue, inputs `x, w, b[, residual]` (the
    /// bias is required): produced only by the `fusion` rule group.
    ConvFused(Conv, Epilogue),
    /// ONNX ConvTranspose (see [`ConvTranspose`]).
    ConvTranspose(ConvTranspose),
    /// A ConvTranspose with an activation, inputs `x, w[, b]`:
    /// `act(ConvTranspose(x, w[, b]))`; produced only by the `fusion` rule
    /// group. The epilogue has no residual.
    ConvTransposeFused(ConvTranspose, Epilogue),
    /// ONNX Gemm (see [`Gemm`]).
    Gemm(Gemm),
    /// NumPy-style matrix product with broadcast batch axes (ONNX MatMul); a rank-1 operand is
    /// promoted to a matrix and the added axis dropped from the result.
    MatMul(Layer),
    /// A MatMul with an epilogue, inputs `a, b, bias[, residual]`:
    /// `act(MatMul(a, b) + bias + residual)`, added in that order. `a` and
    /// `b` have rank >= 2; the bias holds one value per output column (`N`
    /// elements, shape `[.., 1, N]` broadcasting to the output); the
    /// residual has the output's type. Produced only by the `fusion` rule
    /// group.
    MatMulFused(Layer, Epilogue),
    /// A Gemm with its C input and an epilogue, inputs `a, b, c[, residual]`:
    /// `act(Gemm(a, b, c) + residual)`. Produced only by the `fusion` rule
    /// group.
    GemmFused(Gemm, Epilogue),
    /// A conv computed in integers (see [`QConv`]): produced only by the
    /// `int8` rule group.
    QConv(QConv),
    /// `(x - mean) / sqrt(var + eps) * scale + bias` over axis 1.
    BatchNorm {
        /// Added to the variance (ONNX `epsilon`).
        epsilon: F32,
    },
    /// Normalises over axes `axis..`; inputs `x, scale, bias`.
    LayerNorm {
        /// First normalised axis (ONNX `axis`, made non-negative).
        axis: usize,
        /// Added to the variance (ONNX `epsilon`).
        epsilon: F32,
    },
    /// Normalises each `(n, c)` plane over the spatial axes; inputs `x, scale, bias`, one scale and bias
    /// per channel.
    InstanceNorm {
        /// Added to the variance (ONNX `epsilon`).
        epsilon: F32,
    },
    /// `e^x / Σ e^x` along `axis` (opset-13 semantics; older models get reshapes at import).
    Softmax {
        /// The normalised axis.
        axis: usize,
    },
    /// `x - ln(Σ e^x)` along `axis` (opset-13 semantics, like [`Op::Softmax`]).
    LogSoftmax {
        /// The normalised axis.
        axis: usize,
    },
    /// ONNX MaxPool (see [`Pool`]); values only, no indices output.
    MaxPool(Pool),
    /// ONNX AveragePool (see [`Pool`]).
    AveragePool(Pool),
    /// Mean over the spatial axes of `[N, C, spatial..]`, which become length 1.
    GlobalAveragePool,
    /// Maximum over the spatial axes of `[N, C, spatial..]`, which become length 1.
    GlobalMaxPool,
    /// A reduction (ONNX `Reduce*`).
    Reduce {
        /// Which reduction.
        kind: ReduceKind,
        /// Axes to reduce; ONNX's empty "all axes" default is spelled out at import.
        axes: Vec<usize>,
        /// Keep each reduced axis with length 1 instead of dropping it (ONNX `keepdims`).
        keepdims: bool,
    },
    /// The i64 index of the largest element along `axis`.
    ArgMax {
        /// The searched axis.
        axis: usize,
        /// Keep `axis` with length 1 instead of dropping it (ONNX `keepdims`).
        keepdims: bool,
        /// On ties, the last index rather than the first (ONNX `select_last_index`).
        select_last: bool,
    },
    /// The i64 index of the smallest element along `axis`.
    ArgMin {
        /// The searched axis.
        axis: usize,
        /// Keep `axis` with length 1 instead of dropping it (ONNX `keepdims`).
        keepdims: bool,
        /// On ties, the last index rather than the first (ONNX `select_last_index`).
        select_last: bool,
    },
    /// The same elements in row-major order under a new shape.
    Reshape {
        /// The resolved output shape (no `0` or `-1` placeholders).
        shape: Vec<usize>,
    },
    /// Permutes the axes.
    Transpose {
        /// Output axis `i` is input axis `perm[i]` (ONNX `perm`).
        perm: Vec<usize>,
    },
    /// Joins the inputs along `axis`; they agree on every other axis.
    Concat {
        /// The concatenation axis.
        axis: usize,
    },
    /// Cuts the input along `axis` into one output per entry of `sizes`, in order.
    Split {
        /// The split axis.
        axis: usize,
        /// Output lengths along `axis`, summing to the input's.
        sizes: Vec<usize>,
    },
    /// Full-rank, normalised slice: for each axis, start index, end (exclusive;
    /// `-1` means "before 0" for negative steps) and step.
    Slice {
        /// Start index per axis.
        starts: Vec<i64>,
        /// End index per axis (exclusive).
        ends: Vec<i64>,
        /// Step per axis (non-zero, may be negative).
        steps: Vec<i64>,
    },
    /// ONNX Gather: indexes input 0 along `axis` with the i32/i64 indices of input 1 (negative ones
    /// count from the end); the result's shape is `x[..axis] ++ indices ++ x[axis + 1..]`.
    Gather {
        /// The indexed axis.
        axis: usize,
    },
    /// Broadcast to the resolved output shape.
    Expand {
        /// The output shape, which the input broadcasts to.
        shape: Vec<usize>,
    },
    /// Repeats the input `repeats[i]` times along each axis `i` (ONNX Tile).
    Tile {
        /// Copies per axis.
        repeats: Vec<usize>,
    },
    /// `pads`: begin pads then end pads, one per axis.
    Pad {
        /// Padding before each axis, then after each (`2 * rank` entries).
        pads: Vec<usize>,
        /// How the padding is filled (ONNX `mode`).
        mode: PadMode,
        /// Fill value of [`PadMode::Constant`] (ONNX `constant_value`).
        value: F32,
    },
    /// ONNX Resize (see [`Resize`]).
    Resize(Resize),
    /// ONNX LSTM (see [`Rnn`]); inputs `X W R B H0 C0 P [L]`, outputs `Y Y_h Y_c`.
    Lstm(Rnn),
    /// ONNX GRU (see [`Rnn`]); inputs `X W R B H0 [L]`, outputs `Y Y_h`.
    Gru(Rnn),
    /// The simple (Elman) RNN `h = f(W·x + R·h + Wb + Rb)`; inputs `X W R B H0 [L]`
    /// (as GRU's), outputs `Y Y_h`; one activation per direction.
    Rnn(Rnn),
}

impl Op {
    /// The op's name in the text format (ONNX spelling where one exists).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Where => "Where",
            Op::Chain(_) => "Chain",
            Op::Cast(_) => "Cast",
            Op::BitCast(_) => "BitCast",
            Op::CastF8 { .. } => "CastF8",
            Op::Requantize { .. } => "Requantize",
            Op::Quantize { .. } => "Quantize",
            Op::Identity => "Identity",
            Op::Dropout => "Dropout",
            Op::Conv(_) => "Conv",
            Op::ConvFused(..) => "ConvFused",
            Op::ConvTranspose(_) => "ConvTranspose",
            Op::ConvTransposeFused(..) => "ConvTransposeFused",
            Op::Gemm(_) => "Gemm",
            Op::MatMul(_) => "MatMul",
            Op::MatMulFused(..) => "MatMulFused",
            Op::GemmFused(..) => "GemmFused",
            Op::QConv(_) => "QConv",
            Op::BatchNorm { .. } => "BatchNormalization",
            Op::LayerNorm { .. } => "LayerNormalization",
            Op::InstanceNorm { .. } => "InstanceNormalization",
            Op::Softmax { .. } => "Softmax",
            Op::LogSoftmax { .. } => "LogSoftmax",
            Op::MaxPool(_) => "MaxPool",
            Op::AveragePool(_) => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::GlobalMaxPool => "GlobalMaxPool",
            Op::Reduce { kind, .. } => kind.name(),
            Op::ArgMax { .. } => "ArgMax",
            Op::ArgMin { .. } => "ArgMin",
            Op::Reshape { .. } => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Concat { .. } => "Concat",
            Op::Split { .. } => "Split",
            Op::Slice { .. } => "Slice",
            Op::Gather { .. } => "Gather",
            Op::Expand { .. } => "Expand",
            Op::Tile { .. } => "Tile",
            Op::Pad { .. } => "Pad",
            Op::Resize(_) => "Resize",
            Op::Lstm(_) => "LSTM",
            Op::Gru(_) => "GRU",
            Op::Rnn(_) => "RNN",
        }
    }

    /// The layer identity of a compute op.
    pub fn layer(&self) -> Option<&Layer> {
        match self {
            Op::Conv(c) | Op::ConvFused(c, _) | Op::QConv(QConv { conv: c, .. }) => Some(&c.layer),
            Op::ConvTranspose(c) | Op::ConvTransposeFused(c, _) => Some(&c.layer),
            Op::Gemm(g) | Op::GemmFused(g, _) => Some(&g.layer),
            Op::MatMul(l) | Op::MatMulFused(l, _) => Some(l),
            Op::Lstm(r) | Op::Gru(r) | Op::Rnn(r) => Some(&r.layer),
            _ => None,
        }
    }

    /// Number of outputs this op produces.
    pub fn num_outputs(&self) -> usize {
        match self {
            Op::Split { sizes, .. } => sizes.len(),
            Op::Lstm(_) => 3,
            Op::Gru(_) | Op::Rnn(_) => 2,
            _ => 1,
        }
    }

    /// Whether the op is elementwise over (broadcast) inputs.
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Chain(_) | Op::Cast(_) | Op::Identity | Op::Dropout
        )
    }
}
