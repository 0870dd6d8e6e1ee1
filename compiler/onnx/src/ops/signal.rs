//! Signal ops: DFT (opset 17 and 20 forms), STFT, the Hann / Hamming /
//! Blackman windows and MelWeightMatrix.
//!
//! Windows and MelWeightMatrix depend only on their (constant) inputs, so
//! they fold to constants here, computed in f64 as the ONNX reference does.
//!
//! DFT and STFT are linear in the signal, so they are a product with a
//! constant real matrix built here (a "DFT matrix" over the interleaved
//! real/imaginary components): the transformed axis is moved next to the
//! trailing component axis, flattened with it into rows of `L * cin`
//! values, multiplied by the `[L * cin, K * cout]` matrix and moved back.
//! Complexity: `O(L * K)` multiply-adds per transformed row (no FFT); right
//! for the frame and signal lengths these ops see in models (up to a few
//! thousand), and the product runs on the tuned MatMul kernels. Angles are
//! reduced exactly (`k * l mod n`) before the f64 `sin`/`cos`. A DFT axis
//! computed at run time (opset 20) stays an input where it does not decide
//! the output's shape: the transform along each axis, selected by value.

use kerf_ir::op::BinaryOp;
use kerf_ir::{DType, Op, Tensor, ValueId};

use super::compose::{bin, konst_f, konst_i, matmul, pick_by_axis, reshape, transpose};
use super::Converter;
use crate::import::Cx;
use crate::{tensor, ImportError};

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("DFT", dft));
    r.push(("STFT", stft));
    r.push(("HannWindow", window));
    r.push(("HammingWindow", window));
    r.push(("BlackmanWindow", window));
    r.push(("MelWeightMatrix", mel_weight_matrix));
}

/// The transform one DFT node applies along its axis.
#[derive(Clone, Copy)]
struct Transform {
    /// Input length along the axis.
    len: usize,
    /// Components of an input element: 1 (real) or 2 (complex).
    cin: usize,
    /// The DFT length n.
    n: usize,
    inverse: bool,
    onesided: bool,
}

impl Transform {
    /// Output length along the axis and output components.
    fn out(&self) -> (usize, usize) {
        match (self.inverse, self.onesided) {
            (false, true) => (self.n / 2 + 1, 2),
            (false, false) | (true, false) => (self.n, 2),
            (true, true) => (self.n, 1),
        }
    }

    /// Row-major `[len * cin, K * cout]` matrix of the transform.
    fn matrix(&self) -> Vec<f64> {
        let (k_out, cout) = self.out();
        let n = self.n;
        let cols = k_out * cout;
        let mut m = vec![0.0; self.len * self.cin * cols];
        let angle = |k: usize, l: usize| 2.0 * std::f64::consts::PI * ((k * l) % n) as f64 / n as f64;
        // Input positions at or past n are truncated away (numpy's `n`).
        let used = if self.inverse && self.onesided { self.len.min(n / 2 + 1) } else { self.len.min(n) };
        for l in 0..used {
            for k in 0..k_out {
                let th = angle(k, l);
                let (c, s) = (th.cos(), th.sin());
                let mut set = |ci: usize, co: usize, v: f64| {
                    if ci < self.cin {
                        m[(l * self.cin + ci) * cols + k * cout + co] = v;
                    }
                };
                if !self.inverse {
                    // (xr + i xi)(cos - i sin)
                    set(0, 0, c);
                    set(1, 0, s);
                    set(0, 1, -s);
                    set(1, 1, c);
                } else if !self.onesided {
                    // (xr + i xi)(cos + i sin) / n
                    let nf = n as f64;
                    set(0, 0, c / nf);
                    set(1, 0, -s / nf);
                    set(0, 1, s / nf);
                    set(1, 1, c / nf);
                } else {
                    // irfft: Hermitian extension of bins 0..=n/2; DC and
                    // Nyquist count once, the others twice.
                    let w = if l == 0 || 2 * l == n { 1.0 } else { 2.0 } / n as f64;
                    set(0, 0, w * c);
                    set(1, 0, -w * s);
                }
            }
        }
        m
    }
}

