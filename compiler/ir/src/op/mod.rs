//! The operator set. Attributes are fully resolved at import: every ONNX
//! input that shapes the result (Reshape's shape, Slice's starts, Pad's pads,
//! Resize's sizes, ...) is a constant folded into an attribute, and every
//! default is explicit. Two ops that print the same compute the same function.
//!
//! Ops are plain data (`Eq + Hash`) so the e-graph can use them as node
//! payloads; tensors never live in an op, only in the weight table.

mod attrs;
pub mod chain;
mod conv;
mod elementwise;

pub use attrs::{activation_text, coord_mode_name, pad_mode_name, parse_coord_mode};
pub use chain::ChainStep;
pub use conv::{Conv, ConvAlgo, ConvTranspose, Epilogue, GridStep, QConv, QOut, ResGrid, Window};
pub use elementwise::{BinaryOp, ReduceKind, UnaryOp};

use crate::attr::F32;
use crate::DType;

/// The stable identity of a compute layer (Conv, ConvTranspose, Gemm, MatMul,
/// LSTM, GRU). Compression plans address layers by this name, so passes must
/// carry it through every rewrite of the layer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Layer(pub String);

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
