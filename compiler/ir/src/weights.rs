//! The weight table: every constant tensor of a graph, addressed by id.
//!
//! Ops and e-graph nodes only hold a [`WeightId`]; the tensor bytes live here
//! once. A weight also records where it came from and how it is stored, so
//! compression passes can attach pattern-pruned layouts without a new IR.

use crate::{DType, IrError, Tensor};

/// Index of a weight in a [`WeightTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WeightId(pub u32);

/// Where a constant came from. `params` in reports counts only float
/// initializers and float `Constant` nodes of more than one element, the
/// way model zoos count parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// An ONNX initializer.
    Initializer,
    /// An ONNX `Constant` node.
    ConstantNode,
    /// Computed by the compiler (folding, materialised defaults, rewrites).
    Derived,
}

/// How a weight's non-zeros are laid out. Dense is the only form the
/// frontend produces; the pruning passes produce the others. The tensor bytes
/// always hold the full dense values (zeros included), so every consumer can
/// ignore the layout and stay correct; kernels that know the layout skip work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sparsity {
    /// No recorded structure: what the frontend produces.
    Dense,
    /// PatDNN pattern pruning of a `[O, I, kh, kw]` conv weight: each kernel
    /// either keeps exactly the positions of one of `patterns` (a bitmask over
    /// `kh*kw` positions, row-major) or is removed (connectivity pruning).
    Pattern {
        /// Kernel extent `[kh, kw]`.
        kernel: [usize; 2],
        /// The distinct masks of kept positions (bit `i` is row-major position `i`).
        patterns: Vec<u32>,
        /// One entry per `(o, i)` kernel: index into `patterns`, or `None`
        /// for a removed kernel.
        assignment: Vec<Option<u8>>,
    },
    /// Unstructured sparsity: only the count is recorded; the zeros are in the
    /// data.
    Unstructured {
        /// Upper bound on the number of non-zero elements (checked by [`Sparsity::validate`]).
        nonzeros: usize,
    },
}

/// Most distinct kernel masks [`Sparsity::detect`] accepts: each is one
/// specialised loop in a pattern kernel.
pub(crate) const MAX_KERNEL_MASKS: usize = 32;

/// Most weights a pointwise conv may keep for the pattern kernel to beat
/// the dense GEMM with the assembled tiles
/// ([`Sparsity::pattern_beats_dense`]): 2:4 sparsity (half) stays
/// dense, 1:4 and 3:8 run sparse.
pub const POINTWISE_DENSITY_MAX: f64 = 0.4;

impl Sparsity {
    /// Whether a conv with this pattern layout and an output plane of
    /// `pixels` should run on the pattern kernel rather than be offered
    /// Winograd (`false` for any other layout).
    /// The pattern kernel makes one pass over the output plane per kept
    /// kernel: on small planes the pass overhead dominates, on large ones
    /// Winograd F(4x4) does about as few multiplies at higher efficiency.
    /// Measured (AMD EPYC, 1 thread, patterns 8 + 50% connectivity, about
    /// 22% of weights kept): 14x14 (mnist_cnn conv2) 0.030 ms pattern vs
    /// 0.040 ms dense, 28x28 (conv1) 0.0095 vs 0.0167; 7x7 (conv3) 0.036 vs
    /// 0.025; 56x56 with 64 channels 2.74 ms vs 2.33 ms Winograd.
    ///
    /// With AVX2 (`wide`: the assembled register tiles) it wins on every
    /// plane size at 22% of the weights kept (4 of 9 taps, 50%
    /// connectivity): 64 channels on 56x56 1.21–1.36 vs
    /// 1.62–1.72 ms Winograd, 128 on 28x28 1.12–1.20 vs 1.43–1.51, 256 on
    /// 14x14 1.21 vs 1.46, 512 on 7x7 1.08 vs 2.46 (dense packed). At 33%
    /// kept (25% connectivity) resnet18's 56x56 and 28x28 layers ran ~30%
    /// slower than Winograd: the pattern kernels do the kept MACs at
    /// ~40 GFLOP/s, Winograd the dense layer at ~140–170 GFLOP/s-equivalent,
    /// so it needs the fraction of weights kept at most 1/4.
    pub fn pattern_beats_winograd(&self, pixels: usize, wide: bool) -> bool {
        let Sparsity::Pattern { .. } = self else { return false };
        if !wide {
            return (64..=1024).contains(&pixels);
        }
        self.density() <= 0.25
    }

