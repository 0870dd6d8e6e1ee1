//! The int8 grids compression produces, as plain data: what the compress
//! stage records per layer and what the ONNX exporter writes out
//! (`QuantizeLinear`/`DequantizeLinear` parameters), stated once here.

/// Per-output-channel symmetric int8 quantisation of a weight:
/// `weight[.., c, ..] == scales[c] · q` with integer `q ∈ [−127, 127]`
/// (exactly, in f32), `c` along `axis`.
#[derive(Clone, Debug, PartialEq)]
pub struct AxisQuant {
    /// The output-channel axis of the weight.
    pub axis: usize,
    /// One scale per channel along `axis`.
    pub scales: Vec<f32>,
}

/// Per-tensor asymmetric uint8 quantisation of an activation:
/// `q = clamp(round_half_even(x / scale) + zero_point, 0, 255)`,
/// `x' = (q − zero_point) · scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActQuant {
    /// Real-valued step between adjacent integer levels.
    pub scale: f32,
    /// The integer that represents real 0.
    pub zero_point: u8,
}

impl ActQuant {
    /// The grid covering `[lo, hi]` (widened to contain 0, so zero padding
    /// and Relu's zeros are exact).
    pub fn covering(lo: f64, hi: f64) -> ActQuant {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        if hi - lo <= f64::MIN_POSITIVE {
            return ActQuant { scale: 1.0, zero_point: 0 };
        }
        let scale = ((hi - lo) / 255.0) as f32;
        let zero_point = (-lo / scale as f64).round_ties_even().clamp(0.0, 255.0) as u8;
        ActQuant { scale, zero_point }
    }

    /// What `QuantizeLinear` then `DequantizeLinear` make of `x`, computed
    /// the way the compress stage's inserted graph nodes compute it (f32
    /// division; the zero point's add and subtract cancel around the clip).
    pub fn fake(&self, x: f32) -> f32 {
        let z = self.zero_point as f32;
        ((x / self.scale).round_ties_even().clamp(-z, 255.0 - z)) * self.scale
    }
}

/// Whether every u8 × s8 byte-pair sum over these weights fits i16, for any
/// u8 input: what makes AVX2's `vpmaddubsw` (which adds the products of
/// adjacent byte pairs into a *saturating* i16) exact, so an integer kernel
/// may use it instead of 16-bit pairs. `codes` holds rows of `row` weights
/// (one per output channel, in K order); the pairs are `(2j, 2j + 1)` of a
/// row, an odd row's last weight paired with a zero. The largest
/// `|x₀·a + x₁·b|` over `x ∈ [0, 255]²` is `255·(|a| + |b|)` when `a` and
/// `b` share a sign and `255·max(|a|, |b|) ≤ 255·128` otherwise, so the
/// test is `|a| + |b| ≤ 128` for same-sign pairs: every 7-bit grid
/// (`|q| ≤ 64`) passes, an 8-bit one only where its large codes never meet.
pub fn byte_pairs_exact(codes: &[i8], row: usize) -> bool {
    let fits = |a: i8, b: i8| byte_pair_partners(a).contains(&i32::from(b));
    codes.chunks(row.max(1)).all(|r| r.chunks(2).all(|p| fits(p[0], p.get(1).copied().unwrap_or(0))))
}

/// The codes `b` that make `(a, b)` an exact byte pair in
/// [`byte_pairs_exact`]'s sense: all of them when `a` is zero, those of the
/// other sign or with `|a| + |b| ≤ 128` otherwise. What a weight rounding
/// that must keep a row's pairs exact clamps a pair's second code to.
pub fn byte_pair_partners(a: i8) -> std::ops::RangeInclusive<i32> {
    let a = i32::from(a);
    (-128 - a.min(0))..=(128 - a.max(0)).min(127)
}

/// Whether the one-pixel integer product (VNNI's `qdot_gemv`, AVX2's
/// `ymm_gemv`: a `QConv` whose planes are one pixel and whose window is
/// the whole input, output channels in the lanes) takes an input of `k`
/// values in every form: the byte-quad forms read whole quads (AVX2's
/// pair form needs only whole pairs, which the code generator's choice of
/// form checks per layer). Stated here because the `int8` rules run a multi-row
/// product as such convs, one image per row, only where the product takes
/// them (elsewhere the unit tiles would spend a whole pixel unit on each
/// row).
pub fn one_pixel_product_fits(k: usize) -> bool {
    k > 0 && k.is_multiple_of(4)
}

