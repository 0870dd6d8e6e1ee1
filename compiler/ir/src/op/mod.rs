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
    Neg,
    Abs,
    Sqrt,
    Reciprocal,
    Exp,
    Log,
    Erf,
    Tanh,
    Sigmoid,
    Relu,
    Floor,
    Ceil,
    Round,
    Sign,
    Not,
    Sin,
    Cos,
    Softplus,
    Softsign,
    HardSwish,
    /// Bitwise complement of an integer (ONNX BitwiseNot).
    BitwiseNot,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    /// `max(x, 0) + alpha * min(x, 0)`
    LeakyRelu {
        alpha: F32,
    },
    /// `clamp(alpha * x + beta, 0, 1)`
    HardSigmoid {
        alpha: F32,
        beta: F32,
    },
    /// `clamp(x, min, max)`; absent bounds are ±inf.
    Clip {
        min: F32,
        max: F32,
    },
    /// exact (erf) or tanh-approximated GELU.
    Gelu {
        tanh: bool,
    },
    Elu {
        alpha: F32,
    },
    Selu {
        alpha: F32,
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
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    /// Integer modulus with the sign of the divisor (ONNX `fmod=0`).
    Mod,
    /// C `fmod` (ONNX `fmod=1`).
    Fmod,
    Equal,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    And,
    Or,
    Xor,
    /// PRelu: `x < 0 ? slope * x : x` (slope is the second input).
    PRelu,
    /// Integer shifts (ONNX BitShift). The shift amount is read as unsigned;
    /// amounts ≥ the bit width give 0 (left, logical right) or the sign fill
    /// (arithmetic right on signed types).
    BitShiftLeft,
    BitShiftRight,
    /// Integer bitwise ops (ONNX BitwiseAnd/Or/Xor); `And`/`Or`/`Xor` are the
    /// logical ops on bool.
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
}

impl BinaryOp {
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
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    SumSquare,
    LogSum,
    LogSumExp,
}

impl ReduceKind {
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
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads: Vec<usize>,
}

