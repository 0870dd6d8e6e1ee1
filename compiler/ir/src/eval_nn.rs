//! Reference Conv, MaxPool and BatchNormalization for the evaluator.
//!
//! Plain loops with f64 accumulation, rounded once to the output dtype. They
//! exist so passes can check rewrites of these ops numerically (BatchNorm
//! folding) and fold small constant convolutions; they are not fast.

use crate::eval::strides;
use crate::op::{Conv, GridStep, Pool, QConv, QOut};
use crate::{DType, IrError, Op, Tensor, TensorType};

fn err(op: &Op, msg: impl Into<String>) -> IrError {
    IrError::Eval { op: op.name().to_string(), msg: msg.into() }
}

/// N-D grouped convolution `y = conv(x, w) + b` with the window's pads,
/// strides and dilations. Shapes were checked by inference (`out`).
pub(crate) fn conv(op: &Op, c: &Conv, inputs: &[&Tensor], out: &TensorType) -> Result<Tensor, IrError> {
    let (x, w) = (inputs[0], inputs[1]);
    if !x.dtype().is_float() {
        return Err(err(op, "only float convolutions can be evaluated"));
    }
    let (xs, ws, os) = (x.shape(), w.shape(), &out.shape);
    let r = c.window.rank();
    let (n, ci, co) = (xs[0], xs[1], ws[0]);
    let g = c.group;
    let (ci_g, co_g) = (ci / g, co / g);
    let (xv, wv) = (x.to_f64_vec(), w.to_f64_vec());
    let bv = inputs.get(2).map(|b| b.to_f64_vec());
    let (xst, wst, ost) = (strides(xs), strides(ws), strides(os));
    let out_sp: Vec<usize> = os[2..].to_vec();
    let k_sp: Vec<usize> = ws[2..].to_vec();
    let n_out_sp: usize = out_sp.iter().product();
    let n_k: usize = k_sp.iter().product();
    let mut res = vec![0.0f64; out.numel()];
    let mut opos = vec![0usize; r];
    let mut kpos = vec![0usize; r];
    for b in 0..n {
        for o in 0..co {
            let grp = o / co_g;
            for osi in 0..n_out_sp {
                unravel(osi, &out_sp, &mut opos);
                let mut acc = bv.as_ref().map_or(0.0, |bv| bv[o]);
                for icg in 0..ci_g {
                    let ic = grp * ci_g + icg;
                    for ki in 0..n_k {
                        unravel(ki, &k_sp, &mut kpos);
                        // input coordinate along each spatial axis, skipping padding
                        let mut xoff = b * xst[0] + ic * xst[1];
                        let mut inside = true;
                        for a in 0..r {
                            let p = (opos[a] * c.window.strides[a] + kpos[a] * c.window.dilations[a]) as isize
                                - c.window.pad_begin(a) as isize;
                            if p < 0 || p as usize >= xs[2 + a] {
                                inside = false;
                                break;
                            }
                            xoff += p as usize * xst[2 + a];
                        }
                        if !inside {
                            continue;
                        }
                        let mut woff = o * wst[0] + icg * wst[1];
                        for a in 0..r {
                            woff += kpos[a] * wst[2 + a];
                        }
                        acc += xv[xoff] * wv[woff];
                    }
                }
                let mut ooff = b * ost[0] + o * ost[1];
                for a in 0..r {
                    ooff += opos[a] * ost[2 + a];
                }
                res[ooff] = acc;
            }
        }
    }
    Tensor::from_f64_values(out.dtype, os.clone(), &res)
}

/// N-D MaxPool over the valid taps of each window (padding is never read),
/// on floats (in f64: a window holding a NaN gives NaN) or integers
/// (exactly, in i128); a window of padding only gives the dtype's lowest
/// value (−inf for floats). Shapes (ceil mode included) were decided by
/// inference (`out`).
pub(crate) fn max_pool(op: &Op, p: &Pool, x: &Tensor, out: &TensorType) -> Result<Tensor, IrError> {
    let xs = x.shape();
    if xs.len() != p.window.rank() + 2 {
        return Err(err(op, format!("{}-D window on input {xs:?}", p.window.rank())));
    }
    if x.dtype().is_float() {
        let v = x.to_f64_vec();
        let res = pool_windows(p, xs, &out.shape, f64::NEG_INFINITY, |acc, i| {
            if acc.is_nan() || v[i].is_nan() {
                f64::NAN
            } else {
                acc.max(v[i])
            }
        });
        return Tensor::from_f64_values(out.dtype, out.shape.clone(), &res);
    }
    let Some((lowest, _)) = x.dtype().int_range() else {
        return Err(err(op, format!("MaxPool on {} is not supported", x.dtype())));
    };
    let unsigned64 = x.dtype() == DType::U64;
    let v: Vec<i128> =
        x.to_i64_vec().iter().map(|&a| if unsigned64 { i128::from(a as u64) } else { i128::from(a) }).collect();
    let res = pool_windows(p, xs, &out.shape, i128::from(lowest), |acc, i| acc.max(v[i]));
    let res: Vec<i64> = res.iter().map(|&a| a as i64).collect();
    Tensor::from_i64_values(out.dtype, out.shape.clone(), &res)
}

