//! Whether factoring a layer pays in time, not only in multiply-adds.
//!
//! Low rank and Tucker-2 replace one layer by two or three thinner ones.
//! Fewer multiply-adds is necessary but not enough: every extra layer is a
//! kernel call and an intermediate tensor written and read again, and a
//! 3x3 stride-1 conv does not run its multiply-adds directly but on the
//! Winograd kernels, which the 1x1 parts of a factored form do not get.
//! Measured (Zen 4, 1 thread, `kerf bench` of single-layer models against
//! their `--low-rank R` / `--tucker R,R` forms; `docs/compression.md`,
//! "When factoring pays"): products break even at 95–98% of their
//! multiply-adds; a 64-, 128- and 256-channel 3x3 conv's channel SVD at
//! 87–89% of its direct multiply-adds and its Tucker-2 at 70–75%, where
//! pricing the 3x3 parts at [`WINOGRAD_GAIN`] times fewer predicts every
//! break-even rank within 5%.
//!
//! Contract: [`pays`] is a pure function of shapes, so `kerf compile`
//! stays deterministic; `kerf tune` times the forms on the target itself.

use crate::layer::{Kind, Site};

/// How many times faster than its direct multiply-adds a 3x3 stride-1 conv
/// runs on the Winograd kernels (F(4x4,3x3) saves 4x the multiplies,
/// F(2x2,3x3) 2.25x, transforms aside), as fitted to the break-evens above.
pub const WINOGRAD_GAIN: f64 = 2.5;

/// Below this many input or output channels a conv is priced as direct.
/// The passes choose Winograd by their cost model (transforms per channel,
/// savings per channel pair), not by a count: they left the digits CNN's
/// 1 → 16 3x3 conv direct and put its 8 → 16 Tucker-2 core on F(4x4,3x3)
/// (8x8 planes); counts in between are not measured.
pub const WINOGRAD_MIN_CHANNELS: usize = 8;

/// The share of the layer's price the factored form may cost at most: its
/// extra kernel calls and intermediate tensors, as fitted to the products'
/// break-even.
pub const FACTOR_MARGIN: f64 = 0.95;

/// Whether a conv of `kind` from `c_in` to `c_out` channels runs on the
/// Winograd kernels: 3x3, stride 1, no dilation, one group (what the
/// passes' `winograd` group rewrites, `kerf_ir::op::Conv::winograd_eligible`),
/// with [`WINOGRAD_MIN_CHANNELS`] on both sides.
pub fn winograd(kind: &Kind, c_in: usize, c_out: usize) -> bool {
    let eligible = matches!(kind, Kind::Conv { group: 1, kernel, strides, dilations, .. }
        if kernel.as_slice() == [3, 3] && strides.iter().all(|&s| s == 1) && dilations.iter().all(|&d| d == 1));
    eligible && c_in.min(c_out) >= WINOGRAD_MIN_CHANNELS
}

/// The price of a layer part with the layer's own kernel (`kind`) from
/// `c_in` to `c_out` channels doing `macs` multiply-adds: fewer on the
/// Winograd kernels. A 1x1 part or product is priced at its `macs`.
pub fn kxk(kind: &Kind, (c_in, c_out): (usize, usize), macs: usize) -> f64 {
    if winograd(kind, c_in, c_out) {
        macs as f64 / WINOGRAD_GAIN
    } else {
        macs as f64
    }
}

/// Whether a factored form priced `factored` pays against the layer's
/// `dense` price.
pub fn pays(factored: f64, dense: f64) -> bool {
    factored <= FACTOR_MARGIN * dense
}

/// Whether the rank-`r` split of `site` (an r-output layer of its own
/// kernel, then a 1x1 conv or product of `r` inputs) pays, per output
/// position.
pub fn low_rank_pays(site: &Site, r: usize) -> bool {
    split_pays(&site.kind, site.rows, site.cols, r)
}

/// [`low_rank_pays`] of a layer of `kind` with `rows` outputs of `cols`
/// inputs each (input channels times kernel taps).
fn split_pays(kind: &Kind, rows: usize, cols: usize, r: usize) -> bool {
    let c = cols / kind.kernel_area().max(1);
    pays(kxk(kind, (c, r), r * cols) + (rows * r) as f64, kxk(kind, (c, rows), rows * cols))
}

/// Whether the Tucker-2 split of `site` at `[r_in, r_out]` pays: its 1x1
/// convs on `p_in` input and `p_out` output pixels at their multiply-adds,
/// its core and the layer as their kernel runs. (`kerf tune`, which has
/// no graph to count pixels in, asks with both 1.)
pub fn tucker_pays(site: &Site, [r_in, r_out]: [usize; 2], p_in: usize, p_out: usize) -> bool {
    let (area, kind) = (site.kernel_area(), &site.kind);
    let c = site.cols / area.max(1);
    let core = kxk(kind, (r_in, r_out), p_out * r_out * r_in * area);
    let split = (p_in * c * r_in + p_out * site.rows * r_out) as f64 + core;
    pays(split, kxk(kind, (c, site.rows), p_out * site.rows * site.cols))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(stride: usize) -> Kind {
        Kind::Conv { group: 1, kernel: vec![3, 3], strides: vec![stride; 2], dilations: vec![1, 1], pads: vec![1; 4] }
    }

    /// The measured break-evens: a 64-channel 3x3 conv's channel SVD was
    /// faster at rank 43 and slower at 52, a 256-channel one's at 171 and
    /// (equal) at 205; a 512 x 512 product's at 230 and slower at 250.
    #[test]
    fn break_evens_fall_where_measured() {
        let c = |r: usize, ch: usize| split_pays(&conv(1), ch, 9 * ch, r);
        assert!(c(43, 64) && !c(52, 64));
        assert!(c(171, 256) && !c(205, 256));
        // by multiply-adds alone rank 56 (of 57.6) would pass
        assert!(56 * (64 + 576) < 64 * 576 && !c(56, 64));
        // stride 2 or one input channel: direct kernels, multiply-adds with the margin
        assert!(split_pays(&conv(2), 64, 576, 52));
        assert!(split_pays(&conv(1), 16, 9, 4) && !split_pays(&conv(1), 16, 9, 6));
        assert!(split_pays(&Kind::MatMulKn, 512, 512, 230) && !split_pays(&Kind::MatMulKn, 512, 512, 250));
    }
}