/// Applies `t` along `axis` of `x` (`[..., len, ..., cin]`).
fn apply(cx: &mut Cx, x: ValueId, axis: usize, t: Transform) -> Result<ValueId, ImportError> {
    let xs = cx.shape(x);
    let dt = cx.ty(x).dtype;
    let r = xs.len();
    // Move `axis` to r - 2.
    let mut perm: Vec<usize> = (0..r - 1).filter(|&a| a != axis).collect();
    perm.push(axis);
    perm.push(r - 1);
    let xt = transpose(cx, x, perm.clone())?;
    let lead: Vec<usize> = perm[..r - 2].iter().map(|&a| xs[a]).collect();
    let rows: usize = lead.iter().product();
    let (k_out, cout) = t.out();
    super::fits(cx, &[rows, k_out, cout])?;
    super::fits(cx, &[t.len, t.cin, k_out, cout])?;
    let x2 = reshape(cx, xt, vec![rows, t.len * t.cin])?;
    let w = konst_f(cx, "dft_matrix", dt, vec![t.len * t.cin, k_out * cout], &t.matrix())?;
    let y = matmul(cx, x2, w)?;
    let mut ys = lead;
    ys.push(k_out);
    ys.push(cout);
    let y = reshape(cx, y, ys)?;
    // Inverse permutation.
    let mut inv = vec![0; r];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    transpose(cx, y, inv)
}

/// A DFT node's attributes and `dft_length`: the transform along an axis
/// of any length.
#[derive(Clone, Copy)]
struct DftSpec {
    cin: usize,
    dft_length: Option<usize>,
    inverse: bool,
    onesided: bool,
}

impl DftSpec {
    /// The transform along an axis of length `len`.
    fn along(&self, cx: &Cx, len: usize) -> Result<Transform, ImportError> {
        let n = match self.dft_length {
            Some(n) => n,
            None if self.inverse && self.onesided => 2 * len.saturating_sub(1),
            None => len,
        };
        if n == 0 || len == 0 {
            return Err(cx.err(format!("empty transform (length {len}, dft_length {n})")));
        }
        Ok(Transform { len, cin: self.cin, n, inverse: self.inverse, onesided: self.onesided })
    }
}

/// A scalar integer input (dft_length, axis, frame_step, ...).
fn scalar_int(cx: &Cx, i: usize, what: &str) -> Result<Option<i64>, ImportError> {
    match cx.const_ints(i, what)? {
        None => Ok(None),
        Some(v) if v.len() == 1 => Ok(Some(v[0])),
        Some(v) => Err(cx.err(format!("input '{what}' must be a scalar, got {} values", v.len()))),
    }
}

fn dft(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let xs = cx.shape(x);
    let dt = cx.ty(x).dtype;
    if !dt.is_float() {
        return Err(cx.err(format!("input must be float, got {}", cx.ty(x))));
    }
    let r = xs.len();
    let cin = xs.last().copied().unwrap_or(0);
    if r < 2 || !(cin == 1 || cin == 2) {
        return Err(cx.err(format!("input {} must be [..., 1] (real) or [..., 2] (complex)", cx.ty(x))));
    }
    let a = cx.attrs();
    let inverse = a.bool("inverse", false)?;
    let onesided = a.bool("onesided", false)?;
    let dft_length = match scalar_int(cx, 1, "dft_length")? {
        Some(v) => Some(
            usize::try_from(v)
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| cx.err(format!("dft_length must be positive, got {v}")))?,
        ),
        None => None,
    };
    let spec = DftSpec { cin, dft_length, inverse, onesided };
    if onesided && !inverse && cin == 2 {
        return Err(cx.err("onesided=1 needs a real input"));
    }
    let axis = match cx.opset >= 20 {
        true if cx.opt_input(2).is_some_and(|v| cx.g.const_of(v).is_none()) => return dft_runtime_axis(cx, x, spec),
        true => scalar_int(cx, 2, "axis")?.unwrap_or(-2),
        false => a.int("axis", 1)?,
    };
    let axis = cx.axis(axis, r)?;
    if axis == r - 1 {
        return Err(cx.err("axis must not be the last (component) axis"));
    }
    let t = spec.along(cx, xs[axis])?;
    Ok(vec![apply(cx, x, axis, t)?])
}

