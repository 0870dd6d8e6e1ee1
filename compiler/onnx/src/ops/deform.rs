//! DeformConv (2-D) as a composition: bilinear sampling then a grouped
//! MatMul.
//!
//! As the ONNX reference, every kernel tap of every output position samples
//! X bilinearly (zeros outside the image, i.e. GridSample with
//! align_corners=1) at `o*stride - pad + tap*dilation + offset`, times the
//! mask. The samples form im2col columns `[N, C * kh * kw, oh * ow]`
//! (gathered per offset group with [`gridsample::sample`]) and the result is
//! `W[group] @ columns[group] + B`. Cost: `4 * C * kh * kw * oh * ow`
//! gathered elements plus the convolution's multiply-adds.

use kerf_ir::op::BinaryOp;
use kerf_ir::{Op, ValueId};

use super::compose::{bin, konst_f, matmul, reshape, transpose};
use super::gridsample::{sample, Mode, Padding, Sampler};
use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("DeformConv", deform_conv));
}

fn deform_conv(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let w = cx.input(1)?;
    let off = cx.input(2)?;
    let (bias, mask) = (cx.opt_input(3), cx.opt_input(4));
    let g = Geometry::read(cx, x, w, off, mask)?;
    let Geometry { n, c, oc, kh, kw, oh, ow, group, og, .. } = g;
    let kk = kh * kw;
    super::fits(cx, &[n, c, kk, oh * ow])?;
    // offset [N, og, kh, kw, 2, oh, ow] -> per group and axis [N, kh, kw, oh, ow, 1]
    let off6 = reshape(cx, off, vec![n, og, kk, 2, oh * ow])?;
    let bases = [g.tap_bases(0), g.tap_bases(1)];
    let cols = (0..og).map(|gi| g.columns(cx, (x, off6, mask), &bases, gi)).collect::<Result<Vec<_>, _>>()?;
    let v = if cols.len() == 1 { cols[0] } else { cx.add1(Op::Concat { axis: 5 }, cols)? };
    // [N, kh, kw, oh, ow, C] -> [N, C, kh, kw, oh, ow] -> [N, group, (C/group)*kk, oh*ow]
    let v = transpose(cx, v, vec![0, 5, 1, 2, 3, 4])?;
    let cpg = c / group;
    let v = reshape(cx, v, vec![n, group, cpg * kk, oh * ow])?;
    let wg = reshape(cx, w, vec![group, oc / group, cpg * kk])?;
    let y = matmul(cx, wg, v)?;
    let mut y = reshape(cx, y, vec![n, oc, oh, ow])?;
    if let Some(b) = bias {
        let b = reshape(cx, b, vec![1, oc, 1, 1])?;
        y = bin(cx, BinaryOp::Add, y, b)?;
    }
    Ok(vec![y])
}

/// A DeformConv's shapes and attributes, checked against each other.
#[derive(Clone, Copy)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oc: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    strides: [usize; 2],
    dil: [usize; 2],
    /// The leading pads (top, left); the trailing ones only size the output.
    pads: [usize; 2],
    group: usize,
    /// Offset groups.
    og: usize,
}

impl Geometry {
    /// Reads and checks the node's shapes and attributes: X `[N, C, H, W]`,
    /// W `[OC, C/group, kh, kw]`, offset `[N, og·kh·kw·2, oh, ow]` with the
    /// output size the geometry gives, mask `[N, og·kh·kw, oh, ow]`.
    fn read(cx: &mut Cx, x: ValueId, w: ValueId, off: ValueId, mask: Option<ValueId>) -> Result<Geometry, ImportError> {
        let (xs, ws, os) = (cx.shape(x), cx.shape(w), cx.shape(off));
        let dt = cx.ty(x).dtype;
        if xs.len() != 4 || ws.len() != 4 || os.len() != 4 || !dt.is_float() {
            return Err(cx.err(format!(
                "only 2-D float DeformConv is supported: X {}, W {}, offset {}",
                cx.ty(x),
                cx.ty(w),
                cx.ty(off)
            )));
        }
        let a = cx.attrs();
        let group = usize::try_from(a.int("group", 1)?)
            .ok()
            .filter(|&g| g > 0)
            .ok_or_else(|| cx.err("group must be positive"))?;
        let og = usize::try_from(a.int("offset_group", 1)?)
            .ok()
            .filter(|&g| g > 0)
            .ok_or_else(|| cx.err("offset_group must be positive"))?;
        let kernel = a.usizes_opt("kernel_shape")?.unwrap_or_else(|| ws[2..].to_vec());
        let strides = a.usizes_opt("strides")?.unwrap_or_else(|| vec![1, 1]);
        let dil = a.usizes_opt("dilations")?.unwrap_or_else(|| vec![1, 1]);
        let pads = a.usizes_opt("pads")?.unwrap_or_else(|| vec![0; 4]);
        let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
        let oc = ws[0];
        let (kh, kw) = (kernel.first().copied().unwrap_or(0), kernel.get(1).copied().unwrap_or(0));
        let (oh, ow) = (os[2], os[3]);
        let kk = kh * kw;
        let bad = kernel.len() != 2
            || kernel != ws[2..]
            || strides.len() != 2
            || dil.len() != 2
            || pads.len() != 4
            || strides.contains(&0)
            || dil.contains(&0)
            || c != ws[1] * group
            || !oc.is_multiple_of(group)
            || !c.is_multiple_of(og)
            || os[0] != n
            || os[1] != og * kk * 2;
        if bad {
            return Err(cx.err(format!(
                "inconsistent shapes/attributes: X {}, W {}, offset {}, group {group}, offset_group {og}, kernel {kernel:?}",
                cx.ty(x),
                cx.ty(w),
                cx.ty(off)
            )));
        }
        // The output size the geometry gives must be the offset's.
        for (i, (&o, &inp)) in [oh, ow].iter().zip(&[h, wd]).enumerate() {
            let eff = dil[i] * (kernel[i] - 1) + 1;
            let span = inp + pads[i] + pads[2 + i];
            if span < eff || (span - eff) / strides[i] + 1 != o {
                return Err(
                    cx.err(format!("offset spatial size {o} on axis {i} does not match the convolution geometry"))
                );
            }
        }
        if let Some(m) = mask {
            if cx.shape(m) != [n, og * kk, oh, ow] {
                return Err(cx.err(format!("mask {} must be [{n}, {}, {oh}, {ow}]", cx.ty(m), og * kk)));
            }
        }
        let (strides, dil, pads) = ([strides[0], strides[1]], [dil[0], dil[1]], [pads[0], pads[1]]);
        Ok(Geometry { n, c, h, w: wd, oc, kh, kw, oh, ow, strides, dil, pads, group, og })
    }