    /// Whether a conv with this pattern layout should run on the pattern
    /// kernel rather than the dense direct kernels (`false` for any other
    /// layout; Winograd is decided apart, [`Sparsity::pattern_beats_winograd`]).
    /// Kernels of several taps always (the dense direct conv does every
    /// tap). A pointwise (1x1) layout (kernels kept or removed: connectivity
    /// or N:M sparsity) competes with the dense pointwise GEMM: with the
    /// assembled register tiles (`wide`) the dense
    /// GEMM runs near the FMA peak and the pattern tiles do the kept MACs
    /// at 40–60% of it, so the pattern kernel needs at most
    /// [`POINTWISE_DENSITY_MAX`] of the weights kept. Measured (AMD EPYC
    /// Zen 4, 1 thread, `kerf bench`, ms, dense → 25% / 37.5% / 50% kept):
    /// 256 channels on 28x28 0.92 → 0.54 / 0.81 / 1.07; 128 on 56x56
    /// 0.95 → 0.61 / 0.85 / 1.20; 64 on 112x112 1.04 → 0.61 / 0.82 / 1.09;
    /// 512 on 7x7 0.245 → 0.139 / 0.190. Without the tiles the 128-bit
    /// passes beat the 128-bit GEMM even at half kept (256 on 28x28: 3.67
    /// dense, 2.86 at 50%, 1.56 at 25%).
    pub fn pattern_beats_dense(&self, wide: bool) -> bool {
        let Sparsity::Pattern { kernel, .. } = self else { return false };
        let pointwise = kernel[0] * kernel[1] == 1;
        !pointwise || !wide || self.density() <= POINTWISE_DENSITY_MAX
    }

    /// The fraction of a pattern layout's kernel taps that are kept (1 for
    /// any other layout).
    pub fn density(&self) -> f64 {
        let Sparsity::Pattern { kernel, patterns, assignment } = self else { return 1.0 };
        let kept: u32 =
            assignment.iter().flatten().map(|&p| patterns.get(p as usize).map_or(0, |m| m.count_ones())).sum();
        f64::from(kept) / (assignment.len() * kernel[0] * kernel[1]).max(1) as f64
    }

    /// The pattern layout a `[O, I, kh, kw]` f32 conv weight already has:
    /// at most half of its weights non-zero, every kernel's non-zeros
    /// within one of at most [`MAX_KERNEL_MASKS`] tap masks (any shape),
    /// all-zero kernels removed. A kernel whose non-zeros are a strict
    /// subset of another kernel's takes that kernel's mask (a kept weight
    /// int8 rounding made zero, say: one zero multiplied, not a mask of its
    /// own), so the masks are the maximal ones. `None` for a dense or
    /// unstructured weight, or a kernel of more than 25 taps. This is how
    /// code generation recognises a pattern-pruned layer, whoever pruned it
    /// (kerf's compress stage or a training-time tool).
    pub fn detect(t: &Tensor) -> Option<Sparsity> {
        let s = t.shape();
        if s.len() != 4 || !t.dtype().is_float() || s[2] * s[3] > 25 || t.numel() == 0 {
            return None;
        }
        let area = s[2] * s[3];
        let v = t.to_f32_vec();
        let nonzero = v.iter().filter(|x| **x != 0.0).count();
        if 2 * nonzero > v.len() {
            return None;
        }
        let masks: Vec<u32> = v
            .chunks(area)
            .map(|kernel| kernel.iter().enumerate().fold(0u32, |m, (i, x)| if *x != 0.0 { m | 1 << i } else { m }))
            .collect();
        let distinct = distinct_masks(&masks);
        // (an unstructured weight has about as many masks as kernels: give
        // up before the quadratic subset test)
        if distinct.len() > 16 * MAX_KERNEL_MASKS {
            return None;
        }
        let patterns = maximal_masks(&distinct);
        if patterns.len() > MAX_KERNEL_MASKS {
            return None;
        }
        let assignment = masks
            .iter()
            .map(|&m| if m == 0 { None } else { patterns.iter().position(|&p| within(m, p)).map(|i| i as u8) })
            .collect::<Vec<_>>();
        Some(Sparsity::Pattern { kernel: [s[2], s[3]], patterns, assignment })
    }