/// Folds `step(acc, input index)` from `init` over the valid taps of each
/// output window of the pool `p` (input shape `xs`, output `os`), in the
/// output's order.
fn pool_windows<T: Copy>(p: &Pool, xs: &[usize], os: &[usize], init: T, step: impl Fn(T, usize) -> T) -> Vec<T> {
    let w = &p.window;
    let r = w.rank();
    let (xst, ost) = (strides(xs), strides(os));
    let (out_sp, k_sp) = (os[2..].to_vec(), w.kernel.clone());
    let (n_out_sp, n_k): (usize, usize) = (out_sp.iter().product(), k_sp.iter().product());
    let mut res = vec![init; os.iter().product()];
    let (mut opos, mut kpos) = (vec![0usize; r], vec![0usize; r]);
    for plane in 0..xs[0] * xs[1] {
        for osi in 0..n_out_sp {
            unravel(osi, &out_sp, &mut opos);
            let mut acc = init;
            for ki in 0..n_k {
                unravel(ki, &k_sp, &mut kpos);
                let mut xoff = plane * xst[1];
                let mut inside = true;
                for a in 0..r {
                    let i = (opos[a] * w.strides[a] + kpos[a] * w.dilations[a]) as isize - w.pad_begin(a) as isize;
                    inside &= i >= 0 && (i as usize) < xs[2 + a];
                    xoff += i.max(0) as usize * xst[2 + a];
                }
                if inside {
                    acc = step(acc, xoff);
                }
            }
            res[plane * ost[1] + (0..r).map(|a| opos[a] * ost[2 + a]).sum::<usize>()] = acc;
        }
    }
    res
}

/// [`QConv`] as its contract states it: the integer sums (exact in f64),
/// rounded once to f32, then `· s[m]`, `+ b[m]`, `+ residual` and the
/// activation, each rounded to f32.
pub(crate) fn qconv(op: &Op, q: &QConv, inputs: &[&Tensor], out: &TensorType) -> Result<Tensor, IrError> {
    let (x, w) = match inputs {
        [x, w, ..] => (*x, *w),
        _ => return Err(err(op, "needs inputs x and w")),
    };
    let acc = qconv_acc(q, x, w, &out.shape);
    if q.out == QOut::Acc {
        let v: Vec<i64> = acc.iter().map(|&a| i64::from(a)).collect();
        return Tensor::from_i64_values(DType::I32, out.shape.clone(), &v);
    }
    let [_, _, ws, b, rest @ ..] = inputs else {
        return Err(err(op, "needs inputs x, w, w_scale, b"));
    };
    let b = b.to_f32_vec();
    let scale: Vec<f32> = ws.to_f32_vec().iter().map(|&w| q.x_scale.get() * w).collect();
    let m = scale.len();
    let plane: usize = out.shape[2..].iter().product();
    let res = match (rest.first(), q.res_grid) {
        (Some(r), Some(g)) => Some(r.bytes().iter().map(|&c| g.value(c)).collect::<Vec<f32>>()),
        (r, _) => r.map(|r| r.to_f32_vec()),
    };
    let y: Vec<f32> = acc
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            let c = i / plane % m;
            let mut v = a as f32 * scale[c] + b[c];
            if let Some(r) = &res {
                v += r[i];
            }
            v
        })
        .collect();
    let y = Tensor::from_f32(out.shape.clone(), &y)?;
    let y = match q.epi.act {
        Some(u) => crate::eval::eval(&Op::Unary(u), &[&y])?.remove(0),
        None => y,
    };
    match q.out {
        QOut::Quant { scale, .. } => {
            let (f, zp) =
                q.out.grid().ok_or_else(|| IrError::Invalid(format!("QConv: output step {}", scale.get())))?;
            on_grid(&y, GridStep::Mul(f), zp)
        }
        _ => Ok(y),
    }
}

