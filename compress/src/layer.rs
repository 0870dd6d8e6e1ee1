//! The layers compression can change, and their weights as a matrix.
//!
//! Every lossy transform solves the same per-layer problem (see the crate
//! docs): `W` is the layer's weight as `[rows = output channels, cols]`, `X`
//! its input as columns of length `cols` (im2col patches for a conv), and the
//! error is `‖W X − Ŵ X‖²`. [`Site`] maps a Conv, ConvTranspose, Gemm or
//! MatMul node with a constant weight onto that form and back.

use kerf_ir::{Graph, Op, Tensor, ValueDef, ValueId, WeightId};

use crate::CompressError;

/// What kind of product a layer is.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// N-d convolution: weight `[O, I/group, k...]`, one matrix per group.
    Conv {
        /// Number of groups (divides both channel counts).
        group: usize,
        /// Kernel extent per spatial axis.
        kernel: Vec<usize>,
        /// Stride per spatial axis.
        strides: Vec<usize>,
        /// Dilation per spatial axis.
        dilations: Vec<usize>,
        /// Zero padding: the begin of every spatial axis, then the end of
        /// every spatial axis (ONNX order).
        pads: Vec<usize>,
    },
    /// N-d transposed convolution of one group: weight `[I, O, k...]`, so
    /// output channel `o`'s row is `W[i, o, taps]` over `(i, taps)`; its
    /// columns are, per output pixel, the input values each tap reads
    /// there (zero where a tap reaches no input pixel:
    /// [`crate::hessian::columns`]).
    ConvTranspose {
        /// Kernel extent per spatial axis.
        kernel: Vec<usize>,
        /// Stride per spatial axis.
        strides: Vec<usize>,
        /// Dilation per spatial axis.
        dilations: Vec<usize>,
        /// The pads cropping the full output: begins, then ends.
        pads: Vec<usize>,
        /// The output's spatial extent.
        out: Vec<usize>,
    },
    /// `A·B` with B constant `[K, N]` (MatMul, or Gemm without `transB`).
    MatMulKn,
    /// `A·Bᵀ` with B constant `[N, K]` (Gemm with `transB`).
    MatMulNk,
}

impl Kind {
    /// The taps of one input channel's kernel (`Πk` for a conv, 1 otherwise).
    pub fn kernel_area(&self) -> usize {
        match self {
            Kind::Conv { kernel, .. } | Kind::ConvTranspose { kernel, .. } => kernel.iter().product(),
            _ => 1,
        }
    }
}

/// A compressible layer: a node with a constant f32 weight.
#[derive(Clone, Debug)]
pub struct Site {
    /// The node's index in the graph.
    pub node: usize,
    /// The layer name plans address.
    pub layer: String,
    /// What kind of product the node is.
    pub kind: Kind,
    /// The activation input.
    pub input: ValueId,
    /// The weight value (the node's input 1, a constant).
    pub weight_value: ValueId,
    /// The weight's entry in the graph's weight table.
    pub weight: WeightId,
    /// Output channels (`rows` of the matrix form).
    pub rows: usize,
    /// Inputs per output channel (`cols`: `I/group · Πk` for convs, `K`).
    pub cols: usize,
}

impl Site {
    /// Groups of a conv (1 otherwise); each group's rows see only its own
    /// input channels, so each has its own Hessian.
    pub fn groups(&self) -> usize {
        match &self.kind {
            Kind::Conv { group, .. } => *group,
            _ => 1,
        }
    }

    /// The taps of one input channel's kernel ([`Kind::kernel_area`]).
    pub fn kernel_area(&self) -> usize {
        self.kind.kernel_area()
    }

    /// Where entry `k` of output channel `o`'s row lies in the weight
    /// tensor (row-major).
    fn at(&self, o: usize, k: usize) -> usize {
        match self.kind {
            Kind::Conv { .. } | Kind::MatMulNk => o * self.cols + k,
            Kind::MatMulKn => k * self.rows + o,
            Kind::ConvTranspose { .. } => {
                let area = self.kernel_area();
                ((k / area) * self.rows + o) * area + k % area
            }
        }
    }

    /// Multiply-accumulates per inference: every output element costs
    /// `cols` of them (conv and product alike); a transposed conv's every
    /// input element `rows · Πk`.
    pub fn macs(&self, g: &Graph) -> usize {
        if let Kind::ConvTranspose { .. } = self.kind {
            // every input element meets every tap of every output channel
            return g.ty(self.input).shape.iter().product::<usize>() * self.rows * self.kernel_area();
        }
        let out = g.nodes[self.node].outputs[0];
        g.ty(out).shape.iter().product::<usize>() * self.cols
    }