    /// Checks that the recorded layout is consistent with the tensor: the
    /// pattern assignment covers every kernel and the data is zero outside the
    /// kept positions.
    pub fn validate(&self, t: &Tensor) -> Result<(), IrError> {
        let bad = |msg: String| Err(IrError::Invalid(format!("weight layout: {msg}")));
        match self {
            Sparsity::Dense => Ok(()),
            Sparsity::Unstructured { nonzeros } => {
                let nz = (0..t.numel()).filter(|&i| t.get_f64(i) != 0.0).count();
                if nz > *nonzeros {
                    return bad(format!("{nz} non-zeros, layout claims at most {nonzeros}"));
                }
                Ok(())
            }
            Sparsity::Pattern { kernel, patterns, assignment } => {
                let s = t.shape();
                if s.len() != 4 || s[2] != kernel[0] || s[3] != kernel[1] {
                    return bad(format!("pattern layout for {kernel:?} kernels on shape {s:?}"));
                }
                if assignment.len() != s[0] * s[1] {
                    return bad(format!("{} assignments for {} kernels", assignment.len(), s[0] * s[1]));
                }
                let area = kernel[0] * kernel[1];
                for (k, a) in assignment.iter().enumerate() {
                    let mask = match a {
                        None => 0u32,
                        Some(p) => match patterns.get(*p as usize) {
                            Some(m) => *m,
                            None => return bad(format!("kernel {k} uses pattern {p} of {}", patterns.len())),
                        },
                    };
                    for pos in 0..area {
                        if mask & (1 << pos) == 0 && t.get_f64(k * area + pos) != 0.0 {
                            return bad(format!("kernel {k} is non-zero at pruned position {pos}"));
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// A `[O, I, kh, kw]` conv weight as the integer pattern kernel reads it:
/// input channels in *quads* (`4q..4q + 4`, the last one padded with zero
/// channels), each output channel's quad a union of kept taps, the taps
/// any of its four kernels keeps. One byte-quad dot product per kept tap
/// computes a quad's four kernels at once, so the kernel's work is
/// [`ChannelQuads::taps`] dot products per output pixel. Pattern pruning
/// with the pattern shared by each quad (`pattern_group = 4`) makes every
/// union one 4-tap pattern; a layer pruned kernel by kernel has unions of
/// several patterns, and the dense integer GEMM or the f32 pattern kernel
/// serve it better ([`ChannelQuads::pays`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelQuads {
    /// Kernel extent `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Quads of input channels, `ceil(I / 4)`.
    pub quads: usize,
    /// `[o][quad]`: the union of the quad's kept taps (bit `i` is row-major
    /// tap `i`; 0 when all four kernels are removed), or the first larger
    /// union that contains it.
    pub unions: Vec<u32>,
}

impl ChannelQuads {
    /// The quads of a 4-D weight of any numeric dtype with kernels of at
    /// most 25 taps; `None` otherwise.
    pub fn of(t: &Tensor) -> Option<ChannelQuads> {
        let s = t.shape();
        if s.len() != 4 || s[2] * s[3] > 25 || t.numel() == 0 {
            return None;
        }
        let (oc, ic, area) = (s[0], s[1], s[2] * s[3]);
        let quads = ic.div_ceil(4);
        let v = t.to_f64_vec();
        let mut unions = vec![0u32; oc * quads];
        for (k, kernel) in v.chunks(area).enumerate() {
            let (o, c) = (k / ic, k % ic);
            for (tap, x) in kernel.iter().enumerate() {
                if *x != 0.0 {
                    unions[o * quads + c / 4] |= 1 << tap;
                }
            }
        }
        // a union inside another one takes that one (a weight int8 rounding
        // made zero: one zero multiplied, not a set of its own), as `detect` does
        let maximal = maximal_masks(&distinct_masks(&unions));
        for u in unions.iter_mut().filter(|u| **u != 0) {
            *u = maximal.iter().copied().find(|&p| within(*u, p)).unwrap_or(*u);
        }
        Some(ChannelQuads { kernel: [s[2], s[3]], quads, unions })
    }

    /// Whether the integer pattern kernel's x86 tiles add a u8 residual
    /// (`crate::op::QConv::res_grid`) to this conv: with an f32 output at
    /// any stride, with a u8 one (`bytes_out`) only at stride 1, where the
    /// tiles' program has column entries only and a register is left for
    /// the residual's address. The code generator and the `int8` rules
    /// both ask this (AArch64's `sdot` tile takes no u8 residual at all).
    pub fn u8_residual_fits(conv: &crate::op::Conv, bytes_out: bool) -> bool {
        !bytes_out || conv.window.strides.iter().all(|&s| s == 1)
    }

    /// The quads of a conv's i8 weight `codes` when the integer pattern
    /// kernel can compute it: one group, 2-D, stride 1 or 2, with a
    /// `saturating` dot product (AVX2's `vpmaddubsw`; not AVX-512 VNNI's
    /// `vpdpbusd`) channel pairs that cannot saturate it
    /// ([`crate::channel_pairs_exact`]), and few enough kept taps
    /// ([`ChannelQuads::pays`]). The code generator (which also needs its
    /// assembled tiles, AVX2 or AArch64 `dotprod`, and an epilogue they
    /// apply), the `int8` rule group and
    /// the extractor's price of the conv all ask this.
    pub fn of_integer_conv(conv: &crate::op::Conv, codes: &Tensor, saturating: bool) -> Option<ChannelQuads> {
        let wd = &conv.window;
        let stride = |v: usize| wd.strides.iter().all(|&s| s == v);
        let simple = conv.group == 1 && wd.rank() == 2 && (stride(1) || stride(2));
        if !simple || (saturating && !crate::channel_pairs_exact(codes)) {
            return None;
        }
        ChannelQuads::of(codes).filter(ChannelQuads::pays)
    }

    /// Dot products per output pixel: the kept taps of every union.
    pub fn taps(&self) -> usize {
        self.unions.iter().map(|u| u.count_ones() as usize).sum()
    }

    /// The fraction of the dense layer's multiply-adds the kernel does
    /// (padding channels count as work).
    pub fn density(&self) -> f64 {
        self.taps() as f64 / (self.unions.len() * self.kernel[0] * self.kernel[1]).max(1) as f64
    }

    /// Whether the integer pattern kernel beats the dense integer GEMM on
    /// this weight: at most half of the multiply-adds. Measured on a
    /// 64-channel 56x56 layer (AMD EPYC Zen 3, 1 thread, 4 of 9 taps shared
    /// per quad): 0.35 ms at 22% density, 0.51 ms at 33%, 0.86 ms at 44%,
    /// against 1.5–1.6 ms for the dense byte tile; see
    /// `docs/compression.md`, "The integer pattern kernel". At most
    /// [`MAX_KERNEL_MASKS`] distinct unions: kernels pruned one by one give
    /// quads of hundreds of different unions (a pattern kernel's masks are
    /// few by construction), which the f32 pattern kernel serves.
    pub fn pays(&self) -> bool {
        self.density() <= 0.5 && self.patterns().len() <= MAX_KERNEL_MASKS
    }

    /// The distinct unions of kept taps (the maximal ones), ascending: the
    /// integer pattern kernel's masks.
    pub fn patterns(&self) -> Vec<u32> {
        distinct_masks(&self.unions)
    }
}

/// The distinct non-zero tap masks of `masks`, ascending.
fn distinct_masks(masks: &[u32]) -> Vec<u32> {
    let mut distinct: Vec<u32> = masks.iter().copied().filter(|&m| m != 0).collect();
    distinct.sort_unstable();
    distinct.dedup();
    distinct
}

/// Whether tap mask `m` lies within mask `p`.
fn within(m: u32, p: u32) -> bool {
    m & !p == 0
}

/// The masks of `distinct` ([`distinct_masks`]) that no other one
/// contains, ascending.
fn maximal_masks(distinct: &[u32]) -> Vec<u32> {
    distinct.iter().copied().filter(|&m| !distinct.iter().any(|&p| p != m && within(m, p))).collect()
}

/// The grid of an integer value: `real = scale · (q − zero_point)`, per
/// tensor (`axis = None`, one-element scale and zero point of shape `[]`)
/// or per channel along `axis` (both 1-D, one element per channel). Scale
/// and zero point are weights: the zero point has the value's dtype, the
/// scale a float type. See ARCHITECTURE ("Quantised values") for who
/// produces and who may rely on it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Quant {
    /// `None` per tensor, else the channel axis of the value.
    pub axis: Option<usize>,
    /// Weight holding the float scale(s).
    pub scale: WeightId,
    /// Weight holding the zero point(s), of the value's dtype.
    pub zero_point: WeightId,
}

impl Quant {
    /// Whether two grids are the same function from integers to reals:
    /// same axis, same scale and zero point contents (the weights may be
    /// different copies).
    pub fn same_grid(&self, other: &Quant, weights: &WeightTable) -> bool {
        self.axis == other.axis
            && weights.tensor(self.scale) == weights.tensor(other.scale)
            && weights.tensor(self.zero_point) == weights.tensor(other.zero_point)
    }

    /// Checks the grid against the type it annotates: an integer dtype,
    /// the zero point of that dtype, a float scale, both scalars (per
    /// tensor) or 1-D of the channel count along `axis`.
    pub fn validate(&self, dtype: crate::DType, shape: &[usize], weights: &WeightTable) -> Result<(), IrError> {
        let bad = |msg: String| Err(IrError::Invalid(format!("quantisation of a {dtype}{shape:?} value: {msg}")));
        if !dtype.is_int() {
            return bad("only integer values carry a grid".into());
        }
        let (s, z) = (weights.tensor(self.scale), weights.tensor(self.zero_point));
        if !s.dtype().is_float() {
            return bad(format!("the scale is {}, not a float", s.dtype()));
        }
        if z.dtype() != dtype {
            return bad(format!("the zero point is {}, not {dtype}", z.dtype()));
        }
        let want: Vec<usize> = match self.axis {
            None => vec![],
            Some(a) if a < shape.len() => vec![shape[a]],
            Some(a) => return bad(format!("axis {a} is out of range")),
        };
        if s.shape() != want.as_slice() || z.shape() != want.as_slice() {
            return bad(format!("scale {:?} and zero point {:?}, expected {want:?}", s.shape(), z.shape()));
        }
        Ok(())
    }
}

/// The int8 grid a float weight's values lie on, recorded by the compress
/// stage's weight quantisation: along `axis`, slice `c` holds exactly
/// `f32(q · scales[c])` for integers `q` in `[-128, 127]` (one rounding of
/// the product). The data stays the f32 values, so every consumer may
/// ignore the grid; the `int8` rule group reads it to run the layer on
/// integer kernels ([`WeightGrid::codes`]).
#[derive(Clone, Debug, PartialEq)]
pub struct WeightGrid {
    /// The per-channel axis.
    pub axis: usize,
    /// One positive, finite step per slice along `axis`.
    pub scales: Vec<f32>,
}

/// Largest [`WeightGrid`] code (the smallest is `-GRID_QMAX - 1`, which
/// other tools' symmetric grids use; kerf's own stay within ±127).
pub const GRID_QMAX: i32 = 127;

impl WeightGrid {
    /// The integer codes of `t` on this grid (row-major, like the data), or
    /// why `t` does not lie on it.
    pub fn codes(&self, t: &Tensor) -> Result<Vec<i8>, String> {
        let shape = t.shape();
        let Some(&n) = shape.get(self.axis) else {
            return Err(format!("grid axis {} is out of range for {shape:?}", self.axis));
        };
        if self.scales.len() != n {
            return Err(format!("{} grid scales for {n} channels along axis {}", self.scales.len(), self.axis));
        }
        if let Some(s) = self.scales.iter().find(|s| !(**s > 0.0 && s.is_finite())) {
            return Err(format!("grid scale {s} is not positive and finite"));
        }
        if t.dtype() != DType::F32 {
            return Err(format!("a grid describes f32 data, not {}", t.dtype()));
        }
        let inner: usize = shape[self.axis + 1..].iter().product();
        let v = t.to_f32_vec();
        let mut out = Vec::with_capacity(v.len());
        for (i, &w) in v.iter().enumerate() {
            let s = self.scales[i / inner % n];
            let q = (f64::from(w) / f64::from(s)).round_ties_even();
            // NaN fails the first test
            let in_range = (-f64::from(GRID_QMAX) - 1.0..=f64::from(GRID_QMAX)).contains(&q);
            let on_grid = in_range && ((q as f32 * s).to_bits() == w.to_bits() || w == 0.0);
            if !on_grid {
                return Err(format!("element {i} ({w}) is not f32(q · {s}) for an integer q in [-128, 127]"));
            }
            out.push(q as i8);
        }
        Ok(out)
    }

    /// Checks that `t` lies on the grid ([`WeightGrid::codes`]).
    pub fn validate(&self, t: &Tensor) -> Result<(), String> {
        self.codes(t).map(|_| ())
    }
}

/// One constant of a [`WeightTable`] with its provenance and storage layout.
#[derive(Clone, Debug)]
pub struct Weight {
    /// Source name (ONNX initializer or tensor name), or one given by the pass that made it.
    pub name: String,
    /// The full dense data.
    pub tensor: Tensor,
    /// Where the constant came from.
    pub origin: Origin,
    /// How its non-zeros are laid out; the data is dense regardless.
    pub sparsity: Sparsity,
    /// The int8 grid the values lie on, if the compress stage put them on one.
    pub grid: Option<WeightGrid>,
    /// Counted in `params`: float, more than one element, and an initializer,
    /// a `Constant` node, or derived by a pass from such weights.
    pub is_param: bool,
}

/// Every constant of a graph, each stored once and addressed by [`WeightId`].
#[derive(Clone, Debug, Default)]
pub struct WeightTable {
    weights: Vec<Weight>,
}

impl WeightTable {
    /// An empty table.
    pub fn new() -> WeightTable {
        WeightTable::default()
    }

    /// Appends a dense weight and returns its id; `is_param` is set for float initializers and `Constant`
    /// nodes of more than one element.
    pub fn add(&mut self, name: impl Into<String>, tensor: Tensor, origin: Origin) -> WeightId {
        let id = WeightId(self.weights.len() as u32);
        let is_param = origin != Origin::Derived && tensor.dtype().is_float() && tensor.numel() > 1;
        self.weights.push(Weight {
            name: name.into(),
            tensor,
            origin,
            sparsity: Sparsity::Dense,
            grid: None,
            is_param,
        });
        id
    }

    /// The weight with id `id` (panics if out of range).
    pub fn get(&self, id: WeightId) -> &Weight {
        &self.weights[id.0 as usize]
    }

    /// Mutable access to weight `id`, e.g. to record a sparsity layout.
    pub fn get_mut(&mut self, id: WeightId) -> &mut Weight {
        &mut self.weights[id.0 as usize]
    }

    /// The tensor of weight `id`.
    pub fn tensor(&self, id: WeightId) -> &Tensor {
        &self.get(id).tensor
    }

    /// Number of weights.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Whether the table holds no weights.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Every weight with its id, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (WeightId, &Weight)> {
        self.weights.iter().enumerate().map(|(i, w)| (WeightId(i as u32), w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `[o, 1, 3, 3]` weight whose kernel `i` keeps the taps of `masks[i]`.
    fn weight(masks: &[u32]) -> Tensor {
        let v: Vec<f32> =
            masks.iter().flat_map(|m| (0..9).map(move |t| if m & (1 << t) != 0 { 0.5 } else { 0.0 })).collect();
        Tensor::from_f32(vec![masks.len(), 1, 3, 3], &v).unwrap()
    }

    /// Quads of input channels: the union of the four kernels' taps, a
    /// union inside another taking that one, channels past `I` absent;
    /// the density counts the unions' taps over the padded quads.
    #[test]
    fn channel_quads_are_maximal_unions() {
        let (a, b) = (0b000_111_010u32, 0b010_010_010u32);
        // output 0: quad 0 = a ∪ (a without a tap) = a, quad 1 (channel 4 only) = b;
        // output 1: quad 0 removed, quad 1 = b without a tap -> b
        let masks = [a, a & !2, 0, a, b, 0, 0, 0, 0, 0, b & !16, 0];
        let v: Vec<f32> =
            masks.iter().flat_map(|m| (0..9).map(move |t| if m & (1 << t) != 0 { 0.5 } else { 0.0 })).collect();
        let q = ChannelQuads::of(&Tensor::from_f32(vec![2, 6, 3, 3], &v).unwrap()).unwrap();
        assert_eq!((q.quads, q.unions.clone()), (2, vec![a, b, 0, b]));
        assert_eq!(q.taps(), 4 + 3 + 3);
        assert!((q.density() - 10.0 / 36.0).abs() < 1e-12);
        assert!(q.pays());
    }

    #[test]
    fn detect_maps_subsets_to_their_masks_and_removes_empty_kernels() {
        let (a, b) = (0b000_111_010, 0b010_110_000);
        // a kernel that lost a kept tap (a subset of `a`), an empty one
        let Some(Sparsity::Pattern { patterns, assignment, .. }) = Sparsity::detect(&weight(&[a, b, a & !2, 0, b]))
        else {
            panic!("not detected")
        };
        assert_eq!(patterns, vec![b.min(a), a.max(b)]);
        let ia = patterns.iter().position(|&p| p == a).map(|i| i as u8);
        let ib = patterns.iter().position(|&p| p == b).map(|i| i as u8);
        assert_eq!(assignment, vec![ia, ib, ia, None, ib]);
    }

    /// A `[16, 32, 1, 1]` layout keeping `kept` of every 8 input channels
    /// of each output channel.
    fn pointwise(kept: usize) -> Sparsity {
        let v: Vec<f32> = (0..16 * 32).map(|i| if i % 8 < kept { 0.5 } else { 0.0 }).collect();
        Sparsity::detect(&Tensor::from_f32(vec![16, 32, 1, 1], &v).unwrap()).unwrap()
    }

    #[test]
    fn pointwise_layouts_take_the_pattern_kernel_only_when_sparse_enough() {
        let (quarter, three_eighths, half) = (pointwise(2), pointwise(3), pointwise(4));
        assert_eq!((quarter.density(), three_eighths.density(), half.density()), (0.25, 0.375, 0.5));
        // with the assembled tiles: 2:4 stays on the dense GEMM
        assert!(quarter.pattern_beats_dense(true));
        assert!(three_eighths.pattern_beats_dense(true));
        assert!(!half.pattern_beats_dense(true));
        // the 128-bit passes beat the 128-bit GEMM at half kept
        assert!(half.pattern_beats_dense(false));
        assert!(!Sparsity::Dense.pattern_beats_dense(false));
        // kernels of several taps always beat the dense direct conv
        let Sparsity::Pattern { patterns, assignment, .. } = half else { panic!("a pattern layout") };
        assert!(Sparsity::Pattern { kernel: [3, 3], patterns, assignment }.pattern_beats_dense(true));
        assert_eq!(Sparsity::Dense.density(), 1.0);
    }

    #[test]
    fn detect_refuses_dense_and_too_varied_weights() {
        assert!(Sparsity::detect(&weight(&[0b111_111_111, 0b111_111_110])).is_none(), "more than half non-zero");
        // 36 masks of two taps, none inside another
        let many: Vec<u32> = (0..9).flat_map(|i| (i + 1..9).map(move |j| (1 << i) | (1 << j))).collect();
        assert_eq!(many.len(), 36);
        assert!(Sparsity::detect(&weight(&many)).is_none(), "more than {MAX_KERNEL_MASKS} masks");
        assert!(Sparsity::detect(&weight(&many[..32])).is_some());
    }
}
