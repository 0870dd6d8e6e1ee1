//! The operator set. Attributes are fully resolved at import: every ONNX
//! input that shapes the result (Reshape's shape, Slice's starts, Pad's pads,
//! Resize's sizes, ...) is a constant folded into an attribute, and every
//! default is explicit. Two ops that print the same compute the same function.
//!
//! Ops are plain data (`Eq + Hash`) so the e-graph can use them as node
//! payloads; tensors never live in an op, only in the weight table.

use crate::attr::{Attr, AttrMap, F32};
use crate::{DType, IrError};

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
    fn attrs(&self, out: &mut Vec<(&'static str, Attr)>) {
        out.push(("kernel", ints(&self.kernel)));
        out.push(("strides", ints(&self.strides)));
        out.push(("dilations", ints(&self.dilations)));
        out.push(("pads", ints(&self.pads)));
    }
    fn from_attrs(m: &mut AttrMap) -> Result<Window, IrError> {
        let w = Window {
            kernel: m.usizes("kernel")?,
            strides: m.usizes("strides")?,
            dilations: m.usizes("dilations")?,
            pads: m.usizes("pads")?,
        };
        let r = w.kernel.len();
        if w.strides.len() != r || w.dilations.len() != r || w.pads.len() != 2 * r {
            return Err(m.error("kernel, strides, dilations and pads (2 per axis) must agree in rank"));
        }
        if w.strides.contains(&0) || w.dilations.contains(&0) || w.kernel.contains(&0) {
            return Err(m.error("kernel, strides and dilations must be positive"));
        }
        Ok(w)
    }
}

/// What a fused conv ([`Op::ConvFused`]) does to each output before it is
/// stored: `y = act(conv(x, w, b) + residual)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Epilogue {
    /// Applied last; one of [`Epilogue::fusable`] or none.
    pub act: Option<UnaryOp>,
    /// A fourth input, of the output's type, is added before `act`.
    pub residual: bool,
}