    /// The weight as row-major `[rows][cols]` f64.
    pub fn rows_of(&self, w: &Tensor) -> Vec<Vec<f64>> {
        let v = w.to_f64_vec();
        match self.kind {
            Kind::Conv { .. } | Kind::MatMulNk => v.chunks(self.cols).map(|r| r.to_vec()).collect(),
            _ => (0..self.rows).map(|o| (0..self.cols).map(|k| v[self.at(o, k)]).collect()).collect(),
        }
    }

    /// The inverse of [`Site::rows_of`]: a tensor of the weight's shape.
    pub fn tensor_of(&self, rows: &[Vec<f64>], like: &Tensor) -> Result<Tensor, CompressError> {
        let mut v = vec![0f32; self.rows * self.cols];
        for (o, r) in rows.iter().enumerate() {
            for (k, &x) in r.iter().enumerate() {
                v[self.at(o, k)] = x as f32;
            }
        }
        Tensor::from_f32(like.shape().to_vec(), &v).map_err(|e| CompressError::layer(&self.layer, e.to_string()))
    }

    /// The axis of the weight tensor that indexes output channels.
    pub fn channel_axis(&self) -> usize {
        match self.kind {
            Kind::Conv { .. } | Kind::MatMulNk => 0,
            Kind::MatMulKn | Kind::ConvTranspose { .. } => 1,
        }
    }
}

/// Whether weight `w` is read by node `node` alone (a layer whose weight
/// another node shares cannot be compressed or rescaled on its own).
pub fn sole_reader(g: &Graph, node: usize, w: kerf_ir::WeightId) -> bool {
    g.nodes.iter().enumerate().all(|(i, n)| {
        i == node || !n.inputs.iter().any(|&v| matches!(g.value(v).def, kerf_ir::ValueDef::Const(x) if x == w))
    })
}

/// Every compressible layer of `g`, in node order: Conv (f32, constant
/// weight), ConvTranspose of one group (f32, constant weight), Gemm with a
/// constant 2-D B and `alpha` applied outside the weight, MatMul with a
/// constant 2-D B. Others are left alone (and not listed, so a plan cannot
/// name them).
pub fn sites(g: &Graph) -> Vec<Site> {
    g.nodes.iter().enumerate().filter_map(|(i, n)| site(g, i, n)).collect()
}

fn site(g: &Graph, node: usize, n: &kerf_ir::Node) -> Option<Site> {
    let (layer, kind) = match &n.op {
        Op::Conv(c) => {
            let w = &c.window;
            let kind = Kind::Conv {
                group: c.group,
                kernel: w.kernel.clone(),
                strides: w.strides.clone(),
                dilations: w.dilations.clone(),
                pads: w.pads.clone(),
            };
            (c.layer.0.clone(), kind)
        }
        Op::ConvTranspose(c) if c.group == 1 => {
            let w = &c.window;
            let out = g.ty(*n.outputs.first()?).shape.get(2..)?.to_vec();
            let kind = Kind::ConvTranspose {
                kernel: w.kernel.clone(),
                strides: w.strides.clone(),
                dilations: w.dilations.clone(),
                pads: w.pads.clone(),
                out,
            };
            (c.layer.0.clone(), kind)
        }
        Op::Gemm(gm) if !gm.trans_a => (gm.layer.0.clone(), if gm.trans_b { Kind::MatMulNk } else { Kind::MatMulKn }),
        Op::MatMul(l) => (l.0.clone(), Kind::MatMulKn),
        _ => return None,
    };
    let (&input, &weight_value) = (n.inputs.first()?, n.inputs.get(1)?);
    let ValueDef::Const(weight) = g.value(weight_value).def else { return None };
    let wt = g.weights.tensor(weight);
    if wt.dtype() != kerf_ir::DType::F32 || g.ty(input).dtype != kerf_ir::DType::F32 {
        return None;
    }
    let s = wt.shape();
    let (rows, cols) = match &kind {
        Kind::Conv { .. } if s.len() >= 3 => (s[0], s[1..].iter().product()),
        Kind::ConvTranspose { .. } if s.len() >= 3 => (s[1], s[0] * s[2..].iter().product::<usize>()),
        Kind::MatMulKn if s.len() == 2 => (s[1], s[0]),
        Kind::MatMulNk if s.len() == 2 => (s[0], s[1]),
        _ => return None,
    };
    if rows == 0 || cols == 0 {
        return None;
    }
    Some(Site { node, layer, kind, input, weight_value, weight, rows, cols })
}
