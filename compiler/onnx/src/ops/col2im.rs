//! Col2Im as a ConvTranspose.
//!
//! Col2Im scatters column `c * K + j` (K = block size, j a block position in
//! row-major order) of every sliding-window position back into the image and
//! sums overlaps. That is exactly a grouped ConvTranspose (group = C) of the
//! columns, viewed as `[N, C*K, L_1, ..., L_r]`, with a constant one-hot
//! weight `[C*K, 1, block...]` (`w[c*K + j, 0, j] = 1`) and the same strides,
//! dilations and pads. Any remainder of the image the sliding windows do not
//! reach becomes output padding (zeros), as Col2Im leaves it.

use kerf_ir::op::{ConvTranspose, Window};
use kerf_ir::{Op, ValueId};

use super::compose::{konst_f, reshape};
use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("Col2Im", col2im));
}

fn col2im(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let xs = cx.shape(x);
    let dt = cx.ty(x).dtype;
    let image = cx.const_ints(1, "image_shape")?.ok_or_else(|| cx.err("missing required input 'image_shape'"))?;
    let block = cx.const_ints(2, "block_shape")?.ok_or_else(|| cx.err("missing required input 'block_shape'"))?;
    let image = super::non_neg(cx, "image_shape", &image)?;
    let block = super::non_neg(cx, "block_shape", &block)?;
    let r = image.len();
    if r == 0 || block.len() != r || block.contains(&0) || image.contains(&0) {
        return Err(
            cx.err(format!("image_shape {image:?} and block_shape {block:?} must be non-empty, positive, of one rank"))
        );
    }
    if !dt.is_float() || xs.len() != 3 {
        return Err(cx.err(format!("input {} must be float [N, C * block size, L]", cx.ty(x))));
    }
    let a = cx.attrs();
    let strides = a.usizes_opt("strides")?.unwrap_or_else(|| vec![1; r]);
    let dilations = a.usizes_opt("dilations")?.unwrap_or_else(|| vec![1; r]);
    let pads = a.usizes_opt("pads")?.unwrap_or_else(|| vec![0; 2 * r]);
    if strides.len() != r
        || dilations.len() != r
        || pads.len() != 2 * r
        || strides.contains(&0)
        || dilations.contains(&0)
    {
        return Err(cx.err(format!("strides {strides:?}, dilations {dilations:?}, pads {pads:?} do not fit rank {r}")));
    }
    let k: usize = block.iter().product();
    if !xs[1].is_multiple_of(k) {
        return Err(cx.err(format!("input channels {} are not a multiple of the block size {k}", xs[1])));
    }
    let c = xs[1] / k;
    // Sliding positions per axis and the output padding that completes
    // the image.
    let mut lens = Vec::with_capacity(r);
    let mut out_pad = Vec::with_capacity(r);
    for i in 0..r {
        let eff = dilations[i] * (block[i] - 1) + 1;
        let span = image[i] + pads[i] + pads[r + i];
        if span < eff {
            return Err(cx.err(format!("block {block:?} does not fit the padded image on axis {i}")));
        }
        let l = (span - eff) / strides[i] + 1;
        lens.push(l);
        out_pad.push(span - (strides[i] * (l - 1) + eff));
    }
    let total: usize = lens.iter().product();
    if total != xs[2] {
        return Err(cx.err(format!("input has {} positions, the geometry gives {total} ({lens:?})", xs[2])));
    }
    super::fits(cx, &[c, k, k])?;
    let mut shape = vec![xs[0], c * k];
    shape.extend(&lens);
    let cols = reshape(cx, x, shape)?;
    let mut w = vec![0.0; c * k * k];
    for ch in 0..c {
        for j in 0..k {
            w[(ch * k + j) * k + j] = 1.0;
        }
    }
    let mut wshape = vec![c * k, 1];
    wshape.extend(&block);
    let wv = konst_f(cx, "one_hot_blocks", dt, wshape, &w)?;
    let window = Window { kernel: block, strides, dilations, pads };
    let layer = cx.layer();
    let op = ConvTranspose { window, group: c, output_padding: out_pad, layer };
    Ok(vec![cx.add1(Op::ConvTranspose(op), vec![cols, wv])?])
}
