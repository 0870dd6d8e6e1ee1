//! The convolution family's attributes: the [`Window`] geometry shared with
//! the pools, the fused [`Epilogue`], [`Conv`] with its [`ConvAlgo`], the
//! integer [`QConv`] with its output forms ([`QOut`], [`ResGrid`],
//! [`GridStep`]), and [`ConvTranspose`].

use super::{BinaryOp, Layer, UnaryOp};
use crate::attr::F32;

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

/// What a fused conv ([`Op::ConvFused`](super::Op::ConvFused)) or matrix product
/// ([`Op::MatMulFused`](super::Op::MatMulFused), [`Op::GemmFused`](super::Op::GemmFused)) does to each output before it is
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