impl Epilogue {
    /// The activations conv kernels apply in registers.
    pub fn fusable(u: UnaryOp) -> bool {
        matches!(u, UnaryOp::Relu | UnaryOp::Clip { .. } | UnaryOp::LeakyRelu { .. } | UnaryOp::HardSwish)
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

fn ints(v: &[usize]) -> Attr {
    Attr::Ints(v.iter().map(|&x| x as i64).collect())
}

fn ident(s: &str) -> Attr {
    Attr::Ident(s.to_string())
}

impl Op {
    /// The op's name in the text format (ONNX spelling where one exists).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Where => "Where",
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
            Op::Gemm(g) => Some(&g.layer),
            Op::MatMul(l) => Some(l),
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
        matches!(self, Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Cast(_) | Op::Identity | Op::Dropout)
    }

    /// The attributes in their fixed print order.
    pub fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut a = Vec::new();
        match self {
            Op::Unary(u) => match *u {
                UnaryOp::LeakyRelu { alpha } | UnaryOp::Elu { alpha } => a.push(("alpha", Attr::Float(alpha.get()))),
                UnaryOp::HardSigmoid { alpha, beta } => {
                    a.push(("alpha", Attr::Float(alpha.get())));
                    a.push(("beta", Attr::Float(beta.get())));
                }
                UnaryOp::Selu { alpha, gamma } => {
                    a.push(("alpha", Attr::Float(alpha.get())));
                    a.push(("gamma", Attr::Float(gamma.get())));
                }
                UnaryOp::Clip { min, max } => {
                    a.push(("min", Attr::Float(min.get())));
                    a.push(("max", Attr::Float(max.get())));
                }
                UnaryOp::Gelu { tanh } => a.push(("tanh", Attr::Bool(tanh))),
                _ => {}
            },
            Op::Cast(d) | Op::BitCast(d) => a.push(("to", ident(d.name()))),
            Op::CastF8 { to, saturate, round } => {
                a.push(("to", ident(to.name())));
                a.push(("saturate", Attr::Bool(*saturate)));
                a.push(("round", ident(round.name())));
            }
            Op::Conv(c) => {
                c.window.attrs(&mut a);
                a.push(("group", Attr::Int(c.group as i64)));
                a.push(("layer", Attr::Str(c.layer.0.clone())));
                match c.algo {
                    ConvAlgo::Direct => {}
                    ConvAlgo::Exact => a.push(("exact", Attr::Bool(true))),
                    ConvAlgo::Winograd { tile } => a.push(("winograd", Attr::Int(i64::from(tile)))),
                }
            }
            Op::ConvFused(c, e) => {
                c.window.attrs(&mut a);
                a.push(("group", Attr::Int(c.group as i64)));
                a.push(("layer", Attr::Str(c.layer.0.clone())));
                a.push(("act", ident(e.act.map_or("None", |u| u.name()))));
                match e.act {
                    Some(UnaryOp::Clip { min, max }) => {
                        a.push(("act_min", Attr::Float(min.get())));
                        a.push(("act_max", Attr::Float(max.get())));
                    }
                    Some(UnaryOp::LeakyRelu { alpha }) => a.push(("act_alpha", Attr::Float(alpha.get()))),
                    _ => {}
                }
                a.push(("residual", Attr::Bool(e.residual)));
            }
            Op::ConvTranspose(c) => {
                c.window.attrs(&mut a);
                a.push(("group", Attr::Int(c.group as i64)));
                a.push(("output_padding", ints(&c.output_padding)));
                a.push(("layer", Attr::Str(c.layer.0.clone())));
            }
            Op::Gemm(g) => {
                a.push(("alpha", Attr::Float(g.alpha.get())));
                a.push(("beta", Attr::Float(g.beta.get())));
                a.push(("trans_a", Attr::Bool(g.trans_a)));
                a.push(("trans_b", Attr::Bool(g.trans_b)));
                a.push(("layer", Attr::Str(g.layer.0.clone())));
            }
            Op::MatMul(l) => a.push(("layer", Attr::Str(l.0.clone()))),
            Op::BatchNorm { epsilon } | Op::InstanceNorm { epsilon } => a.push(("epsilon", Attr::Float(epsilon.get()))),
            Op::LayerNorm { axis, epsilon } => {
                a.push(("axis", Attr::Int(*axis as i64)));
                a.push(("epsilon", Attr::Float(epsilon.get())));
            }
            Op::Softmax { axis } | Op::LogSoftmax { axis } | Op::Concat { axis } | Op::Gather { axis } => {
                a.push(("axis", Attr::Int(*axis as i64)))
            }
            Op::MaxPool(p) | Op::AveragePool(p) => {
                p.window.attrs(&mut a);
                a.push(("ceil_mode", Attr::Bool(p.ceil_mode)));
                if matches!(self, Op::AveragePool(_)) {
                    a.push(("count_include_pad", Attr::Bool(p.count_include_pad)));
                }
            }
            Op::Reduce { axes, keepdims, .. } => {
                a.push(("axes", ints(axes)));
                a.push(("keepdims", Attr::Bool(*keepdims)));
            }
            Op::ArgMax { axis, keepdims, select_last } | Op::ArgMin { axis, keepdims, select_last } => {
                a.push(("axis", Attr::Int(*axis as i64)));
                a.push(("keepdims", Attr::Bool(*keepdims)));
                a.push(("select_last", Attr::Bool(*select_last)));
            }
            Op::Reshape { shape } | Op::Expand { shape } => a.push(("shape", ints(shape))),
            Op::Transpose { perm } => a.push(("perm", ints(perm))),
            Op::Split { axis, sizes } => {
                a.push(("axis", Attr::Int(*axis as i64)));
                a.push(("sizes", ints(sizes)));
            }
            Op::Slice { starts, ends, steps } => {
                a.push(("starts", Attr::Ints(starts.clone())));
                a.push(("ends", Attr::Ints(ends.clone())));
                a.push(("steps", Attr::Ints(steps.clone())));
            }
            Op::Tile { repeats } => a.push(("repeats", ints(repeats))),
            Op::Pad { pads, mode, value } => {
                a.push(("pads", ints(pads)));
                a.push(("mode", ident(pad_mode_name(*mode))));
                a.push(("value", Attr::Float(value.get())));
            }
            Op::Resize(r) => {
                a.push(("mode", ident(resize_mode_name(r.mode))));
                a.push(("coord", ident(coord_mode_name(r.coord))));
                a.push(("cubic_coeff", Attr::Float(r.cubic_coeff.get())));
                a.push(("exclude_outside", Attr::Bool(r.exclude_outside)));
                a.push(("scales", Attr::Floats(r.scales.iter().map(|s| s.get()).collect())));
                a.push(("sizes", ints(&r.sizes)));
            }
            Op::Lstm(r) | Op::Gru(r) | Op::Rnn(r) => {
                a.push(("hidden", Attr::Int(r.hidden as i64)));
                a.push(("direction", ident(direction_name(r.direction))));
                let acts: Vec<String> = r.activations.iter().map(activation_text).collect();
                a.push(("activations", Attr::Str(acts.join(","))));
                a.push(("clip", Attr::Float(r.clip.map_or(0.0, |c| c.get()))));
                if matches!(self, Op::Gru(_)) {
                    a.push(("linear_before_reset", Attr::Bool(r.linear_before_reset)));
                } else if matches!(self, Op::Lstm(_)) {
                    a.push(("input_forget", Attr::Bool(r.input_forget)));
                }
                a.push(("layer", Attr::Str(r.layer.0.clone())));
            }
            Op::Binary(_) | Op::Where | Op::Identity | Op::Dropout | Op::GlobalAveragePool | Op::GlobalMaxPool => {}
        }
        a
    }