/// DFT along an axis given at run time (opset 20): the transform along
/// every signal axis that has one, selected by the axis value
/// (`pick_by_axis`; a value naming no such axis selects the last one's). Only where every axis
/// gives the output the same shape (else the axis decides the shape and
/// the error is the usual non-constant input, which binding resolves).
fn dft_runtime_axis(cx: &mut Cx, x: ValueId, spec: DftSpec) -> Result<Vec<ValueId>, ImportError> {
    let xs = cx.shape(x);
    let r = xs.len();
    let axis = cx.input(2)?;
    let at = cx.ty(axis).clone();
    if at.numel() != 1 || !matches!(at.dtype, DType::I32 | DType::I64) {
        return Err(cx.err(format!("axis must be one int32 or int64 value, got {at}")));
    }
    let mut by_axis = Vec::with_capacity(r - 1);
    let mut shape: Option<Vec<usize>> = None;
    for a in 0..r - 1 {
        // An axis with no valid transform is not a value the axis can take.
        let Ok(t) = spec.along(cx, xs[a]) else { continue };
        let (k_out, cout) = t.out();
        let mut s = xs.clone();
        s[a] = k_out;
        s[r - 1] = cout;
        match &shape {
            // The axis decides the output's shape: it must be constant.
            Some(first) if *first != s => return Err(cx.non_constant(2, axis, "axis")),
            _ => shape = Some(s),
        }
        by_axis.push((a, apply(cx, x, a, t)?));
    }
    if by_axis.is_empty() {
        return Err(cx.err(format!("no axis of {} has a non-empty transform", cx.ty(x))));
    }
    Ok(vec![pick_by_axis(cx, axis, r, &by_axis)?])
}

fn stft(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let xs = cx.shape(x);
    let dt = cx.ty(x).dtype;
    if xs.len() != 3 || !(xs[2] == 1 || xs[2] == 2) || !dt.is_float() {
        return Err(cx.err(format!("signal {} must be float [batch, length, 1 or 2]", cx.ty(x))));
    }
    let step = scalar_int(cx, 1, "frame_step")?.ok_or_else(|| cx.err("missing required input 'frame_step'"))?;
    let step = usize::try_from(step)
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| cx.err(format!("frame_step must be positive, got {step}")))?;
    let window = cx.opt_input(2);
    let frame_len = match scalar_int(cx, 3, "frame_length")? {
        Some(v) => usize::try_from(v)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| cx.err(format!("frame_length must be positive, got {v}")))?,
        None => match window {
            Some(w) => cx.shape(w).first().copied().unwrap_or(0),
            None => xs[1],
        },
    };
    if let Some(w) = window {
        if cx.shape(w) != [frame_len] {
            return Err(cx.err(format!("window {} must be [{frame_len}]", cx.ty(w))));
        }
    }
    let onesided = cx.attrs().bool("onesided", true)?;
    if onesided && xs[2] == 2 {
        return Err(cx.err("onesided=1 needs a real signal"));
    }
    if frame_len == 0 || frame_len > xs[1] {
        return Err(cx.err(format!("frame length {frame_len} does not fit the signal {}", cx.ty(x))));
    }
    let frames = (xs[1] - frame_len) / step + 1;
    super::fits(cx, &[frames, frame_len])?;
    // Frames by one gather of constant positions: [batch, frames, frame_len, c].
    let pos: Vec<i64> = (0..frames).flat_map(|f| (0..frame_len).map(move |j| (f * step + j) as i64)).collect();
    let idx = konst_i(cx, "frame_positions", vec![frames, frame_len], &pos)?;
    let mut fr = cx.add1(Op::Gather { axis: 1 }, vec![x, idx])?;
    if let Some(w) = window {
        let w = reshape(cx, w, vec![1, 1, frame_len, 1])?;
        fr = bin(cx, BinaryOp::Mul, fr, w)?;
    }
    let t = Transform { len: frame_len, cin: xs[2], n: frame_len, inverse: false, onesided };
    Ok(vec![apply(cx, fr, 2, t)?])
}

/// Output dtype from an `output_datatype` attribute (default float).
fn out_dtype(cx: &Cx) -> Result<DType, ImportError> {
    let code = cx.attrs().int("output_datatype", 1)?;
    let code = i32::try_from(code).map_err(|_| cx.err(format!("unknown output_datatype {code}")))?;
    tensor::dtype_of(code, &cx.name).map_err(|_| cx.err(format!("unsupported output_datatype {code}")))
}