/// The outputs `lo..hi` of a pool row (input `size` wide, window
/// `kernel`, `stride`, `pad` before the row) whose whole window lies in the
/// row: the interior the code generator's pools run without bounds checks
/// (`kerf_targets`' `lower/pool.rs`), stated here with [`pool_group_reach`]
/// for [`byte_pool_rows_fit`].
pub fn pool_row_interior(size: usize, kernel: usize, stride: usize, pad: usize) -> (usize, usize) {
    let lo = pad.div_ceil(stride);
    let hi = if size + pad >= kernel { (size + pad - kernel) / stride + 1 } else { 0 };
    (lo.min(hi), hi)
}

/// One past the last input that a group of `lanes` pool outputs from
/// output `o` reads along a row (window `kernel`, `stride` 1 or 2, `pad`
/// before the row), as the code generator's vector bodies load it: stride
/// 1 `kernel − 1 + lanes` inputs from the first window's start; stride 2
/// pairs of vectors from every other tap, `2·⌊(kernel − 1)/2⌋ + 2·lanes`.
pub fn pool_group_reach(kernel: usize, stride: usize, pad: usize, o: usize, lanes: usize) -> i64 {
    let start = (o * stride) as i64 - pad as i64;
    let k = kernel as i64;
    match stride {
        1 => start + k - 1 + lanes as i64,
        _ => start + 2 * ((k - 1) / 2) + 2 * lanes as i64,
    }
}

/// Whether a byte MaxPool's rows (window `kernel`, `stride`, `dilation`,
/// `pad` before the row, input rows of `in_w` bytes) hold a whole 16-byte
/// vector of outputs on the code generator's vector body (`lower/pool.rs`,
/// `Fast2d`): stride 1 or 2, no dilation, and the first group of 16
/// interior outputs ([`pool_row_interior`]) reading within the row
/// ([`pool_group_reach`]). Narrower rows pool a byte at a time, slower
/// than the f32 pool's vectors; stated here because the `int8-maxpool`
/// rule moves a quantiser in front of a pool only where its bytes take the
/// vectors.
pub fn byte_pool_rows_fit(kernel: usize, stride: usize, dilation: usize, pad: usize, in_w: usize) -> bool {
    if dilation != 1 || !(1..=2).contains(&stride) || kernel == 0 {
        return false;
    }
    let (lo, hi) = pool_row_interior(in_w, kernel, stride, pad);
    lo + 16 <= hi && pool_group_reach(kernel, stride, pad, lo, 16) <= in_w as i64
}

/// Whether a depthwise conv's geometry suits the VNNI depthwise quad pass
/// (`kerf_targets::ukernel::avx512::dw_quad`): `kh` up to 5 rows of `kw`
/// up to 4 taps (a row of taps is one byte quad), horizontal stride `sw`
/// 1 or 2, every 128-bit lane's 16-byte window (from the qword its first
/// pixel starts in) holding its four pixels' taps at dilation `dw`, and
/// output rows of 1 to 1024 pixels. Stated here because the pass stores
/// u8 itself: the `int8-requant` rule gives such convs the requantising
/// epilogue on VNNI targets, and the code generator must then take them.
fn depthwise_quads_fit([kh, kw]: [usize; 2], sw: usize, dw: usize, ow: usize) -> bool {
    let window = |j: usize| sw * (4 * j + 3) - (sw * 4 * j) / 8 * 8 + kw.saturating_sub(1) * dw;
    (1..=5).contains(&kh)
        && (1..=4).contains(&kw)
        && (1..=2).contains(&sw)
        && dw >= 1
        && (1..=1024).contains(&ow)
        && (0..4).all(|j| window(j) < 16)
}

/// Most output rows whose window leaves the plane that the VNNI quad pass
/// takes: it emits each such row on its own.
pub const DW_QUAD_MAX_BORDER_ROWS: usize = 16;

/// Most pixels of a plane the 8-lane flat depthwise pass takes (AVX2's
/// `ymm_dw_flat`, and the 128-bit kernel's flat path; its code is
/// unrolled over the plane).
pub const DW_FLAT_MAX_PIXELS: usize = 256;
/// Most taps of the flat depthwise passes (a 5x5 window; their integer
/// sums stay exact in f32: `25 · 255 · 128 < 2^24`).
pub const DW_FLAT_MAX_TAPS: usize = 25;

/// A 2-D depthwise conv's plane as the depthwise passes see it: input and
/// output plane sizes, window rows and columns, strides, dilations, and
/// the top and left pads. The passes' whole fits are stated here
/// ([`DepthwisePlane::quads_fit`], [`DepthwisePlane::flat_fits`]), for the
/// passes themselves and for the rules that must know which will take a
/// conv.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthwisePlane {
    /// Input plane rows.
    pub h: usize,
    /// Input plane columns.
    pub w: usize,
    /// Output plane rows.
    pub oh: usize,
    /// Output plane columns.
    pub ow: usize,
    /// Window rows.
    pub kh: usize,
    /// Window columns.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Vertical dilation.
    pub dh: usize,
    /// Horizontal dilation.
    pub dw: usize,
    /// Top padding.
    pub ph: usize,
    /// Left padding.
    pub pw: usize,
}