    /// Builds an op from its text-format name and attributes.
    pub fn from_parts(name: &str, attrs: Vec<(String, Attr)>) -> Result<Op, IrError> {
        let mut m = AttrMap::new(name, attrs);
        let op = Op::from_map(name, &mut m)?;
        m.finish()?;
        Ok(op)
    }

    fn from_map(name: &str, m: &mut AttrMap) -> Result<Op, IrError> {
        if let Some(u) = UnaryOp::SIMPLE.iter().find(|u| u.name() == name) {
            return Ok(Op::Unary(*u));
        }
        if let Some(b) = BinaryOp::ALL.iter().find(|b| b.name() == name) {
            return Ok(Op::Binary(*b));
        }
        if let Some(k) = ReduceKind::ALL.iter().find(|k| k.name() == name) {
            return Ok(Op::Reduce { kind: *k, axes: m.usizes("axes")?, keepdims: m.bool("keepdims")? });
        }
        let layer = |m: &mut AttrMap| m.string("layer").map(Layer);
        Ok(match name {
            "LeakyRelu" => Op::Unary(UnaryOp::LeakyRelu { alpha: m.float("alpha")? }),
            "Elu" => Op::Unary(UnaryOp::Elu { alpha: m.float("alpha")? }),
            "HardSigmoid" => Op::Unary(UnaryOp::HardSigmoid { alpha: m.float("alpha")?, beta: m.float("beta")? }),
            "Selu" => Op::Unary(UnaryOp::Selu { alpha: m.float("alpha")?, gamma: m.float("gamma")? }),
            "Clip" => Op::Unary(UnaryOp::Clip { min: m.float("min")?, max: m.float("max")? }),
            "Gelu" => Op::Unary(UnaryOp::Gelu { tanh: m.bool("tanh")? }),
            "Where" => Op::Where,
            "BitCast" => {
                let t = m.ident("to")?;
                Op::BitCast(DType::from_name(&t).ok_or_else(|| m.error(format!("unknown dtype '{t}'")))?)
            }
            "Cast" => {
                let t = m.ident("to")?;
                Op::Cast(DType::from_name(&t).ok_or_else(|| m.error(format!("unknown dtype '{t}'")))?)
            }
            "CastF8" => {
                let t = m.ident("to")?;
                let to = DType::from_name(&t).ok_or_else(|| m.error(format!("unknown dtype '{t}'")))?;
                let saturate = m.bool("saturate")?;
                let r = m.ident("round")?;
                let round = crate::narrow::CastRound::from_name(&r)
                    .ok_or_else(|| m.error(format!("unknown round mode '{r}' (up, down, nearest)")))?;
                Op::CastF8 { to, saturate, round }
            }
            "Identity" => Op::Identity,
            "Dropout" => Op::Dropout,
            "Conv" => {
                let (window, group, layer) = (Window::from_attrs(m)?, m.usize("group")?, layer(m)?);
                let algo = match (m.opt_int("winograd")?, m.opt_bool("exact")?.unwrap_or(false)) {
                    (None, false) => ConvAlgo::Direct,
                    (None, true) => ConvAlgo::Exact,
                    (Some(_), true) => return Err(m.error("a conv is either exact or winograd, not both")),
                    (Some(t @ (2 | 4)), false) => ConvAlgo::Winograd { tile: t as u8 },
                    (Some(t), false) => return Err(m.error(format!("winograd tile must be 2 or 4, got {t}"))),
                };
                let c = Conv { window, group, layer, algo };
                if matches!(c.algo, ConvAlgo::Winograd { .. }) && !c.winograd_eligible() {
                    return Err(m.error("winograd needs a 2-D 3x3 stride-1 dilation-1 conv with one group"));
                }
                Op::Conv(c)
            }
            "ConvFused" => {
                let (window, group, layer) = (Window::from_attrs(m)?, m.usize("group")?, layer(m)?);
                let act = match m.ident("act")?.as_str() {
                    "None" => None,
                    "Relu" => Some(UnaryOp::Relu),
                    "HardSwish" => Some(UnaryOp::HardSwish),
                    "Clip" => Some(UnaryOp::Clip { min: m.float("act_min")?, max: m.float("act_max")? }),
                    "LeakyRelu" => Some(UnaryOp::LeakyRelu { alpha: m.float("act_alpha")? }),
                    other => {
                        return Err(m.error(format!("act must be None, Relu, Clip, LeakyRelu or HardSwish, got {other}")))
                    }
                };
                let residual = m.bool("residual")?;
                Op::ConvFused(Conv { window, group, layer, algo: ConvAlgo::Direct }, Epilogue { act, residual })
            }
            "ConvTranspose" => Op::ConvTranspose(ConvTranspose {
                window: Window::from_attrs(m)?,
                group: m.usize("group")?,
                output_padding: m.usizes("output_padding")?,
                layer: layer(m)?,
            }),
            "Gemm" => Op::Gemm(Gemm {
                alpha: m.float("alpha")?,
                beta: m.float("beta")?,
                trans_a: m.bool("trans_a")?,
                trans_b: m.bool("trans_b")?,
                layer: layer(m)?,
            }),
            "MatMul" => Op::MatMul(layer(m)?),
            "BatchNormalization" => Op::BatchNorm { epsilon: m.float("epsilon")? },
            "InstanceNormalization" => Op::InstanceNorm { epsilon: m.float("epsilon")? },
            "LayerNormalization" => Op::LayerNorm { axis: m.usize("axis")?, epsilon: m.float("epsilon")? },
            "Softmax" => Op::Softmax { axis: m.usize("axis")? },
            "LogSoftmax" => Op::LogSoftmax { axis: m.usize("axis")? },
            "MaxPool" => Op::MaxPool(Pool {
                window: Window::from_attrs(m)?,
                ceil_mode: m.bool("ceil_mode")?,
                count_include_pad: false,
            }),
            "AveragePool" => Op::AveragePool(Pool {
                window: Window::from_attrs(m)?,
                ceil_mode: m.bool("ceil_mode")?,
                count_include_pad: m.bool("count_include_pad")?,
            }),
            "GlobalAveragePool" => Op::GlobalAveragePool,
            "GlobalMaxPool" => Op::GlobalMaxPool,
            "ArgMax" | "ArgMin" => {
                let (axis, keepdims, select_last) = (m.usize("axis")?, m.bool("keepdims")?, m.bool("select_last")?);
                if name == "ArgMax" {
                    Op::ArgMax { axis, keepdims, select_last }
                } else {
                    Op::ArgMin { axis, keepdims, select_last }
                }
            }
            "Reshape" => Op::Reshape { shape: m.usizes("shape")? },
            "Expand" => Op::Expand { shape: m.usizes("shape")? },
            "Transpose" => Op::Transpose { perm: m.usizes("perm")? },
            "Concat" => Op::Concat { axis: m.usize("axis")? },
            "Gather" => Op::Gather { axis: m.usize("axis")? },
            "Split" => Op::Split { axis: m.usize("axis")?, sizes: m.usizes("sizes")? },
            "Slice" => Op::Slice { starts: m.ints("starts")?, ends: m.ints("ends")?, steps: m.ints("steps")? },
            "Tile" => Op::Tile { repeats: m.usizes("repeats")? },
            "Pad" => {
                let pads = m.usizes("pads")?;
                let mode = m.ident("mode")?;
                let mode = [PadMode::Constant, PadMode::Reflect, PadMode::Edge, PadMode::Wrap]
                    .into_iter()
                    .find(|p| pad_mode_name(*p) == mode)
                    .ok_or_else(|| m.error(format!("unknown pad mode '{mode}'")))?;
                Op::Pad { pads, mode, value: m.float("value")? }
            }
            "Resize" => {
                let mode = m.ident("mode")?;
                let mode = parse_resize_mode(&mode).ok_or_else(|| m.error(format!("unknown resize mode '{mode}'")))?;
                let coord = m.ident("coord")?;
                let coord =
                    parse_coord_mode(&coord).ok_or_else(|| m.error(format!("unknown coordinate mode '{coord}'")))?;
                Op::Resize(Resize {
                    mode,
                    coord,
                    cubic_coeff: m.float("cubic_coeff")?,
                    exclude_outside: m.bool("exclude_outside")?,
                    scales: m.floats("scales")?,
                    sizes: m.usizes("sizes")?,
                })
            }
            "LSTM" | "GRU" | "RNN" => {
                let hidden = m.usize("hidden")?;
                let d = m.ident("direction")?;
                let direction = [Direction::Forward, Direction::Reverse, Direction::Bidirectional]
                    .into_iter()
                    .find(|x| direction_name(*x) == d)
                    .ok_or_else(|| m.error(format!("unknown direction '{d}'")))?;
                let acts = m.string("activations")?;
                let activations = acts
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(parse_activation_text)
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| m.error(format!("bad activations '{acts}'")))?;
                let clip = m.float("clip")?;
                let clip = (clip.get() != 0.0).then_some(clip);
                let (linear_before_reset, input_forget) = if name == "GRU" {
                    (m.bool("linear_before_reset")?, false)
                } else if name == "LSTM" {
                    (false, m.bool("input_forget")?)
                } else {
                    (false, false)
                };
                let r =
                    Rnn { hidden, direction, activations, clip, linear_before_reset, input_forget, layer: layer(m)? };
                match name {
                    "GRU" => Op::Gru(r),
                    "RNN" => Op::Rnn(r),
                    _ => Op::Lstm(r),
                }
            }
            _ => return Err(IrError::UnknownOp(name.to_string())),
        })
    }
}

