//! The elementwise and reduction kinds: [`UnaryOp`] (one input, possibly
//! float parameters), [`BinaryOp`] (two broadcasting inputs) and
//! [`ReduceKind`], each with its name and its scalar semantics.

use crate::attr::F32;

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

    pub(super) const SIMPLE: [UnaryOp; 30] = [
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