impl DepthwisePlane {
    /// Whether output row `oy` reads row `ky` of its window inside the plane.
    pub fn row_ok(&self, oy: usize, ky: usize) -> bool {
        let iy = (oy * self.sh + ky * self.dh) as i64 - self.ph as i64;
        (0..self.h as i64).contains(&iy)
    }
    /// Whether output row `oy`'s whole window lies inside the plane.
    pub fn inside(&self, oy: usize) -> bool {
        (0..self.kh).all(|ky| self.row_ok(oy, ky))
    }
    /// Whether the VNNI quad pass takes this plane: `depthwise_quads_fit`,
    /// plane offsets that fit a displacement, and at most
    /// [`DW_QUAD_MAX_BORDER_ROWS`] output rows whose window leaves the plane.
    pub fn quads_fit(&self) -> bool {
        let planes = self.h > 0 && self.w > 0 && self.oh > 0 && self.sh >= 1 && self.dh >= 1;
        let small = self.h * self.w < 1 << 28 && self.oh * self.ow < 1 << 26;
        let border = (0..self.oh).filter(|&oy| !self.inside(oy)).count();
        planes
            && small
            && depthwise_quads_fit([self.kh, self.kw], self.sw, self.dw, self.ow)
            && border <= DW_QUAD_MAX_BORDER_ROWS
    }
    /// Whether the 8-lane flat depthwise pass
    /// (`kerf_targets::ukernel::avx2::ymm_dw_flat`) takes this plane:
    /// stride 1, output the input's size ("same"), 8 to
    /// [`DW_FLAT_MAX_PIXELS`] pixels, rows of at least 4 and at most
    /// [`DW_FLAT_MAX_TAPS`] taps. Stated here because that pass stores u8
    /// itself: the `int8` rules give such convs the integer kernel and the
    /// requantising epilogue on AVX2 targets, and the code generator must
    /// then take them.
    pub fn flat_fits(&self) -> bool {
        let same = self.sh == 1 && self.sw == 1 && self.oh == self.h && self.ow == self.w;
        let n = self.h * self.w;
        same && (8..=DW_FLAT_MAX_PIXELS).contains(&n) && self.w >= 4 && self.kh * self.kw <= DW_FLAT_MAX_TAPS
    }
}

/// [`byte_pairs_exact`] of an i8 weight tensor whose first axis is the
/// output channel (its rows are the rest); false for any other dtype.
pub fn weights_byte_pairs_exact(w: &crate::Tensor) -> bool {
    let rows = w.shape().first().copied().unwrap_or(1).max(1);
    let codes: Vec<i8> = w.bytes().iter().map(|&b| b as i8).collect();
    w.dtype() == crate::DType::I8 && byte_pairs_exact(&codes, codes.len() / rows)
}

/// [`byte_pairs_exact`] for the integer pattern kernel's pairing of a
/// `[O, I, kh, kw]` i8 conv weight: its byte quads are four consecutive
/// input channels at one tap (`w[o, 4q..4q + 4, t]`, the channels past `I`
/// zero), paired `(4q, 4q + 1)` and `(4q + 2, 4q + 3)`. False for any
/// other dtype or rank.
pub fn channel_pairs_exact(w: &crate::Tensor) -> bool {
    let s = w.shape();
    if w.dtype() != crate::DType::I8 || s.len() != 4 {
        return false;
    }
    let (ci, area) = (s[1], s[2] * s[3]);
    let codes: Vec<i8> = w.bytes().iter().map(|&b| b as i8).collect();
    let at = |o: usize, c: usize, t: usize| if c < ci { codes[(o * ci + c) * area + t] } else { 0 };
    (0..s[0]).all(|o| {
        (0..ci.div_ceil(2)).all(|p| (0..area).all(|t| byte_pairs_exact(&[at(o, 2 * p, t), at(o, 2 * p + 1, t)], 2)))
    })
}

#[cfg(test)]
mod byte_pair_tests {
    use super::{byte_pairs_exact, channel_pairs_exact};