pub fn pad_mode_name(m: PadMode) -> &'static str {
    match m {
        PadMode::Constant => "constant",
        PadMode::Reflect => "reflect",
        PadMode::Edge => "edge",
        PadMode::Wrap => "wrap",
    }
}

fn resize_mode_name(m: ResizeMode) -> &'static str {
    match m {
        ResizeMode::Nearest(NearestMode::RoundPreferFloor) => "nearest_round_prefer_floor",
        ResizeMode::Nearest(NearestMode::RoundPreferCeil) => "nearest_round_prefer_ceil",
        ResizeMode::Nearest(NearestMode::Floor) => "nearest_floor",
        ResizeMode::Nearest(NearestMode::Ceil) => "nearest_ceil",
        ResizeMode::Linear => "linear",
        ResizeMode::Cubic => "cubic",
    }
}

fn parse_resize_mode(s: &str) -> Option<ResizeMode> {
    [
        ResizeMode::Nearest(NearestMode::RoundPreferFloor),
        ResizeMode::Nearest(NearestMode::RoundPreferCeil),
        ResizeMode::Nearest(NearestMode::Floor),
        ResizeMode::Nearest(NearestMode::Ceil),
        ResizeMode::Linear,
        ResizeMode::Cubic,
    ]
    .into_iter()
    .find(|m| resize_mode_name(*m) == s)
}