/// `Σ (x − x_zp)·w` of a [`QConv`], exactly in integers (padded taps read
/// `x_zp`: they add nothing), in the output's `[N, M, OH, OW]` order.
fn qconv_acc(q: &QConv, x: &Tensor, w: &Tensor, out: &[usize]) -> Vec<i32> {
    let (xs, ws) = (x.shape(), w.shape());
    let (xv, wv) = (x.to_i64_vec(), w.to_i64_vec());
    let z = i64::from(q.x_zp);
    let wd = &q.conv.window;
    let (g, cg, kh, kw) = (q.conv.group, ws[1], ws[2], ws[3]);
    let (m_all, oh, ow) = (out[1], out[2], out[3]);
    let mg = m_all / g.max(1);
    let mut acc = vec![0i32; out.iter().product()];
    for (i, a) in acc.iter_mut().enumerate() {
        let (ox, oy, m, n) = (i % ow, i / ow % oh, i / (ow * oh) % m_all, i / (ow * oh * m_all));
        let gi = m / mg.max(1);
        let mut sum = 0i64;
        for c in 0..cg {
            let ci = gi * cg + c;
            for ky in 0..kh {
                let Some(y) = (oy * wd.strides[0] + ky * wd.dilations[0]).checked_sub(wd.pad_begin(0)) else {
                    continue;
                };
                for kx in 0..kw {
                    let Some(xx) = (ox * wd.strides[1] + kx * wd.dilations[1]).checked_sub(wd.pad_begin(1)) else {
                        continue;
                    };
                    if y >= xs[2] || xx >= xs[3] {
                        continue;
                    }
                    let xi = ((n * xs[1] + ci) * xs[2] + y) * xs[3] + xx;
                    sum += (xv[xi] - z) * wv[((m * cg + c) * kh + ky) * kw + kx];
                }
            }
        }
        // |Σ| <= 255 · 128 · K fits i32 for any K a model has
        *a = sum as i32;
    }
    acc
}

/// [`Op::Quantize`]: its definition, op by op through the reference
/// evaluator (so it is those ops' values by construction).
pub(crate) fn quantize(x: &Tensor, scale: crate::F32, zp: u8, pads: &[usize]) -> Result<Tensor, IrError> {
    use crate::op::PadMode;
    use crate::F32;
    let padded = step(Op::Pad { pads: pads.to_vec(), mode: PadMode::Constant, value: F32::new(0.0) }, &[x])?;
    on_grid(&padded, GridStep::Div(scale.get()), zp)
}

/// One elementwise op of a quantiser, through the reference evaluator.
fn step(op: Op, args: &[&Tensor]) -> Result<Tensor, IrError> {
    crate::eval::eval(&op, args)?.pop().ok_or_else(|| IrError::Invalid("a quantiser step without a result".into()))
}

/// `u8(clip(round(x ∘ step), −zp, 255 − zp) + zp)`, each step the
/// elementwise op's own evaluation.
fn on_grid(x: &Tensor, by: GridStep, zp: u8) -> Result<Tensor, IrError> {
    use crate::op::{BinaryOp, UnaryOp};
    use crate::F32;
    let z = f32::from(zp);
    let (op, by) = by.binary();
    let d = step(Op::Binary(op), &[x, &Tensor::scalar_f32(by)])?;
    let r = step(Op::Unary(UnaryOp::Round), &[&d])?;
    let c = step(Op::Unary(UnaryOp::Clip { min: F32::new(-z), max: F32::new(255.0 - z) }), &[&r])?;
    let a = step(Op::Binary(BinaryOp::Add), &[&c, &Tensor::scalar_f32(z)])?;
    step(Op::Cast(DType::U8), &[&a])
}

/// [`Op::Requantize`]: in f64, as the ONNX reference's numpy computes it.
pub(crate) fn requantize(
    axis: usize,
    zp: i32,
    out: DType,
    inputs: &[&Tensor],
    acc: &Tensor,
) -> Result<Tensor, IrError> {
    let mult = inputs.get(1).map(|t| t.to_f64_vec()).unwrap_or_default();
    let bias = inputs.get(2).map(|t| t.to_f64_vec());
    let (lo, hi) = out.int_range().ok_or_else(|| IrError::Invalid(format!("Requantize to {out}")))?;
    let shape = acc.shape();
    let inner: usize = shape.get(axis + 1..).map_or(1, |s| s.iter().product());
    let c = shape.get(axis).copied().unwrap_or(1).max(1);
    let pick = |v: &[f64], i: usize| if v.len() == 1 { v[0] } else { v[(i / inner) % c] };
    let magic = 1.5 * 2f64.powi(52);
    let y: Vec<i64> = acc
        .to_f64_vec()
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            let a = a + bias.as_deref().map_or(0.0, |b| pick(b, i));
            let v = (a * pick(&mult, i) + f64::from(zp)).clamp(lo as f64, hi as f64);
            ((v + magic) - magic) as i64
        })
        .collect();
    Tensor::from_i64_values(out, shape.to_vec(), &y)
}