fn window(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let size = scalar_int(cx, 0, "size")?.ok_or_else(|| cx.err("missing required input 'size'"))?;
    let size = usize::try_from(size).map_err(|_| cx.err(format!("size must not be negative, got {size}")))?;
    if size > kerf_ir::MAX_CONST_ELEMENTS {
        return Err(cx.err(format!("window of {size} elements is too large")));
    }
    let periodic = cx.attrs().bool("periodic", true)?;
    let dt = out_dtype(cx)?;
    let denom = if periodic { size as f64 } else { size as f64 - 1.0 };
    let pi = std::f64::consts::PI;
    let v: Vec<f64> = (0..size)
        .map(|i| {
            let n = i as f64;
            match cx.op() {
                "HannWindow" => (n * pi / denom).sin().powi(2),
                "HammingWindow" => {
                    let alpha = 25.0 / 46.0;
                    alpha - (n * pi * 2.0 / denom).cos() * (1.0 - alpha)
                }
                _ => -0.5 * (n * pi * 2.0 / denom).cos() + 0.08 * (n * pi * 4.0 / denom).cos() + 0.42,
            }
        })
        .collect();
    let t = Tensor::from_f64_values(dt, vec![size], &v).map_err(|e| cx.err(e.to_string()))?;
    Ok(vec![cx.derived("window", t)])
}

fn mel_weight_matrix(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let int = |cx: &Cx, i: usize, what: &str| -> Result<i64, ImportError> {
        scalar_int(cx, i, what)?.ok_or_else(|| cx.err(format!("missing required input '{what}'")))
    };
    let float = |cx: &Cx, i: usize, what: &str| -> Result<f64, ImportError> {
        let t = cx.konst_req(i, what)?;
        if t.numel() != 1 {
            return Err(cx.err(format!("input '{what}' must be a scalar")));
        }
        Ok(t.get_f64(0))
    };
    let bins = int(cx, 0, "num_mel_bins")?;
    let dft_len = int(cx, 1, "dft_length")?;
    let rate = int(cx, 2, "sample_rate")?;
    let (lo, hi) = (float(cx, 3, "lower_edge_hertz")?, float(cx, 4, "upper_edge_hertz")?);
    if bins <= 0 || dft_len <= 0 || rate <= 0 || !(0.0..=hi).contains(&lo) || !hi.is_finite() {
        return Err(cx.err(format!(
            "needs positive num_mel_bins/dft_length/sample_rate and 0 <= lower <= upper, got {bins}, {dft_len}, {rate}, {lo}, {hi}"
        )));
    }
    let (bins, dft_len) = (bins as usize, dft_len as usize);
    let spec_bins = dft_len / 2 + 1;
    super::fits(cx, &[spec_bins, bins])?;
    // As the ONNX reference: mel-spaced band edges, mapped back to bins.
    let mel = |hz: f64| 2595.0 * (hz / 700.0).ln_1p() / 10f64.ln();
    let (mlo, mhi) = (mel(lo), mel(hi));
    let step = (mhi - mlo) / (bins + 2) as f64;
    let edges: Vec<i64> = (0..bins + 2)
        .map(|i| {
            let m = i as f64 * step + mlo;
            let hz = 700.0 * (m / 2595.0 * 10f64.ln()).exp_m1();
            (((dft_len + 1) as f64 * hz) / rate as f64).floor() as i64
        })
        .collect();
    let mut out = vec![0.0; spec_bins * bins];
    let mut set = |j: i64, i: usize, v: f64| -> Result<(), ImportError> {
        let j = usize::try_from(j).ok().filter(|&j| j < spec_bins);
        match j {
            Some(j) => {
                out[j * bins + i] = v;
                Ok(())
            }
            None => Err(cx.err("a mel band edge falls outside the spectrum (upper_edge_hertz above Nyquist?)")),
        }
    };
    for i in 0..bins {
        let (l, c, h) = (edges[i], edges[i + 1], edges[i + 2]);
        if c == l {
            set(c, i, 1.0)?;
        } else {
            for j in l..=c {
                set(j, i, (j - l) as f64 / (c - l) as f64)?;
            }
        }
        if h > c {
            for j in c..h {
                set(j, i, (h - j) as f64 / (h - c) as f64)?;
            }
        }
    }
    let dt = out_dtype(cx)?;
    let t = Tensor::from_f64_values(dt, vec![spec_bins, bins], &out).map_err(|e| cx.err(e.to_string()))?;
    Ok(vec![cx.derived("mel_weight_matrix", t)])
}