pub fn coord_mode_name(m: CoordMode) -> &'static str {
    match m {
        CoordMode::HalfPixel => "half_pixel",
        CoordMode::PytorchHalfPixel => "pytorch_half_pixel",
        CoordMode::AlignCorners => "align_corners",
        CoordMode::Asymmetric => "asymmetric",
        CoordMode::TfCropAndResize => "tf_crop_and_resize",
        CoordMode::HalfPixelSymmetric => "half_pixel_symmetric",
    }
}

pub fn parse_coord_mode(s: &str) -> Option<CoordMode> {
    [
        CoordMode::HalfPixel,
        CoordMode::PytorchHalfPixel,
        CoordMode::AlignCorners,
        CoordMode::Asymmetric,
        CoordMode::TfCropAndResize,
        CoordMode::HalfPixelSymmetric,
    ]
    .into_iter()
    .find(|m| coord_mode_name(*m) == s)
}

fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Forward => "forward",
        Direction::Reverse => "reverse",
        Direction::Bidirectional => "bidirectional",
    }
}

/// Text form of an activation: `Sigmoid`, `HardSigmoid(0.2;0.5)`, ...
pub fn activation_text(a: &Activation) -> String {
    let two = |n: &str, x: F32, y: F32| format!("{n}({:?};{:?})", x.get(), y.get());
    match *a {
        Activation::Sigmoid => "Sigmoid".into(),
        Activation::Tanh => "Tanh".into(),
        Activation::Relu => "Relu".into(),
        Activation::Softsign => "Softsign".into(),
        Activation::Softplus => "Softplus".into(),
        Activation::HardSigmoid(x, y) => two("HardSigmoid", x, y),
        Activation::Affine(x, y) => two("Affine", x, y),
        Activation::ScaledTanh(x, y) => two("ScaledTanh", x, y),
        Activation::LeakyRelu(x) => format!("LeakyRelu({:?})", x.get()),
        Activation::ThresholdedRelu(x) => format!("ThresholdedRelu({:?})", x.get()),
        Activation::Elu(x) => format!("Elu({:?})", x.get()),
    }
}