/// Inference BatchNormalization over axis 1:
/// `(x - mean) / sqrt(var + eps) * scale + bias`.
pub(crate) fn batch_norm(op: &Op, epsilon: f32, inputs: &[&Tensor], out: &TensorType) -> Result<Tensor, IrError> {
    let x = inputs[0];
    if !x.dtype().is_float() {
        return Err(err(op, "only float inputs can be normalised"));
    }
    let [scale, bias, mean, var] = [1, 2, 3, 4].map(|i| inputs[i].to_f64_vec());
    let xs = x.shape();
    let c = xs[1];
    let inner: usize = xs[2..].iter().product();
    let xv = x.to_f64_vec();
    let eps = epsilon as f64;
    let res: Vec<f64> = xv
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / inner) % c;
            (v - mean[ch]) / (var[ch] + eps).sqrt() * scale[ch] + bias[ch]
        })
        .collect();
    Tensor::from_f64_values(out.dtype, out.shape.clone(), &res)
}

/// Row-major multi-index of flat index `i` in `shape`.
fn unravel(mut i: usize, shape: &[usize], idx: &mut [usize]) {
    for a in (0..shape.len()).rev() {
        idx[a] = i % shape[a];
        i /= shape[a];
    }
}

#[cfg(test)]
mod tests {
    use crate::eval::eval;
    use crate::op::{Conv, Window};
    use crate::{Layer, Op, Tensor, F32};

    fn f(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_f32(shape.to_vec(), v).unwrap()
    }

    #[test]
    fn conv_with_pads_strides_groups() {
        // 1x2x3x3 input, two groups, 1x1x2x2 kernels, pad 1 at the start, stride 2
        let x = f(&[1, 2, 3, 3], &(0..18).map(|v| v as f32).collect::<Vec<_>>());
        let w = f(&[2, 1, 2, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        let b = f(&[2], &[0.5, -1.0]);
        let op = Op::Conv(Conv {
            window: Window { kernel: vec![2, 2], strides: vec![2, 2], dilations: vec![1, 1], pads: vec![1, 1, 0, 0] },
            group: 2,
            layer: Layer("c".into()),
            algo: crate::op::ConvAlgo::Direct,
        });
        let y = eval(&op, &[&x, &w, &b]).unwrap();
        assert_eq!(y[0].shape(), &[1, 2, 2, 2]);
        // channel 0 (diagonal kernel): out(0,0) = x[-1,-1]*1 + x[0,0]*1 = 0; (0,1) = x[0,1] = 1 ...
        // channel 1 (all ones) on input channel 1 (values 9..17)
        assert_eq!(y[0].to_f32_vec(), vec![0.5, 2.5, 6.5, 12.5, 8.0, 20.0, 26.0, 59.0]);
    }

    #[test]
    fn conv_dilation() {
        let x = f(&[1, 1, 5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        let w = f(&[1, 1, 2], &[1.0, 10.0]);
        let op = Op::Conv(Conv {
            window: Window { kernel: vec![2], strides: vec![1], dilations: vec![2], pads: vec![0, 0] },
            group: 1,
            layer: Layer("c".into()),
            algo: crate::op::ConvAlgo::Direct,
        });
        let y = eval(&op, &[&x, &w]).unwrap();
        assert_eq!(y[0].to_f32_vec(), vec![31.0, 42.0, 53.0]);
    }

    #[test]
    fn batch_norm_per_channel() {
        let x = f(&[1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let p = |v: [f32; 2]| f(&[2], &v);
        let (s, b, m, v) = (p([2.0, 1.0]), p([0.0, 1.0]), p([1.0, 3.0]), p([4.0, 1.0]));
        let y = eval(&Op::BatchNorm { epsilon: F32::new(0.0) }, &[&x, &s, &b, &m, &v]).unwrap();
        assert_eq!(y[0].to_f32_vec(), vec![0.0, 1.0, 1.0, 2.0]);
    }
}
