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