    /// The base pixel coordinate on `axis` (0: rows, 1: columns) of every
    /// (tap, output position), in `[kh, kw, oh, ow]` order.
    fn tap_bases(&self, axis: usize) -> Vec<f64> {
        let mut v = Vec::with_capacity(self.kh * self.kw * self.oh * self.ow);
        for ki in 0..self.kh {
            for kj in 0..self.kw {
                for oy in 0..self.oh {
                    for ox in 0..self.ow {
                        let (o, k) = if axis == 0 { (oy, ki) } else { (ox, kj) };
                        v.push((o * self.strides[axis] + k * self.dil[axis]) as f64 - self.pads[axis] as f64);
                    }
                }
            }
        }
        v
    }

    /// Offset group `gi`'s im2col columns `[N, kh, kw, oh, ow, C/og]`: its
    /// channels of X sampled bilinearly at the bases plus its offsets, times
    /// its mask. `off6` is the offset as `[N, og, kh·kw, 2, oh·ow]`.
    fn columns(
        &self,
        cx: &mut Cx,
        (x, off6, mask): (ValueId, ValueId, Option<ValueId>),
        bases: &[Vec<f64>; 2],
        gi: usize,
    ) -> Result<ValueId, ImportError> {
        let Geometry { n, c, h, w: wd, kh, kw, oh, ow, og, .. } = *self;
        let (kk, cg, dt) = (kh * kw, c / og, cx.ty(x).dtype);
        // X channels of this offset group, channels-last: [N * H * W, cg]
        let xg = if og == 1 {
            x
        } else {
            let op = Op::Slice {
                starts: vec![0, (gi * cg) as i64, 0, 0],
                ends: vec![n as i64, ((gi + 1) * cg) as i64, h as i64, wd as i64],
                steps: vec![1; 4],
            };
            cx.add1(op, vec![x])?
        };
        let xt = transpose(cx, xg, vec![0, 2, 3, 1])?;
        let xt = reshape(cx, xt, vec![n * h * wd, cg])?;
        let mut coords = Vec::with_capacity(2);
        for (axis, b) in bases.iter().enumerate() {
            let op = Op::Slice {
                starts: vec![0, gi as i64, 0, axis as i64, 0],
                ends: vec![n as i64, gi as i64 + 1, kk as i64, axis as i64 + 1, (oh * ow) as i64],
                steps: vec![1; 5],
            };
            let o = cx.add1(op, vec![off6])?;
            let o = reshape(cx, o, vec![n, kh, kw, oh, ow, 1])?;
            let bv = konst_f(cx, "tap_base", dt, vec![1, kh, kw, oh, ow, 1], b)?;
            coords.push(bin(cx, BinaryOp::Add, o, bv)?);
        }
        let s = Sampler { mode: Mode::Linear, pad: Padding::Zeros, align: true };
        let v = sample(cx, xt, n, &[h, wd], &coords, &[kh, kw, oh, ow], s)?;
        let Some(m) = mask else { return Ok(v) };
        let op = Op::Slice {
            starts: vec![0, (gi * kk) as i64, 0, 0],
            ends: vec![n as i64, ((gi + 1) * kk) as i64, oh as i64, ow as i64],
            steps: vec![1; 4],
        };
        let mg = cx.add1(op, vec![m])?;
        let mg = reshape(cx, mg, vec![n, kh, kw, oh, ow, 1])?;
        bin(cx, BinaryOp::Mul, v, mg)
    }
}