    /// The bound against brute force: every pair of codes, the extreme
    /// inputs (the sum is linear in each input, so its extremes are at 0 or
    /// 255).
    #[test]
    fn byte_pairs_exact_is_the_saturation_bound() {
        for a in -128i32..=127 {
            for b in -128i32..=127 {
                let worst = [0, 255].iter().flat_map(|&x0| [0, 255].map(|x1| (x0 * a + x1 * b).abs())).max();
                let exact = worst.is_some_and(|w| w <= i32::from(i16::MAX));
                assert_eq!(byte_pairs_exact(&[a as i8, b as i8], 2), exact, "({a}, {b})");
            }
        }
    }

    #[test]
    fn channel_pairs_meet_at_one_tap() {
        let t = |shape: &[usize], codes: &[i64]| {
            crate::Tensor::from_i64_values(crate::DType::I8, shape.to_vec(), codes).expect("i8 tensor")
        };
        let w = |codes: &[i64]| t(&[1, 2, 1, 2], codes);
        // (c0, c1) at tap 0 is (100, 100): saturates; across taps it would not pair
        assert!(!channel_pairs_exact(&w(&[100, 0, 100, 0])));
        assert!(channel_pairs_exact(&w(&[100, 100, -100, 0])));
        // an odd channel count pairs the last channel with a zero
        assert!(channel_pairs_exact(&t(&[1, 1, 1, 1], &[127])));
        assert!(!channel_pairs_exact(&crate::Tensor::from_f32(vec![1, 2, 1, 1], &[1.0, 1.0]).expect("f32")));
    }

    #[test]
    fn pairs_are_taken_within_rows() {
        // rows of 3: (100, 0) (100 | next row) — the 100s of two rows never pair
        assert!(byte_pairs_exact(&[100, 0, 100, 100, 0, 0], 3));
        assert!(!byte_pairs_exact(&[100, 0, 100, 100, 0, 0], 6));
        assert!(byte_pairs_exact(&[-64, -64, 64, 64], 4));
        assert!(!byte_pairs_exact(&[-64, -65], 2));
    }

    /// A byte pool's rows fit where 16 interior outputs read within the
    /// row: ResNet's 3x3/2 pads-1 pool from 112 wide, SqueezeNet's
    /// unpadded one from 55; not MNIST's 2x2/2 from 28 (14 outputs), nor a
    /// row one input short of a group (32 + 1 inputs for 16 outputs of a
    /// 3x3/2 window), nor dilation or stride 3.
    #[test]
    fn byte_pool_rows_hold_a_vector_group() {
        assert!(super::byte_pool_rows_fit(3, 2, 1, 1, 112));
        assert!(super::byte_pool_rows_fit(3, 2, 1, 0, 55));
        assert!(super::byte_pool_rows_fit(3, 2, 1, 0, 34));
        assert!(!super::byte_pool_rows_fit(3, 2, 1, 0, 33));
        assert!(!super::byte_pool_rows_fit(2, 2, 1, 0, 28));
        assert!(super::byte_pool_rows_fit(2, 2, 1, 0, 32));
        assert!(super::byte_pool_rows_fit(3, 1, 1, 1, 18));
        assert!(!super::byte_pool_rows_fit(3, 1, 1, 1, 17));
        assert!(!super::byte_pool_rows_fit(3, 1, 2, 1, 112) && !super::byte_pool_rows_fit(3, 3, 1, 1, 112));
    }
}

#[cfg(test)]
mod tests {
    use crate::op::{Conv, ConvAlgo, Window};

    /// A 3x1 depthwise conv, dilated `dh` rows and padded as much above
    /// and below, on a 40x20 plane of 8 channels.
    fn tall(dh: usize) -> Conv {
        let window =
            Window { kernel: vec![3, 1], strides: vec![1, 1], dilations: vec![dh, 1], pads: vec![dh, 0, dh, 0] };
        Conv { window, group: 8, layer: crate::Layer("dw".into()), algo: ConvAlgo::Direct }
    }

    /// The quad pass's fit counts the output rows whose window leaves the
    /// plane (each emitted on its own): 2·dh of them here, taken up to
    /// [`super::DW_QUAD_MAX_BORDER_ROWS`]; the rules see the same answer
    /// through `Conv::on_depthwise_quads`.
    #[test]
    fn border_rows_bound_the_quad_pass() {
        let (w, x, y) = ([8, 1, 3, 1], [1, 8, 40, 20], [1, 8, 40, 20]);
        assert!(tall(8).on_depthwise_quads(&w, &x, &y), "16 border rows");
        assert!(!tall(9).on_depthwise_quads(&w, &x, &y), "18 border rows");
        // and the horizontal fit alone still decides the rest
        assert!(!tall(1).on_depthwise_quads(&[8, 1, 3, 1], &x, &[1, 8, 40, 2000]), "rows of 2000 pixels");
    }
}