impl Window {
    pub fn rank(&self) -> usize {
        self.kernel.len()
    }
    pub fn pad_begin(&self, i: usize) -> usize {
        self.pads[i]
    }
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

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Conv {
    pub window: Window,
    pub group: usize,
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
    Winograd { tile: u8 },
}

impl Conv {
    /// Whether Winograd F(m×m, 3×3) computes this conv: 2-D, 3×3 kernel,
    /// stride 1, dilation 1, one group (any padding). Dtype and constant
    /// weights are the caller's to check.
    pub fn winograd_eligible(&self) -> bool {
        let w = &self.window;
        w.rank() == 2 && w.kernel == [3, 3] && w.strides == [1, 1] && w.dilations == [1, 1] && self.group == 1
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConvTranspose {
    pub window: Window,
    pub group: usize,
    pub output_padding: Vec<usize>,
    pub layer: Layer,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gemm {
    pub alpha: F32,
    pub beta: F32,
    pub trans_a: bool,
    pub trans_b: bool,
    pub layer: Layer,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pool {
    pub window: Window,
    pub ceil_mode: bool,
    /// AveragePool only: whether padded cells count in the divisor.
    pub count_include_pad: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResizeMode {
    /// Nearest neighbour with ONNX `nearest_mode`.
    Nearest(NearestMode),
    Linear,
    Cubic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CoordMode {
    HalfPixel,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfCropAndResize,
    HalfPixelSymmetric,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resize {
    pub mode: ResizeMode,
    pub coord: CoordMode,
    pub cubic_coeff: F32,
    pub exclude_outside: bool,
    /// Per-axis scale used for coordinate mapping (ONNX: given scales, or
    /// `out/in` when sizes were given).
    pub scales: Vec<F32>,
    /// Resolved output shape.
    pub sizes: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Forward,
    Reverse,
    Bidirectional,
}

impl Direction {
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
    Sigmoid,
    Tanh,
    Relu,
    /// `alpha * x + beta`, clamped to [0, 1]
    HardSigmoid(F32, F32),
    /// `alpha * x`
    Affine(F32, F32),
    LeakyRelu(F32),
    ThresholdedRelu(F32),
    ScaledTanh(F32, F32),
    Elu(F32),
    Softsign,
    Softplus,
}

/// LSTM / GRU attributes. Inputs are always the full ONNX list with absent
/// optional inputs materialised as zero constants at import:
/// LSTM: `X W R B H0 C0 P`; GRU: `X W R B H0`. Layout is always
/// `[seq, batch, input]` (layout=1 models get transposes at import).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rnn {
    pub hidden: usize,
    pub direction: Direction,
    pub activations: Vec<Activation>,
    pub clip: Option<F32>,
    /// GRU only.
    pub linear_before_reset: bool,
    /// LSTM only.
    pub input_forget: bool,
    pub layer: Layer,
}

/// One operation. See the module docs for the conventions.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// `cond ? x : y` with broadcasting.
    Where,
    /// f32 elementwise steps in one pass over input 0 (see [`chain`]).
    Chain(Vec<ChainStep>),
    Cast(DType),
    /// Reinterprets each element's bits as the given dtype of the same width
    /// (ONNX BitCast).
    BitCast(DType),
    /// ONNX Cast to a float8 type with non-default attributes: `saturate =
    /// false` (overflow gives inf/NaN instead of ±max) and/or an E8M0
    /// `round_mode` other than `up`. The frontend emits [`Op::Cast`] for the
    /// defaults, so each function has one spelling.
    CastF8 {
        to: DType,
        saturate: bool,
        round: crate::narrow::CastRound,
    },
    Identity,
    /// Dropout in inference mode: the identity on its data output.
    Dropout,
    Conv(Conv),
    /// A direct Conv with an epilogue, inputs `x, w, b[, residual]` (the
    /// bias is required): produced only by the `fusion` rule group.
    ConvFused(Conv, Epilogue),
    ConvTranspose(ConvTranspose),
    Gemm(Gemm),
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
    /// `(x - mean) / sqrt(var + eps) * scale + bias` over axis 1.
    BatchNorm {
        epsilon: F32,
    },
    /// Normalises over axes `axis..`; inputs `x, scale, bias`.
    LayerNorm {
        axis: usize,
        epsilon: F32,
    },
    InstanceNorm {
        epsilon: F32,
    },
    Softmax {
        axis: usize,
    },
    LogSoftmax {
        axis: usize,
    },
    MaxPool(Pool),
    AveragePool(Pool),
    GlobalAveragePool,
    GlobalMaxPool,
    Reduce {
        kind: ReduceKind,
        axes: Vec<usize>,
        keepdims: bool,
    },
    ArgMax {
        axis: usize,
        keepdims: bool,
        select_last: bool,
    },
    ArgMin {
        axis: usize,
        keepdims: bool,
        select_last: bool,
    },
    Reshape {
        shape: Vec<usize>,
    },
    Transpose {
        perm: Vec<usize>,
    },
    Concat {
        axis: usize,
    },
    Split {
        axis: usize,
        sizes: Vec<usize>,
    },
    /// Full-rank, normalised slice: for each axis, start index, end (exclusive;
    /// `-1` means "before 0" for negative steps) and step.
    Slice {
        starts: Vec<i64>,
        ends: Vec<i64>,
        steps: Vec<i64>,
    },
    Gather {
        axis: usize,
    },
    /// Broadcast to the resolved output shape.
    Expand {
        shape: Vec<usize>,
    },
    Tile {
        repeats: Vec<usize>,
    },
    /// `pads`: begin pads then end pads, one per axis.
    Pad {
        pads: Vec<usize>,
        mode: PadMode,
        value: F32,
    },
    Resize(Resize),
    Lstm(Rnn),
    Gru(Rnn),
    /// The simple (Elman) RNN `h = f(W·x + R·h + Wb + Rb)`; inputs `X W R B H0`
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
            Op::Identity => "Identity",
            Op::Dropout => "Dropout",
            Op::Conv(_) => "Conv",
            Op::ConvFused(..) => "ConvFused",
            Op::ConvTranspose(_) => "ConvTranspose",
            Op::Gemm(_) => "Gemm",
            Op::MatMul(_) => "MatMul",
            Op::MatMulFused(..) => "MatMulFused",
            Op::GemmFused(..) => "GemmFused",
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
            Op::Conv(c) | Op::ConvFused(c, _) => Some(&c.layer),
            Op::ConvTranspose(c) => Some(&c.layer),
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