fn parse_activation_text(s: &str) -> Option<Activation> {
    let (name, args) = match s.find('(') {
        Some(p) => (&s[..p], s.get(p + 1..s.len().checked_sub(1)?)?),
        None => (s, ""),
    };
    let nums: Vec<F32> = if args.is_empty() {
        vec![]
    } else {
        args.split(';').map(|x| x.parse::<f32>().ok().map(F32::new)).collect::<Option<_>>()?
    };
    Some(match (name, nums.as_slice()) {
        ("Sigmoid", []) => Activation::Sigmoid,
        ("Tanh", []) => Activation::Tanh,
        ("Relu", []) => Activation::Relu,
        ("Softsign", []) => Activation::Softsign,
        ("Softplus", []) => Activation::Softplus,
        ("HardSigmoid", [a, b]) => Activation::HardSigmoid(*a, *b),
        ("Affine", [a, b]) => Activation::Affine(*a, *b),
        ("ScaledTanh", [a, b]) => Activation::ScaledTanh(*a, *b),
        ("LeakyRelu", [a]) => Activation::LeakyRelu(*a),
        ("ThresholdedRelu", [a]) => Activation::ThresholdedRelu(*a),
        ("Elu", [a]) => Activation::Elu(*a),
        _ => return None,
    })
}
